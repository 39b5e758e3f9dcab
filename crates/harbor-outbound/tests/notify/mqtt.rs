//! MQTT delivery (clause 7): the message a subscriber receives at each QoS and protocol version,
//! confirmations paired with their deliveries, credentials, unreachable and silent brokers, and a
//! broker restart.

use std::time::{Duration, Instant};

use harbor_outbound::DeliveryError;
use serde_json::{json, Value};

use crate::support::{
    free_port, message, mute_broker, next_message, notifier, silent_listener, subscribe, unique,
    Mosquitto, BODY, LINK,
};

/// The port of the mosquitto that `scripts/test.sh` starts.
const MOSQUITTO: u16 = 1883;

fn with_info(mut msg: harbor_outbound::Message, info: &[(&str, &str)]) -> harbor_outbound::Message {
    msg.notifier_info = info
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    msg
}

#[tokio::test]
async fn mqtt_delivers_metadata_and_body_at_every_qos_and_version() {
    let base = unique("infoharbor-test");
    let mut received = subscribe(MOSQUITTO, &format!("{base}/#"), None).await;
    let n = notifier(8);
    // Clause 7.2: a JSON object with "metadata" (what HTTP sends as headers) and "body" (the
    // notification), as the ETSI suite's MQTT case 058_04 reads it back.
    let expected = json!({
        "metadata": {
            "Content-Type": "application/json",
            "Link": LINK,
            "NGSILD-Tenant": "t1",
            "test-receiver-key": "test-receiver-info",
        },
        "body": serde_json::from_str::<Value>(BODY).unwrap(),
    });
    for version in [None, Some("mqtt3.1.1"), Some("mqtt5.0")] {
        for qos in [None, Some("0"), Some("1"), Some("2")] {
            let topic = format!(
                "{base}/{}/qos-{}",
                version.unwrap_or("default"),
                qos.unwrap_or("default")
            );
            let mut info = Vec::new();
            info.extend(version.map(|v| ("MQTT-Version", v)));
            info.extend(qos.map(|q| ("MQTT-QoS", q)));
            let msg = with_info(
                message(
                    &format!("mqtt://127.0.0.1:{MOSQUITTO}/{topic}"),
                    Duration::from_secs(5),
                ),
                &info,
            );
            n.deliver(&msg)
                .await
                .unwrap_or_else(|e| panic!("{version:?} {qos:?}: {e}"));

            let got = next_message(&mut received).await;
            assert_eq!(got.topic, topic);
            assert_eq!(
                got.qos as u8,
                qos.unwrap_or("0").parse::<u8>().unwrap(),
                "{topic}"
            );
            let payload: Value = serde_json::from_slice(&got.payload).unwrap();
            assert_eq!(payload, expected, "{topic}");
        }
    }
}

