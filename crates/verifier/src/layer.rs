//! [`RequireToken`]: a `tower::Layer` for a Rust resource server that embeds
//! the [`Verifier`] instead of asking a forward-auth endpoint. A request
//! whose bearer token the verifier accepts (with the layer's scopes) reaches
//! the inner service with the [`Verified`] token in its extensions; any
//! other gets the same RFC 6750 answer `/verify` gives (401, 403, 400 or
//! 503 with `Retry-After`), with an empty body of the inner service's type.
//! Decisions are counted in the verifier's metrics like `/verify`'s.
//!
//! ```no_run
//! # async fn demo(verifier: std::sync::Arc<keyshift_verifier::Verifier>) {
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use keyshift_verifier::layer::RequireToken;
//! use keyshift_verifier::Verified;
//! use tower::{Layer, Service};
//!
//! let orders = tower::service_fn(|req: Request<()>| async move {
//!     let who = req.extensions().get::<Arc<Verified>>().map(|v| v.sub().to_owned());
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.unwrap_or_default()))))
//! });
//! let mut protected = RequireToken::new(verifier).scopes(&["orders:read"]).layer(orders);
//! let _answer = protected.call(Request::new(())).await;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::routes::verify::{decide_token, token_of};
use crate::verifier::{Verified, Verifier};

/// The layer: which verifier decides, and which scopes every request needs.
#[derive(Debug, Clone)]
pub struct RequireToken {
    verifier: Arc<Verifier>,
    scopes: Arc<[String]>,
}

impl RequireToken {
    /// Requires a token `verifier` accepts, with no particular scope.
    pub fn new(verifier: Arc<Verifier>) -> RequireToken {
        RequireToken {
            verifier,
            scopes: Arc::from([]),
        }
    }

    /// Also requires each of `scopes` (a 403 `insufficient_scope` names them).
    #[must_use]
    pub fn scopes(mut self, scopes: &[&str]) -> RequireToken {
        self.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireToken`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    layer: RequireToken,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireTokenService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready handles this request; the fresh
        // clone stays for the next `poll_ready` (tower's usual swap).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let layer = self.layer.clone();
        Box::pin(async move {
            let decided = match token_of(&layer.verifier, req.headers()) {
                Ok(token) => decide_token(&layer.verifier, token, layer.scopes.to_vec()).await,
                Err(denial) => Err(denial),
            };
            match decided {
                Ok(verified) => {
                    req.extensions_mut().insert::<Arc<Verified>>(verified);
                    inner.call(req).await
                }
                Err(denial) => Ok(denial
                    .into_response(crate::routes::verify::Answers::Full)
                    .map(|_| ResBody::default())),
            }
        })
    }
}
