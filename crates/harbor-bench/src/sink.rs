//! The receiver of the `notify` scenario: a hyper server in this process that confirms every
//! notification (204) and counts what arrived, per update value, so the scenario can compare
//! what was delivered with what was due — missing and duplicated entities included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

/// The attribute every update writes and every subscription notifies.
pub const ATTRIBUTE: &str = "availableSpotNumber";

/// What arrived so far. Update `i` of a run writes the value `first_value + i`; an entity that
/// carries no such value (e.g. a seeded state) is counted as foreign, not as delivered.
pub struct Tally {
    origin: Instant,
    first_value: u64,
    /// How often each update's value arrived.
    arrivals: Vec<AtomicU32>,
    notifications: AtomicU64,
    delivered: AtomicU64,
    foreign: AtomicU64,
    /// Bodies that were not a JSON notification (answered 400).
    rejected: AtomicU64,
    /// Nanoseconds from `origin` to the last notification received, 0 before the first.
    last_ns: AtomicU64,
}

/// Arrivals per update value, compared with the number of subscriptions that owe each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completeness {
    /// Entity notifications still owed: Σ max(owed − arrived, 0) over the acknowledged updates.
    pub missing: u64,
    /// Entity notifications beyond what was owed: Σ max(arrived − owed, 0).
    pub duplicates: u64,
}

