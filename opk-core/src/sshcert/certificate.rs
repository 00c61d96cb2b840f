//! Parsing and writing the opkssh certificate line (wire-format.md §6.2, §6.3, §7 item 21).

use super::{
    CertError, EXTENSION_ACCESS_TOKEN, EXTENSION_PK_TOKEN, MAX_CERT_LINE_LEN, UserKeyType,
    WireReader, excerpt,
};
use crate::b64;
use crate::jwk;
use signature::Verifier as _;
use ssh_key::certificate::CertType;
use ssh_key::encoding::Encode as _;
use ssh_key::public::{EcdsaPublicKey, KeyData};

/// An opkssh user certificate: an OpenSSH certificate of type
/// `ecdsa-sha2-nistp256-cert-v01@openssh.com` or `ssh-ed25519-cert-v01@openssh.com`.
///
/// It keeps the bytes it was parsed from: [`Self::to_line`] writes them back unchanged and
/// the signature is checked over them, never over a re-encoding (§6.2: "the signature covers
/// every byte from `cert_type_name` through `signature_key`").
///
/// <div class="warning">
///
/// Parsing checks structure only. Trust comes from verifying the PK token in
/// [`Self::pk_token`] and then [`Self::matches_upk`] (§6.4).
///
/// </div>
#[derive(Clone, PartialEq, Eq)]
pub struct OpksshCertificate {
    /// The decoded certificate.
    cert: ssh_key::Certificate,
    /// The certificate blob exactly as received or built.
    blob: Vec<u8>,
    /// Which of the two certificate types this is.
    key_type: UserKeyType,
    /// The subject key, checked to be a valid point at parse time.
    subject: jwk::PublicKey,
    /// Length of the signed part of `blob`: everything before the signature string.
    tbs_len: usize,
    /// The `signature_key` string's contents: the CA public key blob.
    signature_key_blob: Vec<u8>,
    /// The comment after the base64 field, trimmed as Go's `ParseAuthorizedKey` trims it.
    comment: String,
}

/// Which trailing text [`OpksshCertificate::to_line`] writes (§6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertComment<'a> {
    /// `<type> <base64>\n`: Go's authorized-keys form, as in the vectors and `--print-key`.
    None,
    /// `<type> <base64> openpubkey`, no newline: the `-i` file and the `~/.ssh/id_*` files.
    Default,
    /// `<type> <base64>  openpubkey: <issuer> <audience>`, with two spaces and no newline: the
    /// `~/.ssh/opkssh/` identity files. Issuer and audience are escaped ([`crate::escape::line`])
    /// so that a line break in a claim cannot add lines to the file.
    IdentityDir {
        /// The ID token's `iss`.
        issuer: &'a str,
        /// The ID token's `aud` (the client ID).
        audience: &'a str,
    },
}

impl OpksshCertificate {
    /// Parses a certificate line: `<type> <base64>`, optionally followed by a space and a
    /// comment, optionally ending in one `\n` or `\r\n` (§7 item 21). The type word must be one
    /// of the two opkssh certificate types and equal the type inside the blob. Lines over
    /// [`MAX_CERT_LINE_LEN`] bytes are refused before anything is decoded.
    ///
    /// # Errors
    /// [`CertError::TooLarge`], [`CertError::MalformedLine`] and every error of
    /// [`Self::from_type_and_base64`].
    pub fn from_line(line: &str) -> Result<Self, CertError> {
        if line.len() > MAX_CERT_LINE_LEN {
            return Err(CertError::TooLarge {
                len: line.len(),
                max: MAX_CERT_LINE_LEN,
            });
        }
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        if line.contains(['\n', '\r']) {
            return Err(CertError::MalformedLine("more than one line"));
        }
        let (key_type, rest) = line
            .split_once(' ')
            .ok_or(CertError::MalformedLine("no space after the type"))?;
        // The base64 runs to the next space; whatever follows is the comment (§7 item 21).
        let (base64, comment) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut cert = Self::from_type_and_base64(key_type, base64)?;
        // Go's ssh.ParseAuthorizedKey trims the comment; login compares it with "openpubkey"
        // to decide whether a `~/.ssh/id_*` file is its own (§6.3).
        cert.comment = comment.trim().to_owned();
        Ok(cert)
    }

