//! A compiled `@context`: the term map NGSI-LD needs to expand and compact names (entity types,
//! attribute names, vocab values), with the built-in core context (V1.9) always applied last.
//!
//! Precedence (5.5.7 of V1.9.1, the core context is "always considered" and its terms are
//! `@protected`): user contexts are applied in array order, later ones overriding earlier
//! ones, then the core context is applied on top. Core terms therefore always win, and so
//! does the core `@vocab`: a user `@vocab` only affects how that user context's own term
//! values expand (as a JSON-LD processor would do when the core context comes last), never
//! the default expansion of undefined terms, which is always
//! `https://uri.etsi.org/ngsi-ld/default-context/`.

/// Term maps are read on every expansion and compaction of every request: hashed with
/// foldhash, seeded per process, instead of SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::{weight, JsonLdError};

/// The URL under which this broker advertises its core context.
pub const CORE_CONTEXT_URL: &str =
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld";

/// `@vocab` of the core context: where undefined terms expand to.
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

const CORE_DOCUMENT: &str = include_str!("core-context-v1.9.jsonld");

/// The V1.9 core context document, as served at [`CORE_CONTEXT_URL`].
pub fn core_document() -> &'static str {
    CORE_DOCUMENT
}

/// Whether `url` names a published NGSI-LD core context (any version from v1.0 to v1.9,
/// http or https, with or without `v1/`). Such URLs are never fetched.
pub fn is_core_context_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("uri.etsi.org/ngsi-ld/") else {
        return false;
    };
    let rest = rest.strip_prefix("v1/").unwrap_or(rest);
    let Some(rest) = rest.strip_prefix("ngsi-ld-core-context") else {
        return false;
    };
    let Some(version) = rest.strip_suffix(".jsonld") else {
        return false;
    };
    if version.is_empty() {
        return true;
    }
    // "-v1.N" or "-v1.N.M"
    let Some(numbers) = version.strip_prefix("-v1.") else {
        return false;
    };
    numbers
        .split('.')
        .all(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
        && numbers.split('.').count() <= 2
}

/// A stable 64-bit FNV-1a hash of a JSON value, as 16 hex digits: a short name for an inline
/// context in logs and registry ids. Not collision resistant: caches key inline contexts by
/// their full serialization (see [`content_key`]).
pub fn content_hash(value: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content_key(value).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The exact cache key of an inline context: its compact serialization (member order kept).
pub fn content_key(value: &Value) -> String {
    value.to_string()
}

/// One term definition after compilation: the expanded IRI (or a keyword such as `@id`),
/// the expanded `@type` coercion (`@id`, `@vocab`, `@json`, or an IRI) and `@container`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermDef {
    pub iri: String,
    pub type_: Option<String>,
    pub container: Option<String>,
}

/// A compiled context. The core context stands alone; a user context holds only its own
/// terms (those the core does not define) and falls back to the core for everything else.
#[derive(Debug)]
pub struct Context {
    core: Option<Arc<Context>>,
    terms: HashMap<String, TermDef>,
    /// Terms usable as prefixes (`prefix:suffix`), by term.
    prefix_map: HashMap<String, String>,
    /// IRI → preferred term, own terms only.
    reverse: HashMap<String, String>,
    vocab: String,
}

impl Context {
    /// The built-in NGSI-LD core context (V1.9), compiled once.
    pub fn core() -> Arc<Context> {
        static CORE: OnceLock<Arc<Context>> = OnceLock::new();
        CORE.get_or_init(|| {
            let doc: Value =
                serde_json::from_str(CORE_DOCUMENT).expect("built-in core context is JSON");
            let Some(Value::Object(local)) = doc.get("@context") else {
                unreachable!("built-in core context has an @context object")
            };
            let mut b = Builder::new(None);
            b.apply(local).expect("built-in core context compiles");
            Arc::new(b.finish())
        })
        .clone()
    }

    /// Compiles the user part of an `@context`: each element is the (already fetched) value of
    /// one `@context` entry, an object of term definitions (nested arrays are flattened,
    /// `null` resets what came before, core context URLs are skipped). The core context is
    /// applied last.
    pub fn compile(docs: &[Value]) -> Result<Context, JsonLdError> {
        let core = Context::core();
        let mut b = Builder::new(Some(core));
        for doc in docs {
            b.apply_value(doc)?;
        }
        Ok(b.finish())
    }

