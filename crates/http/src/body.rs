//! Reading a small request body into memory with a size cap and a deadline.
//!
//! hyper hands a body over in chunks that are slices of its connection read
//! buffer. A client that trickles one byte per TCP segment produces one
//! chunk per byte, and each chunk, while held, pins a whole read buffer
//! (kilobytes): collecting chunks (`http_body_util::Collected`) therefore
//! held about 4 KB of memory per byte received. [`read_capped`] copies each
//! chunk into one buffer of its own and drops the chunk at once, so what a
//! connection holds is bounded by the cap, whatever the chunking.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Buf};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body (declared or received) is longer than the cap.
    #[error("the request body is longer than {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// The whole body did not arrive within the deadline.
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
    /// The connection failed or the framing was broken while reading.
    #[error("could not read the request body")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reads `body` whole, at most `max` bytes, within `deadline`.
///
/// `declared` is the request's `Content-Length`, if any: a longer one is
/// refused before a byte is read, and a shorter one sizes the buffer.
/// Trailers are ignored.
pub async fn read_capped<B>(
    body: B,
    declared: Option<u64>,
    max: usize,
    deadline: Duration,
) -> Result<Vec<u8>, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge { max });
    }
    let initial = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    tokio::time::timeout(deadline, read_into(body, initial, max))
        .await
        .map_err(|_elapsed| BodyError::TimedOut(deadline))?
}

async fn read_into<B>(body: B, initial: usize, max: usize) -> Result<Vec<u8>, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut out = Vec::with_capacity(initial);
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        if data.remaining() > max - out.len() {
            return Err(BodyError::TooLarge { max });
        }
        out.reserve_exact(data.remaining());
        while data.has_remaining() {
            let chunk = data.chunk();
            out.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
        // `data` (and the read buffer it pins) is dropped here.
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Frame;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    /// A chunk that owns a 4 KiB buffer (as a slice of hyper's read buffer
    /// does) and counts how many such chunks are alive.
    struct Pinned {
        buf: Vec<u8>,
        alive: Arc<AtomicUsize>,
    }
    impl AsRef<[u8]> for Pinned {
        fn as_ref(&self) -> &[u8] {
            &self.buf[..1]
        }
    }
    impl Drop for Pinned {
        fn drop(&mut self) {
            self.alive.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A body of `left` one-byte chunks, each pinning 4 KiB; `None` for
    /// `left` stalls forever instead.
    struct Trickle {
        left: Option<u32>,
        alive: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }
    impl Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let Some(left) = self.left else {
                return Poll::Pending;
            };
            if left == 0 {
                return Poll::Ready(None);
            }
            self.left = Some(left - 1);
            let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            buf[0] = b'a' + u8::try_from(left % 26).expect("small");
            let chunk = Bytes::from_owner(Pinned {
                buf,
                alive: self.alive.clone(),
            });
            Poll::Ready(Some(Ok(Frame::data(chunk))))
        }
    }

    fn trickle(left: Option<u32>) -> Trickle {
        Trickle {
            left,
            alive: Arc::default(),
            most: Arc::default(),
        }
    }

    #[tokio::test]
    async fn one_byte_chunks_are_not_held_while_reading() {
        let body = trickle(Some(2_000));
        let (alive, most) = (body.alive.clone(), body.most.clone());
        let out = read_capped(body, None, 16 * 1024, Duration::from_secs(5))
            .await
            .expect("read");
        assert_eq!(out.len(), 2_000);
        // Collecting would have held all 2,000 chunks (8 MiB); copying, one.
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn declared_and_received_lengths_over_the_cap_are_refused() {
        let small = || Full::new(Bytes::from_static(b"0123456789"));
        let ok = read_capped(small(), Some(10), 10, Duration::from_secs(1)).await;
        assert_eq!(ok.expect("fits"), b"0123456789");
        assert!(matches!(
            read_capped(small(), Some(11), 10, Duration::from_secs(1)).await,
            Err(BodyError::TooLarge { max: 10 })
        ));
        // No declared length (chunked): refused while streaming.
        assert!(matches!(
            read_capped(small(), None, 9, Duration::from_secs(1)).await,
            Err(BodyError::TooLarge { max: 9 })
        ));
        // A declared length that lies short is still capped by what arrives.
        assert!(matches!(
            read_capped(small(), Some(2), 9, Duration::from_secs(1)).await,
            Err(BodyError::TooLarge { max: 9 })
        ));
        // Trickled past the cap.
        assert!(matches!(
            read_capped(trickle(Some(100)), None, 99, Duration::from_secs(1)).await,
            Err(BodyError::TooLarge { max: 99 })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let r = read_capped(trickle(None), Some(10), 100, Duration::from_secs(10)).await;
        assert!(matches!(r, Err(BodyError::TimedOut(_))), "{r:?}");
    }
}
