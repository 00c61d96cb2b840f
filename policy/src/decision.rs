//! The allow/deny decision (behaviour.md §4.2; Go: policy/enforcer.go `CheckPolicy`), with a
//! trace of which file and line matched or which check failed.

use crate::auth_id::AuthRow;
use crate::error::Location;
use crate::rule::{ClaimSet, MatchKind, go_equal_fold, match_identity};
use crate::server_config::DenyLists;
use opk_core::verify::VerifiedPkToken;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;

/// What the policy is asked: may the holder of this verified token log in as `principal`?
///
/// Built from a [`VerifiedPkToken`], so production code cannot reach [`Decision::Allow`]
/// without a token that passed verification.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    token: Option<&'a VerifiedPkToken>,
    claims: Map<String, Value>,
    principal: String,
    userinfo: Option<String>,
    ssh: SshRequest,
}

/// What sshd passed to `verify`, handed on to plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshRequest {
    /// `%k`: the base64 certificate.
    pub cert_b64: String,
    /// `%t`: the key type.
    pub key_type: String,
    /// Any further arguments.
    pub extra_args: Vec<String>,
}

impl<'a> PolicyInput<'a> {
    /// The input for a verified token and the requested principal (`%u`).
    pub fn new(token: &'a VerifiedPkToken, principal: &str) -> Self {
        Self {
            token: Some(token),
            claims: token.claims().object().clone(),
            principal: principal.to_owned(),
            userinfo: None,
            ssh: SshRequest::default(),
        }
    }

    /// Test-only: an input from bare claims, with no verified token behind it.
    #[cfg(any(test, feature = "test-util"))]
    pub fn danger_from_claims(claims: Map<String, Value>, principal: &str) -> Self {
        Self {
            token: None,
            claims,
            principal: principal.to_owned(),
            userinfo: None,
            ssh: SshRequest::default(),
        }
    }

    /// Adds the userinfo endpoint's JSON response. An empty response counts as none, as in
    /// Go.
    #[must_use]
    pub fn with_userinfo(mut self, userinfo: String) -> Self {
        self.userinfo = (!userinfo.is_empty()).then_some(userinfo);
        self
    }

    /// Adds sshd's arguments, for plugins.
    #[must_use]
    pub fn with_ssh(mut self, ssh: SshRequest) -> Self {
        self.ssh = ssh;
        self
    }

    /// The requested principal.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The ID-token claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The verified token, if any (always, outside tests).
    pub fn token(&self) -> Option<&'a VerifiedPkToken> {
        self.token
    }

    /// The userinfo JSON, if any.
    pub fn userinfo(&self) -> Option<&str> {
        self.userinfo.as_deref()
    }

    /// sshd's arguments.
    pub fn ssh(&self) -> &SshRequest {
        &self.ssh
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        self.claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `email`, empty if absent.
    pub fn email(&self) -> &str {
        self.claims
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Where a decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSource {
    /// A row of an `auth_id` file.
    Row(Location),
    /// `/etc/opk/config.yml`.
    Config(PathBuf),
    /// A `policy.d` plugin.
    Plugin(PathBuf),
    /// The policy files consulted as a whole.
    Files(Vec<PathBuf>),
    /// The userinfo response.
    Userinfo,
}

impl fmt::Display for TraceSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Row(location) => write!(formatter, "{location}"),
            Self::Config(path) | Self::Plugin(path) => write!(formatter, "{}", path.display()),
            Self::Files(paths) if paths.is_empty() => formatter.write_str("no policy file"),
            Self::Files(paths) => {
                let names: Vec<String> = paths
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                formatter.write_str(&names.join(", "))
            }
            Self::Userinfo => formatter.write_str("userinfo"),
        }
    }
}

/// Which check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `deny_emails` matched.
    DenyEmail,
    /// `deny_users` matched.
    DenyUser,
    /// A plugin answered `allow`.
    Plugin,
    /// An `auth_id` row matched, in this way.
    Row(MatchKind),
    /// The userinfo response is not usable JSON.
    UserinfoInvalid,
    /// The userinfo `sub` is not the ID token's.
    UserinfoSub,
    /// Neither the system nor the home policy could be loaded.
    PolicyUnavailable,
    /// No row matched.
    NoMatch,
}

impl fmt::Display for Check {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DenyEmail => formatter.write_str("deny_emails"),
            Self::DenyUser => formatter.write_str("deny_users"),
            Self::Plugin => formatter.write_str("policy plugin"),
            Self::Row(kind) => write!(formatter, "auth_id {kind} match"),
            Self::UserinfoInvalid => formatter.write_str("userinfo"),
            Self::UserinfoSub => formatter.write_str("userinfo sub"),
            Self::PolicyUnavailable => formatter.write_str("error loading policy"),
            Self::NoMatch => formatter.write_str("no matching policy"),
        }
    }
}

/// Which file and line matched, or which check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The check.
    pub check: Check,
    /// Where.
    pub source: TraceSource,
    /// A one-line explanation (Go's message where Go has one).
    pub detail: String,
}

impl fmt::Display for Trace {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.detail.replace(['\n', '\r'], " ");
        write!(formatter, "{} [{}: {}]", detail, self.check, self.source)
    }
}

/// Only this crate can make one, so only [`crate::Enforcer::evaluate`] and
/// [`evaluate_rows`] (which take a [`PolicyInput`], built from a verified token) can produce
/// a [`Decision::Allow`]. Match with `Decision::Allow { matched, .. }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowProof(());

