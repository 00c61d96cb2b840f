//! `opkssh explain` and `opkssh verify --explain`: the whole verify decision through the real
//! binary, against a local issuer serving minted tokens' keys and root-owned policy files in a
//! temporary directory. For each way a login is denied, the trace names the step that failed
//! and why (with file and line where a file decided); an allow names the rule. The verify log
//! carries the same steps. Gated like the e2e tests (`OPKSSH_E2E=1`): they need the `opkssh`
//! binary of the test command and root (the policy files must be root's).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure

use opk_core::b64;
use opk_core::sshcert::OpksshCertificate;
use opkssh_tests::e2e::{self, IssuerServer};
use opkssh_tests::mint::{Minted, mint, mint_with};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const CLIENT_ID: &str = "explain-client";
const EMAIL: &str = "alice@example.com";
const OTHER_ISSUER: &str = "https://other.example";

fn gate() -> bool {
    if e2e::enabled() {
        return true;
    }
    eprintln!("SKIP e2e: set OPKSSH_E2E=1");
    false
}

/// A server: a local issuer, `etc/` (providers, auth_id, policy.d), a cache and a log.
struct Host {
    server: IssuerServer,
    dir: tempfile::TempDir,
}

impl Host {
    /// Providers names the local issuer (policy `oidc`); `auth_id` is empty.
    fn new() -> Self {
        let server = IssuerServer::start_custom().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        let host = Self { server, dir };
        host.write(
            "providers",
            &format!("{} {CLIENT_ID} oidc\n", host.issuer()),
        );
        host.write("auth_id", "");
        host
    }

    fn issuer(&self) -> &str {
        self.server.issuer()
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// `etc/<name>:<line>`, as steps name a row.
    fn at(&self, name: &str, line: usize) -> String {
        format!("{}:{line}", self.etc().join(name).display())
    }

    /// A root-owned 0640 file under `etc/`.
    fn write(&self, name: &str, text: &str) {
        let path = self.etc().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }

    /// A login for `alice@example.com` at this issuer, whose key the issuer publishes.
    fn login(&self, edit: impl FnOnce(&mut serde_json::Value)) -> Minted {
        let minted = mint_with(self.issuer(), CLIENT_ID, EMAIL, edit).unwrap();
        self.publish(&minted);
        minted
    }

    /// Publishes the login's OP key. Every minted login has its own OP key under the same
    /// kid, so the cache (which would rightly keep the earlier key) is emptied.
    fn publish(&self, minted: &Minted) {
        self.server.set_documents(
            Minted::discovery_json(self.issuer()).as_bytes(),
            minted.jwks_json.as_bytes(),
        );
        for entry in std::fs::read_dir(self.dir.path().join("cache")).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }

    fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(e2e::target_binary("opkssh"));
        command
            .arg(subcommand)
            .arg("--config-dir")
            .arg(self.etc())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env_clear();
        command
    }

    /// `opkssh explain <principal> <certificate>`.
    fn explain(&self, principal: &str, certificate: &str) -> Explained {
        Explained::from(
            self.command("explain")
                .args([principal, certificate])
                .output()
                .unwrap(),
        )
    }

    /// `opkssh explain <principal> -` with the line on stdin.
    fn explain_stdin(&self, principal: &str, line: &str) -> Explained {
        let mut child = self
            .command("explain")
            .args([principal, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        Explained::from(child.wait_with_output().unwrap())
    }

    /// `opkssh verify [flags] <principal> <b64> <type>`, logging at debug level.
    fn verify(&self, flags: &[&str], principal: &str, line: &str) -> Output {
        let (key_type, key_b64) = line.trim_end().split_once(' ').unwrap();
        self.command("verify")
            .arg("--log-file")
            .arg(self.dir.path().join("opkssh.log"))
            .args(["--log-level", "debug"])
            .args(flags)
            .args([principal, key_b64, key_type])
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("opkssh.log")).unwrap_or_default()
    }
}

/// What explain printed.
struct Explained {
    output: Output,
    stdout: String,
}

impl From<Output> for Explained {
    fn from(output: Output) -> Self {
        let stdout = String::from_utf8(output.stdout.clone()).unwrap();
        Self { output, stdout }
    }
}

impl Explained {
    fn allowed(&self) -> bool {
        self.output.status.code() == Some(0)
    }

