//! `opkssh login --device`: the device flow of `opk_client::device`, with its instructions on
//! stdout, where the browser login prints its URL.

use crate::commands::login::LoginArgs;
use crate::error::CliError;
use opk_client::device;
use opk_client::login::{BrowserProvider, Session};
use opk_core::device::DeviceAuthorization;
use opk_core::jws::SigningKey;
use opk_net::http::HttpClient;
use std::time::Duration;

/// Why the web chooser cannot run with `--device`.
pub(crate) const NO_CHOOSER: &str = "--device needs one provider: name its alias (opkssh login \
     --device <alias>), set default_provider in the client config, or give --provider; the web \
     chooser needs a browser on this machine";

/// Why a CI provider cannot run with `--device`.
pub(crate) fn not_for_ci(issuer: &str) -> String {
    format!(
        "--device is for providers where a person logs in; {issuer} is a CI/CD provider, whose \
         login already needs no browser (run without --device)"
    )
}

/// Runs the device flow with `provider`, printing the page, the code and (unless `--no-qr`)
/// the QR code.
pub(crate) fn login(
    args: &LoginArgs,
    provider: &BrowserProvider,
    key: SigningKey,
    http: &HttpClient,
) -> Result<Session, CliError> {
    let qr = !args.no_qr;
    let mut show = |authorization: &DeviceAuthorization| {
        println!("{}", device::instructions(authorization, qr));
    };
    device::login(
        provider,
        key,
        http,
        &mut show,
        args.timeout.map(Duration::from_secs),
    )
    .map_err(|error| CliError::Usage(error.to_string()))
}
