//! The node reconciler for system and sysbatch jobs: one allocation of each group on every
//! eligible node (§9 of the scheduler digest). It chooses nothing about fit: the system
//! scheduler checks each [`NodePlacement`] on its node.
//!
//! ```text
//!  job (None = stopped) ─┐           ┌─────────── per node, per stopped allocation ──────────┐
//!  eligible nodes ───────┤           │ node down/gone, client never confirmed ─▶ lost         │
//!  not-ready nodes ──────┤           ├─────────── per node, per live allocation ─────────────┤
//!  tainted nodes ────────┼─▶ nodes ─▶│ job stopped / group removed / duplicate ─▶ stop        │
//!  existing allocs ──────┘  (eligible│ marked migrate ─▶ stop ("node is tainted")             │
//!                            ∪ used) │ unknown ─▶ lost when expired, else wait                │
//!                                    │ reconnected ─▶ in-place update (new client state),     │
//!                                    │   or update_fn when the job changed meanwhile          │
//!                                    │ node down/gone ─▶ lost · disconnected ─▶ unknown       │
//!                                    │ node not ready ─▶ stop if the job changed, else keep   │
//!                                    │ node no longer targeted ─▶ stop                        │
//!                                    │ job changed ─▶ update_fn: ignore | in place | destructive
//!                                    ├─────────── per node, per required name missing ───────┤
//!                                    │ sysbatch ran here already ─▶ keep (rerun only if changed)
//!                                    │ eligible node ─▶ place `<job>.<group>[0]`              │
//!                                    └────────────────────────────────────────────────────────┘
//! ```
//!
//! # Vocabulary
//! - **required name**: `<job>.<group>[0]` for every group with `count > 0`; a node needs one
//!   live allocation of each.
//! - **live**: neither client- nor server-terminal (`unknown` counts as live).
//! - **eligible / not ready / not targeted**: a node is eligible when ready in the job's
//!   datacenters and pool; not ready when in them but ineligible or draining; not targeted
//!   otherwise (moved out of the job's datacenters or pool).
//!
//! # Guarantees
//! - Pure and deterministic: nodes in ID order, groups in job order.
//! - At most one live allocation per node and required name is kept; extras are stopped.
//! - Nothing is placed on a tainted, not-ready or untargeted node; a migrating allocation is
//!   stopped and not replaced elsewhere (system allocations belong to their node).
//! - A sysbatch allocation that finished on a node is not run again there unless the job
//!   changed.
//! - On a node that is down or gone, every stop is a `lost` stop (client status `lost`): no
//!   client is left to confirm a plain stop, and nothing would revisit it.
//! - A reconnected allocation of an older job version is brought to the current one in the
//!   same evaluation (nothing else would trigger it later).
//!
//! # Caller's contract and limitations
//! - `max_parallel` and system canary percentages are the caller's: every destructive update
//!   is listed (in node ID order) and counted as `destructive_update`; the caller moves the
//!   ones it defers to `ignore`. `canary` marks those of a group whose update block asks for
//!   canaries (job version > 0); the system scheduler has no deployments (so no promotion)
//!   and treats them as ordinary destructive updates.
//! - Reconnect and disconnect updates (annotated `reconnect` / `disconnect`) are listed in
//!   `inplace_update`, so writing `inplace_update` persists them.
//! - The input has no ID source, so no follow-up evaluation is created for disconnect
//!   timeouts: `disconnect_timeouts` says when each one runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use drover_types::alloc::{AllocState, Allocation, alloc_name, client_status};
use drover_types::eval::DesiredUpdates;
use drover_types::job::{Job, TaskGroup};
use drover_types::node::Node;
use drover_types::time::Timestamp;

use crate::reconcile::{
    ALLOC_STATE_CLIENT_STATUS, NodeState, StopRequest, UpdateType, alloc_group, desc, disconnect_config,
    expired, marked_migrate, node_state, should_reconnect,
};

/// Everything the node reconciler looks at.
pub struct NodeReconcileInput<'a> {
    /// The job; `None` when purged. A job with `stop = true` is treated as stopped.
    pub job: Option<Arc<Job>>,
    /// The job's ID (allocation names).
    pub job_id: String,
    /// The job's namespace.
    pub namespace: String,
    /// Sysbatch: finished work is not run again.
    pub sysbatch: bool,
    /// Ready nodes in the job's datacenters and node pool.
    pub eligible_nodes: Vec<Arc<Node>>,
    /// Nodes in the job's datacenters and pool that are ineligible or draining.
    pub not_ready_nodes: BTreeSet<String>,
    /// Node ID → node (`None` = gone), tainted nodes only.
    pub tainted: BTreeMap<String, Option<Arc<Node>>>,
    /// Every allocation of the job, all versions.
    pub existing: Vec<Arc<Allocation>>,
    /// Unix nanoseconds.
    pub now: i64,
    /// The evaluation being processed (an `unknown` allocation whose follow-up is this
    /// evaluation has run out of time).
    pub eval_id: String,
    /// Decides in-place vs destructive for allocations of another job version (§7.4).
    pub update_fn: &'a mut dyn FnMut(&Allocation, &Job, &TaskGroup) -> UpdateType,
}