    /// The step lines (`pass  …`, `fail  …`, `skip  …`).
    fn steps(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| {
                ["pass  ", "fail  ", "skip  "]
                    .iter()
                    .any(|o| line.starts_with(o))
            })
            .collect()
    }

    /// The last line: `allow: …` or `deny: …`.
    fn decision(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }

    /// The one step line starting with `prefix`; panics with the whole output otherwise.
    fn step(&self, prefix: &str) -> &str {
        let found: Vec<&str> = self
            .steps()
            .into_iter()
            .filter(|line| line.starts_with(prefix))
            .collect();
        assert_eq!(found.len(), 1, "one step {prefix:?} expected in\n{self}");
        found[0]
    }

    fn has_step(&self, prefix: &str) -> bool {
        self.steps().iter().any(|line| line.starts_with(prefix))
    }

    /// Denied, and the failing step `prefix` says `reason` and decides.
    fn assert_denied_at(&self, prefix: &str, reason: &str) {
        assert_eq!(self.output.status.code(), Some(1), "{self}");
        let step = self.step(prefix);
        assert!(step.contains(reason), "{step:?} lacks {reason:?}\n{self}");
        assert!(
            self.decision().starts_with("deny: ") && self.decision().contains(reason),
            "{self}"
        );
        assert!(!self.stdout.contains("cert-authority"), "{self}");
    }

    /// Every step before `prefix` passed or was skipped; none after it ran a later check.
    fn assert_passed_until(&self, prefix: &str) {
        let steps = self.steps();
        let at = steps
            .iter()
            .position(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no step {prefix:?} in\n{self}"));
        for line in &steps[..at] {
            assert!(
                !line.starts_with("fail  "),
                "{line:?} failed before {prefix:?}\n{self}"
            );
        }
    }
}

impl std::fmt::Display for Explained {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "exit {:?}\n{}stderr: {}",
            self.output.status.code(),
            self.stdout,
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

fn auth_id_row(principal: &str, identity: &str, issuer: &str) -> String {
    format!("{principal} {identity} {issuer}\n")
}

#[test]
fn explain_allow_names_the_matching_rule_and_why_the_others_did_not_match() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let minted = host.login(|_| {});
    let issuer = host.issuer().to_owned();
    host.write(
        "auth_id",
        &[
            auth_id_row("root", EMAIL, &issuer),
            auth_id_row("alice", EMAIL, OTHER_ISSUER),
            auth_id_row("alice", "bob@example.com", &issuer),
            auth_id_row("alice", EMAIL, &issuer),
        ]
        .concat(),
    );
    let cert_file = host.dir.path().join("id_ecdsa-cert.pub");
    std::fs::write(&cert_file, &minted.cert_line).unwrap();
    let explained = host.explain("alice", cert_file.to_str().unwrap());
    assert!(explained.allowed(), "{explained}");

    // Every check of verify ran and passed, the providers row named where it applies.
    for prefix in [
        "pass  certificate type: ecdsa-sha2-nistp256-cert-v01@openssh.com",
        &format!(
            "pass  providers file {}: usable rows: 1, skipped lines: 0",
            host.etc().join("providers").display()
        ),
        "pass  certificate: key SHA256:",
        "pass  certificate self-signature: ",
        &format!("pass  PK token: iss {issuer}, sub sub-{EMAIL}, email {EMAIL}"),
        &format!(
            "pass  provider {}: issuer {issuer}",
            host.at("providers", 1)
        ),
        "pass  OP keys: fetched from the provider, keys: 1, token kid mint-key",
        "pass  client signature: ",
        &format!(
            "pass  audience {}: aud contains client id {CLIENT_ID}",
            host.at("providers", 1)
        ),
        "pass  OP signature: ES256 signature verifies with JWKS key mint-key",
        "pass  commitment: nonce commits to the CIC",
        "skip  refreshed ID token: ",
        &format!(
            "pass  expiration {}: policy oidc: exp ",
            host.at("providers", 1)
        ),
        "pass  certificate key = upk: ",
        "skip  userinfo: no access token",
        "pass  deny lists ",
        &format!(
            "pass  system policy {}: rows: 4, skipped lines: 0",
            host.etc().join("auth_id").display()
        ),
        "skip  home policy: ",
        "pass  certificate principals: [opkssh-wildcard] are safe",
    ] {
        explained.step(prefix);
    }
    // Each candidate rule, and why it did not let alice in.
    explained.step(&format!(
        "skip  auth_id row {}: principal root != alice",
        host.at("auth_id", 1)
    ));
    explained.step(&format!(
        "skip  auth_id row {}: issuer {OTHER_ISSUER} != {issuer}",
        host.at("auth_id", 2)
    ));
    let third = explained.step(&format!(
        "fail  auth_id row {}: bob@example.com does not match",
        host.at("auth_id", 3)
    ));
    assert!(
        third.contains(&format!("email {EMAIL} != bob@example.com")),
        "{third}"
    );
    let rule = explained.step(&format!(
        "pass  auth_id email match {}: policy alice {EMAIL} {issuer} matched the id token claims",
        host.at("auth_id", 4)
    ));
    assert!(rule.ends_with(&format!("email {EMAIL} matches")), "{rule}");
    assert!(
        explained.decision().starts_with("allow: policy alice")
            && explained
                .decision()
                .ends_with(&format!("[auth_id email match: {}]", host.at("auth_id", 4))),
        "{explained}"
    );
    assert!(!explained.stdout.contains("cert-authority"), "{explained}");

