//! The issuer's record of the HS256 tokens it minted: when it last minted
//! one and until when the latest may be valid. Verifiers ask for it (the
//! issuer's `GET /migration`) before they stop accepting HS256, since only
//! the issuer knows the tokens they have not seen yet.
//!
//! It lives in the key directory as [`LEDGER`], beside the manifest, so a
//! restart keeps it. It is written *ahead* of minting: before a token whose
//! `exp` passes the recorded `hs256_valid_until_unix`, the record moves to
//! that `exp` plus [`reserve`] (at most a minute), so a crash can never leave
//! a minted token the record does not cover, and a steady HS256 load writes
//! the file about once a minute, not once a token. The request path takes
//! no lock and does no I/O below the recorded bound.
//!
//! `keyshift token` (offline minting) records its tokens in the same file,
//! and the running issuer merges the file back on every key tick: writes
//! are read-max-write, so neither loses the other's later bound.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyshift_core::fs::write_atomic;
use keyshift_core::migration::{IssuerMigration, ISSUER_SERVICE};
use keyshift_core::Phase;
use serde::{Deserialize, Serialize};

use crate::keystore::{KeyStoreError, LEDGER};

const VERSION: u32 = 1;

/// How far past a token's `exp` the record is moved ahead of minting: a
/// minute, or the token lifetime if shorter (so short-lived test setups do
/// not wait a minute for readiness).
pub fn reserve(token_ttl: Duration) -> u64 {
    token_ttl.as_secs().clamp(1, 60)
}

/// The file's contents. Unix seconds; 0 is never written for "none".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerFile {
    /// Format version.
    pub version: u32,
    /// Since when this record has been kept.
    pub tracked_since_unix: u64,
    /// When an HS256 token was last minted.
    pub hs256_last_issued_unix: Option<u64>,
    /// No HS256 token minted is valid after this.
    pub hs256_valid_until_unix: Option<u64>,
}

impl LedgerFile {
    /// The record of HS256 tokens minted at `iat` and valid at most until
    /// `valid_until` (offline, by `keyshift token`), to [`merge_into`] the file.
    pub fn minted(iat: u64, valid_until: u64) -> LedgerFile {
        LedgerFile {
            version: VERSION,
            tracked_since_unix: iat,
            hs256_last_issued_unix: Some(iat),
            hs256_valid_until_unix: Some(valid_until),
        }
    }

    /// The later of both records, field by field.
    fn merge(self, other: LedgerFile) -> LedgerFile {
        LedgerFile {
            version: VERSION,
            tracked_since_unix: match (self.tracked_since_unix, other.tracked_since_unix) {
                (0, t) | (t, 0) => t,
                (a, b) => a.min(b),
            },
            hs256_last_issued_unix: self
                .hs256_last_issued_unix
                .max(other.hs256_last_issued_unix),
            hs256_valid_until_unix: self
                .hs256_valid_until_unix
                .max(other.hs256_valid_until_unix),
        }
    }
}

/// Reads the record in `dir`; `None` if there is none yet.
pub fn read(dir: &Path) -> Result<Option<LedgerFile>, KeyStoreError> {
    let path = dir.join(LEDGER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyStoreError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| KeyStoreError::DamagedRecord {
            path,
            reason: e.to_string(),
        })
}

/// Merges `record` into the file in `dir` (read, later of both, atomic
/// write); returns what the file holds now.
pub fn merge_into(dir: &Path, record: LedgerFile) -> Result<LedgerFile, KeyStoreError> {
    let merged = match read(dir)? {
        Some(on_disk) => on_disk.merge(record),
        None => record.merge(LedgerFile::default()),
    };
    let mut text = serde_json::to_string_pretty(&merged).map_err(KeyStoreError::Encode)?;
    text.push('\n');
    write_atomic(dir, LEDGER, text.as_bytes(), 0o644)?;
    Ok(merged)
}

/// The running issuer's ledger: atomics read by `/migration` and bumped by
/// the token endpoint; the file written ahead of them.
#[derive(Debug)]
pub struct Hs256Ledger {
    dir: std::sync::Mutex<PathBuf>,
    tracked_since: AtomicU64,
    last_issued: AtomicU64,
    valid_until: AtomicU64,
    /// What the file says: no token is minted past it without moving it first.
    recorded: AtomicU64,
    /// When a write last failed (unix seconds), so a full disk costs one
    /// attempt and one log line per [`RETRY_AFTER_FAILURE`], not one per token.
    failed_at: AtomicU64,
    writing: tokio::sync::Mutex<()>,
}

/// How long after a failed write the next is tried.
const RETRY_AFTER_FAILURE: u64 = 10;

