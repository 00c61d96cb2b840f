//! Which provider a login uses (behaviour.md §2.2.2-§2.2.4, §2.2.6): `--provider` spec
//! strings, `OPKSSH_PROVIDERS`, `OPKSSH_DEFAULT`, `~/.opk/config.yml` (or the built-in
//! default config), the alias argument, and the CI/CD providers detected from the environment.

use crate::callback::DEFAULT_REDIRECT_URIS;
use crate::login::BrowserProvider;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The config written by `--create-config` and used when `~/.opk/config.yml` does not exist:
/// the same providers and public client IDs as the Go opkssh's default.
pub const DEFAULT_CLIENT_CONFIG: &str = r"---
default_provider: webchooser

providers:
  - alias: google
    issuer: https://accounts.google.com
    client_id: 206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com
    client_secret: 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
    scopes: openid email profile
    access_type: offline
    prompt: consent
    redirect_uris:
      - http://localhost:3000/login-callback
      - http://localhost:10001/login-callback
      - http://localhost:11110/login-callback

  - alias: azure microsoft
    issuer: https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0
    client_id: 096ce0a3-5e72-4da8-9c86-12924b294a01
    scopes: openid profile email offline_access
    access_type: offline
    prompt: consent
    redirect_uris:
      - http://localhost:3000/login-callback
      - http://localhost:10001/login-callback
      - http://localhost:11110/login-callback

  - alias: gitlab
    issuer: https://gitlab.com
    client_id: 8d8b7024572c7fd501f64374dec6bba37096783dfcd792b3988104be08cb6923
    scopes: openid email
    access_type: offline
    prompt: consent
    redirect_uris:
      - http://localhost:3000/login-callback
      - http://localhost:10001/login-callback
      - http://localhost:11110/login-callback

  - alias: hello
    issuer: https://issuer.hello.coop
    client_id: app_xejobTKEsDNSRd5vofKB2iay_2rN
    scopes: openid email
    access_type: offline
    prompt: consent
    redirect_uris:
      - http://localhost:3000/login-callback
      - http://localhost:10001/login-callback
      - http://localhost:11110/login-callback

send_access_token: false
";

/// The alias that means "let me choose in the browser".
pub const WEBCHOOSER: &str = "WEBCHOOSER";

/// Client ID of the CI/CD providers (their tokens are not for a client).
pub const CI_CLIENT_ID: &str = "unused";

/// GitHub Actions' issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A config or resolution error, worded as Go words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// `~/.opk/config.yml`. Serializable so the documentation tests can list the keys the code
/// reads.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClientConfig {
    /// `default_provider`: an alias or `webchooser`.
    pub default_provider: Option<String>,
    /// `providers`.
    pub providers: Vec<ProviderEntry>,
    /// `agent_lifetime`: how long `opkssh login` asks the ssh-agent to keep the key (`12h`,
    /// `45m`, or seconds); see [`ClientConfig::agent_lifetime`].
    pub agent_lifetime: Option<ConfigDuration>,
}

/// A duration in the client config: a number of seconds or a string such as `12h`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ConfigDuration {
    /// `agent_lifetime: 28800`.
    Seconds(u64),
    /// `agent_lifetime: 8h`.
    Text(String),
}

/// One `providers` entry.
#[derive(Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct ProviderEntry {
    /// Space-separated aliases.
    pub alias: String,
    /// The issuer.
    pub issuer: String,
    /// The client ID.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// `access_type`.
    pub access_type: String,
    /// `prompt`.
    pub prompt: String,
    /// Loopback redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Redirect URI sent to the OP instead of the local one.
    pub remote_redirect_uri: String,
    /// Put the access token in the certificate.
    pub send_access_token: bool,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderEntry")
            .field("alias", &self.alias)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Default for ProviderEntry {
    /// Go's defaults for keys absent from the YAML.
    fn default() -> Self {
        Self {
            alias: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scopes: "openid profile email".into(),
            access_type: "offline".into(),
            prompt: "consent".into(),
            redirect_uris: DEFAULT_REDIRECT_URIS.map(str::to_owned).to_vec(),
            remote_redirect_uri: String::new(),
            send_access_token: false,
        }
    }
}

