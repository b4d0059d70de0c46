//! Plan verification: the leader's last word on a scheduler's plan.
//!
//! ```text
//!  Plan (from a worker, planned at SnapshotIndex) ──▶ evaluate_plan(latest snapshot, plan, now)
//!     per node in NodeUpdate ∪ NodeAllocation:
//!       stop-only ─▶ fits
//!       node missing / not ready / ineligible (unless in-place only) ─▶ rejected
//!       existing live allocs − stops − preemptions − replaced + placements ─▶ fit::allocs_fit
//!     ──▶ PlanResult (what is committed, rejected nodes, RefreshIndex when partial)
//!     ──▶ Command::ApplyPlanResults (None when nothing is committed)
//! ```
//!
//! Schedulers plan against snapshots that may be stale: two workers can pick the same free
//! node. Re-checking every node here, with the scheduler's own fit check
//! ([`drover_scheduler::fit::allocs_fit`], the one shared function), is what keeps a node from
//! being over-committed. A node that no longer fits is dropped from the result and the result
//! carries a `RefreshIndex`: the worker re-plans on a snapshot at least that fresh.
//!
//! Pure: the caller supplies the snapshot, `now` and an ID source (for preemption evaluations),
//! and writes the returned command through Raft.
//!
//! Limitations: nodes are checked one after the other (Nomad fans out to a pool); the
//! bad-node tracker (disabled by default in Nomad) is not implemented.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_scheduler::fit;
use drover_state::{AllocPreemptDiff, AllocStopDiff, Command, StateSnapshot, Table};
use drover_types::alloc::client_status;
use drover_types::node::node_status;
use drover_types::{Allocation, Evaluation, Plan, PlanResult};

/// The verdict on one node.
fn evaluate_node(snap: &StateSnapshot, plan: &Plan, node_id: &str) -> Result<(), String> {
    let Some(placements) = plan.node_allocation.get(node_id).filter(|p| !p.is_empty()) else {
        return Ok(()); // stops always fit
    };
    let Some(node) = snap.node(node_id) else {
        return Err("node does not exist".into());
    };
    match node.status.as_str() {
        node_status::DISCONNECTED => {
            return if placements
                .iter()
                .all(|a| a.client_status == client_status::UNKNOWN)
            {
                Ok(())
            } else {
                Err("node is disconnected and contains invalid updates".into())
            };
        }
        node_status::DOWN => {
            return if placements
                .iter()
                .all(|a| a.client_status == client_status::LOST || a.client_status == client_status::UNKNOWN)
            {
                Ok(())
            } else {
                Err("node is down and contains invalid updates".into())
            };
        }
        node_status::READY => {}
        _ => return Err("node is not ready for placements".into()),
    }
    let existing = snap.allocs_by_node(node_id);
    let live: Vec<&Arc<Allocation>> = existing.iter().filter(|a| !a.terminal()).collect();
    let in_place_only = placements.iter().all(|p| live.iter().any(|a| a.id == p.id));
    if !in_place_only && (node.scheduling_eligibility == "ineligible" || node.drain_strategy.is_some()) {
        return Err("node is not eligible".into());
    }
    let removed = |id: &str| {
        plan.node_update
            .get(node_id)
            .is_some_and(|v| v.iter().any(|a| a.id == id))
            || plan
                .node_preemptions
                .get(node_id)
                .is_some_and(|v| v.iter().any(|a| a.id == id))
            || placements.iter().any(|p| p.id == id)
    };
    let mut proposed: Vec<&Allocation> = live
        .iter()
        .filter(|a| !removed(&a.id))
        .map(|a| a.as_ref())
        .collect();
    proposed.extend(placements.iter());
    fit::allocs_fit(&node, &proposed, true)
        .map(|_| ())
        .map_err(|m| m.dimension())
}

/// What the applier decided about a plan.
#[derive(Debug)]
pub struct Evaluated {
    /// What the worker is told.
    pub result: PlanResult,
    /// What goes through Raft (None: nothing to commit).
    pub command: Option<Command>,
    /// Why each rejected node was rejected (for logs and metrics).
    pub rejections: BTreeMap<String, String>,
}

