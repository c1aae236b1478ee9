//! The legacy profile (`[verifier.legacy]`) against tokens of an independent
//! legacy issuer: minted here with jsonwebtoken, never with keyshift's code,
//! in each shape a home-grown HS256 issuer uses. Each loosening passes only
//! with the profile, only for HS256, never in phase `asymmetric`; extra
//! secrets come and go by reload; a weak secret needs its flag.

mod common;

use common::snap::*;
use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyshift_core::clock::ManualClock;
use keyshift_core::secret::{HmacSecret, HmacSecrets};
use keyshift_core::{Config, Phase};
use keyshift_testkit::ConfigToml;
use keyshift_verifier::metrics::VERIFY_LEGACY_TOTAL;
use keyshift_verifier::{Verifier, VerifyError};
use serde_json::{json, Value};

/// The secret the shared secret replaced: tokens of the old issuer may still
/// be signed with it.
const PREVIOUS: &[u8] = b"previous-secret-previous-secret!!";

/// Everything the old system's tokens need, as the operator writes it.
const PROFILE: &str = r#"legacy = { issuers = ["legacy-auth", ""], audience_required = false, subject_claim = "user_id", scope_claim = "scp", secret_files = ["hs256.previous"] }"#;

/// A token of the old issuer: HS256 by jsonwebtoken, with `typ` as given
/// and no `kid`.
fn old_token(secret: &[u8], typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("mint")
}

/// Claims keyshift's strict rules accept, with `edit` applied (`null` removes).
fn shaped(edit: Value) -> Value {
    let mut c = claims();
    for (k, v) in edit.as_object().expect("object") {
        match v {
            Value::Null => {
                c.as_object_mut().expect("object").remove(k);
            }
            v => c[k] = v.clone(),
        }
    }
    c
}

/// Each shape of the old issuer's tokens, named, with the loosening it needs.
fn shapes() -> Vec<(&'static str, String)> {
    let strict = |edit: Value| old_token(SECRET, Some("JWT"), &shaped(edit));
    vec![
        ("another iss", strict(json!({"iss": "legacy-auth"}))),
        ("no iss", strict(json!({"iss": null}))),
        ("no aud", strict(json!({"aud": null}))),
        (
            "numeric sub",
            strict(json!({"sub": 4711, "client_id": null})),
        ),
        (
            "subject in user_id",
            strict(json!({"sub": null, "client_id": null, "user_id": "u-9"})),
        ),
        ("scope array", strict(json!({"scope": ["read", "write"]}))),
        (
            "previous secret",
            old_token(PREVIOUS, Some("JWT"), &claims()),
        ),
        (
            "all at once, no typ",
            old_token(
                PREVIOUS,
                None,
                &json!({"iss": "legacy-auth", "user_id": 4711, "scp": ["read"], "iat": NOW, "exp": NOW + 600}),
            ),
        ),
    ]
}

fn with_previous() -> HmacSecrets {
    HmacSecrets {
        primary: secret_for(Phase::Dual),
        extra: vec![HmacSecret::new(PREVIOUS.to_vec()).expect("secret")],
    }
}

#[tokio::test]
async fn old_tokens_of_every_shape_pass_with_the_profile_in_the_hs256_phases_only() {
    for phase in [Phase::Legacy, Phase::Dual, Phase::Transition] {
        let (a, _) = keys();
        let server = JwksServer::start(jwks_of(&[a])).await;
        let with = fixture_with_secrets(phase, PROFILE, server, with_previous()).await;
        let without = fixture(phase, "").await;
        for (shape, token) in shapes() {
            assert_eq!(
                with.check(&token).await.0,
                StatusCode::OK,
                "{phase}, {shape}, with the profile"
            );
            let (status, challenge) = without.check(&token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{phase}, {shape}, without the profile"
            );
            assert!(challenge.contains("invalid_token"), "{challenge}");
        }
    }
    // In asymmetric the table is ignored: HS256 is refused whatever it says.
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let asym =
        fixture_with_secrets(Phase::Asymmetric, PROFILE, server, HmacSecrets::default()).await;
    assert!(asym.verifier.policy().legacy.is_none());
    for (shape, token) in shapes() {
        let (status, challenge) = asym.check(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "asymmetric, {shape}");
        assert!(challenge.contains("algorithm not accepted"), "{challenge}");
    }
}

