//! The egress policy as tables: destination → allowed or the reason it is refused.

use super::*;

fn policy(allow: &[&str], private: bool) -> EgressPolicy {
    EgressPolicy::new(allow, private).unwrap()
}

/// "ok" or the class named in the refusal.
fn judge(p: &EgressPolicy, host: &str, ip: &str, port: u16) -> String {
    match p.check(host, ip.parse().unwrap(), port) {
        Ok(()) => "ok".into(),
        Err(Refused(why)) => {
            let class = why
                .split(", a ")
                .nth(1)
                .and_then(|rest| rest.split(" address").next())
                .unwrap_or("?");
            format!("refused {class}")
        }
    }
}

#[test]
fn the_default_policy_refuses_every_special_address() {
    let p = EgressPolicy::default();
    let cases = [
        ("93.184.216.34", "ok"),
        ("2606:4700::1111", "ok"),
        ("127.0.0.1", "refused loopback"),
        ("127.9.9.9", "refused loopback"),
        ("::1", "refused loopback"),
        ("::ffff:127.0.0.1", "refused loopback"),
        ("::127.0.0.1", "refused loopback"),
        ("10.1.2.3", "refused private"),
        ("172.16.0.1", "refused private"),
        ("172.31.255.255", "refused private"),
        ("192.168.1.1", "refused private"),
        ("100.64.0.1", "refused private"),
        ("fd00::1", "refused private"),
        ("::ffff:10.0.0.1", "refused private"),
        ("169.254.169.254", "refused link-local (cloud metadata)"),
        ("fe80::1", "refused link-local (cloud metadata)"),
        ("224.0.0.1", "refused multicast"),
        ("ff02::1", "refused multicast"),
        ("0.0.0.0", "refused special-purpose"),
        ("255.255.255.255", "refused special-purpose"),
        ("192.0.2.1", "refused special-purpose"),
        ("198.18.0.1", "refused special-purpose"),
        ("240.0.0.1", "refused special-purpose"),
        ("::", "refused special-purpose"),
        ("64:ff9b::7f00:1", "refused special-purpose"),
        ("2002:7f00:1::", "refused special-purpose"),
        ("2001:db8::1", "refused special-purpose"),
        ("172.32.0.1", "ok"),
        ("100.128.0.1", "ok"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(ip, want)| {
            let got = judge(&p, ip, ip, 80);
            (got != *want).then(|| format!("{ip}: want {want}, got {got}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn entries_open_exactly_what_they_name() {
    let p = policy(
        &[
            "127.0.0.1:9000",
            "10.20.0.0/16",
            "[::1]:7000",
            "ctx.city.internal:8080",
            "mqtt.city.internal",
        ],
        false,
    );
    let cases = [
        ("127.0.0.1", "127.0.0.1", 9000, "ok"),
        ("127.0.0.1", "127.0.0.1", 9001, "refused loopback"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1", 9000, "ok"),
        ("127.0.0.2", "127.0.0.2", 9000, "refused loopback"),
        ("10.20.5.5", "10.20.5.5", 1, "ok"),
        ("10.21.0.1", "10.21.0.1", 1, "refused private"),
        ("[::1]", "::1", 7000, "ok"),
        ("[::1]", "::1", 7001, "refused loopback"),
        ("ctx.city.internal", "10.9.9.9", 8080, "ok"),
        ("ctx.city.internal.", "10.9.9.9", 8080, "ok"),
        ("ctx.city.internal", "10.9.9.9", 8081, "refused private"),
        ("mqtt.city.internal", "192.168.0.4", 1883, "ok"),
        ("mqtt.city.internal", "192.168.0.4", 8883, "ok"),
        ("evil.example", "127.0.0.1", 9001, "refused loopback"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(host, ip, port, want)| {
            let got = judge(&p, host, ip, *port);
            (got != *want).then(|| format!("{host} {ip}:{port}: want {want}, got {got}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn allow_private_opens_the_private_ranges_only() {
    let p = policy(&[], true);
    assert_eq!(judge(&p, "10.0.0.1", "10.0.0.1", 80), "ok");
    assert_eq!(judge(&p, "fd12::1", "fd12::1", 80), "ok");
    assert_eq!(judge(&p, "127.0.0.1", "127.0.0.1", 80), "refused loopback");
    assert_eq!(
        judge(&p, "169.254.169.254", "169.254.169.254", 80),
        "refused link-local (cloud metadata)"
    );
}

#[test]
fn a_refusal_names_the_destination_and_the_setting() {
    let err = EgressPolicy::default()
        .check("localhost", "127.0.0.1".parse().unwrap(), 9)
        .unwrap_err();
    assert_eq!(
        err.0,
        "the broker does not connect to localhost:9: localhost resolves to 127.0.0.1, a loopback address, which the egress policy refuses (allow it with egress_allow)"
    );
    let err = EgressPolicy::default()
        .check("10.0.0.1", "10.0.0.1".parse().unwrap(), 80)
        .unwrap_err();
    assert!(err.0.contains("egress_allow_private"), "{}", err.0);
}

#[test]
fn bad_entries_are_named() {
    for (entry, why) in [
        ("", "is empty"),
        ("10.0.0.0/33", "CIDR"),
        ("host:0", "port must be"),
        ("host:http", "port must be"),
        ("127.0.0.1:0", "port 0"),
        ("bad host", "is not host:port"),
        ("http://x", "is a URL"),
    ] {
        let err = EgressPolicy::new(&[entry], false).unwrap_err();
        assert!(
            err.contains(why) && err.contains(&format!("{entry:?}")),
            "{entry}: {err}"
        );
    }
}

#[test]
fn uris_are_refused_before_any_lookup_when_the_answer_is_certain() {
    let p = policy(&["127.0.0.1:9000"], false);
    let schemes = &["http", "https"];
    assert!(p.check_uri("http://127.0.0.1:9000/notify", schemes).is_ok());
    assert!(p.check_uri("http://example.org/notify", schemes).is_ok());
    for (uri, why) in [
        ("http://127.0.0.1:9001/n", "loopback"),
        ("http://localhost:9001/n", "loopback"),
        ("http://a.localhost/n", "loopback"),
        ("http://[::1]/n", "loopback"),
        ("http://0x7f000001/n", "loopback"),
        ("http://2130706433/n", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("ftp://example.org/x", "scheme \"ftp\""),
        ("file:///etc/passwd", "scheme \"file\""),
        ("not a uri", "not a valid URI"),
    ] {
        match p.check_uri(uri, schemes) {
            Err(err) => assert!(err.0.contains(why), "{uri}: {}", err.0),
            Ok(()) => panic!("{uri} was not refused"),
        }
    }
    assert!(p
        .check_uri("mqtt://[::1]:9000/t", &["mqtt"])
        .unwrap_err()
        .0
        .contains("loopback"));
    assert!(p
        .check_uri("mqtt://127.0.0.1/t", &["mqtt"])
        .unwrap_err()
        .0
        .contains("127.0.0.1:1883"));
}

#[tokio::test]
async fn names_are_checked_after_resolution() {
    let p = policy(&["127.0.0.1:9000"], false);
    assert_eq!(
        p.resolve("localhost", 9000)
            .await
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["127.0.0.1:9000"],
        "::1, if localhost also resolves to it, is not allowed on 9000"
    );
    match p.resolve("localhost", 9001).await {
        Err(Blocked::Refused(r)) => assert!(r.0.contains("loopback"), "{}", r.0),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.resolve("no-such-host.invalid", 80).await,
        Err(Blocked::Unresolved(_))
    ));
}
