//! The server side of the ssh-agent protocol (draft-miller-ssh-agent), for `opkssh agent`: one
//! opkssh certificate held in memory, presented first, and everything else forwarded to the
//! user's own agent (the *upstream*).
//!
//! What is answered here and what goes upstream:
//!
//! | request | answer |
//! |---|---|
//! | `REQUEST_IDENTITIES` | the held certificate (unless expired), then the upstream's identities |
//! | `SIGN_REQUEST` for the held certificate or its plain key | signed here ([`ssh_signature`]) |
//! | any other `SIGN_REQUEST`, add, remove, smartcard, other extensions | forwarded |
//! | `LOCK` / `UNLOCK` | forwarded, and the held key is locked too, as OpenSSH locks its keys |
//! | [`STATUS_EXTENSION`], [`LOGIN_EXTENSION`] | answered here |
//!
//! Without an upstream (none configured, or it does not answer) forwarded requests get
//! `SSH_AGENT_FAILURE`, and the identities list is the held certificate alone.
//!
//! # Never an expired or a second certificate
//! The held certificate is presented only while the clock is before [`Held::expires_at`],
//! checked at each request, so an agent whose refresh failed stops offering a dead certificate
//! (sshd's `MaxAuthTries` counts every offer). From the upstream's list, opkssh certificates
//! for the same login (issuer and subject) as the held one, and opkssh certificates that are
//! dead, are left out: `opkssh login` may have added some there.
//!
//! # Robustness
//! Each client connection has its own thread, at most [`MAX_CONNECTIONS`] at once (more are
//! closed at once). A request is at most [`MAX_MESSAGE_LEN`] bytes, as OpenSSH's agent allows;
//! a longer length prefix, a zero length, or a peer that hangs up or stalls mid-message ends
//! that connection only. A message that frames well but does not parse gets
//! `SSH_AGENT_FAILURE`, as OpenSSH answers it. A connection idle for [`IDLE_TIMEOUT`] between
//! requests, or stalled for [`MESSAGE_TIMEOUT`] inside one, is closed. (On Windows a named
//! pipe has no read timeout: there a stalled client keeps its slot until it goes.)
//!
//! The held key lives in [`Held`]; a replaced or released one is dropped, and the key types
//! wipe their secret on drop (`p256` and `ed25519-dalek` implement `ZeroizeOnDrop`). Request
//! bodies, which carry private keys when a client adds one upstream, are wiped after use.

use crate::agent::{AgentError, Identity, MAX_MESSAGE_LEN, Reply};
use crate::agent_certificates::AgentCertificate;
use opk_core::jws::SigningKey;
use opk_core::sshcert::ssh_key::encoding::{Decode as _, Encode as _};
use opk_core::sshcert::{OpksshCertificate, ssh_signature};
use opk_os::agent::{AgentListener, AgentStream};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The extension (`SSH_AGENTC_EXTENSION`) that asks an opkssh agent for its status. Reply:
/// `SSH_AGENT_SUCCESS` followed by a string holding the JSON set with [`Shared::set_status`].
pub const STATUS_EXTENSION: &str = "opkssh-status@openpubkey.dev";

/// The extension that asks an opkssh agent to log in again. Reply: `SSH_AGENT_SUCCESS`; the
/// session sees it through [`Shared::wait_login_request`] or [`Shared::take_login_request`].
pub const LOGIN_EXTENSION: &str = "opkssh-login@openpubkey.dev";

/// Most client connections served at once; further ones are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client connection may sit between two requests. ssh keeps its agent connection
/// open through the whole authentication, prompts included, so this is long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long a client may take to send the rest of a request it has started, and to take a
/// reply.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the upstream agent may take to answer. Long: a hardware key or a key added with
/// `ssh-add -c` waits for a touch or a confirmation.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Message numbers (draft-miller-ssh-agent §5.1).
mod number {
    pub(super) const FAILURE: u8 = 5;
    pub(super) const SUCCESS: u8 = 6;
    pub(super) const REQUEST_IDENTITIES: u8 = 11;
    pub(super) const SIGN_REQUEST: u8 = 13;
    pub(super) const SIGN_RESPONSE: u8 = 14;
    pub(super) const LOCK: u8 = 22;
    pub(super) const UNLOCK: u8 = 23;
    pub(super) const EXTENSION: u8 = 27;
    pub(super) const EXTENSION_FAILURE: u8 = 28;
}

/// What the agent presents: one opkssh certificate and its key.
#[derive(Debug, Clone)]
pub struct Held {
    /// The certificate's private key: in memory only, or held by the upstream ssh-agent
    /// ([`crate::agent_key`], `--agent-key`), which then signs for it.
    pub key: SigningKey,
    /// The certificate.
    pub certificate: OpksshCertificate,
    /// The comment listed with it (`ssh-add -l`), as
    /// [`identity_comment`](crate::agent_certificates::identity_comment) makes it.
    pub comment: String,
    /// Seconds since the epoch from which the certificate is no longer presented nor used;
    /// `None` for never.
    pub expires_at: Option<i64>,
}

/// A held identity with what each request compares against, worked out once.
#[derive(Debug)]
struct Presented {
    held: Held,
    /// The plain public key blob of the certificate's key.
    plain_blob: Vec<u8>,
    /// Issuer and subject of its PK token, when it reads.
    login: Option<(String, String)>,
}

