//! The `q` query language (4.9): its syntax tree and parser. Evaluation lives in `q_eval`.

use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::bool_expr::{parse_bool, BoolExpr, Cursor};
use crate::q_value::{bare_literal, Lit};
use crate::{QueryError, MAX_DEPTH};

/// Largest compiled regular expression accepted in `~=` / `!~=`, in bytes.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A parsed `q` expression; attribute names in it are expanded.
#[derive(Debug, Clone)]
pub struct Q {
    pub(crate) expr: BoolExpr<Term>,
}

#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub path: Path,
    pub test: Test,
}

/// What a term addresses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Path {
    EntityId,
    EntityType,
    EntityCreatedAt,
    EntityModifiedAt,
    Attr(AttrPath),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttrPath {
    /// Expanded attribute name.
    pub name: String,
    /// Sub-attribute steps (expanded), possibly ending in one meta member.
    pub steps: Vec<Step>,
    /// `[a.b]` keys into the value, not expanded.
    pub keys: Vec<String>,
    /// `name{...}`: the rest of the path applies to the Entity the Relationship targets.
    pub link: Option<Box<Link>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Sub(String),
    Meta(Meta),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Meta {
    ObservedAt,
    CreatedAt,
    ModifiedAt,
    UnitCode,
    DatasetId,
}

impl Meta {
    fn from_name(s: &str) -> Option<Meta> {
        Some(match s {
            "observedAt" => Meta::ObservedAt,
            "createdAt" => Meta::CreatedAt,
            "modifiedAt" => Meta::ModifiedAt,
            "unitCode" => Meta::UnitCode,
            "datasetId" => Meta::DatasetId,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Meta::ObservedAt => "observedAt",
            Meta::CreatedAt => "createdAt",
            Meta::ModifiedAt => "modifiedAt",
            Meta::UnitCode => "unitCode",
            Meta::DatasetId => "datasetId",
        }
    }
}

/// The inside of `rel{...}`. `Type:attr` is a type hint: when the target has that (expanded)
/// type, `hint.1` is the attribute name used instead of the one in `path`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    pub hint: Option<(String, String)>,
    pub path: Path,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Exists,
    Missing,
    /// `negated` for `!=` and `!~=`: the target exists and the predicate holds for none of
    /// its values.
    Holds {
        negated: bool,
        pred: Pred,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Order(OrderOp, Lit),
    /// Equal to any of one or more values.
    Eq(Vec<Lit>),
    /// Within `lo..hi`, both included.
    Range(Lit, Lit),
    Regex(Regex),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OrderOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Parses a `q` expression. `expand` turns a short attribute (or type) name into its
/// expanded IRI; it is applied to attribute and sub-attribute names, not to `[...]` keys
/// nor to the meta members (`observedAt`, ...).
pub fn parse_q(input: &str, expand: &dyn Fn(&str) -> String) -> Result<Q, QueryError> {
    let mut cur = Cursor::new("q", input);
    let expr = parse_bool(&mut cur, &['|'], &mut |c| parse_term(c, expand))?;
    Ok(Q { expr })
}

/// Characters that end an attribute name.
fn is_name_end(c: char) -> bool {
    c.is_whitespace() || "=<>!~;|()[]{}\".,\\".contains(c)
}

fn parse_term(cur: &mut Cursor<'_>, expand: &dyn Fn(&str) -> String) -> Result<Term, QueryError> {
    if cur.eat("!") {
        let path = parse_path(cur, expand, 0)?;
        cur.skip_ws();
        if matches!(cur.peek(), Some(c) if "=<>!~".contains(c)) {
            return Err(cur.error("a non-existence term ('!attr') takes no operator"));
        }
        return Ok(Term {
            path,
            test: Test::Missing,
        });
    }
    let path = parse_path(cur, expand, 0)?;
    cur.skip_ws();
    let op_at = cur.pos;
    let op = ["==", "!=", ">=", "<=", "!~=", "~=", ">", "<"]
        .into_iter()
        .find(|op| cur.eat(op));
    let Some(op) = op else {
        return match cur.peek() {
            None | Some(';' | '|' | ')') => Ok(Term {
                path,
                test: Test::Exists,
            }),
            Some(_) => Err(cur.unexpected()),
        };
    };
    cur.skip_ws();
    let test = match op {
        "~=" | "!~=" => Test::Holds {
            negated: op == "!~=",
            pred: Pred::Regex(parse_regex(cur)?),
        },
        "==" | "!=" => Test::Holds {
            negated: op == "!=",
            pred: parse_eq_value(cur)?,
        },
        _ => {
            let lit = parse_value(cur)?;
            if cur.rest().starts_with("..") || cur.rest().starts_with(',') {
                return Err(cur.error_at(
                    op_at,
                    format_args!("'{op}' takes a single value; ranges and lists need '==' or '!='"),
                ));
            }
            let op = match op {
                ">" => OrderOp::Gt,
                ">=" => OrderOp::Ge,
                "<" => OrderOp::Lt,
                _ => OrderOp::Le,
            };
            Test::Holds {
                negated: false,
                pred: Pred::Order(op, lit),
            }
        }
    };
    let mut term = Term { path, test };
    if term.path == Path::EntityType {
        expand_literals(&mut term, expand);
    }
    Ok(term)
}

fn parse_eq_value(cur: &mut Cursor<'_>) -> Result<Pred, QueryError> {
    let first = parse_value(cur)?;
    if cur.eat("..") {
        let hi = parse_value(cur)?;
        return Ok(Pred::Range(first, hi));
    }
    let mut values = vec![first];
    while cur.eat(",") {
        values.push(parse_value(cur)?);
    }
    Ok(Pred::Eq(values))
}

/// A quoted string, or a bare token up to `;`, `|`, `)`, `,`, `..` or whitespace.
fn parse_value(cur: &mut Cursor<'_>) -> Result<Lit, QueryError> {
    let start = cur.pos;
    if cur.peek() == Some('"') {
        return Ok(Lit::text(parse_quoted(cur)?));
    }
    while let Some(c) = cur.peek() {
        if ";|),".contains(c) || c.is_whitespace() || cur.rest().starts_with("..") {
            break;
        }
        if c == '"' || c == '(' {
            return Err(cur.unexpected());
        }
        cur.bump();
    }
    let token = &cur.input[start..cur.pos];
    if token.is_empty() {
        return Err(match cur.peek() {
            None => cur.error("expected a value, found end of input"),
            Some(c) => cur.error(format_args!("expected a value, found '{c}'")),
        });
    }
    bare_literal(token)
        .ok_or_else(|| cur.error_at(start, format_args!("number {token} is out of range")))
}

/// A `"..."` string; `\"` and `\\` are escapes.
fn parse_quoted(cur: &mut Cursor<'_>) -> Result<String, QueryError> {
    let start = cur.pos;
    cur.bump();
    let mut out = String::new();
    loop {
        match cur.bump() {
            None => return Err(cur.error_at(start, "unterminated string")),
            Some('"') => return Ok(out),
            Some('\\') => match cur.bump() {
                Some(c @ ('"' | '\\')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => return Err(cur.error_at(start, "unterminated string")),
            },
            Some(c) => out.push(c),
        }
    }
}

/// A quoted pattern, or a bare one up to `;`, `|` or an unbalanced `)`.
fn parse_regex(cur: &mut Cursor<'_>) -> Result<Regex, QueryError> {
    let start = cur.pos;
    let pattern = if cur.peek() == Some('"') {
        parse_quoted(cur)?
    } else {
        let mut depth = 0usize;
        let mut in_class = false;
        while let Some(c) = cur.peek() {
            match c {
                '\\' => {
                    cur.bump();
                }
                '[' => in_class = true,
                ']' => in_class = false,
                '(' if !in_class => depth += 1,
                ')' if !in_class && depth == 0 => break,
                ')' if !in_class => depth -= 1,
                ';' if !in_class && depth == 0 => break,
                '|' if !in_class && depth == 0 => break,
                _ => {}
            }
            cur.bump();
        }
        cur.input[start..cur.pos].to_string()
    };
    if pattern.is_empty() {
        return Err(cur.error_at(start, "expected a regular expression"));
    }
    RegexBuilder::new(&pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            let why = match e {
                regex::Error::CompiledTooBig(_) => "it is too large".to_string(),
                other => other
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            };
            cur.error_at(start, format_args!("invalid regular expression ({why})"))
        })
}

fn parse_name<'a>(cur: &mut Cursor<'a>) -> Result<&'a str, QueryError> {
    let start = cur.pos;
    while cur.peek().is_some_and(|c| !is_name_end(c)) {
        cur.bump();
    }
    if cur.pos == start {
        return Err(match cur.peek() {
            None => cur.error("expected an attribute name, found end of input"),
            Some(c) => cur.error(format_args!("expected an attribute name, found '{c}'")),
        });
    }
    Ok(&cur.input[start..cur.pos])
}

pub(crate) fn parse_path(
    cur: &mut Cursor<'_>,
    expand: &dyn Fn(&str) -> String,
    depth: usize,
) -> Result<Path, QueryError> {
    let name = parse_name(cur)?;
    let plain_end = !matches!(cur.peek(), Some('.' | '[' | '{'));
    if plain_end {
        match name {
            "id" => return Ok(Path::EntityId),
            "type" => return Ok(Path::EntityType),
            "createdAt" => return Ok(Path::EntityCreatedAt),
            "modifiedAt" => return Ok(Path::EntityModifiedAt),
            _ => {}
        }
    }
    let mut path = AttrPath {
        name: expand(name),
        steps: vec![],
        keys: vec![],
        link: None,
    };
    if cur.peek() == Some('{') {
        let open = cur.pos;
        cur.bump();
        if depth + 1 > MAX_DEPTH {
            return Err(cur.error_at(
                open,
                format_args!("linked attributes nested deeper than {MAX_DEPTH}"),
            ));
        }
        let inner_start = cur.pos;
        let inner_name = parse_name(cur)?;
        cur.pos = inner_start;
        let hint = inner_name
            .split_once(':')
            .filter(|(t, a)| !t.is_empty() && !a.is_empty() && !inner_name.contains('/'))
            .map(|(t, a)| (expand(t), expand(a)));
        let inner = parse_path(cur, expand, depth + 1)?;
        if !cur.eat("}") {
            return Err(match cur.peek() {
                None => cur.error_at(open, "unclosed '{'"),
                Some(_) => cur.unexpected(),
            });
        }
        path.link = Some(Box::new(Link { hint, path: inner }));
        return Ok(Path::Attr(path));
    }
    while cur.eat(".") {
        let at = cur.pos;
        if matches!(path.steps.last(), Some(Step::Meta(_))) {
            return Err(cur.error_at(at, "nothing may follow a meta member such as observedAt"));
        }
        let step = parse_name(cur)?;
        path.steps.push(match Meta::from_name(step) {
            Some(m) => Step::Meta(m),
            None => Step::Sub(expand(step)),
        });
    }
    while cur.peek() == Some('[') {
        let open = cur.pos;
        if matches!(path.steps.last(), Some(Step::Meta(_))) {
            return Err(cur.error_at(open, "nothing may follow a meta member such as observedAt"));
        }
        cur.bump();
        let start = cur.pos;
        while cur.peek().is_some_and(|c| c != ']' && c != '[') {
            cur.bump();
        }
        if !cur.eat("]") {
            return Err(match cur.peek() {
                None => cur.error_at(open, "unclosed '['"),
                Some(_) => cur.unexpected(),
            });
        }
        let inside = &cur.input[start..cur.pos - 1];
        for key in inside.split('.') {
            if key.is_empty() {
                return Err(cur.error_at(start, "empty key inside '[...]'"));
            }
            path.keys.push(key.to_string());
        }
    }
    Ok(Path::Attr(path))
}

fn expand_literals(term: &mut Term, expand: &dyn Fn(&str) -> String) {
    let fix = |l: &mut Lit| {
        if let Lit::Str { text, .. } = l {
            *l = Lit::text(expand(text));
        }
    };
    if let Test::Holds { pred, .. } = &mut term.test {
        match pred {
            Pred::Order(_, l) => fix(l),
            Pred::Eq(ls) => ls.iter_mut().for_each(fix),
            Pred::Range(a, b) => {
                fix(a);
                fix(b);
            }
            Pred::Regex(_) => {}
        }
    }
}

impl Q {
    /// Expands the string values compared with the listed (expanded) attributes, as the
    /// `expandValues` parameter asks: `category==commercial` then compares with the IRI
    /// that `expand("commercial")` gives.
    pub fn expand_values(&mut self, attrs: &[String], expand: &dyn Fn(&str) -> String) {
        self.expr.leaves_mut(&mut |t: &mut Term| {
            if let Path::Attr(p) = &t.path {
                if attrs.contains(&p.name) {
                    expand_literals(t, expand);
                }
            }
        });
    }
}

impl fmt::Display for Q {
    /// A canonical rendering with expanded names, fully parenthesised where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_expr(&self.expr, f, false)
    }
}

