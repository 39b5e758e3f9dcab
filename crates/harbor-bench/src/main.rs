//! `harbor-bench`: drives an NGSI-LD broker (ours or a peer) over HTTP and reports, per
//! scenario, requests/s, p50/p99/max latency, errors, and — given the broker's pid — its CPU
//! time per request and RSS, next to the raw ceiling of this machine measured in the same run.

mod broker;
mod ceiling;
mod load;
mod notify;
mod overload;
mod paired;
mod procstat;
mod report;
mod scale;
mod scenarios;
mod sink;
mod temporal;

use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser;

use report::Row;
use scenarios::{plan, Sizes, NAMES};

/// Benchmark an NGSI-LD broker. Scenarios:
///   create        POST /entities with unique ids (durable: each answered after fsync)
///   retrieve      GET /entities/{id} over 1,000 seeded entities
///   query-type    GET /entities?type=X&limit=20 over 100 entities of 5 types
///   query-q-10k   GET /entities?type=X&q=availableSpotNumber==V over 10k entities
///   query-q-100k  the same over 100k entities (skipped by --quick)
///   query-geo     near;maxDistance==300 m around a seeded point over 100k points (10k --quick)
///   update        PATCH /entities/{id}/attrs/availableSpotNumber over 1,000 entities
///   batch-upsert  POST /entityOperations/upsert, 1,000 entities per request (entities/s)
///   notify        PATCH /entities/{id}/attrs over 1,000 entities while 1, 100 and 1,000
///                 subscriptions (1, 10, 100 --quick) match every update, notifying a sink in
///                 this process: updates/s, notifications/s, entities delivered/s, delivered
///                 vs due (updates acknowledged × subscriptions), time to drain
///   temporal-retrieve   GET /temporal/entities/{id}?lastN=10, and timerel=between over a
///                 window of 100 instances at random places, over series of 1k, 10k and 100k
///                 instances one a minute (1k, 10k --quick); one row per query and size
///   temporal-aggregate  aggrMethods=avg,max, aggrPeriodDuration=PT1H over a whole series of
///                 1k, 10k and 100k instances (1k, 10k --quick), every hour checked against
///                 the seed; p50 over 100k is held against a target of 10 ms
///   auth-cost     retrieve and query-type on two brokers this tool starts, one with
///                 auth = none and one with JWT auth (a token issuer in this process) and one
///                 access policy: as a role holder and as a subject of the policy; the
///                 broker's CPU per request side by side
///   metrics-cost  retrieve and update on two brokers this tool starts, metrics on and off,
///                 alternating twice: throughput and CPU per request side by side
///   overload      a heavy query (q + orderBy over 10k entities) ramped from 1 to 64 clients
///                 to find the knee, then 4,096 clients at once that resend at once after a
///                 503, with /health probed every 10 ms: goodput / knee, 503s, /health p99
///   scale         seeds 1M entities (100k --quick, or --entities N): seed rate, RSS and data on
///                 disk with them; on a broker this tool started, kill -9 and restart, timed
///                 until /health and a count of them all; then, one request at a time, p50/p99
///                 of the first page, q on availableSpotNumber (n / 500 matches), orderBy on it,
///                 and a count, each beside its target (RSS ≤ 2 GiB, restart ≤ 15 s, first page
///                 ≤ 1 ms, q ≤ 2 ms, orderBy ≤ 5 ms, all at 1M). `resident` is its old name
///   all           every scenario above, in this order (scale last)
/// Each scenario is followed by the ceiling: the same client against a trivial hyper server in
/// this process answering a body of the scenario's mean response size; the ratio compares them.
/// Seeding uses batch upserts and is not measured. Entity: a Smart Data Models OffStreetParking
/// in Singapore (6 properties, a relationship, a GeoProperty).
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Scenario to run, or `all`.
    scenario: String,
    /// Small sizes: every scenario in a few minutes.
    #[arg(long)]
    quick: bool,
    /// Base URL of a running broker (e.g. http://127.0.0.1:1026); default: start our own.
    #[arg(long)]
    target: Option<String>,
    /// Pid of the broker at --target, for CPU time per request and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// The infoharbor binary to start (default: the one beside this tool).
    #[arg(long)]
    broker: Option<std::path::PathBuf>,
    /// Entities the scale scenario seeds [default: 1,000,000; 100,000 with --quick].
    #[arg(long)]
    entities: Option<usize>,
    /// Concurrent requests in flight.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // `resident` was the name of what `scale` starts with.
    let asked = match args.scenario.as_str() {
        "resident" => "scale",
        other => other,
    };
    let names: Vec<&str> = if asked == "all" {
        NAMES.iter().map(|(n, _)| *n).collect()
    } else if NAMES.iter().any(|(n, _)| *n == asked) {
        vec![asked]
    } else {
        bail!("unknown scenario {:?}; see --help", args.scenario)
    };
    let (mut spawned, base, pid) = match &args.target {
        Some(t) => (None, t.trim_end_matches('/').to_string(), args.pid),
        None => {
            let bin = match &args.broker {
                Some(b) => b.clone(),
                None => broker::default_binary()?,
            };
            let s = broker::spawn(&bin).await?;
            let (base, pid) = (s.base.clone(), Some(s.child.id()));
            (Some(s), base, pid)
        }
    };
    let idle_rss = pid.and_then(procstat::rss_mib).map(|(rss, _)| rss);
    let want_scale = names.contains(&"scale");
    let run_id = format!(
        "b{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let mut rows = Vec::new();
    let mut overloaded = None;
    let mut record = |row: Row| {
        if !args.json {
            eprintln!("{}", report::line(&row));
        }
        rows.push(row);
    };
    for name in names.into_iter().filter(|n| *n != "scale") {
        if matches!(name, "auth-cost" | "metrics-cost") && args.target.is_some() {
            eprintln!("{name}: skipped, it starts brokers of its own (no --target)");
        } else if name == "metrics-cost" {
            let bin = match &args.broker {
                Some(b) => b.clone(),
                None => broker::default_binary()?,
            };
            let sizes = Sizes { quick: args.quick };
            paired::metrics_cost(&bin, &run_id, sizes, args.concurrency, &mut record).await?;
        } else if name == "auth-cost" {
            let bin = match &args.broker {
                Some(b) => b.clone(),
                None => broker::default_binary()?,
            };
            let sizes = Sizes { quick: args.quick };
            paired::run(&bin, &run_id, sizes, args.concurrency, &mut record).await?;
        } else if name == "overload" {
            let sizes = Sizes { quick: args.quick };
            overloaded = Some(overload::run(&base, pid, &run_id, sizes).await?);
        } else if name == "notify" {
            let sizes = Sizes { quick: args.quick };
            notify::run(&base, pid, &run_id, sizes, args.concurrency, &mut record).await?;
        } else if let Some(kind) = temporal_kind(name) {
            let sizes = Sizes { quick: args.quick };
            temporal::run(
                kind,
                &base,
                pid,
                &run_id,
                sizes,
                args.concurrency,
                &mut record,
            )
            .await
            .with_context(|| name.to_string())?;
        } else if let Some(row) = run_scenario(name, &base, pid, &run_id, &args).await? {
            record(row);
        }
    }
    let scale = if want_scale {
        let n = args.entities.unwrap_or(if args.quick {
            scale::QUICK_ENTITIES
        } else {
            scale::ENTITIES
        });
        Some(scale::run(&base, pid, spawned.as_mut(), &run_id, n, &mut record).await?)
    } else {
        None
    };
    let pid = spawned.as_ref().map(|s| s.child.id()).or(pid);
    let report = report::Report {
        broker: base,
        quick: args.quick,
        concurrency: args.concurrency,
        idle_rss_mib: idle_rss,
        peak_rss_mib: pid.and_then(procstat::rss_mib).map(|(_, peak)| peak),
        rows,
        overload: overloaded,
        scale,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::table(&report));
    }
    drop(spawned);
    Ok(())
}

