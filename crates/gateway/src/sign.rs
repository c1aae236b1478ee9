//! Tokens the gateway signs for upstreams, cached per (route, identity):
//! an RS256 signature costs about 0.25 ms, a cache hit a hash lookup.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use keyshift_issuer::mint::{MintError, OnBehalfRequest, Signer, TokenTemplate};

use crate::metrics::CacheMetrics;

/// `act.sub` of every token the gateway signs (RFC 8693 §4.1).
pub const ACTOR: &str = "keyshift-gateway";
/// Default entries of the signed-token cache: one per (route, client)
/// pair in a fleet; a bounded cache, so a flood of identities only evicts.
pub const CACHE_ENTRIES: usize = 10_000;

/// Who a token is signed for.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `scope`.
    pub scope: &'a str,
    /// The incoming token's `exp`; the signed token never outlives it.
    pub not_after: Option<u64>,
}

/// One route's signing parameters.
#[derive(Debug, Clone)]
pub struct SignSpec {
    /// The route's index (part of the cache key).
    pub route: usize,
    /// `iss`, `aud` and `sign_ttl`.
    pub template: TokenTemplate,
}

/// (route, sub, client_id, scope, incoming exp).
type Key = (usize, String, String, String, Option<u64>);

#[derive(Debug)]
struct Cached {
    /// `Bearer <token>`.
    value: HeaderValue,
    /// Signed by this key.
    kid: String,
    /// Reused while now is before this.
    reuse_until: u64,
}

/// The signed-token cache.
#[derive(Debug)]
pub struct SignedTokens {
    cache: quick_cache::sync::Cache<Key, Arc<Cached>>,
    metrics: CacheMetrics,
}

impl SignedTokens {
    /// A cache of at most `entries` tokens.
    pub fn new(entries: usize) -> SignedTokens {
        SignedTokens {
            cache: quick_cache::sync::Cache::new(entries.max(1)),
            metrics: CacheMetrics::new(),
        }
    }

    /// `Bearer <token>` for `who` on a route, reused while it has more than
    /// half its lifetime left and was signed by the current key; else
    /// signed now. Returns the value and whether it was signed now.
    pub fn get(
        &self,
        signer: &Signer,
        spec: &SignSpec,
        who: Identity<'_>,
        now: u64,
    ) -> Result<(HeaderValue, bool), MintError> {
        let key = (
            spec.route,
            who.sub.to_owned(),
            who.client_id.to_owned(),
            who.scope.to_owned(),
            who.not_after,
        );
        if let Some(hit) = self.cache.get(&key) {
            if now < hit.reuse_until && hit.kid == signer.kid() {
                self.metrics.hit.increment(1);
                return Ok((hit.value.clone(), false));
            }
        }
        self.metrics.miss.increment(1);
        let req = OnBehalfRequest {
            sub: who.sub,
            client_id: who.client_id,
            scope: who.scope,
            now,
            not_after: who.not_after,
            actor: ACTOR,
        };
        let (token, claims) = signer.mint_on_behalf(&spec.template, req)?;
        // A compact JWS is base64url and dots: always a valid header value.
        let value =
            HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| MintError::Crypto)?;
        let half = now.saturating_add(spec.template.ttl.as_secs() / 2);
        self.cache.insert(
            key,
            Arc::new(Cached {
                value: value.clone(),
                kid: signer.kid().to_owned(),
                reuse_until: half.min(claims.token.exp.saturating_sub(1)),
            }),
        );
        Ok((value, true))
    }
}

/// The template of a signing route.
pub fn template(issuer: &str, audience: &str, ttl: Duration) -> TokenTemplate {
    TokenTemplate::new(issuer, audience, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::secret::HmacSecret;

    fn spec() -> SignSpec {
        SignSpec {
            route: 0,
            template: template(
                "http://issuer.test",
                "https://orders.test",
                Duration::from_secs(60),
            ),
        }
    }

    const WHO: Identity<'static> = Identity {
        sub: "svc-a",
        client_id: "svc-a",
        scope: "read",
        not_after: Some(10_000),
    };

    #[test]
    fn a_token_is_reused_until_half_its_life_then_signed_again() {
        let signer = Signer::hs256(&HmacSecret::new(vec![1u8; 32]).expect("secret"));
        let tokens = SignedTokens::new(16);
        let (first, signed) = tokens.get(&signer, &spec(), WHO, 1_000).expect("sign");
        assert!(signed);
        let (again, signed) = tokens.get(&signer, &spec(), WHO, 1_029).expect("hit");
        assert!(!signed);
        assert_eq!(again, first);
        let (later, signed) = tokens.get(&signer, &spec(), WHO, 1_030).expect("resign");
        assert!(signed, "half of 60 s gone");
        assert_ne!(later, first);
        let other = Identity {
            sub: "svc-b",
            ..WHO
        };
        assert!(
            tokens.get(&signer, &spec(), other, 1_030).expect("b").1,
            "per identity"
        );
    }

    #[test]
    fn a_new_key_signs_at_once_and_the_incoming_exp_caps_reuse() {
        let a = Signer::hs256(&HmacSecret::new(vec![1u8; 32]).expect("secret"));
        let b = Signer::hs256(&HmacSecret::new(vec![2u8; 32]).expect("secret"));
        let tokens = SignedTokens::new(16);
        tokens.get(&a, &spec(), WHO, 1_000).expect("a");
        assert!(
            tokens.get(&b, &spec(), WHO, 1_001).expect("b").1,
            "rotated key"
        );
        let ending = Identity {
            not_after: Some(2_005),
            ..WHO
        };
        tokens.get(&b, &spec(), ending, 2_000).expect("sign");
        assert!(!tokens.get(&b, &spec(), ending, 2_003).expect("hit").1);
        assert!(
            tokens.get(&b, &spec(), ending, 2_004).expect("miss").1,
            "1 s before exp"
        );
    }
}
