//! The soak's own account of the answers its requests got, apart from
//! goose's: each answer a [`Class`], counted per kind of request.
//!
//! The 5xx rule: a 503 is intended only while the JWKS outage is on (the
//! verifier answers 503 to a request that needs a JWKS fetch it cannot wait
//! for); any other 5xx, and a 503 at any other time, fails the soak. A
//! legitimate request must get its 200 whatever happens, outage included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::pool::Kind;

/// What one answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 200.
    Ok,
    /// 401.
    Unauthorized,
    /// 429.
    RateLimited,
    /// 503 while the JWKS outage was on.
    Outage503,
    /// Any other 5xx, or a 503 outside the outage.
    ServerError,
    /// Any other status.
    Other,
    /// No answer: connection error or timeout.
    NoAnswer,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 7] = [
        Class::Ok,
        Class::Unauthorized,
        Class::RateLimited,
        Class::Outage503,
        Class::ServerError,
        Class::Other,
        Class::NoAnswer,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// The class of an answer with `status` (`None`: no answer);
/// `during_outage`: whether the JWKS outage was on at some time while the
/// request was out.
pub fn classify(status: Option<u16>, during_outage: bool) -> Class {
    match status {
        None => Class::NoAnswer,
        Some(200) => Class::Ok,
        Some(401) => Class::Unauthorized,
        Some(429) => Class::RateLimited,
        Some(503) if during_outage => Class::Outage503,
        Some(500..=599) => Class::ServerError,
        Some(_) => Class::Other,
    }
}

/// Whether a `/verify` answer of `class` is what a request of `kind` must
/// get: 200 for a legitimate token, whatever happens; 401 for the others,
/// or a 503 during the outage.
pub fn verify_as_expected(kind: Kind, class: Class) -> bool {
    if kind.legitimate() {
        class == Class::Ok
    } else {
        matches!(class, Class::Unauthorized | Class::Outage503)
    }
}

/// Answers by class (`soak.json`'s per-kind counts).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Answers {
    /// 200.
    pub ok: u64,
    /// 401.
    pub unauthorized: u64,
    /// 429.
    pub rate_limited: u64,
    /// 503 while the JWKS outage was on.
    pub outage_503: u64,
    /// Any other 5xx, or a 503 outside the outage.
    pub server_errors: u64,
    /// Any other status.
    pub other: u64,
    /// No answer (connection error, timeout).
    pub no_answer: u64,
}

impl Answers {
    /// The count of `class`.
    pub fn get(&self, class: Class) -> u64 {
        match class {
            Class::Ok => self.ok,
            Class::Unauthorized => self.unauthorized,
            Class::RateLimited => self.rate_limited,
            Class::Outage503 => self.outage_503,
            Class::ServerError => self.server_errors,
            Class::Other => self.other,
            Class::NoAnswer => self.no_answer,
        }
    }

    fn slot(&mut self, class: Class) -> &mut u64 {
        match class {
            Class::Ok => &mut self.ok,
            Class::Unauthorized => &mut self.unauthorized,
            Class::RateLimited => &mut self.rate_limited,
            Class::Outage503 => &mut self.outage_503,
            Class::ServerError => &mut self.server_errors,
            Class::Other => &mut self.other,
            Class::NoAnswer => &mut self.no_answer,
        }
    }

    /// Every answer (and non-answer).
    pub fn total(&self) -> u64 {
        Class::ALL.iter().map(|c| self.get(*c)).sum()
    }

    /// `self + other`.
    pub fn plus(mut self, other: &Answers) -> Answers {
        for c in Class::ALL {
            *self.slot(c) += other.get(c);
        }
        self
    }
}

/// Live counters of one kind of request: sent, and answers by class.
#[derive(Debug, Default)]
pub struct LiveTally {
    sent: AtomicU64,
    by_class: [AtomicU64; Class::ALL.len()],
}

impl LiveTally {
    /// A request is about to go.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A request got an answer of `class`.
    pub fn answered(&self, class: Class) {
        // `Class::ALL` lists every class at its index: never out of range.
        self.by_class[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn tally(&self) -> Tally {
        let mut answers = Answers::default();
        for c in Class::ALL {
            *answers.slot(c) = self.by_class[c.index()].load(Ordering::Relaxed);
        }
        Tally {
            sent: self.sent.load(Ordering::Relaxed),
            answers,
        }
    }
}

/// Sent and answered, of one kind (`soak.json`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    /// Requests started.
    pub sent: u64,
    /// Their answers.
    pub answers: Answers,
}

impl Tally {
    /// `self + other`.
    pub fn plus(self, other: &Tally) -> Tally {
        Tally {
            sent: self.sent + other.sent,
            answers: self.answers.plus(&other.answers),
        }
    }

