//! The generic scheduler: service and batch jobs.
//!
//! ```text
//!  process(eval)
//!    └─ up to 5 (service) / 2 (batch) passes, each on the freshest state:
//!         job, deployment, allocs ──▶ reconcile (what to stop, keep, update, place)
//!           in-place updates checked on their node; destructive ones and placements go
//!           through the stack (feasibility → fit → scores), preemption as a second try
//!         ──▶ Plan ──▶ Planner::submit_plan ──▶ refreshed state? another pass : done
//!    └─ failed placements → FailedTGAllocs + a blocked eval (with class eligibility)
//!    └─ eval updated: complete (or failed after too many attempts), annotations, queued counts
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use drover_types::alloc::{AllocDeploymentStatus, AllocMetric, RescheduleEvent, RescheduleTracker};
use drover_types::eval::{DesiredUpdates, PlanAnnotations, eval_status};
use drover_types::job::TaskGroup;
use drover_types::{Allocation, Evaluation, Job, Plan};

use crate::Env;
use crate::reconcile::{self, PlacementRequest, ReconcileInput, UpdateType};
use crate::rng::Rng;
use crate::stack::{SelectOptions, Stack};
use crate::state::{Planner, SchedulerError, State};
use crate::util;

/// Triggers the generic scheduler accepts (everything but `scheduled`).
const TRIGGERS: &[&str] = &[
    "job-register",
    "job-deregister",
    "periodic-job",
    "node-drain",
    "node-update",
    "alloc-stop",
    "rolling-update",
    "deployment-watcher",
    "failed-follow-up",
    "max-plan-attempts",
    "alloc-failure",
    "queued-allocs",
    "preemption",
    "job-scaling",
    "max-disconnect-timeout",
    "reconnect",
    "alloc-reschedule",
];

/// Runs the generic scheduler for one evaluation.
pub fn process(
    state: Arc<dyn State + Send + Sync>,
    planner: &mut dyn Planner,
    eval: &Evaluation,
    batch: bool,
    env: &mut Env<'_>,
) -> Result<(), SchedulerError> {
    if !TRIGGERS.contains(&eval.triggered_by.as_str()) {
        return util::fail_unknown_trigger(planner, eval);
    }
    let limit = if batch { 2 } else { 5 };
    let mut run = Run {
        eval,
        batch,
        state,
        failed: BTreeMap::new(),
        queued: BTreeMap::new(),
        blocked: None,
        followups: Vec::new(),
        annotations: None,
        deployment_id: String::new(),
        class_eligibility: BTreeMap::new(),
        escaped: false,
    };
    let mut attempts = 0;
    let mut done = false;
    while attempts < limit {
        let (finished, progress) = run.pass(planner, env)?;
        if finished {
            done = true;
            break;
        }
        if progress {
            attempts = 0;
        } else {
            attempts += 1;
        }
    }
    let mut final_eval = eval.clone();
    final_eval.modify_time = env.now;
    final_eval.snapshot_index = run.state.latest_index();
    if !done {
        // Too many rejected plans: leave a blocked eval so the work is not lost.
        let blocked = run.new_eval(
            env,
            "max-plan-attempts",
            eval_status::BLOCKED,
            "created due to placement conflicts",
        );
        planner.create_eval(blocked.clone())?;
        final_eval.status = eval_status::FAILED.into();
        final_eval.status_description = format!("maximum attempts reached ({limit})");
        final_eval.blocked_eval = blocked.id;
        return planner.update_eval(final_eval);
    }
    if eval.status == eval_status::BLOCKED && !run.failed.is_empty() {
        let mut re = eval.clone();
        re.class_eligibility = run.class_eligibility.clone();
        re.escaped_computed_class = run.escaped;
        re.queued_allocations = run.queued.clone();
        re.failed_tg_allocs = run.failed.clone();
        return planner.reblock_eval(re);
    }
    final_eval.status = eval_status::COMPLETE.into();
    final_eval.status_description = String::new();
    final_eval.failed_tg_allocs = run.failed;
    final_eval.queued_allocations = run.queued;
    final_eval.plan_annotations = run.annotations;
    final_eval.deployment_id = run.deployment_id;
    if let Some(b) = run.blocked {
        final_eval.blocked_eval = b;
    }
    if let Some(last) = run.followups.last() {
        final_eval.next_eval = last.clone();
    }
    planner.update_eval(final_eval)
}

