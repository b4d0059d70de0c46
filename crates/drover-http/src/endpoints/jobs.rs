//! Jobs: list, register, read, stop, plan, and everything under `/v1/job/<id>/…`.
//!
//! ```text
//!  /v1/job/<rest> ── rest ends with a known suffix? ──yes──▶ suffix handler(job ID = rest − suffix)
//!                        │ no
//!                        ▼
//!                   rest is the job ID: GET read · PUT/POST register · DELETE stop/purge
//! ```
//!
//! `rest` is the percent-decoded remainder of the path, so `batch/periodic-1700000000`,
//! `batch%2Fperiodic-1700000000` and `batch/periodic-1700000000/allocations` all work, as in
//! Nomad (which has the same ambiguity for an ID that itself ends in a suffix).
//!
//! Namespace and region of a submitted job: `?namespace` > body `Namespace` > `Job.Namespace` >
//! `default`; `?region` > body `Region` > `Job.Region`, and `global` or empty becomes the
//! agent's region (`reference/http-api.md` §2.2).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use drover_server::api::{JobPlanRequest, JobRegisterRequest};
use drover_state::{StateSnapshot, Table};
use drover_types::alloc::client_status;
use drover_types::{Job, JobListStub};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{decode_body, decode_optional_body, not_supported, only_get, only_write};
use crate::blocking::{self, tables_index};
use crate::error::ApiError;
use crate::paginate::{self, Order};
use crate::request::{QueryOptions, Req};
use crate::{AppState, respond};

