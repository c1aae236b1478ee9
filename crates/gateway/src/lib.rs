//! keyshift-gateway: a reverse proxy that verifies bearer tokens at the
//! edge with the same [`keyshift_verifier::Verifier`] as the verifier
//! service, and signs a fresh short-lived RS256 token with the issuer's
//! active key for the upstream: HS256 or RS256 in, RS256 out, so backends
//! can move to phase `asymmetric` before every client has.
//!
//! Layout:
//! - [`route`]: route matching (host, longest path prefix) and upstream URIs;
//! - [`headers`]: RFC 9110 proxy header rewriting;
//! - [`keys`]: the issuer's active key, followed across rotations (read only);
//! - [`sign`]: tokens signed for upstreams and their cache;
//! - [`service`]: the hyper service, the upstream client and `run`;
//! - [`metrics`]: metric names and per-route handles.
//!
//! ```no_run
//! # async fn demo(cfg: keyshift_core::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let gateway = cfg.require_gateway()?;
//! let keys = Arc::new(keyshift_gateway::keys::ActiveKey::open(&gateway.key_dir)?);
//! let state = Arc::new(keyshift_gateway::State::new(
//!     gateway,
//!     None,
//!     Some(keys),
//!     keyshift_core::clock::system_clock(),
//!     Arc::new(String::new),
//! ));
//! let listener = tokio::net::TcpListener::bind(gateway.listen).await?;
//! keyshift_gateway::run(
//!     listener,
//!     state,
//!     keyshift_http::ops::Exposure::All,
//!     keyshift_http::Limits::default(),
//!     std::future::pending(),
//! )
//! .await;
//! # Ok(()) }
//! ```

pub mod headers;
pub mod keys;
pub mod metrics;
pub mod route;
pub mod service;
pub mod sign;

pub use service::{handle, run, Body, State};
