//! Temporal history on the real binary (ADR 0006): a temporal read sees every change
//! acknowledged before it, even while the historian's batch is still gathering, and `kill -9`
//! loses no acknowledged change from the history.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{client, create_entities, entity_id, spawn_writers, update, Broker};

/// Every `occupancy` value recorded for the entity, oldest first.
async fn recorded(c: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let r = c
        .get(format!("{base}/ngsi-ld/v1/temporal/entities/{id}"))
        .query(&[("attrs", "occupancy"), ("options", "temporalValues")])
        .send()
        .await
        .expect("temporal retrieve");
    assert!(
        r.status() == 200 || r.status() == 206,
        "temporal retrieve of {id}: {}",
        r.status()
    );
    let body: Value = r.json().await.expect("temporal JSON");
    body["occupancy"]["values"]
        .as_array()
        .map(|pairs| pairs.iter().map(|p| p[0].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_reads_see_every_acknowledged_change_at_once() {
    let work = tempfile::tempdir().unwrap();
    // A batch would gather for a minute: only a read that makes it flush can pass.
    let broker = Broker::start_with(
        &work.path().join("data"),
        work.path(),
        0,
        &["--history-flush-ms", "60000"],
    )
    .await;
    let c = client();
    create_entities(&c, &broker.base, "ryw", 1).await;
    let id = entity_id("ryw", 0);
    for v in 1..=5 {
        assert!(update(&c, &broker.base, &id, v).await, "update {v}");
        let values = recorded(&c, &broker.base, &id).await;
        assert_eq!(
            values.last(),
            Some(&json!(v)),
            "the history read right after update {v} ends with it: {values:?}"
        );
    }
    assert_eq!(
        recorded(&c, &broker.base, &id).await,
        [-1, 1, 2, 3, 4, 5].map(|v| json!(v)),
        "each state recorded once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_change_from_the_history() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    // Long batches: every kill lands with acknowledged changes not yet recorded.
    let flags = ["--history-flush-ms", "2000"];
    let c = client();
    let mut broker = Broker::start_with(&data, work.path(), 0, &flags).await;
    create_entities(&c, &broker.base, "h", 8).await;
    let mut acked: HashSet<(String, Value)> = HashSet::new();
    for round in 0..3i64 {
        let writers = spawn_writers(&c, &broker.base, "h", 8, round, 4, 200);
        tokio::time::sleep(Duration::from_millis(300 + 150 * round as u64)).await;
        broker.kill9();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        broker = Broker::start_with(&data, work.path(), round as usize + 1, &flags).await;
    }
    assert!(
        acked.len() > 100,
        "too few acknowledged updates ({}) to prove anything",
        acked.len()
    );
    let mut history = HashSet::new();
    for i in 0..8 {
        let id = entity_id("h", i);
        let values = recorded(&c, &broker.base, &id).await;
        let distinct: HashSet<_> = values.iter().collect();
        assert_eq!(
            distinct.len(),
            values.len(),
            "{id}: a change recorded twice after a restart"
        );
        history.extend(values.into_iter().map(|v| (id.clone(), v)));
    }
    let missing: Vec<_> = acked.difference(&history).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged changes missing from the history, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}
