//! The loopback listener of a browser login (behaviour.md §2.2.5): the first free of the
//! provider's redirect URIs (`http://localhost:3000/login-callback`, `:10001`, `:11110`), bound
//! on loopback only, serving `/login` (a redirect to the OP) and the callback path.
//!
//! A redirect URI's host must be exactly `localhost` or a loopback IP literal; lookalikes such
//! as `localhost.evil.com` or `localhost@evil.com` are refused (openpubkey#375). `localhost` is
//! bound on 127.0.0.1 and, when the machine has it, on ::1, since browsers may try either.

use crate::httpd::{self, Request, Response};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// The redirect URIs every provider gets unless its config says otherwise (Go's defaults).
pub const DEFAULT_REDIRECT_URIS: [&str; 3] = [
    "http://localhost:3000/login-callback",
    "http://localhost:10001/login-callback",
    "http://localhost:11110/login-callback",
];

/// Why the listener could not be set up or the callback did not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A redirect URI that is not `http://<loopback>:<port>/<path>`.
    #[error("invalid redirect URI {uri}: {reason}")]
    BadRedirectUri {
        /// The URI.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No redirect URI's port could be bound.
    #[error("failed to start a listener for the callback from the OP: ports {0} are in use")]
    NoFreePort(String),
    /// The browser step did not finish in time.
    #[error(
        "timed out after {0} seconds waiting for the login to finish in the browser (run the \
         login again; use --disable-browser-open to copy the URL by hand)"
    )]
    Timeout(u64),
    /// Accepting connections failed.
    #[error("callback listener failed: {0}")]
    Io(String),
}

/// A parsed loopback redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    /// `localhost` or the IP literal as written (IPv6 without brackets).
    pub host: String,
    /// The port (0: any free port, for tests and the demo).
    pub port: u16,
    /// The path, e.g. `/login-callback`.
    pub path: String,
}

