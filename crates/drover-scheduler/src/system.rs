//! The system and sysbatch schedulers: one allocation of every group on every eligible node.
//!
//! ```text
//!  process(eval)
//!    └─ passes (system 5, sysbatch 2; a pass that committed something resets the count):
//!         eligible nodes (ready, datacenter, pool), not-ready nodes, tainted nodes
//!           ──▶ node reconciler: per node and group — place, update, stop, lost, ignore
//!         updates: in place when the node still fits, else stop + place on the same node,
//!           at most the group's update.max_parallel per evaluation; the rest wait
//!         placements: the stack ranks exactly that node; constraint misses are skipped
//!           silently (the node is simply not for this job), exhaustion is a failure
//!         ──▶ Plan ──▶ submit ──▶ partly rejected? another pass on the refreshed state
//!    └─ after the last pass:
//!         allocations marked unknown (any pass) ─▶ one `max-disconnect-timeout` eval per
//!                            distinct lost_after deadline
//!         and from what the last pass saw:
//!         exhausted nodes ─▶ ONE blocked eval (node = first exhausted node)
//!                            (or, if this eval is itself a blocked one: re-block it)
//!         deferred updates ─▶ ONE `rolling-update` eval, Wait = the group's update.stagger
//!         eval ─▶ complete | failed, FailedTGAllocs, QueuedAllocations, annotations,
//!                 BlockedEval, NextEval
//! ```
//!
//! # Vocabulary
//! - **pass**: one reconcile → plan → submit round on one state snapshot. A plan the applier
//!   only partly committed comes back with a fresher state and the scheduler plans again.
//! - **exhausted**: the node passed every constraint but has no room (even after preempting
//!   what it may). That is a failure worth waiting for: a blocked eval wakes up when capacity
//!   changes. A node that fails a *constraint* is not a failure: it is not for this job.
//! - **budget**: per group, the number of destructive updates (stop + place on the same node)
//!   one evaluation may make: the group's `update.max_parallel` (canonicalisation merges the
//!   job's block into the group's; 0 or no block = unlimited). A destructive update that fails
//!   because the node is exhausted keeps the old allocation running and does not spend budget,
//!   so a node that cannot take the new version does not hold the rollout back.
//! - **deferred**: destructive updates beyond the budget; they are counted as `Ignore` in the
//!   annotations and left for the `rolling-update` follow-up evaluation, which runs after
//!   the group's `update.stagger` (default 30 s) and takes the next batch.
//!
//! # Guarantees
//! - One evaluation creates at most one blocked eval and at most one rolling-update eval, however
//!   many passes it takes; both describe the last pass (the state the scheduler saw last), and
//!   the final eval update names them (`BlockedEval`, `NextEval`) and carries the last pass's
//!   `FailedTGAllocs`, `QueuedAllocations` (every group of a running job, 0 when nothing waits)
//!   and annotations.
//! - A blocked eval that is processed again and still cannot place is re-blocked (same ID,
//!   fresh class eligibility), never duplicated.
//! - Annotations count what this evaluation does: `DestructiveUpdate` = updates attempted now,
//!   `Ignore` includes the deferred ones; `Place` excludes nodes filtered by constraints.
//!
//! # Limitations (relative to Nomad)
//! - No system deployments (Nomad 1.11): no deployment object, no health-gated batches, and
//!   `update.canary` is ignored (canaries are ordinary destructive updates). The next batch
//!   is paced by `stagger`, as Nomad's system scheduler did before deployments.
//! - Nomad's system scheduler counts every destructive update as `DestructiveUpdate` (its
//!   annotations are computed before `max_parallel` applies); we count the deferred ones as
//!   `Ignore`, as Nomad's generic scheduler does, so the counts add up to the plan.
//! - Nomad creates a blocked eval per failing group per pass and does not name it on the
//!   evaluation; the blocked-evals tracker then keeps one per job.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use drover_types::alloc::AllocMetric;
use drover_types::eval::{PlanAnnotations, eval_status};
use drover_types::job::{TaskGroup, UpdateStrategy};
use drover_types::time::{Nanos, SECOND};
use drover_types::{Allocation, Evaluation, Job, Plan};

use crate::Env;
use crate::reconcile::{self, UpdateType};
use crate::reconcile_node::{NodeReconcileInput, reconcile_nodes};
use crate::rng::Rng;
use crate::stack::{SelectOptions, Stack};
use crate::state::{Planner, SchedulerError, State};
use crate::util;

