//! The forward-auth route as a proxy calls it: `VerifierService::handle` on
//! a whole request, response headers included, for the answers that carry
//! the traffic: an accepted token from the token cache, a 401 for a forged
//! signature (the hot path under attack), a 401 for no token. Beside
//! `verify`'s benches, this measures what the route adds: the identity
//! headers and the RFC 6750 challenge.
//!
//! `cargo bench -p keyshift-benches --bench route`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Uri};
use keyshift_benches::now_or_never;
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Config, Phase};
use keyshift_issuer::mint::{Signer, TokenRequest, TokenTemplate};
use keyshift_verifier::{State, Verifier, VerifierService};

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://api.example.com";

fn service(secret: &HmacSecret) -> VerifierService {
    let text = format!(
        "phase = \"dual\"\n[verifier]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n\
         jwks_url = \"http://127.0.0.1:9/jwks.json\"\nhs256_secret_file = \"unused\"\n"
    );
    let cfg = Config::from_toml_str(&text, std::path::Path::new("/tmp")).expect("config");
    let verifier = Verifier::new(
        Phase::Dual,
        cfg.require_verifier().expect("section"),
        Some(secret.clone()),
        keyshift_core::clock::system_clock(),
    )
    .expect("verifier");
    VerifierService::new(Arc::new(State {
        verifier: Arc::new(verifier),
        render_metrics: Arc::new(String::new),
    }))
}

fn route(c: &mut Criterion) {
    let secret = HmacSecret::new(vec![0x42; 32]).expect("secret");
    let template = TokenTemplate::new(ISS, AUD, Duration::from_secs(3600));
    let req = TokenRequest {
        client_id: "svc-orders",
        scope: "orders:read orders:write",
        now: SystemClock.now_secs(),
    };
    let (token, _) = Signer::hs256(&secret).mint(&template, req).expect("hs");
    let (input, _) = token.rsplit_once('.').expect("parts");
    let forged = format!("{input}.{}", "A".repeat(43));
    let svc = service(&secret);
    let uri: Uri = "/verify".parse().expect("uri");
    let request = |auth: Option<&HeaderValue>| {
        let mut r = Request::new(());
        *r.uri_mut() = uri.clone();
        if let Some(v) = auth {
            r.headers_mut().insert(AUTHORIZATION, v.clone());
        }
        r
    };
    let good = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let bad = HeaderValue::from_str(&format!("Bearer {forged}")).expect("header");
    assert_eq!(now_or_never(svc.handle(request(Some(&good)))).status(), 200);
    assert_eq!(now_or_never(svc.handle(request(Some(&bad)))).status(), 401);

    let mut g = c.benchmark_group("route");
    g.bench_function("accepted_token_cache_hit", |b| {
        b.iter(|| now_or_never(svc.handle(request(Some(&good)))))
    });
    g.bench_function("401_bad_signature", |b| {
        b.iter(|| now_or_never(svc.handle(request(Some(&bad)))))
    });
    g.bench_function("401_no_token", |b| {
        b.iter(|| now_or_never(svc.handle(request(None))))
    });
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
