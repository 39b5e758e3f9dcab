//! The identity check every request passes when `auth` is on: the credential is read from the
//! headers and proven (`harbor-auth`), the operation is classified into the action it needs in
//! its tenant, and the request goes on with its `Identity` only when a grant allows that action.
//! `401` (with `WWW-Authenticate`) when nothing is proven, `403` when the identity lacks the
//! right, both as ProblemDetails.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use harbor_auth::{Access, Action, AuthError, Credential, Identity};
use harbor_model::Tenant;

use crate::SharedState;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: liveness and readiness.
    Nothing,
    /// Any proven identity.
    Identity,
    /// An action in the request's tenant.
    Tenant(Action),
    /// The global operator role.
    Operator,
    /// Operator, or `manage` in the tenant the request names with `NGSILD-Tenant`.
    OperatorOrTenantAdmin,
}

/// The action an operation needs, from its method and path.
pub fn needs(method: &Method, path: &str) -> Needs {
    let read = matches!(*method, Method::GET | Method::HEAD);
    if matches!(path, "/health" | "/ready") || crate::console::is_asset(path) {
        return Needs::Nothing;
    }
    if path == crate::console::EVENTS {
        return Needs::Tenant(Action::Read);
    }
    if path == "/metrics" || path.starts_with("/admin/v1/keys") {
        return Needs::Operator;
    }
    if path.starts_with("/admin/") {
        return Needs::OperatorOrTenantAdmin;
    }
    let Some(api) = path.strip_prefix("/ngsi-ld/v1/") else {
        return Needs::Identity;
    };
    let first = api.split('/').next().unwrap_or("");
    let action = match first {
        "entities" if *method == Method::DELETE && api.trim_end_matches('/') == "entities" => {
            Action::Manage
        }
        "entities" | "types" | "attributes" if read => Action::Read,
        "entities" => Action::Write,
        "types" | "attributes" => Action::Read,
        "entityOperations" if api.trim_end_matches('/') == "entityOperations/query" => Action::Read,
        "entityOperations" => Action::Write,
        "subscriptions" | "csourceSubscriptions" => Action::Subscribe,
        "csourceRegistrations" if read => Action::Read,
        "csourceRegistrations" => Action::Manage,
        "temporal" if read || api.trim_end_matches('/') == "temporal/entityOperations/query" => {
            Action::History
        }
        "temporal" => Action::Write,
        "jsonldContexts" if read => return Needs::Identity,
        "jsonldContexts" if *method == Method::DELETE => Action::Manage,
        "jsonldContexts" => Action::Write,
        _ => return Needs::Identity,
    };
    Needs::Tenant(action)
}

/// Whether a request may bring its tenant into existence (a write that stores something):
/// such requests are held to `tenants_per_identity`.
fn may_create_tenant(method: &Method, needed: Needs) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && matches!(
            needed,
            Needs::Tenant(Action::Write | Action::Subscribe | Action::Manage)
        )
}

/// The credential in the headers: `Authorization: Bearer …`, `Authorization: ApiKey …` or
/// `X-API-Key`.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let text = v
            .to_str()
            .map_err(|_| AuthError::Rejected("the Authorization header is not text".into()))?;
        let (scheme, value) = text.trim().split_once(' ').unwrap_or((text, ""));
        let value = value.trim();
        if value.is_empty() {
            return Err(AuthError::Rejected(
                "the Authorization header has no credential after its scheme".into(),
            ));
        }
        return if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Credential::Bearer(value))
        } else if scheme.eq_ignore_ascii_case("apikey") {
            Ok(Credential::ApiKey(value))
        } else {
            Err(AuthError::Rejected(format!(
                "Authorization scheme {scheme:?} is not accepted; use Bearer or ApiKey"
            )))
        };
    }
    match headers.get("x-api-key") {
        Some(v) => v
            .to_str()
            .map(|s| Credential::ApiKey(s.trim()))
            .map_err(|_| AuthError::Rejected("the X-API-Key header is not text".into())),
        None => Ok(Credential::None),
    }
}

fn request_tenant(headers: &HeaderMap) -> Result<Option<Tenant>, crate::ApiError> {
    match headers.get(crate::edge::TENANT) {
        None => Ok(None),
        Some(_) => crate::negotiate::tenant(headers)
            .map(Some)
            .map_err(crate::ApiError),
    }
}

