//! Group commit into redb, and loading the state back at start-up.

use std::sync::mpsc;
use std::sync::Arc;

use harbor_model::{Entity, Registration, Subscription, Tenant};
use harbor_store::{
    Change, ContextChange, RegistrationChange, StoreError, StoreResult, SubscriptionChange,
};
use parking_lot::RwLock;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::memory::Memory;

/// Entities by `tenant \0 id`, as JSON.
const ENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entities");
/// Tenants that exist, with nothing attached.
const TENANTS: TableDefinition<&str, ()> = TableDefinition::new("tenants");
/// Stored `@context` records by local id.
const CONTEXTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contexts");

/// Subscriptions by `tenant \0 id`, as JSON.
const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("subscriptions");
/// Subscriptions to context source registrations by `tenant \0 id`, as JSON.
const CSOURCE_SUBSCRIPTIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("csource_subscriptions");
/// Context source registrations by `tenant \0 id`, as JSON.
const REGISTRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("registrations");

/// Stored `@context` records by id, as loaded and committed.
pub type Contexts = std::collections::BTreeMap<String, Vec<u8>>;

/// Records of one kind per tenant, by id.
pub type ByTenant<T> =
    std::collections::HashMap<Tenant, std::collections::BTreeMap<String, Arc<T>>>;

/// Subscriptions per tenant, by id.
pub type Subscriptions = ByTenant<Subscription>;

/// The records kept beside the entities: subscriptions (5.8), context source registrations
/// (5.9) and subscriptions to registrations (5.11).
#[derive(Default)]
pub struct Records {
    pub subscriptions: Subscriptions,
    pub csource_subscriptions: Subscriptions,
    pub registrations: ByTenant<Registration>,
}

/// Which subscriptions a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    Entities,
    Registrations,
}

/// Largest number of requests folded into one commit.
const MAX_GROUP: usize = 1024;

enum Work {
    Entities {
        tenant: Tenant,
        changes: Vec<Change>,
    },
    Contexts(Vec<ContextChange>),
    Subscriptions {
        kind: SubscriptionKind,
        tenant: Tenant,
        changes: Vec<SubscriptionChange>,
    },
    Registrations {
        tenant: Tenant,
        changes: Vec<RegistrationChange>,
    },
}

