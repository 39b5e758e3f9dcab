//! The broker's telemetry, set up once at start: log lines on stderr (text or JSON), and the
//! metrics and readiness beacons the HTTP edge serves at `/metrics` and `/ready`.

use std::sync::Arc;

use harbor_engine::history::Historian;
use harbor_engine::notify::Notifier;
use harbor_engine::Engine;
use harbor_http::telemetry::Telemetry;
use harbor_store_embedded::EmbeddedStore;

use crate::config::{Config, LogFormat};

/// Installs the log subscriber: `cfg.log` filters, `cfg.log_format` shapes the lines.
pub fn init_logs(cfg: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Text => logs.init(),
        // The request's span (with its request id) on every line; the list of outer spans
        // would only repeat it.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// Metrics (unless `metrics = false`) and readiness for the HTTP edge: the store's commit
/// thread, the notification pipeline and the historian must run for the broker to be ready.
pub fn for_http(
    cfg: &Config,
    store: &EmbeddedStore,
    engine: &Arc<Engine>,
    notifier: &Arc<Notifier>,
    historian: &Arc<Historian>,
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
        Telemetry::new(registry)
    } else {
        Telemetry::off()
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