impl std::fmt::Debug for NodeReconcileInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeReconcileInput")
            .field("job_id", &self.job_id)
            .field("sysbatch", &self.sysbatch)
            .field("eligible_nodes", &self.eligible_nodes.len())
            .field("not_ready_nodes", &self.not_ready_nodes)
            .field("tainted", &self.tainted.keys().collect::<Vec<_>>())
            .field("existing", &self.existing.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// One allocation to place (or replace) on a given node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlacement {
    /// The node it must run on.
    pub node_id: String,
    /// `<job>.<group>[0]`.
    pub name: String,
    /// The group.
    pub task_group: String,
    /// The allocation it replaces (destructive updates: stop it first) or follows (a terminal
    /// allocation of the same name on the node).
    pub previous_alloc: Option<Arc<Allocation>>,
    /// The group asks for canaries (see the module docs).
    pub canary: bool,
}

/// What the node reconciler decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeReconcileResults {
    /// New allocations.
    pub place: Vec<NodePlacement>,
    /// Each: stop `previous_alloc` ("alloc is being updated due to job update") and place anew
    /// on the same node.
    pub destructive_update: Vec<NodePlacement>,
    /// In-place updates, plus reconnect/disconnect client-status updates.
    pub inplace_update: Vec<Allocation>,
    /// Allocations to stop.
    pub stop: Vec<StopRequest>,
    /// Allocations to stop with client status `lost`. Also holds allocations the server had
    /// already stopped but whose client never confirmed before its node went down or away:
    /// only their client status changes, and they are not counted in `desired_tg_updates`.
    pub lost: Vec<StopRequest>,
    /// Allocations left alone.
    pub ignore: usize,
    /// Per group counts (`stop` includes lost allocations; `migrate` counts migrate stops).
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    /// Allocation ID → when its `lost_after` runs out (allocations marked `unknown` now).
    pub disconnect_timeouts: BTreeMap<String, i64>,
}

/// Reconciles a system or sysbatch job (§9). See the module docs.
pub fn reconcile_nodes(input: NodeReconcileInput<'_>) -> NodeReconcileResults {
    let NodeReconcileInput {
        job,
        job_id,
        namespace: _,
        sysbatch,
        eligible_nodes,
        not_ready_nodes,
        tainted,
        existing,
        now,
        eval_id,
        update_fn,
    } = input;
    let job = job.filter(|j| !j.stop);
    let mut pass = Pass {
        job: job.as_deref(),
        sysbatch,
        eligible: eligible_nodes.iter().map(|n| n.id.as_str()).collect(),
        not_ready: &not_ready_nodes,
        tainted: &tainted,
        now,
        eval_id: &eval_id,
        update_fn,
        out: NodeReconcileResults::default(),
    };

    let mut required: Vec<(&TaskGroup, String)> = Vec::new();
    if let Some(job) = pass.job {
        for tg in job.task_groups.iter().filter(|g| g.count > 0) {
            if required.iter().all(|(g, _)| g.name != tg.name) {
                required.push((tg, alloc_name(&job_id, &tg.name, 0)));
                pass.out.desired_tg_updates.entry(tg.name.clone()).or_default();
            }
        }
    }

    let mut by_node: BTreeMap<&str, Vec<&Arc<Allocation>>> = BTreeMap::new();
    for a in &existing {
        by_node.entry(a.node_id.as_str()).or_default().push(a);
    }
    let mut nodes: BTreeSet<&str> = pass.eligible.clone();
    nodes.extend(by_node.keys().copied());

    for node_id in nodes {
        let mut allocs: Vec<&Arc<Allocation>> = by_node.get(node_id).cloned().unwrap_or_default();
        // Newest first, so that the newest of duplicated names is the one kept.
        allocs.sort_by(|x, y| {
            (&x.name, std::cmp::Reverse(x.create_index), &x.id).cmp(&(
                &y.name,
                std::cmp::Reverse(y.create_index),
                &y.id,
            ))
        });
        pass.node(node_id, &allocs, &required);
    }
    pass.out
}

struct Pass<'a, 'f> {
    job: Option<&'a Job>,
    sysbatch: bool,
    eligible: BTreeSet<&'a str>,
    not_ready: &'a BTreeSet<String>,
    tainted: &'a BTreeMap<String, Option<Arc<Node>>>,
    now: i64,
    eval_id: &'a str,
    update_fn: &'f mut dyn FnMut(&Allocation, &Job, &TaskGroup) -> UpdateType,
    out: NodeReconcileResults,
}

/// The allocation was placed from another version of the job.
fn changed(a: &Allocation, job: &Job) -> bool {
    a.job.as_ref().is_none_or(|j| {
        j.job_modify_index != job.job_modify_index
            || j.version != job.version
            || j.create_index != job.create_index
    })
}

/// The node is down or no longer exists: its client will not report again.
fn gone(state: NodeState) -> bool {
    matches!(state, NodeState::Down | NodeState::Missing)
}

fn wants_canary(tg: &TaskGroup, job: &Job) -> bool {
    job.version > 0
        && tg
            .update
            .as_ref()
            .is_some_and(|u| !u.is_empty() && u.canary() > 0)
}

fn stop_request(a: &Arc<Allocation>, client: Option<&str>, description: &str) -> StopRequest {
    StopRequest {
        alloc: Arc::clone(a),
        client_status: client.map(str::to_string),
        description: description.to_string(),
        followup_eval_id: None,
    }
}

