//! The token endpoint's capacity per client-secret hash kind: one client
//! per kind the issuer accepts (`sha256:`, argon2id, bcrypt, PBKDF2-SHA256,
//! see keyshift-issuer's `auth::hash`), each driven with its right secret
//! for a few seconds after the phase walk, and the issuer instances a
//! `--token-rate` needs by the verifier's capacity rule ([`capacity::plan`]).
//!
//! What could distort the figures, and what the harness does about it:
//! - the failed-auth limiter (`failed_auth_limit` and its per-address and
//!   per-client ceilings) counts failures only, and the harness sends right
//!   secrets only, with `failed_auth_limit` raised to 1000 besides
//!   ([`crate::services`]); every answer must be 200, and
//!   `keyshift_token_requests_total` must count only `issued`;
//! - slow hashes are verified on the blocking pool, 2 × cores at a time,
//!   a request waiting at most 2 s for a slot (then 429): the harness keeps
//!   to 2 × cores concurrent clients, so the queue holds no one longer than
//!   one verification, and a 429 would show as a failure.
//!
//! The hashes are made here at the cost a real store has (argon2's
//! defaults, which `keyshift secret hash --argon2` uses; bcrypt cost 10, the
//! default of PHP's `password_hash` and Spring's `BCryptPasswordEncoder`;
//! PBKDF2-SHA256 600 000 rounds, OWASP's figure), or, in `--quick`, at the
//! cheapest cost each scheme accepts: a smoke test of the path, not a figure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, SaltString};
use keyshift_core::Phase;
use keyshift_testkit::Client;

use crate::capacity;
use crate::cli::TokenEndpointOptions;
use crate::http;
use crate::prom;
use crate::report::{TokenEndpointSummary, TokenKindFigures};
use crate::token::{self, Credentials};

/// The limiter note of the report.
pub const LIMITER: &str = "right secrets only (the failed-auth limiter counts failures; failed_auth_limit raised to 1000 besides), 2 × cores concurrent clients (the slow-hash verification slots, so none waits out their 2 s queue); any answer but 200 is a failure";

/// One capacity client: its credentials, its config entry and what it measures.
#[derive(Debug, Clone)]
pub struct HashClient {
    /// `sha256`, `argon2id`, `bcrypt` or `pbkdf2-sha256`.
    pub kind: &'static str,
    /// The hash's cost parameters, in words.
    pub params: String,
    /// Id and right secret.
    pub credentials: Credentials,
    /// The `[[issuer.clients]]` entry.
    pub entry: Client,
}

