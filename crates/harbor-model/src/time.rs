//! Timestamps as NGSI-LD writes them: UTC, ISO 8601, millisecond precision on output.

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, always UTC.
pub type Timestamp = DateTime<Utc>;

/// Now, truncated to microseconds so that stored and rendered values agree.
pub fn now() -> Timestamp {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `t` without its digits below the millisecond, the precision responses show.
pub fn truncate_to_millis(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Renders a timestamp the way NGSI-LD responses carry it (`2024-01-01T12:00:00.000Z`).
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an NGSI-LD DateTime (RFC 3339 / ISO 8601 with a zone designator).
/// A value without a zone is read as UTC, as the spec's examples do.
pub fn parse(s: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("2018-08-07T12:00:00Z", "2018-08-07T12:00:00.000Z"),
            ("2018-08-07T12:00:00.5+02:00", "2018-08-07T10:00:00.500Z"),
            ("2018-08-07T12:00:00", "2018-08-07T12:00:00.000Z"),
        ];
        for (input, want) in cases {
            assert_eq!(format(&parse(input).unwrap()), want, "{input}");
        }
        for bad in ["yesterday", "2018-13-07T12:00:00Z", ""] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
