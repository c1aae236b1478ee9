//! Client authentication: which client a token request comes from, or why
//! it is refused. [`Authenticator::authenticate`] is the one place that
//! looks at a secret; it owns the clients and their parsed hashes, the
//! decoy hashes unknown ids are checked against, the failure limiter and the
//! bounded pool of slow-hash verifications.
//!
//! - [`credentials`]: `client_secret_basic` / `client_secret_post` parsing;
//! - [`hash`]: verifying a secret against its configured hash.

pub mod credentials;
pub mod hash;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use keyshift_core::config::{ClientConfig, MAX_CLIENT_ID_BYTES};
use keyshift_core::ConfigError;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::ratelimit::{network, FailureLimiter, LimitKey};
pub use credentials::{credentials, Credentials};
pub use hash::ClientHash;

/// Longest a request waits for a slow-hash verification slot before it gets
/// 429 (`Retry-After: 1`): long enough to ride out a burst of legitimate
/// clients, short enough that a flood queues nothing for long.
pub const SLOW_HASH_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown client, or wrong secret (401 `invalid_client`).
    #[error("client authentication failed")]
    Invalid,
    /// Too many failures counted against this client, network or pair
    /// (429 with `Retry-After`).
    #[error("too many failed authentications; retry in {0:?}")]
    Limited(Duration),
    /// No slow-hash slot freed up in time (429, `Retry-After: 1`); nothing
    /// was counted.
    #[error("all secret verification slots are busy")]
    Busy,
    /// The verification task panicked.
    #[error("the secret verification task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// What survives a reload: the slots bound memory across configs, and the
/// decoy key keeps each unknown id's decoy the same (a change on reload
/// would tell unknown ids from known ones).
#[derive(Debug, Clone)]
pub struct AuthShared {
    /// Concurrent slow-hash verifications: twice the cores.
    pub slots: Arc<Semaphore>,
    decoy_key: [u8; 32],
}

impl AuthShared {
    /// Slots for twice the available cores and a fresh random decoy key.
    pub fn new() -> AuthShared {
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_mul(2);
        let mut decoy_key = [0u8; 32];
        // On failure the key stays zero: decoys are then predictable, not
        // absent, and timing still matches a known client's.
        let _ = aws_lc_rs::rand::fill(&mut decoy_key);
        AuthShared {
            slots: Arc::new(Semaphore::new(slots)),
            decoy_key,
        }
    }
}

impl Default for AuthShared {
    fn default() -> Self {
        AuthShared::new()
    }
}

struct Client {
    config: ClientConfig,
    hash: Arc<ClientHash>,
}

/// The clients of one config, and how their secrets are checked.
pub struct Authenticator {
    clients: HashMap<String, Client>,
    /// Every configured hash, in config order: an unknown id is checked
    /// against one of them, chosen by a keyed hash of the id, so it costs
    /// what a known client costs whatever mix of schemes the config holds.
    decoys: Vec<Arc<ClientHash>>,
    /// The decoy when no client is configured (every id is unknown).
    placeholder: Arc<ClientHash>,
    limiter: Arc<FailureLimiter>,
    shared: AuthShared,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Parses every client's hash fully; the error names the client's field.
    pub fn new(
        clients: &[ClientConfig],
        limiter: Arc<FailureLimiter>,
        shared: AuthShared,
    ) -> Result<Authenticator, ConfigError> {
        let mut by_id = HashMap::new();
        let mut decoys = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let hash = Arc::new(parse_hash(i, c)?);
            decoys.push(hash.clone());
            by_id.insert(
                c.id.clone(),
                Client {
                    config: c.clone(),
                    hash,
                },
            );
        }
        Ok(Authenticator {
            clients: by_id,
            decoys,
            placeholder: Arc::new(ClientHash::placeholder()),
            limiter,
            shared,
        })
    }

    /// Parses every client's hash fully, as [`Authenticator::new`] does
    /// (`keyshift config check`); the error names the client's field.
    pub fn check_clients(clients: &[ClientConfig]) -> Result<(), ConfigError> {
        for (i, c) in clients.iter().enumerate() {
            parse_hash(i, c)?;
        }
        Ok(())
    }

    /// The failure limiter (kept across reloads with the same limits).
    pub fn limiter(&self) -> &Arc<FailureLimiter> {
        &self.limiter
    }

    /// The configured client `id`, if any.
    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.clients.get(id).map(|c| &c.config)
    }

    /// The hash an unknown `id` is checked against: the same one every time
    /// for the same id, spread over the configured hashes as the clients are.
    pub fn decoy_for(&self, id: &str) -> &Arc<ClientHash> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.shared.decoy_key)
            .expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        let n = self.decoys.len().max(1) as u64;
        let i = usize::try_from(u64::from_le_bytes(first) % n).unwrap_or(0);
        self.decoys.get(i).unwrap_or(&self.placeholder)
    }

    /// Checks `creds` from `peer` at `now`: the limiter first (the attempt
    /// is charged before any hashing), then the secret against the client's
    /// hash, or a decoy for an unknown id, with slow hashes on the blocking
    /// pool, a bounded number at a time.
    pub async fn authenticate(
        &self,
        creds: &Credentials,
        peer: IpAddr,
        now: Duration,
    ) -> Result<&ClientConfig, AuthError> {
        // No configured client has a longer id (the config refuses them), so it
        // needs no lookup, and never becomes a limiter key of up to 16 KiB.
        if creds.id.len() > MAX_CLIENT_ID_BYTES {
            let net = LimitKey::Net(network(peer));
            if let Some(wait) = self.limiter.blocked(&net, now) {
                return Err(AuthError::Limited(wait));
            }
            self.limiter.record_failure(net, now);
            return Err(AuthError::Invalid);
        }
        let attempt = self
            .limiter
            .begin(&creds.id, peer, now)
            .map_err(AuthError::Limited)?;
        let client = self.clients.get(&creds.id);
        let hash = client.map_or_else(|| self.decoy_for(&creds.id), |c| &c.hash);
        let verified = if hash.is_slow() {
            let permit = match tokio::time::timeout(
                SLOW_HASH_QUEUE_WAIT,
                self.shared.slots.clone().acquire_owned(),
            )
            .await
            {
                Ok(Ok(permit)) => permit,
                // The semaphore is never closed; were it, no slot is to be had.
                Ok(Err(_)) | Err(_) => {
                    attempt.abandoned();
                    return Err(AuthError::Busy);
                }
            };
            let hash = hash.clone();
            let secret = zeroize::Zeroizing::new(creds.secret.as_bytes().to_vec());
            // The permit moves into the blocking task: it is released when the
            // work ends, even if this request is dropped meanwhile.
            let work = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                hash.verify(&secret)
            });
            match work.await {
                Ok(v) => v,
                Err(e) => {
                    attempt.abandoned();
                    return Err(e.into());
                }
            }
        } else {
            hash.verify(creds.secret.as_bytes())
        };
        match client {
            Some(c) if verified => {
                attempt.succeeded();
                Ok(&c.config)
            }
            _ => {
                attempt.failed();
                tracing::debug!(client = %creds.id.escape_debug(), %peer, "client authentication failed");
                Err(AuthError::Invalid)
            }
        }
    }
}

