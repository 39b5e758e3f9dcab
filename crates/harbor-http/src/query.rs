//! Query Entities parameters (6.4.3.2, 5.7.2) and the POST Query body (5.2.23) into an
//! `EntityQuery`, a rendering view, an ordering and a page.

use std::sync::Arc;

use harbor_jsonld::Context;
use harbor_model::{names, ErrorKind, NgsiError, NgsiResult};
use harbor_query::{
    parse_coordinates_text, parse_geo_query, parse_order_by, parse_projection, parse_q,
    parse_scope_q, parse_type_expr, OrderBy, Projection, ProjectionKind, QueryError, TypeExpr,
};
use harbor_store::EntityQuery;
use serde_json::Value;

use crate::negotiate::Media;
use crate::params::{Options, Params};

/// Longest `idPattern` accepted.
const MAX_PATTERN: usize = 1024;
/// Largest `joinLevel` accepted: each level multiplies the Entities a request reads.
pub const MAX_JOIN_LEVEL: usize = 10;
/// Entity members that are not attributes (they never make a query narrow enough).
const SYSTEM_MEMBERS: &[&str] = &[
    "id",
    "type",
    "scope",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "expiresAt",
];

/// How Linked Entities are shown (4.5.23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Each Relationship carries the Entity it targets.
    Inline,
    /// The linked Entities follow the selected ones in one array.
    Flat,
}

/// `join` and `joinLevel`.
#[derive(Debug, Clone, Copy)]
pub struct Join {
    pub kind: JoinKind,
    pub level: usize,
}

/// How matching entities are shown.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub options: Options,
    /// Expanded attribute names to show (`attrs`), None: all.
    pub attrs: Option<Vec<String>>,
    /// `pick` / `omit` (4.21).
    pub pick: Option<Projection>,
    pub omit: Option<Projection>,
    pub lang: Option<String>,
    /// Expanded name of the GeoProperty used as GeoJSON geometry.
    pub geometry_property: String,
    /// `datasetId`: the instances to show; `None` in the list is the default instance
    /// (`@none`).
    pub datasets: Option<Vec<Option<String>>>,
    pub join: Option<Join>,
    /// `containedBy`: Entity ids the requester has already seen.
    pub contained_by: Vec<String>,
}

impl View {
    /// Whether linked-entity selections (`rel{...}`, `pick=rel{...}`) may go `depth` hops.
    pub fn check_link_depth(&self, what: &str, depth: usize) -> NgsiResult<()> {
        if depth == 0 {
            return Ok(());
        }
        match self.join {
            None => Err(NgsiError::bad_request(format!(
                "{what} selects attributes of Linked Entities, which needs the join parameter \
                 (join=inline or join=flat)"
            ))),
            Some(j) if depth > j.level => Err(NgsiError::bad_request(format!(
                "{what} goes {depth} Linked Entity hops deep but joinLevel is {}",
                j.level
            ))),
            Some(_) => Ok(()),
        }
    }
}

fn qerr(what: &str, e: QueryError) -> NgsiError {
    NgsiError::bad_request(format!("{what}: {}", e.detail))
}

/// The `type` selection (4.17) an operation on one entity may carry (and a stream of
/// changes): what its entities must match, if any.
pub fn type_selection(p: &Params, ctx: &Context) -> NgsiResult<Option<TypeExpr>> {
    p.get("type")
        .map(|t| {
            parse_type_expr(t, &|n: &str| ctx.expand_term(n))
                .map_err(|e| qerr("parameter \"type\"", e))
        })
        .transpose()
}

