//! The keyshift processes under test: config file, start, SIGHUP, stop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use keyshift_core::secret::SecretHash;

/// Clients the harness configures; each mints its own tokens.
pub const CLIENTS: usize = 20;

/// The secret of client `i`.
pub fn client_secret(i: usize) -> String {
    format!("loadtest-secret-{i:02}-0123456789")
}

/// The id of client `i`.
pub fn client_id(i: usize) -> String {
    format!("svc-{i:02}")
}

/// Writes the config for `phase`; the verifier section once its JWKS URL is known.
pub fn write_config(
    dir: &Path,
    phase: &str,
    issuer_listen: &str,
    jwks_url: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let mut text = format!(
        r#"# Written by keyshift-loadtest.
phase = "{phase}"

[issuer]
listen = "{issuer_listen}"
issuer = "http://loadtest.keyshift"
audience = "https://api.loadtest"
token_ttl = "15m"
hs256_secret_file = "hs256.secret"
failed_auth_limit = 1000
# Compressed rotation timings, so a rotation fits in a phase: the next key is
# published 2 s before it signs, and verifiers refresh the JWKS every second.
jwks_max_age = "1s"
key_prepublish = "2s"
rotate_every = "off"
"#
    );
    for i in 0..CLIENTS {
        let hash = SecretHash::sha256_of(client_secret(i).as_bytes()).to_config_string();
        text.push_str(&format!(
            "\n[[issuer.clients]]\nid = \"{}\"\nsecret_hash = \"{hash}\"\nscopes = [\"read\", \"write\"]\n",
            client_id(i)
        ));
    }
    if let Some(url) = jwks_url {
        text.push_str(&format!(
            r#"
[verifier]
listen = "127.0.0.1:0"
issuer = "http://loadtest.keyshift"
audience = "https://api.loadtest"
jwks_url = "{url}"
hs256_secret_file = "hs256.secret"
jwks_min_ttl = "1s"
"#
        ));
    }
    let path = dir.join("keyshift.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A running `keyshift issuer|verifier`; stopped on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `keyshift <what> --config <config>` and waits (≤ 30 s) for its listening line.
    pub fn start(
        keyshift: &Path,
        what: &str,
        config: &Path,
        log: &Path,
    ) -> anyhow::Result<Process> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(keyshift)
            .arg(what)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {} {what}", keyshift.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                bail!("keyshift {what} did not start (see {})", log.display());
            }
        };
        let addr: SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                bail!("keyshift {what}: `{addr}` is not an address");
            }
        };
        if let Err(e) = crate::http::ensure_loopback(addr) {
            let _ = child.kill();
            return Err(e.context(format!("keyshift {what} listens off loopback")));
        }
        Ok(Process { child, addr })
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        // 0 or a negative id would signal a whole process group.
        let pid = i32::try_from(self.child.id())
            .ok()
            .filter(|p| *p > 1)
            .context("pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).context("signal")?;
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.signal(nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
