//! Turning a request's `@context` (URL, object, or array of both) into a compiled [`Context`]:
//! core URLs are never fetched, local and Cached documents come from the registry, other URLs
//! through a [`ContextFetcher`]; compiled results are cached by the exact `@context` value.
//!
//! Memory: the compiled contexts and the fetched documents (the registry's Cached entries)
//! share one budget of bytes, [`ResolverLimits::cache_bytes`], two thirds for compiled
//! contexts and one third for documents (a compiled context weighs about twice its parsed
//! document, see `weight`); each side evicts its least recently used entries. Contexts the
//! operator preloaded are pinned: kept, and not counted. A compiled context only refers
//! weakly to the documents it was built from, so evicting a document frees it at once; the
//! compiled context stays valid (the document did not change, it is only no longer kept).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use harbor_model::Tenant;
use parking_lot::RwLock;
use serde_json::Value;

use crate::context::{content_key, is_core_context_url, Context};
use crate::lru::{ByteLru, Inserted};
use crate::registry::{ContextEntry, ContextKind, ContextRegistry};
use crate::JsonLdError;

/// Fetches a remote `@context` document. `Err` means it could not be retrieved
/// (`LdContextNotAvailable`). A document that was retrieved but is not JSON should be
/// returned as `Ok(Value::Null)`: it is then reported as an invalid `@context`
/// (`BadRequestData`, suite 556_01).
#[async_trait]
pub trait ContextFetcher: Send + Sync {
    async fn fetch(&self, url: &str) -> Result<Value, String>;
}

/// Bounds on the work one resolution may do.
#[derive(Debug, Clone)]
pub struct ResolverLimits {
    /// How deep remote documents may reference further `@context`s.
    pub max_depth: usize,
    /// Largest remote document accepted, in bytes of compact JSON (preloaded documents are
    /// exempt: the operator chose them).
    pub max_document_bytes: usize,
    /// Most documents (remote or stored) one `@context` may pull in.
    pub max_documents: usize,
    /// Memory for compiled contexts and fetched documents together, in bytes.
    pub cache_bytes: usize,
    /// Largest inline `@context` whose compiled form is cached (bytes of compact JSON).
    pub max_cached_key: usize,
}

impl Default for ResolverLimits {
    fn default() -> Self {
        ResolverLimits {
            max_depth: 8,
            max_document_bytes: 1024 * 1024,
            max_documents: 64,
            cache_bytes: 64 * 1024 * 1024,
            max_cached_key: 64 * 1024,
        }
    }
}

struct Compiled {
    ctx: Arc<Context>,
    /// Stored entries the context was built from; each use counts a hit on those still kept.
    deps: Vec<Weak<ContextEntry>>,
}

struct Cache {
    generation: u64,
    lru: ByteLru<Compiled>,
}

/// Resolves and caches `@context`s for requests.
pub struct ContextResolver {
    fetcher: Arc<dyn ContextFetcher>,
    registry: Arc<ContextRegistry>,
    limits: ResolverLimits,
    cache: RwLock<Cache>,
}

/// What a cached compiled context is charged beyond its term maps: its key, its entry, and
/// the slot and queue entry of the cache.
const COMPILED_OVERHEAD: usize = 256;

/// The outcome of one pass over a `@context` with the documents at hand.
enum Walk {
    Done,
    /// This URL is needed and not stored yet.
    Missing(String),
}

#[derive(Default)]
struct Collected {
    docs: Vec<Value>,
    deps: Vec<Arc<ContextEntry>>,
}

impl ContextResolver {
    pub fn new(fetcher: Arc<dyn ContextFetcher>, registry: Arc<ContextRegistry>) -> Self {
        Self::with_limits(fetcher, registry, ResolverLimits::default())
    }

    pub fn with_limits(
        fetcher: Arc<dyn ContextFetcher>,
        registry: Arc<ContextRegistry>,
        limits: ResolverLimits,
    ) -> Self {
        let documents = limits.cache_bytes / 3;
        registry.limit_cached_bytes(documents);
        let cache = Cache {
            generation: registry.generation(),
            lru: ByteLru::new(limits.cache_bytes - documents),
        };
        ContextResolver {
            fetcher,
            registry,
            limits,
            cache: RwLock::new(cache),
        }
    }

    /// Bytes held by compiled contexts that are not pinned.
    pub fn compiled_bytes(&self) -> usize {
        self.cache.read().lru.used()
    }

    pub fn registry(&self) -> &Arc<ContextRegistry> {
        &self.registry
    }

