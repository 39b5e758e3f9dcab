//! The HTTP edge under hostile load, on the real binary over loopback: slow and idle
//! connections cannot lock clients out, stalled heads and bodies time out, a full broker
//! answers 503 instead of dropping, queries are shed while `/health` answers, TLS works, and
//! SIGTERM exits within its deadline however many connections hang.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{client, Broker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// These tests measure time and load the machine (one floods a broker with 4,096 queries):
/// they run one at a time, so that one's flood does not starve another's broker.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The test opens thousands of sockets itself.
fn raise_own_file_limit() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the test's open-files limit");
}

/// A client that opens a new connection for every request.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build HTTP client")
}

/// Everything the broker sends on `s` until it closes it or `limit` passes.
async fn read_all(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_request_heads_does_not_lock_new_clients_out() {
    let _one = ONE_AT_A_TIME.lock().await;
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    // The common default of 1,024 open files, soft and hard: the broker cannot raise it.
    let mut broker = Broker::start_under(
        &["prlimit", "--nofile=1024:1024"],
        &dir.path().join("data"),
        dir.path(),
        0,
        &[],
    )
    .await;
    let addr = broker.addr();
    let mut slow = Vec::new();
    for _ in 0..1_000 {
        // The start of a request head, and then nothing.
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
            slow.push(s);
        }
    }
    assert!(slow.len() >= 900, "only {} connections opened", slow.len());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = fresh_client();
    for i in 0..20 {
        let started = Instant::now();
        let r = c
            .get(format!("{}/ngsi-ld/v1/types", broker.base))
            .send()
            .await;
        let took = started.elapsed();
        let status = match r {
            Ok(r) => r.status().as_u16(),
            Err(e) => broker.fail(&format!("new client {i}: {e}")),
        };
        if status != 200 || took > Duration::from_secs(1) {
            broker.fail(&format!(
                "new client {i} behind 1,000 slow heads: {status} after {took:?}"
            ));
        }
    }
    assert!(
        broker.stderr().contains("connection limit reached"),
        "the broker says when it reaches its connection limit:\n{}",
        broker.stderr()
    );
    drop(slow);
}

#[tokio::test]
async fn a_full_broker_answers_503_instead_of_dropping() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--max-connections", "4"],
    )
    .await;
    let addr = broker.addr();
    // The health check's connection may still be open: past the reclaim grace it is idle and
    // gives way, instead of counting as one of the four.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Four connections, each with a request in flight: a body that is still arriving.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"id\":",
        )
        .await
        .unwrap();
        busy.push(s);
    }
    // Long enough for the four heads to be read even when other tests load the machine.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let (answer, closed) = read_all(&mut extra, Duration::from_secs(3)).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "a connection beyond the limit: {answer:?}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("ServiceUnavailable"), "{answer}");
    assert!(closed, "the refused connection is closed");
    drop(busy);
}

