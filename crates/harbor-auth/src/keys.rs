//! API keys for devices and partner systems.
//!
//! A key reads `ihk_<id>_<secret>`: the id finds the record, the secret proves possession. The
//! broker keeps only the SHA-256 of the secret (32 random bytes, so a fast hash is enough: there
//! is nothing to guess), shows the key once when it is created, and compares digests in
//! constant time. Revoking keeps the record, so that listings and the audit trail still name it.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use harbor_model::Timestamp;
use harbor_store::{AdminChange, AdminKind, AdminStore};
use parking_lot::RwLock;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::grants::Grants;
use crate::AuthError;

/// What every key starts with, so that a key is recognised in any header.
pub const KEY_PREFIX: &str = "ihk_";
/// Longest name a key may carry.
const MAX_NAME: usize = 200;
/// Most keys the broker keeps (revoked ones count).
pub const MAX_KEYS: usize = 100_000;

/// A stored key: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub grants: Grants,
    /// The partner the key's holder acts for (see [`crate::Identity::partner`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub secret_sha256: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// The record as listings show it: without the digest.
    pub fn public(&self) -> ApiKey {
        ApiKey {
            secret_sha256: String::new(),
            ..self.clone()
        }
    }

    /// The record as the administration API and the `infoharbor keys` command show it: camelCase,
    /// times as NGSI-LD DateTimes, no digest.
    pub fn listing(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.public()).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "createdAt".into(),
                harbor_model::time::format(&self.created_at).into(),
            );
            if let Some(r) = &self.revoked_at {
                o.insert("revokedAt".into(), harbor_model::time::format(r).into());
            }
        }
        v
    }
}

