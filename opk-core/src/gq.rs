//! GQ256: Guillou–Quisquater GQ1 signatures (ISO/IEC 14888-2) over an OP's RS256 ID token.
//!
//! A GQ256 token proves knowledge of the OP's RSA signature σ without revealing it
//! (`wire-format.md` §4). The client replaces the RS256 header and signature of its ID token with
//! a GQ header and a GQ proof; the payload segment stays unchanged. The verifier needs only the
//! OP's RSA public key (n, e).
//!
//! Layout of this module:
//! * `GqParams`: the parameters derived from (n, e), §4.1;
//! * `sign_core` and `verify_core`: the big-integer core, §4.3 steps 6–10 and §4.4 steps 5–8,
//!   with the challenge hash injected and the nonces passed in, so that the deterministic
//!   ISO/IEC 14888-2 GQ1 example can run as a unit test (§4.8);
//! * [`sign_id_token`], [`verify_token`], [`original_header_segment`]: the JWT level.
//!
//! Differences from Go (openpubkey gq/):
//! * the modulus must be 1024 to 8192 bits (Go's gq package sets no bound of its own);
//! * `e` must be below `n`, as in any valid RSA key;
//! * extra header members may not be named `jkt` (we compute it ourselves), may not repeat, and
//!   their names must need no JSON escaping;
//! * nonces are drawn from [1, n) rather than [0, n): an r_i of 0 would give S_i = 0, which every
//!   verifier rejects;
//! * base64url decoding rejects CR and LF, which Go's decoder skips;
//! * Q = σ⁻¹ mod n uses crypto-bigint's constant-time inverse instead of Go's blinding.

