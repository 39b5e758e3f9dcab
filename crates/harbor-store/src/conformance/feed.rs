//! Conformance cases of [`FeedStore`](crate::FeedStore): every committed change is one numbered
//! record with what changed; outbox commits number deliveries, move the matcher cursor and trim the
//! feed, never past what the historian has not recorded.

use std::sync::Arc;

use harbor_model::{time, AttrValue, Attribute, Delivery, EntityChange, Tenant, Trigger};
use serde_json::json;

use super::{expand, parking, Stores};
use crate::{Change, HistoryBatch, OutboxBatch, OutboxChange};

/// What [`three_records`] leaves: the tenant, the feed position before it, and the records.
struct Records {
    t: Tenant,
    start: u64,
    id: String,
    recs: Vec<Arc<EntityChange>>,
}

/// One parking in `feed-city` created, updated with a second instance of its spots (a
/// `datasetId`), then deleted along with an entity that does not exist: three records.
async fn three_records(s: &Stores) -> Records {
    let (store, feed) = (&*s.entities, &*s.feed);
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
    Records {
        t,
        start,
        id: a.id,
        recs,
    }
}

fn delivery(t: &Tenant, changes: Vec<u64>) -> Delivery {
    Delivery {
        id: 0,
        tenant: t.clone(),
        subscription: "urn:ngsi-ld:Subscription:s".into(),
        changes,
        created_at: time::now(),
        attempts: 0,
        not_before: None,
        last_error: None,
        dead: false,
    }
}

/// After [`three_records`], two deliveries added (of the first record, and of the other two)
/// with the matcher cursor moved to the last record.
async fn two_deliveries(s: &Stores) -> (Records, Vec<Arc<Delivery>>) {
    let r = three_records(s).await;
    let added = s
        .feed
        .commit_outbox(OutboxBatch {
            changes: vec![
                OutboxChange::Add(delivery(&r.t, vec![r.recs[0].seq])),
                OutboxChange::Add(delivery(&r.t, vec![r.recs[1].seq, r.recs[2].seq])),
            ],
            cursor: Some(r.recs[2].seq),
            ..Default::default()
        })
        .await
        .unwrap();
    (r, added)
}

/// After [`three_records`], the historian has recorded up to the second record only.
async fn recorded_up_to_the_second(s: &Stores) -> Records {
    let r = three_records(s).await;
    s.temporal
        .commit_history(HistoryBatch {
            rows: Vec::new(),
            cursor: r.recs[1].seq,
        })
        .await
        .unwrap();
    assert_eq!(
        s.temporal.history_cursor(),
        r.recs[1].seq,
        "a history commit moves the history cursor"
    );
    assert!(
        s.feed.trim_floor() <= r.recs[1].seq + 1,
        "the trim floor says what the historian still needs"
    );
    r
}

pub async fn each_real_change_is_one_record_numbered_in_commit_order(s: &Stores) {
    let r = three_records(s).await;
    assert_eq!(
        r.recs.len(),
        3,
        "one record per real change; deleting nothing records nothing"
    );
    assert_eq!(
        s.feed.last_seq(),
        r.start + 3,
        "the last sequence number is the newest record's"
    );
    assert!(
        r.recs.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "numbered in commit order"
    );
    assert!(
        r.recs.iter().all(|c| c.tenant == r.t && c.id == r.id),
        "a record names its tenant and entity"
    );
}

pub async fn a_creation_record_changes_every_attribute(s: &Stores) {
    let r = three_records(s).await;
    assert_eq!(
        r.recs[0].entity_event(),
        Some(Trigger::EntityCreated),
        "a creation is recorded as such"
    );
    assert_eq!(
        r.recs[0].changed.len(),
        2,
        "a creation changes every attribute"
    );
}