    /// The compiled context of a request's `@context`; `None` gives the core context. Counts
    /// a use of every stored document it involves (`numberOfHits`, 5.13.4).
    pub async fn resolve(&self, ctx: Option<&Value>) -> Result<Arc<Context>, JsonLdError> {
        self.resolve_counting(ctx, true).await
    }

    /// As `resolve`, for the broker's own use (e.g. compiling a stored subscription for
    /// notifications): no `numberOfHits` is counted, as no client used the context.
    pub async fn resolve_internal(&self, ctx: Option<&Value>) -> Result<Arc<Context>, JsonLdError> {
        self.resolve_counting(ctx, false).await
    }

    async fn resolve_counting(
        &self,
        ctx: Option<&Value>,
        count: bool,
    ) -> Result<Arc<Context>, JsonLdError> {
        let Some(ctx) = ctx else {
            return Ok(Context::core());
        };
        if only_core(ctx) {
            return Ok(Context::core());
        }
        let key = content_key(ctx);
        if let Some(hit) = self.lookup(&key, count) {
            return Ok(hit);
        }
        check_shape(ctx)?;
        let generation = self.registry.generation();
        let mut fetched = 0usize;
        let collected = loop {
            let mut out = Collected::default();
            let mut chain = Vec::new();
            match self.walk(ctx, 0, &mut chain, &mut out)? {
                Walk::Done => break out,
                Walk::Missing(url) => {
                    fetched += 1;
                    if fetched > self.limits.max_documents {
                        return Err(too_many(self.limits.max_documents));
                    }
                    self.fetch_into_registry(&url).await?;
                }
            }
        };
        let compiled = Arc::new(Context::compile(&collected.docs)?);
        if count {
            for d in &collected.deps {
                d.record_hit();
            }
        }
        if key.len() <= self.limits.max_cached_key {
            self.insert(generation, key, compiled.clone(), collected.deps);
        }
        Ok(compiled)
    }

    /// The compiled context for `ctx` if it is cached already (no IO; counts the use).
    pub fn resolve_cached(&self, ctx: &Value) -> Option<Arc<Context>> {
        if only_core(ctx) {
            return Some(Context::core());
        }
        self.lookup(&content_key(ctx), true)
    }

    /// `DELETE /jsonldContexts/{id}?reload=true` (5.13.5): fetches a Cached context again and
    /// replaces the stored copy. A failed fetch leaves the old copy in place
    /// (`LdContextNotAvailable`, suite 051_05 / 5135_01). Reloading the core context does
    /// nothing (it is built in).
    pub async fn reload(&self, tenant: &Tenant, id: &str) -> Result<(), JsonLdError> {
        let Some(entry) = self.registry.reload_target(tenant, id)? else {
            return Ok(());
        };
        let document = self.fetch_checked(&entry.url).await?;
        self.registry.insert_cached(&entry.url, document);
        Ok(())
    }

    fn lookup(&self, key: &str, count: bool) -> Option<Arc<Context>> {
        let generation = self.registry.generation();
        let cache = self.cache.read();
        if cache.generation != generation {
            return None;
        }
        let hit = cache.lru.get(key)?;
        if count {
            for d in hit.deps.iter().filter_map(Weak::upgrade) {
                d.record_hit();
            }
        }
        Some(hit.ctx.clone())
    }

    /// Caches a compiled context built while the registry was at `generation`; a context
    /// built across a registry change is not cached (it may use a removed document). The
    /// compiled form of a preloaded URL is pinned; anything else is charged its weight and
    /// may evict older entries, and one heavier than the whole budget is not cached.
    fn insert(
        &self,
        generation: u64,
        key: String,
        ctx: Arc<Context>,
        deps: Vec<Arc<ContextEntry>>,
    ) {
        if self.registry.generation() != generation {
            return;
        }
        let pinned = deps.len() == 1
            && deps[0].kind == ContextKind::Cached
            && self.registry.is_pinned(&deps[0].url)
            && key == content_key(&Value::String(deps[0].url.clone()));
        let weight = ctx.heap_bytes() + key.len() + COMPILED_OVERHEAD;
        let compiled = Compiled {
            ctx,
            deps: deps.iter().map(Arc::downgrade).collect(),
        };
        let mut cache = self.cache.write();
        let stale = if cache.generation != generation {
            cache.generation = generation;
            cache.lru.clear()
        } else {
            Vec::new()
        };
        let inserted = cache.lru.insert(key, compiled, weight, pinned);
        drop(cache);
        if let Inserted::TooHeavy(_) = inserted {
            tracing::debug!(
                weight,
                "a compiled @context heavier than the whole cache is not cached"
            );
        }
        drop(stale);
    }

