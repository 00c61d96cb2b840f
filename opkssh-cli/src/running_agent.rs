//! The `opkssh agent` that answers at a socket, as its clients see it: its status, and a new
//! login asked of it. `opkssh agent --status`/`--login`, `opkssh check` and `opkssh ssh` use it.
//! The status is outside data (any program can listen at `SSH_AUTH_SOCK`): every text from it
//! is printed escaped.

use crate::error::CliError;
use opk_client::agent_server;
use opk_client::agent_session::{State, Status, now};
use opk_client::duration;
use opk_core::escape;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(message.to_string())
}

/// `2026/05/01 12:00:00 UTC`.
pub(crate) fn when(at: i64) -> String {
    let time = u64::try_from(at).map_or(UNIX_EPOCH, |at| UNIX_EPOCH + Duration::from_secs(at));
    format!("{} UTC", opk_os::time::timestamp(time))
}

/// `at` as a date and how far off it is: `2026/05/01 12:00:00 UTC (in 25s)`.
pub(crate) fn at_and_in(at: i64) -> String {
    let now = now();
    let distance = Duration::from_secs(at.abs_diff(now));
    if at >= now {
        format!("{} (in {})", when(at), duration::format(distance))
    } else {
        format!("{} ({} ago)", when(at), duration::format(distance))
    }
}

/// `alice@example.com (https://issuer)`, escaped.
pub(crate) fn identity_of(status: &Status) -> String {
    format!(
        "{} ({})",
        escape::line(status.identity.as_deref().unwrap_or("?")),
        escape::line(status.issuer.as_deref().unwrap_or("?"))
    )
}

/// The status of the opkssh agent at `path`.
///
/// # Errors
/// Nothing answers there, or what answers is not an opkssh agent.
pub(crate) fn agent_status(path: &Path) -> Result<Status, CliError> {
    match agent_server::query_status(path) {
        Err(error) => Err(fail(format!(
            "no agent answers at {}: {error}",
            escape::path(path)
        ))),
        Ok(None) => Err(fail(format!(
            "the agent at {} is not an opkssh agent (it does not answer opkssh's status request)",
            escape::path(path)
        ))),
        Ok(Some(answer)) => Status::from_json(&answer).map_err(|error| {
            fail(format!(
                "the opkssh agent at {} answered a status that does not parse: {error}",
                escape::path(path)
            ))
        }),
    }
}

/// The opkssh agent at `$SSH_AUTH_SOCK`, if one answers there.
pub(crate) fn running_agent() -> Option<(PathBuf, Status)> {
    let path = opk_os::agent::default_agent_path()?;
    let status = agent_status(&path).ok()?;
    Some((path, status))
}

/// `presenting alice@example.com (https://issuer) until …`.
pub(crate) fn ready_line(status: &Status) -> String {
    format!(
        "opkssh agent: presenting a certificate for {} until {}",
        identity_of(status),
        status
            .expires_at
            .map_or("its ID token has no expiry".to_owned(), at_and_in)
    )
}

/// How long `--login` (and `opkssh ssh`) waits for the agent's login.
const LOGIN_WAIT: Duration = Duration::from_secs(20 * 60);
/// How long the agent may take to start the login it was asked for.
const LOGIN_START_WAIT: Duration = Duration::from_secs(15);

/// Asks the opkssh agent at `path` to log in again, says through `say` where to log in (the
/// lines `opkssh login` prints), and waits until it presents the new certificate.
///
/// # Errors
/// The agent cannot be asked, its login failed, or it took longer than 20 minutes.
pub(crate) fn log_in_again(path: &Path, say: &mut dyn FnMut(&str)) -> Result<Status, CliError> {
    let before = agent_status(path)?;
    agent_server::request_login(path).map_err(|error| {
        fail(format!(
            "cannot ask the agent at {} to log in: {error}",
            escape::path(path)
        ))
    })?;
    let started = Instant::now();
    let mut seen_login = false;
    let mut shown_url: Option<String> = None;
    let mut shown_device = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let status = agent_status(path)?;
        if status.holding && status.logins != before.logins {
            return Ok(status);
        }
        if status.state == State::LoggingIn {
            seen_login = true;
            if status.login_url.is_some() && status.login_url != shown_url {
                shown_url.clone_from(&status.login_url);
                if let Some(url) = &shown_url {
                    say(&format!("Open your browser to: {}", escape::line(url)));
                }
            }
            if status.device.is_some() && status.device != shown_device {
                shown_device.clone_from(&status.device);
                if let Some(device) = &shown_device {
                    say(&format!(
                        "To log in, open this page in a browser on any device:\n  {}\nand enter \
                         the code: {}",
                        escape::line(&device.verification_uri),
                        escape::line(&device.user_code)
                    ));
                }
            }
        } else if seen_login || started.elapsed() > LOGIN_START_WAIT {
            return Err(fail(format!(
                "the agent's login failed: {}",
                escape::line(status.problem.as_deref().unwrap_or(status.state.as_str()))
            )));
        }
        if started.elapsed() > LOGIN_WAIT {
            return Err(fail("the agent's login did not finish within 20 minutes"));
        }
    }
}
