//! The opkssh certificate and key files against the Go-made vectors, a hand-written parse of
//! the binary layout, and real OpenSSH (`ssh-keygen`). wire-format.md §6.

// clippy.toml allows these inside `#[test]` functions; the helpers below are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use opk_core::b64;
use opk_core::jws::SigningKey;
use opk_core::sshcert::{
    CertComment, CertError, CertificateRequest, OpksshCertificate, Principals, UserKeyFile,
    UserKeyType, build_certificate, generate_user_key, private_key_from_openssh,
    private_key_to_openssh,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const PERMITS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

// ---------------------------------------------------------------------------------------------
// Helpers

fn vectors_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/go-opkssh")
}

/// Every vector folder, accept and reject. Fails (never skips) if they are missing.
fn vector_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for expect in ["accept", "reject"] {
        let folder = vectors_root().join(expect);
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("vector folder {} missing: {error}", folder.display()));
        let before = dirs.len();
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
        assert!(dirs.len() > before, "no vectors in {}", folder.display());
    }
    dirs.sort();
    dirs
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|error| panic!("{}/{name}: {error}", dir.display()))
}

/// A temporary directory removed on drop (no tempfile dependency in opk-core).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let path = std::env::temp_dir().join(format!(
            "opk-sshcert-{tag}-{}-{}",
            std::process::id(),
            hex::encode(random)
        ));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.0.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// Runs ssh-keygen; a missing binary fails the test with a clear message.
fn ssh_keygen(args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(SSH_KEYGEN).exists(),
        "{SSH_KEYGEN} is missing: install openssh-client (these tests check real OpenSSH)"
    );
    Command::new(SSH_KEYGEN)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {SSH_KEYGEN}: {error}"))
}

fn build(
    key: &SigningKey,
    key_id: &str,
    principals: Principals,
    pk_token: &str,
    access_token: Option<&str>,
) -> OpksshCertificate {
    build_certificate(CertificateRequest {
        key,
        key_id,
        principals,
        pk_token,
        access_token,
    })
    .unwrap()
}

/// A stand-in PK token: the certificate code treats it as an opaque ASCII string.
fn fake_pk_token(len: usize) -> String {
    "eyJhbGciOiJSUzI1NiJ9.abc:".repeat(len / 25 + 1)[..len].to_owned()
}

// ---------------------------------------------------------------------------------------------
// A tiny, independent SSH wire reader for the layout checks (RFC 4251 §5).

struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.0.len() >= n,
            "truncated: want {n}, have {}",
            self.0.len()
        );
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> &'a [u8] {
        let n = usize::try_from(self.u32()).unwrap();
        self.take(n)
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

fn ssh_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// The top-level fields of a certificate blob, each as its raw encoding, so tests can take a
/// blob apart and put a modified one back together.
fn split_fields(blob: &[u8], ecdsa: bool) -> Vec<Vec<u8>> {
    let mut wire = Wire(blob);
    let mut fields = Vec::new();
    let string = |wire: &mut Wire| ssh_string(wire.string());
    fields.push(string(&mut wire)); // type
    fields.push(string(&mut wire)); // nonce
    if ecdsa {
        fields.push(string(&mut wire)); // curve
    }
    fields.push(string(&mut wire)); // Q or pk
    fields.push(wire.take(8).to_vec()); // serial
    fields.push(wire.take(4).to_vec()); // type
    for _ in 0..2 {
        fields.push(string(&mut wire)); // key id, principals
    }
    fields.push(wire.take(8).to_vec()); // valid after
    fields.push(wire.take(8).to_vec()); // valid before
    for _ in 0..5 {
        fields.push(string(&mut wire)); // critical, extensions, reserved, sig key, signature
    }
    assert!(wire.done());
    fields
}

