//! The user's private key file: unencrypted OpenSSH `openssh-key-v1` in a PEM block
//! (wire-format.md §6.3; OpenSSH PROTOCOL.key; Go: x/crypto/ssh `MarshalPrivateKey` and
//! `ParseRawPrivateKey`).
//!
//! Written exactly as Go writes it, so a key Go made re-encodes to the same text:
//!
//! ```text
//! "openssh-key-v1\0" ‖ string "none" ‖ string "none" ‖ string "" ‖ uint32 1
//! ‖ string public_key_blob
//! ‖ string( uint32 check ‖ uint32 check ‖ string key_type ‖ key fields ‖ string comment
//!           ‖ padding 1, 2, 3, … to a multiple of 8 )
//! key fields: ECDSA   string "nistp256" ‖ string Q ‖ mpint d     (minimal, as Go's big.Int)
//!             Ed25519 string pk ‖ string (seed ‖ pk)
//! ```
//!
//! then standard base64 in 64-column lines between `-----BEGIN/END OPENSSH PRIVATE KEY-----`,
//! with a final newline (Go's `pem.Encode`; OpenSSH writes 70 columns, and both are read).

use super::{
    CertError, PRIVATE_KEY_COMMENT, WireReader, excerpt, public_key_blob, put_string, random_u32,
};
use crate::b64;
use crate::jws::SigningKey;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"openssh-key-v1\0";
const PEM_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END: &str = "-----END OPENSSH PRIVATE KEY-----";
/// Go's `pem.Encode` line width.
const PEM_COLUMNS: usize = 64;
/// Unencrypted keys are padded to this block size (PROTOCOL.key; Go: `generateOpenSSHPadding`).
const BLOCK_SIZE: usize = 8;
/// A P-256 or Ed25519 key file is under 1 KiB; refuse anything absurd before decoding.
const MAX_KEY_FILE_LEN: usize = 64 * 1024;

/// A user key with what its file says besides the key: the check integer and the comment. Kept
/// so that a parsed file re-encodes byte for byte.
#[derive(Clone)]
pub struct UserKeyFile {
    key: SigningKey,
    check: u32,
    comment: Vec<u8>,
}

impl std::fmt::Debug for UserKeyFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SigningKey's Debug prints only the algorithm.
        formatter
            .debug_struct("UserKeyFile")
            .field("key", &self.key)
            .field("comment", &String::from_utf8_lossy(&self.comment))
            .finish_non_exhaustive()
    }
}

impl UserKeyFile {
    /// A key file as `opkssh login` writes it: a random check integer (Go reads it from
    /// `crypto/rand`) and the comment `openpubkey cert`.
    ///
    /// # Errors
    /// [`CertError::UnsupportedKey`] for an RSA key, [`CertError::HeldElsewhere`] for a key
    /// an ssh-agent holds, [`CertError::Rng`].
    pub fn new(key: SigningKey) -> Result<Self, CertError> {
        super::UserKeyType::of(&key)?;
        if let Some(held) = key.external() {
            return Err(CertError::HeldElsewhere(held.describe()));
        }
        Ok(Self {
            key,
            check: random_u32()?,
            comment: PRIVATE_KEY_COMMENT.as_bytes().to_vec(),
        })
    }

    /// Reads an unencrypted OpenSSH private key holding a P-256 or Ed25519 key. Checks what
    /// OpenSSH checks: equal check integers, padding 1, 2, 3, …, a private section padded to 8
    /// bytes, and a public key that matches the private one.
    ///
    /// # Errors
    /// [`CertError::NotOpensshKey`] for text that is not one `OPENSSH PRIVATE KEY` PEM block,
    /// [`CertError::EncryptedKey`], [`CertError::UnsupportedKeyType`] (RSA, DSA, other curves,
    /// security keys) and [`CertError::MalformedKey`].
    pub fn from_openssh(text: &str) -> Result<Self, CertError> {
        let binary = pem_decode(text)?;
        from_binary(&binary)
    }

