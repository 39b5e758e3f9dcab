//! The embedded backend against the shared store conformance suite, one test per case, plus
//! what only it promises: state survives reopening, and concurrent commits are all applied.

use std::path::Path;
use std::sync::Arc;

use harbor_model::Tenant;
use harbor_store::conformance::{self, parking, Stores};
use harbor_store::{
    AdminKind, AdminStore, Change, ContextChange, ContextStore, EntityQuery, EntityStore,
    FeedStore, RegistrationStore, SubscriptionStore, TemporalStore,
};
use harbor_store_embedded::EmbeddedStore;

/// A fresh embedded store in a temporary directory of its own, removed after the case.
async fn fresh() -> Stores {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("a fresh embedded store opens");
    Stores::of(Arc::new(store)).keeping(dir)
}

harbor_store::store_conformance!(fresh());

/// The embedded store in `dir`, seen through every store trait; dropping it closes the files.
fn open(dir: &Path) -> Stores {
    Stores::of(Arc::new(EmbeddedStore::open(dir).unwrap()))
}

#[tokio::test]
async fn temporal_history_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let stores = open(dir.path());
        conformance::temporal::deleting_a_temporal_entity_removes_it_and_only_it(&stores).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let t = Tenant::parse("temporal-city").unwrap();
    let headers = store.temporal_headers(&t).unwrap();
    assert_eq!(headers.len(), 1, "temporal headers survive reopening");
    assert_eq!(
        store.history_cursor(),
        store.last_seq(),
        "the history cursor survives reopening"
    );
}

#[tokio::test]
async fn admin_records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let stores = open(dir.path());
        conformance::admin::admin_put_replaces_and_delete_removes(&stores).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.admin_records(AdminKind::ApiKey).await.unwrap(),
        vec![("k1".to_string(), b"uno".to_vec())],
        "records survive reopening"
    );
    assert_eq!(
        store.admin_records(AdminKind::Policy).await.unwrap(),
        vec![("k1".to_string(), b"policy".to_vec())],
        "and stay in their kind"
    );
}

#[tokio::test]
async fn contexts_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let stores = open(dir.path());
        conformance::contexts::context_put_replaces_and_delete_removes(&stores).await;
        let put = ContextChange::Put {
            id: "c".into(),
            record: b"{}".to_vec(),
        };
        stores.contexts.commit_contexts(vec![put]).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let ids: Vec<String> = store.contexts().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["b", "c"], "stored contexts survive reopening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_everything_committed() {
    let dir = tempfile::tempdir().unwrap();
    let city = Tenant::parse("singapore").unwrap();
    {
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
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
    let store = EmbeddedStore::open(dir.path()).unwrap();
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
async fn subscriptions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let stores = open(dir.path());
        conformance::subscriptions::a_subscription_delete_stays_in_its_tenant(&stores).await;
        stores
            .subscriptions
            .subscriptions(&Tenant::default_tenant())
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
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
async fn registrations_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tenant::default_tenant();
    let (regs, subs) = {
        let stores = open(dir.path());
        conformance::registrations::the_last_registration_put_wins_with_every_member(&stores).await;
        conformance::registrations::csource_subscriptions_are_listed_and_deletes_remove(&stores)
            .await;
        let r = &stores.registrations;
        (r.registrations(&t), r.csource_subscriptions(&t))
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.registrations(&t),
        regs,
        "registrations survive reopening, every member intact"
    );
    assert_eq!(
        store.csource_subscriptions(&t),
        subs,
        "subscriptions to registrations survive reopening"
    );
    assert!(
        store.subscriptions(&t).is_empty(),
        "kept apart from entity subscriptions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_and_outbox_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (last, cursor, outbox, retained) = {
        let stores = open(dir.path());
        conformance::feed::outbox_commit_settles_and_replaces_deliveries(&stores).await;
        let feed = &stores.feed;
        (
            feed.last_seq(),
            feed.matcher_cursor(),
            feed.outbox(),
            feed.changes_after(0, 100),
        )
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
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
