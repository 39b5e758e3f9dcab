//! The compact form of an entity in memory: one byte string per entity, with type,
//! attribute and sub-attribute names as numbers into the store's [`Names`], values as typed
//! scalars, and system times written once when they repeat the entity's.
//!
//! An `Entity` as the rest of the broker handles it (a tree of `String`s, maps and JSON
//! values) takes some kilobytes; this form takes a few hundred bytes, at the price of
//! building the `Entity` again on every read. The form lives only in memory and changes with
//! the code: nothing written to disk depends on it.
//!
//! ```text
//! entity    = types scopes time:created time:modified opt-time:expires attrs
//! types     = n *name                 attrs = n *(name bytes n *instance)
//! scopes    = n *string               instance = flags kind payload [fields] [subs]
//! value     = tag (null | false | true | uint | sint | f64 | string | n *value | n *(string value))
//! ```
//!
//! Numbers are LEB128 varints (signed ones zigzagged); a time is its seconds (signed) and
//! nanoseconds. Each attribute is preceded by its length in bytes, so that a read that needs
//! only some attributes (a query's filters) skips the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use harbor_model::{AttrValue, Attribute, Entity, Timestamp};
use serde_json::{Map, Number, Value};

/// Names shared by every entity of a store: each distinct type, attribute and sub-attribute
/// name is kept once and referred to by its number.
#[derive(Default)]
pub struct Names {
    numbers: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn number(&mut self, name: &str) -> u32 {
        if let Some(n) = self.numbers.get(name) {
            return *n;
        }
        let n = u32::try_from(self.names.len()).expect("fewer than 2^32 distinct names");
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.numbers.insert(name, n);
        n
    }

    /// The number of a name, if any entity was packed with it.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }

    fn name(&self, n: u64) -> Result<&str, Corrupt> {
        usize::try_from(n)
            .ok()
            .and_then(|n| self.names.get(n))
            .map(|s| &**s)
            .ok_or(Corrupt("a name number with no name"))
    }

    /// How many distinct names are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// A packed form that does not read back: a fault of this module, never of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a packed entity does not read back: {}", self.0)
    }
}

/// One entity, packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl Packed {
    pub fn pack(e: &Entity, names: &mut Names) -> Packed {
        let mut w = Writer {
            out: Vec::with_capacity(256),
            names,
        };
        w.entity(e);
        Packed(w.out.into_boxed_slice())
    }

    /// The entity again, with its id.
    pub fn unpack(&self, id: &str, names: &Names) -> Result<Entity, Corrupt> {
        self.unpack_only(id, names, None)
    }

    /// The entity with only the attributes whose name numbers are in `wanted` (every
    /// attribute when `None`); the others are skipped, not read.
    pub fn unpack_only(
        &self,
        id: &str,
        names: &Names,
        wanted: Option<&[u32]>,
    ) -> Result<Entity, Corrupt> {
        let mut r = Reader {
            bytes: &self.0,
            names,
        };
        let e = r.entity(id, wanted)?;
        if !r.bytes.is_empty() {
            return Err(Corrupt("bytes after the entity"));
        }
        Ok(e)
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const SINT: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

const HAS_DATASET: u8 = 1;
const HAS_OBSERVED: u8 = 1 << 1;
const HAS_UNIT: u8 = 1 << 2;
const HAS_EXPIRY: u8 = 1 << 3;
const OWN_CREATED: u8 = 1 << 4;
const OWN_MODIFIED: u8 = 1 << 5;
const HAS_SUB: u8 = 1 << 6;

const PROPERTY: u8 = 0;
const RELATIONSHIP: u8 = 1;
const GEO: u8 = 2;
const LANGUAGE: u8 = 3;
const JSON: u8 = 4;
const VOCAB: u8 = 5;
const LIST: u8 = 6;
const LIST_RELATIONSHIP: u8 = 7;

struct Writer<'a> {
    out: Vec<u8>,
    names: &'a mut Names,
}

/// Where an attribute's length goes once its bytes are written.
struct Mark(usize);

