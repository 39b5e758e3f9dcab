//! Reads a notification endpoint (`endpoint.uri` and `notifierInfo`) into a typed target once, so
//! the transports never see a malformed address, and names it for logs and errors without the
//! credentials or query it may carry.

use std::fmt;

use percent_encoding::percent_decode_str;
use reqwest::Url;

use super::DeliveryError;

/// Where one notification goes.
pub(crate) enum Endpoint {
    Http(HttpEndpoint),
    Mqtt(MqttEndpoint),
}

pub(crate) struct HttpEndpoint {
    pub url: Url,
    pub authority: Authority,
}

/// An MQTT broker and topic (clause 7.2: `mqtt[s]://[<username>][:<password>]@<host>[:<port>]/<topic>[/<subtopic>]*`)
/// with the `notifierInfo` settings of clause 7.2 applied.
pub(crate) struct MqttEndpoint {
    pub authority: Authority,
    pub user: Option<String>,
    pub password: Option<String>,
    pub topic: String,
    pub version: MqttVersion,
    pub qos: Qos,
}

/// Scheme, host and port: the unit that per-endpoint limits apply to.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Authority {
    pub scheme: Scheme,
    /// As written in the URI; an IPv6 address keeps its brackets.
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Scheme {
    Http,
    Https,
    Mqtt,
    Mqtts,
}

/// `MQTT-Version` in `notifierInfo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum MqttVersion {
    V311,
    V5,
}

/// `MQTT-QoS` in `notifierInfo`, with the names MQTT gives the levels.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

/// Longest topic name MQTT can carry (a two-byte length prefix).
const MAX_TOPIC_BYTES: usize = 65_535;

impl Endpoint {
    pub fn parse(uri: &str, notifier_info: &[(String, String)]) -> Result<Endpoint, DeliveryError> {
        let fail = |why: String| DeliveryError::Fail(format!("endpoint {}: {why}", shown(uri)));
        let url = Url::parse(uri.trim()).map_err(|e| fail(format!("not a valid URI ({e})")))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "mqtt" => Scheme::Mqtt,
            "mqtts" => Scheme::Mqtts,
            other => {
                return Err(fail(format!(
                    "scheme \"{other}\" is not supported; use http, https, mqtt or mqtts"
                )))
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(fail("has no host".into())),
        };
        let port = match (url.port(), scheme) {
            (Some(0), _) => return Err(fail("port 0 cannot be connected to".into())),
            (Some(p), _) => p,
            (None, Scheme::Http) => 80,
            (None, Scheme::Https) => 443,
            (None, Scheme::Mqtt) => 1883,
            (None, Scheme::Mqtts) => 8883,
        };
        let authority = Authority { scheme, host, port };
        if matches!(scheme, Scheme::Http | Scheme::Https) {
            return Ok(Endpoint::Http(HttpEndpoint { url, authority }));
        }
        if url.query().is_some() {
            return Err(fail("an MQTT endpoint takes no query ('?')".into()));
        }
        if url.fragment().is_some() {
            return Err(fail(
                "'#' is a wildcard and cannot be part of a topic to publish to".into(),
            ));
        }
        let topic = decode(url.path().strip_prefix('/').unwrap_or(url.path()))
            .ok_or_else(|| fail("the topic is not UTF-8 once percent-decoded".into()))?;
        if topic.is_empty() {
            return Err(fail("has no topic: write mqtt://host[:port]/topic".into()));
        }
        if topic.contains(['+', '#']) {
            return Err(fail(format!(
                "topic \"{topic}\" contains a wildcard ('+' or '#'), which cannot be published to"
            )));
        }
        if topic.contains('\0') || topic.len() > MAX_TOPIC_BYTES {
            return Err(fail("the topic is not a valid MQTT topic name".into()));
        }
        let user = Some(url.username())
            .filter(|u| !u.is_empty())
            .map(|u| decode(u).ok_or_else(|| fail("the user name is not UTF-8".into())))
            .transpose()?;
        let password = url
            .password()
            .map(|p| decode(p).ok_or_else(|| fail("the password is not UTF-8".into())))
            .transpose()?;
        let (version, qos) = mqtt_settings(notifier_info).map_err(fail)?;
        Ok(Endpoint::Mqtt(MqttEndpoint {
            authority,
            user,
            password,
            topic,
            version,
            qos,
        }))
    }