    /// The bytes of memory this compiled context holds of its own (the core context it falls
    /// back to is shared and not counted): what a cache of compiled contexts is charged for it.
    pub fn heap_bytes(&self) -> usize {
        let def = |d: &TermDef| {
            weight::string(&d.iri)
                + d.type_.as_deref().map_or(0, weight::string)
                + d.container.as_deref().map_or(0, weight::string)
        };
        weight::table::<(String, TermDef)>(self.terms.capacity())
            + self
                .terms
                .iter()
                .map(|(t, d)| weight::string(t) + def(d))
                .sum::<usize>()
            + weight::string_map(&self.prefix_map)
            + weight::string_map(&self.reverse)
            + weight::string(&self.vocab)
    }

    /// Whether this is the core context itself (no user terms at all).
    pub fn is_core(&self) -> bool {
        self.core.is_none()
    }

    /// The `@vocab` in force for undefined terms.
    pub fn vocab(&self) -> &str {
        &self.vocab
    }

    /// The definition of a term (core terms win over user terms).
    pub fn term_def(&self, term: &str) -> Option<&TermDef> {
        match &self.core {
            Some(core) => core.terms.get(term).or_else(|| self.terms.get(term)),
            None => self.terms.get(term),
        }
    }

    /// The user's own term definitions (those not shadowed by the core context).
    pub fn user_terms(&self) -> impl Iterator<Item = (&str, &TermDef)> {
        let own = self.core.is_some();
        self.terms
            .iter()
            .filter(move |_| own)
            .map(|(t, d)| (t.as_str(), d))
    }

    fn prefix_iri(&self, prefix: &str) -> Option<&str> {
        if let Some(core) = &self.core {
            if core.terms.contains_key(prefix) {
                return core.prefix_map.get(prefix).map(String::as_str);
            }
        }
        self.prefix_map.get(prefix).map(String::as_str)
    }

    /// Expands a term as NGSI-LD expands names: a defined term gives its IRI; `prefix:suffix`
    /// with a known prefix is expanded; any other string with a colon is an absolute IRI and
    /// kept; anything else is appended to the `@vocab`.
    pub fn expand_term(&self, term: &str) -> String {
        if let Some(def) = self.term_def(term) {
            return def.iri.clone();
        }
        if let Some((prefix, suffix)) = term.split_once(':') {
            if prefix != "_" && !suffix.starts_with("//") {
                if let Some(iri) = self.prefix_iri(prefix) {
                    return format!("{iri}{suffix}");
                }
            }
            return term.to_string();
        }
        format!("{}{term}", self.vocab)
    }

    /// Compacts an IRI: a term mapping to it (the user's before the core's, the shortest
    /// then alphabetically first among several); else the IRI minus the `@vocab` when that
    /// expands back; else the IRI unchanged. No `prefix:suffix` compact IRIs are made: 5.5.7
    /// asks for the fully qualified name when no term matches.
    pub fn compact_iri(&self, iri: &str) -> String {
        self.compact(iri).to_string()
    }

    /// [`compact_iri`](Self::compact_iri) without allocating: the term, or the part of `iri`
    /// it compacts to.
    pub fn compact<'a>(&'a self, iri: &'a str) -> &'a str {
        if let Some(term) = self.reverse.get(iri) {
            return term;
        }
        if let Some(core) = &self.core {
            if let Some(term) = core.reverse.get(iri) {
                return term;
            }
        }
        if let Some(rest) = iri.strip_prefix(self.vocab.as_str()) {
            // `rest` expands back to `iri` through `@vocab` unless a term or a prefix claims it.
            let round_trips = match self.term_def(rest) {
                Some(def) => def.iri == iri,
                None if rest.contains(':') => self.expand_term(rest) == iri,
                None => true,
            };
            if !rest.is_empty() && round_trips {
                return rest;
            }
        }
        iri
    }
}

/// Characters after which an IRI can serve as a prefix (JSON-LD 1.1 gen-delims).
fn ends_with_gen_delim(iri: &str) -> bool {
    iri.ends_with(['/', '#', ':', '?', '[', ']', '@'])
}

/// Accumulates term definitions over the user contexts, JSON-LD style.
struct Builder {
    core: Option<Arc<Context>>,
    terms: HashMap<String, TermDef>,
    prefix_map: HashMap<String, String>,
    vocab: Option<String>,
}

