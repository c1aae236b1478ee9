//! The key directory's operations, each one locked read-modify-write: the
//! issuer's [`KeyStore::maintain`] (rotation steps due now) and
//! [`KeyStore::record_served`], and the offline `keyshift keys generate`,
//! `rotate` and `retire`.

use std::fs;
use std::path::PathBuf;

use keyshift_core::fs::is_temp_name;

use super::manifest::is_kid_safe;
use super::{
    io_err, key_size, IfEmpty, KeyEntry, KeySet, KeyState, KeyStore, KeyStoreError, Manifest,
    LEDGER, LOCK,
};
use crate::rotation::{due_steps, retire_date, RotationPolicy, Step};

impl KeyStore {
    /// Applies every rotation step due at `now`, then loads the result.
    /// Returns the key set and the steps applied. A folder with no key yet
    /// gets its first key, or is refused, as `if_empty` says.
    pub fn maintain(
        &self,
        now: u64,
        policy: &RotationPolicy,
        bits: u32,
        if_empty: IfEmpty,
    ) -> Result<(KeySet, Vec<Step>), KeyStoreError> {
        let created_dir = match if_empty {
            IfEmpty::CreateFirstKey => self.create_dir()?,
            IfEmpty::Refuse => {
                self.require_keys()?;
                false
            }
        };
        let _lock = self.lock()?;
        let (mut manifest, adopted) = match self.read_manifest() {
            Ok(m) => (m.unwrap_or_default(), None),
            Err(KeyStoreError::MissingManifest { dir }) => {
                let (manifest, path) = self
                    .interrupted_first_start(now)?
                    .ok_or(KeyStoreError::MissingManifest { dir })?;
                (manifest, Some(path))
            }
            Err(e) => return Err(e),
        };
        let steps = due_steps(&manifest, now, policy);
        for step in &steps {
            self.apply(&mut manifest, step, now, bits)?;
        }
        // The issuer runs with this token_ttl from now on: the active key's
        // tokens may live that long (written only when it grows).
        let ttl = policy.token_ttl.as_secs();
        let ttl_grew = manifest
            .keys
            .iter_mut()
            .find(|k| k.state == KeyState::Active)
            .filter(|k| k.max_token_ttl.is_none_or(|t| t < ttl))
            .map(|k| k.max_token_ttl = Some(ttl))
            .is_some();
        if !steps.is_empty() || ttl_grew || adopted.is_some() {
            self.write_manifest(&manifest)?;
            self.delete_retired_files(&manifest)?;
        }
        let mut set = self.load_with(manifest)?;
        set.adopted = adopted;
        set.created_dir = created_dir;
        Ok((set, steps))
    }

    /// Whether [`KeyStore::maintain`] has work now: the manifest differs
    /// from the one seen last (`last`, its digest, updated here; another
    /// replica or `keyshift keys` changed it), or a rotation step is due at
    /// `now`. Reads the manifest without the lock (every write of it is an
    /// atomic rename, so this sees a whole version) and parses no key: cheap
    /// enough to run every second. A manifest that cannot be read says
    /// `true`, so maintenance reports why.
    pub fn needs_maintenance(
        &self,
        last: &mut Option<[u8; 32]>,
        now: u64,
        policy: &RotationPolicy,
    ) -> bool {
        use sha2::Digest;
        let Ok(bytes) = fs::read(self.manifest_path()) else {
            return true;
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        if last.replace(digest) != Some(digest) {
            return true;
        }
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(manifest) => !due_steps(&manifest, now, policy).is_empty(),
            Err(_) => true,
        }
    }