impl Presented {
    fn new(held: Held) -> Self {
        let mut plain_blob = Vec::new();
        if held
            .certificate
            .inner()
            .public_key()
            .encode(&mut plain_blob)
            .is_err()
        {
            // Never matches a request: signing then goes by the certificate blob alone.
            plain_blob.clear();
        }
        let login = AgentCertificate::from_identity(&Identity {
            key_blob: held.certificate.as_bytes().to_vec(),
            comment: Vec::new(),
        })
        .and_then(|certificate| certificate.token.ok())
        .map(|facts| (facts.issuer, facts.subject));
        Self {
            held,
            plain_blob,
            login,
        }
    }

    fn live_at(&self, now: i64) -> bool {
        self.held.expires_at.is_none_or(|expiry| now < expiry)
    }

    fn is_for_blob(&self, blob: &[u8]) -> bool {
        blob == self.held.certificate.as_bytes()
            || (!self.plain_blob.is_empty() && blob == self.plain_blob.as_slice())
    }
}

#[derive(Debug, Default)]
struct State {
    held: Option<Arc<Presented>>,
    status: Option<String>,
    login_requested: bool,
    /// SHA-256 of the lock passphrase while locked.
    lock: Option<Zeroizing<[u8; 32]>>,
    /// Failed unlocks since the last good one, for the back-off.
    failed_unlocks: u32,
}

/// The state shared by the server's connection threads and the session that logs in and
/// refreshes: the held identity, the status text, a pending login request, the lock.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Shared {
    /// Nothing held, not locked, no status.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another thread while holding the lock leaves a consistent State (every
        // update is a single assignment), so a poisoned lock is still used.
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Presents `held` from now on, in place of what was held before. The previous key is
    /// dropped (and wiped) once no request is still signing with it.
    pub fn hold(&self, held: Held) {
        let presented = Arc::new(Presented::new(held));
        let previous = self.state().held.replace(presented);
        drop(previous);
    }

    /// Presents nothing from now on.
    pub fn release(&self) {
        let previous = self.state().held.take();
        drop(previous);
    }

    /// Whether something is held and before its expiry now.
    pub fn is_presenting(&self) -> bool {
        self.state()
            .held
            .as_ref()
            .is_some_and(|presented| presented.live_at(unix_now()))
    }

    /// The text [`STATUS_EXTENSION`] answers with: JSON, for `opkssh agent --status`. It must
    /// hold no secret: any process of the user may ask.
    pub fn set_status(&self, status_json: String) {
        self.state().status = Some(status_json);
    }

    /// Whether a client sent [`LOGIN_EXTENSION`] since the last call (or the last
    /// [`wait_login_request`](Self::wait_login_request)); true once per request.
    pub fn take_login_request(&self) -> bool {
        std::mem::take(&mut self.state().login_requested)
    }

    /// Blocks until a client sends [`LOGIN_EXTENSION`] or `timeout` passes; true (once) if one
    /// did.
    pub fn wait_login_request(&self, timeout: Duration) -> bool {
        let (lock, condvar) = &*self.inner;
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, timeout, |state| !state.login_requested)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut guard.login_requested)
    }

    fn request_login(&self) {
        self.state().login_requested = true;
        self.inner.1.notify_all();
    }

    fn presented(&self, now: i64) -> Option<Arc<Presented>> {
        self.state()
            .held
            .as_ref()
            .filter(|presented| presented.live_at(now))
            .cloned()
    }

    fn is_locked(&self) -> bool {
        self.state().lock.is_some()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

fn passphrase_hash(passphrase: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(Sha256::digest(passphrase).into())
}

/// Why a request body does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The body is empty: no message number.
    #[error("an empty message")]
    Empty,
    /// A field runs past the end of the body.
    #[error("the {0} is truncated")]
    Truncated(&'static str),
    /// Bytes follow the last field.
    #[error("bytes after the end of the message")]
    TrailingBytes,
}

/// A request, borrowed from its body (the bytes after the length prefix). Only what the agent
/// looks at is taken apart; the rest is forwarded as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `SSH_AGENTC_REQUEST_IDENTITIES`.
    RequestIdentities,
    /// `SSH_AGENTC_SIGN_REQUEST`.
    SignRequest {
        /// The key (or certificate) blob to sign with.
        key_blob: &'a [u8],
        /// What to sign.
        data: &'a [u8],
        /// `SSH_AGENT_RSA_SHA2_256`/`_512`; they concern RSA keys only.
        flags: u32,
    },
    /// `SSH_AGENTC_LOCK`.
    Lock {
        /// The passphrase.
        passphrase: &'a [u8],
    },
    /// `SSH_AGENTC_UNLOCK`.
    Unlock {
        /// The passphrase.
        passphrase: &'a [u8],
    },
    /// `SSH_AGENTC_EXTENSION`.
    Extension {
        /// The extension's name.
        name: &'a [u8],
        /// Whatever follows the name, extension-specific.
        contents: &'a [u8],
    },
    /// Any other message number: add, remove, remove all, smartcard and unknown requests.
    Other(u8),
}

