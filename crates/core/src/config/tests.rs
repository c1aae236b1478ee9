use std::path::Path;
use std::time::Duration;

use super::*;
use crate::claims::HeaderTyp;

const BASE: &str = "/etc/keyshift";

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new(BASE))
}

fn err_field(text: &str) -> (String, String) {
    match load(text) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => (e.field().unwrap_or("").to_owned(), e.to_string()),
    }
}

const ISSUER: &str = r#"
[issuer]
issuer = "http://127.0.0.1:8080"
audience = "https://api.example.com"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "svc-a"
secret_hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
scopes = ["read", "write"]
"#;

const VERIFIER: &str = r#"
[verifier]
issuer = "http://127.0.0.1:8080"
audience = "https://api.example.com"
jwks_url = "http://127.0.0.1:8080/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
"#;

/// The issuer section with one more key in `[issuer]` (before the clients table).
fn with_issuer_key(line: &str) -> String {
    ISSUER.replace(
        "\n[[issuer.clients]]",
        &format!("{line}\n\n[[issuer.clients]]"),
    )
}

#[test]
fn contract_example_loads_with_defaults() {
    let cfg = load(&format!("phase = \"dual\"\n{ISSUER}{VERIFIER}")).expect("valid");
    let i = cfg.issuer.as_ref().expect("issuer");
    assert_eq!(i.listen.to_string(), DEFAULT_ISSUER_LISTEN);
    assert_eq!(i.token_ttl, DEFAULT_TOKEN_TTL);
    assert_eq!(i.key_dir, Path::new(BASE).join("keys"));
    assert_eq!(
        i.hs256_secret_file.as_deref(),
        Some(Path::new("/etc/keyshift/hs256.secret"))
    );
    assert_eq!(i.clients[0].scopes, ["read", "write"]);
    assert_eq!(i.token_endpoint(), "http://127.0.0.1:8080/oauth/token");
    let v = cfg.verifier.as_ref().expect("verifier");
    assert_eq!(v.accept, Phase::Dual.default_accept());
    assert_eq!(v.leeway, Duration::from_secs(30));
    assert_eq!(v.unknown_kid_cooldown, Duration::from_secs(30));
    assert!(!v.accept_overridden);
}

#[test]
fn unknown_keys_are_errors_naming_the_field() {
    let (field, msg) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("tokn_ttl = \"5m\"")
    ));
    assert_eq!(field, "issuer.tokn_ttl");
    assert!(msg.contains("tokn_ttl"), "{msg}");
    let (field, _) = err_field("phase = \"dual\"\ncolour = 1\n");
    assert_eq!(field, "colour");
}

#[test]
fn bad_values_name_the_field() {
    let (field, msg) = err_field(&format!(
        "phase = \"dual\"\n{}",
        ISSUER.replace(
            "hs256_secret_file",
            "token_ttl = \"15 minutes\"\nhs256_secret_file"
        )
    ));
    assert_eq!(field, "issuer.token_ttl", "{msg}");
    assert!(msg.contains("line"), "{msg}");

    let (field, _) = err_field(&format!("phase = \"dul\"\n{ISSUER}"));
    assert_eq!(field, "phase");
    let (field, _) = err_field(ISSUER);
    assert_eq!(field, "phase");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        ISSUER.replace("sha256:0000", "plain")
    ));
    assert_eq!(field, "issuer.clients[0].secret_hash");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        ISSUER.replace("\"read\"", "\"re ad\"")
    ));
    assert_eq!(field, "issuer.clients[0].scopes");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("key_bits = 1024")
    ));
    assert_eq!(field, "issuer.key_bits");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("token_ttl = \"48h\"")
    ));
    assert_eq!(field, "issuer.token_ttl");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("key_prepublish = \"1m\"")
    ));
    assert_eq!(field, "issuer.key_prepublish");
    // Would overflow `key_prepublish + token_ttl` and `now + prepublish`.
    let (field, msg) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("key_prepublish = \"18446744073709551615s\"")
    ));
    assert_eq!(field, "issuer.key_prepublish", "{msg}");
    assert!(msg.contains("too large"), "{msg}");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("listen = \"nowhere\"")
    ));
    assert_eq!(field, "issuer.listen");
    let dup = format!(
        "phase = \"dual\"\n{ISSUER}{}",
        &ISSUER[ISSUER.find("[[").expect("clients")..]
    );
    let (field, msg) = err_field(&dup);
    assert_eq!(field, "issuer.clients[1].id", "{msg}");
    let long = format!(
        "phase = \"dual\"\n{}",
        ISSUER.replace("id = \"svc-a\"", &format!("id = \"{}\"", "a".repeat(257)))
    );
    let (field, msg) = err_field(&long);
    assert_eq!(field, "issuer.clients[0].id", "{msg}");
    assert!(msg.contains("256 bytes"), "{msg}");
    let longest = ISSUER.replace("id = \"svc-a\"", &format!("id = \"{}\"", "a".repeat(256)));
    load(&format!("phase = \"dual\"\n{longest}")).expect("256 bytes is fine");
}

