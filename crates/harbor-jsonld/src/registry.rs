//! The `/jsonldContexts` store (5.13): Hosted contexts added by clients, Cached copies of
//! remote contexts fetched by the resolver, ImplicitlyCreated contexts made for subscriptions,
//! and the built-in core context, with their usage metadata.
//!
//! Visibility (5.5.10, suite 5134_01): Hosted and ImplicitlyCreated entries belong to the
//! tenant that created them; Cached entries and the core context are shared by all tenants.
//! Hits (suite 053_04, 053_06, 053_08): every resolution that uses an entry counts one; serving
//! a Cached or ImplicitlyCreated entry through `GET /jsonldContexts/{id}` counts one more,
//! after the response is built; serving a Hosted entry does not count.
//! Persistence stays outside this crate: Hosted and ImplicitlyCreated entries are handed to an
//! optional hook on every change and can be exported and imported as [`StoredContext`].
//! Bounds: Cached entries share a budget of bytes (set by the resolver, least recently used
//! first out, preloaded URLs pinned); what clients store is held to [`StoredLimits`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use harbor_model::{time, Tenant, Timestamp};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::context::{content_key, core_document, is_core_context_url, Context, CORE_CONTEXT_URL};
use crate::lru::{ByteLru, Inserted};
use crate::{weight, JsonLdError};

/// The path under which the broker serves stored contexts; a Hosted entry's URL is the
/// broker's base URL followed by this path and the entry's local id.
pub const CONTEXTS_PATH: &str = "/ngsi-ld/v1/jsonldContexts/";

/// The local id of the built-in core context entry.
pub const CORE_LOCAL_ID: &str = "ngsi-ld-core-context";

/// Memory for Cached entries until the resolver sets its share of the cache budget.
const DEFAULT_CACHED_BYTES: usize = 16 * 1024 * 1024;

/// What an entry is charged beyond its document: the entry itself, its id and URL in two
/// indexes, and its cache slot.
const ENTRY_OVERHEAD: usize = 512;

/// Bounds on the contexts clients make the broker store: Hosted ones (`POST /jsonldContexts`)
/// and ImplicitlyCreated ones (the inline `@context` of a subscription). Sizes are bytes of
/// compact JSON of the `@context`; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredLimits {
    /// Largest stored `@context`.
    pub max_document_bytes: usize,
    /// Most Hosted contexts of one tenant.
    pub max_hosted_per_tenant: usize,
    /// Bytes of Hosted and ImplicitlyCreated contexts of all tenants together.
    pub max_total_bytes: usize,
}

/// How an entry came to be stored (5.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContextKind {
    Hosted,
    Cached,
    ImplicitlyCreated,
}

