//! The attack catalogue (issue 6): each test builds a malicious input from a valid one and
//! asserts that it is denied, and why (the error variant, or for the real binary its log line).
//! One module per family; the test name is the attack's name. A valid token is minted first in
//! every fixture and checked to verify, so a deny cannot come from a broken fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code: a panic is a failure
#![allow(unreachable_pub, clippy::new_without_default)] // helpers shared between the modules of one test binary

mod algorithm;
mod audit_home;
mod binary;
mod cache;
mod certificate;
mod cic;
mod claims;
mod commitment;
mod deny_lists;
mod gq;
mod home_fifo;
mod http;
mod issuer;
mod kid;
mod login;
mod output_escaping;
mod plugin_input;
mod policy_files;
mod principal;
mod proxy;
mod signature;
mod size;
mod ssh_command;
mod template;
mod time;

use opk_core::b64;
use opk_core::cic::CicHeader;
use opk_core::jwk::{Jwk, Jwks};
use opk_core::jws::{Jws, SigningKey};
use opk_core::pktoken::{PkToken, PkTokenError};
use opk_core::sshcert::OpksshCertificate;
use opk_core::sshcert::{CertificateRequest, Principals, build_certificate};
use opk_core::verify::{ExpirationPolicy, Provider, VerifiedPkToken, VerifyError};
use p256::elliptic_curve::Generate as _;
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://op.example";
pub const CLIENT_ID: &str = "client-1";
pub const IAT: i64 = 1_795_666_534;
pub const EXP: i64 = IAT + 3600;
pub const KID: &str = "op-key";

/// One RSA-2048 OP key per test binary (key generation is the slow part).
pub fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        SigningKey::Rsa(Box::new(rsa::PrivateKey::new(&mut rng, 2048).unwrap()))
    })
}

/// A second RSA key (an attacker's, or a rotated one).
pub fn rsa_key2() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        SigningKey::Rsa(Box::new(rsa::PrivateKey::new(&mut rng, 2048).unwrap()))
    })
}

pub fn es_key() -> SigningKey {
    SigningKey::EcdsaP256(p256::ecdsa::SigningKey::generate())
}

pub fn ed_key() -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    ))
}

pub fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
}

/// A moment when the fixture token is valid under every policy.
pub fn now() -> SystemTime {
    at(IAT + 60)
}

pub fn payload(nonce: &str) -> Value {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": CLIENT_ID, "exp": EXP, "iat": IAT,
        "nonce": nonce, "email": "alice@example.com", "email_verified": true
    })
}

pub fn op_header(key: &SigningKey) -> String {
    format!(
        r#"{{"alg":"{}","kid":"{KID}","typ":"JWT"}}"#,
        key.algorithm()
    )
}

/// Signs `header` over the payload JSON with `key`.
pub fn sign(header: &str, payload: &Value, key: &SigningKey) -> Jws {
    Jws::sign(header, &b64::encode_url(payload.to_string()), key).unwrap()
}

/// A complete, valid login: OP key, user key, CIC header and the PK token.
pub struct Login {
    pub op_key: SigningKey,
    pub user_key: SigningKey,
    pub cic: CicHeader,
    pub payload: Value,
    pub token: PkToken,
}

impl Login {
    /// ES256 OP, ES256 user key.
    pub fn new() -> Self {
        Self::with(es_key(), es_key(), |_| {})
    }

    /// RS256 OP (the shared RSA key), ES256 user key.
    pub fn rsa() -> Self {
        Self::with(rsa_key().clone(), es_key(), |_| {})
    }

    /// A login whose payload is edited *before* the OP signs it (an OP that says so).
    pub fn with(op_key: SigningKey, user_key: SigningKey, edit: impl FnOnce(&mut Value)) -> Self {
        let cic = CicHeader::generate(&user_key, &[]).unwrap();
        let mut payload = payload(cic.commitment());
        edit(&mut payload);
        let op = sign(&op_header(&op_key), &payload, &op_key);
        let cic_jws = cic.sign(op.payload_segment(), &user_key).unwrap();
        let token = PkToken::from_signatures(op, cic_jws).unwrap();
        Self {
            op_key,
            user_key,
            cic,
            payload,
            token,
        }
    }

    pub fn jwks(&self) -> Jwks {
        jwks_of(&self.op_key)
    }

    pub fn verify(&self, token: &PkToken) -> Result<VerifiedPkToken, VerifyError> {
        token.verify_at(now(), &provider(ExpirationPolicy::Oidc), &self.jwks())
    }

    /// Asserts the unmodified token verifies (the fixture is sound), then returns `f`'s result.
    pub fn sound(self) -> Self {
        self.verify(&self.token).expect("fixture must verify");
        self
    }

    pub fn compact(&self) -> String {
        self.token.to_compact()
    }

    /// `payload:opHdr:opSig:cicHdr:cicSig` split.
    pub fn parts(&self) -> Vec<String> {
        self.compact().split(':').map(str::to_owned).collect()
    }

    /// Re-signs a CIC header JSON (as given) over the token's payload with the user key.
    pub fn cic_signed(&self, header_json: &str) -> Jws {
        Jws::sign(header_json, self.token.payload_segment(), &self.user_key).unwrap()
    }

