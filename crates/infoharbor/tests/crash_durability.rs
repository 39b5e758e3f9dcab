//! Invariant 1, tested on the real binary: nothing acknowledged is ever lost. Several writers
//! create `OffStreetParking` entities while the broker is killed with SIGKILL at random moments
//! and restarted on the same data directory; at the end every create that was answered 201 must
//! be retrievable with exactly the values that were sent.
//!
//! The run is reproducible: it prints its seed, and `INFOHARBOR_CRASH_SEED=<seed>` replays it.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::Broker;

/// How many times the broker is killed with SIGKILL while writers are busy.
const KILLS: usize = 6;
/// Concurrent writers per round; odd writers use a named tenant, even ones the default tenant.
const WRITERS: usize = 6;
/// The named tenant used by half of the writers.
const TENANT: &str = "sg-ura";
/// Longest wait for the first acknowledged create of a round.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(15);
/// Once a round has its first acknowledgement, the kill comes within this many milliseconds.
const MAX_KILL_DELAY_MS: u64 = 700;
/// The whole test, starts and verification included, must finish within this.
const TEST_BUDGET: Duration = Duration::from_secs(90);
/// Per-request timeout of the HTTP client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_repeated_sigkill() {
    if tokio::time::timeout(TEST_BUDGET, crash_and_verify())
        .await
        .is_err()
    {
        panic!("crash durability test did not finish within {TEST_BUDGET:?}");
    }
}

