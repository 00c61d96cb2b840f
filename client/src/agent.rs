//! A small ssh-agent client (draft-miller-ssh-agent): list the agent's identities, add an
//! opkssh certificate with its private key (under a lifetime where the agent takes one: see
//! [`Agent::with_rules`]), remove an identity, and have the agent sign with a key it holds
//! ([`Agent::sign`], for `--agent-key`: [`crate::agent_key`]).
//!
//! Only the messages opkssh needs are spoken, over the Unix socket named by `$SSH_AUTH_SOCK`
//! (on Windows, Win32-OpenSSH's named pipe when it is not set: [`opk_os::agent`]).
//! The agent is outside data: every read is bounded by [`MAX_MESSAGE_LEN`] and [`IO_TIMEOUT`],
//! and a reply that breaks the format is a [`AgentError`], never a panic.
//!
//! The private key travels only inside the add-identity message, which is built in a buffer
//! reserved once at its full size and wiped when dropped.

use opk_core::jws::SigningKey;
use opk_core::sshcert::OpksshCertificate;
use opk_core::sshcert::ssh_key::encoding::{self, Decode as _, Encode as _, Reader as _};
use opk_os::System;
use opk_os::agent::AgentStream;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The environment variable naming the agent's socket.
pub const AUTH_SOCK_ENV: &str = opk_os::agent::AUTH_SOCK_ENV;

/// Longest agent message accepted or sent, length prefix excluded. OpenSSH's agent uses the
/// same 256 KiB bound, and an opkssh certificate is at most that long (`MAX_CERT_LINE_LEN`).
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// How long one read or write on the agent socket may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sign request may wait for its answer. Longer than [`IO_TIMEOUT`]: the agents
/// that hold hardware keys ask the user first (Touch ID for Secretive, a touch or PIN for a
/// YubiKey, an approval in 1Password, `ssh-add -c`'s confirmation).
pub const SIGN_TIMEOUT: Duration = Duration::from_secs(120);

/// Message numbers and the constraint opkssh uses (draft-miller-ssh-agent §5.1, §4.2.6).
mod number {
    pub(super) const FAILURE: u8 = 5;
    pub(super) const SUCCESS: u8 = 6;
    pub(super) const REQUEST_IDENTITIES: u8 = 11;
    pub(super) const IDENTITIES_ANSWER: u8 = 12;
    pub(super) const SIGN_REQUEST: u8 = 13;
    pub(super) const SIGN_RESPONSE: u8 = 14;
    pub(super) const ADD_IDENTITY: u8 = 17;
    pub(super) const REMOVE_IDENTITY: u8 = 18;
    pub(super) const ADD_ID_CONSTRAINED: u8 = 25;
    pub(super) const CONSTRAIN_LIFETIME: u8 = 1;
}

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `$SSH_AUTH_SOCK` is unset or empty.
    #[error(
        "SSH_AUTH_SOCK is not set, so there is no ssh-agent to use (start one with: eval \"$(ssh-agent)\")"
    )]
    NotSet,
    /// The socket could not be connected to.
    #[error("cannot reach the ssh-agent at {path}: {source}")]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A read or write took longer than [`IO_TIMEOUT`].
    #[error("the ssh-agent did not answer within {} s", IO_TIMEOUT.as_secs())]
    Timeout,
    /// A sign request got no answer in time ([`SIGN_TIMEOUT`] unless
    /// [`Agent::set_sign_timeout`] said otherwise); the seconds waited.
    #[error("the ssh-agent did not sign within {0} s (was a confirmation prompt left unanswered?)")]
    SignTimeout(u64),
    /// The connection failed or closed.
    #[error("talking to the ssh-agent failed: {0}")]
    Io(#[source] std::io::Error),
    /// The agent answered `SSH_AGENT_FAILURE`.
    #[error("the ssh-agent refused to {0}")]
    Refused(&'static str),
    /// A reply's length prefix is over [`MAX_MESSAGE_LEN`]; it was not read.
    #[error("the ssh-agent's reply is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A reply breaks the message format.
    #[error("the ssh-agent's reply is malformed: {0}")]
    Malformed(&'static str),
    /// A reply of another type than the request calls for.
    #[error("the ssh-agent answered message type {got} to a request for {request}")]
    UnexpectedReply {
        /// The reply's message number.
        got: u8,
        /// What was asked.
        request: &'static str,
    },
    /// The identity cannot be put in an add-identity message.
    #[error("cannot send this identity to the ssh-agent: {0}")]
    Unsendable(&'static str),
}

impl AgentError {
    /// The agent's socket or pipe, when the message names it.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Unreachable { path, .. } => Some(path),
            _ => None,
        }
    }

    fn from_io(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Io(error),
        }
    }
}

/// One identity the agent holds: the public key or certificate blob and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key blob (for a certificate, the whole certificate).
    pub key_blob: Vec<u8>,
    /// The comment, as the agent stores it (not necessarily UTF-8).
    pub comment: Vec<u8>,
}

impl Identity {
    /// The comment for display: invalid UTF-8 replaced, then escaped as all outside text is
    /// ([`opk_core::escape::line`]).
    pub fn printable_comment(&self) -> String {
        opk_core::escape::line(&String::from_utf8_lossy(&self.comment)).into_owned()
    }
}

