//! Batch operations (5.6.7 – 5.6.10, 5.6.20): every item succeeds or fails on its own, all
//! successful items are committed together in one durable commit.

use std::collections::HashMap;

use harbor_jsonld::expand::EntityInput;
use harbor_model::{time, Entity, NgsiError, NgsiResult, Tenant, Timestamp};
use harbor_store::Change;

use crate::entities::visible;
use crate::merge::{append_into, merge_into, new_entity, update_into};
use crate::{store_err, Engine};

/// A batch item that failed.
#[derive(Debug, Clone)]
pub struct BatchError {
    pub entity_id: String,
    pub error: NgsiError,
}

/// Outcome of a batch operation (5.2.17 BatchOperationResult).
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Ids of the entities the operation succeeded on.
    pub success: Vec<String>,
    /// Of those, the ids that were created (upsert).
    pub created: Vec<String>,
    pub errors: Vec<BatchError>,
}

/// A batch item as parsed by the caller: the payload, or why it could not be read.
pub type BatchItem = Result<EntityInput, BatchError>;

/// What to do with each item of a write batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    Create,
    /// Upsert; `true`: replace existing entities, `false`: update them (append attributes).
    Upsert {
        replace: bool,
    },
    /// Update existing entities; `true`: noOverwrite.
    Update {
        no_overwrite: bool,
    },
    Merge,
}

impl Engine {
    fn check_batch_size(&self, n: usize) -> NgsiResult<()> {
        if n > self.limits.max_batch {
            return Err(NgsiError::bad_request(format!(
                "the batch has {n} entities; at most {} are accepted per request",
                self.limits.max_batch
            )));
        }
        Ok(())
    }

    /// Runs a write batch.
    pub async fn batch_write(
        &self,
        tenant: &Tenant,
        mode: BatchMode,
        items: Vec<BatchItem>,
    ) -> NgsiResult<BatchResult> {
        self.check_batch_size(items.len())?;
        // Create and upsert may bring the tenant into existence, but only once an item is
        // actually written to it (below); the others need it to exist already.
        let creates_tenant = matches!(mode, BatchMode::Create | BatchMode::Upsert { .. });
        if !creates_tenant {
            self.check_tenant(tenant)?;
        }
        let ids: Vec<String> = items
            .iter()
            .filter_map(|i| i.as_ref().ok()?.id.clone())
            .collect();
        let _guards = self
            .locks
            .lock_many(tenant, ids.iter().map(String::as_str))
            .await;
        let now = time::now();
        let mut result = BatchResult::default();
        let mut overlay: HashMap<String, Option<Entity>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for item in items {
            let input = match item {
                Ok(i) => i,
                Err(e) => {
                    result.errors.push(e);
                    continue;
                }
            };
            let Some(id) = input.id.clone() else {
                result.errors.push(BatchError {
                    entity_id: String::new(),
                    error: NgsiError::bad_request("a batch entity has no \"id\""),
                });
                continue;
            };
            let current = match overlay.get(&id) {
                Some(e) => e.clone(),
                None => self.current(tenant, &id)?.map(|e| (*e).clone()),
            };
            let applied = apply(mode, current.clone(), input, now).and_then(|a| {
                crate::access::check(current.as_ref(), Some(&a.entity))?;
                Ok(a)
            });
            match applied {
                Ok(Applied {
                    entity,
                    created,
                    partial,
                }) => {
                    if created {
                        result.created.push(id.clone());
                    }
                    match partial {
                        Some(error) => result.errors.push(BatchError {
                            entity_id: id.clone(),
                            error,
                        }),
                        None => result.success.push(id.clone()),
                    }
                    if !overlay.contains_key(&id) {
                        order.push(id.clone());
                    }
                    overlay.insert(id, Some(entity));
                }
                Err(error) => result.errors.push(BatchError {
                    entity_id: id,
                    error,
                }),
            }
        }
        // Entities beyond the entity quota are not created; each gets its own error.
        let places = self.reserve_entities(tenant, result.created.len(), true)?;
        let refused = match self.quotas().entities {
            0 => Vec::new(),
            _ => result.created.split_off(places.count),
        };
        for id in refused {
            overlay.remove(&id);
            result.success.retain(|s| *s != id);
            result.errors.retain(|e| e.entity_id != id);
            result.errors.push(BatchError {
                error: self.entities_exceeded(tenant),
                entity_id: id,
            });
        }
        let changes: Vec<Change> = order
            .into_iter()
            .filter_map(|id| overlay.remove(&id).flatten().map(Change::Put))
            .collect();
        if !changes.is_empty() {
            if creates_tenant {
                self.ensure_tenant(tenant).await?;
            }
            self.store
                .commit(tenant, changes)
                .await
                .map_err(store_err)?;
        }
        Ok(result)
    }

