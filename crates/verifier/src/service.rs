//! The verifier's hyper service.
//!
//! | route | |
//! |---|---|
//! | `/verify` (any method) | forward-auth: 200 + `X-Auth-*`, 401/403 with RFC 6750 challenges, 400, 503; scopes from `?scope=` and `X-Auth-Require-Scope` |
//! | `/verify/<anything>` (any method) | the same, for Envoy's HTTP ext_authz, which appends the original path; the query is the client's, so scopes come from `X-Auth-Require-Scope` only |
//! | `/auth_request` (any method) | the same check in nginx's answer set: only 200, 401, 403 |
//! | `GET /migration` | phase, counts per algorithm, readiness for phase `asymmetric` |
//! | `GET /keys` | JWKS cache status |
//! | `GET /healthz` | liveness |
//! | `GET /readyz` | 200 once the needed keys are loaded |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /version` | version and git commit of the build |
//!
//! Anything else: 404, or 405 for a known path with another method.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use keyshift_http::ops::{self, Exposure, RenderMetrics};
use keyshift_http::Limits;

use crate::routes;
use crate::routes::verify::{self, Answers};
use crate::verifier::Verifier;

/// What every request of the service shares.
pub struct State {
    /// The verifier.
    pub verifier: Arc<Verifier>,
    /// The metrics renderer.
    pub render_metrics: RenderMetrics,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

/// The service.
#[derive(Debug, Clone)]
pub struct VerifierService {
    state: Arc<State>,
    exposure: Exposure,
}

impl VerifierService {
    /// A service over `state`.
    pub fn new(state: Arc<State>) -> VerifierService {
        VerifierService::exposing(state, Exposure::All)
    }

    /// A service over `state` answering the routes of `exposure`.
    pub fn exposing(state: Arc<State>, exposure: Exposure) -> VerifierService {
        VerifierService { state, exposure }
    }

    /// Routes one request (the body is never read).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let s = &self.state;
        let path = req.uri().path();
        if !self.exposure.ops() && matches!(path, "/metrics" | "/keys" | "/migration") {
            return status(StatusCode::NOT_FOUND);
        }
        match path {
            "/verify" => {
                verify::handle(&s.verifier, Answers::Full, req.uri().query(), req.headers()).await
            }
            // The original request's query is the client's: a `scope`
            // parameter of some API must not become a requirement.
            _ if path.starts_with("/verify/") => {
                verify::handle(&s.verifier, Answers::Full, None, req.headers()).await
            }
            "/auth_request" => {
                verify::handle(
                    &s.verifier,
                    Answers::Nginx,
                    req.uri().query(),
                    req.headers(),
                )
                .await
            }
            "/migration" if get => routes::ops::migration(s),
            "/keys" if get => routes::ops::keys(s),
            "/healthz" if get => ops::healthz(),
            "/readyz" if get => routes::ops::readyz(s),
            "/metrics" if get => {
                // Time-derived gauges are brought up to date at scrape time.
                s.verifier.publish_gauges();
                ops::metrics(&s.render_metrics)
            }
            "/version" if get => ops::version("verifier"),
            "/migration" | "/keys" | "/healthz" | "/readyz" | "/metrics" | "/version" => {
                status(StatusCode::METHOD_NOT_ALLOWED)
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    if code == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
    }
    resp
}

impl keyshift_http::Handler for VerifierService {
    fn call(&self, req: Request<Incoming>) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self.handle(req)
    }
}

/// Serves until `shutdown` resolves, then drains (see [`keyshift_http::serve`]).
pub async fn run(
    listener: impl Into<keyshift_http::Listener>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    run_with(listener, state, Exposure::All, Limits::default(), shutdown).await;
}

/// [`run`] for one listener of several: the routes of `exposure`, within `limits`.
pub async fn run_with(
    listener: impl Into<keyshift_http::Listener>,
    state: Arc<State>,
    exposure: Exposure,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    keyshift_http::serve(
        listener,
        limits,
        move |_| keyshift_http::service(VerifierService::exposing(state.clone(), exposure)),
        shutdown,
    )
    .await;
}
