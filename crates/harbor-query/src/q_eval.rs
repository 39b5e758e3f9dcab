//! Evaluating a parsed `q` expression against an Entity (4.9 matching rules).

use std::borrow::Cow;
use std::cmp::Ordering;

use harbor_model::{AttrValue, Attribute, Entity};
use serde_json::Value;

use crate::bool_expr::BoolExpr;
use crate::q_parse::{AttrPath, Meta, OrderOp, Path, Pred, Step, Term, Test, Q};

/// Looks up a linked Entity by id, for `rel{attr}` terms.
pub type LinkResolver<'a> = dyn Fn(&str) -> Option<Entity> + 'a;

impl Q {
    /// Whether the Entity matches. Terms on linked Entities (`rel{attr}`) never match here;
    /// use [`Q::matches_linked`] for those.
    pub fn matches(&self, e: &Entity) -> bool {
        self.matches_linked(e, &|_| None)
    }

    /// Whether the Entity matches, resolving `rel{attr}` terms through `resolve`.
    pub fn matches_linked(&self, e: &Entity, resolve: &LinkResolver<'_>) -> bool {
        self.expr
            .eval(&mut |t: &Term| eval_term(e, &t.path, &t.test, None, resolve))
    }

    /// The expanded top-level attribute names the expression mentions, in order, without
    /// duplicates (Entity members such as `id` or `createdAt` are not attributes).
    pub fn attributes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.expr.leaves() {
            if let Path::Attr(p) = &t.path {
                if !out.contains(&p.name) {
                    out.push(p.name.clone());
                }
            }
        }
        out
    }

    /// Expanded attribute names every matching Entity must have: a safe set for index
    /// pushdown (an Entity lacking any of them cannot match).
    pub fn required_attributes(&self) -> Vec<String> {
        required(&self.expr)
    }

    /// How many `{...}` hops the deepest linked-attribute term takes (0 when none).
    pub fn link_depth(&self) -> usize {
        fn depth(p: &Path) -> usize {
            match p {
                Path::Attr(AttrPath { link: Some(l), .. }) => 1 + depth(&l.path),
                _ => 0,
            }
        }
        self.expr
            .leaves()
            .iter()
            .map(|t| depth(&t.path))
            .max()
            .unwrap_or(0)
    }
}

fn required(e: &BoolExpr<Term>) -> Vec<String> {
    match e {
        BoolExpr::Leaf(t) => match (&t.path, &t.test) {
            (_, Test::Missing) => vec![],
            (Path::Attr(p), _) => vec![p.name.clone()],
            _ => vec![],
        },
        BoolExpr::And(xs) => {
            let mut out: Vec<String> = Vec::new();
            for n in xs.iter().flat_map(required) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            out
        }
        BoolExpr::Or(xs) => {
            let mut sets = xs.iter().map(required);
            let first = sets.next().unwrap_or_default();
            sets.fold(first, |acc, s| {
                acc.into_iter().filter(|n| s.contains(n)).collect()
            })
        }
    }
}

fn eval_term(
    e: &Entity,
    path: &Path,
    test: &Test,
    name_override: Option<&str>,
    resolve: &LinkResolver<'_>,
) -> bool {
    if let Test::Missing = test {
        return !eval_term(e, path, &Test::Exists, name_override, resolve);
    }
    if let Path::Attr(p) = path {
        if let Some(link) = &p.link {
            let name = name_override.unwrap_or(&p.name);
            return link_targets(e, name).iter().any(|id| {
                let Some(target) = resolve(id) else {
                    return false;
                };
                let inner_name = match &link.hint {
                    Some((ty, short)) if target.has_type(ty) => Some(short.as_str()),
                    _ => None,
                };
                eval_term(&target, &link.path, test, inner_name, resolve)
            });
        }
    }
    let found = locate(e, path, name_override);
    check(&found, test)
}

/// The ids a Relationship or ListRelationship points to, over all its instances.
fn link_targets(e: &Entity, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in e.attrs.get(name).into_iter().flatten() {
        let objects = match &a.value {
            AttrValue::Relationship { object, .. } => object,
            AttrValue::ListRelationship { object_list, .. } => object_list,
            _ => continue,
        };
        match objects {
            Value::String(s) => out.push(s.clone()),
            Value::Array(xs) => out.extend(xs.iter().filter_map(|x| {
                match x {
                    Value::String(s) => Some(s.clone()),
                    // Expanded objectList items may be {"@id": ...} / {"object": ...}.
                    Value::Object(m) => m
                        .get("object")
                        .or_else(|| m.get("@id"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => None,
                }
            })),
            _ => {}
        }
    }
    out
}

/// The values a path (without a linked-entity hop) designates in one Entity.
pub(crate) fn locate_values(e: &Entity, path: &Path) -> Vec<Value> {
    locate(e, path, None)
        .values
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// The values the plain path `name` (no sub-attribute, meta member nor `[key]`) designates
/// in one Entity, as `q` terms on it see them: what a value index keeps.
pub(crate) fn plain_values<'a>(e: &'a Entity, name: &str) -> Vec<Cow<'a, Value>> {
    let plain = AttrPath {
        name: String::new(),
        steps: Vec::new(),
        keys: Vec::new(),
        link: None,
    };
    let mut found = Found::default();
    for inst in e.attrs.get(name).into_iter().flatten() {
        locate_in_instance(inst, &plain, &mut found);
    }
    found.values
}

/// The values a path designates in one Entity.
#[derive(Default)]
struct Found<'a> {
    values: Vec<Cow<'a, Value>>,
    /// The target is a Relationship / ListRelationship: only equality applies.
    relationship: bool,
}

