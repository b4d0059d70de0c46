//! The `drover.Node` service: what a client agent says to the servers.
//!
//! ```text
//!  client agent                                   server (implements NodeHandler)
//!  ── Register{Node} (status initializing) ─────▶ upsert node, start its heartbeat timer
//!  ◀─ NodeUpdateResponse{HeartbeatTTL, ...} ────
//!  ── UpdateStatus{NodeID, "ready"} every ~TTL ─▶ reset the timer (a Raft write only when the
//!                                                  status changes); missed TTL+grace → down
//!  ── GetClientAllocs{NodeID, MinQueryIndex} ───▶ blocks until the node's allocations change
//!  ◀─ {Allocs: alloc ID → AllocModifyIndex, Index}   (or MaxQueryTime passes)
//!  ── GetAllocs{AllocIDs: the changed ones} ────▶
//!  ◀─ {Allocs: [Allocation], Index}
//!  ── UpdateAlloc{NodeID, Allocs: client fields} ▶ one Raft entry per batch; failed allocs get
//!  ◀─ {Index}                                      an alloc-failure evaluation
//! ```
//!
//! # Vocabulary
//! - **HeartbeatTTL**: how long the server waits (plus its grace) for the next `UpdateStatus`,
//!   in nanoseconds. It grows with the number of nodes so the leader sees at most ~50
//!   heartbeats a second, and is jittered by the server.
//! - **AllocModifyIndex**: bumped only by server-side changes a client acts on (placement,
//!   desired status); a client's own status reports do not move it, so comparing it with what a
//!   client already has says exactly which allocations to pull.
//! - **Index** of a blocking answer: pass it back as the next `MinQueryIndex`. An answer whose
//!   index is not above the `MinQueryIndex` sent is a timeout; nothing changed.
//!
//! # Guarantees
//! Every method is idempotent: registering twice, repeating a heartbeat, or resending the
//! latest status of an allocation leaves the same state, so a client retries any
//! [`RpcError::Unavailable`] blindly.
//!
//! # Limits
//! No authentication yet (Nomad checks the node's `SecretID` on every call). Allocations removed
//! by garbage collection are noticed with the next change, not immediately.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use drover_types::time::Nanos;
use drover_types::{Allocation, Node};
use serde::{Deserialize, Serialize};
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::error::RpcError;
use crate::service::{BoxFuture, RpcClient, RpcService, serve_routes};

/// The longest a blocking query waits, and what `MaxQueryTime = 0` means.
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Deadline of the non-blocking calls.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `Register`: a client's node, sent at start and whenever its fingerprint changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RegisterRequest {
    /// The node (its `Status` is normally `initializing`).
    pub node: Node,
}

/// `UpdateStatus`: the heartbeat (`ready`), or a status change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateStatusRequest {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `initializing`, `ready`, `down` or `disconnected`.
    pub status: String,
}

/// What `Register` and `UpdateStatus` return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeUpdateResponse {
    /// Heartbeat again within this many nanoseconds (0 when the node was marked down).
    #[serde(rename = "HeartbeatTTL")]
    pub heartbeat_ttl: Nanos,
    /// Evaluations the change created.
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Vec<String>,
    /// Raft index of those evaluations (0 if none).
    pub eval_create_index: u64,
    /// The node's modify index after the call.
    pub node_modify_index: u64,
    /// Where the leader's RPC listens.
    #[serde(rename = "LeaderRPCAddr")]
    pub leader_rpc_addr: String,
    /// State index of the answer.
    pub index: u64,
}

impl NodeUpdateResponse {
    /// [`NodeUpdateResponse::heartbeat_ttl`] as a duration.
    pub fn ttl(&self) -> Duration {
        Duration::from_nanos(self.heartbeat_ttl.max(0) as u64)
    }
}

/// `GetClientAllocs`: a blocking query for the allocations of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GetClientAllocsRequest {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Answer once the node's allocations changed after this index (0: answer now).
    #[serde(rename = "MinQueryIndex")]
    pub min_index: u64,
    /// Answer anyway after this many nanoseconds (0: the maximum, [`MAX_BLOCKING_WAIT`]).
    #[serde(rename = "MaxQueryTime")]
    pub max_wait: Nanos,
}

