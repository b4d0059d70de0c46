//! The core scheduler: garbage-collection decisions (`_core` evaluations).
//!
//! ```text
//!  _core eval (JobID = eval-gc | job-gc | node-gc | deployment-gc | force-gc)
//!     └─ gc(state, kind, now, thresholds) ──▶ GcDecision { evals, allocs, jobs, nodes, deployments }
//! ```
//! The decision is data: the server reaps it through Raft in batches. Rules
//! (`reference/server-and-scheduler.md` §14):
//! - an allocation is collectable when terminal and older than the cutoff, never while its
//!   client still runs it; a failed allocation of a job that reschedules is kept until it has a
//!   replacement (`NextAllocation`) or its reschedule window has passed;
//! - an evaluation is collectable when terminal, older than its cutoff (1 h, batch 24 h) and all
//!   its allocations are collectable;
//! - a job is collectable when it is `dead` and stopped (service/system) or finished
//!   (batch/sysbatch), submitted before the cutoff (4 h) and all its evaluations are collectable;
//! - a node when `down` longer than 24 h and it has only terminal allocations;
//! - a deployment when inactive, older than 1 h and no live allocation belongs to it.

use std::collections::{BTreeSet, HashMap};

use drover_types::eval::eval_status;
use drover_types::job::job_type;
use drover_types::node::node_status;
use drover_types::time::{HOUR, Nanos, SECOND};

use crate::harness::deployment_active;
use crate::state::State;

/// Age thresholds.
#[derive(Debug, Clone)]
pub struct GcThresholds {
    /// Evaluations (1 h).
    pub eval: Nanos,
    /// Evaluations of batch jobs (24 h).
    pub batch_eval: Nanos,
    /// Jobs (4 h).
    pub job: Nanos,
    /// Down nodes (24 h).
    pub node: Nanos,
    /// Deployments (1 h).
    pub deployment: Nanos,
}

impl Default for GcThresholds {
    fn default() -> Self {
        GcThresholds {
            eval: HOUR,
            batch_eval: 24 * HOUR,
            job: 4 * HOUR,
            node: 24 * HOUR,
            deployment: HOUR,
        }
    }
}

impl GcThresholds {
    /// Everything older than 1 ms (the `force-gc` API).
    pub fn forced() -> Self {
        let ms = 1_000_000;
        GcThresholds {
            eval: ms,
            batch_eval: ms,
            job: ms,
            node: ms,
            deployment: ms,
        }
    }
}

/// What to reap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcDecision {
    /// Evaluation IDs.
    pub evals: Vec<String>,
    /// Allocation IDs.
    pub allocs: Vec<String>,
    /// (namespace, job ID) to purge.
    pub jobs: Vec<(String, String)>,
    /// Node IDs.
    pub nodes: Vec<String>,
    /// Deployment IDs.
    pub deployments: Vec<String>,
}

/// Decides what the core job `kind` collects at `now` (unix ns).
pub fn gc(state: &dyn State, kind: &str, now: i64, t: &GcThresholds) -> GcDecision {
    let mut d = GcDecision::default();
    let all = kind == "force-gc";
    if all || kind == "eval-gc" || kind == "job-gc" {
        eval_and_job_gc(
            state,
            now,
            t,
            &mut d,
            all || kind == "job-gc",
            all || kind == "eval-gc",
        );
    }
    if all || kind == "deployment-gc" {
        for dep in state.deployments() {
            if deployment_active(&dep) || now - dep.modify_time < t.deployment {
                continue;
            }
            let live = state
                .allocs_by_job(&dep.namespace, &dep.job_id)
                .iter()
                .any(|a| a.deployment_id == dep.id && !a.terminal());
            if !live {
                d.deployments.push(dep.id.clone());
            }
        }
    }
    if all || kind == "node-gc" {
        for n in state.nodes() {
            if n.status != node_status::DOWN || now - n.status_updated_at.saturating_mul(SECOND) < t.node {
                continue;
            }
            if state.allocs_by_node(&n.id).iter().all(|a| a.terminal()) {
                d.nodes.push(n.id.clone());
            }
        }
    }
    d.evals.sort();
    d.allocs.sort();
    d.allocs.dedup();
    d
}

