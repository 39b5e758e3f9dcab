//! The notification pipeline (5.8.6, the spine of the broker):
//!
//! ```text
//! change feed ─► matcher ─► outbox ─► per-subscription delivery queues ─► Transport
//!                                                └─► settle: delete / retry later / dead letter,
//!                                                    subscription status members
//! ```
//!
//! * The feed is written by the store in the same commit as the change, so nothing
//!   acknowledged is missed; the matcher moves its durable cursor in the same commit that adds
//!   the deliveries it found, so after a crash it resumes exactly where it stopped.
//! * A delivery leaves the outbox only once the receiver confirmed it (at least once). A
//!   failed attempt is retried with exponential backoff; after `max_attempts`, or at once
//!   when retrying cannot help, it is dead-lettered: kept, listed, replayable, droppable.
//! * Each subscription has its own queue and one delivery in flight, so notifications keep
//!   their order and a slow or dead endpoint only ever delays its own subscriptions.
//!   Deliveries waiting in one queue are sent together (one notification, several entities).

mod compile;
mod csource;
mod render;
pub mod view;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use harbor_jsonld::resolve::ContextResolver;
use harbor_jsonld::Context;
use harbor_model::subscription::DeliveryStatus;
use harbor_model::{time, Delivery, EntityChange, Subscription, Tenant, Timestamp};
use harbor_store::{EntityStore, FeedStore, OutboxBatch, OutboxChange, SubscriptionStore};
use serde_json::Value;
use tracing::Instrument as _;

pub use compile::Compiled;
use compile::TenantIndex;

/// One notification ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `endpoint.uri`.
    pub uri: String,
    pub body: Vec<u8>,
    pub content_type: String,
    /// `Link`, `NGSILD-Tenant` and the `receiverInfo` entries, in order.
    pub headers: Vec<(String, String)>,
    /// The `notifierInfo` entries (MQTT version and QoS).
    pub notifier_info: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Why a notification was not delivered.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Worth another attempt later (unreachable, timeout, 5xx).
    Retry(String),
    /// Another attempt cannot help (4xx, unusable endpoint).
    Fail(String),
}

/// Sends notifications over the wire (HTTP, MQTT); implemented by `harbor-outbound`.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, msg: &Outgoing) -> Result<(), SendError>;
}

/// How deliveries are retried and bounded.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Timeout of one attempt when the endpoint names none.
    pub default_timeout: Duration,
    /// Longest timeout an endpoint may ask for.
    pub max_timeout: Duration,
    /// Most entities in one notification.
    pub max_entities: usize,
    /// Feed records the matcher takes at a time.
    pub match_batch: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: 10,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            default_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            max_entities: 100,
            match_batch: 512,
        }
    }
}

type SubKey = (Tenant, String);

#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<Delivery>>,
    running: bool,
}

/// What a delivery worker reports.
enum Settle {
    Delivered(Vec<u64>),
    Put(Vec<Delivery>),
    Status(SubKey, DeliveryStatus),
}

/// The notification pipeline of one broker.
pub struct Notifier {
    me: Weak<Notifier>,
    feed: Arc<dyn FeedStore>,
    subs: Arc<dyn SubscriptionStore>,
    entities: Arc<dyn EntityStore>,
    resolver: Arc<ContextResolver>,
    transport: Arc<dyn Transport>,
    cfg: NotifyConfig,
    index: RwLock<HashMap<Tenant, TenantIndex>>,
    queues: Mutex<HashMap<SubKey, Queue>>,
    /// When each subscription was last notified (throttling, 5.2.12).
    last_notified: Mutex<HashMap<SubKey, Timestamp>>,
    /// Live delivery status per subscription (persisted by the settler).
    statuses: Mutex<HashMap<SubKey, DeliveryStatus>>,
    /// Subscriptions to registrations, compiled (5.11.7).
    csource: RwLock<csource::CsourceIndex>,
    /// Their delivery status (kept in memory).
    csource_statuses: Mutex<HashMap<SubKey, DeliveryStatus>>,
    /// The registrations, for periodic notifications of subscriptions to them.
    registrations: std::sync::OnceLock<Arc<dyn harbor_store::RegistrationStore>>,
    /// What each subscription's owner may see (access policies); `None` sees everything.
    view: std::sync::OnceLock<Arc<dyn view::ChangeView>>,
    settle_tx: tokio::sync::mpsc::UnboundedSender<Settle>,
    settle_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Settle>>>,
    metrics: crate::metrics::NotifyMetrics,
    /// Lit while the matcher and the settler run.
    beacon: harbor_metrics::Beacon,
}