struct Request {
    work: Work,
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
    pub fn start(
        db: redb::Database,
        memory: Arc<RwLock<Memory>>,
        contexts: Arc<RwLock<Contexts>>,
        records: Arc<RwLock<Records>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("harbor-commit".into())
            .spawn(move || run(db, memory, contexts, records, rx))
            .expect("spawning the commit thread");
        Committer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub async fn submit(&self, tenant: Tenant, changes: Vec<Change>) -> StoreResult<()> {
        self.send(Work::Entities { tenant, changes }).await
    }

    pub async fn submit_contexts(&self, changes: Vec<ContextChange>) -> StoreResult<()> {
        self.send(Work::Contexts(changes)).await
    }

    pub async fn submit_subscriptions(
        &self,
        kind: SubscriptionKind,
        tenant: Tenant,
        changes: Vec<SubscriptionChange>,
    ) -> StoreResult<()> {
        self.send(Work::Subscriptions {
            kind,
            tenant,
            changes,
        })
        .await
    }

    pub async fn submit_registrations(
        &self,
        tenant: Tenant,
        changes: Vec<RegistrationChange>,
    ) -> StoreResult<()> {
        self.send(Work::Registrations { tenant, changes }).await
    }

    async fn send(&self, work: Work) -> StoreResult<()> {
        let (done, wait) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        tx.send(Request { work, done })
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the commit thread has stopped".into()))?
    }
}

fn key(tenant: &Tenant, id: &str) -> String {
    format!("{}\u{0}{}", tenant.as_str(), id)
}

fn run(
    db: redb::Database,
    memory: Arc<RwLock<Memory>>,
    contexts: Arc<RwLock<Contexts>>,
    records: Arc<RwLock<Records>>,
    rx: mpsc::Receiver<Request>,
) {
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
            let mut ctx = contexts.write();
            let mut rec = records.write();
            for r in &mut group {
                match &mut r.work {
                    // The entities move into memory: the commit is done with them.
                    Work::Entities { tenant, changes } => {
                        mem.apply(tenant, std::mem::take(changes))
                    }
                    Work::Contexts(changes) => apply_contexts(&mut ctx, changes),
                    Work::Subscriptions {
                        kind,
                        tenant,
                        changes,
                    } => {
                        let subs = match kind {
                            SubscriptionKind::Entities => &mut rec.subscriptions,
                            SubscriptionKind::Registrations => &mut rec.csource_subscriptions,
                        };
                        apply_subscriptions(subs, tenant, changes)
                    }
                    Work::Registrations { tenant, changes } => {
                        apply_registrations(&mut rec.registrations, tenant, changes)
                    }
                }
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
        let mut contexts = txn.open_table(CONTEXTS).map_err(|e| fail(&e))?;
        let mut subscriptions = txn.open_table(SUBSCRIPTIONS).map_err(|e| fail(&e))?;
        let mut csource_subscriptions = txn
            .open_table(CSOURCE_SUBSCRIPTIONS)
            .map_err(|e| fail(&e))?;
        let mut registrations = txn.open_table(REGISTRATIONS).map_err(|e| fail(&e))?;
        for r in group {
            let (tenant, changes) = match &r.work {
                Work::Entities { tenant, changes } => (tenant, changes),
                Work::Subscriptions {
                    kind,
                    tenant,
                    changes,
                } => {
                    let table = match kind {
                        SubscriptionKind::Entities => &mut subscriptions,
                        SubscriptionKind::Registrations => &mut csource_subscriptions,
                    };
                    for c in changes {
                        match c {
                            SubscriptionChange::Put(sub) => {
                                let bytes = serde_json::to_vec(sub).map_err(|e| fail(&e))?;
                                table
                                    .insert(key(tenant, &sub.id).as_str(), bytes.as_slice())
                                    .map(|_| ())
                            }
                            SubscriptionChange::Delete(id) => {
                                table.remove(key(tenant, id).as_str()).map(|_| ())
                            }
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
                Work::Registrations { tenant, changes } => {
                    for c in changes {
                        match c {
                            RegistrationChange::Put(reg) => {
                                let bytes = serde_json::to_vec(reg).map_err(|e| fail(&e))?;
                                registrations
                                    .insert(key(tenant, &reg.id).as_str(), bytes.as_slice())
                                    .map(|_| ())
                            }
                            RegistrationChange::Delete(id) => {
                                registrations.remove(key(tenant, id).as_str()).map(|_| ())
                            }
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
                Work::Contexts(changes) => {
                    for c in changes {
                        match c {
                            ContextChange::Put { id, record } => {
                                contexts.insert(id.as_str(), record.as_slice())
                            }
                            ContextChange::Delete(id) => contexts.remove(id.as_str()),
                        }
                        .map_err(|e| fail(&e))?;
                    }
                    continue;
                }
            };
            tenants.insert(tenant.as_str(), ()).map_err(|e| fail(&e))?;
            for c in changes {
                match c {
                    Change::Put(e) => {
                        let bytes = serde_json::to_vec(e).map_err(|e| fail(&e))?;
                        entities
                            .insert(key(tenant, &e.id).as_str(), bytes.as_slice())
                            .map_err(|e| fail(&e))?;
                    }
                    Change::Delete(id) => {
                        entities
                            .remove(key(tenant, id).as_str())
                            .map_err(|e| fail(&e))?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(|e| fail(&e))
}

fn apply_contexts(stored: &mut Contexts, changes: &[ContextChange]) {
    for c in changes {
        match c {
            ContextChange::Put { id, record } => {
                stored.insert(id.clone(), record.clone());
            }
            ContextChange::Delete(id) => {
                stored.remove(id);
            }
        }
    }
}

fn apply_subscriptions(
    stored: &mut Subscriptions,
    tenant: &Tenant,
    changes: &[SubscriptionChange],
) {
    let of_tenant = stored.entry(tenant.clone()).or_default();
    for c in changes {
        match c {
            SubscriptionChange::Put(s) => {
                of_tenant.insert(s.id.clone(), Arc::new((**s).clone()));
            }
            SubscriptionChange::Delete(id) => {
                of_tenant.remove(id);
            }
        }
    }
}

fn apply_registrations(
    stored: &mut ByTenant<Registration>,
    tenant: &Tenant,
    changes: &[RegistrationChange],
) {
    let of_tenant = stored.entry(tenant.clone()).or_default();
    for c in changes {
        match c {
            RegistrationChange::Put(r) => {
                of_tenant.insert(r.id.clone(), Arc::new((**r).clone()));
            }
            RegistrationChange::Delete(id) => {
                of_tenant.remove(id);
            }
        }
    }
}

/// Reads one table of JSON records keyed `tenant \0 id` into memory.
fn load_table<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
) -> StoreResult<ByTenant<T>> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut out = ByTenant::<T>::new();
    let table = txn.open_table(def).map_err(|e| corrupt(&e))?;
    for row in table.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        let (tenant, id) = k
            .value()
            .split_once('\u{0}')
            .ok_or_else(|| StoreError::Corrupt(format!("bad key {:?}", k.value())))?;
        let tenant = Tenant::parse(tenant).map_err(|e| corrupt(&e))?;
        let record: T = serde_json::from_slice(v.value()).map_err(|e| corrupt(&e))?;
        out.entry(tenant)
            .or_default()
            .insert(id.to_string(), Arc::new(record));
    }
    Ok(out)
}

/// Everything `load` reads back.
pub struct Loaded {
    pub memory: Memory,
    pub contexts: Contexts,
    pub records: Records,
}

/// Reads the whole durable state into memory.
pub fn load(db: &redb::Database) -> StoreResult<Loaded> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut memory = Memory::default();
    // Make sure the tables exist so a fresh database reads as empty.
    {
        let txn = db.begin_write().map_err(|e| corrupt(&e))?;
        txn.open_table(ENTITIES).map_err(|e| corrupt(&e))?;
        txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
        txn.open_table(CONTEXTS).map_err(|e| corrupt(&e))?;
        txn.open_table(SUBSCRIPTIONS).map_err(|e| corrupt(&e))?;
        txn.open_table(CSOURCE_SUBSCRIPTIONS)
            .map_err(|e| corrupt(&e))?;
        txn.open_table(REGISTRATIONS).map_err(|e| corrupt(&e))?;
        txn.commit().map_err(|e| corrupt(&e))?;
    }
    let txn = db.begin_read().map_err(|e| corrupt(&e))?;
    let tenants = txn.open_table(TENANTS).map_err(|e| corrupt(&e))?;
    for row in tenants.iter().map_err(|e| corrupt(&e))? {
        let (name, _) = row.map_err(|e| corrupt(&e))?;
        let tenant = Tenant::parse(name.value()).map_err(|e| corrupt(&e))?;
        memory.apply(&tenant, Vec::new());
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
        memory.apply(&tenant, vec![Change::Put(entity)]);
    }
    let mut contexts = Contexts::new();
    let table = txn.open_table(CONTEXTS).map_err(|e| corrupt(&e))?;
    for row in table.iter().map_err(|e| corrupt(&e))? {
        let (k, v) = row.map_err(|e| corrupt(&e))?;
        contexts.insert(k.value().to_string(), v.value().to_vec());
    }
    let records = Records {
        subscriptions: load_table(&txn, SUBSCRIPTIONS)?,
        csource_subscriptions: load_table(&txn, CSOURCE_SUBSCRIPTIONS)?,
        registrations: load_table(&txn, REGISTRATIONS)?,
    };
    Ok(Loaded {
        memory,
        contexts,
        records,
    })
}
