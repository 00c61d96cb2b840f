//! `opkssh demo`: one complete OpenPubkey SSH login on this machine, all on loopback, with
//! every step printed. An OpenID provider starts in this process (fresh RS256 key, one demo
//! user); the real `login` flow runs against it with the browser step answered by an HTTP
//! client; the key and certificate are written; `opkssh verify` decides against a temporary
//! policy and prints the `cert-authority` line sshd would get. With `--sshd` a loopback sshd
//! whose AuthorizedKeysCommand is this binary's `verify` lets `ssh … true` in.
//!
//! How verify runs: as root, the demo writes the temporary `providers` and `auth_id` as
//! verify requires them (root-owned, 0640) and runs this binary's `opkssh verify` as a child,
//! exactly the command sshd runs. As another user those ownership checks cannot pass for
//! files the user writes, so the demo calls the same pipeline and policy functions in process
//! on the same file contents, and says so.

use crate::error::CliError;
use opk_client::demo_op::{DemoOp, DemoUser};
use opk_client::files::write_atomic;
use opk_client::login::{self, BrowserProvider};
use opk_client::placement::{self, Destination};
use opk_client::{audience_string, identity_string};
use opk_core::sshcert::{
    CertComment, CertificateRequest, OpksshCertificate, Principals, UserKeyType, build_certificate,
    generate_user_key, private_key_to_openssh,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod sshd;

const CLIENT_ID: &str = "opkssh-demo";

/// `opkssh demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Also write the key, certificate and the issuer's documents here, in the layout of the
    /// interop vectors (cert.pub, id_key, jwks.json, openid-configuration.json, issuer.txt,
    /// client_id.txt, meta.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Port of the demo OpenID provider on 127.0.0.1 (default: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub(crate) issuer_port: u16,
    /// ecdsa or ed25519.
    #[arg(short = 't', long, value_name = "TYPE", default_value = "ecdsa", value_parser = parse_key_type)]
    pub(crate) key_type: UserKeyType,
    /// The account the temporary policy lets the demo user into (default: the current user).
    #[arg(long, value_name = "USER")]
    pub(crate) principal: Option<String>,
    /// Also start a loopback sshd with `opkssh verify` as its AuthorizedKeysCommand and run
    /// `ssh … true` (needs root and OpenSSH).
    #[arg(long)]
    pub(crate) sshd: bool,
}

fn parse_key_type(value: &str) -> Result<UserKeyType, String> {
    match value.to_ascii_lowercase().as_str() {
        "ecdsa" => Ok(UserKeyType::Ecdsa),
        "ed25519" => Ok(UserKeyType::Ed25519),
        other => Err(format!(
            "unsupported key type {other}; use ecdsa or ed25519"
        )),
    }
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

/// A private working folder, removed at the end.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> Result<Self, CliError> {
        let mut random = [0_u8; 6];
        rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut random);
        let path = std::env::temp_dir().join(format!("opkssh-demo-{}", hex::encode(random)));
        opk_os::file::dir_builder(0o700)
            .create(&path)
            .map_err(|error| fail(format!("creating {}: {error}", path.display())))?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The browser step, answered by an HTTP client: follow redirects (loopback only) from the
/// local `/login` through the OP's authorization endpoint back to the callback.
fn answer_browser(url: &str) -> Result<String, String> {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut url = url.to_owned();
    for _ in 0..10 {
        let loopback = ["http://localhost:", "http://127.0.0.1:", "http://[::1]:"]
            .iter()
            .any(|prefix| url.starts_with(prefix));
        if !loopback {
            return Err(format!("refusing to follow a non-loopback URL: {url}"));
        }
        let mut response = agent.get(&url).call().map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            url = response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .ok_or("redirect without Location")?
                .to_owned();
            continue;
        }
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|error| error.to_string())?;
        return if status == 200 {
            Ok(url)
        } else {
            Err(format!("HTTP {status} at {url}: {body}"))
        };
    }
    Err("too many redirects".into())
}

fn current_user() -> String {
    opk_os::account::real_uid()
        .and_then(opk_os::account::user_name)
        .unwrap_or_else(|| "demo".to_owned())
}

fn short(text: &str, keep: usize) -> String {
    match text.get(..keep) {
        Some(head) if text.len() > keep => format!("{head}… ({} chars)", text.len()),
        _ => text.to_owned(),
    }
}

pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode, CliError> {
    if let Some(principal) = &args.principal
        && !policy::is_safe_principal(principal)
    {
        return Err(fail(format!(
            "--principal {principal:?} is not a valid account name"
        )));
    }
    println!("opkssh demo: one complete OpenPubkey SSH login on this machine, all on loopback.");
    println!();
    let user = DemoUser::default();
    let op = DemoOp::start(args.issuer_port, CLIENT_ID, user.clone()).map_err(fail)?;
    let issuer = op.issuer().to_owned();
    println!("1. OpenID provider started in this process at {issuer}");
    println!(
        "   signs ID tokens with {} (a fresh 2048-bit RSA key); user {} (sub {}); client ID {CLIENT_ID}",
        op.algorithm(),
        user.email,
        user.subject
    );

    let key = generate_user_key(args.key_type).map_err(fail)?;
    println!(
        "2. Fresh user key: {} ({}), made for this login only",
        args.key_type.key_type_name(),
        args.key_type.flag_name()
    );

    let provider = BrowserProvider {
        issuer: issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
        scopes: "openid profile email".into(),
        prompt: "consent".into(),
        access_type: "offline".into(),
        redirect_uris: vec!["http://localhost:0/login-callback".into()],
        remote_redirect_uri: None,
    };
    let http = opk_client::http_client_from_env();
    let mut browser: Option<std::thread::JoinHandle<Result<String, String>>> = None;
    let mut opener = |url: &str| {
        println!("3. Browser step: {url} (answered by an HTTP client instead of a person)");
        let url = url.to_owned();
        browser = Some(std::thread::spawn(move || answer_browser(&url)));
    };
    let session = login::login(&provider, key, &http, &mut opener, Duration::from_secs(60))
        .map_err(|error| fail(format!("demo login failed: {error}")))?;
    if let Some(handle) = browser {
        let landed = handle
            .join()
            .map_err(|_| fail("the demo browser thread panicked"))?
            .map_err(|error| fail(format!("demo browser: {error}")))?;
        // The callback URL carries the (now spent) code: show only its path.
        let page = landed.split('?').next().unwrap_or_default();
        println!(
            "   the OP consented and sent the browser to {page}: \"You may now close this window\""
        );
    }
    let claims = session.pk_token.claims();
    println!(
        "   authorization code + PKCE (S256) + state; nonce = commitment to the user key: {}",
        claims.nonce().unwrap_or_default()
    );
    println!(
        "   ID token checked before use: {} signature, issuer, audience {}, nonce, expiry",
        op.algorithm(),
        audience_string(claims)
    );
    for line in identity_string(claims).lines() {
        println!("   {line}");
    }

    let compact = session.pk_token.to_compact();
    let certificate = build_certificate(CertificateRequest {
        key: &session.key,
        key_id: claims.email().unwrap_or_default(),
        principals: Principals::Default,
        pk_token: &compact,
        access_token: None,
    })
    .map_err(fail)?;
    println!(
        "4. PK token: {} bytes (the ID token with the OP's signature and a CIC signature by the \
         user key), verified locally",
        compact.len()
    );
    println!(
        "   certificate: {}, key ID {}, principals {}, self-signed by the user key",
        certificate.cert_type_name(),
        certificate.key_id(),
        certificate.principals().join(",")
    );

    let work = WorkDir::create()?;
    let key_path = work.0.join(placement::default_names(args.key_type)[0]);
    let cert_path = placement::write(
        &Destination::Explicit(key_path.clone()),
        &session.key,
        &certificate,
        &issuer,
        CLIENT_ID,
    )
    .map_err(fail)?
    .certificate;
    println!(
        "   wrote {} (0600) and {} (0644)",
        key_path.display(),
        cert_path.display()
    );
    if let Some(out) = &args.out {
        write_out(
            out,
            &op,
            &session.key,
            &certificate,
            &session.pk_token,
            args,
        )?;
        println!("   and the vector layout in {}", out.display());
    }

    let principal = args.principal.clone().unwrap_or_else(current_user);
    let policy_dir = work.0.join("etc-opk");
    let providers_row = format!("{issuer} {CLIENT_ID} oidc\n");
    let auth_id_row = format!("{principal} {} {issuer}\n", user.email);
    std::fs::create_dir(&policy_dir).map_err(|error| fail(error.to_string()))?;
    write_atomic(
        &policy_dir.join("providers"),
        providers_row.as_bytes(),
        0o640,
    )
    .map_err(fail)?;
    write_atomic(&policy_dir.join("auth_id"), auth_id_row.as_bytes(), 0o640).map_err(fail)?;
    println!("5. Temporary server policy in {}", policy_dir.display());
    println!("   providers: {}", providers_row.trim_end());
    println!("   auth_id:   {}", auth_id_row.trim_end());

    let line = certificate.to_line(CertComment::None);
    let (key_type, key_base64) = line
        .trim_end()
        .split_once(' ')
        .ok_or_else(|| fail("certificate line without a space"))?;
    let as_root = opk_os::account::is_root();
    println!(
        "6. opkssh verify {principal} <%k: {}> {key_type}",
        short(key_base64, 24)
    );
    if as_root {
        println!(
            "   (this binary's verify, run as sshd runs it, with --config-dir {})",
            policy_dir.display()
        );
    } else {
        println!(
            "   (in process: not root, so the temporary files cannot be root-owned as verify \
             requires; same pipeline and policy code)"
        );
    }
    let decision = run_verify(
        as_root,
        &work.0,
        &policy_dir,
        &principal,
        key_base64,
        key_type,
    )?;
    let sshd_line = match decision {
        Ok(line) => {
            println!("   decision: allow");
            println!("   verify prints for sshd: {line}");
            line
        }
        Err(reason) => return Err(fail(format!("verify denied the demo login: {reason}"))),
    };
    let other = if principal == "nobody-else" {
        "someone-else"
    } else {
        "nobody-else"
    };
    match run_verify(as_root, &work.0, &policy_dir, other, key_base64, key_type)? {
        Ok(_) => return Err(fail(format!("verify let the demo user in as {other}"))),
        Err(reason) => println!("   and as {other}: deny ({reason})"),
    }

    if args.sshd {
        sshd::run(&work.0, &policy_dir, &principal, &key_path, &cert_path)?;
    }
    let _ = sshd_line;
    println!();
    println!("Done: the ID token became an SSH certificate that verify accepted for {principal}.");
    if args.out.is_none() {
        println!(
            "(Temporary files removed; use --out DIR to keep the key, certificate and issuer documents.)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs verify: the real subcommand as a child when root, the same functions in process
/// otherwise. `Ok(Ok(line))` on allow, `Ok(Err(reason))` on deny.
fn run_verify(
    as_root: bool,
    work: &Path,
    policy_dir: &Path,
    principal: &str,
    key_base64: &str,
    key_type: &str,
) -> Result<Result<String, String>, CliError> {
    if as_root {
        let program = std::env::current_exe().map_err(|error| fail(error.to_string()))?;
        let output = Command::new(program)
            .arg("verify")
            .arg("--config-dir")
            .arg(policy_dir)
            .arg("--log-file")
            .arg(work.join("opkssh.log"))
            .arg("--cache-dir")
            .arg(work.join("cache"))
            .args([principal, key_base64, key_type])
            .output()
            .map_err(|error| fail(format!("running verify: {error}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned();
        if output.status.success() {
            return Ok(Ok(stdout));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Ok(Err(stderr.trim().trim_start_matches("Error: ").to_owned()));
    }
    Ok(verify_in_process(
        work, policy_dir, principal, key_base64, key_type,
    ))
}

fn verify_in_process(
    work: &Path,
    policy_dir: &Path,
    principal: &str,
    key_base64: &str,
    key_type: &str,
) -> Result<String, String> {
    let verdict = verifier::decide(&verifier::Attempt {
        dir: policy::ConfigDir::new(policy_dir),
        cache_dir: work.join("cache"),
        create_cache_dir: true,
        // Not root: the files this user wrote cannot be root-owned as verify requires them.
        files: verifier::ServerFiles::DemoUnchecked,
        principal,
        key_base64,
        key_type,
        extra: &[],
        chain: verifier::ChainMode::Ignore,
    });
    match verdict.line {
        Some(line) => Ok(line.to_string()),
        None => Err(verdict.trace.to_string()),
    }
}

/// The interop-vector layout (tests/vectors/README.md).
fn write_out(
    out: &Path,
    op: &DemoOp,
    key: &opk_core::jws::SigningKey,
    certificate: &OpksshCertificate,
    pk_token: &opk_core::pktoken::PkToken,
    args: &DemoArgs,
) -> Result<(), CliError> {
    std::fs::create_dir_all(out)
        .map_err(|error| fail(format!("creating {}: {error}", out.display())))?;
    let pem = private_key_to_openssh(key).map_err(fail)?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(0));
    let meta = json!({
        "cert_type": certificate.cert_type_name(),
        "client_id": op.client_id(),
        "created": opk_os::time::rfc3339(created),
        "email": op.user().email,
        "gq": false,
        "issuer": op.issuer(),
        "key_type": args.key_type.flag_name(),
        "op_alg": op.algorithm().as_str(),
        "principals": certificate.principals(),
        "expect": "accept",
        "expiration_policy": "oidc",
    });
    let files: [(&str, Vec<u8>, u32); 9] = [
        (
            "cert.pub",
            certificate.to_line(CertComment::None).into_bytes(),
            0o644,
        ),
        ("id_key", pem.as_bytes().to_vec(), 0o600),
        ("jwks.json", op.jwks_json().into_bytes(), 0o644),
        (
            "openid-configuration.json",
            op.discovery_json().into_bytes(),
            0o644,
        ),
        (
            "issuer.txt",
            format!("{}\n", op.issuer()).into_bytes(),
            0o644,
        ),
        (
            "client_id.txt",
            format!("{}\n", op.client_id()).into_bytes(),
            0o644,
        ),
        (
            "meta.json",
            serde_json::to_string_pretty(&meta)
                .unwrap_or_default()
                .into_bytes(),
            0o644,
        ),
        ("pktoken.compact", pk_token.to_compact().into_bytes(), 0o644),
        ("pktoken.json", pk_token.to_json().into_bytes(), 0o644),
    ];
    for (name, contents, mode) in files {
        write_atomic(&out.join(name), &contents, mode).map_err(fail)?;
    }
    Ok(())
}