impl Notifier {
    pub fn new(
        feed: Arc<dyn FeedStore>,
        subs: Arc<dyn SubscriptionStore>,
        entities: Arc<dyn EntityStore>,
        resolver: Arc<ContextResolver>,
        transport: Arc<dyn Transport>,
        cfg: NotifyConfig,
    ) -> Arc<Self> {
        let (settle_tx, settle_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new_cyclic(move |me| Notifier {
            me: me.clone(),
            feed,
            subs,
            entities,
            resolver,
            transport,
            cfg,
            index: RwLock::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            last_notified: Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            csource: RwLock::new(HashMap::new()),
            csource_statuses: Mutex::new(HashMap::new()),
            registrations: std::sync::OnceLock::new(),
            view: std::sync::OnceLock::new(),
            settle_tx,
            settle_rx: Mutex::new(Some(settle_rx)),
            metrics: crate::metrics::NotifyMetrics::default(),
            beacon: harbor_metrics::Beacon::new(),
        })
    }

    /// The change feed the pipeline reads, for other readers that follow it live (the
    /// console's event streams).
    pub fn feed(&self) -> &Arc<dyn FeedStore> {
        &self.feed
    }

    /// What the pipeline counts.
    pub fn metrics(&self) -> &crate::metrics::NotifyMetrics {
        &self.metrics
    }

    /// Starting until [`Notifier::start`] has the matcher and the settler running; down for
    /// good when either stopped.
    pub fn beacon(&self) -> harbor_metrics::Beacon {
        self.beacon.clone()
    }

    /// Counts a finished attempt of a notification about `changes`.
    fn count_attempt(
        &self,
        sent: std::time::Instant,
        ok: bool,
        changes: &[Arc<EntityChange>],
        done: Timestamp,
    ) {
        self.metrics
            .attempt_seconds
            .observe_duration(sent.elapsed());
        if !ok {
            self.metrics.failed.inc();
            return;
        }
        self.metrics.sent.inc();
        if let Some(oldest) = changes.iter().map(|c| c.at).min() {
            if let Ok(waited) = (done - oldest).to_std() {
                self.metrics.latency_seconds.observe_duration(waited);
            }
        }
    }

    /// Updates the live delivery status of a subscription and returns it.
    fn bump_status(
        &self,
        key: &SubKey,
        stored: &Subscription,
        f: impl FnOnce(&mut DeliveryStatus),
    ) -> DeliveryStatus {
        let mut all = self.statuses.lock().expect("status lock");
        let st = all
            .entry(key.clone())
            .or_insert_with(|| stored.notification.status.clone());
        f(st);
        st.clone()
    }

    /// Gives the pipeline the registrations, for the notifications of subscriptions to them
    /// (5.11.7). Call before `start`.
    pub fn with_registrations(
        self: Arc<Self>,
        store: Arc<dyn harbor_store::RegistrationStore>,
    ) -> Arc<Self> {
        let _ = self.registrations.set(store);
        self
    }

    /// Filters what each subscription's owner may see (see [`view`]).
    pub fn with_view(self: Arc<Self>, v: Arc<dyn view::ChangeView>) -> Arc<Self> {
        let _ = self.view.set(v);
        self
    }

    /// `change` as the owner of `sub` may see it; `None` when it may see none of it.
    fn seen(
        &self,
        tenant: &Tenant,
        sub: &Subscription,
        change: &Arc<EntityChange>,
    ) -> Option<Arc<EntityChange>> {
        let (Some(owner), Some(v)) = (&sub.owner, self.view.get()) else {
            return Some(change.clone());
        };
        match v.view(tenant, owner, change) {
            view::Seen::Whole => Some(change.clone()),
            view::Seen::Hidden => None,
            view::Seen::Part(p) => Some(p),
        }
    }

    /// `registration` as the owner of the subscription to registrations `sub` may see it.
    fn seen_registration(
        &self,
        tenant: &Tenant,
        sub: &Subscription,
        registration: &harbor_model::Registration,
    ) -> Option<harbor_model::Registration> {
        let (Some(owner), Some(v)) = (&sub.owner, self.view.get()) else {
            return Some(registration.clone());
        };
        v.registration(tenant, owner, &Arc::new(registration.clone()))
            .map(|r| (*r).clone())
    }

    /// Compiles every stored subscription, queues the outbox left by the last run, and
    /// starts the matcher, the settler and the periodic notifications. Call once, inside
    /// the runtime.
    pub async fn start(self: &Arc<Self>) {
        for tenant in self.entities.tenants() {
            for sub in self.subs.subscriptions(&tenant) {
                self.subscription_changed(&tenant, sub).await;
            }
        }
        if let Some(regs) = self.registrations.get() {
            for tenant in self.entities.tenants() {
                for sub in regs.csource_subscriptions(&tenant) {
                    // Compiled only: the initial notification was sent when it was created.
                    if let Ok(c) = self.compile(sub.clone()).await {
                        self.csource
                            .write()
                            .expect("csource lock")
                            .entry(tenant.clone())
                            .or_default()
                            .insert(sub.id.clone(), Arc::new(c));
                    }
                }
            }
        }
        for d in self.feed.outbox() {
            if !d.dead {
                self.enqueue(d);
            }
        }
        let rx = self.settle_rx.lock().expect("settle lock").take();
        if let Some(rx) = rx {
            let running = self.beacon.hold();
            let me = self.clone();
            tokio::spawn(async move {
                let _running = running;
                me.settle_loop(rx).await
            });
        }
        let running = self.beacon.hold();
        let me = self.clone();
        tokio::spawn(async move {
            let _running = running;
            me.match_loop().await
        });
        tokio::spawn(self.clone().periodic_loop());
    }

    /// (Re)compiles a created or updated subscription into the index.
    pub async fn subscription_changed(&self, tenant: &Tenant, sub: Arc<Subscription>) {
        let id = sub.id.clone();
        match self.compile(sub).await {
            Ok(c) => {
                self.index
                    .write()
                    .expect("index lock")
                    .entry(tenant.clone())
                    .or_default()
                    .insert(Arc::new(c));
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.as_str(), subscription = %id, error = %e, "subscription cannot be matched");
                if let Some(i) = self.index.write().expect("index lock").get_mut(tenant) {
                    i.remove(&id);
                }
            }
        }
    }

