//! Building responses: entity rendering through `harbor-jsonld`, media types, the `@context`
//! in a Link header (JSON) or in the body (JSON-LD, GeoJSON), `datasetId` selection,
//! `pick` / `omit` (4.21) and Linked Entities shown inline or flat (4.5.23).

use std::borrow::Cow;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_engine::Joined;
use harbor_jsonld::render::{
    attach_linked, render_entity, render_geojson_feature, EntityJson, Format, RenderOptions,
};
use harbor_model::{Entity, NgsiError};
use harbor_query::Projection;
use serde_json::Value;

use crate::body::{core_url, Ld};
use crate::error::{ApiError, ApiResult};
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
    let opts = render_options(view, attrs);
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

/// How a view renders its entities, showing `attrs`.
fn render_options<'a>(view: &'a View, attrs: Option<&'a [String]>) -> RenderOptions<'a> {
    RenderOptions {
        format: view.options.format(),
        sys_attrs: view.options.sys_attrs,
        lang: view.lang.as_deref(),
        attrs,
    }
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

/// A response body: a JSON tree, or JSON already written (with its `@context` in place).
pub enum Payload {
    Tree(Value),
    Written(Vec<u8>),
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Tree(v)
    }
}

/// A JSON response in the negotiated media type, carrying the request's `@context`.
pub fn json(
    status: StatusCode,
    media: Media,
    ld: &Ld,
    body: impl Into<Payload>,
    extra: HeaderMap,
) -> Response {
    let mut headers = extra;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    if !context_in_body(media, ld) {
        let url = ld.echo.as_str().unwrap_or(core_url());
        if let Ok(v) = HeaderValue::from_str(&link_value(url)) {
            headers.insert(header::LINK, v);
        }
    }
    let bytes = match body.into() {
        Payload::Written(bytes) => bytes,
        Payload::Tree(mut body) => {
            if context_in_body(media, ld) {
                match &mut body {
                    Value::Object(o) => {
                        o.insert("@context".into(), ld.echo.clone());
                    }
                    // A JSON-LD array: every element carries it.
                    Value::Array(items) if media == Media::JsonLd => {
                        for item in items {
                            if let Value::Object(o) = item {
                                o.insert("@context".into(), ld.echo.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
            to_bytes(&body)
        }
    };
    (status, headers, bytes).into_response()
}

/// Whether the `@context` goes in the body (JSON-LD, and GeoJSON unless asked for with
/// `Prefer: body=json`) or in a Link header (JSON, and that GeoJSON).
fn context_in_body(media: Media, ld: &Ld) -> bool {
    match media {
        Media::JsonLd => true,
        Media::GeoJson => ld.geo_body_context,
        Media::Json => false,
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // A `Value` always serialises: its map keys are strings.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A listing of entities written straight into its body, each with the `@context` where
/// [`json`] puts it: an array, or a GeoJSON FeatureCollection. `None` when `pick` / `omit`
/// must edit the rendered members, which needs the tree ([`entity`]).
pub fn listing(
    entities: &[std::sync::Arc<Entity>],
    ld: &Ld,
    media: Media,
    view: &View,
) -> ApiResult<Option<Vec<u8>>> {
    let Some(opts) = streamable(view) else {
        return Ok(None);
    };
    let geo = media == Media::GeoJson;
    // In a JSON-LD array every entity carries the `@context`; a FeatureCollection carries it once.
    let each = (media == Media::JsonLd).then_some(&ld.echo);
    let mut out = Vec::with_capacity(64 + entities.len() * 1024);
    out.extend_from_slice(if geo {
        br#"{"type":"FeatureCollection","features":["#.as_slice()
    } else {
        b"["
    });
    for (i, e) in entities.iter().enumerate() {
        if i % 64 == 63 {
            crate::shed::within_budget()?;
        }
        if i > 0 {
            out.push(b',');
        }
        write_entity(&mut out, e, ld, media, view, &opts, each)?;
    }
    out.push(b']');
    if geo {
        if context_in_body(media, ld) {
            out.extend_from_slice(br#","@context":"#);
            write(&mut out, &ld.echo)?;
        }
        out.push(b'}');
    }
    Ok(Some(out))
}

/// One entity written straight into its body, the `@context` where [`json`] puts it; `None`
/// when `pick` / `omit` need the tree ([`entity`]).
pub fn written(e: &Entity, ld: &Ld, media: Media, view: &View) -> ApiResult<Option<Vec<u8>>> {
    let Some(opts) = streamable(view) else {
        return Ok(None);
    };
    let context = context_in_body(media, ld).then_some(&ld.echo);
    let mut out = Vec::with_capacity(1024);
    write_entity(&mut out, e, ld, media, view, &opts, context)?;
    Ok(Some(out))
}

/// The render options of a view whose entities can be written as they are rendered: all
/// but `pick` / `omit`, which edit the rendered members.
fn streamable(view: &View) -> Option<RenderOptions<'_>> {
    (view.pick.is_none() && view.omit.is_none())
        .then(|| render_options(view, view.attrs.as_deref()))
}

fn write_entity(
    out: &mut Vec<u8>,
    e: &Entity,
    ld: &Ld,
    media: Media,
    view: &View,
    opts: &RenderOptions,
    context: Option<&Value>,
) -> ApiResult<()> {
    let e = select_datasets(e, view.datasets.as_deref());
    let mut rendering = EntityJson::new(&e, &ld.ctx, opts);
    if media == Media::GeoJson {
        rendering = rendering.feature(&view.geometry_property);
    }
    if let Some(context) = context {
        rendering = rendering.with_context(context);
    }
    write(out, &rendering)
}

fn write(out: &mut Vec<u8>, v: &impl serde::Serialize) -> ApiResult<()> {
    serde_json::to_writer(out, v)
        .map_err(|e| ApiError(NgsiError::internal(format!("rendering a response: {e}"))))
}

/// A plain JSON response with no `@context` (results of batch and update operations).
pub fn plain(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        to_bytes(&body),
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
    body: impl Into<Payload>,
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
    body: impl Into<Payload>,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use harbor_jsonld::Context;
    use harbor_model::{time, AttrValue, Attribute};
    use serde_json::json;

    use super::*;

    fn entity(n: usize) -> Arc<Entity> {
        let at = time::parse("2024-01-01T12:00:00Z").unwrap();
        let attr = |v| Attribute::new(v, at);
        let mut other = attr(AttrValue::Property(json!(n + 1)));
        other.dataset_id = Some("urn:ds:2".into());
        let mut observed = attr(AttrValue::Property(json!("free")));
        observed.observed_at = Some(at);
        let core = "https://uri.etsi.org/ngsi-ld/";
        let d = "https://uri.etsi.org/ngsi-ld/default-context/";
        let attrs = [
            (
                format!("{d}availableSpotNumber"),
                vec![attr(AttrValue::Property(json!(n))), other],
            ),
            (format!("{d}status"), vec![observed]),
            (
                format!("{core}location"),
                vec![attr(AttrValue::GeoProperty(
                    json!({"type": "Point", "coordinates": [103.8, 1.3]}),
                ))],
            ),
            (
                format!("{d}refOperator"),
                vec![attr(AttrValue::Relationship {
                    object: json!("urn:ngsi-ld:Company:1"),
                    object_type: None,
                })],
            ),
        ];
        Arc::new(Entity {
            id: format!("urn:ngsi-ld:OffStreetParking:{n}"),
            types: vec![format!("{d}OffStreetParking")],
            scopes: vec!["/Singapore".into()],
            attrs: attrs.into_iter().collect(),
            created_at: at,
            modified_at: at,
            expires_at: None,
        })
    }

    async fn body(resp: Response) -> (Option<HeaderValue>, Vec<u8>) {
        let link = resp.headers().get(header::LINK).cloned();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
        (link, bytes.unwrap().to_vec())
    }

    /// Entities written straight into the body give, byte for byte, what rendering them into
    /// a tree and serialising it gives: in every representation, media type and placement of
    /// the `@context`, for a listing and for one entity.
    #[tokio::test]
    async fn written_bodies_are_the_rendered_trees() {
        let entities: Vec<_> = (0..3).map(entity).collect();
        let queries = [
            "",
            "options=keyValues",
            "options=concise",
            "options=sysAttrs",
            "options=concise,sysAttrs",
            "attrs=status,location",
            "datasetId=urn:ds:2",
            "lang=en",
        ];
        for geo_body_context in [true, false] {
            let ld = Ld {
                ctx: Context::core(),
                echo: Value::String(core_url().into()),
                geo_body_context,
            };
            for media in [Media::Json, Media::JsonLd, Media::GeoJson] {
                for q in queries {
                    let p = Params::parse(Some(q));
                    let view = crate::query::view(&p, &ld.ctx, media).unwrap();
                    let case = format!("{media:?} {q:?} geo_body_context={geo_body_context}");

                    let items: Vec<Value> = entities
                        .iter()
                        .filter_map(|e| entity_tree(e, &ld, media, &view))
                        .collect();
                    let tree = if media == Media::GeoJson {
                        json!({"type": "FeatureCollection", "features": items})
                    } else {
                        Value::Array(items)
                    };
                    let written = listing(&entities, &ld, media, &view).unwrap().unwrap();
                    let want = body(json(StatusCode::OK, media, &ld, tree, HeaderMap::new()));
                    let got = body(json(
                        StatusCode::OK,
                        media,
                        &ld,
                        Payload::Written(written),
                        HeaderMap::new(),
                    ));
                    let (want, got) = (want.await, got.await);
                    assert_eq!(
                        String::from_utf8_lossy(&got.1),
                        String::from_utf8_lossy(&want.1),
                        "listing, {case}"
                    );
                    assert_eq!(got.0, want.0, "Link header, {case}");

                    let one = entity_tree(&entities[0], &ld, media, &view).unwrap();
                    let written = written_one(&entities[0], &ld, media, &view);
                    let want = body(json(StatusCode::OK, media, &ld, one, HeaderMap::new()));
                    let got = body(json(StatusCode::OK, media, &ld, written, HeaderMap::new()));
                    let (want, got) = (want.await, got.await);
                    assert_eq!(
                        String::from_utf8_lossy(&got.1),
                        String::from_utf8_lossy(&want.1),
                        "one entity, {case}"
                    );
                }
            }
        }
    }

    fn entity_tree(e: &Entity, ld: &Ld, media: Media, view: &View) -> Option<Value> {
        super::entity(e, ld, media, view)
    }

    fn written_one(e: &Entity, ld: &Ld, media: Media, view: &View) -> Payload {
        Payload::Written(written(e, ld, media, view).unwrap().unwrap())
    }

    /// `pick` and `omit` edit the rendered members: those views take the tree.
    #[test]
    fn projections_take_the_tree() {
        let ld = Ld {
            ctx: Context::core(),
            echo: Value::String(core_url().into()),
            geo_body_context: true,
        };
        for q in ["pick=id,status", "omit=status"] {
            let view = crate::query::view(&Params::parse(Some(q)), &ld.ctx, Media::Json).unwrap();
            assert!(listing(&[entity(0)], &ld, Media::Json, &view)
                .unwrap()
                .is_none());
            assert!(written(&entity(0), &ld, Media::Json, &view)
                .unwrap()
                .is_none());
        }
    }
}