#[tokio::test]
async fn scopes_in_the_configured_claim_are_read_though_the_token_is_otherwise_strict() {
    let token = old_token(
        SECRET,
        Some("JWT"),
        &shaped(json!({"scope": null, "scp": "read write"})),
    );
    let scope_of = |resp: http::Response<_>| {
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers()["x-auth-scope"]
            .to_str()
            .expect("text")
            .to_owned()
    };
    let request = || {
        http::Request::get("/verify")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("request")
    };
    let without = fixture(Phase::Dual, "").await;
    assert_eq!(
        scope_of(without.service.handle(request()).await),
        "",
        "no scope claim"
    );
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let with = fixture_with_secrets(Phase::Dual, PROFILE, server, with_previous()).await;
    assert_eq!(scope_of(with.service.handle(request()).await), "read write");
}

#[tokio::test]
async fn the_old_subject_and_scopes_reach_the_forward_auth_headers() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let f = fixture_with_secrets(Phase::Dual, PROFILE, server, with_previous()).await;
    let token = old_token(
        SECRET,
        None,
        &json!({"iss": "legacy-auth", "user_id": 4711, "scp": ["orders:read", "orders:write"], "exp": NOW + 600}),
    );
    let req = http::Request::get("/verify?scope=orders:write")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-auth-subject"], "4711");
    assert_eq!(h["x-auth-client"], "4711");
    assert_eq!(h["x-auth-scope"], "orders:read orders:write");
    assert_eq!(h["x-auth-alg"], "HS256");
    assert_eq!(h["x-auth-kid"], "", "the old tokens carry no kid");
}

#[tokio::test]
async fn the_profile_never_loosens_rs256() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let f = fixture_with_secrets(Phase::Dual, PROFILE, server, with_previous()).await;
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);
    for (shape, edit) in [
        ("no aud", json!({"aud": null})),
        ("another iss", json!({"iss": "legacy-auth"})),
        ("no iss", json!({"iss": null})),
        ("numeric sub", json!({"sub": 4711})),
        ("subject in user_id", json!({"sub": null, "user_id": "u-9"})),
        ("scope array", json!({"scope": ["read"]})),
    ] {
        let (status, challenge) = f.check(&rs256(a, &shaped(edit))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "RS256 {shape}");
        assert!(challenge.contains("invalid_token"), "{shape}: {challenge}");
    }
}

#[tokio::test]
async fn legacy_acceptances_are_counted_apart_and_listed_in_migration() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let (verifier, snapshotter) =
        metered_with_secrets(Phase::Dual, PROFILE, &server, with_previous()).await;
    snapshotter.snapshot();
    let strict = hs256(&claims());
    verifier
        .verify(&strict)
        .await
        .expect("a strict HS256 token");
    let old = old_token(
        PREVIOUS,
        None,
        &json!({"iss": "legacy-auth", "user_id": 4711, "scp": ["read"], "exp": NOW + 600}),
    );
    verifier.verify(&old).await.expect("the old shape");
    verifier
        .verify(&old)
        .await
        .expect("again, from the token cache");
    let snap = snapshotter.snapshot().into_vec();
    let legacy = |l: &str| counter(&snap, VERIFY_LEGACY_TOTAL, &[("loosening", l)]);
    for l in [
        "issuers",
        "audience_required",
        "subject_claim",
        "scope_claim",
        "secret_files",
    ] {
        assert_eq!(legacy(l), Some(2), "{l}: twice, the cache hit too");
    }
    assert_eq!(
        counter(
            &snap,
            keyshift_verifier::metrics::VERIFY_TOTAL,
            &[("alg", "HS256"), ("outcome", "accepted")]
        ),
        Some(3),
        "also ordinary acceptances"
    );
    let report = verifier.migration();
    let profile = report.legacy_profile.expect("listed");
    assert_eq!(profile.issuers, ["legacy-auth", ""]);
    assert!(!profile.audience_required);
    assert_eq!(profile.subject_claim, "user_id");
    assert_eq!(profile.secret_files, 1);
    assert_eq!(profile.accepted, 2);
    assert_eq!(profile.accepted_by_loosening.secret_files, 2);
    assert!(!report.hs256_secret_weak);
    // The old issuer's client is named, by its verified subject, with its iss;
    // keyshift's strict token is not a legacy client.
    assert_eq!(
        report.legacy_clients.len(),
        1,
        "{:?}",
        report.legacy_clients
    );
    let client = &report.legacy_clients[0];
    assert_eq!(client.client, "4711");
    assert_eq!(client.iss.as_deref(), Some("legacy-auth"));
    assert_eq!(client.count, 2, "the cache hit counts too");
    let json = serde_json::to_value(verifier.migration()).expect("json");
    assert_eq!(json["legacy_profile"]["accepted"], 2);
    assert_eq!(json["hs256_secret_weak"], false);
}

