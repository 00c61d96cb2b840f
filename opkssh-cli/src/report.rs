//! What a certificate and its PK token say, without trusting them (nothing here is verified;
//! `verify` does that): the report `opkssh inspect` prints and `login --inspect-cert` shows.

use crate::error::CliError;
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use opk_os::time::rfc3339;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Certificate files are one line; anything larger is not a certificate.
const MAX_INPUT: u64 = 512 * 1024;

/// The text dump of a certificate line, as `opkssh inspect` prints it (`login --inspect-cert`).
pub(crate) fn text_report(line: &str) -> Result<String, CliError> {
    let certificate = OpksshCertificate::from_line(line)?;
    let token = PkToken::from_compact(certificate.pk_token()?)?;
    Ok(Report::new(&certificate, &token).to_text())
}

/// Go's rule: an argument naming an existing file is read, anything else is the line itself.
pub(crate) fn read_input(input: &str) -> Result<String, CliError> {
    let path = std::path::Path::new(input);
    if !path.is_file() {
        return Ok(input.to_owned());
    }
    let read_error = |source| CliError::Read {
        path: input.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_INPUT {
        return Err(CliError::Usage(format!(
            "{input} is {} bytes, too large for a certificate",
            metadata.len()
        )));
    }
    std::fs::read_to_string(path).map_err(read_error)
}

pub(crate) struct Report<'a> {
    certificate: &'a OpksshCertificate,
    token: &'a PkToken,
    now: i64,
}

