//! The system and sysbatch schedulers through the recording harness.

mod common;

use std::sync::Arc;

use common::*;
use drover_scheduler::harness::{Commit, Harness, MemState};
use drover_scheduler::{Env, Planner, SchedulerError, State, Submitted};
use drover_testkit::mock;
use drover_types::alloc::client_status;
use drover_types::eval::{DesiredUpdates, eval_status};
use drover_types::job::Constraint;
use drover_types::time::SECOND;
use drover_types::{Allocation, Evaluation, Job, Plan};

#[test]
fn system_job_runs_on_every_node_and_new_nodes() {
    let mut h = harness(5);
    let job = register(&mut h, mock::system_job());
    let allocs = placed(&h);
    assert_eq!(allocs.len(), 5);
    let nodes: std::collections::BTreeSet<_> = allocs.iter().map(|a| a.node_id.clone()).collect();
    assert_eq!(nodes.len(), 5);
    assert!(allocs.iter().all(|a| a.name == "agent.agent[0]"));
    assert_eq!(h.last_eval().unwrap().status, "complete");

    h.state.upsert_node(mock::node(9));
    run(&mut h, &eval_for(&job, "node-update"));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].node_id, mock::id(9));
}

#[test]
fn constraint_misses_are_skipped_but_exhaustion_blocks() {
    let mut h = harness(0);
    for i in 0..3 {
        let mut n = mock::node(i);
        if i == 0 {
            n.attributes.insert("kernel.name".into(), "windows".into());
        }
        if i == 1 {
            n.node_resources.as_mut().unwrap().memory.memory_mb = 300; // 44 MB usable
        }
        h.state.upsert_node(n);
    }
    let mut job = mock::system_job();
    job.constraints.push(Constraint {
        l_target: "${attr.kernel.name}".into(),
        r_target: "linux".into(),
        operand: "=".into(),
    });
    register(&mut h, job);
    let allocs = placed(&h);
    assert_eq!(allocs.len(), 1);
    assert_eq!(allocs[0].node_id, mock::id(2));
    let e = h.last_eval().unwrap();
    let m = &e.failed_tg_allocs["agent"];
    assert_eq!(m.dimension_exhausted.get("memory"), Some(&1), "{m:?}");
    assert_eq!(h.create_evals.len(), 1);
    assert_eq!(
        h.create_evals[0].node_id,
        mock::id(1),
        "blocked eval for the full node"
    );
}

#[test]
fn down_node_allocations_are_lost_not_replaced() {
    let mut h = harness(3);
    let job = register(&mut h, mock::system_job());
    let mut n = (*h.state.node(&mock::id(1)).unwrap()).clone();
    n.status = "down".into();
    h.state.upsert_node(n);
    run(&mut h, &eval_for(&job, "node-update"));
    let stops = stopped(&h);
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].client_status, client_status::LOST);
    assert!(placed(&h).is_empty());
}

#[test]
fn sysbatch_completed_work_is_not_rerun() {
    let mut h = harness(3);
    let job = register(&mut h, mock::sysbatch_job());
    assert_eq!(placed(&h).len(), 3);
    let done: Vec<Allocation> = live(&h, &job)
        .iter()
        .map(|a| Allocation {
            client_status: client_status::COMPLETE.into(),
            ..(**a).clone()
        })
        .collect();
    h.state.upsert_allocs(done);
    let plans_before = h.plans.len();
    run(&mut h, &eval_for(&job, "job-register"));
    assert_eq!(h.plans.len(), plans_before, "nothing to do: no plan");
}

#[test]
fn system_update_is_destructive_per_node() {
    let mut h = harness(3);
    let mut job = (*register(&mut h, mock::system_job())).clone();
    job.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 256;
    // No update block anywhere: every node is updated at once.
    job.task_groups[0].update = None;
    job.update = None;
    job.job_modify_index = 700;
    let j = h.state.upsert_job(job);
    run(&mut h, &eval_for(&j, "job-register"));
    assert_eq!(stopped(&h).len(), 3);
    let new = placed(&h);
    assert_eq!(new.len(), 3);
    for a in &new {
        let prev = stopped(&h)
            .into_iter()
            .find(|s| s.id == a.previous_allocation)
            .expect("replaces an alloc");
        assert_eq!(prev.node_id, a.node_id, "system updates stay on their node");
    }
}

