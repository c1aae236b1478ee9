//! gRPC ext_authz: `envoy.service.auth.v3.Authorization/Check` on
//! `[verifier] grpc_listen`, for Envoy and Istio. The same decision as
//! `/verify` ([`routes::verify::decide`], counted in the same metrics), the
//! same denial mapping ([`Denial::head`]):
//!
//! - read: `Authorization` and `X-Auth-Require-Scope` from the checked
//!   request's headers (the `headers` map, or `header_map` when Envoy sends
//!   raw headers), and required scopes from the context extension `scope`
//!   (per route: `ExtAuthzPerRoute.check_settings.context_extensions`). The
//!   original path and query are the client's and are not read;
//! - OK: the five identity headers to set, overwriting what the client
//!   sent, and `X-Auth-Kid` to remove for a token without `kid`;
//! - denied: the HTTP status, `WWW-Authenticate` and `Retry-After` of
//!   `/verify`, with the gRPC code that says the same (16 `UNAUTHENTICATED`,
//!   7 `PERMISSION_DENIED`, 3 `INVALID_ARGUMENT`, 14 `UNAVAILABLE`).

use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::net::TcpListener;

use crate::routes::verify::{self, Denial, IDENTITY_HEADERS, REQUIRE_SCOPE_HEADER};
use crate::verifier::{Verified, Verifier};

/// The largest `CheckRequest` decoded (tonic's default is 4 MiB): room for
/// a request head at `keyshift_http::MAX_HEADER_BYTES` (96 KiB) and Envoy's
/// attributes around it; a larger one is refused (`OUT_OF_RANGE`)
/// before it is parsed.
pub const MAX_CHECK_REQUEST_BYTES: usize = 256 * 1024;

/// The context extension naming the scopes a route requires.
pub const SCOPE_EXTENSION: &str = "scope";

/// The `Authorization` service over a [`Verifier`].
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    verifier: Arc<Verifier>,
}

impl ExtAuthz {
    /// The service over `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> ExtAuthz {
        ExtAuthz { verifier }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            check(&self.verifier, request.get_ref()).await,
        ))
    }
}

/// Answers one `Check`: never a gRPC error, always an OK or a denial.
pub async fn check(verifier: &Verifier, request: &CheckRequest) -> CheckResponse {
    let decided = match request_headers(request) {
        Ok(headers) => verify::decide(verifier, None, &headers).await,
        Err(denial) => {
            verifier.record_malformed_request();
            Err(denial)
        }
    };
    match decided {
        Ok(v) => ok(&v),
        Err(denial) => denied(&denial),
    }
}

/// The headers [`verify::decide`] reads, from the checked request: its
/// `Authorization` and `X-Auth-Require-Scope` lines, and the context
/// extension `scope` as one more `X-Auth-Require-Scope` line.
fn request_headers(request: &CheckRequest) -> Result<HeaderMap, Denial> {
    const NOT_TEXT: Denial = Denial::BadRequest("a header is not text");
    let mut headers = HeaderMap::new();
    let wanted = |name: &str| -> Option<HeaderName> {
        if name.eq_ignore_ascii_case(AUTHORIZATION.as_str()) {
            Some(AUTHORIZATION)
        } else if name.eq_ignore_ascii_case(REQUIRE_SCOPE_HEADER) {
            Some(HeaderName::from_static(REQUIRE_SCOPE_HEADER))
        } else {
            None
        }
    };
    let attributes = request.attributes.as_ref();
    let http = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    if let Some(http) = http {
        match http.header_map.as_ref().filter(|m| !m.headers.is_empty()) {
            // Raw headers (`encode_raw_headers`): one entry per line, so two
            // Authorization lines stay two.
            Some(map) => {
                for h in &map.headers {
                    if let Some(name) = wanted(&h.key) {
                        let bytes = if h.raw_value.is_empty() {
                            h.value.as_bytes()
                        } else {
                            &h.raw_value
                        };
                        let value = HeaderValue::from_bytes(bytes).map_err(|_| NOT_TEXT)?;
                        headers.append(name, value);
                    }
                }
            }
            None => {
                for (key, value) in &http.headers {
                    if let Some(name) = wanted(key) {
                        let value = HeaderValue::from_str(value).map_err(|_| NOT_TEXT)?;
                        headers.append(name, value);
                    }
                }
            }
        }
    }
    if let Some(scope) = attributes.and_then(|a| a.context_extensions.get(SCOPE_EXTENSION)) {
        let value = HeaderValue::from_str(scope).map_err(|_| NOT_TEXT)?;
        headers.append(HeaderName::from_static(REQUIRE_SCOPE_HEADER), value);
    }
    Ok(headers)
}

fn header(name: &str, value: &[u8]) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            ..EnvoyHeader::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn status(code: i32, message: &str) -> Option<rpc::Status> {
    Some(rpc::Status {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    })
}

/// OK: set the identity headers (overwriting the client's), remove the
/// ones that have no value (`X-Auth-Kid` of a token without `kid`).
fn ok(v: &Verified) -> CheckResponse {
    let mut set = Vec::with_capacity(IDENTITY_HEADERS.len());
    let mut remove = Vec::new();
    for (name, value) in IDENTITY_HEADERS.iter().zip(verify::identity_headers(v)) {
        if value.is_empty() {
            remove.push(name.as_str().to_owned());
        } else {
            set.push(header(name.as_str(), value.as_bytes()));
        }
    }
    CheckResponse {
        status: status(0, ""),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: set,
            headers_to_remove: remove,
            ..OkHttpResponse::default()
        })),
        ..CheckResponse::default()
    }
}

/// A denial: `/verify`'s status and headers, and the gRPC code that matches.
fn denied(denial: &Denial) -> CheckResponse {
    let head = denial.head();
    let code = match head.status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::FORBIDDEN => 7,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 16,
    };
    let mut headers = vec![header(WWW_AUTHENTICATE.as_str(), head.challenge.as_bytes())];
    if let Some(secs) = head.retry_after {
        headers.push(header(RETRY_AFTER.as_str(), secs.to_string().as_bytes()));
    }
    CheckResponse {
        status: status(code, head.status.canonical_reason().unwrap_or("denied")),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(head.status.as_u16()),
            }),
            headers,
            body: String::new(),
        })),
        ..CheckResponse::default()
    }
}

/// Serves `Check` on `listener` (HTTP/2, gRPC) until `shutdown` resolves,
/// then lets open calls finish.
pub async fn serve(
    listener: TcpListener,
    verifier: Arc<Verifier>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // One service, so no router: tonic's `Server` serves it directly.
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(
            AuthorizationServer::new(ExtAuthz::new(verifier))
                .max_decoding_message_size(MAX_CHECK_REQUEST_BYTES),
            incoming,
            shutdown,
        )
        .await
}
