//! Access policies checked against a model of them written here, independently of the broker:
//! thousands of random reads, history reads and writes by subjects with roles, with policies,
//! or both, over several tenants. Every answer must hold exactly what the model says the
//! subject may see, and every write must be accepted exactly when the model allows it (and
//! leave the data unchanged when it does not). The model's history rule: an entity's history
//! is seen when the entity as it is now, or as it last was once deleted, is selected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use harbor_auth::PolicyBook;
use harbor_http::router;
use serde_json::{json, Value};

use super::{call, state_for, with_api_keys, JSON};

const TENANTS: usize = 5;
const TYPES: [&str; 2] = ["OffStreetParking", "Sensor"];
const ATTRS: [&str; 4] = ["free", "name", "secret", "level"];
const SCOPES: [&str; 3] = ["/north/a", "/north/b", "/south/c"];

fn tenant(t: usize) -> String {
    format!("t{t}")
}

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    Read,
    Write,
    History,
}

/// One policy, as the model understands it.
struct Rule {
    tenant: usize,
    acts: &'static [Act],
    ty: Option<&'static str>,
    id_prefix: Option<&'static str>,
    scope_prefix: Option<&'static str>,
    attrs: Option<&'static [&'static str]>,
}

struct Subject {
    key: String,
    /// Tenants in which a role grants reading, and writing.
    reads: Vec<usize>,
    writes: Vec<usize>,
    rules: Vec<Rule>,
}

/// An entity as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
struct E {
    id: String,
    ty: String,
    scope: String,
    attrs: BTreeMap<String, Value>,
}

impl Rule {
    fn selects(&self, t: usize, e: &E) -> bool {
        self.tenant == t
            && self.ty.is_none_or(|ty| e.ty == ty)
            && self.id_prefix.is_none_or(|p| e.id.starts_with(p))
            && self.scope_prefix.is_none_or(|p| e.scope.starts_with(p))
    }
}

impl Subject {
    fn full(&self, t: usize, act: Act) -> bool {
        match act {
            // Readers and writers read the history too.
            Act::Read | Act::History => self.reads.contains(&t) || self.writes.contains(&t),
            Act::Write => self.writes.contains(&t),
        }
    }

    /// The attributes of `e` the subject may see or write; `None`: not the entity at all.
    fn opened(&self, t: usize, act: Act, e: &E) -> Option<BTreeSet<String>> {
        if self.full(t, act) {
            return Some(ATTRS.iter().map(|a| a.to_string()).collect());
        }
        let mut any = false;
        let mut out = BTreeSet::new();
        for r in self
            .rules
            .iter()
            .filter(|r| r.acts.contains(&act) && r.selects(t, e))
        {
            any = true;
            match r.attrs {
                None => out.extend(ATTRS.iter().map(|a| a.to_string())),
                Some(a) => out.extend(a.iter().map(|a| a.to_string())),
            }
        }
        any.then_some(out)
    }

    fn any_access(&self, t: usize, act: Act) -> bool {
        self.full(t, act)
            || self
                .rules
                .iter()
                .any(|r| r.tenant == t && r.acts.contains(&act))
    }

    /// What the subject sees of `e`: its opened attributes that it has.
    fn view(&self, t: usize, e: &E) -> Option<BTreeSet<String>> {
        let open = self.opened(t, Act::Read, e)?;
        Some(
            e.attrs
                .keys()
                .filter(|a| open.contains(*a))
                .cloned()
                .collect(),
        )
    }

    /// Whether changing `touched` of an entity that is `before` (and stays of its type, id and
    /// scope) is allowed.
    fn may_write(&self, t: usize, e: &E, touched: &[&str]) -> bool {
        self.opened(t, Act::Write, e)
            .is_some_and(|open| touched.iter().all(|a| open.contains(*a)))
    }
}

fn parse_entity(v: &Value) -> E {
    let o = v.as_object().expect("an entity object");
    let mut attrs = BTreeMap::new();
    for (k, v) in o {
        if !matches!(k.as_str(), "id" | "type" | "scope" | "@context") {
            attrs.insert(k.clone(), v["value"].clone());
        }
    }
    E {
        id: o["id"].as_str().unwrap().into(),
        ty: o["type"].as_str().unwrap().into(),
        scope: o.get("scope").and_then(Value::as_str).unwrap_or("").into(),
        attrs,
    }
}

fn attr_names(v: &Value) -> BTreeSet<String> {
    parse_entity(v).attrs.keys().cloned().collect()
}

