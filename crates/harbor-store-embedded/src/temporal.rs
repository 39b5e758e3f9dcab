//! The temporal store in redb: one table of instances keyed so that the instances of one
//! (tenant, entity, attribute) are contiguous and ordered by time, one table of headers
//! (kept in memory too, for listing). Reads go through redb read transactions (MVCC), beside
//! the commit thread; writes go through it, in the same transaction as the entity changes they
//! record.
//!
//! Instance key: `tenant 0x00 entity 0x00 attribute 0x00 <time> <instance id>`, where `<time>`
//! is the index time (`observedAt`, else `modifiedAt`) in microseconds as a big-endian `i64`
//! with its sign bit flipped, so byte order is time order. Ids, tenants and expanded names
//! never hold a NUL.

use std::sync::Arc;

use harbor_model::{TemporalHeader, TemporalInstance, Tenant, Timestamp};
use harbor_store::{InstanceRange, StoreError, StoreResult, TemporalChange};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::commit::ByTenant;

/// Temporal instances by the key above, as JSON.
pub const INSTANCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("temporal_instances");
/// Temporal entity headers by `tenant \0 id`, as JSON.
pub const HEADERS: TableDefinition<&str, &[u8]> = TableDefinition::new("temporal_headers");

/// Headers per tenant, by id, as held in memory.
pub type Headers = ByTenant<TemporalHeader>;

fn prefix(tenant: &Tenant, entity: &str, attr: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.as_str().len() + entity.len() + 64);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(entity.as_bytes());
    k.push(0);
    if let Some(a) = attr {
        k.extend_from_slice(a.as_bytes());
        k.push(0);
    }
    k
}

/// The first key after every key starting with `prefix` (which ends with the 0x00 separator).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    end
}

fn time_bytes(t: Timestamp) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn instance_key(tenant: &Tenant, entity: &str, attr: &str, i: &TemporalInstance) -> Vec<u8> {
    let mut k = prefix(tenant, entity, Some(attr));
    k.extend_from_slice(&time_bytes(i.index_time()));
    k.extend_from_slice(i.instance_id.as_bytes());
    k
}

fn header_key(tenant: &Tenant, id: &str) -> String {
    format!("{}\u{0}{}", tenant.as_str(), id)
}

type Fail = Box<dyn std::error::Error>;

/// One row of the instance table as a range yields it.
type Row<'a> = Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// Writes one tenant's temporal changes into an open write transaction's tables.
pub fn write(
    tenant: &Tenant,
    changes: &[TemporalChange],
    instances: &mut redb::Table<&[u8], &[u8]>,
    headers: &mut redb::Table<&str, &[u8]>,
) -> Result<(), Fail> {
    for c in changes {
        match c {
            TemporalChange::PutHeader(h) => {
                headers.insert(
                    header_key(tenant, &h.id).as_str(),
                    serde_json::to_vec(h)?.as_slice(),
                )?;
            }
            TemporalChange::PutInstance {
                entity,
                attr,
                instance,
            } => {
                let k = instance_key(tenant, entity, attr, instance);
                instances.insert(k.as_slice(), serde_json::to_vec(instance)?.as_slice())?;
            }
            TemporalChange::DeleteInstance {
                entity,
                attr,
                instance_id,
            } => {
                let lo = prefix(tenant, entity, Some(attr));
                let hi = prefix_end(&lo);
                let mut found = Vec::new();
                for row in instances.range(lo.as_slice()..hi.as_slice())? {
                    let (k, _) = row?;
                    if k.value().ends_with(instance_id.as_bytes()) {
                        found.push(k.value().to_vec());
                    }
                }
                for k in found {
                    instances.remove(k.as_slice())?;
                }
            }
            TemporalChange::DeleteAttr { entity, attr } => {
                let lo = prefix(tenant, entity, Some(attr));
                let hi = prefix_end(&lo);
                instances.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
            }
            TemporalChange::TrimBefore { entity, before } => {
                let cut = time_bytes(*before);
                for attr in attr_names(instances, tenant, entity)? {
                    let lo = prefix(tenant, entity, Some(&attr));
                    let mut hi = lo.clone();
                    hi.extend_from_slice(&cut);
                    instances.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
                }
            }
            TemporalChange::DeleteEntity(entity) => {
                let lo = prefix(tenant, entity, None);
                let hi = prefix_end(&lo);
                instances.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
                headers.remove(header_key(tenant, entity).as_str())?;
            }
        }
    }
    Ok(())
}

