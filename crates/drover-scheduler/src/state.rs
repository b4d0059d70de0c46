//! The scheduler's boundary: what it may read ([`State`]) and the only way it changes anything
//! ([`Planner`]).
//!
//! ```text
//!            ┌──────────── State (read-only snapshot at one Raft index) ───────────┐
//!  Evaluation│ nodes · allocs by job / node · job (by version) · deployment · config │
//!     ──────▶│                         Scheduler::process                          │
//!            └──────────── Planner: submit_plan · update_eval · create_eval · reblock_eval
//! ```
//!
//! In production the server's worker implements [`Planner`] (plans go to the leader's plan
//! applier); in tests and in `job plan` dry runs the recording [`crate::harness::Harness`] does.

use std::sync::Arc;

use drover_types::{Allocation, Deployment, Evaluation, Job, Node, Plan, PlanResult, SchedulerConfiguration};

/// An immutable view of the cluster at one index. Implementations must be cheap to query:
/// `allocs_by_node` is called for every candidate node of every placement.
pub trait State {
    /// The Raft index this view reflects.
    fn latest_index(&self) -> u64;
    /// Every node (the scheduler filters by readiness, datacenter and pool).
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// One node.
    fn node(&self, id: &str) -> Option<Arc<Node>>;
    /// Every allocation of a job (all versions, terminal ones included).
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>>;
    /// Every allocation on a node (terminal ones included).
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>>;
    /// One allocation.
    fn alloc(&self, id: &str) -> Option<Arc<Allocation>>;
    /// The current version of a job.
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>>;
    /// A specific version of a job.
    fn job_by_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>>;
    /// The most recent deployment of a job.
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>>;
    /// Scheduler configuration (algorithm, preemption).
    fn scheduler_config(&self) -> SchedulerConfiguration;
    /// Every job (for the core scheduler's garbage collection).
    fn jobs(&self) -> Vec<Arc<Job>> {
        Vec::new()
    }
    /// Every evaluation (for the core scheduler's garbage collection).
    fn evals(&self) -> Vec<Arc<Evaluation>> {
        Vec::new()
    }
    /// Every allocation (for the core scheduler's garbage collection).
    fn allocs(&self) -> Vec<Arc<Allocation>> {
        Vec::new()
    }
    /// Every deployment (for the core scheduler's garbage collection).
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        Vec::new()
    }
}

/// What the planner returns for a submitted plan: the result, and a fresher state when part of
/// the plan was rejected (the scheduler then re-plans on it).
#[derive(Debug)]
pub struct Submitted {
    /// What was committed.
    pub result: PlanResult,
    /// Set when `result.refresh_index != 0`: a view at least that fresh.
    pub refreshed: Option<Arc<dyn State + Send + Sync>>,
}

impl std::fmt::Debug for dyn State + Send + Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State@{}", self.latest_index())
    }
}

/// How a scheduler changes the world.
pub trait Planner {
    /// Submits a plan for the plan applier to verify and commit.
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError>;
    /// Records the evaluation's new status.
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
    /// Creates a follow-up or blocked evaluation.
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
    /// Puts an unblocked evaluation back into the blocked set with new class eligibility.
    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
}

/// Why a scheduler could not finish an evaluation. Expected outcomes (nothing fits, a partial
/// plan) are data in the plan and the evaluation, not errors: an error here means the worker
/// should nack the evaluation so it is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The planner (plan applier, Raft) failed; retry later.
    #[error("planner failed: {0}")]
    Planner(String),
    /// A plan was not fully committed but no refresh index came back (an applier bug).
    #[error("plan was partially committed without a refresh index")]
    PartialCommitWithoutRefresh,
    /// The evaluation names a scheduler type this crate does not have.
    #[error("unknown scheduler type {0:?}")]
    UnknownScheduler(String),
}