fn fmt_expr(e: &BoolExpr<Term>, f: &mut fmt::Formatter<'_>, nested: bool) -> fmt::Result {
    let (items, sep) = match e {
        BoolExpr::Leaf(t) => return write!(f, "{t}"),
        BoolExpr::And(xs) => (xs, ";"),
        BoolExpr::Or(xs) => (xs, "|"),
    };
    if nested {
        write!(f, "(")?;
    }
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            write!(f, "{sep}")?;
        }
        fmt_expr(x, f, true)?;
    }
    if nested {
        write!(f, ")")?;
    }
    Ok(())
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self.test, Test::Missing) {
            write!(f, "!")?;
        }
        write!(f, "{}", self.path)?;
        let Test::Holds { negated, pred } = &self.test else {
            return Ok(());
        };
        let list = |ls: &[Lit]| {
            ls.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match (pred, negated) {
            (Pred::Order(op, l), _) => {
                let op = match op {
                    OrderOp::Gt => ">",
                    OrderOp::Ge => ">=",
                    OrderOp::Lt => "<",
                    OrderOp::Le => "<=",
                };
                write!(f, "{op}{l}")
            }
            (Pred::Eq(ls), n) => write!(f, "{}{}", if *n { "!=" } else { "==" }, list(ls)),
            (Pred::Range(a, b), n) => write!(f, "{}{a}..{b}", if *n { "!=" } else { "==" }),
            (Pred::Regex(r), n) => write!(f, "{}{:?}", if *n { "!~=" } else { "~=" }, r.as_str()),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self {
            Path::EntityId => return write!(f, "id"),
            Path::EntityType => return write!(f, "type"),
            Path::EntityCreatedAt => return write!(f, "createdAt"),
            Path::EntityModifiedAt => return write!(f, "modifiedAt"),
            Path::Attr(p) => p,
        };
        write!(f, "{}", p.name)?;
        if let Some(link) = &p.link {
            return write!(f, "{{{}}}", link.path);
        }
        for s in &p.steps {
            match s {
                Step::Sub(n) => write!(f, ".{n}")?,
                Step::Meta(m) => write!(f, ".{}", m.name())?,
            }
        }
        if !p.keys.is_empty() {
            write!(f, "[{}]", p.keys.join("."))?;
        }
        Ok(())
    }
}
