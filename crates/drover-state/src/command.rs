//! The FSM's commands (one per Raft log entry) and what applying one tells the leader.
//!
//! Commands are externally tagged (`{"UpsertJob": {...}}`) so they encode compactly as msgpack
//! with named fields ([`Command::to_bytes`]) and decode with the lenient model decoder.
//! Everything a command needs is in it: the FSM reads no clock (times come from the leader).

use std::collections::BTreeMap;

use drover_types::alloc::DesiredTransition;
use drover_types::eval::DeploymentStatusUpdate;
use drover_types::node::{DrainStrategy, NodeEvent};
use drover_types::{Allocation, Deployment, Evaluation, Job, Node, SchedulerConfiguration};
use serde::{Deserialize, Serialize};

use crate::StateError;

/// One replicated state change. Fields are PascalCase on the wire, like the model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "PascalCase")]
pub enum Command {
    /// Register or update a job (and optionally its evaluation, in the same entry). The
    /// leader sets `SubmitTime`.
    UpsertJob {
        /// The canonical job.
        job: Job,
        /// The evaluation the registration creates.
        #[serde(default)]
        eval: Option<Evaluation>,
    },
    /// Stop (`purge = false`) or remove (`purge = true`) a job.
    DeregisterJob {
        /// Namespace.
        namespace: String,
        /// Job ID.
        job_id: String,
        /// Remove the job, its versions and summary instead of stopping it.
        #[serde(default)]
        purge: bool,
        /// The evaluation the deregistration creates.
        #[serde(default)]
        eval: Option<Evaluation>,
    },
    /// Register a node or update its fingerprint. Drain and eligibility are kept from the
    /// stored node.
    UpsertNode {
        /// The node.
        node: Node,
    },
    /// Heartbeat-driven status change.
    UpdateNodeStatus {
        /// Node ID.
        id: String,
        /// New status.
        status: String,
        /// Unix seconds.
        updated_at: i64,
        /// Node-update evaluations created with the change.
        #[serde(default)]
        evals: Vec<Evaluation>,
        /// An event for the node's history (`Node heartbeat missed`, ...).
        #[serde(default)]
        event: Option<NodeEvent>,
    },
    /// `eligible` / `ineligible`.
    UpdateNodeEligibility {
        /// Node ID.
        id: String,
        /// New eligibility.
        eligibility: String,
        /// Evaluations created with the change.
        #[serde(default)]
        evals: Vec<Evaluation>,
        /// An event for the node's history.
        #[serde(default)]
        event: Option<NodeEvent>,
    },
    /// Start (`Some`) or stop (`None`) draining a node.
    UpdateNodeDrain {
        /// Node ID.
        id: String,
        /// The drain parameters.
        #[serde(default)]
        drain_strategy: Option<DrainStrategy>,
        /// When the drain stops: make the node eligible again.
        #[serde(default)]
        mark_eligible: bool,
        /// Evaluations created with the change.
        #[serde(default)]
        evals: Vec<Evaluation>,
        /// An event for the node's history.
        #[serde(default)]
        event: Option<NodeEvent>,
    },
    /// Remove nodes.
    DeleteNodes {
        /// Node IDs.
        ids: Vec<String>,
    },
    /// Create or update evaluations.
    UpsertEvals {
        /// The evaluations.
        evals: Vec<Evaluation>,
    },
    /// Garbage-collect evaluations and allocations.
    DeleteEvals {
        /// Evaluation IDs.
        evals: Vec<String>,
        /// Allocation IDs.
        #[serde(default)]
        allocs: Vec<String>,
    },
    /// What the plan applier committed.
    ApplyPlanResults {
        /// The job of the plan, embedded in new allocations that carry none.
        #[serde(default)]
        job: Option<Job>,
        /// New and in-place-updated allocations.
        #[serde(default)]
        allocs_updated: Vec<Allocation>,
        /// Allocations to stop.
        #[serde(default)]
        allocs_stopped: Vec<AllocStopDiff>,
        /// Allocations evicted for higher-priority work.
        #[serde(default)]
        allocs_preempted: Vec<AllocPreemptDiff>,
        /// A deployment created or updated by the plan.
        #[serde(default)]
        deployment: Option<Deployment>,
        /// Status changes of deployments.
        #[serde(default)]
        deployment_updates: Vec<DeploymentStatusUpdate>,
        /// The evaluation the plan belongs to (its ModifyIndex is bumped).
        #[serde(default)]
        eval_id: String,
        /// Evaluations for the jobs whose allocations were preempted.
        #[serde(default)]
        preemption_evals: Vec<Evaluation>,
    },
    /// Batched client status updates; only client-owned fields are read.
    UpdateAllocsFromClient {
        /// Partial allocations: ID plus client-owned fields.
        allocs: Vec<Allocation>,
        /// Evaluations created with the update (e.g. reschedules).
        #[serde(default)]
        evals: Vec<Evaluation>,
    },
    /// Set desired transitions (migrate, reschedule, ...).
    UpdateAllocDesiredTransition {
        /// Allocation ID → the fields to merge.
        allocs: BTreeMap<String, DesiredTransition>,
        /// Evaluations created with the change.
        #[serde(default)]
        evals: Vec<Evaluation>,
    },
    /// Replace the scheduler configuration, optionally check-and-set.
    SetSchedulerConfig {
        /// The configuration.
        config: SchedulerConfiguration,
        /// Apply only if the stored ModifyIndex equals this.
        #[serde(default)]
        cas_index: Option<u64>,
    },
    /// Create or update a deployment.
    UpsertDeployment {
        /// The deployment.
        deployment: Deployment,
    },
    /// Remove allocations.
    DeleteAllocs {
        /// Allocation IDs.
        ids: Vec<String>,
    },
    /// Remove deployments.
    DeleteDeployments {
        /// Deployment IDs.
        ids: Vec<String>,
    },
    /// Marks a job version stable (or not): a successful deployment, or `job stable`.
    UpdateJobStability {
        /// Namespace.
        namespace: String,
        /// Job ID.
        job_id: String,
        /// The version.
        version: u64,
        /// Stable or not.
        stable: bool,
    },
    /// Several commands in one Raft entry (group commit): they apply in order at the entry's
    /// index, each all-or-nothing on its own; the outcome lists one result per command.
    Batch {
        /// The commands (never nested batches).
        commands: Vec<Command>,
    },
}