/// Reads the view parameters shared by retrieve and query.
pub fn view(p: &Params, ctx: &Context, media: Media) -> NgsiResult<View> {
    let options = p.options()?;
    let expand = |n: &str| ctx.expand_term(n);
    let projection = |key: &str, kind| -> NgsiResult<Option<Projection>> {
        match p.get(key) {
            None | Some("") => Ok(None),
            Some(text) => parse_projection(text, kind, &expand)
                .map(Some)
                .map_err(|e| qerr(&format!("parameter \"{key}\""), e)),
        }
    };
    let pick = projection("pick", ProjectionKind::Pick)?;
    let omit = projection("omit", ProjectionKind::Omit)?;
    if pick.is_some() && omit.is_some() {
        return Err(NgsiError::bad_request(
            "pick and omit cannot be used together",
        ));
    }
    let attrs = match p.get("attrs") {
        Some("") => None,
        _ => p.list("attrs")?,
    };
    if attrs.is_some() && (pick.is_some() || omit.is_some()) {
        return Err(NgsiError::bad_request(
            "attrs cannot be used together with pick or omit; use pick alone",
        ));
    }
    let geometry_property = match p.get("geometryProperty") {
        Some(_) if media != Media::GeoJson => {
            return Err(NgsiError::bad_request(
                "geometryProperty only applies to the GeoJSON representation \
                 (Accept: application/geo+json)",
            ))
        }
        Some(g) => ctx.expand_term(g),
        None => names::LOCATION.to_string(),
    };
    let datasets = match p.list("datasetId")? {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .map(|d| match d.as_str() {
                    "@none" => Ok(None),
                    _ if harbor_jsonld::expand::is_uri(&d) => Ok(Some(d)),
                    _ => Err(NgsiError::bad_request(format!(
                        "datasetId \"{d}\" is neither a URI nor @none"
                    ))),
                })
                .collect::<NgsiResult<Vec<_>>>()?,
        ),
    };
    let view = View {
        options,
        attrs: attrs.map(|a| a.iter().map(|n| ctx.expand_term(n)).collect()),
        pick,
        omit,
        lang: p.get("lang").map(str::to_string),
        geometry_property,
        datasets,
        join: join(p)?,
        contained_by: p.list("containedBy")?.unwrap_or_default(),
    };
    for (key, proj) in [("pick", &view.pick), ("omit", &view.omit)] {
        if let Some(proj) = proj {
            view.check_link_depth(&format!("parameter \"{key}\""), proj.depth())?;
        }
    }
    Ok(view)
}

/// `join` and `joinLevel` (6.3.x, 4.5.23).
fn join(p: &Params) -> NgsiResult<Option<Join>> {
    let level = match p.get("joinLevel") {
        None | Some("") => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_JOIN_LEVEL).contains(&n) => n,
            _ => {
                return Err(NgsiError::bad_request(format!(
                    "joinLevel must be a whole number from 1 to {MAX_JOIN_LEVEL}, got \"{v}\""
                )))
            }
        },
    };
    let kind = match p.get("join") {
        None | Some("") | Some("@none") => return Ok(None),
        Some("inline") => JoinKind::Inline,
        Some("flat") => JoinKind::Flat,
        Some(other) => {
            return Err(NgsiError::bad_request(format!(
                "join must be inline, flat or @none, got \"{other}\""
            )))
        }
    };
    Ok(Some(Join { kind, level }))
}

/// `orderBy`, `orderFrom` and `collation` (4.23).
pub fn order(p: &Params, ctx: &Context) -> NgsiResult<Option<OrderBy>> {
    let Some(text) = p.get("orderBy").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let from = match p.get("orderFrom") {
        None => None,
        Some(c) => {
            let coords =
                parse_coordinates_text(c).map_err(|e| qerr("parameter \"orderFrom\"", e))?;
            Some(
                harbor_query::order_from(p.get("orderGeometry"), &coords)
                    .map_err(|e| qerr("parameter \"orderFrom\"", e))?,
            )
        }
    };
    let expand = |n: &str| ctx.expand_term(n);
    parse_order_by(text, &expand, from, p.get("collation"))
        .map(Some)
        .map_err(|e| qerr("parameter \"orderBy\"", e))
}

/// Page of a query.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
}

pub fn page(p: &Params, default: usize, max: usize) -> NgsiResult<Page> {
    let limit = p.number("limit")?.unwrap_or(default);
    let offset = p.number("offset")?.unwrap_or(0);
    let count = p.flag("count")?;
    if p.get("limit").is_some() && limit == 0 && !count {
        return Err(NgsiError::bad_request(
            "limit=0 is only allowed together with count=true",
        ));
    }
    if limit > max {
        return Err(NgsiError::new(
            ErrorKind::TooManyResults,
            format!("limit {limit} is larger than the largest page, {max}"),
        ));
    }
    Ok(Page {
        limit,
        offset,
        count,
    })
}