#[test]
fn secret_is_required_until_asymmetric() {
    let no_secret = ISSUER.replace("hs256_secret_file = \"hs256.secret\"\n", "");
    let (field, _) = err_field(&format!("phase = \"transition\"\n{no_secret}"));
    assert_eq!(field, "issuer.hs256_secret_file");
    let cfg = load(&format!("phase = \"asymmetric\"\n{no_secret}")).expect("valid");
    assert!(cfg.issuer.expect("issuer").hs256_secret_file.is_none());
}

#[test]
fn hs256_override_in_asymmetric_is_refused() {
    let text = format!("phase = \"asymmetric\"\n{VERIFIER}accept = [\"HS256\", \"RS256\"]\n");
    let (field, msg) = err_field(&text);
    assert_eq!(field, "verifier.accept");
    assert!(msg.contains("asymmetric"), "{msg}");
    let text = format!("phase = \"transition\"\n{VERIFIER}accept = [\"RS256\"]\n");
    let v = load(&text)
        .expect("narrowing is fine")
        .verifier
        .expect("verifier");
    assert!(v.accept_overridden && !v.accept.contains(Alg::Hs256));
    let (field, _) = err_field(&format!("phase = \"dual\"\n{VERIFIER}accept = []\n"));
    assert_eq!(field, "verifier.accept");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{VERIFIER}accept = [\"none\"]\n"
    ));
    assert_eq!(field, "verifier.accept[0]");
}

#[test]
fn jwks_url_must_be_https_unless_loopback_or_allowed() {
    let remote = VERIFIER.replace("127.0.0.1:8080/.well-known", "keys.example.com/.well-known");
    let (field, msg) = err_field(&format!("phase = \"dual\"\n{remote}"));
    assert_eq!(field, "verifier.jwks_url");
    assert!(msg.contains("allow_insecure_jwks_http"), "{msg}");
    load(&format!(
        "phase = \"dual\"\n{remote}allow_insecure_jwks_http = true\n"
    ))
    .expect("allowed");
    load(&format!(
        "phase = \"dual\"\n{}",
        remote.replace("http://", "https://")
    ))
    .expect("https");
    load(&format!(
        "phase = \"dual\"\n{}",
        VERIFIER.replace("127.0.0.1", "localhost")
    ))
    .expect("localhost");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{}",
        VERIFIER.replace("http://127.0.0.1:8080/.well", "ftp://127.0.0.1/.well")
    ));
    assert_eq!(field, "verifier.jwks_url");
}

