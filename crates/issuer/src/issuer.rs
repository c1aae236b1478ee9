//! The running issuer's state: an immutable [`Live`] snapshot (config,
//! clients, signer, pre-rendered JWKS and metadata) swapped atomically on
//! reload or key rotation, so a request never sees half of a change and never
//! waits on one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use keyshift_core::b64;
use keyshift_core::config::{ClientConfig, IssuerConfig};
use keyshift_core::jwk::RsaPublicJwkSet;
use keyshift_core::secret::{HmacSecret, SecretHash};
use keyshift_core::{Phase, SharedClock};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::keystore::{KeySet, KeyStore, KeyStoreError};
use crate::metrics;
use crate::mint::{Signer, TokenTemplate};
use crate::ratelimit::FailureLimiter;
use crate::rotation::RotationPolicy;

/// Renders the Prometheus text exposition; supplied by the binary, which owns the exporter.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Why the issuer could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The key directory is unusable.
    #[error("issuer.key_dir: {0}")]
    Keys(#[from] KeyStoreError),
    /// The HS256 secret is needed but unusable.
    #[error("{0}")]
    Secret(#[from] keyshift_core::ConfigError),
    /// A background task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Everything a request needs, immutable once built.
pub struct Live {
    /// The phase.
    pub phase: Phase,
    /// The issuer section.
    pub config: IssuerConfig,
    /// The token's fixed claims.
    pub template: TokenTemplate,
    /// Clients by id.
    pub clients: HashMap<String, ClientConfig>,
    /// Hash verified for unknown clients, as costly as the configured ones.
    pub dummy_hash: SecretHash,
    /// The signer of the phase.
    pub signer: Signer,
    /// The key set the JWKS was rendered from.
    pub keys: KeySet,
    /// The JWKS body.
    pub jwks: Bytes,
    /// Its strong ETag (quoted).
    pub jwks_etag: String,
    /// The RFC 8414 metadata body.
    pub metadata: Bytes,
    /// Failed-authentication limiter (kept across reloads with the same limits).
    pub limiter: Arc<FailureLimiter>,
    /// Whether an HS256 secret is configured.
    pub secret_configured: bool,
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

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    jwks_uri: String,
    grant_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    response_types_supported: [&'static str; 0],
    scopes_supported: Vec<&'a str>,
}

impl Live {
    fn build(
        phase: Phase,
        config: IssuerConfig,
        secret: Option<HmacSecret>,
        keys: KeySet,
        limiter: Arc<FailureLimiter>,
    ) -> Result<Live, StartError> {
        let signer = match phase.signs() {
            keyshift_core::Alg::Hs256 => {
                let secret = secret.as_ref().ok_or_else(|| {
                    StartError::Secret(keyshift_core::ConfigError::Invalid {
                        field: "issuer.hs256_secret_file".into(),
                        message: format!("phase {phase} signs HS256 and needs the secret"),
                    })
                })?;
                Signer::hs256(secret)
            }
            keyshift_core::Alg::Rs256 => Signer::rs256(
                keys.active()
                    .ok_or_else(|| StartError::Internal("no active RSA key".into()))?,
            ),
        };
        let published = if phase.publishes_rsa_keys() {
            keys.published()
        } else {
            Vec::new()
        };
        let jwks = serde_json::to_vec(&RsaPublicJwkSet { keys: published })
            .map_err(|e| StartError::Internal(e.to_string()))?;
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
            response_types_supported: [],
            scopes_supported: scopes,
        })
        .map_err(|e| StartError::Internal(e.to_string()))?;

        let dummy_hash = dummy_hash(&config.clients);
        let clients = config
            .clients
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        Ok(Live {
            phase,
            template: TokenTemplate {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                ttl: config.token_ttl,
            },
            config,
            clients,
            dummy_hash,
            signer,
            keys,
            jwks: Bytes::from(jwks),
            jwks_etag,
            metadata: Bytes::from(metadata),
            limiter,
            secret_configured: secret.is_some(),
        })
    }
}

/// A hash for unknown clients: argon2id if any client uses argon2id (the
/// same parameters as the first one), else sha256, so an unknown id costs
/// what a known one costs.
fn dummy_hash(clients: &[ClientConfig]) -> SecretHash {
    clients
        .iter()
        .find(|c| matches!(c.secret_hash, SecretHash::Argon2id(_)))
        .map(|c| c.secret_hash.clone())
        .unwrap_or(SecretHash::Sha256([0x5a; 32]))
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
    clock: SharedClock,
    render_metrics: RenderMetrics,
    /// Serialises reloads and key maintenance (never held by requests).
    maintenance: tokio::sync::Mutex<()>,
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
        let live = build_live(phase, config, &clock, limiter).await?;
        publish_gauges(&live);
        Ok(Issuer {
            live: ArcSwap::from_pointee(live),
            clock,
            render_metrics,
            maintenance: tokio::sync::Mutex::new(()),
        })
    }

    /// The current snapshot.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// The current time since the epoch.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        (self.render_metrics)()
    }

    /// Replaces phase and config (SIGHUP). On error the running snapshot stays.
    pub async fn reload(&self, phase: Phase, config: IssuerConfig) -> Result<(), StartError> {
        let _guard = self.maintenance.lock().await;
        let current = self.live.load_full();
        let limiter = if current.config.failed_auth_limit == config.failed_auth_limit
            && current.config.failed_auth_window == config.failed_auth_window
        {
            current.limiter.clone()
        } else {
            Arc::new(FailureLimiter::new(
                config.failed_auth_limit,
                config.failed_auth_window,
            ))
        };
        if config.listen != current.config.listen {
            tracing::warn!(old = %current.config.listen, new = %config.listen, "issuer.listen changed; a restart is needed to move the listener");
        }
        let live = build_live(phase, config, &self.clock, limiter).await?;
        tracing::info!(phase = %live.phase, signs = %live.signer.alg(), kid = live.signer.kid(), "issuer config reloaded");
        publish_gauges(&live);
        self.live.store(Arc::new(live));
        Ok(())
    }

    /// Applies due rotation steps and picks up offline changes to the key
    /// directory (`keyshift keys rotate`). Returns whether the snapshot changed.
    pub async fn maintain_keys(&self) -> Result<bool, StartError> {
        let _guard = self.maintenance.lock().await;
        let current = self.live.load_full();
        let keys = maintain(&current.config, self.clock.now().as_secs()).await?;
        if keys.manifest == current.keys.manifest {
            return Ok(false);
        }
        let secret = current.config.load_secret()?;
        let live = Live::build(
            current.phase,
            current.config.clone(),
            secret,
            keys,
            current.limiter.clone(),
        )?;
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

async fn maintain(config: &IssuerConfig, now: u64) -> Result<KeySet, StartError> {
    let store = KeyStore::new(config.key_dir.clone());
    let policy = policy(config);
    let bits = config.key_bits;
    let (keys, _) = tokio::task::spawn_blocking(move || store.maintain(now, &policy, bits))
        .await
        .map_err(|e| StartError::Internal(e.to_string()))??;
    for path in &keys.foreign_files {
        tracing::warn!(path = %path.display(), "unexpected file in the key directory (left untouched)");
    }
    Ok(keys)
}

async fn build_live(
    phase: Phase,
    config: IssuerConfig,
    clock: &SharedClock,
    limiter: Arc<FailureLimiter>,
) -> Result<Live, StartError> {
    let secret = config.load_secret()?;
    if phase == Phase::Asymmetric && secret.is_some() {
        tracing::warn!(
            "issuer.hs256_secret_file is still set in phase asymmetric; remove the shared secret"
        );
    }
    let keys = maintain(&config, clock.now().as_secs()).await?;
    Live::build(phase, config, secret, keys, limiter)
}

fn publish_gauges(live: &Live) {
    metrics::set_phase(live.phase, live.secret_configured);
    metrics::set_key_counts(|s| live.keys.count(s));
    let due = live.config.rotate_every.and_then(|every| {
        let active = live
            .keys
            .manifest
            .keys_in(crate::keystore::KeyState::Active)
            .next()?;
        Some(
            active
                .activated_at
                .unwrap_or(active.created_at)
                .saturating_add(every.as_secs()),
        )
    });
    metrics::set_next_rotation(due);
}
