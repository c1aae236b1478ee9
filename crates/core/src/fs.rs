//! Writing a file so that a crash leaves the old version or the new one,
//! never half of either (keys, manifests, generated configs).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An I/O failure on a named path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathError {
    /// The file or folder.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl PathError {
    /// A mapper for `map_err` that names `path`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> PathError + '_ {
        move |source| PathError {
            path: path.to_owned(),
            source,
        }
    }
}

/// Writes `name` in `dir` atomically: a temp file with `mode`, fsync, rename
/// over the target, fsync of the folder. On failure the temp file is removed
/// and the target is untouched.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), PathError> {
    let tmp = dir.join(temp_name(name));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(PathError::at(&tmp))?;
        file.write_all(bytes).map_err(PathError::at(&tmp))?;
        file.sync_all().map_err(PathError::at(&tmp))?;
        fs::rename(&tmp, &target).map_err(PathError::at(&target))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(PathError::at(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `.NAME.tmp-HEX` with 16 hex digits unique to this process and write.
fn temp_name(name: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let unique = (u64::from(std::process::id()) << 40) ^ (seq << 20) ^ nanos;
    format!(".{name}.tmp-{unique:016x}")
}

/// Whether `name` is a temp file of [`write_atomic`], left by a crash.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, hex)| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "k.pem", b"one", 0o600).expect("write");
        write_atomic(dir.path(), "k.pem", b"two", 0o600).expect("rewrite");
        let path = dir.path().join("k.pem");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["k.pem"]);
        assert!(is_temp_name(&temp_name("k.pem")));
        assert!(!is_temp_name("k.pem"));
    }

    #[test]
    fn a_failed_write_names_the_path_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "m.json", b"old", 0o644).expect("write");
        let missing = dir.path().join("nope");
        let err = write_atomic(&missing, "m.json", b"new", 0o644).expect_err("no folder");
        assert!(err.path.starts_with(&missing), "{err}");
        assert_eq!(fs::read(dir.path().join("m.json")).expect("read"), b"old");
    }
}
