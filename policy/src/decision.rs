//! The allow/deny decision (behaviour.md §4.2; Go: policy/enforcer.go `CheckPolicy`), with a
//! trace of which file and line matched or which check failed.

use crate::account::AccountFacts;
use crate::auth_id::AuthRow;
use crate::error::Location;
use crate::rule::{
    ClaimSet, ClaimSource, MatchKind, TEMPLATE_MARK, TEMPLATE_PRINCIPAL, Template, go_equal_fold,
    match_identity, match_template,
};
use crate::server_config::DenyLists;
use opk_core::verify::{VerifiedPkToken, VerifyCheck};
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

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
    /// Filled on first use: only a matching template row needs them, so an ordinary verify
    /// does no user-database lookup for them.
    accounts: OnceLock<AccountFacts>,
    /// Whether [`Self::account_facts`] reads them from this system (else: unknown).
    system_accounts: bool,
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
            accounts: OnceLock::new(),
            system_accounts: false,
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
            accounts: OnceLock::new(),
            system_accounts: false,
        }
    }

    /// Adds the system's facts about the principal's account, which template rows are
    /// checked against. Without them every template row is refused.
    #[must_use]
    pub fn with_account_facts(mut self, facts: AccountFacts) -> Self {
        self.accounts = OnceLock::from(facts);
        self
    }

    /// Reads the principal's account facts from this system ([`AccountFacts::of_system`]),
    /// when a template row first needs them.
    #[must_use]
    pub fn with_system_account_facts(mut self) -> Self {
        self.accounts = OnceLock::new();
        self.system_accounts = true;
        self
    }

    /// The facts about the principal's account.
    pub fn account_facts(&self) -> &AccountFacts {
        self.accounts.get_or_init(|| {
            if self.system_accounts {
                AccountFacts::of_system(&self.principal)
            } else {
                AccountFacts::unknown()
            }
        })
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
    /// A row of an `auth_id` or `providers` file.
    Row(Location),
    /// `/etc/opk/config.yml`.
    Config(PathBuf),
    /// A `policy.d` plugin.
    Plugin(PathBuf),
    /// The policy files consulted as a whole.
    Files(Vec<PathBuf>),
    /// The userinfo response.
    Userinfo,
    /// The certificate sshd was offered, and the PK token inside it.
    Certificate,
    /// The OP, by issuer (its discovery document and JWKS, through the cache).
    Issuer(String),
}

impl TraceSource {
    /// The file (and line) a step read, if it read one.
    pub fn file(&self) -> Option<String> {
        match self {
            Self::Row(_) | Self::Config(_) | Self::Plugin(_) => Some(self.to_string()),
            Self::Files(paths) if !paths.is_empty() => Some(self.to_string()),
            Self::Files(_) | Self::Userinfo | Self::Certificate | Self::Issuer(_) => None,
        }
    }
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
            Self::Certificate => formatter.write_str("certificate"),
            Self::Issuer(issuer) => formatter.write_str(issuer),
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
    /// Neither deny list matched.
    DenyLists,
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
    /// `%t` is an opkssh certificate type.
    CertificateType,
    /// The certificate decodes.
    Certificate,
    /// The certificate is signed by its own key.
    SelfSignature,
    /// The `openpubkey-pkt` extension holds a PK token.
    PkToken,
    /// The token's issuer has a providers row.
    Provider,
    /// The OP's keys could be had (cache or discovery and JWKS).
    OpKeys,
    /// One check of the PK token's verification.
    Token(VerifyCheck),
    /// The certificate's key is the key the PK token commits to (`upk`).
    Upk,
    /// The userinfo endpoint, called with the certificate's access token.
    Userinfo,
    /// The verify deadline.
    Deadline,
    /// The certificate's principals are safe to echo to sshd (#597).
    CertPrincipals,
    /// `/etc/opk/providers` loads.
    ProvidersFile,
    /// `/etc/opk/config.yml` loads.
    ServerConfig,
    /// The system `auth_id` loads.
    SystemPolicy,
    /// The principal's home `auth_id` loads.
    HomePolicy,
    /// An `auth_id` row that does not let this login in.
    Rule,
    /// `chain_authorized_keys_command`, for a key opkssh did not let in.
    Chain,
}