use crate::{b64, gojson};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Integer as _, Odd, RandomMod as _};
use rsa::PublicKey;
use rsa::pkcs1v15::{Signature as Pkcs1v15Signature, VerifyingKey as Pkcs1v15VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use shake::{ExtendableOutput as _, Update as _, XofReader as _};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

/// Security parameter of GQ256 in bits (§4.1): the soundness the t rounds must add up to.
const GQ256_SECURITY_BITS: u32 = 256;

/// Smallest accepted RSA modulus, in bits: rsa's `PublicKey::new` default (Go's crypto/rsa has
/// refused smaller keys since Go 1.24), and well above the 62 bytes the PKCS#1 v1.5 encoding of
/// §4.4 step 6 needs.
const MIN_MODULUS_BITS: u32 = 1024;

/// Largest accepted RSA modulus, in bits: rsa's `PublicKey::new` default, and a bound on the work
/// an attacker-chosen key could cause.
const MAX_MODULUS_BITS: u32 = 8192;

/// DER `DigestInfo` prefix for SHA-256 (RFC 8017 §9.2 note 1), §4.4 step 6.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Header members the GQ header sets itself (§4.2); extra members may not reuse them.
const RESERVED_HEADER_NAMES: [&str; 4] = ["alg", "jkt", "kid", "typ"];

/// How often a nonce draw may come out zero before we blame the RNG (odds 1/n each).
const MAX_NONCE_ATTEMPTS: usize = 8;

/// What went wrong while creating or checking a GQ256 signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GqError {
    /// The GQ proof does not verify against the identity and message (§4.4 step 8).
    #[error("GQ256 proof does not verify")]
    BadSignature,
    /// An extra header member was given twice.
    #[error("extra GQ header member {0:?} given twice")]
    DuplicateClaimName(String),
    /// The GQ header's `alg` is not `GQ256` (§4.4 step 1). `None` if absent or not a string.
    #[error("GQ header alg is {alg:?}, expected \"GQ256\"")]
    HeaderAlgNotGq256 {
        /// The `alg` found.
        alg: Option<String>,
    },
    /// A protected-header segment is not strict base64url (§1.1).
    #[error("protected header is not strict base64url")]
    HeaderNotBase64,
    /// A protected header is not a JSON object.
    #[error("protected header is not a JSON object")]
    HeaderNotJson,
    /// A condition the code upholds itself did not hold; never caused by input alone.
    #[error("internal GQ error: {0}")]
    Internal(&'static str),
    /// The RSA exponent cannot be a GQ exponent: it must be odd, at least 3 and below n (§4.1).
    #[error("RSA public exponent unusable for GQ (must be odd, at least 3 and below n)")]
    InvalidExponent,
    /// The GQ header's `kid` is not strict base64url (§4.5 step 1).
    #[error("GQ header kid is not strict base64url")]
    KidNotBase64,
    /// The GQ header has no string `kid` (§4.4 step 2).
    #[error("GQ header has no kid")]
    MissingKid,
    /// The RSA modulus is even.
    #[error("RSA modulus is even")]
    ModulusInvalid,
    /// The RSA modulus is longer than 8192 bits.
    #[error("RSA modulus has {bits} bits, more than 8192")]
    ModulusTooLarge {
        /// Bit length of the modulus.
        bits: u32,
    },
    /// The RSA modulus is shorter than 1024 bits.
    #[error("RSA modulus has {bits} bits, fewer than 1024")]
    ModulusTooSmall {
        /// Bit length of the modulus.
        bits: u32,
    },
    /// The original ID token's `alg` is not `RS256` (§4.1). `None` if absent or not a string.
    #[error("original ID token alg is {alg:?}, GQ256 needs \"RS256\"")]
    OriginalAlgNotRs256 {
        /// The `alg` found.
        alg: Option<String>,
    },
    /// The original header (the decoded GQ `kid`) is not a JSON object.
    #[error("original ID token header is not a JSON object")]
    OriginalHeaderNotJson,
    /// The ID token's RS256 signature does not verify with the given key (§4.3 step 1).
    #[error("ID token RS256 signature does not verify with the given key")]
    OriginalSignatureInvalid,
    /// The payload segment is not strict base64url (§1.1).
    #[error("payload is not strict base64url")]
    PayloadNotBase64,
    /// The decoded proof does not have the length t·vBytes + t·nBytes (§4.4 step 5).
    #[error("GQ proof is {actual} bytes, expected {expected}")]
    ProofLength {
        /// t·vBytes + t·nBytes.
        expected: usize,
        /// Length found.
        actual: usize,
    },
    /// The proof segment is not strict base64url (§1.1).
    #[error("GQ proof is not strict base64url")]
    ProofNotBase64,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Randomness,
    /// An extra header member uses a name the GQ header sets itself.
    #[error("extra GQ header member {0:?} uses a reserved name")]
    ReservedClaimName(String),
    /// Some S_i of the proof is 0 or not below n (§4.4 step 7).
    #[error("GQ proof value out of range")]
    ScalarOutOfRange,
    /// The ID token's signature segment is not strict base64url.
    #[error("ID token signature is not strict base64url")]
    SignatureNotBase64,
    /// The RSA signature σ has no inverse modulo n (§4.3 step 3).
    #[error("RSA signature is not invertible modulo n")]
    SignatureNotInvertible,
    /// The token is not three `.`-separated segments.
    #[error("token is not a compact JWS of three segments")]
    TokenNotCompact,
    /// An extra header member's name is empty or would need JSON escaping.
    #[error("extra GQ header member name {0:?} is empty or needs escaping")]
    UnsupportedClaimName(String),
}

/// The challenge hash `H(len, parts…)`: absorb `parts` in order and return `len` bytes.
/// Production uses SHAKE256 (§4.1); the ISO test uses truncated SHA-1.
pub(crate) type ChallengeHash = fn(usize, &[&[u8]]) -> Vec<u8>;

/// GQ parameters derived from an RSA public key (n, e), `wire-format.md` §4.1.
#[derive(Clone, Debug)]
pub(crate) struct GqParams {
    /// Montgomery parameters of n; also holds n itself.
    monty: BoxedMontyParams,
    /// v = e, the GQ verification exponent.
    v: BoxedUint,
    /// Bit length of v, public, so exponentiation by v costs only that many squarings.
    v_bits: u32,
    /// nBytes = ceil(bitlen(n) / 8).
    n_bytes: usize,
    /// vBytes = ceil((bitlen(v) - 1) / 8), the length of each challenge chunk R_i.
    v_bytes: usize,
    /// 8·vBytes: the public bound on each R_i used as an exponent.
    r_bits: u32,
    /// Number of rounds t = ceil(security / (bitlen(v) - 1)).
    t: usize,
}

impl GqParams {
    /// GQ256 parameters for the RSA key (n, e).
    ///
    /// # Errors
    /// `InvalidExponent` unless e is odd, at least 3 and below n; `ModulusInvalid` for an even n;
    /// `ModulusTooSmall`/`ModulusTooLarge` outside 1024..=8192 bits.
    pub(crate) fn new(n: &BoxedUint, e: &BoxedUint) -> Result<Self, GqError> {
        Self::with_security_bits(n, e, GQ256_SECURITY_BITS)
    }

    /// GQ256 parameters for an RSA public key.
    pub(crate) fn from_rsa_key(key: &PublicKey) -> Result<Self, GqError> {
        Self::new(key.n().as_ref(), key.e())
    }

    /// Parameters for an arbitrary security level. Go has the same knob (`NewSignerVerifier`);
    /// the ISO example needs t = 1, which security 80 with its 81-bit v gives.
    fn with_security_bits(
        n: &BoxedUint,
        e: &BoxedUint,
        security_bits: u32,
    ) -> Result<Self, GqError> {
        let n_bits = n.bit_width_vartime();
        if n_bits < MIN_MODULUS_BITS {
            return Err(GqError::ModulusTooSmall { bits: n_bits });
        }
        if n_bits > MAX_MODULUS_BITS {
            return Err(GqError::ModulusTooLarge { bits: n_bits });
        }
        let n_odd = Odd::new(n.clone())
            .into_option()
            .ok_or(GqError::ModulusInvalid)?;

        // §4.1 and security item 3 (openpubkey#231, #371): an even e, or e < 3, breaks soundness.
        if e.is_even().to_bool() || *e < BoxedUint::from(3u8) || e >= n {
            return Err(GqError::InvalidExponent);
        }
        let v_bits = e.bit_width_vartime();
        // floor(log2 e) >= 1 because e >= 3: each round adds that many bits of soundness.
        let bits_per_round = v_bits
            .checked_sub(1)
            .filter(|b| *b > 0)
            .ok_or(GqError::InvalidExponent)?;
        let t = security_bits.div_ceil(bits_per_round);
        let v_bytes = bits_per_round.div_ceil(8);
        let r_bits = v_bytes
            .checked_mul(8)
            .ok_or(GqError::Internal("challenge size overflow"))?;
        let n_bytes = n_bits.div_ceil(8);
        if t == 0 {
            return Err(GqError::Internal("zero GQ rounds"));
        }

        Ok(Self {
            // n is public, so the variable-time setup leaks nothing.
            monty: BoxedMontyParams::new_vartime(n_odd),
            v: e.clone(),
            v_bits,
            n_bytes: to_usize(n_bytes)?,
            v_bytes: to_usize(v_bytes)?,
            r_bits,
            t: to_usize(t)?,
        })
    }

    /// Length of R: t·vBytes.
    fn r_len(&self) -> Result<usize, GqError> {
        self.t
            .checked_mul(self.v_bytes)
            .ok_or(GqError::Internal("proof size overflow"))
    }

    /// Length of S: t·nBytes.
    fn s_len(&self) -> Result<usize, GqError> {
        self.t
            .checked_mul(self.n_bytes)
            .ok_or(GqError::Internal("proof size overflow"))
    }

    /// Length of a whole proof R ‖ S (§4.3 step 10).
    fn proof_len(&self) -> Result<usize, GqError> {
        self.r_len()?
            .checked_add(self.s_len()?)
            .ok_or(GqError::Internal("proof size overflow"))
    }

    fn precision(&self) -> u32 {
        self.monty.bits_precision()
    }

    fn modulus(&self) -> &BoxedUint {
        self.monty.modulus().as_ref()
    }

    /// OS2IP of a big-endian byte string at the precision of n, unreduced.
    fn decode(&self, bytes: &[u8]) -> Result<BoxedUint, GqError> {
        BoxedUint::from_be_slice(bytes, self.precision())
            .map_err(|_| GqError::Internal("integer longer than the modulus"))
    }

    /// Draws t nonces uniformly from [1, n) with the system RNG (§4.3 step 6).
    fn draw_nonces(&self) -> Result<Zeroizing<Vec<BoxedUint>>, GqError> {
        let n = self.monty.modulus().as_nz_ref();
        let mut nonces = Zeroizing::new(Vec::with_capacity(self.t));
        for _ in 0..self.t {
            let mut drawn = None;
            for _ in 0..MAX_NONCE_ATTEMPTS {
                let r = BoxedUint::try_random_mod_vartime(&mut getrandom::SysRng, n)
                    .map_err(|_| GqError::Randomness)?;
                // Go allows 0, but then S_i = 0, which every verifier rejects (§4.4 step 7).
                if !r.is_zero().to_bool() {
                    drawn = Some(r);
                    break;
                }
            }
            nonces.push(drawn.ok_or(GqError::Randomness)?);
        }
        Ok(nonces)
    }
}

fn to_usize(x: u32) -> Result<usize, GqError> {
    usize::try_from(x).map_err(|_| GqError::Internal("size does not fit usize"))
}

/// I2OSP(x, len): the big-endian encoding of x, exactly `len` bytes.
fn i2osp(x: &BoxedUint, len: usize) -> Result<Vec<u8>, GqError> {
    let bytes = x.to_be_bytes();
    let skip = bytes
        .len()
        .checked_sub(len)
        .ok_or(GqError::Internal("I2OSP length above precision"))?;
    let (high, low) = bytes
        .split_at_checked(skip)
        .ok_or(GqError::Internal("I2OSP split"))?;
    // Values here are reduced mod n, so the bytes above nBytes are zero.
    if high.iter().any(|b| *b != 0) {
        return Err(GqError::Internal("I2OSP value too large"));
    }
    Ok(low.to_vec())
}

/// The production challenge hash: SHAKE256 over the parts, `len` bytes out (§4.1, Go `hash`).
fn shake256_challenge(len: usize, parts: &[&[u8]]) -> Vec<u8> {
    let mut xof = shake::Shake256::default();
    for part in parts {
        xof.update(part);
    }
    let mut out = vec![0u8; len];
    xof.finalize_xof().read(&mut out);
    out
}

/// GQ1 signing core, §4.3 steps 6–10: returns the proof R ‖ S.
///
/// `q` is the private number Q = σ⁻¹ mod n in Montgomery form; `nonces` are the t values r_i,
/// each in [0, n) at the precision of n, drawn by the caller (fixed in the ISO test).
pub(crate) fn sign_core(
    params: &GqParams,
    q: &BoxedMontyForm,
    nonces: &[BoxedUint],
    message: &[u8],
    hash: ChallengeHash,
) -> Result<Vec<u8>, GqError> {
    if nonces.len() != params.t {
        return Err(GqError::Internal("wrong number of nonces"));
    }
    if q.params() != &params.monty {
        return Err(GqError::Internal("private number for another modulus"));
    }
    let r_len = params.r_len()?;

    // Step 7: W = ‖ I2OSP(r_i^v mod n, nBytes). W is what the verifier recomputes, so public.
    let mut w = Vec::with_capacity(params.s_len()?);
    let mut r_monty = Vec::with_capacity(params.t);
    for r in nonces {
        if r.bits_precision() != params.precision() || r >= params.modulus() {
            return Err(GqError::Internal(
                "nonce not reduced at the modulus precision",
            ));
        }
        let r_m = BoxedMontyForm::new(r.clone(), &params.monty);
        let w_i = r_m.pow_bounded_exp(&params.v, params.v_bits).retrieve();
        w.extend_from_slice(&i2osp(&w_i, params.n_bytes)?);
        r_monty.push(r_m);
    }

    // Step 8: R = H(t·vBytes, W, M).
    let r_bytes = hash(r_len, &[&w, message]);
    if r_bytes.len() != r_len {
        return Err(GqError::Internal(
            "challenge hash returned the wrong length",
        ));
    }

    // Step 9: S_i = r_i · Q^(R_i) mod n. R_i is public, so bounding the exponent by its public
    // size 8·vBytes leaks nothing and saves the full-width walk (dependencies.md pitfall 8).
    let mut proof = Vec::with_capacity(params.proof_len()?);
    proof.extend_from_slice(&r_bytes);
    for (chunk, r_m) in r_bytes.chunks_exact(params.v_bytes).zip(&r_monty) {
        let r_i = params.decode(chunk)?;
        let mut q_r = q.pow_bounded_exp(&r_i, params.r_bits);
        let s_i = r_m.mul(&q_r).retrieve();
        q_r.zeroize();
        proof.extend_from_slice(&i2osp(&s_i, params.n_bytes)?);
    }
    for r_m in &mut r_monty {
        r_m.zeroize();
    }
    // Step 10: the proof R ‖ S.
    Ok(proof)
}

/// GQ1 verification core, §4.4 steps 5–8.
///
/// `g` is the public number G, the nBytes-long encoding of the identity (PKCS#1 v1.5 in
/// production, hard-coded in the ISO test); `proof` is the decoded R ‖ S.
pub(crate) fn verify_core(
    params: &GqParams,
    g: &[u8],
    message: &[u8],
    proof: &[u8],
    hash: ChallengeHash,
) -> Result<(), GqError> {
    // Step 5: exact length, then R = bin[0 : t·vBytes], S = the rest.
    let expected = params.proof_len()?;
    if proof.len() != expected {
        return Err(GqError::ProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (r_bytes, s_bytes) = proof
        .split_at_checked(params.r_len()?)
        .ok_or(GqError::Internal("proof split"))?;

    // G < 2^(8·nBytes - 7) may still exceed n when n's top byte is 1; reduce it (public).
    let g = params
        .decode(g)?
        .rem_vartime(params.monty.modulus().as_nz_ref());
    if g.bits_precision() != params.precision() {
        return Err(GqError::Internal("reduced G has another precision"));
    }
    let g_m = BoxedMontyForm::new(g, &params.monty);

    // Step 7: W*_i = S_i^v · G^(R_i) mod n, rejecting S_i = 0 or S_i >= n like Go.
    let mut w_star = Vec::with_capacity(params.s_len()?);
    for (r_chunk, s_chunk) in r_bytes
        .chunks_exact(params.v_bytes)
        .zip(s_bytes.chunks_exact(params.n_bytes))
    {
        let s_i = params.decode(s_chunk)?;
        if s_i.is_zero().to_bool() || s_i >= *params.modulus() {
            return Err(GqError::ScalarOutOfRange);
        }
        let r_i = params.decode(r_chunk)?;
        let w_i = BoxedMontyForm::new(s_i, &params.monty)
            .pow_bounded_exp(&params.v, params.v_bits)
            .mul(&g_m.pow_bounded_exp(&r_i, params.r_bits))
            .retrieve();
        w_star.extend_from_slice(&i2osp(&w_i, params.n_bytes)?);
    }

    // Step 8: accept iff H(t·vBytes, W*, M) == R, compared in constant time.
    let r_star = hash(r_bytes.len(), &[&w_star, message]);
    if bool::from(r_star.as_slice().ct_eq(r_bytes)) {
        Ok(())
    } else {
        Err(GqError::BadSignature)
    }
}

/// G for §4.4 step 6: EMSA-PKCS1-v1_5 of SHA-256(identity), nBytes long:
/// `00 01 FF…FF 00 DigestInfoSHA256 SHA-256(identity)`, with nBytes − 54 bytes of FF.
fn emsa_pkcs1_v15_sha256(identity: &[u8], n_bytes: usize) -> Result<Vec<u8>, GqError> {
    let digest = Sha256::digest(identity);
    let fixed = 3 + SHA256_DIGEST_INFO.len() + digest.len();
    // RFC 8017 §9.2 step 3 asks for at least 8 bytes of FF; the 1024-bit minimum gives 74.
    let ps_len = n_bytes
        .checked_sub(fixed)
        .filter(|len| *len >= 8)
        .ok_or(GqError::Internal("modulus too short for PKCS#1 v1.5"))?;
    let mut em = Vec::with_capacity(n_bytes);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + ps_len, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(&digest);
    Ok(em)
}

/// RFC 7638 SHA-256 thumbprint of an RSA key, B64U: the GQ header's `jkt` (§4.2).
pub(crate) fn rsa_jwk_thumbprint(key: &PublicKey) -> String {
    crate::rsa_jwk::thumbprint(key)
}

fn b64_decode_strict(text: &str) -> Option<Vec<u8>> {
    b64::decode_url_strict(text).ok()
}

/// The GQ protected header as GoJSON (§4.2): `alg`, `jkt`, `kid`, `typ` and the extra members,
/// keys sorted byte-wise, compact.
fn gq_header_json(
    orig_hdr_seg: &str,
    jkt: &str,
    extra: &[(&str, &str)],
) -> Result<String, GqError> {
    let mut members: Vec<(&str, &str)> = vec![
        ("alg", "GQ256"),
        ("jkt", jkt),
        ("kid", orig_hdr_seg),
        ("typ", "JWT"),
    ];
    for &(name, value) in extra {
        if RESERVED_HEADER_NAMES.contains(&name) {
            return Err(GqError::ReservedClaimName(name.to_owned()));
        }
        // jwx writes header names unescaped while Go escapes values (§1.3): accept only names
        // for which both agree, so our bytes match Go's.
        let mut escaped = String::new();
        gojson::push_string(&mut escaped, name);
        if name.is_empty() || escaped.len() != name.len().saturating_add(2) {
            return Err(GqError::UnsupportedClaimName(name.to_owned()));
        }
        if members.iter().any(|(n, _)| *n == name) {
            return Err(GqError::DuplicateClaimName(name.to_owned()));
        }
        members.push((name, value));
    }
    // `str` orders by UTF-8 bytes, which is Go's map-key order.
    members.sort_by(|a, b| a.0.cmp(b.0));

    let mut json = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        gojson::push_string(&mut json, name);
        json.push(':');
        gojson::push_string(&mut json, value);
    }
    json.push('}');
    Ok(json)
}

/// Splits a compact JWS into exactly three segments.
fn split_compact(token: &str) -> Result<(&str, &str, &str), GqError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(GqError::TokenNotCompact),
    }
}

