//! Minting access tokens (RFC 9068): the JOSE header is fixed per key and
//! encoded once; each token costs one claims serialisation and one signature
//! with a key parsed once. In phases `legacy` and `dual`, `[issuer.legacy]`
//! shapes HS256 tokens (header and claims) the way the old fleet's
//! verifiers expect them; RS256 tokens always keep RFC 9068's shape.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use hmac::{Hmac, Mac};
use keyshift_core::b64;
use keyshift_core::claims::{AccessTokenClaims, JwsHeader};
use keyshift_core::config::{IssuerConfig, IssuerLegacy};
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Alg, Phase};
use sha2::Sha256;

use crate::keystore::SigningKey;

/// Why a token could not be signed. Always a server fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The RSA signing operation or the random generator failed.
    #[error("signing failed")]
    Crypto,
    /// The claims could not be serialised.
    #[error("claims serialisation failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The client id (`sub` and `client_id`).
    pub client_id: &'a str,
    /// Granted scopes, space-delimited.
    pub scope: &'a str,
    /// Now, seconds since the epoch (`iat`, `nbf`).
    pub now: u64,
}

/// A token signed on behalf of someone else (RFC 8693 §4.1): by the gateway
/// for the subject of a token it verified, or for a service identity.
#[derive(Debug, Clone, Copy)]
pub struct OnBehalfRequest<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// Scopes, space-delimited.
    pub scope: &'a str,
    /// Now, seconds since the epoch (`iat`, `nbf`).
    pub now: u64,
    /// Latest `exp` allowed (e.g. the incoming token's), below `now + ttl`.
    pub not_after: Option<u64>,
    /// `act.sub`: who acts (the gateway).
    pub actor: &'a str,
}

/// The claims of an [`OnBehalfRequest`] token: the access-token claims and
/// `act`. Tokens the issuer mints never carry `act`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OnBehalfClaims {
    /// The access-token claims.
    #[serde(flatten)]
    pub token: AccessTokenClaims,
    /// RFC 8693 §4.1 actor claim.
    pub act: Actor,
}

/// RFC 8693 `act`: the party acting for the subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The actor's subject.
    pub sub: String,
}

/// The token's fixed parts: issuer, audience, lifetime, static claims.
#[derive(Debug, Clone)]
pub struct TokenTemplate {
    /// `iss`.
    pub issuer: String,
    /// `aud`; `None` only for HS256 tokens shaped by `[issuer.legacy]`.
    pub audience: Option<String>,
    /// `exp - iat`.
    pub ttl: Duration,
    /// Static extra claims (`[issuer.legacy.claims]`); empty for RFC 9068.
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
}

impl TokenTemplate {
    /// The RFC 9068 template: `iss`, `aud` and lifetime, nothing else.
    pub fn new(issuer: &str, audience: &str, ttl: Duration) -> TokenTemplate {
        TokenTemplate {
            issuer: issuer.to_owned(),
            audience: Some(audience.to_owned()),
            ttl,
            extra_claims: serde_json::Map::new(),
        }
    }

    /// The template of the tokens the issuer mints in `phase`: the legacy
    /// shape's claims where it applies ([`IssuerConfig::legacy_shape`]),
    /// RFC 9068's otherwise.
    pub fn for_phase(config: &IssuerConfig, phase: Phase) -> TokenTemplate {
        match config.legacy_shape(phase) {
            Some(shape) => TokenTemplate {
                issuer: shape.issuer.clone(),
                audience: shape.audience.clone(),
                ttl: config.token_ttl,
                extra_claims: shape.claims.clone(),
            },
            None => TokenTemplate::new(&config.issuer, &config.audience, config.token_ttl),
        }
    }
}

/// A signing key, parsed once, with its header pre-encoded.
#[derive(Clone)]
pub struct Signer {
    alg: Alg,
    kid: String,
    header_b64: String,
    key: SignerKey,
}

#[derive(Clone)]
enum SignerKey {
    Hs256(Hmac<Sha256>),
    Rs256(Arc<SigningKey>, SystemRandom),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// An HS256 signer; the HMAC state is keyed once and cloned per token.
    pub fn hs256(secret: &HmacSecret) -> Signer {
        Signer::hs256_shaped(secret, None)
    }