impl<'a> Message<'a> {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`MessageError`] for an empty body, a truncated field, or bytes after the last field.
    pub fn parse(body: &'a [u8]) -> Result<Self, MessageError> {
        let Some((&kind, mut rest)) = body.split_first() else {
            return Err(MessageError::Empty);
        };
        let reader = &mut rest;
        let message = match kind {
            number::REQUEST_IDENTITIES => Self::RequestIdentities,
            number::SIGN_REQUEST => Self::SignRequest {
                key_blob: string(reader, "key blob")?,
                data: string(reader, "data to sign")?,
                flags: u32::decode(reader).map_err(|_| MessageError::Truncated("flags"))?,
            },
            number::LOCK => Self::Lock {
                passphrase: string(reader, "passphrase")?,
            },
            number::UNLOCK => Self::Unlock {
                passphrase: string(reader, "passphrase")?,
            },
            number::EXTENSION => {
                let name = string(reader, "extension name")?;
                return Ok(Self::Extension {
                    name,
                    contents: reader,
                });
            }
            other => return Ok(Self::Other(other)),
        };
        if !reader.is_empty() {
            return Err(MessageError::TrailingBytes);
        }
        Ok(message)
    }
}

/// An SSH `string` borrowed from `reader`.
fn string<'a>(reader: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], MessageError> {
    let len = u32::decode(reader).map_err(|_| MessageError::Truncated(what))?;
    let len = usize::try_from(len).map_err(|_| MessageError::Truncated(what))?;
    if len > reader.len() {
        return Err(MessageError::Truncated(what));
    }
    let (head, tail) = reader.split_at(len);
    *reader = tail;
    Ok(head)
}

/// Why a connection's framing broke; the connection is then closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over [`MAX_MESSAGE_LEN`]; the body was not read.
    #[error("a {0}-byte message, over the limit")]
    TooLarge(usize),
    /// A zero length prefix: no room for a message number.
    #[error("a zero-length message")]
    ZeroLength,
    /// The peer hung up inside a message.
    #[error("the peer hung up inside a message")]
    Truncated,
    /// Reading failed (a timeout included).
    #[error("reading the message failed: {0}")]
    Io(#[source] std::io::Error),
}

/// Reads a request's length prefix: `Ok(None)` when the peer hung up between messages.
///
/// # Errors
/// [`FrameError`] for a prefix over [`MAX_MESSAGE_LEN`], a zero one, a half one or a failed
/// read.
pub fn read_length(reader: &mut impl Read) -> Result<Option<usize>, FrameError> {
    let mut prefix = [0_u8; 4];
    let mut filled = 0;
    while let Some(rest) = prefix.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(count) => filled = filled.saturating_add(count),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(FrameError::ZeroLength);
    }
    if len > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(Some(len))
}

/// Reads a request body of `len` bytes (from [`read_length`]) into a buffer wiped on drop.
///
/// # Errors
/// [`FrameError::Truncated`] if the peer hangs up first, [`FrameError::Io`].
pub fn read_body(reader: &mut impl Read, len: usize) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    // Reserved once at full size, so no copy of a private key is left behind by growth.
    let mut body = Zeroizing::new(vec![0_u8; len]);
    reader.read_exact(&mut body).map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(error)
        }
    })?;
    Ok(body)
}

/// A reply body with the length prefix in front.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(body.len().saturating_add(4));
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// The connection to the upstream agent that serves one client connection: opened at the
/// first forwarded request, dropped when it fails (the next request opens a new one), so a
/// restarted upstream is found again and a gone one costs only its identities.
struct Upstream<'a> {
    path: Option<&'a Path>,
    stream: Option<AgentStream>,
}

impl Upstream<'_> {
    /// Sends `body` and returns the reply body; `None` when there is no upstream or it failed.
    fn call(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let path = self.path?;
        if self.stream.is_none() {
            self.stream = AgentStream::connect(path, UPSTREAM_TIMEOUT).ok();
        }
        let stream = self.stream.as_mut()?;
        let result = send_and_receive(stream, body);
        if result.is_none() {
            self.stream = None;
        }
        result
    }
}

fn send_and_receive(stream: &mut AgentStream, body: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(body.len()).ok()?;
    // One write, so a request is never left half sent; wiped as it may carry a private key.
    let mut frame = Zeroizing::new(Vec::with_capacity(body.len().saturating_add(4)));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).ok()?;
    crate::agent::read_frame(stream).ok()
}

/// What a connection does after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Go on.
    Continue,
    /// Wait before the next request: a wrong unlock passphrase, slowed as OpenSSH slows it.
    BackOff(Duration),
}

/// Answers one request body; returns the reply body.
fn answer(shared: &Shared, upstream: &mut Upstream<'_>, body: &[u8], now: i64) -> (Vec<u8>, After) {
    let failure = || (vec![number::FAILURE], After::Continue);
    let Ok(message) = Message::parse(body) else {
        return failure();
    };
    if shared.is_locked() {
        // OpenSSH's rule: while locked, an empty list and a failure for everything but unlock.
        return match message {
            Message::RequestIdentities => (
                identities_body(Vec::new()).unwrap_or_else(|| vec![number::FAILURE]),
                After::Continue,
            ),
            Message::Unlock { passphrase } => unlock(shared, upstream, body, passphrase),
            _ => failure(),
        };
    }
    match message {
        Message::RequestIdentities => (
            list_identities(shared, upstream, body, now),
            After::Continue,
        ),
        Message::SignRequest { key_blob, data, .. } => {
            // The flags choose RSA's hash only; OpenSSH ignores them for ECDSA and Ed25519.
            match shared.presented(now) {
                Some(presented) if presented.is_for_blob(key_blob) => {
                    (sign(&presented.held.key, data), After::Continue)
                }
                _ => forwarded(upstream, body),
            }
        }
        Message::Lock { passphrase } => lock(shared, upstream, body, passphrase),
        // Not locked: OpenSSH refuses an unlock.
        Message::Unlock { .. } => failure(),
        Message::Extension { name, .. } if name == STATUS_EXTENSION.as_bytes() => {
            let status = shared.state().status.clone().unwrap_or_else(|| "{}".into());
            let mut reply = vec![number::SUCCESS];
            match status.as_bytes().encode(&mut reply) {
                Ok(()) => (reply, After::Continue),
                Err(_) => failure(),
            }
        }
        Message::Extension { name, .. } if name == LOGIN_EXTENSION.as_bytes() => {
            shared.request_login();
            (vec![number::SUCCESS], After::Continue)
        }
        Message::Extension { .. } | Message::Other(_) => forwarded(upstream, body),
    }
}

