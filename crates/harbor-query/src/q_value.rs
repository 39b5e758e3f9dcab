//! Literal values of the `q` language and how they compare with JSON attribute values:
//! numbers numerically, strings lexically, and DateTime/Date/Time strings chronologically
//! when both sides parse as the same kind.

use std::cmp::Ordering;
use std::fmt;

use chrono::{NaiveDate, NaiveTime};
use harbor_model::Timestamp;
use serde_json::Value;

/// A literal on the right-hand side of a `q` comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Num(f64),
    Bool(bool),
    /// Quoted or bare text (URIs, DateTimes, ...); `time` is its temporal reading, if any.
    Str {
        text: String,
        time: Option<Temporal>,
    },
}

/// A string read as a point in time, a calendar date or a time of day.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(crate) enum Temporal {
    DateTime(Timestamp),
    Date(NaiveDate),
    Time(NaiveTime),
}

impl Temporal {
    pub fn parse(s: &str) -> Option<Temporal> {
        if s.len() < 5 || !s.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        if let Some(t) = harbor_model::time::parse(s) {
            return Some(Temporal::DateTime(t));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(Temporal::Date(d));
        }
        let bare = s.strip_suffix('Z').unwrap_or(s);
        NaiveTime::parse_from_str(bare, "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(bare, "%H:%M"))
            .ok()
            .map(Temporal::Time)
    }

    fn cmp_same_kind(&self, other: &Temporal) -> Option<Ordering> {
        match (self, other) {
            (Temporal::DateTime(a), Temporal::DateTime(b)) => Some(a.cmp(b)),
            (Temporal::Date(a), Temporal::Date(b)) => Some(a.cmp(b)),
            (Temporal::Time(a), Temporal::Time(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Lit {
    pub fn text(s: impl Into<String>) -> Lit {
        let text = s.into();
        let time = Temporal::parse(&text);
        Lit::Str { text, time }
    }

    /// How `v` orders relative to this literal; `None` when they are not comparable
    /// (different JSON kinds, objects, null).
    pub fn compare(&self, v: &Value) -> Option<Ordering> {
        match (v, self) {
            (Value::Number(n), Lit::Num(x)) => n.as_f64()?.partial_cmp(x),
            (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
            (Value::String(s), Lit::Str { text, time }) => {
                if let Some(lt) = time {
                    if let Some(ord) = Temporal::parse(s).and_then(|vt| vt.cmp_same_kind(lt)) {
                        return Some(ord);
                    }
                }
                Some(s.as_str().cmp(text.as_str()))
            }
            _ => None,
        }
    }

    pub fn equals(&self, v: &Value) -> bool {
        self.compare(v) == Some(Ordering::Equal)
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Num(n) => write!(f, "{n}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Str { text, .. } => write!(f, "{}", Value::String(text.clone())),
        }
    }
}

/// Reads a bare (unquoted) literal: `true`/`false`, a JSON-style number, else text.
/// `None` for a number that does not fit in a finite f64.
pub(crate) fn bare_literal(s: &str) -> Option<Lit> {
    match s {
        "true" => return Some(Lit::Bool(true)),
        "false" => return Some(Lit::Bool(false)),
        _ => {}
    }
    if looks_numeric(s) {
        let n: f64 = s.parse().ok()?;
        return n.is_finite().then_some(Lit::Num(n));
    }
    Some(Lit::text(s))
}

/// `-?digits(.digits)?([eE][+-]?digits)?`
fn looks_numeric(s: &str) -> bool {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let digits = |b: &[u8], i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = 0;
    if !digits(b, &mut i) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(b, &mut i) {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(b, &mut i) {
            return false;
        }
    }
    i == b.len()
}
