//! Building responses: entity rendering through `harbor-jsonld`, media types, the `@context`
//! in a Link header (JSON) or in the body (JSON-LD, GeoJSON), `datasetId` selection,
//! `pick` / `omit` (4.21) and Linked Entities shown inline or flat (4.5.23).

use std::borrow::Cow;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_engine::Joined;
use harbor_jsonld::render::{
    attach_linked, render_entity, render_geojson_feature, Format, RenderOptions,
};
use harbor_model::Entity;
use harbor_query::Projection;
use serde_json::Value;

use crate::body::{core_url, Ld};
use crate::negotiate::{Media, CONTEXT_REL};
use crate::params::Params;
use crate::query::{JoinKind, Page, View};

/// Renders one entity as the view asks; `None` when `pick` / `omit` leave nothing of it.
pub fn entity(e: &Entity, ld: &Ld, media: Media, view: &View) -> Option<Value> {
    render(
        e,
        ld,
        media,
        view,
        view.attrs.as_deref(),
        view.pick.as_ref(),
        view.omit.as_ref(),
    )
}

/// Renders entities whose Relationships were followed (`join`): inline, one value per root;
/// flat, the roots and then every linked Entity once.
pub fn joined(roots: &[Joined], ld: &Ld, media: Media, view: &View, kind: JoinKind) -> Vec<Value> {
    match kind {
        JoinKind::Inline => roots
            .iter()
            .filter_map(|j| inline(j, ld, media, view, true))
            .collect(),
        JoinKind::Flat => Joined::flatten(roots)
            .into_iter()
            .enumerate()
            .filter_map(|(i, j)| {
                let attrs = if i < roots.len() {
                    view.attrs.as_deref()
                } else {
                    None
                };
                render(
                    &j.entity,
                    ld,
                    media,
                    view,
                    attrs,
                    j.pick.as_ref(),
                    j.omit.as_ref(),
                )
            })
            .collect(),
    }
}

fn inline(j: &Joined, ld: &Ld, media: Media, view: &View, root: bool) -> Option<Value> {
    let attrs = if root { view.attrs.as_deref() } else { None };
    let mut v = render(
        &j.entity,
        ld,
        media,
        view,
        attrs,
        j.pick.as_ref(),
        j.omit.as_ref(),
    )?;
    let key_values = view.options.format() == Format::KeyValues;
    let members = match media {
        Media::GeoJson => v.get_mut("properties").and_then(Value::as_object_mut),
        _ => v.as_object_mut(),
    };
    let Some(members) = members else {
        return Some(v);
    };
    for link in &j.links {
        let Some(target) = inline(&link.target, ld, media, view, false) else {
            continue;
        };
        if let Some(member) = members.get_mut(&ld.ctx.compact_iri(&link.attr)) {
            attach_linked(member, &link.object, target, key_values);
        }
    }
    Some(v)
}

fn render(
    e: &Entity,
    ld: &Ld,
    media: Media,
    view: &View,
    attrs: Option<&[String]>,
    pick: Option<&Projection>,
    omit: Option<&Projection>,
) -> Option<Value> {
    let e = select_datasets(e, view.datasets.as_deref());
    let opts = RenderOptions {
        format: view.options.format(),
        sys_attrs: view.options.sys_attrs,
        lang: view.lang.as_deref(),
        attrs,
    };
    let mut v = if media == Media::GeoJson {
        render_geojson_feature(&e, &ld.ctx, &opts, &view.geometry_property)
    } else {
        render_entity(&e, &ld.ctx, &opts)
    };
    let target = if media == Media::GeoJson {
        v.get_mut("properties")
    } else {
        Some(&mut v)
    };
    if let Some(Value::Object(o)) = target {
        for p in [pick, omit].into_iter().flatten() {
            o.retain(|k, _| p.keeps(k));
        }
        if o.is_empty() && (pick.is_some() || omit.is_some()) {
            return None;
        }
    }
    Some(v)
}

/// The entity with only the attribute instances whose `datasetId` is listed (`None`: the
/// default instance).
fn select_datasets<'a>(e: &'a Entity, datasets: Option<&[Option<String>]>) -> Cow<'a, Entity> {
    let Some(keep) = datasets else {
        return Cow::Borrowed(e);
    };
    let mut copy = e.clone();
    for list in copy.attrs.values_mut() {
        list.retain(|a| keep.contains(&a.dataset_id));
    }
    copy.attrs.retain(|_, l| !l.is_empty());
    Cow::Owned(copy)
}

/// The Link header value naming a context URL.
pub fn link_value(url: &str) -> String {
    format!("<{url}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\"")
}

/// A JSON response in the negotiated media type, carrying the request's `@context`.
pub fn json(
    status: StatusCode,
    media: Media,
    ld: &Ld,
    mut body: Value,
    extra: HeaderMap,
) -> Response {
    let mut headers = extra;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    match media {
        Media::JsonLd => match &mut body {
            Value::Object(o) => {
                o.insert("@context".into(), ld.echo.clone());
            }
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(o) = item {
                        o.insert("@context".into(), ld.echo.clone());
                    }
                }
            }
            _ => {}
        },
        Media::GeoJson if ld.geo_body_context => {
            if let Value::Object(o) = &mut body {
                o.insert("@context".into(), ld.echo.clone());
            }
        }
        // JSON, and GeoJSON asked for with `Prefer: body=json`: the context goes in a Link header.
        Media::Json | Media::GeoJson => {
            let url = ld.echo.as_str().unwrap_or(core_url());
            if let Ok(v) = HeaderValue::from_str(&link_value(url)) {
                headers.insert(header::LINK, v);
            }
        }
    }
    (status, headers, body.to_string()).into_response()
}

/// A plain JSON response with no `@context` (results of batch and update operations).
pub fn plain(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// One page of a listing: `body` (an array, or a GeoJSON FeatureCollection), with
/// `NGSILD-Results-Count` when asked and `next` / `prev` links over `total` results (6.3.13).
pub fn page(
    path: &str,
    p: &Params,
    media: Media,
    ld: &Ld,
    body: Value,
    total: usize,
    page: Page,
) -> Response {
    let more = page.offset.saturating_add(page.limit) < total;
    paged(path, p, media, ld, body, Some(total), more, page)
}

/// One page of a listing whose total may be unknown: `more` says whether a next page has
/// anything, `total` is the count sent when the request asked for it.
#[allow(clippy::too_many_arguments)]
pub fn paged(
    path: &str,
    p: &Params,
    media: Media,
    ld: &Ld,
    body: Value,
    total: Option<usize>,
    more: bool,
    page: Page,
) -> Response {
    let Page {
        limit,
        offset,
        count,
    } = page;
    let mut h = HeaderMap::new();
    if let (true, Some(total)) = (count, total) {
        h.insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    let mut links = Vec::new();
    if limit > 0 && more {
        links.push(format!(
            "<{path}?{}>; rel=\"next\"; type=\"{}\"",
            p.with_page(offset + limit, limit),
            media.as_str()
        ));
    }
    if offset > 0 && limit > 0 {
        links.push(format!(
            "<{path}?{}>; rel=\"prev\"; type=\"{}\"",
            p.with_page(offset.saturating_sub(limit), limit),
            media.as_str()
        ));
    }
    let mut resp = json(StatusCode::OK, media, ld, body, h);
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            resp.headers_mut().append(header::LINK, v);
        }
    }
    resp
}
