//! A JWK Set body → RSA keys parsed once for aws-lc-rs. Each key is judged on
//! its own (RFC 7517 §5: unusable keys are skipped, not fatal); a body with no
//! usable key at all is a failed fetch.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use keyshift_core::b64;
use keyshift_core::jwk::{strip_leading_zeros, MIN_RSA_BITS};
use serde::Deserialize;

/// An RSA public key ready to verify RS256 signatures.
pub struct RsaKey {
    /// The key id.
    pub kid: String,
    /// Modulus size in bits.
    pub bits: usize,
    /// The key, parsed once.
    pub key: ParsedPublicKey,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("kid", &self.kid)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// Why a JWKS body was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not JSON, or no `keys` array.
    #[error("not a JWK Set")]
    NotAJwkSet,
    /// A JWK Set without a single usable RS256 key.
    #[error("no usable RS256 key in the JWK Set ({skipped} skipped)")]
    NoUsableKey {
        /// Keys skipped.
        skipped: usize,
    },
}

/// The one public exponent accepted: 65537 (F4), big-endian.
const RSA_F4: &[u8] = &[0x01, 0x00, 0x01];

/// The usable keys of a body, by kid, and how many keys were skipped.
pub fn parse_jwks(body: &[u8]) -> Result<(HashMap<String, Arc<RsaKey>>, usize), JwksError> {
    let set: RawSet = serde_json::from_slice(body).map_err(|_| JwksError::NotAJwkSet)?;
    let mut keys: HashMap<String, Arc<RsaKey>> = HashMap::new();
    let mut duplicated: Vec<String> = Vec::new();
    let mut skipped = 0;
    for value in set.keys {
        let Some(key) = serde_json::from_value::<RawJwk>(value)
            .ok()
            .and_then(usable)
        else {
            skipped += 1;
            continue;
        };
        if keys.contains_key(&key.kid) || duplicated.contains(&key.kid) {
            // Two keys under one kid: neither can be chosen safely.
            keys.remove(&key.kid);
            duplicated.push(key.kid);
            skipped += 1;
            continue;
        }
        keys.insert(key.kid.clone(), Arc::new(key));
    }
    skipped += duplicated.len();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { skipped });
    }
    Ok((keys, skipped))
}

fn usable(jwk: RawJwk) -> Option<RsaKey> {
    if jwk.kty != "RSA" {
        return None;
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return None;
    }
    if jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
        return None;
    }
    let kid = jwk
        .kid
        .filter(|k| !k.is_empty() && k.len() <= super::MAX_KID_BYTES)?;
    let n = b64::decode(jwk.n?).ok()?;
    let e = b64::decode(jwk.e?).ok()?;
    let n = strip_leading_zeros(&n);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return None;
    }
    // e = 65537 only: what every issuer generates (NIST SP 800-89 allows
    // 65537 to 2^256, and small exponents like 3 have a history of
    // signature forgeries with lax padding checks); anything else is a key
    // nobody here made.
    let e = strip_leading_zeros(&e);
    if e != RSA_F4 {
        return None;
    }
    let der = rsa_public_key_der(n, e);
    let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).ok()?;
    Some(RsaKey { kid, bits, key })
}

fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// DER of PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let n = der_integer(n);
    let e = der_integer(e);
    let mut out = Vec::with_capacity(n.len() + e.len() + 4);
    out.push(0x30);
    der_length(n.len() + e.len(), &mut out);
    out.extend_from_slice(&n);
    out.extend_from_slice(&e);
    out
}

fn der_integer(be: &[u8]) -> Vec<u8> {
    let pad = be.first().is_some_and(|b| b & 0x80 != 0);
    let len = be.len() + usize::from(pad);
    let mut out = Vec::with_capacity(len + 4);
    out.push(0x02);
    der_length(len, &mut out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(be);
    out
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_counts_the_top_byte() {
        assert_eq!(bit_length(&[0x01, 0]), 9);
        assert_eq!(bit_length(&[0x80; 256]), 2048);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
    }

    #[test]
    fn only_the_exponent_65537_is_used() {
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("key");
        let n = b64::encode(
            pair.public_key()
                .modulus()
                .big_endian_without_leading_zero(),
        );
        let set =
            |e: &str| format!(r#"{{"keys":[{{"kty":"RSA","kid":"k1","n":"{n}","e":"{e}"}}]}}"#);
        assert!(parse_jwks(set("AQAB").as_bytes()).is_ok(), "65537");
        assert!(
            parse_jwks(set("AAEAAQ").as_bytes()).is_ok(),
            "65537, leading zero"
        );
        for e in ["Aw", "AQ", "Ew", "AQAD", "AAAAAw", ""] {
            assert!(
                matches!(
                    parse_jwks(set(e).as_bytes()),
                    Err(JwksError::NoUsableKey { skipped: 1 })
                ),
                "e = {e:?} must be skipped"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // serde_json stops at 128 levels; the 64 KiB body cap bounds the rest.
        for depth in [200, 20_000] {
            let doc = format!("{{\"keys\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(
                parse_jwks(doc.as_bytes()).err(),
                Some(JwksError::NotAJwkSet)
            );
        }
    }

    #[test]
    fn garbage_and_empty_sets_are_errors() {
        assert_eq!(parse_jwks(b"<html>").err(), Some(JwksError::NotAJwkSet));
        assert_eq!(
            parse_jwks(b"{\"keys\":{}}").err(),
            Some(JwksError::NotAJwkSet)
        );
        assert_eq!(
            parse_jwks(b"{\"keys\":[]}").err(),
            Some(JwksError::NoUsableKey { skipped: 0 })
        );
        assert!(matches!(
            parse_jwks(br#"{"keys":[{"kty":"EC","kid":"a"},{"kty":"RSA","kid":"b","n":"AQAB","e":"AQAB"}]}"#),
            Err(JwksError::NoUsableKey { skipped: 2 })
        ));
    }
}
