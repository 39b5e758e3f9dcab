//! Requests to registered context sources (distributed operations, 4.3.6): plain HTTP GETs of
//! another broker's NGSI-LD API, through the egress wall, with a timeout and a size limit.

use std::time::Duration;

use reqwest::Url;

use crate::egress::{Egress, Purpose};

/// Largest answer accepted from a context source.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// A client for context sources; cheap to clone. Redirects are not followed.
#[derive(Clone)]
pub struct SourceClient {
    egress: Egress,
}

impl SourceClient {
    pub fn new(egress: Egress) -> Self {
        SourceClient { egress }
    }

    /// GETs `url` with `headers`: the JSON body of a 2xx, `None` for a 404, an error naming
    /// the source otherwise.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Option<serde_json::Value>, String> {
        let parsed = Url::parse(url).map_err(|e| format!("{url}: not a valid URL ({e})"))?;
        let client = self
            .egress
            .http_client(&parsed, Purpose::Source)
            .map_err(|r| r.to_string())?;
        let mut req = client.get(parsed).timeout(timeout);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| match crate::egress::refusal_in(&e) {
                Some(refused) => refused.to_string(),
                None => format!("{url}: {e}"),
            })?;
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
