//! What a reader may see of the history of entities, and what a writer may change of it.
//!
//! Access to a history is decided on the entity it is the history of, as that entity is now:
//! the current entity, or, for one that is no longer current (deleted, or never created
//! through the core API), the entity as its history last recorded it (`last_recorded` below).
//! A reader then sees the instances of the attributes opened on that entity, and the scope's
//! history with it, as it sees the entity's scope. Queries evaluate their filters on what is
//! visible only, so that neither a match nor a count tells anything about what is hidden.
//!
//! A write to a history is checked by the request's write rule ([`crate::access`]) like a
//! change of the entity: the entity before (as above) and after the write must be selected,
//! every attribute whose instances it writes or removes must be opened for writing, and a
//! scope history it writes must keep the entity selected under each scope it gives. A history
//! the writer may not see answers as a missing one.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use harbor_jsonld::temporal::TemporalInput;
use harbor_model::temporal::{scopes_of, SCOPE_ATTR};
use harbor_model::{Attribute, Entity, ErrorKind, NgsiResult, TemporalHeader, Tenant};
use harbor_store::InstanceRange;

use super::{not_found, InstanceSelection};
use crate::{store_err, Engine};

/// The attributes of an entity whose history a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    All,
    /// These (expanded names), and the scope's history.
    Only(BTreeSet<String>),
}

impl Opened {
    pub fn opens(&self, name: &str) -> bool {
        match self {
            Opened::All => true,
            Opened::Only(names) => name == SCOPE_ATTR || names.contains(name),
        }
    }
}

/// What of the history of an entity the reader may see, decided on the entity (`None`:
/// nothing; the history does not exist for the reader).
pub type HistoryView<'a> = &'a dyn Fn(&Entity) -> Option<Opened>;

impl InstanceSelection {
    /// The selection kept to the opened attributes.
    pub(super) fn within(&self, opened: &Opened) -> Cow<'_, InstanceSelection> {
        let Opened::Only(names) = opened else {
            return Cow::Borrowed(self);
        };
        let attrs = match &self.attrs {
            None => names
                .iter()
                .cloned()
                .chain([SCOPE_ATTR.to_string()])
                .collect(),
            Some(asked) => asked.iter().filter(|n| opened.opens(n)).cloned().collect(),
        };
        Cow::Owned(InstanceSelection {
            attrs: Some(attrs),
            ..self.clone()
        })
    }
}

/// A temporal entity as an entity of its header alone: its id, types and scopes.
pub(super) fn bare(h: &TemporalHeader) -> Entity {
    Entity {
        id: h.id.clone(),
        types: h.types.clone(),
        scopes: h.scopes.clone(),
        attrs: BTreeMap::new(),
        created_at: h.created_at,
        modified_at: h.modified_at,
        expires_at: None,
    }
}

/// The attributes a temporal payload writes instances of, and the scopes its scope history
/// gives (checked as the entity's scope, not as an attribute).
pub(super) fn written(input: &TemporalInput) -> (Vec<&str>, Vec<Vec<String>>) {
    let mut touched: Vec<&str> = Vec::new();
    let mut scopes = Vec::new();
    for (name, a) in &input.attrs {
        if name == SCOPE_ATTR {
            scopes.push(scopes_of(a));
        } else if !touched.contains(&name.as_str()) {
            touched.push(name);
        }
    }
    (touched, scopes)
}

/// Checks a write to the history of entity `id` against the request's write rule, if it has
/// one: `before` is the entity the history belongs to (`None`: there is none yet), `after`
/// what the write makes of it (`None`: it goes with its history), `touched` the attributes
/// whose instances are written or removed, `scopes` the scopes of a scope history written.
pub(super) fn check_write(
    id: &str,
    before: Option<&Entity>,
    after: Option<&Entity>,
    touched: &[&str],
    scopes: &[Vec<String>],
) -> NgsiResult<()> {
    // The rule's not-found names an entity; a history answers as the Temporal API does.
    let hide = |e: harbor_model::NgsiError| match e.kind {
        ErrorKind::ResourceNotFound => not_found(id),
        _ => e,
    };
    crate::access::check_named(before, after, touched).map_err(hide)?;
    if let Some(after) = after {
        for s in scopes {
            let mut under = after.clone();
            under.scopes = s.clone();
            crate::access::check_named(before, Some(&under), &[]).map_err(hide)?;
        }
    }
    Ok(())
}

