//! Reading request bodies and their `@context`: size and JSON checks, the Link-header /
//! body-`@context` rules of 6.3.5, and resolution into a compiled context.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use harbor_jsonld::Context;
use harbor_model::{ErrorKind, NgsiError};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::negotiate::{self, BodyKind};
use crate::AppState;

/// The `@context` of a request: compiled, and as it is echoed in responses.
#[derive(Clone)]
pub struct Ld {
    pub ctx: Arc<Context>,
    /// The `@context` value a response carries (the Link URL, the body's `@context`, or core).
    pub echo: Value,
    /// Whether a GeoJSON response carries the `@context` in its body (the default) rather
    /// than in a Link header (`Prefer: body=json`, 6.3.6).
    pub geo_body_context: bool,
}

impl Ld {
    fn new(ctx: Arc<Context>, echo: Value) -> Ld {
        Ld {
            ctx,
            echo,
            geo_body_context: true,
        }
    }

    fn core() -> Ld {
        Ld::new(Context::core(), Value::String(core_url().into()))
    }

    /// Applies the request's `Prefer` header.
    fn preferring(mut self, headers: &HeaderMap) -> Ld {
        self.geo_body_context = !negotiate::prefers_json_body(headers);
        self
    }
}

pub fn core_url() -> &'static str {
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
}

/// The context of a request without body: from the Link header, else core.
pub async fn context_from_link(state: &AppState, headers: &HeaderMap) -> ApiResult<Ld> {
    let ld = match negotiate::link_context(headers)? {
        Some(url) => {
            let v = Value::String(url);
            let ctx = state.resolver.resolve(Some(&v)).await?;
            Ld::new(ctx, v)
        }
        None => Ld::core(),
    };
    Ok(ld.preferring(headers))
}

/// A request body, parsed.
pub struct JsonBody {
    pub value: Value,
    pub kind: BodyKind,
    /// Context of the whole request (for arrays sent as JSON-LD, each item has its own).
    pub ld: Ld,
}

/// Parses the body as JSON after the Content-Type and size checks.
pub async fn read(
    state: &AppState,
    headers: &HeaderMap,
    bytes: &Bytes,
    merge_patch: bool,
) -> ApiResult<JsonBody> {
    let kind = negotiate::content_type(headers, merge_patch)?;
    if bytes.len() > state.limits.max_body {
        return Err(ApiError(NgsiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the body has {} bytes; at most {} are accepted",
                bytes.len(),
                state.limits.max_body
            ),
        )));
    }
    if bytes.is_empty() {
        return Err(NgsiError::invalid(
            "the request has an empty body; a JSON payload is required",
        )
        .into());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| NgsiError::invalid(format!("the body is not valid JSON: {e}")))?;
    let link = negotiate::link_context(headers)?;
    let ld = match kind {
        BodyKind::JsonLd => {
            if link.is_some() {
                return Err(NgsiError::bad_request(
                    "a JSON-LD body (application/ld+json) carries its own @context; do not send a JSON-LD Link header with it",
                )
                .into());
            }
            match &value {
                Value::Object(o) => {
                    let Some(c) = o.get("@context") else {
                        return Err(NgsiError::bad_request(
                            "an application/ld+json body must contain @context",
                        )
                        .into());
                    };
                    resolve(state, c).await?
                }
                // Arrays: every item carries its own @context, checked per item.
                _ => Ld::core(),
            }
        }
        BodyKind::Json | BodyKind::MergePatch => {
            if value
                .as_object()
                .is_some_and(|o| o.contains_key("@context"))
            {
                return Err(NgsiError::bad_request(
                    "an application/json body must not contain @context: send it as application/ld+json or put the context URL in a Link header",
                )
                .into());
            }
            match link {
                Some(url) => resolve(state, &Value::String(url)).await?,
                None => Ld::core(),
            }
        }
    };
    Ok(JsonBody {
        value,
        kind,
        ld: ld.preferring(headers),
    })
}

/// Resolves one `@context` value.
pub async fn resolve(state: &AppState, c: &Value) -> ApiResult<Ld> {
    let ctx = state.resolver.resolve(Some(c)).await?;
    Ok(Ld::new(ctx, c.clone()))
}

/// The context of one item of a batch body.
pub async fn item_context(
    state: &AppState,
    body: &JsonBody,
    item: &Value,
) -> Result<Arc<Context>, NgsiError> {
    match body.kind {
        BodyKind::JsonLd => match item.get("@context") {
            Some(c) => Ok(state.resolver.resolve(Some(c)).await?),
            None => Err(NgsiError::bad_request(
                "an application/ld+json batch item must contain @context",
            )),
        },
        _ => {
            if item.get("@context").is_some() {
                return Err(NgsiError::bad_request(
                    "an application/json batch item must not contain @context",
                ));
            }
            Ok(body.ld.ctx.clone())
        }
    }
}
