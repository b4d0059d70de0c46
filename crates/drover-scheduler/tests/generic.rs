//! The generic scheduler (service, batch) through the recording harness: each test seeds a
//! state, processes one evaluation, and asserts the recorded plan and evaluation.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use drover_scheduler::State;
use drover_scheduler::harness::Commit;
use drover_testkit::mock;
use drover_types::alloc::{DesiredTransition, TaskState, client_status};
use drover_types::job::{Affinity, Constraint, Spread, SpreadTarget, UpdateStrategy};
use drover_types::node::DrainStrategy;
use drover_types::time::{SECOND, Timestamp};
use drover_types::{Allocation, SchedulerConfiguration};

#[test]
fn service_register_places_every_allocation_and_explains_it() {
    let mut h = harness(10);
    let job = register(&mut h, mock::job());
    assert_eq!(h.plans.len(), 1);
    let allocs = placed(&h);
    assert_eq!(allocs.len(), 10);
    let names: BTreeSet<String> = allocs.iter().map(|a| a.name.clone()).collect();
    assert_eq!(names, (0..10).map(|i| format!("web.web[{i}]")).collect());
    for a in &allocs {
        assert_eq!(a.desired_status, "run");
        assert_eq!(a.client_status, "pending");
        let m = a.metrics.as_ref().expect("every placement has metrics");
        assert!(m.nodes_evaluated > 0);
        assert!(!m.score_meta_data.is_empty() && m.score_meta_data.len() <= 5);
        assert!(m.score_meta_data[0].scores.contains_key("binpack"));
        let port = &a.allocated_resources.as_ref().unwrap().shared.ports[0];
        assert_eq!(port.label, "http");
        assert!(
            (20000..=32000).contains(&port.value),
            "dynamic port {}",
            port.value
        );
    }
    let e = h.last_eval().unwrap();
    assert_eq!(e.status, "complete");
    assert!(e.failed_tg_allocs.is_empty());
    assert!(h.create_evals.is_empty(), "no blocked eval when everything fits");
    assert_eq!(
        e.plan_annotations.as_ref().unwrap().desired_tg_updates["web"].place,
        10
    );
    assert_eq!(live(&h, &job).len(), 10);
}

