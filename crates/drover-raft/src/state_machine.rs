//! The Raft state machine: committed entries → [`StateStore`], plus snapshot build/install.
//!
//! ```text
//!  committed entries ──apply──▶ Normal(cmd):   StateStore::apply(entry index, cmd)
//!                               Blank:         last_applied only
//!                               Membership:    last_applied + last_membership
//!                        ──▶ applied watch (index) after each entry
//!  build_snapshot:  Arc<StateSnapshot> (O(1), taken with last_applied) ──to_bytes──▶ file
//!  install_snapshot (from the leader): bytes ──from_bytes──▶ StateStore::restore + file
//!  open: newest valid snapshot file ──▶ StateStore::from_snapshot; openraft re-applies the
//!        committed log after it
//! ```
//!
//! A command the store rejects (e.g. `NotFound`) is not a Raft failure: every replica rejects
//! it the same way and leaves the state untouched; the reply carries the message.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use drover_state::{StateSnapshot, StateStore};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use tokio::sync::watch;

use crate::RaftError;
use crate::snapshot;
use crate::types::{
    Entry, FsmResponse, LogCommand, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// The snapshot this node serves and restarts from.
#[derive(Debug, Clone)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    path: PathBuf,
}

#[derive(Debug)]
struct Shared {
    store: Arc<StateStore>,
    dir: PathBuf,
    current: Mutex<Option<CurrentSnapshot>>,
    applied_tx: watch::Sender<u64>,
    /// Makes snapshot file names unique even for the same log id.
    seq: AtomicU64,
}

impl Shared {
    fn set_current(&self, cur: CurrentSnapshot) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(cur);
    }

    fn current(&self) -> Option<CurrentSnapshot> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn next_name(&self, last: Option<&LogId>) -> (String, String) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (index, term) = last.map(|l| (l.index, l.leader_id.term)).unwrap_or((0, 0));
        (
            format!("{term}-{index}-{seq}"),
            snapshot::file_name(index, term, seq),
        )
    }

    /// Writes a snapshot file on the blocking pool and makes it current.
    async fn persist(
        self: &Arc<Self>,
        meta: SnapshotMeta,
        name: String,
        data: Arc<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        let m = meta.clone();
        let res = tokio::task::spawn_blocking(move || snapshot::write(&dir, &name, &m, &data)).await;
        let path = match res {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(snapshot_err(&meta, &self.dir, e.to_string())),
            Err(e) => return Err(snapshot_err(&meta, &self.dir, e.to_string())),
        };
        self.set_current(CurrentSnapshot { meta, path });
        Ok(())
    }
}

fn snapshot_err(meta: &SnapshotMeta, dir: &Path, msg: String) -> StorageError {
    StorageIOError::new(
        ErrorSubject::Snapshot(Some(meta.signature())),
        ErrorVerb::Write,
        AnyError::error(format!("{}: {msg}", dir.display())),
    )
    .into()
}

/// The state machine handed to openraft.
#[derive(Debug)]
pub(crate) struct StateMachine {
    shared: Arc<Shared>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

impl StateMachine {
    /// Restores the newest valid snapshot in `dir` (created if missing) into a new state store.
    ///
    /// If the newest file is damaged, an older one is used only when the log still holds every
    /// entry after it (`purged_index` ≤ its index); otherwise the error names the damaged file.
    /// A damaged file that was skipped is renamed to `<name>.corrupt`.
    pub(crate) async fn open(
        dir: PathBuf,
        purged_index: Option<u64>,
    ) -> Result<(StateMachine, Arc<StateStore>), RaftError> {
        let d = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || load_newest(&d, purged_index))
            .await
            .map_err(|e| RaftError::Storage(format!("{}: loading snapshots failed: {e}", dir.display())))??;
        let (applied_tx, _) = watch::channel(0);
        let (store, last_applied, last_membership, current) = match loaded {
            Some((meta, path, state)) => (
                StateStore::from_snapshot(state),
                meta.last_log_id,
                meta.last_membership.clone(),
                Some(CurrentSnapshot { meta, path }),
            ),
            None => (StateStore::new(), None, StoredMembership::default(), None),
        };
        applied_tx.send_replace(last_applied.as_ref().map(|l| l.index).unwrap_or(0));
        let store = Arc::new(store);
        let seq_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            store: store.clone(),
            dir,
            current: Mutex::new(current),
            applied_tx,
            seq: AtomicU64::new(seq_start),
        });
        Ok((
            StateMachine {
                shared,
                last_applied,
                last_membership,
            },
            store,
        ))
    }

    /// A receiver of the last applied index.
    pub(crate) fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied_tx.subscribe()
    }

    fn publish(&self) {
        let index = self.last_applied.as_ref().map(|l| l.index).unwrap_or(0);
        self.shared.applied_tx.send_replace(index);
    }
}

