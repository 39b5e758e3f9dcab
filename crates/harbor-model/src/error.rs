//! The error kinds of 6.3.2 and the one error type every layer returns.

use std::fmt;

/// Error types defined by ETSI GS CIM 009 6.3.2, plus the HTTP-level refusals the API needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    BadRequestData,
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    InternalError,
    TooComplexQuery,
    TooManyResults,
    LdContextNotAvailable,
    NoMultiTenantSupport,
    NonexistentTenant,
    Conflict,
    NotAcceptable,
    UnsupportedMediaType,
    PayloadTooLarge,
    MethodNotAllowed,
    /// The client did not send its request in time (no NGSI-LD type of its own).
    RequestTimeout,
    /// The identity may not do this (no NGSI-LD type of its own).
    Forbidden,
    /// A per-tenant or broker-wide quota (entities, subscriptions, registrations, stored
    /// `@context`s, tenants) would be exceeded. Not an NGSI-LD error type: its `type` is the
    /// project's own, as for the other refusals the spec does not define (`urn:infoharbor:…`).
    QuotaExceeded,
}

impl ErrorKind {
    /// The `type` URI of the ProblemDetails body.
    pub fn type_uri(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest",
            ErrorKind::BadRequestData => "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            ErrorKind::AlreadyExists => "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists",
            ErrorKind::OperationNotSupported => {
                "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported"
            }
            ErrorKind::ResourceNotFound => "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
            ErrorKind::InternalError => "https://uri.etsi.org/ngsi-ld/errors/InternalError",
            ErrorKind::TooComplexQuery => "https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery",
            ErrorKind::TooManyResults => "https://uri.etsi.org/ngsi-ld/errors/TooManyResults",
            ErrorKind::LdContextNotAvailable => {
                "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"
            }
            ErrorKind::NoMultiTenantSupport => {
                "https://uri.etsi.org/ngsi-ld/errors/NoMultiTenantSupport"
            }
            ErrorKind::NonexistentTenant => "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant",
            ErrorKind::Conflict => "https://uri.etsi.org/ngsi-ld/errors/Conflict",
            ErrorKind::NotAcceptable => "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable",
            ErrorKind::UnsupportedMediaType => {
                "https://uri.etsi.org/ngsi-ld/errors/UnsupportedMediaType"
            }
            ErrorKind::PayloadTooLarge => "https://uri.etsi.org/ngsi-ld/errors/PayloadTooLarge",
            ErrorKind::MethodNotAllowed => "https://uri.etsi.org/ngsi-ld/errors/MethodNotAllowed",
            ErrorKind::RequestTimeout => "urn:infoharbor:errors:RequestTimeout",
            ErrorKind::Forbidden => "urn:infoharbor:errors:Forbidden",
            ErrorKind::QuotaExceeded => "urn:infoharbor:errors:QuotaExceeded",
        }
    }

    /// A short human title for the ProblemDetails body.
    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "The request associated to the operation is syntactically invalid or includes wrong content",
            ErrorKind::BadRequestData => "The request includes input data which does not meet the requirements of the operation",
            ErrorKind::AlreadyExists => "The referred element already exists",
            ErrorKind::OperationNotSupported => "The operation is not supported",
            ErrorKind::ResourceNotFound => "The referred resource has not been found",
            ErrorKind::InternalError => "There has been an error during the operation execution",
            ErrorKind::TooComplexQuery => "The query is too complex to be processed",
            ErrorKind::TooManyResults => "The query produces too many results",
            ErrorKind::LdContextNotAvailable => "A remote JSON-LD @context could not be retrieved",
            ErrorKind::NoMultiTenantSupport => "The broker does not support multi-tenancy",
            ErrorKind::NonexistentTenant => "The addressed tenant does not exist",
            ErrorKind::Conflict => "The request conflicts with the current state of the resource",
            ErrorKind::NotAcceptable => "None of the accepted media types can be produced",
            ErrorKind::UnsupportedMediaType => "The request's media type is not supported",
            ErrorKind::PayloadTooLarge => "The request body is too large",
            ErrorKind::MethodNotAllowed => "The method is not allowed on this resource",
            ErrorKind::RequestTimeout => "The request did not arrive in time",
            ErrorKind::Forbidden => "The identity may not do this",
            ErrorKind::QuotaExceeded => "A quota of this broker would be exceeded",
        }
    }
}

/// An error a person can act on: the kind decides the status code, `detail` says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgsiError {
    pub kind: ErrorKind,
    pub detail: String,
}

pub type NgsiResult<T> = Result<T, NgsiError>;

impl NgsiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        NgsiError {
            kind,
            detail: detail.into(),
        }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequestData, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, detail)
    }
    pub fn already_exists(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InternalError, detail)
    }
    pub fn not_supported(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotSupported, detail)
    }
    pub fn quota(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::QuotaExceeded, detail)
    }
}

impl fmt::Display for NgsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for NgsiError {}
