//! The load client of `benches/forward-auth.sh`: one token, a number of
//! concurrent clients, against the verifier's gRPC `Check` or its HTTP
//! `/verify`; prints requests/s and p50/p99 (the script runs it once per
//! mode, reading the verifier's CPU time around each run).
//!
//! Usage: keyshift-authz-load grpc|http ADDR TOKEN [SECONDS] [CLIENTS]
//!
//! Each client is one connection (an HTTP/2 channel, or a keep-alive HTTP/1
//! connection) sending one request at a time, as a proxy's worker does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, addr, token, rest @ ..] = args.as_slice() else {
        return Err("usage: keyshift-authz-load grpc|http ADDR TOKEN [SECONDS] [CLIENTS]".into());
    };
    let secs: u64 = rest.first().map_or(Ok(10), |s| s.parse())?;
    let clients: usize = rest.get(1).map_or(Ok(16), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let run = Duration::from_secs(secs);
        match mode.as_str() {
            "grpc" => report(
                "gRPC Check",
                clients,
                load(clients, run, |_| grpc_client(addr.clone(), token.clone())).await?,
            ),
            "http" => report(
                "HTTP /verify",
                clients,
                load(clients, run, |_| http_client(addr.clone(), token.clone())).await?,
            ),
            other => return Err(format!("mode {other}: grpc or http").into()),
        }
        Ok(())
    })
}

/// One client's loop: a request, its latency, until `run` is over.
type Latencies = Vec<Duration>;

async fn load<F, Fut>(
    clients: usize,
    run: Duration,
    client: F,
) -> Result<(Duration, Latencies), BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Box<dyn FnMut() -> Pending + Send>, BoxError>>,
{
    let mut loops = Vec::new();
    for i in 0..clients {
        loops.push(client(i).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = loops
        .into_iter()
        .map(|mut send| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while started.elapsed() < run {
                    let t = Instant::now();
                    send().await?;
                    seen.push(t.elapsed());
                }
                Ok::<_, BoxError>(seen)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((started.elapsed(), all))
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send>>;

async fn grpc_client(
    addr: String,
    token: String,
) -> Result<Box<dyn FnMut() -> Pending + Send>, BoxError> {
    let client = AuthorizationClient::connect(format!("http://{addr}")).await?;
    let headers: HashMap<String, String> =
        [("authorization".to_owned(), format!("Bearer {token}"))].into();
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/orders/7".into(),
                    headers,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    };
    Ok(Box::new(move || {
        let mut client = client.clone();
        let request = request.clone();
        Box::pin(async move {
            let answer = client.check(request).await?.into_inner();
            match answer.status.map(|s| s.code) {
                Some(0) => Ok(()),
                other => Err(format!("Check answered {other:?}").into()),
            }
        })
    }))
}

async fn http_client(
    addr: String,
    token: String,
) -> Result<Box<dyn FnMut() -> Pending + Send>, BoxError> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
    let auth = format!("Bearer {token}");
    Ok(Box::new(move || {
        let sender = sender.clone();
        let request = hyper::Request::get("/verify")
            .header("host", "keyshift")
            .header("authorization", auth.as_str())
            .body(Empty::<Bytes>::new());
        Box::pin(async move {
            let request = request?;
            let mut sender = sender.lock().await;
            let resp = sender.send_request(request).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("/verify answered {status}").into())
            }
        })
    }))
}

fn report(name: &str, clients: usize, (elapsed, mut latencies): (Duration, Latencies)) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{name:<13} {clients} clients: {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  ({} requests)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
}
