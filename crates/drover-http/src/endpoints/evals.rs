//! Evaluations: `GET /v1/evaluations`, `GET /v1/evaluation/<id>` (`?related=true` fills
//! `RelatedEvals`, which `nomad job run` follows), `GET /v1/evaluation/<id>/allocations`.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use drover_state::{StateSnapshot, Table};
use drover_types::Evaluation;

use super::only_get;
use crate::blocking;
use crate::error::ApiError;
use crate::paginate::{self, Order};
use crate::request::Req;
use crate::{AppState, respond};

/// `GET /v1/evaluations`: `prefix`, `namespace` (`*`), `job`, `status`, `filter`, pagination.
pub(crate) async fn list(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let q = req.query_options()?;
    let job = req.get("job").unwrap_or_default().to_string();
    let status = req.get("status").unwrap_or_default().to_string();
    if q.filter.is_some() && (!job.is_empty() || !status.is_empty()) {
        return Err(ApiError::BadRequest(
            "Filter expression cannot be used with other filter parameters".into(),
        ));
    }
    let order = if q.prefix.is_empty() {
        Order::CreateIndex
    } else {
        Order::Id
    };
    let ((items, next), index) = blocking::run(&st, &req, &q, &[Table::Evals], |s| {
        let page = paginate::page(
            &q,
            order,
            s.evals(),
            |e| order.key(e.create_index, &e.namespace, &e.id),
            |e| {
                q.namespace_matches(&e.namespace)
                    && e.id.starts_with(&q.prefix)
                    && (job.is_empty() || e.job_id == job)
                    && (status.is_empty() || e.status == status)
            },
            Arc::clone,
        )?;
        Ok((page, s.table_index(Table::Evals)))
    })
    .await?;
    respond::query(&st, &req, &items, index, next.as_deref())
}

/// `/v1/evaluation/<id>[/allocations]`.
pub(crate) async fn eval(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let rest = req
        .path
        .strip_prefix("/v1/evaluation/")
        .unwrap_or_default()
        .to_string();
    let q = req.query_options()?;
    if let Some(id) = rest.strip_suffix("/allocations") {
        let (stubs, index) = blocking::run(&st, &req, &q, &[Table::Allocs], |s| {
            let mut allocs = s.allocs_by_eval(id);
            allocs.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
            let stubs: Vec<_> = allocs.iter().map(|a| a.stub(false, true)).collect();
            Ok((stubs, s.table_index(Table::Allocs)))
        })
        .await?;
        return respond::query(&st, &req, &stubs, index, None);
    }
    let related = req.flag("related", false)?;
    let (eval, index) = blocking::run(&st, &req, &q, &[Table::Evals], |s| {
        Ok(match s.eval(&rest) {
            Some(e) => {
                let i = e.modify_index;
                let e = if related {
                    let mut full = (*e).clone();
                    full.related_evals = related_evals(s, &e).iter().map(|r| r.stub()).collect();
                    Arc::new(full)
                } else {
                    e
                };
                (Some(e), i)
            }
            None => (None, s.table_index(Table::Evals)),
        })
    })
    .await?;
    let eval = eval.ok_or_else(|| ApiError::not_found("eval"))?;
    respond::query(&st, &req, eval.as_ref(), index, None)
}

/// Every evaluation reachable from `e` through `NextEval`, `PreviousEval` and `BlockedEval`
/// links (in either direction), oldest first, `e` itself excluded.
fn related_evals(s: &StateSnapshot, e: &Evaluation) -> Vec<Arc<Evaluation>> {
    let siblings = s.evals_by_job(&e.namespace, &e.job_id);
    let mut seen = BTreeSet::from([e.id.clone()]);
    let mut queue = VecDeque::from([e.id.clone()]);
    let mut out = Vec::new();
    while let Some(id) = queue.pop_front() {
        let Some(cur) = s.eval(&id) else { continue };
        let mut links: Vec<String> = [&cur.next_eval, &cur.previous_eval, &cur.blocked_eval]
            .into_iter()
            .filter(|l| !l.is_empty())
            .cloned()
            .collect();
        // Links pointing at `cur` from other evaluations of the same job.
        links.extend(
            siblings
                .iter()
                .filter(|o| o.next_eval == id || o.previous_eval == id || o.blocked_eval == id)
                .map(|o| o.id.clone()),
        );
        for l in links {
            if seen.insert(l.clone())
                && let Some(found) = s.eval(&l)
            {
                queue.push_back(l);
                out.push(found);
            }
        }
    }
    out.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
    out
}
