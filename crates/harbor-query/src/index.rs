//! What a value index can answer for a `q` expression: the keys an index keeps for one
//! attribute of one Entity ([`index_keys`]), and the plan of key ranges a query's matches
//! must fall in ([`Q::plan`]).
//!
//! A plan is a *superset* rule: every Entity the expression matches is found by the plan,
//! but the plan may find more, so a backend re-checks what it finds with
//! [`Q::matches`](crate::Q::matches). Keys follow the comparison rules of `q` (4.9):
//! numbers numerically, strings by code point, booleans, and strings that read as a
//! DateTime also chronologically, as a `q` DateTime literal compares them.

use std::cmp::Ordering;
use std::ops::Bound;

use harbor_model::{Entity, Timestamp};
use serde_json::Value;

use crate::bool_expr::BoolExpr;
use crate::q_eval::plain_values;
use crate::q_parse::{OrderOp, Path, Pred, Term, Test, Q};
use crate::q_value::{Lit, Temporal};

/// Longest string kept as a key, in bytes. A longer value is not indexed: its Entity is
/// among those the index could not key ([`index_keys`] returns `false`), which a backend
/// keeps apart and always re-checks.
pub const MAX_KEY_LEN: usize = 256;

/// A number as an index key: ordered by `f64::total_cmp`, the order `orderBy` sorts by.
#[derive(Debug, Clone, Copy)]
pub struct Num(pub f64);

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Num {}
impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One key of a value index. Keys of different kinds order Numbers < Strings < Booleans,
/// as `orderBy` ranks them (4.23); `Time` keys, the chronological reading of DateTime
/// strings, come after every other kind and take no part in ordering.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScalarKey {
    Num(Num),
    Str(Box<str>),
    Bool(bool),
    Time(Timestamp),
}

impl ScalarKey {
    /// The first `Time` key: ordering keys are the ones below it.
    pub const FIRST_TIME: ScalarKey = ScalarKey::Time(Timestamp::MIN_UTC);

    pub fn is_time(&self) -> bool {
        matches!(self, ScalarKey::Time(_))
    }
}

/// A range of keys, as `(lower, upper)` bounds.
pub type KeyRange = (Bound<ScalarKey>, Bound<ScalarKey>);

/// What [`index_keys`] could not key among an attribute's values.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unkeyed {
    /// A string longer than [`MAX_KEY_LEN`]: `q` terms may match it, so a backend keeps
    /// such Entities apart and re-checks them.
    pub long: bool,
    /// A value that is not a scalar (an object, a nested array, a null in an array): no
    /// `q` comparison matches it, but it ranks in an ordering where no key does.
    pub other: bool,
}

/// Appends to `out` the keys an index keeps for the attribute `name` of `e`: every Number,
/// String and Boolean its `q` terms see (each element of an array value, every instance,
/// every language of a LanguageProperty, the object of a Relationship), and a `Time` key for
/// each String that reads as a DateTime. Returns what it could not key.
pub fn index_keys(e: &Entity, name: &str, out: &mut Vec<ScalarKey>) -> Unkeyed {
    let mut unkeyed = Unkeyed::default();
    let mut push = |v: &Value| match v {
        Value::Number(n) => out.push(ScalarKey::Num(Num(n.as_f64().unwrap_or(f64::NAN)))),
        Value::Bool(b) => out.push(ScalarKey::Bool(*b)),
        Value::String(s) if s.len() <= MAX_KEY_LEN => {
            if let Some(Temporal::DateTime(t)) = Temporal::parse(s) {
                out.push(ScalarKey::Time(t));
            }
            out.push(ScalarKey::Str(s.as_str().into()));
        }
        Value::String(_) => unkeyed.long = true,
        _ => unkeyed.other = true,
    };
    for v in plain_values(e, name) {
        match v.as_ref() {
            Value::Array(xs) => xs.iter().for_each(&mut push),
            // Matches nothing and ranks as absent.
            Value::Null => {}
            other => push(other),
        }
    }
    unkeyed
}