    // No secret: neither the certificate nor any part of the PK token or its signatures.
    let (_, key_b64) = minted.type_and_base64();
    assert!(!explained.stdout.contains(key_b64));
    let certificate = OpksshCertificate::from_line(&minted.cert_line).unwrap();
    for part in certificate.pk_token().unwrap().split(['.', ':']) {
        if part.len() > 16 {
            assert!(
                !explained.stdout.contains(part),
                "token part {part} printed"
            );
        }
    }

    // The line itself and stdin give the same steps (the keys now come from the cache).
    let from_line = host.explain("alice", &minted.cert_line);
    let from_stdin = host.explain_stdin("alice", &minted.cert_line);
    assert!(
        from_line.allowed() && from_stdin.allowed(),
        "{from_line}\n{from_stdin}"
    );
    from_line.step("pass  OP keys: from the cache, keys: 1");
    assert_eq!(from_line.stdout, from_stdin.stdout);

    // verify --explain: the same trace on stdout, no sshd line; plain verify: only the line.
    let explain_flag = host.verify(&["--explain"], "alice", &minted.cert_line);
    assert_eq!(explain_flag.status.code(), Some(0), "{explain_flag:?}");
    assert_eq!(
        String::from_utf8(explain_flag.stdout).unwrap(),
        from_line.stdout
    );
    let plain = host.verify(&[], "alice", &minted.cert_line);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let stdout = String::from_utf8(plain.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("cert-authority,principals=\"opkssh-wildcard\" "));
}

#[test]
fn explain_malformed_certificate_and_wrong_key_type() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    // Base64 of something that is not a certificate, under a certificate type.
    let garbage = format!(
        "ecdsa-sha2-nistp256-cert-v01@openssh.com {}",
        b64::encode_std(b"\0\0\0\x28ecdsa-sha2-nistp256-cert-v01@openssh.com\0\0\0\x01x")
    );
    let explained = host.explain("alice", &garbage);
    explained.assert_denied_at("fail  certificate: ", "certificate does not decode");
    assert!(
        explained.decision().ends_with("[certificate]"),
        "{explained}"
    );
    assert!(
        !explained.has_step("pass  certificate self-signature"),
        "{explained}"
    );
    // A key type that is not a certificate type (as for the bare key ssh offers first):
    // refused before any file is read.
    let minted = host.login(|_| {});
    let user_key_line = format!("ecdsa-sha2-nistp256 {}", minted.type_and_base64().1);
    let bare = host.explain("alice", &user_key_line);
    bare.assert_denied_at(
        "fail  certificate type: ",
        "key type `ecdsa-sha2-nistp256` is not an opkssh certificate type",
    );
    assert_eq!(bare.steps().len(), 1, "{bare}");
}

