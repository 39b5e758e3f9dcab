//! The aggregated temporal representation (4.5.19): `aggrMethods`, `aggrPeriodDuration`
//! and a one-pass aggregator that turns the instances of one Attribute into
//! `{"avg": [[value, startOfPeriod, endOfPeriod], ...], "max": [...], ...}`.
//!
//! # Periods
//!
//! `aggrPeriodDuration` is an ISO 8601 duration `PnYnMnDTnHnMnS` or `PnW` (fraction only on
//! the seconds). Years and months are calendar steps in UTC, the rest exact time. A zero
//! duration (`PT0S`, `P0D`, the default) is one period spanning the whole requested range.
//!
//! Period `k` is `[origin + k·d, origin + (k+1)·d)`: the start is included, the end is not.
//! The origin is the start of the requested range (`timerel=after`/`between`), or else the
//! first instance pushed. `origin + k·d` is computed from the origin for every `k` (never by
//! repeated addition), so `P1M` from 31 January gives 29 February, then 31 March. The last
//! period keeps its full length even past the end of the range, and a period without
//! instances is left out: the ETSI suite expects exactly that (020_11 and 021_17: instances
//! at 12:03, 13:05 and 14:07 with `PT1H` give `12:03–13:03`, `13:03–14:03`, `14:03–15:03`;
//! with `timeAt=2020-01-01T12:03:00Z` the thousands of empty hours before August are absent).
//! For the whole-range period, an open end of the range is the last instance.
//!
//! # Methods and value types
//!
//! | method              | numbers | booleans  | arrays         | strings          | objects, null |
//! |---------------------|---------|-----------|----------------|------------------|---------------|
//! | `totalCount`        | yes     | yes       | yes            | yes              | yes           |
//! | `distinctCount`     | yes     | yes       | yes            | yes              | yes           |
//! | `sum`, `avg`        | yes     | 1 / 0     | their length   | —                | —             |
//! | `stddev`, `sumsq`   | yes     | 1 / 0     | their length   | —                | —             |
//! | `min`, `max`        | yes     | 1 / 0     | their length   | code point order | —             |
//!
//! The per-type behaviour is that of the reference broker Stellio (`DBAggregationUtils`),
//! with two differences: an array's length also feeds `stddev` and `sumsq`, which Stellio
//! leaves empty for arrays, and URIs (Relationship objects) are plain strings here, so
//! `min`/`max` take them. Code point order puts DateTimes written alike in time order.
//!
//! Counts are integers, the other results are JSON numbers with a fraction (`67.0`, as the
//! suite's expectation files have them) or, for `min`/`max` of strings, strings. When a
//! period holds numbers (or booleans, arrays) and strings, `min`/`max` are over the numbers.
//! `stddev` is the sample standard deviation (n − 1), as Stellio computes it
//! (`stddev_samp`); it needs two values. A method that cannot take any value of a period,
//! or whose result is not finite (a sum past ±1.8e308), has no entry for that period; the
//! other methods still do. Numbers equal as numbers (`1`, `1.0`) are one distinct value;
//! objects are compared without regard to key order.
//!
//! # Resources
//!
//! The aggregator keeps the finished periods (one `[value, start, end]` per method) and the
//! running state of the current one: counts, a compensated sum, Welford's mean and squared
//! deviations, the extremes. It never stores instances. `distinctCount` needs the set of
//! distinct values of the current period; it keeps a 64-bit keyed hash of each (collisions
//! are astronomically unlikely and the keys are random per aggregator), and refuses more
//! than [`MAX_DISTINCT`] distinct values in one period.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::str::FromStr;

use chrono::{DateTime, Months, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::QueryError;

/// Most distinct values `distinctCount` tracks in one period.
pub const MAX_DISTINCT: usize = 100_000;

/// Longest accepted `aggrPeriodDuration`, in years.
pub const MAX_PERIOD_YEARS: u64 = 1000;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SEC;

/// One aggregation method of 4.5.19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggrMethod {
    TotalCount,
    DistinctCount,
    Sum,
    Avg,
    Min,
    Max,
    StdDev,
    SumSq,
}

impl AggrMethod {
    /// Every method, in the order the spec lists them.
    pub const ALL: [AggrMethod; 8] = [
        AggrMethod::TotalCount,
        AggrMethod::DistinctCount,
        AggrMethod::Sum,
        AggrMethod::Avg,
        AggrMethod::Min,
        AggrMethod::Max,
        AggrMethod::StdDev,
        AggrMethod::SumSq,
    ];

    /// The name used in `aggrMethods` and as the member name of the result.
    pub fn name(self) -> &'static str {
        match self {
            AggrMethod::TotalCount => "totalCount",
            AggrMethod::DistinctCount => "distinctCount",
            AggrMethod::Sum => "sum",
            AggrMethod::Avg => "avg",
            AggrMethod::Min => "min",
            AggrMethod::Max => "max",
            AggrMethod::StdDev => "stddev",
            AggrMethod::SumSq => "sumsq",
        }
    }
}

impl fmt::Display for AggrMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AggrMethod {
    type Err = QueryError;

    /// One method name, case-sensitive as in the spec.
    fn from_str(s: &str) -> Result<Self, QueryError> {
        AggrMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = AggrMethod::ALL.iter().map(|m| m.name()).collect();
                QueryError::new(format!(
                    "aggrMethods: unknown aggregation method {:?}, expected one of {}",
                    truncate(s),
                    names.join(", ")
                ))
            })
    }
}

