//! The only place the broker opens connections to the outside: remote `@context` fetching and
//! notification delivery, forwarding to context sources. Every call passes the egress wall
//! (`egress`) and has a timeout and a size limit, except those to destinations only the
//! operator names: the broker's own admin API (`admin`) and the trace collector (`collector`).

pub mod admin;
pub mod collector;
pub mod egress;
mod notify;
pub mod sources;
mod tls;

pub use egress::{Egress, EgressPolicy, Purpose};
pub use notify::{DeliveryError, Message, Notifier, NotifierConfig};

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use harbor_jsonld::resolve::ContextFetcher;

/// Largest remote `@context` document accepted unless `with_max_bytes` says otherwise.
const MAX_CONTEXT_BYTES: usize = 1024 * 1024;
/// Redirects followed when fetching a `@context`, each one checked by the egress wall anew.
const MAX_REDIRECTS: usize = 3;

/// Fetches remote `@context` documents over HTTP(S) through the egress wall, answering first
/// from documents the operator preloaded (so a city without internet access resolves its
/// contexts).
pub struct HttpContextFetcher {
    egress: Egress,
    timeout: Duration,
    max_bytes: usize,
    preloaded: HashMap<String, serde_json::Value>,
}

impl HttpContextFetcher {
    pub fn new(timeout: Duration, egress: Egress) -> Self {
        HttpContextFetcher {
            egress,
            timeout,
            max_bytes: MAX_CONTEXT_BYTES,
            preloaded: HashMap::new(),
        }
    }

    /// Serves these documents by URL without any network access.
    pub fn with_preloaded(mut self, documents: HashMap<String, serde_json::Value>) -> Self {
        self.preloaded = documents;
        self
    }

    /// Refuses documents larger than `bytes`.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The body of `url`, following at most `MAX_REDIRECTS` redirects, all within one timeout.
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut current =
            reqwest::Url::parse(url).map_err(|e| format!("{url} is not a valid URL ({e})"))?;
        for _ in 0..=MAX_REDIRECTS {
            let client = self
                .egress
                .http_client(&current, Purpose::Context)
                .map_err(|r| format!("fetching {url}: {r}"))?;
            let send = client
                .get(current.clone())
                .header("Accept", "application/ld+json, application/json")
                .send();
            let resp = match tokio::time::timeout_at(deadline, send).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    return Err(match egress::refusal_in(&e) {
                        Some(r) => format!("fetching {url}: {r}"),
                        None => format!("fetching {url} failed: {e}"),
                    })
                }
                Err(_) => return Err(format!("fetching {url}: no answer within the timeout")),
            };
            let status = resp.status();
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| {
                        format!("fetching {url}: a redirect ({status}) without a usable Location")
                    })?;
                current = next;
                continue;
            }
            if !status.is_success() {
                return Err(format!("fetching {url} answered {status}"));
            }
            let limit = self.max_bytes;
            let too_large = || {
                format!(
                    "it is larger than the {limit} bytes this broker accepts for a remote @context"
                )
            };
            if resp.content_length().is_some_and(|n| n as usize > limit) {
                return Err(too_large());
            }
            let read = read_limited(resp, limit);
            return match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(Some(body))) => Ok(body),
                Ok(Ok(None)) => Err(too_large()),
                Ok(Err(e)) => Err(format!("reading {url} failed: {e}")),
                Err(_) => Err(format!("reading {url}: not complete within the timeout")),
            };
        }
        Err(format!(
            "fetching {url}: more than {MAX_REDIRECTS} redirects"
        ))
    }
}

/// The whole body if it has at most `limit` bytes, `None` as soon as it has more.
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[async_trait]
impl ContextFetcher for HttpContextFetcher {
    async fn fetch(&self, url: &str) -> Result<serde_json::Value, String> {
        if let Some(doc) = self.preloaded.get(url) {
            return Ok(doc.clone());
        }
        let bytes = self.get(url).await?;
        // A document that arrived but is not JSON is the client's error (BadRequestData), not an
        // unavailable context: the resolver rejects the null it gets.
        Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn preloaded_documents_need_no_network() {
        let url = "https://smartdatamodels.org/context.jsonld";
        let doc = serde_json::json!({"@context": {"OffStreetParking": "https://smartdatamodels.org/dataModel.Parking/OffStreetParking"}});
        let f = HttpContextFetcher::new(
            Duration::from_millis(200),
            Egress::new(EgressPolicy::open()),
        )
        .with_preloaded(HashMap::from([(url.to_string(), doc.clone())]));
        assert_eq!(f.fetch(url).await.unwrap(), doc);
        // Anything else goes to the network, which is closed here: a clear error, quickly.
        let err = f
            .fetch("http://127.0.0.1:9/missing.jsonld")
            .await
            .unwrap_err();
        assert!(err.contains("127.0.0.1:9"), "{err}");
    }
}
