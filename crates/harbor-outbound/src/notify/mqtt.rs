//! MQTT(S) notifications, clause 7 of ETSI GS CIM 009 V1.9.1 ("API MQTT Notification Binding").
//!
//! One connection is kept per broker, credentials and protocol version, and shared by every
//! delivery that goes there (see `link`). The connection is made when the first delivery needs
//! it, and again after it broke, when the next delivery comes.

mod link;
mod session;

use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use super::endpoint::{Authority, MqttEndpoint, MqttVersion, Qos};
use super::registry::Registry;
use super::{seconds, DeliveryError, Message, NotifierConfig};
use crate::egress::{Blocked, Egress};
use link::{Enqueue, Link};

/// The MQTT connections of one `Notifier`.
pub(super) struct Brokers {
    links: Registry<Key, Link>,
    settings: link::Settings,
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    egress: Egress,
}

/// What makes two endpoints share a connection. Holds the password, so it has no `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    authority: Authority,
    user: Option<String>,
    password: Option<String>,
    version: MqttVersion,
}

impl Brokers {
    pub fn new(cfg: &NotifierConfig) -> Self {
        Brokers {
            links: Registry::new(cfg.max_endpoints),
            settings: link::Settings::new(cfg),
            tls: OnceLock::new(),
            egress: cfg.egress.clone(),
        }
    }

    pub async fn publish(
        &self,
        target: &MqttEndpoint,
        name: &str,
        msg: &Message,
    ) -> Result<(), DeliveryError> {
        let deadline = Instant::now() + msg.timeout;
        let key = Key {
            authority: target.authority.clone(),
            user: target.user.clone(),
            password: target.password.clone(),
            version: target.version,
        };
        let tls = match target.authority.scheme {
            super::endpoint::Scheme::Mqtts => Some(self.tls()),
            _ => None,
        };
        let connect_to = self.connect_to(target, name).await?;
        let mut payload = payload(msg);
        // Twice at most: a connection that was just closed for idleness is replaced once.
        let mut sent = None;
        for _ in 0..2 {
            let link = self
                .links
                .get(&key, Link::usable, || {
                    Link::open(target, &connect_to, tls.clone(), &self.settings)
                })
                .ok_or_else(|| {
                    DeliveryError::Retry(format!(
                        "{name}: not sent, connections to {} other MQTT brokers are in use (max_endpoints)",
                        self.settings.max_links
                    ))
                })?;
            match link.enqueue(&target.topic, target.qos, payload) {
                Ok(receipt) => {
                    sent = Some((link, receipt));
                    break;
                }
                Err(Enqueue::Closed(back)) => payload = back,
                Err(Enqueue::Full) => {
                    return Err(DeliveryError::Retry(format!(
                        "{name}: not sent, too many notifications are waiting for this broker connection"
                    )))
                }
            }
        }
        let Some((link, receipt)) = sent else {
            return Err(DeliveryError::Retry(format!(
                "{name}: the broker connection closed while sending; try again"
            )));
        };
        match tokio::time::timeout_at(deadline, receipt).await {
            Ok(Ok(outcome)) => outcome.map_err(|refusal| refusal.into_error(name)),
            Ok(Err(_)) => Err(DeliveryError::Retry(format!(
                "{name}: the broker connection closed before the message was confirmed"
            ))),
            Err(_) => {
                let t = seconds(msg.timeout);
                Err(DeliveryError::Retry(if !link.connected() {
                    format!("{name}: could not connect to the broker within {t}")
                } else {
                    match target.qos {
                        Qos::AtMostOnce => {
                            format!("{name}: the message was not written to the broker within {t}")
                        }
                        Qos::AtLeastOnce => {
                            format!("{name}: the broker did not acknowledge (PUBACK) within {t}")
                        }
                        Qos::ExactlyOnce => {
                            format!("{name}: the broker did not complete (PUBCOMP) within {t}")
                        }
                    }
                }))
            }
        }
    }

    /// The host a new connection dials, once the egress wall has allowed it: over plain MQTT the
    /// checked address itself, so that what was checked is what is connected to; over MQTTS
    /// the name, which TLS verifies the broker's certificate against (checked just before the
    /// connection is opened).
    async fn connect_to(&self, target: &MqttEndpoint, name: &str) -> Result<String, DeliveryError> {
        let a = &target.authority;
        let addrs = self
            .egress
            .policy()
            .resolve(&a.host, a.port)
            .await
            .map_err(|b| match b {
                Blocked::Refused(r) => DeliveryError::Fail(format!("{name}: {r}")),
                Blocked::Unresolved(why) => DeliveryError::Retry(format!("{name}: {why}")),
            })?;
        Ok(match a.scheme {
            super::endpoint::Scheme::Mqtts => a.host.clone(),
            _ => addrs[0].ip().to_string(),
        })
    }

    /// The TLS settings of `mqtts`, shared with the HTTP clients (`crate::tls`), built on first
    /// use.
    fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls
            .get_or_init(|| Arc::new(crate::tls::client_config()))
            .clone()
    }
}

/// The MQTT message of a notification, clause 7.2: "The MQTT notification message shall be
/// provided as a JSON Object with the two elements "metadata" and "body". The actual
/// notification, as specified in clause 5.3.1 is the value of "body", whereas any additional
/// information is provided as key-value pairs in "metadata"." The additional information is what
/// HTTP sends as headers: the MIME type (`Content-Type`), the `Link` to the `@context`, the
/// tenant and the endpoint's `receiverInfo`, as the ETSI test suite's MQTT cases (058_04) read
/// it back:
///
/// ```json
/// {"metadata": {"Content-Type": "application/json", "Link": "<…>; rel=…", "key": "value"},
///  "body": {"id": "urn:ngsi-ld:Notification:…", "type": "Notification", "data": […], …}}
/// ```
///
/// The body is embedded as it was rendered, without being parsed again.
fn payload(msg: &Message) -> Vec<u8> {
    let mut metadata = serde_json::Map::with_capacity(msg.headers.len() + 1);
    metadata.insert(
        "Content-Type".into(),
        serde_json::Value::String(msg.content_type.clone()),
    );
    for (key, value) in &msg.headers {
        metadata.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    let metadata = serde_json::Value::Object(metadata).to_string();
    let mut out = Vec::with_capacity(metadata.len() + msg.body.len() + 24);
    out.extend_from_slice(b"{\"metadata\":");
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(b",\"body\":");
    out.extend_from_slice(&msg.body);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_payload_wraps_headers_as_metadata_around_the_body() {
        let msg = Message {
            uri: "mqtt://h/t".into(),
            body: br#"{"id":"urn:ngsi-ld:Notification:1","type":"Notification","data":[]}"#
                .to_vec(),
            content_type: "application/json".into(),
            headers: vec![
                (
                    "Link".into(),
                    "<https://ctx>; rel=\"http://www.w3.org/ns/json-ld#context\"".into(),
                ),
                ("NGSILD-Tenant".into(), "t1".into()),
                ("test-receiver-key".into(), "test-receiver-info".into()),
            ],
            notifier_info: vec![],
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            String::from_utf8(payload(&msg)).unwrap(),
            r#"{"metadata":{"Content-Type":"application/json","Link":"<https://ctx>; rel=\"http://www.w3.org/ns/json-ld#context\"","NGSILD-Tenant":"t1","test-receiver-key":"test-receiver-info"},"body":{"id":"urn:ngsi-ld:Notification:1","type":"Notification","data":[]}}"#
        );
    }
}