#[tokio::test]
async fn mqtt_confirmations_go_to_their_own_deliveries() {
    let base = unique("infoharbor-test");
    let mut received = subscribe(MOSQUITTO, &format!("{base}/#"), None).await;
    let n = notifier(16);
    let started = Instant::now();
    let deliveries: Vec<_> = (0..40)
        .map(|i| {
            let (version, qos) = [
                ("mqtt3.1.1", "1"),
                ("mqtt3.1.1", "2"),
                ("mqtt5.0", "1"),
                ("mqtt5.0", "2"),
            ][i % 4];
            let mut msg = with_info(
                message(
                    &format!("mqtt://127.0.0.1:{MOSQUITTO}/{base}/{i}"),
                    Duration::from_secs(5),
                ),
                &[("MQTT-Version", version), ("MQTT-QoS", qos)],
            );
            msg.body = format!(
                r#"{{"id":"urn:ngsi-ld:Notification:{i}","type":"Notification","data":[]}}"#
            )
            .into_bytes();
            let n = n.clone();
            tokio::spawn(async move { n.deliver(&msg).await })
        })
        .collect();
    for d in deliveries {
        d.await.unwrap().expect("every delivery is confirmed");
    }
    let mut seen = Vec::new();
    for _ in 0..40 {
        let got = next_message(&mut received).await;
        let payload: Value = serde_json::from_slice(&got.payload).unwrap();
        let i = got.topic.rsplit('/').next().unwrap().to_string();
        assert_eq!(
            payload["body"]["id"],
            format!("urn:ngsi-ld:Notification:{i}")
        );
        seen.push(i);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 40);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mqtt_qos_1_and_2_wait_for_the_broker_to_confirm() {
    let port = mute_broker().await;
    let n = notifier(8);
    let timeout = Duration::from_millis(500);
    let uri = format!("mqtt://127.0.0.1:{port}/t");
    // QoS 0 asks only that the message is written to the connection.
    n.deliver(&message(&uri, timeout)).await.unwrap();
    for (qos, missing) in [
        ("1", "did not acknowledge (PUBACK) within 500 ms"),
        ("2", "did not complete (PUBCOMP) within 500 ms"),
    ] {
        let started = Instant::now();
        let err = n
            .deliver(&with_info(message(&uri, timeout), &[("MQTT-QoS", qos)]))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&err, DeliveryError::Retry(m) if m.contains(missing)),
            "QoS {qos}: {err:?}"
        );
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn mqtt_credentials_in_the_uri_reach_the_broker() {
    // The machine's mosquitto allows anonymous clients and has no password file, so it takes
    // any user and password; a refusal is tested against a broker of our own below.
    let base = unique("infoharbor-test");
    let mut received = subscribe(MOSQUITTO, &format!("{base}/#"), None).await;
    let n = notifier(8);
    for userinfo in ["someone:secret@", "someone@", "some%40one:p%3Ass@"] {
        let uri = format!("mqtt://{userinfo}127.0.0.1:{MOSQUITTO}/{base}/t");
        n.deliver(&with_info(
            message(&uri, Duration::from_secs(5)),
            &[("MQTT-QoS", "1")],
        ))
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
        next_message(&mut received).await;
    }
}

#[tokio::test]
async fn mqtt_refused_credentials_fail_and_never_show_the_password() {
    let broker = Mosquitto::start(&[("city", "right-pass")]).await;
    let port = broker.port;
    let mut received = subscribe(port, "notifications/#", Some(("city", "right-pass"))).await;
    let n = notifier(8);
    for version in ["mqtt3.1.1", "mqtt5.0"] {
        let info = [("MQTT-Version", version), ("MQTT-QoS", "1")];
        let wrong = format!("mqtt://city:wrong-pass@127.0.0.1:{port}/notifications/{version}");
        let err = n
            .deliver(&with_info(message(&wrong, Duration::from_secs(5)), &info))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Fail(m) if m.contains("refused the connection") && m.contains(&format!("127.0.0.1:{port}"))),
            "{version}: {err:?}"
        );
        assert!(!err.to_string().contains("wrong-pass"), "{err}");

        let right = format!("mqtt://city:right-pass@127.0.0.1:{port}/notifications/{version}");
        n.deliver(&with_info(message(&right, Duration::from_secs(5)), &info))
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(
            next_message(&mut received).await.topic,
            format!("notifications/{version}")
        );
    }
}

#[tokio::test]
async fn mqtt_unreachable_broker_is_retry_at_once() {
    let port = free_port().await;
    let n = notifier(8);
    for version in ["mqtt3.1.1", "mqtt5.0"] {
        let started = Instant::now();
        let msg = with_info(
            message(
                &format!("mqtt://127.0.0.1:{port}/t"),
                Duration::from_secs(3),
            ),
            &[("MQTT-Version", version), ("MQTT-QoS", "1")],
        );
        let err = n.deliver(&msg).await.unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Retry(m) if m.contains(&format!("mqtt://127.0.0.1:{port}/t: cannot reach the broker"))),
            "{version}: {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn mqtt_silent_broker_is_retry_after_the_timeout() {
    let (port, _count) = silent_listener().await;
    let n = notifier(8);
    for version in ["mqtt3.1.1", "mqtt5.0"] {
        let timeout = Duration::from_millis(500);
        let started = Instant::now();
        let msg = with_info(
            message(&format!("mqtt://127.0.0.1:{port}/t"), timeout),
            &[("MQTT-Version", version)],
        );
        let err = n.deliver(&msg).await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&err, DeliveryError::Retry(m) if m.contains("could not connect to the broker within 500 ms")),
            "{version}: {err:?}"
        );
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn mqtt_reconnects_after_the_broker_restarts() {
    let mut broker = Mosquitto::start(&[]).await;
    let uri = format!("mqtt://127.0.0.1:{}/city/parking", broker.port);
    let n = notifier(8);
    for version in ["mqtt3.1.1", "mqtt5.0"] {
        let msg = with_info(
            message(&uri, Duration::from_secs(3)),
            &[("MQTT-Version", version), ("MQTT-QoS", "1")],
        );
        let mut received = subscribe(broker.port, "city/#", None).await;
        n.deliver(&msg)
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        next_message(&mut received).await;

        broker.stop();
        let started = Instant::now();
        let err = n.deliver(&msg).await.unwrap_err();
        assert!(matches!(err, DeliveryError::Retry(_)), "{version}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );

        broker.restart().await;
        let mut received = subscribe(broker.port, "city/#", None).await;
        n.deliver(&msg)
            .await
            .unwrap_or_else(|e| panic!("{version} after the restart: {e}"));
        next_message(&mut received).await;
    }
}

#[tokio::test]
async fn mqtts_to_a_plain_listener_is_retry() {
    let started = Instant::now();
    let err = notifier(8)
        .deliver(&message(
            &format!("mqtts://127.0.0.1:{MOSQUITTO}/t"),
            Duration::from_secs(3),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Retry(m) if m.contains(&format!("mqtts://127.0.0.1:{MOSQUITTO}/t"))),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