/// Verifies `plan` against `snap` and builds the command that commits what fits.
pub fn evaluate_plan(
    snap: &StateSnapshot,
    plan: &Plan,
    now: i64,
    ids: &mut dyn FnMut() -> String,
) -> Evaluated {
    let mut result = PlanResult::default();
    let mut rejections = BTreeMap::new();
    let mut nodes: Vec<&String> = plan
        .node_update
        .keys()
        .chain(plan.node_allocation.keys())
        .collect();
    nodes.sort();
    nodes.dedup();
    let mut partial = false;
    for node_id in nodes {
        match evaluate_node(snap, plan, node_id) {
            Ok(()) => {
                if let Some(v) = plan.node_update.get(node_id) {
                    result.node_update.insert(node_id.clone(), v.clone());
                }
                if let Some(v) = plan.node_allocation.get(node_id) {
                    result.node_allocation.insert(node_id.clone(), v.clone());
                }
                if let Some(v) = plan.node_preemptions.get(node_id) {
                    // Only allocations that are still live are preempted.
                    let live: Vec<Allocation> = v
                        .iter()
                        .filter(|a| snap.alloc(&a.id).is_some_and(|s| !s.terminal()))
                        .cloned()
                        .collect();
                    if !live.is_empty() {
                        result.node_preemptions.insert(node_id.clone(), live);
                    }
                }
            }
            Err(why) => {
                partial = true;
                result.rejected_nodes.push(node_id.clone());
                rejections.insert(node_id.clone(), why);
                if plan.all_at_once {
                    result.node_update.clear();
                    result.node_allocation.clear();
                    result.node_preemptions.clear();
                    break;
                }
            }
        }
    }
    result.deployment = plan.deployment.clone();
    result.deployment_updates = plan.deployment_updates.clone();
    if partial {
        result.refresh_index = snap
            .table_index(Table::Allocs)
            .max(snap.table_index(Table::Nodes))
            .max(1);
        // Canaries that were not placed are not part of the deployment.
        if let Some(d) = result.deployment.as_mut() {
            let placed: Vec<&str> = result
                .node_allocation
                .values()
                .flatten()
                .map(|a| a.id.as_str())
                .collect();
            for state in d.task_groups.values_mut() {
                state.placed_canaries.retain(|id| placed.contains(&id.as_str()));
            }
        }
    }
    let empty = result.node_update.is_empty()
        && result.node_allocation.is_empty()
        && result.node_preemptions.is_empty()
        && result.deployment.is_none()
        && result.deployment_updates.is_empty();
    if empty {
        return Evaluated {
            result,
            command: None,
            rejections,
        };
    }
    let allocs_updated: Vec<Allocation> = result
        .node_allocation
        .values()
        .flatten()
        .map(|a| {
            let mut a = a.clone();
            if a.create_time == 0 {
                a.create_time = now;
            }
            a.modify_time = now;
            a
        })
        .collect();
    let allocs_stopped: Vec<AllocStopDiff> = result
        .node_update
        .values()
        .flatten()
        .map(|a| AllocStopDiff {
            id: a.id.clone(),
            desired_description: a.desired_description.clone(),
            client_status: a.client_status.clone(),
            followup_eval_id: a.followup_eval_id.clone(),
            modify_time: now,
        })
        .collect();
    let mut allocs_preempted = Vec::new();
    let mut preempted_jobs: BTreeMap<(String, String), Arc<Allocation>> = BTreeMap::new();
    for a in result.node_preemptions.values().flatten() {
        allocs_preempted.push(AllocPreemptDiff {
            id: a.id.clone(),
            preempted_by_allocation: a.preempted_by_allocation.clone(),
            modify_time: now,
        });
        if let Some(stored) = snap.alloc(&a.id) {
            preempted_jobs
                .entry((stored.namespace.clone(), stored.job_id.clone()))
                .or_insert(stored);
        }
    }
    let preemption_evals = preempted_jobs
        .into_iter()
        .filter_map(|((ns, job_id), alloc)| {
            let job = snap.job(&ns, &job_id)?;
            Some(Evaluation {
                id: ids(),
                namespace: ns,
                priority: job.priority,
                eval_type: job.job_type.clone(),
                triggered_by: "preemption".into(),
                job_id,
                job_modify_index: job.job_modify_index,
                status: "pending".into(),
                create_time: now,
                modify_time: now,
                previous_eval: alloc.eval_id.clone(),
                ..Default::default()
            })
        })
        .collect();
    let command = Command::ApplyPlanResults {
        job: plan.job.as_ref().map(|j| (**j).clone()),
        allocs_updated,
        allocs_stopped,
        allocs_preempted,
        deployment: result.deployment.clone(),
        deployment_updates: result.deployment_updates.clone(),
        eval_id: plan.eval_id.clone(),
        preemption_evals,
    };
    Evaluated {
        result,
        command: Some(command),
        rejections,
    }
}
