//! Nodes: `GET /v1/nodes`, `GET /v1/node/<id>` (with `SecretID` blanked, always),
//! `GET /v1/node/<id>/allocations` (full allocations), `PUT|POST /v1/node/<id>/drain` and
//! `/eligibility`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use drover_server::api::{NodeDrainRequest, NodeUpdateResponse};
use drover_state::Table;
use drover_types::Node;
use serde::{Deserialize, Serialize};

use super::{decode_body, not_supported, only_get, only_write};
use crate::blocking;
use crate::error::ApiError;
use crate::paginate::{self, Order};
use crate::request::Req;
use crate::{AppState, respond};

/// A node as the API shows it: the secret never leaves the server.
fn public(n: &Node) -> Node {
    let mut n = n.clone();
    n.secret_id.clear();
    n.drain = n.drain_strategy.is_some();
    n
}

/// `GET /v1/nodes`: `prefix`, `filter`, pagination, `os`, `resources`. Ordered by ID.
pub(crate) async fn list(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let q = req.query_options()?;
    let with_os = req.flag("os", false)?;
    let with_resources = req.flag("resources", false)?;
    let ((items, next), index) = blocking::run(&st, &req, &q, &[Table::Nodes], |s| {
        let mut nodes = s.nodes();
        if q.filter.is_some() {
            // The filter sees the full node, so it must not be able to probe the secret.
            nodes = nodes.iter().map(|n| Arc::new(public(n))).collect();
        }
        let page = paginate::page(
            &q,
            Order::Id,
            nodes,
            |n| Order::Id.key(0, "", &n.id),
            |n| n.id.starts_with(&q.prefix),
            |n| n.stub(with_os, with_resources),
        )?;
        Ok((page, s.table_index(Table::Nodes)))
    })
    .await?;
    respond::query(&st, &req, &items, index, next.as_deref())
}

/// `/v1/node/<id>[/suffix]`.
pub(crate) async fn node(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    let rest = req.path.strip_prefix("/v1/node/").unwrap_or_default().to_string();
    if let Some(id) = rest.strip_suffix("/allocations") {
        return allocations(&st, &req, id).await;
    }
    if let Some(id) = rest.strip_suffix("/drain") {
        return drain(&st, &req, id).await;
    }
    if let Some(id) = rest.strip_suffix("/eligibility") {
        return eligibility(&st, &req, id).await;
    }
    if let Some(id) = rest.strip_suffix("/evaluate") {
        only_write(&req)?;
        let resp = NodeWriteResponse::from(st.server.evaluate_node(id).await?);
        let index = resp.index;
        return respond::write(&req, &resp, index);
    }
    if let Some(id) = rest.strip_suffix("/purge") {
        only_write(&req)?;
        let resp = NodeWriteResponse::from(st.server.purge_node(id).await?);
        let index = resp.index;
        return respond::write(&req, &resp, index);
    }
    if rest == "pools" || rest.starts_with("pool/") {
        return Err(not_supported("node pools"));
    }
    only_get(&req)?;
    let q = req.query_options()?;
    let (node, index) = blocking::run(&st, &req, &q, &[Table::Nodes], |s| {
        Ok(match s.node(&rest) {
            Some(n) => {
                let i = n.modify_index;
                (Some(public(&n)), i)
            }
            None => (None, s.table_index(Table::Nodes)),
        })
    })
    .await?;
    let node = node.ok_or_else(|| ApiError::not_found("node"))?;
    respond::query(&st, &req, &node, index, None)
}

async fn allocations(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let (allocs, index) = blocking::run(st, req, &q, &[Table::Allocs], |s| {
        let mut allocs = s.allocs_by_node(id);
        allocs.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
        Ok((allocs, s.table_index(Table::Allocs)))
    })
    .await?;
    respond::query(st, req, &allocs, index, None)
}

/// `NodeDrainUpdateResponse` / `NodeEligibilityUpdateResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeWriteResponse {
    node_modify_index: u64,
    #[serde(rename = "EvalIDs")]
    eval_ids: Option<Vec<String>>,
    eval_create_index: u64,
    index: u64,
}

impl From<NodeUpdateResponse> for NodeWriteResponse {
    fn from(r: NodeUpdateResponse) -> Self {
        NodeWriteResponse {
            node_modify_index: r.node_modify_index,
            eval_ids: (!r.eval_ids.is_empty()).then_some(r.eval_ids),
            eval_create_index: r.eval_create_index,
            index: r.index,
        }
    }
}

async fn drain(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: NodeDrainRequest = decode_body(req)?;
    let resp = NodeWriteResponse::from(st.server.update_node_drain(id, body).await?);
    let index = resp.index;
    respond::write(req, &resp, index)
}

/// `PUT /v1/node/<id>/eligibility` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EligibilityBody {
    eligibility: String,
}

async fn eligibility(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: EligibilityBody = decode_body(req)?;
    if body.eligibility.is_empty() {
        return Err(ApiError::BadRequest("invalid scheduling eligibility \"\"".into()));
    }
    let resp = NodeWriteResponse::from(st.server.update_node_eligibility(id, &body.eligibility).await?);
    let index = resp.index;
    respond::write(req, &resp, index)
}
