//! The gateway's hyper service. Routes:
//!
//! - `GET /healthz`, `GET /metrics`: on the admin listener, or on the public
//!   one when there is no admin listener;
//! - everything else: matched against `[[gateway.routes]]` and proxied, or
//!   404 when no route matches.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyshift_core::clock::SharedClock;
use keyshift_core::config::{GatewayConfig, IfPresent};
use keyshift_http::ops::{Exposure, RenderMetrics};
use keyshift_http::Limits;
use keyshift_verifier::routes::verify::{bearer, Answers, Denial};
use keyshift_verifier::{Verifier, VerifyError};

use crate::headers;
use crate::keys::ActiveKey;
use crate::metrics::{Outcome, RouteMetrics, UpstreamError, NO_ROUTE};
use crate::route::{Route, Router};
use crate::sign::{self, Identity, SignSpec, SignedTokens};

/// Any error a proxied body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every gateway response: the upstream's, streamed, or one the
/// gateway wrote.
pub type Body = BoxBody<Bytes, BoxError>;

/// How long an idle pooled upstream connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a request needs.
#[derive(Debug)]
pub struct State {
    routes: Router,
    has_admin: bool,
    verifier: Option<Arc<Verifier>>,
    keys: Option<Arc<ActiveKey>>,
    tokens: SignedTokens,
    client: Client<HttpConnector, Incoming>,
    upstream_timeout: Duration,
    clock: SharedClock,
    unrouted: RouteMetrics,
    render_metrics: RenderMetricsDebug,
}

struct RenderMetricsDebug(RenderMetrics);

impl std::fmt::Debug for RenderMetricsDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderMetrics")
    }
}

impl State {
    /// Builds the state of a gateway; `verifier` is needed when a route
    /// verifies, `keys` when one signs (the binary checks both).
    pub fn new(
        config: &GatewayConfig,
        verifier: Option<Arc<Verifier>>,
        keys: Option<Arc<ActiveKey>>,
        clock: SharedClock,
        render_metrics: RenderMetrics,
    ) -> State {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        State {
            routes: Router::new(
                config.routes.clone(),
                config.issuer.as_deref().unwrap_or_default(),
            ),
            has_admin: config.admin_listen.is_some(),
            verifier,
            keys,
            tokens: SignedTokens::new(sign::CACHE_ENTRIES),
            client,
            upstream_timeout: config.upstream_timeout,
            clock,
            unrouted: RouteMetrics::new(NO_ROUTE),
            render_metrics: RenderMetricsDebug(render_metrics),
        }
    }
}

/// Serves one listener until `shutdown` resolves.
pub async fn run(
    listener: impl Into<keyshift_http::Listener>,
    state: Arc<State>,
    exposure: Exposure,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    keyshift_http::serve(
        listener,
        limits,
        move |peer| {
            let state = state.clone();
            hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, exposure, peer, req).await) }
            })
        },
        shutdown,
    )
    .await;
}

