//! Showing an error with its causes on one line.

use std::error::Error;

/// `err` and each of its sources, joined by `": "`, on one line. A cause
/// whose text the line already holds (a wrapper that repeats its source) is
/// shown once.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        let text = text.trim();
        if !text.is_empty() && !line.contains(text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(text);
        }
        next = cause.source();
    }
    line.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper that prints its source (`{0}`) and returns it too.
    #[derive(Debug, thiserror::Error)]
    #[error("verifier.jwks_url: {0}")]
    struct Repeats(#[source] std::io::Error);

    /// A wrapper that only returns its source.
    #[derive(Debug, thiserror::Error)]
    #[error("refetch failed")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn each_cause_once_on_one_line() {
        let e = Wraps(Repeats(std::io::Error::other("connection\nrefused")));
        assert_eq!(
            chain(&e),
            "refetch failed: verifier.jwks_url: connection refused"
        );
    }
}