/// The attribute names of each temporal entity of an answer (one, or a list).
fn histories(v: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let one = |e: &Value| (e["id"].as_str().unwrap().to_string(), attr_names(e));
    match v {
        Value::Array(list) => list.iter().map(one).collect(),
        e => [one(e)].into(),
    }
}

struct World {
    app: axum::Router,
    operator: String,
}

impl World {
    async fn get(&self, key: &str, t: usize, path: &str) -> (u16, Value, axum::http::HeaderMap) {
        let (s, v, h) = call(
            &self.app,
            "GET",
            path,
            None,
            vec![],
            &[("X-API-Key", key), ("NGSILD-Tenant", &tenant(t))],
        )
        .await;
        (s.as_u16(), v, h)
    }

    async fn send(
        &self,
        key: &str,
        t: usize,
        method: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let (s, v, _) = call(
            &self.app,
            method,
            path,
            JSON,
            body.to_string().into_bytes(),
            &[("X-API-Key", key), ("NGSILD-Tenant", &tenant(t))],
        )
        .await;
        (s.as_u16(), v)
    }

    /// The attribute names with a history, by entity, in the operator's answer to a temporal
    /// retrieve or query (`None`: no such temporal entity).
    async fn history(&self, t: usize, path: &str) -> Option<BTreeMap<String, BTreeSet<String>>> {
        let (s, v, _) = self.get(&self.operator, t, path).await;
        if s == 404 {
            return None;
        }
        assert_eq!(s, 200, "{path}: {v}");
        Some(histories(&v))
    }

