//! Verification: keyshift's full verify path (parse, kid lookup, signature,
//! claims, policy) for RS256 and HS256, the HS256 path under a legacy
//! profile (keyshift's own token, an old issuer's token, one signed with an
//! extra secret), a token-cache hit and a JWKS-cache lookup, beside the references of the same run: raw aws-lc-rs RS256 with
//! a pre-parsed key (the limit), raw HMAC-SHA256 over the same signing
//! input, jsonwebtoken's decode, and the `rsa` crate. The `_metered`
//! variants run with the Prometheus recorder the binary installs (counters,
//! the latency histogram, its upkeep), as in production; the others with the
//! facade's no-op recorder.
//!
//! `make bench` or `cargo bench -p keyshift-benches --bench verify`.

use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use keyshift_benches::now_or_never;
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::secret::{HmacSecret, HmacSecrets};
use keyshift_core::{b64, Config, Phase};
use keyshift_issuer::keystore::{IfEmpty, KeyStore};
use keyshift_issuer::mint::{Signer, TokenRequest, TokenTemplate};
use keyshift_issuer::rotation::RotationPolicy;
use keyshift_verifier::jwks::rsa_public_key_der;
use keyshift_verifier::Verifier;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use sha2::Sha256;

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://api.example.com";

fn verifier(token_cache: usize, jwks: &str, secret: &HmacSecret) -> Verifier {
    verifier_with(token_cache, jwks, Some(secret.clone()).into(), "")
}

