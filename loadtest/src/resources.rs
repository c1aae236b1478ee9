//! The services' memory and file descriptors over a soak: a sampler that
//! reads each one's `VmRSS` and counts its /proc/<pid>/fd entries every
//! second, and the bounds the soak holds them to.
//!
//! The bounds compare the end of the load with the end of the warm-up,
//! both under load (the same goose users connected):
//!
//! - **fds**: at most [`FD_SLACK`] more. Connections come and go by a few
//!   (the JWKS fetch, token refills); a leak of one per request, per reload
//!   or per JWKS fetch over a soak is far more.
//! - **RSS**: at most 1.5 × + [`RSS_SLACK_KIB`]. A healthy service still
//!   grows after warm-up: its bounded caches fill (the verifier's token
//!   cache holds up to 10,000 tokens, its negative cache random kids) and
//!   the allocator keeps freed memory in its arenas at the high-water mark
//!   of the busiest second; a leak grows with the requests instead, and a
//!   soak sends millions (the report says how few bytes per request would
//!   have broken the bound).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::services::Pid;

/// How often the sampler reads /proc.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// File descriptors the end of the load may hold beyond the warm-up's.
pub const FD_SLACK: u64 = 16;
/// Resident memory the end of the load may hold beyond 1.5 × the
/// warm-up's, KiB (32 MiB).
pub const RSS_SLACK_KIB: u64 = 32 * 1024;

/// One service's use at one instant.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

impl Usage {
    /// Reads `pid`'s use from /proc; `None` if it cannot be read.
    pub fn of(pid: Pid) -> Option<Usage> {
        Some(Usage {
            rss_kib: pid.rss_kib()?,
            fds: pid.fd_count()?,
        })
    }
}

/// Both services at one instant.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t_s: f64,
    /// The issuer, if /proc could be read.
    pub issuer: Option<Usage>,
    /// The verifier, if /proc could be read.
    pub verifier: Option<Usage>,
}

/// The most RSS (KiB) allowed at the end for `warm` after warm-up.
pub fn rss_limit_kib(warm: u64) -> u64 {
    warm.saturating_mul(3) / 2 + RSS_SLACK_KIB
}

/// The most fds allowed at the end for `warm` after warm-up.
pub fn fd_limit(warm: u64) -> u64 {
    warm.saturating_add(FD_SLACK)
}

/// One bound and whether it held (`soak.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bound {
    /// `issuer RSS`, `verifier fds`, …
    pub what: String,
    /// After warm-up (KiB for RSS).
    pub after_warm_up: u64,
    /// At the end of the load.
    pub at_end: u64,
    /// The most allowed at the end.
    pub limit: u64,
    /// `at_end <= limit`.
    pub held: bool,
}

/// The four bounds (RSS and fds of each service) between `warm` and `end`;
/// a service missing from either sample has none.
pub fn bounds(warm: &Sample, end: &Sample) -> Vec<Bound> {
    let mut out = Vec::new();
    for (name, w, e) in [
        ("issuer", warm.issuer, end.issuer),
        ("verifier", warm.verifier, end.verifier),
    ] {
        let (Some(w), Some(e)) = (w, e) else {
            continue;
        };
        for (what, before, after, limit) in [
            ("RSS", w.rss_kib, e.rss_kib, rss_limit_kib(w.rss_kib)),
            ("fds", w.fds, e.fds, fd_limit(w.fds)),
        ] {
            out.push(Bound {
                what: format!("{name} {what}"),
                after_warm_up: before,
                at_end: after,
                limit,
                held: after <= limit,
            });
        }
    }
    out
}

fn complete(s: &Sample) -> bool {
    s.issuer.is_some() && s.verifier.is_some()
}

/// The sample after warm-up (the first complete one at or after `warm_at`)
/// and the one at the end of the load (the last complete one at or before
/// `load_end`, and after the first); times in seconds since the start.
pub fn warm_and_end(samples: &[Sample], warm_at: f64, load_end: f64) -> Option<(Sample, Sample)> {
    let warm = samples
        .iter()
        .find(|s| complete(s) && s.t_s >= warm_at && s.t_s <= load_end)?;
    let end = samples
        .iter()
        .rev()
        .find(|s| complete(s) && s.t_s <= load_end && s.t_s > warm.t_s)?;
    Some((*warm, *end))
}

