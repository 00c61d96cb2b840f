//! Principal injection into the sshd line (#597): every certificate principal must pass the
//! allowlist before it is echoed in `cert-authority,principals="…"`.

use crate::cache::{CacheDir, pipeline};
use crate::*;
use opk_core::sshcert::CertComment;
use verifier::pipeline::Denial;

fn injected(principal: &str) {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::List(vec!["alice".into(), principal.into()]));
    let cache = CacheDir::for_login(&login);
    let denial = pipeline(&cache, &cert.to_line(CertComment::None)).unwrap_err();
    assert_eq!(denial, Denial::InvalidPrincipal(principal.to_owned()));
}

macro_rules! injections {
    ($($name:ident => $principal:expr,)*) => {
        $(
            #[test]
            fn $name() {
                injected($principal);
            }
        )*
    };
}

injections! {
    principal_closing_the_quote_with_a_command => r#"alice" ,command="/bin/sh -c id"#,
    principal_with_a_comma => "alice,root",
    principal_with_a_newline_and_a_second_key_line => "alice\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA evil",
    principal_with_a_space => "alice root",
    principal_starting_with_a_dash => "-oProxyCommand=sh",
    principal_with_a_dollar_inside => "al$ice",
    principal_empty => "",
    principal_over_128_characters => &"a".repeat(129),
    principal_with_a_nul => "alice\u{0}root",
    principal_with_a_homoglyph => "\u{0430}lice",
    principal_with_a_backslash => "alice\\\"",
    principal_with_a_glob => "*",
}

/// Control: a principal list that passes the allowlist is echoed as given.
#[test]
fn control_safe_principals_are_echoed() {
    let login = Login::new().sound();
    let cert = login.certificate(Principals::List(vec![
        "alice".into(),
        "svc_deploy$".into(),
        "a.b+c@d-e".into(),
    ]));
    let line = pipeline(
        &CacheDir::for_login(&login),
        &cert.to_line(CertComment::None),
    )
    .unwrap();
    assert!(
        line.starts_with("cert-authority,principals=\"alice,svc_deploy$,a.b+c@d-e\" "),
        "{line}"
    );
}