/// Parses `aggrMethods`, a comma-separated list (`avg,max`). Blanks around names are
/// ignored and a repeated method counts once; the order of first mention is kept.
pub fn parse_aggr_methods(text: &str) -> Result<Vec<AggrMethod>, QueryError> {
    QueryError::check_len("aggrMethods", text)?;
    if text.trim().is_empty() {
        return Err(QueryError::new("aggrMethods: no aggregation method given"));
    }
    let mut methods = Vec::new();
    for (i, name) in text.split(',').enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(QueryError::new(format!(
                "aggrMethods: item {} of {:?} is empty",
                i + 1,
                truncate(text)
            )));
        }
        let method: AggrMethod = name.parse()?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    Ok(methods)
}

/// Reads `aggrMethods` of a JSON TemporalQuery or AggregationParams (5.2.21, 5.2.44): a
/// comma-separated string or an array of method names.
pub fn aggr_methods_from_json(value: &Value) -> Result<Vec<AggrMethod>, QueryError> {
    let names = match value {
        Value::String(text) => return parse_aggr_methods(text),
        Value::Array(items) => items,
        other => {
            return Err(QueryError::new(format!(
                "aggrMethods: expected a string or an array of strings, got {}",
                truncate(&other.to_string())
            )))
        }
    };
    if names.is_empty() {
        return Err(QueryError::new("aggrMethods: no aggregation method given"));
    }
    let mut methods = Vec::new();
    for item in names {
        let Value::String(name) = item else {
            return Err(QueryError::new(format!(
                "aggrMethods: {} is not a method name",
                truncate(&item.to_string())
            )));
        };
        let method: AggrMethod = name.parse()?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    Ok(methods)
}

/// The length of the aggregation periods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Period {
    /// One period over the whole requested range (`PT0S`), also when no
    /// `aggrPeriodDuration` is given.
    #[default]
    WholeRange,
    /// Calendar months (years are 12) followed by exact time; never both zero.
    Every { months: u32, nanos: i128 },
}

/// Parses `aggrPeriodDuration`: `PnYnMnDTnHnMnS` (any subset, in this order, at least one)
/// or `PnW`; only the seconds may have a fraction (`PT0.5S`). Negative durations, the
/// alternative format (`P0001-02-03`) and durations over [`MAX_PERIOD_YEARS`] are refused.
pub fn parse_aggr_period_duration(text: &str) -> Result<Period, QueryError> {
    let bad = |why: &str| {
        QueryError::new(format!(
            "aggrPeriodDuration: {:?} is not an ISO 8601 duration like PT1H or P1M: {why}",
            truncate(text)
        ))
    };
    let Some(body) = text.strip_prefix('P') else {
        return Err(bad("it must start with P"));
    };
    if body.is_empty() {
        return Err(bad("it has no component"));
    }
    let (date, time) = match body.split_once('T') {
        Some((_, "")) => return Err(bad("T must be followed by hours, minutes or seconds")),
        Some((date, time)) => (date, Some(time)),
        None => (body, None),
    };
    let date_parts = components(date, &['Y', 'M', 'W', 'D']).map_err(|w| bad(&w))?;
    let time_parts = match time {
        Some(time) => components(time, &['H', 'M', 'S']).map_err(|w| bad(&w))?,
        None => Vec::new(),
    };
    let week = date_parts.iter().any(|c| c.unit == 'W');
    if week && (date_parts.len() > 1 || time.is_some()) {
        return Err(bad("weeks (W) cannot be combined with other components"));
    }
    let mut months: u128 = 0;
    let mut nanos: u128 = 0;
    if date_parts.iter().any(|c| c.fraction.is_some())
        || time_parts
            .iter()
            .any(|c| c.fraction.is_some() && c.unit != 'S')
    {
        return Err(bad("only the seconds may have a fraction"));
    }
    for c in &date_parts {
        match c.unit {
            'Y' => months += c.whole * 12,
            'M' => months += c.whole,
            'W' => nanos += c.whole * 7 * NANOS_PER_DAY as u128,
            _ => nanos += c.whole * NANOS_PER_DAY as u128,
        }
    }
    for c in &time_parts {
        let unit = match c.unit {
            'H' => 3600,
            'M' => 60,
            _ => 1,
        };
        nanos += c.whole * unit * NANOS_PER_SEC as u128 + c.fraction.unwrap_or(0);
    }
    // Whole numbers have at most 18 digits, so none of the sums above can overflow u128.
    let max_days = MAX_PERIOD_YEARS as u128 * 366;
    if months > MAX_PERIOD_YEARS as u128 * 12 || nanos > max_days * NANOS_PER_DAY as u128 {
        return Err(QueryError::new(format!(
            "aggrPeriodDuration: {:?} is longer than {MAX_PERIOD_YEARS} years",
            truncate(text)
        )));
    }
    if months == 0 && nanos == 0 {
        return Ok(Period::WholeRange);
    }
    Ok(Period::Every {
        months: months as u32,
        nanos: nanos as i128,
    })
}

/// One `n<unit>` of a duration: the whole part and any fraction, in nanoseconds of the unit.
struct Component {
    whole: u128,
    fraction: Option<u128>,
    unit: char,
}

/// Splits `1Y2M` into components whose units appear in the order of `units`, each once.
fn components(text: &str, units: &[char]) -> Result<Vec<Component>, String> {
    let mut out = Vec::new();
    let mut next_unit = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .ok_or_else(|| format!("{rest:?} has no unit letter"))?;
        let (number, tail) = rest.split_at(end);
        let unit = tail.chars().next().unwrap_or_default();
        let Some(pos) = units[next_unit..].iter().position(|u| *u == unit) else {
            return Err(format!("unexpected {unit:?}"));
        };
        next_unit += pos + 1;
        let (whole, fraction) = match number.split_once(['.', ',']) {
            Some((w, f)) => (w, Some(f)),
            None => (number, None),
        };
        if whole.is_empty() || whole.len() > 18 || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{number:?} before {unit:?} is not a number of up to 18 digits"
            ));
        }
        let fraction = match fraction {
            None => None,
            Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
                Some(format!("{f:0<9}").parse::<u128>().unwrap_or(0))
            }
            Some(_) => return Err(format!("{number:?} has a bad fraction (1 to 9 digits)")),
        };
        out.push(Component {
            whole: whole.parse().unwrap_or(0),
            fraction,
            unit,
        });
        rest = &tail[unit.len_utf8()..];
    }
    Ok(out)
}

