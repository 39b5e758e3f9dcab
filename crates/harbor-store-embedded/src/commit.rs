//! Group commit into redb, and loading the state back at start-up.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;

use harbor_model::subscription::DeliveryStatus;
use harbor_model::{Delivery, Entity, EntityChange, Registration, Subscription, Tenant};
use harbor_store::{
    AdminChange, AdminKind, Change, ContextChange, HistoryBatch, OutboxBatch, OutboxChange,
    RegistrationChange, StoreError, StoreResult, SubscriptionChange, TemporalChange,
};
use parking_lot::RwLock;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::memory::{self, Memory, Put, TenantLoad};
use crate::temporal;

/// Entities by `tenant \0 id`, as JSON.
const ENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entities");
/// Tenants that exist, with nothing attached.
const TENANTS: TableDefinition<&str, ()> = TableDefinition::new("tenants");
/// Stored `@context` records by local id.
const CONTEXTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contexts");
/// Administration records (API keys, policies), keyed by "kind/id".
pub(crate) const ADMIN: TableDefinition<&str, &[u8]> = TableDefinition::new("admin");

/// Subscriptions by `tenant \0 id`, as JSON.
const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");
/// Subscriptions to context source registrations by `tenant \0 id`, as JSON.
const CSOURCE_SUBSCRIPTIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("csource_subscriptions");
/// Context source registrations by `tenant \0 id`, as JSON.
const REGISTRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("registrations");

/// The change feed: one record per committed entity change, by sequence number, as JSON.
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("feed");
/// The notification outbox: deliveries owed, by id, as JSON.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Delivery status of subscriptions by `tenant \0 id`, as JSON, kept apart from the
/// subscriptions so that a delivery does not rewrite its subscription.
const SUB_STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscription_status");
/// Counters of the spine: `feed_seq`, `delivery_id`, `matcher_cursor`, `history_cursor`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Retained feed records by sequence number.
pub type Feed = std::collections::BTreeMap<u64, Arc<EntityChange>>;

/// The change feed and the outbox as held in memory (everything retained on disk).
#[derive(Default)]
pub struct Spine {
    pub feed: Feed,
    pub last_seq: u64,
    pub cursor: u64,
    /// Where the historian stopped; the feed is kept from the record after it.
    pub history_cursor: u64,
    pub next_delivery: u64,
    pub outbox: std::collections::BTreeMap<u64, Arc<Delivery>>,
}

/// Stored `@context` records by id, as loaded and committed.
pub type Contexts = std::collections::BTreeMap<String, Vec<u8>>;

/// Records of one kind per tenant, by id.
pub type ByTenant<T> =
    std::collections::HashMap<Tenant, std::collections::BTreeMap<String, Arc<T>>>;

/// Subscriptions per tenant, by id.
pub type Subscriptions = ByTenant<Subscription>;

/// The records kept beside the entities: subscriptions (5.8), context source registrations
/// (5.9) and subscriptions to registrations (5.11).
#[derive(Default)]
pub struct Records {
    pub subscriptions: Subscriptions,
    pub csource_subscriptions: Subscriptions,
    pub registrations: ByTenant<Registration>,
}

/// Which subscriptions a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    Entities,
    Registrations,
}

/// Largest number of requests folded into one commit.
const MAX_GROUP: usize = 1024;

enum Work {
    Entities {
        tenant: Tenant,
        changes: Vec<Change>,
        /// The JSON of each `Put`, encoded on the caller's task so that the single commit
        /// thread does not spend its time serializing.
        encoded: Vec<Option<Vec<u8>>>,
    },
    Contexts(Vec<ContextChange>),
    Admin(Vec<AdminChange>),
    Subscriptions {
        kind: SubscriptionKind,
        tenant: Tenant,
        changes: Vec<SubscriptionChange>,
    },
    Registrations {
        tenant: Tenant,
        changes: Vec<RegistrationChange>,
    },
    Outbox(OutboxBatch),
    Temporal {
        tenant: Tenant,
        changes: Vec<TemporalChange>,
    },
    History(HistoryBatch),
}

