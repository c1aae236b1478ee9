//! The running issuer's state: an immutable [`Live`] snapshot (config,
//! clients, signer, pre-rendered JWKS and metadata) swapped atomically on
//! reload or key rotation, so a request never sees half of a change and never
//! waits on one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use keyshift_core::b64;
use keyshift_core::config::IssuerConfig;
use keyshift_core::jwk::RsaPublicJwkSet;
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Phase, SharedClock};
use keyshift_http::ops::RenderMetrics;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::{AuthShared, Authenticator};
use crate::keystore::{IfEmpty, KeySet, KeyStore, KeyStoreError};
use crate::ledger::Hs256Ledger;
use crate::metrics;
use crate::mint::{Signer, TokenTemplate};
use crate::ratelimit::FailureLimiter;
use crate::rotation::{RotationPolicy, Step};

/// Why the issuer could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The key directory is unusable.
    #[error("issuer.key_dir: {0}")]
    Keys(#[from] KeyStoreError),
    /// The phase signs RS256 and the key directory does not exist or holds
    /// no key: a fresh key would orphan every token signed by the keys of the
    /// directory that was meant (a mistyped path), so none is made.
    #[error("issuer.key_dir: phase {phase} signs RS256, and {source}; a new key here would make verifiers refuse every outstanding RS256 token (unknown key id)")]
    KeyDirRefused {
        /// The phase.
        phase: Phase,
        /// What is wrong with the folder.
        #[source]
        source: KeyStoreError,
    },
    /// The HS256 secret is needed but unusable.
    #[error("{0}")]
    Secret(#[from] keyshift_core::ConfigError),
    /// The phase signs RS256 but the key directory has no active key (only
    /// `next` or `retiring` ones, after manual edits).
    #[error("issuer.key_dir: {dir} has no active key, and phase {phase} signs RS256; run `keyshift keys rotate --now` to make its next key active, or `keyshift keys generate` if it has none")]
    NoActiveKey {
        /// The key directory.
        dir: std::path::PathBuf,
        /// The phase.
        phase: Phase,
    },
    /// A reload that would make verifiers refuse tokens: the message says
    /// why and what to do instead. The running config stays.
    #[error("refused: {0}")]
    Refused(String),
    /// A published document (JWKS, metadata) could not be serialised.
    #[error("serialising a published document failed")]
    Json(#[from] serde_json::Error),
    /// The blocking key-store task panicked or was cancelled.
    #[error("the key store task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Everything a request needs, immutable once built.
pub struct Live {
    /// The phase.
    pub(crate) phase: Phase,
    /// The issuer section.
    pub(crate) config: IssuerConfig,
    /// The token's fixed claims.
    pub(crate) template: TokenTemplate,
    /// Who may ask for tokens, and how their secrets are checked.
    pub(crate) auth: Authenticator,
    /// The signer of the phase.
    pub(crate) signer: Signer,
    /// The key set the JWKS was rendered from.
    pub(crate) keys: KeySet,
    /// The JWKS body.
    pub(crate) jwks: Bytes,
    /// Its strong ETag (quoted).
    pub(crate) jwks_etag: String,
    /// The RFC 8414 metadata body.
    pub(crate) metadata: Bytes,
    /// The token endpoint's metric handles for this config's clients.
    pub(crate) metrics: metrics::TokenMetrics,
    /// Whether the loaded HS256 secret is shorter than 32 bytes.
    pub(crate) secret_weak: bool,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("phase", &self.phase)
            .field("signer", &self.signer)
            .field("jwks_etag", &self.jwks_etag)
            .finish_non_exhaustive()
    }
}

/// The RFC 8414 document, also served as OpenID Connect Discovery's, so it
/// carries the members both make REQUIRED and strict validators (authlib's
/// `AuthorizationServerMetadata` and `OpenIDProviderMetadata`) insist on.
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    jwks_uri: String,
    grant_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    /// REQUIRED and non-empty by RFC 8414 §2, though keyshift has no
    /// authorization endpoint: `none` (OAuth 2.0 Multiple Response Type
    /// Encoding Practices §4, in IANA's registry) is the value that says no
    /// token or code ever comes from one. `[]` failed strict validators.
    response_types_supported: [&'static str; 1],
    scopes_supported: Vec<&'a str>,
    /// REQUIRED by OpenID Connect Discovery §3: `public`, as `sub` (the
    /// client id) is the same for every resource server.
    subject_types_supported: [&'static str; 1],
    /// REQUIRED by OpenID Connect Discovery §3, with RS256 in it. keyshift
    /// issues no ID tokens; RS256 is what its access tokens move to.
    id_token_signing_alg_values_supported: [&'static str; 1],
}

impl Live {
    /// The phase this snapshot serves.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The issuer section it was built from.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// Client authentication.
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// The key set the JWKS was rendered from.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The signer of the phase.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    fn build(
        phase: Phase,
        config: IssuerConfig,
        secret: Option<HmacSecret>,
        keys: KeySet,
        limiter: Arc<FailureLimiter>,
        auth_shared: AuthShared,
    ) -> Result<Live, StartError> {
        let signer =
            Signer::for_phase(&config, phase, secret.as_ref(), keys.active()).ok_or_else(|| {
                match phase.signs() {
                    keyshift_core::Alg::Hs256 => {
                        StartError::Secret(keyshift_core::ConfigError::Invalid {
                            field: "issuer.hs256_secret_file".into(),
                            message: format!("phase {phase} signs HS256 and needs the secret"),
                        })
                    }
                    keyshift_core::Alg::Rs256 => StartError::NoActiveKey {
                        dir: config.key_dir.clone(),
                        phase,
                    },
                }
            })?;
        let published = if phase.publishes_rsa_keys() {
            keys.published()
        } else {
            Vec::new()
        };
        let jwks = serde_json::to_vec(&RsaPublicJwkSet { keys: published })?;
        let jwks_etag = format!("\"{}\"", b64::encode(&Sha256::digest(&jwks)[..16]));

        let mut scopes: Vec<&str> = config
            .clients
            .iter()
            .flat_map(|c| c.scopes.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let metadata = serde_json::to_vec_pretty(&Metadata {
            issuer: &config.issuer,
            token_endpoint: config.token_endpoint(),
            jwks_uri: config.jwks_uri(),
            grant_types_supported: ["client_credentials"],
            token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
            response_types_supported: ["none"],
            scopes_supported: scopes,
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: ["RS256"],
        })?;

        let auth = Authenticator::new(&config.clients, limiter, auth_shared)
            .map_err(StartError::Secret)?;
        let token_metrics = metrics::TokenMetrics::new(&config.clients);
        Ok(Live {
            phase,
            template: TokenTemplate::for_phase(&config, phase),
            secret_weak: secret.as_ref().is_some_and(HmacSecret::is_weak),
            config,
            auth,
            signer,
            keys,
            jwks: Bytes::from(jwks),
            jwks_etag,
            metadata: Bytes::from(metadata),
            metrics: token_metrics,
        })
    }
}

fn policy(config: &IssuerConfig) -> RotationPolicy {
    RotationPolicy {
        rotate_every: config.rotate_every,
        prepublish: config.key_prepublish,
        token_ttl: config.token_ttl,
    }
}

/// The running issuer.
pub struct Issuer {
    live: ArcSwap<Live>,
    /// What client authentication keeps across reloads: the slots that
    /// bound concurrent slow-hash verifications (an argon2id one holds
    /// ~19 MiB for tens of milliseconds: without a bound one client could
    /// exhaust memory before the failure limiter has counted anything), and
    /// the decoy key.
    auth_shared: AuthShared,
    foreign_files: ForeignFileLog,
    /// The HS256 tokens minted, for `GET /migration`.
    ledger: Hs256Ledger,
    clock: SharedClock,
    render_metrics: RenderMetrics,
    /// Serialises reloads and key maintenance (never held by requests).
    maintenance: tokio::sync::Mutex<()>,
    /// The digest of the manifest [`Issuer::sync_keys`] saw last.
    manifest_seen: std::sync::Mutex<Option<[u8; 32]>>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("live", &self.live.load())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Opens (or creates) the key directory, applies any due rotation step,
    /// loads the secret, and builds the first snapshot.
    pub async fn start(
        phase: Phase,
        config: IssuerConfig,
        clock: SharedClock,
        render_metrics: RenderMetrics,
    ) -> Result<Issuer, StartError> {
        let limiter = Arc::new(FailureLimiter::new(
            config.failed_auth_limit,
            config.failed_auth_window,
        ));
        let now = clock.now().as_secs();
        let foreign_files = ForeignFileLog::default();
        let auth_shared = AuthShared::new();
        let (mut live, steps) = build_live(
            phase,
            config,
            now,
            limiter,
            auth_shared.clone(),
            &foreign_files,
        )
        .await?;
        // A brand-new key directory has no verifier that could hold a stale
        // JWKS; an existing key that was never served is worth a warning.
        if !steps.contains(&Step::CreateInitialActive) && live.keys.adopted.is_none() {
            if let Some(why) = signs_unpublished_key(&live, now) {
                tracing::warn!(
                    "{why}; verifiers holding an older JWKS refuse its tokens until they refetch"
                );
            }
        }
        record_served(&mut live, now).await;
        publish_gauges(&live);
        let ledger = {
            let (dir, phase) = (live.config.key_dir.clone(), live.phase);
            let secret = live.config.hs256_secret_file.is_some();
            let ttl = live.config.token_ttl;
            tokio::task::spawn_blocking(move || Hs256Ledger::open(&dir, phase, secret, ttl, now))
                .await??
        };
        Ok(Issuer {
            live: ArcSwap::from_pointee(live),
            auth_shared,
            foreign_files,
            ledger,
            clock,
            render_metrics,
            maintenance: tokio::sync::Mutex::new(()),
            manifest_seen: std::sync::Mutex::new(None),
        })
    }

    /// The current snapshot. An owned `Arc`, so it may be held across an
    /// `.await` without pinning arc-swap's per-thread debt slots.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The permits that bound concurrent argon2 verifications: twice the
    /// available cores. A request that cannot get one within
    /// [`crate::routes::token::ARGON2_QUEUE_WAIT`] gets 429.
    pub fn hash_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.auth_shared.slots
    }

    /// The current time since the epoch.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The Prometheus text exposition.
    pub fn render_metrics(&self) -> &RenderMetrics {
        &self.render_metrics
    }

    /// The `GET /migration` answer: the phase, and until when an HS256 token
    /// this issuer minted may be valid.
    pub fn migration(&self) -> keyshift_core::migration::IssuerMigration {
        self.ledger.answer(self.live.load().phase)
    }

    /// Records an HS256 token about to be minted (see [`crate::ledger`]).
    pub async fn note_hs256(&self, iat: u64, exp: u64, token_ttl: Duration) {
        self.ledger.note(iat, exp, token_ttl).await;
    }

    /// Replaces phase and config (SIGHUP). On error the running snapshot stays.
    pub async fn reload(&self, phase: Phase, config: IssuerConfig) -> Result<(), StartError> {
        let _guard = self.maintenance.lock().await;
        let current = self.live.load_full();
        let limiter = if current.config.failed_auth_limit == config.failed_auth_limit
            && current.config.failed_auth_window == config.failed_auth_window
        {
            current.auth.limiter().clone()
        } else {
            Arc::new(FailureLimiter::new(
                config.failed_auth_limit,
                config.failed_auth_window,
            ))
        };
        // From a phase whose JWKS lists no RSA key straight to signing RS256:
        // no verifier can have the key yet (leaving `legacy` clears every
        // `published_at`). Refused before anything, rotation included, is applied.
        if !current.phase.publishes_rsa_keys() && phase.signs() == keyshift_core::Alg::Rs256 {
            return Err(StartError::Refused(format!(
                "phase {} serves no RSA key, so no verifier has the key phase {phase} would sign with; reload with phase dual first and wait issuer.key_prepublish ({}) before phase {phase}",
                current.phase,
                keyshift_core::duration::HumanDuration(config.key_prepublish),
            )));
        }
        let now = self.clock.now().as_secs();
        let (mut live, _) = build_live(
            phase,
            config,
            now,
            limiter,
            self.auth_shared.clone(),
            &self.foreign_files,
        )
        .await?;
        record_served(&mut live, now).await;
        if live.config.listen != current.config.listen {
            tracing::warn!(old = %current.config.listen, new = %live.config.listen, "issuer.listen changed; applied the rest of the config, a restart is needed to move the listener");
        }
        tracing::info!(phase = %live.phase, signs = %live.signer.alg(), kid = live.signer.kid(), "issuer config reloaded");
        publish_gauges(&live);
        if live.config.key_dir != current.config.key_dir {
            self.ledger.sync(&live.config.key_dir).await;
        }
        self.live.store(Arc::new(live));
        Ok(())
    }

    /// Follows the key directory shared with other replicas and the
    /// `keyshift keys` commands: runs [`Issuer::maintain_keys`] when the
    /// manifest changed since the last look or a rotation step is due,
    /// else does nothing (no lock, no key parsed). The binary calls it every
    /// [`keyshift_core::config::KEY_SYNC_INTERVAL`], so a replica serves a
    /// key another one published within about that long.
    pub async fn sync_keys(&self) -> Result<bool, StartError> {
        let live = self.live.load_full();
        let store = KeyStore::new(live.config.key_dir.clone());
        let policy = policy(&live.config);
        let now = self.clock.now().as_secs();
        let mut last = *self.manifest_seen.lock().unwrap_or_else(|p| p.into_inner());
        let (needed, seen) = tokio::task::spawn_blocking(move || {
            let needed = store.needs_maintenance(&mut last, now, &policy);
            (needed, last)
        })
        .await?;
        *self.manifest_seen.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        if needed {
            self.maintain_keys().await
        } else {
            Ok(false)
        }
    }

    /// Applies due rotation steps and picks up offline changes to the key
    /// directory (`keyshift keys rotate`). Returns whether the snapshot changed.
    pub async fn maintain_keys(&self) -> Result<bool, StartError> {
        let _guard = self.maintenance.lock().await;
        let current = self.live.load_full();
        let now = self.clock.now().as_secs();
        self.ledger.sync(&current.config.key_dir).await;
        let (keys, _) = maintain(current.phase, &current.config, now, &self.foreign_files).await?;
        if keys.manifest == current.keys.manifest
            && !current
                .keys
                .manifest
                .clone()
                .record_served(&served_kids(&current), now)
        {
            return Ok(false);
        }
        let secret = current.config.load_secret(current.phase)?;
        let mut live = Live::build(
            current.phase,
            current.config.clone(),
            secret,
            keys,
            current.auth.limiter().clone(),
            self.auth_shared.clone(),
        )?;
        record_served(&mut live, now).await;
        tracing::info!(
            signing_kid = live.signer.kid(),
            published = live.keys.published().len(),
            "signing keys changed"
        );
        publish_gauges(&live);
        self.live.store(Arc::new(live));
        Ok(true)
    }
}

/// Logs the files in the key directory that the manifest does not account
/// for once per distinct set, not on every key tick.
#[derive(Debug, Default)]
struct ForeignFileLog {
    last: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl ForeignFileLog {
    /// Logs `files` if they differ from the last set seen; returns whether it logged.
    fn report(&self, files: &[std::path::PathBuf]) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_slice() == files {
            return false;
        }
        files.clone_into(&mut last);
        for path in files {
            tracing::warn!(path = %path.display(), "unexpected file in the key directory (left untouched)");
        }
        !files.is_empty()
    }
}

/// Applies due rotation steps. A phase that signs HS256 may get a new key
/// directory (its last folder) and first key; one that signs RS256 never.
async fn maintain(
    phase: Phase,
    config: &IssuerConfig,
    now: u64,
    foreign_files: &ForeignFileLog,
) -> Result<(KeySet, Vec<Step>), StartError> {
    let store = KeyStore::new(config.key_dir.clone());
    let policy = policy(config);
    let bits = config.key_bits;
    let if_empty = match phase.signs() {
        keyshift_core::Alg::Hs256 => IfEmpty::CreateFirstKey,
        keyshift_core::Alg::Rs256 => IfEmpty::Refuse,
    };
    let (keys, steps) =
        match tokio::task::spawn_blocking(move || store.maintain(now, &policy, bits, if_empty))
            .await?
        {
            Ok(done) => done,
            Err(source @ (KeyStoreError::NoDirectory { .. } | KeyStoreError::Empty { .. })) => {
                return Err(StartError::KeyDirRefused { phase, source })
            }
            Err(e) => return Err(e.into()),
        };
    if keys.created_dir {
        tracing::info!(key_dir = %config.key_dir.display(), %phase, "created the key directory");
    }
    foreign_files.report(&keys.foreign_files);
    if let Some(path) = &keys.adopted {
        tracing::warn!(path = %path.display(), "the key directory had this key file but no manifest.json, as a first start interrupted between the two writes leaves it: adopted it as the active key");
    }
    Ok((keys, steps))
}

/// The kids the snapshot's JWKS lists (none in phase `legacy`).
fn served_kids(live: &Live) -> Vec<String> {
    if live.phase.publishes_rsa_keys() {
        live.keys.published().into_iter().map(|j| j.kid).collect()
    } else {
        Vec::new()
    }
}

/// Records in the manifest which keys the snapshot about to go live serves
/// (`published_at`), so promotions wait `key_prepublish` from the moment
/// verifiers could first see a key. A failed write is logged and retried on
/// the next key tick; the snapshot keeps what is on disk, never more.
async fn record_served(live: &mut Live, now: u64) {
    let served = served_kids(live);
    let mut manifest = live.keys.manifest.clone();
    if !manifest.record_served(&served, now) {
        return;
    }
    let store = KeyStore::new(live.config.key_dir.clone());
    match tokio::task::spawn_blocking(move || store.record_served(&served, now)).await {
        Ok(Ok(())) => live.keys.manifest = manifest,
        Ok(Err(e)) => record_served_failed(&e),
        Err(e) => record_served_failed(&e),
    }
}

fn record_served_failed(e: &dyn std::fmt::Display) {
    tracing::error!(error = %e, "cannot record which keys the JWKS serves; retrying on the next key tick");
}

/// Why the snapshot's RS256 signing key may be unknown to verifiers: it has
/// not been served in the JWKS for `key_prepublish`. `None` when it has, or
/// when the snapshot signs HS256.
fn signs_unpublished_key(live: &Live, now: u64) -> Option<String> {
    if live.signer.alg() != keyshift_core::Alg::Rs256 {
        return None;
    }
    let entry = live
        .keys
        .manifest
        .keys_in(crate::keystore::KeyState::Active)
        .next()?;
    unpublished_for(live.phase, entry, live.config.key_prepublish.as_secs(), now)
}

/// Why `entry`, signing in `phase`, has not been in the JWKS for `prepublish`
/// seconds at `now`; `None` when it has.
fn unpublished_for(
    phase: Phase,
    entry: &crate::keystore::KeyEntry,
    prepublish: u64,
    now: u64,
) -> Option<String> {
    match entry.published_at {
        Some(at) if at.saturating_add(prepublish) <= now => None,
        Some(at) => Some(format!(
            "phase {phase} signs RS256 with key {}, which has been in the JWKS for only {}s of issuer.key_prepublish ({prepublish}s)",
            entry.kid,
            now.saturating_sub(at),
        )),
        None => Some(format!(
            "phase {phase} signs RS256 with key {}, which this issuer has never served in its JWKS",
            entry.kid
        )),
    }
}

async fn build_live(
    phase: Phase,
    config: IssuerConfig,
    now: u64,
    limiter: Arc<FailureLimiter>,
    auth_shared: AuthShared,
    foreign_files: &ForeignFileLog,
) -> Result<(Live, Vec<Step>), StartError> {
    let secret = config.load_secret(phase)?;
    if phase == Phase::Asymmetric && config.hs256_secret_file.is_some() {
        tracing::warn!(
            "issuer.hs256_secret_file is still set in phase asymmetric; remove the shared secret"
        );
    }
    if secret.as_ref().is_some_and(HmacSecret::is_weak) {
        tracing::warn!(
            "issuer.hs256_secret_file holds a secret shorter than 32 bytes (allow_weak_hs256_secret): anyone who guesses it mints tokens; replace it before phase transition ends"
        );
    }
    for setting in &config.ignored {
        tracing::warn!("{}", keyshift_core::config::ignored_warning(setting));
    }
    let (keys, steps) = maintain(phase, &config, now, foreign_files).await?;
    Ok((
        Live::build(phase, config, secret, keys, limiter, auth_shared)?,
        steps,
    ))
}

fn publish_gauges(live: &Live) {
    metrics::set_phase(live.phase, live.config.hs256_secret_file.is_some());
    keyshift_core::phase_metrics::set_secret_weak(live.secret_weak);
    metrics::set_key_counts(|s| live.keys.count(s));
    metrics::set_next_rotation(crate::rotation::next_rotation(
        &live.keys.manifest,
        &policy(&live.config),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_served_for_less_than_prepublish_is_named_with_how_long() {
        let mut entry = crate::keystore::KeyEntry::new_next("k1".into(), 2048, 1_000);
        entry.activate(1_000);
        let why = unpublished_for(Phase::Transition, &entry, 900, 2_000).expect("never served");
        assert!(why.contains("never served") && why.contains("k1"), "{why}");
        entry.published_at = Some(1_900);
        let why = unpublished_for(Phase::Transition, &entry, 900, 2_000).expect("too short");
        assert!(
            why.contains("only 100s of issuer.key_prepublish (900s)"),
            "{why}"
        );
        assert_eq!(unpublished_for(Phase::Transition, &entry, 900, 2_800), None);
    }

    #[test]
    fn foreign_files_are_logged_once_per_distinct_set() {
        let log = ForeignFileLog::default();
        let a = std::path::PathBuf::from("/k/notes.txt");
        let b = std::path::PathBuf::from("/k/old.pem.bak");
        assert!(!log.report(&[]), "nothing to say");
        assert!(log.report(std::slice::from_ref(&a)));
        assert!(
            !log.report(std::slice::from_ref(&a)),
            "every 30 s tick: silent"
        );
        assert!(log.report(&[a.clone(), b.clone()]), "a new file");
        assert!(!log.report(&[a.clone(), b]));
        assert!(!log.report(&[]), "cleaned up: nothing to warn about");
        assert!(log.report(&[a]), "back again");
    }
}