/// Answers one request.
pub async fn handle(
    state: &State,
    exposure: Exposure,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    if exposure.ops() && req.method() == Method::GET {
        match req.uri().path() {
            "/healthz" => return full(keyshift_http::ops::healthz()),
            "/metrics" => return full(keyshift_http::ops::metrics(&state.render_metrics.0)),
            _ => {}
        }
    }
    if exposure == Exposure::All && state.has_admin {
        // The admin listener answers the operational routes only.
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let start = Instant::now();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .map(str::to_owned);
    let Some(route) = state.routes.find(host.as_deref(), req.uri().path()) else {
        state.unrouted.request(Outcome::NoRoute);
        return plain(StatusCode::NOT_FOUND, "no route\n");
    };
    let (outcome, resp) = proxy(state, route, peer, req).await;
    route.metrics.request(outcome);
    route.metrics.duration.record(start.elapsed().as_secs_f64());
    resp
}

async fn proxy(
    state: &State,
    route: &Route,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> (Outcome, Response<Body>) {
    let cfg = &route.config;
    let (mut parts, body) = req.into_parts();
    let verified = if cfg.verify {
        match check(state, route, &parts.headers).await {
            Ok(v) => v,
            Err((outcome, resp)) => return (outcome, resp),
        }
    } else {
        None
    };
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_identity(&mut parts.headers);
    if let Some(spec) = &route.sign {
        let header = HeaderName::from_bytes(cfg.sign_header.as_bytes()).unwrap_or(AUTHORIZATION);
        if cfg.verify {
            // The verified credential is the gateway's to consume: it goes
            // no further than the edge, whatever header the new one takes.
            parts.headers.remove(AUTHORIZATION);
        }
        if parts.headers.contains_key(&header) && cfg.if_present == IfPresent::Fail {
            let resp = plain(
                StatusCode::BAD_REQUEST,
                "the request already carries the header this route signs into\n",
            );
            return (Outcome::HeaderPresent, resp);
        }
        parts.headers.remove(&header);
        match signed(state, route, spec, verified.as_deref()) {
            Some(value) => {
                parts.headers.insert(header, value);
            }
            None => {
                return (
                    Outcome::SignFailed,
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
                )
            }
        }
    }
    headers::forward_request(&mut parts.headers, peer.ip());
    parts.uri = match route.target(&parts.uri) {
        Ok(uri) => uri,
        Err(_) => {
            return (
                Outcome::BadGateway,
                plain(StatusCode::BAD_REQUEST, "bad request target\n"),
            )
        }
    };
    parts.version = Version::HTTP_11;
    let req = Request::from_parts(parts, body);
    match tokio::time::timeout(state.upstream_timeout, state.client.request(req)).await {
        Err(_) => {
            route.metrics.upstream_error(UpstreamError::Timeout);
            tracing::warn!(route = %cfg.name, timeout = ?state.upstream_timeout, "upstream did not answer in time");
            (
                Outcome::Timeout,
                plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
            )
        }
        Ok(Err(e)) => {
            let kind = if e.is_connect() {
                UpstreamError::Connect
            } else {
                UpstreamError::Protocol
            };
            route.metrics.upstream_error(kind);
            // The error names the connection, never a header or a token.
            tracing::warn!(route = %cfg.name, kind = kind.as_str(), error = %keyshift_core::error::chain(&e), "upstream failed");
            (
                Outcome::BadGateway,
                plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
            )
        }
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            headers::forward_response(&mut parts.headers);
            let body = body.map_err(BoxError::from).boxed();
            (Outcome::Proxied, Response::from_parts(parts, body))
        }
    }
}

type Verdict = Option<Arc<keyshift_verifier::Verified>>;

/// Verifies the bearer token of a `verify = true` route: the same checks
/// and the same RFC 6750 answer as `/verify`.
async fn check(
    state: &State,
    route: &Route,
    headers: &http::HeaderMap,
) -> Result<Verdict, (Outcome, Response<Body>)> {
    let Some(verifier) = &state.verifier else {
        tracing::error!(route = %route.config.name, "route verifies but the gateway has no verifier");
        return Err((
            Outcome::SignFailed,
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        ));
    };
    let token = match bearer(headers) {
        Ok(t) => t,
        Err(denial) => {
            match denial {
                Denial::NoToken => verifier.record_missing(),
                Denial::BadRequest(_) => verifier.record_malformed_request(),
                Denial::Token(..) => {}
            }
            return Err((
                Outcome::Unauthorized,
                full(denial.into_response(Answers::Full)),
            ));
        }
    };
    let required: Vec<&str> = route.scopes.iter().map(String::as_str).collect();
    match verifier.verify_with_scopes(token, &required).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let (outcome, retry) = match &e {
                VerifyError::KeysUnavailable => (
                    Outcome::KeysUnavailable,
                    verifier.jwks().map(|j| j.retry_after()).unwrap_or(30),
                ),
                VerifyError::InsufficientScope => (Outcome::InsufficientScope, 0),
                _ => (Outcome::Unauthorized, 0),
            };
            let denial = Denial::Token(e, route.scopes.clone(), retry);
            Err((outcome, full(denial.into_response(Answers::Full))))
        }
    }
}

/// `Bearer <token>` for the route's upstream, from the cache or signed now.
fn signed(
    state: &State,
    route: &Route,
    spec: &SignSpec,
    verified: Option<&keyshift_verifier::Verified>,
) -> Option<HeaderValue> {
    let signer = state.keys.as_ref().and_then(|k| k.signer())?;
    let cfg = &route.config;
    let who = match verified {
        Some(v) => Identity {
            sub: v.sub(),
            client_id: v.client_id(),
            scope: v.scope(),
            not_after: Some(v.exp),
        },
        None => {
            let id = cfg.service_identity.as_deref()?;
            Identity {
                sub: id,
                client_id: id,
                scope: "",
                not_after: None,
            }
        }
    };
    match state.tokens.get(&signer, spec, who, state.clock.now_secs()) {
        Ok((value, fresh)) => {
            if fresh {
                route.metrics.signed.increment(1);
            }
            Some(value)
        }
        Err(e) => {
            tracing::error!(route = %cfg.name, error = %e, "signing a token for the upstream failed");
            None
        }
    }
}

fn full(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(|b| b.map_err(|never| match never {}).boxed())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    full(resp)
}
