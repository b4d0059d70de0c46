//! The server's flows end to end in one process: register → eval → broker → worker → scheduler
//! → plan applier → state, against the real state store (through `MemLog`, the same FSM code
//! Raft runs, without disk).

use std::sync::Arc;
use std::time::Duration;

use drover_server::api::{JobPlanRequest, JobRegisterRequest};
use drover_server::{HeartbeatConfig, MemLog, Server, ServerConfig};
use drover_testkit::mock;
use drover_types::Job;
use drover_types::node::node_status;

fn config() -> ServerConfig {
    ServerConfig {
        num_schedulers: 2,
        heartbeat: HeartbeatConfig {
            min_ttl: Duration::from_millis(400),
            grace: Duration::from_millis(400),
            failover_ttl: Duration::from_secs(30),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn start() -> Server {
    let s = Server::start(config(), Arc::new(MemLog::new()));
    // Leadership is established by a spawned task.
    for _ in 0..100 {
        if s.broker_stats() == Default::default() && s.is_leader() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s
}

async fn add_node(s: &Server, n: u64) -> String {
    let mut node = mock::node(n);
    node.status = node_status::INITIALIZING.into();
    let id = node.id.clone();
    s.register_node(node).await.expect("register");
    s.update_node_status(&id, node_status::READY)
        .await
        .expect("ready");
    id
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Registers `job` and waits until its evaluation completed.
async fn run(s: &Server, job: Job, what: &str) -> drover_server::api::JobRegisterResponse {
    let r = s
        .register_job(JobRegisterRequest {
            job: Some(job),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(what, || {
        s.snapshot().eval(&r.eval_id).filter(|e| e.status == "complete")
    })
    .await;
    r
}

fn job(id: &str, count: i64, memory_mb: i64, priority: i64) -> Job {
    let mut j = mock::job();
    j.id = id.into();
    j.name = id.into();
    j.priority = priority;
    j.task_groups[0].count = count;
    j.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = memory_mb;
    j
}

fn live_allocs(s: &Server, job: &str) -> Vec<Arc<drover_types::Allocation>> {
    s.snapshot()
        .allocs_by_job("default", job)
        .into_iter()
        .filter(|a| !a.terminal())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_job_is_placed_and_its_eval_completes() {
    let s = start().await;
    for n in 0..3 {
        add_node(&s, n).await;
    }
    let resp = s
        .register_job(JobRegisterRequest {
            job: Some(job("web", 6, 256, 50)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!resp.eval_id.is_empty());
    assert!(resp.job_modify_index > 0);
    let eval = eventually("eval complete", || {
        s.snapshot()
            .eval(&resp.eval_id)
            .filter(|e| e.status == "complete")
    })
    .await;
    assert!(eval.failed_tg_allocs.is_empty());
    let allocs = live_allocs(&s, "web");
    assert_eq!(allocs.len(), 6);
    // Binpack on identical nodes: placements spread over the cluster's nodes but none is
    // over capacity, and every alloc name index is unique.
    let mut names: Vec<&str> = allocs.iter().map(|a| a.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6);
    let summary = s.snapshot().job_summary("default", "web").unwrap();
    assert_eq!(summary.summary["web"].starting, 6);
    assert_eq!(s.stats().plans_applied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_index_conflicts_are_refused_with_nomads_text() {
    let s = start().await;
    let first = s
        .register_job(JobRegisterRequest {
            job: Some(job("web", 1, 256, 50)),
            enforce_index: true,
            job_modify_index: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = s
        .register_job(JobRegisterRequest {
            job: Some(job("web", 2, 256, 50)),
            enforce_index: true,
            job_modify_index: first.job_modify_index + 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("Enforcing job modify index"), "{err}");
    s.register_job(JobRegisterRequest {
        job: Some(job("web", 2, 256, 50)),
        enforce_index: true,
        job_modify_index: first.job_modify_index,
        ..Default::default()
    })
    .await
    .expect("matching index is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_small_a_cluster_blocks_then_capacity_unblocks() {
    let s = start().await;
    add_node(&s, 0).await;
    // 8192 MB nodes with 256 MB reserved: 3 × 3000 MB does not fit on one node.
    let j = job("big", 3, 3000, 50);
    let plan = s
        .plan_job(JobPlanRequest {
            job: Some(j.clone()),
            diff: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = plan.failed_tg_allocs.get("web").expect("failed group in plan");
    assert_eq!(failed.dimension_exhausted.get("memory"), Some(&1), "{failed:?}");
    assert_eq!(failed.nodes_evaluated, 1);
    assert_eq!(
        plan.annotations.as_ref().unwrap().desired_tg_updates["web"].place,
        3
    );
    let diff = plan.diff.as_ref().unwrap();
    assert_eq!(diff.diff_type, drover_types::diff::DiffType::Added);
    let tg = &diff.task_groups.as_ref().unwrap()[0];
    assert_eq!(tg.updates.as_ref().unwrap()["create"], 3);
    let task = &tg.tasks.as_ref().unwrap()[0];
    assert_eq!(
        task.annotations.as_deref(),
        Some(&["forces create".to_string()][..])
    );
    assert_eq!(
        plan.created_evals.len(),
        1,
        "the real run would create a blocked eval"
    );
    assert!(
        s.snapshot().job("default", "big").is_none(),
        "a plan changes nothing"
    );

    let resp = s
        .register_job(JobRegisterRequest {
            job: Some(j),
            ..Default::default()
        })
        .await
        .unwrap();
    let eval = eventually("eval complete", || {
        s.snapshot()
            .eval(&resp.eval_id)
            .filter(|e| e.status == "complete")
    })
    .await;
    assert!(!eval.blocked_eval.is_empty());
    assert_eq!(live_allocs(&s, "big").len(), 2);
    let blocked_id = eval.blocked_eval.clone();
    eventually("blocked eval tracked", || {
        (s.blocked_stats().total_blocked == 1).then_some(())
    })
    .await;
    // New capacity: the blocked eval is released, places the third alloc and completes.
    add_node(&s, 1).await;
    eventually("third alloc", || {
        (live_allocs(&s, "big").len() == 3).then_some(())
    })
    .await;
    eventually("blocked eval completes", || {
        s.snapshot().eval(&blocked_id).filter(|e| e.status == "complete")
    })
    .await;
    assert_eq!(s.blocked_stats().total_blocked, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_job_preempts_low_priority_allocs_when_enabled() {
    let s = start().await;
    add_node(&s, 0).await;
    let mut cfg = s.snapshot().scheduler_config();
    cfg.preemption_config.service_scheduler_enabled = true;
    assert!(s.set_scheduler_config(cfg, None).await.unwrap().updated);
    run(&s, job("low", 2, 3500, 30), "low placed").await;
    assert_eq!(live_allocs(&s, "low").len(), 2);
    let high = job("high", 1, 3500, 80);
    let plan = s
        .plan_job(JobPlanRequest {
            job: Some(high.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ann = plan.annotations.unwrap();
    assert_eq!(ann.preempted_allocs.len(), 1, "{ann:?}");
    assert_eq!(ann.preempted_allocs[0].job_id, "low");
    assert!(plan.failed_tg_allocs.is_empty());
    run(&s, high, "high placed").await;
    assert_eq!(live_allocs(&s, "high").len(), 1);
    let evicted: Vec<_> = s
        .snapshot()
        .allocs_by_job("default", "low")
        .into_iter()
        .filter(|a| a.desired_status == "evict")
        .collect();
    assert_eq!(evicted.len(), 1);
    let high_alloc = &live_allocs(&s, "high")[0];
    assert_eq!(evicted[0].preempted_by_allocation, high_alloc.id);
    // The preempted job got an evaluation of its own (it may block: no room left).
    let preemption_evals = s
        .snapshot()
        .evals_by_job("default", "low")
        .into_iter()
        .filter(|e| e.triggered_by == "preemption")
        .count();
    assert_eq!(preemption_evals, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_heartbeating_goes_down_and_its_allocs_are_replaced() {
    let s = start().await;
    let n0 = add_node(&s, 0).await;
    let n1 = add_node(&s, 1).await;
    run(&s, job("web", 4, 256, 50), "placed").await;
    // Keep n1 alive; let n0 miss its TTL (≤ 2 × 400 ms + 400 ms grace).
    let keep = s.clone();
    let n1c = n1.clone();
    let hb = tokio::spawn(async move {
        loop {
            let _ = keep.update_node_status(&n1c, node_status::READY).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let started = std::time::Instant::now();
    eventually("n0 down", || {
        s.snapshot().node(&n0).filter(|n| n.status == node_status::DOWN)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    eventually("replacements on n1", || {
        let live = live_allocs(&s, "web");
        (live.len() == 4 && live.iter().all(|a| a.node_id == n1)).then_some(())
    })
    .await;
    let lost = s
        .snapshot()
        .allocs_by_job("default", "web")
        .into_iter()
        .filter(|a| a.node_id == n0)
        .all(|a| a.client_status == "lost");
    assert!(lost, "allocs on the down node are lost");
    assert_eq!(s.snapshot().node(&n1).unwrap().status, node_status::READY);
    // The node's history says what happened.
    let events: Vec<String> = s
        .snapshot()
        .node(&n0)
        .unwrap()
        .events
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(events, vec!["Node registered", "Node heartbeat missed"]);
    s.update_node_eligibility(&n1, "ineligible").await.unwrap();
    let last = s.snapshot().node(&n1).unwrap().events.last().unwrap().clone();
    assert_eq!(last.message, "Node marked as ineligible for scheduling");
    assert!(last.timestamp.is_some() && last.create_index > 0);
    hb.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_stops_and_purge_removes() {
    let s = start().await;
    add_node(&s, 0).await;
    run(&s, job("web", 2, 256, 50), "placed").await;
    let d = s.deregister_job("default", "web", false).await.unwrap();
    eventually("stopped", || {
        s.snapshot().eval(&d.eval_id).filter(|e| e.status == "complete")
    })
    .await;
    assert!(live_allocs(&s, "web").is_empty());
    assert!(s.snapshot().job("default", "web").unwrap().stop);
    s.deregister_job("default", "web", true).await.unwrap();
    assert!(s.snapshot().job("default", "web").is_none());
    let err = s.deregister_job("default", "web", true).await.unwrap_err();
    assert_eq!(err.to_string(), "job not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_with_the_field_named() {
    let s = start().await;
    let mut j = job("web", 1, 256, 50);
    j.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 4;
    let err = s
        .register_job(JobRegisterRequest {
            job: Some(j),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    let huge = job("web", 1_000_000, 256, 50);
    let err = s
        .register_job(JobRegisterRequest {
            job: Some(huge),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("count"), "{err}");
    assert!(s.snapshot().jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_a_node_replaces_its_allocations_elsewhere() {
    let s = start().await;
    let n0 = add_node(&s, 0).await;
    run(&s, job("web", 2, 256, 50), "placed").await;
    let n1 = add_node(&s, 1).await;
    let ev = s.evaluate_node(&n0).await.unwrap();
    assert_eq!(ev.eval_ids.len(), 1, "one job runs on the node");
    let purged = s.purge_node(&n0).await.unwrap();
    assert_eq!(purged.eval_ids.len(), 1);
    assert!(s.snapshot().node(&n0).is_none());
    eventually("replaced on n1", || {
        let live = live_allocs(&s, "web");
        (live.len() == 2 && live.iter().all(|a| a.node_id == n1)).then_some(())
    })
    .await;
    assert_eq!(s.purge_node(&n0).await.unwrap_err().to_string(), "node not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_a_resource_change_shows_destructive_updates() {
    let s = start().await;
    add_node(&s, 0).await;
    run(&s, job("web", 2, 256, 50), "placed").await;
    let plan = s
        .plan_job(JobPlanRequest {
            job: Some(job("web", 2, 512, 50)),
            diff: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let tg = &plan.diff.as_ref().unwrap().task_groups.as_ref().unwrap()[0];
    assert_eq!(tg.updates.as_ref().unwrap()["create/destroy update"], 1, "{tg:?}");
    assert_eq!(
        tg.tasks.as_ref().unwrap()[0].annotations.as_deref(),
        Some(&["forces create/destroy update".to_string()][..])
    );
    let u = &plan.annotations.unwrap().desired_tg_updates["web"];
    assert_eq!(u.place, 0, "{u:?}");
    assert_eq!(u.destructive_update + u.ignore, 2, "{u:?}");
    assert!(u.destructive_update >= 1, "{u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_can_be_marked_stable() {
    let s = start().await;
    s.register_job(JobRegisterRequest {
        job: Some(job("web", 1, 256, 50)),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(!s.snapshot().job("default", "web").unwrap().stable);
    s.set_job_stability("default", "web", 0, true).await.unwrap();
    assert!(s.snapshot().job("default", "web").unwrap().stable);
    let err = s.set_job_stability("default", "web", 7, true).await.unwrap_err();
    assert!(err.to_string().contains("no version 7"), "{err}");
    assert_eq!(
        s.set_job_stability("default", "nope", 0, true)
            .await
            .unwrap_err()
            .to_string(),
        "job not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_and_periodic_force_launch_children() {
    use drover_server::api::JobDispatchRequest;
    use drover_types::job::{ParameterizedJobConfig, PeriodicConfig};
    let s = start().await;
    add_node(&s, 0).await;
    let mut param = mock::batch_job();
    param.id = "render".into();
    param.name = "render".into();
    param.parameterized_job = Some(ParameterizedJobConfig {
        payload: "required".into(),
        meta_required: vec!["frame".into()],
        meta_optional: vec![],
    });
    let r = s
        .register_job(JobRegisterRequest {
            job: Some(param),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(r.eval_id.is_empty(), "a parameterized parent gets no evaluation");
    let no_payload = s
        .dispatch_job("default", "render", JobDispatchRequest::default())
        .await
        .unwrap_err();
    assert!(
        no_payload.to_string().contains("Payload is not provided"),
        "{no_payload}"
    );
    let mut req = JobDispatchRequest {
        payload: Some("aGVsbG8=".into()),
        ..Default::default()
    };
    let missing = s
        .dispatch_job("default", "render", req.clone())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("frame"), "{missing}");
    req.meta.insert("frame".into(), "7".into());
    req.idempotency_token = "once".into();
    let d = s.dispatch_job("default", "render", req.clone()).await.unwrap();
    assert!(
        d.dispatched_job_id.starts_with("render/dispatch-"),
        "{}",
        d.dispatched_job_id
    );
    let child = s.snapshot().job("default", &d.dispatched_job_id).unwrap();
    assert_eq!(child.parent_id, "render");
    assert!(child.dispatched && child.parameterized_job.is_none());
    assert_eq!(child.meta["frame"], "7");
    eventually("child placed", || {
        s.snapshot().eval(&d.eval_id).filter(|e| e.status == "complete")
    })
    .await;
    assert!(
        !s.snapshot()
            .allocs_by_job("default", &d.dispatched_job_id)
            .is_empty()
    );
    let again = s.dispatch_job("default", "render", req).await.unwrap();
    assert_eq!(
        again.dispatched_job_id, d.dispatched_job_id,
        "same idempotency token, same child"
    );

    let mut periodic = mock::batch_job();
    periodic.id = "nightly".into();
    periodic.name = "nightly".into();
    periodic.periodic = Some(PeriodicConfig {
        enabled: true,
        spec: "0 3 * * *".into(),
        ..Default::default()
    });
    s.register_job(JobRegisterRequest {
        job: Some(periodic),
        ..Default::default()
    })
    .await
    .unwrap();
    let f = s.force_periodic("default", "nightly").await.unwrap();
    assert!(f.dispatched_job_id.starts_with("nightly/periodic-"));
    assert_eq!(
        s.snapshot().eval(&f.eval_id).unwrap().triggered_by,
        "periodic-job"
    );
    let not_periodic = s.force_periodic("default", "render").await.unwrap_err();
    assert!(
        not_periodic.to_string().contains("non-periodic"),
        "{not_periodic}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_jobs_launch_on_schedule_and_respect_prohibit_overlap() {
    use drover_types::job::PeriodicConfig;
    let s = start().await;
    add_node(&s, 0).await;
    let periodic = |id: &str, overlap: bool| {
        let mut j = mock::batch_job();
        j.id = id.into();
        j.name = id.into();
        j.task_groups[0].count = 1;
        j.periodic = Some(PeriodicConfig {
            enabled: true,
            spec: "* * * * * *".into(), // every second (6 fields: seconds first)
            prohibit_overlap: overlap,
            ..Default::default()
        });
        j
    };
    for (id, overlap) in [("every", false), ("single", true)] {
        s.register_job(JobRegisterRequest {
            job: Some(periodic(id, overlap)),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let children = |parent: &str| {
        s.snapshot()
            .jobs()
            .into_iter()
            .filter(|j| j.parent_id == parent)
            .count()
    };
    eventually("two launches of `every`", || {
        (children("every") >= 2).then_some(())
    })
    .await;
    // `single`'s first child never finishes (no client reports it), so no second launch.
    assert_eq!(children("single"), 1);
    let bad = s
        .register_job(JobRegisterRequest {
            job: Some({
                let mut j = periodic("bad", false);
                j.periodic.as_mut().unwrap().spec = "61 * * * *".into();
                j
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("Periodic specification invalid"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_without_progress_fails_at_its_progress_deadline() {
    let s = start().await;
    add_node(&s, 0).await;
    let mut j = job("web", 1, 256, 50);
    let u = j.task_groups[0]
        .update
        .as_mut()
        .expect("mock jobs have an update block");
    u.min_healthy_time = Some(100_000_000);
    u.healthy_deadline = Some(500_000_000);
    u.progress_deadline = Some(1_000_000_000);
    run(&s, j, "placed").await;
    // Nothing reports the allocation healthy (no client here): the deadline passes.
    let d = eventually("deployment failed", || {
        s.snapshot()
            .latest_deployment("default", "web")
            .filter(|d| d.status == "failed")
    })
    .await;
    assert_eq!(d.status_description, "Failed due to progress deadline");
}
