//! One `auth_id` identity attribute against one set of claims (behaviour.md §4.3; Go:
//! policy/enforcer.go `validateClaim`), plus the cert-principal allowlist (§4.5, #597) and
//! the lints `add` and `audit` use to refuse or report rows that never match.

pub(crate) mod glob;

use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(crate) const OIDC_CLAIM: &str = "oidc:";
pub(crate) const EMAIL_SUFFIX: &str = "oidc-match-end:email:";
pub(crate) const SUB_GLOB: &str = "repo:";

/// The claims a row is matched against: the ID token's, or the userinfo endpoint's.
///
/// Values are flattened as Go's `checkedClaims` does: a string is itself, an array gives each
/// element, anything else its Go `fmt.Sprint` text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimSet {
    email: String,
    sub: String,
    values: BTreeMap<String, Vec<String>>,
    source: ClaimSource,
}

/// Where a set of claims came from, for the log lines that quote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimSource {
    /// The verified ID token.
    #[default]
    IdToken,
    /// The userinfo endpoint's response for the certificate's access token.
    Userinfo,
}

impl std::fmt::Display for ClaimSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::IdToken => "ID Token",
            Self::Userinfo => "userinfo response",
        })
    }
}

/// What `email_verified` says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EmailVerified {
    /// `true` or `"true"`, in any case.
    True,
    /// The claim is absent (Entra ID never sends it).
    Missing,
    /// Anything else: `false`, `"false"`, `null`, an empty list; the first value, or `[]`.
    Not(String),
}

impl ClaimSet {
    /// Flattens a claims object. `email` and `sub` read as empty when absent or not strings;
    /// callers that must refuse non-string values (userinfo) check first.
    pub fn from_object(object: &Map<String, Value>) -> Self {
        let text = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let values = object
            .iter()
            .map(|(name, value)| {
                let flattened = match value {
                    Value::String(text) => vec![text.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(text) => text.clone(),
                            other => go_sprint(other),
                        })
                        .collect(),
                    other => vec![go_sprint(other)],
                };
                (name.clone(), flattened)
            })
            .collect();
        Self {
            email: text("email"),
            sub: text("sub"),
            values,
            source: ClaimSource::IdToken,
        }
    }

    /// The same claims, from `source`.
    #[must_use]
    pub fn with_source(mut self, source: ClaimSource) -> Self {
        self.source = source;
        self
    }

    /// Where the claims came from.
    pub fn source(&self) -> ClaimSource {
        self.source
    }

    fn email_verified(&self) -> EmailVerified {
        match self
            .values
            .get("email_verified")
            .map(|values| values.first())
        {
            None => EmailVerified::Missing,
            Some(Some(value)) if value.eq_ignore_ascii_case("true") => EmailVerified::True,
            Some(Some(value)) => EmailVerified::Not(value.clone()),
            Some(None) => EmailVerified::Not("[]".to_owned()),
        }
    }

    /// `email`, empty if absent.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// `sub`, empty if absent.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The flattened values of a claim.
    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Go's `fmt.Sprint` of a value decoded by `encoding/json` into `any` (numbers are float64).
pub(crate) fn go_sprint(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.as_f64().map(go_float).unwrap_or_default(),
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sprint).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            // Go prints maps with sorted keys; serde_json's map is sorted too.
            let inner: Vec<String> = map
                .iter()
                .map(|(key, item)| format!("{key}:{}", go_sprint(item)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which `%v` uses: the shortest round-trip digits, in
/// exponent form when the decimal exponent is below -4 or at least 6 (Go decides with
/// precision 6 when the precision is "shortest").
pub(crate) fn go_float(number: f64) -> String {
    if number.is_nan() {
        return "NaN".to_owned();
    }
    if number.is_infinite() {
        return if number > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if number == 0.0 {
        return if number.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. `-1.2345e7`.
    let scientific = format!("{number:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    // Plain decimal: place the point `exponent + 1` digits in.
    let point = exponent.saturating_add(1);
    let body = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(point.unsigned_abs()).unwrap_or_default());
        format!("0.{zeros}{digits}")
    } else {
        let point = usize::try_from(point).unwrap_or_default();
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point.saturating_sub(digits.len())))
        } else {
            let (whole, fraction) = digits.split_at(point);
            format!("{whole}.{fraction}")
        }
    };
    format!("{sign}{body}")
}

/// How an identity attribute reads (behaviour.md §3.3 and §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Matches any value and is therefore refused: a bare `oidc:`, `oidc-match-end:email:` or
    /// `repo:` (#596, compared case-insensitively), or (stricter than Go) an empty attribute,
    /// which Go lets match a token without an email.
    Unsafe,
    /// An `oidc:` attribute with fewer than three `:`-fields (#593).
    MalformedClaim,
    /// `oidc:<claim>:<value>`: the claim's values contain `value` exactly.
    Claim {
        /// The claim name, surrounding `"` removed.
        name: String,
        /// The required value (the last field; middle fields are ignored, as in Go).
        value: String,
        /// How many `:`-fields the attribute had (more than 3 means ignored fields).
        fields: usize,
    },
    /// `oidc-match-end:email:<suffix>`: the email ends with `suffix`, ignoring case.
    EmailSuffix(String),
    /// `repo:<glob>`: `sub` matches the glob; otherwise like [`Identity::Plain`].
    SubGlob(String),
    /// An email (case-insensitive) or a `sub` (exact).
    Plain(String),
}