    /// An HS256 signer whose header takes the legacy shape's `typ` and
    /// `kid` when `shape` is given (the header is still core's
    /// [`JwsHeader`], encoded once).
    pub fn hs256_shaped(secret: &HmacSecret, shape: Option<&IssuerLegacy>) -> Signer {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose())
            .expect("HMAC accepts keys of any length");
        let header = match shape {
            None => JwsHeader::new(Alg::Hs256, secret.kid()),
            Some(s) => JwsHeader::shaped(Alg::Hs256, s.typ, s.kid.then(|| secret.kid())),
        };
        Signer {
            alg: Alg::Hs256,
            kid: secret.kid().to_owned(),
            header_b64: header.encode(),
            key: SignerKey::Hs256(mac),
        }
    }

    /// The signer of the tokens the issuer mints in `phase`: HS256 with the
    /// shared secret (shaped by `[issuer.legacy]` where it applies), or
    /// RS256 with `active`; `None` when what the phase signs with is missing.
    pub fn for_phase(
        config: &IssuerConfig,
        phase: Phase,
        secret: Option<&HmacSecret>,
        active: Option<Arc<SigningKey>>,
    ) -> Option<Signer> {
        match phase.signs() {
            Alg::Hs256 => secret.map(|s| Signer::hs256_shaped(s, config.legacy_shape(phase))),
            Alg::Rs256 => active.map(Signer::rs256),
        }
    }

    /// An RS256 signer for a parsed key.
    pub fn rs256(key: Arc<SigningKey>) -> Signer {
        Signer {
            alg: Alg::Rs256,
            kid: key.kid.clone(),
            header_b64: JwsHeader::new(Alg::Rs256, &key.kid).encode(),
            key: SignerKey::Rs256(key, SystemRandom::new()),
        }
    }

    /// `HS256` or `RS256`.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The `kid` its tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a token for `req`; returns the compact JWS and its claims.
    pub fn mint(
        &self,
        template: &TokenTemplate,
        req: TokenRequest<'_>,
    ) -> Result<(String, AccessTokenClaims), MintError> {
        let claims = AccessTokenClaims {
            iss: template.issuer.clone(),
            sub: req.client_id.to_owned(),
            aud: template.audience.clone(),
            exp: req.now.saturating_add(template.ttl.as_secs()),
            iat: req.now,
            nbf: req.now,
            jti: new_jti()?,
            scope: req.scope.to_owned(),
            client_id: req.client_id.to_owned(),
            extra: template.extra_claims.clone(),
        };
        let token = self.sign(&serde_json::to_vec(&claims)?)?;
        Ok((token, claims))
    }

    /// Signs a token for `req` with `act` naming the actor; `exp` is
    /// `now + ttl`, lowered to `req.not_after`.
    pub fn mint_on_behalf(
        &self,
        template: &TokenTemplate,
        req: OnBehalfRequest<'_>,
    ) -> Result<(String, OnBehalfClaims), MintError> {
        let exp = req.now.saturating_add(template.ttl.as_secs());
        let claims = OnBehalfClaims {
            token: AccessTokenClaims {
                iss: template.issuer.clone(),
                sub: req.sub.to_owned(),
                aud: template.audience.clone(),
                exp: req.not_after.map_or(exp, |limit| exp.min(limit)),
                iat: req.now,
                nbf: req.now,
                jti: new_jti()?,
                scope: req.scope.to_owned(),
                client_id: req.client_id.to_owned(),
                extra: serde_json::Map::new(),
            },
            act: Actor {
                sub: req.actor.to_owned(),
            },
        };
        let token = self.sign(&serde_json::to_vec(&claims)?)?;
        Ok((token, claims))
    }

    /// Signs an arbitrary claims payload (already JSON) with this key.
    pub fn sign(&self, claims_json: &[u8]) -> Result<String, MintError> {
        let mut token =
            String::with_capacity(self.header_b64.len() + claims_json.len() * 4 / 3 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        b64::encode_into(claims_json, &mut token);
        match &self.key {
            SignerKey::Hs256(keyed) => {
                let mut mac = keyed.clone();
                mac.update(token.as_bytes());
                let tag = mac.finalize().into_bytes();
                token.push('.');
                b64::encode_into(tag, &mut token);
            }
            SignerKey::Rs256(key, rng) => {
                let mut sig = vec![0u8; key.pair.public_modulus_len()];
                key.pair
                    .sign(&RSA_PKCS1_SHA256, rng, token.as_bytes(), &mut sig)
                    .map_err(|_| MintError::Crypto)?;
                token.push('.');
                b64::encode_into(&sig, &mut token);
            }
        }
        Ok(token)
    }
}

