//! The closed-loop load generator: `concurrency` workers issue requests back to back until the
//! request budget is spent; every latency and every error is recorded, none is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Checks a response body; an `Err` counts the request as an error.
pub type Check = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// One request to send: method, path (appended to the base URL), optional JSON body, and an
/// optional check of the answer (e.g. that a query returned as many entities as were seeded).
#[derive(Clone)]
pub struct Req {
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<Arc<Vec<u8>>>,
    pub check: Option<Check>,
    /// The `NGSILD-Results-Count` the answer must carry (a query with `count=true`).
    pub count: Option<usize>,
}

impl Req {
    pub fn get(path: String) -> Req {
        Req {
            method: reqwest::Method::GET,
            path,
            body: None,
            check: None,
            count: None,
        }
    }
    pub fn with_body(method: reqwest::Method, path: String, body: Vec<u8>) -> Req {
        Req {
            method,
            path,
            body: Some(Arc::new(body)),
            check: None,
            count: None,
        }
    }
    pub fn checked(mut self, check: Check) -> Req {
        self.check = Some(check);
        self
    }
    /// The answer must say, in `NGSILD-Results-Count`, that `n` entities match.
    pub fn counted(mut self, n: usize) -> Req {
        self.count = Some(n);
        self
    }
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub requests: usize,
    pub errors: usize,
    /// First few distinct error descriptions, for the report.
    pub error_samples: Vec<String>,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Mean response body size in bytes.
    pub mean_body: usize,
}

/// Sends `total` requests made by `make(i)` with `concurrency` workers against `base`.
/// A response whose status is not one of `expect_status` counts as an error.
pub async fn run(
    client: &reqwest::Client,
    base: &str,
    total: usize,
    concurrency: usize,
    expect_status: Arc<[u16]>,
    make: Arc<dyn Fn(usize) -> Req + Send + Sync>,
) -> Measured {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let base = base.to_string();
        let next = next.clone();
        let make = make.clone();
        let expect_status = expect_status.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            let mut bytes = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let r = make(i);
                let mut rb = client.request(r.method.clone(), format!("{base}{}", r.path));
                if let Some(b) = &r.body {
                    rb = rb
                        .header("Content-Type", "application/json")
                        .body((**b).clone());
                }
                let t = Instant::now();
                let outcome = match rb.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let counted = r.count.map(|want| results_count(want, resp.headers()));
                        match resp.bytes().await {
                            Ok(body) if expect_status.contains(&status) => {
                                let checked = match (&r.check, counted) {
                                    (_, Some(Err(e))) => Err(e),
                                    (Some(check), _) => check(&body),
                                    (None, _) => Ok(()),
                                };
                                if checked.is_ok() {
                                    bytes += body.len();
                                }
                                checked
                            }
                            Ok(body) => Err(format!(
                                "status {status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            )),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request failed: {e}")),
                };
                lat.push(t.elapsed());
                if let Err(e) = outcome {
                    errors.push(e);
                }
            }
            (lat, errors, bytes)
        }));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(total);
    let mut errors = Vec::new();
    let mut bytes = 0;
    for w in workers {
        let (l, e, b) = w.await.expect("load worker panicked");
        lat.extend(l);
        errors.extend(e);
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    summarize(lat, errors, bytes, seconds)
}

/// Checks the answer's `NGSILD-Results-Count` is `want`.
fn results_count(want: usize, headers: &reqwest::header::HeaderMap) -> Result<(), String> {
    let Some(h) = headers.get("NGSILD-Results-Count") else {
        return Err(format!(
            "expected NGSILD-Results-Count {want}, the answer has none"
        ));
    };
    match h.to_str().ok().and_then(|s| s.parse::<usize>().ok()) {
        Some(n) if n == want => Ok(()),
        Some(n) => Err(format!("expected NGSILD-Results-Count {want}, got {n}")),
        None => Err(format!("NGSILD-Results-Count is not a number: {h:?}")),
    }
}

fn summarize(mut lat: Vec<Duration>, errors: Vec<String>, bytes: usize, seconds: f64) -> Measured {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    let mut samples: Vec<String> = Vec::new();
    for e in &errors {
        if samples.len() < 3 && !samples.contains(e) {
            samples.push(e.clone());
        }
    }
    let ok = lat.len() - errors.len();
    Measured {
        requests: lat.len(),
        errors: errors.len(),
        error_samples: samples,
        seconds,
        per_second: if seconds > 0.0 {
            lat.len() as f64 / seconds
        } else {
            0.0
        },
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        mean_body: bytes.checked_div(ok).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn every_request_is_counted_and_errors_are_not_hidden() {
        let c = ceiling::start(50, 500).await.unwrap();
        let base = format!("http://{}", c.addr);
        let m = run(
            &client(),
            &base,
            200,
            8,
            Arc::new([200]),
            Arc::new(|i| Req::get(format!("/x/{i}"))),
        )
        .await;
        assert_eq!(m.requests, 200);
        assert_eq!(m.errors, 200, "a 500 is an error");
        assert!(
            m.error_samples[0].starts_with("status 500"),
            "{:?}",
            m.error_samples
        );
    }

    #[tokio::test]
    async fn checks_on_answers_count_as_errors() {
        let c = ceiling::start(40, 200).await.unwrap();
        let base = format!("http://{}", c.addr);
        let check: Check = Arc::new(|b: &[u8]| {
            let v: serde_json::Value = serde_json::from_slice(b).map_err(|e| e.to_string())?;
            v.as_array()
                .map(|_| ())
                .ok_or_else(|| "not an array".to_string())
        });
        let make = Arc::new(move |i: usize| {
            let r = Req::get(format!("/q/{i}"));
            if i.is_multiple_of(2) {
                r.checked(check.clone())
            } else {
                r
            }
        });
        let m = run(&client(), &base, 100, 4, Arc::new([200]), make).await;
        assert_eq!((m.requests, m.errors), (100, 50));
        assert_eq!(m.mean_body, 40, "bodies of successful answers are measured");
    }

    #[test]
    fn results_count_must_be_the_one_expected() {
        let headers = |v: Option<&str>| {
            let mut h = reqwest::header::HeaderMap::new();
            if let Some(v) = v {
                h.insert("NGSILD-Results-Count", v.parse().unwrap());
            }
            h
        };
        for (header, want) in [
            (Some("200"), Ok(())),
            (
                Some("199"),
                Err("expected NGSILD-Results-Count 200, got 199"),
            ),
            (
                None,
                Err("expected NGSILD-Results-Count 200, the answer has none"),
            ),
            (
                Some("x"),
                Err("NGSILD-Results-Count is not a number: \"x\""),
            ),
        ] {
            assert_eq!(
                results_count(200, &headers(header)),
                want.map_err(String::from),
                "{header:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_count_is_an_error() {
        let c = ceiling::start(2, 200).await.unwrap();
        let base = format!("http://{}", c.addr);
        let make = Arc::new(|i: usize| {
            let r = Req::get(format!("/c/{i}"));
            if i < 3 {
                r.counted(7)
            } else {
                r
            }
        });
        let m = run(&client(), &base, 10, 2, Arc::new([200]), make).await;
        assert_eq!((m.requests, m.errors), (10, 3));
    }

    #[test]
    fn percentiles() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let m = summarize(lat, vec!["x".into()], 0, 2.0);
        assert_eq!((m.p50_ms, m.p99_ms, m.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(m.per_second, 50.0);
        assert_eq!(m.errors, 1);
    }
}