    /// Forgets a deleted subscription; what it was still owed is dropped.
    pub fn subscription_removed(&self, tenant: &Tenant, id: &str) {
        if let Some(i) = self.index.write().expect("index lock").get_mut(tenant) {
            i.remove(id);
        }
        let key = (tenant.clone(), id.to_string());
        self.last_notified
            .lock()
            .expect("throttle lock")
            .remove(&key);
        self.statuses.lock().expect("status lock").remove(&key);
    }

    async fn compile(&self, sub: Arc<Subscription>) -> Result<Compiled, String> {
        let ctx = match &sub.context {
            Value::Null => Context::core(),
            v => self
                .resolver
                .resolve_internal(Some(v))
                .await
                .map_err(|e| e.to_string())?,
        };
        let render_ctx = match &sub.jsonld_context {
            Some(url) => self
                .resolver
                .resolve_internal(Some(&Value::String(url.clone())))
                .await
                .map_err(|e| e.to_string())?,
            None => ctx.clone(),
        };
        Compiled::new(sub, ctx, render_ctx)
    }

    fn compiled(&self, tenant: &Tenant, id: &str) -> Option<Arc<Compiled>> {
        self.index
            .read()
            .expect("index lock")
            .get(tenant)?
            .get(id)
            .cloned()
    }