/// Strict-base64url-decodes a header segment and parses it as a JSON object.
fn decode_json_object(
    segment: &str,
    not_base64: GqError,
    not_json: GqError,
) -> Result<Map<String, Value>, GqError> {
    let bytes = b64_decode_strict(segment).ok_or(not_base64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(not_json),
    }
}

/// The header's `alg` if it is a string.
fn header_alg(header: &Map<String, Value>) -> Option<&str> {
    header.get("alg").and_then(Value::as_str)
}

/// Requires the original ID token header's `alg` to be exactly RS256 (§4.1): PS256's random salt
/// makes the encoded identity G unpredictable, so GQ cannot use it.
fn require_rs256(header: &Map<String, Value>) -> Result<(), GqError> {
    match header_alg(header) {
        Some("RS256") => Ok(()),
        other => Err(GqError::OriginalAlgNotRs256 {
            alg: other.map(str::to_owned),
        }),
    }
}

/// GQ-signs an RS256 ID token (§4.3) and returns the GQ256 token `gqHdr.payload.proof`.
///
/// `id_token` is the compact `hdr.payload.sig` the OP issued, `op_key` the OP's RSA key (found by
/// the header's `kid`), and `extra_claims` further GQ header members such as `("cic", hash)`
/// for GQ-bound providers. The RS256 signature is checked first, so a wrong key fails here rather
/// than producing a token nobody can verify.
///
/// # Errors
/// Any malformed segment, an `alg` other than RS256, a signature that does not verify with
/// `op_key`, a key unusable for GQ, a reserved, duplicated or unusual extra member name, or an RNG
/// failure.
pub fn sign_id_token(
    id_token: &str,
    op_key: &PublicKey,
    extra_claims: &[(&str, &str)],
) -> Result<String, GqError> {
    let (hdr_seg, payload_seg, sig_seg) = split_compact(id_token)?;
    let header = decode_json_object(hdr_seg, GqError::HeaderNotBase64, GqError::HeaderNotJson)?;
    require_rs256(&header)?;
    b64_decode_strict(payload_seg).ok_or(GqError::PayloadNotBase64)?;
    let sig = Zeroizing::new(b64_decode_strict(sig_seg).ok_or(GqError::SignatureNotBase64)?);

    // Step 1: the token must really be signed by this key.
    let signature = Pkcs1v15Signature::try_from(sig.as_slice())
        .map_err(|_| GqError::OriginalSignatureInvalid)?;
    Pkcs1v15VerifyingKey::<Sha256>::new(op_key.clone())
        .verify(format!("{hdr_seg}.{payload_seg}").as_bytes(), &signature)
        .map_err(|_| GqError::OriginalSignatureInvalid)?;

    let params = GqParams::from_rsa_key(op_key)?;
    // Step 4 (before the expensive part, so bad extra members fail fast).
    let jkt = rsa_jwk_thumbprint(op_key);
    let gq_hdr_seg = b64::encode_url(gq_header_json(hdr_seg, &jkt, extra_claims)?.as_bytes());

    // Steps 2-3: σ = OS2IP(sig), Q = σ⁻¹ mod n. The inverse is constant-time (safegcd), which
    // stands in for Go's blinding; σ was already checked to be below n by the RSA verify.
    let sigma = Zeroizing::new(
        params
            .decode(&sig)
            .map_err(|_| GqError::SignatureNotInvertible)?,
    );
    if *sigma >= *params.modulus() {
        return Err(GqError::SignatureNotInvertible);
    }
    let sigma_m = Zeroizing::new(BoxedMontyForm::new((*sigma).clone(), &params.monty));
    let q = Zeroizing::new(
        sigma_m
            .invert()
            .into_option()
            .ok_or(GqError::SignatureNotInvertible)?,
    );

    // Step 5: since v0.25 the message is the GQ header with the payload (security item 4), so
    // jkt, cic and any extra member are covered by the proof.
    let message = format!("{gq_hdr_seg}.{payload_seg}");
    let nonces = params.draw_nonces()?;
    let proof = sign_core(&params, &q, &nonces, message.as_bytes(), shake256_challenge)?;
    Ok(format!("{message}.{}", b64::encode_url(proof)))
}

