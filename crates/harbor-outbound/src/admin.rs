//! The client side of the broker's own `/admin/v1` endpoints, for the `infoharbor` command
//! line (e.g. `infoharbor dead-letters list`).

use std::time::Duration;

/// Largest answer read from the admin API.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One call: `method` (GET, POST or DELETE) on `url` with `headers` (`NGSILD-Tenant`,
/// `Authorization`) and a JSON body when given. Returns the status code and the body.
pub async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method} is not an HTTP method"))?;
    let mut req = client.request(method, url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "{url}: answer larger than {MAX_ANSWER_BYTES} bytes"
        ));
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
