//! The smallest HTTP/1.1 server side that the login callback and the demo's OpenID provider
//! need: read one request (bounded in size and time), write one response, close. One request
//! per connection, no keep-alive, no chunked bodies.
//!
//! The loopback listeners of a login ([`Incoming`]) read each connection on its own thread, so
//! a client that sends its request a byte at a time delays only itself: anything on the machine
//! can connect to them, and the browser's callback must still get through.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Longest request body accepted (a token request is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// How long a connected client may take to send its whole request, however it spaces the bytes.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Connections an [`Incoming`] holds at once (being read, or read and not yet answered); more
/// are closed unanswered until one ends. A browser opens a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// How often [`Incoming::next`] looks for new connections while it waits.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (after `?`), possibly empty.
    pub query: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads one request from `stream`, which has 10 seconds to send all of it.
///
/// # Errors
/// A malformed or oversized request, a request not complete in time, or an I/O failure.
pub fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    read_request_by(stream, Instant::now() + REQUEST_DEADLINE)
}

/// A stream whose reads fail once `deadline` has passed: the read timeout alone applies to
/// each read, so a byte every few seconds would keep a connection forever.
struct ReadBy<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for ReadBy<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let late =
            || std::io::Error::new(std::io::ErrorKind::TimedOut, "request not received in time");
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        // A socket read timeout shows as WouldBlock (or TimedOut, depending on the system).
        stream.read(buffer).map_err(|error| match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => late(),
            _ => error,
        })
    }
}

/// Reads one request from `stream`, all of it before `deadline`.
///
/// # Errors
/// As [`read_request`].
pub fn read_request_by(stream: &TcpStream, deadline: Instant) -> std::io::Result<Request> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let stream = ReadBy { stream, deadline };
    let mut reader = BufReader::new(stream.take(u64::try_from(MAX_HEAD + MAX_BODY).unwrap_or(0)));
    let mut head_len = 0_usize;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    head_len += line.len();
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("not HTTP/1.x"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        head_len += read;
        if head_len > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if read == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            request
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = match request.header("content-length") {
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| invalid("bad content-length"))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body)?;
    request.body = body;
    Ok(request)
}

/// Whether `request` was addressed to this loopback listener on `port`: no `Host` header
/// (HTTP/1.0), or `localhost`, `127.0.0.1`, `[::1]` or `own_authority` with that port. Any
/// other name is a page that had a name of its own resolve to 127.0.0.1 (DNS rebinding).
pub fn addressed_to_loopback(request: &Request, port: u16, own_authority: &str) -> bool {
    let Some(host) = request.header("host") else {
        return true;
    };
    [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ]
    .iter()
    .map(String::as_str)
    .chain([own_authority])
    .any(|allowed| allowed.eq_ignore_ascii_case(host))
}

