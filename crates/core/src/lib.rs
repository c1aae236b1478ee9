//! keyshift-core: the vocabulary both services share.
//!
//! - [`phase`]: the migration [`Phase`] and the algorithms ([`Alg`]) it signs and accepts;
//! - [`config`]: the TOML config file, parsed then validated;
//! - [`claims`]: the access token's header and claims (RFC 9068);
//! - [`jwk`]: RSA public JWKs, JWK Sets and RFC 7638 thumbprints;
//! - [`secret`]: the shared HS256 secret and client secret hashes;
//! - [`clock`]: wall-clock time behind a trait, so tests can move it;
//! - [`fs`]: atomic file replacement;
//! - [`migration`]: the issuer's `/migration` answer, which verifiers read;
//! - [`phase_metrics`], [`ops_metrics`]: what both services export about their phase, their
//!   build and their config reloads (via the `metrics` facade);
//! - [`duration`] and [`b64`]: small codecs; [`error::chain`]: an error and its causes on one line.
//!
//! No async runtime, no HTTP, no metrics exporter lives here (only the `metrics` facade).
//!
//! ```
//! use keyshift_core::{Alg, Phase};
//! assert_eq!(Phase::Transition.signs(), Alg::Rs256);
//! assert!(Phase::Transition.accepts(Alg::Hs256));
//! assert!(!Phase::Asymmetric.accepts(Alg::Hs256));
//! ```

pub mod b64;
pub mod claims;
pub mod clock;
pub mod config;
pub mod duration;
pub mod error;
pub mod fs;
pub mod jwk;
pub mod migration;
pub mod ops_metrics;
pub mod phase;
pub mod phase_metrics;
pub mod secret;
pub mod watch;

pub use clock::{Clock, SharedClock};
pub use config::{Config, ConfigError};
pub use phase::{AcceptSet, Alg, Phase};