impl Work {
    /// What is committed, for the commit's span.
    fn kind(&self) -> &'static str {
        match self {
            Work::Entities { .. } => "entities",
            Work::Contexts(_) => "contexts",
            Work::Admin(_) => "admin",
            Work::Subscriptions { .. } => "subscriptions",
            Work::Registrations { .. } => "registrations",
            Work::Outbox(_) => "outbox",
            Work::Temporal { .. } => "temporal",
            Work::History(_) => "history",
        }
    }
}

/// What a commit answers besides success.
pub enum Reply {
    Done,
    Added(Vec<Arc<Delivery>>),
}

struct Request {
    work: Work,
    done: oneshot::Sender<StoreResult<Reply>>,
}

/// Handle to the commit thread.
pub struct Committer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Committer {
    /// Lets the commit thread finish what it was given and close the database.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Committer {
    pub fn start(db: Arc<redb::Database>, shared: Shared) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("harbor-commit".into())
            .spawn(move || run(db, shared, rx))
            .expect("spawning the commit thread");
        Committer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub async fn submit(&self, tenant: Tenant, changes: Vec<Change>) -> StoreResult<()> {
        let mut encoded = Vec::with_capacity(changes.len());
        for c in &changes {
            encoded.push(match c {
                Change::Put(e) => Some(serde_json::to_vec(e).map_err(|e| {
                    StoreError::Unavailable(format!("cannot encode an entity: {e}"))
                })?),
                Change::Delete(_) => None,
            });
        }
        self.send(Work::Entities {
            tenant,
            changes,
            encoded,
        })
        .await
        .map(drop)
    }

    pub async fn submit_temporal(
        &self,
        tenant: Tenant,
        changes: Vec<TemporalChange>,
    ) -> StoreResult<()> {
        self.send(Work::Temporal { tenant, changes })
            .await
            .map(drop)
    }

    pub async fn submit_history(&self, batch: HistoryBatch) -> StoreResult<()> {
        self.send(Work::History(batch)).await.map(drop)
    }

    pub async fn submit_contexts(&self, changes: Vec<ContextChange>) -> StoreResult<()> {
        self.send(Work::Contexts(changes)).await.map(drop)
    }

    pub async fn submit_admin(&self, changes: Vec<AdminChange>) -> StoreResult<()> {
        self.send(Work::Admin(changes)).await.map(drop)
    }

    pub async fn submit_outbox(&self, batch: OutboxBatch) -> StoreResult<Vec<Arc<Delivery>>> {
        match self.send(Work::Outbox(batch)).await? {
            Reply::Added(d) => Ok(d),
            Reply::Done => Ok(Vec::new()),
        }
    }

    pub async fn submit_subscriptions(
        &self,
        kind: SubscriptionKind,
        tenant: Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()> {
        self.send(Work::Subscriptions {
            kind,
            tenant,
            changes,
        })
        .await
        .map(drop)
    }

    pub async fn submit_registrations(
        &self,
        tenant: Tenant,
        changes: Vec<RegistrationChange>,
    ) -> StoreResult<()> {
        self.send(Work::Registrations { tenant, changes })
            .await
            .map(drop)
    }

    async fn send(&self, work: Work) -> StoreResult<Reply> {
        // The wait for durability is a span of the operation that waits (a request): a commit
        // of the pipeline's own (outbox, history) is part of no operation and gets none.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::debug_span!("commit", kind = work.kind())
        };
        let (done, wait) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        tx.send(Request { work, done })
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?;
        wait.instrument(span)
            .await
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?
    }
}

fn key(tenant: &Tenant, id: &str) -> String {
    format!("{}\u{0}{}", tenant.as_str(), id)
}

/// Everything the commit thread updates once a commit is on disk.
#[derive(Clone)]
pub struct Shared {
    pub memory: Arc<RwLock<Memory>>,
    pub contexts: Arc<RwLock<Contexts>>,
    pub records: Arc<RwLock<Records>>,
    pub spine: Arc<RwLock<Spine>>,
    /// Temporal entity headers.
    pub temporal: Arc<RwLock<temporal::Headers>>,
    /// Newest feed sequence number, for the matcher to wait on.
    pub feed_seq: Arc<tokio::sync::watch::Sender<u64>>,
    /// The history cursor, for temporal reads to wait on.
    pub history_seq: Arc<tokio::sync::watch::Sender<u64>>,
    pub metrics: crate::metrics::StoreMetrics,
}

