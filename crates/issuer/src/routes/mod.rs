//! The issuer's routes, one module each.

pub mod jwks;
pub mod metadata;
pub mod migration;
pub mod token;
