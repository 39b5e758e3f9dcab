//! Storage traits the engine talks to, independent of any backend, and the conformance suite
//! every backend runs (`conformance`, one test per case through [`store_conformance!`]).
//!
//! A backend holds the current state of every tenant's entities, makes a batch of changes
//! durable before acknowledging it, and answers queries handed down as a parsed AST
//! ([`EntityQuery`]). It may return a superset of the matches and say so (`exact = false`);
//! the engine then re-checks every result with `harbor-query`'s evaluators.

pub mod conformance;
mod history;

use std::sync::Arc;

use async_trait::async_trait;
use harbor_model::subscription::DeliveryStatus;
use harbor_model::{
    Delivery, Entity, EntityChange, Registration, Subscription, TemporalHeader, TemporalInstance,
    Tenant, Timestamp,
};

pub use harbor_query::{EntityQuery, OrderBy};

/// A store failure. Backends map their driver errors into these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One change to the current state of an entity.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace the entity with this id.
    Put(Entity),
    /// Remove the entity with this id.
    Delete(String),
}

impl Change {
    pub fn entity_id(&self) -> &str {
        match self {
            Change::Put(e) => &e.id,
            Change::Delete(id) => id,
        }
    }
}

/// One change to the stored `@context` documents (5.13): Hosted and ImplicitlyCreated
/// contexts, kept as records the caller encodes, by the context's local id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextChange {
    Put { id: String, record: Vec<u8> },
    Delete(String),
}

/// Durable `@context` documents. The broker keeps its working copy in the context registry;
/// this only makes it survive a restart.
#[async_trait]
pub trait ContextStore: Send + Sync {
    /// Applies the changes atomically and durably; returns once they are on disk.
    async fn commit_contexts(&self, changes: Vec<ContextChange>) -> StoreResult<()>;

    /// Every stored record with its id, sorted by id.
    fn contexts(&self) -> Vec<(String, Vec<u8>)>;
}

/// What kind of administration record a row is: each kind is its own namespace of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminKind {
    /// An API key (its hash, never the key itself) with its grants.
    ApiKey,
    /// An access policy.
    Policy,
    /// An entry of the audit log, keyed by time.
    Audit,
}

impl AdminKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminKind::ApiKey => "apikey",
            AdminKind::Policy => "policy",
            AdminKind::Audit => "audit",
        }
    }
}

/// One change to the broker's administration records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminChange {
    Put {
        kind: AdminKind,
        id: String,
        record: Vec<u8>,
    },
    Delete {
        kind: AdminKind,
        id: String,
    },
}

/// Durable records of the broker's own administration (API keys, access policies), by kind and
/// id. The broker keeps its working copy in memory and reloads it from here; reads are rare.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Applies the changes atomically and durably; returns once they are on disk.
    async fn commit_admin(&self, changes: Vec<AdminChange>) -> StoreResult<()>;

    /// Every record of `kind` with its id, sorted by id.
    async fn admin_records(&self, kind: AdminKind) -> StoreResult<Vec<(String, Vec<u8>)>>;

    /// At most `limit` records of `kind` whose id sorts after `after` (from the first when
    /// `None`), sorted by id: the way through a kind too large to read at once (the audit log).
    async fn admin_page(
        &self,
        kind: AdminKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let all = self.admin_records(kind).await?;
        Ok(all
            .into_iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .take(limit)
            .collect())
    }
}

/// One change to a tenant's subscriptions.
#[derive(Debug, Clone)]
pub enum SubscriptionChange {
    /// Create or replace the subscription with this id.
    Put(Box<Subscription>),
    /// Remove the subscription with this id (no error when absent).
    Delete(String),
}

/// Subscriptions (5.8), per tenant.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Applies the changes atomically and durably; returns once they are on disk.
    async fn commit_subscriptions(
        &self,
        tenant: &Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()>;

    /// The subscription with this id, if the tenant has it.
    fn subscription(&self, tenant: &Tenant, id: &str) -> Option<Arc<Subscription>>;

    /// Every subscription of the tenant, sorted by id.
    fn subscriptions(&self, tenant: &Tenant) -> Vec<Arc<Subscription>>;

    /// How many subscriptions the tenant has (for quotas: a backend should not list them).
    fn subscription_count(&self, tenant: &Tenant) -> usize {
        self.subscriptions(tenant).len()
    }
}

/// One change to a tenant's context source registrations.
#[derive(Debug, Clone)]
pub enum RegistrationChange {
    /// Create or replace the registration with this id.
    Put(Box<Registration>),
    /// Remove the registration with this id (no error when absent).
    Delete(String),
}

