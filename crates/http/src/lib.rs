//! keyshift-http: the accept loop every service shares. One hyper
//! connection task per socket (HTTP/1.1; over [TLS](tls), HTTP/2 where ALPN
//! picks it), a header read timeout, and on shutdown a graceful drain
//! bounded by [`DRAIN_TIMEOUT`]; [`serve_proxy_protocol`]
//! reads a [PROXY protocol](proxy_protocol) header first, on listeners that
//! a proxy sending one fronts.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! keyshift_http::serve(listener, keyshift_http::Limits::default(), |_peer| {
//!     hyper::service::service_fn(|_req| async {
//!         Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hi"))))
//!     })
//! }, std::future::pending()).await;
//! # Ok(()) }
//! ```

pub mod body;
pub mod metrics;
pub mod ops;
pub mod proxy_protocol;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};

use crate::tls::ServerTls;

/// A request handler that never fails at the HTTP level: every outcome,
/// errors included, is a response.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, req: Request<Incoming>) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// Adapts a [`Handler`] to hyper's `Service` without boxing: the future is
/// the handler's own (hyper's `service_fn` keeps its type), so a request
/// costs no allocation here.
pub fn service<H: Handler>(
    handler: H,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> {
    hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.call(req).await) }
    })
}

/// How long in-flight requests get to finish after shutdown is asked.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request headers; also how long a
/// keep-alive connection may sit idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of request line and headers read before answering 431:
/// room for the largest token `verifier.max_token_bytes` allows (64 KiB)
/// beside ordinary headers, far below hyper's default of ~400 KiB per
/// connection.
pub const MAX_HEADER_BYTES: usize = 96 * 1024;
/// The most request headers parsed before answering 431: hyper's default,
/// kept (setting another moves the headers of every request to the heap).
pub const MAX_HEADERS: usize = 100;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once. A connection past it is closed as
    /// soon as it is accepted (counted in
    /// `keyshift_http_connections_rejected_total`, logged at most every
    /// 10 s): the process keeps its memory and file descriptors, and the
    /// front proxy or load balancer retries elsewhere.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

pub use keyshift_core::config::DEFAULT_MAX_CONNECTIONS;

/// A bound listener and, when it serves TLS, its certificate.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    tls: Option<Arc<ServerTls>>,
}

impl Listener {
    /// A listener that speaks TLS (HTTP/2 or HTTP/1.1 by ALPN) with `tls`.
    pub fn tls(tcp: TcpListener, tls: Arc<ServerTls>) -> Listener {
        Listener {
            tcp,
            tls: Some(tls),
        }
    }
}

impl From<TcpListener> for Listener {
    /// A plain HTTP/1.1 listener.
    fn from(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }
}

/// Serves connections until `shutdown` resolves, then stops accepting and
/// drains open connections for at most [`DRAIN_TIMEOUT`]. `make` builds the
/// service of one connection from the peer address.
pub async fn serve<M, S, B>(
    listener: impl Into<Listener>,
    limits: Limits,
    make: M,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn(SocketAddr) -> S,
    S: ConnService<B>,
    B: ConnBody,
{
    let Listener { tcp, tls } = listener.into();
    let protocols = Arc::new(Protocols::new());
    accept_loop(tcp, limits, shutdown, |stream, peer, watcher| {
        let service = make(peer);
        let (protocols, tls) = (protocols.clone(), tls.clone());
        async move {
            serve_stream(stream, peer, tls.as_deref(), &protocols, service, watcher).await;
        }
    })
    .await;
}

/// [`serve`] for a listener that only a proxy speaking the PROXY protocol
/// (version 2) reaches: each connection must start with a PROXY header,
/// read within [`HEADER_READ_TIMEOUT`] before hyper (or the TLS handshake)
/// sees a byte. `make` gets the socket peer and the source address the
/// header names (`None` for a LOCAL command, the proxy's own health
/// checks); the caller decides whether that peer is trusted to say it. A
/// connection without a valid header is closed unanswered.
pub async fn serve_proxy_protocol<M, S, B>(
    listener: impl Into<Listener>,
    limits: Limits,
    make: M,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn(SocketAddr, Option<SocketAddr>) -> S + Send + Sync + 'static,
    S: ConnService<B>,
    B: ConnBody,
{
    let Listener { tcp, tls } = listener.into();
    let protocols = Arc::new(Protocols::new());
    let make = Arc::new(make);
    accept_loop(tcp, limits, shutdown, |mut stream, peer, watcher| {
        let (protocols, make, tls) = (protocols.clone(), make.clone(), tls.clone());
        async move {
            let header =
                tokio::time::timeout(HEADER_READ_TIMEOUT, proxy_protocol::read_v2(&mut stream))
                    .await;
            let source = match header {
                Ok(Ok(source)) => source,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "connection without a valid PROXY header closed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no PROXY header within the header read timeout");
                    return;
                }
            };
            let service = make(peer, source);
            serve_stream(stream, peer, tls.as_deref(), &protocols, service, watcher).await;
        }
    })
    .await;
}