/// Whether `identity` may do what `needed` asks, in `tenant` (the default tenant when the
/// request names none).
fn permits(identity: &Identity, needed: Needs, tenant: Option<&Tenant>) -> Result<(), String> {
    let grants = &identity.grants;
    let default = Tenant::default_tenant();
    let in_tenant = tenant.unwrap_or(&default);
    let shown = |t: &Tenant| {
        if t.is_default() {
            "the default tenant".to_string()
        } else {
            format!("tenant {:?}", t.as_str())
        }
    };
    match needed {
        Needs::Nothing | Needs::Identity => Ok(()),
        Needs::Operator if grants.is_operator() => Ok(()),
        Needs::Operator => Err(format!("{} is not an operator", identity.name())),
        Needs::OperatorOrTenantAdmin if grants.is_operator() => Ok(()),
        Needs::OperatorOrTenantAdmin => match tenant {
            Some(t) if grants.allows(t, Action::Manage) => Ok(()),
            Some(t) => Err(format!("{} may not manage {}", identity.name(), shown(t))),
            None => Err(format!(
                "{} is not an operator; a tenant admin names its tenant with NGSILD-Tenant",
                identity.name()
            )),
        },
        Needs::Tenant(action) if grants.allows(in_tenant, action) => Ok(()),
        Needs::Tenant(action) => Err(format!(
            "{} may not {} in {}",
            identity.name(),
            action.as_str(),
            shown(in_tenant)
        )),
    }
}

/// The middleware: proves the identity, checks the right, and passes the request on with its
/// `Identity` in the extensions.
/// What the guard holds: the API's state and the rates per identity.
#[derive(Clone)]
pub struct Guarded {
    pub state: SharedState,
    pub rates: Option<Arc<crate::rate::Rates>>,
}

pub async fn guard(State(g): State<Guarded>, mut req: Request, next: Next) -> Response {
    let state = g.state;
    let Some(auth) = state.auth.as_ref() else {
        return next.run(req).await;
    };
    let needed = needs(req.method(), req.uri().path());
    if needed == Needs::Nothing {
        return next.run(req).await;
    }
    let identity = match credential(req.headers()) {
        Ok(c) => auth.authenticate(c).await,
        Err(e) => Err(e),
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => return deny(&state, &req, "unauthenticated", &e),
    };
    if let Some(rates) = &g.rates {
        if let Err(wait) = rates.take(&identity.name()) {
            return too_fast(&identity, wait);
        }
    }
    let tenant = match request_tenant(req.headers()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Needs::Tenant(action) = needed else {
        if let Err(why) = permits(&identity, needed, tenant.as_ref()) {
            return deny(&state, &req, &identity.name(), &AuthError::Forbidden(why));
        }
        req.extensions_mut().insert(identity);
        return next.run(req).await;
    };
    let named = tenant.is_some();
    let in_tenant = tenant.unwrap_or_else(Tenant::default_tenant);
    let access = match &state.policies {
        Some(book) => book.access(&identity, &in_tenant, action),
        None if identity.grants.allows(&in_tenant, action) => Access::Full,
        None => Access::Denied,
    };
    match &access {
        Access::Full => {}
        Access::Denied => {
            let why = permits(&identity, needed, Some(&in_tenant))
                .err()
                .unwrap_or_else(|| format!("{} may not do this", identity.name()));
            return deny(&state, &req, &identity.name(), &AuthError::Forbidden(why));
        }
        // What is filtered and checked by entity and attribute is opened by a policy; the
        // rest (managing a tenant: purges, registrations, contexts; subscriptions to
        // registrations) needs a role.
        Access::Partial(_) if !filtered(action, req.uri().path()) => {
            let why = format!(
                "{} may not {} in {}: access policies open reading, writing, subscribing to \
                 and the history of entities, and reading registrations; this operation needs \
                 a role that grants {}",
                identity.name(),
                action.as_str(),
                shown(&in_tenant),
                action.as_str()
            );
            return deny(&state, &req, &identity.name(), &AuthError::Forbidden(why));
        }
        Access::Partial(_) => {}
    }
    // Operators set up tenants for others: only the broker's total bounds them.
    if named && may_create_tenant(req.method(), needed) && !identity.grants.is_operator() {
        if let Err(e) = state.engine.admit_tenant(&in_tenant, &identity.name()) {
            return crate::ApiError(e).into_response();
        }
    }
    if action == Action::Write && !access.is_full() {
        let rule = Arc::new(crate::access::PolicyWrite {
            access: access.clone(),
            who: identity.clone(),
        });
        req.extensions_mut().insert(access);
        req.extensions_mut().insert(identity);
        return harbor_engine::access::with_rule(rule, next.run(req)).await;
    }
    req.extensions_mut().insert(access);
    req.extensions_mut().insert(identity);
    next.run(req).await
}

/// The `429` of an identity over its rate.
fn too_fast(who: &Identity, wait_s: u64) -> Response {
    let mut resp = crate::reply::plain(
        StatusCode::TOO_MANY_REQUESTS,
        serde_json::json!({
            "type": "urn:infoharbor:errors:TooManyRequests",
            "title": "TooManyRequests",
            "status": 429,
            "detail": format!(
                "{} sends more requests than its rate allows; try again in {wait_s} s",
                who.name()
            ),
        }),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_s));
    resp
}

