//! Roles per tenant and what they allow.
//!
//! A grant is written `role@tenant`: `reader@sg-lta` is a reader in the tenant `sg-lta`,
//! `writer@*` a writer in every tenant, and a bare `reader` (or `reader@`) a reader in the default
//! tenant, the one a request without `NGSILD-Tenant` uses. `operator` is global and takes no
//! tenant. The same text is used in token claims, API keys and the CLI.
//!
//! | role | actions in its tenant |
//! |---|---|
//! | `reader` | read, history |
//! | `writer` | read, history, write |
//! | `subscriber` | read, subscribe |
//! | `tenant-admin` | read, history, write, subscribe, manage (registrations, purge, its own dead letters and hosted contexts) |
//! | `operator` | everything, in every tenant, and the broker's `/admin` endpoints |

use std::fmt;

use harbor_model::Tenant;
use serde::{Deserialize, Serialize};

/// A role a grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Writer,
    Subscriber,
    TenantAdmin,
    Operator,
}

/// What a request does, as the access rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Retrieve and query entities, discovery, registrations and hosted contexts.
    Read,
    /// Create, update, merge and delete entities and attributes, host contexts.
    Write,
    /// Subscriptions and subscriptions to registrations.
    Subscribe,
    /// The temporal API's reads.
    History,
    /// Registrations, purges, deleting hosted contexts, a tenant's dead letters.
    Manage,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Subscribe => "subscribe",
            Action::History => "history",
            Action::Manage => "manage",
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Subscriber => "subscriber",
            Role::TenantAdmin => "tenant-admin",
            Role::Operator => "operator",
        }
    }

    fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "reader" => Role::Reader,
            "writer" => Role::Writer,
            "subscriber" => Role::Subscriber,
            "tenant-admin" => Role::TenantAdmin,
            "operator" => Role::Operator,
            _ => return None,
        })
    }

    /// Whether the role allows `action` in a tenant it holds.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Reader => matches!(action, Read | History),
            Role::Writer => matches!(action, Read | History | Write),
            Role::Subscriber => matches!(action, Read | Subscribe),
            Role::TenantAdmin | Role::Operator => true,
        }
    }
}

/// Which tenants a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TenantScope {
    One(Tenant),
    All,
}

/// One role in one tenant (or all).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub role: Role,
    pub scope: TenantScope,
}

impl Grant {
    /// Reads `role@tenant`, `role@*`, `role` (default tenant) or `operator`.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let text = text.trim();
        let (role, tenant) = match text.split_once('@') {
            Some((r, t)) => (r, Some(t)),
            None => (text, None),
        };
        let role = Role::parse(role).ok_or_else(|| {
            format!(
                "grant {text:?}: unknown role {role:?}; use reader, writer, subscriber, tenant-admin or operator"
            )
        })?;
        let scope = match (role, tenant) {
            (Role::Operator, None | Some("*")) => TenantScope::All,
            (Role::Operator, Some(_)) => {
                return Err(format!(
                    "grant {text:?}: operator is global and takes no tenant"
                ))
            }
            (_, Some("*")) => TenantScope::All,
            (_, None) => TenantScope::One(Tenant::default_tenant()),
            (_, Some(t)) => TenantScope::One(
                Tenant::parse(t).map_err(|e| format!("grant {text:?}: {}", e.detail))?,
            ),
        };
        Ok(Grant { role, scope })
    }

    fn covers(&self, tenant: &Tenant) -> bool {
        match &self.scope {
            TenantScope::All => true,
            TenantScope::One(t) => t == tenant,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.scope, self.role) {
            (_, Role::Operator) => f.write_str("operator"),
            (TenantScope::All, r) => write!(f, "{}@*", r.as_str()),
            (TenantScope::One(t), r) if t.is_default() => f.write_str(r.as_str()),
            (TenantScope::One(t), r) => write!(f, "{}@{}", r.as_str(), t.as_str()),
        }
    }
}

impl Serialize for Grant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Grant::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Everything an identity was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grants(Vec<Grant>);

impl Grants {
    pub fn new(mut grants: Vec<Grant>) -> Self {
        grants.sort();
        grants.dedup();
        Grants(grants)
    }

    /// Reads a list of grant texts; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, String> {
        texts
            .iter()
            .map(|t| Grant::parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Grants::new)
    }

    /// Reads grants from a token claim, leaving out (and naming in the log) what is not a
    /// grant: providers put other roles in the same claim.
    pub fn from_claim<S: AsRef<str>>(texts: &[S]) -> Self {
        Grants::new(
            texts
                .iter()
                .filter_map(|t| Grant::parse(t.as_ref()).ok())
                .collect(),
        )
    }

    pub fn is_operator(&self) -> bool {
        self.0.iter().any(|g| g.role == Role::Operator)
    }

    /// Whether `action` is allowed in `tenant`.
    pub fn allows(&self, tenant: &Tenant, action: Action) -> bool {
        self.0
            .iter()
            .any(|g| g.covers(tenant) && g.role.allows(action))
    }

    /// Whether some grant holds in `tenant` at all.
    pub fn any_in(&self, tenant: &Tenant) -> bool {
        self.0.iter().any(|g| g.covers(tenant))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Tenant {
        Tenant::parse(name).unwrap()
    }

    #[test]
    fn grants_read_and_print_back() {
        for (text, shown) in [
            ("reader@sg-lta", "reader@sg-lta"),
            (" writer@* ", "writer@*"),
            ("subscriber", "subscriber"),
            ("subscriber@", "subscriber"),
            (
                "tenant-admin@city:parking/east",
                "tenant-admin@city:parking/east",
            ),
            ("operator", "operator"),
            ("operator@*", "operator"),
        ] {
            assert_eq!(Grant::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for (text, why) in [
            ("admin@x", "unknown role \"admin\""),
            ("operator@x", "operator is global"),
            ("reader@bad tenant", "not a valid tenant name"),
            ("", "unknown role"),
        ] {
            let err = Grant::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        use Action::*;
        let all = [Read, Write, Subscribe, History, Manage];
        let table = [
            (Role::Reader, vec![Read, History]),
            (Role::Writer, vec![Read, History, Write]),
            (Role::Subscriber, vec![Read, Subscribe]),
            (Role::TenantAdmin, all.to_vec()),
            (Role::Operator, all.to_vec()),
        ];
        for (role, allowed) in table {
            for a in all {
                assert_eq!(role.allows(a), allowed.contains(&a), "{role:?} {a:?}");
            }
        }
    }

    #[test]
    fn grants_hold_only_in_their_tenants() {
        let g = Grants::parse(&["reader@a", "writer", "subscriber@*"]).unwrap();
        assert!(g.allows(&t("a"), Action::Read));
        assert!(!g.allows(&t("a"), Action::Write));
        assert!(g.allows(&Tenant::default_tenant(), Action::Write));
        assert!(g.allows(&t("zzz"), Action::Subscribe));
        assert!(!g.allows(&t("zzz"), Action::History));
        assert!(!g.is_operator());
        let from_token = Grants::from_claim(&["offline_access", "uma_authorization", "reader@b"]);
        assert_eq!(from_token.iter().count(), 1);
        assert!(from_token.allows(&t("b"), Action::Read));
    }
}
