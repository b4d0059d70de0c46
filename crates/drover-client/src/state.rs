//! The client's own state on disk (redb, `<state_dir>/client.db`): the node's identity, every
//! allocation it runs, and per task the driver handle and the task state.
//!
//! ```text
//!  meta    "node_id" / "secret_id"            → JSON string
//!  allocs  <alloc id>                         → JSON Allocation (as received from the servers)
//!  tasks   <alloc id>/<task>                  → JSON LocalTaskState (handle, state, events)
//! ```
//!
//! Written on every change that matters for a restart (alloc added or updated, task started,
//! task state changed) with an fsync per write, read once at start-up to restore the runners
//! and re-attach to tasks that kept running while the agent was down.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use drover_drivers::TaskHandle;
use drover_types::{Allocation, TaskState};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::ClientError;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ALLOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("allocs");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");

/// What a task runner persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalTaskState {
    /// The driver handle of the running task (None when not running).
    pub handle: Option<TaskHandle>,
    /// The task state reported to the servers (events included).
    pub state: TaskState,
    /// The task finished for good (no restart will follow).
    pub run_complete: bool,
}

/// An allocation read back at start-up, with its tasks' states by task name.
pub type RestoredAlloc = (Allocation, BTreeMap<String, LocalTaskState>);

/// The client database.
#[derive(Debug, Clone)]
pub struct StateDb {
    db: Arc<Database>,
}

fn err(e: impl std::fmt::Display) -> ClientError {
    ClientError::State(e.to_string())
}

impl StateDb {
    /// Opens (or creates) `<dir>/client.db`.
    pub fn open(dir: &Path) -> Result<StateDb, ClientError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let path = dir.join("client.db");
        let db =
            Database::create(&path).map_err(|e| ClientError::State(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(err)?;
        {
            txn.open_table(META).map_err(err)?;
            txn.open_table(ALLOCS).map_err(err)?;
            txn.open_table(TASKS).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(StateDb { db: Arc::new(db) })
    }

    fn put(&self, table: TableDefinition<&str, &[u8]>, key: &str, bytes: &[u8]) -> Result<(), ClientError> {
        // A commit fsyncs: on a multi-threaded runtime let the runtime move other tasks off
        // this worker meanwhile.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.put_now(table, key, bytes))
            }
            _ => self.put_now(table, key, bytes),
        }
    }

    fn put_now(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut t = txn.open_table(table).map_err(err)?;
            t.insert(key, bytes).map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    fn get(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let txn = self.db.begin_read().map_err(err)?;
        let t = txn.open_table(table).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|g| g.value().to_vec()))
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, ClientError> {
        Ok(self
            .get(META, key)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), ClientError> {
        self.put(META, key, value.as_bytes())
    }

    /// Stores an allocation.
    pub fn put_alloc(&self, alloc: &Allocation) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(alloc).map_err(err)?;
        self.put(ALLOCS, &alloc.id, &bytes)
    }

    /// Stores a task's local state.
    pub fn put_task(&self, alloc_id: &str, task: &str, state: &LocalTaskState) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(state).map_err(err)?;
        self.put(TASKS, &format!("{alloc_id}/{task}"), &bytes)
    }

    /// Deletes an allocation and its tasks.
    pub fn delete_alloc(&self, alloc_id: &str) -> Result<(), ClientError> {
        let prefix = format!("{alloc_id}/");
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut a = txn.open_table(ALLOCS).map_err(err)?;
            a.remove(alloc_id).map_err(err)?;
            let mut t = txn.open_table(TASKS).map_err(err)?;
            let keys: Vec<String> = t
                .range(prefix.as_str()..)
                .map_err(err)?
                .filter_map(|r| r.ok())
                .map(|(k, _)| k.value().to_string())
                .take_while(|k| k.starts_with(&prefix))
                .collect();
            for k in keys {
                t.remove(k.as_str()).map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    /// Every stored allocation with its tasks' states. An unreadable record is skipped with a
    /// warning (the servers resend the allocation).
    pub fn load(&self) -> Result<Vec<RestoredAlloc>, ClientError> {
        let txn = self.db.begin_read().map_err(err)?;
        let allocs = txn.open_table(ALLOCS).map_err(err)?;
        let tasks = txn.open_table(TASKS).map_err(err)?;
        let mut out = Vec::new();
        for item in allocs.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let alloc: Allocation = match drover_types::codec::from_slice(v.value()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(alloc_id = k.value(), error = %e, "skipping unreadable allocation in the client state");
                    continue;
                }
            };
            let prefix = format!("{}/", alloc.id);
            let mut states = BTreeMap::new();
            for t in tasks.range(prefix.as_str()..).map_err(err)? {
                let (tk, tv) = t.map_err(err)?;
                let Some(name) = tk.value().strip_prefix(&prefix) else {
                    break;
                };
                match drover_types::codec::from_slice::<LocalTaskState>(tv.value()) {
                    Ok(s) => {
                        states.insert(name.to_string(), s);
                    }
                    Err(e) => tracing::warn!(task = tk.value(), error = %e, "unreadable task state"),
                }
            }
            out.push((alloc, states));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocs_and_tasks_survive_reopening_and_delete_takes_the_tasks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = StateDb::open(dir.path()).unwrap();
            db.set_meta("node_id", "n1").unwrap();
            for id in ["a1", "a2"] {
                db.put_alloc(&Allocation {
                    id: id.into(),
                    ..Default::default()
                })
                .unwrap();
            }
            // Empty lists encode as `null` (Nomad's wire format); they must read back.
            let mut s = LocalTaskState::default();
            s.state.state = "running".into();
            db.put_task("a1", "web", &s).unwrap();
            db.put_task("a1", "side", &s).unwrap();
            db.put_task("a2", "web", &s).unwrap();
            db.delete_alloc("a2").unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        assert_eq!(db.meta("node_id").unwrap().as_deref(), Some("n1"));
        let all = db.load().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0.id, "a1");
        assert_eq!(all[0].1.keys().collect::<Vec<_>>(), ["side", "web"]);
        assert_eq!(all[0].1["web"].state.state, "running");
    }
}
