//! JSON Web Keys (RFC 7517) for RSA public keys, and RFC 7638 thumbprints.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;

/// Smallest RSA modulus keyshift signs with or accepts (RFC 8725 §3.5, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// One RSA public key as the issuer publishes it.
///
/// Only public members exist in this type, so a private part cannot be
/// serialized into a JWKS by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsaPublicJwk {
    /// Always `RSA`.
    pub kty: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `RS256`.
    pub alg: String,
    /// The RFC 7638 thumbprint of the key.
    pub kid: String,
    /// Modulus, base64url big-endian without leading zero bytes.
    pub n: String,
    /// Public exponent, base64url big-endian without leading zero bytes.
    pub e: String,
}

impl RsaPublicJwk {
    /// Builds the JWK from big-endian modulus and exponent bytes (leading zero
    /// bytes are stripped, as RFC 7518 §6.3.1 requires). The `kid` is the
    /// RFC 7638 thumbprint.
    pub fn from_components(n: &[u8], e: &[u8]) -> RsaPublicJwk {
        let n = b64::encode(strip_leading_zeros(n));
        let e = b64::encode(strip_leading_zeros(e));
        let kid = rsa_thumbprint(&n, &e);
        RsaPublicJwk {
            kty: "RSA".to_owned(),
            use_: "sig".to_owned(),
            alg: "RS256".to_owned(),
            kid,
            n,
            e,
        }
    }
}

/// A JWK Set (RFC 7517 §5) of RSA public keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsaPublicJwkSet {
    /// The keys, in the order next, active, retiring.
    pub keys: Vec<RsaPublicJwk>,
}

/// Strips leading zero bytes of a big-endian unsigned integer (keeps one byte for zero).
pub fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    if first == bytes.len() && !bytes.is_empty() {
        &bytes[bytes.len() - 1..]
    } else {
        &bytes[first..]
    }
}

/// The RFC 7638 thumbprint of an RSA key whose `n` and `e` are already
/// base64url-encoded: SHA-256 over `{"e":…,"kty":"RSA","n":…}`, base64url.
pub fn rsa_thumbprint(n_b64: &str, e_b64: &str) -> String {
    // The members are base64url text, so no JSON escaping can be needed.
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    b64::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 §3.1.
    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn components_lose_leading_zero_bytes() {
        let jwk = RsaPublicJwk::from_components(&[0, 0, 0xc3, 0x01], &[0, 1, 0, 1]);
        assert_eq!(jwk.n, b64::encode([0xc3, 0x01]));
        assert_eq!(jwk.e, "AQAB");
        assert_eq!(strip_leading_zeros(&[0, 0]), &[0]);
    }

    #[test]
    fn serializes_only_public_members() {
        let jwk = RsaPublicJwk::from_components(&[0xc3; 256], &[1, 0, 1]);
        let value = serde_json::to_value(&jwk).expect("serializable");
        let mut names: Vec<_> = value.as_object().expect("object").keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
    }
}
