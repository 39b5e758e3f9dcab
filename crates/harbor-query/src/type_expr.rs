//! Entity type selection (4.17): `A,B` or `A|B` (either), `A;B` (both), parentheses, and
//! `*` for every type.

use std::fmt;

use crate::bool_expr::{parse_bool, BoolExpr, Cursor};
use crate::QueryError;

/// A parsed type selection; type names in it are expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    expr: Option<BoolExpr<String>>,
}

/// Parses a type selection. `expand` turns a short type name into its expanded IRI.
pub fn parse_type_expr(
    input: &str,
    expand: &dyn Fn(&str) -> String,
) -> Result<TypeExpr, QueryError> {
    if input.trim() == "*" {
        return Ok(TypeExpr { expr: None });
    }
    let mut cur = Cursor::new("type", input);
    let expr = parse_bool(&mut cur, &[',', '|'], &mut |c| {
        let start = c.pos;
        while c
            .peek()
            .is_some_and(|ch| !ch.is_whitespace() && !",|;()".contains(ch))
        {
            c.bump();
        }
        let name = &c.input[start..c.pos];
        if name.is_empty() {
            return Err(c.unexpected());
        }
        if name == "*" {
            return Err(c.error_at(start, "'*' selects every type and must stand alone"));
        }
        Ok(expand(name))
    })?;
    Ok(TypeExpr { expr: Some(expr) })
}

impl TypeExpr {
    /// Whether an Entity with these (expanded) types is selected.
    pub fn matches(&self, types: &[String]) -> bool {
        match &self.expr {
            None => true,
            Some(e) => e.eval(&mut |t: &String| types.contains(t)),
        }
    }

    /// The types when the selection is a plain union (`A`, `A,B`, `A|B|C`), for index
    /// lookup; `None` for `*` or when `;` (and) is involved.
    pub fn simple_types(&self) -> Option<Vec<String>> {
        match self.expr.as_ref()? {
            BoolExpr::Leaf(t) => Some(vec![t.clone()]),
            BoolExpr::Or(xs) => xs
                .iter()
                .map(|x| match x {
                    BoolExpr::Leaf(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            BoolExpr::And(_) => None,
        }
    }

    /// Whether this is `*`, every type.
    pub fn is_wildcard(&self) -> bool {
        self.expr.is_none()
    }

    /// Every type name mentioned, expanded, without duplicates.
    pub fn mentioned_types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.expr.iter().flat_map(|e| e.leaves()) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

impl fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn go(e: &BoolExpr<String>, f: &mut fmt::Formatter<'_>, nested: bool) -> fmt::Result {
            let (xs, sep) = match e {
                BoolExpr::Leaf(t) => return write!(f, "{t}"),
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
        match &self.expr {
            None => write!(f, "*"),
            Some(e) => go(e, f, false),
        }
    }
}
