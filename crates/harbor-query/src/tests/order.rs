//! `orderBy` tables (4.23): keys, directions, mixed datatypes, distance and collation.

use serde_json::json;

use super::{entity, ex};
use crate::{order_from, parse_order_by};

fn ids(order: &str, from: Option<serde_json::Value>, collation: Option<&str>) -> Vec<String> {
    let from = from.map(|c| order_from(None, &c).unwrap());
    let o = parse_order_by(order, &ex, from, collation).unwrap_or_else(|e| panic!("{order}: {e}"));
    let mut es = vec![
        entity(json!({"id": "urn:b", "type": "B",
            "name": {"type": "Property", "value": "b", "sub": {"type": "Property", "value": 3}},
            "rank": {"type": "Property", "value": "abc"},
            "address": {"type": "Property", "value": {"city": "Berlin"}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [9, 41]}}})),
        entity(json!({"id": "urn:a", "type": "A",
            "name": {"type": "Property", "value": "á", "sub": {"type": "Property", "value": 1}},
            "rank": {"type": "Property", "value": 5},
            "address": {"type": "Property", "value": {"city": "Amsterdam"}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.01, 40.01]}}})),
        entity(json!({"id": "urn:c", "type": "A",
            "name": {"type": "Property", "value": "A", "sub": {"type": "Property", "value": 2}},
            "address": {"type": "Property", "value": {"city": "Zurich"}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [10, 45]}}})),
    ];
    o.sort(&mut es);
    es.into_iter().map(|e| e.id).collect()
}

#[test]
fn keys_and_directions() {
    let cases = [
        ("id", vec!["urn:a", "urn:b", "urn:c"]),
        ("id;desc", vec!["urn:c", "urn:b", "urn:a"]),
        ("name", vec!["urn:c", "urn:b", "urn:a"]),
        ("name.sub", vec!["urn:a", "urn:c", "urn:b"]),
        ("name.sub;desc", vec!["urn:b", "urn:c", "urn:a"]),
        ("type,name.sub;desc", vec!["urn:c", "urn:a", "urn:b"]),
        ("address[city];desc", vec!["urn:c", "urn:b", "urn:a"]),
        // numbers before strings, absent last in both directions
        ("rank", vec!["urn:a", "urn:b", "urn:c"]),
        ("rank;desc", vec!["urn:b", "urn:a", "urn:c"]),
    ];
    for (order, want) in cases {
        assert_eq!(ids(order, None, None), want, "{order}");
    }
}

#[test]
fn distance_and_collation() {
    let from = Some(json!([8, 40]));
    assert_eq!(
        ids("location;dist-asc", from.clone(), None),
        ["urn:a", "urn:b", "urn:c"]
    );
    assert_eq!(
        ids("location;dist-desc", from, None),
        ["urn:c", "urn:b", "urn:a"]
    );
    // code points: "A" < "b" < "á"; root collation: "A" ~ "á" < "b"
    assert_eq!(ids("name", None, Some("und")), ["urn:c", "urn:a", "urn:b"]);
}

#[test]
fn bad_orderings_say_why() {
    let cases = [
        (
            "location;dist-asc",
            None,
            "orderBy: ordering by distance needs the reference geometry (orderFrom)",
        ),
        (
            "name;up",
            None,
            "orderBy: unknown direction \"up\" (asc, desc, dist-asc or dist-desc) at position 6",
        ),
        (
            "name,",
            None,
            "orderBy: expected an attribute name, found end of input at position 6",
        ),
        (
            "name",
            Some("!!nope"),
            "collation: \"!!nope\" is not a BCP 47 language tag",
        ),
        (
            "name",
            Some("not a bcp47 tag!!"),
            "collation: \"not a bcp47 tag!!\" is not a BCP 47 language tag",
        ),
    ];
    for (order, collation, want) in cases {
        let err = parse_order_by(order, &ex, None, collation).unwrap_err();
        assert_eq!(err.detail, want, "{order}");
    }
}
