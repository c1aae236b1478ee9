//! Stragglers: clients whose tokens this verifier refuses as `alg_disabled`
//! although the algorithm is a real one (HS256 after phase `asymmetric`,
//! RS256 in `legacy`). Each is a client to chase, so each is attributable:
//! logged with its `client_id`, `sub` and `iss` (at most once per client and
//! algorithm per [`LOG_EVERY`], with the count since), and listed by
//! `/migration` (the [`MAX_STRAGGLERS`] most recently seen, with counts).
//!
//! The claims are read *without* checking the signature (there is no key to
//! check it with): they are what the token says, which is what an operator
//! needs to find the client, and they are bounded, printable and never
//! decide anything. A flood of made-up client ids can push real ones out of
//! the list, never grow it.

use std::collections::HashMap;
use std::sync::Mutex;

use keyshift_core::{b64, Alg};
use serde::{Deserialize, Serialize};

use crate::claims::NumericDate;

/// Most stragglers remembered (the least recently seen leaves first).
pub const MAX_STRAGGLERS: usize = 100;
/// Seconds between two log lines about the same client and algorithm.
pub const LOG_EVERY: u64 = 60;
/// Longest claim value kept, in bytes (longer ones are cut).
const MAX_CLAIM_BYTES: usize = 128;
/// Largest payload read for a straggler's claims.
const MAX_PAYLOAD_BYTES: usize = 8 * 1024;

/// One straggler, as `/migration` lists it. The claims are unverified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Straggler {
    /// `client_id`, else `sub`, else empty.
    pub client: String,
    /// `sub`, if any.
    pub sub: Option<String>,
    /// `iss`, if any.
    pub iss: Option<String>,
    /// The refused algorithm.
    pub alg: &'static str,
    /// Tokens refused since the first.
    pub count: u64,
    /// First refusal (unix seconds).
    pub first_seen_unix: u64,
    /// Latest refusal.
    pub last_seen_unix: u64,
    /// The latest `exp` among its refused tokens: until then the client may
    /// keep presenting them.
    pub latest_exp_unix: Option<u64>,
}

/// What to log about a straggler, when its line is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The straggler as it stands.
    pub straggler: Straggler,
    /// Refusals since the last line (including this one).
    pub since_last_line: u64,
}

#[derive(Debug)]
struct Entry {
    straggler: Straggler,
    logged_at: Option<u64>,
    unlogged: u64,
}

/// The bounded set of stragglers. Touched only on refusals, never on the
/// accept path.
#[derive(Debug, Default)]
pub struct Stragglers {
    entries: Mutex<HashMap<(Alg, String), Entry>>,
}

/// The claims worth naming a client by; everything else is skipped.
#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    client_id: Option<serde_json::Value>,
    #[serde(default)]
    sub: Option<serde_json::Value>,
    #[serde(default)]
    iss: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<NumericDate>,
}

/// A claim as printable text, bounded: strings as they are, numbers as
/// decimal; control characters and anything past [`MAX_CLAIM_BYTES`] dropped.
fn text(value: Option<serde_json::Value>) -> Option<String> {
    let raw = match value? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mut out = String::with_capacity(raw.len().min(MAX_CLAIM_BYTES));
    for c in raw.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_CLAIM_BYTES {
            break;
        }
        out.push(c);
    }
    Some(out)
}

/// The naming claims of `token`'s payload, unverified; `None` when it is
/// too large or unreadable.
fn read_named(token: &str) -> Option<Named> {
    let payload_b64 = token.split('.').nth(1)?;
    if payload_b64.len() > MAX_PAYLOAD_BYTES {
        return None;
    }
    let payload = b64::decode(payload_b64).ok()?;
    serde_json::from_slice(&payload).ok()
}

impl Stragglers {
    /// Notes a token of `alg` refused as `alg_disabled` at `now`; returns the
    /// log line when one is due. `None` too when the payload is unreadable
    /// (then it is not a client's token to chase).
    pub fn refused(&self, alg: Alg, token: &str, now: u64) -> Option<Due> {
        let named = read_named(token)?;
        let sub = text(named.sub);
        let client = text(named.client_id)
            .or_else(|| sub.clone())
            .unwrap_or_default();
        let iss = text(named.iss);
        let exp = named.exp.map(|d| d.0);
        self.note(alg, client, sub, iss, exp, now)
    }

