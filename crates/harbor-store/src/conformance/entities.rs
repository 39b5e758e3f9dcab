//! Conformance cases of [`EntityStore`]: commits, tenants, and every index a query or the expiry
//! sweep goes through, followed through replacements and deletions.

use harbor_model::{time, Tenant};
use harbor_query::{parse_coordinates_text, parse_geo_query, parse_q, parse_type_expr};

use super::{expand, ids, parking, Stores};
use crate::{Change, EntityQuery, EntityStore};

/// Asserts that `query` finds `want` entities of the tenant, sorted by id; `what` names the
/// behaviour. A store may return a superset when it says so: the extra ones do not count.
#[track_caller]
fn check(store: &dyn EntityStore, t: &Tenant, query: &EntityQuery, want: usize, what: &str) {
    let r = store.query(t, query).expect("a query is answered");
    let found = r
        .entities
        .iter()
        .filter(|e| r.exact || query.matches(e))
        .count();
    assert_eq!(found, want, "{what}: got {:?}", ids(&r.entities));
    let sorted = r.entities.windows(2).all(|w| w[0].id < w[1].id);
    assert!(sorted, "{what}: results are sorted by id");
}

fn by_type(expr: &str) -> EntityQuery {
    EntityQuery {
        types: Some(parse_type_expr(expr, &expand).unwrap()),
        ..Default::default()
    }
}

/// Entities within `meters` of the point `[lon,lat]`.
fn near(point: &str, meters: u32) -> EntityQuery {
    let coords = parse_coordinates_text(point).unwrap();
    let georel = format!("near;maxDistance=={meters}");
    EntityQuery {
        geo: Some(parse_geo_query(&georel, "Point", &coords, None, &expand).unwrap()),
        ..Default::default()
    }
}

fn with_spots() -> EntityQuery {
    EntityQuery {
        attrs: Some(vec![expand("availableSpotNumber")]),
        ..Default::default()
    }
}

/// Fifty parkings in the default tenant: `sg-00NN` has NN free spots and stands 0.002°
/// (~222 m) east of the one before, from 103.80,1.29 on.
async fn fifty_parkings(store: &dyn EntityStore) -> Tenant {
    let t = Tenant::default_tenant();
    let batch: Vec<Change> = (0..50)
        .map(|i| Change::Put(parking(i, i as i64, 103.80 + i as f64 * 0.002, 1.29)))
        .collect();
    store.commit(&t, batch).await.expect("a commit succeeds");
    t
}

/// The fifty parkings, then in one commit `sg-0003` replaced by a `Garage` at 0,0 with 99
/// free spots and `sg-0004` deleted: 49 entities, 48 of them `OffStreetParking`.
async fn one_replaced_one_deleted(store: &dyn EntityStore) -> Tenant {
    let t = fifty_parkings(store).await;
    let mut moved = parking(3, 99, 0.0, 0.0);
    moved.types = vec![expand("Garage")];
    let changes = vec![
        Change::Put(moved),
        Change::Delete("urn:ngsi-ld:OffStreetParking:sg-0004".into()),
    ];
    store.commit(&t, changes).await.expect("a commit succeeds");
    t
}

/// After [`one_replaced_one_deleted`]: `sg-0005` replaced without its spots, `sg-0006`
/// replaced with only a new value (same types, same place).
async fn two_more_replaced(store: &dyn EntityStore) -> Tenant {
    let t = one_replaced_one_deleted(store).await;
    let mut fewer = parking(5, 5, 103.81, 1.29);
    fewer.attrs.remove(&expand("availableSpotNumber"));
    let mut same_place = parking(6, 66, 103.812, 1.29);
    same_place.modified_at = time::now();
    let changes = vec![Change::Put(fewer), Change::Put(same_place)];
    store.commit(&t, changes).await.expect("a commit succeeds");
    t
}

pub async fn only_the_default_tenant_exists_in_a_fresh_store(s: &Stores) {
    let store = &*s.entities;
    assert!(
        store.tenant_exists(&Tenant::default_tenant()),
        "the default tenant always exists"
    );
    assert!(
        !store.tenant_exists(&Tenant::parse("city-b").unwrap()),
        "a tenant exists only once created"
    );
}

