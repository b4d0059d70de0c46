//! Scheduler benchmarks: one evaluation from reconcile to submitted plan.
//!
//! Cases:
//! - `service_1000/nodes=5000|10000` — a 1,000-allocation service job on an empty cluster;
//! - `service_1000_spread/nodes=5000|10000` — the same job with a spread over `${meta.rack}`
//!   (10 racks), which raises the candidate limit to max(count, 100);
//! - `system/nodes=5000` — a system job (one allocation per node);
//! - `service_1000_state_store/nodes=10000` — the first case read from the server's state store
//!   (`drover-state` snapshot: persistent maps, candidate index cached per node-table version)
//!   instead of the in-memory test state, i.e. what the server's workers run.
//!
//! Per-placement time = measured time / allocations placed. Run:
//! `cargo bench -p drover-scheduler --bench placement`
//!
//! The planner hands the plan back as the result, as the server's plan applier does, so the
//! scheduler frees every allocation record it built: that is part of the measured time.
//!
//! For instruction counts (steady on a busy machine, unlike wall time), `DROVER_BENCH_RUNS=N`
//! skips criterion and runs the 10,000-node service case N times:
//! `DROVER_BENCH_RUNS=3 valgrind --tool=callgrind target/release/deps/placement-<hash> --bench`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use drover_scheduler::harness::MemState;
use drover_scheduler::{Env, Planner, SchedulerError, State, Submitted, process};
use drover_state::{Command, StateSnapshot, StateStore};
use drover_testkit::mock;
use drover_types::job::Spread;
use drover_types::{Evaluation, Job, Plan, PlanResult};

/// The allocator the `drover` binary uses, so that allocation costs are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A planner that commits everything without copying: the benchmark measures the scheduler,
/// not a test harness's bookkeeping.
struct Sink {
    placed: usize,
}

impl Planner for Sink {
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError> {
        self.placed += plan.node_allocation.values().map(Vec::len).sum::<usize>();
        let result = PlanResult {
            node_allocation: plan.node_allocation,
            node_update: plan.node_update,
            ..Default::default()
        };
        Ok(Submitted {
            result,
            refreshed: None,
        })
    }
    fn update_eval(&mut self, _: Evaluation) -> Result<(), SchedulerError> {
        Ok(())
    }
    fn create_eval(&mut self, _: Evaluation) -> Result<(), SchedulerError> {
        Ok(())
    }
    fn reblock_eval(&mut self, _: Evaluation) -> Result<(), SchedulerError> {
        Ok(())
    }
}

fn cluster(n: u64) -> MemState {
    let mut s = MemState::new();
    for i in 0..n {
        let mut node = mock::node(i);
        node.meta.insert("rack".into(), format!("r{}", i % 10));
        node.computed_class = "v1:bench".into();
        s.upsert_node(node);
    }
    s
}

fn eval_for(job: &Job) -> Evaluation {
    Evaluation {
        id: mock::id(900_001),
        namespace: job.namespace.clone(),
        priority: job.priority,
        eval_type: job.job_type.clone(),
        triggered_by: "job-register".into(),
        job_id: job.id.clone(),
        status: "pending".into(),
        ..Default::default()
    }
}

fn run_once(state: &Arc<MemState>, eval: &Evaluation) -> usize {
    let st: Arc<dyn State + Send + Sync> = state.clone();
    run_dyn(&st, eval)
}

fn run_dyn(st: &Arc<dyn State + Send + Sync>, eval: &Evaluation) -> usize {
    let mut h = Sink { placed: 0 };
    let mut counter = 0u64;
    let mut ids = || {
        counter += 1;
        mock::id(counter)
    };
    let mut env = Env {
        now: 1_704_067_200_000_000_000,
        ids: &mut ids,
    };
    process(st.clone(), &mut h, eval, &mut env).expect("scheduler succeeds");
    h.placed
}

/// A cluster of `nodes` and a 1,000-allocation service job (with a spread over racks).
fn service_case(nodes: u64, spread: bool) -> (Arc<MemState>, Evaluation) {
    let mut state = cluster(nodes);
    let mut job = mock::job();
    job.task_groups[0].count = 1000;
    if spread {
        job.spreads.push(Spread {
            attribute: "${meta.rack}".into(),
            weight: 100,
            spread_target: vec![],
        });
    }
    let job = state.upsert_job(job);
    let eval = eval_for(&job);
    (Arc::new(state), eval)
}

/// The service case in the server's state store.
fn service_case_in_state_store(nodes: u64) -> (Arc<StateSnapshot>, Evaluation) {
    let store = StateStore::new();
    let mut index = 0;
    for i in 0..nodes {
        let mut node = mock::node(i);
        node.meta.insert("rack".into(), format!("r{}", i % 10));
        node.computed_class = "v1:bench".into();
        index += 1;
        store
            .apply(index, Command::UpsertNode { node })
            .expect("node registers");
    }
    let mut job = mock::job();
    job.task_groups[0].count = 1000;
    index += 1;
    store
        .apply(index, Command::UpsertJob { job, eval: None })
        .expect("job registers");
    let snap = store.snapshot();
    let job = snap.job("default", &mock::job().id).expect("job stored");
    (snap, eval_for(&job))
}

fn bench(c: &mut Criterion) {
    if let Some(runs) = std::env::var("DROVER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let (state, eval) = service_case(10_000, false);
        for _ in 0..runs {
            assert_eq!(run_once(&state, &eval), 1000);
        }
        std::process::exit(0);
    }
    let mut g = c.benchmark_group("scheduler");
    g.sample_size(10);
    for nodes in [5_000u64, 10_000] {
        for spread in [false, true] {
            let (state, eval) = service_case(nodes, spread);
            assert_eq!(run_once(&state, &eval), 1000, "all 1000 allocations fit");
            let name = if spread {
                "service_1000_spread"
            } else {
                "service_1000"
            };
            g.bench_function(format!("{name}/nodes={nodes}"), |b| {
                b.iter_batched(
                    || (),
                    |_| black_box(run_once(&state, &eval)),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    let mut state = cluster(5_000);
    let job = state.upsert_job(mock::system_job());
    let state = Arc::new(state);
    let eval = eval_for(&job);
    assert_eq!(run_once(&state, &eval), 5000);
    g.bench_function("system/nodes=5000", |b| {
        b.iter(|| black_box(run_once(&state, &eval)))
    });
    let (snap, eval) = service_case_in_state_store(10_000);
    let st: Arc<dyn State + Send + Sync> = snap;
    assert_eq!(run_dyn(&st, &eval), 1000);
    g.bench_function("service_1000_state_store/nodes=10000", |b| {
        b.iter(|| black_box(run_dyn(&st, &eval)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