#[test]
fn explain_bad_self_signature() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    let minted = host.login(|_| {});
    // The key id edited after signing: the certificate still decodes, its signature fails.
    let certificate = OpksshCertificate::from_line(&minted.cert_line).unwrap();
    let mut blob = certificate.as_bytes().to_vec();
    let at = blob
        .windows(EMAIL.len())
        .position(|w| w == EMAIL.as_bytes())
        .unwrap();
    blob[at] = b'm';
    let line = format!("{} {}", certificate.cert_type_name(), b64::encode_std(blob));
    let explained = host.explain("alice", &line);
    explained.step("pass  certificate: key SHA256:");
    explained.assert_denied_at(
        "fail  certificate self-signature: ",
        "certificate signature does not verify",
    );
    explained.assert_passed_until("fail  certificate self-signature: ");
}

#[test]
fn explain_unknown_issuer() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let minted = host.login(|_| {});
    host.write("providers", &format!("{OTHER_ISSUER} {CLIENT_ID} oidc\n"));
    let explained = host.explain("alice", &minted.cert_line);
    explained.assert_denied_at(
        &format!(
            "fail  provider {}: ",
            host.etc().join("providers").display()
        ),
        &format!(
            "unrecognized issuer: {}, issuers known: [\"{OTHER_ISSUER}\"]",
            host.issuer()
        ),
    );
    explained.assert_passed_until("fail  provider ");
    assert!(!explained.has_step("pass  OP keys"), "{explained}");
}

#[test]
fn explain_op_signature_with_the_wrong_key() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    let minted = host.login(|_| {});
    // The issuer publishes another key under the token's kid.
    host.publish(&mint(host.issuer(), CLIENT_ID, EMAIL).unwrap());
    let explained = host.explain("alice", &minted.cert_line);
    explained.assert_denied_at(
        "fail  OP signature: ",
        "op signature: signature does not verify",
    );
    explained.assert_passed_until("fail  OP signature: ");
    explained.step("pass  client signature: ");
    explained.step(&format!("pass  audience {}: ", host.at("providers", 1)));
    assert!(!explained.has_step("pass  commitment"), "{explained}");
}

#[test]
fn explain_commitment_mismatch() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    let minted = host.login(|payload| payload["nonce"] = "not-the-commitment".into());
    let explained = host.explain("alice", &minted.cert_line);
    explained.assert_denied_at(
        "fail  commitment: ",
        "commitment mismatch: nonce does not commit to the cic",
    );
    explained.assert_passed_until("fail  commitment: ");
    explained.step("pass  OP signature: ");
}

#[test]
fn explain_expired_under_the_providers_expiration_policy() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    // Issued 13 hours ago; its own exp is an hour ahead.
    let minted = host.login(|payload| {
        let iat = payload["iat"].as_i64().unwrap() - 13 * 3600;
        payload["iat"] = iat.into();
    });
    host.write("providers", &format!("{} {CLIENT_ID} 12h\n", host.issuer()));
    let explained = host.explain("alice", &minted.cert_line);
    explained.assert_denied_at(
        &format!("fail  expiration {}: ", host.at("providers", 1)),
        "token expired under policy 12h: valid until ",
    );
    explained.assert_passed_until("fail  expiration ");
    explained.step(&format!(
        "pass  provider {}: issuer {}, client id {CLIENT_ID}, expiration policy 12h",
        host.at("providers", 1),
        host.issuer()
    ));
    // The same token under the `oidc` policy (its exp) is let in.
    host.write(
        "providers",
        &format!("{} {CLIENT_ID} oidc\n", host.issuer()),
    );
    let oidc = host.explain("alice", &minted.cert_line);
    assert!(oidc.allowed(), "{oidc}");
    oidc.step(&format!(
        "pass  expiration {}: policy oidc: exp ",
        host.at("providers", 1)
    ));
}

#[test]
fn explain_principal_in_no_rule() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let issuer = host.issuer().to_owned();
    host.write(
        "auth_id",
        &[
            auth_id_row("root", EMAIL, &issuer),
            auth_id_row("bob", EMAIL, &issuer),
        ]
        .concat(),
    );
    let minted = host.login(|_| {});
    let explained = host.explain("alice", &minted.cert_line);
    explained.step(&format!(
        "skip  auth_id row {}: principal root != alice",
        host.at("auth_id", 1)
    ));
    explained.step(&format!(
        "skip  auth_id row {}: principal bob != alice",
        host.at("auth_id", 2)
    ));
    explained.assert_denied_at(
        "fail  no matching policy ",
        &format!(
            "no policy to allow {EMAIL} with (issuer={issuer}) to assume alice, check policy config at {}",
            host.etc().join("auth_id").display()
        ),
    );
}

