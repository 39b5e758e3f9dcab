//! The binary form of a temporal instance, as a chunk row holds it (`chunk.rs`), so that
//! reading one costs a few field copies instead of a JSON parse (aggregation reads a whole
//! series at a time). The instance id is not part of it: the chunk keeps it beside. The
//! layout, all integers little-endian:
//!
//! ```text
//! instance  = attribute                         ; the instance's deletedAt is in the flags
//! attribute = flags:u8 created:time modified:time [observed:time] [expires:time]
//!             [deleted:time] [datasetId:str] [unitCode:str] kind:u8 payload:json
//!             [objectType:json]                 ; Relationship, ListRelationship: when FLAG_OBJECT_TYPE
//!             [count:varint (name:str attribute)*]  ; sub-attributes, when FLAG_SUB
//! time      = year:i32 ordinal:u16 seconds-of-day:u32 nanoseconds:u32
//!                                               ; exact, also before 1970 and leap seconds
//! str       = length:varint utf-8
//! json      = 0 null | 1 false | 2 true | 3 u64 | 4 i64 | 5 f64 | 6 str
//!           | 7 count:varint json* | 8 count:varint (str json)*   ; object members in order
//! ```
//!
//! Fields come in the order aggregation needs them, so [`sample`] stops after the payload.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use harbor_model::{AttrValue, Attribute, TemporalInstance, TimeProperty, Timestamp};
use harbor_store::{InstanceSample, SamplePayload};
use serde_json::{Map, Number, Value};

const FLAG_OBSERVED: u8 = 1;
const FLAG_EXPIRES: u8 = 2;
const FLAG_DELETED: u8 = 4;
const FLAG_DATASET: u8 = 8;
const FLAG_UNIT: u8 = 16;
const FLAG_SUB: u8 = 32;
const FLAG_OBJECT_TYPE: u8 = 64;

const J_NULL: u8 = 0;
const J_FALSE: u8 = 1;
const J_TRUE: u8 = 2;
const J_U64: u8 = 3;
const J_I64: u8 = 4;
const J_F64: u8 = 5;
const J_STR: u8 = 6;
const J_ARRAY: u8 = 7;
const J_OBJECT: u8 = 8;

/// Bytes of one time.
const TIME_LEN: usize = 14;

/// Deepest JSON nesting read back; deeper input is corrupt (what is stored was accepted
/// through limits far below this).
const MAX_DEPTH: usize = 512;

/// The binary form of an instance, without its id.
pub fn encode(i: &TemporalInstance) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_attr(&mut out, &i.attr, i.deleted_at);
    out
}

/// The instance with id `id` whose binary form is `bytes`.
pub fn decode(id: &str, bytes: &[u8]) -> Result<TemporalInstance, String> {
    let mut r = Reader { bytes, pos: 0 };
    let (attr, deleted_at) = r.attr(0)?;
    r.finish()?;
    Ok(TemporalInstance {
        instance_id: id.to_string(),
        attr,
        deleted_at,
    })
}

/// What aggregation reads of the instance whose binary form is `bytes`, borrowing its
/// strings; only a payload that is neither a number, a boolean nor a string is built.
///
/// Only the times the sample holds are built: the one of `time`, the index time and the
/// expiry; the others are skipped over.
#[inline]
pub fn sample(bytes: &[u8], time: TimeProperty) -> Result<InstanceSample<'_>, String> {
    let mut r = Reader { bytes, pos: 0 };
    let flags = r.u8()?;
    let has = |bit| flags & bit != 0;
    let created_at = r.time_if(true, time == TimeProperty::CreatedAt)?;
    let modified_at = r.time_if(
        true,
        time == TimeProperty::ModifiedAt || !has(FLAG_OBSERVED),
    )?;
    let observed_at = r.time_if(has(FLAG_OBSERVED), true)?;
    let expires_at = r.time_if(has(FLAG_EXPIRES), true)?;
    let deleted_at = r.time_if(has(FLAG_DELETED), time == TimeProperty::DeletedAt)?;
    let h = Head {
        flags,
        dataset_id: r.opt_str(flags, FLAG_DATASET)?,
        unit_code: r.opt_str(flags, FLAG_UNIT)?,
        kind: r.u8()?,
    };
    let at = match time {
        TimeProperty::ObservedAt => observed_at,
        TimeProperty::CreatedAt => created_at,
        TimeProperty::ModifiedAt => modified_at,
        TimeProperty::DeletedAt => deleted_at,
    };
    let index_time = observed_at
        .or(modified_at)
        .ok_or("an instance without a time")?;
    let scalar = match r.peek()? {
        J_FALSE => Some(SamplePayload::Bool(false)),
        J_TRUE => Some(SamplePayload::Bool(true)),
        // As serde_json's as_f64 converts each kind of number.
        J_U64 => {
            r.pos += 1;
            Some(SamplePayload::Number(u64::from_le_bytes(r.array()?) as f64))
        }
        J_I64 => {
            r.pos += 1;
            Some(SamplePayload::Number(i64::from_le_bytes(r.array()?) as f64))
        }
        J_F64 => {
            r.pos += 1;
            Some(SamplePayload::Number(f64::from_le_bytes(r.array()?)))
        }
        J_STR => {
            r.pos += 1;
            Some(SamplePayload::Str(r.str()?))
        }
        _ => None,
    };
    let payload = match scalar {
        Some(p) => p,
        None => SamplePayload::Whole(Box::new(Cow::Owned(r.value(h.kind, h.flags)?))),
    };
    Ok(InstanceSample {
        at,
        index_time,
        expires_at,
        dataset_id: h.dataset_id,
        kind: kind_name(h.kind)?,
        payload,
    })
}

