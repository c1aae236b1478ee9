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

//!
//! Layout: [`manifest`] is the model and its state transitions, this module
//! the store (locking, reading, writing, parsing keys), `ops` the locked
//! operations the issuer and `keyshift keys` run.

pub mod manifest;
mod ops;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use keyshift_core::fs::{write_atomic, PathError};
use keyshift_core::jwk::{RsaPublicJwk, MIN_RSA_BITS};

pub use manifest::{KeyEntry, KeyState, Manifest, MANIFEST};

const LOCK: &str = "keys.lock";
/// The issuer's record of the HS256 tokens it minted (see [`crate::ledger`]),
/// kept beside the manifest so that a restart keeps it.
pub const LEDGER: &str = "hs256-ledger.json";
const PEM_TAG: &str = "PRIVATE KEY";

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
        #[source]
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
    /// The record of minted HS256 tokens ([`LEDGER`]) does not parse.
    #[error("{path}: damaged record of HS256 tokens: {reason}")]
    DamagedRecord {
        /// The file.
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
    /// The key directory does not exist. Nothing was created: a mistyped
    /// `key_dir` must not become a fresh key directory.
    #[error(
        "{dir} does not exist: check issuer.key_dir (a typo?); only for a deliberately new key directory, `keyshift keys generate` creates one (tokens signed by the keys of any other directory would not verify)"
    )]
    NoDirectory {
        /// The key directory.
        dir: PathBuf,
    },
    /// The key directory exists but holds neither a manifest nor a key file.
    #[error(
        "{dir} holds no key: check issuer.key_dir (a typo?); only for a deliberately new key directory, `keyshift keys generate` creates the first key"
    )]
    Empty {
        /// The key directory.
        dir: PathBuf,
    },
    /// The key directory's parent does not exist; keyshift creates the last
    /// folder of a path only.
    #[error(
        "cannot create {dir}: its parent {} does not exist (keyshift creates only the last folder of issuer.key_dir; check the path, or create the parent)",
        dir.parent().unwrap_or(dir).display()
    )]
    NoParent {
        /// The key directory.
        dir: PathBuf,
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
    #[error("key generation failed")]
    Crypto(#[source] aws_lc_rs::error::Unspecified),
    /// The manifest could not be serialised.
    #[error("encoding the manifest failed")]
    Encode(#[source] serde_json::Error),
}

impl From<PathError> for KeyStoreError {
    fn from(e: PathError) -> KeyStoreError {
        KeyStoreError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
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

/// What [`KeyStore::maintain`] does with a key directory that has no key yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfEmpty {
    /// Creates the folder (its last component only) and a first, active key:
    /// a first start in a phase that signs HS256, where no RS256 token exists
    /// that a new key could orphan.
    CreateFirstKey,
    /// Refuses with [`KeyStoreError::NoDirectory`] or [`KeyStoreError::Empty`],
    /// creating nothing: a phase that signs RS256, where a new key would orphan
    /// every token signed by the keys of the directory that was meant.
    Refuse,
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
    /// Whether this call created the key directory.
    pub created_dir: bool,
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

    /// Creates the folder (0700) if it is missing, its last component only:
    /// a path whose parent is missing is more likely a typo than a wish.
    /// Returns whether it created it.
    pub fn create_dir(&self) -> Result<bool, KeyStoreError> {
        if self.dir.is_dir() {
            return Ok(false);
        }
        if self
            .dir
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
        {
            return Err(KeyStoreError::NoParent {
                dir: self.dir.clone(),
            });
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.dir.is_dir() => {
                Ok(false)
            }
            Err(e) => Err(io_err(&self.dir)(e)),
        }
    }

    /// Refuses, creating nothing, a folder that does not exist or holds no
    /// key (neither a manifest nor a key file).
    pub fn require_keys(&self) -> Result<(), KeyStoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyStoreError::NoDirectory {
                    dir: self.dir.clone(),
                })
            }
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let has_key = entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            name == MANIFEST || e.path().extension().is_some_and(|x| x == "pem")
        });
        if has_key {
            Ok(())
        } else {
            Err(KeyStoreError::Empty {
                dir: self.dir.clone(),
            })
        }
    }

    /// Takes the exclusive lock of the folder, which must exist (creating
    /// `keys.lock` in it if missing).
    pub(super) fn lock(&self) -> Result<File, KeyStoreError> {
        if !self.dir.is_dir() {
            return Err(KeyStoreError::NoDirectory {
                dir: self.dir.clone(),
            });
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

    pub(super) fn read_manifest(&self) -> Result<Option<Manifest>, KeyStoreError> {
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

    pub(super) fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyStoreError> {
        let mut text = serde_json::to_string_pretty(manifest).map_err(KeyStoreError::Encode)?;
        text.push('\n');
        write_atomic(&self.dir, MANIFEST, text.as_bytes(), 0o644)?;
        Ok(())
    }

    pub(super) fn read_key(&self, entry: &KeyEntry) -> Result<SigningKey, KeyStoreError> {
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

    pub(super) fn load_with(&self, manifest: Manifest) -> Result<KeySet, KeyStoreError> {
        let mut keys = HashMap::new();
        for entry in manifest.keys.iter().filter(|k| k.state.is_published()) {
            keys.insert(entry.kid.clone(), Arc::new(self.read_key(entry)?));
        }
        let expected: Vec<String> = manifest
            .keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(KeyEntry::file_name)
            .chain([MANIFEST.to_owned(), LOCK.to_owned(), LEDGER.to_owned()])
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
            created_dir: false,
        })
    }

    /// Loads and checks the key directory; fails if it has no manifest.
    pub fn load(&self) -> Result<KeySet, KeyStoreError> {
        self.require_keys()?;
        let manifest = self.read_manifest()?.ok_or_else(|| KeyStoreError::Empty {
            dir: self.dir.clone(),
        })?;
        self.load_with(manifest)
    }

    /// Deletes the private key files of retired keys: they sign nothing and
    /// verify nothing any more, so keeping them only adds risk.
    pub(super) fn delete_retired_files(&self, manifest: &Manifest) -> Result<(), KeyStoreError> {
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
    pub(super) fn generate(&self, bits: u32, now: u64) -> Result<KeyEntry, KeyStoreError> {
        let size = key_size(bits)?;
        let pair = RsaKeyPair::generate(size).map_err(KeyStoreError::Crypto)?;
        let der = pair.as_der().map_err(KeyStoreError::Crypto)?;
        let jwk = public_jwk(&pair);
        let pem_text = pem::encode(&pem::Pem::new(PEM_TAG, der.as_ref().to_vec()));
        let entry = KeyEntry::new_next(jwk.kid, bits, now);
        write_atomic(&self.dir, &entry.file_name(), pem_text.as_bytes(), 0o600)?;
        Ok(entry)
    }
}

/// The key size of `bits`, or the refusal of an unsupported one.
fn key_size(bits: u32) -> Result<KeySize, KeyStoreError> {
    match bits {
        2048 => Ok(KeySize::Rsa2048),
        3072 => Ok(KeySize::Rsa3072),
        4096 => Ok(KeySize::Rsa4096),
        other => Err(KeyStoreError::Refused(format!(
            "unsupported key size {other} (2048, 3072 or 4096)"
        ))),
    }
}

#[cfg(test)]
mod tests;