#[test]
fn explain_rule_for_another_issuer() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, OTHER_ISSUER));
    let minted = host.login(|_| {});
    let explained = host.explain("alice", &minted.cert_line);
    explained.step(&format!(
        "skip  auth_id row {}: issuer {OTHER_ISSUER} != {}",
        host.at("auth_id", 1),
        host.issuer()
    ));
    explained.assert_denied_at("fail  no matching policy ", "no policy to allow");
}

/// Go lets an email rule match an unverified email with a warning (#594), so the port does
/// too and the trace says so; a rule on `email_verified` is how a policy requires it.
#[test]
fn explain_email_not_verified() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let minted = host.login(|payload| payload["email_verified"] = false.into());
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    let warned = host.explain("alice", &minted.cert_line);
    assert!(warned.allowed(), "{warned}");
    let rule = warned.step(&format!(
        "pass  auth_id email match {}: ",
        host.at("auth_id", 1)
    ));
    assert!(
        rule.contains(&format!(
            "email {EMAIL} not verified (email_verified false)"
        )),
        "{rule}"
    );
    assert!(
        warned
            .stdout
            .contains("note  warning: policy \"alice@example.com\" matched on email"),
        "{warned}"
    );

    host.write(
        "auth_id",
        &auth_id_row("alice", "oidc:email_verified:true", host.issuer()),
    );
    let required = host.explain("alice", &minted.cert_line);
    let row = required.step(&format!("fail  auth_id row {}: ", host.at("auth_id", 1)));
    assert!(
        row.contains("claim email_verified is [false], without true"),
        "{row}"
    );
    required.assert_denied_at("fail  no matching policy ", "no policy to allow");
}

#[test]
fn explain_group_missing() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write(
        "auth_id",
        &auth_id_row("alice", "oidc:groups:admins", host.issuer()),
    );
    let in_ops = host.login(|payload| payload["groups"] = serde_json::json!(["ops", "dev"]));
    let explained = host.explain("alice", &in_ops.cert_line);
    let row = explained.step(&format!("fail  auth_id row {}: ", host.at("auth_id", 1)));
    assert!(
        row.contains("oidc:groups:admins does not match (id token: claim groups is [ops, dev], without admins)"),
        "{row}"
    );
    explained.assert_denied_at("fail  no matching policy ", "no policy to allow");

    let no_groups = host.login(|_| {});
    let explained = host.explain("alice", &no_groups.cert_line);
    let row = explained.step(&format!("fail  auth_id row {}: ", host.at("auth_id", 1)));
    assert!(
        row.contains("claim groups not present (needs admins)"),
        "{row}"
    );

    // In the group: allowed by that rule.
    let in_admins = host.login(|payload| payload["groups"] = serde_json::json!(["admins"]));
    let allowed = host.explain("alice", &in_admins.cert_line);
    assert!(allowed.allowed(), "{allowed}");
    allowed.step(&format!(
        "pass  auth_id claim match {}: policy alice oidc:groups:admins",
        host.at("auth_id", 1)
    ));
}

#[test]
fn explain_policy_file_with_wrong_mode_or_owner() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("alice", EMAIL, host.issuer()));
    let minted = host.login(|_| {});
    let auth_id = host.etc().join("auth_id");
    let system_policy = format!("fail  system policy {}: ", auth_id.display());

    std::fs::set_permissions(&auth_id, std::fs::Permissions::from_mode(0o644)).unwrap();
    let world_readable = host.explain("alice", &minted.cert_line);
    let step = world_readable.step(&system_policy);
    assert!(
        step.contains(
            "insecure permissions: expected one of the following permissions [640], got (644)"
        ),
        "{step}"
    );
    world_readable.step("skip  home policy: not used: ");
    world_readable.assert_denied_at("fail  error loading policy ", "error loading policy: ");

    std::fs::set_permissions(&auth_id, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&auth_id, Some(65534), None).unwrap();
    let foreign = host.explain("alice", &minted.cert_line);
    assert!(
        foreign
            .step(&system_policy)
            .contains("expected owner (root)"),
        "{foreign}"
    );
    foreign.assert_denied_at("fail  error loading policy ", "error loading policy: ");

    // The providers file: nothing can be verified without it.
    std::os::unix::fs::chown(&auth_id, Some(0), None).unwrap();
    let providers = host.etc().join("providers");
    std::fs::set_permissions(&providers, std::fs::Permissions::from_mode(0o666)).unwrap();
    let unusable = host.explain("alice", &minted.cert_line);
    unusable.assert_denied_at(
        &format!("fail  providers file {}: ", providers.display()),
        "failed to load providers: ",
    );
    assert!(!unusable.has_step("pass  certificate: "), "{unusable}");
}

