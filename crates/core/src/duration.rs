//! Human-readable durations for the config file: `"30s"`, `"15m"`, `"24h"`, `"90d"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration a config file may hold: 100 years.
///
/// Nothing keyshift schedules is longer, and the cap means that every sum the
/// code forms from config durations and a unix timestamp or an `Instant`
/// (`now + ttl + prepublish`, `now + cooldown`) stays far from overflow, so no
/// value in a config file can make a checked addition necessary at a call site.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration written as an integer and a unit: `ms`, `s`, `m`, `h` or `d`.
///
/// Several parts may follow each other (`"1h30m"`). A bare number is refused:
/// `ttl = "900"` is too easy to misread as minutes. At most [`MAX_DURATION`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

/// Why a duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration (write e.g. \"30s\", \"15m\", \"24h\")")]
    Empty,
    /// A number has no unit, or the unit is not one of ms, s, m, h, d.
    #[error("invalid duration `{0}` (write e.g. \"30s\", \"15m\", \"24h\", \"90d\")")]
    Invalid(String),
    /// The value is longer than [`MAX_DURATION`] (100 years).
    #[error("duration `{0}` is too large (at most 100 years)")]
    Overflow(String),
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(DurationError::Empty);
        }
        let invalid = || DurationError::Invalid(s.to_owned());
        let overflow = || DurationError::Overflow(s.to_owned());
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let (num, tail) = rest.split_at(digits);
            let value: u64 = num.parse().map_err(|_| overflow())?;
            let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(unit_len);
            let part = match unit {
                "ms" => Duration::from_millis(value),
                "s" => Duration::from_secs(value),
                "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(overflow)?),
                "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(overflow)?),
                "d" => Duration::from_secs(value.checked_mul(86_400).ok_or_else(overflow)?),
                _ => return Err(invalid()),
            };
            total = total
                .checked_add(part)
                .filter(|t| *t <= MAX_DURATION)
                .ok_or_else(overflow)?;
            rest = tail;
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    /// An exact form as people write it: `90d`, `24h`, `15m`, `1h30m`, `250ms`
    /// (days only for whole days beyond one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_millis() != 0 && d.as_secs() == 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let mut secs = d.as_secs();
        if secs >= 2 * 86_400 && secs.is_multiple_of(86_400) && d.subsec_millis() == 0 {
            return write!(f, "{}d", secs / 86_400);
        }
        for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        if d.subsec_millis() != 0 {
            write!(f, "{}ms", d.subsec_millis())?;
        }
        Ok(())
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, DurationError> {
        s.parse::<HumanDuration>().map(|h| h.0)
    }

    #[test]
    fn parses_each_unit_and_compounds() {
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(d("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(d("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_bare_numbers_unknown_units_and_overflow() {
        assert!(matches!(d("900"), Err(DurationError::Invalid(_))));
        assert!(matches!(d("5y"), Err(DurationError::Invalid(_))));
        assert!(matches!(d("-5s"), Err(DurationError::Invalid(_))));
        assert!(matches!(d(""), Err(DurationError::Empty)));
        assert!(matches!(
            d("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            d("999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        // Fits in a Duration, but `now + it` would not fit in a u64 or an Instant.
        assert!(matches!(
            d("18446744073709551615s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(d("36501d"), Err(DurationError::Overflow(_))));
        assert_eq!(d("36500d"), Ok(MAX_DURATION));
    }

    #[test]
    fn display_round_trips() {
        for s in ["90d", "24h", "15m", "1h30m", "250ms", "0s", "24h1s", "36h"] {
            let parsed: HumanDuration = s.parse().expect("valid");
            assert_eq!(parsed.to_string(), s);
        }
    }
}