impl ContextKind {
    /// Reads the `kind` query parameter; anything else is `BadRequestData` (suite 052_04).
    pub fn parse(s: &str) -> Result<Self, JsonLdError> {
        match s {
            "Hosted" => Ok(ContextKind::Hosted),
            "Cached" => Ok(ContextKind::Cached),
            "ImplicitlyCreated" => Ok(ContextKind::ImplicitlyCreated),
            other => Err(JsonLdError::NotAllowed(format!(
                "kind must be Hosted, Cached or ImplicitlyCreated, got \"{other}\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Hosted => "Hosted",
            ContextKind::Cached => "Cached",
            ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
        }
    }
}

/// One stored context with its usage counters.
#[derive(Debug)]
pub struct ContextEntry {
    pub local_id: String,
    pub url: String,
    pub kind: ContextKind,
    /// The owning tenant of a Hosted or ImplicitlyCreated entry; `None` when shared.
    pub tenant: Option<Tenant>,
    pub created_at: Timestamp,
    /// The whole document as served: `{"@context": ...}`.
    pub document: Value,
    hits: AtomicU64,
    /// Microseconds since the epoch of the last use; `i64::MIN` when never used.
    last_usage: AtomicI64,
}

impl ContextEntry {
    fn new(
        local_id: String,
        url: String,
        kind: ContextKind,
        tenant: Option<Tenant>,
        created_at: Timestamp,
        document: Value,
    ) -> Self {
        ContextEntry {
            local_id,
            url,
            kind,
            tenant,
            created_at,
            document,
            hits: AtomicU64::new(0),
            last_usage: AtomicI64::new(i64::MIN),
        }
    }

    /// The value of the document's `@context` member.
    pub fn context_value(&self) -> &Value {
        &self.document["@context"]
    }

    pub fn number_of_hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn last_usage(&self) -> Option<Timestamp> {
        match self.last_usage.load(Ordering::Relaxed) {
            i64::MIN => None,
            micros => chrono::DateTime::from_timestamp_micros(micros),
        }
    }

    /// Counts one use now.
    pub fn record_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.last_usage
            .store(time::now().timestamp_micros(), Ordering::Relaxed);
    }

    /// The metadata object of `details=true` (5.13.3 / 5.13.4).
    pub fn details(&self) -> Value {
        let mut m = Map::new();
        m.insert("URL".into(), Value::String(self.url.clone()));
        m.insert("localId".into(), Value::String(self.local_id.clone()));
        m.insert("kind".into(), Value::String(self.kind.as_str().into()));
        m.insert(
            "createdAt".into(),
            Value::String(time::format(&self.created_at)),
        );
        if let Some(t) = self.last_usage() {
            m.insert("lastUsage".into(), Value::String(time::format(&t)));
        }
        m.insert("numberOfHits".into(), Value::from(self.number_of_hits()));
        Value::Object(m)
    }

    fn visible_to(&self, tenant: &Tenant) -> bool {
        self.tenant.as_ref().is_none_or(|t| t == tenant)
    }

    fn stored(&self) -> StoredContext {
        StoredContext {
            local_id: self.local_id.clone(),
            kind: self.kind,
            tenant: self.tenant.clone().unwrap_or_default(),
            created_at: self.created_at,
            document: self.document.clone(),
        }
    }
}

/// A Hosted or ImplicitlyCreated entry as it is persisted by the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredContext {
    pub local_id: String,
    pub kind: ContextKind,
    pub tenant: Tenant,
    pub created_at: Timestamp,
    pub document: Value,
}

/// Called with an entry before it is added (`false`) or deleted (`true`); an error aborts
/// the operation.
pub type PersistHook = Arc<dyn Fn(&StoredContext, bool) -> Result<(), String> + Send + Sync>;

struct Inner {
    by_id: HashMap<String, Arc<ContextEntry>>,
    /// URL → local id, for Cached entries (remote URL) and local ones (own URL).
    by_url: HashMap<String, String>,
    /// (tenant, content key) → local id of the ImplicitlyCreated entry for that content.
    implicit: HashMap<(Tenant, String), String>,
    /// The Cached entries by URL, within their budget of bytes.
    cached: ByteLru<Arc<ContextEntry>>,
    /// Hosted entries per tenant, those being stored included.
    hosted: HashMap<Tenant, usize>,
    /// Bytes of Hosted and ImplicitlyCreated contexts, those being stored included.
    stored_bytes: usize,
}

impl Inner {
    fn new(cached_bytes: usize) -> Self {
        Inner {
            by_id: HashMap::new(),
            by_url: HashMap::new(),
            implicit: HashMap::new(),
            cached: ByteLru::new(cached_bytes),
            hosted: HashMap::new(),
            stored_bytes: 0,
        }
    }

    /// Counts a stored entry in (`add`) or out of the quotas.
    fn account(&mut self, tenant: &Tenant, kind: ContextKind, bytes: usize, add: bool) {
        if add {
            self.stored_bytes += bytes;
            if kind == ContextKind::Hosted {
                *self.hosted.entry(tenant.clone()).or_default() += 1;
            }
            return;
        }
        self.stored_bytes = self.stored_bytes.saturating_sub(bytes);
        if kind == ContextKind::Hosted {
            if let Some(n) = self.hosted.get_mut(tenant) {
                *n -= 1;
                if *n == 0 {
                    self.hosted.remove(tenant);
                }
            }
        }
    }

