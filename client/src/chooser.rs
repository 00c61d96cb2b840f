//! The web chooser (behaviour.md §2.2.5): a page on a random loopback port listing the
//! configured providers (CI/CD ones left out); choosing one redirects the same tab to that
//! provider's `/login` on its own callback listener. Like the callback, it answers only GET
//! requests addressed to itself by a loopback name, and reads connections side by side.

use crate::client_config::{self, Env, ProviderEntry, ProviderKind};
use crate::flow::Progress;
use crate::httpd::{self, Response, escape_html};
use opk_core::oidc::form_decode;
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Why no provider was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChooserError(String);

impl std::fmt::Display for ChooserError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for ChooserError {}

fn fail(message: impl std::fmt::Display) -> ChooserError {
    ChooserError(message.to_string())
}

/// The browser tab that chose, waiting for where to go next.
pub struct Chosen {
    /// The chosen provider, resolved.
    pub kind: ProviderKind,
    stream: Option<TcpStream>,
}

impl Chosen {
    /// Sends the waiting tab to `url` (the chosen provider's `/login`); only the first call
    /// does anything.
    pub fn redirect(&mut self, url: &str) {
        if let Some(stream) = self.stream.take() {
            let _ = Response::redirect(url).write_to(&stream);
        }
    }
}

fn page(names: &BTreeMap<String, &ProviderEntry>) -> Response {
    let buttons: String = names
        .keys()
        .map(|name| {
            let name = escape_html(name);
            format!(
                "<p><a style=\"display:inline-block;padding:.6em 1.2em;border:1px solid #888;\
                 border-radius:6px;text-decoration:none\" href=\"/select?op={name}\">Sign in with \
                 {name}</a></p>"
            )
        })
        .collect();
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>opkssh: choose your \
         OpenID provider</title></head><body style=\"font-family:sans-serif;margin:3em\">\
         <h1>opkssh login</h1><p>Choose your OpenID provider:</p>{buttons}</body></html>\n"
    );
    Response {
        status: 200,
        headers: Vec::new(),
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
    }
}

/// Serves the chooser until a provider is chosen or `timeout` passes; the page's URL goes to
/// `progress`.
///
/// # Errors
/// [`ChooserError`]: duplicate issuers, the listener, the timeout, or a chosen provider that is
/// not a browser provider.
pub fn choose(
    entries: &[ProviderEntry],
    env: &Env,
    remote_redirect_uri: Option<&str>,
    timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<Chosen, ChooserError> {
    let mut names: BTreeMap<String, &ProviderEntry> = BTreeMap::new();
    for entry in entries {
        if names
            .insert(client_config::chooser_name(&entry.issuer), entry)
            .is_some()
        {
            return Err(fail(format!(
                "provider in web chooser found with duplicate issuer: {}",
                entry.issuer
            )));
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|error| fail(format!("failed to start the web chooser: {error}")))?;
    let port = listener
        .local_addr()
        .map_err(|error| fail(error.to_string()))?
        .port();
    let listeners = [listener];
    let mut incoming = httpd::Incoming::new(&listeners).map_err(|error| fail(error.to_string()))?;
    let own_authority = format!("localhost:{port}");
    progress.open_url(&format!("http://{own_authority}/chooser"));
    let deadline = Instant::now() + timeout;
    loop {
        let Some(connection) = incoming
            .next(deadline)
            .map_err(|error| fail(error.to_string()))?
        else {
            return Err(fail(format!(
                "timed out after {} seconds waiting for a provider to be chosen in the browser",
                timeout.as_secs()
            )));
        };
        let (stream, request) = (&connection.stream, &connection.request);
        // As at the callback: a page on another name (DNS rebinding) or a form posted from
        // any site must not choose, nor read the list of providers.
        if !httpd::addressed_to_loopback(request, port, &own_authority) {
            let _ = Response::html(400, "Bad request", "Unexpected Host header.").write_to(stream);
            continue;
        }
        if request.method != "GET" {
            let _ = Response::html(405, "Method not allowed", "Use GET.").write_to(stream);
            continue;
        }
        match request.path.as_str() {
            "/" | "/chooser" => {
                let _ = page(&names).write_to(stream);
            }
            "/select" => {
                let chosen = form_decode(&request.query)
                    .into_iter()
                    .find(|(name, _)| name == "op")
                    .and_then(|(_, value)| names.get(&value).copied());
                let Some(entry) = chosen else {
                    let _ = Response::html(400, "Unknown provider", "Choose one of the list.")
                        .write_to(stream);
                    continue;
                };
                let kind =
                    client_config::to_provider(entry, env, remote_redirect_uri).map_err(fail)?;
                if !matches!(kind, ProviderKind::Browser(_)) {
                    return Err(fail("the web chooser only offers browser providers"));
                }
                return Ok(Chosen {
                    kind,
                    stream: Some(connection.stream),
                });
            }
            _ => {
                let _ = Response::html(404, "Not found", "Nothing here.").write_to(stream);
            }
        }
    }
}
