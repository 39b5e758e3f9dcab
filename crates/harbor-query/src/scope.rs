//! Scope queries (4.19): `/a/b` exact, `+` one level, `#` this level and everything below,
//! `;` and, `,` or `|` or, parentheses.

use std::fmt;

use crate::bool_expr::{parse_bool, BoolExpr, Cursor};
use crate::QueryError;

/// A parsed `scopeQ`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeQ {
    expr: BoolExpr<Vec<Level>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Level {
    Name(String),
    /// `+`: exactly one level, any name.
    One,
    /// `#`: zero or more levels; always last.
    Rest,
}

/// Parses a `scopeQ` expression.
pub fn parse_scope_q(input: &str) -> Result<ScopeQ, QueryError> {
    let mut cur = Cursor::new("scopeQ", input);
    let expr = parse_bool(&mut cur, &[',', '|'], &mut parse_scope)?;
    Ok(ScopeQ { expr })
}

fn parse_scope(cur: &mut Cursor<'_>) -> Result<Vec<Level>, QueryError> {
    if !cur.eat("/") {
        return Err(match cur.peek() {
            Some(c) => cur.error(format_args!("a scope starts with '/', found '{c}'")),
            None => cur.unexpected(),
        });
    }
    let mut levels = Vec::new();
    loop {
        let start = cur.pos;
        while cur
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '+' || c == '#')
        {
            cur.bump();
        }
        let level = &cur.input[start..cur.pos];
        if matches!(levels.last(), Some(Level::Rest)) {
            return Err(cur.error_at(start - 1, "'#' must be the last scope level"));
        }
        levels.push(match level {
            "+" => Level::One,
            "#" => Level::Rest,
            "" => {
                return Err(match cur.peek() {
                    Some(c) if c != '/' => {
                        cur.error(format_args!("invalid character '{c}' in scope"))
                    }
                    _ => cur.error("empty scope level"),
                })
            }
            l if l.contains(['+', '#']) => {
                return Err(cur.error_at(start, "'+' and '#' must stand alone as a scope level"))
            }
            l => Level::Name(l.to_string()),
        });
        if !cur.eat("/") {
            break;
        }
    }
    match cur.peek() {
        None | Some(';' | ',' | '|' | ')') => Ok(levels),
        Some(c) if c.is_whitespace() => Ok(levels),
        Some(c) => Err(cur.error(format_args!("invalid character '{c}' in scope"))),
    }
}

fn level_matches(pattern: &[Level], scope: &[&str]) -> bool {
    match (pattern.split_first(), scope.split_first()) {
        (None, None) => true,
        (Some((Level::Rest, _)), _) => true,
        (Some((Level::One, p)), Some((_, s))) => level_matches(p, s),
        (Some((Level::Name(n), p)), Some((l, s))) => n == l && level_matches(p, s),
        _ => false,
    }
}

impl ScopeQ {
    /// Whether an Entity with these scopes (`/a/b`, leading `/` optional) is selected.
    pub fn matches(&self, scopes: &[String]) -> bool {
        let split: Vec<Vec<&str>> = scopes
            .iter()
            .map(|s| s.strip_prefix('/').unwrap_or(s).split('/').collect())
            .collect();
        self.expr
            .eval(&mut |p: &Vec<Level>| split.iter().any(|s| level_matches(p, s)))
    }
}

impl fmt::Display for ScopeQ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn scope(p: &[Level]) -> String {
            p.iter()
                .map(|l| match l {
                    Level::Name(n) => format!("/{n}"),
                    Level::One => "/+".into(),
                    Level::Rest => "/#".into(),
                })
                .collect()
        }
        fn go(e: &BoolExpr<Vec<Level>>, f: &mut fmt::Formatter<'_>, nested: bool) -> fmt::Result {
            let (xs, sep) = match e {
                BoolExpr::Leaf(p) => return write!(f, "{}", scope(p)),
                BoolExpr::And(xs) => (xs, ";"),
                BoolExpr::Or(xs) => (xs, ","),
            };
            if nested {
                write!(f, "(")?;
            }
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    write!(f, "{sep}")?;
                }
                go(x, f, true)?;
            }
            if nested {
                write!(f, ")")?;
            }
            Ok(())
        }
        go(&self.expr, f, false)
    }
}
