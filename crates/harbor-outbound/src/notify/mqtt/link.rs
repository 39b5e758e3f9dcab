//! One connection to an MQTT broker, shared by every delivery with the same broker, credentials
//! and protocol version. A task owns rumqttc's event loop; each delivery queues its publish and
//! waits for the task to hand it the broker's answer.
//!
//! Pairing a publish with its answer: rumqttc takes requests from its channel in order and
//! reports each publish as it goes out (`Sent`, or `HeldBack` and later `Sent` when its packet
//! id is still taken). Waiters are queued in the same order, under the same lock as the request,
//! so the n-th report belongs to the n-th waiter; the packet id then ties the waiter to its
//! PUBACK or PUBCOMP.
//!
//! When the connection fails, every waiter gets the failure (a `Retry`, or a `Fail` when the
//! broker refused the credentials) and the session is wiped under that lock: the connection uses
//! a clean session and rumqttc resends nothing, so no report can arrive for a waiter that is
//! gone. The task reconnects only when the next delivery comes, so a broker that
//! is down costs one connection attempt per delivery, never a busy loop.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::session::{self, Driver, Progress, Publisher, Refusal};
use crate::notify::endpoint::{MqttEndpoint, MqttVersion, Qos};
use crate::notify::NotifierConfig;

/// How links are opened, from the notifier's configuration.
pub(in crate::notify) struct Settings {
    pub max_links: usize,
    capacity: usize,
    inflight: u16,
    idle: Duration,
}

impl Settings {
    pub fn new(cfg: &NotifierConfig) -> Self {
        // Every request in the channel holds one of its authority's permits, except those left
        // by deliveries that timed out; leave room for both.
        let capacity = cfg
            .per_endpoint_concurrency
            .saturating_mul(4)
            .clamp(16, 4096);
        Settings {
            max_links: cfg.max_endpoints,
            capacity,
            inflight: capacity.min(u16::MAX as usize) as u16,
            idle: cfg.idle_timeout,
        }
    }
}

pub(in crate::notify) struct Link {
    publisher: Publisher,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// Dropped with the link, which stops the task and closes the connection.
    _stop: oneshot::Sender<()>,
}

struct Shared {
    state: Mutex<State>,
    work: Notify,
}

struct State {
    /// The task has ended or is ending; nothing more may be queued.
    closed: bool,
    connected: bool,
    /// Waiters whose publish has not been reported yet, in the order of the channel.
    queued: VecDeque<Waiter>,
    held_back: Option<Waiter>,
    /// QoS 1 and 2 publishes that went out, by packet id.
    unsettled: HashMap<u16, Waiter>,
    last_used: Instant,
}

struct Waiter {
    qos: Qos,
    done: oneshot::Sender<Result<(), Refusal>>,
}

pub(in crate::notify) enum Enqueue {
    /// The link closed for idleness just now; the payload comes back for a new link.
    Closed(Vec<u8>),
    /// The channel is full.
    Full,
}

impl State {
    fn idle_for(&self, idle: Duration) -> bool {
        self.queued.is_empty()
            && self.held_back.is_none()
            && self.unsettled.is_empty()
            && self.last_used.elapsed() >= idle
    }

    /// Answers every waiter with `refusal`.
    fn fail_all(&mut self, refusal: &Refusal) {
        let waiters = self
            .queued
            .drain(..)
            .chain(self.held_back.take())
            .chain(self.unsettled.drain().map(|(_, w)| w));
        for waiter in waiters {
            let _ = waiter.done.send(Err(refusal.clone()));
        }
    }
}

