//! Trace export over OTLP/HTTP (the `otlp` feature): the broker's own spans — requests, the
//! commits they wait for, notification attempts — go to the collector the operator names,
//! in protobuf, from a bounded queue that a background thread empties in batches.
//!
//! Export never holds a request up: ending a span is a `try_send` into the queue, and when
//! the queue is full the span is dropped and counted (`infoharbor_trace_spans_total`). The
//! batches are POSTed by the broker's runtime through `harbor-outbound`'s collector client;
//! the batch thread only waits for the answer. A graceful stop flushes what is queued within
//! what is left of the shutdown deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use harbor_http::telemetry::{RequestSpans, TracedRequest};
use harbor_metrics::{ConstCounter, DescriptorEncoder, EncodeMetric, MetricType};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::{Layer, Registry};

use crate::config::Otlp;

/// Spans waiting for export at most; past it, new spans are dropped.
const QUEUE: usize = 8192;
/// Spans in one POST at most.
const BATCH: usize = 512;
/// How long spans gather before a POST that is not full is sent.
const DELAY: Duration = Duration::from_secs(5);
/// How long one export may take, retries included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running export.
pub struct Export {
    provider: SdkTracerProvider,
    counts: Arc<Counts>,
}

/// What happened to the spans, for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    /// Ended and waiting for their batch to be handed to the exporter.
    queued: AtomicUsize,
    exported: AtomicU64,
    queue_full: AtomicU64,
    export_failed: AtomicU64,
    /// Whether the last export failed, so that a failure is logged once, not per batch.
    failing: AtomicBool,
    /// Set by the stop: spans that end later are dropped without a word.
    stopped: AtomicBool,
}

/// Starts the export to `cfg.traces_url`; POSTs run on `runtime`.
pub fn start(cfg: &Otlp, runtime: tokio::runtime::Handle) -> anyhow::Result<Export> {
    let client = harbor_outbound::collector::CollectorClient::new(EXPORT_TIMEOUT)
        .map_err(anyhow::Error::msg)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(&cfg.traces_url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let counts = Arc::new(Counts::default());
    let batches = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        counts: counts.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(BATCH)
            .with_scheduled_delay(DELAY)
            .build(),
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Gate {
            inner: batches,
            counts: counts.clone(),
        })
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    Ok(Export { provider, counts })
}

impl Export {
    /// The layer that turns the broker's spans into OpenTelemetry spans: every span of the
    /// broker's own crates from `debug` up, with its `warn` and `error` events, whatever
    /// `log` lets into the log.
    pub fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("infoharbor"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(FilterFn::new(exported))
            .boxed()
    }

    /// What the HTTP edge does with each request's span.
    pub fn request_spans(&self) -> Arc<dyn RequestSpans> {
        Arc::new(W3cRequests)
    }

    /// `infoharbor_trace_spans_total{outcome}` into `registry`.
    pub fn register(&self, registry: &mut harbor_metrics::Registry) {
        registry.register_collector(Box::new(SpanCounts(self.counts.clone())));
    }

    /// Exports what is queued, for at most `within`, and stops exporting.
    pub async fn stop(self, within: Duration) {
        self.counts.stopped.store(true, Ordering::Relaxed);
        let provider = self.provider;
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within)).await;
        match flushed {
            Ok(Ok(())) => tracing::debug!("traces flushed"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "traces not all exported before the shutdown deadline")
            }
            Err(e) => tracing::warn!(error = %e, "flushing the traces failed"),
        }
    }
}

/// Which spans and events reach the collector: the broker's own (not those of the libraries
/// it uses, the exporter's HTTP client among them), spans from `debug`, events from `warn`.
fn exported(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let ours = target.starts_with("harbor_") || target.starts_with("infoharbor");
    let level = if meta.is_span() {
        Level::DEBUG
    } else {
        Level::WARN
    };
    ours && *meta.level() <= level
}

/// The request span continues the caller's trace (W3C Trace Context) and carries the HTTP
/// attributes of the OpenTelemetry conventions.
struct W3cRequests;

impl RequestSpans for W3cRequests {
    fn started(&self, span: &tracing::Span, req: &TracedRequest<'_>) {
        let caller = TraceContextPropagator::new().extract(&W3cHeaders(req));
        // Without a usable `traceparent` the request starts a trace of its own.
        if caller.span().span_context().is_valid() {
            let _ = span.set_parent(caller);
        }
        let name = match req.route {
            Some(route) => format!("{} {route}", req.method),
            None => req.method.to_string(),
        };
        span.record("otel.name", name.as_str());
        span.record("otel.kind", "server");
        span.set_attribute("http.request.method", req.method.to_string());
        if let Some(route) = req.route {
            span.set_attribute("http.route", route.to_string());
        }
        span.set_attribute("url.path", req.path.to_string());
    }

    fn finished(&self, span: &tracing::Span, status: u16) {
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.set_status(Status::error(format!("answered {status}")));
        }
    }
}

struct W3cHeaders<'a>(&'a TracedRequest<'a>);

impl Extractor for W3cHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent,
            "tracestate" => self.0.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The batch processor behind a count of what waits in it: past [`QUEUE`] a span is dropped
/// here, counted, instead of inside the processor, which would only log it.
#[derive(Debug)]
struct Gate {
    inner: BatchSpanProcessor,
    counts: Arc<Counts>,
}

impl SpanProcessor for Gate {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.counts.stopped.load(Ordering::Relaxed) {
            return;
        }
        if self.counts.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.counts.queued.fetch_sub(1, Ordering::Relaxed);
            self.counts.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans it is handed and what became of them.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    counts: Arc<Counts>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.counts.queued.fetch_sub(n, Ordering::Relaxed);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.counts.exported.fetch_add(n as u64, Ordering::Relaxed);
                if self.counts.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("exporting traces to the collector works again");
                }
            }
            Err(e) => {
                self.counts
                    .export_failed
                    .fetch_add(n as u64, Ordering::Relaxed);
                if !self.counts.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "exporting traces to the collector failed; their spans are lost until \
                         it answers again (infoharbor_trace_spans_total{{outcome=\"export_failed\"}})"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter's HTTP client: the collector client, run on the broker's runtime (the
/// batch thread that calls it has none).
#[derive(Debug)]
struct OnRuntime {
    client: harbor_outbound::collector::CollectorClient,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let client = self.client.clone();
        let (status, headers, answer) = self
            .runtime
            .spawn(async move { client.post(&url, parts.headers, body).await })
            .await??;
        let mut resp = Response::new(Bytes::from(answer));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

#[derive(Debug)]
struct SpanCounts(Arc<Counts>);

impl harbor_metrics::Collector for SpanCounts {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut m = enc.encode_descriptor(
            "infoharbor_trace_spans",
            "Spans ended for export, by outcome: exported, dropped because the export queue was \
             full (queue_full), or lost because the collector did not take them (export_failed).",
            None,
            MetricType::Counter,
        )?;
        let c = &self.0;
        for (outcome, n) in [
            ("exported", &c.exported),
            ("queue_full", &c.queue_full),
            ("export_failed", &c.export_failed),
        ] {
            let counter: ConstCounter<u64> = ConstCounter::new(n.load(Ordering::Relaxed));
            counter.encode(m.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}