/// `GET /v1/jobs` (list) and `PUT|POST /v1/jobs` (register).
pub(crate) async fn jobs(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    match req.method {
        Method::GET => list(&st, &req).await,
        _ if req.is_write() => register(&st, &req, None).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `/v1/job/<id>[/suffix]`.
pub(crate) async fn job(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    let rest = req.path.strip_prefix("/v1/job/").unwrap_or_default().to_string();
    let suffix = |s: &str| rest.strip_suffix(s).filter(|id| !id.is_empty());
    if let Some(id) = suffix("/allocations") {
        return allocations(&st, &req, id).await;
    }
    if let Some(id) = suffix("/evaluations") {
        return evaluations(&st, &req, id).await;
    }
    if let Some(id) = suffix("/deployments") {
        return deployments(&st, &req, id).await;
    }
    if let Some(id) = suffix("/deployment") {
        return latest_deployment(&st, &req, id).await;
    }
    if let Some(id) = suffix("/summary") {
        return summary(&st, &req, id).await;
    }
    if let Some(id) = suffix("/versions") {
        return versions(&st, &req, id).await;
    }
    if let Some(id) = suffix("/plan") {
        return plan(&st, &req, id).await;
    }
    if let Some(id) = suffix("/evaluate") {
        return evaluate(&st, &req, id).await;
    }
    if let Some(id) = suffix("/scale") {
        return scale(&st, &req, id).await;
    }
    if let Some(id) = suffix("/revert") {
        return revert(&st, &req, id).await;
    }
    if let Some(id) = suffix("/stable") {
        return stable(&st, &req, id).await;
    }
    if let Some(id) = suffix("/periodic/force") {
        only_write(&req)?;
        let resp = st.server.force_periodic(&req.namespace(), id).await?;
        let index = resp.index;
        let body = json!({"EvalID": resp.eval_id, "EvalCreateIndex": resp.eval_create_index, "Index": index});
        return respond::write(&req, &body, index);
    }
    if let Some(id) = suffix("/dispatch") {
        only_write(&req)?;
        let mut body: drover_server::api::JobDispatchRequest = decode_optional_body(&req)?;
        if let Some(t) = req.get("idempotency_token") {
            body.idempotency_token = t.to_string();
        }
        let resp = st.server.dispatch_job(&req.namespace(), id, body).await?;
        let index = resp.index;
        return respond::write(&req, &resp, index);
    }
    for (s, what) in [
        ("/submission", "job submissions"),
        ("/services", "service registrations"),
        ("/actions", "job actions"),
        ("/action", "job actions"),
    ] {
        if suffix(s).is_some() {
            return Err(not_supported(what));
        }
    }
    if rest.contains("/versions/") && rest.ends_with("/tag") {
        return Err(not_supported("job version tags"));
    }
    if rest.is_empty() {
        return Err(ApiError::BadRequest("Missing job ID".into()));
    }
    match req.method {
        Method::GET => get_job(&st, &req, &rest).await,
        Method::DELETE => deregister(&st, &req, &rest).await,
        _ if req.is_write() => register(&st, &req, Some(&rest)).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

// ------------------------------------------------------------------------------------ reads

async fn list(st: &AppState, req: &Req) -> Result<Response, ApiError> {
    let q = req.query_options()?;
    let with_meta = req.flag("meta", false)?;
    let tables = [Table::Jobs, Table::JobSummaries];
    let ((items, next), index) = blocking::run(st, req, &q, &tables, |s| {
        let page = paginate::page(
            &q,
            Order::NamespaceId,
            s.jobs(),
            |j| Order::NamespaceId.key(0, &j.namespace, &j.id),
            |j| q.namespace_matches(&j.namespace) && j.id.starts_with(&q.prefix),
            |j| job_stub(s, j, with_meta),
        )?;
        Ok((page, tables_index(s, &tables)))
    })
    .await?;
    respond::query(st, req, &items, index, next.as_deref())
}

/// A job's list stub with its summary (whose `Namespace` the CLI reads).
fn job_stub(s: &StateSnapshot, j: &Job, with_meta: bool) -> JobListStub {
    let summary = s.job_summary(&j.namespace, &j.id).map(|x| (*x).clone());
    let mut stub = j.stub(summary, with_meta);
    if stub.status.is_empty() {
        stub.status = drover_state::apply::job_status(s, j).into();
    }
    stub
}

async fn get_job(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let (job, index) = blocking::run(st, req, &q, &[Table::Jobs], |s| {
        Ok(match s.job(&q.namespace, id) {
            Some(j) => {
                let i = j.modify_index;
                (Some(j), i)
            }
            None => (None, s.table_index(Table::Jobs)),
        })
    })
    .await?;
    let job = job.ok_or_else(|| ApiError::not_found("job"))?;
    respond::query(st, req, job.as_ref(), index, None)
}

async fn summary(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let (sum, index) = blocking::run(st, req, &q, &[Table::JobSummaries], |s| {
        Ok(match s.job_summary(&q.namespace, id) {
            Some(x) => {
                let i = x.modify_index;
                (Some(x), i)
            }
            None => (None, s.table_index(Table::JobSummaries)),
        })
    })
    .await?;
    let sum = sum.ok_or_else(|| ApiError::not_found("job"))?;
    respond::query(st, req, sum.as_ref(), index, None)
}

/// Allocations of the job instance that is registered now, unless `all` (then also those of
/// earlier jobs that had the same ID).
fn job_allocs(s: &StateSnapshot, ns: &str, id: &str, all: bool) -> Vec<Arc<drover_types::Allocation>> {
    let current = s.job(ns, id).map(|j| j.create_index);
    let mut allocs: Vec<_> = s
        .allocs_by_job(ns, id)
        .into_iter()
        .filter(|a| {
            all || match (current, a.job.as_ref()) {
                (Some(c), Some(j)) => j.create_index == c,
                _ => true,
            }
        })
        .collect();
    allocs.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
    allocs
}

async fn allocations(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let all = req.flag("all", false)?;
    let with_resources = req.flag("resources", false)?;
    let with_states = req.flag("task_states", true)?;
    let (stubs, index) = blocking::run(st, req, &q, &[Table::Allocs], |s| {
        let stubs: Vec<_> = job_allocs(s, &q.namespace, id, all)
            .iter()
            .map(|a| a.stub(with_resources, with_states))
            .collect();
        Ok((stubs, s.table_index(Table::Allocs)))
    })
    .await?;
    respond::query(st, req, &stubs, index, None)
}

async fn evaluations(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let (evals, index) = blocking::run(st, req, &q, &[Table::Evals], |s| {
        let mut evals = s.evals_by_job(&q.namespace, id);
        evals.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
        Ok((evals, s.table_index(Table::Evals)))
    })
    .await?;
    respond::query(st, req, &evals, index, None)
}

async fn deployments(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let all = req.flag("all", false)?;
    let (deps, index) = blocking::run(st, req, &q, &[Table::Deployments], |s| {
        let current = s.job(&q.namespace, id).map(|j| j.create_index);
        let deps: Vec<_> = s
            .deployments_by_job(&q.namespace, id)
            .into_iter()
            .filter(|d| all || current.is_none_or(|c| d.job_create_index == c))
            .collect();
        Ok((deps, s.table_index(Table::Deployments)))
    })
    .await?;
    respond::query(st, req, &deps, index, None)
}

async fn latest_deployment(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let (dep, index) = blocking::run(st, req, &q, &[Table::Deployments], |s| {
        Ok((
            s.latest_deployment(&q.namespace, id),
            s.table_index(Table::Deployments),
        ))
    })
    .await?;
    // No deployment: 200 with `null`, not 404.
    respond::query(st, req, &dep, index, None)
}

/// `GET /v1/job/<id>/versions` (`JobVersionsResponse`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VersionsResponse {
    versions: Vec<Arc<Job>>,
    diffs: Option<Vec<drover_types::diff::JobDiff>>,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

async fn versions(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let q = req.query_options()?;
    let want_diffs = req.flag("diffs", false)?;
    let diff_version = match req.get("diff_version") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "Failed to parse value of \"diff_version\" ({v}) as a number"
            ))
        })?),
    };
    let diff_tag = req.get("diff_tag").filter(|t| !t.is_empty()).map(str::to_string);
    let (versions, index) = blocking::run(st, req, &q, &[Table::JobVersions], |s| {
        let v = s.job_versions(&q.namespace, id);
        let i = v
            .first()
            .map(|j| j.modify_index)
            .unwrap_or_else(|| s.table_index(Table::JobVersions));
        Ok((v, i))
    })
    .await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("job versions"));
    }
    let diffs = if want_diffs || diff_version.is_some() || diff_tag.is_some() {
        let to_value = |j: &Job| serde_json::to_value(j).ok();
        let base = match (&diff_tag, diff_version) {
            (Some(tag), _) => Some(
                versions
                    .iter()
                    .find(|j| {
                        j.version_tag
                            .as_ref()
                            .and_then(|t| t.get("Name"))
                            .and_then(Value::as_str)
                            == Some(tag.as_str())
                    })
                    .ok_or_else(|| ApiError::NotFound(format!("tag {tag:?} not found")))?,
            ),
            (None, Some(v)) => Some(
                versions
                    .iter()
                    .find(|j| j.version == v)
                    .ok_or_else(|| ApiError::NotFound(format!("version {v} not found")))?,
            ),
            (None, None) => None,
        };
        let mut diffs = Vec::new();
        for (i, newer) in versions.iter().enumerate() {
            let older = match base {
                Some(b) => Some(b),
                None => match versions.get(i + 1) {
                    Some(o) => Some(o),
                    None => break,
                },
            };
            diffs.push(drover_types::diff::job_diff(
                older.and_then(|o| to_value(o)).as_ref(),
                to_value(newer).as_ref(),
                false,
            ));
        }
        Some(diffs)
    } else {
        None
    };
    let body = VersionsResponse {
        versions,
        diffs,
        index,
        last_contact: 0,
        known_leader: respond::known_leader(st),
        next_token: String::new(),
    };
    respond::query(st, req, &body, index, None)
}

