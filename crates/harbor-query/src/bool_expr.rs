//! The AND/OR/parentheses skeleton shared by `q`, `scopeQ` and type expressions, with the
//! depth and size limits enforced in one place.

use crate::{QueryError, MAX_DEPTH, MAX_TERMS};

/// A boolean combination of leaves. `And`/`Or` always hold at least two children.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolExpr<T> {
    Leaf(T),
    And(Vec<BoolExpr<T>>),
    Or(Vec<BoolExpr<T>>),
}

impl<T> BoolExpr<T> {
    pub(crate) fn eval(&self, f: &mut dyn FnMut(&T) -> bool) -> bool {
        match self {
            BoolExpr::Leaf(t) => f(t),
            BoolExpr::And(xs) => xs.iter().all(|x| x.eval(f)),
            BoolExpr::Or(xs) => xs.iter().any(|x| x.eval(f)),
        }
    }

    pub(crate) fn leaves(&self) -> Vec<&T> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a T>) {
        match self {
            BoolExpr::Leaf(t) => out.push(t),
            BoolExpr::And(xs) | BoolExpr::Or(xs) => xs.iter().for_each(|x| x.collect(out)),
        }
    }

    pub(crate) fn leaves_mut(&mut self, f: &mut dyn FnMut(&mut T)) {
        match self {
            BoolExpr::Leaf(t) => f(t),
            BoolExpr::And(xs) | BoolExpr::Or(xs) => xs.iter_mut().for_each(|x| x.leaves_mut(f)),
        }
    }
}

/// A position in the text being parsed, with the language name used in error messages.
pub(crate) struct Cursor<'a> {
    pub input: &'a str,
    pub pos: usize,
    pub lang: &'static str,
    terms: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(lang: &'static str, input: &'a str) -> Self {
        Cursor {
            input,
            pos: 0,
            lang,
            terms: 0,
        }
    }

    pub fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    pub fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            return true;
        }
        false
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    pub fn error_at(&self, at: usize, what: impl std::fmt::Display) -> QueryError {
        QueryError::at(self.lang, self.input, at, what)
    }

    pub fn error(&self, what: impl std::fmt::Display) -> QueryError {
        self.error_at(self.pos, what)
    }

    /// "unexpected 'x'" or "unexpected end of input", at the cursor.
    pub fn unexpected(&self) -> QueryError {
        match self.peek() {
            Some(c) => self.error(format!("unexpected '{c}'")),
            None => self.error("unexpected end of input"),
        }
    }
}

/// Parses a whole expression: `leaf` parses one leaf and must stop before `;`, any of
/// `or_ops` and `)`. Rejects trailing text, nesting beyond [`MAX_DEPTH`] and more than
/// [`MAX_TERMS`] leaves.
pub(crate) fn parse_bool<T>(
    cur: &mut Cursor<'_>,
    or_ops: &[char],
    leaf: &mut dyn FnMut(&mut Cursor<'_>) -> Result<T, QueryError>,
) -> Result<BoolExpr<T>, QueryError> {
    QueryError::check_len(cur.lang, cur.input)?;
    cur.skip_ws();
    if cur.peek().is_none() {
        return Err(QueryError::new(format!(
            "{}: expression is empty",
            cur.lang
        )));
    }
    let expr = parse_or(cur, or_ops, leaf, 0)?;
    cur.skip_ws();
    if cur.peek().is_some() {
        return Err(cur.unexpected());
    }
    Ok(expr)
}

type Leaf<'f, T> = dyn FnMut(&mut Cursor<'_>) -> Result<T, QueryError> + 'f;

fn parse_or<T>(
    cur: &mut Cursor<'_>,
    or_ops: &[char],
    leaf: &mut Leaf<'_, T>,
    depth: usize,
) -> Result<BoolExpr<T>, QueryError> {
    let mut items = vec![parse_and(cur, or_ops, leaf, depth)?];
    loop {
        cur.skip_ws();
        match cur.peek() {
            Some(c) if or_ops.contains(&c) => {
                cur.bump();
                items.push(parse_and(cur, or_ops, leaf, depth)?);
            }
            _ => break,
        }
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        BoolExpr::Or(items)
    })
}

fn parse_and<T>(
    cur: &mut Cursor<'_>,
    or_ops: &[char],
    leaf: &mut Leaf<'_, T>,
    depth: usize,
) -> Result<BoolExpr<T>, QueryError> {
    let mut items = vec![parse_primary(cur, or_ops, leaf, depth)?];
    loop {
        cur.skip_ws();
        if !cur.eat(";") {
            break;
        }
        items.push(parse_primary(cur, or_ops, leaf, depth)?);
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        BoolExpr::And(items)
    })
}

fn parse_primary<T>(
    cur: &mut Cursor<'_>,
    or_ops: &[char],
    leaf: &mut Leaf<'_, T>,
    depth: usize,
) -> Result<BoolExpr<T>, QueryError> {
    cur.skip_ws();
    let open = cur.pos;
    if cur.eat("(") {
        if depth + 1 > MAX_DEPTH {
            return Err(cur.error_at(
                open,
                format_args!("parentheses nested deeper than {MAX_DEPTH}"),
            ));
        }
        let inner = parse_or(cur, or_ops, leaf, depth + 1)?;
        cur.skip_ws();
        if !cur.eat(")") {
            return Err(match cur.peek() {
                None => cur.error_at(open, "unclosed '('"),
                Some(_) => cur.unexpected(),
            });
        }
        return Ok(inner);
    }
    match cur.peek() {
        None => return Err(cur.unexpected()),
        Some(c) if c == ')' || c == ';' || or_ops.contains(&c) => return Err(cur.unexpected()),
        _ => {}
    }
    cur.terms += 1;
    if cur.terms > MAX_TERMS {
        return Err(cur.error(format_args!("more than {MAX_TERMS} terms")));
    }
    Ok(BoolExpr::Leaf(leaf(cur)?))
}
