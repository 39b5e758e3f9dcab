//! The client of the trace collector the operator names in `otlp_endpoint`, to which the
//! broker exports its spans (OTLP over HTTP). Like the admin client, it does not pass the
//! egress wall: the wall guards destinations that clients and remote parties can name, and
//! this one only the operator can, at start. It follows no redirect, uses no proxy from the
//! environment and gives up after its timeout, so it only ever talks to that one URL.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

/// The path under the collector's base URL that takes traces (OTLP/HTTP).
const TRACES_PATH: &str = "/v1/traces";

/// Largest answer read from the collector; it only ever answers a short status.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where traces go for the collector's base URL `endpoint` (`http://127.0.0.1:4318` gives
/// `http://127.0.0.1:4318/v1/traces`), or what is wrong with it, for the operator.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| format!("otlp_endpoint {endpoint:?} is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "otlp_endpoint {endpoint:?} must be an http:// or https:// URL (OTLP over HTTP)"
        ));
    }
    if url.host().is_none() {
        return Err(format!("otlp_endpoint {endpoint:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "otlp_endpoint {endpoint:?} holds credentials; give them as headers in \
             OTEL_EXPORTER_OTLP_HEADERS instead"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "otlp_endpoint {endpoint:?} must not have a query or a fragment"
        ));
    }
    let base = url.as_str().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        return Err(format!(
            "otlp_endpoint {endpoint:?} is the collector's base URL, without {TRACES_PATH}: \
             the broker adds it"
        ));
    }
    Ok(format!("{base}{TRACES_PATH}"))
}

/// Sends requests to the collector. Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct CollectorClient {
    client: reqwest::Client,
}

impl CollectorClient {
    /// A client whose every request, the answer's body included, ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("infoharbor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the collector's HTTP client: {e}"))?;
        Ok(CollectorClient { client })
    }

    /// POSTs `body` with `headers` to `url`; the answer's status, headers and body. Any status
    /// is an answer; only a failure to get one is an error.
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: impl Into<reqwest::Body>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), String> {
        let mut resp = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let headers = std::mem::take(resp.headers_mut());
        let mut answer = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "{url}: answer larger than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, headers, answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_what_is_wrong_with_them() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            (
                "http://127.0.0.1:4318",
                Ok("http://127.0.0.1:4318/v1/traces"),
            ),
            (
                "http://127.0.0.1:4318/",
                Ok("http://127.0.0.1:4318/v1/traces"),
            ),
            (
                "https://otel.city.example/collector",
                Ok("https://otel.city.example/collector/v1/traces"),
            ),
            ("localhost:4318", Err("must be an http:// or https://")),
            ("127.0.0.1:4318", Err("is not a valid URL")),
            (
                "grpc://collector:4317",
                Err("must be an http:// or https://"),
            ),
            ("not a url", Err("is not a valid URL")),
            ("http://127.0.0.1:4318/v1/traces", Err("without /v1/traces")),
            ("http://user:secret@collector:4318", Err("credentials")),
            ("http://collector:4318/?token=1", Err("query")),
        ];
        for (endpoint, want) in cases {
            match (traces_url(endpoint), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{endpoint}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{endpoint}: {got}"),
                (got, want) => panic!("{endpoint}: got {got:?}, want {want:?}"),
            }
        }
    }
}
