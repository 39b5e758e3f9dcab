//! Parsers and evaluators for the NGSI-LD selection languages (ETSI GS CIM 009 V1.9.1):
//! `q` (4.9), `scopeQ` (4.19), geo-queries (4.10), temporal queries (4.11) and entity type
//! expressions (4.17), and the aggregation of the temporal representation (4.5.19,
//! [`Aggregator`]).
//!
//! Every parser takes already percent-decoded text and returns a typed query or a
//! [`QueryError`] whose `detail` names the problem and its 1-based character position.
//! Inputs are bounded ([`MAX_INPUT_LEN`] bytes, [`MAX_DEPTH`] nested parentheses,
//! [`MAX_TERMS`] terms), so hostile input fails fast instead of exhausting the stack.
//!
//! # `q` grammar (4.9), as accepted here
//!
//! ```text
//! Query     = And *("|" And)                  ; "|" is OR, binds loosest
//! And       = Primary *(";" Primary)          ; ";" is AND
//! Primary   = "(" Query ")" / Term
//! Term      = ["!"] Path                      ; existence / non-existence
//!           / Path ("=="/"!=") EqValue        ; value, list "a","b" or range lo..hi
//!           / Path (">"/">="/"<"/"<=") Value
//!           / Path ("~="/"!~=") RegExp        ; quoted or bare, Rust regex syntax
//! Path      = Name "{" Path "}"               ; attribute of the linked Entity
//!           / Name *("." Name) *("[" Key *("." Key) "]")
//! Value     = quotedStr / Number / true / false / bare (URI, DateTime, Date, Time)
//! ```
//!
//! A `.Name` step is a sub-attribute, or one of `observedAt`, `createdAt`, `modifiedAt`,
//! `unitCode`, `datasetId`; `[...]` keys walk into a JSON value (for a LanguageProperty the
//! key is a language tag, `*` any). Top-level `id`, `type`, `createdAt`, `modifiedAt` address
//! the Entity itself. When a value is an array, a comparison holds if any element matches;
//! `!=` and `!~=` hold when the target exists and no element matches. Relationships compare
//! their object(s) and only with `==`/`!=`.

mod aggregate;
mod bool_expr;
mod entity_query;
mod error;
mod geo_query;
mod geojson;
mod index;
mod order;
mod projection;
mod q_eval;
mod q_parse;
mod q_value;
mod scope;
mod spherical;
mod temporal;
mod type_expr;

#[cfg(test)]
mod tests;

pub use aggregate::{
    aggr_methods_from_json, parse_aggr_methods, parse_aggr_period_duration, AggrMethod, Aggregated,
    AggregatedSeries, Aggregator, Period, PeriodValues, Sample, TimeRange, MAX_DISTINCT,
    MAX_PERIOD_YEARS,
};
pub use entity_query::EntityQuery;
pub use error::QueryError;
pub use geo_query::{parse_coordinates_text, parse_geo_query, GeoQuery, GeoRel};
pub use geojson::geojson_to_geometry;
pub use index::{index_keys, KeyRange, Num, Plan, ScalarKey, Unkeyed, MAX_KEY_LEN};
pub use order::{order_from, parse_order_by, Direction, OrderBy};
pub use projection::{parse_projection, ProjTerm, Projection, ProjectionKind};
pub use q_eval::LinkResolver;
pub use q_parse::{parse_q, Q};
pub use scope::{parse_scope_q, ScopeQ};
pub use temporal::{parse_temporal_query, TemporalParams, TemporalQuery, TimeRel};
pub use type_expr::{parse_type_expr, TypeExpr};

/// Longest accepted query text, in bytes.
pub const MAX_INPUT_LEN: usize = 8 * 1024;
/// Deepest accepted nesting of parentheses (and of linked-entity braces).
pub const MAX_DEPTH: usize = 32;
/// Most terms accepted in one expression.
pub const MAX_TERMS: usize = 256;