#[test]
fn verifier_needs_what_it_accepts() {
    let no_jwks = VERIFIER.replace("jwks_url", "# jwks_url");
    let (field, _) = err_field(&format!("phase = \"dual\"\n{no_jwks}"));
    assert_eq!(field, "verifier.jwks_url");
    load(&format!("phase = \"legacy\"\n{no_jwks}")).expect("legacy needs no JWKS");
    let no_secret = VERIFIER.replace("hs256_secret_file", "# hs256_secret_file");
    let (field, _) = err_field(&format!("phase = \"transition\"\n{no_secret}"));
    assert_eq!(field, "verifier.hs256_secret_file");
    load(&format!("phase = \"asymmetric\"\n{no_secret}")).expect("asymmetric needs no secret");
}

#[test]
fn an_empty_file_is_refused() {
    let (field, _) = err_field("phase = \"dual\"\n");
    assert_eq!(field, "(file)");
}

#[test]
fn scope_tokens_follow_rfc6749() {
    assert!(is_scope_token("read:all"));
    assert!(!is_scope_token("a b"));
    assert!(!is_scope_token("a\"b"));
    assert!(!is_scope_token("a\\b"));
    assert!(!is_scope_token(""));
}

// === legacy profile and weak secrets ===

const LEGACY_TABLES: &str = r#"
[issuer.legacy]
issuer = "legacy-auth"
typ = "JWT"
kid = false
audience = ""
[issuer.legacy.claims]
tenant = "acme"
roles = ["a", "b"]

[verifier.legacy]
issuers = ["legacy-auth", ""]
audience_required = false
subject_claim = "user_id"
scope_claim = "scp"
secret_files = ["hs256.previous", "/abs/older.secret"]
"#;

#[test]
fn legacy_tables_load_with_their_values_and_paths_resolved() {
    let cfg = load(&format!(
        "phase = \"dual\"\n{ISSUER}{VERIFIER}{LEGACY_TABLES}"
    ))
    .expect("valid");
    let i = cfg.issuer.as_ref().expect("issuer");
    let shape = i.legacy.as_ref().expect("issuer.legacy");
    assert_eq!(shape.issuer, "legacy-auth");
    assert_eq!(shape.typ, HeaderTyp::Jwt);
    assert!(!shape.kid);
    assert_eq!(shape.audience, None);
    assert_eq!(shape.claims["tenant"], "acme");
    assert_eq!(shape.claims["roles"], serde_json::json!(["a", "b"]));
    assert!(i.legacy_shape(Phase::Dual).is_some());
    assert!(
        i.legacy_shape(Phase::Transition).is_none(),
        "RS256 keeps RFC 9068"
    );
    let v = cfg.verifier.as_ref().expect("verifier");
    let profile = v.legacy.as_ref().expect("verifier.legacy");
    assert_eq!(profile.issuers, ["legacy-auth", ""]);
    assert!(!profile.audience_required);
    assert_eq!(profile.subject_claim, "user_id");
    assert_eq!(profile.scope_claim, "scp");
    assert_eq!(
        profile.secret_files,
        [
            Path::new("/etc/keyshift/hs256.previous"),
            Path::new("/abs/older.secret")
        ]
    );
    assert!(i.ignored.is_empty() && v.ignored.is_empty());
}

#[test]
fn empty_legacy_tables_take_the_documented_defaults() {
    let text =
        format!("phase = \"legacy\"\n{ISSUER}{VERIFIER}\n[issuer.legacy]\n[verifier.legacy]\n");
    let cfg = load(&text).expect("valid");
    let i = cfg.issuer.as_ref().expect("issuer");
    let shape = i.legacy.as_ref().expect("issuer.legacy");
    assert_eq!(shape.issuer, i.issuer);
    assert_eq!(shape.audience.as_deref(), Some(i.audience.as_str()));
    assert_eq!(shape.typ, DEFAULT_LEGACY_TYP);
    assert_eq!(shape.kid, DEFAULT_LEGACY_KID);
    assert!(shape.claims.is_empty());
    let profile = cfg
        .verifier
        .as_ref()
        .and_then(|v| v.legacy.as_ref())
        .expect("verifier.legacy");
    assert!(profile.issuers.is_empty() && profile.secret_files.is_empty());
    assert_eq!(profile.audience_required, DEFAULT_LEGACY_AUDIENCE_REQUIRED);
    assert_eq!(profile.subject_claim, DEFAULT_LEGACY_SUBJECT_CLAIM);
    assert_eq!(profile.scope_claim, DEFAULT_LEGACY_SCOPE_CLAIM);
}