#[test]
fn explain_plugin_deny() {
    if !gate() {
        return;
    }
    let host = Host::new();
    host.write("auth_id", &auth_id_row("bob", EMAIL, host.issuer()));
    let plugins = host.etc().join("policy.d");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o750)).unwrap();
    let script = host.etc().join("deny.sh");
    std::fs::write(&script, "#!/bin/sh\necho deny\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    host.write(
        "policy.d/deny.yml",
        &format!("name: deny\ncommand: {}\n", script.display()),
    );
    let minted = host.login(|_| {});
    let explained = host.explain("alice", &minted.cert_line);
    explained.step(&format!(
        "fail  policy plugin {}: answered \"deny\"",
        plugins.join("deny.yml").display()
    ));
    // The plugin runs after the rows found nothing; their reason stays the decision's.
    explained.assert_denied_at("fail  no matching policy ", "no policy to allow");
    let steps = explained.steps();
    assert!(
        steps.last().unwrap().starts_with("fail  policy plugin "),
        "{explained}"
    );

    // The same plugin answering allow lets alice in, and the trace names it.
    std::fs::write(&script, "#!/bin/sh\necho allow\n").unwrap();
    let allowed = host.explain("alice", &minted.cert_line);
    assert!(allowed.allowed(), "{allowed}");
    assert!(
        allowed.decision().ends_with(&format!(
            "[policy plugin: {}]",
            plugins.join("deny.yml").display()
        )),
        "{allowed}"
    );
}

/// The verify log carries the same steps, one debug line each, and names the deciding step in
/// its info line.
#[test]
fn verify_logs_the_same_trace_as_explain() {
    if !gate() {
        return;
    }
    let host = Host::new();
    let issuer = host.issuer().to_owned();
    host.write(
        "auth_id",
        &[
            auth_id_row("root", EMAIL, &issuer),
            auth_id_row("alice", "bob@example.com", &issuer),
        ]
        .concat(),
    );
    let minted = host.login(|_| {});
    // Warm the cache so both runs take their keys from it.
    let first = host.verify(&[], "alice", &minted.cert_line);
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let explained = host.explain("alice", &minted.cert_line);
    assert!(!explained.allowed());
    std::fs::remove_file(host.dir.path().join("opkssh.log")).unwrap();

    let denied = host.verify(&[], "alice", &minted.cert_line);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(denied.stdout.is_empty(), "{denied:?}");
    let log = host.log();
    let logged: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split_once(" trace[").map(|(_, rest)| rest))
        .map(|rest| rest.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(
        logged,
        explained.steps(),
        "log:\n{log}\nexplain:\n{explained}"
    );
    let reason = explained.decision().strip_prefix("deny: ").unwrap();
    assert!(
        log.lines().any(|line| line.contains(&format!(
            "deny principal=alice identity={EMAIL} issuer={issuer} reason: {reason} ("
        ))),
        "{log}"
    );
    // At the default level only the summary: no step lines.
    std::fs::remove_file(host.dir.path().join("opkssh.log")).unwrap();
    let (key_type, key_b64) = minted.type_and_base64();
    let quiet = host
        .command("verify")
        .arg("--log-file")
        .arg(host.dir.path().join("opkssh.log"))
        .args(["alice", key_b64, key_type])
        .output()
        .unwrap();
    assert_eq!(quiet.status.code(), Some(1));
    let log = host.log();
    assert!(!log.contains(" trace["), "{log}");
    assert!(log.contains(&format!("reason: {reason} (")), "{log}");
}
