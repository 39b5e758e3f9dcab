//! Who is asking: identities settled at the edge, from an API key or an OIDC bearer token, each
//! carrying its grants (roles per tenant). What an identity may then see and do inside a tenant
//! is decided by the engine's access rules; this crate only proves who it is and what it was
//! granted.

pub mod audit;
pub mod grants;
pub mod jwt;
pub mod keys;
pub mod policy;

use std::str::FromStr;
use std::sync::Arc;

pub use audit::{AuditEntry, AuditLog};
pub use grants::{Action, Grant, Grants, Role, TenantScope};
pub use jwt::{JsonFetch, JwtVerifier, OidcConfig};
pub use keys::{ApiKey, KeyRing, KEY_PREFIX};
pub use policy::{Access, PolicyBook, PolicyDoc};

/// How the broker authenticates requests (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone may do everything: only on loopback, or with `--insecure`.
    None,
    /// OIDC bearer tokens.
    Jwt,
    /// API keys.
    ApiKey,
    /// Either.
    JwtOrApiKey,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Jwt => "jwt",
            AuthMode::ApiKey => "apikey",
            AuthMode::JwtOrApiKey => "jwt+apikey",
        }
    }

    pub fn uses_jwt(self) -> bool {
        matches!(self, AuthMode::Jwt | AuthMode::JwtOrApiKey)
    }

    pub fn uses_keys(self) -> bool {
        matches!(self, AuthMode::ApiKey | AuthMode::JwtOrApiKey)
    }
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "none" => AuthMode::None,
            "jwt" => AuthMode::Jwt,
            "apikey" => AuthMode::ApiKey,
            "jwt+apikey" | "apikey+jwt" => AuthMode::JwtOrApiKey,
            other => {
                return Err(format!(
                    "auth {other:?}: use none, jwt, apikey or jwt+apikey"
                ))
            }
        })
    }
}

/// How an identity was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An API key, by its id.
    ApiKey(String),
    /// A bearer token of the configured provider.
    Token,
    /// No authentication (`auth = none`).
    Anonymous,
}

/// Longest partner name.
pub const MAX_PARTNER: usize = 128;

/// Checks a partner's name: 1 to [`MAX_PARTNER`] letters, digits and `-_.:`, as a key, a
/// token claim or a `partner:` subject gives it.
pub fn check_partner(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PARTNER
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a partner name: 1 to {MAX_PARTNER} letters, digits, '-', '_', '.' or ':'"
        ))
    }
}

/// Who is asking, and what they were granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`, or `key:<id>` for an API key.
    pub subject: String,
    /// The OAuth client (`azp` / `client_id`), when a token names one.
    pub client: Option<String>,
    /// The partner organisation it acts for (a partner city, an operator of devices), from
    /// its API key or from the token's partner claim: what `partner:` policies are for.
    pub partner: Option<String>,
    pub via: Via,
    pub grants: Grants,
}

impl Identity {
    /// The identity of every request when authentication is off: allowed everything.
    pub fn anonymous() -> Self {
        Identity {
            subject: "anonymous".into(),
            client: None,
            partner: None,
            via: Via::Anonymous,
            grants: Grants::new(vec![Grant {
                role: Role::Operator,
                scope: TenantScope::All,
            }]),
        }
    }

    /// Who this is, for logs and the audit trail.
    pub fn name(&self) -> String {
        match (&self.via, &self.client) {
            (Via::ApiKey(id), _) => format!("key:{id}"),
            (Via::Token, Some(c)) if *c != self.subject => format!("{} (client {c})", self.subject),
            _ => self.subject.clone(),
        }
    }
}

/// Why a request is not let through, or an administration request fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential where one is required (401).
    #[error("{0}")]
    Missing(String),
    /// A credential that does not prove anything (401).
    #[error("{0}")]
    Rejected(String),
    /// The identity lacks the right (403).
    #[error("{0}")]
    Forbidden(String),
    /// Bad input to an administration request (400).
    #[error("{0}")]
    Invalid(String),
    /// No such key (404).
    #[error("{0}")]
    NotFound(String),
    /// The provider's keys or the store cannot be reached now (503).
    #[error("{0}")]
    Unavailable(String),
}

/// The credential a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// `Authorization: Bearer …`: a token, or an API key sent as a bearer (`ihk_…`).
    Bearer(&'a str),
    /// `X-API-Key: …` or `Authorization: ApiKey …`.
    ApiKey(&'a str),
    None,
}

/// Settles identities for the configured mode.
pub struct Authenticator {
    mode: AuthMode,
    keys: Option<Arc<KeyRing>>,
    jwt: Option<Arc<JwtVerifier>>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, keys: Option<Arc<KeyRing>>, jwt: Option<Arc<JwtVerifier>>) -> Self {
        Authenticator { mode, keys, jwt }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The key ring, when API keys are in use (also for the administration endpoints).
    pub fn keys(&self) -> Option<&Arc<KeyRing>> {
        self.keys.as_ref()
    }

    /// The identity `credential` proves.
    pub async fn authenticate(&self, credential: Credential<'_>) -> Result<Identity, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(Identity::anonymous());
        }
        let key = |text: &str| -> Result<Identity, AuthError> {
            let ring = match (&self.keys, self.mode.uses_keys()) {
                (Some(r), true) => r,
                _ => {
                    return Err(AuthError::Rejected(
                        "this broker does not accept API keys; send a bearer token".into(),
                    ))
                }
            };
            let k = ring.verify(text)?;
            Ok(Identity {
                subject: format!("key:{}", k.id),
                client: Some(k.name.clone()),
                partner: k.partner.clone(),
                via: Via::ApiKey(k.id.clone()),
                grants: k.grants.clone(),
            })
        };
        match credential {
            Credential::None => Err(AuthError::Missing(
                match self.mode {
                    AuthMode::Jwt => "this request needs a bearer token (Authorization: Bearer …)",
                    AuthMode::ApiKey => {
                        "this request needs an API key (X-API-Key, or Authorization: Bearer ihk_…)"
                    }
                    _ => "this request needs a bearer token or an API key",
                }
                .into(),
            )),
            Credential::ApiKey(text) => key(text),
            Credential::Bearer(text) if text.starts_with(KEY_PREFIX) => key(text),
            Credential::Bearer(token) => match (&self.jwt, self.mode.uses_jwt()) {
                (Some(v), true) => v.verify(token).await,
                _ => Err(AuthError::Rejected(
                    "this broker does not accept bearer tokens; send an API key".into(),
                )),
            },
        }
    }
}
