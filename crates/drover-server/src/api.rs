//! Requests and responses of the server's operations, in Nomad's wire shape (PascalCase JSON).
//! The HTTP layer and the RPC layer both speak these; `Index` is the Raft index of the write.

use std::collections::BTreeMap;

use drover_types::alloc::AllocMetric;
use drover_types::diff::JobDiff;
use drover_types::eval::PlanAnnotations;
use drover_types::{Evaluation, Job};
use serde::{Deserialize, Serialize};

/// `PUT /v1/jobs` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobRegisterRequest {
    /// The job (decoded leniently; the server canonicalises and validates it).
    pub job: Option<Job>,
    /// Register only if the stored `JobModifyIndex` equals `job_modify_index` (0 = job must
    /// not exist).
    pub enforce_index: bool,
    /// See `enforce_index`.
    pub job_modify_index: u64,
    /// Sentinel policy override (accepted, no effect).
    pub policy_override: bool,
    /// Keep the stored counts of existing groups.
    pub preserve_counts: bool,
    /// Priority of the created evaluation (0 = the job's).
    pub eval_priority: i64,
}

/// What a job write (register, evaluate, scale, revert) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    /// The evaluation created ("" for periodic / parameterized parents).
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// The job's `JobModifyIndex` after the write.
    pub job_modify_index: u64,
    /// Non-fatal problems (e.g. deprecated fields).
    pub warnings: String,
    /// Raft index of the write.
    pub index: u64,
}

/// What `DELETE /v1/job/:id` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    /// The evaluation created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// The job's modify index after the write.
    pub job_modify_index: u64,
    /// Raft index of the write.
    pub index: u64,
}

/// `PUT /v1/job/:id/plan` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobPlanRequest {
    /// The job to plan.
    pub job: Option<Job>,
    /// Include a diff against the stored job.
    pub diff: bool,
    /// Accepted, no effect.
    pub policy_override: bool,
}

/// What a plan (dry run) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobPlanResponse {
    /// Per-group counts and preemptions (always present).
    pub annotations: Option<PlanAnnotations>,
    /// Groups that could not be placed, with the placement metrics (null when all fit).
    #[serde(
        rename = "FailedTGAllocs",
        serialize_with = "drover_types::serde_util::empty_map_as_null"
    )]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// The stored job's `JobModifyIndex` (for `job run -check-index`); 0 if new.
    pub job_modify_index: u64,
    /// Blocked evaluations the real run would create.
    #[serde(serialize_with = "drover_types::serde_util::empty_vec_as_null")]
    pub created_evals: Vec<Evaluation>,
    /// Diff against the stored job (Type `None` when nothing changed).
    pub diff: Option<JobDiff>,
    /// Next periodic launch (null).
    pub next_periodic_launch: Option<String>,
    /// Non-fatal problems.
    pub warnings: String,
    /// State index the plan ran against.
    pub index: u64,
}

/// What node writes (register, status, drain, eligibility, evaluate) return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeUpdateResponse {
    /// How long the client may wait before its next heartbeat, nanoseconds.
    #[serde(rename = "HeartbeatTTL")]
    pub heartbeat_ttl: i64,
    /// Evaluations created.
    #[serde(
        rename = "EvalIDs",
        serialize_with = "drover_types::serde_util::empty_vec_as_null"
    )]
    pub eval_ids: Vec<String>,
    /// Raft index of the evaluations.
    pub eval_create_index: u64,
    /// The node's modify index after the write.
    pub node_modify_index: u64,
    /// The leader's RPC address.
    #[serde(rename = "LeaderRPCAddr")]
    pub leader_rpc_addr: String,
    /// Raft index of the write.
    pub index: u64,
}

/// `PUT /v1/node/:id/drain` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDrainRequest {
    /// `null` cancels the drain.
    pub drain_spec: Option<DrainSpec>,
    /// When cancelling, make the node eligible again.
    pub mark_eligible: bool,
    /// Free-form metadata (stored on the drain).
    pub meta: BTreeMap<String, String>,
}

/// The drain parameters a user gives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DrainSpec {
    /// Nanoseconds; < 0 forces, 0 means no deadline.
    pub deadline: i64,
    /// Leave system-job allocations running.
    pub ignore_system_jobs: bool,
}

/// Check-and-set result of a scheduler-configuration write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerSetConfigurationResponse {
    /// `false` when the CAS index did not match.
    pub updated: bool,
    /// Raft index of the write.
    pub index: u64,
}

/// What `/v1/agent/members` needs about one server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServerMember {
    /// `<name>.<region>`.
    pub name: String,
    /// IP.
    pub addr: String,
    /// Serf port (4648 by convention).
    pub port: u16,
    /// `role`, `region`, `dc`, `build`, `port` (RPC), `rpc_addr`, `id`, `raft_vsn`, `bootstrap`, ...
    pub tags: BTreeMap<String, String>,
    /// `alive`, `leaving`, `left`, `failed`.
    pub status: String,
}

/// `PUT /v1/job/:id/dispatch` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDispatchRequest {
    /// Base64 payload (at most 16 KiB decoded).
    pub payload: Option<String>,
    /// Metadata for the child (must satisfy the job's `meta_required` / `meta_optional`).
    pub meta: BTreeMap<String, String>,
    /// A retried dispatch with the same token returns the first child.
    pub idempotency_token: String,
}

/// What a dispatch or a periodic force returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDispatchResponse {
    /// The child job's ID.
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    /// The child's evaluation.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// Raft index that created the child.
    pub job_create_index: u64,
    /// Raft index of the write.
    pub index: u64,
}
