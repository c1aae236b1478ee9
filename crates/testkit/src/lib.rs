//! keyshift-testkit: what keyshift's tests and its load-test harness share,
//! written once.
//!
//! - [`config`]: a keyshift config file built in code ([`ConfigToml`]), its
//!   phase a [`Phase`](keyshift_core::Phase), never a string;
//! - [`process`]: a service started on `127.0.0.1:0`, its address read from
//!   its `listening on http://ADDR` line, its log kept, stopped on drop
//!   ([`Service`]);
//! - [`prom`]: the Prometheus text exposition, parsed;
//! - [`jwt`]: a JWT's JOSE header, read without checking anything;
//! - [`wait`]: bounded polling, for what a test cannot be told directly;
//! - [`net`]: a fixed loopback port, for the one child that refuses port 0.
//!
//! The product crates take it as a dev-dependency only; `keyshift-loadtest`
//! also uses it at run time (docs/decisions.md says why).
//!
//! ```
//! use keyshift_core::Phase;
//! use keyshift_testkit::{Client, ConfigToml};
//!
//! let text = ConfigToml::new(Phase::Dual)
//!     .issuer("issuer", "http://127.0.0.1")
//!     .issuer("audience", "https://api.test")
//!     .client(Client::sha256("svc-a", b"s3cret", &["read"]))
//!     .render();
//! assert!(text.starts_with("phase = \"dual\"\n"));
//! assert!(text.contains("\n[[issuer.clients]]\nid = \"svc-a\"\n"));
//! ```

pub mod config;
pub mod jwt;
pub mod net;
pub mod process;
pub mod prom;
pub mod tls;
pub mod wait;

pub use config::{Client, ConfigToml};
pub use process::{Log, Service, StartError};
pub use wait::{eventually, eventually_async};
