//! The temporal query (4.11): `timerel`, `timeAt`, `endTimeAt`, `timeproperty` and `lastN`.
//! Intervals are half-open: `before` selects `t < timeAt`, `after` selects `t >= timeAt`,
//! `between` selects `timeAt <= t < endTimeAt`. An instance without the time property asked
//! for (say, no `observedAt`) is not selected when a `timerel` is given.

use harbor_model::{time, TimeProperty, Timestamp};

use crate::QueryError;

/// `timerel` with its instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRel {
    Before(Timestamp),
    After(Timestamp),
    Between(Timestamp, Timestamp),
}

/// A parsed temporal query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TemporalQuery {
    pub timerel: Option<TimeRel>,
    pub time_property: TimeProperty,
    /// Only the last N instances of each attribute (in time order).
    pub last_n: Option<usize>,
}

/// The parameters of a temporal query as given (URL parameters or a `temporalQ` object).
#[derive(Debug, Clone, Copy, Default)]
pub struct TemporalParams<'a> {
    pub timerel: Option<&'a str>,
    pub time_at: Option<&'a str>,
    pub end_time_at: Option<&'a str>,
    pub time_property: Option<&'a str>,
    pub last_n: Option<&'a str>,
}

fn instant(name: &str, v: Option<&str>, timerel: &str) -> Result<Timestamp, QueryError> {
    let Some(v) = v else {
        return Err(QueryError::new(format!(
            "timerel={timerel} needs \"{name}\""
        )));
    };
    time::parse(v).ok_or_else(|| {
        QueryError::new(format!(
            "\"{name}\" must be a DateTime like \"2024-01-31T12:00:00Z\", got \"{v}\""
        ))
    })
}

/// Parses and checks a temporal query.
pub fn parse_temporal_query(p: TemporalParams) -> Result<TemporalQuery, QueryError> {
    let timerel = match p.timerel {
        None => {
            if p.time_at.is_some() || p.end_time_at.is_some() {
                return Err(QueryError::new("timeAt and endTimeAt need a timerel"));
            }
            None
        }
        Some(rel @ "before") => Some(TimeRel::Before(instant("timeAt", p.time_at, rel)?)),
        Some(rel @ "after") => Some(TimeRel::After(instant("timeAt", p.time_at, rel)?)),
        Some(rel @ "between") => {
            let from = instant("timeAt", p.time_at, rel)?;
            let to = instant("endTimeAt", p.end_time_at, rel)?;
            if to <= from {
                return Err(QueryError::new(
                    "timerel=between needs an endTimeAt later than timeAt",
                ));
            }
            Some(TimeRel::Between(from, to))
        }
        Some(other) => {
            return Err(QueryError::new(format!(
                "timerel must be before, after or between, got \"{other}\""
            )))
        }
    };
    let time_property = match p.time_property {
        None => TimeProperty::default(),
        Some(s) => TimeProperty::parse(s).ok_or_else(|| {
            QueryError::new(format!(
                "timeproperty must be observedAt, createdAt, modifiedAt or deletedAt, got \"{s}\""
            ))
        })?,
    };
    let last_n = match p.last_n {
        None => None,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(QueryError::new(format!(
                    "lastN must be a whole number above 0, got \"{s}\""
                )))
            }
        },
    };
    Ok(TemporalQuery {
        timerel,
        time_property,
        last_n,
    })
}

impl TemporalQuery {
    /// Whether an instance with this value of the time property is selected.
    pub fn selects(&self, t: Option<Timestamp>) -> bool {
        match (self.timerel, t) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(TimeRel::Before(at)), Some(t)) => t < at,
            (Some(TimeRel::After(at)), Some(t)) => t >= at,
            (Some(TimeRel::Between(from, to)), Some(t)) => from <= t && t < to,
        }
    }

    /// The interval `[from, to)` the query selects, as bounds a store can seek to.
    pub fn bounds(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        match self.timerel {
            None => (None, None),
            Some(TimeRel::Before(at)) => (None, Some(at)),
            Some(TimeRel::After(at)) => (Some(at), None),
            Some(TimeRel::Between(from, to)) => (Some(from), Some(to)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(rel: &'a str, at: &'a str, end: &'a str) -> TemporalParams<'a> {
        let opt = |s: &'a str| (!s.is_empty()).then_some(s);
        TemporalParams {
            timerel: opt(rel),
            time_at: opt(at),
            end_time_at: opt(end),
            ..Default::default()
        }
    }

    #[test]
    fn parses_and_selects() {
        let t = |s: &str| time::parse(s);
        let cases = [
            (
                "before",
                "2020-08-01T12:05:00Z",
                "",
                "2020-08-01T12:04:59Z",
                true,
            ),
            (
                "before",
                "2020-08-01T12:05:00Z",
                "",
                "2020-08-01T12:05:00Z",
                false,
            ),
            (
                "after",
                "2020-08-01T12:05:00Z",
                "",
                "2020-08-01T12:05:00Z",
                true,
            ),
            (
                "after",
                "2020-08-01T12:05:00Z",
                "",
                "2020-08-01T12:04:00Z",
                false,
            ),
            (
                "between",
                "2020-08-01T12:00:00Z",
                "2020-08-01T13:00:00Z",
                "2020-08-01T12:30:00Z",
                true,
            ),
            (
                "between",
                "2020-08-01T12:00:00Z",
                "2020-08-01T13:00:00Z",
                "2020-08-01T13:00:00Z",
                false,
            ),
            ("", "", "", "2020-08-01T13:00:00Z", true),
        ];
        for (rel, at, end, probe, want) in cases {
            let q = parse_temporal_query(params(rel, at, end)).unwrap();
            assert_eq!(q.selects(t(probe)), want, "{rel} {at} {end} {probe}");
        }
        let q = parse_temporal_query(params("after", "2020-08-01T12:05:00Z", "")).unwrap();
        assert!(!q.selects(None), "no time, not selected");
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (params("between", "2020-08-01T12:00:00Z", ""), "endTimeAt"),
            (params("after", "", ""), "timeAt"),
            (params("after", "yesterday", ""), "timeAt"),
            (params("during", "2020-08-01T12:00:00Z", ""), "timerel"),
            (params("", "2020-08-01T12:00:00Z", ""), "need a timerel"),
            (
                params("between", "2020-08-01T12:00:00Z", "2020-08-01T11:00:00Z"),
                "later than",
            ),
            (
                TemporalParams {
                    time_property: Some("expiresAt"),
                    ..Default::default()
                },
                "timeproperty",
            ),
            (
                TemporalParams {
                    last_n: Some("2.5"),
                    ..Default::default()
                },
                "lastN",
            ),
            (
                TemporalParams {
                    last_n: Some("0"),
                    ..Default::default()
                },
                "lastN",
            ),
        ];
        for (p, want) in cases {
            let e = parse_temporal_query(p).unwrap_err();
            assert!(e.detail.contains(want), "{p:?}: {}", e.detail);
        }
    }
}