/// Per local context: `false` while a term is being defined, `true` once it is.
type DefState = HashMap<String, bool>;

impl Builder {
    fn new(core: Option<Arc<Context>>) -> Self {
        Builder {
            core,
            terms: HashMap::default(),
            prefix_map: HashMap::default(),
            vocab: None,
        }
    }

    fn apply_value(&mut self, doc: &Value) -> Result<(), JsonLdError> {
        match doc {
            Value::Object(local) => self.apply(local),
            Value::Array(items) => items.iter().try_for_each(|d| self.apply_value(d)),
            Value::Null => {
                self.terms.clear();
                self.prefix_map.clear();
                self.vocab = None;
                Ok(())
            }
            Value::String(url) if is_core_context_url(url) => Ok(()),
            Value::String(url) => Err(JsonLdError::Invalid(format!(
                "remote @context \"{url}\" must be resolved before it is compiled"
            ))),
            other => Err(JsonLdError::Invalid(format!(
                "an @context entry must be a URL string or an object, got {other}"
            ))),
        }
    }

    fn apply(&mut self, local: &Map<String, Value>) -> Result<(), JsonLdError> {
        let mut state = DefState::default();
        match local.get("@vocab") {
            None => {}
            Some(Value::Null) => self.vocab = None,
            Some(Value::String(v)) => {
                let iri = if v.contains(':') {
                    self.expand_iri(v, local, &mut state)?
                } else {
                    format!("{}{v}", self.current_vocab())
                };
                self.vocab = Some(iri);
            }
            Some(other) => {
                return Err(JsonLdError::Invalid(format!(
                    "\"@vocab\" must be a string or null, got {other}"
                )))
            }
        }
        if let Some(Value::String(_)) = local.get("@import") {
            tracing::debug!("@import in an @context is not supported; ignored");
        }
        for term in local.keys() {
            if term.starts_with('@') {
                continue;
            }
            self.define(local, term, &mut state)?;
        }
        Ok(())
    }

    fn current_vocab(&self) -> &str {
        match (&self.vocab, &self.core) {
            (Some(v), _) => v,
            (None, Some(core)) => &core.vocab,
            (None, None) => DEFAULT_VOCAB,
        }
    }

    fn undefine(&mut self, term: &str) {
        self.terms.remove(term);
        self.prefix_map.remove(term);
    }

