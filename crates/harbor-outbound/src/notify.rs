//! The transport half of notification delivery: one rendered notification goes to one endpoint
//! over HTTP(S) or MQTT(S), and the answer says whether the receiver confirmed it or whether a
//! later attempt could help. Retries, backoff and subscription status belong to the caller.
//!
//! Isolation: every endpoint authority (scheme, host, port) has its own pool of
//! `per_endpoint_concurrency` permits. An endpoint that never answers holds only its own
//! permits, each for at most one `Message::timeout`, and deliveries to other endpoints never wait
//! for it.

mod endpoint;
mod http;
mod mqtt;
mod registry;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::egress::{Egress, EgressPolicy, Purpose};
use endpoint::{Authority, Endpoint};
use registry::Registry;

/// One notification ready to send: the body is already rendered JSON.
///
/// Its `Debug` leaves out what may be secret: the user information of the URI and the header
/// values.
#[derive(Clone)]
pub struct Message {
    /// `endpoint.uri` of the subscription: `http://`, `https://`, `mqtt://` or `mqtts://`
    /// (`mqtt[s]://[user[:pass]@]host[:port]/topic/with/levels`).
    pub uri: String,
    pub body: Vec<u8>,
    /// `application/json` or `application/ld+json`.
    pub content_type: String,
    /// Further headers in order: `Link`, `NGSILD-Tenant`, and every `receiverInfo` key/value of
    /// the endpoint. Over MQTT they travel in the message's `metadata`.
    pub headers: Vec<(String, String)>,
    /// `notifierInfo` key/values of the endpoint (`MQTT-Version`: `mqtt3.1.1` | `mqtt5.0`,
    /// `MQTT-QoS`: `0` | `1` | `2`); ignored for HTTP.
    pub notifier_info: Vec<(String, String)>,
    /// How long one attempt may take once it has a permit for its endpoint: connect, send, and
    /// the answer or acknowledgement. Waiting for the permit is bounded separately by the same
    /// duration, so `deliver` returns within twice this.
    pub timeout: Duration,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Message")
            .field("uri", &endpoint::redacted(&self.uri))
            .field("body_bytes", &self.body.len())
            .field("content_type", &self.content_type)
            .field("header_names", &header_names)
            .field("notifier_info", &self.notifier_info)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a notification was not confirmed. Each message names the endpoint (without credentials
/// or query) and what happened, for the operator who has to act on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later: connection refused or reset, timeout, HTTP 5xx, 429 or 408, an
    /// unreachable or unacknowledging MQTT broker, all permits of the endpoint busy.
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help until the subscription or the receiver changes: unsupported scheme,
    /// malformed URI, HTTP 4xx other than 408 and 429, a redirect, credentials the MQTT broker
    /// refuses, a body over the size limit.
    #[error("{0}")]
    Fail(String),
}

#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// Deliveries in flight to one endpoint authority at once (at least 1).
    pub per_endpoint_concurrency: usize,
    /// Largest notification body sent; a larger one fails without being sent.
    pub max_body_bytes: usize,
    /// `User-Agent` of HTTP notifications.
    pub user_agent: String,
    /// How many endpoint authorities (for permits) and MQTT connections are remembered at once.
    /// When full, the least recently used one that no delivery is using is forgotten; when all
    /// are in use, a delivery to a new endpoint is refused with `Retry`.
    pub max_endpoints: usize,
    /// An MQTT connection without deliveries for this long is closed (noticed at the next
    /// keep-alive, so up to 30 s later).
    pub idle_timeout: Duration,
    /// The egress wall every delivery passes; a refused endpoint fails at once (dead letter).
    pub egress: Egress,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            per_endpoint_concurrency: 8,
            max_body_bytes: 8 * 1024 * 1024,
            user_agent: concat!("infoharbor/", env!("CARGO_PKG_VERSION")).to_string(),
            max_endpoints: 1024,
            idle_timeout: Duration::from_secs(300),
            egress: Egress::new(EgressPolicy::default()),
        }
    }
}

/// Sends notifications. Cheap to clone; clones share connections and permits. Dropping the last
/// clone closes its MQTT connections.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: NotifierConfig,
    permits: Registry<Authority, Semaphore>,
    mqtt: mqtt::Brokers,
}