#[test]
fn same_inputs_same_plan() {
    let node_of = || {
        let mut h = harness(20);
        register(&mut h, mock::job());
        let mut v: Vec<(String, String)> = placed(&h)
            .iter()
            .map(|a| (a.name.clone(), a.node_id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(node_of(), node_of());
}

#[test]
fn scale_down_stops_highest_indexes() {
    let mut h = harness(10);
    let mut job = (*register(&mut h, mock::job())).clone();
    job.task_groups[0].count = 3;
    job.job_modify_index = 200;
    let j = h.state.upsert_job(job);
    run(&mut h, &eval_for(&j, "job-register"));
    let stops = stopped(&h);
    assert_eq!(stops.len(), 7);
    let mut idx: Vec<u64> = stops.iter().filter_map(|a| a.index()).collect();
    idx.sort();
    assert_eq!(idx, vec![3, 4, 5, 6, 7, 8, 9]);
    assert!(
        stops
            .iter()
            .all(|a| a.desired_description == "alloc not needed due to job update")
    );
    assert_eq!(live(&h, &j).len(), 3);
}

#[test]
fn job_stop_stops_everything() {
    let mut h = harness(4);
    let mut job = (*register(&mut h, mock::job())).clone();
    job.stop = true;
    job.job_modify_index = 300;
    let j = h.state.upsert_job(job);
    run(&mut h, &eval_for(&j, "job-deregister"));
    assert_eq!(stopped(&h).len(), 10);
    assert!(live(&h, &j).is_empty());
}

#[test]
fn too_small_cluster_reports_exhausted_dimension_and_blocks() {
    let mut h = harness(1);
    let mut job = mock::job();
    job.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 3000;
    job.task_groups[0].count = 4;
    register(&mut h, job);
    assert_eq!(placed(&h).len(), 2, "8192 - 256 reserved fits two 3000 MB allocs");
    let e = h.last_eval().unwrap();
    let m = &e.failed_tg_allocs["web"];
    assert_eq!(m.dimension_exhausted.get("memory"), Some(&1));
    assert_eq!(m.nodes_exhausted, 1);
    assert_eq!(
        m.coalesced_failures, 1,
        "the 4th failure is coalesced into the 3rd"
    );
    assert_eq!(e.queued_allocations["web"], 2);
    assert_eq!(h.create_evals.len(), 1);
    let blocked = &h.create_evals[0];
    assert_eq!(
        (blocked.status.as_str(), blocked.triggered_by.as_str()),
        ("blocked", "queued-allocs")
    );
    assert_eq!(e.blocked_eval, blocked.id);
    assert!(
        blocked.class_eligibility.values().any(|v| *v),
        "{:?}",
        blocked.class_eligibility
    );
}

#[test]
fn constraints_and_missing_drivers_are_named_in_the_metrics() {
    let mut h = harness(3);
    let mut job = mock::job();
    job.constraints.push(Constraint {
        l_target: "${attr.kernel.name}".into(),
        r_target: "windows".into(),
        operand: "=".into(),
    });
    register(&mut h, job);
    let m = &h.last_eval().unwrap().failed_tg_allocs["web"];
    assert_eq!(m.nodes_filtered, 3);
    // Every node is explained by the constraint, also those the class cache skipped.
    assert_eq!(
        m.constraint_filtered.get("${attr.kernel.name} = windows"),
        Some(&3),
        "{m:?}"
    );
    // ClassFiltered is keyed by the operator's node class; these nodes have none.
    assert!(m.class_filtered.is_empty(), "{m:?}");

    let mut h = harness(3);
    let mut job = mock::job();
    job.task_groups[0].tasks[0].driver = "qemu".into();
    register(&mut h, job);
    let m = &h.last_eval().unwrap().failed_tg_allocs["web"];
    assert_eq!(
        m.constraint_filtered.get("missing driver \"qemu\""),
        Some(&3),
        "{m:?}"
    );
}

#[test]
fn distinct_hosts_caps_one_per_node() {
    let mut h = harness(2);
    let mut job = mock::job();
    job.task_groups[0].count = 3;
    job.constraints.push(Constraint {
        operand: "distinct_hosts".into(),
        ..Default::default()
    });
    register(&mut h, job);
    let allocs = placed(&h);
    assert_eq!(allocs.len(), 2);
    assert_ne!(allocs[0].node_id, allocs[1].node_id);
    assert!(h.last_eval().unwrap().failed_tg_allocs.contains_key("web"));
}

#[test]
fn lost_allocations_are_replaced_elsewhere() {
    let mut h = harness(4);
    let job = register(&mut h, mock::job());
    let victim_node = placed(&h)[0].node_id.clone();
    let mut n = (*h.state.node(&victim_node).unwrap()).clone();
    n.status = "down".into();
    h.state.upsert_node(n);
    run(&mut h, &eval_for(&job, "node-update"));
    let stops = stopped(&h);
    assert!(!stops.is_empty());
    assert!(
        stops
            .iter()
            .all(|a| a.node_id == victim_node && a.client_status == client_status::LOST)
    );
    let replacements = placed(&h);
    assert_eq!(replacements.len(), stops.len());
    assert!(replacements.iter().all(|a| a.node_id != victim_node));
    let stop_names: BTreeSet<_> = stops.iter().map(|a| a.name.clone()).collect();
    let new_names: BTreeSet<_> = replacements.iter().map(|a| a.name.clone()).collect();
    assert_eq!(stop_names, new_names, "replacements keep the names");
    assert_eq!(live(&h, &job).len(), 10);
}

#[test]
fn draining_node_allocations_migrate() {
    let mut h = harness(3);
    let job = register(&mut h, mock::job());
    let node_id = placed(&h)[0].node_id.clone();
    let mut n = (*h.state.node(&node_id).unwrap()).clone();
    n.drain_strategy = Some(DrainStrategy::default());
    h.state.upsert_node(n);
    // The drainer marks allocations for migration.
    let marked: Vec<Allocation> = h
        .state
        .allocs_by_node(&node_id)
        .iter()
        .map(|a| Allocation {
            desired_transition: DesiredTransition {
                migrate: Some(true),
                ..Default::default()
            },
            ..(**a).clone()
        })
        .collect();
    let count = marked.len();
    h.state.upsert_allocs(marked);
    run(&mut h, &eval_for(&job, "node-drain"));
    let stops = stopped(&h);
    assert_eq!(stops.len(), count);
    assert!(
        stops
            .iter()
            .all(|a| a.desired_description == "alloc is being migrated")
    );
    assert!(placed(&h).iter().all(|a| a.node_id != node_id));
    assert_eq!(live(&h, &job).len(), 10);
}

/// Marks the job's deployment successful: allocations of an active deployment are not
/// rescheduled (the deployment fails first).
fn finish_deployment(h: &mut Harness, job: &Arc<drover_types::Job>) {
    if let Some(d) = h.state.latest_deployment(&job.namespace, &job.id) {
        let mut d = (*d).clone();
        d.status = "successful".into();
        h.state.upsert_deployment(d);
    }
}

fn fail_one(h: &mut Harness, job: &Arc<drover_types::Job>, finished_at: i64) -> Allocation {
    finish_deployment(h, job);
    let a = (*live(h, job)[0]).clone();
    let mut states = std::collections::BTreeMap::new();
    states.insert(
        "web".to_string(),
        TaskState {
            state: "dead".into(),
            failed: true,
            finished_at: Some(Timestamp(finished_at)),
            ..Default::default()
        },
    );
    let failed = Allocation {
        client_status: client_status::FAILED.into(),
        task_states: states,
        modify_time: finished_at,
        ..a
    };
    h.state.upsert_allocs(vec![failed.clone()]);
    failed
}

use drover_scheduler::harness::Harness;

#[test]
fn failed_service_alloc_is_rescheduled_later_then_now() {
    let mut h = harness(3);
    let job = register(&mut h, mock::job());
    // Failed just now: the 30 s exponential delay has not passed → follow-up eval.
    let failed = fail_one(&mut h, &job, NOW);
    run(&mut h, &eval_for(&job, "alloc-failure"));
    assert_eq!(
        h.create_evals.len(),
        1,
        "a follow-up eval for the delayed reschedule"
    );
    let follow = &h.create_evals[0];
    assert_eq!(follow.triggered_by, "alloc-reschedule");
    assert_eq!(follow.wait_until, Some(Timestamp(NOW + 30 * SECOND)));
    assert_eq!(
        h.last_eval()
            .unwrap()
            .plan_annotations
            .as_ref()
            .unwrap()
            .desired_tg_updates["web"]
            .reschedule_later,
        1
    );

    // Later: the follow-up runs after the delay → reschedule now, penalising the old node.
    let mut h2 = harness(3);
    let job2 = register(&mut h2, mock::job());
    let failed2 = fail_one(&mut h2, &job2, NOW - 60 * SECOND);
    run(&mut h2, &eval_for(&job2, "alloc-failure"));
    let new = placed(&h2);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].previous_allocation, failed2.id);
    assert_eq!(new[0].name, failed2.name);
    let tracker = new[0].reschedule_tracker.as_ref().expect("tracker");
    assert_eq!(tracker.events.len(), 1);
    assert_eq!(tracker.events[0].prev_node_id, failed2.node_id);
    assert_eq!(tracker.events[0].delay, 30 * SECOND);
    let m = new[0].metrics.as_ref().unwrap();
    let penalised = m.score_meta_data.iter().find(|s| s.node_id == failed2.node_id);
    if let Some(p) = penalised {
        assert_eq!(p.scores.get("node-reschedule-penalty"), Some(&-1.0));
    }
    let _ = failed;
}

#[test]
fn batch_complete_allocations_are_never_replaced() {
    let mut h = harness(3);
    let job = register(&mut h, mock::batch_job());
    let done: Vec<Allocation> = live(&h, &job)
        .iter()
        .take(4)
        .map(|a| Allocation {
            client_status: client_status::COMPLETE.into(),
            ..(**a).clone()
        })
        .collect();
    h.state.upsert_allocs(done);
    run(&mut h, &eval_for(&job, "job-register"));
    assert!(
        placed(&h).is_empty() || h.plans.len() == 1,
        "nothing new is placed"
    );
    assert_eq!(h.plans.len(), 1, "a no-op eval submits no plan");
}

#[test]
fn destructive_update_respects_max_parallel_and_creates_a_deployment() {
    let mut h = harness(10);
    let mut job = (*register(&mut h, mock::job())).clone();
    job.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 300;
    job.task_groups[0].update = Some(UpdateStrategy {
        max_parallel: Some(2),
        ..UpdateStrategy::nomad_default()
    });
    job.version = 1;
    job.job_modify_index = 500;
    let j = h.state.upsert_job(job);
    run(&mut h, &eval_for(&j, "job-register"));
    let plan = h.plans.last().unwrap();
    assert_eq!(stopped(&h).len(), 2, "two destructive updates at a time");
    assert_eq!(placed(&h).len(), 2);
    assert!(
        stopped(&h)
            .iter()
            .all(|a| a.desired_description == "alloc is being updated due to job update")
    );
    let d = plan.deployment.as_ref().expect("a deployment tracks the update");
    assert_eq!(d.task_groups["web"].desired_total, 10);
    assert!(placed(&h).iter().all(|a| a.deployment_id == d.id));
    let u = &h
        .last_eval()
        .unwrap()
        .plan_annotations
        .as_ref()
        .unwrap()
        .desired_tg_updates["web"];
    assert_eq!((u.destructive_update, u.ignore), (2, 8));
}

#[test]
fn in_place_update_keeps_allocations() {
    let mut h = harness(5);
    let mut job = (*register(&mut h, mock::job())).clone();
    job.task_groups[0].constraints.push(Constraint {
        l_target: "${attr.kernel.name}".into(),
        r_target: "linux".into(),
        operand: "=".into(),
    });
    job.job_modify_index = 600;
    let j = h.state.upsert_job(job);
    run(&mut h, &eval_for(&j, "job-register"));
    assert!(stopped(&h).is_empty());
    let updated = placed(&h);
    assert_eq!(updated.len(), 10);
    assert!(
        updated
            .iter()
            .all(|a| a.job.as_ref().unwrap().job_modify_index == 600)
    );
    assert_eq!(
        h.last_eval()
            .unwrap()
            .plan_annotations
            .as_ref()
            .unwrap()
            .desired_tg_updates["web"]
            .in_place_update,
        10
    );
}

#[test]
fn spread_balances_across_racks() {
    let mut h = harness(0);
    for i in 0..6 {
        let mut n = mock::node(i);
        n.meta
            .insert("rack".into(), if i < 3 { "r1".into() } else { "r2".into() });
        h.state.upsert_node(n);
    }
    let mut job = mock::job();
    job.task_groups[0].count = 6;
    job.spreads.push(Spread {
        attribute: "${meta.rack}".into(),
        weight: 100,
        spread_target: vec![],
    });
    register(&mut h, job);
    let rack_of = |node_id: &str| h.state.node(node_id).unwrap().meta["rack"].clone();
    let r1 = placed(&h).iter().filter(|a| rack_of(&a.node_id) == "r1").count();
    assert_eq!(r1, 3, "even spread puts half on each rack");

    let mut h = harness(0);
    for i in 0..6 {
        let mut n = mock::node(i);
        n.meta
            .insert("rack".into(), if i < 3 { "r1".into() } else { "r2".into() });
        h.state.upsert_node(n);
    }
    let mut job = mock::job();
    job.task_groups[0].count = 10;
    job.spreads.push(Spread {
        attribute: "${meta.rack}".into(),
        weight: 100,
        spread_target: vec![
            SpreadTarget {
                value: "r1".into(),
                percent: 80,
            },
            SpreadTarget {
                value: "r2".into(),
                percent: 20,
            },
        ],
    });
    register(&mut h, job);
    let rack_of = |node_id: &str| h.state.node(node_id).unwrap().meta["rack"].clone();
    let r1 = placed(&h).iter().filter(|a| rack_of(&a.node_id) == "r1").count();
    assert_eq!(r1, 8, "targets: 80% on r1");
}

#[test]
fn affinity_prefers_matching_nodes() {
    let mut h = harness(0);
    for i in 0..8 {
        let mut n = mock::node(i);
        n.node_class = if i == 5 { "gpu".into() } else { "std".into() };
        h.state.upsert_node(n);
    }
    let mut job = mock::job();
    job.task_groups[0].count = 1;
    job.affinities.push(Affinity {
        l_target: "${node.class}".into(),
        r_target: "gpu".into(),
        operand: "=".into(),
        weight: 100,
    });
    register(&mut h, job);
    assert_eq!(placed(&h)[0].node_id, mock::id(5));
}

fn low_priority_filler(h: &mut Harness, priority: i64) -> Arc<drover_types::Job> {
    let mut filler = mock::job();
    filler.id = "filler".into();
    filler.name = "filler".into();
    filler.priority = priority;
    filler.task_groups[0].count = 1;
    filler.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .unwrap()
        .memory_mb = 7000;
    register(h, filler)
}

#[test]
fn preemption_evicts_only_much_lower_priority_work() {
    let mut h = harness(1);
    let mut cfg = SchedulerConfiguration::default();
    cfg.preemption_config.service_scheduler_enabled = true;
    h.state.set_scheduler_config(cfg);
    let filler = low_priority_filler(&mut h, 30);
    assert_eq!(live(&h, &filler).len(), 1);

    let mut urgent = mock::job();
    urgent.id = "urgent".into();
    urgent.name = "urgent".into();
    urgent.priority = 80;
    urgent.task_groups[0].count = 1;
    urgent.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .unwrap()
        .memory_mb = 4000;
    register(&mut h, urgent);
    let plan = h.plans.last().unwrap();
    let evicted: Vec<&Allocation> = plan.node_preemptions.values().flatten().collect();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].job_id, "filler");
    assert_eq!(evicted[0].desired_status, "evict");
    let new = placed(&h);
    assert_eq!(new[0].preempted_allocations, vec![evicted[0].id.clone()]);
    assert_eq!(evicted[0].preempted_by_allocation, new[0].id);
    let ann = h.last_eval().unwrap().plan_annotations.as_ref().unwrap();
    assert_eq!(ann.desired_tg_updates["web"].preemptions, 1);
    assert_eq!(ann.preempted_allocs.len(), 1);

    // Priority 75 vs 70: within 10, never a victim.
    let mut h = harness(1);
    let mut cfg = SchedulerConfiguration::default();
    cfg.preemption_config.service_scheduler_enabled = true;
    h.state.set_scheduler_config(cfg);
    low_priority_filler(&mut h, 70);
    let mut close = mock::job();
    close.id = "close".into();
    close.name = "close".into();
    close.priority = 75;
    close.task_groups[0].count = 1;
    close.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .unwrap()
        .memory_mb = 4000;
    register(&mut h, close);
    assert!(
        h.plans
            .last()
            .map(|p| p.node_preemptions.is_empty())
            .unwrap_or(true)
    );
    assert!(h.last_eval().unwrap().failed_tg_allocs.contains_key("web"));
}