/// The commit thread's own counters, restored from the database at start-up.
struct Counters {
    feed_seq: u64,
    delivery_id: u64,
}

/// A group's entity changes, resolved against the current state before writing.
struct Prepared {
    /// Per request of the group (entity work only): the new states to apply.
    puts: Vec<Vec<Put>>,
    feed: Vec<Arc<EntityChange>>,
    /// The JSON of each feed record, in `feed` order.
    feed_bytes: Vec<Vec<u8>>,
    added: Vec<Vec<Arc<Delivery>>>,
}

fn run(db: Arc<redb::Database>, shared: Shared, rx: mpsc::Receiver<Request>) {
    let _running = shared.metrics.beacon.hold();
    let mut counters = {
        let spine = shared.spine.read();
        Counters {
            feed_seq: spine.last_seq,
            delivery_id: spine.next_delivery,
        }
    };
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let saved = (counters.feed_seq, counters.delivery_id);
        let prepared = prepare(&shared, &mut group, &mut counters);
        let started = std::time::Instant::now();
        let result = write_group(&db, &group, &prepared, &counters, &shared.metrics);
        shared
            .metrics
            .commit_seconds
            .observe_duration(started.elapsed());
        shared.metrics.group_size.observe_count(group.len() as u64);
        let mut added = prepared.added.into_iter();
        if result.is_ok() {
            let mut puts = prepared.puts.into_iter();
            let mut history = None;
            let mut trimmed = Vec::new();
            {
                let mut headers = shared.temporal.write();
                let mut mem = shared.memory.write();
                let mut ctx = shared.contexts.write();
                let mut rec = shared.records.write();
                let mut spine = shared.spine.write();
                for r in &mut group {
                    match &mut r.work {
                        Work::Entities { tenant, .. } => {
                            mem.apply_shared(tenant, puts.next().unwrap_or_default())
                        }
                        Work::Temporal { tenant, changes } => {
                            temporal::apply(&mut headers, tenant, changes)
                        }
                        Work::History(batch) => {
                            for (tenant, rows) in &batch.rows {
                                temporal::apply(&mut headers, tenant, rows);
                            }
                            spine.history_cursor = spine.history_cursor.max(batch.cursor);
                            history = Some(spine.history_cursor);
                        }
                        Work::Contexts(changes) => apply_contexts(&mut ctx, changes),
                        Work::Admin(_) => {}
                        Work::Subscriptions {
                            kind,
                            tenant,
                            changes,
                        } => {
                            let subs = match kind {
                                SubscriptionKind::Entities => &mut rec.subscriptions,
                                SubscriptionKind::Registrations => &mut rec.csource_subscriptions,
                            };
                            apply_subscriptions(subs, tenant, changes)
                        }
                        Work::Registrations { tenant, changes } => {
                            apply_registrations(&mut rec.registrations, tenant, changes)
                        }
                        Work::Outbox(batch) => {
                            trimmed.extend(apply_outbox(&mut spine, &mut rec, batch));
                        }
                    }
                }
                for f in &prepared.feed {
                    spine.feed.insert(f.seq, f.clone());
                }
                spine.last_seq = counters.feed_seq;
                spine.next_delivery = counters.delivery_id;
            }
            if !prepared.feed.is_empty() {
                shared.feed_seq.send_replace(counters.feed_seq);
            }
            if let Some(h) = history {
                shared.history_seq.send_replace(h);
            }
            if !trimmed.is_empty() {
                // Thousands of feed records, often the last owners of entity states: freed
                // beside the commit thread, not on it.
                std::thread::spawn(move || drop(trimmed));
            }
        } else {
            shared.metrics.commit_failures.inc();
            (counters.feed_seq, counters.delivery_id) = saved;
        }
        for r in group {
            let answer = match &result {
                Ok(()) => Ok(match r.work {
                    Work::Outbox(_) => Reply::Added(added.next().unwrap_or_default()),
                    _ => Reply::Done,
                }),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            };
            let _ = r.done.send(answer);
        }
    }
}

