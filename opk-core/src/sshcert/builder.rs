//! Building the opkssh certificate (wire-format.md §6.1, §6.2). Go: opkssh
//! `sshcert/sshcert.go` (`New`, `SignCert`).

use super::{
    CertError, DEFAULT_PRINCIPAL, EXTENSION_ACCESS_TOKEN, EXTENSION_PK_TOKEN, OpksshCertificate,
    PERMIT_EXTENSIONS, UserKeyType,
};
use crate::external::{ExternalKey, HeldSignature, SignError};
use crate::jwk::PublicKey;
use crate::jws::SigningKey;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData};
use ssh_key::{Algorithm, Signature};
use std::cell::RefCell;

/// The certificate's valid principals (§6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Principals {
    /// The single principal `opkssh-wildcard`, Go's default without `--principals`.
    #[default]
    Default,
    /// The `--principals` list, written in this order. An empty list gives a certificate with
    /// no principals, which OpenSSH reads as "any principal".
    List(Vec<String>),
}

/// What goes into a certificate. Every other field is fixed by §6.1.
#[derive(Clone)]
pub struct CertificateRequest<'a> {
    /// The user key (= `upk`): the subject key, and the key that signs.
    pub key: &'a SigningKey,
    /// The key ID: the ID token's `email` claim, or `""` when it has none.
    pub key_id: &'a str,
    /// The valid principals.
    pub principals: Principals,
    /// The compact PK token (§2.2), for `openpubkey-pkt`.
    pub pk_token: &'a str,
    /// The access token, for `openpubkey-act`, with `--send-access-token`.
    pub access_token: Option<&'a str>,
}

impl std::fmt::Debug for CertificateRequest<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The access token is a bearer credential: say whether there is one, nothing more.
        formatter
            .debug_struct("CertificateRequest")
            .field("key", self.key)
            .field("key_id", &self.key_id)
            .field("principals", &self.principals)
            .field("pk_token_len", &self.pk_token.len())
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// Builds and self-signs the opkssh user certificate exactly as Go does (§6.1, §6.2): a
/// 32-byte random nonce, serial 0, user type, valid from 0 to `u64::MAX`, no critical options,
/// the five `permit-*` flags plus `openpubkey-pkt` (and `openpubkey-act`), signed by the
/// subject key itself. The result is parsed back and its signature checked before it is
/// returned, in every build (cheap, once per login), so a certificate that would not parse
/// on the server never leaves this function.
///
/// The key may be held by an ssh-agent ([`SigningKey::External`]): the agent then makes the
/// self-signature, which is checked before it is used and written in the same canonical form
/// as an in-memory key's.
///
/// # Errors
/// [`CertError::UnsupportedKey`] for an RSA key, [`CertError::Rng`], [`CertError::Build`],
/// [`CertError::Sign`] when the agent holding the key fails, and [`CertError::SelfCheck`] if
/// the result does not parse back (a bug).
pub fn build_certificate(request: CertificateRequest<'_>) -> Result<OpksshCertificate, CertError> {
    let kind = UserKeyType::of(request.key)?;
    let signer = CertSigner::new(request.key)?;

    // Go: `nonce := make([]byte, 32); rand.Read(nonce)`; ssh-key's own random-nonce
    // constructor makes 16 bytes.
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|_| CertError::Rng)?;

    // valid_after 0, valid_before u64::MAX: Go's `ssh.CertTimeInfinity`. Expiry is enforced
    // through the PK token policy only (§6.1).
    let mut builder =
        Builder::new(nonce, signer.public_key_data(), 0, u64::MAX).map_err(CertError::Build)?;
    builder.serial(0).map_err(CertError::Build)?;
    builder
        .cert_type(CertType::User)
        .map_err(CertError::Build)?;
    builder.key_id(request.key_id).map_err(CertError::Build)?;
    match &request.principals {
        Principals::Default => {
            builder
                .valid_principal(DEFAULT_PRINCIPAL)
                .map_err(CertError::Build)?;
        }
        // ssh-key refuses to sign until principals are set, treating "none" as a golden
        // ticket that must be asked for (all_principals_valid). Go issues such certificates
        // when the principal list is empty (`ValidPrincipals: nil`), so we ask for it here.
        Principals::List(list) if list.is_empty() => {
            builder.all_principals_valid().map_err(CertError::Build)?;
        }
        Principals::List(list) => {
            for principal in list {
                builder
                    .valid_principal(principal.as_str())
                    .map_err(CertError::Build)?;
            }
        }
    }
    // ssh-key keeps extensions in a BTreeMap<String, String> and writes them in its
    // (byte-wise) order, wrapping non-empty values in a second string and writing empty ones
    // as a zero-length string, exactly as Go's `marshalTuples` does (§6.2, §7 item 17).
    // A duplicate name is refused by the builder, so a pk token can't override a flag.
    for name in PERMIT_EXTENSIONS {
        builder.extension(name, "").map_err(CertError::Build)?;
    }
    builder
        .extension(EXTENSION_PK_TOKEN, request.pk_token)
        .map_err(CertError::Build)?;
    if let Some(access_token) = request.access_token {
        builder
            .extension(EXTENSION_ACCESS_TOKEN, access_token)
            .map_err(CertError::Build)?;
    }

    let cert = builder.sign(&signer).map_err(|error| {
        signer
            .take_failure()
            .map_or(CertError::Build(error), CertError::Sign)
    })?;
    let blob = cert.to_bytes().map_err(CertError::Build)?;

    // Parse our own output with the server-side parser and check the self-signature: the
    // explicit version of ssh-key's debug-build self-check, returning an error, not panicking.
    let parsed = OpksshCertificate::from_blob(kind, blob)
        .map_err(|error| CertError::SelfCheck(Box::new(error)))?;
    parsed
        .verify_self_signature()
        .map_err(|error| CertError::SelfCheck(Box::new(error)))?;
    if parsed.inner() != &cert {
        return Err(CertError::SelfCheck(Box::new(CertError::NonCanonical)));
    }
    Ok(parsed)
}

