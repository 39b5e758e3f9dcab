//! MQTT 3.1.1 and 5.0 behind one face. rumqttc has a client and an event loop for each version;
//! the link needs only to queue a publish, and to read the event loop as "connected", "sent",
//! "settled" or "failed".

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubCompReason, PubRecReason};
use rumqttc::{Outgoing, TlsConfiguration, Transport};

use crate::notify::endpoint::Qos;
use crate::notify::DeliveryError;

/// Keep-alive interval; also how often an idle connection looks at its clock.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Largest packet accepted from the broker: only acknowledgements come back.
const MAX_INCOMING: usize = 64 * 1024;
/// Largest packet MQTT can express; the body limit is enforced before this.
const MAX_OUTGOING: usize = 268_435_455;

/// What one connection is opened with.
pub(super) struct Options {
    pub client_id: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Requests that may wait in the client's channel.
    pub capacity: usize,
    /// Publishes that may await their acknowledgement at once.
    pub inflight: u16,
}

/// The sending half of a connection.
#[derive(Clone)]
pub(super) enum Publisher {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// What the event loop reported, as far as deliveries care.
pub(super) enum Progress {
    Connected,
    /// The next queued publish went out with this packet id (0 for QoS 0).
    Sent(u16),
    /// The next queued publish was held back because its packet id is still taken; a `Sent` for
    /// it follows once the id is free.
    HeldBack,
    /// The broker settled the publish with this packet id: PUBACK for QoS 1, PUBCOMP for QoS 2,
    /// or (MQTT 5) an acknowledgement with an error reason.
    Settled(u16, Result<(), Refusal>),
    Disconnected,
    Other,
}

/// Why the broker or the network said no.
#[derive(Clone, Debug)]
pub(super) struct Refusal {
    pub retry: bool,
    pub why: String,
}

impl Refusal {
    fn retry(why: String) -> Self {
        Refusal { retry: true, why }
    }
    fn fail(why: String) -> Self {
        Refusal { retry: false, why }
    }
    pub fn into_error(self, name: &str) -> DeliveryError {
        let message = format!("{name}: {}", self.why);
        if self.retry {
            DeliveryError::Retry(message)
        } else {
            DeliveryError::Fail(message)
        }
    }
}

/// The receiving half: rumqttc's event loop of either version.
pub(super) trait Driver: Send + 'static {
    /// Drives the connection (connecting first if there is none) until it has something to
    /// report.
    fn next(&mut self) -> impl Future<Output = Result<Progress, Refusal>> + Send;
    /// Forgets the connection and every request queued or unacknowledged on it, so that nothing
    /// is resent when it reconnects.
    fn wipe(&mut self);
}

impl Publisher {
    /// Queues a publish without waiting; `false` when the channel is full.
    pub fn try_publish(&self, topic: &str, qos: Qos, payload: Vec<u8>) -> bool {
        match self {
            Publisher::V311(c) => c.try_publish(topic, v311_qos(qos), false, payload).is_ok(),
            Publisher::V5(c) => c.try_publish(topic, v5_qos(qos), false, payload).is_ok(),
        }
    }

    pub fn try_disconnect(&self) {
        let _ = match self {
            Publisher::V311(c) => c.try_disconnect().is_ok(),
            Publisher::V5(c) => c.try_disconnect().is_ok(),
        };
    }
}

fn transport(tls: &Option<Arc<rustls::ClientConfig>>) -> Transport {
    match tls {
        Some(config) => Transport::tls_with_config(TlsConfiguration::Rustls(config.clone())),
        None => Transport::tcp(),
    }
}

fn credentials(o: &Options) -> Option<(String, String)> {
    if o.user.is_none() && o.password.is_none() {
        return None;
    }
    Some((
        o.user.clone().unwrap_or_default(),
        o.password.clone().unwrap_or_default(),
    ))
}

pub(super) fn open_v311(o: &Options) -> (Publisher, rumqttc::EventLoop) {
    let mut options = rumqttc::MqttOptions::new(&o.client_id, &o.host, o.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING)
        .set_inflight(o.inflight.max(1))
        .set_transport(transport(&o.tls));
    if let Some((user, password)) = credentials(o) {
        options.set_credentials(user, password);
    }
    let (client, events) = rumqttc::AsyncClient::new(options, o.capacity);
    (Publisher::V311(client), events)
}

