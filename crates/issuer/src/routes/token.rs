//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::Full;
use hyper::body::Body;
use keyshift_core::config::{is_scope_token, MAX_CLIENT_ID_BYTES};
use keyshift_http::body::{read_capped, BodyError};
use metrics::counter;
use serde::Serialize;

use crate::client_auth::{credentials, form_decode};
use crate::error::IssuerError;
use crate::issuer::Issuer;
use crate::metrics::{TOKENS_ISSUED, TOKEN_REQUESTS};
use crate::mint::TokenRequest;
use crate::ratelimit::LimitKey;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest the whole request body may take to arrive once the headers are
/// in (hyper bounds only the headers): a client trickling bytes cannot hold
/// a connection and its buffer forever. 408 after it.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a request waits for an argon2 verification slot before it gets
/// 429 (`Retry-After: 1`): long enough to ride out a burst of legitimate
/// clients, short enough that a flood queues nothing for long.
pub const ARGON2_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The form parameters the token endpoint reads; each at most once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `client_id` (client_secret_post, or repeated beside Basic).
    pub client_id: Option<String>,
    /// `client_secret` (client_secret_post).
    pub client_secret: Option<String>,
}

impl TokenForm {
    /// Parses an `application/x-www-form-urlencoded` body. A parameter given
    /// twice is refused (RFC 6749 §3.2); unknown ones are ignored.
    pub fn parse(body: &[u8]) -> Result<TokenForm, IssuerError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| IssuerError::InvalidRequest("body is not UTF-8"))?;
        let mut form = TokenForm::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name =
                form_decode(name).ok_or(IssuerError::InvalidRequest("malformed form encoding"))?;
            let slot = match name.as_str() {
                "grant_type" => &mut form.grant_type,
                "scope" => &mut form.scope,
                "client_id" => &mut form.client_id,
                "client_secret" => &mut form.client_secret,
                _ => continue,
            };
            if slot.is_some() {
                return Err(IssuerError::InvalidRequest("a parameter is repeated"));
            }
            *slot = Some(
                form_decode(value).ok_or(IssuerError::InvalidRequest("malformed form encoding"))?,
            );
        }
        Ok(form)
    }
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
}

/// Handles one token request; always answers, counting the outcome.
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
    let result = issue(issuer, headers, body, peer).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(e) => e.outcome(),
    };
    counter!(TOKEN_REQUESTS, "outcome" => outcome).increment(1);
    result.unwrap_or_else(IssuerError::into_response)
}

async fn issue<B>(
    issuer: &Issuer,
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

    let live = issuer.live();
    let now = issuer.now();
    let limiter = &live.limiter;
    let ip_key = LimitKey::peer(peer);
    // No configured client has a longer id (the config refuses them), so it
    // needs no lookup, and never becomes a limiter key of up to 16 KiB.
    if creds.id.len() > MAX_CLIENT_ID_BYTES {
        if let Some(wait) = limiter.blocked(&ip_key, now) {
            return Err(IssuerError::RateLimited(wait));
        }
        limiter.record_failure(ip_key, now);
        return Err(IssuerError::InvalidClient { basic: creds.basic });
    }
    // Charged before the hash, refunded only on success: a burst of guesses
    // in flight at once gets no more tries than a sequence of them.
    let attempt = limiter
        .begin([ip_key, LimitKey::Client(creds.id.clone())], now)
        .map_err(IssuerError::RateLimited)?;

    let client = live.clients.get(&creds.id).cloned();
    // An unknown client costs the same work as a known one with a wrong secret.
    let hash = client
        .as_ref()
        .map(|c| c.secret_hash.clone())
        .unwrap_or_else(|| live.dummy_hash.clone());
    let authenticated = if matches!(hash, keyshift_core::secret::SecretHash::Argon2id(_)) {
        let slots = issuer.argon2_slots().clone();
        let permit = match tokio::time::timeout(ARGON2_QUEUE_WAIT, slots.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; were it, no slot is to be had.
            Ok(Err(_)) | Err(_) => {
                attempt.abandoned();
                return Err(IssuerError::Busy);
            }
        };
        let secret = creds.secret.clone();
        // The permit moves into the blocking task: it is released when the
        // work ends, even if this request is dropped meanwhile.
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash.verify(secret.as_bytes())
        })
        .await;
        match verified {
            Ok(v) => v,
            Err(e) => {
                attempt.abandoned();
                return Err(e.into());
            }
        }
    } else {
        hash.verify(creds.secret.as_bytes())
    };
    let client = match client {
        Some(c) if authenticated => {
            attempt.succeeded();
            c
        }
        _ => {
            attempt.failed();
            tracing::debug!(client = %creds.id.escape_debug(), %peer, "client authentication failed");
            return Err(IssuerError::InvalidClient { basic: creds.basic });
        }
    };

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
    counter!(TOKENS_ISSUED, "alg" => live.signer.alg().as_str(), "client" => client.id.clone())
        .increment(1);

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
    fn form_refuses_repeated_parameters_and_decodes_values() {
        let f = TokenForm::parse(b"grant_type=client_credentials&scope=read+write&x=1&x=2")
            .expect("valid");
        assert_eq!(f.scope.as_deref(), Some("read write"));
        assert!(matches!(
            TokenForm::parse(b"scope=a&scope=b"),
            Err(IssuerError::InvalidRequest(_))
        ));
        assert!(matches!(
            TokenForm::parse(b"scope=%ff"),
            Err(IssuerError::InvalidRequest(_))
        ));
    }

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
