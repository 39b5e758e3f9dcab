//! `scopeQ` tables, including the conformance-suite cases of 019_01_06 and 019_34.

use crate::parse_scope_q;

#[test]
fn scope_queries_select_entities() {
    let many: Vec<String> = [
        "/Madrid/Gardens/ParqueNorte",
        "/Madrid/District/Latina",
        "/CompanyA/OrganizationB/UnitC",
    ]
    .map(String::from)
    .to_vec();
    let one = vec!["/Madrid/Gardens/ParqueNorte".to_string()];
    let none: Vec<String> = vec![];
    let bare = vec!["CompanyA".to_string()];
    // (query, many scopes, one scope, no scope, scope without leading slash)
    let cases = [
        ("/Madrid/Gardens/ParqueNorte", true, true, false, false),
        ("/Madrid/+/ParqueNorte", true, true, false, false),
        ("/CompanyA/#", true, false, false, true),
        ("/#", true, true, false, true),
        ("/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC", true, false, false, false),
        ("/Madrid/Gardens/ParqueNorte,/CompanyA/OrganizationB/UnitC", true, true, false, false),
        ("/CompanyA/OrganizationB/UnitC|/Nowhere/AtAll", true, false, false, false),
        ("(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)", true, false, false, false),
        (
            "(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)|/Madrid/Gardens/ParqueNorte",
            true,
            true,
            false,
            false,
        ),
        ("(/Madrid/Gardens/ParqueNorte;/Nowhere/AtAll)", false, false, false, false),
        ("/Madrid", false, false, false, false),
        ("/Madrid/#", true, true, false, false),
        ("/Madrid/+", false, false, false, false),
        ("/Madrid/+/+", true, true, false, false),
        ("/+", false, false, false, true),
        ("/CompanyA", false, false, false, true),
    ];
    for (input, m, o, n, b) in cases {
        let q = parse_scope_q(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.matches(&many), m, "{input} on many");
        assert_eq!(q.matches(&one), o, "{input} on one");
        assert_eq!(q.matches(&none), n, "{input} on none");
        assert_eq!(q.matches(&bare), b, "{input} on bare");
    }
}

#[test]
fn scope_queries_render_canonically() {
    for (input, want) in [
        ("/a/b", "/a/b"),
        ("/a|/b;/c", "/a,(/b;/c)"),
        ("( /a , /b ) ; /c/#", "(/a,/b);/c/#"),
        ("/a/+/Ü_1", "/a/+/Ü_1"),
    ] {
        assert_eq!(parse_scope_q(input).unwrap().to_string(), want, "{input}");
    }
}

#[test]
fn invalid_scope_queries_are_rejected() {
    let cases = [
        ("", "scopeQ: expression is empty"),
        (
            "Madrid",
            "scopeQ: a scope starts with '/', found 'M' at position 1",
        ),
        (
            "/a/#/b",
            "scopeQ: '#' must be the last scope level at position 5",
        ),
        ("/a/b+", "'+' and '#' must stand alone"),
        ("/a//b", "scopeQ: empty scope level at position 4"),
        ("/a/", "scopeQ: empty scope level at position 4"),
        ("/", "empty scope level"),
        (
            "/a-b",
            "scopeQ: invalid character '-' in scope at position 3",
        ),
        ("(/a", "scopeQ: unclosed '(' at position 1"),
        ("/a;", "scopeQ: unexpected end of input at position 4"),
        ("/a /b", "scopeQ: unexpected '/' at position 4"),
        ("/a)", "scopeQ: unexpected ')' at position 3"),
    ];
    for (input, want) in cases {
        let err = parse_scope_q(input).expect_err(input);
        assert!(
            err.detail.contains(want),
            "{input}: got {:?}, want {want:?}",
            err.detail
        );
    }
}
