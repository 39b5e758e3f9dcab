//! The background task that makes the expiry of transient entities and attributes (4.22)
//! durable. Readers already stop seeing them at `expiresAt`; this deletes them through the
//! engine so they leave the store, its indexes and the disk.

use std::sync::Arc;
use std::time::Duration;

use harbor_engine::Engine;
use harbor_model::time;

/// Sweeps every `every` until the task is dropped. A failed sweep is logged and retried on
/// the next tick.
pub async fn expired_forever(engine: Arc<Engine>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match engine.sweep_expired(time::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(entities = n, "deleted expired transient state"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired entities failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use harbor_engine::Limits;
    use harbor_model::{AttrValue, Attribute, Entity, Tenant};
    use harbor_store::{Change, EntityStore};
    use harbor_store_embedded::EmbeddedStore;

    use super::*;

    fn entity(id: &str, expires_in: Option<i64>, attr_expires_in: Option<i64>) -> Entity {
        let now = time::now();
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        let mut a = Attribute::new(AttrValue::Property(serde_json::json!(1)), now);
        a.expires_at = attr_expires_in.map(at);
        Entity {
            id: id.into(),
            types: vec!["https://example.org/Sensor".into()],
            scopes: vec![],
            attrs: BTreeMap::from([("https://example.org/reading".to_string(), vec![a])]),
            created_at: now,
            modified_at: now,
            expires_at: expires_in.map(at),
        }
    }

    #[tokio::test]
    async fn expired_state_leaves_the_store_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = Tenant::parse("sweep").unwrap();
        {
            let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            let changes = vec![
                Change::Put(entity("urn:ngsi-ld:Sensor:gone", Some(-1), None)),
                Change::Put(entity("urn:ngsi-ld:Sensor:stays", Some(3600), None)),
                Change::Put(entity("urn:ngsi-ld:Sensor:durable", None, Some(-1))),
            ];
            store.commit(&tenant, changes).await.unwrap();
            let engine = Arc::new(Engine::new(store.clone(), Limits::default()));
            let task = tokio::spawn(expired_forever(engine, Duration::from_millis(10)));
            for _ in 0..200 {
                if store
                    .get(&tenant, "urn:ngsi-ld:Sensor:gone")
                    .unwrap()
                    .is_none()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            task.abort();
            let _ = task.await;
        }
        // What the sweep did is on disk.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let get = |id: &str| store.get(&tenant, id).unwrap();
        assert!(get("urn:ngsi-ld:Sensor:gone").is_none());
        assert!(get("urn:ngsi-ld:Sensor:stays").is_some());
        let durable = get("urn:ngsi-ld:Sensor:durable").expect("the entity outlives its attribute");
        assert!(durable.attrs.is_empty(), "{durable:?}");
    }
}
