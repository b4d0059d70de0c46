//! Drover's replicated log: openraft 0.9 with a redb log store, snapshot files and a state
//! machine that applies [`drover_state::Command`]s to a [`drover_state::StateStore`].
//!
//! Every change to replicated state is a command in this log, in dev mode too (a single-voter
//! Raft). The server crate sees only [`RaftNode`]; openraft's types stay inside this crate so
//! the move to openraft 0.10 touches nothing else.
//!
//! ```text
//!   server ── RaftNode::write(Command) ──▶ openraft (leader)
//!                                            │ append ─▶ log_store: redb <data_dir>/raft/raft.db
//!                                            │           one write txn per append, fsync, then ack
//!                                            │ replicate ─▶ network: dyn RaftTransport (bytes)
//!                                            │ commit (quorum flushed)
//!                                            ▼
//!                                   state_machine: StateStore::apply(index, cmd)
//!                                            │ ApplyOutcome / rejection ──▶ write() returns
//!                                            │ applied watch ──▶ blocking queries, workers
//!                                            ▼ every `snapshot_threshold` entries
//!                                   snapshot: <data_dir>/raft/snapshots/snap-*.snap (keep 2)
//!                                            └─▶ log purged, keeping `logs_to_keep` entries
//! ```
//!
//! # Layout
//! - `node`: [`RaftNode`], the API: open, write, leadership, snapshots, metrics, membership.
//! - `log_store`: the redb log (entries + vote/committed/purged), group commit per append.
//! - `state_machine`: applies entries, builds/installs snapshots, restores at open.
//! - `snapshot`: the snapshot file format (checksummed) and its durable write.
//! - `network`: [`RaftTransport`] (bytes in, bytes out), [`InProcessNetwork`], and the
//!   adapter to openraft's network traits; [`RaftNode::handle_rpc`] serves incoming RPCs.
//! - `types`: openraft's type configuration, the log payload and the FSM reply.
//!
//! # Guarantees
//! - `write` returns `Ok` only after the entry is fsynced on a quorum and applied on the leader;
//!   such a write survives a crash (reopen after drop without shutdown).
//! - A command the FSM rejects is committed but changes nothing on any replica; `write` returns
//!   [`RaftError::Apply`] and the node keeps working.
//! - `applied()` moves after every entry; `is_leader()` turns true only after the new leader
//!   applied an entry of its own term, so all earlier committed entries are in the store.
//! - A damaged log or snapshot file gives [`RaftError::Storage`] naming the file, never a panic.
//!
//! # Limitations
//! - openraft 0.9's leader appends (and fsyncs) one client write at a time: concurrent writes
//!   do not share an fsync on the leader (see `log_store`); batching commands into one entry
//!   would need the state store to apply several commands at one index.
//! - Snapshots are built and sent in memory (`Cursor<Vec<u8>>`); fine for tens of MB of state.
//! - Only an in-process transport exists; the tonic one belongs in `drover-rpc`/`drover-server`
//!   and only has to move bytes to [`RaftNode::handle_rpc`].
//! - No autopilot (dead-server cleanup) and no leadership transfer yet.
//!
//! # Where to start
//! [`RaftNode::open`] and [`RaftNode::write`], then `state_machine::StateMachine::apply`.

mod log_store;
mod network;
mod node;
mod snapshot;
mod state_machine;
mod types;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use network::{BoxFuture, InProcessNetwork, NoTransport, RaftTransport, RpcKind, TransportError};
pub use node::RaftNode;

/// How to open a [`RaftNode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This server's Raft id (1 for a single server).
    pub node_id: u64,
    /// Advertised RPC address of this server (stored in the membership).
    pub addr: String,
    /// Where `raft/` lives. `None` = dev mode: a temporary directory owned by the node and
    /// removed when it is dropped.
    pub data_dir: Option<PathBuf>,
    /// Take a snapshot after this many applied entries since the last one.
    pub snapshot_threshold: u64,
    /// Entries kept in the log after a snapshot (for followers slightly behind).
    pub logs_to_keep: u64,
    /// Whether a fresh node makes itself the only voter of a new cluster (single server, or the
    /// first server of a cluster that others join). Servers that will be added by a leader (or
    /// formed with [`RaftNode::initialize`]) set `false`.
    pub bootstrap: bool,
}

impl RaftConfig {
    /// Default snapshot threshold.
    pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 8192;
    /// Default number of entries kept after a snapshot.
    pub const DEFAULT_LOGS_TO_KEEP: u64 = 1024;

    /// A single dev-mode server: node 1, temporary data dir.
    pub fn dev() -> Self {
        RaftConfig {
            node_id: 1,
            addr: "127.0.0.1:4647".into(),
            data_dir: None,
            snapshot_threshold: Self::DEFAULT_SNAPSHOT_THRESHOLD,
            logs_to_keep: Self::DEFAULT_LOGS_TO_KEEP,
            bootstrap: true,
        }
    }

    /// A single server keeping its data in `dir`.
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Self {
        RaftConfig {
            data_dir: Some(dir.into()),
            ..Self::dev()
        }
    }
}

/// Numbers about this node's Raft, for `/v1/agent/self` and `/v1/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RaftStats {
    /// This node's id.
    pub node_id: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Index of the last entry in the log.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub last_applied: u64,
    /// Index of the last committed entry known to this node.
    pub commit_index: u64,
    /// Last index included in the current snapshot (0 = none).
    pub snapshot_index: u64,
    /// Last index removed from the log (0 = none).
    pub purged_index: u64,
    /// Current leader (id, address).
    pub leader: Option<(u64, String)>,
    /// Voter ids of the current membership.
    pub voters: Vec<u64>,
    /// Durable log commits (fsyncs) made for appends since open.
    pub log_commits: u64,
    /// Entries those commits wrote (÷ `log_commits` = entries per fsync).
    pub log_entries_written: u64,
}

/// What went wrong in the replicated log.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the leader: retry on `leader` (id, address) if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<(u64, String)>,
    },
    /// The command was committed but the state machine rejected it (deterministically, on every
    /// server); nothing changed.
    #[error("command rejected: {0}")]
    Apply(String),
    /// A disk, redb or snapshot-file failure (fatal for this server); names the file.
    #[error("raft storage: {0}")]
    Storage(String),
    /// A wait ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node was shut down.
    #[error("raft is shut down")]
    Shutdown,
    /// Invalid configuration.
    #[error("raft config: {0}")]
    Config(String),
    /// A membership change failed.
    #[error("membership change: {0}")]
    Membership(String),
    /// A malformed Raft RPC was received.
    #[error("raft rpc: {0}")]
    Rpc(String),
    /// Raft stopped on an unrecoverable error.
    #[error("raft failed: {0}")]
    Fatal(String),
}