impl Writer<'_> {
    fn uint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }

    fn sint(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn len(&mut self, n: usize) {
        self.uint(n as u64);
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn name(&mut self, s: &str) {
        let n = self.names.number(s);
        self.uint(u64::from(n));
    }

    fn time(&mut self, t: &Timestamp) {
        self.sint(t.timestamp());
        self.uint(u64::from(t.timestamp_subsec_nanos()));
    }

    fn entity(&mut self, e: &Entity) {
        self.len(e.types.len());
        for t in &e.types {
            self.name(t);
        }
        self.len(e.scopes.len());
        for s in &e.scopes {
            self.str(s);
        }
        self.time(&e.created_at);
        self.time(&e.modified_at);
        match &e.expires_at {
            None => self.out.push(0),
            Some(t) => {
                self.out.push(1);
                self.time(t);
            }
        }
        self.len(e.attrs.len());
        for (name, instances) in &e.attrs {
            self.name(name);
            let mark = Mark(self.out.len());
            self.len(instances.len());
            for a in instances {
                self.attribute(a, e);
            }
            self.close(mark);
        }
    }

    /// Puts the length of what was written since `mark` before it.
    fn close(&mut self, mark: Mark) {
        let body = self.out.split_off(mark.0);
        self.len(body.len());
        self.out.extend_from_slice(&body);
    }

    fn attribute(&mut self, a: &Attribute, e: &Entity) {
        let mut flags = 0;
        let mut set = |bit: u8, on: bool| {
            if on {
                flags |= bit;
            }
        };
        set(HAS_DATASET, a.dataset_id.is_some());
        set(HAS_OBSERVED, a.observed_at.is_some());
        set(HAS_UNIT, a.unit_code.is_some());
        set(HAS_EXPIRY, a.expires_at.is_some());
        set(OWN_CREATED, a.created_at != e.created_at);
        set(OWN_MODIFIED, a.modified_at != e.modified_at);
        set(HAS_SUB, !a.sub.is_empty());
        self.out.push(flags);
        match &a.value {
            AttrValue::Property(v) => self.kind(PROPERTY, v),
            AttrValue::Relationship {
                object,
                object_type,
            } => {
                self.kind(RELATIONSHIP, object);
                self.opt_value(object_type.as_ref());
            }
            AttrValue::GeoProperty(v) => self.kind(GEO, v),
            AttrValue::LanguageProperty(v) => self.kind(LANGUAGE, v),
            AttrValue::JsonProperty(v) => self.kind(JSON, v),
            AttrValue::VocabProperty(v) => self.kind(VOCAB, v),
            AttrValue::ListProperty(v) => self.kind(LIST, v),
            AttrValue::ListRelationship {
                object_list,
                object_type,
            } => {
                self.kind(LIST_RELATIONSHIP, object_list);
                self.opt_value(object_type.as_ref());
            }
        }
        if let Some(d) = &a.dataset_id {
            self.str(d);
        }
        if let Some(t) = &a.observed_at {
            self.time(t);
        }
        if let Some(u) = &a.unit_code {
            self.str(u);
        }
        if let Some(t) = &a.expires_at {
            self.time(t);
        }
        if a.created_at != e.created_at {
            self.time(&a.created_at);
        }
        if a.modified_at != e.modified_at {
            self.time(&a.modified_at);
        }
        if !a.sub.is_empty() {
            self.len(a.sub.len());
            for (name, sub) in &a.sub {
                self.name(name);
                self.attribute(sub, e);
            }
        }
    }

    fn kind(&mut self, kind: u8, v: &Value) {
        self.out.push(kind);
        self.value(v);
    }

    fn opt_value(&mut self, v: Option<&Value>) {
        match v {
            None => self.out.push(0),
            Some(v) => {
                self.out.push(1);
                self.value(v);
            }
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.out.push(NULL),
            Value::Bool(false) => self.out.push(FALSE),
            Value::Bool(true) => self.out.push(TRUE),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.out.push(UINT);
                    self.uint(u);
                } else if let Some(i) = n.as_i64() {
                    self.out.push(SINT);
                    self.sint(i);
                } else {
                    self.out.push(FLOAT);
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    self.out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Value::String(s) => {
                self.out.push(STRING);
                self.str(s);
            }
            Value::Array(xs) => {
                self.out.push(ARRAY);
                self.len(xs.len());
                for x in xs {
                    self.value(x);
                }
            }
            Value::Object(m) => {
                self.out.push(OBJECT);
                self.len(m.len());
                for (k, x) in m {
                    self.str(k);
                    self.value(x);
                }
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    names: &'a Names,
}

/// Most elements a packed list may claim: more than any entity can hold, so a corrupt
/// length cannot ask for a huge allocation.
const MAX_LEN: u64 = 1 << 24;

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Corrupt> {
        let (&b, rest) = self.bytes.split_first().ok_or(Corrupt("ends early"))?;
        self.bytes = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, Corrupt> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Corrupt("a varint longer than 64 bits"))
    }

    fn sint(&mut self) -> Result<i64, Corrupt> {
        let z = self.uint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn len(&mut self) -> Result<usize, Corrupt> {
        let n = self.uint()?;
        if n > MAX_LEN {
            return Err(Corrupt("a length beyond any entity"));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<String, Corrupt> {
        let n = self.len()?;
        if n > self.bytes.len() {
            return Err(Corrupt("a string past the end"));
        }
        let (s, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        String::from_utf8(s.to_vec()).map_err(|_| Corrupt("a string that is not UTF-8"))
    }

    fn name(&mut self) -> Result<String, Corrupt> {
        let n = self.uint()?;
        Ok(self.names.name(n)?.to_string())
    }

    fn time(&mut self) -> Result<Timestamp, Corrupt> {
        let secs = self.sint()?;
        let nanos = u32::try_from(self.uint()?).map_err(|_| Corrupt("nanoseconds"))?;
        Timestamp::from_timestamp(secs, nanos).ok_or(Corrupt("a time out of range"))
    }

    fn entity(&mut self, id: &str, wanted: Option<&[u32]>) -> Result<Entity, Corrupt> {
        let n = self.len()?;
        let types = (0..n).map(|_| self.name()).collect::<Result<Vec<_>, _>>()?;
        let n = self.len()?;
        let scopes = (0..n).map(|_| self.str()).collect::<Result<Vec<_>, _>>()?;
        let created_at = self.time()?;
        let modified_at = self.time()?;
        let expires_at = match self.byte()? {
            0 => None,
            _ => Some(self.time()?),
        };
        // Attributes are packed in name order: collected, then built into the map in bulk.
        let mut attrs = Vec::new();
        for _ in 0..self.len()? {
            let number = self.uint()?;
            let bytes = self.len()?;
            if bytes > self.bytes.len() {
                return Err(Corrupt("an attribute past the end"));
            }
            if wanted.is_some_and(|w| !w.iter().any(|n| u64::from(*n) == number)) {
                self.bytes = &self.bytes[bytes..];
                continue;
            }
            let name = self.names.name(number)?.to_string();
            let n = self.len()?;
            let mut instances = Vec::with_capacity(n.min(bytes));
            for _ in 0..n {
                instances.push(self.attribute(created_at, modified_at, 0)?);
            }
            attrs.push((name, instances));
        }
        Ok(Entity {
            id: id.to_string(),
            types,
            scopes,
            attrs: BTreeMap::from_iter(attrs),
            created_at,
            modified_at,
            expires_at,
        })
    }

    fn attribute(
        &mut self,
        created: Timestamp,
        modified: Timestamp,
        depth: usize,
    ) -> Result<Attribute, Corrupt> {
        if depth > 64 {
            return Err(Corrupt("sub-attributes nested beyond any entity"));
        }
        let flags = self.byte()?;
        let kind = self.byte()?;
        let payload = self.value(0)?;
        let value = match kind {
            PROPERTY => AttrValue::Property(payload),
            RELATIONSHIP => AttrValue::Relationship {
                object: payload,
                object_type: self.opt_value()?,
            },
            GEO => AttrValue::GeoProperty(payload),
            LANGUAGE => AttrValue::LanguageProperty(payload),
            JSON => AttrValue::JsonProperty(payload),
            VOCAB => AttrValue::VocabProperty(payload),
            LIST => AttrValue::ListProperty(payload),
            LIST_RELATIONSHIP => AttrValue::ListRelationship {
                object_list: payload,
                object_type: self.opt_value()?,
            },
            _ => return Err(Corrupt("an unknown attribute kind")),
        };
        let on = |bit: u8| flags & bit != 0;
        let dataset_id = on(HAS_DATASET).then(|| self.str()).transpose()?;
        let observed_at = on(HAS_OBSERVED).then(|| self.time()).transpose()?;
        let unit_code = on(HAS_UNIT).then(|| self.str()).transpose()?;
        let expires_at = on(HAS_EXPIRY).then(|| self.time()).transpose()?;
        let created_at = match on(OWN_CREATED) {
            true => self.time()?,
            false => created,
        };
        let modified_at = match on(OWN_MODIFIED) {
            true => self.time()?,
            false => modified,
        };
        let mut sub = BTreeMap::new();
        if on(HAS_SUB) {
            for _ in 0..self.len()? {
                let name = self.name()?;
                sub.insert(name, self.attribute(created, modified, depth + 1)?);
            }
        }
        Ok(Attribute {
            value,
            dataset_id,
            observed_at,
            unit_code,
            created_at,
            modified_at,
            expires_at,
            sub,
        })
    }

    fn opt_value(&mut self) -> Result<Option<Value>, Corrupt> {
        match self.byte()? {
            0 => Ok(None),
            _ => Ok(Some(self.value(0)?)),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Corrupt> {
        if depth > 256 {
            return Err(Corrupt("a value nested beyond any entity"));
        }
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => Value::Number(self.uint()?.into()),
            SINT => Value::Number(self.sint()?.into()),
            FLOAT => {
                if self.bytes.len() < 8 {
                    return Err(Corrupt("a number past the end"));
                }
                let (b, rest) = self.bytes.split_at(8);
                self.bytes = rest;
                let f = f64::from_le_bytes(b.try_into().map_err(|_| Corrupt("a number"))?);
                Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            STRING => Value::String(self.str()?),
            ARRAY => {
                let n = self.len()?;
                let mut xs = Vec::with_capacity(n.min(self.bytes.len()));
                for _ in 0..n {
                    xs.push(self.value(depth + 1)?);
                }
                Value::Array(xs)
            }
            OBJECT => {
                let n = self.len()?;
                let mut m = Map::new();
                for _ in 0..n {
                    let k = self.str()?;
                    m.insert(k, self.value(depth + 1)?);
                }
                Value::Object(m)
            }
            _ => return Err(Corrupt("an unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;

    fn attr(value: AttrValue, t: Timestamp) -> Attribute {
        Attribute {
            value,
            dataset_id: None,
            observed_at: None,
            unit_code: None,
            created_at: t,
            modified_at: t,
            expires_at: None,
            sub: BTreeMap::new(),
        }
    }

    /// An entity with every kind of attribute, value and optional member.
    fn everything() -> Entity {
        let t = harbor_model::time::now();
        let before_1970 = Timestamp::from_timestamp(-86_400 * 400, 123_456_789).unwrap();
        let mut attrs = BTreeMap::new();
        let mut full = attr(
            AttrValue::Property(json!({
                "n": [0, 1, -1, u64::MAX, i64::MIN, 0.5, -0.0, 1e300],
                "s": "ünïcødé", "b": [true, false], "z": null, "o": {}
            })),
            t,
        );
        full.dataset_id = Some("urn:ds:1".into());
        full.observed_at = Some(before_1970);
        full.unit_code = Some("CEL".into());
        full.expires_at = Some(t + Duration::hours(1));
        full.created_at = before_1970;
        full.modified_at = t + Duration::nanoseconds(1);
        let mut sub = attr(AttrValue::Property(json!(3)), t);
        sub.sub.insert(
            "deeper".into(),
            attr(AttrValue::JsonProperty(json!([{}])), t),
        );
        full.sub.insert("https://example.org/sub".into(), sub);
        attrs.insert(
            "https://example.org/full".into(),
            vec![full, attr(AttrValue::Property(json!("default")), t)],
        );
        let kinds = vec![
            AttrValue::Relationship {
                object: json!("urn:a"),
                object_type: Some(json!(["https://example.org/T"])),
            },
            AttrValue::Relationship {
                object: json!(["urn:a", "urn:b"]),
                object_type: None,
            },
            AttrValue::GeoProperty(json!({"type": "Point", "coordinates": [103.8, 1.29]})),
            AttrValue::LanguageProperty(json!({"en": "park", "zh": "停车场"})),
            AttrValue::JsonProperty(json!({"k": [1, {"x": null}]})),
            AttrValue::VocabProperty(json!("https://example.org/v")),
            AttrValue::ListProperty(json!([1, "two", [3]])),
            AttrValue::ListRelationship {
                object_list: json!(["urn:x"]),
                object_type: Some(json!("T")),
            },
        ];
        for (i, k) in kinds.into_iter().enumerate() {
            attrs.insert(format!("https://example.org/a{i}"), vec![attr(k, t)]);
        }
        Entity {
            id: "urn:ngsi-ld:Thing:1".into(),
            types: vec![
                "https://example.org/A".into(),
                "https://example.org/B".into(),
            ],
            scopes: vec!["/Singapore/Central".into(), "/x".into()],
            attrs,
            created_at: t,
            modified_at: t + Duration::milliseconds(5),
            expires_at: Some(t + Duration::days(1)),
        }
    }

    #[test]
    fn every_member_reads_back_as_it_was() {
        let mut names = Names::default();
        let e = everything();
        let p = Packed::pack(&e, &mut names);
        assert_eq!(p.unpack(&e.id, &names), Ok(e.clone()));
        // Names are shared: a second entity with the same names adds none.
        let before = names.len();
        let mut other = e.clone();
        other.id = "urn:ngsi-ld:Thing:2".into();
        let q = Packed::pack(&other, &mut names);
        assert_eq!(names.len(), before);
        assert_eq!(q.unpack(&other.id, &names), Ok(other));
    }

    #[test]
    fn a_partial_read_has_only_the_attributes_asked_for() {
        let mut names = Names::default();
        let e = everything();
        let p = Packed::pack(&e, &mut names);
        let wanted = [
            names.find("https://example.org/a2").unwrap(),
            names.find("https://example.org/full").unwrap(),
        ];
        let part = p.unpack_only(&e.id, &names, Some(&wanted)).unwrap();
        let mut want = e.clone();
        want.attrs
            .retain(|k, _| k == "https://example.org/a2" || k == "https://example.org/full");
        assert_eq!(part, want);
        let none = p.unpack_only(&e.id, &names, Some(&[])).unwrap();
        assert!(none.attrs.is_empty() && none.types == e.types && none.scopes == e.scopes);
    }

    #[test]
    fn a_bare_entity_reads_back() {
        let mut names = Names::default();
        let t = harbor_model::time::now();
        let e = Entity {
            id: "urn:x".into(),
            types: vec!["T".into()],
            scopes: vec![],
            attrs: BTreeMap::new(),
            created_at: t,
            modified_at: t,
            expires_at: None,
        };
        let p = Packed::pack(&e, &mut names);
        assert_eq!(p.unpack("urn:x", &names), Ok(e));
    }

    #[test]
    fn a_packed_entity_is_a_fraction_of_its_json() {
        let mut names = Names::default();
        let e = everything();
        let p = Packed::pack(&e, &mut names);
        let json = serde_json::to_vec(&e).unwrap();
        assert!(p.len() * 3 < json.len(), "{} vs {}", p.len(), json.len());
    }

    #[test]
    fn cut_or_damaged_bytes_fail_instead_of_panicking() {
        let mut names = Names::default();
        let e = everything();
        let p = Packed::pack(&e, &mut names);
        for cut in 0..p.0.len() {
            let short = Packed(p.0[..cut].into());
            assert!(short.unpack(&e.id, &names).is_err(), "cut at {cut}");
        }
        for at in 0..p.0.len() {
            let mut bytes = p.0.to_vec();
            bytes[at] ^= 0xff;
            // Anything may come back, or an error: never a panic.
            let _ = Packed(bytes.into()).unpack(&e.id, &names);
        }
        let empty = Names::default();
        assert!(p.unpack(&e.id, &empty).is_err(), "names it does not know");
    }
}