/// A certificate with its private key, as `SSH_AGENTC_ADD_ID_CONSTRAINED` carries it.
#[derive(Debug, Clone, Copy)]
pub struct CertificateIdentity<'a> {
    /// The certificate's private key.
    pub key: &'a SigningKey,
    /// The certificate.
    pub certificate: &'a OpksshCertificate,
    /// The comment the agent shows (`ssh-add -l`).
    pub comment: &'a str,
    /// Seconds until the agent forgets the identity; `None` for no limit.
    pub lifetime: Option<u32>,
}

/// A request opkssh sends.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// `SSH_AGENTC_REQUEST_IDENTITIES`.
    RequestIdentities,
    /// A certificate identity: `SSH_AGENTC_ADD_ID_CONSTRAINED` with its lifetime, or
    /// `SSH_AGENTC_ADD_IDENTITY` when it has none.
    AddCertificate(CertificateIdentity<'a>),
    /// `SSH_AGENTC_REMOVE_IDENTITY` of a key blob.
    RemoveIdentity(&'a [u8]),
    /// `SSH_AGENTC_SIGN_REQUEST`: the key blob, the data, the flags.
    Sign {
        /// The public key blob of the key to sign with, as the agent listed it.
        key_blob: &'a [u8],
        /// What to sign.
        data: &'a [u8],
        /// `SSH_AGENT_RSA_SHA2_*` flags; 0 for ECDSA and Ed25519 keys.
        flags: u32,
    },
}

impl Request<'_> {
    /// The whole message: length prefix, then the body. Wiped on drop, as it may hold a
    /// private key.
    ///
    /// # Errors
    /// [`AgentError::Unsendable`] for an RSA key, a key that is not the certificate's, or a
    /// message over [`MAX_MESSAGE_LEN`].
    pub fn to_frame(&self) -> Result<Zeroizing<Vec<u8>>, AgentError> {
        let capacity = match self {
            Self::RequestIdentities => 5,
            Self::RemoveIdentity(blob) => 9_usize.saturating_add(blob.len()),
            Self::Sign { key_blob, data, .. } => 17_usize
                .saturating_add(key_blob.len())
                .saturating_add(data.len()),
            Self::AddCertificate(identity) => [
                5,
                4,
                identity.certificate.cert_type_name().len(),
                4,
                identity.certificate.as_bytes().len(),
                // The largest key fields: Ed25519's 4 + 32 + 4 + 64.
                104,
                4,
                identity.comment.len(),
                5,
            ]
            .iter()
            .fold(0_usize, |sum, part| sum.saturating_add(*part)),
        };
        if capacity.saturating_sub(4) > MAX_MESSAGE_LEN {
            return Err(AgentError::Unsendable("the message would be over 256 KiB"));
        }
        // Reserved once at full size: a growing buffer would leave copies of the private key
        // in freed memory that Zeroizing never sees.
        let mut frame = Zeroizing::new(Vec::with_capacity(capacity));
        frame.extend_from_slice(&[0; 4]);
        match self {
            Self::RequestIdentities => number::REQUEST_IDENTITIES
                .encode(&mut *frame)
                .map_err(field_too_long)?,
            Self::RemoveIdentity(blob) => number::REMOVE_IDENTITY
                .encode(&mut *frame)
                .and_then(|()| blob.encode(&mut *frame))
                .map_err(field_too_long)?,
            Self::Sign {
                key_blob,
                data,
                flags,
            } => number::SIGN_REQUEST
                .encode(&mut *frame)
                .and_then(|()| key_blob.encode(&mut *frame))
                .and_then(|()| data.encode(&mut *frame))
                .and_then(|()| flags.encode(&mut *frame))
                .map_err(field_too_long)?,
            Self::AddCertificate(identity) => encode_add_certificate(identity, &mut frame)?,
        }
        set_length_prefix(&mut frame)?;
        Ok(frame)
    }
}

fn field_too_long(_: encoding::Error) -> AgentError {
    AgentError::Unsendable("a field is over 4 GiB")
}

/// Fills in the four bytes reserved at the start of `frame` with the body's length.
fn set_length_prefix(frame: &mut [u8]) -> Result<(), AgentError> {
    let body_len = u32::try_from(frame.len().saturating_sub(4))
        .map_err(|_| AgentError::Unsendable("the message would be over 4 GiB"))?;
    if let Some(prefix) = frame.get_mut(..4) {
        prefix.copy_from_slice(&body_len.to_be_bytes());
    }
    Ok(())
}

