//! Builders for the reconciler tests: tiny jobs, allocations and nodes with readable IDs, a
//! counting ID source and an update function that follows §7.4 closely enough (same job →
//! ignore; tasks changed → destructive; otherwise in place).
//!
//! Conventions: the job is `example`, its group `cache`, so names read `example.cache[2]`; an
//! allocation's default ID is `<group><index>` (`cache2`); it runs on node `n1`, created an
//! hour before [`NOW`].

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::{
    AllocDeploymentStatus, AllocState, Allocation, RescheduleEvent, RescheduleTracker, TaskState, alloc_name,
    client_status, desired_status,
};
use drover_types::eval::{Deployment, DeploymentState, DesiredUpdates, deployment_status};
use drover_types::job::{
    DisconnectStrategy, Job, MigrateStrategy, ReschedulePolicy, Task, TaskGroup, UpdateStrategy, job_type,
};
use drover_types::node::{DrainStrategy, Node, node_status};
use drover_types::time::{HOUR, SECOND, Timestamp};

use super::{ReconcileInput, ReconcileResults, UpdateType, reconcile};

/// "Now" in every test.
pub(crate) const NOW: i64 = 1_700_000_000 * SECOND;
/// The job ID.
pub(crate) const JOB: &str = "example";
/// The group name.
pub(crate) const GROUP: &str = "cache";

/// `example.cache[i]`.
pub(crate) fn name(i: u64) -> String {
    alloc_name(JOB, GROUP, i)
}

fn task(image: &str) -> Task {
    let mut t = Task {
        name: "app".into(),
        driver: "docker".into(),
        ..Task::default()
    };
    t.config
        .insert("image".into(), serde_json::Value::String(image.into()));
    t
}

/// A group named `name` with one task running image `v1`.
pub(crate) fn group(name: &str, count: i64) -> TaskGroup {
    TaskGroup {
        name: name.into(),
        count,
        tasks: vec![task("v1")],
        ..TaskGroup::default()
    }
}

fn job_of(kind: &str, groups: Vec<TaskGroup>) -> Job {
    Job {
        id: JOB.into(),
        name: JOB.into(),
        namespace: "default".into(),
        job_type: kind.into(),
        datacenters: vec!["dc1".into()],
        task_groups: groups,
        version: 0,
        create_index: 10,
        modify_index: 10,
        job_modify_index: 10,
        ..Job::default()
    }
}

/// A service job: group `cache` with `count`, Nomad's default service reschedule policy, an
/// update block with `max_parallel` 1 and no canaries.
pub(crate) fn service_job(count: i64) -> Job {
    let mut g = group(GROUP, count);
    g.reschedule_policy = ReschedulePolicy::default_for(job_type::SERVICE);
    g.update = Some(UpdateStrategy::nomad_default());
    g.migrate = Some(MigrateStrategy::nomad_default());
    job_of(job_type::SERVICE, vec![g])
}

/// A batch job: group `cache` with `count`, Nomad's default batch reschedule policy.
pub(crate) fn batch_job(count: i64) -> Job {
    let mut g = group(GROUP, count);
    g.reschedule_policy = ReschedulePolicy::default_for(job_type::BATCH);
    job_of(job_type::BATCH, vec![g])
}

/// A system (or sysbatch) job with group `cache`.
pub(crate) fn system_job(sysbatch: bool) -> Job {
    let mut g = group(GROUP, 1);
    let kind = if sysbatch {
        job_type::SYSBATCH
    } else {
        job_type::SYSTEM
    };
    if !sysbatch {
        g.update = Some(UpdateStrategy::nomad_default());
    }
    job_of(kind, vec![g])
}

/// The next version of `job`; `image` changes the task (a destructive change), `None` changes
/// nothing the update function looks at (an in-place change).
pub(crate) fn next_version(job: &Job, image: Option<&str>) -> Job {
    let mut j = job.clone();
    j.version += 1;
    j.job_modify_index += 10;
    j.modify_index = j.job_modify_index;
    if let Some(image) = image {
        for g in &mut j.task_groups {
            g.tasks = vec![task(image)];
        }
    }
    j
}

