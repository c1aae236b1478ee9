//! Noticing that files changed: a digest of their contents, compared from
//! one look to the next. Contents, not modification times, because a
//! Kubernetes ConfigMap or Secret volume swaps a symlink to a new folder
//! (the path's own metadata never changes) and because a copy may keep the
//! old time. The binary looks every [`WATCH_INTERVAL`]; the files are
//! small (a config, PEM files), so a look costs microseconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How often the services look at the files they watch.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a set of files held at one look: a digest per file, `None` for a
/// file that could not be read (missing in the middle of a swap, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<Option<[u8; 32]>>);

/// Files whose change is noticed by comparing [`Fingerprint`]s.
#[derive(Debug, Clone)]
pub struct Watched {
    files: Vec<PathBuf>,
    last: Fingerprint,
}

impl Watched {
    /// Starts watching `files` as they are now.
    pub fn new(files: Vec<PathBuf>) -> Watched {
        let last = fingerprint(&files);
        Watched { files, last }
    }

    /// The files watched.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Looks again: `true` when any file's contents differ from the last
    /// look (a file that appeared, vanished or changed). A change is
    /// reported once; the caller reloads.
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.files);
        if now == self.last {
            return false;
        }
        self.last = now;
        true
    }

    /// Watches `files` from now on (after a reload named other files),
    /// with their current contents as the baseline.
    pub fn rebase(&mut self, files: Vec<PathBuf>) {
        self.last = fingerprint(&files);
        self.files = files;
    }
}

/// The digests of `files` now.
pub fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    Fingerprint(files.iter().map(|f| digest(f)).collect())
}

fn digest(path: &Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    Some(Sha256::digest(&bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_contents_is_noticed_once_and_a_rewrite_of_the_same_bytes_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("keyshift.toml");
        std::fs::write(&file, "phase = \"dual\"\n").expect("write");
        let mut watched = Watched::new(vec![file.clone()]);
        assert!(!watched.changed(), "nothing changed yet");
        std::fs::write(&file, "phase = \"dual\"\n").expect("rewrite");
        assert!(!watched.changed(), "same bytes: not a change");
        std::fs::write(&file, "phase = \"transition\"\n").expect("change");
        assert!(watched.changed());
        assert!(!watched.changed(), "reported once");
        std::fs::remove_file(&file).expect("remove");
        assert!(watched.changed(), "a vanished file is a change");
    }

    #[test]
    fn a_symlink_swap_like_a_configmap_update_is_noticed() {
        // kubelet's layout: keyshift.toml -> ..data/keyshift.toml,
        // ..data -> ..2026_12_01_a; an update writes a new folder and
        // renames a new ..data symlink over the old one.
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (folder, phase) in [("..v1", "dual"), ("..v2", "transition")] {
            std::fs::create_dir(root.join(folder)).expect("mkdir");
            std::fs::write(
                root.join(folder).join("keyshift.toml"),
                format!("phase = \"{phase}\"\n"),
            )
            .expect("write");
        }
        std::os::unix::fs::symlink("..v1", root.join("..data")).expect("data link");
        std::os::unix::fs::symlink("..data/keyshift.toml", root.join("keyshift.toml"))
            .expect("file link");
        let mut watched = Watched::new(vec![root.join("keyshift.toml")]);
        std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).expect("new link");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
        assert!(watched.changed());
        watched.rebase(vec![root.join("keyshift.toml"), root.join("other")]);
        assert_eq!(watched.files().len(), 2);
        assert!(!watched.changed(), "the rebase is the new baseline");
    }
}