impl ProviderEntry {
    /// The aliases, split on spaces.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.alias.split_whitespace()
    }
}

impl ClientConfig {
    /// Parses the YAML.
    ///
    /// # Errors
    /// Invalid YAML.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        serde_saphyr::from_str(text)
            .map_err(|problem| error(format!("failed to parse client config: {problem}")))
    }

    /// `agent_lifetime`, checked as an ssh-agent lifetime; `None` when absent.
    ///
    /// # Errors
    /// A value that is not a duration, zero, or too long for the agent protocol.
    pub fn agent_lifetime(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        let bad = |why: String| error(format!("invalid agent_lifetime in client config: {why}"));
        match &self.agent_lifetime {
            None => Ok(None),
            Some(ConfigDuration::Seconds(seconds)) => {
                crate::duration::lifetime(std::time::Duration::from_secs(*seconds))
                    .map(Some)
                    .map_err(|why| bad(why.to_owned()))
            }
            Some(ConfigDuration::Text(text)) => crate::duration::parse_lifetime(text)
                .map(Some)
                .map_err(|problem| bad(problem.to_string())),
        }
    }

    /// The built-in default.
    pub fn default_config() -> Self {
        Self::parse(DEFAULT_CLIENT_CONFIG).unwrap_or_default()
    }
}

/// Parses one provider spec: `issuer,client_id[,secret[,scopes]]` (`--provider`), with the
/// alias first for `OPKSSH_PROVIDERS` entries.
///
/// # Errors
/// Too few fields, an empty client ID, or Google without a secret.
pub fn parse_provider_spec(spec: &str, with_alias: bool) -> Result<ProviderEntry, ConfigError> {
    let mut fields: Vec<&str> = spec.split(',').collect();
    let alias = if with_alias {
        if fields.is_empty() {
            return Err(error("invalid provider config string"));
        }
        fields.remove(0).to_owned()
    } else {
        String::new()
    };
    let expected = if with_alias {
        "<alias>,<issuer>,<client_id>[,<client_secret>[,<scopes>]]"
    } else {
        "<issuer>,<client_id>[,<client_secret>[,<scopes>]]"
    };
    let (Some(issuer), Some(client_id)) = (fields.first(), fields.get(1)) else {
        return Err(error(format!(
            "invalid provider config string. Expected format {expected}"
        )));
    };
    if fields.len() > 4 {
        return Err(error(format!(
            "invalid provider config string. Expected format {expected}"
        )));
    }
    if client_id.is_empty() {
        return Err(error("invalid provider client-ID value got ()"));
    }
    let client_secret = fields.get(2).copied().unwrap_or_default();
    // Absent scopes: `openid email`; present but empty: the library default.
    let scopes = match fields.get(3) {
        None => "openid email".to_owned(),
        Some(&"") => "openid profile email".to_owned(),
        Some(scopes) => (*scopes).to_owned(),
    };
    if issuer.starts_with("https://accounts.google.com") && client_secret.is_empty() {
        return Err(error(format!(
            "invalid provider argument format. Expected format for google: {}",
            if with_alias {
                "<alias>,<issuer>,<client_id>,<client_secret>[,<scopes>]"
            } else {
                "<issuer>,<client_id>,<client_secret>[,<scopes>]"
            }
        )));
    }
    Ok(ProviderEntry {
        alias,
        issuer: (*issuer).to_owned(),
        client_id: (*client_id).to_owned(),
        client_secret: client_secret.to_owned(),
        scopes,
        ..ProviderEntry::default()
    })
}

/// Parses `OPKSSH_PROVIDERS`: `;`-separated entries with aliases.
///
/// # Errors
/// Any bad entry.
pub fn parse_providers_env(value: &str) -> Result<Vec<ProviderEntry>, ConfigError> {
    value
        .split(';')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| parse_provider_spec(entry.trim(), true))
        .collect()
}

