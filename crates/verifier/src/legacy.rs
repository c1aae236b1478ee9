//! The legacy profile (`[verifier.legacy]`): how HS256 tokens are read
//! while the fleet still holds tokens of the issuer it is migrating away
//! from. RS256 tokens never get here.
//!
//! Without a profile nothing changes: the strict path reads every token.
//! With one, the claims of HS256 tokens are read by [`LegacyProfile::verify`]
//! in one pass with the configured claim names; a token in keyshift's own
//! shape reads exactly as the strict rules read it and relies on nothing,
//! while another shape is accepted only through the loosenings the table
//! grants, each noted ([`Loosening`]) and counted apart
//! (`keyshift_verify_legacy_total{loosening}`). The extra `secret_files`
//! are tried only after the shared secret failed. What each loosening gives
//! up, and when to turn it off, is in docs/security.md ("The legacy profile").

use std::borrow::Cow;

use hmac::Mac;
use keyshift_core::config::VerifierLegacy;
use keyshift_core::secret::HmacSecret;
use keyshift_core::Alg;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess};

use crate::claims::{ClaimRules, NumericDate, OneOrMany};
use crate::error::VerifyError;
use crate::policy::HmacKey;
use crate::verifier::{header_safe, Verified};

/// A check the profile loosens; the label value is the config key that
/// loosens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loosening {
    /// `iss` was one of `issuers` (or absent, with `""` listed).
    Issuers,
    /// No `aud`, with `audience_required = false`.
    AudienceRequired,
    /// The subject came from `subject_claim` (not `sub`), or was a number.
    SubjectClaim,
    /// The scopes came from `scope_claim` (not `scope`), or were an array.
    ScopeClaim,
    /// The signature verified under one of `secret_files`.
    SecretFiles,
}

impl Loosening {
    /// Every loosening, for pre-registering metric handles.
    pub const ALL: [Loosening; 5] = [
        Loosening::Issuers,
        Loosening::AudienceRequired,
        Loosening::SubjectClaim,
        Loosening::ScopeClaim,
        Loosening::SecretFiles,
    ];

    /// The `loosening` label value: the config key of `[verifier.legacy]`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Loosening::Issuers => "issuers",
            Loosening::AudienceRequired => "audience_required",
            Loosening::SubjectClaim => "subject_claim",
            Loosening::ScopeClaim => "scope_claim",
            Loosening::SecretFiles => "secret_files",
        }
    }

    /// The position in [`Loosening::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The loosenings one acceptance relied on; empty for a strict acceptance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Loosenings(u8);

impl Loosenings {
    /// None: the strict rules accepted the token.
    pub const NONE: Loosenings = Loosenings(0);

    /// This set plus `l`.
    #[must_use]
    pub const fn with(self, l: Loosening) -> Loosenings {
        Loosenings(self.0 | 1 << l.index())
    }

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Loosenings) -> Loosenings {
        Loosenings(self.0 | other.0)
    }

    /// Whether `l` is in the set.
    pub const fn contains(self, l: Loosening) -> bool {
        self.0 & (1 << l.index()) != 0
    }

    /// Whether the set is empty (a strict acceptance).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The loosenings in the set.
    pub fn iter(self) -> impl Iterator<Item = Loosening> {
        Loosening::ALL
            .into_iter()
            .filter(move |l| self.contains(*l))
    }
}

/// The profile of a policy: the config's `[verifier.legacy]` with its extra
/// secrets keyed once.
#[derive(Debug, Clone)]
pub struct LegacyProfile {
    /// The config table, as `/migration` and `config check` show it.
    pub config: VerifierLegacy,
    /// The keyed `secret_files`, in order.
    secrets: Vec<HmacKey>,
}

impl LegacyProfile {
    /// The profile of a config table and the secrets its `secret_files` hold.
    pub fn new(config: &VerifierLegacy, extra: &[HmacSecret]) -> LegacyProfile {
        LegacyProfile {
            config: config.clone(),
            secrets: extra.iter().map(HmacKey::new).collect(),
        }
    }

    /// Whether `signature` verifies `signing_input` under one of the extra
    /// secrets. Every secret is tried, whichever matches (the work does not
    /// tell which one did); each comparison is constant time.
    pub fn extra_secret_matches(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        self.secrets.iter().fold(false, |matched, key| {
            let mut mac = key.mac.clone();
            mac.update(signing_input);
            matched | mac.verify_slice(signature).is_ok()
        })
    }

