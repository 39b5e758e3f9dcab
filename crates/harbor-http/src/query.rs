//! Query Entities parameters (6.4.3.2, 5.7.2) and the POST Query body (5.2.23) into an
//! `EntityQuery`, a rendering view and a page.

use std::sync::Arc;

use harbor_jsonld::Context;
use harbor_model::{names, ErrorKind, NgsiError, NgsiResult};
use harbor_query::{
    parse_coordinates_text, parse_geo_query, parse_q, parse_scope_q, parse_type_expr, QueryError,
};
use harbor_store::EntityQuery;
use serde_json::Value;

use crate::params::{Options, Params};

/// Longest `idPattern` accepted.
const MAX_PATTERN: usize = 1024;

/// How matching entities are shown.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub options: Options,
    /// Expanded attribute names to show (`attrs`), None: all.
    pub attrs: Option<Vec<String>>,
    /// `pick` / `omit` on compacted member names.
    pub pick: Option<Vec<String>>,
    pub omit: Option<Vec<String>>,
    pub lang: Option<String>,
    /// Expanded name of the GeoProperty used as GeoJSON geometry.
    pub geometry_property: String,
}

fn qerr(what: &str, e: QueryError) -> NgsiError {
    NgsiError::bad_request(format!("{what}: {}", e.detail))
}

/// Reads the view parameters shared by retrieve and query.
pub fn view(p: &Params, ctx: &Context) -> NgsiResult<View> {
    let options = p.options()?;
    let expand = |names: Vec<String>| names.iter().map(|n| ctx.expand_term(n)).collect::<Vec<_>>();
    let pick = p.list("pick")?;
    let omit = p.list("omit")?;
    if pick.is_some() && omit.is_some() {
        return Err(NgsiError::bad_request(
            "pick and omit cannot be used together",
        ));
    }
    let geometry_property = p
        .get("geometryProperty")
        .map(|g| ctx.expand_term(g))
        .unwrap_or_else(|| names::LOCATION.to_string());
    Ok(View {
        options,
        attrs: p.list("attrs")?.map(expand),
        pick,
        omit,
        lang: p.get("lang").map(str::to_string),
        geometry_property,
    })
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
        q.types = Some(parse_type_expr(t, &expand).map_err(|e| qerr("parameter \"type\"", e))?);
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

fn id_pattern(pat: &str) -> NgsiResult<regex::Regex> {
    if pat.len() > MAX_PATTERN {
        return Err(NgsiError::bad_request(format!(
            "idPattern is longer than {MAX_PATTERN} characters"
        )));
    }
    regex::RegexBuilder::new(pat)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            NgsiError::bad_request(format!("idPattern is not a valid regular expression: {e}"))
        })
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
        // Several selectors are ORed: fold them into one type expression / id list / pattern.
        let mut types = Vec::new();
        let mut ids = Vec::new();
        let mut patterns = Vec::new();
        for sel in items {
            if let Some(t) = sel.get("type").and_then(Value::as_str) {
                types.push(format!("({t})"));
            } else {
                return Err(NgsiError::bad_request(
                    "each query \"entities\" selector needs a \"type\"",
                ));
            }
            if let Some(id) = sel.get("id").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
            if let Some(p) = sel.get("idPattern").and_then(Value::as_str) {
                patterns.push(format!("(?:{p})"));
            }
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
    if let Some(attrs) = o.get("attrs") {
        let list: Vec<String> = attrs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| NgsiError::bad_request("query \"attrs\" must be an array of names"))?;
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
    if let Some(l) = o.get("lang").and_then(Value::as_str) {
        pairs.push(("lang".into(), l.into()));
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
