//! What a subscription's owner may see of a change. A subscription made by an identity that
//! reads through access policies is matched and rendered against the change as that identity
//! sees it, decided when the change is matched and again when it is delivered: a policy
//! withdrawn meanwhile withdraws the notification too, and a filter (`q`, watched attributes)
//! on a hidden attribute never fires.

use std::sync::Arc;

use harbor_model::subscription::Owner;
use harbor_model::{EntityChange, Registration, Tenant};

/// A change as an owner sees it.
pub enum Seen {
    /// All of it.
    Whole,
    /// Nothing: the owner may not see the entity (before or after).
    Hidden,
    /// The change projected onto what the owner may see.
    Part(Arc<EntityChange>),
}

/// Decides what an owner may see; the broker implements it with its access policies.
pub trait ChangeView: Send + Sync {
    fn view(&self, tenant: &Tenant, owner: &Owner, change: &Arc<EntityChange>) -> Seen;

    /// A registration as the owner of a subscription to registrations may see it (only the
    /// entries about entities it may read); `None`: not at all.
    fn registration(
        &self,
        tenant: &Tenant,
        owner: &Owner,
        registration: &Arc<Registration>,
    ) -> Option<Arc<Registration>>;
}
