//! Loopback ports. Services under test bind `127.0.0.1:0` and say where
//! they listen (see [`process`](crate::process)); in-process servers bind
//! port 0 and are handed the listener. This is for the one child that
//! refuses port 0 because the port goes into URLs it prints (`keyshift dev`).

use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port [`unused_fixed_port`] hands out.
const LOWEST: u16 = 20_000;

/// Where Linux starts handing out ephemeral ports unless told otherwise.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

/// A loopback port nothing listens on now, below the kernel's ephemeral
/// range: a port-0 bind (every other test's) is never given it, so between
/// this call and the child's bind only a program binding this very number
/// could take it. Successive calls in a process try different ports.
///
/// # Panics
///
/// If every port of the range is taken.
pub fn unused_fixed_port() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let end = ephemeral_start().max(LOWEST + 1);
    let span = u32::from(end - LOWEST);
    // Spread processes (test binaries run side by side) over the range.
    let start = std::process::id()
        .wrapping_mul(7_919)
        .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(101));
    (0..span)
        .filter_map(|i| u16::try_from((start.wrapping_add(i)) % span).ok())
        .map(|offset| LOWEST + offset)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .unwrap_or_else(|| panic!("no free loopback port in {LOWEST}..{end}"))
}

/// The first ephemeral port (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ports_are_free_below_the_ephemeral_range_and_differ() {
        let (a, b) = (unused_fixed_port(), unused_fixed_port());
        assert_ne!(a, b);
        for port in [a, b] {
            assert!((LOWEST..ephemeral_start().max(LOWEST + 1)).contains(&port));
        }
        // Free when handed out: bindable right after the call. Another
        // program on the machine may take any port between two calls (seen
        // once in CI), so a few fresh ports get the chance, not just one.
        let bindable = (0..5).any(|_| {
            let port = unused_fixed_port();
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        assert!(bindable, "no handed-out port was bindable in 5 tries");
    }
}
