//! A loopback HTTP proxy between the verifier and the issuer's JWKS, which
//! the harness can switch into an outage (503) to prove the verifier keeps
//! serving from its cache. Its client has the harness's timeouts, so a stuck
//! issuer answers 502 instead of holding the verifier's fetch; a 502 means
//! the harness broke the verifier's JWKS path, and fails the phase.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

/// The proxy's switch and counters.
#[derive(Debug, Default)]
pub struct ProxyControl {
    /// While true, every request gets 503 (see [`ProxyControl::set_outage`]).
    outage: AtomicBool,
    /// Times the outage was switched on or off.
    outage_switches: AtomicU64,
    /// Requests seen.
    pub requests: AtomicU64,
    /// 503s served during outages.
    pub served_503: AtomicU64,
    /// 502s served (upstream unreachable or its body failed).
    pub served_502: AtomicU64,
}

/// What the proxy served over a phase (`summary.json`'s `jwks_proxy`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Requests received: the verifier's JWKS fetches.
    pub requests: u64,
    /// 503s served during the outage.
    pub served_503: u64,
    /// 502s served (the issuer unreachable or its body cut); must be 0.
    pub served_502: u64,
}

impl ProxyCounts {
    /// `self - earlier`.
    pub fn since(self, earlier: ProxyCounts) -> ProxyCounts {
        ProxyCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            served_503: self.served_503.saturating_sub(earlier.served_503),
            served_502: self.served_502.saturating_sub(earlier.served_502),
        }
    }
}

/// The outage switch as seen at one instant: two marks tell whether an
/// outage was on at any time between them ([`OutageMark::overlaps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageMark {
    on: bool,
    switches: u64,
}

impl OutageMark {
    /// Whether the outage was on at some time from `self` to `later`: on at
    /// either end, or switched in between (an outage shorter than the span).
    pub fn overlaps(self, later: OutageMark) -> bool {
        self.on || later.on || self.switches != later.switches
    }
}

impl ProxyControl {
    /// Starts (`true`) or ends the outage.
    pub fn set_outage(&self, on: bool) {
        if self.outage.swap(on, Ordering::SeqCst) != on {
            self.outage_switches.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The switch now.
    pub fn outage_mark(&self) -> OutageMark {
        // Switches first: a switch between the two loads shows as a change
        // against a later mark, never as a missed one.
        let switches = self.outage_switches.load(Ordering::SeqCst);
        OutageMark {
            on: self.outage.load(Ordering::SeqCst),
            switches,
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            requests: self.requests.load(Ordering::Relaxed),
            served_503: self.served_503.load(Ordering::Relaxed),
            served_502: self.served_502.load(Ordering::Relaxed),
        }
    }
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
    // reqwest and hyper share the `http` crate: statuses and header values
    // pass through as they are.
    if let Some(tag) = req.headers().get(IF_NONE_MATCH) {
        upstream_req = upstream_req.header(IF_NONE_MATCH, tag.clone());
    }
    drop(req.into_body().collect().await);
    let Ok(resp) = upstream_req.send().await else {
        return bad_gateway();
    };
    let code = resp.status();
    let headers: Vec<_> = [CACHE_CONTROL, ETAG, CONTENT_TYPE]
        .into_iter()
        .filter_map(|name| {
            let value = resp.headers().get(&name)?.clone();
            Some((name, value))
        })
        .collect();
    // A body that fails half-way must not reach the verifier as an empty
    // 200: that would be a proxy fault dressed as an issuer answer.
    let Ok(body) = resp.bytes().await else {
        return bad_gateway();
    };
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = code;
    out.headers_mut().extend(headers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::upstream;

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
        let up = upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncache-control: max-age=1\r\netag: \"v1\"\r\nx-other: 1\r\nconnection: close\r\n\r\n{}").await;
        let control = Arc::new(ProxyControl::default());
        let proxy = start(up, control.clone()).await.expect("proxy");
        let resp = crate::http::client()
            .expect("client")
            .get(format!("http://{proxy}/.well-known/jwks.json"))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CACHE_CONTROL], "max-age=1");
        assert_eq!(resp.headers()[ETAG], "\"v1\"");
        assert!(
            resp.headers().get("x-other").is_none(),
            "only the JWKS headers pass"
        );
        let before = control.counts();
        control.set_outage(true);
        assert_eq!(status_via(proxy).await, 503);
        assert_eq!(control.served_503.load(Ordering::Relaxed), 1);
        assert_eq!(control.requests.load(Ordering::Relaxed), 2);
        assert_eq!(
            control.counts().since(before),
            ProxyCounts {
                requests: 1,
                served_503: 1,
                served_502: 0
            }
        );
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

    #[test]
    fn marks_tell_whether_an_outage_touched_the_time_between_them() {
        let control = ProxyControl::default();
        let quiet = control.outage_mark();
        assert!(!quiet.overlaps(control.outage_mark()), "no outage at all");
        control.set_outage(true);
        let during = control.outage_mark();
        assert!(quiet.overlaps(during), "it began in between");
        control.set_outage(true);
        assert_eq!(
            control.outage_mark(),
            during,
            "switching it on again is no switch"
        );
        control.set_outage(false);
        let after = control.outage_mark();
        assert!(during.overlaps(after), "on at the start");
        assert!(quiet.overlaps(after), "began and ended in between");
        assert!(!after.overlaps(control.outage_mark()), "over before");
    }
}
