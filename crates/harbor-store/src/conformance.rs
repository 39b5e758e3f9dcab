//! The conformance suite every backend runs: the behaviour the engine relies on, stated once.
//! A backend's tests call [`run`] with a fresh, empty store.

use std::collections::BTreeMap;

use harbor_model::{time, AttrValue, Attribute, Entity, Tenant};
use harbor_query::{parse_coordinates_text, parse_geo_query, parse_q, parse_type_expr};
use serde_json::json;

use crate::{
    Change, ContextChange, ContextStore, EntityQuery, EntityStore, RegistrationChange,
    RegistrationStore, SubscriptionChange, SubscriptionStore,
};

const NS: &str = "https://smartdatamodels.org/";

fn expand(s: &str) -> String {
    format!("{NS}{s}")
}

/// A parking entity in Singapore with a location and a number of free spots.
pub fn parking(n: u32, free: i64, lon: f64, lat: f64) -> Entity {
    let now = time::now();
    let mut attrs = BTreeMap::new();
    attrs.insert(
        expand("availableSpotNumber"),
        vec![Attribute::new(AttrValue::Property(json!(free)), now)],
    );
    attrs.insert(
        harbor_model::names::LOCATION.to_string(),
        vec![Attribute::new(
            AttrValue::GeoProperty(json!({"type": "Point", "coordinates": [lon, lat]})),
            now,
        )],
    );
    Entity {
        id: format!("urn:ngsi-ld:OffStreetParking:sg-{n:04}"),
        types: vec![expand("OffStreetParking")],
        scopes: vec!["/Singapore/Central".into()],
        attrs,
        created_at: now,
        modified_at: now,
        expires_at: None,
    }
}

/// The header of a temporal `Vehicle` created now.
fn vehicle_header(id: &str) -> harbor_model::TemporalHeader {
    harbor_model::TemporalHeader {
        id: id.to_string(),
        types: vec![expand("Vehicle")],
        scopes: vec![],
        created_at: time::now(),
        modified_at: time::now(),
        provided_current: false,
    }
}

fn ids(v: &[std::sync::Arc<Entity>]) -> Vec<String> {
    v.iter().map(|e| e.id.clone()).collect()
}

