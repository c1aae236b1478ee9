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
use crate::services::{self, Pid, Process, Settings};

/// The shared HS256 secret of the harness's config (`hs256.secret`), which
/// the legacy issuer ([`crate::legacy`]) signs with too.
pub const SHARED_SECRET: &str = "loadtest-shared-secret-0123456789abcdef";

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

impl Mode {
    /// The name in `summary.json` and the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Managed => "managed",
            Mode::ExternalControlled => "external_controlled",
            Mode::ExternalObserved => "external_observed",
        }
    }
}

/// Where the phase is written.
#[derive(Debug)]
enum ConfigFile {
    /// The harness's own config in its work folder.
    Harness {
        work: PathBuf,
        issuer_listen: String,
        jwks_url: String,
        settings: Settings,
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
    /// Starts issuer, proxy and verifier in `work`, in phase `start`, from
    /// a config with `settings`.
    pub async fn managed(
        keyshift: &Path,
        work: &Path,
        start: Phase,
        settings: Settings,
    ) -> anyhow::Result<Sut> {
        std::fs::write(work.join("hs256.secret"), format!("{SHARED_SECRET}\n"))
            .context("writing hs256.secret")?;
        // Issuer first: its port goes into the verifier's JWKS URL, through the proxy.
        let config = services::write_config(work, start, "127.0.0.1:0", None, &settings)?;
        if settings.gateway_upstream.is_some() {
            // The gateway signs with the issuer's active key from the first
            // phase on, legacy included (where the issuer makes none).
            services::generate_keys(keyshift, &config)?;
        }
        let issuer = Process::start(keyshift, "issuer", &config, &work.join("issuer.log"))?;
        let control = Arc::new(ProxyControl::default());
        let proxy_addr = proxy::start(issuer.addr, control.clone()).await?;
        let jwks_url = format!("http://{proxy_addr}/.well-known/jwks.json");
        let issuer_listen = issuer.addr.to_string();
        let config =
            services::write_config(work, start, &issuer_listen, Some(&jwks_url), &settings)?;
        // The timings come from the file the services run from, as in external mode.
        let timings = Timings::of(
            &Config::load(&config)
                .with_context(|| format!("the harness's {}", config.display()))?,
        );
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
            unknown_kid_cooldown: timings.unknown_kid_cooldown,
            key_prepublish: timings.key_prepublish,
            notes: vec![format!(
                "JWKS fetched through the harness's proxy at {proxy_addr}"
            )],
            config: ConfigFile::Harness {
                work: work.to_owned(),
                issuer_listen,
                jwks_url,
                settings,
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
        let issuer_pid = c.issuer_pid.ensure_role("issuer")?;
        let verifier_pid = c.verifier_pid.ensure_role("verifier")?;
        let original = std::fs::read_to_string(&c.config)
            .with_context(|| format!("--config {}", c.config.display()))?;
        let parsed = Config::from_toml_str(&original, &config_base_dir(&c.config))
            .with_context(|| format!("--config {}", c.config.display()))?;
        let timings = Timings::of(&parsed);
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
            unknown_kid_cooldown: timings.unknown_kid_cooldown,
            key_prepublish: timings.key_prepublish,
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
            ConfigFile::Harness { .. } => self.write_harness_config(phase, None)?,
            ConfigFile::External { path, .. } => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let edited = phase::set_phase_line(&text, phase)?;
                Config::from_toml_str(&edited, &config_base_dir(path)).with_context(|| {
                    format!("{} with phase {phase} would not be valid", path.display())
                })?;
                services::replace_file(path, &edited, true)?;
                self.modified.store(true, Ordering::Relaxed);
            }
            ConfigFile::None => bail!("the harness does not control the services' phase"),
        }
        Ok(())
    }

    /// Writes the harness's config for `phase` with the issuer's
    /// `token_ttl` set to `ttl` (the services reload on [`Sut::hup`]):
    /// the soak mints tokens that expire at once this way. Managed only.
    pub fn write_token_ttl(&self, phase: Phase, ttl: Duration) -> anyhow::Result<()> {
        self.write_harness_config(phase, Some(ttl))
    }