fn kind_of(v: &AttrValue) -> u8 {
    match v {
        AttrValue::Property(_) => 0,
        AttrValue::Relationship { .. } => 1,
        AttrValue::GeoProperty(_) => 2,
        AttrValue::LanguageProperty(_) => 3,
        AttrValue::JsonProperty(_) => 4,
        AttrValue::VocabProperty(_) => 5,
        AttrValue::ListProperty(_) => 6,
        AttrValue::ListRelationship { .. } => 7,
    }
}

fn kind_name(kind: u8) -> Result<&'static str, String> {
    Ok(match kind {
        0 => "Property",
        1 => "Relationship",
        2 => "GeoProperty",
        3 => "LanguageProperty",
        4 => "JsonProperty",
        5 => "VocabProperty",
        6 => "ListProperty",
        7 => "ListRelationship",
        k => return Err(format!("unknown attribute kind {k}")),
    })
}

fn put_attr(out: &mut Vec<u8>, a: &Attribute, deleted_at: Option<Timestamp>) {
    // Naming every field makes a new one a compile error here rather than a silent loss.
    let Attribute {
        value,
        dataset_id,
        observed_at,
        unit_code,
        created_at,
        modified_at,
        expires_at,
        sub,
    } = a;
    let object_type = match value {
        AttrValue::Relationship { object_type, .. }
        | AttrValue::ListRelationship { object_type, .. } => object_type.as_ref(),
        _ => None,
    };
    let flags = [
        (observed_at.is_some(), FLAG_OBSERVED),
        (expires_at.is_some(), FLAG_EXPIRES),
        (deleted_at.is_some(), FLAG_DELETED),
        (dataset_id.is_some(), FLAG_DATASET),
        (unit_code.is_some(), FLAG_UNIT),
        (!sub.is_empty(), FLAG_SUB),
        (object_type.is_some(), FLAG_OBJECT_TYPE),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |f, (_, bit)| f | bit);
    out.push(flags);
    put_time(out, *created_at);
    put_time(out, *modified_at);
    for t in [observed_at, expires_at, &deleted_at].into_iter().flatten() {
        put_time(out, *t);
    }
    for s in [dataset_id, unit_code].into_iter().flatten() {
        put_str(out, s);
    }
    out.push(kind_of(value));
    put_json(out, value.payload());
    if let Some(t) = object_type {
        put_json(out, t);
    }
    if !sub.is_empty() {
        put_varint(out, sub.len() as u64);
        for (name, s) in sub {
            put_str(out, name);
            put_attr(out, s, None);
        }
    }
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    out.extend_from_slice(&t.year().to_le_bytes());
    out.extend_from_slice(&(t.ordinal() as u16).to_le_bytes());
    out.extend_from_slice(&t.num_seconds_from_midnight().to_le_bytes());
    out.extend_from_slice(&t.nanosecond().to_le_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(J_NULL),
        Value::Bool(false) => out.push(J_FALSE),
        Value::Bool(true) => out.push(J_TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(J_U64);
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(J_I64);
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                out.push(J_F64);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(J_STR);
            put_str(out, s);
        }
        Value::Array(items) => {
            out.push(J_ARRAY);
            put_varint(out, items.len() as u64);
            for x in items {
                put_json(out, x);
            }
        }
        Value::Object(m) => {
            out.push(J_OBJECT);
            put_varint(out, m.len() as u64);
            for (k, x) in m {
                put_str(out, k);
                put_json(out, x);
            }
        }
    }
}

/// The times of an attribute.
struct Times {
    created_at: Timestamp,
    modified_at: Timestamp,
    observed_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
}

