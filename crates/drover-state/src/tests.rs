//! Unit and property tests of the FSM commands and the snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::{AllocDeploymentStatus, DesiredTransition, TaskState};
use drover_types::eval::DeploymentStatusUpdate;
use drover_types::node::DrainStrategy;
use drover_types::{
    AllocMetric, Allocation, Deployment, Evaluation, Job, Node, SchedulerConfiguration, TaskGroup,
};
use proptest::prelude::*;

use crate::snapshot::JOB_VERSIONS_KEPT;
use crate::{AllocPreemptDiff, AllocStopDiff, ApplyOutcome, Command, StateError, StateStore, Table};

fn job(id: &str, groups: &[(&str, i64)]) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        namespace: "default".into(),
        job_type: "service".into(),
        datacenters: vec!["dc1".into()],
        task_groups: groups
            .iter()
            .map(|(n, c)| TaskGroup {
                name: n.to_string(),
                count: *c,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        name: id.into(),
        datacenter: "dc1".into(),
        status: "ready".into(),
        ..Default::default()
    }
}

fn eval(id: &str, job_id: &str, status: &str) -> Evaluation {
    Evaluation {
        id: id.into(),
        namespace: "default".into(),
        job_id: job_id.into(),
        eval_type: "service".into(),
        triggered_by: "job-register".into(),
        priority: 50,
        status: status.into(),
        ..Default::default()
    }
}

fn alloc(id: &str, job_id: &str, node_id: &str, eval_id: &str, tg: &str) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: "default".into(),
        job_id: job_id.into(),
        node_id: node_id.into(),
        eval_id: eval_id.into(),
        task_group: tg.into(),
        name: format!("{job_id}.{tg}[0]"),
        desired_status: "run".into(),
        ..Default::default()
    }
}

fn plan(allocs: Vec<Allocation>) -> Command {
    Command::ApplyPlanResults {
        job: None,
        allocs_updated: allocs,
        allocs_stopped: vec![],
        allocs_preempted: vec![],
        deployment: None,
        deployment_updates: vec![],
        eval_id: String::new(),
        preemption_evals: vec![],
    }
}

fn ok(store: &StateStore, index: u64, cmd: Command) -> ApplyOutcome {
    match store.apply(index, cmd) {
        Ok(o) => o,
        Err(e) => panic!("apply at {index} failed: {e}"),
    }
}

fn client_status(store: &StateStore, index: u64, id: &str, status: &str) -> ApplyOutcome {
    ok(
        store,
        index,
        Command::UpdateAllocsFromClient {
            allocs: vec![Allocation {
                id: id.into(),
                client_status: status.into(),
                ..Default::default()
            }],
            evals: vec![],
        },
    )
}

/// A store with job "web" (group "g", count 2), node "n1" and eval "e1" at indexes 1..=3.
fn seeded() -> StateStore {
    let store = StateStore::new();
    ok(&store, 1, Command::UpsertNode { node: node("n1") });
    ok(
        &store,
        2,
        Command::UpsertJob {
            job: job("web", &[("g", 2)]),
            eval: None,
        },
    );
    ok(
        &store,
        3,
        Command::UpsertEvals {
            evals: vec![eval("e1", "web", "pending")],
        },
    );
    store
}

#[test]
fn upsert_job_sets_server_fields_and_summary() {
    let store = StateStore::new();
    let mut j = job("web", &[("g", 2), ("h", 1)]);
    j.submit_time = 1234;
    let out = ok(
        &store,
        5,
        Command::UpsertJob {
            job: j,
            eval: Some(eval("e1", "web", "pending")),
        },
    );
    assert!(out.job_changed);
    assert_eq!(out.job_modify_index, Some((5, 5)));
    assert_eq!(out.evals_to_enqueue, vec!["e1".to_string()]);
    let s = store.snapshot();
    let stored = s.job("default", "web").unwrap();
    assert_eq!(
        (
            stored.version,
            stored.create_index,
            stored.modify_index,
            stored.job_modify_index
        ),
        (0, 5, 5, 5)
    );
    assert_eq!(stored.submit_time, 1234);
    assert_eq!(stored.status, "pending");
    assert!(s.job_by_version("default", "web", 0).is_some());
    let sum = s.job_summary("default", "web").unwrap();
    assert_eq!(sum.summary.len(), 2);
    assert_eq!(sum.create_index, 5);
    assert_eq!(s.evals_by_job("default", "web").len(), 1);
    for t in [Table::Jobs, Table::JobVersions, Table::JobSummaries, Table::Evals] {
        assert_eq!(s.table_index(t), 5, "{t:?}");
    }
    assert_eq!(s.table_index(Table::Nodes), 0);
    assert_eq!(s.latest_index(), 5);
}

#[test]
fn unchanged_reregistration_keeps_version_and_returns_current_modify_index() {
    let store = seeded();
    let out = ok(
        &store,
        10,
        Command::UpsertJob {
            job: job("web", &[("g", 2)]),
            eval: None,
        },
    );
    assert!(!out.job_changed);
    assert_eq!(out.job_modify_index, Some((2, 2)));
    let s = store.snapshot();
    let j = s.job("default", "web").unwrap();
    assert_eq!((j.version, j.modify_index), (0, 2));
    assert_eq!(s.table_index(Table::Jobs), 2);
    assert_eq!(s.latest_index(), 10);
    // Server fields sent back by a client do not count as a change either.
    let mut echoed = (*j).clone();
    echoed.status = "running".into();
    echoed.submit_time = 999;
    let out = ok(
        &store,
        11,
        Command::UpsertJob {
            job: echoed,
            eval: None,
        },
    );
    assert!(!out.job_changed);
}