/// The original ID token's header segment, i.e. the GQ header's `kid` (§4.2, §4.5), so the
/// caller can decode it and look up the OP key by the `kid` inside.
///
/// # Errors
/// The header is not strict base64url JSON, its `alg` is not GQ256, or its `kid` is missing or
/// not strict base64url.
pub fn original_header_segment(header_seg: &str) -> Result<String, GqError> {
    let header = decode_json_object(header_seg, GqError::HeaderNotBase64, GqError::HeaderNotJson)?;
    match header_alg(&header) {
        Some("GQ256") => {}
        other => {
            return Err(GqError::HeaderAlgNotGq256 {
                alg: other.map(str::to_owned),
            });
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(GqError::MissingKid)?;
    b64_decode_strict(kid).ok_or(GqError::KidNotBase64)?;
    Ok(kid.to_owned())
}

/// Verifies a GQ256 token (§4.4) given as its three segments, with the OP's RSA key.
///
/// The identity is `origHdrSeg.payloadSeg` (what the OP signed) and the message
/// `gqHdrSeg.payloadSeg` (post-v0.25): tokens made before openpubkey v0.25 do not verify. The
/// `jkt` is not checked; key selection is the caller's business (§4.5).
///
/// # Errors
/// `BadSignature` if the proof does not verify; otherwise the specific malformation found.
pub fn verify_token(
    header_seg: &str,
    payload_seg: &str,
    proof_seg: &str,
    op_key: &PublicKey,
) -> Result<(), GqError> {
    // Steps 1-2 and §4.5: alg GQ256, kid = original header, whose alg must be RS256.
    let orig_hdr_seg = original_header_segment(header_seg)?;
    let orig_header = decode_json_object(
        &orig_hdr_seg,
        GqError::KidNotBase64,
        GqError::OriginalHeaderNotJson,
    )?;
    require_rs256(&orig_header)?;
    b64_decode_strict(payload_seg).ok_or(GqError::PayloadNotBase64)?;

    let params = GqParams::from_rsa_key(op_key)?;
    let proof = b64_decode_strict(proof_seg).ok_or(GqError::ProofNotBase64)?;

    // Steps 3, 4, 6.
    let identity = format!("{orig_hdr_seg}.{payload_seg}");
    let g = emsa_pkcs1_v15_sha256(identity.as_bytes(), params.n_bytes)?;
    let message = format!("{header_seg}.{payload_seg}");
    verify_core(&params, &g, message.as_bytes(), &proof, shake256_challenge)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a test failure"
)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // ---- ISO/IEC 14888-2:2008 GQ1 example, as in openpubkey gq/gq_iso_test.go (§4.8) ----

    const ISO_N: &str = "D37B4534B4B788AE23E1E4719A395BBFF8A98EDBDCB3992306C513AAA95E9A335221998C20CD1344CA50C59193B84437FFC1E91E5EBEF9587615875102A7E83624DA4F72CAF28D1DF429652346D6F203E17C65288790F6F6D97835216B49F5932728A967D6D36561621FF38DFC185DFA5A160962E7C8E087CE90897B16EA4EA1";
    const ISO_V: &str = "010000000000000000000D";
    const ISO_Q: &str = "3BED38CEBB1219BC068774E0E2655CDEF67FE547BCF2D9FA9FE167B1E63B2F101A1483D38A8F24EDE365A3E44F4F10ADECEA7B30D042C14C162477B8184AE6CFAA78441B1FDFB0B223ABCD528B61F313D859FCF9C26FCAF9E4D9DA9BA83E9D2FDA041E8CCBF90056C31D654B546C1A7F6729A8DD8E68512F39E3B6F07959CE61";
    const ISO_G: &str = "3E641A22D0D0747D4ACC71884D3DFF2B2ADFDC1703B5A74EFD8333AB8C4377BB2A9B48E707F73409ABFBCD2DED69F52B16A145CE062FE6BD712C1952110DFB2316C5F3F321922ED375A4DEB8C41FA79BCAD86B0EA0D8FF02C9D0D5911BFF1E87DBCF073F71F18C08EB944AE84883A1E13FB1DEA123B5B1EFEA2A92635BD5D88F";
    const ISO_R: &str = "487CDB0041BEED0323FDD3DEC8542584FA0E6CB990FAD5878DB34E9BEDDC95B65D22790C108E218407ED7F7D686657BAB5A28EF81C2E24985B56E37D9934E195A38A835CC02CEE8EBA2F56C87663E332976F5A3720DACA120BCD3DF0AEF6FD78582EBFCEE6D05E06172A871EAB0E8F5FC22DDB600F541B87CF8E147358374406";
    const ISO_SIG: &str = "99394F1D15924C0374CF80C7274CD9F232903A6423D9327156F69743EAEF03E1EFEDFDA8474C97F6570D9EF53C6CE2AE2BA68D01FFF9AA82068214BCD775B95CC297DDC38A63741AB3166B58275E0FB728D26DB18A2C3F14B621CF3863F8648B3149FE896348BE73D37E2F06E6E26C84C044984C09C658300B58EC2383E3B0A1F1390D62B772A69F37B5";
    const ISO_M: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopqo";

    /// Minimal SHA-1 (FIPS 180-4), only for the ISO example's hash; not worth a dependency.
    fn sha1(data: &[u8]) -> [u8; 20] {
        let mut h: [u32; 5] = [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ];
        let mut msg = data.to_vec();
        let bit_len = (data.len() as u64) * 8;
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&bit_len.to_be_bytes());
        for block in msg.chunks_exact(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes(word.try_into().unwrap());
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                    20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                    _ => (b ^ c ^ d, 0xCA62_C1D6),
                };
                let temp = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                e = d;
                d = c;
                c = b.rotate_left(30);
                b = a;
                a = temp;
            }
            for (hi, x) in h.iter_mut().zip([a, b, c, d, e]) {
                *hi = hi.wrapping_add(x);
            }
        }
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[test]
    fn sha1_known_answers() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex::encode(sha1(long)),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    /// The ISO example's hash: SHA-1 of the parts, truncated to `len` bytes.
    fn sha1_truncated(len: usize, parts: &[&[u8]]) -> Vec<u8> {
        let digest = sha1(&parts.concat());
        digest[..len].to_vec()
    }

    fn iso_params() -> GqParams {
        let n = BoxedUint::from_be_slice_vartime(&hex(ISO_N));
        let v = BoxedUint::from_be_slice_vartime(&hex(ISO_V));
        // v has 81 bits, so security 80 gives the example's t = 1 with vBytes = 10.
        let params = GqParams::with_security_bits(&n, &v, 80).unwrap();
        assert_eq!(
            (params.t, params.v_bytes, params.n_bytes, params.v_bits),
            (1, 10, 128, 81)
        );
        params
    }

    #[test]
    fn iso_example_sign_reproduces_expected_proof() {
        let params = iso_params();
        let q = BoxedMontyForm::new(params.decode(&hex(ISO_Q)).unwrap(), &params.monty);
        let r = params.decode(&hex(ISO_R)).unwrap();
        let proof = sign_core(&params, &q, &[r], ISO_M, sha1_truncated).unwrap();
        assert_eq!(proof.len(), 138);
        assert_eq!(hex::encode_upper(&proof), ISO_SIG);
    }

    #[test]
    fn iso_example_q_matches_g() {
        // Q^v · G ≡ 1 (mod n): Q really is the private number for G.
        let params = iso_params();
        let q = BoxedMontyForm::new(params.decode(&hex(ISO_Q)).unwrap(), &params.monty);
        let g = BoxedMontyForm::new(params.decode(&hex(ISO_G)).unwrap(), &params.monty);
        let one = q.pow_bounded_exp(&params.v, params.v_bits).mul(&g);
        assert_eq!(
            one.retrieve(),
            BoxedUint::one_with_precision(params.precision())
        );
    }

    #[test]
    fn iso_example_verifies_and_bit_flips_fail() {
        let params = iso_params();
        let g = hex(ISO_G);
        let proof = hex(ISO_SIG);
        verify_core(&params, &g, ISO_M, &proof, sha1_truncated).unwrap();

        for bit in [0, 7, 79, 80, 600, 138 * 8 - 1] {
            let mut bad = proof.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = verify_core(&params, &g, ISO_M, &bad, sha1_truncated).unwrap_err();
            assert!(
                matches!(err, GqError::BadSignature | GqError::ScalarOutOfRange),
                "bit {bit}: {err:?}"
            );
        }
        let mut other_message = ISO_M.to_vec();
        other_message[0] ^= 1;
        assert_eq!(
            verify_core(&params, &g, &other_message, &proof, sha1_truncated),
            Err(GqError::BadSignature)
        );
        assert_eq!(
            verify_core(&params, &g, ISO_M, &proof[1..], sha1_truncated),
            Err(GqError::ProofLength {
                expected: 138,
                actual: 137
            })
        );
    }

    // ---- Parameters (§4.1) ----

    fn small_n() -> BoxedUint {
        BoxedUint::from_be_slice_vartime(&hex(ISO_N))
    }

    #[test]
    fn t_follows_the_exponent() {
        for (e, t, v_bytes) in [
            (65537u32, 16, 2),
            (257, 32, 1),
            (17, 64, 1),
            (5, 128, 1),
            (3, 256, 1),
        ] {
            let params = GqParams::new(&small_n(), &BoxedUint::from(e)).unwrap();
            assert_eq!((params.t, params.v_bytes), (t, v_bytes), "e = {e}");
            assert_eq!(params.n_bytes, 128);
        }
    }

    #[test]
    fn bad_exponents_are_rejected() {
        for e in [0u32, 1, 2, 4, 6, 65536] {
            assert_eq!(
                GqParams::new(&small_n(), &BoxedUint::from(e)).unwrap_err(),
                GqError::InvalidExponent,
                "e = {e}"
            );
        }
        // e >= n cannot come from a valid RSA key.
        let n = small_n();
        assert_eq!(GqParams::new(&n, &n).unwrap_err(), GqError::InvalidExponent);
    }

    #[test]
    fn bad_moduli_are_rejected() {
        let e = BoxedUint::from(65537u32);
        let mut even = hex(ISO_N);
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(
            GqParams::new(&BoxedUint::from_be_slice_vartime(&even), &e).unwrap_err(),
            GqError::ModulusInvalid
        );
        let short = BoxedUint::from_be_slice_vartime(&hex(ISO_N)[1..]);
        assert_eq!(
            GqParams::new(&short, &e).unwrap_err(),
            GqError::ModulusTooSmall { bits: 1015 }
        );
        let huge = BoxedUint::from_be_slice_vartime(&[0xffu8; 1025]);
        assert_eq!(
            GqParams::new(&huge, &e).unwrap_err(),
            GqError::ModulusTooLarge { bits: 8200 }
        );
    }

    // ---- JWT level with fixed RSA test keys (made once with `openssl genpkey`) ----

    const TEST_KEY_E65537: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDFyqiTqgbGrx+M\n\
