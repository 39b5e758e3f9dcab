//! Hostile inputs: each must be refused with an error, quickly, without deep recursion.

use std::time::{Duration, Instant};

use super::ex;
use crate::{parse_q, parse_scope_q, parse_type_expr, QueryError, MAX_DEPTH, MAX_TERMS};

type Parser = fn(&str) -> Result<(), QueryError>;

fn q(s: &str) -> Result<(), QueryError> {
    parse_q(s, &ex).map(drop)
}
fn scope(s: &str) -> Result<(), QueryError> {
    parse_scope_q(s).map(drop)
}
fn types(s: &str) -> Result<(), QueryError> {
    parse_type_expr(s, &ex).map(drop)
}

fn nested(open: &str, leaf: &str, close: &str, n: usize) -> String {
    format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn hostile_inputs_fail_fast() {
    let cases: Vec<(&str, Parser, String, &str)> = vec![
        (
            "10k parens q",
            q,
            nested("(", "a", ")", 10_000),
            "at most 8192 are accepted",
        ),
        (
            "4k parens q",
            q,
            nested("(", "a", ")", 4_000),
            "parentheses nested deeper than 32",
        ),
        (
            "33 parens q",
            q,
            nested("(", "a", ")", MAX_DEPTH + 1),
            "nested deeper than 32",
        ),
        (
            "unclosed parens q",
            q,
            "(".repeat(8_000),
            "nested deeper than 32",
        ),
        ("1 MB q", q, "a".repeat(1 << 20), "at most 8192"),
        (
            "1 MB string q",
            q,
            format!("a==\"{}\"", "x".repeat(1 << 20)),
            "at most 8192",
        ),
        (
            "too many terms q",
            q,
            vec!["a"; MAX_TERMS + 1].join(";"),
            "more than 256 terms",
        ),
        (
            "huge regex",
            q,
            "a~=\"(\\w{100}){100}\"".into(),
            "invalid regular expression (it is too large)",
        ),
        (
            "huge repetition",
            q,
            "a~=\"x{100000}{100000}\"".into(),
            "invalid regular expression",
        ),
        (
            "regex nesting",
            q,
            format!("a~=\"{}\"", nested("(", "x", ")", 500)),
            "invalid regular expression",
        ),
        (
            "deep links",
            q,
            nested("a{", "b", "}", MAX_DEPTH + 1),
            "linked attributes nested deeper than 32",
        ),
        (
            "4k links",
            q,
            nested("a{", "b", "}", 2_000),
            "linked attributes nested deeper",
        ),
        (
            "10k parens scope",
            scope,
            nested("(", "/a", ")", 10_000),
            "at most 8192",
        ),
        (
            "4k parens scope",
            scope,
            nested("(", "/a", ")", 4_000),
            "nested deeper than 32",
        ),
        (
            "terms scope",
            scope,
            vec!["/a"; MAX_TERMS + 1].join(","),
            "more than 256 terms",
        ),
        (
            "10k parens type",
            types,
            nested("(", "A", ")", 10_000),
            "at most 8192",
        ),
        (
            "4k parens type",
            types,
            nested("(", "A", ")", 4_000),
            "nested deeper than 32",
        ),
        (
            "terms type",
            types,
            vec!["A"; MAX_TERMS + 1].join(","),
            "more than 256 terms",
        ),
    ];
    for (name, parse, input, want) in cases {
        let start = Instant::now();
        let err = parse(&input).expect_err(name);
        assert!(
            err.detail.contains(want),
            "{name}: got {:?}, want {want:?}",
            err.detail
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{name} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn limits_themselves_are_accepted() {
    let ok: Vec<(&str, Parser, String)> = vec![
        ("32 parens", q, nested("(", "a", ")", MAX_DEPTH)),
        ("256 terms", q, vec!["a"; MAX_TERMS].join(";")),
        ("32 links", q, nested("a{", "b", "}", MAX_DEPTH)),
        ("32 parens scope", scope, nested("(", "/a", ")", MAX_DEPTH)),
        ("256 types", types, vec!["A"; MAX_TERMS].join(",")),
    ];
    for (name, parse, input) in ok {
        parse(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
