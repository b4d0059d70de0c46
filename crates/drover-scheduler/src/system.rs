//! The system and sysbatch schedulers: one allocation of every group on every eligible node.
//!
//! ```text
//!  process(eval)
//!    └─ up to 5 (system) / 2 (sysbatch) passes:
//!         eligible nodes (ready, datacenter, pool), not-ready nodes, tainted nodes
//!           ──▶ node reconciler: per node and group — place, update, stop, lost, ignore
//!         updates: in place when the node still fits, else stop + place on the same node
//!           (limited by the group's update max_parallel)
//!         placements: the stack ranks exactly that node; constraint misses are skipped
//!           silently (the node is simply not for this job), exhaustion is a failure
//!           with a blocked eval for the node
//!         ──▶ Plan ──▶ submit
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use drover_types::alloc::AllocMetric;
use drover_types::eval::{PlanAnnotations, eval_status};
use drover_types::job::TaskGroup;
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
    let limit = if sysbatch { 2 } else { 5 };
    let mut state = state;
    let mut failed: BTreeMap<String, AllocMetric> = BTreeMap::new();
    let mut queued: BTreeMap<String, i64> = BTreeMap::new();
    let mut annotations = None;
    let mut blocked = None;
    let mut done = false;
    for _ in 0..limit {
        failed.clear();
        queued.clear();
        let outcome = pass(
            state.clone(),
            planner,
            eval,
            sysbatch,
            env,
            &mut failed,
            &mut queued,
        )?;
        annotations = Some(outcome.annotations);
        if let Some(b) = outcome.blocked {
            blocked = Some(b);
        }
        match outcome.refreshed {
            Some(fresh) => state = fresh,
            None => {
                done = true;
                break;
            }
        }
    }
    let mut e = eval.clone();
    e.modify_time = env.now;
    e.snapshot_index = state.latest_index();
    if !done {
        e.status = eval_status::FAILED.into();
        e.status_description = format!("maximum attempts reached ({limit})");
        return planner.update_eval(e);
    }
    e.status = eval_status::COMPLETE.into();
    e.status_description = String::new();
    e.failed_tg_allocs = failed;
    e.queued_allocations = queued;
    e.plan_annotations = annotations;
    if let Some(b) = blocked {
        e.blocked_eval = b;
    }
    planner.update_eval(e)
}

struct PassOutcome {
    annotations: PlanAnnotations,
    refreshed: Option<Arc<dyn State + Send + Sync>>,
    blocked: Option<String>,
}