    /// Parses sshd's `%t` (the type word) and `%k` (the base64 blob), as `opkssh verify`
    /// receives them (§6.4).
    ///
    /// # Errors
    /// - [`CertError::TooLarge`] if together they exceed [`MAX_CERT_LINE_LEN`];
    /// - [`CertError::UnsupportedCertType`] for a type other than the two opkssh types (a plain
    ///   key, an RSA or security-key certificate);
    /// - [`CertError::MalformedLine`] for an empty blob, [`CertError::NotBase64`];
    /// - [`CertError::TypeMismatch`], [`CertError::Decode`], [`CertError::NonCanonical`] and
    ///   [`CertError::InvalidSubjectKey`] for blobs that are not such a certificate.
    pub fn from_type_and_base64(key_type: &str, base64: &str) -> Result<Self, CertError> {
        let len = key_type
            .len()
            .saturating_add(1)
            .saturating_add(base64.len());
        if len > MAX_CERT_LINE_LEN {
            return Err(CertError::TooLarge {
                len,
                max: MAX_CERT_LINE_LEN,
            });
        }
        let kind = UserKeyType::from_cert_type_name(key_type)
            .ok_or_else(|| CertError::UnsupportedCertType(excerpt(key_type.as_bytes())))?;
        if base64.is_empty() {
            return Err(CertError::MalformedLine("empty base64 field"));
        }
        let blob = b64::decode_std(base64).map_err(CertError::NotBase64)?;
        Self::from_blob(kind, blob)
    }

    /// Parses a certificate blob whose type word said `kind`.
    pub(super) fn from_blob(kind: UserKeyType, blob: Vec<u8>) -> Result<Self, CertError> {
        // The type name inside must match the word outside; sshd and Go both insist (§7
        // item 21). Checked first so the error names the two types.
        let inner = WireReader::new(&blob)
            .string()
            .ok_or(CertError::MalformedLine("blob too short for a type name"))?;
        if inner != kind.cert_type_name().as_bytes() {
            return Err(CertError::TypeMismatch {
                word: kind.cert_type_name().to_owned(),
                blob: excerpt(inner),
            });
        }

        let cert = ssh_key::Certificate::from_bytes(&blob).map_err(CertError::Decode)?;
        // ssh-key's `&[u8]` reader ignores bytes left over inside a length-prefixed field (an
        // extension value, the signature key, the signature), which Go's parser refuses
        // ("unexpected trailing data after certificate option value", "signature parse
        // error"). Requiring the blob to be exactly the encoding of what was decoded closes
        // that gap for every field at once. Go's marshaller is canonical in the same way, so
        // no Go certificate is lost (the vector tests check this).
        let canonical = cert.to_bytes().map_err(CertError::Decode)?;
        if canonical != blob {
            return Err(CertError::NonCanonical);
        }

        let subject = subject_key(cert.public_key())?;
        let signature_len = cert
            .signature()
            .encoded_len_prefixed()
            .map_err(|error| CertError::Decode(error.into()))?;
        let tbs_len = blob
            .len()
            .checked_sub(signature_len)
            .ok_or(CertError::NonCanonical)?;
        let signature_key_blob = cert
            .signature_key()
            .encode_vec()
            .map_err(|error| CertError::Decode(error.into()))?;

        Ok(Self {
            cert,
            blob,
            key_type: kind,
            subject,
            tbs_len,
            signature_key_blob,
            comment: String::new(),
        })
    }

    /// Writes the certificate line in one of the three shapes of §6.3, from the exact bytes
    /// parsed or built.
    pub fn to_line(&self, comment: CertComment<'_>) -> String {
        let head = format!("{} {}", self.cert_type_name(), b64::encode_std(&self.blob));
        match comment {
            CertComment::None => head + "\n",
            CertComment::Default => head + " openpubkey",
            // The comment itself starts with a space, hence two (§6.3 item 2).
            CertComment::IdentityDir { issuer, audience } => format!(
                "{head}  openpubkey: {} {}",
                crate::escape::line(issuer),
                crate::escape::line(audience)
            ),
        }
    }

