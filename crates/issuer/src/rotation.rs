//! When keys change state: a pure function of the manifest, the clock and the
//! rotation settings, so the schedule is tested by moving a number.
//!
//! The lifecycle of a key is `next` → `active` → `retiring` → `retired`:
//!
//! - a `next` key is published in the JWKS but signs nothing; it is promoted
//!   at its `activate_at` (or, if it has none, at the active key's rotation
//!   date), and never sooner than `key_prepublish` after the running issuer
//!   first served it in its JWKS (`published_at`: not when it was created,
//!   which may be offline or in phase `legacy`), so every verifier has seen
//!   it before it sees a token signed by it;
//! - the `active` key signs (in the RS256 phases);
//! - a `retiring` key stays published until every token it signed has expired
//!   (`token_ttl`) plus `key_prepublish` for verifier caches, then it is
//!   `retired`: removed from the JWKS and its private key file deleted. The
//!   `token_ttl` counted is the longest the issuer ran with while the key was
//!   active (`max_token_ttl`), so a reload that shortened it cannot cut a
//!   longer-lived token's key out of the JWKS.

use std::time::Duration;

use crate::keystore::manifest::{KeyEntry, KeyState, Manifest};

/// The settings rotation depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Automatic rotation period; `None` disables the schedule.
    pub rotate_every: Option<Duration>,
    /// Pre-publish time of a new key, and grace time after a retiring key's last token.
    pub prepublish: Duration,
    /// Lifetime of the tokens a key signs.
    pub token_ttl: Duration,
}

/// One change the key store must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// There is no key at all: create one and make it active at once (no
    /// token can exist yet, so nothing needs pre-publishing).
    CreateInitialActive,
    /// Create a `next` key, to be promoted at `activate_at` (unix seconds).
    CreateNext {
        /// When it becomes active.
        activate_at: u64,
    },
    /// Promote the `next` key `kid`; the active key (if any) starts retiring.
    Promote {
        /// The next key.
        kid: String,
        /// When the old active key may be retired (unix seconds).
        retire_old_at: u64,
    },
    /// Retire the retiring key `kid`.
    Retire {
        /// The retiring key.
        kid: String,
    },
}

/// The steps due at `now` (unix seconds), in the order they must be applied.
pub fn due_steps(manifest: &Manifest, now: u64, policy: &RotationPolicy) -> Vec<Step> {
    let mut steps = Vec::new();
    let secs = |d: Duration| d.as_secs();

    for key in manifest.keys_in(KeyState::Retiring) {
        if key.retire_at.is_some_and(|t| t <= now) {
            steps.push(Step::Retire {
                kid: key.kid.clone(),
            });
        }
    }

    let active = manifest.keys_in(KeyState::Active).next();
    let next = manifest.keys_in(KeyState::Next).next();

    if active.is_none() && next.is_none() {
        steps.push(Step::CreateInitialActive);
        return steps;
    }

    if let Some(next) = next {
        let due = promotion(next, active, policy)
            .is_some_and(|p| p.date <= now && p.safe_from.is_some_and(|s| s <= now));
        if due {
            steps.push(Step::Promote {
                kid: next.kid.clone(),
                retire_old_at: retire_date(active, now, policy),
            });
        }
        return steps;
    }

    if let Some(rotate_at) = active.and_then(|a| rotation_date(a, policy)) {
        let create_at = rotate_at.saturating_sub(secs(policy.prepublish));
        if now >= create_at {
            steps.push(Step::CreateNext {
                activate_at: rotate_at.max(now.saturating_add(secs(policy.prepublish))),
            });
        }
    }
    steps
}

/// When a key that stops signing at `now` may leave the JWKS: after the
/// longest-lived token it can have signed expired (the longer of the
/// `token_ttl` recorded for it and the current one), plus `prepublish` for
/// verifier caches.
pub fn retire_date(active: Option<&KeyEntry>, now: u64, policy: &RotationPolicy) -> u64 {
    let ttl = active
        .and_then(|k| k.max_token_ttl)
        .unwrap_or(0)
        .max(policy.token_ttl.as_secs());
    now.saturating_add(ttl)
        .saturating_add(policy.prepublish.as_secs())
}

/// When the active key is next due to be replaced: the `next` key's date
/// (its `activate_at`, else the active key's rotation date), no sooner than
/// `prepublish` after the issuer first served it; without a `next` key, the
/// active key's rotation date. A `next` key not served yet is reported at
/// its date (it will wait `prepublish` once served). `None` when nothing is
/// scheduled: `rotate_every` off and no dated `next` key, or no key at all.
pub fn next_rotation(manifest: &Manifest, policy: &RotationPolicy) -> Option<u64> {
    let active = manifest.keys_in(KeyState::Active).next();
    match manifest.keys_in(KeyState::Next).next() {
        Some(next) => promotion(next, active, policy).map(|p| p.date.max(p.safe_from.unwrap_or(0))),
        None => active.and_then(|a| rotation_date(a, policy)),
    }
}

