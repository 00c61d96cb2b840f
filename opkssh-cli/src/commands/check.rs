//! `opkssh check [--exp DURATION] [-i KEY] [--json]` (upstream openpubkey/opkssh#604): exit 0
//! when an opkssh key and certificate are there and the ID token stays valid for `--exp`, 1
//! otherwise, with one line saying why, so that `opkssh check || opkssh login` logs in only
//! when needed. When `SSH_AUTH_SOCK` is an `opkssh agent` (and no `-i` is given), the agent's
//! certificate is the one checked.

use crate::error::CliError;
use opk_client::agent_session::Status;
use opk_client::check::{self, Problem, Usable};
use opk_client::{duration, placement};
use opk_core::escape;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `opkssh check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Also fail when the ID token expires within this time: 90s, 45m, 24h, 1h30m or seconds.
    /// The client sees only the token's exp, not the server's expiration policy.
    #[arg(long = "exp", value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub(crate) exp: Duration,
    /// The key to check (its certificate is <KEY>-cert.pub) [default: the opkssh agent at
    /// $SSH_AUTH_SOCK if one runs, else where opkssh login writes: ~/.ssh/id_ecdsa,
    /// id_ed25519, … and ~/.ssh/opkssh/].
    #[arg(short = 'i', long = "private-key-file", value_name = "KEY")]
    pub(crate) private_key_file: Option<PathBuf>,
    /// Print the result as JSON on stdout (same exit status).
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    duration::parse(value).map_err(|error| error.to_string())
}

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let now = SystemTime::now();
    if args.private_key_file.is_none()
        && let Some((socket, status)) = crate::running_agent::running_agent()
    {
        return Ok(check_agent(args, &socket, &status, now));
    }
    let result = match &args.private_key_file {
        Some(key) => check::check_one(key, args.exp, now),
        None => {
            let home = placement::home_dir()
                .ok_or_else(|| CliError::Usage("could not find the home directory".into()))?;
            check::check(&check::default_candidates(&home), args.exp, now)
        }
    };
    let line = match &result {
        Ok(usable) => valid_line(usable, now),
        Err(problem) => problem_line(problem),
    };
    if args.json {
        let json = to_json(&result, &line, now);
        println!(
            "{}",
            opk_core::escape::json(&serde_json::to_string_pretty(&json).unwrap_or_default())
        );
    } else if result.is_ok() {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
    if let Ok(Usable {
        key,
        privacy_unchecked: Some(why),
        ..
    }) = &result
    {
        eprintln!("{}", privacy_warning(key, why));
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// With an opkssh agent at `SSH_AUTH_SOCK`, that agent's certificate is what ssh uses: it
/// passes when the agent presents one that stays valid for `--exp`, or that the agent will
/// refresh before it expires.
fn check_agent(args: &CheckArgs, socket: &Path, status: &Status, now: SystemTime) -> ExitCode {
    let now = seconds(now);
    let within = i64::try_from(args.exp.as_secs()).unwrap_or(i64::MAX);
    let agent = format!("opkssh agent at {}", escape::path(socket));
    let who = format!(
        "{} from {}",
        escape::line(status.identity.as_deref().unwrap_or("?")),
        escape::line(status.issuer.as_deref().unwrap_or("?"))
    );
    let refreshed_in_time = status
        .next_refresh
        .zip(status.expires_at)
        .is_some_and(|(refresh, expiry)| refresh < expiry);
    let (code, line) = match status.expires_at {
        _ if !status.holding => (
            "agent_empty",
            format!(
                "no certificate: the {agent} presents none ({}); log in with: opkssh agent \
                 --login",
                escape::line(
                    status
                        .problem
                        .as_deref()
                        .unwrap_or_else(|| status.state.as_str())
                )
            ),
        ),
        Some(at) if at <= now => ("expired", format!("expired at {}: {agent}", when(at))),
        Some(at) if at <= now.saturating_add(within) && !refreshed_in_time => (
            "expiring",
            format!(
                "expires within {}, at {}: {agent}",
                duration::format(args.exp),
                when(at)
            ),
        ),
        Some(at) => (
            "valid",
            format!(
                "valid: {agent} ({who}) until {} (in {}){}",
                when(at),
                duration::format(Duration::from_secs(at.abs_diff(now))),
                if refreshed_in_time {
                    ", refreshed by the agent before then"
                } else {
                    ""
                }
            ),
        ),
        None => ("valid", format!("valid: {agent} ({who}), no expiry")),
    };
    let ok = code == "valid";
    if args.json {
        let mut object = serde_json::Map::new();
        object.insert("ok".into(), ok.into());
        object.insert("status".into(), code.into());
        object.insert("message".into(), line.clone().into());
        object.insert("agent".into(), socket.display().to_string().into());
        if let Some(issuer) = &status.issuer {
            object.insert("issuer".into(), issuer.clone().into());
        }
        if let Some(identity) = &status.identity {
            object.insert("identity".into(), identity.clone().into());
        }
        if let Some(at) = status.expires_at {
            object.insert("expires_at".into(), at.into());
            object.insert("expires_in".into(), at.saturating_sub(now).into());
        }
        if let Some(at) = status.next_refresh {
            object.insert("next_refresh".into(), at.into());
        }
        println!(
            "{}",
            opk_core::escape::json(
                &serde_json::to_string_pretty(&serde_json::Value::Object(object))
                    .unwrap_or_default()
            )
        );
    } else if ok {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn seconds(now: SystemTime) -> i64 {
    i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    )
    .unwrap_or(i64::MAX)
}

/// `2026/05/01 12:00:00 UTC`.
fn when(at: i64) -> String {
    let time = u64::try_from(at).map_or(UNIX_EPOCH, |at| UNIX_EPOCH + Duration::from_secs(at));
    format!("{} UTC", opk_os::time::timestamp(time))
}

fn valid_line(usable: &Usable, now: SystemTime) -> String {
    let left = u64::try_from(usable.expires_at.saturating_sub(seconds(now))).unwrap_or(0);
    format!(
        "valid: {} ({} from {}) until {} (in {})",
        escape::path(&usable.certificate),
        escape::line(&usable.identity),
        escape::line(&usable.issuer),
        when(usable.expires_at),
        duration::format(Duration::from_secs(left))
    )
}

fn listed(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| escape::path(path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key's ACL could not be checked (Windows without working `icacls`): `ssh.exe` may still
/// refuse the key.
fn privacy_warning(key: &Path, why: &str) -> String {
    format!(
        "warning: could not check that only you can read {}: {}; Windows' ssh refuses a \
         private key others can read (icacls shows who can)",
        escape::path(key),
        escape::line(why)
    )
}

fn problem_line(problem: &Problem) -> String {
    match problem {
        Problem::MissingKey { searched } if searched.len() == 1 => {
            format!("missing key: {}", listed(searched))
        }
        Problem::MissingKey { searched } => {
            format!("missing key: no opkssh key at {}", listed(searched))
        }
        Problem::MissingCertificate { key, certificate } => format!(
            "missing certificate: {} (for the key {})",
            escape::path(certificate),
            escape::path(key)
        ),
        Problem::NotOpkssh {
            certificate, why, ..
        } => format!(
            "not an opkssh certificate: {}: {}",
            escape::path(certificate),
            escape::line(why)
        ),
        Problem::KeyNotPrivate { key, why } => format!(
            "key not private: {}: {} (ssh refuses it; opkssh login writes a private one)",
            escape::path(key),
            escape::line(why)
        ),
        Problem::Expired { certificate, at } => {
            format!("expired at {}: {}", when(*at), escape::path(certificate))
        }
        Problem::ExpiresWithin {
            certificate,
            at,
            within,
        } => format!(
            "expires within {}, at {}: {}",
            duration::format(*within),
            when(*at),
            escape::path(certificate)
        ),
    }
}

fn path_json(path: &Path) -> serde_json::Value {
    serde_json::Value::String(path.display().to_string())
}

fn to_json(result: &Result<Usable, Problem>, line: &str, now: SystemTime) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("ok".into(), result.is_ok().into());
    object.insert(
        "status".into(),
        result
            .as_ref()
            .map_or_else(Problem::code, |_| "valid")
            .into(),
    );
    object.insert("message".into(), line.into());
    let (key, certificate, expires_at) = match result {
        Ok(usable) => {
            object.insert("issuer".into(), usable.issuer.clone().into());
            object.insert("identity".into(), usable.identity.clone().into());
            if let Some(why) = &usable.privacy_unchecked {
                object.insert("warning".into(), privacy_warning(&usable.key, why).into());
            }
            (
                Some(usable.key.as_path()),
                Some(usable.certificate.as_path()),
                Some(usable.expires_at),
            )
        }
        Err(Problem::MissingKey { searched }) => {
            object.insert(
                "searched".into(),
                searched.iter().map(|path| path_json(path)).collect(),
            );
            (None, None, None)
        }
        Err(
            Problem::MissingCertificate { key, certificate }
            | Problem::NotOpkssh {
                key, certificate, ..
            },
        ) => (Some(key.as_path()), Some(certificate.as_path()), None),
        Err(Problem::KeyNotPrivate { key, .. }) => (Some(key.as_path()), None, None),
        Err(
            Problem::Expired { certificate, at }
            | Problem::ExpiresWithin {
                certificate, at, ..
            },
        ) => (None, Some(certificate.as_path()), Some(*at)),
    };
    if let Some(key) = key {
        object.insert("key".into(), path_json(key));
    }
    if let Some(certificate) = certificate {
        object.insert("certificate".into(), path_json(certificate));
    }
    if let Some(at) = expires_at {
        object.insert("expires_at".into(), at.into());
        object.insert("expires_in".into(), at.saturating_sub(seconds(now)).into());
    }
    serde_json::Value::Object(object)
}