fn encode_add_certificate(
    identity: &CertificateIdentity<'_>,
    frame: &mut Vec<u8>,
) -> Result<(), AgentError> {
    let certificate = identity.certificate;
    if matches!(identity.key, SigningKey::Rsa(_)) {
        return Err(AgentError::Unsendable("RSA keys are not opkssh user keys"));
    }
    // A key another agent holds has no private half here to send; `opkssh agent` presents
    // such a certificate itself and has the holding agent sign.
    if identity.key.external().is_some() {
        return Err(AgentError::Unsendable(
            "the key is held by an ssh-agent, which never gives out its private half",
        ));
    }
    if !certificate.matches_upk(&identity.key.public_key()) {
        return Err(AgentError::Unsendable(
            "the private key is not the certificate's key",
        ));
    }
    // Without a constraint, the plain add, as ssh-add sends it: Win32-OpenSSH's agent dispatches
    // only that one in the versions read (contrib/win32/win32compat/ssh-agent/connection.c), and
    // drops the connection on a constrained add even when no constraint follows.
    let kind = match identity.lifetime {
        Some(_) => number::ADD_ID_CONSTRAINED,
        None => number::ADD_IDENTITY,
    };
    kind.encode(frame)
        .and_then(|()| certificate.cert_type_name().as_bytes().encode(frame))
        .and_then(|()| certificate.as_bytes().encode(frame))
        .map_err(field_too_long)?;
    // For a certificate the agent takes only the key's private fields after the certificate,
    // which carries the public ones (draft-miller-ssh-agent §4.2.3-4.2.5); OpenSSH also wants
    // the Ed25519 public key again.
    match identity.key {
        SigningKey::EcdsaP256(key) => {
            let scalar: Zeroizing<[u8; 32]> = Zeroizing::new(key.to_bytes().into());
            encode_positive_mpint(scalar.as_slice(), frame)
        }
        SigningKey::Ed25519(key) => {
            let pair = Zeroizing::new(key.to_keypair_bytes());
            // as_slice: a fixed-size array would encode as byte[32], without a length.
            key.verifying_key()
                .as_bytes()
                .as_slice()
                .encode(frame)
                .and_then(|()| pair.as_slice().encode(frame))
        }
        SigningKey::Rsa(_) | SigningKey::External(_) => Ok(()),
    }
    .map_err(field_too_long)?;
    identity
        .comment
        .as_bytes()
        .encode(frame)
        .map_err(field_too_long)?;
    if let Some(seconds) = identity.lifetime {
        number::CONSTRAIN_LIFETIME
            .encode(frame)
            .and_then(|()| seconds.encode(frame))
            .map_err(field_too_long)?;
    }
    Ok(())
}

/// A positive `mpint` (RFC 4251 §5) written straight into `out`: no leading zero bytes, one
/// zero byte in front when the top bit is set.
fn encode_positive_mpint(magnitude: &[u8], out: &mut Vec<u8>) -> Result<(), encoding::Error> {
    let digits = match magnitude.iter().position(|byte| *byte != 0) {
        Some(start) => magnitude.get(start..).unwrap_or_default(),
        None => &[],
    };
    let sign_byte = digits.first().is_some_and(|byte| byte & 0x80 != 0);
    digits
        .len()
        .saturating_add(usize::from(sign_byte))
        .encode(out)?;
    if sign_byte {
        out.push(0);
    }
    out.extend_from_slice(digits);
    Ok(())
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `SSH_AGENT_SUCCESS`.
    Success,
    /// `SSH_AGENT_FAILURE`.
    Failure,
    /// `SSH_AGENT_IDENTITIES_ANSWER`.
    Identities(Vec<Identity>),
    /// `SSH_AGENT_SIGN_RESPONSE`: the SSH signature blob (`string algorithm ‖ string
    /// signature`), not looked into here.
    Signature(Vec<u8>),
    /// Any other message number (its body is not looked at).
    Other(u8),
}

impl Reply {
    /// Decodes a reply body (the bytes after the length prefix).
    ///
    /// # Errors
    /// [`AgentError::Malformed`] for an empty body, a short or overlong success, failure or
    /// identities answer, an identity count the body cannot hold, or an empty key blob.
    pub fn from_body(body: &[u8]) -> Result<Self, AgentError> {
        let Some((&kind, mut rest)) = body.split_first() else {
            return Err(AgentError::Malformed("an empty message"));
        };
        let reply = match kind {
            number::SUCCESS => Self::Success,
            number::FAILURE => Self::Failure,
            number::IDENTITIES_ANSWER => Self::Identities(decode_identities(&mut rest)?),
            number::SIGN_RESPONSE => Self::Signature(
                Vec::<u8>::decode(&mut rest)
                    .map_err(|_| AgentError::Malformed("truncated sign response"))?,
            ),
            other => return Ok(Self::Other(other)),
        };
        if !rest.is_empty() {
            return Err(AgentError::Malformed("bytes after the end of the reply"));
        }
        Ok(reply)
    }

    /// The whole message, length prefix first: what an agent sends.
    ///
    /// # Errors
    /// [`AgentError::Unsendable`] for a field over 4 GiB or `Other` (whose body is unknown).
    pub fn to_frame(&self) -> Result<Vec<u8>, AgentError> {
        let mut frame = vec![0; 4];
        match self {
            Self::Success => number::SUCCESS.encode(&mut frame),
            Self::Failure => number::FAILURE.encode(&mut frame),
            Self::Identities(identities) => encode_identities(identities, &mut frame),
            Self::Signature(signature) => number::SIGN_RESPONSE
                .encode(&mut frame)
                .and_then(|()| signature.as_slice().encode(&mut frame)),
            Self::Other(_) => return Err(AgentError::Unsendable("an unknown message")),
        }
        .map_err(field_too_long)?;
        set_length_prefix(&mut frame)?;
        Ok(frame)
    }
}