pub(super) fn open_v5(o: &Options) -> (Publisher, rumqttc::v5::EventLoop) {
    let mut options = rumqttc::v5::MqttOptions::new(&o.client_id, &o.host, o.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_start(true)
        .set_max_packet_size(Some(MAX_INCOMING as u32))
        // rumqttc sizes its table of unacknowledged publishes by this (65 536 by default).
        .set_outgoing_inflight_upper_limit(o.inflight.max(1))
        .set_transport(transport(&o.tls));
    if let Some((user, password)) = credentials(o) {
        options.set_credentials(user, password);
    }
    let (client, events) = rumqttc::v5::AsyncClient::new(options, o.capacity);
    (Publisher::V5(client), events)
}

fn v311_qos(qos: Qos) -> rumqttc::QoS {
    match qos {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(qos: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Driver for rumqttc::EventLoop {
    async fn next(&mut self) -> Result<Progress, Refusal> {
        use rumqttc::{Event, Packet};
        let event = self.poll().await.map_err(v311_refusal)?;
        Ok(match event {
            Event::Incoming(Packet::ConnAck(_)) => Progress::Connected,
            Event::Incoming(Packet::PubAck(ack)) => Progress::Settled(ack.pkid, Ok(())),
            Event::Incoming(Packet::PubComp(comp)) => Progress::Settled(comp.pkid, Ok(())),
            Event::Outgoing(Outgoing::Publish(pkid)) => Progress::Sent(pkid),
            Event::Outgoing(Outgoing::AwaitAck(_)) => Progress::HeldBack,
            Event::Outgoing(Outgoing::Disconnect) => Progress::Disconnected,
            _ => Progress::Other,
        })
    }

    fn wipe(&mut self) {
        self.clean();
        self.pending.clear();
        self.state.events.clear();
        self.state.collision = None;
    }
}

impl Driver for rumqttc::v5::EventLoop {
    async fn next(&mut self) -> Result<Progress, Refusal> {
        use rumqttc::v5::{Event, Incoming};
        let event = self.poll().await.map_err(v5_refusal)?;
        Ok(match event {
            Event::Incoming(Incoming::ConnAck(_)) => Progress::Connected,
            Event::Incoming(Incoming::PubAck(ack)) => {
                Progress::Settled(ack.pkid, puback(ack.reason))
            }
            // A refused PUBREC ends the QoS 2 exchange: no PUBCOMP follows.
            Event::Incoming(Incoming::PubRec(rec)) => match pubrec(rec.reason) {
                Ok(()) => Progress::Other,
                Err(refusal) => Progress::Settled(rec.pkid, Err(refusal)),
            },
            Event::Incoming(Incoming::PubComp(comp)) => Progress::Settled(
                comp.pkid,
                match comp.reason {
                    PubCompReason::Success => Ok(()),
                    reason => Err(Refusal::retry(format!(
                        "the broker answered PUBCOMP {reason:?}"
                    ))),
                },
            ),
            Event::Outgoing(Outgoing::Publish(pkid)) => Progress::Sent(pkid),
            Event::Outgoing(Outgoing::AwaitAck(_)) => Progress::HeldBack,
            Event::Outgoing(Outgoing::Disconnect) => Progress::Disconnected,
            _ => Progress::Other,
        })
    }

    fn wipe(&mut self) {
        self.clean();
        self.pending.clear();
        self.state.events.clear();
        self.state.collision = None;
    }
}

/// An MQTT 5 PUBACK. An error reason is retried where the broker's state may change (quota, a
/// passing error) and failed where the publish itself is refused (authorization, topic, payload
/// format).
fn puback(reason: PubAckReason) -> Result<(), Refusal> {
    use PubAckReason as R;
    let why = || format!("the broker refused the message (PUBACK {reason:?})");
    match reason {
        R::Success | R::NoMatchingSubscribers => Ok(()),
        R::NotAuthorized | R::TopicNameInvalid | R::PayloadFormatInvalid => {
            Err(Refusal::fail(why()))
        }
        R::UnspecifiedError
        | R::ImplementationSpecificError
        | R::PacketIdentifierInUse
        | R::QuotaExceeded => Err(Refusal::retry(why())),
    }
}

/// An MQTT 5 PUBREC, read like a PUBACK.
fn pubrec(reason: PubRecReason) -> Result<(), Refusal> {
    use PubRecReason as R;
    let why = || format!("the broker refused the message (PUBREC {reason:?})");
    match reason {
        R::Success | R::NoMatchingSubscribers => Ok(()),
        R::NotAuthorized | R::TopicNameInvalid | R::PayloadFormatInvalid => {
            Err(Refusal::fail(why()))
        }
        R::UnspecifiedError
        | R::ImplementationSpecificError
        | R::PacketIdentifierInUse
        | R::QuotaExceeded => Err(Refusal::retry(why())),
    }
}

fn v311_refusal(e: rumqttc::ConnectionError) -> Refusal {
    use rumqttc::{ConnectReturnCode as Code, ConnectionError as E};
    match e {
        E::ConnectionRefused(code @ (Code::BadUserNamePassword | Code::NotAuthorized)) => {
            Refusal::fail(format!(
                "the broker refused the connection ({code:?}): check the user and password of the endpoint"
            ))
        }
        E::ConnectionRefused(Code::RefusedProtocolVersion) => Refusal::fail(
            "the broker does not accept MQTT 3.1.1; set notifierInfo MQTT-Version to mqtt5.0"
                .into(),
        ),
        E::ConnectionRefused(code) => {
            Refusal::retry(format!("the broker refused the connection ({code:?})"))
        }
        E::Io(io) => Refusal::retry(format!("cannot reach the broker: {io}")),
        E::NetworkTimeout => Refusal::retry("connecting to the broker timed out".into()),
        E::Tls(tls) => Refusal::retry(format!("TLS with the broker failed: {tls}")),
        other => Refusal::retry(format!("the broker connection failed: {other}")),
    }
}

fn v5_refusal(e: rumqttc::v5::ConnectionError) -> Refusal {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code;
    use rumqttc::v5::ConnectionError as E;
    match e {
        E::ConnectionRefused(
            code @ (Code::BadUserNamePassword
            | Code::NotAuthorized
            | Code::Banned
            | Code::BadAuthenticationMethod),
        ) => Refusal::fail(format!(
            "the broker refused the connection ({code:?}): check the user and password of the endpoint"
        )),
        E::ConnectionRefused(
            code @ (Code::RefusedProtocolVersion | Code::UnsupportedProtocolVersion),
        ) => Refusal::fail(format!(
            "the broker does not accept MQTT 5.0 ({code:?}); set notifierInfo MQTT-Version to mqtt3.1.1"
        )),
        E::ConnectionRefused(code) => {
            Refusal::retry(format!("the broker refused the connection ({code:?})"))
        }
        E::Io(io) => Refusal::retry(format!("cannot reach the broker: {io}")),
        E::Timeout(_) => Refusal::retry("connecting to the broker timed out".into()),
        E::Tls(tls) => Refusal::retry(format!("TLS with the broker failed: {tls}")),
        other => Refusal::retry(format!("the broker connection failed: {other}")),
    }
}