    pub fn authority(&self) -> &Authority {
        match self {
            Endpoint::Http(h) => &h.authority,
            Endpoint::Mqtt(m) => &m.authority,
        }
    }

    /// The endpoint as logs and errors show it: scheme, host, port and path; never the user
    /// information or the query, which may hold credentials.
    pub fn name(&self) -> String {
        match self {
            Endpoint::Http(h) => format!("{}{}", h.authority, h.url.path()),
            Endpoint::Mqtt(m) => format!("{}/{}", m.authority, m.topic),
        }
    }
}

fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Reads `MQTT-Version` (`mqtt3.1.1` by default) and `MQTT-QoS` (0 by default). Keys and values
/// are matched without regard to case; other keys are not ours and are left alone.
fn mqtt_settings(notifier_info: &[(String, String)]) -> Result<(MqttVersion, Qos), String> {
    let mut version = MqttVersion::V311;
    let mut qos = Qos::AtMostOnce;
    for (key, value) in notifier_info {
        let value = value.trim();
        if key.eq_ignore_ascii_case("MQTT-Version") {
            version = match value.to_ascii_lowercase().as_str() {
                "mqtt3.1.1" => MqttVersion::V311,
                "mqtt5.0" => MqttVersion::V5,
                _ => {
                    return Err(format!(
                        "notifierInfo MQTT-Version must be \"mqtt3.1.1\" or \"mqtt5.0\", got \"{value}\""
                    ))
                }
            };
        } else if key.eq_ignore_ascii_case("MQTT-QoS") {
            qos = match value {
                "0" => Qos::AtMostOnce,
                "1" => Qos::AtLeastOnce,
                "2" => Qos::ExactlyOnce,
                _ => {
                    return Err(format!(
                        "notifierInfo MQTT-QoS must be 0, 1 or 2, got \"{value}\""
                    ))
                }
            };
        }
    }
    Ok((version, qos))
}

/// A URI that did not parse, for an error message: quoted, see `redacted`.
fn shown(uri: &str) -> String {
    format!("\"{}\"", redacted(uri))
}

