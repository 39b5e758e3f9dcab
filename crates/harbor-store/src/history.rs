//! Deriving temporal history from the change feed (ADR 0006).

use std::collections::HashMap;
use std::sync::Arc;

use harbor_model::temporal::{instance_id, record_change};
use harbor_model::{EntityChange, TemporalHeader, Tenant};

use crate::{HistoryBatch, StoreResult, TemporalChange, TemporalStore};

impl HistoryBatch {
    /// The temporal rows of feed records (oldest first, none empty) with the cursor after
    /// the last one. Each entity's header is written once, as the batch leaves it; instance
    /// ids come from the feed position, so recording the same records again writes the same
    /// rows.
    pub fn derive(
        changes: &[Arc<EntityChange>],
        temporal: &dyn TemporalStore,
    ) -> StoreResult<HistoryBatch> {
        let mut batch = HistoryBatch {
            rows: Vec::new(),
            cursor: changes.last().map_or(0, |c| c.seq),
        };
        let mut headers: HashMap<(Tenant, String), TemporalHeader> = HashMap::new();
        let mut of_tenant: HashMap<Tenant, usize> = HashMap::new();
        for c in changes {
            let key = (c.tenant.clone(), c.id.clone());
            let stored;
            let header = match headers.get(&key) {
                Some(h) => Some(h),
                None => {
                    stored = temporal.temporal_header(&c.tenant, &c.id)?;
                    stored.as_ref()
                }
            };
            let (seq, mut nth) = (c.seq, 0u32);
            let Some(r) = record_change(c, header, &mut || {
                nth += 1;
                instance_id(&format!("{seq:016x}-{nth:04x}"))
            }) else {
                continue;
            };
            let rows = rows_of(&mut batch.rows, &mut of_tenant, &c.tenant);
            rows.extend(r.instances.into_iter().map(|(attr, instance)| {
                TemporalChange::PutInstance {
                    entity: c.id.clone(),
                    attr,
                    instance: Box::new(instance),
                }
            }));
            headers.insert(key, r.header);
        }
        for ((tenant, _), h) in headers {
            rows_of(&mut batch.rows, &mut of_tenant, &tenant).push(TemporalChange::PutHeader(h));
        }
        Ok(batch)
    }
}

/// The rows of `tenant` in the batch, added when it has none yet.
fn rows_of<'a>(
    rows: &'a mut Vec<(Tenant, Vec<TemporalChange>)>,
    index: &mut HashMap<Tenant, usize>,
    tenant: &Tenant,
) -> &'a mut Vec<TemporalChange> {
    let i = *index.entry(tenant.clone()).or_insert_with(|| {
        rows.push((tenant.clone(), Vec::new()));
        rows.len() - 1
    });
    &mut rows[i].1
}
