//! Failed-authentication limiting per client id and per network: an IPv4
//! address, or an IPv6 /64 (one host usually holds a whole /64, so per-address
//! keys would let it rotate through 2^64 of them).
//!
//! Each key (a client id or an IP) may fail `limit` times per fixed window;
//! past that, requests for it get 429 with `Retry-After` until the window
//! ends, without their credentials being checked. Success does not reset the
//! count: an attacker who also holds one valid secret gains nothing.
//!
//! An attempt is charged *before* its credentials are checked
//! ([`FailureLimiter::begin`]) and refunded only once they prove right
//! ([`Attempt::succeeded`]): checking first and recording after the (slow,
//! argon2) hash let every guess already in flight through, ~150 a minute
//! instead of `limit`.
//! The table is bounded; when full, expired windows are swept, and if it is
//! still full the oldest window is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most keys tracked at once.
const MAX_TRACKED: usize = 65_536;

/// What is being limited.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// A client id (known or not; at most
    /// [`keyshift_core::config::MAX_CLIENT_ID_BYTES`], checked before).
    Client(String),
    /// A peer network: see [`LimitKey::peer`].
    Ip(IpAddr),
}

impl LimitKey {
    /// The key of a peer address: an IPv4 address as is (also when it comes
    /// IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address as its /64.
    pub fn peer(ip: IpAddr) -> LimitKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => LimitKey::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                LimitKey::Ip(IpAddr::V6(prefix.into()))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    failures: u32,
}

/// The failure limiter. Its lock is never held across an `.await`.
#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    window_ms: u64,
    table: Mutex<HashMap<LimitKey, Window>>,
}

impl FailureLimiter {
    /// `limit` failures per `window` per key.
    pub fn new(limit: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys the table tracks now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// If `key` is blocked at `now`, how long until it is not.
    pub fn blocked(&self, key: &LimitKey, now: Duration) -> Option<Duration> {
        let now_ms = millis(now);
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        self.wait(table.get(key)?, now_ms)
    }

    /// Records one failure for `key` at `now`.
    pub fn record_failure(&self, key: LimitKey, now: Duration) {
        let now_ms = millis(now);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        self.charge(&mut table, key, now_ms);
    }

    /// Starts an authentication attempt for `keys`: refused with the wait if
    /// any of them is blocked; otherwise one failure is charged to each at
    /// once, in one step, so concurrent attempts cannot all pass the check.
    /// The returned [`Attempt`] keeps the charge unless told otherwise.
    pub fn begin<const N: usize>(
        self: &Arc<Self>,
        keys: [LimitKey; N],
        now: Duration,
    ) -> Result<Attempt<N>, Duration> {
        let now_ms = millis(now);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let longest = keys
            .iter()
            .filter_map(|k| table.get(k).and_then(|w| self.wait(w, now_ms)))
            .max();
        if let Some(wait) = longest {
            return Err(wait);
        }
        let charged = keys.map(|k| {
            let start_ms = self.charge(&mut table, k.clone(), now_ms);
            (k, start_ms)
        });
        Ok(Attempt {
            limiter: self.clone(),
            charged,
            settled: false,
        })
    }

    fn wait(&self, w: &Window, now_ms: u64) -> Option<Duration> {
        let end = w.start_ms.saturating_add(self.window_ms);
        (w.failures >= self.limit && now_ms < end).then(|| Duration::from_millis(end - now_ms))
    }

    /// Adds one failure to `key`'s current window; returns the window's start.
    fn charge(&self, table: &mut HashMap<LimitKey, Window>, key: LimitKey, now_ms: u64) -> u64 {
        if table.len() >= MAX_TRACKED && !table.contains_key(&key) {
            let window = self.window_ms;
            table.retain(|_, w| now_ms < w.start_ms.saturating_add(window));
            if table.len() >= MAX_TRACKED {
                if let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, w)| w.start_ms)
                    .map(|(k, _)| k.clone())
                {
                    table.remove(&oldest);
                }
            }
        }
        let w = table.entry(key).or_insert(Window {
            start_ms: now_ms,
            failures: 0,
        });
        if now_ms >= w.start_ms.saturating_add(self.window_ms) {
            *w = Window {
                start_ms: now_ms,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
        w.start_ms
    }

    /// Takes back a charge made in the window that started at `start_ms`
    /// (a later window never pays for an earlier attempt).
    fn refund(&self, key: &LimitKey, start_ms: u64) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = table.get_mut(key) {
            if w.start_ms == start_ms {
                w.failures = w.failures.saturating_sub(1);
                if w.failures == 0 {
                    // Successful logins leave nothing behind in the table.
                    table.remove(key);
                }
            }
        }
    }
}

/// An authentication attempt in flight, charged as a failure to each of its
/// keys until it is settled. Dropped unsettled (an error path, a client gone
/// mid-hash), the charge stays: a guess is a failure unless proven right.
#[derive(Debug)]
#[must_use = "an attempt is a failure unless settled"]
pub struct Attempt<const N: usize> {
    limiter: Arc<FailureLimiter>,
    charged: [(LimitKey, u64); N],
    settled: bool,
}

