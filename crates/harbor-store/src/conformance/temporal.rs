//! Conformance cases of [`TemporalStore`]: changes of the current state are recorded from the feed
//! (as the historian does), the feed is kept until they are, history outlives the entity, instances
//! come back in time order within a range, samples agree with instances, and the temporal API's own
//! changes apply atomically.

use std::collections::BTreeMap;

use harbor_model::temporal::instance_id;
use harbor_model::{
    time, AttrValue, Attribute, Entity, TemporalInstance, Tenant, TimeProperty, Timestamp,
};
use serde_json::json;

use super::{expand, parking, vehicle_header, Stores};
use crate::{Change, HistoryBatch, InstanceRange, InstanceSample, TemporalChange, TemporalStore};

fn city() -> Tenant {
    Tenant::parse("temporal-city").unwrap()
}

fn visit_all(
    temporal: &dyn TemporalStore,
    id: &str,
    attr: &str,
    range: InstanceRange,
) -> Vec<TemporalInstance> {
    let mut out = Vec::new();
    temporal
        .visit_instances(&city(), id, attr, range, &mut |i| {
            out.push(i);
            true
        })
        .expect("a visit of instances is answered");
    out
}

fn payloads(list: &[TemporalInstance]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|i| i.attr.value.payload().clone())
        .collect()
}

fn at(s: &str) -> Timestamp {
    time::parse(s).unwrap()
}

/// What the historian does: record every feed record after the history cursor.
async fn catch_up(s: &Stores) {
    let (feed, temporal) = (&*s.feed, &*s.temporal);
    let changes = feed.changes_after(temporal.history_cursor(), usize::MAX);
    let Some(last) = changes.last().map(|c| c.seq) else {
        return;
    };
    let batch = HistoryBatch::derive(&changes, temporal).unwrap();
    assert_eq!(batch.cursor, last, "a history batch covers what it derives");
    temporal.commit_history(batch).await.unwrap();
    temporal.wait_for_history(last).await;
    assert_eq!(
        temporal.history_cursor(),
        last,
        "a history commit moves the history cursor"
    );
}

/// Commits `change` to `temporal-city` and waits until the history has recorded it.
async fn commit_recorded(s: &Stores, change: Change) {
    s.entities.commit(&city(), vec![change]).await.unwrap();
    catch_up(s).await;
}

/// A parking with 10 free spots created in `temporal-city` and recorded.
async fn recorded_creation(s: &Stores) -> Entity {
    let p = parking(1, 10, 103.8, 1.3);
    commit_recorded(s, Change::Put(p.clone())).await;
    p
}

/// After [`recorded_creation`], its spots updated to 9, recorded.
async fn recorded_update(s: &Stores) -> Entity {
    let mut p = recorded_creation(s).await;
    p.attrs.insert(
        expand("availableSpotNumber"),
        vec![Attribute::new(AttrValue::Property(json!(9)), time::now())],
    );
    commit_recorded(s, Change::Put(p.clone())).await;
    p
}

/// After [`recorded_update`], the entity deleted, recorded.
async fn recorded_deletion(s: &Stores) -> Entity {
    let p = recorded_update(s).await;
    commit_recorded(s, Change::Delete(p.id.clone())).await;
    p
}

const T1: &str = "urn:ngsi-ld:Vehicle:T1";

/// Written through the temporal API in one commit: the header of `Vehicle:T1` and four
/// `speed` instances out of time order, one before 1970: `old` = 0 (1969), `a` = 1 (12:03),
/// `b` = 2 (12:05), `c` = 3 (12:07).
async fn vehicle_t1(s: &Stores) -> String {
    let inst = |n: &str, v: i64, observed: &str| {
        let mut a = Attribute::new(AttrValue::Property(json!(v)), time::now());
        a.observed_at = Some(at(observed));
        TemporalChange::PutInstance {
            entity: T1.to_string(),
            attr: expand("speed"),
            instance: Box::new(TemporalInstance {
                instance_id: instance_id(n),
                attr: a,
                deleted_at: None,
            }),
        }
    };
    s.temporal
        .commit_temporal(
            &city(),
            vec![
                TemporalChange::PutHeader(vehicle_header(T1)),
                inst("b", 2, "2020-08-01T12:05:00Z"),
                inst("a", 1, "2020-08-01T12:03:00Z"),
                inst("c", 3, "2020-08-01T12:07:00Z"),
                inst("old", 0, "1969-12-31T23:59:59Z"),
            ],
        )
        .await
        .unwrap();
    expand("speed")
}