#[test]
fn changed_registration_bumps_version_and_versions_are_capped() {
    let store = seeded();
    for i in 0..10u64 {
        let out = ok(
            &store,
            10 + i,
            Command::UpsertJob {
                job: job("web", &[("g", 3 + i as i64)]),
                eval: None,
            },
        );
        assert!(out.job_changed);
        assert_eq!(out.job_modify_index, Some((10 + i, 10 + i)));
    }
    let s = store.snapshot();
    let j = s.job("default", "web").unwrap();
    assert_eq!(j.version, 10);
    assert_eq!(j.create_index, 2);
    let versions = s.job_versions("default", "web");
    assert_eq!(versions.len(), JOB_VERSIONS_KEPT);
    assert_eq!(versions[0].version, 10);
    assert_eq!(versions[5].version, 5);
    assert!(s.job_by_version("default", "web", 4).is_none());
    assert_eq!(
        s.job_by_version("default", "web", 7).unwrap().task_groups[0].count,
        9
    );
}

#[test]
fn deregister_without_purge_stops_the_job() {
    let store = seeded();
    let out = ok(
        &store,
        10,
        Command::DeregisterJob {
            namespace: "default".into(),
            job_id: "web".into(),
            purge: false,
            eval: Some(eval("e2", "web", "pending")),
        },
    );
    assert_eq!(out.job_modify_index, Some((10, 10)));
    assert_eq!(out.evals_to_enqueue, vec!["e2".to_string()]);
    let s = store.snapshot();
    let j = s.job("default", "web").unwrap();
    assert!(j.stop);
    assert_eq!(j.status, "dead");
    assert_eq!(j.version, 1);
    assert!(s.job_summary("default", "web").is_some());
    assert_eq!(s.job_versions("default", "web").len(), 2);
    // A second stop changes nothing.
    let out = ok(
        &store,
        11,
        Command::DeregisterJob {
            namespace: "default".into(),
            job_id: "web".into(),
            purge: false,
            eval: None,
        },
    );
    assert_eq!(out.job_modify_index, Some((10, 10)));
}

#[test]
fn deregister_with_purge_removes_job_versions_and_summary() {
    let store = seeded();
    ok(
        &store,
        10,
        Command::DeregisterJob {
            namespace: "".into(),
            job_id: "web".into(),
            purge: true,
            eval: None,
        },
    );
    let s = store.snapshot();
    assert!(s.job("default", "web").is_none());
    assert!(s.job_versions("default", "web").is_empty());
    assert!(s.job_summary("default", "web").is_none());
    assert_eq!(s.table_index(Table::Jobs), 10);
    // Deregistering a missing job is a no-op.
    ok(
        &store,
        11,
        Command::DeregisterJob {
            namespace: "default".into(),
            job_id: "web".into(),
            purge: true,
            eval: None,
        },
    );
}

#[test]
fn node_commands() {
    let store = StateStore::new();
    let out = ok(&store, 1, Command::UpsertNode { node: node("n1") });
    assert_eq!(out.nodes_with_capacity, vec!["n1".to_string()]);
    let n = store.snapshot().node("n1").unwrap();
    assert_eq!((n.create_index, n.modify_index), (1, 1));
    assert_eq!(n.scheduling_eligibility, "eligible");

    ok(
        &store,
        2,
        Command::UpdateNodeDrain {
            id: "n1".into(),
            drain_strategy: Some(DrainStrategy::default()),
            mark_eligible: false,
            evals: vec![],
            event: None,
        },
    );
    let n = store.snapshot().node("n1").unwrap();
    assert!(n.drain);
    assert_eq!(n.scheduling_eligibility, "ineligible");
    assert!(!n.ready());

    // Re-registration keeps drain and eligibility.
    ok(&store, 3, Command::UpsertNode { node: node("n1") });
    let n = store.snapshot().node("n1").unwrap();
    assert!(n.drain && n.drain_strategy.is_some());
    assert_eq!(n.create_index, 1);
    assert_eq!(n.modify_index, 3);

    // Eligible while draining is refused; the state is untouched.
    let err = store
        .apply(
            4,
            Command::UpdateNodeEligibility {
                id: "n1".into(),
                eligibility: "eligible".into(),
                evals: vec![],
                event: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, StateError::Invalid(_)));
    assert_eq!(store.latest_index(), 3);

    let out = ok(
        &store,
        4,
        Command::UpdateNodeDrain {
            id: "n1".into(),
            drain_strategy: None,
            mark_eligible: true,
            evals: vec![],
            event: None,
        },
    );
    assert_eq!(out.nodes_with_capacity, vec!["n1".to_string()]);
    assert!(store.snapshot().node("n1").unwrap().ready());

    ok(
        &store,
        5,
        Command::UpdateNodeStatus {
            id: "n1".into(),
            status: "down".into(),
            updated_at: 77,
            evals: vec![eval("ne", "web", "pending")],
            event: None,
        },
    );
    let s = store.snapshot();
    let n = s.node("n1").unwrap();
    assert_eq!((n.status.as_str(), n.status_updated_at), ("down", 77));
    assert!(s.eval("ne").is_some());

    ok(
        &store,
        6,
        Command::UpdateNodeEligibility {
            id: "n1".into(),
            eligibility: "ineligible".into(),
            evals: vec![],
            event: None,
        },
    );
    assert_eq!(
        store.snapshot().node("n1").unwrap().scheduling_eligibility,
        "ineligible"
    );

    ok(
        &store,
        7,
        Command::DeleteNodes {
            ids: vec!["n1".into()],
        },
    );
    assert!(store.snapshot().node("n1").is_none());
    let err = store
        .apply(
            8,
            Command::DeleteNodes {
                ids: vec!["n1".into()],
            },
        )
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound { kind: "node", .. }));
    assert!(matches!(
        store.apply(
            8,
            Command::UpdateNodeStatus {
                id: "zz".into(),
                status: "ready".into(),
                updated_at: 0,
                evals: vec![],
                event: None,
            }
        ),
        Err(StateError::NotFound { .. })
    ));
}