impl Tally {
    pub fn new(first_value: u64, updates: usize) -> Tally {
        Tally {
            origin: Instant::now(),
            first_value,
            arrivals: (0..updates).map(|_| AtomicU32::new(0)).collect(),
            notifications: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    /// Counts one notification body; `Err` when it is not a notification.
    pub fn record(&self, body: &[u8]) -> Result<(), String> {
        let values = match update_values(body) {
            Ok(v) => v,
            Err(e) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut delivered = 0;
        for v in values {
            let slot = v
                .and_then(|v| v.checked_sub(self.first_value))
                .and_then(|i| self.arrivals.get(usize::try_from(i).ok()?));
            match slot {
                Some(count) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    delivered += 1;
                }
                None => {
                    self.foreign.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.notifications.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.fetch_max(ns.max(1), Ordering::Relaxed);
        Ok(())
    }

    pub fn notifications(&self) -> u64 {
        self.notifications.load(Ordering::Relaxed)
    }

    /// Entities delivered with a value of this run (duplicates included).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn foreign(&self) -> u64 {
        self.foreign.load(Ordering::Relaxed)
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// When the last notification arrived, if any did.
    pub fn last_arrival(&self) -> Option<Instant> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.origin + Duration::from_nanos(ns)),
        }
    }

    /// Compares arrivals with `owed(i)`, the entity notifications due for update `i`.
    pub fn completeness(&self, owed: impl Fn(usize) -> u64) -> Completeness {
        let mut c = Completeness {
            missing: 0,
            duplicates: 0,
        };
        for (i, count) in self.arrivals.iter().enumerate() {
            let (got, want) = (u64::from(count.load(Ordering::Relaxed)), owed(i));
            c.missing += want.saturating_sub(got);
            c.duplicates += got.saturating_sub(want);
        }
        c
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: String,
    data: Vec<NotifiedEntity>,
}

#[derive(Deserialize)]
struct NotifiedEntity {
    #[serde(rename = "availableSpotNumber")]
    spots: Option<Property>,
}

/// Only `value` is read: a number costs no allocation, and other members are skipped.
#[derive(Deserialize)]
struct Property {
    value: Option<serde_json::Value>,
}

/// The value of [`ATTRIBUTE`] in each entity of a notification body (normalized, as the
/// subscriptions ask), `None` for an entity without a whole number there.
pub fn update_values(body: &[u8]) -> Result<Vec<Option<u64>>, String> {
    let n: Notification =
        serde_json::from_slice(body).map_err(|e| format!("not a notification: {e}"))?;
    if n.kind != "Notification" {
        return Err(format!("type is {:?}, not \"Notification\"", n.kind));
    }
    Ok(n.data
        .iter()
        .map(|e| e.spots.as_ref()?.value.as_ref()?.as_u64())
        .collect())
}

/// A running sink; stops accepting when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    pub tally: Arc<Tally>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// The endpoint URI for subscriptions.
    pub fn uri(&self) -> String {
        format!("http://{}/notify", self.addr)
    }
}

/// Starts a sink on a free loopback port: 204 for a notification, 400 for another body, 405
/// for anything but POST.
pub async fn start(tally: Tally) -> std::io::Result<Sink> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tally = Arc::new(tally);
    let counting = tally.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tally = counting.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tally = tally.clone();
                    async move { Ok::<_, Infallible>(answer(&tally, req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Sink { addr, tally, task })
}

async fn answer(tally: &Tally, req: Request<hyper::body::Incoming>) -> Response<Empty<Bytes>> {
    let status = if req.method() != Method::POST {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        match req.into_body().collect().await {
            Ok(body) => match tally.record(&body.to_bytes()) {
                Ok(()) => StatusCode::NO_CONTENT,
                Err(_) => StatusCode::BAD_REQUEST,
            },
            Err(_) => StatusCode::BAD_REQUEST,
        }
    };
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values read, or a part of the error.
    type Expected = Result<Vec<Option<u64>>, &'static str>;

    #[test]
    fn values_of_a_notification() {
        let table: &[(&str, Expected)] = &[
            (
                r#"{"id":"urn:ngsi-ld:Notification:1","type":"Notification","subscriptionId":"urn:ngsi-ld:Subscription:s","notifiedAt":"2026-11-28T08:00:00Z",
                   "data":[{"id":"urn:a","type":"T","availableSpotNumber":{"type":"Property","value":1000007}},
                           {"id":"urn:b","type":"T","availableSpotNumber":{"type":"Property","value":1000008,"observedAt":"2026-11-28T08:00:00Z"}}]}"#,
                Ok(vec![Some(1_000_007), Some(1_000_008)]),
            ),
            // An entity without the attribute, a value that is not a count, no value.
            (
                r#"{"type":"Notification","data":[{"id":"urn:b"},
                   {"id":"urn:c","availableSpotNumber":{"type":"Property","value":"many"}},
                   {"id":"urn:d","availableSpotNumber":{"type":"Property","object":"urn:x"}}]}"#,
                Ok(vec![None, None, None]),
            ),
            // Not normalized: the sink does not guess.
            (
                r#"{"type":"Notification","data":[{"id":"urn:a","availableSpotNumber":5}]}"#,
                Err("not a notification"),
            ),
            (r#"{"type":"Notification","data":[]}"#, Ok(vec![])),
            (
                r#"{"type":"Subscription","data":[]}"#,
                Err("type is \"Subscription\""),
            ),
            (r#"{"type":"Notification"}"#, Err("missing field `data`")),
            ("[]", Err("not a notification")),
        ];
        for (body, want) in table {
            match (update_values(body.as_bytes()), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{body}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{body}: {got}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn notification(values: &[u64]) -> Vec<u8> {
        let data: Vec<serde_json::Value> = values
            .iter()
            .map(|v| serde_json::json!({"id": format!("urn:e:{v}"), "type": "T", ATTRIBUTE: {"type": "Property", "value": v}}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"type": "Notification", "data": data})).unwrap()
    }

    #[test]
    fn tally_counts_each_update_and_sets_aside_the_rest() {
        // Updates 0..4 write the values 100..104.
        let t = Tally::new(100, 4);
        assert_eq!(t.last_arrival(), None);
        t.record(&notification(&[100, 101, 101])).unwrap();
        t.record(&notification(&[103, 7, 104])).unwrap();
        assert!(t.record(b"{}").is_err());
        assert_eq!(t.notifications(), 2);
        assert_eq!(t.delivered(), 4, "101 twice, 100 and 103");
        assert_eq!(t.foreign(), 2, "7 is below the run, 104 beyond it");
        assert_eq!(t.rejected(), 1);
        assert!(t.last_arrival().is_some());
        // One subscription: 102 is missing, 101 duplicated.
        assert_eq!(
            t.completeness(|_| 1),
            Completeness {
                missing: 1,
                duplicates: 1
            }
        );
        // Two subscriptions owe every update twice.
        assert_eq!(
            t.completeness(|_| 2),
            Completeness {
                missing: 4,
                duplicates: 0
            }
        );
    }

    #[tokio::test]
    async fn confirms_notifications_and_refuses_anything_else() {
        let sink = start(Tally::new(0, 10)).await.unwrap();
        let client = reqwest::Client::new();
        let post = |body: Vec<u8>| client.post(sink.uri()).body(body).send();
        assert_eq!(post(notification(&[1, 2, 3])).await.unwrap().status(), 204);
        assert_eq!(post(notification(&[4])).await.unwrap().status(), 204);
        assert_eq!(post(b"not json".to_vec()).await.unwrap().status(), 400);
        assert_eq!(client.get(sink.uri()).send().await.unwrap().status(), 405);
        assert_eq!(sink.tally.notifications(), 2);
        assert_eq!(sink.tally.delivered(), 4);
        assert_eq!(sink.tally.rejected(), 1);
    }
}