    /// The compact PK token in the `openpubkey-pkt` extension, unwrapped (§6.2).
    ///
    /// # Errors
    /// [`CertError::MissingPkToken`] if the extension is absent.
    pub fn pk_token(&self) -> Result<&str, CertError> {
        self.extension(EXTENSION_PK_TOKEN)
            .ok_or(CertError::MissingPkToken)
    }

    /// The access token in the `openpubkey-act` extension, if the client sent one.
    pub fn access_token(&self) -> Option<&str> {
        self.extension(EXTENSION_ACCESS_TOKEN)
    }

    /// The unwrapped value of an extension (empty for the `permit-*` flags).
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.cert.extensions().get(name).map(String::as_str)
    }

    /// The extension names, in the certificate's (byte-wise sorted) order.
    pub fn extension_names(&self) -> impl Iterator<Item = &str> {
        self.cert.extensions().keys().map(String::as_str)
    }

    /// The key ID: the `email` claim, or empty (§6.1).
    pub fn key_id(&self) -> &str {
        self.cert.key_id()
    }

    /// The valid principals; empty means any principal.
    pub fn principals(&self) -> &[String] {
        self.cert.valid_principals()
    }

    /// Which of the two opkssh certificate types this is.
    pub fn key_type(&self) -> UserKeyType {
        self.key_type
    }

    /// The certificate type name, for example `ecdsa-sha2-nistp256-cert-v01@openssh.com`.
    pub fn cert_type_name(&self) -> &'static str {
        self.key_type.cert_type_name()
    }

    /// User or host certificate (opkssh issues user certificates; sshd checks this).
    pub fn cert_type(&self) -> CertType {
        self.cert.cert_type()
    }

    /// The nonce (32 bytes in opkssh certificates).
    pub fn nonce(&self) -> &[u8] {
        self.cert.nonce()
    }

    /// The serial number (0 in opkssh certificates).
    pub fn serial(&self) -> u64 {
        self.cert.serial()
    }

    /// Start of validity (0 in opkssh certificates).
    pub fn valid_after(&self) -> u64 {
        self.cert.valid_after()
    }

    /// End of validity (`u64::MAX`, "forever", in opkssh certificates; the PK token policy
    /// decides expiry).
    pub fn valid_before(&self) -> u64 {
        self.cert.valid_before()
    }

    /// The comment of the parsed line, trimmed; empty when there was none.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The certificate blob (the base64-decoded `%k`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.blob
    }

    /// The decoded certificate, for fields this type has no getter for.
    pub fn inner(&self) -> &ssh_key::Certificate {
        &self.cert
    }

    /// The subject key's OpenSSH SHA-256 fingerprint (`SHA256:…`), as `ssh-keygen -l` shows it.
    pub fn fingerprint(&self) -> String {
        self.cert
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
    }

    /// The certificate's subject key: P-256 or Ed25519, a valid point.
    pub fn subject_key(&self) -> &jwk::PublicKey {
        &self.subject
    }

    /// Whether the subject key is `upk`, compared by RFC 7638 thumbprint as Go does (§6.4
    /// step 4).
    pub fn matches_upk(&self, upk: &jwk::PublicKey) -> bool {
        self.subject.thumbprint() == upk.thumbprint()
    }

    /// The signature key in authorized-keys form, `<key type> <base64>`, for the
    /// `cert-authority` line (§6.4 step 8). opkssh itself does not check it; sshd verifies the
    /// certificate against it.
    pub fn signature_key_line(&self) -> String {
        format!(
            "{} {}",
            self.cert.signature_key().algorithm().as_str(),
            b64::encode_std(&self.signature_key_blob)
        )
    }

    /// Checks what opkssh leaves to sshd (§6.4): the signature key is the subject key, and the
    /// signature verifies under it over the received bytes. Validity times, the certificate
    /// type and principals are not checked here.
    ///
    /// # Errors
    /// [`CertError::NotSelfSigned`] or [`CertError::BadSignature`].
    pub fn verify_self_signature(&self) -> Result<(), CertError> {
        if self.cert.signature_key() != self.cert.public_key() {
            return Err(CertError::NotSelfSigned);
        }
        // The signature must be made by the subject key's own algorithm: no `sk-` variants.
        if self.cert.signature().algorithm() != self.cert.public_key().algorithm() {
            return Err(CertError::BadSignature);
        }
        let tbs = self
            .blob
            .get(..self.tbs_len)
            .ok_or(CertError::BadSignature)?;
        self.cert
            .signature_key()
            .verify(tbs, self.cert.signature())
            .map_err(|_| CertError::BadSignature)
    }
}