    /// A first start writes its key file, then the manifest. If it was
    /// interrupted in between, the folder holds exactly one key file named by
    /// its thumbprint (besides the lock and temp files of atomic writes), and
    /// that key has signed nothing: it is what the interrupted start was
    /// making the active key, so it is adopted as such. Any other folder
    /// without a manifest gives `None` (the caller refuses it).
    fn interrupted_first_start(
        &self,
        now: u64,
    ) -> Result<Option<(Manifest, PathBuf)>, KeyStoreError> {
        let mut pems = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == LOCK || name == LEDGER || is_temp_name(&name) {
                continue;
            }
            match name.strip_suffix(".pem") {
                Some(kid) if is_kid_safe(kid) => pems.push(kid.to_owned()),
                _ => return Ok(None),
            }
        }
        let [kid] = pems.as_slice() else {
            return Ok(None);
        };
        let mut entry = KeyEntry::new_next(kid.clone(), 0, now);
        entry.activate(now);
        // Parses it and checks its mode and that its thumbprint is its name.
        let key = self.read_key(&entry)?;
        entry.bits = u32::try_from(key.pair.public_modulus_len() * 8).unwrap_or(u32::MAX);
        let path = self.dir.join(entry.file_name());
        Ok(Some((
            Manifest {
                keys: vec![entry],
                ..Manifest::default()
            },
            path,
        )))
    }

    /// Records on disk that the running issuer now serves a JWKS listing
    /// exactly `served` (see [`Manifest::record_served`]).
    pub fn record_served(&self, served: &[String], now: u64) -> Result<(), KeyStoreError> {
        let _lock = self.lock()?;
        let Some(mut manifest) = self.read_manifest()? else {
            return Ok(());
        };
        if manifest.record_served(served, now) {
            self.write_manifest(&manifest)?;
        }
        Ok(())
    }

    fn apply(
        &self,
        manifest: &mut Manifest,
        step: &Step,
        now: u64,
        bits: u32,
    ) -> Result<(), KeyStoreError> {
        match step {
            Step::CreateInitialActive => {
                let mut entry = self.generate(bits, now)?;
                entry.activate(now);
                manifest.keys.push(entry);
            }
            Step::CreateNext { activate_at } => {
                let mut entry = self.generate(bits, now)?;
                entry.schedule(*activate_at);
                manifest.keys.push(entry);
            }
            Step::Promote { kid, retire_old_at } => {
                if let Some(old) = manifest
                    .keys
                    .iter_mut()
                    .find(|k| k.state == KeyState::Active)
                {
                    old.start_retiring(now, *retire_old_at);
                }
                let next = manifest
                    .key_mut(kid)
                    .ok_or_else(|| KeyStoreError::NoSuchKey(kid.clone()))?;
                next.activate(now);
            }
            Step::Retire { kid } => {
                let key = manifest
                    .key_mut(kid)
                    .ok_or_else(|| KeyStoreError::NoSuchKey(kid.clone()))?;
                key.retire(now);
            }
        }
        Ok(())
    }

    /// `keyshift keys generate`: the first key of an empty folder (active at
    /// once), or else a `next` key that waits for a rotation. The one
    /// command that creates a key directory on purpose (its last folder
    /// only), once the key size is known to be valid.
    pub fn generate_next(&self, now: u64, bits: u32) -> Result<KeyEntry, KeyStoreError> {
        key_size(bits)?;
        if self.dir.is_dir() {
            let manifest = self.read_manifest()?.unwrap_or_default();
            if manifest.keys_in(KeyState::Next).next().is_some() {
                return Err(KeyStoreError::Refused(
                    "a next key already exists; `keyshift keys rotate` promotes it".to_owned(),
                ));
            }
        }
        self.create_dir()?;
        let _lock = self.lock()?;
        let mut manifest = self.read_manifest()?.unwrap_or_default();
        if manifest.keys_in(KeyState::Next).next().is_some() {
            return Err(KeyStoreError::Refused(
                "a next key already exists; `keyshift keys rotate` promotes it".to_owned(),
            ));
        }
        let mut entry = self.generate(bits, now)?;
        if manifest.keys_in(KeyState::Active).next().is_none() {
            entry.activate(now);
        }
        manifest.keys.push(entry.clone());
        self.write_manifest(&manifest)?;
        Ok(entry)
    }

    /// `keyshift keys rotate`: makes sure a `next` key exists and schedules its
    /// promotion as soon as it has been published for `prepublish`. With
    /// `immediately`, promotes now (for a compromised key: verifiers that have
    /// not yet refetched the JWKS will refetch on the new kid). Refused when
    /// there is no active key to replace (an empty folder: the issuer's first
    /// start or `keyshift keys generate` makes one), except `immediately`
    /// with a `next` key waiting, which makes that key active.
    pub fn rotate(
        &self,
        now: u64,
        policy: &RotationPolicy,
        bits: u32,
        immediately: bool,
    ) -> Result<KeyEntry, KeyStoreError> {
        // A missing or empty folder is refused before the lock file is made.
        self.require_keys()?;
        let _lock = self.lock()?;
        let mut manifest = self.read_manifest()?.unwrap_or_default();
        let prepublish = policy.prepublish.as_secs();
        let existing = manifest
            .keys_in(KeyState::Next)
            .next()
            .map(|k| k.kid.clone());
        let has_active = manifest.keys_in(KeyState::Active).next().is_some();
        let can_promote_waiting = immediately && existing.is_some();
        if !(has_active || can_promote_waiting) {
            return Err(KeyStoreError::Refused(format!(
                "{} has no active key to rotate; `keyshift keys list` shows its keys",
                self.dir.display()
            )));
        }
        let kid = match existing {
            Some(kid) => kid,
            None => {
                let entry = self.generate(bits, now)?;
                let kid = entry.kid.clone();
                manifest.keys.push(entry);
                kid
            }
        };
        if immediately {
            let retire_old_at = retire_date(manifest.keys_in(KeyState::Active).next(), now, policy);
            self.apply(
                &mut manifest,
                &Step::Promote {
                    kid: kid.clone(),
                    retire_old_at,
                },
                now,
                bits,
            )?;
        } else {
            let next = manifest
                .key_mut(&kid)
                .ok_or_else(|| KeyStoreError::NoSuchKey(kid.clone()))?;
            next.schedule(next.created_at.saturating_add(prepublish).max(now));
        }
        self.write_manifest(&manifest)?;
        manifest
            .key_mut(&kid)
            .cloned()
            .ok_or(KeyStoreError::NoSuchKey(kid))
    }

    /// `keyshift keys retire KID`: retires a `retiring` or `next` key now. A
    /// retiring key whose tokens may still be valid needs `force`; the active
    /// key is never retired this way (rotate first).
    pub fn retire(&self, kid: &str, now: u64, force: bool) -> Result<KeyEntry, KeyStoreError> {
        self.require_keys()?;
        let _lock = self.lock()?;
        let mut manifest = self
            .read_manifest()?
            .ok_or_else(|| KeyStoreError::NoSuchKey(kid.to_owned()))?;
        let key = manifest
            .key_mut(kid)
            .ok_or_else(|| KeyStoreError::NoSuchKey(kid.to_owned()))?;
        match key.state {
            KeyState::Active => {
                return Err(KeyStoreError::Refused(
                    "this key is active; run `keyshift keys rotate --now` first".to_owned(),
                ))
            }
            KeyState::Retired => {
                return Err(KeyStoreError::Refused("this key is already retired".to_owned()))
            }
            KeyState::Retiring if !force && key.retire_at.is_some_and(|t| t > now) => {
                return Err(KeyStoreError::Refused(format!(
                    "tokens signed by this key may still be valid for {}s; add --force to retire it anyway (they will be rejected)",
                    key.retire_at.unwrap_or(now) - now
                )))
            }
            KeyState::Retiring | KeyState::Next => {}
        }
        key.retire(now);
        let entry = key.clone();
        self.write_manifest(&manifest)?;
        self.delete_retired_files(&manifest)?;
        Ok(entry)
    }
}
