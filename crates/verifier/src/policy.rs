//! What a verifier accepts: built once from the config (and rebuilt on
//! reload), immutable, swapped atomically.

use hmac::{Hmac, Mac};
use keyshift_core::claims::JwsHeader;
use keyshift_core::config::{TypPolicy, VerifierConfig};
use keyshift_core::secret::{HmacSecret, HmacSecrets};
use keyshift_core::{AcceptSet, Alg, Phase};
use sha2::Sha256;

use crate::claims::ClaimRules;
use crate::error::VerifyError;
use crate::legacy::LegacyProfile;

/// The HS256 secret, keyed once; cloned per token.
#[derive(Clone)]
pub struct HmacKey {
    /// The kid HS256 tokens from keyshift carry.
    pub kid: String,
    /// The keyed HMAC state.
    pub mac: Hmac<Sha256>,
    /// The exact header segment keyshift's issuer writes for this secret
    /// (`{"alg":"HS256","typ":"at+jwt","kid":…}`): a token carrying it byte
    /// for byte needs no header decoding.
    pub header_b64: String,
}

impl HmacKey {
    /// Keys a secret once; the header is keyshift's strict one for it.
    pub fn new(secret: &HmacSecret) -> HmacKey {
        HmacKey {
            header_b64: JwsHeader::new(Alg::Hs256, secret.kid()).encode(),
            kid: secret.kid().to_owned(),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(secret.expose())
                .expect("HMAC accepts keys of any length"),
        }
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The acceptance policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The phase.
    pub phase: Phase,
    /// Accepted algorithms.
    pub accept: AcceptSet,
    /// The HS256 key, when a secret is configured.
    pub hmac: Option<HmacKey>,
    /// The legacy profile (`[verifier.legacy]`), consulted only for HS256
    /// tokens the strict rules refuse.
    pub legacy: Option<LegacyProfile>,
    /// Whether a loaded HS256 secret is shorter than 32 bytes.
    pub hs256_secret_weak: bool,
    /// Claim checks.
    pub rules: ClaimRules,
    /// Token size cap.
    pub max_token_bytes: usize,
    /// `typ` rule.
    pub typ: TypPolicy,
    /// Bumped on every reload (token-cache entries of older policies miss).
    pub generation: u64,
}

impl Policy {
    /// Builds the policy of a validated config section. The legacy profile
    /// applies only while HS256 is accepted (the config already drops it in
    /// phase `asymmetric`).
    pub fn new(
        phase: Phase,
        cfg: &VerifierConfig,
        secrets: &HmacSecrets,
        generation: u64,
    ) -> Policy {
        let hs256 = cfg.accept.contains(Alg::Hs256);
        Policy {
            phase,
            accept: cfg.accept,
            hmac: secrets.primary.as_ref().map(HmacKey::new),
            legacy: cfg
                .legacy
                .as_ref()
                .filter(|_| hs256)
                .map(|l| LegacyProfile::new(l, &secrets.extra)),
            hs256_secret_weak: secrets.any_weak(),
            rules: ClaimRules {
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                leeway: cfg.leeway.as_secs(),
                max_lifetime: cfg.max_token_lifetime.as_secs(),
            },
            max_token_bytes: cfg.max_token_bytes,
            typ: cfg.typ,
            generation,
        }
    }

    /// Checks the `typ` header (RFC 8725 §3.11, RFC 9068 §4).
    pub fn check_typ(&self, typ: Option<&str>) -> Result<(), VerifyError> {
        let ok = match (typ, self.typ) {
            (None, TypPolicy::Lenient) => true,
            (None, TypPolicy::Strict) => false,
            (Some(t), policy) => {
                let t = t.strip_prefix("application/").unwrap_or(t);
                t.eq_ignore_ascii_case("at+jwt")
                    || (policy == TypPolicy::Lenient && t.eq_ignore_ascii_case("jwt"))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(VerifyError::BadClaims(crate::reason!("typ not accepted")))
        }
    }

    /// The HS256 key whose exact issuer header is `header_b64`, if any: such
    /// a token needs no header decoding (its alg, typ and kid pass every check).
    pub fn issuer_hs256_header(&self, header_b64: &str) -> Option<&HmacKey> {
        self.hmac.as_ref().filter(|k| k.header_b64 == header_b64)
    }

    /// Whether `alg` is accepted.
    pub fn accepts(&self, alg: Alg) -> bool {
        self.accept.contains(alg)
    }
}
