//! Conformance cases of [`ContextStore`](crate::ContextStore): puts replace, deletes remove, a
//! missing id is no error, records come back sorted by id.

use super::Stores;
use crate::ContextChange;

fn put(id: &str, record: &[u8]) -> ContextChange {
    ContextChange::Put {
        id: id.into(),
        record: record.to_vec(),
    }
}

pub async fn a_fresh_store_has_no_contexts(s: &Stores) {
    assert!(
        s.contexts.contexts().is_empty(),
        "a fresh store has no contexts"
    );
}

pub async fn contexts_are_listed_sorted_by_id(s: &Stores) {
    let store = &*s.contexts;
    store
        .commit_contexts(vec![put("b", b"{\"v\":1}"), put("a", b"{}")])
        .await
        .unwrap();
    assert_eq!(
        store.contexts(),
        [
            ("a".to_string(), b"{}".to_vec()),
            ("b".to_string(), b"{\"v\":1}".to_vec())
        ],
        "every stored context, sorted by id"
    );
}

/// Leaves exactly `b` = `{"v":2}`.
pub async fn context_put_replaces_and_delete_removes(s: &Stores) {
    let store = &*s.contexts;
    store
        .commit_contexts(vec![put("b", b"{\"v\":1}"), put("a", b"{}")])
        .await
        .unwrap();
    store
        .commit_contexts(vec![
            put("b", b"{\"v\":2}"),
            ContextChange::Delete("a".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.contexts(),
        [("b".to_string(), b"{\"v\":2}".to_vec())],
        "the last put wins and deletes remove"
    );
}

pub async fn deleting_an_absent_context_is_no_error(s: &Stores) {
    let store = &*s.contexts;
    store.commit_contexts(vec![put("b", b"{}")]).await.unwrap();
    store
        .commit_contexts(vec![ContextChange::Delete("never-stored".into())])
        .await
        .expect("deleting a context that was never stored is no error");
    assert_eq!(
        store.contexts(),
        [("b".to_string(), b"{}".to_vec())],
        "deleting an absent context leaves the others"
    );
}