/// What `GetClientAllocs` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GetClientAllocsResponse {
    /// Every allocation on the node: ID → `AllocModifyIndex`.
    pub allocs: BTreeMap<String, u64>,
    /// Pass back as the next `MinQueryIndex`.
    pub index: u64,
}

/// `GetAllocs`: allocations by ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GetAllocsRequest {
    /// Allocation IDs.
    #[serde(rename = "AllocIDs")]
    pub alloc_ids: Vec<String>,
}

/// What `GetAllocs` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GetAllocsResponse {
    /// The allocations that exist (missing IDs are left out), with their jobs.
    pub allocs: Vec<Allocation>,
    /// State index of the answer.
    pub index: u64,
}

/// `UpdateAlloc`: a batch of client-side allocation changes of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateAllocRequest {
    /// The reporting node (every allocation must be on it).
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Allocations carrying `ID` and the client-owned fields only (see [`client_update`]).
    pub allocs: Vec<Allocation>,
}

/// What `UpdateAlloc` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateAllocResponse {
    /// Raft index of the write.
    pub index: u64,
}

/// The part of an allocation a client owns and reports: ID, NodeID, ClientStatus,
/// ClientDescription, TaskStates, DeploymentStatus, NetworkStatus. Everything else is the
/// server's and is not sent back.
pub fn client_update(a: &Allocation) -> Allocation {
    Allocation {
        id: a.id.clone(),
        node_id: a.node_id.clone(),
        client_status: a.client_status.clone(),
        client_description: a.client_description.clone(),
        task_states: a.task_states.clone(),
        deployment_status: a.deployment_status.clone(),
        network_status: a.network_status.clone(),
        ..Default::default()
    }
}

/// What a server does with each `drover.Node` call. Implemented by `drover_server::Server`
/// (`crates/drover-server/src/rpc_impl.rs`), so this crate does not depend on the server.
pub trait NodeHandler: Send + Sync + 'static {
    /// `Register`.
    fn register(&self, req: RegisterRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>>;
    /// `UpdateStatus` (the heartbeat).
    fn update_status(&self, req: UpdateStatusRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>>;
    /// `GetClientAllocs`, a blocking query.
    fn get_client_allocs(
        &self,
        req: GetClientAllocsRequest,
    ) -> BoxFuture<'_, Result<GetClientAllocsResponse, RpcError>>;
    /// `GetAllocs`.
    fn get_allocs(&self, req: GetAllocsRequest) -> BoxFuture<'_, Result<GetAllocsResponse, RpcError>>;
    /// `UpdateAlloc`.
    fn update_alloc(&self, req: UpdateAllocRequest) -> BoxFuture<'_, Result<UpdateAllocResponse, RpcError>>;
}

/// The gRPC name of the node service.
#[derive(Debug, Clone, Copy)]
pub struct NodeService;

impl NamedService for NodeService {
    const NAME: &'static str = "drover.Node";
}

/// Method paths of [`NodeService`].
pub mod path {
    /// `Register`.
    pub const REGISTER: &str = "/drover.Node/Register";
    /// `UpdateStatus`.
    pub const UPDATE_STATUS: &str = "/drover.Node/UpdateStatus";
    /// `GetClientAllocs`.
    pub const GET_CLIENT_ALLOCS: &str = "/drover.Node/GetClientAllocs";
    /// `GetAllocs`.
    pub const GET_ALLOCS: &str = "/drover.Node/GetAllocs";
    /// `UpdateAlloc`.
    pub const UPDATE_ALLOC: &str = "/drover.Node/UpdateAlloc";
}

/// The `drover.Node` service answering with `handler`.
pub fn node_service(handler: Arc<dyn NodeHandler>) -> RpcService<NodeService> {
    let h1 = handler.clone();
    let h2 = handler.clone();
    let h3 = handler.clone();
    let h4 = handler.clone();
    let h5 = handler;
    RpcService::<NodeService>::new()
        .unary("Register", move |req: RegisterRequest| {
            let h = h1.clone();
            async move { h.register(req).await }
        })
        .unary("UpdateStatus", move |req: UpdateStatusRequest| {
            let h = h2.clone();
            async move { h.update_status(req).await }
        })
        .unary("GetClientAllocs", move |req: GetClientAllocsRequest| {
            let h = h3.clone();
            async move { h.get_client_allocs(req).await }
        })
        .unary("GetAllocs", move |req: GetAllocsRequest| {
            let h = h4.clone();
            async move { h.get_allocs(req).await }
        })
        .unary("UpdateAlloc", move |req: UpdateAllocRequest| {
            let h = h5.clone();
            async move { h.update_alloc(req).await }
        })
}

/// Serves the node service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: Arc<dyn NodeHandler>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RpcError> {
    serve_routes(listener, Routes::new(node_service(handler)), shutdown).await
}