impl<'a> Report<'a> {
    pub(crate) fn new(certificate: &'a OpksshCertificate, token: &'a PkToken) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        Self {
            certificate,
            token,
            now,
        }
    }

    fn identity(&self) -> String {
        let claims = self.token.claims();
        claims
            .email()
            .map_or_else(|| format!("sub:{}", claims.subject()), str::to_owned)
    }

    fn audience(&self) -> String {
        match self.token.claims().audience() {
            opk_core::claims::Audience::One(one) => one.clone(),
            opk_core::claims::Audience::Many(many) => many.join(","),
        }
    }

    fn algorithm(jws: &opk_core::jws::Jws) -> String {
        jws.header_str("alg").unwrap_or("(none)").to_owned()
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let claims = self.token.claims();
        if let Some(exp) = claims.expires_at()
            && exp < self.now
        {
            warnings.push(format!(
                "the ID token expired at {} (servers using the oidc policy will refuse it)",
                rfc3339(exp)
            ));
        }
        let verified = claims.object().get("email_verified");
        if claims.email().is_some()
            && !matches!(verified, Some(Value::Bool(true)))
            && verified.and_then(Value::as_str) != Some("true")
        {
            warnings.push(
                "email_verified is not true: policies matching on email will warn or refuse".into(),
            );
        }
        if let Some((_, refreshed)) = self.token.refreshed_id_token()
            && let Some(exp) = refreshed.expires_at()
            && exp < self.now
        {
            warnings.push(format!(
                "the refreshed ID token expired at {} (servers using the oidc_refreshed policy will refuse it)",
                rfc3339(exp)
            ));
        }
        if !self.certificate.matches_upk(self.token.cic_claims().upk()) {
            warnings.push(
                "the certificate key is not the key the PK token commits to: verify will refuse it"
                    .into(),
            );
        }
        warnings
    }

    /// The report as text safe for a terminal: every line is made safe in [`render`], so a
    /// claim's control characters show as escapes and cannot add or redraw lines.
    pub(crate) fn to_text(&self) -> String {
        let certificate = self.certificate;
        let claims = self.token.claims();
        let mut lines = vec![
            Line::text("--- SSH Certificate Information ---"),
            Line::text(format!(
                "Type: {} (User Certificate)",
                certificate.cert_type_name()
            )),
            Line::text(format!("Serial: {}", certificate.serial())),
            Line::text(format!("Key ID: {}", certificate.key_id())),
            Line::text(format!("Key: {}", certificate.fingerprint())),
            Line::text(format!(
                "Principals: [{}]",
                certificate.principals().join(", ")
            )),
            Line::text(format!(
                "Valid After: {}",
                validity(certificate.valid_after())
            )),
            Line::text(format!(
                "Valid Before: {}",
                validity(certificate.valid_before())
            )),
            Line::text("Critical Options: (none)"),
            Line::text("Extensions:"),
        ];
        for (name, value) in extensions(certificate) {
            lines.push(Line::text(match name {
                "openpubkey-pkt" => format!("  {name}: [PKToken data] {} bytes", value.len()),
                "openpubkey-act" => format!("  {name}: [access token] {} bytes", value.len()),
                _ if value.is_empty() => format!("  {name}"),
                _ => format!("  {name}: {value}"),
            }));
        }
        lines.push(Line::text("--- PKToken Structure ---"));
        lines.push(Line::json(
            "",
            serde_json::to_string_pretty(&Value::Object(claims.object().clone()))
                .unwrap_or_default(),
        ));
        lines.push(Line::text("--- Signature Information ---"));
        let header = |name: &str, jws: &opk_core::jws::Jws| {
            Line::json(
                format!("{name} ({}): ", Self::algorithm(jws)),
                Value::Object(jws.header().clone()).to_string(),
            )
        };
        lines.push(header("OP", self.token.op()));
        lines.push(header("CIC", self.token.cic()));
        if let Some(cos) = self.token.cos() {
            lines.push(header("COS", cos));
        }
        if let Some((refreshed, _)) = self.token.refreshed_id_token() {
            lines.push(header("Refreshed ID token", refreshed));
        }
        lines.extend([
            Line::text("--- Token Metadata ---"),
            Line::text(format!("Issuer: {}", claims.issuer())),
            Line::text(format!("Audience: {}", self.audience())),
            Line::text(format!("Subject: {}", claims.subject())),
            Line::text(format!("Identity: {}", self.identity())),
            Line::text(format!(
                "Issued At: {}",
                claims.issued_at().map_or_else(|| "Not set".into(), rfc3339)
            )),
            Line::text(format!(
                "Expires At: {}",
                claims
                    .expires_at()
                    .map_or_else(|| "Not set".into(), rfc3339)
            )),
            Line::text(format!("Token Hash: {}", self.token.hash())),
            Line::text(format!(
                "Provider Algorithm: {}",
                Self::algorithm(self.token.op())
            )),
        ]);
        // What a refresh brought (upstream #600): the oidc_refreshed policy reads this token's
        // expiry, not the original's.
        if let Some((_, refreshed)) = self.token.refreshed_id_token() {
            lines.push(Line::text("--- Refreshed ID Token ---"));
            lines.push(Line::json(
                "",
                serde_json::to_string_pretty(&Value::Object(refreshed.object().clone()))
                    .unwrap_or_default(),
            ));
            lines.push(Line::text(format!(
                "Refreshed Issued At: {}",
                refreshed
                    .issued_at()
                    .map_or_else(|| "Not set".into(), rfc3339)
            )));
            lines.push(Line::text(format!(
                "Refreshed Expires At: {}",
                refreshed
                    .expires_at()
                    .map_or_else(|| "Not set".into(), rfc3339)
            )));
        }
        for warning in self.warnings() {
            lines.push(Line::text(format!("Warning: {warning}")));
        }
        render(&lines)
    }

    pub(crate) fn to_json(&self) -> Value {
        let certificate = self.certificate;
        let claims = self.token.claims();
        json!({
            "certificate": {
                "type": certificate.cert_type_name(),
                "serial": certificate.serial(),
                "key_id": certificate.key_id(),
                "key_fingerprint": certificate.fingerprint(),
                "principals": certificate.principals(),
                "valid_after": certificate.valid_after(),
                "valid_before": certificate.valid_before(),
                "extensions": extensions(certificate).into_iter().map(|(name, value)| (name.to_owned(), Value::from(value.len()))).collect::<serde_json::Map<_, _>>(),
            },
            "identity": self.identity(),
            "issuer": claims.issuer(),
            "audience": self.audience(),
            "subject": claims.subject(),
            "issued_at": claims.issued_at(),
            "expires_at": claims.expires_at(),
            "payload": Value::Object(claims.object().clone()),
            "signatures": {
                "op": Value::Object(self.token.op().header().clone()),
                "cic": Value::Object(self.token.cic().header().clone()),
                "cos": self.token.cos().map(|cos| Value::Object(cos.header().clone())),
                "refreshed_id_token": self.token.refreshed_id_token().map(|(jws, _)| Value::Object(jws.header().clone())),
            },
            "refreshed": self.token.refreshed_id_token().map(|(_, claims)| json!({
                "payload": Value::Object(claims.object().clone()),
                "issued_at": claims.issued_at(),
                "expires_at": claims.expires_at(),
            })),
            "token_hash": self.token.hash(),
            "warnings": self.warnings(),
        })
    }
}

/// One line of the text report: plain text, or a label and a JSON text (which keeps its own
/// escapes, so a claim's backslash is not shown doubled).
enum Line {
    Text(String),
    Json { label: String, json: String },
}

impl Line {
    fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    fn json(label: impl Into<String>, json: String) -> Self {
        Self::Json {
            label: label.into(),
            json,
        }
    }
}

/// The report's text: the one place its lines are escaped ([`opk_core::escape`]).
fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Text(text) => out.push_str(&opk_core::escape::line(text)),
            Line::Json { label, json } => {
                out.push_str(&opk_core::escape::line(label));
                out.push_str(&opk_core::escape::json(json));
            }
        }
        out.push('\n');
    }
    out
}

fn extensions(certificate: &OpksshCertificate) -> Vec<(&str, &str)> {
    certificate
        .extension_names()
        .map(|name| (name, certificate.extension(name).unwrap_or_default()))
        .collect()
}

fn validity(value: u64) -> String {
    match value {
        0 => "Not set".into(),
        u64::MAX => "Forever".into(),
        other => i64::try_from(other).map_or_else(|_| other.to_string(), rfc3339),
    }
}
