//! Requests to registered context sources (distributed operations, 4.3.6): plain HTTP GETs of
//! another broker's NGSI-LD API, with a timeout and a size limit.

use std::time::Duration;

/// Largest answer accepted from a context source.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// A client for context sources; cheap to clone.
#[derive(Clone)]
pub struct SourceClient {
    client: reqwest::Client,
}

impl Default for SourceClient {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("infoharbor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the HTTP client");
        SourceClient { client }
    }
}

impl SourceClient {
    /// GETs `url` with `headers`: the JSON body of a 2xx, `None` for a 404, an error naming
    /// the source otherwise.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Option<serde_json::Value>, String> {
        let mut req = self.client.get(url).timeout(timeout);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > MAX_ANSWER_BYTES)
        {
            return Err(format!(
                "{url}: answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "{url}: answer larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("{url}: the answer is not JSON: {e}"))
    }
}
