//! Tokens: client credentials, minting through the real `POST /oauth/token`
//! (client credentials grant), and forged attack tokens. Their headers are
//! read with [`keyshift_testkit::jwt::header`] (no signature check: the
//! harness only needs `alg` and `kid`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyshift_core::b64;
use keyshift_core::claims::ACCESS_TOKEN_TYP;
use keyshift_core::config::MAX_TOKEN_TTL;
use keyshift_core::Alg;

/// Clients the harness configures when it starts the services.
pub const BUILTIN_CLIENTS: usize = 20;

/// Longest a batch of mints may take, whatever its size.
const MINT_BATCH_DEADLINE: Duration = Duration::from_secs(60);

/// One client's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The harness's own clients (`svc-00` … `svc-19`).
pub fn builtin_clients() -> Vec<Credentials> {
    (0..BUILTIN_CLIENTS)
        .map(|i| Credentials {
            id: format!("svc-{i:02}"),
            secret: format!("loadtest-secret-{i:02}-0123456789"),
        })
        .collect()
}

/// Parses a credentials file: one `client_id:client_secret` per line; blank
/// lines and `#` comments are skipped. At least one client.
pub fn parse_clients(text: &str) -> anyhow::Result<Vec<Credentials>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, secret)) = line.split_once(':') else {
            bail!("line {}: expected client_id:client_secret", n + 1);
        };
        if id.is_empty() || secret.is_empty() {
            bail!("line {}: empty client id or secret", n + 1);
        }
        out.push(Credentials {
            id: id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    if out.is_empty() {
        bail!("no client in the file");
    }
    Ok(out)
}

/// A token from the token endpoint.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The JWT.
    pub token: String,
    /// Its `expires_in`, at most [`MAX_TOKEN_TTL`] (a larger answer is clamped,
    /// so adding it to an `Instant` cannot overflow).
    pub expires_in: Duration,
    /// Index of the client that minted it.
    pub client: usize,
}

/// Mints tokens for the configured clients and counts what it asked for.
#[derive(Debug)]
pub struct Minter {
    http: reqwest::Client,
    url: String,
    clients: Vec<Credentials>,
    attempts: AtomicU64,
    issued: AtomicU64,
}

/// How many mints were attempted and how many succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MintCounts {
    /// Requests sent.
    pub attempts: u64,
    /// Tokens received.
    pub issued: u64,
}

impl MintCounts {
    /// `self - earlier`.
    pub fn since(self, earlier: MintCounts) -> MintCounts {
        MintCounts {
            attempts: self.attempts.saturating_sub(earlier.attempts),
            issued: self.issued.saturating_sub(earlier.issued),
        }
    }
}

impl Minter {
    /// A minter for the issuer at `issuer`; `clients` must not be empty.
    pub fn new(
        http: reqwest::Client,
        issuer: SocketAddr,
        clients: Vec<Credentials>,
    ) -> anyhow::Result<Minter> {
        if clients.is_empty() {
            bail!("no client credentials to mint tokens with");
        }
        Ok(Minter {
            http,
            url: format!("http://{issuer}/oauth/token"),
            clients,
            attempts: AtomicU64::new(0),
            issued: AtomicU64::new(0),
        })
    }

    /// Counts so far.
    pub fn counts(&self) -> MintCounts {
        MintCounts {
            attempts: self.attempts.load(Ordering::Relaxed),
            issued: self.issued.load(Ordering::Relaxed),
        }
    }

    /// One token for client `client % clients` (bounded by the client's
    /// timeouts). An `expires_in` above [`MAX_TOKEN_TTL`], which no keyshift
    /// issuer answers, is clamped to it.
    pub async fn mint(&self, client: usize) -> anyhow::Result<Minted> {
        let client = client % self.clients.len();
        let creds = self
            .clients
            .get(client)
            .context("client index out of range")?;
        let body = token_request_body(creds);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .context("token request")?;
        let status = resp.status();
        if !status.is_success() {
            bail!("token endpoint answered {status} for client {}", creds.id);
        }
        let bytes = resp.bytes().await.context("token response body")?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).context("token response is not JSON")?;
        let token = json["access_token"]
            .as_str()
            .context("token response without access_token")?;
        let expires_in = json["expires_in"]
            .as_u64()
            .context("token response without expires_in")?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Minted {
            token: token.to_owned(),
            expires_in: Duration::from_secs(expires_in).min(MAX_TOKEN_TTL),
            client,
        })
    }

    /// `n` tokens, round-robin over the clients from `first_client`, within
    /// [`MINT_BATCH_DEADLINE`].
    pub async fn mint_many(&self, n: usize, first_client: usize) -> anyhow::Result<Vec<Minted>> {
        let deadline = Instant::now() + MINT_BATCH_DEADLINE;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if Instant::now() > deadline {
                bail!(
                    "minting {n} tokens took longer than {} s",
                    MINT_BATCH_DEADLINE.as_secs()
                );
            }
            out.push(self.mint(first_client.wrapping_add(i)).await?);
        }
        Ok(out)
    }
}

