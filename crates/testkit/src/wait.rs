//! Bounded polling, for what a test cannot be told directly (another
//! process, real I/O). Never for logic that takes a clock: move the clock.

use std::time::{Duration, Instant};

/// How often a condition is looked at.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it holds or `limit` has passed (then one last look);
/// whether it held. Blocks the thread between looks.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(EVERY));
    }
}

/// [`eventually`] for async tests: sleeps on the tokio timer between looks,
/// so the runtime keeps running the tasks the test waits for.
pub async fn eventually_async(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(left.min(EVERY)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_never_holds_is_given_up_on_after_the_limit() {
        let started = Instant::now();
        let mut looks = 0;
        assert!(!eventually(Duration::from_millis(60), || {
            looks += 1;
            false
        }));
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(looks >= 2, "looked again before giving up: {looks}");
        let mut n = 0;
        assert!(eventually(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
    }
}
