//! The server loop: accepts connections, bounds how many are open, closes those that stall, and
//! shuts down within a deadline. axum's own `serve` has no connection cap and no timeouts, and
//! a broker exposed to partners needs both.
//!
//! **Connections.** At most `max_connections` are open. When a new one arrives at the cap, the
//! connection that has waited longest for its next request (idle keep-alive or a request head
//! still trickling in) is closed to make room, so a flood of slow or idle connections cannot
//! lock clients out. When none can be reclaimed, the newcomer gets `503` with `Retry-After`, not
//! a silent drop.
//!
//! **Timeouts.** Each connection has a watchdog: a request head must be complete within
//! `header_timeout` of its first byte, and a connection with no request in flight and nothing
//! written for `idle_timeout` is closed. Request bodies have their own deadline
//! (`HttpLimits::body_timeout`, enforced where bodies are read).
//!
//! **Shutdown.** Once `shutdown` completes the listener closes, idle connections close at
//! once, requests in flight finish, and whatever is still open at `shutdown_deadline` is
//! closed. Acknowledged writes are durable before they are answered, so cutting the rest is
//! safe.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How the server treats connections.
#[derive(Clone)]
pub struct ServerConfig {
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// Time from the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Time a connection may sit with no request in flight and nothing written.
    pub idle_timeout: Duration,
    /// Time given to requests in flight once shutdown begins.
    pub shutdown_deadline: Duration,
    /// TLS for every connection, when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where the loop counts its connections, for whoever watches (metrics).
    pub connections: Arc<ConnectionStats>,
}

/// What the server loop counts about connections, since it started. Plain atomics: the
/// loop adds, a metrics scrape reads.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// The cap, once the loop runs (0 before).
    max: AtomicU64,
    accepted: AtomicU64,
    closed: AtomicU64,
    reclaimed: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        let closed = self.closed.load(Ordering::Relaxed);
        self.accepted.load(Ordering::Relaxed).saturating_sub(closed)
    }

    /// The connection cap of the running loop.
    pub fn max(&self) -> Option<u64> {
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }

    /// Connections accepted (below the cap, or after making room).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Idle connections closed to make room for a new one at the cap.
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }

    /// Connections refused at the cap (answered 503, or closed when too many were).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_deadline: Duration::from_secs(10),
            tls: None,
            connections: Arc::default(),
        }
    }
}

/// A connection younger than this, or one that wrote within it, is never reclaimed: a client
/// that has just connected is about to send its request.
const RECLAIM_GRACE: Duration = Duration::from_millis(500);

/// Connections beyond the cap answered `503` at once, at most; beyond that they are closed.
const OVERFLOW_ANSWERS: usize = 64;

/// Time allowed to answer an over-cap connection (TLS handshake included).
const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(2);

/// Shortest interval between two warnings about the cap or accept errors.
const WARN_EVERY_MS: u64 = 10_000;

const NONE: u64 = u64::MAX;

/// What the watchdog and the reclaimer know about one connection. Times are milliseconds
/// since the server started.
struct ConnState {
    /// Requests whose response head has not been produced yet.
    inflight: AtomicU32,
    /// When the connection last became idle: opened, or a response produced.
    idle_since: AtomicU64,
    /// First byte of the next request head, while it is incomplete ([`NONE`] when none).
    head_started: AtomicU64,
    last_write: AtomicU64,
    close: Notify,
}

impl ConnState {
    fn new(now: u64) -> Self {
        ConnState {
            inflight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(NONE),
            last_write: AtomicU64::new(now),
            close: Notify::new(),
        }
    }

    fn idle(&self) -> bool {
        self.inflight.load(Ordering::Acquire) == 0
    }

    /// When this connection began waiting for its next request, if it is waiting and may be
    /// reclaimed at `now`.
    fn reclaimable_since(&self, now: u64) -> Option<u64> {
        if !self.idle() {
            return None;
        }
        let since = self.idle_since.load(Ordering::Acquire);
        let wrote = self.last_write.load(Ordering::Acquire);
        let grace = RECLAIM_GRACE.as_millis() as u64;
        (now.saturating_sub(since.max(wrote)) >= grace).then_some(since)
    }

