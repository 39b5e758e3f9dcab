//! Tenants (4.14): every piece of state belongs to exactly one. The default tenant has no name.

use serde::{Deserialize, Serialize};

/// A tenant name as given in `NGSILD-Tenant`; the empty name is the default tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Tenant(String);

impl Tenant {
    /// Longest tenant name accepted.
    pub const MAX_LEN: usize = 256;

    /// The default tenant, used when a request carries no `NGSILD-Tenant` header.
    pub fn default_tenant() -> Self {
        Tenant(String::new())
    }

    /// Checks a tenant name from a request header.
    pub fn parse(name: &str) -> Result<Self, crate::NgsiError> {
        if name.is_empty() {
            return Ok(Self::default_tenant());
        }
        let ok = name.len() <= Self::MAX_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
        if !ok {
            return Err(crate::NgsiError::bad_request(format!(
                "NGSILD-Tenant \"{name}\" is not a valid tenant name: use at most {} letters, digits, '_', '-', '.', ':' or '/'",
                Self::MAX_LEN
            )));
        }
        Ok(Tenant(name.to_string()))
    }

    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
