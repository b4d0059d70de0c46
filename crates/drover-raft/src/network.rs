//! How Raft messages travel between servers, without openraft types in the API.
//!
//! ```text
//!  leader's openraft ──RaftNetwork──▶ Client ──encode(msgpack)──▶ dyn RaftTransport::call(
//!                                                                  target, addr, kind, bytes)
//!                                                                        │ (tonic later,
//!                                                                        │  in-process now)
//!  follower: RaftNode::handle_rpc(kind, bytes) ◀─────────────────────────┘
//!            decode ─▶ raft.append_entries / vote / install_snapshot ─▶ encode(Result) ─▶ reply
//! ```
//!
//! A transport moves opaque bytes: the request and the reply (a msgpack `Result` of openraft's
//! response or its Raft error) are encoded here, so a tonic service is a few lines of "bytes in,
//! bytes out" (see [`RaftNode::handle_rpc`]). [`InProcessNetwork`] is such a transport for tests
//! and in-process clusters; it can cut nodes off to inject partitions.
//!
//! Limitations: snapshots go through openraft 0.9's chunked `install_snapshot` path (chunks of
//! `snapshot_max_chunk_size`); no streaming transport yet.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError as OrRaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::NodeInner;
use crate::types::TypeConfig;
use crate::{RaftConfig, RaftError, RaftNode};

/// A boxed, sendable future (what a transport returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which Raft RPC a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RpcKind {
    /// Log replication and heartbeats.
    AppendEntries,
    /// Leader election.
    Vote,
    /// One chunk of a snapshot.
    InstallSnapshot,
}

/// Why a message did not reach its target (the caller retries with back-off).
#[derive(Debug, Clone, thiserror::Error)]
#[error("raft transport to node {target}: {message}")]
pub struct TransportError {
    /// The node that could not be reached.
    pub target: u64,
    /// What went wrong.
    pub message: String,
}

/// Carries encoded Raft RPCs to other servers. Implementations deliver `body` to the target's
/// [`RaftNode::handle_rpc`] and return its reply bytes.
pub trait RaftTransport: Send + Sync + fmt::Debug + 'static {
    /// Sends one request to node `target` advertised at `addr`.
    fn call<'a>(
        &'a self,
        target: u64,
        addr: &'a str,
        kind: RpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>>;
}

/// A transport that reaches nobody: enough for a single server, which never sends RPCs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl RaftTransport for NoTransport {
    fn call<'a>(
        &'a self,
        target: u64,
        _addr: &'a str,
        _kind: RpcKind,
        _body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            Err(TransportError {
                target,
                message: "no transport configured (single-server mode)".into(),
            })
        })
    }
}

#[derive(Debug, Default)]
struct Registry {
    nodes: HashMap<u64, Weak<NodeInner>>,
    isolated: HashSet<u64>,
}

/// An in-process network: a registry of nodes by id. Messages are encoded and decoded exactly as
/// over a real transport. Cheap to clone (shared registry).
#[derive(Debug, Clone, Default)]
pub struct InProcessNetwork {
    registry: Arc<Mutex<Registry>>,
}

impl InProcessNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a node attached to this network.
    pub async fn open(&self, config: RaftConfig) -> Result<RaftNode, RaftError> {
        let node = RaftNode::open_with_transport(config, Arc::new(self.clone())).await?;
        self.register(&node);
        Ok(node)
    }

    /// Makes `node` reachable by its id.
    pub fn register(&self, node: &RaftNode) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.nodes.insert(node.node_id(), Arc::downgrade(&node.inner));
    }

    /// Removes a node from the network.
    pub fn unregister(&self, id: u64) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.nodes.remove(&id);
    }

    /// Cuts node `id` off: nothing reaches it and nothing it sends arrives.
    pub fn isolate(&self, id: u64) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.isolated.insert(id);
    }

    /// Reconnects a node cut off by [`InProcessNetwork::isolate`].
    pub fn heal(&self, id: u64) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.isolated.remove(&id);
    }

    fn lookup(&self, from: Option<u64>, target: u64) -> Option<RaftNode> {
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if r.isolated.contains(&target) || from.is_some_and(|f| r.isolated.contains(&f)) {
            return None;
        }
        r.nodes.get(&target)?.upgrade().map(|inner| RaftNode { inner })
    }
}

impl RaftTransport for InProcessNetwork {
    fn call<'a>(
        &'a self,
        target: u64,
        _addr: &'a str,
        kind: RpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let unreachable = |message: &str| TransportError {
                target,
                message: message.into(),
            };
            // The sender's id is not part of the call; an isolated sender is detected by the
            // request's own vote/leader id below, which every Raft request carries.
            let from = sender_of(kind, &body);
            let node = self
                .lookup(from, target)
                .ok_or_else(|| unreachable("node not reachable"))?;
            node.handle_rpc(kind, &body)
                .await
                .map_err(|e| unreachable(&e.to_string()))
        })
    }
}

/// The id of the node that sent an encoded request (its vote's leader), if it decodes.
fn sender_of(kind: RpcKind, body: &[u8]) -> Option<u64> {
    match kind {
        RpcKind::AppendEntries => decode::<AppendEntriesRequest<TypeConfig>>(body)
            .ok()
            .map(|r| r.vote.leader_id.node_id),
        RpcKind::Vote => decode::<VoteRequest<u64>>(body)
            .ok()
            .map(|r| r.vote.leader_id.node_id),
        RpcKind::InstallSnapshot => decode::<InstallSnapshotRequest<TypeConfig>>(body)
            .ok()
            .map(|r| r.vote.leader_id.node_id),
    }
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(v).map_err(|e| format!("encode: {e}"))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("decode: {e}"))
}

/// openraft's network factory over a [`RaftTransport`].
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub transport: Arc<dyn RaftTransport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Client;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Client {
        Client {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// One peer, as openraft sees it.
#[derive(Debug)]
pub(crate) struct Client {
    target: u64,
    addr: String,
    transport: Arc<dyn RaftTransport>,
}

impl Client {
    async fn send<Req, Resp, E>(
        &self,
        kind: RpcKind,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, OrRaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req).map_err(|e| {
            RPCError::Network(NetworkError::new(&TransportError {
                target: self.target,
                message: e,
            }))
        })?;
        let call = self.transport.call(self.target, &self.addr, kind, body);
        let reply = match tokio::time::timeout(ttl, call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError {
                    target: self.target,
                    message: format!("{kind:?} timed out after {ttl:?}"),
                })));
            }
        };
        let res: Result<Resp, OrRaftError<u64, E>> = decode(&reply).map_err(|e| {
            RPCError::Network(NetworkError::new(&TransportError {
                target: self.target,
                message: e,
            }))
        })?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, OrRaftError<u64>>> {
        self.send(RpcKind::AppendEntries, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, OrRaftError<u64, InstallSnapshotError>>>
    {
        self.send(RpcKind::InstallSnapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, OrRaftError<u64>>> {
        self.send(RpcKind::Vote, &rpc, option.hard_ttl()).await
    }
}
