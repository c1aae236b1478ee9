//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::Full;
use hyper::body::Body;
use keyshift_core::config::is_scope_token;
use keyshift_http::body::{read_capped, BodyError};
use serde::Serialize;

use crate::auth::credentials;
use crate::error::IssuerError;
use crate::form::TokenForm;
use crate::forwarded::client_addr;
use crate::issuer::{Issuer, Live};
use crate::mint::TokenRequest;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest the whole request body may take to arrive once the headers are
/// in (hyper bounds only the headers): a client trickling bytes cannot hold
/// a connection and its buffer forever. 408 after it.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
}

/// Handles one token request from the socket peer `peer`; always answers,
/// counting the outcome. Behind `issuer.trusted_proxies` the failed-auth
/// limits count the client `X-Forwarded-For` names ([`client_addr`]).
pub async fn handle<B>(
    issuer: &Issuer,
    headers: &HeaderMap,
    body: B,
    peer: IpAddr,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = std::time::Instant::now();
    let live = issuer.live();
    let peer = client_addr(peer, headers, &live.config.trusted_proxies);
    let result = issue(issuer, &live, headers, body, peer).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(e) => e.outcome(),
    };
    live.metrics
        .answered(outcome, started.elapsed().as_secs_f64());
    result.unwrap_or_else(IssuerError::into_response)
}

async fn issue<B>(
    issuer: &Issuer,
    live: &Live,
    headers: &HeaderMap,
    body: B,
    peer: IpAddr,
) -> Result<Response<Full<Bytes>>, IssuerError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(IssuerError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Copied chunk by chunk, never collected: see keyshift_http::body.
    let body = read_capped(body, declared, MAX_BODY_BYTES, BODY_READ_TIMEOUT)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => IssuerError::PayloadTooLarge,
            BodyError::TimedOut(_) => IssuerError::RequestTimeout,
            _ => IssuerError::InvalidRequest("could not read the request body"),
        })?;
    let form = TokenForm::parse(&body)?;
    let grant_type = form
        .grant_type
        .clone()
        .ok_or(IssuerError::InvalidRequest("grant_type is missing"))?;
    let creds = credentials(headers, &form)?;

    let now = issuer.now();
    let client = live
        .auth
        .authenticate(&creds, peer, now)
        .await
        .map_err(|e| IssuerError::from_auth(e, creds.basic))?;

    if grant_type != "client_credentials" {
        return Err(IssuerError::UnsupportedGrantType);
    }
    let scope = grant_scope(form.scope.as_deref(), &client.scopes)?;

    let (token, claims) = live.signer.mint(
        &live.template,
        TokenRequest {
            client_id: &client.id,
            scope: &scope,
            now: now.as_secs(),
        },
    )?;
    live.metrics.issued(&client.id, live.signer.alg());

    let body = serde_json::to_vec(&TokenResponse {
        access_token: &token,
        token_type: "Bearer",
        expires_in: claims.exp - claims.iat,
        scope: &scope,
    })?;
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// The scope to grant: the requested scopes if all are allowed (order kept,
/// duplicates dropped), else `invalid_scope`; all allowed scopes when none is asked.
pub fn grant_scope(requested: Option<&str>, allowed: &[String]) -> Result<String, IssuerError> {
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let Some(requested) = requested else {
        return Ok(allowed.join(" "));
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !is_scope_token(s) || !allowed.iter().any(|a| a == s) {
            return Err(IssuerError::InvalidScope);
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_narrowed_never_escalated() {
        let allowed = vec!["read".to_owned(), "write".to_owned()];
        assert_eq!(grant_scope(None, &allowed).expect("default"), "read write");
        assert_eq!(
            grant_scope(Some(""), &allowed).expect("empty"),
            "read write"
        );
        assert_eq!(
            grant_scope(Some("write"), &allowed).expect("narrow"),
            "write"
        );
        assert_eq!(
            grant_scope(Some("write read write"), &allowed).expect("dedup"),
            "write read"
        );
        assert!(matches!(
            grant_scope(Some("read admin"), &allowed),
            Err(IssuerError::InvalidScope)
        ));
        assert!(matches!(
            grant_scope(Some("re\"ad"), &allowed),
            Err(IssuerError::InvalidScope)
        ));
    }
}
