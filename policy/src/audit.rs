//! `opkssh audit`'s checks (behaviour.md §2.7; Go: policy/validator.go, commands/audit.go),
//! plus ours: identities that never match or match too much, and problems in `providers`,
//! `config.yml` and `policy.d`, each with its file and line.

use crate::error::{FileError, FileErrorKind};
use crate::perms::{self, Requirement};
use crate::rule::{self, Severity};
use crate::table::{self, LineKind};
use serde::Serialize;
use std::path::Path;

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Fine.
    #[serde(rename = "SUCCESS")]
    Success,
    /// Works, but should be changed.
    #[serde(rename = "WARNING")]
    Warning,
    /// Does not work as intended.
    #[serde(rename = "ERROR")]
    Error,
}

impl Status {
    /// `SUCCESS`, `WARNING` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

/// One audited row (Go's `ValidationRowResult`, same JSON names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowResult {
    /// Verdict.
    pub status: Status,
    /// Advice.
    pub hints: Vec<String>,
    /// Principal column.
    pub principal: String,
    /// Identity column.
    pub identity_attr: String,
    /// Issuer column.
    pub issuer: String,
    /// Why.
    pub reason: String,
    /// 1-based line.
    pub line_number: usize,
}

/// Go's `ValidateEntry` against the providers' issuer columns, then our identity and
/// principal lints: an error lint turns a passing row into an ERROR, a warning lint into a
/// WARNING; on a row that already fails they become hints.
pub fn validate_entry(
    issuers: &[String],
    principal: &str,
    identity: &str,
    issuer: &str,
    line: usize,
) -> RowResult {
    let mut result = RowResult {
        status: Status::Success,
        hints: Vec::new(),
        principal: principal.to_owned(),
        identity_attr: identity.to_owned(),
        issuer: issuer.to_owned(),
        reason: String::new(),
        line_number: line,
    };
    let known = |candidate: &str| issuers.iter().any(|known| known == candidate);
    if issuer.is_empty() {
        result.status = Status::Error;
        result.reason = "issuer is empty".to_owned();
    } else if !known(issuer) {
        result.status = Status::Error;
        result.reason = "issuer not found in /etc/opk/providers".to_owned();
        let hint = if let Some(trimmed) = issuer.strip_suffix('/').filter(|trimmed| known(trimmed))
        {
            format!(
                "Remove the trailing slash from the issuer URL ({issuer}) to match provider entry ({trimmed})"
            )
        } else if let Some(https) =
            Some(issuer.replacen("http://", "https://", 1)).filter(|https| known(https))
        {
            format!(
                "Change the scheme http:// of the issuer URL ({issuer}) to match scheme https:// of provider ({https})"
            )
        } else if let Some(http) =
            Some(issuer.replacen("https://", "http://", 1)).filter(|http| known(http))
        {
            format!(
                "Change the scheme https:// of the issuer URL ({issuer}) to match scheme http:// of provider ({http})"
            )
        } else {
            format!(
                "Ensure the issuer URL ({issuer}) is correct and matches an entry in /etc/opk/providers"
            )
        };
        result.hints.push(hint);
    } else if issuer.ends_with('/') {
        result.status = Status::Error;
        result.reason = format!("issuer URI ({issuer}) should not have a trailing slash /");
        result.hints.push(
            "Remove the trailing slash from the issuer URL in both the policy and provider files"
                .to_owned(),
        );
    } else if !issuer.starts_with("https://") {
        result.status = Status::Warning;
        result.reason = "issuer does not use https scheme".to_owned();
        result
            .hints
            .push("It is recommended to use https scheme for issuer URLs".to_owned());
    } else {
        result.reason = "issuer matches provider entry".to_owned();
    }

    let mut lints = rule::lint_principal(principal);
    lints.extend(rule::lint_identity(identity));
    lints.extend(rule::lint_template(principal, identity));
    lints.sort_by_key(|lint| std::cmp::Reverse(lint.severity));
    for lint in lints {
        let escalate = match (result.status, lint.severity) {
            (Status::Success, _) => true,
            (Status::Warning, Severity::Error) => true,
            (Status::Warning, Severity::Warning) | (Status::Error, _) => false,
        };
        if escalate {
            // A passing issuer check is no longer the story; a warning's reason becomes a hint.
            let previous = std::mem::replace(&mut result.reason, lint.message);
            if result.status != Status::Success && !previous.is_empty() {
                result.hints.push(previous);
            }
            result.status = match lint.severity {
                Severity::Error => Status::Error,
                Severity::Warning => Status::Warning,
            };
        } else {
            result.hints.push(lint.message);
        }
    }
    if principal == rule::TEMPLATE_PRINCIPAL
        && let Ok(template) = rule::Template::parse(identity)
    {
        let example = template.expand("alice").unwrap_or_default();
        result.hints.push(format!(
            "template row: %u is the account logged into, e.g. login alice needs identity {example}"
        ));
    }
    result
}

