//! Attacks on `opkssh ssh` through the real binary: values of its options that look like
//! flags of the `opkssh login` it runs. Gated like the e2e tests (`OPKSSH_E2E=1`).

use crate::binary::gate;
use opkssh_tests::login::LoginProcess;

/// Issue 18 item 7: `--alias=--create-config` was passed to login as a bare word, so login
/// read it as its flag and wrote `~/.opk/config.yml` instead of looking up an alias.
#[test]
fn ssh_alias_that_looks_like_a_login_flag_stays_an_alias() {
    if !gate() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("id_ecdsa");
    let run = LoginProcess::start_opkssh(
        home.path(),
        &[
            "ssh",
            "--key",
            key.to_str().unwrap(),
            "--alias=--create-config",
            "--disable-browser-open",
            "host.invalid",
            "true",
        ],
        &[],
    )
    .finish();
    assert!(!run.status.success(), "{run:?}");
    assert!(
        !home.path().join(".opk").exists(),
        "login ran as --create-config: {run:?}"
    );
    assert!(
        run.stderr.contains("alias --create-config"),
        "login did not look the alias up: {run:?}"
    );
}