/// Builds the entity filter of `GET /entities` (and of purge).
pub fn from_params(
    p: &Params,
    ctx: &Arc<Context>,
    require_filter: bool,
) -> NgsiResult<EntityQuery> {
    let expand = |s: &str| ctx.expand_term(s);
    let mut q = EntityQuery::default();
    if let Some(ids) = p.list("id")? {
        for id in &ids {
            if !harbor_jsonld::expand::is_uri(id) {
                return Err(NgsiError::bad_request(format!(
                    "parameter \"id\": \"{id}\" is not a URI"
                )));
            }
        }
        q.ids = Some(ids);
    }
    if let Some(pat) = p.get("idPattern") {
        q.id_pattern = Some(id_pattern(pat)?);
    }
    if let Some(t) = p.get("type") {
        let types = parse_type_expr(t, &expand).map_err(|e| qerr("parameter \"type\"", e))?;
        if types.is_wildcard() && p.get("local") == Some("false") {
            return Err(NgsiError::bad_request(
                "type=* implies local=true; it cannot be combined with local=false",
            ));
        }
        q.types = Some(types);
    }
    if let Some(attrs) = p.list("attrs")? {
        q.attrs = Some(attrs.iter().map(|a| ctx.expand_term(a)).collect());
    }
    if let Some(text) = p.get("q") {
        q.q = Some(parse_q(text, &expand).map_err(|e| qerr("parameter \"q\"", e))?);
    }
    if let Some(s) = p.get("scopeQ") {
        q.scope = Some(parse_scope_q(s).map_err(|e| qerr("parameter \"scopeQ\"", e))?);
    }
    if let Some(csf) = p.get("csf") {
        // Only checked: no registered context source is consulted (4.9 syntax).
        parse_q(csf, &expand).map_err(|e| qerr("parameter \"csf\"", e))?;
    }
    let geo = (p.get("georel"), p.get("geometry"), p.get("coordinates"));
    match geo {
        (None, None, None) => {}
        (Some(rel), Some(geometry), Some(coords)) => {
            let coords =
                parse_coordinates_text(coords).map_err(|e| qerr("parameter \"coordinates\"", e))?;
            q.geo = Some(
                parse_geo_query(rel, geometry, &coords, p.get("geoproperty"), &expand)
                    .map_err(|e| qerr("geo-query", e))?,
            );
        }
        _ => {
            return Err(NgsiError::bad_request(
                "a geo-query needs all of georel, geometry and coordinates",
            ))
        }
    }
    if require_filter
        && q.ids.is_none()
        && q.id_pattern.is_none()
        && q.types.is_none()
        && q.attrs.is_none()
        && q.q.is_none()
        && q.geo.is_none()
        && q.scope.is_none()
    {
        return Err(NgsiError::bad_request(
            "a query needs at least one of id, idPattern, type, attrs, q, geo-query or scopeQ",
        ));
    }
    Ok(q)
}

/// Rejects a query that selects no entity type, no non-system attribute, no geo-query, no
/// `idPattern` and is not `local=true` (5.7.2.4: "too wide"); `type=*` implies `local=true`.
/// An `idPattern` is enough, its answer bounded by the page limit like any other, because
/// clients list a broker with `idPattern=.*` alone; an `id` list alone stays refused, as
/// 5.7.2.4 says (docs/conformance.md, "Clients in use"). `attrs` are the names as given,
/// before expansion.
pub fn check_not_too_wide(
    q: &EntityQuery,
    attrs: Option<&[String]>,
    local: bool,
) -> NgsiResult<()> {
    let is_attr = |a: &String| !SYSTEM_MEMBERS.contains(&a.as_str());
    let narrow = q.id_pattern.is_some()
        || q.types.is_some()
        || q.geo.is_some()
        || local
        || attrs.is_some_and(|a| a.iter().any(is_attr))
        || q.q
            .as_ref()
            .is_some_and(|q| q.attributes().iter().any(is_attr));
    if narrow {
        return Ok(());
    }
    Err(NgsiError::bad_request(
        "the query is too wide: give at least one of idPattern, type, attrs or q naming a \
         non-system attribute, a geo-query, or local=true",
    ))
}

fn id_pattern(pat: &str) -> NgsiResult<regex::Regex> {
    if pat.len() > MAX_PATTERN {
        return Err(NgsiError::bad_request(format!(
            "idPattern is longer than {MAX_PATTERN} characters"
        )));
    }
    if let Some(why) = repeated_quantifier(pat) {
        return Err(NgsiError::bad_request(format!(
            "idPattern is not a valid regular expression: {why}"
        )));
    }
    regex::RegexBuilder::new(pat)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            NgsiError::bad_request(format!("idPattern is not a valid regular expression: {e}"))
        })
}

