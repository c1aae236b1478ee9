//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::Full;
use hyper::body::Body;
use keyshift_core::config::is_scope_token;
use keyshift_core::Alg;
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

/// What the audit line of one token request says: who asked, and what was
/// issued. Never a secret; the client id as presented (bounded, and quoted
/// when logged, since an unauthenticated one is anybody's text).
#[derive(Debug, Default)]
struct Audit {
    client: Option<String>,
    authenticated: bool,
    scope: Option<String>,
    alg: Option<Alg>,
    kid: Option<String>,
    jti: Option<String>,
}

impl Audit {
    fn log(&self, outcome: &str, peer: IpAddr) {
        tracing::info!(
            target: AUDIT_TARGET,
            outcome,
            client = ?self.client.as_deref().unwrap_or(""),
            authenticated = self.authenticated,
            scope = self.scope.as_deref().unwrap_or(""),
            alg = self.alg.map_or("", Alg::as_str),
            kid = self.kid.as_deref().unwrap_or(""),
            jti = self.jti.as_deref().unwrap_or(""),
            %peer,
            "token request"
        );
    }
}

/// The `tracing` target of the per-request audit lines
/// (`RUST_LOG=info,keyshift::audit=off` silences them).
pub const AUDIT_TARGET: &str = "keyshift::audit";

/// At most this many bytes of a presented client id go into the audit line.
const AUDIT_CLIENT_BYTES: usize = keyshift_core::config::MAX_CLIENT_ID_BYTES;

/// Handles one token request from the socket peer `peer`; always answers,
/// counting the outcome and writing one audit line. Behind
/// `issuer.trusted_proxies` the failed-auth limits count the client
/// `X-Forwarded-For` names ([`client_addr`]).
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
    let mut audit = Audit::default();
    let result = issue(issuer, &live, headers, body, peer, &mut audit).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(e) => e.outcome(),
    };
    live.metrics
        .answered(outcome, started.elapsed().as_secs_f64());
    audit.log(outcome, peer);
    result.unwrap_or_else(IssuerError::into_response)
}

async fn issue<B>(
    issuer: &Issuer,
    live: &Live,
    headers: &HeaderMap,
    body: B,
    peer: IpAddr,
    audit: &mut Audit,
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
    audit.client = Some(truncate(&creds.id, AUDIT_CLIENT_BYTES).to_owned());

    let now = issuer.now();
    let client = live
        .auth
        .authenticate(&creds, peer, now)
        .await
        .map_err(|e| IssuerError::from_auth(e, creds.basic))?;
    audit.authenticated = true;

    if grant_type != "client_credentials" {
        return Err(IssuerError::UnsupportedGrantType);
    }
    let scope = grant_scope(form.scope.as_deref(), &client.scopes)?;

    let alg = live.signer.alg();
    if alg == Alg::Hs256 {
        // Recorded before the token exists: see crate::ledger.
        let iat = now.as_secs();
        let exp = iat.saturating_add(live.template.ttl.as_secs());
        issuer.note_hs256(iat, exp, live.template.ttl).await;
    }
    let (token, claims) = live.signer.mint(
        &live.template,
        TokenRequest {
            client_id: &client.id,
            scope: &scope,
            now: now.as_secs(),
        },
    )?;
    live.metrics.issued(&client.id, alg);
    audit.alg = Some(alg);
    audit.kid = Some(live.signer.kid().to_owned());
    audit.jti = Some(claims.jti.clone());
    audit.scope = Some(scope.clone());

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

/// The longest prefix of `s` within `max` bytes, on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    fn audit_client_ids_are_cut_on_a_char_boundary() {
        assert_eq!(truncate("svc-a", 256), "svc-a");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("", 0), "");
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