impl Notifier {
    pub fn new(mut cfg: NotifierConfig) -> Self {
        cfg.per_endpoint_concurrency = cfg.per_endpoint_concurrency.max(1);
        let mqtt = mqtt::Brokers::new(&cfg);
        Notifier {
            inner: Arc::new(Inner {
                permits: Registry::new(cfg.max_endpoints),
                cfg,
                mqtt,
            }),
        }
    }

    /// Sends one message. `Ok` only when the receiver confirmed it: an HTTP 2xx answer; over
    /// MQTT, for QoS 0 the message written to the broker connection, for QoS 1 the broker's
    /// PUBACK, for QoS 2 its PUBCOMP.
    ///
    /// A delivery that timed out may still arrive later; together with the caller's retry that
    /// makes delivery at-least-once, never exactly-once.
    pub async fn deliver(&self, msg: &Message) -> Result<(), DeliveryError> {
        let endpoint = Endpoint::parse(&msg.uri, &msg.notifier_info);
        let name = match &endpoint {
            Ok(e) => e.name(),
            Err(_) => "(unparsable endpoint)".to_string(),
        };
        // `bytes` is i64: a tracer takes unsigned values as text.
        let span = tracing::debug_span!("notify", endpoint = %name, bytes = msg.body.len() as i64);
        async move {
            let started = Instant::now();
            let result = self.attempt(endpoint?, &name, msg).await;
            match &result {
                Ok(()) => tracing::debug!(elapsed_ms = started.elapsed().as_millis(), "delivered"),
                Err(e) => tracing::debug!(elapsed_ms = started.elapsed().as_millis(), error = %e, "not delivered"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn attempt(
        &self,
        endpoint: Endpoint,
        name: &str,
        msg: &Message,
    ) -> Result<(), DeliveryError> {
        let cfg = &self.inner.cfg;
        if msg.body.len() > cfg.max_body_bytes {
            return Err(DeliveryError::Fail(format!(
                "{name}: the notification body has {} bytes, more than the limit of {} (max_body_bytes)",
                msg.body.len(),
                cfg.max_body_bytes
            )));
        }
        let authority = endpoint.authority();
        let pool = self
            .inner
            .permits
            .get(
                authority,
                |_| true,
                || Semaphore::new(cfg.per_endpoint_concurrency),
            )
            .ok_or_else(|| {
                DeliveryError::Retry(format!(
                    "{name}: not sent, deliveries are in flight to {} other endpoints already (max_endpoints)",
                    cfg.max_endpoints
                ))
            })?;
        let _permit = match tokio::time::timeout(msg.timeout, pool.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The pools are never closed; should that change, a closed pool means "try again".
            Ok(Err(_closed)) => {
                return Err(DeliveryError::Retry(format!(
                    "{name}: the endpoint's permit pool was closed"
                )))
            }
            Err(_) => {
                return Err(DeliveryError::Retry(format!(
                    "{name}: not sent, {} deliveries to {authority} were still in flight after {} (per_endpoint_concurrency)",
                    cfg.per_endpoint_concurrency,
                    seconds(msg.timeout)
                )))
            }
        };
        match &endpoint {
            Endpoint::Http(target) => {
                let client = cfg
                    .egress
                    .http_client(&target.url, Purpose::Notify)
                    .map_err(|r| DeliveryError::Fail(format!("{name}: {r}")))?;
                http::post(&client, &cfg.user_agent, target, name, msg).await
            }
            Endpoint::Mqtt(target) => self.inner.mqtt.publish(target, name, msg).await,
        }
    }
}

/// A duration as an operator reads it in a message: "1.5 s", "250 ms".
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notifier_is_shared_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Notifier>();
    }

    #[test]
    fn debug_output_keeps_secrets_out() {
        let msg = Message {
            uri: "mqtt://city:s3cret@broker/t".into(),
            body: b"{}".to_vec(),
            content_type: "application/json".into(),
            headers: vec![("Authorization".into(), "Bearer t0ken".into())],
            notifier_info: vec![],
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{msg:?}");
        assert!(
            shown.contains("mqtt://broker/t") && shown.contains("Authorization"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}
