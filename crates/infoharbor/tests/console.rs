//! The operator console in a real browser: the binary with API keys on, Singapore car parks
//! seeded over the API, and Debian's Chromium driven by `playwright-core`
//! (`tests/console/drive.mjs`, one scenario per test). Each scenario logs in with the key,
//! works through the console as an operator would, and saves screenshots under
//! `target/console-screenshots/`. Node.js, the npm packages and Chromium must be there
//! (`scripts/services.sh`: `ensure_chromium`, `ensure_node_packages`); without them the
//! tests fail.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::Broker;

const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the live-update scenario measures a deadline of 1 s, which four
/// Chromiums sharing two cores would not keep.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// `target/console-screenshots`, beside the tests' scratch folder.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target folder")
        .join("console-screenshots")
}

/// Twelve car parks across Singapore: (id suffix, name, lon, lat, total, available).
const CAR_PARKS: &[(&str, &str, f64, f64, i64, i64)] = &[
    (
        "MarinaSquare",
        "Marina Square car park",
        103.8578,
        1.2912,
        860,
        121,
    ),
    ("Suntec", "Suntec City car park", 103.8590, 1.2950, 1300, 95),
    (
        "Bugis",
        "Bugis Junction car park",
        103.8555,
        1.3000,
        600,
        40,
    ),
    (
        "OrchardION",
        "ION Orchard car park",
        103.8320,
        1.3040,
        540,
        300,
    ),
    ("VivoCity", "VivoCity car park", 103.8222, 1.2644, 2000, 850),
    (
        "ChangiT3",
        "Changi Terminal 3 car park",
        103.9894,
        1.3555,
        1500,
        620,
    ),
    ("Jurong", "Jurong Point car park", 103.7430, 1.3331, 900, 15),
    (
        "Woodlands",
        "Causeway Point car park",
        103.7865,
        1.4360,
        700,
        230,
    ),
    (
        "Tampines",
        "Tampines Mall car park",
        103.9447,
        1.3526,
        1100,
        480,
    ),
    ("Bishan", "Junction 8 car park", 103.8480, 1.3500, 450, 60),
    (
        "Punggol",
        "Waterway Point car park",
        103.9020,
        1.4050,
        500,
        210,
    ),
    (
        "Clementi",
        "Clementi Mall car park",
        103.7650,
        1.3150,
        380,
        5,
    ),
];

const MARINA: &str = "urn:ngsi-ld:OffStreetParking:SG-MarinaSquare";

/// A broker with `auth = apikey`, an operator key made offline, and the car parks.
struct City {
    broker: Broker,
    key: String,
    _work: tempfile::TempDir,
}