const SYSTEM_TRIGGERS: &[&str] = &[
    "job-register",
    "node-update",
    "failed-follow-up",
    "job-deregister",
    "rolling-update",
    "preemption",
    "deployment-watcher",
    "node-drain",
    "alloc-stop",
    "queued-allocs",
    "job-scaling",
    "reconnect",
    "max-disconnect-timeout",
];

/// The trigger of the follow-up evaluation that continues a rolling update.
pub const TRIGGER_ROLLING_UPDATE: &str = "rolling-update";

/// Nomad's default `update.stagger`: the pause between two batches of a system job's update.
pub const DEFAULT_STAGGER: Nanos = 30 * SECOND;

/// The trigger of the blocked evaluation created for exhausted nodes.
const TRIGGER_QUEUED_ALLOCS: &str = "queued-allocs";

/// Description of the blocked evaluation created for exhausted nodes.
const BLOCKED_DESCRIPTION: &str = "created to place remaining allocations";

/// Runs the system (`sysbatch = false`) or sysbatch scheduler for one evaluation.
pub fn process(
    state: Arc<dyn State + Send + Sync>,
    planner: &mut dyn Planner,
    eval: &Evaluation,
    sysbatch: bool,
    env: &mut Env<'_>,
) -> Result<(), SchedulerError> {
    let trigger_ok = SYSTEM_TRIGGERS.contains(&eval.triggered_by.as_str())
        || (sysbatch && eval.triggered_by == "periodic-job");
    if !trigger_ok {
        return util::fail_unknown_trigger(planner, eval);
    }
    let limit: u32 = if sysbatch { 2 } else { 5 };
    let mut state = state;
    let mut attempts = 0;
    let mut done = false;
    let mut last: Option<PassOutcome> = None;
    // Disconnect deadlines whose follow-up evaluation exists: each pass creates the ones its
    // plan needs before submitting it (a plan that commits while its submitter fails leaves
    // allocations `unknown` that a redelivered evaluation no longer sees as new).
    let mut deadlines_followed: BTreeSet<i64> = BTreeSet::new();
    while attempts < limit {
        let mut outcome = pass(
            state.clone(),
            planner,
            eval,
            sysbatch,
            env,
            &mut deadlines_followed,
        )?;
        let refreshed = outcome.refreshed.take();
        let finished = refreshed.is_none() && outcome.full_commit;
        if outcome.progress {
            attempts = 0;
        } else {
            attempts += 1;
        }
        if let Some(fresh) = refreshed {
            state = fresh;
        }
        last = Some(outcome);
        if finished {
            done = true;
            break;
        }
    }
    let Some(last) = last else {
        // `limit` is at least 1, so at least one pass ran.
        return Err(SchedulerError::Planner("no scheduling pass ran".into()));
    };
    finish(planner, eval, env, state.as_ref(), last, done, limit)
}

/// Writes what the last pass left: the rolling-update follow-up, the blocked eval (or the
/// re-block of this one), and the evaluation's final status.
fn finish(
    planner: &mut dyn Planner,
    eval: &Evaluation,
    env: &mut Env<'_>,
    state: &dyn State,
    last: PassOutcome,
    done: bool,
    limit: u32,
) -> Result<(), SchedulerError> {
    let job_modify_index = last.job_modify_index.unwrap_or(eval.job_modify_index);
    let mut next_eval = String::new();
    if let Some(wait) = last.rolling_wait {
        let follow = Evaluation {
            job_modify_index,
            wait,
            ..util::next_eval(
                eval,
                (env.ids)(),
                env.now,
                TRIGGER_ROLLING_UPDATE,
                eval_status::PENDING,
                "",
            )
        };
        next_eval = follow.id.clone();
        planner.create_eval(follow)?;
    }

    if let Some(node_id) = &last.exhausted_node
        && done
        && eval.status == eval_status::BLOCKED
    {
        // Still blocked: put this evaluation back with what it learned, rather than leave a
        // second blocked eval for the same work.
        let mut re = eval.clone();
        re.node_id = node_id.clone();
        re.class_eligibility = last.class_eligibility;
        re.escaped_computed_class = last.escaped;
        re.failed_tg_allocs = last.failed;
        re.queued_allocations = last.queued;
        re.plan_annotations = Some(last.annotations);
        re.modify_time = env.now;
        re.snapshot_index = state.latest_index();
        if !next_eval.is_empty() {
            re.next_eval = next_eval;
        }
        return planner.reblock_eval(re);
    }

    let mut e = eval.clone();
    e.modify_time = env.now;
    e.snapshot_index = state.latest_index();
    if let Some(node_id) = last.exhausted_node {
        let blocked = Evaluation {
            job_modify_index,
            node_id,
            class_eligibility: last.class_eligibility.clone(),
            escaped_computed_class: last.escaped,
            failed_tg_allocs: last.failed.clone(),
            ..util::next_eval(
                eval,
                (env.ids)(),
                env.now,
                TRIGGER_QUEUED_ALLOCS,
                eval_status::BLOCKED,
                BLOCKED_DESCRIPTION,
            )
        };
        e.blocked_eval = blocked.id.clone();
        planner.create_eval(blocked)?;
    }
    if !next_eval.is_empty() {
        e.next_eval = next_eval;
    }
    if done {
        e.status = eval_status::COMPLETE.into();
        e.status_description = String::new();
    } else {
        e.status = eval_status::FAILED.into();
        e.status_description = format!("maximum attempts reached ({limit})");
    }
    e.failed_tg_allocs = last.failed;
    e.queued_allocations = last.queued;
    e.plan_annotations = Some(last.annotations);
    planner.update_eval(e)
}