/// When a `next` key may replace the active one.
struct Promotion {
    /// The date asked for: its `activate_at`; with no active key (retired by
    /// hand) at once; else, unscheduled (`keyshift keys generate`), the
    /// active key's rotation date.
    date: u64,
    /// `prepublish` after the issuer first served it (verifiers have had
    /// time to fetch a JWKS listing it); `None` while never served (made
    /// offline, or in phase `legacy`).
    safe_from: Option<u64>,
}

/// The one promotion rule, for the schedule and for the gauge. `None` when
/// nothing asks for it: no date and no schedule (it waits for `keyshift keys
/// rotate`).
fn promotion(
    next: &KeyEntry,
    active: Option<&KeyEntry>,
    policy: &RotationPolicy,
) -> Option<Promotion> {
    let date = match (next.activate_at, active) {
        (Some(at), _) => at,
        (None, None) => 0,
        (None, Some(active)) => rotation_date(active, policy)?,
    };
    Some(Promotion {
        date,
        safe_from: next
            .published_at
            .map(|p| p.saturating_add(policy.prepublish.as_secs())),
    })
}

/// When the automatic schedule replaces `active`: `rotate_every` after it
/// became active; `None` when the schedule is off.
pub fn rotation_date(active: &KeyEntry, policy: &RotationPolicy) -> Option<u64> {
    let every = policy.rotate_every?;
    Some(
        active
            .activated_at
            .unwrap_or(active.created_at)
            .saturating_add(every.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::manifest::{KeyEntry, Manifest};

    const T0: u64 = 1_800_000_000;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            rotate_every: Some(Duration::from_secs(90 * 86_400)),
            prepublish: Duration::from_secs(900),
            token_ttl: Duration::from_secs(900),
        }
    }

    fn key(kid: &str, state: KeyState, created_at: u64) -> KeyEntry {
        KeyEntry {
            kid: kid.to_owned(),
            state,
            bits: 2048,
            created_at,
            // Served since it was made, as by an issuer in a publishing phase.
            published_at: Some(created_at),
            activate_at: None,
            activated_at: (state != KeyState::Next).then_some(created_at),
            max_token_ttl: None,
            retiring_at: None,
            retire_at: None,
            retired_at: None,
        }
    }

    #[test]
    fn empty_store_gets_an_active_key_at_once() {
        let m = Manifest::default();
        assert_eq!(due_steps(&m, T0, &policy()), [Step::CreateInitialActive]);
    }

    #[test]
    fn next_key_is_created_prepublish_before_the_rotation_date() {
        let m = Manifest {
            keys: vec![key("a", KeyState::Active, T0)],
            ..Manifest::default()
        };
        let rotate_at = T0 + 90 * 86_400;
        assert_eq!(due_steps(&m, rotate_at - 901, &policy()), []);
        assert_eq!(
            due_steps(&m, rotate_at - 900, &policy()),
            [Step::CreateNext {
                activate_at: rotate_at
            }]
        );
        // A late tick (issuer was down) still pre-publishes the full time.
        assert_eq!(
            due_steps(&m, rotate_at + 5000, &policy()),
            [Step::CreateNext {
                activate_at: rotate_at + 5000 + 900
            }]
        );
        let off = RotationPolicy {
            rotate_every: None,
            ..policy()
        };
        assert_eq!(due_steps(&m, rotate_at + 5000, &off), []);
    }

    #[test]
    fn next_key_is_never_promoted_before_prepublish_elapsed() {
        let mut next = key("b", KeyState::Next, T0 + 100);
        next.activate_at = Some(T0 + 100); // asked for "now" (e.g. a hand-edited manifest)
        let m = Manifest {
            keys: vec![key("a", KeyState::Active, T0), next],
            ..Manifest::default()
        };
        assert_eq!(due_steps(&m, T0 + 999, &policy()), []);
        assert_eq!(
            due_steps(&m, T0 + 1000, &policy()),
            [Step::Promote {
                kid: "b".into(),
                retire_old_at: T0 + 1000 + 1800
            }]
        );
    }

    #[test]
    fn next_key_waits_prepublish_after_it_was_first_served_not_created() {
        // Made offline (or in phase legacy) long ago, never served yet.
        let mut next = key("b", KeyState::Next, T0);
        next.activate_at = Some(T0 + 900);
        next.published_at = None;
        let mut m = Manifest {
            keys: vec![key("a", KeyState::Active, T0), next],
            ..Manifest::default()
        };
        let later = T0 + 86_400;
        assert_eq!(due_steps(&m, later, &policy()), []);
        // First served now: promoted `prepublish` later, not at once.
        assert!(m.record_served(&["a".into(), "b".into()], later));
        assert!(!m.record_served(&["a".into(), "b".into()], later + 5));
        assert_eq!(due_steps(&m, later + 899, &policy()), []);
        assert!(matches!(
            due_steps(&m, later + 900, &policy()).as_slice(),
            [Step::Promote { kid, .. }] if kid == "b"
        ));
        // A JWKS without it (phase legacy) restarts the clock.
        assert!(m.record_served(&[], later + 900));
        assert_eq!(due_steps(&m, later + 10_000, &policy()), []);
    }

    #[test]
    fn unscheduled_next_key_replaces_the_active_one_at_its_rotation_date() {
        let m = Manifest {
            keys: vec![key("a", KeyState::Active, T0), key("b", KeyState::Next, T0)],
            ..Manifest::default()
        };
        let rotate_at = T0 + 90 * 86_400;
        assert_eq!(due_steps(&m, T0 + 10 * 86_400, &policy()), []);
        assert_eq!(due_steps(&m, rotate_at - 1, &policy()), []);
        assert_eq!(
            due_steps(&m, rotate_at, &policy()),
            [Step::Promote {
                kid: "b".into(),
                retire_old_at: rotate_at + 1800
            }]
        );
        // The schedule keeps going after it: no step stays stuck in the past.
        assert_eq!(
            due_steps(&m, rotate_at + 86_400, &policy()).len(),
            1,
            "still due after the date"
        );
        // Without a schedule it waits for `keyshift keys rotate`.
        let off = RotationPolicy {
            rotate_every: None,
            ..policy()
        };
        assert_eq!(due_steps(&m, rotate_at + 86_400, &off), []);
    }

    #[test]
    fn unscheduled_next_key_created_late_still_waits_for_prepublish() {
        let rotate_at = T0 + 90 * 86_400;
        let m = Manifest {
            keys: vec![
                key("a", KeyState::Active, T0),
                key("b", KeyState::Next, rotate_at - 100),
            ],
            ..Manifest::default()
        };
        assert_eq!(due_steps(&m, rotate_at, &policy()), []);
        assert_eq!(due_steps(&m, rotate_at + 799, &policy()), []);
        assert!(matches!(
            due_steps(&m, rotate_at + 800, &policy()).as_slice(),
            [Step::Promote { .. }]
        ));
    }

    #[test]
    fn retirement_waits_for_the_longest_token_ttl_the_key_signed_with() {
        let mut active = key("a", KeyState::Active, T0);
        active.max_token_ttl = Some(86_400); // ran with 24h, since reloaded to 15m
        let mut next = key("b", KeyState::Next, T0);
        next.activate_at = Some(T0 + 1000);
        let m = Manifest {
            keys: vec![active, next],
            ..Manifest::default()
        };
        assert_eq!(
            due_steps(&m, T0 + 1000, &policy()),
            [Step::Promote {
                kid: "b".into(),
                retire_old_at: T0 + 1000 + 86_400 + 900
            }]
        );
        // The current token_ttl counts when it is the longer one.
        let long = RotationPolicy {
            token_ttl: Duration::from_secs(100_000),
            ..policy()
        };
        assert_eq!(retire_date(m.keys.first(), T0, &long), T0 + 100_000 + 900);
    }

    #[test]
    fn gauge_and_schedule_agree_when_the_active_key_was_retired_by_hand() {
        let mut next = key("b", KeyState::Next, T0);
        next.published_at = Some(T0 + 100);
        let m = Manifest {
            keys: vec![next],
            ..Manifest::default()
        };
        let at = next_rotation(&m, &policy()).expect("promoted once safe");
        assert_eq!(at, T0 + 100 + 900);
        assert_eq!(due_steps(&m, at - 1, &policy()), []);
        assert!(matches!(
            due_steps(&m, at, &policy()).as_slice(),
            [Step::Promote { kid, .. }] if kid == "b"
        ));
    }

    #[test]
    fn next_rotation_is_the_date_the_active_key_will_really_be_replaced() {
        let rotate_at = T0 + 90 * 86_400;
        let off = RotationPolicy {
            rotate_every: None,
            ..policy()
        };
        let mut m = Manifest {
            keys: vec![key("a", KeyState::Active, T0)],
            ..Manifest::default()
        };
        assert_eq!(next_rotation(&m, &policy()), Some(rotate_at));
        assert_eq!(next_rotation(&m, &off), None);
        assert_eq!(next_rotation(&Manifest::default(), &policy()), None);
        // An unscheduled next key goes at the active key's date...
        m.keys.push(key("b", KeyState::Next, T0));
        assert_eq!(next_rotation(&m, &policy()), Some(rotate_at));
        assert_eq!(next_rotation(&m, &off), None, "waits for keys rotate");
        // ...a dated one at its date, never before it has been served prepublish.
        if let Some(b) = m.keys.last_mut() {
            b.activate_at = Some(T0 + 100);
            b.published_at = Some(T0 + 50);
        }
        assert_eq!(next_rotation(&m, &off), Some(T0 + 950));
        if let Some(b) = m.keys.last_mut() {
            b.published_at = Some(T0 - 5000);
        }
        assert_eq!(next_rotation(&m, &off), Some(T0 + 100));
    }

    #[test]
    fn retiring_key_retires_at_its_date_only() {
        let mut old = key("a", KeyState::Retiring, T0);
        old.retire_at = Some(T0 + 1800);
        let m = Manifest {
            keys: vec![old, key("b", KeyState::Active, T0)],
            ..Manifest::default()
        };
        assert_eq!(due_steps(&m, T0 + 1799, &policy()), []);
        assert_eq!(
            due_steps(&m, T0 + 1800, &policy()),
            [Step::Retire { kid: "a".into() }]
        );
    }
}