/// The requested time range of a temporal query, `[start, end)`; `None` is open.
/// `timerel=after` sets the start, `before` the end, `between` both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl TimeRange {
    fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at < e)
    }
}

/// Aggregates the instances of one Attribute, pushed in time order, in one pass.
pub struct Aggregator {
    methods: Vec<AggrMethod>,
    period: Period,
    range: TimeRange,
    origin: Option<DateTime<Utc>>,
    hasher: RandomState,
    current: Option<OpenPeriod>,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    done: Vec<PeriodValues>,
}

impl Aggregator {
    /// An aggregator for `methods` over periods of `period` within `range`; periods are
    /// aligned at the start of the range or, when it is open, at the first instance.
    pub fn new(methods: &[AggrMethod], period: Period, range: TimeRange) -> Self {
        Aggregator {
            methods: methods.to_vec(),
            period,
            range,
            origin: range.start,
            hasher: RandomState::new(),
            current: None,
            first_at: None,
            last_at: None,
            done: Vec::new(),
        }
    }

    /// Aligns the periods at `origin` instead, e.g. at the oldest instance of any Attribute
    /// of the Entity, so that all its Attributes share period bounds.
    pub fn aligned_at(mut self, origin: DateTime<Utc>) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Adds the instance `value` observed (or created, modified) at `at`. Instances outside
    /// the range are skipped. Fails when `at` is earlier than the previous instance, or when
    /// a period holds more than [`MAX_DISTINCT`] distinct values and `distinctCount` is asked.
    pub fn push(&mut self, value: &Value, at: DateTime<Utc>) -> Result<(), QueryError> {
        if !self.range.contains(at) {
            return Ok(());
        }
        if let Some(last) = self.last_at {
            if at < last {
                return Err(QueryError::new(format!(
                    "aggregation: instance at {} comes after one at {}; instances must be in time order",
                    render_time(&at),
                    render_time(&last)
                )));
            }
        }
        self.first_at.get_or_insert(at);
        self.last_at = Some(at);
        let origin = *self.origin.get_or_insert(at);
        // Instances come in time order, so one before the end of the open period is in it.
        let in_open = (self.current.as_ref()).is_some_and(|p| p.end.is_none_or(|end| at < end));
        if !in_open {
            self.close_current();
            let (index, end) = match self.period {
                Period::WholeRange => (0, None),
                Period::Every { months, nanos } => {
                    let k = period_index(origin, months, nanos, at);
                    (k, period_start(origin, months, nanos, k + 1))
                }
            };
            self.current = Some(OpenPeriod {
                index,
                end,
                acc: Accumulator::default(),
            });
        }
        let distinct = self.methods.contains(&AggrMethod::DistinctCount);
        match &mut self.current {
            Some(open) => open.acc.add(value, distinct.then_some(&self.hasher)),
            None => Ok(()),
        }
    }

    /// The aggregated values, one series per method.
    pub fn finish(mut self) -> Aggregated {
        self.close_current();
        Aggregated {
            methods: self.methods,
            periods: self.done,
        }
    }

    fn close_current(&mut self) {
        let Some(OpenPeriod { index, end, acc }) = self.current.take() else {
            return;
        };
        let Some(origin) = self.origin else {
            return;
        };
        let (start, end) = match self.period {
            Period::WholeRange => (
                self.range.start.or(self.first_at).unwrap_or(origin),
                self.range.end.or(self.last_at).unwrap_or(origin),
            ),
            Period::Every { months, nanos } => (
                period_start(origin, months, nanos, index).unwrap_or(DateTime::<Utc>::MIN_UTC),
                end.unwrap_or(DateTime::<Utc>::MAX_UTC),
            ),
        };
        let values = self.methods.iter().map(|m| acc.result(*m)).collect();
        self.done.push(PeriodValues { start, end, values });
    }
}

/// The period instances are being added to: its index from the origin, its end (`None` for
/// the whole range, or past the last representable time) and its running state.
struct OpenPeriod {
    index: i128,
    end: Option<DateTime<Utc>>,
    acc: Accumulator,
}

/// The result of one period: one value per requested method, `None` where the method could
/// take no value of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodValues {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub values: Vec<Option<Value>>,
}

/// The aggregation of one Attribute: the periods that held instances, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregated {
    pub methods: Vec<AggrMethod>,
    pub periods: Vec<PeriodValues>,
}

impl Aggregated {
    /// True when no instance fell in the range: the Attribute has nothing to show.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// The members of the aggregated Attribute, without `type`: every requested method, in
    /// request order, with its `[value, start, end]` triples (possibly none).
    pub fn to_members(&self) -> Map<String, Value> {
        let mut members = Map::new();
        for (i, method) in self.methods.iter().enumerate() {
            let triples = self
                .periods
                .iter()
                .filter_map(|p| {
                    let value = p.values.get(i)?.clone()?;
                    Some(Value::Array(vec![
                        value,
                        Value::String(render_time(&p.start)),
                        Value::String(render_time(&p.end)),
                    ]))
                })
                .collect();
            members.insert(method.name().to_string(), Value::Array(triples));
        }
        members
    }
}

