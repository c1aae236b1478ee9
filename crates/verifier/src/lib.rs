//! keyshift-verifier: verifies HS256 and/or RS256 access tokens per the
//! migration phase, with a JWKS cache that survives outages and unknown-kid
//! floods, and serves forward-auth for nginx, Traefik and Envoy.
//!
//! Layout:
//! - [`verifier`]: the [`Verifier`] (usable alone by a Rust service);
//! - [`jws`], [`claims`], [`policy`]: strict parsing and RFC 8725 checks;
//! - [`legacy`]: the legacy profile, a second reading of HS256 tokens the
//!   strict rules refuse (`[verifier.legacy]`);
//! - [`jwks`]: the JWKS cache and fetcher; [`token_cache`]: verified tokens;
//! - [`migration`]: readiness for phase 3, from this verifier's observations and
//!   [`authority`] (the issuer's `/migration`); [`stragglers`]: clients refused
//!   as `alg_disabled`; [`metrics`]: metric names and handles;
//! - [`service`], [`routes`]: the hyper service and `run`;
//! - [`layer`]: [`layer::RequireToken`], a `tower::Layer` for Rust resource
//!   servers that embed the verifier.
//! - [`grpc`]: Envoy's gRPC ext_authz `Check`, on its own listener.
//!
//! ```no_run
//! # async fn demo(cfg: keyshift_core::Config) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let section = cfg.require_verifier()?;
//! let verifier = Arc::new(keyshift_verifier::Verifier::new(
//!     cfg.phase,
//!     section,
//!     section.load_secrets()?,
//!     keyshift_core::clock::system_clock(),
//! )?);
//! tokio::spawn(verifier.clone().run_refresher());
//! let claims = verifier.verify("eyJ...").await?;
//! println!("{} may {}", claims.client_id(), claims.scope());
//! # Ok(()) }
//! ```

pub mod authority;
pub mod claims;
pub mod error;
pub mod grpc;
pub mod jwks;
pub mod jws;
pub mod layer;
pub mod legacy;
pub mod metrics;
pub mod migration;
pub mod policy;
pub mod routes;
pub mod service;
pub mod stragglers;
pub mod token_cache;
pub mod verifier;

pub use error::VerifyError;
pub use keyshift_http::ops::RenderMetrics;
pub use service::{run, run_with, State, VerifierService};
pub use verifier::{BuildError, Verified, Verifier};