fn encode_identities(identities: &[Identity], out: &mut Vec<u8>) -> Result<(), encoding::Error> {
    number::IDENTITIES_ANSWER.encode(out)?;
    identities.len().encode(out)?;
    for identity in identities {
        identity.key_blob.as_slice().encode(out)?;
        identity.comment.as_slice().encode(out)?;
    }
    Ok(())
}

fn decode_identities(reader: &mut &[u8]) -> Result<Vec<Identity>, AgentError> {
    let malformed = |_| AgentError::Malformed("truncated identities answer");
    let count = u32::decode(reader).map_err(malformed)?;
    // Each identity takes at least two length prefixes: a count the body cannot hold is
    // refused before anything is reserved for it.
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > reader.remaining_len() / 8 {
        return Err(AgentError::Malformed(
            "the identity count is larger than the message can hold",
        ));
    }
    let mut identities = Vec::with_capacity(count);
    for _ in 0..count {
        let key_blob = Vec::<u8>::decode(reader).map_err(malformed)?;
        let comment = Vec::<u8>::decode(reader).map_err(malformed)?;
        if key_blob.is_empty() {
            return Err(AgentError::Malformed("an identity with an empty key blob"));
        }
        identities.push(Identity { key_blob, comment });
    }
    Ok(identities)
}

/// Reads one message body: a length prefix of at most [`MAX_MESSAGE_LEN`], then that many
/// bytes.
///
/// # Errors
/// [`AgentError::TooLarge`] (nothing more is read), [`AgentError::Malformed`] for a zero
/// length or a connection closed mid-message, [`AgentError::Timeout`], [`AgentError::Io`].
pub fn read_frame(reader: &mut impl Read) -> Result<Vec<u8>, AgentError> {
    let mut prefix = [0_u8; 4];
    reader.read_exact(&mut prefix).map_err(closed_or_io)?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(AgentError::Malformed("a zero-length message"));
    }
    if len > MAX_MESSAGE_LEN {
        return Err(AgentError::TooLarge {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).map_err(closed_or_io)?;
    Ok(body)
}

fn closed_or_io(error: std::io::Error) -> AgentError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        AgentError::Malformed("the connection closed before the whole reply arrived")
    } else {
        AgentError::from_io(error)
    }
}

/// A connection to a running agent.
#[derive(Debug)]
pub struct Agent {
    stream: AgentStream,
    sign_timeout: Duration,
    /// Whose agent rules apply ([`opk_os::agent::lifetime_supported`]).
    rules: System,
}

impl Agent {
    /// Connects to the agent named by `$SSH_AUTH_SOCK` (on Windows, when it is not set,
    /// Win32-OpenSSH's agent).
    ///
    /// # Errors
    /// [`AgentError::NotSet`], [`AgentError::Unreachable`].
    pub fn from_env() -> Result<Self, AgentError> {
        match opk_os::agent::default_agent_path() {
            Some(path) => Self::connect(&path),
            None => Err(AgentError::NotSet),
        }
    }

    /// Connects to the agent listening at `path`.
    ///
    /// # Errors
    /// [`AgentError::Unreachable`].
    pub fn connect(path: &Path) -> Result<Self, AgentError> {
        let unreachable = |source| AgentError::Unreachable {
            path: path.to_owned(),
            source,
        };
        let stream = AgentStream::connect(path, IO_TIMEOUT).map_err(unreachable)?;
        Ok(Self {
            stream,
            sign_timeout: SIGN_TIMEOUT,
            rules: System::CURRENT,
        })
    }

    /// The same connection, following `system`'s agent rules from now on (this system's by
    /// default). Windows' rules send no lifetime, as Win32-OpenSSH's agent refuses one; they are
    /// tested against OpenSSH's agent on Linux through this.
    #[must_use]
    pub fn with_rules(self, system: System) -> Self {
        Self {
            rules: system,
            ..self
        }
    }

    /// Whose agent rules this connection follows.
    pub fn rules(&self) -> System {
        self.rules
    }

    /// The identities the agent holds.
    ///
    /// # Errors
    /// Any [`AgentError`] but `NotSet` and `Unreachable`.
    pub fn identities(&mut self) -> Result<Vec<Identity>, AgentError> {
        match self.call(&Request::RequestIdentities)? {
            Reply::Identities(identities) => Ok(identities),
            Reply::Failure => Err(AgentError::Refused("list its identities")),
            other => Err(unexpected(&other, "its identities")),
        }
    }

    /// Adds a certificate and its private key, and returns the lifetime the agent was given.
    /// Under rules whose agent refuses lifetimes (Win32-OpenSSH's, [`Self::with_rules`]), the
    /// identity goes in without one ([`opk_os::agent::lifetime_for`]) and `None` comes back.
    ///
    /// # Errors
    /// [`AgentError::Refused`] if the agent declines, and the other errors of a request.
    pub fn add_certificate(
        &mut self,
        identity: &CertificateIdentity<'_>,
    ) -> Result<Option<u32>, AgentError> {
        let identity = CertificateIdentity {
            lifetime: opk_os::agent::lifetime_for(self.rules, identity.lifetime),
            ..*identity
        };
        match self.call(&Request::AddCertificate(identity))? {
            Reply::Success => Ok(identity.lifetime),
            Reply::Failure => Err(AgentError::Refused("add the certificate")),
            other => Err(unexpected(&other, "adding an identity")),
        }
    }

