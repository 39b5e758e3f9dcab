//! Access policies: what an identity without a role in a tenant may still see and do there.
//! A city shares part of its data with a partner by granting the partner's subject some
//! actions on some entities (by type, id pattern, scope or area) and, optionally, only some of
//! their attributes.
//!
//! Roles grant a whole tenant ([`crate::Grants`]); policies only ever add to them, never take
//! away. The decision for one request is an [`Access`]: everything, nothing, or the entities
//! and attributes its policies select. The broker filters by it: a subject sees the projection
//! of each entity onto what it may read, and counts and pages are those of the projection.
//!
//! Policies are durable records ([`harbor_store::AdminStore`], kind `policy`), validated when
//! written, and versioned: every change increments `version`, and a change that names the
//! version it replaces fails with a conflict when another change came first.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use harbor_model::{Entity, Tenant, Timestamp};
use harbor_query::{GeoQuery, ScopeQ};
use harbor_store::{AdminChange, AdminKind, AdminStore};
use parking_lot::RwLock;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Action, AuthError, Grant, Identity};

mod registration;

/// Policies at most, over all tenants.
pub const MAX_POLICIES: usize = 10_000;
/// Subjects, selectors and attributes of one policy, at most each.
pub const MAX_MEMBERS: usize = 256;

/// Who a policy is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// Identities holding this grant (`role:reader@kl-city`): the readers of a partner's tenant.
    Grant(Grant),
    /// An OAuth client (`client:kl-broker`), as tokens name it in `azp` or `client_id`.
    Client(String),
    /// One identity (`subject:<sub>`, or `subject:key:<id>` for an API key).
    Subject(String),
    /// Every identity acting for a partner (`partner:kl-city`): its API keys made with that
    /// partner, and tokens whose partner claim names it.
    Partner(String),
}

impl Subject {
    pub fn parse(text: &str) -> Result<Subject, String> {
        let text = text.trim();
        let (kind, value) = text.split_once(':').ok_or_else(|| {
            format!(
                "{text:?} is not a subject: write role:ROLE@TENANT, client:ID, subject:SUB or \
                 partner:NAME"
            )
        })?;
        if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
            return Err(format!(
                "{text:?}: the value after {kind}: must be 1 to 256 printable characters"
            ));
        }
        match kind {
            "role" => Grant::parse(value).map(Subject::Grant),
            "client" => Ok(Subject::Client(value.to_string())),
            "subject" => Ok(Subject::Subject(value.to_string())),
            "partner" => crate::check_partner(value)
                .map(Subject::Partner)
                .map_err(|e| format!("{text:?}: {e}")),
            other => Err(format!(
                "{text:?}: {other:?} is not a kind of subject; use role, client, subject or \
                 partner"
            )),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Subject::Grant(g) => format!("role:{g}"),
            Subject::Client(c) => format!("client:{c}"),
            Subject::Subject(s) => format!("subject:{s}"),
            Subject::Partner(p) => format!("partner:{p}"),
        }
    }

    pub fn covers(&self, who: &Identity) -> bool {
        match self {
            Subject::Grant(g) => who.grants.iter().any(|held| held == g),
            Subject::Client(c) => who.client.as_deref() == Some(c.as_str()),
            Subject::Subject(s) => who.subject == *s,
            Subject::Partner(p) => who.partner.as_deref() == Some(p.as_str()),
        }
    }
}

fn parse_action(text: &str) -> Result<Action, String> {
    Ok(match text.trim() {
        "read" => Action::Read,
        "write" => Action::Write,
        "subscribe" => Action::Subscribe,
        "history" => Action::History,
        "manage" => Action::Manage,
        other => {
            return Err(format!(
                "{other:?} is not an action; use read, write, subscribe, history or manage"
            ))
        }
    })
}

/// A policy as it is written and stored: names already expanded to IRIs by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDoc {
    pub id: String,
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tenant whose entities it opens ("" is the default tenant).
    #[serde(default)]
    pub tenant: String,
    pub subjects: Vec<String>,
    pub actions: Vec<String>,
    /// Entities it selects, any of; none selects every entity of the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<SelectorDoc>,
    /// Attributes it opens (expanded names); absent opens them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_by: Option<String>,
}

/// One entity selector: every member given must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorDoc {
    /// Expanded entity types, any of.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    /// A scope query (4.19), e.g. `/Singapore/#`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_q: Option<String>,
    /// An area the entity's location must lie within.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaDoc>,
}

