//! The key directory: RSA private keys as PKCS#8 PEM (mode 0600) and a
//! `manifest.json` naming each key's kid, state and timestamps.
//!
//! Every write is atomic (temp file, fsync, rename, fsync of the folder), and
//! every read-modify-write holds an exclusive lock on `keys.lock`, so the
//! running issuer and `keyshift keys …` never lose each other's changes.
//! Anything damaged or unexpected is reported with its path and never
//! overwritten: a folder with key files but no manifest is refused rather
//! than re-initialised, with one exception that needs no guess: exactly the
//! one key file a first start leaves when it is interrupted between writing
//! its key and writing the manifest is adopted as the active key.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use keyshift_core::jwk::{RsaPublicJwk, MIN_RSA_BITS};
use serde::{Deserialize, Serialize};

use crate::rotation::{due_steps, retire_date, RotationPolicy, Step};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
const LOCK: &str = "keys.lock";
const PEM_TAG: &str = "PRIVATE KEY";
const MANIFEST_VERSION: u32 = 1;

/// A key's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing (in the RS256 phases) and published.
    Active,
    /// Published until its last token expired; signs nothing.
    Retiring,
    /// Gone from the JWKS; its private key file is deleted.
    Retired,
}

impl KeyState {
    /// The state's name, also the `state` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    /// Whether keys in this state are listed in the JWKS.
    pub const fn is_published(self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// One key of the manifest. Timestamps are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// RFC 7638 thumbprint; the key file is `<kid>.pem`.
    pub kid: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Modulus size.
    pub bits: u32,
    /// When the key was generated.
    pub created_at: u64,
    /// Since when the running issuer has served it in its JWKS; `None` while it
    /// has not been (generated offline, or the issuer runs in phase `legacy`,
    /// whose JWKS lists no RSA key). A `next` key is promoted no sooner than
    /// `key_prepublish` after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<u64>,
    /// For a `next` key: when it is to become active, if scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<u64>,
    /// When it became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<u64>,
    /// The longest `token_ttl` (seconds) the issuer ran with while this key
    /// was active: its tokens may outlive its signing by that much, even if
    /// a reload has shortened `token_ttl` since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_ttl: Option<u64>,
    /// When it stopped signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_at: Option<u64>,
    /// When it may leave the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
    /// When it left the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl KeyEntry {
    /// A `next` key made at `now`, with nothing scheduled yet.
    pub fn new_next(kid: String, bits: u32, now: u64) -> KeyEntry {
        KeyEntry {
            kid,
            state: KeyState::Next,
            bits,
            created_at: now,
            published_at: None,
            activate_at: None,
            activated_at: None,
            max_token_ttl: None,
            retiring_at: None,
            retire_at: None,
            retired_at: None,
        }
    }

    /// Makes it the signing key from `now`.
    pub fn activate(&mut self, now: u64) {
        self.state = KeyState::Active;
        self.activate_at = None;
        self.activated_at = Some(now);
    }

    fn file_name(&self) -> String {
        format!("{}.pem", self.kid)
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// Every key ever generated here, oldest first.
    pub keys: Vec<KeyEntry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            keys: Vec::new(),
        }
    }
}

impl Manifest {
    /// The keys in `state`, oldest first.
    pub fn keys_in(&self, state: KeyState) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter().filter(move |k| k.state == state)
    }

    fn key_mut(&mut self, kid: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|k| k.kid == kid)
    }

    /// Records that the issuer now serves a JWKS listing exactly the kids in
    /// `served`: a served key without `published_at` gets `now`; a `next` or
    /// `active` key that is not served loses it (a verifier may cache the
    /// JWKS without it, so its pre-publish time starts again when it is
    /// served again). Returns whether anything changed.
    pub fn record_served(&mut self, served: &[String], now: u64) -> bool {
        let mut changed = false;
        for k in &mut self.keys {
            let is_served = served.contains(&k.kid);
            if is_served && k.published_at.is_none() {
                k.published_at = Some(now);
                changed = true;
            } else if !is_served
                && matches!(k.state, KeyState::Next | KeyState::Active)
                && k.published_at.is_some()
            {
                k.published_at = None;
                changed = true;
            }
        }
        changed
    }

    fn check(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("unsupported version {}", self.version));
        }
        for state in [KeyState::Active, KeyState::Next] {
            if self.keys_in(state).count() > 1 {
                return Err(format!("more than one {} key", state.as_str()));
            }
        }
        for (i, k) in self.keys.iter().enumerate() {
            if !is_kid_safe(&k.kid) {
                return Err(format!(
                    "key {i}: kid `{}` is not a thumbprint",
                    k.kid.escape_debug()
                ));
            }
            if self.keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(format!("kid {} appears twice", k.kid));
            }
        }
        Ok(())
    }
}