impl fmt::Display for Check {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DenyEmail => formatter.write_str("deny_emails"),
            Self::DenyUser => formatter.write_str("deny_users"),
            Self::DenyLists => formatter.write_str("deny lists"),
            Self::Plugin => formatter.write_str("policy plugin"),
            Self::Row(kind) => write!(formatter, "auth_id {kind} match"),
            Self::UserinfoInvalid => formatter.write_str("userinfo"),
            Self::UserinfoSub => formatter.write_str("userinfo sub"),
            Self::PolicyUnavailable => formatter.write_str("error loading policy"),
            Self::NoMatch => formatter.write_str("no matching policy"),
            Self::CertificateType => formatter.write_str("certificate type"),
            Self::Certificate => formatter.write_str("certificate"),
            Self::SelfSignature => formatter.write_str("certificate self-signature"),
            Self::PkToken => formatter.write_str("PK token"),
            Self::Provider => formatter.write_str("provider"),
            Self::OpKeys => formatter.write_str("OP keys"),
            Self::Token(check) => write!(formatter, "{check}"),
            Self::Upk => formatter.write_str("certificate key = upk"),
            Self::Userinfo => formatter.write_str("userinfo"),
            Self::Deadline => formatter.write_str("deadline"),
            Self::CertPrincipals => formatter.write_str("certificate principals"),
            Self::ProvidersFile => formatter.write_str("providers file"),
            Self::ServerConfig => formatter.write_str("server config"),
            Self::SystemPolicy => formatter.write_str("system policy"),
            Self::HomePolicy => formatter.write_str("home policy"),
            Self::Rule => formatter.write_str("auth_id row"),
            Self::Chain => formatter.write_str("chained AuthorizedKeysCommand"),
        }
    }
}

/// How a step came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The check held.
    Pass,
    /// The check did not hold.
    Fail,
    /// The check did not apply to this login, or was not possible and is optional.
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
        })
    }
}

/// One step of a decision: what was checked, where, how it came out and why.
///
/// Details carry what `verify` logs anyway (fingerprints, issuer, `sub`, email, claim values,
/// file names), never a token or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// How it came out.
    pub outcome: Outcome,
    /// The check.
    pub check: Check,
    /// Where.
    pub source: TraceSource,
    /// Why, in one line.
    pub detail: String,
}

impl Step {
    /// A step that held.
    pub fn pass(check: Check, source: TraceSource, detail: impl Into<String>) -> Self {
        Self::new(Outcome::Pass, check, source, detail)
    }

    /// A step that did not hold.
    pub fn fail(check: Check, source: TraceSource, detail: impl Into<String>) -> Self {
        Self::new(Outcome::Fail, check, source, detail)
    }

    /// A step that did not apply.
    pub fn skip(check: Check, source: TraceSource, detail: impl Into<String>) -> Self {
        Self::new(Outcome::Skip, check, source, detail)
    }

    fn new(outcome: Outcome, check: Check, source: TraceSource, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            check,
            source,
            detail: detail.into(),
        }
    }
}

/// `pass  auth_id row /etc/opk/auth_id:3: principal root != alice`: outcome, check, the file
/// (and line) when one was read, then the detail. The detail can quote claims as they came,
/// control characters included: whatever writes it to a log or a terminal escapes it
/// (`opk_core::escape`).
impl fmt::Display for Step {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}  {}", self.outcome, self.check)?;
        if let Some(file) = self.source.file() {
            write!(formatter, " {file}")?;
        }
        write!(formatter, ": {}", self.detail)
    }
}

/// Which file and line matched, or which check failed, and every step that led there.
///
/// `check`, `source` and `detail` are the deciding step (the rule that allowed, or the check
/// that denied); `steps` are all steps in the order they were taken, the deciding one
/// included. The deciding step need not be the last: plugins run after a row denial, and
/// `verify` checks the certificate principals after an allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The check.
    pub check: Check,
    /// Where.
    pub source: TraceSource,
    /// A one-line explanation (Go's message where Go has one).
    pub detail: String,
    /// Every step, in order.
    pub steps: Vec<Step>,
}

impl Trace {
    /// The trace whose deciding step is `deciding`, appended to `steps`.
    pub fn ending_with(mut steps: Vec<Step>, deciding: Step) -> Self {
        let trace = Self::deciding(&deciding, Vec::new());
        steps.push(deciding);
        Self { steps, ..trace }
    }

    /// The trace whose deciding step is `deciding`, already among `steps`.
    pub fn deciding(deciding: &Step, steps: Vec<Step>) -> Self {
        Self {
            check: deciding.check,
            source: deciding.source.clone(),
            detail: deciding.detail.clone(),
            steps,
        }
    }

