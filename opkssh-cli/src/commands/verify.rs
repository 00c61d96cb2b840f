//! `opkssh verify <principal> <key-b64> <key-type>`: sshd's AuthorizedKeysCommand
//! (`AuthorizedKeysCommand /usr/local/bin/opkssh verify %u %k %t`).
//!
//! On allow: exactly one `cert-authority…` line on stdout, exit 0. On any denial: nothing on
//! stdout, the reason in the log, exit 1, unless `config.yml` chains another
//! `AuthorizedKeysCommand` (`chain_authorized_keys_command`): then it runs, and the
//! well-formed `authorized_keys` lines it prints are printed instead (exit 0 when there is
//! one). sshd strips the environment, so everything comes from flags and files.
//!
//! Every decision carries its trace: each step (what was checked, in which file and line,
//! how it came out). The log gets, per decision, each step at `debug` level as
//! `trace[<pid>] <step>` (the pid tells concurrent verifies apart), then one `info` line
//! naming the deciding step: `successfully verified: allow principal=… identity=… rule: <step>
//! keys=… (N ms)` or `failed to verify: deny principal=… identity=… reason: <step> (N ms)`, Go's
//! words first so that alerts written for the Go binary still fire; with a chained command,
//! `; chain "<command>" <outcome>` comes before the time. `Providers loaded: …` (info) comes
//! first, as in Go. Warnings (unverified email, stale keys, skipped rows, lines a chained
//! command printed that were dropped, its stderr) stay `warn` lines. `--explain` (and `opkssh
//! explain`) prints the same steps on stdout instead of the sshd line, and never runs a chained
//! command.

use crate::args::ConfigDirArg;
use crate::error::CliError;
use opk_core::authorized_keys::fingerprint;
use opk_core::sshcert::OpksshCertificate;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use verifier::log::{Level, Log};
use verifier::{Attempt, ChainMode, ServerFiles, decide};

/// `opkssh verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
    /// The server config file (default: config.yml in the config directory).
    #[arg(long = "config-path", value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// Where decisions are logged.
    #[arg(
        long = "log-file",
        value_name = "FILE",
        default_value_os_t = opk_os::dirs::log_file()
    )]
    pub(crate) log_file: PathBuf,
    /// The discovery and JWKS cache shared by verify processes.
    #[arg(
        long = "cache-dir",
        value_name = "DIR",
        default_value_os_t = opk_os::dirs::cache_dir()
    )]
    pub(crate) cache_dir: PathBuf,
    /// error, warn, info or debug.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub(crate) log_level: Level,
    /// Print every step of the decision on stdout instead of the sshd line (exit 0 on allow,
    /// 1 on deny).
    #[arg(long)]
    pub(crate) explain: bool,
    /// `%u`: the account being logged into.
    pub(crate) principal: String,
    /// `%k`: the certificate, base64.
    pub(crate) key_base64: String,
    /// `%t`: the certificate type.
    pub(crate) key_type: String,
    /// Further sshd tokens, handed to policy plugins.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) extra: Vec<String>,
}

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let mut log = Log::open(&args.log_file, args.log_level);
    // A plain key (for a chained command) has a fingerprint too.
    let fingerprint = OpksshCertificate::from_type_and_base64(&args.key_type, &args.key_base64)
        .map(|certificate| certificate.fingerprint())
        .or_else(|_| fingerprint(&args.key_type, &args.key_base64))
        .unwrap_or_else(|_| "unparsed".to_owned());
    // The certificate carries an ID token: log its fingerprint, never its text (#583).
    log.write(
        Level::Debug,
        &format!(
            "verify principal={} type={} key={fingerprint}",
            args.principal, args.key_type
        ),
    );
    // Only read when it can be logged; warm, it is one stat and one small read (no exec).
    if args.log_level >= Level::Warn {
        let version = verifier::openssh::cached(&args.cache_dir, &verifier::openssh::BINARIES);
        if let Some(warning) = verifier::openssh::warning(version.as_ref()) {
            log.write(Level::Warn, warning);
        }
    }
    let mut dir = args.config.dir();
    if let Some(path) = &args.config_path {
        dir = dir.with_config_path(path);
    }
    let verdict = decide(&Attempt {
        dir,
        cache_dir: args.cache_dir.clone(),
        create_cache_dir: !args.explain,
        files: ServerFiles::Installed,
        principal: &args.principal,
        key_base64: &args.key_base64,
        key_type: &args.key_type,
        extra: &args.extra,
        // Explaining (often as root, by hand) never runs the chained command.
        chain: if args.explain {
            ChainMode::Describe
        } else {
            ChainMode::Run
        },
    });
    verdict.log(&mut log, &args.principal, started.elapsed().as_millis());
    if args.explain {
        print!("{}", verdict.explanation());
        return Ok(if verdict.is_allow() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let lines = verdict.sshd_lines();
    if lines.is_empty() {
        // sshd copies this into its own log.
        eprintln!(
            "Error: {}",
            opk_core::escape::line(&verdict.trace.to_string())
        );
        return Ok(ExitCode::FAILURE);
    }
    // The `cert-authority` line, or the lines a chained command passed (each a well-formed
    // authorized_keys line).
    for line in &lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
