//! The accept loop's metrics, the same in every service.

use metrics::{describe_counter, describe_gauge, Unit};

/// `keyshift_http_connections_open`: connections open now, per listener
/// summed (gauge).
pub const CONNECTIONS_OPEN: &str = "keyshift_http_connections_open";
/// `keyshift_http_connections_rejected_total`: connections closed at once
/// because the listener was at [`crate::Limits::max_connections`].
pub const CONNECTIONS_REJECTED: &str = "keyshift_http_connections_rejected_total";

/// Registers help text; the services' `describe()` call it.
pub fn describe() {
    describe_gauge!(CONNECTIONS_OPEN, Unit::Count, "HTTP connections open now.");
    describe_counter!(
        CONNECTIONS_REJECTED,
        Unit::Count,
        "Connections closed on accept because the connection cap (max_connections) was reached."
    );
}