/// Client-side issuers must be https, except loopback test issuers.
///
/// # Errors
/// Any other issuer.
pub fn check_issuer(issuer: &str) -> Result<(), ConfigError> {
    let loopback = ["http://localhost", "http://127.0.0.1"]
        .iter()
        .any(|prefix| {
            issuer.strip_prefix(prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
            })
        });
    if issuer.is_empty() || !(issuer.starts_with("https://") || loopback) {
        return Err(error(
            "invalid provider issuer value. Expected issuer to start with 'https://' (or \
             'http://localhost' for a local test provider)",
        ));
    }
    Ok(())
}

/// What kind of provider an entry is (§2.2.4).
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// An authorization-code provider.
    Browser(BrowserProvider),
    /// GitHub or Forgejo Actions: the token comes from `ACTIONS_ID_TOKEN_REQUEST_URL` with
    /// `audience` = the commitment, and is GQ-signed.
    Actions {
        /// The issuer.
        issuer: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (a bearer secret).
        request_token: String,
    },
    /// GitLab CI: the token is `$OPENPUBKEY_JWT`, GQ-signed with the commitment in the header.
    GitlabCi {
        /// The issuer.
        issuer: String,
    },
}

impl std::fmt::Debug for ProviderKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Actions request token is a bearer secret: never in a debug string.
        match self {
            Self::Browser(provider) => formatter.debug_tuple("Browser").field(provider).finish(),
            Self::Actions {
                issuer,
                request_url,
                ..
            } => formatter
                .debug_struct("Actions")
                .field("issuer", issuer)
                .field("request_url", request_url)
                .finish_non_exhaustive(),
            Self::GitlabCi { issuer } => formatter
                .debug_struct("GitlabCi")
                .field("issuer", issuer)
                .finish(),
        }
    }
}

/// The environment a resolution reads.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets (ACTIONS_ID_TOKEN_REQUEST_TOKEN, OPENPUBKEY_JWT): names only.
        formatter.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Env {
    /// From the process environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// From pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            vars: pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// A variable, unset when empty (as Go treats these).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

/// The CI/CD providers the environment offers (§2.2.2's table).
pub fn ci_providers(env: &Env) -> Vec<ProviderEntry> {
    let mut found = Vec::new();
    let ci = |alias: &str, issuer: String| ProviderEntry {
        alias: alias.to_owned(),
        issuer,
        client_id: CI_CLIENT_ID.into(),
        ..ProviderEntry::default()
    };
    if let (Some(url), Some(_)) = (
        env.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
        env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) {
        if let Some(issuer) = forgejo_issuer(url) {
            found.push(ci("forgejo codeberg", issuer));
        } else if url_host(url).is_some_and(|host| host.ends_with("actions.githubusercontent.com"))
        {
            found.push(ci("github", GITHUB_ISSUER.into()));
        }
    }
    if env.get("GITLAB_CI") == Some("true") {
        let issuer = env
            .get("CI_SERVER_URL")
            .unwrap_or("https://gitlab.com")
            .to_owned();
        found.push(ci("gitlab-ci", issuer));
    }
    found
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    Some(host.split(':').next().unwrap_or(host))
}

/// `<scheme>://<host><prefix>/api/actions` from a Forgejo token request URL.
fn forgejo_issuer(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let index = path.find("/api/actions/")?;
    let prefix = path.get(..index)?;
    Some(format!("{scheme}://{authority}{prefix}/api/actions"))
}

/// What the login should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Log in with this provider.
    Provider(Box<ProviderEntry>),
    /// Let the user choose among these in the browser.
    WebChooser(Vec<ProviderEntry>),
}

/// Inputs of [`determine_provider`].
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// `--provider`.
    pub provider_flag: Option<&'a str>,
    /// The positional alias.
    pub alias: Option<&'a str>,
    /// The config file (or the default), if any.
    pub config: Option<&'a ClientConfig>,
}