fn with_client_state(a: &Allocation, value: &str, now: i64) -> Allocation {
    let mut updated = a.clone();
    updated.alloc_states.push(AllocState {
        field: ALLOC_STATE_CLIENT_STATUS,
        value: value.to_string(),
        time: Some(Timestamp(now)),
    });
    updated
}

impl Pass<'_, '_> {
    fn du(&mut self, group: &str) -> &mut DesiredUpdates {
        self.out.desired_tg_updates.entry(group.to_string()).or_default()
    }

    fn stop(&mut self, a: &Arc<Allocation>, description: &str) {
        self.out.stop.push(stop_request(a, None, description));
        self.du(&a.task_group).stop += 1;
    }

    fn lost(&mut self, a: &Arc<Allocation>) {
        self.out
            .lost
            .push(stop_request(a, Some(client_status::LOST), desc::ALLOC_LOST));
        self.du(&a.task_group).stop += 1;
    }

    /// Stops an allocation; on a node that is down or gone no client will confirm it, so it
    /// is lost instead.
    fn stop_here(&mut self, a: &Arc<Allocation>, state: NodeState, description: &str) {
        if gone(state) {
            self.lost(a);
        } else {
            self.stop(a, description);
        }
    }

    fn ignore(&mut self, group: &str) {
        self.out.ignore += 1;
        self.du(group).ignore += 1;
    }

    fn node(&mut self, node_id: &str, allocs: &[&Arc<Allocation>], required: &[(&TaskGroup, String)]) {
        let state = node_state(self.tainted, node_id);
        let eligible = self.eligible.contains(node_id);
        let mut seen: BTreeSet<&str> = BTreeSet::new();

        // Stopped by the server but never confirmed by a client that is now gone: nobody will
        // report them again, so they are recorded as lost (Nomad's
        // `updateNonTerminalAllocsToLost`; a bookkeeping fix, not counted in the annotations).
        if gone(state) {
            for &a in allocs.iter().filter(|a| {
                a.server_terminal()
                    && matches!(
                        a.client_status.as_str(),
                        client_status::PENDING | client_status::RUNNING
                    )
            }) {
                self.out
                    .lost
                    .push(stop_request(a, Some(client_status::LOST), desc::ALLOC_LOST));
            }
        }

        for &a in allocs.iter().filter(|a| !a.terminal()) {
            let Some(job) = self.job else {
                let lost = match state {
                    NodeState::Missing | NodeState::Down => true,
                    NodeState::Disconnected => disconnect_config(alloc_group(a, None)).lost_after.is_none(),
                    NodeState::Untainted | NodeState::OtherTainted => false,
                };
                if lost {
                    self.lost(a);
                } else {
                    self.stop(a, desc::ALLOC_NOT_NEEDED);
                }
                continue;
            };
            let Some((tg, _)) = required
                .iter()
                .find(|(g, name)| g.name == a.task_group && *name == a.name)
            else {
                self.stop_here(a, state, desc::ALLOC_NOT_NEEDED);
                continue;
            };
            if !seen.insert(a.name.as_str()) {
                self.stop_here(a, state, desc::ALLOC_NOT_NEEDED);
                continue;
            }
            if marked_migrate(a) && gone(state) {
                self.lost(a);
                continue;
            }
            if marked_migrate(a) {
                self.out
                    .stop
                    .push(stop_request(a, None, desc::ALLOC_NODE_TAINTED));
                self.du(&a.task_group).migrate += 1;
                continue;
            }
            let cfg = disconnect_config(alloc_group(a, Some(tg)));
            if a.client_status == client_status::UNKNOWN {
                let timed_out = !self.eval_id.is_empty() && a.followup_eval_id == self.eval_id;
                if expired(a, &cfg, self.now) || timed_out {
                    self.lost(a);
                } else {
                    self.ignore(&a.task_group);
                }
                continue;
            }
            if state == NodeState::Untainted && should_reconnect(a) {
                let reconnected = Arc::new(with_client_state(a, &a.client_status, self.now));
                if eligible && changed(a, job) {
                    // Back, but the job moved on while it was away: update it now (an in-place
                    // update carries the new client state), or nothing would ever revisit it.
                    self.reconnect_update(node_id, &reconnected, job, tg);
                    continue;
                }
                if eligible || (self.not_ready.contains(node_id) && !changed(a, job)) {
                    self.out.inplace_update.push((*reconnected).clone());
                    self.du(&a.task_group).reconnect += 1;
                    continue;
                }
                // Its node is no longer for this job: the rules below stop it.
            }
            match state {
                NodeState::Disconnected => {
                    match cfg
                        .lost_after
                        .filter(|_| a.client_status != client_status::PENDING)
                    {
                        Some(window) => {
                            let mut updated = with_client_state(a, client_status::UNKNOWN, self.now);
                            updated.client_status = client_status::UNKNOWN.to_string();
                            updated.client_description = desc::ALLOC_UNKNOWN.to_string();
                            self.out.inplace_update.push(updated);
                            self.out
                                .disconnect_timeouts
                                .insert(a.id.clone(), self.now.saturating_add(window));
                            self.du(&a.task_group).disconnect += 1;
                        }
                        None => self.lost(a),
                    }
                    continue;
                }
                NodeState::Down | NodeState::Missing => {
                    self.lost(a);
                    continue;
                }
                NodeState::OtherTainted => {
                    self.ignore(&a.task_group);
                    continue;
                }
                NodeState::Untainted => {}
            }
            if !eligible {
                if !self.not_ready.contains(node_id) || changed(a, job) {
                    self.stop(a, desc::ALLOC_NOT_NEEDED);
                } else {
                    self.ignore(&a.task_group);
                }
                continue;
            }
            if !changed(a, job) {
                self.ignore(&a.task_group);
                continue;
            }
            self.update(node_id, a, job, tg);
        }

        let Some(job) = self.job else { return };
        for (tg, name) in required {
            if seen.contains(name.as_str()) {
                continue;
            }
            let finished = allocs
                .iter()
                .filter(|a| a.terminal() && a.task_group == tg.name && a.name == *name)
                .max_by_key(|a| (a.create_index, a.modify_index, a.id.as_str()))
                .copied();
            if self.sysbatch
                && let Some(done) = finished
            {
                if eligible && changed(done, job) {
                    self.update(node_id, done, job, tg);
                } else {
                    self.ignore(&tg.name);
                }
                continue;
            }
            if !eligible || state != NodeState::Untainted {
                continue;
            }
            self.out.place.push(NodePlacement {
                node_id: node_id.to_string(),
                name: name.clone(),
                task_group: tg.name.clone(),
                previous_alloc: finished.cloned(),
                canary: false,
            });
            self.du(&tg.name).place += 1;
        }
    }

