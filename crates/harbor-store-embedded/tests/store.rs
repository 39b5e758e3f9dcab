//! The embedded backend against the shared store conformance suite, plus what only it
//! promises: state survives reopening, and concurrent commits are all applied.

use std::sync::Arc;

use harbor_model::Tenant;
use harbor_store::conformance::{
    parking, run, run_admin, run_contexts, run_registrations, run_subscriptions, run_temporal,
};
use harbor_store::{
    Change, ContextChange, ContextStore, EntityQuery, EntityStore, RegistrationStore,
    SubscriptionStore,
};
use harbor_store_embedded::EmbeddedStore;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("harbor-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn conformance_suite() {
    let dir = temp_dir("conformance");
    let store = EmbeddedStore::open(&dir).unwrap();
    run(&store).await;
}

#[tokio::test]
async fn temporal_conformance_and_reopening() {
    let dir = temp_dir("temporal");
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        run_temporal(&store, &store, &store).await;
    }
    let store = EmbeddedStore::open(&dir).unwrap();
    let t = Tenant::parse("temporal-city").unwrap();
    let headers = harbor_store::TemporalStore::temporal_headers(&store, &t).unwrap();
    assert_eq!(headers.len(), 1, "temporal headers survive reopening");
    assert_eq!(
        harbor_store::TemporalStore::history_cursor(&store),
        harbor_store::FeedStore::last_seq(&store),
        "the history cursor survives reopening"
    );
}

#[tokio::test]
async fn admin_conformance_and_reopening() {
    let dir = temp_dir("admin");
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        run_admin(&store).await;
    }
    let store = EmbeddedStore::open(&dir).unwrap();
    let keys = harbor_store::AdminStore::admin_records(&store, harbor_store::AdminKind::ApiKey)
        .await
        .unwrap();
    assert_eq!(
        keys,
        vec![("k1".to_string(), b"uno".to_vec())],
        "records survive reopening"
    );
}

#[tokio::test]
async fn context_conformance_and_reopening() {
    let dir = temp_dir("contexts");
    {
        let store = EmbeddedStore::open(&dir).unwrap();
        run_contexts(&store).await;
        let put = ContextChange::Put {
            id: "c".into(),
            record: b"{}".to_vec(),
        };
        store.commit_contexts(vec![put]).await.unwrap();
    }
    let store = EmbeddedStore::open(&dir).unwrap();
    let ids: Vec<String> = store.contexts().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["b", "c"], "stored contexts survive reopening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_everything_committed() {
    let dir = temp_dir("reopen");
    let city = Tenant::parse("singapore").unwrap();
    {
        let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let s = store.clone();
            let t = city.clone();
            tasks.push(tokio::spawn(async move {
                s.commit(&t, vec![Change::Put(parking(i, i64::from(i), 103.8, 1.3))])
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        store
            .commit(
                &city,
                vec![Change::Delete(
                    "urn:ngsi-ld:OffStreetParking:sg-0000".into(),
                )],
            )
            .await
            .unwrap();
        store
            .ensure_tenant(&Tenant::parse("empty-city").unwrap())
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(store.count(&city), 199);
    assert!(store
        .get(&city, "urn:ngsi-ld:OffStreetParking:sg-0000")
        .unwrap()
        .is_none());
    let e = store
        .get(&city, "urn:ngsi-ld:OffStreetParking:sg-0123")
        .unwrap()
        .unwrap();
    assert_eq!(
        e.attrs.values().next().unwrap()[0].value.payload(),
        &serde_json::json!(123)
    );
    assert!(store.tenant_exists(&Tenant::parse("empty-city").unwrap()));
    assert_eq!(
        store
            .query(&city, &EntityQuery::default())
            .unwrap()
            .entities
            .len(),
        199
    );
}

#[tokio::test]
async fn subscription_conformance_and_reopening() {
    let dir = temp_dir("subscriptions");
    let before = {
        let store = EmbeddedStore::open(&dir).unwrap();
        run_subscriptions(&store).await;
        store.subscriptions(&Tenant::default_tenant())
    };
    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(
        store.subscriptions(&Tenant::default_tenant()),
        before,
        "subscriptions survive reopening, every member intact"
    );
    let other = Tenant::parse("city-b").unwrap();
    assert!(
        store.subscription(&other, "urn:s:a").is_some(),
        "and stay in their tenant"
    );
}

#[tokio::test]
async fn registration_conformance_and_reopening() {
    let dir = temp_dir("registrations");
    let t = Tenant::default_tenant();
    let (regs, subs) = {
        let store = EmbeddedStore::open(&dir).unwrap();
        run_registrations(&store, &store).await;
        (store.registrations(&t), store.csource_subscriptions(&t))
    };
    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(
        store.registrations(&t),
        regs,
        "registrations survive reopening, every member intact"
    );
    assert_eq!(store.csource_subscriptions(&t), subs);
    assert!(
        store.subscriptions(&t).is_empty(),
        "kept apart from entity subscriptions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_conformance_and_reopening() {
    use harbor_store::FeedStore;
    let dir = temp_dir("feed");
    let (last, cursor, outbox, retained) = {
        let store = EmbeddedStore::open(&dir).unwrap();
        harbor_store::conformance::run_feed(&store, &store, &store).await;
        let retained = store.changes_after(0, 100);
        (
            store.last_seq(),
            store.matcher_cursor(),
            store.outbox(),
            retained,
        )
    };
    let store = EmbeddedStore::open(&dir).unwrap();
    assert_eq!(store.last_seq(), last, "feed numbering survives reopening");
    assert_eq!(
        store.matcher_cursor(),
        cursor,
        "the matcher cursor survives reopening"
    );
    assert_eq!(store.outbox(), outbox, "the outbox survives reopening");
    let reread = store.changes_after(0, 100);
    assert!(!reread.is_empty());
    assert_eq!(
        reread.iter().map(|c| (**c).clone()).collect::<Vec<_>>(),
        retained.iter().map(|c| (**c).clone()).collect::<Vec<_>>(),
        "retained feed records read back as written (before, after, changed)"
    );
    let t = Tenant::parse("feed-city").unwrap();
    store
        .commit(&t, vec![Change::Put(parking(7, 1, 103.8, 1.3))])
        .await
        .unwrap();
    assert_eq!(
        store.last_seq(),
        last + 1,
        "numbering goes on after reopening"
    );
}

#[tokio::test]
async fn commits_are_counted_and_the_commit_thread_is_up() {
    let dir = temp_dir("metrics");
    let store = Arc::new(EmbeddedStore::open(&dir).unwrap());
    let m = store.metrics().clone();
    let t = Tenant::parse("metrics-city").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let s = store.clone();
            let t = t.clone();
            tokio::spawn(async move {
                s.commit(&t, vec![Change::Put(parking(i, 1, 103.8, 1.3))])
                    .await
                    .unwrap()
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let commits = m.commit_seconds.count();
    assert!((1..=8).contains(&commits), "{commits} commits for 8 writes");
    assert_eq!(m.fsync_seconds.count(), commits);
    assert_eq!(m.group_size.count(), commits);
    assert_eq!(m.group_size.sum(), 8.0, "every write is in some group");
    assert!(m.commit_seconds.sum() > 0.0);
    assert_eq!(m.commit_failures.get(), 0);
    assert_eq!(m.beacon.state(), harbor_metrics::BeaconState::Up);
    let beacon = m.beacon.clone();
    drop(store);
    assert_eq!(
        beacon.state(),
        harbor_metrics::BeaconState::Down,
        "the commit thread stops with the store"
    );
}