impl City {
    async fn start() -> City {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_infoharbor"))
            .args(["keys", "create", "--grant", "operator", "--name", "console"])
            .arg("--data-dir")
            .arg(&data)
            .env_remove("INFOHARBOR_ADMIN_KEY")
            .output()
            .await
            .expect("run infoharbor keys create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let broker = Broker::start_with(&data, work.path(), 0, &["--auth", "apikey"]).await;
        let city = City {
            broker,
            key,
            _work: work,
        };
        let parks: Vec<Value> = CAR_PARKS
            .iter()
            .map(|(id, name, lon, lat, total, free)| {
                json!({
                    "id": format!("urn:ngsi-ld:OffStreetParking:SG-{id}"),
                    "type": "OffStreetParking",
                    "name": {"type": "Property", "value": name},
                    "totalSpotNumber": {"type": "Property", "value": total},
                    "availableSpotNumber": {"type": "Property", "value": free},
                    "location": {"type": "GeoProperty",
                                 "value": {"type": "Point", "coordinates": [lon, lat]}},
                })
            })
            .collect();
        city.send(
            "POST",
            "/ngsi-ld/v1/entityOperations/create",
            Some(json!(parks)),
        )
        .await;
        city
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut req = client
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.broker.base),
            )
            .header("X-API-Key", &self.key);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("send to the broker");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Runs one scenario of `drive.mjs`; what it measured.
    async fn drive(&self, scenario: &str, entity: &str) -> Value {
        let _one = ONE_BROWSER.lock().await;
        let dir = script_dir();
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: install Debian's chromium (scripts/services.sh \
             ensure_chromium, which .ci/run calls)"
        );
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "{}/node_modules is missing: run `npm ci --no-audit --no-fund` there \
             (scripts/services.sh ensure_node_packages)",
            dir.display()
        );
        let started = Instant::now();
        let run = tokio::process::Command::new("node")
            .arg("drive.mjs")
            .arg(scenario)
            .current_dir(&dir)
            .env("BROKER", &self.broker.base)
            .env("KEY", &self.key)
            .env("ENTITY", entity)
            .env("SHOTS", screenshots())
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .unwrap_or_else(|_| panic!("scenario {scenario} ran for more than 120 s"))
            .unwrap_or_else(|e| panic!("cannot run `node drive.mjs` (Node.js 20 is needed): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scenario {scenario} failed ({}); screenshots in {}\n{}\n{stdout}\n--- broker \
             stderr ---\n{}",
            out.status,
            screenshots().display(),
            String::from_utf8_lossy(&out.stderr),
            self.broker.stderr()
        );
        eprintln!(
            "{scenario}: {} in {:.1} s",
            stdout.trim(),
            started.elapsed().as_secs_f64()
        );
        serde_json::from_str(stdout.trim()).expect("drive.mjs prints one JSON line")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_maps_filters_opens_and_edits_a_car_park() {
    let city = City::start().await;
    let measured = city.drive("seesTheCity", MARINA).await;
    assert!(
        measured["refusal"]
            .as_str()
            .is_some_and(|r| r.contains("location")),
        "the refusal names the attribute: {measured}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_made_elsewhere_shows_on_the_map_within_a_second() {
    let city = City::start().await;
    let measured = city.drive("liveUpdate", MARINA).await;
    assert!(measured["liveAttributeMs"].as_u64().unwrap() < 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_the_history_of_free_spots() {
    let city = City::start().await;
    for (i, free) in [110, 98, 87, 64].iter().enumerate() {
        let at = format!("2026-01-05T{:02}:00:00Z", 8 + i);
        city.send(
            "PATCH",
            &format!("/ngsi-ld/v1/entities/{MARINA}/attrs/availableSpotNumber"),
            Some(json!({"type": "Property", "value": free, "observedAt": at})),
        )
        .await;
    }
    city.drive("chartHistory", MARINA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_a_dead_letter() {
    let city = City::start().await;
    city.drive("replayDeadLetter", MARINA).await;
}

/// Reads Server-Sent Events from `/console/events` with `key`, as the console does.
struct Events {
    resp: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(base: &str, key: &str) -> Events {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "{base}/console/events?type=OffStreetParking&options=keyValues"
            ))
            .header("X-API-Key", key)
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut events = Events {
            resp,
            buffer: String::new(),
        };
        let (name, _) = events.next().await;
        assert_eq!(name, "ready");
        events
    }

    /// The next event: its name and data.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                        name = v.to_string();
                    } else if let Some(v) =
                        line.strip_prefix("data: ").or(line.strip_prefix("data:"))
                    {
                        data.push_str(v);
                    }
                }
                if block.starts_with(':') {
                    continue;
                }
                return (
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                );
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.resp.chunk())
                .await
                .expect("an event within 5 s")
                .expect("read the event stream")
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_show_only_what_the_key_may_read() {
    let city = City::start().await;
    let partner = city
        .send(
            "POST",
            "/admin/v1/keys",
            Some(json!({"name": "kl-city", "grants": ["reader@kl"]})),
        )
        .await;
    let partner_key = partner["key"].as_str().unwrap().to_string();
    city.send(
        "POST",
        "/admin/v1/policies",
        Some(json!({
            "id": "bugis-to-kl", "tenant": "",
            "subjects": [format!("subject:key:{}", partner["id"].as_str().unwrap())],
            "actions": ["read"],
            "entities": [{"type": ["OffStreetParking"], "idPattern": ".*SG-Bugis"}],
            "attrs": ["availableSpotNumber"]
        })),
    )
    .await;
    let mut operator = Events::open(&city.broker.base, &city.key).await;
    let mut kl = Events::open(&city.broker.base, &partner_key).await;
    let patch = |id: &str, free: i64| {
        (
            format!("/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:SG-{id}/attrs/availableSpotNumber"),
            json!({"type": "Property", "value": free}),
        )
    };
    for (id, free) in [("MarinaSquare", 1), ("Bugis", 2)] {
        let (path, body) = patch(id, free);
        city.send("PATCH", &path, Some(body)).await;
    }
    let (name, first) = operator.next().await;
    assert_eq!(name, "change");
    assert_eq!(first["id"], MARINA, "{first}");
    assert_eq!(first["entity"]["name"], "Marina Square car park", "{first}");
    // The partner's first event is Bugis, projected onto the one attribute opened to it.
    let (name, seen) = kl.next().await;
    assert_eq!(name, "change");
    assert_eq!(
        seen["id"], "urn:ngsi-ld:OffStreetParking:SG-Bugis",
        "{seen}"
    );
    assert_eq!(
        seen["entity"],
        json!({"id": "urn:ngsi-ld:OffStreetParking:SG-Bugis", "type": "OffStreetParking",
               "availableSpotNumber": 2}),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_up_a_shutdown() {
    let mut city = City::start().await;
    let _events = Events::open(&city.broker.base, &city.key).await;
    let asked = Instant::now();
    city.broker.terminate();
    let status = city.broker.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "the broker did not exit within 5 s of SIGTERM with a stream open: {status:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}
