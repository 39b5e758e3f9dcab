//! Request metrics by route template, method and status class, with lock-free counting: the
//! series of a route live in a fixed table that is filled the first time the route is seen
//! and only read after, so a request costs a hash of its template and a few atomic adds.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use harbor_metrics::{
    Collector, ConstCounter, ConstGauge, DescriptorEncoder, EncodeMetric, Histogram, MetricType,
};

use crate::server::ConnectionStats;
use crate::shed::{Class, Shed};
use crate::SharedState;

/// Methods with series of their own; any other is counted as `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const CLASSES: [Class; 4] = [Class::Control, Class::Read, Class::Write, Class::Query];

/// Route templates tracked at most; the router has far fewer. Past it, `other`.
const ROUTES: usize = 256;

/// The label of requests no route matched (the 404 fallback).
const UNMATCHED: &str = "unmatched";

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn status_index(s: StatusCode) -> usize {
    (s.as_u16() / 100).clamp(1, 5) as usize - 1
}

fn class_index(c: Class) -> usize {
    match c {
        Class::Control => 0,
        Class::Read => 1,
        Class::Write => 2,
        Class::Query => 3,
    }
}

/// The series of one route template.
struct RouteSeries {
    route: Box<str>,
    requests: [[AtomicU64; 5]; 8],
    latency: [Histogram; 8],
}

impl RouteSeries {
    fn new(route: &str) -> Self {
        RouteSeries {
            route: route.into(),
            requests: Default::default(),
            latency: std::array::from_fn(|_| Histogram::latency()),
        }
    }
}

/// FNV-1a: a route template is short and comes from the router, not from clients.
fn hash(s: &str) -> usize {
    crate::fnv1a(s.as_bytes()) as usize
}

/// The HTTP edge's metrics.
pub(crate) struct HttpMetrics {
    routes: Box<[OnceLock<RouteSeries>]>,
    other: RouteSeries,
    in_flight: AtomicI64,
    shed: [AtomicU64; 4],
    connections: Arc<ConnectionStats>,
}

impl HttpMetrics {
    pub(crate) fn new(connections: Arc<ConnectionStats>) -> Self {
        HttpMetrics {
            routes: (0..ROUTES).map(|_| OnceLock::new()).collect(),
            other: RouteSeries::new("other"),
            in_flight: AtomicI64::new(0),
            shed: Default::default(),
            connections,
        }
    }

    /// The series of `route` (a template, without its trailing slash), claiming a slot the
    /// first time it is seen.
    fn series(&self, route: &str) -> &RouteSeries {
        let mut i = hash(route) % ROUTES;
        for _ in 0..ROUTES {
            let s = self.routes[i].get_or_init(|| RouteSeries::new(route));
            if &*s.route == route {
                return s;
            }
            i = (i + 1) % ROUTES;
        }
        &self.other
    }

    fn all(&self) -> impl Iterator<Item = &RouteSeries> {
        self.routes
            .iter()
            .filter_map(|s| s.get())
            .chain(std::iter::once(&self.other))
    }
}

/// Counts requests in flight, also when the request is dropped before it ends.
struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware: counts the request under its route template, method and status class.
pub(crate) async fn observe(State(s): State<SharedState>, req: Request, next: Next) -> Response {
    let Some(m) = s.telemetry.http() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| {
            let p = p.as_str();
            p.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(p)
        });
    let series = m.series(route);
    let method = method_index(req.method());
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&m.in_flight);
    let started = Instant::now();
    let resp = next.run(req).await;
    series.latency[method].observe_duration(started.elapsed());
    series.requests[method][status_index(resp.status())].fetch_add(1, Ordering::Relaxed);
    if let Some(Shed(class)) = resp.extensions().get::<Shed>() {
        m.shed[class_index(*class)].fetch_add(1, Ordering::Relaxed);
    }
    resp
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpMetrics")
    }
}

impl Collector for HttpMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        {
            let mut m = enc.encode_descriptor(
                "infoharbor_http_requests",
                "HTTP requests answered, by route template, method and status class.",
                None,
                MetricType::Counter,
            )?;
            for r in self.all() {
                for (mi, row) in r.requests.iter().enumerate() {
                    for (si, n) in row.iter().enumerate() {
                        let n = n.load(Ordering::Relaxed);
                        if n == 0 {
                            continue;
                        }
                        let labels = [
                            ("route", &*r.route),
                            ("method", METHODS[mi]),
                            ("status_class", STATUS_CLASSES[si]),
                        ];
                        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "infoharbor_http_request_duration_seconds",
                "Time from a request's head to its response head, by route template and method.",
                None,
                MetricType::Histogram,
            )?;
            for r in self.all() {
                for (mi, h) in r.latency.iter().enumerate() {
                    if h.count() == 0 {
                        continue;
                    }
                    let labels = [("route", &*r.route), ("method", METHODS[mi])];
                    h.encode_into(m.encode_family(&labels)?)?;
                }
            }
        }
        harbor_metrics::gauge(
            &mut enc,
            "infoharbor_http_requests_in_flight",
            "HTTP requests being handled now.",
            self.in_flight.load(Ordering::Relaxed),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "infoharbor_http_shed",
                "Requests answered 503 at once because their class was at its in-flight limit.",
                None,
                MetricType::Counter,
            )?;
            for (i, c) in CLASSES.iter().enumerate() {
                let labels = [("class", c.name())];
                ConstCounter::new(self.shed[i].load(Ordering::Relaxed))
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        let c = &self.connections;
        harbor_metrics::gauge(
            &mut enc,
            "infoharbor_connections_open",
            "Client connections open now.",
            c.open(),
        )?;
        if let Some(max) = c.max() {
            let g = ConstGauge::new(max);
            g.encode(enc.encode_descriptor(
                "infoharbor_connections_max",
                "The connection cap (max_connections).",
                None,
                MetricType::Gauge,
            )?)?;
        }
        harbor_metrics::counter(
            &mut enc,
            "infoharbor_connections_accepted",
            "Client connections accepted.",
            c.accepted(),
        )?;
        harbor_metrics::counter(
            &mut enc,
            "infoharbor_connections_reclaimed",
            "Idle connections closed to make room for a new one at the connection cap.",
            c.reclaimed(),
        )?;
        harbor_metrics::counter(
            &mut enc,
            "infoharbor_connections_refused",
            "Connections refused at the cap, none being idle (answered 503 or closed).",
            c.refused(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_their_own_series_until_the_table_is_full() {
        let m = HttpMetrics::new(Arc::default());
        let a = m.series("/a") as *const RouteSeries;
        assert_eq!(a, m.series("/a") as *const RouteSeries);
        assert_ne!(a, m.series("/b") as *const RouteSeries);
        for i in 0..ROUTES + 10 {
            m.series(&format!("/r{i}"));
        }
        assert_eq!(&*m.series("/too-many").route, "other");
        assert_eq!(&*m.series("/a").route, "/a", "a known route keeps its slot");
    }

    #[test]
    fn status_classes() {
        for (code, want) in [(100, 0), (204, 1), (304, 2), (404, 3), (503, 4)] {
            assert_eq!(status_index(StatusCode::from_u16(code).unwrap()), want);
        }
    }
}
