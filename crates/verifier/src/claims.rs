//! Claims: decoded into typed structs (never `serde_json::Value` for anything
//! that decides access), then checked exactly.

use std::borrow::Cow;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::error::VerifyError;

/// A JSON number that is a plausible NumericDate: finite, ≥ 0, ≤ 2^53.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericDate(pub u64);

/// Largest accepted NumericDate (2^53, beyond which f64 is inexact).
const MAX_DATE: u64 = 1 << 53;

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a NumericDate (seconds since the epoch)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                if v <= MAX_DATE {
                    Ok(NumericDate(v))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("negative date"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && (0.0..=MAX_DATE as f64).contains(&v) {
                    Ok(NumericDate(v.floor() as u64))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One string or an array of strings: `aud` (RFC 7519 §4.1.3), and the
/// scopes of a legacy token.
#[derive(Debug)]
pub enum OneOrMany<'a> {
    /// A single string.
    One(Cow<'a, str>),
    /// Several.
    Many(Vec<Cow<'a, str>>),
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
pub type Audience<'a> = OneOrMany<'a>;

impl OneOrMany<'_> {
    /// Whether `value` is the one string or one of the array.
    pub fn contains(&self, value: &str) -> bool {
        match self {
            OneOrMany::One(a) => *a == value,
            OneOrMany::Many(list) => list.iter().any(|a| *a == value),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`, which buffers the value
// into an intermediate tree first: this is on the verify path.
impl<'de: 'a, 'a> Deserialize<'de> for OneOrMany<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(item) = seq.next_element::<Cow<'de, str>>()? {
                    all.push(item);
                }
                Ok(Audience::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// The claims keyshift reads. Other claims are ignored; a claim given twice
/// or of the wrong type fails decoding.
#[derive(Debug, Deserialize)]
pub struct Claims<'a> {
    /// Issuer: a string, compared exactly.
    #[serde(borrow, default)]
    pub iss: Option<Cow<'a, str>>,
    /// Subject.
    #[serde(borrow, default)]
    pub sub: Option<Cow<'a, str>>,
    /// Audience.
    #[serde(borrow, default)]
    pub aud: Option<Audience<'a>>,
    /// Expiry (required).
    #[serde(default)]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default)]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<NumericDate>,
    /// Space-delimited scopes.
    #[serde(borrow, default)]
    pub scope: Option<Cow<'a, str>>,
    /// The OAuth client (RFC 9068 §2.2).
    #[serde(borrow, default)]
    pub client_id: Option<Cow<'a, str>>,
}

/// The settings the claim checks need.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// Exact `iss`.
    pub issuer: String,
    /// Our audience.
    pub audience: String,
    /// Clock-skew leeway, seconds.
    pub leeway: u64,
    /// Longest lifetime, seconds.
    pub max_lifetime: u64,
}

/// Parses the decoded payload. Syntax errors are `malformed`; type errors,
/// duplicates and range errors are `bad_claims`.
pub fn parse(payload: &[u8]) -> Result<Claims<'_>, VerifyError> {
    // The whole payload, ignored members too, must be UTF-8 (RFC 7519 §7.2).
    let text = std::str::from_utf8(payload)
        .map_err(|_| VerifyError::Malformed(crate::reason!("payload is not UTF-8")))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            VerifyError::BadClaims(crate::reason!(
                "claims of the wrong type, duplicated, or out of range"
            ))
        } else {
            VerifyError::Malformed(crate::reason!("payload is not a JSON object"))
        }
    })
}

impl ClaimRules {
    /// Checks time, issuer and audience; `now` in seconds. Returns `exp`.
    pub fn check(&self, c: &Claims<'_>, now: u64) -> Result<u64, VerifyError> {
        let exp = self.check_time(c.exp, c.nbf, c.iat, now)?;
        match c.iss.as_deref() {
            Some(iss) if iss == self.issuer => {}
            _ => return Err(VerifyError::BadClaims(crate::reason!("wrong issuer"))),
        }
        if !c.aud.as_ref().is_some_and(|a| a.contains(&self.audience)) {
            return Err(VerifyError::BadClaims(crate::reason!("wrong audience")));
        }
        Ok(exp)
    }

    /// Checks `exp` (required), `nbf` and `iat` against `now` with the
    /// leeway, and the lifetime; returns `exp`. The legacy profile never
    /// loosens these.
    #[inline]
    pub fn check_time(
        &self,
        exp: Option<NumericDate>,
        nbf: Option<NumericDate>,
        iat: Option<NumericDate>,
        now: u64,
    ) -> Result<u64, VerifyError> {
        let exp = exp
            .ok_or(VerifyError::BadClaims(crate::reason!("exp is required")))?
            .0;
        if exp.saturating_add(self.leeway) <= now {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|n| n.0 > now.saturating_add(self.leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(iat) = iat {
            if iat.0 > now.saturating_add(self.leeway) {
                return Err(VerifyError::NotYetValid);
            }
            if exp.saturating_sub(iat.0) > self.max_lifetime {
                return Err(VerifyError::BadClaims(crate::reason!(
                    "lifetime longer than allowed"
                )));
            }
        }
        if exp.saturating_sub(now) > self.max_lifetime.saturating_add(self.leeway) {
            return Err(VerifyError::BadClaims(crate::reason!(
                "exp too far in the future"
            )));
        }
        Ok(exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_900_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://iss".into(),
            audience: "api".into(),
            leeway: 30,
            max_lifetime: 3600,
        }
    }

    fn check(json: &str) -> Result<u64, VerifyError> {
        let c = parse(json.as_bytes())?;
        rules().check(&c, NOW)
    }

    fn base(extra: &str) -> String {
        format!(r#"{{"iss":"https://iss","aud":"api","iat":{NOW},{extra}}}"#)
    }

    #[test]
    fn time_claims() {
        assert!(check(&base(&format!(r#""exp":{}"#, NOW + 60))).is_ok());
        assert_eq!(
            check(&base(&format!(r#""exp":{}"#, NOW - 31))),
            Err(VerifyError::Expired)
        );
        assert!(
            check(&base(&format!(r#""exp":{}"#, NOW - 29))).is_ok(),
            "inside leeway"
        );
        assert_eq!(
            check(&base(&format!(r#""exp":{},"nbf":{}"#, NOW + 60, NOW + 31))),
            Err(VerifyError::NotYetValid)
        );
        let future_iat = format!(
            r#"{{"iss":"https://iss","aud":"api","iat":{},"exp":{}}}"#,
            NOW + 31,
            NOW + 60
        );
        assert_eq!(check(&future_iat), Err(VerifyError::NotYetValid));
        assert!(
            matches!(
                check(&base("\"scope\":\"a\"")),
                Err(VerifyError::BadClaims(_))
            ),
            "exp required"
        );
        assert!(matches!(
            check(&base(r#""exp":"1900000060""#)),
            Err(VerifyError::BadClaims(_))
        ));
        assert!(matches!(
            check(&base(r#""exp":1e300"#)),
            Err(VerifyError::BadClaims(_))
        ));
        assert!(matches!(
            check(&base(r#""exp":-5"#)),
            Err(VerifyError::BadClaims(_))
        ));
        assert!(
            matches!(
                check(&base(&format!(r#""exp":{}"#, NOW + 3601 + 30))),
                Err(VerifyError::BadClaims(_))
            ),
            "beyond max lifetime"
        );
        let no_iat = format!(
            r#"{{"iss":"https://iss","aud":"api","exp":{}}}"#,
            NOW + 3600 + 31
        );
        assert!(
            matches!(check(&no_iat), Err(VerifyError::BadClaims(_))),
            "exp bounded without iat"
        );
    }

    #[test]
    fn issuer_and_audience_exactly() {
        let ok = format!(r#""exp":{}"#, NOW + 60);
        let wrong_iss = format!(r#"{{"iss":"https://iss/","aud":"api","exp":{}}}"#, NOW + 60);
        assert!(matches!(check(&wrong_iss), Err(VerifyError::BadClaims(_))));
        let iss_array = format!(
            r#"{{"iss":["https://iss"],"aud":"api","exp":{}}}"#,
            NOW + 60
        );
        assert!(matches!(check(&iss_array), Err(VerifyError::BadClaims(_))));
        let aud_list = format!(
            r#"{{"iss":"https://iss","aud":["x","api"],"exp":{}}}"#,
            NOW + 60
        );
        assert!(check(&aud_list).is_ok());
        let aud_wrong = format!(
            r#"{{"iss":"https://iss","aud":["x","y"],"exp":{}}}"#,
            NOW + 60
        );
        assert!(matches!(check(&aud_wrong), Err(VerifyError::BadClaims(_))));
        assert!(check(&base(&ok)).is_ok());
    }

    #[test]
    fn duplicate_claims_are_refused() {
        let dup = format!(
            r#"{{"iss":"https://iss","iss":"https://evil","aud":"api","exp":{}}}"#,
            NOW + 60
        );
        assert!(matches!(check(&dup), Err(VerifyError::BadClaims(_))));
        assert!(matches!(check("not json"), Err(VerifyError::Malformed(_))));
        // Invalid UTF-8 (also overlong) in an ignored member: malformed.
        for bad in [
            &b"{\"exp\":1,\"x\":\"\xff\xfe\"}"[..],
            b"{\"exp\":1,\"x\":\"\xc0\xaf\"}",
        ] {
            assert!(
                matches!(parse(bad), Err(VerifyError::Malformed(r)) if r.text() == "payload is not UTF-8")
            );
        }
    }
}