    /// Flattens `v` into term-definition documents, in order, using stored documents only.
    fn walk(
        &self,
        v: &Value,
        depth: usize,
        chain: &mut Vec<String>,
        out: &mut Collected,
    ) -> Result<Walk, JsonLdError> {
        match v {
            Value::String(url) => self.walk_url(url, depth, chain, out),
            Value::Array(items) => {
                for item in items {
                    if matches!(item, Value::Array(_)) {
                        return Err(JsonLdError::Invalid(
                            "an @context array must not contain arrays".into(),
                        ));
                    }
                    if let Walk::Missing(url) = self.walk(item, depth, chain, out)? {
                        return Ok(Walk::Missing(url));
                    }
                }
                Ok(Walk::Done)
            }
            Value::Object(_) | Value::Null => {
                out.docs.push(v.clone());
                Ok(Walk::Done)
            }
            other => Err(JsonLdError::Invalid(format!(
                "@context must be a URL, an object or an array of those, got {other}"
            ))),
        }
    }

    fn walk_url(
        &self,
        url: &str,
        depth: usize,
        chain: &mut Vec<String>,
        out: &mut Collected,
    ) -> Result<Walk, JsonLdError> {
        if is_core_context_url(url) {
            return Ok(Walk::Done);
        }
        if depth >= self.limits.max_depth {
            return Err(JsonLdError::Invalid(format!(
                "@context \"{url}\" is nested more than {} levels deep",
                self.limits.max_depth
            )));
        }
        if chain.iter().any(|u| u == url) {
            return Err(JsonLdError::Invalid(format!(
                "@context \"{url}\" includes itself"
            )));
        }
        let Some(entry) = self.registry.lookup_url(url) else {
            return Ok(Walk::Missing(url.to_string()));
        };
        if out.deps.len() >= self.limits.max_documents {
            return Err(too_many(self.limits.max_documents));
        }
        out.deps.push(entry.clone());
        chain.push(url.to_string());
        let walked = self.walk(entry.context_value(), depth + 1, chain, out);
        chain.pop();
        walked
    }

    async fn fetch_into_registry(&self, url: &str) -> Result<(), JsonLdError> {
        let document = self.fetch_checked(url).await?;
        self.registry.insert_cached(url, document);
        Ok(())
    }

    /// Fetches a remote document and checks that it is a JSON-LD context document.
    async fn fetch_checked(&self, url: &str) -> Result<Value, JsonLdError> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(JsonLdError::Invalid(format!(
                "@context \"{url}\" is not an http(s) URL"
            )));
        }
        tracing::debug!(url, "fetching remote @context");
        let document = self.fetcher.fetch(url).await.map_err(|e| {
            JsonLdError::NotAvailable(format!("the @context at {url} could not be retrieved: {e}"))
        })?;
        if !self.registry.is_pinned(url) {
            let size = document.to_string().len();
            let limit = self.limits.max_document_bytes;
            if size > limit {
                return Err(JsonLdError::NotAvailable(format!(
                    "the @context at {url} is not used: it is {size} bytes, more than the \
                     {limit} bytes this broker accepts for a remote @context"
                )));
            }
        }
        match document.get("@context") {
            Some(Value::String(_) | Value::Object(_) | Value::Array(_) | Value::Null) => {
                Ok(document)
            }
            Some(other) => Err(JsonLdError::Invalid(format!(
                "the document at {url} has an invalid \"@context\": {other}"
            ))),
            None => Err(JsonLdError::Invalid(format!(
                "the document at {url} is not a JSON-LD @context (no \"@context\" member)"
            ))),
        }
    }
}

fn too_many(max: usize) -> JsonLdError {
    JsonLdError::Invalid(format!("the @context pulls in more than {max} documents"))
}

/// Rejects a badly shaped `@context` before anything is fetched for it.
fn check_shape(ctx: &Value) -> Result<(), JsonLdError> {
    let item = |v: &Value| match v {
        Value::String(_) | Value::Object(_) | Value::Null => Ok(()),
        other => Err(JsonLdError::Invalid(format!(
            "an @context entry must be a URL or an object, got {other}"
        ))),
    };
    match ctx {
        Value::Array(items) => items.iter().try_for_each(item),
        other => item(other),
    }
}

/// Whether a `@context` names nothing but core contexts.
fn only_core(ctx: &Value) -> bool {
    match ctx {
        Value::String(url) => is_core_context_url(url),
        Value::Array(items) => items
            .iter()
            .all(|i| i.as_str().is_some_and(is_core_context_url)),
        _ => false,
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