#[test]
fn rejected_plans_are_retried_then_blocked() {
    let mut h = harness(3);
    h.commit = Commit::Reject;
    let job = h.state.upsert_job(mock::job());
    run(&mut h, &eval_for(&job, "job-register"));
    assert_eq!(h.plans.len(), 5, "service: five attempts");
    let e = h.last_eval().unwrap();
    assert_eq!(e.status, "failed");
    assert_eq!(e.status_description, "maximum attempts reached (5)");
    assert_eq!(h.create_evals.last().unwrap().triggered_by, "max-plan-attempts");
}

#[test]
fn verified_commit_never_overfills_a_node() {
    let mut h = harness(2);
    h.commit = Commit::Verify;
    let mut job = mock::job();
    job.task_groups[0].count = 40;
    job.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 500;
    register(&mut h, job.clone());
    for n in h.state.nodes() {
        let used: i64 = h
            .state
            .allocs_by_node(&n.id)
            .iter()
            .filter(|a| !a.terminal())
            .map(|a| {
                a.allocated_resources
                    .as_ref()
                    .unwrap()
                    .tasks
                    .values()
                    .map(|t| t.memory.memory_mb)
                    .sum::<i64>()
            })
            .sum();
        assert!(used <= 8192 - 256, "node {} uses {used} MB", n.id);
    }
    let e = h.last_eval().unwrap();
    assert_eq!(e.status, "complete");
    assert!(
        e.failed_tg_allocs.contains_key("web"),
        "40 × 500 MB cannot fit on two nodes"
    );
}

