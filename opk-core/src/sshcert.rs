//! The opkssh SSH certificate and the user's OpenSSH private key file (wire-format.md §6).
//!
//! `opkssh login` makes a fresh user key (P-256 or Ed25519), puts the PK token in an
//! OpenSSH user certificate that the same key signs, and writes both files; `opkssh verify`
//! reads the certificate back from sshd's `%t %k`. Go: opkssh `sshcert/sshcert.go`,
//! `commands/login.go`, `commands/verify.go`; the encodings are golang.org/x/crypto/ssh's.
//!
//! - [`build_certificate`] makes the certificate exactly as §6.1/§6.2 describe, with
//!   ssh-key's builder; [`OpksshCertificate`] parses one (§7 item 21) and writes the three
//!   line shapes of §6.3.
//! - [`UserKeyFile`] reads and writes the unencrypted `openssh-key-v1` private key byte for
//!   byte as Go does (§6.3). It is our own codec, not ssh-key's: ssh-key writes the P-256
//!   scalar as a fixed 32-byte mpint and refuses shorter ones, so about one Go- or
//!   OpenSSH-made P-256 key in 256 (a scalar with a leading zero byte) would not round-trip.
//!
//! # Differences from Go
//! Stricter than golang.org/x/crypto/ssh, never in a way that loses a certificate Go or
//! OpenSSH writes (the vector tests parse every Go certificate and key):
//! - certificate lines over [`MAX_CERT_LINE_LEN`] bytes are refused before decoding;
//! - `%k` must be canonical padded base64 (Go ignores non-zero trailing bits);
//! - the blob must be the canonical encoding of what it decodes to, so an empty extension
//!   value written as a wrapped empty string, which Go accepts, is refused;
//! - key ID, principals and option names and values must be UTF-8 (ssh-key's rule);
//! - the subject key must be a valid P-256 point or Ed25519 key at parse time;
//! - fields are separated by one space only (Go also splits on tabs).
//!
//! <div class="warning">
//!
//! A parsed certificate is not a trusted one. opkssh trusts it only after the PK token inside
//! verifies and its `upk` equals the certificate's subject key ([`OpksshCertificate::matches_upk`],
//! §6.4); sshd then checks the self-signature, validity and principals.
//!
//! </div>

mod builder;
mod certificate;
mod key_file;

pub use builder::{CertificateRequest, Principals, build_certificate, ssh_signature};
pub use certificate::{CertComment, OpksshCertificate};
pub use key_file::{UserKeyFile, private_key_from_openssh, private_key_to_openssh};

use crate::b64;
use crate::jwk::PublicKey;
use crate::jws::SigningKey;

/// Re-exported because [`OpksshCertificate::inner`] and [`CertError`] expose its types.
pub use ssh_key;

/// The extension that carries the compact PK token (§6.1).
pub const EXTENSION_PK_TOKEN: &str = "openpubkey-pkt";
/// The extension that carries the raw access token with `--send-access-token` (§6.1).
pub const EXTENSION_ACCESS_TOKEN: &str = "openpubkey-act";
/// The flag extensions every opkssh certificate has, with empty values (§6.1).
pub const PERMIT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];
/// The principal Go puts in a certificate when `--principals` is not given (§6.1).
pub const DEFAULT_PRINCIPAL: &str = "opkssh-wildcard";
/// The comment inside private key files that opkssh writes (§6.3).
pub const PRIVATE_KEY_COMMENT: &str = "openpubkey cert";
/// Longest certificate line (or `%t` plus `%k`) accepted, checked before any decoding. This
/// is OpenSSH's packet limit: a larger certificate could never reach sshd (§7 item 20).
pub const MAX_CERT_LINE_LEN: usize = 256 * 1024;

