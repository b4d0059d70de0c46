//! The `drover.Node` RPC service answered by a [`Server`]: `impl drover_rpc::NodeHandler`.
//!
//! ```text
//!  drover_rpc::serve(listener, Arc<Server>) ─▶ NodeHandler for Server
//!    Register        ─▶ Server::register_node
//!    UpdateStatus    ─▶ Server::update_node_status          (resets the heartbeat timer)
//!    GetClientAllocs ─▶ Server::wait_for_index(allocs) + snapshot.allocs_by_node, looped until
//!                       the node's own allocations changed or MaxQueryTime (≤ 5 min) passed
//!    GetAllocs       ─▶ snapshot.alloc(id) for each ID
//!    UpdateAlloc     ─▶ Server::update_allocs_from_client  (client-owned fields only)
//!  ServerError ─▶ RpcError: NotFound → NotFound; BadRequest/Validation/Conflict →
//!  InvalidArgument; NoLeader/Unavailable/Raft → Unavailable (retry); Internal → Internal.
//! ```
//!
//! # The blocking query
//! `wait_for_index` wakes on any change of the allocations table. Most of those are about other
//! nodes, so the handler only answers when an allocation *of this node* has an
//! `AllocModifyIndex` above the client's `MinQueryIndex` (or the wait ran out), and otherwise
//! waits again from the table's current index. The answer's `Index` is the allocations table
//! index (at least 1, as in every blocking query: 0 means "answer now"), so the client's next
//! `MinQueryIndex` is past everything it has seen.
//!
//! # Limits
//! Every waiting query is woken (and re-checks its node) on every write that touches the
//! allocations table — cheap per wake-up, but proportional to nodes × writes. Allocations
//! removed by garbage collection are reported with the node's next change.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_rpc::node::MAX_BLOCKING_WAIT;
use drover_rpc::{
    BoxFuture, GetAllocsRequest, GetAllocsResponse, GetClientAllocsRequest, GetClientAllocsResponse,
    NodeHandler, NodeUpdateResponse, RegisterRequest, RpcError, UpdateAllocRequest, UpdateAllocResponse,
    UpdateStatusRequest,
};
use drover_state::Table;
use tokio::time::Instant;

use crate::{Server, ServerError};

/// How a [`ServerError`] travels over RPC.
pub fn rpc_error(e: ServerError) -> RpcError {
    let message = e.to_string();
    match e {
        ServerError::NotFound(_) => RpcError::NotFound(message),
        ServerError::BadRequest(_) | ServerError::Validation(_) | ServerError::Conflict(_) => {
            RpcError::InvalidArgument(message)
        }
        ServerError::NoLeader { leader } => RpcError::Unavailable { message, leader },
        // A Raft failure may or may not have committed; every node call is idempotent, so the
        // client retries.
        ServerError::Unavailable(_) | ServerError::Raft(_) => RpcError::unavailable(message),
        ServerError::Internal(_) => RpcError::Internal(message),
    }
}

fn node_response(r: crate::api::NodeUpdateResponse) -> NodeUpdateResponse {
    NodeUpdateResponse {
        heartbeat_ttl: r.heartbeat_ttl,
        eval_ids: r.eval_ids,
        eval_create_index: r.eval_create_index,
        node_modify_index: r.node_modify_index,
        leader_rpc_addr: r.leader_rpc_addr,
        index: r.index,
    }
}

