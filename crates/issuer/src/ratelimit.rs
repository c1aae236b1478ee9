//! Failed-authentication limiting, shaped so that guessing is slow and a
//! guesser cannot lock anyone else out (OWASP's account-lockout guidance).
//!
//! Three counts per fixed window, each with its own ceiling:
//! - a client id **from one network** ([`LimitKey::Pair`]): `limit`
//!   failures. This is the lockout a guesser feels, and it locks out only
//!   the guesser's own network for that id;
//! - one **network** across ids ([`LimitKey::Net`]): `limit ×`
//!   [`NET_CEILING_FACTOR`], so spraying guesses over many ids from one
//!   place is bounded too, while ten bad logins by one client behind a NAT
//!   or proxy leave its neighbours alone;
//! - one **client id** across networks ([`LimitKey::Client`]): `limit ×`
//!   [`CLIENT_CEILING_FACTOR`], the bound on a distributed guess.
//!
//! A network is an IPv4 address, or an IPv6 /64 (one host usually holds a
//! whole /64). A pair that has authenticated successfully within
//! [`KNOWN_GOOD_TTL`] is checked only against its own count: the network
//! and client ceilings, which other people's failures fill, never refuse a
//! client that presents its correct secret from where it did before.
//!
//! An attempt is charged to all three counts *before* its credentials are
//! checked ([`FailureLimiter::begin`]) and refunded only once they prove
//! right ([`Attempt::succeeded`]): checking first and recording after the
//! (slow, argon2) hash let every guess already in flight through, ~150 a
//! minute instead of `limit`. Success does not reset a count. Both tables
//! are bounded; when full, expired entries are swept, then the oldest goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most keys (and known-good pairs) tracked at once.
const MAX_TRACKED: usize = 65_536;

/// A network's ceiling across client ids, as a multiple of the per-pair limit.
pub const NET_CEILING_FACTOR: u32 = 5;
/// A client id's ceiling across networks, as a multiple of the per-pair limit.
pub const CLIENT_CEILING_FACTOR: u32 = 20;
/// How long a successful (client id, network) pair stays exempt from the
/// ceilings that other people's failures fill.
pub const KNOWN_GOOD_TTL: Duration = Duration::from_secs(24 * 3600);

/// What is being counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// A client id (known or not; at most
    /// [`keyshift_core::config::MAX_CLIENT_ID_BYTES`], checked before) from
    /// one network.
    Pair(String, IpAddr),
    /// A network: see [`network`].
    Net(IpAddr),
    /// A client id from anywhere.
    Client(String),
}

/// The network of a peer address: an IPv4 address as is (also when it comes
/// IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address as its /64.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(prefix.into())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    failures: u32,
}

#[derive(Debug, Default)]
struct Tables {
    windows: HashMap<LimitKey, Window>,
    /// (client id, network) → when it last authenticated, in ms.
    known_good: HashMap<(String, IpAddr), u64>,
}

/// The failure limiter. Its lock is never held across an `.await`.
#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    window_ms: u64,
    tables: Mutex<Tables>,
}