impl Engine {
    /// [`check_write`] for a write to `attrs` of an existing history that leaves the entity
    /// as it is. Only a request with a rule pays for reading the entity.
    pub(super) fn check_attrs_write(
        &self,
        tenant: &Tenant,
        h: &TemporalHeader,
        attrs: &[&str],
    ) -> NgsiResult<()> {
        if !crate::access::active() {
            return Ok(());
        }
        let before = self.history_subject(tenant, h)?;
        check_write(&h.id, Some(&before), Some(&before), attrs, &[])
    }

    /// The entity access to this history is decided on: the current entity, else the entity
    /// as last recorded.
    pub(super) fn history_subject(
        &self,
        tenant: &Tenant,
        h: &TemporalHeader,
    ) -> NgsiResult<Arc<Entity>> {
        match self.current(tenant, &h.id)? {
            Some(e) => Ok(e),
            None => Ok(Arc::new(self.last_recorded(tenant, h)?)),
        }
    }

    /// What `view` opens of this history; everything without a view.
    pub(super) fn opened(
        &self,
        tenant: &Tenant,
        h: &TemporalHeader,
        view: Option<HistoryView<'_>>,
    ) -> NgsiResult<Option<Opened>> {
        let Some(view) = view else {
            return Ok(Some(Opened::All));
        };
        Ok(view(&*self.history_subject(tenant, h)?))
    }

    /// An entity as its history last recorded it: the header's types and scopes (which a
    /// deletion leaves as they were), and each attribute as its newest instances that are
    /// not deletions, one per `datasetId`, reading back past the deletions at the top of the
    /// history (a deleted entity's history ends with one for each instance it had).
    fn last_recorded(&self, tenant: &Tenant, h: &TemporalHeader) -> NgsiResult<Entity> {
        let store = self.temporal()?;
        let mut attrs = BTreeMap::new();
        let newest_first = InstanceRange {
            newest_first: true,
            ..Default::default()
        };
        for name in store.temporal_attrs(tenant, &h.id).map_err(store_err)? {
            if name == SCOPE_ATTR {
                continue;
            }
            let mut live: Vec<Attribute> = Vec::new();
            // Datasets whose newest instances so far are deletions.
            let mut pending: Vec<Option<String>> = Vec::new();
            let mut seen: Vec<Option<String>> = Vec::new();
            store
                .visit_instances(tenant, &h.id, &name, newest_first, &mut |i| {
                    let ds = &i.attr.dataset_id;
                    let first = !seen.contains(ds);
                    if first {
                        seen.push(ds.clone());
                    }
                    let waiting = pending.iter().position(|p| p == ds);
                    match (i.deleted_at.is_some(), first, waiting) {
                        (true, true, _) => pending.push(ds.clone()),
                        (false, true, _) => live.push(i.attr),
                        (false, false, Some(k)) => {
                            pending.swap_remove(k);
                            live.push(i.attr);
                        }
                        _ => {}
                    }
                    !pending.is_empty()
                })
                .map_err(store_err)?;
            if !live.is_empty() {
                attrs.insert(name, live);
            }
        }
        Ok(Entity { attrs, ..bare(h) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_kept_to_the_opened_attributes_and_the_scope() {
        let only = Opened::Only(["a".to_string(), "b".to_string()].into());
        let sel = |attrs: Option<&[&str]>| InstanceSelection {
            attrs: attrs.map(|a| a.iter().map(|n| n.to_string()).collect()),
            ..Default::default()
        };
        // (attrs asked for, what is opened, the attrs selected)
        type Case<'a> = (Option<&'a [&'a str]>, &'a Opened, Option<Vec<&'a str>>);
        let cases: [Case<'_>; 4] = [
            (None, &Opened::All, None),
            (Some(&["a", "c"]), &Opened::All, Some(vec!["a", "c"])),
            (None, &only, Some(vec!["a", "b", SCOPE_ATTR])),
            (Some(&["a", "c"]), &only, Some(vec!["a"])),
        ];
        for (asked, opened, want) in cases {
            let s = sel(asked);
            let got = s.within(opened).attrs.clone();
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "{asked:?} within {opened:?}");
        }
    }
}