pub async fn a_commit_leaves_recording_to_the_historian(s: &Stores) {
    let p = parking(1, 10, 103.8, 1.3);
    s.entities
        .commit(&city(), vec![Change::Put(p)])
        .await
        .unwrap();
    assert!(
        s.temporal.history_cursor() < s.feed.last_seq(),
        "a commit leaves recording to the historian"
    );
}

pub async fn recording_a_creation_records_the_header_and_every_attribute(s: &Stores) {
    let p = recorded_creation(s).await;
    assert!(
        s.temporal
            .temporal_header(&city(), &p.id)
            .unwrap()
            .is_some(),
        "creating an entity creates its temporal header"
    );
    assert_eq!(
        s.temporal.temporal_attrs(&city(), &p.id).unwrap(),
        [
            expand("availableSpotNumber"),
            harbor_model::names::LOCATION.to_string(),
            harbor_model::temporal::SCOPE_ATTR.to_string()
        ],
        "every attribute of a created entity is recorded, and its scope"
    );
}

pub async fn recording_an_update_adds_an_instance(s: &Stores) {
    let p = recorded_update(s).await;
    let spots = expand("availableSpotNumber");
    assert_eq!(
        payloads(&visit_all(
            &*s.temporal,
            &p.id,
            &spots,
            InstanceRange::default()
        )),
        [json!(10), json!(9)],
        "an update is recorded"
    );
}

pub async fn recording_the_same_records_again_writes_the_same_rows(s: &Stores) {
    let p = recorded_update(s).await;
    let again = HistoryBatch::derive(&s.feed.changes_after(0, usize::MAX), &*s.temporal).unwrap();
    s.temporal.commit_history(again).await.unwrap();
    let spots = expand("availableSpotNumber");
    assert_eq!(
        visit_all(&*s.temporal, &p.id, &spots, InstanceRange::default()).len(),
        2,
        "recording the same feed records again writes the same rows"
    );
}

pub async fn an_attribute_left_alone_records_nothing_new(s: &Stores) {
    let p = recorded_update(s).await;
    assert_eq!(
        visit_all(
            &*s.temporal,
            &p.id,
            harbor_model::names::LOCATION,
            InstanceRange::default()
        )
        .len(),
        1,
        "an attribute left alone records nothing new"
    );
}

pub async fn recording_a_deletion_adds_deleted_instances_and_keeps_the_history(s: &Stores) {
    let p = recorded_deletion(s).await;
    let spots = expand("availableSpotNumber");
    let all = visit_all(&*s.temporal, &p.id, &spots, InstanceRange::default());
    assert_eq!(
        all.len(),
        3,
        "deleting the entity records deleted instances"
    );
    assert!(
        all[2].deleted_at.is_some(),
        "the instance a deletion records says when it was deleted"
    );
    assert!(
        s.temporal
            .temporal_header(&city(), &p.id)
            .unwrap()
            .is_some(),
        "history outlives the entity"
    );
}

pub async fn instances_come_back_in_time_order_also_before_1970(s: &Stores) {
    let speed = vehicle_t1(s).await;
    assert_eq!(
        payloads(&visit_all(
            &*s.temporal,
            T1,
            &speed,
            InstanceRange::default()
        )),
        [json!(0), json!(1), json!(2), json!(3)],
        "instances come back in time order, also before 1970"
    );
}

pub async fn a_range_is_from_inclusive_to_exclusive(s: &Stores) {
    let speed = vehicle_t1(s).await;
    let range = InstanceRange {
        from: Some(at("2020-08-01T12:04:00Z")),
        to: Some(at("2020-08-01T12:07:00Z")),
        newest_first: false,
    };
    assert_eq!(
        payloads(&visit_all(&*s.temporal, T1, &speed, range)),
        [json!(2)],
        "from <= t < to"
    );
}