    /// Writes the key file as Go does, byte for byte (see the module docs).
    ///
    /// # Errors
    /// [`CertError::UnsupportedKey`] only if the key is RSA, which the constructors refuse.
    pub fn to_openssh(&self) -> Result<Zeroizing<String>, CertError> {
        let binary = self.to_binary()?;
        Ok(pem_encode(&binary))
    }

    /// The key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The key, dropping the file's check integer and comment.
    pub fn into_key(self) -> SigningKey {
        self.key
    }

    /// The comment stored in the file (`openpubkey cert` for opkssh's own files).
    pub fn comment(&self) -> &[u8] {
        &self.comment
    }

    fn to_binary(&self) -> Result<Zeroizing<Vec<u8>>, CertError> {
        let public = public_key_blob(&self.key)?;
        // Reserve the whole private section up front: a growing Vec would leave copies of
        // the secret behind in freed buffers that Zeroizing never sees.
        let mut private = Zeroizing::new(Vec::with_capacity(
            256usize.saturating_add(self.comment.len()),
        ));
        private.extend_from_slice(&self.check.to_be_bytes());
        private.extend_from_slice(&self.check.to_be_bytes());
        match &self.key {
            SigningKey::EcdsaP256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let scalar: Zeroizing<[u8; 32]> = Zeroizing::new(key.to_bytes().into());
                put_string(&mut private, b"ecdsa-sha2-nistp256");
                put_string(&mut private, b"nistp256");
                put_string(&mut private, point.as_bytes());
                put_mpint(&mut private, scalar.as_slice());
            }
            SigningKey::Ed25519(key) => {
                let pair = Zeroizing::new(key.to_keypair_bytes());
                put_string(&mut private, b"ssh-ed25519");
                put_string(&mut private, key.verifying_key().as_bytes());
                put_string(&mut private, pair.as_slice());
            }
            SigningKey::Rsa(_) => return Err(CertError::UnsupportedKey("RSA")),
            SigningKey::External(held) => return Err(CertError::HeldElsewhere(held.describe())),
        }
        put_string(&mut private, &self.comment);
        let mut pad = 1u8;
        while private.len() % BLOCK_SIZE != 0 {
            private.push(pad);
            pad = pad.wrapping_add(1);
        }

        let capacity = [MAGIC.len(), 8, 8, 4, 4, 4, public.len(), 4, private.len()]
            .iter()
            .fold(0usize, |sum, part| sum.saturating_add(*part));
        let mut out = Zeroizing::new(Vec::with_capacity(capacity));
        out.extend_from_slice(MAGIC);
        put_string(&mut out, b"none");
        put_string(&mut out, b"none");
        put_string(&mut out, b"");
        out.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut out, &public);
        put_string(&mut out, &private);
        Ok(out)
    }
}

/// Writes `key` as a new opkssh key file: unencrypted `openssh-key-v1`, random check
/// integers, comment `openpubkey cert`, Go's 64-column PEM (§6.3).
///
/// # Errors
/// [`CertError::UnsupportedKey`] for an RSA key, [`CertError::HeldElsewhere`] for a key an
/// ssh-agent holds, [`CertError::Rng`].
pub fn private_key_to_openssh(key: &SigningKey) -> Result<Zeroizing<String>, CertError> {
    UserKeyFile::new(key.clone())?.to_openssh()
}

/// Reads a P-256 or Ed25519 key from an unencrypted OpenSSH private key file.
///
/// # Errors
/// As [`UserKeyFile::from_openssh`].
pub fn private_key_from_openssh(text: &str) -> Result<SigningKey, CertError> {
    UserKeyFile::from_openssh(text).map(UserKeyFile::into_key)
}

