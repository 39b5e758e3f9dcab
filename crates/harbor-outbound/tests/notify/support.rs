//! Receivers for the delivery tests: an HTTP server that records what arrives, a listener that
//! never answers, MQTT subscribers, and mosquitto brokers started and stopped by a test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use harbor_outbound::{Egress, EgressPolicy, Message, Notifier, NotifierConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// The notification every test sends, as the engine renders it.
pub const BODY: &str = r#"{"id":"urn:ngsi-ld:Notification:1","type":"Notification","subscriptionId":"urn:ngsi-ld:Subscription:s1","notifiedAt":"2024-05-01T10:00:00.000Z","data":[{"id":"urn:ngsi-ld:Building:b1","type":"Building","airQualityLevel":{"type":"Property","value":"good"}}]}"#;
pub const LINK: &str = r#"<https://city.example/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json""#;

/// A message with the headers the engine adds: Link, tenant and one receiverInfo entry.
pub fn message(uri: &str, timeout: Duration) -> Message {
    Message {
        uri: uri.to_string(),
        body: BODY.as_bytes().to_vec(),
        content_type: "application/json".into(),
        headers: vec![
            ("Link".into(), LINK.into()),
            ("NGSILD-Tenant".into(), "t1".into()),
            ("test-receiver-key".into(), "test-receiver-info".into()),
        ],
        notifier_info: vec![],
        timeout,
    }
}

pub fn notifier(per_endpoint_concurrency: usize) -> Notifier {
    Notifier::new(NotifierConfig {
        per_endpoint_concurrency,
        user_agent: "infoharbor-test".into(),
        egress: loopback_allowed(),
        ..NotifierConfig::default()
    })
}

/// The receivers of these tests listen on loopback, which the egress wall refuses unless it is
/// allowed: the tests allow it explicitly.
pub fn loopback_allowed() -> Egress {
    Egress::new(EgressPolicy::new(&["127.0.0.0/8", "::1"], false).unwrap())
}

/// A listener on loopback that counts the connections made to it and answers none.
pub async fn canary() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, count)
}

/// A name no other test (or earlier run) uses, for topics and client ids.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port on 127.0.0.1 where nothing listens (it was free a moment ago).
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// One request as the HTTP receiver saw it.
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// An HTTP receiver on 127.0.0.1:0. `POST /status/{code}` records the request and answers
/// `code` (with a Location for redirects). Returns the base URL and the recorded requests.
pub async fn http_receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    async fn record(
        State(seen): State<mpsc::UnboundedSender<Received>>,
        Path(code): Path<u16>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let _ = seen.send(Received {
            headers,
            body: body.to_vec(),
        });
        let status = StatusCode::from_u16(code).unwrap();
        let mut response = (status, "the receiver says so\n").into_response();
        if status.is_redirection() {
            response.headers_mut().insert(
                header::LOCATION,
                "http://elsewhere.example/n".parse().unwrap(),
            );
        }
        response
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, received) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/status/{code}", post(record))
        .with_state(seen);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

/// A listener on 127.0.0.1:0 that accepts connections, keeps them open and never sends a byte.
/// The watch counts the connections accepted so far.
pub async fn silent_listener() -> (u16, watch::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (count, accepted) = watch::channel(0);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
            count.send_replace(open.len());
        }
    });
    (port, accepted)
}

/// An MQTT 3.1.1 "broker" on 127.0.0.1:0 that accepts every connection (CONNACK) and then
/// reads and drops whatever comes, acknowledging nothing.
pub async fn mute_broker() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // The CONNECT packet arrives in one read on loopback.
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                // CONNACK: no session present, connection accepted.
                if socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.is_err() {
                    return;
                }
                while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
            });
        }
    });
    port
}

/// Waits until the listener has accepted `n` connections.
pub async fn accepted(count: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(5), count.wait_for(|c| *c >= n))
        .await
        .unwrap_or_else(|_| panic!("the silent listener did not see {n} connections in 5 s"))
        .unwrap();
}

/// A subscriber on the mosquitto at 127.0.0.1:`port`, subscribed at QoS 2 (so it receives each
/// message at the QoS it was published with) once this returns.
pub async fn subscribe(
    port: u16,
    filter: &str,
    login: Option<(&str, &str)>,
) -> mpsc::UnboundedReceiver<rumqttc::Publish> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(unique("sub"), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(filter, QoS::ExactlyOnce).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                panic!("cannot subscribe at mosquitto on 127.0.0.1:{port}: {e} (scripts/test.sh starts it)")
            }
            Err(_) => panic!("mosquitto on 127.0.0.1:{port} did not confirm a subscription in 5 s"),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// The next message for a subscriber, or a failing test after 5 s.
pub async fn next_message(rx: &mut mpsc::UnboundedReceiver<rumqttc::Publish>) -> rumqttc::Publish {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no MQTT message arrived within 5 s")
        .expect("the subscriber stopped")
}

/// A mosquitto broker of the test's own on 127.0.0.1, stopped when dropped.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker on a free port; `users` are (name, password) pairs, and when there are any,
    /// anonymous clients are refused.
    pub async fn start(users: &[(&str, &str)]) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        // mosquitto started as root drops to its own user, which must be able to read the files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let port = free_port().await;
        let mut config = format!("listener {port} 127.0.0.1\npersistence false\nlog_dest none\n");
        if users.is_empty() {
            config.push_str("allow_anonymous true\n");
        } else {
            let passwords = dir.path().join("passwords");
            for (i, (user, password)) in users.iter().enumerate() {
                let mut cmd = Command::new(binary("mosquitto_passwd"));
                if i == 0 {
                    cmd.arg("-c");
                }
                let status = cmd
                    .arg("-b")
                    .arg(&passwords)
                    .args([user, password])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("running mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
            }
            std::fs::set_permissions(
                &passwords,
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
            config.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                passwords.display()
            ));
        }
        std::fs::write(dir.path().join("mosquitto.conf"), &config).unwrap();
        let mut broker = Mosquitto {
            port,
            dir,
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// Starts the broker (again) on its port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on 127.0.0.1:{} within 5 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A mosquitto program: on the PATH, or in the sbin folders Debian installs the broker to.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/test.sh installs mosquitto)"))
}
