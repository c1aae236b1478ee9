//! The Prometheus text exposition format, parsed: `# TYPE` lines and samples
//! (name, unescaped labels, value). What the samples mean is the reader's
//! business.

use std::collections::BTreeMap;

/// One series: its name and its labels, sorted by label name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Label name → value, unescaped.
    pub labels: BTreeMap<String, String>,
}

impl Series {
    /// The value of label `key`, or `""` without it.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }

    /// Whether this is a series of `name` whose labels include all `labels`.
    pub fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == *v)
    }
}

/// Samples of one scrape.
pub type Samples = BTreeMap<Series, f64>;

/// One line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// `# TYPE name kind`.
    Type {
        /// The metric family.
        name: &'a str,
        /// `counter`, `gauge`, `histogram`, …
        kind: &'a str,
    },
    /// A sample; an optional timestamp after the value is ignored.
    Sample(Series, f64),
    /// A blank line or another comment (`# HELP`, …).
    Comment,
    /// Anything else.
    Malformed(&'a str),
}

/// Parses the samples of an exposition; comments, blank and malformed lines
/// are skipped.
pub fn parse(text: &str) -> Samples {
    text.lines()
        .filter_map(|l| match line(l) {
            Line::Sample(series, value) => Some((series, value)),
            _ => None,
        })
        .collect()
}

/// Reads one line of an exposition.
pub fn line(text: &str) -> Line<'_> {
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix("# TYPE ") {
        return match rest.split_once(' ') {
            Some((name, kind)) if !name.is_empty() && !kind.trim().is_empty() => Line::Type {
                name,
                kind: kind.trim(),
            },
            _ => Line::Malformed(text),
        };
    }
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Line::Comment;
    }
    match sample(trimmed) {
        Some((series, value)) => Line::Sample(series, value),
        None => Line::Malformed(text),
    }
}

fn sample(line: &str) -> Option<(Series, f64)> {
    let (name, labels, rest) = match line.find(['{', ' ', '\t']) {
        Some(i) if line[i..].starts_with('{') => {
            let (labels, rest) = parse_labels(&line[i + 1..])?;
            (&line[..i], labels, rest)
        }
        Some(i) => (&line[..i], BTreeMap::new(), &line[i..]),
        None => return None,
    };
    if name.is_empty() {
        return None;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((
        Series {
            name: name.to_owned(),
            labels,
        },
        value,
    ))
}

/// Parses `k="v",k2="v2"}` (the text after `{`), unescaping `\\`, `\"` and
/// `\n`; returns the labels and the text after `}`.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() {
            return None;
        }
        let inner = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let end = end?;
        labels.insert(key.to_owned(), value);
        rest = inner[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        s.iter()
            .find(|(series, _)| series.matches(name, labels))
            .map(|(_, v)| *v)
    }

    #[test]
    fn labels_are_unescaped_and_may_hold_commas_and_braces() {
        let s = parse(
            "keyshift_tokens_issued_total{client=\"a,b}\\\"c\\\\\",alg=\"RS256\"} 4 1700000000000\n",
        );
        let (series, v) = s.iter().next().expect("one sample");
        assert_eq!(*v, 4.0, "the timestamp is not the value");
        assert_eq!(series.label("client"), "a,b}\"c\\");
        assert_eq!(series.label("alg"), "RS256");
        assert_eq!(series.label("missing"), "");
    }

    #[test]
    fn unlabelled_series_trailing_commas_and_bad_lines() {
        let s = parse(
            "up 1\nx{a=\"1\",} 2\nbroken{a=\"1\" 3\nnovalue{a=\"1\"}\n{a=\"1\"} 5\nh_bucket{le=\"+Inf\"} +Inf\n",
        );
        assert_eq!(value(&s, "up", &[]), Some(1.0));
        assert_eq!(value(&s, "x", &[("a", "1")]), Some(2.0));
        assert_eq!(
            value(&s, "h_bucket", &[("le", "+Inf")]),
            Some(f64::INFINITY)
        );
        assert_eq!(s.len(), 3, "{s:?}");
    }

    #[test]
    fn type_lines_comments_and_malformed_lines_are_told_apart() {
        assert_eq!(
            line("# TYPE a_total counter"),
            Line::Type {
                name: "a_total",
                kind: "counter"
            }
        );
        assert_eq!(line("# HELP a_total Things."), Line::Comment);
        assert_eq!(line("  "), Line::Comment);
        assert_eq!(line("# TYPE lonely"), Line::Malformed("# TYPE lonely"));
        assert_eq!(
            line("novalue{a=\"1\"}"),
            Line::Malformed("novalue{a=\"1\"}")
        );
        assert!(matches!(line("g 1"), Line::Sample(s, v) if s.name == "g" && v == 1.0));
    }
}
