//! The issuer's hyper service.
//!
//! | route | |
//! |---|---|
//! | `POST /oauth/token` | client credentials grant (RFC 6749 §4.4) |
//! | `GET /.well-known/jwks.json` | JWK Set, `ETag` / `If-None-Match` |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//! | `GET /.well-known/openid-configuration` | the same document |
//! | `GET /healthz` | liveness |
//! | `GET /metrics` | Prometheus text format |
//!
//! Anything else: 404, or 405 with `Allow` for a known path.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::IssuerError;
use crate::issuer::Issuer;
use crate::routes;

/// The service for one connection.
#[derive(Debug, Clone)]
pub struct IssuerService {
    issuer: Arc<Issuer>,
    peer: IpAddr,
}

impl IssuerService {
    /// A service for requests from `peer`.
    pub fn new(issuer: Arc<Issuer>, peer: IpAddr) -> IssuerService {
        IssuerService { issuer, peer }
    }

    /// Routes one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match (req.method().clone(), req.uri().path()) {
            (Method::POST, "/oauth/token") => {
                let (parts, body) = req.into_parts();
                routes::token::handle(&self.issuer, &parts.headers, body, self.peer).await
            }
            (_, "/oauth/token") => IssuerError::MethodNotAllowed("POST").into_response(),
            (_, "/.well-known/jwks.json") if get => {
                routes::jwks::handle(&self.issuer.live(), req.headers())
            }
            (
                _,
                "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration",
            ) if get => routes::metadata::handle(&self.issuer.live()),
            (_, "/healthz") if get => routes::ops::healthz(),
            (_, "/metrics") if get => routes::ops::metrics(&self.issuer),
            (
                _,
                "/.well-known/jwks.json"
                | "/.well-known/oauth-authorization-server"
                | "/.well-known/openid-configuration"
                | "/healthz"
                | "/metrics",
            ) => IssuerError::MethodNotAllowed("GET, HEAD").into_response(),
            _ => IssuerError::NotFound.into_response(),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for IssuerService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// How long in-flight requests get to finish after shutdown is asked.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then drains open connections for at
/// most [`DRAIN_TIMEOUT`].
pub async fn run(listener: TcpListener, issuer: Arc<Issuer>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(Duration::from_secs(10))
        .timer(hyper_util::rt::TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer): (_, SocketAddr) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = IssuerService::new(issuer.clone(), peer.ip());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}