    /// Reads a signature-verified HS256 payload under the profile: time
    /// claims exactly as the strict rules; `iss` ours or one of `issuers`;
    /// `aud` ours if present, and absent only if `audience_required = false`;
    /// the subject from `subject_claim` (then `sub`), a string or an integer;
    /// the scopes from `scope_claim` (then `scope`), a string or an array of
    /// strings. Returns the result and what it relied on.
    pub fn verify(
        &self,
        payload: &[u8],
        rules: &ClaimRules,
        kid: Option<&str>,
        now: u64,
    ) -> Result<(Verified, Loosenings), VerifyError> {
        // The whole payload must be UTF-8, ignored members too (claims::parse).
        let text = std::str::from_utf8(payload)
            .map_err(|_| VerifyError::Malformed(crate::reason!("payload is not UTF-8")))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let read = Reader {
            profile: &self.config,
        }
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| {
            if e.is_data() {
                VerifyError::BadClaims(crate::reason!(
                    "claims of the wrong type, duplicated, or out of range"
                ))
            } else {
                VerifyError::Malformed(crate::reason!("payload is not a JSON object"))
            }
        })?;
        let exp = rules.check_time(read.exp, read.nbf, read.iat, now)?;
        let mut used = Loosenings::NONE;
        match read.iss.as_deref() {
            Some(iss) if iss == rules.issuer => {}
            Some(iss) if !iss.is_empty() && self.config.issuers.iter().any(|i| i == iss) => {
                used = used.with(Loosening::Issuers);
            }
            None if self.config.issuers.iter().any(String::is_empty) => {
                used = used.with(Loosening::Issuers);
            }
            _ => return Err(VerifyError::BadClaims(crate::reason!("wrong issuer"))),
        }
        match &read.aud {
            Some(aud) if aud.contains(&rules.audience) => {}
            None if !self.config.audience_required => used = used.with(Loosening::AudienceRequired),
            _ => return Err(VerifyError::BadClaims(crate::reason!("wrong audience"))),
        }
        let (subject, from_claim) = match (read.subject, read.sub) {
            (Some(s), _) => (s, self.config.subject_claim != "sub"),
            (None, Some(s)) => (s, false),
            (None, None) => {
                return Err(VerifyError::BadClaims(crate::reason!(
                    "subject claim missing"
                )))
            }
        };
        if from_claim || matches!(subject, Subject::Number(_)) {
            used = used.with(Loosening::SubjectClaim);
        }
        let subject = subject.into_text();
        let (scopes, from_claim) = match (read.scope, read.scope_std) {
            (Some(s), _) => (Some(s), self.config.scope_claim != "scope"),
            (None, s) => (s, false),
        };
        if from_claim || matches!(scopes, Some(OneOrMany::Many(_))) {
            used = used.with(Loosening::ScopeClaim);
        }
        let scope = match scopes {
            None => Cow::Borrowed(""),
            Some(OneOrMany::One(s)) => s,
            Some(OneOrMany::Many(list)) => {
                if list.iter().any(|s| s.is_empty() || s.contains(' ')) {
                    return Err(VerifyError::BadClaims(crate::reason!(
                        "scope entries must be single scopes"
                    )));
                }
                Cow::Owned(list.join(" "))
            }
        };
        if subject.is_empty() {
            // As on the strict path: an empty subject names nobody.
            return Err(VerifyError::BadClaims(crate::reason!(
                "sub missing, empty or not printable"
            )));
        }
        let client_id = read.client_id.as_deref().unwrap_or(&subject);
        if !header_safe(&subject)
            || !header_safe(client_id)
            || !header_safe(&scope)
            || !kid.is_none_or(header_safe)
        {
            return Err(VerifyError::BadClaims(crate::reason!(
                "claims not printable"
            )));
        }
        let verified = Verified::new(&subject, client_id, &scope, Alg::Hs256, kid, exp);
        Ok((verified, used))
    }
}

/// A JSON string, borrowed from the payload unless it has escapes. (serde's
/// own `Cow<str>` always copies: a derive borrows only with `#[serde(borrow)]`,
/// which a hand-written visitor cannot use.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A subject: a string, or an integer read as its decimal text.
#[derive(Debug)]
enum Subject<'a> {
    Text(Cow<'a, str>),
    Number(String),
}

impl<'a> Subject<'a> {
    fn into_text(self) -> Cow<'a, str> {
        match self {
            Subject::Text(t) => t,
            Subject::Number(n) => Cow::Owned(n),
        }
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Subject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Subject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Subject::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Subject::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Subject::Number(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Subject::Number(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The claims the profile reads; each at most once.
#[derive(Debug, Default)]
struct Read<'a> {
    iss: Option<Cow<'a, str>>,
    aud: Option<OneOrMany<'a>>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    client_id: Option<Cow<'a, str>>,
    /// `subject_claim`.
    subject: Option<Subject<'a>>,
    /// `sub`, when `subject_claim` names another claim.
    sub: Option<Subject<'a>>,
    /// `scope_claim`.
    scope: Option<OneOrMany<'a>>,
    /// `scope`, when `scope_claim` names another claim.
    scope_std: Option<OneOrMany<'a>>,
}

/// Reads the payload object in one pass, with the configured claim names
/// (a derive cannot take them), refusing a claim it reads given twice.
struct Reader<'p> {
    profile: &'p VerifierLegacy,
}

fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("duplicate claim"));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Read<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Read<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for Reader<'_> {
    type Value = Read<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read<'de>, A::Error> {
        let mut r = Read::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let subject = *key == *self.profile.subject_claim;
            let scope = *key == *self.profile.scope_claim;
            match &*key {
                "iss" => once(&mut r.iss, map.next_value::<Text<'de>>()?.0)?,
                "aud" => once(&mut r.aud, map.next_value()?)?,
                "exp" => once(&mut r.exp, map.next_value()?)?,
                "nbf" => once(&mut r.nbf, map.next_value()?)?,
                "iat" => once(&mut r.iat, map.next_value()?)?,
                _ if subject => once(&mut r.subject, map.next_value()?)?,
                _ if scope => once(&mut r.scope, map.next_value()?)?,
                "client_id" => once(&mut r.client_id, map.next_value::<Text<'de>>()?.0)?,
                "sub" => once(&mut r.sub, map.next_value()?)?,
                "scope" => once(&mut r.scope_std, map.next_value()?)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
