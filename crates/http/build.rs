//! Records the git commit of the build as `KEYSHIFT_GIT_SHA` for `/version`
//! and `keyshift_build_info`. Never fails the build: without git (a source
//! tarball, a container without `.git`) the sha is `unknown`, and a packager
//! may set `KEYSHIFT_GIT_SHA` in the environment instead.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEYSHIFT_GIT_SHA");
    let sha = std::env::var("KEYSHIFT_GIT_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KEYSHIFT_GIT_SHA={sha}");
    // Rebuild when HEAD moves: the HEAD file (a branch switch), the branch's
    // ref (a commit) and packed-refs. Only files that exist are named, since
    // cargo reruns a build script on every build for a missing one.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
