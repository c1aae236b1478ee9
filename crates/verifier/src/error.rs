//! Why a token was not accepted, one variant per `outcome` label of
//! `keyshift_verify_total` (plus the one fault that is ours, not the client's).

use keyshift_core::Alg;

/// The start of every `invalid_token` challenge (RFC 6750 §3).
macro_rules! invalid_token_challenge {
    ($text:expr) => {
        concat!(
            "Bearer realm=\"keyshift\", error=\"invalid_token\", error_description=\"",
            $text,
            "\""
        )
    };
}

/// A fixed reason for a refusal, made by [`reason!`](crate::reason) from a
/// string literal, with its RFC 6750 challenge built at compile time: a 401
/// on the hot path under attack allocates nothing for its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    text: &'static str,
    challenge: &'static str,
}

impl Reason {
    #[doc(hidden)]
    pub const fn from_parts(text: &'static str, challenge: &'static str) -> Reason {
        Reason { text, challenge }
    }

    /// The reason, as the challenge's `error_description` says it.
    pub const fn text(self) -> &'static str {
        self.text
    }

    /// The whole `WWW-Authenticate` value.
    pub const fn challenge(self) -> &'static str {
        self.challenge
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

/// A [`Reason`] from a string literal (printable ASCII without `"` or `\\`,
/// so it can stand in the challenge as it is).
#[macro_export]
macro_rules! reason {
    ($text:literal) => {
        $crate::error::Reason::from_parts(
            $text,
            concat!(
                "Bearer realm=\"keyshift\", error=\"invalid_token\", error_description=\"",
                $text,
                "\""
            ),
        )
    };
}

/// A rejection, or a failure to decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No bearer token in the request (outcome `missing`).
    #[error("no bearer token")]
    Missing,
    /// Not a compact JWS we can read: size, segments, base64url, header JSON,
    /// or a `crit` header we do not understand (outcome `malformed`).
    #[error("malformed token: {0}")]
    Malformed(Reason),
    /// `alg` is not HS256/RS256, or not accepted in this phase (outcome `alg_disabled`).
    #[error("algorithm not accepted")]
    AlgDisabled,
    /// RS256 with no `kid`, or a `kid` the JWKS does not have (outcome `unknown_kid`).
    #[error("unknown key id")]
    UnknownKid,
    /// The signature does not verify with the key (outcome `bad_signature`).
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past beyond the leeway (outcome `expired`).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future beyond the leeway (outcome `not_yet_valid`).
    #[error("token not yet valid")]
    NotYetValid,
    /// A claim is missing, of the wrong type, duplicated, or wrong
    /// (`iss`, `aud`, lifetime, `typ`) (outcome `bad_claims`).
    #[error("invalid claims: {0}")]
    BadClaims(Reason),
    /// The token lacks a required scope (outcome `insufficient_scope`).
    #[error("insufficient scope")]
    InsufficientScope,
    /// RS256 keys are unavailable: never fetched, or stale beyond
    /// `jwks_max_staleness`. Our fault: 503, not 401 (outcome `keys_unavailable`).
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl VerifyError {
    /// The `outcome` label.
    pub const fn outcome(&self) -> Outcome {
        match self {
            VerifyError::Missing => Outcome::Missing,
            VerifyError::Malformed(_) => Outcome::Malformed,
            VerifyError::AlgDisabled => Outcome::AlgDisabled,
            VerifyError::UnknownKid => Outcome::UnknownKid,
            VerifyError::KeysUnavailable => Outcome::KeysUnavailable,
            VerifyError::BadSignature => Outcome::BadSignature,
            VerifyError::Expired => Outcome::Expired,
            VerifyError::NotYetValid => Outcome::NotYetValid,
            VerifyError::BadClaims(_) => Outcome::BadClaims,
            VerifyError::InsufficientScope => Outcome::InsufficientScope,
        }
    }

    /// A short, fixed description for the RFC 6750 challenge (never token contents).
    pub fn description(&self) -> &'static str {
        match self {
            VerifyError::Missing => "no bearer token",
            VerifyError::Malformed(r) | VerifyError::BadClaims(r) => r.text(),
            VerifyError::AlgDisabled => "algorithm not accepted",
            VerifyError::UnknownKid => "unknown key id",
            VerifyError::BadSignature => "signature verification failed",
            VerifyError::Expired => "token expired",
            VerifyError::NotYetValid => "token not yet valid",
            VerifyError::InsufficientScope => "insufficient scope",
            VerifyError::KeysUnavailable => "signing keys unavailable",
        }
    }
}