/// The SSH wire signature by `key` over `data` (RFC 4253 §6.6): `string algorithm ‖ string
/// blob`, the blob being `mpint r ‖ mpint s` for `ecdsa-sha2-nistp256` (RFC 5656 §3.1.2) or the
/// 64 signature bytes for `ssh-ed25519` (RFC 8709 §6). This is what an ssh-agent returns in
/// `SSH_AGENT_SIGN_RESPONSE` and what a certificate's signature field holds; it is made the
/// same way [`build_certificate`] signs (one signer for both).
///
/// For a key an ssh-agent holds ([`SigningKey::External`]) the upstream agent signs; its answer
/// is checked under the public key and re-encoded canonically, as for the certificate.
///
/// # Errors
/// [`CertError::UnsupportedKey`] for an RSA key; [`CertError::Sign`] when the agent holding
/// the key fails or answers with a bad signature; [`CertError::Build`] if encoding fails.
pub fn ssh_signature(key: &SigningKey, data: &[u8]) -> Result<Vec<u8>, CertError> {
    use ssh_key::encoding::Encode as _;
    let signature = CertSigner::new(key)?.sign_ssh(data)?;
    let mut out = Vec::new();
    signature
        .encode(&mut out)
        .map_err(|error| CertError::Build(ssh_key::Error::Encoding(error)))?;
    Ok(out)
}