/// A kid is used as a file name: only base64url characters, bounded length.
fn is_kid_safe(kid: &str) -> bool {
    (20..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why the key directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `manifest.json` does not parse or breaks an invariant.
    #[error("{path}: damaged manifest: {reason}")]
    DamagedManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file is missing, unreadable as PKCS#8 RSA, or does not match its kid.
    #[error("{path}: damaged key file: {reason}")]
    DamagedKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file is readable by group or others.
    #[error("{path}: key file mode is {mode:o}; private keys must be 0600 (chmod 600 {path})")]
    LoosePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Key files exist but `manifest.json` does not (other than the one key
    /// file of an interrupted first start, which is adopted).
    #[error(
        "{dir}: has key files but no {MANIFEST}, so whether each is next, active or retiring is unknown and keyshift will not guess; to recover, restore {MANIFEST} from a backup of this folder, or, if no token signed by these keys must stay valid, move the folder away (mv {dir} {dir}.old) and start the issuer again to create a new key"
    )]
    MissingManifest {
        /// The key directory.
        dir: PathBuf,
    },
    /// No key has this kid.
    #[error("no key with kid `{0}`")]
    NoSuchKey(String),
    /// The operation would break verifiers; the message says why and how to force it.
    #[error("refused: {0}")]
    Refused(String),
    /// The crypto library could not generate or encode a key.
    #[error("key generation failed: {0}")]
    Crypto(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A parsed RSA signing key. Parsed once when the key set is loaded; signing
/// never re-parses it.
pub struct SigningKey {
    /// The kid (RFC 7638 thumbprint).
    pub kid: String,
    /// The key pair.
    pub pair: RsaKeyPair,
    /// Its public JWK.
    pub jwk: RsaPublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn public_jwk(pair: &RsaKeyPair) -> RsaPublicJwk {
    let public = pair.public_key();
    RsaPublicJwk::from_components(
        public.modulus().big_endian_without_leading_zero(),
        public.exponent().big_endian_without_leading_zero(),
    )
}

/// The key directory loaded and checked: the manifest and every unretired key, parsed.
#[derive(Debug)]
pub struct KeySet {
    /// The manifest as read.
    pub manifest: Manifest,
    keys: HashMap<String, Arc<SigningKey>>,
    /// Files in the folder that the manifest does not account for.
    pub foreign_files: Vec<PathBuf>,
    /// The key file adopted as the active key, when a first start had been
    /// interrupted before it wrote the manifest.
    pub adopted: Option<PathBuf>,
}

impl KeySet {
    /// The active key, if any.
    pub fn active(&self) -> Option<Arc<SigningKey>> {
        let entry = self.manifest.keys_in(KeyState::Active).next()?;
        self.keys.get(&entry.kid).cloned()
    }

    /// The public keys to publish, in the order next, active, retiring.
    pub fn published(&self) -> Vec<RsaPublicJwk> {
        [KeyState::Next, KeyState::Active, KeyState::Retiring]
            .into_iter()
            .flat_map(|s| self.manifest.keys_in(s))
            .filter_map(|e| self.keys.get(&e.kid).map(|k| k.jwk.clone()))
            .collect()
    }

    /// How many keys are in `state`.
    pub fn count(&self, state: KeyState) -> usize {
        self.manifest.keys_in(state).count()
    }
}

/// The key directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// A key store in `dir` (nothing is read until asked).
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    /// Takes the exclusive lock of the folder (created 0700 if missing).
    fn lock(&self) -> Result<File, KeyStoreError> {
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io_err(&self.dir))?;
        }
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }

    fn read_manifest(&self) -> Result<Option<Manifest>, KeyStoreError> {
        let path = self.manifest_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let has_keys = match fs::read_dir(&self.dir) {
                    Ok(entries) => entries
                        .filter_map(Result::ok)
                        .any(|e| e.path().extension().is_some_and(|x| x == "pem")),
                    Err(_) => false,
                };
                if has_keys {
                    return Err(KeyStoreError::MissingManifest {
                        dir: self.dir.clone(),
                    });
                }
                return Ok(None);
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let damaged = |reason: String| KeyStoreError::DamagedManifest {
            path: path.clone(),
            reason,
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        manifest.check().map_err(damaged)?;
        Ok(Some(manifest))
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyStoreError> {
        let mut text = serde_json::to_string_pretty(manifest)
            .map_err(|e| KeyStoreError::Crypto(e.to_string()))?;
        text.push('\n');
        atomic_write(&self.dir, MANIFEST, text.as_bytes(), 0o644)
    }

    fn read_key(&self, entry: &KeyEntry) -> Result<SigningKey, KeyStoreError> {
        let path = self.dir.join(entry.file_name());
        let damaged = |reason: &str| KeyStoreError::DamagedKey {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let meta = fs::metadata(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                damaged("missing (the manifest lists it)")
            } else {
                io_err(&path)(e)
            }
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyStoreError::LoosePermissions { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        let block = pem::parse(text.as_bytes()).map_err(|_| damaged("not PEM"))?;
        if block.tag() != PEM_TAG {
            return Err(damaged("not a PKCS#8 `PRIVATE KEY` PEM block"));
        }
        let pair = RsaKeyPair::from_pkcs8(block.contents())
            .map_err(|e| damaged(&format!("not a usable PKCS#8 RSA key ({e})")))?;
        if pair.public_modulus_len() * 8 < MIN_RSA_BITS {
            return Err(damaged("RSA key shorter than 2048 bits"));
        }
        let jwk = public_jwk(&pair);
        if jwk.kid != entry.kid {
            return Err(damaged(
                "its thumbprint does not match the kid the manifest gives it",
            ));
        }
        Ok(SigningKey {
            kid: entry.kid.clone(),
            pair,
            jwk,
        })
    }

    fn load_with(&self, manifest: Manifest) -> Result<KeySet, KeyStoreError> {
        let mut keys = HashMap::new();
        for entry in manifest.keys.iter().filter(|k| k.state.is_published()) {
            keys.insert(entry.kid.clone(), Arc::new(self.read_key(entry)?));
        }
        let expected: Vec<String> = manifest
            .keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(KeyEntry::file_name)
            .chain([MANIFEST.to_owned(), LOCK.to_owned()])
            .collect();
        let mut foreign_files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !expected.contains(&name) {
                foreign_files.push(entry.path());
            }
        }
        foreign_files.sort();
        Ok(KeySet {
            manifest,
            keys,
            foreign_files,
            adopted: None,
        })
    }

    /// Loads and checks the key directory; fails if it has no manifest.
    pub fn load(&self) -> Result<KeySet, KeyStoreError> {
        let manifest = self.read_manifest()?.ok_or_else(|| KeyStoreError::Io {
            path: self.manifest_path(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no key directory here yet (start the issuer or run `keyshift keys generate`)",
            ),
        })?;
        self.load_with(manifest)
    }

    /// Applies every rotation step due at `now` (creating the first key in an
    /// empty folder), then loads the result. Returns the key set and the
    /// steps applied.
    pub fn maintain(
        &self,
        now: u64,
        policy: &RotationPolicy,
        bits: u32,
    ) -> Result<(KeySet, Vec<Step>), KeyStoreError> {
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
        Ok((set, steps))
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
            if name == LOCK || is_temp_name(&name) {
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
                entry.activate_at = Some(*activate_at);
                manifest.keys.push(entry);
            }
            Step::Promote { kid, retire_old_at } => {
                if let Some(old) = manifest
                    .keys
                    .iter_mut()
                    .find(|k| k.state == KeyState::Active)
                {
                    old.state = KeyState::Retiring;
                    old.retiring_at = Some(now);
                    old.retire_at = Some(*retire_old_at);
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
                key.state = KeyState::Retired;
                key.retired_at = Some(now);
            }
        }
        Ok(())
    }

    /// Deletes the private key files of retired keys: they sign nothing and
    /// verify nothing any more, so keeping them only adds risk.
    fn delete_retired_files(&self, manifest: &Manifest) -> Result<(), KeyStoreError> {
        for entry in manifest.keys_in(KeyState::Retired) {
            let path = self.dir.join(entry.file_name());
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }

    /// Generates a key, writes its file atomically (0600), returns its `next` entry.
    fn generate(&self, bits: u32, now: u64) -> Result<KeyEntry, KeyStoreError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => {
                return Err(KeyStoreError::Refused(format!(
                    "unsupported key size {other}"
                )))
            }
        };
        let pair = RsaKeyPair::generate(size).map_err(|e| KeyStoreError::Crypto(e.to_string()))?;
        let der = pair
            .as_der()
            .map_err(|e| KeyStoreError::Crypto(e.to_string()))?;
        let jwk = public_jwk(&pair);
        let pem_text = pem::encode(&pem::Pem::new(PEM_TAG, der.as_ref().to_vec()));
        let entry = KeyEntry::new_next(jwk.kid, bits, now);
        atomic_write(&self.dir, &entry.file_name(), pem_text.as_bytes(), 0o600)?;
        Ok(entry)
    }

    /// `keyshift keys generate`: the first key of an empty folder (active at
    /// once), or else a `next` key that waits for a rotation.
    pub fn generate_next(&self, now: u64, bits: u32) -> Result<KeyEntry, KeyStoreError> {
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
            return Err(KeyStoreError::Refused(
                "there is no active key to rotate; start the issuer (its first start creates one) or run `keyshift keys generate`".to_owned(),
            ));
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
            next.activate_at = Some(next.created_at.saturating_add(prepublish).max(now));
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
        key.state = KeyState::Retired;
        key.retired_at = Some(now);
        let entry = key.clone();
        self.write_manifest(&manifest)?;
        self.delete_retired_files(&manifest)?;
        Ok(entry)
    }
}

/// Whether `name` is a temp file of [`atomic_write`] (`.NAME.tmp-HEX`).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, hex)| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Writes `name` in `dir` atomically: a temp file with `mode`, fsync, rename
/// over the target, fsync of the folder. A crash leaves the old file or the
/// new one, never half of either.
pub fn atomic_write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), KeyStoreError> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| KeyStoreError::Crypto(e.to_string()))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(nonce)));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &target).map_err(io_err(&target))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