/// The four capacity clients, hashes made now (`real_cost`: as a real store
/// holds them; otherwise the cheapest each scheme accepts).
pub fn clients(real_cost: bool) -> anyhow::Result<Vec<HashClient>> {
    let salt_bytes: [u8; 16] = {
        let nanos = keyshift_core::clock::Clock::now(&keyshift_core::clock::SystemClock).as_nanos();
        (nanos ^ 0x5eed_5eed_5eed_5eed_5eed_5eed_5eed_5eed).to_le_bytes()
    };
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let creds = |kind: &str| Credentials {
        id: format!("cap-{kind}"),
        secret: format!("capacity-secret-{kind}-0123456789"),
    };
    let scopes = ["read"];
    let mut out = Vec::new();

    let c = creds("sha256");
    out.push(HashClient {
        kind: "sha256",
        params: "sha256:<hex>".to_owned(),
        entry: Client::sha256(&c.id, c.secret.as_bytes(), &scopes),
        credentials: c,
    });

    let c = creds("argon2id");
    let params = if real_cost {
        argon2::Params::default()
    } else {
        argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?
    };
    let words = format!(
        "m={} KiB, t={}, p={}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost()
    );
    let phc = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(c.secret.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    out.push(HashClient {
        kind: "argon2id",
        params: words,
        entry: Client::with_hash(&c.id, phc, &scopes),
        credentials: c,
    });

    let c = creds("bcrypt");
    let cost = if real_cost { 10 } else { 4 };
    let text = bcrypt::hash_with_salt(c.secret.as_bytes(), cost, salt_bytes)
        .context("bcrypt")?
        .format_for_version(bcrypt::Version::TwoB);
    out.push(HashClient {
        kind: "bcrypt",
        params: format!("$2b$, cost {cost}"),
        entry: Client::with_hash(&c.id, text, &scopes),
        credentials: c,
    });

    let c = creds("pbkdf2-sha256");
    let rounds = if real_cost { 600_000 } else { 1_000 };
    let phc = pbkdf2::Pbkdf2
        .hash_password_customized(
            c.secret.as_bytes(),
            None,
            None,
            pbkdf2::Params {
                rounds,
                output_length: 32,
            },
            &salt,
        )
        .map_err(|e| anyhow::anyhow!("pbkdf2: {e}"))?
        .to_string();
    out.push(HashClient {
        kind: "pbkdf2-sha256",
        params: format!("{rounds} rounds"),
        entry: Client::with_hash(&c.id, phc, &scopes),
        credentials: c,
    });
    Ok(out)
}

/// Concurrent clients: the issuer's slow-hash slots (2 × cores).
pub fn users() -> usize {
    2 * std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Drives the issuer's token endpoint with each client in turn.
pub async fn measure(
    http_client: &reqwest::Client,
    issuer: SocketAddr,
    phase: Phase,
    clients: &[HashClient],
    opts: TokenEndpointOptions,
) -> anyhow::Result<TokenEndpointSummary> {
    let users = users();
    let mut kinds = Vec::new();
    for c in clients {
        println!(
            "token endpoint: {} ({}), {users} clients for {} s",
            c.kind,
            c.params,
            opts.seconds.as_secs()
        );
        let before = http::scrape(http_client, issuer).await?;
        let (elapsed, answers) =
            load(http_client, issuer, &c.credentials, users, opts.seconds).await;
        let after = http::scrape(http_client, issuer).await?;
        kinds.push(figures(
            c,
            elapsed,
            answers,
            &before,
            &after,
            opts.target_rate,
            users,
        ));
    }
    Ok(TokenEndpointSummary {
        phase: Some(phase),
        users,
        seconds: opts.seconds.as_secs_f64(),
        target_rate: opts.target_rate,
        limiter: LIMITER.to_owned(),
        kinds,
    })
}

/// One answer: its status (`None`: no answer) and latency.
type Answer = (Option<u16>, Duration);

/// `users` clients posting token requests one after the other until
/// `seconds` have passed (a request out then is waited for, within the
/// harness's timeouts).
async fn load(
    http_client: &reqwest::Client,
    issuer: SocketAddr,
    creds: &Credentials,
    users: usize,
    seconds: Duration,
) -> (Duration, Vec<Answer>) {
    let url = format!("http://{issuer}/oauth/token");
    let body = token::token_request_body(creds);
    let started = Instant::now();
    let deadline = started + seconds;
    let tasks: Vec<_> = (0..users)
        .map(|_| {
            let (client, url, body) = (http_client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let status = match client
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(resp) => {
                            let s = resp.status().as_u16();
                            let _ = resp.bytes().await;
                            Some(s)
                        }
                        Err(_) => None,
                    };
                    answers.push((status, t.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(a) = t.await {
            all.extend(a);
        }
    }
    (started.elapsed(), all)
}

/// The figures of one kind.
fn figures(
    c: &HashClient,
    elapsed: Duration,
    answers: Vec<Answer>,
    before: &prom::Samples,
    after: &prom::Samples,
    target_rate: f64,
    users: usize,
) -> TokenKindFigures {
    let ok = answers.iter().filter(|(s, _)| *s == Some(200)).count() as u64;
    let mut ms: Vec<f64> = answers
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let rps = ok as f64 / elapsed.as_secs_f64().max(1e-3);
    let p99 = percentile(&ms, 0.99);
    TokenKindFigures {
        kind: c.kind.to_owned(),
        params: c.params.clone(),
        requests: answers.len() as u64,
        rps,
        p50_ms: percentile(&ms, 0.50),
        p99_ms: p99,
        failures: answers.len() as u64 - ok,
        outcomes: prom::deltas_by(before, after, prom::TOKEN_REQUESTS, &["outcome"]),
        capacity: capacity::plan(target_rate, rps, p99, None, users),
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}

/// Problems of any run: a failed token request, or an outcome but
/// `issued` at the issuer (the limiter or a slot wait distorted the figures).
pub fn problems(t: &TokenEndpointSummary) -> Vec<String> {
    let mut problems = Vec::new();
    for k in &t.kinds {
        if k.failures > 0 {
            problems.push(format!(
                "token endpoint, {}: {} of {} requests not answered 200",
                k.kind, k.failures, k.requests
            ));
        }
        let other: BTreeMap<&String, &u64> = k
            .outcomes
            .iter()
            .filter(|(o, _)| o.as_str() != "issued")
            .collect();
        if !other.is_empty() {
            problems.push(format!(
                "token endpoint, {}: the issuer counted {other:?} (right secrets only were sent)",
                k.kind
            ));
        }
    }
    problems
}

/// `--quick`'s expectations: every kind measured, with tokens issued.
pub fn quick_problems(t: &TokenEndpointSummary) -> Vec<String> {
    let mut problems = Vec::new();
    for kind in ["sha256", "argon2id", "bcrypt", "pbkdf2-sha256"] {
        match t.kinds.iter().find(|k| k.kind == kind) {
            None => problems.push(format!("token endpoint: {kind} not measured")),
            Some(k) if k.outcomes.get("issued").copied().unwrap_or(0) == 0 || k.rps <= 0.0 => {
                problems.push(format!("token endpoint: no {kind} token issued"))
            }
            Some(k) if k.capacity.as_ref().and_then(|c| c.instances).is_none() => {
                problems.push(format!("token endpoint: no instance count for {kind}"))
            }
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::secret::SecretHash;

    #[test]
    fn every_hash_kind_the_issuer_accepts_is_made_and_parses() {
        let cs = clients(false).expect("clients");
        let kinds: Vec<&str> = cs.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["sha256", "argon2id", "bcrypt", "pbkdf2-sha256"]);
        for c in &cs {
            let hash = SecretHash::parse(&c.entry.secret_hash)
                .unwrap_or_else(|e| panic!("{}: {e}", c.kind));
            assert_eq!(
                matches!(hash, SecretHash::Sha256(_)),
                c.kind == "sha256",
                "{}",
                c.kind
            );
            assert!(!c.entry.secret_hash.contains(&c.credentials.secret));
        }
        assert!(cs[2].entry.secret_hash.starts_with("$2b$04$"));
        assert!(cs[3]
            .entry
            .secret_hash
            .starts_with("$pbkdf2-sha256$i=1000,"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }

    #[test]
    fn a_refusal_or_an_outcome_but_issued_is_a_problem() {
        let good = TokenKindFigures {
            kind: "bcrypt".into(),
            requests: 10,
            rps: 5.0,
            outcomes: [("issued".to_owned(), 10)].into_iter().collect(),
            capacity: capacity::plan(200.0, 5.0, 100.0, None, 4),
            ..TokenKindFigures::default()
        };
        let mut t = TokenEndpointSummary {
            kinds: vec![good.clone()],
            ..TokenEndpointSummary::default()
        };
        assert_eq!(problems(&t), Vec::<String>::new());
        assert_eq!(
            good.capacity.as_ref().and_then(|c| c.instances),
            Some(40),
            "ceil(200 / 5)"
        );
        t.kinds[0].failures = 1;
        t.kinds[0].outcomes.insert("rate_limited".into(), 1);
        let p = problems(&t);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("rate_limited"));
        let q = quick_problems(&t);
        assert!(q.iter().any(|x| x.contains("sha256 not measured")), "{q:?}");
        assert!(!q.iter().any(|x| x.contains("bcrypt")), "{q:?}");
    }
}
