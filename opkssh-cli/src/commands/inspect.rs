//! `opkssh inspect <path-or-text>`: what a certificate and its PK token say, without trusting
//! them (nothing here is verified; `verify` does that).

use crate::cli::InspectArgs;
use crate::error::CliError;
use crate::report::{Report, read_input};
use opk_core::pktoken::PkToken;
use opk_core::sshcert::OpksshCertificate;
use std::process::ExitCode;

pub(crate) fn run(args: &InspectArgs) -> Result<ExitCode, CliError> {
    let text = read_input(&args.input)?;
    let certificate = OpksshCertificate::from_line(&text)?;
    let token = PkToken::from_compact(certificate.pk_token()?)?;
    let report = Report::new(&certificate, &token);
    if args.json {
        let json = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        println!("{}", opk_core::escape::json(&json));
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
