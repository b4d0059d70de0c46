//! [`RaftNode`]: one server's Raft, as the rest of Drover uses it.
//!
//! ```text
//!  open(config) ─▶ <data_dir>/raft/raft.db (LogStore) ─┐
//!                  <data_dir>/raft/snapshots/ (FSM) ───┼─▶ openraft::Raft ─▶ initialize (fresh,
//!                  transport (NetworkFactory) ─────────┘                      bootstrap) / elect
//!  write(cmd) ─▶ client_write ─▶ append+fsync ─▶ commit ─▶ FSM apply ─▶ ApplyOutcome | Apply err
//!  metrics watch ─▶ leadership watch (true once the leader applied an entry of its own term)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_state::{ApplyOutcome, Command, StateStore};
use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError as OrRaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log_store::{LogStats, LogStore};
use crate::network::{self, NetworkFactory, NoTransport, RaftTransport, RpcKind};
use crate::state_machine::StateMachine;
use crate::types::{FsmResponse, LogCommand, Raft, TypeConfig};
use crate::{RaftConfig, RaftError, RaftStats};

type Metrics = RaftMetrics<u64, BasicNode>;

/// How long [`RaftNode::snapshot_now`] waits for the snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

pub(crate) struct NodeInner {
    id: u64,
    raft: Raft,
    store: Arc<StateStore>,
    log: LogStore,
    stats: Arc<LogStats>,
    metrics_rx: watch::Receiver<Metrics>,
    applied_rx: watch::Receiver<u64>,
    leadership_rx: watch::Receiver<bool>,
    data_dir: PathBuf,
    shut_down: AtomicBool,
    watcher: JoinHandle<()>,
    // Last: removed after everything else is dropped.
    _temp: Option<TempDir>,
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// One server's Raft: log, state machine, snapshots and elections. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .field("data_dir", &self.inner.data_dir)
            .field("leader", &self.leader())
            .finish_non_exhaustive()
    }
}

/// Whether `m` shows this node leading, with an entry of its own term applied (so every entry
/// committed by earlier leaders is applied too: a barrier before leader duties start).
fn leads(m: &Metrics, id: u64) -> bool {
    m.state == ServerState::Leader
        && m.current_leader == Some(id)
        && m.last_applied.is_some_and(|l| l.leader_id.term == m.current_term)
}

fn leader_of(m: &Metrics) -> Option<(u64, String)> {
    let id = m.current_leader?;
    let addr = m
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.addr.clone())
        .unwrap_or_default();
    Some((id, addr))
}

fn fatal(e: Fatal<u64>) -> RaftError {
    match e {
        Fatal::Stopped => RaftError::Shutdown,
        Fatal::StorageError(e) => RaftError::Storage(e.to_string()),
        other => RaftError::Fatal(other.to_string()),
    }
}

fn write_err(e: OrRaftError<u64, ClientWriteError<u64, BasicNode>>) -> RaftError {
    match e {
        OrRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => RaftError::NotLeader {
            leader: f
                .leader_id
                .map(|id| (id, f.leader_node.map(|n| n.addr).unwrap_or_default())),
        },
        OrRaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            RaftError::Membership(e.to_string())
        }
        OrRaftError::Fatal(f) => fatal(f),
    }
}

impl RaftNode {
    /// Opens (or creates) the log in `<data_dir>/raft/`, restores the latest snapshot into a new
    /// state store and lets openraft re-apply the committed entries after it. A fresh node with
    /// `bootstrap` set initializes itself as the only voter and becomes leader; a re-opened one
    /// elects itself again. Single-server: no transport.
    pub async fn open(config: RaftConfig) -> Result<RaftNode, RaftError> {
        Self::open_with_transport(config, Arc::new(NoTransport)).await
    }

    /// [`RaftNode::open`] with a transport to reach other servers.
    pub async fn open_with_transport(
        config: RaftConfig,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<RaftNode, RaftError> {
        if config.snapshot_threshold == 0 {
            return Err(RaftError::Config("snapshot_threshold must be at least 1".into()));
        }
        let (temp, data_dir) = match &config.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("drover-dev-")
                    .tempdir()
                    .map_err(|e| RaftError::Storage(format!("creating a temporary data dir: {e}")))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let raft_dir = data_dir.join("raft");
        tokio::fs::create_dir_all(&raft_dir)
            .await
            .map_err(|e| RaftError::Storage(format!("{}: {e}", raft_dir.display())))?;

        let log = LogStore::open(&raft_dir).await?;
        let purged = log.last_purged_index().await?;
        let (sm, store) = StateMachine::open(raft_dir.join("snapshots"), purged).await?;
        let applied_rx = sm.applied();
        let stats = log.stats();

        let raft_config = openraft::Config {
            cluster_name: "drover".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            install_snapshot_timeout: 2_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold),
            max_in_snapshot_log_to_keep: config.logs_to_keep,
            replication_lag_threshold: config.snapshot_threshold.saturating_add(config.logs_to_keep),
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftError::Config(e.to_string()))?;

        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory { transport },
            log.clone(),
            sm,
        )
        .await
        .map_err(fatal)?;

