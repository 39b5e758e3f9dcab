//! Context Source Registrations (5.2.9) as the broker holds them: every member a client may
//! set, with names (entity types, property and relationship names, extra properties) as
//! expanded IRIs, and the status members the broker keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::subscription::KeyValue;
use crate::Timestamp;

/// The registration modes of 5.2.9 (`inclusive` when none is given).
pub const MODES: &[&str] = &["inclusive", "exclusive", "redirect", "auxiliary"];

/// The operations a registration gets when it names none (Table 5.2.9-1).
pub const DEFAULT_OPERATIONS: &[&str] = &["federationOps"];

/// The operation names and operation groups of 4.20 in V1.9.1: Table 4.20-1 (operations)
/// and Table 4.20-2 (groups).
pub const OPERATIONS: &[&str] = &[
    // Context Information Provision
    "createEntity",
    "updateEntity",
    "appendAttrs",
    "updateAttrs",
    "deleteAttrs",
    "deleteEntity",
    "createBatch",
    "upsertBatch",
    "updateBatch",
    "deleteBatch",
    "upsertTemporal",
    "appendAttrsTemporal",
    "deleteAttrsTemporal",
    "updateAttrInstanceTemporal",
    "deleteAttrInstanceTemporal",
    "deleteTemporal",
    "mergeEntity",
    "replaceEntity",
    "replaceAttrs",
    "mergeBatch",
    "purgeEntity",
    // Context Information Consumption
    "retrieveEntity",
    "queryEntity",
    "queryBatch",
    "retrieveTemporal",
    "queryTemporal",
    "retrieveEntityTypes",
    "retrieveEntityTypeDetails",
    "retrieveEntityTypeInfo",
    "retrieveAttrTypes",
    "retrieveAttrTypeDetails",
    "retrieveAttrTypeInfo",
    // Context Information Subscription
    "createSubscription",
    "updateSubscription",
    "retrieveSubscription",
    "querySubscription",
    "deleteSubscription",
    // Support operations for distributed operations
    "retrieveEntityMap",
    "updateEntityMap",
    "deleteEntityMap",
    "createEntityMapQueryEntity",
    "createEntityMapQueryTemporal",
    "retrieveContextSourceIdentity",
    // Groups (Table 4.20-2)
    "federationOps",
    "associationOps",
    "updateOps",
    "retrieveOps",
    "redirectionOps",
];

/// One context source registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub information: Vec<RegistrationInfo>,
    /// The tenant at the context source (not the tenant this registration is stored in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_interval: Option<TimeInterval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_interval: Option<TimeInterval>,
    /// GeoJSON geometries, checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_space: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_space: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_source_info: Option<Vec<KeyValue>>,
    /// Scopes (4.18) as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    pub mode: String,
    pub operations: Vec<String>,
    /// ISO 8601 duration as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_rate: Option<String>,
    /// `management` (5.2.34) as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<Value>,
    /// Extra properties by expanded name, values as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
    #[serde(default)]
    pub status: RegistrationStatus,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// One element of `information` (5.2.10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<RegisteredEntity>>,
    /// Expanded names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_names: Option<Vec<String>>,
}

/// One element of `entities` (5.2.8): `type` expanded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    pub entity_type: String,
}

/// A time interval (5.2.11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeInterval {
    pub start_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<Timestamp>,
}

/// What the broker records about its use of the context source (5.2.9 status members).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistrationStatus {
    #[serde(default)]
    pub times_sent: u64,
    #[serde(default)]
    pub times_failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Timestamp>,
}
