//! Quotas on a real store: each refuses exactly at its bound, names its option, and holds
//! when many creates race for the last places.

use std::sync::Arc;

use harbor_engine::{BatchMode, Engine, Limits, Quotas};
use harbor_jsonld::expand::EntityInput;
use harbor_model::{ErrorKind, Tenant};
use harbor_store::conformance::{registration, subscription};
use harbor_store_embedded::EmbeddedStore;

fn engine(quotas: Quotas) -> (Arc<Engine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let engine = Engine::new(store.clone(), Limits::default())
        .with_subscriptions(store.clone())
        .with_registrations(store)
        .with_quotas(quotas);
    (Arc::new(engine), dir)
}

fn entity(id: &str) -> EntityInput {
    EntityInput {
        id: Some(id.into()),
        types: vec!["https://example.org/Bus".into()],
        scopes: None,
        attrs: Vec::new(),
        expires_at: None,
        clear_expiry: false,
    }
}

fn city() -> Tenant {
    Tenant::parse("city").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_do_not_exceed_the_entity_quota() {
    let (engine, _dir) = engine(Quotas {
        entities: 5,
        ..Quotas::default()
    });
    let t = city();
    engine.create_entity(&t, entity("urn:bus:0")).await.unwrap();
    let tasks: Vec<_> = (1..=20)
        .map(|i| {
            let engine = engine.clone();
            let t = t.clone();
            tokio::spawn(async move {
                engine
                    .create_entity(&t, entity(&format!("urn:bus:{i}")))
                    .await
            })
        })
        .collect();
    let mut created = 1;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::QuotaExceeded);
                assert!(
                    e.detail.contains("quota_entities") && e.detail.contains('5'),
                    "{e}"
                );
            }
        }
    }
    assert_eq!(created, 5);
    assert_eq!(engine.store().count(&t), 5);
    // the quota is per tenant, and a delete frees a place
    engine
        .create_entity(&Tenant::default_tenant(), entity("urn:bus:x"))
        .await
        .unwrap();
    engine.delete_entity(&t, "urn:bus:0", None).await.unwrap();
    engine.create_entity(&t, entity("urn:bus:y")).await.unwrap();
}

#[tokio::test]
async fn a_batch_creates_up_to_the_quota_and_reports_the_rest() {
    let (engine, _dir) = engine(Quotas {
        entities: 3,
        ..Quotas::default()
    });
    let t = city();
    engine.create_entity(&t, entity("urn:bus:0")).await.unwrap();
    let items = (1..=4)
        .map(|i| Ok(entity(&format!("urn:bus:{i}"))))
        .collect();
    let result = engine
        .batch_write(&t, BatchMode::Upsert { replace: false }, items)
        .await
        .unwrap();
    assert_eq!(result.created, ["urn:bus:1", "urn:bus:2"]);
    assert_eq!(result.success, ["urn:bus:1", "urn:bus:2"]);
    let refused: Vec<_> = result.errors.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(refused, ["urn:bus:3", "urn:bus:4"]);
    assert!(result
        .errors
        .iter()
        .all(|e| e.error.kind == ErrorKind::QuotaExceeded));
    assert_eq!(engine.store().count(&t), 3);
    // updating what exists needs no place
    let items = vec![Ok(entity("urn:bus:1"))];
    let result = engine
        .batch_write(&t, BatchMode::Upsert { replace: false }, items)
        .await
        .unwrap();
    assert!(result.errors.is_empty(), "{:?}", result.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_and_registrations_have_their_quotas() {
    let (engine, _dir) = engine(Quotas {
        subscriptions: 3,
        registrations: 2,
        ..Quotas::default()
    });
    let t = city();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let engine = engine.clone();
            let t = t.clone();
            tokio::spawn(async move {
                engine
                    .create_subscription(&t, subscription(&format!("urn:sub:{i}")))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(e.detail.contains("quota_subscriptions"), "{e}"),
        }
    }
    assert_eq!(ok, 3);
    // subscriptions to registrations are counted apart
    for i in 0..3 {
        engine
            .create_csource_subscription(&t, subscription(&format!("urn:cs:{i}")))
            .await
            .unwrap();
    }
    let e = engine
        .create_csource_subscription(&t, subscription("urn:cs:9"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::QuotaExceeded);
    // registrations (without overlapping exclusive ones: the default mode is inclusive)
    for i in 0..2 {
        engine
            .create_registration(&t, registration(&format!("urn:reg:{i}")))
            .await
            .unwrap();
    }
    let e = engine
        .create_registration(&t, registration("urn:reg:9"))
        .await
        .unwrap_err();
    assert!(
        e.kind == ErrorKind::QuotaExceeded && e.detail.contains("quota_registrations"),
        "{e}"
    );
    engine.delete_registration(&t, "urn:reg:0").await.unwrap();
    engine
        .create_registration(&t, registration("urn:reg:9"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_are_bounded_in_all_and_per_identity() {
    let (engine, _dir) = engine(Quotas {
        max_tenants: 4, // the default tenant and three more
        tenants_per_identity: 2,
        ..Quotas::default()
    });
    let tenant = |i: usize| Tenant::parse(&format!("t{i}")).unwrap();
    // ten tenants at once for three places
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.create_entity(&tenant(i), entity("urn:e:1")).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                e.kind == ErrorKind::QuotaExceeded && e.detail.contains("max_tenants"),
                "{e}"
            ),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(engine.store().tenants().len(), 4);
    // writing into a tenant that exists is never refused
    let existing = engine.store().tenants()[1].clone();
    engine.admit_tenant(&existing, "alice").unwrap();
    engine
        .create_entity(&existing, entity("urn:e:2"))
        .await
        .unwrap();
    // per identity: naming the same new tenant again costs nothing, a third one is refused
    engine.admit_tenant(&tenant(100), "alice").unwrap();
    engine.admit_tenant(&tenant(100), "alice").unwrap();
    engine.admit_tenant(&tenant(101), "alice").unwrap();
    let e = engine.admit_tenant(&tenant(102), "alice").unwrap_err();
    assert!(
        e.kind == ErrorKind::QuotaExceeded && e.detail.contains("tenants_per_identity"),
        "{e}"
    );
    engine.admit_tenant(&tenant(102), "bob").unwrap();
}
