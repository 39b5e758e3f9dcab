//! Group commit into redb, and loading the state back at start-up.

use std::sync::mpsc;
use std::sync::Arc;

use harbor_model::{Entity, Tenant};
use harbor_store::{Change, StoreError, StoreResult};
use parking_lot::RwLock;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::memory::Memory;

/// Entities by `tenant \0 id`, as JSON.
const ENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entities");
/// Tenants that exist, with nothing attached.
const TENANTS: TableDefinition<&str, ()> = TableDefinition::new("tenants");

/// Largest number of requests folded into one commit.
const MAX_GROUP: usize = 1024;

struct Request {
    tenant: Tenant,
    changes: Vec<Change>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// Handle to the commit thread.
pub struct Committer {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Committer {
    /// Lets the commit thread finish what it was given and close the database.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Committer {
    pub fn start(db: redb::Database, memory: Arc<RwLock<Memory>>) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("harbor-commit".into())
            .spawn(move || run(db, memory, rx))
            .expect("spawning the commit thread");
        Committer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub async fn submit(&self, tenant: Tenant, changes: Vec<Change>) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        tx.send(Request {
            tenant,
            changes,
            done,
        })
        .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?
    }
}

fn key(tenant: &Tenant, id: &str) -> String {
    format!("{}\u{0}{}", tenant.as_str(), id)
}

fn run(db: redb::Database, memory: Arc<RwLock<Memory>>, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let result = write_group(&db, &group);
        if result.is_ok() {
            let mut mem = memory.write();
            for r in &group {
                mem.apply(&r.tenant, &r.changes);
            }
        }
        for r in group {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            };
            let _ = r.done.send(answer);
        }
    }
}

fn write_group(db: &redb::Database, group: &[Request]) -> Result<(), StoreError> {
    let fail = |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("commit failed: {e}"));
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut entities = txn.open_table(ENTITIES).map_err(|e| fail(&e))?;
        let mut tenants = txn.open_table(TENANTS).map_err(|e| fail(&e))?;
        for r in group {
            tenants
                .insert(r.tenant.as_str(), ())
                .map_err(|e| fail(&e))?;
            for c in &r.changes {
                match c {
                    Change::Put(e) => {
                        let bytes = serde_json::to_vec(e).map_err(|e| fail(&e))?;
                        entities
                            .insert(key(&r.tenant, &e.id).as_str(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    Change::Delete(id) => {
                        entities
                            .remove(key(&r.tenant, id).as_str())
                            .map_err(|e| fail(&e))?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(|e| fail(&e))
}

/// Reads the whole durable state into memory.
pub fn load(db: &redb::Database) -> StoreResult<Memory> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut memory = Memory::default();
    // Make sure the tables exist so a fresh database reads as empty.
    {
        let txn = db.begin_write().map_err(|e| corrupt(&e))?;
        txn.open_table(ENTITIES).map_err(|e| corrupt(&e))?;
        txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
        txn.commit().map_err(|e| corrupt(&e))?;
    }
    let txn = db.begin_read().map_err(|e| corrupt(&e))?;
    let tenants = txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
    for row in tenants.iter().map_err(|e| corrupt(&e))? {
        let (name, _) = row.map_err(|e| corrupt(&e))?;
        let tenant = Tenant::parse(name.value()).map_err(|e| corrupt(&e))?;
        memory.apply(&tenant, &[]);
    }
    let entities = txn.open_table(ENTITIES).map_err(|e| corrupt(&e))?;
    for row in entities.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        let (tenant, _) = k
            .value()
            .split_once('\u{0}')
            .ok_or_else(|| StoreError::Corrupt(format!("bad key {:?}", k.value())))?;
        let tenant = Tenant::parse(tenant).map_err(|e| corrupt(&e))?;
        let entity: Entity = serde_json::from_slice(v.value()).map_err(|e| corrupt(&e))?;
        memory.apply(&tenant, &[Change::Put(entity)]);
    }
    Ok(memory)
}
