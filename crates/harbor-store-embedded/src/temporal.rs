//! The temporal store in redb: one table of instances keyed so that the instances of one
//! (tenant, entity, attribute) are contiguous and ordered by time, one table of headers
//! (kept in memory too, for listing). Reads go through redb read transactions (MVCC), beside
//! the commit thread; writes go through it: the historian's batches with the history cursor
//! (ADR 0006), and the Temporal API's own changes.
//!
//! Instance key: `tenant 0x00 entity 0x00 attribute 0x00 <time> <instance id>`, where `<time>`
//! is the index time (`observedAt`, else `modifiedAt`) in microseconds as a big-endian `i64`
//! with its sign bit flipped, so byte order is time order. Ids, tenants and expanded names
//! never hold a NUL.
//!
//! Rows are chunks of up to `chunk::MAX` consecutive instances in their binary form
//! (`chunk.rs`, `codec.rs`), keyed like their first instance; rows written as one JSON
//! instance by earlier versions are still read, and become part of a chunk when the next
//! instance is appended after them.

use std::sync::Arc;

use harbor_model::{TemporalHeader, TemporalInstance, Tenant, TimeProperty, Timestamp};
use harbor_store::{InstanceRange, InstanceSample, StoreError, StoreResult, TemporalChange};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::commit::ByTenant;

mod chunk;
mod codec;

/// Temporal instances by the key above: chunks of instances (or one instance as JSON).
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

