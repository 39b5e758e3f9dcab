//! The broker's telemetry, set up once at start: log lines on stderr (text or JSON), trace
//! export when the binary has the `otlp` feature and `otlp_endpoint` is set, and the metrics
//! and readiness beacons the HTTP edge serves at `/metrics` and `/ready`.

use std::sync::Arc;
use std::time::Duration;

use harbor_engine::history::Historian;
use harbor_engine::notify::Notifier;
use harbor_engine::Engine;
use harbor_http::telemetry::Telemetry;
use harbor_store_embedded::EmbeddedStore;

use crate::config::{Config, LogFormat};

/// The trace export, when there is one: its metrics, its part in each request, its flush.
pub struct Traces {
    export: Option<crate::otlp::Export>,
}

impl Traces {
    /// Exports what is still queued, for at most `within`; nothing without an export.
    pub async fn stop(self, within: Duration) {
        if let Some(export) = self.export {
            export.stop(within).await;
        }
    }
}

/// Installs the log subscriber: `cfg.log` filters, `cfg.log_format` shapes the lines. With
/// `cfg.otlp`, spans are also exported, filtered apart from the log (`otlp::Export::layer`);
/// their POSTs run on `runtime`.
pub fn init(cfg: &Config, runtime: &tokio::runtime::Handle) -> anyhow::Result<Traces> {
    use tracing_subscriber::prelude::*;

    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)?;
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let logs = match cfg.log_format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        // The request's span (with its request id) on every line; the list of outer spans
        // would only repeat it.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let export = match &cfg.otlp {
        Some(otlp) => Some(crate::otlp::start(otlp, runtime.clone())?),
        None => None,
    };
    let mut layers = vec![logs];
    layers.extend(export.as_ref().map(crate::otlp::Export::layer));
    tracing_subscriber::registry().with(layers).try_init()?;
    if let Some(otlp) = &cfg.otlp {
        tracing::info!(
            collector = %otlp.traces_url,
            service_name = %otlp.service_name,
            sample_ratio = otlp.sample_ratio,
            "exporting traces"
        );
    }
    Ok(Traces { export })
}

/// Metrics (unless `metrics = false`) and readiness for the HTTP edge: the store's commit
/// thread, the notification pipeline and the historian must run for the broker to be ready.
pub fn for_http(
    cfg: &Config,
    store: &EmbeddedStore,
    engine: &Arc<Engine>,
    notifier: &Arc<Notifier>,
    historian: &Arc<Historian>,
    traces: &Traces,
) -> Telemetry {
    let telemetry = if cfg.metrics {
        let mut registry = harbor_metrics::Registry::default();
        registry.register_collector(Box::new(harbor_metrics::process::ProcessCollector::new(
            env!("CARGO_PKG_VERSION"),
        )));
        store.metrics().register(&mut registry);
        harbor_engine::metrics::register(
            &mut registry,
            Some(notifier.clone()),
            Some(historian.clone()),
        );
        harbor_engine::metrics::register_tenants(
            &mut registry,
            engine.clone(),
            cfg.metrics_tenants,
        );
        if let Some(export) = &traces.export {
            export.register(&mut registry);
        }
        Telemetry::new(registry)
    } else {
        Telemetry::off()
    };
    let telemetry = match &traces.export {
        Some(export) => telemetry.with_request_spans(export.request_spans()),
        None => telemetry,
    };
    telemetry
        .ready_when(
            "store",
            "the store's commit thread",
            store.metrics().beacon.clone(),
        )
        .ready_when("notifier", "the notification pipeline", notifier.beacon())
        .ready_when("historian", "the history recorder", historian.beacon())
}
