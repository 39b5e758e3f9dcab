//! The only place the broker opens connections to the outside: remote `@context` fetching and
//! notification delivery now, federation later. Every call has a timeout and a size limit.

pub mod admin;
mod notify;
pub mod sources;

pub use notify::{DeliveryError, Message, Notifier, NotifierConfig};

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use harbor_jsonld::resolve::ContextFetcher;

/// Largest remote `@context` document accepted.
const MAX_CONTEXT_BYTES: usize = 1024 * 1024;

/// Fetches remote `@context` documents over HTTP(S), answering first from documents the
/// operator preloaded (so a city without internet access resolves its contexts).
pub struct HttpContextFetcher {
    client: reqwest::Client,
    preloaded: HashMap<String, serde_json::Value>,
}

impl HttpContextFetcher {
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("building the HTTP client");
        HttpContextFetcher {
            client,
            preloaded: HashMap::new(),
        }
    }

    /// Serves these documents by URL without any network access.
    pub fn with_preloaded(mut self, documents: HashMap<String, serde_json::Value>) -> Self {
        self.preloaded = documents;
        self
    }
}

#[async_trait]
impl ContextFetcher for HttpContextFetcher {
    async fn fetch(&self, url: &str) -> Result<serde_json::Value, String> {
        if let Some(doc) = self.preloaded.get(url) {
            return Ok(doc.clone());
        }
        let resp = self
            .client
            .get(url)
            .header("Accept", "application/ld+json, application/json")
            .send()
            .await
            .map_err(|e| format!("fetching {url} failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("fetching {url} answered {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > MAX_CONTEXT_BYTES)
        {
            return Err(format!("{url} is larger than {MAX_CONTEXT_BYTES} bytes"));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {url} failed: {e}"))?;
        if bytes.len() > MAX_CONTEXT_BYTES {
            return Err(format!("{url} is larger than {MAX_CONTEXT_BYTES} bytes"));
        }
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
        let f = HttpContextFetcher::new(Duration::from_millis(200))
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
