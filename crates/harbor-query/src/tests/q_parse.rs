//! `q` parser tables: valid text → canonical rendering, invalid text → error message.

use super::ex;
use crate::parse_q;

#[test]
fn valid_queries_parse_to_canonical_form() {
    let cases = [
        ("a==1", "ex:a==1"),
        ("a==1.5", "ex:a==1.5"),
        ("a==-3e2", "ex:a==-300"),
        ("a==true", "ex:a==true"),
        ("a==\"true\"", "ex:a==\"true\""),
        ("a==\"x\"", "ex:a==\"x\""),
        ("a==x", "ex:a==\"x\""),
        ("a==\"q\\\"uote\"", "ex:a==\"q\\\"uote\""),
        ("a==1..10", "ex:a==1..10"),
        ("a!=1..10", "ex:a!=1..10"),
        (
            "a==2018-01-01..2018-12-31",
            "ex:a==\"2018-01-01\"..\"2018-12-31\"",
        ),
        ("a!=1,2,3", "ex:a!=1,2,3"),
        ("a==\"x\",\"y\"", "ex:a==\"x\",\"y\""),
        ("a>=5", "ex:a>=5"),
        (
            "a<\"2020-01-01T00:00:00Z\"",
            "ex:a<\"2020-01-01T00:00:00Z\"",
        ),
        ("a>2020-01-01T00:00:00Z", "ex:a>\"2020-01-01T00:00:00Z\""),
        ("a>12:30:00", "ex:a>\"12:30:00\""),
        (
            "rel==urn:ngsi-ld:City:Pisa",
            "ex:rel==\"urn:ngsi-ld:City:Pisa\"",
        ),
        ("a~=\"^x;y\"", "ex:a~=\"^x;y\""),
        ("a~=(?i)^x", "ex:a~=\"(?i)^x\""),
        ("(a~=x|y)", "ex:a~=\"x\"|ex:y"),
        ("a~=(x|y);b", "ex:a~=\"(x|y)\";ex:b"),
        ("a!~=\"^E\"", "ex:a!~=\"^E\""),
        ("a", "ex:a"),
        ("!a", "!ex:a"),
        ("a.b.c", "ex:a.ex:b.ex:c"),
        ("a.b.unitCode==\"C62\"", "ex:a.ex:b.unitCode==\"C62\""),
        (
            "a.observedAt>=2020-01-01T00:00:00Z",
            "ex:a.observedAt>=\"2020-01-01T00:00:00Z\"",
        ),
        ("a.datasetId==urn:ds:1", "ex:a.datasetId==\"urn:ds:1\""),
        ("a[k]", "ex:a[k]"),
        ("a[k.l]==1", "ex:a[k.l]==1"),
        ("a[k][l]==1", "ex:a[k.l]==1"),
        ("a.b[k]==1", "ex:a.ex:b[k]==1"),
        ("color[*]==\"red\"", "ex:color[*]==\"red\""),
        ("rel{name}==\"x\"", "ex:rel{ex:name}==\"x\""),
        ("rel{other{name}}", "ex:rel{ex:other{ex:name}}"),
        ("id==urn:x:1", "id==\"urn:x:1\""),
        ("type==Building", "type==\"ex:Building\""),
        (
            "createdAt>2020-01-01T00:00:00Z",
            "createdAt>\"2020-01-01T00:00:00Z\"",
        ),
        (
            "modifiedAt<2020-01-01T00:00:00Z",
            "modifiedAt<\"2020-01-01T00:00:00Z\"",
        ),
        ("a;b|c", "(ex:a;ex:b)|ex:c"),
        ("a|b;c", "ex:a|(ex:b;ex:c)"),
        ("(a|b);c", "(ex:a|ex:b);ex:c"),
        ("((a))", "ex:a"),
        (" a == 1 ; b ", "ex:a==1;ex:b"),
        ("a==\"Eiffel Tower\"", "ex:a==\"Eiffel Tower\""),
        ("https://x/speed>1", "https://x/speed>1"),
    ];
    for (input, want) in cases {
        let q = parse_q(input, &ex).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.to_string(), want, "{input}");
        // The rendering is itself valid q and reads back to the same expression.
        let again =
            parse_q(want, &|s: &str| s.to_string()).unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(again.to_string(), want, "round trip of {input}");
    }
}