/// 128 random bits, base64url.
fn new_jti() -> Result<String, MintError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| MintError::Crypto)?;
    Ok(b64::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::KeyStore;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    fn template() -> TokenTemplate {
        TokenTemplate::new(
            "http://issuer.test",
            "https://api.test",
            Duration::from_secs(900),
        )
    }

    fn now() -> u64 {
        keyshift_core::clock::SystemClock.now_secs()
    }

    use keyshift_core::Clock;

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&["http://issuer.test"]);
        v.set_audience(&["https://api.test"]);
        v
    }

    #[test]
    fn hs256_token_verifies_with_the_secret_and_carries_every_claim() {
        let secret = HmacSecret::new(vec![7u8; 32]).expect("secret");
        let signer = Signer::hs256(&secret);
        let req = TokenRequest {
            client_id: "svc-a",
            scope: "read write",
            now: now(),
        };
        let (token, claims) = signer.mint(&template(), req).expect("mint");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(secret.kid()));
        let decoded = jsonwebtoken::decode::<AccessTokenClaims>(
            &token,
            &DecodingKey::from_secret(secret.expose()),
            &validation(Algorithm::HS256),
        )
        .expect("valid HS256");
        assert_eq!(decoded.claims, claims);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.sub, "svc-a");
        assert_eq!(claims.jti.len(), 22);
        let other = HmacSecret::new(vec![8u8; 32]).expect("secret");
        assert!(jsonwebtoken::decode::<AccessTokenClaims>(
            &token,
            &DecodingKey::from_secret(other.expose()),
            &validation(Algorithm::HS256),
        )
        .is_err());
    }

    #[test]
    fn rs256_token_verifies_with_the_published_jwk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(dir.path());
        store.generate_next(now(), 2048).expect("first key: active");
        let set = store.load().expect("keys");
        let key = set.active().expect("active");
        let signer = Signer::rs256(key.clone());
        let req = TokenRequest {
            client_id: "svc-a",
            scope: "read",
            now: now(),
        };
        let (token, claims) = signer.mint(&template(), req).expect("mint");
        let jwk = &set.published()[0];
        let decoded = jsonwebtoken::decode::<AccessTokenClaims>(
            &token,
            &DecodingKey::from_rsa_components(&jwk.n, &jwk.e).expect("jwk"),
            &validation(Algorithm::RS256),
        )
        .expect("valid RS256");
        assert_eq!(decoded.claims, claims);
        assert_eq!(decoded.header.kid.as_deref(), Some(key.kid.as_str()));
    }

    #[test]
    fn on_behalf_token_names_the_actor_and_never_outlives_its_limit() {
        let signer = Signer::hs256(&HmacSecret::new(vec![3u8; 32]).expect("secret"));
        let now = now();
        let req = OnBehalfRequest {
            sub: "user-1",
            client_id: "svc-a",
            scope: "read",
            now,
            not_after: Some(now + 10),
            actor: "keyshift-gateway",
        };
        let (token, claims) = signer.mint_on_behalf(&template(), req).expect("mint");
        assert_eq!(claims.token.exp, now + 10, "capped by not_after");
        assert_eq!(claims.token.sub, "user-1");
        let payload = token.split('.').nth(1).expect("payload");
        let json: serde_json::Value =
            serde_json::from_slice(&b64::decode(payload).expect("b64")).expect("json");
        assert_eq!(json["act"]["sub"], "keyshift-gateway");
        assert_eq!(json["client_id"], "svc-a");
        let uncapped = OnBehalfRequest {
            not_after: None,
            ..req
        };
        let (_, claims) = signer.mint_on_behalf(&template(), uncapped).expect("mint");
        assert_eq!(claims.token.exp, now + 900);
    }

    #[test]
    fn every_token_gets_a_fresh_jti() {
        let signer = Signer::hs256(&HmacSecret::new(vec![1u8; 32]).expect("secret"));
        let req = TokenRequest {
            client_id: "c",
            scope: "",
            now: now(),
        };
        let a = signer.mint(&template(), req).expect("a").1.jti;
        let b = signer.mint(&template(), req).expect("b").1.jti;
        assert_ne!(a, b);
    }
}
