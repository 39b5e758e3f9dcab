//! JSON-LD for NGSI-LD: `@context` resolution and caching, compiled term maps, the
//! `/jsonldContexts` registry and rendering of entities in the NGSI-LD representations.
//! Only terms (types, attribute names, vocab values) are expanded and compacted; values never.

pub mod attribute;
pub mod context;
pub mod error;
pub mod expand;
pub mod lru;
pub mod registration;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod subscription;
pub mod temporal;
pub mod weight;

pub use context::{
    content_hash, content_key, core_document, is_core_context_url, Context, TermDef,
    CORE_CONTEXT_URL,
};
pub use error::JsonLdError;
