//! Command-line flags, validated once into [`Options`]: nothing past this
//! module sees a contradiction, a zero pool or a share outside [0, 1].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use clap::Parser;
use keyshift_core::duration::HumanDuration;
use keyshift_core::Phase;

use crate::http;
use crate::services::Pid;

/// Phases run by default, in order.
pub const DEFAULT_PHASES: [Phase; 3] = [Phase::Dual, Phase::Transition, Phase::Asymmetric];
/// Phases run by default with `--legacy-issuer`: the old issuer's phase first.
pub const LEGACY_PHASES: [Phase; 4] = [
    Phase::Legacy,
    Phase::Dual,
    Phase::Transition,
    Phase::Asymmetric,
];
/// `--legacy-share`: requests carrying a legacy issuer's token. Defaults to 0.2.
pub const DEFAULT_LEGACY_SHARE: f64 = 0.2;
/// `--token-rate`: token requests/s the issuer fleet must carry. Defaults to
/// 200 (a fleet of 10 000 clients renewing 15-minute tokens a minute early
/// makes about 12/s; 200/s leaves room for restarts that renew all at once).
pub const DEFAULT_TOKEN_RATE: f64 = 200.0;
/// Load per client-secret hash kind at the token endpoint. Defaults to 5 s.
pub const DEFAULT_TOKEN_SECONDS: Duration = Duration::from_secs(5);
/// `--quick`'s token-endpoint load per hash kind.
const QUICK_TOKEN_SECONDS: Duration = Duration::from_secs(1);
/// `--quick`'s load through the gateway per phase.
const QUICK_GATEWAY_DURATION: Duration = Duration::from_secs(3);
/// Load time per phase. Defaults to 20 s.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(20);
/// Goose users. Defaults to 16.
pub const DEFAULT_USERS: usize = 16;
/// Legitimate tokens (clients) per pool. Defaults to 400.
pub const DEFAULT_POOL_SIZE: usize = 400;
/// Uses of a token before its client replaces it. Defaults to 200.
pub const DEFAULT_REUSE: u64 = 200;
/// The binary under test when the harness starts the services.
pub const DEFAULT_KEYSHIFT: &str = "target/release/keyshift";
/// Longest phase accepted (every loop of the harness is bounded).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most goose users accepted.
pub const MAX_USERS: usize = 4096;
/// Largest pool accepted.
pub const MAX_POOL_SIZE: usize = 100_000;

/// `--soak`: seconds of load in all. Defaults to 60 s.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(60);
/// The longest soak accepted.
pub const MAX_SOAK: Duration = Duration::from_secs(3 * 3600);
/// The shortest phase of a soak: its rotation must sign before the outage.
const MIN_SOAK_PHASE: Duration = Duration::from_secs(5);
/// `--soak --quick`: 10 s of load over two phases (from `dual`, started in).
const QUICK_SOAK: Duration = Duration::from_secs(10);
const QUICK_SOAK_PHASES: [Phase; 2] = [Phase::Transition, Phase::Asymmetric];

/// `--quick`: the smoke run of `make test` (explicit flags still win).
const QUICK_DURATION: Duration = Duration::from_secs(6);
const QUICK_USERS: usize = 4;
const QUICK_POOL_SIZE: usize = 40;
const QUICK_REUSE: u64 = 50;