/// Appends a positive SSH `mpint` (RFC 4251 §5) in Go's `big.Int` form: no leading zero
/// bytes, plus one 0x00 when the top bit is set.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let start = magnitude
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(magnitude.len());
    let digits = magnitude.get(start..).unwrap_or_default();
    let sign_byte = digits.first().is_some_and(|byte| byte & 0x80 != 0);
    let len = digits.len().saturating_add(usize::from(sign_byte));
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    if sign_byte {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

fn pem_encode(binary: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(b64::encode_std(binary));
    let capacity = [
        PEM_BEGIN.len(),
        PEM_END.len(),
        body.len(),
        body.len().div_ceil(PEM_COLUMNS),
        2,
    ]
    .iter()
    .fold(0usize, |sum, part| sum.saturating_add(*part));
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    out.push_str(PEM_BEGIN);
    out.push('\n');
    for (index, symbol) in body.chars().enumerate() {
        if index > 0 && index % PEM_COLUMNS == 0 {
            out.push('\n');
        }
        out.push(symbol);
    }
    out.push('\n');
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// Reads one `OPENSSH PRIVATE KEY` PEM block: surrounding blank space and CRLF line ends are
/// fine, any line width is fine, anything else around the block is not.
fn pem_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, CertError> {
    if text.len() > MAX_KEY_FILE_LEN {
        return Err(CertError::NotOpensshKey("larger than 64 KiB"));
    }
    let mut lines = text.trim().lines().map(str::trim);
    if lines.next() != Some(PEM_BEGIN) {
        return Err(CertError::NotOpensshKey(
            "does not start with -----BEGIN OPENSSH PRIVATE KEY-----",
        ));
    }
    let mut body = Zeroizing::new(String::with_capacity(text.len()));
    let mut ended = false;
    for line in lines {
        if ended {
            return Err(CertError::NotOpensshKey("text after the END line"));
        }
        if line == PEM_END {
            ended = true;
        } else {
            body.push_str(line);
        }
    }
    if !ended {
        return Err(CertError::NotOpensshKey(
            "no -----END OPENSSH PRIVATE KEY----- line",
        ));
    }
    b64::decode_std(&body)
        .map(Zeroizing::new)
        .map_err(|_| CertError::NotOpensshKey("body is not base64"))
}

fn truncated() -> CertError {
    CertError::MalformedKey("truncated")
}

fn from_binary(binary: &[u8]) -> Result<UserKeyFile, CertError> {
    let rest = binary
        .strip_prefix(MAGIC)
        .ok_or(CertError::MalformedKey("no openssh-key-v1 magic"))?;
    let mut outer = WireReader::new(rest);
    let cipher = outer.string().ok_or_else(truncated)?;
    let kdf = outer.string().ok_or_else(truncated)?;
    let kdf_options = outer.string().ok_or_else(truncated)?;
    if cipher != b"none" {
        return Err(CertError::EncryptedKey {
            cipher: excerpt(cipher),
        });
    }
    if kdf != b"none" || !kdf_options.is_empty() {
        return Err(CertError::MalformedKey("a KDF on an unencrypted key"));
    }
    if outer.u32().ok_or_else(truncated)? != 1 {
        return Err(CertError::MalformedKey(
            "the file must hold exactly one key",
        ));
    }
    let public = outer.string().ok_or_else(truncated)?;
    let private = outer.string().ok_or_else(truncated)?;
    if !outer.is_empty() {
        return Err(CertError::MalformedKey("bytes after the private section"));
    }
    if private.len() % BLOCK_SIZE != 0 {
        return Err(CertError::MalformedKey(
            "private section is not a multiple of 8 bytes",
        ));
    }

    let mut inner = WireReader::new(private);
    let check = inner.u32().ok_or_else(truncated)?;
    if inner.u32().ok_or_else(truncated)? != check {
        return Err(CertError::MalformedKey("check integers differ"));
    }
    let key_type = inner.string().ok_or_else(truncated)?;
    let key = match key_type {
        b"ecdsa-sha2-nistp256" => {
            if inner.string().ok_or_else(truncated)? != b"nistp256" {
                return Err(CertError::MalformedKey("ECDSA curve is not nistp256"));
            }
            let point = inner.string().ok_or_else(truncated)?;
            let scalar = inner.string().ok_or_else(truncated)?;
            let key = p256_from_mpint(scalar)?;
            if key.verifying_key().to_sec1_point(false).as_bytes() != point {
                return Err(CertError::MalformedKey(
                    "P-256 public point does not match the private scalar",
                ));
            }
            SigningKey::EcdsaP256(key)
        }
        b"ssh-ed25519" => {
            let public_key = inner.string().ok_or_else(truncated)?;
            let pair: &[u8; 64] = inner
                .string()
                .ok_or_else(truncated)?
                .try_into()
                .map_err(|_| CertError::MalformedKey("Ed25519 private key is not 64 bytes"))?;
            if pair.get(32..) != Some(public_key) {
                return Err(CertError::MalformedKey(
                    "Ed25519 public key differs from the one in the private key",
                ));
            }
            // Checks that the public half is the one the seed derives.
            let key = ed25519_dalek::SigningKey::from_keypair_bytes(pair).map_err(|_| {
                CertError::MalformedKey("Ed25519 public key does not match the seed")
            })?;
            SigningKey::Ed25519(key)
        }
        other => {
            return Err(CertError::UnsupportedKeyType(excerpt(other)));
        }
    };
    let comment = inner.string().ok_or_else(truncated)?.to_vec();
    let padding_ok = inner
        .rest()
        .iter()
        .enumerate()
        .all(|(index, byte)| usize::from(*byte) == index.saturating_add(1));
    if !padding_ok {
        return Err(CertError::MalformedKey("padding is not 1, 2, 3, ..."));
    }
    if public != public_key_blob(&key)?.as_slice() {
        return Err(CertError::MalformedKey(
            "public key does not match the private key",
        ));
    }
    Ok(UserKeyFile {
        key,
        check,
        comment,
    })
}

/// Reads the P-256 scalar mpint. Like OpenSSH and Go, leading zero bytes are accepted (a
/// scalar below 2^248 is written in 31 bytes or fewer); a negative value is not.
fn p256_from_mpint(mpint: &[u8]) -> Result<p256::ecdsa::SigningKey, CertError> {
    if mpint.first().is_some_and(|byte| byte & 0x80 != 0) {
        return Err(CertError::MalformedKey("negative P-256 scalar"));
    }
    let start = mpint
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(mpint.len());
    let digits = mpint.get(start..).unwrap_or_default();
    let offset = 32usize
        .checked_sub(digits.len())
        .ok_or(CertError::MalformedKey(
            "P-256 scalar is longer than 32 bytes",
        ))?;
    let mut padded = Zeroizing::new([0u8; 32]);
    for (slot, digit) in padded.iter_mut().skip(offset).zip(digits) {
        *slot = *digit;
    }
    p256::ecdsa::SigningKey::from_slice(padded.as_slice())
        .map_err(|_| CertError::MalformedKey("P-256 scalar is zero or not below the group order"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p256_key(scalar: [u8; 32]) -> SigningKey {
        SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from_slice(&scalar).unwrap())
    }

    /// The private section of a key file, for looking at its layout.
    fn private_section(file: &UserKeyFile) -> Vec<u8> {
        let binary = file.to_binary().unwrap();
        let mut reader = WireReader::new(binary.strip_prefix(MAGIC).unwrap());
        for _ in 0..3 {
            reader.string().unwrap();
        }
        reader.u32().unwrap();
        reader.string().unwrap();
        reader.string().unwrap().to_vec()
    }

    #[test]
    fn mpint_is_minimal_like_go_big_int() {
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0, 0x7f, 1]);
        assert_eq!(out, [0, 0, 0, 2, 0x7f, 1]);
        out.clear();
        put_mpint(&mut out, &[0, 0x80, 1]);
        assert_eq!(out, [0, 0, 0, 3, 0, 0x80, 1]);
        out.clear();
        put_mpint(&mut out, &[0, 0]);
        assert_eq!(out, [0, 0, 0, 0]);
    }

    /// A scalar with a leading zero byte is written in 31 bytes and read back; ssh-key's own
    /// codec would write 32 and refuse 31.
    #[test]
    fn short_and_high_bit_scalars_round_trip() {
        let mut short = [0x11u8; 32];
        short[0] = 0;
        let mut high = [0x22u8; 32];
        high[0] = 0x80;
        for (scalar, mpint_len) in [(short, 31u32), (high, 33)] {
            let file = UserKeyFile::new(p256_key(scalar)).unwrap();
            let section = private_section(&file);
            let mut reader = WireReader::new(&section);
            reader.u32().unwrap();
            reader.u32().unwrap();
            reader.string().unwrap();
            reader.string().unwrap();
            reader.string().unwrap();
            let mpint = reader.string().unwrap();
            assert_eq!(u32::try_from(mpint.len()).unwrap(), mpint_len);

            let text = file.to_openssh().unwrap();
            let back = private_key_from_openssh(&text).unwrap();
            assert_eq!(back.public_key(), file.key().public_key());
            assert_eq!(
                UserKeyFile::from_openssh(&text)
                    .unwrap()
                    .to_openssh()
                    .unwrap(),
                text
            );
        }
    }

    #[test]
    fn layout_is_gos() {
        for kind in [
            super::super::UserKeyType::Ecdsa,
            super::super::UserKeyType::Ed25519,
        ] {
            let key = super::super::generate_user_key(kind).unwrap();
            let file = UserKeyFile::new(key).unwrap();
            let text = file.to_openssh().unwrap();
            let lines: Vec<&str> = text.split('\n').collect();
            assert_eq!(lines.first(), Some(&PEM_BEGIN));
            assert_eq!(lines.last(), Some(&""), "ends with a newline");
            assert_eq!(lines.get(lines.len() - 2), Some(&PEM_END));
            let body = &lines[1..lines.len() - 2];
            assert!(body[..body.len() - 1].iter().all(|line| line.len() == 64));
            assert!(!body[body.len() - 1].is_empty() && body[body.len() - 1].len() <= 64);

            let section = private_section(&file);
            assert_eq!(section.len() % 8, 0);
            assert_eq!(section[0..4], section[4..8], "check integers are equal");
            let mut reader = WireReader::new(&section[8..]);
            assert_eq!(reader.string(), Some(kind.key_type_name().as_bytes()));
            let fields = if kind == super::super::UserKeyType::Ecdsa {
                3
            } else {
                2
            };
            for _ in 0..fields {
                reader.string().unwrap();
            }
            assert_eq!(reader.string(), Some(&b"openpubkey cert"[..]));
            let padding = reader.rest();
            assert!(padding.len() < 8);
            assert!(
                padding
                    .iter()
                    .enumerate()
                    .all(|(i, b)| usize::from(*b) == i + 1)
            );
        }
    }

    #[test]
    fn check_integers_are_random() {
        let key = super::super::generate_user_key(super::super::UserKeyType::Ed25519).unwrap();
        let checks: Vec<u32> = (0..4)
            .map(|_| UserKeyFile::new(key.clone()).unwrap().check)
            .collect();
        assert!(checks.windows(2).any(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn rsa_keys_are_refused() {
        let key = rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 1024).unwrap();
        let key = SigningKey::Rsa(Box::new(key));
        assert_eq!(
            private_key_to_openssh(&key).err(),
            Some(CertError::UnsupportedKey("RSA"))
        );
    }

    fn reencode_with(file: &UserKeyFile, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut binary = file.to_binary().unwrap().to_vec();
        edit(&mut binary);
        pem_encode(&binary).to_string()
    }

    #[test]
    fn broken_files_are_errors() {
        // A fixed scalar with its top bit clear: a 32-byte mpint, so the private section is
        // 167 bytes and gets exactly one padding byte.
        let file = UserKeyFile::new(p256_key([0x11; 32])).unwrap();
        assert_eq!(private_section(&file).last(), Some(&1));
        let good = file.to_binary().unwrap().to_vec();
        let private_start = good.len() - private_section(&file).len();

        let cases: Vec<(String, CertError)> = vec![
            (
                String::new(),
                CertError::NotOpensshKey("does not start with -----BEGIN OPENSSH PRIVATE KEY-----"),
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
                CertError::NotOpensshKey("does not start with -----BEGIN OPENSSH PRIVATE KEY-----"),
            ),
            (
                format!("{PEM_BEGIN}\nAAAA\n"),
                CertError::NotOpensshKey("no -----END OPENSSH PRIVATE KEY----- line"),
            ),
            (
                format!("{PEM_BEGIN}\n!!!!\n{PEM_END}\n"),
                CertError::NotOpensshKey("body is not base64"),
            ),
            (
                format!("{}junk\n", &*file.to_openssh().unwrap()),
                CertError::NotOpensshKey("text after the END line"),
            ),
            (
                reencode_with(&file, |b| b[0] ^= 1),
                CertError::MalformedKey("no openssh-key-v1 magic"),
            ),
            (
                reencode_with(&file, |b| b.truncate(b.len() - 1)),
                CertError::MalformedKey("truncated"),
            ),
            (
                reencode_with(&file, |b| b.push(0)),
                CertError::MalformedKey("bytes after the private section"),
            ),
            (
                reencode_with(&file, |b| b[private_start] ^= 1),
                CertError::MalformedKey("check integers differ"),
            ),
            (
                reencode_with(&file, |b| {
                    let last = b.len() - 1;
                    b[last] ^= 0x40;
                }),
                CertError::MalformedKey("padding is not 1, 2, 3, ..."),
            ),
            (
                // Flip a byte of the outer public point.
                reencode_with(&file, |b| {
                    b[MAGIC.len() + 8 + 8 + 4 + 4 + 4 + 23 + 12 + 4 + 10] ^= 1
                }),
                CertError::MalformedKey("public key does not match the private key"),
            ),
            (
                // Change the key count to 2.
                reencode_with(&file, |b| b[MAGIC.len() + 8 + 8 + 4 + 3] = 2),
                CertError::MalformedKey("the file must hold exactly one key"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                UserKeyFile::from_openssh(&text).err(),
                Some(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn crlf_and_other_line_widths_are_read() {
        let key = super::super::generate_user_key(super::super::UserKeyType::Ed25519).unwrap();
        let file = UserKeyFile::new(key).unwrap();
        let binary = file.to_binary().unwrap();
        let body = b64::encode_std(&*binary);
        let wrapped: Vec<String> = body
            .as_bytes()
            .chunks(70)
            .map(|chunk| String::from_utf8(chunk.to_vec()).unwrap())
            .collect();
        let text = format!(
            "\r\n{PEM_BEGIN}\r\n{}\r\n{PEM_END}\r\n\r\n",
            wrapped.join("\r\n")
        );
        let back = UserKeyFile::from_openssh(&text).unwrap();
        assert_eq!(back.to_openssh().unwrap(), file.to_openssh().unwrap());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = super::super::generate_user_key(super::super::UserKeyType::Ed25519).unwrap();
        let file = UserKeyFile::new(key).unwrap();
        let debug = format!("{file:?}");
        assert!(debug.contains("openpubkey cert"), "{debug}");
        assert!(!debug.contains("seed") && debug.len() < 120, "{debug}");
    }
}