pub async fn committed_entities_are_visible(s: &Stores) {
    let store = &*s.entities;
    let t = fifty_parkings(store).await;
    assert_eq!(store.count(&t), 50, "a commit counts every entity it puts");
    assert!(
        store
            .get(&t, "urn:ngsi-ld:OffStreetParking:sg-0007")
            .unwrap()
            .is_some(),
        "a committed entity is found by its id"
    );
}

pub async fn entities_are_isolated_per_tenant(s: &Stores) {
    let store = &*s.entities;
    fifty_parkings(store).await;
    let other = Tenant::parse("city-b").unwrap();
    assert!(
        store
            .get(&other, "urn:ngsi-ld:OffStreetParking:sg-0007")
            .unwrap()
            .is_none(),
        "tenants are isolated: another tenant's entity is not found"
    );
}

pub async fn ensure_tenant_creates_an_empty_tenant(s: &Stores) {
    let store = &*s.entities;
    fifty_parkings(store).await;
    let other = Tenant::parse("city-b").unwrap();
    store.ensure_tenant(&other).await.unwrap();
    assert!(store.tenant_exists(&other), "an ensured tenant exists");
    assert!(
        store.tenants().contains(&other),
        "an ensured tenant is listed"
    );
    assert_eq!(store.count(&other), 0, "an ensured tenant starts empty");
}

pub async fn commit_of_a_new_tenant_creates_it(s: &Stores) {
    let store = &*s.entities;
    let city = Tenant::parse("city-c").unwrap();
    let changes = vec![Change::Put(parking(1, 1, 103.8, 1.3))];
    store.commit(&city, changes).await.unwrap();
    assert!(
        store.tenant_exists(&city),
        "a commit to a new tenant creates it"
    );
    assert!(
        store.tenants().contains(&city),
        "a tenant created by a commit is listed"
    );
    assert_eq!(store.count(&city), 1, "and holds what was committed");
}

pub async fn replacing_and_deleting_update_the_count(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    assert_eq!(
        store.count(&t),
        49,
        "a replacement keeps the count, a deletion lowers it"
    );
}

pub async fn query_without_filters_returns_everything_sorted_by_id(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(store, &t, &EntityQuery::default(), 49, "everything");
}

pub async fn query_by_type_follows_replace_and_delete(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(
        store,
        &t,
        &by_type("OffStreetParking"),
        48,
        "type index after replace/delete",
    );
    check(store, &t, &by_type("Garage"), 1, "new type indexed");
}

pub async fn query_by_type_union_matches_either_type(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(
        store,
        &t,
        &by_type("Garage,OffStreetParking"),
        49,
        "type union",
    );
}

pub async fn query_by_q_compares_values(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    let q = EntityQuery {
        q: Some(parse_q("availableSpotNumber>=40", &expand).unwrap()),
        ..Default::default()
    };
    check(store, &t, &q, 11, "q comparison (40..49 and 99)");
}

pub async fn query_by_ids_finds_only_stored_ids(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    let q = EntityQuery {
        ids: Some(vec![
            "urn:ngsi-ld:OffStreetParking:sg-0001".into(),
            "urn:x:none".into(),
        ]),
        ..Default::default()
    };
    check(store, &t, &q, 1, "ids");
}

pub async fn query_by_id_pattern_matches_the_pattern(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    let q = EntityQuery {
        id_pattern: Some(regex::Regex::new("sg-004[0-9]$").unwrap()),
        ..Default::default()
    };
    check(store, &t, &q, 10, "idPattern");
}

pub async fn query_by_attrs_finds_entities_that_have_them(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(store, &t, &with_spots(), 49, "attrs");
}

pub async fn query_near_finds_points_within_the_distance(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    // Within 500 m of 103.80,1.29: n = 0, 1, 2.
    check(store, &t, &near("[103.80,1.29]", 500), 3, "geo near");
}

pub async fn geo_index_finds_a_replaced_location_at_its_new_place(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(
        store,
        &t,
        &near("[0,0]", 10),
        1,
        "geo index follows a replaced location",
    );
}