    /// Every entity of tenant `t`, as the operator sees it.
    async fn truth(&self, t: usize) -> BTreeMap<String, E> {
        let mut out = BTreeMap::new();
        for ty in TYPES {
            let (s, v, _) = self
                .get(
                    &self.operator,
                    t,
                    &format!("/ngsi-ld/v1/entities?type={ty}&limit=100"),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            for e in v.as_array().unwrap() {
                let e = parse_entity(e);
                out.insert(e.id.clone(), e);
            }
        }
        out
    }
}

/// A new API key with `grants`: its text and its id (for `subject:key:ID`).
pub(super) async fn key(app: &axum::Router, operator: &str, grants: &[&str]) -> (String, String) {
    let (status, body, _) = call(
        app,
        "POST",
        "/admin/v1/keys",
        JSON,
        json!({"name": "subject", "grants": grants})
            .to_string()
            .into_bytes(),
        &[("X-API-Key", operator)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["key"].as_str().unwrap().to_string(),
        body["id"].as_str().unwrap().to_string(),
    )
}

fn entity_json(id: &str, ty: &str, scope: &str, values: &[(&str, i64)]) -> Value {
    let mut v = json!({"id": id, "type": ty, "scope": scope});
    for (a, n) in values {
        v[*a] = json!({"type": "Property", "value": n});
    }
    v
}

/// The policies of the model, as the admin API takes them.
fn policy_json(id: &str, subject: &str, r: &Rule) -> Value {
    let mut sel = json!({});
    if let Some(ty) = r.ty {
        sel["type"] = json!([ty]);
    }
    if let Some(p) = r.id_prefix {
        sel["idPattern"] = json!(format!("{}.*", regex_escape(p)));
    }
    if let Some(p) = r.scope_prefix {
        sel["scopeQ"] = json!(format!("{}/#", p.trim_end_matches('/')));
    }
    let mut v = json!({
        "id": id,
        "tenant": tenant(r.tenant),
        "subjects": [subject],
        "actions": r.acts.iter().map(|a| match a {
            Act::Read => "read",
            Act::Write => "write",
            Act::History => "history",
        }).collect::<Vec<_>>(),
    });
    if sel.as_object().is_some_and(|o| !o.is_empty()) {
        v["entities"] = json!([sel]);
    }
    if let Some(a) = r.attrs {
        v["attrs"] = json!(a);
    }
    v
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[tokio::test]
async fn random_operations_never_show_or_accept_what_the_policies_forbid() {
    let (app, operator) = super::policy_history::broker_with("policies-model", 1000, |s| s).await;

    // The subjects: a role alone, policies alone, a partner's role opened by policy, both.
    let (k0, _) = key(&app, &operator, &["writer@t0"]).await;
    let (k1, id1) = key(&app, &operator, &["reader@t9"]).await;
    let (k2, _) = key(&app, &operator, &["reader@t1"]).await;
    let (k3, id3) = key(&app, &operator, &["reader@t9"]).await;
    let (k4, id4) = key(&app, &operator, &["reader@t4"]).await;
    let subjects = vec![
        (
            Subject {
                key: k0,
                reads: vec![],
                writes: vec![0],
                rules: vec![],
            },
            String::new(),
        ),
        (
            Subject {
                key: k1,
                reads: vec![],
                writes: vec![],
                rules: vec![
                    Rule {
                        tenant: 0,
                        acts: &[Act::Read],
                        ty: Some("OffStreetParking"),
                        id_prefix: None,
                        scope_prefix: None,
                        attrs: Some(&["name", "free"]),
                    },
                    Rule {
                        tenant: 0,
                        acts: &[Act::Write],
                        ty: Some("OffStreetParking"),
                        id_prefix: Some("urn:p:a"),
                        scope_prefix: None,
                        attrs: Some(&["free"]),
                    },
                    Rule {
                        tenant: 0,
                        acts: &[Act::History],
                        ty: Some("OffStreetParking"),
                        id_prefix: None,
                        scope_prefix: None,
                        attrs: Some(&["free", "secret"]),
                    },
                ],
            },
            format!("subject:key:{id1}"),
        ),
        (
            Subject {
                key: k2,
                reads: vec![1],
                writes: vec![],
                rules: vec![Rule {
                    tenant: 2,
                    acts: &[Act::Read],
                    ty: Some("Sensor"),
                    id_prefix: None,
                    scope_prefix: None,
                    attrs: None,
                }],
            },
            "role:reader@t1".to_string(),
        ),
        (
            Subject {
                key: k3,
                reads: vec![],
                writes: vec![],
                rules: vec![
                    Rule {
                        tenant: 3,
                        acts: &[Act::Read, Act::Write, Act::History],
                        ty: None,
                        id_prefix: None,
                        scope_prefix: Some("/north/"),
                        attrs: None,
                    },
                    Rule {
                        tenant: 4,
                        acts: &[Act::Read],
                        ty: Some("OffStreetParking"),
                        id_prefix: None,
                        scope_prefix: None,
                        attrs: Some(&["free"]),
                    },
                ],
            },
            format!("subject:key:{id3}"),
        ),
        (
            Subject {
                key: k4,
                reads: vec![4],
                writes: vec![],
                rules: vec![Rule {
                    tenant: 4,
                    acts: &[Act::Write],
                    ty: Some("Sensor"),
                    id_prefix: None,
                    scope_prefix: None,
                    attrs: Some(&["level"]),
                }],
            },
            format!("subject:key:{id4}"),
        ),
    ];
    let mut n = 0;
    for (s, subject) in &subjects {
        for r in &s.rules {
            n += 1;
            let (status, body, _) = call(
                &app,
                "POST",
                "/admin/v1/policies",
                JSON,
                policy_json(&format!("p{n}"), subject, r)
                    .to_string()
                    .into_bytes(),
                &[("X-API-Key", &operator)],
            )
            .await;
            assert_eq!(status, 201, "policy p{n}: {body}");
        }
    }
    let world = World { app, operator };
    let subjects: Vec<Subject> = subjects.into_iter().map(|(s, _)| s).collect();

    // Every tenant starts with entities of both types in all scopes.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ids: Vec<String> = (0..12)
        .map(|i| format!("urn:p:{}{i}", if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    for t in 0..TENANTS {
        for (i, id) in ids.iter().enumerate().take(8) {
            let e = entity_json(
                id,
                TYPES[i % 2],
                SCOPES[i % 3],
                &[("free", i as i64), ("name", 1), ("secret", 7), ("level", 3)],
            );
            let (s, v) = world
                .send(
                    &world.operator.clone(),
                    t,
                    "POST",
                    "/ngsi-ld/v1/entities",
                    e,
                )
                .await;
            assert_eq!(s, 201, "seed: {v}");
        }
    }

    // Each entity as it last was, for the histories of deleted ones.
    let mut last: BTreeMap<(usize, String), E> = BTreeMap::new();
    let (mut reads, mut writes, mut refused, mut accepted) = (0, 0, 0, 0);
    let (mut history_reads, mut deleted_histories_seen) = (0, 0);
    for step in 0..10_000 {
        let si = rng.below(subjects.len());
        let s = &subjects[si];
        let t = rng.below(TENANTS);
        let before = world.truth(t).await;
        for e in before.values() {
            last.insert((t, e.id.clone()), e.clone());
        }
        let id = rng.pick(&ids).clone();
        let ctx = format!("step {step}, subject {si}, tenant t{t}, entity {id}");
        // The entity a history is seen by: as it is, else as it last was.
        let now_or_last = |id: &str| before.get(id).or_else(|| last.get(&(t, id.to_string())));
        match rng.below(10) {
            // Retrieve one entity.
            0 | 1 => {
                reads += 1;
                let (status, v, _) = world
                    .get(&s.key, t, &format!("/ngsi-ld/v1/entities/{id}"))
                    .await;
                let want = before.get(&id).and_then(|e| s.view(t, e));
                match want {
                    _ if !s.any_access(t, Act::Read) => assert_eq!(status, 403, "{ctx}: {v}"),
                    None => assert_eq!(status, 404, "{ctx}: {v}"),
                    Some(names) => {
                        assert_eq!(status, 200, "{ctx}: {v}");
                        assert_eq!(attr_names(&v), names, "{ctx}: {v}");
                    }
                }
            }
            // Query by type, maybe with a q on an attribute, with a count.
            2 | 3 => {
                reads += 1;
                let ty = *rng.pick(&TYPES);
                let filter = *rng.pick(&["", "secret==7", "free>2", "level==3"]);
                let path = if filter.is_empty() {
                    format!("/ngsi-ld/v1/entities?type={ty}&count=true&limit=100")
                } else {
                    format!(
                        "/ngsi-ld/v1/entities?type={ty}&q={}&count=true&limit=100",
                        filter.replace('>', "%3E")
                    )
                };
                let (status, v, h) = world.get(&s.key, t, &path).await;
                if !s.any_access(t, Act::Read) {
                    assert_eq!(status, 403, "{ctx}: {path}: {v}");
                    continue;
                }
                assert_eq!(status, 200, "{ctx}: {path}: {v}");
                let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for e in before.values().filter(|e| e.ty == ty) {
                    let Some(names) = s.view(t, e) else { continue };
                    let seen = |a: &str| names.contains(a).then(|| e.attrs.get(a)).flatten();
                    let passes = match filter {
                        "" => true,
                        "secret==7" => seen("secret") == Some(&json!(7)),
                        "free>2" => seen("free").and_then(Value::as_i64).is_some_and(|f| f > 2),
                        _ => seen("level") == Some(&json!(3)),
                    };
                    if passes {
                        want.insert(e.id.clone(), names);
                    }
                }
                let got: BTreeMap<String, BTreeSet<String>> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["id"].as_str().unwrap().to_string(), attr_names(e)))
                    .collect();
                assert_eq!(got, want, "{ctx}: {path}");
                let count = h.get("NGSILD-Results-Count").and_then(|c| c.to_str().ok());
                assert_eq!(
                    count,
                    Some(want.len().to_string().as_str()),
                    "{ctx}: {path}"
                );
            }
            // Discovery.
            4 => {
                reads += 1;
                let (status, v, _) = world.get(&s.key, t, "/ngsi-ld/v1/attributes").await;
                if !s.any_access(t, Act::Read) {
                    assert_eq!(status, 403, "{ctx}: {v}");
                    continue;
                }
                assert_eq!(status, 200, "{ctx}: {v}");
                let want: BTreeSet<String> = before
                    .values()
                    .filter_map(|e| s.view(t, e))
                    .flatten()
                    .collect();
                let got: BTreeSet<String> = v["attributeList"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(got, want, "{ctx}: /attributes");
                let (_, v, _) = world.get(&s.key, t, "/ngsi-ld/v1/types").await;
                let want: BTreeSet<String> = before
                    .values()
                    .filter(|e| s.view(t, e).is_some())
                    .map(|e| e.ty.clone())
                    .collect();
                let got: BTreeSet<String> = v["typeList"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(got, want, "{ctx}: /types");
            }
            // Retrieve one entity's history.
            8 => {
                history_reads += 1;
                let path = format!("/ngsi-ld/v1/temporal/entities/{id}");
                let truth = world.history(t, &path).await;
                let (status, v, _) = world.get(&s.key, t, &path).await;
                let want = truth.and_then(|h| {
                    let open = s.opened(t, Act::History, now_or_last(&id)?)?;
                    Some(h[&id].intersection(&open).cloned().collect::<BTreeSet<_>>())
                });
                match want {
                    _ if !s.any_access(t, Act::History) => {
                        assert_eq!(status, 403, "{ctx}: history: {v}")
                    }
                    None => assert_eq!(status, 404, "{ctx}: history: {v}"),
                    Some(names) => {
                        assert_eq!(status, 200, "{ctx}: history: {v}");
                        assert_eq!(attr_names(&v), names, "{ctx}: history: {v}");
                        if !before.contains_key(&id) && !s.full(t, Act::History) {
                            deleted_histories_seen += 1;
                        }
                    }
                }
            }
            // Query histories by type, maybe with a q on the latest values, with a count.
            9 => {
                history_reads += 1;
                let ty = *rng.pick(&TYPES);
                let filter = *rng.pick(&["", "secret==7", "free>2", "name==1"]);
                let mut path =
                    format!("/ngsi-ld/v1/temporal/entities?type={ty}&count=true&limit=100");
                if !filter.is_empty() {
                    path = format!("{path}&q={}", filter.replace('>', "%3E"));
                }
                let truth = world
                    .history(
                        t,
                        &format!("/ngsi-ld/v1/temporal/entities?type={ty}&limit=100"),
                    )
                    .await
                    .unwrap_or_default();
                let (status, v, h) = world.get(&s.key, t, &path).await;
                if !s.any_access(t, Act::History) {
                    assert_eq!(status, 403, "{ctx}: {path}: {v}");
                    continue;
                }
                assert_eq!(status, 200, "{ctx}: {path}: {v}");
                let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (hid, names) in &truth {
                    let e = now_or_last(hid).expect("a history belongs to an entity seen");
                    let Some(open) = s.opened(t, Act::History, e) else {
                        continue;
                    };
                    // q runs on the latest values: those of the current entity, none of a
                    // deleted one; and only on what is opened.
                    let latest = |a: &str| {
                        before
                            .get(hid)
                            .filter(|_| open.contains(a))
                            .and_then(|e| e.attrs.get(a))
                    };
                    let passes = match filter {
                        "" => true,
                        "secret==7" => latest("secret") == Some(&json!(7)),
                        "free>2" => latest("free")
                            .and_then(Value::as_i64)
                            .is_some_and(|f| f > 2),
                        _ => latest("name") == Some(&json!(1)),
                    };
                    if passes {
                        want.insert(hid.clone(), names.intersection(&open).cloned().collect());
                    }
                }
                assert_eq!(histories(&v), want, "{ctx}: {path}");
                let count = h.get("NGSILD-Results-Count").and_then(|c| c.to_str().ok());
                assert_eq!(
                    count,
                    Some(want.len().to_string().as_str()),
                    "{ctx}: {path}"
                );
            }
            // Update or add one attribute.
            5 | 6 => {
                writes += 1;
                let attr = *rng.pick(&ATTRS);
                let value = rng.below(1000) as i64;
                let (status, v) = world
                    .send(
                        &s.key,
                        t,
                        "POST",
                        &format!("/ngsi-ld/v1/entities/{id}/attrs"),
                        json!({attr: {"type": "Property", "value": value}}),
                    )
                    .await;
                let after = world.truth(t).await;
                let allowed = before.get(&id).is_some_and(|e| s.may_write(t, e, &[attr]));
                if !s.any_access(t, Act::Write) {
                    assert_eq!(status, 403, "{ctx}: append {attr}: {v}");
                } else if allowed {
                    assert!(
                        status == 204 || status == 207,
                        "{ctx}: append {attr}: {status} {v}"
                    );
                    assert_eq!(after[&id].attrs[attr], json!(value), "{ctx}");
                } else {
                    assert!(
                        status == 403 || status == 404,
                        "{ctx}: append {attr}: {status} {v}"
                    );
                }
                if !allowed {
                    refused += 1;
                    assert_eq!(after, before, "{ctx}: a refused write changed nothing");
                } else {
                    accepted += 1;
                }
            }
            // Delete, or create, the entity.
            _ => {
                writes += 1;
                if let Some(e) = before.get(&id).cloned() {
                    let (status, v) = world
                        .send(
                            &s.key,
                            t,
                            "DELETE",
                            &format!("/ngsi-ld/v1/entities/{id}"),
                            Value::Null,
                        )
                        .await;
                    let names: Vec<&str> = e.attrs.keys().map(String::as_str).collect();
                    let allowed = s.may_write(t, &e, &names);
                    let after = world.truth(t).await;
                    if allowed {
                        accepted += 1;
                        assert_eq!(status, 204, "{ctx}: delete: {v}");
                        assert!(!after.contains_key(&id), "{ctx}");
                    } else {
                        refused += 1;
                        assert!(matches!(status, 403 | 404), "{ctx}: delete: {status} {v}");
                        assert_eq!(after, before, "{ctx}: a refused delete changed nothing");
                    }
                } else {
                    let i = rng.below(6);
                    let ty = TYPES[i % 2];
                    let scope = SCOPES[i % 3];
                    let values: Vec<(&str, i64)> = ATTRS
                        .iter()
                        .filter(|_| rng.below(2) == 0)
                        .map(|a| (*a, 5))
                        .collect();
                    let e = entity_json(&id, ty, scope, &values);
                    let (status, v) = world
                        .send(&s.key, t, "POST", "/ngsi-ld/v1/entities", e.clone())
                        .await;
                    let probe = parse_entity(&e);
                    let names: Vec<&str> = probe.attrs.keys().map(String::as_str).collect();
                    let allowed = s.may_write(t, &probe, &names);
                    let after = world.truth(t).await;
                    if allowed {
                        accepted += 1;
                        assert_eq!(status, 201, "{ctx}: create: {v}");
                        assert_eq!(after.get(&id), Some(&probe), "{ctx}");
                    } else {
                        refused += 1;
                        assert!(matches!(status, 403 | 404), "{ctx}: create: {status} {v}");
                        assert_eq!(after, before, "{ctx}: a refused create changed nothing");
                    }
                }
            }
        }
    }
    eprintln!(
        "{reads} reads, {history_reads} history reads, {writes} writes: {accepted} accepted, \
         {refused} refused as the model says"
    );
    assert!(
        history_reads > 1000 && deleted_histories_seen > 10,
        "histories are read, also of deleted entities through a policy"
    );
    assert!(
        accepted > 100 && refused > 100,
        "both kinds of write are exercised"
    );
}

#[tokio::test]
async fn policies_are_validated_versioned_durable_and_confined_to_their_tenant() {
    let (mut state, store) = state_for("policies-admin", 1000);
    let [operator] = with_api_keys(
        &mut state,
        store.clone(),
        [("bootstrap", &["operator"][..])],
    )
    .await;
    state.policies = Some(Arc::new(PolicyBook::load(store.clone()).await.unwrap()));
    let app = router(Arc::new(state));
    let (admin_sg, _) = key(&app, &operator, &["tenant-admin@sg"]).await;
    let post = |key: String, tenant: &'static str, body: Value| {
        let app = app.clone();
        async move {
            let (s, v, _) = call(
                &app,
                "POST",
                "/admin/v1/policies",
                JSON,
                body.to_string().into_bytes(),
                &[("X-API-Key", &key), ("NGSILD-Tenant", tenant)],
            )
            .await;
            (s.as_u16(), v)
        }
    };
    let share = json!({
        "id": "sg-parking-to-kl", "tenant": "sg", "description": "car parks for Kuala Lumpur",
        "subjects": ["role:reader@kl"], "actions": ["read"],
        "entities": [{"type": ["OffStreetParking"], "scopeQ": "/Singapore/#"}],
        "attrs": ["availableSpotNumber", "location"]
    });
    // A bad member is named.
    let mut bad = share.clone();
    bad["actions"] = json!(["peek"]);
    let (s, v) = post(admin_sg.clone(), "sg", bad).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("actions[0]"), "{v}");
    // A tenant admin manages its own tenant only.
    let mut elsewhere = share.clone();
    elsewhere["tenant"] = json!("kl");
    let (s, v) = post(admin_sg.clone(), "sg", elsewhere).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = post(admin_sg.clone(), "sg", share.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["attrs"][0], "https://uri.etsi.org/ngsi-ld/default-context/availableSpotNumber",
        "names are stored expanded"
    );
    let (s, _) = post(admin_sg.clone(), "sg", share.clone()).await;
    assert_eq!(s, 409, "the id is taken");
    // Versions: a replacement naming a stale version conflicts.
    let put = |body: Value| {
        let (app, operator) = (app.clone(), operator.clone());
        async move {
            let (s, v, _) = call(
                &app,
                "PUT",
                "/admin/v1/policies/sg-parking-to-kl",
                JSON,
                body.to_string().into_bytes(),
                &[("X-API-Key", &operator)],
            )
            .await;
            (s.as_u16(), v)
        }
    };
    let mut v1 = share.clone();
    v1["version"] = json!(1);
    let (s, v) = put(v1.clone()).await;
    assert_eq!((s, v["version"].clone()), (200, json!(2)), "{v}");
    let (s, v) = put(v1).await;
    assert_eq!(s, 409, "version 1 is gone: {v}");
    // Durable: a new book over the same store has version 2.
    let reloaded = PolicyBook::load(store).await.unwrap();
    assert_eq!(reloaded.get("sg-parking-to-kl").unwrap().doc.version, 2);
    let (s, v, _) = call(
        &app,
        "GET",
        "/admin/v1/policies",
        None,
        vec![],
        &[("X-API-Key", &admin_sg), ("NGSILD-Tenant", "kl")],
    )
    .await;
    assert_eq!(s, 403, "a tenant admin of sg cannot look into kl: {v}");
    let (s, v, _) = call(
        &app,
        "DELETE",
        "/admin/v1/policies/sg-parking-to-kl",
        None,
        vec![],
        &[("X-API-Key", &admin_sg), ("NGSILD-Tenant", "sg")],
    )
    .await;
    assert_eq!(s, 204, "{v}");
}

#[tokio::test]
async fn a_partner_policy_opens_to_every_key_of_that_partner_what_it_shares() {
    let (app, operator) = super::policy_history::broker_with("policies-partner", 1000, |s| s).await;
    let admin = |method: &'static str, path: &'static str, body: Value| {
        let (app, operator) = (app.clone(), operator.clone());
        async move {
            let (s, v, _) = call(
                &app,
                method,
                path,
                JSON,
                body.to_string().into_bytes(),
                &[("X-API-Key", &operator), ("NGSILD-Tenant", "sg")],
            )
            .await;
            (s.as_u16(), v)
        }
    };
    // Two keys of the partner, made without any role, and one of another partner.
    let mut partner_keys = Vec::new();
    for (name, partner) in [
        ("kl feed", "kl-city"),
        ("kl app", "kl-city"),
        ("pen", "penang"),
    ] {
        let (s, v) = admin(
            "POST",
            "/admin/v1/keys",
            json!({"name": name, "partner": partner}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["partner"], partner, "{v}");
        assert_eq!(v["grants"], json!([]), "{v}");
        partner_keys.push(v["key"].as_str().unwrap().to_string());
    }
    let (s, v) = admin("POST", "/admin/v1/keys", json!({"name": "x", "partner": 5})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().starts_with("partner:"), "{v}");
    let (s, v) = admin("POST", "/admin/v1/keys", json!({"name": "x"})).await;
    assert_eq!(s, 400, "no grants and no partner: {v}");
    for e in [
        entity_json(
            "urn:p:1",
            "OffStreetParking",
            "/sg",
            &[("free", 4), ("secret", 1)],
        ),
        entity_json(
            "urn:p:2",
            "OffStreetParking",
            "/sg",
            &[("free", 9), ("secret", 2)],
        ),
        entity_json("urn:c:1", "Camera", "/sg", &[("free", 0)]),
    ] {
        let (s, v) = admin("POST", "/ngsi-ld/v1/entities", e).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = admin(
        "POST",
        "/admin/v1/policies",
        json!({
            "id": "sg-parking-to-kl", "tenant": "sg",
            "subjects": ["partner:kl-city"], "actions": ["read"],
            "entities": [{"type": ["OffStreetParking"]}],
            "attrs": ["free"]
        }),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let get = |key: String, path: &'static str| {
        let app = app.clone();
        async move {
            let (s, v, _) = call(
                &app,
                "GET",
                path,
                None,
                vec![],
                &[("X-API-Key", &key), ("NGSILD-Tenant", "sg")],
            )
            .await;
            (s.as_u16(), v)
        }
    };
    for key in &partner_keys[..2] {
        let (s, v) = get(key.clone(), "/ngsi-ld/v1/entities?type=OffStreetParking").await;
        assert_eq!(s, 200, "{v}");
        let shown: Vec<(String, BTreeSet<String>)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_str().unwrap().to_string(), attr_names(e)))
            .collect();
        let free = BTreeSet::from(["free".to_string()]);
        assert_eq!(
            shown,
            vec![("urn:p:1".into(), free.clone()), ("urn:p:2".into(), free)],
            "{v}"
        );
        let (s, _) = get(key.clone(), "/ngsi-ld/v1/entities/urn:c:1").await;
        assert_eq!(s, 404, "a camera is not shared");
    }
    let (s, v) = get(
        partner_keys[2].clone(),
        "/ngsi-ld/v1/entities?type=OffStreetParking",
    )
    .await;
    assert_eq!(s, 403, "another partner: {v}");
}

#[tokio::test]
async fn joins_and_linked_q_see_linked_entities_as_the_policy_opens_them() {
    let (app, operator) = super::policy_history::broker_with("policies-join", 1000, |s| s).await;
    let send = |key: String, method: &'static str, path: String, body: Option<Value>| {
        let app = app.clone();
        async move {
            let (s, v, _) = call(
                &app,
                method,
                &path,
                body.as_ref().and(JSON),
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
                &[("X-API-Key", &key), ("NGSILD-Tenant", "sg")],
            )
            .await;
            (s.as_u16(), v)
        }
    };
    let rel = |object: &str| json!({"type": "Relationship", "object": object});
    let prop = |v: Value| json!({"type": "Property", "value": v});
    // Two car parks run by two operators; the partner may read car parks (free spots and who
    // runs them) and one operator's name, not the other operator, and never `secret`.
    for e in [
        json!({"id": "urn:p:1", "type": "OffStreetParking", "free": prop(json!(4)),
               "runBy": rel("urn:o:open")}),
        json!({"id": "urn:p:2", "type": "OffStreetParking", "free": prop(json!(9)),
               "runBy": rel("urn:o:closed")}),
        json!({"id": "urn:o:open", "type": "Operator", "name": prop(json!("URA")),
               "secret": prop(json!("s1"))}),
        json!({"id": "urn:o:closed", "type": "Operator", "name": prop(json!("Hidden Co")),
               "secret": prop(json!("s2"))}),
    ] {
        let (s, v) = send(
            operator.clone(),
            "POST",
            "/ngsi-ld/v1/entities".into(),
            Some(e),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    for (id, entities, attrs) in [
        (
            "parks",
            json!([{"type": ["OffStreetParking"]}]),
            json!(["free", "runBy"]),
        ),
        (
            "open-operator",
            json!([{"idPattern": "urn:o:open"}]),
            json!(["name"]),
        ),
    ] {
        let (s, v) = send(
            operator.clone(),
            "POST",
            "/admin/v1/policies".into(),
            Some(
                json!({"id": id, "tenant": "sg", "subjects": ["partner:kl-city"],
                        "actions": ["read"], "entities": entities, "attrs": attrs}),
            ),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = send(
        operator.clone(),
        "POST",
        "/admin/v1/keys".into(),
        Some(json!({"name": "kl", "partner": "kl-city"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let partner = v["key"].as_str().unwrap().to_string();

    // Join: the open operator is joined with its name only; the closed one is not joined.
    let (s, v) = send(
        partner.clone(),
        "GET",
        "/ngsi-ld/v1/entities?type=OffStreetParking&join=inline&options=keyValues".into(),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!([
            {"id": "urn:p:1", "type": "OffStreetParking", "free": 4,
             "runBy": {"id": "urn:o:open", "type": "Operator", "name": "URA"}},
            {"id": "urn:p:2", "type": "OffStreetParking", "free": 9,
             "runBy": "urn:o:closed"},
        ]),
        "joined as the partner sees them"
    );
    let (s, v) = send(
        operator.clone(),
        "GET",
        "/ngsi-ld/v1/entities/urn:p:2?join=inline&options=keyValues".into(),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["runBy"]["name"], "Hidden Co",
        "the operator sees the join: {v}"
    );
    let (s, v) = send(
        partner.clone(),
        "GET",
        "/ngsi-ld/v1/entities/urn:p:2?join=flat&options=keyValues".into(),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"id": "urn:p:2", "type": "OffStreetParking", "free": 9, "runBy": "urn:o:closed"}),
        "flat: the hidden operator is not in the array"
    );

    // Linked q: on what the partner sees of the target, the operator's answer otherwise.
    for (q, partner_sees, operator_sees) in [
        (
            "runBy%7Bname%7D==%22URA%22",
            vec!["urn:p:1"],
            vec!["urn:p:1"],
        ),
        (
            "runBy%7Bname%7D==%22Hidden%20Co%22",
            vec![],
            vec!["urn:p:2"],
        ),
        ("runBy%7Bsecret%7D==%22s1%22", vec![], vec!["urn:p:1"]),
    ] {
        for (key, want) in [(&partner, partner_sees), (&operator, operator_sees)] {
            let (s, v) = send(
                key.clone(),
                "GET",
                format!("/ngsi-ld/v1/entities?type=OffStreetParking&q={q}&join=flat&joinLevel=1&pick=id"),
                None,
            )
            .await;
            assert_eq!(s, 200, "{q}: {v}");
            let ids: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap())
                .filter(|id| id.starts_with("urn:p:"))
                .collect();
            assert_eq!(ids, want, "{q}");
        }
    }
}