impl AllowProof {
    pub(crate) const fn new() -> Self {
        Self(())
    }
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Access granted by this rule.
    Allow {
        /// What matched.
        matched: Trace,
        /// Evidence that the policy, not the caller, decided.
        proof: AllowProof,
    },
    /// Access refused for this reason.
    Deny {
        /// What failed.
        reason: Trace,
    },
}

impl Decision {
    /// Whether access is granted.
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The trace, whichever way it went.
    pub fn trace(&self) -> &Trace {
        match self {
            Self::Allow { matched, .. } => matched,
            Self::Deny { reason } => reason,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow { matched, .. } => write!(formatter, "allow: {matched}"),
            Self::Deny { reason } => write!(formatter, "deny: {reason}"),
        }
    }
}

/// A decision and the log lines gathered on the way (warnings, plugin results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict.
    pub decision: Decision,
    /// One line each, for the log; never for stdout.
    pub notes: Vec<String>,
}

/// Step 1: the deny lists, emails then users, ignoring case.
pub fn check_deny_lists(
    input: &PolicyInput<'_>,
    deny: &DenyLists,
    config_path: &std::path::Path,
) -> Option<Trace> {
    let email = input.email();
    if let Some(denied) = deny
        .emails
        .iter()
        .find(|denied| go_equal_fold(email, denied))
    {
        return Some(Trace {
            check: Check::DenyEmail,
            source: TraceSource::Config(config_path.to_path_buf()),
            detail: format!("denied email {denied}"),
        });
    }
    if let Some(denied) = deny
        .users
        .iter()
        .find(|denied| go_equal_fold(input.principal(), denied))
    {
        return Some(Trace {
            check: Check::DenyUser,
            source: TraceSource::Config(config_path.to_path_buf()),
            detail: format!("denied user {denied}"),
        });
    }
    None
}

/// Step 4: the `auth_id` rows (system first, then home), with the userinfo claims if any.
/// `files` are the policy files that were read, for the "no policy" message.
pub fn match_rows(input: &PolicyInput<'_>, rows: &[AuthRow], files: &[PathBuf]) -> Evaluation {
    let mut notes = Vec::new();
    let claims = ClaimSet::from_object(input.claims());
    let userinfo = match input.userinfo().map(parse_userinfo) {
        None => None,
        Some(Ok(userinfo)) => Some(userinfo),
        Some(Err(detail)) => {
            return deny(
                Trace {
                    check: Check::UserinfoInvalid,
                    source: TraceSource::Userinfo,
                    detail,
                },
                notes,
            );
        }
    };
    let issuer = input.issuer();
    for row in rows {
        // Go checks this inside the loop, so it only denies when there is a row.
        if let Some(userinfo) = &userinfo
            && userinfo.sub() != claims.sub()
        {
            return deny(
                Trace {
                    check: Check::UserinfoSub,
                    source: TraceSource::Userinfo,
                    detail: format!(
                        "userInfo sub claim ({}) does not match user policy sub claim ({})",
                        userinfo.sub(),
                        claims.sub()
                    ),
                },
                notes,
            );
        }
        if row.issuer != issuer || row.principal != input.principal() {
            continue;
        }
        for (which, set) in [("id token", Some(&claims)), ("userinfo", userinfo.as_ref())] {
            let Some(set) = set else { continue };
            let result = match_identity(&row.identity, set);
            notes.extend(
                result
                    .notes
                    .into_iter()
                    .map(|note| format!("{note} ({})", row.location)),
            );
            if let Some(kind) = result.matched {
                return Evaluation {
                    decision: Decision::Allow {
                        matched: Trace {
                            check: Check::Row(kind),
                            source: TraceSource::Row(row.location.clone()),
                            detail: format!(
                                "policy {} {} {} matched the {which} claims",
                                row.principal, row.identity, row.issuer
                            ),
                        },
                        proof: AllowProof::new(),
                    },
                    notes,
                };
            }
        }
    }
    let files_text: Vec<String> = files
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    deny(
        Trace {
            check: Check::NoMatch,
            source: TraceSource::Files(files.to_vec()),
            detail: format!(
                "no policy to allow {} with (issuer={issuer}) to assume {}, check policy config at {}",
                claims.email(),
                input.principal(),
                files_text.join(", ")
            ),
        },
        notes,
    )
}

/// The pure part of the decision without plugins: deny lists, then rows. What the
/// table-driven tests exercise; [`crate::Enforcer`] adds plugins and file loading.
pub fn evaluate_rows(
    input: &PolicyInput<'_>,
    deny_lists: &DenyLists,
    config_path: &std::path::Path,
    rows: &[AuthRow],
    files: &[PathBuf],
) -> Evaluation {
    if let Some(reason) = check_deny_lists(input, deny_lists, config_path) {
        return deny(reason, Vec::new());
    }
    match_rows(input, rows, files)
}

pub(crate) fn deny(reason: Trace, notes: Vec<String>) -> Evaluation {
    Evaluation {
        decision: Decision::Deny { reason },
        notes,
    }
}

/// Go decodes userinfo into `{email string, sub string}` plus every claim: a response that
/// is not an object, or has a non-string `email`/`sub`, is refused.
fn parse_userinfo(text: &str) -> Result<ClaimSet, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| format!("error unmarshalling claims from userinfo endpoint: {error}"))?;
    let Value::Object(object) = value else {
        return Err(
            "error unmarshalling claims from userinfo endpoint: not a JSON object".to_owned(),
        );
    };
    for name in ["email", "sub"] {
        if object
            .get(name)
            .is_some_and(|value| !value.is_string() && !value.is_null())
        {
            return Err(format!(
                "error unmarshalling claims from userinfo endpoint: {name} is not a string"
            ));
        }
    }
    Ok(ClaimSet::from_object(&object))
}