/// Checks the full §6.2 layout of an opkssh certificate blob by hand and returns the
/// extension (name, unwrapped value) pairs in order.
fn check_layout(
    blob: &[u8],
    kind: UserKeyType,
    key_id: &str,
    principals: &[&str],
) -> Vec<(String, String)> {
    let mut wire = Wire(blob);
    assert_eq!(wire.string(), kind.cert_type_name().as_bytes());
    assert_eq!(wire.string().len(), 32, "nonce length");
    let subject_fields_start = blob.len() - wire.0.len();
    match kind {
        UserKeyType::Ecdsa => {
            assert_eq!(wire.string(), b"nistp256");
            let q = wire.string();
            assert_eq!(q.len(), 65);
            assert_eq!(q[0], 4, "uncompressed point");
        }
        UserKeyType::Ed25519 => assert_eq!(wire.string().len(), 32),
    }
    let subject_fields = &blob[subject_fields_start..blob.len() - wire.0.len()];
    assert_eq!(wire.u64(), 0, "serial");
    assert_eq!(wire.u32(), 1, "user certificate");
    assert_eq!(wire.string(), key_id.as_bytes());
    let mut inner = Wire(wire.string());
    for principal in principals {
        assert_eq!(inner.string(), principal.as_bytes());
    }
    assert!(inner.done(), "principals");
    assert_eq!(wire.u64(), 0, "valid after");
    assert_eq!(wire.u64(), 0xFFFF_FFFF_FFFF_FFFF, "valid before");
    assert_eq!(wire.string(), b"", "critical options");
    let mut extensions = Vec::new();
    let mut inner = Wire(wire.string());
    while !inner.done() {
        let name = String::from_utf8(inner.string().to_vec()).unwrap();
        let data = inner.string();
        let value = if name.starts_with("permit-") {
            assert_eq!(data, b"", "{name} has no value");
            String::new()
        } else {
            // Wrapped twice (§6.2): the data is one string and nothing else.
            let mut value = Wire(data);
            let text = String::from_utf8(value.string().to_vec()).unwrap();
            assert!(value.done(), "{name}: bytes after the wrapped value");
            text
        };
        extensions.push((name, value));
    }
    assert_eq!(wire.string(), b"", "reserved");
    let tbs_len = blob.len() - wire.0.len();
    let signature_key = wire.string();
    // The signature key blob is the subject key blob: string type ‖ the subject fields.
    let mut expected_key = ssh_string(kind.key_type_name().as_bytes());
    expected_key.extend_from_slice(subject_fields);
    assert_eq!(signature_key, expected_key, "self-signed");
    let mut signature = Wire(wire.string());
    assert!(wire.done(), "bytes after the signature");
    let tbs = &blob[..tbs_len + 4 + signature_key.len()];
    let algorithm = signature.string();
    let sig_blob = signature.string();
    assert!(signature.done());
    assert_eq!(algorithm, kind.key_type_name().as_bytes());
    match kind {
        UserKeyType::Ecdsa => {
            let mut mpints = Wire(sig_blob);
            let r = mpints.string();
            let s = mpints.string();
            assert!(mpints.done());
            let field = |m: &[u8]| {
                assert!(!m.is_empty() && m[0] & 0x80 == 0, "positive mpint");
                assert!(m[0] != 0 || m[1] & 0x80 != 0, "minimal mpint");
                let m = if m[0] == 0 { &m[1..] } else { m };
                let mut out = [0u8; 32];
                out[32 - m.len()..].copy_from_slice(m);
                out
            };
            let mut raw = field(r).to_vec();
            raw.extend_from_slice(&field(s));
            let signature = p256::ecdsa::Signature::from_slice(&raw).unwrap();
            let q = &subject_fields[4 + 8 + 4..];
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(q).unwrap();
            use p256::ecdsa::signature::Verifier as _;
            key.verify(tbs, &signature)
                .expect("ECDSA signature verifies");
        }
        UserKeyType::Ed25519 => {
            assert_eq!(sig_blob.len(), 64);
            let pk: [u8; 32] = subject_fields[4..].try_into().unwrap();
            let key = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
            let signature = ed25519_dalek::Signature::from_slice(sig_blob).unwrap();
            key.verify_strict(tbs, &signature)
                .expect("Ed25519 signature verifies");
        }
    }
    extensions
}

// ---------------------------------------------------------------------------------------------
// 1. Go-made vectors