impl Identity {
    /// Reads an attribute.
    pub fn parse(attribute: &str) -> Self {
        if attribute.is_empty()
            || [EMAIL_SUFFIX, OIDC_CLAIM, SUB_GLOB]
                .iter()
                .any(|prefix| attribute.eq_ignore_ascii_case(prefix))
        {
            return Self::Unsafe;
        }
        if attribute.starts_with(OIDC_CLAIM) {
            let fields = escaped_split(attribute, ':');
            return match (fields.get(1), fields.last()) {
                (Some(name), Some(value)) if fields.len() >= 3 => Self::Claim {
                    name: name.trim_matches('"').to_owned(),
                    value: (*value).to_owned(),
                    fields: fields.len(),
                },
                _ => Self::MalformedClaim,
            };
        }
        if let Some(suffix) = attribute.strip_prefix(EMAIL_SUFFIX) {
            return Self::EmailSuffix(suffix.to_owned());
        }
        if attribute.starts_with(SUB_GLOB) {
            return Self::SubGlob(attribute.to_owned());
        }
        Self::Plain(attribute.to_owned())
    }
}

/// Go's `EscapedSplit`: split on `sep` outside `"…"`, dropping empty fields.
pub(crate) fn escaped_split(text: &str, sep: char) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut quoted = false;
    let mut start = 0usize;
    for (index, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && c == sep {
            if let Some(field) = text.get(start..index)
                && !field.is_empty()
            {
                fields.push(field);
            }
            start = index.saturating_add(c.len_utf8());
        }
    }
    if let Some(field) = text.get(start..)
        && !field.is_empty()
    {
        fields.push(field);
    }
    fields
}

/// How a row matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `oidc:` claim value.
    Claim,
    /// `oidc-match-end:email:` suffix.
    EmailSuffix,
    /// `repo:` glob on `sub`.
    SubGlob,
    /// Email, ignoring case.
    Email,
    /// `sub`, exactly.
    Sub,
}

impl MatchKind {
    fn uses_email(self) -> bool {
        matches!(self, Self::EmailSuffix | Self::Email)
    }
}

impl std::fmt::Display for MatchKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Claim => "claim",
            Self::EmailSuffix => "email suffix",
            Self::SubGlob => "sub glob",
            Self::Email => "email",
            Self::Sub => "sub",
        })
    }
}

/// The result of one attribute against one claim set, with the log lines Go would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// `Some` when the row grants.
    pub matched: Option<MatchKind>,
    /// Warnings for the log (unsafe rule, malformed rule, bad glob, unverified email).
    pub notes: Vec<String>,
    /// Why it matched or did not, in one line naming the claim values compared (for the
    /// decision trace).
    pub reason: String,
}

/// Matches an attribute against claims, in Go's order (behaviour.md §4.3).
pub fn match_identity(attribute: &str, claims: &ClaimSet) -> RuleMatch {
    let mut notes = Vec::new();
    let (matched, mut reason) = match_inner(attribute, claims, &mut notes);
    if let Some(kind) = matched
        && kind.uses_email()
        && let Some(note) = email_verified_note(attribute, claims)
    {
        notes.push(note);
        let verified = claims.values("email_verified").first().map_or_else(
            || "no email_verified claim".to_owned(),
            |value| format!("email_verified {value}"),
        );
        reason.push_str(&format!(
            "; email {} not verified ({verified}): a warning, not a denial, as in Go",
            claims.email
        ));
    }
    RuleMatch {
        matched,
        notes,
        reason,
    }
}

