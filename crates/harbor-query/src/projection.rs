//! The Attribute Projection Language of `pick` and `omit` (4.21).
//!
//! ```text
//! Projection = Term *(("," / "|") Term)      ; both spellings of the or-operator
//! Term       = Name ["{" Projection "}"]     ; braces select members of the linked Entity
//! ```
//!
//! A term with braces keeps its head (a Relationship) and applies the inner projection to
//! the Entity it links to (4.5.23); every level of braces is one Linked Entity hop. Names are
//! kept as written (they match rendered, compacted member names) together with their expanded
//! form (for the engine, which follows Relationships by expanded name).

use crate::QueryError;

/// Entity members that are not attributes and are never expanded.
const CORE_MEMBERS: &[&str] = &[
    "id",
    "type",
    "scope",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "expiresAt",
    "@context",
];

/// Whether `pick` keeps the listed members or `omit` drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionKind {
    Pick,
    Omit,
}

/// One parsed `pick` or `omit` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub kind: ProjectionKind,
    pub terms: Vec<ProjTerm>,
}

/// One member of a projection.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjTerm {
    /// The member name as written (compacted).
    pub name: String,
    /// The expanded attribute name; equal to `name` for core members (`id`, `type`, ...).
    pub iri: String,
    /// `name{...}`: the projection of the linked Entity.
    pub linked: Option<Vec<ProjTerm>>,
}

/// Parses a `pick` (or `omit`) value; `expand` maps a short attribute name to its IRI.
pub fn parse_projection(
    input: &str,
    kind: ProjectionKind,
    expand: &dyn Fn(&str) -> String,
) -> Result<Projection, QueryError> {
    let lang = match kind {
        ProjectionKind::Pick => "pick",
        ProjectionKind::Omit => "omit",
    };
    QueryError::check_len(lang, input)?;
    let mut p = Parser {
        lang,
        input,
        pos: 0,
        expand,
    };
    let terms = p.list(0)?;
    if p.pos < input.len() {
        return Err(p.error("unexpected '}'"));
    }
    Ok(Projection { kind, terms })
}

struct Parser<'a> {
    lang: &'a str,
    input: &'a str,
    pos: usize,
    expand: &'a dyn Fn(&str) -> String,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> QueryError {
        QueryError::at(self.lang, self.input, self.pos, what)
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    /// Terms up to the end of input or a closing brace (not consumed).
    fn list(&mut self, depth: usize) -> Result<Vec<ProjTerm>, QueryError> {
        if depth > crate::MAX_DEPTH {
            return Err(self.error("braces are nested too deeply"));
        }
        let mut terms = vec![self.term(depth)?];
        while let Some(c @ (',' | '|')) = self.peek() {
            self.pos += c.len_utf8();
            terms.push(self.term(depth)?);
        }
        if terms.len() > crate::MAX_TERMS {
            return Err(self.error("too many members"));
        }
        Ok(terms)
    }

    fn term(&mut self, depth: usize) -> Result<ProjTerm, QueryError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if matches!(c, ',' | '|' | '{' | '}') {
                break;
            }
            if !is_name_char(c) {
                return Err(self.error(&format!("'{c}' cannot appear in a member name")));
            }
            self.pos += c.len_utf8();
        }
        let name = &self.input[start..self.pos];
        if name.is_empty() {
            return Err(match self.peek() {
                None => self.error("a member name is missing at the end"),
                Some(c) => self.error(&format!("a member name is missing before '{c}'")),
            });
        }
        let iri = if CORE_MEMBERS.contains(&name) {
            name.to_string()
        } else {
            (self.expand)(name)
        };
        let mut linked = None;
        if self.peek() == Some('{') {
            self.pos += 1;
            let inner = self.list(depth + 1)?;
            if self.peek() != Some('}') {
                return Err(self.error(&format!("'{{' after \"{name}\" is never closed")));
            }
            self.pos += 1;
            linked = Some(inner);
        }
        Ok(ProjTerm {
            name: name.to_string(),
            iri,
            linked,
        })
    }
}

/// Characters of an attribute name, a compact IRI or an IRI (no separators, no quotes).
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '#' | '@' | '~' | '%')
}

impl Projection {
    /// How many Linked Entity hops the deepest `{...}` selection takes (0 when none).
    pub fn depth(&self) -> usize {
        fn depth(terms: &[ProjTerm]) -> usize {
            terms
                .iter()
                .map(|t| t.linked.as_deref().map_or(0, |l| 1 + depth(l)))
                .max()
                .unwrap_or(0)
        }
        depth(&self.terms)
    }

    fn find(&self, name: &str) -> Option<&ProjTerm> {
        self.terms.iter().find(|t| t.name == name)
    }

    fn find_iri(&self, iri: &str) -> Option<&ProjTerm> {
        self.terms.iter().find(|t| t.iri == iri)
    }

    /// Whether a rendered member (compacted name) stays.
    pub fn keeps(&self, member: &str) -> bool {
        match self.kind {
            ProjectionKind::Pick => self.find(member).is_some(),
            ProjectionKind::Omit => self.find(member).is_none_or(|t| t.linked.is_some()),
        }
    }

    /// Whether the attribute with this expanded name stays.
    pub fn keeps_attr(&self, iri: &str) -> bool {
        match self.kind {
            ProjectionKind::Pick => self.find_iri(iri).is_some(),
            ProjectionKind::Omit => self.find_iri(iri).is_none_or(|t| t.linked.is_some()),
        }
    }

    /// The projection of the Entity linked through an attribute (expanded name), `None`
    /// when that Entity is shown whole.
    pub fn linked(&self, iri: &str) -> Option<Projection> {
        let terms = self.find_iri(iri)?.linked.clone()?;
        Some(Projection {
            kind: self.kind,
            terms,
        })
    }
}
