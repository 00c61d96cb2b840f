//! Payload edits after signing, and type confusions in claims an OP might send (§5.1): the
//! token must be refused, never half-read.

use crate::*;
use opk_core::cic::CicError;
use opk_core::claims::ClaimsError;
use opk_core::jws::JwsError;

fn edited_after_signing(login: &Login, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload = login.payload.clone();
    edit(&mut payload);
    let mut parts = login.parts();
    parts[0] = b64::encode_url(payload.to_string());
    parts.join(":")
}

fn cic_bad_signature(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Verify(VerifyError::Cic(CicError::Signature(
            JwsError::BadSignature
        )))
    )
}

#[test]
fn payload_email_edited_after_signing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&edited_after_signing(&login, |p| {
        p["email"] = "root@example.com".into()
    }));
    assert!(cic_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn payload_sub_edited_after_signing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&edited_after_signing(&login, |p| p["sub"] = "admin".into()));
    assert!(cic_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn payload_exp_extended_after_signing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&edited_after_signing(&login, |p| {
        p["exp"] = (EXP + 365 * 86400).into()
    }));
    assert!(cic_bad_signature(&refusal), "{refusal:?}");
}

#[test]
fn payload_groups_added_after_signing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&edited_after_signing(&login, |p| {
        p["groups"] = serde_json::json!(["admins"])
    }));
    assert!(cic_bad_signature(&refusal), "{refusal:?}");
}

/// The same bytes in another base64 spelling (non-zero trailing bits) are not the signed text.
#[test]
fn payload_segment_with_non_canonical_base64() {
    let login = Login::new().sound();
    // Pad the payload so its last base64 character carries unused trailing bits.
    let mut pad = String::new();
    let compact = loop {
        let mut payload = login.payload.clone();
        payload["pad"] = pad.clone().into();
        if payload.to_string().len() % 3 == 1 {
            break login.mint_raw(&payload.to_string());
        }
        pad.push('x');
    };
    login
        .verify(&PkToken::from_compact(&compact).unwrap())
        .unwrap(); // the canonical one is genuine
    let mut parts: Vec<String> = compact.split(':').map(str::to_owned).collect();
    let last = parts[0].pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    parts[0].push(alphabet.chars().nth(index ^ 1).unwrap());
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotBase64))
        ),
        "{refusal:?}"
    );
}

fn wrong_type(login: &Login, claim: &'static str, value: Value) -> Refusal {
    login.refuse(&login.mint_edited(|p| p[claim] = value))
}

#[test]
fn exp_as_string() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "exp", EXP.to_string().into());
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnInteger("exp")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn exp_as_float() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "exp", serde_json::json!(1.7e10));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnInteger("exp")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn exp_beyond_i64() {
    let login = Login::new().sound();
    let refusal = login.refuse(
        &login.mint_raw(
            &login
                .payload
                .to_string()
                .replace(&EXP.to_string(), "99999999999999999999"),
        ),
    );
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnInteger("exp")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn iat_as_string() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "iat", IAT.to_string().into());
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnInteger("iat")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn groups_as_string() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "groups", "admins".into());
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("groups")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn groups_with_a_non_string_member() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "groups", serde_json::json!(["ops", 1]));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("groups")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn email_as_array() {
    let login = Login::new().sound();
    let refusal = wrong_type(
        &login,
        "email",
        serde_json::json!(["alice@example.com", "root@example.com"]),
    );
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("email")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn iss_as_array() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "iss", serde_json::json!([ISSUER]));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("iss")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn sub_as_number() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "sub", serde_json::json!(12345));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("sub")))
        ),
        "{refusal:?}"
    );
}

#[test]
fn aud_as_number() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "aud", serde_json::json!(1));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::WrongType("aud")))
        ),
        "{refusal:?}"
    );
}

/// `ISS` next to `iss`: Go fills `iss` from either; we refuse to guess.
#[test]
fn issuer_claim_in_another_letter_case() {
    let login = Login::new().sound();
    let refusal = wrong_type(&login, "ISS", "https://evil.example".into());
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::AmbiguousName(_)))
        ),
        "{refusal:?}"
    );
}

#[test]
fn payload_is_an_array() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_raw(&format!("[{}]", login.payload)));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnObject))
        ),
        "{refusal:?}"
    );
}

#[test]
fn payload_not_utf8() {
    let login = Login::new().sound();
    let mut bytes = login.payload.to_string().into_bytes();
    let at = bytes.iter().position(|byte| *byte == b'@').unwrap();
    bytes[at] = 0xff;
    let refusal = login.refuse(&login.mint_segment(&b64::encode_url(&bytes)));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Claims(ClaimsError::NotAnObject))
        ),
        "{refusal:?}"
    );
}

#[test]
fn op_header_not_utf8() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    let mut header = br#"{"alg":"ES256","kid":"op-key","typ":"JWT"}"#.to_vec();
    header[10] = 0xc3;
    parts[1] = b64::encode_url(&header);
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(
            refusal,
            Refusal::Parse(PkTokenError::Jws {
                error: JwsError::HeaderNotObject,
                ..
            })
        ),
        "{refusal:?}"
    );
}