fn eval_and_job_gc(
    state: &dyn State,
    now: i64,
    t: &GcThresholds,
    d: &mut GcDecision,
    jobs: bool,
    evals: bool,
) {
    let mut allocs_by_eval: HashMap<String, Vec<std::sync::Arc<drover_types::Allocation>>> = HashMap::new();
    for a in state.allocs() {
        allocs_by_eval.entry(a.eval_id.clone()).or_default().push(a);
    }
    let mut collectable_evals: BTreeSet<String> = BTreeSet::new();
    let mut blocked_evals_by_job: HashMap<(String, String), bool> = HashMap::new();
    for e in state.evals() {
        let key = (e.namespace.clone(), e.job_id.clone());
        let job = state.job(&e.namespace, &e.job_id);
        let batch = job
            .as_ref()
            .is_some_and(|j| matches!(j.job_type.as_str(), job_type::BATCH | job_type::SYSBATCH));
        let cutoff = if batch { t.batch_eval } else { t.eval };
        let terminal = matches!(
            e.status.as_str(),
            eval_status::COMPLETE | eval_status::FAILED | eval_status::CANCELED
        );
        if !terminal || now - e.modify_time < cutoff {
            *blocked_evals_by_job.entry(key).or_default() = true;
            continue;
        }
        let allocs = allocs_by_eval.get(&e.id).cloned().unwrap_or_default();
        // A batch job that is still live keeps its finished work: collecting a complete alloc
        // would make the scheduler run it again. Only allocs of older job versions go, and the
        // eval only when all of its allocs do.
        if e.eval_type == job_type::BATCH
            && let Some(j) = job.as_deref().filter(|j| j.status != "dead")
        {
            let old: Vec<String> = allocs
                .iter()
                .filter(|a| a.create_index < j.job_modify_index && alloc_collectable(a, None, now, cutoff))
                .map(|a| a.id.clone())
                .collect();
            let whole = old.len() == allocs.len();
            if evals {
                if whole {
                    collectable_evals.insert(e.id.clone());
                    d.evals.push(e.id.clone());
                }
                d.allocs.extend(old);
            }
            if !whole {
                *blocked_evals_by_job.entry(key).or_default() = true;
            }
            continue;
        }
        let ok = allocs
            .iter()
            .all(|a| alloc_collectable(a, job.as_deref(), now, cutoff));
        if ok {
            collectable_evals.insert(e.id.clone());
            if evals {
                d.evals.push(e.id.clone());
                d.allocs.extend(allocs.iter().map(|a| a.id.clone()));
            }
        } else {
            *blocked_evals_by_job.entry(key).or_default() = true;
        }
    }
    if !jobs {
        return;
    }
    for j in state.jobs() {
        let key = (j.namespace.clone(), j.id.clone());
        if j.status != "dead" || now - j.submit_time < t.job || j.version_tag.is_some() {
            continue;
        }
        let stopped_or_batch = j.stop || matches!(j.job_type.as_str(), job_type::BATCH | job_type::SYSBATCH);
        let periodic_parent = j.periodic.is_some() || j.is_parameterized();
        if !stopped_or_batch || (periodic_parent && !j.stop) {
            continue;
        }
        if blocked_evals_by_job.get(&key).copied().unwrap_or(false) {
            continue;
        }
        if state
            .allocs_by_job(&j.namespace, &j.id)
            .iter()
            .any(|a| !a.terminal())
        {
            continue;
        }
        d.jobs.push(key);
    }
}

