//! `/verify` (any method): forward-auth for nginx `auth_request`, Traefik
//! ForwardAuth and Envoy ext_authz (HTTP). RFC 6750 challenges.

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

/// Why `/verify` said no, and how that maps onto HTTP.
#[derive(Debug)]
pub enum Denial {
    /// No token or another scheme: 401 with a bare challenge (RFC 6750 §3.1).
    NoToken,
    /// Two `Authorization` headers, or one that is not text: 400 `invalid_request`.
    BadRequest(&'static str),
    /// The token was refused.
    Token(VerifyError, Vec<String>, u64),
}

impl Denial {
    /// The one mapping of a denial to a response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, challenge, retry) = match &self {
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
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        resp.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        if let Some(secs) = retry {
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

/// The request's bearer token; a request without one, or with two
/// `Authorization` headers, is counted here (`missing`, `malformed`).
pub fn token_of<'h>(verifier: &Verifier, headers: &'h HeaderMap) -> Result<&'h str, Denial> {
    bearer(headers).inspect_err(|denial| match denial {
        Denial::NoToken => verifier.record_missing(),
        Denial::BadRequest(_) => verifier.record_malformed_request(),
        Denial::Token(..) => {}
    })
}

/// Verifies `token` and requires `scopes`: the decision `/verify` and the
/// tower layer ([`crate::layer`]) share, counted once by the verifier.
pub async fn decide(
    verifier: &Verifier,
    token: &str,
    scopes: Vec<String>,
) -> Result<Arc<Verified>, Denial> {
    let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
    match verifier.verify_with_scopes(token, &required).await {
        Ok(v) => Ok(v),
        Err(e) => {
            let retry = match &e {
                VerifyError::KeysUnavailable => {
                    verifier.jwks().map(|j| j.retry_after()).unwrap_or(30)
                }
                _ => 0,
            };
            Err(Denial::Token(e, scopes, retry))
        }
    }
}

/// Handles one `/verify` request.
pub async fn handle(
    verifier: &Verifier,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    let token = match token_of(verifier, headers) {
        Ok(t) => t,
        Err(denial) => return denial.into_response(),
    };
    let scopes = match required_scopes(query, headers) {
        Ok(s) => s,
        Err(denial) => {
            verifier.record_malformed_request();
            return denial.into_response();
        }
    };
    match decide(verifier, token, scopes).await {
        Ok(v) => accepted(&v),
        Err(denial) => denial.into_response(),
    }
}

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

fn accepted(v: &Verified) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let h = resp.headers_mut();
    h.reserve(5);
    // Slices of the verdict's one buffer: no copy, also on token-cache hits.
    let [sub, client, scope, kid] = v.header_values();
    h.insert(X_AUTH_SUBJECT, sub);
    h.insert(X_AUTH_CLIENT, client);
    h.insert(X_AUTH_SCOPE, scope);
    h.insert(X_AUTH_ALG, HeaderValue::from_static(v.alg.as_str()));
    h.insert(X_AUTH_KID, kid);
    resp
}