fn match_inner(
    attribute: &str,
    claims: &ClaimSet,
    notes: &mut Vec<String>,
) -> (Option<MatchKind>, String) {
    // An email that itself looks like a rule never matches anything (anti-injection).
    if claims.email.starts_with(EMAIL_SUFFIX) {
        return (
            None,
            format!("email {} looks like a rule and never matches", claims.email),
        );
    }
    let identity = Identity::parse(attribute);
    let mut suffix_match = false;
    let mut tried = Vec::new();
    match &identity {
        Identity::Unsafe => {
            notes.push(format!(
                "error: rejecting unsafe match - policy ({attribute:?}) matches any value"
            ));
            return (
                None,
                format!("unsafe rule {attribute:?} would match any value"),
            );
        }
        Identity::MalformedClaim => {
            notes.push(format!(
                "warning: malformed oidc identity attribute {attribute:?} in policy, expected oidc:<claim>:<value>"
            ));
            return (
                None,
                format!("malformed rule {attribute:?}, expected oidc:<claim>:<value>"),
            );
        }
        Identity::Claim { name, value, .. } => {
            let values = claims.values(name);
            if values.iter().any(|candidate| candidate == value) {
                return (
                    Some(MatchKind::Claim),
                    format!("claim {name} contains {value}"),
                );
            }
            if values.is_empty() {
                return (None, format!("claim {name} not present (needs {value})"));
            }
            return (
                None,
                format!("claim {name} is [{}], without {value}", values.join(", ")),
            );
        }
        Identity::EmailSuffix(suffix) => {
            suffix_match = !claims.email.is_empty() && email_suffix_matches(&claims.email, suffix);
            tried.push(if claims.email.is_empty() {
                "no email claim".to_owned()
            } else {
                format!("email {} does not end with {suffix}", claims.email)
            });
        }
        Identity::SubGlob(pattern) => match glob::matches(pattern, &claims.sub) {
            Ok(true) => {
                return (
                    Some(MatchKind::SubGlob),
                    format!("sub {} matches {pattern}", claims.sub),
                );
            }
            Ok(false) => tried.push(format!("sub {} does not match {pattern}", claims.sub)),
            Err(error) => {
                notes.push(format!(
                    "warning: invalid glob pattern {pattern:?} in policy: {error}"
                ));
                tried.push(format!("invalid glob {pattern:?}: {error}"));
            }
        },
        Identity::Plain(_) => {}
    }
    if suffix_match {
        return (
            Some(MatchKind::EmailSuffix),
            format!("email {} ends with {attribute}", claims.email),
        );
    }
    // Stricter than Go: an absent email or sub never equals anything.
    if !claims.email.is_empty() && go_equal_fold(&claims.email, attribute) {
        return (
            Some(MatchKind::Email),
            format!("email {} matches", claims.email),
        );
    }
    if !claims.sub.is_empty() && claims.sub == attribute {
        return (Some(MatchKind::Sub), format!("sub {} matches", claims.sub));
    }
    if matches!(identity, Identity::Plain(_)) {
        tried.push(if claims.email.is_empty() {
            "no email claim".to_owned()
        } else {
            format!("email {} != {attribute}", claims.email)
        });
        tried.push(format!("sub {} != {attribute}", claims.sub));
    }
    (None, tried.join(", "))
}

/// `oidc-match-end:email:<suffix>`: the lower-cased email ends with the lower-cased suffix.
/// Stricter than Go (#589): a suffix with no `@` is a domain, so it must start at a label
/// boundary (`example.com` matches `bob@example.com` and `bob@eu.example.com`, not
/// `bob@evil-example.com`); a suffix with an `@` is compared as written.
fn email_suffix_matches(email: &str, suffix: &str) -> bool {
    let email = go_lower(email);
    let suffix = go_lower(suffix);
    let Some(before) = email.strip_suffix(suffix.as_str()) else {
        return false;
    };
    suffix.contains('@')
        || suffix.starts_with('.')
        || before.ends_with('@')
        || before.ends_with('.')
}

/// The warning for an email match without a verified email, naming the email and the claims
/// it came from.
fn email_verified_note(attribute: &str, claims: &ClaimSet) -> Option<String> {
    let source = claims.source;
    match claims.values("email_verified").first() {
        None => Some(format!(
            "warning: policy {attribute:?} matched on email {:?} but the {source} has no email_verified claim, consider matching on sub instead",
            claims.email
        )),
        Some(value) if !value.eq_ignore_ascii_case("true") => Some(format!(
            "warning: policy {attribute:?} matched on email {:?} but the {source} sets email_verified to {value:?}, consider matching on sub instead",
            claims.email
        )),
        Some(_) => None,
    }
}

/// Why a template that matched an email does not grant: the provider says the email is not
/// verified. `None` when it is verified or says nothing (that match only warns).
fn template_unverified(claims: &ClaimSet) -> Option<String> {
    match claims.email_verified() {
        EmailVerified::True | EmailVerified::Missing => None,
        EmailVerified::Not(value) => Some(format!(
            "but the {} sets email_verified to {value}: a template never grants on an unverified email",
            claims.source
        )),
    }
}