/// Mutates the `cache` group of a job.
pub(crate) fn with_group(mut job: Job, f: impl FnOnce(&mut TaskGroup)) -> Job {
    if let Some(g) = job.task_groups.iter_mut().find(|g| g.name == GROUP) {
        f(g);
    }
    job
}

/// Sets the group's update block fields.
pub(crate) fn with_update(job: Job, max_parallel: i64, canary: i64) -> Job {
    with_group(job, |g| {
        let mut u = UpdateStrategy::nomad_default();
        u.max_parallel = Some(max_parallel);
        u.canary = Some(canary);
        g.update = Some(u);
    })
}

/// Sets the group's disconnect block.
pub(crate) fn with_disconnect(job: Job, lost_after: i64, replace: bool, stop_after: Option<i64>) -> Job {
    with_group(job, |g| {
        g.disconnect = Some(DisconnectStrategy {
            lost_after,
            replace,
            stop_on_client_after: stop_after,
            ..DisconnectStrategy::default()
        });
    })
}

/// Sets the group's reschedule policy.
pub(crate) fn with_policy(job: Job, policy: ReschedulePolicy) -> Job {
    with_group(job, |g| g.reschedule_policy = Some(policy))
}

/// A reschedule policy.
pub(crate) fn policy(
    attempts: i64,
    interval: i64,
    delay: i64,
    function: &str,
    max: i64,
    unlimited: bool,
) -> ReschedulePolicy {
    ReschedulePolicy {
        attempts: Some(attempts),
        interval: Some(interval),
        delay: Some(delay),
        delay_function: Some(function.into()),
        max_delay: Some(max),
        unlimited: Some(unlimited),
    }
}

/// An allocation builder.
#[derive(Debug, Clone)]
pub(crate) struct A(pub Allocation);

impl A {
    /// A running allocation `<group>[index]` of `job` on `n1`, with ID `<group><index>`.
    pub(crate) fn new(job: &Arc<Job>, group: &str, index: u64) -> A {
        A(Allocation {
            id: format!("{group}{index}"),
            namespace: job.namespace.clone(),
            eval_id: "eval-0".into(),
            name: alloc_name(&job.id, group, index),
            node_id: "n1".into(),
            job_id: job.id.clone(),
            job: Some(Arc::clone(job)),
            task_group: group.into(),
            desired_status: desired_status::RUN.into(),
            client_status: client_status::RUNNING.into(),
            create_index: 20 + index,
            modify_index: 20 + index,
            create_time: NOW - HOUR,
            modify_time: NOW - HOUR,
            ..Allocation::default()
        })
    }
    /// Of the `cache` group.
    pub(crate) fn of(job: &Arc<Job>, index: u64) -> A {
        A::new(job, GROUP, index)
    }
    pub(crate) fn id(mut self, id: &str) -> A {
        self.0.id = id.into();
        self
    }
    pub(crate) fn node(mut self, node: &str) -> A {
        self.0.node_id = node.into();
        self
    }
    pub(crate) fn client(mut self, status: &str) -> A {
        self.0.client_status = status.into();
        self
    }
    pub(crate) fn desired(mut self, status: &str) -> A {
        self.0.desired_status = status.into();
        self
    }
    pub(crate) fn created(mut self, index: u64) -> A {
        self.0.create_index = index;
        self
    }
    /// Client status failed, its task finished (failed) at `at`.
    pub(crate) fn failed_at(mut self, at: i64) -> A {
        self.0.client_status = client_status::FAILED.into();
        self.0.task_states.insert(
            "app".into(),
            TaskState {
                state: "dead".into(),
                failed: true,
                finished_at: Some(Timestamp(at)),
                ..TaskState::default()
            },
        );
        self
    }
    pub(crate) fn complete(mut self) -> A {
        self.0.client_status = client_status::COMPLETE.into();
        self
    }
    pub(crate) fn migrate(mut self) -> A {
        self.0.desired_transition.migrate = Some(true);
        self
    }
    pub(crate) fn no_placement(mut self) -> A {
        self.0.desired_transition.migrate_disable_placement = Some(true);
        self
    }
    /// A canary of deployment `d`.
    pub(crate) fn canary(mut self, d: &str, healthy: Option<bool>) -> A {
        self.0.deployment_id = d.into();
        self.0.deployment_status = Some(AllocDeploymentStatus {
            canary: true,
            healthy,
            ..Default::default()
        });
        self
    }
    /// Part of deployment `d` with the given health.
    pub(crate) fn in_deployment(mut self, d: &str, healthy: Option<bool>) -> A {
        self.0.deployment_id = d.into();
        self.0.deployment_status = Some(AllocDeploymentStatus {
            healthy,
            ..Default::default()
        });
        self
    }
    /// Previous reschedules: `(when, delay)`.
    pub(crate) fn rescheduled(mut self, events: &[(i64, i64)]) -> A {
        self.0.reschedule_tracker = Some(RescheduleTracker {
            events: events
                .iter()
                .map(|&(t, d)| RescheduleEvent {
                    reschedule_time: t,
                    prev_alloc_id: "older".into(),
                    prev_node_id: "n0".into(),
                    delay: d,
                })
                .collect(),
            last_reschedule: "ok".into(),
        });
        self
    }
    pub(crate) fn followup(mut self, eval: &str) -> A {
        self.0.followup_eval_id = eval.into();
        self
    }
    pub(crate) fn next(mut self, id: &str) -> A {
        self.0.next_allocation = id.into();
        self
    }
    pub(crate) fn prev(mut self, id: &str) -> A {
        self.0.previous_allocation = id.into();
        self
    }
    /// Records a client-status transition.
    pub(crate) fn state(mut self, value: &str, at: i64) -> A {
        self.0.alloc_states.push(AllocState {
            field: 0,
            value: value.into(),
            time: Some(Timestamp(at)),
        });
        self
    }
    pub(crate) fn modified(mut self, at: i64) -> A {
        self.0.modify_time = at;
        self
    }
    pub(crate) fn arc(self) -> Arc<Allocation> {
        Arc::new(self.0)
    }
}

