//! The NGSI-LD HTTP binding (clause 6): the axum router, parsing of headers and parameters into
//! typed requests, content negotiation, and ProblemDetails. The only crate that knows HTTP.

mod admin;
pub mod auth;
mod batch;
mod body;
mod contexts;
mod discovery;
mod edge;
mod entities;
mod error;
mod identity;
mod keys;
mod negotiate;
mod params;
mod purge;
mod query;
mod registrations;
mod reply;
mod subscriptions;
mod temporal;

use std::future::Future;
use std::sync::Arc;

use axum::routing::{get, post};
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
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body: 8 * 1024 * 1024,
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
}

pub type SharedState = Arc<AppState>;

/// The NGSI-LD API router.
pub fn router(state: SharedState) -> Router {
    let entities_root = || {
        post(entities::create)
            .get(entities::query_get)
            .delete(purge::purge)
    };
    // Collection paths are also answered with a trailing slash, as many clients write them.
    let api = Router::new()
        .route("/entities", entities_root())
        .route(
            "/entities/",
            entities_root()
                .put(entities::missing_id)
                .patch(entities::missing_id),
        )
        .route(
            "/entities/{id}",
            get(entities::retrieve)
                .delete(entities::delete)
                .put(entities::replace)
                .patch(entities::merge),
        )
        .route(
            "/entities/{id}/attrs",
            post(entities::append).patch(entities::update),
        )
        .route(
            "/entities/{id}/attrs/",
            post(entities::append).patch(entities::update),
        )
        .route(
            "/entities/{id}/attrs/{attr}",
            axum::routing::patch(entities::partial_attr)
                .put(entities::replace_attr)
                .delete(entities::delete_attr),
        )
        .route("/entityOperations/create", post(batch::create))
        .route("/entityOperations/upsert", post(batch::upsert))
        .route("/entityOperations/update", post(batch::update))
        .route("/entityOperations/delete", post(batch::delete))
        .route("/entityOperations/merge", post(batch::merge))
        .route("/entityOperations/query", post(entities::query_post))
        .route("/types", get(discovery::types))
        .route("/types/", get(discovery::types))
        .route("/types/{type}", get(discovery::type_info))
        .route("/attributes", get(discovery::attributes))
        .route("/attributes/", get(discovery::attributes))
        .route("/attributes/{attr}", get(discovery::attribute_info))
        .route(
            "/subscriptions",
            post(subscriptions::create).get(subscriptions::query),
        )
        .route(
            "/subscriptions/",
            post(subscriptions::create).get(subscriptions::query),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::retrieve)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route(
            "/csourceRegistrations",
            post(registrations::create).get(registrations::query),
        )
        .route(
            "/csourceRegistrations/",
            post(registrations::create).get(registrations::query),
        )
        .route(
            "/csourceRegistrations/{id}",
            get(registrations::retrieve)
                .patch(registrations::update)
                .delete(registrations::delete),
        )
        .route(
            "/csourceSubscriptions",
            post(registrations::create_subscription).get(registrations::query_subscriptions),
        )
        .route(
            "/csourceSubscriptions/",
            post(registrations::create_subscription).get(registrations::query_subscriptions),
        )
        .route(
            "/csourceSubscriptions/{id}",
            get(registrations::retrieve_subscription)
                .patch(registrations::update_subscription)
                .delete(registrations::delete_subscription),
        )
        .route("/info/sourceIdentity", get(identity::source_identity))
        .route(
            "/temporal/entities",
            post(temporal::create).get(temporal::query_get),
        )
        .route(
            "/temporal/entities/",
            post(temporal::create).get(temporal::query_get),
        )
        .route(
            "/temporal/entities/{id}",
            get(temporal::retrieve).delete(temporal::delete),
        )
        .route("/temporal/entities/{id}/attrs", post(temporal::add_attrs))
        .route("/temporal/entities/{id}/attrs/", post(temporal::add_attrs))
        .route(
            "/temporal/entities/{id}/attrs/{attr}",
            axum::routing::delete(temporal::delete_attr),
        )
        .route(
            "/temporal/entities/{id}/attrs/{attr}/",
            axum::routing::delete(temporal::delete_attr),
        )
        .route(
            "/temporal/entities/{id}/attrs/{attr}/{instance}",
            axum::routing::patch(temporal::modify_instance).delete(temporal::delete_instance),
        )
        .route(
            "/temporal/entityOperations/query",
            post(temporal::query_post),
        )
        .route("/jsonldContexts", post(contexts::add).get(contexts::list))
        .route("/jsonldContexts/", post(contexts::add).get(contexts::list))
        .route(
            "/jsonldContexts/{id}",
            get(contexts::serve).delete(contexts::delete),
        );
    Router::new()
        .nest("/ngsi-ld/v1", api)
        .route("/admin/v1/notifications", get(admin::overview))
        .route(
            "/admin/v1/deadLetters",
            get(admin::list).delete(admin::drop),
        )
        .route("/admin/v1/deadLetters/replay", post(admin::replay))
        .route("/admin/v1/keys", post(keys::create).get(keys::list))
        .route("/admin/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(error::not_found_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn(edge::preconditions))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
