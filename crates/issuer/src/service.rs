//! The issuer's hyper service.
//!
//! | route | |
//! |---|---|
//! | `POST /oauth/token` | client credentials grant (RFC 6749 §4.4) |
//! | `GET /.well-known/jwks.json` | JWK Set, `ETag` / `If-None-Match` |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//! | `GET /.well-known/openid-configuration` | the same document |
//! | `GET /migration` | the phase, and until when an HS256 token minted here may be valid |
//! | `GET /.well-known/oauth-authorization-server/<issuer path>`, `GET /<issuer path>/.well-known/openid-configuration` | the same document, for an issuer URL with a path |
//! | `GET /healthz` | liveness |
//! | `GET /readyz` | readiness: 200 once the keys are loaded and the listener serves |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /version` | version and git commit of the build |
//!
//! Anything else: 404, or 405 with `Allow` for a known path.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use keyshift_http::ops::{self, Exposure};
use keyshift_http::Limits;

use crate::error::IssuerError;
use crate::forwarded::proxied_peer;
use crate::issuer::Issuer;
use crate::routes;

/// The service for one connection.
#[derive(Debug, Clone)]
pub struct IssuerService {
    issuer: Arc<Issuer>,
    peer: IpAddr,
    exposure: Exposure,
}

impl IssuerService {
    /// A service for requests from `peer`.
    pub fn new(issuer: Arc<Issuer>, peer: IpAddr) -> IssuerService {
        IssuerService::exposing(issuer, peer, Exposure::All)
    }

    /// A service for requests from `peer` answering the routes of `exposure`.
    pub fn exposing(issuer: Arc<Issuer>, peer: IpAddr, exposure: Exposure) -> IssuerService {
        IssuerService {
            issuer,
            peer,
            exposure,
        }
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
            (_, "/migration") if get => routes::migration::handle(&self.issuer),
            (_, "/healthz") if get => ops::healthz(),
            // The issuer exists only once its keys loaded (`Issuer::start`),
            // and this answer comes through a serving listener.
            (_, "/readyz") if get => ops::text(http::StatusCode::OK, "ready\n"),
            (_, "/metrics") if get && self.exposure.ops() => {
                ops::metrics(self.issuer.render_metrics())
            }
            (_, "/metrics") if !self.exposure.ops() => IssuerError::NotFound.into_response(),
            (_, "/version") if get => ops::version("issuer"),
            (
                _,
                "/.well-known/jwks.json"
                | "/.well-known/oauth-authorization-server"
                | "/.well-known/openid-configuration"
                | "/migration"
                | "/healthz"
                | "/readyz"
                | "/metrics"
                | "/version",
            ) => IssuerError::MethodNotAllowed("GET, HEAD").into_response(),
            (_, path) if routes::metadata::is_metadata_path(self.issuer.live().config(), path) => {
                if get {
                    routes::metadata::handle(&self.issuer.live())
                } else {
                    IssuerError::MethodNotAllowed("GET, HEAD").into_response()
                }
            }
            _ => IssuerError::NotFound.into_response(),
        }
    }
}

impl keyshift_http::Handler for IssuerService {
    fn call(&self, req: Request<Incoming>) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self.handle(req)
    }
}

/// Serves the issuer until `shutdown` resolves, then drains (see [`keyshift_http::serve`]).
pub async fn run(
    listener: impl Into<keyshift_http::Listener>,
    issuer: Arc<Issuer>,
    shutdown: impl Future<Output = ()>,
) {
    run_with(listener, issuer, Exposure::All, Limits::default(), shutdown).await;
}

/// [`run_with`] for a listener fronted by a proxy that sends the PROXY
/// protocol (`issuer.proxy_protocol`): each connection's PROXY header is
/// read first, and its source stands for the peer when the connection comes
/// from `issuer.trusted_proxies` ([`proxied_peer`]).
pub async fn run_proxy_protocol(
    listener: impl Into<keyshift_http::Listener>,
    issuer: Arc<Issuer>,
    exposure: Exposure,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    keyshift_http::serve_proxy_protocol(
        listener,
        limits,
        move |socket: SocketAddr, source: Option<SocketAddr>| {
            let peer = proxied_peer(socket.ip(), source, &issuer.live().config().trusted_proxies);
            keyshift_http::service(IssuerService::exposing(issuer.clone(), peer, exposure))
        },
        shutdown,
    )
    .await;
}

/// [`run`] for one listener of several: the routes of `exposure`, within `limits`.
pub async fn run_with(
    listener: impl Into<keyshift_http::Listener>,
    issuer: Arc<Issuer>,
    exposure: Exposure,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    keyshift_http::serve(
        listener,
        limits,
        move |peer: SocketAddr| {
            keyshift_http::service(IssuerService::exposing(issuer.clone(), peer.ip(), exposure))
        },
        shutdown,
    )
    .await;
}
