//! keyshift-verifier (being written).
