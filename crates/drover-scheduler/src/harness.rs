//! A recording [`Planner`] over an in-memory [`State`]: the scheduler's test bench and the
//! engine of `job plan` dry runs.
//!
//! ```text
//!  MemState (nodes, jobs, allocs, deployments, config)
//!     │ Harness::process(eval) ── scheduler ──▶ submit_plan(plan)
//!     │                                           │ records the plan; applies it to MemState
//!     │                                           │ (Commit::All, or Commit::Verify: the shared fit
//!     │                                           │  check per node, partial commit + RefreshIndex,
//!     │                                           │  like the plan applier; Commit::Reject: nothing)
//!     ▼                                           ▼
//!  harness.plans, .evals (updates), .create_evals, .reblock_evals
//! ```
//!
//! `MemState` is also a plain, fast [`State`] for benchmarks: allocations are indexed by node
//! and by job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use drover_types::alloc::desired_status;
use drover_types::eval::deployment_status;
use drover_types::{Allocation, Deployment, Evaluation, Job, Node, Plan, PlanResult, SchedulerConfiguration};

use crate::state::{CandidateIndex, Planner, SchedulerError, State, Submitted};

/// An in-memory cluster state.
#[derive(Debug, Clone, Default)]
pub struct MemState {
    index: u64,
    nodes: BTreeMap<String, Arc<Node>>,
    jobs: BTreeMap<(String, String), Arc<Job>>,
    job_versions: BTreeMap<(String, String, u64), Arc<Job>>,
    allocs: HashMap<String, Arc<Allocation>>,
    by_node: HashMap<String, Vec<Arc<Allocation>>>,
    by_job: HashMap<(String, String), Vec<Arc<Allocation>>>,
    deployments: BTreeMap<String, Arc<Deployment>>,
    evals: BTreeMap<String, Arc<Evaluation>>,
    config: SchedulerConfiguration,
    /// Built on first use, dropped whenever a node changes.
    candidates: Arc<std::sync::OnceLock<Arc<CandidateIndex>>>,
}