fn locate<'a>(e: &'a Entity, path: &Path, name_override: Option<&str>) -> Found<'a> {
    let one = |v: Value| Found {
        values: vec![Cow::Owned(v)],
        relationship: false,
    };
    let p = match path {
        Path::EntityId => return one(Value::String(e.id.clone())),
        Path::EntityType => return one(Value::from(e.types.clone())),
        Path::EntityCreatedAt => return one(time_value(&e.created_at)),
        Path::EntityModifiedAt => return one(time_value(&e.modified_at)),
        Path::Attr(p) => p,
    };
    let name = name_override.unwrap_or(&p.name);
    let mut found = Found::default();
    for inst in e.attrs.get(name).into_iter().flatten() {
        locate_in_instance(inst, p, &mut found);
    }
    found
}

fn locate_in_instance<'a>(inst: &'a Attribute, p: &AttrPath, found: &mut Found<'a>) {
    let mut attr = inst;
    for step in &p.steps {
        match step {
            Step::Sub(s) => match attr.sub.get(s) {
                Some(a) => attr = a,
                None => return,
            },
            Step::Meta(m) => {
                if let Some(v) = meta_value(attr, *m) {
                    found.values.push(Cow::Owned(v));
                }
                return;
            }
        }
    }
    let mut keys = p.keys.iter().map(String::as_str);
    let start: Vec<&'a Value> = match &attr.value {
        AttrValue::LanguageProperty(map) => match keys.next() {
            None | Some("*") => match map {
                Value::Object(m) => m.values().collect(),
                other => vec![other],
            },
            Some(lang) => map.get(lang).into_iter().collect(),
        },
        AttrValue::Relationship { .. } | AttrValue::ListRelationship { .. } => {
            found.relationship = true;
            vec![attr.value.payload()]
        }
        other => vec![other.payload()],
    };
    let mut current = start;
    for key in keys {
        current = current
            .into_iter()
            .flat_map(|v| match v {
                Value::Object(m) => m.get(key).into_iter().collect::<Vec<_>>(),
                Value::Array(xs) => xs.iter().filter_map(|x| x.get(key)).collect(),
                _ => vec![],
            })
            .collect();
    }
    found.values.extend(current.into_iter().map(Cow::Borrowed));
}

fn meta_value(a: &Attribute, m: Meta) -> Option<Value> {
    match m {
        Meta::ObservedAt => a.observed_at.as_ref().map(time_value),
        Meta::CreatedAt => Some(time_value(&a.created_at)),
        Meta::ModifiedAt => Some(time_value(&a.modified_at)),
        Meta::UnitCode => a.unit_code.clone().map(Value::String),
        Meta::DatasetId => a.dataset_id.clone().map(Value::String),
    }
}

fn time_value(t: &harbor_model::Timestamp) -> Value {
    Value::String(harbor_model::time::format(t))
}

fn check(found: &Found<'_>, test: &Test) -> bool {
    let (negated, pred) = match test {
        Test::Exists => return !found.values.is_empty(),
        Test::Missing => return found.values.is_empty(),
        Test::Holds { negated, pred } => (*negated, pred),
    };
    if found.values.is_empty() {
        return false;
    }
    if found.relationship && matches!(pred, Pred::Order(..) | Pred::Regex(_)) {
        return false;
    }
    let any = found
        .values
        .iter()
        .flat_map(|v| match v.as_ref() {
            Value::Array(xs) => xs.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .any(|v| holds(pred, v));
    any != negated
}

fn holds(pred: &Pred, v: &Value) -> bool {
    match pred {
        Pred::Order(op, lit) => match (op, lit.compare(v)) {
            (_, None) => false,
            (OrderOp::Gt, Some(o)) => o == Ordering::Greater,
            (OrderOp::Ge, Some(o)) => o != Ordering::Less,
            (OrderOp::Lt, Some(o)) => o == Ordering::Less,
            (OrderOp::Le, Some(o)) => o != Ordering::Greater,
        },
        Pred::Eq(lits) => lits.iter().any(|l| l.equals(v)),
        Pred::Range(lo, hi) => {
            matches!(lo.compare(v), Some(Ordering::Greater | Ordering::Equal))
                && matches!(hi.compare(v), Some(Ordering::Less | Ordering::Equal))
        }
        Pred::Regex(re) => v.as_str().is_some_and(|s| re.is_match(s)),
    }
}