// ----------------------------------------------------------------------------------- writes

/// `PUT /v1/jobs` / `PUT /v1/job/<id>` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RegisterBody {
    job: Option<Job>,
    enforce_index: bool,
    job_modify_index: u64,
    policy_override: bool,
    preserve_counts: bool,
    eval_priority: i64,
    region: String,
    namespace: String,
}

/// Applies the namespace / region precedence to a submitted job.
fn place_job(st: &AppState, req: &Req, body_ns: &str, body_region: &str, job: &mut Job) {
    let pick = |a: Option<&str>, b: &str, c: &str| -> String {
        [a.unwrap_or_default(), b, c]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_string()
    };
    let ns = pick(req.get("namespace"), body_ns, &job.namespace);
    job.namespace = if ns.is_empty() { "default".into() } else { ns };
    let region = pick(req.get("region"), body_region, &job.region);
    job.region = if region.is_empty() || region == "global" {
        st.agent.region.clone()
    } else {
        region
    };
}

fn check_eval_priority(p: i64) -> Result<(), ApiError> {
    if p != 0 && !(1..=100).contains(&p) {
        return Err(ApiError::BadRequest(
            "Eval priority must be between 1 and 100".into(),
        ));
    }
    Ok(())
}

async fn register(st: &AppState, req: &Req, path_id: Option<&str>) -> Result<Response, ApiError> {
    let body: RegisterBody = decode_body(req)?;
    let Some(mut job) = body.job else {
        return Err(ApiError::BadRequest("Job must be specified".into()));
    };
    if let Some(id) = path_id {
        if job.id.is_empty() {
            return Err(ApiError::BadRequest("Job ID hasn't been provided".into()));
        }
        if job.id != id {
            return Err(ApiError::BadRequest("Job ID does not match name".into()));
        }
    }
    check_eval_priority(body.eval_priority)?;
    place_job(st, req, &body.namespace, &body.region, &mut job);
    let resp = st
        .server
        .register_job(JobRegisterRequest {
            job: Some(job),
            enforce_index: body.enforce_index,
            job_modify_index: body.job_modify_index,
            policy_override: body.policy_override,
            preserve_counts: body.preserve_counts,
            eval_priority: body.eval_priority,
        })
        .await?;
    let index = resp.index;
    respond::write(req, &respond::with_query_meta(st, &resp, index)?, index)
}