/// Go's `strings.ToLower`, rune by rune (no context-dependent final sigma).
pub(crate) fn go_lower(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(single), None) => single,
                // Go maps runes one to one; keep the rune when Rust would expand it.
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.EqualFold`, approximated rune by rune with simple lower/upper mappings.
pub(crate) fn go_equal_fold(left: &str, right: &str) -> bool {
    let mut left = left.chars();
    let mut right = right.chars();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) => {
                if a != b && !fold_equal(a, b) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn fold_equal(a: char, b: char) -> bool {
    let lower = |c: char| {
        let mut it = c.to_lowercase();
        match (it.next(), it.next()) {
            (Some(x), None) => x,
            _ => c,
        }
    };
    let upper = |c: char| {
        let mut it = c.to_uppercase();
        match (it.next(), it.next()) {
            (Some(x), None) => x,
            _ => c,
        }
    };
    lower(a) == lower(b) || upper(a) == upper(b)
}

/// Whether a cert principal may be echoed into the `principals="…"` option (#597):
/// `^[a-zA-Z0-9_][a-zA-Z0-9._+@-]{0,127}\$?$`.
pub fn is_safe_principal(principal: &str) -> bool {
    let body = principal.strip_suffix('$').unwrap_or(principal);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return false;
    }
    let mut rest = 0usize;
    for c in chars {
        if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '@' | '-')) {
            return false;
        }
        rest = rest.saturating_add(1);
    }
    rest <= 127
}

/// The principal column of a template row: the row may admit any account, named by `%u` in
/// its identity.
pub const TEMPLATE_PRINCIPAL: &str = "*";

/// Where a template row's identity takes the requested principal.
pub const TEMPLATE_MARK: &str = "%u";

/// A template row's identity (principal [`TEMPLATE_PRINCIPAL`]): `%u` stands for the account
/// being logged into, so `* %u@example.com <issuer>` lets `alice@example.com` in as `alice`
/// and as nobody else (upstream opkssh #41; Go has no templates and never matches such rows).
///
/// Only two forms, where one substitution gives one exact comparison:
/// - an email with `%u` in its local part (`%u@example.com`, `%u.adm@example.com`), compared
///   with the `email` claim only (never `sub`): the account name byte for byte (a token for
///   `alice@example.com` is not `Alice`), the rest ignoring ASCII case as email rows do; no
///   Unicode folding, so no look-alike (`ſ`, the Kelvin sign) reaches an account name;
/// - `oidc:<claim>:<value>` with `%u` in the value (`oidc:sub:%u`, `oidc:groups:ssh-%u`),
///   compared exactly, as claim rows are.
///
/// A template turns any email into an account, so it is stricter than an email row: it does not
/// match when the provider sets `email_verified` to anything but true (a missing claim only
/// warns, as Entra ID sends none), for `oidc:email:` templates too. Templates over claims that
/// users choose themselves ([`USER_CHOSEN_CLAIMS`]) get a warning from `add` and `audit`.
///
/// Suffix (`oidc-match-end:email:`) and glob (`repo:`) rows cannot be templates: a suffix
/// `%u@example.com` would let `malice@example.com` in as `alice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// `<before>%u<after>` is an email, compared with the `email` claim.
    Email {
        /// Local-part text before `%u`.
        before: String,
        /// The rest after `%u`: local-part text, `@`, the domain.
        after: String,
    },
    /// `oidc:<name>:<before>%u<after>`: the claim's values contain the expansion.
    Claim {
        /// The claim name, surrounding `"` removed.
        name: String,
        /// Value text before `%u`.
        before: String,
        /// Value text after `%u`.
        after: String,
    },
}