/// What one pass saw and did.
struct PassOutcome {
    annotations: PlanAnnotations,
    /// Group → why its placements failed (exhaustion, or every node filtered).
    failed: BTreeMap<String, AllocMetric>,
    /// Group → placements still waiting after this pass (0 for every group of a running job).
    queued: BTreeMap<String, i64>,
    /// The first node (in node ID order) where a placement found no room.
    exhausted_node: Option<String>,
    class_eligibility: BTreeMap<String, bool>,
    escaped: bool,
    /// `Wait` for the rolling-update follow-up: set when destructive updates were deferred.
    rolling_wait: Option<Nanos>,
    /// The job's modify index (None when purged).
    job_modify_index: Option<u64>,
    /// Set when the plan was partly rejected: plan again on this state.
    refreshed: Option<Arc<dyn State + Send + Sync>>,
    /// The plan result changed something (resets the attempt count).
    progress: bool,
    /// Every placement of the plan was committed (or nothing was submitted).
    full_commit: bool,
}

/// How many destructive updates of `tg` one evaluation may make (`None` = all), and how long
/// the next batch waits: the group's `max_parallel`, else the job's, else no limit (§9).
fn update_budget(job: &Job, tg: &TaskGroup) -> Option<(i64, Nanos)> {
    let limited = |u: &Option<UpdateStrategy>| {
        u.as_ref()
            .filter(|u| u.max_parallel() > 0)
            .map(|u| (u.max_parallel(), u.stagger.unwrap_or(DEFAULT_STAGGER)))
    };
    limited(&tg.update).or_else(|| limited(&job.update))
}