/// One connection's place among [`MAX_CONNECTIONS`], given back when dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place, if one is free.
    fn take(held: &Arc<AtomicUsize>) -> Option<Self> {
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            (count < MAX_CONNECTIONS).then_some(count + 1)
        })
        .ok()?;
        Some(Self(Arc::clone(held)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request read in full, with the connection to answer it on.
#[derive(Debug)]
pub struct Connection {
    /// Where the response goes.
    pub stream: TcpStream,
    /// The request.
    pub request: Request,
    _slot: Slot,
}

/// The requests arriving on some listeners, each connection read on a thread of its own (at
/// most [`MAX_CONNECTIONS`] at once) so that no client holds up another; a malformed or late
/// request is answered 400 by its thread and never handed out.
pub struct Incoming<'a> {
    listeners: &'a [TcpListener],
    held: Arc<AtomicUsize>,
    sender: mpsc::Sender<Connection>,
    receiver: mpsc::Receiver<Connection>,
}

impl<'a> Incoming<'a> {
    /// Takes requests from `listeners` (made non-blocking here).
    ///
    /// # Errors
    /// A listener that cannot be made non-blocking.
    pub fn new(listeners: &'a [TcpListener]) -> std::io::Result<Self> {
        for listener in listeners {
            listener.set_nonblocking(true)?;
        }
        let (sender, receiver) = mpsc::channel();
        Ok(Self {
            listeners,
            held: Arc::new(AtomicUsize::new(0)),
            sender,
            receiver,
        })
    }

    /// The next request read in full, in the order they complete, or `None` once `deadline`
    /// has passed.
    ///
    /// # Errors
    /// Accepting a connection failed.
    pub fn next(&mut self, deadline: Instant) -> std::io::Result<Option<Connection>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.accept_waiting()?;
            match self.receiver.recv_timeout(left.min(ACCEPT_POLL)) {
                Ok(connection) => return Ok(Some(connection)),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Starts a reader for every connection waiting on the listeners.
    fn accept_waiting(&self) -> std::io::Result<()> {
        for listener in self.listeners {
            loop {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                        ) =>
                    {
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                // Full: the connection is closed unanswered (dropped here).
                let Some(slot) = Slot::take(&self.held) else {
                    continue;
                };
                let sender = self.sender.clone();
                // A thread that cannot start drops the connection and its slot with it.
                let _ = std::thread::Builder::new()
                    .name("opkssh-http".into())
                    .spawn(move || read_on_thread(stream, slot, &sender));
            }
        }
        Ok(())
    }
}

fn read_on_thread(stream: TcpStream, slot: Slot, sender: &mpsc::Sender<Connection>) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(REQUEST_DEADLINE)).is_err()
    {
        return;
    }
    match read_request_by(&stream, deadline) {
        Ok(request) => {
            // Nobody waits any more once the server has returned: the connection just closes.
            let _ = sender.send(Connection {
                stream,
                request,
                _slot: slot,
            });
        }
        Err(_) => {
            let _ = Response::html(400, "Bad request", "Malformed request.").write_to(&stream);
        }
    }
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A small HTML page.
    pub fn html(status: u16, title: &str, message: &str) -> Self {
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{message}</p>\
             </body></html>\n",
            title = escape_html(title),
            message = escape_html(message)
        );
        Self {
            status,
            headers: Vec::new(),
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        }
    }

    /// A JSON document.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Cache-Control".into(), "no-store".into())],
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// A redirect (302 Found).
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            headers: vec![("Location".into(), location.to_owned())],
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
        }
    }

    /// Writes the response and closes the write side.
    ///
    /// # Errors
    /// I/O failure.
    pub fn write_to(&self, mut stream: &TcpStream) -> std::io::Result<()> {
        let reason = match self.status {
            200 => "OK",
            302 => "Found",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        stream.flush()?;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        Ok(())
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_a_request_and_writes_a_response() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .write_all(b"POST /token?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        });
        let (stream, _) = listener.accept().unwrap();
        let request = read_request(&stream).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/token");
        assert_eq!(request.query, "x=1");
        assert_eq!(request.header("host"), Some("localhost"));
        assert_eq!(request.body, b"hello");
        Response::html(200, "Done <ok>", "You may now close this window")
            .write_to(&stream)
            .unwrap();
        drop(stream);
        let answer = client.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(answer.contains("Done &lt;ok&gt;"));
    }

    #[test]
    fn a_request_sent_a_byte_at_a_time_ends_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            // Each byte well within any per-read timeout; at most 40 of them.
            for _ in 0..40 {
                if stream.write_all(b"G").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let error =
            read_request_by(&stream, Instant::now() + Duration::from_millis(500)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            !client.is_finished(),
            "the client stopped before the deadline"
        );
        drop(stream);
        client.join().unwrap();
    }

    #[test]
    fn connections_past_the_limit_are_closed_until_one_ends() {
        let listener = [TcpListener::bind("127.0.0.1:0").unwrap()];
        let address = listener[0].local_addr().unwrap();
        let mut incoming = Incoming::new(&listener).unwrap();
        let soon = || Instant::now() + Duration::from_millis(200);
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        assert!(incoming.next(soon()).unwrap().is_none());
        let mut refused = TcpStream::connect(address).unwrap();
        refused
            .write_all(b"GET /refused HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        assert!(incoming.next(soon()).unwrap().is_none());
        refused
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = Vec::new();
        // Closed without an answer: EOF, or a reset since the request was left unread.
        match refused.read_to_end(&mut answer) {
            Ok(_) => assert!(answer.is_empty(), "{answer:?}"),
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        }
        drop(idle);
        // The idle connections' readers see EOF and give their places back.
        let deadline = Instant::now() + Duration::from_secs(5);
        while incoming.held.load(Ordering::Acquire) > 0 {
            assert!(Instant::now() < deadline, "places not given back");
            assert!(incoming.next(soon()).unwrap().is_none());
        }
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /again HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let connection = incoming
            .next(Instant::now() + Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(connection.request.path, "/again");
    }
}