#[test]
fn sshcert_go_vectors_parse_and_round_trip() {
    let dirs = vector_dirs();
    assert!(
        dirs.len() >= 30,
        "expected the full vector set, found {}",
        dirs.len()
    );
    let total = dirs.len();
    let mut go_made_keys = 0;
    for dir in dirs {
        let name = dir.display().to_string();
        let meta: serde_json::Value = serde_json::from_str(&read(&dir, "meta.json")).unwrap();
        let line = read(&dir, "cert.pub");
        let cert = OpksshCertificate::from_line(&line).unwrap_or_else(|e| panic!("{name}: {e}"));

        let kind = match meta["key_type"].as_str() {
            Some("ecdsa") => UserKeyType::Ecdsa,
            Some("ed25519") => UserKeyType::Ed25519,
            other => panic!("{name}: key_type {other:?}"),
        };
        assert_eq!(cert.key_type(), kind, "{name}");
        assert_eq!(
            Some(cert.cert_type_name()),
            meta["cert_type"].as_str(),
            "{name}"
        );
        assert_eq!(Some(cert.key_id()), meta["email"].as_str(), "{name}");
        let principals: Vec<&str> = meta["principals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(cert.principals(), principals.as_slice(), "{name}");
        assert_eq!(cert.serial(), 0, "{name}");
        assert_eq!(cert.valid_after(), 0, "{name}");
        assert_eq!(cert.valid_before(), u64::MAX, "{name}");
        assert_eq!(
            cert.cert_type(),
            ssh_key::certificate::CertType::User,
            "{name}"
        );
        assert_eq!(cert.nonce().len(), 32, "{name}");
        assert!(cert.inner().critical_options().is_empty(), "{name}");
        assert_eq!(cert.comment(), "", "{name}");

        let mut expected: Vec<&str> = Vec::new();
        if cert.access_token().is_some() {
            expected.push("openpubkey-act");
        }
        expected.push("openpubkey-pkt");
        expected.extend(PERMITS);
        assert_eq!(
            cert.extension_names().collect::<Vec<_>>(),
            expected,
            "{name}"
        );
        for permit in PERMITS {
            assert_eq!(cert.extension(permit), Some(""), "{name}");
        }
        assert_eq!(
            cert.access_token().is_some(),
            name.ends_with("rs256-access-token"),
            "{name}"
        );

        let pk_token = read(&dir, "pktoken.compact");
        let pk_token = pk_token.strip_suffix('\n').unwrap_or(&pk_token);
        assert_eq!(cert.pk_token(), Ok(pk_token), "{name}");

        assert_eq!(cert.verify_self_signature(), Ok(()), "{name}");
        assert_eq!(
            cert.to_line(CertComment::None),
            line,
            "{name}: byte for byte"
        );
        let reparsed = OpksshCertificate::from_line(&cert.to_line(CertComment::None)).unwrap();
        assert_eq!(reparsed, cert, "{name}");
        let key_blob = ssh_key::encoding::Encode::encode_vec(cert.inner().public_key()).unwrap();
        assert_eq!(
            cert.signature_key_line(),
            format!("{} {}", kind.key_type_name(), b64::encode_std(key_blob)),
            "{name}"
        );
        check_layout(cert.as_bytes(), kind, cert.key_id(), &principals);

        let id_key = read(&dir, "id_key");
        let file = UserKeyFile::from_openssh(&id_key).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&file.key().public_key(), cert.subject_key(), "{name}");
        assert!(cert.matches_upk(&file.key().public_key()), "{name}");
        if name.ends_with("-cert-key-not-upk") {
            // These two keys were written by the vector tooling, not by Go: 76-column PEM,
            // an empty comment and, for the P-256 one, a whole 8-byte padding block where Go
            // adds none. We read them; re-encoding gives Go's form, not theirs.
            assert_eq!(file.comment(), b"", "{name}");
            assert!(
                id_key.lines().nth(1).is_some_and(|line| line.len() == 76),
                "{name}"
            );
            let ours = file.to_openssh().unwrap();
            assert_ne!(*ours, id_key, "{name}");
            let again = UserKeyFile::from_openssh(&ours).unwrap();
            assert_eq!(again.key().public_key(), file.key().public_key(), "{name}");
        } else {
            assert_eq!(file.comment(), b"openpubkey cert", "{name}");
            assert_eq!(
                *file.to_openssh().unwrap(),
                id_key,
                "{name}: id_key byte for byte"
            );
            go_made_keys += 1;
        }
        let key = private_key_from_openssh(&id_key).unwrap();
        assert_eq!(UserKeyType::of(&key), Ok(kind), "{name}");
    }
    assert_eq!(go_made_keys, total - 2);
}

/// The `cert-key-not-upk` reject vectors differ from the accept ones only in the PK token; at
/// this layer the certificate of another user's key must not match our key.
#[test]
fn sshcert_matches_upk_tells_keys_apart() {
    let root = vectors_root();
    let alice =
        OpksshCertificate::from_line(&read(&root.join("accept/rs256-ecdsa"), "cert.pub")).unwrap();
    let bob = OpksshCertificate::from_line(&read(&root.join("accept/rs256-ed25519"), "cert.pub"))
        .unwrap();
    let carol =
        OpksshCertificate::from_line(&read(&root.join("accept/es256-ecdsa"), "cert.pub")).unwrap();
    assert!(alice.matches_upk(alice.subject_key()));
    assert!(!alice.matches_upk(bob.subject_key()));
    assert!(!alice.matches_upk(carol.subject_key()));
    assert!(!bob.matches_upk(carol.subject_key()));
}

// ---------------------------------------------------------------------------------------------
// 2. Byte layout of certificates we build

