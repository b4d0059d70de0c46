mod common;
use common::*;
use drover_testkit::mock;
#[test]
fn stats() {
    let mut h = harness(0);
    for i in 0..5000 { let mut n = mock::node(i); n.computed_class = "v1:bench".into(); h.state.upsert_node(n); }
    let mut job = mock::job();
    job.task_groups[0].count = 1000;
    register(&mut h, job);
    let allocs = placed(&h);
    let evald: i64 = allocs.iter().map(|a| a.metrics.as_ref().unwrap().nodes_evaluated).sum();
    let filtered: i64 = allocs.iter().map(|a| a.metrics.as_ref().unwrap().nodes_filtered).sum();
    let exh: i64 = allocs.iter().map(|a| a.metrics.as_ref().unwrap().nodes_exhausted).sum();
    eprintln!("placed {} evaluated/placement {} filtered {} exhausted {}", allocs.len(), evald as f64 / allocs.len() as f64, filtered, exh);
}
