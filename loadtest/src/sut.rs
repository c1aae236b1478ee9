//! The system under test: an issuer and a verifier on loopback, either
//! started by the harness (with a JWKS proxy in front of the issuer) or
//! already running (`--issuer`/`--verifier`), and what the harness may do
//! to them (rewrite the config, SIGHUP, rotate keys, cut the JWKS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use keyshift_core::config::DEFAULT_UNKNOWN_KID_COOLDOWN;
use keyshift_core::{Config, Phase};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::cli::Control;
use crate::phase::{self, Role};
use crate::proxy::{self, ProxyControl};
use crate::services::{self, Pid, Process};
use crate::token::Credentials;

/// How the harness reaches the services (`summary.json`'s `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Started by the harness.
    Managed,
    /// Running elsewhere; phases switched through their config and SIGHUP.
    ExternalControlled,
    /// Running elsewhere; only their current phase measured.
    ExternalObserved,
}

/// Where the phase is written.
#[derive(Debug)]
enum ConfigFile {
    /// The harness's own config in its work folder.
    Harness {
        work: PathBuf,
        issuer_listen: String,
        jwks_url: String,
        clients: Vec<Credentials>,
    },
    /// An operator's config; the original text is restored at the end.
    External { path: PathBuf, original: String },
    /// No control.
    None,
}

/// The services.
#[derive(Debug)]
pub struct Sut {
    /// Mode.
    pub mode: Mode,
    /// Issuer address.
    pub issuer: SocketAddr,
    /// Verifier address.
    pub verifier: SocketAddr,
    /// Issuer pid, when the harness may signal it.
    pub issuer_pid: Option<Pid>,
    /// Verifier pid, when the harness may signal it.
    pub verifier_pid: Option<Pid>,
    /// The JWKS proxy the verifier fetches through (managed only).
    pub proxy: Option<Arc<ProxyControl>>,
    /// The binary for `keys rotate`, when rotation is possible.
    pub keyshift: Option<PathBuf>,
    /// The config file path, when the harness controls the phase.
    pub config_path: Option<PathBuf>,
    /// The verifier's `unknown_kid_cooldown` (read from the config, or the default).
    pub unknown_kid_cooldown: Duration,
    /// The issuer's `key_prepublish`, when known.
    pub key_prepublish: Option<Duration>,
    /// Said once in the report.
    pub notes: Vec<String>,
    config: ConfigFile,
    modified: AtomicBool,
    // Last: the processes stop after everything else is dropped.
    _processes: Vec<Process>,
}

impl Sut {
    /// Starts issuer, proxy and verifier in `work`, in phase `start`.
    pub async fn managed(
        keyshift: &Path,
        work: &Path,
        start: Phase,
        clients: Vec<Credentials>,
    ) -> anyhow::Result<Sut> {
        std::fs::write(
            work.join("hs256.secret"),
            "loadtest-shared-secret-0123456789abcdef\n",
        )
        .context("writing hs256.secret")?;
        // Issuer first: its port goes into the verifier's JWKS URL, through the proxy.
        let config = services::write_config(work, start, "127.0.0.1:0", None, &clients)?;
        let issuer = Process::start(keyshift, "issuer", &config, &work.join("issuer.log"))?;
        let control = Arc::new(ProxyControl::default());
        let proxy_addr = proxy::start(issuer.addr, control.clone()).await?;
        let jwks_url = format!("http://{proxy_addr}/.well-known/jwks.json");
        let issuer_listen = issuer.addr.to_string();
        let config =
            services::write_config(work, start, &issuer_listen, Some(&jwks_url), &clients)?;
        let verifier = Process::start(keyshift, "verifier", &config, &work.join("verifier.log"))?;
        Ok(Sut {
            mode: Mode::Managed,
            issuer: issuer.addr,
            verifier: verifier.addr,
            issuer_pid: Some(issuer.pid),
            verifier_pid: Some(verifier.pid),
            proxy: Some(control),
            keyshift: Some(keyshift.to_owned()),
            config_path: Some(config),
            unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
            key_prepublish: Some(Duration::from_secs(2)),
            notes: vec![format!(
                "JWKS fetched through the harness's proxy at {proxy_addr}"
            )],
            config: ConfigFile::Harness {
                work: work.to_owned(),
                issuer_listen,
                jwks_url,
                clients,
            },
            modified: AtomicBool::new(false),
            _processes: vec![verifier, issuer],
        })
    }

