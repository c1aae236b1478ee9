//! The token pool goose users draw from.
//!
//! A pool is a fixed set of slots, each a client holding one token, as a
//! fleet of services each holding its access token. A legitimate slot's
//! token is used `--reuse` times, or until 90 % of its lifetime has passed,
//! then the slot asks for a replacement, minted in the background through
//! the real token endpoint; until it arrives the slot keeps using its current
//! (still valid) token, as a client whose refresh is slow would. Stragglers
//! (stale HS256 tokens in phase `asymmetric`) are never replaced. A share of
//! requests carries an attack token with a fresh random kid each time; the
//! soak also mixes in forged tokens (a real token's header and claims under
//! a random signature of the right length) and expired ones (real tokens
//! minted with a 1 s lifetime), see [`Mix`].
//!
//! With `P` legitimate slots, reuse `N` and `R` legitimate requests, the
//! verifier's token cache sees about `P + R / N` first uses (misses) when it
//! can hold `P` tokens, so their hit rate is about `1 - P/R - 1/N`; key-set
//! changes (rotation) and reloads (SIGHUP) start the cache over. Rejected
//! tokens (stragglers, attacks) are never cached: each is a miss.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::{b64, Alg};
use keyshift_testkit::jwt;
use tokio::sync::mpsc;

use crate::token::{self, Minted, Minter};

/// What kind of request a pooled token makes; also goose's request name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A legitimate HS256 token: 200.
    Hs256,
    /// A legitimate RS256 token signed by a key the phase started with: 200.
    Rs256,
    /// A legitimate RS256 token signed by a key that appeared during the phase (rotation): 200.
    NewKid,
    /// A stale HS256 token in phase asymmetric: 401 (`alg_disabled`).
    Straggler,
    /// An RS256-looking token with a random kid: 401 (`unknown_kid`).
    Attack,
    /// A real token of the phase's signing algorithm past its `exp`: 401 (`expired`).
    Expired,
    /// A real token's header and claims under a random signature: 401 (`bad_signature`).
    Forged,
    /// A legacy issuer's HS256 token (`--legacy-issuer`) in a phase accepting HS256: 200.
    Legacy,
    /// A legacy issuer's HS256 token in phase asymmetric: 401 (`alg_disabled`).
    LegacyRefused,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::Hs256,
        Kind::Rs256,
        Kind::NewKid,
        Kind::Straggler,
        Kind::Attack,
        Kind::Expired,
        Kind::Forged,
        Kind::Legacy,
        Kind::LegacyRefused,
    ];

    /// The goose request name, and the key in `summary.json`'s `sent`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Hs256 => "HS256 legitimate",
            Kind::Rs256 => "RS256 legitimate",
            Kind::NewKid => "RS256 new kid",
            Kind::Straggler => "HS256 straggler (expected 401)",
            Kind::Attack => "attack kid (expected 401)",
            Kind::Expired => "expired (expected 401)",
            Kind::Forged => "forged signature (expected 401)",
            Kind::Legacy => "HS256 legacy issuer",
            Kind::LegacyRefused => "HS256 legacy issuer (expected 401)",
        }
    }

    /// The kind of a goose request key (`"GET <name>"`), if it is one of ours.
    pub fn from_request_key(key: &str) -> Option<Kind> {
        let name = key.strip_prefix("GET ").unwrap_or(key);
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the token is legitimate (expects 200).
    pub const fn legitimate(self) -> bool {
        matches!(
            self,
            Kind::Hs256 | Kind::Rs256 | Kind::NewKid | Kind::Legacy
        )
    }

    /// The kind of a legacy issuer's token in a phase: accepted while the
    /// phase accepts HS256, refused after.
    pub fn legacy_in(phase: keyshift_core::Phase) -> Kind {
        if phase.accepts(Alg::Hs256) {
            Kind::Legacy
        } else {
            Kind::LegacyRefused
        }
    }

    /// The status `/verify` must answer.
    pub const fn expected_status(self) -> u16 {
        if self.legitimate() {
            200
        } else {
            401
        }
    }

    /// The position in [`Kind::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// One token as goose sends it.
#[derive(Debug)]
pub struct Tok {
    /// `Authorization` header value.
    pub header: String,
    /// What it is.
    pub kind: Kind,
}

/// A slot's starting token.
#[derive(Debug, Clone)]
pub struct SlotInit {
    /// The token.
    pub minted: Minted,
    /// `Straggler` for a stale token never replaced; otherwise derived from the token.
    pub straggler: bool,
    /// When it was minted (for the refresh-before-expiry rule).
    pub minted_at: Instant,
}

#[derive(Debug)]
struct Slot {
    tok: Mutex<Arc<Tok>>,
    uses: AtomicU64,
    /// Milliseconds after the pool's epoch from which the token is due for refresh.
    refresh_at_ms: AtomicU64,
    pending: AtomicBool,
    client: usize,
    replaceable: bool,
}

/// Counters of one pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Requests sent per kind (by the goose transaction, before the answer).
    sent: [AtomicU64; Kind::ALL.len()],
    /// Per kind: 503s the soak judged intended (during the JWKS outage, to
    /// a request expecting 401), which goose counts as 5xx.
    outage_503: [AtomicU64; Kind::ALL.len()],
    /// Replacements asked for by slots.
    pub replacements_requested: AtomicU64,
    /// Replacements installed.
    pub replaced: AtomicU64,
    /// Replacement mints that failed.
    pub replace_errors: AtomicU64,
}

