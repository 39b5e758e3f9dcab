//! ProblemDetails (RFC 7807, 6.3.2): the one place errors become HTTP responses.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use harbor_model::{ErrorKind, NgsiError};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub NgsiError);

impl From<NgsiError> for ApiError {
    fn from(e: NgsiError) -> Self {
        ApiError(e)
    }
}

impl From<harbor_jsonld::JsonLdError> for ApiError {
    fn from(e: harbor_jsonld::JsonLdError) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::BadRequestData => StatusCode::BAD_REQUEST,
        ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::OperationNotSupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::ResourceNotFound | ErrorKind::NonexistentTenant => StatusCode::NOT_FOUND,
        ErrorKind::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::TooComplexQuery | ErrorKind::TooManyResults | ErrorKind::QuotaExceeded => {
            StatusCode::FORBIDDEN
        }
        ErrorKind::LdContextNotAvailable => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::NoMultiTenantSupport => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
    }
}

/// The ProblemDetails body of an error (also used inside batch results).
pub fn problem_json(e: &NgsiError) -> serde_json::Value {
    serde_json::json!({
        "type": e.kind.type_uri(),
        "title": e.kind.title(),
        "status": status_of(e.kind).as_u16(),
        "detail": e.detail,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.kind == ErrorKind::InternalError {
            tracing::error!(detail = %self.0.detail, "internal error");
        }
        let body = problem_json(&self.0).to_string();
        (
            status_of(self.0.kind),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

pub async fn not_found_route(uri: axum::http::Uri) -> ApiError {
    ApiError(NgsiError::new(
        ErrorKind::ResourceNotFound,
        format!("no resource at {}", uri.path()),
    ))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError(NgsiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not supported on {}", uri.path()),
    ))
}