async fn crash_and_verify() {
    let started = Instant::now();
    let seed = seed();
    println!("crash durability: seed {seed} (replay with INFOHARBOR_CRASH_SEED={seed})");
    let mut rng = SplitMix64(seed);

    let work = tempfile::tempdir().expect("create temp dir");
    let data_dir = work.path().join("data");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("build HTTP client");

    let mut acked: Vec<Acked> = Vec::new();
    let mut in_doubt = 0usize;
    let mut unexpected: Vec<String> = Vec::new();

    for round in 0..KILLS {
        let mut broker = Broker::start(&data_dir, work.path(), round).await;
        let killed = Arc::new(AtomicBool::new(false));
        let round_acks = Arc::new(AtomicUsize::new(0));

        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let ctx = WriterCtx {
                    client: client.clone(),
                    base: broker.base.clone(),
                    round,
                    writer,
                    killed: killed.clone(),
                    round_acks: round_acks.clone(),
                };
                tokio::spawn(write_until_killed(ctx))
            })
            .collect();

        let waited = Instant::now();
        while round_acks.load(Ordering::SeqCst) == 0 {
            if writers.iter().all(|w| w.is_finished()) {
                break; // every writer gave up on an unexpected answer, reported below
            }
            if waited.elapsed() > FIRST_ACK_TIMEOUT {
                killed.store(true, Ordering::SeqCst);
                broker.fail(&format!(
                    "round {round}: no create was acknowledged within {FIRST_ACK_TIMEOUT:?}"
                ));
            }
            if let Some(status) = broker.exited() {
                killed.store(true, Ordering::SeqCst);
                broker.fail(&format!(
                    "round {round}: broker exited on its own ({status}) under write load"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delay = rng.below(MAX_KILL_DELAY_MS);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Some(status) = broker.exited() {
            killed.store(true, Ordering::SeqCst);
            broker.fail(&format!(
                "round {round}: broker exited on its own ({status}) under write load"
            ));
        }
        killed.store(true, Ordering::SeqCst);
        broker.kill9();

        let mut round_acked = 0;
        for handle in writers {
            let outcome = handle.await.expect("writer task panicked");
            round_acked += outcome.acked.len();
            acked.extend(outcome.acked);
            in_doubt += outcome.in_doubt;
            unexpected.extend(outcome.unexpected);
        }
        println!(
            "crash durability: round {round}: SIGKILL {delay} ms after the first ack, \
             {round_acked} creates acknowledged"
        );
        assert!(
            unexpected.is_empty(),
            "round {round}: the broker answered creates with something other than 201:\n{}\n\
             broker stderr:\n{}",
            unexpected.join("\n"),
            broker.stderr()
        );
    }

    let mut broker = Broker::start(&data_dir, work.path(), KILLS).await;
    let lost = verify_all(&client, &broker.base, &acked).await;
    println!(
        "crash durability: {KILLS} SIGKILLs, {} creates acknowledged, {in_doubt} in doubt \
         (sent, no answer), {} lost, {:.1} s",
        acked.len(),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    if !lost.is_empty() {
        let shown: Vec<_> = lost.iter().take(20).cloned().collect();
        broker.fail(&format!(
            "{} of {} acknowledged creates are missing or changed after restart (first {}):\n{}",
            lost.len(),
            acked.len(),
            shown.len(),
            shown.join("\n")
        ));
    }
}

/// One create that the broker answered with 201, and what was sent.
#[derive(Clone)]
struct Acked {
    tenant: Option<&'static str>,
    id: String,
    body: Value,
}

struct WriterCtx {
    client: reqwest::Client,
    base: String,
    round: usize,
    writer: usize,
    killed: Arc<AtomicBool>,
    round_acks: Arc<AtomicUsize>,
}

#[derive(Default)]
struct WriterOutcome {
    acked: Vec<Acked>,
    /// Creates sent without an answer (the kill came first): they may or may not exist.
    in_doubt: usize,
    /// Answers other than 201: always a failure.
    unexpected: Vec<String>,
}

/// Creates entities one after another until the broker is killed.
async fn write_until_killed(ctx: WriterCtx) -> WriterOutcome {
    let mut outcome = WriterOutcome::default();
    let tenant = (ctx.writer % 2 == 1).then_some(TENANT);
    let url = format!("{}/ngsi-ld/v1/entities", ctx.base);
    for seq in 0.. {
        if ctx.killed.load(Ordering::SeqCst) {
            break;
        }
        let body = parking(ctx.round, ctx.writer, seq);
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let mut request = ctx.client.post(&url).json(&body);
        if let Some(tenant) = tenant {
            request = request.header("NGSILD-Tenant", tenant);
        }
        match request.send().await {
            Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                ctx.round_acks.fetch_add(1, Ordering::SeqCst);
                outcome.acked.push(Acked { tenant, id, body });
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                outcome
                    .unexpected
                    .push(format!("POST {id} (tenant {tenant:?}): {status} {text}"));
                break;
            }
            Err(_) => {
                outcome.in_doubt += 1;
                // A transport error is expected once the broker is gone; before that, back
                // off a little and go on.
                if !ctx.killed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    outcome
}

/// A realistic car park in Singapore, unique per (round, writer, seq).
fn parking(round: usize, writer: usize, seq: usize) -> Value {
    let n = (round * 1_000_003 + writer * 7_919 + seq * 104_729) as u64;
    let total = 120 + n % 900;
    let available = n % (total + 1);
    let lon = 103.70 + ((n / 7) % 2_500) as f64 / 10_000.0;
    let lat = 1.27 + ((n / 11) % 1_600) as f64 / 10_000.0;
    let areas = [
        "Marina Bay",
        "Orchard",
        "Tampines",
        "Jurong East",
        "Bugis",
        "Toa Payoh",
    ];
    json!({
        "id": format!("urn:ngsi-ld:OffStreetParking:SG-r{round}-w{writer}-{seq:06}"),
        "type": "OffStreetParking",
        "name": {
            "type": "Property",
            "value": format!("{} car park {}", areas[(n % 6) as usize], seq + 1)
        },
        "category": { "type": "Property", "value": ["public", "feeCharged"] },
        "totalSpotNumber": { "type": "Property", "value": total },
        "availableSpotNumber": { "type": "Property", "value": available },
        "location": {
            "type": "GeoProperty",
            "value": { "type": "Point", "coordinates": [lon, lat] }
        }
    })
}

/// Retrieves every acknowledged entity and returns a line for each one missing or changed.
async fn verify_all(client: &reqwest::Client, base: &str, acked: &[Acked]) -> Vec<String> {
    const READERS: usize = 8;
    let chunk = acked.len().div_ceil(READERS).max(1);
    let readers: Vec<_> = acked
        .chunks(chunk)
        .map(|part| {
            let part = part.to_vec();
            let client = client.clone();
            let base = base.to_string();
            tokio::spawn(async move {
                let mut lost = Vec::new();
                for entity in &part {
                    if let Err(why) = verify_one(&client, &base, entity).await {
                        lost.push(format!("{} (tenant {:?}): {why}", entity.id, entity.tenant));
                    }
                }
                lost
            })
        })
        .collect();
    let mut lost = Vec::new();
    for reader in readers {
        lost.extend(reader.await.expect("reader task panicked"));
    }
    lost
}

async fn verify_one(client: &reqwest::Client, base: &str, entity: &Acked) -> Result<(), String> {
    let url = format!("{base}/ngsi-ld/v1/entities/{}", entity.id);
    let mut request = client.get(&url).header("Accept", "application/json");
    if let Some(tenant) = entity.tenant {
        request = request.header("NGSILD-Tenant", tenant);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("GET failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET answered {status}: {text}"));
    }
    let got: Value =
        serde_json::from_str(&text).map_err(|e| format!("GET body is not JSON ({e}): {text}"))?;
    for key in ["id", "type"] {
        if got[key] != entity.body[key] {
            return Err(format!("{key} is {}, sent {}", got[key], entity.body[key]));
        }
    }
    let Some(sent) = entity.body.as_object() else {
        return Err("sent body is not an object".into());
    };
    for (name, attr) in sent.iter().filter(|(k, _)| *k != "id" && *k != "type") {
        let back = &got[name];
        if back["type"] != attr["type"] {
            return Err(format!(
                "{name}.type is {}, sent {}",
                back["type"], attr["type"]
            ));
        }
        let same = if name == "location" {
            same_point(&back["value"], &attr["value"])
        } else {
            back["value"] == attr["value"]
        };
        if !same {
            return Err(format!(
                "{name}.value is {}, sent {}",
                back["value"], attr["value"]
            ));
        }
    }
    Ok(())
}

/// GeoJSON points compare by type and by coordinates within 1e-9 degrees.
fn same_point(got: &Value, sent: &Value) -> bool {
    let coords = |v: &Value| -> Option<Vec<f64>> {
        v["coordinates"]
            .as_array()?
            .iter()
            .map(Value::as_f64)
            .collect()
    };
    match (coords(got), coords(sent)) {
        (Some(a), Some(b)) => {
            got["type"] == sent["type"]
                && a.len() == b.len()
                && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-9)
        }
        _ => false,
    }
}

fn seed() -> u64 {
    if let Some(seed) = std::env::var("INFOHARBOR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// SplitMix64: a tiny, good-enough PRNG for choosing kill moments.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}