#[test]
fn sshcert_built_layout_is_byte_exact() {
    let pk_token = fake_pk_token(6400);
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        let key = generate_user_key(kind).unwrap();
        for access_token in [None, Some("at-0123456789abcdef")] {
            for (principals, expected_principals) in [
                (Principals::Default, vec!["opkssh-wildcard"]),
                (
                    Principals::List(vec!["root".into(), "alice".into()]),
                    vec!["root", "alice"],
                ),
                (Principals::List(Vec::new()), vec![]),
            ] {
                let cert = build(
                    &key,
                    "Alice@Example.com",
                    principals,
                    &pk_token,
                    access_token,
                );
                let extensions = check_layout(
                    cert.as_bytes(),
                    kind,
                    "Alice@Example.com",
                    &expected_principals,
                );
                let mut expected = Vec::new();
                if let Some(token) = access_token {
                    expected.push(("openpubkey-act".to_owned(), token.to_owned()));
                }
                expected.push(("openpubkey-pkt".to_owned(), pk_token.clone()));
                expected.extend(PERMITS.map(|name| (name.to_owned(), String::new())));
                assert_eq!(extensions, expected);

                assert_eq!(cert.pk_token(), Ok(pk_token.as_str()));
                assert_eq!(cert.access_token(), access_token);
                assert_eq!(cert.verify_self_signature(), Ok(()));
                assert!(cert.matches_upk(&key.public_key()));
                assert_eq!(cert.subject_key(), &key.public_key());

                // The three line shapes of §6.3, and each parses back to the same certificate.
                let b64 = b64::encode_std(cert.as_bytes());
                let type_name = kind.cert_type_name();
                let bare = cert.to_line(CertComment::None);
                assert_eq!(bare, format!("{type_name} {b64}\n"));
                let default = cert.to_line(CertComment::Default);
                assert_eq!(default, format!("{type_name} {b64} openpubkey"));
                let identity = cert.to_line(CertComment::IdentityDir {
                    issuer: "https://accounts.google.com",
                    audience: "206584157355-7cbe4s640tvm7naoludob4ut1emii7sf",
                });
                assert_eq!(
                    identity,
                    format!(
                        "{type_name} {b64}  openpubkey: https://accounts.google.com \
                         206584157355-7cbe4s640tvm7naoludob4ut1emii7sf"
                    )
                );
                for (line, comment) in [
                    (&bare, ""),
                    (&default, "openpubkey"),
                    (
                        &identity,
                        "openpubkey: https://accounts.google.com \
                         206584157355-7cbe4s640tvm7naoludob4ut1emii7sf",
                    ),
                ] {
                    let parsed = OpksshCertificate::from_line(line).unwrap();
                    assert_eq!(parsed.as_bytes(), cert.as_bytes());
                    assert_eq!(parsed.comment(), comment);
                }
                let (t, k) = bare.trim_end().split_once(' ').unwrap();
                let from_sshd = OpksshCertificate::from_type_and_base64(t, k).unwrap();
                assert_eq!(from_sshd, cert);
            }
        }
    }
}

#[test]
fn sshcert_nonces_are_fresh_and_key_ids_may_be_empty() {
    let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
    let a = build(&key, "", Principals::Default, "pkt", None);
    let b = build(&key, "", Principals::Default, "pkt", None);
    assert_ne!(a.nonce(), b.nonce());
    assert_eq!(a.key_id(), "");
    check_layout(a.as_bytes(), UserKeyType::Ecdsa, "", &["opkssh-wildcard"]);
}

#[test]
fn sshcert_rsa_keys_cannot_sign_certificates() {
    let rsa = rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 1024).unwrap();
    let key = SigningKey::Rsa(Box::new(rsa));
    let result = build_certificate(CertificateRequest {
        key: &key,
        key_id: "a@b",
        principals: Principals::Default,
        pk_token: "pkt",
        access_token: None,
    });
    assert_eq!(result.err(), Some(CertError::UnsupportedKey("RSA")));
    assert_eq!(
        private_key_to_openssh(&key).err(),
        Some(CertError::UnsupportedKey("RSA"))
    );
}