impl PoolStats {
    /// Requests sent of `kind`.
    pub fn sent(&self, kind: Kind) -> u64 {
        self.sent[kind.index()].load(Ordering::Relaxed)
    }

    /// Intended 503s of `kind` (see [`Pool::record_outage_503`]).
    pub fn outage_503(&self, kind: Kind) -> u64 {
        self.outage_503[kind.index()].load(Ordering::Relaxed)
    }

    /// Requests sent of every kind.
    pub fn sent_total(&self) -> u64 {
        Kind::ALL.iter().map(|k| self.sent(*k)).sum()
    }
}

/// The tokens a pool mixes into its requests besides its slots' (unwanted
/// ones, and a legacy issuer's), each kind a share of all requests (shares
/// past a total of 1 are cut).
#[derive(Debug, Clone, Default)]
pub struct Mix {
    /// Share of requests with a random kid ([`Kind::Attack`]), in [0, 1].
    pub attack_share: f64,
    /// Share of requests with a forged token ([`Kind::Forged`]), in [0, 1].
    pub forged_share: f64,
    /// The real token forged tokens copy the header and claims of: one of
    /// the phase's signing algorithm, so the verifier checks its signature.
    /// Without it no forged token is sent.
    pub forge_from: Option<String>,
    /// Share of requests with an expired token ([`Kind::Expired`]), in [0, 1].
    pub expired_share: f64,
    /// The expired tokens; one is sent only once past its `expired_at`
    /// (before that, or without any, the request takes a legitimate token).
    pub expired: Vec<Expiring>,
    /// Share of requests with a legacy issuer's token, in [0, 1].
    pub legacy_share: f64,
    /// The legacy issuer's tokens (without any, no legacy request is sent).
    pub legacy: Vec<String>,
    /// What they are in the phase: [`Kind::Legacy`] or [`Kind::LegacyRefused`].
    pub legacy_kind: Option<Kind>,
}

impl Mix {
    /// Random-kid attacks only (the load test's mix).
    pub fn attacks(share: f64) -> Mix {
        Mix {
            attack_share: share,
            ..Mix::default()
        }
    }
}

/// A real token minted with a short lifetime.
#[derive(Debug, Clone)]
pub struct Expiring {
    /// The JWT.
    pub token: String,
    /// When the verifier counts it as expired for sure (its `exp` plus the
    /// verifier's leeway, plus a second for `exp`'s rounding).
    pub expired_at: Instant,
}

/// How forged tokens are made: a real signing input and its signature's length.
#[derive(Debug)]
struct Forgery {
    signing_input: String,
    signature_bytes: usize,
}

impl Forgery {
    /// From a compact JWS; `None` if it has no decodable signature.
    fn of(token: &str) -> Option<Forgery> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let signature_bytes = b64::decode(signature).ok()?.len();
        (signature_bytes > 0 && signing_input.contains('.')).then(|| Forgery {
            signing_input: signing_input.to_owned(),
            signature_bytes,
        })
    }
}

/// Thresholds on a random u64 picking each unwanted kind, cumulative.
#[derive(Debug, Clone, Copy, Default)]
struct Below {
    attack: u64,
    forged: u64,
    expired: u64,
    legacy: u64,
}

