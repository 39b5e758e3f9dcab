//! Chunk rows: up to [`MAX`] consecutive instances of one attribute in one row of the
//! instance table, so that reading a series costs one B-tree step per chunk rather than per
//! instance (at 100k instances, redb's per-row work was half of an aggregation).
//!
//! A chunk is keyed like its first instance (`prefix <time> <instance id>`) and holds its
//! instances in key order. The rows of one attribute never overlap: every instance of a
//! chunk sorts before the key of the next row, so reading the rows in key order and the
//! entries of each in order gives the instances in key order. Value layout:
//!
//! ```text
//! chunk = TAG entry*
//! entry = time:8 id body-length:varint body     ; time as in the key, body as in codec.rs
//! id    = 0x00 uuid:16                          ; urn:ngsi-ld:AttributeInstance:<uuid>
//!       | length:varint utf-8                   ; any other id (never empty)
//! ```
//!
//! Instance ids are mostly `urn:ngsi-ld:AttributeInstance:<uuid>`, 66 bytes of text: kept as
//! the 16 bytes of the UUID they are half of what a chunk reads. A row whose value starts
//! with `{` is one instance as JSON, as rows were written before chunks.

/// The first byte of a chunk row (JSON rows start with `{`).
pub const TAG: u8 = 0x02;

/// Most instances in one chunk. Appending rewrites the last chunk, so this bounds the bytes
/// an append writes (about 80 per instance) as much as it saves on reads.
pub const MAX: usize = 16;

/// The ids kept as their UUID.
const UUID_ID: &str = "urn:ngsi-ld:AttributeInstance:";

/// An instance id as a chunk holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id<'a> {
    Uuid(&'a [u8]),
    Text(&'a [u8]),
}

impl Id<'_> {
    /// The id's text.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Id::Text(t) => out.extend_from_slice(t),
            Id::Uuid(u) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(UUID_ID.as_bytes());
                for (i, b) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        out.push(b'-');
                    }
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
            }
        }
    }

    pub fn text(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(66);
        self.write_to(&mut out);
        out
    }
}

/// The UUID of an id `urn:ngsi-ld:AttributeInstance:<lowercase hyphenated uuid>`.
fn uuid_of(id: &[u8]) -> Option<[u8; 16]> {
    let text = id.strip_prefix(UUID_ID.as_bytes())?;
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = text
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    for byte in &mut out {
        let mut v = 0u8;
        for _ in 0..2 {
            let (_, c) = digits.next()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            v = v << 4 | d;
        }
        *byte = v;
    }
    let hyphens = [8, 13, 18, 23].iter().all(|i| text[*i] == b'-');
    hyphens.then_some(out)
}

/// One instance of a chunk: the 8 bytes of its time (as the key orders them), its id and
/// its binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: [u8; 8],
    pub id: Id<'a>,
    pub body: &'a [u8],
}

impl Entry<'_> {
    /// The key suffix `<time> <instance id>` the entry sorts by.
    pub fn suffix(&self) -> Vec<u8> {
        let mut out = self.time.to_vec();
        self.id.write_to(&mut out);
        out
    }
}

/// Whether a row value is a chunk.
pub fn is_chunk(value: &[u8]) -> bool {
    value.first() == Some(&TAG)
}

/// The entries of a chunk row, in order.
pub fn entries(value: &[u8]) -> Entries<'_> {
    Entries {
        rest: value.strip_prefix(&[TAG]).unwrap_or_default(),
        bad: !is_chunk(value),
    }
}

/// The entries of a chunk row, read one by one.
pub struct Entries<'a> {
    rest: &'a [u8],
    bad: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bad {
            self.bad = false;
            return Some(Err("not a chunk of temporal instances".into()));
        }
        if self.rest.is_empty() {
            return None;
        }
        let entry = self.entry();
        if entry.is_err() {
            self.rest = &[];
        }
        Some(entry)
    }
}

impl<'a> Entries<'a> {
    fn entry(&mut self) -> Result<Entry<'a>, String> {
        let time = self.take(8)?;
        let time: [u8; 8] = time.try_into().map_err(|_| "bad time in a chunk")?;
        let id = match self.rest.first() {
            Some(0) => {
                self.rest = &self.rest[1..];
                Id::Uuid(self.take(16)?)
            }
            _ => {
                let n = self.len()?;
                Id::Text(self.take(n)?)
            }
        };
        let n = self.len()?;
        let body = self.take(n)?;
        Ok(Entry { time, id, body })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err("chunk entry past the end of its row".into());
        }
        let (part, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(part)
    }

    fn len(&mut self) -> Result<usize, String> {
        let mut n = 0u64;
        for i in 0..10 {
            let b = *self.rest.get(i).ok_or("bad length in a chunk")?;
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return usize::try_from(n).map_err(|e| e.to_string());
            }
        }
        Err("bad length in a chunk".into())
    }
}

/// A chunk row holding the instances given as (key suffix, binary form), in that order.
pub fn build<'e>(entries: impl IntoIterator<Item = (&'e [u8], &'e [u8])>) -> Vec<u8> {
    let mut out = vec![TAG];
    for (suffix, body) in entries {
        let (time, id) = suffix.split_at(suffix.len().min(8));
        out.extend_from_slice(time);
        match uuid_of(id) {
            Some(u) => {
                out.push(0);
                out.extend_from_slice(&u);
            }
            None => {
                put_varint(&mut out, id.len() as u64);
                out.extend_from_slice(id);
            }
        }
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_back() {
        let uuid = "urn:ngsi-ld:AttributeInstance:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let ids = [
            uuid,
            "urn:ngsi-ld:AttributeInstance:0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "urn:ngsi-ld:AttributeInstance:not-a-uuid",
            "urn:x:1",
        ];
        let rows: Vec<(Vec<u8>, Vec<u8>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut suffix = vec![i as u8; 8];
                suffix.extend_from_slice(id.as_bytes());
                (suffix, vec![i as u8; 150 * i])
            })
            .collect();
        let row = build(rows.iter().map(|(s, b)| (s.as_slice(), b.as_slice())));
        assert!(is_chunk(&row));
        let back: Vec<Entry> = entries(&row).collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), 4);
        for (e, (suffix, body)) in back.iter().zip(&rows) {
            assert_eq!(&e.suffix(), suffix);
            assert_eq!(&e.body, body);
        }
        assert!(
            matches!(back[0].id, Id::Uuid(_)),
            "a lowercase UUID id is kept short"
        );
        assert!(
            matches!(back[1].id, Id::Text(_)),
            "any other id is kept as it is"
        );
        for cut in 1..row.len() {
            // Never a panic; a cut inside an entry is an error.
            let _ = entries(&row[..cut]).count();
        }
        assert!(entries(&row[..row.len() - 1]).any(|e| e.is_err()));
        assert!(entries(b"{}").next().unwrap().is_err());
    }
}
