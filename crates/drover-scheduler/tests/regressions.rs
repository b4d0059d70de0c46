//! Regressions found by reading the scheduler against the reference: each test pins one
//! behaviour that was wrong once.

mod common;
use common::*;

use drover_scheduler::State;
use drover_scheduler::harness::{Harness, MemState};
use drover_testkit::mock;
use drover_types::job::{Constraint, Port, UpdateStrategy};

/// When the fast path's pick fails the authoritative check (dynamic ports ran out), the
/// full-path retry must not count the same nodes twice.
#[test]
fn fast_path_fallback_counts_each_node_once() {
    let mut h = harness(0);
    for i in 0..3 {
        let mut n = mock::node(i);
        if i == 0 {
            let r = n.node_resources.as_mut().unwrap();
            r.min_dynamic_port = 30000;
            r.max_dynamic_port = 30000;
        }
        h.state.upsert_node(n);
    }
    let mut job = mock::job();
    job.task_groups[0].count = 4;
    register(&mut h, job);
    let p = placed(&h);
    assert_eq!(p.len(), 4);
    for a in &p {
        let m = a.metrics.as_ref().unwrap();
        assert!(
            m.nodes_evaluated <= 3,
            "{}: evaluated {} of 3 nodes",
            a.name,
            m.nodes_evaluated
        );
        assert!(m.nodes_exhausted <= m.nodes_evaluated, "{}: {m:?}", a.name);
    }
}

/// Job anti-affinity counts allocations of the same job in the same namespace, on both the
/// fast path and the full path (a static port forces the full path).
#[test]
fn job_anti_affinity_ignores_same_named_job_in_another_namespace() {
    let mut seen = Vec::new();
    for static_port in [false, true] {
        let mut h = harness(1);
        let mut other = mock::job();
        other.namespace = "other".into();
        other.task_groups[0].count = 1;
        register(&mut h, other);
        let mut job = mock::job();
        job.task_groups[0].count = 1;
        if static_port {
            job.task_groups[0].networks[0].reserved_ports.push(Port {
                label: "s".into(),
                value: 8080,
                ..Default::default()
            });
        }
        register(&mut h, job);
        let p = placed(&h);
        let m = p[0].metrics.as_ref().unwrap();
        let scores = m.score_meta_data[0].scores.clone();
        assert!(
            !scores.contains_key("job-anti-affinity"),
            "static={static_port}: {scores:?}"
        );
        seen.push(scores);
    }
    assert_eq!(seen[0], seen[1], "fast and full path score differently");
}

/// A system job updated with a constraint that excludes a node stops the old version there
/// instead of leaving it running forever.
#[test]
fn system_update_stops_old_version_on_node_it_no_longer_fits() {
    let mut h = harness(2);
    let j1 = register(&mut h, mock::system_job());
    assert_eq!(placed(&h).len(), 2);
    let mut v2 = (*j1).clone();
    v2.version += 1;
    v2.job_modify_index = 0;
    v2.constraints.push(Constraint {
        l_target: "${node.unique.name}".into(),
        r_target: "node-0".into(),
        operand: "=".into(),
    });
    let j2 = register(&mut h, v2);
    let live = live(&h, &j2);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].node_id, mock::id(0));
    assert!(h.last_eval().unwrap().failed_tg_allocs.is_empty());
}

/// A system job that no node accepts is reported as failed placement, not a silent success.
#[test]
fn system_job_no_node_accepts_is_reported() {
    let mut h = harness(2);
    let mut job = mock::system_job();
    job.constraints.push(Constraint {
        l_target: "${attr.kernel.name}".into(),
        r_target: "windows".into(),
        operand: "=".into(),
    });
    register(&mut h, job);
    let e = h.last_eval().unwrap();
    let m = e
        .failed_tg_allocs
        .values()
        .next()
        .expect("failed_tg_allocs is empty");
    assert_eq!(m.nodes_filtered, 1);
    assert!(placed(&h).is_empty());
}

/// Sticky disks prefer the previous node only if the job may still run there.
#[test]
fn sticky_disk_does_not_pull_job_out_of_its_datacenters() {
    let mut h = harness(0);
    let n0 = mock::node(0);
    let mut n1 = mock::node(1);
    n1.datacenter = "dc2".into();
    h.state.upsert_node(n0);
    h.state.upsert_node(n1);
    let mut job = mock::job();
    job.task_groups[0].count = 1;
    job.task_groups[0]
        .ephemeral_disk
        .get_or_insert_with(Default::default)
        .sticky = true;
    let j1 = register(&mut h, job);
    assert_eq!(placed(&h)[0].node_id, mock::id(0));
    let mut v2 = (*j1).clone();
    v2.version += 1;
    v2.job_modify_index = 0;
    v2.datacenters = vec!["dc2".into()];
    v2.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 300;
    register(&mut h, v2);
    let p = placed(&h);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].node_id, mock::id(1));
}

