//! The egress wall against a canary: a listener on loopback that counts connections. With the
//! wall on, nothing aimed at a loopback port that is not allowed reaches it — not a notification
//! over HTTP or MQTT, not a context source request, not a `@context` fetch, not a redirect.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use harbor_jsonld::resolve::ContextFetcher;
use harbor_outbound::sources::SourceClient;
use harbor_outbound::{
    DeliveryError, Egress, EgressPolicy, HttpContextFetcher, Notifier, NotifierConfig,
};
use tokio::net::TcpListener;

use crate::support::{canary, message};

fn walled(allow: &[String]) -> Egress {
    Egress::new(EgressPolicy::new(allow, false).unwrap())
}

#[tokio::test]
async fn notifications_to_loopback_are_refused_without_connecting() {
    let (port, connections) = canary().await;
    // The wall allows one other loopback port, so the refusals below are about the port too.
    let n = Notifier::new(NotifierConfig {
        egress: walled(&[format!("127.0.0.1:{}", port.wrapping_add(1))]),
        ..NotifierConfig::default()
    });
    for uri in [
        format!("http://127.0.0.1:{port}/notify"),
        format!("http://localhost:{port}/notify"),
        format!("http://[::ffff:127.0.0.1]:{port}/notify"),
        format!("http://2130706433:{port}/notify"),
        format!("https://127.0.0.1:{port}/notify"),
        format!("mqtt://127.0.0.1:{port}/city/parking"),
        format!("mqtt://localhost:{port}/city/parking"),
        format!("mqtts://127.0.0.1:{port}/city/parking"),
    ] {
        let err = n
            .deliver(&message(&uri, Duration::from_secs(2)))
            .await
            .unwrap_err();
        match err {
            DeliveryError::Fail(why) => assert!(
                why.contains("egress policy refuses") && why.contains(&port.to_string()),
                "{uri}: {why}"
            ),
            other => panic!("{uri}: a refusal is final, not {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn context_sources_on_loopback_are_refused() {
    let (port, connections) = canary().await;
    let client = SourceClient::new(walled(&[]));
    for url in [
        format!("http://127.0.0.1:{port}/ngsi-ld/v1/entities/urn:x"),
        format!("http://localhost:{port}/ngsi-ld/v1/entities/urn:x"),
    ] {
        let err = client
            .get_json(&url, &[], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.contains("egress policy refuses"), "{url}: {err}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// A context server on an allowed loopback port whose documents redirect to `target`.
async fn redirecting_server(target: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route(
            "/ctx.jsonld",
            get(move || {
                let target = target.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, target)]).into_response() }
            }),
        )
        .route(
            "/ok.jsonld",
            get(|| async { r#"{"@context": {"a": "https://example.org/a"}}"# }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test]
async fn context_fetches_and_their_redirects_are_checked_at_every_hop() {
    let (port, connections) = canary().await;
    for target in [
        format!("http://127.0.0.1:{port}/ctx.jsonld"),
        format!("http://localhost:{port}/ctx.jsonld"),
    ] {
        let server = redirecting_server(target.clone()).await;
        let fetcher = HttpContextFetcher::new(
            Duration::from_secs(2),
            walled(&[format!("127.0.0.1:{server}")]),
        );
        // The allowed server itself is fetched from…
        let doc = fetcher
            .fetch(&format!("http://127.0.0.1:{server}/ok.jsonld"))
            .await
            .unwrap();
        assert!(doc.get("@context").is_some(), "{doc}");
        // …but its redirect to the canary is not followed.
        let err = fetcher
            .fetch(&format!("http://127.0.0.1:{server}/ctx.jsonld"))
            .await
            .unwrap_err();
        assert!(err.contains("egress policy refuses"), "{target}: {err}");
        // And a URL that names the canary directly is refused too.
        let err = fetcher.fetch(&target).await.unwrap_err();
        assert!(err.contains("egress policy refuses"), "{target}: {err}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_allowlisted_destination_is_reached() {
    let (port, connections) = canary().await;
    let client = SourceClient::new(walled(&[format!("127.0.0.1:{port}")]));
    // The canary never answers: the request times out, after connecting.
    let err = client
        .get_json(
            &format!("http://127.0.0.1:{port}/x"),
            &[],
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(!err.contains("egress"), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}