    // ---- matcher -------------------------------------------------------------------------

    async fn match_loop(self: Arc<Self>) {
        let mut cursor = self.feed.matcher_cursor();
        loop {
            let changes = self.feed.changes_after(cursor, self.cfg.match_batch);
            let Some(last) = changes.last().map(|c| c.seq) else {
                self.feed.wait_for_changes(cursor).await;
                continue;
            };
            let adds = self.match_changes(&changes);
            let batch = OutboxBatch {
                changes: adds.into_iter().map(OutboxChange::Add).collect(),
                cursor: Some(last),
                ..Default::default()
            };
            match self.feed.commit_outbox(batch).await {
                Ok(added) => {
                    for d in added {
                        self.enqueue(d);
                    }
                    cursor = last;
                }
                Err(e) => {
                    tracing::error!(error = %e, "recording notifications failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The deliveries owed for these changes: one per subscription, carrying every change
    /// it matched (a new one whenever the same entity comes again, so that each state of an
    /// entity is notified).
    fn match_changes(&self, changes: &[Arc<EntityChange>]) -> Vec<Delivery> {
        let now = time::now();
        let index = self.index.read().expect("index lock");
        let mut out: Vec<Delivery> = Vec::new();
        let mut open: HashMap<SubKey, (usize, Vec<String>)> = HashMap::new();
        let mut throttle = self.last_notified.lock().expect("throttle lock");
        for c in changes {
            let Some(ti) = index.get(&c.tenant) else {
                continue;
            };
            let resolve = |id: &str| {
                self.entities
                    .get(&c.tenant, id)
                    .ok()
                    .flatten()
                    .map(|e| (*e).clone())
            };
            for m in ti.candidates(c) {
                let Some(seen) = self.seen(&c.tenant, &m.sub, c) else {
                    continue;
                };
                if !m.matches(&seen, now, &resolve) {
                    continue;
                }
                let key = (c.tenant.clone(), m.sub.id.clone());
                if let Some(secs) = m.sub.throttling.filter(|s| *s > 0.0) {
                    let fresh = !open.contains_key(&key);
                    if fresh {
                        if let Some(last) = throttle.get(&key) {
                            let gap = (now - *last).num_milliseconds() as f64 / 1000.0;
                            if gap < secs {
                                continue;
                            }
                        }
                        throttle.insert(key.clone(), now);
                    } else {
                        continue;
                    }
                }
                match open.get_mut(&key) {
                    Some((i, ids))
                        if !ids.contains(&c.id)
                            && out[*i].changes.len() < self.cfg.max_entities =>
                    {
                        out[*i].changes.push(c.seq);
                        ids.push(c.id.clone());
                    }
                    _ => {
                        open.insert(key, (out.len(), vec![c.id.clone()]));
                        out.push(Delivery {
                            id: 0,
                            tenant: c.tenant.clone(),
                            subscription: m.sub.id.clone(),
                            changes: vec![c.seq],
                            created_at: now,
                            attempts: 0,
                            not_before: None,
                            last_error: None,
                            dead: false,
                        });
                    }
                }
            }
        }
        out
    }

    // ---- delivery ------------------------------------------------------------------------

    fn enqueue(&self, d: Arc<Delivery>) {
        let key = (d.tenant.clone(), d.subscription.clone());
        let start = {
            let mut queues = self.queues.lock().expect("queue lock");
            let q = queues.entry(key.clone()).or_default();
            q.items.push_back(d);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(me.run_queue(key));
            }
        }
    }

    /// Delivers one subscription's queue in order until it is empty.
    async fn run_queue(self: Arc<Self>, key: SubKey) {
        loop {
            let batch: Vec<Arc<Delivery>> = {
                let mut queues = self.queues.lock().expect("queue lock");
                let Some(q) = queues.get_mut(&key) else {
                    return;
                };
                if q.items.is_empty() {
                    queues.remove(&key);
                    return;
                }
                let mut batch = Vec::new();
                let mut entities = 0;
                while let Some(d) = q.items.front() {
                    let fits = batch.is_empty()
                        || (d.attempts == 0 && entities + d.changes.len() <= self.cfg.max_entities);
                    if !fits {
                        break;
                    }
                    entities += d.changes.len();
                    batch.push(q.items.pop_front().expect("front exists"));
                    if batch[0].attempts > 0 {
                        break;
                    }
                }
                batch
            };
            if let Some(wait) = batch[0].not_before {
                let ms = (wait - time::now()).num_milliseconds();
                if ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                }
            }
            // One span per attempt; the transport's own span (endpoint, bytes) is its child.
            // Counts are i64: a tracer takes unsigned values as text.
            let span = tracing::debug_span!(
                "notification",
                tenant = key.0.as_str(),
                subscription = %key.1,
                deliveries = batch.len() as i64,
                attempt = i64::from(batch[0].attempts) + 1,
            );
            self.deliver(&key, batch).instrument(span).await;
        }
    }

    async fn deliver(&self, key: &SubKey, batch: Vec<Arc<Delivery>>) {
        let ids: Vec<u64> = batch.iter().map(|d| d.id).collect();
        let (Some(sub), Some(compiled)) = (
            self.subs.subscription(&key.0, &key.1),
            self.compiled(&key.0, &key.1),
        ) else {
            // The subscription is gone: nothing is owed any more.
            let _ = self.settle_tx.send(Settle::Delivered(ids));
            return;
        };
        let changes: Vec<Arc<EntityChange>> = batch
            .iter()
            .flat_map(|d| d.changes.iter())
            .filter_map(|seq| self.feed.change(*seq))
            .filter_map(|c| self.seen(&key.0, &sub, &c))
            .collect();
        if changes.is_empty() {
            let _ = self.settle_tx.send(Settle::Delivered(ids));
            return;
        }
        let now = time::now();
        let msg = self.outgoing(&key.0, &compiled, &sub, &changes, now);
        let sent = std::time::Instant::now();
        let result = self.transport.send(&msg).await;
        let done = time::now();
        self.count_attempt(sent, result.is_ok(), &changes, done);
        let status = self.bump_status(key, &sub, |st| st.record(now, done, result.is_ok()));
        match result {
            Ok(()) => {
                let _ = self.settle_tx.send(Settle::Delivered(ids));
            }
            Err(e) => {
                let (reason, permanent) = match e {
                    SendError::Retry(r) => (r, false),
                    SendError::Fail(r) => (r, true),
                };
                tracing::debug!(subscription = %key.1, error = %reason, "notification failed");
                let mut retry = Vec::new();
                let mut puts = Vec::new();
                for d in batch {
                    let mut d = (*d).clone();
                    d.attempts += 1;
                    d.last_error = Some(reason.clone());
                    if permanent || d.attempts >= self.cfg.max_attempts {
                        d.dead = true;
                        d.not_before = None;
                        self.metrics.dead_lettered.inc();
                        tracing::warn!(subscription = %key.1, delivery = d.id, error = %reason, "notification dead-lettered");
                    } else {
                        // `endpoint.cooldown` (5.2.15): at least this long after a failure.
                        let cooldown = sub
                            .notification
                            .endpoint
                            .cooldown
                            .filter(|c| c.is_finite() && *c > 0.0)
                            .map(|ms| Duration::from_millis(ms.min(86_400_000.0) as u64))
                            .unwrap_or_default();
                        let backoff = self.backoff(d.attempts).max(cooldown);
                        d.not_before =
                            Some(done + chrono::Duration::milliseconds(backoff.as_millis() as i64));
                        retry.push(Arc::new(d.clone()));
                    }
                    puts.push(d);
                }
                let _ = self.settle_tx.send(Settle::Put(puts));
                if !retry.is_empty() {
                    let mut queues = self.queues.lock().expect("queue lock");
                    let q = queues.entry(key.clone()).or_default();
                    for d in retry.into_iter().rev() {
                        q.items.push_front(d);
                    }
                }
            }
        }
        let _ = self.settle_tx.send(Settle::Status(key.clone(), status));
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.cfg
            .retry_base
            .saturating_mul(factor)
            .min(self.cfg.retry_max)
    }

    fn outgoing(
        &self,
        tenant: &Tenant,
        compiled: &Compiled,
        sub: &Subscription,
        changes: &[Arc<EntityChange>],
        now: Timestamp,
    ) -> Outgoing {
        let lookup = |id: &str| -> harbor_model::NgsiResult<Option<Arc<harbor_model::Entity>>> {
            Ok(self
                .entities
                .get(tenant, id)
                .ok()
                .flatten()
                .and_then(|e| crate::entities::visible(e, now)))
        };
        let r = render::notification(compiled, sub, changes, now, &lookup);
        self.message(tenant, sub, r.body, &r.content_type, r.link)
    }

    /// A rendered notification addressed as `sub`'s endpoint asks: `Link` (for plain JSON),
    /// the tenant, `receiverInfo` headers, `notifierInfo`, the attempt's timeout.
    fn message(
        &self,
        tenant: &Tenant,
        sub: &Subscription,
        body: Vec<u8>,
        content_type: &str,
        link: Option<String>,
    ) -> Outgoing {
        let endpoint = &sub.notification.endpoint;
        let mut headers = Vec::new();
        if let Some(url) = link {
            headers.push(("Link".to_string(), crate::context_link(&url)));
        }
        if !tenant.is_default() {
            headers.push(("NGSILD-Tenant".to_string(), tenant.as_str().to_string()));
        }
        for kv in endpoint.receiver_info.iter().flatten() {
            headers.push((kv.key.clone(), kv.value.clone()));
        }
        let timeout = endpoint
            .timeout
            .filter(|t| *t > 0.0)
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(self.cfg.default_timeout)
            .min(self.cfg.max_timeout);
        Outgoing {
            uri: endpoint.uri.clone(),
            body,
            content_type: content_type.to_string(),
            headers,
            notifier_info: endpoint
                .notifier_info
                .iter()
                .flatten()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
            timeout,
        }
    }

    // ---- settling ------------------------------------------------------------------------

    /// How often the feed is trimmed of what nobody needs any more: often enough that the
    /// records of a busy broker (each holding an entity state) do not pile up in memory.
    const TRIM_EVERY: Duration = Duration::from_millis(500);

    async fn settle_loop(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Settle>) {
        let mut last_trim = std::time::Instant::now();
        let mut tick = tokio::time::interval(Self::TRIM_EVERY);
        loop {
            let first = tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => Some(s),
                    None => return,
                },
                _ = tick.tick() => None,
            };
            let Some(first) = first else {
                // Quiet time: drop the feed records nobody needs any more, so that the feed
                // does not grow with changes no subscription matched.
                let Some(oldest) = self.oldest_retained() else {
                    continue;
                };
                // One pass over the outbox per tick (the trim point reads every delivery).
                let point = self.trim_point();
                if oldest < point {
                    let batch = OutboxBatch {
                        trim_below: Some(point),
                        ..Default::default()
                    };
                    if let Err(e) = self.feed.commit_outbox(batch).await {
                        tracing::error!(error = %e, "trimming the change feed failed");
                    }
                    last_trim = std::time::Instant::now();
                }
                continue;
            };
            let mut batch = OutboxBatch::default();
            let mut statuses: HashMap<SubKey, DeliveryStatus> = HashMap::new();
            let mut next = Some(first);
            while let Some(s) = next.take() {
                match s {
                    Settle::Delivered(ids) => {
                        batch
                            .changes
                            .extend(ids.into_iter().map(OutboxChange::Delete));
                    }
                    Settle::Put(ds) => batch.changes.extend(ds.into_iter().map(OutboxChange::Put)),
                    Settle::Status(key, st) => {
                        statuses.insert(key, st);
                    }
                }
                if batch.changes.len() < 4096 {
                    next = rx.try_recv().ok();
                }
            }
            batch.statuses = statuses
                .into_iter()
                .map(|((t, id), st)| (t, id, st))
                .collect();
            if last_trim.elapsed() > Self::TRIM_EVERY {
                batch.trim_below = Some(self.trim_point());
                last_trim = std::time::Instant::now();
            }
            if let Err(e) = self.feed.commit_outbox(batch).await {
                // The deliveries stay in the outbox and are sent again after a restart.
                tracing::error!(error = %e, "settling notifications failed");
            }
        }
    }

    /// The sequence number of the oldest feed record still retained.
    fn oldest_retained(&self) -> Option<u64> {
        self.feed.changes_after(0, 1).first().map(|c| c.seq)
    }

    /// The oldest feed record still needed: by the matcher, by a delivery in the outbox, or
    /// by another reader of the feed (the historian).
    fn trim_point(&self) -> u64 {
        let mut keep = self
            .feed
            .matcher_cursor()
            .saturating_add(1)
            .min(self.feed.trim_floor());
        for d in self.feed.outbox() {
            if let Some(min) = d.changes.iter().min() {
                keep = keep.min(*min);
            }
        }
        keep
    }

    // ---- periodic notifications (timeInterval) -------------------------------------------

    async fn periodic_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last: HashMap<SubKey, Timestamp> = HashMap::new();
        let mut last_csource: HashMap<SubKey, Timestamp> = HashMap::new();
        loop {
            tick.tick().await;
            self.csource_periodic(&mut last_csource);
            let now = time::now();
            let due: Vec<(Tenant, Arc<Compiled>)> = {
                let index = self.index.read().expect("index lock");
                index
                    .iter()
                    .flat_map(|(t, ti)| ti.all().map(move |c| (t.clone(), c.clone())))
                    .filter(|(t, c)| {
                        let Some(secs) = c.sub.time_interval else {
                            return false;
                        };
                        if c.sub.status(now)
                            != harbor_model::subscription::SubscriptionStatus::Active
                        {
                            return false;
                        }
                        let key = (t.clone(), c.sub.id.clone());
                        last.get(&key)
                            .is_none_or(|l| (now - *l).num_milliseconds() as f64 >= secs * 1000.0)
                    })
                    .collect()
            };
            for (tenant, c) in due {
                last.insert((tenant.clone(), c.sub.id.clone()), now);
                if let Some(me) = self.me.upgrade() {
                    tokio::spawn(async move { me.periodic_once(tenant, c).await });
                }
            }
        }
    }