impl Command {
    /// msgpack with named fields (what goes in the Raft log).
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        rmp_serde::to_vec_named(self).map_err(|e| StateError::Encode(e.to_string()))
    }

    /// Decodes what [`Command::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        crate::snapshot::decode_msgpack(bytes)
    }

    /// The command's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpsertJob { .. } => "UpsertJob",
            Command::DeregisterJob { .. } => "DeregisterJob",
            Command::UpsertNode { .. } => "UpsertNode",
            Command::UpdateNodeStatus { .. } => "UpdateNodeStatus",
            Command::UpdateNodeEligibility { .. } => "UpdateNodeEligibility",
            Command::UpdateNodeDrain { .. } => "UpdateNodeDrain",
            Command::DeleteNodes { .. } => "DeleteNodes",
            Command::UpsertEvals { .. } => "UpsertEvals",
            Command::DeleteEvals { .. } => "DeleteEvals",
            Command::ApplyPlanResults { .. } => "ApplyPlanResults",
            Command::UpdateAllocsFromClient { .. } => "UpdateAllocsFromClient",
            Command::UpdateAllocDesiredTransition { .. } => "UpdateAllocDesiredTransition",
            Command::SetSchedulerConfig { .. } => "SetSchedulerConfig",
            Command::UpsertDeployment { .. } => "UpsertDeployment",
            Command::DeleteAllocs { .. } => "DeleteAllocs",
            Command::DeleteDeployments { .. } => "DeleteDeployments",
            Command::UpdateJobStability { .. } => "UpdateJobStability",
            Command::Batch { .. } => "Batch",
        }
    }
}

/// An allocation the plan stops: only what changes is carried.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocStopDiff {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Why it is stopped.
    pub desired_description: String,
    /// `lost` or `unknown` (the only client statuses the server sets); empty = unchanged.
    pub client_status: String,
    /// A follow-up (reschedule) evaluation.
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    /// Leader's time of the change (unix nanos; 0 = unchanged).
    pub modify_time: i64,
}

/// An allocation the plan preempts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocPreemptDiff {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The allocation that preempts it.
    pub preempted_by_allocation: String,
    /// Leader's time of the change (unix nanos; 0 = unchanged).
    pub modify_time: i64,
}

/// What the leader must react to after an apply (every server computes it; only the leader
/// acts on it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// The Raft index applied.
    pub index: u64,
    /// Pending evaluations to enqueue in the broker.
    pub evals_to_enqueue: Vec<String>,
    /// Blocked evaluations to track.
    pub evals_to_block: Vec<String>,
    /// Jobs `(namespace, id)` whose blocked evaluations can be untracked (a complete eval
    /// placed everything).
    pub jobs_to_untrack: Vec<(String, String)>,
    /// Blocked evaluations canceled by the store (§2.3 side effect).
    pub evals_canceled: Vec<String>,
    /// Nodes whose capacity may have grown (became ready/eligible, or allocs on them
    /// stopped): unblock evaluations for their class.
    pub nodes_with_capacity: Vec<String>,
    /// For `UpsertJob` / `DeregisterJob`: the job's ModifyIndex and JobModifyIndex after
    /// the apply (unchanged when a re-registration did not change the spec).
    pub job_modify_index: Option<(u64, u64)>,
    /// For `UpsertJob`: whether the spec changed (a new version was written).
    pub job_changed: bool,
    /// `false` when a check-and-set did not match (nothing was written).
    pub applied: bool,
    /// For `Batch`: each command's own outcome, or the error that left it unapplied.
    #[serde(default)]
    pub batch: Vec<Result<ApplyOutcome, String>>,
}