/// The second preemption on a node sees the first placement of the same plan.
#[test]
fn second_preemption_on_a_node_counts_this_plans_placements() {
    let mut h = harness(1);
    let mut cfg = drover_types::SchedulerConfiguration::default();
    cfg.preemption_config.service_scheduler_enabled = true;
    h.state.set_scheduler_config(cfg);
    let mut filler = mock::job();
    filler.id = "filler".into();
    filler.name = "filler".into();
    filler.priority = 30;
    filler.task_groups[0].count = 7;
    {
        let r = filler.task_groups[0].tasks[0].resources.as_mut().unwrap();
        r.memory_mb = 1000;
        r.cpu = 100;
    }
    let f = register(&mut h, filler);
    assert_eq!(live(&h, &f).len(), 7);
    let mut urgent = mock::job();
    urgent.id = "urgent".into();
    urgent.name = "urgent".into();
    urgent.priority = 80;
    urgent.task_groups[0].count = 2;
    {
        let r = urgent.task_groups[0].tasks[0].resources.as_mut().unwrap();
        r.memory_mb = 1000;
        r.cpu = 100;
    }
    register(&mut h, urgent);
    let plan = h.plans.last().unwrap();
    assert_eq!(placed(&h).len(), 2);
    assert_eq!(plan.node_preemptions.values().flatten().count(), 2);
    assert!(h.last_eval().unwrap().failed_tg_allocs.is_empty());
}

// Found by the review of the scheduler's performance work (2026-11-26): group facts and
// caches were keyed by group name, so two versions of a group placed in one evaluation shared
// the constraints of whichever was seen first.

fn rack_harness(n: u64) -> Harness {
    let mut s = MemState::new();
    for i in 0..n {
        let mut node = mock::node(i);
        node.meta.insert("rack".into(), format!("r{}", i % 2));
        s.upsert_node(node);
    }
    Harness::new(s)
}

fn rack_of(h: &Harness, node_id: &str) -> String {
    h.state.node(node_id).unwrap().meta["rack"].clone()
}

fn on_rack(r: &str) -> Constraint {
    Constraint {
        l_target: "${meta.rack}".into(),
        r_target: r.into(),
        operand: "=".into(),
    }
}

/// v0 of "web" must run on rack r0; v1 (canary, unpromoted) on rack r1 — as a group constraint
/// or a job constraint. In one evaluation the canary (v1) and the replacement of a lost v0
/// allocation (downgraded to v0) are placed.
fn each_version_is_placed_by_its_own_constraints(job_level: bool) {
    let set_rack = |j: &mut drover_types::Job, rack: &str| {
        if job_level {
            j.constraints = vec![on_rack(rack)];
        } else {
            j.task_groups[0].constraints = vec![on_rack(rack)];
        }
    };

    let mut h = rack_harness(10);
    let mut v0 = mock::job();
    v0.task_groups[0].count = 4;
    set_rack(&mut v0, "r0");
    let job = register(&mut h, v0);
    for a in live(&h, &job) {
        assert_eq!(rack_of(&h, &a.node_id), "r0");
    }
    if let Some(d) = h.state.latest_deployment(&job.namespace, &job.id) {
        let mut d = (*d).clone();
        d.status = "successful".into();
        h.state.upsert_deployment(d);
    }
    // A node with a v0 alloc goes down.
    let victim = live(&h, &job)[0].clone();
    let mut node = (*h.state.node(&victim.node_id).unwrap()).clone();
    node.status = "down".into();
    h.state.upsert_node(node);
    // v1: new resources (destructive), a canary, and another rack.
    let mut v1 = (*job).clone();
    v1.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 300;
    set_rack(&mut v1, "r1");
    v1.task_groups[0].update = Some(UpdateStrategy {
        canary: Some(1),
        ..UpdateStrategy::nomad_default()
    });
    v1.version = 1;
    v1.job_modify_index = 800;
    let v1 = h.state.upsert_job(v1);
    run(&mut h, &eval_for(&v1, "job-register"));
    let placed = placed(&h);
    let mut report = Vec::new();
    for a in &placed {
        let version = a.job.as_ref().unwrap().version;
        report.push((version, rack_of(&h, &a.node_id), a.previous_allocation.clone()));
    }
    eprintln!("placements (version, rack, previous): {report:?}");
    for (version, rack, _) in &report {
        let want = if *version == 0 { "r0" } else { "r1" };
        assert_eq!(rack, want, "version {version} placed on {rack}: {report:?}");
    }
    assert!(report.iter().any(|r| r.0 == 0), "a v0 replacement: {report:?}");
    assert!(report.iter().any(|r| r.0 == 1), "a v1 canary: {report:?}");
}

#[test]
fn each_version_of_a_group_is_placed_by_its_own_group_constraints() {
    each_version_is_placed_by_its_own_constraints(false);
}

#[test]
fn each_version_of_a_job_is_placed_by_its_own_job_constraints() {
    each_version_is_placed_by_its_own_constraints(true);
}
