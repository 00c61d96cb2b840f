//! Base64 as OpenPubkey and OpenSSH use it (wire-format.md §1.1).
//!
//! JOSE material is unpadded base64url, decoded strictly as Go's openpubkey `util/base64.go`
//! does: no `=`, no `+` or `/`, and no non-zero trailing bits. SSH lines use padded standard
//! base64. Go's decoder skips CR and LF; we do not, because no producer emits them inside a
//! segment and accepting them would make two texts decode to the same bytes.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Why a base64 text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B64Error {
    /// A character outside the alphabet, padding where none is allowed, or a bad length.
    #[error("invalid base64 at byte {offset}")]
    InvalidSymbol {
        /// Byte offset of the first offending character.
        offset: usize,
    },
    /// Padding is missing, misplaced or present where none is allowed.
    #[error("invalid base64 padding")]
    InvalidPadding,
    /// The text has a length no encoding produces.
    #[error("invalid base64 length")]
    InvalidLength,
    /// The last character carries bits that a canonical encoder leaves at zero.
    #[error("non-canonical base64: trailing bits are not zero")]
    TrailingBits,
}

const URL_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Go's jwx decodes non-GQ signature segments leniently: padded or not, either alphabet.
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

const STD_PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(false),
);

fn map_error(error: base64::DecodeError) -> B64Error {
    match error {
        base64::DecodeError::InvalidByte(offset, _) => B64Error::InvalidSymbol { offset },
        base64::DecodeError::InvalidLastSymbol { .. } => B64Error::TrailingBits,
        base64::DecodeError::InvalidLength(_) => B64Error::InvalidLength,
        base64::DecodeError::InvalidPadding => B64Error::InvalidPadding,
    }
}

/// Encodes bytes as unpadded base64url (`B64U` in the spec).
pub fn encode_url(bytes: impl AsRef<[u8]>) -> String {
    URL_STRICT.encode(bytes)
}

/// Decodes unpadded, canonical base64url, the only form openpubkey accepts for headers,
/// payloads, the GQ `kid` and the GQ proof.
///
/// # Errors
/// Any padding, `+`, `/`, other non-alphabet byte or non-zero trailing bits.
pub fn decode_url_strict(text: &str) -> Result<Vec<u8>, B64Error> {
    URL_STRICT.decode(text).map_err(map_error)
}

/// Decodes a non-GQ JWS signature segment the way jwx does: padding optional and trailing
/// bits ignored. Its one caller is the JWS signature check; everything else is strict.
///
/// # Errors
/// Bytes outside the base64url alphabet, or an impossible length.
pub(crate) fn decode_url_signature_lenient(text: &str) -> Result<Vec<u8>, B64Error> {
    URL_LENIENT.decode(text).map_err(map_error)
}

/// Encodes bytes as padded standard base64, as in OpenSSH key and certificate lines.
pub fn encode_std(bytes: impl AsRef<[u8]>) -> String {
    STD_PADDED.encode(bytes)
}

/// Decodes padded standard base64 (OpenSSH lines).
///
/// # Errors
/// Missing or wrong padding, bytes outside the alphabet, non-zero trailing bits.
pub fn decode_std(text: &str) -> Result<Vec<u8>, B64Error> {
    STD_PADDED.decode(text).map_err(map_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_has_no_padding() {
        assert_eq!(encode_url(b"fake payload"), "ZmFrZSBwYXlsb2Fk");
        assert_eq!(encode_url([0xfb, 0xff]), "-_8");
        assert_eq!(decode_url_strict("-_8").as_deref(), Ok(&[0xfb, 0xff][..]));
    }

    #[test]
    fn strict_url_refuses_padding_std_alphabet_and_trailing_bits() {
        assert!(decode_url_strict("-_8=").is_err());
        assert!(decode_url_strict("+/8").is_err());
        // "-_9" has the same leading 16 bits as "-_8" but a non-zero trailing bit.
        assert_eq!(decode_url_strict("-_9"), Err(B64Error::TrailingBits));
        assert!(decode_url_strict("a").is_err());
        assert!(decode_url_strict("ab\ncd").is_err());
    }

    #[test]
    fn lenient_signature_decoding_accepts_padding() {
        assert_eq!(
            decode_url_signature_lenient("-_8=").as_deref(),
            Ok(&[0xfb, 0xff][..])
        );
        assert_eq!(
            decode_url_signature_lenient("-_9").as_deref(),
            Ok(&[0xfb, 0xff][..])
        );
    }

    #[test]
    fn std_is_padded_and_strict() {
        assert_eq!(encode_std([0xfb, 0xff]), "+/8=");
        assert_eq!(decode_std("+/8=").as_deref(), Ok(&[0xfb, 0xff][..]));
        assert!(decode_std("+/8").is_err());
        assert!(decode_std("-_8=").is_err());
    }
}
