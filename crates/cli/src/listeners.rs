//! A service's listeners: the public one and, with `admin_listen`, one for
//! the operational routes; each with a connection cap that stays under the
//! process's file-descriptor limit, which is raised to its hard limit first.
//! All of them stop on the same shutdown signal; the public one speaks TLS
//! when the service has `tls_cert_file` and `tls_key_file`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use keyshift_core::config::TlsFiles;
use keyshift_http::ops::Exposure;
use keyshift_http::tls::ServerTls;
use keyshift_http::{Limits, Listener};
use tokio::net::TcpListener;

/// File descriptors kept back from the connection caps: key files, the
/// JWKS client, logs, the listeners themselves.
const RESERVED_FDS: u64 = 128;

/// The bound listeners of one service.
#[derive(Debug)]
pub struct Listeners {
    /// `listen`.
    pub public: TcpListener,
    /// `admin_listen`, if set.
    pub admin: Option<TcpListener>,
    /// The cap each listener gets.
    pub limits: Limits,
    /// The TLS of `listen` (`tls_cert_file`, `tls_key_file`), if set.
    pub tls: Option<Arc<ServerTls>>,
}

impl Listeners {
    /// Binds `listen` and `admin_listen` of `section` and loads its TLS
    /// pair; the error names the field.
    pub async fn bind(
        section: &str,
        listen: SocketAddr,
        admin_listen: Option<SocketAddr>,
        max_connections: usize,
        tls: Option<&TlsFiles>,
    ) -> anyhow::Result<Listeners> {
        let tls = tls
            .map(|files| {
                ServerTls::load(&files.cert_file, &files.key_file)
                    .map(Arc::new)
                    .with_context(|| format!("{section}.tls_cert_file, {section}.tls_key_file"))
            })
            .transpose()?;
        let public = TcpListener::bind(listen)
            .await
            .with_context(|| format!("{section}.listen: cannot listen on {listen}"))?;
        let admin = match admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("{section}.admin_listen: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let fds = raise_fd_limit();
        let listeners = 1 + usize::from(admin.is_some());
        let limits = Limits {
            max_connections: cap(max_connections, fds, listeners),
        };
        if limits.max_connections < max_connections {
            tracing::warn!(
                fd_limit = fds,
                configured = max_connections,
                max_connections = limits.max_connections,
                "{section}.max_connections lowered to stay under the file descriptor limit"
            );
        }
        Ok(Listeners {
            public,
            admin,
            limits,
            tls,
        })
    }

    /// The scheme of `listen`: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves every listener with `run` until `shutdown` resolves: the
    /// public one with [`Exposure::Public`] when an admin listener takes the
    /// operational routes, else [`Exposure::All`]. `listen` speaks TLS when
    /// the service has it; `admin_listen` stays plain HTTP, for probes and
    /// Prometheus on a private address (docs/deployment.md, "TLS").
    pub async fn serve<R, F>(self, shutdown: impl Future<Output = ()>, run: R)
    where
        R: Fn(Listener, Exposure, Limits, ShutdownSignal) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signal = || ShutdownSignal(rx.clone());
        let mut tasks = tokio::task::JoinSet::new();
        let public_exposure = if self.admin.is_some() {
            Exposure::Public
        } else {
            Exposure::All
        };
        let public = match self.tls {
            Some(tls) => Listener::tls(self.public, tls),
            None => Listener::from(self.public),
        };
        tasks.spawn(run(public, public_exposure, self.limits, signal()));
        if let Some(admin) = self.admin {
            tasks.spawn(run(
                Listener::from(admin),
                Exposure::All,
                self.limits,
                signal(),
            ));
        }
        shutdown.await;
        let _ = tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

/// Binds one more listener of a service (the verifier's `grpc_listen`);
/// the error names `field`.
pub async fn bind_one(field: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{field}: cannot listen on {addr}"))
}

/// Resolves when the service is asked to stop.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(tokio::sync::watch::Receiver<bool>);

impl ShutdownSignal {
    /// Waits for the signal.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The connection cap per listener: the configured one, lowered so that all
/// listeners together stay [`RESERVED_FDS`] under the descriptor limit.
fn cap(configured: usize, fd_limit: u64, listeners: usize) -> usize {
    let spare = fd_limit.saturating_sub(RESERVED_FDS) / listeners.max(1) as u64;
    configured
        .min(usize::try_from(spare).unwrap_or(usize::MAX))
        .max(1)
}

/// Raises the soft limit of open files to the hard limit (the common soft
/// limit of 1,024 runs out at about a thousand idle sockets) and logs it;
/// returns the soft limit in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1_024;
    };
    if soft >= hard {
        tracing::info!(fd_limit = soft, "file descriptor limit");
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!(
                fd_limit = hard,
                raised_from = soft,
                "file descriptor limit raised to the hard limit"
            );
            hard
        }
        Err(e) => {
            tracing::warn!(fd_limit = soft, hard_limit = hard, error = %e, "cannot raise the file descriptor limit");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_under_the_descriptor_limit_shared_by_the_listeners() {
        assert_eq!(cap(10_000, 1_048_576, 1), 10_000);
        assert_eq!(cap(10_000, 1_024, 1), 896);
        assert_eq!(cap(10_000, 1_024, 2), 448);
        assert_eq!(cap(10_000, 100, 1), 1, "never zero");
    }
}