impl Template {
    /// Reads a template row's identity.
    ///
    /// # Errors
    /// Why the identity is not a usable template, as a lowercase fragment: no `%u`, more than
    /// one, another `%`, a form that cannot hold one, or `%u` outside the compared part.
    pub fn parse(identity: &str) -> Result<Self, String> {
        match identity.matches(TEMPLATE_MARK).count() {
            0 => {
                return Err(format!(
                    "identity {identity:?} has no %u, so a * row would let that one identity into every account"
                ));
            }
            1 => {}
            _ => return Err(format!("identity {identity:?} has more than one %u")),
        }
        if identity.matches('%').count() > 1 {
            return Err(format!("identity {identity:?} has a `%` other than its %u"));
        }
        if identity
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "identity {identity:?} contains white space or a control character"
            ));
        }
        if identity.starts_with(EMAIL_SUFFIX) || identity.starts_with(SUB_GLOB) {
            return Err(format!(
                "identity {identity:?} is a suffix or glob rule; %u is only allowed in an email (%u@example.com) or an oidc:<claim>:<value> value"
            ));
        }
        if identity.starts_with(OIDC_CLAIM) {
            let Identity::Claim {
                name,
                value,
                fields,
            } = Identity::parse(identity)
            else {
                return Err(format!(
                    "identity {identity:?} is a malformed oidc rule, expected oidc:<claim>:%u"
                ));
            };
            if matches!(name.as_str(), "http" | "https") {
                return Err(format!(
                    "identity {identity:?} reads the claim {name:?}: the quotes around a URL claim name were removed by shell unquoting"
                ));
            }
            // Go ignores the middle fields of a longer rule; a %u there would be ignored too.
            let Some((before, after)) = value
                .split_once(TEMPLATE_MARK)
                .filter(|_| fields == 3 && !name.is_empty() && !name.contains('%'))
            else {
                return Err(format!(
                    "identity {identity:?} must be oidc:<claim>:<value> with %u in the value and exactly three `:` fields"
                ));
            };
            return Ok(Self::Claim {
                name,
                before: before.to_owned(),
                after: after.to_owned(),
            });
        }
        let Some((local, domain)) = identity.split_once('@') else {
            return Err(format!(
                "identity {identity:?} is neither an email nor an oidc rule; a bare %u would be compared with both email and sub, write %u@<domain> or oidc:sub:%u"
            ));
        };
        if domain.is_empty() || domain.contains('@') || !local.contains(TEMPLATE_MARK) {
            return Err(format!(
                "identity {identity:?} must be an email with %u in its local part, e.g. %u@example.com"
            ));
        }
        let (before, after) = identity.split_once(TEMPLATE_MARK).unwrap_or_default();
        Ok(Self::Email {
            before: before.to_owned(),
            after: after.to_owned(),
        })
    }

    /// The identity with `%u` replaced by `principal`.
    ///
    /// # Errors
    /// `principal` fails [`is_safe_principal`] or holds a character that could change what
    /// the identity means (`@`, `%`, `:`, `"`, white space): such a principal never matches.
    pub fn expand(&self, principal: &str) -> Result<String, String> {
        if !is_safe_principal(principal)
            || principal
                .chars()
                .any(|c| matches!(c, '@' | '%' | ':' | '"') || c.is_whitespace())
        {
            return Err(format!(
                "principal {principal:?} is not a safe account name to put in place of %u"
            ));
        }
        Ok(match self {
            Self::Email { before, after } => format!("{before}{principal}{after}"),
            Self::Claim {
                name,
                before,
                after,
            } => format!("oidc:{name}:{before}{principal}{after}"),
        })
    }

    /// Whether `email` is the expansion for `principal`: the account name byte for byte,
    /// since Linux account names are case-sensitive and `Alice` can be another person than
    /// `alice`; the text around it ignoring ASCII case, as email rows do. Always false for a
    /// claim template.
    fn email_matches(&self, principal: &str, email: &str) -> bool {
        let Self::Email { before, after } = self else {
            return false;
        };
        let Some((head, rest)) = email.as_bytes().split_at_checked(before.len()) else {
            return false;
        };
        let Some((name, tail)) = rest.split_at_checked(principal.len()) else {
            return false;
        };
        head.eq_ignore_ascii_case(before.as_bytes())
            && name == principal.as_bytes()
            && tail.eq_ignore_ascii_case(after.as_bytes())
    }

    fn value(&self, principal: &str) -> String {
        match self {
            Self::Email { before, after } | Self::Claim { before, after, .. } => {
                format!("{before}{principal}{after}")
            }
        }
    }
}

/// Matches a template row for `principal` against claims: the principal must be safe
/// ([`Template::expand`]), then one exact comparison (see [`Template`]).
pub fn match_template(template: &Template, principal: &str, claims: &ClaimSet) -> RuleMatch {
    let mut notes = Vec::new();
    let (matched, reason) = match template.expand(principal) {
        Err(why) => (None, why),
        Ok(expanded) => {
            let value = template.value(principal);
            match template {
                Template::Email { .. } => {
                    if claims.email.starts_with(EMAIL_SUFFIX) {
                        (
                            None,
                            format!("email {} looks like a rule and never matches", claims.email),
                        )
                    } else if claims.email.is_empty() {
                        (None, format!("no email claim (needs {expanded})"))
                    } else if template.email_matches(principal, &claims.email) {
                        let matches = format!("email {} matches {expanded}", claims.email);
                        if let Some(why) = template_unverified(claims) {
                            (None, format!("{matches}, {why}"))
                        } else {
                            if let Some(note) = email_verified_note(&expanded, claims) {
                                notes.push(note);
                            }
                            (Some(MatchKind::Email), matches)
                        }
                    } else if claims.email.eq_ignore_ascii_case(&expanded) {
                        (
                            None,
                            format!(
                                "email {} differs from {expanded} in the case of the account name, which is compared exactly",
                                claims.email
                            ),
                        )
                    } else {
                        (None, format!("email {} != {expanded}", claims.email))
                    }
                }
                Template::Claim { name, .. } => {
                    let values = claims.values(name);
                    let contains = format!("claim {name} contains {value}");
                    // `oidc:email:%u@example.com` is an email template too.
                    let unverified = (name == "email")
                        .then(|| template_unverified(claims))
                        .flatten();
                    if values.contains(&value) {
                        match unverified {
                            Some(why) => (None, format!("{contains}, {why}")),
                            None => (Some(MatchKind::Claim), contains),
                        }
                    } else if values.is_empty() {
                        (None, format!("claim {name} not present (needs {value})"))
                    } else {
                        (
                            None,
                            format!("claim {name} is [{}], without {value}", values.join(", ")),
                        )
                    }
                }
            }
        }
    };
    RuleMatch {
        matched,
        notes,
        reason,
    }
}