/// The user key as an ssh-key certificate signer, borrowed: the secret is not copied into
/// ssh-key's key types.
enum CertSigner<'a> {
    EcdsaP256(&'a p256::ecdsa::SigningKey),
    Ed25519(&'a ed25519_dalek::SigningKey),
    /// A key an ssh-agent holds. ssh-key's builder turns any signing failure into an opaque
    /// error, so the holder's reason is kept here for [`build_certificate`] to report.
    External {
        key: &'a ExternalKey,
        public: Box<KeyData>,
        failure: RefCell<Option<SignError>>,
    },
}

impl<'a> CertSigner<'a> {
    fn new(key: &'a SigningKey) -> Result<Self, CertError> {
        match key {
            SigningKey::EcdsaP256(key) => Ok(Self::EcdsaP256(key)),
            SigningKey::Ed25519(key) => Ok(Self::Ed25519(key)),
            SigningKey::Rsa(_) => Err(CertError::UnsupportedKey("RSA")),
            SigningKey::External(key) => {
                let public = match key.public_key() {
                    PublicKey::EcdsaP256(public) => KeyData::Ecdsa(EcdsaPublicKey::from(public)),
                    PublicKey::Ed25519(public) => KeyData::Ed25519(Ed25519PublicKey::from(public)),
                    PublicKey::Rsa(_) => return Err(CertError::UnsupportedKey("RSA")),
                };
                Ok(Self::External {
                    key,
                    public: Box::new(public),
                    failure: RefCell::new(None),
                })
            }
        }
    }

    fn public_key_data(&self) -> KeyData {
        match self {
            Self::EcdsaP256(key) => KeyData::Ecdsa(EcdsaPublicKey::from(key.verifying_key())),
            Self::Ed25519(key) => KeyData::Ed25519(Ed25519PublicKey::from(key.verifying_key())),
            Self::External { public, .. } => public.as_ref().clone(),
        }
    }

    /// The SSH signature over `message`, with a typed error (the `Signer` impl below must
    /// return ssh-key's opaque one).
    fn sign_ssh(&self, message: &[u8]) -> Result<Signature, CertError> {
        match self {
            // `ecdsa-sha2-nistp256` over SHA-256; ssh-key writes r and s as minimal mpints,
            // as Go does (§6.2, §7 item 16: not the raw r‖s of JWS).
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = signature::Signer::try_sign(*key, message)
                    .map_err(|_| CertError::Sign(SignError::Failed))?;
                Signature::try_from(signature).map_err(CertError::Build)
            }
            Self::Ed25519(key) => {
                let signature = signature::Signer::try_sign(*key, message)
                    .map_err(|_| CertError::Sign(SignError::Failed))?;
                Signature::new(Algorithm::Ed25519, signature.to_bytes().to_vec())
                    .map_err(CertError::Build)
            }
            // The agent's signature, parsed and verified, is re-encoded exactly as an
            // in-memory key's would be: the same minimal mpints whatever padding the agent
            // used, so the certificate is canonical (Go and our parser require it).
            Self::External { key, .. } => match key.sign_verified(message) {
                Ok(HeldSignature::EcdsaP256(signature)) => {
                    Signature::try_from(signature).map_err(CertError::Build)
                }
                Ok(HeldSignature::Ed25519(signature)) => {
                    Signature::new(Algorithm::Ed25519, signature.to_bytes().to_vec())
                        .map_err(CertError::Build)
                }
                Err(error) => Err(CertError::Sign(error)),
            },
        }
    }

    /// The holder's reason for the last failed signature, if a held key failed.
    fn take_failure(&self) -> Option<SignError> {
        match self {
            Self::External { failure, .. } => failure.borrow_mut().take(),
            Self::EcdsaP256(_) | Self::Ed25519(_) => None,
        }
    }
}

impl signature::Signer<Signature> for CertSigner<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
        self.sign_ssh(message).map_err(|error| {
            if let (Self::External { failure, .. }, CertError::Sign(reason)) = (self, &error) {
                *failure.borrow_mut() = Some(reason.clone());
            }
            signature::Error::from_source(error)
        })
    }
}

/// ssh-key's `SigningKey` trait is implemented for every signer whose public key converts to
/// `KeyData`: the signature key written into the certificate is the subject key (§6.1).
impl From<&CertSigner<'_>> for KeyData {
    fn from(signer: &CertSigner<'_>) -> Self {
        signer.public_key_data()
    }
}

#[cfg(test)]
mod tests {
    use super::super::generate_user_key;
    use super::*;
    use signature::Signer as _;