#[test]
fn sshcert_debug_output_has_no_secrets() {
    let key = generate_user_key(UserKeyType::Ed25519).unwrap();
    let request = CertificateRequest {
        key: &key,
        key_id: "a@b",
        principals: Principals::Default,
        pk_token: "pkt",
        access_token: Some("SECRET-ACCESS-TOKEN"),
    };
    assert!(!format!("{request:?}").contains("SECRET"));
    let cert = build_certificate(request).unwrap();
    let debug = format!("{cert:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("openpubkey-act"), "{debug}");
}

// ---------------------------------------------------------------------------------------------
// 3. Real OpenSSH

#[test]
fn sshcert_ssh_keygen_lists_our_certificates_and_reads_our_keys() {
    let dir = TempDir::new("keygen");
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        let key = generate_user_key(kind).unwrap();
        let cert = build(
            &key,
            "alice@example.com",
            Principals::List(vec!["alice".into(), "root".into()]),
            &fake_pk_token(6400),
            Some("at-123"),
        );
        let flag = kind.flag_name();
        let cert_path = dir.write(
            &format!("{flag}-cert.pub"),
            &cert.to_line(CertComment::Default),
            0o644,
        );
        let listed = ssh_keygen(&["-L", "-f", cert_path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success(),
            "ssh-keygen -L failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
        for needle in [
            format!("Type: {} user certificate", kind.cert_type_name()),
            "Key ID: \"alice@example.com\"".to_owned(),
            "Serial: 0".to_owned(),
            "Valid: forever".to_owned(),
            "Critical Options: (none)".to_owned(),
            "openpubkey-act".to_owned(),
            "openpubkey-pkt".to_owned(),
        ]
        .into_iter()
        .chain(PERMITS.map(str::to_owned))
        {
            assert!(stdout.contains(&needle), "missing {needle:?} in:\n{stdout}");
        }
        assert!(
            stdout.contains("Principals: \n                alice\n                root"),
            "{stdout}"
        );

        let file = UserKeyFile::new(key.clone()).unwrap();
        let key_path = dir.write(flag, &file.to_openssh().unwrap(), 0o600);
        let public = ssh_keygen(&["-y", "-f", key_path.to_str().unwrap()]);
        assert!(
            public.status.success(),
            "ssh-keygen -y failed: {}",
            String::from_utf8_lossy(&public.stderr)
        );
        let public = String::from_utf8(public.stdout).unwrap();
        // ssh-keygen -y prints "<type> <base64> <comment>\n".
        let mut fields = public.split_whitespace();
        let printed = format!("{} {}", fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(fields.collect::<Vec<_>>(), ["openpubkey", "cert"]);
        // Self-signed: the signature key line is the subject key line.
        assert_eq!(printed, cert.signature_key_line());
        assert_eq!(cert.verify_self_signature(), Ok(()));
    }
}

/// Keys and certificates made by OpenSSH itself: read the keys (70-column PEM, OpenSSH's own
/// comment), refuse encrypted and RSA keys, and parse an ssh-keygen CA-signed certificate,
/// which is not self-signed and carries no PK token.
#[test]
fn sshcert_reads_what_ssh_keygen_writes() {
    let dir = TempDir::new("openssh");
    for (kind, flag) in [
        (UserKeyType::Ecdsa, "ecdsa"),
        (UserKeyType::Ed25519, "ed25519"),
    ] {
        let path = dir.0.join(format!("user_{flag}"));
        let made = ssh_keygen(&[
            "-q",
            "-t",
            flag,
            "-N",
            "",
            "-C",
            "user@host",
            "-f",
            path.to_str().unwrap(),
        ]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let file = UserKeyFile::from_openssh(&text).unwrap();
        assert_eq!(file.comment(), b"user@host");
        assert_eq!(UserKeyType::of(file.key()), Ok(kind));
        // Same binary as OpenSSH's (check integers and comment kept); only the line width
        // differs, 64 columns (Go) instead of 70 (OpenSSH).
        let ours = file.to_openssh().unwrap();
        let strip = |text: &str| -> String {
            text.lines()
                .filter(|line| !line.starts_with("-----"))
                .collect()
        };
        assert_eq!(strip(&ours), strip(&text));
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let mut fields = public.split_whitespace();
        let public_line = format!("{} {}", fields.next().unwrap(), fields.next().unwrap());

        // An ssh-keygen-made certificate signed by a separate CA key.
        let ca = dir.0.join(format!("ca_{flag}"));
        let made = ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", ca.to_str().unwrap()]);
        assert!(made.status.success());
        let signed = ssh_keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "someone",
            "-n",
            "alice",
            path.with_extension("pub").to_str().unwrap(),
        ]);
        assert!(
            signed.status.success(),
            "{}",
            String::from_utf8_lossy(&signed.stderr)
        );
        let cert_text =
            std::fs::read_to_string(dir.0.join(format!("user_{flag}-cert.pub"))).unwrap();
        let cert = OpksshCertificate::from_line(&cert_text).unwrap();
        assert_eq!(cert.key_id(), "someone");
        assert_eq!(cert.principals(), ["alice"]);
        assert_eq!(cert.comment(), "user@host");
        assert_eq!(cert.pk_token(), Err(CertError::MissingPkToken));
        assert_eq!(cert.verify_self_signature(), Err(CertError::NotSelfSigned));
        assert!(cert.matches_upk(&file.key().public_key()));
        let ca_public = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
        let mut fields = ca_public.split_whitespace();
        let ca_line = format!("{} {}", fields.next().unwrap(), fields.next().unwrap());
        assert_eq!(cert.signature_key_line(), ca_line);
        assert_ne!(cert.signature_key_line(), public_line);
    }

    let encrypted = dir.0.join("encrypted");
    let made = ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "hunter42",
        "-f",
        encrypted.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let text = std::fs::read_to_string(&encrypted).unwrap();
    assert_eq!(
        private_key_from_openssh(&text).err(),
        Some(CertError::EncryptedKey {
            cipher: "aes256-ctr".into()
        })
    );

    let rsa = dir.0.join("rsa");
    let made = ssh_keygen(&[
        "-q",
        "-t",
        "rsa",
        "-b",
        "1024",
        "-N",
        "",
        "-f",
        rsa.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let text = std::fs::read_to_string(&rsa).unwrap();
    assert_eq!(
        private_key_from_openssh(&text).err(),
        Some(CertError::UnsupportedKeyType("ssh-rsa".into()))
    );

    // An RSA user certificate: refused by its type word, and by its blob under a wrong word.
    let ca = dir.0.join("ca_rsa");
    assert!(
        ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", ca.to_str().unwrap()])
            .status
            .success()
    );
    let signed = ssh_keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "rsa-user",
        rsa.with_extension("pub").to_str().unwrap(),
    ]);
    assert!(signed.status.success());
    let line = std::fs::read_to_string(dir.0.join("rsa-cert.pub")).unwrap();
    assert_eq!(
        OpksshCertificate::from_line(&line).err(),
        Some(CertError::UnsupportedCertType(
            "ssh-rsa-cert-v01@openssh.com".into()
        ))
    );
    let (_, rest) = line.split_once(' ').unwrap();
    let b64 = rest.split(' ').next().unwrap();
    assert_eq!(
        OpksshCertificate::from_type_and_base64("ssh-ed25519-cert-v01@openssh.com", b64).err(),
        Some(CertError::TypeMismatch {
            word: "ssh-ed25519-cert-v01@openssh.com".into(),
            blob: "ssh-rsa-cert-v01@openssh.com".into(),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Garbage and mutations: errors, never panics

fn go_cert(name: &str) -> OpksshCertificate {
    OpksshCertificate::from_line(&read(&vectors_root().join(name), "cert.pub")).unwrap()
}

fn parse_blob(kind: UserKeyType, blob: &[u8]) -> Result<OpksshCertificate, CertError> {
    OpksshCertificate::from_type_and_base64(kind.cert_type_name(), &b64::encode_std(blob))
}

#[test]
fn sshcert_malformed_lines_are_errors() {
    let cert = go_cert("accept/rs256-ed25519");
    let type_name = cert.cert_type_name();
    let b64 = b64::encode_std(cert.as_bytes());
    let other_type = "ecdsa-sha2-nistp256-cert-v01@openssh.com";

    let cases: Vec<(String, CertError)> = vec![
        (
            String::new(),
            CertError::MalformedLine("no space after the type"),
        ),
        (
            "\n".into(),
            CertError::MalformedLine("no space after the type"),
        ),
        (
            type_name.into(),
            CertError::MalformedLine("no space after the type"),
        ),
        (
            format!("{type_name} "),
            CertError::MalformedLine("empty base64 field"),
        ),
        (
            format!("{type_name}  openpubkey"),
            CertError::MalformedLine("empty base64 field"),
        ),
        (
            format!(" {type_name} {b64}"),
            CertError::UnsupportedCertType(String::new()),
        ),
        (
            format!("{type_name}\t{b64}"),
            CertError::MalformedLine("no space after the type"),
        ),
        (
            format!("{type_name} {b64}\n\n"),
            CertError::MalformedLine("more than one line"),
        ),
        (
            format!("{type_name} {b64}\nx"),
            CertError::MalformedLine("more than one line"),
        ),
        (
            format!("{type_name} {b64}\r"),
            CertError::MalformedLine("more than one line"),
        ),
        (
            format!("{other_type} {b64}"),
            CertError::TypeMismatch {
                word: other_type.into(),
                blob: type_name.into(),
            },
        ),
        (
            format!("{} {b64}", type_name.to_uppercase()),
            CertError::UnsupportedCertType(type_name.to_uppercase()),
        ),
        (
            // A plain public key line, as sshd's %t %k for a non-certificate key.
            cert.signature_key_line(),
            CertError::UnsupportedCertType("ssh-ed25519".into()),
        ),
        (
            format!("{type_name} {}", b64.trim_end_matches('=')),
            CertError::NotBase64(b64::decode_std(b64.trim_end_matches('=')).unwrap_err()),
        ),
        (
            format!("{type_name} {}", b64.replace('A', "-")),
            CertError::NotBase64(b64::decode_std(&b64.replace('A', "-")).unwrap_err()),
        ),
        (
            format!("{type_name} AAAA"),
            CertError::MalformedLine("blob too short for a type name"),
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(
            OpksshCertificate::from_line(&line).err(),
            Some(expected),
            "{}",
            &line[..line.len().min(80)]
        );
    }

    // Accepted shapes: CRLF, comment, two-space comment, comment with spaces.
    for line in [
        format!("{type_name} {b64}\r\n"),
        format!("{type_name} {b64}"),
        format!("{type_name} {b64} openpubkey"),
        format!("{type_name} {b64}  openpubkey: https://issuer aud"),
        format!("{type_name} {b64} a b  c\n"),
    ] {
        let parsed = OpksshCertificate::from_line(&line).unwrap();
        assert_eq!(parsed.as_bytes(), cert.as_bytes());
    }
}

#[test]
fn sshcert_oversized_input_is_refused_before_decoding() {
    let type_name = "ssh-ed25519-cert-v01@openssh.com";
    // Not base64 at all: the size check must come first.
    let huge = "!".repeat(opk_core::sshcert::MAX_CERT_LINE_LEN);
    let line = format!("{type_name} {huge}");
    assert_eq!(
        OpksshCertificate::from_line(&line).err(),
        Some(CertError::TooLarge {
            len: line.len(),
            max: opk_core::sshcert::MAX_CERT_LINE_LEN
        })
    );
    assert!(matches!(
        OpksshCertificate::from_type_and_base64(type_name, &huge),
        Err(CertError::TooLarge { .. })
    ));
    // A large but legal certificate (a 200 KiB PK token) is fine.
    let key = generate_user_key(UserKeyType::Ed25519).unwrap();
    let big = build(
        &key,
        "a@b",
        Principals::Default,
        &fake_pk_token(150 * 1024),
        None,
    );
    let line = big.to_line(CertComment::None);
    assert!(line.len() > 200 * 1024 && line.len() < opk_core::sshcert::MAX_CERT_LINE_LEN);
    assert_eq!(OpksshCertificate::from_line(&line).unwrap(), big);
}

#[test]
fn sshcert_structural_defects_are_errors() {
    for (vector, kind) in [
        ("accept/rs256-ecdsa", UserKeyType::Ecdsa),
        ("accept/rs256-gq-ed25519", UserKeyType::Ed25519),
    ] {
        let cert = go_cert(vector);
        let blob = cert.as_bytes();
        let ecdsa = kind == UserKeyType::Ecdsa;
        let fields = split_fields(blob, ecdsa);
        let join = |fields: &[Vec<u8>]| fields.concat();
        assert_eq!(join(&fields), blob);
        let ext_index = fields.len() - 4;
        let extensions = Wire(&fields[ext_index]).string().to_vec();

        // Trailing bytes after the signature.
        let mut trailing = blob.to_vec();
        trailing.push(0);
        assert!(matches!(
            parse_blob(kind, &trailing),
            Err(CertError::Decode(_))
        ));

        // Every truncation.
        for len in 0..blob.len() {
            assert!(
                parse_blob(kind, &blob[..len]).is_err(),
                "{vector} cut at {len}"
            );
        }

        // Bytes left over inside the wrapped pkt value: Go refuses these.
        let mut inner = Wire(&extensions);
        let mut rebuilt = Vec::new();
        while !inner.done() {
            let name = inner.string();
            let data = inner.string();
            rebuilt.extend(ssh_string(name));
            if name == b"openpubkey-pkt" {
                let mut padded = data.to_vec();
                padded.extend_from_slice(b"JUNK");
                rebuilt.extend(ssh_string(&padded));
            } else {
                rebuilt.extend(ssh_string(data));
            }
        }
        let mut modified = fields.clone();
        modified[ext_index] = ssh_string(&rebuilt);
        assert_eq!(
            parse_blob(kind, &join(&modified)).err(),
            Some(CertError::NonCanonical)
        );

        // A permit flag written as a wrapped empty string: canonical Go writes it empty.
        let wrapped_empty = extensions
            .windows(b"permit-pty\0\0\0\0".len())
            .position(|w| w == b"permit-pty\0\0\0\0")
            .unwrap();
        let mut odd = extensions.clone();
        odd.splice(
            wrapped_empty + 10..wrapped_empty + 14,
            [0, 0, 0, 4, 0, 0, 0, 0],
        );
        let mut modified = fields.clone();
        modified[ext_index] = ssh_string(&odd);
        assert_eq!(
            parse_blob(kind, &join(&modified)).err(),
            Some(CertError::NonCanonical)
        );

        // Non-UTF-8 extension data.
        let pkt_at = extensions
            .windows(b"openpubkey-pkt".len())
            .position(|w| w == b"openpubkey-pkt")
            .unwrap();
        let mut bad = extensions.clone();
        bad[pkt_at + 14 + 8 + 5] = 0xff;
        let mut modified = fields.clone();
        modified[ext_index] = ssh_string(&bad);
        assert!(matches!(
            parse_blob(kind, &join(&modified)),
            Err(CertError::Decode(_))
        ));

        // Extensions out of order.
        let mut entries = Vec::new();
        let mut inner = Wire(&extensions);
        while !inner.done() {
            let mut entry = ssh_string(inner.string());
            entry.extend(ssh_string(inner.string()));
            entries.push(entry);
        }
        entries.swap(0, 1);
        let mut modified = fields.clone();
        modified[ext_index] = ssh_string(&entries.concat());
        assert!(matches!(
            parse_blob(kind, &join(&modified)),
            Err(CertError::Decode(_))
        ));

        // No pkt at all: parses, but has no PK token.
        let mut modified = fields.clone();
        let without: Vec<u8> = entries
            .iter()
            .filter(|entry| !entry.windows(14).any(|w| w == b"openpubkey-pkt"))
            .flatten()
            .copied()
            .collect();
        modified[ext_index] = ssh_string(&without);
        let parsed = parse_blob(kind, &join(&modified)).unwrap();
        assert_eq!(parsed.pk_token(), Err(CertError::MissingPkToken));
        assert_eq!(parsed.verify_self_signature(), Err(CertError::BadSignature));

        // Another key as the signature key: not self-signed.
        let other = generate_user_key(kind).unwrap();
        let other_cert = build(&other, "x", Principals::Default, "pkt", None);
        let other_fields = split_fields(other_cert.as_bytes(), ecdsa);
        let mut modified = fields.clone();
        let sig_key = fields.len() - 2;
        modified[sig_key] = other_fields[sig_key].clone();
        let parsed = parse_blob(kind, &join(&modified)).unwrap();
        assert_eq!(
            parsed.verify_self_signature(),
            Err(CertError::NotSelfSigned)
        );
        // And the other certificate's signature in ours: bad signature.
        let mut modified = fields.clone();
        let sig = fields.len() - 1;
        modified[sig] = other_fields[sig].clone();
        let parsed = parse_blob(kind, &join(&modified)).unwrap();
        assert_eq!(parsed.verify_self_signature(), Err(CertError::BadSignature));

        // Invalid subject key.
        let mut modified = fields.clone();
        let subject = if ecdsa { 3 } else { 2 };
        let mut key = Wire(&fields[subject]).string().to_vec();
        if ecdsa {
            key[64] ^= 1; // off the curve
        } else {
            // The first 32-byte string that is not an Ed25519 point.
            key = (0u8..=255)
                .map(|byte| [byte; 32])
                .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
                .unwrap()
                .to_vec();
        }
        modified[subject] = ssh_string(&key);
        assert!(matches!(
            parse_blob(kind, &join(&modified)),
            Err(CertError::InvalidSubjectKey(_))
        ));
    }
}

/// Flip every bit of a Go certificate: each result is an error, or parses and then fails the
/// self-signature check. Nothing panics.
#[test]
fn sshcert_bit_flips_never_verify() {
    for (vector, kind) in [
        ("accept/es256-ecdsa", UserKeyType::Ecdsa),
        ("accept/es256-ed25519", UserKeyType::Ed25519),
    ] {
        let blob = go_cert(vector).as_bytes().to_vec();
        for index in 0..blob.len() {
            for bit in [0x01u8, 0x80] {
                let mut mutated = blob.clone();
                mutated[index] ^= bit;
                if let Ok(cert) = parse_blob(kind, &mutated) {
                    assert!(
                        cert.verify_self_signature().is_err(),
                        "{vector}: flip {bit:#x} at {index} still verifies"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Private keys

#[test]
fn sshcert_private_keys_round_trip() {
    for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
        for _ in 0..8 {
            let key = generate_user_key(kind).unwrap();
            let text = private_key_to_openssh(&key).unwrap();
            let back = private_key_from_openssh(&text).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let file = UserKeyFile::from_openssh(&text).unwrap();
            assert_eq!(file.to_openssh().unwrap(), text);
            // A key read back signs certificates the original's public key matches.
            let cert = build(&back, "a@b", Principals::Default, "pkt", None);
            assert!(cert.matches_upk(&key.public_key()));
        }
    }
}