fn forwarded(upstream: &mut Upstream<'_>, body: &[u8]) -> (Vec<u8>, After) {
    let reply = upstream.call(body).unwrap_or_else(|| vec![number::FAILURE]);
    (reply, After::Continue)
}

fn sign(key: &SigningKey, data: &[u8]) -> Vec<u8> {
    let Ok(signature) = ssh_signature(key, data) else {
        return vec![number::FAILURE];
    };
    let mut reply = vec![number::SIGN_RESPONSE];
    match signature.encode(&mut reply) {
        Ok(()) => reply,
        Err(_) => vec![number::FAILURE],
    }
}

fn lock(
    shared: &Shared,
    upstream: &mut Upstream<'_>,
    body: &[u8],
    passphrase: &[u8],
) -> (Vec<u8>, After) {
    // Upstream first: if it refuses, nothing is locked, as when one agent refuses.
    if upstream.path.is_some() {
        match upstream.call(body) {
            Some(reply) if reply.first() == Some(&number::SUCCESS) => {}
            // Unreachable upstream: its keys are not offered anyway; ours still lock.
            None => {}
            Some(reply) => return (reply, After::Continue),
        }
    }
    let mut state = shared.state();
    if state.lock.is_some() {
        return (vec![number::FAILURE], After::Continue);
    }
    state.lock = Some(passphrase_hash(passphrase));
    (vec![number::SUCCESS], After::Continue)
}

fn unlock(
    shared: &Shared,
    upstream: &mut Upstream<'_>,
    body: &[u8],
    passphrase: &[u8],
) -> (Vec<u8>, After) {
    let offered = passphrase_hash(passphrase);
    {
        let mut state = shared.state();
        let matches = state
            .lock
            .as_ref()
            .is_some_and(|locked| bool::from(locked.ct_eq(&*offered)));
        if !matches {
            // OpenSSH waits 0.1 s more for each failure in a row, up to 10 s.
            state.failed_unlocks = state.failed_unlocks.saturating_add(1).min(100);
            let delay = Duration::from_millis(100).saturating_mul(state.failed_unlocks);
            return (vec![number::FAILURE], After::BackOff(delay));
        }
        state.lock = None;
        state.failed_unlocks = 0;
    }
    // Ours is unlocked; the upstream's answer is the reply (an upstream that is gone holds
    // nothing locked).
    let reply = upstream.call(body).unwrap_or_else(|| vec![number::SUCCESS]);
    (reply, After::Continue)
}

fn list_identities(shared: &Shared, upstream: &mut Upstream<'_>, body: &[u8], now: i64) -> Vec<u8> {
    let presented = shared.presented(now);
    let mut identities = Vec::new();
    if let Some(presented) = &presented {
        identities.push(Identity {
            key_blob: presented.held.certificate.as_bytes().to_vec(),
            comment: presented.held.comment.as_bytes().to_vec(),
        });
    }
    let from_upstream = upstream
        .call(body)
        .and_then(|reply| Reply::from_body(&reply).ok());
    if let Some(Reply::Identities(theirs)) = from_upstream {
        let now_time = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
        identities.extend(
            theirs
                .into_iter()
                .filter(|identity| shown_from_upstream(identity, presented.as_deref(), now_time)),
        );
    }
    identities_body(identities).unwrap_or_else(|| vec![number::FAILURE])
}

/// Whether an upstream identity is listed next to the held one: not the same blob, and not an
/// opkssh certificate that is dead or for the same login.
fn shown_from_upstream(identity: &Identity, ours: Option<&Presented>, now: SystemTime) -> bool {
    if ours.is_some_and(|ours| ours.is_for_blob(&identity.key_blob)) {
        return false;
    }
    let Some(certificate) = AgentCertificate::from_identity(identity) else {
        return true;
    };
    if certificate.dead_because(now).is_some() {
        return false;
    }
    match ours.and_then(|ours| ours.login.as_ref()) {
        Some((issuer, subject)) => !certificate.is_for(issuer, subject),
        None => true,
    }
}

/// An identities answer with as many of `identities`, in order, as fit in
/// [`MAX_MESSAGE_LEN`].
fn identities_body(identities: Vec<Identity>) -> Option<Vec<u8>> {
    let mut size: usize = 5;
    let mut kept = Vec::with_capacity(identities.len());
    for identity in identities {
        let this = identity
            .key_blob
            .len()
            .saturating_add(identity.comment.len())
            .saturating_add(8);
        if size.saturating_add(this) > MAX_MESSAGE_LEN {
            break;
        }
        size = size.saturating_add(this);
        kept.push(identity);
    }
    let frame = Reply::Identities(kept).to_frame().ok()?;
    frame.get(4..).map(<[u8]>::to_vec)
}