fn temporal_kind(name: &str) -> Option<temporal::Kind> {
    match name {
        "temporal-retrieve" => Some(temporal::Kind::Retrieve),
        "temporal-aggregate" => Some(temporal::Kind::Aggregate),
        _ => None,
    }
}

/// Seeds, measures, then measures the ceiling for one scenario.
async fn run_scenario(
    name: &str,
    base: &str,
    pid: Option<u32>,
    run_id: &str,
    args: &Args,
) -> anyhow::Result<Option<Row>> {
    let Some(p) = plan(name, Sizes { quick: args.quick }, run_id) else {
        return Ok(None);
    };
    // Each scenario gets its own tenant, so counts only see its own seed.
    let tenant = format!("{run_id}-{name}");
    let client = client(&tenant)?;
    let api = format!("{base}/ngsi-ld/v1");
    seed(&client, &api, run_id, p.seed, &p.seed_type)
        .await
        .with_context(|| format!("seeding {name}"))?;
    let concurrency = if p.entities_per_request > 1 {
        args.concurrency.min(8)
    } else {
        args.concurrency
    };
    measure(
        &client,
        &api,
        pid,
        name,
        concurrency,
        p.entities_per_request,
        Workload {
            requests: p.requests,
            expect_status: p.expect_status,
            make: p.make,
        },
    )
    .await
    .map(Some)
}

