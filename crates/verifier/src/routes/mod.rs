//! The verifier's routes, one module each.

pub mod ops;
pub mod verify;