/// Go's `determineProvider` (§2.2.2).
///
/// # Errors
/// Bad specs, duplicate or unknown aliases (with the CI explanations), no providers.
pub fn determine_provider(selection: &Selection<'_>, env: &Env) -> Result<Choice, ConfigError> {
    if let Some(spec) = selection.provider_flag.filter(|spec| !spec.is_empty()) {
        return Ok(Choice::Provider(Box::new(parse_provider_spec(
            spec, false,
        )?)));
    }
    let alias = selection
        .alias
        .filter(|alias| !alias.is_empty())
        .or_else(|| env.get("OPKSSH_DEFAULT"))
        .or_else(|| {
            selection
                .config
                .and_then(|config| config.default_provider.as_deref())
                .filter(|alias| !alias.is_empty())
        })
        .unwrap_or(WEBCHOOSER);

    let from_env = env.get("OPKSSH_PROVIDERS").is_some();
    let providers = match env.get("OPKSSH_PROVIDERS") {
        Some(value) => parse_providers_env(value)?,
        None => {
            let mut providers = selection
                .config
                .map(|config| config.providers.clone())
                .unwrap_or_default();
            providers.extend(ci_providers(env));
            providers
        }
    };
    if providers.is_empty() {
        return Err(error("no providers specified"));
    }

    if !alias.eq_ignore_ascii_case(WEBCHOOSER) {
        let mut by_alias: BTreeMap<&str, &ProviderEntry> = BTreeMap::new();
        for provider in &providers {
            for name in provider.aliases() {
                if by_alias.insert(name, provider).is_some() {
                    return Err(error(format!("duplicate provider alias found: {name}")));
                }
            }
        }
        return match by_alias.get(alias) {
            Some(provider) => Ok(Choice::Provider(Box::new((*provider).clone()))),
            None => Err(unknown_alias(alias, env, from_env)),
        };
    }
    let choices: Vec<ProviderEntry> = providers
        .into_iter()
        .filter(|provider| provider.client_id != CI_CLIENT_ID)
        .collect();
    if choices.is_empty() {
        return Err(error("no providers available for the web chooser"));
    }
    Ok(Choice::WebChooser(choices))
}

fn unknown_alias(alias: &str, env: &Env, from_env: bool) -> ConfigError {
    let base = format!("error getting provider config for alias {alias}");
    let ci_detected = !ci_providers(env).is_empty();
    let hint = match alias {
        "github" if from_env && ci_detected => {
            " (OPKSSH_PROVIDERS replaces the provider list, so the detected CI/CD providers \
             are not in it)"
        }
        "github" => {
            " (the github provider is only available inside GitHub Actions with \
             `permissions: id-token: write`, which sets ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN)"
        }
        "forgejo" | "codeberg" if from_env && ci_detected => {
            " (OPKSSH_PROVIDERS replaces the provider list, so the detected CI/CD providers \
             are not in it)"
        }
        "forgejo" | "codeberg" => {
            " (the forgejo and codeberg providers are only available inside Forgejo Actions \
             with `enable-openid-connect: true`, which sets ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN)"
        }
        "gitlab-ci" if from_env && ci_detected => {
            " (OPKSSH_PROVIDERS replaces the provider list, so the detected CI/CD providers \
             are not in it)"
        }
        "gitlab-ci" => {
            " (the gitlab-ci provider is only available inside GitLab CI, where GITLAB_CI=true, \
             with an ID token in OPENPUBKEY_JWT set through `id_tokens:` in .gitlab-ci.yml)"
        }
        _ => "",
    };
    error(format!("{base}{hint}"))
}