async fn deregister(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    let purge = req.flag("purge", false)?;
    // Accepted for compatibility; single region, and no per-request eval priority or
    // shutdown-delay override in the server yet.
    let _global = req.flag("global", false)?;
    let _no_shutdown_delay = req.flag("no_shutdown_delay", false)?;
    if let Some(p) = req.get("eval_priority").filter(|p| !p.is_empty()) {
        let p: i64 = p.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "Failed to parse value of \"eval_priority\" ({p}) as a number"
            ))
        })?;
        check_eval_priority(p)?;
    }
    let resp = st.server.deregister_job(&req.namespace(), id, purge).await?;
    let index = resp.index;
    let mut body = respond::with_query_meta(st, &resp, index)?;
    if let Value::Object(o) = &mut body {
        o.insert("VolumeEvalID".into(), Value::from(""));
        o.insert("VolumeEvalIndex".into(), Value::from(0));
    }
    respond::write(req, &body, index)
}

/// `PUT /v1/job/<id>/plan` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PlanBody {
    job: Option<Job>,
    diff: bool,
    policy_override: bool,
    region: String,
    namespace: String,
}

async fn plan(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: PlanBody = decode_body(req)?;
    let Some(mut job) = body.job else {
        return Err(ApiError::BadRequest("Job must be specified".into()));
    };
    if job.id != id {
        return Err(ApiError::BadRequest("Job ID does not match".into()));
    }
    place_job(st, req, &body.namespace, &body.region, &mut job);
    let resp = st
        .server
        .plan_job(JobPlanRequest {
            job: Some(job),
            diff: body.diff,
            policy_override: body.policy_override,
        })
        .await?;
    let index = resp.index;
    respond::write(req, &resp, index)
}