pub async fn geo_index_forgets_a_replaced_location(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    check(
        store,
        &t,
        &near("[103.806,1.29]", 10),
        0,
        "a replaced location leaves the geo index",
    );
}

pub async fn replacing_without_an_attribute_drops_it_from_the_attribute_index(s: &Stores) {
    let store = &*s.entities;
    let t = two_more_replaced(store).await;
    check(
        store,
        &t,
        &with_spots(),
        48,
        "attribute index after an attribute is gone",
    );
}

pub async fn replacing_only_a_value_keeps_the_type_and_geo_index(s: &Stores) {
    let store = &*s.entities;
    let t = two_more_replaced(store).await;
    check(
        store,
        &t,
        &by_type("OffStreetParking"),
        48,
        "a value change keeps the type index",
    );
    check(
        store,
        &t,
        &near("[103.812,1.29]", 10),
        1,
        "a value change keeps the geo index",
    );
}

/// Beside the fifty parkings: `sg-0900` expires itself in a minute, every attribute of
/// `sg-0901` expires now. Returns the tenant, now, and in a minute.
async fn two_expiring(
    store: &dyn EntityStore,
) -> (Tenant, harbor_model::Timestamp, harbor_model::Timestamp) {
    let t = fifty_parkings(store).await;
    let now = time::now();
    let soon = now + chrono::Duration::seconds(60);
    let mut transient = parking(900, 1, 103.9, 1.3);
    transient.expires_at = Some(soon);
    let mut attr_transient = parking(901, 1, 103.9, 1.3);
    for list in attr_transient.attrs.values_mut() {
        list[0].expires_at = Some(now);
    }
    let changes = vec![Change::Put(transient), Change::Put(attr_transient)];
    store.commit(&t, changes).await.unwrap();
    (t, now, soon)
}

pub async fn expiring_finds_entities_by_their_earliest_expiry(s: &Stores) {
    let store = &*s.entities;
    let (t, now, soon) = two_expiring(store).await;
    assert_eq!(
        store.expiring(&t, now).unwrap(),
        ["urn:ngsi-ld:OffStreetParking:sg-0901"],
        "only what expired by now, an attribute's expiry included"
    );
    assert_eq!(
        store.expiring(&t, soon).unwrap().len(),
        2,
        "both by the later instant"
    );
}

pub async fn replacing_without_expiry_leaves_the_expiry_index(s: &Stores) {
    let store = &*s.entities;
    let (t, _, soon) = two_expiring(store).await;
    let lasting = parking(901, 1, 103.9, 1.3);
    store.commit(&t, vec![Change::Put(lasting)]).await.unwrap();
    assert_eq!(
        store.expiring(&t, soon).unwrap(),
        ["urn:ngsi-ld:OffStreetParking:sg-0900"],
        "a replaced entity leaves the expiry index"
    );
}

pub async fn expiry_is_per_tenant(s: &Stores) {
    let store = &*s.entities;
    let (_, _, soon) = two_expiring(store).await;
    let other = Tenant::parse("city-b").unwrap();
    store.ensure_tenant(&other).await.unwrap();
    assert!(
        store.expiring(&other, soon).unwrap().is_empty(),
        "expiry is per tenant"
    );
}

pub async fn deleting_everything_empties_every_index(s: &Stores) {
    let store = &*s.entities;
    let (t, _, soon) = two_expiring(store).await;
    let all: Vec<Change> = store
        .query(&t, &EntityQuery::default())
        .unwrap()
        .entities
        .iter()
        .map(|e| Change::Delete(e.id.clone()))
        .collect();
    store.commit(&t, all).await.unwrap();
    assert_eq!(store.count(&t), 0, "deleting everything leaves no entity");
    check(
        store,
        &t,
        &by_type("OffStreetParking"),
        0,
        "type index emptied",
    );
    check(store, &t, &with_spots(), 0, "attribute index emptied");
    check(
        store,
        &t,
        &near("[103.80,1.29]", 500),
        0,
        "geo index emptied",
    );
    assert!(
        store.expiring(&t, soon).unwrap().is_empty(),
        "expiry index emptied"
    );
}
