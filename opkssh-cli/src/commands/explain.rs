//! `opkssh explain <principal> <certificate>`: on a server, why a certificate would be let in
//! as `principal` or not. Runs the whole `verify` decision (the same code: files, certificate,
//! PK token, OP keys through the cache, policy, plugins) and prints every step instead of the
//! sshd line. Exit 0 when verify would allow, 1 when it would deny.
//!
//! Unlike `verify`, it writes no log and never creates the cache folder: run as root, it would
//! be root's, and `verify` (as `opksshuser`) could not use it. A cache folder owned by another
//! user is not used (as `verify` would not), so as root the keys are fetched from the OP.

use crate::args::ConfigDirArg;
use crate::error::CliError;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use verifier::{Attempt, ChainMode, ServerFiles, decide};

/// A certificate line is far below this (sshd's own limit is 256 KiB).
const MAX_STDIN: u64 = 512 * 1024;

/// `opkssh explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) config: ConfigDirArg,
    /// The server config file (default: config.yml in the config directory).
    #[arg(long = "config-path", value_name = "FILE")]
    pub(crate) config_path: Option<PathBuf>,
    /// The discovery and JWKS cache verify uses (read, never created).
    #[arg(
        long = "cache-dir",
        value_name = "DIR",
        default_value_os_t = opk_os::dirs::cache_dir()
    )]
    pub(crate) cache_dir: PathBuf,
    /// The account the login is for (sshd's `%u`).
    pub(crate) principal: String,
    /// A certificate file (e.g. id_ecdsa-cert.pub), the certificate line itself, or `-` to
    /// read the line from stdin.
    pub(crate) certificate: String,
}

pub(crate) fn run(args: &ExplainArgs) -> Result<ExitCode, CliError> {
    let text = if args.certificate == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_STDIN)
            .read_to_string(&mut text)
            .map_err(|source| CliError::Read {
                path: "stdin".into(),
                source,
            })?;
        text
    } else {
        crate::report::read_input(&args.certificate)?
    };
    // `<type> <base64> [comment]`, as sshd splits an authorized key into %t and %k.
    let mut fields = text.split_whitespace();
    let key_type = fields
        .next()
        .ok_or_else(|| CliError::Usage("no certificate given".into()))?;
    let key_base64 = fields.next().unwrap_or_default();
    let mut dir = args.config.dir();
    if let Some(path) = &args.config_path {
        dir = dir.with_config_path(path);
    }
    let verdict = decide(&Attempt {
        dir,
        cache_dir: args.cache_dir.clone(),
        create_cache_dir: false,
        files: ServerFiles::Installed,
        principal: &args.principal,
        key_base64,
        key_type,
        extra: &[],
        chain: ChainMode::Describe,
    });
    print!("{}", verdict.explanation());
    Ok(if verdict.is_allow() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