/// `PUT /v1/job/<id>/evaluate` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EvaluateBody {
    #[serde(rename = "JobID")]
    job_id: String,
    eval_options: EvalOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EvalOptions {
    force_reschedule: bool,
}

async fn evaluate(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: EvaluateBody = decode_optional_body(req)?;
    if !body.job_id.is_empty() && body.job_id != id {
        return Err(ApiError::BadRequest("Job ID does not match".into()));
    }
    let resp = st
        .server
        .evaluate_job(&req.namespace(), id, body.eval_options.force_reschedule)
        .await?;
    let index = resp.index;
    respond::write(req, &respond::with_query_meta(st, &resp, index)?, index)
}

/// `PUT /v1/job/<id>/stable` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct StableBody {
    #[serde(rename = "JobID")]
    job_id: String,
    job_version: u64,
    stable: bool,
}

/// `JobStabilityResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StableResponse {
    index: u64,
    job_modify_index: u64,
}

async fn stable(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: StableBody = decode_body(req)?;
    if !body.job_id.is_empty() && body.job_id != id {
        return Err(ApiError::BadRequest("Job ID does not match".into()));
    }
    let index = st
        .server
        .set_job_stability(&req.namespace(), id, body.job_version, body.stable)
        .await?;
    let job_modify_index = st
        .server
        .snapshot()
        .job(&req.namespace(), id)
        .map(|j| j.job_modify_index)
        .unwrap_or(0);
    respond::write(
        req,
        &StableResponse {
            index,
            job_modify_index,
        },
        index,
    )
}

/// `PUT /v1/job/<id>/revert` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RevertBody {
    #[serde(rename = "JobID")]
    job_id: String,
    job_version: u64,
    enforce_prior_version: Option<u64>,
}

/// Reverting registers the old version's spec again (a new version with the old content).
async fn revert(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    only_write(req)?;
    let body: RevertBody = decode_body(req)?;
    if !body.job_id.is_empty() && body.job_id != id {
        return Err(ApiError::BadRequest("Job ID does not match".into()));
    }
    let ns = req.namespace();
    let snap = st.server.snapshot();
    let current = snap.job(&ns, id).ok_or_else(|| ApiError::not_found("job"))?;
    if let Some(prior) = body.enforce_prior_version
        && prior != current.version
    {
        return Err(ApiError::BadRequest(format!(
            "Current job has version {}; enforcing version {prior}",
            current.version
        )));
    }
    if body.job_version == current.version {
        return Err(ApiError::BadRequest(format!(
            "can't revert to current version {}",
            body.job_version
        )));
    }
    let old = snap.job_by_version(&ns, id, body.job_version).ok_or_else(|| {
        ApiError::BadRequest(format!("job {id:?} at version {} not found", body.job_version))
    })?;
    let mut job = (*old).clone();
    job.stop = false;
    let resp = st
        .server
        .register_job(JobRegisterRequest {
            job: Some(job),
            enforce_index: true,
            job_modify_index: current.job_modify_index,
            ..Default::default()
        })
        .await?;
    let index = resp.index;
    respond::write(req, &respond::with_query_meta(st, &resp, index)?, index)
}

/// `PUT /v1/job/<id>/scale` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ScaleBody {
    count: Option<i64>,
    target: BTreeMap<String, String>,
    policy_override: bool,
    job_modify_index: u64,
}