    /// The deciding step as a [`Step`]: `outcome` is [`Outcome::Pass`] for an allow and
    /// [`Outcome::Fail`] for a denial.
    pub fn deciding_step(&self, outcome: Outcome) -> Step {
        Step::new(
            outcome,
            self.check,
            self.source.clone(),
            self.detail.clone(),
        )
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = &self.detail;
        match self.source {
            TraceSource::Certificate => write!(formatter, "{} [{}]", detail, self.check),
            _ => write!(formatter, "{} [{}: {}]", detail, self.check, self.source),
        }
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
        /// The claims the deciding row matched: the ID token's or the userinfo response's
        /// (a plugin's allow counts as the ID token's).
        source: ClaimSource,
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

/// Step 1: the deny lists, emails then users, ignoring case. Records the step; returns it
/// when a list denies.
///
/// Stricter than Go, which checks `deny_emails` against the ID token's `email` only: every
/// email the decision can use is checked, the userinfo response's too, since `auth_id` rows
/// and plugins also match userinfo claims. Otherwise a denied user could present an ID token
/// without `email` and an access token whose userinfo names them, and a row such as
/// `root oidc-match-end:email:@corp.com` would let them in.
pub fn check_deny_lists(
    input: &PolicyInput<'_>,
    deny: &DenyLists,
    config_path: &std::path::Path,
    steps: &mut Vec<Step>,
) -> Option<Step> {
    let source = || TraceSource::Config(config_path.to_path_buf());
    let email = input.email();
    // A userinfo response that does not parse denies later, at the rows, whatever it says.
    let userinfo = input.userinfo().and_then(|text| parse_userinfo(text).ok());
    let userinfo_email = userinfo
        .as_ref()
        .map(ClaimSet::email)
        .filter(|email| !email.is_empty());
    for (from, email) in [("", Some(email)), (" (from userinfo)", userinfo_email)] {
        let Some(email) = email else { continue };
        if let Some(denied) = deny
            .emails
            .iter()
            .find(|denied| go_equal_fold(email, denied))
        {
            return Some(Step::fail(
                Check::DenyEmail,
                source(),
                format!("denied email {denied}{from}"),
            ));
        }
    }
    if let Some(denied) = deny
        .users
        .iter()
        .find(|denied| go_equal_fold(input.principal(), denied))
    {
        return Some(Step::fail(
            Check::DenyUser,
            source(),
            format!("denied user {denied}"),
        ));
    }
    steps.push(Step::pass(
        Check::DenyLists,
        source(),
        format!(
            "neither email {email:?}{} nor principal {} is in deny_emails ({}) or deny_users ({})",
            userinfo_email.map_or_else(String::new, |email| format!(" (userinfo: {email:?})")),
            input.principal(),
            deny.emails.len(),
            deny.users.len()
        ),
    ));
    None
}

/// Step 4: the `auth_id` rows (system first, then home), with the userinfo claims if any.
/// `files` are the policy files that were read, for the "no policy" message; `steps` are the
/// steps so far. Every row gets a step saying why it does or does not let this login in.
pub fn match_rows(
    input: &PolicyInput<'_>,
    rows: &[AuthRow],
    files: &[PathBuf],
    mut steps: Vec<Step>,
) -> Evaluation {
    let mut notes = Vec::new();
    let claims = ClaimSet::from_object(input.claims());
    let userinfo = match input.userinfo().map(parse_userinfo) {
        None => None,
        Some(Ok(userinfo)) => Some(userinfo),
        Some(Err(detail)) => {
            return deny(
                Step::fail(Check::UserinfoInvalid, TraceSource::Userinfo, detail),
                steps,
                notes,
            );
        }
    };
    let issuer = input.issuer();
    let mut template_refusals = Vec::new();
    for row in rows {
        let source = || TraceSource::Row(row.location.clone());
        // Go checks this inside the loop, so it only denies when there is a row.
        if let Some(userinfo) = &userinfo
            && userinfo.sub() != claims.sub()
        {
            return deny(
                Step::fail(
                    Check::UserinfoSub,
                    TraceSource::Userinfo,
                    format!(
                        "userInfo sub claim ({}) does not match user policy sub claim ({})",
                        userinfo.sub(),
                        claims.sub()
                    ),
                ),
                steps,
                notes,
            );
        }
        let template = row.principal == TEMPLATE_PRINCIPAL;
        if !template && row.principal != input.principal() {
            steps.push(Step::skip(
                Check::Rule,
                source(),
                format!("principal {} != {}", row.principal, input.principal()),
            ));
            continue;
        }
        if row.issuer != issuer {
            steps.push(Step::skip(
                Check::Rule,
                source(),
                format!("issuer {} != {issuer}", row.issuer),
            ));
            continue;
        }
        // Stricter than Go, which reads `%u` literally: an identity meant as a template in a
        // row for one account is a mistake, and a literal `%u` local part is a real address.
        // `Err((why, true))` is a row that can never match, an admin's mistake worth a log
        // line; `Err((why, false))` is an unsafe principal, the login's, for the trace only.
        let refusal = if template {
            Template::parse(&row.identity)
                .map_err(|why| (format!("template row refused: {why}"), true))
                .and_then(|parsed| {
                    parsed
                        .expand(input.principal())
                        .map(|expanded| (parsed, expanded))
                        .map_err(|why| (format!("template row does not apply: {why}"), false))
                })
                .map(Some)
        } else if row.identity.contains(TEMPLATE_MARK) {
            Err((
                format!(
                    "row refused: identity {} contains %u but the principal is {}, not *; only template rows (principal *) replace %u",
                    row.identity, row.principal
                ),
                true,
            ))
        } else {
            Ok(None)
        };
        let expansion = match refusal {
            Ok(expansion) => expansion,
            Err((why, logged)) => {
                if logged {
                    notes.push(format!("warning: {why} ({})", row.location));
                }
                steps.push(Step::fail(Check::Rule, source(), why));
                continue;
            }
        };
        let shown = match &expansion {
            Some((_, expanded)) => format!(
                "{} (template, %u = {}: {expanded})",
                row.identity,
                input.principal()
            ),
            None => row.identity.clone(),
        };
        let refusal = expansion
            .as_ref()
            .and_then(|_| input.account_facts().template_refusal(input.principal()));
        let mut reasons = Vec::new();
        let mut refused = false;
        for (which, set) in [("id token", Some(&claims)), ("userinfo", userinfo.as_ref())] {
            let Some(set) = set else { continue };
            let result = match &expansion {
                Some((parsed, _)) => match_template(parsed, input.principal(), set),
                None => match_identity(&row.identity, set),
            };
            // Checked only once the row matches, so a row for someone else still reads as
            // not matching; the warnings of a refused match are moot.
            if let (Some(_), Some(refusal)) = (result.matched, &refusal) {
                let why = format!(
                    "{shown} matched the {which} claims ({}), but {} is refused: {refusal}",
                    result.reason,
                    input.principal()
                );
                template_refusals.push(format!("template row {} refused: {refusal}", row.location));
                steps.push(Step::fail(Check::Rule, source(), why));
                refused = true;
                break;
            }
            notes.extend(
                result
                    .notes
                    .into_iter()
                    .map(|note| format!("{note} ({})", row.location)),
            );
            if let Some(kind) = result.matched {
                let matched = Step::pass(
                    Check::Row(kind),
                    source(),
                    format!(
                        "policy {} {shown} {} matched the {which} claims: {}",
                        row.principal, row.issuer, result.reason
                    ),
                );
                return Evaluation {
                    decision: Decision::Allow {
                        matched: Trace::ending_with(steps, matched),
                        source: set.source(),
                        proof: AllowProof::new(),
                    },
                    notes,
                };
            }
            reasons.push(format!("{which}: {}", result.reason));
        }
        if refused {
            continue;
        }
        steps.push(Step::fail(
            Check::Rule,
            source(),
            format!("{shown} does not match ({})", reasons.join("; ")),
        ));
    }
    let files_text: Vec<String> = files
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    // A template that matched but may not grant is the real story of this denial: it goes
    // into the deciding step, which verify logs at info level.
    let refusals = if template_refusals.is_empty() {
        String::new()
    } else {
        format!("; {}", template_refusals.join("; "))
    };
    deny(
        Step::fail(
            Check::NoMatch,
            TraceSource::Files(files.to_vec()),
            format!(
                "no policy to allow {} with (issuer={issuer}) to assume {}, check policy config at {}{refusals}",
                claims.email(),
                input.principal(),
                files_text.join(", ")
            ),
        ),
        steps,
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
    let mut steps = Vec::new();
    if let Some(reason) = check_deny_lists(input, deny_lists, config_path, &mut steps) {
        return deny(reason, steps, Vec::new());
    }
    match_rows(input, rows, files, steps)
}

/// A denial by `reason`, after `steps`.
pub(crate) fn deny(reason: Step, steps: Vec<Step>, notes: Vec<String>) -> Evaluation {
    Evaluation {
        decision: Decision::Deny {
            reason: Trace::ending_with(steps, reason),
        },
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
    Ok(ClaimSet::from_object(&object).with_source(ClaimSource::Userinfo))
}