/// Serves one client connection until it hangs up, breaks the framing, or stalls.
fn serve_connection(mut stream: AgentStream, shared: &Shared, upstream: Option<&Path>) {
    let mut upstream = Upstream {
        path: upstream,
        stream: None,
    };
    if stream.set_write_timeout(Some(MESSAGE_TIMEOUT)).is_err() {
        return;
    }
    loop {
        if stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err() {
            return;
        }
        let len = match read_length(&mut stream) {
            Ok(Some(len)) => len,
            Ok(None) | Err(_) => return,
        };
        if stream.set_read_timeout(Some(MESSAGE_TIMEOUT)).is_err() {
            return;
        }
        let Ok(body) = read_body(&mut stream, len) else {
            return;
        };
        let (reply, after) = answer(shared, &mut upstream, &body, unix_now());
        drop(body);
        if stream.write_all(&framed(&reply)).is_err() {
            return;
        }
        if let After::BackOff(delay) = after {
            std::thread::sleep(delay);
        }
    }
}

/// Counts a connection for as long as it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < MAX_CONNECTIONS).then_some(now.saturating_add(1))
            })
            .ok()
            .map(|_| Self(Arc::clone(count)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves connections from `listener` forever: a thread per connection (at most
/// [`MAX_CONNECTIONS`]), answering from `shared` and forwarding the rest to the agent at
/// `upstream` (connected per client connection, again after a failure).
///
/// # Errors
/// Only when accepting keeps failing (a thousand times in a row, about a minute): the
/// listener is unusable. A single failed accept (a client that hung up, too many open files
/// for a moment) is waited out.
pub fn serve(
    listener: AgentListener,
    shared: Shared,
    upstream: Option<PathBuf>,
) -> std::io::Result<()> {
    let upstream: Option<Arc<Path>> = upstream.map(Arc::from);
    let count = Arc::new(AtomicUsize::new(0));
    let mut failures = 0_u32;
    loop {
        let stream = match listener.accept() {
            Ok(stream) => {
                failures = 0;
                stream
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures >= 1000 {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Over the limit: this connection is closed, the agent goes on.
        let Some(slot) = Slot::take(&count) else {
            continue;
        };
        let shared = shared.clone();
        let upstream = upstream.clone();
        let spawned = std::thread::Builder::new()
            .name("opkssh-agent-connection".into())
            .spawn(move || {
                let _slot = slot;
                serve_connection(stream, &shared, upstream.as_deref());
            });
        // A thread that cannot start costs its connection (dropped with the closure).
        drop(spawned);
    }
}

/// Sends one extension request to the agent at `path`; the reply body.
fn extension_call(path: &Path, name: &str) -> Result<Vec<u8>, AgentError> {
    let mut stream = AgentStream::connect(path, crate::agent::IO_TIMEOUT).map_err(|source| {
        AgentError::Unreachable {
            path: path.to_owned(),
            source,
        }
    })?;
    let mut body = vec![number::EXTENSION];
    name.as_bytes()
        .encode(&mut body)
        .map_err(|_| AgentError::Unsendable("an extension name over 4 GiB"))?;
    stream.write_all(&framed(&body)).map_err(io_error)?;
    crate::agent::read_frame(&mut stream)
}

fn io_error(error: std::io::Error) -> AgentError {
    match error.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => AgentError::Timeout,
        _ => AgentError::Io(error),
    }
}

/// Asks the agent at `path` for its [`STATUS_EXTENSION`] JSON. `None` when the agent refuses
/// the extension: it is not an opkssh agent, or it is locked.
///
/// # Errors
/// The agent cannot be reached or answers out of protocol.
pub fn query_status(path: &Path) -> Result<Option<String>, AgentError> {
    let reply = extension_call(path, STATUS_EXTENSION)?;
    let Some((&kind, mut rest)) = reply.split_first() else {
        return Err(AgentError::Malformed("an empty message"));
    };
    match kind {
        number::SUCCESS => {
            let text = String::decode(&mut rest)
                .map_err(|_| AgentError::Malformed("the status is not a UTF-8 string"))?;
            if !rest.is_empty() {
                return Err(AgentError::Malformed("bytes after the status"));
            }
            Ok(Some(text))
        }
        number::FAILURE | number::EXTENSION_FAILURE => Ok(None),
        got => Err(AgentError::UnexpectedReply {
            got,
            request: "the opkssh status",
        }),
    }
}

/// Asks the opkssh agent at `path` to log in again ([`LOGIN_EXTENSION`]).
///
/// # Errors
/// [`AgentError::Refused`] when the agent does not take it (not an opkssh agent, or locked),
/// and the errors of reaching it.
pub fn request_login(path: &Path) -> Result<(), AgentError> {
    let reply = extension_call(path, LOGIN_EXTENSION)?;
    match reply.as_slice() {
        [number::SUCCESS] => Ok(()),
        [number::FAILURE] | [number::EXTENSION_FAILURE, ..] => Err(AgentError::Refused(
            "start a login (it is not an opkssh agent, or it is locked)",
        )),
        [] => Err(AgentError::Malformed("an empty message")),
        [got, ..] => Err(AgentError::UnexpectedReply {
            got: *got,
            request: "a login",
        }),
    }
}

/// The agent's message handling, for the fuzz target `agent_message` and its stable tests
/// (`client/tests/agent_message_fuzz.rs`).
pub mod fuzzing {
    use super::{Held, Shared, Upstream, answer, read_body, read_length};
    use crate::agent::{MAX_MESSAGE_LEN, Reply};
    use opk_core::jws::SigningKey;
    use opk_core::sshcert::ssh_key::encoding::Decode as _;
    use opk_core::sshcert::{CertificateRequest, Principals, build_certificate};

    /// The fixed Ed25519 seed of [`held_identity`]'s key: public, so that seed inputs can name
    /// its plain key blob. Never a real key.
    pub const FUZZ_KEY_SEED: [u8; 32] = [0x42; 32];

    /// An identity to hold while fuzzing: a certificate for the key of [`FUZZ_KEY_SEED`].
    ///
    /// # Errors
    /// Building the certificate fails only if the system's random number generator does.
    pub fn held_identity() -> Result<Held, opk_core::sshcert::CertError> {
        let key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&FUZZ_KEY_SEED));
        let certificate = build_certificate(CertificateRequest {
            key: &key,
            key_id: "fuzz@example.com",
            principals: Principals::Default,
            pk_token: "header.payload:signature",
            access_token: None,
        })?;
        Ok(Held {
            key,
            certificate,
            comment: "fuzz".into(),
            expires_at: None,
        })
    }

    /// Reads `data` as a stream of requests, as one client connection would send it, and
    /// answers each from a fresh [`Shared`] holding `held`, with no upstream, until the
    /// framing breaks. Returns the reply bodies. Asserts that every reply is a well-formed
    /// ssh-agent reply within [`MAX_MESSAGE_LEN`].
    pub fn messages(data: &[u8], held: Option<Held>) -> Vec<Vec<u8>> {
        let shared = Shared::new();
        if let Some(held) = held {
            shared.hold(held);
        }
        let mut upstream = Upstream {
            path: None,
            stream: None,
        };
        let mut replies = Vec::new();
        let mut reader = data;
        while let Ok(Some(len)) = read_length(&mut reader) {
            let Ok(body) = read_body(&mut reader, len) else {
                break;
            };
            // A fixed clock: the fuzzing identity never expires anyway.
            let (reply, _) = answer(&shared, &mut upstream, &body, 1_000);
            assert!(!reply.is_empty() && reply.len() <= MAX_MESSAGE_LEN);
            match (reply.split_first(), Reply::from_body(&reply)) {
                // A sign response, or the status (success and a string): one string follows.
                (Some((&super::number::SIGN_RESPONSE | &super::number::SUCCESS, rest)), _)
                    if reply.len() > 1 =>
                {
                    let mut rest = rest;
                    assert!(Vec::<u8>::decode(&mut rest).is_ok() && rest.is_empty());
                }
                (_, Ok(Reply::Other(kind))) => panic!("unknown reply {kind}"),
                (_, Ok(_)) => {}
                (_, Err(error)) => panic!("malformed reply {reply:?}: {error}"),
            }
            replies.push(reply);
        }
        replies
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::as_conversions
    )]

    use super::*;
    use opk_core::sshcert::{
        CertificateRequest, Principals, UserKeyType, build_certificate, generate_user_key,
    };

    fn held(kind: UserKeyType, expires_at: Option<i64>) -> Held {
        let key = generate_user_key(kind).unwrap();
        let certificate = build_certificate(CertificateRequest {
            key: &key,
            key_id: "alice@example.com",
            principals: Principals::Default,
            pk_token: "header.payload:signature",
            access_token: None,
        })
        .unwrap();
        Held {
            key,
            certificate,
            comment: "openpubkey test".into(),
            expires_at,
        }
    }

    fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    }

    fn sign_body(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut body = vec![13];
        put_string(&mut body, blob);
        put_string(&mut body, data);
        body.extend_from_slice(&flags.to_be_bytes());
        body
    }

    fn no_upstream() -> Upstream<'static> {
        Upstream {
            path: None,
            stream: None,
        }
    }

    fn ask(shared: &Shared, body: &[u8], now: i64) -> Vec<u8> {
        answer(shared, &mut no_upstream(), body, now).0
    }

    #[test]
    fn messages_parse() {
        assert_eq!(Message::parse(&[11]), Ok(Message::RequestIdentities));
        assert_eq!(
            Message::parse(&sign_body(b"blob", b"data", 2)),
            Ok(Message::SignRequest {
                key_blob: b"blob",
                data: b"data",
                flags: 2
            })
        );
        assert_eq!(
            Message::parse(&[22, 0, 0, 0, 2, b'p', b'w']),
            Ok(Message::Lock { passphrase: b"pw" })
        );
        assert_eq!(
            Message::parse(&[23, 0, 0, 0, 0]),
            Ok(Message::Unlock { passphrase: b"" })
        );
        assert_eq!(
            Message::parse(&[27, 0, 0, 0, 1, b'x', 9, 9]),
            Ok(Message::Extension {
                name: b"x",
                contents: &[9, 9]
            })
        );
        for other in [17, 18, 19, 20, 21, 25, 26, 0, 255] {
            assert_eq!(Message::parse(&[other, 1, 2]), Ok(Message::Other(other)));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(Message::parse(&[]), Err(MessageError::Empty));
        assert_eq!(Message::parse(&[11, 0]), Err(MessageError::TrailingBytes));
        assert_eq!(
            Message::parse(&[13, 0, 0, 0, 9, 1]),
            Err(MessageError::Truncated("key blob"))
        );
        assert_eq!(
            Message::parse(&[13, 0, 0, 0, 0, 0, 0]),
            Err(MessageError::Truncated("data to sign"))
        );
        assert_eq!(
            Message::parse(&[13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(MessageError::Truncated("flags"))
        );
        let mut long = sign_body(b"", b"", 0);
        long.push(0);
        assert_eq!(Message::parse(&long), Err(MessageError::TrailingBytes));
        assert_eq!(
            Message::parse(&[22, 0xff, 0xff, 0xff, 0xff]),
            Err(MessageError::Truncated("passphrase"))
        );
        assert_eq!(
            Message::parse(&[27, 0, 0]),
            Err(MessageError::Truncated("extension name"))
        );
    }

    #[test]
    fn frames_are_bounded() {
        let mut reader: &[u8] = &[0, 4, 0, 1, 11];
        assert!(matches!(
            read_length(&mut reader),
            Err(FrameError::TooLarge(262_145))
        ));
        // The body of an oversized message is never read.
        assert_eq!(reader, &[11]);
        let limit = u32::try_from(MAX_MESSAGE_LEN).unwrap().to_be_bytes();
        assert_eq!(read_length(&mut &limit[..]).unwrap(), Some(MAX_MESSAGE_LEN));
        assert!(matches!(
            read_length(&mut &[0, 0, 0, 0][..]),
            Err(FrameError::ZeroLength)
        ));
        assert!(matches!(read_length(&mut &[][..]), Ok(None)));
        assert!(matches!(
            read_length(&mut &[0, 0][..]),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_body(&mut &[1, 2][..], 3),
            Err(FrameError::Truncated)
        ));
        assert_eq!(*read_body(&mut &[1, 2, 3][..], 3).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn lists_the_held_certificate_until_it_expires() {
        let shared = Shared::new();
        assert_eq!(ask(&shared, &[11], 100), [12, 0, 0, 0, 0]);
        let held = held(UserKeyType::Ecdsa, Some(200));
        let blob = held.certificate.as_bytes().to_vec();
        shared.hold(held);
        let Reply::Identities(listed) = Reply::from_body(&ask(&shared, &[11], 199)).unwrap() else {
            panic!()
        };
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_blob, blob);
        assert_eq!(listed[0].comment, b"openpubkey test");
        // At and after expiry: not listed, not used.
        assert_eq!(ask(&shared, &[11], 200), [12, 0, 0, 0, 0]);
        assert_eq!(ask(&shared, &sign_body(&blob, b"x", 0), 200), [5]);
        shared.release();
        assert_eq!(ask(&shared, &[11], 100), [12, 0, 0, 0, 0]);
    }

    #[test]
    fn signs_for_the_certificate_and_its_plain_key_whatever_the_flags() {
        use opk_core::sshcert::ssh_key::{Signature, public::KeyData};
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let shared = Shared::new();
            let held = held(kind, None);
            let cert_blob = held.certificate.as_bytes().to_vec();
            let public: KeyData = held.certificate.inner().public_key().clone();
            let mut plain_blob = Vec::new();
            public.encode(&mut plain_blob).unwrap();
            shared.hold(held);
            for blob in [&cert_blob, &plain_blob] {
                for flags in [0, 2, 4, 0xffff_ffff] {
                    let reply = ask(&shared, &sign_body(blob, b"session", flags), 0);
                    assert_eq!(reply[0], 14, "{kind:?}");
                    let mut rest = &reply[1..];
                    let wire = Vec::<u8>::decode(&mut rest).unwrap();
                    assert!(rest.is_empty());
                    let signature = Signature::decode(&mut wire.as_slice()).unwrap();
                    assert_eq!(signature.algorithm().as_str(), kind.key_type_name());
                    assert!(signature::Verifier::verify(&public, b"session", &signature).is_ok());
                }
            }
            // Another key, without an upstream: refused.
            assert_eq!(ask(&shared, &sign_body(b"other", b"session", 0), 0), [5]);
        }
    }

    #[test]
    fn lock_stops_our_key_until_the_same_passphrase_unlocks() {
        let shared = Shared::new();
        let held = held(UserKeyType::Ed25519, None);
        let blob = held.certificate.as_bytes().to_vec();
        shared.hold(held);
        // Unlocking what is not locked fails, as in OpenSSH.
        assert_eq!(ask(&shared, &[23, 0, 0, 0, 1, b'a'], 0), [5]);
        assert_eq!(ask(&shared, &[22, 0, 0, 0, 2, b'p', b'w'], 0), [6]);
        // Locked: an empty list, no signature, no second lock, no status.
        assert_eq!(ask(&shared, &[11], 0), [12, 0, 0, 0, 0]);
        assert_eq!(ask(&shared, &sign_body(&blob, b"x", 0), 0), [5]);
        assert_eq!(ask(&shared, &[22, 0, 0, 0, 2, b'p', b'w'], 0), [5]);
        let mut status = vec![27];
        put_string(&mut status, STATUS_EXTENSION.as_bytes());
        assert_eq!(ask(&shared, &status, 0), [5]);
        // A wrong passphrase fails and asks for a growing pause.
        let (reply, after) = answer(&shared, &mut no_upstream(), &[23, 0, 0, 0, 1, b'p'], 0);
        assert_eq!(
            (reply, after),
            (vec![5], After::BackOff(Duration::from_millis(100)))
        );
        let (_, after) = answer(&shared, &mut no_upstream(), &[23, 0, 0, 0, 0], 0);
        assert_eq!(after, After::BackOff(Duration::from_millis(200)));
        assert_eq!(ask(&shared, &[23, 0, 0, 0, 2, b'p', b'w'], 0), [6]);
        assert_eq!(ask(&shared, &sign_body(&blob, b"x", 0), 0)[0], 14);
        assert_eq!(shared.state().failed_unlocks, 0);
    }

    #[test]
    fn status_and_login_extensions() {
        let shared = Shared::new();
        let mut status = vec![27];
        put_string(&mut status, STATUS_EXTENSION.as_bytes());
        assert_eq!(ask(&shared, &status, 0), [6, 0, 0, 0, 2, b'{', b'}']);
        shared.set_status(r#"{"identity":"a"}"#.into());
        let reply = ask(&shared, &status, 0);
        assert_eq!(&reply[5..], br#"{"identity":"a"}"#);
        let mut login = vec![27];
        put_string(&mut login, LOGIN_EXTENSION.as_bytes());
        assert!(!shared.take_login_request());
        assert_eq!(ask(&shared, &login, 0), [6]);
        assert!(shared.take_login_request());
        assert!(!shared.take_login_request(), "true once");
        // Another extension, no upstream: refused.
        let mut other = vec![27];
        put_string(&mut other, b"session-bind@openssh.com");
        assert_eq!(ask(&shared, &other, 0), [5]);
    }

    #[test]
    fn wait_login_request_wakes_on_the_extension() {
        let shared = Shared::new();
        assert!(!shared.wait_login_request(Duration::from_millis(10)));
        let waiter = std::thread::spawn({
            let shared = shared.clone();
            move || shared.wait_login_request(Duration::from_secs(60))
        });
        let mut login = vec![27];
        put_string(&mut login, LOGIN_EXTENSION.as_bytes());
        assert_eq!(ask(&shared, &login, 0), [6]);
        assert!(waiter.join().unwrap());
        assert!(!shared.take_login_request(), "consumed by the waiter");
    }

    #[test]
    fn malformed_bodies_get_a_failure() {
        let shared = Shared::new();
        shared.hold(held(UserKeyType::Ecdsa, None));
        for body in [
            &[][..],
            &[11, 0],
            &[13, 0, 0, 0, 9],
            &[22],
            &[27, 0, 0, 0, 5],
        ] {
            assert_eq!(ask(&shared, body, 0), [5], "{body:?}");
        }
    }

    #[test]
    fn upstream_duplicates_and_dead_certificates_are_hidden() {
        let ours = Presented::new(held(UserKeyType::Ecdsa, None));
        let now = SystemTime::now();
        let same = Identity {
            key_blob: ours.held.certificate.as_bytes().to_vec(),
            comment: Vec::new(),
        };
        assert!(!shown_from_upstream(&same, Some(&ours), now));
        let plain = Identity {
            key_blob: ours.plain_blob.clone(),
            comment: Vec::new(),
        };
        assert!(!shown_from_upstream(&plain, Some(&ours), now));
        // Another opkssh certificate whose PK token does not read: dead.
        let other = Presented::new(held(UserKeyType::Ed25519, None));
        let dead = Identity {
            key_blob: other.held.certificate.as_bytes().to_vec(),
            comment: Vec::new(),
        };
        assert!(!shown_from_upstream(&dead, Some(&ours), now));
        assert!(!shown_from_upstream(&dead, None, now));
        // A plain key of someone else's: shown.
        assert!(shown_from_upstream(&plain, None, now));
    }

    #[test]
    fn identity_lists_stay_under_the_limit() {
        let big = |byte| Identity {
            key_blob: vec![byte; 100 * 1024],
            comment: Vec::new(),
        };
        let body = identities_body(vec![big(1), big(2), big(3)]).unwrap();
        assert!(body.len() <= MAX_MESSAGE_LEN);
        let Reply::Identities(kept) = Reply::from_body(&body).unwrap() else {
            panic!()
        };
        assert_eq!(kept.len(), 2, "the first ones, in order");
        assert_eq!(kept[1].key_blob[0], 2);
    }

    #[test]
    fn held_keys_wipe_themselves() {
        fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroize_on_drop::<p256::ecdsa::SigningKey>();
        zeroize_on_drop::<ed25519_dalek::SigningKey>();
    }

    #[test]
    fn the_fuzz_body_runs_on_seeds() {
        let held = held(UserKeyType::Ecdsa, None);
        let blob = held.certificate.as_bytes().to_vec();
        let mut stream = Vec::new();
        for body in [
            vec![11],
            sign_body(&blob, b"x", 0),
            vec![22, 0, 0, 0, 0],
            vec![23, 0, 0, 0, 1, 1],
            vec![23, 0, 0, 0, 0],
            vec![17, 1, 2, 3],
        ] {
            stream.extend_from_slice(&framed(&body));
        }
        stream.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let replies = fuzzing::messages(&stream, Some(held));
        let kinds: Vec<u8> = replies.iter().map(|reply| reply[0]).collect();
        assert_eq!(kinds, [12, 14, 6, 5, 6, 5]);
        assert_eq!(fuzzing::messages(&[0, 0, 0, 1, 11, 0, 0], None).len(), 1);
    }
}