/// Period bounds are written without a fraction of a second when they have none
/// (`2020-08-01T12:03:00Z`), the form the suite's expectation files compare against.
fn render_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `origin + k·(months, nanos)`, or `None` past the range of representable times.
fn period_start(origin: DateTime<Utc>, months: u32, nanos: i128, k: i128) -> Option<DateTime<Utc>> {
    let total_months = u32::try_from(k.unsigned_abs().checked_mul(months as u128)?).ok()?;
    let shifted = if k >= 0 {
        origin.checked_add_months(Months::new(total_months))?
    } else {
        origin.checked_sub_months(Months::new(total_months))?
    };
    let exact = k.checked_mul(nanos)?;
    let secs = i64::try_from(exact.div_euclid(NANOS_PER_SEC)).ok()?;
    let delta = TimeDelta::new(secs, exact.rem_euclid(NANOS_PER_SEC) as u32)?;
    shifted.checked_add_signed(delta)
}

/// The `k` whose period `[start(k), start(k+1))` holds `at`. A month lasts 28 to 31 days,
/// so `k` lies in a small bracket around the quotient; a binary search in it finds the
/// largest `k` with `start(k) <= at` without walking the empty periods in between.
fn period_index(origin: DateTime<Utc>, months: u32, nanos: i128, at: DateTime<Utc>) -> i128 {
    let delta = at - origin;
    let delta = delta.num_seconds() as i128 * NANOS_PER_SEC + delta.subsec_nanos() as i128;
    let shortest = months as i128 * 28 * NANOS_PER_DAY + nanos;
    let longest = months as i128 * 31 * NANOS_PER_DAY + nanos;
    let (a, b) = (delta.div_euclid(shortest), delta.div_euclid(longest));
    let (mut lo, mut hi) = (a.min(b) - 1, a.max(b) + 1);
    let starts_by = |k: i128| match period_start(origin, months, nanos, k) {
        Some(start) => start <= at,
        None => k < 0,
    };
    // Invariant: starts_by(lo) holds and starts_by(hi + 1) does not.
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if starts_by(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The running state of one period.
#[derive(Default)]
struct Accumulator {
    count: u64,
    distinct: HashSet<u64>,
    /// Numbers, booleans as 1/0 and arrays as their length.
    numbers: u64,
    sum: Neumaier,
    sum_sq: Neumaier,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    min_str: Option<String>,
    max_str: Option<String>,
}

impl Accumulator {
    fn add(&mut self, value: &Value, distinct: Option<&RandomState>) -> Result<(), QueryError> {
        self.count += 1;
        if let Some(hasher) = distinct {
            let mut h = hasher.build_hasher();
            hash_canonical(value, &mut h);
            if self.distinct.insert(h.finish()) && self.distinct.len() > MAX_DISTINCT {
                return Err(QueryError::new(format!(
                    "distinctCount: more than {MAX_DISTINCT} distinct values in one aggregation \
                     period; ask for a shorter aggrPeriodDuration"
                )));
            }
        }
        let x = match value {
            Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Array(xs) => Some(xs.len() as f64),
            Value::String(s) => {
                self.add_string(s);
                None
            }
            _ => None,
        };
        if let Some(x) = x {
            self.add_number(x);
        }
        Ok(())
    }

    fn add_number(&mut self, x: f64) {
        self.numbers += 1;
        self.sum.add(x);
        self.sum_sq.add(x * x);
        // Welford: the mean and the sum of squared deviations, updated one value at a time.
        let delta = x - self.mean;
        self.mean += delta / self.numbers as f64;
        self.m2 += delta * (x - self.mean);
        if self.numbers == 1 || x < self.min {
            self.min = x;
        }
        if self.numbers == 1 || x > self.max {
            self.max = x;
        }
    }

    fn add_string(&mut self, s: &str) {
        if self.min_str.as_deref().is_none_or(|m| s < m) {
            self.min_str = Some(s.to_string());
        }
        if self.max_str.as_deref().is_none_or(|m| s > m) {
            self.max_str = Some(s.to_string());
        }
    }

    fn result(&self, method: AggrMethod) -> Option<Value> {
        let n = self.numbers;
        let number = match method {
            AggrMethod::TotalCount => return Some(Value::from(self.count)),
            AggrMethod::DistinctCount => return Some(Value::from(self.distinct.len() as u64)),
            AggrMethod::Min if n == 0 => return self.min_str.clone().map(Value::String),
            AggrMethod::Max if n == 0 => return self.max_str.clone().map(Value::String),
            _ if n == 0 => return None,
            AggrMethod::Sum => self.sum.value(),
            AggrMethod::Avg => self.mean,
            AggrMethod::Min => self.min,
            AggrMethod::Max => self.max,
            AggrMethod::StdDev if n < 2 => return None,
            AggrMethod::StdDev => (self.m2.max(0.0) / (n - 1) as f64).sqrt(),
            AggrMethod::SumSq => self.sum_sq.value(),
        };
        // `+ 0.0` turns a negative zero into zero.
        serde_json::Number::from_f64(number + 0.0).map(Value::Number)
    }
}

/// Compensated (Neumaier) summation: the rounding error of each addition is carried along.
#[derive(Default)]
struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Hashes a JSON value so that equal numbers (`1`, `1.0`, `-0.0`, `0`) and objects with the
/// same members in another order hash alike.
fn hash_canonical(value: &Value, h: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let x = if x == 0.0 { 0.0 } else { x };
            (2u8, x.to_bits()).hash(h)
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(xs) => {
            (4u8, xs.len()).hash(h);
            for x in xs {
                hash_canonical(x, h);
            }
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                k.hash(h);
                hash_canonical(&m[k], h);
            }
        }
    }
}

