//! The soak's background token requests: `POST /oauth/token` at
//! [`RATE_PER_SECOND`], nine in ten with a good client's credentials (each
//! must get its token, 200), one in ten with a wrong secret for a client id
//! of its own, the guesser's ([`GUESSER_ID`]: 401, then 429 once the
//! issuer's failed-auth limit for that id and address is reached).
//!
//! The guesser's id is one the pool never mints with: the issuer counts
//! failures per (client id, network), with higher ceilings per network and
//! per client id, and holds a client that authenticated before from the same
//! address only to its own count. So the guesses must not, and here cannot,
//! lock out the good clients on the same loopback address: a 429 to a good
//! client fails the soak.
//!
//! Bounded: one request at a time, each within the harness's timeouts; the
//! loop ends when told to stop, at its deadline, or after rate × deadline
//! requests, whichever comes first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::answers::{self, Class, LiveTally, Tally};
use crate::token::{self, Credentials};

/// Token requests per second.
pub const RATE_PER_SECOND: u32 = 20;
/// One request in this many has a wrong secret.
pub const WRONG_SECRET_EVERY: u64 = 10;
/// The client id the wrong secrets are sent for (configured, so the
/// guesses are against a real client).
pub const GUESSER_ID: &str = "soak-guessed";

/// The guesser's entry in the config: its right secret is never sent.
pub fn guessed_client() -> Credentials {
    Credentials {
        id: GUESSER_ID.to_owned(),
        secret: "soak-guessed-right-secret-never-sent-0123".to_owned(),
    }
}

/// What the guesser sends.
fn wrong_secret() -> Credentials {
    Credentials {
        id: GUESSER_ID.to_owned(),
        secret: "a-wrong-guess".to_owned(),
    }
}

/// Whether a token-endpoint answer of `class` is right: a good client gets
/// its token; a wrong secret gets 401, or 429 once the limit is reached.
pub fn as_expected(wrong: bool, class: Class) -> bool {
    if wrong {
        matches!(class, Class::Unauthorized | Class::RateLimited)
    } else {
        class == Class::Ok
    }
}

/// The most wrong secrets the issuer may answer with 401 (each a failure
/// it counts) over `elapsed`: `limit` per fixed window of `window`, a new
/// window starting only at a failure after the last one ended.
pub fn most_admitted_failures(limit: u32, window: Duration, elapsed: Duration) -> u64 {
    let windows = if window.is_zero() {
        u64::MAX
    } else {
        elapsed.as_nanos().div_ceil(window.as_nanos()).max(1) as u64
    };
    u64::from(limit).saturating_mul(windows)
}

/// Sent and answered, by credentials (`soak.json`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenCounts {
    /// Good clients' requests.
    pub good: Tally,
    /// The guesser's.
    pub wrong_secret: Tally,
}

impl TokenCounts {
    /// `self - earlier`.
    pub fn since(self, earlier: &TokenCounts) -> TokenCounts {
        TokenCounts {
            good: self.good.since(&earlier.good),
            wrong_secret: self.wrong_secret.since(&earlier.wrong_secret),
        }
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub struct TokenTraffic {
    good: LiveTally,
    wrong_secret: LiveTally,
}

impl TokenTraffic {
    /// The counts now.
    pub fn counts(&self) -> TokenCounts {
        TokenCounts {
            good: self.good.tally(),
            wrong_secret: self.wrong_secret.tally(),
        }
    }
}

/// Sends token requests to `issuer` until `stop` turns true (or its sender
/// goes), or `deadline` has passed; counts into `traffic`. Good requests
/// cycle through `good`.
pub async fn run(
    http: reqwest::Client,
    issuer: SocketAddr,
    good: Vec<Credentials>,
    traffic: Arc<TokenTraffic>,
    mut stop: watch::Receiver<bool>,
    deadline: Duration,
) {
    if good.is_empty() {
        return;
    }
    let url = format!("http://{issuer}/oauth/token");
    let wrong = wrong_secret();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE_PER_SECOND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let most = u64::from(RATE_PER_SECOND).saturating_mul(deadline.as_secs().max(1));
    for n in 0..most {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() || stop.has_changed().is_err() || started.elapsed() > deadline {
            break;
        }
        let is_wrong = n % WRONG_SECRET_EVERY == WRONG_SECRET_EVERY - 1;
        let (creds, tally) = if is_wrong {
            (&wrong, &traffic.wrong_secret)
        } else {
            let i = (n as usize) % good.len();
            match good.get(i) {
                Some(c) => (c, &traffic.good),
                None => continue,
            }
        };
        tally.sent();
        let sent = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(token::token_request_body(creds))
            .send()
            .await;
        let status = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read the (small) body so the connection can be reused.
                let _ = resp.bytes().await;
                Some(status)
            }
            Err(_) => None,
        };
        // The token endpoint needs no JWKS: no 503 of it is intended.
        tally.answered(answers::classify(status, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_clients_need_their_token_and_guesses_a_401_or_429() {
        assert!(as_expected(false, Class::Ok));
        assert!(
            !as_expected(false, Class::RateLimited),
            "locked out by the guesser"
        );
        assert!(!as_expected(false, Class::Unauthorized));
        assert!(as_expected(true, Class::Unauthorized));
        assert!(as_expected(true, Class::RateLimited));
        assert!(!as_expected(true, Class::Ok), "a wrong secret got a token");
        assert!(!as_expected(true, Class::ServerError));
    }

    #[test]
    fn failures_admitted_grow_by_the_limit_per_window() {
        let m = Duration::from_secs(60);
        assert_eq!(most_admitted_failures(10, m, Duration::from_secs(12)), 10);
        assert_eq!(most_admitted_failures(10, m, Duration::from_secs(60)), 10);
        assert_eq!(most_admitted_failures(10, m, Duration::from_secs(61)), 20);
        assert_eq!(most_admitted_failures(10, m, Duration::from_secs(600)), 100);
        assert_eq!(most_admitted_failures(10, m, Duration::ZERO), 10);
        assert_eq!(
            most_admitted_failures(10, Duration::ZERO, m),
            u64::MAX,
            "no window, no bound"
        );
    }

    #[tokio::test]
    async fn the_driver_stops_when_told_and_counts_every_answer() {
        let issuer = crate::testutil::upstream(crate::testutil::response(
            "401 Unauthorized",
            "{\"error\":\"invalid_client\"}",
        ))
        .await;
        let traffic = Arc::new(TokenTraffic::default());
        let (tx, rx) = watch::channel(false);
        let http = crate::http::client().expect("client");
        let task = tokio::spawn(run(
            http,
            issuer,
            crate::token::builtin_clients(),
            traffic.clone(),
            rx,
            Duration::from_secs(30),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
        let c = traffic.counts();
        let all = c.good.plus(&c.wrong_secret);
        assert!(all.sent >= 2, "{c:?}");
        assert_eq!(
            all.sent,
            all.answers.total(),
            "each request answered or not"
        );
        // The stub answers 8 connections, then closes its listener: 401s, then no answers.
        assert_eq!(all.answers.unauthorized + all.answers.no_answer, all.sent);
    }
}
