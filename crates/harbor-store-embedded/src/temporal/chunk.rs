//! Chunk rows: up to [`MAX`] consecutive instances of one attribute in one row of the
//! instance table, so that reading a series costs one B-tree step per chunk rather than per
//! instance (at 100k instances, redb's per-row work was half of an aggregation).
//!
//! A chunk is keyed like its first instance (`prefix <time> <instance id>`), and holds its
//! instances in key order, each as its key suffix (`<time> <instance id>`) and its binary
//! form (`codec.rs`). The rows of one attribute never overlap: every instance of a chunk
//! sorts before the key of the next row, so reading the rows in key order and the entries of
//! each in order gives the instances in key order. Value layout:
//!
//! ```text
//! chunk = TAG (suffix-length:varint suffix body-length:varint body)*
//! ```
//!
//! A row whose value starts with `{` is one instance as JSON, as rows were written before.

/// The first byte of a chunk row (JSON rows start with `{`).
pub const TAG: u8 = 0x02;

/// Most instances in one chunk. Appending rewrites the last chunk, so this bounds the bytes
/// an append writes (about 130 per instance) as much as it saves on reads.
pub const MAX: usize = 16;

/// One instance of a chunk: its key suffix (`<time: 8 bytes> <instance id>`) and its
/// binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub suffix: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The instance id, after the 8 bytes of time.
    pub fn id(&self) -> &'a [u8] {
        self.suffix.get(8..).unwrap_or_default()
    }

    /// The 8 bytes of time, as the key orders them.
    pub fn time(&self) -> &'a [u8] {
        &self.suffix[..self.suffix.len().min(8)]
    }
}

/// Whether a row value is a chunk.
pub fn is_chunk(value: &[u8]) -> bool {
    value.first() == Some(&TAG)
}

/// The entries of a chunk row, in order.
pub fn entries(value: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let Some(mut rest) = value.strip_prefix(&[TAG]) else {
        return Err("not a chunk of temporal instances".into());
    };
    let mut out = Vec::with_capacity(MAX);
    while !rest.is_empty() {
        let suffix = take(&mut rest)?;
        if suffix.len() < 8 {
            return Err("chunk entry without its time".into());
        }
        let body = take(&mut rest)?;
        out.push(Entry { suffix, body });
    }
    Ok(out)
}

/// A chunk row holding `entries`, in the order given.
pub fn build<'e>(entries: impl IntoIterator<Item = Entry<'e>>) -> Vec<u8> {
    let mut out = vec![TAG];
    for e in entries {
        for part in [e.suffix, e.body] {
            put_varint(&mut out, part.len() as u64);
            out.extend_from_slice(part);
        }
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

/// One length-prefixed part off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let mut n = 0u64;
    let mut used = 0;
    for (i, b) in rest.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 {
        return Err("bad length in a chunk".into());
    }
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(used))
        .filter(|end| *end <= rest.len())
        .ok_or("chunk entry past the end of its row")?;
    let part = &rest[used..end];
    *rest = &rest[end..];
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_back() {
        let suffixes: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 8 + i as usize]).collect();
        let bodies: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 200 * i as usize]).collect();
        let want: Vec<Entry> = suffixes
            .iter()
            .zip(&bodies)
            .map(|(s, b)| Entry { suffix: s, body: b })
            .collect();
        let row = build(want.iter().copied());
        assert!(is_chunk(&row));
        assert_eq!(entries(&row).unwrap(), want);
        assert_eq!(want[2].id(), [2, 2]);
        assert_eq!(want[1].time(), [1; 8]);
        for cut in 1..row.len() {
            // Never a panic; a cut inside an entry is an error.
            let _ = entries(&row[..cut]);
        }
        assert!(entries(&row[..row.len() - 1]).is_err());
        assert!(entries(b"{}").is_err());
    }
}