/// Turns an entry into a provider to log in with (§2.2.4).
///
/// # Errors
/// A bad issuer, an empty client ID, or a CI provider outside its CI.
pub fn to_provider(
    entry: &ProviderEntry,
    env: &Env,
    remote_redirect_uri: Option<&str>,
) -> Result<ProviderKind, ConfigError> {
    check_issuer(&entry.issuer)?;
    if entry.client_id.is_empty() {
        return Err(error("invalid provider client-ID value got ()"));
    }
    let is_ci = entry.client_id == CI_CLIENT_ID;
    if is_ci && entry.aliases().any(|alias| alias == "gitlab-ci") {
        if env.get("GITLAB_CI") != Some("true") {
            return Err(error(
                "the gitlab-ci provider needs GITLAB_CI=true (it only works inside GitLab CI)",
            ));
        }
        return Ok(ProviderKind::GitlabCi {
            issuer: entry.issuer.clone(),
        });
    }
    let actions = entry.issuer == GITHUB_ISSUER
        || (is_ci && entry.issuer.trim_end_matches('/').ends_with("/api/actions"));
    if actions {
        let (Some(request_url), Some(request_token)) = (
            env.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
            env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) else {
            return Err(error(
                "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN must be set \
                 (give the job `id-token: write` permission)",
            ));
        };
        if entry.issuer != GITHUB_ISSUER
            && forgejo_issuer(request_url).as_deref() != Some(entry.issuer.trim_end_matches('/'))
        {
            return Err(error(format!(
                "the Forgejo issuer {} does not match ACTIONS_ID_TOKEN_REQUEST_URL",
                entry.issuer
            )));
        }
        return Ok(ProviderKind::Actions {
            issuer: entry.issuer.trim_end_matches('/').to_owned(),
            request_url: request_url.to_owned(),
            request_token: request_token.to_owned(),
        });
    }
    let google = entry.issuer.starts_with("https://accounts.google.com");
    // Go passes the secret only to the Google and generic kinds.
    let secret_used = google
        || !(entry
            .issuer
            .starts_with("https://login.microsoftonline.com")
            || entry.issuer.trim_end_matches('/') == "https://gitlab.com"
            || entry.issuer == "https://issuer.hello.coop");
    let scopes = if entry.scopes.trim().is_empty() {
        "openid profile email".to_owned()
    } else {
        entry.scopes.clone()
    };
    let redirect_uris = if entry.redirect_uris.is_empty() {
        DEFAULT_REDIRECT_URIS.map(str::to_owned).to_vec()
    } else {
        entry.redirect_uris.clone()
    };
    let remote = remote_redirect_uri
        .filter(|uri| !uri.is_empty())
        .map(str::to_owned)
        .or_else(|| Some(entry.remote_redirect_uri.clone()).filter(|uri| !uri.is_empty()));
    Ok(ProviderKind::Browser(BrowserProvider {
        issuer: entry.issuer.clone(),
        client_id: entry.client_id.clone(),
        client_secret: Some(entry.client_secret.clone())
            .filter(|secret| secret_used && !secret.is_empty()),
        scopes,
        prompt: entry.prompt.clone(),
        access_type: entry.access_type.clone(),
        redirect_uris,
        remote_redirect_uri: remote,
    }))
}

/// Whether the provider kind can refresh its ID token (Go: Google, Azure and GitLab only).
/// Here any browser provider whose OP returns a refresh token can; CI providers cannot.
pub fn supports_refresh(kind: &ProviderKind) -> bool {
    matches!(kind, ProviderKind::Browser(_))
}

