//! A loopback HTTP proxy between the verifier and the issuer's JWKS, which
//! the harness can switch into an outage (503) to prove the verifier keeps
//! serving from its cache.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The proxy's switch and counter.
#[derive(Debug, Default)]
pub struct ProxyControl {
    /// While true, every request gets 503.
    pub outage: AtomicBool,
    /// Requests seen.
    pub requests: AtomicU64,
}

/// Starts the proxy on 127.0.0.1:0 in front of `upstream`; returns its address.
pub async fn start(upstream: SocketAddr, control: Arc<ProxyControl>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let (control, client) = (control.clone(), client.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (control, client) = (control.clone(), client.clone());
                    async move {
                        control.requests.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(forward(&control, &client, upstream, req).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn forward(
    control: &ProxyControl,
    client: &reqwest::Client,
    upstream: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let status = |code: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = code;
        r
    };
    if control.outage.load(Ordering::Relaxed) {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let url = format!("http://{upstream}{}", req.uri().path());
    let mut upstream_req = client.get(url);
    if let Some(tag) = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
    {
        upstream_req = upstream_req.header("if-none-match", tag);
    }
    drop(req.into_body().collect().await);
    let Ok(resp) = upstream_req.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let code = resp.status().as_u16();
    let headers: Vec<(String, String)> = ["cache-control", "etag", "content-type"]
        .iter()
        .filter_map(|h| {
            resp.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*h).to_owned(), v.to_owned()))
        })
        .collect();
    let body = resp.bytes().await.unwrap_or_default();
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::try_from(k),
            hyper::header::HeaderValue::try_from(v),
        ) {
            out.headers_mut().insert(k, v);
        }
    }
    out
}