impl std::fmt::Debug for OpksshCertificate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No extension values: `openpubkey-act` is a bearer access token.
        formatter
            .debug_struct("OpksshCertificate")
            .field("type", &self.cert_type_name())
            .field("key_id", &self.key_id())
            .field("principals", &self.principals())
            .field("extensions", &self.extension_names().collect::<Vec<_>>())
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

/// Converts the subject key. Go's `elliptic.Unmarshal` takes only uncompressed points, and so
/// does this.
fn subject_key(key: &KeyData) -> Result<jwk::PublicKey, CertError> {
    match key {
        KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => {
            let bytes = point.as_bytes();
            if bytes.len() != 65 || bytes.first() != Some(&0x04) {
                return Err(CertError::InvalidSubjectKey("P-256"));
            }
            p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(jwk::PublicKey::EcdsaP256)
                .map_err(|_| CertError::InvalidSubjectKey("P-256"))
        }
        KeyData::Ed25519(key) => ed25519_dalek::VerifyingKey::from_bytes(&key.0)
            .map(jwk::PublicKey::Ed25519)
            .map_err(|_| CertError::InvalidSubjectKey("Ed25519")),
        // The type word was checked against the blob before decoding, and ssh-key decodes the
        // key as that type, so no other key reaches here.
        _ => Err(CertError::InvalidSubjectKey("P-256 or Ed25519")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        CertificateRequest, Principals, build_certificate, generate_user_key, public_key_blob,
    };
    use super::*;

    fn built(kind: UserKeyType) -> (crate::jws::SigningKey, OpksshCertificate) {
        let key = generate_user_key(kind).unwrap();
        let cert = build_certificate(CertificateRequest {
            key: &key,
            key_id: "a@example.com",
            principals: Principals::Default,
            pk_token: "header.payload:sig",
            access_token: None,
        })
        .unwrap();
        (key, cert)
    }

    #[test]
    fn signed_part_ends_where_the_signature_string_starts() {
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let (key, cert) = built(kind);
            let mut tail = WireReader::new(cert.as_bytes().get(cert.tbs_len..).unwrap());
            let mut signature = WireReader::new(tail.string().unwrap());
            assert!(tail.is_empty());
            assert_eq!(
                signature.string(),
                Some(kind.key_type_name().as_bytes()),
                "signature algorithm"
            );
            assert!(signature.string().is_some());
            assert!(signature.is_empty());
            assert_eq!(cert.signature_key_blob, public_key_blob(&key).unwrap());
        }
    }

    #[test]
    fn comments_are_trimmed_like_go() {
        let (_, cert) = built(UserKeyType::Ed25519);
        let head = cert.to_line(CertComment::None);
        let head = head.trim_end();
        for (suffix, comment) in [
            ("", ""),
            (" ", ""),
            (" openpubkey", "openpubkey"),
            ("  openpubkey: iss aud ", "openpubkey: iss aud"),
        ] {
            let parsed = OpksshCertificate::from_line(&format!("{head}{suffix}")).unwrap();
            assert_eq!(parsed.comment(), comment);
        }
    }

    #[test]
    fn hostile_type_names_are_excerpted() {
        let word = format!("{}\n", "x".repeat(500));
        let Err(CertError::UnsupportedCertType(shown)) =
            OpksshCertificate::from_type_and_base64(&word, "AAAA")
        else {
            panic!("expected UnsupportedCertType");
        };
        assert!(shown.len() < 80 && !shown.contains('\n'), "{shown}");
    }
}