    /// A certificate for this login's token, signed by its user key.
    pub fn certificate(&self, principals: Principals) -> OpksshCertificate {
        certificate_for(&self.user_key, &self.compact(), principals)
    }
}

pub fn certificate_for(
    key: &SigningKey,
    pk_token: &str,
    principals: Principals,
) -> OpksshCertificate {
    build_certificate(CertificateRequest {
        key,
        key_id: "alice@example.com",
        principals,
        pk_token,
        access_token: None,
    })
    .unwrap()
}

pub fn jwks_of(key: &SigningKey) -> Jwks {
    Jwks::from_keys(vec![Jwk::new(
        key.public_key(),
        Some(KID.into()),
        Some(key.algorithm()),
    )])
}

pub fn provider(policy: ExpirationPolicy) -> Provider {
    Provider::new(ISSUER, CLIENT_ID, policy)
}

/// Reassembles colon parts and parses them.
pub fn reparse(parts: &[String]) -> Result<PkToken, PkTokenError> {
    PkToken::from_compact(&parts.join(":"))
}

/// A PK token assembled from raw segments: payload JSON, OP header JSON + signature bytes,
/// CIC JWS. For tokens the honest API refuses to make.
pub fn assemble(
    payload_segment: &str,
    op_header_json: &str,
    op_signature: &[u8],
    cic: &Jws,
) -> String {
    format!(
        "{payload_segment}:{}:{}:{}:{}",
        b64::encode_url(op_header_json),
        b64::encode_url(op_signature),
        cic.header_segment(),
        cic.signature_segment()
    )
}

/// HMAC-SHA256 (RFC 2104), for the HS256 confusion attacks.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut block = [0_u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner = sha2::Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    sha2::Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Flips one bit in the middle of a base64url segment's decoded bytes.
pub fn flip_bit(segment: &str) -> String {
    let mut bytes = b64::decode_url_strict(segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    b64::encode_url(bytes)
}

/// Where a malicious token was stopped.
#[derive(Debug)]
pub enum Refusal {
    Parse(PkTokenError),
    Verify(VerifyError),
}

impl Login {
    /// Parses and verifies a compact token with this login's JWKS and the `oidc` policy; a
    /// token that gets through fails the test.
    pub fn refuse(&self, compact: &str) -> Refusal {
        self.refuse_with(compact, &provider(ExpirationPolicy::Oidc), &self.jwks())
    }

    pub fn refuse_with(&self, compact: &str, provider: &Provider, jwks: &Jwks) -> Refusal {
        match PkToken::from_compact(compact) {
            Err(error) => Refusal::Parse(error),
            Ok(token) => match token.verify_at(now(), provider, jwks) {
                Err(error) => Refusal::Verify(error),
                Ok(_) => panic!("ATTACK ACCEPTED: {compact}"),
            },
        }
    }

    /// The token with the OP header replaced by `header_json` and the OP signature by `sig`.
    pub fn with_op(&self, header_json: &str, sig: &[u8]) -> String {
        let parts = self.parts();
        format!(
            "{}:{}:{}:{}:{}",
            parts[0],
            b64::encode_url(header_json),
            b64::encode_url(sig),
            parts[3],
            parts[4]
        )
    }

    /// The signing input an OP header would have over this token's payload.
    pub fn signing_input(&self, header_json: &str) -> String {
        format!(
            "{}.{}",
            b64::encode_url(header_json),
            self.token.payload_segment()
        )
    }

    /// The CIC header as a JSON object, to edit.
    pub fn cic_object(&self) -> serde_json::Map<String, Value> {
        serde_json::from_str::<Value>(self.cic.json())
            .unwrap()
            .as_object()
            .unwrap()
            .clone()
    }

    /// The token with its CIC replaced by `header` (GoJSON) signed by the user key.
    pub fn with_cic_object(&self, header: &serde_json::Map<String, Value>) -> String {
        let json = opk_core::gojson::to_string(&Value::Object(header.clone()));
        let cic = self.cic_signed(&json);
        let parts = self.parts();
        format!(
            "{}:{}:{}:{}:{}",
            parts[0],
            parts[1],
            parts[2],
            cic.header_segment(),
            cic.signature_segment()
        )
    }
}

impl Login {
    /// A token whose payload is exactly `payload_text`, signed by this login's OP and user
    /// keys (an OP that really sent it), without parsing it.
    pub fn mint_raw(&self, payload_text: &str) -> String {
        self.mint_segment(&b64::encode_url(payload_text))
    }

    pub fn mint_segment(&self, payload_segment: &str) -> String {
        let op = Jws::sign(&op_header(&self.op_key), payload_segment, &self.op_key).unwrap();
        let cic = self.cic.sign(payload_segment, &self.user_key).unwrap();
        format!(
            "{payload_segment}:{}:{}:{}:{}",
            op.header_segment(),
            op.signature_segment(),
            cic.header_segment(),
            cic.signature_segment()
        )
    }

    /// The payload with `edit` applied, minted raw.
    pub fn mint_edited(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut payload = self.payload.clone();
        edit(&mut payload);
        self.mint_raw(&payload.to_string())
    }
}