/// Resolves the group's entity changes against the current state: shares the new states,
/// numbers a feed record for each, and numbers the deliveries the group adds.
fn prepare(shared: &Shared, group: &mut [Request], counters: &mut Counters) -> Prepared {
    let mem = shared.memory.read();
    let history_cursor = shared.spine.read().history_cursor;
    let now = harbor_model::time::now();
    // States written earlier in this group, which memory does not have yet.
    let mut pending: std::collections::HashMap<(Tenant, String), Option<Arc<Entity>>> =
        Default::default();
    let mut out = Prepared {
        puts: Vec::new(),
        feed: Vec::new(),
        feed_bytes: Vec::new(),
        added: Vec::new(),
    };
    for r in group.iter_mut() {
        match &mut r.work {
            Work::Entities {
                tenant,
                changes,
                encoded,
            } => {
                let mut puts = Vec::with_capacity(changes.len());
                for (c, bytes) in std::mem::take(changes).into_iter().zip(encoded.iter()) {
                    let (id, next) = match c {
                        Change::Put(e) => (e.id.clone(), Some(Arc::new(e))),
                        Change::Delete(id) => (id, None),
                    };
                    let key = (tenant.clone(), id.clone());
                    let before = match pending.get(&key) {
                        Some(b) => b.clone(),
                        None => mem.get(tenant, &id),
                    };
                    if before.is_some() || next.is_some() {
                        counters.feed_seq += 1;
                        let record = EntityChange::derive(
                            counters.feed_seq,
                            tenant,
                            &id,
                            now,
                            before.as_deref(),
                            next.clone(),
                        );
                        // Records serialise: every map key in them is a string.
                        out.feed_bytes.push(
                            record
                                .to_json_with_after(bytes.as_deref())
                                .unwrap_or_default(),
                        );
                        out.feed.push(Arc::new(record));
                    }
                    pending.insert(key, next.clone());
                    puts.push(Put { id, before, next });
                }
                out.puts.push(puts);
            }
            Work::Outbox(batch) => {
                // The feed is kept for the historian too: never trimmed past its cursor.
                if let Some(below) = &mut batch.trim_below {
                    *below = (*below).min(history_cursor.saturating_add(1));
                }
                let mut added = Vec::new();
                for c in &mut batch.changes {
                    if let OutboxChange::Add(d) = c {
                        counters.delivery_id += 1;
                        d.id = counters.delivery_id;
                        added.push(Arc::new(d.clone()));
                    }
                }
                out.added.push(added);
            }
            _ => {}
        }
    }
    out
}