impl Link {
    /// Starts the task of a new link; it connects when the first publish is queued.
    pub fn open(
        target: &MqttEndpoint,
        connect_to: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        settings: &Settings,
    ) -> Link {
        let options = session::Options {
            client_id: client_id(),
            host: connect_to.to_string(),
            port: target.authority.port,
            user: target.user.clone(),
            password: target.password.clone(),
            tls,
            capacity: settings.capacity,
            inflight: settings.inflight,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                closed: false,
                connected: false,
                queued: VecDeque::new(),
                held_back: None,
                unsettled: HashMap::new(),
                last_used: Instant::now(),
            }),
            work: Notify::new(),
        });
        let (stop, stopped) = oneshot::channel();
        // What logs call the connection: the broker, never the credentials.
        let broker = target.authority.to_string();
        let idle = settings.idle;
        let (publisher, task) = match target.version {
            MqttVersion::V311 => {
                let (publisher, events) = session::open_v311(&options);
                let task = drive(
                    events,
                    publisher.clone(),
                    shared.clone(),
                    stopped,
                    idle,
                    broker,
                );
                (publisher, tokio::spawn(task))
            }
            MqttVersion::V5 => {
                let (publisher, events) = session::open_v5(&options);
                let task = drive(
                    events,
                    publisher.clone(),
                    shared.clone(),
                    stopped,
                    idle,
                    broker,
                );
                (publisher, tokio::spawn(task))
            }
        };
        Link {
            publisher,
            shared,
            task,
            _stop: stop,
        }
    }

    /// Whether publishes can still be queued here.
    pub fn usable(&self) -> bool {
        !self.task.is_finished() && !self.shared.state.lock().closed
    }

    pub fn connected(&self) -> bool {
        self.shared.state.lock().connected
    }

    /// Queues a publish; the receiver gets the broker's answer.
    pub fn enqueue(
        &self,
        topic: &str,
        qos: Qos,
        payload: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<(), Refusal>>, Enqueue> {
        let mut state = self.shared.state.lock();
        if state.closed {
            return Err(Enqueue::Closed(payload));
        }
        if !self.publisher.try_publish(topic, qos, payload) {
            return Err(Enqueue::Full);
        }
        let (done, receipt) = oneshot::channel();
        state.queued.push_back(Waiter { qos, done });
        state.last_used = Instant::now();
        drop(state);
        self.shared.work.notify_one();
        Ok(receipt)
    }
}

/// The link's task: drives the event loop while there is a connection or work, hands each
/// waiter its answer, and ends when the link is dropped or has been idle for `idle`.
async fn drive<D: Driver>(
    mut events: D,
    publisher: Publisher,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
    idle: Duration,
    broker: String,
) {
    let mut connected = false;
    loop {
        if !connected && shared.state.lock().queued.is_empty() {
            // No connection and nothing to send: wait for work without touching the network.
            tokio::select! {
                _ = &mut stop => return,
                _ = shared.work.notified() => continue,
                _ = tokio::time::sleep(idle) => {
                    let mut state = shared.state.lock();
                    if state.queued.is_empty() {
                        state.closed = true;
                        return;
                    }
                    continue;
                }
            }
        }
        let progress = tokio::select! {
            _ = &mut stop => return,
            progress = events.next() => progress,
        };
        let close = {
            let mut state = shared.state.lock();
            match progress {
                Ok(Progress::Connected) => {
                    connected = true;
                    state.connected = true;
                    tracing::debug!(broker = %broker, "MQTT connection open");
                }
                Ok(Progress::Sent(pkid)) => {
                    let waiter = state.held_back.take().or_else(|| state.queued.pop_front());
                    match waiter {
                        Some(w) if w.qos == Qos::AtMostOnce => {
                            let _ = w.done.send(Ok(()));
                        }
                        Some(w) => {
                            state.unsettled.insert(pkid, w);
                        }
                        None => {
                            tracing::debug!(broker = %broker, pkid, "MQTT publish without a waiter")
                        }
                    }
                }
                Ok(Progress::HeldBack) => state.held_back = state.queued.pop_front(),
                Ok(Progress::Settled(pkid, outcome)) => {
                    if let Some(w) = state.unsettled.remove(&pkid) {
                        let _ = w.done.send(outcome);
                    }
                }
                Ok(Progress::Disconnected | Progress::Other) => {}
                Err(refusal) => {
                    // Under the lock, so that nothing is queued between the wipe and the answers.
                    events.wipe();
                    connected = false;
                    state.connected = false;
                    tracing::debug!(broker = %broker, error = %refusal.why, "MQTT connection failed");
                    state.fail_all(&refusal);
                }
            }
            let close = connected && state.idle_for(idle);
            state.closed |= close;
            close
        };
        if close {
            publisher.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(progress) = events.next().await {
                    if matches!(progress, Progress::Disconnected) {
                        break;
                    }
                }
            })
            .await;
            tracing::debug!(broker = %broker, "MQTT connection closed after being idle");
            return;
        }
    }
}

/// A client identifier unique to this connection, within the 23 characters every MQTT 3.1.1
/// broker must accept.
fn client_id() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("infoharbor-{:012x}", random & 0xffff_ffff_ffff)
}
