//! When a service reloads: on SIGHUP; with `watch_config`, when the config
//! file or a file it names changes (a Kubernetes ConfigMap or Secret
//! update swaps a symlink, which a content digest notices); and, whatever
//! `watch_config` says, when the TLS certificate or key changes, so a
//! renewed certificate serves without a restart. Every trigger runs the
//! same validation as SIGHUP, and a refused reload keeps what runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyshift_core::config::TlsFiles;
use keyshift_core::watch::{Watched, WATCH_INTERVAL};
use keyshift_http::tls::ServerTls;
use tokio::signal::unix::Signal;

/// Why the service reloads now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: config, secrets and TLS files.
    Signal,
    /// `watch_config`: the config file or a file it names changed.
    ConfigChanged,
    /// The TLS certificate or key changed: the pair is reloaded alone.
    TlsChanged,
}

impl Trigger {
    /// Whether the config is read again (else only the TLS pair).
    pub fn reads_config(self) -> bool {
        self != Trigger::TlsChanged
    }
}

/// The sources of reloads of one service.
#[derive(Debug)]
pub struct Reloads {
    hup: Signal,
    config_file: PathBuf,
    config: Option<Watched>,
    tls: Option<(Arc<ServerTls>, Watched)>,
}

impl Reloads {
    /// SIGHUP always; the config file and `named` files when `watch`; the
    /// TLS files of `tls` when there is one.
    pub fn new(
        hup: Signal,
        config_file: &Path,
        watch: bool,
        named: Vec<PathBuf>,
        tls: Option<Arc<ServerTls>>,
    ) -> Reloads {
        let tls = tls.map(|t| {
            let files = t.files().iter().map(|p| p.to_path_buf()).collect();
            (t, Watched::new(files))
        });
        let mut reloads = Reloads {
            hup,
            config_file: config_file.to_owned(),
            config: None,
            tls,
        };
        reloads.watch(watch, named);
        reloads
    }

    /// After a reload: watch (or stop watching) the config and the files
    /// it names now.
    pub fn watch(&mut self, watch: bool, named: Vec<PathBuf>) {
        if !watch {
            if self.config.take().is_some() {
                tracing::info!("watch_config off: reloading on SIGHUP only");
            }
            return;
        }
        let mut files = vec![self.config_file.clone()];
        files.extend(named);
        match &mut self.config {
            Some(w) if w.files() == files.as_slice() => {}
            Some(w) => w.rebase(files),
            None => {
                tracing::info!(
                    files = files.len(),
                    "watch_config on: reloading when the config or a file it names changes"
                );
                self.config = Some(Watched::new(files));
            }
        }
    }

    /// Waits for the next trigger. A TLS change is applied here (its
    /// result logged) before returning.
    pub async fn next(&mut self) -> Trigger {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = self.hup.recv() => {
                    tracing::info!(config = %self.config_file.display(), "SIGHUP: reloading");
                    self.take_in_everything();
                    return Trigger::Signal;
                }
                _ = tick.tick() => {
                    if let Some(trigger) = self.look() {
                        return trigger;
                    }
                }
            }
        }
    }

    /// One look at the watched files.
    fn look(&mut self) -> Option<Trigger> {
        if let Some((tls, watched)) = &mut self.tls {
            if watched.changed() {
                tracing::info!("TLS certificate or key changed on disk: reloading it");
                reload_tls(tls);
                return Some(Trigger::TlsChanged);
            }
        }
        if let Some(watched) = &mut self.config {
            if watched.changed() {
                tracing::info!(config = %self.config_file.display(), "watch_config: the config or a file it names changed: reloading");
                self.take_in_everything();
                return Some(Trigger::ConfigChanged);
            }
        }
        None
    }

    /// A full reload (a signal, or a changed config): what changed on disk
    /// so far is the new baseline, and the TLS pair is reloaded with the
    /// config (the caller reads the config).
    fn take_in_everything(&mut self) {
        if let Some(w) = &mut self.config {
            w.rebase(w.files().to_vec());
        }
        if let Some((tls, w)) = &mut self.tls {
            w.rebase(w.files().to_vec());
            reload_tls(tls);
        }
    }
}

/// Warns when a reloaded config names other TLS files than the listeners
/// were started with (or turns TLS on or off): that takes a restart.
pub fn warn_if_tls_moved(section: &str, running: Option<&ServerTls>, now: Option<&TlsFiles>) {
    let running = running.map(|t| t.files());
    let now = now.map(|t| [t.cert_file.as_path(), t.key_file.as_path()]);
    if running != now {
        tracing::warn!(
            "{section}.tls_cert_file or {section}.tls_key_file changed: the listeners keep the files they started with until a restart"
        );
    }
}

/// Reloads the TLS pair, keeping the old one on an error.
fn reload_tls(tls: &ServerTls) {
    match tls.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => tracing::error!(
            error = %keyshift_core::error::chain(&e),
            "TLS certificate reload failed; keeping the running certificate"
        ),
    }
}