#[test]
fn system_preemption_is_on_by_default() {
    let mut h = harness(1);
    let mut filler = mock::job();
    filler.id = "filler".into();
    filler.name = "filler".into();
    filler.priority = 20;
    filler.task_groups[0].count = 1;
    filler.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .unwrap()
        .memory_mb = 7800;
    register(&mut h, filler);
    let mut sys = mock::system_job();
    sys.priority = 90;
    sys.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 200;
    register(&mut h, sys);
    let plan = h.plans.last().unwrap();
    assert_eq!(plan.node_preemptions.values().flatten().count(), 1);
    assert_eq!(placed(&h).len(), 1);
}

#[test]
fn disconnected_node_allocations_wait_for_lost_after() {
    use drover_types::time::{MINUTE, Timestamp};
    let mut h = harness(3);
    let (job, before) = running_with_a_disconnected_node(&mut h);
    run(&mut h, &eval_for(&job, "node-update"));
    let unknown: Vec<Allocation> = placed(&h)
        .into_iter()
        .filter(|a| a.client_status == "unknown")
        .collect();
    assert_eq!(
        unknown.len(),
        1,
        "the disconnected node's alloc is marked unknown, not lost"
    );
    assert!(stopped(&h).is_empty());
    let follow: Vec<_> = h.create_evals[before..]
        .iter()
        .filter(|e| e.triggered_by == "max-disconnect-timeout")
        .collect();
    assert_eq!(follow.len(), 1);
    assert_eq!(follow[0].wait_until, Some(Timestamp(NOW + MINUTE)));
}

// ---------------------------------------------------------------- blocked evals across passes

/// Processes `eval` against `state`, which may be older than the harness's own state: the
/// harness (in `Commit::Verify`) then rejects what no longer fits, like the plan applier, and
/// the scheduler plans again on the refreshed state. IDs are drawn from `id_base` upwards.
fn run_on(h: &mut Harness, state: MemState, eval: &Evaluation, id_base: u64) {
    let mut counter = id_base;
    let mut ids = || {
        counter += 1;
        mock::id(counter)
    };
    let mut env = Env {
        now: NOW,
        ids: &mut ids,
    };
    drover_scheduler::process(Arc::new(state), h, eval, &mut env).expect("scheduler succeeds");
}

/// Three nodes for the `agent` system job: node 1 is too small for it (44 MB usable), and node
/// 2 is filled by another job *after* the returned snapshot was taken — so a scheduler working
/// from the snapshot believes node 2 has room, and the plan applier disagrees.
fn stale_view_of_a_full_node() -> (Harness, Arc<Job>, MemState) {
    let mut h = harness(0);
    h.commit = Commit::Verify;
    for i in 0..3 {
        let mut n = mock::node(i);
        if i == 1 {
            n.node_resources.as_mut().unwrap().memory.memory_mb = 300;
        }
        h.state.upsert_node(n);
    }
    let job = h.state.upsert_job(mock::system_job());
    let before_filler = h.state.clone();
    let mut filler = mock::job();
    filler.id = "filler".into();
    filler.name = "filler".into();
    filler.task_groups[0].count = 1;
    filler.task_groups[0].networks.clear();
    filler.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .unwrap()
        .memory_mb = 7900;
    let filler = h.state.upsert_job(filler);
    h.state.upsert_allocs(vec![mock::alloc_for(
        &filler,
        0,
        &mock::id(2),
        "filler-alloc".into(),
    )]);
    (h, job, before_filler)
}

fn blocked_evals(h: &Harness) -> Vec<&Evaluation> {
    h.create_evals
        .iter()
        .filter(|e| e.status == eval_status::BLOCKED)
        .collect()
}

#[test]
fn refreshed_pass_that_still_fails_leaves_exactly_one_blocked_eval() {
    let (mut h, job, stale) = stale_view_of_a_full_node();
    let eval = eval_for(&job, "job-register");
    run_on(&mut h, stale, &eval, 7_000_000);

    // Pass 1 (stale view): node 0 and node 2 placed, node 1 exhausted. The applier commits
    // node 0 only and hands back a fresher state. Pass 2: nodes 1 and 2 exhausted, nothing
    // left to submit.
    assert_eq!(h.plans.len(), 1, "one plan, partly committed");
    assert_eq!(live(&h, &job).len(), 1, "only node 0 runs the job");
    assert_eq!(live(&h, &job)[0].node_id, mock::id(0));

    let blocked = blocked_evals(&h);
    assert_eq!(blocked.len(), 1, "one blocked eval per evaluation: {blocked:#?}");
    let b = blocked[0];
    assert_eq!(b.triggered_by, "queued-allocs");
    assert_eq!(b.previous_eval, eval.id);
    assert_eq!(b.job_modify_index, job.job_modify_index);
    let first_exhausted = mock::id(1).min(mock::id(2));
    assert_eq!(
        b.node_id, first_exhausted,
        "the first exhausted node, in node ID order"
    );
    assert_eq!(
        b.failed_tg_allocs["agent"].coalesced_failures, 1,
        "the blocked eval describes the last pass (two failed nodes)"
    );

    let e = h.last_eval().unwrap();
    assert_eq!(e.id, eval.id);
    assert_eq!(e.status, eval_status::COMPLETE);
    assert_eq!(e.blocked_eval, b.id, "the evaluation names its blocked eval");
    let m = &e.failed_tg_allocs["agent"];
    assert_eq!(
        (m.coalesced_failures, m.nodes_exhausted),
        (1, 1),
        "failures of the last pass, not the first"
    );
    assert_eq!(
        e.queued_allocations,
        [("agent".to_string(), 2)].into_iter().collect(),
        "two placements still wait after the last pass"
    );
}

