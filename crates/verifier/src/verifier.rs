//! The [`Verifier`]: parse, key lookup, signature, claims, policy — with
//! keys parsed once, a lock-free key lookup and a verified-token cache.

use std::sync::Arc;
use std::time::Instant;

use ::metrics::Counter;
use arc_swap::{ArcSwap, ArcSwapOption};
use hmac::Mac;
use keyshift_core::b64;
use keyshift_core::config::{ignored_warning, VerifierConfig};
use keyshift_core::secret::HmacSecrets;
use keyshift_core::{Alg, Phase, SharedClock};

use crate::authority::IssuerAuthority;
use crate::claims;
use crate::error::{AlgLabel, Outcome, VerifyError};
use crate::jwks::{
    FetchError, FetchOutcome, Fetcher, JwksCache, JwksSettings, RefreshError, RsaKey, Transport,
    TransportError,
};
use crate::jws;
use crate::legacy::{Loosening, Loosenings};
use crate::metrics::{self, VerifyMetrics};
use crate::migration::{Forced, MigrationReport, MigrationStats, ReportInput};
use crate::policy::Policy;
use crate::stragglers::Stragglers;
use crate::token_cache::TokenCache;

/// A verified token: what a resource server needs to decide.
///
/// The four strings live in one allocation (this is built on every
/// verification that misses the token cache), which the identity headers
/// of `/verify` share by reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sub`, `client_id`, `scope` and `kid`, back to back (UTF-8).
    text: bytes::Bytes,
    /// End offsets of `sub`, `client_id`, `scope` in `text`; `kid` is the rest.
    ends: [u32; 3],
    has_kid: bool,
    /// The algorithm that verified it.
    pub alg: Alg,
    /// `exp`.
    pub exp: u64,
    /// What the legacy profile loosened to accept it (empty: the strict rules did).
    loosened: Loosenings,
}