/// A verifier whose secrets come from files in `dir`, loaded as the binary
/// loads them, under `text` (a whole config).
fn from_files(dir: &std::path::Path, text: &str) -> Result<(Config, HmacSecrets), String> {
    let cfg = Config::from_toml_str(text, dir).map_err(|e| e.to_string())?;
    let secrets = cfg
        .require_verifier()
        .map_err(|e| e.to_string())?
        .load_secrets()
        .map_err(|e| e.to_string())?;
    Ok((cfg, secrets))
}

fn file_config(phase: Phase, jwks_url: &str, extra: &str) -> String {
    ConfigToml::new(phase)
        .verifier("issuer", ISS)
        .verifier("audience", AUD)
        .verifier("jwks_url", jwks_url)
        .verifier("hs256_secret_file", "hs256.secret")
        .verifier("max_token_lifetime", "1h")
        .verifier_lines(extra)
        .render()
}

#[tokio::test]
async fn either_secret_verifies_and_a_secret_removed_by_reload_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs256.secret"), SECRET).expect("write");
    std::fs::write(dir.path().join("hs256.previous"), PREVIOUS).expect("write");
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let both = file_config(
        Phase::Dual,
        &server.url(),
        r#"legacy = { secret_files = ["hs256.previous"] }"#,
    );
    let (cfg, secrets) = from_files(dir.path(), &both).expect("valid");
    let section = cfg.require_verifier().expect("verifier");
    let verifier =
        Verifier::new(Phase::Dual, section, secrets, ManualClock::at_secs(NOW)).expect("verifier");
    let current = old_token(SECRET, Some("JWT"), &claims());
    let previous = old_token(PREVIOUS, Some("JWT"), &claims());
    for token in [&current, &previous, &previous] {
        verifier.verify(token).await.expect("either secret");
    }
    let stranger = old_token(b"someone-else-s-secret-0123456789", Some("JWT"), &claims());
    assert_eq!(
        verifier.verify(&stranger).await.map(|_| ()),
        Err(VerifyError::BadSignature)
    );

    let one = file_config(Phase::Dual, &server.url(), "legacy = {}");
    let (cfg, secrets) = from_files(dir.path(), &one).expect("valid");
    verifier
        .reload(
            Phase::Dual,
            cfg.require_verifier().expect("verifier"),
            secrets,
        )
        .await
        .expect("reload");
    assert_eq!(
        verifier.verify(&previous).await.map(|_| ()),
        Err(VerifyError::BadSignature),
        "cached before, refused at once after the reload"
    );
    verifier
        .verify(&current)
        .await
        .expect("the remaining secret");
}

