//! The `notify` scenario: partial updates while 1, 100 and 1,000 subscriptions (1, 10, 100
//! with `--quick`) match every one of them, notifying the in-process [`sink`](crate::sink).
//! It measures how fast updates are acknowledged, how fast their notifications arrive, and
//! whether every one that was due arrived.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

use crate::load::{self, Measured, Req};
use crate::report::{Notified, Row};
use crate::scenarios::{entity_id, mix, Sizes};
use crate::sink::{self, Tally, ATTRIBUTE};
use crate::{ceiling, procstat};

/// Update `i` writes `FIRST_VALUE + i`: unique in a sub-run, and apart from the seeded values
/// (0..500), so the sink can tell a notified update from a notified seed.
const FIRST_VALUE: u64 = 1_000_000;

/// How long delivery may make no progress before the wait for the rest is given up.
const QUIET: Duration = Duration::from_secs(10);

/// One sub-run: `updates` partial updates over `entities` seeded entities, each matched by
/// all `subscriptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyPlan {
    pub subscriptions: usize,
    pub entities: usize,
    pub updates: usize,
}

impl NotifyPlan {
    /// Entity notifications owed for `acked` acknowledged updates: each to every subscription.
    pub fn due(&self, acked: usize) -> u64 {
        acked as u64 * self.subscriptions as u64
    }
}

/// The sub-runs, fewest subscriptions first. Updates shrink as subscriptions grow, so that
/// the entity notifications due stay within 2M (a few tens of seconds of delivery).
pub fn plans(sizes: Sizes) -> Vec<NotifyPlan> {
    let runs: &[(usize, usize)] = if sizes.quick {
        &[(1, 20_000), (10, 10_000), (100, 5_000)]
    } else {
        &[(1, 150_000), (100, 20_000), (1_000, 2_000)]
    };
    runs.iter()
        .map(|&(subscriptions, updates)| NotifyPlan {
            subscriptions,
            entities: 1_000,
            updates,
        })
        .collect()
}

pub fn subscription_id(prefix: &str, i: usize) -> String {
    format!("urn:ngsi-ld:Subscription:bench-{prefix}-{i}")
}

/// A subscription to every change of [`ATTRIBUTE`] on any `OffStreetParking`.
pub fn subscription(id: &str, endpoint: &str) -> serde_json::Value {
    json!({
        "id": id,
        "type": "Subscription",
        "entities": [{"type": "OffStreetParking"}],
        "watchedAttributes": [ATTRIBUTE],
        "notification": {
            "attributes": [ATTRIBUTE],
            "endpoint": {"uri": endpoint, "accept": "application/json"}
        }
    })
}

/// Update `i`: a partial update of one of the seeded entities with a value of its own.
fn update(prefix: &str, entities: usize, i: usize) -> Req {
    let id = entity_id(prefix, (mix(i as u64) % entities as u64) as usize);
    let body = json!({ATTRIBUTE: {"type": "Property", "value": FIRST_VALUE + i as u64}});
    Req::with_body(
        Method::PATCH,
        format!("/entities/{id}/attrs"),
        serde_json::to_vec(&body).expect("json"),
    )
}

/// Runs every sub-run, handing each row over as soon as it is measured.
pub async fn run(
    base: &str,
    pid: Option<u32>,
    run_id: &str,
    sizes: Sizes,
    concurrency: usize,
    on_row: &mut dyn FnMut(Row),
) -> anyhow::Result<()> {
    for plan in plans(sizes) {
        let row = sub_run(base, pid, run_id, plan, concurrency)
            .await
            .with_context(|| format!("notify with {} subscriptions", plan.subscriptions))?;
        on_row(row);
    }
    Ok(())
}