impl Verified {
    /// Builds a result (used by the verifier, and by tests of code that takes one).
    pub fn new(
        sub: &str,
        client_id: &str,
        scope: &str,
        alg: Alg,
        kid: Option<&str>,
        exp: u64,
    ) -> Verified {
        let kid_text = kid.unwrap_or("");
        let mut text =
            String::with_capacity(sub.len() + client_id.len() + scope.len() + kid_text.len());
        let mut ends = [0u32; 3];
        for (i, part) in [sub, client_id, scope].into_iter().enumerate() {
            text.push_str(part);
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        text.push_str(kid_text);
        Verified {
            text: bytes::Bytes::from(text),
            ends,
            has_kid: kid.is_some(),
            alg,
            exp,
            loosened: Loosenings::NONE,
        }
    }

    /// The same result, accepted by relying on `loosened`.
    #[must_use]
    pub fn with_loosenings(mut self, loosened: Loosenings) -> Verified {
        self.loosened = loosened;
        self
    }

    /// What the legacy profile loosened to accept the token; empty when the
    /// strict rules accepted it.
    pub fn loosened(&self) -> Loosenings {
        self.loosened
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends.get(i).map_or(self.text.len(), |e| *e as usize);
        start..end.max(start)
    }

    fn part(&self, i: usize) -> &str {
        // Built from `&str` parts at char boundaries: always UTF-8.
        self.text
            .get(self.range(i))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// `sub`, `client_id`, `scope` and `kid` as header values sharing this
    /// verdict's buffer (no copy). The verifier accepts only printable
    /// claims, so each is a valid value; one that is not comes out empty.
    pub fn header_values(&self) -> [http::HeaderValue; 4] {
        [0, 1, 2, 3].map(|i| {
            let r = self.range(i);
            let end = r.end.min(self.text.len());
            let part = self.text.slice(r.start.min(end)..end);
            http::HeaderValue::from_maybe_shared(part).unwrap_or(http::HeaderValue::from_static(""))
        })
    }

    /// `sub`.
    pub fn sub(&self) -> &str {
        self.part(0)
    }

    /// `client_id` (falls back to `sub` for legacy tokens without it).
    pub fn client_id(&self) -> &str {
        self.part(1)
    }

    /// `scope`, space-delimited (empty when absent).
    pub fn scope(&self) -> &str {
        self.part(2)
    }

    /// The `kid` of the key, if the token named one.
    pub fn kid(&self) -> Option<&str> {
        self.has_kid.then(|| self.part(3))
    }

    /// Whether every scope in `required` was granted.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        let scope = self.scope();
        required.iter().all(|r| scope.split(' ').any(|s| s == *r))
    }
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The JWKS client could not be created.
    #[error("verifier.jwks_url: {0}")]
    Jwks(#[from] FetchError),
    /// On reload, a changed `jwks_url` served no usable JWK Set, so the
    /// running URL and its keys stay.
    #[error("verifier.jwks_url: the new URL served no usable keys; keeping the old one")]
    NewJwksUnusable(#[source] Option<Arc<RefreshError>>),
    /// The client for `issuer_migration_url` could not be created.
    #[error("verifier.issuer_migration_url: {0}")]
    IssuerMigration(#[source] FetchError),
    /// `jwks_ca_file` or the JWKS client certificate did not load.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A reload into (or a start in) phase `asymmetric` while HS256 tokens
    /// this verifier would accept may still be valid: they would be refused.
    /// The running config stays (on start: the verifier does not start).
    #[error("refused: phase asymmetric now would refuse valid HS256 tokens: {reason}; wait until GET /migration says \"ready_for_asymmetric\": true, or set verifier.force_phase = true to switch anyway")]
    NotReady {
        /// Readiness's reason.
        reason: String,
    },
}

/// The verified-token cache with its hit and miss counters, which exist only
/// while the cache is on (the contract: "only where a verified-token cache is on").
struct Verdicts {
    cache: TokenCache,
    size: usize,
    hit: Counter,
    miss: Counter,
}

impl Verdicts {
    fn new(size: usize) -> Option<Verdicts> {
        let cache = TokenCache::new(size)?;
        let (hit, miss) = metrics::token_cache_counters();
        Some(Verdicts {
            cache,
            size,
            hit,
            miss,
        })
    }
}

/// The verifier. Cheap to share (`Arc`); `verify` takes `&self`.
pub struct Verifier {
    policy: ArcSwap<Policy>,
    jwks: ArcSwapOption<JwksCache>,
    /// The running `jwks_url`; also serialises reloads (held across the
    /// prefetch of a new URL, never on the request path).
    reloading: tokio::sync::Mutex<Option<url::Url>>,
    verdicts: ArcSwapOption<Verdicts>,
    clock: SharedClock,
    metrics: VerifyMetrics,
    stats: MigrationStats,
    /// The issuer's `/migration`; replaced when a reload changes its URL.
    authority: ArcSwap<IssuerAuthority>,
    stragglers: Stragglers,
    /// Clients whose HS256 tokens passed only through the legacy profile.
    legacy_clients: Stragglers,
    /// Set by a switch into `asymmetric` that `force_phase` pushed through.
    forced: ArcSwapOption<Forced>,
    /// The listen address of the config in force (a change needs a restart).
    listen: std::sync::Mutex<std::net::SocketAddr>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy.load())
            .finish_non_exhaustive()
    }
}

/// The key-cache state an answer depended on: policy and key-set generations.
fn generation(policy: &Policy, jwks: Option<&JwksCache>) -> u64 {
    let keys = jwks.map(JwksCache::generation).unwrap_or(0);
    (policy.generation << 32) ^ keys
}

enum Step {
    Done(AlgLabel, Result<Arc<Verified>, VerifyError>),
    /// The kid is not cached, or the keys are not usable: take the
    /// cooldown-limited refetch, then check again with what it brought.
    NeedKey(String),
}

impl Verifier {
    /// Builds a verifier for `phase` and a validated `[verifier]` section,
    /// with the HS256 secrets it loaded ([`VerifierConfig::load_secrets`]; a
    /// lone `Option<HmacSecret>` converts). Register metric handles after the
    /// recorder is installed: build the verifier after installing it.
    pub fn new(
        phase: Phase,
        cfg: &VerifierConfig,
        secrets: impl Into<HmacSecrets>,
        clock: SharedClock,
    ) -> Result<Verifier, BuildError> {
        let secrets = secrets.into();
        let transport = Transport::from_config(cfg)?;
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(Arc::new(new_cache(url, cfg, &transport, clock.clone())?)),
            None => None,
        };
        if let Some(jwks) = &jwks {
            jwks.set_needed(cfg.accept.contains(Alg::Rs256));
        }
        report_secret(phase, cfg, &secrets);
        metrics::set_max_staleness(cfg.jwks_max_staleness);
        let now = clock.now_secs();
        let authority = new_authority(cfg, &transport, clock.clone())?;
        Ok(Verifier {
            policy: ArcSwap::from_pointee(Policy::new(phase, cfg, &secrets, 1)),
            jwks: ArcSwapOption::new(jwks),
            reloading: tokio::sync::Mutex::new(cfg.jwks_url.clone()),
            verdicts: ArcSwapOption::new(Verdicts::new(cfg.token_cache_size).map(Arc::new)),
            clock,
            metrics: VerifyMetrics::register(),
            stats: MigrationStats::new(now, phase),
            authority: ArcSwap::from_pointee(authority),
            stragglers: Stragglers::default(),
            legacy_clients: Stragglers::default(),
            forced: ArcSwapOption::empty(),
            listen: std::sync::Mutex::new(cfg.listen),
        })
    }

    /// The start check of phase `asymmetric`: refused (unless `force`) only
    /// when the issuer's `/migration` answers and says an HS256 token it
    /// minted may still be valid. An issuer without `/migration` (a
    /// third-party issuer, an RS256-only deployment) never blocks a start.
    pub async fn check_start(&self, force: bool) -> Result<(), BuildError> {
        let policy = self.policy.load_full();
        if policy.phase != Phase::Asymmetric {
            return Ok(());
        }
        let view = self.authority.load().check().await;
        if let crate::authority::IssuerView::Unknown(why) = &view {
            tracing::info!(issuer = %why, "starting in phase asymmetric without the issuer's /migration answer");
            return Ok(());
        }
        // Judged as the switch it is about to be (from an RS256-signing
        // phase), not as one already made.
        let report = self.report_with(Phase::Transition, &policy, &view);
        if report.ready_for_asymmetric {
            return Ok(());
        }
        self.pass_or_refuse(force, report.reason)
    }

    /// Lets a premature switch into `asymmetric` through if `force`
    /// (logged, counted, shown in `/migration`), else refuses it.
    fn pass_or_refuse(&self, force: bool, reason: String) -> Result<(), BuildError> {
        if !force {
            return Err(BuildError::NotReady { reason });
        }
        tracing::warn!(%reason, "verifier.force_phase: entering phase asymmetric though not ready; valid HS256 tokens will be refused");
        metrics::phase_forced();
        self.forced.store(Some(Arc::new(Forced {
            at_unix: self.clock.now_secs(),
            reason,
        })));
        Ok(())
    }

    /// Applies a new config (SIGHUP): phase, accepted algorithms and claim
    /// rules swap in one pointer store; JWKS timing settings and timeouts apply
    /// to the running cache, keeping its keys; a changed `jwks_url` is fetched
    /// first and replaces the cache only if it served usable keys (else the
    /// whole reload is refused and the running config stays); a changed
    /// `token_cache_size` starts a new, empty token cache. Verdicts cached
    /// under the old policy stop counting.
    pub async fn reload(
        &self,
        phase: Phase,
        cfg: &VerifierConfig,
        secrets: impl Into<HmacSecrets>,
    ) -> Result<(), BuildError> {
        let secrets = secrets.into();
        let transport = Transport::from_config(cfg)?;
        let mut url = self.reloading.lock().await;
        let old = self.policy.load_full();
        // The issuer's answer from the URL of the new config, fetched now:
        // a switch into asymmetric is decided on the freshest word.
        let authority = self.authority.load_full();
        let new_authority = if authority.url() != cfg.issuer_migration_url.as_ref() {
            Some(Arc::new(new_authority(
                cfg,
                &transport,
                self.clock.clone(),
            )?))
        } else {
            None
        };
        let entering_asymmetric = phase == Phase::Asymmetric && old.phase != Phase::Asymmetric;
        if entering_asymmetric {
            let view = new_authority.as_ref().unwrap_or(&authority).check().await;
            let report = self.report_with(old.phase, &old, &view);
            if !report.ready_for_asymmetric {
                self.pass_or_refuse(cfg.force_phase, report.reason)?;
            }
        }
        let new_jwks = if *url != cfg.jwks_url {
            match &cfg.jwks_url {
                Some(u) => {
                    let cache = Arc::new(new_cache(u, cfg, &transport, self.clock.clone())?);
                    if cache.force_refresh().await == FetchOutcome::Error {
                        return Err(BuildError::NewJwksUnusable(cache.last_error()));
                    }
                    Some(Some(cache))
                }
                None => Some(None),
            }
        } else {
            if let (Some(cache), Some(u)) = (self.jwks.load_full(), &cfg.jwks_url) {
                let fetcher = Fetcher::new(u, &transport)?;
                cache.reconfigure(JwksSettings::from(cfg), fetcher);
            }
            None
        };
        match new_authority {
            Some(a) => self.authority.store(a),
            None => authority
                .set_transport(&transport)
                .map_err(BuildError::IssuerMigration)?,
        }
        if phase != Phase::Asymmetric {
            self.forced.store(None);
        }
        self.policy.store(Arc::new(Policy::new(
            phase,
            cfg,
            &secrets,
            old.generation + 1,
        )));
        if let Some(jwks) = new_jwks {
            self.jwks.store(jwks);
            url.clone_from(&cfg.jwks_url);
        }
        let size = self.verdicts.load().as_ref().map_or(0, |v| v.size);
        if size != cfg.token_cache_size {
            self.verdicts
                .store(Verdicts::new(cfg.token_cache_size).map(Arc::new));
        }
        self.stats
            .phase_changed(Some(old.phase), phase, self.clock.now_secs());
        if let Some(jwks) = self.jwks.load().as_deref() {
            jwks.set_needed(cfg.accept.contains(Alg::Rs256));
        }
        report_secret(phase, cfg, &secrets);
        metrics::set_max_staleness(cfg.jwks_max_staleness);
        let mut listen = self.listen.lock().unwrap_or_else(|p| p.into_inner());
        if *listen != cfg.listen {
            tracing::warn!(old = %*listen, new = %cfg.listen, "verifier.listen changed; applied the rest of the config, a restart is needed to move the listener");
            *listen = cfg.listen;
        }
        drop(listen);
        tracing::info!(%phase, accept = %cfg.accept, "verifier config reloaded");
        Ok(())
    }

    /// The issuer's `/migration` as this verifier sees it.
    pub fn authority(&self) -> Arc<IssuerAuthority> {
        self.authority.load_full()
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// The JWKS cache, when RS256 is configured.
    pub fn jwks(&self) -> Option<Arc<JwksCache>> {
        self.jwks.load_full()
    }

    /// Whether the keys the accepted algorithms need are loaded.
    pub fn ready(&self) -> bool {
        let policy = self.policy.load();
        let rs_ok =
            !policy.accepts(Alg::Rs256) || self.jwks.load().as_ref().is_some_and(|j| j.usable());
        let hs_ok = !policy.accepts(Alg::Hs256) || policy.hmac.is_some();
        rs_ok && hs_ok
    }

    /// The `/migration` report, from the issuer's last answer (nothing is
    /// fetched here: see [`Verifier::run_refresher`]).
    pub fn migration(&self) -> MigrationReport {
        let policy = self.policy.load();
        let authority = self.authority.load();
        let mut report = self.report_with(policy.phase, &policy, &authority.view());
        report.issuer = Some(authority.status());
        report.forced = self.forced.load().as_deref().cloned();
        report.stragglers = self.stragglers.list();
        report.legacy_clients = self.legacy_clients.list();
        report.hs256_secret_weak = policy.hs256_secret_weak;
        report.legacy_profile = policy
            .legacy
            .as_ref()
            .map(|l| self.stats.legacy_report(&l.config));
        report
    }

    /// The report as of now, judged in `phase` with `p`'s claim rules.
    fn report_with(
        &self,
        phase: Phase,
        p: &Policy,
        issuer: &crate::authority::IssuerView,
    ) -> MigrationReport {
        self.stats.report(ReportInput {
            phase,
            accept: p.accept,
            now: self.clock.now_secs(),
            max_lifetime: p.rules.max_lifetime,
            leeway: p.rules.leeway,
            issuer,
        })
    }

    /// Sets the gauges that are a function of time (readiness for phase
    /// `asymmetric`); the `/metrics` route calls it before rendering.
    pub fn publish_gauges(&self) {
        let report = self.migration();
        metrics::set_readiness(report.ready_for_asymmetric, report.hs256_valid_until_unix);
    }

    /// Background refresh: checks every second whether the JWKS or the
    /// issuer's `/migration` is due and fetches it (the request path never
    /// waits for this). Runs forever.
    pub async fn run_refresher(self: Arc<Self>) {
        loop {
            self.refresh_tick().await;
            self.authority.load_full().check_if_due().await;
            tokio::time::sleep(keyshift_core::config::JWKS_REFRESH_TICK).await;
        }
    }

    /// One tick of [`Verifier::run_refresher`]: fetches the JWKS if the
    /// injected clock says a refresh is due. Returns whether it fetched.
    pub async fn refresh_tick(&self) -> bool {
        match self.jwks.load_full() {
            Some(jwks) => jwks.refresh_if_due().await,
            None => false,
        }
    }

    /// Verifies a token (no scope requirement).
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, VerifyError> {
        self.verify_with_scopes(token, &[]).await
    }

    /// Counts a request that carried no bearer token (no duration sample:
    /// nothing was verified).
    pub fn record_missing(&self) {
        self.metrics.counted(AlgLabel::Other, Outcome::Missing);
        self.stats.rejected(None);
    }

    /// Counts a malformed request (e.g. two `Authorization` headers) as
    /// `malformed`, with no duration sample.
    pub fn record_malformed_request(&self) {
        self.metrics.counted(AlgLabel::Other, Outcome::Malformed);
        self.stats.rejected(None);
    }

    /// Verifies a token and requires `scopes`; counts the outcome.
    pub async fn verify_with_scopes(
        &self,
        token: &str,
        scopes: &[&str],
    ) -> Result<Arc<Verified>, VerifyError> {
        let started = Instant::now();
        // A guard, not an `Arc` clone: the common path never awaits. Only the
        // refetch path, which does, upgrades it to an owned `Arc` first.
        let policy = self.policy.load();
        let now = self.clock.now_secs();
        let (label, mut result) = match self.check(&policy, token, now, None) {
            Step::Done(label, result) => (label, result),
            Step::NeedKey(kid) => {
                let policy = arc_swap::Guard::into_inner(policy);
                let looked_up = match self.jwks.load_full() {
                    Some(jwks) => jwks.lookup_unknown(&kid).await,
                    None => Err(VerifyError::UnknownKid),
                };
                match looked_up {
                    Ok(key) => {
                        match self.check(&policy, token, self.clock.now_secs(), Some(&key)) {
                            Step::Done(label, result) => (label, result),
                            Step::NeedKey(_) => (AlgLabel::Rs256, Err(VerifyError::UnknownKid)),
                        }
                    }
                    Err(e) => (AlgLabel::Rs256, Err(e)),
                }
            }
        };
        if let Ok(v) = &result {
            if !v.has_scopes(scopes) {
                result = Err(VerifyError::InsufficientScope);
            }
        }
        let outcome = match &result {
            Ok(v) => {
                self.stats.accepted(v.alg, v.exp, now);
                self.metrics.accepted_at(v.alg, now);
                if !v.loosened.is_empty() {
                    self.stats.legacy_accepted(v.loosened);
                    self.metrics.legacy(v.loosened);
                    self.legacy_client(v, token, now);
                }
                Outcome::Accepted
            }
            Err(e) => {
                let alg = match label {
                    AlgLabel::Hs256 => Some(Alg::Hs256),
                    AlgLabel::Rs256 => Some(Alg::Rs256),
                    AlgLabel::Other => None,
                };
                self.stats.rejected(alg);
                if let (VerifyError::AlgDisabled, Some(alg)) = (e, alg) {
                    self.straggler(alg, token, now);
                }
                e.outcome()
            }
        };
        self.metrics
            .verified(label, outcome, started.elapsed().as_secs_f64());
        result
    }

    /// Notes a token of a real algorithm the phase refuses, and logs its
    /// client (rate-limited per client: see [`crate::stragglers`]).
    fn straggler(&self, alg: Alg, token: &str, now: u64) {
        if let Some(due) = self.stragglers.refused(alg, token, now) {
            let s = &due.straggler;
            tracing::warn!(
                alg = s.alg,
                client = ?s.client,
                sub = ?s.sub.as_deref().unwrap_or(""),
                iss = ?s.iss.as_deref().unwrap_or(""),
                refused = due.since_last_line,
                total = s.count,
                "token refused: its algorithm is not accepted in this phase (a straggler; claims unverified)"
            );
        }
    }

    /// Notes a client whose token passed only through the legacy profile, and
    /// logs it (rate-limited per client, as stragglers are): the clients an
    /// operator must move before the profile can be turned off.
    fn legacy_client(&self, v: &Verified, token: &str, now: u64) {
        let due =
            self.legacy_clients
                .accepted(Alg::Hs256, v.client_id(), v.sub(), v.exp, token, now);
        if let Some(due) = due {
            let s = &due.straggler;
            tracing::info!(
                client = v.client_id(),
                sub = v.sub(),
                iss = ?s.iss.as_deref().unwrap_or(""),
                loosened = ?v.loosened,
                accepted = due.since_last_line,
                total = s.count,
                "token accepted through the legacy profile"
            );
        }
    }

    /// The synchronous path: everything but an unknown-kid refetch.
    fn check(&self, policy: &Policy, token: &str, now: u64, fetched: Option<&Arc<RsaKey>>) -> Step {
        use Step::Done;
        if token.len() > policy.max_token_bytes {
            return Done(
                AlgLabel::Other,
                Err(VerifyError::Malformed(crate::reason!("token too large"))),
            );
        }
        let verdicts = self.verdicts.load();
        // The key set is read only where it is needed: by the token cache
        // (its generation) and by RS256; HS256 without a cache never loads it.
        let mut jwks = verdicts.as_ref().map(|_| self.jwks.load());
        let generation = match &jwks {
            Some(j) => generation(policy, j.as_deref()),
            None => 0,
        };
        // The second pass after a refetch was counted by the first.
        let first_pass = fetched.is_none();
        if let (Some(v), true) = (verdicts.as_deref(), first_pass) {
            match v.cache.get(token, generation, now, policy.rules.leeway) {
                // Past the maximum staleness RS256 gets 503, cached or not.
                Some(hit)
                    if hit.alg == Alg::Hs256
                        || jwks
                            .as_ref()
                            .and_then(|j| j.as_deref())
                            .is_some_and(|j| j.usable_at(now.saturating_mul(1_000))) =>
                {
                    v.hit.increment(1);
                    return Done(hit.alg.into(), Ok(hit));
                }
                _ => v.miss.increment(1),
            }
        }
        let (parts, header_b64) = match jws::split(token) {
            Ok(x) => x,
            Err(e) => return Done(AlgLabel::Other, Err(e)),
        };
        let mut header_stack = [0u8; jws::HEADER_STACK_BYTES];
        let mut header_heap = Vec::new();
        // Headers are constant per key: the issuer's exact HS256 header skips
        // decoding (its alg, typ and kid are known to pass every check).
        let known = policy.issuer_hs256_header(header_b64);
        let (alg, kid) = if let Some(key) = known {
            (
                Alg::Hs256,
                Some(std::borrow::Cow::Borrowed(key.kid.as_str())),
            )
        } else {
            let header = match jws::header(header_b64, &mut header_stack, &mut header_heap) {
                Ok(h) => h,
                Err(e) => return Done(AlgLabel::Other, Err(e)),
            };
            let Some(alg) = header.alg.as_deref().and_then(Alg::from_jose) else {
                return Done(AlgLabel::Other, Err(VerifyError::AlgDisabled));
            };
            if let Err(e) = policy.check_typ(header.typ.as_deref()) {
                return Done(alg.into(), Err(e));
            }
            (alg, header.kid)
        };
        let label = AlgLabel::from(alg);
        if !policy.accepts(alg) {
            return Done(label, Err(VerifyError::AlgDisabled));
        }
        let kid: Option<&str> = kid.as_deref();
        let mut sig_buf = [0u8; jws::MAX_SIGNATURE_BYTES];
        let signature = match parts.signature(&mut sig_buf) {
            Ok(s) => s,
            Err(e) => return Done(label, Err(e)),
        };
        // What the legacy profile loosened, if the strict rules refuse.
        let mut loosened = Loosenings::NONE;
        // The key decides: HS256 only against the secret(s), RS256 only against the JWKS.
        let signature_ok = match alg {
            Alg::Hs256 => {
                let Some(key) = &policy.hmac else {
                    return Done(label, Err(VerifyError::AlgDisabled));
                };
                let mut mac = key.mac.clone();
                mac.update(parts.signing_input.as_bytes());
                if mac.verify_slice(signature).is_ok() {
                    true
                } else if policy.legacy.as_ref().is_some_and(|profile| {
                    profile.extra_secret_matches(parts.signing_input.as_bytes(), signature)
                }) {
                    loosened = loosened.with(Loosening::SecretFiles);
                    true
                } else {
                    false
                }
            }
            Alg::Rs256 => {
                let Some(kid) = kid else {
                    return Done(label, Err(VerifyError::UnknownKid));
                };
                let jwks = jwks.get_or_insert_with(|| self.jwks.load());
                let Some(cache) = jwks.as_deref() else {
                    return Done(label, Err(VerifyError::AlgDisabled));
                };
                let key = match fetched {
                    Some(k) if k.kid == kid => k.clone(),
                    Some(_) => return Done(label, Err(VerifyError::UnknownKid)),
                    // Never fetched, or too stale: the refetch path decides
                    // between its keys and a 503.
                    None if !cache.usable_at(now.saturating_mul(1_000)) => {
                        return Step::NeedKey(kid.to_owned())
                    }
                    None => match cache.get(kid) {
                        Some(k) => {
                            self.metrics.key_cache(true);
                            k
                        }
                        None => {
                            self.metrics.key_cache(false);
                            return Step::NeedKey(kid.to_owned());
                        }
                    },
                };
                key.key
                    .verify_sig(parts.signing_input.as_bytes(), signature)
                    .is_ok()
            }
        };
        if !signature_ok {
            return Done(label, Err(VerifyError::BadSignature));
        }
        // Payloads are small: decode on the stack, falling back to the heap.
        let mut stack = [0u8; 2048];
        let heap;
        let payload: &[u8] = match b64::decode_slice(parts.payload_b64, &mut stack) {
            Ok(n) => &stack[..n],
            Err(_) => match b64::decode(parts.payload_b64) {
                Ok(p) => {
                    heap = p;
                    &heap
                }
                Err(_) => {
                    return Done(
                        label,
                        Err(VerifyError::Malformed(crate::reason!("bad base64url"))),
                    )
                }
            },
        };
        // With a legacy profile, HS256 claims are read by it (it reads a
        // token in keyshift's shape exactly as the strict rules do, and
        // notes each loosening another shape needed); RS256 never is.
        let read =
            match (&policy.legacy, alg) {
                (Some(profile), Alg::Hs256) => profile
                    .verify(payload, &policy.rules, kid, now)
                    .map(|(v, used)| {
                        loosened = loosened.union(used);
                        v
                    }),
                _ => strict_claims(policy, payload, alg, kid, now),
            };
        let verified = match read {
            Ok(v) => v,
            Err(e) => return Done(label, Err(e)),
        };
        let verified = Arc::new(verified.with_loosenings(loosened));
        if let Some(v) = verdicts.as_deref() {
            v.cache.insert(token, verified.clone(), generation, now);
        }
        Done(label, Ok(verified))
    }
}

/// The strict reading of a verified payload: RFC 9068 claims, exactly.
fn strict_claims(
    policy: &Policy,
    payload: &[u8],
    alg: Alg,
    kid: Option<&str>,
    now: u64,
) -> Result<Verified, VerifyError> {
    let claims = claims::parse(payload)?;
    let exp = policy.rules.check(&claims, now)?;
    // An empty subject names nobody: a resource server given
    // `X-Auth-Subject:` would have no one to authorise.
    let Some(sub) = claims
        .sub
        .as_deref()
        .filter(|s| !s.is_empty() && header_safe(s))
    else {
        return Err(VerifyError::BadClaims(crate::reason!(
            "sub missing, empty or not printable"
        )));
    };
    let client_id = claims.client_id.as_deref().unwrap_or(sub);
    let scope = claims.scope.as_deref().unwrap_or("");
    if !header_safe(client_id) || !header_safe(scope) || !kid.is_none_or(header_safe) {
        return Err(VerifyError::BadClaims(crate::reason!(
            "claims not printable"
        )));
    }
    Ok(Verified::new(sub, client_id, scope, alg, kid, exp))
}

/// Claims copied into `X-Auth-*` headers must be printable ASCII.
pub(crate) fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn new_cache(
    url: &url::Url,
    cfg: &VerifierConfig,
    transport: &Transport,
    clock: SharedClock,
) -> Result<JwksCache, BuildError> {
    let fetcher = Fetcher::new(url, transport)?;
    Ok(JwksCache::new(fetcher, JwksSettings::from(cfg), clock))
}

fn new_authority(
    cfg: &VerifierConfig,
    transport: &Transport,
    clock: SharedClock,
) -> Result<IssuerAuthority, BuildError> {
    IssuerAuthority::new(cfg.issuer_migration_url.as_ref(), transport, clock)
        .map_err(BuildError::IssuerMigration)
}

/// Says, at start and on every reload, what an operator should know about
/// the secrets and the settings the phase ignores, and publishes the gauges.
fn report_secret(phase: Phase, cfg: &VerifierConfig, secrets: &HmacSecrets) {
    let configured = cfg.hs256_secret_file.is_some();
    if phase == Phase::Asymmetric && configured {
        tracing::warn!(
            "verifier.hs256_secret_file is still set in phase asymmetric; remove the shared secret"
        );
    }
    if secrets.any_weak() {
        tracing::warn!(
            "an HS256 secret is shorter than 32 bytes (allow_weak_hs256_secret): anyone who guesses it mints tokens; replace it before phase transition ends"
        );
    }
    for setting in &cfg.ignored {
        tracing::warn!("{}", ignored_warning(setting));
    }
    metrics::set_phase(phase, configured);
    keyshift_core::phase_metrics::set_secret_weak(secrets.any_weak());
}
