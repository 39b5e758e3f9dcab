//! Entity operations (5.6, 5.7): create, retrieve, query, update, append, partial update,
//! replace, merge, delete of entities and attributes.

use std::sync::Arc;

use harbor_jsonld::expand::{AttrFragment, EntityInput};
use harbor_model::{time, Attribute, Entity, NgsiError, NgsiResult, Tenant, Timestamp};
use harbor_query::TypeExpr;
use harbor_store::{Change, EntityQuery, Page, Paging};

use crate::merge::{
    append_into, apply_fragment, find_instance, merge_into, new_entity, put_instance, update_into,
};
use crate::{store_err, Engine};

/// A filter the engine runs over every match of a query before paging it.
pub type PostFilter<'a> = dyn Fn(Vec<Arc<Entity>>) -> Vec<Arc<Entity>> + Send + Sync + 'a;

/// An attribute that an update or append left alone, and why.
#[derive(Debug, Clone)]
pub struct NotUpdated {
    /// Expanded attribute name.
    pub attribute: String,
    pub reason: String,
}

/// Outcome of update / append (5.6.2, 5.6.3): 204 when `not_updated` is empty, else 207.
#[derive(Debug, Default, Clone)]
pub struct UpdateResult {
    pub updated: Vec<String>,
    pub not_updated: Vec<NotUpdated>,
}

/// An entity as a reader sees it at `now`: `None` once it has expired, expired attribute
/// instances removed.
pub fn visible(e: Arc<Entity>, now: Timestamp) -> Option<Arc<Entity>> {
    if e.expires_at.is_some_and(|t| t <= now) {
        return None;
    }
    let expired = |a: &Attribute| a.expires_at.is_some_and(|t| t <= now);
    if !e.instances().any(|(_, a)| expired(a)) {
        return Some(e);
    }
    let mut copy = (*e).clone();
    for list in copy.attrs.values_mut() {
        list.retain(|a| !expired(a));
    }
    copy.attrs.retain(|_, l| !l.is_empty());
    Some(Arc::new(copy))
}

fn not_found(id: &str, sel: Option<&TypeExpr>) -> NgsiError {
    match sel {
        None => NgsiError::not_found(format!("entity {id} does not exist")),
        Some(_) => NgsiError::not_found(format!(
            "entity {id} does not exist with the types selected"
        )),
    }
}

fn check_body_id(id: &str, input: &EntityInput) -> NgsiResult<()> {
    match &input.id {
        Some(body_id) if body_id != id => Err(NgsiError::bad_request(format!(
            "the payload's id {body_id} differs from the entity addressed, {id}"
        ))),
        _ => Ok(()),
    }
}

impl Engine {
    /// The current, visible entity, if any.
    pub fn current(&self, tenant: &Tenant, id: &str) -> NgsiResult<Option<Arc<Entity>>> {
        let e = self.store.get(tenant, id).map_err(store_err)?;
        Ok(e.and_then(|e| visible(e, time::now())))
    }

    /// Fails with NonexistentTenant when a reading operation names an unknown tenant.
    pub fn check_tenant(&self, tenant: &Tenant) -> NgsiResult<()> {
        if self.store.tenant_exists(tenant) {
            Ok(())
        } else {
            Err(NgsiError::new(
                harbor_model::ErrorKind::NonexistentTenant,
                format!("tenant \"{}\" does not exist", tenant.as_str()),
            ))
        }
    }

    /// Commits changes made under their entities' locks, each checked against the request's
    /// write rule first ([`crate::access`]).
    async fn commit(&self, tenant: &Tenant, changes: Vec<Change>) -> NgsiResult<()> {
        // Only a request with a rule pays for reading the entities as they are.
        if crate::access::active() {
            for c in &changes {
                let before = self.current(tenant, c.entity_id())?;
                let after = match c {
                    Change::Put(e) => Some(e),
                    Change::Delete(_) => None,
                };
                crate::access::check(before.as_deref(), after)?;
            }
        }
        self.store.commit(tenant, changes).await.map_err(store_err)
    }

    /// 5.6.1 Create Entity.
    pub async fn create_entity(&self, tenant: &Tenant, input: EntityInput) -> NgsiResult<String> {
        let now = time::now();
        let entity = new_entity(input, now)?;
        self.ensure_tenant(tenant).await?;
        let _g = self.locks.lock(tenant, &entity.id).await;
        if self.current(tenant, &entity.id)?.is_some() {
            return Err(NgsiError::already_exists(format!(
                "entity {} already exists",
                entity.id
            )));
        }
        let _place = self.reserve_entities(tenant, 1, false)?;
        let id = entity.id.clone();
        self.commit(tenant, vec![Change::Put(entity)]).await?;
        Ok(id)
    }