struct Run<'e> {
    eval: &'e Evaluation,
    batch: bool,
    state: Arc<dyn State + Send + Sync>,
    failed: BTreeMap<String, AllocMetric>,
    queued: BTreeMap<String, i64>,
    blocked: Option<String>,
    followups: Vec<String>,
    annotations: Option<PlanAnnotations>,
    deployment_id: String,
    class_eligibility: BTreeMap<String, bool>,
    escaped: bool,
}

impl Run<'_> {
    fn new_eval(&self, env: &mut Env<'_>, trigger: &str, status: &str, description: &str) -> Evaluation {
        let job = self.state.job(&self.eval.namespace, &self.eval.job_id);
        Evaluation {
            job_modify_index: job
                .map(|j| j.job_modify_index)
                .unwrap_or(self.eval.job_modify_index),
            class_eligibility: self.class_eligibility.clone(),
            escaped_computed_class: self.escaped,
            ..util::next_eval(self.eval, (env.ids)(), env.now, trigger, status, description)
        }
    }

    /// One pass. Returns (done, progress made).
    fn pass(&mut self, planner: &mut dyn Planner, env: &mut Env<'_>) -> Result<(bool, bool), SchedulerError> {
        let state = self.state.clone();
        let eval = self.eval;
        let job = state.job(&eval.namespace, &eval.job_id);
        let config = state.scheduler_config();
        let mut plan = Plan {
            eval_id: eval.id.clone(),
            priority: eval.priority,
            all_at_once: job.as_ref().is_some_and(|j| j.all_at_once),
            job: job.clone(),
            snapshot_index: state.latest_index(),
            ..Default::default()
        };
        let deployment = if self.batch {
            None
        } else {
            state
                .latest_deployment(&eval.namespace, &eval.job_id)
                .map(|d| (*d).clone())
        };
        let allocs = state.allocs_by_job(&eval.namespace, &eval.job_id);
        let tainted = reconcile::tainted_nodes(&allocs, &|id| state.node(id));

        let stack_job = job.clone().unwrap_or_else(|| {
            Arc::new(Job {
                id: eval.job_id.clone(),
                ..Default::default()
            })
        });
        let mut stack = Stack::new(
            stack_job.clone(),
            &config,
            self.batch,
            Rng::for_eval(&eval.id, state.latest_index()),
        );
        let ready = util::ready_nodes(state.as_ref(), &stack_job);
        let (by_dc, in_pool) = (ready.by_dc.clone(), ready.in_pool);
        let index = ready.index.clone();
        stack.set_nodes(ready.index, ready.positions, true);

        // In-place vs destructive, checked on the allocation's own node (§7.4).
        let mut inplace_stack = Stack::new(
            stack_job.clone(),
            &config,
            self.batch,
            Rng::for_eval(&eval.id, state.latest_index()),
        );
        inplace_stack.set_index(index);
        let update_job = stack_job.clone();
        let mut update_fn = |existing: &Allocation, _new_job: &Job, tg: &TaskGroup| -> UpdateType {
            util::update_type(state.as_ref(), &mut inplace_stack, &update_job, existing, tg)
        };
        let mut ids = || (env.ids)();
        let results = reconcile::reconcile(ReconcileInput {
            job: job.clone().filter(|j| !j.stop),
            job_id: eval.job_id.clone(),
            namespace: eval.namespace.clone(),
            batch: self.batch,
            eval_id: eval.id.clone(),
            eval_priority: eval.priority,
            deployment: deployment.clone(),
            existing: allocs.clone(),
            tainted,
            now: env.now,
            update_fn: &mut update_fn,
            id_gen: &mut ids,
        });

        plan.deployment = results.deployment.clone();
        plan.deployment_updates = results.deployment_updates.clone();
        let deployment_id = results
            .deployment
            .as_ref()
            .map(|d| d.id.clone())
            .or_else(|| {
                deployment
                    .as_ref()
                    .filter(|d| crate::harness::deployment_active(d))
                    .map(|d| d.id.clone())
            })
            .unwrap_or_default();
        if !self.batch {
            self.deployment_id = deployment_id.clone();
        }
        for s in &results.stop {
            util::plan_stop(
                &mut plan,
                &s.alloc,
                &s.description,
                s.client_status.as_deref(),
                s.followup_eval_id.as_deref(),
            );
        }
        for (_, a) in results
            .disconnect_updates
            .iter()
            .chain(results.reconnect_updates.iter())
        {
            util::plan_alloc(&mut plan, a.clone());
        }
        for a in &results.inplace_update {
            let mut a = a.clone();
            if !deployment_id.is_empty() {
                a.deployment_id = deployment_id.clone();
            }
            a.modify_time = env.now;
            util::plan_alloc(&mut plan, a);
        }
        for a in results.attribute_updates.values() {
            util::plan_alloc(&mut plan, a.clone());
        }

        let mut desired = results.desired_tg_updates.clone();
        // IDs come from the evaluation's own generator: a fast hash is safe here.
        let mut new_ids: crate::util::FastMap<String, ()> = Default::default();
        if let Some(job) = job.as_ref().filter(|j| !j.stop) {
            let work: Vec<(&PlacementRequest, bool)> = results
                .destructive_update
                .iter()
                .map(|p| (p, true))
                .chain(results.place.iter().map(|p| (p, false)))
                .collect();
            let preempt_allowed = config.preemption_enabled(&job.job_type);
            let mut failed_groups: HashSet<String> = self.failed.keys().cloned().collect();
            for (p, destructive) in work {
                // While canaries of a new version wait for promotion, other placements (lost
                // or rescheduled allocations, count changes) run the version they replace —
                // or the newest stable one — not the unpromoted new version.
                let downgraded = (p.downgrade_non_canary && !p.canary)
                    .then(|| {
                        let replaced = p
                            .previous_alloc
                            .as_ref()
                            .and_then(|a| a.job.as_ref().map(|j| j.version))
                            .or_else(|| (p.min_job_version > 0).then_some(p.min_job_version));
                        downgrade_version(state.as_ref(), job, replaced)
                    })
                    .flatten();
                let place_job = downgraded.as_ref().unwrap_or(job);
                let Some(tg) = place_job.group(&p.task_group) else {
                    continue;
                };
                match self.queued.get_mut(tg.name.as_str()) {
                    Some(q) => *q += 1,
                    None => {
                        self.queued.insert(tg.name.clone(), 1);
                    }
                }
                if !failed_groups.is_empty() && failed_groups.contains(&tg.name) {
                    if let Some(m) = self.failed.get_mut(&tg.name) {
                        m.coalesced_failures += 1;
                    }
                    continue;
                }
                let mut opts = SelectOptions {
                    job: downgraded.clone(),
                    ..Default::default()
                };
                if !tg.volumes.is_empty() {
                    opts.alloc_name.clone_from(&p.name);
                }
                if let Some(prev) = &p.previous_alloc {
                    if p.reschedule {
                        opts.penalty_nodes.insert(prev.node_id.clone());
                        if let Some(t) = &prev.reschedule_tracker {
                            opts.penalty_nodes
                                .extend(t.events.iter().map(|e| e.prev_node_id.clone()));
                        }
                    }
                    let sticky = tg.ephemeral_disk.as_ref().is_some_and(|d| d.sticky || d.migrate);
                    if sticky
                        && let Some(n) = state.node(&prev.node_id)
                        && n.ready()
                        && crate::feasible::datacenter_matches(&job.datacenters, &n.datacenter)
                        && crate::feasible::node_pool_matches(&job.node_pool, &n.node_pool)
                    {
                        opts.preferred_nodes.push(n);
                    }
                    if destructive {
                        util::plan_stop(
                            &mut plan,
                            prev,
                            "alloc is being updated due to job update",
                            None,
                            None,
                        );
                    }
                }
                let (mut option, mut metrics) = stack.select(state.as_ref(), &plan, tg, &opts);
                if option.is_none() && preempt_allowed {
                    opts.preempt = true;
                    let (o, m) = stack.select(state.as_ref(), &plan, tg, &opts);
                    option = o;
                    metrics = m;
                }
                metrics.nodes_in_pool = in_pool;
                metrics.node_pool = job.node_pool.clone();
                metrics.nodes_available = by_dc.clone();
                let Some(mut option) = option else {
                    failed_groups.insert(tg.name.clone());
                    self.failed.insert(tg.name.clone(), metrics);
                    if let Some(prev) = &p.previous_alloc {
                        if destructive || p.reschedule {
                            // Keep the old allocation: the blocked eval retries the replacement.
                            util::plan_unstop(&mut plan, &prev.node_id, &prev.id);
                        }
                        if p.reschedule {
                            let mut marked = (**prev).clone();
                            let tracker = marked.reschedule_tracker.get_or_insert_with(Default::default);
                            tracker.last_reschedule = "no placement".into();
                            marked.job = None;
                            util::plan_alloc(&mut plan, marked);
                        }
                    }
                    continue;
                };
                let id = (env.ids)();
                let mut alloc = util::new_alloc(
                    id.clone(),
                    env.now,
                    eval,
                    place_job,
                    tg,
                    &p.name,
                    &mut option,
                    metrics,
                );
                if !self.batch && !deployment_id.is_empty() {
                    alloc.deployment_id = deployment_id.clone();
                }
                if p.canary {
                    alloc.deployment_status = Some(AllocDeploymentStatus {
                        canary: true,
                        ..Default::default()
                    });
                }
                if let Some(prev) = &p.previous_alloc {
                    alloc.previous_allocation = prev.id.clone();
                    if p.reschedule {
                        alloc.reschedule_tracker = Some(reschedule_tracker(prev, tg, env.now));
                    }
                }
                if !option.preempted.is_empty() {
                    util::plan_preemptions(
                        &mut plan,
                        &mut alloc,
                        &option.preempted,
                        desired.entry(tg.name.clone()).or_default(),
                    );
                }
                new_ids.insert(id, ());
                stack.record_placement(&option, tg);
                util::plan_alloc(&mut plan, alloc);
            }
            self.class_eligibility = stack.class_eligibility.clone();
            self.escaped = stack.escaped;
        }

        // A delayed eval (wait_until in the future) that schedules follow-ups does not also
        // block: the follow-ups will place the work.
        let waiting = eval.wait_until.is_some_and(|t| t.0 > env.now);
        let has_followups = results.desired_followup_evals.values().any(|v| !v.is_empty());
        // Failed placements leave a blocked eval (once per evaluation).
        if !self.failed.is_empty()
            && eval.status != eval_status::BLOCKED
            && self.blocked.is_none()
            && (!has_followups || !waiting)
        {
            let b = self.new_eval(
                env,
                "queued-allocs",
                eval_status::BLOCKED,
                "created to place remaining allocations",
            );
            self.blocked = Some(b.id.clone());
            planner.create_eval(b)?;
        }
        // Follow-up evals for delayed reschedules. Nomad skips these when the eval itself is
        // delayed; we always create them, because the plan's attribute updates point allocs at
        // these IDs and a missing eval would leave those allocs never rescheduled.
        for evals in results.desired_followup_evals.values() {
            for e in evals {
                let mut e = e.clone();
                e.previous_eval = eval.id.clone();
                self.followups.push(e.id.clone());
                planner.create_eval(e)?;
            }
        }

        let preempted_stubs = plan
            .node_preemptions
            .values()
            .flatten()
            .map(|a| a.stub(false, false))
            .collect();
        self.annotations = Some(PlanAnnotations {
            desired_tg_updates: desired.clone(),
            preempted_allocs: preempted_stubs,
        });
        if eval.annotate_plan {
            plan.annotations = self.annotations.clone();
        }
        if plan.is_no_op() && !eval.annotate_plan {
            return Ok((true, false));
        }
        // The applier commits or rejects each node's list whole, so equal totals mean that
        // every node was committed.
        let expected = (
            plan.node_allocation.len(),
            plan.node_allocation.values().map(Vec::len).sum::<usize>(),
        );
        let submitted = planner.submit_plan(plan)?;
        let progress = !submitted.result.node_update.is_empty()
            || !submitted.result.node_allocation.is_empty()
            || submitted.result.deployment.is_some()
            || !submitted.result.deployment_updates.is_empty();
        // Queued: placements that became new allocations are no longer queued.
        for a in submitted.result.node_allocation.values().flatten() {
            if new_ids.contains_key(&a.id)
                && let Some(q) = self.queued.get_mut(&a.task_group)
            {
                *q = (*q - 1).max(0);
            }
        }
        if let Some(fresh) = submitted.refreshed {
            self.state = fresh;
            self.queued.clear();
            self.failed.clear();
            return Ok((false, progress));
        }
        let committed = &submitted.result.node_allocation;
        let full = (committed.len(), committed.values().map(Vec::len).sum::<usize>()) == expected;
        if !full {
            return Err(SchedulerError::PartialCommitWithoutRefresh);
        }
        Ok((true, progress))
    }
}

