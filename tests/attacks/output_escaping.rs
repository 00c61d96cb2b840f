//! Control characters from a token in the log and on the terminal (review finding 2). A
//! claim such as `iss = "https://e<ESC>[2K<ESC>[1G2026/… allow principal=root"` must not
//! erase a deny and draw a forged allow when the log is read with `tail -f` or `cat`, nor
//! redraw the screen of an admin running `explain` or `inspect`. Through the real binary:
//! the log at debug level (every step), `explain`, `inspect` and `inspect --json`.

use crate::binary::{Host, gate};
use serde_json::{Value, json};

/// A forged log line: erase the line, back to column 1, a fake allow, then hide the rest.
const FORGERY: &str = "\u{1b}[2K\u{1b}[1G2026/01/01 00:00:00 allow principal=root\u{1b}[8m";
/// Every other kind of character a terminal or a line reader acts on.
const ODD: &str = "\r\n\t\u{0}\u{7}\u{7f}\u{9b}31m\u{85}\u{2028}\u{2029}\u{202e}";

fn assert_no_raw_controls(what: &str, text: &str) {
    for (index, c) in text.char_indices() {
        let raw = c != '\n' && (c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c))
            || matches!(c, '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(
            !raw,
            "{what}: raw {c:?} at byte {index}:\n{}",
            text.get(index.saturating_sub(80)..).unwrap_or(text)
        );
    }
}

/// Every line of the log is one event: a Go timestamp, then the message.
fn assert_one_event_per_line(log: &str) {
    for line in log.lines() {
        let stamp = line.get(..19).unwrap_or_default();
        assert!(
            stamp.len() == 19
                && stamp.as_bytes()[4] == b'/'
                && stamp.as_bytes()[13] == b':'
                && !line.starts_with("2026/01/01 00:00:00 allow"),
            "forged or broken log line: {line:?}"
        );
    }
}

#[test]
fn output_escaping_unknown_issuer_with_terminal_escapes_in_the_log() {
    if !gate() {
        return;
    }
    let host = Host::with_claims(|claims| {
        claims["iss"] = json!(format!("https://e{FORGERY}{ODD}"));
    });
    let (allowed, log) = host.verify_with(&["--log-level", "debug"]);
    assert!(!allowed, "{log}");
    assert_no_raw_controls("log", &log);
    assert_one_event_per_line(&log);
    assert!(log.contains("https://e\\x1b[2K\\x1b[1G2026"), "{log}");
}

/// Every claim the log, `explain` and `inspect` show carries control characters: on the deny
/// path (no row matches) and on the allow path (a `groups` row), where the log line names the
/// identity.
#[test]
fn output_escaping_signed_claims_in_log_explain_and_inspect() {
    if !gate() {
        return;
    }
    let email = format!("bad{FORGERY}{ODD}@example.com");
    let claims = json!({
        "sub": format!("sub{FORGERY}{ODD}"),
        "email": email,
        "aud": ["attack-client", format!("aud{ODD}")],
        "groups": ["admins", format!("g{FORGERY}")],
        "name": format!("n{ODD}"),
        "jti": format!("j{FORGERY}"),
    });
    let host = Host::with_claims(|payload| {
        for (name, value) in claims.as_object().unwrap() {
            payload[name] = value.clone();
        }
    });
    let issuer = host.server.issuer().to_owned();
    for (auth_id, expect_allow) in [
        (format!("alice someone-else@example.com {issuer}\n"), false),
        (format!("alice oidc:groups:admins {issuer}\n"), true),
    ] {
        host.write_etc("auth_id", &auth_id);
        let (allowed, log) = host.verify_with(&["--log-level", "debug"]);
        assert_eq!(allowed, expect_allow, "{log}");
        assert_no_raw_controls("log", &log);
        assert_one_event_per_line(&log);
        assert!(log.contains("identity=bad\\x1b[2K"), "{log}");

        let certificate = host.certificate_file();
        let etc = host.etc();
        let cache = host.dir.path().join("cache");
        let explain = host.opkssh(&[
            "explain",
            "--config-dir",
            etc.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "alice",
            certificate.to_str().unwrap(),
        ]);
        assert_eq!(explain.status.success(), expect_allow, "{explain:?}");
        let explained = String::from_utf8(explain.stdout).unwrap();
        assert_no_raw_controls("explain", &explained);
        assert!(explained.contains("bad\\x1b[2K"), "{explained}");
    }

    let certificate = host.certificate_file();
    let inspect = host.opkssh(&["inspect", certificate.to_str().unwrap()]);
    assert!(inspect.status.success(), "{inspect:?}");
    let text = String::from_utf8(inspect.stdout).unwrap();
    assert_no_raw_controls("inspect", &text);
    assert!(text.contains("Identity: bad\\x1b[2K"), "{text}");

    let inspect = host.opkssh(&["inspect", "--json", certificate.to_str().unwrap()]);
    assert!(inspect.status.success(), "{inspect:?}");
    let text = String::from_utf8(inspect.stdout).unwrap();
    assert_no_raw_controls("inspect --json", &text);
    // Still the same JSON: every claim reads back exactly as signed.
    let report: Value = serde_json::from_str(&text).unwrap();
    for (name, value) in claims.as_object().unwrap() {
        assert_eq!(&report["payload"][name], value, "{name}");
    }
    assert_eq!(report["identity"], json!(email));
}
