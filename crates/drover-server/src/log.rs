//! [`Log`]: the replicated log as the server sees it: write a command, learn its outcome, watch
//! the applied index and leadership.
//!
//! ```text
//!   Server ──write(Command)──▶ Log ──▶ (Raft: fsync, commit, FSM apply) ──▶ ApplyOutcome
//!          ◀──applied() watch (index)──      ◀──leadership() watch──
//! ```
//!
//! Two implementations: [`drover_raft::RaftNode`] (every agent, dev mode included: a
//! single-voter Raft in a temporary directory) and [`MemLog`], which applies commands straight
//! to an in-memory store with a growing index. `MemLog` exists for the server's own tests: it
//! runs the same FSM code with no disk, so broker and applier logic can be tested in
//! milliseconds. It is never used by the agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use drover_state::{ApplyOutcome, Command, StateStore};
use tokio::sync::{Mutex, watch};

use crate::ServerError;

/// A boxed future, so [`Log`] is object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The replicated log.
pub trait Log: Send + Sync + 'static {
    /// The state store the FSM writes.
    fn store(&self) -> Arc<StateStore>;
    /// Replicates, commits and applies `cmd` (durably); returns what the FSM reported. An FSM
    /// rejection (a missing object, a stale index) is mapped by [`state_error`].
    fn write(&self, cmd: Command) -> BoxFuture<'_, Result<ApplyOutcome, ServerError>>;
    /// The last applied index; changes after every apply.
    fn applied(&self) -> watch::Receiver<u64>;
    /// `true` while this server leads.
    fn leadership(&self) -> watch::Receiver<bool>;
    /// The leader's address, when known.
    fn leader_addr(&self) -> Option<String>;
    /// Raft statistics for `/v1/agent/self` and metrics: (name, value) pairs.
    fn stats(&self) -> Vec<(&'static str, String)>;
}

/// An in-memory log for tests: always the leader, applies synchronously.
#[derive(Debug)]
pub struct MemLog {
    store: Arc<StateStore>,
    next: Mutex<u64>,
    applied: watch::Sender<u64>,
    leader: watch::Sender<bool>,
}

impl Default for MemLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLog {
    /// An empty log whose server leads.
    pub fn new() -> Self {
        MemLog {
            store: Arc::new(StateStore::new()),
            next: Mutex::new(0),
            applied: watch::Sender::new(0),
            leader: watch::Sender::new(true),
        }
    }

    /// Simulates losing (`false`) or gaining leadership.
    pub fn set_leader(&self, leader: bool) {
        self.leader.send_replace(leader);
    }
}

impl Log for MemLog {
    fn store(&self) -> Arc<StateStore> {
        self.store.clone()
    }

    fn write(&self, cmd: Command) -> BoxFuture<'_, Result<ApplyOutcome, ServerError>> {
        Box::pin(async move {
            let mut next = self.next.lock().await;
            *next += 1;
            let index = *next;
            let out = self.store.apply(index, cmd);
            // The index is consumed either way, as a committed Raft entry would be.
            self.applied.send_replace(index);
            out.map_err(|e| state_error(&e))
        })
    }

    fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    fn leader_addr(&self) -> Option<String> {
        Some("127.0.0.1:4647".into())
    }

    fn stats(&self) -> Vec<(&'static str, String)> {
        vec![("applied_index", self.store.latest_index().to_string())]
    }
}

/// Maps an FSM rejection to the error a caller reports.
pub fn state_error(e: &drover_state::StateError) -> ServerError {
    match e {
        drover_state::StateError::NotFound { kind, .. } => ServerError::NotFound(kind),
        other => ServerError::BadRequest(other.to_string()),
    }
}

/// The agent's log: a [`drover_raft::RaftNode`] behind a group-commit batcher.
///
/// ```text
///  write(cmd) ──▶ queue ──▶ batcher task: take everything queued (≤ MAX_BATCH) ──▶ one Raft
///                                entry (Command::Batch) ──▶ one fsync ──▶ each caller its outcome
/// ```
///
/// openraft 0.9 appends and flushes a leader's entries one at a time, so concurrent writers
/// would each pay an fsync. The batcher sends whatever queued up while the previous entry was
/// being made durable as one entry: under load many commands share one flush; alone, a
/// command goes straight through (no added wait).
#[derive(Debug)]
pub struct RaftLog {
    node: drover_raft::RaftNode,
    queue: tokio::sync::mpsc::UnboundedSender<(
        Command,
        tokio::sync::oneshot::Sender<Result<ApplyOutcome, ServerError>>,
    )>,
    entries: std::sync::atomic::AtomicU64,
}

