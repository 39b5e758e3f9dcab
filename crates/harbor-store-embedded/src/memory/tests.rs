//! Every index answers exactly what a scan answers: a table of queries, orderings and pages,
//! each run against the indexes and against a scan of every entity with the reference
//! evaluators (`EntityQuery::matches`, `OrderBy::sort`), over entities that were created,
//! updated (values and types) and deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use harbor_model::{time, AttrValue, Attribute, Entity, Tenant, Timestamp};
use harbor_query::{parse_order_by, parse_q, parse_type_expr, EntityQuery};
use harbor_store::{Change, Page, Paging};
use serde_json::{json, Value};

use super::query::Ordered;
use super::Memory;

/// A small deterministic generator: the same entities on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn attr(value: AttrValue, now: Timestamp) -> Attribute {
    Attribute::new(value, now)
}

/// A number, a string or anything else `n` may hold, mostly small integers.
fn n_value(r: &mut Lcg) -> Value {
    match r.below(20) {
        0 => json!([r.below(12), r.below(12)]),
        1 => json!(-0.0),
        2 => json!(r.below(12) as f64 + 0.5),
        3 => json!("5"),
        4 => json!(true),
        5 => json!({"a": 1}),
        6 => Value::Null,
        7 => json!(-(r.below(5) as i64)),
        _ => json!(r.below(12)),
    }
}

fn s_value(r: &mut Lcg) -> Value {
    let words = [
        "alpha", "Alpha", "alphabet", "beta", "b", "", "gamma", "ß", "zeta",
    ];
    match r.below(12) {
        0 => json!("x".repeat(300)),
        1 => json!(format!("2024-01-0{}T00:00:00Z", 1 + r.below(5))),
        2 => json!(format!("2024-01-0{}T10:00:00+02:00", 1 + r.below(5))),
        3 => json!(format!("2024-01-0{}", 1 + r.below(5))),
        4 => json!(["alpha", "zeta"]),
        _ => json!(words[r.below(words.len() as u64) as usize]),
    }
}

fn entity(r: &mut Lcg, i: usize, now: Timestamp) -> Entity {
    let types: Vec<String> = match r.below(5) {
        0 => vec!["B".into()],
        1 => vec!["A".into(), "B".into()],
        _ => vec!["A".into()],
    };
    let mut attrs = BTreeMap::new();
    if r.below(8) != 0 {
        let mut first = attr(AttrValue::Property(n_value(r)), now);
        if r.below(3) == 0 {
            first.observed_at = Some(now - Duration::minutes(r.below(100) as i64));
        }
        let mut instances = vec![first];
        if r.below(10) == 0 {
            let mut second = attr(AttrValue::Property(n_value(r)), now);
            second.dataset_id = Some("urn:ds:2".into());
            instances.push(second);
        }
        if r.below(15) == 0 {
            // An instance that has expired: still stored until it is reclaimed.
            instances[0].expires_at = Some(now - Duration::seconds(5));
        }
        attrs.insert("n".to_string(), instances);
    }
    if r.below(6) != 0 {
        attrs.insert("s".into(), vec![attr(AttrValue::Property(s_value(r)), now)]);
    }
    if r.below(2) == 0 {
        let b = json!(r.below(2) == 0);
        attrs.insert("b".into(), vec![attr(AttrValue::Property(b), now)]);
    }
    if r.below(3) == 0 {
        let object = json!(format!("urn:ngsi-ld:X:{}", r.below(6)));
        attrs.insert(
            "r".into(),
            vec![attr(
                AttrValue::Relationship {
                    object,
                    object_type: None,
                },
                now,
            )],
        );
    }
    if r.below(4) == 0 {
        let en = ["hello", "bye"][r.below(2) as usize];
        let map = json!({"en": en, "fr": "bonjour"});
        attrs.insert(
            "lang".into(),
            vec![attr(AttrValue::LanguageProperty(map), now)],
        );
    }
    if r.below(3) == 0 {
        let point = json!({"type": "Point", "coordinates": [r.below(10), r.below(10)]});
        attrs.insert("loc".into(), vec![attr(AttrValue::GeoProperty(point), now)]);
    }
    Entity {
        id: format!("urn:ngsi-ld:E:{:04}", (i * 7919) % 10007),
        types,
        scopes: Vec::new(),
        attrs,
        created_at: now,
        modified_at: now,
        // A few have expired and wait to be reclaimed; a few will expire later.
        expires_at: match r.below(40) {
            0 => Some(now - Duration::seconds(1)),
            1 => Some(now + Duration::hours(1)),
            _ => None,
        },
    }
}