/// Load-test keyshift across the migration phases.
///
/// Without --issuer/--verifier the harness starts both services on loopback
/// and walks them through the phases. With them it targets services already
/// running on loopback: given --config, --issuer-pid and --verifier-pid it
/// switches their phase by editing the config and sending SIGHUP (restoring
/// the file at the end); without, it measures the phase they are in.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The keyshift binary: started as issuer and verifier; with --issuer it is only run for `keys rotate`. Defaults to target/release/keyshift.
    #[arg(long, value_name = "PATH")]
    pub keyshift: Option<PathBuf>,
    /// Target a running issuer at this loopback base URL (e.g. http://127.0.0.1:8080) instead of starting one.
    #[arg(long, value_name = "URL", requires = "verifier")]
    pub issuer: Option<String>,
    /// Target a running verifier at this loopback base URL (e.g. http://127.0.0.1:8081).
    #[arg(long, value_name = "URL", requires = "issuer")]
    pub verifier: Option<String>,
    /// With --issuer/--verifier: the config file both services run from (its `phase` is edited to switch phases).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With --config: the issuer's process id (sent SIGHUP).
    #[arg(long, value_name = "PID")]
    pub issuer_pid: Option<i64>,
    /// With --config: the verifier's process id (sent SIGHUP).
    #[arg(long, value_name = "PID")]
    pub verifier_pid: Option<i64>,
    /// With --issuer: client credentials, one `client_id:client_secret` per line. Defaults to the harness's own clients (see --print-clients).
    #[arg(long, value_name = "FILE")]
    pub clients: Option<PathBuf>,
    /// Print the [[issuer.clients]] entries of the harness's own clients (to add to a config for --issuer) and exit.
    #[arg(long)]
    pub print_clients: bool,
    /// Phases to run, in order. Defaults to dual,transition,asymmetric (not with --issuer unless --config is given).
    #[arg(long, value_delimiter = ',', value_name = "PHASES")]
    pub phases: Option<Vec<Phase>>,
    /// Load time per phase: seconds (`20`) or a duration (`20s`, `2m`). Defaults to 20 s.
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub duration: Option<Duration>,
    /// Concurrent goose users. Defaults to 16.
    #[arg(long)]
    pub users: Option<usize>,
    /// Legitimate tokens per pool, one per client slot. Defaults to 400.
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Uses of a token before its client replaces it with a fresh one (minted in the background); 0: only near expiry. Defaults to 200.
    #[arg(long)]
    pub reuse: Option<u64>,
    /// Stale HS256 stragglers in phase asymmetric, as a share of the pool (expected 401).
    #[arg(long, default_value_t = 0.05)]
    pub straggler_share: f64,
    /// Share of requests carrying an attack token with a fresh random kid (expected 401); 0 turns it off.
    #[arg(long, default_value_t = 0.02)]
    pub attack_share: f64,
    /// Rotate the signing key in the RS256 phases.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rotate: bool,
    /// Make the JWKS endpoint fail for a window of each RS256 phase.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub outage: bool,
    /// Target rate of legitimate requests for the capacity line.
    #[arg(long)]
    pub target_rps: Option<f64>,
    /// p99 objective in milliseconds for the capacity line (needs --target-rps).
    #[arg(long)]
    pub p99_ms: Option<f64>,
    /// Mix tokens of an independent legacy HS256 issuer (legacy shapes: `iss` legacy-auth or none, no `aud`, no `kid`, numeric `sub`, scope array) into the traffic, with the verifier's [verifier.legacy] profile on; the phases default to legacy,dual,transition,asymmetric. Starts the services itself.
    #[arg(long)]
    pub legacy_issuer: bool,
    /// With --legacy-issuer: share of requests carrying a legacy token, in [0, 1]. Defaults to 0.2.
    #[arg(long, requires = "legacy_issuer")]
    pub legacy_share: Option<f64>,
    /// Also drive each phase's tokens through a `keyshift gateway` (route verify = true, sign = true) in front of a loopback upstream, and report it beside the verifier alone. Starts the services itself.
    #[arg(long)]
    pub through_gateway: bool,
    /// Token requests/s the issuer fleet must carry: the token-endpoint capacity line gives the issuer instances for it, per client-secret hash kind. Defaults to 200.
    #[arg(long)]
    pub token_rate: Option<f64>,
    /// Where reports go (a timestamped folder is made inside).
    #[arg(long, default_value = "loadtest/reports")]
    pub out: PathBuf,
    /// A short smoke run (6 s per phase, 4 users, 40 tokens, reuse 50) that also checks its own report.
    #[arg(long)]
    pub quick: bool,
    /// A soak: the phase walk for --seconds in all, with forged and expired tokens, background token requests (some with a wrong secret) and RSS/fd bounds; writes soak.md and soak.json. Starts the services itself.
    #[arg(long)]
    pub soak: bool,
    /// With --soak: load in all, split evenly over the phases: seconds (`600`) or a duration (`10m`). Defaults to 60 s (10 s over transition,asymmetric with --quick).
    #[arg(long, value_parser = parse_soak_seconds, value_name = "TIME", requires = "soak")]
    pub seconds: Option<Duration>,
}

