//! Conformance cases of [`AdminStore`]: kinds are separate namespaces, puts replace, deletes
//! remove, ids come back sorted, pages go through one kind in order.

use super::Stores;
use crate::{AdminChange, AdminKind, AdminStore};

fn put(kind: AdminKind, id: &str, record: &str) -> AdminChange {
    AdminChange::Put {
        kind,
        id: id.to_string(),
        record: record.as_bytes().to_vec(),
    }
}

fn delete(kind: AdminKind, id: &str) -> AdminChange {
    AdminChange::Delete {
        kind,
        id: id.to_string(),
    }
}

fn ids(page: Vec<(String, Vec<u8>)>) -> Vec<String> {
    page.into_iter().map(|(id, _)| id).collect()
}

/// API keys `k2` = `two` and `k1` = `one`, and a policy `k1` = `policy`.
async fn keys_and_a_policy(store: &dyn AdminStore) {
    store
        .commit_admin(vec![
            put(AdminKind::ApiKey, "k2", "two"),
            put(AdminKind::ApiKey, "k1", "one"),
            put(AdminKind::Policy, "k1", "policy"),
        ])
        .await
        .unwrap();
}

/// After [`keys_and_a_policy`]: `k1` replaced by `uno`, `k2` and an absent key deleted.
async fn one_key_replaced_one_deleted(store: &dyn AdminStore) {
    keys_and_a_policy(store).await;
    store
        .commit_admin(vec![
            put(AdminKind::ApiKey, "k1", "uno"),
            delete(AdminKind::ApiKey, "k2"),
            delete(AdminKind::ApiKey, "absent"),
        ])
        .await
        .expect("deleting an absent record is no error");
}

pub async fn admin_records_are_listed_sorted_by_id(s: &Stores) {
    let store = &*s.admin;
    keys_and_a_policy(store).await;
    assert_eq!(
        store.admin_records(AdminKind::ApiKey).await.unwrap(),
        [
            ("k1".to_string(), b"one".to_vec()),
            ("k2".to_string(), b"two".to_vec())
        ],
        "every record of the kind, sorted by id"
    );
}

/// Leaves the API key `k1` = `uno` and the policy `k1` = `policy`.
pub async fn admin_put_replaces_and_delete_removes(s: &Stores) {
    let store = &*s.admin;
    one_key_replaced_one_deleted(store).await;
    assert_eq!(
        store.admin_records(AdminKind::ApiKey).await.unwrap(),
        [("k1".to_string(), b"uno".to_vec())],
        "the last put wins and deletes remove"
    );
}

pub async fn admin_kinds_are_separate_namespaces(s: &Stores) {
    let store = &*s.admin;
    one_key_replaced_one_deleted(store).await;
    assert_eq!(
        store.admin_records(AdminKind::Policy).await.unwrap(),
        [("k1".to_string(), b"policy".to_vec())],
        "each kind is its own namespace: changing the key k1 leaves the policy k1"
    );
}

pub async fn admin_pages_go_through_one_kind_in_order(s: &Stores) {
    let store = &*s.admin;
    one_key_replaced_one_deleted(store).await;
    let audit: Vec<AdminChange> = (0..25)
        .map(|i| put(AdminKind::Audit, &format!("{i:04}"), "entry"))
        .collect();
    store.commit_admin(audit).await.unwrap();
    let page = |after: Option<&'static str>| async move {
        ids(store.admin_page(AdminKind::Audit, after, 10).await.unwrap())
    };
    let first = page(None).await;
    assert_eq!(first.len(), 10, "a page holds at most `limit` records");
    assert_eq!(
        (first[0].as_str(), first[9].as_str()),
        ("0000", "0009"),
        "the first page starts at the first id"
    );
    let next = page(Some("0009")).await;
    assert_eq!(
        (next[0].as_str(), next[9].as_str()),
        ("0010", "0019"),
        "a page starts after its cursor"
    );
    assert_eq!(
        page(Some("0019")).await,
        ["0020", "0021", "0022", "0023", "0024"],
        "the last page holds what is left"
    );
    assert!(
        page(Some("0024")).await.is_empty(),
        "a page after the last id is empty"
    );
    assert_eq!(
        ids(store.admin_page(AdminKind::Policy, None, 10).await.unwrap()),
        ["k1"],
        "a page holds nothing of the kinds around it"
    );
}