async fn sub_run(
    base: &str,
    pid: Option<u32>,
    run_id: &str,
    plan: NotifyPlan,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let s = plan.subscriptions;
    // A tenant per sub-run: its subscriptions see only its own entities.
    let prefix = format!("{run_id}-n{s}");
    let client = crate::client(&format!("{run_id}-notify-{s}"))?;
    let api = format!("{base}/ngsi-ld/v1");
    let one: Arc<dyn Fn(usize) -> String + Send + Sync> =
        Arc::new(|_| "OffStreetParking".to_string());
    crate::seed(&client, &api, &prefix, plan.entities, &one)
        .await
        .context("seeding")?;

    let sink = sink::start(Tally::new(FIRST_VALUE, plan.updates)).await?;
    subscribe(&client, &api, &prefix, s, &sink.uri(), concurrency).await?;

    let make: Arc<dyn Fn(usize) -> Req + Send + Sync> = {
        let (prefix, n) = (prefix.clone(), plan.entities);
        Arc::new(move |i| update(&prefix, n, i))
    };
    let cpu_before = pid.and_then(procstat::cpu_seconds);
    let started = Instant::now();
    let m = load::run(
        &client,
        &api,
        plan.updates,
        concurrency,
        Arc::new([204]),
        make.clone(),
    )
    .await;
    let cpu_load = pid.and_then(procstat::cpu_seconds);
    let acked_at = Instant::now();
    let acked = m.requests - m.errors;
    let due = plan.due(acked);
    let tally = sink.tally.clone();
    let complete = {
        let tally = tally.clone();
        move || tally.delivered() >= due && tally.completeness(|_| s as u64).missing == 0
    };
    let drained = wait_until(complete, || tally.delivered(), QUIET).await;
    // What arrived when the wait ended; later arrivals do not count.
    let completeness = tally.completeness(|_| s as u64);
    let last = tally.last_arrival().map(Instant::from_std);
    let (delivered, notifications) = (tally.delivered(), tally.notifications());
    // Delivered is not yet settled: the broker removes deliveries from its outbox afterwards.
    let pending_after = settle(&client, base, QUIET).await;
    let settled_seconds = (pending_after == Some(0)).then(|| acked_at.elapsed().as_secs_f64());
    let cpu_after = pid.and_then(procstat::cpu_seconds);
    let per_update = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if acked > 0 => Some((b - a) * 1000.0 / acked as f64),
        _ => None,
    };
    let since_start = last.map(|t| t.duration_since(started).as_secs_f64());
    let notified = Notified {
        subscriptions: s,
        entities: plan.entities,
        due,
        delivered,
        delivered_percent: if due > 0 {
            delivered as f64 * 100.0 / due as f64
        } else {
            100.0
        },
        missing: completeness.missing,
        duplicates: completeness.duplicates,
        foreign: tally.foreign(),
        rejected: tally.rejected(),
        notifications,
        notifications_per_second: since_start.map(|t| notifications as f64 / t),
        delivered_per_second: since_start.map(|t| delivered as f64 / t),
        drain_seconds: last.map(|t| t.saturating_duration_since(acked_at).as_secs_f64()),
        drained,
        cpu_ms_per_update: per_update(cpu_before, cpu_after),
        settled_seconds,
        pending_after,
    };

    unsubscribe(&client, &api, &prefix, s, concurrency).await?;
    drop(sink);
    let ceil = ceiling::measure(&client, plan.updates, concurrency, 204, m.mean_body, make).await?;
    let mut row = Row::new(
        &format!("notify ({s} sub{})", if s == 1 { "" } else { "s" }),
        m,
        ceil,
        0,
        per_update(cpu_before, cpu_load),
        pid.and_then(procstat::rss_mib),
    );
    row.notify = Some(notified);
    Ok(row)
}

/// Creates subscriptions 0..n of a sub-run, all notifying `endpoint`.
async fn subscribe(
    client: &reqwest::Client,
    api: &str,
    prefix: &str,
    n: usize,
    endpoint: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let (prefix, endpoint) = (prefix.to_string(), endpoint.to_string());
    let m = load::run(
        client,
        api,
        n,
        concurrency.min(8),
        Arc::new([201]),
        Arc::new(move |i| {
            let body = subscription(&subscription_id(&prefix, i), &endpoint);
            Req::with_body(
                Method::POST,
                "/subscriptions".into(),
                serde_json::to_vec(&body).expect("json"),
            )
        }),
    )
    .await;
    ensure_clean("creating the subscriptions", &m)
}

/// Deletes subscriptions 0..n of a sub-run, so the next one measures only its own.
async fn unsubscribe(
    client: &reqwest::Client,
    api: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let prefix = prefix.to_string();
    let m = load::run(
        client,
        api,
        n,
        concurrency.min(8),
        Arc::new([204]),
        Arc::new(move |i| Req {
            method: Method::DELETE,
            ..Req::get(format!("/subscriptions/{}", subscription_id(&prefix, i)))
        }),
    )
    .await;
    ensure_clean("deleting the subscriptions", &m)
}

fn ensure_clean(what: &str, m: &Measured) -> anyhow::Result<()> {
    if m.errors > 0 {
        bail!(
            "{what}: {} of {} failed, e.g. {}",
            m.errors,
            m.requests,
            m.error_samples.join("; ")
        );
    }
    Ok(())
}