#[test]
fn eval_outcomes_and_completed_eval_cancels_blocked_evals() {
    let store = seeded();
    let out = ok(
        &store,
        10,
        Command::UpsertEvals {
            evals: vec![
                eval("b1", "web", "blocked"),
                eval("b2", "web", "blocked"),
                eval("x", "other", "blocked"),
            ],
        },
    );
    assert_eq!(out.evals_to_block.len(), 3);

    // A complete eval with failed groups does not cancel anything.
    let mut failed = eval("c0", "web", "complete");
    failed.failed_tg_allocs.insert("g".into(), AllocMetric::default());
    let out = ok(&store, 11, Command::UpsertEvals { evals: vec![failed] });
    assert!(out.evals_canceled.is_empty());
    assert!(out.jobs_to_untrack.is_empty());
    assert_eq!(store.snapshot().eval("b1").unwrap().status, "blocked");

    let out = ok(
        &store,
        12,
        Command::UpsertEvals {
            evals: vec![eval("c1", "web", "complete")],
        },
    );
    let mut canceled = out.evals_canceled.clone();
    canceled.sort();
    assert_eq!(canceled, vec!["b1".to_string(), "b2".to_string()]);
    assert_eq!(
        out.jobs_to_untrack,
        vec![("default".to_string(), "web".to_string())]
    );
    let s = store.snapshot();
    let b1 = s.eval("b1").unwrap();
    assert_eq!(b1.status, "canceled");
    assert_eq!(b1.modify_index, 12);
    assert_eq!(b1.create_index, 10);
    assert!(b1.status_description.contains("c1"));
    assert_eq!(s.eval("x").unwrap().status, "blocked");

    ok(
        &store,
        13,
        Command::DeleteEvals {
            evals: vec!["b1".into(), "nope".into()],
            allocs: vec![],
        },
    );
    let s = store.snapshot();
    assert!(s.eval("b1").is_none());
    assert!(!s.evals_by_job("default", "web").iter().any(|e| e.id == "b1"));
    s.check_indexes().unwrap();
}

#[test]
fn plan_results_place_stop_preempt_and_link() {
    let store = seeded();
    ok(&store, 4, Command::UpsertNode { node: node("n2") });
    let mut a1 = alloc("a1", "web", "n1", "e1", "g");
    a1.deployment_id = "d1".into();
    let a2 = alloc("a2", "web", "n2", "e1", "g");
    let mut cmd = plan(vec![a1, a2]);
    if let Command::ApplyPlanResults {
        deployment, eval_id, ..
    } = &mut cmd
    {
        *deployment = Some(Deployment {
            id: "d1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            status: "running".into(),
            ..Default::default()
        });
        *eval_id = "e1".into();
    }
    ok(&store, 5, cmd);
    let s = store.snapshot();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(
        (a1.create_index, a1.modify_index, a1.alloc_modify_index),
        (5, 5, 5)
    );
    assert_eq!(a1.client_status, "pending");
    assert_eq!(a1.job.as_ref().unwrap().id, "web", "job embedded");
    assert_eq!(s.allocs_by_node("n1").len(), 1);
    assert_eq!(s.allocs_by_job("default", "web").len(), 2);
    assert_eq!(s.allocs_by_eval("e1").len(), 2);
    assert_eq!(s.allocs_by_deployment("d1").len(), 1);
    assert_eq!(s.latest_deployment("default", "web").unwrap().id, "d1");
    assert_eq!(s.eval("e1").unwrap().modify_index, 5);
    assert_eq!(s.table_index(Table::Allocs), 5);

    client_status(&store, 6, "a1", "running");

    // Reschedule a1 (stopped, marked lost) to a3 on n2; preempt a2; move the deployment on.
    let mut a3 = alloc("a3", "web", "n2", "e2", "g");
    a3.previous_allocation = "a1".into();
    let cmd = Command::ApplyPlanResults {
        job: None,
        allocs_updated: vec![a3],
        allocs_stopped: vec![AllocStopDiff {
            id: "a1".into(),
            desired_description: "alloc is lost since its node is down".into(),
            client_status: "lost".into(),
            followup_eval_id: "f1".into(),
            modify_time: 0,
        }],
        allocs_preempted: vec![AllocPreemptDiff {
            id: "a2".into(),
            preempted_by_allocation: "a3".into(),
            modify_time: 0,
        }],
        deployment: Some(Deployment {
            id: "d2".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            status: "running".into(),
            ..Default::default()
        }),
        deployment_updates: vec![DeploymentStatusUpdate {
            deployment_id: "d1".into(),
            status: "cancelled".into(),
            status_description: "superseded".into(),
        }],
        eval_id: "e1".into(),
        preemption_evals: vec![eval("pe", "other", "pending")],
    };
    let out = ok(&store, 7, cmd);
    assert_eq!(out.evals_to_enqueue, vec!["pe".to_string()]);
    assert_eq!(out.nodes_with_capacity, vec!["n1".to_string()]);
    let s = store.snapshot();
    let a1 = s.alloc("a1").unwrap();
    assert_eq!(a1.desired_status, "stop");
    assert_eq!(a1.client_status, "lost");
    assert_eq!(a1.followup_eval_id, "f1");
    assert_eq!(a1.next_allocation, "a3", "predecessor linked");
    let a2 = s.alloc("a2").unwrap();
    assert_eq!(a2.desired_status, "evict");
    assert_eq!(a2.preempted_by_allocation, "a3");
    assert_eq!(a2.client_status, "pending");
    assert_eq!(s.allocs_by_node("n2").len(), 2);
    assert_eq!(s.latest_deployment("default", "web").unwrap().id, "d2");
    assert_eq!(s.deployment("d1").unwrap().status, "cancelled");
    assert_eq!(s.deployments_by_job("default", "web").len(), 2);
    s.check_indexes().unwrap();
}