    /// Notes a token accepted for `client` (and `sub`, verified), with the
    /// `iss` read from `token`, as [`Stragglers::refused`] notes a refusal:
    /// the same bounded list and once-a-minute log budget per client.
    pub fn accepted(
        &self,
        alg: Alg,
        client: &str,
        sub: &str,
        exp: u64,
        token: &str,
        now: u64,
    ) -> Option<Due> {
        let iss = read_named(token).and_then(|n| text(n.iss));
        let limit = |s: &str| text(Some(serde_json::Value::String(s.to_owned())));
        self.note(
            alg,
            limit(client).unwrap_or_default(),
            limit(sub),
            iss,
            Some(exp),
            now,
        )
    }

    fn note(
        &self,
        alg: Alg,
        client: String,
        sub: Option<String>,
        iss: Option<String>,
        exp: Option<u64>,
        now: u64,
    ) -> Option<Due> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (alg, client);
        if !entries.contains_key(&key) && entries.len() >= MAX_STRAGGLERS {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.straggler.last_seen_unix)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            straggler: Straggler {
                client: key.1.clone(),
                sub: None,
                iss: None,
                alg: alg.as_str(),
                count: 0,
                first_seen_unix: now,
                last_seen_unix: now,
                latest_exp_unix: None,
            },
            logged_at: None,
            unlogged: 0,
        });
        let s = &mut entry.straggler;
        s.count += 1;
        s.last_seen_unix = s.last_seen_unix.max(now);
        s.latest_exp_unix = s.latest_exp_unix.max(exp);
        s.sub = sub;
        s.iss = iss;
        entry.unlogged += 1;
        let due = entry
            .logged_at
            .is_none_or(|at| now >= at.saturating_add(LOG_EVERY));
        if !due {
            return None;
        }
        entry.logged_at = Some(now);
        let since_last_line = std::mem::take(&mut entry.unlogged);
        Some(Due {
            straggler: entry.straggler.clone(),
            since_last_line,
        })
    }

    /// The stragglers, most recently seen first.
    pub fn list(&self) -> Vec<Straggler> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Straggler> = entries.values().map(|e| e.straggler.clone()).collect();
        out.sort_by(|a, b| {
            b.last_seen_unix
                .cmp(&a.last_seen_unix)
                .then_with(|| a.client.cmp(&b.client))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            b64::encode(br#"{"alg":"HS256"}"#),
            b64::encode(claims.to_string())
        )
    }

    #[test]
    fn a_client_is_logged_once_a_minute_with_the_count_since() {
        let s = Stragglers::default();
        let t = token(
            serde_json::json!({"client_id": "batch-job", "sub": "batch-job", "iss": "legacy-auth", "exp": 2_000}),
        );
        let due = s.refused(Alg::Hs256, &t, 1_000).expect("first: logged");
        assert_eq!(due.straggler.client, "batch-job");
        assert_eq!(due.straggler.iss.as_deref(), Some("legacy-auth"));
        assert_eq!(due.since_last_line, 1);
        for now in 1_001..1_060 {
            assert_eq!(s.refused(Alg::Hs256, &t, now), None, "quiet at {now}");
        }
        let due = s.refused(Alg::Hs256, &t, 1_060).expect("a minute later");
        assert_eq!(due.since_last_line, 60);
        assert_eq!(due.straggler.count, 61);
        assert_eq!(due.straggler.latest_exp_unix, Some(2_000));
        // Another client has its own budget.
        let other = token(serde_json::json!({"sub": 42}));
        let due = s.refused(Alg::Hs256, &other, 1_061).expect("other client");
        assert_eq!(due.straggler.client, "42", "a numeric sub names it");
        assert_eq!(s.list()[0].client, "42", "most recent first");
    }

    #[test]
    fn the_list_is_bounded_and_claims_are_printable_and_short() {
        let s = Stragglers::default();
        for i in 0..(MAX_STRAGGLERS as u64 + 50) {
            let t = token(serde_json::json!({"client_id": format!("c{i}")}));
            s.refused(Alg::Hs256, &t, 1_000 + i);
        }
        let list = s.list();
        assert_eq!(list.len(), MAX_STRAGGLERS);
        assert_eq!(list[0].client, format!("c{}", MAX_STRAGGLERS + 49));
        assert!(
            list.iter().all(|x| x.client != "c0"),
            "the oldest left first"
        );

        let long = "x".repeat(1_000);
        let t = token(serde_json::json!({"client_id": format!("a\nb{long}")}));
        let due = s.refused(Alg::Rs256, &t, 5_000).expect("logged");
        assert!(due.straggler.client.starts_with("ab"));
        assert_eq!(due.straggler.client.len(), MAX_CLAIM_BYTES);
        assert_eq!(s.refused(Alg::Hs256, "not-a-token", 5_000), None);
        assert_eq!(s.refused(Alg::Hs256, "a.!!!.c", 5_000), None);
    }
}