    /// A reconnected allocation (its new client state recorded in `a`) of an older job
    /// version: in place, destructive, or (nothing to change) just the reconnect update.
    fn reconnect_update(&mut self, node_id: &str, a: &Arc<Allocation>, job: &Job, tg: &TaskGroup) {
        match (self.update_fn)(a, job, tg) {
            UpdateType::Ignore => {
                self.out.inplace_update.push((**a).clone());
                self.du(&tg.name).reconnect += 1;
            }
            kind => self.apply_update(node_id, a, job, tg, kind),
        }
    }

    /// Asks `update_fn` how to bring `a` to the job's version. A finished allocation is only
    /// ever replaced (an in-place update of finished work does nothing).
    fn update(&mut self, node_id: &str, a: &Arc<Allocation>, job: &Job, tg: &TaskGroup) {
        let kind = (self.update_fn)(a, job, tg);
        self.apply_update(node_id, a, job, tg, kind);
    }

    fn apply_update(
        &mut self,
        node_id: &str,
        a: &Arc<Allocation>,
        job: &Job,
        tg: &TaskGroup,
        kind: UpdateType,
    ) {
        match kind {
            UpdateType::InPlace(updated) if !a.terminal() => {
                self.out.inplace_update.push(updated);
                self.du(&tg.name).in_place_update += 1;
            }
            UpdateType::Ignore | UpdateType::InPlace(_) => self.ignore(&tg.name),
            UpdateType::Destructive => {
                self.out.destructive_update.push(NodePlacement {
                    node_id: node_id.to_string(),
                    name: a.name.clone(),
                    task_group: tg.name.clone(),
                    previous_alloc: Some(Arc::clone(a)),
                    canary: wants_canary(tg, job),
                });
                self.du(&tg.name).destructive_update += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Node reconciler tests: a system (or sysbatch) job, a few nodes in various states, the
    //! exact placements, stops and annotations.

    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use drover_types::alloc::{Allocation, client_status, desired_status};
    use drover_types::job::Job;
    use drover_types::node::{Node, node_status};
    use drover_types::time::{MINUTE, SECOND, Timestamp};

    use super::{NodeReconcileInput, NodeReconcileResults, reconcile_nodes};
    use crate::reconcile::desc::*;
    use crate::reconcile::testkit::{
        A, GROUP, JOB, NOW, draining, group, name, next_version, ready, system_job, tainted, test_update,
        with_disconnect, with_status, with_update,
    };

    struct NRun {
        job: Option<Arc<Job>>,
        sysbatch: bool,
        eligible: Vec<Arc<Node>>,
        not_ready: BTreeSet<String>,
        tainted: BTreeMap<String, Option<Arc<Node>>>,
        allocs: Vec<Arc<Allocation>>,
        eval_id: String,
    }

    impl NRun {
        fn new(job: &Arc<Job>, eligible: &[&str]) -> NRun {
            NRun {
                sysbatch: job.job_type == "sysbatch",
                job: Some(Arc::clone(job)),
                eligible: eligible.iter().map(|n| ready(n)).collect(),
                not_ready: BTreeSet::new(),
                tainted: BTreeMap::new(),
                allocs: Vec::new(),
                eval_id: "eval-1".into(),
            }
        }
        fn allocs(mut self, allocs: Vec<Arc<Allocation>>) -> NRun {
            self.allocs = allocs;
            self
        }
        fn not_ready(mut self, ids: &[&str]) -> NRun {
            self.not_ready = ids.iter().map(|s| (*s).to_string()).collect();
            self
        }
        fn tainted(mut self, t: BTreeMap<String, Option<Arc<Node>>>) -> NRun {
            self.tainted = t;
            self
        }
        fn go(self) -> NodeReconcileResults {
            let mut update = test_update;
            reconcile_nodes(NodeReconcileInput {
                job: self.job,
                job_id: JOB.into(),
                namespace: "default".into(),
                sysbatch: self.sysbatch,
                eligible_nodes: self.eligible,
                not_ready_nodes: self.not_ready,
                tainted: self.tainted,
                existing: self.allocs,
                now: NOW,
                eval_id: self.eval_id,
                update_fn: &mut update,
            })
        }
    }

    /// An allocation of `job` on `node`, ID `a-<node>`.
    fn on(job: &Arc<Job>, node: &str) -> A {
        A::of(job, 0).id(&format!("a-{node}")).node(node)
    }

    fn placed_on(r: &NodeReconcileResults) -> Vec<(String, String)> {
        r.place
            .iter()
            .map(|p| (p.node_id.clone(), p.name.clone()))
            .collect()
    }

    fn stops(r: &NodeReconcileResults) -> Vec<(String, String, Option<String>)> {
        r.stop
            .iter()
            .chain(r.lost.iter())
            .map(|s| (s.alloc.id.clone(), s.description.clone(), s.client_status.clone()))
            .collect()
    }

    fn stop(id: &str, d: &str, client: Option<&str>) -> (String, String, Option<String>) {
        (id.to_string(), d.to_string(), client.map(str::to_string))
    }

    #[test]
    fn places_one_alloc_per_eligible_node() {
        let job = Arc::new(system_job(false));
        let r = NRun::new(&job, &["n1", "n2", "n3"]).go();
        let want: Vec<(String, String)> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| ((*n).to_string(), name(0)))
            .collect();
        assert_eq!(placed_on(&r), want);
        assert!(
            r.place
                .iter()
                .all(|p| p.task_group == GROUP && p.previous_alloc.is_none() && !p.canary)
        );
        assert_eq!(r.desired_tg_updates[GROUP].place, 3);
        assert!(r.stop.is_empty() && r.lost.is_empty() && r.destructive_update.is_empty());
    }

    #[test]
    fn existing_allocs_are_kept_and_only_new_nodes_get_one() {
        let job = Arc::new(system_job(false));
        let allocs = vec![on(&job, "n1").arc(), on(&job, "n2").arc()];
        let r = NRun::new(&job, &["n1", "n2", "n3"]).allocs(allocs).go();
        assert_eq!(placed_on(&r), vec![("n3".to_string(), name(0))]);
        assert_eq!(r.ignore, 2);
        assert_eq!(r.desired_tg_updates[GROUP].ignore, 2);
    }

    #[test]
    fn existing_alloc_on_a_node_that_is_not_eligible() {
        struct Case {
            name: &'static str,
            not_ready: bool,
            tainted: BTreeMap<String, Option<Arc<Node>>>,
            job_changed: bool,
            migrate: bool,
            want_stop: Option<(&'static str, Option<&'static str>)>,
            want_ignore: usize,
        }
        let cases = [
            Case {
                name: "no longer targeted",
                not_ready: false,
                tainted: BTreeMap::new(),
                job_changed: false,
                migrate: false,
                want_stop: Some((ALLOC_NOT_NEEDED, None)),
                want_ignore: 0,
            },
            Case {
                name: "ineligible, job unchanged",
                not_ready: true,
                tainted: BTreeMap::new(),
                job_changed: false,
                migrate: false,
                want_stop: None,
                want_ignore: 1,
            },
            Case {
                name: "ineligible, job changed",
                not_ready: true,
                tainted: BTreeMap::new(),
                job_changed: true,
                migrate: false,
                want_stop: Some((ALLOC_NOT_NEEDED, None)),
                want_ignore: 0,
            },
            Case {
                name: "draining, not marked",
                not_ready: true,
                tainted: tainted(&[draining("n2")], &[]),
                job_changed: false,
                migrate: false,
                want_stop: None,
                want_ignore: 1,
            },
            Case {
                name: "draining, marked migrate",
                not_ready: true,
                tainted: tainted(&[draining("n2")], &[]),
                job_changed: false,
                migrate: true,
                want_stop: Some((ALLOC_NODE_TAINTED, None)),
                want_ignore: 0,
            },
            Case {
                name: "node down",
                not_ready: false,
                tainted: tainted(&[with_status("n2", node_status::DOWN)], &[]),
                job_changed: false,
                migrate: false,
                want_stop: Some((ALLOC_LOST, Some(client_status::LOST))),
                want_ignore: 0,
            },
            Case {
                name: "node missing",
                not_ready: false,
                tainted: tainted(&[], &["n2"]),
                job_changed: false,
                migrate: false,
                want_stop: Some((ALLOC_LOST, Some(client_status::LOST))),
                want_ignore: 0,
            },
            Case {
                name: "node disconnected, no lost_after",
                not_ready: false,
                tainted: tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]),
                job_changed: false,
                migrate: false,
                want_stop: Some((ALLOC_LOST, Some(client_status::LOST))),
                want_ignore: 0,
            },
        ];
        for c in cases {
            let old = Arc::new(system_job(false));
            let job = if c.job_changed {
                Arc::new(next_version(&old, Some("v2")))
            } else {
                Arc::clone(&old)
            };
            let mut a = on(&old, "n2");
            if c.migrate {
                a = a.migrate();
            }
            let mut run = NRun::new(&job, &["n1"])
                .allocs(vec![on(&job, "n1").arc(), a.arc()])
                .tainted(c.tainted);
            if c.not_ready {
                run = run.not_ready(&["n2"]);
            }
            let r = run.go();
            let want: Vec<_> = c.want_stop.iter().map(|(d, s)| stop("a-n2", d, *s)).collect();
            assert_eq!(stops(&r), want, "{}", c.name);
            assert_eq!(
                r.ignore,
                1 + c.want_ignore,
                "{} (n1's alloc is ignored too)",
                c.name
            );
            assert!(
                r.place.is_empty() && r.destructive_update.is_empty(),
                "{}: nothing placed",
                c.name
            );
            if c.migrate {
                assert_eq!(r.desired_tg_updates[GROUP].migrate, 1, "{}", c.name);
            }
            assert_eq!(
                r.lost.len(),
                usize::from(c.want_stop.is_some_and(|s| s.1.is_some())),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn disconnected_node_with_lost_after_marks_unknown() {
        let job = Arc::new(with_disconnect(system_job(false), 5 * MINUTE, true, None));
        let r = NRun::new(&job, &[])
            .allocs(vec![on(&job, "n2").arc()])
            .tainted(tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]))
            .go();
        assert!(r.stop.is_empty() && r.lost.is_empty());
        assert_eq!(r.inplace_update.len(), 1);
        let u = &r.inplace_update[0];
        assert_eq!(
            (u.id.as_str(), u.client_status.as_str()),
            ("a-n2", client_status::UNKNOWN)
        );
        assert_eq!(
            u.alloc_states.last().map(|s| (s.value.as_str(), s.time)),
            Some((client_status::UNKNOWN, Some(Timestamp(NOW))))
        );
        assert_eq!(r.disconnect_timeouts["a-n2"], NOW + 5 * MINUTE);
        assert_eq!(r.desired_tg_updates[GROUP].disconnect, 1);
    }

    #[test]
    fn unknown_allocs_wait_until_their_window_runs_out() {
        let job = Arc::new(with_disconnect(system_job(false), 5 * MINUTE, true, None));
        let t = || tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]);
        let unknown = |since: i64| {
            on(&job, "n2")
                .client(client_status::UNKNOWN)
                .state(client_status::UNKNOWN, since)
        };

