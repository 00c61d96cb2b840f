//! How a login picks its provider and its flow, and shows its browser step: the same for
//! `opkssh login` and `opkssh agent` (behaviour.md §2.2.2, §2.2.5), so that both take a
//! provider the same way.

use crate::error::CliError;
use crate::shown::Shown;
use opk_client::client_config::{
    self, Choice, ClientConfig, Env, ProviderEntry, ProviderKind, Selection,
};
use opk_client::{Flow, Progress, chooser, issuer_of};
use opk_core::sshcert::UserKeyType;
use std::path::Path;
use std::time::Duration;

/// A failure in words from elsewhere (the client config's parser, an issuer) or fixed ones,
/// escaped by the line rule: the commands print these messages as they are.
fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Usage(Shown::current().text(&message))
}

/// Why the web chooser cannot run with `--device`.
const NO_CHOOSER: &str = "--device needs one provider: name its alias (opkssh login \
     --device <alias>), set default_provider in the client config, or give --provider; the web \
     chooser needs a browser on this machine";

/// Why a CI provider cannot run with `--device`.
fn not_for_ci(issuer: &str) -> String {
    format!(
        "--device is for providers where a person logs in; {issuer} is a CI/CD provider, whose \
         login already needs no browser (run without --device)"
    )
}
/// A certificate without principals is one sshd refuses for every account, so an empty
/// `--principals` (or an empty item in the list) is a usage error, as in Go.
pub(crate) fn parse_principal(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(
            "a principal cannot be empty; leave --principals out for opkssh-wildcard".to_owned(),
        );
    }
    Ok(value.to_owned())
}

/// `-t`: ecdsa or ed25519.
pub(crate) fn parse_key_type(value: &str) -> Result<UserKeyType, String> {
    match value.to_ascii_lowercase().as_str() {
        "ecdsa" => Ok(UserKeyType::Ecdsa),
        "ed25519" => Ok(UserKeyType::Ed25519),
        other => Err(format!(
            "unsupported key type {other}; use ecdsa or ed25519"
        )),
    }
}

/// The flags by which a login picks its provider and its flow, the same for `opkssh login`
/// and `opkssh agent`.
pub(crate) struct ProviderFlags<'a> {
    /// The alias argument.
    pub(crate) alias: Option<&'a str>,
    /// `--provider`.
    pub(crate) provider: Option<&'a str>,
    /// `--device`.
    pub(crate) device: bool,
    /// `--no-qr`.
    pub(crate) no_qr: bool,
    /// `--remote-redirect-uri`.
    pub(crate) remote_redirect_uri: Option<&'a str>,
    /// `--timeout`.
    pub(crate) timeout: Option<u64>,
}

impl ProviderFlags<'_> {
    /// Refuses flags that do not go together.
    pub(crate) fn check(&self) -> Result<(), CliError> {
        if self.no_qr && !self.device {
            return Err(fail("--no-qr only applies to --device"));
        }
        if self.device && self.remote_redirect_uri.is_some() {
            return Err(fail(
                "--remote-redirect-uri does not apply to --device (the device flow has no redirect)",
            ));
        }
        Ok(())
    }

    /// How long the browser login and the web chooser wait.
    pub(crate) fn browser_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.unwrap_or(300))
    }

    /// The flow for `kind`: `--device` is refused for CI providers.
    pub(crate) fn flow(&self, kind: &ProviderKind) -> Result<Flow, CliError> {
        if self.device && !matches!(kind, ProviderKind::Browser(_)) {
            return Err(fail(not_for_ci(issuer_of(kind))));
        }
        Ok(if self.device {
            Flow::Device {
                timeout: self.timeout.map(Duration::from_secs),
            }
        } else {
            Flow::Browser {
                timeout: self.browser_timeout(),
            }
        })
    }
}

/// Where the provider choice led.
pub(crate) enum Chosen {
    /// One provider (flag, alias, environment or default).
    Provider(ProviderKind),
    /// The web chooser picked it; its browser tab goes on to the provider.
    Chooser(chooser::Chosen),
}

/// Picks the provider as `opkssh login` does (behaviour.md §2.2.2): `--provider`, the alias,
/// the environment, the config's default, else the web chooser (whose URL goes to
/// `progress`), which `--device` cannot use.
pub(crate) fn choose_provider(
    flags: &ProviderFlags<'_>,
    config: &ClientConfig,
    progress: &mut dyn Progress,
) -> Result<Chosen, CliError> {
    let env = Env::from_process();
    let selection = Selection {
        provider_flag: flags.provider,
        alias: flags.alias,
        config: Some(config),
    };
    let entry = match client_config::determine_provider(&selection, &env).map_err(fail)? {
        Choice::Provider(entry) => *entry,
        Choice::WebChooser(_) if flags.device => return Err(fail(NO_CHOOSER)),
        Choice::WebChooser(entries) => {
            let chosen = chooser::choose(
                &entries,
                &env,
                flags.remote_redirect_uri,
                flags.browser_timeout(),
                progress,
            )
            .map_err(fail)?;
            return Ok(Chosen::Chooser(chosen));
        }
    };
    let kind = client_config::to_provider(&entry, &env, flags.remote_redirect_uri).map_err(fail)?;
    Ok(Chosen::Provider(kind))
}

/// The client config at `path`, or the default one when there is none (said through `log`).
pub(crate) fn read_config(
    shown: Shown,
    path: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<ClientConfig, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => ClientConfig::parse(&text).map_err(fail),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            log(&format!(
                "failed to find client config file {}, using the default config; to create \
                 one run: opkssh login --create-config",
                shown.path(path)
            ));
            Ok(ClientConfig::default_config())
        }
        Err(error) => Err(CliError::Usage(format!(
            "failed to read client config file {}: {}",
            shown.path(path),
            shown.text(&error)
        ))),
    }
}

/// Prints the URL through `say` and opens a browser unless told not to (behaviour.md
/// §2.2.5). `opkssh agent` prints the same lines on stderr.
pub(crate) fn open_browser(url: &str, disabled: bool, say: &mut dyn FnMut(&str)) {
    if disabled {
        say(&format!("Open your browser to: {url}"));
        return;
    }
    say(&format!("Opening browser to {url}"));
    if let Err(error) = webbrowser::open(url) {
        eprintln!("Failed to open URL: {error}");
        say(&format!("Open your browser to: {url}"));
    }
}

/// `--send-access-token`, else the provider's `send_access_token` in the client config.
pub(crate) fn wants_access_token(
    flag: bool,
    config: &ClientConfig,
    issuer: &str,
    log: &mut dyn FnMut(&str),
) -> bool {
    if flag {
        return true;
    }
    match config.providers.iter().find(|entry| entry.issuer == issuer) {
        Some(entry) => entry.send_access_token,
        None => {
            if config
                .providers
                .iter()
                .any(|entry: &ProviderEntry| entry.send_access_token)
            {
                log(&format!(
                    "could not find issuer {issuer} in client config providers to look up \
                     send_access_token"
                ));
            }
            false
        }
    }
}