#[test]
fn unknown_triggers_fail_the_eval() {
    let mut h = harness(1);
    let job = h.state.upsert_job(mock::job());
    run(&mut h, &eval_for(&job, "scheduled"));
    let e = h.last_eval().unwrap();
    assert_eq!(e.status, "failed");
    assert!(e.status_description.contains("scheduled"));
}

#[test]
fn canaries_go_first_and_updates_wait_for_promotion() {
    let mut h = harness(10);
    let job = register(&mut h, mock::job());
    // Mark the first deployment done so the update gets its own.
    if let Some(d) = h.state.latest_deployment(&job.namespace, &job.id) {
        let mut d = (*d).clone();
        d.status = "successful".into();
        h.state.upsert_deployment(d);
    }
    let mut v1 = (*job).clone();
    v1.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 300;
    v1.task_groups[0].update = Some(UpdateStrategy {
        canary: Some(1),
        max_parallel: Some(2),
        ..UpdateStrategy::nomad_default()
    });
    v1.version = 1;
    v1.job_modify_index = 800;
    let v1 = h.state.upsert_job(v1);
    run(&mut h, &eval_for(&v1, "job-register"));
    let plan = h.plans.last().unwrap();
    assert!(stopped(&h).is_empty(), "no destructive update before promotion");
    let new = placed(&h);
    assert_eq!(new.len(), 1, "one canary");
    assert!(new[0].deployment_status.as_ref().is_some_and(|s| s.canary));
    let d = plan.deployment.as_ref().expect("deployment for the new version");
    assert_eq!(d.task_groups["web"].desired_canaries, 1);
    assert_eq!(d.task_groups["web"].desired_total, 10);
    let u = &h
        .last_eval()
        .unwrap()
        .plan_annotations
        .as_ref()
        .unwrap()
        .desired_tg_updates["web"];
    assert_eq!((u.canary, u.destructive_update), (1, 0));

    // Promote: the canary is healthy and the deployment promoted → destructive updates start.
    let mut d = (*h.state.latest_deployment(&v1.namespace, &v1.id).unwrap()).clone();
    let st = d.task_groups.get_mut("web").unwrap();
    st.promoted = true;
    st.healthy_allocs = 1;
    st.placed_canaries = vec![new[0].id.clone()];
    h.state.upsert_deployment(d);
    let canary = (*h.state.alloc(&new[0].id).unwrap()).clone();
    let healthy = Allocation {
        client_status: client_status::RUNNING.into(),
        deployment_status: Some(drover_types::alloc::AllocDeploymentStatus {
            healthy: Some(true),
            canary: true,
            ..Default::default()
        }),
        ..canary
    };
    h.state.upsert_allocs(vec![healthy]);
    run(&mut h, &eval_for(&v1, "deployment-watcher"));
    let stops = stopped(&h);
    let updates: Vec<&Allocation> = stops
        .iter()
        .filter(|a| a.desired_description == "alloc is being updated due to job update")
        .collect();
    assert_eq!(
        updates.len(),
        2,
        "max_parallel 2 destructive updates after promotion: {stops:?}"
    );
    // The promoted canary takes the place of the old allocation with its name.
    let replaced: Vec<&Allocation> = stops
        .iter()
        .filter(|a| a.desired_description == "alloc not needed due to job update")
        .collect();
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].name, new[0].name);
}