/// The start of user text quoted in an error message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn after(s: &str) -> TimeRange {
        TimeRange {
            start: Some(t(s)),
            end: None,
        }
    }

    fn aggregate(
        methods: &str,
        period: &str,
        range: TimeRange,
        instances: &[(Value, &str)],
    ) -> Value {
        let methods = parse_aggr_methods(methods).unwrap();
        let period = parse_aggr_period_duration(period).unwrap();
        let mut aggr = Aggregator::new(&methods, period, range);
        for (value, at) in instances {
            aggr.push(value, t(at)).unwrap();
        }
        Value::Object(aggr.finish().to_members())
    }

    const HOUR: i128 = 3600 * NANOS_PER_SEC;

    #[test]
    fn parses_methods() {
        use AggrMethod::*;
        let cases: &[(&str, &[AggrMethod])] = &[
            ("avg", &[Avg]),
            ("avg,max", &[Avg, Max]),
            (" min , max ", &[Min, Max]),
            ("avg,avg,sum", &[Avg, Sum]),
            (
                "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq",
                &AggrMethod::ALL,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_aggr_methods(text).unwrap(), *want, "{text}");
        }
    }

    #[test]
    fn refuses_bad_methods_naming_them() {
        let cases = [
            ("bogus", "unknown aggregation method \"bogus\""),
            ("avg,median", "unknown aggregation method \"median\""),
            ("AVG", "unknown aggregation method \"AVG\""),
            ("", "no aggregation method given"),
            ("avg,,max", "item 2 of \"avg,,max\" is empty"),
            ("avg,", "item 2"),
        ];
        for (text, want) in cases {
            let err = parse_aggr_methods(text).unwrap_err().detail;
            assert!(err.starts_with("aggrMethods: "), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
        }
        let long = "x".repeat(crate::MAX_INPUT_LEN + 1);
        assert!(parse_aggr_methods(&long).is_err());
    }

    #[test]
    fn reads_methods_from_json() {
        use AggrMethod::*;
        let cases: &[(Value, Result<&[AggrMethod], &str>)] = &[
            (json!("avg,max"), Ok(&[Avg, Max])),
            (json!(["avg"]), Ok(&[Avg])),
            (json!(["sum", "min", "sum"]), Ok(&[Sum, Min])),
            (
                json!(["bogus"]),
                Err("unknown aggregation method \"bogus\""),
            ),
            (json!([]), Err("no aggregation method given")),
            (json!(["avg", 3]), Err("3 is not a method name")),
            (json!({"avg": true}), Err("expected a string or an array")),
            (json!("avg,,max"), Err("item 2")),
        ];
        for (value, want) in cases {
            match (aggr_methods_from_json(value), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{value}"),
                (Err(got), Err(want)) => {
                    assert!(got.detail.starts_with("aggrMethods: "), "{value}: {got}");
                    assert!(got.detail.contains(want), "{value}: {got}");
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn parses_durations() {
        let every = |months, nanos| Period::Every { months, nanos };
        let cases = [
            ("PT1H", every(0, HOUR)),
            ("PT90M", every(0, 90 * 60 * NANOS_PER_SEC)),
            ("PT0.5S", every(0, NANOS_PER_SEC / 2)),
            ("PT1,25S", every(0, NANOS_PER_SEC * 5 / 4)),
            ("PT0.000000001S", every(0, 1)),
            ("P1D", every(0, NANOS_PER_DAY)),
            ("P1W", every(0, 7 * NANOS_PER_DAY)),
            ("P1M", every(1, 0)),
            ("P1Y2M", every(14, 0)),
            ("P1MT1H", every(1, HOUR)),
            (
                "P3Y6M4DT12H30M5S",
                every(
                    42,
                    4 * NANOS_PER_DAY + (12 * 3600 + 30 * 60 + 5) * NANOS_PER_SEC,
                ),
            ),
            ("P1000Y", every(12_000, 0)),
            ("PT0S", Period::WholeRange),
            ("P0D", Period::WholeRange),
            ("P0Y0M0DT0H0M0.0S", Period::WholeRange),
        ];
        for (text, want) in cases {
            assert_eq!(parse_aggr_period_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_bad_durations() {
        let cases = [
            ("bogus", "must start with P"),
            ("", "must start with P"),
            ("P", "no component"),
            ("PT", "T must be followed"),
            ("P1DT", "T must be followed"),
            ("-P1D", "must start with P"),
            (" PT1H", "must start with P"),
            ("pt1h", "must start with P"),
            ("P1H", "unexpected 'H'"),
            ("PT1D", "unexpected 'D'"),
            ("PT1S1M", "unexpected 'M'"),
            ("PT1H1H", "unexpected 'H'"),
            ("P1D1Y", "unexpected 'Y'"),
            ("P1", "no unit letter"),
            ("PT1.S", "bad fraction"),
            ("PT1.0000000001S", "bad fraction"),
            ("P1.5D", "only the seconds"),
            ("PT1.5H", "only the seconds"),
            ("P1.0Y", "only the seconds"),
            ("P1W1D", "weeks"),
            ("P1WT1H", "weeks"),
            ("P0001-02-03", "unexpected '-'"),
            ("PT.5S", "not a number"),
            ("P1..5D", "bad fraction"),
            ("P9999999999999999999D", "up to 18 digits"),
            ("P1001Y", "longer than 1000 years"),
            ("P1000Y1M", "longer than 1000 years"),
            ("PT8784001H", "longer than 1000 years"),
            ("P99999Y", "longer than 1000 years"),
            ("P999999999999999999Y", "longer than 1000 years"),
            ("PT999999999999999999H", "longer than 1000 years"),
            ("P1Dé", "unexpected 'é'"),
        ];
        for (text, want) in cases {
            let err = parse_aggr_period_duration(text).unwrap_err().detail;
            assert!(err.starts_with("aggrPeriodDuration: "), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    type Series = Vec<(Value, &'static str)>;

    /// The instances of data/temporalEntities/2020-08-vehicle-temporal-representation.jsonld.
    fn vehicle() -> (Series, Series) {
        let speed = vec![
            (json!(120), "2020-08-01T12:03:00Z"),
            (json!(80), "2020-08-01T12:05:00Z"),
            (json!(100), "2020-08-01T12:07:00Z"),
        ];
        let fuel = vec![
            (json!(67), "2020-08-01T12:03:00Z"),
            (json!(53), "2020-08-01T13:05:00Z"),
            (json!(40), "2020-08-01T14:07:00Z"),
        ];
        (speed, fuel)
    }

    /// 020_11 (no range) and 021_17 (`timerel=after&timeAt=2020-01-01T12:03:00Z`) compare
    /// the whole JSON, so the numbers must be `67.0`, not `67`, and the bounds `...:00Z`.
    #[test]
    fn matches_the_suite_expectations() {
        let (speed, fuel) = vehicle();
        let fuel_hours = json!([
            [67.0, "2020-08-01T12:03:00Z", "2020-08-01T13:03:00Z"],
            [53.0, "2020-08-01T13:03:00Z", "2020-08-01T14:03:00Z"],
            [40.0, "2020-08-01T14:03:00Z", "2020-08-01T15:03:00Z"]
        ]);
        let first_hour = |v: f64| json!([[v, "2020-08-01T12:03:00Z", "2020-08-01T13:03:00Z"]]);
        let day = |v: f64| json!([[v, "2020-08-01T12:03:00Z", "2020-08-02T12:03:00Z"]]);
        for range in [TimeRange::default(), after("2020-01-01T12:03:00Z")] {
            let cases = [
                ("avg", "PT1H", &fuel, json!({"avg": fuel_hours})),
                ("avg", "PT1H", &speed, json!({"avg": first_hour(100.0)})),
                (
                    "avg,max",
                    "PT1H",
                    &speed,
                    json!({"avg": first_hour(100.0), "max": first_hour(120.0)}),
                ),
                (
                    "avg,max",
                    "PT1H",
                    &fuel,
                    json!({"avg": fuel_hours, "max": fuel_hours}),
                ),
                (
                    "min,max",
                    "P1D",
                    &speed,
                    json!({"min": day(80.0), "max": day(120.0)}),
                ),
                (
                    "min,max",
                    "P1D",
                    &fuel,
                    json!({"min": day(40.0), "max": day(67.0)}),
                ),
            ];
            for (methods, period, instances, want) in cases {
                let got = aggregate(methods, period, range, instances);
                // Compared as text: `json!` equality would take 67 for 67.0.
                assert_eq!(
                    got.to_string(),
                    want.to_string(),
                    "{methods} {period} {range:?}"
                );
            }
        }
    }

    #[test]
    fn whole_range_spans_the_requested_range() {
        let (speed, _) = vehicle();
        let cases = [
            (
                TimeRange::default(),
                json!([[3, "2020-08-01T12:03:00Z", "2020-08-01T12:07:00Z"]]),
            ),
            (
                after("2020-08-01T12:00:00Z"),
                json!([[3, "2020-08-01T12:00:00Z", "2020-08-01T12:07:00Z"]]),
            ),
            (
                TimeRange {
                    start: Some(t("2020-08-01T12:04:00Z")),
                    end: Some(t("2020-08-01T12:07:00Z")),
                },
                json!([[1, "2020-08-01T12:04:00Z", "2020-08-01T12:07:00Z"]]),
            ),
            (
                TimeRange {
                    start: None,
                    end: Some(t("2020-08-01T13:00:00Z")),
                },
                json!([[3, "2020-08-01T12:03:00Z", "2020-08-01T13:00:00Z"]]),
            ),
        ];
        for (range, want) in cases {
            let got = aggregate("totalCount", "PT0S", range, &speed);
            assert_eq!(got, json!({ "totalCount": want }), "{range:?}");
        }
    }

    /// Periods are `[start, end)`, aligned at the start of the range, and empty ones are
    /// left out.
    #[test]
    fn splits_hours() {
        let instances = [
            (json!(1), "2024-05-01T10:00:00Z"),
            (json!(2), "2024-05-01T10:59:59.999Z"),
            (json!(4), "2024-05-01T11:00:00Z"),
            (json!(8), "2024-05-01T12:30:00Z"),
            (json!(16), "2024-05-01T12:59:59Z"),
        ];
        let got = aggregate(
            "sum,totalCount",
            "PT1H",
            after("2024-05-01T10:00:00Z"),
            &instances,
        );
        assert_eq!(
            got,
            json!({
                "sum": [
                    [3.0, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"],
                    [4.0, "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"],
                    [24.0, "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
                ],
                "totalCount": [
                    [2, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"],
                    [1, "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"],
                    [2, "2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z"]
                ]
            })
        );
        // Aligned at 09:30 instead: the bounds move, a gap leaves no empty period behind.
        let got = aggregate(
            "totalCount",
            "PT1H",
            after("2024-05-01T09:30:00Z"),
            &instances,
        );
        assert_eq!(
            got,
            json!({"totalCount": [
                [1, "2024-05-01T09:30:00Z", "2024-05-01T10:30:00Z"],
                [2, "2024-05-01T10:30:00Z", "2024-05-01T11:30:00Z"],
                [2, "2024-05-01T12:30:00Z", "2024-05-01T13:30:00Z"]
            ]})
        );
    }

    /// Calendar months from 31 January: each bound is origin + k months, clamped to the
    /// end of a shorter month, never carried from one bound to the next.
    #[test]
    fn splits_months_across_month_ends() {
        let instances = [
            (json!(1), "2024-01-31T00:00:00Z"),
            (json!(2), "2024-02-28T23:59:59Z"),
            (json!(3), "2024-02-29T00:00:00Z"),
            (json!(4), "2024-03-30T00:00:00Z"),
            (json!(5), "2024-03-31T00:00:00Z"),
            (json!(6), "2025-02-28T12:00:00Z"),
        ];
        let got = aggregate("sum", "P1M", TimeRange::default(), &instances);
        assert_eq!(
            got,
            json!({"sum": [
                [3.0, "2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z"],
                [7.0, "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"],
                [5.0, "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"],
                [6.0, "2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z"]
            ]})
        );
        let got = aggregate(
            "totalCount",
            "P1Y",
            after("2023-06-15T00:00:00Z"),
            &instances,
        );
        assert_eq!(
            got,
            json!({"totalCount": [
                [5, "2023-06-15T00:00:00Z", "2024-06-15T00:00:00Z"],
                [1, "2024-06-15T00:00:00Z", "2025-06-15T00:00:00Z"]
            ]})
        );
    }

    #[test]
    fn period_index_agrees_with_period_start() {
        let origin = t("2023-01-31T05:00:00Z");
        let periods = [
            (1, 0),
            (0, HOUR),
            (1, HOUR),
            (14, 3 * NANOS_PER_DAY),
            (0, 7),
        ];
        for (months, nanos) in periods {
            for k in [-40i128, -1, 0, 1, 2, 11, 12, 13, 500] {
                let start = period_start(origin, months, nanos, k).unwrap();
                let next = period_start(origin, months, nanos, k + 1).unwrap();
                assert!(start < next, "{months} {nanos} {k}");
                for at in [
                    start,
                    start + (next - start) / 2,
                    next - TimeDelta::nanoseconds(1),
                ] {
                    assert_eq!(
                        period_index(origin, months, nanos, at),
                        k,
                        "{months} {nanos} {k} {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_input_gives_empty_series() {
        let aggr = Aggregator::new(
            &[AggrMethod::Avg, AggrMethod::TotalCount],
            Period::WholeRange,
            TimeRange::default(),
        )
        .finish();
        assert!(aggr.is_empty());
        assert_eq!(
            Value::Object(aggr.to_members()),
            json!({"avg": [], "totalCount": []})
        );
    }

    /// What each method makes of each kind of value, over the whole range.
    #[test]
    fn methods_by_value_type() {
        let all = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq";
        let cases = [
            (
                "booleans count as 1 and 0",
                vec![json!(true), json!(false), json!(true), json!(true)],
                json!([4, 2, 3.0, 0.75, 0.0, 1.0, 0.5, 3.0]),
            ),
            (
                "strings: counts and code point order",
                vec![json!("b"), json!("a"), json!("B"), json!("a")],
                json!([4, 3, null, null, "B", "b", null, null]),
            ),
            (
                "date-times as strings order in time",
                vec![json!("2020-01-02T00:00:00Z"), json!("2019-12-31T00:00:00Z")],
                json!([
                    2,
                    2,
                    null,
                    null,
                    "2019-12-31T00:00:00Z",
                    "2020-01-02T00:00:00Z",
                    null,
                    null
                ]),
            ),
            (
                "objects and null are only counted; key order does not matter",
                vec![
                    json!({"a": 1, "b": 2}),
                    json!({"b": 2, "a": 1}),
                    json!({"a": {"c": [1]}, "b": 2}),
                    json!(null),
                ],
                json!([4, 3, null, null, null, null, null, null]),
            ),
            (
                "arrays count as their length; order of elements matters",
                vec![
                    json!([1, 2]),
                    json!([2, 1]),
                    json!([]),
                    json!(["x", "y", "z"]),
                ],
                json!([4, 4, 7.0, 1.75, 0.0, 3.0, 1.2583057392117916, 17.0]),
            ),
            (
                "equal numbers are one distinct value",
                vec![json!(1), json!(1.0), json!(-0.0), json!(0)],
                json!([4, 2, 2.0, 0.5, 0.0, 1.0, 0.5773502691896257, 2.0]),
            ),
            (
                "mixed: numbers win min and max over strings",
                vec![json!(5), json!("zzz"), json!(3), json!({"x": 1})],
                json!([4, 4, 8.0, 4.0, 3.0, 5.0, std::f64::consts::SQRT_2, 34.0]),
            ),
            (
                "one number: no sample deviation",
                vec![json!(7)],
                json!([1, 1, 7.0, 7.0, 7.0, 7.0, null, 49.0]),
            ),
        ];
        for (name, values, want) in cases {
            let instances: Vec<(Value, &str)> = values
                .into_iter()
                .map(|v| (v, "2024-01-01T00:00:00Z"))
                .collect();
            let got = aggregate(all, "PT0S", TimeRange::default(), &instances);
            let got: Vec<Value> = AggrMethod::ALL
                .iter()
                .map(|m| match got[m.name()].as_array().unwrap().as_slice() {
                    [] => Value::Null,
                    [triple] => triple[0].clone(),
                    more => panic!("{name}: {} periods", more.len()),
                })
                .collect();
            assert_eq!(Value::Array(got).to_string(), want.to_string(), "{name}");
        }
    }

    /// A deterministic pseudo-random series over three hours; each method is checked
    /// against a plain two-pass computation over the values of each hour.
    #[test]
    fn methods_agree_with_two_pass_formulas() {
        let start = t("2024-03-10T00:00:00Z");
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut instances = Vec::new();
        let mut at = start;
        while at < start + TimeDelta::hours(3) {
            // Values around 1e9 with small spread: the case where sum-of-squares variance
            // formulas lose every digit and Welford must not.
            let x = 1.0e9 + (next() % 10_000) as f64 / 100.0;
            instances.push((x, at));
            at += TimeDelta::milliseconds((next() % 20_000) as i64 + 1);
        }
        let mut aggr = Aggregator::new(
            &AggrMethod::ALL,
            parse_aggr_period_duration("PT1H").unwrap(),
            TimeRange {
                start: Some(start),
                end: None,
            },
        );
        for (x, at) in &instances {
            aggr.push(&json!(x), *at).unwrap();
        }
        let result = aggr.finish();
        assert_eq!(result.periods.len(), 3);
        for (h, period) in result.periods.iter().enumerate() {
            let from = start + TimeDelta::hours(h as i64);
            assert_eq!(
                (period.start, period.end),
                (from, from + TimeDelta::hours(1))
            );
            let xs: Vec<f64> = instances
                .iter()
                .filter(|(_, at)| from <= *at && *at < from + TimeDelta::hours(1))
                .map(|(x, _)| *x)
                .collect();
            let n = xs.len() as f64;
            let sum: f64 = xs.iter().sum();
            let mean = sum / n;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            let want = [
                n,
                sorted.len() as f64,
                sum,
                mean,
                sorted[0],
                sorted[sorted.len() - 1],
                var.sqrt(),
                xs.iter().map(|x| x * x).sum(),
            ];
            for (i, method) in AggrMethod::ALL.iter().enumerate() {
                let got = period.values[i].as_ref().and_then(Value::as_f64).unwrap();
                let tolerance = 1e-9 * want[i].abs().max(1.0);
                assert!(
                    (got - want[i]).abs() <= tolerance,
                    "hour {h} {method}: got {got}, want {}",
                    want[i]
                );
            }
        }
    }

    #[test]
    fn hostile_values_and_order() {
        // Sums past f64::MAX have no finite value: the entry is left out, nothing panics.
        let huge = [
            (json!(1.0e308), "2024-01-01T00:00:00Z"),
            (json!(1.0e308), "2024-01-01T00:00:01Z"),
            (json!(-1.0e308), "2024-01-01T00:00:02Z"),
        ];
        let got = aggregate("sum,sumsq,max,stddev", "PT0S", TimeRange::default(), &huge);
        assert_eq!(got["sumsq"], json!([]));
        assert_eq!(got["sum"], json!([]), "the running sum overflowed");
        assert_eq!(got["max"][0][0], json!(1.0e308));

        let mut aggr =
            Aggregator::new(&[AggrMethod::Sum], Period::WholeRange, TimeRange::default());
        aggr.push(&json!(1), t("2024-01-01T00:00:01Z")).unwrap();
        let err = aggr.push(&json!(1), t("2024-01-01T00:00:00Z")).unwrap_err();
        assert!(err.detail.contains("time order"), "{}", err.detail);

        // A one-nanosecond period over centuries: the index is computed, not walked to.
        let far = [
            (json!(1), "1900-01-01T00:00:00Z"),
            (json!(2), "2200-01-01T00:00:00Z"),
        ];
        let got = aggregate("sum", "PT0.000000001S", TimeRange::default(), &far);
        assert_eq!(got["sum"][1][1], json!("2200-01-01T00:00:00Z"));
        assert_eq!(got["sum"][1][2], json!("2200-01-01T00:00:00.000000001Z"));
    }

    #[test]
    fn skips_instances_outside_the_range() {
        let range = TimeRange {
            start: Some(t("2024-01-01T01:00:00Z")),
            end: Some(t("2024-01-01T02:00:00Z")),
        };
        let instances = [
            (json!(1), "2024-01-01T00:59:59Z"),
            (json!(2), "2024-01-01T01:00:00Z"),
            (json!(4), "2024-01-01T02:00:00Z"),
        ];
        let got = aggregate("sum", "PT30M", range, &instances);
        assert_eq!(
            got,
            json!({"sum": [[2.0, "2024-01-01T01:00:00Z", "2024-01-01T01:30:00Z"]]})
        );
    }

    #[test]
    fn bounds_distinct_values_per_period() {
        let mut aggr = Aggregator::new(
            &[AggrMethod::DistinctCount],
            parse_aggr_period_duration("PT1H").unwrap(),
            TimeRange::default(),
        );
        let at = t("2024-01-01T00:00:00Z");
        for i in 0..MAX_DISTINCT {
            aggr.push(&json!(i), at).unwrap();
        }
        aggr.push(&json!(0), at).unwrap();
        let err = aggr.push(&json!(-1), at).unwrap_err();
        assert!(
            err.detail.starts_with("distinctCount: more than"),
            "{}",
            err.detail
        );
        // Without distinctCount nothing is tracked, so nothing is refused.
        let mut aggr = Aggregator::new(
            &[AggrMethod::TotalCount],
            Period::WholeRange,
            TimeRange::default(),
        );
        for i in 0..=MAX_DISTINCT {
            aggr.push(&json!(i), at).unwrap();
        }
        assert_eq!(
            aggr.finish().periods[0].values[0],
            Some(json!(MAX_DISTINCT + 1))
        );
    }

    #[test]
    fn aligns_at_a_given_origin() {
        let (speed, _) = vehicle();
        let methods = [AggrMethod::TotalCount];
        let mut aggr = Aggregator::new(
            &methods,
            parse_aggr_period_duration("PT1H").unwrap(),
            TimeRange::default(),
        )
        .aligned_at(t("2020-08-01T12:00:00Z"));
        for (v, at) in &speed {
            aggr.push(v, t(at)).unwrap();
        }
        assert_eq!(
            Value::Object(aggr.finish().to_members()),
            json!({"totalCount": [[3, "2020-08-01T12:00:00Z", "2020-08-01T13:00:00Z"]]})
        );
    }
}