impl Hs256Ledger {
    /// Opens the record in `dir` (the key directory, which exists), creating
    /// it at `now` if missing. A record created while the issuer signs RS256
    /// with a shared secret configured cannot know what was minted before
    /// (an earlier version, the legacy system): HS256 tokens are then
    /// assumed valid for one more `token_ttl`.
    pub fn open(
        dir: &Path,
        phase: Phase,
        secret_configured: bool,
        token_ttl: Duration,
        now: u64,
    ) -> Result<Hs256Ledger, KeyStoreError> {
        let file = match read(dir)? {
            Some(file) => file,
            None => {
                let unknown_before =
                    phase.signs() == keyshift_core::Alg::Rs256 && secret_configured;
                let file = LedgerFile {
                    version: VERSION,
                    tracked_since_unix: now,
                    hs256_last_issued_unix: None,
                    hs256_valid_until_unix: unknown_before
                        .then(|| now.saturating_add(token_ttl.as_secs())),
                };
                let file = merge_into(dir, file)?;
                tracing::info!(path = %dir.join(LEDGER).display(), "started the record of HS256 tokens minted");
                file
            }
        };
        let ledger = Hs256Ledger {
            dir: std::sync::Mutex::new(dir.to_owned()),
            tracked_since: AtomicU64::new(file.tracked_since_unix),
            last_issued: AtomicU64::new(0),
            valid_until: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            failed_at: AtomicU64::new(0),
            writing: tokio::sync::Mutex::new(()),
        };
        ledger.absorb(file);
        Ok(ledger)
    }

    /// Takes in what a file says (later values win).
    fn absorb(&self, file: LedgerFile) {
        if let Some(t) = file.hs256_last_issued_unix {
            self.last_issued.fetch_max(t, Ordering::Relaxed);
        }
        if let Some(t) = file.hs256_valid_until_unix {
            self.valid_until.fetch_max(t, Ordering::Relaxed);
            self.recorded.fetch_max(t, Ordering::Relaxed);
        }
    }

