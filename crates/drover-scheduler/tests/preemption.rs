//! Preemption for ports, devices and resources through the recording harness: which
//! allocations a placement evicts, and how the plan records it (`node_preemptions`,
//! `PreemptedAllocations`, `PreemptedByAllocation`, annotations).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use drover_scheduler::State;
use drover_scheduler::harness::Harness;
use drover_testkit::mock;
use drover_types::alloc::AllocatedDeviceResource;
use drover_types::job::{NetworkResource, Port, RequestedDevice};
use drover_types::node::{NodeDevice, NodeDeviceResource};
use drover_types::{Allocation, Job, Plan, SchedulerConfiguration};

/// One mock node, service preemption switched on.
fn service_harness() -> Harness {
    let mut h = harness(1);
    let mut cfg = SchedulerConfiguration::default();
    cfg.preemption_config.service_scheduler_enabled = true;
    h.state.set_scheduler_config(cfg);
    h
}

/// A one-allocation service job `id` at `priority` with `memory_mb` and the given group ports
/// (static when `Some(value)`, dynamic when `None`).
fn service(id: &str, priority: i64, memory_mb: i64, ports: &[Option<i64>]) -> Job {
    let mut j = mock::job();
    j.id = id.into();
    j.name = id.into();
    j.priority = priority;
    let tg = &mut j.task_groups[0];
    tg.count = 1;
    tg.tasks[0]
        .resources
        .as_mut()
        .expect("mock task has resources")
        .memory_mb = memory_mb;
    let mut net = NetworkResource::default();
    for (i, p) in ports.iter().enumerate() {
        let port = Port {
            label: format!("p{i}"),
            value: p.unwrap_or(0),
            ..Default::default()
        };
        match p {
            Some(_) => net.reserved_ports.push(port),
            None => net.dynamic_ports.push(port),
        }
    }
    tg.networks = if ports.is_empty() { Vec::new() } else { vec![net] };
    j
}

/// A one-allocation service job requesting `gpus` instances of `nvidia/gpu`.
fn gpu_service(id: &str, priority: i64, gpus: i64) -> Job {
    let mut j = service(id, priority, 256, &[]);
    j.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .expect("mock task has resources")
        .devices = vec![RequestedDevice {
        name: "nvidia/gpu".into(),
        count: gpus,
        ..Default::default()
    }];
    j
}