/// Creates, then updates and deletes, and returns the state a scan should see.
fn seeded() -> (Memory, BTreeMap<String, Arc<Entity>>, Tenant, Timestamp) {
    let now = time::now();
    let tenant = Tenant::default_tenant();
    let mut r = Lcg(42);
    let mut mem = Memory::default();
    let mut state = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..400 {
        let e = entity(&mut r, i, now);
        ids.push(e.id.clone());
        state.insert(e.id.clone(), Arc::new(e.clone()));
        mem.apply(&tenant, vec![Change::Put(e)]);
    }
    // Updates: new values, new types, removed attributes, in batches.
    for round in 0..3 {
        let mut changes = Vec::new();
        for (k, id) in ids.iter().enumerate().filter(|(k, _)| k % 5 == round) {
            let mut e = entity(&mut r, k, now);
            e.id = id.clone();
            state.insert(id.clone(), Arc::new(e.clone()));
            changes.push(Change::Put(e));
        }
        mem.apply(&tenant, changes);
    }
    let mut deletes = Vec::new();
    for id in ids.iter().step_by(9) {
        state.remove(id);
        deletes.push(Change::Delete(id.clone()));
    }
    mem.apply(&tenant, deletes);
    (mem, state, tenant, now)
}

fn expected(
    state: &BTreeMap<String, Arc<Entity>>,
    q: &EntityQuery,
    paging: &Paging,
    now: Timestamp,
) -> Page {
    let mut all: Vec<Arc<Entity>> = state
        .values()
        .filter(|e| e.expires_at.is_none_or(|t| t > now))
        .filter(|e| q.matches(e))
        .cloned()
        .collect();
    if let Some(order) = &paging.order {
        order.sort(&mut all);
    }
    Page::of(all, paging)
}

fn ids(p: &Page) -> Vec<&str> {
    p.entities.iter().map(|e| e.id.as_str()).collect()
}

const QS: &[&str] = &[
    "",
    "n==5",
    "n==5,7",
    "n==1..10",
    "n==10..1",
    "n==1..b",
    "n>3",
    "n>=3",
    "n<0",
    "n<=0",
    "n==0",
    "n==-0",
    "n>0",
    "n<-0",
    "n==5.5",
    "n!=5",
    "n",
    "!n",
    "n==\"5\"",
    "n==true",
    "n>\"4\"",
    "n.observedAt>2000-01-01T00:00:00Z",
    "s==\"alpha\"",
    "s==\"\"",
    "s>\"b\"",
    "s<=\"Alpha\"",
    "s==\"alpha\",\"beta\"",
    "s~=^al",
    "s~=^Al",
    "s~=^alphab?",
    "s~=lph",
    "s~=^(a|b)",
    "s==2024-01-02T00:00:00Z",
    "s>2024-01-02T00:00:00Z",
    "s<=2024-01-03T00:00:00Z",
    "s==2024-01-01T00:00:00Z..2024-01-03T12:00:00Z",
    "s==2024-01-02",
    "s>2024-01-02",
    "s==\"xxxxxxxxxx\"",
    "s~=^xxx",
    "b==true",
    "b==false",
    "b>false",
    "r==urn:ngsi-ld:X:3",
    "r==urn:ngsi-ld:X:3,urn:ngsi-ld:X:4",
    "r>urn:ngsi-ld:X:3",
    "lang==\"bonjour\"",
    "lang[en]==\"hello\"",
    "lang~=^hel",
    "loc==5",
    "n==5;b==true",
    "n==5|s==\"alpha\"",
    "(n>3;n<8)|b==false",
    "n>3;!b",
    "n==3|!b",
    "(n==1|n==2);(s==\"alpha\"|s==\"beta\")",
    "id==urn:ngsi-ld:E:0001|n==4",
];

const TYPES: &[&str] = &["A", "B", "A,B", "A;B"];

const ORDERS: &[Option<&str>] = &[
    None,
    Some("n"),
    Some("n;desc"),
    Some("s"),
    Some("s;desc"),
    Some("b;desc"),
    Some("r"),
    Some("lang"),
    Some("loc"),
    Some("n.observedAt"),
    Some("n,s"),
];

/// `(offset, limit, count)`.
const PAGES: &[(usize, usize, bool)] = &[
    (0, usize::MAX, false),
    (0, 5, false),
    (0, 5, true),
    (7, 9, true),
    (0, 0, true),
];