/// A URI without its user information (everything between "://" and the last '@' before the
/// path), cut to a readable length. Works on any string, parsable or not.
pub(crate) fn redacted(uri: &str) -> String {
    let uri = uri.trim();
    let without_user = match uri.find("://") {
        Some(start) => {
            let rest = &uri[start + 3..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}://{}", &uri[..start], &rest[at + 1..]),
                None => uri.to_string(),
            }
        }
        None => uri.to_string(),
    };
    let mut short: String = without_user.chars().take(200).collect();
    if short.len() < without_user.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What a URI reads as: its name and settings, or the reason it is refused.
    fn read(uri: &str, notifier_info: &[(&str, &str)]) -> String {
        match Endpoint::parse(uri, &info(notifier_info)) {
            Ok(e @ Endpoint::Http(_)) => format!("http {}", e.name()),
            Ok(Endpoint::Mqtt(m)) => format!(
                "mqtt {}/{} user={:?} password={:?} {:?} {:?}",
                m.authority, m.topic, m.user, m.password, m.version, m.qos
            ),
            Err(DeliveryError::Fail(why)) => format!("fail: {why}"),
            Err(DeliveryError::Retry(why)) => format!("retry?! {why}"),
        }
    }

    /// A URI, its notifierInfo, and what it reads as.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn uris_read_as_typed_endpoints_or_clear_refusals() {
        let cases: &[Case] = &[
            ("http://127.0.0.1:8080/notify?token=x", &[], "http http://127.0.0.1:8080/notify"),
            ("https://Example.org/n", &[], "http https://example.org:443/n"),
            ("http://u:secret@h/p", &[], "http http://h:80/p"),
            ("http://[::1]:9/", &[], "http http://[::1]:9/"),
            ("mqtt://broker/city/parking", &[], "mqtt mqtt://broker:1883/city/parking user=None password=None V311 AtMostOnce"),
            ("mqtts://broker:1884/t", &[("MQTT-Version", "mqtt5.0"), ("MQTT-QoS", "2")], "mqtt mqtts://broker:1884/t user=None password=None V5 ExactlyOnce"),
            ("MQTT://broker/t", &[("mqtt-qos", " 1 "), ("MQTT-Version", "MQTT3.1.1")], "mqtt mqtt://broker:1883/t user=None password=None V311 AtLeastOnce"),
            ("mqtt://user@broker/t", &[], "mqtt mqtt://broker:1883/t user=Some(\"user\") password=None V311 AtMostOnce"),
            ("mqtt://us%40er:p%3Ass@broker/a%20b/c", &[], "mqtt mqtt://broker:1883/a b/c user=Some(\"us@er\") password=Some(\"p:ss\") V311 AtMostOnce"),
            ("mqtt://[::1]:1883/t", &[("other", "x")], "mqtt mqtt://[::1]:1883/t user=None password=None V311 AtMostOnce"),
            ("mqtt://broker/a//b", &[], "mqtt mqtt://broker:1883/a//b user=None password=None V311 AtMostOnce"),
            ("mqtt://", &[], "fail: endpoint \"mqtt://\": has no host"),
            ("mqtt://host", &[], "fail: endpoint \"mqtt://host\": has no topic: write mqtt://host[:port]/topic"),
            ("mqtt://host/", &[], "fail: endpoint \"mqtt://host/\": has no topic: write mqtt://host[:port]/topic"),
            ("mqtt://host:99999/t", &[], "fail: endpoint \"mqtt://host:99999/t\": not a valid URI (invalid port number)"),
            ("mqtt://host:abc/t", &[], "fail: endpoint \"mqtt://host:abc/t\": not a valid URI (invalid port number)"),
            ("mqtt://host:0/t", &[], "fail: endpoint \"mqtt://host:0/t\": port 0 cannot be connected to"),
            ("mqtt://u:hunter2@host:99999/t", &[], "fail: endpoint \"mqtt://host:99999/t\": not a valid URI (invalid port number)"),
            ("http://[::1", &[], "fail: endpoint \"http://[::1\": not a valid URI (invalid IPv6 address)"),
            ("http://", &[], "fail: endpoint \"http://\": not a valid URI (empty host)"),
            ("", &[], "fail: endpoint \"\": not a valid URI (relative URL without a base)"),
            ("ftp://host/x", &[], "fail: endpoint \"ftp://host/x\": scheme \"ftp\" is not supported; use http, https, mqtt or mqtts"),
            ("mqtt://host/a/+/b", &[], "fail: endpoint \"mqtt://host/a/+/b\": topic \"a/+/b\" contains a wildcard ('+' or '#'), which cannot be published to"),
            ("mqtt://host/a#b", &[], "fail: endpoint \"mqtt://host/a#b\": '#' is a wildcard and cannot be part of a topic to publish to"),
            ("mqtt://host/a?b=c", &[], "fail: endpoint \"mqtt://host/a?b=c\": an MQTT endpoint takes no query ('?')"),
            ("mqtt://host/%FF", &[], "fail: endpoint \"mqtt://host/%FF\": the topic is not UTF-8 once percent-decoded"),
            ("mqtt://host/t", &[("MQTT-QoS", "3")], "fail: endpoint \"mqtt://host/t\": notifierInfo MQTT-QoS must be 0, 1 or 2, got \"3\""),
            ("mqtt://host/t", &[("MQTT-Version", "mqtt3.1")], "fail: endpoint \"mqtt://host/t\": notifierInfo MQTT-Version must be \"mqtt3.1.1\" or \"mqtt5.0\", got \"mqtt3.1\""),
        ];
        let mut wrong = Vec::new();
        for (uri, notifier_info, expected) in cases {
            let got = read(uri, notifier_info);
            if got != *expected {
                wrong.push(format!("{uri:?}\n  expected {expected}\n  got      {got}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[test]
    fn unparsable_uris_are_shown_without_user_information() {
        assert_eq!(shown("mqtt://a:b@c@h:x/t"), "\"mqtt://h:x/t\"");
        assert_eq!(shown("mqtt://h/t@x"), "\"mqtt://h/t@x\"");
        assert_eq!(shown("no scheme at all"), "\"no scheme at all\"");
        assert_eq!(shown(&"x".repeat(300)).chars().count(), 203);
    }
}
