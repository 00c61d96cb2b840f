//! Issuer and audience variants: exact issuer, client id in `aud`.

use crate::*;

fn issuer_refused(login: &Login, iss: &str) {
    let refusal = login.refuse(&login.mint_edited(|p| p["iss"] = iss.into()));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::IssuerMismatch { ref actual, .. }) if actual == iss),
        "{iss}: {refusal:?}"
    );
}

#[test]
fn issuer_with_trailing_slash() {
    issuer_refused(&Login::new().sound(), "https://op.example/");
}

#[test]
fn issuer_in_another_letter_case() {
    issuer_refused(&Login::new().sound(), "https://OP.example");
}

#[test]
fn issuer_lookalikes() {
    let login = Login::new().sound();
    for iss in [
        "http://op.example",
        "https://op.example.evil.com",
        "https://op.example:443",
        "https://op.example#",
        " https://op.example",
        "https://op.example\u{0}",
        "https://op.examp1e",
    ] {
        issuer_refused(&login, iss);
    }
}

#[test]
fn audience_of_another_client() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_edited(|p| p["aud"] = "client-2".into()));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::AudienceMismatch(_))),
        "{refusal:?}"
    );
}

#[test]
fn audience_in_another_letter_case_or_with_a_prefix() {
    let login = Login::new().sound();
    for aud in ["CLIENT-1", "client-1 ", "client-10", "xclient-1", ""] {
        let refusal = login.refuse(&login.mint_edited(|p| p["aud"] = aud.into()));
        assert!(
            matches!(refusal, Refusal::Verify(VerifyError::AudienceMismatch(_))),
            "{aud}: {refusal:?}"
        );
    }
}

#[test]
fn audience_array_without_the_client() {
    let login = Login::new().sound();
    let refusal = login
        .refuse(&login.mint_edited(|p| p["aud"] = serde_json::json!(["client-2", "client-3"])));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::AudienceMismatch(_))),
        "{refusal:?}"
    );
}

#[test]
fn audience_empty_array() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_edited(|p| p["aud"] = serde_json::json!([])));
    assert!(
        matches!(refusal, Refusal::Verify(VerifyError::AudienceMismatch(_))),
        "{refusal:?}"
    );
}

#[test]
fn audience_missing() {
    let login = Login::new().sound();
    let refusal = login.refuse(&login.mint_edited(|p| {
        p.as_object_mut().unwrap().remove("aud");
    }));
    assert!(
        matches!(
            refusal,
            Refusal::Verify(VerifyError::AudienceMismatch(_)) | Refusal::Parse(_)
        ),
        "{refusal:?}"
    );
}
