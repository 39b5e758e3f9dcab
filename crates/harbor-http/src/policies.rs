//! `/admin/v1/policies`: the access policies, as durable, validated and versioned resources.
//! Operators manage every tenant's; a tenant admin manages its own tenant's, which it names
//! with `NGSILD-Tenant` (the guard has checked that it may).
//!
//! Entity types, attribute names and the `geoproperty` of an area are expanded with the
//! request's `@context` (the `Link` header, else the core context) before they are stored,
//! so a policy means the same whatever context a later reader holds.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use harbor_auth::policy::PutError;
use harbor_auth::{AuthError, Identity, PolicyBook, PolicyDoc};
use harbor_model::{ErrorKind, NgsiError, Tenant};
use serde_json::Value;

use crate::auth::refusal;
use crate::error::ApiError;
use crate::{body, reply, SharedState};

/// Largest body of a policy.
const MAX_BODY: usize = 256 * 1024;

/// Why a policy request fails: an NGSI-LD error, or one of the auth layer's.
enum Failure {
    Api(ApiError),
    Auth(AuthError),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Auth(e) => refusal(&e),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

fn book(s: &SharedState) -> Result<&std::sync::Arc<PolicyBook>, Failure> {
    s.policies.as_ref().ok_or_else(|| {
        Failure::Auth(AuthError::Unavailable(
            "this broker keeps no access policies".into(),
        ))
    })
}

/// The tenant a tenant admin is confined to; `None` for an operator (or without auth).
fn confined(
    identity: &Option<Extension<Identity>>,
    headers: &HeaderMap,
) -> Result<Option<Tenant>, Failure> {
    let Some(Extension(who)) = identity else {
        return Ok(None);
    };
    if who.grants.is_operator() {
        return Ok(None);
    }
    crate::negotiate::tenant(headers)
        .map(Some)
        .map_err(|e| Failure::Api(ApiError(e)))
}

fn put_error(e: PutError) -> Failure {
    let kind = match &e {
        PutError::Invalid(_) => ErrorKind::BadRequestData,
        PutError::Exists(_) => ErrorKind::AlreadyExists,
        PutError::NotFound(_) => ErrorKind::ResourceNotFound,
        PutError::Conflict(_) => ErrorKind::Conflict,
        PutError::Unavailable(why) => return Failure::Auth(AuthError::Unavailable(why.clone())),
    };
    Failure::Api(ApiError(NgsiError::new(kind, e.to_string())))
}

fn invalid(why: impl Into<String>) -> Failure {
    Failure::Api(ApiError(NgsiError::bad_request(why)))
}

/// Reads a policy body and expands its names.
async fn read_doc(
    s: &SharedState,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<PolicyDoc, Failure> {
    if bytes.len() > MAX_BODY {
        return Err(Failure::Api(ApiError(NgsiError::new(
            ErrorKind::PayloadTooLarge,
            format!("a policy is at most {MAX_BODY} bytes"),
        ))));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let mut doc: PolicyDoc = serde_json::from_value(value)
        .map_err(|e| invalid(format!("the body is not a policy: {e}")))?;
    let ld = body::context_from_link(s, headers).await?;
    let expand = |n: &String| ld.ctx.expand_term(n);
    if let Some(attrs) = &mut doc.attrs {
        *attrs = attrs.iter().map(expand).collect();
    }
    for sel in &mut doc.entities {
        if let Some(types) = &mut sel.types {
            *types = types.iter().map(expand).collect();
        }
        if let Some(area) = &mut sel.area {
            area.geoproperty = area.geoproperty.as_ref().map(expand);
        }
    }
    Ok(doc)
}

fn check_tenant(doc: &PolicyDoc, only: &Option<Tenant>) -> Result<(), Failure> {
    match only {
        Some(t) if t.as_str() != doc.tenant => Err(Failure::Auth(AuthError::Forbidden(format!(
            "a tenant admin of {:?} manages only that tenant's policies, not {:?}'s",
            t.as_str(),
            doc.tenant
        )))),
        _ => Ok(()),
    }
}

fn by(identity: &Option<Extension<Identity>>) -> String {
    identity
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |Extension(i)| i.name())
}

fn shown(doc: &PolicyDoc) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// POST /admin/v1/policies: creates a policy (version 1).
pub async fn create(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let run = async {
        let book = book(&s)?;
        let only = confined(&identity, &headers)?;
        let doc = read_doc(&s, &headers, &bytes).await?;
        check_tenant(&doc, &only)?;
        let doc = book
            .put(doc, true, &by(&identity))
            .await
            .map_err(put_error)?;
        let mut resp = reply::plain(StatusCode::CREATED, shown(&doc));
        if let Ok(v) = HeaderValue::from_str(&format!("/admin/v1/policies/{}", doc.id)) {
            resp.headers_mut().insert(axum::http::header::LOCATION, v);
        }
        Ok::<_, Failure>(resp)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// GET /admin/v1/policies[?tenant=T]: the policies, by id.
pub async fn list(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let run = async {
        let book = book(&s)?;
        let only = confined(&identity, &headers)?;
        let asked = crate::params::Params::parse(raw.as_deref())
            .get("tenant")
            .map(Tenant::parse)
            .transpose()
            .map_err(|e| invalid(format!("parameter \"tenant\": {}", e.detail)))?;
        let tenant = only.or(asked);
        let docs: Vec<Value> = book.list(tenant.as_ref()).iter().map(shown).collect();
        Ok::<_, Failure>(reply::plain(StatusCode::OK, Value::Array(docs)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// GET /admin/v1/policies/{id}.
pub async fn retrieve(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let book = book(&s)?;
        let only = confined(&identity, &headers)?;
        let p = book
            .get(&id)
            .filter(|p| only.as_ref().is_none_or(|t| p.tenant() == t))
            .ok_or_else(|| put_error(PutError::NotFound(format!("no policy {id}"))))?;
        Ok::<_, Failure>(reply::plain(StatusCode::OK, shown(&p.doc)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// PUT /admin/v1/policies/{id}: replaces a policy; its version goes up by one. A body that
/// names a `version` replaces only that version (else 409).
pub async fn replace(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let run = async {
        let book = book(&s)?;
        let only = confined(&identity, &headers)?;
        let doc = read_doc(&s, &headers, &bytes).await?;
        if doc.id != id {
            return Err(invalid(format!(
                "id: the body names policy {:?}, the path {id:?}",
                doc.id
            )));
        }
        check_tenant(&doc, &only)?;
        if let Some(current) = book.get(&id) {
            if only.as_ref().is_some_and(|t| current.tenant() != t) {
                return Err(put_error(PutError::NotFound(format!("no policy {id}"))));
            }
        }
        let doc = book
            .put(doc, false, &by(&identity))
            .await
            .map_err(put_error)?;
        Ok::<_, Failure>(reply::plain(StatusCode::OK, shown(&doc)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// DELETE /admin/v1/policies/{id}.
pub async fn delete(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let book = book(&s)?;
        let only = confined(&identity, &headers)?;
        let mine = book
            .get(&id)
            .is_some_and(|p| only.as_ref().is_none_or(|t| p.tenant() == t));
        if !mine {
            return Err(put_error(PutError::NotFound(format!("no policy {id}"))));
        }
        book.delete(&id).await.map_err(put_error)?;
        Ok::<_, Failure>(reply::no_content())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