    fn write_harness_config(&self, phase: Phase, ttl: Option<Duration>) -> anyhow::Result<()> {
        let ConfigFile::Harness {
            work,
            issuer_listen,
            jwks_url,
            settings,
        } = &self.config
        else {
            bail!("only the harness's own config can be rewritten whole");
        };
        let settings = match ttl {
            Some(token_ttl) => &Settings {
                token_ttl,
                ..settings.clone()
            },
            None => settings,
        };
        services::write_config(work, phase, issuer_listen, Some(jwks_url), settings)?;
        Ok(())
    }

    /// The issuer's `token_ttl` in the harness's config (managed only).
    pub fn token_ttl(&self) -> Option<Duration> {
        match &self.config {
            ConfigFile::Harness { settings, .. } => Some(settings.token_ttl),
            _ => None,
        }
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
                match services::replace_file(path, original, true) {
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

/// The services' timings the harness plans with, from their config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timings {
    /// The verifier's `unknown_kid_cooldown` (the default without a `[verifier]`).
    unknown_kid_cooldown: Duration,
    /// The issuer's `key_prepublish`, with an `[issuer]`.
    key_prepublish: Option<Duration>,
}

impl Timings {
    fn of(config: &Config) -> Timings {
        Timings {
            unknown_kid_cooldown: config
                .verifier
                .as_ref()
                .map(|v| v.unknown_kid_cooldown)
                .unwrap_or(DEFAULT_UNKNOWN_KID_COOLDOWN),
            key_prepublish: config.issuer.as_ref().map(|i| i.key_prepublish),
        }
    }
}

/// The folder relative paths in the config at `path` resolve against,
/// computed as `Config::load` does (its parent, `.` if none, made absolute).
fn config_base_dir(path: &Path) -> PathBuf {
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::path::absolute(&base).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::builtin_clients;

    #[test]
    fn the_base_dir_is_the_one_config_load_uses() {
        let dir = crate::testutil::scratch_dir("sut-base");
        let path = services::write_config(
            &dir,
            Phase::Dual,
            "127.0.0.1:0",
            Some("http://127.0.0.1:1/.well-known/jwks.json"),
            &Settings::load_test(builtin_clients()),
        )
        .expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let parsed = Config::from_toml_str(&text, &config_base_dir(&path)).expect("parse");
        let loaded = Config::load(&path).expect("load");
        let key_dir = |c: &Config| c.issuer.as_ref().map(|i| i.key_dir.clone());
        assert_eq!(key_dir(&parsed), key_dir(&loaded));
        assert_eq!(
            key_dir(&parsed),
            Some(std::path::absolute(dir.join("keys")).expect("absolute"))
        );
        assert_eq!(
            config_base_dir(Path::new("keyshift.toml")),
            std::path::absolute(".").expect("cwd")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timings_come_from_the_config_the_harness_writes() {
        let dir = crate::testutil::scratch_dir("sut-timings");
        let settings = Settings::load_test(builtin_clients());
        let issuer_only = services::write_config(&dir, Phase::Dual, "127.0.0.1:0", None, &settings)
            .expect("write");
        assert_eq!(
            Timings::of(&Config::load(&issuer_only).expect("load")),
            Timings {
                unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
                key_prepublish: Some(Duration::from_secs(3)),
            }
        );
        let both = services::write_config(
            &dir,
            Phase::Dual,
            "127.0.0.1:4000",
            Some("http://127.0.0.1:1/.well-known/jwks.json"),
            &settings,
        )
        .expect("write");
        let t = Timings::of(&Config::load(&both).expect("load"));
        assert_eq!(t.key_prepublish, Some(Duration::from_secs(3)));
        assert_eq!(t.unknown_kid_cooldown, DEFAULT_UNKNOWN_KID_COOLDOWN);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
