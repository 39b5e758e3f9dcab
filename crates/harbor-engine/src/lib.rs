//! The domain: one function per NGSI-LD operation (clause 5 of ETSI GS CIM 009 V1.9.1),
//! applied to the current state through the `harbor-store` traits. Knows nothing of HTTP.

pub mod access;
mod batch;
mod discovery;
mod entities;
pub mod forward;
pub mod history;
mod join;
mod locks;
mod merge;
pub mod metrics;
pub mod notify;
mod purge;
pub mod quota;
mod registrations;
mod subscriptions;
mod temporal;

use std::sync::Arc;

use harbor_model::Tenant;
use harbor_store::{EntityStore, RegistrationStore, SubscriptionStore, TemporalStore};

pub use batch::{BatchError, BatchItem, BatchMode, BatchResult};
pub use discovery::{AttributeInfo, TypeInfo, View as DiscoveryView};
pub use entities::{NotUpdated, PostFilter, UpdateResult};
pub use harbor_store::{Page, Paging};
pub use join::{JoinSpec, Joined, Link, MAX_JOINED};
pub use purge::{PurgeAction, PurgeFilter};
pub use quota::Quotas;
pub use temporal::{
    AggregatedEntity, HistoryView, InstanceSelection, Opened, TemporalPage, TemporalRange,
};

/// Limits every request is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most entities in one batch operation.
    pub max_batch: usize,
    /// Largest `limit` a query may ask for.
    pub max_page: usize,
    /// `limit` when a query gives none.
    pub default_page: usize,
    /// Most instances of one attribute a temporal query returns.
    pub max_temporal_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 1000,
            max_page: 1000,
            default_page: 20,
            max_temporal_instances: 1000,
        }
    }
}

/// The broker's domain core. Cheap to share.
pub struct Engine {
    store: Arc<dyn EntityStore>,
    locks: locks::EntityLocks,
    subscriptions: Option<Arc<dyn SubscriptionStore>>,
    /// Serialises subscription writes so that check-then-commit is atomic.
    subscription_lock: tokio::sync::Mutex<()>,
    registrations: Option<Arc<dyn RegistrationStore>>,
    /// Serialises registration and registration-subscription writes (check-then-commit).
    registration_lock: tokio::sync::Mutex<()>,
    notifier: Option<Arc<notify::Notifier>>,
    sources: Option<Arc<dyn forward::ContextSourceClient>>,
    /// This broker's name in `Via` (see `forward`).
    broker_id: String,
    temporal: Option<Arc<dyn TemporalStore>>,
    historian: Option<Arc<history::Historian>>,
    endpoints: Option<Arc<dyn EndpointCheck>>,
    pub limits: Limits,
    quotas: Quotas,
    pending: quota::Pending,
    tenants: quota::Tenants,
}

/// What the broker knows about a destination before it connects to it: the egress policy of
/// the outbound side. Subscriptions and registrations whose endpoint is certain to be refused
/// are refused when they are created or updated, instead of failing at every delivery.
pub trait EndpointCheck: Send + Sync {
    /// `Err(reason)` when the broker will never connect to `uri` for `purpose`.
    fn check(&self, uri: &str, purpose: EndpointPurpose) -> Result<(), String>;
}

/// What a checked endpoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointPurpose {
    /// `notification.endpoint.uri` of a subscription (HTTP or MQTT).
    Notification,
    /// `endpoint` of a context source registration (HTTP).
    ContextSource,
}

impl Engine {
    pub fn new(store: Arc<dyn EntityStore>, limits: Limits) -> Self {
        Engine {
            store,
            locks: locks::EntityLocks::new(),
            subscriptions: None,
            subscription_lock: tokio::sync::Mutex::new(()),
            registrations: None,
            registration_lock: tokio::sync::Mutex::new(()),
            notifier: None,
            sources: None,
            broker_id: forward::DEFAULT_BROKER_ID.to_string(),
            temporal: None,
            historian: None,
            endpoints: None,
            limits,
            quotas: Quotas::default(),
            pending: quota::Pending::default(),
            tenants: quota::Tenants::default(),
        }
    }

    /// The engine with a subscription store (5.8); without one, subscription operations
    /// are refused.
    pub fn with_subscriptions(mut self, store: Arc<dyn SubscriptionStore>) -> Self {
        self.subscriptions = Some(store);
        self
    }

    /// The engine with a notification pipeline: subscriptions created, updated or deleted
    /// through it are (re)compiled for matching.
    pub fn with_notifier(mut self, notifier: Arc<notify::Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// The notification pipeline, when there is one.
    pub fn notifier(&self) -> Option<&Arc<notify::Notifier>> {
        self.notifier.as_ref()
    }

    /// The engine with a registration store (5.9, 5.11); without one, registration
    /// operations are refused.
    pub fn with_registrations(mut self, store: Arc<dyn RegistrationStore>) -> Self {
        self.registrations = Some(store);
        self
    }

    /// The engine with a temporal store (5.6.11 – 5.7.4); without one, temporal operations
    /// are refused.
    pub fn with_temporal(mut self, store: Arc<dyn TemporalStore>) -> Self {
        self.temporal = Some(store);
        self
    }

    /// Temporal reads and writes first wait for the historian to record what was acknowledged
    /// before them.
    pub fn with_history(mut self, historian: Arc<history::Historian>) -> Self {
        self.historian = Some(historian);
        self
    }

    /// Resolves once the history holds every change acknowledged before the call.
    pub async fn history_caught_up(&self) {
        if let Some(h) = &self.historian {
            h.caught_up().await;
        }
    }

    /// Subscriptions and registrations are refused when `check` refuses their endpoint.
    pub fn with_endpoint_check(mut self, check: Arc<dyn EndpointCheck>) -> Self {
        self.endpoints = Some(check);
        self
    }

    /// 400 BadRequestData naming `member` when the egress policy refuses `uri`.
    fn check_endpoint(
        &self,
        member: &str,
        uri: &str,
        purpose: EndpointPurpose,
    ) -> harbor_model::NgsiResult<()> {
        match &self.endpoints {
            Some(c) => c
                .check(uri, purpose)
                .map_err(|why| harbor_model::NgsiError::bad_request(format!("{member}: {why}"))),
            None => Ok(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn EntityStore> {
        &self.store
    }

    /// What every tenant holds: entities, subscriptions and registrations, counted by the
    /// stores without listing them.
    pub fn tenant_counts(&self) -> Vec<TenantCounts> {
        self.store
            .tenants()
            .into_iter()
            .map(|tenant| TenantCounts {
                entities: self.store.count(&tenant),
                subscriptions: self
                    .subscriptions
                    .as_ref()
                    .map_or(0, |s| s.subscription_count(&tenant)),
                registrations: self
                    .registrations
                    .as_ref()
                    .map_or(0, |r| r.registration_count(&tenant)),
                tenant,
            })
            .collect()
    }
}

/// What one tenant holds (see [`Engine::tenant_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCounts {
    pub tenant: Tenant,
    pub entities: usize,
    pub subscriptions: usize,
    pub registrations: usize,
}

/// The `Link` header value that names a JSON-LD `@context` (6.3.5), for requests and
/// notifications the broker sends.
fn context_link(url: &str) -> String {
    format!("<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"")
}

fn store_err(e: harbor_store::StoreError) -> harbor_model::NgsiError {
    harbor_model::NgsiError::internal(e.to_string())
}