    /// Drops evicted Cached entries from the indexes (unless their URL was stored anew).
    fn unindex_evicted(&mut self, evicted: &[Arc<ContextEntry>]) {
        for e in evicted {
            if self
                .by_id
                .get(&e.local_id)
                .is_some_and(|cur| Arc::ptr_eq(cur, e))
            {
                self.by_id.remove(&e.local_id);
            }
            if self.by_url.get(&e.url) == Some(&e.local_id) && !self.by_id.contains_key(&e.local_id)
            {
                self.by_url.remove(&e.url);
            }
        }
    }
}

/// The size by which a stored `@context` is held to [`StoredLimits`].
fn stored_size(context: &Value) -> usize {
    content_key(context).len()
}

/// The `/jsonldContexts` store of one broker.
pub struct ContextRegistry {
    base_url: String,
    core: Arc<ContextEntry>,
    inner: RwLock<Inner>,
    generation: AtomicU64,
    hook: RwLock<Option<PersistHook>>,
    /// URLs of preloaded documents: their Cached entries are never evicted.
    pinned: HashSet<String>,
    stored_limits: StoredLimits,
}

impl ContextRegistry {
    /// A registry whose Hosted entries are served under `base_url` (scheme, host and port
    /// of the broker as clients reach it, e.g. `http://localhost:1026`).
    pub fn new(base_url: &str) -> Self {
        let document: Value =
            serde_json::from_str(core_document()).expect("built-in core context is JSON");
        let core = ContextEntry::new(
            CORE_LOCAL_ID.into(),
            CORE_CONTEXT_URL.into(),
            ContextKind::Cached,
            None,
            time::now(),
            document,
        );
        ContextRegistry {
            base_url: base_url.trim_end_matches('/').to_string(),
            core: Arc::new(core),
            inner: RwLock::new(Inner::new(DEFAULT_CACHED_BYTES)),
            generation: AtomicU64::new(0),
            hook: RwLock::new(None),
            pinned: HashSet::new(),
            stored_limits: StoredLimits::default(),
        }
    }

    /// Keeps the Cached entries of these URLs (the operator's preloaded documents) whatever
    /// the budget, without counting them in it.
    pub fn with_pinned(mut self, urls: impl IntoIterator<Item = String>) -> Self {
        self.pinned = urls.into_iter().collect();
        self
    }

    /// Holds Hosted and ImplicitlyCreated contexts to `limits`.
    pub fn with_stored_limits(mut self, limits: StoredLimits) -> Self {
        self.stored_limits = limits;
        self
    }

    /// Whether `url` is a preloaded document's.
    pub fn is_pinned(&self, url: &str) -> bool {
        self.pinned.contains(url)
    }

    /// Bounds the memory of Cached entries (not pinned), evicting the least recently used
    /// ones that no longer fit.
    pub fn limit_cached_bytes(&self, bytes: usize) {
        let mut inner = self.inner.write();
        let evicted = inner.cached.set_budget(bytes);
        inner.unindex_evicted(&evicted);
        drop(inner);
        drop(evicted);
    }

    /// Bytes held by Cached entries that are not pinned.
    pub fn cached_bytes(&self) -> usize {
        self.inner.read().cached.used()
    }

    /// Installs the persistence hook for Hosted and ImplicitlyCreated entries.
    pub fn set_persist_hook(&self, hook: PersistHook) {
        *self.hook.write() = Some(hook);
    }

    /// The URL under which this broker serves the entry with `local_id`.
    pub fn url_of(&self, local_id: &str) -> String {
        format!("{}{CONTEXTS_PATH}{local_id}", self.base_url)
    }

    /// Changes whenever an entry is removed or replaced, so that compiled contexts built from
    /// it are dropped.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn persist(&self, entry: &ContextEntry, deleted: bool) -> Result<(), JsonLdError> {
        let hook = self.hook.read().clone();
        match hook {
            Some(hook) => hook(&entry.stored(), deleted).map_err(JsonLdError::Internal),
            None => Ok(()),
        }
    }

    /// Adds a Hosted context from the body of `POST /jsonldContexts` (5.13.2): a JSON object
    /// whose `@context` is a URL, an object of term definitions, or an array of those.
    pub fn add_hosted(
        &self,
        tenant: &Tenant,
        body: &Value,
    ) -> Result<Arc<ContextEntry>, JsonLdError> {
        let Some(context) = body.as_object().and_then(|o| o.get("@context")) else {
            return Err(JsonLdError::Invalid(
                "the body must be a JSON object with an \"@context\" member".into(),
            ));
        };
        validate_context(context)?;
        self.insert_local(tenant, ContextKind::Hosted, context.clone())
    }

    /// The ImplicitlyCreated entry holding `context` for `tenant` (e.g. the array `@context`
    /// of a subscription, so that JSON notifications can reference it in one Link header),
    /// created on first use; identical contexts share one entry.
    pub fn add_implicit(
        &self,
        tenant: &Tenant,
        context: &Value,
    ) -> Result<Arc<ContextEntry>, JsonLdError> {
        validate_context(context)?;
        let key = (tenant.clone(), content_key(context));
        if let Some(e) = self
            .inner
            .read()
            .implicit
            .get(&key)
            .and_then(|id| self.by_id(id))
        {
            return Ok(e);
        }
        self.insert_local(tenant, ContextKind::ImplicitlyCreated, context.clone())
    }

