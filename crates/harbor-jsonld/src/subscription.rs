//! Subscriptions (5.2.12) from and to JSON: every member checked at the edge with an error
//! naming it, names expanded with the request's `@context` on input and compacted with the
//! reader's on output. Expressions are checked with `harbor-query`'s parsers and kept as text.

use harbor_model::subscription::{
    DeliveryStatus, Endpoint, EntitySelector, GeoQ, KeyValue, NotificationFormat,
    NotificationParams, DEFAULT_TRIGGERS, TRIGGERS,
};
use harbor_model::{time, NgsiError, NgsiResult, Subscription, Timestamp};
use harbor_query::{
    parse_coordinates_text, parse_geo_query, parse_projection, parse_q, parse_scope_q,
    parse_type_expr, ProjectionKind,
};
use serde_json::{json, Map, Value};

use crate::expand::{expand_name, is_uri};
use crate::Context;

/// Media types a notification endpoint may ask for (5.2.15).
const ACCEPTS: &[&str] = &[
    "application/json",
    "application/ld+json",
    "application/geo+json",
];

/// URI schemes notifications can be delivered to.
const SCHEMES: &[&str] = &["http", "https", "mqtt", "mqtts"];

pub(crate) fn bad(detail: impl Into<String>) -> NgsiError {
    NgsiError::bad_request(detail)
}

/// Reads a subscription document (the body of 5.8.1, or an existing subscription merged with
/// the fragment of 5.8.2). `id` is generated when absent; status members are ignored, as the
/// broker generates them. `context` is the request's `@context` as given.
pub fn parse_subscription(
    ctx: &Context,
    v: &Value,
    context: Value,
    now: Timestamp,
) -> NgsiResult<Subscription> {
    let Some(o) = v.as_object() else {
        return Err(bad("a subscription must be a JSON object"));
    };
    match o.get("type") {
        Some(Value::String(t)) if t == "Subscription" => {}
        Some(t) => {
            return Err(bad(format!(
                "member \"type\" must be \"Subscription\", got {t}"
            )))
        }
        None => {
            return Err(bad(
                "member \"type\" is missing; it must be \"Subscription\"",
            ))
        }
    }
    let id = match o.get("id") {
        None => format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4()),
        Some(Value::String(s)) if is_uri(s) => s.clone(),
        Some(other) => return Err(bad(format!("member \"id\" must be a URI, got {other}"))),
    };
    let entities = match o.get("entities") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_entities(ctx, v)?,
    };
    let watched_attributes = opt(o, "watchedAttributes")
        .map(|v| names(ctx, "watchedAttributes", v))
        .transpose()?;
    if entities.is_empty() && watched_attributes.is_none() {
        return Err(bad(
            "a subscription needs \"entities\" or \"watchedAttributes\" (5.2.12)",
        ));
    }
    let time_interval = opt(o, "timeInterval")
        .map(|v| positive(v, "timeInterval", false))
        .transpose()?;
    let throttling = opt(o, "throttling")
        .map(|v| positive(v, "throttling", true))
        .transpose()?;
    if time_interval.is_some() && watched_attributes.is_some() {
        return Err(bad(
            "\"timeInterval\" and \"watchedAttributes\" cannot be given together (5.2.12)",
        ));
    }
    if time_interval.is_some() && throttling.is_some() {
        return Err(bad(
            "\"timeInterval\" and \"throttling\" cannot be given together (5.2.12)",
        ));
    }
    let notification_trigger = match opt(o, "notificationTrigger") {
        None => DEFAULT_TRIGGERS.iter().map(|s| s.to_string()).collect(),
        Some(v) => triggers(v)?,
    };
    let expand = |n: &str| ctx.expand_term(n);
    let q = opt_str(o, "q")?;
    if let Some(q) = &q {
        parse_q(q, &expand).map_err(|e| bad(format!("member \"q\": {}", e.detail)))?;
    }
    let csf = opt_str(o, "csf")?;
    if let Some(c) = &csf {
        parse_q(c, &expand).map_err(|e| bad(format!("member \"csf\": {}", e.detail)))?;
    }
    let scope_q = opt_str(o, "scopeQ")?;
    if let Some(s) = &scope_q {
        parse_scope_q(s).map_err(|e| bad(format!("member \"scopeQ\": {}", e.detail)))?;
    }
    let geo_q = opt(o, "geoQ").map(|v| geo(ctx, v)).transpose()?;
    let is_active = match opt(o, "isActive") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(bad(format!(
                "member \"isActive\" must be true or false, got {other}"
            )))
        }
    };
    let expires_at = match opt_str(o, "expiresAt")? {
        None => None,
        Some(s) => {
            let t = time::parse(&s).ok_or_else(|| {
                bad(format!(
                    "member \"expiresAt\" must be a DateTime, got \"{s}\""
                ))
            })?;
            if t <= now {
                return Err(bad(format!(
                    "member \"expiresAt\" is {s}, which is not in the future"
                )));
            }
            Some(t)
        }
    };
    let jsonld_context = opt_str(o, "jsonldContext")?;
    if let Some(c) = &jsonld_context {
        if !is_uri(c) {
            return Err(bad(format!(
                "member \"jsonldContext\" must be a URI, got \"{c}\""
            )));
        }
    }
    let dataset_id = match opt(o, "datasetId") {
        None => None,
        Some(Value::String(s)) => Some(vec![uri(s, "datasetId")?]),
        Some(Value::Array(a)) if !a.is_empty() => Some(
            a.iter()
                .map(|v| match v {
                    Value::String(s) => uri(s, "datasetId"),
                    other => Err(bad(format!(
                        "member \"datasetId\" holds {other}, not a URI"
                    ))),
                })
                .collect::<NgsiResult<_>>()?,
        ),
        Some(other) => {
            return Err(bad(format!(
                "member \"datasetId\" must be a URI or a non-empty array of URIs, got {other}"
            )))
        }
    };
    let temporal_q = match opt(o, "temporalQ") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(other) => {
            return Err(bad(format!(
                "member \"temporalQ\" must be an object, got {other}"
            )))
        }
    };
    let Some(n) = opt(o, "notification") else {
        return Err(bad("member \"notification\" is missing (5.2.12)"));
    };
    let notification = notification(ctx, n)?;
    Ok(Subscription {
        id,
        name: opt_str(o, "subscriptionName")?,
        description: opt_str(o, "description")?,
        entities,
        watched_attributes,
        notification_trigger,
        time_interval,
        q,
        geo_q,
        scope_q,
        csf,
        is_active,
        expires_at,
        throttling,
        lang: opt_str(o, "lang")?,
        dataset_id,
        temporal_q,
        jsonld_context,
        context,
        notification,
        created_at: now,
        modified_at: now,
        owner: None,
    })
}

