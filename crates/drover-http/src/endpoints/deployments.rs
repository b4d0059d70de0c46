//! Deployments: `GET /v1/deployments`, `GET /v1/deployment/<id>` (the CLI blocks on it while
//! monitoring a rollout), `GET /v1/deployment/allocations/<id>`. Deployment routes are
//! *prefix-action* style (`/v1/deployment/fail/<id>`), unlike jobs.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use drover_state::Table;

use super::{not_supported, only_get};
use crate::blocking::{self, tables_index};
use crate::error::ApiError;
use crate::paginate::{self, Order};
use crate::request::Req;
use crate::{AppState, respond};

/// `GET /v1/deployments`: `prefix`, `namespace` (`*`), `filter`, pagination.
pub(crate) async fn list(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let q = req.query_options()?;
    let order = if q.prefix.is_empty() {
        Order::CreateIndex
    } else {
        Order::Id
    };
    let ((items, next), index) = blocking::run(&st, &req, &q, &[Table::Deployments], |s| {
        let page = paginate::page(
            &q,
            order,
            s.deployments(),
            |d| order.key(d.create_index, &d.namespace, &d.id),
            |d| q.namespace_matches(&d.namespace) && d.id.starts_with(&q.prefix),
            Arc::clone,
        )?;
        Ok((page, s.table_index(Table::Deployments)))
    })
    .await?;
    respond::query(&st, &req, &items, index, next.as_deref())
}

/// `/v1/deployment/<id>`, `/v1/deployment/allocations/<id>`, and the action routes.
pub(crate) async fn deployment(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    let rest = req
        .path
        .strip_prefix("/v1/deployment/")
        .unwrap_or_default()
        .to_string();
    for action in ["fail/", "pause/", "promote/", "allocation-health/", "unblock/"] {
        if rest.starts_with(action) {
            return Err(not_supported(&format!(
                "deployment {}",
                action.trim_end_matches('/')
            )));
        }
    }
    only_get(&req)?;
    let q = req.query_options()?;
    if let Some(id) = rest.strip_prefix("allocations/") {
        let tables = [Table::Allocs, Table::Deployments];
        let (stubs, index) = blocking::run(&st, &req, &q, &tables, |s| {
            let mut allocs = s.allocs_by_deployment(id);
            allocs.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
            let stubs: Vec<_> = allocs.iter().map(|a| a.stub(false, true)).collect();
            Ok((stubs, tables_index(s, &tables)))
        })
        .await?;
        return respond::query(&st, &req, &stubs, index, None);
    }
    let (dep, index) = blocking::run(&st, &req, &q, &[Table::Deployments], |s| {
        Ok(match s.deployment(&rest) {
            Some(d) => {
                let i = d.modify_index;
                (Some(d), i)
            }
            None => (None, s.table_index(Table::Deployments)),
        })
    })
    .await?;
    let dep = dep.ok_or_else(|| ApiError::not_found("deployment"))?;
    respond::query(&st, &req, dep.as_ref(), index, None)
}