#[test]
fn invalid_queries_are_rejected_with_position() {
    let cases = [
        ("", "q: expression is empty"),
        ("   ", "q: expression is empty"),
        ("a==1)", "q: unexpected ')' at position 5"),
        ("(a==1", "q: unclosed '(' at position 1"),
        ("(a==1;b", "q: unclosed '(' at position 1"),
        (
            "a==",
            "q: expected a value, found end of input at position 4",
        ),
        ("a==;b", "q: expected a value, found ';' at position 4"),
        (
            "a>1..5",
            "q: '>' takes a single value; ranges and lists need '==' or '!=' at position 2",
        ),
        ("a<=1,2", "ranges and lists need"),
        (
            "==1",
            "q: expected an attribute name, found '=' at position 1",
        ),
        ("a;;b", "q: unexpected ';' at position 3"),
        ("a|", "q: unexpected end of input at position 3"),
        ("|a", "q: unexpected '|' at position 1"),
        ("()", "q: unexpected ')' at position 2"),
        ("a=1", "q: unexpected '=' at position 2"),
        ("a==1 b", "q: unexpected 'b' at position 6"),
        ("a==\"x", "q: unterminated string at position 4"),
        ("a==x\"y\"", "q: unexpected '\"' at position 5"),
        ("a~=\"(\"", "q: invalid regular expression"),
        ("a~=", "q: expected a regular expression at position 4"),
        ("a==1e400", "q: number 1e400 is out of range at position 4"),
        (
            "!a==1",
            "q: a non-existence term ('!attr') takes no operator at position 3",
        ),
        ("a[", "q: unclosed '[' at position 2"),
        ("a[]", "q: empty key inside '[...]' at position 3"),
        ("a[k..l]", "empty key"),
        ("a.observedAt.b", "nothing may follow a meta member"),
        ("a.observedAt[k]", "nothing may follow a meta member"),
        (
            "a.",
            "q: expected an attribute name, found end of input at position 3",
        ),
        ("a{b", "q: unclosed '{' at position 2"),
        ("a{b}c", "q: unexpected 'c' at position 5"),
        ("ä==1)", "q: unexpected ')' at position 5"),
    ];
    for (input, want) in cases {
        let err = parse_q(input, &ex).expect_err(input);
        assert!(
            err.detail.contains(want),
            "{input}: got {:?}, want {want:?}",
            err.detail
        );
    }
}

#[test]
fn attribute_lists_for_index_pushdown() {
    let cases: [(&str, &[&str], &[&str]); 7] = [
        ("a==1", &["ex:a"], &["ex:a"]),
        ("a==1;b.c>2;a<5", &["ex:a", "ex:b"], &["ex:a", "ex:b"]),
        ("a|b", &["ex:a", "ex:b"], &[]),
        ("(a;b)|(a;c)", &["ex:a", "ex:b", "ex:c"], &["ex:a"]),
        ("!a;b", &["ex:a", "ex:b"], &["ex:b"]),
        ("id==urn:x;createdAt>2020-01-01", &[], &[]),
        ("rel{name}==\"x\"", &["ex:rel"], &["ex:rel"]),
    ];
    for (input, all, required) in cases {
        let q = parse_q(input, &ex).unwrap();
        assert_eq!(q.attributes(), all, "{input}");
        assert_eq!(q.required_attributes(), required, "{input}");
    }
}

#[test]
fn link_depth_counts_hops() {
    for (input, depth) in [("a==1", 0), ("a{b}", 1), ("x;a{b{c}}==1", 2)] {
        assert_eq!(parse_q(input, &ex).unwrap().link_depth(), depth, "{input}");
    }
}

#[test]
fn expand_values_rewrites_only_listed_attributes() {
    let mut q = parse_q("category==commercial;other==commercial", &ex).unwrap();
    q.expand_values(&["ex:category".to_string()], &|s| {
        format!("https://voc/{s}")
    });
    assert_eq!(
        q.to_string(),
        "ex:category==\"https://voc/commercial\";ex:other==\"commercial\""
    );
}
