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

/// Retention of the attribute history: once at start and then every hour, drops the
/// instances older than `days` days (0: keeps everything, and the task does nothing).
pub async fn history_forever(engine: Arc<Engine>, days: u64) {
    if days == 0 {
        return;
    }
    let keep = chrono::Duration::days(days.min(365_000) as i64);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match engine.trim_history(time::now() - keep).await {
            Ok(n) => tracing::debug!(entities = n, days, "history retention applied"),
            Err(e) => tracing::warn!(error = %e, "applying history retention failed"),
        }
    }
}

/// Drops audit entries older than `days`, at start and every hour; `0` keeps them all.
pub async fn audit_forever(log: Arc<harbor_auth::AuditLog>, days: u64) {
    if days == 0 {
        return;
    }
    let keep = chrono::Duration::days(days.min(365_000) as i64);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match log.sweep(time::now() - keep).await {
            Ok(n) => tracing::debug!(entries = n, days, "audit retention applied"),
            Err(e) => tracing::warn!(error = %e, "applying audit retention failed"),
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

    #[tokio::test]
    async fn retention_drops_old_history_in_every_tenant() {
        use harbor_store::{InstanceRange, TemporalStore};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let historian = harbor_engine::history::Historian::new(
            store.clone(),
            store.clone(),
            Default::default(),
        );
        historian.start();
        let engine = Arc::new(
            Engine::new(store.clone(), Limits::default())
                .with_temporal(store.clone())
                .with_history(historian),
        );
        let reading = "https://example.org/reading";
        let mut observed = Vec::new();
        for (tenant, days_ago) in [("old-city", 40), ("new-city", 2)] {
            let t = Tenant::parse(tenant).unwrap();
            let mut e = entity("urn:ngsi-ld:Sensor:s1", None, None);
            let when = time::now() - chrono::Duration::days(days_ago);
            for a in e.attrs.values_mut().flatten() {
                a.observed_at = Some(when);
            }
            store.commit(&t, vec![Change::Put(e)]).await.unwrap();
            observed.push(t);
        }
        engine.history_caught_up().await;
        let count = |t: &Tenant| {
            let mut n = 0;
            store
                .visit_instances(
                    t,
                    "urn:ngsi-ld:Sensor:s1",
                    reading,
                    InstanceRange::default(),
                    &mut |_| {
                        n += 1;
                        true
                    },
                )
                .unwrap();
            n
        };
        assert_eq!((count(&observed[0]), count(&observed[1])), (1, 1));
        let task = tokio::spawn(history_forever(engine, 30));
        for _ in 0..200 {
            if count(&observed[0]) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(
            count(&observed[0]),
            0,
            "history older than 30 days is dropped"
        );
        assert_eq!(count(&observed[1]), 1, "newer history stays");
        assert!(store
            .temporal_header(&observed[0], "urn:ngsi-ld:Sensor:s1")
            .unwrap()
            .is_some());
    }
}