#[test]
fn bad_legacy_values_name_the_field() {
    let base = format!("phase = \"dual\"\n{ISSUER}{VERIFIER}");
    let cases = [
        (
            "[verifier.legacy]\nissuer = \"x\"\n",
            "verifier.legacy.issuer",
        ),
        ("[issuer.legacy]\ntyp = \"jwt\"\n", "issuer.legacy.typ"),
        ("[issuer.legacy]\nissuer = \"\"\n", "issuer.legacy.issuer"),
        (
            "[issuer.legacy]\nissuer = \"a\\nb\"\n",
            "issuer.legacy.issuer",
        ),
        (
            "[issuer.legacy.claims]\niss = \"evil\"\n",
            "issuer.legacy.claims.iss",
        ),
        (
            "[issuer.legacy.claims]\nscope = \"admin\"\n",
            "issuer.legacy.claims.scope",
        ),
        (
            "[issuer.legacy.claims]\nat = 1979-05-27T07:32:00Z\n",
            "issuer.legacy.claims.at",
        ),
        (
            "[verifier.legacy]\nsubject_claim = \"\"\n",
            "verifier.legacy.subject_claim",
        ),
        (
            "[verifier.legacy]\nsubject_claim = \"exp\"\n",
            "verifier.legacy.subject_claim",
        ),
        (
            "[verifier.legacy]\nscope_claim = \"sub\"\n",
            "verifier.legacy.scope_claim",
        ),
        (
            "[verifier.legacy]\nissuers = [\"ok\", \"a\\tb\"]\n",
            "verifier.legacy.issuers[1]",
        ),
        (
            "[verifier.legacy]\naudience_required = \"no\"\n",
            "verifier.legacy.audience_required",
        ),
        (
            "allow_weak_hs256_secret = \"yes\"\n",
            "allow_weak_hs256_secret",
        ),
    ];
    for (extra, want) in cases {
        // Top-level keys go first; tables after the sections.
        let text = if extra.starts_with('[') {
            format!("{base}{extra}")
        } else {
            format!("{extra}{base}")
        };
        let (field, msg) = err_field(&text);
        assert_eq!(field, want, "{extra}: {msg}");
    }
}

#[test]
fn in_asymmetric_the_legacy_tables_and_the_weak_flag_are_ignored_and_reported() {
    let text = format!(
        "phase = \"asymmetric\"\nallow_weak_hs256_secret = true\n{ISSUER}{}{LEGACY_TABLES}",
        VERIFIER.replace("hs256_secret_file", "# hs256_secret_file")
    );
    let cfg = load(&text).expect("ignored, not refused");
    let i = cfg.issuer.as_ref().expect("issuer");
    assert!(i.legacy.is_none() && !i.allow_weak_hs256_secret);
    assert_eq!(i.ignored, ["allow_weak_hs256_secret", "issuer.legacy"]);
    let v = cfg.verifier.as_ref().expect("verifier");
    assert!(v.legacy.is_none() && !v.allow_weak_hs256_secret);
    assert_eq!(v.ignored, ["allow_weak_hs256_secret", "verifier.legacy"]);
    assert!(ignored_warning("verifier.legacy").contains("phase asymmetric"));
    let secrets = v.load_secrets().expect("nothing read");
    assert!(secrets.primary.is_none() && secrets.extra.is_empty());
}