/// Profile claims the OpenID Connect spec does not make unique or stable, and that most
/// providers let users set or change themselves (Keycloak and Authentik usernames, a GitLab
/// or Google display name): a template over one gives an account to whoever names themselves
/// after it.
pub const USER_CHOSEN_CLAIMS: [&str; 6] = [
    "preferred_username",
    "nickname",
    "name",
    "given_name",
    "family_name",
    "middle_name",
];

/// Lints the pairing of a row's principal and identity: a [`TEMPLATE_PRINCIPAL`] row needs a
/// usable [`Template`], and `%u` anywhere else is refused rather than read literally. A
/// template over a [`USER_CHOSEN_CLAIMS`] claim is a warning.
pub fn lint_template(principal: &str, identity: &str) -> Vec<Lint> {
    if principal == TEMPLATE_PRINCIPAL {
        return match Template::parse(identity) {
            Ok(Template::Claim { name, .. }) if USER_CHOSEN_CLAIMS.contains(&name.as_str()) => {
                vec![Lint::warning(format!(
                    "template over the claim {name:?}, which most providers let users choose or change themselves: whoever sets it to an account's name gets that account; match on sub, a verified email (%u@example.com) or a claim only the provider's admins set (oidc:groups:ssh-%u)"
                ))]
            }
            Ok(_) => Vec::new(),
            Err(why) => vec![Lint::error(format!(
                "principal * makes a template row, but {why}; verify never matches it"
            ))],
        };
    }
    if identity.contains(TEMPLATE_MARK) {
        return vec![Lint::error(format!(
            "identity {identity:?} contains %u but the principal is {principal:?}, not *: %u is only replaced in template rows (principal *), so verify never matches this row"
        ))];
    }
    Vec::new()
}

/// How serious a lint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The row works but is risky or odd.
    Warning,
    /// The row can never grant access (or is refused as unsafe).
    Error,
}

/// A problem with a row's identity or principal that `add` refuses and `audit` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// How serious.
    pub severity: Severity,
    /// Lowercase fragment saying why.
    pub message: String,
}

impl Lint {
    fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
        }
    }

    fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// Checks a value for characters a table row cannot carry: `#` starts a comment, and a
/// newline or other control character breaks the line.
fn unwritable(what: &str, value: &str) -> Option<Lint> {
    if value.contains('#') {
        return Some(Lint::error(format!(
            "{what} contains `#`, which starts a comment in policy files, so the row would be cut there"
        )));
    }
    if value.chars().any(char::is_control) {
        return Some(Lint::error(format!(
            "{what} contains a control character (newline, tab, ...)"
        )));
    }
    None
}

/// Lints a principal column.
pub fn lint_principal(principal: &str) -> Vec<Lint> {
    let mut lints = Vec::new();
    if principal.is_empty() {
        lints.push(Lint::error("principal is empty; no login ever asks for it"));
    } else if principal.chars().any(char::is_whitespace) {
        lints.push(Lint::error(
            "principal contains white space; no account name does",
        ));
    }
    lints.extend(unwritable("principal", principal));
    lints
}