/// A GeoJSON Polygon or MultiPolygon; the entity's `geoproperty` (default `location`) must be
/// within it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AreaDoc {
    #[serde(rename = "type")]
    pub geometry: String,
    pub coordinates: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoproperty: Option<String>,
}

/// A policy ready to decide.
#[derive(Debug)]
pub struct Policy {
    pub doc: PolicyDoc,
    tenant: Tenant,
    subjects: Vec<Subject>,
    actions: Vec<Action>,
    selectors: Vec<Selector>,
    attrs: Option<BTreeSet<String>>,
}

#[derive(Debug)]
struct Selector {
    types: Option<Vec<String>>,
    id_pattern: Option<Regex>,
    scope: Option<ScopeQ>,
    area: Option<GeoQuery>,
}

impl Selector {
    fn matches(&self, e: &Entity) -> bool {
        self.types
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| e.types.contains(t)))
            && self.id_pattern.as_ref().is_none_or(|p| p.is_match(&e.id))
            && self.scope.as_ref().is_none_or(|s| s.matches(&e.scopes))
            && self.area.as_ref().is_none_or(|a| a.matches(e))
    }
}

impl Policy {
    /// Checks and compiles a policy; errors name the member at fault.
    pub fn compile(doc: PolicyDoc) -> Result<Policy, String> {
        check_id(&doc.id)?;
        let tenant = Tenant::parse(&doc.tenant).map_err(|e| format!("tenant: {e}"))?;
        if doc.description.as_ref().is_some_and(|d| d.len() > 1024) {
            return Err("description: at most 1,024 characters".into());
        }
        let bounded = |name: &str, n: usize| {
            if n > MAX_MEMBERS {
                Err(format!("{name}: at most {MAX_MEMBERS} members, got {n}"))
            } else {
                Ok(())
            }
        };
        bounded("subjects", doc.subjects.len())?;
        bounded("actions", doc.actions.len())?;
        bounded("entities", doc.entities.len())?;
        if doc.subjects.is_empty() {
            return Err("subjects: name at least one subject".into());
        }
        if doc.actions.is_empty() {
            return Err("actions: name at least one action".into());
        }
        let subjects = doc
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| Subject::parse(s).map_err(|e| format!("subjects[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let actions = doc
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| parse_action(a).map_err(|e| format!("actions[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let selectors = doc
            .entities
            .iter()
            .enumerate()
            .map(|(i, s)| compile_selector(s).map_err(|e| format!("entities[{i}].{e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let attrs = match &doc.attrs {
            None => None,
            Some(a) => {
                bounded("attrs", a.len())?;
                if let Some(bad) = a.iter().find(|n| n.trim().is_empty()) {
                    return Err(format!("attrs: {bad:?} is not an attribute name"));
                }
                Some(a.iter().cloned().collect())
            }
        };
        Ok(Policy {
            doc,
            tenant,
            subjects,
            actions,
            selectors,
            attrs,
        })
    }

    fn applies(&self, who: &Identity, tenant: &Tenant, action: Action) -> bool {
        self.tenant == *tenant
            && self.actions.contains(&action)
            && self.subjects.iter().any(|s| s.covers(who))
    }

    fn selects(&self, e: &Entity) -> bool {
        self.selectors.is_empty() || self.selectors.iter().any(|s| s.matches(e))
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id: {id:?} must be 1 to 256 characters of letters, digits, '-', '_', '.' or ':'"
        ))
    }
}

fn compile_selector(s: &SelectorDoc) -> Result<Selector, String> {
    if s.types.is_none() && s.id_pattern.is_none() && s.scope_q.is_none() && s.area.is_none() {
        return Err("selector: give type, idPattern, scopeQ or area (or leave entities out to select every entity)".into());
    }
    let id_pattern = match &s.id_pattern {
        None => None,
        Some(p) => Some(
            regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("idPattern: {e}"))?,
        ),
    };
    let scope = match &s.scope_q {
        None => None,
        Some(q) => {
            Some(harbor_query::parse_scope_q(q).map_err(|e| format!("scopeQ: {}", e.detail))?)
        }
    };
    let area = match &s.area {
        None => None,
        Some(a) => {
            if !matches!(a.geometry.as_str(), "Polygon" | "MultiPolygon") {
                return Err(format!(
                    "area.type: {:?} is not Polygon or MultiPolygon",
                    a.geometry
                ));
            }
            Some(
                harbor_query::parse_geo_query(
                    "within",
                    &a.geometry,
                    &a.coordinates,
                    a.geoproperty.as_deref(),
                    &|n: &str| n.to_string(),
                )
                .map_err(|e| format!("area: {}", e.detail))?,
            )
        }
    };
    if let Some(types) = &s.types {
        if types.is_empty() || types.iter().any(|t| t.trim().is_empty()) {
            return Err("type: name at least one entity type".into());
        }
    }
    Ok(Selector {
        types: s.types.clone(),
        id_pattern,
        scope,
        area,
    })
}

/// What one identity may do with one action in one tenant.
#[derive(Debug, Clone)]
pub enum Access {
    /// A role grants the whole tenant.
    Full,
    /// These policies open part of it (never empty).
    Partial(Vec<Arc<Policy>>),
    /// Nothing.
    Denied,
}

impl Access {
    pub fn is_denied(&self) -> bool {
        matches!(self, Access::Denied)
    }

    pub fn is_full(&self) -> bool {
        matches!(self, Access::Full)
    }

    /// The attributes of `e` this access opens: `None` when it does not select `e` at all,
    /// `Some(None)` for all of them. The names are opened whether `e` has them or not: the
    /// history of an entity holds attributes it no longer has.
    pub fn opened(&self, e: &Entity) -> Option<Option<BTreeSet<&str>>> {
        match self {
            Access::Full => Some(None),
            Access::Denied => None,
            Access::Partial(policies) => {
                let mut any = false;
                let mut names = BTreeSet::new();
                for p in policies.iter().filter(|p| p.selects(e)) {
                    any = true;
                    match &p.attrs {
                        None => return Some(None),
                        Some(a) => names.extend(a.iter().map(String::as_str)),
                    }
                }
                any.then_some(Some(names))
            }
        }
    }

    /// Whether the access selects `e` at all.
    pub fn selects(&self, e: &Entity) -> bool {
        self.opened(e).is_some()
    }

    /// `e` as this access lets it be seen: only its opened attributes; `None` when it is not
    /// selected.
    pub fn project(&self, e: &Arc<Entity>) -> Option<Arc<Entity>> {
        match self.opened(e)? {
            None => Some(e.clone()),
            Some(names) => {
                if e.attrs.keys().all(|k| names.contains(k.as_str())) {
                    return Some(e.clone());
                }
                let mut seen = (**e).clone();
                seen.attrs.retain(|k, _| names.contains(k.as_str()));
                Some(Arc::new(seen))
            }
        }
    }

    /// Whether the attributes `names` of `e` may be written (or `e` created or deleted with
    /// them).
    pub fn may_write<'a>(&self, e: &Entity, mut names: impl Iterator<Item = &'a str>) -> bool {
        match self.opened(e) {
            None => false,
            Some(None) => true,
            Some(Some(open)) => names.all(|n| open.contains(n)),
        }
    }

    /// Whether a name is opened on some entity: attribute names a partial subject may filter
    /// and sort on are checked against the entities themselves, this is for discovery.
    pub fn opens_attribute(&self, name: &str) -> bool {
        match self {
            Access::Full => true,
            Access::Denied => false,
            Access::Partial(ps) => ps
                .iter()
                .any(|p| p.attrs.as_ref().is_none_or(|a| a.contains(name))),
        }
    }
}

/// The policies in force, kept in memory and written through to the store.
pub struct PolicyBook {
    store: Arc<dyn AdminStore>,
    by_id: RwLock<HashMap<String, Arc<Policy>>>,
    /// Serialises changes, so versions increase one at a time.
    change: tokio::sync::Mutex<()>,
}

impl PolicyBook {
    /// Loads every stored policy.
    pub async fn load(store: Arc<dyn AdminStore>) -> Result<PolicyBook, AuthError> {
        let mut by_id = HashMap::new();
        for (id, bytes) in store
            .admin_records(AdminKind::Policy)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
        {
            let doc: PolicyDoc = serde_json::from_slice(&bytes).map_err(|e| {
                AuthError::Unavailable(format!("stored policy {id} cannot be read: {e}"))
            })?;
            let p = Policy::compile(doc).map_err(|e| {
                AuthError::Unavailable(format!("stored policy {id} is not valid: {e}"))
            })?;
            by_id.insert(id, Arc::new(p));
        }
        Ok(PolicyBook {
            store,
            by_id: RwLock::new(by_id),
            change: tokio::sync::Mutex::new(()),
        })
    }

    /// The decision for `who` doing `action` in `tenant`.
    pub fn access(&self, who: &Identity, tenant: &Tenant, action: Action) -> Access {
        if who.grants.allows(tenant, action) {
            return Access::Full;
        }
        let found: Vec<Arc<Policy>> = self
            .by_id
            .read()
            .values()
            .filter(|p| p.applies(who, tenant, action))
            .cloned()
            .collect();
        if found.is_empty() {
            Access::Denied
        } else {
            Access::Partial(found)
        }
    }

    /// Every policy, or those of one tenant, by id.
    pub fn list(&self, tenant: Option<&Tenant>) -> Vec<PolicyDoc> {
        let mut out: Vec<PolicyDoc> = self
            .by_id
            .read()
            .values()
            .filter(|p| tenant.is_none_or(|t| p.tenant == *t))
            .map(|p| p.doc.clone())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    pub fn get(&self, id: &str) -> Option<Arc<Policy>> {
        self.by_id.read().get(id).cloned()
    }

    /// Creates (`replaces = None`) or replaces a policy. A replacement that names the
    /// version it replaces (`doc.version` > 0) fails with a conflict when that is not the
    /// current one.
    pub async fn put(
        &self,
        mut doc: PolicyDoc,
        create: bool,
        by: &str,
    ) -> Result<PolicyDoc, PutError> {
        let _one = self.change.lock().await;
        let current = self.get(&doc.id);
        match (&current, create) {
            (Some(_), true) => {
                return Err(PutError::Exists(format!(
                    "policy {} exists already",
                    doc.id
                )))
            }
            (None, false) => return Err(PutError::NotFound(format!("no policy {}", doc.id))),
            _ => {}
        }
        if current.is_none() && self.by_id.read().len() >= MAX_POLICIES {
            return Err(PutError::Invalid(format!(
                "the broker holds {MAX_POLICIES} policies, the most it keeps"
            )));
        }
        let now = harbor_model::time::now();
        match &current {
            Some(c) => {
                if doc.version != 0 && doc.version != c.doc.version {
                    return Err(PutError::Conflict(format!(
                        "policy {} is at version {}, not {}: read it again and reapply the change",
                        doc.id, c.doc.version, doc.version
                    )));
                }
                doc.version = c.doc.version + 1;
                doc.created_at = c.doc.created_at;
            }
            None => {
                doc.version = 1;
                doc.created_at = Some(now);
            }
        }
        doc.modified_at = Some(now);
        doc.modified_by = Some(by.to_string());
        let policy = Policy::compile(doc).map_err(PutError::Invalid)?;
        let record =
            serde_json::to_vec(&policy.doc).map_err(|e| PutError::Invalid(e.to_string()))?;
        self.store
            .commit_admin(vec![AdminChange::Put {
                kind: AdminKind::Policy,
                id: policy.doc.id.clone(),
                record,
            }])
            .await
            .map_err(|e| PutError::Unavailable(e.to_string()))?;
        let doc = policy.doc.clone();
        self.by_id.write().insert(doc.id.clone(), Arc::new(policy));
        Ok(doc)
    }

    /// Deletes a policy; the deleted one is returned.
    pub async fn delete(&self, id: &str) -> Result<PolicyDoc, PutError> {
        let _one = self.change.lock().await;
        let Some(current) = self.get(id) else {
            return Err(PutError::NotFound(format!("no policy {id}")));
        };
        self.store
            .commit_admin(vec![AdminChange::Delete {
                kind: AdminKind::Policy,
                id: id.to_string(),
            }])
            .await
            .map_err(|e| PutError::Unavailable(e.to_string()))?;
        self.by_id.write().remove(id);
        Ok(current.doc.clone())
    }
}

/// Why a policy change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grants, Via};
    use harbor_model::{AttrValue, Attribute};

    fn doc(v: Value) -> PolicyDoc {
        serde_json::from_value(v).unwrap()
    }

    fn who(sub: &str, client: Option<&str>, grants: &[&str]) -> Identity {
        Identity {
            subject: sub.into(),
            client: client.map(Into::into),
            partner: None,
            via: Via::Token,
            grants: Grants::from_claim(grants),
        }
    }

    fn entity(id: &str, ty: &str, attrs: &[&str]) -> Arc<Entity> {
        let now = harbor_model::time::now();
        let mut e = Entity {
            id: id.into(),
            types: vec![ty.into()],
            scopes: vec![],
            attrs: Default::default(),
            created_at: now,
            modified_at: now,
            expires_at: None,
        };
        for a in attrs {
            e.attrs.insert(
                (*a).into(),
                vec![Attribute::new(AttrValue::Property(Value::from(1)), now)],
            );
        }
        Arc::new(e)
    }

    #[test]
    fn bad_policies_are_refused_naming_the_member() {
        let cases = [
            (
                json_doc(r#"{"id":"p","subjects":[],"actions":["read"]}"#),
                "subjects",
            ),
            (
                json_doc(r#"{"id":"p","subjects":["client:x"],"actions":["look"]}"#),
                "actions[0]",
            ),
            (
                json_doc(r#"{"id":"p","subjects":["group:x"],"actions":["read"]}"#),
                "subjects[0]",
            ),
            (
                json_doc(r#"{"id":"p","subjects":["role:king@t"],"actions":["read"]}"#),
                "subjects[0]",
            ),
            (
                json_doc(r#"{"id":"p q","subjects":["client:x"],"actions":["read"]}"#),
                "id",
            ),
            (
                json_doc(
                    r#"{"id":"p","subjects":["client:x"],"actions":["read"],"entities":[{}]}"#,
                ),
                "entities[0]",
            ),
            (
                json_doc(
                    r#"{"id":"p","subjects":["client:x"],"actions":["read"],"entities":[{"idPattern":"("}]}"#,
                ),
                "entities[0].idPattern",
            ),
            (
                json_doc(
                    r#"{"id":"p","subjects":["client:x"],"actions":["read"],"entities":[{"scopeQ":"nope"}]}"#,
                ),
                "entities[0].scopeQ",
            ),
            (
                json_doc(
                    r#"{"id":"p","subjects":["client:x"],"actions":["read"],"entities":[{"area":{"type":"Point","coordinates":[1,2]}}]}"#,
                ),
                "entities[0].area.type",
            ),
        ];
        for (d, member) in cases {
            let e = Policy::compile(d.clone()).expect_err(&format!("{d:?}"));
            assert!(e.starts_with(member), "{member}: {e}");
        }
    }

    fn json_doc(text: &str) -> PolicyDoc {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_partial_access_projects_onto_opened_attributes() {
        let p = Policy::compile(doc(serde_json::json!({
            "id": "share", "tenant": "sg", "subjects": ["client:kl"], "actions": ["read"],
            "entities": [{"type": ["Parking"]}], "attrs": ["free"]
        })))
        .unwrap();
        let access = Access::Partial(vec![Arc::new(p)]);
        let parking = entity("urn:a", "Parking", &["free", "owner"]);
        let seen = access.project(&parking).unwrap();
        assert_eq!(seen.attrs.keys().collect::<Vec<_>>(), ["free"]);
        assert!(access
            .project(&entity("urn:b", "Camera", &["free"]))
            .is_none());
        assert!(access.may_write(&parking, ["free"].into_iter()));
        assert!(!access.may_write(&parking, ["owner"].into_iter()));
    }

    #[test]
    fn subjects_cover_identities_by_grant_client_and_subject() {
        let kl_reader = who("alice", Some("kl-app"), &["reader@kl"]);
        assert!(Subject::parse("role:reader@kl").unwrap().covers(&kl_reader));
        assert!(!Subject::parse("role:writer@kl").unwrap().covers(&kl_reader));
        assert!(Subject::parse("client:kl-app").unwrap().covers(&kl_reader));
        assert!(Subject::parse("subject:alice").unwrap().covers(&kl_reader));
        assert!(!Subject::parse("subject:bob").unwrap().covers(&kl_reader));
    }

    #[test]
    fn a_partner_subject_covers_every_identity_acting_for_that_partner() {
        let mut feed = who("key:0a1b", Some("kl parking feed"), &[]);
        let kl = Subject::parse("partner:kl-city").unwrap();
        assert!(!kl.covers(&feed), "no partner, no cover");
        feed.partner = Some("kl-city".into());
        assert!(kl.covers(&feed));
        assert!(!Subject::parse("partner:sg").unwrap().covers(&feed));
        assert_eq!(kl.to_text(), "partner:kl-city");
        let err = Subject::parse("partner:kl city").unwrap_err();
        assert!(err.contains("not a partner name"), "{err}");
    }
}