fn reschedule_tracker(prev: &Allocation, tg: &TaskGroup, now: i64) -> RescheduleTracker {
    let policy = tg.reschedule_policy.clone().unwrap_or_default();
    let mut events: Vec<RescheduleEvent> = prev
        .reschedule_tracker
        .as_ref()
        .map(|t| t.events.clone())
        .unwrap_or_default();
    if policy.attempts() > 0 {
        let window = policy.interval();
        events.retain(|e| now - e.reschedule_time <= window);
    } else if events.len() > 5 {
        let skip = events.len() - 5;
        events.drain(..skip);
    }
    events.push(RescheduleEvent {
        reschedule_time: now,
        prev_alloc_id: prev.id.clone(),
        prev_node_id: prev.node_id.clone(),
        delay: reconcile::next_delay(prev, &policy, now),
    });
    RescheduleTracker {
        events,
        last_reschedule: "ok".into(),
    }
}

/// Per-group counts of desired updates (for tests and `job plan`).
pub fn annotations_of(eval: &Evaluation) -> BTreeMap<String, DesiredUpdates> {
    eval.plan_annotations
        .as_ref()
        .map(|a| a.desired_tg_updates.clone())
        .unwrap_or_default()
}

/// The job version a non-canary placement uses while canaries await promotion: the version of
/// the allocation it replaces, else the newest stable older version; `None` keeps the current
/// version (nothing older is known).
fn downgrade_version(state: &dyn State, job: &Arc<Job>, replaced: Option<u64>) -> Option<Arc<Job>> {
    if let Some(v) = replaced {
        return (v < job.version)
            .then(|| state.job_by_version(&job.namespace, &job.id, v))
            .flatten();
    }
    (0..job.version)
        .rev()
        .filter_map(|v| state.job_by_version(&job.namespace, &job.id, v))
        .find(|j| j.stable)
}
