//! The forward-auth check, answered three ways from one decision
//! ([`decide`]) and one mapping of a denial ([`Denial::head`]):
//!
//! - `/verify` and `/verify/<anything>` (any method): every status of the
//!   contract, for Traefik ForwardAuth, Caddy `forward_auth`, HAProxy and
//!   Envoy's HTTP ext_authz (which appends the original path);
//! - `/auth_request` (any method): nginx's answer set ([`Answers::Nginx`]);
//! - gRPC `Check` (`crate::grpc`), which carries the same status and headers.
//!
//! RFC 6750 challenges; docs/forward-auth.md is the user's page.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use keyshift_core::config::is_scope_token;

use crate::error::VerifyError;
use crate::verifier::{Verified, Verifier};

/// Header carrying required scopes (space-delimited), beside `?scope=`.
pub const REQUIRE_SCOPE_HEADER: &str = "x-auth-require-scope";

/// Which statuses a forward-auth route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// `/verify`: the contract's statuses as they are (200, 400, 401, 403, 503).
    Full,
    /// `/auth_request`: nginx's `auth_request` passes on only 2xx, 401 and
    /// 403 (anything else becomes a bare 500), so a malformed request is a
    /// 401 with `error="invalid_request"` and keys unavailable a 401 with
    /// `error="temporarily_unavailable"` and `Retry-After`, the one answer
    /// that carries `Retry-After` (docs/forward-auth.md turns it back into a
    /// 503 with `error_page`).
    Nginx,
}

/// Why a forward-auth check said no.
#[derive(Debug)]
pub enum Denial {
    /// No token or another scheme: 401 with a bare challenge (RFC 6750 §3.1).
    NoToken,
    /// Two `Authorization` headers, one that is not text, or a required
    /// scope that is not a scope-token: 400 `invalid_request`.
    BadRequest(&'static str),
    /// The token was refused: the error, the required scopes and, for
    /// [`VerifyError::KeysUnavailable`], the seconds of `Retry-After`.
    Token(VerifyError, Vec<String>, u64),
}

/// A denial as HTTP says it: status, `WWW-Authenticate`, `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialHead {
    /// 400, 401, 403 or 503.
    pub status: StatusCode,
    /// The RFC 6750 challenge.
    pub challenge: HeaderValue,
    /// Seconds to wait, for 503 only.
    pub retry_after: Option<u64>,
}

impl Denial {
    /// The one mapping of a denial to HTTP terms; every answer set and the
    /// gRPC denial are built from it.
    pub fn head(&self) -> DenialHead {
        let (status, challenge, retry_after) = match self {
            Denial::NoToken => (
                StatusCode::UNAUTHORIZED,
                HeaderValue::from_static("Bearer realm=\"keyshift\""),
                None,
            ),
            Denial::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                challenge_of(&format!(
                    "Bearer realm=\"keyshift\", error=\"invalid_request\", error_description=\"{d}\""
                )),
                None,
            ),
            Denial::Token(VerifyError::InsufficientScope, scopes, _) => (
                StatusCode::FORBIDDEN,
                challenge_of(&format!(
                    "Bearer realm=\"keyshift\", error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"{}\"",
                    scopes.join(" ")
                )),
                None,
            ),
            Denial::Token(VerifyError::KeysUnavailable, _, retry) => (
                StatusCode::SERVICE_UNAVAILABLE,
                HeaderValue::from_static("Bearer realm=\"keyshift\", error=\"temporarily_unavailable\", error_description=\"signing keys unavailable\""),
                Some(*retry),
            ),
            // The hot path under attack: a challenge built at compile time.
            Denial::Token(e, _, _) => (
                StatusCode::UNAUTHORIZED,
                HeaderValue::from_static(e.invalid_token_challenge()),
                None,
            ),
        };
        DenialHead {
            status,
            challenge,
            retry_after,
        }
    }

    /// The response of `answers`: [`Denial::head`], with the statuses nginx
    /// cannot pass on folded into 401 for [`Answers::Nginx`].
    pub fn into_response(self, answers: Answers) -> Response<Full<Bytes>> {
        let head = self.head();
        let status = match (answers, head.status) {
            (Answers::Nginx, StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE) => {
                StatusCode::UNAUTHORIZED
            }
            (_, status) => status,
        };
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        resp.headers_mut().insert(WWW_AUTHENTICATE, head.challenge);
        if let Some(secs) = head.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A challenge of text this module built from checked parts (scope-tokens,
/// fixed descriptions): always a valid header value; a bare challenge if not.
fn challenge_of(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("Bearer realm=\"keyshift\""))
}

/// Required scopes from `?scope=a+b` and `X-Auth-Require-Scope: a b`. Each
/// must be an RFC 6749 §3.3 scope-token (printable ASCII without space, `"`
/// or `\\`), so it can be echoed in the 403 challenge as it is; anything else
/// is a malformed request (400), never a silently dropped requirement.
pub fn required_scopes(query: Option<&str>, headers: &HeaderMap) -> Result<Vec<String>, Denial> {
    const BAD: Denial = Denial::BadRequest("a required scope is not a valid scope-token");
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |list: &str| -> Result<(), Denial> {
        for scope in list.split(' ').filter(|s| !s.is_empty()) {
            if !is_scope_token(scope) {
                return Err(BAD);
            }
            scopes.push(scope.to_owned());
        }
        Ok(())
    };
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k == "scope" {
                add(&v)?;
            }
        }
    }
    for v in headers.get_all(REQUIRE_SCOPE_HEADER) {
        add(v.to_str().map_err(|_| BAD)?)?;
    }
    Ok(scopes)
}