    /// Why the connection must close at `now`, if it must; otherwise when to look again.
    fn verdict(&self, now: u64, cfg: &ServerConfig) -> Result<u64, &'static str> {
        let header = cfg.header_timeout.as_millis() as u64;
        let idle = cfg.idle_timeout.as_millis() as u64;
        if !self.idle() {
            return Ok(now + header.min(idle));
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != NONE {
            let due = head.saturating_add(header);
            return if now >= due {
                Err("request head not complete in time")
            } else {
                Ok(due)
            };
        }
        let quiet = self
            .idle_since
            .load(Ordering::Acquire)
            .max(self.last_write.load(Ordering::Acquire));
        let due = quiet.saturating_add(idle);
        if now >= due {
            Err("idle")
        } else {
            Ok(due)
        }
    }
}

/// The open connections, for the cap and for reclaiming.
struct Registry {
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    last_warning: AtomicU64,
    reclaimed: AtomicU64,
    refused: AtomicU64,
    /// The running totals, never reset (the two above are, by each warning).
    stats: Arc<ConnectionStats>,
}

impl Registry {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn open_count(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(usize::MAX)
    }

    fn insert(&self, state: Arc<ConnState>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.open.lock() {
            m.insert(id, state);
        }
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.open.lock() {
            m.remove(&id);
        }
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the connection that has waited longest for a request; false when none may be
    /// reclaimed.
    fn reclaim_one(&self) -> bool {
        let now = self.now();
        let Ok(mut m) = self.open.lock() else {
            return false;
        };
        let oldest = m
            .iter()
            .filter_map(|(id, c)| c.reclaimable_since(now).map(|since| (since, *id)))
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        if let Some(c) = m.remove(&id) {
            c.close.notify_one();
        }
        self.reclaimed.fetch_add(1, Ordering::Relaxed);
        self.stats.reclaimed.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Logs the state of the cap at most every [`WARN_EVERY_MS`].
    fn warn_at_cap(&self, cap: usize) {
        let now = self.now();
        let last = self.last_warning.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < WARN_EVERY_MS {
            return;
        }
        if self
            .last_warning
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                max_connections = cap,
                reclaimed = self.reclaimed.swap(0, Ordering::Relaxed),
                refused = self.refused.swap(0, Ordering::Relaxed),
                "connection limit reached: idle connections are closed to make room, new ones \
                 beyond it are answered 503"
            );
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; see the module documentation.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    cfg: ServerConfig,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        last_warning: AtomicU64::new(0),
        reclaimed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        stats: cfg.connections.clone(),
    });
    cfg.connections
        .max
        .store(cfg.max_connections as u64, Ordering::Relaxed);
    let tls = cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let overflow = Arc::new(Semaphore::new(OVERFLOW_ANSWERS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
            // Reap finished connection tasks so the set does not grow without end.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(&registry, &e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if registry.open_count() >= cfg.max_connections {
            // Reclaimed or refused, the limit was reached: say so (at most every 10 s).
            registry.warn_at_cap(cfg.max_connections);
            if !registry.reclaim_one() {
                registry.refused.fetch_add(1, Ordering::Relaxed);
                registry.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Ok(permit) = overflow.clone().try_acquire_owned() {
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(OVERFLOW_TIMEOUT, refuse(stream, tls)).await;
                        drop(permit);
                    });
                }
                continue;
            }
        }
        let state = Arc::new(ConnState::new(registry.now()));
        let id = registry.insert(state.clone());
        let conn = Connection {
            state,
            registry: registry.clone(),
            cfg: cfg.clone(),
            stop: stop_rx.clone(),
        };
        let app = app.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            conn.run(stream, tls, app).await;
            conn.registry.remove(id);
        });
    }
    drop(listener);
    let open = conns.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            deadline_s = cfg.shutdown_deadline.as_secs_f64(),
            "closing connections: requests in flight may finish until the deadline"
        );
    }
    let _ = stop_tx.send(true);
    // The console's event streams would otherwise hold their connections to the deadline.
    crate::console::end_streams();
    let drained = tokio::time::timeout(cfg.shutdown_deadline, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "shutdown deadline reached: closing the connections still open"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// Accept errors are the client's or the system's (too many open files); waiting a moment
/// lets connections close instead of spinning.
async fn accept_failed(registry: &Registry, e: &io::Error) {
    let now = registry.now();
    let last = registry.last_warning.load(Ordering::Relaxed);
    if last == 0 || now.saturating_sub(last) >= WARN_EVERY_MS {
        registry.last_warning.store(now.max(1), Ordering::Relaxed);
        tracing::warn!(error = %e, "accepting a connection failed");
    }
    if is_resource_exhaustion(e) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE and ENFILE have no io::ErrorKind of their own.
    matches!(e.raw_os_error(), Some(23) | Some(24))
        || matches!(e.kind(), io::ErrorKind::OutOfMemory)
}

/// The whole answer to a connection beyond the cap.
fn overload_response() -> Vec<u8> {
    let body = serde_json::json!({
        "type": "urn:infoharbor:errors:ServiceUnavailable",
        "title": "ServiceUnavailable",
        "status": 503,
        "detail": "the broker has as many connections open as it allows; try again shortly",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Retry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn refuse(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    let answer = overload_response();
    match tls {
        None => {
            let mut s = stream;
            let _ = s.write_all(&answer).await;
            let _ = s.shutdown().await;
        }
        Some(acceptor) => {
            if let Ok(mut s) = acceptor.accept(stream).await {
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            }
        }
    }
}

struct Connection {
    state: Arc<ConnState>,
    registry: Arc<Registry>,
    cfg: ServerConfig,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(
        &self,
        stream: TcpStream,
        tls: Option<tokio_rustls::TlsAcceptor>,
        app: axum::Router,
    ) {
        match tls {
            None => self.serve_io(stream, app).await,
            Some(acceptor) => {
                // The handshake is part of the request head: it gets the same time.
                let Ok(Ok(s)) =
                    tokio::time::timeout(self.cfg.header_timeout, acceptor.accept(stream)).await
                else {
                    return;
                };
                self.serve_io(s, app).await
            }
        }
    }

    async fn serve_io<S>(&self, io: S, app: axum::Router)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let io = TokioIo::new(Tracked {
            inner: io,
            state: self.state.clone(),
            registry: self.registry.clone(),
        });
        let state = self.state.clone();
        let registry = self.registry.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let request = InFlight::begin(state.clone(), registry.clone());
                let call = app.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let resp = call.await;
                    drop(request);
                    resp
                }
            });
        let mut http = hyper::server::conn::http1::Builder::new();
        // The watchdog below keeps the time; hyper's own header timer would also count the
        // keep-alive wait between requests as header time. Field names go out in title case
        // (`Location`, `Content-Type`): HTTP reads them case-insensitively (RFC 9110 5.1), but
        // the ETSI suite and some clients compare them as written. The `http` crate keeps
        // names in lower case only, so `NGSILD-Tenant` goes out as `Ngsild-Tenant`.
        http.header_read_timeout(None)
            .keep_alive(true)
            .title_case_headers(true);
        let conn = http.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = *stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let now = self.registry.now();
            let next = match self.state.verdict(now, &self.cfg) {
                Ok(at) => at,
                Err(why) => {
                    tracing::debug!(reason = why, "closing a connection");
                    return;
                }
            };
            let wake = tokio::time::Instant::now()
                + Duration::from_millis(next.saturating_sub(now).max(1));
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.state.close.notified() => return,
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// One request on a connection, from its head to its response head.
struct InFlight {
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn begin(state: Arc<ConnState>, registry: Arc<Registry>) -> InFlight {
        state.inflight.fetch_add(1, Ordering::AcqRel);
        state.head_started.store(NONE, Ordering::Release);
        InFlight { state, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.registry.now(), Ordering::Release);
        self.state.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's byte stream, noting when a request head begins and when bytes are
/// written, for the watchdog.
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.state.idle()
            && self.state.head_started.load(Ordering::Acquire) == NONE
        {
            let now = self.registry.now();
            let _ = self.state.head_started.compare_exchange(
                NONE,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            let now = self.registry.now();
            self.state.last_write.store(now, Ordering::Release);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            let now = self.registry.now();
            self.state.last_write.store(now, Ordering::Release);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ServerConfig {
        ServerConfig {
            header_timeout: Duration::from_millis(1_000),
            idle_timeout: Duration::from_millis(5_000),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn an_incomplete_head_times_out_from_its_first_byte() {
        let c = ConnState::new(0);
        c.head_started.store(2_000, Ordering::Release);
        assert_eq!(c.verdict(2_500, &cfg()), Ok(3_000));
        assert!(c.verdict(3_000, &cfg()).is_err());
    }

    #[test]
    fn an_idle_connection_times_out_from_its_last_write() {
        let c = ConnState::new(0);
        c.last_write.store(1_000, Ordering::Release);
        assert_eq!(c.verdict(2_000, &cfg()), Ok(6_000));
        assert_eq!(c.verdict(6_000, &cfg()), Err("idle"));
    }

    #[test]
    fn a_request_in_flight_is_never_timed_out_by_the_watchdog() {
        let c = ConnState::new(0);
        c.inflight.store(1, Ordering::Release);
        c.head_started.store(0, Ordering::Release);
        assert!(c.verdict(1_000_000, &cfg()).is_ok());
        assert_eq!(c.reclaimable_since(1_000_000), None);
    }

    #[test]
    fn a_young_connection_is_not_reclaimed() {
        let c = ConnState::new(1_000);
        assert_eq!(c.reclaimable_since(1_200), None);
        assert_eq!(c.reclaimable_since(1_600), Some(1_000));
    }

    /// The head of the answer to `request`, sent on a real connection to a served `app`.
    async fn head_on_the_wire(app: axum::Router, request: &str) -> String {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = stopped.await;
            },
            ServerConfig::default(),
        ));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        conn.read_to_end(&mut bytes).await.unwrap();
        let _ = stop.send(());
        let _ = server.await;
        let text = String::from_utf8(bytes).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_string()
    }

    #[tokio::test]
    async fn field_names_go_out_in_title_case_and_nothing_else_changes() {
        use axum::http::{header, HeaderValue, StatusCode};
        use axum::response::IntoResponse;
        let app = axum::Router::new()
            .route(
                "/created",
                axum::routing::post(|| async {
                    let mut h = axum::http::HeaderMap::new();
                    h.insert(
                        header::LOCATION,
                        HeaderValue::from_static("/ngsi-ld/v1/entities/urn:x:1"),
                    );
                    h.insert("NGSILD-Tenant", HeaderValue::from_static("sg"));
                    h.append(header::LINK, HeaderValue::from_static("<a>; rel=\"next\""));
                    h.append(header::LINK, HeaderValue::from_static("<b>; rel=\"prev\""));
                    (StatusCode::CREATED, h).into_response()
                }),
            )
            .route(
                "/empty",
                axum::routing::delete(|| async { StatusCode::NO_CONTENT }),
            );
        let head = head_on_the_wire(
            app.clone(),
            "POST /created HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines[0], "HTTP/1.1 201 Created");
        assert!(
            lines.contains(&"Location: /ngsi-ld/v1/entities/urn:x:1"),
            "{head}"
        );
        assert!(lines.contains(&"Ngsild-Tenant: sg"), "{head}");
        // Repeated fields stay separate lines, in order; values are untouched.
        let links: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Link: ")).collect();
        assert_eq!(
            links,
            [&"Link: <a>; rel=\"next\"", &"Link: <b>; rel=\"prev\""]
        );
        assert!(lines.iter().any(|l| l.starts_with("Date: ")), "{head}");
        assert!(lines.contains(&"Content-Length: 0"), "{head}");
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.as_bytes()[0].is_ascii_uppercase()),
            "{head}"
        );

        // A 204 still has no Content-Length (6.3.6).
        let head = head_on_the_wire(
            app,
            "DELETE /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 204 No Content"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
    }

    #[test]
    fn the_overload_answer_is_written_in_title_case_too() {
        let text = String::from_utf8(overload_response()).unwrap();
        for name in [
            "Content-Type: ",
            "Retry-After: ",
            "Content-Length: ",
            "Connection: ",
        ] {
            assert!(text.contains(name), "{text}");
        }
    }
}
