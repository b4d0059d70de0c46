//! Allocations: `GET /v1/allocations`, `GET /v1/allocation/<id>` (the full allocation with its
//! `Job`, which `nomad alloc logs/status` read), `PUT|POST /v1/allocation/<id>/stop`.

use axum::extract::State;
use axum::response::Response;
use drover_state::Table;
use serde::Serialize;

use super::{not_supported, only_get, only_write};
use crate::blocking;
use crate::error::ApiError;
use crate::paginate::{self, Order};
use crate::request::Req;
use crate::{AppState, respond};

/// `GET /v1/allocations`: `prefix`, `namespace` (`*`), `filter`, pagination, `resources`,
/// `task_states` (default true). Ordered by create index; by ID when a prefix is given.
pub(crate) async fn list(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let q = req.query_options()?;
    let with_resources = req.flag("resources", false)?;
    let with_states = req.flag("task_states", true)?;
    let order = if q.prefix.is_empty() {
        Order::CreateIndex
    } else {
        Order::Id
    };
    let ((items, next), index) = blocking::run(&st, &req, &q, &[Table::Allocs], |s| {
        let page = paginate::page(
            &q,
            order,
            s.allocs(),
            |a| order.key(a.create_index, &a.namespace, &a.id),
            |a| q.namespace_matches(&a.namespace) && a.id.starts_with(&q.prefix),
            |a| a.stub(with_resources, with_states),
        )?;
        Ok((page, s.table_index(Table::Allocs)))
    })
    .await?;
    respond::query(&st, &req, &items, index, next.as_deref())
}

/// `/v1/allocation/<id>[/stop]`.
pub(crate) async fn alloc(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    let rest = req
        .path
        .strip_prefix("/v1/allocation/")
        .unwrap_or_default()
        .to_string();
    if let Some(id) = rest.strip_suffix("/stop") {
        return stop(&st, &req, id).await;
    }
    for (s, what) in [
        ("/services", "service registrations"),
        ("/checks", "allocation checks"),
    ] {
        if rest.ends_with(s) {
            return Err(not_supported(what));
        }
    }
    only_get(&req)?;
    let q = req.query_options()?;
    let (alloc, index) = blocking::run(&st, &req, &q, &[Table::Allocs], |s| {
        Ok(match s.alloc(&rest) {
            Some(a) => {
                let i = a.modify_index;
                (Some(a), i)
            }
            None => (None, s.table_index(Table::Allocs)),
        })
    })
    .await?;
    let alloc = alloc.ok_or_else(|| ApiError::not_found("alloc"))?;
    respond::query(&st, &req, alloc.as_ref(), index, None)
}

/// `AllocStopResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StopResponse {
    #[serde(rename = "EvalID")]
    eval_id: String,
    index: u64,
}

async fn stop(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    // Accepted: the server stops by migrating; it has no per-request override of these yet.
    let _ = req.flag("no_shutdown_delay", false)?;
    let _ = req.flag("reschedule", false)?;
    if st.server.snapshot().alloc(id).is_none() {
        return Err(ApiError::not_found("allocation"));
    }
    let (eval_id, index) = st.server.stop_alloc(id).await?;
    respond::write(req, &StopResponse { eval_id, index }, index)
}
