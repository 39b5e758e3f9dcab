//! `pick` / `omit` tables (4.21), including the grammar rejections of suite 018_18 / 421_01.

use super::ex;
use crate::{parse_projection, ProjectionKind};

#[test]
fn projections_parse_with_depth() {
    // (input, depth)
    let cases = [
        ("name", 0),
        ("id,name", 0),
        ("name|airQualityLevel", 0),
        ("id,locatedAt{id,name}", 1),
        ("id,locatedAt{id,name,isInCountry{id,description}}", 2),
        ("a{b}|c{d{e}}", 2),
        ("https://ex.org/p,ex:q", 0),
    ];
    for (input, depth) in cases {
        let p = parse_projection(input, ProjectionKind::Pick, &ex)
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(p.depth(), depth, "{input}");
    }
}

#[test]
fn malformed_projections_say_where() {
    let cases = [
        (
            "id;name",
            "pick: ';' cannot appear in a member name at position 3",
        ),
        (
            "id,locatedAt{name",
            "pick: '{' after \"locatedAt\" is never closed at position 18",
        ),
        (
            "id,locatedAt{{name}",
            "pick: a member name is missing before '{' at position 14",
        ),
        (
            "id,,name",
            "pick: a member name is missing before ',' at position 4",
        ),
        (
            "id,locatedAt{,name}",
            "pick: a member name is missing before ',' at position 14",
        ),
        (
            "id,locatedAt{}",
            "pick: a member name is missing before '}' at position 14",
        ),
        (
            "name||airQualityLevel",
            "pick: a member name is missing before '|' at position 6",
        ),
        ("name}", "pick: unexpected '}' at position 5"),
        (
            "name,",
            "pick: a member name is missing at the end at position 6",
        ),
        (
            "",
            "pick: a member name is missing at the end at position 1",
        ),
    ];
    for (input, want) in cases {
        let err = parse_projection(input, ProjectionKind::Pick, &ex).unwrap_err();
        assert_eq!(err.detail, want, "{input}");
    }
}

#[test]
fn members_kept_and_linked_projections() {
    let pick = parse_projection("id,locatedAt{name},owner", ProjectionKind::Pick, &ex).unwrap();
    let omit = parse_projection("type,locatedAt{name}", ProjectionKind::Omit, &ex).unwrap();
    // (member, kept by pick, kept by omit)
    let cases = [
        ("id", true, true),
        ("type", false, false),
        ("locatedAt", true, true),
        ("owner", true, true),
        ("name", false, true),
    ];
    for (member, by_pick, by_omit) in cases {
        assert_eq!(pick.keeps(member), by_pick, "pick keeps {member}");
        assert_eq!(omit.keeps(member), by_omit, "omit keeps {member}");
        if member != "id" && member != "type" {
            assert_eq!(
                pick.keeps_attr(&ex(member)),
                by_pick,
                "pick keeps_attr {member}"
            );
        }
    }
    let inner = pick.linked("ex:locatedAt").unwrap();
    assert!(inner.keeps("name") && !inner.keeps("id"));
    assert!(
        pick.linked("ex:owner").is_none(),
        "no braces: the linked Entity is whole"
    );
    let inner = omit.linked("ex:locatedAt").unwrap();
    assert!(!inner.keeps("name") && inner.keeps("id"));
}