Hh9uiUCrlhY4qGWAmV4odhOuYHAiibgOZgxbvR4Q197YezhsfAaL9YUzvaZ3M0JH\n\
U6iZt2lHHsyXm7dp2iwsexH8UbW8x7Q/fyTQYP7oHzedzvYhkJc6HOu1MXezGnWo\n\
UErFfJ8IBhxETjwAVKYFthXRRvQnZwS70pikVxTUwLC0rsJPC5lAZPJ8UYhH79aG\n\
8GvIosIOEbthiMc3E43h3bSDHx+wa2mmVfCvEUQcKhn72RSvsAHakEbC5VLz7irn\n\
H6b5gsgoCaSQcQ0KTRbDchQKNzJQH6z5UjxrX9fur9agJTvuunfYSCd2JRZMVoqy\n\
uCKeDA/lAgMBAAECggEABn6pGnAy2MNXXdp/XbnUDc5X3HRrINXoaZu2+brg88Fh\n\
8dcYAMss+ZCdGK6zI5zO+jmNri1EEhX0zzLIDoQfSN6SCUhrtWYcnTlNVeO4/AHy\n\
wUMDinQk6qpbwSrSmjeNP7NDaie9rnvn8SbxzZpR/ol01CldfwVIjld0T/LsgX6p\n\
slU+NiMw+IEcbkeeSaL06f38VM7SAzLiiNx3Vzc+jki0Ps+2zL5XP88aoRyZiYCv\n\
UPlX2uOjZvl9UnKZqwr/F2H8LuP7qSI4kiggnfs3Lkv4IKVoguJTZdQEd9YecKxd\n\
/4Swi3oajI/d50fvO65jNIdf0X7NL8rxb36XY6ED4QKBgQDvxGXPsgJBbruQ3puN\n\
/eHyj8jw33zJnTP6uw6w3iUgqtYnan5mMH0DybZrZ6CRX2fWfsk5sW20fuqDX2bL\n\
WnX43hSIpPNen3hdm2Y0WnV7HnFSCIVKHWyU8R7xoe5lAHbfTRhOqz/WJRRFVEU/\n\
4vbj+rNAi91RIitMtLljinyGIwKBgQDTLr+EBiZMxeQuLwzzdDoAgpWLRdqYXB0y\n\
55lhBU5P1nkixgjChIyMN8EqoNH8763Tq8D1TDZSZXgtdW/kvGd2JUb599vDL5jP\n\
oUq5RSOG6N0HwFzfcNJvuLL67imaEIPYoXAqo0KAhMzC4n8XNt9O/4j2/XpdmX/L\n\
gF7/hqo+VwKBgErix33ANk4jfLe5n1IQ6qIs4HDDDKGX1OVJyUPajjQOx4ZWD5Zx\n\
LIqjVLNlEVR2PONUhBrd3MrUHQDdKij3XwNUsYsgIdb67cgmwhw16J2Em5YojSDh\n\
4cj/KlAD6IZpR7dkx+PCPtTujc89i8dxZvU7lwLg7EXr6yQxCfoaBdyLAoGBAKZK\n\
y3gUt5gAxBsx5YrXXM0GBufyi50p+7wX7wkc+nuXsS+WrVMuuNW5GZyNooz/1us0\n\
9e6yopvjVuzE6uU9DmNUGz2+1QgvtK7anVKihMU5HMN70CYKW0qqMBWz8IJmusuc\n\
5AxPHpDBAdP8MoN/K/yy75E+LFsEAkOmxCeGTQxlAoGBANEDxqqc23uTDhnQA2lB\n\
wAxk6lDbDcCcFMrdoRKv4WsxLilLLeQY4i7FQIKSasEygTuDbfYelhmuMOtfA0V0\n\
Ukjr+9D+5wToxiQKg88jep/nktxtUx/zdjULpWEz6nM/b1JgwmG3659EnYHwTifO\n\
lrrtdJQi9Fe5eOPCzHzS9k9o\n\
-----END PRIVATE KEY-----";
    const TEST_KEY_E3: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDLYUF0NrhCKHmj\n\
