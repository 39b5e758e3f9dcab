//! How many bytes of memory a cached `@context` holds, for the byte-bounded caches: estimated
//! from the sizes of the containers and strings it is made of, as the allocator sees them.
//!
//! Measured on documents of 25,000 terms (`"termN": "https://example.org/ns/termN"`, 1 MB of
//! compact JSON): the parsed document holds about 4 bytes of memory per byte of source and the
//! compiled term map about 8 (three hash maps: terms, prefixes, reverse), so the size of the
//! source alone would undercount the cache several times over.

use std::collections::HashMap;
use std::mem::size_of;

use serde_json::Value;

/// What one heap allocation costs beyond the bytes asked for (size classes, headers).
const ALLOCATION: usize = 16;

/// The heap bytes of a string.
pub fn string(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.len() + ALLOCATION
    }
}

/// The table of a hash map with room for `capacity` entries of type `E`: buckets are a power of
/// two kept at most 7/8 full, each with one control byte.
pub fn table<E>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (size_of::<E>() + 1) + ALLOCATION
}

/// The heap bytes of a map of strings to strings.
pub fn string_map<S>(m: &HashMap<String, String, S>) -> usize {
    table::<(String, String)>(m.capacity())
        + m.iter().map(|(k, v)| string(k) + string(v)).sum::<usize>()
}

/// The heap bytes of a parsed JSON value (not counting the value itself). Objects keep their
/// member order (an index table beside a vector of entries, each with its hash); containers
/// grown while parsing have a quarter of spare room on average.
pub fn json(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => string(s),
        Value::Array(items) => {
            items.len() * size_of::<Value>() * 5 / 4
                + ALLOCATION
                + items.iter().map(json).sum::<usize>()
        }
        Value::Object(m) => {
            let entry = size_of::<usize>() + size_of::<String>() + size_of::<Value>();
            m.len() * entry * 5 / 4
                + ALLOCATION
                + table::<usize>(m.len())
                + m.iter().map(|(k, v)| string(k) + json(v)).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_weighs_several_times_its_source() {
        let mut text = String::from("{\"@context\":{");
        for i in 0..10_000 {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("\"term{i}\":\"https://example.org/ns/term{i}\""));
        }
        text.push_str("}}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let ratio = json(&v) as f64 / text.len() as f64;
        assert!((2.5..6.0).contains(&ratio), "{ratio}");
        assert_eq!(json(&Value::Null), 0);
        assert_eq!(string(""), 0);
        assert_eq!(table::<u64>(0), 0);
    }
}