/// Audits every line of an `auth_id` file: unparsable lines and rows without three columns
/// are ERRORs, other rows go through [`validate_entry`]. Home rows are not filtered by
/// principal (as in Go), but `home_user` adds a warning to rows for another account,
/// which `verify` ignores.
pub fn audit_policy(content: &[u8], issuers: &[String], home_user: Option<&str>) -> Vec<RowResult> {
    let mut results = Vec::new();
    for line in table::parse(content) {
        let error_row = |reason: String| RowResult {
            status: Status::Error,
            hints: Vec::new(),
            principal: String::new(),
            identity_attr: String::new(),
            issuer: String::new(),
            reason,
            line_number: line.number,
        };
        match line.kind {
            LineKind::Blank => {}
            LineKind::Unparsable(error) => results.push(error_row(error.to_string())),
            LineKind::Row(columns) => match <[String; 3]>::try_from(columns) {
                Err(columns) => results.push(error_row(format!(
                    "wrong number of arguments (expected=3, got={})",
                    columns.len()
                ))),
                Ok([principal, identity, issuer]) => {
                    let mut result =
                        validate_entry(issuers, &principal, &identity, &issuer, line.number);
                    if let Some(user) = home_user
                        && principal == rule::TEMPLATE_PRINCIPAL
                    {
                        result.hints.push(format!(
                            "in a home policy a template row only applies to its owner {user}"
                        ));
                    } else if let Some(user) = home_user
                        && principal != user
                    {
                        let message = format!(
                            "principal {principal} is not the owner {user} of this home policy, so verify ignores this row"
                        );
                        if result.status == Status::Success {
                            result.status = Status::Warning;
                            result.reason = message;
                        } else {
                            result.hints.push(message);
                        }
                    }
                    results.push(result);
                }
            },
        }
    }
    results
}

/// Counts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Rows tested.
    pub total: usize,
    /// SUCCESS rows.
    pub successful: usize,
    /// WARNING rows.
    pub warnings: usize,
    /// ERROR rows.
    pub errors: usize,
}

impl Summary {
    /// Tallies rows.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a RowResult>) -> Self {
        let mut summary = Self::default();
        for row in rows {
            summary.total = summary.total.saturating_add(1);
            match row.status {
                Status::Success => summary.successful = summary.successful.saturating_add(1),
                Status::Warning => summary.warnings = summary.warnings.saturating_add(1),
                Status::Error => summary.errors = summary.errors.saturating_add(1),
            }
        }
        summary
    }

    /// Whether anything is not SUCCESS.
    pub fn has_problems(&self) -> bool {
        self.warnings > 0 || self.errors > 0
    }
}

/// A policy file as `audit` read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFileRead {
    /// The content, when the file could be read safely.
    pub content: Option<Vec<u8>>,
    /// The mode or owner breaks the rule (a finding; the content is still audited).
    pub perms_error: Option<String>,
    /// Why the file was not read: a symlink where symlinks are refused, not a regular file
    /// (a FIFO, a device), larger than the cap, or unreadable.
    pub error: Option<String>,
}