    /// 5.6.10 Batch Entity Delete.
    pub async fn batch_delete(&self, tenant: &Tenant, ids: Vec<String>) -> NgsiResult<BatchResult> {
        self.check_batch_size(ids.len())?;
        self.check_tenant(tenant)?;
        let _guards = self
            .locks
            .lock_many(tenant, ids.iter().map(String::as_str))
            .await;
        let mut result = BatchResult::default();
        let mut changes = Vec::new();
        for id in ids {
            let current = self.current(tenant, &id)?;
            if let Some(e) = current.as_deref().filter(|_| !result.success.contains(&id)) {
                if let Err(error) = crate::access::check(Some(e), None) {
                    result.errors.push(BatchError {
                        error,
                        entity_id: id,
                    });
                    continue;
                }
                changes.push(Change::Delete(id.clone()));
                result.success.push(id);
            } else {
                result.errors.push(BatchError {
                    error: NgsiError::not_found(format!("entity {id} does not exist")),
                    entity_id: id,
                });
            }
        }
        if !changes.is_empty() {
            self.store
                .commit(tenant, changes)
                .await
                .map_err(store_err)?;
        }
        Ok(result)
    }
}

/// What one batch item did.
struct Applied {
    entity: Entity,
    created: bool,
    /// Attributes left alone (noOverwrite): the entity is stored, yet reported in error.
    partial: Option<NgsiError>,
}

/// Applies one batch item to the entity as it stands (None: absent).
fn apply(
    mode: BatchMode,
    current: Option<Entity>,
    input: EntityInput,
    now: Timestamp,
) -> NgsiResult<Applied> {
    let current = current.and_then(|e| visible(std::sync::Arc::new(e), now).map(|e| (*e).clone()));
    let id = input.id.clone().unwrap_or_default();
    let mut partial = None;
    let mut e = match (mode, current) {
        (BatchMode::Create, Some(_)) => {
            return Err(NgsiError::already_exists(format!(
                "entity {id} already exists"
            )))
        }
        (BatchMode::Create | BatchMode::Upsert { .. }, None) => {
            return Ok(Applied {
                entity: new_entity(input, now)?,
                created: true,
                partial: None,
            })
        }
        (BatchMode::Upsert { replace: true }, Some(old)) => {
            let mut fresh = new_entity(input, now)?;
            fresh.created_at = old.created_at;
            return Ok(Applied {
                entity: fresh,
                created: false,
                partial: None,
            });
        }
        // 5.6.8.4 update mode: the Update Attributes behaviour of 5.6.2.
        (BatchMode::Upsert { replace: false }, Some(mut e)) => {
            update_into(&mut e, input);
            e
        }
        // 5.6.9.4: the Append Attributes behaviour of 5.6.3, noOverwrite as given.
        (BatchMode::Update { no_overwrite }, Some(mut e)) => {
            let r = append_into(&mut e, input, no_overwrite);
            if !r.not_updated.is_empty() {
                let names: Vec<&str> = r.not_updated.iter().map(|n| n.attribute.as_str()).collect();
                partial = Some(NgsiError::bad_request(format!(
                    "entity {id}: attributes {} exist and were not overwritten (noOverwrite)",
                    names.join(", ")
                )));
            }
            e
        }
        (BatchMode::Merge, Some(mut e)) => {
            merge_into(&mut e, input, now);
            e
        }
        (BatchMode::Update { .. } | BatchMode::Merge, None) => {
            return Err(NgsiError::not_found(format!("entity {id} does not exist")))
        }
    };
    e.modified_at = now;
    Ok(Applied {
        entity: e,
        created: false,
        partial,
    })
}