/// The `id` of an entity selector (5.2.33): a URI or an array of URIs.
fn selector_ids(id: Option<&Value>) -> NgsiResult<Vec<String>> {
    let one = |v: &Value| match v.as_str() {
        Some(s) if harbor_jsonld::expand::is_uri(s) => Ok(s.to_string()),
        _ => Err(NgsiError::bad_request(format!(
            "a selector's \"id\" must be a URI or an array of URIs, got {v}"
        ))),
    };
    match id {
        None => Ok(vec![]),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(v) => one(v).map(|s| vec![s]),
    }
}

/// The members of an Ordering (5.2.43) as parameters: `orderBy`, `collation` and the
/// reference geometry of distance ordering (`geometry`, `coordinates`). Without an
/// `ordering` object only `orderBy` is read from the Query itself.
fn order_members(
    o: &serde_json::Map<String, Value>,
    pairs: &mut Vec<(String, String)>,
) -> NgsiResult<()> {
    match o.get("orderBy") {
        None => {}
        Some(Value::String(s)) => pairs.push(("orderBy".into(), s.clone())),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            let list: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            pairs.push(("orderBy".into(), list.join(",")));
        }
        Some(_) => {
            return Err(NgsiError::bad_request(
                "query \"orderBy\" must be a string or an array of strings",
            ))
        }
    }
    if !o.contains_key("orderBy") {
        return Ok(());
    }
    if let Some(c) = o.get("collation") {
        let c = c
            .as_str()
            .ok_or_else(|| NgsiError::bad_request("\"collation\" must be a language tag"))?;
        pairs.push(("collation".into(), c.to_string()));
    }
    match o.get("coordinates") {
        None => {}
        Some(c @ Value::Array(_)) => pairs.push(("orderFrom".into(), c.to_string())),
        Some(_) => {
            return Err(NgsiError::bad_request(
                "query \"coordinates\" must be an array of positions",
            ))
        }
    }
    match o.get("geometry") {
        None => {}
        Some(Value::String(g)) => pairs.push(("orderGeometry".into(), g.clone())),
        Some(_) => {
            return Err(NgsiError::bad_request(
                "query \"geometry\" must be a string such as \"Point\"",
            ))
        }
    }
    Ok(())
}

/// A quantifier applied to a quantifier (`a**`, `a+*`): "nothing to repeat" in the ECMAScript
/// and POSIX syntaxes clients write, though the Rust syntax would accept it.
fn repeated_quantifier(pat: &str) -> Option<String> {
    use regex_syntax::ast::{parse::Parser, visit, Ast, Visitor};
    struct Find(Option<String>);
    impl Visitor for Find {
        type Output = Option<String>;
        type Err = ();
        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            if let Ast::Repetition(r) = ast {
                if matches!(*r.ast, Ast::Repetition(_)) && self.0.is_none() {
                    self.0 = Some(format!(
                        "quantifier at position {} has nothing to repeat",
                        r.op.span.start.offset + 1
                    ));
                }
            }
            Ok(())
        }
    }
    let ast = Parser::new().parse(pat).ok()?;
    visit(&ast, Find(None)).ok().flatten()
}