fn pass(
    state: Arc<dyn State + Send + Sync>,
    planner: &mut dyn Planner,
    eval: &Evaluation,
    sysbatch: bool,
    env: &mut Env<'_>,
    failed: &mut BTreeMap<String, AllocMetric>,
    queued: &mut BTreeMap<String, i64>,
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
    let (eligible, by_dc, in_pool) = util::ready_nodes(state.as_ref(), &stack_job);
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
    let results = reconcile_nodes(NodeReconcileInput {
        job: job.clone().filter(|j| !j.stop),
        job_id: eval.job_id.clone(),
        namespace: eval.namespace.clone(),
        sysbatch,
        eligible_nodes: eligible.iter().map(|c| c.node.clone()).collect(),
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
    let mut blocked = None;
    // Allocations marked unknown on a disconnected node: one follow-up eval per distinct
    // `lost_after` deadline, so they become lost (and replaced) on time.
    let deadlines: std::collections::BTreeSet<i64> = results.disconnect_timeouts.values().copied().collect();
    for at in deadlines {
        let mut follow = util::next_eval(
            eval,
            (env.ids)(),
            env.now,
            crate::reconcile::trigger::MAX_DISCONNECT_TIMEOUT,
            eval_status::PENDING,
            "created for delayed disconnect timeout",
        );
        follow.wait_until = Some(drover_types::time::Timestamp(at));
        planner.create_eval(follow)?;
    }
    if let Some(job) = job.as_ref().filter(|j| !j.stop) {
        // Destructive updates are limited by the group's max_parallel (0 = all).
        let mut budget: BTreeMap<String, i64> = BTreeMap::new();
        let mut work = Vec::new();
        for p in &results.destructive_update {
            let Some(tg) = job.group(&p.task_group) else {
                continue;
            };
            let mp = tg.update.as_ref().map(|u| u.max_parallel()).unwrap_or(0);
            let used = budget.entry(tg.name.clone()).or_default();
            if mp > 0 && *used >= mp {
                desired.entry(tg.name.clone()).or_default().ignore += 1;
                continue;
            }
            *used += 1;
            work.push((p, true));
        }
        work.extend(results.place.iter().map(|p| (p, false)));
        let preempt = config.preemption_enabled(&job.job_type);
        let mut placed_groups: HashSet<String> = HashSet::new();
        let mut filtered: BTreeMap<String, AllocMetric> = BTreeMap::new();
        let mut exhausted_nodes = Vec::new();
        for (p, destructive) in work {
            let Some(tg) = job.group(&p.task_group) else {
                continue;
            };
            let Some(node) = state.node(&p.node_id) else {
                continue;
            };
            *queued.entry(tg.name.clone()).or_default() += 1;
            if destructive && let Some(prev) = &p.previous_alloc {
                util::plan_stop(
                    &mut plan,
                    prev,
                    "alloc is being updated due to job update",
                    None,
                    None,
                );
            }
            let opts = SelectOptions {
                alloc_name: p.name.clone(),
                preempt,
                ..Default::default()
            };
            let (option, mut metrics) = stack.select_on(state.as_ref(), &plan, tg, node.clone(), &opts);
            metrics.nodes_in_pool = in_pool;
            metrics.node_pool = job.node_pool.clone();
            metrics.nodes_available = by_dc.clone();
            let Some(mut option) = option else {
                // Filtered by constraints: this node is no longer for this job. Not a failure
                // on its own, and an old version running here is still stopped.
                if metrics.nodes_exhausted == 0 {
                    if let Some(q) = queued.get_mut(&tg.name) {
                        *q -= 1;
                    }
                    if !destructive && let Some(d) = desired.get_mut(&tg.name) {
                        d.place = d.place.saturating_sub(1);
                    }
                    filtered.entry(tg.name.clone()).or_insert(metrics);
                    continue;
                }
                // Exhausted: keep the old version running rather than leave the node empty.
                if destructive && let Some(prev) = &p.previous_alloc {
                    util::plan_unstop(&mut plan, &prev.node_id, &prev.id);
                }
                exhausted_nodes.push(node.id.clone());
                match failed.get_mut(&tg.name) {
                    Some(m) => m.coalesced_failures += 1,
                    None => {
                        failed.insert(tg.name.clone(), metrics);
                    }
                }
                continue;
            };
            placed_groups.insert(tg.name.clone());
            let id = (env.ids)();
            let mut alloc = util::new_alloc(id, env.now, eval, job, tg, &p.name, &mut option, metrics);
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
        if !exhausted_nodes.is_empty() && eval.status != eval_status::BLOCKED {
            for node_id in exhausted_nodes {
                let b = Evaluation {
                    job_modify_index: job.job_modify_index,
                    node_id,
                    class_eligibility: stack.class_eligibility.clone(),
                    escaped_computed_class: stack.escaped,
                    ..util::next_eval(
                        eval,
                        (env.ids)(),
                        env.now,
                        "queued-allocs",
                        eval_status::BLOCKED,
                        "created to place remaining allocations",
                    )
                };
                blocked = Some(b.id.clone());
                planner.create_eval(b)?;
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
    if eval.annotate_plan {
        plan.annotations = Some(annotations.clone());
    }
    if plan.is_no_op() && !eval.annotate_plan {
        return Ok(PassOutcome {
            annotations,
            refreshed: None,
            blocked,
        });
    }
    let submitted = planner.submit_plan(plan.clone())?;
    for (n, v) in &submitted.result.node_allocation {
        for a in v {
            if plan
                .node_allocation
                .get(n)
                .is_some_and(|p| p.iter().any(|x| x.id == a.id))
                && let Some(q) = queued.get_mut(&a.task_group)
            {
                *q = (*q - 1).max(0);
            }
        }
    }
    Ok(PassOutcome {
        annotations,
        refreshed: submitted.refreshed,
        blocked,
    })
}