    /// One periodic notification: every entity the subscription selects, as it is now.
    async fn periodic_once(&self, tenant: Tenant, c: Arc<Compiled>) {
        let Some(sub) = self.subs.subscription(&tenant, &c.sub.id) else {
            return;
        };
        let now = time::now();
        let query = harbor_store::EntityQuery::default();
        let Ok(found) = self.entities.query(&tenant, &query) else {
            return;
        };
        let changes: Vec<Arc<EntityChange>> = found
            .entities
            .into_iter()
            .map(|e| {
                Arc::new(EntityChange {
                    seq: 0,
                    tenant: tenant.clone(),
                    id: e.id.clone(),
                    at: now,
                    after: Some(e),
                    before: None,
                    changed: Vec::new(),
                })
            })
            .filter_map(|change| self.seen(&tenant, &sub, &change))
            .filter(|change| change.after.as_deref().is_some_and(|e| c.selects(e)))
            .take(self.cfg.max_entities)
            .collect();
        if changes.is_empty() {
            return;
        }
        let msg = self.outgoing(&tenant, &c, &sub, &changes, now);
        let sent = std::time::Instant::now();
        let result = self.transport.send(&msg).await;
        let done = time::now();
        // Periodic notifications show the state as it is, not a change: no latency.
        self.count_attempt(sent, result.is_ok(), &[], done);
        let key = (tenant, sub.id.clone());
        let status = self.bump_status(&key, &sub, |st| st.record(now, done, result.is_ok()));
        let _ = self.settle_tx.send(Settle::Status(key, status));
    }