/// Why a certificate or a user key file could not be parsed, built or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate line is longer than [`MAX_CERT_LINE_LEN`].
    #[error("certificate line is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The line is not `<type> <base64>[ <comment>][\n]`.
    #[error("malformed certificate line: {0}")]
    MalformedLine(&'static str),
    /// The base64 field is not padded, canonical standard base64.
    #[error("certificate is not base64: {0}")]
    NotBase64(b64::B64Error),
    /// The type word (an excerpt) is not one of the two opkssh certificate types.
    #[error("unsupported certificate type `{0}`")]
    UnsupportedCertType(String),
    /// The type word and the type name inside the blob differ.
    #[error("certificate type `{word}` does not match the type `{blob}` inside it")]
    TypeMismatch {
        /// The type word of the line (sshd's `%t`).
        word: String,
        /// The type name the blob starts with (an excerpt).
        blob: String,
    },
    /// ssh-key could not decode the blob (truncated, trailing bytes, unsorted or duplicated
    /// options, non-UTF-8 text, unknown certificate type, ...).
    #[error("certificate does not decode: {0}")]
    Decode(ssh_key::Error),
    /// The blob decodes but is not the canonical encoding of what it holds, for example bytes
    /// left over inside an extension value or the signature. Go refuses those too.
    #[error("certificate encoding is not canonical")]
    NonCanonical,
    /// The subject key is not a valid uncompressed P-256 point or Ed25519 key.
    #[error("certificate subject key is not a valid {0} key")]
    InvalidSubjectKey(&'static str),
    /// The certificate has no `openpubkey-pkt` extension.
    #[error("certificate has no openpubkey-pkt extension")]
    MissingPkToken,
    /// The signature key is not the subject key, which every opkssh certificate has.
    #[error("certificate is not self-signed: its signature key differs from its subject key")]
    NotSelfSigned,
    /// The certificate signature does not verify under its signature key.
    #[error("certificate signature does not verify")]
    BadSignature,
    /// The key is of a type opkssh does not use for user keys (RSA).
    #[error("{0} keys cannot be opkssh user keys")]
    UnsupportedKey(&'static str),
    /// ssh-key's builder refused the certificate.
    #[error("certificate could not be built: {0}")]
    Build(ssh_key::Error),
    /// A certificate we built did not parse back or verify. This is a bug, reported as an
    /// error rather than a panic.
    #[error("built certificate failed its self-check: {0}")]
    SelfCheck(Box<CertError>),
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// The key is held elsewhere (an ssh-agent) and could not sign.
    #[error("signing the certificate: {0}")]
    Sign(crate::external::SignError),
    /// The key is held elsewhere (an ssh-agent, named here), so there is no private key to
    /// write to a file.
    #[error("the key is held by {0}, so it has no private key file")]
    HeldElsewhere(String),
    /// The text is not one `OPENSSH PRIVATE KEY` PEM block.
    #[error("not an OpenSSH private key: {0}")]
    NotOpensshKey(&'static str),
    /// The private key file is encrypted; opkssh writes and reads unencrypted keys only.
    #[error("private key is encrypted with `{cipher}`; only unencrypted keys are supported")]
    EncryptedKey {
        /// The cipher name in the file (an excerpt).
        cipher: String,
    },
    /// The `openssh-key-v1` structure is broken.
    #[error("malformed OpenSSH private key: {0}")]
    MalformedKey(&'static str),
    /// The private key file holds a key type (an excerpt) other than P-256 or Ed25519.
    #[error("unsupported private key type `{0}`")]
    UnsupportedKeyType(String),
}

/// The user key types of `opkssh login --key-type` (§6.1). No RSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserKeyType {
    /// ECDSA over NIST P-256, `--key-type ecdsa` (Go's default).
    #[default]
    Ecdsa,
    /// Ed25519, `--key-type ed25519`.
    Ed25519,
}

impl UserKeyType {
    /// The `--key-type` flag value: `ecdsa` or `ed25519`.
    pub const fn flag_name(self) -> &'static str {
        match self {
            Self::Ecdsa => "ecdsa",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The SSH public key type name: `ecdsa-sha2-nistp256` or `ssh-ed25519`.
    pub const fn key_type_name(self) -> &'static str {
        match self {
            Self::Ecdsa => "ecdsa-sha2-nistp256",
            Self::Ed25519 => "ssh-ed25519",
        }
    }

    /// The certificate type name: `ecdsa-sha2-nistp256-cert-v01@openssh.com` or
    /// `ssh-ed25519-cert-v01@openssh.com`.
    pub const fn cert_type_name(self) -> &'static str {
        match self {
            Self::Ecdsa => "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            Self::Ed25519 => "ssh-ed25519-cert-v01@openssh.com",
        }
    }

    /// The key type for a certificate type name, if it is one of the two opkssh uses.
    pub fn from_cert_type_name(name: &str) -> Option<Self> {
        [Self::Ecdsa, Self::Ed25519]
            .into_iter()
            .find(|kind| kind.cert_type_name() == name)
    }

    /// The key type of a signing key, in memory or held by an agent, or an error for RSA.
    ///
    /// # Errors
    /// [`CertError::UnsupportedKey`] for an RSA key.
    pub fn of(key: &SigningKey) -> Result<Self, CertError> {
        Self::of_public(&key.public_key())
    }

    /// The key type of a public key, or an error for RSA.
    ///
    /// # Errors
    /// [`CertError::UnsupportedKey`] for an RSA key.
    pub fn of_public(key: &PublicKey) -> Result<Self, CertError> {
        match key {
            PublicKey::EcdsaP256(_) => Ok(Self::Ecdsa),
            PublicKey::Ed25519(_) => Ok(Self::Ed25519),
            PublicKey::Rsa(_) => Err(CertError::UnsupportedKey("RSA")),
        }
    }
}

/// Makes a fresh user key from the operating system's random number generator.
///
/// # Errors
/// [`CertError::Rng`] if the OS RNG fails (instead of the panic of `Generate::generate`).
pub fn generate_user_key(kind: UserKeyType) -> Result<SigningKey, CertError> {
    match kind {
        UserKeyType::Ecdsa => {
            use p256::elliptic_curve::Generate as _;
            p256::ecdsa::SigningKey::try_generate()
                .map(SigningKey::EcdsaP256)
                .map_err(|_| CertError::Rng)
        }
        UserKeyType::Ed25519 => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut_slice()).map_err(|_| CertError::Rng)?;
            Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &seed,
            )))
        }
    }
}

