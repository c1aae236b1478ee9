//! base64url without padding (RFC 7515 §2), strict on decode.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes base64url without padding; padding, `+`, `/`, whitespace and
/// non-canonical trailing bits are all refused.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// Decodes into a caller-provided buffer (cleared first), to reuse allocations.
pub fn decode_into(text: impl AsRef<[u8]>, out: &mut Vec<u8>) -> Result<(), base64::DecodeError> {
    out.clear();
    URL_SAFE_NO_PAD.decode_vec(text, out)
}

/// Decodes into a fixed buffer, returning the decoded length; fails if it
/// does not fit. No allocation: for the verify path.
pub fn decode_slice(
    text: impl AsRef<[u8]>,
    out: &mut [u8],
) -> Result<usize, base64::DecodeSliceError> {
    URL_SAFE_NO_PAD.decode_slice(text, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_padding_standard_alphabet_and_whitespace() {
        assert_eq!(decode("AQAB").ok(), Some(vec![1, 0, 1]));
        assert!(decode("AQ==").is_err());
        assert!(decode("a+b/").is_err());
        assert!(decode("AQ AB").is_err());
        // "AR" decodes to the same byte as "AQ" in lenient decoders.
        assert!(decode("AR").is_err());
    }
}
