//! The NGSI-LD HTTP binding (clause 6): the axum router, parsing of headers and parameters into
//! typed requests, content negotiation, and ProblemDetails. The only crate that knows HTTP.

mod access;
mod admin;
mod audit;
pub mod auth;
mod batch;
mod body;
pub mod console;
mod contexts;
mod discovery;
mod edge;
mod entities;
mod error;
mod identity;
mod keys;
mod negotiate;
mod params;
mod policies;
mod purge;
mod query;
pub mod rate;
mod registrations;
mod reply;
pub mod server;
pub mod shed;
mod subscriptions;
pub mod telemetry;
mod temporal;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use harbor_engine::Engine;
use harbor_jsonld::registry::ContextRegistry;
use harbor_jsonld::resolve::ContextResolver;

pub use error::ApiError;
pub use identity::SourceIdentity;

/// Limits of the HTTP edge.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Time a client has to send a whole request body, once its head has arrived.
    pub body_timeout: Duration,
    /// Bounds on requests in flight, per class, and on CPU-heavy work.
    pub shed: shed::ShedLimits,
    /// Requests per second per authenticated identity (`per_second` 0: no limit).
    pub rate: rate::RateLimit,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body: 8 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            shed: shed::ShedLimits::default(),
            rate: rate::RateLimit {
                per_second: 0.0,
                burst: 0.0,
            },
        }
    }
}

/// Everything a handler needs.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub resolver: Arc<ContextResolver>,
    pub registry: Arc<ContextRegistry>,
    pub limits: HttpLimits,
    /// Who this broker is as a context source (`/info/sourceIdentity`).
    pub identity: SourceIdentity,
    /// Who is asking (`auth`); `None` lets every request through, as `auth = none` does.
    pub auth: Option<Arc<harbor_auth::Authenticator>>,
    /// The API keys, for `/admin/v1/keys`.
    pub keys: Option<Arc<harbor_auth::KeyRing>>,
    /// The access policies, for `/admin/v1/policies` and every tenant operation.
    pub policies: Option<Arc<harbor_auth::PolicyBook>>,
    /// Where changes are recorded (`/admin/v1/audit`); `None` records nothing.
    pub audit: Option<Arc<harbor_auth::AuditLog>>,
    /// Metrics and readiness (`/metrics`, `/ready`).
    pub telemetry: telemetry::Telemetry,
}

pub type SharedState = Arc<AppState>;

/// Routes `path` and `path/` alike: clients write both, for collections and for single
/// resources (`ngsildclient` posts to `/entityOperations/create/`, `filip` lists
/// `/subscriptions/`).
fn both(r: Router<SharedState>, path: &str, m: MethodRouter<SharedState>) -> Router<SharedState> {
    r.route(path, m.clone()).route(&format!("{path}/"), m)
}

