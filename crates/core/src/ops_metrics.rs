//! The metrics every keyshift service exports about itself (names per the
//! contract): what build it is, and how its config reloads went. Recorded
//! through the `metrics` facade, like [`crate::phase_metrics`].

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

/// `keyshift_build_info{version, git_sha}`: always 1; the labels say which build runs.
pub const BUILD_INFO: &str = "keyshift_build_info";
/// `keyshift_config_reloads_total{result}`: SIGHUP reloads by result.
pub const CONFIG_RELOADS: &str = "keyshift_config_reloads_total";
/// `keyshift_config_last_reload_success_timestamp_seconds`: when the config
/// in force was loaded (at start, then at each successful reload).
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "keyshift_config_last_reload_success_timestamp_seconds";
/// `keyshift_config_last_reload_successful`: 1 unless the last reload was
/// refused (the running config was kept), as Prometheus reports its own.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "keyshift_config_last_reload_successful";

/// The `result` label of [`CONFIG_RELOADS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new config is in force (a part that needs a restart may wait for one).
    Ok,
    /// The new config was refused; the running one stays.
    Error,
}

impl ReloadResult {
    /// Both results, for registering their series at start.
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Ok, ReloadResult::Error];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// Registers help text; each service calls it once at start.
pub fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels name the version and git commit of the running build."
    );
    describe_counter!(
        CONFIG_RELOADS,
        Unit::Count,
        "Config reloads (SIGHUP) by result: ok, or error (the running config kept)."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESS,
        Unit::Seconds,
        "Unix time the config in force was loaded (start or last successful reload)."
    );
    describe_gauge!(
        CONFIG_LAST_RELOAD_SUCCESSFUL,
        "1 unless the last config reload was refused (the running config kept)."
    );
}

/// Publishes the build and the config loaded at start (`now`, unix seconds);
/// both reload counters start at 0.
pub fn started(version: &'static str, git_sha: &'static str, now: u64) {
    gauge!(BUILD_INFO, "version" => version, "git_sha" => git_sha).set(1.0);
    for result in ReloadResult::ALL {
        counter!(CONFIG_RELOADS, "result" => result.as_str()).absolute(0);
    }
    gauge!(CONFIG_LAST_RELOAD_SUCCESS).set(now as f64);
    gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL).set(1.0);
}

/// Counts one reload at `now` (unix seconds).
pub fn reloaded(result: ReloadResult, now: u64) {
    counter!(CONFIG_RELOADS, "result" => result.as_str()).increment(1);
    match result {
        ReloadResult::Ok => {
            gauge!(CONFIG_LAST_RELOAD_SUCCESS).set(now as f64);
            gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL).set(1.0);
        }
        ReloadResult::Error => gauge!(CONFIG_LAST_RELOAD_SUCCESSFUL).set(0.0),
    }
}