#[test]
fn weak_secrets_load_only_with_the_flag_which_a_section_can_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs256.secret"), [b'w'; 24]).expect("write");
    std::fs::write(dir.path().join("hs256.previous"), [b'p'; 32]).expect("write");
    let verifier = VERIFIER.to_owned() + "[verifier.legacy]\nsecret_files = [\"hs256.previous\"]\n";
    let section = |text: &str| {
        Config::from_toml_str(text, dir.path())
            .expect("valid")
            .verifier
            .expect("verifier")
    };

    let strict = section(&format!("phase = \"dual\"\n{verifier}"));
    let err = strict
        .load_secrets()
        .expect_err("24 bytes without the flag");
    assert_eq!(err.field(), Some("verifier.hs256_secret_file"));
    assert!(err.to_string().contains("allow_weak_hs256_secret"), "{err}");

    let weak = section(&format!(
        "phase = \"dual\"\nallow_weak_hs256_secret = true\n{verifier}"
    ));
    let secrets = weak.load_secrets().expect("weak allowed");
    assert!(secrets.any_weak());
    assert!(secrets.primary.as_ref().is_some_and(HmacSecret::is_weak));
    assert_eq!(
        secrets.extra.len(),
        1,
        "the legacy secret, after the primary"
    );
    assert!(!secrets.extra[0].is_weak());

    let overridden = section(&format!(
        "phase = \"dual\"\nallow_weak_hs256_secret = true\n{}",
        verifier.replace(
            "[verifier]\n",
            "[verifier]\nallow_weak_hs256_secret = false\n"
        )
    ));
    assert!(!overridden.allow_weak_hs256_secret);
    assert!(overridden.load_secrets().is_err(), "the section wins");

    let issuer = load(&format!(
        "phase = \"legacy\"\n{}",
        with_issuer_key("allow_weak_hs256_secret = true")
    ))
    .expect("valid");
    assert!(issuer.issuer.expect("issuer").allow_weak_hs256_secret);

    std::fs::write(dir.path().join("hs256.previous"), [b'p'; 15]).expect("write");
    let err = weak
        .load_secrets()
        .expect_err("15 bytes even with the flag");
    assert_eq!(err.field(), Some("verifier.legacy.secret_files[0]"));
}

const GATEWAY: &str = r#"
[gateway]
issuer = "http://127.0.0.1:8080"

[[gateway.routes]]
name = "orders"
path_prefix = "/orders"
upstream = "http://127.0.0.1:9000"
sign = true
audience = "https://orders.internal"
"#;

#[test]
fn gateway_routes_load_with_defaults() {
    let cfg = load(&format!("phase = \"dual\"\n{VERIFIER}{GATEWAY}")).expect("valid");
    let g = cfg.require_gateway().expect("gateway");
    assert_eq!(g.listen.to_string(), DEFAULT_GATEWAY_LISTEN);
    assert_eq!(g.key_dir, Path::new(BASE).join("keys"));
    assert_eq!(g.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT);
    let r = &g.routes[0];
    assert!(r.verify && r.sign && !r.strip_prefix);
    assert_eq!(r.sign_ttl, DEFAULT_SIGN_TTL);
    assert_eq!(r.sign_header, DEFAULT_SIGN_HEADER);
    assert_eq!(r.if_present, IfPresent::Replace);
}