    // ---- dead letters --------------------------------------------------------------------

    /// The dead-lettered deliveries of a tenant (every tenant when `None`).
    pub fn dead_letters(&self, tenant: Option<&Tenant>) -> Vec<Arc<Delivery>> {
        self.feed
            .outbox()
            .into_iter()
            .filter(|d| d.dead && tenant.is_none_or(|t| &d.tenant == t))
            .collect()
    }

    /// Deliveries in the outbox that are not dead: owed and not yet confirmed.
    pub fn pending(&self) -> usize {
        self.feed.outbox().iter().filter(|d| !d.dead).count()
    }

    /// Deliveries in the outbox: (pending, dead-lettered), in one pass.
    pub fn outbox_depth(&self) -> (usize, usize) {
        let outbox = self.feed.outbox();
        let dead = outbox.iter().filter(|d| d.dead).count();
        (outbox.len() - dead, dead)
    }

    /// The delivery status as it is now (ahead of what is stored by a few milliseconds).
    pub fn live_status(&self, tenant: &Tenant, id: &str) -> Option<DeliveryStatus> {
        self.statuses
            .lock()
            .expect("status lock")
            .get(&(tenant.clone(), id.to_string()))
            .cloned()
    }

    /// Feed records still kept (for the matcher, or for deliveries owed).
    pub fn retained(&self) -> u64 {
        match self.oldest_retained() {
            Some(oldest) => self.feed.last_seq() + 1 - oldest,
            None => 0,
        }
    }