impl<const N: usize> Attempt<N> {
    /// The credentials were right: the charge is taken back.
    pub fn succeeded(mut self) {
        self.refund();
    }

    /// The credentials were never checked (no argon2 slot, an internal
    /// error): no failure is counted.
    pub fn abandoned(mut self) {
        self.refund();
    }

    /// The credentials were wrong: the charge stays.
    pub fn failed(mut self) {
        self.settled = true;
    }

    fn refund(&mut self) {
        self.settled = true;
        for (key, start_ms) in &self.charged {
            self.limiter.refund(key, *start_ms);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_until_window_ends() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let k = LimitKey::Client("svc-a".into());
        let t0 = Duration::from_secs(1_000);
        for _ in 0..2 {
            l.record_failure(k.clone(), t0);
        }
        assert_eq!(l.blocked(&k, t0), None);
        l.record_failure(k.clone(), t0);
        assert_eq!(
            l.blocked(&k, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(l.blocked(&k, t0 + Duration::from_secs(60)), None);
        // A new window starts from scratch.
        l.record_failure(k.clone(), t0 + Duration::from_secs(61));
        assert_eq!(l.blocked(&k, t0 + Duration::from_secs(61)), None);
        // Other keys are independent.
        assert_eq!(l.blocked(&LimitKey::Ip([127, 0, 0, 1].into()), t0), None);
    }

    #[test]
    fn ipv6_peers_share_their_64_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| LimitKey::peer(s.parse().expect("address"));
        assert_eq!(
            ip("2001:db8:1:2:aaaa::1"),
            ip("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            ip("2001:db8:1:2::7"),
            LimitKey::Ip("2001:db8:1:2::".parse().expect("ip"))
        );
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_ne!(ip("192.0.2.7"), ip("192.0.2.8"));
        let l = FailureLimiter::new(1, Duration::from_secs(60));
        let t0 = Duration::from_secs(1_000);
        l.record_failure(ip("2001:db8::1"), t0);
        assert!(l.blocked(&ip("2001:db8::2"), t0).is_some());
        assert!(l.blocked(&ip("2001:db8:0:1::1"), t0).is_none());
    }

    #[test]
    fn concurrent_attempts_cannot_pass_the_limit_together() {
        let l = Arc::new(FailureLimiter::new(10, Duration::from_secs(60)));
        let t0 = Duration::from_secs(1_000);
        let ip = LimitKey::Ip([192, 0, 2, 1].into());
        let client = || LimitKey::Client("svc-argon".into());
        // 200 guesses arrive before any hash finishes: only 10 start.
        let in_flight: Vec<_> = (0..200)
            .filter_map(|_| l.begin([ip.clone(), client()], t0).ok())
            .collect();
        assert_eq!(in_flight.len(), 10);
        assert!(l.blocked(&client(), t0).is_some());
        // They all fail: still exactly 10 failures, still blocked.
        for a in in_flight {
            a.failed();
        }
        assert!(l.begin([client()], t0).is_err());
        assert_eq!(
            l.begin([client()], t0 + Duration::from_secs(60))
                .map(Attempt::failed),
            Ok(())
        );
    }

    #[test]
    fn success_and_abandon_refund_the_charge_and_a_drop_keeps_it() {
        let l = Arc::new(FailureLimiter::new(2, Duration::from_secs(60)));
        let t0 = Duration::from_secs(1_000);
        let k = || LimitKey::Client("svc-a".into());
        for _ in 0..5 {
            l.begin([k()], t0).expect("not blocked").succeeded();
            l.begin([k()], t0).expect("not blocked").abandoned();
        }
        assert_eq!(l.tracked(), 0, "refunds leave no entries");
        drop(l.begin([k()], t0).expect("not blocked"));
        assert!(l.blocked(&k(), t0).is_none(), "one failure of two");
        let a = l.begin([k()], t0).expect("second");
        assert_eq!(l.begin([k()], t0).err(), Some(Duration::from_secs(60)));
        a.failed();
        assert!(l.blocked(&k(), t0).is_some());
    }

    #[test]
    fn a_refund_after_the_window_turned_leaves_the_new_window_alone() {
        let l = Arc::new(FailureLimiter::new(1, Duration::from_secs(60)));
        let t0 = Duration::from_secs(1_000);
        let k = || LimitKey::Client("svc-a".into());
        let old = l.begin([k()], t0).expect("first");
        let t1 = t0 + Duration::from_secs(61);
        l.record_failure(k(), t1);
        old.succeeded();
        assert!(
            l.blocked(&k(), t1).is_some(),
            "the new window's failure stays"
        );
    }

    #[test]
    fn table_stays_bounded() {
        let l = FailureLimiter::new(1, Duration::from_secs(60));
        let t0 = Duration::from_secs(1_000);
        for i in 0..(MAX_TRACKED + 10) {
            l.record_failure(LimitKey::Client(i.to_string()), t0);
        }
        let len = l.table.lock().map(|t| t.len()).unwrap_or(0);
        assert!(len <= MAX_TRACKED, "{len}");
    }
}
