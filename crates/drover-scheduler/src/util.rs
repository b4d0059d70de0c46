//! Helpers shared by the schedulers: candidate nodes, the destructive-change test, plan edits.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::{AllocMetric, client_status, desired_status};
use drover_types::eval::DesiredUpdates;
use drover_types::job::{NetworkResource, Task, TaskGroup};
use drover_types::{Allocation, Evaluation, Job, Node, Plan};
use serde_json::Value;

use crate::feasible;
use crate::stack::RankedNode;
use crate::state::{CandidateIndex, State};

/// The ready nodes in the job's datacenters (globs) and node pool: the candidate index and the
/// positions of those nodes in it; plus the count per datacenter (`NodesAvailable`) and the
/// pool size (`NodesInPool`). Visits each (datacenter, pool) group once, not each node.
pub fn ready_nodes(state: &dyn State, job: &Job) -> ReadyNodes {
    let index = state.candidates();
    let mut positions = Vec::new();
    let mut by_dc = BTreeMap::new();
    let mut in_pool = 0;
    for (pool, n) in &index.pool_sizes {
        if feasible::node_pool_matches(&job.node_pool, pool) {
            in_pool += n;
        }
    }
    for ((dc, pool), range) in &index.groups {
        if !feasible::node_pool_matches(&job.node_pool, pool)
            || !feasible::datacenter_matches(&job.datacenters, dc)
        {
            continue;
        }
        *by_dc.entry(dc.clone()).or_default() += range.len() as i64;
        positions.extend(range.clone().filter_map(|i| u32::try_from(i).ok()));
    }
    ReadyNodes {
        index,
        positions,
        by_dc: Arc::new(by_dc),
        in_pool,
    }
}

/// What [`ready_nodes`] found.
#[derive(Debug)]
pub struct ReadyNodes {
    /// The state's candidate index.
    pub index: Arc<CandidateIndex>,
    /// Positions in `index.candidates` of the job's ready nodes.
    pub positions: Vec<u32>,
    /// Ready nodes per datacenter.
    pub by_dc: Arc<BTreeMap<String, i64>>,
    /// Nodes in the job's pool (any status).
    pub in_pool: i64,
}

impl ReadyNodes {
    /// The nodes themselves.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.positions
            .iter()
            .filter_map(|&p| self.index.candidates.get(p as usize))
            .map(|c| &c.node)
    }
}

fn strip_dynamic(nets: &[NetworkResource]) -> Vec<NetworkResource> {
    nets.iter()
        .map(|n| {
            let mut n = n.clone();
            for p in &mut n.dynamic_ports {
                p.value = 0;
            }
            n.ip = String::new();
            n.device = String::new();
            n.cidr = String::new();
            n
        })
        .collect()
}

fn merged_meta(job: &Job, tg: &TaskGroup, t: &Task) -> BTreeMap<String, String> {
    let mut m = job.meta.clone();
    m.extend(tg.meta.clone());
    m.extend(t.meta.clone());
    m
}

fn task_changed(a: &Job, ag: &TaskGroup, at: &Task, b: &Job, bg: &TaskGroup, bt: &Task) -> bool {
    if at.driver != bt.driver
        || at.user != bt.user
        || at.config != bt.config
        || at.env != bt.env
        || at.artifacts != bt.artifacts
        || at.vault != bt.vault
        || at.templates != bt.templates
        || at.volume_mounts != bt.volume_mounts
        || at.consul != bt.consul
        || at.csi_plugin_config != bt.csi_plugin_config
        || at.identity != bt.identity
        || at.identities != bt.identities
        || at.secrets != bt.secrets
        || merged_meta(a, ag, at) != merged_meta(b, bg, bt)
    {
        return true;
    }
    let logs = |t: &Task| t.log_config.as_ref().map(|l| l.disabled).unwrap_or(false);
    if logs(at) != logs(bt) {
        return true;
    }
    let rt = |t: &Task| t.restart_policy.as_ref().and_then(|r| r.render_templates);
    if rt(at) != rt(bt) {
        return true;
    }
    let (ra, rb) = (
        at.resources.clone().unwrap_or_default(),
        bt.resources.clone().unwrap_or_default(),
    );
    ra.cpu != rb.cpu
        || ra.cores != rb.cores
        || ra.memory_mb != rb.memory_mb
        || ra.memory_max_mb != rb.memory_max_mb
        || ra.secrets_mb != rb.secrets_mb
        || ra.devices != rb.devices
        || ra.numa != rb.numa
        || strip_dynamic(&ra.networks) != strip_dynamic(&rb.networks)
}