#[test]
fn server_never_overwrites_client_status_except_lost_or_unknown() {
    let store = seeded();
    ok(&store, 4, plan(vec![alloc("a1", "web", "n1", "e1", "g")]));
    client_status(&store, 5, "a1", "running");
    // A stop asking for "complete" keeps the client's "running".
    let mut cmd = plan(vec![]);
    if let Command::ApplyPlanResults { allocs_stopped, .. } = &mut cmd {
        allocs_stopped.push(AllocStopDiff {
            id: "a1".into(),
            desired_description: "stop".into(),
            client_status: "complete".into(),
            ..Default::default()
        });
    }
    ok(&store, 6, cmd);
    assert_eq!(store.snapshot().alloc("a1").unwrap().client_status, "running");
    // An in-place update keeps client fields.
    let mut upd = alloc("a1", "web", "n1", "e3", "g");
    upd.client_status = "pending".into();
    ok(&store, 7, plan(vec![upd]));
    let s = store.snapshot();
    let a = s.alloc("a1").unwrap();
    assert_eq!(a.client_status, "running");
    assert_eq!(a.create_index, 4);
    assert_eq!(a.alloc_modify_index, 7);
    assert_eq!(s.allocs_by_eval("e3").len(), 1);
    assert!(s.allocs_by_eval("e1").is_empty());
}

#[test]
fn client_update_merges_client_fields_without_bumping_alloc_modify_index() {
    let store = seeded();
    ok(&store, 4, plan(vec![alloc("a1", "web", "n1", "e1", "g")]));
    let mut upd = Allocation {
        id: "a1".into(),
        client_status: "running".into(),
        client_description: "Tasks are running".into(),
        desired_status: "stop".into(),
        node_id: "elsewhere".into(),
        deployment_status: Some(AllocDeploymentStatus {
            healthy: Some(true),
            ..Default::default()
        }),
        modify_time: 42,
        ..Default::default()
    };
    upd.task_states.insert("t".into(), TaskState::default());
    let out = ok(
        &store,
        5,
        Command::UpdateAllocsFromClient {
            allocs: vec![
                upd,
                Allocation {
                    id: "gone".into(),
                    ..Default::default()
                },
            ],
            evals: vec![],
        },
    );
    assert!(out.nodes_with_capacity.is_empty());
    let s = store.snapshot();
    let a = s.alloc("a1").unwrap();
    assert_eq!(a.client_status, "running");
    assert_eq!(a.client_description, "Tasks are running");
    assert_eq!(a.desired_status, "run", "server field untouched");
    assert_eq!(a.node_id, "n1", "server field untouched");
    assert_eq!(a.task_states.len(), 1);
    assert_eq!(a.deployment_status.as_ref().unwrap().healthy, Some(true));
    assert_eq!((a.modify_index, a.alloc_modify_index), (5, 4));
    assert_eq!(a.modify_time, 42);
    let out = client_status(&store, 6, "a1", "failed");
    assert_eq!(out.nodes_with_capacity, vec!["n1".to_string()]);
}

#[test]
fn summary_counts_follow_status_changes() {
    let store = seeded();
    let mut e = eval("e1", "web", "complete");
    e.queued_allocations.insert("g".into(), 2);
    ok(&store, 4, Command::UpsertEvals { evals: vec![e] });
    let g = |store: &StateStore| store.snapshot().job_summary("default", "web").unwrap().summary["g"].clone();
    assert_eq!(g(&store).queued, 2);
    ok(
        &store,
        5,
        plan(vec![
            alloc("a1", "web", "n1", "e1", "g"),
            alloc("a2", "web", "n1", "e1", "g"),
        ]),
    );
    let s = g(&store);
    assert_eq!((s.queued, s.starting), (0, 2));
    client_status(&store, 6, "a1", "running");
    client_status(&store, 7, "a2", "running");
    let s = g(&store);
    assert_eq!((s.starting, s.running), (0, 2));
    client_status(&store, 8, "a1", "complete");
    client_status(&store, 9, "a2", "failed");
    let s = g(&store);
    assert_eq!((s.running, s.complete, s.failed), (0, 1, 1));
    let mut cmd = plan(vec![]);
    if let Command::ApplyPlanResults { allocs_stopped, .. } = &mut cmd {
        allocs_stopped.push(AllocStopDiff {
            id: "a2".into(),
            client_status: "lost".into(),
            ..Default::default()
        });
    }
    ok(&store, 10, cmd);
    let s = g(&store);
    assert_eq!((s.failed, s.lost), (0, 1));
    client_status(&store, 11, "a2", "unknown");
    let s = g(&store);
    assert_eq!((s.lost, s.unknown), (0, 1));
    assert_eq!(store.snapshot().table_index(Table::JobSummaries), 11);
}