#[test]
fn gateway_refuses_what_it_could_not_do() {
    let verifying = format!("phase = \"dual\"\n{GATEWAY}");
    assert_eq!(
        err_field(&verifying).0,
        "verifier",
        "verify needs [verifier]"
    );
    let cases = [
        (
            "audience = \"https://orders.internal\"",
            "",
            "gateway.routes[0].audience",
        ),
        (
            "sign = true",
            "sign = true\nverify = false",
            "gateway.routes[0].service_identity",
        ),
        (
            "sign = true",
            "sign = true\nif_present = \"keep\"",
            "gateway.routes[0].if_present",
        ),
        (
            "sign = true",
            "sign = true\nsign_ttl = \"2h\"",
            "gateway.routes[0].sign_ttl",
        ),
        (
            "sign = true",
            "sign = true\nsign_header = \"x y\"",
            "gateway.routes[0].sign_header",
        ),
        (
            "name = \"orders\"",
            "name = \"a b\"",
            "gateway.routes[0].name",
        ),
        (
            "path_prefix = \"/orders\"",
            "path_prefix = \"orders\"",
            "gateway.routes[0].path_prefix",
        ),
        (
            "upstream = \"http://127.0.0.1:9000\"",
            "upstream = \"ftp://x\"",
            "gateway.routes[0].upstream",
        ),
        ("issuer = \"http://127.0.0.1:8080\"", "", "gateway.issuer"),
        (
            "sign = true",
            "sign = true\ncolour = 1",
            "gateway.routes[0].colour",
        ),
    ];
    for (from, to, field) in cases {
        let text = format!(
            "phase = \"dual\"\n{VERIFIER}{}",
            GATEWAY.replacen(from, to, 1)
        );
        let (got, message) = err_field(&text);
        assert!(got.starts_with(field), "{from} -> {to}: {got}: {message}");
    }
    let duplicate = format!(
        "phase = \"dual\"\n{VERIFIER}{GATEWAY}{}",
        &GATEWAY[GATEWAY.find("[[").unwrap_or(0)..]
    );
    assert_eq!(err_field(&duplicate).0, "gateway.routes[1].name");
}

#[test]
fn trusted_proxies_are_networks_or_addresses_and_none_by_default() {
    let cfg = load(&format!("phase = \"dual\"\n{ISSUER}")).expect("valid");
    assert!(cfg.issuer.expect("issuer").trusted_proxies.is_empty());
    let cfg = load(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key(r#"trusted_proxies = ["10.1.2.3/8", "192.0.2.7", "fd00::1/8"]"#)
    ))
    .expect("valid");
    let nets: Vec<String> = cfg
        .issuer
        .expect("issuer")
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    // Host bits cleared; one address is its own /32.
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);
    for bad in [r#"["10.0.0.0/33"]"#, r#"["proxy.internal"]"#, r#"[""]"#] {
        let (field, msg) = err_field(&format!(
            "phase = \"dual\"\n{}",
            with_issuer_key(&format!("trusted_proxies = {bad}"))
        ));
        assert_eq!(field, "issuer.trusted_proxies", "{bad}");
        assert!(msg.contains("is not a CIDR"), "{msg}");
    }
}

#[test]
fn grpc_listen_is_off_by_default_and_needs_its_own_port() {
    let cfg = load(&format!("phase = \"dual\"\n{VERIFIER}")).expect("valid");
    assert_eq!(cfg.verifier.expect("verifier").grpc_listen, None);
    let cfg = load(&format!(
        "phase = \"dual\"\n{VERIFIER}grpc_listen = \"127.0.0.1:8082\"\n"
    ))
    .expect("valid");
    assert_eq!(
        cfg.verifier.expect("verifier").grpc_listen,
        Some("127.0.0.1:8082".parse().expect("addr"))
    );
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{VERIFIER}listen = \"127.0.0.1:9000\"\ngrpc_listen = \"127.0.0.1:9000\"\n"
    ));
    assert_eq!(field, "verifier.grpc_listen");
    let (field, _) = err_field(&format!(
        "phase = \"dual\"\n{VERIFIER}grpc_listen = \"localhost\"\n"
    ));
    assert_eq!(field, "verifier.grpc_listen");
}