/// The keys of the broker, in memory, backed by the store.
pub struct KeyRing {
    store: Arc<dyn AdminStore>,
    keys: RwLock<HashMap<String, Arc<ApiKey>>>,
    /// Serialises changes so that check-then-commit holds.
    change: tokio::sync::Mutex<()>,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random number generator works");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Equal without an early exit, so that timing says nothing about where digests differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl KeyRing {
    /// Loads every stored key.
    pub async fn load(store: Arc<dyn AdminStore>) -> Result<KeyRing, AuthError> {
        let mut keys = HashMap::new();
        for (id, bytes) in store
            .admin_records(AdminKind::ApiKey)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
        {
            let key: ApiKey = serde_json::from_slice(&bytes).map_err(|e| {
                AuthError::Unavailable(format!("stored API key {id} cannot be read: {e}"))
            })?;
            keys.insert(id, Arc::new(key));
        }
        Ok(KeyRing {
            store,
            keys: RwLock::new(keys),
            change: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes a new key; returns its record and the key text, which is never shown again.
    pub async fn create(
        &self,
        name: &str,
        grants: Grants,
        partner: Option<&str>,
        created_by: Option<String>,
    ) -> Result<(ApiKey, String), AuthError> {
        let partner = partner
            .map(|p| {
                crate::check_partner(p).map_err(|e| AuthError::Invalid(format!("partner: {e}")))
            })
            .transpose()?;
        let controls = name.chars().any(char::is_control);
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME || controls {
            return Err(AuthError::Invalid(format!(
                "name: give the key a name of 1 to {MAX_NAME} printable characters"
            )));
        }
        // A partner's key may hold no role: what it may do then comes from the `partner:`
        // policies alone.
        if grants.is_empty() && partner.is_none() {
            return Err(AuthError::Invalid(
                "grants: a key needs at least one grant, such as \"reader@sg-lta\", or a partner \
                 whose access policies say what it may do"
                    .into(),
            ));
        }
        let _guard = self.change.lock().await;
        if self.keys.read().len() >= MAX_KEYS {
            return Err(AuthError::Invalid(format!(
                "the broker keeps at most {MAX_KEYS} keys; delete revoked ones first"
            )));
        }
        let id = hex(&random_bytes::<6>());
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let key = ApiKey {
            id: id.clone(),
            name: name.to_string(),
            grants,
            partner,
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_at: harbor_model::time::now(),
            created_by,
            revoked_at: None,
        };
        self.put(&key).await?;
        Ok((key, format!("{KEY_PREFIX}{id}_{secret}")))
    }

    /// Revokes a key; it stops working at once. `NotFound` when there is no such key.
    pub async fn revoke(&self, id: &str) -> Result<ApiKey, AuthError> {
        let _guard = self.change.lock().await;
        let Some(current) = self.keys.read().get(id).cloned() else {
            return Err(AuthError::NotFound(format!("no API key {id}")));
        };
        if current.revoked_at.is_some() {
            return Ok(current.public());
        }
        let revoked = ApiKey {
            revoked_at: Some(harbor_model::time::now()),
            ..(*current).clone()
        };
        self.put(&revoked).await?;
        Ok(revoked.public())
    }

    async fn put(&self, key: &ApiKey) -> Result<(), AuthError> {
        let record = serde_json::to_vec(key).expect("a key serializes");
        self.store
            .commit_admin(vec![AdminChange::Put {
                kind: AdminKind::ApiKey,
                id: key.id.clone(),
                record,
            }])
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        self.keys
            .write()
            .insert(key.id.clone(), Arc::new(key.clone()));
        Ok(())
    }

    /// Every key, without digests, sorted by creation.
    pub fn list(&self) -> Vec<ApiKey> {
        let mut all: Vec<ApiKey> = self.keys.read().values().map(|k| k.public()).collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Whether the key with this id is still in force (known and not revoked).
    pub fn in_force(&self, id: &str) -> bool {
        self.keys
            .read()
            .get(id)
            .is_some_and(|k| k.revoked_at.is_none())
    }

    /// The live key this text proves, or why not.
    pub fn verify(&self, text: &str) -> Result<Arc<ApiKey>, AuthError> {
        let rejected = || AuthError::Rejected("the API key is not valid".into());
        let rest = text.strip_prefix(KEY_PREFIX).ok_or_else(rejected)?;
        let (id, secret) = rest.split_once('_').ok_or_else(rejected)?;
        let key = self.keys.read().get(id).cloned().ok_or_else(rejected)?;
        let presented = sha256_hex(secret.as_bytes());
        if !same(presented.as_bytes(), key.secret_sha256.as_bytes()) {
            return Err(rejected());
        }
        if key.revoked_at.is_some() {
            return Err(AuthError::Rejected("the API key was revoked".into()));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbor_store::StoreResult;

    #[derive(Default)]
    struct MemStore(parking_lot::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

    #[async_trait::async_trait]
    impl AdminStore for MemStore {
        async fn commit_admin(&self, changes: Vec<AdminChange>) -> StoreResult<()> {
            let mut m = self.0.lock();
            for c in changes {
                match c {
                    AdminChange::Put { id, record, .. } => {
                        m.insert(id, record);
                    }
                    AdminChange::Delete { id, .. } => {
                        m.remove(&id);
                    }
                }
            }
            Ok(())
        }
        async fn admin_records(&self, _: AdminKind) -> StoreResult<Vec<(String, Vec<u8>)>> {
            Ok(self
                .0
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
    }

    #[tokio::test]
    async fn a_key_works_until_revoked_and_only_its_digest_is_kept() {
        let store = Arc::new(MemStore::default());
        let ring = KeyRing::load(store.clone()).await.unwrap();
        let grants = Grants::parse(&["writer@sg-lta"]).unwrap();
        let (key, text) = ring
            .create("parking sensors", grants.clone(), None, None)
            .await
            .unwrap();
        assert!(text.starts_with("ihk_"));
        let stored = String::from_utf8(store.0.lock().values().next().unwrap().clone()).unwrap();
        let secret = text.splitn(3, '_').nth(2).unwrap();
        assert!(!stored.contains(secret), "the secret is never stored");
        assert_eq!(ring.verify(&text).unwrap().grants, grants);
        // A reloaded ring knows the key too.
        let again = KeyRing::load(store.clone()).await.unwrap();
        assert_eq!(again.verify(&text).unwrap().id, key.id);
        for bad in [
            "".to_string(),
            "ihk_".to_string(),
            format!("ihk_{}", key.id),
            format!("ihk_{}_wrong", key.id),
            format!("ihk_ffffffffffff_{secret}"),
            format!("{text}x"),
            text.replace("ihk_", "ihx_"),
        ] {
            assert!(ring.verify(&bad).is_err(), "{bad}");
        }
        assert!(ring.list().iter().all(|k| k.secret_sha256.is_empty()));
        ring.revoke(&key.id).await.unwrap();
        let err = ring.verify(&text).unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        assert!(matches!(
            ring.revoke("nope").await,
            Err(AuthError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn keys_need_a_name_and_a_grant() {
        let ring = KeyRing::load(Arc::new(MemStore::default())).await.unwrap();
        let g = Grants::parse(&["reader"]).unwrap();
        assert!(ring.create(" ", g.clone(), None, None).await.is_err());
        assert!(ring.create("x\n", g.clone(), None, None).await.is_err());
        assert!(ring
            .create("ok", Grants::default(), None, None)
            .await
            .is_err());
        assert!(ring.create("ok", g, Some("kl city"), None).await.is_err());
    }

    #[tokio::test]
    async fn a_partner_key_carries_its_partner_and_may_hold_no_role() {
        let store = Arc::new(MemStore::default());
        let ring = KeyRing::load(store.clone()).await.unwrap();
        let (key, text) = ring
            .create("kl parking feed", Grants::default(), Some("kl-city"), None)
            .await
            .unwrap();
        assert_eq!(key.partner.as_deref(), Some("kl-city"));
        assert_eq!(key.listing()["partner"], "kl-city");
        let again = KeyRing::load(store).await.unwrap();
        assert_eq!(
            again.verify(&text).unwrap().partner.as_deref(),
            Some("kl-city")
        );
    }
}
