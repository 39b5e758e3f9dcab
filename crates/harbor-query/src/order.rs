//! Ordering of query results (4.23): `orderBy`, `orderFrom` and `collation`.
//!
//! ```text
//! OrderBy   = Key *("," Key)
//! Key       = Path [";" ("asc" / "desc" / "dist-asc" / "dist-desc")]
//! Path      = the attribute path of `q` (4.9): name, ".sub" / ".observedAt", "[key]"
//! ```
//!
//! Values of different kinds rank Numbers < Strings < Booleans < anything else, and an
//! Entity lacking the value ranks last in either direction (4.23.2). Several values (an
//! array, several instances) rank by their smallest one. Distance keys rank by the
//! great-circle distance between a GeoProperty and the `orderFrom` geometry. With a
//! `collation`, strings compare by their base letters first (accents and case only break
//! ties), which is the primary strength of the Unicode root collation.

use std::cmp::Ordering;

use geo::Geometry;
use harbor_model::Entity;
use serde_json::Value;

use crate::bool_expr::Cursor;
use crate::q_eval::locate_values;
use crate::q_parse::{parse_path, Path};
use crate::QueryError;

/// A parsed `orderBy`.
#[derive(Debug, Clone)]
pub struct OrderBy {
    keys: Vec<OrderKey>,
    /// The `orderFrom` geometry of distance keys.
    from: Option<Geometry<f64>>,
    collate: bool,
}

#[derive(Debug, Clone)]
struct OrderKey {
    path: Path,
    direction: Direction,
}

/// The direction of one ordering key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
    DistAsc,
    DistDesc,
}

impl Direction {
    fn is_distance(self) -> bool {
        matches!(self, Direction::DistAsc | Direction::DistDesc)
    }
}

/// Parses `orderBy`; `from` is the `orderFrom` geometry, needed by distance keys;
/// `collation` a BCP 47 language tag or `None` for code point order.
pub fn parse_order_by(
    input: &str,
    expand: &dyn Fn(&str) -> String,
    from: Option<Geometry<f64>>,
    collation: Option<&str>,
) -> Result<OrderBy, QueryError> {
    QueryError::check_len("orderBy", input)?;
    let mut keys = Vec::new();
    let mut cur = Cursor::new("orderBy", input);
    loop {
        let path = parse_path(&mut cur, expand, 0)?;
        if matches!(&path, Path::Attr(p) if p.link.is_some()) {
            return Err(QueryError::new(
                "orderBy: a Linked Entity attribute cannot be used as an ordering key",
            ));
        }
        let direction = if cur.eat(";") {
            let start = cur.pos;
            while cur.peek().is_some_and(|c| c != ',') {
                cur.bump();
            }
            match &input[start..cur.pos] {
                "asc" => Direction::Asc,
                "desc" => Direction::Desc,
                "dist-asc" => Direction::DistAsc,
                "dist-desc" => Direction::DistDesc,
                other => {
                    return Err(cur.error_at(
                        start,
                        format_args!(
                            "unknown direction \"{other}\" (asc, desc, dist-asc or dist-desc)"
                        ),
                    ))
                }
            }
        } else {
            Direction::Asc
        };
        if direction.is_distance() && from.is_none() {
            return Err(QueryError::new(
                "orderBy: ordering by distance needs the reference geometry (orderFrom)",
            ));
        }
        keys.push(OrderKey { path, direction });
        if keys.len() > crate::MAX_TERMS {
            return Err(QueryError::new("orderBy: too many keys"));
        }
        if cur.peek().is_none() {
            break;
        }
        if !cur.eat(",") {
            return Err(cur.unexpected());
        }
    }
    let collate = match collation {
        None => false,
        Some(tag) if is_language_tag(tag) => true,
        Some(tag) => {
            return Err(QueryError::new(format!(
                "collation: \"{tag}\" is not a BCP 47 language tag"
            )))
        }
    };
    Ok(OrderBy {
        keys,
        from,
        collate,
    })
}

/// Whether `tag` has the shape of a BCP 47 language tag: alphanumeric subtags of 1 to 8
/// characters separated by hyphens, starting with a 2–8 letter language (or `und`).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=8).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    lang_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

impl OrderBy {
    /// Whether any key orders by distance.
    pub fn uses_distance(&self) -> bool {
        self.keys.iter().any(|k| k.direction.is_distance())
    }

