//! Rules every request meets before it reaches a handler: the Content-Length precondition of
//! POST, PATCH and PUT (6.3.4) and the echo of `NGSILD-Tenant` on every response (6.3.14).

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The tenant header, as requests and responses carry it.
pub const TENANT: &str = "NGSILD-Tenant";

/// Answers a body-carrying request without Content-Length with a bare 411, before anything
/// else (tenant, media type) is looked at; echoes the request's tenant on the response.
pub async fn preconditions(req: Request, next: Next) -> Response {
    // The operator's endpoints (`/admin`) are not NGSI-LD: a bodiless POST is fine there.
    let needs_length = matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT)
        && !req.uri().path().starts_with("/admin/");
    let tenant = req.headers().get(TENANT).cloned();
    let mut resp = if needs_length && !req.headers().contains_key(header::CONTENT_LENGTH) {
        // 6.3.4: "shall result in just a 411 HTTP status code (without any payload body)".
        StatusCode::LENGTH_REQUIRED.into_response()
    } else {
        next.run(req).await
    };
    if let Some(t) = tenant {
        resp.headers_mut().entry(TENANT).or_insert(t);
    }
    resp
}
