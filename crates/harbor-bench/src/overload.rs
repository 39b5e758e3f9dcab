//! `overload`: the broker pushed past its knee. Over 10k seeded car parks, a heavy query (`q`
//! with `orderBy` over every match) is sent closed-loop at growing concurrency to find the
//! knee, the best goodput (answers 200 per second). Then 4,096 clients send it at once, each
//! sending again as soon as it is answered (a 503 included: the worst client, which ignores
//! `Retry-After`), while a probe times `GET /health` every 10 ms on a connection of its own.
//! The report holds goodput at 4,096 against the knee, the share answered 503 (and that each
//! carried `Retry-After`), other failures, and the probe's p50 and p99.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::scenarios::Sizes;

/// What `overload` measured.
#[derive(Debug, Serialize)]
pub struct Overload {
    pub entities: usize,
    /// Goodput at each concurrency of the ramp.
    pub ramp: Vec<(usize, f64)>,
    pub knee_per_second: f64,
    pub knee_concurrency: usize,
    pub clients: usize,
    pub goodput_per_second: f64,
    /// goodput ÷ knee.
    pub goodput_ratio: f64,
    pub shed: usize,
    pub shed_without_retry_after: usize,
    pub failed: usize,
    pub failure_samples: Vec<String>,
    pub health_probes: usize,
    pub health_p50_ms: f64,
    pub health_p99_ms: f64,
    pub health_max_ms: f64,
    pub rss_mib: Option<f64>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    shed: AtomicUsize,
    shed_bare: AtomicUsize,
    failed: AtomicUsize,
}

fn query(i: usize) -> String {
    format!(
        "/entities?type=OffStreetParking&q=availableSpotNumber%3E{}&orderBy=name&limit=100",
        i % 400
    )
}

/// `clients` closed-loop workers for `duration`; the counts of what they got.
async fn drive(
    client: &reqwest::Client,
    api: &str,
    clients: usize,
    duration: Duration,
    samples: &Arc<failures::Samples>,
) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(clients);
    for w in 0..clients {
        let (client, api, counts, stop, samples) = (
            client.clone(),
            api.to_string(),
            counts.clone(),
            stop.clone(),
            samples.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += clients;
                match client.get(format!("{api}{}", query(i))).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry = r.headers().contains_key("retry-after");
                        let body = r.bytes().await;
                        match (status, body) {
                            (200, Ok(_)) => {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            (503, Ok(_)) => {
                                counts.shed.fetch_add(1, Ordering::Relaxed);
                                if !retry {
                                    counts.shed_bare.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            (s, b) => {
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                                samples.add(format!("status {s}: {:?}", b.map(|b| b.len())));
                            }
                        }
                    }
                    Err(e) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        samples.add(format!("request failed: {e}"));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    counts
}

/// A few distinct failure descriptions.
mod failures {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Samples(Mutex<Vec<String>>);

    impl Samples {
        pub fn add(&self, s: String) {
            if let Ok(mut v) = self.0.lock() {
                if v.len() < 5 && !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        pub fn take(&self) -> Vec<String> {
            self.0.lock().map(|v| v.clone()).unwrap_or_default()
        }
    }
}

/// Runs `overload` against the broker at `base`.
pub async fn run(
    base: &str,
    pid: Option<u32>,
    run_id: &str,
    sizes: Sizes,
) -> anyhow::Result<Overload> {
    // Thousands of sockets: more than the usual soft limit of open files.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let entities = 10_000;
    let tenant = format!("{run_id}-overload");
    let clients = 4_096;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("NGSILD-Tenant", tenant.parse()?);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let api = format!("{base}/ngsi-ld/v1");
    let one: Arc<dyn Fn(usize) -> String + Send + Sync> =
        Arc::new(|_| "OffStreetParking".to_string());
    crate::seed(&client, &api, run_id, entities, &one)
        .await
        .context("seeding overload")?;
    let step = if sizes.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(6)
    };
    let samples = Arc::new(failures::Samples::default());
    let mut ramp = Vec::new();
    for c in [1, 2, 4, 8, 16, 32, 64] {
        let counts = drive(&client, &api, c, step, &samples).await;
        let per_second = counts.ok.load(Ordering::Relaxed) as f64 / step.as_secs_f64();
        eprintln!("overload ramp: {c:>3} clients  {per_second:>8.1} answers/s");
        ramp.push((c, per_second));
    }
    let (knee_concurrency, knee) =
        ramp.iter().copied().fold(
            (1, 0.0),
            |best, (c, r)| if r > best.1 { (c, r) } else { best },
        );

    // The flood, with /health probed alongside on a connection of its own.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?;
    let health_url = format!("{base}/health");
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let probing = probing.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while probing.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = probe
                    .get(&health_url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                lat.push((t.elapsed(), ok));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            lat
        })
    };
    let flood = if sizes.quick {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(20)
    };
    // The first seconds open 4,096 connections; goodput counts from the flood's start anyway.
    let counts = drive(&client, &api, clients, flood, &samples).await;
    probing.store(false, Ordering::Relaxed);
    let probes = prober.await?;
    let mut lat: Vec<f64> = probes
        .iter()
        .map(|(d, _)| d.as_secs_f64() * 1000.0)
        .collect();
    let failed_probes = probes.iter().filter(|(_, ok)| !ok).count();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let goodput = counts.ok.load(Ordering::Relaxed) as f64 / flood.as_secs_f64();
    let out = Overload {
        entities,
        ramp,
        knee_per_second: knee,
        knee_concurrency,
        clients,
        goodput_per_second: goodput,
        goodput_ratio: if knee > 0.0 { goodput / knee } else { 0.0 },
        shed: counts.shed.load(Ordering::Relaxed),
        shed_without_retry_after: counts.shed_bare.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed) + failed_probes,
        failure_samples: samples.take(),
        health_probes: lat.len(),
        health_p50_ms: pct(0.5),
        health_p99_ms: pct(0.99),
        health_max_ms: lat.last().copied().unwrap_or(0.0),
        rss_mib: pid.and_then(crate::procstat::rss_mib).map(|(rss, _)| rss),
    };
    eprintln!("{}", line(&out));
    Ok(out)
}

/// One line of the table.
pub fn line(o: &Overload) -> String {
    format!(
        "overload: knee {:.1}/s at {} clients; {} clients: goodput {:.1}/s = {:.2} x knee, \
         {} shed (503, {} without Retry-After), {} failed; /health p50 {:.1} ms p99 {:.1} ms \
         max {:.1} ms over {} probes; RSS {}",
        o.knee_per_second,
        o.knee_concurrency,
        o.clients,
        o.goodput_per_second,
        o.goodput_ratio,
        o.shed,
        o.shed_without_retry_after,
        o.failed,
        o.health_p50_ms,
        o.health_p99_ms,
        o.health_max_ms,
        o.health_probes,
        o.rss_mib.map_or("-".into(), |r| format!("{r:.0} MiB")),
    )
}