impl MemState {
    /// An empty state at index 1 with the default scheduler configuration.
    pub fn new() -> Self {
        MemState {
            index: 1,
            ..Default::default()
        }
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Adds or replaces a node.
    pub fn upsert_node(&mut self, mut node: Node) {
        let i = self.bump();
        if node.create_index == 0 {
            node.create_index = i;
        }
        node.modify_index = i;
        self.nodes.insert(node.id.clone(), Arc::new(node));
        self.candidates = Default::default();
    }

    /// Adds or replaces a job (the version is kept as given).
    pub fn upsert_job(&mut self, mut job: Job) -> Arc<Job> {
        let i = self.bump();
        if job.create_index == 0 {
            job.create_index = i;
        }
        if job.job_modify_index == 0 {
            job.job_modify_index = i;
        }
        job.modify_index = i;
        let j = Arc::new(job);
        self.jobs.insert((j.namespace.clone(), j.id.clone()), j.clone());
        self.job_versions
            .insert((j.namespace.clone(), j.id.clone(), j.version), j.clone());
        j
    }

    /// Adds or replaces allocations (indexes kept when set).
    pub fn upsert_allocs(&mut self, allocs: Vec<Allocation>) {
        let i = self.bump();
        for mut a in allocs {
            if a.create_index == 0 {
                a.create_index = i;
            }
            if a.modify_index == 0 {
                a.modify_index = i;
            }
            self.put_alloc(Arc::new(a));
        }
    }

    fn put_alloc(&mut self, a: Arc<Allocation>) {
        if let Some(old) = self.allocs.insert(a.id.clone(), a.clone()) {
            if let Some(v) = self.by_node.get_mut(&old.node_id) {
                v.retain(|x| x.id != old.id);
            }
            if let Some(v) = self.by_job.get_mut(&(old.namespace.clone(), old.job_id.clone())) {
                v.retain(|x| x.id != old.id);
            }
        }
        self.by_node.entry(a.node_id.clone()).or_default().push(a.clone());
        self.by_job
            .entry((a.namespace.clone(), a.job_id.clone()))
            .or_default()
            .push(a);
    }

    /// Adds or replaces a deployment.
    pub fn upsert_deployment(&mut self, d: Deployment) {
        self.bump();
        self.deployments.insert(d.id.clone(), Arc::new(d));
    }

    /// Adds or replaces an evaluation.
    pub fn upsert_eval(&mut self, e: Evaluation) {
        self.bump();
        self.evals.insert(e.id.clone(), Arc::new(e));
    }

    /// Replaces the scheduler configuration.
    pub fn set_scheduler_config(&mut self, c: SchedulerConfiguration) {
        self.bump();
        self.config = c;
    }

    /// Applies a plan without checking it (what a fully committed plan does), returning the
    /// committed result.
    pub fn apply_plan(&mut self, plan: &Plan) -> PlanResult {
        let idx = self.bump();
        for allocs in plan.node_update.values() {
            for stop in allocs {
                let mut a = self
                    .allocs
                    .get(&stop.id)
                    .map(|a| (**a).clone())
                    .unwrap_or_else(|| stop.clone());
                a.desired_status = desired_status::STOP.into();
                a.desired_description = stop.desired_description.clone();
                if !stop.client_status.is_empty() {
                    a.client_status = stop.client_status.clone();
                }
                if !stop.followup_eval_id.is_empty() {
                    a.followup_eval_id = stop.followup_eval_id.clone();
                }
                a.modify_index = idx;
                self.put_alloc(Arc::new(a));
            }
        }
        for allocs in plan.node_preemptions.values() {
            for p in allocs {
                if let Some(cur) = self.allocs.get(&p.id) {
                    let mut a = (**cur).clone();
                    a.desired_status = desired_status::EVICT.into();
                    a.desired_description = p.desired_description.clone();
                    a.preempted_by_allocation = p.preempted_by_allocation.clone();
                    a.modify_index = idx;
                    self.put_alloc(Arc::new(a));
                }
            }
        }
        for allocs in plan.node_allocation.values() {
            for a in allocs {
                let mut a = a.clone();
                if a.job.is_none() {
                    a.job = plan.job.clone();
                }
                if let Some(prev) = self.allocs.get(&a.id) {
                    a.create_index = prev.create_index;
                } else {
                    a.create_index = idx;
                }
                a.modify_index = idx;
                a.alloc_modify_index = idx;
                if !a.previous_allocation.is_empty()
                    && let Some(prev) = self.allocs.get(&a.previous_allocation)
                {
                    let mut p = (**prev).clone();
                    p.next_allocation = a.id.clone();
                    p.modify_index = idx;
                    self.put_alloc(Arc::new(p));
                }
                self.put_alloc(Arc::new(a));
            }
        }
        if let Some(d) = &plan.deployment {
            let mut d = d.clone();
            d.modify_index = idx;
            if d.create_index == 0 {
                d.create_index = idx;
            }
            self.deployments.insert(d.id.clone(), Arc::new(d));
        }
        for u in &plan.deployment_updates {
            if let Some(d) = self.deployments.get(&u.deployment_id) {
                let mut d = (**d).clone();
                d.status = u.status.clone();
                d.status_description = u.status_description.clone();
                d.modify_index = idx;
                self.deployments.insert(d.id.clone(), Arc::new(d));
            }
        }
        PlanResult {
            node_update: plan.node_update.clone(),
            node_allocation: plan.node_allocation.clone(),
            node_preemptions: plan.node_preemptions.clone(),
            deployment: plan.deployment.clone(),
            deployment_updates: plan.deployment_updates.clone(),
            alloc_index: idx,
            ..Default::default()
        }
    }
}

impl State for MemState {
    fn latest_index(&self) -> u64 {
        self.index
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.values().cloned().collect()
    }
    fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.by_job
            .get(&(namespace.to_string(), job_id.to_string()))
            .cloned()
            .unwrap_or_default()
    }
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.by_node.get(node_id).cloned().unwrap_or_default()
    }
    fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).cloned()
    }
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&(namespace.to_string(), id.to_string())).cloned()
    }
    fn job_by_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>> {
        self.job_versions
            .get(&(namespace.to_string(), id.to_string(), version))
            .cloned()
    }
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .values()
            .filter(|d| d.namespace == namespace && d.job_id == job_id)
            .max_by_key(|d| d.create_index)
            .cloned()
    }
    fn scheduler_config(&self) -> SchedulerConfiguration {
        self.config.clone()
    }
    fn candidates(&self) -> Arc<CandidateIndex> {
        self.candidates
            .get_or_init(|| Arc::new(CandidateIndex::build(self.nodes.values().cloned())))
            .clone()
    }
    fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.values().cloned().collect()
    }
    fn evals(&self) -> Vec<Arc<Evaluation>> {
        self.evals.values().cloned().collect()
    }
    fn allocs(&self) -> Vec<Arc<Allocation>> {
        let mut v: Vec<_> = self.allocs.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        self.deployments.values().cloned().collect()
    }
}