    /// 5.7.1 Retrieve Entity.
    pub fn retrieve_entity(&self, tenant: &Tenant, id: &str) -> NgsiResult<Arc<Entity>> {
        self.check_tenant(tenant)?;
        self.current(tenant, id)?.ok_or_else(|| not_found(id, None))
    }

    /// 5.7.2 Query Entities: every visible match, sorted by id.
    pub fn query_entities(&self, tenant: &Tenant, q: &EntityQuery) -> NgsiResult<Vec<Arc<Entity>>> {
        self.check_tenant(tenant)?;
        let now = time::now();
        let result = self.store.query(tenant, q).map_err(store_err)?;
        let exact = result.exact;
        Ok(result
            .entities
            .into_iter()
            .filter_map(|e| visible(e, now))
            .filter(|e| exact || q.matches(e))
            .collect())
    }

    /// 5.7.2 Query Entities: one page of the visible matches, in the paging's order.
    ///
    /// The store cuts the page from its indexes. What only the engine can evaluate comes
    /// after the store's answer, so such a query is paged here, over every match: the terms
    /// of `q` on Linked Entities (`rel{attr}`, 4.9), each target resolved in the same tenant,
    /// and `post`, a filter over the matches (what a partial subject may see).
    pub async fn query_page(
        &self,
        tenant: &Tenant,
        mut q: EntityQuery,
        paging: Paging,
        post: Option<&PostFilter<'_>>,
    ) -> NgsiResult<Page> {
        self.check_tenant(tenant)?;
        let now = time::now();
        let linked = q.q.take_if(|q| q.link_depth() > 0);
        if linked.is_none() && post.is_none() {
            let mut page = self
                .store
                .query_page(tenant, &q, &paging, now)
                .await
                .map_err(store_err)?;
            page.entities = std::mem::take(&mut page.entities)
                .into_iter()
                .filter_map(|e| visible(e, now))
                .collect();
            return Ok(page);
        }
        let found = self
            .store
            .query_page(tenant, &q, &Paging::all(), now)
            .await
            .map_err(store_err)?;
        let mut all: Vec<Arc<Entity>> = found
            .entities
            .into_iter()
            .filter_map(|e| visible(e, now))
            .collect();
        if let Some(linked) = linked {
            let resolve = |id: &str| {
                self.current(tenant, id)
                    .ok()
                    .flatten()
                    .map(|e| (*e).clone())
            };
            all.retain(|e| linked.matches_linked(e, &resolve));
        }
        if let Some(post) = post {
            all = post(all);
        }
        if let Some(order) = &paging.order {
            order.sort(&mut all);
        }
        Ok(Page::of(all, &paging))
    }

