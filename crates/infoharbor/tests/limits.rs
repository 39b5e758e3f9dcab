//! Limits against abuse on the real binary, measured as an attacker would: hundreds of
//! distinct 1 MB `@context`s named in turn, and large hosted contexts posted in a loop. The
//! broker's resident memory must stay within its configured budget plus a fixed margin.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Broker};

const MIB: u64 = 1024 * 1024;
/// What the broker may hold beyond its `@context` budget: its own baseline, the request in
/// flight (the document being fetched, parsed and compiled) and the allocator's slack.
const MARGIN: u64 = 100 * MIB;

/// A valid `@context` of about `bytes` bytes made of short terms, all its own: the most
/// memory per byte of document.
fn document(n: usize, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 100);
    s.push_str("{\"@context\":{");
    let mut i = 0;
    while s.len() < bytes - 60 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"t{i}x{n}\":\"https://example.org/{n}/t{i}\""));
        i += 1;
    }
    s.push_str("}}");
    s
}

/// Serves `/ctx/{n}.jsonld`, a distinct ~1 MB document for each `n`, on a loopback port.
async fn context_server() -> u16 {
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the context server");
    let app = axum::Router::new().route(
        "/ctx/{name}",
        axum::routing::get(
            |axum::extract::Path(name): axum::extract::Path<String>| async move {
                let n: usize = name.trim_end_matches(".jsonld").parse().unwrap_or(0);
                (
                    [("content-type", "application/ld+json")],
                    document(n, 1_000_000),
                )
            },
        ),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn link(url: &str) -> String {
    format!("<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_remote_contexts_stay_within_the_cache_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 64 * MIB;
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &[
            "--context-cache-bytes",
            &budget.to_string(),
            "--log",
            "warn",
        ],
    )
    .await;
    let port = context_server().await;
    let http = client();
    let started = Instant::now();
    let before = broker.rss_bytes();
    let mut peak = before;
    let entities = format!("{}/ngsi-ld/v1/entities?type=t0x0", broker.base);
    // Two requests at a time, as a client on this 2-core machine might send them.
    let send = |n: usize| {
        let http = http.clone();
        let entities = entities.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/ctx/{n}.jsonld");
            let resp = http
                .get(&entities)
                .header("Link", link(&url))
                .send()
                .await
                .expect("query with a remote @context");
            (
                n,
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    for n in (0..300).step_by(2) {
        let (a, b) = tokio::join!(send(n), send(n + 1));
        for (n, status, body) in [a, b] {
            assert_eq!(status, 200, "context {n}: {body}");
        }
        if n % 20 == 0 {
            peak = peak.max(broker.rss_bytes());
        }
    }
    // The hot path is still a cache hit: the last context again costs no fetch.
    let (_, status, _) = send(299).await;
    assert_eq!(status, 200);
    let after = broker.rss_bytes();
    peak = peak.max(after);
    eprintln!(
        "300 remote contexts of 1 MB in {:?}: RSS {} MiB before, {} MiB after, {} MiB at most \
         (budget {} MiB)",
        started.elapsed(),
        before / MIB,
        after / MIB,
        peak / MIB,
        budget / MIB
    );
    assert!(
        after < budget + MARGIN,
        "RSS {} MiB after 300 contexts, more than the budget of {} MiB + {} MiB",
        after / MIB,
        budget / MIB,
        MARGIN / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_hosted_contexts_are_refused_beyond_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        Broker::start_with(&dir.path().join("data"), dir.path(), 0, &["--log", "warn"]).await;
    let http = client();
    let post = |body: String| {
        let http = http.clone();
        let url = format!("{}/ngsi-ld/v1/jsonldContexts", broker.base);
        async move {
            let resp = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("post a hosted @context");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let before = broker.rss_bytes();
    // 7 MB documents, as in the review: each is refused for its size, before it is stored.
    let (status, body) = post(document(7, 7_000_000)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("1048576 bytes"),
        "{body}"
    );
    // Documents just under the size limit: the 16 MiB of all stored contexts stop them long
    // before the tenant's count (100) would.
    let mut stored = 0;
    let mut refused = None;
    for n in 0..120 {
        let (status, body) = post(document(n, 1_000_000)).await;
        match status {
            201 => stored += 1,
            403 => {
                refused = Some(body);
                break;
            }
            other => panic!("hosted context {n}: {other} {body}"),
        }
    }
    let body = refused.expect("the quota refuses hosted contexts at some point");
    assert_eq!(body["type"], "urn:infoharbor:errors:QuotaExceeded");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("hosted_contexts_bytes"), "{detail}");
    assert!(
        (15..=16).contains(&stored),
        "{stored} stored before the 16 MiB were full"
    );
    // Further attempts change nothing.
    for n in 200..240 {
        let (status, body) = post(document(n, 1_000_000)).await;
        assert_eq!(status, 403, "{body}");
    }
    let after = broker.rss_bytes();
    eprintln!(
        "{stored} hosted contexts of 1 MB stored, 41 refused: RSS {} MiB before, {} MiB after",
        before / MIB,
        after / MIB
    );
    // Parsed, each stored document holds about five times its size, and the store keeps
    // its own copy.
    let bound = 8 * 16 * MIB + MARGIN;
    assert!(
        after < bound,
        "RSS {} MiB after the hosted contexts, more than {} MiB",
        after / MIB,
        bound / MIB
    );
}