/// The requests of one measurement: `requests` made by `make`, successful with one of
/// `expect_status`.
pub struct Workload {
    pub requests: usize,
    pub expect_status: Arc<[u16]>,
    pub make: Arc<dyn Fn(usize) -> load::Req + Send + Sync>,
}

/// Runs the workload at `concurrency` with the broker's CPU per request (when its pid is
/// known), then the ceiling: the same client against a trivial server answering the
/// workload's success status and mean body size. The row of `name`.
pub async fn measure(
    client: &reqwest::Client,
    api: &str,
    pid: Option<u32>,
    name: &str,
    concurrency: usize,
    entities_per_request: usize,
    w: Workload,
) -> anyhow::Result<Row> {
    let cpu_before = pid.and_then(procstat::cpu_seconds);
    let m = load::run(
        client,
        api,
        w.requests,
        concurrency,
        w.expect_status.clone(),
        w.make.clone(),
    )
    .await;
    let cpu_after = pid.and_then(procstat::cpu_seconds);
    let cpu_ms_per_request = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if m.requests > 0 => Some((b - a) * 1000.0 / m.requests as f64),
        _ => None,
    };
    let ceil = ceiling::measure(
        client,
        w.requests,
        concurrency,
        w.expect_status[0],
        m.mean_body,
        w.make,
    )
    .await?;
    Ok(Row::new(
        name,
        m,
        ceil,
        entities_per_request,
        cpu_ms_per_request,
        pid.and_then(procstat::rss_mib),
    ))
}

fn client(tenant: &str) -> anyhow::Result<reqwest::Client> {
    client_as(tenant, None)
}

/// A client of `tenant` that sends `token` as a bearer, when given.
fn client_as(tenant: &str, token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("NGSILD-Tenant", tenant.parse()?);
    if let Some(t) = token {
        headers.insert("Authorization", format!("Bearer {t}").parse()?);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(1024)
        .timeout(std::time::Duration::from_secs(60))
        .build()?)
}

/// Seeds `n` entities with batch upserts of 1,000 (not measured).
async fn seed(
    client: &reqwest::Client,
    api: &str,
    run_id: &str,
    n: usize,
    ty: &Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> anyhow::Result<()> {
    let mut start = 0;
    while start < n {
        let end = (start + 1000).min(n);
        let batch: Vec<serde_json::Value> = (start..end)
            .map(|i| scenarios::entity(run_id, i, &ty(i)))
            .collect();
        let r = client
            .post(format!("{api}/entityOperations/upsert"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&batch)?)
            .send()
            .await?;
        if !r.status().is_success() || r.status().as_u16() == 207 {
            bail!(
                "seeding answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        start = end;
    }
    Ok(())
}