/// A refusal, recorded in the audit log when the request would have changed something.
fn deny(state: &SharedState, req: &Request, who: &str, e: &AuthError) -> Response {
    let resp = refusal(e);
    crate::audit::refused(
        state,
        req.method(),
        req.uri().path(),
        req.headers(),
        who,
        resp.status(),
    );
    resp
}

/// Whether the operation filters what it reads, checks what it writes, or projects what it
/// notifies by policy: the entity operations, discovery, reading registrations (and, through
/// them, forwarded entities), subscriptions to entities, and the temporal API.
fn filtered(action: Action, path: &str) -> bool {
    if path == crate::console::EVENTS {
        return action == Action::Read;
    }
    let Some(api) = path.strip_prefix("/ngsi-ld/v1/") else {
        return false;
    };
    let first = api.split('/').next().unwrap_or("");
    match action {
        Action::Read => matches!(
            first,
            "entities" | "entityOperations" | "types" | "attributes" | "csourceRegistrations"
        ),
        Action::Write => matches!(first, "entities" | "entityOperations" | "temporal"),
        Action::Subscribe => matches!(first, "subscriptions" | "csourceSubscriptions"),
        Action::History => first == "temporal",
        Action::Manage => false,
    }
}

fn shown(t: &Tenant) -> String {
    if t.is_default() {
        "the default tenant".to_string()
    } else {
        format!("tenant {:?}", t.as_str())
    }
}