async fn scale(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    if req.method == Method::GET {
        return scale_status(st, req, id).await;
    }
    only_write(req)?;
    let body: ScaleBody = decode_body(req)?;
    let target_job = body.target.get("Job").map(String::as_str).unwrap_or_default();
    if !target_job.is_empty() && target_job != id {
        return Err(ApiError::BadRequest("job ID in payload did not match URL".into()));
    }
    let Some(group) = body.target.get("Group").filter(|g| !g.is_empty()).cloned() else {
        return Err(ApiError::BadRequest(
            "missing task group name for scaling action".into(),
        ));
    };
    let ns = req.namespace();
    let snap = st.server.snapshot();
    let job = snap.job(&ns, id).ok_or_else(|| ApiError::not_found("job"))?;
    if job.group(&group).is_none() {
        return Err(ApiError::BadRequest(format!(
            "task group {group:?} specified for scaling does not exist in job"
        )));
    }
    let Some(count) = body.count else {
        // Only an event would be recorded; scaling events are not kept yet.
        let resp = drover_server::api::JobRegisterResponse {
            job_modify_index: job.job_modify_index,
            index: snap.latest_index(),
            ..Default::default()
        };
        let index = resp.index;
        return respond::write(req, &respond::with_query_meta(st, &resp, index)?, index);
    };
    if count < 0 {
        return Err(ApiError::BadRequest(
            "scaling action count can't be negative".into(),
        ));
    }
    if job.stop {
        return Err(ApiError::BadRequest(
            "job is stopped; scaling is not allowed".into(),
        ));
    }
    let mut scaled = (*job).clone();
    for tg in scaled.task_groups.iter_mut().filter(|g| g.name == group) {
        tg.count = count;
    }
    let resp = st
        .server
        .register_job(JobRegisterRequest {
            job: Some(scaled),
            enforce_index: body.job_modify_index > 0,
            job_modify_index: body.job_modify_index,
            policy_override: body.policy_override,
            ..Default::default()
        })
        .await?;
    let index = resp.index;
    respond::write(req, &respond::with_query_meta(st, &resp, index)?, index)
}

async fn scale_status(st: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    let q = req.query_options()?;
    let tables = [Table::Jobs, Table::Allocs, Table::Deployments];
    let (status, index) = blocking::run(st, req, &q, &tables, |s| {
        Ok((scale_status_of(s, &q, id), tables_index(s, &tables)))
    })
    .await?;
    let status = status.ok_or_else(|| ApiError::not_found("job"))?;
    respond::query(st, req, &status, index, None)
}

fn scale_status_of(s: &StateSnapshot, q: &QueryOptions, id: &str) -> Option<Value> {
    let job = s.job(&q.namespace, id)?;
    let allocs = job_allocs(s, &job.namespace, &job.id, false);
    let mut groups = serde_json::Map::new();
    for tg in &job.task_groups {
        let mine = allocs.iter().filter(|a| a.task_group == tg.name && !a.terminal());
        let (mut placed, mut running, mut healthy, mut unhealthy) = (0, 0, 0, 0);
        for a in mine {
            placed += 1;
            if a.client_status == client_status::RUNNING {
                running += 1;
            }
            match a.deployment_status.as_ref().and_then(|d| d.healthy) {
                Some(true) => healthy += 1,
                Some(false) => unhealthy += 1,
                None => {}
            }
        }
        groups.insert(
            tg.name.clone(),
            json!({
                "Desired": tg.count,
                "Placed": placed,
                "Running": running,
                "Healthy": healthy,
                "Unhealthy": unhealthy,
                "Events": null,
            }),
        );
    }
    Some(json!({
        "JobID": job.id,
        "Namespace": job.namespace,
        "JobCreateIndex": job.create_index,
        "JobModifyIndex": job.job_modify_index,
        "JobStopped": job.stop,
        "TaskGroups": groups,
    }))
}

// ------------------------------------------------------------------------- parse, validate

/// `POST /v1/jobs/parse` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ParseBody {
    #[serde(rename = "JobHCL")]
    job_hcl: String,
    variables: String,
    canonicalize: bool,
}