/// Reads a policy file for `audit`, which runs as root, with the open `verify` uses
/// ([`perms::open`]: never blocks, refuses symlinks where `requirement` does and anything but
/// a regular file, then the size cap). So root never prints, through a user's
/// `~/.opk/auth_id` symlink, a file that user could not read, and a FIFO or a link to
/// `/dev/zero` is a finding instead of a hang or an out-of-memory.
pub fn read_policy_file(path: &Path, requirement: &Requirement) -> PolicyFileRead {
    let (file, metadata) = match perms::open(path, requirement.no_symlink) {
        Ok(opened) => opened,
        Err(error) => {
            return PolicyFileRead {
                error: Some(error.kind.to_string()),
                ..PolicyFileRead::default()
            };
        }
    };
    let perms_error = perms::check(&metadata, requirement)
        .err()
        .map(|error| FileErrorKind::Permissions(error).to_string());
    match perms::read_limited(file, path, requirement.max_size) {
        Ok(content) => PolicyFileRead {
            content: Some(content),
            perms_error,
            error: None,
        },
        Err(error) => PolicyFileRead {
            content: None,
            perms_error,
            error: Some(error.kind.to_string()),
        },
    }
}

/// A file-level problem as a one-line `path:line: message`.
pub fn describe(problem: &FileError) -> String {
    problem.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuers() -> Vec<String> {
        vec![
            "https://accounts.google.com".into(),
            "http://oidc.local:9998".into(),
            "https://slash.example/".into(),
        ]
    }

    #[test]
    fn go_validator_rules() {
        let check = |issuer: &str| validate_entry(&issuers(), "root", "a@b.c", issuer, 1);
        assert_eq!(check("").reason, "issuer is empty");
        let unknown = check("https://nope");
        assert_eq!(unknown.status, Status::Error);
        assert!(unknown.hints[0].starts_with("Ensure the issuer URL"));
        assert!(
            check("https://accounts.google.com/").hints[0].starts_with("Remove the trailing slash")
        );
        assert!(
            check("http://accounts.google.com").hints[0].starts_with("Change the scheme http://")
        );
        assert!(
            check("https://oidc.local:9998").hints[0].starts_with("Change the scheme https://")
        );
        assert!(
            check("https://slash.example/")
                .reason
                .contains("trailing slash")
        );
        assert_eq!(check("http://oidc.local:9998").status, Status::Warning);
        let ok = check("https://accounts.google.com");
        assert_eq!(ok.status, Status::Success);
        assert_eq!(ok.reason, "issuer matches provider entry");
    }

    #[test]
    fn identity_lints_escalate() {
        let row = |identity: &str| {
            validate_entry(
                &issuers(),
                "root",
                identity,
                "https://accounts.google.com",
                1,
            )
        };
        assert_eq!(row("oidc-match-end:email:").status, Status::Error);
        assert_eq!(row("oidc:groups").status, Status::Error);
        assert_eq!(row("oidc:https://acme.com/groups:x").status, Status::Error);
        assert_eq!(row("repo:[").status, Status::Error);
        assert_eq!(
            row("oidc-match-end:email:example.com").status,
            Status::Warning
        );
        assert_eq!(
            row("oidc-match-end:email:@example.com").status,
            Status::Success
        );
        assert_eq!(
            row(r#"oidc:"https://acme.com/groups":x"#).status,
            Status::Success
        );
        let both = validate_entry(&issuers(), "root", "oidc:", "https://nope", 1);
        assert_eq!(both.status, Status::Error);
        assert!(both.hints.iter().any(|hint| hint.contains("#596")));
    }

    #[test]
    fn file_lines() {
        let content = b"# c\nroot a@b.c https://accounts.google.com\nshort row\n'open\nbob x@y.z https://accounts.google.com\n";
        let rows = audit_policy(content, &issuers(), Some("root"));
        let lines: Vec<_> = rows
            .iter()
            .map(|row| (row.line_number, row.status))
            .collect();
        assert_eq!(
            lines,
            [
                (2, Status::Success),
                (3, Status::Error),
                (4, Status::Error),
                (5, Status::Warning)
            ]
        );
        assert_eq!(
            rows[1].reason,
            "wrong number of arguments (expected=3, got=2)"
        );
        assert_eq!(rows[2].reason, "Unterminated single-quoted string");
    }
}