    fn by_id(&self, id: &str) -> Option<Arc<ContextEntry>> {
        self.inner.read().by_id.get(id).cloned()
    }

    fn insert_local(
        &self,
        tenant: &Tenant,
        kind: ContextKind,
        context: Value,
    ) -> Result<Arc<ContextEntry>, JsonLdError> {
        let bytes = stored_size(&context);
        self.reserve(tenant, kind, bytes)?;
        let stored = self.store_local(tenant, kind, context);
        if stored.is_err() {
            self.inner.write().account(tenant, kind, bytes, false);
        }
        stored
    }

    /// Counts a context about to be stored in the quotas, or refuses it: too large for one
    /// document (`413`), or over the tenant's count or the broker's bytes (quota).
    fn reserve(&self, tenant: &Tenant, kind: ContextKind, bytes: usize) -> Result<(), JsonLdError> {
        let limits = self.stored_limits;
        let what = match kind {
            ContextKind::Hosted => "a hosted @context",
            _ => "the @context of a subscription, which the broker stores,",
        };
        if limits.max_document_bytes > 0 && bytes > limits.max_document_bytes {
            return Err(JsonLdError::TooLarge(format!(
                "{what} may have at most {} bytes (as compact JSON); this one has {bytes}",
                limits.max_document_bytes
            )));
        }
        let mut inner = self.inner.write();
        if kind == ContextKind::Hosted && limits.max_hosted_per_tenant > 0 {
            let have = inner.hosted.get(tenant).copied().unwrap_or(0);
            if have >= limits.max_hosted_per_tenant {
                return Err(JsonLdError::Quota(format!(
                    "{} already has {have} hosted @contexts, the most one tenant may have \
                     (hosted_contexts_max); delete one first",
                    shown(tenant)
                )));
            }
        }
        if limits.max_total_bytes > 0 && inner.stored_bytes + bytes > limits.max_total_bytes {
            return Err(JsonLdError::Quota(format!(
                "{what} of {bytes} bytes does not fit: stored @contexts already hold {} of \
                 the {} bytes this broker keeps for them (hosted_contexts_bytes)",
                inner.stored_bytes, limits.max_total_bytes
            )));
        }
        inner.account(tenant, kind, bytes, true);
        Ok(())
    }

    fn store_local(
        &self,
        tenant: &Tenant,
        kind: ContextKind,
        context: Value,
    ) -> Result<Arc<ContextEntry>, JsonLdError> {
        let local_id = uuid::Uuid::new_v4().to_string();
        let url = self.url_of(&local_id);
        let document = json!({ "@context": context });
        let entry = ContextEntry::new(
            local_id,
            url,
            kind,
            Some(tenant.clone()),
            time::now(),
            document,
        );
        self.persist(&entry, false)?;
        let entry = Arc::new(entry);
        self.index(entry.clone());
        Ok(entry)
    }

    fn index(&self, entry: Arc<ContextEntry>) {
        let mut inner = self.inner.write();
        if entry.kind == ContextKind::ImplicitlyCreated {
            let key = (
                entry.tenant.clone().unwrap_or_default(),
                content_key(entry.context_value()),
            );
            inner.implicit.insert(key, entry.local_id.clone());
        }
        inner
            .by_url
            .insert(entry.url.clone(), entry.local_id.clone());
        inner.by_id.insert(entry.local_id.clone(), entry);
    }