/// A member, with `null` read as absent.
pub(crate) fn opt<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub(crate) fn opt_str(o: &Map<String, Value>, key: &str) -> NgsiResult<Option<String>> {
    match opt(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "member \"{key}\" must be a string, got {other}"
        ))),
    }
}

pub(crate) fn uri(s: &str, what: &str) -> NgsiResult<String> {
    if is_uri(s) {
        Ok(s.to_string())
    } else {
        Err(bad(format!("member \"{what}\" must be a URI, got \"{s}\"")))
    }
}

fn positive(v: &Value, what: &str, zero_ok: bool) -> NgsiResult<f64> {
    match v.as_f64() {
        Some(n) if n > 0.0 || (zero_ok && n == 0.0) => Ok(n),
        _ => Err(bad(format!(
            "member \"{what}\" must be a positive number of seconds, got {v}"
        ))),
    }
}

pub(crate) fn string_list<'a>(v: &'a Value, what: &str) -> NgsiResult<Vec<&'a str>> {
    let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
        return Err(bad(format!(
            "member \"{what}\" must be a non-empty array of strings, got {v}"
        )));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .ok_or_else(|| bad(format!("member \"{what}\" holds {i}, not a string")))
        })
        .collect()
}

pub(crate) fn names(ctx: &Context, what: &str, v: &Value) -> NgsiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in string_list(v, what)? {
        let e = expand_name(ctx, &format!("member \"{what}\": name"), n)?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn triggers(v: &Value) -> NgsiResult<Vec<String>> {
    let list = string_list(v, "notificationTrigger")?;
    for t in &list {
        if !TRIGGERS.contains(t) {
            return Err(bad(format!(
                "member \"notificationTrigger\": \"{t}\" is not one of {}",
                TRIGGERS.join(", ")
            )));
        }
    }
    Ok(list.into_iter().map(String::from).collect())
}

fn parse_entities(ctx: &Context, v: &Value) -> NgsiResult<Vec<EntitySelector>> {
    let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
        return Err(bad(format!(
            "member \"entities\" must be a non-empty array, got {v}"
        )));
    };
    items.iter().map(|i| entity_selector(ctx, i)).collect()
}

