//! Conformance cases of [`RegistrationStore`]: puts replace, deletes remove, tenants are isolated,
//! lists are sorted by id, and subscriptions to registrations live apart from both registrations
//! and subscriptions to entities.

use harbor_model::{Registration, Tenant};

use super::{registration, subscription, Stores};
use crate::{RegistrationChange, RegistrationStore, SubscriptionChange};

fn put(id: &str) -> RegistrationChange {
    RegistrationChange::Put(Box::new(registration(id)))
}

fn sub(id: &str) -> SubscriptionChange {
    SubscriptionChange::Put(Box::new(subscription(id)))
}

/// `urn:r:a`, `urn:r:b` and `urn:r:c` in the default tenant, then `b` replaced by an
/// exclusive one, `c` and an absent id deleted. Returns the replacement.
async fn three_then_one_replaced_one_deleted(store: &dyn RegistrationStore) -> Registration {
    let t = Tenant::default_tenant();
    store
        .commit_registrations(&t, vec![put("urn:r:b"), put("urn:r:a"), put("urn:r:c")])
        .await
        .unwrap();
    let mut changed = registration("urn:r:b");
    changed.mode = "exclusive".into();
    store
        .commit_registrations(
            &t,
            vec![
                RegistrationChange::Put(Box::new(changed.clone())),
                RegistrationChange::Delete("urn:r:c".into()),
                RegistrationChange::Delete("urn:r:never".into()),
            ],
        )
        .await
        .expect("deleting an absent registration is no error");
    changed
}

/// Subscriptions to registrations `urn:cs:1` and `urn:cs:2` in the default tenant, then
/// `urn:cs:2` deleted.
async fn one_csource_subscription_left(store: &dyn RegistrationStore) {
    let t = Tenant::default_tenant();
    store
        .commit_csource_subscriptions(&t, vec![sub("urn:cs:1"), sub("urn:cs:2")])
        .await
        .unwrap();
    store
        .commit_csource_subscriptions(&t, vec![SubscriptionChange::Delete("urn:cs:2".into())])
        .await
        .unwrap();
}

pub async fn a_fresh_store_has_no_registrations(s: &Stores) {
    let t = Tenant::default_tenant();
    assert!(
        s.registrations.registrations(&t).is_empty(),
        "a fresh store has no registrations"
    );
    assert!(
        s.registrations.csource_subscriptions(&t).is_empty(),
        "a fresh store has no subscriptions to registrations"
    );
}

pub async fn registrations_are_listed_sorted_by_id_and_deletes_remove(s: &Stores) {
    let store = &*s.registrations;
    let t = Tenant::default_tenant();
    three_then_one_replaced_one_deleted(store).await;
    let ids: Vec<String> = store
        .registrations(&t)
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids, ["urn:r:a", "urn:r:b"], "sorted by id, deletes remove");
    assert_eq!(
        store.registration_count(&t),
        2,
        "the count follows the list"
    );
}

/// Leaves `urn:r:a` and the exclusive `urn:r:b` in the default tenant.
pub async fn the_last_registration_put_wins_with_every_member(s: &Stores) {
    let store = &*s.registrations;
    let changed = three_then_one_replaced_one_deleted(store).await;
    assert_eq!(
        store
            .registration(&Tenant::default_tenant(), "urn:r:b")
            .as_deref(),
        Some(&changed),
        "the last put wins and every member survives"
    );
}

pub async fn registrations_are_isolated_per_tenant(s: &Stores) {
    let store = &*s.registrations;
    three_then_one_replaced_one_deleted(store).await;
    let other = Tenant::parse("city-b").unwrap();
    assert_eq!(
        store.registration_count(&other),
        0,
        "tenants are isolated: another tenant counts none"
    );
    assert!(
        store.registration(&other, "urn:r:a").is_none(),
        "tenants are isolated: another tenant's registration is not found"
    );
}

/// Leaves `urn:cs:1` as the default tenant's only subscription to registrations.
pub async fn csource_subscriptions_are_listed_and_deletes_remove(s: &Stores) {
    let store = &*s.registrations;
    let t = Tenant::default_tenant();
    one_csource_subscription_left(store).await;
    let ids: Vec<String> = store
        .csource_subscriptions(&t)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(ids, ["urn:cs:1"], "deletes remove");
    assert_eq!(
        store.csource_subscription_count(&t),
        1,
        "the count follows the list"
    );
    assert!(
        store.csource_subscription(&t, "urn:cs:1").is_some(),
        "a subscription to registrations is found by its id"
    );
}

pub async fn csource_subscriptions_are_not_entity_subscriptions(s: &Stores) {
    let t = Tenant::default_tenant();
    one_csource_subscription_left(&*s.registrations).await;
    assert_eq!(
        s.subscriptions.subscription_count(&t),
        0,
        "subscriptions to registrations are not counted as subscriptions to entities"
    );
    assert!(
        s.subscriptions.subscription(&t, "urn:cs:1").is_none(),
        "subscriptions to registrations are not subscriptions to entities"
    );
    s.subscriptions
        .commit_subscriptions(&t, vec![sub("urn:s:1")])
        .await
        .unwrap();
    assert!(
        s.registrations
            .csource_subscription(&t, "urn:s:1")
            .is_none(),
        "subscriptions to entities are not subscriptions to registrations"
    );
    assert_eq!(
        s.registrations.csource_subscription_count(&t),
        1,
        "a subscription to entities is not counted as one to registrations"
    );
}

pub async fn csource_subscriptions_are_isolated_per_tenant(s: &Stores) {
    let store = &*s.registrations;
    one_csource_subscription_left(store).await;
    let other = Tenant::parse("city-b").unwrap();
    assert!(
        store.csource_subscription(&other, "urn:cs:1").is_none(),
        "tenants are isolated"
    );
    assert_eq!(
        store.csource_subscription_count(&other),
        0,
        "tenants are isolated: another tenant counts none"
    );
}
