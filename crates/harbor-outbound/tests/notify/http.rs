//! HTTP delivery: what arrives, how answers are judged, and what a receiver that never answers
//! can and cannot hold up.

use std::time::{Duration, Instant};

use harbor_outbound::{DeliveryError, Notifier, NotifierConfig};

use crate::support::{
    accepted, free_port, http_receiver, message, notifier, silent_listener, BODY, LINK,
};

#[tokio::test]
async fn http_delivers_the_body_with_every_header() {
    let (base, mut received) = http_receiver().await;
    let mut msg = message(&format!("{base}/status/204"), Duration::from_secs(5));
    msg.content_type = "application/ld+json".into();
    msg.headers.push(("X-Auth-Token".into(), "abc".into()));

    notifier(8).deliver(&msg).await.unwrap();

    let got = received.try_recv().expect("the receiver saw the request");
    assert_eq!(got.body, BODY.as_bytes());
    let header = |name: &str| {
        got.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/ld+json")
    );
    assert_eq!(header("link").as_deref(), Some(LINK));
    assert_eq!(header("ngsild-tenant").as_deref(), Some("t1"));
    assert_eq!(
        header("test-receiver-key").as_deref(),
        Some("test-receiver-info")
    );
    assert_eq!(header("x-auth-token").as_deref(), Some("abc"));
    assert_eq!(header("user-agent").as_deref(), Some("infoharbor-test"));
}

#[tokio::test]
async fn http_answers_decide_between_retry_and_fail() {
    let (base, _received) = http_receiver().await;
    let n = notifier(8);
    // status → the error's kind, or None for success.
    let cases: &[(u16, Option<&str>)] = &[
        (200, None),
        (201, None),
        (204, None),
        (500, Some("retry")),
        (503, Some("retry")),
        (429, Some("retry")),
        (408, Some("retry")),
        (400, Some("fail")),
        (401, Some("fail")),
        (404, Some("fail")),
        (413, Some("fail")),
        (301, Some("fail")),
    ];
    for (status, expected) in cases {
        let uri = format!("{base}/status/{status}");
        let outcome = n.deliver(&message(&uri, Duration::from_secs(5))).await;
        let (kind, text) = match &outcome {
            Ok(()) => (None, String::new()),
            Err(DeliveryError::Retry(m)) => (Some("retry"), m.clone()),
            Err(DeliveryError::Fail(m)) => (Some("fail"), m.clone()),
        };
        assert_eq!(kind, *expected, "{status}: {outcome:?}");
        if kind.is_some() {
            // The operator learns which endpoint answered what, and what the receiver said.
            let endpoint = uri.replace("http://", "");
            assert!(text.contains(&endpoint), "{text}");
            assert!(text.contains(&format!("answered {status}")), "{text}");
            assert!(text.contains("the receiver says so"), "{text}");
        }
    }
    let redirect = n
        .deliver(&message(
            &format!("{base}/status/301"),
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
    assert!(
        redirect
            .to_string()
            .contains("Location: http://elsewhere.example/n")
            && redirect.to_string().contains("redirects are not followed"),
        "{redirect}"
    );
}

#[tokio::test]
async fn http_connection_refused_is_retry_at_once() {
    let port = free_port().await;
    let started = Instant::now();
    let err = notifier(8)
        .deliver(&message(
            &format!("http://127.0.0.1:{port}/n"),
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Retry(m) if m.contains(&format!("http://127.0.0.1:{port}/n: cannot connect"))),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn hostile_endpoints_fail_without_a_panic_and_without_their_secrets() {
    let n = notifier(8);
    let uris = [
        "mqtt://",
        "mqtt://host",
        "mqtt://host/",
        "mqtt://host:99999/t",
        "mqtt://user:s3cret@host:abc/t",
        "mqtt://host/a/#",
        "http://[::1",
        "http://",
        "ftp://host/file",
        "",
        "\u{0}\u{1}",
    ];
    for uri in uris {
        match n.deliver(&message(uri, Duration::from_secs(1))).await {
            Err(DeliveryError::Fail(m)) => assert!(!m.contains("s3cret"), "{m}"),
            other => panic!("{uri:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn bodies_over_the_limit_fail_unsent() {
    let (base, mut received) = http_receiver().await;
    let n = Notifier::new(NotifierConfig {
        max_body_bytes: 10,
        egress: crate::support::loopback_allowed(),
        ..NotifierConfig::default()
    });
    let err = n
        .deliver(&message(
            &format!("{base}/status/204"),
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Fail(m) if m.contains("max_body_bytes")),
        "{err:?}"
    );
    assert!(received.try_recv().is_err(), "nothing may be sent");
}

#[tokio::test]
async fn a_receiver_that_never_answers_gives_retry_after_the_timeout() {
    let (port, _count) = silent_listener().await;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = notifier(8)
        .deliver(&message(&format!("http://127.0.0.1:{port}/n"), timeout))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, DeliveryError::Retry(m) if m.contains("no answer within 500 ms")),
        "{err:?}"
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_hung_endpoint_holds_only_its_own_permits() {
    let (hung_port, mut count) = silent_listener().await;
    let (base, _received) = http_receiver().await;
    let n = notifier(2);
    let hung_timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let hung: Vec<_> = (0..6)
        .map(|_| {
            let n = n.clone();
            let msg = message(&format!("http://127.0.0.1:{hung_port}/n"), hung_timeout);
            tokio::spawn(async move { n.deliver(&msg).await })
        })
        .collect();
    // Two permits: two connections reach the hung receiver, the other four wait for a permit.
    accepted(&mut count, 2).await;

    let healthy_started = Instant::now();
    for _ in 0..5 {
        n.deliver(&message(
            &format!("{base}/status/204"),
            Duration::from_secs(5),
        ))
        .await
        .expect("the healthy receiver is not held up");
    }
    let healthy = healthy_started.elapsed();
    assert!(
        healthy < Duration::from_millis(500),
        "healthy deliveries took {healthy:?}"
    );
    assert!(
        hung.iter().all(|h| !h.is_finished()),
        "the hung deliveries are still waiting"
    );
    assert_eq!(
        *count.borrow(),
        2,
        "no more than per_endpoint_concurrency connections"
    );

    for h in hung {
        let outcome = h.await.unwrap();
        assert!(
            matches!(outcome, Err(DeliveryError::Retry(_))),
            "{outcome:?}"
        );
    }
    // Each waited at most one timeout for a permit and one for its attempt.
    let all = started.elapsed();
    assert!(all < 2 * hung_timeout + Duration::from_secs(1), "{all:?}");
}

#[tokio::test]
async fn waiting_for_a_permit_is_bounded_by_the_timeout() {
    let (port, mut count) = silent_listener().await;
    let n = notifier(1);
    let uri = format!("http://127.0.0.1:{port}/n");
    let holder = {
        let (n, msg) = (n.clone(), message(&uri, Duration::from_secs(30)));
        tokio::spawn(async move { n.deliver(&msg).await })
    };
    accepted(&mut count, 1).await;

    let started = Instant::now();
    let err = n
        .deliver(&message(&uri, Duration::from_millis(300)))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, DeliveryError::Retry(m) if m.contains("still in flight after 300 ms")),
        "{err:?}"
    );
    assert!(took < Duration::from_millis(1300), "{took:?}");
    assert_eq!(*count.borrow(), 1, "the second delivery never connected");
    holder.abort();
}