#[test]
fn proxy_protocol_is_off_by_default_and_needs_trusted_proxies() {
    let cfg = load(&format!("phase = \"dual\"\n{ISSUER}")).expect("valid");
    assert!(!cfg.issuer.expect("issuer").proxy_protocol);
    let (field, msg) = err_field(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("proxy_protocol = true")
    ));
    assert_eq!(field, "issuer.proxy_protocol");
    assert!(msg.contains("trusted_proxies"), "{msg}");
    let cfg = load(&format!(
        "phase = \"dual\"\n{}",
        with_issuer_key("proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]")
    ))
    .expect("valid");
    assert!(cfg.issuer.expect("issuer").proxy_protocol);
}

#[test]
fn key_prepublish_covers_the_verifiers_cache_and_the_replicas_pickup() {
    let with = |max_age: &str, prepublish: &str| {
        format!(
            "phase = \"dual\"\n{}",
            with_issuer_key(&format!(
                "jwks_max_age = \"{max_age}\"\nkey_prepublish = \"{prepublish}\""
            ))
        )
    };
    // Longer than jwks_max_age, but not by the second in which every
    // replica picks up a new key and the second of a verifier's refresh
    // tick: a verifier could still see a token first.
    let (field, msg) = err_field(&with("1m", "1m1500ms"));
    assert_eq!(field, "issuer.key_prepublish");
    assert!(
        msg.contains("every issuer replica picks up a new key"),
        "{msg}"
    );
    let cfg = load(&with("1m", "1m2s")).expect("jwks_max_age + 2s is enough");
    let issuer = cfg.issuer.expect("issuer");
    assert_eq!(issuer.key_prepublish, Duration::from_secs(62));
    assert_eq!(
        KEY_SYNC_INTERVAL + JWKS_REFRESH_TICK,
        Duration::from_secs(2)
    );
}

#[test]
fn deployment_keys_are_read_per_section() {
    let text = format!(
        "phase = \"dual\"\n{}{}",
        with_issuer_key("tls_cert_file = \"tls/issuer.crt\"\ntls_key_file = \"tls/issuer.key\"\nlog_format = \"json\"\nwatch_config = true"),
        VERIFIER.replace(
            "[verifier]\n",
            "[verifier]\njwks_ca_file = \"ca.crt\"\njwks_client_cert_file = \"c.crt\"\njwks_client_key_file = \"c.key\"\n"
        )
    );
    let cfg = load(&text).expect("valid");
    let issuer = cfg.issuer.expect("issuer");
    assert_eq!(
        issuer.serving.tls.as_ref().map(|t| t.cert_file.clone()),
        Some(Path::new(BASE).join("tls/issuer.crt"))
    );
    assert_eq!(issuer.serving.log_format, LogFormat::Json);
    assert!(issuer.serving.watch_config);
    assert_eq!(
        issuer.watched_files(),
        vec![Path::new(BASE).join("hs256.secret")]
    );
    let verifier = cfg.verifier.expect("verifier");
    assert_eq!(
        verifier.serving.tls, None,
        "sections do not share TLS files"
    );
    assert_eq!(verifier.jwks_ca_file, Some(Path::new(BASE).join("ca.crt")));
    assert_eq!(
        verifier.watched_files(),
        ["hs256.secret", "ca.crt", "c.crt", "c.key"]
            .map(|f| Path::new(BASE).join(f))
            .to_vec()
    );
    let (field, _) = err_field("phase = \"dual\"\n[verifier]\nissuer = \"x\"\naudience = \"y\"\nhs256_secret_file = \"s\"\njwks_client_cert_file = \"c.crt\"\n");
    assert_eq!(field, "verifier.jwks_client_key_file");
    let (field, _) = err_field("phase = \"dual\"\n[issuer]\nlog_format = \"xml\"\n");
    assert_eq!(field, "issuer.log_format");
    let gateway = "phase = \"dual\"\n[gateway]\nwatch_config = true\n[[gateway.routes]]\nname = \"r\"\nupstream = \"http://127.0.0.1:9000\"\nverify = false\n";
    let gateway = load(gateway).expect("valid").gateway.expect("gateway");
    assert!(gateway.serving.watch_config);
}
