//! The Subscription operations of 5.8: create, update (merge of members), retrieve, query and
//! delete, per tenant, each made durable before it returns. Matching and delivery come later
//! and read the same stored subscriptions.

use harbor_model::{NgsiError, NgsiResult, Subscription, Tenant};
use harbor_store::SubscriptionChange;
use std::sync::Arc;

use crate::{store_err, Engine};

impl Engine {
    fn subscription_store(&self) -> NgsiResult<&Arc<dyn harbor_store::SubscriptionStore>> {
        self.subscriptions
            .as_ref()
            .ok_or_else(|| NgsiError::not_supported("this broker keeps no subscriptions"))
    }

    /// 5.8.1: stores a new subscription; its id must not be taken in the tenant.
    pub async fn create_subscription(&self, tenant: &Tenant, sub: Subscription) -> NgsiResult<()> {
        let store = self.subscription_store()?;
        self.check_notification_endpoint(&sub)?;
        self.ensure_tenant(tenant).await?;
        let _guard = self.subscription_lock.lock().await;
        if store.subscription(tenant, &sub.id).is_some() {
            return Err(NgsiError::already_exists(format!(
                "subscription {} already exists",
                sub.id
            )));
        }
        let max = self.quotas.subscriptions;
        if max > 0 && store.subscription_count(tenant) >= max {
            return Err(crate::quota::exceeded(
                tenant,
                max,
                "subscriptions",
                "quota_subscriptions",
            ));
        }
        let id = sub.id.clone();
        store
            .commit_subscriptions(tenant, vec![SubscriptionChange::Put(Box::new(sub))])
            .await
            .map_err(store_err)?;
        self.subscription_stored(tenant, &id).await;
        Ok(())
    }

    /// A periodic or change-driven subscription's endpoint must be one the broker may connect to.
    pub(crate) fn check_notification_endpoint(&self, sub: &Subscription) -> NgsiResult<()> {
        self.check_endpoint(
            "notification.endpoint.uri",
            &sub.notification.endpoint.uri,
            crate::EndpointPurpose::Notification,
        )
    }

    /// Tells the notification pipeline of a created or updated subscription.
    async fn subscription_stored(&self, tenant: &Tenant, id: &str) {
        if let (Some(n), Some(sub)) = (
            &self.notifier,
            self.subscriptions
                .as_ref()
                .and_then(|s| s.subscription(tenant, id)),
        ) {
            n.subscription_changed(tenant, sub).await;
        }
    }

    /// 5.8.2: replaces the subscription with what `update` makes of the current one.
    pub async fn update_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
        update: impl FnOnce(&Subscription) -> NgsiResult<Subscription>,
    ) -> NgsiResult<()> {
        let store = self.subscription_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.subscription_lock.lock().await;
        let current = store
            .subscription(tenant, id)
            .ok_or_else(|| not_found(id))?;
        let mut next = update(&current)?;
        // A subscription keeps acting for the identity that created it.
        next.owner = current.owner.clone();
        self.check_notification_endpoint(&next)?;
        store
            .commit_subscriptions(tenant, vec![SubscriptionChange::Put(Box::new(next))])
            .await
            .map_err(store_err)?;
        self.subscription_stored(tenant, id).await;
        Ok(())
    }

    /// 5.8.3. Reading operations on an unknown tenant fail with NonexistentTenant.
    pub fn retrieve_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> NgsiResult<Arc<Subscription>> {
        self.check_tenant(tenant)?;
        let sub = self
            .subscription_store()?
            .subscription(tenant, id)
            .ok_or_else(|| not_found(id))?;
        Ok(self.with_live_status(tenant, sub))
    }

    /// The subscription with the delivery status the pipeline has now, which the store
    /// catches up with a few milliseconds later.
    fn with_live_status(&self, tenant: &Tenant, sub: Arc<Subscription>) -> Arc<Subscription> {
        let live = self
            .notifier
            .as_ref()
            .and_then(|n| n.live_status(tenant, &sub.id));
        with_status(sub, live)
    }

    /// 5.8.4: every subscription of the tenant, sorted by id (the caller pages).
    pub fn query_subscriptions(&self, tenant: &Tenant) -> NgsiResult<Vec<Arc<Subscription>>> {
        self.check_tenant(tenant)?;
        Ok(self
            .subscription_store()?
            .subscriptions(tenant)
            .into_iter()
            .map(|s| self.with_live_status(tenant, s))
            .collect())
    }

    /// 5.8.5.
    pub async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> NgsiResult<()> {
        let store = self.subscription_store()?;
        self.check_tenant(tenant)?;
        let _guard = self.subscription_lock.lock().await;
        if store.subscription(tenant, id).is_none() {
            return Err(not_found(id));
        }
        store
            .commit_subscriptions(tenant, vec![SubscriptionChange::Delete(id.to_string())])
            .await
            .map_err(store_err)?;
        if let Some(n) = &self.notifier {
            n.subscription_removed(tenant, id);
        }
        Ok(())
    }
}

/// The subscription with `status` as its delivery status, when there is one and it differs.
pub(crate) fn with_status(
    sub: Arc<Subscription>,
    status: Option<harbor_model::subscription::DeliveryStatus>,
) -> Arc<Subscription> {
    match status {
        Some(st) if st != sub.notification.status => {
            let mut s = (*sub).clone();
            s.notification.status = st;
            Arc::new(s)
        }
        _ => sub,
    }
}

fn not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("subscription {id} does not exist"))
}
