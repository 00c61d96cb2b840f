//! CIC swaps and transplants between users, and malformed CICs.

use crate::*;
use opk_core::cic::CicError;

/// Mallory signs Alice's (OP-signed) payload with her own key under her own CIC: the nonce
/// Alice's OP signed does not commit to Mallory's CIC.
#[test]
fn cic_of_another_user_over_a_stolen_id_token() {
    let alice = Login::new().sound();
    let mallory_key = es_key();
    let mallory_cic = CicHeader::generate(&mallory_key, &[]).unwrap();
    let cic = mallory_cic
        .sign(alice.token.payload_segment(), &mallory_key)
        .unwrap();
    let parts = alice.parts();
    let token = format!(
        "{}:{}:{}:{}:{}",
        parts[0],
        parts[1],
        parts[2],
        cic.header_segment(),
        cic.signature_segment()
    );
    let refusal = alice.refuse(&token);
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

/// Alice's complete CIC (header and signature) transplanted into Bob's token.
#[test]
fn cic_transplanted_between_users() {
    let alice = Login::new().sound();
    let bob = Login::with(alice.op_key.clone(), es_key(), |p| {
        p["email"] = "bob@example.com".into()
    })
    .sound();
    let (a, b) = (alice.parts(), bob.parts());
    let token = format!("{}:{}:{}:{}:{}", b[0], b[1], b[2], a[3], a[4]);
    let refusal = bob.refuse(&token);
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::Cic(CicError::Signature(_)))
        ),
        "{refusal:?}"
    );
}

/// The upk swapped for Mallory's key, `rz` kept, re-signed by Mallory.
#[test]
fn cic_upk_swapped_keeping_rz() {
    let alice = Login::new().sound();
    let mallory = es_key();
    let mut header = alice.cic_object();
    header.insert(
        "upk".into(),
        Value::Object(mallory.public_key().to_jwk_object(mallory.algorithm())),
    );
    let json = opk_core::gojson::to_string(&Value::Object(header));
    let cic = Jws::sign(&json, alice.token.payload_segment(), &mallory).unwrap();
    let parts = alice.parts();
    let token = format!(
        "{}:{}:{}:{}:{}",
        parts[0],
        parts[1],
        parts[2],
        cic.header_segment(),
        cic.signature_segment()
    );
    let refusal = alice.refuse(&token);
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_extra_claim_added_after_commitment() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("att".into(), "injected".into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_rz_changed() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("rz".into(), "00".repeat(32).into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::CommitmentMismatch("nonce"))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_rz_removed() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.remove("rz");
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::MissingRz))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_upk_removed() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.remove("upk");
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::MissingUpk))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_upk_without_alg() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header
        .get_mut("upk")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("alg");
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::UpkWithoutAlg))
        ),
        "{refusal:?}"
    );
}

/// A point that is not on the curve.
#[test]
fn cic_upk_invalid_point() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.get_mut("upk").unwrap()["y"] = b64::encode_url([1_u8; 32]).into();
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Cic(CicError::InvalidUpk(_)))
        ),
        "{refusal:?}"
    );
}

#[test]
fn cic_typ_lowercase() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("typ".into(), "cic".into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::UnrecognizedSignatureType(ref typ)) if typ == "cic"),
        "{refusal:?}"
    );
}

/// The CIC relabelled as an OP signature and the OP as a CIC.
#[test]
fn cic_typ_swapped_to_jwt() {
    let login = Login::new().sound();
    let mut header = login.cic_object();
    header.insert("typ".into(), "JWT".into());
    let refusal = login.refuse(&login.with_cic_object(&header));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Duplicate(_))),
        "{refusal:?}"
    );
}
