//! `--legacy-issuer`: an independent HS256 issuer standing for the system
//! being migrated away from. It signs with the `jsonwebtoken` crate
//! directly (never keyshift's minting code) under the shared secret, in the
//! shapes the verifier's `[verifier.legacy]` profile accepts and keyshift
//! never mints: `iss` = [`LEGACY_ISS`] or none, no `aud`, `typ` `JWT` or
//! none, no `kid`, a numeric `sub`, `scope` as an array of strings.
//!
//! Its tokens pass in `legacy`, `dual` and `transition` (through the
//! profile's loosenings, counted by `keyshift_verify_legacy_total`) and are
//! refused in `asymmetric` (`HS256/alg_disabled`), which the harness
//! expects: only a refusal in the other phases, or an acceptance in
//! `asymmetric`, is an unexpected answer.

use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

pub use crate::services::LEGACY_ISS;

/// Tokens the legacy issuer mints per phase: a fleet of old clients each
/// holding one (the verifier's token cache sees each once per phase).
pub const TOKENS: usize = 40;
/// Their lifetime: the old system's habit of a day-long token.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// The claims of an old token: `sub` a number, `scope` an array; `iss`
/// sometimes absent; never `aud`.
#[derive(Debug, Serialize)]
struct LegacyClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'static str>,
    sub: u64,
    scope: [&'static str; 2],
    iat: u64,
    exp: u64,
}

/// The old issuer: the shared secret, and nothing of keyshift's.
pub struct LegacyIssuer {
    key: EncodingKey,
}

impl std::fmt::Debug for LegacyIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacyIssuer(<secret>)")
    }
}

impl LegacyIssuer {
    /// The issuer signing with `secret` (the bytes of the shared secret file).
    pub fn new(secret: &[u8]) -> LegacyIssuer {
        LegacyIssuer {
            key: EncodingKey::from_secret(secret),
        }
    }

    /// Token `i` of the fleet, issued at `now` (unix seconds): its shape
    /// cycles through the legacy variants (`iss` set or not, `typ` `JWT`
    /// or none), so every variant is in every phase's traffic.
    pub fn mint(&self, i: usize, now: u64) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = i.is_multiple_of(2).then(|| "JWT".to_owned());
        header.kid = None;
        let claims = LegacyClaims {
            iss: (i % 3 != 2).then_some(LEGACY_ISS),
            sub: 4_700 + i as u64,
            scope: ["read", "write"],
            iat: now,
            exp: now + TTL.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).context("legacy issuer: signing")
    }

    /// The [`TOKENS`] tokens of one phase.
    pub fn mint_fleet(&self, now: u64) -> anyhow::Result<Vec<String>> {
        (0..TOKENS).map(|i| self.mint(i, now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::Alg;
    use keyshift_testkit::jwt;

    #[test]
    fn tokens_have_the_legacy_shapes_and_never_keyshifts() {
        let issuer = LegacyIssuer::new(b"loadtest-shared-secret-0123456789abcdef");
        let tokens = issuer.mint_fleet(1_000).expect("mint");
        assert_eq!(tokens.len(), TOKENS);
        let mut with_iss = 0;
        let mut with_typ = 0;
        for t in &tokens {
            let h = jwt::header(t).expect("a JWT");
            assert_eq!(h.alg, Alg::Hs256);
            assert_eq!(h.kid, None, "the old issuer sets no kid");
            let hj = jwt::header_json(t).expect("header");
            match hj.get("typ").and_then(|v| v.as_str()) {
                Some("JWT") => with_typ += 1,
                None => {}
                other => panic!("typ {other:?}"),
            }
            let c = jwt::payload(t).expect("claims");
            assert!(c.get("aud").is_none(), "no aud");
            assert!(c["sub"].is_u64(), "a numeric sub");
            assert!(c["scope"].is_array(), "scopes as an array");
            assert_eq!(c["exp"].as_u64(), Some(1_000 + TTL.as_secs()));
            match c.get("iss").and_then(|v| v.as_str()) {
                Some(LEGACY_ISS) => with_iss += 1,
                None => {}
                other => panic!("iss {other:?}"),
            }
        }
        assert!(with_iss > 0 && with_iss < TOKENS, "iss set and absent");
        assert!(with_typ > 0 && with_typ < TOKENS, "typ JWT and none");
    }

    #[test]
    fn the_signature_is_hmac_sha256_under_the_secret() {
        let secret = b"loadtest-shared-secret-0123456789abcdef";
        let token = LegacyIssuer::new(secret).mint(0, 1_000).expect("mint");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        let key = jsonwebtoken::DecodingKey::from_secret(secret);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok());
        let wrong = jsonwebtoken::DecodingKey::from_secret(b"another-secret-of-enough-length-000");
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
    }
}