/// One mock node with `n` healthy `nvidia/gpu/a100` instances, service preemption on.
fn gpu_harness(n: usize) -> Harness {
    let mut h = service_harness();
    let mut node = (*h.state.node(&mock::id(0)).expect("node 0")).clone();
    node.node_resources
        .as_mut()
        .expect("mock node has resources")
        .devices = vec![NodeDeviceResource {
        vendor: "nvidia".into(),
        device_type: "gpu".into(),
        name: "a100".into(),
        instances: (0..n)
            .map(|i| NodeDevice {
                id: format!("gpu-{i}"),
                healthy: true,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }];
    h.state.upsert_node(node);
    h
}

/// Stores `job` and a running allocation `alloc_id` of it on node 0 holding the GPU instances
/// `gpus` (IDs chosen by the test, so that ID tie-breaks cannot decide the outcome).
fn gpu_holder(h: &mut Harness, job: Job, alloc_id: &str, gpus: &[usize]) -> Allocation {
    let job = h.state.upsert_job(job);
    let mut a = mock::alloc_for(&job, 0, &mock::id(0), alloc_id.into());
    a.client_status = "running".into();
    let task = a
        .allocated_resources
        .as_mut()
        .and_then(|r| r.tasks.get_mut("web"))
        .expect("mock task web");
    task.devices = vec![AllocatedDeviceResource {
        vendor: "nvidia".into(),
        device_type: "gpu".into(),
        name: "a100".into(),
        device_ids: gpus.iter().map(|i| format!("gpu-{i}")).collect(),
    }];
    h.state.upsert_allocs(vec![a.clone()]);
    a
}

fn evictions(plan: &Plan) -> Vec<&Allocation> {
    plan.node_preemptions.values().flatten().collect()
}

fn ids<'a>(allocs: impl IntoIterator<Item = &'a Allocation>) -> BTreeSet<String> {
    allocs.into_iter().map(|a| a.id.clone()).collect()
}

fn live_ids(h: &Harness, job: &Job) -> BTreeSet<String> {
    live(h, job).iter().map(|a| a.id.clone()).collect()
}

fn only_live(h: &Harness, job: &Job) -> Arc<Allocation> {
    let l = live(h, job);
    assert_eq!(l.len(), 1, "{} runs one allocation", job.id);
    l[0].clone()
}

/// The GPU instance IDs an allocation holds.
fn gpu_ids(a: &Allocation) -> BTreeSet<String> {
    a.allocated_resources
        .iter()
        .flat_map(|r| r.tasks.values())
        .flat_map(|t| t.devices.iter())
        .flat_map(|d| d.device_ids.iter().cloned())
        .collect()
}

/// The plan's evictions are recorded for `new` exactly as `victims`: desired status evict, the
/// description and `PreemptedByAllocation` naming the new allocation, `PreemptedAllocations`
/// on it, and the annotations' count for `group`.
fn assert_recorded(h: &Harness, new: &Allocation, victims: &BTreeSet<String>, group: &str) {
    let plan = h.plans.last().expect("a plan was submitted");
    let evicted = evictions(plan);
    assert_eq!(&ids(evicted.iter().copied()), victims, "evicted set");
    assert_eq!(evicted.len(), victims.len(), "no victim twice");
    for v in &evicted {
        assert_eq!(v.desired_status, "evict");
        assert_eq!(v.preempted_by_allocation, new.id);
        assert_eq!(v.desired_description, format!("Preempted by alloc ID {}", new.id));
        assert_eq!(
            v.node_id, new.node_id,
            "evicted from the node the new alloc lands on"
        );
    }
    let mut by: Vec<String> = new.preempted_allocations.clone();
    by.sort();
    assert_eq!(by, victims.iter().cloned().collect::<Vec<_>>());
    let ann = h
        .last_eval()
        .and_then(|e| e.plan_annotations.as_ref())
        .expect("annotations");
    assert_eq!(ann.desired_tg_updates[group].preemptions, victims.len() as u64);
    assert_eq!(ann.preempted_allocs.len(), victims.len());
}

#[test]
fn static_port_holder_is_evicted_and_recorded() {
    let mut h = service_harness();
    let holder = register(&mut h, service("holder", 30, 256, &[Some(8080)]));
    let bystander = register(&mut h, service("bystander", 30, 256, &[Some(9090)]));
    let holder_alloc = only_live(&h, &holder);
    let bystander_alloc = only_live(&h, &bystander);

    register(&mut h, service("urgent", 80, 256, &[Some(8080)]));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    let ports = &new[0]
        .allocated_resources
        .as_ref()
        .expect("resources")
        .shared
        .ports;
    assert_eq!(ports.iter().map(|p| p.value).collect::<Vec<_>>(), vec![8080]);
    // Exactly the holder goes (memory was never short); the bystander stays.
    assert_recorded(&h, &new[0], &BTreeSet::from([holder_alloc.id.clone()]), "web");
    assert!(live(&h, &holder).is_empty(), "the holder is evicted in the state");
    assert_eq!(
        live_ids(&h, &bystander),
        BTreeSet::from([bystander_alloc.id.clone()])
    );
}

#[test]
fn port_holder_within_the_priority_delta_blocks_the_node() {
    let mut h = service_harness();
    let holder = register(&mut h, service("holder", 75, 256, &[Some(8080)]));
    let holder_alloc = only_live(&h, &holder);
    let plans_before = h.plans.len();

    register(&mut h, service("urgent", 80, 256, &[Some(8080)]));
    assert!(
        h.plans[plans_before..]
            .iter()
            .all(|p| p.node_preemptions.is_empty()),
        "no evictions planned"
    );
    assert!(
        h.plans[plans_before..]
            .iter()
            .all(|p| p.node_allocation.is_empty())
    );
    let e = h.last_eval().expect("eval");
    let m = &e.failed_tg_allocs["web"];
    assert_eq!(
        m.dimension_exhausted.get("network: reserved port collision 8080"),
        Some(&1),
        "{m:?}"
    );
    assert_eq!(m.nodes_exhausted, 1);
    assert_eq!(live_ids(&h, &holder), BTreeSet::from([holder_alloc.id.clone()]));
}

#[test]
fn system_job_evicts_a_port_holder_by_default() {
    let mut h = harness(1);
    let holder = register(&mut h, service("holder", 20, 256, &[Some(8080)]));
    let holder_alloc = only_live(&h, &holder);
    let mut sys = mock::system_job();
    sys.priority = 90;
    sys.task_groups[0].networks = vec![NetworkResource {
        reserved_ports: vec![Port {
            label: "metrics".into(),
            value: 8080,
            ..Default::default()
        }],
        ..Default::default()
    }];
    register(&mut h, sys);
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_recorded(&h, &new[0], &BTreeSet::from([holder_alloc.id.clone()]), "agent");
}

#[test]
fn exhausted_dynamic_range_is_preempted_for() {
    let mut h = service_harness();
    let mut node = (*h.state.node(&mock::id(0)).expect("node 0")).clone();
    let r = node.node_resources.as_mut().expect("resources");
    r.min_dynamic_port = 20000;
    r.max_dynamic_port = 20001;
    h.state.upsert_node(node);
    // One dynamic port each, different priorities: together they hold the whole range.
    let low = register(&mut h, service("low", 20, 256, &[None]));
    let mid = register(&mut h, service("mid", 40, 256, &[None]));
    let low_alloc = only_live(&h, &low);
    only_live(&h, &mid);

    register(&mut h, service("urgent", 80, 256, &[None]));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    // The lowest-priority holder goes, and its port is the one handed out.
    assert_recorded(&h, &new[0], &BTreeSet::from([low_alloc.id.clone()]), "web");
    let port = |a: &Allocation| a.allocated_resources.as_ref().expect("resources").shared.ports[0].value;
    assert_eq!(port(&new[0]), port(&low_alloc));
    assert_eq!(live(&h, &mid).len(), 1);
}

#[test]
fn port_victim_frees_its_memory_too_one_victim_set() {
    // The port holder also holds most of the memory: evicting it for the port makes room for
    // the memory ask as well, so nobody else goes.
    let mut h = service_harness();
    let holder = register(&mut h, service("holder", 20, 7000, &[Some(8080)]));
    let bystander = register(&mut h, service("bystander", 20, 500, &[]));
    let holder_alloc = only_live(&h, &holder);
    register(&mut h, service("urgent", 80, 4000, &[Some(8080)]));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_recorded(&h, &new[0], &BTreeSet::from([holder_alloc.id.clone()]), "web");
    assert_eq!(live(&h, &bystander).len(), 1);

    // Here the port holder is small: the memory needs a second victim, and both are recorded
    // once, as one set, for the one placement.
    let mut h = service_harness();
    let holder = register(&mut h, service("holder", 20, 1000, &[Some(8080)]));
    let filler = register(&mut h, service("filler", 20, 6500, &[]));
    let (holder_alloc, filler_alloc) = (only_live(&h, &holder), only_live(&h, &filler));
    register(&mut h, service("urgent", 80, 4000, &[Some(8080)]));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_recorded(
        &h,
        &new[0],
        &BTreeSet::from([holder_alloc.id.clone(), filler_alloc.id.clone()]),
        "web",
    );
}

#[test]
fn gpu_job_evicts_the_fewest_lowest_priority_holders() {
    // Four GPUs, all in use by priority-20 work: "a-single" and "b-single" hold one each,
    // "c-pair" holds two. Two GPUs are needed: the holder of two is the single victim (the
    // singles come first by ID, so taking them in order would evict two).
    let mut h = gpu_harness(4);
    let singles = gpu_service("singles", 20, 1);
    gpu_holder(&mut h, singles.clone(), "a-single", &[0]);
    gpu_holder(&mut h, singles.clone(), "b-single", &[1]);
    let pair = gpu_holder(&mut h, gpu_service("pair", 20, 2), "c-pair", &[2, 3]);

    register(&mut h, gpu_service("trainer", 90, 2));
    let new = placed(&h);
    assert_eq!(new.len(), 1, "placed on the full node");
    assert_recorded(&h, &new[0], &BTreeSet::from([pair.id.clone()]), "web");
    assert_eq!(gpu_ids(&new[0]), gpu_ids(&pair), "gets the freed instances");
    assert_eq!(live(&h, &singles).len(), 2, "the single-GPU allocations stay");
}

#[test]
fn gpu_job_evicts_lowest_priority_first() {
    // Two GPUs: "a-high" (priority 60) and "b-low" (priority 20) hold one each. A priority-90
    // job needing one GPU may evict either, and takes the lower priority, not the lower ID.
    let mut h = gpu_harness(2);
    let high_job = gpu_service("high", 60, 1);
    gpu_holder(&mut h, high_job.clone(), "a-high", &[0]);
    let low = gpu_holder(&mut h, gpu_service("low", 20, 1), "b-low", &[1]);

    register(&mut h, gpu_service("trainer", 90, 1));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_recorded(&h, &new[0], &BTreeSet::from([low.id.clone()]), "web");
    assert_eq!(gpu_ids(&new[0]), BTreeSet::from(["gpu-1".to_string()]));
    assert_eq!(live(&h, &high_job).len(), 1);

    // Priority 65 may not evict priority 60 (nor the trainer's 90): the placement fails on
    // devices and nothing is evicted.
    let plans_before = h.plans.len();
    register(&mut h, gpu_service("nearby", 65, 1));
    assert!(
        h.plans[plans_before..]
            .iter()
            .all(|p| p.node_preemptions.is_empty())
    );
    let m = &h.last_eval().expect("eval").failed_tg_allocs["web"];
    assert_eq!(
        m.dimension_exhausted.get("devices: nvidia/gpu"),
        Some(&1),
        "{m:?}"
    );
}

#[test]
fn gpu_victims_respect_device_constraints() {
    // Two device groups: a t4 held by priority 10 and an a100 held by priority 30. The
    // request insists on the a100 model, so the t4's holder, though cheaper, is no option.
    let mut h = gpu_harness(1);
    let mut node = (*h.state.node(&mock::id(0)).expect("node 0")).clone();
    let devices = &mut node.node_resources.as_mut().expect("resources").devices;
    let mut t4 = devices[0].clone();
    t4.name = "t4".into();
    t4.instances[0].id = "t4-0".into();
    devices.insert(0, t4);
    h.state.upsert_node(node);
    let cheap_job = gpu_service("cheap", 10, 1);
    let cheap_job = h.state.upsert_job(cheap_job);
    let mut cheap = mock::alloc_for(&cheap_job, 0, &mock::id(0), "a-cheap".into());
    cheap.client_status = "running".into();
    if let Some(t) = cheap
        .allocated_resources
        .as_mut()
        .and_then(|r| r.tasks.get_mut("web"))
    {
        t.devices = vec![AllocatedDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "t4".into(),
            device_ids: vec!["t4-0".into()],
        }];
    }
    h.state.upsert_allocs(vec![cheap]);
    let a100 = gpu_holder(&mut h, gpu_service("mid", 30, 1), "b-mid", &[0]);

    let mut trainer = gpu_service("trainer", 90, 1);
    trainer.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .expect("resources")
        .devices[0]
        .constraints = vec![drover_types::job::Constraint {
        l_target: "${device.model}".into(),
        r_target: "a100".into(),
        operand: "=".into(),
    }];
    register(&mut h, trainer);
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    assert_recorded(&h, &new[0], &BTreeSet::from([a100.id.clone()]), "web");
    assert_eq!(gpu_ids(&new[0]), BTreeSet::from(["gpu-0".to_string()]));
    assert_eq!(live(&h, &cheap_job).len(), 1);
}

