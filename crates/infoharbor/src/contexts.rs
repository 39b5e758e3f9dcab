//! Makes Hosted and ImplicitlyCreated `@context`s (5.13) survive a restart: loads them from the
//! store into the registry at start-up, and writes every later change through to the store
//! before the registry acknowledges it.

use std::sync::Arc;

use anyhow::Context as _;
use harbor_jsonld::registry::{ContextRegistry, StoredContext};
use harbor_store::{ContextChange, ContextStore};

/// Loads the stored contexts into `registry` and installs the write-through hook.
pub fn persist(registry: &ContextRegistry, store: Arc<dyn ContextStore>) -> anyhow::Result<()> {
    let stored = store
        .contexts()
        .into_iter()
        .map(|(id, record)| {
            serde_json::from_slice::<StoredContext>(&record)
                .with_context(|| format!("stored @context {id} cannot be read"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    registry.import_hosted(stored);
    registry.set_persist_hook(Arc::new(move |c: &StoredContext, deleted: bool| {
        let change = if deleted {
            ContextChange::Delete(c.local_id.clone())
        } else {
            let record = serde_json::to_vec(c).map_err(|e| e.to_string())?;
            ContextChange::Put {
                id: c.local_id.clone(),
                record,
            }
        };
        // The registry is synchronous; wait for the commit without stalling other tasks.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "storing an @context needs the broker's runtime".to_string())?;
        let store = store.clone();
        tokio::task::block_in_place(|| runtime.block_on(store.commit_contexts(vec![change])))
            .map_err(|e| format!("storing @context {} failed: {e}", c.local_id))
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use harbor_jsonld::registry::ContextKind;
    use harbor_model::Tenant;
    use harbor_store_embedded::EmbeddedStore;
    use serde_json::json;

    use super::*;

    fn wired(dir: &std::path::Path) -> (ContextRegistry, Arc<EmbeddedStore>) {
        let store = Arc::new(EmbeddedStore::open(dir).unwrap());
        let registry = ContextRegistry::new("http://localhost:1026");
        persist(&registry, store.clone()).unwrap();
        (registry, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosted_and_implicit_contexts_survive_a_restart_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = Tenant::parse("city").unwrap();
        let body = json!({"@context": {"speed": "https://example.org/speed"}});
        let (hosted, implicit, dropped) = {
            let (registry, _store) = wired(dir.path());
            let hosted = registry.add_hosted(&tenant, &body).unwrap();
            let implicit = registry
                .add_implicit(&tenant, &json!([{"a": "https://example.org/a"}]))
                .unwrap();
            let dropped = registry.add_hosted(&tenant, &body).unwrap();
            registry.delete(&tenant, &dropped.local_id).unwrap();
            (
                hosted.local_id.clone(),
                implicit.local_id.clone(),
                dropped.local_id.clone(),
            )
        };
        let (registry, _store) = wired(dir.path());
        let found = registry
            .find(&tenant, &hosted)
            .expect("hosted context reloaded");
        assert_eq!(found.kind, ContextKind::Hosted);
        assert_eq!(found.document, body);
        let found = registry
            .find(&tenant, &implicit)
            .expect("implicit context reloaded");
        assert_eq!(found.kind, ContextKind::ImplicitlyCreated);
        assert!(
            registry.find(&tenant, &dropped).is_none(),
            "a deleted context stays deleted"
        );
        let other = Tenant::parse("other").unwrap();
        assert!(
            registry.find(&other, &hosted).is_none(),
            "still owned by its tenant"
        );
    }
}