pub async fn newest_first_stops_when_told(s: &Stores) {
    let speed = vehicle_t1(s).await;
    let mut newest = Vec::new();
    let range = InstanceRange {
        newest_first: true,
        ..Default::default()
    };
    s.temporal
        .visit_instances(&city(), T1, &speed, range, &mut |i| {
            newest.push(i);
            newest.len() < 2
        })
        .unwrap();
    assert_eq!(
        payloads(&newest),
        [json!(3), json!(2)],
        "newest first, stopping early"
    );
}

pub async fn temporal_entities_belong_to_their_tenant(s: &Stores) {
    vehicle_t1(s).await;
    let default = Tenant::default_tenant();
    assert!(
        s.temporal
            .temporal_headers(&default)
            .unwrap()
            .iter()
            .all(|h| h.id != T1),
        "temporal entities belong to their tenant"
    );
    assert!(
        s.temporal.temporal_header(&default, T1).unwrap().is_none(),
        "another tenant's temporal entity is not found by its id"
    );
}

pub async fn temporal_headers_are_listed_by_id(s: &Stores) {
    vehicle_t1(s).await;
    let p = recorded_creation(s).await;
    assert_eq!(
        s.temporal
            .temporal_headers(&city())
            .unwrap()
            .iter()
            .map(|h| h.id.clone())
            .collect::<Vec<_>>(),
        [p.id, T1.to_string()],
        "headers are listed by id, recorded and written alike"
    );
}