type Loaded = Option<(SnapshotMeta, PathBuf, StateSnapshot)>;

fn load_newest(dir: &Path, purged_index: Option<u64>) -> Result<Loaded, RaftError> {
    let io = |e: std::io::Error| RaftError::Storage(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut damaged: Vec<(PathBuf, String)> = Vec::new();
    let mut chosen: Loaded = None;
    for f in snapshot::list(dir).map_err(io)? {
        let res = snapshot::read(&f.path).and_then(|(meta, data)| {
            StateSnapshot::from_bytes(&data)
                .map(|s| (meta, s))
                .map_err(|e| format!("state does not decode: {e}"))
        });
        match res {
            Ok((meta, state)) => {
                chosen = Some((meta, f.path, state));
                break;
            }
            Err(e) => {
                let msg = format!("snapshot file {} is unreadable: {e}", f.path.display());
                tracing::error!("{msg}");
                damaged.push((f.path, msg));
            }
        }
    }
    let chosen_index = chosen
        .as_ref()
        .and_then(|(m, _, _)| m.last_log_id.as_ref().map(|l| l.index))
        .unwrap_or(0);
    // The log must hold every entry after the snapshot we start from.
    if let Some(purged) = purged_index.filter(|p| *p > chosen_index) {
        return Err(RaftError::Storage(match damaged.into_iter().next() {
            Some((_, msg)) => msg,
            None => format!(
                "{}: the log is purged up to index {purged} but no snapshot covers it (snapshot files missing?)",
                dir.display()
            ),
        }));
    }
    // Starting from an older snapshot (or none) is safe: set the damaged files aside.
    for (path, msg) in damaged {
        tracing::warn!(error = %msg, "skipping a damaged snapshot; the log covers what it held");
        let mut corrupt = path.clone().into_os_string();
        corrupt.push(".corrupt");
        // The file is already skipped; a failed rename only means it is reported again next time.
        let _ = std::fs::rename(&path, corrupt);
    }
    Ok(chosen)
}

/// Builds one snapshot from the state as of `last_applied`.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    shared: Arc<Shared>,
    state: Arc<StateSnapshot>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (snapshot_id, name) = self.shared.next_name(self.last_applied.as_ref());
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        };
        let state = self.state.clone();
        let data = tokio::task::spawn_blocking(move || state.to_bytes())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| snapshot_err(&meta, &self.shared.dir, e))?;
        let data = Arc::new(data);
        self.shared.persist(meta.clone(), name, data.clone()).await?;
        tracing::info!(snapshot = %meta, "snapshot written");
        let data = Arc::try_unwrap(data).unwrap_or_else(|a| (*a).clone());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<FsmResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let resp = match entry.payload {
                EntryPayload::Blank => FsmResponse::Empty,
                EntryPayload::Normal(LogCommand(cmd)) => {
                    let name = cmd.name();
                    match self.shared.store.apply(log_id.index, cmd) {
                        Ok(outcome) => FsmResponse::Applied(outcome),
                        Err(e) => {
                            tracing::debug!(index = log_id.index, command = name, error = %e, "command rejected");
                            FsmResponse::Rejected(e.to_string())
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(log_id), m);
                    FsmResponse::Empty
                }
            };
            self.last_applied = Some(log_id);
            self.publish();
            out.push(resp);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            state: self.shared.store.snapshot(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = StateSnapshot::from_bytes(&data).map_err(|e| {
            StorageError::from(StorageIOError::new(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                AnyError::error(format!("received snapshot does not decode: {e}")),
            ))
        })?;
        let (_, name) = self.shared.next_name(meta.last_log_id.as_ref());
        self.shared.persist(meta.clone(), name, Arc::new(data)).await?;
        self.shared.store.restore(state);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish();
        tracing::info!(snapshot = %meta, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(cur) = self.shared.current() else {
            return Ok(None);
        };
        let path = cur.path.clone();
        let res = tokio::task::spawn_blocking(move || snapshot::read(&path))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match res {
            Ok((_, data)) => Ok(Some(Snapshot {
                meta: cur.meta,
                snapshot: Box::new(Cursor::new(data)),
            })),
            Err(e) => Err(StorageIOError::new(
                ErrorSubject::Snapshot(Some(cur.meta.signature())),
                ErrorVerb::Read,
                AnyError::error(format!("{}: {e}", cur.path.display())),
            )
            .into()),
        }
    }
}
