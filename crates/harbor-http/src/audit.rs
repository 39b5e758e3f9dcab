//! The audit trail at the API: every request that changes something (any method but GET,
//! HEAD and OPTIONS, under `/ngsi-ld/v1` and `/admin`) is recorded with who asked, the tenant,
//! what and the answer's status, refusals included. `GET /admin/v1/audit` reads it back.

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use harbor_auth::{AuditEntry, Identity};
use harbor_model::NgsiError;
use serde_json::Value;

use crate::error::ApiError;
use crate::{reply, SharedState};

/// Entries one read returns, at most.
const MAX_PAGE: usize = 1_000;

/// Whether a request is recorded.
pub fn audited(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && (path.starts_with("/ngsi-ld/v1/") || path.starts_with("/admin/"))
}

/// Changes of keys and policies are on disk in the log before they are answered.
fn recorded_at_once(path: &str) -> bool {
    path.starts_with("/admin/v1/keys") || path.starts_with("/admin/v1/policies")
}

fn tenant_of(headers: &HeaderMap) -> String {
    headers
        .get(crate::edge::TENANT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Records a request the auth guard refused.
pub fn refused(
    s: &SharedState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    who: &str,
    status: StatusCode,
) {
    let Some(log) = &s.audit else {
        return;
    };
    if audited(method, path) {
        log.record(AuditEntry {
            id: String::new(),
            at: harbor_model::time::now(),
            who: who.to_string(),
            tenant: tenant_of(headers),
            action: format!("{method} {path}"),
            status: status.as_u16(),
            detail: Some("refused".into()),
        });
    }
}

/// Middleware, inside the auth guard: records what the request did.
pub async fn trail(State(s): State<SharedState>, req: Request, next: Next) -> Response {
    let Some(log) = s.audit.clone() else {
        return next.run(req).await;
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if !audited(&method, &path) {
        return next.run(req).await;
    }
    let who = req
        .extensions()
        .get::<Identity>()
        .map_or_else(|| "anonymous".to_string(), Identity::name);
    let tenant = tenant_of(req.headers());
    let resp = next.run(req).await;
    let entry = AuditEntry {
        id: String::new(),
        at: harbor_model::time::now(),
        who,
        tenant,
        action: format!("{method} {path}"),
        status: resp.status().as_u16(),
        detail: None,
    };
    if recorded_at_once(&path) {
        if let Err(e) = log.record_now(entry).await {
            tracing::error!(error = %e, action = %format!("{method} {path}"), "an administration change could not be audited");
        }
    } else {
        log.record(entry);
    }
    resp
}

/// GET /admin/v1/audit[?after=ID|since=TIME][&tenant=T][&who=W][&limit=N]: entries, oldest
/// first. A tenant admin sees its own tenant's only. When the page is full, a `Link` header
/// names the next one.
pub async fn list(
    State(s): State<SharedState>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let run = async {
        let Some(log) = &s.audit else {
            return Err(ApiError(NgsiError::new(
                harbor_model::ErrorKind::OperationNotSupported,
                "this broker keeps no audit log",
            )));
        };
        let p = crate::params::Params::parse(raw.as_deref());
        p.only(&["after", "since", "tenant", "who", "limit"])?;
        let limit = match p.get("limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    NgsiError::bad_request(format!(
                        "parameter \"limit\": {l:?} is not a number from 1 to {MAX_PAGE}"
                    ))
                })?,
        };
        let after = match (p.get("after"), p.get("since")) {
            (Some(a), None) => Some(a.to_string()),
            (None, Some(t)) => Some(harbor_auth::audit::cursor_at(
                harbor_model::time::parse(t).ok_or_else(|| {
                    NgsiError::bad_request(format!(
                        "parameter \"since\": {t:?} is not a DateTime such as 2026-12-03T07:00:00Z"
                    ))
                })?,
            )),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ApiError(NgsiError::bad_request(
                    "give \"after\" or \"since\", not both",
                )))
            }
        };
        let operator = identity
            .as_ref()
            .is_none_or(|Extension(i)| i.grants.is_operator());
        let tenant = if operator {
            p.get("tenant").map(str::to_string)
        } else {
            Some(tenant_of(&headers))
        };
        let who = p.get("who");
        // Filters can thin a page out: read on until it is full or the log ends.
        let mut out = Vec::new();
        let mut cursor = after;
        let mut full = false;
        for _ in 0..16 {
            let page = log
                .page(cursor.as_deref(), MAX_PAGE)
                .await
                .map_err(|e| NgsiError::internal(e.to_string()))?;
            let ended = page.len() < MAX_PAGE;
            for e in page {
                cursor = Some(e.id.clone());
                let keep = tenant.as_ref().is_none_or(|t| e.tenant == *t)
                    && who.is_none_or(|w| e.who == w);
                if keep {
                    out.push(e);
                    if out.len() == limit {
                        full = true;
                        break;
                    }
                }
            }
            if full || ended {
                break;
            }
        }
        let mut resp = reply::plain(
            StatusCode::OK,
            Value::Array(
                out.iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect(),
            ),
        );
        if full {
            if let Some(last) = out.last() {
                let mut next = format!("/admin/v1/audit?after={}&limit={limit}", last.id);
                for name in ["tenant", "who"] {
                    if let Some(v) = p.get(name) {
                        let v: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
                        next.push_str(&format!("&{name}={v}"));
                    }
                }
                if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
                    resp.headers_mut().insert(axum::http::header::LINK, v);
                }
            }
        }
        Ok(resp)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