fn parse_hash(i: usize, c: &ClientConfig) -> Result<ClientHash, ConfigError> {
    ClientHash::new(&c.secret_hash).map_err(|e| ConfigError::Invalid {
        field: format!("issuer.clients[{i}].secret_hash"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::secret::SecretHash;

    fn client(id: &str, hash: SecretHash) -> ClientConfig {
        ClientConfig {
            id: id.to_owned(),
            secret_hash: hash,
            scopes: vec!["read".to_owned()],
        }
    }

    fn authenticator(clients: &[ClientConfig]) -> Authenticator {
        let limiter = Arc::new(FailureLimiter::new(10, Duration::from_secs(60)));
        Authenticator::new(clients, limiter, AuthShared::new()).expect("valid")
    }

    #[test]
    fn unknown_ids_get_decoys_spread_like_the_clients_and_stable_per_id() {
        let sha = |s: &[u8]| SecretHash::sha256_of(s);
        let slow = SecretHash::parse(
            "$pbkdf2-sha256$i=1000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$3SnaKE5ShiIq4tw1Ch8wpvHmqtylq3RWTrwgZ2Za4qM",
        )
        .expect("form");
        // Three sha256 clients, one slow one.
        let auth = authenticator(&[
            client("a", sha(b"a")),
            client("b", sha(b"b")),
            client("c", sha(b"c")),
            client("slow", slow),
        ]);
        let mut slow_decoys = 0;
        for i in 0..2_000 {
            let id = format!("ghost-{i}");
            let d = auth.decoy_for(&id);
            assert!(Arc::ptr_eq(d, auth.decoy_for(&id)), "stable per id");
            slow_decoys += usize::from(d.is_slow());
        }
        // One client in four is slow: about 500 of 2,000 unknown ids are too.
        assert!((400..=600).contains(&slow_decoys), "{slow_decoys}");
    }

    #[test]
    fn with_no_client_every_id_gets_the_placeholder() {
        let auth = authenticator(&[]);
        let d = auth.decoy_for("anyone");
        assert!(!d.is_slow());
        assert!(!d.verify(b"anyone"));
        assert!(auth.client("anyone").is_none());
    }

    #[test]
    fn a_broken_slow_hash_names_its_client_field() {
        let bad = SecretHash::parse("$2b$99$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui")
            .expect("form");
        let limiter = Arc::new(FailureLimiter::new(10, Duration::from_secs(60)));
        let err = Authenticator::new(
            &[
                client("ok", SecretHash::sha256_of(b"x")),
                client("old", bad),
            ],
            limiter,
            AuthShared::new(),
        )
        .expect_err("refused");
        assert_eq!(err.field(), Some("issuer.clients[1].secret_hash"));
    }
}