fn entity_selector(ctx: &Context, v: &Value) -> NgsiResult<EntitySelector> {
    let Some(o) = v.as_object() else {
        return Err(bad(format!("member \"entities\" holds {v}, not an object")));
    };
    let id = opt_str(o, "id")?
        .map(|s| uri(&s, "entities[].id"))
        .transpose()?;
    let id_pattern = opt_str(o, "idPattern")?;
    if let Some(p) = &id_pattern {
        regex::Regex::new(p).map_err(|e| {
            bad(format!(
                "member \"entities[].idPattern\" is not a valid regular expression: {e}"
            ))
        })?;
    }
    let Some(t) = opt_str(o, "type")? else {
        return Err(bad("member \"entities[].type\" is missing (5.2.33)"));
    };
    Ok(EntitySelector {
        id,
        id_pattern,
        type_expr: expand_type_expr(ctx, &t)?,
    })
}

/// Characters that separate the names of a type expression (4.17).
fn is_type_separator(c: char) -> bool {
    matches!(c, ',' | ';' | '|' | '(' | ')') || c.is_whitespace()
}

/// Rewrites every name of a type expression with `f`, keeping its operators.
fn map_type_names(expr: &str, f: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut name = String::new();
    for c in expr.chars() {
        if is_type_separator(c) {
            if !name.is_empty() {
                out.push_str(&f(&name));
                name.clear();
            }
            out.push(c);
        } else {
            name.push(c);
        }
    }
    if !name.is_empty() {
        out.push_str(&f(&name));
    }
    out
}

/// Checks a type expression and expands its names.
fn expand_type_expr(ctx: &Context, t: &str) -> NgsiResult<String> {
    let expand = |n: &str| ctx.expand_term(n);
    parse_type_expr(t, &expand)
        .map_err(|e| bad(format!("member \"entities[].type\": {}", e.detail)))?;
    if t.trim() == "*" {
        return Ok("*".into());
    }
    Ok(map_type_names(t, &expand))
}

fn geo(ctx: &Context, v: &Value) -> NgsiResult<GeoQ> {
    let Some(o) = v.as_object() else {
        return Err(bad(format!("member \"geoQ\" must be an object, got {v}")));
    };
    let field = |k: &str| -> NgsiResult<String> {
        opt_str(o, k)?.ok_or_else(|| bad(format!("member \"geoQ.{k}\" is missing (5.2.13)")))
    };
    let geometry = field("geometry")?;
    let georel = field("georel")?;
    let coordinates = match opt(o, "coordinates") {
        None => return Err(bad("member \"geoQ.coordinates\" is missing (5.2.13)")),
        Some(Value::String(s)) => parse_coordinates_text(s)
            .map_err(|e| bad(format!("member \"geoQ.coordinates\": {}", e.detail)))?,
        Some(v) => v.clone(),
    };
    let geoproperty = opt_str(o, "geoproperty")?;
    let expand = |n: &str| ctx.expand_term(n);
    parse_geo_query(
        &georel,
        &geometry,
        &coordinates,
        geoproperty.as_deref(),
        &expand,
    )
    .map_err(|e| bad(format!("member \"geoQ\": {}", e.detail)))?;
    Ok(GeoQ {
        geometry,
        coordinates,
        georel,
        geoproperty: geoproperty.map(|g| ctx.expand_term(&g)),
    })
}

