//! Load shedding: every request belongs to a class, and each class has its own bound on the
//! requests in flight. Above its bound a request is answered `503` with `Retry-After` instead
//! of queueing until every client times out. The `503` goes out after a hold on a timer (no
//! CPU), which grows with the number held, so that clients resending at once, ignoring
//! `Retry-After`, get a bounded number of answers a second and leave the CPU to the admitted
//! requests.
//! `/health`, `/ready` and the operator's endpoints have a class of their own, so they answer
//! however busy the API is.
//!
//! The CPU-heavy part of a request (scans, sorts, joins, rendering) runs on a bounded pool
//! of blocking threads ([`offload`]), with a time budget: the async workers stay free for
//! accepting, parsing and answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use harbor_model::{ErrorKind, NgsiError};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// Bounds of the admission classes and of the pool for CPU-heavy work.
#[derive(Debug, Clone)]
pub struct ShedLimits {
    /// Reads of single resources and small listings in flight.
    pub reads: usize,
    /// Writes in flight (they wait on the disk, not the CPU, and share commits).
    pub writes: usize,
    /// Queries in flight: entity and temporal queries, discovery with details.
    pub queries: usize,
    /// Health, readiness, metrics and `/admin` in flight.
    pub control: usize,
    /// Threads running CPU-heavy work at once.
    pub cpu_threads: usize,
    /// Time a request may spend waiting for and doing its CPU-heavy work.
    pub cpu_budget: Duration,
    /// Seconds a shed client is told to wait (`Retry-After`).
    pub retry_after_s: u32,
    /// How long a shed request is held before its `503` goes out. A client that sends again
    /// at once, ignoring `Retry-After`, then costs the broker one cheap answer per delay
    /// instead of taking the CPU the admitted requests need.
    pub shed_delay: Duration,
    /// The `503`s per second the broker answers at most while it is holding many shed
    /// requests: when more are held than this rate lets out within [`Self::shed_delay`], each
    /// new one is held longer, so that a flood of clients resending at once costs a bounded
    /// number of answers a second, whatever its size.
    pub shed_rate: u32,
    /// The longest a shed request is held.
    pub shed_delay_max: Duration,
}

/// Shed requests held at most at once; beyond, the `503` goes out at once.
const MAX_HELD: usize = 16_384;

impl Default for ShedLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ShedLimits {
            reads: 1024,
            writes: 1024,
            queries: 64 * cores,
            control: 64,
            cpu_threads: cores,
            cpu_budget: Duration::from_secs(10),
            retry_after_s: 1,
            shed_delay: Duration::from_secs(1),
            shed_rate: 1000,
            shed_delay_max: Duration::from_secs(10),
        }
    }
}

/// The admission classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Control,
    Read,
    Write,
    Query,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Control => "control",
            Class::Read => "read",
            Class::Write => "write",
            Class::Query => "query",
        }
    }
}

/// The class of a request, from its method and path alone.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Class {
    let path = path.trim_end_matches('/');
    if path == "/health" || path == "/ready" || path == "/metrics" || path.starts_with("/admin/") {
        return Class::Control;
    }
    let Some(api) = path.strip_prefix("/ngsi-ld/v1") else {
        return Class::Read;
    };
    let query_path = matches!(
        api,
        "/entities" | "/temporal/entities" | "/entityOperations/query"
    ) || api == "/temporal/entityOperations/query"
        || (api.starts_with("/temporal/entities/") && *method == Method::GET);
    let details = matches!(api, "/types" | "/attributes")
        && query.is_some_and(|q| q.contains("details=true"));
    if (query_path && (*method == Method::GET || api.ends_with("/query"))) || details {
        return Class::Query;
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Class::Read,
        _ => Class::Write,
    }
}

/// The admission state shared by all requests.
pub struct Shedder {
    limits: ShedLimits,
    control: Arc<Semaphore>,
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    queries: Arc<Semaphore>,
    /// The threads that run CPU-heavy work, fed from one queue: under load they take the
    /// next job without sleeping, so a job costs no thread wake-up.
    cpu: rayon_core::ThreadPool,
    held: std::sync::atomic::AtomicUsize,
}

impl Shedder {
    pub fn new(limits: ShedLimits) -> Self {
        let sem = |n: usize| Arc::new(Semaphore::new(n.max(1)));
        Shedder {
            control: sem(limits.control),
            reads: sem(limits.reads),
            writes: sem(limits.writes),
            queries: sem(limits.queries),
            cpu: rayon_core::ThreadPoolBuilder::new()
                .num_threads(limits.cpu_threads.max(1))
                .thread_name(|i| format!("harbor-query-{i}"))
                .build()
                .expect("the query threads start"),
            held: std::sync::atomic::AtomicUsize::new(0),
            limits,
        }
    }