/// Waits until `complete()`, or until `progress()` has not moved for `quiet`; true when
/// complete.
async fn wait_until(
    complete: impl Fn() -> bool,
    progress: impl Fn() -> u64,
    quiet: Duration,
) -> bool {
    let mut seen = progress();
    let mut moved = Instant::now();
    loop {
        if complete() {
            return true;
        }
        if moved.elapsed() >= quiet {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = progress();
        if now != seen {
            (seen, moved) = (now, Instant::now());
        }
    }
}

/// Waits until the broker owes nothing more, or until what it owes has not moved for `quiet`;
/// what it owes at the end, `None` from a broker that does not tell.
async fn settle(client: &reqwest::Client, base: &str, quiet: Duration) -> Option<u64> {
    let mut seen = pending(client, base).await?;
    let mut moved = Instant::now();
    while seen > 0 && moved.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = pending(client, base).await?;
        if now != seen {
            (seen, moved) = (now, Instant::now());
        }
    }
    Some(seen)
}

/// What the broker still owes, from Infoharbor's `/admin/v1/notifications`: changes not yet
/// matched plus deliveries not yet settled (sent or not). `None` from a broker without it.
async fn pending(client: &reqwest::Client, base: &str) -> Option<u64> {
    let r = client
        .get(format!("{base}/admin/v1/notifications"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    Some(v["pending"].as_u64()? + v["unmatched"].as_u64().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn plans_keep_what_is_due_within_bounds() {
        let counts = |quick| -> Vec<usize> {
            plans(Sizes { quick })
                .iter()
                .map(|p| p.subscriptions)
                .collect()
        };
        assert_eq!(counts(false), [1, 100, 1_000]);
        assert_eq!(counts(true), [1, 10, 100]);
        for quick in [false, true] {
            for p in plans(Sizes { quick }) {
                let due = p.due(p.updates);
                assert!((10_000..=2_000_000).contains(&due), "{p:?}: {due}");
                // Every value written is apart from the seed and stays a whole number.
                assert!(FIRST_VALUE > 500 && FIRST_VALUE + (p.updates as u64) < u32::MAX as u64);
            }
        }
        let p = NotifyPlan {
            subscriptions: 1_000,
            entities: 1_000,
            updates: 2_000,
        };
        assert_eq!(p.due(1_999), 1_999_000, "only acknowledged updates are due");
        assert_eq!(p.due(0), 0);
    }

    #[test]
    fn update_i_writes_its_own_value_to_a_seeded_entity() {
        let mut values = std::collections::HashSet::new();
        for i in 0..2_000 {
            let r = update("r", 10, i);
            assert_eq!(r.method, Method::PATCH);
            let k: usize = r
                .path
                .rsplit_once('-')
                .unwrap()
                .1
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(k < 10, "{}", r.path);
            assert!(r
                .path
                .starts_with("/entities/urn:ngsi-ld:OffStreetParking:r-"));
            let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
            let v = body[ATTRIBUTE]["value"].as_u64().unwrap();
            assert_eq!(v, FIRST_VALUE + i as u64);
            assert!(values.insert(v));
        }
    }

    #[test]
    fn subscription_watches_what_updates_write() {
        let s = subscription(&subscription_id("b1-n100", 7), "http://127.0.0.1:9/notify");
        assert_eq!(s["id"], "urn:ngsi-ld:Subscription:bench-b1-n100-7");
        assert_eq!(s["watchedAttributes"], json!([ATTRIBUTE]));
        assert_eq!(s["notification"]["attributes"], json!([ATTRIBUTE]));
        assert_eq!(
            s["notification"]["endpoint"]["uri"],
            "http://127.0.0.1:9/notify"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_when_complete_or_when_delivery_stalls() {
        let count = Arc::new(AtomicU64::new(0));
        // Ten arrivals, one a second, then nothing: given up 10 s after the last one.
        let feeder = count.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                feeder.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        let c = count.clone();
        let done = wait_until(
            || c.load(Ordering::Relaxed) >= 20,
            || c.load(Ordering::Relaxed),
            QUIET,
        )
        .await;
        assert!(!done);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(20) && waited < Duration::from_secs(21),
            "{waited:?}"
        );
        // Complete: returns at once.
        let started = Instant::now();
        assert!(wait_until(|| true, || 0, QUIET).await);
        assert!(started.elapsed() < Duration::from_millis(1));
    }
}