    /// How long [`Agent::sign`] waits for the signature ([`SIGN_TIMEOUT`] by default).
    pub fn set_sign_timeout(&mut self, timeout: Duration) {
        self.sign_timeout = timeout;
    }

    /// Has the agent sign `data` with the key whose public key blob is `key_blob` (as
    /// [`Agent::identities`] listed it), waiting up to [`SIGN_TIMEOUT`] for a person to confirm.
    /// Returns the agent's SSH signature blob as it is; the caller parses and checks it
    /// ([`opk_core::external`] does for `--agent-key`).
    ///
    /// # Errors
    /// [`AgentError::Refused`] if the agent declines (no such key, a confirmation denied, a key
    /// whose constraints forbid this data), [`AgentError::SignTimeout`], and the other errors of
    /// a request.
    pub fn sign(
        &mut self,
        key_blob: &[u8],
        data: &[u8],
        flags: u32,
    ) -> Result<Vec<u8>, AgentError> {
        self.stream
            .set_read_timeout(Some(self.sign_timeout))
            .map_err(AgentError::Io)?;
        let reply = self.call(&Request::Sign {
            key_blob,
            data,
            flags,
        });
        // Back to the short bound for whatever this connection asks next.
        let restored = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        let reply = match reply {
            Err(AgentError::Timeout) => {
                return Err(AgentError::SignTimeout(self.sign_timeout.as_secs()));
            }
            other => other?,
        };
        restored.map_err(AgentError::Io)?;
        match reply {
            Reply::Signature(signature) => Ok(signature),
            Reply::Failure => Err(AgentError::Refused("sign")),
            other => Err(unexpected(&other, "a signature")),
        }
    }

    /// Removes the identity with this key blob.
    ///
    /// # Errors
    /// [`AgentError::Refused`] if the agent declines (it does not hold the identity), and the
    /// other errors of a request.
    pub fn remove(&mut self, key_blob: &[u8]) -> Result<(), AgentError> {
        match self.call(&Request::RemoveIdentity(key_blob))? {
            Reply::Success => Ok(()),
            Reply::Failure => Err(AgentError::Refused("remove the identity")),
            other => Err(unexpected(&other, "removing an identity")),
        }
    }

    fn call(&mut self, request: &Request<'_>) -> Result<Reply, AgentError> {
        let frame = request.to_frame()?;
        self.stream.write_all(&frame).map_err(AgentError::from_io)?;
        drop(frame);
        let body = read_frame(&mut self.stream)?;
        Reply::from_body(&body)
    }
}