pub async fn deleting_an_instance_by_id_removes_only_it(s: &Stores) {
    let speed = vehicle_t1(s).await;
    s.temporal
        .commit_temporal(
            &city(),
            vec![TemporalChange::DeleteInstance {
                entity: T1.to_string(),
                attr: speed.clone(),
                instance_id: instance_id("b"),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        payloads(&visit_all(
            &*s.temporal,
            T1,
            &speed,
            InstanceRange::default()
        )),
        [json!(0), json!(1), json!(3)],
        "one instance deleted by its id"
    );
}

pub async fn retention_drops_only_what_is_older_than_the_cut(s: &Stores) {
    let speed = vehicle_t1(s).await;
    s.temporal
        .commit_temporal(
            &city(),
            vec![TemporalChange::TrimBefore {
                entity: T1.to_string(),
                before: at("2020-08-01T12:04:00Z"),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        payloads(&visit_all(
            &*s.temporal,
            T1,
            &speed,
            InstanceRange::default()
        )),
        [json!(2), json!(3)],
        "retention drops what is older than the cut, and only that"
    );
    assert!(
        s.temporal.temporal_header(&city(), T1).unwrap().is_some(),
        "retention keeps the temporal entity"
    );
}

pub async fn deleting_an_attribute_removes_every_instance(s: &Stores) {
    let speed = vehicle_t1(s).await;
    s.temporal
        .commit_temporal(
            &city(),
            vec![TemporalChange::DeleteAttr {
                entity: T1.to_string(),
                attr: speed.clone(),
            }],
        )
        .await
        .unwrap();
    assert!(
        s.temporal.temporal_attrs(&city(), T1).unwrap().is_empty(),
        "deleting an attribute removes every instance of it"
    );
    assert!(
        visit_all(&*s.temporal, T1, &speed, InstanceRange::default()).is_empty(),
        "a deleted attribute has no instance to visit"
    );
    assert!(
        s.temporal.temporal_header(&city(), T1).unwrap().is_some(),
        "deleting an attribute keeps the temporal entity"
    );
}

/// Leaves only `Vehicle:T1` in `temporal-city`'s temporal store, and the history cursor at
/// the last feed record.
pub async fn deleting_a_temporal_entity_removes_it_and_only_it(s: &Stores) {
    let p = recorded_deletion(s).await;
    vehicle_t1(s).await;
    s.temporal
        .commit_temporal(&city(), vec![TemporalChange::DeleteEntity(p.id.clone())])
        .await
        .unwrap();
    assert!(
        s.temporal
            .temporal_header(&city(), &p.id)
            .unwrap()
            .is_none(),
        "deleting a temporal entity removes its header"
    );
    assert!(
        s.temporal
            .temporal_attrs(&city(), &p.id)
            .unwrap()
            .is_empty(),
        "deleting a temporal entity removes its instances"
    );
    assert!(
        s.temporal.temporal_header(&city(), T1).unwrap().is_some(),
        "deleting a temporal entity leaves the others"
    );
}

const SAMPLES: &str = "urn:ngsi-ld:Vehicle:Samples";

/// One `reading` instance of every attribute kind and JSON payload type, a minute apart,
/// some with a `datasetId`, one with sub-attributes, and one deleted instance.
async fn every_kind_of_instance(s: &Stores) -> String {
    let attr = expand("reading");
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
    let mut changes = vec![TemporalChange::PutHeader(vehicle_header(SAMPLES))];
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
            entity: SAMPLES.to_string(),
            attr: attr.clone(),
            instance: Box::new(i),
        });
        if n == 4 {
            let gone = TemporalInstance::deleted(instance_id("gone"), &a, observed);
            changes.push(TemporalChange::PutInstance {
                entity: SAMPLES.to_string(),
                attr: attr.clone(),
                instance: Box::new(gone),
            });
        }
    }
    s.temporal.commit_temporal(&city(), changes).await.unwrap();
    attr
}

/// `visit_samples` gives, for every instance `visit_instances` gives, its `InstanceSample`:
/// over payloads of every JSON type and every attribute kind, datasetIds, deletions,
/// sub-attributes, ranges and newest first.
pub async fn samples_agree_with_instances_for_every_kind_range_and_time(s: &Stores) {
    let attr = every_kind_of_instance(s).await;
    let (temporal, t) = (&*s.temporal, city());
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
            .visit_instances(&t, SAMPLES, &attr, range, &mut |i| {
                instances.push(i);
                true
            })
            .unwrap();
        let mut samples = 0;
        temporal
            .visit_samples(&t, SAMPLES, &attr, range, time, &mut |s| {
                assert_eq!(
                    *s,
                    InstanceSample::of(&instances[samples], time),
                    "sample {samples} of {range:?} at {time:?} agrees with its instance"
                );
                samples += 1;
                true
            })
            .unwrap();
        assert_eq!(
            samples,
            instances.len(),
            "one sample per instance in {range:?}"
        );
        assert!(samples >= 6, "the instances of {range:?} are all visited");
    }
}

pub async fn a_sample_visit_stops_when_told(s: &Stores) {
    let attr = every_kind_of_instance(s).await;
    let mut seen = 0;
    s.temporal
        .visit_samples(
            &city(),
            SAMPLES,
            &attr,
            InstanceRange::default(),
            TimeProperty::ObservedAt,
            &mut |_| {
                seen += 1;
                seen < 2
            },
        )
        .unwrap();
    assert_eq!(seen, 2, "a sample visit stops when told");
}

const MANY: &str = "urn:ngsi-ld:Vehicle:Many";

/// What a long series holds, by (time, instanceId): the value of each instance.
type Series = BTreeMap<(Timestamp, String), u64>;

fn series_base() -> Timestamp {
    at("2022-01-01T00:00:00Z")
}

/// Instance n at minute (n * 37) % 100, rounded down to even: two share each minute and none
/// comes in order.
fn series_time(n: u64) -> Timestamp {
    series_base() + chrono::Duration::minutes(((n * 37) % 100) as i64 / 2 * 2)
}

fn series_instance(n: u64) -> TemporalInstance {
    let mut a = Attribute::new(AttrValue::Property(json!(n)), time::now());
    a.observed_at = Some(series_time(n));
    TemporalInstance {
        instance_id: instance_id(&format!("{n:03}")),
        attr: a,
        deleted_at: None,
    }
}