fn notification(ctx: &Context, v: &Value) -> NgsiResult<NotificationParams> {
    let Some(o) = v.as_object() else {
        return Err(bad(format!(
            "member \"notification\" must be an object, got {v}"
        )));
    };
    let attributes = opt(o, "attributes")
        .map(|v| names(ctx, "notification.attributes", v))
        .transpose()?;
    let format = match opt_str(o, "format")? {
        None => NotificationFormat::Normalized,
        Some(f) => NotificationFormat::parse(&f).ok_or_else(|| {
            bad(format!(
                "member \"notification.format\" must be normalized, concise, keyValues or simplified, got \"{f}\""
            ))
        })?,
    };
    let flag = |k: &str| -> NgsiResult<bool> {
        match opt(o, k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(bad(format!(
                "member \"notification.{k}\" must be true or false, got {other}"
            ))),
        }
    };
    let show_changes = flag("showChanges")?;
    if show_changes && format.is_key_values() {
        return Err(bad(format!(
            "member \"notification.showChanges\" cannot be true with format {} (5.2.14)",
            format.as_str()
        )));
    }
    let projection = |k: &str, kind: ProjectionKind| -> NgsiResult<Option<Vec<String>>> {
        let Some(v) = opt(o, k) else {
            return Ok(None);
        };
        let list: Vec<String> = match v {
            Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
            v => string_list(v, &format!("notification.{k}"))?
                .into_iter()
                .map(String::from)
                .collect(),
        };
        let expand = |n: &str| ctx.expand_term(n);
        parse_projection(&list.join(","), kind, &expand)
            .map_err(|e| bad(format!("member \"notification.{k}\": {}", e.detail)))?;
        Ok(Some(list))
    };
    let pick = projection("pick", ProjectionKind::Pick)?;
    let omit = projection("omit", ProjectionKind::Omit)?;
    if let (Some(p), Some(om)) = (&pick, &omit) {
        if let Some(both) = p.iter().find(|m| om.contains(m)) {
            return Err(bad(format!(
                "member \"{both}\" is both in notification.pick and notification.omit (4.21)"
            )));
        }
    }
    if attributes.is_some() && (pick.is_some() || omit.is_some()) {
        return Err(bad(
            "notification.attributes cannot be combined with notification.pick or notification.omit (4.21)",
        ));
    }
    let join = match opt_str(o, "join")? {
        None => None,
        Some(j) if ["flat", "inline", "@none"].contains(&j.as_str()) => Some(j),
        Some(j) => {
            return Err(bad(format!(
                "member \"notification.join\" must be flat, inline or @none, got \"{j}\""
            )))
        }
    };
    let join_level = match opt(o, "joinLevel") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=10) => Some(n as u32),
            _ => {
                return Err(bad(format!(
                    "member \"notification.joinLevel\" must be an integer from 1 to 10, got {v}"
                )))
            }
        },
    };
    let Some(e) = opt(o, "endpoint") else {
        return Err(bad("member \"notification.endpoint\" is missing (5.2.14)"));
    };
    Ok(NotificationParams {
        attributes,
        sys_attrs: flag("sysAttrs")?,
        format,
        show_changes,
        pick,
        omit,
        join,
        join_level,
        endpoint: endpoint(e)?,
        status: DeliveryStatus::default(),
    })
}

fn endpoint(v: &Value) -> NgsiResult<Endpoint> {
    let Some(o) = v.as_object() else {
        return Err(bad(format!(
            "member \"notification.endpoint\" must be an object, got {v}"
        )));
    };
    let Some(uri) = opt_str(o, "uri")? else {
        return Err(bad(
            "member \"notification.endpoint.uri\" is missing (5.2.15)",
        ));
    };
    let scheme_ok = uri.split_once(':').is_some_and(|(s, rest)| {
        SCHEMES.contains(&s.to_ascii_lowercase().as_str())
            && rest.starts_with("//")
            && rest.len() > 2
    });
    if !is_uri(&uri) || !scheme_ok {
        return Err(bad(format!(
            "member \"notification.endpoint.uri\" must be an absolute http, https, mqtt or mqtts URI, got \"{uri}\""
        )));
    }
    let accept = opt_str(o, "accept")?.unwrap_or_else(|| "application/json".into());
    if !ACCEPTS.contains(&accept.as_str()) {
        return Err(bad(format!(
            "member \"notification.endpoint.accept\" must be one of {}, got \"{accept}\"",
            ACCEPTS.join(", ")
        )));
    }
    let millis = |k: &str| -> NgsiResult<Option<f64>> {
        opt(o, k)
            .map(|v| positive(v, &format!("notification.endpoint.{k}"), true))
            .transpose()
    };
    Ok(Endpoint {
        uri,
        accept,
        receiver_info: key_values(o, "receiverInfo")?,
        notifier_info: key_values(o, "notifierInfo")?,
        timeout: millis("timeout")?,
        cooldown: millis("cooldown")?,
    })
}

fn key_values(o: &Map<String, Value>, k: &str) -> NgsiResult<Option<Vec<KeyValue>>> {
    let Some(v) = opt(o, k) else {
        return Ok(None);
    };
    let what = format!("notification.endpoint.{k}");
    let Some(items) = v.as_array() else {
        return Err(bad(format!("member \"{what}\" must be an array, got {v}")));
    };
    items
        .iter()
        .map(|i| {
            let key = i.get("key").and_then(Value::as_str);
            let value = i.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(key), Some(value)) if !key.is_empty() => Ok(KeyValue {
                    key: key.into(),
                    value: value.into(),
                }),
                _ => Err(bad(format!(
                    "member \"{what}\" holds {i}; each element must be {{\"key\": string, \"value\": string}} (5.2.22)"
                ))),
            }
        })
        .collect::<NgsiResult<_>>()
        .map(Some)
}