/// Runs every case; panics with a message naming the failed expectation.
pub async fn run(store: &dyn EntityStore) {
    let t = Tenant::default_tenant();
    let other = Tenant::parse("city-b").unwrap();

    // Writes are visible after commit, and per tenant.
    assert!(store.tenant_exists(&t), "the default tenant always exists");
    assert!(
        !store.tenant_exists(&other),
        "a tenant exists only once created"
    );
    let batch: Vec<Change> = (0..50)
        .map(|i| Change::Put(parking(i, i as i64, 103.80 + i as f64 * 0.002, 1.29)))
        .collect();
    store.commit(&t, batch).await.unwrap();
    assert_eq!(store.count(&t), 50);
    assert!(store
        .get(&t, "urn:ngsi-ld:OffStreetParking:sg-0007")
        .unwrap()
        .is_some());
    assert!(
        store
            .get(&other, "urn:ngsi-ld:OffStreetParking:sg-0007")
            .unwrap()
            .is_none(),
        "tenants are isolated"
    );

    store.ensure_tenant(&other).await.unwrap();
    assert!(store.tenant_exists(&other));
    assert!(store.tenants().contains(&other));
    assert_eq!(store.count(&other), 0);

    // Replace and delete keep the indexes right.
    let mut moved = parking(3, 99, 0.0, 0.0);
    moved.types = vec![expand("Garage")];
    store
        .commit(
            &t,
            vec![
                Change::Put(moved),
                Change::Delete("urn:ngsi-ld:OffStreetParking:sg-0004".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.count(&t), 49);

    let check = |q: &EntityQuery, want: usize, what: &str| {
        let r = store.query(&t, q).unwrap();
        let found: Vec<_> = r
            .entities
            .iter()
            .filter(|e| r.exact || q.matches(e))
            .collect();
        assert_eq!(found.len(), want, "{what}: got {:?}", ids(&r.entities));
        let sorted = r.entities.windows(2).all(|w| w[0].id < w[1].id);
        assert!(sorted, "{what}: results are sorted by id");
    };
    let by_type = |s: &str| EntityQuery {
        types: Some(parse_type_expr(s, &expand).unwrap()),
        ..Default::default()
    };
    check(&EntityQuery::default(), 49, "everything");
    check(
        &by_type("OffStreetParking"),
        48,
        "type index after replace/delete",
    );
    check(&by_type("Garage"), 1, "new type indexed");
    check(&by_type("Garage,OffStreetParking"), 49, "type union");
    check(
        &EntityQuery {
            q: Some(parse_q("availableSpotNumber>=40", &expand).unwrap()),
            ..Default::default()
        },
        11,
        "q comparison (40..49 and 99)",
    );
    check(
        &EntityQuery {
            ids: Some(vec![
                "urn:ngsi-ld:OffStreetParking:sg-0001".into(),
                "urn:x:none".into(),
            ]),
            ..Default::default()
        },
        1,
        "ids",
    );
    check(
        &EntityQuery {
            id_pattern: Some(regex::Regex::new("sg-004[0-9]$").unwrap()),
            ..Default::default()
        },
        10,
        "idPattern",
    );
    check(
        &EntityQuery {
            attrs: Some(vec![expand("availableSpotNumber")]),
            ..Default::default()
        },
        49,
        "attrs",
    );
    // Points every 0.002° (~222 m) from 103.80 east; within 500 m of 103.80,1.29: n = 0, 1, 2.
    let coords = parse_coordinates_text("[103.80,1.29]").unwrap();
    let near = parse_geo_query("near;maxDistance==500", "Point", &coords, None, &expand).unwrap();
    check(
        &EntityQuery {
            geo: Some(near),
            ..Default::default()
        },
        3,
        "geo near",
    );
    let moved_geo = parse_geo_query(
        "near;maxDistance==10",
        "Point",
        &parse_coordinates_text("[0,0]").unwrap(),
        None,
        &expand,
    )
    .unwrap();
    check(
        &EntityQuery {
            geo: Some(moved_geo),
            ..Default::default()
        },
        1,
        "geo index follows a replaced location",
    );
    let old_place = parse_geo_query(
        "near;maxDistance==10",
        "Point",
        &parse_coordinates_text("[103.806,1.29]").unwrap(),
        None,
        &expand,
    )
    .unwrap();
    check(
        &EntityQuery {
            geo: Some(old_place),
            ..Default::default()
        },
        0,
        "a replaced location leaves the geo index",
    );

    // A replacement without an attribute leaves that attribute's index; one that only
    // changes a value keeps every index entry.
    let mut fewer = parking(5, 5, 103.81, 1.29);
    fewer.attrs.remove(&expand("availableSpotNumber"));
    let mut same_place = parking(6, 66, 103.812, 1.29);
    same_place.modified_at = time::now();
    store
        .commit(&t, vec![Change::Put(fewer), Change::Put(same_place)])
        .await
        .unwrap();
    let spots = EntityQuery {
        attrs: Some(vec![expand("availableSpotNumber")]),
        ..Default::default()
    };
    check(&spots, 48, "attribute index after an attribute is gone");
    check(
        &by_type("OffStreetParking"),
        48,
        "a value change keeps the type index",
    );
    let sixth = parse_geo_query(
        "near;maxDistance==10",
        "Point",
        &parse_coordinates_text("[103.812,1.29]").unwrap(),
        None,
        &expand,
    )
    .unwrap();
    check(
        &EntityQuery {
            geo: Some(sixth),
            ..Default::default()
        },
        1,
        "a value change keeps the geo index",
    );

    // Expiry: entities holding an expiresAt (on themselves or on an attribute instance) are
    // found by the earliest one, and leave the index when replaced without it.
    let now = time::now();
    let soon = now + chrono::Duration::seconds(60);
    let mut transient = parking(900, 1, 103.9, 1.3);
    transient.expires_at = Some(soon);
    let mut attr_transient = parking(901, 1, 103.9, 1.3);
    for list in attr_transient.attrs.values_mut() {
        list[0].expires_at = Some(now);
    }
    store
        .commit(
            &t,
            vec![Change::Put(transient), Change::Put(attr_transient.clone())],
        )
        .await
        .unwrap();
    assert_eq!(
        store.expiring(&t, now).unwrap(),
        vec![attr_transient.id.clone()],
        "only what expired by now"
    );
    assert_eq!(
        store.expiring(&t, soon).unwrap().len(),
        2,
        "both by the later instant"
    );
    for list in attr_transient.attrs.values_mut() {
        list[0].expires_at = None;
    }
    store
        .commit(&t, vec![Change::Put(attr_transient)])
        .await
        .unwrap();
    assert_eq!(
        store.expiring(&t, soon).unwrap().len(),
        1,
        "a replaced entity leaves the expiry index"
    );
    assert!(
        store.expiring(&other, soon).unwrap().is_empty(),
        "expiry is per tenant"
    );

    // Deleting everything leaves nothing behind in any index.
    let all: Vec<Change> = store
        .query(&t, &EntityQuery::default())
        .unwrap()
        .entities
        .iter()
        .map(|e| Change::Delete(e.id.clone()))
        .collect();
    store.commit(&t, all).await.unwrap();
    assert_eq!(store.count(&t), 0);
    check(&by_type("OffStreetParking"), 0, "type index emptied");
    assert!(
        store.expiring(&t, soon).unwrap().is_empty(),
        "expiry index emptied"
    );
}

/// The `@context` store: puts replace, deletes remove, and a missing id is no error.
pub async fn run_contexts(store: &dyn ContextStore) {
    assert!(store.contexts().is_empty(), "a fresh store has no contexts");
    let put = |id: &str, record: &[u8]| ContextChange::Put {
        id: id.into(),
        record: record.to_vec(),
    };
    store
        .commit_contexts(vec![put("b", b"{\"v\":1}"), put("a", b"{}")])
        .await
        .unwrap();
    store
        .commit_contexts(vec![
            put("b", b"{\"v\":2}"),
            ContextChange::Delete("a".into()),
        ])
        .await
        .unwrap();
    store
        .commit_contexts(vec![ContextChange::Delete("never-stored".into())])
        .await
        .unwrap();
    assert_eq!(
        store.contexts(),
        vec![("b".to_string(), b"{\"v\":2}".to_vec())],
        "the last put wins and deletes remove"
    );
}

/// A subscription for the conformance cases, with a notification endpoint and one selector.
/// Administration records: kinds are separate namespaces, puts replace, deletes remove, ids come
/// back sorted.
pub async fn run_admin(store: &dyn crate::AdminStore) {
    use crate::{AdminChange, AdminKind};
    let put = |kind, id: &str, record: &str| AdminChange::Put {
        kind,
        id: id.to_string(),
        record: record.as_bytes().to_vec(),
    };
    store
        .commit_admin(vec![
            put(AdminKind::ApiKey, "k2", "two"),
            put(AdminKind::ApiKey, "k1", "one"),
            put(AdminKind::Policy, "k1", "policy"),
        ])
        .await
        .unwrap();
    let keys = store.admin_records(AdminKind::ApiKey).await.unwrap();
    assert_eq!(
        keys,
        vec![
            ("k1".to_string(), b"one".to_vec()),
            ("k2".to_string(), b"two".to_vec())
        ]
    );
    store
        .commit_admin(vec![
            put(AdminKind::ApiKey, "k1", "uno"),
            AdminChange::Delete {
                kind: AdminKind::ApiKey,
                id: "k2".into(),
            },
            AdminChange::Delete {
                kind: AdminKind::ApiKey,
                id: "absent".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.admin_records(AdminKind::ApiKey).await.unwrap(),
        vec![("k1".to_string(), b"uno".to_vec())]
    );
    assert_eq!(
        store.admin_records(AdminKind::Policy).await.unwrap(),
        vec![("k1".to_string(), b"policy".to_vec())],
        "each kind is its own namespace"
    );
    // Paging through a kind: ids after a cursor, at most `limit`, in order, and nothing of
    // the kinds around it.
    let audit: Vec<AdminChange> = (0..25)
        .map(|i| put(AdminKind::Audit, &format!("{i:04}"), "entry"))
        .collect();
    store.commit_admin(audit).await.unwrap();
    let ids = |page: Vec<(String, Vec<u8>)>| page.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    let first = ids(store.admin_page(AdminKind::Audit, None, 10).await.unwrap());
    assert_eq!(first.len(), 10);
    assert_eq!((first[0].as_str(), first[9].as_str()), ("0000", "0009"));
    let next = ids(store
        .admin_page(AdminKind::Audit, Some("0009"), 10)
        .await
        .unwrap());
    assert_eq!((next[0].as_str(), next[9].as_str()), ("0010", "0019"));
    let last = ids(store
        .admin_page(AdminKind::Audit, Some("0019"), 10)
        .await
        .unwrap());
    assert_eq!(last, ["0020", "0021", "0022", "0023", "0024"]);
    assert!(store
        .admin_page(AdminKind::Audit, Some("0024"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(store.admin_page(AdminKind::Policy, None, 10).await.unwrap()),
        ["k1"]
    );
}

pub fn subscription(id: &str) -> harbor_model::Subscription {
    use harbor_model::subscription::*;
    let now = time::now();
    harbor_model::Subscription {
        id: id.into(),
        name: None,
        description: None,
        entities: vec![EntitySelector {
            id: None,
            id_pattern: None,
            type_expr: expand("OffStreetParking"),
        }],
        watched_attributes: Some(vec![expand("availableSpotNumber")]),
        notification_trigger: DEFAULT_TRIGGERS.iter().map(|s| s.to_string()).collect(),
        time_interval: None,
        q: Some("availableSpotNumber<10".into()),
        geo_q: None,
        scope_q: None,
        csf: None,
        is_active: None,
        expires_at: None,
        throttling: None,
        lang: None,
        dataset_id: None,
        temporal_q: None,
        jsonld_context: None,
        context: json!(NS),
        notification: NotificationParams {
            attributes: None,
            sys_attrs: false,
            format: NotificationFormat::Normalized,
            show_changes: false,
            pick: None,
            omit: None,
            join: None,
            join_level: None,
            endpoint: Endpoint {
                uri: "http://localhost:9999/notify".into(),
                accept: "application/json".into(),
                receiver_info: None,
                notifier_info: None,
                timeout: None,
                cooldown: None,
            },
            status: DeliveryStatus::default(),
        },
        created_at: now,
        modified_at: now,
        owner: None,
    }
}

/// The subscription store: puts replace, deletes remove, tenants are isolated, lists are
/// sorted by id.
pub async fn run_subscriptions(store: &dyn SubscriptionStore) {
    let t = Tenant::default_tenant();
    let other = Tenant::parse("city-b").unwrap();
    assert!(
        store.subscriptions(&t).is_empty(),
        "a fresh store has no subscriptions"
    );
    let put = |id: &str| SubscriptionChange::Put(Box::new(subscription(id)));
    store
        .commit_subscriptions(&t, vec![put("urn:s:b"), put("urn:s:a"), put("urn:s:c")])
        .await
        .unwrap();
    let mut changed = subscription("urn:s:b");
    changed.is_active = Some(false);
    store
        .commit_subscriptions(
            &t,
            vec![
                SubscriptionChange::Put(Box::new(changed.clone())),
                SubscriptionChange::Delete("urn:s:c".into()),
                SubscriptionChange::Delete("urn:s:never".into()),
            ],
        )
        .await
        .unwrap();
    let ids: Vec<String> = store
        .subscriptions(&t)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(
        ids,
        vec!["urn:s:a", "urn:s:b"],
        "sorted by id, deletes remove"
    );
    assert_eq!(
        store.subscription_count(&t),
        2,
        "the count follows the list"
    );
    assert_eq!(store.subscription_count(&other), 0);
    assert_eq!(
        store.subscription(&t, "urn:s:b").as_deref(),
        Some(&changed),
        "the last put wins and every member survives"
    );
    assert!(
        store.subscription(&other, "urn:s:a").is_none(),
        "tenants are isolated"
    );
    assert!(
        store.subscriptions(&other).is_empty(),
        "tenants are isolated"
    );
    store
        .commit_subscriptions(&other, vec![put("urn:s:a")])
        .await
        .unwrap();
    store
        .commit_subscriptions(&t, vec![SubscriptionChange::Delete("urn:s:a".into())])
        .await
        .unwrap();
    assert!(
        store.subscription(&other, "urn:s:a").is_some(),
        "a delete stays in its tenant"
    );
}

/// A registration for the conformance cases, with one entity type and one property.
pub fn registration(id: &str) -> harbor_model::Registration {
    use harbor_model::registration::*;
    let now = time::now();
    harbor_model::Registration {
        id: id.into(),
        name: Some("parking sensors".into()),
        description: None,
        information: vec![RegistrationInfo {
            entities: Some(vec![RegisteredEntity {
                id: None,
                id_pattern: Some(".*downtown$".into()),
                entity_type: expand("OffStreetParking"),
            }]),
            property_names: Some(vec![expand("availableSpotNumber")]),
            relationship_names: None,
        }],
        tenant: None,
        observation_interval: None,
        management_interval: None,
        location: Some(json!({"type": "Point", "coordinates": [-8.5, 41.2]})),
        observation_space: None,
        operation_space: None,
        expires_at: None,
        endpoint: "http://cs.example.org:1026".into(),
        context_source_info: None,
        scope: None,
        mode: "inclusive".into(),
        operations: DEFAULT_OPERATIONS.iter().map(|s| s.to_string()).collect(),
        refresh_rate: None,
        management: None,
        extra: BTreeMap::from([(expand("brand"), json!("acme"))]),
        status: RegistrationStatus::default(),
        created_at: now,
        modified_at: now,
    }
}

/// The registration store: puts replace, deletes remove, tenants are isolated, lists are
/// sorted by id, and subscriptions to registrations live apart from both registrations and
/// subscriptions to entities.
pub async fn run_registrations(store: &dyn RegistrationStore, subs: &dyn SubscriptionStore) {
    let t = Tenant::default_tenant();
    let other = Tenant::parse("city-b").unwrap();
    assert!(store.registrations(&t).is_empty(), "a fresh store has none");
    let put = |id: &str| RegistrationChange::Put(Box::new(registration(id)));
    store
        .commit_registrations(&t, vec![put("urn:r:b"), put("urn:r:a"), put("urn:r:c")])
        .await
        .unwrap();
    let mut changed = registration("urn:r:b");
    changed.mode = "exclusive".into();
    store
        .commit_registrations(
            &t,
            vec![
                RegistrationChange::Put(Box::new(changed.clone())),
                RegistrationChange::Delete("urn:r:c".into()),
                RegistrationChange::Delete("urn:r:never".into()),
            ],
        )
        .await
        .unwrap();
    let ids: Vec<String> = store
        .registrations(&t)
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids, ["urn:r:a", "urn:r:b"], "sorted by id, deletes remove");
    assert_eq!(
        store.registration_count(&t),
        2,
        "the count follows the list"
    );
    assert_eq!(store.registration_count(&other), 0);
    assert_eq!(
        store.registration(&t, "urn:r:b").as_deref(),
        Some(&changed),
        "the last put wins and every member survives"
    );
    assert!(
        store.registration(&other, "urn:r:a").is_none(),
        "tenants are isolated"
    );

    let sub = |id: &str| SubscriptionChange::Put(Box::new(subscription(id)));
    store
        .commit_csource_subscriptions(&t, vec![sub("urn:cs:1"), sub("urn:cs:2")])
        .await
        .unwrap();
    store
        .commit_csource_subscriptions(&t, vec![SubscriptionChange::Delete("urn:cs:2".into())])
        .await
        .unwrap();
    let ids: Vec<String> = store
        .csource_subscriptions(&t)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(ids, ["urn:cs:1"]);
    assert_eq!(store.csource_subscription_count(&t), 1);
    assert_eq!(subs.subscription_count(&t), 0);
    assert!(
        subs.subscription(&t, "urn:cs:1").is_none(),
        "subscriptions to registrations are not subscriptions to entities"
    );
    assert!(
        store.csource_subscription(&other, "urn:cs:1").is_none(),
        "tenants are isolated"
    );
    assert!(store.csource_subscription(&t, "urn:cs:1").is_some());
}

/// The change feed and the outbox: every committed change is one numbered record with what
/// changed; outbox commits number deliveries, move the matcher cursor and trim the feed.
/// The feed is kept for the historian too (`TemporalStore::history_cursor`). `store`, `feed`
/// and `temporal` are the same backend, fresh.
pub async fn run_feed(
    store: &dyn EntityStore,
    feed: &dyn crate::FeedStore,
    temporal: &dyn crate::TemporalStore,
) {
    use crate::{HistoryBatch, OutboxBatch, OutboxChange};
    use harbor_model::{Delivery, Trigger};

    let t = Tenant::parse("feed-city").unwrap();
    let start = feed.last_seq();
    let mut a = parking(1, 10, 103.85, 1.29);
    store
        .commit(&t, vec![Change::Put(a.clone())])
        .await
        .unwrap();
    a.attrs
        .get_mut(&expand("availableSpotNumber"))
        .unwrap()
        .push(Attribute {
            dataset_id: Some("urn:ngsi-ld:Dataset:1".into()),
            ..Attribute::new(AttrValue::Property(json!(3)), time::now())
        });
    store
        .commit(&t, vec![Change::Put(a.clone())])
        .await
        .unwrap();
    store
        .commit(
            &t,
            vec![
                Change::Delete(a.id.clone()),
                Change::Delete("urn:ngsi-ld:X:absent".into()),
            ],
        )
        .await
        .unwrap();

    let recs = feed.changes_after(start, 10);
    assert_eq!(
        recs.len(),
        3,
        "one record per real change; deleting nothing records nothing"
    );
    assert_eq!(feed.last_seq(), start + 3);
    assert!(
        recs.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "numbered in commit order"
    );
    assert!(recs.iter().all(|r| r.tenant == t && r.id == a.id));
    assert_eq!(recs[0].entity_event(), Some(Trigger::EntityCreated));
    assert_eq!(
        recs[0].changed.len(),
        2,
        "a creation changes every attribute"
    );
    assert_eq!(recs[1].entity_event(), Some(Trigger::EntityUpdated));
    assert_eq!(recs[1].changed, vec![expand("availableSpotNumber")]);
    let before = recs[1].before.as_ref().unwrap();
    assert_eq!(
        before.attrs.keys().collect::<Vec<_>>(),
        vec![&expand("availableSpotNumber")],
        "an update's before holds only what changed"
    );
    assert_eq!(before.attrs[&expand("availableSpotNumber")].len(), 1);
    assert_eq!(recs[2].entity_event(), Some(Trigger::EntityDeleted));
    assert_eq!(
        recs[2].before.as_ref().unwrap().attrs.len(),
        2,
        "a deletion keeps the whole entity"
    );
    assert!(feed.change(recs[1].seq).is_some());
    assert_eq!(feed.changes_after(recs[1].seq, 10).len(), 1);

    let delivery = |changes: Vec<u64>| Delivery {
        id: 0,
        tenant: t.clone(),
        subscription: "urn:ngsi-ld:Subscription:s".into(),
        changes,
        created_at: time::now(),
        attempts: 0,
        not_before: None,
        last_error: None,
        dead: false,
    };
    let added = feed
        .commit_outbox(OutboxBatch {
            changes: vec![
                OutboxChange::Add(delivery(vec![recs[0].seq])),
                OutboxChange::Add(delivery(vec![recs[1].seq, recs[2].seq])),
            ],
            cursor: Some(recs[2].seq),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(added.len(), 2);
    assert!(
        added[0].id > 0 && added[1].id > added[0].id,
        "deliveries are numbered"
    );
    assert_eq!(feed.matcher_cursor(), recs[2].seq);
    assert_eq!(feed.outbox().len(), 2);
    let mut dead = (*added[1]).clone();
    dead.dead = true;
    dead.attempts = 3;
    // The historian has recorded the records up to the second one only.
    temporal
        .commit_history(HistoryBatch {
            rows: Vec::new(),
            cursor: recs[1].seq,
        })
        .await
        .unwrap();
    assert_eq!(temporal.history_cursor(), recs[1].seq);
    assert!(
        feed.trim_floor() <= recs[1].seq + 1,
        "the trim floor says what the historian still needs"
    );
    feed.commit_outbox(OutboxBatch {
        changes: vec![OutboxChange::Delete(added[0].id), OutboxChange::Put(dead)],
        trim_below: Some(recs[1].seq),
        ..Default::default()
    })
    .await
    .unwrap();
    let left = feed.outbox();
    assert_eq!(left.len(), 1);
    assert!(left[0].dead && left[0].attempts == 3);
    assert!(feed.change(recs[0].seq).is_none(), "trimmed below the cut");
    assert!(feed.change(recs[1].seq).is_some(), "kept from the cut on");
    feed.commit_outbox(OutboxBatch {
        trim_below: Some(feed.last_seq() + 1),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        feed.change(recs[1].seq).is_none() && feed.change(recs[2].seq).is_some(),
        "a trim stops at what the history has not recorded yet"
    );
}

/// The temporal store: changes of the current state are recorded from the feed (as the
/// historian does), the feed is kept until they are, history outlives the entity, instances
/// come back in time order within a range, and the temporal API's own changes apply
/// atomically. Needs a fresh store.
pub async fn run_temporal(
    store: &dyn EntityStore,
    temporal: &dyn crate::TemporalStore,
    feed: &dyn crate::FeedStore,
) {
    use crate::{HistoryBatch, InstanceRange, TemporalChange};
    use harbor_model::temporal::instance_id;
    use harbor_model::TemporalInstance;

    let t = Tenant::parse("temporal-city").unwrap();
    let spots = expand("availableSpotNumber");
    let visit_all = |id: &str, attr: &str, range: InstanceRange| {
        let mut out = Vec::new();
        temporal
            .visit_instances(&t, id, attr, range, &mut |i| {
                out.push(i);
                true
            })
            .unwrap();
        out
    };
    let payloads = |list: &[TemporalInstance]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|i| i.attr.value.payload().clone())
            .collect()
    };

    // What the historian does: record every feed record after the cursor.
    let catch_up = || async {
        let changes = feed.changes_after(temporal.history_cursor(), usize::MAX);
        if let Some(last) = changes.last().map(|c| c.seq) {
            let batch = HistoryBatch::derive(&changes, temporal).unwrap();
            assert_eq!(batch.cursor, last);
            temporal.commit_history(batch).await.unwrap();
            temporal.wait_for_history(last).await;
            assert_eq!(temporal.history_cursor(), last);
        }
    };

    // Recording: create, update, delete of the current state.
    let p = parking(1, 10, 103.8, 1.3);
    store
        .commit(&t, vec![Change::Put(p.clone())])
        .await
        .unwrap();
    assert!(
        temporal.history_cursor() < feed.last_seq(),
        "a commit leaves recording to the historian"
    );
    catch_up().await;
    let h = temporal.temporal_header(&t, &p.id).unwrap();
    assert!(
        h.is_some(),
        "creating an entity creates its temporal header"
    );
    assert_eq!(
        temporal.temporal_attrs(&t, &p.id).unwrap(),
        [
            spots.clone(),
            harbor_model::names::LOCATION.to_string(),
            harbor_model::temporal::SCOPE_ATTR.to_string()
        ],
        "every attribute of a created entity is recorded, and its scope"
    );
    let mut updated = p.clone();
    let later = time::now();
    updated.attrs.insert(
        spots.clone(),
        vec![Attribute::new(AttrValue::Property(json!(9)), later)],
    );
    store
        .commit(&t, vec![Change::Put(updated.clone())])
        .await
        .unwrap();
    catch_up().await;
    let all = visit_all(&p.id, &spots, InstanceRange::default());
    assert_eq!(
        payloads(&all),
        [json!(10), json!(9)],
        "an update is recorded"
    );
    let again = HistoryBatch::derive(&feed.changes_after(0, usize::MAX), temporal).unwrap();
    temporal.commit_history(again).await.unwrap();
    assert_eq!(
        visit_all(&p.id, &spots, InstanceRange::default()).len(),
        2,
        "recording the same feed records again writes the same rows"
    );
    assert_eq!(
        visit_all(
            &p.id,
            harbor_model::names::LOCATION,
            InstanceRange::default()
        )
        .len(),
        1,
        "an attribute left alone records nothing new"
    );
    store
        .commit(&t, vec![Change::Delete(p.id.clone())])
        .await
        .unwrap();
    catch_up().await;
    let all = visit_all(&p.id, &spots, InstanceRange::default());
    assert_eq!(
        all.len(),
        3,
        "deleting the entity records deleted instances"
    );
    assert!(all[2].deleted_at.is_some());
    assert!(
        temporal.temporal_header(&t, &p.id).unwrap().is_some(),
        "history outlives the entity"
    );

    // The temporal API's own writes: order by time, ranges, newest first, deletions.
    let at = |s: &str| time::parse(s).unwrap();
    let inst = |n: &str, v: i64, observed: &str| {
        let mut a = Attribute::new(AttrValue::Property(json!(v)), time::now());
        a.observed_at = Some(at(observed));
        TemporalInstance {
            instance_id: instance_id(n),
            attr: a,
            deleted_at: None,
        }
    };
    let id = "urn:ngsi-ld:Vehicle:T1".to_string();
    let speed = expand("speed");
    let put = |i: TemporalInstance| TemporalChange::PutInstance {
        entity: id.clone(),
        attr: speed.clone(),
        instance: Box::new(i),
    };
    let header = vehicle_header(&id);
    temporal
        .commit_temporal(
            &t,
            vec![
                TemporalChange::PutHeader(header.clone()),
                put(inst("b", 2, "2020-08-01T12:05:00Z")),
                put(inst("a", 1, "2020-08-01T12:03:00Z")),
                put(inst("c", 3, "2020-08-01T12:07:00Z")),
                put(inst("old", 0, "1969-12-31T23:59:59Z")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        payloads(&visit_all(&id, &speed, InstanceRange::default())),
        [json!(0), json!(1), json!(2), json!(3)],
        "instances come back in time order, also before 1970"
    );
    let range = InstanceRange {
        from: Some(at("2020-08-01T12:04:00Z")),
        to: Some(at("2020-08-01T12:07:00Z")),
        newest_first: false,
    };
    assert_eq!(
        payloads(&visit_all(&id, &speed, range)),
        [json!(2)],
        "from <= t < to"
    );
    let mut newest = Vec::new();
    let range = InstanceRange {
        newest_first: true,
        ..Default::default()
    };
    temporal
        .visit_instances(&t, &id, &speed, range, &mut |i| {
            newest.push(i);
            newest.len() < 2
        })
        .unwrap();
    assert_eq!(
        payloads(&newest),
        [json!(3), json!(2)],
        "newest first, stopping early"
    );
    assert!(
        temporal
            .temporal_headers(&Tenant::default_tenant())
            .unwrap()
            .iter()
            .all(|h| h.id != id),
        "temporal entities belong to their tenant"
    );
    assert_eq!(
        temporal
            .temporal_headers(&t)
            .unwrap()
            .iter()
            .map(|h| h.id.clone())
            .collect::<Vec<_>>(),
        [p.id.clone(), id.clone()],
        "headers are listed by id"
    );
    temporal
        .commit_temporal(
            &t,
            vec![TemporalChange::DeleteInstance {
                entity: id.clone(),
                attr: speed.clone(),
                instance_id: instance_id("b"),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        payloads(&visit_all(&id, &speed, InstanceRange::default())),
        [json!(0), json!(1), json!(3)],
        "one instance deleted by its id"
    );
    temporal
        .commit_temporal(
            &t,
            vec![TemporalChange::TrimBefore {
                entity: id.clone(),
                before: at("2020-08-01T12:04:00Z"),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        payloads(&visit_all(&id, &speed, InstanceRange::default())),
        [json!(3)],
        "retention drops what is older than the cut, and only that"
    );
    assert!(
        temporal.temporal_header(&t, &id).unwrap().is_some(),
        "retention keeps the temporal entity"
    );
    temporal
        .commit_temporal(
            &t,
            vec![TemporalChange::DeleteAttr {
                entity: id.clone(),
                attr: speed.clone(),
            }],
        )
        .await
        .unwrap();
    assert!(temporal.temporal_attrs(&t, &id).unwrap().is_empty());
    temporal_samples(temporal, &t).await;
    temporal_many(temporal, &t).await;
    temporal
        .commit_temporal(&t, vec![TemporalChange::DeleteEntity(p.id.clone())])
        .await
        .unwrap();
    assert!(temporal.temporal_header(&t, &p.id).unwrap().is_none());
    assert!(temporal.temporal_attrs(&t, &p.id).unwrap().is_empty());
    assert!(temporal.temporal_header(&t, &id).unwrap().is_some());
}

/// `visit_samples` gives, for every instance `visit_instances` gives, its `InstanceSample`:
/// over payloads of every JSON type and every attribute kind, datasetIds, deletions, sub-attributes,
/// ranges and newest first, stopping when told.
async fn temporal_samples(temporal: &dyn crate::TemporalStore, t: &Tenant) {
    use crate::{InstanceRange, InstanceSample, TemporalChange};
    use harbor_model::temporal::instance_id;
    use harbor_model::{TemporalInstance, TimeProperty};

    let id = "urn:ngsi-ld:Vehicle:Samples".to_string();
    let attr = expand("reading");
    let at = |s: &str| time::parse(s).unwrap();
    let values = [
        AttrValue::Property(json!(7)),
        AttrValue::Property(json!(-2.5)),
        AttrValue::Property(json!(true)),
        AttrValue::Property(json!("high")),
        AttrValue::Property(json!(null)),
        AttrValue::Property(json!([1, 2, 3])),
        AttrValue::Property(json!({"b": 1, "a": 2})),
        AttrValue::Relationship {
            object: json!("urn:ngsi-ld:Person:1"),
            object_type: Some(json!(expand("Person"))),
        },
        AttrValue::GeoProperty(json!({"type": "Point", "coordinates": [1.0, 2.0]})),
        AttrValue::LanguageProperty(json!({"en": "open"})),
        AttrValue::JsonProperty(json!({"raw": [1]})),
        AttrValue::VocabProperty(json!(expand("Open"))),
        AttrValue::ListProperty(json!([1, "a"])),
        AttrValue::ListRelationship {
            object_list: json!(["urn:a:1"]),
            object_type: None,
        },
    ];
    let mut changes = vec![TemporalChange::PutHeader(vehicle_header(&id))];
    for (n, v) in values.iter().enumerate() {
        let observed = at(&format!("2021-01-01T00:{n:02}:00.5Z"));
        let mut a = Attribute::new(v.clone(), time::now());
        a.observed_at = Some(observed);
        if n % 3 == 0 {
            a.dataset_id = Some(format!("urn:ngsi-ld:Dataset:{n}"));
        }
        if n == 1 {
            a.unit_code = Some("KMH".into());
            a.sub.insert(
                expand("accuracy"),
                Attribute::new(AttrValue::Property(json!(0.1)), time::now()),
            );
        }
        let i = TemporalInstance {
            instance_id: instance_id(&format!("s{n}")),
            attr: a.clone(),
            deleted_at: None,
        };
        changes.push(TemporalChange::PutInstance {
            entity: id.clone(),
            attr: attr.clone(),
            instance: Box::new(i),
        });
        if n == 4 {
            let gone = TemporalInstance::deleted(instance_id("gone"), &a, observed);
            changes.push(TemporalChange::PutInstance {
                entity: id.clone(),
                attr: attr.clone(),
                instance: Box::new(gone),
            });
        }
    }
    temporal.commit_temporal(t, changes).await.unwrap();

    let ranges = [
        InstanceRange::default(),
        InstanceRange {
            from: Some(at("2021-01-01T00:03:00Z")),
            to: Some(at("2021-01-01T00:09:00Z")),
            newest_first: false,
        },
        InstanceRange {
            newest_first: true,
            ..Default::default()
        },
    ];
    let times = [
        TimeProperty::ObservedAt,
        TimeProperty::CreatedAt,
        TimeProperty::ModifiedAt,
        TimeProperty::DeletedAt,
    ];
    for (range, time) in ranges.into_iter().flat_map(|r| times.map(|t| (r, t))) {
        let mut instances = Vec::new();
        temporal
            .visit_instances(t, &id, &attr, range, &mut |i| {
                instances.push(i);
                true
            })
            .unwrap();
        let mut samples = 0;
        temporal
            .visit_samples(t, &id, &attr, range, time, &mut |s| {
                assert_eq!(
                    *s,
                    InstanceSample::of(&instances[samples], time),
                    "sample {samples} of {range:?} at {time:?}"
                );
                samples += 1;
                true
            })
            .unwrap();
        assert_eq!(samples, instances.len(), "{range:?}");
        assert!(samples >= 6, "{range:?}");
    }
    let mut seen = 0;
    let observed = TimeProperty::ObservedAt;
    temporal
        .visit_samples(
            t,
            &id,
            &attr,
            InstanceRange::default(),
            observed,
            &mut |_| {
                seen += 1;
                seen < 2
            },
        )
        .unwrap();
    assert_eq!(seen, 2, "a sample visit stops when told");
    temporal
        .commit_temporal(t, vec![TemporalChange::DeleteEntity(id)])
        .await
        .unwrap();
}

/// A long series written out of order over several commits, then read whole, by ranges and
/// newest first, and cut by deletions and retention, always against a model of it: however
/// a backend groups instances, every instance comes back once, in (time, instanceId) order.
async fn temporal_many(temporal: &dyn crate::TemporalStore, t: &Tenant) {
    use crate::{InstanceRange, TemporalChange};
    use harbor_model::temporal::instance_id;
    use harbor_model::{TemporalInstance, Timestamp};

    let id = "urn:ngsi-ld:Vehicle:Many".to_string();
    let attr = expand("speed");
    let base = time::parse("2022-01-01T00:00:00Z").unwrap();
    // Instance n at minute (n * 37) % 100, so two share each minute and none comes in order.
    let when = |n: u64| base + chrono::Duration::minutes(((n * 37) % 100) as i64 / 2 * 2);
    let inst = |n: u64| {
        let mut a = Attribute::new(AttrValue::Property(json!(n)), time::now());
        a.observed_at = Some(when(n));
        TemporalInstance {
            instance_id: instance_id(&format!("{n:03}")),
            attr: a,
            deleted_at: None,
        }
    };
    let mut model: BTreeMap<(Timestamp, String), u64> = BTreeMap::new();
    let mut header = vec![TemporalChange::PutHeader(vehicle_header(&id))];
    let order: Vec<u64> = (0..100).map(|n| (n * 61) % 100).collect();
    for batch in order.chunks(17) {
        let mut changes = std::mem::take(&mut header);
        for &n in batch {
            let i = inst(n);
            model.insert((when(n), i.instance_id.clone()), n);
            changes.push(TemporalChange::PutInstance {
                entity: id.clone(),
                attr: attr.clone(),
                instance: Box::new(i),
            });
        }
        temporal.commit_temporal(t, changes).await.unwrap();
    }
    let read = |range: InstanceRange, stop_after: usize| {
        let mut out = Vec::new();
        temporal
            .visit_instances(t, &id, &attr, range, &mut |i| {
                out.push(i.attr.value.payload().as_u64().unwrap());
                out.len() < stop_after
            })
            .unwrap();
        out
    };
    let check = |model: &BTreeMap<(Timestamp, String), u64>, what: &str| {
        let all: Vec<u64> = model.values().copied().collect();
        assert_eq!(read(InstanceRange::default(), usize::MAX), all, "{what}");
        for (from, to) in [(0, 100), (7, 8), (10, 11), (33, 71), (50, 50), (98, 200)] {
            let (from, to) = (
                base + chrono::Duration::minutes(from),
                base + chrono::Duration::minutes(to),
            );
            let range = InstanceRange {
                from: Some(from),
                to: Some(to),
                newest_first: false,
            };
            let want: Vec<u64> = model
                .iter()
                .filter(|((at, _), _)| from <= *at && *at < to)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(read(range, usize::MAX), want, "{what}: {from} to {to}");
            let newest = InstanceRange {
                newest_first: true,
                ..range
            };
            let want: Vec<u64> = want.into_iter().rev().take(5).collect();
            assert_eq!(read(newest, 5), want, "{what}: newest of {from} to {to}");
        }
    };
    check(&model, "written out of order");

    let gone = [0u64, 99, 50, 51, 13];
    let changes = gone
        .iter()
        .map(|n| TemporalChange::DeleteInstance {
            entity: id.clone(),
            attr: attr.clone(),
            instance_id: instance_id(&format!("{n:03}")),
        })
        .collect();
    temporal.commit_temporal(t, changes).await.unwrap();
    model.retain(|_, n| !gone.contains(n));
    check(&model, "after deleting instances by id");

    let cut = base + chrono::Duration::minutes(41);
    temporal
        .commit_temporal(
            t,
            vec![TemporalChange::TrimBefore {
                entity: id.clone(),
                before: cut,
            }],
        )
        .await
        .unwrap();
    model.retain(|(at, _), _| *at >= cut);
    check(&model, "after retention");

    // One more instance, older than every other: it comes first.
    let late = inst(1_000);
    model.insert((when(1_000), late.instance_id.clone()), 1_000);
    temporal
        .commit_temporal(
            t,
            vec![TemporalChange::PutInstance {
                entity: id.clone(),
                attr: attr.clone(),
                instance: Box::new(late),
            }],
        )
        .await
        .unwrap();
    check(&model, "after one more instance");
    temporal
        .commit_temporal(t, vec![TemporalChange::DeleteEntity(id)])
        .await
        .unwrap();
}