/// The HTTP/1.1 and HTTP/2 connection settings of every listener.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Protocols {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_header_size(MAX_HEADER_BYTES)
            .timer(TokioTimer::new());
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(Some(HEADER_READ_TIMEOUT))
            .keep_alive_timeout(HEADER_READ_TIMEOUT);
        Protocols { http1, http2 }
    }
}

/// The error type hyper takes from services and bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection's service as hyper's HTTP/1.1 and HTTP/2 connections need
/// it; every `Service` with these bounds is one.
pub trait ConnService<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Send
    + 'static
{
}

impl<S, B> ConnService<B> for S
where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
}

/// A response body as hyper's connections need it; every `Body` with these
/// bounds is one.
pub trait ConnBody: hyper::body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> ConnBody for B
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
}

/// Most requests in flight on one HTTP/2 connection (hyper's default,
/// written down): with [`Limits::max_connections`] it bounds the requests
/// a listener holds at once.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// Serves one accepted connection: the TLS handshake first, within
/// [`HEADER_READ_TIMEOUT`], when the listener has TLS; then HTTP/2 when
/// ALPN chose it, else HTTP/1.1.
async fn serve_stream<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&ServerTls>,
    protocols: &Protocols,
    service: S,
    watcher: Watcher,
) where
    S: ConnService<B>,
    B: ConnBody,
{
    let Some(tls) = tls else {
        serve_io(stream, false, protocols, service, watcher).await;
        return;
    };
    let stream =
        match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no TLS handshake within the header read timeout");
                return;
            }
        };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2);
    serve_io(stream, h2, protocols, service, watcher).await;
}

async fn serve_io<I, S, B>(io: I, h2: bool, protocols: &Protocols, service: S, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B>,
    B: ConnBody,
{
    let io = TokioIo::new(io);
    let result = if h2 {
        watcher
            .watch(protocols.http2.serve_connection(io, service))
            .await
    } else {
        watcher
            .watch(protocols.http1.serve_connection(io, service))
            .await
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Accepts until `shutdown`, within the connection cap, and runs each
/// connection's future (`start`) in its own task holding a slot; then drains.
async fn accept_loop<C, F>(
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    mut start: C,
) where
    C: FnMut(TcpStream, SocketAddr, Watcher) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let open = ::metrics::gauge!(metrics::CONNECTIONS_OPEN);
    let rejected = ::metrics::counter!(metrics::CONNECTIONS_REJECTED);
    let mut last_warning: Option<std::time::Instant> = None;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    rejected.increment(1);
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        last_warning = Some(std::time::Instant::now());
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "connection cap reached: closing new connections until some end"
                        );
                    }
                    continue;
                };
                open.increment(1.0);
                let _ = stream.set_nodelay(true);
                let conn = start(stream, peer, graceful.watcher());
                let open = open.clone();
                tokio::spawn(async move {
                    conn.await;
                    open.decrement(1.0);
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}