#[test]
fn blocked_eval_that_still_cannot_place_is_reblocked_then_completes() {
    let (mut h, job, stale) = stale_view_of_a_full_node();
    run_on(&mut h, stale, &eval_for(&job, "job-register"), 7_000_000);
    let blocked = blocked_evals(&h)[0].clone();
    let (created, updated) = (h.create_evals.len(), h.evals.len());

    // Woken up, but nothing changed: back to blocked, same evaluation.
    run(&mut h, &blocked);
    assert_eq!(h.create_evals.len(), created, "no second blocked eval");
    assert_eq!(h.evals.len(), updated, "not completed either");
    assert_eq!(h.reblock_evals.len(), 1);
    let re = &h.reblock_evals[0];
    assert_eq!(
        (re.id.as_str(), re.status.as_str()),
        (blocked.id.as_str(), eval_status::BLOCKED)
    );
    assert_eq!(re.failed_tg_allocs["agent"].coalesced_failures, 1);
    assert_eq!(re.queued_allocations["agent"], 2);

    // Capacity appears (node 1 grows, the filler stops): the same blocked eval places both.
    let mut n1 = (*h.state.node(&mock::id(1)).unwrap()).clone();
    n1.node_resources.as_mut().unwrap().memory.memory_mb = 8192;
    h.state.upsert_node(n1);
    let mut filler = (*h.state.alloc("filler-alloc").unwrap()).clone();
    filler.desired_status = "stop".into();
    filler.client_status = client_status::COMPLETE.into();
    h.state.upsert_allocs(vec![filler]);
    run(&mut h, &blocked);
    assert_eq!(h.reblock_evals.len(), 1, "not re-blocked again");
    let e = h.last_eval().unwrap();
    assert_eq!(
        (e.id.as_str(), e.status.as_str()),
        (blocked.id.as_str(), eval_status::COMPLETE)
    );
    assert!(e.failed_tg_allocs.is_empty() && e.blocked_eval.is_empty());
    assert_eq!(live(&h, &job).len(), 3);
    assert_eq!(h.create_evals.len(), created, "no new blocked eval");
}

// ---------------------------------------------------------------- max_parallel

/// Stores the next version of `job` with a different memory ask (a destructive update).
fn new_version(h: &mut Harness, job: &Job, memory_mb: i64) -> Arc<Job> {
    let mut v2 = job.clone();
    v2.version += 1;
    v2.job_modify_index = job.job_modify_index + 600;
    v2.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = memory_mb;
    h.state.upsert_job(v2)
}

/// The `agent` system job with `update.max_parallel` set on its group.
fn with_max_parallel(max_parallel: i64) -> Job {
    let mut job = mock::system_job();
    job.task_groups[0].update.as_mut().unwrap().max_parallel = Some(max_parallel);
    job
}

fn rolling_evals(h: &Harness) -> Vec<Evaluation> {
    h.create_evals
        .iter()
        .filter(|e| e.triggered_by == "rolling-update")
        .cloned()
        .collect()
}

fn annotated(h: &Harness) -> DesiredUpdates {
    h.last_eval()
        .and_then(|e| e.plan_annotations.as_ref())
        .map(|a| a.desired_tg_updates["agent"].clone())
        .unwrap_or_default()
}