/// The bearer token of the request, or why there is none.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Denial> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denial::NoToken);
    };
    if values.next().is_some() {
        return Err(Denial::BadRequest("more than one Authorization header"));
    }
    let text = value
        .to_str()
        .map_err(|_| Denial::BadRequest("Authorization header is not text"))?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Denial::NoToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Denial::NoToken);
    }
    Ok(token)
}

/// The forward-auth decision for one request, counted in the verify
/// metrics: the token of `headers` checked against the scopes that `query`
/// (`?scope=a+b`, when given) and `X-Auth-Require-Scope` require.
pub async fn decide(
    verifier: &Verifier,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Arc<Verified>, Denial> {
    let token = token_of(verifier, headers)?;
    let scopes = required_scopes(query, headers).inspect_err(|_| {
        verifier.record_malformed_request();
    })?;
    decide_token(verifier, token, scopes).await
}

/// The request's bearer token; a request without one, or with two
/// `Authorization` headers, is counted here (`missing`, `malformed`).
pub fn token_of<'h>(verifier: &Verifier, headers: &'h HeaderMap) -> Result<&'h str, Denial> {
    bearer(headers).inspect_err(|denial| match denial {
        Denial::NoToken => verifier.record_missing(),
        Denial::BadRequest(_) => verifier.record_malformed_request(),
        Denial::Token(..) => {}
    })
}

/// Verifies `token` and requires `scopes`: the decision every answer set
/// and the tower layer ([`crate::layer`]) share, counted once by the verifier.
pub async fn decide_token(
    verifier: &Verifier,
    token: &str,
    scopes: Vec<String>,
) -> Result<Arc<Verified>, Denial> {
    let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
    verifier
        .verify_with_scopes(token, &required)
        .await
        .map_err(|e| {
            let retry = match &e {
                VerifyError::KeysUnavailable => {
                    verifier.jwks().map(|j| j.retry_after()).unwrap_or(30)
                }
                _ => 0,
            };
            Denial::Token(e, scopes, retry)
        })
}

/// Answers one forward-auth request with the statuses of `answers`.
pub async fn handle(
    verifier: &Verifier,
    answers: Answers,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    match decide(verifier, query, headers).await {
        Ok(v) => accepted(&v),
        Err(denial) => denial.into_response(answers),
    }
}

/// The identity headers of a `200`, in the order [`identity_headers`] gives them.
pub const IDENTITY_HEADERS: [HeaderName; 5] = [
    X_AUTH_SUBJECT,
    X_AUTH_CLIENT,
    X_AUTH_SCOPE,
    X_AUTH_ALG,
    X_AUTH_KID,
];

/// `X-Auth-Subject`: the token's `sub`.
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// `X-Auth-Client`: `client_id` (or `sub`).
pub const X_AUTH_CLIENT: HeaderName = HeaderName::from_static("x-auth-client");
/// `X-Auth-Scope`: the granted scopes, space-delimited.
pub const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");
/// `X-Auth-Alg`: `HS256` or `RS256`.
pub const X_AUTH_ALG: HeaderName = HeaderName::from_static("x-auth-alg");
/// `X-Auth-Kid`: the key id (empty for a legacy token without one).
pub const X_AUTH_KID: HeaderName = HeaderName::from_static("x-auth-kid");

/// The values of [`IDENTITY_HEADERS`] for a verdict: slices of its one
/// buffer (no copy, also on token-cache hits). `X-Auth-Kid` is empty for a
/// legacy token without `kid`.
pub fn identity_headers(v: &Verified) -> [HeaderValue; 5] {
    let [sub, client, scope, kid] = v.header_values();
    [
        sub,
        client,
        scope,
        HeaderValue::from_static(v.alg.as_str()),
        kid,
    ]
}

fn accepted(v: &Verified) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let h = resp.headers_mut();
    h.reserve(IDENTITY_HEADERS.len());
    for (name, value) in IDENTITY_HEADERS.into_iter().zip(identity_headers(v)) {
        h.insert(name, value);
    }
    resp
}
