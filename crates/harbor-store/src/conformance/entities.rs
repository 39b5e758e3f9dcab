//! Conformance cases of [`EntityStore`]: commits, tenants, and every index a query or the expiry
//! sweep goes through, followed through replacements and deletions.

use harbor_model::{time, Tenant};
use harbor_query::{
    parse_coordinates_text, parse_geo_query, parse_order_by, parse_q, parse_type_expr,
};

use super::{expand, ids, parking, Stores};
use crate::{Change, EntityQuery, EntityStore, Page, Paging};

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

fn paging(offset: usize, limit: usize, count: bool, order: Option<&str>) -> Paging {
    Paging {
        offset,
        limit,
        count,
        order: order.map(|o| parse_order_by(o, &expand, None, None).unwrap()),
    }
}

async fn page(store: &dyn EntityStore, t: &Tenant, q: &EntityQuery, p: &Paging) -> Page {
    store
        .query_page(t, q, p, time::now())
        .await
        .expect("a query is answered")
}

fn spots(p: &Page) -> Vec<i64> {
    p.entities
        .iter()
        .map(|e| {
            e.attrs
                .get(&expand("availableSpotNumber"))
                .and_then(|a| a[0].value.payload().as_i64())
                .unwrap_or(-1)
        })
        .collect()
}

pub async fn a_page_is_cut_from_the_matches_in_id_order(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    let q = by_type("OffStreetParking");
    let first = page(store, &t, &q, &paging(0, 20, true, None)).await;
    assert_eq!(first.entities.len(), 20, "a full first page");
    assert_eq!(first.total, Some(48), "the count of every match");
    assert!(first.more, "more follow the first page");
    assert!(first.entities.windows(2).all(|w| w[0].id < w[1].id));
    let last = page(store, &t, &q, &paging(40, 20, false, None)).await;
    assert_eq!(last.entities.len(), 8, "the last page holds what is left");
    assert_eq!(last.total, None, "no count unless asked");
    assert!(!last.more, "nothing follows the last page");
    assert!(first.entities[19].id < last.entities[0].id);
    let past = page(store, &t, &q, &paging(60, 20, true, None)).await;
    assert!(
        past.entities.is_empty() && !past.more,
        "a page past the end is empty"
    );
    assert_eq!(past.total, Some(48), "and still counts");
}

pub async fn a_count_alone_counts_every_match(s: &Stores) {
    let store = &*s.entities;
    let t = one_replaced_one_deleted(store).await;
    let q = EntityQuery {
        q: Some(parse_q("availableSpotNumber>=40", &expand).unwrap()),
        ..by_type("OffStreetParking")
    };
    let p = page(store, &t, &q, &paging(0, 0, true, None)).await;
    assert!(p.entities.is_empty());
    assert_eq!(p.total, Some(10), "40..49 (sg-0003 is a Garage now)");
}

pub async fn pages_follow_the_order_asked_for_with_absent_values_last(s: &Stores) {
    let store = &*s.entities;
    let t = fifty_parkings(store).await;
    // Ties: sg-0010 and sg-0030 both with 7; sg-0020 without the attribute.
    let mut changes = vec![Change::Put(parking(10, 7, 103.8, 1.29))];
    changes.push(Change::Put(parking(30, 7, 103.8, 1.29)));
    let mut bare = parking(20, 0, 103.8, 1.29);
    bare.attrs.remove(&expand("availableSpotNumber"));
    changes.push(Change::Put(bare));
    store.commit(&t, changes).await.expect("a commit succeeds");
    let q = by_type("OffStreetParking");
    let asc = page(
        store,
        &t,
        &q,
        &paging(6, 5, true, Some("availableSpotNumber")),
    )
    .await;
    assert_eq!(
        spots(&asc),
        vec![6, 7, 7, 7, 8],
        "ascending, from the seventh"
    );
    let tied: Vec<&str> = asc.entities[1..4].iter().map(|e| &e.id[29..]).collect();
    assert_eq!(tied, vec!["sg-0007", "sg-0010", "sg-0030"], "ties by id");
    assert_eq!(asc.total, Some(50));
    let desc = page(
        store,
        &t,
        &q,
        &paging(0, 3, false, Some("availableSpotNumber;desc")),
    )
    .await;
    assert_eq!(spots(&desc), vec![49, 48, 47], "descending");
    let tail = page(
        store,
        &t,
        &q,
        &paging(48, 5, false, Some("availableSpotNumber;desc")),
    )
    .await;
    assert_eq!(
        spots(&tail),
        vec![0, -1],
        "the entity without the value comes last"
    );
    assert!(!tail.more);
}

pub async fn a_page_leaves_out_expired_entities(s: &Stores) {
    let store = &*s.entities;
    let t = fifty_parkings(store).await;
    let mut gone = parking(1, 1, 103.8, 1.29);
    gone.expires_at = Some(time::now() - chrono::Duration::seconds(1));
    store
        .commit(&t, vec![Change::Put(gone)])
        .await
        .expect("a commit succeeds");
    let q = by_type("OffStreetParking");
    let p = page(store, &t, &q, &paging(0, 100, true, None)).await;
    assert_eq!(p.total, Some(49), "an expired entity is not counted");
    assert!(p.entities.iter().all(|e| !e.id.ends_with("sg-0001")));
    let sorted = page(
        store,
        &t,
        &q,
        &paging(0, 2, false, Some("availableSpotNumber")),
    )
    .await;
    assert_eq!(spots(&sorted), vec![0, 2], "nor ordered");
}

pub async fn value_queries_follow_changed_values(s: &Stores) {
    let store = &*s.entities;
    let t = fifty_parkings(store).await;
    store
        .commit(&t, vec![Change::Put(parking(3, 40, 103.8, 1.29))])
        .await
        .expect("a commit succeeds");
    let eq = |v: i64| EntityQuery {
        q: Some(parse_q(&format!("availableSpotNumber=={v}"), &expand).unwrap()),
        ..by_type("OffStreetParking")
    };
    let p = page(store, &t, &eq(40), &paging(0, 10, true, None)).await;
    assert_eq!(
        p.total,
        Some(2),
        "the new value is found (sg-0003 and sg-0040)"
    );
    let p = page(store, &t, &eq(3), &paging(0, 10, true, None)).await;
    assert_eq!(p.total, Some(0), "the old value is not");
    store
        .commit(
            &t,
            vec![Change::Delete(
                "urn:ngsi-ld:OffStreetParking:sg-0040".into(),
            )],
        )
        .await
        .expect("a commit succeeds");
    let p = page(store, &t, &eq(40), &paging(0, 10, true, None)).await;
    assert_eq!(p.total, Some(1), "nor a deleted entity's");
}
