//! The migration phase and the signature algorithms it involves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm keyshift signs or accepts.
///
/// Only the two algorithms of the migration exist; anything else in a token
/// header is rejected before a key is even looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Alg {
    /// HMAC-SHA256 with the shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an RSA key from the JWKS.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Alg {
    /// Both algorithms, in migration order.
    pub const ALL: [Alg; 2] = [Alg::Hs256, Alg::Rs256];

    /// The JOSE name (`HS256`, `RS256`), also used as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
        }
    }

    /// The position in [`Alg::ALL`], for per-algorithm arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Parses the exact, case-sensitive JOSE `alg` header value (RFC 7515 §4.1.1).
    pub fn from_jose(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = UnknownAlg;

    /// Case-insensitive, for command-line flags (`--accept hs256,rs256`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Alg::Hs256),
            "RS256" => Ok(Alg::Rs256),
            _ => Err(UnknownAlg(s.to_owned())),
        }
    }
}

/// A string that names no algorithm keyshift knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm `{0}` (expected HS256 or RS256)")]
pub struct UnknownAlg(pub String);

/// The migration phase: one setting that drives both services.
///
/// | phase        | signs  | JWKS lists RSA keys | accepts by default |
/// |--------------|--------|---------------------|--------------------|
/// | `legacy`     | HS256  | no                  | HS256              |
/// | `dual`       | HS256  | yes                 | HS256, RS256       |
/// | `transition` | RS256  | yes                 | HS256, RS256       |
/// | `asymmetric` | RS256  | yes                 | RS256              |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Phase 0: HS256 only, as before the migration.
    Legacy,
    /// Phase 1: HS256 still signed, RSA keys published and accepted.
    Dual,
    /// Phase 2: RS256 signed, HS256 still accepted while old tokens expire.
    Transition,
    /// Phase 3: RS256 only; no shared secret needed.
    Asymmetric,
}

impl Phase {
    /// Every phase, in migration order.
    pub const ALL: [Phase; 4] = [
        Phase::Legacy,
        Phase::Dual,
        Phase::Transition,
        Phase::Asymmetric,
    ];

    /// The config value, also used as the `phase` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Legacy => "legacy",
            Phase::Dual => "dual",
            Phase::Transition => "transition",
            Phase::Asymmetric => "asymmetric",
        }
    }

    /// The phase number of the runbook (0 to 3).
    pub const fn number(self) -> u8 {
        match self {
            Phase::Legacy => 0,
            Phase::Dual => 1,
            Phase::Transition => 2,
            Phase::Asymmetric => 3,
        }
    }

    /// The algorithm the issuer signs new tokens with.
    pub const fn signs(self) -> Alg {
        match self {
            Phase::Legacy | Phase::Dual => Alg::Hs256,
            Phase::Transition | Phase::Asymmetric => Alg::Rs256,
        }
    }

    /// Whether the verifier accepts `alg` by default in this phase.
    pub const fn accepts(self, alg: Alg) -> bool {
        match alg {
            Alg::Hs256 => !matches!(self, Phase::Asymmetric),
            Alg::Rs256 => !matches!(self, Phase::Legacy),
        }
    }

    /// Whether an `accept` override may include `alg` in this phase: every
    /// algorithm but HS256 in phase `asymmetric`, which needs no secret at all.
    pub const fn may_accept(self, alg: Alg) -> bool {
        !matches!((self, alg), (Phase::Asymmetric, Alg::Hs256))
    }

    /// The algorithms of `accept` this phase refuses in an override (see
    /// [`Phase::may_accept`]); empty when the override fits the phase.
    pub fn refused_in(self, accept: AcceptSet) -> AcceptSet {
        accept.iter().filter(|a| !self.may_accept(*a)).collect()
    }

    /// Whether the issuer's JWKS lists RSA keys in this phase.
    pub const fn publishes_rsa_keys(self) -> bool {
        !matches!(self, Phase::Legacy)
    }

    /// Whether the shared HS256 secret is needed in this phase (every phase but
    /// `asymmetric`: the issuer keeps it through `transition` so a rollback to
    /// `dual` is a config edit).
    pub const fn needs_shared_secret(self) -> bool {
        !matches!(self, Phase::Asymmetric)
    }

    /// The default accepted algorithms of this phase.
    pub fn default_accept(self) -> AcceptSet {
        let mut set = AcceptSet::EMPTY;
        for alg in Alg::ALL {
            if self.accepts(alg) {
                set = set.with(alg);
            }
        }
        set
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_owned()))
    }
}

/// A string that names no phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase `{0}` (expected legacy, dual, transition or asymmetric)")]
pub struct UnknownPhase(pub String);

/// A set of accepted algorithms, copyable and checked without allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AcceptSet(u8);

impl AcceptSet {
    /// Accepts nothing.
    pub const EMPTY: AcceptSet = AcceptSet(0);

    const fn bit(alg: Alg) -> u8 {
        match alg {
            Alg::Hs256 => 1,
            Alg::Rs256 => 2,
        }
    }

    /// This set plus `alg`.
    #[must_use]
    pub const fn with(self, alg: Alg) -> AcceptSet {
        AcceptSet(self.0 | Self::bit(alg))
    }

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Alg) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set, in migration order.
    pub fn iter(self) -> impl Iterator<Item = Alg> {
        Alg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Alg> for AcceptSet {
    fn from_iter<I: IntoIterator<Item = Alg>>(iter: I) -> Self {
        iter.into_iter().fold(AcceptSet::EMPTY, AcceptSet::with)
    }
}

impl fmt::Debug for AcceptSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for AcceptSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for alg in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(alg.as_str())?;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_table_matches_contract() {
        use Alg::*;
        use Phase::*;
        let table = [
            (Legacy, Hs256, false, [true, false]),
            (Dual, Hs256, true, [true, true]),
            (Transition, Rs256, true, [true, true]),
            (Asymmetric, Rs256, true, [false, true]),
        ];
        for (phase, signs, publishes, [hs, rs]) in table {
            assert_eq!(phase.signs(), signs, "{phase}");
            assert_eq!(phase.publishes_rsa_keys(), publishes, "{phase}");
            assert_eq!(phase.accepts(Hs256), hs, "{phase}");
            assert_eq!(phase.accepts(Rs256), rs, "{phase}");
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            assert!(phase.default_accept().iter().all(|a| phase.may_accept(a)));
        }
        let both = Phase::Dual.default_accept();
        assert_eq!(Asymmetric.refused_in(both).to_string(), "HS256");
        assert!(Transition.refused_in(both).is_empty());
    }

    #[test]
    fn alg_header_parsing_is_case_sensitive_but_flags_are_not() {
        assert_eq!(Alg::from_jose("RS256"), Some(Alg::Rs256));
        assert_eq!(Alg::from_jose("rs256"), None);
        assert_eq!(Alg::from_jose("none"), None);
        assert_eq!("hs256".parse::<Alg>(), Ok(Alg::Hs256));
        assert!("none".parse::<Alg>().is_err());
    }

    #[test]
    fn accept_set_round_trips() {
        let set: AcceptSet = [Alg::Rs256].into_iter().collect();
        assert!(set.contains(Alg::Rs256) && !set.contains(Alg::Hs256));
        assert_eq!(Phase::Dual.default_accept().to_string(), "HS256,RS256");
        assert_eq!(AcceptSet::EMPTY.to_string(), "(none)");
    }
}