/// A ready, eligible node.
pub(crate) fn ready(id: &str) -> Arc<Node> {
    Arc::new(Node {
        id: id.into(),
        name: id.into(),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        status: node_status::READY.into(),
        scheduling_eligibility: "eligible".into(),
        ..Node::default()
    })
}

/// A node with another status.
pub(crate) fn with_status(id: &str, status: &str) -> Arc<Node> {
    let mut n = (*ready(id)).clone();
    n.status = status.into();
    Arc::new(n)
}

/// A draining (ineligible) node.
pub(crate) fn draining(id: &str) -> Arc<Node> {
    let mut n = (*ready(id)).clone();
    n.drain_strategy = Some(DrainStrategy::default());
    n.drain = true;
    n.scheduling_eligibility = "ineligible".into();
    Arc::new(n)
}

/// A tainted map: present nodes, and `missing` IDs mapped to `None`.
pub(crate) fn tainted(nodes: &[Arc<Node>], missing: &[&str]) -> BTreeMap<String, Option<Arc<Node>>> {
    let mut m: BTreeMap<String, Option<Arc<Node>>> = nodes
        .iter()
        .map(|n| (n.id.clone(), Some(Arc::clone(n))))
        .collect();
    for id in missing {
        m.insert((*id).to_string(), None);
    }
    m
}

/// A deployment of `job` with one group state.
pub(crate) fn deployment(id: &str, job: &Job, status: &str, state: DeploymentState) -> Deployment {
    Deployment {
        id: id.into(),
        namespace: job.namespace.clone(),
        job_id: job.id.clone(),
        job_version: job.version,
        job_modify_index: job.job_modify_index,
        job_create_index: job.create_index,
        task_groups: BTreeMap::from([(GROUP.to_string(), state)]),
        status: status.into(),
        ..Deployment::default()
    }
}

/// A running deployment's group state.
pub(crate) fn dstate(
    desired_total: i64,
    desired_canaries: i64,
    promoted: bool,
    canaries: &[&str],
) -> DeploymentState {
    DeploymentState {
        desired_total,
        desired_canaries,
        promoted,
        placed_canaries: canaries.iter().map(|c| (*c).to_string()).collect(),
        ..DeploymentState::default()
    }
}

