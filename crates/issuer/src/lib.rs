//! keyshift-issuer (being written).
pub mod keystore;
pub mod rotation;