    /// `self - earlier` (counters only grow; saturating all the same).
    pub fn since(self, earlier: &Tally) -> Tally {
        let mut answers = self.answers;
        for c in Class::ALL {
            *answers.slot(c) = self.answers.get(c).saturating_sub(earlier.answers.get(c));
        }
        Tally {
            sent: self.sent.saturating_sub(earlier.sent),
            answers,
        }
    }
}

/// The `/verify` answers of the whole soak, per [`Kind`] (shared by every
/// goose user of every phase).
#[derive(Debug, Default)]
pub struct VerifyLedger {
    kinds: [LiveTally; Kind::ALL.len()],
}

impl VerifyLedger {
    /// The counters of `kind`.
    pub fn of(&self, kind: Kind) -> &LiveTally {
        // `Kind::ALL` lists every kind at its index: never out of range.
        &self.kinds[kind.index()]
    }

    /// Per kind that was sent, by name.
    pub fn tallies(&self) -> BTreeMap<String, Tally> {
        Kind::ALL
            .into_iter()
            .map(|k| (k.name().to_owned(), self.of(k).tally()))
            .filter(|(_, t)| t.sent > 0 || t.answers.total() > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_is_intended_only_during_the_outage() {
        assert_eq!(classify(Some(503), true), Class::Outage503);
        assert_eq!(classify(Some(503), false), Class::ServerError);
        assert_eq!(classify(Some(500), true), Class::ServerError);
        assert_eq!(classify(Some(502), true), Class::ServerError);
        assert_eq!(classify(Some(200), true), Class::Ok);
        assert_eq!(classify(Some(401), false), Class::Unauthorized);
        assert_eq!(classify(Some(429), false), Class::RateLimited);
        assert_eq!(classify(Some(400), false), Class::Other);
        assert_eq!(classify(None, true), Class::NoAnswer);
    }

    #[test]
    fn legitimate_tokens_need_a_200_even_during_the_outage() {
        for kind in [Kind::Hs256, Kind::Rs256, Kind::NewKid] {
            assert!(verify_as_expected(kind, Class::Ok));
            assert!(!verify_as_expected(kind, Class::Outage503), "{kind:?}");
            assert!(!verify_as_expected(kind, Class::Unauthorized), "{kind:?}");
        }
        for kind in [Kind::Straggler, Kind::Attack, Kind::Expired, Kind::Forged] {
            assert!(verify_as_expected(kind, Class::Unauthorized));
            assert!(verify_as_expected(kind, Class::Outage503), "{kind:?}");
            assert!(!verify_as_expected(kind, Class::Ok), "{kind:?}: accepted");
            assert!(!verify_as_expected(kind, Class::ServerError), "{kind:?}");
            assert!(!verify_as_expected(kind, Class::NoAnswer), "{kind:?}");
        }
    }

    #[test]
    fn the_ledger_counts_per_kind_and_class() {
        let ledger = VerifyLedger::default();
        ledger.of(Kind::Rs256).sent();
        let before = ledger.of(Kind::Rs256).tally();
        ledger.of(Kind::Rs256).sent();
        ledger.of(Kind::Rs256).answered(Class::Ok);
        ledger.of(Kind::Attack).sent();
        ledger.of(Kind::Attack).answered(Class::Outage503);
        let t = ledger.tallies();
        assert_eq!(t.len(), 2, "kinds never sent are left out: {t:?}");
        let rs = t[Kind::Rs256.name()];
        assert_eq!((rs.sent, rs.answers.ok, rs.answers.total()), (2, 1, 1));
        assert_eq!(t[Kind::Attack.name()].answers.outage_503, 1);
        let sum = rs.plus(&t[Kind::Attack.name()]);
        assert_eq!((sum.sent, sum.answers.total()), (3, 2));
        let since = rs.since(&before);
        assert_eq!((since.sent, since.answers.ok), (1, 1));
    }
}