/// Context source registrations (5.9) and the subscriptions to them (5.11), per tenant. The
/// subscriptions to registrations are `Subscription`s (5.2.12) kept apart from the
/// subscriptions to entities: the two never share an id space.
#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// Applies the changes atomically and durably; returns once they are on disk.
    async fn commit_registrations(
        &self,
        tenant: &Tenant,
        changes: Vec<RegistrationChange>,
    ) -> StoreResult<()>;

    /// The registration with this id, if the tenant has it.
    fn registration(&self, tenant: &Tenant, id: &str) -> Option<Arc<Registration>>;

    /// Every registration of the tenant, sorted by id.
    fn registrations(&self, tenant: &Tenant) -> Vec<Arc<Registration>>;

    /// How many registrations the tenant has (for quotas: a backend should not list them).
    fn registration_count(&self, tenant: &Tenant) -> usize {
        self.registrations(tenant).len()
    }

    /// Applies changes to the tenant's subscriptions to registrations, durably.
    async fn commit_csource_subscriptions(
        &self,
        tenant: &Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()>;

    /// The subscription to registrations with this id, if the tenant has it.
    fn csource_subscription(&self, tenant: &Tenant, id: &str) -> Option<Arc<Subscription>>;

    /// Every subscription to registrations of the tenant, sorted by id.
    fn csource_subscriptions(&self, tenant: &Tenant) -> Vec<Arc<Subscription>>;

    /// How many subscriptions to registrations the tenant has.
    fn csource_subscription_count(&self, tenant: &Tenant) -> usize {
        self.csource_subscriptions(tenant).len()
    }
}

/// Which part of a query's answer to return (5.5.9): `limit` matches after the first
/// `offset`, in `order` (by id without one), with their total when `count` is set.
#[derive(Debug, Clone)]
pub struct Paging {
    pub offset: usize,
    /// `usize::MAX` for every match.
    pub limit: usize,
    pub count: bool,
    pub order: Option<OrderBy>,
}

impl Paging {
    /// Every match, by id, uncounted.
    pub fn all() -> Self {
        Paging {
            offset: 0,
            limit: usize::MAX,
            count: false,
            order: None,
        }
    }
}

/// One page of a query's matches.
#[derive(Debug, Default)]
pub struct Page {
    pub entities: Vec<Arc<Entity>>,
    /// How many entities match in all, when the paging asked for the count.
    pub total: Option<usize>,
    /// Whether matches follow this page.
    pub more: bool,
}

impl Page {
    /// The page `paging` selects from every match, already in order.
    pub fn of(mut all: Vec<Arc<Entity>>, paging: &Paging) -> Page {
        let total = all.len();
        let end = paging.offset.saturating_add(paging.limit).min(total);
        let start = paging.offset.min(total);
        let more = end < total;
        all.truncate(end);
        all.drain(..start);
        Page {
            entities: all,
            total: paging.count.then_some(total),
            more,
        }
    }
}

/// Result of a query: entities sorted by id.
pub struct QueryResult {
    pub entities: Vec<Arc<Entity>>,
    /// True when every entity matches the whole query; false when the caller must re-check.
    pub exact: bool,
}

/// The current state of entities, per tenant.
#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Applies the changes of one tenant atomically and durably. Returns only once they are on
    /// disk; concurrent callers may share one commit. Creating a change for a tenant that does
    /// not exist yet creates it.
    async fn commit(&self, tenant: &Tenant, changes: Vec<Change>) -> StoreResult<()>;

    /// Makes a tenant exist (creating operations create their tenant even when they fail later).
    async fn ensure_tenant(&self, tenant: &Tenant) -> StoreResult<()>;

    /// Whether the tenant exists. The default tenant always exists.
    fn tenant_exists(&self, tenant: &Tenant) -> bool;

    /// Every tenant that exists, the default one included.
    fn tenants(&self) -> Vec<Tenant>;

    /// The entity with this id, if any.
    fn get(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<Arc<Entity>>>;

    /// Entities matching the query, sorted by id.
    fn query(&self, tenant: &Tenant, query: &EntityQuery) -> StoreResult<QueryResult>;

    /// One page of the entities that match the query exactly and are visible at `now` (not
    /// expired themselves, 4.22), in the paging's order. The default pages what
    /// [`query`](Self::query) finds; a backend with indexes answers from them, at a cost that
    /// follows the page rather than the data.
    async fn query_page(
        &self,
        tenant: &Tenant,
        query: &EntityQuery,
        paging: &Paging,
        now: Timestamp,
    ) -> StoreResult<Page> {
        let found = self.query(tenant, query)?;
        let exact = found.exact;
        let mut all: Vec<Arc<Entity>> = found
            .entities
            .into_iter()
            .filter(|e| e.expires_at.is_none_or(|t| t > now))
            .filter(|e| exact || query.matches(e))
            .collect();
        if let Some(order) = &paging.order {
            order.sort(&mut all);
        }
        Ok(Page::of(all, paging))
    }

    /// Number of entities of the tenant.
    fn count(&self, tenant: &Tenant) -> usize;

    /// Ids of the entities that have something expiring (4.22) at or before `at`: the entity
    /// itself or any attribute instance. Lets expiry be reclaimed without scanning everything.
    fn expiring(&self, tenant: &Tenant, at: Timestamp) -> StoreResult<Vec<String>>;
}

