//! The Context Source Registration operations of 5.9 / 5.10 (create, update, delete,
//! retrieve, query) and the Context Source Registration Subscription operations of 5.11,
//! per tenant, each made durable before it returns. Forwarding to context sources and
//! notifications about registrations come later and read the same stored records.

use std::sync::Arc;

use harbor_model::{NgsiError, NgsiResult, Registration, Subscription, Tenant};
use harbor_store::{RegistrationChange, RegistrationStore, SubscriptionChange};

use crate::{store_err, Engine};

impl Engine {
    fn registration_store(&self) -> NgsiResult<&Arc<dyn RegistrationStore>> {
        self.registrations
            .as_ref()
            .ok_or_else(|| NgsiError::not_supported("this broker keeps no registrations"))
    }

    /// A registration's endpoint must be one the broker may forward to.
    fn check_source_endpoint(&self, reg: &Registration) -> NgsiResult<()> {
        self.check_endpoint(
            "endpoint",
            &reg.endpoint,
            crate::EndpointPurpose::ContextSource,
        )
    }

    /// 5.9.2: stores a new registration; its id must not be taken in the tenant.
    pub async fn create_registration(&self, tenant: &Tenant, reg: Registration) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_source_endpoint(&reg)?;
        self.ensure_tenant(tenant).await?;
        let _guard = self.registration_lock.lock().await;
        if live(store.registration(tenant, &reg.id)).is_some() {
            return Err(NgsiError::already_exists(format!(
                "registration {} already exists",
                reg.id
            )));
        }
        let now = harbor_model::time::now();
        let existing: Vec<_> = store
            .registrations(tenant)
            .into_iter()
            .filter(|r| !expired(r, now))
            .collect();
        let max = self.quotas.registrations;
        if max > 0 && existing.len() >= max {
            return Err(crate::quota::exceeded(
                tenant,
                max,
                "registrations",
                "quota_registrations",
            ));
        }
        self.check_conflicts(tenant, &reg, &existing)?;
        let stored = reg.clone();
        store
            .commit_registrations(tenant, vec![RegistrationChange::Put(Box::new(reg))])
            .await
            .map_err(store_err)?;
        if let Some(n) = &self.notifier {
            n.registration_changed(tenant, None, Some(&stored));
        }
        Ok(())
    }

    /// The conflicts of 4.3.6.3 and 5.9.2.4: a redirect registration cannot cover an entity
    /// held locally, an exclusive one cannot cover a locally held attribute, and neither may
    /// overlap an existing exclusive registration.
    fn check_conflicts(
        &self,
        tenant: &Tenant,
        reg: &Registration,
        existing: &[Arc<Registration>],
    ) -> NgsiResult<()> {
        if !matches!(reg.mode.as_str(), "redirect" | "exclusive") {
            return Ok(());
        }
        for info in &reg.information {
            let attrs: Vec<&String> = info
                .property_names
                .iter()
                .chain(info.relationship_names.iter())
                .flatten()
                .collect();
            for id in info.entities.iter().flatten().filter_map(|e| e.id.as_ref()) {
                if let Some(entity) = self.store().get(tenant, id).map_err(store_err)? {
                    let clash = if attrs.is_empty() {
                        reg.mode == "redirect"
                    } else {
                        attrs.iter().any(|a| entity.attrs.contains_key(*a))
                    };
                    if clash {
                        return Err(conflict(format!(
                            "entity {id} is held by this broker, so a {} registration cannot cover it (5.9.2.4)",
                            reg.mode
                        )));
                    }
                }
                let overlapping = existing.iter().filter(|o| o.mode == "exclusive").find(|o| {
                    o.information.iter().any(|oi| {
                        let same_entity = oi
                            .entities
                            .iter()
                            .flatten()
                            .any(|e| e.id.as_ref() == Some(id));
                        let theirs: Vec<&String> = oi
                            .property_names
                            .iter()
                            .chain(oi.relationship_names.iter())
                            .flatten()
                            .collect();
                        same_entity
                            && (attrs.is_empty()
                                || theirs.is_empty()
                                || attrs.iter().any(|a| theirs.contains(a)))
                    })
                });
                if let Some(o) = overlapping {
                    return Err(conflict(format!(
                        "exclusive registration {} already covers entity {id} and these attributes (4.3.6.3)",
                        o.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// 5.9.3: replaces the registration with what `update` makes of the current one.
    pub async fn update_registration(
        &self,
        tenant: &Tenant,
        id: &str,
        update: impl FnOnce(&Registration) -> NgsiResult<Registration>,
    ) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.registration_lock.lock().await;
        let current =
            live(store.registration(tenant, id)).ok_or_else(|| registration_not_found(id))?;
        let next = update(&current)?;
        let stored = next.clone();
        store
            .commit_registrations(tenant, vec![RegistrationChange::Put(Box::new(next))])
            .await
            .map_err(store_err)?;
        if let Some(n) = &self.notifier {
            n.registration_changed(tenant, Some(&current), Some(&stored));
        }
        Ok(())
    }

    /// 5.10.1.
    pub fn retrieve_registration(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> NgsiResult<Arc<Registration>> {
        self.check_tenant(tenant)?;
        live(self.registration_store()?.registration(tenant, id))
            .ok_or_else(|| registration_not_found(id))
    }

    /// 5.10.2: every registration of the tenant, sorted by id (the caller filters and pages).
    pub fn query_registrations(&self, tenant: &Tenant) -> NgsiResult<Vec<Arc<Registration>>> {
        self.check_tenant(tenant)?;
        let now = harbor_model::time::now();
        Ok(self
            .registration_store()?
            .registrations(tenant)
            .into_iter()
            .filter(|r| !expired(r, now))
            .collect())
    }

    /// 5.9.4.
    pub async fn delete_registration(&self, tenant: &Tenant, id: &str) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.registration_lock.lock().await;
        let Some(current) = live(store.registration(tenant, id)) else {
            return Err(registration_not_found(id));
        };
        store
            .commit_registrations(tenant, vec![RegistrationChange::Delete(id.to_string())])
            .await
            .map_err(store_err)?;
        if let Some(n) = &self.notifier {
            n.registration_changed(tenant, Some(&current), None);
        }
        Ok(())
    }

    /// 5.11.2: stores a new subscription to registrations; its id must not be taken.
    pub async fn create_csource_subscription(
        &self,
        tenant: &Tenant,
        sub: Subscription,
    ) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_notification_endpoint(&sub)?;
        self.ensure_tenant(tenant).await?;
        let _guard = self.registration_lock.lock().await;
        if store.csource_subscription(tenant, &sub.id).is_some() {
            return Err(NgsiError::already_exists(format!(
                "subscription {} already exists",
                sub.id
            )));
        }
        let max = self.quotas.subscriptions;
        if max > 0 && store.csource_subscription_count(tenant) >= max {
            return Err(crate::quota::exceeded(
                tenant,
                max,
                "subscriptions to registrations",
                "quota_subscriptions",
            ));
        }
        let id = sub.id.clone();
        store
            .commit_csource_subscriptions(tenant, vec![SubscriptionChange::Put(Box::new(sub))])
            .await
            .map_err(store_err)?;
        self.csource_subscription_stored(tenant, &id).await;
        Ok(())
    }

    /// Tells the notification pipeline of a created or updated subscription to registrations.
    async fn csource_subscription_stored(&self, tenant: &Tenant, id: &str) {
        let (Some(n), Some(store)) = (&self.notifier, &self.registrations) else {
            return;
        };
        if let Some(sub) = store.csource_subscription(tenant, id) {
            let now = harbor_model::time::now();
            let regs = store
                .registrations(tenant)
                .into_iter()
                .filter(|r| !expired(r, now))
                .collect();
            n.csource_subscription_changed(tenant, sub, regs).await;
        }
    }

    /// 5.11.3: replaces the subscription with what `update` makes of the current one.
    pub async fn update_csource_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
        update: impl FnOnce(&Subscription) -> NgsiResult<Subscription>,
    ) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.registration_lock.lock().await;
        let current = store
            .csource_subscription(tenant, id)
            .ok_or_else(|| subscription_not_found(id))?;
        let next = update(&current)?;
        self.check_notification_endpoint(&next)?;
        store
            .commit_csource_subscriptions(tenant, vec![SubscriptionChange::Put(Box::new(next))])
            .await
            .map_err(store_err)?;
        self.csource_subscription_stored(tenant, id).await;
        Ok(())
    }

    /// 5.11.4.
    pub fn retrieve_csource_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> NgsiResult<Arc<Subscription>> {
        self.check_tenant(tenant)?;
        let sub = self
            .registration_store()?
            .csource_subscription(tenant, id)
            .ok_or_else(|| subscription_not_found(id))?;
        Ok(self.csource_with_live_status(tenant, sub))
    }

    /// The subscription with the delivery status its notifications have had.
    fn csource_with_live_status(
        &self,
        tenant: &Tenant,
        sub: Arc<Subscription>,
    ) -> Arc<Subscription> {
        let live = self
            .notifier
            .as_ref()
            .and_then(|n| n.csource_live_status(tenant, &sub.id));
        crate::subscriptions::with_status(sub, live)
    }

    /// 5.11.5: every subscription to registrations of the tenant, sorted by id.
    pub fn query_csource_subscriptions(
        &self,
        tenant: &Tenant,
    ) -> NgsiResult<Vec<Arc<Subscription>>> {
        self.check_tenant(tenant)?;
        Ok(self
            .registration_store()?
            .csource_subscriptions(tenant)
            .into_iter()
            .map(|s| self.csource_with_live_status(tenant, s))
            .collect())
    }

    /// 5.11.6.
    pub async fn delete_csource_subscription(&self, tenant: &Tenant, id: &str) -> NgsiResult<()> {
        let store = self.registration_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.registration_lock.lock().await;
        if store.csource_subscription(tenant, id).is_none() {
            return Err(subscription_not_found(id));
        }
        store
            .commit_csource_subscriptions(tenant, vec![SubscriptionChange::Delete(id.to_string())])
            .await
            .map_err(store_err)?;
        if let Some(n) = &self.notifier {
            n.csource_subscription_removed(tenant, id);
        }
        Ok(())
    }
}

/// Whether the registration's `expiresAt` has passed: it is then gone (5.9.2.4: "deleted
/// when this point in time is reached"), whether or not its record was reclaimed yet.
fn expired(r: &Registration, now: harbor_model::Timestamp) -> bool {
    r.expires_at.is_some_and(|t| t <= now)
}

/// The registration unless it has expired.
fn live(r: Option<Arc<Registration>>) -> Option<Arc<Registration>> {
    r.filter(|r| !expired(r, harbor_model::time::now()))
}

fn conflict(detail: String) -> NgsiError {
    NgsiError::new(harbor_model::ErrorKind::Conflict, detail)
}

fn registration_not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("registration {id} does not exist"))
}

fn subscription_not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("subscription to registrations {id} does not exist"))
}