    /// 5.6.6 Delete Entity.
    pub async fn delete_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
    ) -> NgsiResult<()> {
        self.check_tenant(tenant)?;
        let _g = self.locks.lock(tenant, id).await;
        let current = self.current(tenant, id)?;
        if !current.is_some_and(|e| selected(&e, sel)) {
            return Err(not_found(id, sel));
        }
        self.commit(tenant, vec![Change::Delete(id.to_string())])
            .await
    }

    /// Runs `f` on a copy of the stored entity under its lock and commits the result. `sel`
    /// is the operation's type selection (4.17): an entity it does not select is not found.
    async fn modify<T>(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        f: impl FnOnce(&mut Entity, Timestamp) -> NgsiResult<(T, bool)>,
    ) -> NgsiResult<T> {
        self.check_tenant(tenant)?;
        let _g = self.locks.lock(tenant, id).await;
        let current = self
            .current(tenant, id)?
            .filter(|e| selected(e, sel))
            .ok_or_else(|| not_found(id, sel))?;
        let now = time::now();
        let mut e = (*current).clone();
        let (out, changed) = f(&mut e, now)?;
        if changed {
            e.modified_at = now;
            self.commit(tenant, vec![Change::Put(e)]).await?;
        }
        Ok(out)
    }

    /// 5.6.3 Append Entity Attributes (`noOverwrite` keeps existing instances).
    pub async fn append_attrs(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        input: EntityInput,
        no_overwrite: bool,
    ) -> NgsiResult<UpdateResult> {
        check_body_id(id, &input)?;
        self.modify(tenant, id, sel, |e, _now| {
            let r = append_into(e, input, no_overwrite);
            Ok((r, true))
        })
        .await
    }

    /// 5.6.2 Update Entity Attributes (partial update patch, 5.5.8).
    pub async fn update_attrs(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        input: EntityInput,
    ) -> NgsiResult<UpdateResult> {
        check_body_id(id, &input)?;
        self.modify(tenant, id, sel, |e, _now| {
            let before = e.clone();
            let r = update_into(e, input);
            let changed = *e != before;
            Ok((r, changed))
        })
        .await
    }

    /// 5.6.4 Partial Attribute Update: patches the addressed instance, or deletes it when the
    /// fragment is an NGSI-LD Null.
    pub async fn partial_attr_update(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        attr: &str,
        frag: AttrFragment,
    ) -> NgsiResult<()> {
        self.modify(tenant, id, sel, |e, now| {
            let list = e.attrs.get_mut(attr).ok_or_else(|| no_attr(id, attr))?;
            let i = find_instance(list, frag.dataset_id.as_deref())
                .ok_or_else(|| no_instance(id, attr, frag.dataset_id.as_deref()))?;
            if frag.delete {
                list.remove(i);
                if list.is_empty() {
                    e.attrs.remove(attr);
                }
            } else {
                list[i] = apply_fragment(&list[i], frag, attr, now)?;
            }
            Ok(((), true))
        })
        .await
    }

    /// 5.6.19 Replace Attribute.
    pub async fn replace_attr(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        attr: &str,
        instances: Vec<Attribute>,
    ) -> NgsiResult<()> {
        self.modify(tenant, id, sel, |e, _now| {
            let list = e.attrs.get_mut(attr).ok_or_else(|| no_attr(id, attr))?;
            for a in instances {
                if find_instance(list, a.dataset_id.as_deref()).is_none() {
                    return Err(no_instance(id, attr, a.dataset_id.as_deref()));
                }
                put_instance(list, a);
            }
            Ok(((), true))
        })
        .await
    }

    /// 5.6.5 Delete Entity Attribute: the default instance, one `datasetId`, or all.
    pub async fn delete_attr(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        attr: &str,
        dataset_id: Option<&str>,
        delete_all: bool,
    ) -> NgsiResult<()> {
        self.modify(tenant, id, sel, |e, _now| {
            let list = e.attrs.get_mut(attr).ok_or_else(|| no_attr(id, attr))?;
            if delete_all {
                list.clear();
            } else {
                let i = find_instance(list, dataset_id)
                    .ok_or_else(|| no_instance(id, attr, dataset_id))?;
                list.remove(i);
            }
            if list.is_empty() {
                e.attrs.remove(attr);
            }
            Ok(((), true))
        })
        .await
    }

    /// 5.6.5.4: "If the target Attribute is scope, remove the scope Attribute".
    pub async fn delete_scope(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
    ) -> NgsiResult<()> {
        self.modify(tenant, id, sel, |e, _now| {
            if e.scopes.is_empty() {
                return Err(NgsiError::not_found(format!("entity {id} has no scope")));
            }
            e.scopes.clear();
            Ok(((), true))
        })
        .await
    }

    /// 5.6.18 Replace Entity: new types and attributes, same id and `createdAt`.
    pub async fn replace_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        mut input: EntityInput,
    ) -> NgsiResult<()> {
        check_body_id(id, &input)?;
        input.id = Some(id.to_string());
        self.modify(tenant, id, sel, |e, now| {
            if input.types.is_empty() {
                input.types = e.types.clone();
            }
            let mut fresh = new_entity(input, now)?;
            fresh.created_at = e.created_at;
            *e = fresh;
            Ok(((), true))
        })
        .await
    }

    /// 5.6.17 Merge Entity: adds or merges attributes; an NGSI-LD Null deletes.
    pub async fn merge_entity(
        &self,
        tenant: &Tenant,
        id: &str,
        sel: Option<&TypeExpr>,
        input: EntityInput,
    ) -> NgsiResult<()> {
        check_body_id(id, &input)?;
        self.modify(tenant, id, sel, |e, now| {
            merge_into(e, input, now);
            Ok(((), true))
        })
        .await
    }
}

/// Whether the type selection (4.17) picks this entity.
fn selected(e: &Entity, sel: Option<&TypeExpr>) -> bool {
    sel.is_none_or(|t| t.matches(&e.types))
}

fn no_attr(id: &str, attr: &str) -> NgsiError {
    NgsiError::not_found(format!("entity {id} has no attribute {attr}"))
}

fn no_instance(id: &str, attr: &str, dataset_id: Option<&str>) -> NgsiError {
    NgsiError::not_found(format!(
        "attribute {attr} of entity {id} has no instance with datasetId {}",
        dataset_id.unwrap_or("(default)")
    ))
}
