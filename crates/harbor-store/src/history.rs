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
            let (seq, mut nth) = (c.seq, 0u16);
            let Some(r) = record_change(c, header, &mut || {
                nth = nth.wrapping_add(1);
                recorded_id(seq, nth)
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

/// The id of the `nth` instance recorded from feed record `seq`: unique for good, the same
/// every time the record is recorded, and shaped as a UUID (the 128 bits `seq`, `nth`, 0), the
/// form stores keep in 16 bytes.
fn recorded_id(seq: u64, nth: u16) -> String {
    instance_id(&format!(
        "{:08x}-{:04x}-{:04x}-{nth:04x}-000000000000",
        seq >> 32,
        (seq >> 16) & 0xffff,
        seq & 0xffff
    ))
}

/// The entity a temporal row belongs to.
fn entity_of(row: &TemporalChange) -> &str {
    match row {
        TemporalChange::PutHeader(h) => &h.id,
        TemporalChange::PutInstance { entity, .. }
        | TemporalChange::DeleteInstance { entity, .. }
        | TemporalChange::DeleteAttr { entity, .. }
        | TemporalChange::TrimBefore { entity, .. } => entity,
        TemporalChange::DeleteEntity(id) => id,
    }
}

impl HistoryBatch {
    /// The batch as batches of about `max_rows` rows each (an entity's rows are never split,
    /// and are put in entity order, as the store keys them); only the last one moves the
    /// cursor, the others keep `from`. Recording is idempotent, so a crash between them only
    /// means the first ones are written again. Keeps every commit short for the writes
    /// waiting behind it.
    pub fn split(self, max_rows: usize, from: u64) -> Vec<HistoryBatch> {
        let mut out = Vec::new();
        let mut current = HistoryBatch {
            rows: Vec::new(),
            cursor: from,
        };
        let mut size = 0;
        for (tenant, mut rows) in self.rows {
            // Stable: each entity's rows keep their order.
            rows.sort_by(|a, b| entity_of(a).cmp(entity_of(b)));
            let mut rows = rows.into_iter().peekable();
            let mut pending: Vec<TemporalChange> = Vec::new();
            while let Some(row) = rows.next() {
                let entity = entity_of(&row).to_string();
                pending.push(row);
                size += 1;
                while let Some(next) = rows.next_if(|r| entity_of(r) == entity) {
                    pending.push(next);
                    size += 1;
                }
                if size >= max_rows {
                    current
                        .rows
                        .push((tenant.clone(), std::mem::take(&mut pending)));
                    out.push(std::mem::replace(
                        &mut current,
                        HistoryBatch {
                            rows: Vec::new(),
                            cursor: from,
                        },
                    ));
                    size = 0;
                }
            }
            if !pending.is_empty() {
                current.rows.push((tenant, pending));
            }
        }
        current.cursor = self.cursor;
        out.push(current);
        out
    }
}

#[cfg(test)]
mod tests {
    use harbor_model::{AttrValue, Attribute, TemporalInstance};

    use super::*;

    fn instance(entity: &str, n: u32) -> TemporalChange {
        TemporalChange::PutInstance {
            entity: entity.into(),
            attr: "https://example.org/speed".into(),
            instance: Box::new(TemporalInstance {
                instance_id: instance_id(&format!("{n}")),
                attr: Attribute::new(
                    AttrValue::Property(serde_json::json!(n)),
                    harbor_model::time::now(),
                ),
                deleted_at: None,
            }),
        }
    }

    #[test]
    fn split_keeps_entities_whole_and_moves_the_cursor_last() {
        let t = Tenant::default_tenant();
        let rows = vec![
            instance("urn:b", 1),
            instance("urn:a", 2),
            instance("urn:b", 3),
            instance("urn:c", 4),
            instance("urn:a", 5),
        ];
        let batch = HistoryBatch {
            rows: vec![(t, rows)],
            cursor: 42,
        };
        let parts = batch.split(2, 7);
        let seen: Vec<Vec<(String, String)>> = parts
            .iter()
            .map(|p| {
                p.rows
                    .iter()
                    .flat_map(|(_, rows)| rows)
                    .map(|r| match r {
                        TemporalChange::PutInstance {
                            entity, instance, ..
                        } => (entity.clone(), instance.instance_id.clone()),
                        _ => unreachable!(),
                    })
                    .collect()
            })
            .collect();
        let id = |n: &str| instance_id(n);
        assert_eq!(
            seen,
            vec![
                vec![("urn:a".into(), id("2")), ("urn:a".into(), id("5"))],
                vec![("urn:b".into(), id("1")), ("urn:b".into(), id("3"))],
                vec![("urn:c".into(), id("4"))],
            ],
            "entity order, each entity whole and in its own order"
        );
        let cursors: Vec<u64> = parts.iter().map(|p| p.cursor).collect();
        assert_eq!(cursors, [7, 7, 42], "only the last part moves the cursor");
    }

    #[test]
    fn recorded_ids_are_uuid_shaped_and_distinct() {
        let a = recorded_id(0x0123_4567_89ab_cdef, 1);
        assert_eq!(
            a,
            "urn:ngsi-ld:AttributeInstance:01234567-89ab-cdef-0001-000000000000"
        );
        assert_ne!(recorded_id(1, 2), recorded_id(2, 1));
        assert_ne!(recorded_id(u64::MAX, 1), recorded_id(u64::MAX, 2));
    }

    #[test]
    fn a_small_batch_stays_one() {
        let t = Tenant::default_tenant();
        let batch = HistoryBatch {
            rows: vec![(t, vec![instance("urn:a", 1)])],
            cursor: 3,
        };
        let parts = batch.split(4096, 0);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].cursor, 3);
        assert_eq!(parts[0].rows[0].1.len(), 1);
    }
}
