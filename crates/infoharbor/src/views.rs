//! What a subscription's owner may see of a change, decided by the access policies in force
//! when the change is matched and delivered (harbor-engine's `ChangeView`).

use std::sync::Arc;

use harbor_auth::{Access, Action, Grants, Identity, KeyRing, PolicyBook, Via};
use harbor_engine::notify::view::{ChangeView, Seen};
use harbor_model::subscription::Owner;
use harbor_model::{EntityChange, Registration, Tenant};

pub struct PolicyView {
    pub policies: Arc<PolicyBook>,
    /// A subscription made with an API key stops notifying once the key is revoked.
    pub keys: Arc<KeyRing>,
}

impl PolicyView {
    /// The owner as an identity, or `None` once the API key it subscribed with is revoked.
    fn owner(&self, owner: &Owner) -> Option<Identity> {
        if let Some(id) = owner.subject.strip_prefix("key:") {
            if !self.keys.in_force(id) {
                return None;
            }
        }
        Some(Identity {
            subject: owner.subject.clone(),
            client: owner.client.clone(),
            partner: owner.partner.clone(),
            via: Via::Token,
            grants: Grants::from_claim(&owner.grants),
        })
    }
}

impl ChangeView for PolicyView {
    fn registration(
        &self,
        tenant: &Tenant,
        owner: &Owner,
        registration: &Arc<Registration>,
    ) -> Option<Arc<Registration>> {
        let who = self.owner(owner)?;
        self.policies
            .access(&who, tenant, Action::Subscribe)
            .project_registration(registration)
    }

    fn view(&self, tenant: &Tenant, owner: &Owner, change: &Arc<EntityChange>) -> Seen {
        let Some(who) = self.owner(owner) else {
            return Seen::Hidden;
        };
        let access = match self.policies.access(&who, tenant, Action::Subscribe) {
            Access::Full => return Seen::Whole,
            Access::Denied => return Seen::Hidden,
            partial => partial,
        };
        let after = change.after.as_ref().map(|e| access.project(e));
        let before = change
            .before
            .as_ref()
            .map(|e| access.project(&Arc::new(e.clone())));
        // An entity the owner may not see, before or after, is not notified at all: not even
        // that it changed or left the selection.
        let after = match after {
            Some(None) => return Seen::Hidden,
            Some(Some(e)) => Some(e),
            None => None,
        };
        let before = match before {
            Some(None) => return Seen::Hidden,
            Some(Some(e)) => Some(e),
            None => None,
        };
        let opened = |name: &str| {
            after.as_ref().is_some_and(|e| e.attrs.contains_key(name))
                || before.as_ref().is_some_and(|e| e.attrs.contains_key(name))
        };
        let changed = change
            .changed
            .iter()
            .filter(|n| opened(n))
            .cloned()
            .collect();
        Seen::Part(Arc::new(EntityChange {
            seq: change.seq,
            tenant: change.tenant.clone(),
            id: change.id.clone(),
            at: change.at,
            after,
            before: before.map(|e| (*e).clone()),
            changed,
        }))
    }
}
