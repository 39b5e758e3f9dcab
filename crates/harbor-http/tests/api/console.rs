//! The operator console's files: served with their types, validators and policy, open to
//! anyone (they hold no data) while its event stream needs the same credential as a read.

use std::sync::Arc;

use axum::http::StatusCode;
use harbor_http::router;

use super::{call, state_for, with_api_keys};

#[tokio::test]
async fn the_console_is_served_with_its_headers_and_revalidated() {
    let app = super::app("console-files");
    let (status, _, h) = call(&app, "GET", "/console", None, vec![], &[]).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h["location"], "/console/");

    let (status, body, h) = call(&app, "GET", "/console/", None, vec![], &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body
        .as_str()
        .unwrap()
        .contains("<script type=\"module\" src=\"app.js\">"));
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    for rule in [
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    let etag = h["etag"].to_str().unwrap().to_string();

    let (status, body, h) = call(
        &app,
        "GET",
        "/console/",
        None,
        vec![],
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(body, serde_json::Value::Null);
    assert_eq!(h["etag"], etag.as_str());

    let table = [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/map.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ];
    for (path, ct) in table {
        let (status, _, h) =
            call(&app, "GET", path, None, vec![], &[("If-None-Match", &etag)]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(h["content-type"], ct, "{path}");
        assert_ne!(h["etag"], etag.as_str(), "{path} has its own validator");
    }
    let (status, _, _) = call(&app, "GET", "/console/missing.js", None, vec![], &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_keys_the_files_are_open_and_the_events_are_not() {
    let (mut state, store) = state_for("console-keys", 1000);
    let [reader] = with_api_keys(&mut state, store, [("reader", &["reader"])]).await;
    let app = router(Arc::new(state));
    let (status, _, _) = call(&app, "GET", "/console/app.js", None, vec![], &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = call(&app, "GET", "/console/events", None, vec![], &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The key passes the guard; this broker has no notification pipeline, hence no feed.
    let (status, body, _) = call(
        &app,
        "GET",
        "/console/events?type=OffStreetParking",
        None,
        vec![],
        &[("X-API-Key", &reader)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body, _) = call(
        &app,
        "GET",
        "/console/events?colour=red",
        None,
        vec![],
        &[("X-API-Key", &reader)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