    /// Feed records the matcher has not handled yet.
    pub fn unmatched(&self) -> u64 {
        self.feed
            .last_seq()
            .saturating_sub(self.feed.matcher_cursor())
    }

    /// The dead letters an operator picked: of `tenant` (all when `None`), with these ids
    /// (all when `None`).
    fn picked(&self, tenant: Option<&Tenant>, ids: Option<&[u64]>) -> Vec<Arc<Delivery>> {
        self.dead_letters(tenant)
            .into_iter()
            .filter(|d| ids.is_none_or(|ids| ids.contains(&d.id)))
            .collect()
    }

    async fn commit_changes(&self, changes: Vec<OutboxChange>) -> Result<(), String> {
        self.feed
            .commit_outbox(OutboxBatch {
                changes,
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Puts dead-lettered deliveries back in their queues (fresh attempts); returns how many.
    pub async fn replay(
        &self,
        tenant: Option<&Tenant>,
        ids: Option<&[u64]>,
    ) -> Result<usize, String> {
        let picked: Vec<Delivery> = self
            .picked(tenant, ids)
            .into_iter()
            .map(|d| Delivery {
                attempts: 0,
                not_before: None,
                dead: false,
                ..(*d).clone()
            })
            .collect();
        let n = picked.len();
        self.commit_changes(picked.iter().cloned().map(OutboxChange::Put).collect())
            .await?;
        for d in picked {
            self.enqueue(Arc::new(d));
        }
        Ok(n)
    }

    /// Drops dead-lettered deliveries for good; returns how many.
    pub async fn drop_dead(
        &self,
        tenant: Option<&Tenant>,
        ids: Option<&[u64]>,
    ) -> Result<usize, String> {
        let picked = self.picked(tenant, ids);
        let n = picked.len();
        self.commit_changes(picked.iter().map(|d| OutboxChange::Delete(d.id)).collect())
            .await?;
        Ok(n)
    }
}