/// The part of an attribute after its times, up to its kind.
struct Head<'a> {
    flags: u8,
    dataset_id: Option<&'a str>,
    unit_code: Option<&'a str>,
    kind: u8,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn finish(&self) -> Result<(), String> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes left after the instance",
                self.bytes.len() - self.pos
            ))
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {}", self.pos));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    #[inline]
    fn peek(&self) -> Result<u8, String> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| format!("truncated at byte {}", self.pos))
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, String> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(format!("varint too long at byte {}", self.pos))
    }

    /// A length, checked against what is left so a corrupt one cannot ask for a huge buffer.
    fn len(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() - self.pos => Ok(n),
            _ => Err(format!("length {n} past the end at byte {}", self.pos)),
        }
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())
    }

    /// A time as its calendar fields: building it from them skips the division of a day
    /// count into years that a Unix time would need (a tenth of an aggregation's work).
    #[inline]
    fn time(&mut self) -> Result<Timestamp, String> {
        let year = i32::from_le_bytes(self.array()?);
        let ordinal = u16::from_le_bytes(self.array()?);
        let secs = u32::from_le_bytes(self.array()?);
        let nanos = u32::from_le_bytes(self.array()?);
        let date = NaiveDate::from_yo_opt(year, u32::from(ordinal));
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos);
        match (date, time) {
            (Some(d), Some(t)) => Ok(NaiveDateTime::new(d, t).and_utc()),
            _ => Err(format!("bad time {year}-{ordinal} {secs}.{nanos}")),
        }
    }

    fn opt_time(&mut self, flags: u8, bit: u8) -> Result<Option<Timestamp>, String> {
        self.time_if(flags & bit != 0, true)
    }

    /// The next time if it is `present` and `wanted`; one present but not wanted is
    /// skipped over.
    #[inline]
    fn time_if(&mut self, present: bool, wanted: bool) -> Result<Option<Timestamp>, String> {
        match (present, wanted) {
            (false, _) => Ok(None),
            (true, true) => self.time().map(Some),
            (true, false) => self.take(TIME_LEN).map(|_| None),
        }
    }

    fn opt_str(&mut self, flags: u8, bit: u8) -> Result<Option<&'a str>, String> {
        (flags & bit != 0).then(|| self.str()).transpose()
    }

    fn head(&mut self) -> Result<(Times, Head<'a>), String> {
        let flags = self.u8()?;
        let times = Times {
            created_at: self.time()?,
            modified_at: self.time()?,
            observed_at: self.opt_time(flags, FLAG_OBSERVED)?,
            expires_at: self.opt_time(flags, FLAG_EXPIRES)?,
            deleted_at: self.opt_time(flags, FLAG_DELETED)?,
        };
        let head = Head {
            flags,
            dataset_id: self.opt_str(flags, FLAG_DATASET)?,
            unit_code: self.opt_str(flags, FLAG_UNIT)?,
            kind: self.u8()?,
        };
        Ok((times, head))
    }

    /// The payload (and object type) of an attribute of `kind`.
    fn value(&mut self, kind: u8, flags: u8) -> Result<AttrValue, String> {
        let payload = self.json(0)?;
        let object_type = (flags & FLAG_OBJECT_TYPE != 0)
            .then(|| self.json(0))
            .transpose()?;
        Ok(match kind {
            0 => AttrValue::Property(payload),
            1 => AttrValue::Relationship {
                object: payload,
                object_type,
            },
            2 => AttrValue::GeoProperty(payload),
            3 => AttrValue::LanguageProperty(payload),
            4 => AttrValue::JsonProperty(payload),
            5 => AttrValue::VocabProperty(payload),
            6 => AttrValue::ListProperty(payload),
            7 => AttrValue::ListRelationship {
                object_list: payload,
                object_type,
            },
            k => return Err(format!("unknown attribute kind {k}")),
        })
    }

    fn attr(&mut self, depth: usize) -> Result<(Attribute, Option<Timestamp>), String> {
        if depth > MAX_DEPTH {
            return Err("sub-attributes nested too deep".into());
        }
        let (t, h) = self.head()?;
        let value = self.value(h.kind, h.flags)?;
        let mut sub = BTreeMap::new();
        if h.flags & FLAG_SUB != 0 {
            for _ in 0..self.varint()? {
                let name = self.str()?.to_string();
                let (a, _) = self.attr(depth + 1)?;
                sub.insert(name, a);
            }
        }
        let attr = Attribute {
            value,
            dataset_id: h.dataset_id.map(str::to_string),
            observed_at: t.observed_at,
            unit_code: h.unit_code.map(str::to_string),
            created_at: t.created_at,
            modified_at: t.modified_at,
            expires_at: t.expires_at,
            sub,
        };
        Ok((attr, t.deleted_at))
    }

    fn json(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("JSON nested too deep".into());
        }
        Ok(match self.u8()? {
            J_NULL => Value::Null,
            J_FALSE => Value::Bool(false),
            J_TRUE => Value::Bool(true),
            J_U64 => Value::Number(u64::from_le_bytes(self.array()?).into()),
            J_I64 => Value::Number(i64::from_le_bytes(self.array()?).into()),
            J_F64 => {
                let x = f64::from_le_bytes(self.array()?);
                Value::Number(Number::from_f64(x).ok_or_else(|| format!("bad number {x}"))?)
            }
            J_STR => Value::String(self.str()?.to_string()),
            J_ARRAY => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.json(depth + 1)?);
                }
                Value::Array(items)
            }
            J_OBJECT => {
                let n = self.len()?;
                let mut m = Map::with_capacity(n);
                for _ in 0..n {
                    let k = self.str()?.to_string();
                    m.insert(k, self.json(depth + 1)?);
                }
                Value::Object(m)
            }
            t => return Err(format!("unknown JSON tag {t} at byte {}", self.pos - 1)),
        })
    }
}

#[cfg(test)]
mod tests;