/// One change to the notification outbox.
#[derive(Debug, Clone)]
pub enum OutboxChange {
    /// A new delivery; the store gives it its id (the one given is ignored).
    Add(Delivery),
    /// Replace the delivery with this id (after a failed attempt, a dead-lettering, a replay).
    Put(Delivery),
    /// The delivery is settled (delivered, or dropped by an operator).
    Delete(u64),
}

/// What one outbox commit does, atomically.
#[derive(Debug, Clone, Default)]
pub struct OutboxBatch {
    pub changes: Vec<OutboxChange>,
    /// The matcher has handled every feed record up to and including this one.
    pub cursor: Option<u64>,
    /// Delivery status members of subscriptions (5.2.14) to record.
    pub statuses: Vec<(Tenant, String, DeliveryStatus)>,
    /// Feed records below this sequence number are no longer needed.
    pub trim_below: Option<u64>,
}

/// The change feed and the notification outbox (the spine: change feed -> matcher -> outbox
/// -> delivery). Every `EntityStore::commit` appends one record per changed entity to the
/// feed in the same transaction.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Retained feed records with `seq > after`, oldest first, at most `limit`.
    fn changes_after(&self, after: u64, limit: usize) -> Vec<Arc<EntityChange>>;

    /// The retained feed record with this sequence number.
    fn change(&self, seq: u64) -> Option<Arc<EntityChange>>;

    /// Sequence number of the newest feed record (0 when there is none yet).
    fn last_seq(&self) -> u64;

    /// Resolves once a record with `seq > after` exists.
    async fn wait_for_changes(&self, after: u64);

    /// Where the matcher stopped: every record up to this one is matched.
    fn matcher_cursor(&self) -> u64;

    /// The first record the feed keeps for its other readers (the historian): a trim never
    /// goes past it, so asking for one beyond it is wasted work.
    fn trim_floor(&self) -> u64 {
        u64::MAX
    }

    /// Every delivery in the outbox, pending and dead, by id.
    fn outbox(&self) -> Vec<Arc<Delivery>>;

    /// The delivery with this id.
    fn delivery(&self, id: u64) -> Option<Arc<Delivery>>;

    /// Applies the batch atomically and durably; returns the deliveries it added, with their
    /// ids, in the order given.
    async fn commit_outbox(&self, batch: OutboxBatch) -> StoreResult<Vec<Arc<Delivery>>>;
}

/// One change to a tenant's temporal store (5.6.11 – 5.6.18).
#[derive(Debug, Clone)]
pub enum TemporalChange {
    /// Create or replace the header of a temporal entity.
    PutHeader(TemporalHeader),
    /// Add an instance whose `instance_id` is new (to replace one, delete it first).
    PutInstance {
        entity: String,
        attr: String,
        instance: Box<TemporalInstance>,
    },
    /// Remove one instance (no error when absent).
    DeleteInstance {
        entity: String,
        attr: String,
        instance_id: String,
    },
    /// Remove every instance of one attribute.
    DeleteAttr { entity: String, attr: String },
    /// Remove the temporal entity: its header and every instance.
    DeleteEntity(String),
    /// Remove every instance of the entity whose index time is before `before` (retention);
    /// the header stays.
    TrimBefore { entity: String, before: Timestamp },
}

/// Which instances of one attribute a visit goes through.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstanceRange {
    /// Only instances whose index time (`observedAt`, else `modifiedAt`) is at or after this.
    pub from: Option<Timestamp>,
    /// Only instances whose index time is before this.
    pub to: Option<Timestamp>,
    /// Newest first (for `lastN`); oldest first otherwise.
    pub newest_first: bool,
}

/// What the historian records at once: the temporal rows derived from the feed records up to
/// and including `cursor`.
#[derive(Debug, Clone, Default)]
pub struct HistoryBatch {
    /// Temporal rows per tenant, in the order they apply.
    pub rows: Vec<(Tenant, Vec<TemporalChange>)>,
    /// Every feed record up to this one is recorded once the batch is committed.
    pub cursor: u64,
}

