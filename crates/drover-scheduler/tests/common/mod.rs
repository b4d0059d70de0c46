//! Shared helpers for scheduler tests: a harness with N mock nodes and an eval runner.

#![allow(dead_code)]

use std::sync::Arc;

use drover_scheduler::harness::{Harness, MemState};
use drover_scheduler::{Env, process};
use drover_testkit::mock;
use drover_types::{Allocation, Evaluation, Job};

/// 2024-01-01T00:00:00Z in Unix nanoseconds.
pub const NOW: i64 = 1_704_067_200_000_000_000;

/// A harness with `n` ready mock nodes.
pub fn harness(n: u64) -> Harness {
    let mut s = MemState::new();
    for i in 0..n {
        s.upsert_node(mock::node(i));
    }
    Harness::new(s)
}

/// A pending register eval for `job`.
pub fn eval_for(job: &Job, trigger: &str) -> Evaluation {
    Evaluation {
        id: mock::id(900_000),
        namespace: job.namespace.clone(),
        priority: job.priority,
        eval_type: job.job_type.clone(),
        triggered_by: trigger.into(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: "pending".into(),
        ..Default::default()
    }
}

/// Processes `eval` against the harness at time `now`, with counter IDs starting at `id_base`.
pub fn run_at(h: &mut Harness, eval: &Evaluation, now: i64, id_base: u64) {
    let mut counter = id_base;
    let mut ids = || {
        counter += 1;
        mock::id(counter)
    };
    let mut env = Env { now, ids: &mut ids };
    let state = Arc::new(h.state.clone());
    process(state, h, eval, &mut env).expect("scheduler succeeds");
}

static NEXT_ID_BASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

/// Processes `eval` at [`NOW`]; every run draws fresh IDs.
pub fn run(h: &mut Harness, eval: &Evaluation) {
    let base = NEXT_ID_BASE.fetch_add(100_000, std::sync::atomic::Ordering::Relaxed);
    run_at(h, eval, NOW, base);
}

/// Placements of the last plan, flattened.
pub fn placed(h: &Harness) -> Vec<Allocation> {
    h.plans
        .last()
        .map(|p| p.node_allocation.values().flatten().cloned().collect())
        .unwrap_or_default()
}

/// Stops of the last plan, flattened.
pub fn stopped(h: &Harness) -> Vec<Allocation> {
    h.plans
        .last()
        .map(|p| p.node_update.values().flatten().cloned().collect())
        .unwrap_or_default()
}

/// Live (non-terminal) allocations of a job in the harness state.
pub fn live(h: &Harness, job: &Job) -> Vec<Arc<Allocation>> {
    use drover_scheduler::State;
    h.state
        .allocs_by_job(&job.namespace, &job.id)
        .into_iter()
        .filter(|a| !a.terminal())
        .collect()
}

/// Registers `job` and places it (one eval), returning the stored job.
pub fn register(h: &mut Harness, job: Job) -> Arc<Job> {
    let j = h.state.upsert_job(job);
    let e = eval_for(&j, "job-register");
    run(h, &e);
    j
}
