//! `scale`: the broker with many entities at once (1M by default, 100k with `--quick`, any
//! number with `--entities`). Seeds that many car parks in a tenant of its own and reads RSS
//! and the data folder's size; on a broker this tool started, kills it (SIGKILL) and times its
//! start again until `/health` answers and a count query finds every entity; then, one request
//! at a time, measures the queries a client pages with: the first page of a type, an equality
//! `q` on an attribute, `orderBy` on that attribute, and a bare count. Every answer is checked
//! against the seed; `availableSpotNumber` cycles through 500 values, so an equality on one
//! value matches n / 500 entities (200 of 100k, 2,000 of 1M, 10,000 of 5M).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::Value;

use crate::broker::Spawned;
use crate::load::{self, Check, Req};
use crate::report::{self, Restart, Row, Scale, ScaleTargets};
use crate::scenarios::{available_spots, holding, mix, SPOT_VALUES};
use crate::{procstat, Workload};

/// Entities seeded by default, and with `--quick`.
pub const ENTITIES: usize = 1_000_000;
pub const QUICK_ENTITIES: usize = 100_000;

/// The targets, stated for 1M entities.
pub const TARGETS: ScaleTargets = ScaleTargets {
    at_entities: 1_000_000,
    rss_mib: 2048.0,
    restart_seconds: 15.0,
    first_page_p50_ms: 1.0,
    q_p50_ms: 2.0,
    order_by_p50_ms: 5.0,
};

/// The page size every query asks for.
const PAGE: usize = 20;

/// Answers sent (and checked) before each kind is measured; they also time it.
const WARM_UP: usize = 5;

/// Wall time each query kind is given: fast ones stop at `MAX_REQUESTS`, slow ones at the
/// requests that fit (never fewer than `MIN_REQUESTS`).
const BUDGET: Duration = Duration::from_secs(20);
const MIN_REQUESTS: usize = 10;
const MAX_REQUESTS: usize = 200;

/// How long a restarted broker has to answer `/health` and count every entity again.
const READY_WITHIN: Duration = Duration::from_secs(300);

/// One query kind of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    FirstPage,
    Q,
    OrderBy,
    Count,
}

impl Query {
    pub const ALL: [Query; 4] = [Query::FirstPage, Query::Q, Query::OrderBy, Query::Count];

    pub fn name(self) -> &'static str {
        match self {
            Query::FirstPage => "first page",
            Query::Q => "q",
            Query::OrderBy => "orderBy",
            Query::Count => "count",
        }
    }

    pub fn target_p50_ms(self) -> Option<f64> {
        match self {
            Query::FirstPage => Some(TARGETS.first_page_p50_ms),
            Query::Q => Some(TARGETS.q_p50_ms),
            Query::OrderBy => Some(TARGETS.order_by_p50_ms),
            Query::Count => None,
        }
    }

    /// Request `i` of this kind over a seed of `n`, with the check of its answer. Short
    /// attribute names and no `@context`, as the other query scenarios send them.
    pub fn request(self, n: usize, i: usize) -> Req {
        let base = "/entities?type=OffStreetParking";
        match self {
            Query::FirstPage => {
                Req::get(format!("{base}&limit={PAGE}")).checked(page_of_type(PAGE.min(n)))
            }
            Query::Q => {
                let v = spot_value(i);
                Req::get(format!(
                    "{base}&q=availableSpotNumber%3D%3D{v}&limit={PAGE}"
                ))
                .checked(page_with_value(PAGE.min(holding(n, v)), v))
            }
            Query::OrderBy => Req::get(format!("{base}&orderBy=availableSpotNumber&limit={PAGE}"))
                .checked(page_in_order(PAGE.min(n))),
            Query::Count => Req::get(format!("{base}&limit=0&count=true"))
                .checked(page_of_type(0))
                .counted(n),
        }
    }

    /// Like [`Query::request`], asking for the count too where the page alone does not show
    /// every match was found: the warm-up checks `q` this way on a sample of values.
    pub fn verifying(self, n: usize, i: usize) -> Req {
        let mut r = self.request(n, i);
        if self == Query::Q {
            r.path.push_str("&count=true");
            r = r.counted(holding(n, spot_value(i)));
        }
        r
    }
}

/// The value request `i` asks `q` for.
fn spot_value(i: usize) -> usize {
    (mix(i as u64) % SPOT_VALUES as u64) as usize
}

/// Requests of one kind that fit in the budget at `each` seconds a request.
pub fn requests_within(budget: Duration, each: f64) -> usize {
    let fit = budget.as_secs_f64() / each.max(1e-6);
    (fit as usize).clamp(MIN_REQUESTS, MAX_REQUESTS)
}

fn entities(body: &[u8], want: usize) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(list) = v else {
        return Err("not an array".into());
    };
    if list.len() != want {
        return Err(format!("expected {want} entities, got {}", list.len()));
    }
    Ok(list)
}

