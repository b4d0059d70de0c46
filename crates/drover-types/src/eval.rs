//! Evaluations (a request to reconcile one job), the plans schedulers produce from them, and the
//! deployments that track rolling updates.
//!
//! ```text
//!  Evaluation ──scheduler──▶ Plan {stops, placements, preemptions} ──plan applier──▶ PlanResult
//!      │                                                                   (RefreshIndex if
//!      └─ FailedTGAllocs / BlockedEval when something could not be placed    partly rejected)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alloc::{AllocListStub, AllocMetric, Allocation};
use crate::job::Job;
use crate::serde_util::{empty_map_as_null, empty_vec_as_null};
use crate::time::{Nanos, Timestamp, opt_time};

/// Evaluation statuses (note Nomad's spelling "canceled").
pub mod eval_status {
    /// Waiting for capacity.
    pub const BLOCKED: &str = "blocked";
    /// Waiting for a scheduler.
    pub const PENDING: &str = "pending";
    /// Done.
    pub const COMPLETE: &str = "complete";
    /// Gave up.
    pub const FAILED: &str = "failed";
    /// Superseded.
    pub const CANCELED: &str = "canceled";
}

/// An evaluation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Evaluation {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    #[serde(rename = "Type")]
    pub eval_type: String,
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_modify_index: u64,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_modify_index: u64,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    pub wait: Nanos,
    #[serde(with = "opt_time")]
    pub wait_until: Option<Timestamp>,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related_evals: Vec<EvaluationStub>,
    #[serde(rename = "FailedTGAllocs", serialize_with = "empty_map_as_null")]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    pub plan_annotations: Option<PlanAnnotations>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub class_eligibility: BTreeMap<String, bool>,
    pub quota_limit_reached: String,
    pub escaped_computed_class: bool,
    pub annotate_plan: bool,
    #[serde(serialize_with = "empty_map_as_null")]
    pub queued_allocations: BTreeMap<String, i64>,
    pub snapshot_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Evaluation {
    /// Complete, failed or canceled.
    pub fn terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            eval_status::COMPLETE | eval_status::FAILED | eval_status::CANCELED
        )
    }
    /// The list form.
    pub fn stub(&self) -> EvaluationStub {
        EvaluationStub {
            id: self.id.clone(),
            namespace: self.namespace.clone(),
            priority: self.priority,
            eval_type: self.eval_type.clone(),
            triggered_by: self.triggered_by.clone(),
            job_id: self.job_id.clone(),
            node_id: self.node_id.clone(),
            deployment_id: self.deployment_id.clone(),
            status: self.status.clone(),
            status_description: self.status_description.clone(),
            wait_until: self.wait_until,
            next_eval: self.next_eval.clone(),
            previous_eval: self.previous_eval.clone(),
            blocked_eval: self.blocked_eval.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            create_time: self.create_time,
            modify_time: self.modify_time,
        }
    }
}

/// The short form of an evaluation (`RelatedEvals`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EvaluationStub {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    #[serde(rename = "Type")]
    pub eval_type: String,
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    #[serde(with = "opt_time")]
    pub wait_until: Option<Timestamp>,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

/// Node ID → allocations, in the order the nodes were first added. A plan looks a node up for
/// every placement; with thousands of nodes in one plan a hash lookup costs a fraction of an
/// ordered map's string comparisons (each a cache miss on a key). Equality ignores order.
pub type NodeAllocs = indexmap::IndexMap<String, Vec<Allocation>>;

/// What a scheduler wants changed, per node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Plan {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_token: String,
    pub priority: i64,
    pub all_at_once: bool,
    pub job: Option<Arc<Job>>,
    /// node → allocations to stop (desired status stop, with a description).
    pub node_update: NodeAllocs,
    /// node → new or in-place-updated allocations.
    pub node_allocation: NodeAllocs,
    /// node → allocations evicted to make room.
    pub node_preemptions: NodeAllocs,
    pub deployment: Option<Deployment>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    pub annotations: Option<PlanAnnotations>,
    pub snapshot_index: u64,
}

impl Plan {
    /// Nothing to do.
    pub fn is_no_op(&self) -> bool {
        self.node_update.is_empty()
            && self.node_allocation.is_empty()
            && self.deployment.is_none()
            && self.deployment_updates.is_empty()
    }
}

