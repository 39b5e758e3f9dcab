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
//!
//! Instance value: the binary form of `codec` (the instance id is the key's tail); rows
//! written as JSON by earlier versions are still read.

use std::sync::Arc;

use harbor_model::{TemporalHeader, TemporalInstance, Tenant, Timestamp};
use harbor_store::{InstanceRange, InstanceSample, StoreError, StoreResult, TemporalChange};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::commit::ByTenant;

mod codec;

/// Temporal instances by the key above, in the binary form of `codec` (or JSON).
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
                instances.insert(k.as_slice(), codec::encode(instance).as_slice())?;
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

/// Calls `f` with the key and value of each row of one attribute within `range`, in time
/// order (newest first if asked), until it returns false. `f` gets the length of the key's
/// prefix (`tenant 0 entity 0 attribute 0`) too.
fn scan(
    db: &redb::Database,
    tenant: &Tenant,
    entity: &str,
    attr: &str,
    range: InstanceRange,
    f: &mut dyn FnMut(usize, &[u8], &[u8]) -> StoreResult<bool>,
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
        let (k, v) = row.map_err(|e| unavailable(&e))?;
        f(p.len(), k.value(), v.value())
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

fn corrupt(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("temporal instance: {e}"))
}

/// The instance of one row; `prefix_len` as `scan` gives it.
fn read_instance(prefix_len: usize, key: &[u8], value: &[u8]) -> StoreResult<TemporalInstance> {
    if value.first() != Some(&codec::TAG) {
        return serde_json::from_slice(value).map_err(|e| corrupt(&e));
    }
    // The key ends with the instance id, after the prefix and the 8 bytes of time.
    let id = key
        .get(prefix_len + 8..)
        .and_then(|id| std::str::from_utf8(id).ok())
        .ok_or_else(|| corrupt(&"key without an instance id"))?;
    codec::decode(id, value).map_err(|e| corrupt(&e))
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
    scan(db, tenant, entity, attr, range, &mut |p, k, v| {
        Ok(f(read_instance(p, k, v)?))
    })
}

/// Visits what aggregation reads of the instances of one attribute within `range`, in time
/// order, straight from the rows: nothing is allocated for a number, boolean or string.
pub fn visit_samples(
    db: &redb::Database,
    tenant: &Tenant,
    entity: &str,
    attr: &str,
    range: InstanceRange,
    f: &mut dyn FnMut(&InstanceSample<'_>) -> bool,
) -> StoreResult<()> {
    scan(db, tenant, entity, attr, range, &mut |p, k, v| {
        if v.first() == Some(&codec::TAG) {
            return Ok(f(&codec::sample(v).map_err(|e| corrupt(&e))?));
        }
        let i = read_instance(p, k, v)?;
        Ok(f(&InstanceSample::of(&i)))
    })
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

#[cfg(test)]
mod tests {
    use harbor_model::{AttrValue, Attribute};
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> Timestamp {
        harbor_model::time::parse(s).unwrap()
    }

    fn instance(id: &str, v: serde_json::Value, observed: &str) -> TemporalInstance {
        let mut a = Attribute::new(AttrValue::Property(v), at("2026-01-01T00:00:00Z"));
        a.observed_at = Some(at(observed));
        TemporalInstance {
            instance_id: harbor_model::temporal::instance_id(id),
            attr: a,
            deleted_at: None,
        }
    }

    /// A series written partly as JSON (as before the binary form) and partly binary reads
    /// back whole and in time order, as instances and as samples.
    #[test]
    fn reads_json_rows_beside_binary_ones() {
        let dir = std::env::temp_dir().join(format!("harbor-temporal-json-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = redb::Database::create(dir.join("t.redb")).unwrap();
        let tenant = Tenant::default_tenant();
        let (entity, attr) = ("urn:ngsi-ld:V:1", "https://e.org/speed");
        let old = [
            instance("a", json!(1), "2026-01-01T00:01:00Z"),
            instance("c", json!("x"), "2026-01-01T00:03:00Z"),
        ];
        let new = [
            instance("b", json!(2.5), "2026-01-01T00:02:00Z"),
            instance("d", json!([1, 2]), "2026-01-01T00:04:00Z"),
        ];
        let txn = db.begin_write().unwrap();
        {
            let mut instances = txn.open_table(INSTANCES).unwrap();
            let mut headers = txn.open_table(HEADERS).unwrap();
            for i in &old {
                let k = instance_key(&tenant, entity, attr, i);
                let v = serde_json::to_vec(i).unwrap();
                instances.insert(k.as_slice(), v.as_slice()).unwrap();
            }
            let changes: Vec<TemporalChange> = new
                .iter()
                .map(|i| TemporalChange::PutInstance {
                    entity: entity.into(),
                    attr: attr.into(),
                    instance: Box::new(i.clone()),
                })
                .collect();
            write(&tenant, &changes, &mut instances, &mut headers).unwrap();
        }
        txn.commit().unwrap();

        let want = [&old[0], &new[0], &old[1], &new[1]];
        let mut got = Vec::new();
        visit(
            &db,
            &tenant,
            entity,
            attr,
            InstanceRange::default(),
            &mut |i| {
                got.push(i);
                true
            },
        )
        .unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
        let mut samples = 0;
        visit_samples(
            &db,
            &tenant,
            entity,
            attr,
            InstanceRange::default(),
            &mut |s| {
                assert_eq!(*s, InstanceSample::of(want[samples]));
                samples += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(samples, 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
