//! Handlers of `/types` and `/attributes` (6.25 – 6.28): what the tenant's data holds.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use harbor_model::NgsiError;
use serde_json::{json, Value};

use crate::access::Seen;
use crate::body;
use crate::error::ApiResult;
use crate::negotiate;
use crate::params::{allowed, Params};
use crate::reply;
use crate::SharedState;

fn list_id(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4().simple())
}

/// GET /types — 5.7.5 / 5.7.6.
pub async fn types(
    State(s): State<SharedState>,
    seen: Seen,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::DISCOVERY_LIST)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let details = p.flag("details")?;
    let types = seen.discovery(|v| s.engine.types(&tenant, v))?;
    let c = |i: &str| ld.ctx.compact_iri(i);
    let body = if details {
        Value::Array(
            types
                .iter()
                .map(|(t, info)| {
                    json!({
                        "id": t,
                        "type": "EntityType",
                        "typeName": c(t),
                        "attributeNames": info.attributes.keys().map(|a| c(a)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": types.keys().map(|t| c(t)).collect::<Vec<_>>(),
        })
    };
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        body,
        HeaderMap::new(),
    ))
}

/// GET /types/{type} — 5.7.7.
pub async fn type_info(
    State(s): State<SharedState>,
    seen: Seen,
    Path(ty): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    Params::parse(raw.as_deref()).only(allowed::DISCOVERY_ONE)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let expanded = ld.ctx.expand_term(&ty);
    let types = seen.discovery(|v| s.engine.types(&tenant, v))?;
    let info = types
        .get(&expanded)
        .ok_or_else(|| NgsiError::not_found(format!("no entity has type {ty}")))?;
    let c = |i: &str| ld.ctx.compact_iri(i);
    let body = json!({
        "id": expanded,
        "type": "EntityTypeInfo",
        "typeName": c(&expanded),
        "entityCount": info.entity_count,
        "attributeDetails": info.attributes.iter().map(|(a, kinds)| json!({
            "id": a,
            "type": "Attribute",
            "attributeName": c(a),
            "attributeTypes": kinds.iter().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        body,
        HeaderMap::new(),
    ))
}

/// An Attribute (5.2.28). The detailed list (5.7.9) names each attribute and the types that
/// carry it; counts and attribute types are for the single attribute (5.7.10).
fn attribute_json(
    name: &str,
    info: &harbor_engine::AttributeInfo,
    c: &dyn Fn(&str) -> String,
    with_counts: bool,
) -> Value {
    let mut v = json!({
        "id": name,
        "type": "Attribute",
        "attributeName": c(name),
        "typeNames": info.types.iter().map(|t| c(t)).collect::<Vec<_>>(),
    });
    if with_counts {
        v["attributeCount"] = json!(info.count);
        v["attributeTypes"] = json!(info.kinds.iter().collect::<Vec<_>>());
    }
    v
}

/// GET /attributes — 5.7.8 / 5.7.9.
pub async fn attributes(
    State(s): State<SharedState>,
    seen: Seen,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::DISCOVERY_LIST)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let details = p.flag("details")?;
    let attrs = seen.discovery(|v| s.engine.attributes(&tenant, v))?;
    let c = |i: &str| ld.ctx.compact_iri(i);
    let body = if details {
        Value::Array(
            attrs
                .iter()
                .map(|(a, info)| attribute_json(a, info, &c, false))
                .collect(),
        )
    } else {
        json!({
            "id": list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": attrs.keys().map(|a| c(a)).collect::<Vec<_>>(),
        })
    };
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        body,
        HeaderMap::new(),
    ))
}

/// GET /attributes/{attr} — 5.7.10.
pub async fn attribute_info(
    State(s): State<SharedState>,
    seen: Seen,
    Path(attr): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    Params::parse(raw.as_deref()).only(allowed::DISCOVERY_ONE)?;
    let tenant = negotiate::tenant(&headers)?;
    let media = negotiate::accept(&headers, false)?;
    let ld = body::context_from_link(&s, &headers).await?;
    let expanded = ld.ctx.expand_term(&attr);
    let attrs = seen.discovery(|v| s.engine.attributes(&tenant, v))?;
    let info = attrs
        .get(&expanded)
        .ok_or_else(|| NgsiError::not_found(format!("no entity has attribute {attr}")))?;
    let c = |i: &str| ld.ctx.compact_iri(i);
    Ok(reply::json(
        StatusCode::OK,
        media,
        &ld,
        attribute_json(&expanded, info, &c, true),
        HeaderMap::new(),
    ))
}
