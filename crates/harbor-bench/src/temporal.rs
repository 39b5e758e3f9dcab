//! The temporal scenarios: `temporal-retrieve` (lastN and a between window over series of 1k,
//! 10k and 100k instances) and `temporal-aggregate` (avg and max per hour over a whole series of
//! 1k, 10k and 100k). Each series is one entity with one instance a minute, seeded (not measured) through the
//! Temporal API in a tenant of the scenario's own; every answer is checked against the seed.

use std::sync::Arc;

use anyhow::{bail, ensure, Context as _};
use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::load::{self, Check, Measured, Req};
use crate::report::Row;
use crate::scenarios::{mix, Sizes};

/// The attribute every series records.
pub const ATTRIBUTE: &str = "availableSpotNumber";

/// Instances sent per seeding request (a body of about 80 KiB).
const CHUNK: usize = 1_000;

/// Instances in a between window of `temporal-retrieve`.
const WINDOW: usize = 100;

/// The aggregation's target: p50 at or under this over 100k instances.
pub const AGGREGATE_TARGET_P50_MS: f64 = 10.0;

/// Instance `i` of a series is observed at the `i`-th minute from 2026-01-01T00:00:00Z.
pub fn at(i: usize) -> String {
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (t0 + Duration::minutes(i as i64))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The value of instance `i` (deterministic, 0..500).
pub fn value(i: usize) -> i64 {
    (mix(i as u64) % 500) as i64
}

/// Hours of a series of `n` instances that hold data (the last may be partial).
pub fn hours(n: usize) -> usize {
    n.div_ceil(60)
}

/// (avg, max) of hour `h` of a series of `n` instances, from the seed formula.
pub fn hour_aggregates(n: usize, h: usize) -> (f64, i64) {
    let range = 60 * h..(60 * h + 60).min(n);
    let count = range.len() as f64;
    let (sum, max) = range.fold((0i64, i64::MIN), |(s, m), i| {
        (s + value(i), m.max(value(i)))
    });
    (sum as f64 / count, max)
}

pub fn series_id(run_id: &str, n: usize) -> String {
    format!("urn:ngsi-ld:OffStreetParking:{run_id}-t{n}")
}

fn instances(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| json!({"type": "Property", "value": value(i), "observedAt": at(i)}))
        .collect()
}

/// Which scenario, with its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Retrieve,
    Aggregate,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Retrieve => "temporal-retrieve",
            Kind::Aggregate => "temporal-aggregate",
        }
    }

    /// Instances of each seeded series.
    pub fn series(self, sizes: Sizes) -> Vec<usize> {
        match (self, sizes.quick) {
            (Kind::Retrieve, true) => vec![1_000, 10_000],
            (Kind::Retrieve, false) => vec![1_000, 10_000, 100_000],
            (Kind::Aggregate, true) => vec![1_000, 10_000],
            (Kind::Aggregate, false) => vec![1_000, 10_000, 100_000],
        }
    }
}

/// One measured row: a query kind over one series.
pub struct Probe {
    pub name: String,
    pub requests: usize,
    pub expect_status: Arc<[u16]>,
    pub make: Arc<dyn Fn(usize) -> Req + Send + Sync>,
    /// The p50 the row is held against, if any.
    pub target_p50_ms: Option<f64>,
}

fn size_label(n: usize) -> String {
    if n >= 1_000 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The rows of a scenario, in the order they run.
pub fn probes(kind: Kind, sizes: Sizes, run_id: &str) -> Vec<Probe> {
    let requests = |quick, full| if sizes.quick { quick } else { full };
    let mut out = Vec::new();
    for n in kind.series(sizes) {
        let id = series_id(run_id, n);
        let label = size_label(n);
        match kind {
            Kind::Retrieve => {
                let path = format!("/temporal/entities/{id}?lastN=10");
                out.push(Probe {
                    name: format!("temporal-retrieve lastN=10 ({label})"),
                    requests: requests(1_000, 5_000),
                    expect_status: Arc::new([200]),
                    make: Arc::new(move |_| {
                        Req::get(path.clone()).checked(instances_check(n - 10, 10))
                    }),
                    target_p50_ms: None,
                });
                let id = id.clone();
                out.push(Probe {
                    name: format!("temporal-retrieve between {WINDOW} ({label})"),
                    requests: requests(1_000, 5_000),
                    expect_status: Arc::new([200]),
                    make: Arc::new(move |i| {
                        let k = (mix(i as u64) % (n - WINDOW + 1) as u64) as usize;
                        Req::get(between(&id, k, k + WINDOW, ""))
                            .checked(instances_check(k, WINDOW))
                    }),
                    target_p50_ms: None,
                });
            }
            Kind::Aggregate => {
                let path = between(
                    &id,
                    0,
                    n,
                    "&options=aggregatedValues&aggrMethods=avg,max&aggrPeriodDuration=PT1H",
                );
                out.push(Probe {
                    name: format!("temporal-aggregate avg,max PT1H ({label})"),
                    requests: requests(200, 1_000),
                    // A 206 is let through to the check, which says what the answer lacks.
                    expect_status: Arc::new([200, 206]),
                    make: Arc::new(move |_| Req::get(path.clone()).checked(aggregate_check(n))),
                    target_p50_ms: (n == 100_000).then_some(AGGREGATE_TARGET_P50_MS),
                });
            }
        }
    }
    out
}

/// GET of the instances `from..to` of series `id` (between is start-inclusive, end-exclusive).
fn between(id: &str, from: usize, to: usize, extra: &str) -> String {
    format!(
        "/temporal/entities/{id}?timerel=between&timeAt={}&endTimeAt={}{extra}",
        at(from),
        at(to)
    )
}

/// Checks a normalized temporal entity holds exactly instances `first..first + count`.
fn instances_check(first: usize, count: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let list = v[ATTRIBUTE].as_array().ok_or("no instance array")?;
        if list.len() != count {
            return Err(format!("expected {count} instances, got {}", list.len()));
        }
        for (k, i) in [(0, first), (count - 1, first + count - 1)] {
            let (got_at, got_v) = (&list[k]["observedAt"], &list[k]["value"]);
            if got_at != at(i).as_str() || got_v != value(i) {
                return Err(format!(
                    "instance {k}: expected {} at {}, got {got_v} at {got_at}",
                    value(i),
                    at(i)
                ));
            }
        }
        Ok(())
    })
}