        let r = NRun::new(&job, &[])
            .allocs(vec![unknown(NOW - MINUTE).arc()])
            .tainted(t())
            .go();
        assert!(r.lost.is_empty() && r.inplace_update.is_empty());
        assert_eq!(r.ignore, 1);

        let r = NRun::new(&job, &[])
            .allocs(vec![unknown(NOW - 6 * MINUTE).arc()])
            .tainted(t())
            .go();
        assert_eq!(
            stops(&r),
            vec![stop("a-n2", ALLOC_LOST, Some(client_status::LOST))]
        );

        let r = NRun::new(&job, &[])
            .allocs(vec![unknown(NOW - MINUTE).followup("eval-1").arc()])
            .tainted(t())
            .go();
        assert_eq!(r.lost.len(), 1, "its timeout evaluation is this one");
    }

    #[test]
    fn reconnected_alloc_gets_its_client_state_recorded() {
        let job = Arc::new(with_disconnect(system_job(false), 5 * MINUTE, true, None));
        let a = on(&job, "n1").state(client_status::UNKNOWN, NOW - MINUTE).arc();
        let r = NRun::new(&job, &["n1"]).allocs(vec![a]).go();
        assert_eq!(r.inplace_update.len(), 1);
        let last = r.inplace_update[0]
            .alloc_states
            .last()
            .map(|s| (s.value.clone(), s.time));
        assert_eq!(
            last,
            Some((client_status::RUNNING.to_string(), Some(Timestamp(NOW))))
        );
        assert_eq!(r.desired_tg_updates[GROUP].reconnect, 1);
        assert!(r.place.is_empty() && r.stop.is_empty());
    }

    #[test]
    fn reconnected_alloc_of_an_older_version_is_updated_too() {
        let old = Arc::new(with_disconnect(system_job(false), 5 * MINUTE, true, None));
        let back = || on(&old, "n1").state(client_status::UNKNOWN, NOW - MINUTE).arc();

        // New tasks: replaced, and the stop carries the reconnect (it is the latest state).
        let job = Arc::new(next_version(&old, Some("v2")));
        let r = NRun::new(&job, &["n1"]).allocs(vec![back()]).go();
        assert!(r.inplace_update.is_empty(), "{r:?}");
        assert_eq!(r.destructive_update.len(), 1);
        let prev = r.destructive_update[0]
            .previous_alloc
            .as_ref()
            .map(|a| (a.id.clone(), a.alloc_states.last().map(|s| s.value.clone())));
        assert_eq!(
            prev,
            Some(("a-n1".to_string(), Some(client_status::RUNNING.to_string())))
        );
        assert_eq!(r.desired_tg_updates[GROUP].destructive_update, 1);
        assert_eq!(r.desired_tg_updates[GROUP].reconnect, 0);

        // Same tasks: one in-place update that also records the reconnect.
        let job = Arc::new(next_version(&old, None));
        let r = NRun::new(&job, &["n1"]).allocs(vec![back()]).go();
        assert_eq!(r.inplace_update.len(), 1);
        let u = &r.inplace_update[0];
        assert_eq!(u.job.as_ref().map(|j| j.version), Some(1));
        assert_eq!(
            u.alloc_states.last().map(|s| (s.value.as_str(), s.time)),
            Some((client_status::RUNNING, Some(Timestamp(NOW))))
        );
        assert_eq!(r.desired_tg_updates[GROUP].in_place_update, 1);
    }

    #[test]
    fn stopped_alloc_still_running_on_a_gone_node_is_lost() {
        let job = Arc::new(system_job(false));
        let stopped = |node: &str| {
            on(&job, node)
                .client(client_status::RUNNING)
                .desired(desired_status::STOP)
                .arc()
        };
        let t = tainted(&[with_status("n2", node_status::DOWN)], &["n3"]);
        let allocs = vec![
            on(&job, "n1").arc(),
            stopped("n2"),
            stopped("n3"),
            // Already confirmed by its client: nothing to do.
            on(&job, "n2")
                .id("done-n2")
                .complete()
                .desired(desired_status::STOP)
                .arc(),
        ];
        let r = NRun::new(&job, &["n1"]).allocs(allocs).tainted(t).go();
        let mut got = stops(&r);
        got.sort();
        assert_eq!(
            got,
            vec![
                stop("a-n2", ALLOC_LOST, Some(client_status::LOST)),
                stop("a-n3", ALLOC_LOST, Some(client_status::LOST)),
            ]
        );
        assert_eq!(r.desired_tg_updates[GROUP].stop, 0, "bookkeeping, not a decision");
        assert!(r.place.is_empty());

        // A duplicate (or removed group) on a down node is lost at once, not stopped and
        // then marked lost by the next evaluation.
        let dup = vec![
            on(&job, "n2").created(20).arc(),
            on(&job, "n2").id("dup").created(10).arc(),
        ];
        let t = tainted(&[with_status("n2", node_status::DOWN)], &[]);
        let r = NRun::new(&job, &[]).allocs(dup).tainted(t).go();
        assert_eq!(r.stop.len(), 0);
        assert_eq!(r.lost.len(), 2);
    }

    #[test]
    fn sysbatch_finished_work_is_not_run_again() {
        let job = Arc::new(system_job(true));
        let allocs = vec![
            on(&job, "n1").complete().arc(),
            on(&job, "n2").failed_at(NOW - SECOND).arc(),
            on(&job, "n3").complete().desired(desired_status::STOP).arc(),
        ];
        let r = NRun::new(&job, &["n1", "n2", "n3", "n4"]).allocs(allocs).go();
        assert_eq!(placed_on(&r), vec![("n4".to_string(), name(0))]);
        assert_eq!(r.ignore, 3);
        assert!(r.stop.is_empty() && r.destructive_update.is_empty());
    }

    #[test]
    fn sysbatch_reruns_finished_work_when_the_job_changed() {
        let old = Arc::new(system_job(true));
        let job = Arc::new(next_version(&old, Some("v2")));
        let r = NRun::new(&job, &["n1"])
            .allocs(vec![on(&old, "n1").complete().arc()])
            .go();
        assert_eq!(r.destructive_update.len(), 1);
        let p = &r.destructive_update[0];
        assert_eq!((p.node_id.as_str(), p.name.as_str()), ("n1", name(0).as_str()));
        assert_eq!(p.previous_alloc.as_ref().map(|a| a.id.as_str()), Some("a-n1"));
        assert!(r.place.is_empty());

        // A change that needs no new run (in place) leaves finished work alone.
        let same_tasks = Arc::new(next_version(&old, None));
        let r = NRun::new(&same_tasks, &["n1"])
            .allocs(vec![on(&old, "n1").complete().arc()])
            .go();
        assert!(r.destructive_update.is_empty() && r.inplace_update.is_empty() && r.place.is_empty());
        assert_eq!(r.ignore, 1);
    }

    #[test]
    fn failed_system_alloc_is_replaced_on_its_node() {
        let job = Arc::new(system_job(false));
        let r = NRun::new(&job, &["n1"])
            .allocs(vec![on(&job, "n1").failed_at(NOW - SECOND).arc()])
            .go();
        assert_eq!(placed_on(&r), vec![("n1".to_string(), name(0))]);
        assert_eq!(
            r.place[0].previous_alloc.as_ref().map(|a| a.id.as_str()),
            Some("a-n1")
        );
    }

    #[test]
    fn job_update_is_destructive_on_every_node() {
        for canary in [0, 1] {
            let old = Arc::new(with_update(system_job(false), 1, canary));
            let job = Arc::new(next_version(&old, Some("v2")));
            let allocs = vec![on(&old, "n1").arc(), on(&old, "n2").arc()];
            let r = NRun::new(&job, &["n1", "n2"]).allocs(allocs).go();
            let got: Vec<(String, Option<String>, bool)> = r
                .destructive_update
                .iter()
                .map(|p| {
                    (
                        p.node_id.clone(),
                        p.previous_alloc.as_ref().map(|a| a.id.clone()),
                        p.canary,
                    )
                })
                .collect();
            let want = vec![
                ("n1".to_string(), Some("a-n1".to_string()), canary > 0),
                ("n2".to_string(), Some("a-n2".to_string()), canary > 0),
            ];
            assert_eq!(got, want, "canary {canary}");
            assert_eq!(r.desired_tg_updates[GROUP].destructive_update, 2);
            assert!(r.place.is_empty() && r.stop.is_empty());
        }
    }

    #[test]
    fn job_update_in_place() {
        let old = Arc::new(system_job(false));
        let job = Arc::new(next_version(&old, None));
        let r = NRun::new(&job, &["n1"]).allocs(vec![on(&old, "n1").arc()]).go();
        assert_eq!(r.inplace_update.len(), 1);
        assert_eq!(r.inplace_update[0].job.as_ref().map(|j| j.version), Some(1));
        assert_eq!(r.desired_tg_updates[GROUP].in_place_update, 1);
    }

    #[test]
    fn removed_groups_duplicates_and_zero_counts_are_stopped() {
        let mut j = system_job(false);
        j.task_groups.push(group("zero", 0));
        let mut with_old = j.clone();
        with_old.task_groups.push(group("old", 1));
        let old = Arc::new(with_old);
        let job = Arc::new(j);
        let allocs = vec![
            on(&job, "n1").created(50).arc(),
            on(&job, "n1").id("dup").created(40).arc(),
            A::new(&old, "old", 0).id("old-n1").node("n1").arc(),
            A::new(&old, "zero", 0).id("zero-n1").node("n1").arc(),
        ];
        let r = NRun::new(&job, &["n1"]).allocs(allocs).go();
        let mut got = stops(&r);
        got.sort();
        assert_eq!(
            got,
            vec![
                stop("dup", ALLOC_NOT_NEEDED, None),
                stop("old-n1", ALLOC_NOT_NEEDED, None),
                stop("zero-n1", ALLOC_NOT_NEEDED, None)
            ]
        );
        assert!(r.place.is_empty());
        assert_eq!(r.desired_tg_updates["old"].stop, 1);
    }

    #[test]
    fn stopped_or_purged_job_stops_everything() {
        let mut j = system_job(false);
        j.stop = true;
        let job = Arc::new(j);
        let allocs = vec![
            on(&job, "n1").arc(),
            on(&job, "n2").arc(),
            on(&job, "n3").complete().arc(),
        ];
        let t = || tainted(&[with_status("n2", node_status::DOWN)], &[]);
        let r = NRun::new(&job, &["n1", "n3"])
            .allocs(allocs.clone())
            .tainted(t())
            .go();
        assert_eq!(
            stops(&r),
            vec![
                stop("a-n1", ALLOC_NOT_NEEDED, None),
                stop("a-n2", ALLOC_LOST, Some(client_status::LOST))
            ]
        );
        assert!(r.place.is_empty());

        let mut purged = NRun::new(&job, &["n1", "n3"]).allocs(allocs).tainted(t());
        purged.job = None;
        assert_eq!(stops(&purged.go()).len(), 2);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// (node 0..4, complete?, created)
        type Spec = (u8, bool, u64);

        fn build(job: &Arc<Job>, specs: &[Spec]) -> Vec<Arc<Allocation>> {
            specs
                .iter()
                .enumerate()
                .map(|(i, &(node, done, created))| {
                    let mut a = on(job, &format!("n{node}")).id(&format!("a{i}")).created(created);
                    if done {
                        a = a.complete();
                    }
                    a.arc()
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn converges_to_one_live_alloc_per_eligible_node(
                sysbatch in any::<bool>(),
                specs in prop::collection::vec((0u8..4, any::<bool>(), 0u64..5), 0..10),
            ) {
                let job = Arc::new(system_job(sysbatch));
                // n0..n2 eligible, n3 down.
                let eligible = ["n0", "n1", "n2"];
                let t = || tainted(&[with_status("n3", node_status::DOWN)], &[]);
                let allocs = build(&job, &specs);
                let r = NRun::new(&job, &eligible).allocs(allocs.clone()).tainted(t()).go();

                let mut after: Vec<Allocation> = allocs.iter().map(|a| (**a).clone()).collect();
                for s in r.stop.iter().chain(r.lost.iter()) {
                    let a = after.iter_mut().find(|a| a.id == s.alloc.id);
                    prop_assert!(a.is_some());
                    if let Some(a) = a {
                        prop_assert!(!a.terminal(), "only live allocations are stopped");
                        a.desired_status = desired_status::STOP.into();
                        if let Some(cs) = &s.client_status {
                            a.client_status = cs.clone();
                        }
                    }
                }
                for (i, p) in r.place.iter().enumerate() {
                    after.push(on(&job, &p.node_id).id(&format!("new{i}")).created(100).0);
                }
                for n in eligible {
                    let live = after.iter().filter(|a| a.node_id == n && !a.terminal()).count();
                    let done = after.iter().any(|a| a.node_id == n && a.client_status == client_status::COMPLETE);
                    if sysbatch && done {
                        prop_assert!(live <= 1, "node {}", n);
                    } else {
                        prop_assert_eq!(live, 1, "node {}", n);
                    }
                }
                prop_assert_eq!(after.iter().filter(|a| a.node_id == "n3" && !a.terminal()).count(), 0);

                let again = NRun::new(&job, &eligible).allocs(after.into_iter().map(Arc::new).collect()).tainted(t()).go();
                prop_assert!(again.place.is_empty() && again.stop.is_empty() && again.lost.is_empty(), "{:?}", again);
            }
        }
    }
}
