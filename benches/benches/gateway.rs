//! The gateway's per-request work with a cached signed token, without
//! sockets: route match, the client's token verified (token-cache hit), the
//! request's headers rewritten (hop-by-hop, identity, `X-Forwarded-*`), the
//! RS256 token for the upstream taken from the signed-token cache, and the
//! upstream URI built. That is everything `keyshift_gateway::handle` does
//! before the upstream exchange, composed from the crate's public pieces in
//! its order (`handle` itself takes a `Request<hyper::body::Incoming>` and
//! sends through a pooled TCP client, so it cannot run without sockets).
//! Beside it, the same request when the cache misses: an RS256 signature.
//!
//! `cargo bench -p keyshift-benches --bench gateway`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Uri};
use keyshift_benches::now_or_never;
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Config, Phase};
use keyshift_gateway::headers;
use keyshift_gateway::keys::ActiveKey;
use keyshift_gateway::route::Router;
use keyshift_gateway::sign::{Identity, SignedTokens};
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::mint::{Signer, TokenRequest, TokenTemplate};
use keyshift_verifier::Verifier;

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://api.example.com";

/// A config with a `[verifier]` in phase dual and one verify-and-sign route.
fn config(key_dir: &std::path::Path) -> Config {
    let text = format!(
        "phase = \"dual\"\n[verifier]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n\
         jwks_url = \"http://127.0.0.1:9/jwks.json\"\nhs256_secret_file = \"unused\"\n\
         [gateway]\nkey_dir = \"{}\"\nissuer = \"{ISS}\"\n\
         [[gateway.routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\n\
         upstream = \"http://127.0.0.1:9000\"\nverify = true\nsign = true\n\
         audience = \"https://orders.internal\"\n",
        key_dir.display()
    );
    Config::from_toml_str(&text, std::path::Path::new("/tmp")).expect("config")
}

/// A client request as the gateway receives it.
fn client_headers(auth: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_static("api.example.com"));
    h.insert(AUTHORIZATION, auth.clone());
    h.insert("connection", HeaderValue::from_static("keep-alive"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
    h
}

fn gateway(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = SystemClock.now_secs();
    KeyStore::new(dir.path())
        .generate_next(now, 2048)
        .expect("first key: active");
    let cfg = config(dir.path());
    let gw = cfg.require_gateway().expect("[gateway]");
    let secret = HmacSecret::new(vec![0x42; 32]).expect("secret");
    let verifier = Verifier::new(
        Phase::Dual,
        cfg.require_verifier().expect("[verifier]"),
        Some(secret.clone()),
        keyshift_core::clock::system_clock(),
    )
    .expect("verifier");
    let keys = Arc::new(ActiveKey::open(&gw.key_dir).expect("active key"));
    let router = Router::new(gw.routes.clone(), gw.issuer.as_deref().unwrap_or_default());
    let tokens = SignedTokens::new(keyshift_gateway::sign::CACHE_ENTRIES);

    let template = TokenTemplate::new(ISS, AUD, Duration::from_secs(3600));
    let req = TokenRequest {
        client_id: "svc-orders",
        scope: "orders:read orders:write",
        now,
    };
    let (token, _) = Signer::hs256(&secret).mint(&template, req).expect("hs");
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let uri: Uri = "/orders/42?expand=items".parse().expect("uri");
    let peer: IpAddr = "127.0.0.1".parse().expect("ip");

    // One request up to the upstream exchange, its RS256 token from `tokens`.
    let request = |tokens: &SignedTokens| {
        let mut h = client_headers(&auth);
        let host = h.get(HOST).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let route = router.find(host.as_deref(), uri.path()).expect("route");
        let token = h
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .expect("bearer");
        let scopes: Vec<&str> = route.scopes.iter().map(String::as_str).collect();
        let verified = now_or_never(verifier.verify_with_scopes(token, &scopes)).expect("accepted");
        headers::strip_hop_by_hop(&mut h);
        headers::strip_identity(&mut h);
        h.remove(AUTHORIZATION);
        let spec = route.sign.as_ref().expect("signing route");
        let signer = keys.signer().expect("signer");
        let who = Identity {
            sub: verified.sub(),
            client_id: verified.client_id(),
            scope: verified.scope(),
            not_after: Some(verified.exp),
        };
        let (value, signed) = tokens
            .get(&signer, spec, who, SystemClock.now_secs())
            .expect("signed");
        h.insert(AUTHORIZATION, value);
        headers::forward_request(&mut h, peer);
        let target = route.target(&uri).expect("target");
        (h, target, signed)
    };
    let (h, target, signed) = request(&tokens);
    assert!(signed, "the first request signs");
    assert_eq!(
        target.to_string(),
        "http://127.0.0.1:9000/orders/42?expand=items"
    );
    assert!(h.get("x-forwarded-for").is_some());
    assert!(!request(&tokens).2, "the second takes the cached token");

    let mut g = c.benchmark_group("gateway");
    g.bench_function("request_cached_signed_token", |b| {
        b.iter(|| request(&tokens))
    });
    // A cold cache per request: what each new (route, client, incoming exp) costs.
    g.bench_function("request_signs_rs256", |b| {
        b.iter_batched(
            || SignedTokens::new(1),
            |cold| request(&cold),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