/// What the plan applier committed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PlanResult {
    pub node_update: NodeAllocs,
    pub node_allocation: NodeAllocs,
    pub node_preemptions: NodeAllocs,
    pub deployment: Option<Deployment>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub rejected_nodes: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub ineligible_nodes: Vec<String>,
    /// Non-zero when part of the plan was rejected: re-plan at this index or later.
    pub refresh_index: u64,
    pub alloc_index: u64,
}

/// Per-group counts of what the plan does, plus preempted allocations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PlanAnnotations {
    #[serde(rename = "DesiredTGUpdates", serialize_with = "empty_map_as_null")]
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub preempted_allocs: Vec<AllocListStub>,
}

/// Counts for one task group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DesiredUpdates {
    pub ignore: u64,
    pub place: u64,
    pub migrate: u64,
    pub stop: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub canary: u64,
    pub preemptions: u64,
    pub disconnect: u64,
    pub reconnect: u64,
    pub reschedule_now: u64,
    pub reschedule_later: u64,
}

/// Deployment statuses ("cancelled" with two l's, unlike evaluations).
pub mod deployment_status {
    /// In progress.
    pub const RUNNING: &str = "running";
    /// Paused by an operator.
    pub const PAUSED: &str = "paused";
    /// Failed.
    pub const FAILED: &str = "failed";
    /// Done.
    pub const SUCCESSFUL: &str = "successful";
    /// Superseded or job stopped.
    pub const CANCELLED: &str = "cancelled";
}

/// A deployment: the progress of one job version's rolling update.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Deployment {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: u64,
    pub job_spec_modify_index: u64,
    pub job_create_index: u64,
    pub is_multiregion: bool,
    #[serde(serialize_with = "empty_map_as_null")]
    pub task_groups: BTreeMap<String, DeploymentState>,
    pub status: String,
    pub status_description: String,
    pub eval_priority: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

/// Per-group deployment progress.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeploymentState {
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub progress_deadline: Nanos,
    #[serde(with = "opt_time")]
    pub require_progress_by: Option<Timestamp>,
    pub promoted: bool,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub placed_canaries: Vec<String>,
    pub desired_canaries: i64,
    pub desired_total: i64,
    pub placed_allocs: i64,
    pub healthy_allocs: i64,
    pub unhealthy_allocs: i64,
}

/// A status change of a deployment carried in a plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeploymentStatusUpdate {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
}

/// Cluster-wide scheduler settings (`/v1/operator/scheduler/configuration`), stored in Raft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerConfiguration {
    /// `binpack` (default) or `spread`.
    pub scheduler_algorithm: String,
    pub preemption_config: PreemptionConfig,
    pub memory_oversubscription_enabled: bool,
    pub reject_job_registration: bool,
    pub pause_eval_broker: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            scheduler_algorithm: "binpack".into(),
            preemption_config: PreemptionConfig::default(),
            memory_oversubscription_enabled: false,
            reject_job_registration: false,
            pause_eval_broker: false,
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl SchedulerConfiguration {
    /// Is preemption on for this job type?
    pub fn preemption_enabled(&self, job_type: &str) -> bool {
        let p = &self.preemption_config;
        match job_type {
            crate::job::job_type::SYSTEM => p.system_scheduler_enabled,
            crate::job::job_type::SYSBATCH => p.sys_batch_scheduler_enabled,
            crate::job::job_type::BATCH => p.batch_scheduler_enabled,
            crate::job::job_type::SERVICE => p.service_scheduler_enabled,
            _ => false,
        }
    }
}

/// Which schedulers may preempt lower-priority work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PreemptionConfig {
    pub system_scheduler_enabled: bool,
    pub sys_batch_scheduler_enabled: bool,
    pub batch_scheduler_enabled: bool,
    pub service_scheduler_enabled: bool,
}

impl Default for PreemptionConfig {
    fn default() -> Self {
        PreemptionConfig {
            system_scheduler_enabled: true,
            sys_batch_scheduler_enabled: false,
            batch_scheduler_enabled: false,
            service_scheduler_enabled: false,
        }
    }
}
