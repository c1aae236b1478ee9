//! The issuer's word on HS256's end: its `GET /migration`, fetched beside the
//! JWKS (every [`CHECK_EVERY`], and at once before a switch into phase
//! `asymmetric`). Only the issuer knows the HS256 tokens a verifier has not
//! seen yet; a verifier without its answer (a third-party issuer, an issuer
//! that is down) falls back on its own observations and says so.
//!
//! The URL is `verifier.issuer_migration_url`, by default derived from
//! `jwks_url` (see [`keyshift_core::config::derive_migration_url`]). An
//! answer older than [`MAX_ANSWER_AGE`] counts as none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use keyshift_core::error::chain;
use keyshift_core::migration::{IssuerMigration, ISSUER_SERVICE};
use keyshift_core::{Alg, Phase, SharedClock};
use serde::Serialize;

use crate::jwks::{FetchError, Fetched, Fetcher, Transport};

/// How often the issuer's answer is refreshed in the background.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// How old an answer may be and still count.
pub const MAX_ANSWER_AGE: Duration = Duration::from_secs(5 * 60);

struct Source {
    url: url::Url,
    fetcher: Fetcher,
}

/// What the last checks brought.
#[derive(Debug, Clone, Default)]
struct Seen {
    answer: Option<IssuerMigration>,
    answered_unix: Option<u64>,
    checked_unix: Option<u64>,
    error: Option<String>,
}

/// The issuer's answer as readiness uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerView {
    /// A recent answer.
    Answered(IssuerMigration),
    /// No usable answer, and why.
    Unknown(String),
}

/// The issuer's side of `/migration`: every field the issuer's.
#[derive(Debug, Clone, Serialize)]
pub struct IssuerStatus {
    /// Where it is asked (`null`: nowhere, see `error`).
    pub url: Option<String>,
    /// The issuer's phase, from its last answer.
    pub phase: Option<Phase>,
    /// What the issuer signs in that phase.
    pub signs: Option<Alg>,
    /// When the issuer last minted an HS256 token.
    pub hs256_last_issued_unix: Option<u64>,
    /// No HS256 token the issuer minted is valid after this.
    pub hs256_valid_until_unix: Option<u64>,
    /// When that answer came.
    pub answered_unix: Option<u64>,
    /// When the issuer was last asked.
    pub checked_unix: Option<u64>,
    /// Why the last check brought no answer, if it did not.
    pub error: Option<String>,
}

/// The issuer's `/migration`, as this verifier last saw it.
pub struct IssuerAuthority {
    url: Option<url::Url>,
    source: ArcSwapOption<Source>,
    seen: ArcSwap<Seen>,
    clock: SharedClock,
    next_check_ms: AtomicU64,
    checking: tokio::sync::Mutex<()>,
    /// Checks completed, so that a caller who waited for another's check
    /// takes its result instead of asking again.
    checks: AtomicU64,
}

impl std::fmt::Debug for IssuerAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerAuthority")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn source(
    url: Option<&url::Url>,
    transport: &Transport,
) -> Result<Option<Arc<Source>>, FetchError> {
    url.map(|u| {
        Ok(Arc::new(Source {
            url: u.clone(),
            fetcher: Fetcher::new(u, transport)?,
        }))
    })
    .transpose()
}

impl IssuerAuthority {
    /// Asks `url` (nothing is fetched until [`IssuerAuthority::check`]).
    pub fn new(
        url: Option<&url::Url>,
        transport: &Transport,
        clock: SharedClock,
    ) -> Result<IssuerAuthority, FetchError> {
        Ok(IssuerAuthority {
            url: url.cloned(),
            source: ArcSwapOption::new(source(url, transport)?),
            seen: ArcSwap::from_pointee(Seen::default()),
            clock,
            next_check_ms: AtomicU64::new(0),
            checking: tokio::sync::Mutex::new(()),
            checks: AtomicU64::new(0),
        })
    }

    /// Where the issuer is asked (fixed for the life of this value: a
    /// reload to another URL makes a new one).
    pub fn url(&self) -> Option<&url::Url> {
        self.url.as_ref()
    }

    /// Applies the transport (timeouts, TLS) of a reloaded config.
    pub fn set_transport(&self, transport: &Transport) -> Result<(), FetchError> {
        self.source.store(source(self.url.as_ref(), transport)?);
        Ok(())
    }