/// The ProblemDetails answer to a failed check. Bad input and unknown keys are the NGSI-LD
/// errors every other operation answers with; 401, 403 and 503 have no NGSI-LD type.
pub fn refusal(e: &AuthError) -> Response {
    let (status, title) = match e {
        AuthError::Invalid(why) => {
            return crate::ApiError(harbor_model::NgsiError::bad_request(why.clone()))
                .into_response()
        }
        AuthError::NotFound(why) => {
            return crate::ApiError(harbor_model::NgsiError::not_found(why.clone())).into_response()
        }
        AuthError::Missing(_) | AuthError::Rejected(_) => {
            (StatusCode::UNAUTHORIZED, "Unauthorized")
        }
        AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
        AuthError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    };
    let mut resp = crate::reply::plain(
        status,
        serde_json::json!({
            "type": format!("urn:infoharbor:errors:{title}"),
            "title": title,
            "status": status.as_u16(),
            "detail": e.to_string(),
        }),
    );
    let challenge = match e {
        AuthError::Missing(_) => Some("Bearer realm=\"infoharbor\"".to_string()),
        AuthError::Rejected(why) => Some(format!(
            "Bearer realm=\"infoharbor\", error=\"invalid_token\", error_description=\"{}\"",
            why.replace(['"', '\\'], "'")
        )),
        _ => None,
    };
    if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
    }
    if matches!(e, AuthError::Unavailable(_)) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_the_action_of_their_kind() {
        use Action::*;
        let t = Needs::Tenant;
        let cases: &[(Method, &str, Needs)] = &[
            (Method::GET, "/health", Needs::Nothing),
            (Method::GET, "/ready", Needs::Nothing),
            (Method::GET, "/console/", Needs::Nothing),
            (Method::GET, "/console/map.js", Needs::Nothing),
            (Method::GET, "/console/events", t(Read)),
            (Method::GET, "/console/other", Needs::Identity),
            (Method::GET, "/metrics", Needs::Operator),
            (Method::POST, "/admin/v1/keys", Needs::Operator),
            (Method::DELETE, "/admin/v1/keys/abc", Needs::Operator),
            (
                Method::GET,
                "/admin/v1/deadLetters",
                Needs::OperatorOrTenantAdmin,
            ),
            (Method::GET, "/ngsi-ld/v1/entities", t(Read)),
            (Method::GET, "/ngsi-ld/v1/entities/urn:x", t(Read)),
            (Method::POST, "/ngsi-ld/v1/entities", t(Write)),
            (Method::DELETE, "/ngsi-ld/v1/entities/urn:x", t(Write)),
            (Method::DELETE, "/ngsi-ld/v1/entities", t(Manage)),
            (Method::DELETE, "/ngsi-ld/v1/entities/", t(Manage)),
            (Method::PATCH, "/ngsi-ld/v1/entities/urn:x/attrs", t(Write)),
            (Method::POST, "/ngsi-ld/v1/entityOperations/query", t(Read)),
            (Method::POST, "/ngsi-ld/v1/entityOperations/query/", t(Read)),
            (
                Method::POST,
                "/ngsi-ld/v1/entityOperations/upsert",
                t(Write),
            ),
            (
                Method::POST,
                "/ngsi-ld/v1/entityOperations/delete",
                t(Write),
            ),
            (Method::GET, "/ngsi-ld/v1/types", t(Read)),
            (Method::GET, "/ngsi-ld/v1/attributes/speed", t(Read)),
            (Method::GET, "/ngsi-ld/v1/subscriptions", t(Subscribe)),
            (Method::POST, "/ngsi-ld/v1/subscriptions", t(Subscribe)),
            (
                Method::POST,
                "/ngsi-ld/v1/csourceSubscriptions",
                t(Subscribe),
            ),
            (Method::GET, "/ngsi-ld/v1/csourceRegistrations", t(Read)),
            (Method::POST, "/ngsi-ld/v1/csourceRegistrations", t(Manage)),
            (Method::GET, "/ngsi-ld/v1/temporal/entities", t(History)),
            (
                Method::POST,
                "/ngsi-ld/v1/temporal/entityOperations/query",
                t(History),
            ),
            (Method::POST, "/ngsi-ld/v1/temporal/entities", t(Write)),
            (
                Method::DELETE,
                "/ngsi-ld/v1/temporal/entities/urn:x",
                t(Write),
            ),
            (Method::GET, "/ngsi-ld/v1/jsonldContexts", Needs::Identity),
            (Method::POST, "/ngsi-ld/v1/jsonldContexts", t(Write)),
            (Method::DELETE, "/ngsi-ld/v1/jsonldContexts/x", t(Manage)),
            (
                Method::GET,
                "/ngsi-ld/v1/info/sourceIdentity",
                Needs::Identity,
            ),
            (Method::GET, "/anything/else", Needs::Identity),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(m, p, want)| needs(m, p) != *want)
            .map(|(m, p, want)| format!("{m} {p}: want {want:?}, got {:?}", needs(m, p)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn a_policy_opens_the_operations_that_filter_by_it() {
        use Action::*;
        let cases: &[(Action, &str, bool)] = &[
            (Read, "/ngsi-ld/v1/entities", true),
            (Read, "/ngsi-ld/v1/types", true),
            (Read, "/ngsi-ld/v1/csourceRegistrations", true),
            (Read, "/ngsi-ld/v1/csourceRegistrations/urn:r", true),
            (Write, "/ngsi-ld/v1/entityOperations/upsert", true),
            (Write, "/ngsi-ld/v1/temporal/entities/urn:x/attrs", true),
            (Write, "/ngsi-ld/v1/jsonldContexts", false),
            (History, "/ngsi-ld/v1/temporal/entities", true),
            (History, "/ngsi-ld/v1/temporal/entityOperations/query", true),
            (Subscribe, "/ngsi-ld/v1/subscriptions", true),
            (Subscribe, "/ngsi-ld/v1/csourceSubscriptions", true),
            (Manage, "/ngsi-ld/v1/csourceRegistrations", false),
            (Manage, "/ngsi-ld/v1/entities", false),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(a, p, want)| filtered(*a, p) != *want)
            .map(|(a, p, want)| format!("{} {p}: want {want}", a.as_str()))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn credentials_are_read_from_the_usual_headers() {
        let with = |name: &'static str, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(value).unwrap());
            h
        };
        assert!(matches!(
            credential(&with("authorization", "Bearer abc")),
            Ok(Credential::Bearer("abc"))
        ));
        assert!(matches!(
            credential(&with("authorization", "bearer  abc ")),
            Ok(Credential::Bearer("abc"))
        ));
        assert!(matches!(
            credential(&with("authorization", "ApiKey ihk_1_2")),
            Ok(Credential::ApiKey("ihk_1_2"))
        ));
        assert!(matches!(
            credential(&with("x-api-key", "ihk_1_2")),
            Ok(Credential::ApiKey("ihk_1_2"))
        ));
        assert!(credential(&with("authorization", "Basic dTpw")).is_err());
        assert!(credential(&with("authorization", "Bearer")).is_err());
        assert!(matches!(
            credential(&HeaderMap::new()),
            Ok(Credential::None)
        ));
    }
}
