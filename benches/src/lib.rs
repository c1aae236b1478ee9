//! What the benches in `benches/` share.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Polls a future that cannot wait (the verify fast path, a route that
/// never fetches) to completion; panics if it awaited, so a bench whose
/// path starts waiting fails instead of measuring something else.
pub fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fast path awaited"),
    }
}