    /// Attaches to running services; with `control`, reads their config
    /// and checks the pids name a `keyshift issuer` and a `keyshift verifier`.
    pub fn external(
        issuer: SocketAddr,
        verifier: SocketAddr,
        control: Option<&Control>,
    ) -> anyhow::Result<Sut> {
        let mut notes = vec![
            "external services: every /verify outcome during a phase is attributed to the harness, so nothing else should use this verifier during the run".to_owned(),
            "JWKS outage skipped: the verifier's jwks_url does not point at the harness's proxy".to_owned(),
        ];
        let Some(c) = control else {
            notes.push("phase not switched (no --config/--issuer-pid/--verifier-pid): measuring the phase the services are in".to_owned());
            notes.push("key rotation skipped: needs --config, the pids and --keyshift".to_owned());
            notes.push(format!(
                "JWKS fetch bound assumes the default unknown_kid_cooldown ({} s); give --config to read it",
                DEFAULT_UNKNOWN_KID_COOLDOWN.as_secs()
            ));
            return Ok(Sut {
                mode: Mode::ExternalObserved,
                issuer,
                verifier,
                issuer_pid: None,
                verifier_pid: None,
                proxy: None,
                keyshift: None,
                config_path: None,
                unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
                key_prepublish: None,
                notes,
                config: ConfigFile::None,
                modified: AtomicBool::new(false),
                _processes: Vec::new(),
            });
        };
        let issuer_pid = Pid::external(c.issuer_pid, "issuer")?;
        let verifier_pid = Pid::external(c.verifier_pid, "verifier")?;
        let original = std::fs::read_to_string(&c.config)
            .with_context(|| format!("--config {}", c.config.display()))?;
        let parsed =
            Config::load(&c.config).with_context(|| format!("--config {}", c.config.display()))?;
        let cooldown = parsed
            .verifier
            .as_ref()
            .map(|v| v.unknown_kid_cooldown)
            .unwrap_or(DEFAULT_UNKNOWN_KID_COOLDOWN);
        let prepublish = parsed.issuer.as_ref().map(|i| i.key_prepublish);
        for (name, listen, addr) in [
            ("issuer", parsed.issuer.as_ref().map(|i| i.listen), issuer),
            (
                "verifier",
                parsed.verifier.as_ref().map(|v| v.listen),
                verifier,
            ),
        ] {
            match listen {
                None => bail!("--config {}: no [{name}] section", c.config.display()),
                Some(l) if l.port() != 0 && l != addr => notes.push(format!(
                    "{name}.listen in the config is {l}, the harness targets {addr}"
                )),
                Some(_) => {}
            }
        }
        if c.keyshift.is_none() {
            notes.push("key rotation skipped: give --keyshift to run `keys rotate`".to_owned());
        }
        Ok(Sut {
            mode: Mode::ExternalControlled,
            issuer,
            verifier,
            issuer_pid: Some(issuer_pid),
            verifier_pid: Some(verifier_pid),
            proxy: None,
            keyshift: c.keyshift.clone(),
            config_path: Some(c.config.clone()),
            unknown_kid_cooldown: cooldown,
            key_prepublish: prepublish,
            notes,
            config: ConfigFile::External {
                path: c.config.clone(),
                original,
            },
            modified: AtomicBool::new(false),
            _processes: Vec::new(),
        })
    }

    /// Whether the harness can switch phases.
    pub fn controls_phase(&self) -> bool {
        !matches!(self.config, ConfigFile::None)
    }

    /// Writes `phase` into the config (the services reload on [`Sut::hup`]).
    pub fn write_phase(&self, phase: Phase) -> anyhow::Result<()> {
        match &self.config {
            ConfigFile::Harness {
                work,
                issuer_listen,
                jwks_url,
                clients,
            } => {
                services::write_config(work, phase, issuer_listen, Some(jwks_url), clients)?;
            }
            ConfigFile::External { path, .. } => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let edited = phase::set_phase_line(&text, phase)?;
                let base = path.parent().unwrap_or(Path::new("."));
                Config::from_toml_str(&edited, base).with_context(|| {
                    format!("{} with phase {phase} would not be valid", path.display())
                })?;
                write_keeping_permissions(path, &edited)?;
                self.modified.store(true, Ordering::Relaxed);
            }
            ConfigFile::None => bail!("the harness does not control the services' phase"),
        }
        Ok(())
    }

    /// SIGHUP to one service.
    pub fn hup(&self, role: Role) -> anyhow::Result<()> {
        let pid = match role {
            Role::Issuer => self.issuer_pid,
            Role::Verifier => self.verifier_pid,
        };
        pid.with_context(|| format!("no pid for the {role:?}"))?
            .signal(Signal::SIGHUP)
    }

    /// The address of one service.
    pub fn addr(&self, role: Role) -> SocketAddr {
        match role {
            Role::Issuer => self.issuer,
            Role::Verifier => self.verifier,
        }
    }

    /// SIGHUP to issuer and verifier.
    pub fn hup_both(&self) -> anyhow::Result<()> {
        for pid in [self.issuer_pid, self.verifier_pid].into_iter().flatten() {
            pid.signal(Signal::SIGHUP)?;
        }
        Ok(())
    }

    /// Verifier resident memory, when its pid is known.
    pub fn verifier_rss_kib(&self) -> Option<u64> {
        self.verifier_pid.and_then(Pid::rss_kib)
    }
}

impl Drop for Sut {
    /// Puts an operator's config back as it was and reloads the services.
    fn drop(&mut self) {
        if let ConfigFile::External { path, original } = &self.config {
            if self.modified.load(Ordering::Relaxed) {
                match write_keeping_permissions(path, original) {
                    Ok(()) => {
                        let _ = self.hup_both();
                        println!("restored {} and sent SIGHUP", path.display());
                    }
                    Err(e) => eprintln!("could not restore {}: {e:#}", path.display()),
                }
            }
        }
    }
}

/// Replaces `path` atomically (temp file, rename) with its permissions kept.
fn write_keeping_permissions(path: &Path, text: &str) -> anyhow::Result<()> {
    let perms = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".keyshift-loadtest.tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, perms).with_context(|| format!("chmod {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
