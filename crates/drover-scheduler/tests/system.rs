//! The system and sysbatch schedulers through the recording harness.

mod common;

use common::*;
use drover_scheduler::State;
use drover_testkit::mock;
use drover_types::Allocation;
use drover_types::alloc::client_status;
use drover_types::job::Constraint;

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
    job.task_groups[0].update = None;
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
    use drover_types::job::DisconnectStrategy;
    use drover_types::time::{MINUTE, Timestamp};
    let mut h = harness(3);
    let mut job = mock::system_job();
    job.task_groups[0].disconnect = Some(DisconnectStrategy {
        lost_after: MINUTE,
        ..Default::default()
    });
    let job = register(&mut h, job);
    // The client reported them running (a pending alloc on a disconnected node is simply lost).
    let running: Vec<Allocation> = live(&h, &job)
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
    let before = h.create_evals.len();
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
