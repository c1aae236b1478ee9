//! The standard `process_*` metrics of the Prometheus client libraries
//! (CPU seconds, memory, open file descriptors, start time), read from
//! `/proc/self` at each scrape and appended to the exposition. The
//! exporter crate in use (metrics-exporter-prometheus 0.18) has no process
//! collector, and `process_cpu_seconds_total` is a fractional counter the
//! `metrics` facade cannot express, so they are rendered here directly.
//! Where `/proc` is missing (not Linux) nothing is rendered.

use std::fmt::Write;

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which the
/// kernel fixes at 100 for the proc ABI on every architecture keyshift runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Start time, unix seconds.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
}

/// Parses `/proc/self/stat` and `btime` from `/proc/stat`.
fn parse_stat(stat: &str, boot_time: u64) -> Option<Reading> {
    // The command name (field 2) is in parentheses and may hold anything.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state): field N is fields[N - 3].
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    let start_ticks = field(22)?;
    Some(Reading {
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        virtual_bytes: field(23)?,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        ..Reading::default()
    })
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft "Max open files" of `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `btime` of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Reads this process's figures; `None` without `/proc`.
pub fn read() -> Option<Reading> {
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut reading = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?, boot)?;
    reading.resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_rss(&s))
        .unwrap_or(0);
    reading.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    reading.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| parse_max_fds(&s));
    Some(reading)
}

/// Appends the exposition of `reading` to `out`.
pub fn render(reading: &Reading, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n\n"
            );
        }
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        Some(reading.cpu_seconds),
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        Some(reading.resident_bytes as f64),
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        Some(reading.virtual_bytes as f64),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        reading.open_fds.map(|v| v as f64),
    );
    family(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        reading.max_fds.map(|v| v as f64),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        Some(reading.start_time_seconds),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_field_by_field_even_with_odd_command_names() {
        let stat = "4242 (keyshift (x) y) S 1 4242 4242 0 -1 4194560 2 0 0 0 \
                    150 50 0 0 20 0 9 0 123456 987654321 2000 18446744073709551615";
        let r = parse_stat(stat, 1_700_000_000).expect("parsed");
        assert_eq!(r.cpu_seconds, 2.0);
        assert_eq!(r.virtual_bytes, 987_654_321);
        assert_eq!(r.start_time_seconds, 1_700_000_000.0 + 1_234.56);
        assert_eq!(
            parse_rss("Name:\tk\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(
            parse_max_fds("Limit Soft Hard Units\nMax open files            1024                 4096                 files\n"),
            Some(1024)
        );
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_stat("garbage", 0), None);
    }

    #[test]
    fn this_process_is_rendered_with_the_standard_names_and_types() {
        let Some(reading) = read() else {
            return; // no /proc here
        };
        assert!(reading.resident_bytes > 0);
        assert!(reading.open_fds.is_some_and(|n| n >= 3));
        let mut text = String::new();
        render(&reading, &mut text);
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n{name} ")),
                "{text}"
            );
        }
    }
}