/// Seconds as a bare number, or a duration with units; 1 s to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_up_to(s, MAX_DURATION)
}

/// `--seconds`: as [`parse_duration`], up to [`MAX_SOAK`].
pub fn parse_soak_seconds(s: &str) -> Result<Duration, String> {
    parse_duration_up_to(s, MAX_SOAK)
}

fn parse_duration_up_to(s: &str, max: Duration) -> Result<Duration, String> {
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(s.parse().map_err(|_| format!("`{s}` is too large"))?)
    } else {
        s.parse::<HumanDuration>().map_err(|e| e.to_string())?.0
    };
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}`: at least 1 s"));
    }
    if d.subsec_nanos() != 0 {
        return Err(format!("`{s}`: whole seconds only"));
    }
    if d > max {
        return Err(format!("`{s}`: at most {} s", max.as_secs()));
    }
    Ok(d)
}

/// What the harness drives.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The harness starts `keyshift issuer` and `keyshift verifier` itself.
    Managed {
        /// The binary.
        keyshift: PathBuf,
    },
    /// Services already running on loopback.
    External {
        /// Issuer address.
        issuer: std::net::SocketAddr,
        /// Verifier address.
        verifier: std::net::SocketAddr,
        /// How to switch their phase, if given.
        control: Option<Control>,
    },
}

/// Phase control over external services.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// The config file both run from.
    pub config: PathBuf,
    /// Issuer pid.
    pub issuer_pid: Pid,
    /// Verifier pid.
    pub verifier_pid: Pid,
    /// For `keyshift keys rotate`, if given.
    pub keyshift: Option<PathBuf>,
}

/// Pool settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolOptions {
    /// Legitimate slots (≥ 1).
    pub size: usize,
    /// Uses before replacement; `None`: only near expiry.
    pub reuse: Option<u64>,
    /// Stragglers as a share of `size`, in [0, 1].
    pub straggler_share: f64,
    /// Share of attack requests, in [0, 1].
    pub attack_share: f64,
}

/// `--soak` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoakOptions {
    /// Load in all (the phases' durations add up to it, rounded down).
    pub seconds: Duration,
}

/// The token-endpoint capacity measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenEndpointOptions {
    /// Load per client-secret hash kind.
    pub seconds: Duration,
    /// Token requests/s to plan issuer instances for.
    pub target_rate: f64,
    /// Hashes at real-world cost (`false` in `--quick`: the cheapest
    /// parameters each scheme accepts, a smoke test of the path only).
    pub real_cost: bool,
}

/// Validated options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// What to drive.
    pub target: Target,
    /// Phases in order; `None`: the one the services are in (external, no control).
    pub phases: Option<Vec<Phase>>,
    /// Load per phase.
    pub duration: Duration,
    /// Goose users.
    pub users: usize,
    /// Token pool.
    pub pool: PoolOptions,
    /// Key rotation in RS256 phases.
    pub rotate: bool,
    /// JWKS outage window in RS256 phases.
    pub outage: bool,
    /// `(target_rps, p99_ms)` of the capacity line.
    pub capacity: Option<(f64, Option<f64>)>,
    /// Report root.
    pub out: PathBuf,
    /// Smoke run with self-check.
    pub quick: bool,
    /// Client credentials file.
    pub clients: Option<PathBuf>,
    /// `--soak`: managed, with the soak's extras.
    pub soak: Option<SoakOptions>,
    /// `--legacy-issuer`: the share of requests with a legacy token.
    pub legacy_share: Option<f64>,
    /// `--through-gateway`: load per phase through the gateway.
    pub gateway: Option<Duration>,
    /// The token-endpoint capacity measurement (managed runs but soaks).
    pub token_endpoint: Option<TokenEndpointOptions>,
    /// Things the options made the harness skip or ignore, said once.
    pub notes: Vec<String>,
}

impl Args {
    /// Checks every flag and combination; the error names the flag.
    pub fn validate(self) -> anyhow::Result<Options> {
        let mut notes = Vec::new();
        let share = |name: &str, v: f64| -> anyhow::Result<f64> {
            ensure!(
                (0.0..=1.0).contains(&v),
                "--{name} {v}: must be between 0 and 1"
            );
            Ok(v)
        };
        let straggler_share = share("straggler-share", self.straggler_share)?;
        let attack_share = share("attack-share", self.attack_share)?;

        let pick = |given: Option<usize>, quick: usize, normal: usize| {
            given.unwrap_or(if self.quick { quick } else { normal })
        };
        let users = pick(self.users, QUICK_USERS, DEFAULT_USERS);
        ensure!(
            (1..=MAX_USERS).contains(&users),
            "--users {users}: must be between 1 and {MAX_USERS}"
        );
        let size = pick(self.pool_size, QUICK_POOL_SIZE, DEFAULT_POOL_SIZE);
        ensure!(
            (1..=MAX_POOL_SIZE).contains(&size),
            "--pool-size {size}: must be between 1 and {MAX_POOL_SIZE}"
        );
        let reuse = match self.reuse.unwrap_or(if self.quick {
            QUICK_REUSE
        } else {
            DEFAULT_REUSE
        }) {
            0 => None,
            n => Some(n),
        };
        let duration = self.duration.unwrap_or(if self.quick {
            QUICK_DURATION
        } else {
            DEFAULT_DURATION
        });

        let capacity = match (self.target_rps, self.p99_ms) {
            (None, None) => None,
            (None, Some(_)) => bail!("--p99-ms needs --target-rps"),
            (Some(t), p99) => {
                ensure!(
                    t > 0.0 && t.is_finite(),
                    "--target-rps {t}: must be a positive number"
                );
                if let Some(p) = p99 {
                    ensure!(
                        p > 0.0 && p.is_finite(),
                        "--p99-ms {p}: must be a positive number"
                    );
                }
                Some((t, p99))
            }
        };

        if let Some(phases) = &self.phases {
            ensure!(!phases.is_empty(), "--phases: name at least one phase");
            for (i, p) in phases.iter().enumerate() {
                ensure!(
                    !phases[..i].contains(p),
                    "--phases: {p} appears twice (each phase has one report)"
                );
            }
        }

        let control_flags = [
            self.config.is_some(),
            self.issuer_pid.is_some(),
            self.verifier_pid.is_some(),
        ];
        let target = match (&self.issuer, &self.verifier) {
            (None, None) => {
                ensure!(
                    !control_flags.iter().any(|f| *f),
                    "--config, --issuer-pid and --verifier-pid are for services started elsewhere: give --issuer and --verifier too"
                );
                ensure!(
                    self.clients.is_none(),
                    "--clients is for --issuer: the harness configures its own clients when it starts the services"
                );
                Target::Managed {
                    keyshift: self
                        .keyshift
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYSHIFT)),
                }
            }
            (Some(i), Some(v)) => {
                let issuer = http::loopback_url(i).context("--issuer")?;
                let verifier = http::loopback_url(v).context("--verifier")?;
                ensure!(
                    issuer != verifier,
                    "--issuer and --verifier are the same address"
                );
                let control = match (&self.config, self.issuer_pid, self.verifier_pid) {
                    (Some(config), Some(ip), Some(vp)) => {
                        let issuer_pid = pid("--issuer-pid", ip)?;
                        let verifier_pid = pid("--verifier-pid", vp)?;
                        ensure!(
                            issuer_pid != verifier_pid,
                            "--issuer-pid and --verifier-pid are the same process"
                        );
                        Some(Control {
                            config: config.clone(),
                            issuer_pid,
                            verifier_pid,
                            keyshift: self.keyshift.clone(),
                        })
                    }
                    (None, None, None) => {
                        ensure!(
                            self.phases.is_none(),
                            "--phases needs --config, --issuer-pid and --verifier-pid to switch the services' phase; without them the harness measures the phase they are in"
                        );
                        if self.keyshift.is_some() {
                            notes.push("--keyshift is not used: without --config the harness does not rotate keys".to_owned());
                        }
                        None
                    }
                    _ => bail!(
                        "give --config, --issuer-pid and --verifier-pid together (to switch phases), or none of them (to measure the current phase)"
                    ),
                };
                Target::External {
                    issuer,
                    verifier,
                    control,
                }
            }
            // clap's `requires` makes these unreachable; kept as errors, not panics.
            _ => bail!("give --issuer and --verifier together"),
        };
        let managed = matches!(target, Target::Managed { .. });
        for (flag, on) in [
            ("--legacy-issuer", self.legacy_issuer),
            ("--through-gateway", self.through_gateway),
        ] {
            ensure!(
                !on || managed,
                "{flag} starts the services itself (it writes their config): drop --issuer and --verifier"
            );
            ensure!(
                !(on && self.soak),
                "{flag} is a load-test mode; a soak keeps its own traffic"
            );
        }
        let legacy_share = if self.legacy_issuer {
            Some(share(
                "legacy-share",
                self.legacy_share.unwrap_or(DEFAULT_LEGACY_SHARE),
            )?)
        } else {
            None
        };
        let token_rate = self.token_rate.unwrap_or(DEFAULT_TOKEN_RATE);
        ensure!(
            token_rate > 0.0 && token_rate.is_finite(),
            "--token-rate {token_rate}: must be a positive number"
        );
        let token_endpoint = if managed && !self.soak {
            Some(TokenEndpointOptions {
                seconds: if self.quick {
                    QUICK_TOKEN_SECONDS
                } else {
                    DEFAULT_TOKEN_SECONDS
                },
                target_rate: token_rate,
                real_cost: !self.quick,
            })
        } else {
            if self.token_rate.is_some() {
                notes.push("--token-rate is not used: the token-endpoint capacity is measured only when the harness starts the services (and not in a soak)".to_owned());
            }
            None
        };
        let gateway = self.through_gateway.then(|| {
            if self.quick && self.duration.is_none() {
                QUICK_GATEWAY_DURATION
            } else {
                duration
            }
        });
        let phases = match (&target, self.phases) {
            (Target::External { control: None, .. }, _) => None,
            (_, Some(p)) => Some(p),
            (_, None) if self.soak && self.quick => Some(QUICK_SOAK_PHASES.to_vec()),
            (_, None) if self.legacy_issuer => Some(LEGACY_PHASES.to_vec()),
            (_, None) => Some(DEFAULT_PHASES.to_vec()),
        };
        let (soak, duration) = if self.soak {
            ensure!(
                matches!(target, Target::Managed { .. }),
                "--soak starts the services itself (it reads their memory and file descriptors and cuts their JWKS): drop --issuer and --verifier"
            );
            ensure!(
                self.duration.is_none(),
                "--duration is per phase; give a soak's whole length with --seconds"
            );
            let seconds =
                self.seconds
                    .unwrap_or(if self.quick { QUICK_SOAK } else { DEFAULT_SOAK });
            let n = phases.as_ref().map(Vec::len).unwrap_or(1).max(1) as u32;
            let per_phase = Duration::from_secs((seconds / n).as_secs());
            ensure!(
                per_phase >= MIN_SOAK_PHASE,
                "--seconds {}: at least {} s per phase ({n} phases)",
                seconds.as_secs(),
                MIN_SOAK_PHASE.as_secs()
            );
            ensure!(
                per_phase <= MAX_DURATION,
                "--seconds {}: at most {} s per phase",
                seconds.as_secs(),
                MAX_DURATION.as_secs()
            );
            (Some(SoakOptions { seconds }), per_phase)
        } else {
            (None, duration)
        };
        Ok(Options {
            target,
            phases,
            duration,
            users,
            pool: PoolOptions {
                size,
                reuse,
                straggler_share,
                attack_share,
            },
            rotate: self.rotate,
            outage: self.outage,
            capacity,
            out: self.out,
            quick: self.quick,
            clients: self.clients,
            soak,
            legacy_share,
            gateway,
            token_endpoint,
            notes,
        })
    }
}

/// The pid `flag` gives (see [`Pid`] for what may be signalled).
fn pid(flag: &str, v: i64) -> anyhow::Result<Pid> {
    Pid::try_from(v).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Options> {
        let argv = std::iter::once("keyshift-loadtest").chain(args.iter().copied());
        Args::try_parse_from(argv)?.validate()
    }

    fn err(args: &[&str]) -> String {
        format!("{:#}", parse(args).expect_err("must be refused"))
    }

    #[test]
    fn defaults_start_the_services_and_run_three_phases() {
        let o = parse(&[]).expect("defaults");
        assert_eq!(
            o.target,
            Target::Managed {
                keyshift: PathBuf::from(DEFAULT_KEYSHIFT)
            }
        );
        assert_eq!(o.phases, Some(DEFAULT_PHASES.to_vec()));
        assert_eq!(o.duration, DEFAULT_DURATION);
        assert_eq!(o.pool.size, DEFAULT_POOL_SIZE);
        assert_eq!(o.pool.reuse, Some(DEFAULT_REUSE));
    }

    #[test]
    fn quick_sets_small_values_but_explicit_flags_win() {
        let o = parse(&["--quick", "--users", "2"]).expect("quick");
        assert_eq!(o.duration, QUICK_DURATION);
        assert_eq!(o.users, 2);
        assert_eq!(o.pool.size, QUICK_POOL_SIZE);
        assert_eq!(o.pool.reuse, Some(QUICK_REUSE));
    }

    #[test]
    fn phases_are_parsed_as_phases_and_checked() {
        let o = parse(&["--phases", "transition,asymmetric"]).expect("phases");
        assert_eq!(o.phases, Some(vec![Phase::Transition, Phase::Asymmetric]));
        assert!(err(&["--phases", "dual,final"]).contains("unknown phase"));
        assert!(err(&["--phases", "dual,dual"]).contains("appears twice"));
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("500ms").is_err());
        assert!(parse_duration("1500ms").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
    }

    #[test]
    fn zero_pools_users_and_shares_out_of_range_are_refused() {
        assert!(err(&["--pool-size", "0"]).contains("--pool-size 0"));
        assert!(err(&["--users", "0"]).contains("--users 0"));
        assert!(err(&["--straggler-share", "1.5"]).contains("--straggler-share"));
        assert!(err(&["--attack-share=-0.1"]).contains("--attack-share"));
        assert!(err(&["--attack-share", "NaN"]).contains("--attack-share"));
        assert_eq!(parse(&["--reuse", "0"]).expect("reuse 0").pool.reuse, None);
    }

    #[test]
    fn capacity_needs_a_positive_target() {
        assert!(err(&["--p99-ms", "5"]).contains("needs --target-rps"));
        assert!(err(&["--target-rps", "0"]).contains("positive"));
        assert!(err(&["--target-rps", "100", "--p99-ms", "0"]).contains("positive"));
        assert_eq!(
            parse(&["--target-rps", "100", "--p99-ms", "5"])
                .expect("capacity")
                .capacity,
            Some((100.0, Some(5.0)))
        );
    }

    #[test]
    fn external_services_without_control_measure_the_current_phase() {
        let o = parse(&[
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://localhost:8081",
            "--keyshift",
            "k",
        ])
        .expect("external");
        assert!(matches!(o.target, Target::External { control: None, .. }));
        assert_eq!(o.phases, None);
        assert_eq!(o.notes.len(), 1, "--keyshift is noted as unused");
        assert!(err(&[
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081",
            "--phases",
            "dual"
        ])
        .contains("--phases needs --config"));
    }

    #[test]
    fn external_services_with_control_switch_phases() {
        let o = parse(&[
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081",
            "--config",
            "k.toml",
            "--issuer-pid",
            "1234",
            "--verifier-pid",
            "1235",
        ])
        .expect("controlled");
        let Target::External {
            control: Some(c), ..
        } = o.target
        else {
            panic!("control expected");
        };
        assert_eq!(
            (c.issuer_pid, c.verifier_pid),
            (
                Pid::try_from(1234).expect("pid"),
                Pid::try_from(1235).expect("pid")
            )
        );
        assert_eq!(c.keyshift, None);
        assert_eq!(o.phases, Some(DEFAULT_PHASES.to_vec()));
    }

    #[test]
    fn external_flags_are_checked_together() {
        let base = [
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081",
        ];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            err(&v)
        };
        assert!(with(&["--config", "k.toml"]).contains("together"));
        assert!(
            with(&["--config", "k", "--issuer-pid", "0", "--verifier-pid", "9"])
                .contains("--issuer-pid 0")
        );
        assert!(
            with(&["--config", "k", "--issuer-pid=-5", "--verifier-pid", "9"])
                .contains("--issuer-pid -5")
        );
        assert!(
            with(&["--config", "k", "--issuer-pid", "1", "--verifier-pid", "9"])
                .contains("greater than 1")
        );
        assert!(with(&[
            "--config",
            "k",
            "--issuer-pid",
            "4294967297",
            "--verifier-pid",
            "9"
        ])
        .contains("not a process id"));
        assert!(
            with(&["--config", "k", "--issuer-pid", "9", "--verifier-pid", "9"])
                .contains("same process")
        );
        assert!(err(&["--issuer", "http://127.0.0.1:8080"]).contains("--verifier"));
        assert!(err(&[
            "--issuer",
            "http://10.1.2.3:80",
            "--verifier",
            "http://127.0.0.1:1"
        ])
        .contains("loopback"));
        assert!(err(&[
            "--issuer",
            "http://127.0.0.1:80",
            "--verifier",
            "http://127.0.0.1:80"
        ])
        .contains("same address"));
        assert!(err(&["--config", "k.toml"]).contains("give --issuer and --verifier"));
        assert!(err(&["--clients", "c.txt"]).contains("--clients is for --issuer"));
    }

    #[test]
    fn the_legacy_issuer_adds_phase_legacy_first_and_needs_managed_services() {
        let o = parse(&["--legacy-issuer", "--quick"]).expect("legacy");
        assert_eq!(o.phases, Some(LEGACY_PHASES.to_vec()));
        assert_eq!(o.legacy_share, Some(DEFAULT_LEGACY_SHARE));
        let o = parse(&[
            "--legacy-issuer",
            "--legacy-share",
            "0.5",
            "--phases",
            "dual",
        ])
        .expect("share");
        assert_eq!(o.legacy_share, Some(0.5));
        assert_eq!(o.phases, Some(vec![Phase::Dual]), "explicit phases win");
        assert_eq!(parse(&[]).expect("default").legacy_share, None);
        assert!(err(&["--legacy-share", "0.5"]).contains("--legacy-issuer"));
        assert!(err(&["--legacy-issuer", "--legacy-share", "2"]).contains("--legacy-share"));
        assert!(err(&["--legacy-issuer", "--soak"]).contains("soak"));
        assert!(err(&[
            "--legacy-issuer",
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081"
        ])
        .contains("starts the services itself"));
    }

    #[test]
    fn the_gateway_mode_runs_shorter_in_quick_and_needs_managed_services() {
        assert_eq!(parse(&[]).expect("default").gateway, None);
        let o = parse(&["--through-gateway"]).expect("gateway");
        assert_eq!(o.gateway, Some(DEFAULT_DURATION));
        let o = parse(&["--through-gateway", "--quick"]).expect("quick");
        assert_eq!(o.gateway, Some(QUICK_GATEWAY_DURATION));
        let o = parse(&["--through-gateway", "--quick", "--duration", "9"]).expect("explicit");
        assert_eq!(o.gateway, Some(Duration::from_secs(9)));
        assert!(err(&["--through-gateway", "--soak"]).contains("soak"));
        assert!(err(&[
            "--through-gateway",
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081"
        ])
        .contains("starts the services itself"));
    }

    #[test]
    fn the_token_endpoint_is_measured_in_managed_runs_with_a_positive_rate() {
        let o = parse(&[]).expect("default");
        assert_eq!(
            o.token_endpoint,
            Some(TokenEndpointOptions {
                seconds: DEFAULT_TOKEN_SECONDS,
                target_rate: DEFAULT_TOKEN_RATE,
                real_cost: true,
            })
        );
        let q = parse(&["--quick", "--token-rate", "50"]).expect("quick");
        let t = q.token_endpoint.expect("measured");
        assert_eq!(
            (t.seconds, t.target_rate, t.real_cost),
            (QUICK_TOKEN_SECONDS, 50.0, false)
        );
        assert_eq!(parse(&["--soak"]).expect("soak").token_endpoint, None);
        assert!(err(&["--token-rate", "0"]).contains("--token-rate"));
        let ext = parse(&[
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081",
            "--token-rate",
            "10",
        ])
        .expect("external");
        assert_eq!(ext.token_endpoint, None);
        assert!(ext.notes.iter().any(|n| n.contains("--token-rate")));
    }

    #[test]
    fn a_soak_splits_its_seconds_over_the_phases() {
        let o = parse(&["--soak"]).expect("soak");
        assert_eq!(
            o.soak,
            Some(SoakOptions {
                seconds: DEFAULT_SOAK
            })
        );
        assert_eq!(o.phases, Some(DEFAULT_PHASES.to_vec()));
        assert_eq!(o.duration, Duration::from_secs(20));
        let o = parse(&["--soak", "--seconds", "10m"]).expect("10 minutes");
        assert_eq!(o.duration, Duration::from_secs(200));
        let o = parse(&["--soak", "--seconds", "61"]).expect("61 s");
        assert_eq!(o.duration, Duration::from_secs(20), "rounded down");
        let quick = parse(&["--soak", "--quick"]).expect("quick soak");
        assert_eq!(quick.phases, Some(QUICK_SOAK_PHASES.to_vec()));
        assert_eq!(quick.duration, Duration::from_secs(5));
        assert_eq!(quick.users, QUICK_USERS);
        assert_eq!(parse(&[]).expect("no soak").soak, None);
    }

    #[test]
    fn a_soak_needs_its_own_services_and_enough_time_per_phase() {
        assert!(err(&["--soak", "--seconds", "12"]).contains("at least 5 s per phase (3 phases)"));
        assert!(err(&["--soak", "--duration", "20"]).contains("--seconds"));
        assert!(err(&["--seconds", "60"]).contains("--soak"));
        assert!(err(&["--soak", "--seconds", "4h"]).contains("at most 10800 s"));
        assert!(err(&[
            "--soak",
            "--issuer",
            "http://127.0.0.1:8080",
            "--verifier",
            "http://127.0.0.1:8081"
        ])
        .contains("--soak starts the services itself"));
        assert!(parse(&["--soak", "--phases", "asymmetric", "--seconds", "5"]).is_ok());
    }
}
