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

/// The request's `Via` (RFC 9110 7.6.3): every field line, in order, joined with `, `;
/// `None` when it has none. Lines that are not text are left out.
pub fn via(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
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

/// One media range of an `Accept` header, e.g. `application/*;q=0.5`.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f32,
}

impl MediaRange<'_> {
    /// How specifically this range names `mime` (2: exactly, 1: `type/*`, 0: `*/*`), or None
    /// when it does not match it.
    fn specificity(&self, mime: &str) -> Option<u8> {
        let (kind, subtype) = mime.split_once('/')?;
        match (self.kind, self.subtype) {
            ("*", "*") => Some(0),
            (k, "*") if k.eq_ignore_ascii_case(kind) => Some(1),
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => Some(2),
            _ => None,
        }
    }
}

/// Parses the media ranges of an `Accept` header. A malformed weight is not one of the HTTP
/// rules that could amend the choice, so the range keeps the default weight 1.
fn media_ranges(text: &str) -> Vec<MediaRange<'_>> {
    text.split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let (kind, subtype) = parts.next()?.trim().split_once('/')?;
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|v| v.trim().parse::<f32>().ok())
                .find(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            Some(MediaRange {
                kind: kind.trim(),
                subtype: subtype.trim(),
                q,
            })
        })
        .collect()
}

/// Picks the response media type from `Accept` (6.3.4); `geo` offers GeoJSON too.
///
/// The offers are application/json, application/ld+json and application/geo+json, in this
/// order. Each takes the weight of the most specific range that matches it (RFC 9110 5.3.2;
/// q=0 refuses it). The highest weight wins and the 6.3.4 list order breaks ties. Without
/// Accept, application/json is the answer.
pub fn accept(headers: &HeaderMap, geo: bool) -> NgsiResult<Media> {
    let text =
        match headers.get(header::ACCEPT).map(|v| v.to_str()) {
            None => return Ok(Media::Json),
            Some(Ok(t)) if t.trim().is_empty() => return Ok(Media::Json),
            Some(Ok(t)) => t,
            Some(Err(_)) => return Err(NgsiError::new(
                ErrorKind::NotAcceptable,
                "the Accept header is not ASCII text; use application/json or application/ld+json",
            )),
        };
    let ranges = media_ranges(text);
    let offers: &[Media] = if geo {
        &[Media::Json, Media::JsonLd, Media::GeoJson]
    } else {
        &[Media::Json, Media::JsonLd]
    };
    let weight = |m: Media| {
        ranges
            .iter()
            .filter_map(|r| r.specificity(m.as_str()).map(|s| (s, r.q)))
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map_or(0.0, |(_, q)| q)
    };
    let mut best: Option<(f32, Media)> = None;
    for &m in offers {
        let q = weight(m);
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, m));
        }
    }
    let offered = offers
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    best.map(|(_, m)| m).ok_or_else(|| {
        NgsiError::new(
            ErrorKind::NotAcceptable,
            format!("cannot answer in any media type of Accept: {text}; this resource is available as {offered}"),
        )
    })
}

/// Whether `Prefer` asks for `body=json` (6.3.6): the `@context` of a GeoJSON response then
/// travels in a Link header instead of the body.
pub fn prefers_json_body(headers: &HeaderMap) -> bool {
    headers
        .get_all("Prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("body=json"))
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
            // 6.3.4 list order breaks ties, not the order the client wrote.
            ("application/ld+json, application/json", Some(Media::Json)),
            ("application/geo+json, application/json", Some(Media::Json)),
            ("*/*", Some(Media::Json)),
            // The most specific range decides a type's weight (RFC 9110 5.3.2).
            ("application/json;q=0, */*", Some(Media::JsonLd)),
            ("*/*;q=0.9, application/ld+json;q=0.8", Some(Media::Json)),
            (
                "application/json;q=0, application/ld+json",
                Some(Media::JsonLd),
            ),
            // A malformed weight keeps the default weight.
            ("application/ld+json;q=notanumber", Some(Media::JsonLd)),
            (
                "application/ld+json;q=notanumber, application/json;q=0.5",
                Some(Media::JsonLd),
            ),
            ("APPLICATION/JSON", Some(Media::Json)),
        ];
        for (v, want) in cases {
            assert_eq!(accept(&with(header::ACCEPT, v), true).ok(), want, "{v}");
        }
        // Where GeoJSON is not offered, a range naming it does not win over one that is.
        let no_geo = [
            ("application/geo+json, application/json", Some(Media::Json)),
            (
                "application/geo+json;q=0.9, application/ld+json;q=0.1",
                Some(Media::JsonLd),
            ),
            ("application/geo+json", None),
        ];
        for (v, want) in no_geo {
            assert_eq!(accept(&with(header::ACCEPT, v), false).ok(), want, "{v}");
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