/// Which Entities a `q` expression can match, in terms an index answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Entities with a key of the attribute in one of the ranges, or whose values the index
    /// could not key.
    Values {
        attr: String,
        ranges: Vec<KeyRange>,
    },
    /// Entities that have the attribute.
    Has(String),
    And(Vec<Plan>),
    Or(Vec<Plan>),
}

impl Q {
    /// The index plan of the expression: `None` when no index narrows it (a term on the
    /// Entity's id or type, a non-existence term, a term on a Linked Entity under an OR).
    pub fn plan(&self) -> Option<Plan> {
        plan(&self.expr)
    }
}

fn plan(e: &BoolExpr<Term>) -> Option<Plan> {
    match e {
        BoolExpr::Leaf(t) => term_plan(t),
        BoolExpr::And(xs) => {
            let mut parts: Vec<Plan> = xs.iter().filter_map(plan).collect();
            match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(Plan::And(parts)),
            }
        }
        BoolExpr::Or(xs) => xs
            .iter()
            .map(plan)
            .collect::<Option<Vec<_>>>()
            .map(Plan::Or),
    }
}

fn term_plan(t: &Term) -> Option<Plan> {
    let Path::Attr(p) = &t.path else {
        return None;
    };
    if p.link.is_some() {
        return None;
    }
    let has = || Some(Plan::Has(p.name.clone()));
    match &t.test {
        Test::Missing => None,
        Test::Exists => has(),
        // `!=` and `!~=` hold only where the attribute exists.
        Test::Holds { negated: true, .. } => has(),
        Test::Holds { pred, .. } if p.steps.is_empty() && p.keys.is_empty() => {
            match pred_ranges(pred) {
                Some(ranges) => Some(Plan::Values {
                    attr: p.name.clone(),
                    ranges,
                }),
                None => has(),
            }
        }
        // A sub-attribute, a meta member or a key into the value: the attribute must exist.
        Test::Holds { .. } => has(),
    }
}

/// The key ranges a value satisfying `pred` falls in; `None` when they cannot be told.
fn pred_ranges(pred: &Pred) -> Option<Vec<KeyRange>> {
    use Bound::{Excluded, Included};
    match pred {
        Pred::Order(op, lit) => {
            let (lower, upper) = match op {
                OrderOp::Gt => (Some(false), None),
                OrderOp::Ge => (Some(true), None),
                OrderOp::Lt => (None, Some(false)),
                OrderOp::Le => (None, Some(true)),
            };
            lit_ranges(lit, lit, lower, upper)
        }
        Pred::Eq(lits) => {
            let mut out = Vec::new();
            for l in lits {
                out.extend(lit_ranges(l, l, Some(true), Some(true))?);
            }
            Some(out)
        }
        Pred::Range(lo, hi) => lit_ranges(lo, hi, Some(true), Some(true)),
        Pred::Regex(re) => {
            let prefix = literal_prefix(re.as_str())?;
            let mut end = prefix.clone().into_bytes();
            // The prefix is ASCII below DEL, so its last byte has a successor.
            let last = end.pop()?;
            end.push(last + 1);
            let end = String::from_utf8(end).ok()?;
            Some(vec![(
                Included(ScalarKey::Str(prefix.into())),
                Excluded(ScalarKey::Str(end.into())),
            )])
        }
    }
}

