//! A Rust resource server that embeds keyshift's verifier instead of asking
//! a forward-auth endpoint: `GET /orders` needs a token with scope
//! `orders:read`, whatever phase the config file is in (HS256 by the shared
//! secret, RS256 by the JWKS, the legacy profile if configured).
//!
//! ```sh
//! cargo run -p keyshift-verifier --example protected_route -- keyshift.toml 127.0.0.1:3000
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/orders
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keyshift_core::clock::system_clock;
use keyshift_core::Config;
use keyshift_verifier::layer::RequireToken;
use keyshift_verifier::{Verified, Verifier};
use tower::Layer;

/// The protected route; the layer put the verified token in the extensions.
async fn orders<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    match (req.uri().path(), req.extensions().get::<Arc<Verified>>()) {
        ("/orders", Some(token)) => {
            *resp.body_mut() = Full::new(Bytes::from(format!(
                "orders of {} (client {}, {})\n",
                token.sub(),
                token.client_id(),
                token.alg
            )));
        }
        _ => *resp.status_mut() = StatusCode::NOT_FOUND,
    }
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = args
        .next()
        .ok_or("usage: protected_route CONFIG [LISTEN]")?;
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let config = Config::load(config.as_ref())?;
    let section = config.require_verifier()?;
    let verifier = Arc::new(Verifier::new(
        config.phase,
        section,
        section.load_secrets()?,
        system_clock(),
    )?);
    tokio::spawn(verifier.clone().run_refresher());
    let layer = RequireToken::new(verifier).scopes(&["orders:read"]);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "protected_route listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let svc = TowerToHyperService::new(layer.layer(tower::service_fn(orders)));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc),
        );
    }
}
