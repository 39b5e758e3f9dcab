//! Entity type selection tables, including the conformance-suite cases of 019_08.

use super::ex;
use crate::parse_type_expr;

fn types(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|t| ex(t)).collect()
}

#[test]
fn type_expressions_select_entities() {
    let building = types(&["Building"]);
    let parking = types(&["OffStreetParking"]);
    let both = types(&["Building", "TouristDestination"]);
    // (expression, Building, OffStreetParking, Building+TouristDestination)
    let cases = [
        ("Building", true, false, true),
        ("Building,OffStreetParking", true, true, true),
        ("Building|OffStreetParking", true, true, true),
        ("OffStreetParking,TouristDestination", false, true, true),
        ("(Building;TouristDestination)", false, false, true),
        ("Building;TouristDestination", false, false, true),
        (
            "(Building;OffStreetParking),TouristDestination",
            false,
            false,
            true,
        ),
        ("Vehicle", false, false, false),
        ("*", true, true, true),
        ("https://ex.org/Other", false, false, false),
    ];
    for (input, b, p, t) in cases {
        let e = parse_type_expr(input, &ex).unwrap_or_else(|err| panic!("{input}: {err}"));
        assert_eq!(e.matches(&building), b, "{input} on Building");
        assert_eq!(e.matches(&parking), p, "{input} on OffStreetParking");
        assert_eq!(e.matches(&both), t, "{input} on both");
    }
}

#[test]
fn plain_unions_expose_their_types() {
    let cases: [(&str, Option<&[&str]>); 6] = [
        ("A", Some(&["ex:A"])),
        ("A,B", Some(&["ex:A", "ex:B"])),
        ("A|B,C", Some(&["ex:A", "ex:B", "ex:C"])),
        ("(A),B", Some(&["ex:A", "ex:B"])),
        ("A;B", None),
        ("*", None),
    ];
    for (input, want) in cases {
        let e = parse_type_expr(input, &ex).unwrap();
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(e.simple_types(), want, "{input}");
    }
    let e = parse_type_expr("(A;B),A", &ex).unwrap();
    assert_eq!(e.mentioned_types(), vec!["ex:A", "ex:B"]);
    assert_eq!(e.to_string(), "(ex:A;ex:B),ex:A");
    assert!(parse_type_expr("*", &ex).unwrap().is_wildcard());
}

#[test]
fn invalid_type_expressions_are_rejected() {
    let cases = [
        ("", "type: expression is empty"),
        ("A,,B", "type: unexpected ',' at position 3"),
        ("(A", "type: unclosed '(' at position 1"),
        ("A)", "type: unexpected ')' at position 2"),
        (
            "A,*",
            "type: '*' selects every type and must stand alone at position 3",
        ),
        ("A B", "type: unexpected 'B' at position 3"),
        (";A", "type: unexpected ';' at position 1"),
    ];
    for (input, want) in cases {
        let err = parse_type_expr(input, &ex).expect_err(input);
        assert!(
            err.detail.contains(want),
            "{input}: got {:?}, want {want:?}",
            err.detail
        );
    }
}
