//! Conformance cases of [`SubscriptionStore`]: puts replace, deletes remove, tenants are isolated,
//! lists are sorted by id.

use harbor_model::{Subscription, Tenant};

use super::{subscription, Stores};
use crate::{SubscriptionChange, SubscriptionStore};

fn put(id: &str) -> SubscriptionChange {
    SubscriptionChange::Put(Box::new(subscription(id)))
}

fn listed(store: &dyn SubscriptionStore, t: &Tenant) -> Vec<String> {
    store
        .subscriptions(t)
        .iter()
        .map(|s| s.id.clone())
        .collect()
}

/// `urn:s:a`, `urn:s:b` and `urn:s:c` in the default tenant, then `b` replaced by an inactive
/// one, `c` and an absent id deleted. Returns the replacement.
async fn three_then_one_replaced_one_deleted(store: &dyn SubscriptionStore) -> Subscription {
    let t = Tenant::default_tenant();
    store
        .commit_subscriptions(&t, vec![put("urn:s:b"), put("urn:s:a"), put("urn:s:c")])
        .await
        .unwrap();
    let mut changed = subscription("urn:s:b");
    changed.is_active = Some(false);
    store
        .commit_subscriptions(
            &t,
            vec![
                SubscriptionChange::Put(Box::new(changed.clone())),
                SubscriptionChange::Delete("urn:s:c".into()),
                SubscriptionChange::Delete("urn:s:never".into()),
            ],
        )
        .await
        .expect("deleting an absent subscription is no error");
    changed
}

pub async fn a_fresh_store_has_no_subscriptions(s: &Stores) {
    let t = Tenant::default_tenant();
    assert!(
        s.subscriptions.subscriptions(&t).is_empty(),
        "a fresh store has no subscriptions"
    );
    assert_eq!(
        s.subscriptions.subscription_count(&t),
        0,
        "a fresh store counts no subscriptions"
    );
}

pub async fn subscriptions_are_listed_sorted_by_id_and_deletes_remove(s: &Stores) {
    let store = &*s.subscriptions;
    let t = Tenant::default_tenant();
    three_then_one_replaced_one_deleted(store).await;
    assert_eq!(
        listed(store, &t),
        ["urn:s:a", "urn:s:b"],
        "sorted by id, deletes remove"
    );
    assert_eq!(
        store.subscription_count(&t),
        2,
        "the count follows the list"
    );
}

pub async fn the_last_subscription_put_wins_with_every_member(s: &Stores) {
    let store = &*s.subscriptions;
    let changed = three_then_one_replaced_one_deleted(store).await;
    assert_eq!(
        store
            .subscription(&Tenant::default_tenant(), "urn:s:b")
            .as_deref(),
        Some(&changed),
        "the last put wins and every member survives"
    );
}

pub async fn subscriptions_are_isolated_per_tenant(s: &Stores) {
    let store = &*s.subscriptions;
    three_then_one_replaced_one_deleted(store).await;
    let other = Tenant::parse("city-b").unwrap();
    assert_eq!(
        store.subscription_count(&other),
        0,
        "tenants are isolated: another tenant counts none"
    );
    assert!(
        store.subscription(&other, "urn:s:a").is_none(),
        "tenants are isolated: another tenant's subscription is not found"
    );
    assert!(
        store.subscriptions(&other).is_empty(),
        "tenants are isolated: another tenant lists none"
    );
}

/// Leaves `urn:s:b` (inactive) in the default tenant and `urn:s:a` in `city-b`.
pub async fn a_subscription_delete_stays_in_its_tenant(s: &Stores) {
    let store = &*s.subscriptions;
    three_then_one_replaced_one_deleted(store).await;
    let (t, other) = (Tenant::default_tenant(), Tenant::parse("city-b").unwrap());
    store
        .commit_subscriptions(&other, vec![put("urn:s:a")])
        .await
        .unwrap();
    store
        .commit_subscriptions(&t, vec![SubscriptionChange::Delete("urn:s:a".into())])
        .await
        .unwrap();
    assert!(
        store.subscription(&other, "urn:s:a").is_some(),
        "a delete stays in its tenant"
    );
    assert!(
        store.subscription(&t, "urn:s:a").is_none(),
        "a delete removes the subscription from its own tenant"
    );
}
