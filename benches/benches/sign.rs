//! Signing: keyshift's minting (claims + signature with a key parsed once)
//! beside raw aws-lc-rs signing with a pre-parsed key (the limit) and
//! jsonwebtoken's `encode` (which parses the key inside every call).
//!
//! `make bench` or `cargo bench -p keyshift-benches --bench sign`.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyshift_core::secret::HmacSecret;
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::mint::{Signer, TokenRequest, TokenTemplate};

const NOW: u64 = 1_800_000_000;

fn template() -> TokenTemplate {
    TokenTemplate::new(
        "https://issuer.example.com",
        "https://api.example.com",
        Duration::from_secs(900),
    )
}

fn request() -> TokenRequest<'static> {
    TokenRequest {
        client_id: "svc-orders",
        scope: "orders:read orders:write",
        now: NOW,
    }
}

fn sign(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::new(dir.path());
    store.generate_next(NOW, 2048).expect("first key: active");
    let key = store.load().expect("keys").active().expect("active");
    let secret = HmacSecret::new(vec![0x42; 32]).expect("secret");

    let rs = Signer::rs256(Arc::clone(&key));
    let hs = Signer::hs256(&secret);
    let (sample, _) = rs.mint(&template(), request()).expect("mint");
    let signing_input = sample
        .rsplit_once('.')
        .map(|(input, _)| input.to_owned())
        .expect("three parts");

    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hs256_keyshift_mint", |b| {
        b.iter(|| hs.mint(&template(), request()).expect("mint"))
    });
    g.bench_function("rs256_keyshift_mint", |b| {
        b.iter(|| rs.mint(&template(), request()).expect("mint"))
    });

    // The limit: one RSA signature over the same signing input, key pre-parsed.
    let rng = SystemRandom::new();
    let mut sig = vec![0u8; key.pair.public_modulus_len()];
    g.bench_function("rs256_raw_aws_lc_preparsed", |b| {
        b.iter(|| {
            key.pair
                .sign(&RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut sig)
                .expect("sign")
        })
    });

    // jsonwebtoken's encode, aws_lc_rs backend: parses the PKCS#8 key per call.
    let pem = std::fs::read(dir.path().join(format!("{}.pem", key.kid))).expect("key file");
    let jwt_rsa = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("PKCS#8 PEM");
    let jwt_hmac = jsonwebtoken::EncodingKey::from_secret(secret.expose());
    let (_, claims) = hs.mint(&template(), request()).expect("claims");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    g.bench_function("rs256_jsonwebtoken_encode", |b| {
        b.iter(|| jsonwebtoken::encode(&header, &claims, &jwt_rsa).expect("encode"))
    });
    let mut hs_header = header.clone();
    hs_header.alg = jsonwebtoken::Algorithm::HS256;
    g.bench_function("hs256_jsonwebtoken_encode", |b| {
        b.iter(|| jsonwebtoken::encode(&hs_header, &claims, &jwt_hmac).expect("encode"))
    });
    g.finish();
}

criterion_group!(benches, sign);
criterion_main!(benches);