/// Can this allocation be collected? (`job` is its job's current version, if any.)
pub fn alloc_collectable(
    a: &drover_types::Allocation,
    job: Option<&drover_types::Job>,
    now: i64,
    cutoff: Nanos,
) -> bool {
    if !a.terminal() || a.client_status == "running" {
        return false;
    }
    if now - a.modify_time < cutoff {
        return false;
    }
    let Some(job) = job else { return true };
    if job.stop || job.status == "dead" || a.server_terminal() || a.client_status != "failed" {
        return true;
    }
    // A failed alloc of a job that reschedules: keep it until replaced or its window passed.
    let policy = job.group(&a.task_group).and_then(|g| g.reschedule_policy.clone());
    let Some(policy) = policy else { return true };
    if !a.next_allocation.is_empty() {
        return true;
    }
    if policy.unlimited() {
        return false;
    }
    if policy.attempts() == 0 {
        return true;
    }
    match a.reschedule_tracker.as_ref().and_then(|t| t.events.last()) {
        Some(last) => now - last.reschedule_time > policy.interval(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::MemState;
    use drover_types::{Allocation, Evaluation, Job, Node};

    #[test]
    fn collects_old_terminal_evals_and_stopped_jobs_only() {
        let now = 100 * HOUR;
        let mut s = MemState::new();
        let job = Job {
            id: "old".into(),
            namespace: "default".into(),
            status: "dead".into(),
            stop: true,
            ..Default::default()
        };
        s.upsert_job(job);
        let live = Job {
            id: "live".into(),
            namespace: "default".into(),
            status: "running".into(),
            ..Default::default()
        };
        s.upsert_job(live);
        s.upsert_eval(Evaluation {
            id: "e-old".into(),
            namespace: "default".into(),
            job_id: "old".into(),
            status: "complete".into(),
            modify_time: now - 2 * HOUR,
            ..Default::default()
        });
        s.upsert_eval(Evaluation {
            id: "e-new".into(),
            namespace: "default".into(),
            job_id: "live".into(),
            status: "complete".into(),
            modify_time: now - 60 * SECOND,
            ..Default::default()
        });
        s.upsert_eval(Evaluation {
            id: "e-pending".into(),
            namespace: "default".into(),
            job_id: "live".into(),
            status: "pending".into(),
            ..Default::default()
        });
        s.upsert_allocs(vec![Allocation {
            id: "a-old".into(),
            namespace: "default".into(),
            job_id: "old".into(),
            eval_id: "e-old".into(),
            client_status: "complete".into(),
            desired_status: "stop".into(),
            modify_time: now - 2 * HOUR,
            ..Default::default()
        }]);
        let d = gc(&s, "force-gc", now, &GcThresholds::default());
        assert_eq!(d.evals, vec!["e-old"]);
        assert_eq!(d.allocs, vec!["a-old"]);
        assert_eq!(d.jobs, vec![("default".to_string(), "old".to_string())]);
    }

    #[test]
    fn live_batch_job_keeps_finished_work_of_its_current_version() {
        let now = 100 * HOUR;
        let mut s = MemState::new();
        s.upsert_job(Job {
            id: "b".into(),
            namespace: "default".into(),
            job_type: "batch".into(),
            status: "running".into(),
            job_modify_index: 10,
            ..Default::default()
        });
        for (eval, alloc, create_index) in [("e-v0", "a-v0", 5), ("e-v1", "a-v1", 12)] {
            s.upsert_eval(Evaluation {
                id: eval.into(),
                namespace: "default".into(),
                job_id: "b".into(),
                eval_type: "batch".into(),
                status: "complete".into(),
                modify_time: now - 48 * HOUR,
                ..Default::default()
            });
            s.upsert_allocs(vec![Allocation {
                id: alloc.into(),
                namespace: "default".into(),
                job_id: "b".into(),
                eval_id: eval.into(),
                client_status: "complete".into(),
                create_index,
                modify_time: now - 48 * HOUR,
                ..Default::default()
            }]);
        }
        let d = gc(&s, "force-gc", now, &GcThresholds::default());
        // The alloc of the job's previous version goes; the finished alloc of the current
        // version stays, or the scheduler would run it again.
        assert_eq!(d.evals, vec!["e-v0"]);
        assert_eq!(d.allocs, vec!["a-v0"]);
        assert!(d.jobs.is_empty());
    }

    #[test]
    fn down_nodes_after_threshold() {
        let now = 100 * HOUR;
        let mut s = MemState::new();
        s.upsert_node(Node {
            id: "gone".into(),
            status: "down".into(),
            status_updated_at: (now - 25 * HOUR) / SECOND,
            ..Default::default()
        });
        s.upsert_node(Node {
            id: "recent".into(),
            status: "down".into(),
            status_updated_at: (now - HOUR) / SECOND,
            ..Default::default()
        });
        s.upsert_node(Node {
            id: "up".into(),
            status: "ready".into(),
            ..Default::default()
        });
        assert_eq!(
            gc(&s, "node-gc", now, &GcThresholds::default()).nodes,
            vec!["gone"]
        );
    }

    #[test]
    fn failed_allocs_wait_for_their_replacement() {
        let mut job = Job {
            id: "j".into(),
            job_type: "service".into(),
            ..Default::default()
        };
        job.task_groups.push(drover_types::TaskGroup {
            name: "g".into(),
            ..Default::default()
        });
        drover_types::canonicalize::canonicalize_job(&mut job);
        let a = Allocation {
            task_group: "g".into(),
            client_status: "failed".into(),
            desired_status: "run".into(),
            ..Default::default()
        };
        assert!(
            !alloc_collectable(&a, Some(&job), HOUR * 10, HOUR),
            "unlimited reschedule, no replacement yet"
        );
        let replaced = Allocation {
            next_allocation: "x".into(),
            ..a.clone()
        };
        assert!(alloc_collectable(&replaced, Some(&job), HOUR * 10, HOUR));
        let running = Allocation {
            client_status: "running".into(),
            desired_status: "stop".into(),
            ..a
        };
        assert!(!alloc_collectable(&running, Some(&job), HOUR * 10, HOUR));
    }
}
