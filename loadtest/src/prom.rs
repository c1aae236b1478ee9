//! Prometheus text parsing and before/after differences.

use std::collections::BTreeMap;

/// Samples by `name{labels}` (labels sorted, as the exporter prints them).
pub type Samples = BTreeMap<String, f64>;

/// Parses the text exposition format; comments and malformed lines are skipped.
pub fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            out.insert(series.to_owned(), v);
        }
    }
    out
}

/// `after - before` of one series (a missing series counts as 0).
pub fn delta(before: &Samples, after: &Samples, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// Sums the deltas of every series of `name` whose labels contain all `labels`.
pub fn delta_where(before: &Samples, after: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    after
        .keys()
        .filter(|k| matches(k, name, labels))
        .map(|k| delta(before, after, k))
        .sum()
}

fn matches(series: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    let (n, rest) = series.split_once('{').unwrap_or((series, ""));
    n == name
        && labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
}

/// Every label set of `name` with a non-zero delta, as (labels, delta).
pub fn nonzero_deltas(before: &Samples, after: &Samples, name: &str) -> Vec<(String, f64)> {
    after
        .keys()
        .filter(|k| matches(k, name, &[]))
        .map(|k| {
            let labels = k
                .split_once('{')
                .map(|(_, l)| l.trim_end_matches('}'))
                .unwrap_or("");
            (labels.to_owned(), delta(before, after, k))
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// hit / (hit + miss) of a `{result="hit|miss"}` counter; `None` without lookups.
pub fn hit_rate(before: &Samples, after: &Samples, name: &str) -> Option<f64> {
    let hit = delta_where(before, after, name, &[("result", "hit")]);
    let miss = delta_where(before, after, name, &[("result", "miss")]);
    let total = hit + miss;
    (total > 0.0).then(|| hit / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP x\nkeyshift_verify_total{alg=\"HS256\",outcome=\"accepted\"} 10\nkeyshift_key_cache_total{result=\"hit\"} 5\n";
    const AFTER: &str = "keyshift_verify_total{alg=\"HS256\",outcome=\"accepted\"} 25\nkeyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 7\nkeyshift_key_cache_total{result=\"hit\"} 14\nkeyshift_key_cache_total{result=\"miss\"} 1\ngarbage line\n";

    #[test]
    fn deltas_and_hit_rates() {
        let (b, a) = (parse(BEFORE), parse(AFTER));
        assert_eq!(
            delta_where(&b, &a, "keyshift_verify_total", &[("outcome", "accepted")]),
            22.0
        );
        assert_eq!(
            delta_where(&b, &a, "keyshift_verify_total", &[("alg", "RS256")]),
            7.0
        );
        assert_eq!(hit_rate(&b, &a, "keyshift_key_cache_total"), Some(0.9));
        assert_eq!(hit_rate(&b, &a, "keyshift_token_cache_total"), None);
        assert_eq!(nonzero_deltas(&b, &a, "keyshift_verify_total").len(), 2);
    }
}
