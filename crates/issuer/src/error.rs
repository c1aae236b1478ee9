//! The issuer's one error type and its one mapping to an HTTP response:
//! RFC 6749 §5.2 JSON for the token endpoint.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The request is malformed: bad content type, duplicate or missing
    /// parameter, two authentication methods (400 `invalid_request`).
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed (401 `invalid_client`); `basic` when the
    /// client tried HTTP Basic, which adds `WWW-Authenticate: Basic`.
    #[error("invalid_client")]
    InvalidClient {
        /// Whether the client used HTTP Basic.
        basic: bool,
    },
    /// A requested scope is unknown or not allowed for the client (400 `invalid_scope`).
    #[error("invalid_scope")]
    InvalidScope,
    /// `grant_type` is not `client_credentials` (400 `unsupported_grant_type`).
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Too many failed authentications for this client or address (429).
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    /// Every argon2 verification slot stayed busy for the whole queue wait
    /// (429, `Retry-After: 1`); counted as `rate_limited`.
    #[error("too many client authentications in progress")]
    Busy,
    /// The body exceeds the limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the body read timeout (408,
    /// `invalid_request`, `Connection: close`).
    #[error("request body not received in time")]
    RequestTimeout,
    /// No such route (404).
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method (405).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// A fault of ours (500); the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Internal),
}

/// The causes of a 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Internal {
    /// Signing the token failed.
    #[error(transparent)]
    Mint(#[from] crate::mint::MintError),
    /// The argon2 verification task panicked.
    #[error("the secret verification task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The response body could not be serialised.
    #[error("serialising the response failed")]
    Json(#[from] serde_json::Error),
}

impl IssuerError {
    /// The answer to a failed client authentication; `basic` says whether
    /// the credentials came by HTTP Basic (then 401 carries a challenge).
    pub fn from_auth(e: crate::auth::AuthError, basic: bool) -> IssuerError {
        use crate::auth::AuthError;
        match e {
            AuthError::Invalid => IssuerError::InvalidClient { basic },
            AuthError::Limited(wait) => IssuerError::RateLimited(wait),
            AuthError::Busy => IssuerError::Busy,
            AuthError::Task(e) => e.into(),
        }
    }
}

impl<E: Into<Internal>> From<E> for IssuerError {
    fn from(e: E) -> IssuerError {
        IssuerError::Internal(e.into())
    }
}

impl IssuerError {
    /// The `outcome` label of `keyshift_token_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            IssuerError::InvalidRequest(_)
            | IssuerError::PayloadTooLarge
            | IssuerError::RequestTimeout
            | IssuerError::NotFound
            | IssuerError::MethodNotAllowed(_) => "invalid_request",
            IssuerError::InvalidClient { .. } => "invalid_client",
            IssuerError::InvalidScope => "invalid_scope",
            IssuerError::UnsupportedGrantType => "unsupported_grant_type",
            IssuerError::RateLimited(_) | IssuerError::Busy => "rate_limited",
            IssuerError::Internal(_) => "server_error",
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            IssuerError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
            IssuerError::InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            IssuerError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ),
            IssuerError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            ),
            IssuerError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                "too many failed authentication attempts",
            ),
            IssuerError::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                "too many client authentications in progress; retry shortly",
            ),
            IssuerError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ),
            IssuerError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body was not received in time",
            ),
            IssuerError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route"),
            IssuerError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method not allowed",
            ),
            IssuerError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            ),
        }
    }

    /// The HTTP response: RFC 6749 §5.2 JSON, `Cache-Control: no-store`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, code, description) = self.parts();
        if let IssuerError::Internal(_) = &self {
            tracing::error!(error = %keyshift_core::error::chain(&self), "token endpoint failed");
        }
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        match &self {
            IssuerError::InvalidClient { basic: true } => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"keyshift\", charset=\"UTF-8\""),
                );
            }
            IssuerError::RateLimited(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                h.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            IssuerError::Busy => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            IssuerError::RequestTimeout => {
                // The rest of the body may still come: do not read it as a next request.
                h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            IssuerError::MethodNotAllowed(allow) => {
                h.insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::IssuerError;

    #[test]
    fn a_stalled_body_and_a_busy_issuer_count_under_the_contract_outcomes() {
        // The two errors no request-level metric test reaches cheaply.
        assert_eq!(IssuerError::RequestTimeout.outcome(), "invalid_request");
        assert_eq!(IssuerError::Busy.outcome(), "rate_limited");
        assert_eq!(IssuerError::PayloadTooLarge.outcome(), "invalid_request");
    }
}