/// `POST /v1/jobs/parse`: HCL2 (or JSON) job text → the API's input-shape job; with
/// `Canonicalize`, Nomad's defaults filled in (not validated, as in Nomad).
pub(crate) async fn parse(State(_st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_write(&req)?;
    let body: ParseBody = decode_body(&req)?;
    if body.job_hcl.trim().is_empty() {
        return Err(ApiError::BadRequest("Job spec is empty".into()));
    }
    let value = tokio::task::spawn_blocking(move || parse_job_text(&body))
        .await
        .map_err(|e| ApiError::Internal(format!("parse task failed: {e}")))??;
    respond::json(&req, &value)
}

fn parse_job_text(body: &ParseBody) -> Result<Value, ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("Failed to parse job: {e}"));
    // drover-jobspec reads variable files by path: hand it the text through a private file.
    let var_file = (!body.variables.trim().is_empty())
        .then(|| VarFile::write(&body.variables))
        .transpose()?;
    let opts = drover_jobspec::ParseOptions {
        var_files: var_file.iter().map(|f| f.0.clone()).collect(),
        ..Default::default()
    };
    let (api, _format) =
        drover_jobspec::to_api_json("input.hcl", &body.job_hcl, &opts).map_err(|e| failed(&e))?;
    let api = unwrap_job(api);
    if !body.canonicalize {
        return Ok(api);
    }
    let mut job: Job = drover_types::codec::from_value(api).map_err(|e| failed(&e))?;
    drover_types::canonicalize::canonicalize_job(&mut job);
    serde_json::to_value(&job).map_err(|e| ApiError::Internal(format!("encode failed: {e}")))
}

/// `{"Job": {...}}` → `{...}`.
fn unwrap_job(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 => {
            let key = m.keys().find(|k| k.eq_ignore_ascii_case("job")).cloned();
            match key.and_then(|k| m.remove(&k)) {
                Some(inner @ Value::Object(_)) => inner,
                Some(other) => {
                    let mut back = serde_json::Map::new();
                    back.insert("Job".into(), other);
                    Value::Object(back)
                }
                None => Value::Object(m),
            }
        }
        other => other,
    }
}

/// A temporary variables file, removed on drop.
struct VarFile(std::path::PathBuf);

impl VarFile {
    fn write(text: &str) -> Result<VarFile, ApiError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "drover-parse-{}-{}.vars.hcl",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text)
            .map_err(|e| ApiError::Internal(format!("writing the variables file failed: {e}")))?;
        Ok(VarFile(path))
    }
}

impl Drop for VarFile {
    fn drop(&mut self) {
        // Best effort: the file is in the temp directory either way.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `PUT /v1/validate/job` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ValidateBody {
    job: Option<Job>,
    region: String,
    namespace: String,
}

/// `JobValidateResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ValidateResponse {
    driver_config_validated: bool,
    validation_errors: Option<Vec<String>>,
    error: String,
    warnings: String,
}

/// `PUT|POST /v1/validate/job`: canonicalise and validate without registering.
pub(crate) async fn validate(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_write(&req)?;
    let body: ValidateBody = decode_body(&req)?;
    let Some(mut job) = body.job else {
        return Err(ApiError::BadRequest("Job must be specified".into()));
    };
    place_job(&st, &req, &body.namespace, &body.region, &mut job);
    drover_types::canonicalize::canonicalize_job(&mut job);
    let resp = match drover_types::validate::validate_job(&job) {
        Ok(warnings) => ValidateResponse {
            // Driver configurations are checked by the client's driver, not here.
            driver_config_validated: false,
            validation_errors: None,
            error: String::new(),
            warnings: warnings.join("\n"),
        },
        Err(e) => ValidateResponse {
            driver_config_validated: false,
            validation_errors: Some(e.problems.iter().map(ToString::to_string).collect()),
            error: e.to_string(),
            warnings: String::new(),
        },
    };
    respond::json(&req, &resp)
}