    /// Asks the issuer now (one check at a time; a caller that waited for
    /// another's gets that one's result).
    pub async fn check(&self) -> IssuerView {
        let before = self.checks.load(Ordering::Acquire);
        let started = self.clock.now();
        let _checking = self.checking.lock().await;
        if self.checks.load(Ordering::Acquire) != before {
            return self.view();
        }
        let Some(source) = self.source.load_full() else {
            let seen = Seen {
                checked_unix: Some(started.as_secs()),
                error: Some(
                    "no issuer_migration_url (jwks_url does not end in /.well-known/jwks.json, or it is \"off\")"
                        .to_owned(),
                ),
                ..Seen::default()
            };
            self.seen.store(Arc::new(seen));
            self.checks.fetch_add(1, Ordering::Release);
            return self.view();
        };
        let result = ask(&source).await;
        let now = self.clock.now();
        let mut seen = (**self.seen.load()).clone();
        seen.checked_unix = Some(now.as_secs());
        match result {
            Ok(answer) => {
                seen.answer = Some(answer);
                seen.answered_unix = Some(now.as_secs());
                seen.error = None;
            }
            Err(why) => {
                tracing::debug!(url = %source.url, error = %why, "the issuer's /migration did not answer");
                seen.error = Some(why);
            }
        }
        self.seen.store(Arc::new(seen));
        self.checks.fetch_add(1, Ordering::Release);
        self.next_check_ms
            .store(ms(now + CHECK_EVERY), Ordering::Relaxed);
        self.view()
    }

    /// Asks the issuer if [`CHECK_EVERY`] has passed since the last check.
    pub async fn check_if_due(&self) {
        if ms(self.clock.now()) >= self.next_check_ms.load(Ordering::Relaxed) {
            self.check().await;
        }
    }

    /// The last answer if it is recent enough, else why there is none.
    pub fn view(&self) -> IssuerView {
        let seen = self.seen.load();
        let now = self.clock.now_secs();
        match (&seen.answer, seen.answered_unix) {
            (Some(answer), Some(at)) if now.saturating_sub(at) <= MAX_ANSWER_AGE.as_secs() => {
                IssuerView::Answered(answer.clone())
            }
            (Some(_), Some(at)) => IssuerView::Unknown(format!(
                "its last answer is {} s old{}",
                now.saturating_sub(at),
                seen.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
            _ => IssuerView::Unknown(
                seen.error
                    .clone()
                    .unwrap_or_else(|| "not asked yet".to_owned()),
            ),
        }
    }

    /// The issuer's side of `/migration`.
    pub fn status(&self) -> IssuerStatus {
        let seen = self.seen.load();
        let answer = seen.answer.as_ref();
        IssuerStatus {
            url: self.url.as_ref().map(url::Url::to_string),
            phase: answer.map(|a| a.phase),
            signs: answer.map(|a| a.signs),
            hs256_last_issued_unix: answer.and_then(|a| a.hs256_last_issued_unix),
            hs256_valid_until_unix: answer.and_then(|a| a.hs256_valid_until_unix),
            answered_unix: seen.answered_unix,
            checked_unix: seen.checked_unix,
            error: seen.error.clone(),
        }
    }
}

/// One request to the issuer's `/migration`; the error is one line.
async fn ask(source: &Source) -> Result<IssuerMigration, String> {
    let url = &source.url;
    let body = match source.fetcher.fetch(None).await {
        Ok(Fetched::Body { body, .. }) => body,
        Ok(Fetched::NotModified { .. }) => {
            return Err(format!("{url}: 304 to a request without If-None-Match"))
        }
        Err(FetchError::Status(status)) if status == http::StatusCode::NOT_FOUND => {
            return Err(format!(
                "{url}: 404, no /migration (a third-party issuer, or a keyshift issuer older than this verifier)"
            ))
        }
        Err(e) => return Err(format!("{url}: {}", chain(&e))),
    };
    match serde_json::from_slice::<IssuerMigration>(&body) {
        Ok(answer) if answer.service == ISSUER_SERVICE => Ok(answer),
        Ok(answer) => Err(format!(
            "{url}: answered for service `{}`, not an issuer",
            answer.service
        )),
        Err(e) => Err(format!(
            "{url}: not a keyshift issuer's /migration answer ({e})"
        )),
    }
}
