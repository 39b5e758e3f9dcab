//! The one error type of this crate; the HTTP layer maps each kind to its ProblemDetails.

use harbor_model::{ErrorKind, NgsiError};

/// What can go wrong while resolving, compiling or storing a JSON-LD `@context`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonLdError {
    /// A remote `@context` could not be retrieved, or a reload failed (`LdContextNotAvailable`;
    /// the ETSI suite expects status 504 for it, 043_01 and 051_05).
    #[error("{0}")]
    NotAvailable(String),
    /// The `@context` (inline, posted or retrieved) is not a valid JSON-LD context
    /// (`BadRequestData`, as the suite expects in 5132_01 and 556_01).
    #[error("invalid @context: {0}")]
    Invalid(String),
    /// A `/jsonldContexts` entry does not exist (`ResourceNotFound`).
    #[error("{0}")]
    NotFound(String),
    /// A `/jsonldContexts` operation this entry does not allow, e.g. deleting the core
    /// context or reloading a Hosted one (`BadRequestData`).
    #[error("{0}")]
    NotAllowed(String),
    /// A context to store is larger than one may be (`PayloadTooLarge`, 413).
    #[error("{0}")]
    TooLarge(String),
    /// Storing the context would exceed a quota (`QuotaExceeded`).
    #[error("{0}")]
    Quota(String),
    /// The persistence hook refused a Hosted entry (`InternalError`).
    #[error("storing the @context failed: {0}")]
    Internal(String),
}

impl JsonLdError {
    /// The NGSI-LD error kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            JsonLdError::NotAvailable(_) => ErrorKind::LdContextNotAvailable,
            JsonLdError::Invalid(_) | JsonLdError::NotAllowed(_) => ErrorKind::BadRequestData,
            JsonLdError::NotFound(_) => ErrorKind::ResourceNotFound,
            JsonLdError::TooLarge(_) => ErrorKind::PayloadTooLarge,
            JsonLdError::Quota(_) => ErrorKind::QuotaExceeded,
            JsonLdError::Internal(_) => ErrorKind::InternalError,
        }
    }
}

impl From<JsonLdError> for NgsiError {
    fn from(e: JsonLdError) -> Self {
        NgsiError::new(e.kind(), e.to_string())
    }
}
