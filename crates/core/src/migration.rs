//! The issuer's `GET /migration` answer: its phase and, as the only party
//! that knows, until when an HS256 token it minted may still be valid. The
//! issuer serialises it, verifiers read it: one type for both.
//!
//! ```
//! use keyshift_core::migration::IssuerMigration;
//! use keyshift_core::{Alg, Phase};
//! let answer: IssuerMigration = serde_json::from_str(r#"{
//!     "service": "issuer", "phase": "transition", "signs": "RS256",
//!     "hs256_last_issued_unix": 1000, "hs256_valid_until_unix": 1900,
//!     "tracked_since_unix": 10
//! }"#).unwrap();
//! assert_eq!(answer.signs, Alg::Rs256);
//! assert_eq!(answer.hs256_valid_until(), Some(1900));
//! ```

use serde::{Deserialize, Serialize};

use crate::{Alg, Phase};

/// What `service` says in the issuer's answer, so that a reader (or a
/// human with curl) never mistakes it for a verifier's `/migration`.
pub const ISSUER_SERVICE: &str = "issuer";

/// The JSON of the issuer's `GET /migration`. Every field is the issuer's.
/// Unknown fields are ignored when read (a newer issuer may say more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerMigration {
    /// Always [`ISSUER_SERVICE`].
    pub service: String,
    /// The issuer's phase.
    pub phase: Phase,
    /// What the issuer signs new tokens with in that phase.
    pub signs: Alg,
    /// When the issuer last minted an HS256 token (`None`: none since
    /// `tracked_since_unix`).
    pub hs256_last_issued_unix: Option<u64>,
    /// No HS256 token the issuer minted is valid after this instant (the
    /// latest `exp`, persisted ahead of minting, so possibly a little later);
    /// `None` when no HS256 token it minted can exist.
    pub hs256_valid_until_unix: Option<u64>,
    /// Since when the issuer has kept this record (its key directory's first
    /// start with this version).
    pub tracked_since_unix: u64,
}

impl IssuerMigration {
    /// Until when an HS256 token from this issuer may be valid: never while
    /// it still signs HS256 (`u64::MAX`), else `hs256_valid_until_unix`.
    pub fn hs256_valid_until(&self) -> Option<u64> {
        match self.signs {
            Alg::Hs256 => Some(u64::MAX),
            Alg::Rs256 => self.hs256_valid_until_unix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_signing_hs256_has_tokens_valid_without_end() {
        let mut answer = IssuerMigration {
            service: ISSUER_SERVICE.into(),
            phase: Phase::Dual,
            signs: Alg::Hs256,
            hs256_last_issued_unix: Some(5),
            hs256_valid_until_unix: Some(905),
            tracked_since_unix: 1,
        };
        assert_eq!(answer.hs256_valid_until(), Some(u64::MAX));
        answer.signs = Alg::Rs256;
        answer.phase = Phase::Transition;
        assert_eq!(answer.hs256_valid_until(), Some(905));
        let text = serde_json::to_string(&answer).expect("json");
        assert!(text.contains("\"signs\":\"RS256\""), "{text}");
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        value["added_later"] = serde_json::json!(1);
        let back: IssuerMigration = serde_json::from_value(value).expect("unknown fields ignored");
        assert_eq!(back, answer);
    }
}
