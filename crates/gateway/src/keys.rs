//! The issuer's active signing key, read from its key directory and
//! followed across rotations. Read only: the gateway never generates,
//! promotes or retires a key (only the issuer and `keyshift keys` write
//! there), so it reloads when `manifest.json` changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use keyshift_issuer::keystore::{KeyStore, KeyStoreError, MANIFEST};
use keyshift_issuer::mint::Signer;

/// How often the manifest is checked for a rotation: well inside the
/// issuer's pre-publish time (default 15 m), so the gateway signs with the
/// new key within seconds of the issuer.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Why the key directory gave no signing key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The directory or a key in it could not be read.
    #[error("gateway.key_dir: {0}")]
    Store(#[from] KeyStoreError),
    /// The manifest lists no active key.
    #[error("gateway.key_dir: {0} has no active key; start the issuer in an RS256 phase or run `keyshift keys rotate --now`")]
    NoActiveKey(PathBuf),
}

/// The signer of the issuer's active key, swapped on rotation.
#[derive(Debug)]
pub struct ActiveKey {
    store: KeyStore,
    signer: ArcSwapOption<Signer>,
    /// The manifest bytes the signer was loaded from.
    seen: Mutex<Vec<u8>>,
}

impl ActiveKey {
    /// Loads the active key of `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ActiveKey, KeysError> {
        let keys = ActiveKey {
            store: KeyStore::new(dir),
            signer: ArcSwapOption::empty(),
            seen: Mutex::new(Vec::new()),
        };
        keys.reload()?;
        Ok(keys)
    }

    /// The current signer (a lock-free read).
    pub fn signer(&self) -> Option<Arc<Signer>> {
        self.signer.load_full()
    }

    /// Reloads if the manifest changed; returns whether the key did.
    pub fn reload(&self) -> Result<bool, KeysError> {
        let path = self.store.dir().join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(|source| KeyStoreError::Io {
            path: path.clone(),
            source,
        })?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == bytes && self.signer.load().is_some() {
            return Ok(false);
        }
        let set = self.store.load()?;
        let active = set
            .active()
            .ok_or_else(|| KeysError::NoActiveKey(self.store.dir().to_owned()))?;
        let before = self.signer.load().as_ref().map(|s| s.kid().to_owned());
        let changed = before.as_deref() != Some(active.kid.as_str());
        if changed {
            tracing::info!(kid = %active.kid, previous = ?before, "gateway signs with the issuer's active key");
        }
        self.signer.store(Some(Arc::new(Signer::rs256(active))));
        *seen = bytes;
        Ok(changed)
    }

    /// Checks the manifest every [`RELOAD_EVERY`]; a failed load keeps the
    /// running key (a rotation half written is seen complete next time).
    pub async fn run_reloader(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.reload() {
                tracing::warn!(error = %e, "key directory reload failed; keeping the running key");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promotion_at_the_issuer_is_followed_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::new(dir.path());
        assert!(matches!(
            ActiveKey::open(dir.path()),
            Err(KeysError::Store(_))
        ));
        store.generate_next(1_000, 2048).expect("first key: active");
        let keys = ActiveKey::open(dir.path()).expect("keys");
        let first = keys.signer().expect("signer").kid().to_owned();
        assert!(!keys.reload().expect("reload"), "unchanged manifest");
        let listing = |d: &std::path::Path| {
            let mut names: Vec<_> = std::fs::read_dir(d)
                .expect("dir")
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            names
        };
        let before = listing(dir.path());
        let policy = keyshift_issuer::rotation::RotationPolicy {
            prepublish: Duration::from_secs(900),
            token_ttl: Duration::from_secs(900),
            rotate_every: None,
        };
        store
            .rotate(1_000, &policy, 2048, true)
            .expect("rotate now");
        assert_ne!(listing(dir.path()), before, "the issuer wrote");
        let after_issuer = listing(dir.path());
        assert!(keys.reload().expect("reload"), "new active key");
        assert_ne!(keys.signer().expect("signer").kid(), first);
        assert_eq!(
            listing(dir.path()),
            after_issuer,
            "the gateway wrote nothing"
        );
    }
}