    fn class(&self, c: Class) -> &Arc<Semaphore> {
        match c {
            Class::Control => &self.control,
            Class::Read => &self.reads,
            Class::Write => &self.writes,
            Class::Query => &self.queries,
        }
    }

    pub fn limits(&self) -> &ShedLimits {
        &self.limits
    }

    /// How long a shed request is held when `held` others are held already: the base delay,
    /// or long enough that the requests ahead of it go out at `shed_rate` a second, up to
    /// `shed_delay_max`.
    pub fn hold_for(&self, held: usize) -> Duration {
        let l = &self.limits;
        let paced = Duration::from_secs_f64(held as f64 / f64::from(l.shed_rate.max(1)));
        paced.clamp(l.shed_delay, l.shed_delay_max.max(l.shed_delay))
    }
}

impl Default for Shedder {
    fn default() -> Self {
        Shedder::new(ShedLimits::default())
    }
}

/// The `503` of a shed request.
fn overloaded(class: Class, retry_after_s: u32) -> Response {
    let mut resp = crate::reply::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({
            "type": "urn:infoharbor:errors:ServiceUnavailable",
            "title": "ServiceUnavailable",
            "status": 503,
            "detail": format!(
                "the broker is at its limit of {} requests in flight; try again in {retry_after_s} s",
                class.name()
            ),
        }),
    );
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(retry_after_s),
    );
    // For the metrics layer outside, which counts shed requests by class.
    resp.extensions_mut().insert(Shed(class));
    resp
}

/// Marks the response of a shed request, with the class that was full.
#[derive(Debug, Clone, Copy)]
pub struct Shed(pub Class);

/// Middleware: admits the request into its class or sheds it.
pub async fn admit(State(shed): State<Arc<Shedder>>, req: Request, next: Next) -> Response {
    let class = classify(req.method(), req.uri().path(), req.uri().query());
    let Ok(_permit) = shed.class(class).clone().try_acquire_owned() else {
        use std::sync::atomic::Ordering::Relaxed;
        if !shed.limits.shed_delay.is_zero() {
            let held = shed.held.fetch_add(1, Relaxed);
            if held < MAX_HELD {
                tokio::time::sleep(shed.hold_for(held)).await;
            }
            shed.held.fetch_sub(1, Relaxed);
        }
        return overloaded(class, shed.limits.retry_after_s);
    };
    let mut req = req;
    req.extensions_mut().insert(CpuPool {
        shed: shed.clone(),
        admitted: Instant::now(),
    });
    next.run(req).await
}

thread_local! {
    /// The deadline and budget of the work running on this thread, if it runs in the pool.
    static DEADLINE: std::cell::Cell<Option<(Instant, Duration)>> = const { std::cell::Cell::new(None) };
}

/// Fails with `TooComplexQuery` when the work running on this pool thread is past its budget:
/// long stages (scans, sorts, rendering) call it between steps, so that work past its budget
/// stops instead of running on after its client was answered.
pub fn within_budget() -> ApiResult<()> {
    match DEADLINE.with(|d| d.get()) {
        Some((deadline, budget)) if Instant::now() > deadline => Err(over_budget(budget)),
        _ => Ok(()),
    }
}

fn over_budget(budget: Duration) -> ApiError {
    ApiError(NgsiError::new(
        ErrorKind::TooComplexQuery,
        format!(
            "the request needed more than its time budget of {} s; narrow it with a \
             filter or a smaller page",
            budget.as_secs_f64()
        ),
    ))
}

/// The pool a request runs its CPU-heavy work on, with the time the request was admitted.
#[derive(Clone)]
pub struct CpuPool {
    shed: Arc<Shedder>,
    admitted: Instant,
}

impl CpuPool {
    /// A pool of its own, for requests that did not pass [`admit`] (in-process tests).
    pub fn standalone() -> Self {
        CpuPool {
            shed: Arc::new(Shedder::default()),
            admitted: Instant::now(),
        }
    }