    /// The entries `tenant` may see, optionally of one kind: the core context first, then
    /// the others by creation time.
    pub fn list(&self, tenant: &Tenant, kind: Option<ContextKind>) -> Vec<Arc<ContextEntry>> {
        let mut out: Vec<Arc<ContextEntry>> = self
            .inner
            .read()
            .by_id
            .values()
            .filter(|e| e.visible_to(tenant) && kind.is_none_or(|k| k == e.kind))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.local_id.cmp(&b.local_id))
        });
        if kind.is_none_or(|k| k == ContextKind::Cached) {
            out.insert(0, self.core.clone());
        }
        out
    }

    /// The entry `tenant` may see by local id or by URL (the path segment of
    /// `/jsonldContexts/{id}`, percent-decoded; the suite uses both).
    pub fn find(&self, tenant: &Tenant, id: &str) -> Option<Arc<ContextEntry>> {
        if id == CORE_LOCAL_ID || is_core_context_url(id) {
            return Some(self.core.clone());
        }
        let inner = self.inner.read();
        let found = inner
            .by_id
            .get(id)
            .or_else(|| inner.by_url.get(id).and_then(|lid| inner.by_id.get(lid)))
            .or_else(|| local_id_in_url(id).and_then(|lid| inner.by_id.get(lid)))?;
        found.visible_to(tenant).then(|| found.clone())
    }

    /// `GET /jsonldContexts/{id}` (5.13.4): the document, or its metadata with `details`.
    pub fn serve(&self, tenant: &Tenant, id: &str, details: bool) -> Result<Value, JsonLdError> {
        let entry = self.find(tenant, id).ok_or_else(|| not_found(id))?;
        let body = if details {
            entry.details()
        } else {
            entry.document.clone()
        };
        if entry.kind != ContextKind::Hosted {
            entry.record_hit();
        }
        Ok(body)
    }

    /// `DELETE /jsonldContexts/{id}` without `reload` (5.13.5). The core context cannot be
    /// deleted (suite 051_08). With `reload=true` use `ContextResolver::reload` instead.
    pub fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), JsonLdError> {
        let entry = self.find(tenant, id).ok_or_else(|| not_found(id))?;
        if Arc::ptr_eq(&entry, &self.core) {
            return Err(JsonLdError::NotAllowed(
                "the core @context cannot be deleted".into(),
            ));
        }
        if entry.kind != ContextKind::Cached {
            self.persist(&entry, true)?;
        }
        self.remove(&entry);
        Ok(())
    }

    fn remove(&self, entry: &ContextEntry) {
        let mut inner = self.inner.write();
        if inner
            .by_id
            .get(&entry.local_id)
            .is_some_and(|e| std::ptr::eq(&**e, entry))
        {
            inner.by_id.remove(&entry.local_id);
            match (entry.kind, &entry.tenant) {
                (ContextKind::Cached, _) => drop(inner.cached.remove(&entry.url)),
                (kind, Some(tenant)) => {
                    inner.account(tenant, kind, stored_size(entry.context_value()), false)
                }
                (_, None) => {}
            }
        }
        if inner.by_url.get(&entry.url) == Some(&entry.local_id) {
            inner.by_url.remove(&entry.url);
        }
        inner.implicit.retain(|_, lid| *lid != entry.local_id);
        drop(inner);
        self.bump();
    }

    /// The entry `reload=true` applies to (5.13.5): `None` for the core context (built in,
    /// nothing to reload); an error for unknown ids and for Hosted or ImplicitlyCreated
    /// entries (`BadRequestData`, suite 051_04 and 051_07).
    pub fn reload_target(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<Arc<ContextEntry>>, JsonLdError> {
        let Some(entry) = self.find(tenant, id) else {
            return Err(JsonLdError::NotAllowed(format!(
                "cannot reload \"{id}\": there is no Cached @context with this id or URL"
            )));
        };
        if Arc::ptr_eq(&entry, &self.core) {
            return Ok(None);
        }
        if entry.kind != ContextKind::Cached {
            return Err(JsonLdError::NotAllowed(format!(
                "only Cached @contexts can be reloaded; \"{id}\" is {}",
                entry.kind.as_str()
            )));
        }
        Ok(Some(entry))
    }

    /// The entry a resolver may use for `url` without fetching: a Cached copy, or a local
    /// Hosted / ImplicitlyCreated entry named by its serving URL (any host, since clients may
    /// reach the broker under several names).
    pub fn lookup_url(&self, url: &str) -> Option<Arc<ContextEntry>> {
        let inner = self.inner.read();
        if let Some(e) = inner.by_url.get(url).and_then(|lid| inner.by_id.get(lid)) {
            if e.kind == ContextKind::Cached {
                inner.cached.get(url); // marks it used
            }
            return Some(e.clone());
        }
        let e = local_id_in_url(url).and_then(|lid| inner.by_id.get(lid))?;
        (e.kind != ContextKind::Cached).then(|| e.clone())
    }

    /// Stores (or replaces) the Cached copy of a remote document, within the budget of
    /// Cached entries: the least recently used ones are evicted to make room. A document
    /// heavier than the whole budget is returned but not kept. Evicting changes no content,
    /// so compiled contexts built from an evicted document stay valid; replacing does.
    pub fn insert_cached(&self, url: &str, document: Value) -> Arc<ContextEntry> {
        let weight = weight::json(&document) + 2 * url.len() + ENTRY_OVERHEAD;
        let pinned = self.is_pinned(url);
        let old = self.inner.read().by_url.get(url).cloned();
        let local_id = old
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let entry = Arc::new(ContextEntry::new(
            local_id.clone(),
            url.to_string(),
            ContextKind::Cached,
            None,
            time::now(),
            document,
        ));
        let mut inner = self.inner.write();
        let evicted = match inner
            .cached
            .insert(url.to_string(), entry.clone(), weight, pinned)
        {
            Inserted::Stored(evicted) => {
                inner.by_url.insert(url.to_string(), local_id.clone());
                inner.by_id.insert(local_id, entry.clone());
                evicted
            }
            Inserted::TooHeavy(_) => {
                tracing::debug!(
                    url,
                    weight,
                    "a @context heavier than the whole cache is not kept"
                );
                let gone = inner.cached.remove(url);
                if old.is_some() {
                    inner.by_id.remove(&local_id);
                    inner.by_url.remove(url);
                }
                gone.into_iter().collect()
            }
        };
        inner.unindex_evicted(&evicted);
        drop(inner);
        drop(evicted);
        if old.is_some() {
            self.bump();
        }
        entry
    }

    /// Every Hosted and ImplicitlyCreated entry, for a full backup.
    pub fn export_hosted(&self) -> Vec<StoredContext> {
        let mut out: Vec<StoredContext> = self
            .inner
            .read()
            .by_id
            .values()
            .filter(|e| e.kind != ContextKind::Cached)
            .map(|e| e.stored())
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.local_id.cmp(&b.local_id))
        });
        out
    }

    /// Loads entries saved by the persistence hook or [`ContextRegistry::export_hosted`] at
    /// start-up (URLs are rebuilt from the current base URL; the hook is not called).
    pub fn import_hosted(&self, items: Vec<StoredContext>) {
        for s in items {
            if s.kind == ContextKind::Cached {
                continue;
            }
            let url = self.url_of(&s.local_id);
            self.inner.write().account(
                &s.tenant,
                s.kind,
                stored_size(&s.document["@context"]),
                true,
            );
            let e = ContextEntry::new(
                s.local_id,
                url,
                s.kind,
                Some(s.tenant),
                s.created_at,
                s.document,
            );
            self.index(Arc::new(e));
        }
    }
}

