//! `/admin/v1/keys`: API keys for devices and partner systems — created (the key is shown in
//! that answer only), listed without secrets, and revoked. Operators only (see `auth`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use harbor_auth::{ApiKey, AuthError, Grants, Identity, KeyRing};
use serde_json::{json, Value};

use crate::auth::refusal;
use crate::{reply, SharedState};

/// Largest body of a key creation.
const MAX_BODY: usize = 16 * 1024;

fn ring(s: &SharedState) -> Result<&std::sync::Arc<KeyRing>, AuthError> {
    s.keys
        .as_ref()
        .ok_or_else(|| AuthError::Unavailable("this broker keeps no API keys".into()))
}

/// POST /admin/v1/keys `{"name": "...", "grants": ["writer@sg-lta", ...]}`.
pub async fn create(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    body: Bytes,
) -> Response {
    let ring = match ring(&s) {
        Ok(r) => r,
        Err(e) => return refusal(&e),
    };
    let invalid = |why: String| refusal(&AuthError::Invalid(why));
    if body.len() > MAX_BODY {
        return invalid(format!("the body is larger than {MAX_BODY} bytes"));
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return invalid("the body must be a JSON object with \"name\" and \"grants\"".into());
    };
    let Some(name) = doc.get("name").and_then(Value::as_str) else {
        return invalid("name: a string is required".into());
    };
    let partner = match doc.get("partner") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return invalid("partner: a string such as \"kl-city\" is expected".into()),
    };
    // A partner's key may come without grants: its partner's policies say what it may do.
    let grants: Vec<&str> = match doc.get("grants").and_then(Value::as_array) {
        Some(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        None if partner.is_some() && doc.get("grants").is_none() => Vec::new(),
        _ => {
            return invalid("grants: a list of grants such as \"reader@sg-lta\" is required".into())
        }
    };
    let grants = match Grants::parse(&grants) {
        Ok(g) => g,
        Err(why) => return invalid(format!("grants: {why}")),
    };
    let by = identity.map(|Extension(i)| i.name());
    match ring.create(name, grants, partner, by).await {
        Ok((key, text)) => {
            let mut body = key.listing();
            body["key"] = json!(text);
            reply::plain(StatusCode::CREATED, body)
        }
        Err(e) => refusal(&e),
    }
}

/// GET /admin/v1/keys: every key, without secrets.
pub async fn list(State(s): State<SharedState>) -> Response {
    match ring(&s) {
        Ok(ring) => reply::plain(
            StatusCode::OK,
            Value::Array(ring.list().iter().map(ApiKey::listing).collect()),
        ),
        Err(e) => refusal(&e),
    }
}

/// DELETE /admin/v1/keys/{id}: revokes the key; it stops working at once.
pub async fn revoke(State(s): State<SharedState>, Path(id): Path<String>) -> Response {
    let ring = match ring(&s) {
        Ok(r) => r,
        Err(e) => return refusal(&e),
    };
    match ring.revoke(&id).await {
        Ok(key) => reply::plain(StatusCode::OK, key.listing()),
        Err(e) => refusal(&e),
    }
}
