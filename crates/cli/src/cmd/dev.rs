//! `keyshift dev`: issuer and verifier on loopback with a generated config,
//! secret, client credentials and keys in `./.keyshift/`, reused on later runs.
//!
//! Each service runs as a child process of this one (`keyshift issuer`,
//! `keyshift verifier`), exactly as in production, each with its own
//! `/metrics`. SIGHUP to `keyshift dev` is forwarded to both, so editing
//! `phase` in the config and sending SIGHUP walks through the migration.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use keyshift_core::b64;
use keyshift_core::fs::write_atomic;
use keyshift_core::secret::SecretHash;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::{load_config, runtime};
use crate::signals;

/// The client `keyshift dev` creates.
pub const DEV_CLIENT: &str = "dev-client";

/// Flags of `keyshift dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the generated config, secret, credentials and keys live.
    #[arg(long, default_value = ".keyshift")]
    dir: PathBuf,
    /// Phase written into a newly generated config (an existing one is kept).
    #[arg(long, default_value = "dual")]
    phase: keyshift_core::Phase,
    /// Issuer address written into a newly generated config (an existing one is kept).
    #[arg(long, default_value = keyshift_core::config::DEFAULT_ISSUER_LISTEN)]
    issuer_listen: SocketAddr,
    /// Verifier address written into a newly generated config (an existing one is kept).
    #[arg(long, default_value = keyshift_core::config::DEFAULT_VERIFIER_LISTEN)]
    verifier_listen: SocketAddr,
}

/// Generates `.keyshift/` on first run, then runs both services until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config_path = ensure_files(
        &args.dir,
        args.phase,
        args.issuer_listen,
        args.verifier_listen,
    )?;
    let config = load_config(&config_path)?;
    let issuer = config.require_issuer()?.clone();
    let verifier = config.require_verifier()?.clone();
    let exe = std::env::current_exe().context("cannot find the keyshift executable")?;
    runtime()?.block_on(async move {
        let (term, int, mut hup) = signals::install().context("signal handlers")?;
        let mut children: Vec<(&str, Child)> = Vec::new();
        for (name, addr) in [("issuer", issuer.listen), ("verifier", verifier.listen)] {
            let child = Command::new(&exe)
                .arg(name)
                .arg("--config")
                .arg(&config_path)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start keyshift {name}"))?;
            children.push((name, child));
            wait_listening(addr, &mut children).await?;
        }
        print_session(
            &args.dir,
            &config_path,
            &issuer.listen,
            &verifier.listen,
            &children,
        );
        let shutdown = signals::shutdown(term, int);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = hup.recv() => {
                    println!("keyshift dev: forwarding SIGHUP (reload {})", config_path.display());
                    forward(&children, Signal::SIGHUP);
                }
                (name, status) = first_exit(&mut children) => {
                    forward(&children, Signal::SIGTERM);
                    bail!("keyshift {name} exited ({status}); stopping");
                }
            }
        }
        forward(&children, Signal::SIGTERM);
        for (_, child) in &mut children {
            let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        }
        Ok(())
    })
}

fn forward(children: &[(&str, Child)], signal: Signal) {
    for (name, child) in children {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            if let Err(e) = kill(Pid::from_raw(pid), signal) {
                eprintln!("keyshift dev: cannot signal {name}: {e}");
            }
        }
    }
}

async fn first_exit<'a>(children: &mut [(&'a str, Child)]) -> (&'a str, String) {
    let waits = children.iter_mut().map(|(name, child)| {
        let name = *name;
        Box::pin(async move {
            let status = child.wait().await;
            (
                name,
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string()),
            )
        })
    });
    futures_select_all(waits).await
}

