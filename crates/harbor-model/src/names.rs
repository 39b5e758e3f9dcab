//! Expanded IRIs of the NGSI-LD core vocabulary that the broker itself interprets.

pub const NGSI_LD: &str = "https://uri.etsi.org/ngsi-ld/";
pub const DEFAULT_CONTEXT: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

pub const LOCATION: &str = "https://uri.etsi.org/ngsi-ld/location";
pub const OBSERVATION_SPACE: &str = "https://uri.etsi.org/ngsi-ld/observationSpace";
pub const OPERATION_SPACE: &str = "https://uri.etsi.org/ngsi-ld/operationSpace";

/// Member names of an entity or attribute that are not attributes (after expansion these
/// stay short: the broker keeps them by their compact core-context name).
pub const ENTITY_RESERVED: &[&str] = &[
    "id",
    "@id",
    "type",
    "@type",
    "scope",
    "@context",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "expiresAt",
];

pub const ATTR_RESERVED: &[&str] = &[
    "type",
    "@type",
    "value",
    "object",
    "objectType",
    "languageMap",
    "json",
    "vocab",
    "valueList",
    "objectList",
    "datasetId",
    "observedAt",
    "unitCode",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "expiresAt",
    "instanceId",
    "@context",
    "lang",
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
    "entity",
];
