//! Compact JWS parsing (RFC 7515 §7.1), strict: exactly three segments,
//! base64url without padding, a JSON object header decoded into a typed
//! struct. Header-supplied keys and URLs (`jwk`, `jku`, `x5u`, `x5c`) are
//! never read; any `crit` is refused (we implement no extension).

use std::borrow::Cow;

use keyshift_core::b64;
use serde::Deserialize;

use crate::error::VerifyError;

/// The header members that decide anything. Unknown members are ignored;
/// a member given twice is an error (serde refuses duplicate fields).
#[derive(Debug, Deserialize)]
pub struct Header<'a> {
    /// Required.
    #[serde(borrow)]
    pub alg: Option<Cow<'a, str>>,
    /// Optional media type.
    #[serde(borrow, default)]
    pub typ: Option<Cow<'a, str>>,
    /// Optional key id.
    #[serde(borrow, default)]
    pub kid: Option<Cow<'a, str>>,
    /// Present at all, even `null` → rejected.
    #[serde(default, deserialize_with = "present")]
    pub crit: Option<serde::de::IgnoredAny>,
}

/// `Some` for any value, `null` included (a plain `Option` reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<serde::de::IgnoredAny>, D::Error> {
    serde::de::IgnoredAny::deserialize(de).map(Some)
}

/// Largest signature decoded (an 8192-bit RSA signature).
pub const MAX_SIGNATURE_BYTES: usize = 1024;

/// A token split into its segments, nothing decoded yet.
#[derive(Debug)]
pub struct Jws<'a> {
    /// `base64url(header) "." base64url(payload)`: what was signed.
    pub signing_input: &'a str,
    /// The payload segment, still encoded (decoded only after the signature verified).
    pub payload_b64: &'a str,
    /// The signature segment, still encoded.
    pub signature_b64: &'a str,
}

impl Jws<'_> {
    /// Decodes the signature into `buf` (no allocation).
    pub fn signature<'b>(
        &self,
        buf: &'b mut [u8; MAX_SIGNATURE_BYTES],
    ) -> Result<&'b [u8], VerifyError> {
        let n = b64::decode_slice(self.signature_b64, buf)
            .map_err(|_| VerifyError::Malformed(crate::reason!("bad base64url")))?;
        Ok(&buf[..n])
    }
}

/// Splits a compact JWS into exactly three non-empty segments; returns the
/// parts and the header segment. The caller has already checked the size cap.
pub fn split(token: &str) -> Result<(Jws<'_>, &str), VerifyError> {
    let (signing_input, sig_b64) = token
        .rsplit_once('.')
        .ok_or(VerifyError::Malformed(crate::reason!("not a compact JWS")))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed(crate::reason!("not a compact JWS")))?;
    if payload_b64.contains('.') {
        return Err(VerifyError::Malformed(crate::reason!(
            "not a compact JWS (more than three segments)"
        )));
    }
    if header_b64.is_empty() || payload_b64.is_empty() || sig_b64.is_empty() {
        return Err(VerifyError::Malformed(crate::reason!("empty segment")));
    }
    Ok((
        Jws {
            signing_input,
            payload_b64,
            signature_b64: sig_b64,
        },
        header_b64,
    ))
}

/// Headers up to this size decode on the stack.
pub const HEADER_STACK_BYTES: usize = 256;

/// Decodes the header segment (into `stack` when it fits, else into `heap`) and parses it.
pub fn header<'b>(
    header_b64: &str,
    stack: &'b mut [u8; HEADER_STACK_BYTES],
    heap: &'b mut Vec<u8>,
) -> Result<Header<'b>, VerifyError> {
    let bytes: &'b [u8] = match b64::decode_slice(header_b64, stack) {
        Ok(n) => &stack[..n],
        Err(_) => {
            b64::decode_into(header_b64, heap)
                .map_err(|_| VerifyError::Malformed(crate::reason!("bad base64url")))?;
            heap
        }
    };
    // serde skips ignored members without checking their strings: UTF-8 is
    // checked first, over the whole header (RFC 7515 §4: UTF-8 JSON).
    let text = std::str::from_utf8(bytes)
        .map_err(|_| VerifyError::Malformed(crate::reason!("header is not UTF-8")))?;
    let header: Header<'b> = serde_json::from_str(text)
        .map_err(|_| VerifyError::Malformed(crate::reason!("header is not a JSON object")))?;
    if header.crit.is_some() {
        return Err(VerifyError::Malformed(crate::reason!(
            "unsupported crit header"
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        b64::encode(s)
    }

    #[test]
    fn three_segments_exactly() {
        let h = enc(r#"{"alg":"HS256"}"#);
        assert!(split(&format!("{h}.e30")).is_err());
        assert!(split(&format!("{h}.e30.AA.AA")).is_err());
        assert!(split(&format!("{h}.e30.AA.AA.AA")).is_err());
        assert!(split(&format!("{h}.e30.")).is_err());
        assert!(split(&format!("{h}.e30.AAAA")).is_ok());
    }

    #[test]
    fn header_rejects_crit_and_duplicates_and_non_objects() {
        let parse = |json: &str| {
            let mut stack = [0u8; HEADER_STACK_BYTES];
            let mut heap = Vec::new();
            header(&enc(json), &mut stack, &mut heap).map(|h| h.kid.map(|k| k.into_owned()))
        };
        assert!(parse(r#"{"alg":"RS256","crit":["exp"]}"#).is_err());
        assert!(parse(r#"{"alg":"RS256","crit":[]}"#).is_err());
        assert!(parse(r#"{"alg":"RS256","crit":null}"#).is_err());
        assert!(parse(r#"{"alg":"RS256","alg":"HS256"}"#).is_err());
        assert!(parse("[1]").is_err());
        // Invalid UTF-8 in a member nobody reads: still malformed.
        for bad in [
            &b"{\"alg\":\"HS256\",\"x\":\"\xff\xfe\"}"[..],
            b"{\"alg\":\"HS256\",\"x\":\"\xc0\xaf\"}",
        ] {
            let mut stack = [0u8; HEADER_STACK_BYTES];
            let mut heap = Vec::new();
            assert!(
                matches!(
                    header(&b64::encode(bad), &mut stack, &mut heap),
                    Err(VerifyError::Malformed(r)) if r.text() == "header is not UTF-8"
                ),
                "{bad:?}"
            );
        }
        assert!(parse("not json").is_err());
        let kid = parse(r#"{"alg":"RS256","kid":"k","jku":"http://evil","x":1}"#).expect("valid");
        assert_eq!(kid.as_deref(), Some("k"));
        let long_kid = "k".repeat(600);
        let big = parse(&format!(r#"{{"alg":"RS256","kid":"{long_kid}"}}"#)).expect("heap path");
        assert_eq!(big.as_deref(), Some(long_kid.as_str()));
    }
}