#[test]
fn while_canaries_wait_a_lost_allocation_is_replaced_with_its_own_version() {
    let mut h = harness(10);
    let job = register(&mut h, mock::job());
    if let Some(d) = h.state.latest_deployment(&job.namespace, &job.id) {
        let mut d = (*d).clone();
        d.status = "successful".into();
        h.state.upsert_deployment(d);
    }
    let mut v1 = (*job).clone();
    v1.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 300;
    v1.task_groups[0].update = Some(UpdateStrategy {
        canary: Some(1),
        ..UpdateStrategy::nomad_default()
    });
    v1.version = 1;
    v1.job_modify_index = 800;
    let v1 = h.state.upsert_job(v1);
    run(&mut h, &eval_for(&v1, "job-register"));
    assert_eq!(placed(&h).len(), 1, "the canary");
    // A node with a version-0 allocation goes down before the canary is promoted.
    let victim = live(&h, &v1)
        .into_iter()
        .find(|a| a.job.as_ref().is_some_and(|j| j.version == 0))
        .expect("a v0 alloc");
    let mut node = (*h.state.node(&victim.node_id).unwrap()).clone();
    node.status = "down".into();
    h.state.upsert_node(node);
    run(&mut h, &eval_for(&v1, "node-update"));
    let replacement: Vec<Allocation> = placed(&h)
        .into_iter()
        .filter(|a| a.previous_allocation == victim.id)
        .collect();
    assert_eq!(replacement.len(), 1, "{:?}", placed(&h));
    let r = &replacement[0];
    assert_eq!(r.job.as_ref().unwrap().version, 0, "not the unpromoted version 1");
    assert!(!r.deployment_status.as_ref().is_some_and(|s| s.canary));
    let task = &r.allocated_resources.as_ref().unwrap().tasks["web"];
    assert_eq!(task.memory.memory_mb, 256, "the old version's resources");
}