#[test]
fn victims_never_include_the_placing_jobs_own_allocations() {
    // A rolling update: webapp v1 (priority 20) runs two 3000 MB allocations next to a
    // 1000 MB priority-75 allocation. v2 raises the priority to 80 and the memory to 4500 MB
    // (destructive), one allocation at a time (max_parallel 1): the replacement of one v1
    // allocation (4500 MB) does not fit next to the other v1 allocation. That one runs at
    // priority 20 — low enough — but belongs to webapp, and the priority-75 one is within 10:
    // nothing may be evicted.
    let mut h = service_harness();
    let mut v1 = service("webapp", 20, 3000, &[]);
    v1.task_groups[0].count = 2;
    let web = register(&mut h, v1);
    let other = register(&mut h, service("other", 75, 1000, &[]));
    let old = live_ids(&h, &web);
    assert_eq!(old.len(), 2);
    assert_eq!(
        web.task_groups[0].update.as_ref().and_then(|u| u.max_parallel),
        Some(1)
    );
    // The first deployment is done, so the update gets its own.
    if let Some(d) = h.state.latest_deployment(&web.namespace, &web.id) {
        let mut d = (*d).clone();
        d.status = "successful".into();
        h.state.upsert_deployment(d);
    }
    let plans_before = h.plans.len();
    let mut v2 = (*web).clone();
    v2.priority = 80;
    v2.task_groups[0].tasks[0]
        .resources
        .as_mut()
        .expect("resources")
        .memory_mb = 4500;
    v2.version = 1;
    v2.job_modify_index = 800;
    let v2 = h.state.upsert_job(v2);
    run(&mut h, &eval_for(&v2, "job-register"));
    assert!(
        h.plans[plans_before..]
            .iter()
            .all(|p| p.node_preemptions.is_empty()),
        "no evictions: {:?}",
        h.plans[plans_before..]
            .iter()
            .map(|p| &p.node_preemptions)
            .collect::<Vec<_>>()
    );
    let new_placements = h.plans[plans_before..]
        .iter()
        .flat_map(|p| p.node_allocation.values().flatten())
        .filter(|a| !old.contains(&a.id))
        .count();
    assert_eq!(new_placements, 0);
    let m = &h.last_eval().expect("eval").failed_tg_allocs["web"];
    assert_eq!(m.dimension_exhausted.get("memory"), Some(&1), "{m:?}");
    // The failed replacement keeps its v1 allocation (the blocked eval retries it).
    assert_eq!(live_ids(&h, &web), old, "both v1 allocations keep running");
    assert_eq!(live(&h, &other).len(), 1);

    // Ports: webapp's own priority-20 allocation holds the static port a second allocation of
    // the priority-80 version needs; it is not evicted, nor is an unrelated low-priority
    // allocation on the node.
    let mut h = service_harness();
    let web = register(&mut h, service("webapp", 20, 256, &[Some(8080)]));
    let low = register(&mut h, service("low", 10, 256, &[Some(9090)]));
    let own = only_live(&h, &web);
    let plans_before = h.plans.len();
    let mut scaled = (*web).clone();
    scaled.priority = 80;
    scaled.task_groups[0].count = 2;
    scaled.job_modify_index += 1;
    register(&mut h, scaled);
    assert!(
        h.plans[plans_before..]
            .iter()
            .all(|p| p.node_preemptions.is_empty())
    );
    let new_placements = h.plans[plans_before..]
        .iter()
        .flat_map(|p| p.node_allocation.values().flatten())
        .filter(|a| a.id != own.id)
        .count();
    assert_eq!(new_placements, 0);
    let m = &h.last_eval().expect("eval").failed_tg_allocs["web"];
    assert_eq!(
        m.dimension_exhausted.get("network: reserved port collision 8080"),
        Some(&1),
        "{m:?}"
    );
    assert!(live_ids(&h, &web).contains(&own.id));
    assert_eq!(live(&h, &low).len(), 1);
}