/// Renders a subscription with the reader's `@context`; `sys_attrs` adds `createdAt` and
/// `modifiedAt`.
pub fn render_subscription(
    s: &Subscription,
    ctx: &Context,
    sys_attrs: bool,
    now: Timestamp,
) -> Value {
    let compact = |n: &String| Value::String(ctx.compact_iri(n));
    let mut o = Map::new();
    o.insert("id".into(), json!(s.id));
    o.insert("type".into(), json!("Subscription"));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("subscriptionName", s.name.as_ref().map(|v| json!(v)));
    put("description", s.description.as_ref().map(|v| json!(v)));
    if !s.entities.is_empty() {
        let list: Vec<Value> = s
            .entities
            .iter()
            .map(|e| {
                let mut m = Map::new();
                if let Some(id) = &e.id {
                    m.insert("id".into(), json!(id));
                }
                if let Some(p) = &e.id_pattern {
                    m.insert("idPattern".into(), json!(p));
                }
                let t = if e.type_expr == "*" {
                    "*".to_string()
                } else {
                    map_type_names(&e.type_expr, &|n| ctx.compact_iri(n))
                };
                m.insert("type".into(), json!(t));
                Value::Object(m)
            })
            .collect();
        put("entities", Some(Value::Array(list)));
    }
    put(
        "watchedAttributes",
        s.watched_attributes
            .as_ref()
            .map(|w| w.iter().map(compact).collect()),
    );
    put("notificationTrigger", Some(json!(s.notification_trigger)));
    put("timeInterval", s.time_interval.map(number));
    put("q", s.q.as_ref().map(|v| json!(v)));
    put(
        "geoQ",
        s.geo_q.as_ref().map(|g| {
            let mut m = json!({
                "geometry": g.geometry,
                "coordinates": g.coordinates,
                "georel": g.georel,
            });
            if let Some(p) = &g.geoproperty {
                m["geoproperty"] = json!(ctx.compact_iri(p));
            }
            m
        }),
    );
    put("scopeQ", s.scope_q.as_ref().map(|v| json!(v)));
    put("csf", s.csf.as_ref().map(|v| json!(v)));
    put("isActive", s.is_active.map(Value::Bool));
    put(
        "expiresAt",
        s.expires_at.as_ref().map(|t| json!(time::format(t))),
    );
    put("throttling", s.throttling.map(number));
    put("lang", s.lang.as_ref().map(|v| json!(v)));
    put("datasetId", s.dataset_id.as_ref().map(|v| json!(v)));
    put("temporalQ", s.temporal_q.clone());
    put("jsonldContext", s.jsonld_context.as_ref().map(|v| json!(v)));
    put(
        "notification",
        Some(render_notification(&s.notification, ctx)),
    );
    put("status", Some(json!(s.status(now).as_str())));
    if sys_attrs {
        put("createdAt", Some(json!(time::format(&s.created_at))));
        put("modifiedAt", Some(json!(time::format(&s.modified_at))));
    }
    Value::Object(o)
}