IEP6+ljox/j1bBwgBURPSqFZ2ijJX0Mrh4QQHuhLxFhXS5YFJGXBXuoEtMNwSIi6\n\
5awdDM3d/qyNLt+Fa8umvPte5jDjrZ9ZUac4IClHQ08J4H266U6YDdQ4s4FtLvy/\n\
3d+Yts+sczp8S3vA+rdXuXoJDMU0wtZnO3CxJi8X/LOrnGDp1rZQ5Veabdad+4kx\n\
dONU6u3yH+vRgzA2ivzPMdB7TFjbIr8/CZbOL8jrZwaZCc025O2BnLmaIbKShCLi\n\
lLHAL0ZkRxKDPO2PFHwJ9Idhyw94XauwrQfrCZfWjSxySW55DkIrTqv8CY91MYyp\n\
KGCL1vQXAgEDAoIBAQCHliuizyWBcFEXatf8puXwhVCjnWgVWNg03GuRPBsw6izH\n\
r61gFJrdLZA6MmQDbZkrlJwDIyz1hbB8mR1oszPpVHMIyepY8ofEffzp7stCc7+Q\n\
4RolasYvgjSxQFPR8N8QCTglzQDzdKh/6T+7JIpy93xS3P0rUc+P0PwGCIN4gLOd\n\
qCn1DWZvZCAcrLew0gYZ2TLDhBEUmpYLlJWaGqJL/uB3iKr975eDkztgTBJtKKX4\n\
xEnUsBlQ1iotGUVSMzDg3Xr5bvzDnBZ3XdC4FroeVrYcI9uxvECRs+DUNH8zyu+C\n\
vm6rBSoQeG7Spv9bx2JzF8bAfl4lmE+l01t52gBbAoGBAPBrPwOGXCOxopXcpDkv\n\
7XeyaXGggk9JO9YEUiOL/yd0lLM726skmWNvjrKjVsmUFvcnaRUrVPAWewXdIkgX\n\
gw+7fwKNZmO9MHMKLWtyUnh3e2+Fy1veAAnQrlAHEkYBVU6B7hDIN/wiHmPyutq3\n\
PF/FXWzPIza2SqinRa4OtEb7AoGBANiPgC47NfG/Q+2j9RQwrjV3thnUpW2119Ib\n\
w99hw9MLjOfiWoSVCjYaRkTHg3OjTs8iehLj0rLbqsF4QZ0kFRR00X6WlNOv6Y4l\n\
Wo05ura/SZHTO8gmehFeuGYcagqpV/XqoVEiSdybuiJDlBS4Js65TZUMKMuGgmyJ\n\
JalGW6yVAoGBAKBHf1eu6BfLwbk9wtDKnk/MRkvAVt+GJ+QC4W0H/2+jDczSknIY\n\
ZkJKXyHCOdu4D09vm2NyOKAO/K6TbDAPrLUnqgGzmZfTdaIGyPJMNvr6UkpZMj0+\n\
qrE1yYqvYYQA44mr9AswJVLBaZf3Jzx6KD/Y6PM0wiR5hxsaLnQJzYSnAoGBAJBf\n\
qsl8zqEqLUkX+LggdCOlJBE4bkkj5Ta9LT+WgoyyXe/sPFhjXCQRhC3aV6Js3zTB\n\
prdCjHc9HID61mjCuLhN4P8PDeJ1Rl7DkbN70c8qMQviJ9rEUWDp0EQS8Vxw5U6c\n\
a4tsMT29JsGCYrh6xInQ3mNdcIevAZ2ww8Yu58hjAoGBANlDup0Xcp6uqg898usI\n\
r4+jxa0RFs8xwrsGknHRw/+DgY8utSyCPuEFcqNu/7YIyhXLcEgJblu2v8toK/+9\n\
3tkMnrCmBcmndO/TxvLdfr9R2O5WwwB4PKWieeX+Z4tqwLJpBAqs0pWIe4FyI6a2\n\
TS9LYdqB0eqw3za3I73SHZgt\n\
-----END PRIVATE KEY-----";
    const TEST_KEY_OTHER: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqBzczddDsoWpX\n\
