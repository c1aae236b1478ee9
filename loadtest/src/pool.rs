//! The token pool goose users draw from, and how tokens are minted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use anyhow::{bail, Context};
use keyshift_core::b64;

use crate::services::{client_id, client_secret, CLIENTS};

/// What a token should get from `/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A legitimate token: 200.
    Accept,
    /// A straggler or an attack: 401, counted as an expected rejection.
    Reject,
}

/// One pooled token.
#[derive(Debug, Clone)]
pub struct Tok {
    /// `Authorization` header value.
    pub header: String,
    /// The expected answer.
    pub expect: Expect,
}

static POOL: RwLock<Vec<Tok>> = RwLock::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

/// Replaces the pool.
pub fn set(tokens: Vec<Tok>) {
    *POOL.write().unwrap_or_else(|p| p.into_inner()) = tokens;
}

/// Tokens in the pool.
pub fn len() -> usize {
    POOL.read().map(|p| p.len()).unwrap_or(0)
}

/// Adds tokens (e.g. minted after a rotation).
pub fn extend(tokens: Vec<Tok>) {
    POOL.write()
        .unwrap_or_else(|p| p.into_inner())
        .extend(tokens);
}

/// A pseudo-random token (xorshift; no need for a CSPRNG to pick load).
pub fn pick() -> Option<Tok> {
    let pool = POOL.read().unwrap_or_else(|p| p.into_inner());
    if pool.is_empty() {
        return None;
    }
    let mut x = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    pool.get((x % pool.len() as u64) as usize).cloned()
}

/// Mints `n` tokens through `POST /oauth/token`, round-robin over the clients.
pub async fn mint(
    client: &reqwest::Client,
    issuer: SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % CLIENTS;
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            client_id(c),
            client_secret(c)
        );
        let resp = client
            .post(format!("http://{issuer}/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .context("token request")?;
        if !resp.status().is_success() {
            bail!("token endpoint answered {}", resp.status());
        }
        let bytes = resp.bytes().await.context("token response body")?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).context("token response is not JSON")?;
        let token = json["access_token"].as_str().context("no access_token")?;
        out.push(token.to_owned());
    }
    Ok(out)
}

/// The `alg` of a token.
pub fn alg(token: &str) -> String {
    token
        .split('.')
        .next()
        .and_then(|h| b64::decode(h).ok())
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An RS256-looking token with a random kid and a junk signature (attack traffic).
pub fn random_kid_token(seed: u64, payload_from: &str) -> String {
    let header = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"attack-{seed:016x}"}}"#);
    let payload = payload_from.split('.').nth(1).unwrap_or("e30");
    format!(
        "{}.{payload}.{}",
        b64::encode(header),
        b64::encode([0x5au8; 256])
    )
}

/// Bearer header values.
pub fn bearer(tokens: &[String], expect: Expect) -> Vec<Tok> {
    tokens
        .iter()
        .map(|t| Tok {
            header: format!("Bearer {t}"),
            expect,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_tokens_are_rs256_with_random_kids() {
        let t = random_kid_token(7, "x.eyJzdWIiOiJhIn0.y");
        assert_eq!(alg(&t), "RS256");
        assert_ne!(t, random_kid_token(8, "x.eyJzdWIiOiJhIn0.y"));
    }

    #[test]
    fn pick_draws_from_the_pool() {
        set(vec![]);
        assert!(pick().is_none());
        set(bearer(&["a".into(), "b".into()], Expect::Accept));
        for _ in 0..10 {
            assert!(pick().is_some());
        }
    }
}