/// A whole number as an integer, so `5` is not rendered back as `5.0`.
pub(crate) fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn render_notification(n: &NotificationParams, ctx: &Context) -> Value {
    let mut o = Map::new();
    if let Some(a) = &n.attributes {
        let list: Vec<Value> = a.iter().map(|x| json!(ctx.compact_iri(x))).collect();
        o.insert("attributes".into(), Value::Array(list));
    }
    if n.sys_attrs {
        o.insert("sysAttrs".into(), json!(true));
    }
    o.insert("format".into(), json!(n.format.as_str()));
    if n.show_changes {
        o.insert("showChanges".into(), json!(true));
    }
    if let Some(p) = &n.pick {
        o.insert("pick".into(), json!(p));
    }
    if let Some(p) = &n.omit {
        o.insert("omit".into(), json!(p));
    }
    if let Some(j) = &n.join {
        o.insert("join".into(), json!(j));
    }
    if let Some(l) = n.join_level {
        o.insert("joinLevel".into(), json!(l));
    }
    let e = &n.endpoint;
    let mut ep = Map::new();
    ep.insert("uri".into(), json!(e.uri));
    ep.insert("accept".into(), json!(e.accept));
    let kv = |l: &Vec<KeyValue>| -> Value {
        l.iter()
            .map(|p| json!({"key": p.key, "value": p.value}))
            .collect()
    };
    if let Some(l) = &e.receiver_info {
        ep.insert("receiverInfo".into(), kv(l));
    }
    if let Some(l) = &e.notifier_info {
        ep.insert("notifierInfo".into(), kv(l));
    }
    if let Some(t) = e.timeout {
        ep.insert("timeout".into(), number(t));
    }
    if let Some(t) = e.cooldown {
        ep.insert("cooldown".into(), number(t));
    }
    o.insert("endpoint".into(), Value::Object(ep));
    let st = &n.status;
    if let Some(outcome) = st.outcome() {
        o.insert("status".into(), json!(outcome));
    }
    if st.times_sent > 0 {
        o.insert("timesSent".into(), json!(st.times_sent));
    }
    if st.times_failed > 0 {
        o.insert("timesFailed".into(), json!(st.times_failed));
    }
    for (k, t) in [
        ("lastNotification", &st.last_notification),
        ("lastSuccess", &st.last_success),
        ("lastFailure", &st.last_failure),
    ] {
        if let Some(t) = t {
            o.insert(k.into(), json!(time::format(t)));
        }
    }
    Value::Object(o)
}

/// Applies the fragment of 5.8.2 to a subscription: each member of the fragment replaces the
/// subscription's (`null` removes it), the result is checked as a whole, and the identity,
/// creation time and delivery status are kept.
pub fn merge_subscription(
    current: &Subscription,
    ctx: &Context,
    fragment: &Value,
    context: Value,
    now: Timestamp,
) -> NgsiResult<Subscription> {
    let Some(f) = fragment.as_object() else {
        return Err(bad("the update fragment must be a JSON object"));
    };
    if f.is_empty() {
        return Err(bad("the update fragment is empty"));
    }
    if let Some(id) = f.get("id") {
        if id.as_str() != Some(current.id.as_str()) {
            return Err(bad("member \"id\" of a subscription cannot be changed"));
        }
    }
    let Value::Object(mut merged) = render_subscription(current, ctx, false, now) else {
        unreachable!("a subscription renders as an object");
    };
    // `expiresAt` in the past is refused only when the fragment sets it; a stored one that
    // has passed must not block other changes.
    if current.expires_at.is_some_and(|t| t <= now) && !f.contains_key("expiresAt") {
        merged.remove("expiresAt");
    }
    for (k, v) in f {
        if k == "@context" {
            continue;
        }
        merged.insert(k.clone(), v.clone());
    }
    let mut next = parse_subscription(ctx, &Value::Object(merged), context, now)?;
    if current.expires_at.is_some_and(|t| t <= now) && !f.contains_key("expiresAt") {
        next.expires_at = current.expires_at;
    }
    next.id = current.id.clone();
    next.created_at = current.created_at;
    next.modified_at = now;
    next.notification.status = current.notification.status.clone();
    if !f.contains_key("jsonldContext") {
        next.jsonld_context = current.jsonld_context.clone();
    }
    if !["q", "csf", "geoQ"].iter().any(|k| f.contains_key(*k)) {
        next.context = current.context.clone();
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_expressions_expand_and_compact_name_by_name() {
        let ctx =
            Context::compile(&[json!({"P": "https://ex.org/P", "G": "https://ex.org/G"})]).unwrap();
        let cases = [
            ("P", "https://ex.org/P"),
            ("P|G", "https://ex.org/P|https://ex.org/G"),
            ("(P;G),Other", "(https://ex.org/P;https://ex.org/G),https://uri.etsi.org/ngsi-ld/default-context/Other"),
            ("*", "*"),
        ];
        for (input, expanded) in cases {
            let got = expand_type_expr(&ctx, input).unwrap();
            assert_eq!(got, expanded, "{input}");
            let back = if got == "*" {
                got.clone()
            } else {
                map_type_names(&got, &|n| ctx.compact_iri(n))
            };
            assert_eq!(back, input, "{input} compacts back");
        }
        assert!(expand_type_expr(&ctx, "P;;G").is_err());
    }

    #[test]
    fn whole_numbers_render_as_integers() {
        assert_eq!(number(5.0), json!(5));
        assert_eq!(number(0.5), json!(0.5));
    }
}
