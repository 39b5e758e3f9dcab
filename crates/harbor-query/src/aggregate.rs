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
    /// Whether `distinctCount` is asked, so values are hashed.
    distinct: bool,
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
            distinct: methods.contains(&AggrMethod::DistinctCount),
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
        self.push_sample(Sample::of(value), at)
    }

    /// [`push`](Self::push) for a value given as a [`Sample`], which a store can hand over
    /// without building a `serde_json::Value`; the result is the same.
    pub fn push_sample(&mut self, value: Sample<'_>, at: DateTime<Utc>) -> Result<(), QueryError> {
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
        let distinct = self.distinct.then_some(&self.hasher);
        match &mut self.current {
            Some(open) => open.acc.add(value, distinct),
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

/// The aggregation of the instances of one Attribute that share a `datasetId`: one entry of
/// the aggregated representation, with the Attribute's type (`Property`, `Relationship`, ...)
/// as its first aggregated instance has it.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedSeries {
    pub kind: &'static str,
    pub dataset_id: Option<String>,
    pub values: Aggregated,
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
    fn add(&mut self, value: Sample<'_>, distinct: Option<&RandomState>) -> Result<(), QueryError> {
        // A JSON scalar given whole is taken as its sample, so both forms agree.
        let value = match value {
            Sample::Json(v) => Sample::of(v),
            other => other,
        };
        self.count += 1;
        if let Some(hasher) = distinct {
            let mut h = hasher.build_hasher();
            value.hash_canonical(&mut h);
            if self.distinct.insert(h.finish()) && self.distinct.len() > MAX_DISTINCT {
                return Err(QueryError::new(format!(
                    "distinctCount: more than {MAX_DISTINCT} distinct values in one aggregation \
                     period; ask for a shorter aggrPeriodDuration"
                )));
            }
        }
        let x = match value {
            Sample::Number(x) => Some(x).filter(|x| x.is_finite()),
            Sample::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Sample::Json(Value::Array(xs)) => Some(xs.len() as f64),
            Sample::Str(s) => {
                self.add_string(s);
                None
            }
            Sample::Json(_) => None,
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

/// One instance's value as the aggregator takes it. JSON numbers are taken as `f64`, which
/// is all any method reads of them, so a store can hand numbers, booleans and strings over
/// without building a `serde_json::Value`; anything else is given whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<'a> {
    Number(f64),
    Bool(bool),
    Str(&'a str),
    /// Any JSON value (arrays, objects and null only come this way).
    Json(&'a Value),
}

impl<'a> Sample<'a> {
    /// The sample of a JSON value.
    pub fn of(value: &'a Value) -> Self {
        match value {
            Value::Number(n) => Sample::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => Sample::Bool(*b),
            Value::String(s) => Sample::Str(s),
            other => Sample::Json(other),
        }
    }

    /// Hashes like [`hash_canonical`] hashes the JSON value this sample stands for.
    fn hash_canonical(&self, h: &mut impl Hasher) {
        match *self {
            Sample::Number(x) => hash_number(x, h),
            Sample::Bool(b) => (1u8, b).hash(h),
            Sample::Str(s) => (3u8, s).hash(h),
            Sample::Json(v) => hash_canonical(v, h),
        }
    }
}

fn hash_number(x: f64, h: &mut impl Hasher) {
    let x = if x == 0.0 { 0.0 } else { x };
    (2u8, x.to_bits()).hash(h)
}

/// Hashes a JSON value so that equal numbers (`1`, `1.0`, `-0.0`, `0`) and objects with the
/// same members in another order hash alike.
fn hash_canonical(value: &Value, h: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => hash_number(n.as_f64().unwrap_or(f64::NAN), h),
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
mod tests;
