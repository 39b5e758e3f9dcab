//! NGSI-LD domain types shared by every crate: entities, attributes, tenants and the spec's
//! error kinds (ETSI GS CIM 009 V1.9.1, 6.3.2). No IO, no HTTP, no async.

pub mod entity;
pub mod error;
pub mod feed;
pub mod names;
pub mod registration;
pub mod subscription;
pub mod temporal;
pub mod tenant;
pub mod time;

pub use entity::{AttrValue, Attribute, Entity};
pub use error::{ErrorKind, NgsiError, NgsiResult};
pub use feed::{Delivery, EntityChange, Trigger};
pub use registration::Registration;
pub use subscription::Subscription;
pub use temporal::{TemporalEntity, TemporalHeader, TemporalInstance, TimeProperty};
pub use tenant::Tenant;
pub use time::Timestamp;