/// A short, printable excerpt of outside text for an error message: at most 64 bytes, control
/// characters escaped, so a hostile type name can't flood or forge log lines.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const LIMIT: usize = 64;
    let cut = bytes.get(..LIMIT).unwrap_or(bytes);
    let mut text = String::from_utf8_lossy(cut).escape_debug().to_string();
    if cut.len() < bytes.len() {
        text.push('…');
    }
    text
}

/// Four random bytes, for check integers.
fn random_u32() -> Result<u32, CertError> {
    getrandom::u32().map_err(|_| CertError::Rng)
}

/// The SSH public key blob of a user key (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4):
/// `string type ‖ string "nistp256" ‖ string Q` or `string type ‖ string pk`.
fn public_key_blob(key: &SigningKey) -> Result<Vec<u8>, CertError> {
    let mut out = Vec::new();
    match key.public_key() {
        PublicKey::EcdsaP256(key) => {
            let point = key.to_sec1_point(false);
            put_string(&mut out, UserKeyType::Ecdsa.key_type_name().as_bytes());
            put_string(&mut out, b"nistp256");
            put_string(&mut out, point.as_bytes());
        }
        PublicKey::Ed25519(key) => {
            put_string(&mut out, UserKeyType::Ed25519.key_type_name().as_bytes());
            put_string(&mut out, key.as_bytes());
        }
        PublicKey::Rsa(_) => return Err(CertError::UnsupportedKey("RSA")),
    }
    Ok(out)
}

/// Appends an SSH `string` (RFC 4251 §5): uint32 length, then the bytes. Callers pass key
/// material, type names and comments from inputs capped far below 4 GiB; should a longer slice
/// ever arrive, the length saturates and the result fails to parse, rather than panicking.
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A bounds-checked reader of SSH wire data (RFC 4251 §5). Every read either returns the
/// requested bytes or `None`; nothing indexes past the end.
pub(crate) struct WireReader<'a> {
    rest: &'a [u8],
}

impl<'a> WireReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names() {
        assert_eq!(
            UserKeyType::from_cert_type_name("ecdsa-sha2-nistp256-cert-v01@openssh.com"),
            Some(UserKeyType::Ecdsa)
        );
        assert_eq!(
            UserKeyType::from_cert_type_name("ssh-ed25519-cert-v01@openssh.com"),
            Some(UserKeyType::Ed25519)
        );
        for name in [
            "ecdsa-sha2-nistp256",
            "ssh-ed25519",
            "ssh-rsa-cert-v01@openssh.com",
            "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            "sk-ssh-ed25519-cert-v01@openssh.com",
            "SSH-ED25519-CERT-V01@OPENSSH.COM",
            "",
        ] {
            assert_eq!(UserKeyType::from_cert_type_name(name), None, "{name}");
        }
        assert_eq!(UserKeyType::default().flag_name(), "ecdsa");
    }

    #[test]
    fn generated_keys_have_the_requested_type() {
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            assert_eq!(UserKeyType::of(&key), Ok(kind));
        }
        let a = generate_user_key(UserKeyType::Ed25519).unwrap();
        let b = generate_user_key(UserKeyType::Ed25519).unwrap();
        assert_ne!(a.public_key(), b.public_key());
    }

    #[test]
    fn wire_reader_never_reads_past_the_end() {
        let mut reader = WireReader::new(&[0, 0, 0, 5, b'a', b'b']);
        assert_eq!(reader.string(), None);
        let mut reader = WireReader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(reader.string(), None);
        let mut reader = WireReader::new(&[0, 0]);
        assert_eq!(reader.u32(), None);
        let mut reader = WireReader::new(&[0, 0, 0, 1, b'x', 7]);
        assert_eq!(reader.take(9), None);
        assert_eq!(reader.string(), Some(&b"x"[..]));
        assert_eq!(reader.rest(), &[7]);
        assert!(!reader.is_empty());
    }

    #[test]
    fn error_excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"ssh-rsa"), "ssh-rsa");
        assert_eq!(excerpt(b"a\nb\x1b"), "a\\nb\\u{1b}");
        let long = excerpt(&[b'x'; 300]);
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }
}
