//! A loopback HTTP proxy between the verifier and the issuer's JWKS, which
//! the harness can switch into an outage (503) to prove the verifier keeps
//! serving from its cache. Its client has the harness's timeouts, so a stuck
//! issuer answers 502 instead of holding the verifier's fetch.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The proxy's switch and counters.
#[derive(Debug, Default)]
pub struct ProxyControl {
    /// While true, every request gets 503.
    pub outage: AtomicBool,
    /// Requests seen.
    pub requests: AtomicU64,
    /// 503s served during outages.
    pub served_503: AtomicU64,
    /// 502s served (upstream unreachable or its body failed).
    pub served_502: AtomicU64,
}

/// Starts the proxy on 127.0.0.1:0 in front of `upstream`; returns its address.
pub async fn start(upstream: SocketAddr, control: Arc<ProxyControl>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = crate::http::client()?;
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
        control.served_503.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let bad_gateway = || {
        control.served_502.fetch_add(1, Ordering::Relaxed);
        status(StatusCode::BAD_GATEWAY)
    };
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
        return bad_gateway();
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
    // A body that fails half-way must not reach the verifier as an empty
    // 200: that would be a proxy fault dressed as an issuer answer.
    let Ok(body) = resp.bytes().await else {
        return bad_gateway();
    };
    let Ok(code) = StatusCode::from_u16(code) else {
        return bad_gateway();
    };
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = code;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that answers every connection with `response` and closes.
    async fn upstream(response: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for _ in 0..8 {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    async fn status_via(proxy: SocketAddr) -> u16 {
        crate::http::client()
            .expect("client")
            .get(format!("http://{proxy}/.well-known/jwks.json"))
            .send()
            .await
            .expect("proxy answers")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn passes_answers_through_and_serves_503_during_an_outage() {
        let up = upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: max-age=1\r\nconnection: close\r\n\r\n{}").await;
        let control = Arc::new(ProxyControl::default());
        let proxy = start(up, control.clone()).await.expect("proxy");
        assert_eq!(status_via(proxy).await, 200);
        control.outage.store(true, Ordering::Relaxed);
        assert_eq!(status_via(proxy).await, 503);
        assert_eq!(control.served_503.load(Ordering::Relaxed), 1);
        assert_eq!(control.requests.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_truncated_upstream_body_is_a_502_not_an_empty_200() {
        let up = upstream(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"keys\"",
        )
        .await;
        let control = Arc::new(ProxyControl::default());
        let proxy = start(up, control.clone()).await.expect("proxy");
        assert_eq!(status_via(proxy).await, 502);
        assert_eq!(control.served_502.load(Ordering::Relaxed), 1);
    }
}
