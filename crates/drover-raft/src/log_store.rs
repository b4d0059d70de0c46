//! The Raft log and its metadata in one redb file, `<data_dir>/raft/raft.db`.
//!
//! ```text
//!  openraft core ──append(batch)──▶ spawn_blocking: ONE write txn, Durability::Immediate
//!                                     entries[index] = msgpack(Entry)      (fsync on commit)
//!                 ◀──LogFlushed────── called only after commit() returned
//!  save_vote / truncate ────────────▶ write txn, Immediate (must survive a crash)
//!  save_committed / purge ──────────▶ write txn, Durability::None: made durable by the next
//!                                     Immediate commit; losing one is safe (see below)
//!  replication tasks ──LogReader────▶ read txns (MVCC, never block the writer)
//! ```
//!
//! Tables: `entries` (u64 index → msgpack of the entry, `rmp_serde::to_vec_named`) and `meta`
//! (`vote`, `committed`, `last_purged` → msgpack).
//!
//! # Guarantees
//! - An append is durable before openraft hears about it: the `LogFlushed` callback runs after
//!   the commit (fsync) returned, so an acknowledged write survives a crash.
//! - Every append call is one redb transaction: a batch of entries shares one fsync.
//! - A lost `committed` only means fewer entries are re-applied at start-up before the first
//!   election (the new leader commits them again); a lost purge leaves entries that a snapshot
//!   already covers, with the matching `last_purged`.
//! - No disk I/O runs on a runtime worker: every redb call is inside `spawn_blocking`.
//! - A corrupted file fails to open with an error naming it (redb's integrity check runs on
//!   every open; a panic inside redb is caught and reported the same way).
//!
//! # Limitations
//! - openraft 0.9's leader calls `append` once per client write and waits for its flush before
//!   taking the next one, so concurrent writes on a leader do not share an fsync here; batches
//!   reach `append` on followers (AppendEntries) and at start-up.
//! - The file never shrinks (redb's `compact()` is not called).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RaftError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// The log file's name inside `<data_dir>/raft/`.
pub(crate) const LOG_FILE: &str = "raft.db";

/// How long `open` waits for a previous instance in this process to release the file.
const OPEN_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Counters the node reports in its metrics.
#[derive(Debug, Default)]
pub(crate) struct LogStats {
    /// Durable commits made for `append` calls.
    pub append_commits: AtomicU64,
    /// Entries written by those commits.
    pub appended_entries: AtomicU64,
    /// The last committed index openraft told us (0 = none).
    pub committed_index: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// `None` once closed.
    db: RwLock<Option<Arc<Database>>>,
    stats: Arc<LogStats>,
}

impl Shared {
    fn db(&self) -> Result<Arc<Database>, String> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        guard
            .clone()
            .ok_or_else(|| format!("{}: log store is closed", self.path.display()))
    }

    /// Runs `f` against the database on the blocking pool. Errors name the file.
    async fn run<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, String> + Send + 'static,
    {
        let db = self.db()?;
        let path = self.path.display().to_string();
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{path}: {e}")),
            Err(e) => Err(format!("{path}: storage task failed: {e}")),
        }
    }
}

/// The redb log store handed to openraft.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    shared: Arc<Shared>,
}

/// A read-only handle for replication tasks.
#[derive(Debug, Clone)]
pub(crate) struct LogReader {
    shared: Arc<Shared>,
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(v).map_err(|e| format!("encode failed: {e}"))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("{what} is corrupt: {e}"))
}

fn meta_get<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(META).map_err(|e| e.to_string())?;
    let v = table.get(key).map_err(|e| e.to_string())?;
    match v {
        Some(guard) => decode(key, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn meta_put<T: Serialize>(db: &Database, key: &str, value: &T, durability: Durability) -> Result<(), String> {
    let bytes = encode(value)?;
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(durability).map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(META).map_err(|e| e.to_string())?;
        table.insert(key, bytes.as_slice()).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

fn last_entry_id(db: &Database) -> Result<Option<LogId>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
    let last = table.last().map_err(|e| e.to_string())?;
    match last {
        Some((k, v)) => {
            let e: Entry = decode(&format!("log entry {}", k.value()), v.value())?;
            Ok(Some(e.log_id))
        }
        None => Ok(None),
    }
}

fn read_range(db: &Database, start: u64, end: Option<u64>) -> Result<Vec<Entry>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
    let iter = match end {
        Some(end) => table.range(start..end),
        None => table.range(start..),
    }
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(|e| e.to_string())?;
        out.push(decode(&format!("log entry {}", k.value()), v.value())?);
    }
    Ok(out)
}