/// How the harness commits submitted plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commit {
    /// Apply everything (Nomad's harness).
    #[default]
    All,
    /// Re-check every node with the shared fit check and commit only the nodes that fit; a
    /// partial commit returns a RefreshIndex (what the plan applier does).
    Verify,
    /// Commit nothing and ask for a refresh (forces the scheduler's retry path).
    Reject,
}

/// Records what a scheduler asked for and applies its plans to a [`MemState`].
#[derive(Debug, Clone, Default)]
pub struct Harness {
    /// The state plans are applied to.
    pub state: MemState,
    /// How plans are committed.
    pub commit: Commit,
    /// Every plan submitted, in order.
    pub plans: Vec<Plan>,
    /// Every evaluation update, in order.
    pub evals: Vec<Evaluation>,
    /// Evaluations created (follow-ups, blocked).
    pub create_evals: Vec<Evaluation>,
    /// Evaluations re-blocked.
    pub reblock_evals: Vec<Evaluation>,
}

impl Harness {
    /// A harness over a state.
    pub fn new(state: MemState) -> Self {
        Harness {
            state,
            ..Default::default()
        }
    }

    /// The last evaluation update (the final status of a processed eval).
    pub fn last_eval(&self) -> Option<&Evaluation> {
        self.evals.last()
    }

    fn verify(&mut self, plan: &Plan) -> (Plan, Vec<String>) {
        let mut accepted = plan.clone();
        let mut rejected = Vec::new();
        for (node_id, placements) in &plan.node_allocation {
            let Some(node) = self.state.node(node_id) else {
                rejected.push(node_id.clone());
                continue;
            };
            let stops: Vec<&str> = plan
                .node_update
                .get(node_id)
                .into_iter()
                .flatten()
                .chain(plan.node_preemptions.get(node_id).into_iter().flatten())
                .map(|a| a.id.as_str())
                .collect();
            let existing = self.state.allocs_by_node(node_id);
            let mut proposed: Vec<&Allocation> = existing
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| {
                    !a.terminal()
                        && !stops.contains(&a.id.as_str())
                        && !placements.iter().any(|p| p.id == a.id)
                })
                .collect();
            proposed.extend(placements.iter());
            let fits = node.ready() || placements.iter().all(|p| existing.iter().any(|e| e.id == p.id));
            if !fits || crate::fit::allocs_fit(&node, &proposed, true).is_err() {
                rejected.push(node_id.clone());
            }
        }
        for n in &rejected {
            accepted.node_allocation.shift_remove(n);
            accepted.node_update.shift_remove(n);
            accepted.node_preemptions.shift_remove(n);
        }
        if plan.all_at_once && !rejected.is_empty() {
            accepted.node_allocation.clear();
            accepted.node_update.clear();
            accepted.node_preemptions.clear();
        }
        (accepted, rejected)
    }
}

impl Planner for Harness {
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError> {
        self.plans.push(plan.clone());
        match self.commit {
            Commit::All => {
                let result = self.state.apply_plan(&plan);
                Ok(Submitted {
                    result,
                    refreshed: None,
                })
            }
            Commit::Reject => {
                let result = PlanResult {
                    refresh_index: self.state.latest_index(),
                    ..Default::default()
                };
                Ok(Submitted {
                    result,
                    refreshed: Some(Arc::new(self.state.clone())),
                })
            }
            Commit::Verify => {
                let (accepted, rejected) = self.verify(&plan);
                let mut result = self.state.apply_plan(&accepted);
                if !rejected.is_empty() {
                    result.rejected_nodes = rejected;
                    result.refresh_index = self.state.latest_index();
                    return Ok(Submitted {
                        result,
                        refreshed: Some(Arc::new(self.state.clone())),
                    });
                }
                Ok(Submitted {
                    result,
                    refreshed: None,
                })
            }
        }
    }

    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.state.upsert_eval(eval.clone());
        self.evals.push(eval);
        Ok(())
    }

    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.state.upsert_eval(eval.clone());
        self.create_evals.push(eval);
        Ok(())
    }

    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.state.upsert_eval(eval.clone());
        self.reblock_evals.push(eval);
        Ok(())
    }
}

/// Is this deployment still in progress?
pub fn deployment_active(d: &Deployment) -> bool {
    matches!(
        d.status.as_str(),
        deployment_status::RUNNING
            | deployment_status::PAUSED
            | "pending"
            | "initializing"
            | "blocked"
            | "unblocking"
    )
}