/// The update function the tests use (§7.4 without the feasibility check).
pub(crate) fn test_update(alloc: &Allocation, job: &Job, tg: &TaskGroup) -> UpdateType {
    let Some(old) = &alloc.job else {
        return UpdateType::Destructive;
    };
    if old.job_modify_index == job.job_modify_index {
        return UpdateType::Ignore;
    }
    match old.group(&tg.name) {
        Some(g) if g.tasks == tg.tasks => {
            if alloc.terminal() {
                UpdateType::Ignore
            } else {
                let mut updated = alloc.clone();
                updated.job = Some(Arc::new(job.clone()));
                UpdateType::InPlace(updated)
            }
        }
        _ => UpdateType::Destructive,
    }
}

/// One reconciler run.
pub(crate) struct Run {
    pub job: Option<Arc<Job>>,
    pub batch: bool,
    pub allocs: Vec<Arc<Allocation>>,
    pub tainted: BTreeMap<String, Option<Arc<Node>>>,
    pub deployment: Option<Deployment>,
    pub now: i64,
    pub eval_id: String,
}

impl Run {
    pub(crate) fn new(job: &Arc<Job>) -> Run {
        Run {
            batch: job.job_type == job_type::BATCH,
            job: Some(Arc::clone(job)),
            allocs: Vec::new(),
            tainted: BTreeMap::new(),
            deployment: None,
            now: NOW,
            eval_id: "eval-1".into(),
        }
    }
    pub(crate) fn allocs(mut self, allocs: Vec<Arc<Allocation>>) -> Run {
        self.allocs = allocs;
        self
    }
    pub(crate) fn tainted(mut self, t: BTreeMap<String, Option<Arc<Node>>>) -> Run {
        self.tainted = t;
        self
    }
    pub(crate) fn deployment(mut self, d: Deployment) -> Run {
        self.deployment = Some(d);
        self
    }
    pub(crate) fn eval(mut self, id: &str) -> Run {
        self.eval_id = id.into();
        self
    }
    pub(crate) fn go(self) -> ReconcileResults {
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("id-{n}")
        };
        let mut update = test_update;
        reconcile(ReconcileInput {
            job: self.job,
            job_id: JOB.into(),
            namespace: "default".into(),
            batch: self.batch,
            eval_id: self.eval_id,
            eval_priority: 50,
            deployment: self.deployment,
            existing: self.allocs,
            tainted: self.tainted,
            now: self.now,
            update_fn: &mut update,
            id_gen: &mut ids,
        })
    }
}

/// Names placed (all placements, in order).
pub(crate) fn placed(r: &ReconcileResults) -> Vec<String> {
    r.place.iter().map(|p| p.name.clone()).collect()
}

/// `(alloc ID, description, client status)` of every stop, in order.
pub(crate) fn stops(r: &ReconcileResults) -> Vec<(String, String, Option<String>)> {
    r.stop
        .iter()
        .map(|s| (s.alloc.id.clone(), s.description.clone(), s.client_status.clone()))
        .collect()
}

/// Stop tuples for expectations.
pub(crate) fn stop(id: &str, description: &str, client: Option<&str>) -> (String, String, Option<String>) {
    (
        id.to_string(),
        description.to_string(),
        client.map(str::to_string),
    )
}

/// The annotations of the `cache` group.
pub(crate) fn du(r: &ReconcileResults) -> DesiredUpdates {
    r.desired_tg_updates.get(GROUP).cloned().unwrap_or_default()
}

/// Annotation counts in a compact literal form.
pub(crate) fn counts(place: u64, stop: u64, ignore: u64) -> DesiredUpdates {
    DesiredUpdates {
        place,
        stop,
        ignore,
        ..DesiredUpdates::default()
    }
}

/// Deployment status names, re-exported for brevity.
pub(crate) use deployment_status::{CANCELLED, FAILED, PAUSED, RUNNING, SUCCESSFUL};