impl Server {
    async fn rpc_get_client_allocs(
        &self,
        req: GetClientAllocsRequest,
    ) -> Result<GetClientAllocsResponse, RpcError> {
        if self.snapshot().node(&req.node_id).is_none() {
            return Err(RpcError::NotFound("node not found".into()));
        }
        let wait = if req.max_wait <= 0 {
            MAX_BLOCKING_WAIT
        } else {
            Duration::from_nanos(req.max_wait as u64).min(MAX_BLOCKING_WAIT)
        };
        let deadline = Instant::now() + wait;
        let mut wait_from = req.min_index;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let snap = self.wait_for_index(&[Table::Allocs], wait_from, remaining).await;
            let table_index = snap.table_index(Table::Allocs);
            let allocs = snap.allocs_by_node(&req.node_id);
            let changed = allocs.iter().map(|a| a.alloc_modify_index).max().unwrap_or(0);
            // A client ahead of this server's state (the cluster was rebuilt from an empty data
            // dir) would otherwise wait for an index that may never come: answer now, so it
            // resynchronises from what this server has.
            let ahead = req.min_index > snap.latest_index();
            if req.min_index == 0 || ahead || changed > req.min_index || Instant::now() >= deadline {
                let allocs: BTreeMap<String, u64> = allocs
                    .iter()
                    .map(|a| (a.id.clone(), a.alloc_modify_index))
                    .collect();
                // Never 0: a client passing 0 back would get an immediate answer, forever.
                return Ok(GetClientAllocsResponse {
                    allocs,
                    index: table_index.max(changed).max(1),
                });
            }
            // Another node's allocations moved: wait for the next change. (`wait_from` > 0 here
            // because `min_index` > 0, so this never spins.)
            wait_from = table_index.max(req.min_index);
        }
    }
}

impl NodeHandler for Server {
    fn register(&self, req: RegisterRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>> {
        Box::pin(async move {
            self.register_node(req.node)
                .await
                .map(node_response)
                .map_err(rpc_error)
        })
    }

    fn update_status(&self, req: UpdateStatusRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>> {
        Box::pin(async move {
            self.update_node_status(&req.node_id, &req.status)
                .await
                .map(node_response)
                .map_err(rpc_error)
        })
    }

    fn get_client_allocs(
        &self,
        req: GetClientAllocsRequest,
    ) -> BoxFuture<'_, Result<GetClientAllocsResponse, RpcError>> {
        Box::pin(self.rpc_get_client_allocs(req))
    }

    fn get_allocs(&self, req: GetAllocsRequest) -> BoxFuture<'_, Result<GetAllocsResponse, RpcError>> {
        Box::pin(async move {
            let snap = self.snapshot();
            let allocs = req
                .alloc_ids
                .iter()
                .filter_map(|id| snap.alloc(id))
                .map(|a| (*a).clone())
                .collect();
            Ok(GetAllocsResponse {
                allocs,
                index: snap.table_index(Table::Allocs),
            })
        })
    }

    fn update_alloc(&self, req: UpdateAllocRequest) -> BoxFuture<'_, Result<UpdateAllocResponse, RpcError>> {
        Box::pin(async move {
            if req.allocs.is_empty() {
                return Err(RpcError::InvalidArgument(
                    "must update at least one allocation".into(),
                ));
            }
            // Only the client-owned fields go into the Raft log, whatever the client sent.
            let allocs = req.allocs.iter().map(drover_rpc::client_update).collect();
            let index = self
                .update_allocs_from_client(&req.node_id, allocs)
                .await
                .map_err(rpc_error)?;
            Ok(UpdateAllocResponse { index })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_map_to_rpc_kinds() {
        assert_eq!(
            rpc_error(ServerError::NotFound("node")),
            RpcError::NotFound("node not found".into())
        );
        assert_eq!(
            rpc_error(ServerError::BadRequest("bad".into())),
            RpcError::InvalidArgument("bad".into())
        );
        assert_eq!(
            rpc_error(ServerError::NoLeader {
                leader: Some("10.0.0.1:4647".into())
            }),
            RpcError::Unavailable {
                message: "No cluster leader".into(),
                leader: Some("10.0.0.1:4647".into())
            }
        );
        assert!(rpc_error(ServerError::Raft("x".into())).is_retryable());
        assert!(matches!(
            rpc_error(ServerError::Internal("x".into())),
            RpcError::Internal(_)
        ));
    }
}