vAZH/yRGol65/fm09wdS+8Vfbhpzkf5+7Q7Pv2hN9pUxn5UlAW/6Qv4Y670849Dk\n\
rTMP/1hEw+556Mmv7Bz96KjPEvcdOWYVhcNT+K8IGBS+3Q3liiGArhFjHdHD/NEy\n\
HlCkoN7TAQT3Yc7AlkTeq5UQZMVgjF0gDRz2+Qd594vPGQ7KSiEBALGopSdtOlVX\n\
XhWcVYxHmJC2Sk3nNqHpw63fip/w5kWoS+5gxDkEVV7EcQjK2EtH+jtNPtbMAvbL\n\
3ha3CZm9oecdBMF41kUD1lFam6N4MW/7MaKiRlLI5OPpYPnf8REZl78EgEqKAnub\n\
Bi1JIdRrAgMBAAECggEAKqIujD/BiGQdFyy1Yn4uaWuzVu3BHEhI1Nz+q6QfC9WS\n\
u97TNPJoxAvNcyjxq9rFajo8HqGVzNvO+FgZkqxTRMLgXD8ru2n4Bw68rVezEOfg\n\
mgr1ZGvZ76yiHw2su168cdiz0Webvon5JpkFXZJc7Qm3ZhRnVFEZqb/aW8b42vFN\n\
o4WAO9kRMZ/6GvleH1/IBW7/B9tkFquZUGQcGd1MdUbXZPWLUhYCE5WQjFhIdU3/\n\
a9F2w27jDZD+YtSXyhxwDm9f0lWSKZN3gTK3As2t1Ppn8zeQdUKmredvoiDz/CHG\n\
RNvpwyv29wKldpmsojB2TyViCvzzIs9KdhvmxD83UQKBgQDugubcncOPzh1L8h67\n\
ygczvr6CJ1avp/WO5C2ATXgSm1nYUbhrTBhetaEEz9CITC9lkHxnjg6rY+FfETe7\n\
Pq0+YWNINfsVCxlTmg/G44BMbefS4ZHh4A9OyZ0KQclRJ+seeYqmAnfni94DglRL\n\
FMoWhv3FU1tUNfNrjgOQc7FkaQKBgQC2ftDqqWraoVGhimOp9rafGT2FOESzd1G0\n\
nOL2xFntGZHSFbKEgKU3Ou7kKtYDDiBYcGgno/63qnQnxT+WQa8rE/52z5URg0JS\n\
+JFBvEBem9rXb4D2HD3fbXWWxY+42W5FUHPtO0B/Wbp1BEfAogoStbBXz5mseZCj\n\
wlJYSVPHswKBgFsSIJScqM+AJC+bg6Cww48+hf+sha0MtPaaqcUTz4VLTEMM8R4H\n\
MEb5k0IDF9zzOiXNxbLEy1UmDif+qwkUJZJsHTy1X+npEwKZEO0gcRy92obrGojk\n\
xPOQiCYieHxEgcJhJk+9IYuIHH26hfUlOwTfBocSDQ1ajFfFIhdGFbYBAoGAVcTa\n\
ST9gcepZZDOXTZ0fDT0elcrxNuuAIgOOA+4aWX2n8/WwleekPoXbGq8rL/pmp0oF\n\
GYRQxV8+AicJEIREYFmgQZSj+bwX4sjh8+QW2KAlRRUppgF17tkR589oEbdWxQrf\n\
wQIU+QVhxXdChb1iQJLVkx+FmPL1UJGWg9nKn1MCgYEAnqpjFbPIWlc5iar6cmS4\n\
cNTY7MB5062tAL+JeU74JKc23G8B1C9iuPmq+BeOgL9eyN3CCrL/mqzlpZ9DfNZy\n\
FazGY/pJilDhK1+QLdIFjF0mviXpceNqjUCyd7tXjj8QD1Q6ailKTZTaw+vMgA20\n\
Lb2+P/jm5eYky6CBmJUdfCk=\n\
-----END PRIVATE KEY-----";

    fn private_key(pem: &str) -> rsa::PrivateKey {
        use rsa::pkcs8::DecodePrivateKey as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = b64::decode_std(&body).unwrap();
        rsa::PrivateKey::from_pkcs8_der(&der).unwrap()
    }

    /// An RS256 ID token signed with `key`, with the given header JSON.
    fn id_token_with_header(key: &rsa::PrivateKey, header_json: &str) -> String {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let payload = r#"{"aud":"test","email":"arthur.aardvark@example.com","exp":4102444800,"iat":1700000000,"iss":"https://example.com","nonce":"abc","sub":"me"}"#;
        let input = format!(
            "{}.{}",
            b64::encode_url(header_json.as_bytes()),
            b64::encode_url(payload.as_bytes())
        );
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
        let sig = signer.sign(input.as_bytes()).to_vec();
        format!("{input}.{}", b64::encode_url(sig))
    }

    fn id_token(key: &rsa::PrivateKey) -> String {
        id_token_with_header(key, r#"{"alg":"RS256","kid":"test-kid","typ":"JWT"}"#)
    }

    fn verify_compact(token: &str, key: &PublicKey) -> Result<(), GqError> {
        let (h, p, s) = split_compact(token).unwrap();
        verify_token(h, p, s, key)
    }

    /// Re-encodes a GQ header segment after replacing one string member.
    fn with_header_member(token: &str, name: &str, value: &str) -> String {
        let (h, p, s) = split_compact(token).unwrap();
        let mut header: Map<String, Value> =
            serde_json::from_slice(&b64_decode_strict(h).unwrap()).unwrap();
        header.insert(name.to_owned(), Value::String(value.to_owned()));
        let h = b64::encode_url(serde_json::to_string(&header).unwrap().as_bytes());
        format!("{h}.{p}.{s}")
    }

    #[test]
    fn rs256_round_trip() {
        let sk = private_key(TEST_KEY_E65537);
        let pk = PublicKey::from(&sk);
        let token = id_token(&sk);
        let (orig_hdr, orig_payload, _) = split_compact(&token).unwrap();

        let gq = sign_id_token(&token, &pk, &[]).unwrap();
        let (h, p, s) = split_compact(&gq).unwrap();
        assert_eq!(p, orig_payload);
        assert_eq!(s.len(), 5504, "§4.3 step 10");
        let header = String::from_utf8(b64_decode_strict(h).unwrap()).unwrap();
        let expected = format!(
            r#"{{"alg":"GQ256","jkt":"{}","kid":"{orig_hdr}","typ":"JWT"}}"#,
            rsa_jwk_thumbprint(&pk)
        );
        assert_eq!(header, expected);
        assert_eq!(original_header_segment(h).unwrap(), orig_hdr);

        verify_token(h, p, s, &pk).unwrap();
        // Fresh nonces every time, and both proofs verify.
        let gq2 = sign_id_token(&token, &pk, &[]).unwrap();
        assert_ne!(gq, gq2);
        verify_compact(&gq2, &pk).unwrap();
    }

    #[test]
    fn tampering_fails() {
        let sk = private_key(TEST_KEY_E65537);
        let pk = PublicKey::from(&sk);
        let token = id_token(&sk);
        let cic = b64::encode_url(Sha256::digest(b"cic"));
        let gq = sign_id_token(&token, &pk, &[("cic", &cic)]).unwrap();
        verify_compact(&gq, &pk).unwrap();
        let (h, p, s) = split_compact(&gq).unwrap();
        let header = String::from_utf8(b64_decode_strict(h).unwrap()).unwrap();
        assert!(header.starts_with(r#"{"alg":"GQ256","cic":""#), "{header}");

        // Payload changed (still strict base64url).
        let other_payload = b64::encode_url(br#"{"sub":"mallory"}"#);
        assert_eq!(
            verify_token(h, &other_payload, s, &pk),
            Err(GqError::BadSignature)
        );
        // jkt and cic in the GQ header are covered since v0.25 (security item 4).
        let other = b64::encode_url(Sha256::digest(b"attacker"));
        for name in ["jkt", "cic"] {
            assert_eq!(
                verify_compact(&with_header_member(&gq, name, &other), &pk),
                Err(GqError::BadSignature),
                "{name}"
            );
        }
        // One proof bit, in R, in the low end of an S_i and at the very end.
        let proof = b64_decode_strict(s).unwrap();
        for bit in [0usize, 200, 32 * 8 + 2047, proof.len() * 8 - 1] {
            let mut bad = proof.clone();
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(
                verify_token(h, p, &b64::encode_url(bad), &pk),
                Err(GqError::BadSignature),
                "bit {bit}"
            );
        }
        // A different key.
        let other_pk = PublicKey::from(&private_key(TEST_KEY_OTHER));
        assert!(verify_token(h, p, s, &other_pk).is_err());
        assert_eq!(
            sign_id_token(&token, &other_pk, &[]),
            Err(GqError::OriginalSignatureInvalid)
        );
    }

    #[test]
    fn legacy_message_does_not_verify() {
        // Before v0.25 the message was origHdr.payload (§4.7); such proofs must fail now.
        let sk = private_key(TEST_KEY_E65537);
        let pk = PublicKey::from(&sk);
        let token = id_token(&sk);
        let (orig_hdr, payload, sig) = split_compact(&token).unwrap();
        let gq = sign_id_token(&token, &pk, &[]).unwrap();
        let (gq_hdr, _, _) = split_compact(&gq).unwrap();

        let params = GqParams::from_rsa_key(&pk).unwrap();
        let sigma = params.decode(&b64_decode_strict(sig).unwrap()).unwrap();
        let q = BoxedMontyForm::new(sigma, &params.monty)
            .invert()
            .into_option()
            .unwrap();
        let legacy_message = format!("{orig_hdr}.{payload}");
        let nonces = params.draw_nonces().unwrap();
        let proof = sign_core(
            &params,
            &q,
            &nonces,
            legacy_message.as_bytes(),
            shake256_challenge,
        )
        .unwrap();
        assert_eq!(
            verify_token(gq_hdr, payload, &b64::encode_url(proof), &pk),
            Err(GqError::BadSignature)
        );
        // The same core with the current message does verify: only M differs.
        let message = format!("{gq_hdr}.{payload}");
        let proof =
            sign_core(&params, &q, &nonces, message.as_bytes(), shake256_challenge).unwrap();
        verify_token(gq_hdr, payload, &b64::encode_url(proof), &pk).unwrap();
    }

    #[test]
    fn ps256_is_rejected() {
        let sk = private_key(TEST_KEY_E65537);
        let pk = PublicKey::from(&sk);
        // The alg check comes before the signature check, so an RS256 signature will do.
        let token = id_token_with_header(&sk, r#"{"alg":"PS256","kid":"test-kid","typ":"JWT"}"#);
        assert_eq!(
            sign_id_token(&token, &pk, &[]),
            Err(GqError::OriginalAlgNotRs256 {
                alg: Some("PS256".into())
            })
        );
        let no_alg = id_token_with_header(&sk, r#"{"kid":"test-kid"}"#);
        assert_eq!(
            sign_id_token(&no_alg, &pk, &[]),
            Err(GqError::OriginalAlgNotRs256 { alg: None })
        );

        // Verify side: a GQ header whose kid names a PS256 original header.
        let gq = sign_id_token(&id_token(&sk), &pk, &[]).unwrap();
        let ps_hdr = b64::encode_url(br#"{"alg":"PS256","kid":"test-kid","typ":"JWT"}"#);
        assert_eq!(
            verify_compact(&with_header_member(&gq, "kid", &ps_hdr), &pk),
            Err(GqError::OriginalAlgNotRs256 {
                alg: Some("PS256".into())
            })
        );
    }

    #[test]
    fn exponent_three_round_trip() {
        let sk = private_key(TEST_KEY_E3);
        let pk = PublicKey::from(&sk);
        assert_eq!(pk.e(), &BoxedUint::from(3u8));
        let token = id_token(&sk);
        let gq = sign_id_token(&token, &pk, &[]).unwrap();
        let (h, p, s) = split_compact(&gq).unwrap();
        // t = 256, vBytes = 1, nBytes = 256.
        assert_eq!(b64_decode_strict(s).unwrap().len(), 256 + 256 * 256);
        verify_token(h, p, s, &pk).unwrap();
        let mut proof = b64_decode_strict(s).unwrap();
        proof[3] ^= 1;
        assert_eq!(
            verify_token(h, p, &b64::encode_url(&proof), &pk),
            Err(GqError::BadSignature)
        );
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let sk = private_key(TEST_KEY_E65537);
        let pk = PublicKey::from(&sk);
        let token = id_token(&sk);
        let gq = sign_id_token(&token, &pk, &[]).unwrap();
        let (h, p, s) = split_compact(&gq).unwrap();
        let params = GqParams::from_rsa_key(&pk).unwrap();

        // Signing: shape, encodings, reserved and odd member names.
        assert_eq!(
            sign_id_token("a.b", &pk, &[]),
            Err(GqError::TokenNotCompact)
        );
        assert_eq!(
            sign_id_token(&format!("{token}.x"), &pk, &[]),
            Err(GqError::TokenNotCompact)
        );
        assert_eq!(
            sign_id_token(&format!("{token}="), &pk, &[]),
            Err(GqError::SignatureNotBase64)
        );
        for name in ["alg", "jkt", "kid", "typ"] {
            assert_eq!(
                sign_id_token(&token, &pk, &[(name, "x")]),
                Err(GqError::ReservedClaimName(name.into()))
            );
        }
        for name in ["", "a\"b", "<x>", "a\nb"] {
            assert_eq!(
                sign_id_token(&token, &pk, &[(name, "x")]),
                Err(GqError::UnsupportedClaimName(name.into()))
            );
        }
        assert_eq!(
            sign_id_token(&token, &pk, &[("cic", "a"), ("cic", "b")]),
            Err(GqError::DuplicateClaimName("cic".into()))
        );

        // Verifying: header, kid, payload and proof encodings and ranges.
        assert_eq!(
            verify_token(&format!("{h}="), p, s, &pk),
            Err(GqError::HeaderNotBase64)
        );
        let rs_hdr = b64::encode_url(br#"{"alg":"RS256","kid":"x"}"#);
        assert_eq!(
            verify_token(&rs_hdr, p, s, &pk),
            Err(GqError::HeaderAlgNotGq256 {
                alg: Some("RS256".into())
            })
        );
        let no_kid = b64::encode_url(br#"{"alg":"GQ256"}"#);
        assert_eq!(verify_token(&no_kid, p, s, &pk), Err(GqError::MissingKid));
        let bad_kid = b64::encode_url(br#"{"alg":"GQ256","kid":"eyJ+"}"#);
        assert_eq!(
            verify_token(&bad_kid, p, s, &pk),
            Err(GqError::KidNotBase64)
        );
        let array = b64::encode_url(b"[1]");
        assert_eq!(verify_token(&array, p, s, &pk), Err(GqError::HeaderNotJson));
        assert_eq!(
            verify_token(h, &format!("{p}="), s, &pk),
            Err(GqError::PayloadNotBase64)
        );
        assert_eq!(
            verify_token(h, p, &format!("{s}="), &pk),
            Err(GqError::ProofNotBase64)
        );
        assert_eq!(
            verify_token(h, p, "", &pk),
            Err(GqError::ProofLength {
                expected: 4128,
                actual: 0
            })
        );

        // S_1 = 0 and S_1 = n are out of range (§4.4 step 7).
        let mut proof = b64_decode_strict(s).unwrap();
        let s1 = 32..32 + 256;
        proof[s1.clone()].fill(0);
        assert_eq!(
            verify_token(h, p, &b64::encode_url(&proof), &pk),
            Err(GqError::ScalarOutOfRange)
        );
        proof[s1].copy_from_slice(&i2osp(params.modulus(), 256).unwrap());
        assert_eq!(
            verify_token(h, p, &b64::encode_url(&proof), &pk),
            Err(GqError::ScalarOutOfRange)
        );
    }

    #[test]
    fn go_json_escaping() {
        let mut out = String::new();
        gojson::push_string(&mut out, "a\"\\\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}é/");
        assert_eq!(
            out,
            r#""a\"\\\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028\u2029é/""#
        );
    }

    #[test]
    fn rfc7638_thumbprint() {
        // openpubkey pktoken/test_jwk.json (the RFC 7638 §3.1 example key).
        let n = b64_decode_strict("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").unwrap();
        let key = PublicKey::new(
            BoxedUint::from_be_slice_vartime(&n),
            BoxedUint::from(65537u32),
        )
        .unwrap();
        assert_eq!(
            rsa_jwk_thumbprint(&key),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    // ---- Go-made GQ256 PK tokens (§4.8) ----

    fn go_vector_dir(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors/go-opkssh/accept")
            .join(name)
    }

    /// The OP key of a vector: the JWKS entry whose kid is the original header's kid.
    fn jwks_key(dir: &std::path::Path, kid: &str) -> PublicKey {
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("jwks.json")).unwrap()).unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("no JWKS key {kid}"));
        assert_eq!(jwk["kty"], "RSA");
        let n = b64_decode_strict(jwk["n"].as_str().unwrap()).unwrap();
        let e = b64_decode_strict(jwk["e"].as_str().unwrap()).unwrap();
        PublicKey::new(
            BoxedUint::from_be_slice_vartime(&n),
            BoxedUint::from_be_slice_vartime(&e),
        )
        .unwrap()
    }

    fn check_go_vector(name: &str) {
        let dir = go_vector_dir(name);
        let compact = std::fs::read_to_string(dir.join("pktoken.compact"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let parts: Vec<&str> = compact.trim().split(':').collect();
        assert_eq!(parts.len(), 5, "payload:opHdr:opSig:cicHdr:cicSig");
        let (payload, op_hdr, op_sig) = (parts[0], parts[1], parts[2]);

        let orig_hdr_seg = original_header_segment(op_hdr).unwrap();
        let orig: Value =
            serde_json::from_slice(&b64_decode_strict(&orig_hdr_seg).unwrap()).unwrap();
        assert_eq!(orig["alg"], "RS256");
        let key = jwks_key(&dir, orig["kid"].as_str().unwrap());

        // Our header would be byte-identical: same jkt, same member order.
        let header: Value = serde_json::from_slice(&b64_decode_strict(op_hdr).unwrap()).unwrap();
        assert_eq!(header["jkt"], rsa_jwk_thumbprint(&key));
        let ours = gq_header_json(&orig_hdr_seg, &rsa_jwk_thumbprint(&key), &[]).unwrap();
        assert_eq!(b64::encode_url(ours.as_bytes()), op_hdr);
        assert_eq!(op_sig.len(), 5504);

        let start = std::time::Instant::now();
        verify_token(op_hdr, payload, op_sig, &key).unwrap();
        eprintln!("{name}: one GQ256 verify took {:?}", start.elapsed());

        let mut proof = b64_decode_strict(op_sig).unwrap();
        proof[40] ^= 0x01;
        assert_eq!(
            verify_token(op_hdr, payload, &b64::encode_url(proof), &key),
            Err(GqError::BadSignature)
        );
        // The legacy pre-v0.25 message is not what Go signed (§4.7).
        let params = GqParams::from_rsa_key(&key).unwrap();
        let identity = format!("{orig_hdr_seg}.{payload}");
        let g = emsa_pkcs1_v15_sha256(identity.as_bytes(), params.n_bytes).unwrap();
        let proof = b64_decode_strict(op_sig).unwrap();
        assert_eq!(
            verify_core(&params, &g, identity.as_bytes(), &proof, shake256_challenge),
            Err(GqError::BadSignature)
        );
    }

    #[test]
    fn go_vector_rs256_gq_ecdsa() {
        check_go_vector("rs256-gq-ecdsa");
    }

    #[test]
    fn go_vector_rs256_gq_ed25519() {
        check_go_vector("rs256-gq-ed25519");
    }
}
