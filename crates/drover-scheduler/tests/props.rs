//! Property tests over random clusters, jobs and existing allocations.
//!
//! Safety: no node over capacity in any dimension, no two live allocations of a job with the
//! same name index, no host port used twice on a node, preemption never evicts an allocation
//! within 10 priority of the placing job — also when it evicts for a static port held by other
//! jobs. Liveness: the count is met whenever capacity allows. Determinism: the same inputs and
//! seed give the same plan.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use drover_scheduler::State;
use drover_scheduler::fit::{self, NetworkIndex};
use drover_scheduler::harness::{Commit, Harness, MemState};
use drover_testkit::mock;
use drover_types::{Allocation, Job, SchedulerConfiguration};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Scenario {
    nodes: Vec<(i64, i64)>,                // (cpu MHz, memory MB)
    existing: Vec<(usize, i64, i64, i64)>, // (node, priority, cpu, memory)
    count: i64,
    cpu: i64,
    memory: i64,
    priority: i64,
    preempt: bool,
    ports: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((1000i64..8000, 1024i64..16384), 1..12),
        prop::collection::vec((0usize..12, 10i64..100, 100i64..2000, 128i64..4096), 0..20),
        1i64..40,
        50i64..2000,
        64i64..4096,
        10i64..100,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(nodes, existing, count, cpu, memory, priority, preempt, ports)| Scenario {
                nodes,
                existing,
                count,
                cpu,
                memory,
                priority,
                preempt,
                ports,
            },
        )
}

fn build(s: &Scenario) -> (Harness, Job) {
    let mut state = MemState::new();
    for (i, (cpu, mem)) in s.nodes.iter().enumerate() {
        let mut n = mock::node(i as u64);
        let r = n.node_resources.as_mut().unwrap();
        r.cpu.cpu_shares = *cpu;
        r.memory.memory_mb = *mem;
        state.upsert_node(n);
    }
    let mut cfg = SchedulerConfiguration::default();
    cfg.preemption_config.service_scheduler_enabled = s.preempt;
    state.set_scheduler_config(cfg);
    // Existing allocations of other jobs, only where they fit.
    let mut n_alloc = 0u64;
    for (k, (node_ix, prio, cpu, mem)) in s.existing.iter().enumerate() {
        if *node_ix >= s.nodes.len() {
            continue;
        }
        let mut other = mock::job();
        other.id = format!("other-{k}");
        other.name = other.id.clone();
        other.priority = *prio;
        other.task_groups[0].count = 1;
        let t = other.task_groups[0].tasks[0].resources.as_mut().unwrap();
        t.cpu = *cpu;
        t.memory_mb = *mem;
        other.task_groups[0].networks.clear();
        let other = state.upsert_job(other);
        let node_id = mock::id(*node_ix as u64);
        n_alloc += 1;
        let a = mock::alloc_for(&other, 0, &node_id, mock::id(700_000 + n_alloc));
        let node = state.node(&node_id).unwrap();
        let mut with: Vec<Arc<Allocation>> = state.allocs_by_node(&node_id);
        with.push(Arc::new(a.clone()));
        let refs: Vec<&Allocation> = with.iter().map(|a| a.as_ref()).collect();
        if fit::allocs_fit(&node, &refs, false).is_ok() {
            state.upsert_allocs(vec![a]);
        }
    }
    let mut job = mock::job();
    job.priority = s.priority;
    job.task_groups[0].count = s.count;
    let t = job.task_groups[0].tasks[0].resources.as_mut().unwrap();
    t.cpu = s.cpu;
    t.memory_mb = s.memory;
    if !s.ports {
        job.task_groups[0].networks.clear();
    }
    let mut h = Harness::new(state);
    h.commit = Commit::Verify;
    (h, job)
}

