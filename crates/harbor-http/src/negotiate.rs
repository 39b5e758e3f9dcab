//! Request headers into types: tenant, the JSON-LD `Link` header, `Accept` and `Content-Type`
//! negotiation (6.3.4 – 6.3.6).

use axum::http::{header, HeaderMap};
use harbor_model::{ErrorKind, NgsiError, NgsiResult, Tenant};

pub const JSON: &str = "application/json";
pub const JSON_LD: &str = "application/ld+json";
pub const GEO_JSON: &str = "application/geo+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// The media type a response is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Json,
    JsonLd,
    GeoJson,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Json => JSON,
            Media::JsonLd => JSON_LD,
            Media::GeoJson => GEO_JSON,
        }
    }
}

/// The tenant named by `NGSILD-Tenant` (the default tenant when absent).
pub fn tenant(headers: &HeaderMap) -> NgsiResult<Tenant> {
    match headers.get("NGSILD-Tenant") {
        None => Ok(Tenant::default_tenant()),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| NgsiError::bad_request("NGSILD-Tenant must be ASCII text"))?;
            Tenant::parse(s.trim())
        }
    }
}

/// The `@context` URL of a JSON-LD `Link` header, if the request has one.
pub fn link_context(headers: &HeaderMap) -> NgsiResult<Option<String>> {
    for value in headers.get_all(header::LINK) {
        let text = value
            .to_str()
            .map_err(|_| NgsiError::bad_request("the Link header must be ASCII text"))?;
        for link in split_links(text) {
            let mut parts = link.split(';');
            let target = parts.next().unwrap_or("").trim();
            let is_context = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .is_some_and(|r| r.trim_matches('"') == CONTEXT_REL)
            });
            if !is_context {
                continue;
            }
            let Some(url) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                return Err(NgsiError::bad_request(format!(
                    "the JSON-LD Link header target must be written <URL>, got {target}"
                )));
            };
            if !harbor_jsonld::expand::is_uri(url) {
                return Err(NgsiError::bad_request(format!(
                    "the JSON-LD Link header names \"{url}\", which is not a URL"
                )));
            }
            return Ok(Some(url.to_string()));
        }
    }
    Ok(None)
}

/// Splits a Link header value at commas that are outside `<...>`.
fn split_links(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Picks the response media type from `Accept` (6.3.4); `geo` allows GeoJSON.
pub fn accept(headers: &HeaderMap, geo: bool) -> NgsiResult<Media> {
    let Some(v) = headers.get(header::ACCEPT) else {
        return Ok(Media::Json);
    };
    let text = v.to_str().unwrap_or("");
    if text.trim().is_empty() {
        return Ok(Media::Json);
    }
    let mut best: Option<(f32, usize, Media)> = None;
    for (pos, item) in text.split(',').enumerate() {
        let mut parts = item.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let media = match mime.as_str() {
            JSON | "application/*" | "*/*" => Some(Media::Json),
            JSON_LD => Some(Media::JsonLd),
            GEO_JSON if geo => Some(Media::GeoJson),
            _ => None,
        };
        let Some(media) = media else { continue };
        // Higher q wins; on a tie, the more specific type, then the first listed.
        let specific = usize::from(!mime.contains('*'));
        let better = match best {
            None => true,
            Some((bq, bs, _)) => q > bq || (q == bq && specific > bs),
        };
        if better {
            best = Some((q, specific, media));
        }
        let _ = pos;
    }
    best.map(|(_, _, m)| m).ok_or_else(|| {
        NgsiError::new(
            ErrorKind::NotAcceptable,
            format!("cannot answer in any media type of Accept: {text}; use application/json or application/ld+json"),
        )
    })
}

/// The kind of body a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    JsonLd,
    MergePatch,
}

/// Checks `Content-Type` (6.3.5). `merge_patch` allows application/merge-patch+json.
pub fn content_type(headers: &HeaderMap, merge_patch: bool) -> NgsiResult<BodyKind> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        JSON => Ok(BodyKind::Json),
        JSON_LD => Ok(BodyKind::JsonLd),
        MERGE_PATCH if merge_patch => Ok(BodyKind::MergePatch),
        "" => Err(NgsiError::new(
            ErrorKind::UnsupportedMediaType,
            "the request has no Content-Type: send application/json or application/ld+json",
        )),
        other => Err(NgsiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Type {other} is not supported: send application/json or application/ld+json"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_precedence() {
        let cases = [
            ("application/json", Some(Media::Json)),
            ("application/ld+json", Some(Media::JsonLd)),
            ("*/*", Some(Media::Json)),
            (
                "application/ld+json;q=0.5, application/json;q=0.9",
                Some(Media::Json),
            ),
            (
                "application/json;q=0.5, application/ld+json",
                Some(Media::JsonLd),
            ),
            ("text/html, application/*;q=0.1", Some(Media::Json)),
            ("application/geo+json", Some(Media::GeoJson)),
            ("text/html", None),
            ("application/json;q=0", None),
        ];
        for (v, want) in cases {
            assert_eq!(accept(&with(header::ACCEPT, v), true).ok(), want, "{v}");
        }
    }

    #[test]
    fn link_header() {
        let h = with(
            header::LINK,
            "<https://example.org/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"",
        );
        assert_eq!(
            link_context(&h).unwrap().as_deref(),
            Some("https://example.org/ctx.jsonld")
        );
        let other = with(header::LINK, "<https://example.org/x>; rel=\"next\"");
        assert_eq!(link_context(&other).unwrap(), None);
        let bad = with(
            header::LINK,
            "<not a url>; rel=\"http://www.w3.org/ns/json-ld#context\"",
        );
        assert!(link_context(&bad).is_err());
    }
}