impl FailureLimiter {
    /// `limit` failures per `window` per (client id, network); the ceilings
    /// follow from it.
    pub fn new(limit: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            limit,
            window_ms: millis(window),
            tables: Mutex::new(Tables::default()),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many counts the table tracks now.
    pub fn tracked(&self) -> usize {
        self.tables().windows.len()
    }

    fn ceiling(&self, key: &LimitKey) -> u32 {
        match key {
            LimitKey::Pair(..) => self.limit,
            LimitKey::Net(_) => self.limit.saturating_mul(NET_CEILING_FACTOR),
            LimitKey::Client(_) => self.limit.saturating_mul(CLIENT_CEILING_FACTOR),
        }
    }

    /// If `key` is blocked at `now`, how long until it is not.
    pub fn blocked(&self, key: &LimitKey, now: Duration) -> Option<Duration> {
        let tables = self.tables();
        self.wait(key, tables.windows.get(key)?, millis(now))
    }

    /// Records one failure for `key` at `now` (no credentials were checked:
    /// an over-long client id is charged to its network only).
    pub fn record_failure(&self, key: LimitKey, now: Duration) {
        let mut tables = self.tables();
        self.charge(&mut tables.windows, key, millis(now));
    }

    /// Starts an authentication attempt by `client_id` from `peer`: refused
    /// with the wait if a count that applies is at its ceiling; otherwise one
    /// failure is charged to all three counts at once, in one step, so
    /// concurrent attempts cannot all pass the check. The returned
    /// [`Attempt`] keeps the charge unless told otherwise.
    pub fn begin(
        self: &Arc<Self>,
        client_id: &str,
        peer: IpAddr,
        now: Duration,
    ) -> Result<Attempt, Duration> {
        let now_ms = millis(now);
        let net = network(peer);
        let keys = [
            LimitKey::Pair(client_id.to_owned(), net),
            LimitKey::Net(net),
            LimitKey::Client(client_id.to_owned()),
        ];
        let mut tables = self.tables();
        let known_good = tables
            .known_good
            .get(&(client_id.to_owned(), net))
            .is_some_and(|at| now_ms < at.saturating_add(millis(KNOWN_GOOD_TTL)));
        let checked = if known_good { &keys[..1] } else { &keys[..] };
        let longest = checked
            .iter()
            .filter_map(|k| {
                let w = tables.windows.get(k)?;
                self.wait(k, w, now_ms)
            })
            .max();
        if let Some(wait) = longest {
            return Err(wait);
        }
        let charged = keys.map(|k| {
            let start_ms = self.charge(&mut tables.windows, k.clone(), now_ms);
            (k, start_ms)
        });
        Ok(Attempt {
            limiter: self.clone(),
            client_id: client_id.to_owned(),
            net,
            now_ms,
            charged,
            settled: false,
        })
    }

    fn wait(&self, key: &LimitKey, w: &Window, now_ms: u64) -> Option<Duration> {
        let end = w.start_ms.saturating_add(self.window_ms);
        (w.failures >= self.ceiling(key) && now_ms < end)
            .then(|| Duration::from_millis(end - now_ms))
    }

    /// Adds one failure to `key`'s current window; returns the window's start.
    fn charge(&self, windows: &mut HashMap<LimitKey, Window>, key: LimitKey, now_ms: u64) -> u64 {
        let window = self.window_ms;
        make_room(
            windows,
            &key,
            |w| now_ms >= w.start_ms.saturating_add(window),
            |w| w.start_ms,
        );
        let w = windows.entry(key).or_insert(Window {
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

    /// Takes back the charges of an attempt, each in the window it was made
    /// in (a later window never pays for an earlier attempt).
    fn refund(&self, charged: &[(LimitKey, u64)]) {
        let mut tables = self.tables();
        for (key, start_ms) in charged {
            if let Some(w) = tables.windows.get_mut(key) {
                if w.start_ms == *start_ms {
                    w.failures = w.failures.saturating_sub(1);
                    if w.failures == 0 {
                        // Successful logins leave no count behind.
                        tables.windows.remove(key);
                    }
                }
            }
        }
    }

    fn remember_good(&self, client_id: String, net: IpAddr, now_ms: u64) {
        let mut tables = self.tables();
        let ttl = millis(KNOWN_GOOD_TTL);
        let key = (client_id, net);
        make_room(
            &mut tables.known_good,
            &key,
            |at| now_ms >= at.saturating_add(ttl),
            |at| *at,
        );
        tables.known_good.insert(key, now_ms);
    }
}

/// Keeps `table` under [`MAX_TRACKED`] before `key` is added: expired
/// entries go first, then the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    table: &mut HashMap<K, V>,
    key: &K,
    expired: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> u64,
) {
    if table.len() < MAX_TRACKED || table.contains_key(key) {
        return;
    }
    table.retain(|_, v| !expired(v));
    if table.len() >= MAX_TRACKED {
        if let Some(oldest) = table
            .iter()
            .min_by_key(|(_, v)| age(v))
            .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
    }
}

/// An authentication attempt in flight, charged as a failure to each of its
/// counts until it is settled. Dropped unsettled (an error path, a client
/// gone mid-hash), the charge stays: a guess is a failure unless proven right.
#[derive(Debug)]
#[must_use = "an attempt is a failure unless settled"]
pub struct Attempt {
    limiter: Arc<FailureLimiter>,
    client_id: String,
    net: IpAddr,
    now_ms: u64,
    charged: [(LimitKey, u64); 3],
    settled: bool,
}

impl Attempt {
    /// The credentials were right: the charge is taken back, and the pair
    /// is known good from now on.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.refund(&self.charged);
        let client_id = std::mem::take(&mut self.client_id);
        self.limiter.remember_good(client_id, self.net, self.now_ms);
    }

    /// The credentials were never checked (no hashing slot, an internal
    /// error): no failure is counted.
    pub fn abandoned(mut self) {
        self.settled = true;
        self.limiter.refund(&self.charged);
    }

    /// The credentials were wrong: the charge stays.
    pub fn failed(mut self) {
        self.settled = true;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!("authentication attempt dropped unsettled; counted as a failure");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_000);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn limiter(limit: u32) -> Arc<FailureLimiter> {
        Arc::new(FailureLimiter::new(limit, Duration::from_secs(60)))
    }

    fn fail(l: &Arc<FailureLimiter>, id: &str, from: &str, now: Duration) -> Result<(), Duration> {
        l.begin(id, ip(from), now).map(Attempt::failed)
    }

    #[test]
    fn a_pair_is_blocked_after_limit_until_the_window_ends() {
        let l = limiter(3);
        for _ in 0..3 {
            fail(&l, "svc-a", "192.0.2.1", T0).expect("not yet blocked");
        }
        assert_eq!(
            fail(&l, "svc-a", "192.0.2.1", T0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        // The same id from elsewhere, and another id from here, are not.
        fail(&l, "svc-a", "192.0.2.2", T0).expect("other network");
        fail(&l, "svc-b", "192.0.2.1", T0).expect("other id");
        // A new window starts from scratch.
        fail(&l, "svc-a", "192.0.2.1", T0 + Duration::from_secs(61)).expect("new window");
    }

    #[test]
    fn a_network_spraying_ids_hits_its_ceiling_and_neighbours_of_a_guesser_do_not() {
        let l = limiter(2);
        let ceiling = 2 * NET_CEILING_FACTOR;
        for i in 0..ceiling {
            fail(&l, &format!("ghost-{i}"), "198.51.100.7", T0).expect("under the ceiling");
        }
        assert!(fail(&l, "ghost-new", "198.51.100.7", T0).is_err());
        // Its own failures (one id, 2) left every other id from that network free
        // until the ceiling; a neighbour network is untouched.
        fail(&l, "ghost-new", "198.51.100.8", T0).expect("neighbour");
    }

    #[test]
    fn a_distributed_guess_hits_the_client_ceiling_but_known_good_pairs_pass() {
        let l = limiter(1);
        // The real client authenticated from its network once.
        l.begin("svc-a", ip("203.0.113.5"), T0)
            .expect("first")
            .succeeded();
        let ceiling = CLIENT_CEILING_FACTOR;
        for i in 0..ceiling {
            fail(
                &l,
                "svc-a",
                &format!("10.9.{}.{}", i / 250, i % 250 + 1),
                T0,
            )
            .expect("spread");
        }
        // A new network is refused for this id now...
        assert!(fail(&l, "svc-a", "10.8.0.1", T0).is_err());
        // ...but the client from where it succeeded before is still checked.
        l.begin("svc-a", ip("203.0.113.5"), T0)
            .expect("known good")
            .succeeded();
    }

    #[test]
    fn concurrent_attempts_cannot_pass_the_limit_together() {
        let l = limiter(10);
        // 200 guesses arrive before any hash finishes: only 10 start.
        let in_flight: Vec<_> = (0..200)
            .filter_map(|_| l.begin("svc-argon", ip("192.0.2.1"), T0).ok())
            .collect();
        assert_eq!(in_flight.len(), 10);
        for a in in_flight {
            a.failed();
        }
        assert!(l.begin("svc-argon", ip("192.0.2.1"), T0).is_err());
        assert!(fail(&l, "svc-argon", "192.0.2.1", T0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn success_and_abandon_refund_the_charge_and_a_drop_keeps_it() {
        let l = limiter(2);
        let from = ip("192.0.2.1");
        for _ in 0..5 {
            l.begin("svc-a", from, T0).expect("not blocked").abandoned();
            l.begin("svc-a", from, T0).expect("not blocked").succeeded();
        }
        assert_eq!(l.tracked(), 0, "refunds leave no counts");
        drop(l.begin("svc-a", from, T0).expect("not blocked"));
        let a = l.begin("svc-a", from, T0).expect("second");
        assert_eq!(
            l.begin("svc-a", from, T0).err(),
            Some(Duration::from_secs(60))
        );
        a.failed();
    }

    #[test]
    fn a_refund_after_the_window_turned_leaves_the_new_window_alone() {
        let l = limiter(1);
        let old = l.begin("svc-a", ip("192.0.2.1"), T0).expect("first");
        let t1 = T0 + Duration::from_secs(61);
        fail(&l, "svc-a", "192.0.2.1", t1).expect("new window");
        old.abandoned();
        assert!(
            fail(&l, "svc-a", "192.0.2.1", t1).is_err(),
            "the new window's failure stays"
        );
    }

    #[test]
    fn ipv6_peers_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            network(ip("2001:db8:1:2:aaaa::1")),
            network(ip("2001:db8:1:2:ffff::ffff"))
        );
        assert_eq!(network(ip("2001:db8:1:2::7")), ip("2001:db8:1:2::"));
        assert_ne!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:3::1"))
        );
        assert_eq!(network(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let l = limiter(1);
        fail(&l, "x", "2001:db8::1", T0).expect("first");
        assert!(fail(&l, "x", "2001:db8::2", T0).is_err());
        assert!(fail(&l, "x", "2001:db8:0:1::1", T0).is_ok());
    }

    #[test]
    fn tables_stay_bounded() {
        let l = limiter(1);
        for i in 0..(MAX_TRACKED + 10) {
            l.record_failure(LimitKey::Client(i.to_string()), T0);
        }
        assert!(l.tracked() <= MAX_TRACKED, "{}", l.tracked());
    }
}
