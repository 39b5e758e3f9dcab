//! What the tests of the real binary share: a broker process and a notification receiver.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Longest wait for `/health` after a start.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(15);

/// A running broker process; killed with SIGKILL when dropped, so a failing test leaves none.
pub struct Broker {
    child: Child,
    pub base: String,
    stderr_path: PathBuf,
}

impl Broker {
    /// Starts the binary on a free loopback port and waits for `/health`.
    pub async fn start(data_dir: &Path, log_dir: &Path, n: usize) -> Broker {
        Broker::start_with(data_dir, log_dir, n, &[]).await
    }

    /// Like `start`, with further `serve` flags.
    pub async fn start_with(data_dir: &Path, log_dir: &Path, n: usize, flags: &[&str]) -> Broker {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let stderr_path = log_dir.join(format!("broker-{n}.stderr"));
        let stderr = File::create(&stderr_path).expect("create broker stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_infoharbor"))
            .arg("serve")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(data_dir)
            // The receivers and context sources of these tests listen on loopback, which the
            // egress wall refuses unless it is allowed; a test may narrow this with its own flag.
            .arg("--egress-allow")
            .arg("127.0.0.0/8,::1")
            .args(flags)
            .env_remove("INFOHARBOR_LISTEN")
            .env_remove("INFOHARBOR_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the infoharbor binary");
        let mut broker = Broker {
            child,
            base: format!("http://{listen}"),
            stderr_path,
        };
        broker.wait_healthy(n).await;
        broker
    }

    async fn wait_healthy(&mut self, n: usize) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build HTTP client");
        let url = format!("{}/health", self.base);
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                self.fail(&format!(
                    "start {n}: broker exited before it was healthy ({status})"
                ));
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            if started.elapsed() > HEALTH_TIMEOUT {
                self.fail(&format!(
                    "start {n}: GET {url} did not answer 200 within {HEALTH_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The broker's resident memory (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the broker's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib * 1024
    }

    /// SIGKILL, then reap the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.len().saturating_sub(200);
        lines[tail..].join("\n")
    }

    pub fn fail(&mut self, what: &str) -> ! {
        self.kill9();
        panic!(
            "{what}\n--- broker stderr ({}) ---\n{}\n--- end of broker stderr ---",
            self.stderr_path.display(),
            self.stderr()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free loopback port")
}

/// One notification as a receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 204 at once.
    Healthy,
    /// Accepts the request and never answers.
    Hang,
}

/// A real HTTP notification endpoint on a loopback port. `stop` closes the port (connections
/// are refused), `start` opens it again on the same port.
pub struct Receiver {
    pub port: u16,
    mode: Mode,
    got: Arc<Mutex<Vec<Received>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn new(mode: Mode) -> Receiver {
        let mut r = Receiver {
            port: free_port(),
            mode,
            got: Arc::new(Mutex::new(Vec::new())),
            task: None,
            stop: None,
        };
        r.start().await;
        r
    }

    /// The endpoint URI for a subscription.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/notify", self.port)
    }

    pub async fn start(&mut self) {
        if self.task.is_some() {
            return;
        }
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let got = self.got.clone();
        let mode = self.mode;
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, uri: axum::http::Uri, body: axum::body::Bytes| {
                let got = got.clone();
                async move {
                    if mode == Mode::Hang {
                        std::future::pending::<()>().await;
                    }
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    got.lock().unwrap().push(Received {
                        at: Instant::now(),
                        path: uri.path().to_string(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body,
                    });
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        }));
    }

    /// Closes the port and every open connection: further connections are refused.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                panic!(
                    "receiver on port {} did not close its connections",
                    self.port
                );
            }
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// `(entity id, attribute value)` of every entity in every notification received, for
    /// notifications whose entities carry `attr` as a normalized Property.
    pub fn states(&self, attr: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for r in self.received() {
            for e in r.body["data"].as_array().into_iter().flatten() {
                if let Some(id) = e["id"].as_str() {
                    out.push((id.to_string(), e[attr]["value"].clone()));
                }
            }
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if check() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The entity type the tests of the real binary write.
pub const TYPE: &str = "OffStreetParking";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build HTTP client")
}

pub fn entity_id(tag: &str, i: usize) -> String {
    format!("urn:ngsi-ld:{TYPE}:{tag}-{i}")
}

pub async fn create_entities(c: &reqwest::Client, base: &str, tag: &str, n: usize) {
    for i in 0..n {
        let r = c
            .post(format!("{base}/ngsi-ld/v1/entities"))
            .json(&json!({
                "id": entity_id(tag, i),
                "type": TYPE,
                "occupancy": {"type": "Property", "value": -1},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [103.85, 1.29]}}
            }))
            .send()
            .await
            .expect("create entity");
        assert_eq!(
            r.status(),
            201,
            "create {}: {}",
            entity_id(tag, i),
            r.text().await.unwrap_or_default()
        );
    }
}

/// PATCH occupancy; true when acknowledged (204).
pub async fn update(c: &reqwest::Client, base: &str, id: &str, value: i64) -> bool {
    match c
        .patch(format!("{base}/ngsi-ld/v1/entities/{id}/attrs"))
        .json(&json!({"occupancy": {"type": "Property", "value": value}}))
        .send()
        .await
    {
        Ok(r) => r.status() == 204,
        Err(_) => false,
    }
}

/// `writers` tasks that PATCH `occupancy` of the `entities` entities tagged `tag`, `per_writer`
/// times each, with values unique to (round, writer, step), until one is not acknowledged;
/// each returns the (entity, value) pairs that were.
pub fn spawn_writers(
    c: &reqwest::Client,
    base: &str,
    tag: &str,
    entities: usize,
    round: i64,
    writers: usize,
    per_writer: i64,
) -> Vec<tokio::task::JoinHandle<Vec<(String, Value)>>> {
    (0..writers)
        .map(|w| {
            let (c, base, tag) = (c.clone(), base.to_string(), tag.to_string());
            tokio::spawn(async move {
                let mut ok = Vec::new();
                for k in 0..per_writer {
                    let id = entity_id(&tag, (w * 2 + k as usize) % entities);
                    let v = round * 100_000 + w as i64 * 1000 + k;
                    if update(&c, &base, &id, v).await {
                        ok.push((id, json!(v)));
                    } else {
                        break;
                    }
                }
                ok
            })
        })
        .collect()
}
