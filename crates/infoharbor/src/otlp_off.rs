//! Trace export in a binary built without the `otlp` feature: there is none. The configuration
//! already refuses `otlp_endpoint` with how to build a binary that has it, so an [`Export`]
//! can never exist here; this only lets the telemetry be written once for both builds.

use std::sync::Arc;
use std::time::Duration;

use harbor_http::telemetry::RequestSpans;

use crate::config::Otlp;

/// No export: this type has no values.
pub enum Export {}

pub fn start(_cfg: &Otlp, _runtime: tokio::runtime::Handle) -> anyhow::Result<Export> {
    anyhow::bail!("this infoharbor binary was built without the `otlp` feature")
}

impl Export {
    pub fn layer(
        &self,
    ) -> Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync> {
        match *self {}
    }

    pub fn request_spans(&self) -> Arc<dyn RequestSpans> {
        match *self {}
    }

    pub fn register(&self, _registry: &mut harbor_metrics::Registry) {
        match *self {}
    }

    pub async fn stop(self, _within: Duration) {
        match self {}
    }
}