    #[test]
    fn signer_writes_ssh_signatures_not_jws_ones() {
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            let signer = CertSigner::new(&key).unwrap();
            let signature = signer.try_sign(b"message").unwrap();
            assert_eq!(signature.algorithm().as_str(), kind.key_type_name());
            match kind {
                // Two mpints (72 to 74 bytes with their length prefixes in Go's vectors; less
                // when r or s happens to start with a zero byte), not the 64-byte r‖s of ES256
                // (§7 item 16).
                UserKeyType::Ecdsa => assert!((66..=74).contains(&signature.as_bytes().len())),
                UserKeyType::Ed25519 => assert_eq!(signature.as_bytes().len(), 64),
            }
            let public = KeyData::from(&signer);
            assert!(signature::Verifier::verify(&public, b"message", &signature).is_ok());
        }
    }

    #[test]
    fn held_keys_sign_certificates_as_in_memory_ones_do() {
        use crate::external::testing::held;
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            let agent_key = held(&key);
            assert_eq!(UserKeyType::of(&agent_key), Ok(kind));
            let certificate = build_certificate(CertificateRequest {
                key: &agent_key,
                key_id: "alice@example.com",
                principals: Principals::Default,
                pk_token: "h.p.s",
                access_token: None,
            })
            .unwrap();
            assert_eq!(certificate.cert_type_name(), kind.cert_type_name());
            assert_eq!(certificate.verify_self_signature(), Ok(()));
            assert!(certificate.matches_upk(&key.public_key()));
            // The same signer gives the same (deterministic) SSH signature for both forms.
            let in_memory = CertSigner::new(&key).unwrap().sign_ssh(b"tbs").unwrap();
            let by_agent = CertSigner::new(&agent_key)
                .unwrap()
                .sign_ssh(b"tbs")
                .unwrap();
            assert_eq!(in_memory, by_agent);
        }
    }

    #[test]
    fn ssh_signature_is_the_wire_form_and_verifies() {
        use ssh_key::encoding::Decode as _;
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            let wire = ssh_signature(&key, b"data to sign").unwrap();
            let mut reader = wire.as_slice();
            let signature = Signature::decode(&mut reader).unwrap();
            assert!(reader.is_empty(), "{kind:?}: trailing bytes");
            assert_eq!(signature.algorithm().as_str(), kind.key_type_name());
            // The algorithm name leads, as a length-prefixed string.
            let name = kind.key_type_name().as_bytes();
            assert_eq!(
                &wire[..4],
                &u32::try_from(name.len()).unwrap().to_be_bytes()
            );
            assert_eq!(&wire[4..4 + name.len()], name);
            let public = KeyData::from(&CertSigner::new(&key).unwrap());
            assert!(signature::Verifier::verify(&public, b"data to sign", &signature).is_ok());
            assert!(signature::Verifier::verify(&public, b"other data", &signature).is_err());
        }
    }

    #[test]
    fn a_failing_agent_fails_the_certificate_with_its_reason() {
        use crate::external::testing::held_failing;
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let refused = SignError::Holder("the ssh-agent refused to sign".into());
        let agent_key = held_failing(&key, Some(refused.clone()));
        let error = build_certificate(CertificateRequest {
            key: &agent_key,
            key_id: "",
            principals: Principals::Default,
            pk_token: "h.p.s",
            access_token: None,
        })
        .unwrap_err();
        assert_eq!(error, CertError::Sign(refused));
    }

    #[test]
    fn ssh_signature_of_a_held_key_is_the_agents_checked_and_canonical() {
        use crate::external::testing::{held, held_failing};
        for kind in [UserKeyType::Ecdsa, UserKeyType::Ed25519] {
            let key = generate_user_key(kind).unwrap();
            // Deterministic signatures: the agent's answer, re-encoded, is the in-memory one.
            assert_eq!(
                ssh_signature(&held(&key), b"data to sign").unwrap(),
                ssh_signature(&key, b"data to sign").unwrap()
            );
            let refused = SignError::Holder("the ssh-agent refused to sign".into());
            assert_eq!(
                ssh_signature(&held_failing(&key, Some(refused.clone())), b"x"),
                Err(CertError::Sign(refused))
            );
        }
    }

    #[test]
    fn ssh_signature_refuses_rsa() {
        let rsa = rsa::PrivateKey::new(&mut rand_core::UnwrapErr(getrandom::SysRng), 1024).unwrap();
        let key = SigningKey::Rsa(Box::new(rsa));
        assert_eq!(
            ssh_signature(&key, b"x"),
            Err(CertError::UnsupportedKey("RSA"))
        );
    }

    #[test]
    fn debug_redacts_the_access_token() {
        let key = generate_user_key(UserKeyType::Ecdsa).unwrap();
        let request = CertificateRequest {
            key: &key,
            key_id: "a@b",
            principals: Principals::List(vec!["root".into()]),
            pk_token: "pkt",
            access_token: Some("bearer-secret"),
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("bearer-secret"), "{debug}");
        assert!(
            debug.contains("redacted") && debug.contains("root"),
            "{debug}"
        );
    }
}