/// The name of a provider's button in the web chooser (§2.2.5).
pub fn chooser_name(issuer: &str) -> String {
    if issuer.starts_with("https://accounts.google.com") {
        return "google".into();
    }
    if issuer.starts_with("https://login.microsoftonline.com") {
        return "azure".into();
    }
    if issuer.trim_end_matches('/') == "https://gitlab.com" {
        return "gitlab".into();
    }
    if issuer == "https://issuer.hello.coop" {
        return "hello".into();
    }
    url_host(issuer).unwrap_or(issuer).to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::parse(
            "default_provider: two\nproviders:\n  - alias: one uno\n    issuer: https://one.example\n    client_id: c1\n  - alias: two\n    issuer: https://two.example\n    client_id: c2\n    scopes: openid\n",
        )
        .unwrap()
    }

    fn chosen(choice: Choice) -> ProviderEntry {
        match choice {
            Choice::Provider(entry) => *entry,
            Choice::WebChooser(_) => panic!("web chooser"),
        }
    }

    #[test]
    fn default_config_parses_with_go_defaults() {
        let default = ClientConfig::default_config();
        assert_eq!(default.default_provider.as_deref(), Some("webchooser"));
        let aliases: Vec<&str> = default
            .providers
            .iter()
            .flat_map(ProviderEntry::aliases)
            .collect();
        assert_eq!(aliases, ["google", "azure", "microsoft", "gitlab", "hello"]);
        let parsed = config();
        assert_eq!(parsed.providers[0].scopes, "openid profile email");
        assert_eq!(parsed.providers[0].prompt, "consent");
        assert_eq!(parsed.providers[0].access_type, "offline");
        assert_eq!(parsed.providers[0].redirect_uris.len(), 3);
        assert_eq!(parsed.providers[1].scopes, "openid");
    }

    #[test]
    fn agent_lifetime_is_seconds_or_a_duration() {
        let lifetime = |yaml: &str| ClientConfig::parse(yaml).unwrap().agent_lifetime();
        assert_eq!(config().agent_lifetime(), Ok(None));
        assert_eq!(
            lifetime("agent_lifetime: 12h\n"),
            Ok(Some(std::time::Duration::from_secs(43200)))
        );
        assert_eq!(
            lifetime("agent_lifetime: 28800\n"),
            Ok(Some(std::time::Duration::from_secs(28800)))
        );
        assert_eq!(
            lifetime("agent_lifetime: \"1h30m\"\n"),
            Ok(Some(std::time::Duration::from_secs(5400)))
        );
        for bad in [
            "agent_lifetime: 0\n",
            "agent_lifetime: 3d\n",
            "agent_lifetime: \"\"\n",
        ] {
            let problem = lifetime(bad).unwrap_err();
            assert!(
                problem
                    .0
                    .starts_with("invalid agent_lifetime in client config: "),
                "{bad}: {problem}"
            );
        }
    }

    #[test]
    fn provider_specs() {
        let entry = parse_provider_spec("https://op.example,cid", false).unwrap();
        assert_eq!(
            (entry.issuer.as_str(), entry.client_id.as_str()),
            ("https://op.example", "cid")
        );
        assert_eq!(entry.scopes, "openid email");
        assert_eq!(
            parse_provider_spec("https://op,cid,,", false)
                .unwrap()
                .scopes,
            "openid profile email"
        );
        assert_eq!(
            parse_provider_spec("https://op,cid,s,openid groups", false)
                .unwrap()
                .scopes,
            "openid groups"
        );
        assert!(
            parse_provider_spec("https://op", false)
                .unwrap_err()
                .0
                .starts_with("invalid provider config string")
        );
        assert_eq!(
            parse_provider_spec("https://op,", false).unwrap_err().0,
            "invalid provider client-ID value got ()"
        );
        assert!(
            parse_provider_spec("https://accounts.google.com,cid", false)
                .unwrap_err()
                .0
                .contains("google")
        );
        let list = parse_providers_env("a,https://a,ca;b,https://b,cb,sec").unwrap();
        assert_eq!(list[1].alias, "b");
        assert_eq!(list[1].client_secret, "sec");
    }

    #[test]
    fn resolution_order() {
        let config = config();
        let env = Env::default();
        let select = |alias, flag| Selection {
            provider_flag: flag,
            alias,
            config: Some(&config),
        };
        // --provider beats everything.
        assert_eq!(
            chosen(determine_provider(&select(Some("one"), Some("https://x,y")), &env).unwrap())
                .issuer,
            "https://x"
        );
        // Alias argument, then OPKSSH_DEFAULT, then default_provider.
        assert_eq!(
            chosen(determine_provider(&select(Some("uno"), None), &env).unwrap()).client_id,
            "c1"
        );
        let with_default = Env::from_pairs(&[("OPKSSH_DEFAULT", "one")]);
        assert_eq!(
            chosen(determine_provider(&select(None, None), &with_default).unwrap()).client_id,
            "c1"
        );
        assert_eq!(
            chosen(determine_provider(&select(None, None), &env).unwrap()).client_id,
            "c2"
        );
        // OPKSSH_PROVIDERS replaces the list.
        let replaced = Env::from_pairs(&[("OPKSSH_PROVIDERS", "two,https://three.example,c3")]);
        assert_eq!(
            chosen(determine_provider(&select(None, None), &replaced).unwrap()).client_id,
            "c3"
        );
        assert!(
            determine_provider(&select(Some("one"), None), &replaced)
                .unwrap_err()
                .0
                .contains("alias one")
        );
        // WEBCHOOSER in any case.
        assert!(
            matches!(determine_provider(&select(Some("webChooser"), None), &env).unwrap(), Choice::WebChooser(list) if list.len() == 2)
        );
        // Aliases are case-sensitive; duplicates are an error.
        assert!(determine_provider(&select(Some("ONE"), None), &env).is_err());
        let dup = Env::from_pairs(&[("OPKSSH_PROVIDERS", "a,https://a,c;a,https://b,c")]);
        assert!(
            determine_provider(&select(Some("a"), None), &dup)
                .unwrap_err()
                .0
                .contains("duplicate provider alias")
        );
        // No providers at all.
        let none = Selection {
            provider_flag: None,
            alias: None,
            config: None,
        };
        assert_eq!(
            determine_provider(&none, &env).unwrap_err().0,
            "no providers specified"
        );
    }

    #[test]
    fn ci_providers_and_hints() {
        let github = Env::from_pairs(&[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
        ]);
        assert_eq!(ci_providers(&github)[0].issuer, GITHUB_ISSUER);
        let forgejo = Env::from_pairs(&[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://codeberg.org/prefix/api/actions/_apis/pipelines/idtoken?x=1",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
        ]);
        let entry = &ci_providers(&forgejo)[0];
        assert_eq!(entry.issuer, "https://codeberg.org/prefix/api/actions");
        assert_eq!(entry.aliases().collect::<Vec<_>>(), ["forgejo", "codeberg"]);
        assert!(matches!(
            to_provider(entry, &forgejo, None).unwrap(),
            ProviderKind::Actions { .. }
        ));
        let gitlab = Env::from_pairs(&[
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", "https://gitlab.example"),
        ]);
        assert_eq!(ci_providers(&gitlab)[0].issuer, "https://gitlab.example");
        let config = config();
        let select = Selection {
            provider_flag: None,
            alias: Some("github"),
            config: Some(&config),
        };
        assert!(
            determine_provider(&select, &Env::default())
                .unwrap_err()
                .0
                .contains("GitHub Actions")
        );
        assert!(matches!(
            determine_provider(&select, &github).unwrap(),
            Choice::Provider(_)
        ));
        // CI providers are not offered in the chooser.
        let chooser = Selection {
            provider_flag: None,
            alias: Some("webchooser"),
            config: Some(&config),
        };
        assert!(
            matches!(determine_provider(&chooser, &github).unwrap(), Choice::WebChooser(list) if list.len() == 2)
        );
    }

    #[test]
    fn issuers_and_kinds() {
        assert!(check_issuer("https://op.example").is_ok());
        assert!(check_issuer("http://localhost:9998").is_ok());
        assert!(check_issuer("http://127.0.0.1").is_ok());
        for bad in [
            "http://op.example",
            "http://localhost.evil.com",
            "",
            "ftp://x",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
        let entry = parse_provider_spec("https://op.example,cid,sec", false).unwrap();
        let ProviderKind::Browser(browser) =
            to_provider(&entry, &Env::default(), Some("https://remote/cb")).unwrap()
        else {
            panic!()
        };
        assert_eq!(browser.client_secret.as_deref(), Some("sec"));
        assert_eq!(
            browser.remote_redirect_uri.as_deref(),
            Some("https://remote/cb")
        );
        let hello = parse_provider_spec("https://issuer.hello.coop,cid,sec", false).unwrap();
        let ProviderKind::Browser(browser) = to_provider(&hello, &Env::default(), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(browser.client_secret, None);
        assert_eq!(chooser_name("https://accounts.google.com"), "google");
        assert_eq!(chooser_name("https://op.example/realms/x"), "op.example");
    }

    #[test]
    fn debug_strings_hide_secrets() {
        let env = Env::from_pairs(&[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://x.actions.githubusercontent.com/t",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SECRET-TOKEN"),
        ]);
        assert!(!format!("{env:?}").contains("SECRET"));
        let kind = to_provider(&ci_providers(&env)[0], &env, None).unwrap();
        assert!(!format!("{kind:?}").contains("SECRET"));
        let entry = parse_provider_spec("https://op,cid,SECRET-CLIENT", false).unwrap();
        assert!(!format!("{entry:?}").contains("SECRET"));
        let browser = to_provider(&entry, &Env::default(), None).unwrap();
        assert!(!format!("{browser:?}").contains("SECRET"));
    }
}