fn connect_services(tg: &TaskGroup) -> Vec<&Value> {
    tg.services.iter().filter_map(|s| s.connect.as_ref()).collect()
}

/// Does moving from `old` to `new` need new allocations for `group` (a destructive update)?
/// Everything else (count, constraints, affinities, update blocks, plain services, …) can be
/// updated in place when the allocation still fits its node (§7.4).
pub fn tasks_updated(new: &Job, old: &Job, group: &str) -> bool {
    let (Some(a), Some(b)) = (old.group(group), new.group(group)) else {
        return true;
    };
    if a.tasks.len() != b.tasks.len()
        || a.ephemeral_disk != b.ephemeral_disk
        || strip_dynamic(&a.networks) != strip_dynamic(&b.networks)
        || a.volumes != b.volumes
        || a.consul != b.consul
        || connect_services(a) != connect_services(b)
    {
        return true;
    }
    for at in &a.tasks {
        let Some(bt) = b.task(&at.name) else { return true };
        if task_changed(old, a, at, new, b, bt) {
            return true;
        }
    }
    false
}

/// In place, destructive or nothing (§7.4): `job` is the new version of `existing`'s job. An
/// in-place update must still fit on the allocation's own node, checked with `stack` against a
/// plan where the existing allocation is already stopped (so it does not count against itself).
pub fn update_type(
    state: &dyn State,
    stack: &mut crate::stack::Stack,
    job: &Arc<Job>,
    existing: &Allocation,
    tg: &TaskGroup,
) -> crate::reconcile::UpdateType {
    use crate::reconcile::UpdateType;
    let Some(old_job) = existing.job.as_ref() else {
        return UpdateType::Destructive;
    };
    if old_job.job_modify_index == job.job_modify_index {
        return UpdateType::Ignore;
    }
    if tasks_updated(job, old_job, &tg.name) {
        return UpdateType::Destructive;
    }
    if existing.terminal() {
        return UpdateType::Ignore;
    }
    let Some(node) = state.node(&existing.node_id) else {
        return UpdateType::Destructive;
    };
    if !feasible::datacenter_matches(&job.datacenters, &node.datacenter)
        || !feasible::node_pool_matches(&job.node_pool, &node.node_pool)
    {
        return UpdateType::Destructive;
    }
    let mut staged = Plan::default();
    plan_stop(&mut staged, existing, "", None, None);
    let (option, _) = stack.select_on(state, &staged, tg, node, &crate::stack::SelectOptions::default());
    if option.is_none() {
        return UpdateType::Destructive;
    }
    let mut updated = existing.clone();
    updated.job = Some(job.clone());
    UpdateType::InPlace(updated)
}

/// Adds a stop of `alloc` to the plan (a diff: desired stop with a description).
pub fn plan_stop(
    plan: &mut Plan,
    alloc: &Allocation,
    description: &str,
    client_status: Option<&str>,
    followup: Option<&str>,
) {
    let mut a = alloc.clone();
    a.desired_status = desired_status::STOP.into();
    a.desired_description = description.into();
    if let Some(cs) = client_status {
        a.client_status = cs.into();
    }
    if let Some(f) = followup {
        a.followup_eval_id = f.into();
    }
    a.job = None;
    plan.node_update.entry(alloc.node_id.clone()).or_default().push(a);
}

/// Removes a staged stop of `alloc_id` from the plan (a placement that replaced it failed).
pub fn plan_unstop(plan: &mut Plan, node_id: &str, alloc_id: &str) {
    if let Some(v) = plan.node_update.get_mut(node_id) {
        v.retain(|a| a.id != alloc_id);
        if v.is_empty() {
            plan.node_update.shift_remove(node_id);
        }
    }
}

/// A new evaluation that follows `eval` (same job, priority and type; `previous_eval` set):
/// blocked evals, delayed follow-ups. The caller adds what is specific to it.
pub fn next_eval(
    eval: &Evaluation,
    id: String,
    now: i64,
    trigger: &str,
    status: &str,
    description: &str,
) -> Evaluation {
    Evaluation {
        id,
        namespace: eval.namespace.clone(),
        priority: eval.priority,
        eval_type: eval.eval_type.clone(),
        triggered_by: trigger.into(),
        job_id: eval.job_id.clone(),
        status: status.into(),
        status_description: description.into(),
        previous_eval: eval.id.clone(),
        create_time: now,
        modify_time: now,
        ..Default::default()
    }
}