#[test]
fn a_preempting_placement_is_scored_with_its_victims_still_on_the_node() {
    // Reference §8.6: utilisation for the score is computed before the victims are removed.
    let mut h = service_harness();
    let holder = register(&mut h, service("holder", 20, 7000, &[Some(8080)]));
    let holder_alloc = only_live(&h, &holder);
    register(&mut h, service("urgent", 80, 4000, &[Some(8080)]));
    let new = placed(&h);
    assert_eq!(new.len(), 1);
    let node = h.state.node(&new[0].node_id).unwrap();
    let capacity = drover_scheduler::fit::node_capacity(&node);
    let mut used = drover_scheduler::fit::alloc_usage(&new[0]);
    used.add(&drover_scheduler::fit::alloc_usage(&holder_alloc));
    let expected =
        drover_scheduler::rank::binpack_fitness(&capacity, &used) / drover_scheduler::rank::MAX_FITNESS;
    let metrics = new[0].metrics.as_ref().unwrap();
    let scored = metrics
        .score_meta_data
        .iter()
        .find(|m| m.node_id == node.id)
        .expect("the chosen node is in the score metadata");
    let binpack = scored.scores["binpack"];
    assert!(
        (binpack - expected).abs() < 1e-9,
        "binpack {binpack}, expected {expected} (with the victim's 7000 MB counted)"
    );
}