#[test]
fn max_parallel_limits_a_system_update_and_rolling_evals_finish_it() {
    let mut h = harness(5);
    let v1 = register(&mut h, with_max_parallel(2));
    assert_eq!(live(&h, &v1).len(), 5, "first placements are not limited");
    let v2 = new_version(&mut h, &v1, 256);
    let eval = eval_for(&v2, "job-register");

    // `job plan` (a dry run) sees the same counts the real run reports.
    let mut dry = h.clone();
    run(
        &mut dry,
        &Evaluation {
            annotate_plan: true,
            ..eval.clone()
        },
    );
    let planned = dry.plans.last().unwrap().annotations.clone().unwrap();
    assert_eq!(
        planned.desired_tg_updates["agent"],
        DesiredUpdates {
            destructive_update: 2,
            ignore: 3,
            ..Default::default()
        }
    );

    run(&mut h, &eval);
    let (stops, places) = (stopped(&h), placed(&h));
    assert_eq!(
        (stops.len(), places.len()),
        (2, 2),
        "exactly max_parallel replaced"
    );
    for a in &places {
        let prev = stops
            .iter()
            .find(|s| s.id == a.previous_allocation)
            .expect("replaces a stopped alloc");
        assert_eq!(prev.node_id, a.node_id);
        assert_eq!(
            prev.desired_description,
            "alloc is being updated due to job update"
        );
        assert_eq!(a.job.as_ref().map(|j| j.version), Some(v2.version));
    }
    assert_eq!(
        annotated(&h),
        DesiredUpdates {
            destructive_update: 2,
            ignore: 3,
            ..Default::default()
        },
        "done now vs left for later"
    );
    let follow = rolling_evals(&h);
    assert_eq!(follow.len(), 1, "one follow-up continues the rollout");
    let f = &follow[0];
    assert_eq!(f.status, eval_status::PENDING);
    assert_eq!(f.wait, 30 * SECOND, "after the group's update.stagger");
    assert_eq!(f.previous_eval, eval.id);
    assert_eq!(f.job_modify_index, v2.job_modify_index);
    let e = h.last_eval().unwrap();
    assert_eq!(
        (e.status.as_str(), e.next_eval.as_str()),
        ("complete", f.id.as_str())
    );
    assert_eq!(e.queued_allocations["agent"], 0);

    // The follow-up takes the next two, and leaves one more follow-up for the last node.
    run(&mut h, f);
    assert_eq!((stopped(&h).len(), placed(&h).len()), (2, 2));
    assert_eq!(
        annotated(&h),
        DesiredUpdates {
            destructive_update: 2,
            ignore: 3,
            ..Default::default()
        }
    );
    let follow = rolling_evals(&h);
    assert_eq!(follow.len(), 2);
    assert_eq!(follow[1].previous_eval, f.id);
    assert_eq!(h.last_eval().unwrap().next_eval, follow[1].id);

    // The last batch: one node, nothing left for later.
    run(&mut h, &follow[1]);
    assert_eq!((stopped(&h).len(), placed(&h).len()), (1, 1));
    assert_eq!(
        annotated(&h),
        DesiredUpdates {
            destructive_update: 1,
            ignore: 4,
            ..Default::default()
        }
    );
    assert_eq!(rolling_evals(&h).len(), 2, "no follow-up once nothing waits");
    assert!(h.last_eval().unwrap().next_eval.is_empty());
    let live = live(&h, &v2);
    assert_eq!(live.len(), 5);
    assert!(
        live.iter()
            .all(|a| a.job.as_ref().map(|j| j.job_modify_index) == Some(v2.job_modify_index))
    );
    let nodes: std::collections::BTreeSet<_> = live.iter().map(|a| a.node_id.clone()).collect();
    assert_eq!(nodes.len(), 5);
}

#[test]
fn a_node_too_small_for_the_new_version_does_not_hold_the_rollout_back() {
    // The first node in ID order (the order updates are taken in) cannot fit the new version.
    let mut ids: Vec<u64> = (0..3).collect();
    ids.sort_by_key(|i| mock::id(*i));
    let small = ids[0];
    let mut h = harness(0);
    for i in 0..3 {
        let mut n = mock::node(i);
        if i == small {
            n.node_resources.as_mut().unwrap().memory.memory_mb = 600; // 344 MB usable
        }
        h.state.upsert_node(n);
    }
    let v1 = register(&mut h, with_max_parallel(1));
    assert_eq!(live(&h, &v1).len(), 3);
    let v2 = new_version(&mut h, &v1, 512);
    let plans_before = h.plans.len();
    run(&mut h, &eval_for(&v2, "job-register"));

    assert_eq!(h.plans.len(), plans_before + 1, "the update does something");
    let places = placed(&h);
    assert_eq!(places.len(), 1, "the budget goes to a node that can take it");
    assert_ne!(places[0].node_id, mock::id(small));
    let stops = stopped(&h);
    assert_eq!(stops.len(), 1);
    assert_eq!(
        stops[0].node_id, places[0].node_id,
        "the small node keeps v1 running"
    );
    assert_eq!(
        annotated(&h),
        DesiredUpdates {
            destructive_update: 2,
            ignore: 1,
            ..Default::default()
        },
        "two attempted (one failed), one left for later"
    );
    let e = h.last_eval().unwrap();
    assert!(e.failed_tg_allocs.contains_key("agent"));
    let blocked = blocked_evals(&h);
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].node_id, mock::id(small));
    assert_eq!(e.blocked_eval, blocked[0].id);
    assert_eq!(rolling_evals(&h).len(), 1);
}