/// The ranges of values between `lo` and `hi`: `lower` / `upper` say whether that side is
/// bounded, and inclusively. The two literals must be of one kind (a range `1..b` matches
/// nothing, an empty list of ranges).
fn lit_ranges(
    lo: &Lit,
    hi: &Lit,
    lower: Option<bool>,
    upper: Option<bool>,
) -> Option<Vec<KeyRange>> {
    let bound = |key: ScalarKey, inclusive: Option<bool>| match inclusive {
        None => Bound::Unbounded,
        Some(true) => Bound::Included(key),
        Some(false) => Bound::Excluded(key),
    };
    // Each kind's range stays within that kind: an unbounded side stops at the kind's edge.
    let within = |lower_key: Bound<ScalarKey>,
                  upper_key: Bound<ScalarKey>,
                  first: Bound<ScalarKey>,
                  last: Bound<ScalarKey>| {
        let lower_key = match lower_key {
            Bound::Unbounded => first,
            b => b,
        };
        let upper_key = match upper_key {
            Bound::Unbounded => last,
            b => b,
        };
        (lower_key, upper_key)
    };
    let str_key = |s: &str| ScalarKey::Str(s.into());
    match (lo, hi) {
        (Lit::Num(a), Lit::Num(b)) => {
            let (a, b) = (num_bound(*a, lower, true), num_bound(*b, upper, false));
            Some(vec![within(
                a,
                b,
                Bound::Unbounded,
                Bound::Excluded(str_key("")),
            )])
        }
        (Lit::Bool(a), Lit::Bool(b)) => Some(vec![within(
            bound(ScalarKey::Bool(*a), lower),
            bound(ScalarKey::Bool(*b), upper),
            Bound::Included(ScalarKey::Bool(false)),
            Bound::Included(ScalarKey::Bool(true)),
        )]),
        (Lit::Str { text: a, time: ta }, Lit::Str { text: b, time: tb }) => {
            let strings = within(
                bound(str_key(a), lower),
                bound(str_key(b), upper),
                Bound::Included(str_key("")),
                // Past every string: the first Boolean, excluded.
                Bound::Excluded(ScalarKey::Bool(false)),
            );
            match (ta, tb) {
                (None, None) => Some(vec![strings]),
                // A DateTime literal compares DateTime strings chronologically, the others
                // by code point.
                (Some(Temporal::DateTime(x)), Some(Temporal::DateTime(y))) => {
                    let times = within(
                        bound(ScalarKey::Time(*x), lower),
                        bound(ScalarKey::Time(*y), upper),
                        Bound::Included(ScalarKey::FIRST_TIME),
                        Bound::Unbounded,
                    );
                    Some(vec![times, strings])
                }
                // Dates and times of day compare chronologically with strings of their
                // kind only, which no key keeps.
                _ => None,
            }
        }
        _ => match (lower, upper) {
            // A one-sided comparison with a literal of one kind: handled above.
            (Some(_), Some(_)) => Some(Vec::new()),
            _ => None,
        },
    }
}

/// A bound on numbers under `total_cmp`, where `q` compares with `partial_cmp`: there
/// `-0 == 0`, so a bound at zero takes in (or leaves out) both zeros.
fn num_bound(x: f64, inclusive: Option<bool>, lower: bool) -> Bound<ScalarKey> {
    let key = |v: f64| ScalarKey::Num(Num(v));
    if x != 0.0 {
        return match inclusive {
            None => Bound::Unbounded,
            Some(true) => Bound::Included(key(x)),
            Some(false) => Bound::Excluded(key(x)),
        };
    }
    match (inclusive, lower) {
        (None, _) => Bound::Unbounded,
        (Some(true), true) => Bound::Included(key(-0.0)),
        (Some(false), true) => Bound::Excluded(key(0.0)),
        (Some(true), false) => Bound::Included(key(0.0)),
        (Some(false), false) => Bound::Excluded(key(-0.0)),
    }
}

/// The literal text every match of an anchored pattern starts with (`^abc...`), when the
/// pattern has one: ASCII letters, digits and `_:/-` up to the first other character,
/// without a final character that a quantifier makes optional. `None` for a pattern with
/// an alternation, flags or no anchor.
fn literal_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if pattern.contains('|') {
        return None;
    }
    let mut prefix: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_:/-".contains(*c))
        .collect();
    if rest[prefix.len()..].starts_with(['*', '?', '{']) {
        prefix.pop();
    }
    (!prefix.is_empty()).then_some(prefix)
}