#[tokio::test]
async fn a_weak_secret_needs_the_flag_is_reported_and_is_refused_in_asymmetric() {
    let dir = tempfile::tempdir().expect("tempdir");
    let weak = b"24-bytes-of-old-secret!!";
    std::fs::write(dir.path().join("hs256.secret"), weak).expect("write");
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;

    let err = from_files(dir.path(), &file_config(Phase::Dual, &server.url(), ""))
        .expect_err("refused without the flag");
    assert!(
        err.contains("24 bytes") && err.contains("allow_weak_hs256_secret = true"),
        "{err}"
    );

    let flagged = format!(
        "allow_weak_hs256_secret = true\n{}",
        file_config(Phase::Dual, &server.url(), "")
    );
    let (cfg, secrets) = from_files(dir.path(), &flagged).expect("allowed with the flag");
    let section = cfg.require_verifier().expect("verifier");
    // The gauges are set at build and reload: read them through a recorder
    // of this (current-thread) test.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let verifier =
        Verifier::new(Phase::Dual, section, secrets, ManualClock::at_secs(NOW)).expect("verifier");
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        gauge(&snap, keyshift_core::phase_metrics::SECRET_WEAK),
        Some(1.0)
    );
    let token = old_token(weak, Some("JWT"), &claims());
    verifier
        .verify(&token)
        .await
        .expect("signed with the weak secret");
    assert!(verifier.migration().hs256_secret_weak);

    // asymmetric: the flag is ignored and no secret is read; the token is refused.
    // force_phase: this test's issuer has no /migration and HS256 tokens
    // were accepted a moment ago (readiness is tested in guard_rails.rs).
    let asym = format!(
        "allow_weak_hs256_secret = true\n{}",
        file_config(Phase::Asymmetric, &server.url(), "force_phase = true")
    );
    let (cfg, secrets) = from_files(dir.path(), &asym).expect("ignored, not refused");
    let section = cfg.require_verifier().expect("verifier");
    assert_eq!(section.ignored, ["allow_weak_hs256_secret"]);
    assert!(secrets.primary.is_none());
    verifier
        .reload(Phase::Asymmetric, section, secrets)
        .await
        .expect("reload");
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        gauge(&snap, keyshift_core::phase_metrics::SECRET_WEAK),
        Some(0.0)
    );
    assert_eq!(
        verifier.verify(&token).await.map(|_| ()),
        Err(VerifyError::AlgDisabled)
    );
}

#[tokio::test]
async fn a_profile_of_defaults_refuses_what_the_strict_rules_refuse() {
    let refused = [
        json!({"exp": NOW - 31}),
        json!({"nbf": NOW + 31}),
        json!({"iat": NOW + 31}),
        json!({"exp": null}),
        json!({"exp": "1900000600"}),
        json!({"exp": NOW + 7200}),
        json!({"iss": "https://issuer.test/"}),
        json!({"iss": [ISS]}),
        json!({"iss": null}),
        json!({"aud": "https://other.test"}),
        json!({"aud": null}),
        json!({"sub": null}),
        json!({"sub": "tab\there"}),
        json!({"sub": 1.5}),
        json!({"client_id": 7}),
        json!({"scope": 7}),
    ];
    let strict = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let defaults = fixture_with_secrets(
        Phase::Dual,
        "legacy = {}",
        server,
        secret_for(Phase::Dual).into(),
    )
    .await;
    assert_eq!(defaults.check(&hs256(&claims())).await.0, StatusCode::OK);
    for edit in refused {
        let token = hs256(&shaped(edit.clone()));
        let (status, by_strict) = strict.check(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{edit}");
        let (status, by_profile) = defaults.check(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{edit}: {by_profile}");
        let reason = |c: &str| c.split("error_description=").nth(1).map(str::to_owned);
        if edit.get("sub").is_none() {
            assert_eq!(reason(&by_profile), reason(&by_strict), "{edit}");
        }
    }
    let dup = format!(
        r#"{{"iss":"{ISS}","iss":"https://evil","aud":"{AUD}","sub":"s","exp":{}}}"#,
        NOW + 60
    );
    let token = sign_hs(SECRET, &signing_input(r#"{"alg":"HS256"}"#, &dup));
    assert_eq!(defaults.check(&token).await.0, StatusCode::UNAUTHORIZED);
}