impl Below {
    fn of(mix: &Mix) -> Below {
        let at = |share: f64| (share.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        let share = |s: f64| {
            if s.is_finite() {
                s.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let attack = share(mix.attack_share);
        let forged = attack + share(mix.forged_share);
        let expired = forged + share(mix.expired_share);
        let legacy = expired + share(mix.legacy_share);
        Below {
            attack: at(attack),
            forged: at(forged),
            expired: at(expired),
            legacy: at(legacy),
        }
    }
}

/// The pool of one phase.
#[derive(Debug)]
pub struct Pool {
    slots: Vec<Slot>,
    base_kids: HashSet<String>,
    reuse: Option<u64>,
    below: Below,
    attack_payload: String,
    forgery: Option<Forgery>,
    expired: Vec<Expiring>,
    legacy: Vec<Arc<Tok>>,
    epoch: Instant,
    rng: AtomicU64,
    refill: mpsc::Sender<usize>,
    /// Counters.
    pub stats: PoolStats,
}

/// Share of a token's lifetime after which its client refreshes it.
const REFRESH_AT_SHARE: f64 = 0.9;

impl Pool {
    /// A pool of `slots` (at least one). `reuse`: uses before a legitimate
    /// token is replaced (`None`: only when near expiry); `mix`: the
    /// unwanted tokens among the requests. Returns the pool and the receiver
    /// of replacement requests for [`refill`].
    pub fn new(
        slots: Vec<SlotInit>,
        reuse: Option<u64>,
        mix: Mix,
    ) -> anyhow::Result<(Arc<Pool>, mpsc::Receiver<usize>)> {
        anyhow::ensure!(!slots.is_empty(), "empty token pool");
        let epoch = Instant::now();
        let base_kids: HashSet<String> = slots
            .iter()
            .filter_map(|s| jwt::header(&s.minted.token).and_then(|h| h.kid))
            .collect();
        let attack_payload = slots
            .iter()
            .find(|s| !s.straggler)
            .or(slots.first())
            .map(|s| token::payload_b64(&s.minted.token).to_owned())
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel(slots.len());
        let built = slots
            .into_iter()
            .map(|s| {
                let kind = if s.straggler {
                    Kind::Straggler
                } else {
                    classify(&s.minted.token, &base_kids)
                };
                Slot {
                    tok: Mutex::new(Arc::new(Tok {
                        header: format!("Bearer {}", s.minted.token),
                        kind,
                    })),
                    uses: AtomicU64::new(0),
                    refresh_at_ms: AtomicU64::new(refresh_at_ms(
                        epoch,
                        s.minted_at,
                        s.minted.expires_in,
                    )),
                    pending: AtomicBool::new(false),
                    client: s.minted.client,
                    replaceable: !s.straggler,
                }
            })
            .collect();
        Ok((
            Arc::new(Pool {
                slots: built,
                base_kids,
                reuse,
                below: Below::of(&mix),
                attack_payload,
                forgery: mix.forge_from.as_deref().and_then(Forgery::of),
                expired: mix.expired,
                legacy: match mix.legacy_kind {
                    Some(kind) => mix
                        .legacy
                        .iter()
                        .map(|t| {
                            Arc::new(Tok {
                                header: format!("Bearer {t}"),
                                kind,
                            })
                        })
                        .collect(),
                    None => Vec::new(),
                },
                epoch,
                rng: AtomicU64::new(seed()),
                refill: tx,
                stats: PoolStats::default(),
            }),
            rx,
        ))
    }

    /// Slots in the pool.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots that hold stragglers.
    pub fn stragglers(&self) -> usize {
        self.slots.iter().filter(|s| !s.replaceable).count()
    }

    /// The kids of the tokens the pool started with.
    pub fn base_kids(&self) -> &HashSet<String> {
        &self.base_kids
    }

    fn next_rand(&self) -> u64 {
        // splitmix64 over a shared counter: no need for a CSPRNG to pick load.
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The token for the next request; counts a use and asks for a
    /// replacement when the slot's token is due.
    pub fn pick(&self) -> Arc<Tok> {
        let below = self.below;
        if below.legacy > 0 {
            let r = self.next_rand();
            if r < below.attack {
                return Arc::new(Tok {
                    header: format!(
                        "Bearer {}",
                        token::attack_token(self.next_rand(), &self.attack_payload)
                    ),
                    kind: Kind::Attack,
                });
            }
            if r < below.forged {
                if let Some(f) = &self.forgery {
                    return Arc::new(Tok {
                        header: format!("Bearer {}", self.forge(f)),
                        kind: Kind::Forged,
                    });
                }
            } else if r < below.expired {
                if let Some(token) = self.expired_token() {
                    return Arc::new(Tok {
                        header: format!("Bearer {token}"),
                        kind: Kind::Expired,
                    });
                }
            } else if r < below.legacy && !self.legacy.is_empty() {
                let i = (self.next_rand() % self.legacy.len() as u64) as usize;
                if let Some(t) = self.legacy.get(i) {
                    return t.clone();
                }
            }
        }
        self.pick_legitimate()
    }

    /// A forged token: `f`'s signing input under random bytes of its
    /// signature's length.
    fn forge(&self, f: &Forgery) -> String {
        let mut signature = Vec::with_capacity(f.signature_bytes + 8);
        while signature.len() < f.signature_bytes {
            signature.extend_from_slice(&self.next_rand().to_le_bytes());
        }
        signature.truncate(f.signature_bytes);
        format!("{}.{}", f.signing_input, b64::encode(signature))
    }

    /// One of the expired tokens, if the one drawn is past its expiry.
    fn expired_token(&self) -> Option<&str> {
        if self.expired.is_empty() {
            return None;
        }
        let i = (self.next_rand() % self.expired.len() as u64) as usize;
        self.expired
            .get(i)
            .filter(|e| Instant::now() >= e.expired_at)
            .map(|e| e.token.as_str())
    }

    /// A legitimate slot's token (or a straggler's).
    fn pick_legitimate(&self) -> Arc<Tok> {
        let i = (self.next_rand() % self.slots.len() as u64) as usize;
        let Some(slot) = self.slots.get(i) else {
            // Unreachable (i < len); an attack token keeps the request meaningful.
            return Arc::new(Tok {
                header: "Bearer invalid".to_owned(),
                kind: Kind::Attack,
            });
        };
        let tok = slot.tok.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if slot.replaceable {
            let uses = slot.uses.fetch_add(1, Ordering::Relaxed) + 1;
            let worn = self.reuse.is_some_and(|n| uses >= n);
            let old = self.epoch.elapsed().as_millis() as u64
                >= slot.refresh_at_ms.load(Ordering::Relaxed);
            if (worn || old) && !slot.pending.swap(true, Ordering::AcqRel) {
                self.stats
                    .replacements_requested
                    .fetch_add(1, Ordering::Relaxed);
                // The channel holds one entry per slot, and a slot has at most one pending.
                if self.refill.try_send(i).is_err() {
                    slot.pending.store(false, Ordering::Release);
                }
            }
        }
        tok
    }

    /// Counts a request of `kind` about to be sent.
    pub fn record_sent(&self, kind: Kind) {
        self.stats.sent[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 503 to a request of `kind` that the soak judged intended.
    pub fn record_outage_503(&self, kind: Kind) {
        self.stats.outage_503[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The client of slot `i`.
    fn client(&self, i: usize) -> Option<usize> {
        self.slots.get(i).map(|s| s.client)
    }

    /// Installs a freshly minted token in slot `i` (a replaceable one).
    pub fn replace(&self, i: usize, minted: &Minted, minted_at: Instant) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if !slot.replaceable {
            return;
        }
        let tok = Arc::new(Tok {
            header: format!("Bearer {}", minted.token),
            kind: classify(&minted.token, &self.base_kids),
        });
        *slot.tok.lock().unwrap_or_else(|p| p.into_inner()) = tok;
        slot.uses.store(0, Ordering::Relaxed);
        slot.refresh_at_ms.store(
            refresh_at_ms(self.epoch, minted_at, minted.expires_in),
            Ordering::Relaxed,
        );
        slot.pending.store(false, Ordering::Release);
        self.stats.replaced.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the first `tokens.len()` replaceable slots (clients that
    /// renewed right after a rotation); returns how many were replaced.
    pub fn replace_first(&self, tokens: &[Minted], minted_at: Instant) -> usize {
        let targets = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.replaceable)
            .map(|(i, _)| i);
        let mut replaced = 0;
        for (i, t) in targets.zip(tokens) {
            self.replace(i, t, minted_at);
            replaced += 1;
        }
        replaced
    }
}

fn seed() -> u64 {
    SystemClock.now().as_nanos() as u64
}

/// Milliseconds after `epoch` at which a token minted at `minted_at` is due;
/// a lifetime too long for an `Instant` makes it due never (by age).
fn refresh_at_ms(epoch: Instant, minted_at: Instant, expires_in: Duration) -> u64 {
    match minted_at.checked_add(expires_in.mul_f64(REFRESH_AT_SHARE)) {
        Some(due) => due.saturating_duration_since(epoch).as_millis() as u64,
        None => u64::MAX,
    }
}

/// The kind of a legitimate token: by `alg`, and for RS256 whether its kid
/// was among the pool's first kids.
pub fn classify(token: &str, base_kids: &HashSet<String>) -> Kind {
    match jwt::header(token) {
        Some(h) if h.alg == Alg::Hs256 => Kind::Hs256,
        Some(h) if h.kid.as_ref().is_some_and(|k| !base_kids.contains(k)) => Kind::NewKid,
        _ => Kind::Rs256,
    }
}

/// Mints replacements for slots that asked, one at a time, until `rx` closes
/// or the task is aborted at the end of the phase.
pub async fn refill(pool: Arc<Pool>, mut rx: mpsc::Receiver<usize>, minter: Arc<Minter>) {
    while let Some(i) = rx.recv().await {
        let Some(client) = pool.client(i) else {
            continue;
        };
        match minter.mint(client).await {
            Ok(minted) => pool.replace(i, &minted, Instant::now()),
            Err(_) => {
                pool.stats.replace_errors.fetch_add(1, Ordering::Relaxed);
                // Let the slot ask again on its next use (the old token still serves).
                if let Some(slot) = pool.slots.get(i) {
                    slot.pending.store(false, Ordering::Release);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(alg: &str, kid: &str, n: u32) -> String {
        format!(
            "{}.{}.sig{n}",
            b64::encode(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#)),
            b64::encode(format!(r#"{{"n":{n}}}"#))
        )
    }

    fn init(token: String, straggler: bool) -> SlotInit {
        SlotInit {
            minted: Minted {
                token,
                expires_in: Duration::from_secs(900),
                client: 0,
            },
            straggler,
            minted_at: Instant::now(),
        }
    }

    #[test]
    fn kinds_round_trip_through_goose_request_keys() {
        for k in Kind::ALL {
            assert_eq!(
                Kind::from_request_key(&format!("GET {}", k.name())),
                Some(k)
            );
            assert_eq!(Kind::from_request_key(k.name()), Some(k));
        }
        assert_eq!(Kind::from_request_key("GET /verify"), None);
        assert_eq!(Kind::Straggler.expected_status(), 401);
        assert_eq!(Kind::NewKid.expected_status(), 200);
    }

    #[test]
    fn tokens_are_replaced_after_reuse_uses() {
        let (pool, mut rx) = Pool::new(
            vec![init(jwt("RS256", "k1", 1), false)],
            Some(3),
            Mix::default(),
        )
        .expect("pool");
        for _ in 0..2 {
            assert_eq!(pool.pick().kind, Kind::Rs256);
        }
        assert!(rx.try_recv().is_err(), "not worn out after 2 uses");
        pool.pick();
        assert_eq!(
            rx.try_recv().ok(),
            Some(0),
            "third use asks for a replacement"
        );
        pool.pick();
        assert!(rx.try_recv().is_err(), "asked once while pending");
        let fresh = Minted {
            token: jwt("RS256", "k2", 2),
            expires_in: Duration::from_secs(900),
            client: 0,
        };
        pool.replace(0, &fresh, Instant::now());
        let t = pool.pick();
        assert_eq!(t.kind, Kind::NewKid, "k2 was not among the first kids");
        assert!(t.header.ends_with("sig2"));
        assert_eq!(pool.stats.replaced.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn tokens_near_expiry_are_replaced_whatever_the_reuse() {
        let mut s = init(jwt("HS256", "h", 1), false);
        s.minted.expires_in = Duration::ZERO;
        let (pool, mut rx) = Pool::new(vec![s], None, Mix::default()).expect("pool");
        assert_eq!(pool.pick().kind, Kind::Hs256);
        assert_eq!(rx.try_recv().ok(), Some(0));
    }

    #[test]
    fn stragglers_are_never_replaced_and_attacks_get_fresh_kids() {
        let (pool, mut rx) = Pool::new(
            vec![
                init(jwt("HS256", "h", 1), true),
                init(jwt("RS256", "k1", 2), false),
            ],
            Some(1),
            Mix::attacks(0.5),
        )
        .expect("pool");
        assert_eq!(pool.stragglers(), 1);
        let mut attack_kids = HashSet::new();
        let mut kinds = HashSet::new();
        for _ in 0..400 {
            let t = pool.pick();
            kinds.insert(t.kind);
            if t.kind == Kind::Attack {
                let kid = jwt::header(t.header.trim_start_matches("Bearer "))
                    .and_then(|h| h.kid)
                    .expect("kid");
                attack_kids.insert(kid);
            }
        }
        assert_eq!(
            kinds,
            [Kind::Straggler, Kind::Rs256, Kind::Attack]
                .into_iter()
                .collect()
        );
        assert!(attack_kids.len() > 100, "a fresh kid per attack request");
        while let Ok(i) = rx.try_recv() {
            assert_eq!(i, 1, "only the legitimate slot asks for replacements");
        }
        let fresh = Minted {
            token: jwt("RS256", "k9", 3),
            expires_in: Duration::from_secs(900),
            client: 0,
        };
        pool.replace(0, &fresh, Instant::now());
        assert_eq!(pool.stats.replaced.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn replace_first_skips_stragglers_and_stops_at_the_tokens_given() {
        let (pool, _rx) = Pool::new(
            vec![
                init(jwt("HS256", "h", 1), true),
                init(jwt("RS256", "k1", 2), false),
                init(jwt("RS256", "k1", 3), false),
            ],
            None,
            Mix::default(),
        )
        .expect("pool");
        let fresh = |n| Minted {
            token: jwt("RS256", "k2", n),
            expires_in: Duration::from_secs(900),
            client: 0,
        };
        assert_eq!(pool.replace_first(&[fresh(4)], Instant::now()), 1);
        assert_eq!(pool.stats.replaced.load(Ordering::Relaxed), 1);
        let kinds = |pool: &Pool| -> Vec<Kind> {
            pool.slots
                .iter()
                .map(|s| s.tok.lock().expect("slot").kind)
                .collect()
        };
        assert_eq!(
            kinds(&pool),
            [Kind::Straggler, Kind::NewKid, Kind::Rs256],
            "the straggler is skipped, the first legitimate slot replaced"
        );
        let many: Vec<Minted> = (5..10).map(fresh).collect();
        assert_eq!(pool.replace_first(&many, Instant::now()), 2);
        assert_eq!(kinds(&pool), [Kind::Straggler, Kind::NewKid, Kind::NewKid]);
    }

    #[test]
    fn a_lifetime_too_long_for_an_instant_is_never_due_by_age() {
        let now = Instant::now();
        assert_eq!(refresh_at_ms(now, now, Duration::MAX), u64::MAX);
        assert_eq!(refresh_at_ms(now, now, Duration::from_secs(10)), 9_000);
    }

    #[test]
    fn forged_tokens_keep_a_real_signing_input_under_a_fresh_signature_of_its_length() {
        let real = format!(
            "{}.{}.{}",
            b64::encode(r#"{"alg":"RS256","kid":"k1"}"#),
            b64::encode(r#"{"sub":"a"}"#),
            b64::encode([7u8; 256])
        );
        let mix = Mix {
            forged_share: 1.0,
            forge_from: Some(real.clone()),
            ..Mix::default()
        };
        let (pool, _rx) = Pool::new(vec![init(real.clone(), false)], None, mix).expect("pool");
        let (real_input, _) = real.rsplit_once('.').expect("a JWS");
        let mut signatures = HashSet::new();
        for _ in 0..50 {
            let t = pool.pick();
            assert_eq!(t.kind, Kind::Forged);
            let token = t.header.strip_prefix("Bearer ").expect("bearer");
            let (input, signature) = token.rsplit_once('.').expect("a JWS");
            assert_eq!(input, real_input, "the real header and claims");
            let signature = b64::decode(signature).expect("base64url");
            assert_eq!(signature.len(), 256, "the real signature's length");
            assert_ne!(signature, [7u8; 256]);
            signatures.insert(signature);
        }
        assert_eq!(signatures.len(), 50, "a fresh signature each time");
        let no_template = Mix {
            forged_share: 1.0,
            ..Mix::default()
        };
        let (pool, _rx) = Pool::new(vec![init(real, false)], None, no_template).expect("pool");
        assert_eq!(pool.pick().kind, Kind::Rs256, "nothing to forge from");
    }

    #[test]
    fn expired_tokens_are_sent_only_once_past_their_expiry() {
        let mix = |expired_at| Mix {
            expired_share: 1.0,
            expired: vec![Expiring {
                token: jwt("RS256", "k1", 9),
                expired_at,
            }],
            ..Mix::default()
        };
        let later = Instant::now() + Duration::from_secs(3600);
        let (pool, _rx) =
            Pool::new(vec![init(jwt("RS256", "k1", 1), false)], None, mix(later)).expect("pool");
        for _ in 0..20 {
            assert_eq!(
                pool.pick().kind,
                Kind::Rs256,
                "not expired yet: a legitimate one"
            );
        }
        let (pool, _rx) = Pool::new(
            vec![init(jwt("RS256", "k1", 1), false)],
            None,
            mix(Instant::now()),
        )
        .expect("pool");
        let t = pool.pick();
        assert_eq!(t.kind, Kind::Expired);
        assert!(t.header.ends_with("sig9"));
    }

    #[test]
    fn the_shares_split_the_requests_between_the_kinds() {
        let real = jwt("RS256", "k1", 1);
        let mix = Mix {
            attack_share: 0.25,
            forged_share: 0.25,
            forge_from: Some(real.clone()),
            expired_share: 0.25,
            expired: vec![Expiring {
                token: jwt("RS256", "k1", 9),
                expired_at: Instant::now(),
            }],
            ..Mix::default()
        };
        let (pool, _rx) = Pool::new(vec![init(real, false)], None, mix).expect("pool");
        let mut counts = std::collections::HashMap::new();
        for _ in 0..4000 {
            *counts.entry(pool.pick().kind).or_insert(0u32) += 1;
        }
        for kind in [Kind::Attack, Kind::Forged, Kind::Expired, Kind::Rs256] {
            let n = counts.get(&kind).copied().unwrap_or(0);
            assert!((800..1200).contains(&n), "{kind:?}: {n} of 4000");
        }
        let all_in = Mix {
            attack_share: 0.9,
            forged_share: 0.9,
            ..Mix::default()
        };
        let (pool, _rx) =
            Pool::new(vec![init(jwt("RS256", "k1", 1), false)], None, all_in).expect("pool");
        assert!(
            (0..200).all(|_| matches!(pool.pick().kind, Kind::Attack | Kind::Rs256)),
            "shares past a total of 1 are cut; no template, no forgery"
        );
    }

    #[test]
    fn legacy_tokens_take_their_share_as_the_phases_kind() {
        let mix = |kind| Mix {
            legacy_share: 0.5,
            legacy: vec![jwt("HS256", "", 7)],
            legacy_kind: Some(kind),
            ..Mix::default()
        };
        for (phase, kind) in [
            (keyshift_core::Phase::Legacy, Kind::Legacy),
            (keyshift_core::Phase::Transition, Kind::Legacy),
            (keyshift_core::Phase::Asymmetric, Kind::LegacyRefused),
        ] {
            assert_eq!(Kind::legacy_in(phase), kind);
            let (pool, _rx) =
                Pool::new(vec![init(jwt("RS256", "k1", 1), false)], None, mix(kind)).expect("pool");
            let mut counts = std::collections::HashMap::new();
            for _ in 0..2000 {
                let t = pool.pick();
                if t.kind == kind {
                    assert!(t.header.ends_with("sig7"));
                }
                *counts.entry(t.kind).or_insert(0u32) += 1;
            }
            let n = counts.get(&kind).copied().unwrap_or(0);
            assert!((800..1200).contains(&n), "{kind:?}: {n} of 2000");
        }
        assert!(Kind::Legacy.legitimate() && !Kind::LegacyRefused.legitimate());
        assert_eq!(Kind::LegacyRefused.expected_status(), 401);
        let (pool, _rx) = Pool::new(
            vec![init(jwt("RS256", "k1", 1), false)],
            None,
            Mix {
                legacy_share: 1.0,
                ..Mix::default()
            },
        )
        .expect("pool");
        assert_eq!(
            pool.pick().kind,
            Kind::Rs256,
            "no legacy token, no legacy request"
        );
    }

    #[test]
    fn empty_pools_are_refused() {
        assert!(Pool::new(vec![], None, Mix::default()).is_err());
    }
}