/// A client of the node service. Cheap to clone; clones share one HTTP/2 connection, which
/// carries any number of concurrent calls.
#[derive(Clone, Debug)]
pub struct NodeClient {
    rpc: RpcClient,
}

impl NodeClient {
    /// Connects to the server at `addr` (`127.0.0.1:4647`) now.
    pub async fn connect(addr: &str) -> Result<NodeClient, RpcError> {
        Ok(NodeClient {
            rpc: RpcClient::connect(addr).await?,
        })
    }

    /// A client that connects on first use and reconnects after failures.
    pub fn connect_lazy(addr: &str) -> Result<NodeClient, RpcError> {
        Ok(NodeClient {
            rpc: RpcClient::connect_lazy(addr)?,
        })
    }

    /// Registers (or re-registers) `node`.
    pub async fn register(&self, node: Node) -> Result<NodeUpdateResponse, RpcError> {
        self.rpc
            .unary(path::REGISTER, RegisterRequest { node }, CALL_TIMEOUT)
            .await
    }

    /// Heartbeats (`status` = `ready`) or changes the node's status.
    pub async fn update_status(&self, node_id: &str, status: &str) -> Result<NodeUpdateResponse, RpcError> {
        let req = UpdateStatusRequest {
            node_id: node_id.to_string(),
            status: status.to_string(),
        };
        self.rpc.unary(path::UPDATE_STATUS, req, CALL_TIMEOUT).await
    }

    /// Waits until the node's allocations changed after `min_index` or `max_wait` passed
    /// (capped at [`MAX_BLOCKING_WAIT`]).
    pub async fn get_client_allocs(
        &self,
        node_id: &str,
        min_index: u64,
        max_wait: Duration,
    ) -> Result<GetClientAllocsResponse, RpcError> {
        let max_wait = max_wait.min(MAX_BLOCKING_WAIT);
        let req = GetClientAllocsRequest {
            node_id: node_id.to_string(),
            min_index,
            max_wait: max_wait.as_nanos() as Nanos,
        };
        // The server answers at max_wait; leave room for a slow answer.
        let timeout = max_wait + max_wait / 16 + Duration::from_secs(10);
        self.rpc.unary(path::GET_CLIENT_ALLOCS, req, timeout).await
    }

    /// Fetches allocations by ID (missing ones are left out of the answer).
    pub async fn get_allocs(&self, alloc_ids: Vec<String>) -> Result<GetAllocsResponse, RpcError> {
        self.rpc
            .unary(path::GET_ALLOCS, GetAllocsRequest { alloc_ids }, CALL_TIMEOUT)
            .await
    }

    /// Reports client-side changes of allocations on `node_id` (strip them with
    /// [`client_update`]).
    pub async fn update_alloc(
        &self,
        node_id: &str,
        allocs: Vec<Allocation>,
    ) -> Result<UpdateAllocResponse, RpcError> {
        let req = UpdateAllocRequest {
            node_id: node_id.to_string(),
            allocs,
        };
        self.rpc.unary(path::UPDATE_ALLOC, req, CALL_TIMEOUT).await
    }

    /// The underlying connection, for calling other services over it.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }
}