fn query_of(q_text: &str, types: &str) -> EntityQuery {
    let expand = |s: &str| s.to_string();
    EntityQuery {
        types: Some(parse_type_expr(types, &expand).expect("type expression")),
        q: (!q_text.is_empty()).then(|| parse_q(q_text, &expand).expect(q_text)),
        ..EntityQuery::default()
    }
}

#[test]
fn every_index_answers_what_a_scan_answers() {
    let (mem, state, tenant, now) = seeded();
    let expand = |s: &str| s.to_string();
    let mut checked = 0;
    for q_text in QS {
        for types in TYPES {
            let query = query_of(q_text, types);
            for order in ORDERS {
                let order = order.map(|o| parse_order_by(o, &expand, None, None).expect(o));
                let every = Paging {
                    order: order.clone(),
                    ..Paging::all()
                };
                let all = expected(&state, &query, &every, now).entities;
                // Unordered queries have one plan; ordered ones walk an index or sort.
                let plans: &[Ordered] = match order {
                    None => &[Ordered::Adaptive],
                    Some(_) => &[Ordered::Adaptive, Ordered::Walk, Ordered::Sort],
                };
                for &(offset, limit, count) in PAGES {
                    let paging = Paging {
                        offset,
                        limit,
                        count,
                        order: order.clone(),
                    };
                    let want = Page::of(all.clone(), &paging);
                    for &ordered in plans {
                        let got = mem.query_page_with(&tenant, &query, &paging, now, ordered);
                        let case = format!(
                            "q={q_text:?} type={types} orderBy={order:?} offset={offset} \
                             limit={limit} count={count} {ordered:?}"
                        );
                        assert_eq!(ids(&got), ids(&want), "{case}");
                        assert_eq!(got.total, want.total, "{case}");
                        assert_eq!(got.more, want.more, "{case}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn the_seed_has_what_the_table_tests() {
    // The table is only as good as the entities: each case it names must occur.
    let (_, state, _, now) = seeded();
    let all: Vec<&Arc<Entity>> = state.values().collect();
    let has = |f: &dyn Fn(&Entity) -> bool| all.iter().filter(|e| f(e)).count();
    let payload = |e: &Entity, a: &str| -> Vec<Value> {
        e.attrs
            .get(a)
            .into_iter()
            .flatten()
            .map(|i| i.value.payload().clone())
            .collect()
    };
    assert!(has(&|e| e.types.len() == 2) > 20);
    assert!(has(&|e| e.expires_at.is_some_and(|t| t <= now)) > 3);
    assert!(has(&|e| e.attrs.get("n").is_some_and(|i| i.len() == 2)) > 5);
    assert!(has(&|e| payload(e, "n").iter().any(Value::is_array)) > 10);
    assert!(has(&|e| payload(e, "n").iter().any(Value::is_object)) > 5);
    assert!(
        has(&|e| payload(e, "s")
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.len() > 256)))
            > 3
    );
    assert!(
        has(&|e| payload(e, "s")
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains('+'))))
            > 3
    );
    assert!(has(&|e| !e.attrs.contains_key("n")) > 20);
}

#[test]
fn a_tenant_loaded_at_once_answers_as_one_built_change_by_change() {
    let (built, state, tenant, now) = seeded();
    let mut loaded = Memory::default();
    let mut load = super::TenantLoad::default();
    for e in state.values() {
        load.push(super::Prepared::of((**e).clone()), loaded.names_mut());
    }
    loaded.install(&tenant, load);
    let expand = |s: &str| s.to_string();
    for q_text in QS {
        for types in TYPES {
            let query = query_of(q_text, types);
            for order in [None, Some("n"), Some("s;desc")] {
                let paging = Paging {
                    offset: 2,
                    limit: 10,
                    count: true,
                    order: order.map(|o| parse_order_by(o, &expand, None, None).expect(o)),
                };
                let case = format!("q={q_text:?} type={types} orderBy={order:?}");
                for ordered in [Ordered::Walk, Ordered::Sort] {
                    let a = built.query_page_with(&tenant, &query, &paging, now, ordered);
                    let b = loaded.query_page_with(&tenant, &query, &paging, now, ordered);
                    assert_eq!(ids(&a), ids(&b), "{case}");
                    assert_eq!(a.total, b.total, "{case}");
                    assert_eq!(a.more, b.more, "{case}");
                }
            }
        }
    }
    assert_eq!(built.count(&tenant), loaded.count(&tenant));
    let later = now + Duration::hours(2);
    assert_eq!(
        built.expiring(&tenant, later),
        loaded.expiring(&tenant, later)
    );
}
