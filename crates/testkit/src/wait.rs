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
        match next_look(check(), deadline) {
            Next::Done(held) => return held,
            Next::After(pause) => std::thread::sleep(pause),
        }
    }
}

/// [`eventually`] for async tests: sleeps on the tokio timer between looks,
/// so the runtime keeps running the tasks the test waits for.
pub async fn eventually_async(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match next_look(check(), deadline) {
            Next::Done(held) => return held,
            Next::After(pause) => tokio::time::sleep(pause).await,
        }
    }
}

/// What follows a look.
enum Next {
    /// Stop: whether the condition held.
    Done(bool),
    /// Look again after this pause.
    After(Duration),
}

/// The one polling rule: stop when the condition held or the time is up,
/// else look again after [`EVERY`] (or what is left of the time).
fn next_look(held: bool, deadline: Instant) -> Next {
    let left = deadline.saturating_duration_since(Instant::now());
    if held || left.is_zero() {
        Next::Done(held)
    } else {
        Next::After(left.min(EVERY))
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
