//! Building responses: entity rendering through `harbor-jsonld`, media types, the `@context`
//! in a Link header (JSON) or in the body (JSON-LD), `pick` / `omit`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_jsonld::render::{render_entity, render_geojson_feature, RenderOptions};
use harbor_model::Entity;
use serde_json::{Map, Value};

use crate::body::{core_url, Ld};
use crate::negotiate::{Media, CONTEXT_REL};
use crate::query::View;

/// Renders one entity as the view asks.
pub fn entity(e: &Entity, ld: &Ld, media: Media, view: &View) -> Value {
    let opts = RenderOptions {
        format: view.options.format(),
        sys_attrs: view.options.sys_attrs,
        lang: view.lang.as_deref(),
        attrs: view.attrs.as_deref(),
    };
    let mut v = if media == Media::GeoJson {
        render_geojson_feature(e, &ld.ctx, &opts, &view.geometry_property)
    } else {
        render_entity(e, &ld.ctx, &opts)
    };
    let target = if media == Media::GeoJson {
        v.get_mut("properties")
    } else {
        Some(&mut v)
    };
    if let Some(Value::Object(o)) = target {
        project(o, view);
    }
    v
}

/// Applies `pick` / `omit` to a rendered entity.
fn project(o: &mut Map<String, Value>, view: &View) {
    if let Some(pick) = &view.pick {
        o.retain(|k, _| pick.iter().any(|p| p == k));
    }
    if let Some(omit) = &view.omit {
        o.retain(|k, _| !omit.iter().any(|p| p == k));
    }
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