#[test]
fn desired_transition_and_deletes() {
    let store = seeded();
    ok(&store, 4, plan(vec![alloc("a1", "web", "n1", "e1", "g")]));
    let mut m = BTreeMap::new();
    m.insert(
        "a1".to_string(),
        DesiredTransition {
            migrate: Some(true),
            ..Default::default()
        },
    );
    ok(
        &store,
        5,
        Command::UpdateAllocDesiredTransition {
            allocs: m,
            evals: vec![eval("m1", "web", "pending")],
        },
    );
    let s = store.snapshot();
    let a = s.alloc("a1").unwrap();
    assert_eq!(a.desired_transition.migrate, Some(true));
    assert_eq!(a.modify_index, 5);
    assert!(s.eval("m1").is_some());

    ok(
        &store,
        6,
        Command::UpsertDeployment {
            deployment: Deployment {
                id: "d1".into(),
                job_id: "web".into(),
                ..Default::default()
            },
        },
    );
    ok(
        &store,
        7,
        Command::DeleteAllocs {
            ids: vec!["a1".into()],
        },
    );
    ok(
        &store,
        8,
        Command::DeleteDeployments {
            ids: vec!["d1".into()],
        },
    );
    let s = store.snapshot();
    assert!(s.alloc("a1").is_none());
    assert!(s.allocs_by_node("n1").is_empty());
    assert!(s.allocs_by_job("default", "web").is_empty());
    assert!(s.latest_deployment("default", "web").is_none());
    assert_eq!(s.table_index(Table::Allocs), 7);
    assert_eq!(s.table_index(Table::Deployments), 8);
    s.check_indexes().unwrap();
}

#[test]
fn scheduler_config_check_and_set() {
    let store = StateStore::new();
    assert_eq!(store.snapshot().scheduler_config().scheduler_algorithm, "binpack");
    let spread = SchedulerConfiguration {
        scheduler_algorithm: "spread".into(),
        ..Default::default()
    };
    let out = ok(
        &store,
        1,
        Command::SetSchedulerConfig {
            config: spread.clone(),
            cas_index: Some(0),
        },
    );
    assert!(out.applied);
    let out = ok(
        &store,
        2,
        Command::SetSchedulerConfig {
            config: SchedulerConfiguration::default(),
            cas_index: Some(7),
        },
    );
    assert!(!out.applied);
    let c = store.snapshot().scheduler_config();
    assert_eq!(
        (c.scheduler_algorithm.as_str(), c.create_index, c.modify_index),
        ("spread", 1, 1)
    );
    assert_eq!(store.snapshot().table_index(Table::SchedulerConfig), 1);
}

#[test]
fn stale_index_is_rejected_and_failed_commands_publish_nothing() {
    let store = seeded();
    assert!(matches!(
        store.apply(3, Command::UpsertNode { node: node("n9") }),
        Err(StateError::StaleIndex { index: 3, latest: 3 })
    ));
    // The eval is valid, the second is not: nothing of the batch is kept.
    let err = store.apply(
        4,
        Command::UpsertEvals {
            evals: vec![eval("ok", "web", "pending"), eval("", "web", "pending")],
        },
    );
    assert!(matches!(err, Err(StateError::Invalid(_))));
    assert!(store.snapshot().eval("ok").is_none());
    assert_eq!(store.latest_index(), 3);
}

#[test]
fn old_snapshot_does_not_see_later_writes() {
    let store = seeded();
    let before = store.snapshot();
    ok(&store, 4, plan(vec![alloc("a1", "web", "n1", "e1", "g")]));
    ok(
        &store,
        5,
        Command::UpsertJob {
            job: job("web", &[("g", 5)]),
            eval: None,
        },
    );
    ok(
        &store,
        6,
        Command::DeleteNodes {
            ids: vec!["n1".into()],
        },
    );
    assert!(before.alloc("a1").is_none());
    assert!(before.allocs_by_node("n1").is_empty());
    assert_eq!(before.job("default", "web").unwrap().version, 0);
    assert!(before.node("n1").is_some());
    assert_eq!(before.latest_index(), 3);
    let after = store.snapshot();
    assert_eq!(after.job("default", "web").unwrap().version, 1);
    assert_eq!(after.latest_index(), 6);
}

#[test]
fn snapshot_bytes_round_trip() {
    let store = seeded();
    let mut a = alloc("a1", "web", "n1", "e1", "g");
    a.deployment_id = "d1".into();
    let mut cmd = plan(vec![a, alloc("a2", "web", "n1", "e1", "g")]);
    if let Command::ApplyPlanResults { deployment, .. } = &mut cmd {
        *deployment = Some(Deployment {
            id: "d1".into(),
            job_id: "web".into(),
            ..Default::default()
        });
    }
    ok(&store, 4, cmd);
    client_status(&store, 5, "a1", "running");
    ok(
        &store,
        6,
        Command::SetSchedulerConfig {
            config: SchedulerConfiguration::default(),
            cas_index: None,
        },
    );
    ok(
        &store,
        7,
        Command::UpsertEvals {
            evals: vec![eval("b1", "web", "blocked")],
        },
    );
    let s = store.snapshot();
    let bytes = s.to_bytes().unwrap();
    let back = crate::StateSnapshot::from_bytes(&bytes).unwrap();
    assert_eq!(*s, back);
    back.check_indexes().unwrap();
    assert_eq!(back.allocs_by_node("n1").len(), 2);
    assert_eq!(back.table_index(Table::Evals), 7);
    // A restored store keeps applying from there.
    let restored = StateStore::from_snapshot(back);
    ok(
        &restored,
        8,
        Command::DeleteAllocs {
            ids: vec!["a2".into()],
        },
    );
    assert!(matches!(
        crate::StateSnapshot::from_bytes(&[0xc1, 0x00]),
        Err(StateError::Decode(_))
    ));
}

