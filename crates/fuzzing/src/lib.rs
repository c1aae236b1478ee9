//! keyshift-fuzzing: every parser that faces the outside, as a function of
//! arbitrary bytes that must never panic, hang or leak. `fuzz/` (outside the
//! workspace, cargo-fuzz on nightly: `make fuzz`) calls them with libFuzzer's
//! inputs; `tests/corpus.rs` replays every file of `fuzz/corpus/` and
//! `fuzz/artifacts/` through them on stable in `make test`, so every input a
//! fuzzer ever found stays a regression test.
//!
//! | target | what it feeds |
//! |---|---|
//! | [`jws`] | the compact-JWS split and the header parse of the verifier |
//! | [`verify`] | a whole `Verifier::verify` with a fixed key set and clock |
//! | [`jwks`] | the JWKS document parser |
//! | [`config`] | the config loader (TOML, then validation) |
//! | [`token_request`] | the token endpoint's form and `Authorization: Basic` parsing |
//!
//! ```
//! keyshift_fuzzing::jws(b"eyJhbGciOiJub25lIn0.e30.");
//! ```

use std::sync::OnceLock;

use keyshift_core::clock::ManualClock;
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Config, Phase};
use keyshift_verifier::jws;
use keyshift_verifier::Verifier;

/// The time of [`verify`]'s clock: tokens of the corpus carry `iat` around it.
pub const NOW: u64 = 1_800_000_000;

/// A fuzz target: any bytes in, nothing out, never a panic.
pub type Target = fn(&[u8]);

/// Every target by the name of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("jws", jws),
    ("verify", verify),
    ("jwks", jwks),
    ("config", config),
    ("token_request", token_request),
];

/// The verifier's compact-JWS split and header parse.
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((parts, header_b64)) = jws::split(token) {
        let mut stack = [0u8; jws::HEADER_STACK_BYTES];
        let mut heap = Vec::new();
        let _ = jws::header(header_b64, &mut stack, &mut heap);
        let mut sig = [0u8; jws::MAX_SIGNATURE_BYTES];
        let _ = parts.signature(&mut sig);
    }
}

/// The HS256 secret of [`verify`]'s verifier.
pub const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-32";

/// The RSA public key of [`verify`]'s key set (kid `fuzz-1`): a 2048-bit
/// modulus with e = 65537. The corpus has RS256 tokens that name it; no
/// private key is needed to reach every check but the signature's last step.
pub const JWKS: &str = include_str!("../../../fuzz/jwks.json");

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = "phase = \"dual\"\n[verifier]\nissuer = \"https://issuer.fuzz\"\n\
                    audience = \"https://api.fuzz\"\njwks_url = \"http://127.0.0.1:9/jwks.json\"\n\
                    hs256_secret_file = \"unused\"\ntoken_cache_size = 64\n\
                    unknown_kid_cooldown = \"1h\"\njwks_request_wait = \"1ms\"\n";
        let cfg = Config::from_toml_str(text, std::path::Path::new("/")).expect("fuzz config");
        let secret = HmacSecret::new(SECRET.to_vec()).expect("secret");
        let verifier = Verifier::new(
            Phase::Dual,
            cfg.require_verifier().expect("verifier"),
            Some(secret),
            ManualClock::at_secs(NOW),
        )
        .expect("verifier");
        verifier
            .jwks()
            .expect("jwks")
            .load_static(JWKS.as_bytes())
            .expect("fuzz JWKS");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture { runtime, verifier }
    })
}

/// A whole verification (size check, split, header, policy, signature,
/// claims, the token cache, the unknown-kid path) with a fixed key set and
/// clock; the required scope comes from the input's first byte.
pub fn verify(data: &[u8]) {
    let _ = verify_outcome(data);
}

/// [`verify`]'s decision, for the replay test to check that the seeds
/// reach where they should.
pub fn verify_outcome(data: &[u8]) -> Result<(), keyshift_verifier::VerifyError> {
    let f = fixture();
    let token = String::from_utf8_lossy(data);
    let scopes: &[&str] = match data.first() {
        Some(b) if b % 2 == 0 => &["read"],
        _ => &[],
    };
    f.runtime
        .block_on(f.verifier.verify_with_scopes(&token, scopes))
        .map(|_| ())
}

/// The JWKS document parser.
pub fn jwks(data: &[u8]) {
    let _ = keyshift_verifier::jwks::parse_jwks(data);
}

/// The config loader: TOML, then every validation.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::from_toml_str(text, std::path::Path::new("/etc/keyshift")) {
        if let Some(issuer) = &cfg.issuer {
            let _ = keyshift_issuer::auth::Authenticator::check_clients(&issuer.clients);
        }
    }
}

/// The token endpoint's body and `Authorization` header: the first line of
/// the input is the header value, the rest the form body.
pub fn token_request(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let Ok(form) = keyshift_issuer::form::TokenForm::parse(body) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(header) {
        if !header.is_empty() {
            headers.insert(http::header::AUTHORIZATION, value);
        }
    }
    let _ = keyshift_issuer::auth::credentials(&headers, &form);
}
