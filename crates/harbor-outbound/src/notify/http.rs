//! HTTP(S) notifications: one POST of the rendered notification with its headers; a 2xx answer
//! confirms it. Redirects are not followed: a receiver that moved has to be updated in the
//! subscription, not chased.

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT,
};
use reqwest::StatusCode;
use tokio::time::Instant;

use super::endpoint::HttpEndpoint;
use super::{seconds, DeliveryError, Message};

/// How much of a 2xx answer's body is read so that the connection can be reused.
const DRAIN_BYTES: usize = 64 * 1024;
/// How much of an error answer's body is quoted in the error.
const QUOTE_BYTES: usize = 300;

pub(super) async fn post(
    client: &reqwest::Client,
    user_agent: &str,
    target: &HttpEndpoint,
    name: &str,
    msg: &Message,
) -> Result<(), DeliveryError> {
    let mut headers = headers(name, msg)?;
    match HeaderValue::from_str(user_agent) {
        Ok(agent) => {
            headers.insert(USER_AGENT, agent);
        }
        Err(_) => tracing::warn!("user_agent {user_agent:?} is not a valid header value"),
    }
    let deadline = Instant::now() + msg.timeout;
    let send = client
        .post(target.url.clone())
        .headers(headers)
        .body(msg.body.clone())
        .send();
    let response = match tokio::time::timeout_at(deadline, send).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(transport_error(name, e)),
        Err(_) => {
            return Err(DeliveryError::Retry(format!(
                "{name}: no answer within {}",
                seconds(msg.timeout)
            )))
        }
    };
    judge(name, response, deadline).await
}

fn headers(name: &str, msg: &Message) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::with_capacity(msg.headers.len() + 1);
    let content_type = HeaderValue::from_str(&msg.content_type).map_err(|_| {
        DeliveryError::Fail(format!(
            "{name}: content type {:?} cannot be an HTTP header value",
            msg.content_type
        ))
    })?;
    headers.insert(CONTENT_TYPE, content_type);
    for (key, value) in &msg.headers {
        let header = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
            DeliveryError::Fail(format!(
                "{name}: {key:?} cannot be an HTTP header name (check the endpoint's receiverInfo)"
            ))
        })?;
        // The value may be a secret (a receiverInfo token): never quote it.
        let value = HeaderValue::from_str(value).map_err(|_| {
            DeliveryError::Fail(format!(
                "{name}: the value of header {key:?} cannot be an HTTP header value (check the endpoint's receiverInfo)"
            ))
        })?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// Turns the receiver's answer into the outcome. The body of a 2xx answer is read (up to a
/// limit, and only until the deadline) so that the connection can carry the next notification.
async fn judge(
    name: &str,
    response: reqwest::Response,
    deadline: Instant,
) -> Result<(), DeliveryError> {
    let status = response.status();
    if status.is_success() {
        let _ = tokio::time::timeout_at(deadline, read_some(response, DRAIN_BYTES)).await;
        return Ok(());
    }
    let mut extra = String::new();
    for (header, label) in [(RETRY_AFTER, "Retry-After"), (LOCATION, "Location")] {
        if let Some(v) = response.headers().get(header).and_then(|v| v.to_str().ok()) {
            extra.push_str(&format!(", {label}: {}", quote(v.as_bytes())));
        }
    }
    let body = tokio::time::timeout_at(deadline, read_some(response, QUOTE_BYTES))
        .await
        .unwrap_or_default();
    if !body.is_empty() {
        extra.push_str(&format!(": {}", quote(&body)));
    }
    let answered = format!("{name}: answered {status}{extra}");
    Err(match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            DeliveryError::Retry(answered)
        }
        s if s.is_server_error() => DeliveryError::Retry(answered),
        s if s.is_redirection() => DeliveryError::Fail(format!(
            "{answered}; redirects are not followed, update the endpoint"
        )),
        _ => DeliveryError::Fail(answered),
    })
}

/// Up to `limit` bytes of the body; whatever was read when the body fails or ends.
async fn read_some(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(limit);
    body
}

/// Text from the receiver on one line, cut short.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

fn transport_error(name: &str, e: reqwest::Error) -> DeliveryError {
    // The URL may carry credentials; the message names the endpoint itself.
    let e = e.without_url();
    if let Some(refused) = crate::egress::refusal_in(&e) {
        return DeliveryError::Fail(format!("{name}: {refused}"));
    }
    let cause = root_cause(&e);
    if e.is_builder() {
        DeliveryError::Fail(format!("{name}: the request cannot be built: {cause}"))
    } else if e.is_connect() {
        DeliveryError::Retry(format!("{name}: cannot connect: {cause}"))
    } else {
        DeliveryError::Retry(format!("{name}: {cause}"))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn receiver_text_is_quoted_on_one_short_line() {
        assert_eq!(quote(b"  bad\r\nrequest\t"), "bad  request");
        assert_eq!(quote(&[b'x'; 500]).len(), 200);
        assert_eq!(quote(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