impl RedirectUri {
    /// Parses `http://host:port/path`, accepting only `localhost` and loopback IP literals.
    ///
    /// # Errors
    /// [`CallbackError::BadRedirectUri`].
    pub fn parse(uri: &str) -> Result<Self, CallbackError> {
        let bad = |reason| CallbackError::BadRedirectUri {
            uri: uri.to_owned(),
            reason,
        };
        let rest = uri
            .strip_prefix("http://")
            .ok_or(bad("must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, "/"),
        };
        if path.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        if authority.contains('@') {
            return Err(bad("must not contain user information"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(bad("unclosed IPv6 bracket"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(port) if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) => {
                port.parse::<u16>().map_err(|_| bad("port out of range"))?
            }
            Some(_) => return Err(bad("port is not a number")),
            None => 80,
        };
        let loopback = host == "localhost"
            || host
                .parse::<IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        if !loopback {
            return Err(bad("host must be localhost or a loopback IP address"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The addresses to bind for this host.
    fn addresses(&self, port: u16) -> Vec<SocketAddr> {
        match self.host.parse::<IpAddr>() {
            Ok(address) => vec![SocketAddr::new(address, port)],
            Err(_) => vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ],
        }
    }

    /// `host:port` as it appears in a URL (IPv6 in brackets).
    fn authority(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

/// The bound listener of one login.
#[derive(Debug)]
pub struct CallbackServer {
    listeners: Vec<TcpListener>,
    uri: RedirectUri,
    port: u16,
}

/// What the callback handler decided about one callback request.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// Not for us (state mismatch, a stray request): answer 400 and keep waiting.
    Ignore(String),
    /// The login finished: show the success page and return.
    Done(T),
    /// The login failed: show an error page and return the error.
    Failed(E),
}

impl CallbackServer {
    /// Binds the first redirect URI whose port is free on every address of its host.
    ///
    /// # Errors
    /// [`CallbackError::BadRedirectUri`] for any URI that is not loopback (checked before any
    /// bind), [`CallbackError::NoFreePort`] when every port is taken.
    pub fn bind(redirect_uris: &[String]) -> Result<Self, CallbackError> {
        let uris = redirect_uris
            .iter()
            .map(|uri| RedirectUri::parse(uri))
            .collect::<Result<Vec<_>, _>>()?;
        for uri in &uris {
            if let Some(server) = Self::bind_one(uri) {
                return Ok(server);
            }
        }
        Err(CallbackError::NoFreePort(
            uris.iter()
                .map(|uri| uri.port.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }

    fn bind_one(uri: &RedirectUri) -> Option<Self> {
        let mut listeners = Vec::new();
        let mut port = uri.port;
        for address in uri.addresses(port) {
            let address = SocketAddr::new(address.ip(), port);
            match TcpListener::bind(address) {
                Ok(listener) => {
                    if port == 0 {
                        port = listener.local_addr().ok()?.port();
                    }
                    listeners.push(listener);
                }
                // ::1 missing (no IPv6) is fine as long as 127.0.0.1 is bound; a port in use
                // on any family means another program could answer the browser instead.
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => return None,
                Err(_) if address.is_ipv6() && !listeners.is_empty() => {}
                Err(_) => return None,
            }
        }
        Some(Self {
            listeners,
            uri: uri.clone(),
            port,
        })
    }

    /// The redirect URI to send to the OP (with the port actually bound).
    pub fn redirect_uri(&self) -> String {
        format!("http://{}{}", self.uri.authority(self.port), self.uri.path)
    }

    /// The URL the browser opens: `/login`, which redirects to the OP.
    pub fn login_url(&self) -> String {
        format!("http://{}/login", self.uri.authority(self.port))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `/login` (302 to `authorization_url`) and the callback path until `handle`
    /// returns [`Outcome::Done`] or [`Outcome::Failed`], or `timeout` passes. Other paths get
    /// 404; a `Host` header naming anything but this loopback port gets 400 (DNS rebinding).
    /// Connections are read side by side ([`httpd::Incoming`]): a client that never finishes
    /// its request holds up neither the browser's callback nor the timeout.
    ///
    /// # Errors
    /// [`CallbackError::Timeout`], or the handler's error.
    pub fn serve<T, E: std::fmt::Display>(
        &self,
        authorization_url: &str,
        timeout: Duration,
        mut handle: impl FnMut(&str) -> Outcome<T, E>,
    ) -> Result<Result<T, E>, CallbackError> {
        let deadline = Instant::now() + timeout;
        let io = |error: std::io::Error| CallbackError::Io(error.to_string());
        let mut incoming = httpd::Incoming::new(&self.listeners).map_err(io)?;
        loop {
            let Some(connection) = incoming.next(deadline).map_err(io)? else {
                return Err(CallbackError::Timeout(timeout.as_secs()));
            };
            let (stream, request) = (&connection.stream, &connection.request);
            if !self.host_allowed(request) {
                let _ =
                    Response::html(400, "Bad request", "Unexpected Host header.").write_to(stream);
                continue;
            }
            if request.method != "GET" {
                let _ = Response::html(405, "Method not allowed", "Use GET.").write_to(stream);
                continue;
            }
            if request.path == "/login" {
                let _ = Response::redirect(authorization_url).write_to(stream);
                continue;
            }
            if request.path != self.uri.path {
                let _ = Response::html(404, "Not found", "Nothing here.").write_to(stream);
                continue;
            }
            match handle(&request.query) {
                Outcome::Ignore(reason) => {
                    let _ = Response::html(400, "Login not completed", &reason).write_to(stream);
                }
                Outcome::Done(value) => {
                    let _ = Response::html(
                        200,
                        "opkssh login succeeded",
                        "You may now close this window.",
                    )
                    .write_to(stream);
                    return Ok(Ok(value));
                }
                Outcome::Failed(error) => {
                    let _ = Response::html(500, "opkssh login failed", &error.to_string())
                        .write_to(stream);
                    return Ok(Err(error));
                }
            }
        }
    }

    fn host_allowed(&self, request: &Request) -> bool {
        httpd::addressed_to_loopback(request, self.port, &self.uri.authority(self.port))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn only_loopback_redirect_uris() {
        let uri = RedirectUri::parse("http://localhost:3000/login-callback").unwrap();
        assert_eq!(
            (uri.host.as_str(), uri.port, uri.path.as_str()),
            ("localhost", 3000, "/login-callback")
        );
        assert_eq!(RedirectUri::parse("http://127.0.0.1:5/cb").unwrap().port, 5);
        assert_eq!(RedirectUri::parse("http://[::1]:7/cb").unwrap().host, "::1");
        assert_eq!(RedirectUri::parse("http://127.0.0.2:7/cb").unwrap().port, 7);
        for bad in [
            "https://localhost:3000/cb",
            "http://localhost.evil.com:3000/cb",
            "http://localhost@evil.com/cb",
            "http://evil.com:3000/cb",
            "http://10.0.0.1:3000/cb",
            "http://localhost:x/cb",
            "http://localhost:70000/cb",
            "http://localhost:3000/cb?x=1",
            "http://[::1/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn takes_the_first_free_port() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let server = CallbackServer::bind(&[
            format!("http://localhost:{busy_port}/login-callback"),
            "http://localhost:0/login-callback".to_owned(),
        ])
        .unwrap();
        assert_ne!(server.port(), busy_port);
        assert_eq!(
            server.redirect_uri(),
            format!("http://localhost:{}/login-callback", server.port())
        );
        let error = CallbackServer::bind(&[format!("http://localhost:{busy_port}/login-callback")])
            .unwrap_err();
        assert!(matches!(error, CallbackError::NoFreePort(_)));
        assert!(CallbackServer::bind(&["http://evil.com:0/x".to_owned()]).is_err());
    }

    #[test]
    fn serves_login_redirect_and_callback_then_times_out() {
        use std::io::{Read as _, Write as _};
        let server = CallbackServer::bind(&["http://127.0.0.1:0/cb".to_owned()]).unwrap();
        let port = server.port();
        let client = std::thread::spawn(move || {
            let get = |path: &str, host: &str| {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer
            };
            let here = format!("127.0.0.1:{port}");
            (
                get("/login", &here),
                get("/cb?code=1", "evil.example:80"),
                get("/other", &here),
                get("/cb?state=wrong", &here),
                get("/cb?code=abc", &here),
            )
        });
        let result = server
            .serve(
                "http://op.example/auth?x=1",
                Duration::from_secs(10),
                |query| {
                    if query.contains("code=abc") {
                        Outcome::Done(query.to_owned())
                    } else if query.contains("code=") {
                        Outcome::Failed(format!("unexpected {query}"))
                    } else {
                        Outcome::Ignore("state does not match".to_owned())
                    }
                },
            )
            .unwrap();
        assert_eq!(result, Ok("code=abc".to_owned()));
        let (login, rebinding, other, ignored, done) = client.join().unwrap();
        assert!(
            login.starts_with("HTTP/1.1 302")
                && login.contains("Location: http://op.example/auth?x=1")
        );
        assert!(rebinding.starts_with("HTTP/1.1 400"));
        assert!(other.starts_with("HTTP/1.1 404"));
        assert!(ignored.starts_with("HTTP/1.1 400"));
        assert!(done.starts_with("HTTP/1.1 200") && done.contains("close this window"));

        let timeout = server
            .serve("x", Duration::from_millis(50), |_| {
                Outcome::<(), String>::Ignore(String::new())
            })
            .unwrap_err();
        assert_eq!(timeout, CallbackError::Timeout(0));
    }

    #[test]
    fn a_client_sending_a_byte_at_a_time_holds_up_neither_the_callback_nor_the_timeout() {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::{AtomicBool, Ordering};
        let server = CallbackServer::bind(&["http://127.0.0.1:0/cb".to_owned()]).unwrap();
        let port = server.port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let slow = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                // At most 100 bytes over 20 seconds, never a whole request.
                for _ in 0..100 {
                    if stop.load(Ordering::Acquire) || stream.write_all(b"G").is_err() {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                true
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let honest = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                stream,
                "GET /cb?code=abc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        });
        let done = server
            .serve("x", Duration::from_secs(30), |query| {
                Outcome::<String, String>::Done(query.to_owned())
            })
            .unwrap();
        assert_eq!(done, Ok("code=abc".to_owned()));
        assert!(honest.join().unwrap().starts_with("HTTP/1.1 200"));
        let timeout = server
            .serve("x", Duration::from_millis(300), |_| {
                Outcome::<(), String>::Ignore(String::new())
            })
            .unwrap_err();
        assert_eq!(timeout, CallbackError::Timeout(0));
        assert!(!slow.is_finished(), "the slow client gave up first");
        stop.store(true, Ordering::Release);
        assert!(!slow.join().unwrap());
    }

    #[test]
    fn localhost_is_served_on_ipv6_too_when_the_machine_has_it() {
        use std::io::{Read as _, Write as _};
        if TcpListener::bind("[::1]:0").is_err() {
            eprintln!("SKIP: no IPv6 loopback here");
            return;
        }
        let server = CallbackServer::bind(&["http://localhost:0/cb".to_owned()]).unwrap();
        let port = server.port();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("::1", port)).unwrap();
            write!(
                stream,
                "GET /cb?ok HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        });
        let result = server
            .serve("x", Duration::from_secs(10), |_| {
                Outcome::<(), String>::Done(())
            })
            .unwrap();
        assert_eq!(result, Ok(()));
        assert!(client.join().unwrap().starts_with("HTTP/1.1 200"));
    }
}