/// A verifier with `secrets` and `extra` TOML lines in `[verifier]`.
fn verifier_with(token_cache: usize, jwks: &str, secrets: HmacSecrets, extra: &str) -> Verifier {
    let text = format!(
        r#"phase = "transition"
[verifier]
issuer = "{ISS}"
audience = "{AUD}"
jwks_url = "http://127.0.0.1:9/jwks.json"
hs256_secret_file = "unused"
token_cache_size = {token_cache}
{extra}
"#
    );
    let cfg = Config::from_toml_str(&text, std::path::Path::new("/tmp")).expect("config");
    let section = cfg.require_verifier().expect("section");
    let v = Verifier::new(
        Phase::Transition,
        section,
        secrets,
        keyshift_core::clock::system_clock(),
    )
    .expect("verifier");
    v.jwks()
        .expect("jwks")
        .load_static(jwks.as_bytes())
        .expect("keys");
    v
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = RotationPolicy {
        rotate_every: None,
        prepublish: Duration::from_secs(900),
        token_ttl: Duration::from_secs(900),
    };
    let (keys, _) = KeyStore::new(dir.path())
        .maintain(
            SystemClock.now_secs(),
            &policy,
            2048,
            IfEmpty::CreateFirstKey,
        )
        .expect("key");
    let key = keys.active().expect("active");
    let jwks = serde_json::json!({ "keys": keys.published() }).to_string();
    let secret = HmacSecret::new(vec![0x42; 32]).expect("secret");
    let template = TokenTemplate::new(ISS, AUD, Duration::from_secs(3600));
    let req = TokenRequest {
        client_id: "svc-orders",
        scope: "orders:read orders:write",
        now: SystemClock.now_secs(),
    };
    let (rs_token, _) = Signer::rs256(key.clone()).mint(&template, req).expect("rs");
    let (hs_token, _) = Signer::hs256(&secret).mint(&template, req).expect("hs");

    let full = verifier(0, &jwks, &secret);
    // The same verifier with the binary's Prometheus recorder behind its handles.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                keyshift_verifier::metrics::VERIFY_DURATION.to_owned(),
            ),
            keyshift_verifier::metrics::VERIFY_DURATION_BUCKETS,
        )
        .expect("buckets")
        .build_recorder();
    let prometheus = recorder.handle();
    let metered = metrics::with_local_recorder(&recorder, || verifier(0, &jwks, &secret));
    // The binary drains histogram samples every 5 s; here every 10 000 calls.
    let calls = std::cell::Cell::new(0u32);
    let upkeep = || {
        calls.set(calls.get().wrapping_add(1));
        if calls.get().is_multiple_of(10_000) {
            prometheus.run_upkeep();
        }
    };
    let cached = verifier(10_000, &jwks, &secret);
    now_or_never(cached.verify(&rs_token)).expect("warm the cache");

    let (rs_input, rs_sig) = rs_token.rsplit_once('.').expect("parts");
    let rs_sig = b64::decode(rs_sig).expect("sig");
    let (hs_input, hs_sig) = hs_token.rsplit_once('.').expect("parts");
    let hs_sig = b64::decode(hs_sig).expect("sig");
    let n = b64::decode(&keys.published()[0].n).expect("n");
    let e = b64::decode(&keys.published()[0].e).expect("e");
    let parsed =
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key_der(&n, &e)).expect("key");
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose()).expect("hmac");

    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rs256_keyshift_full", |b| {
        b.iter(|| now_or_never(full.verify(&rs_token)).expect("valid"))
    });
    g.bench_function("rs256_raw_aws_lc_preparsed", |b| {
        b.iter(|| {
            parsed
                .verify_sig(rs_input.as_bytes(), &rs_sig)
                .expect("valid")
        })
    });
    g.bench_function("hs256_keyshift_full", |b| {
        b.iter(|| now_or_never(full.verify(&hs_token)).expect("valid"))
    });
    g.bench_function("rs256_keyshift_full_metered", |b| {
        b.iter(|| {
            upkeep();
            now_or_never(metered.verify(&rs_token)).expect("valid")
        })
    });
    g.bench_function("hs256_keyshift_full_metered", |b| {
        b.iter(|| {
            upkeep();
            now_or_never(metered.verify(&hs_token)).expect("valid")
        })
    });
    // The legacy profile: the old issuer's shape (another iss, no aud, a
    // numeric subject in user_id, scopes as an array in scp), and a second
    // secret tried after the shared one.
    let previous = HmacSecret::new(vec![0x24; 32]).expect("secret");
    let legacy = verifier_with(
        0,
        &jwks,
        HmacSecrets {
            primary: Some(secret.clone()),
            extra: vec![previous.clone()],
        },
        r#"legacy = { issuers = ["legacy-auth"], audience_required = false, subject_claim = "user_id", scope_claim = "scp", secret_files = ["unused.previous"] }"#,
    );
    let now = SystemClock.now_secs();
    let old_claims = serde_json::json!({
        "iss": "legacy-auth", "user_id": 4711, "scp": ["orders:read", "orders:write"],
        "iat": now, "exp": now + 3600,
    });
    let old_token = |key: &HmacSecret| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &old_claims,
            &jsonwebtoken::EncodingKey::from_secret(key.expose()),
        )
        .expect("old token")
    };
    let (old, old_previous) = (old_token(&secret), old_token(&previous));
    assert!(!now_or_never(legacy.verify(&old))
        .expect("old")
        .loosened()
        .is_empty());
    g.bench_function("hs256_legacy_profile_keyshift_token", |b| {
        b.iter(|| now_or_never(legacy.verify(&hs_token)).expect("valid"))
    });
    g.bench_function("hs256_legacy_profile_old_token", |b| {
        b.iter(|| now_or_never(legacy.verify(&old)).expect("valid"))
    });
    g.bench_function("hs256_legacy_profile_old_token_previous_secret", |b| {
        b.iter(|| now_or_never(legacy.verify(&old_previous)).expect("valid"))
    });
    g.bench_function("hs256_raw_hmac_keyed", |b| {
        b.iter(|| {
            let mut m = keyed.clone();
            m.update(hs_input.as_bytes());
            m.verify_slice(&hs_sig).expect("valid")
        })
    });
    g.bench_function("token_cache_hit", |b| {
        b.iter(|| now_or_never(cached.verify(&rs_token)).expect("valid"))
    });
    let jwks_cache = full.jwks().expect("jwks");
    g.bench_function("jwks_cache_lookup", |b| {
        b.iter(|| jwks_cache.get(&key.kid).expect("kid"))
    });

    // References: jsonwebtoken 11 (aws_lc_rs) decode, and the rsa crate.
    let jwk = &keys.published()[0];
    let rs_decoding = jsonwebtoken::DecodingKey::from_rsa_components(&jwk.n, &jwk.e).expect("jwk");
    let hs_decoding = jsonwebtoken::DecodingKey::from_secret(secret.expose());
    let mut rs_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    rs_validation.set_issuer(&[ISS]);
    rs_validation.set_audience(&[AUD]);
    let mut hs_validation = rs_validation.clone();
    hs_validation.algorithms = vec![jsonwebtoken::Algorithm::HS256];
    g.bench_function("rs256_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(&rs_token, &rs_decoding, &rs_validation)
                .expect("valid")
        })
    });
    g.bench_function("hs256_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(&hs_token, &hs_decoding, &hs_validation)
                .expect("valid")
        })
    });
    let rsa_key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .expect("rsa key");
    let rsa_verifier = VerifyingKey::<Sha256>::new(rsa_key);
    let rsa_sig = Signature::try_from(rs_sig.as_slice()).expect("sig");
    g.bench_function("rs256_rsa_crate_verify", |b| {
        b.iter(|| {
            rsa_verifier
                .verify(rs_input.as_bytes(), &rsa_sig)
                .expect("valid")
        })
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