fn spots(e: &Value) -> Result<u64, String> {
    e["availableSpotNumber"]["value"]
        .as_u64()
        .ok_or_else(|| format!("{} has no availableSpotNumber value", e["id"]))
}

/// `want` entities, each an OffStreetParking.
fn page_of_type(want: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        for e in entities(body, want)? {
            if e["type"] != "OffStreetParking" {
                return Err(format!("{} is of type {}", e["id"], e["type"]));
            }
        }
        Ok(())
    })
}

/// `want` entities, each with `availableSpotNumber` `v`.
fn page_with_value(want: usize, v: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        for e in entities(body, want)? {
            let got = spots(&e)?;
            if got != v as u64 {
                return Err(format!(
                    "asked for availableSpotNumber=={v}, {} has {got}",
                    e["id"]
                ));
            }
        }
        Ok(())
    })
}

/// `want` entities in non-decreasing `availableSpotNumber`, from the smallest seeded (0).
fn page_in_order(want: usize) -> Check {
    Arc::new(move |body: &[u8]| {
        let values = entities(body, want)?
            .iter()
            .map(spots)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(k) = values.windows(2).position(|w| w[0] > w[1]) {
            return Err(format!(
                "not in order of availableSpotNumber: {} before {} at {k}",
                values[k],
                values[k + 1]
            ));
        }
        match values.first() {
            Some(&first) if first != available_spots(0) as u64 => Err(format!(
                "the first page starts at availableSpotNumber {first}, the smallest seeded is {}",
                available_spots(0)
            )),
            _ => Ok(()),
        }
    })
}

/// How many OffStreetParking entities a count query says there are.
async fn count(client: &reqwest::Client, api: &str) -> anyhow::Result<usize> {
    let r = client
        .get(format!(
            "{api}/entities?type=OffStreetParking&limit=0&count=true"
        ))
        .send()
        .await?;
    ensure!(r.status().is_success(), "the count answered {}", r.status());
    let header = r
        .headers()
        .get("NGSILD-Results-Count")
        .context("no NGSILD-Results-Count header")?;
    Ok(header.to_str()?.parse()?)
}

