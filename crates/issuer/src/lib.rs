//! keyshift-issuer: the OAuth2 client-credentials token endpoint that signs
//! HS256 or RS256 according to the migration phase, publishes its RSA public
//! keys as a JWKS, and rotates them without ever breaking a verifier.
//!
//! Layout:
//! - [`keystore`]: the key directory (PKCS#8 PEM 0600, manifest, atomic writes, lock);
//! - [`ledger`]: the record of HS256 tokens minted, the authority on HS256's end;
//! - [`rotation`]: the pure rotation schedule (`next` → `active` → `retiring` → `retired`);
//! - [`mint`]: token signing with keys parsed once;
//! - [`form`], [`auth`], [`ratelimit`]: the token request, client authentication, failure limiting;
//! - [`forwarded`]: the client address behind `issuer.trusted_proxies`;
//! - [`issuer`]: the live snapshot swapped on reload and rotation;
//! - [`routes`], [`service`]: the hyper service and `run`;
//! - [`metrics`], [`error`]: metric names, the one error type.
//!
//! ```no_run
//! # async fn demo(cfg: keyshift_core::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let issuer_cfg = cfg.require_issuer()?.clone();
//! let issuer = keyshift_issuer::Issuer::start(
//!     cfg.phase,
//!     issuer_cfg.clone(),
//!     keyshift_core::clock::system_clock(),
//!     Arc::new(String::new),
//! ).await?;
//! let listener = tokio::net::TcpListener::bind(issuer_cfg.listen).await?;
//! keyshift_issuer::run(listener, Arc::new(issuer), std::future::pending()).await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod error;
pub mod form;
pub mod forwarded;
pub mod issuer;
pub mod keystore;
pub mod ledger;
pub mod metrics;
pub mod mint;
pub mod ratelimit;
pub mod rotation;
pub mod routes;
pub mod service;

pub use error::IssuerError;
pub use issuer::{Issuer, Live, StartError};
pub use keyshift_http::ops::RenderMetrics;
pub use service::{run, run_proxy_protocol, run_with, IssuerService};
