//! Failed-authentication limiting per client id and per network: an IPv4
//! address, or an IPv6 /64 (one host usually holds a whole /64, so per-address
//! keys would let it rotate through 2^64 of them).
//!
//! Each key (a client id or an IP) may fail `limit` times per fixed window;
//! past that, requests for it get 429 with `Retry-After` until the window
//! ends, without their credentials being checked. Success does not reset the
//! count: an attacker who also holds one valid secret gains nothing.
//! The table is bounded; when full, expired windows are swept, and if it is
//! still full the oldest window is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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
        let w = table.get(key)?;
        let end = w.start_ms.saturating_add(self.window_ms);
        (w.failures >= self.limit && now_ms < end).then(|| Duration::from_millis(end - now_ms))
    }

    /// Records one failure for `key` at `now`.
    pub fn record_failure(&self, key: LimitKey, now: Duration) {
        let now_ms = millis(now);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
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