fn pass(
    state: Arc<dyn State + Send + Sync>,
    planner: &mut dyn Planner,
    eval: &Evaluation,
    sysbatch: bool,
    env: &mut Env<'_>,
    deadlines_followed: &mut BTreeSet<i64>,
) -> Result<PassOutcome, SchedulerError> {
    let job = state.job(&eval.namespace, &eval.job_id);
    let config = state.scheduler_config();
    let mut plan = Plan {
        eval_id: eval.id.clone(),
        priority: eval.priority,
        job: job.clone(),
        snapshot_index: state.latest_index(),
        ..Default::default()
    };
    let stack_job = job.clone().unwrap_or_else(|| {
        Arc::new(Job {
            id: eval.job_id.clone(),
            ..Default::default()
        })
    });
    let allocs = state.allocs_by_job(&eval.namespace, &eval.job_id);
    let tainted = reconcile::tainted_nodes(&allocs, &|id| state.node(id));
    let ready = util::ready_nodes(state.as_ref(), &stack_job);
    let (by_dc, in_pool) = (ready.by_dc.clone(), ready.in_pool);
    let not_ready: BTreeSet<String> = state
        .nodes()
        .into_iter()
        .filter(|n| {
            !n.ready()
                && !n.terminal()
                && crate::feasible::datacenter_matches(&stack_job.datacenters, &n.datacenter)
                && crate::feasible::node_pool_matches(&stack_job.node_pool, &n.node_pool)
        })
        .map(|n| n.id.clone())
        .collect();

    let mut stack = Stack::new(
        stack_job.clone(),
        &config,
        false,
        Rng::for_eval(&eval.id, state.latest_index()),
    );
    stack.set_index(ready.index.clone());
    let mut inplace_stack = Stack::new(
        stack_job.clone(),
        &config,
        false,
        Rng::for_eval(&eval.id, state.latest_index()),
    );
    let update_job = stack_job.clone();
    let mut update_fn = |existing: &Allocation, _new_job: &Job, tg: &TaskGroup| -> UpdateType {
        util::update_type(state.as_ref(), &mut inplace_stack, &update_job, existing, tg)
    };
    let running_job = job.clone().filter(|j| !j.stop);
    let results = reconcile_nodes(NodeReconcileInput {
        job: running_job.clone(),
        job_id: eval.job_id.clone(),
        namespace: eval.namespace.clone(),
        sysbatch,
        eligible_nodes: ready.nodes().cloned().collect(),
        not_ready_nodes: not_ready,
        tainted,
        existing: allocs,
        now: env.now,
        eval_id: eval.id.clone(),
        update_fn: &mut update_fn,
    });
    for s in results.stop.iter().chain(results.lost.iter()) {
        util::plan_stop(
            &mut plan,
            &s.alloc,
            &s.description,
            s.client_status.as_deref(),
            s.followup_eval_id.as_deref(),
        );
    }
    for a in &results.inplace_update {
        let mut a = a.clone();
        a.modify_time = env.now;
        util::plan_alloc(&mut plan, a);
    }
    let mut desired = results.desired_tg_updates.clone();
    let mut failed: BTreeMap<String, AllocMetric> = BTreeMap::new();
    let mut queued: BTreeMap<String, i64> = BTreeMap::new();
    let mut exhausted_node: Option<String> = None;
    let mut rolling_wait: Option<Nanos> = None;
    let mut new_ids: HashSet<String> = HashSet::new();
    if let Some(job) = running_job.as_ref() {
        for tg in &job.task_groups {
            queued.entry(tg.name.clone()).or_insert(0);
        }
        // Destructive updates first (they free what they replace), each group within its
        // max_parallel budget; then placements on nodes that have none.
        let mut spent: BTreeMap<String, i64> = BTreeMap::new();
        let work = results
            .destructive_update
            .iter()
            .map(|p| (p, true))
            .chain(results.place.iter().map(|p| (p, false)));
        let preempt = config.preemption_enabled(&job.job_type);
        let mut placed_groups: HashSet<String> = HashSet::new();
        let mut filtered: BTreeMap<String, AllocMetric> = BTreeMap::new();
        for (p, destructive) in work {
            let Some(tg) = job.group(&p.task_group) else {
                continue;
            };
            let Some(node) = state.node(&p.node_id) else {
                continue;
            };
            if destructive
                && let Some((max_parallel, stagger)) = update_budget(job, tg)
                && spent.get(&tg.name).copied().unwrap_or(0) >= max_parallel
            {
                // Over budget: left running for the rolling-update follow-up.
                let d = desired.entry(tg.name.clone()).or_default();
                d.destructive_update = d.destructive_update.saturating_sub(1);
                d.ignore += 1;
                rolling_wait = Some(rolling_wait.map_or(stagger, |w| w.max(stagger)));
                continue;
            }
            *queued.entry(tg.name.clone()).or_default() += 1;
            if destructive && let Some(prev) = &p.previous_alloc {
                util::plan_stop(&mut plan, prev, reconcile::desc::ALLOC_UPDATING, None, None);
            }
            let opts = SelectOptions {
                preempt,
                alloc_name: if tg.volumes.is_empty() {
                    String::new()
                } else {
                    p.name.clone()
                },
                ..Default::default()
            };
            let (option, mut metrics) = stack.select_on(state.as_ref(), &plan, tg, node.clone(), &opts);
            metrics.nodes_in_pool = in_pool;
            metrics.node_pool = job.node_pool.clone();
            metrics.nodes_available = by_dc.clone();
            let Some(mut option) = option else {
                // Filtered by constraints: this node is no longer for this job. Not a failure
                // on its own, and an old version running here is still stopped (which is a
                // change: it spends budget).
                if metrics.nodes_exhausted == 0 {
                    if let Some(q) = queued.get_mut(&tg.name) {
                        *q -= 1;
                    }
                    if destructive {
                        *spent.entry(tg.name.clone()).or_default() += 1;
                    } else if let Some(d) = desired.get_mut(&tg.name) {
                        d.place = d.place.saturating_sub(1);
                    }
                    filtered.entry(tg.name.clone()).or_insert(metrics);
                    continue;
                }
                // Exhausted: keep the old version running rather than leave the node empty.
                if destructive && let Some(prev) = &p.previous_alloc {
                    util::plan_unstop(&mut plan, &prev.node_id, &prev.id);
                }
                exhausted_node.get_or_insert_with(|| node.id.clone());
                match failed.get_mut(&tg.name) {
                    Some(m) => m.coalesced_failures += 1,
                    None => {
                        failed.insert(tg.name.clone(), metrics);
                    }
                }
                continue;
            };
            if destructive {
                *spent.entry(tg.name.clone()).or_default() += 1;
            }
            placed_groups.insert(tg.name.clone());
            let id = (env.ids)();
            let mut alloc =
                util::new_alloc(id.clone(), env.now, eval, job, tg, &p.name, &mut option, metrics);
            if let Some(prev) = &p.previous_alloc {
                alloc.previous_allocation = prev.id.clone();
            }
            util::plan_preemptions(
                &mut plan,
                &mut alloc,
                &option.preempted,
                desired.entry(tg.name.clone()).or_default(),
            );
            stack.record_placement(&option, tg);
            new_ids.insert(id);
            util::plan_alloc(&mut plan, alloc);
        }
        // A group that every node filtered out, with nothing placed and nothing left running,
        // is reported: otherwise a typo in a constraint would look like success.
        let stopping: HashSet<&str> = plan
            .node_update
            .values()
            .flatten()
            .map(|a| a.id.as_str())
            .collect();
        for (group, metrics) in filtered {
            if placed_groups.contains(&group) || failed.contains_key(&group) {
                continue;
            }
            let running = state
                .allocs_by_job(&job.namespace, &job.id)
                .iter()
                .any(|a| a.task_group == group && !a.terminal() && !stopping.contains(a.id.as_str()));
            if !running {
                failed.insert(group, metrics);
            }
        }
    }
    let annotations = PlanAnnotations {
        desired_tg_updates: desired,
        preempted_allocs: plan
            .node_preemptions
            .values()
            .flatten()
            .map(|a| a.stub(false, false))
            .collect(),
    };
    let mut outcome = PassOutcome {
        annotations,
        failed,
        queued,
        exhausted_node,
        class_eligibility: stack.class_eligibility.clone(),
        escaped: stack.escaped,
        rolling_wait,
        job_modify_index: job.as_ref().map(|j| j.job_modify_index),
        refreshed: None,
        progress: false,
        full_commit: true,
    };
    if eval.annotate_plan {
        plan.annotations = Some(outcome.annotations.clone());
    }
    // Allocations this plan marks unknown on a disconnected node: one follow-up eval per
    // distinct `lost_after` deadline (per evaluation), so they become lost (and replaced) on
    // time — created before the plan is submitted, so that a committed plan always has them.
    for &at in results.disconnect_timeouts.values() {
        if !deadlines_followed.insert(at) {
            continue;
        }
        let mut follow = util::next_eval(
            eval,
            (env.ids)(),
            env.now,
            reconcile::trigger::MAX_DISCONNECT_TIMEOUT,
            eval_status::PENDING,
            "created for delayed disconnect timeout",
        );
        follow.wait_until = Some(drover_types::time::Timestamp(at));
        planner.create_eval(follow)?;
    }
    if plan.is_no_op() && !eval.annotate_plan {
        return Ok(outcome);
    }
    let expected: Vec<(String, usize)> = plan
        .node_allocation
        .iter()
        .map(|(n, v)| (n.clone(), v.len()))
        .collect();
    let submitted = planner.submit_plan(plan)?;
    let result = &submitted.result;
    outcome.progress = !result.node_update.is_empty()
        || !result.node_allocation.is_empty()
        || result.deployment.is_some()
        || !result.deployment_updates.is_empty();
    outcome.full_commit = expected
        .iter()
        .all(|(n, len)| result.node_allocation.get(n).map(Vec::len) == Some(*len));
    // Queued: placements that became new allocations are no longer queued.
    for a in result.node_allocation.values().flatten() {
        if new_ids.contains(&a.id)
            && let Some(q) = outcome.queued.get_mut(&a.task_group)
        {
            *q = (*q - 1).max(0);
        }
    }
    outcome.refreshed = submitted.refreshed;
    Ok(outcome)
}