fn check_safety(h: &Harness, job: &Job) -> Result<(), TestCaseError> {
    for n in h.state.nodes() {
        let live: Vec<Arc<Allocation>> = h
            .state
            .allocs_by_node(&n.id)
            .into_iter()
            .filter(|a| !a.terminal())
            .collect();
        let refs: Vec<&Allocation> = live.iter().map(|a| a.as_ref()).collect();
        prop_assert!(
            fit::allocs_fit(&n, &refs, true).is_ok(),
            "node {} over capacity: {:?}",
            n.id,
            fit::allocs_fit(&n, &refs, true)
        );
        let mut idx = NetworkIndex::new(&n);
        prop_assert!(idx.add_allocs(&refs).is_ok(), "port collision on {}", n.id);
    }
    let names: Vec<String> = live(h, job).iter().map(|a| a.name.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    prop_assert_eq!(unique.len(), names.len(), "duplicate alloc names: {:?}", names);
    for p in &h.plans {
        for v in p.node_preemptions.values().flatten() {
            let victim = h.state.alloc(&v.id).unwrap();
            let prio = victim.job.as_ref().map(|j| j.priority).unwrap_or(50);
            prop_assert!(
                job.priority - prio >= 10,
                "evicted priority {} for a priority {} job",
                prio,
                job.priority
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn placements_are_safe_and_count_is_met_when_possible(s in scenario()) {
        let (mut h, job) = build(&s);
        let j = h.state.upsert_job(job);
        run(&mut h, &eval_for(&j, "job-register"));
        check_safety(&h, &j)?;

        // Liveness: if every allocation fits in what is free (ignoring nothing), count is met.
        if !s.preempt {
            let ask = fit::group_ask(&j.task_groups[0], false);
            let mut slots = 0i64;
            for n in h.state.nodes() {
                let mut free = fit::node_capacity(&n);
                let before: Vec<Arc<Allocation>> = h.state.allocs_by_node(&n.id).into_iter()
                    .filter(|a| !a.terminal() && a.job_id != j.id).collect();
                for a in &before { free.sub(&fit::alloc_usage(a)); }
                let per_cpu = if ask.cpu > 0 { free.cpu / ask.cpu } else { i64::MAX };
                let per_mem = if ask.memory_mb > 0 { free.memory_mb / ask.memory_mb } else { i64::MAX };
                let per_disk = if ask.disk_mb > 0 { free.disk_mb / ask.disk_mb } else { i64::MAX };
                slots += per_cpu.min(per_mem).min(per_disk).max(0);
            }
            let placed = live(&h, &j).len() as i64;
            if slots >= s.count {
                prop_assert_eq!(placed, s.count, "capacity for {} but placed {}", slots, placed);
            } else {
                prop_assert_eq!(placed, slots, "placed more or fewer than the {} slots", slots);
            }
        }
    }

    /// Port preemption: some existing allocations hold host port 8080 and the placing job asks
    /// for static port 8080 with preemption on. Whatever is evicted, no node ends over
    /// capacity or with a port used twice, and no victim is within 10 priority of the job.
    #[test]
    fn static_port_preemption_is_safe(s in scenario(), holders in prop::collection::vec(any::<bool>(), 20)) {
        let mut s = s;
        s.preempt = true;
        let (mut h, mut job) = build(&s);
        let mut holding: BTreeSet<String> = BTreeSet::new();
        let others: Vec<Arc<Allocation>> = h.state.allocs().into_iter().collect();
        for (k, a) in others.iter().enumerate() {
            if !holders.get(k).copied().unwrap_or(false) || !holding.insert(a.node_id.clone()) {
                continue;
            }
            let mut holder_job = (**a.job.as_ref().unwrap()).clone();
            holder_job.task_groups[0].networks = vec![port_8080_ask()];
            let holder_job = h.state.upsert_job(holder_job);
            let mut held = (**a).clone();
            held.job = Some(holder_job);
            if let Some(r) = held.allocated_resources.as_mut() {
                r.shared.ports = vec![drover_types::alloc::AllocatedPortMapping {
                    label: "p".into(),
                    value: 8080,
                    to: 8080,
                    ..Default::default()
                }];
            }
            h.state.upsert_allocs(vec![held]);
        }
        job.task_groups[0].networks = vec![port_8080_ask()];
        let j = h.state.upsert_job(job);
        run(&mut h, &eval_for(&j, "job-register"));
        check_safety(&h, &j)?;
        // At most one allocation of the job per node (one port 8080 per node).
        let per_node: BTreeSet<String> = live(&h, &j).iter().map(|a| a.node_id.clone()).collect();
        prop_assert_eq!(per_node.len(), live(&h, &j).len());
    }

    #[test]
    fn same_inputs_same_plan(s in scenario()) {
        let plan_of = || {
            let (mut h, job) = build(&s);
            let j = h.state.upsert_job(job);
            run(&mut h, &eval_for(&j, "job-register"));
            h.plans.iter().map(|p| {
                // Alloc IDs come from the test's ID source; the decision is name → node (+ ports).
                let m: BTreeMap<String, Vec<(String, String)>> = p.node_allocation.iter()
                    .map(|(n, v)| (n.clone(), v.iter().map(|a| {
                        let ports = a.allocated_resources.as_ref()
                            .map(|r| format!("{:?}", r.shared.ports.iter().map(|p| p.value).collect::<Vec<_>>()))
                            .unwrap_or_default();
                        (a.name.clone(), ports)
                    }).collect()))
                    .collect();
                m
            }).collect::<Vec<_>>()
        };
        prop_assert_eq!(plan_of(), plan_of());
    }
}

/// A group network asking for static host port 8080.
fn port_8080_ask() -> drover_types::job::NetworkResource {
    drover_types::job::NetworkResource {
        reserved_ports: vec![drover_types::job::Port {
            label: "p".into(),
            value: 8080,
            ..Default::default()
        }],
        ..Default::default()
    }
}