#[tokio::test]
async fn stalled_heads_bodies_and_idle_connections_are_closed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &[
            "--header-timeout-ms",
            "300",
            "--body-timeout-ms",
            "300",
            "--idle-timeout-ms",
            "500",
        ],
    )
    .await;
    let addr = broker.addr();

    let mut head = TcpStream::connect(addr).await.unwrap();
    head.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_all(&mut head, Duration::from_secs(3)).await;
    assert!(closed, "an incomplete head is cut off");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "after {:?}; {answer:?}",
        started.elapsed()
    );

    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 50\r\n\r\n{\"id\":",
    )
    .await
    .unwrap();
    let (answer, _) = read_all(&mut body, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("did not arrive within 0.3 s"), "{answer}");

    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_all(&mut idle, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle kept-alive connection is closed");
    let idle_for = started.elapsed();
    assert!(
        idle_for >= Duration::from_millis(400) && idle_for < Duration::from_millis(2_000),
        "closed after {idle_for:?}, with an idle timeout of 500 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_deadline_and_keeps_what_was_acknowledged() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker =
        Broker::start_with(&data, dir.path(), 0, &["--shutdown-deadline-ms", "1500"]).await;
    let addr = broker.addr();
    let c = client();
    let id = "urn:ngsi-ld:OffStreetParking:acknowledged";
    let r = c
        .post(format!("{}/ngsi-ld/v1/entities", broker.base))
        .json(&json!({"id": id, "type": "OffStreetParking"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut hanging = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let part: &[u8] = if i % 2 == 0 {
            b"GET /health HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"
        };
        s.write_all(part).await.unwrap();
        hanging.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    broker.terminate();
    let status = tokio::task::block_in_place(|| broker.wait_exit(Duration::from_secs(8)));
    let took = started.elapsed();
    let Some(status) = status else {
        broker.fail("the broker did not exit within 8 s of SIGTERM");
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_millis(3_500),
        "exited {took:?} after SIGTERM, with a deadline of 1.5 s"
    );
    drop(hanging);
    let broker = Broker::start(&data, dir.path(), 1).await;
    let r = c
        .get(format!("{}/ngsi-ld/v1/entities/{id}", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the acknowledged entity survives the shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_heavy_queries_is_shed_and_health_keeps_answering() {
    let _one = ONE_AT_A_TIME.lock().await;
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--max-inflight-queries", "32"],
    )
    .await;
    let c = client();
    for chunk in 0..4 {
        let batch: Vec<_> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                json!({
                    "id": format!("urn:ngsi-ld:OffStreetParking:heavy-{n}"),
                    "type": "OffStreetParking",
                    "name": {"type": "Property", "value": format!("car park {}", (n * 7919) % 2000)},
                    "availableSpotNumber": {"type": "Property", "value": n % 97},
                })
            })
            .collect();
        let r = c
            .post(format!(
                "{}/ngsi-ld/v1/entityOperations/upsert",
                broker.base
            ))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "seed: {}", r.status());
    }
    let url = format!(
        "{}/ngsi-ld/v1/entities?type=OffStreetParking&q=availableSpotNumber%3E3&orderBy=name&limit=100",
        broker.base
    );
    let flood = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4_096 {
        let (flood, url) = (flood.clone(), url.clone());
        tasks.spawn(async move {
            let r = flood.get(&url).send().await.map_err(|e| e.to_string())?;
            let retry = r.headers().contains_key("retry-after");
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            Ok::<_, String>((status, retry))
        });
    }
    let health = fresh_client();
    let mut latencies = Vec::new();
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(4) {
        let started = Instant::now();
        let r = health
            .get(format!("{}/health", broker.base))
            .send()
            .await
            .expect("health under load");
        assert_eq!(r.status(), 200);
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut ok, mut shed, mut other) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok((200, _)) => ok += 1,
            Ok((503, true)) => shed += 1,
            Ok(x) => other.push(format!("{x:?}")),
            Err(e) => other.push(e),
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "4,096 queries: {ok} answered, {shed} shed (503); /health p50 {:?} p99 {p99:?} over {} probes",
        latencies[latencies.len() / 2],
        latencies.len()
    );
    assert!(
        other.is_empty(),
        "every query is answered 200 or 503 with Retry-After: {:?}",
        &other[..other.len().min(5)]
    );
    assert!(ok > 0 && shed > 0, "{ok} answered, {shed} shed");
    assert!(
        p99 < Duration::from_millis(250),
        "/health p99 {p99:?} over {} probes under 4,096 queries",
        latencies.len()
    );
}

#[tokio::test]
async fn the_api_is_served_over_tls_with_the_configured_certificate() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=infoharbor-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(broker.base.starts_with("https://"), "{}", broker.base);
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let c = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/ngsi-ld/v1/types", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the TLS port gets nowhere.
    let plain = client()
        .get(broker.base.replace("https://", "http://") + "/health")
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