pub async fn an_update_record_holds_only_what_changed(s: &Stores) {
    let r = three_records(s).await;
    let spots = expand("availableSpotNumber");
    assert_eq!(
        r.recs[1].entity_event(),
        Some(Trigger::EntityUpdated),
        "an update is recorded as such"
    );
    assert_eq!(
        r.recs[1].changed,
        vec![spots.clone()],
        "an update names the attributes it changed"
    );
    let before = r.recs[1]
        .before
        .as_ref()
        .expect("an update keeps what was before");
    assert_eq!(
        before.attrs.keys().collect::<Vec<_>>(),
        [&spots],
        "an update's before holds only what changed"
    );
    assert_eq!(
        before.attrs[&spots].len(),
        1,
        "an update's before holds the instances before the update"
    );
}

pub async fn a_deletion_record_keeps_the_whole_entity(s: &Stores) {
    let r = three_records(s).await;
    assert_eq!(
        r.recs[2].entity_event(),
        Some(Trigger::EntityDeleted),
        "a deletion is recorded as such"
    );
    assert_eq!(
        r.recs[2]
            .before
            .as_ref()
            .expect("a deletion keeps what was before")
            .attrs
            .len(),
        2,
        "a deletion keeps the whole entity"
    );
}

pub async fn records_are_read_by_seq_and_after_a_seq(s: &Stores) {
    let r = three_records(s).await;
    assert!(
        s.feed.change(r.recs[1].seq).is_some(),
        "a retained record is read by its number"
    );
    assert_eq!(
        s.feed.changes_after(r.recs[1].seq, 10).len(),
        1,
        "reading after a record starts at the next one"
    );
}

pub async fn outbox_commit_numbers_deliveries_and_moves_the_matcher_cursor(s: &Stores) {
    let (r, added) = two_deliveries(s).await;
    assert_eq!(added.len(), 2, "every added delivery comes back");
    assert!(
        added[0].id > 0 && added[1].id > added[0].id,
        "deliveries are numbered, in the order given"
    );
    assert_eq!(
        s.feed.matcher_cursor(),
        r.recs[2].seq,
        "an outbox commit moves the matcher cursor"
    );
    assert_eq!(
        s.feed.outbox().len(),
        2,
        "added deliveries are in the outbox"
    );
    assert_eq!(
        s.feed.delivery(added[1].id).as_deref(),
        Some(&*added[1]),
        "a delivery is read by its id as it was added"
    );
}

/// Leaves one dead delivery in the outbox, three records in the feed and the matcher cursor
/// at the last one.
pub async fn outbox_commit_settles_and_replaces_deliveries(s: &Stores) {
    let (_, added) = two_deliveries(s).await;
    let mut dead = (*added[1]).clone();
    dead.dead = true;
    dead.attempts = 3;
    s.feed
        .commit_outbox(OutboxBatch {
            changes: vec![OutboxChange::Delete(added[0].id), OutboxChange::Put(dead)],
            ..Default::default()
        })
        .await
        .unwrap();
    let left = s.feed.outbox();
    assert_eq!(left.len(), 1, "a settled delivery leaves the outbox");
    assert!(
        left[0].dead && left[0].attempts == 3,
        "a replaced delivery keeps what replaced it"
    );
    assert!(
        s.feed.delivery(added[0].id).is_none(),
        "a settled delivery is gone by its id too"
    );
}

pub async fn trimming_drops_records_below_the_cut(s: &Stores) {
    let r = recorded_up_to_the_second(s).await;
    s.feed
        .commit_outbox(OutboxBatch {
            trim_below: Some(r.recs[1].seq),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        s.feed.change(r.recs[0].seq).is_none(),
        "trimmed below the cut"
    );
    assert!(
        s.feed.change(r.recs[1].seq).is_some(),
        "kept from the cut on"
    );
}

pub async fn trimming_stops_at_what_the_history_has_not_recorded(s: &Stores) {
    let r = recorded_up_to_the_second(s).await;
    s.feed
        .commit_outbox(OutboxBatch {
            trim_below: Some(s.feed.last_seq() + 1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        s.feed.change(r.recs[1].seq).is_none() && s.feed.change(r.recs[2].seq).is_some(),
        "a trim stops at what the history has not recorded yet"
    );
}