/// Lints an identity column.
pub fn lint_identity(attribute: &str) -> Vec<Lint> {
    let mut lints = Vec::new();
    lints.extend(unwritable("identity", attribute));
    match Identity::parse(attribute) {
        Identity::Unsafe if attribute.is_empty() => {
            lints.push(Lint::error("identity is empty"));
        }
        Identity::Unsafe => lints.push(Lint::error(format!(
            "identity {attribute:?} is a bare prefix that would match any value, so it is rejected (#596)"
        ))),
        Identity::MalformedClaim => lints.push(Lint::error(format!(
            "identity {attribute:?} is a malformed oidc rule, expected oidc:<claim>:<value>"
        ))),
        Identity::Claim {
            name,
            value,
            fields,
        } => {
            if name.is_empty() || name.chars().all(|c| c == '"') {
                lints.push(Lint::error(format!(
                    "identity {attribute:?} names an empty claim"
                )));
            }
            if matches!(name.as_str(), "http" | "https") {
                lints.push(Lint::error(format!(
                    "identity {attribute:?} reads the claim {name:?}: the quotes around a URL claim name were removed by shell unquoting; write oidc:\\\"https://...\\\":{value} or put the whole identity in single quotes"
                )));
            } else if fields > 3 {
                lints.push(Lint::warning(format!(
                    "identity {attribute:?} has more than three `:` fields; only the claim {name:?} and the last value {value:?} are compared"
                )));
            }
        }
        Identity::EmailSuffix(suffix) => {
            if !suffix.starts_with('@') && !suffix.starts_with('.') {
                lints.push(Lint::warning(format!(
                    "email suffix {suffix:?} does not start with `@`, so it also matches other domains ending in it (e.g. x@evil{suffix}) (#589)"
                )));
            }
        }
        Identity::SubGlob(pattern) => {
            if let Err(error) = glob::matches(&pattern, "") {
                lints.push(Lint::error(format!(
                    "identity {attribute:?} is not a valid glob ({error}); it only matches a sub equal to it"
                )));
            }
        }
        Identity::Plain(_) => {}
    }
    lints
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn go_float_formats() {
        for (value, text) in [
            (123.0, "123"),
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (12345678.0, "1.2345678e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
            (123456.0, "123456"),
            (0.5, "0.5"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(go_float(value), text, "{value}");
        }
    }

    #[test]
    fn go_sprint_values() {
        assert_eq!(go_sprint(&json!(true)), "true");
        assert_eq!(go_sprint(&json!(null)), "<nil>");
        assert_eq!(go_sprint(&json!([1, "a", [true]])), "[1 a [true]]");
        assert_eq!(go_sprint(&json!({"b": 1, "a": "x"})), "map[a:x b:1]");
    }

    #[test]
    fn escaped_split_like_go() {
        assert_eq!(escaped_split("abc:def:ghi", ':'), ["abc", "def", "ghi"]);
        assert_eq!(
            escaped_split(r#"abc:"xxx:yyy""#, ':'),
            ["abc", r#""xxx:yyy""#]
        );
        assert_eq!(
            escaped_split(r#"aaa:"bbb:c" zzz:"qqq:www""#, ':'),
            ["aaa", "\"bbb:c\" zzz", "\"qqq:www\""]
        );
        assert_eq!(
            escaped_split(r#"abc:\"def:ghi\""#, ':'),
            ["abc", "\\\"def:ghi\\\""]
        );
        assert_eq!(escaped_split("oidc::", ':'), ["oidc"]);
    }

    #[test]
    fn principal_allowlist() {
        for good in [
            "opkssh-wildcard",
            "_apt",
            "alice.smith_01",
            "bob+test@example.com",
            "web-admin",
            "WORKSTATION1$",
            "a",
        ] {
            assert!(is_safe_principal(good), "{good}");
        }
        let long_ok = "a".repeat(128);
        assert!(is_safe_principal(&long_ok));
        assert!(is_safe_principal(&format!("{long_ok}$")));
        for bad in [
            "",
            "-alice",
            ".hidden",
            ".",
            "..",
            "$",
            "a$b",
            "a$$",
            "gu*st",
            "gues?",
            "!guest",
            "alice root",
            "a\tb",
            "a\rb",
            "a\nb",
            "a\\b",
            "a\"b",
            "a,b",
            "aliçe",
        ] {
            assert!(!is_safe_principal(bad), "{bad:?}");
        }
        assert!(!is_safe_principal(&"a".repeat(129)));
    }

    #[test]
    fn template_forms_and_expansions() {
        for (identity, principal, expanded) in [
            ("%u@example.com", "alice", "alice@example.com"),
            ("x.%u@Example.com", "bob", "x.bob@Example.com"),
            ("oidc:sub:%u", "alice", "oidc:sub:alice"),
            ("oidc:groups:ssh-%u-x", "alice", "oidc:groups:ssh-alice-x"),
            (
                r#"oidc:"https://acme.com/login":%u"#,
                "alice",
                "oidc:https://acme.com/login:alice",
            ),
            (
                "%u@example.com",
                "WORKSTATION1$",
                "WORKSTATION1$@example.com",
            ),
            ("%u@example.com", "bob+ci", "bob+ci@example.com"),
        ] {
            let template = Template::parse(identity).unwrap();
            assert_eq!(template.expand(principal).unwrap(), expanded, "{identity}");
        }
        let template = Template::parse("%u@example.com").unwrap();
        for unsafe_principal in ["a@b", "a:b", "a%b", "a\"b", "a b", "", "-a", "a\u{a0}b"] {
            assert!(
                template.expand(unsafe_principal).is_err(),
                "{unsafe_principal:?}"
            );
        }
        assert_eq!(lint_template("*", "%u@example.com"), Vec::<Lint>::new());
        assert_eq!(
            lint_template("alice", "alice@example.com"),
            Vec::<Lint>::new()
        );
        assert_eq!(
            lint_template("*", "a@example.com")[0].severity,
            Severity::Error
        );
        assert_eq!(
            lint_template("root", "%u@example.com")[0].severity,
            Severity::Error
        );
    }

    #[test]
    fn email_templates_compare_the_account_name_with_case() {
        let claims = |email: &str| {
            ClaimSet::from_object(
                json!({"email": email, "email_verified": true})
                    .as_object()
                    .unwrap(),
            )
        };
        let template = Template::parse("x.%u.adm@example.com").unwrap();
        let matched = |principal: &str, email: &str| {
            match_template(&template, principal, &claims(email))
                .matched
                .is_some()
        };
        assert!(matched("alice", "x.alice.adm@example.com"));
        // Only the text around the account name ignores case.
        assert!(matched("alice", "X.alice.ADM@Example.COM"));
        for (principal, email) in [
            ("Alice", "x.alice.adm@example.com"),
            ("ALICE", "x.alice.adm@example.com"),
            ("alice", "x.ALICE.adm@example.com"),
            ("alice", "x.Alice.adm@example.com"),
            ("alice", "x.alice.adm@example.co"),
            ("alice", "x.alic"),
            ("alice", ""),
        ] {
            assert!(!matched(principal, email), "{principal} {email}");
        }
        assert_eq!(
            match_template(&template, "Alice", &claims("x.alice.adm@example.com")).reason,
            "email x.alice.adm@example.com differs from x.Alice.adm@example.com in the case of the account name, which is compared exactly"
        );
    }

    #[test]
    fn templates_refuse_emails_the_provider_says_are_unverified() {
        let claims = |verified: Value, source: ClaimSource| {
            let mut object = json!({"email": "alice@example.com", "groups": ["ssh-alice"]});
            if !verified.is_null() || source == ClaimSource::Userinfo {
                object["email_verified"] = verified;
            }
            ClaimSet::from_object(object.as_object().unwrap()).with_source(source)
        };
        let email = Template::parse("%u@example.com").unwrap();
        let claim = Template::parse("oidc:email:%u@example.com").unwrap();
        let groups = Template::parse("oidc:groups:ssh-%u").unwrap();
        for template in [&email, &claim] {
            for value in [
                json!(false),
                json!("false"),
                json!("FALSE"),
                json!(0),
                json!([]),
            ] {
                let result = match_template(
                    template,
                    "alice",
                    &claims(value.clone(), ClaimSource::IdToken),
                );
                assert_eq!(result.matched, None, "{template:?} {value}");
                assert!(
                    result
                        .reason
                        .contains("but the ID Token sets email_verified to ")
                        && result
                            .reason
                            .ends_with(": a template never grants on an unverified email"),
                    "{}",
                    result.reason
                );
            }
            // Userinfo says so: named as the userinfo response.
            let result = match_template(
                template,
                "alice",
                &claims(json!(false), ClaimSource::Userinfo),
            );
            assert_eq!(result.matched, None);
            assert!(
                result
                    .reason
                    .contains("but the userinfo response sets email_verified to false")
            );
            for value in [json!(true), json!("true"), json!("True")] {
                let result =
                    match_template(template, "alice", &claims(value, ClaimSource::IdToken));
                assert!(result.matched.is_some());
                assert!(result.notes.is_empty(), "{:?}", result.notes);
            }
        }
        // Missing: matches with the warning, naming the email and where it came from.
        let result = match_template(&email, "alice", &claims(Value::Null, ClaimSource::IdToken));
        assert_eq!(result.matched, Some(MatchKind::Email));
        assert_eq!(
            result.notes,
            [
                "warning: policy \"alice@example.com\" matched on email \"alice@example.com\" but the ID Token has no email_verified claim, consider matching on sub instead"
            ]
        );
        let object = json!({"email": "alice@example.com"});
        let userinfo =
            ClaimSet::from_object(object.as_object().unwrap()).with_source(ClaimSource::Userinfo);
        assert_eq!(
            match_template(&email, "alice", &userinfo).notes,
            [
                "warning: policy \"alice@example.com\" matched on email \"alice@example.com\" but the userinfo response has no email_verified claim, consider matching on sub instead"
            ]
        );
        // Only email templates care.
        assert!(
            match_template(
                &groups,
                "alice",
                &claims(json!(false), ClaimSource::IdToken)
            )
            .matched
            .is_some()
        );
        // Explicit email rows keep Go's warning-only behaviour.
        let explicit = match_identity(
            "alice@example.com",
            &claims(json!(false), ClaimSource::IdToken),
        );
        assert_eq!(explicit.matched, Some(MatchKind::Email));
        assert_eq!(explicit.notes.len(), 1);
    }

    #[test]
    fn templates_over_user_chosen_claims_warn() {
        for claim in USER_CHOSEN_CLAIMS {
            let lints = lint_template("*", &format!("oidc:{claim}:%u"));
            assert_eq!(lints.len(), 1, "{claim}");
            assert_eq!(lints[0].severity, Severity::Warning);
            assert!(lints[0].message.starts_with(&format!(
                "template over the claim \"{claim}\", which most providers let users choose"
            )));
        }
        for identity in [
            "oidc:sub:%u",
            "oidc:groups:ssh-%u",
            "%u@example.com",
            "oidc:email:%u@example.com",
        ] {
            assert_eq!(
                lint_template("*", identity),
                Vec::<Lint>::new(),
                "{identity}"
            );
        }
    }

    #[test]
    fn fold() {
        assert!(go_equal_fold("ArThuR@Example.COM", "arthur@example.com"));
        assert!(go_equal_fold("Σ", "ς"));
        assert!(!go_equal_fold("a", "ab"));
    }
}