/// Reads both services every [`SAMPLE_EVERY`] until stopped.
#[derive(Debug)]
pub struct Sampler {
    epoch: Instant,
    pids: (Pid, Pid),
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `issuer` and `verifier`, times counted from `epoch`,
    /// for at most `longest` (then it stops by itself).
    pub fn start(epoch: Instant, issuer: Pid, verifier: Pid, longest: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let most = longest.as_secs() / SAMPLE_EVERY.as_secs().max(1) + 1;
        let task = tokio::spawn({
            let samples = samples.clone();
            async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for _ in 0..most {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => break,
                    }
                    let s = sample(epoch, issuer, verifier);
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                }
            }
        });
        Sampler {
            epoch,
            pids: (issuer, verifier),
            samples,
            stop,
            task,
        }
    }

    /// Seconds since the epoch.
    pub fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// One sample now, outside the series.
    pub fn sample_now(&self) -> Sample {
        sample(self.epoch, self.pids.0, self.pids.1)
    }

    /// Stops the sampler; returns the series.
    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn sample(epoch: Instant, issuer: Pid, verifier: Pid) -> Sample {
    Sample {
        t_s: epoch.elapsed().as_secs_f64(),
        issuer: Usage::of(issuer),
        verifier: Usage::of(verifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, rss_kib: u64, fds: u64) -> Sample {
        let u = Some(Usage { rss_kib, fds });
        Sample {
            t_s,
            issuer: u,
            verifier: u,
        }
    }

    #[test]
    fn the_limits_are_one_and_a_half_times_plus_32_mib_and_16_fds() {
        assert_eq!(rss_limit_kib(10_000), 15_000 + 32_768);
        assert_eq!(rss_limit_kib(0), 32_768);
        assert_eq!(rss_limit_kib(u64::MAX), u64::MAX / 2 + 32_768);
        assert_eq!(fd_limit(20), 36);
        assert_eq!(fd_limit(u64::MAX), u64::MAX);
    }

    #[test]
    fn bounds_hold_at_the_limit_and_break_past_it() {
        let warm = at(5.0, 10_000, 20);
        let at_limit = at(60.0, 47_768, 36);
        let b = bounds(&warm, &at_limit);
        assert_eq!(b.len(), 4);
        assert!(b.iter().all(|b| b.held), "{b:?}");
        let past = bounds(&warm, &at(60.0, 47_769, 37));
        assert!(past.iter().all(|b| !b.held), "{past:?}");
        assert_eq!(
            past.iter().map(|b| b.what.as_str()).collect::<Vec<_>>(),
            ["issuer RSS", "issuer fds", "verifier RSS", "verifier fds"]
        );
        let mut half = at(60.0, 1, 1);
        half.verifier = None;
        assert_eq!(bounds(&warm, &half).len(), 2, "no bound without a reading");
    }

    #[test]
    fn warm_up_and_end_samples_are_taken_under_load() {
        let mut gap = at(3.0, 1, 1);
        gap.issuer = None;
        let samples = [
            at(0.0, 1, 1),
            at(1.0, 2, 2),
            at(2.0, 3, 3),
            gap,
            at(4.0, 5, 5),
            at(9.0, 9, 9),
            at(10.0, 10, 10),
        ];
        let (warm, end) = warm_and_end(&samples, 2.5, 9.5).expect("both");
        assert_eq!(
            (warm.t_s, end.t_s),
            (4.0, 9.0),
            "incomplete samples skipped"
        );
        assert!(
            warm_and_end(&samples, 9.5, 9.6).is_none(),
            "no sample in the window"
        );
        assert!(
            warm_and_end(&samples, 9.0, 9.5).is_none(),
            "the end must follow the warm-up"
        );
        assert!(warm_and_end(&[], 0.0, 1.0).is_none());
    }

    #[tokio::test]
    async fn the_sampler_reads_a_live_process_every_second_until_stopped() {
        let me = Pid::try_from(i64::from(std::process::id())).expect("pid");
        let sampler = Sampler::start(Instant::now(), me, me, Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let now = sampler.sample_now();
        assert!(now.issuer.is_some_and(|u| u.rss_kib > 0 && u.fds >= 3));
        let samples = sampler.stop().await;
        assert!(
            (1..=3).contains(&samples.len()),
            "a first sample at once, one a second: {samples:?}"
        );
        assert!(samples.iter().all(complete));
    }
}