    fn define(
        &mut self,
        local: &Map<String, Value>,
        term: &str,
        state: &mut DefState,
    ) -> Result<(), JsonLdError> {
        match state.get(term) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(JsonLdError::Invalid(format!(
                    "cyclic IRI mapping involving term \"{term}\""
                )))
            }
            None => {}
        }
        state.insert(term.to_string(), false);
        let Some(value) = local.get(term) else {
            state.insert(term.to_string(), true);
            return Ok(());
        };
        let (id, type_, container, explicit_prefix) = match value {
            Value::Null => (None, None, None, None),
            Value::String(s) => (Some(s.as_str()), None, None, None),
            Value::Object(def) if self.core.is_some() && def.contains_key("@context") => {
                return Err(JsonLdError::Invalid(format!(
                    "term \"{term}\": a user @context must not contain scoped contexts (5.5.7)"
                )))
            }
            Value::Object(def) => parse_expanded_def(term, def)?,
            other => {
                return Err(JsonLdError::Invalid(format!(
                    "term \"{term}\": a definition must be a string, an object or null, got {other}"
                )))
            }
        };
        let unmapped = value.is_null()
            || matches!(value, Value::Object(o) if matches!(o.get("@id"), Some(Value::Null)))
            || matches!(value, Value::Object(o) if o.contains_key("@reverse") && !o.contains_key("@id"));
        if unmapped {
            self.undefine(term);
            state.insert(term.to_string(), true);
            return Ok(());
        }
        let iri = match id {
            Some(id) if id != term => self.expand_iri(id, local, state)?,
            _ if term.contains(':') => self.expand_compact(term, local, state)?,
            _ => format!("{}{term}", self.current_vocab()),
        };
        let type_ = match type_ {
            Some(t) if t.starts_with('@') => Some(t.to_string()),
            Some(t) => Some(self.expand_iri(t, local, state)?),
            None => None,
        };
        let prefix = explicit_prefix.unwrap_or_else(|| {
            !iri.starts_with('@') && !term.contains(':') && ends_with_gen_delim(&iri)
        });
        if prefix {
            self.prefix_map.insert(term.to_string(), iri.clone());
        } else {
            self.prefix_map.remove(term);
        }
        self.terms.insert(
            term.to_string(),
            TermDef {
                iri,
                type_,
                container,
            },
        );
        state.insert(term.to_string(), true);
        Ok(())
    }

    /// IRI expansion of a value inside a term definition (JSON-LD "vocab-relative").
    fn expand_iri(
        &mut self,
        value: &str,
        local: &Map<String, Value>,
        state: &mut DefState,
    ) -> Result<String, JsonLdError> {
        if value.starts_with('@') {
            return Ok(value.to_string());
        }
        if local.contains_key(value) && state.get(value) != Some(&true) {
            self.define(local, value, state)?;
        }
        if let Some(def) = self.lookup(value) {
            return Ok(def.iri.clone());
        }
        if value.contains(':') {
            return self.expand_compact(value, local, state);
        }
        Ok(format!("{}{value}", self.current_vocab()))
    }

    fn expand_compact(
        &mut self,
        value: &str,
        local: &Map<String, Value>,
        state: &mut DefState,
    ) -> Result<String, JsonLdError> {
        let Some((prefix, suffix)) = value.split_once(':') else {
            return Ok(value.to_string());
        };
        if prefix == "_" || suffix.starts_with("//") {
            return Ok(value.to_string());
        }
        if local.contains_key(prefix) && state.get(prefix) != Some(&true) {
            self.define(local, prefix, state)?;
        }
        let prefix_iri = if self.terms.contains_key(prefix) {
            self.prefix_map.get(prefix).cloned()
        } else {
            self.core
                .as_ref()
                .and_then(|c| c.prefix_iri(prefix).map(str::to_string))
        };
        Ok(match prefix_iri {
            Some(iri) => format!("{iri}{suffix}"),
            None => value.to_string(),
        })
    }

    fn lookup(&self, term: &str) -> Option<&TermDef> {
        self.terms
            .get(term)
            .or_else(|| self.core.as_ref().and_then(|c| c.terms.get(term)))
    }

    fn finish(mut self) -> Context {
        let is_user = self.core.is_some();
        if let Some(core) = &self.core {
            self.terms.retain(|t, _| !core.terms.contains_key(t));
            self.prefix_map.retain(|t, _| !core.terms.contains_key(t));
        }
        let mut reverse: HashMap<String, String> = HashMap::default();
        for (term, def) in &self.terms {
            if is_user && def.iri.starts_with('@') {
                continue; // keyword aliases never replace the core's "id" / "type"
            }
            let better = match reverse.get(&def.iri) {
                None => true,
                Some(old) => (term.len(), term.as_str()) < (old.len(), old.as_str()),
            };
            if better {
                reverse.insert(def.iri.clone(), term.clone());
            }
        }
        let vocab = match &self.core {
            Some(core) => core.vocab.clone(),
            None => self
                .vocab
                .clone()
                .unwrap_or_else(|| DEFAULT_VOCAB.to_string()),
        };
        Context {
            core: self.core,
            terms: self.terms,
            prefix_map: self.prefix_map,
            reverse,
            vocab,
        }
    }
}

type ExpandedDef<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<String>,
    Option<bool>,
);

fn parse_expanded_def<'a>(
    term: &str,
    def: &'a Map<String, Value>,
) -> Result<ExpandedDef<'a>, JsonLdError> {
    let invalid =
        |what: &str, v: &Value| JsonLdError::Invalid(format!("term \"{term}\": {what}, got {v}"));
    let id = match def.get("@id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(v) => return Err(invalid("\"@id\" must be a string", v)),
    };
    let type_ = match def.get("@type") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(v) => return Err(invalid("\"@type\" must be a string", v)),
    };
    let container = match def.get("@container") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if names.len() != items.len() {
                return Err(invalid(
                    "\"@container\" must hold strings",
                    &Value::Array(items.clone()),
                ));
            }
            names
                .iter()
                .find(|n| **n != "@set")
                .or(names.first())
                .map(|n| n.to_string())
        }
        Some(v) => return Err(invalid("\"@container\" must be a string or an array", v)),
    };
    let prefix = match def.get("@prefix") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return Err(invalid("\"@prefix\" must be a boolean", v)),
    };
    Ok((id, type_, container, prefix))
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