        if config.bootstrap && !raft.is_initialized().await.map_err(fatal)? {
            let mut members = BTreeMap::new();
            members.insert(config.node_id, BasicNode::new(config.addr.clone()));
            match raft.initialize(members).await {
                Ok(()) => {}
                // Raced with a log that appeared meanwhile (another server added us): fine.
                Err(OrRaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(RaftError::Fatal(format!("initializing the cluster: {e}"))),
            }
        }

        let metrics_rx = raft.metrics();
        let (leadership_tx, leadership_rx) = watch::channel(false);
        let mut m = metrics_rx.clone();
        let id = config.node_id;
        let watcher = tokio::spawn(async move {
            loop {
                let lead = leads(&m.borrow_and_update(), id);
                leadership_tx.send_if_modified(|v| std::mem::replace(v, lead) != lead);
                if m.changed().await.is_err() {
                    leadership_tx.send_replace(false);
                    return;
                }
            }
        });

        tracing::info!(node_id = id, data_dir = %data_dir.display(), "raft opened");
        Ok(RaftNode {
            inner: Arc::new(NodeInner {
                id,
                raft,
                store,
                log,
                stats,
                metrics_rx,
                applied_rx,
                leadership_rx,
                data_dir,
                shut_down: AtomicBool::new(false),
                watcher,
                _temp: temp,
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.id
    }

    /// The replicated state this node's FSM writes.
    pub fn store(&self) -> Arc<StateStore> {
        self.inner.store.clone()
    }

    /// Replicates, commits and applies one command; returns the FSM's outcome (its `index` is
    /// the entry's Raft index). Returns only after the entry is on disk (fsynced) on a quorum.
    ///
    /// Errors: [`RaftError::NotLeader`] (retry on the leader), [`RaftError::Apply`] (committed,
    /// rejected by the FSM, nothing changed), [`RaftError::Shutdown`] / `Fatal`. As in any Raft,
    /// a `NotLeader` after leadership was lost mid-write does not prove the entry was dropped: a
    /// new leader may still commit it.
    ///
    /// Cost: one fsync per write on the leader (openraft 0.9 appends client writes one by one).
    pub async fn write(&self, cmd: Command) -> Result<ApplyOutcome, RaftError> {
        let resp = self
            .inner
            .raft
            .client_write(LogCommand(cmd))
            .await
            .map_err(write_err)?;
        match resp.data {
            FsmResponse::Applied(outcome) => Ok(outcome),
            FsmResponse::Rejected(msg) => Err(RaftError::Apply(msg)),
            FsmResponse::Empty => Err(RaftError::Fatal(format!(
                "no outcome for the command at index {}",
                resp.log_id.index
            ))),
        }
    }

    /// The last applied Raft index; changes after every applied entry.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.inner.applied_rx.clone()
    }

    /// The current leader (node id, advertised address); `None` while electing.
    pub fn leader(&self) -> Option<(u64, String)> {
        leader_of(&self.inner.metrics_rx.borrow())
    }

    /// Whether this node is the leader and has applied everything committed before its term.
    pub fn is_leader(&self) -> bool {
        *self.inner.leadership_rx.borrow()
    }

    /// `true` while this node is leader (see [`RaftNode::is_leader`]); changes with leadership.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.inner.leadership_rx.clone()
    }

    /// Waits until a leader is known (and, if it is this node, until it [leads](Self::is_leader)).
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), RaftError> {
        let mut m = self.inner.metrics_rx.clone();
        let id = self.inner.id;
        let wait = async {
            loop {
                {
                    let cur = m.borrow_and_update();
                    match cur.current_leader {
                        Some(l) if l != id => return Ok(()),
                        Some(_) if leads(&cur, id) => return Ok(()),
                        _ => {}
                    }
                }
                if m.changed().await.is_err() {
                    return Err(RaftError::Shutdown);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RaftError::Timeout(format!("no leader elected within {timeout:?}")))?
    }

    /// Takes a snapshot of everything applied so far and waits until it is written (the log is
    /// then purged up to it, keeping `logs_to_keep` entries).
    pub async fn snapshot_now(&self) -> Result<(), RaftError> {
        let target = *self.inner.applied_rx.borrow();
        self.inner.raft.trigger().snapshot().await.map_err(fatal)?;
        let mut m = self.inner.metrics_rx.clone();
        let wait = async {
            loop {
                if m.borrow_and_update().snapshot.is_some_and(|s| s.index >= target) {
                    return Ok(());
                }
                if m.changed().await.is_err() {
                    return Err(RaftError::Shutdown);
                }
            }
        };
        tokio::time::timeout(SNAPSHOT_WAIT, wait).await.map_err(|_| {
            RaftError::Timeout(format!(
                "snapshot at index {target} not written within {SNAPSHOT_WAIT:?}"
            ))
        })?
    }

    /// The data directory (`<data_dir>/raft/` holds the log and snapshots).
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Stops Raft and closes the log. Later calls return [`RaftError::Shutdown`]. Idempotent.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let res = self.inner.raft.shutdown().await;
        self.inner.log.close();
        res.map_err(|e| RaftError::Fatal(format!("raft task ended abnormally: {e}")))?;
        tracing::info!(node_id = self.inner.id, "raft shut down");
        Ok(())
    }

    /// Numbers for `/v1/agent/self` and `/v1/metrics`.
    pub fn metrics(&self) -> RaftStats {
        let m = self.inner.metrics_rx.borrow();
        let state = match m.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Learner",
            ServerState::Shutdown => "Shutdown",
        };
        RaftStats {
            node_id: self.inner.id,
            state: state.to_string(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            commit_index: self.inner.stats.committed_index.load(Ordering::Relaxed),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            leader: leader_of(&m),
            voters: m.membership_config.voter_ids().collect(),
            log_commits: self.inner.stats.append_commits.load(Ordering::Relaxed),
            log_entries_written: self.inner.stats.appended_entries.load(Ordering::Relaxed),
        }
    }

    // ---- cluster membership (multi-server) ----

    /// Forms a new cluster with these voters `(id, addr)`. Call it on one server only, once
    /// every voter is known (Nomad's `bootstrap_expect`). Nodes that are already part of a
    /// cluster return an error.
    pub async fn initialize(&self, members: Vec<(u64, String)>) -> Result<(), RaftError> {
        let members: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        self.inner.raft.initialize(members).await.map_err(|e| match e {
            OrRaftError::Fatal(f) => fatal(f),
            OrRaftError::APIError(e) => RaftError::Membership(e.to_string()),
        })
    }

    /// Adds a server as a voter (first as a learner that catches up, then promoted). Leader only.
    pub async fn add_voter(&self, id: u64, addr: String) -> Result<(), RaftError> {
        self.inner
            .raft
            .add_learner(id, BasicNode::new(addr), true)
            .await
            .map_err(write_err)?;
        let ids: BTreeSet<u64> = [id].into_iter().collect();
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds(ids), false)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// Removes a server from the voters and the cluster. Leader only.
    pub async fn remove_server(&self, id: u64) -> Result<(), RaftError> {
        let ids: BTreeSet<u64> = [id].into_iter().collect();
        self.inner
            .raft
            .change_membership(ChangeMembers::RemoveVoters(ids), false)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// Serves one Raft RPC received by a transport: `body` is what the sender's
    /// [`RaftTransport::call`] was given; the reply goes back as its result.
    pub async fn handle_rpc(&self, kind: RpcKind, body: &[u8]) -> Result<Vec<u8>, RaftError> {
        let bad = |e: String| RaftError::Rpc(format!("{kind:?}: {e}"));
        let raft = &self.inner.raft;
        match kind {
            RpcKind::AppendEntries => {
                let req: AppendEntriesRequest<TypeConfig> = network::decode(body).map_err(bad)?;
                network::encode(&raft.append_entries(req).await).map_err(bad)
            }
            RpcKind::Vote => {
                let req: VoteRequest<u64> = network::decode(body).map_err(bad)?;
                network::encode(&raft.vote(req).await).map_err(bad)
            }
            RpcKind::InstallSnapshot => {
                let req: InstallSnapshotRequest<TypeConfig> = network::decode(body).map_err(bad)?;
                network::encode(&raft.install_snapshot(req).await).map_err(bad)
            }
        }
    }
}
