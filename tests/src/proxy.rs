//! A real HTTP CONNECT proxy on loopback that records every tunnel it was asked for, and an
//! origin that counts the connections reaching it. Together they show which way a request
//! went: through the proxy (the proxy saw `CONNECT host:port` and the origin a connection), or
//! direct (the proxy saw nothing).
//!
//! The proxy resolves names itself from a table given at start, so an issuer named
//! `opk-issuer.test` (which no resolver knows) is reachable only through the proxy.

use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A CONNECT proxy on `127.0.0.1`.
pub struct ConnectProxy {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl ConnectProxy {
    /// Starts the proxy; `hosts` maps names to the addresses the proxy connects to (other
    /// targets are connected to as written).
    ///
    /// # Errors
    /// The listener could not be bound.
    pub fn start(hosts: &[(&str, IpAddr)]) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy")?;
        let address = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let hosts: Arc<BTreeMap<String, IpAddr>> = Arc::new(
            hosts
                .iter()
                .map(|(name, ip)| ((*name).to_owned(), *ip))
                .collect(),
        );
        let (log, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (log, hosts) = (Arc::clone(&log), Arc::clone(&hosts));
                thread::spawn(move || serve(stream, &log, &hosts));
            }
        });
        Ok(Self {
            address,
            requests,
            stop,
        })
    }

    /// `http://127.0.0.1:<port>`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request line received, in order (`CONNECT host:port HTTP/1.1`, …).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

fn serve(mut client: TcpStream, log: &Mutex<Vec<String>>, hosts: &BTreeMap<String, IpAddr>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    // Byte by byte, so that nothing after the head (the tunnel's first bytes) is consumed.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match client.read(&mut byte) {
            Ok(1) => head.extend_from_slice(&byte),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    if let Ok(mut log) = log.lock() {
        log.push(request_line.clone());
    }
    let mut words = request_line.split(' ');
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client.write_all(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let upstream = match target.rsplit_once(':') {
        Some((host, port)) => match (hosts.get(host), port.parse::<u16>()) {
            (Some(ip), Ok(port)) => TcpStream::connect(SocketAddr::new(*ip, port)),
            _ => TcpStream::connect(target),
        },
        None => TcpStream::connect(target),
    };
    let Ok(upstream) = upstream else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let _ = client.set_read_timeout(None);
    let (Ok(mut client_reader), Ok(mut upstream_writer)) =
        (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let forward = thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
        let _ = upstream_writer.shutdown(Shutdown::Write);
    });
    let mut upstream_reader = upstream;
    let _ = std::io::copy(&mut upstream_reader, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = forward.join();
}

/// A TCP listener that counts the connections reaching it and remembers the first byte of
/// each (0x16 for a TLS ClientHello), then closes them.
pub struct CountingOrigin {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    first_bytes: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl CountingOrigin {
    /// Listens on `bind` (`0.0.0.0:0` is reachable as `0.0.0.0:<port>` and `127.0.0.1:<port>`).
    ///
    /// # Errors
    /// The listener could not be bound.
    pub fn start(bind: &str) -> Result<Self> {
        let listener = TcpListener::bind(bind).context("binding the origin")?;
        let address = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let first_bytes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, bytes, stopping) = (
            Arc::clone(&connections),
            Arc::clone(&first_bytes),
            Arc::clone(&stop),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut byte = [0_u8; 1];
                if let (Ok(1), Ok(mut seen)) = (stream.read(&mut byte), bytes.lock()) {
                    seen.extend(byte.first());
                }
            }
        });
        Ok(Self {
            address,
            connections,
            first_bytes,
            stop,
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The first byte of each connection that sent one.
    pub fn first_bytes(&self) -> Vec<u8> {
        self.first_bytes
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }
}

impl Drop for CountingOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(SocketAddr::new(
            IpAddr::from([127, 0, 0, 1]),
            self.address.port(),
        ));
    }
}