/// Removes every entry with an index in `range`, in one transaction.
fn remove_range(
    db: &Database,
    range: (Bound<u64>, Bound<u64>),
    extra: Option<(&str, Vec<u8>)>,
    durability: Durability,
) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    txn.set_durability(durability).map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
        let keys: Vec<u64> = table
            .range::<u64>(range)
            .map_err(|e| e.to_string())?
            .map(|item| item.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        for k in keys {
            table.remove(k).map_err(|e| e.to_string())?;
        }
        if let Some((key, bytes)) = extra {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            meta.insert(key, bytes.as_slice()).map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => Some(e.saturating_add(1)),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    (start, end)
}

fn io_err(e: String) -> io::Error {
    io::Error::other(e)
}

impl LogStore {
    /// Opens (or creates) `<dir>/raft.db` and checks that its metadata and last entry decode.
    pub(crate) async fn open(dir: &Path) -> Result<LogStore, RaftError> {
        let path = dir.join(LOG_FILE);
        let started = Instant::now();
        let db = loop {
            let p = path.clone();
            let res = tokio::task::spawn_blocking(move || open_db(&p)).await;
            match res {
                Ok(Ok(db)) => break db,
                // A previous instance in this process (dropped, not yet stopped) still holds the
                // file lock: wait for it a little.
                Ok(Err(OpenError::Locked)) if started.elapsed() < OPEN_LOCK_WAIT => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Ok(Err(OpenError::Locked)) => {
                    return Err(RaftError::Storage(format!(
                        "{}: the database is already open (another drover server using this data dir?)",
                        path.display()
                    )));
                }
                Ok(Err(OpenError::Other(e))) => {
                    return Err(RaftError::Storage(format!("{}: {e}", path.display())));
                }
                Err(e) => {
                    return Err(RaftError::Storage(format!(
                        "{}: opening the log failed (corrupted file?): {e}",
                        path.display()
                    )));
                }
            }
        };
        Ok(LogStore {
            shared: Arc::new(Shared {
                path,
                db: RwLock::new(Some(Arc::new(db))),
                stats: Arc::new(LogStats::default()),
            }),
        })
    }

    pub(crate) fn stats(&self) -> Arc<LogStats> {
        self.shared.stats.clone()
    }

    /// The last purged index, read directly (used before openraft starts).
    pub(crate) async fn last_purged_index(&self) -> Result<Option<u64>, RaftError> {
        let purged: Option<Option<LogId>> = self
            .shared
            .run(|db| meta_get(db, KEY_PURGED))
            .await
            .map_err(RaftError::Storage)?;
        Ok(purged.flatten().map(|l| l.index))
    }

    /// Closes the file (after openraft stopped). Later calls fail with "closed".
    pub(crate) fn close(&self) {
        let mut guard = self.shared.db.write().unwrap_or_else(|e| e.into_inner());
        guard.take();
    }
}

enum OpenError {
    Locked,
    Other(String),
}

fn open_db(path: &Path) -> Result<Database, OpenError> {
    let mut builder = redb::Builder::new();
    // Verify page checksums on every open: a file damaged outside redb then fails with an
    // error instead of being trusted (a plain open may panic on it).
    builder.set_check_integrity_on_open(true);
    let db = match builder.create(path) {
        Ok(db) => db,
        Err(DatabaseError::DatabaseAlreadyOpen) => return Err(OpenError::Locked),
        Err(e) => return Err(OpenError::Other(format!("cannot open the Raft log: {e}"))),
    };
    let other = |e: String| OpenError::Other(e);
    // Create the tables so readers never see "table does not exist".
    let txn = db.begin_write().map_err(|e| other(e.to_string()))?;
    {
        txn.open_table(ENTRIES).map_err(|e| other(e.to_string()))?;
        txn.open_table(META).map_err(|e| other(e.to_string()))?;
    }
    txn.commit().map_err(|e| other(e.to_string()))?;
    // Decode what start-up will read, so a damaged value is reported now, naming the file.
    meta_get::<Vote>(&db, KEY_VOTE).map_err(other)?;
    meta_get::<Option<LogId>>(&db, KEY_COMMITTED).map_err(other)?;
    meta_get::<Option<LogId>>(&db, KEY_PURGED).map_err(other)?;
    last_entry_id(&db).map_err(other)?;
    Ok(db)
}

async fn get_entries(shared: &Shared, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StorageError> {
    if end.is_some_and(|e| e <= start) {
        return Ok(Vec::new());
    }
    shared
        .run(move |db| read_range(db, start, end))
        .await
        .map_err(|e| StorageIOError::read_logs(AnyError::error(e)).into())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_bounds(&range);
        get_entries(&self.shared, start, end).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_bounds(&range);
        get_entries(&self.shared, start, end).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (purged, last) = self
            .shared
            .run(|db| {
                let purged: Option<LogId> = meta_get::<Option<LogId>>(db, KEY_PURGED)?.flatten();
                let last = last_entry_id(db)?;
                Ok((purged, last))
            })
            .await
            .map_err(|e| StorageIOError::read_logs(AnyError::error(e)))?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.shared
            .run(move |db| meta_put(db, KEY_VOTE, &vote, Durability::Immediate))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.shared
            .run(|db| meta_get(db, KEY_VOTE))
            .await
            .map_err(|e| StorageIOError::read_vote(AnyError::error(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let index = committed.as_ref().map(|l| l.index).unwrap_or(0);
        self.shared
            .run(move |db| meta_put(db, KEY_COMMITTED, &committed, Durability::None))
            .await
            .map_err(|e| StorageIOError::write(AnyError::error(e)))?;
        self.shared.stats.committed_index.store(index, Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .shared
            .run(|db| meta_get(db, KEY_COMMITTED))
            .await
            .map_err(|e| StorageIOError::read(AnyError::error(e)))?;
        let committed = committed.flatten();
        if let Some(c) = &committed {
            self.shared
                .stats
                .committed_index
                .store(c.index, Ordering::Relaxed);
        }
        Ok(committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| encode(&e).map(|b| (e.log_id.index, b)))
            .collect::<Result<_, _>>()
            .map_err(|e| StorageIOError::write_logs(AnyError::error(e)))?;
        if encoded.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let n = encoded.len() as u64;
        let res = self
            .shared
            .run(move |db| {
                let mut txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.set_durability(Durability::Immediate)
                    .map_err(|e| e.to_string())?;
                {
                    let mut table = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
                    for (index, bytes) in &encoded {
                        table
                            .insert(*index, bytes.as_slice())
                            .map_err(|e| e.to_string())?;
                    }
                }
                // Durability::Immediate: returns after the data reached the disk.
                txn.commit().map_err(|e| e.to_string())
            })
            .await;
        match res {
            Ok(()) => {
                self.shared.stats.append_commits.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.appended_entries.fetch_add(n, Ordering::Relaxed);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io_err(e.clone())));
                Err(StorageIOError::write_logs(AnyError::error(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let from = log_id.index;
        self.shared
            .run(move |db| {
                remove_range(
                    db,
                    (Bound::Included(from), Bound::Unbounded),
                    None,
                    Durability::Immediate,
                )
            })
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::error(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let upto = log_id.index;
        let purged = encode(&Some(log_id)).map_err(|e| StorageIOError::write_logs(AnyError::error(e)))?;
        self.shared
            .run(move |db| {
                remove_range(
                    db,
                    (Bound::Unbounded, Bound::Included(upto)),
                    Some((KEY_PURGED, purged)),
                    Durability::None,
                )
            })
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::error(e)).into())
    }
}