fn shown(t: &Tenant) -> String {
    if t.is_default() {
        "the default tenant".into()
    } else {
        format!("tenant \"{}\"", t.as_str())
    }
}

fn not_found(id: &str) -> JsonLdError {
    JsonLdError::NotFound(format!("there is no @context with id or URL \"{id}\""))
}

/// The local id in a URL of the form `.../ngsi-ld/v1/jsonldContexts/{id}`.
fn local_id_in_url(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once(CONTEXTS_PATH)?;
    let id = rest.split(['?', '#']).next()?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Checks the shape of a stored `@context` value: a URL, an object of term definitions that
/// compiles, or an array of those (5.13.2.4, suite 5132_01).
pub fn validate_context(context: &Value) -> Result<(), JsonLdError> {
    let check_url = |s: &str| {
        if s.contains(':') {
            Ok(())
        } else {
            Err(JsonLdError::Invalid(format!(
                "\"{s}\" is not an absolute URL"
            )))
        }
    };
    match context {
        Value::String(s) => check_url(s),
        Value::Object(_) => Context::compile(std::slice::from_ref(context)).map(|_| ()),
        Value::Array(items) if items.is_empty() => Err(JsonLdError::Invalid(
            "an @context array must not be empty".into(),
        )),
        Value::Array(items) => {
            let mut objects = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => check_url(s)?,
                    Value::Object(_) | Value::Null => objects.push(item.clone()),
                    other => {
                        return Err(JsonLdError::Invalid(format!(
                            "item {i} of the @context array must be a URL or an object, got {other}"
                        )))
                    }
                }
            }
            Context::compile(&objects).map(|_| ())
        }
        other => Err(JsonLdError::Invalid(format!(
            "@context must be a URL, an object or an array, got {other}"
        ))),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