/// Resolves with the first of several futures (a tiny `select_all`).
async fn futures_select_all<F, T>(futs: impl Iterator<Item = std::pin::Pin<Box<F>>>) -> T
where
    F: std::future::Future<Output = T> + ?Sized,
{
    let mut futs: Vec<_> = futs.collect();
    std::future::poll_fn(move |cx| {
        for f in &mut futs {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits (at most 20 s) until `addr` accepts connections, or a child died.
async fn wait_listening(addr: SocketAddr, children: &mut [(&str, Child)]) -> anyhow::Result<()> {
    for _ in 0..200 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait().context("child status")? {
                bail!("keyshift {name} exited ({status}) before listening on {addr}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on {addr} after 20s")
}

fn print_session(
    dir: &Path,
    config: &Path,
    issuer: &SocketAddr,
    verifier: &SocketAddr,
    children: &[(&str, Child)],
) {
    let d = dir.display();
    let pids: Vec<String> = children
        .iter()
        .map(|(n, c)| format!("{n} pid {}", c.id().unwrap_or(0)))
        .collect();
    println!(
        r#"
keyshift dev is running ({pids}); config, secret, client credentials and keys are in {d}/

Try it:

  # a token by client credentials (HTTP Basic)
  curl -s -u {DEV_CLIENT}:$(cat {d}/{DEV_CLIENT}.secret) -d grant_type=client_credentials http://{issuer}/oauth/token

  # keep the access token in a variable
  TOKEN=$(curl -s -u {DEV_CLIENT}:$(cat {d}/{DEV_CLIENT}.secret) -d grant_type=client_credentials http://{issuer}/oauth/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

  # check it as nginx auth_request / Traefik ForwardAuth / Envoy ext_authz would
  curl -si -H "Authorization: Bearer $TOKEN" http://{verifier}/verify
  curl -si -H "Authorization: Bearer $TOKEN" "http://{verifier}/verify?scope=admin"   # 403 insufficient_scope

  # how far the migration is, and the verifier's key cache
  curl -s http://{verifier}/migration
  curl -s http://{verifier}/keys

  # the public keys and the discovery document
  curl -s http://{issuer}/.well-known/jwks.json
  curl -s http://{issuer}/.well-known/oauth-authorization-server

  # walk the migration: edit `phase` in {config} (legacy, dual, transition, asymmetric), then
  kill -HUP {pid}

Ctrl-C stops everything.
"#,
        pids = pids.join(", "),
        config = config.display(),
        pid = std::process::id(),
    );
}

/// Creates the dev folder on first run; returns the config path.
fn ensure_files(
    dir: &Path,
    phase: keyshift_core::Phase,
    issuer: SocketAddr,
    verifier: SocketAddr,
) -> anyhow::Result<PathBuf> {
    let config_path = dir.join("keyshift.toml");
    if config_path.exists() {
        return Ok(config_path);
    }
    // The addresses go into URLs (the issuer, the JWKS): a wildcard or port 0
    // would make a config that never works, and it is kept on every rerun.
    for (flag, addr) in [("--issuer-listen", issuer), ("--verifier-listen", verifier)] {
        if !addr.ip().is_loopback() || addr.port() == 0 {
            bail!("{flag}: {addr} is not a loopback address with a fixed port (keyshift dev runs on loopback, e.g. 127.0.0.1:8080)");
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let hs256 = random_b64(32)?;
    let client_secret = random_b64(24)?;
    write_new(dir, "hs256.secret", format!("{hs256}\n").as_bytes(), 0o600)?;
    write_new(
        dir,
        &format!("{DEV_CLIENT}.secret"),
        client_secret.as_bytes(),
        0o600,
    )?;
    let hash = SecretHash::sha256_of(client_secret.as_bytes()).to_config_string();
    // The key directory is made here, deliberately, as `keyshift keys
    // generate` would: the issuer makes none in a phase that signs RS256.
    let keys = keyshift_issuer::keystore::KeyStore::new(dir.join("keys"));
    if keys.require_keys().is_err() {
        let now = keyshift_core::clock::Clock::now_secs(&keyshift_core::clock::SystemClock);
        keys.generate_next(now, keyshift_core::config::DEFAULT_KEY_BITS)
            .context("cannot create the key directory")?;
    }
    // The config is written last, so an interrupted first run starts over.
    write_new(
        dir,
        "keyshift.toml",
        dev_config(phase, &hash, issuer, verifier).as_bytes(),
        0o644,
    )?;
    println!("keyshift dev: generated {}", dir.display());
    Ok(config_path)
}

fn random_b64(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(b64::encode(buf))
}

/// Writes `dir/name` as the key store writes keys: temp file with `mode`,
/// fsync, rename, fsync of the folder; a crash leaves the old file or the
/// new one, never a truncated secret.
fn write_new(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic(dir, name, bytes, mode).context("cannot write")
}

fn dev_config(
    phase: keyshift_core::Phase,
    client_hash: &str,
    issuer: SocketAddr,
    verifier: SocketAddr,
) -> String {
    format!(
        r#"# Generated by `keyshift dev`. Edit `phase` and send SIGHUP to walk the migration:
#   legacy -> dual -> transition -> asymmetric
# Every key is documented in docs/configuration.md.
phase = "{phase}"

[issuer]
listen = "{issuer}"
issuer = "http://{issuer}"           # the iss claim and base of the metadata URLs
audience = "https://api.example.com"       # the aud claim
token_ttl = "15m"
key_dir = "keys"                           # RSA keys + manifest.json (`keyshift keys generate` made it)
hs256_secret_file = "hs256.secret"         # the shared secret of the legacy system

[[issuer.clients]]
id = "{DEV_CLIENT}"
secret_hash = "{client_hash}"  # `keyshift secret hash` of dev-client.secret
scopes = ["read", "write"]

[verifier]
listen = "{verifier}"
issuer = "http://{issuer}"
audience = "https://api.example.com"
jwks_url = "http://{issuer}/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
# accept = ["HS256", "RS256"]              # override of the phase's default
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_in_every_phase() {
        for phase in keyshift_core::Phase::ALL {
            let text = dev_config(
                phase,
                &SecretHash::sha256_of(b"x").to_config_string(),
                "127.0.0.1:8080".parse().expect("addr"),
                "127.0.0.1:8081".parse().expect("addr"),
            );
            let cfg = keyshift_core::Config::from_toml_str(&text, Path::new("/tmp/x"))
                .unwrap_or_else(|e| panic!("{phase}: {e}"));
            assert_eq!(cfg.phase, phase);
        }
    }

    #[test]
    fn wildcard_or_port_0_addresses_are_refused_before_any_file_is_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(".keyshift");
        let good: SocketAddr = "127.0.0.1:18081".parse().expect("addr");
        for bad in ["0.0.0.0:8080", "127.0.0.1:0", "192.0.2.1:8080"] {
            let bad: SocketAddr = bad.parse().expect("addr");
            let err = ensure_files(&dir, keyshift_core::Phase::Dual, bad, good)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("--issuer-listen"), "{err}");
            let err = ensure_files(&dir, keyshift_core::Phase::Dual, good, bad)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("--verifier-listen"), "{err}");
            assert!(!dir.exists(), "nothing written for {bad}");
        }
    }

    #[test]
    fn files_are_generated_once_with_private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(".keyshift");
        let (i, v) = (
            "127.0.0.1:18080".parse().expect("addr"),
            "127.0.0.1:18081".parse().expect("addr"),
        );
        let path = ensure_files(&dir, keyshift_core::Phase::Dual, i, v).expect("generate");
        let secret = fs::read(dir.join("hs256.secret")).expect("secret");
        for name in ["hs256.secret", "dev-client.secret"] {
            let mode = fs::metadata(dir.join(name))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        ensure_files(&dir, keyshift_core::Phase::Legacy, v, i).expect("reuse");
        assert_eq!(fs::read(dir.join("hs256.secret")).expect("secret"), secret);
        let cfg = load_config(&path).expect("valid");
        assert_eq!(cfg.phase, keyshift_core::Phase::Dual);
        assert_eq!(cfg.require_issuer().expect("issuer").listen, i);
        assert_eq!(cfg.require_verifier().expect("verifier").listen, v);
        cfg.require_issuer()
            .expect("issuer")
            .load_secret(cfg.phase)
            .expect("secret loads");
    }
}