impl VerifyError {
    /// The `WWW-Authenticate` value of a 401 for this error, built at
    /// compile time (`insufficient_scope` and 503 have their own).
    pub const fn invalid_token_challenge(&self) -> &'static str {
        match self {
            VerifyError::Malformed(r) | VerifyError::BadClaims(r) => r.challenge(),
            VerifyError::Missing => invalid_token_challenge!("no bearer token"),
            VerifyError::AlgDisabled => invalid_token_challenge!("algorithm not accepted"),
            VerifyError::UnknownKid => invalid_token_challenge!("unknown key id"),
            VerifyError::BadSignature => {
                invalid_token_challenge!("signature verification failed")
            }
            VerifyError::Expired => invalid_token_challenge!("token expired"),
            VerifyError::NotYetValid => invalid_token_challenge!("token not yet valid"),
            VerifyError::InsufficientScope => invalid_token_challenge!("insufficient scope"),
            VerifyError::KeysUnavailable => invalid_token_challenge!("signing keys unavailable"),
        }
    }
}

/// The `outcome` label values of `keyshift_verify_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Verified.
    Accepted,
    /// See [`VerifyError::Expired`].
    Expired,
    /// See [`VerifyError::NotYetValid`].
    NotYetValid,
    /// See [`VerifyError::BadSignature`].
    BadSignature,
    /// See [`VerifyError::AlgDisabled`].
    AlgDisabled,
    /// See [`VerifyError::UnknownKid`].
    UnknownKid,
    /// See [`VerifyError::BadClaims`].
    BadClaims,
    /// See [`VerifyError::Malformed`].
    Malformed,
    /// See [`VerifyError::Missing`].
    Missing,
    /// See [`VerifyError::InsufficientScope`].
    InsufficientScope,
    /// See [`VerifyError::KeysUnavailable`]: the 503, a fault of ours (the
    /// JWKS cannot be fetched), never a client's.
    KeysUnavailable,
}

impl Outcome {
    /// Every outcome, for pre-registering metric handles.
    pub const ALL: [Outcome; 11] = [
        Outcome::Accepted,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::BadSignature,
        Outcome::AlgDisabled,
        Outcome::UnknownKid,
        Outcome::BadClaims,
        Outcome::Malformed,
        Outcome::Missing,
        Outcome::InsufficientScope,
        Outcome::KeysUnavailable,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::BadSignature => "bad_signature",
            Outcome::AlgDisabled => "alg_disabled",
            Outcome::UnknownKid => "unknown_kid",
            Outcome::BadClaims => "bad_claims",
            Outcome::Malformed => "malformed",
            Outcome::Missing => "missing",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::KeysUnavailable => "keys_unavailable",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The `alg` label: HS256, RS256, or `other` for anything else (including `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgLabel {
    /// HS256.
    Hs256,
    /// RS256.
    Rs256,
    /// Anything else, or unknown (unreadable header, missing token).
    Other,
}

impl AlgLabel {
    /// Every label, for pre-registering metric handles.
    pub const ALL: [AlgLabel; 3] = [AlgLabel::Hs256, AlgLabel::Rs256, AlgLabel::Other];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlgLabel::Hs256 => "HS256",
            AlgLabel::Rs256 => "RS256",
            AlgLabel::Other => "other",
        }
    }

    /// The position in [`AlgLabel::ALL`]: an algorithm's [`Alg::index`],
    /// `other` after them.
    pub(crate) const fn index(self) -> usize {
        match self {
            AlgLabel::Hs256 => Alg::Hs256.index(),
            AlgLabel::Rs256 => Alg::Rs256.index(),
            AlgLabel::Other => Alg::ALL.len(),
        }
    }
}

impl From<Alg> for AlgLabel {
    fn from(a: Alg) -> Self {
        match a {
            Alg::Hs256 => AlgLabel::Hs256,
            Alg::Rs256 => AlgLabel::Rs256,
        }
    }
}

pub(crate) const fn outcome_index(o: Outcome) -> usize {
    o.index()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_compile_time_challenge_says_the_errors_description() {
        for e in [
            VerifyError::Missing,
            VerifyError::Malformed(crate::reason!("bad base64url")),
            VerifyError::AlgDisabled,
            VerifyError::UnknownKid,
            VerifyError::BadSignature,
            VerifyError::Expired,
            VerifyError::NotYetValid,
            VerifyError::BadClaims(crate::reason!("wrong issuer")),
            VerifyError::InsufficientScope,
            VerifyError::KeysUnavailable,
        ] {
            assert_eq!(
                e.invalid_token_challenge(),
                format!(
                    "Bearer realm=\"keyshift\", error=\"invalid_token\", error_description=\"{}\"",
                    e.description()
                ),
                "{e:?}"
            );
        }
    }
}