#[test]
fn queued_allocations_name_every_group_even_when_nothing_waits() {
    let mut h = harness(2);
    let job = register(&mut h, mock::system_job());
    run(&mut h, &eval_for(&job, "node-update"));
    let e = h.last_eval().unwrap();
    assert_eq!(e.status, eval_status::COMPLETE);
    assert_eq!(
        e.queued_allocations,
        [("agent".to_string(), 0)].into_iter().collect(),
        "a stale queued count in the job summary is reset"
    );
}

/// Commits the first plan, then reports an error (the plan applier committed it through Raft,
/// but the worker never got the answer: leadership change, RPC timeout).
struct LostReply<'a> {
    h: &'a mut Harness,
    failed: bool,
}

impl Planner for LostReply<'_> {
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError> {
        let r = self.h.submit_plan(plan)?;
        if !self.failed {
            self.failed = true;
            return Err(SchedulerError::Planner("reply lost".into()));
        }
        Ok(r)
    }
    fn update_eval(&mut self, e: Evaluation) -> Result<(), SchedulerError> {
        self.h.update_eval(e)
    }
    fn create_eval(&mut self, e: Evaluation) -> Result<(), SchedulerError> {
        self.h.create_eval(e)
    }
    fn reblock_eval(&mut self, e: Evaluation) -> Result<(), SchedulerError> {
        self.h.reblock_eval(e)
    }
}

#[test]
fn a_disconnect_deadline_survives_a_failed_submit() {
    let mut h = harness(3);
    let (job, before) = running_with_a_disconnected_node(&mut h);
    let eval = eval_for(&job, "node-update");
    // First delivery: the plan (alloc → unknown) commits, the reply is lost, the worker nacks.
    {
        let mut counter = 5_000_000u64;
        let mut ids = || {
            counter += 1;
            mock::id(counter)
        };
        let mut env = Env {
            now: NOW,
            ids: &mut ids,
        };
        let state = Arc::new(h.state.clone());
        let mut p = LostReply {
            h: &mut h,
            failed: false,
        };
        let r = drover_scheduler::process(state, &mut p, &eval, &mut env);
        assert!(r.is_err());
    }
    let unknown = live(&h, &job)
        .iter()
        .filter(|a| a.client_status == client_status::UNKNOWN)
        .count();
    assert_eq!(unknown, 1, "the unknown update was committed");
    // Redelivery.
    run(&mut h, &eval);
    let follow = h.create_evals[before..]
        .iter()
        .filter(|e| e.triggered_by == "max-disconnect-timeout")
        .count();
    assert_eq!(
        follow, 1,
        "someone must turn the unknown alloc lost after lost_after"
    );
}

/// A system job (`lost_after = 1m`) running on every node of `h`, whose node 1 has just
/// disconnected; returns the job and the number of evaluations created so far.
fn running_with_a_disconnected_node(h: &mut Harness) -> (Arc<Job>, usize) {
    use drover_types::job::DisconnectStrategy;
    use drover_types::time::MINUTE;
    let mut job = mock::system_job();
    job.task_groups[0].disconnect = Some(DisconnectStrategy {
        lost_after: MINUTE,
        ..Default::default()
    });
    let job = register(h, job);
    // The client reported them running (a pending alloc on a disconnected node is simply lost).
    let running: Vec<Allocation> = live(h, &job)
        .iter()
        .map(|a| Allocation {
            client_status: client_status::RUNNING.into(),
            ..(**a).clone()
        })
        .collect();
    h.state.upsert_allocs(running);
    let mut n = (*h.state.node(&mock::id(1)).unwrap()).clone();
    n.status = "disconnected".into();
    h.state.upsert_node(n);
    (job, h.create_evals.len())
}