    /// Runs `work` on a blocking thread once one of the pool's slots is free. The wait and
    /// the work together get the request's CPU budget; past it the client gets
    /// `TooComplexQuery`, naming the budget, and the slot is given back when the work ends.
    pub async fn offload<T, F>(&self, work: F) -> ApiResult<T>
    where
        F: FnOnce() -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let budget = self.shed.limits.cpu_budget;
        let deadline = self.admitted + budget;
        let too_long = || over_budget(budget);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shed.cpu.spawn(move || {
            // Waited past its budget in the queue: its client has had its answer.
            if Instant::now() > deadline {
                let _ = tx.send(Err(over_budget(budget)));
                return;
            }
            DEADLINE.with(|d| d.set(Some((deadline, budget))));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            DEADLINE.with(|d| d.set(None));
            let r = r.unwrap_or_else(|_| {
                Err(ApiError(NgsiError::internal("a query failed while it ran")))
            });
            let _ = tx.send(r);
        });
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Err(_) => Err(too_long()),
            Ok(Err(_)) => Err(ApiError(NgsiError::internal("the query threads are gone"))),
            Ok(Ok(r)) => r,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CpuPool {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CpuPool>()
            .cloned()
            .unwrap_or_else(CpuPool::standalone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_requests() {
        let cases = [
            (Method::GET, "/health", None, Class::Control),
            (
                Method::POST,
                "/admin/v1/deadLetters/replay",
                None,
                Class::Control,
            ),
            (
                Method::GET,
                "/ngsi-ld/v1/entities",
                Some("type=T"),
                Class::Query,
            ),
            (
                Method::GET,
                "/ngsi-ld/v1/entities/",
                Some("type=T"),
                Class::Query,
            ),
            (
                Method::POST,
                "/ngsi-ld/v1/entityOperations/query",
                None,
                Class::Query,
            ),
            (
                Method::GET,
                "/ngsi-ld/v1/temporal/entities/urn:a",
                None,
                Class::Query,
            ),
            (
                Method::POST,
                "/ngsi-ld/v1/temporal/entityOperations/query",
                None,
                Class::Query,
            ),
            (
                Method::GET,
                "/ngsi-ld/v1/types",
                Some("details=true"),
                Class::Query,
            ),
            (Method::GET, "/ngsi-ld/v1/types", None, Class::Read),
            (Method::GET, "/ngsi-ld/v1/entities/urn:a", None, Class::Read),
            (Method::POST, "/ngsi-ld/v1/entities", None, Class::Write),
            (
                Method::DELETE,
                "/ngsi-ld/v1/entities",
                Some("type=T"),
                Class::Write,
            ),
            (
                Method::POST,
                "/ngsi-ld/v1/entityOperations/upsert",
                None,
                Class::Write,
            ),
            (
                Method::PATCH,
                "/ngsi-ld/v1/temporal/entities/urn:a/attrs/a/i",
                None,
                Class::Write,
            ),
        ];
        for (m, p, q, want) in cases {
            assert_eq!(classify(&m, p, q), want, "{m} {p}?{q:?}");
        }
    }

    #[test]
    fn holds_grow_with_the_flood_so_that_503s_go_out_at_the_shed_rate() {
        let shed = Shedder::new(ShedLimits {
            shed_delay: Duration::from_secs(1),
            shed_rate: 1000,
            shed_delay_max: Duration::from_secs(10),
            ..ShedLimits::default()
        });
        assert_eq!(shed.hold_for(0), Duration::from_secs(1));
        assert_eq!(
            shed.hold_for(999),
            Duration::from_secs(1),
            "fits in one delay"
        );
        assert_eq!(shed.hold_for(4000), Duration::from_secs(4));
        assert_eq!(shed.hold_for(100_000), Duration::from_secs(10), "capped");
        let no_cap_below_base = Shedder::new(ShedLimits {
            shed_delay: Duration::from_secs(2),
            shed_delay_max: Duration::from_secs(1),
            ..ShedLimits::default()
        });
        assert_eq!(no_cap_below_base.hold_for(0), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn work_past_its_budget_is_refused_by_name() {
        let pool = CpuPool {
            shed: Arc::new(Shedder::new(ShedLimits {
                cpu_budget: Duration::from_millis(50),
                ..ShedLimits::default()
            })),
            admitted: Instant::now(),
        };
        let r = pool
            .offload(|| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await;
        let e = r.expect_err("over budget");
        assert_eq!(e.0.kind, ErrorKind::TooComplexQuery);
        assert!(e.0.detail.contains("0.05 s"), "{}", e.0.detail);
        assert_eq!(pool.offload(|| Ok(7)).await.ok(), None, "budget spent");
    }

    #[tokio::test]
    async fn long_work_stops_at_its_next_check_once_past_the_budget() {
        let pool = CpuPool {
            shed: Arc::new(Shedder::new(ShedLimits {
                cpu_budget: Duration::from_millis(100),
                ..ShedLimits::default()
            })),
            admitted: Instant::now(),
        };
        let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = steps.clone();
        let r = pool
            .offload(move || {
                for _ in 0..100 {
                    std::thread::sleep(Duration::from_millis(20));
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    within_budget()?;
                }
                Ok(())
            })
            .await;
        assert!(r.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = steps.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            done < 12,
            "the work stopped at its budget, after {done} of 100 steps"
        );
        assert!(within_budget().is_ok(), "no budget outside the pool");
    }
}