    /// The attribute and direction (`true` for descending) of an ordering a value index
    /// can follow: one key on a plain attribute (no sub-attribute, meta member nor `[key]`),
    /// ascending or descending, without a collation. Its order is that of the attribute's
    /// smallest non-`Time` [`ScalarKey`](crate::ScalarKey), Entities without one last.
    pub fn plain_key(&self) -> Option<(&str, bool)> {
        let [k] = self.keys.as_slice() else {
            return None;
        };
        if self.collate {
            return None;
        }
        let desc = match k.direction {
            Direction::Asc => false,
            Direction::Desc => true,
            Direction::DistAsc | Direction::DistDesc => return None,
        };
        match &k.path {
            Path::Attr(p) if p.steps.is_empty() && p.keys.is_empty() && p.link.is_none() => {
                Some((p.name.as_str(), desc))
            }
            _ => None,
        }
    }

    /// The expanded attribute names the ordering reads.
    pub fn attributes(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|k| match &k.path {
                Path::Attr(p) => Some(p.name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sorts entities; entities that tie on every key keep their order.
    pub fn sort<E: std::borrow::Borrow<Entity>>(&self, entities: &mut [E]) {
        entities.sort_by(|a, b| self.compare(a.borrow(), b.borrow()));
    }

    /// The order of two entities.
    pub fn compare(&self, a: &Entity, b: &Entity) -> Ordering {
        for k in &self.keys {
            let o = if k.direction.is_distance() {
                let da = self.distance(a, &k.path);
                let db = self.distance(b, &k.path);
                absent_last(
                    da,
                    db,
                    |x, y| x.total_cmp(y),
                    k.direction == Direction::DistDesc,
                )
            } else {
                let va = self.smallest(a, &k.path);
                let vb = self.smallest(b, &k.path);
                absent_last(
                    va.as_ref(),
                    vb.as_ref(),
                    |x, y| self.compare_values(x, y),
                    k.direction == Direction::Desc,
                )
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    fn smallest(&self, e: &Entity, path: &Path) -> Option<Value> {
        locate_values(e, path)
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(xs) => xs,
                Value::Null => vec![],
                other => vec![other],
            })
            .min_by(|x, y| self.compare_values(x, y))
    }

    fn distance(&self, e: &Entity, path: &Path) -> Option<f64> {
        let from = self.from.as_ref()?;
        locate_values(e, path)
            .iter()
            .filter_map(|v| crate::geojson_to_geometry(v).ok())
            .map(|g| crate::spherical::geometry_distance(&g, from))
            .min_by(f64::total_cmp)
    }

    fn compare_values(&self, a: &Value, b: &Value) -> Ordering {
        let rank = |v: &Value| match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            _ => 3,
        };
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
            (Value::String(x), Value::String(y)) if self.collate => collation_key(x)
                .cmp(&collation_key(y))
                .then_with(|| x.cmp(y)),
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            _ => rank(a)
                .cmp(&rank(b))
                .then_with(|| a.to_string().cmp(&b.to_string())),
        }
    }
}

/// Present values compare with `cmp` (reversed when `desc`); an absent one ranks last.
fn absent_last<T>(
    a: Option<T>,
    b: Option<T>,
    cmp: impl Fn(&T, &T) -> Ordering,
    desc: bool,
) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if desc => cmp(&y, &x),
        (Some(x), Some(y)) => cmp(&x, &y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The primary-strength key of a string: base letters, lowercase, without accents.
fn collation_key(s: &str) -> String {
    use icu_normalizer::DecomposingNormalizerBorrowed;
    let nfd = DecomposingNormalizerBorrowed::new_nfd().normalize(s);
    nfd.chars()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Combining diacritical marks (U+0300–U+036F and the supplements used by NFD).
fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// The reference geometry of distance ordering (`orderFrom`, or the Query's `geometry` and
/// `coordinates`). Without a geometry name the shape of the coordinates decides: a position
/// is a Point, a list of positions a LineString, a list of those a Polygon.
pub fn order_from(geometry: Option<&str>, coords: &Value) -> Result<Geometry<f64>, QueryError> {
    fn nesting(v: &Value) -> usize {
        match v {
            Value::Array(xs) => 1 + xs.first().map_or(0, nesting),
            _ => 0,
        }
    }
    let ty = match (geometry, nesting(coords)) {
        (Some(g), _) => g,
        (None, 1) => "Point",
        (None, 2) => "LineString",
        (None, 3) => "Polygon",
        (None, _) => {
            return Err(QueryError::new(
                "orderFrom: the coordinates must be a position, a list of positions or a \
                 list of rings",
            ))
        }
    };
    crate::geojson::geometry_from_coordinates(ty, coords)
}
