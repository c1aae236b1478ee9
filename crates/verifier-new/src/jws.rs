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
    /// Present at all → rejected.
    #[serde(default)]
    pub crit: Option<serde::de::IgnoredAny>,
}

/// A token split into its parts, the header decoded.
#[derive(Debug)]
pub struct Jws<'a> {
    /// `base64url(header) "." base64url(payload)`: what was signed.
    pub signing_input: &'a str,
    /// The payload segment, still encoded (decoded only after the signature verified).
    pub payload_b64: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits a compact JWS and decodes header and signature. The caller has
/// already checked the size cap. `header_buf` is reused scratch space.
pub fn split(token: &str) -> Result<(Jws<'_>, &str), VerifyError> {
    let (signing_input, sig_b64) = token
        .rsplit_once('.')
        .ok_or(VerifyError::Malformed("not a compact JWS"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(VerifyError::Malformed("not a compact JWS"))?;
    if payload_b64.contains('.') {
        return Err(VerifyError::Malformed(
            "not a compact JWS (more than three segments)",
        ));
    }
    if header_b64.is_empty() || payload_b64.is_empty() || sig_b64.is_empty() {
        return Err(VerifyError::Malformed("empty segment"));
    }
    let signature = b64::decode(sig_b64).map_err(|_| VerifyError::Malformed("bad base64url"))?;
    Ok((
        Jws {
            signing_input,
            payload_b64,
            signature,
        },
        header_b64,
    ))
}

/// Decodes the header segment into `buf` and parses it.
pub fn header<'b>(header_b64: &str, buf: &'b mut Vec<u8>) -> Result<Header<'b>, VerifyError> {
    b64::decode_into(header_b64, buf).map_err(|_| VerifyError::Malformed("bad base64url"))?;
    let header: Header<'b> = serde_json::from_slice(buf)
        .map_err(|_| VerifyError::Malformed("header is not a JSON object"))?;
    if header.crit.is_some() {
        return Err(VerifyError::Malformed("unsupported crit header"));
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
        let mut buf = Vec::new();
        assert!(header(&enc(r#"{"alg":"RS256","crit":["exp"]}"#), &mut buf).is_err());
        assert!(header(&enc(r#"{"alg":"RS256","crit":[]}"#), &mut buf).is_err());
        assert!(header(&enc(r#"{"alg":"RS256","alg":"HS256"}"#), &mut buf).is_err());
        assert!(header(&enc("[1]"), &mut buf).is_err());
        assert!(header(&enc("not json"), &mut buf).is_err());
        let h = header(
            &enc(r#"{"alg":"RS256","kid":"k","jku":"http://evil","x":1}"#),
            &mut buf,
        )
        .expect("valid");
        assert_eq!(h.kid.as_deref(), Some("k"));
    }
}