/// A hundred `speed` instances of `Vehicle:Many` written out of order in commits of 17, and
/// the model of them.
async fn long_series(s: &Stores) -> Series {
    let mut model = Series::new();
    let mut header = vec![TemporalChange::PutHeader(vehicle_header(MANY))];
    let order: Vec<u64> = (0..100).map(|n| (n * 61) % 100).collect();
    for batch in order.chunks(17) {
        let mut changes = std::mem::take(&mut header);
        for &n in batch {
            let i = series_instance(n);
            model.insert((series_time(n), i.instance_id.clone()), n);
            changes.push(TemporalChange::PutInstance {
                entity: MANY.to_string(),
                attr: expand("speed"),
                instance: Box::new(i),
            });
        }
        s.temporal.commit_temporal(&city(), changes).await.unwrap();
    }
    model
}

fn read_series(temporal: &dyn TemporalStore, range: InstanceRange, stop_after: usize) -> Vec<u64> {
    let mut out = Vec::new();
    temporal
        .visit_instances(&city(), MANY, &expand("speed"), range, &mut |i| {
            out.push(i.attr.value.payload().as_u64().unwrap());
            out.len() < stop_after
        })
        .unwrap();
    out
}

/// The series read whole, by ranges and newest first agrees with the model: however a backend
/// groups instances, every instance comes back once, in (time, instanceId) order.
#[track_caller]
fn check_series(temporal: &dyn TemporalStore, model: &Series, what: &str) {
    let all: Vec<u64> = model.values().copied().collect();
    assert_eq!(
        read_series(temporal, InstanceRange::default(), usize::MAX),
        all,
        "{what}"
    );
    let base = series_base();
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
        assert_eq!(
            read_series(temporal, range, usize::MAX),
            want,
            "{what}: {from} to {to}"
        );
        let newest = InstanceRange {
            newest_first: true,
            ..range
        };
        let want: Vec<u64> = want.into_iter().rev().take(5).collect();
        assert_eq!(
            read_series(temporal, newest, 5),
            want,
            "{what}: newest of {from} to {to}"
        );
    }
}

/// Retention of the series before minute 41; returns the model of what is left.
async fn trim_series(s: &Stores, mut model: Series) -> Series {
    let cut = series_base() + chrono::Duration::minutes(41);
    s.temporal
        .commit_temporal(
            &city(),
            vec![TemporalChange::TrimBefore {
                entity: MANY.to_string(),
                before: cut,
            }],
        )
        .await
        .unwrap();
    model.retain(|(at, _), _| *at >= cut);
    model
}

pub async fn a_long_series_written_out_of_order_reads_back_in_order(s: &Stores) {
    let model = long_series(s).await;
    check_series(&*s.temporal, &model, "written out of order");
}

pub async fn a_long_series_loses_exactly_the_instances_deleted_by_id(s: &Stores) {
    let mut model = long_series(s).await;
    let gone = [0u64, 99, 50, 51, 13];
    let changes = gone
        .iter()
        .map(|n| TemporalChange::DeleteInstance {
            entity: MANY.to_string(),
            attr: expand("speed"),
            instance_id: instance_id(&format!("{n:03}")),
        })
        .collect();
    s.temporal.commit_temporal(&city(), changes).await.unwrap();
    model.retain(|_, n| !gone.contains(n));
    check_series(&*s.temporal, &model, "after deleting instances by id");
}

pub async fn a_long_series_loses_exactly_what_retention_cuts(s: &Stores) {
    let model = long_series(s).await;
    let model = trim_series(s, model).await;
    check_series(&*s.temporal, &model, "after retention");
}

pub async fn a_long_series_puts_a_late_older_instance_first(s: &Stores) {
    let model = long_series(s).await;
    let mut model = trim_series(s, model).await;
    // One more instance, older than every other left: it comes first.
    let late = series_instance(1_000);
    model.insert((series_time(1_000), late.instance_id.clone()), 1_000);
    s.temporal
        .commit_temporal(
            &city(),
            vec![TemporalChange::PutInstance {
                entity: MANY.to_string(),
                attr: expand("speed"),
                instance: Box::new(late),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        read_series(&*s.temporal, InstanceRange::default(), 1),
        [1_000],
        "an instance older than every other comes first"
    );
    check_series(&*s.temporal, &model, "after one more instance");
}
