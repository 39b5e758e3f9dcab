//! Entities and attributes as the broker holds them: names and types are expanded IRIs,
//! values are kept as given (JSON), every attribute instance carries its system attributes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;

/// One NGSI-LD entity. Attribute names and types are expanded IRIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    /// Expanded entity type IRIs, in the order first given, without duplicates.
    pub types: Vec<String>,
    /// Scopes (4.18), e.g. `/Madrid/Centro`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Attribute instances by expanded attribute name. At most one instance per `datasetId`
    /// (the default instance has none).
    #[serde(default)]
    pub attrs: BTreeMap<String, Vec<Attribute>>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// Transient entities (4.22) vanish at this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// One attribute instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub value: AttrValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Sub-attributes by expanded name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sub: BTreeMap<String, Attribute>,
}

/// The kind of an attribute with its payload (4.5.2 – 4.5.24).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", content = "v")]
pub enum AttrValue {
    /// `value`: any JSON value.
    Property(Value),
    /// `object`: a URI, or an array of URIs; `objectType` optional (expanded).
    Relationship {
        object: Value,
        object_type: Option<Value>,
    },
    /// `value`: a GeoJSON geometry.
    GeoProperty(Value),
    /// `languageMap`: an object from language tag to string (or array of strings).
    LanguageProperty(Value),
    /// `json`: any JSON, never expanded.
    JsonProperty(Value),
    /// `vocab`: an expanded IRI, or an array of them.
    VocabProperty(Value),
    /// `valueList`: an array.
    ListProperty(Value),
    /// `objectList`: an array of URIs; `objectType` optional (expanded).
    ListRelationship {
        object_list: Value,
        object_type: Option<Value>,
    },
}

impl AttrValue {
    /// The NGSI-LD type name (`Property`, `Relationship`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrValue::Property(_) => "Property",
            AttrValue::Relationship { .. } => "Relationship",
            AttrValue::GeoProperty(_) => "GeoProperty",
            AttrValue::LanguageProperty(_) => "LanguageProperty",
            AttrValue::JsonProperty(_) => "JsonProperty",
            AttrValue::VocabProperty(_) => "VocabProperty",
            AttrValue::ListProperty(_) => "ListProperty",
            AttrValue::ListRelationship { .. } => "ListRelationship",
        }
    }

    /// The member name that carries the payload (`value`, `object`, `languageMap`, ...).
    pub fn payload_member(&self) -> &'static str {
        match self {
            AttrValue::Property(_) | AttrValue::GeoProperty(_) => "value",
            AttrValue::Relationship { .. } => "object",
            AttrValue::LanguageProperty(_) => "languageMap",
            AttrValue::JsonProperty(_) => "json",
            AttrValue::VocabProperty(_) => "vocab",
            AttrValue::ListProperty(_) => "valueList",
            AttrValue::ListRelationship { .. } => "objectList",
        }
    }

    /// The payload as JSON, as it is compared by `q` and shown in keyValues.
    pub fn payload(&self) -> &Value {
        match self {
            AttrValue::Property(v)
            | AttrValue::GeoProperty(v)
            | AttrValue::LanguageProperty(v)
            | AttrValue::JsonProperty(v)
            | AttrValue::VocabProperty(v)
            | AttrValue::ListProperty(v) => v,
            AttrValue::Relationship { object, .. } => object,
            AttrValue::ListRelationship { object_list, .. } => object_list,
        }
    }
}

impl Entity {
    /// The default instance of an attribute (no `datasetId`), or else its first instance.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        let instances = self.attrs.get(name)?;
        instances
            .iter()
            .find(|a| a.dataset_id.is_none())
            .or_else(|| instances.first())
    }

    /// Every attribute instance, with its expanded name.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &Attribute)> {
        self.attrs
            .iter()
            .flat_map(|(name, list)| list.iter().map(move |a| (name.as_str(), a)))
    }

    /// Whether the entity has any of the given expanded types.
    pub fn has_type(&self, ty: &str) -> bool {
        self.types.iter().any(|t| t == ty)
    }
}

impl Attribute {
    /// A new instance with both system timestamps set to `now`.
    pub fn new(value: AttrValue, now: Timestamp) -> Self {
        Attribute {
            value,
            dataset_id: None,
            observed_at: None,
            unit_code: None,
            created_at: now,
            modified_at: now,
            expires_at: None,
            sub: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_instance_is_preferred() {
        let now = crate::time::now();
        let mut a = Attribute::new(AttrValue::Property(Value::from(1)), now);
        a.dataset_id = Some("urn:ds:1".into());
        let b = Attribute::new(AttrValue::Property(Value::from(2)), now);
        let mut e = Entity {
            id: "urn:ngsi-ld:T:1".into(),
            types: vec!["https://example.org/T".into()],
            scopes: vec![],
            attrs: BTreeMap::new(),
            created_at: now,
            modified_at: now,
            expires_at: None,
        };
        e.attrs.insert("p".into(), vec![a, b]);
        assert_eq!(e.attr("p").unwrap().value.payload(), &Value::from(2));
        let json = serde_json::to_string(&e).unwrap();
        let back: Entity = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