/// The form of a client-credentials token request with `creds` in the body.
pub fn token_request_body(creds: &Credentials) -> String {
    format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        form_encode(&creds.id),
        form_encode(&creds.secret)
    )
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An RS256-looking token with kid `attack-<seed>` and a junk signature, the
/// claims borrowed from a real token so only the kid is wrong.
pub fn attack_token(seed: u64, payload_b64: &str) -> String {
    let header = format!(
        r#"{{"alg":"{}","typ":"{ACCESS_TOKEN_TYP}","kid":"attack-{seed:016x}"}}"#,
        Alg::Rs256
    );
    format!(
        "{}.{payload_b64}.{}",
        b64::encode(header),
        b64::encode([0x5au8; 256])
    )
}

/// The payload segment of a token (`e30`, i.e. `{}`, if there is none).
pub fn payload_b64(token: &str) -> &str {
    token.split('.').nth(1).unwrap_or("e30")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use keyshift_testkit::jwt::header;

    #[test]
    fn attack_tokens_are_rs256_with_a_kid_per_seed() {
        let a = attack_token(7, "eyJzdWIiOiJhIn0");
        let h = header(&a).expect("header");
        assert_eq!(h.alg, Alg::Rs256);
        assert_eq!(h.kid.as_deref(), Some("attack-0000000000000007"));
        assert_ne!(a, attack_token(8, "eyJzdWIiOiJhIn0"));
        assert_eq!(payload_b64(&a), "eyJzdWIiOiJhIn0");
    }

    #[test]
    fn clients_file_parses_and_refuses_bad_lines() {
        let c = parse_clients("# mine\n\nsvc-a:s3cret:with:colons\n svc-b:x \n").expect("parse");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].id, "svc-a");
        assert_eq!(c[0].secret, "s3cret:with:colons");
        assert_eq!(c[1].id, "svc-b");
        assert!(parse_clients("no-colon\n").is_err());
        assert!(parse_clients(":secret\n").is_err());
        assert!(parse_clients("# nothing\n").is_err());
        assert!(
            !format!("{:?}", c[0]).contains("s3cret"),
            "secrets are not printed"
        );
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("svc-00_a.b~"), "svc-00_a.b~");
        assert_eq!(form_encode("a b&c=d+é"), "a%20b%26c%3Dd%2B%C3%A9");
    }

    /// A minter for the stub at `addr` with one client.
    fn minter(addr: SocketAddr) -> Minter {
        let http = crate::http::client().expect("client");
        Minter::new(http, addr, builtin_clients()[..1].to_vec()).expect("minter")
    }

    /// What `mint` makes of a token endpoint answering `status` and `body`.
    async fn mint_from(status: &str, body: &str) -> (anyhow::Result<Minted>, MintCounts) {
        let m = minter(testutil::upstream(testutil::response(status, body)).await);
        let got = m.mint(0).await;
        (got, m.counts())
    }

    #[tokio::test]
    async fn a_huge_expires_in_is_clamped_to_the_longest_ttl() {
        let (got, counts) = mint_from(
            "200 OK",
            r#"{"access_token":"a.b.c","expires_in":18446744073709551615}"#,
        )
        .await;
        let minted = got.expect("minted");
        assert_eq!(minted.token, "a.b.c");
        assert_eq!(minted.expires_in, MAX_TOKEN_TTL);
        assert_eq!(
            counts,
            MintCounts {
                attempts: 1,
                issued: 1
            }
        );
        // What used to panic: the lifetime added to an Instant (the pool's refresh time).
        let (pool, _rx) = crate::pool::Pool::new(
            vec![crate::pool::SlotInit {
                minted,
                straggler: false,
                minted_at: Instant::now(),
            }],
            None,
            crate::pool::Mix::default(),
        )
        .expect("pool");
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn mint_failures_are_errors_and_not_counted_as_issued() {
        for (status, body, expected) in [
            (
                "401 Unauthorized",
                "",
                "token endpoint answered 401 Unauthorized for client svc-00",
            ),
            ("200 OK", "not json!", "token response is not JSON"),
            (
                "200 OK",
                r#"{"expires_in":60}"#,
                "token response without access_token",
            ),
            (
                "200 OK",
                r#"{"access_token":"a.b"}"#,
                "token response without expires_in",
            ),
            (
                "200 OK",
                r#"{"access_token":"a.b","expires_in":-1}"#,
                "token response without expires_in",
            ),
        ] {
            let (got, counts) = mint_from(status, body).await;
            let e = format!("{:#}", got.expect_err(expected));
            assert!(e.contains(expected), "{e}");
            assert_eq!(
                counts,
                MintCounts {
                    attempts: 1,
                    issued: 0
                },
                "{expected}"
            );
        }
    }
}