/// The NGSI-LD API router.
pub fn router(state: SharedState) -> Router {
    let entities_root = || {
        post(entities::create)
            .get(entities::query_get)
            .delete(purge::purge)
    };
    let api = Router::new().route("/entities", entities_root()).route(
        "/entities/",
        entities_root()
            .put(entities::missing_id)
            .patch(entities::missing_id),
    );
    let routes: Vec<(&str, MethodRouter<SharedState>)> = vec![
        (
            "/entities/{id}",
            get(entities::retrieve)
                .delete(entities::delete)
                .put(entities::replace)
                .patch(entities::merge),
        ),
        (
            "/entities/{id}/attrs",
            post(entities::append).patch(entities::update),
        ),
        (
            "/entities/{id}/attrs/{attr}",
            patch(entities::partial_attr)
                .put(entities::replace_attr)
                .delete(entities::delete_attr),
        ),
        ("/entityOperations/create", post(batch::create)),
        ("/entityOperations/upsert", post(batch::upsert)),
        ("/entityOperations/update", post(batch::update)),
        ("/entityOperations/delete", post(batch::delete)),
        ("/entityOperations/merge", post(batch::merge)),
        ("/entityOperations/query", post(entities::query_post)),
        ("/types", get(discovery::types)),
        ("/types/{type}", get(discovery::type_info)),
        ("/attributes", get(discovery::attributes)),
        ("/attributes/{attr}", get(discovery::attribute_info)),
        (
            "/subscriptions",
            post(subscriptions::create).get(subscriptions::query),
        ),
        (
            "/subscriptions/{id}",
            get(subscriptions::retrieve)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        ),
        (
            "/csourceRegistrations",
            post(registrations::create).get(registrations::query),
        ),
        (
            "/csourceRegistrations/{id}",
            get(registrations::retrieve)
                .patch(registrations::update)
                .delete(registrations::delete),
        ),
        (
            "/csourceSubscriptions",
            post(registrations::create_subscription).get(registrations::query_subscriptions),
        ),
        (
            "/csourceSubscriptions/{id}",
            get(registrations::retrieve_subscription)
                .patch(registrations::update_subscription)
                .delete(registrations::delete_subscription),
        ),
        ("/info/sourceIdentity", get(identity::source_identity)),
        (
            "/temporal/entities",
            post(temporal::create).get(temporal::query_get),
        ),
        (
            "/temporal/entities/{id}",
            get(temporal::retrieve).delete(temporal::delete),
        ),
        ("/temporal/entities/{id}/attrs", post(temporal::add_attrs)),
        (
            "/temporal/entities/{id}/attrs/{attr}",
            delete(temporal::delete_attr),
        ),
        (
            "/temporal/entities/{id}/attrs/{attr}/{instance}",
            patch(temporal::modify_instance).delete(temporal::delete_instance),
        ),
        (
            "/temporal/entityOperations/query",
            post(temporal::query_post),
        ),
        ("/jsonldContexts", post(contexts::add).get(contexts::list)),
        (
            "/jsonldContexts/{id}",
            get(contexts::serve).delete(contexts::delete),
        ),
    ];
    let api = routes
        .into_iter()
        .fold(api, |r, (path, m)| both(r, path, m));
    let admin: Vec<(&str, MethodRouter<SharedState>)> = vec![
        ("/admin/v1/notifications", get(admin::overview)),
        (
            "/admin/v1/deadLetters",
            get(admin::list).delete(admin::drop),
        ),
        ("/admin/v1/deadLetters/replay", post(admin::replay)),
        ("/admin/v1/keys", post(keys::create).get(keys::list)),
        ("/admin/v1/keys/{id}", delete(keys::revoke)),
        ("/admin/v1/audit", get(audit::list)),
        (
            "/admin/v1/policies",
            post(policies::create).get(policies::list),
        ),
        (
            "/admin/v1/policies/{id}",
            get(policies::retrieve)
                .put(policies::replace)
                .delete(policies::delete),
        ),
    ];
    let root = admin
        .into_iter()
        .fold(Router::new().nest("/ngsi-ld/v1", api), |r, (path, m)| {
            both(r, path, m)
        });
    let app = console::routes(root)
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/ready", get(telemetry::ready))
        .route("/metrics", get(telemetry::metrics))
        .fallback(error::not_found_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        // Inside the guard, so that it sees the request's identity.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::trail,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth::Guarded {
                state: state.clone(),
                rates: rate::Rates::new(state.limits.rate).map(Arc::new),
            },
            auth::guard,
        ))
        .layer(axum::middleware::from_fn(edge::preconditions))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(shed::Shedder::new(state.limits.shed.clone())),
            shed::admit,
        ));
    telemetry::layers(app, &state).with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests
/// within the configured deadline (see [`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    cfg: server::ServerConfig,
) -> std::io::Result<()> {
    server::serve(listener, router(state), shutdown, cfg).await
}

/// FNV-1a over bytes: a hash that is the same in every process and every build, for names
/// the router or the binary holds (route templates, built-in files), never for client input.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
