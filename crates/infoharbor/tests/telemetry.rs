//! The broker's own health, on the real binary: JSON log lines that every request's lines
//! carry its id in, a `/metrics` exposition that `promtool check metrics` accepts and whose
//! counters move when requests, commits, notifications and dead letters happen, and the alert
//! rules of docs/operations.md, checked by `promtool check rules` against what the broker
//! actually exports.

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{client, free_port, Broker, Mode, Receiver};

/// The alert rules shipped for operators.
fn rules_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/prometheus/alerts.yml")
}

/// `promtool` with `args`, `input` on stdin; panics naming how to get it when it is missing.
fn promtool(args: &[&str], input: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is needed to check the exposition and the alert rules ({e}); \
             scripts/test.sh installs it (Debian package prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn scrape(c: &reqwest::Client, base: &str) -> String {
    let r = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("metrics text")
}

/// The value of the unlabelled series `name`, or of `name{labels}` given whole.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Every metric name the exposition defines: its TYPE lines (a histogram's `_bucket`, `_sum`
/// and `_count` included) and the names of its samples.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut parts = t.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The broker's metric names a rule file mentions (`infoharbor_*`, `process_*`); `up` is
/// Prometheus's own.
fn mentioned(rules: &str) -> BTreeSet<String> {
    rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("infoharbor_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

async fn subscribe(c: &reqwest::Client, base: &str, entity_type: &str, uri: &str) {
    let r = c
        .post(format!("{base}/ngsi-ld/v1/subscriptions"))
        .json(&json!({
            "type": "Subscription",
            "entities": [{"type": entity_type}],
            "notification": {"endpoint": {"uri": uri, "accept": "application/json"}}
        }))
        .send()
        .await
        .expect("create subscription");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

async fn create(c: &reqwest::Client, base: &str, id: &str, entity_type: &str) {
    let r = c
        .post(format!("{base}/ngsi-ld/v1/entities"))
        .header("X-Request-Id", format!("create-{id}"))
        .json(&json!({"id": id, "type": entity_type, "n": {"type": "Property", "value": 1}}))
        .send()
        .await
        .expect("create entity");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_lines_of_json_carrying_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--log-format", "json", "--log", "info,harbor_http=debug"],
    )
    .await;
    let c = client();
    let r = c
        .get(format!("{}/ngsi-ld/v1/entities/urn:x:missing", broker.base))
        .header("X-Request-Id", "telemetry-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "telemetry-log-1");
    let generated = c
        .get(format!("{}/health", broker.base))
        .send()
        .await
        .unwrap()
        .headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    broker.terminate();
    if broker.wait_exit(Duration::from_secs(15)).is_none() {
        broker.fail("the broker did not exit after SIGTERM");
    }
    let log = std::fs::read_to_string(dir.path().join("broker-0.stderr")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let mine = of("telemetry-log-1");
    let request = mine
        .iter()
        .find(|l| l["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no request line for telemetry-log-1 in\n{log}"));
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["fields"]["status"], 404);
    assert_eq!(request["fields"]["route"], "/ngsi-ld/v1/entities/{id}");
    assert_eq!(request["fields"]["method"], "GET");
    assert!(
        !of(&generated).is_empty(),
        "the made-up id {generated} is logged"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "infoharbor is serving NGSI-LD"),
        "startup lines are JSON too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_move_with_their_events_and_cover_the_alert_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--notify-max-attempts", "1"],
    )
    .await;
    let base = broker.base.clone();
    let c = client();
    let r = c.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"store": "up", "notifier": "up", "historian": "up"}})
    );
    let before = scrape(&c, &base).await;

    let receiver = Receiver::new(Mode::Healthy).await;
    subscribe(&c, &base, "Delivered", &receiver.uri()).await;
    // Nobody listens there: the one attempt allowed fails and the delivery is dead-lettered.
    let nowhere = format!("http://127.0.0.1:{}/notify", free_port());
    subscribe(&c, &base, "Undeliverable", &nowhere).await;
    create(&c, &base, "urn:ngsi-ld:Delivered:1", "Delivered").await;
    create(&c, &base, "urn:ngsi-ld:Undeliverable:1", "Undeliverable").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let after = loop {
        let text = scrape(&c, &base).await;
        if value(&text, "infoharbor_notifications_sent_total") >= 1.0
            && value(&text, "infoharbor_notifications_dead_lettered_total") >= 1.0
            // The settler records the dead letter in the outbox a moment later.
            && value(&text, "infoharbor_outbox_dead_letters") >= 1.0
        {
            break text;
        }
        if tokio::time::Instant::now() > deadline {
            broker.fail(&format!("notifications were not counted:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let grew = |series: &str| value(&after, series) > value(&before, series);
    for series in [
        "infoharbor_store_commit_seconds_count",
        "infoharbor_store_fsync_seconds_count",
        "infoharbor_store_commit_group_size_count",
        "infoharbor_notifications_sent_total",
        "infoharbor_notifications_failed_total",
        "infoharbor_notifications_dead_lettered_total",
        "infoharbor_notification_attempt_seconds_count",
        "infoharbor_notification_latency_seconds_count",
        "infoharbor_http_requests_total{route=\"/ngsi-ld/v1/entities\",method=\"POST\",status_class=\"2xx\"}",
        "infoharbor_http_requests_total{route=\"/ngsi-ld/v1/subscriptions\",method=\"POST\",status_class=\"2xx\"}",
        "infoharbor_http_request_duration_seconds_count{route=\"/ngsi-ld/v1/entities\",method=\"POST\"}",
    ] {
        assert!(grew(series), "{series} did not move:\n{after}");
    }
    // The client keeps its connection alive: what the loop counted, not what it added.
    assert!(value(&after, "infoharbor_connections_accepted_total") >= 1.0);
    assert!(value(&after, "infoharbor_connections_open") >= 1.0);
    assert!(
        !after.contains("..\n"),
        "a help text ends with one period:\n{after}"
    );
    assert_eq!(value(&after, "infoharbor_outbox_dead_letters"), 1.0);
    assert_eq!(
        value(&after, "infoharbor_build_info{version=\"0.1.0\"}"),
        1.0
    );
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(value(&after, "process_open_fds") > 0.0);
    assert!(value(&after, "process_max_fds") >= value(&after, "process_open_fds"));
    assert_eq!(value(&after, "infoharbor_part_up{part=\"historian\"}"), 1.0);
    let default_tenant = |metric: &str| format!("{metric}{{tenant=\"(default)\"}}");
    for (metric, made) in [
        ("infoharbor_tenant_entities", 2.0),
        ("infoharbor_tenant_subscriptions", 2.0),
    ] {
        let series = default_tenant(metric);
        assert_eq!(
            value(&after, &series) - value(&before, &series),
            made,
            "{series}:\n{after}"
        );
    }

    let (ok, report) = promtool(&["check", "metrics"], &after);
    assert!(ok, "promtool check metrics:\n{report}\n{after}");

    let rules = rules_file();
    let (ok, report) = promtool(&["check", "rules", rules.to_str().unwrap()], "");
    assert!(ok, "promtool check rules:\n{report}");
    let text = std::fs::read_to_string(&rules).unwrap();
    let known = exported(&after);
    let unknown: Vec<_> = mentioned(&text).difference(&known).cloned().collect();
    assert!(
        unknown.is_empty(),
        "the alert rules use metrics the broker does not export: {unknown:?}"
    );
    assert!(
        text.matches("- alert:").count() >= 10,
        "at least ten alert rules"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_counts_name_the_largest_tenants_and_sum_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--metrics-tenants", "2"],
    )
    .await;
    let base = broker.base.clone();
    let c = client();
    // Five tenants (the default one included) with 4, 3, 2, 1 and 0 entities.
    for (tenant, n) in [("city-a", 4), ("city-b", 3), ("city-c", 2), ("city-d", 1)] {
        for i in 0..n {
            let r = c
                .post(format!("{base}/ngsi-ld/v1/entities"))
                .header("NGSILD-Tenant", tenant)
                .json(&json!({"id": format!("urn:ngsi-ld:Bay:{i}"), "type": "Bay"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        }
    }
    let r = c
        .post(format!("{base}/ngsi-ld/v1/subscriptions"))
        .header("NGSILD-Tenant", "city-d")
        .json(&json!({
            "type": "Subscription",
            "entities": [{"type": "Bay"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n", "accept": "application/json"}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let text = scrape(&c, &base).await;
    assert_eq!(value(&text, "infoharbor_tenants"), 5.0, "{text}");
    let entities = |tenant: &str| {
        value(
            &text,
            &format!("infoharbor_tenant_entities{{tenant=\"{tenant}\"}}"),
        )
    };
    assert_eq!(entities("city-a"), 4.0, "{text}");
    assert_eq!(entities("city-b"), 3.0, "{text}");
    assert_eq!(
        entities("(other)"),
        3.0,
        "city-c, city-d and the default: {text}"
    );
    assert_eq!(
        value(&text, "infoharbor_tenant_subscriptions{tenant=\"(other)\"}"),
        1.0,
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("infoharbor_tenant_entities{"))
        .count();
    assert_eq!(series, 3, "two tenants by name and (other):\n{text}");
    assert!(!text.contains("city-c"), "{text}");
    let (ok, report) = promtool(&["check", "metrics"], &text);
    assert!(ok, "promtool check metrics:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        &dir.path().join("data"),
        dir.path(),
        0,
        &["--metrics", "false"],
    )
    .await;
    let c = client();
    let r = c
        .get(format!("{}/metrics", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(format!("{}/ready", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "readiness does not depend on metrics");
}