fn write_group(
    db: &redb::Database,
    group: &[Request],
    prepared: &Prepared,
    counters: &Counters,
    metrics: &crate::metrics::StoreMetrics,
) -> Result<(), StoreError> {
    let fail = |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("commit failed: {e}"));
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut feed = txn.open_table(FEED).map_err(|e| fail(&e))?;
        let mut outbox = txn.open_table(OUTBOX).map_err(|e| fail(&e))?;
        let mut statuses = txn.open_table(SUB_STATUS).map_err(|e| fail(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        for (f, bytes) in prepared.feed.iter().zip(&prepared.feed_bytes) {
            feed.insert(f.seq, bytes.as_slice()).map_err(|e| fail(&e))?;
        }
        meta.insert("feed_seq", counters.feed_seq)
            .map_err(|e| fail(&e))?;
        meta.insert("delivery_id", counters.delivery_id)
            .map_err(|e| fail(&e))?;
        let mut entities = txn.open_table(ENTITIES).map_err(|e| fail(&e))?;
        let mut tenants = txn.open_table(TENANTS).map_err(|e| fail(&e))?;
        let mut contexts = txn.open_table(CONTEXTS).map_err(|e| fail(&e))?;
        let mut admin = txn.open_table(ADMIN).map_err(|e| fail(&e))?;
        let mut subscriptions = txn.open_table(SUBSCRIPTIONS).map_err(|e| fail(&e))?;
        let mut csource_subscriptions = txn
            .open_table(CSOURCE_SUBSCRIPTIONS)
            .map_err(|e| fail(&e))?;
        let mut registrations = txn.open_table(REGISTRATIONS).map_err(|e| fail(&e))?;
        let mut instances = txn.open_table(temporal::INSTANCES).map_err(|e| fail(&e))?;
        let mut theaders = txn.open_table(temporal::HEADERS).map_err(|e| fail(&e))?;
        // The entity changes, resolved by `prepare`, one list per entity request in order.
        let mut puts = prepared.puts.iter();
        for r in group {
            let (tenant, changes) = match &r.work {
                Work::Entities {
                    tenant, encoded, ..
                } => (tenant, puts.next().map(|p| p.iter().zip(encoded))),
                Work::Temporal { tenant, changes } => {
                    tenants.insert(tenant.as_str(), ()).map_err(|e| fail(&e))?;
                    temporal::write(tenant, changes, &mut instances, &mut theaders)
                        .map_err(|e| fail(&e))?;
                    continue;
                }
                Work::History(batch) => {
                    for (tenant, rows) in &batch.rows {
                        temporal::write(tenant, rows, &mut instances, &mut theaders)
                            .map_err(|e| fail(&e))?;
                    }
                    meta.insert("history_cursor", batch.cursor)
                        .map_err(|e| fail(&e))?;
                    continue;
                }
                Work::Subscriptions {
                    kind,
                    tenant,
                    changes,
                } => {
                    let table = match kind {
                        SubscriptionKind::Entities => &mut subscriptions,
                        SubscriptionKind::Registrations => &mut csource_subscriptions,
                    };
                    for c in changes {
                        match c {
                            SubscriptionChange::Put(sub) => {
                                let bytes = serde_json::to_vec(sub).map_err(|e| fail(&e))?;
                                table
                                    .insert(key(tenant, &sub.id).as_str(), bytes.as_slice())
                                    .map(|_| ())
                            }
                            SubscriptionChange::Delete(id) => {
                                statuses
                                    .remove(key(tenant, id).as_str())
                                    .map_err(|e| fail(&e))?;
                                table.remove(key(tenant, id).as_str()).map(|_| ())
                            }
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
                Work::Registrations { tenant, changes } => {
                    for c in changes {
                        match c {
                            RegistrationChange::Put(reg) => {
                                let bytes = serde_json::to_vec(reg).map_err(|e| fail(&e))?;
                                registrations
                                    .insert(key(tenant, &reg.id).as_str(), bytes.as_slice())
                                    .map(|_| ())
                            }
                            RegistrationChange::Delete(id) => {
                                registrations.remove(key(tenant, id).as_str()).map(|_| ())
                            }
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
                Work::Outbox(batch) => {
                    write_outbox(batch, &mut outbox, &mut statuses, &mut meta, &mut feed)
                        .map_err(|e| fail(&e))?;
                    continue;
                }
                Work::Contexts(changes) => {
                    for c in changes {
                        match c {
                            ContextChange::Put { id, record } => {
                                contexts.insert(id.as_str(), record.as_slice())
                            }
                            ContextChange::Delete(id) => contexts.remove(id.as_str()),
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
                Work::Admin(changes) => {
                    for c in changes {
                        match c {
                            AdminChange::Put { kind, id, record } => admin
                                .insert(admin_key(*kind, id).as_str(), record.as_slice())
                                .map(drop),
                            AdminChange::Delete { kind, id } => {
                                admin.remove(admin_key(*kind, id).as_str()).map(drop)
                            }
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
            };
            tenants.insert(tenant.as_str(), ()).map_err(|e| fail(&e))?;
            for (Put { id, next, .. }, bytes) in changes.into_iter().flatten() {
                match (next, bytes) {
                    (Some(_), Some(bytes)) => {
                        entities
                            .insert(key(tenant, id).as_str(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    (Some(e), None) => {
                        let bytes = serde_json::to_vec(e.as_ref()).map_err(|e| fail(&e))?;
                        entities
                            .insert(key(tenant, id).as_str(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    (None, _) => {
                        entities
                            .remove(key(tenant, id).as_str())
                            .map_err(|e| fail(&e))?;
                    }
                }
            }
        }
    }
    let durable = std::time::Instant::now();
    let committed = txn.commit().map_err(|e| fail(&e));
    metrics.fsync_seconds.observe_duration(durable.elapsed());
    committed
}

fn write_outbox(
    batch: &OutboxBatch,
    outbox: &mut redb::Table<u64, &[u8]>,
    statuses: &mut redb::Table<&str, &[u8]>,
    meta: &mut redb::Table<&str, u64>,
    feed: &mut redb::Table<u64, &[u8]>,
) -> Result<(), Box<dyn std::error::Error>> {
    for c in &batch.changes {
        match c {
            OutboxChange::Add(d) | OutboxChange::Put(d) => {
                outbox.insert(d.id, serde_json::to_vec(d)?.as_slice())?;
            }
            OutboxChange::Delete(id) => {
                outbox.remove(id)?;
            }
        }
    }
    for (tenant, id, status) in &batch.statuses {
        statuses.insert(
            key(tenant, id).as_str(),
            serde_json::to_vec(status)?.as_slice(),
        )?;
    }
    if let Some(cursor) = batch.cursor {
        meta.insert("matcher_cursor", cursor)?;
    }
    if let Some(below) = batch.trim_below {
        feed.retain_in(..below, |_, _| false)?;
    }
    Ok(())
}

/// Applies a committed outbox batch; returns the feed records it trimmed.
fn apply_outbox(spine: &mut Spine, rec: &mut Records, batch: &OutboxBatch) -> Option<Feed> {
    for c in &batch.changes {
        match c {
            OutboxChange::Add(d) | OutboxChange::Put(d) => {
                spine.outbox.insert(d.id, Arc::new(d.clone()));
            }
            OutboxChange::Delete(id) => {
                spine.outbox.remove(id);
            }
        }
    }
    for (tenant, id, status) in &batch.statuses {
        if let Some(sub) = rec
            .subscriptions
            .get_mut(tenant)
            .and_then(|m| m.get_mut(id))
        {
            Arc::make_mut(sub).notification.status = status.clone();
        }
    }
    if let Some(cursor) = batch.cursor {
        spine.cursor = spine.cursor.max(cursor);
    }
    let below = batch.trim_below?;
    let kept = spine.feed.split_off(&below);
    Some(std::mem::replace(&mut spine.feed, kept))
}

/// The row key of an administration record.
pub(crate) fn admin_key(kind: AdminKind, id: &str) -> String {
    format!("{}/{id}", kind.as_str())
}

fn apply_contexts(stored: &mut Contexts, changes: &[ContextChange]) {
    for c in changes {
        match c {
            ContextChange::Put { id, record } => {
                stored.insert(id.clone(), record.clone());
            }
            ContextChange::Delete(id) => {
                stored.remove(id);
            }
        }
    }
}

fn apply_subscriptions(
    stored: &mut Subscriptions,
    tenant: &Tenant,
    changes: &[SubscriptionChange],
) {
    let of_tenant = stored.entry(tenant.clone()).or_default();
    for c in changes {
        match c {
            SubscriptionChange::Put(s) => {
                let mut next = (**s).clone();
                // The delivery status is the broker's: a client update never resets it.
                if let Some(current) = of_tenant.get(&s.id) {
                    next.notification.status = current.notification.status.clone();
                }
                of_tenant.insert(s.id.clone(), Arc::new(next));
            }
            SubscriptionChange::Delete(id) => {
                of_tenant.remove(id);
            }
        }
    }
}

fn apply_registrations(
    stored: &mut ByTenant<Registration>,
    tenant: &Tenant,
    changes: &[RegistrationChange],
) {
    let of_tenant = stored.entry(tenant.clone()).or_default();
    for c in changes {
        match c {
            RegistrationChange::Put(r) => {
                of_tenant.insert(r.id.clone(), Arc::new((**r).clone()));
            }
            RegistrationChange::Delete(id) => {
                of_tenant.remove(id);
            }
        }
    }
}

/// Reads one table of JSON records keyed `tenant \0 id` into memory.
pub fn load_table<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
) -> StoreResult<ByTenant<T>> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut out = ByTenant::<T>::new();
    let table = txn.open_table(def).map_err(|e| corrupt(&e))?;
    for row in table.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        let (tenant, id) = k
            .value()
            .split_once('\u{0}')
            .ok_or_else(|| StoreError::Corrupt(format!("bad key {:?}", k.value())))?;
        let tenant = Tenant::parse(tenant).map_err(|e| corrupt(&e))?;
        let record: T = serde_json::from_slice(v.value()).map_err(|e| corrupt(&e))?;
        out.entry(tenant)
            .or_default()
            .insert(id.to_string(), Arc::new(record));
    }
    Ok(out)
}

/// Rows of the entity table read and parsed at once, in parallel, before they are indexed.
const LOAD_BATCH: usize = 16 * 1024;

/// Reads every entity into memory: the JSON of a batch of rows is parsed on every core, then
/// each tenant's indexes are gathered and built once, at the end.
fn load_entities(txn: &redb::ReadTransaction, mem: &mut Memory) -> StoreResult<()> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut loads: HashMap<Tenant, TenantLoad> = HashMap::new();
    let mut rows: Vec<(Tenant, Vec<u8>)> = Vec::with_capacity(LOAD_BATCH);
    let entities = txn.open_table(ENTITIES).map_err(|e| corrupt(&e))?;
    let mut iter = entities.iter().map_err(|e| corrupt(&e))?;
    loop {
        rows.clear();
        for row in iter.by_ref().take(LOAD_BATCH) {
            let (k, v) = row.map_err(|e| corrupt(&e))?;
            let (tenant, _) = k
                .value()
                .split_once('\u{0}')
                .ok_or_else(|| StoreError::Corrupt(format!("bad key {:?}", k.value())))?;
            let tenant = Tenant::parse(tenant).map_err(|e| corrupt(&e))?;
            rows.push((tenant, v.value().to_vec()));
        }
        if rows.is_empty() {
            break;
        }
        let chunk = rows.len().div_ceil(threads);
        let parsed: Vec<StoreResult<Vec<memory::Prepared>>> = std::thread::scope(|s| {
            let workers: Vec<_> = rows
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(_, json)| {
                                let e: Entity = serde_json::from_slice(json)
                                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                                Ok(memory::Prepared::of(e))
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(StoreError::Corrupt("an entity could not be loaded".into()))
                    })
                })
                .collect()
        });
        let mut tenants = rows.iter().map(|(t, _)| t);
        for part in parsed {
            for p in part? {
                let t = tenants.next().expect("one tenant per row");
                if !loads.contains_key(t) {
                    loads.insert(t.clone(), TenantLoad::default());
                }
                let load = loads.get_mut(t).expect("inserted above");
                load.push(p, mem.names_mut());
            }
        }
    }
    for (t, load) in loads {
        mem.install(&t, load);
    }
    Ok(())
}

/// Everything `load` reads back.
pub struct Loaded {
    pub memory: Memory,
    pub contexts: Contexts,
    pub records: Records,
    pub spine: Spine,
    pub temporal: temporal::Headers,
}

/// Reads the whole durable state into memory.
pub fn load(db: &redb::Database) -> StoreResult<Loaded> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut memory = Memory::default();
    // Make sure the tables exist so a fresh database reads as empty.
    {
        let txn = db.begin_write().map_err(|e| corrupt(&e))?;
        txn.open_table(ENTITIES).map_err(|e| corrupt(&e))?;
        txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
        txn.open_table(CONTEXTS).map_err(|e| corrupt(&e))?;
        txn.open_table(ADMIN).map_err(|e| corrupt(&e))?;
        txn.open_table(SUBSCRIPTIONS).map_err(|e| corrupt(&e))?;
        txn.open_table(CSOURCE_SUBSCRIPTIONS)
            .map_err(|e| corrupt(&e))?;
        txn.open_table(REGISTRATIONS).map_err(|e| corrupt(&e))?;
        txn.open_table(FEED).map_err(|e| corrupt(&e))?;
        txn.open_table(OUTBOX).map_err(|e| corrupt(&e))?;
        txn.open_table(SUB_STATUS).map_err(|e| corrupt(&e))?;
        {
            // Stores written before the historian recorded history in the commit of each
            // change: everything in their feed is recorded already. A new store starts at 0.
            let mut meta = txn.open_table(META).map_err(|e| corrupt(&e))?;
            if meta
                .get("history_cursor")
                .map_err(|e| corrupt(&e))?
                .is_none()
            {
                let recorded = meta
                    .get("feed_seq")
                    .map_err(|e| corrupt(&e))?
                    .map_or(0, |v| v.value());
                meta.insert("history_cursor", recorded)
                    .map_err(|e| corrupt(&e))?;
            }
        }
        txn.open_table(temporal::INSTANCES)
            .map_err(|e| corrupt(&e))?;
        txn.open_table(temporal::HEADERS).map_err(|e| corrupt(&e))?;
        txn.commit().map_err(|e| corrupt(&e))?;
    }
    let txn = db.begin_read().map_err(|e| corrupt(&e))?;
    let tenants = txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
    for row in tenants.iter().map_err(|e| corrupt(&e))? {
        let (name, _) = row.map_err(|e| corrupt(&e))?;
        let tenant = Tenant::parse(name.value()).map_err(|e| corrupt(&e))?;
        memory.apply(&tenant, Vec::new());
    }
    load_entities(&txn, &mut memory)?;
    let mut contexts = Contexts::new();
    let table = txn.open_table(CONTEXTS).map_err(|e| corrupt(&e))?;
    for row in table.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        contexts.insert(k.value().to_string(), v.value().to_vec());
    }
    let mut records = Records {
        subscriptions: load_table(&txn, SUBSCRIPTIONS)?,
        csource_subscriptions: load_table(&txn, CSOURCE_SUBSCRIPTIONS)?,
        registrations: load_table(&txn, REGISTRATIONS)?,
    };
    let statuses: ByTenant<DeliveryStatus> = load_table(&txn, SUB_STATUS)?;
    for (tenant, of_tenant) in statuses {
        for (id, status) in of_tenant {
            if let Some(sub) = records
                .subscriptions
                .get_mut(&tenant)
                .and_then(|m| m.get_mut(&id))
            {
                Arc::make_mut(sub).notification.status = (*status).clone();
            }
        }
    }
    let mut spine = Spine::default();
    let meta = txn.open_table(META).map_err(|e| corrupt(&e))?;
    let counter = |name: &str| -> StoreResult<u64> {
        Ok(meta
            .get(name)
            .map_err(|e| corrupt(&e))?
            .map(|v| v.value())
            .unwrap_or(0))
    };
    spine.last_seq = counter("feed_seq")?;
    spine.cursor = counter("matcher_cursor")?;
    spine.history_cursor = counter("history_cursor")?;
    spine.next_delivery = counter("delivery_id")?;
    let feed = txn.open_table(FEED).map_err(|e| corrupt(&e))?;
    for row in feed.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        let record: EntityChange = serde_json::from_slice(v.value()).map_err(|e| corrupt(&e))?;
        spine.feed.insert(k.value(), Arc::new(record));
    }
    let outbox = txn.open_table(OUTBOX).map_err(|e| corrupt(&e))?;
    for row in outbox.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        let d: Delivery = serde_json::from_slice(v.value()).map_err(|e| corrupt(&e))?;
        spine.outbox.insert(k.value(), Arc::new(d));
    }
    let temporal = temporal::load(&txn)?;
    Ok(Loaded {
        memory,
        contexts,
        records,
        spine,
        temporal,
    })
}