/// Applies committed header changes to the in-memory copy.
pub fn apply(headers: &mut Headers, tenant: &Tenant, changes: &[TemporalChange]) {
    for c in changes {
        match c {
            TemporalChange::PutHeader(h) => {
                headers
                    .entry(tenant.clone())
                    .or_default()
                    .insert(h.id.clone(), Arc::new(h.clone()));
            }
            TemporalChange::DeleteEntity(id) => {
                if let Some(m) = headers.get_mut(tenant) {
                    m.remove(id);
                }
            }
            _ => {}
        }
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("temporal read failed: {e}"))
}

/// Visits the instances of one attribute within `range`, in time order.
pub fn visit(
    db: &redb::Database,
    tenant: &Tenant,
    entity: &str,
    attr: &str,
    range: InstanceRange,
    f: &mut dyn FnMut(TemporalInstance) -> bool,
) -> StoreResult<()> {
    let txn = db.begin_read().map_err(|e| unavailable(&e))?;
    let table = txn.open_table(INSTANCES).map_err(|e| unavailable(&e))?;
    let p = prefix(tenant, entity, Some(attr));
    let mut lo = p.clone();
    if let Some(t) = range.from {
        lo.extend_from_slice(&time_bytes(t));
    }
    let hi = match range.to {
        Some(t) => {
            let mut hi = p.clone();
            hi.extend_from_slice(&time_bytes(t));
            hi
        }
        None => prefix_end(&p),
    };
    if lo >= hi {
        return Ok(());
    }
    let rows = table
        .range(lo.as_slice()..hi.as_slice())
        .map_err(|e| unavailable(&e))?;
    let mut step = |row: Row| -> StoreResult<bool> {
        let (_, v) = row.map_err(|e| unavailable(&e))?;
        let i: TemporalInstance =
            serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(f(i))
    };
    if range.newest_first {
        for row in rows.rev() {
            if !step(row)? {
                break;
            }
        }
    } else {
        for row in rows {
            if !step(row)? {
                break;
            }
        }
    }
    Ok(())
}

/// The attribute names with instances, sorted, skipping from one attribute to the next.
pub fn attrs(db: &redb::Database, tenant: &Tenant, entity: &str) -> StoreResult<Vec<String>> {
    let txn = db.begin_read().map_err(|e| unavailable(&e))?;
    let table = txn.open_table(INSTANCES).map_err(|e| unavailable(&e))?;
    attr_names(&table, tenant, entity).map_err(|e| unavailable(&e))
}

/// The attribute names of `entity` with instances in `table`, sorted: one range probe per
/// attribute, never a scan of its instances.
fn attr_names(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    tenant: &Tenant,
    entity: &str,
) -> Result<Vec<String>, redb::StorageError> {
    let p = prefix(tenant, entity, None);
    let end = prefix_end(&p);
    let mut out = Vec::new();
    let mut lo = p.clone();
    loop {
        let mut rows = table.range(lo.as_slice()..end.as_slice())?;
        let Some(row) = rows.next() else {
            break;
        };
        let (k, _) = row?;
        let rest = &k.value()[p.len()..];
        let Some(n) = rest.iter().position(|b| *b == 0) else {
            break;
        };
        let name = String::from_utf8_lossy(&rest[..n]).into_owned();
        lo = p.clone();
        lo.extend_from_slice(name.as_bytes());
        lo.push(1);
        out.push(name);
    }
    Ok(out)
}

/// Reads every header back at start-up.
pub fn load(txn: &redb::ReadTransaction) -> StoreResult<Headers> {
    crate::commit::load_table(txn, HEADERS)
}