fn unexpected(reply: &Reply, request: &'static str) -> AgentError {
    let got = match reply {
        Reply::Success => number::SUCCESS,
        Reply::Failure => number::FAILURE,
        Reply::Identities(_) => number::IDENTITIES_ANSWER,
        Reply::Signature(_) => number::SIGN_RESPONSE,
        Reply::Other(got) => *got,
    };
    AgentError::UnexpectedReply { got, request }
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
    use std::io::Cursor;
    use std::os::unix::net::UnixListener;

    fn certificate_for(key: &SigningKey) -> OpksshCertificate {
        build_certificate(CertificateRequest {
            key,
            key_id: "alice@example.com",
            principals: Principals::Default,
            pk_token: "header.payload:signature",
            access_token: None,
        })
        .unwrap()
    }

    /// Reads the SSH wire types of an add-identity message, independently of the encoder.
    struct Fields<'a>(&'a [u8]);

    impl<'a> Fields<'a> {
        fn byte(&mut self) -> u8 {
            let (first, rest) = self.0.split_first().unwrap();
            self.0 = rest;
            *first
        }

        fn uint32(&mut self) -> u32 {
            let (head, rest) = self.0.split_at(4);
            self.0 = rest;
            u32::from_be_bytes(head.try_into().unwrap())
        }

        fn string(&mut self) -> &'a [u8] {
            let len = self.uint32() as usize;
            let (head, rest) = self.0.split_at(len);
            self.0 = rest;
            head
        }
    }

    fn body(frame: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4, "length prefix");
        &frame[4..]
    }

    #[test]
    fn request_identities_and_remove_frames() {
        assert_eq!(
            Request::RequestIdentities.to_frame().unwrap().as_slice(),
            [0, 0, 0, 1, 11]
        );
        let frame = Request::RemoveIdentity(b"blob").to_frame().unwrap();
        assert_eq!(
            frame.as_slice(),
            [0, 0, 0, 9, 18, 0, 0, 0, 4, b'b', b'l', b'o', b'b']
        );
    }

    #[test]
    fn ecdsa_certificate_identity_is_the_certificate_then_the_scalar() {
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let certificate = certificate_for(&key);
        let frame = Request::AddCertificate(CertificateIdentity {
            key: &key,
            certificate: &certificate,
            comment: "openpubkey https://op.example alice@example.com",
            lifetime: Some(3599),
        })
        .to_frame()
        .unwrap();
        let mut fields = Fields(body(&frame));
        assert_eq!(fields.byte(), 25);
        assert_eq!(fields.string(), b"ecdsa-sha2-nistp256-cert-v01@openssh.com");
        assert_eq!(fields.string(), certificate.as_bytes());
        let mpint = fields.string();
        // Positive and minimal: no leading zero unless the top bit needs one.
        assert!(mpint.first() != Some(&0) || mpint.get(1).is_some_and(|b| b & 0x80 != 0));
        let SigningKey::EcdsaP256(signing) = &key else {
            unreachable!()
        };
        let scalar: [u8; 32] = signing.to_bytes().into();
        let digits = mpint.strip_prefix(&[0]).unwrap_or(mpint);
        let mut padded = [0_u8; 32];
        padded[32 - digits.len()..].copy_from_slice(digits);
        assert_eq!(padded, scalar);
        assert_eq!(
            fields.string(),
            b"openpubkey https://op.example alice@example.com"
        );
        assert_eq!(fields.byte(), 1, "SSH_AGENT_CONSTRAIN_LIFETIME");
        assert_eq!(fields.uint32(), 3599);
        assert!(fields.0.is_empty());
    }

    #[test]
    fn ed25519_certificate_identity_repeats_the_public_key_before_the_pair() {
        let key = generate_user_key(UserKeyType::Ed25519).unwrap();
        let certificate = certificate_for(&key);
        let frame = Request::AddCertificate(CertificateIdentity {
            key: &key,
            certificate: &certificate,
            comment: "c",
            lifetime: None,
        })
        .to_frame()
        .unwrap();
        let mut fields = Fields(body(&frame));
        // No constraint: the plain add, which every agent takes.
        assert_eq!(fields.byte(), 17, "SSH_AGENTC_ADD_IDENTITY");
        assert_eq!(fields.string(), b"ssh-ed25519-cert-v01@openssh.com");
        assert_eq!(fields.string(), certificate.as_bytes());
        let SigningKey::Ed25519(signing) = &key else {
            unreachable!()
        };
        assert_eq!(fields.string(), signing.verifying_key().as_bytes());
        assert_eq!(fields.string(), signing.to_keypair_bytes());
        assert_eq!(fields.string(), b"c");
        // No lifetime: no constraint follows.
        assert!(fields.0.is_empty());
    }

    #[test]
    fn the_add_buffer_never_grows() {
        // Growth would copy the private key into a buffer that is freed without wiping.
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            let certificate = certificate_for(&key);
            let comment = "x".repeat(300);
            let request = Request::AddCertificate(CertificateIdentity {
                key: &key,
                certificate: &certificate,
                comment: &comment,
                lifetime: Some(u32::MAX),
            });
            let frame = request.to_frame().unwrap();
            let expected = [5, 4, 0, 4, 0, 104, 4, 300, 5].iter().sum::<usize>()
                + certificate.cert_type_name().len()
                + certificate.as_bytes().len();
            assert_eq!(frame.capacity(), expected, "{kind:?}");
            assert!(frame.len() <= frame.capacity());
        }
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_not_sent() {
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let other = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let certificate = certificate_for(&key);
        let error = Request::AddCertificate(CertificateIdentity {
            key: &other,
            certificate: &certificate,
            comment: "",
            lifetime: None,
        })
        .to_frame()
        .unwrap_err();
        assert!(
            matches!(error, AgentError::Unsendable(reason) if reason.contains("not the certificate's key")),
            "{error}"
        );
    }

    #[test]
    fn mpint_is_minimal_and_positive() {
        let encode = |bytes: &[u8]| {
            let mut out = Vec::new();
            encode_positive_mpint(bytes, &mut out).unwrap();
            out
        };
        assert_eq!(encode(&[0, 0]), [0, 0, 0, 0]);
        assert_eq!(encode(&[0, 0x7f, 1]), [0, 0, 0, 2, 0x7f, 1]);
        assert_eq!(encode(&[0, 0, 0x80]), [0, 0, 0, 2, 0, 0x80]);
        assert_eq!(encode(&[0xff; 2]), [0, 0, 0, 3, 0, 0xff, 0xff]);
    }

    #[test]
    fn replies_round_trip() {
        let identities = Reply::Identities(vec![
            Identity {
                key_blob: b"first blob".to_vec(),
                comment: b"openpubkey https://op.example alice".to_vec(),
            },
            Identity {
                key_blob: vec![0, 1, 2, 255],
                comment: vec![0xff, 0xfe, b'\n'],
            },
        ]);
        for reply in [
            Reply::Success,
            Reply::Failure,
            Reply::Identities(Vec::new()),
            identities,
        ] {
            let frame = reply.to_frame().unwrap();
            let body = read_frame(&mut Cursor::new(&frame)).unwrap();
            assert_eq!(Reply::from_body(&body).unwrap(), reply);
        }
        assert_eq!(Reply::from_body(&[99, 1, 2]).unwrap(), Reply::Other(99));
    }

    #[test]
    fn comments_print_without_control_characters() {
        let identity = Identity {
            key_blob: vec![1],
            comment: b"evil\n\x1b[2Jline\xff".to_vec(),
        };
        let printed = identity.printable_comment();
        assert!(!printed.chars().any(char::is_control), "{printed:?}");
    }

    fn malformed(body: &[u8]) -> &'static str {
        match Reply::from_body(body) {
            Err(AgentError::Malformed(reason)) => reason,
            other => panic!("{body:?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert_eq!(malformed(&[]), "an empty message");
        assert!(malformed(&[6, 0]).contains("after the end"));
        assert!(malformed(&[5, 0]).contains("after the end"));
        // Identities answer: missing count, truncated strings, trailing bytes, empty blob.
        assert!(malformed(&[12, 0, 0]).contains("truncated"));
        assert!(malformed(&[12, 0, 0, 0, 1, 0, 0, 0, 9, 1, 0, 0, 0, 0]).contains("truncated"));
        assert!(malformed(&[12, 0, 0, 0, 1, 0, 0, 0, 1, 7, 0, 0, 0]).contains("truncated"));
        assert!(malformed(&[12, 0, 0, 0, 0, 1]).contains("after the end"));
        assert!(malformed(&[12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).contains("empty key blob"));
    }

    #[test]
    fn a_huge_identity_count_is_refused_before_reserving_for_it() {
        let mut body = vec![12, 0xff, 0xff, 0xff, 0xff];
        body.extend_from_slice(&[0; 64]);
        assert!(malformed(&body).contains("identity count"));
        // Exactly as many as fit is fine.
        let mut body = vec![12, 0, 0, 0, 2];
        body.extend_from_slice(&[0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]);
        assert!(matches!(Reply::from_body(&body), Ok(Reply::Identities(list)) if list.len() == 2));
    }

    #[test]
    fn frames_are_bounded() {
        // An oversized prefix is refused without reading the body.
        let mut reader = Cursor::new(vec![0, 0x04, 0, 1, 12, 0, 0, 0]);
        match read_frame(&mut reader) {
            Err(AgentError::TooLarge { len, max }) => {
                assert_eq!((len, max), (256 * 1024 + 1, MAX_MESSAGE_LEN));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.position(), 4);
        // The largest allowed body is read.
        let mut frame = u32::try_from(MAX_MESSAGE_LEN)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        frame.resize(4 + MAX_MESSAGE_LEN, 0);
        assert_eq!(
            read_frame(&mut Cursor::new(frame)).unwrap().len(),
            MAX_MESSAGE_LEN
        );
        assert!(matches!(
            read_frame(&mut Cursor::new([0, 0, 0, 0])),
            Err(AgentError::Malformed("a zero-length message"))
        ));
        for short in [&[][..], &[0, 0], &[0, 0, 0, 5, 12, 0]] {
            assert!(
                matches!(read_frame(&mut Cursor::new(short)), Err(AgentError::Malformed(reason)) if reason.contains("closed")),
                "{short:?}"
            );
        }
        // Nothing over the limit is sent either.
        let blob = vec![0; MAX_MESSAGE_LEN];
        assert!(matches!(
            Request::RemoveIdentity(&blob).to_frame(),
            Err(AgentError::Unsendable(_))
        ));
    }

    /// A peer on a real socket that reads one request and answers with `answer` (raw bytes,
    /// possibly broken), or never answers if `None`.
    fn scripted_peer(answer: Option<Vec<u8>>) -> (tempfile::TempDir, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("sock")).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _request = read_frame(&mut stream).unwrap();
            match answer {
                Some(bytes) => {
                    let _ = stream.write_all(&bytes);
                }
                // Silent until the client hangs up.
                None => {
                    let _ = stream.read(&mut [0; 1]);
                }
            }
        });
        (dir, handle)
    }

    fn against_peer(
        answer: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Vec<Identity>, AgentError> {
        let (dir, peer) = scripted_peer(answer);
        let mut agent = Agent::connect(&dir.path().join("sock")).unwrap();
        agent.stream.set_read_timeout(Some(timeout)).unwrap();
        let result = agent.identities();
        drop(agent);
        peer.join().unwrap();
        result
    }

    #[test]
    fn the_client_turns_bad_answers_into_errors() {
        let long = Duration::from_secs(10);
        assert!(matches!(
            against_peer(Some(Reply::Failure.to_frame().unwrap()), long),
            Err(AgentError::Refused(_))
        ));
        assert!(matches!(
            against_peer(Some(Reply::Success.to_frame().unwrap()), long),
            Err(AgentError::UnexpectedReply { got: 6, .. })
        ));
        assert!(matches!(
            against_peer(Some(vec![0xff, 0xff, 0xff, 0xff, 12]), long),
            Err(AgentError::TooLarge { .. })
        ));
        assert!(matches!(
            against_peer(Some(vec![0, 0, 0, 9, 12, 0, 0]), long),
            Err(AgentError::Malformed(_))
        ));
        assert!(matches!(
            against_peer(None, Duration::from_millis(200)),
            Err(AgentError::Timeout)
        ));
        let listed = Reply::Identities(vec![Identity {
            key_blob: vec![1, 2, 3],
            comment: b"c".to_vec(),
        }]);
        assert_eq!(
            against_peer(Some(listed.to_frame().unwrap()), long).unwrap(),
            vec![Identity {
                key_blob: vec![1, 2, 3],
                comment: b"c".to_vec()
            }]
        );
    }

    /// Adds a certificate with a 600 s lifetime under `rules` through a peer that records the
    /// request and says yes: what was sent, and what `add_certificate` returned.
    fn add_under(rules: System) -> (Vec<u8>, Option<u32>, OpksshCertificate) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("sock")).unwrap();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let request = read_frame(&mut stream).unwrap();
            stream
                .write_all(&Reply::Success.to_frame().unwrap())
                .unwrap();
            request
        });
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let certificate = certificate_for(&key);
        let mut agent = Agent::connect(&dir.path().join("sock"))
            .unwrap()
            .with_rules(rules);
        assert_eq!(agent.rules(), rules);
        let sent = agent
            .add_certificate(&CertificateIdentity {
                key: &key,
                certificate: &certificate,
                comment: "c",
                lifetime: Some(600),
            })
            .unwrap();
        (peer.join().unwrap(), sent, certificate)
    }

    #[test]
    fn an_agent_follows_this_systems_rules_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let _listener = UnixListener::bind(dir.path().join("sock")).unwrap();
        let agent = Agent::connect(&dir.path().join("sock")).unwrap();
        assert_eq!(agent.rules(), System::CURRENT);
    }

    #[test]
    fn windows_rules_add_without_a_lifetime_and_say_so() {
        let (request, sent, certificate) = add_under(System::Windows);
        assert_eq!(sent, None);
        let mut fields = Fields(&request);
        assert_eq!(fields.byte(), 17, "SSH_AGENTC_ADD_IDENTITY");
        assert_eq!(fields.string(), b"ecdsa-sha2-nistp256-cert-v01@openssh.com");
        assert_eq!(fields.string(), certificate.as_bytes());
        let _scalar = fields.string();
        assert_eq!(fields.string(), b"c");
        assert!(fields.0.is_empty(), "a constraint follows: {:?}", fields.0);

        let (request, sent, _) = add_under(System::Unix);
        assert_eq!(sent, Some(600));
        assert_eq!(request.first(), Some(&25), "SSH_AGENTC_ADD_ID_CONSTRAINED");
        assert_eq!(
            request.get(request.len() - 5..),
            Some(&[1, 0, 0, 2, 0x58][..]),
            "SSH_AGENT_CONSTRAIN_LIFETIME 600"
        );
    }

    #[test]
    fn sign_request_frame() {
        let frame = Request::Sign {
            key_blob: b"key",
            data: b"header.payload",
            flags: 0,
        }
        .to_frame()
        .unwrap();
        let mut fields = Fields(body(&frame));
        assert_eq!(fields.byte(), 13, "SSH_AGENTC_SIGN_REQUEST");
        assert_eq!(fields.string(), b"key");
        assert_eq!(fields.string(), b"header.payload");
        assert_eq!(fields.uint32(), 0);
        assert!(fields.0.is_empty());
        // Sized exactly: no reallocation while building.
        assert_eq!(frame.capacity(), 17 + 3 + 14);
    }

    #[test]
    fn sign_responses_round_trip_and_must_be_whole() {
        let reply = Reply::Signature(b"signature blob".to_vec());
        let frame = reply.to_frame().unwrap();
        assert_eq!(&frame[4..9], &[14, 0, 0, 0, 14]);
        assert_eq!(
            Reply::from_body(&read_frame(&mut Cursor::new(&frame)).unwrap()).unwrap(),
            reply
        );
        assert!(malformed(&[14, 0, 0, 0, 5, 1]).contains("truncated sign response"));
        assert!(malformed(&[14, 0, 0, 0, 1, 1, 9]).contains("after the end"));
    }

    fn sign_against_peer(
        answer: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Vec<u8>, AgentError> {
        let (dir, peer) = scripted_peer(answer);
        let mut agent = Agent::connect(&dir.path().join("sock")).unwrap();
        agent.set_sign_timeout(timeout);
        let result = agent.sign(b"key", b"data", 0);
        drop(agent);
        peer.join().unwrap();
        result
    }

    #[test]
    fn the_sign_client_turns_bad_answers_into_errors() {
        let long = Duration::from_secs(10);
        assert!(matches!(
            sign_against_peer(Some(Reply::Failure.to_frame().unwrap()), long),
            Err(AgentError::Refused("sign"))
        ));
        assert!(matches!(
            sign_against_peer(Some(Reply::Success.to_frame().unwrap()), long),
            Err(AgentError::UnexpectedReply { got: 6, .. })
        ));
        let error = sign_against_peer(None, Duration::from_millis(1500)).unwrap_err();
        assert!(matches!(error, AgentError::SignTimeout(1)), "{error}");
        assert!(error.to_string().contains("within 1 s"), "{error}");
        assert_eq!(
            sign_against_peer(Some(Reply::Signature(vec![7; 9]).to_frame().unwrap()), long)
                .unwrap(),
            vec![7; 9]
        );
    }

    #[test]
    fn no_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let error = Agent::connect(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, AgentError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("absent"), "{error}");
    }
}