#[test]
fn command_bytes_round_trip() {
    let mut j = job("web", &[("g", 2)]);
    j.meta.insert("k".into(), "v".into());
    let cmds = vec![
        Command::UpsertJob {
            job: j,
            eval: Some(eval("e1", "web", "pending")),
        },
        Command::DeregisterJob {
            namespace: "default".into(),
            job_id: "web".into(),
            purge: true,
            eval: None,
        },
        Command::UpsertNode { node: node("n1") },
        plan(vec![alloc("a1", "web", "n1", "e1", "g")]),
        Command::DeleteNodes {
            ids: vec!["n1".into()],
        },
        Command::SetSchedulerConfig {
            config: SchedulerConfiguration::default(),
            cas_index: Some(3),
        },
    ];
    for c in cmds {
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Command::from_bytes(&bytes).unwrap(), c, "{}", c.name());
    }
}

#[test]
fn job_status_follows_allocs_and_evals() {
    let store = seeded();
    let st = |store: &StateStore| store.snapshot().job("default", "web").unwrap().status.clone();
    assert_eq!(st(&store), "pending", "pending eval");
    ok(&store, 4, plan(vec![alloc("a1", "web", "n1", "e1", "g")]));
    let j = store.snapshot().job("default", "web").unwrap();
    assert_eq!(j.status, "running");
    assert_eq!((j.modify_index, j.job_modify_index, j.version), (4, 2, 0));
    ok(
        &store,
        5,
        Command::UpsertEvals {
            evals: vec![eval("e1", "web", "complete")],
        },
    );
    client_status(&store, 6, "a1", "complete");
    assert_eq!(st(&store), "dead", "everything terminal");
    ok(
        &store,
        7,
        Command::UpsertJob {
            job: job("web", &[("g", 3)]),
            eval: Some(eval("e2", "web", "pending")),
        },
    );
    assert_eq!(st(&store), "pending");
}

#[test]
fn deployment_counts_placed_and_healthy_allocs() {
    let store = seeded();
    let mut a1 = alloc("a1", "web", "n1", "e1", "g");
    a1.deployment_id = "d1".into();
    a1.deployment_status = Some(AllocDeploymentStatus {
        canary: true,
        ..Default::default()
    });
    let mut a2 = alloc("a2", "web", "n1", "e1", "g");
    a2.deployment_id = "d1".into();
    let mut cmd = plan(vec![a1, a2]);
    if let Command::ApplyPlanResults { deployment, .. } = &mut cmd {
        *deployment = Some(Deployment {
            id: "d1".into(),
            job_id: "web".into(),
            ..Default::default()
        });
    }
    ok(&store, 4, cmd);
    let health = |id: &str, h: bool| Allocation {
        id: id.into(),
        client_status: "running".into(),
        deployment_status: Some(AllocDeploymentStatus {
            healthy: Some(h),
            ..Default::default()
        }),
        ..Default::default()
    };
    ok(
        &store,
        5,
        Command::UpdateAllocsFromClient {
            allocs: vec![health("a1", true), health("a2", false)],
            evals: vec![],
        },
    );
    // Repeating a report does not count twice.
    ok(
        &store,
        6,
        Command::UpdateAllocsFromClient {
            allocs: vec![health("a1", true)],
            evals: vec![],
        },
    );
    let d = store.snapshot().deployment("d1").unwrap();
    let g = &d.task_groups["g"];
    assert_eq!((g.placed_allocs, g.healthy_allocs, g.unhealthy_allocs), (2, 1, 1));
    assert_eq!(g.placed_canaries, vec!["a1".to_string()]);
    assert_eq!(d.modify_index, 5);
}

#[test]
fn snapshot_clone_shares_objects() {
    let store = seeded();
    let a = store.snapshot();
    let b = (*a).clone();
    assert!(Arc::ptr_eq(
        &a.job("default", "web").unwrap(),
        &b.job("default", "web").unwrap()
    ));
}

// ---- property test: random command sequences ----