/// What aggregation reads of one stored instance (4.5.19), borrowed from the store for one
/// call of the visitor: the time it is aggregated at, its index time and expiry, its
/// `datasetId`, its kind and its payload; not its `instanceId`, its other times nor its
/// sub-attributes. A backend can produce it straight from its stored bytes, without
/// building a [`TemporalInstance`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSample<'a> {
    /// The instance's value of the time property the visit asked for, if it has one.
    pub at: Option<Timestamp>,
    /// The time the store orders by: `observedAt`, else `modifiedAt`.
    pub index_time: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub dataset_id: Option<&'a str>,
    /// The attribute's type name (`Property`, `Relationship`, ...).
    pub kind: &'static str,
    pub payload: SamplePayload<'a>,
}

/// The payload (`value`, `object`, `json`, ...) of an [`InstanceSample`]. JSON numbers,
/// booleans and strings come as themselves, numbers as `f64` (all aggregation reads of
/// them); any other payload comes with the whole attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplePayload<'a> {
    Number(f64),
    Bool(bool),
    Str(&'a str),
    /// Boxed: samples are moved for every instance, and this is the rare case.
    Whole(Box<std::borrow::Cow<'a, harbor_model::AttrValue>>),
}

impl<'a> InstanceSample<'a> {
    /// The sample of a whole instance, at its value of `time`.
    pub fn of(i: &'a TemporalInstance, time: harbor_model::TimeProperty) -> Self {
        let a = &i.attr;
        let payload = match a.value.payload() {
            serde_json::Value::Number(n) => SamplePayload::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::Bool(b) => SamplePayload::Bool(*b),
            serde_json::Value::String(s) => SamplePayload::Str(s),
            _ => SamplePayload::Whole(Box::new(std::borrow::Cow::Borrowed(&a.value))),
        };
        InstanceSample {
            at: i.time(time),
            index_time: i.index_time(),
            expires_at: a.expires_at,
            dataset_id: a.dataset_id.as_deref(),
            kind: a.value.type_name(),
            payload,
        }
    }
}

/// The temporal evolution of entities, per tenant. Changes of the current state reach it from
/// the change feed: the engine's historian derives their rows with
/// `harbor_model::temporal::record_change` and commits them with the feed position they cover
/// (`commit_history`), so recording survives a crash exactly once. A backend keeps every feed
/// record the historian has not covered yet (trimming stops at `history_cursor() + 1`). The
/// temporal API writes through `commit_temporal`.
#[async_trait]
pub trait TemporalStore: Send + Sync {
    /// Applies the rows and moves the history cursor, atomically and durably.
    async fn commit_history(&self, batch: HistoryBatch) -> StoreResult<()>;

    /// Where the historian stopped: every feed record up to this one is recorded.
    fn history_cursor(&self) -> u64;

    /// Resolves once `history_cursor() >= seq`.
    async fn wait_for_history(&self, seq: u64);

    /// Applies the changes atomically and durably; returns once they are on disk.
    async fn commit_temporal(
        &self,
        tenant: &Tenant,
        changes: Vec<TemporalChange>,
    ) -> StoreResult<()>;

    /// The header of the temporal entity with this id.
    fn temporal_header(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<TemporalHeader>>;

    /// Every temporal entity header of the tenant, sorted by id.
    fn temporal_headers(&self, tenant: &Tenant) -> StoreResult<Vec<TemporalHeader>>;

    /// Expanded names of the attributes that have instances, sorted.
    fn temporal_attrs(&self, tenant: &Tenant, id: &str) -> StoreResult<Vec<String>>;

    /// Calls `visit` with the instances of one attribute in index-time order within `range`,
    /// until it returns false.
    fn visit_instances(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        range: InstanceRange,
        visit: &mut dyn FnMut(TemporalInstance) -> bool,
    ) -> StoreResult<()>;

    /// Like [`visit_instances`](Self::visit_instances), with each instance as the
    /// [`InstanceSample`] aggregation reads, at its value of `time`. The default builds
    /// every instance; a backend that can read samples from its stored form without that
    /// should.
    fn visit_samples(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        range: InstanceRange,
        time: harbor_model::TimeProperty,
        visit: &mut dyn FnMut(&InstanceSample<'_>) -> bool,
    ) -> StoreResult<()> {
        self.visit_instances(tenant, id, attr, range, &mut |i| {
            visit(&InstanceSample::of(&i, time))
        })
    }
}