/// Checks the aggregated answer over a whole series of `n`: one avg and one max per hour, and
/// the first, a middle and the last hour equal to what the seed formula gives.
fn aggregate_check(n: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let want = hours(n);
        for method in ["avg", "max"] {
            let list = v[ATTRIBUTE][method]
                .as_array()
                .ok_or(format!("no {method} array"))?;
            if list.len() != want {
                let last = list.last().map_or("nothing".into(), |e| e[2].to_string());
                return Err(format!(
                    "{method} has {} hourly entries, expected {want} ({n} instances, one a minute): aggregated up to {last}",
                    list.len()
                ));
            }
            for h in [0, want / 2, want - 1] {
                let (avg, max) = hour_aggregates(n, h);
                let e = &list[h];
                let got = e[0].as_f64().unwrap_or(f64::NAN);
                let expected = if method == "avg" { avg } else { max as f64 };
                if e[1] != at(60 * h).as_str() || (got - expected).abs() > 1e-6 {
                    return Err(format!(
                        "{method} of hour {h}: expected {expected} from {}, got {e}",
                        at(60 * h)
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Seeds every series of a scenario, checks each holds all its instances, then measures each
/// row, handing it over as soon as it is measured.
pub async fn run(
    kind: Kind,
    base: &str,
    pid: Option<u32>,
    run_id: &str,
    sizes: Sizes,
    concurrency: usize,
    on_row: &mut dyn FnMut(Row),
) -> anyhow::Result<()> {
    let client = crate::client(&format!("{run_id}-{}", kind.name()))?;
    let api = format!("{base}/ngsi-ld/v1");
    for n in kind.series(sizes) {
        let id = series_id(run_id, n);
        seed(&client, &api, &id, n, concurrency)
            .await
            .with_context(|| format!("seeding {id}"))?;
        verify_count(&client, &api, &id, n)
            .await
            .with_context(|| format!("counting the instances of {id}"))?;
    }
    // An aggregation answer is large work per request: at most 8 in flight, as for batches.
    let concurrency = match kind {
        Kind::Retrieve => concurrency,
        Kind::Aggregate => concurrency.min(8),
    };
    for p in probes(kind, sizes, run_id) {
        on_row(measure(&client, &api, pid, p, concurrency).await?);
    }
    Ok(())
}

async fn measure(
    client: &reqwest::Client,
    api: &str,
    pid: Option<u32>,
    p: Probe,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let work = crate::Workload {
        requests: p.requests,
        expect_status: p.expect_status,
        make: p.make,
    };
    let mut row = crate::measure(client, api, pid, &p.name, concurrency, 0, work).await?;
    row.target_p50_ms = p.target_p50_ms;
    Ok(row)
}

/// Seeds series `id` with `n` instances: the first chunk creates the entity, the rest are added
/// in parallel (order does not matter, each instance carries its time).
async fn seed(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let first =
        json!({"id": id, "type": "OffStreetParking", ATTRIBUTE: instances(0..CHUNK.min(n))});
    let r = client
        .post(format!("{api}/temporal/entities"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&first)?)
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!(
            "creating it answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let chunks = n.div_ceil(CHUNK) - 1;
    let path = format!("/temporal/entities/{id}/attrs");
    let m = load::run(
        client,
        api,
        chunks,
        concurrency.min(4),
        Arc::new([204]),
        Arc::new(move |c| {
            let from = (c + 1) * CHUNK;
            let body = json!({ ATTRIBUTE: instances(from..(from + CHUNK).min(n)) });
            Req::with_body(
                Method::POST,
                path.clone(),
                serde_json::to_vec(&body).expect("json"),
            )
        }),
    )
    .await;
    ensure_clean("adding instances", &m)
}

/// Counts the instances of series `id` window by window (each under the broker's cap of 1,000
/// per answer) and checks there are `n`.
async fn verify_count(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    n: usize,
) -> anyhow::Result<()> {
    let windows = n.div_ceil(CHUNK);
    let id = id.to_string();
    let m = load::run(
        client,
        api,
        windows,
        4,
        Arc::new([200]),
        Arc::new(move |w| {
            let (from, to) = (w * CHUNK, ((w + 1) * CHUNK).min(n));
            Req::get(between(&id, from, to, "")).checked(instances_check(from, to - from))
        }),
    )
    .await;
    ensure_clean("reading the series back", &m)
}

fn ensure_clean(what: &str, m: &Measured) -> anyhow::Result<()> {
    ensure!(
        m.errors == 0,
        "{what}: {} of {} failed, e.g. {}",
        m.errors,
        m.requests,
        m.error_samples.join("; ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_a_minute_apart_from_new_year() {
        assert_eq!(at(0), "2026-01-01T00:00:00Z");
        assert_eq!(at(61), "2026-01-01T01:01:00Z");
        assert_eq!(at(100_000), "2026-03-11T10:40:00Z");
        assert!((0..10_000).all(|i| (0..500).contains(&value(i))));
    }

    #[test]
    fn aggregates_come_from_the_seed_formula() {
        assert_eq!(hours(100_000), 1_667);
        assert_eq!(hours(60), 1);
        let (avg, max) = hour_aggregates(100_000, 3);
        let vals: Vec<i64> = (180..240).map(value).collect();
        assert_eq!(max, *vals.iter().max().unwrap());
        assert!((avg - vals.iter().sum::<i64>() as f64 / 60.0).abs() < 1e-12);
        // The last hour of 100k holds 40 instances.
        let (avg, _) = hour_aggregates(100_000, 1_666);
        let last: i64 = (99_960..100_000).map(value).sum();
        assert!((avg - last as f64 / 40.0).abs() < 1e-12);
    }

    fn aggregated(n: usize, upto_hours: usize) -> Vec<u8> {
        let entries = |max: bool| -> Vec<Value> {
            (0..upto_hours)
                .map(|h| {
                    let (a, m) = hour_aggregates(n, h);
                    let v = if max { json!(m) } else { json!(a) };
                    json!([v, at(60 * h), at(60 * h + 60)])
                })
                .collect()
        };
        serde_json::to_vec(&json!({
            "id": "x", "type": "OffStreetParking",
            ATTRIBUTE: {"type": "Property", "avg": entries(false), "max": entries(true)}
        }))
        .unwrap()
    }

    #[test]
    fn aggregate_check_names_what_is_missing() {
        let check = aggregate_check(10_000);
        assert_eq!(check(&aggregated(10_000, 167)), Ok(()));
        // What a broker answers when it aggregates only the first 1,000 instances.
        let err = check(&aggregated(10_000, 17)).unwrap_err();
        assert!(
            err.contains("avg has 17 hourly entries, expected 167")
                && err.contains("2026-01-01T17:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn instances_check_wants_the_exact_window() {
        let body = |r: std::ops::Range<usize>| {
            serde_json::to_vec(&json!({"id": "x", ATTRIBUTE: instances(r)})).unwrap()
        };
        let check = instances_check(500, WINDOW);
        assert_eq!(check(&body(500..600)), Ok(()));
        assert!(check(&body(500..599)).unwrap_err().contains("expected 100"));
        assert!(check(&body(501..601)).unwrap_err().contains("instance 0"));
    }

    #[test]
    fn rows_per_kind_and_size() {
        let names = |k, quick| -> Vec<String> {
            probes(k, Sizes { quick }, "r")
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names(Kind::Retrieve, false).len(), 6);
        assert_eq!(names(Kind::Retrieve, true).len(), 4);
        assert_eq!(
            names(Kind::Aggregate, false),
            [
                "temporal-aggregate avg,max PT1H (1k)",
                "temporal-aggregate avg,max PT1H (10k)",
                "temporal-aggregate avg,max PT1H (100k)"
            ]
        );
        let p = &probes(Kind::Aggregate, Sizes { quick: false }, "r")[2];
        assert_eq!(p.target_p50_ms, Some(10.0));
        let r = (p.make)(0);
        assert!(r
            .path
            .contains("timeAt=2026-01-01T00:00:00Z&endTimeAt=2026-03-11T10:40:00Z"));
        // Every between window lies inside its series.
        for p in probes(Kind::Retrieve, Sizes { quick: false }, "r") {
            for i in 0..500 {
                assert!((p.make)(i)
                    .path
                    .starts_with("/temporal/entities/urn:ngsi-ld:"));
            }
        }
    }
}