fn arb_command() -> impl Strategy<Value = Command> {
    let id = |p: &'static str| (0..4u8).prop_map(move |i| format!("{p}{i}"));
    let status = prop::sample::select(vec![
        "pending", "running", "complete", "failed", "lost", "unknown",
    ]);
    let eval_st = prop::sample::select(vec!["pending", "blocked", "complete", "failed", "canceled"]);
    prop_oneof![
        (id("j"), 1..4i64).prop_map(|(j, c)| Command::UpsertJob {
            job: job(&j, &[("g", c)]),
            eval: None
        }),
        (id("j"), any::<bool>()).prop_map(|(j, purge)| Command::DeregisterJob {
            namespace: "default".into(),
            job_id: j,
            purge,
            eval: None
        }),
        id("n").prop_map(|n| Command::UpsertNode { node: node(&n) }),
        id("n").prop_map(|n| Command::DeleteNodes { ids: vec![n] }),
        (id("e"), id("j"), eval_st).prop_map(|(e, j, st)| Command::UpsertEvals {
            evals: vec![eval(&e, &j, st)]
        }),
        (id("e"), id("a")).prop_map(|(e, a)| Command::DeleteEvals {
            evals: vec![e],
            allocs: vec![a]
        }),
        (id("a"), id("j"), id("n"), id("e"), id("a")).prop_map(|(a, j, n, e, prev)| {
            let mut al = alloc(&a, &j, &n, &e, "g");
            al.previous_allocation = prev;
            al.deployment_id = format!("d{}", a.len() % 4);
            plan(vec![al])
        }),
        (id("a"), status.clone()).prop_map(|(a, st)| Command::ApplyPlanResults {
            job: None,
            allocs_updated: vec![],
            allocs_stopped: vec![AllocStopDiff {
                id: a,
                client_status: st.into(),
                ..Default::default()
            }],
            allocs_preempted: vec![],
            deployment: None,
            deployment_updates: vec![],
            eval_id: String::new(),
            preemption_evals: vec![],
        }),
        (id("a"), status).prop_map(|(a, st)| Command::UpdateAllocsFromClient {
            allocs: vec![Allocation {
                id: a,
                client_status: st.into(),
                ..Default::default()
            }],
            evals: vec![]
        }),
        id("a").prop_map(|a| Command::DeleteAllocs { ids: vec![a] }),
        (id("d"), id("j")).prop_map(|(d, j)| Command::UpsertDeployment {
            deployment: Deployment {
                id: d,
                job_id: j,
                ..Default::default()
            }
        }),
        id("d").prop_map(|d| Command::DeleteDeployments { ids: vec![d] }),
        (
            id("n"),
            prop::sample::select(vec!["ready", "down", "disconnected"])
        )
            .prop_map(|(n, st)| {
                Command::UpdateNodeStatus {
                    id: n,
                    status: st.into(),
                    updated_at: 1,
                    evals: vec![],
                    event: None,
                }
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_commands_keep_indexes_consistent(
        cmds in prop::collection::vec((arb_command(), 1..3u64), 1..60)
    ) {
        let store = StateStore::new();
        let mut index = 0u64;
        let mut prev_tables = [0u64; 8];
        let mut versions: BTreeMap<String, u64> = BTreeMap::new();
        for (cmd, step) in cmds {
            index += step;
            let before = store.snapshot();
            match store.apply(index, cmd) {
                Ok(out) => prop_assert_eq!(out.index, index),
                Err(_) => prop_assert!(Arc::ptr_eq(&before, &store.snapshot())),
            }
            let s = store.snapshot();
            prop_assert!(s.latest_index() >= before.latest_index());
            for (i, t) in Table::ALL.iter().enumerate() {
                let ti = s.table_index(*t);
                prop_assert!(ti >= prev_tables[i], "table {:?} index went back", t);
                prop_assert!(ti <= s.latest_index());
                prev_tables[i] = ti;
            }
            for (node, id) in s.allocs_by_node.iter() {
                let a = s.alloc(id);
                prop_assert!(a.is_some(), "alloc {} on {} missing", id, node);
            }
            if let Err(e) = s.check_indexes() {
                prop_assert!(false, "{}", e);
            }
            for j in s.jobs() {
                let last = versions.entry(j.id.clone()).or_insert(0);
                prop_assert!(j.version >= *last, "job version went back");
                *last = j.version;
                prop_assert!(s.job_versions("default", &j.id).len() <= JOB_VERSIONS_KEPT);
            }
            // Purged jobs may start over.
            versions.retain(|id, _| s.job("default", id).is_some());
            for sum in s.job_summaries() {
                for g in sum.summary.values() {
                    prop_assert!(g.queued >= 0 && g.starting >= 0 && g.running >= 0 && g.complete >= 0);
                    prop_assert!(g.failed >= 0 && g.lost >= 0 && g.unknown >= 0);
                }
            }
        }
        let back = crate::StateSnapshot::from_bytes(&store.snapshot().to_bytes().unwrap()).unwrap();
        prop_assert_eq!(&*store.snapshot(), &back);
    }
}

#[test]
fn a_batch_applies_each_command_on_its_own_at_one_index() {
    let store = StateStore::new();
    let node = drover_testkit_free_node("n1");
    let out = store
        .apply(
            5,
            Command::Batch {
                commands: vec![
                    Command::UpsertNode { node: node.clone() },
                    // Fails (unknown node) without undoing the first or blocking the third.
                    Command::UpdateNodeStatus {
                        id: "missing".into(),
                        status: "down".into(),
                        updated_at: 1,
                        evals: vec![],
                        event: None,
                    },
                    Command::UpdateNodeEligibility {
                        id: "n1".into(),
                        eligibility: "ineligible".into(),
                        evals: vec![],
                        event: None,
                    },
                ],
            },
        )
        .unwrap();
    assert_eq!(out.index, 5);
    assert_eq!(out.batch.len(), 3);
    assert!(out.batch[0].is_ok());
    assert!(out.batch[1].as_ref().unwrap_err().contains("not found"));
    assert!(out.batch[2].is_ok());
    let snap = store.snapshot();
    assert_eq!(snap.latest_index(), 5);
    let n = snap.node("n1").unwrap();
    assert_eq!(n.scheduling_eligibility, "ineligible");
    assert_eq!(n.modify_index, 5);
    // The next entry must still grow.
    assert!(store.apply(5, Command::DeleteNodes { ids: vec![] }).is_err());
}

fn drover_testkit_free_node(id: &str) -> drover_types::Node {
    drover_types::Node {
        id: id.into(),
        name: id.into(),
        datacenter: "dc1".into(),
        status: "ready".into(),
        scheduling_eligibility: "eligible".into(),
        ..Default::default()
    }
}

#[test]
fn job_stability_marks_the_version_and_the_current_job() {
    let store = StateStore::new();
    let mut job = drover_types::Job {
        id: "web".into(),
        namespace: "default".into(),
        job_type: "service".into(),
        ..Default::default()
    };
    store
        .apply(
            1,
            Command::UpsertJob {
                job: job.clone(),
                eval: None,
            },
        )
        .unwrap();
    job.priority = 70;
    store.apply(2, Command::UpsertJob { job, eval: None }).unwrap();
    let set = |_i: u64, v: u64| Command::UpdateJobStability {
        namespace: "default".into(),
        job_id: "web".into(),
        version: v,
        stable: true,
    };
    store.apply(3, set(3, 0)).unwrap();
    let snap = store.snapshot();
    assert!(snap.job_by_version("default", "web", 0).unwrap().stable);
    assert!(
        !snap.job("default", "web").unwrap().stable,
        "version 1 is current"
    );
    store.apply(4, set(4, 1)).unwrap();
    assert!(store.snapshot().job("default", "web").unwrap().stable);
    assert!(matches!(
        store.apply(5, set(5, 9)),
        Err(StateError::NotFound { .. })
    ));
}

#[test]
fn an_in_place_update_into_a_new_deployment_counts_there_with_its_health() {
    let store = seeded();
    let dep = |id: &str| Deployment {
        id: id.into(),
        namespace: "default".into(),
        job_id: "web".into(),
        status: "running".into(),
        ..Default::default()
    };
    ok(
        &store,
        4,
        Command::UpsertDeployment {
            deployment: dep("d1"),
        },
    );
    let mut a = alloc("a1", "web", "n1", "e1", "g");
    a.deployment_id = "d1".into();
    ok(&store, 5, plan(vec![a.clone()]));
    // The client reports it healthy.
    ok(
        &store,
        6,
        Command::UpdateAllocsFromClient {
            allocs: vec![Allocation {
                id: "a1".into(),
                client_status: "running".into(),
                deployment_status: Some(AllocDeploymentStatus {
                    healthy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            evals: vec![],
        },
    );
    let g = |d: &str| store.snapshot().deployment(d).unwrap().task_groups["g"].clone();
    assert_eq!((g("d1").placed_allocs, g("d1").healthy_allocs), (1, 1));
    // A new job version updates it in place into deployment d2.
    ok(
        &store,
        7,
        Command::UpsertDeployment {
            deployment: dep("d2"),
        },
    );
    a.deployment_id = "d2".into();
    ok(&store, 8, plan(vec![a.clone()]));
    assert_eq!((g("d2").placed_allocs, g("d2").healthy_allocs), (1, 1));
    // Updating it again within the same deployment counts nothing twice.
    ok(&store, 9, plan(vec![a]));
    assert_eq!((g("d2").placed_allocs, g("d2").healthy_allocs), (1, 1));
}

#[test]
fn node_events_append_and_keep_the_last_ten() {
    let store = StateStore::new();
    let mut n = drover_testkit_free_node("n1");
    n.events = vec![drover_types::node::NodeEvent {
        message: "Node registered".into(),
        ..Default::default()
    }];
    store.apply(1, Command::UpsertNode { node: n.clone() }).unwrap();
    for i in 0..12u64 {
        store
            .apply(
                2 + i,
                Command::UpdateNodeEligibility {
                    id: "n1".into(),
                    eligibility: if i % 2 == 0 { "ineligible" } else { "eligible" }.into(),
                    evals: vec![],
                    event: Some(drover_types::node::NodeEvent {
                        message: format!("event {i}"),
                        ..Default::default()
                    }),
                },
            )
            .unwrap();
    }
    // A re-registration keeps the history and appends its own event.
    n.events[0].message = "Node re-registered".into();
    store.apply(20, Command::UpsertNode { node: n }).unwrap();
    let events = store.snapshot().node("n1").unwrap().events.clone();
    assert_eq!(events.len(), 10);
    assert_eq!(events[0].message, "event 3");
    assert_eq!(events[9].message, "Node re-registered");
    assert_eq!(events[9].create_index, 20);
}

#[test]
fn node_derived_values_are_built_once_per_node_table_version() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = seeded();
    let builds = AtomicUsize::new(0);
    let count_nodes = |s: &crate::snapshot::StateSnapshot| {
        builds.fetch_add(1, Ordering::SeqCst);
        s.nodes().len()
    };
    let first = store.snapshot().node_derived(count_nodes);
    assert_eq!((*first, builds.load(Ordering::SeqCst)), (1, 1));
    // A write to another table: a new snapshot, the same node table, the same value.
    ok(
        &store,
        4,
        Command::UpsertEvals {
            evals: vec![eval("e2", "web", "pending")],
        },
    );
    let again = store.snapshot().node_derived(count_nodes);
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    // A node write: rebuilt from the new table.
    let old = store.snapshot();
    ok(&store, 5, Command::UpsertNode { node: node("n2") });
    assert_eq!(*store.snapshot().node_derived(count_nodes), 2);
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    // A reader of an older snapshot gets its own version's value, built for it, without
    // evicting the current one.
    assert_eq!(*old.node_derived(count_nodes), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 3);
    assert_eq!(*store.snapshot().node_derived(count_nodes), 2);
    assert_eq!(builds.load(Ordering::SeqCst), 3);
    // Another type replaces the cached one rather than being confused with it.
    assert_eq!(*store.snapshot().node_derived(|s| s.nodes().len() as u64), 2u64);
}