    fn dir(&self) -> PathBuf {
        self.dir.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Picks up what `keyshift token` recorded (key tick), and moves the
    /// record along when the key directory changed on reload.
    pub async fn sync(&self, dir: &Path) {
        let moved = {
            let mut current = self.dir.lock().unwrap_or_else(|p| p.into_inner());
            let moved = *current != dir;
            dir.clone_into(&mut current);
            moved
        };
        let dir = dir.to_owned();
        let mine = self.file();
        let result = tokio::task::spawn_blocking(move || {
            if moved {
                merge_into(&dir, mine).map(Some)
            } else {
                read(&dir)
            }
        })
        .await;
        match result {
            Ok(Ok(Some(file))) => self.absorb(file),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the record of HS256 tokens"),
            Err(e) => tracing::warn!(error = %e, "cannot read the record of HS256 tokens"),
        }
    }

    /// Records an HS256 token about to be minted at `iat`, valid until
    /// `exp`; writes the file first when `exp` passes what it says. A write
    /// that fails is logged and the token still issued: refusing tokens for
    /// a full disk would hurt more than a record short by one restart.
    pub async fn note(&self, iat: u64, exp: u64, token_ttl: Duration) {
        self.last_issued.fetch_max(iat, Ordering::Relaxed);
        self.valid_until.fetch_max(exp, Ordering::Relaxed);
        if exp <= self.recorded.load(Ordering::Acquire) {
            return;
        }
        let _writing = self.writing.lock().await;
        if exp <= self.recorded.load(Ordering::Acquire)
            || iat < self.failed_at.load(Ordering::Relaxed) + RETRY_AFTER_FAILURE
        {
            return;
        }
        let mut record = self.file();
        record.hs256_valid_until_unix = Some(exp.saturating_add(reserve(token_ttl)));
        let dir = self.dir();
        match tokio::task::spawn_blocking(move || merge_into(&dir, record)).await {
            Ok(Ok(file)) => self.absorb(file),
            Ok(Err(e)) => self.write_failed(iat, &e),
            Err(e) => self.write_failed(iat, &e),
        }
    }

    fn write_failed(&self, now: u64, e: &dyn std::fmt::Display) {
        self.failed_at.store(now, Ordering::Relaxed);
        tracing::error!(error = %e, "cannot record an HS256 token in the key directory; a restart would forget it (verifiers could leave HS256 too early)");
    }

    /// The record as held in memory.
    pub fn file(&self) -> LedgerFile {
        let some = |v: u64| (v != 0).then_some(v);
        LedgerFile {
            version: VERSION,
            tracked_since_unix: self.tracked_since.load(Ordering::Relaxed),
            hs256_last_issued_unix: some(self.last_issued.load(Ordering::Relaxed)),
            hs256_valid_until_unix: some(self.valid_until.load(Ordering::Relaxed)),
        }
    }

    /// The issuer's `/migration` answer in `phase`.
    pub fn answer(&self, phase: Phase) -> IssuerMigration {
        let file = self.file();
        IssuerMigration {
            service: ISSUER_SERVICE.to_owned(),
            phase,
            signs: phase.signs(),
            hs256_last_issued_unix: file.hs256_last_issued_unix,
            hs256_valid_until_unix: file.hs256_valid_until_unix,
            tracked_since_unix: file.tracked_since_unix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;
    const TTL: Duration = Duration::from_secs(900);

    #[tokio::test]
    async fn tokens_are_recorded_ahead_and_survive_a_restart() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ledger = Hs256Ledger::open(tmp.path(), Phase::Dual, true, TTL, T0).expect("open");
        assert_eq!(ledger.answer(Phase::Dual).hs256_valid_until_unix, None);
        ledger.note(T0 + 10, T0 + 910, TTL).await;
        let on_disk = read(tmp.path()).expect("read").expect("written");
        assert_eq!(
            on_disk.hs256_valid_until_unix,
            Some(T0 + 970),
            "exp + a minute"
        );
        assert_eq!(on_disk.hs256_last_issued_unix, Some(T0 + 10));
        // Below the recorded bound: no write.
        ledger.note(T0 + 20, T0 + 920, TTL).await;
        assert_eq!(read(tmp.path()).expect("read"), Some(on_disk));
        let answer = ledger.answer(Phase::Dual);
        assert_eq!(answer.hs256_last_issued_unix, Some(T0 + 20));
        assert_eq!(answer.hs256_valid_until_unix, Some(T0 + 970));

        // A restart (in transition now) keeps the bound the file holds.
        let again =
            Hs256Ledger::open(tmp.path(), Phase::Transition, true, TTL, T0 + 30).expect("reopen");
        let answer = again.answer(Phase::Transition);
        assert_eq!(answer.hs256_valid_until_unix, Some(T0 + 970));
        assert_eq!(answer.tracked_since_unix, T0);
        assert_eq!(answer.hs256_valid_until(), Some(T0 + 970));
        assert_eq!(
            again.answer(Phase::Dual).hs256_valid_until(),
            Some(u64::MAX)
        );
    }

    #[tokio::test]
    async fn a_record_started_while_signing_rs256_with_a_secret_assumes_one_more_ttl() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ledger = Hs256Ledger::open(tmp.path(), Phase::Transition, true, TTL, T0).expect("open");
        assert_eq!(
            ledger.answer(Phase::Transition).hs256_valid_until_unix,
            Some(T0 + 900)
        );
        let other = tempfile::tempdir().expect("tempdir");
        let clean =
            Hs256Ledger::open(other.path(), Phase::Asymmetric, false, TTL, T0).expect("open");
        assert_eq!(clean.answer(Phase::Asymmetric).hs256_valid_until_unix, None);
    }

    #[tokio::test]
    async fn offline_records_are_merged_not_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ledger = Hs256Ledger::open(tmp.path(), Phase::Dual, true, TTL, T0).expect("open");
        // `keyshift token` minted a token valid later than anything the issuer did.
        merge_into(
            tmp.path(),
            LedgerFile {
                version: VERSION,
                tracked_since_unix: T0,
                hs256_last_issued_unix: Some(T0 + 100),
                hs256_valid_until_unix: Some(T0 + 5_000),
            },
        )
        .expect("offline");
        ledger.sync(tmp.path()).await;
        assert_eq!(
            ledger.answer(Phase::Dual).hs256_valid_until_unix,
            Some(T0 + 5_000)
        );
        // The issuer's next write keeps it.
        ledger.note(T0 + 200, T0 + 5_100, TTL).await;
        let file = read(tmp.path()).expect("read").expect("file");
        assert_eq!(file.hs256_valid_until_unix, Some(T0 + 5_160));
        // A reload to another key directory carries the record over.
        let moved = tmp.path().join("moved");
        std::fs::create_dir(&moved).expect("mkdir");
        ledger.sync(&moved).await;
        let file = read(&moved).expect("read").expect("carried");
        assert_eq!(file.hs256_valid_until_unix, Some(T0 + 5_160));
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_after_a_pause_not_per_token() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ledger = Hs256Ledger::open(tmp.path(), Phase::Dual, true, TTL, T0).expect("open");
        ledger.sync(&tmp.path().join("gone")).await;
        ledger.note(T0, T0 + 900, TTL).await;
        assert_eq!(ledger.failed_at.load(Ordering::Relaxed), T0);
        assert_eq!(
            ledger.answer(Phase::Dual).hs256_valid_until_unix,
            Some(T0 + 900)
        );
        std::fs::create_dir(tmp.path().join("gone")).expect("mkdir");
        ledger.note(T0 + 5, T0 + 905, TTL).await;
        assert_eq!(
            read(&tmp.path().join("gone")).expect("read"),
            None,
            "paused"
        );
        ledger.note(T0 + 10, T0 + 910, TTL).await;
        assert!(read(&tmp.path().join("gone")).expect("read").is_some());
    }
}
