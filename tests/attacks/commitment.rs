//! Commitment mismatches: the nonce (or aud) must commit to exactly this CIC.

use crate::*;
use opk_core::claims::ClaimsError;

#[test]
fn nonce_missing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_edited(|p| {
        p.as_object_mut().unwrap().remove("nonce");
    }));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

/// An ID token whose nonce commits to another CIC (e.g. a token obtained for another key).
#[test]
fn nonce_for_another_cic() {
    let login = Login::new().sound();
    let other = CicHeader::generate(&es_key(), &[]).unwrap();
    let refusal = login.refuse(&login.mint_edited(|p| p["nonce"] = other.commitment().into()));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

/// The nonce the attacker's OP might echo: the raw CIC JSON, or the hash in another encoding.
#[test]
fn nonce_in_another_encoding() {
    let login = Login::new().sound();
    let commitment = b64::decode_url_strict(login.cic.commitment()).unwrap();
    for nonce in [
        hex::encode(&commitment),
        b64::encode_std(&commitment),
        login.cic.json().to_owned(),
        login.cic.commitment().to_uppercase(),
        format!("{}=", login.cic.commitment()),
    ] {
        let refusal = login.refuse(&login.mint_edited(|p| p["nonce"] = nonce.clone().into()));
        assert!(
            matches!(
                refusal,
                Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
            ),
            "{nonce}: {refusal:?}"
        );
    }
}

#[test]
fn nonce_as_array_holding_the_commitment() {
    let login = Login::new().sound();
    let refusal = login
        .refuse(&login.mint_edited(|p| p["nonce"] = serde_json::json!([login.cic.commitment()])));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("nonce")))
        ),
        "{refusal:?}"
    );
}

/// The commitment placed in `aud` for a nonce provider: the nonce is what counts.
#[test]
fn commitment_in_aud_for_a_nonce_provider() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_edited(|p| {
        p["aud"] = serde_json::json!([CLIENT_ID, login.cic.commitment()]);
        p.as_object_mut().unwrap().remove("nonce");
    }));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}