/// Fails an evaluation whose trigger this scheduler does not handle.
pub fn fail_unknown_trigger(
    planner: &mut dyn crate::Planner,
    eval: &Evaluation,
) -> Result<(), crate::SchedulerError> {
    let mut e = eval.clone();
    e.status = drover_types::eval::eval_status::FAILED.into();
    e.status_description = format!(
        "scheduler cannot handle '{}' evaluation reason",
        eval.triggered_by
    );
    planner.update_eval(e)
}

/// Adds a placement or in-place update to the plan.
pub fn plan_alloc(plan: &mut Plan, alloc: Allocation) {
    plan.node_allocation
        .entry(alloc.node_id.clone())
        .or_default()
        .push(alloc);
}

/// A new allocation for a placement the stack chose: pending, desired to run, carrying the
/// job, the grant (moved out of `option`) and the placement metrics. The caller adds what is
/// specific to its scheduler (deployment, canary, previous allocation).
#[allow(clippy::too_many_arguments)]
pub fn new_alloc(
    id: String,
    now: i64,
    eval: &Evaluation,
    job: &Arc<Job>,
    tg: &TaskGroup,
    name: &str,
    option: &mut RankedNode,
    metrics: AllocMetric,
) -> Allocation {
    Allocation {
        id,
        namespace: job.namespace.clone(),
        eval_id: eval.id.clone(),
        name: name.to_string(),
        node_id: option.node.id.clone(),
        node_name: option.node.name.clone(),
        job_id: job.id.clone(),
        job: Some(job.clone()),
        task_group: tg.name.clone(),
        allocated_resources: Some(std::mem::take(&mut option.resources)),
        metrics: Some(metrics),
        desired_status: desired_status::RUN.into(),
        client_status: client_status::PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Default::default()
    }
}

/// Records the evictions a placement needs: on the new allocation, in the plan, and in the
/// group's desired-update counts.
pub fn plan_preemptions(
    plan: &mut Plan,
    alloc: &mut Allocation,
    victims: &[Arc<Allocation>],
    desired: &mut DesiredUpdates,
) {
    if victims.is_empty() {
        return;
    }
    alloc.preempted_allocations = victims.iter().map(|v| v.id.clone()).collect();
    for v in victims {
        plan_preempt(plan, v, &alloc.id);
    }
    desired.preemptions += victims.len() as u64;
}

/// Adds an eviction to the plan.
pub fn plan_preempt(plan: &mut Plan, victim: &Allocation, by: &str) {
    let mut a = victim.clone();
    a.desired_status = desired_status::EVICT.into();
    a.desired_description = format!("Preempted by alloc ID {by}");
    a.preempted_by_allocation = by.into();
    a.job = None;
    plan.node_preemptions
        .entry(victim.node_id.clone())
        .or_default()
        .push(a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_testkit_free::job;

    mod drover_testkit_free {
        use drover_types::Job;
        use drover_types::canonicalize::canonicalize_job;
        use drover_types::job::{Resources, Task, TaskGroup};

        pub fn job() -> Job {
            let mut j = Job {
                id: "j".into(),
                task_groups: vec![TaskGroup {
                    name: "g".into(),
                    count: 2,
                    tasks: vec![Task {
                        name: "t".into(),
                        driver: "exec".into(),
                        resources: Some(Resources {
                            cpu: 100,
                            memory_mb: 64,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            canonicalize_job(&mut j);
            j
        }
    }

    #[test]
    fn destructive_vs_in_place_changes() {
        let old = job();
        let mut count = old.clone();
        count.task_groups[0].count = 5;
        assert!(!tasks_updated(&count, &old, "g"), "count is in place");
        let mut mem = old.clone();
        mem.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 128;
        assert!(tasks_updated(&mem, &old, "g"), "memory is destructive");
        let mut cfg = old.clone();
        cfg.task_groups[0].tasks[0]
            .config
            .insert("image".into(), Value::String("x".into()));
        assert!(tasks_updated(&cfg, &old, "g"), "driver config is destructive");
        let mut meta = old.clone();
        meta.meta.insert("k".into(), "v".into());
        assert!(tasks_updated(&meta, &old, "g"), "meta is destructive");
        let mut constraint = old.clone();
        constraint.task_groups[0].constraints.push(Default::default());
        assert!(!tasks_updated(&constraint, &old, "g"), "constraints are in place");
        assert!(tasks_updated(&old, &old, "missing"));
    }
}

/// A fast, non-cryptographic hasher (the Fx multiply-rotate scheme) for the scheduler's
/// per-evaluation caches keyed by node IDs and class strings. The keys are not chosen by an
/// attacker within one evaluation, so SipHash's protection buys nothing on this hot path.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A HashMap with [`FxHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