/// Most commands in one Raft entry.
pub const MAX_BATCH: usize = 256;

type Pending = (
    Command,
    tokio::sync::oneshot::Sender<Result<ApplyOutcome, ServerError>>,
);

impl RaftLog {
    /// Wraps an open node and starts the batcher on the current runtime.
    pub fn new(node: drover_raft::RaftNode) -> Arc<RaftLog> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let log = Arc::new(RaftLog {
            node: node.clone(),
            queue: tx,
            entries: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(Self::batcher(node, rx, Arc::downgrade(&log)));
        log
    }

    /// The Raft node.
    pub fn node(&self) -> &drover_raft::RaftNode {
        &self.node
    }

    async fn batcher(
        node: drover_raft::RaftNode,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Pending>,
        log: std::sync::Weak<RaftLog>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            if let Some(l) = log.upgrade() {
                l.entries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if batch.len() == 1 {
                let Some((cmd, reply)) = batch.pop() else { continue };
                let _ = reply.send(node.write(cmd).await.map_err(|e| raft_error(&e)));
                continue;
            }
            let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
            match node.write(Command::Batch { commands }).await {
                Ok(out) => {
                    let mut results = out.batch.into_iter();
                    for reply in replies {
                        let r = match results.next() {
                            Some(Ok(o)) => Ok(o),
                            Some(Err(text)) => Err(apply_error(&text)),
                            None => Err(ServerError::Internal("batch outcome missing".into())),
                        };
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    let e = raft_error(&e);
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Maps a Raft failure to what the caller reports.
pub fn raft_error(e: &drover_raft::RaftError) -> ServerError {
    match e {
        drover_raft::RaftError::NotLeader { leader } => ServerError::NoLeader {
            leader: leader.as_ref().map(|(_, addr)| addr.clone()),
        },
        drover_raft::RaftError::Apply(text) => apply_error(text),
        drover_raft::RaftError::Shutdown => ServerError::Unavailable("server is shutting down".into()),
        other => ServerError::Raft(other.to_string()),
    }
}

/// An FSM rejection carried as text through Raft.
fn apply_error(text: &str) -> ServerError {
    if let Some(kind) = text
        .strip_suffix("not found")
        .and_then(|t| t.split_whitespace().next())
    {
        for k in ["job", "node", "alloc", "eval", "deployment"] {
            if kind == k {
                return ServerError::NotFound(k);
            }
        }
    }
    ServerError::BadRequest(text.to_string())
}

impl Log for RaftLog {
    fn store(&self) -> Arc<StateStore> {
        self.node.store()
    }

    fn write(&self, cmd: Command) -> BoxFuture<'_, Result<ApplyOutcome, ServerError>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.queue
                .send((cmd, tx))
                .map_err(|_| ServerError::Unavailable("raft log is closed".into()))?;
            rx.await
                .unwrap_or_else(|_| Err(ServerError::Unavailable("raft log is closed".into())))
        })
    }

    fn applied(&self) -> watch::Receiver<u64> {
        self.node.applied()
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.node.leadership()
    }

    fn leader_addr(&self) -> Option<String> {
        self.node.leader().map(|(_, addr)| addr)
    }

    fn stats(&self) -> Vec<(&'static str, String)> {
        let m = self.node.metrics();
        vec![
            ("state", m.state.clone()),
            ("term", m.term.to_string()),
            ("last_log_index", m.last_log_index.to_string()),
            ("applied_index", m.last_applied.to_string()),
            ("commit_index", m.commit_index.to_string()),
            ("snapshot_index", m.snapshot_index.to_string()),
            ("num_peers", m.voters.len().saturating_sub(1).to_string()),
            ("log_commits", m.log_commits.to_string()),
            ("log_entries_written", m.log_entries_written.to_string()),
            (
                "raft_entries_from_batcher",
                self.entries
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            ),
        ]
    }
}