/// A harness whose nodes expose host volumes `volumes(i)` on node `i`.
fn harness_with_volumes(
    n: u64,
    volumes: impl Fn(u64) -> Vec<&'static str>,
) -> drover_scheduler::harness::Harness {
    let mut s = drover_scheduler::harness::MemState::new();
    for i in 0..n {
        let mut node = mock::node(i);
        for v in volumes(i) {
            node.host_volumes.insert(
                v.to_string(),
                drover_types::node::HostVolumeInfo {
                    path: format!("/srv/{v}"),
                    read_only: false,
                    id: String::new(),
                },
            );
        }
        s.upsert_node(node);
    }
    drover_scheduler::harness::Harness::new(s)
}

fn with_volume(
    mut job: drover_types::Job,
    source: &str,
    per_alloc: bool,
    access_mode: &str,
) -> drover_types::Job {
    job.task_groups[0].volumes.insert(
        "data".into(),
        drover_types::job::VolumeRequest {
            name: "data".into(),
            volume_type: "host".into(),
            source: source.into(),
            per_alloc,
            access_mode: access_mode.into(),
            ..Default::default()
        },
    );
    job
}

#[test]
fn per_alloc_host_volumes_put_each_index_on_the_node_holding_its_volume() {
    // Node i holds db[2 - i]: index k must land on node 2 - k, whatever the shuffle says.
    const NAMES: [&str; 3] = ["db[2]", "db[1]", "db[0]"];
    let mut h = harness_with_volumes(3, |i| vec![NAMES[i as usize]]);
    let mut job = with_volume(mock::job(), "db", true, "");
    job.task_groups[0].count = 3;
    register(&mut h, job);
    let allocs = placed(&h);
    assert_eq!(allocs.len(), 3);
    for a in &allocs {
        let index = a.name.rsplit('[').next().unwrap().trim_end_matches(']');
        let node = h.state.node(&a.node_id).unwrap();
        assert!(
            node.host_volumes.contains_key(&format!("db[{index}]")),
            "{} placed on a node without db[{index}]",
            a.name
        );
    }
}

#[test]
fn a_single_writer_host_volume_takes_one_writer_per_node() {
    let mut h = harness_with_volumes(1, |_| vec!["shared"]);
    let mut job = with_volume(mock::job(), "shared", false, "single-node-single-writer");
    job.task_groups[0].count = 2;
    register(&mut h, job);
    assert_eq!(placed(&h).len(), 1, "the second writer does not fit");
    let e = h.last_eval().unwrap();
    let m = &e.failed_tg_allocs["web"];
    assert_eq!(
        m.dimension_exhausted
            .get("host volume: shared has a single writer"),
        Some(&1),
        "{m:?}"
    );
    // Many writers are fine when the access mode says so.
    let mut h = harness_with_volumes(1, |_| vec!["shared"]);
    let mut job = with_volume(mock::job(), "shared", false, "single-node-multi-writer");
    job.task_groups[0].count = 2;
    register(&mut h, job);
    assert_eq!(placed(&h).len(), 2);
}
