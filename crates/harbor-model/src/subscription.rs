//! Subscriptions (5.2.12) as the broker holds them: every member a client may set, with names
//! (entity types, attributes) as expanded IRIs, and the status members the broker keeps.
//! Expressions (`q`, `scopeQ`, `csf`, geo-queries) are kept as the text the client sent,
//! already checked; the `@context` they were written under is kept with them so that a later
//! evaluator can expand their names the same way.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;

/// The notification triggers of Table 5.2.12-1.
pub const TRIGGERS: &[&str] = &[
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
];

/// The triggers a subscription has when it names none (5.2.12).
pub const DEFAULT_TRIGGERS: &[&str] = &["attributeCreated", "attributeUpdated"];

/// One subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySelector>,
    /// Expanded attribute names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_attributes: Option<Vec<String>>,
    pub notification_trigger: Vec<String>,
    /// Seconds between periodic notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_q: Option<GeoQ>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csf: Option<String>,
    /// `isActive` as the client gave it (absent: active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Least number of seconds between two notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<Vec<String>>,
    /// The temporal query (5.2.21) as given; kept, not evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_q: Option<Value>,
    /// The `@context` URL notifications are rendered with (given, or the ImplicitlyCreated
    /// entry of the creating request's `@context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonld_context: Option<String>,
    /// The `@context` of the request that created or last updated the subscription; the
    /// names inside `q`, `geoQ` and `csf` are expanded with it. Never rendered.
    #[serde(default)]
    pub context: Value,
    pub notification: NotificationParams,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// Who created it, when the broker authenticates: its notifications carry only what this
    /// identity may see, decided when each is delivered. Never rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// The identity a subscription acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// As logs and the audit trail show it (`key:<id>`, a token's subject and client).
    pub name: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Its grants when it subscribed, as text (`reader@sg`).
    #[serde(default)]
    pub grants: Vec<String>,
    /// The partner it acts for, when its key or token names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
}

/// One element of `entities` (5.2.33): `type` is a type expression (4.17) with its names
/// expanded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    pub type_expr: String,
}

/// A geo-query (5.2.13) as given; `geoproperty` expanded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoQ {
    pub geometry: String,
    pub coordinates: Value,
    pub georel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoproperty: Option<String>,
}

/// What a notification carries and where it goes (5.2.14), with the delivery status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationParams {
    /// Expanded attribute names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<String>>,
    #[serde(default)]
    pub sys_attrs: bool,
    pub format: NotificationFormat,
    #[serde(default)]
    pub show_changes: bool,
    /// `pick` / `omit` (4.21) as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit: Option<Vec<String>>,
    /// `join` (4.5.23): `flat`, `inline` or `@none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// `joinLevel`: hops of Relationships followed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_level: Option<u32>,
    pub endpoint: Endpoint,
    #[serde(default)]
    pub status: DeliveryStatus,
}

/// Representation of the entities in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationFormat {
    Normalized,
    Concise,
    KeyValues,
    /// `simplified`, the synonym of keyValues, kept so that it is rendered back as given.
    Simplified,
}

impl NotificationFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "normalized" => Self::Normalized,
            "concise" => Self::Concise,
            "keyValues" => Self::KeyValues,
            "simplified" => Self::Simplified,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normalized => "normalized",
            Self::Concise => "concise",
            Self::KeyValues => "keyValues",
            Self::Simplified => "simplified",
        }
    }

    pub fn is_key_values(self) -> bool {
        matches!(self, Self::KeyValues | Self::Simplified)
    }
}

/// Where notifications are sent (5.2.15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub uri: String,
    pub accept: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_info: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifier_info: Option<Vec<KeyValue>>,
    /// Milliseconds (V1.9.1 5.2.15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<f64>,
}

/// A key-value pair (5.2.22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// What the broker records about deliveries (5.2.14 status members).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    #[serde(default)]
    pub times_sent: u64,
    #[serde(default)]
    pub times_failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notification: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Timestamp>,
}

impl DeliveryStatus {
    /// Counts one attempt made at `sent` that ended at `done`, delivered or not (5.2.14).
    pub fn record(&mut self, sent: Timestamp, done: Timestamp, delivered: bool) {
        self.times_sent += 1;
        self.last_notification = Some(sent);
        if delivered {
            self.last_success = Some(done);
        } else {
            self.times_failed += 1;
            self.last_failure = Some(done);
        }
    }

    /// `ok` or `failed` (5.2.14), once something was sent.
    pub fn outcome(&self) -> Option<&'static str> {
        match (self.last_success, self.last_failure) {
            (None, None) => None,
            (Some(_), None) => Some("ok"),
            (None, Some(_)) => Some("failed"),
            (Some(s), Some(f)) => Some(if s >= f { "ok" } else { "failed" }),
        }
    }
}

/// The subscription's `status` (5.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Expired,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Expired => "expired",
        }
    }
}

impl Subscription {
    /// The status at `now`: expired once `expiresAt` has passed, else paused when not active.
    pub fn status(&self, now: Timestamp) -> SubscriptionStatus {
        if self.expires_at.is_some_and(|t| t <= now) {
            SubscriptionStatus::Expired
        } else if self.is_active != Some(false) {
            SubscriptionStatus::Active
        } else {
            SubscriptionStatus::Paused
        }
    }
}