/// Builds the filter of `POST /entityOperations/query` from its Query body (5.2.23).
pub fn from_body(body: &Value, ctx: &Arc<Context>) -> NgsiResult<(EntityQuery, Params)> {
    let Value::Object(o) = body else {
        return Err(NgsiError::invalid("the query must be a JSON object"));
    };
    match o.get("type").and_then(Value::as_str) {
        Some("Query") => {}
        _ => {
            return Err(NgsiError::bad_request(
                "the query body must have \"type\": \"Query\"",
            ))
        }
    }
    let expand = |s: &str| ctx.expand_term(s);
    let mut q = EntityQuery::default();
    // The body's members become parameters so the view and paging read them the same way.
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(ents) = o.get("entities") {
        let Value::Array(items) = ents else {
            return Err(NgsiError::bad_request(
                "query \"entities\" must be an array",
            ));
        };
        if items.is_empty() {
            return Err(NgsiError::bad_request(
                "query \"entities\" must not be an empty array",
            ));
        }
        // Several selectors are ORed: fold them into one type expression / id list / pattern.
        let mut types = Vec::new();
        let mut ids = Vec::new();
        let mut patterns = Vec::new();
        for sel in items {
            let Some(t) = sel.get("type").and_then(Value::as_str) else {
                return Err(NgsiError::bad_request(
                    "each query \"entities\" selector needs a \"type\"",
                ));
            };
            types.push(format!("({t})"));
            let sel_ids = selector_ids(sel.get("id"))?;
            if sel_ids.is_empty() {
                // 5.2.33: id takes precedence over idPattern.
                if let Some(p) = sel.get("idPattern") {
                    let p = p.as_str().ok_or_else(|| {
                        NgsiError::bad_request("a selector's \"idPattern\" must be a string")
                    })?;
                    patterns.push(format!("(?:{p})"));
                }
            }
            ids.extend(sel_ids);
        }
        if !types.is_empty() {
            let text = types.join("|");
            q.types = Some(
                parse_type_expr(&text, &expand).map_err(|e| qerr("query \"entities\" type", e))?,
            );
        }
        if !ids.is_empty() {
            q.ids = Some(ids);
        }
        if !patterns.is_empty() {
            q.id_pattern = Some(id_pattern(&patterns.join("|"))?);
        }
    }
    if o.contains_key("temporalQ") {
        return Err(NgsiError::bad_request(
            "temporalQ only applies to Query Temporal Evolution of Entities (5.7.4)",
        ));
    }
    if let Some(attrs) = o.get("attrs") {
        let list: Vec<String> = attrs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| NgsiError::bad_request("query \"attrs\" must be an array of names"))?;
        if list.is_empty() {
            return Err(NgsiError::bad_request(
                "query \"attrs\" must not be an empty array",
            ));
        }
        pairs.push(("attrs".into(), list.join(",")));
        q.attrs = Some(list.iter().map(|a| ctx.expand_term(a)).collect());
    }
    if let Some(text) = o.get("q") {
        let text = text
            .as_str()
            .ok_or_else(|| NgsiError::bad_request("query \"q\" must be a string"))?;
        q.q = Some(parse_q(text, &expand).map_err(|e| qerr("query \"q\"", e))?);
    }
    if let Some(s) = o.get("scopeQ") {
        let s = s
            .as_str()
            .ok_or_else(|| NgsiError::bad_request("query \"scopeQ\" must be a string"))?;
        q.scope = Some(parse_scope_q(s).map_err(|e| qerr("query \"scopeQ\"", e))?);
    }
    if let Some(g) = o.get("geoQ") {
        let rel = g.get("georel").and_then(Value::as_str);
        let geometry = g.get("geometry").and_then(Value::as_str);
        let coords = g.get("coordinates");
        let (Some(rel), Some(geometry), Some(coords)) = (rel, geometry, coords) else {
            return Err(NgsiError::bad_request(
                "query \"geoQ\" needs georel, geometry and coordinates",
            ));
        };
        let coords = match coords {
            Value::String(s) => {
                parse_coordinates_text(s).map_err(|e| qerr("query \"geoQ\" coordinates", e))?
            }
            other => other.clone(),
        };
        let geoprop = g.get("geoproperty").and_then(Value::as_str);
        q.geo = Some(
            parse_geo_query(rel, geometry, &coords, geoprop, &expand)
                .map_err(|e| qerr("query \"geoQ\"", e))?,
        );
    }
    for key in [
        "lang",
        "join",
        "joinLevel",
        "local",
        "collation",
        "expandValues",
        "datasetId",
        "containedBy",
    ] {
        match o.get(key) {
            None => {}
            Some(Value::String(v)) => pairs.push((key.into(), v.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                pairs.push((key.into(), v.to_string()))
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                let list: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                pairs.push((key.into(), list.join(",")));
            }
            Some(_) => {
                return Err(NgsiError::bad_request(format!(
                    "query \"{key}\" has the wrong type"
                )))
            }
        }
    }
    match o.get("ordering") {
        None => order_members(o, &mut pairs)?,
        Some(Value::Object(ordering)) => order_members(ordering, &mut pairs)?,
        Some(_) => {
            return Err(NgsiError::bad_request(
                "query \"ordering\" must be an object (5.2.43)",
            ))
        }
    }
    for key in ["pick", "omit"] {
        if let Some(v) = o.get(key) {
            let text = match v {
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Value::String(s) => s.clone(),
                _ => {
                    return Err(NgsiError::bad_request(format!(
                        "query \"{key}\" must be a list of names"
                    )))
                }
            };
            pairs.push((key.into(), text));
        }
    }
    Ok((q, Params::from_pairs(pairs)))
}
