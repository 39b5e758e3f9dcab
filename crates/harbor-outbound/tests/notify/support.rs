//! Receivers for the delivery tests: an HTTP server that records what arrives and a listener that
//! never answers.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use harbor_outbound::{Message, Notifier, NotifierConfig};
use tokio::net::TcpListener;
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
        ..NotifierConfig::default()
    })
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

/// Waits until the listener has accepted `n` connections.
pub async fn accepted(count: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(5), count.wait_for(|c| *c >= n))
        .await
        .unwrap_or_else(|_| panic!("the silent listener did not see {n} connections in 5 s"))
        .unwrap();
}