/// The key suffix of an instance: `<time> <instance id>`.
fn instance_suffix(i: &TemporalInstance) -> Vec<u8> {
    let mut k = time_bytes(i.index_time()).to_vec();
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
                let p = prefix(tenant, entity, Some(attr));
                put_instance(instances, &p, &instance_suffix(instance), instance)?;
            }
            TemporalChange::DeleteInstance {
                entity,
                attr,
                instance_id,
            } => {
                let p = prefix(tenant, entity, Some(attr));
                delete_instance(instances, &p, instance_id.as_bytes())?;
            }
            TemporalChange::DeleteAttr { entity, attr } => {
                let lo = prefix(tenant, entity, Some(attr));
                let hi = prefix_end(&lo);
                instances.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
            }
            TemporalChange::TrimBefore { entity, before } => {
                let cut = time_bytes(*before);
                for attr in attr_names(instances, tenant, entity)? {
                    let p = prefix(tenant, entity, Some(&attr));
                    trim_before(instances, &p, &cut)?;
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

/// One instance of a row, owned: its key suffix and its binary form.
type Owned = (Vec<u8>, Vec<u8>);

/// A row's key and value, owned.
type KeyValue = (Vec<u8>, Vec<u8>);

/// What `scan` does with one row's key and value; false once told to stop.
type RowVisit<'r> = dyn FnMut(&[u8], &[u8]) -> StoreResult<bool> + 'r;

/// The instances of one row (`key` = `p` + the first suffix), owned, in key order.
fn row_entries(p: &[u8], key: &[u8], value: &[u8]) -> Result<Vec<Owned>, Fail> {
    if chunk::is_chunk(value) {
        let entries = chunk::entries(value).map(|e| e.map(|e| (e.suffix(), e.body.to_vec())));
        return Ok(entries.collect::<Result<_, _>>()?);
    }
    let i: TemporalInstance = serde_json::from_slice(value)?;
    Ok(vec![(key[p.len()..].to_vec(), codec::encode(&i))])
}

/// Writes `entries` (in key order, not empty) as chunk rows of at most `chunk::MAX`, the
/// first keyed `p` + its suffix.
fn put_chunks(
    instances: &mut redb::Table<&[u8], &[u8]>,
    p: &[u8],
    entries: &[Owned],
) -> Result<(), Fail> {
    for part in entries.chunks(chunk::MAX) {
        let mut key = p.to_vec();
        key.extend_from_slice(&part[0].0);
        let row = chunk::build(part.iter().map(|(s, b)| (s.as_slice(), b.as_slice())));
        instances.insert(key.as_slice(), row.as_slice())?;
    }
    Ok(())
}

/// The row of attribute `p` with the greatest key at or before `key`, owned.
fn row_at_or_before(
    instances: &redb::Table<&[u8], &[u8]>,
    p: &[u8],
    key: &[u8],
) -> Result<Option<KeyValue>, Fail> {
    let row = instances.range(p..=key)?.next_back().transpose()?;
    Ok(row.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
}

/// Adds an instance to attribute `p`: into the row whose span holds its key, else appended
/// to the row before it while that has room, else as a chunk of its own. An instance with
/// the key of a stored one replaces it.
fn put_instance(
    instances: &mut redb::Table<&[u8], &[u8]>,
    p: &[u8],
    suffix: &[u8],
    i: &TemporalInstance,
) -> Result<(), Fail> {
    let mut key = p.to_vec();
    key.extend_from_slice(suffix);
    let new = (suffix.to_vec(), codec::encode(i));
    let Some((row_key, value)) = row_at_or_before(instances, p, &key)? else {
        return put_chunks(instances, p, &[new]);
    };
    let mut entries = row_entries(p, &row_key, &value)?;
    let inside = entries
        .last()
        .is_some_and(|(last, _)| suffix <= last.as_slice());
    if !inside && entries.len() >= chunk::MAX {
        return put_chunks(instances, p, &[new]);
    }
    match entries.binary_search_by(|(s, _)| s.as_slice().cmp(suffix)) {
        Ok(at) => entries[at] = new,
        Err(at) => entries.insert(at, new),
    }
    // Same first key: the row is replaced (split in two past the maximum).
    put_chunks(instances, p, &entries)
}

/// Removes the instance with this id from attribute `p`, wherever it is.
fn delete_instance(
    instances: &mut redb::Table<&[u8], &[u8]>,
    p: &[u8],
    id: &[u8],
) -> Result<(), Fail> {
    let hi = prefix_end(p);
    let mut found = Vec::new();
    for row in instances.range(p..hi.as_slice())? {
        let (k, v) = row?;
        let (k, v) = (k.value(), v.value());
        let holds = if chunk::is_chunk(v) {
            let mut holds = false;
            for e in chunk::entries(v) {
                holds |= e?.id.text() == id;
            }
            holds
        } else {
            k.get(p.len() + 8..) == Some(id)
        };
        if holds {
            found.push((k.to_vec(), v.to_vec()));
        }
    }
    for (k, v) in found {
        instances.remove(k.as_slice())?;
        let mut left = row_entries(p, &k, &v)?;
        left.retain(|(suffix, _)| suffix.get(8..) != Some(id));
        if !left.is_empty() {
            put_chunks(instances, p, &left)?;
        }
    }
    Ok(())
}

/// Removes every instance of attribute `p` whose time is before `cut`; the instances of a
/// chunk that straddles the cut from it on are kept, in a chunk keyed by the first of them.
fn trim_before(
    instances: &mut redb::Table<&[u8], &[u8]>,
    p: &[u8],
    cut: &[u8; 8],
) -> Result<(), Fail> {
    let mut hi = p.to_vec();
    hi.extend_from_slice(cut);
    let kept = match row_at_or_before(instances, p, &hi)? {
        Some((k, v)) if chunk::is_chunk(&v) => {
            let mut entries = row_entries(p, &k, &v)?;
            entries.retain(|(suffix, _)| suffix.as_slice() >= cut.as_slice());
            entries
        }
        _ => Vec::new(),
    };
    instances.retain_in(p..hi.as_slice(), |_, _| false)?;
    if !kept.is_empty() {
        put_chunks(instances, p, &kept)?;
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

/// How one instance is stored: in binary in a chunk, or as JSON on a row of its own.
enum Stored<'a> {
    Binary(&'a [u8]),
    Json(&'a [u8]),
}

/// Calls `f` with each instance of one attribute within `range` (its instance id, how it is
/// stored), in time order (newest first if asked), until it returns false.
fn scan(
    db: &redb::Database,
    tenant: &Tenant,
    entity: &str,
    attr: &str,
    range: InstanceRange,
    f: &mut dyn FnMut(chunk::Id<'_>, Stored<'_>) -> StoreResult<bool>,
) -> StoreResult<()> {
    let txn = db.begin_read().map_err(|e| unavailable(&e))?;
    let table = txn.open_table(INSTANCES).map_err(|e| unavailable(&e))?;
    let p = prefix(tenant, entity, Some(attr));
    let from = range.from.map(time_bytes);
    let to = range.to.map(time_bytes);
    let mut lo = p.clone();
    if let Some(t) = &from {
        lo.extend_from_slice(t);
    }
    let hi = match &to {
        Some(t) => {
            let mut hi = p.clone();
            hi.extend_from_slice(t);
            hi
        }
        None => prefix_end(&p),
    };
    if lo >= hi {
        return Ok(());
    }
    // A chunk that starts before `from` may hold instances after it.
    let before = match from {
        Some(_) => table
            .range(p.as_slice()..lo.as_slice())
            .map_err(|e| unavailable(&e))?
            .next_back()
            .transpose()
            .map_err(|e| unavailable(&e))?,
        None => None,
    };
    let rows = table
        .range(lo.as_slice()..hi.as_slice())
        .map_err(|e| unavailable(&e))?;
    // Times compared as the numbers their 8 bytes are, in key order.
    let (from_n, to_n) = (from.map(u64::from_be_bytes), to.map(u64::from_be_bytes));
    let in_range = |time: [u8; 8]| {
        let t = u64::from_be_bytes(time);
        from_n.is_none_or(|f| t >= f) && to_n.is_none_or(|to| t < to)
    };
    let newest_first = range.newest_first;
    // Visits the instances of one row; false once `f` said stop.
    let mut row = |k: &[u8], v: &[u8]| -> StoreResult<bool> {
        if !chunk::is_chunk(v) {
            let suffix = &k[p.len()..];
            let time = suffix.get(..8).and_then(|t| <[u8; 8]>::try_from(t).ok());
            let id = chunk::Id::Text(suffix.get(8..).unwrap_or_default());
            return match time.is_some_and(in_range) {
                true => f(id, Stored::Json(v)),
                false => Ok(true),
            };
        }
        let mut visit = |e: Result<chunk::Entry, String>| -> StoreResult<bool> {
            let e = e.map_err(|e| corrupt(&e))?;
            match in_range(e.time) {
                true => f(e.id, Stored::Binary(e.body)),
                false => Ok(true),
            }
        };
        if newest_first {
            let entries: Vec<_> = chunk::entries(v).collect();
            for e in entries.into_iter().rev() {
                if !visit(e)? {
                    return Ok(false);
                }
            }
        } else {
            for e in chunk::entries(v) {
                if !visit(e)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let step = |r: Row, row: &mut RowVisit| {
        let (k, v) = r.map_err(|e| unavailable(&e))?;
        row(k.value(), v.value())
    };
    if newest_first {
        for r in rows.rev() {
            if !step(r, &mut row)? {
                return Ok(());
            }
        }
        if let Some((k, v)) = before {
            row(k.value(), v.value())?;
        }
    } else {
        if let Some((k, v)) = before {
            if !row(k.value(), v.value())? {
                return Ok(());
            }
        }
        for r in rows {
            if !step(r, &mut row)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn corrupt(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("temporal instance: {e}"))
}

fn read_instance(id: chunk::Id<'_>, stored: Stored<'_>) -> StoreResult<TemporalInstance> {
    match stored {
        Stored::Json(v) => serde_json::from_slice(v).map_err(|e| corrupt(&e)),
        Stored::Binary(b) => {
            let id = String::from_utf8(id.text()).map_err(|e| corrupt(&e))?;
            codec::decode(&id, b).map_err(|e| corrupt(&e))
        }
    }
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
    scan(db, tenant, entity, attr, range, &mut |id, stored| {
        Ok(f(read_instance(id, stored)?))
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
    time: TimeProperty,
    f: &mut dyn FnMut(&InstanceSample<'_>) -> bool,
) -> StoreResult<()> {
    scan(
        db,
        tenant,
        entity,
        attr,
        range,
        &mut |id, stored| match stored {
            Stored::Binary(b) => Ok(f(&codec::sample(b, time).map_err(|e| corrupt(&e))?)),
            json => Ok(f(&InstanceSample::of(&read_instance(id, json)?, time))),
        },
    )
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

    /// A series stored partly as JSON rows (as before chunks) reads back whole and in time
    /// order, as instances and as samples; an instance appended after a JSON row takes it
    /// into its chunk.
    #[test]
    fn reads_json_rows_beside_chunks() {
        let dir = std::env::temp_dir().join(format!("harbor-temporal-json-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = redb::Database::create(dir.join("t.redb")).unwrap();
        let tenant = Tenant::default_tenant();
        let (entity, attr) = ("urn:ngsi-ld:V:1", "https://e.org/speed");
        let p = prefix(&tenant, entity, Some(attr));
        let old = [
            instance("a", json!(1), "2026-01-01T00:01:00Z"),
            instance("c", json!("x"), "2026-01-01T00:03:00Z"),
            instance("e", json!(null), "2026-01-01T00:05:00Z"),
        ];
        let new = [
            instance("b", json!(2.5), "2026-01-01T00:02:00Z"),
            instance("f", json!([1, 2]), "2026-01-01T00:06:00Z"),
        ];
        let txn = db.begin_write().unwrap();
        {
            let mut instances = txn.open_table(INSTANCES).unwrap();
            let mut headers = txn.open_table(HEADERS).unwrap();
            for i in &old {
                let mut k = p.clone();
                k.extend_from_slice(&instance_suffix(i));
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
            let kinds: Vec<bool> = instances
                .iter()
                .unwrap()
                .map(|r| chunk::is_chunk(r.unwrap().1.value()))
                .collect();
            assert_eq!(kinds, [true, false, true], "a+b, c as JSON, e+f");
        }
        txn.commit().unwrap();

        let want = [&old[0], &new[0], &old[1], &old[2], &new[1]];
        for newest_first in [false, true] {
            let range = InstanceRange {
                newest_first,
                ..Default::default()
            };
            let mut got = Vec::new();
            visit(&db, &tenant, entity, attr, range, &mut |i| {
                got.push(i);
                true
            })
            .unwrap();
            if newest_first {
                got.reverse();
            }
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{range:?}");
        }
        let mut samples = 0;
        visit_samples(
            &db,
            &tenant,
            entity,
            attr,
            InstanceRange::default(),
            TimeProperty::ObservedAt,
            &mut |s| {
                assert_eq!(
                    *s,
                    InstanceSample::of(want[samples], TimeProperty::ObservedAt)
                );
                samples += 1;
                true
            },
        )
        .unwrap();
        assert_eq!(samples, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
