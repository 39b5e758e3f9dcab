//! The operator console at `/console` (ADR 0015): ES modules, a stylesheet and one page, built
//! into the binary from `crates/harbor-http/console/` and served as they are, with no build
//! step. The console reads and writes only through the public NGSI-LD API and the `/admin`
//! endpoints, with the credential its operator enters; the one endpoint of its own is the
//! live feed of changes (`events`), filtered by the same access policies as reads.

mod events;

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::SharedState;

pub use events::{end_streams, MAX_STREAMS};

/// One file of the console.
struct Asset {
    name: &'static str,
    body: &'static [u8],
    mime: &'static str,
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("../../console/", $name)),
            mime: $mime,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console; `index.html` is also served at `/console/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("map.js", JS),
    asset!("cluster.js", JS),
    asset!("entities.js", JS),
    asset!("chart.js", JS),
    asset!("history.js", JS),
    asset!("live.js", JS),
    asset!("deliveries.js", JS),
];

/// What the page may load and run: its own scripts, styles and API only; images also from
/// the tile server an operator configures, whose address the broker does not know.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data: http: https:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A strong validator per asset: the FNV-1a hash of its bytes.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let hash = crate::fnv1a(a.body);
            HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("an ETag is ASCII")
        })
        .collect()
});

/// Total size of the console's files, in bytes (before compression).
pub fn size() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// The console's routes: its files and the live feed.
pub fn routes(r: Router<SharedState>) -> Router<SharedState> {
    let r = r
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|req: Request| serve(0, req)))
        .route("/console/events", get(events::stream));
    ASSETS.iter().enumerate().fold(r, |r, (i, a)| {
        r.route(
            &format!("/console/{}", a.name),
            get(move |req: Request| serve(i, req)),
        )
    })
}

/// Whether `path` is one of the console's files, which anyone may load: they hold no data.
pub fn is_asset(path: &str) -> bool {
    path == "/console"
        || path == "/console/"
        || path
            .strip_prefix("/console/")
            .is_some_and(|name| ASSETS.iter().any(|a| a.name == name))
}

/// The live feed's path, which reads entities as a query does.
pub const EVENTS: &str = "/console/events";

async fn serve(i: usize, req: Request) -> Response {
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime))],
            asset.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag.clone());
    // Revalidated on every load (a 304 when unchanged): names carry no version, so an
    // upgraded broker must never leave a browser on the old modules.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_stays_small() {
        // ADR 0015 allows 1 MB gzipped; uncompressed it stays far below that.
        assert!(size() < 1024 * 1024, "console is {} bytes", size());
    }

    #[test]
    fn assets_are_known_and_nothing_else() {
        let table = [
            ("/console", true),
            ("/console/", true),
            ("/console/app.js", true),
            ("/console/index.html", true),
            ("/console/secret.js", false),
            ("/console/events", false),
            ("/consoles/app.js", false),
        ];
        for (path, want) in table {
            assert_eq!(is_asset(path), want, "{path}");
        }
    }
}