/// Kills the broker, starts it on the same data, and times it until it counts all `n`.
async fn restart(
    s: &mut Spawned,
    client: &reqwest::Client,
    api: &str,
    n: usize,
) -> anyhow::Result<Restart> {
    let t = Instant::now();
    s.restart(READY_WITHIN)
        .await
        .context("restarting after kill -9")?;
    let health_seconds = t.elapsed().as_secs_f64();
    loop {
        let seen = match count(client, api).await {
            Ok(c) if c == n => break,
            Ok(c) if c > n => bail!("after the restart a query counts {c} entities, not {n}"),
            Ok(c) => format!("{c} entities counted"),
            Err(e) => format!("{e:#}"),
        };
        if t.elapsed() > READY_WITHIN {
            bail!(
                "{} s after the restart no query counts all {n} entities (last: {seen})",
                READY_WITHIN.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Restart {
        health_seconds,
        ready_seconds: t.elapsed().as_secs_f64(),
        rss_mib: procstat::rss_mib(s.child.id()).map(|(rss, _)| rss),
    })
}

/// Warms one query kind up, checking the answers, then measures as many requests as fit the
/// budget, one at a time.
async fn probe(
    q: Query,
    client: &reqwest::Client,
    api: &str,
    pid: Option<u32>,
    n: usize,
) -> anyhow::Result<Row> {
    let name = format!("scale {} ({})", q.name(), report::count_label(n));
    // Values apart from the measured requests' (those start at 0).
    let warm = load::run(
        client,
        api,
        WARM_UP,
        1,
        Arc::new([200]),
        Arc::new(move |i| q.verifying(n, usize::MAX / 2 + i)),
    )
    .await;
    ensure!(
        warm.errors == 0,
        "{name}: {} of {} warm-up answers fail their check, e.g. {}",
        warm.errors,
        warm.requests,
        warm.error_samples.join("; ")
    );
    let requests = requests_within(BUDGET, warm.seconds / warm.requests as f64);
    let work = Workload {
        requests,
        expect_status: Arc::new([200]),
        make: Arc::new(move |i| q.request(n, i)),
    };
    let mut row = crate::measure(client, api, pid, &name, 1, 0, work).await?;
    row.target_p50_ms = q.target_p50_ms();
    Ok(row)
}

/// Runs `scale` with `n` entities; `spawned` is the broker at `base` when this tool started
/// it, and only then is it killed. Each query row goes to `record` as soon as it is measured.
pub async fn run(
    base: &str,
    pid: Option<u32>,
    mut spawned: Option<&mut Spawned>,
    run_id: &str,
    n: usize,
    record: &mut impl FnMut(Row),
) -> anyhow::Result<Scale> {
    let client = crate::client(&format!("{run_id}-scale"))?;
    let api = format!("{base}/ngsi-ld/v1");
    let rss = |pid: Option<u32>| pid.and_then(procstat::rss_mib).map(|(rss, _)| rss);
    let rss_before_mib = rss(pid);
    let one: Arc<dyn Fn(usize) -> String + Send + Sync> =
        Arc::new(|_| "OffStreetParking".to_string());
    let started = Instant::now();
    crate::seed(&client, &api, run_id, n, &one)
        .await
        .context("seeding scale")?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let counted = count(&client, &api).await?;
    ensure!(
        counted == n,
        "after seeding a query counts {counted} entities, not {n}"
    );
    let rss_mib = rss(pid);
    let mut scale = Scale {
        entities: n,
        seed_seconds,
        entities_per_second: n as f64 / seed_seconds,
        rss_before_mib,
        rss_mib,
        rss_kib_per_entity: match (rss_before_mib, rss_mib) {
            (Some(a), Some(b)) if n > 0 => Some((b - a) * 1024.0 / n as f64),
            _ => None,
        },
        data_mib: match spawned.as_deref() {
            Some(s) => Some(s.data_mib().context("measuring the data folder")?),
            None => None,
        },
        restart: None,
        targets: TARGETS,
    };
    eprintln!("{}", report::scale_seeded_line(&scale));
    if let Some(s) = spawned.as_deref_mut() {
        scale.restart = Some(restart(s, &client, &api, n).await?);
    }
    eprintln!("{}", report::scale_restart_line(&scale));
    // A restart gave the broker a new pid.
    let pid = spawned.map(|s| s.child.id()).or(pid);
    for q in Query::ALL {
        record(probe(q, &client, &api, pid, n).await?);
    }
    Ok(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(values: &[u64]) -> Vec<u8> {
        let list: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                json!({"id": format!("urn:x:{k}"), "type": "OffStreetParking",
                       "availableSpotNumber": {"type": "Property", "value": v}})
            })
            .collect();
        serde_json::to_vec(&list).unwrap()
    }

    #[test]
    fn checks_hold_answers_to_the_seed() {
        let ordered = page_in_order(4);
        assert_eq!(ordered(&page(&[0, 0, 1, 1])), Ok(()));
        assert!(ordered(&page(&[0, 2, 1, 3]))
            .unwrap_err()
            .contains("2 before 1"));
        assert!(ordered(&page(&[1, 1, 1, 1]))
            .unwrap_err()
            .contains("smallest"));
        assert!(ordered(&page(&[0, 0])).unwrap_err().contains("expected 4"));

        let equal = page_with_value(3, 7);
        assert_eq!(equal(&page(&[7, 7, 7])), Ok(()));
        assert!(equal(&page(&[7, 8, 7])).unwrap_err().contains("has 8"));

        let typed = page_of_type(0);
        assert_eq!(typed(b"[]"), Ok(()));
        assert!(typed(b"{}").is_err());
    }

    #[test]
    fn requests_pin_what_they_ask_and_expect() {
        let n = 100_000;
        let r = Query::FirstPage.request(n, 0);
        assert_eq!(r.path, "/entities?type=OffStreetParking&limit=20");
        let r = Query::OrderBy.request(n, 0);
        assert_eq!(
            r.path,
            "/entities?type=OffStreetParking&orderBy=availableSpotNumber&limit=20"
        );
        let r = Query::Count.request(n, 0);
        assert_eq!(r.path, "/entities?type=OffStreetParking&limit=0&count=true");
        assert_eq!(r.count, Some(n));
        // q varies its value and, when verifying, wants every match counted.
        let values: std::collections::HashSet<_> =
            (0..50).map(|i| Query::Q.request(n, i).path).collect();
        assert!(values.len() > 30, "{values:?}");
        let v = spot_value(3);
        let r = Query::Q.verifying(n, 3);
        assert_eq!(
            r.path,
            format!("/entities?type=OffStreetParking&q=availableSpotNumber%3D%3D{v}&limit=20&count=true")
        );
        assert_eq!(r.count, Some(200));
        assert_eq!(Query::Q.verifying(1_000_000, 3).count, Some(2_000));
        assert_eq!(Query::FirstPage.verifying(n, 3).count, None);
    }

    #[test]
    fn request_counts_fit_the_budget() {
        let b = Duration::from_secs(20);
        for (each, want) in [
            (0.0, MAX_REQUESTS),
            (0.001, MAX_REQUESTS),
            (0.05, 200),
            (0.5, 40),
            (1.0, 20),
            (5.0, MIN_REQUESTS),
        ] {
            assert_eq!(requests_within(b, each), want, "{each} s each");
        }
    }
}
