//! The allocation reconciler for service and batch jobs: compares what a job wants with the
//! allocations it has, and says what to stop, keep, update and place (§7.2 of the scheduler
//! digest). It chooses no nodes: the scheduler that calls it does that for each
//! [`PlacementRequest`].
//!
//! ```text
//!  job (None = stopped) ─┐             ┌──────────── per task group ───────────────────────────┐
//!  existing allocs ──────┤  deployment │ drop stopped ─▶ classify by node ─┬─ untainted ─▶ reschedule
//!  tainted nodes ────────┼─▶ cancel? ─▶│ (batch keeps    (buckets.rs)      ├─ migrate     filter
//!  latest deployment ────┤             │  finished work)                   ├─ lost        ├ untainted
//!  now, eval id ─────────┘             │                                   ├─ disconnecting├ now
//!                                      │                                   ├─ reconnecting └ later
//!                                      │                                   └─ ignore
//!                                      │ reconnect/disconnect ─▶ stop lost and excess ─▶ update_fn
//!                                      │ ─▶ canaries ─▶ budget ─▶ place ─▶ destructive (budgeted)
//!                                      │ ─▶ migrations ─▶ deployment ─▶ follow-up evals ─▶ done?
//!                                      └───────────────────────────────────────────────────────┘
//!                                                           │
//!  ReconcileResults: place · destructive_update · inplace_update · stop · attribute, disconnect
//!  and reconnect updates · new deployment + status updates · follow-up evals · annotations
//! ```
//!
//! # Vocabulary
//! - **untainted**: on a usable node and still wanted where it is; counts toward `count`.
//! - **migrate**: marked `DesiredTransition.Migrate` by the drainer: stop it ("alloc is being
//!   migrated") and place a replacement with the same name.
//! - **lost**: its node is down or gone, or disconnected with no `disconnect.lost_after`: stop it
//!   with client status `lost` and place a replacement (`lost: true`) if the count needs one.
//! - **disconnecting**: its node just disconnected and the group tolerates that: it becomes
//!   `unknown`, a `max-disconnect-timeout` follow-up eval is due at `now + lost_after`, and it is
//!   replaced meanwhile if `disconnect.replace` (default) and the reschedule policy allow.
//! - **reconnecting**: it was `unknown` and its client is back: keep it or its replacement
//!   (`disconnect.reconcile`), stop the other.
//! - **ignore**: nothing to do (already stopped, superseded, completed service work).
//! - **reschedule now / later**: a failed allocation whose replacement is due now (within 1 s,
//!   or this is its follow-up eval) or later (a follow-up eval is created for that time, batched
//!   in 5 s windows, and the allocation records its ID as `FollowupEvalID`).
//! - **canary**: an allocation of the new version placed next to the old ones while the
//!   deployment waits for promotion; destructive updates wait for it.
//!
//! # Guarantees
//! - Pure and deterministic: no clock, no randomness; new IDs come from `id_gen`. The same input
//!   gives the same output, in a stable order (groups in job order, allocations by name index).
//! - Never panics, whatever the input (malformed names, missing jobs on allocations, …).
//! - Each allocation appears at most once across `stop`, `destructive_update` and
//!   `inplace_update`; stopped allocations are never counted as running.
//! - Never more non-canary placements for a group than its `count`.
//! - A `place` request never implies a stop: the stops it goes with (migration, reschedule,
//!   lost) are listed in `stop`; a `destructive_update` request does imply stopping its
//!   `previous_alloc` ("alloc is being updated due to job update").
//!
//! # Caller's contract
//! - `existing` holds every allocation of the job, all versions, terminal ones included.
//! - `tainted` comes from [`tainted_nodes`].
//! - `update_fn` implements §7.4; it is only called for allocations of another job version.
//! - A stop with description [`desc::ALLOC_RESCHEDULED`] pairs with the placement whose
//!   `previous_alloc` is that allocation; drop the stop if that placement fails.
//! - Follow-up evaluations need `PreviousEval` set to the current evaluation.
//!
//! # Limitations (simplified relative to Nomad)
//! - Disconnecting allocations that may be replaced are replaced right away (the reschedule
//!   policy decides *whether*, not *when*).
//! - Reconnect choices compare the top normalized score, start times and job versions only.
//! - Multi-region deployments (`blocked`, `unblocking`) are not driven from here.
//! - `alloc stop -reschedule` on batch allocations is treated as a plain migration.

mod buckets;
mod names;
mod reschedule;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use drover_types::alloc::{AllocState, Allocation, client_status, desired_status};
use drover_types::eval::{
    Deployment, DeploymentState, DeploymentStatusUpdate, DesiredUpdates, Evaluation, deployment_status,
    eval_status,
};
use drover_types::job::{Job, TaskGroup, UpdateStrategy, job_type};
use drover_types::node::{Node, node_status};
use drover_types::time::{Nanos, SECOND, Timestamp};

pub(crate) use buckets::{
    ALLOC_STATE_CLIENT_STATUS, NodeState, alloc_group, disconnect_config, expired, marked_migrate,
    node_state, should_reconnect,
};
use buckets::{Bucket, classify, is_canary, marked_reschedule, migrate_disable_placement};
use names::NameIndex;
use reschedule::{Eligibility, Filter, eligibility, filter, reschedule_time_from};
pub use reschedule::{RESCHEDULE_WINDOW, next_delay, next_reschedule_time};

/// Follow-up evaluations due within this window of the first one share it.
pub const FOLLOWUP_WINDOW: Nanos = 5 * SECOND;

/// The default `kill_timeout` floor used when waiting for a disconnected client to stop.
const MIN_KILL_TIMEOUT: Nanos = 5 * SECOND;

/// Stop descriptions (`DesiredDescription`) the reconcilers write.
pub mod desc {
    /// Scaled down, group removed or job stopped.
    pub const ALLOC_NOT_NEEDED: &str = "alloc not needed due to job update";
    /// Its node is down or gone.
    pub const ALLOC_LOST: &str = "alloc is lost since its node is down";
    /// The drainer asked for it to move.
    pub const ALLOC_MIGRATING: &str = "alloc is being migrated";
    /// Replaced by a destructive update.
    pub const ALLOC_UPDATING: &str = "alloc is being updated due to job update";
    /// Replaced after failing.
    pub const ALLOC_RESCHEDULED: &str = "alloc was rescheduled because it failed";
    /// Lost the reconnect decision to its original or replacement.
    pub const ALLOC_RECONNECTED: &str = "alloc not needed due to disconnected client reconnect";
    /// A system allocation on a node that is leaving.
    pub const ALLOC_NODE_TAINTED: &str = "alloc not needed as node is tainted";
    /// `ClientDescription` of an allocation whose node disconnected.
    pub const ALLOC_UNKNOWN: &str = "alloc is unknown since its node is disconnected";
}

/// `TriggeredBy` of the follow-up evaluations the reconciler asks for.
pub mod trigger {
    /// A failed allocation's delayed reschedule.
    pub const ALLOC_RESCHEDULE: &str = "alloc-reschedule";
    /// `disconnect.lost_after` ran out for an `unknown` allocation.
    pub const MAX_DISCONNECT_TIMEOUT: &str = "max-disconnect-timeout";
    /// Lost allocations are replaced once their client has surely stopped them.
    pub const RETRY_FAILED_ALLOC: &str = "alloc-failure";
}

/// Deployment statuses beyond the five `drover_types` names (multi-region life cycle).
mod more_status {
    pub const INITIALIZING: &str = "initializing";
    pub const PENDING: &str = "pending";
    pub const BLOCKED: &str = "blocked";
    pub const UNBLOCKING: &str = "unblocking";
}

/// How an allocation of an older job version is brought up to date (the caller's §7.4).
#[derive(Debug, Clone, PartialEq)]
// One short-lived value per call: boxing the allocation would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum UpdateType {
    /// Nothing to change.
    Ignore,
    /// Update in place; the allocation to write (new job, resources carried over).
    InPlace(Allocation),
    /// Stop it and place a new one with the same name.
    Destructive,
}

/// Everything the reconciler looks at.
pub struct ReconcileInput<'a> {
    /// The job; `None` when purged. A job with `stop = true` is treated as stopped.
    pub job: Option<Arc<Job>>,
    /// The job's ID (used for names when the job is gone).
    pub job_id: String,
    /// The job's namespace.
    pub namespace: String,
    /// Batch job (completed work counts and is never replaced; no deployments).
    pub batch: bool,
    /// The evaluation being processed (follow-up evals point back at it; allocations whose
    /// `FollowupEvalID` is this ID are due now).
    pub eval_id: String,
    /// Its priority (copied to follow-up evals and new deployments).
    pub eval_priority: i64,
    /// The latest deployment of the job (service jobs only; ignored for batch).
    pub deployment: Option<Deployment>,
    /// Every allocation of the job, all versions.
    pub existing: Vec<Arc<Allocation>>,
    /// Node ID → node (`None` = node gone), for tainted nodes only ([`tainted_nodes`]).
    pub tainted: BTreeMap<String, Option<Arc<Node>>>,
    /// Unix nanoseconds.
    pub now: i64,
    /// Decides in-place vs destructive for allocations of another job version (§7.4).
    pub update_fn: &'a mut dyn FnMut(&Allocation, &Job, &TaskGroup) -> UpdateType,
    /// New IDs for follow-up evaluations and deployments.
    pub id_gen: &'a mut dyn FnMut() -> String,
}

impl std::fmt::Debug for ReconcileInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileInput")
            .field("job_id", &self.job_id)
            .field("namespace", &self.namespace)
            .field("batch", &self.batch)
            .field("eval_id", &self.eval_id)
            .field("existing", &self.existing.len())
            .field("tainted", &self.tainted.keys().collect::<Vec<_>>())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// One allocation to place; the scheduler picks the node.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementRequest {
    /// `<job>.<group>[<index>]`.
    pub name: String,
    /// The group to place.
    pub task_group: String,
    /// What it replaces: a rescheduled, lost, migrating or destructively updated allocation.
    pub previous_alloc: Option<Arc<Allocation>>,
    /// Replaces a failed allocation (carry its reschedule tracker; avoid its node).
    pub reschedule: bool,
    /// Replaces a lost allocation.
    pub lost: bool,
    /// A canary of the deployment.
    pub canary: bool,
    /// Placed while canarying but not a canary: use the latest stable job version.
    pub downgrade_non_canary: bool,
    /// The job version the replaced allocation ran (0 for fresh placements).
    pub min_job_version: u64,
}

/// One allocation to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct StopRequest {
    /// The allocation.
    pub alloc: Arc<Allocation>,
    /// New client status, e.g. `Some("lost")`.
    pub client_status: Option<String>,
    /// `DesiredDescription` (one of [`desc`]).
    pub description: String,
    /// Follow-up evaluation that will replace it (lost allocations with `stop_on_client_after`).
    pub followup_eval_id: Option<String>,
}

/// What the reconciler decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileResults {
    /// A new deployment to create.
    pub deployment: Option<Deployment>,
    /// Status changes of the existing deployment (cancelled, successful).
    pub deployment_updates: Vec<DeploymentStatusUpdate>,
    /// Allocations to place (canaries first within a group).
    pub place: Vec<PlacementRequest>,
    /// Each: stop `previous_alloc` and place the same name with the new job.
    pub destructive_update: Vec<PlacementRequest>,
    /// Allocations updated in place (as returned by `update_fn`).
    pub inplace_update: Vec<Allocation>,
    /// Allocations to stop.
    pub stop: Vec<StopRequest>,
    /// Allocation ID → updated copy (e.g. `FollowupEvalID` of reschedule-later allocations).
    pub attribute_updates: BTreeMap<String, Allocation>,
    /// Allocation ID → copy marked `unknown` (node disconnected).
    pub disconnect_updates: BTreeMap<String, Allocation>,
    /// Allocation ID → copy with a new client-status entry (client reconnected).
    pub reconnect_updates: BTreeMap<String, Allocation>,
    /// Per group counts for plan annotations. `place` counts non-canary placements
    /// (reschedules and lost replacements included, migrations not); `stop` counts stops
    /// other than migrations; `reschedule_now` / `reschedule_later` count allocations.
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
    /// Group → follow-up evaluations to create (delayed reschedules, disconnect timeouts).
    pub desired_followup_evals: BTreeMap<String, Vec<Evaluation>>,
}

/// Reconciles one job (§7.2). See the module docs for the flow.
pub fn reconcile(input: ReconcileInput<'_>) -> ReconcileResults {
    let ReconcileInput {
        job,
        job_id,
        namespace,
        batch,
        eval_id,
        eval_priority,
        deployment,
        existing,
        tainted,
        now,
        update_fn,
        id_gen,
    } = input;
    let mut r = Reconciler {
        job: job.filter(|j| !j.stop),
        job_id,
        namespace,
        batch,
        eval_id,
        eval_priority,
        tainted,
        now,
        update_fn,
        id_gen,
        current: None,
        old: None,
        paused: false,
        failed: false,
        results: ReconcileResults::default(),
    };
    r.split_deployment(if batch { None } else { deployment });

    let mut by_group: BTreeMap<String, Vec<Arc<Allocation>>> = BTreeMap::new();
    for a in existing {
        by_group.entry(a.task_group.clone()).or_default().push(a);
    }

    let Some(job) = r.job.clone() else {
        for (group, allocs) in &by_group {
            let mut du = DesiredUpdates::default();
            r.stop_all(allocs, None, &mut du);
            r.results.desired_tg_updates.insert(group.clone(), du);
        }
        return r.results;
    };

    let mut groups: Vec<String> = Vec::new();
    for tg in &job.task_groups {
        if !groups.contains(&tg.name) {
            groups.push(tg.name.clone());
        }
    }
    groups.extend(by_group.keys().filter(|g| job.group(g).is_none()).cloned());

    let mut complete = true;
    for group in groups {
        let allocs = by_group.remove(&group).unwrap_or_default();
        complete &= r.compute_group(&job, &group, allocs);
    }
    r.finish_deployment(complete);
    r.results
}

/// The tainted nodes among those a set of allocations runs on (§7.3): missing (`None`), down,
/// disconnected or draining.
pub fn tainted_nodes(
    allocs: &[Arc<Allocation>],
    lookup: &dyn Fn(&str) -> Option<Arc<Node>>,
) -> BTreeMap<String, Option<Arc<Node>>> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for a in allocs {
        if a.node_id.is_empty() || !seen.insert(a.node_id.as_str()) {
            continue;
        }
        match lookup(&a.node_id) {
            None => {
                out.insert(a.node_id.clone(), None);
            }
            Some(n)
                if n.status == node_status::DOWN
                    || n.status == node_status::DISCONNECTED
                    || n.drain_strategy.is_some() =>
            {
                out.insert(a.node_id.clone(), Some(n));
            }
            Some(_) => {}
        }
    }
    out
}

type AllocSet = BTreeMap<String, Arc<Allocation>>;

/// The buckets of one group as the pass goes on.
#[derive(Default)]
struct Buckets {
    untainted: AllocSet,
    migrate: AllocSet,
    lost: AllocSet,
    disconnecting: AllocSet,
    reconnecting: AllocSet,
    reschedule_now: AllocSet,
    reschedule_later: Vec<(Arc<Allocation>, i64)>,
}

impl Buckets {
    /// Forgets an allocation that was just stopped, wherever it is.
    fn forget(&mut self, id: &str) {
        self.untainted.remove(id);
        self.migrate.remove(id);
        self.reschedule_now.remove(id);
        self.reschedule_later.retain(|(a, _)| a.id != id);
    }
}

struct Reconciler<'a> {
    /// The job, `None` when stopped or purged.
    job: Option<Arc<Job>>,
    job_id: String,
    namespace: String,
    batch: bool,
    eval_id: String,
    eval_priority: i64,
    tainted: BTreeMap<String, Option<Arc<Node>>>,
    now: i64,
    update_fn: &'a mut dyn FnMut(&Allocation, &Job, &TaskGroup) -> UpdateType,
    id_gen: &'a mut dyn FnMut() -> String,
    /// The deployment of this job version, still active (or failed).
    current: Option<Deployment>,
    /// A deployment of another version, or a finished one: its unpromoted canaries go.
    old: Option<Deployment>,
    /// The current deployment is paused (or waiting to start): no new work.
    paused: bool,
    /// The current deployment failed: only replacements of lost/failed allocations.
    failed: bool,
    results: ReconcileResults,
}

fn deployment_active(d: &Deployment) -> bool {
    matches!(
        d.status.as_str(),
        deployment_status::RUNNING
            | deployment_status::PAUSED
            | more_status::INITIALIZING
            | more_status::PENDING
            | more_status::BLOCKED
            | more_status::UNBLOCKING
    )
}

/// Same job version (and same job instance: a purged and re-registered job restarts versions).
fn same_version(a: &Allocation, job: &Job) -> bool {
    a.job
        .as_ref()
        .is_some_and(|j| j.version == job.version && j.create_index == job.create_index)
}

/// Placed from exactly this job (no update needed).
fn same_job(a: &Allocation, job: &Job) -> bool {
    a.job.as_ref().is_some_and(|j| {
        j.version == job.version
            && j.create_index == job.create_index
            && j.job_modify_index == job.job_modify_index
    })
}

/// Placed from an older version (or another instance) of the job.
fn older_version(a: &Allocation, job: &Job) -> bool {
    a.job
        .as_ref()
        .is_none_or(|j| j.version < job.version || j.create_index != job.create_index)
}

fn job_version(a: &Allocation) -> u64 {
    a.job.as_ref().map_or(0, |j| j.version)
}

/// Sorts allocations by name index (unparsable names last), then name, then ID.
fn by_name(allocs: &mut [Arc<Allocation>]) {
    allocs.sort_by(|a, b| {
        (a.index().unwrap_or(u64::MAX), &a.name, &a.id).cmp(&(b.index().unwrap_or(u64::MAX), &b.name, &b.id))
    });
}

fn sorted(set: &AllocSet) -> Vec<Arc<Allocation>> {
    let mut v: Vec<Arc<Allocation>> = set.values().cloned().collect();
    by_name(&mut v);
    v
}

fn new_dstate(update: Option<&UpdateStrategy>) -> DeploymentState {
    let Some(u) = update else {
        return DeploymentState::default();
    };
    DeploymentState {
        auto_revert: u.auto_revert.unwrap_or(false),
        auto_promote: u.auto_promote.unwrap_or(false),
        progress_deadline: u.progress_deadline.unwrap_or(0),
        ..DeploymentState::default()
    }
}

/// The highest normalized score the scheduler recorded for the allocation's node.
fn top_score(a: &Allocation) -> f64 {
    a.metrics
        .as_ref()
        .and_then(|m| m.score_meta_data.iter().map(|s| s.norm_score).reduce(f64::max))
        .unwrap_or(0.0)
}

/// When the allocation's earliest task started.
fn started_at(a: &Allocation) -> Option<i64> {
    a.task_states
        .values()
        .filter_map(|s| s.started_at.map(|t| t.0))
        .min()
}

/// The reconnect decision (§7.2 step 8): does the replacement beat the reconnected original?
fn replacement_wins(original: &Allocation, replacement: &Allocation, strategy: &str) -> bool {
    let version = |a: &Allocation| a.job.as_ref().map(|j| (j.create_index, j.version));
    if version(replacement) > version(original) {
        return true;
    }
    let best_score = || {
        top_score(replacement) > top_score(original)
            && (replacement.client_status == client_status::RUNNING
                || original.client_status != client_status::RUNNING)
    };
    match strategy {
        "keep_original" => false,
        "keep_replacement" => true,
        "longest_running" => match (started_at(original), started_at(replacement)) {
            (Some(o), Some(r)) if o != r => r < o,
            _ => best_score(),
        },
        _ => best_score(),
    }
}

/// The replacements of `a`, following `NextAllocation` (or `PreviousAllocation` back-links).
fn successors(a: &Arc<Allocation>, group: &AllocSet) -> Vec<Arc<Allocation>> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::from([a.id.clone()]);
    let mut cur = Arc::clone(a);
    loop {
        let next = group
            .get(&cur.next_allocation)
            .or_else(|| group.values().find(|x| x.previous_allocation == cur.id));
        match next {
            Some(n) if seen.insert(n.id.clone()) => {
                out.push(Arc::clone(n));
                cur = Arc::clone(n);
            }
            _ => break,
        }
    }
    out
}

/// When a lost allocation's client was last heard of.
fn lost_since(a: &Allocation) -> Option<i64> {
    a.alloc_states
        .iter()
        .rev()
        .find_map(|s| s.time.map(|t| t.0))
        .or_else(|| (a.modify_time > 0).then_some(a.modify_time))
}

/// Step 17: the placements the group needs: every allocation due for rescheduling now (same
/// name, previous allocation linked, canary flag kept), then replacements for lost allocations
/// while the group is short, then fresh names (lowest free index first) for any remaining
/// deficit. While canarying, canaries do not count toward `count`.
fn compute_placements(
    group: &str,
    count: usize,
    b: &Buckets,
    names: &mut NameIndex,
    canary_ids: &BTreeSet<String>,
    canarying: bool,
) -> Vec<PlacementRequest> {
    let occupying = b
        .untainted
        .values()
        .filter(|a| !(canarying && canary_ids.contains(&a.id)))
        .count();
    let mut have = occupying + b.migrate.len() + b.reschedule_now.len();
    let mut out = Vec::new();
    for a in sorted(&b.reschedule_now) {
        let canary = canary_ids.contains(&a.id) || is_canary(&a);
        out.push(PlacementRequest {
            name: a.name.clone(),
            task_group: group.to_string(),
            reschedule: true,
            lost: false,
            canary,
            downgrade_non_canary: canarying && !canary,
            min_job_version: job_version(&a),
            previous_alloc: Some(a),
        });
    }
    for a in sorted(&b.lost) {
        if have >= count {
            break;
        }
        have += 1;
        out.push(PlacementRequest {
            name: a.name.clone(),
            task_group: group.to_string(),
            reschedule: false,
            lost: true,
            canary: false,
            downgrade_non_canary: canarying,
            min_job_version: job_version(&a),
            previous_alloc: Some(a),
        });
    }
    if have < count {
        for name in names.next(count - have) {
            out.push(PlacementRequest {
                name,
                task_group: group.to_string(),
                previous_alloc: None,
                reschedule: false,
                lost: false,
                canary: false,
                downgrade_non_canary: canarying,
                min_job_version: 0,
            });
        }
    }
    out
}

impl Reconciler<'_> {
    /// Deployment pre-processing: cancel what the job no longer wants, find the current one.
    fn split_deployment(&mut self, d: Option<Deployment>) {
        let Some(d) = d else { return };
        let Some(job) = self.job.clone() else {
            if deployment_active(&d) {
                self.update_deployment(
                    &d.id,
                    deployment_status::CANCELLED,
                    "Cancelled because job is stopped",
                );
            }
            return;
        };
        if d.job_create_index != job.create_index || d.job_version != job.version {
            if deployment_active(&d) {
                self.update_deployment(
                    &d.id,
                    deployment_status::CANCELLED,
                    "Cancelled due to newer version of job",
                );
            }
            self.old = Some(d);
            return;
        }
        if !deployment_active(&d) && d.status != deployment_status::FAILED {
            self.old = Some(d);
            return;
        }
        self.paused = matches!(
            d.status.as_str(),
            deployment_status::PAUSED | more_status::PENDING | more_status::INITIALIZING
        );
        self.failed = d.status == deployment_status::FAILED;
        self.current = Some(d);
    }

    fn update_deployment(&mut self, id: &str, status: &str, description: &str) {
        self.results.deployment_updates.push(DeploymentStatusUpdate {
            deployment_id: id.to_string(),
            status: status.to_string(),
            status_description: description.to_string(),
        });
    }

    /// Marks the current deployment successful when every group is done.
    fn finish_deployment(&mut self, complete: bool) {
        let Some(d) = &self.current else { return };
        if complete && d.status == deployment_status::RUNNING {
            let id = d.id.clone();
            self.update_deployment(
                &id,
                deployment_status::SUCCESSFUL,
                "Deployment completed successfully",
            );
        }
    }

    fn stop(
        &mut self,
        alloc: &Arc<Allocation>,
        client: Option<&str>,
        description: &str,
        followup: Option<String>,
    ) {
        self.results.stop.push(StopRequest {
            alloc: Arc::clone(alloc),
            client_status: client.map(str::to_string),
            description: description.to_string(),
            followup_eval_id: followup,
        });
    }

    /// Stops every live allocation (job stopped, group removed or scaled to 0); those whose
    /// node is gone, down, or disconnected without `lost_after` are marked lost.
    fn stop_all(&mut self, allocs: &[Arc<Allocation>], tg: Option<&TaskGroup>, du: &mut DesiredUpdates) {
        let mut live: Vec<Arc<Allocation>> = allocs.iter().filter(|a| !a.terminal()).cloned().collect();
        by_name(&mut live);
        for a in live {
            let lost = match node_state(&self.tainted, &a.node_id) {
                NodeState::Missing | NodeState::Down => true,
                NodeState::Disconnected => disconnect_config(alloc_group(&a, tg)).lost_after.is_none(),
                NodeState::Untainted | NodeState::OtherTainted => false,
            };
            if lost {
                self.stop(&a, Some(client_status::LOST), desc::ALLOC_LOST, None);
            } else {
                self.stop(&a, None, desc::ALLOC_NOT_NEEDED, None);
            }
            du.stop += 1;
        }
    }

    fn new_eval(&mut self, trigger: &str, wait_until: i64, description: &str) -> Evaluation {
        let (eval_type, job_modify_index) = match &self.job {
            Some(j) => (j.job_type.clone(), j.job_modify_index),
            None if self.batch => (job_type::BATCH.to_string(), 0),
            None => (job_type::SERVICE.to_string(), 0),
        };
        Evaluation {
            id: (self.id_gen)(),
            namespace: self.namespace.clone(),
            priority: self.eval_priority,
            eval_type,
            triggered_by: trigger.to_string(),
            job_id: self.job_id.clone(),
            job_modify_index,
            status: eval_status::PENDING.to_string(),
            status_description: description.to_string(),
            wait_until: Some(Timestamp(wait_until)),
            previous_eval: self.eval_id.clone(),
            create_time: self.now,
            modify_time: self.now,
            ..Evaluation::default()
        }
    }

    /// Creates follow-up evaluations for allocations due at various times, one per 5 s window
    /// (the window opens at the earliest time not yet covered). Returns each allocation with
    /// the ID of the evaluation that covers it.
    fn followups(
        &mut self,
        group: &str,
        mut items: Vec<(Arc<Allocation>, i64)>,
        trigger: &str,
        description: &str,
    ) -> Vec<(Arc<Allocation>, String)> {
        items.sort_by(|a, b| (a.1, &a.0.id).cmp(&(b.1, &b.0.id)));
        let mut out = Vec::with_capacity(items.len());
        let mut evals = Vec::new();
        let mut window: Option<(i64, String)> = None;
        for (a, at) in items {
            let id = match &window {
                Some((start, id)) if at.saturating_sub(*start) < FOLLOWUP_WINDOW => id.clone(),
                _ => {
                    let e = self.new_eval(trigger, at, description);
                    let id = e.id.clone();
                    evals.push(e);
                    window = Some((at, id.clone()));
                    id
                }
            };
            out.push((a, id));
        }
        if !evals.is_empty() {
            self.results
                .desired_followup_evals
                .entry(group.to_string())
                .or_default()
                .extend(evals);
        }
        out
    }

    fn compute_group(&mut self, job: &Arc<Job>, group: &str, allocs: Vec<Arc<Allocation>>) -> bool {
        let mut du = DesiredUpdates::default();
        let complete = match job.group(group).filter(|tg| tg.count > 0) {
            Some(tg) => self.compute_live_group(job, tg, allocs, &mut du),
            None => {
                self.stop_all(&allocs, job.group(group), &mut du);
                true
            }
        };
        self.results.desired_tg_updates.insert(group.to_string(), du);
        complete
    }

    /// Unpromoted canaries that must go: those of an older deployment, and those of the
    /// current one if it failed.
    fn doomed_canaries(&self, group: &str) -> (BTreeSet<String>, Vec<String>) {
        let mut ids = BTreeSet::new();
        let mut deployments = Vec::new();
        let current_failed = self.current.as_ref().filter(|_| self.failed);
        for d in self.old.iter().chain(current_failed) {
            if let Some(s) = d.task_groups.get(group).filter(|s| !s.promoted) {
                ids.extend(s.placed_canaries.iter().cloned());
                deployments.push(d.id.clone());
            }
        }
        (ids, deployments)
    }

    /// One group with `count > 0`: the numbered steps of §7.2, in order. Returns whether the
    /// group is done (nothing to place, update, migrate or reschedule; deployment healthy).
    fn compute_live_group(
        &mut self,
        job: &Arc<Job>,
        tg: &TaskGroup,
        allocs: Vec<Arc<Allocation>>,
        du: &mut DesiredUpdates,
    ) -> bool {
        let group = tg.name.as_str();
        let count = usize::try_from(tg.count).unwrap_or(0);
        let update = if self.batch {
            None
        } else {
            tg.update.as_ref().filter(|u| !u.is_empty())
        };
        let had_running = allocs.iter().any(|a| same_version(a, job));
        let group_allocs: AllocSet = allocs.iter().map(|a| (a.id.clone(), Arc::clone(a))).collect();

        // Step 3: the group's deployment state.
        let existing_dstate = self
            .current
            .as_ref()
            .and_then(|d| d.task_groups.get(group))
            .cloned();
        let mut dstate = existing_dstate.clone().unwrap_or_else(|| new_dstate(update));

        // Steps 1, 4, 5, 6: what counts, unwanted canaries, buckets.
        let (mut b, mut canary_ids) = self.classify_group(job, tg, allocs, &dstate, du);
        // Step 7: the reschedule filter.
        self.filter_reschedule(tg, &mut b, du);
        // Steps 8 and 9: clients that came back, nodes that just disconnected.
        self.reconnect(job, tg, &group_allocs, &mut b, du);
        self.disconnect(group, tg, &mut b, du);
        // Step 10: lost allocations may have to wait until their client surely stopped them.
        let (lost_followups, delay_placements) = self.delay_lost(group, tg, &b);

        // Step 13: stop lost allocations and any excess.
        for a in sorted(&b.lost) {
            let followup = lost_followups.get(&a.id).cloned();
            self.stop(&a, Some(client_status::LOST), desc::ALLOC_LOST, followup);
            du.stop += 1;
        }
        canary_ids.retain(|id| b.untainted.contains_key(id) || b.reschedule_now.contains_key(id));
        let canarying_before = dstate.desired_canaries > 0 && !dstate.promoted;
        self.stop_excess(count, &mut b, &canary_ids, canarying_before, dstate.promoted, du);

        // Step 14: bring older versions up to date.
        let (destructive, inplace) = self.compute_updates(job, tg, &mut b, du);

        // Step 15: canaries.
        let mut names = NameIndex::new(
            &self.job_id,
            group,
            b.untainted
                .values()
                .chain(b.migrate.values())
                .chain(b.reschedule_now.values())
                .chain(b.lost.values()),
        );
        let canary_target = update.map_or(0, |u| usize::try_from(u.canary()).unwrap_or(0));
        let mut existing_canaries: Vec<Arc<Allocation>> = b
            .untainted
            .values()
            .chain(b.reschedule_now.values())
            .filter(|a| canary_ids.contains(&a.id))
            .cloned()
            .collect();
        by_name(&mut existing_canaries);
        let require_canary = update.is_some()
            && !destructive.is_empty()
            && existing_canaries.len() < canary_target
            && !dstate.promoted;
        if require_canary && existing_dstate.is_none() {
            dstate.desired_canaries = i64::try_from(canary_target).unwrap_or(i64::MAX);
        }
        let mut canary_place = Vec::new();
        if require_canary && !self.paused && !self.failed {
            let n = canary_target - existing_canaries.len();
            for name in names.next_canaries(n, &existing_canaries, &destructive) {
                canary_place.push(PlacementRequest {
                    name,
                    task_group: group.to_string(),
                    previous_alloc: None,
                    reschedule: false,
                    lost: false,
                    canary: true,
                    downgrade_non_canary: false,
                    min_job_version: 0,
                });
            }
            du.canary += canary_place.len() as u64;
        }
        let canarying = (dstate.desired_canaries > 0 || !canary_place.is_empty()) && !dstate.promoted;

        // Step 16: how many destructive updates may start now.
        let budget = self.update_budget(
            update,
            count,
            &destructive,
            &b,
            existing_dstate.is_some(),
            canarying,
        );

        // Steps 17, 18, 22: placements, and which of them happen now.
        let placements = if delay_placements {
            Vec::new()
        } else {
            compute_placements(group, count, &b, &mut names, &canary_ids, canarying)
        };
        let place_ready = !self.paused && !self.failed && !canarying;
        self.results.place.extend(canary_place.iter().cloned());
        let placed = self.apply_placements(&placements, place_ready, count, &b, du);

        // Step 19: destructive updates within what is left of the budget, lowest names first.
        let started = if place_ready {
            destructive.len().min(budget.saturating_sub(placed))
        } else {
            0
        };
        for a in destructive.iter().take(started) {
            self.results.destructive_update.push(PlacementRequest {
                name: a.name.clone(),
                task_group: group.to_string(),
                previous_alloc: Some(Arc::clone(a)),
                reschedule: false,
                lost: false,
                canary: false,
                downgrade_non_canary: false,
                min_job_version: job_version(a),
            });
        }
        du.destructive_update += started as u64;
        du.ignore += (destructive.len() - started) as u64;
        self.results.inplace_update.extend(inplace.iter().cloned());

        // Step 20: migrations.
        self.migrate(group, &b, canarying, du);

        // Step 21: a deployment for this version, if the group rolls out something new.
        if update.is_some() && existing_dstate.is_none() {
            let total = destructive.len() + inplace.len() + placements.iter().filter(|p| !p.canary).count();
            dstate.desired_total += i64::try_from(total).unwrap_or(i64::MAX);
            let updating_spec = !destructive.is_empty() || !inplace.is_empty();
            if dstate.desired_total > 0 && (!had_running || updating_spec) && self.current.is_none() {
                self.attach_deployment(job, group, dstate.clone());
            }
        }

        // Step 11: follow-up evaluations for delayed reschedules.
        let later = self.reschedule_later(group, &mut b, du);

        // Step 23: is the group done?
        let work_left = !destructive.is_empty()
            || !inplace.is_empty()
            || !placements.is_empty()
            || !canary_place.is_empty()
            || !b.migrate.is_empty()
            || !b.reschedule_now.is_empty()
            || later > 0
            || require_canary;
        !work_left && self.deployment_healthy(existing_dstate.as_ref(), &b)
    }

    /// Steps 1, 4, 5 and 6: drops what the server already stopped (batch keeps finished work)
    /// and finished batch work of older versions, stops canaries nobody wants any more, and
    /// sorts the rest into buckets. Returns the buckets and the current deployment's canaries.
    fn classify_group(
        &mut self,
        job: &Job,
        tg: &TaskGroup,
        allocs: Vec<Arc<Allocation>>,
        dstate: &DeploymentState,
        du: &mut DesiredUpdates,
    ) -> (Buckets, BTreeSet<String>) {
        let mut all = Vec::new();
        for a in allocs {
            // Batch keeps server-stopped allocations unless they are marked for rescheduling.
            let batch_keeps = self.batch && !marked_reschedule(&a);
            if a.server_terminal() && !batch_keeps {
                continue;
            }
            if self.batch && a.terminal() && older_version(&a, job) {
                du.ignore += 1;
                continue;
            }
            all.push(a);
        }
        by_name(&mut all);

        let (doomed, doomed_deployments) = self.doomed_canaries(&tg.name);
        let current_id = self
            .current
            .as_ref()
            .filter(|_| !self.failed)
            .map(|d| d.id.clone());
        let is_current_canary = |a: &Allocation| {
            current_id.as_deref().is_some_and(|d| {
                dstate.placed_canaries.contains(&a.id) || (is_canary(a) && a.deployment_id == d)
            })
        };
        let mut b = Buckets::default();
        let mut canary_ids: BTreeSet<String> = BTreeSet::new();
        for a in all {
            let bucket = classify(&a, node_state(&self.tainted, &a.node_id), Some(tg), self.now);
            if doomed.contains(&a.id) || (is_canary(&a) && doomed_deployments.contains(&a.deployment_id)) {
                if !a.terminal() {
                    self.stop(&a, None, desc::ALLOC_NOT_NEEDED, None);
                    du.stop += 1;
                }
                continue;
            }
            if is_current_canary(&a) {
                // A canary that has to leave its node is not replaced as such: the canary
                // count check places a new one if the rollout still needs it.
                match bucket {
                    Bucket::Migrate => {
                        self.stop(&a, None, desc::ALLOC_MIGRATING, None);
                        continue;
                    }
                    Bucket::Lost => {
                        self.stop(&a, Some(client_status::LOST), desc::ALLOC_LOST, None);
                        continue;
                    }
                    _ => {
                        canary_ids.insert(a.id.clone());
                    }
                }
            }
            let id = a.id.clone();
            match bucket {
                Bucket::Untainted => b.untainted.insert(id, a),
                Bucket::Migrate => b.migrate.insert(id, a),
                Bucket::Lost => b.lost.insert(id, a),
                Bucket::Disconnecting => b.disconnecting.insert(id, a),
                Bucket::Reconnecting => b.reconnecting.insert(id, a),
                Bucket::Ignore => {
                    du.ignore += 1;
                    None
                }
            };
        }
        (b, canary_ids)
    }

    /// Step 14: asks `update_fn` about every untainted allocation of another job version.
    /// Returns the destructive ones (name order) and the in-place copies.
    fn compute_updates(
        &mut self,
        job: &Job,
        tg: &TaskGroup,
        b: &mut Buckets,
        du: &mut DesiredUpdates,
    ) -> (Vec<Arc<Allocation>>, Vec<Allocation>) {
        let mut destructive: Vec<Arc<Allocation>> = Vec::new();
        let mut inplace: Vec<Allocation> = Vec::new();
        for a in sorted(&b.untainted) {
            // An `unknown` allocation cannot be updated until its client is back.
            if a.client_status == client_status::UNKNOWN || same_job(&a, job) {
                du.ignore += 1;
                continue;
            }
            match (self.update_fn)(&a, job, tg) {
                UpdateType::Ignore => du.ignore += 1,
                UpdateType::InPlace(updated) => inplace.push(updated),
                UpdateType::Destructive => destructive.push(a),
            }
        }
        // A failed allocation that is replaced by the update needs no delayed reschedule.
        b.reschedule_later
            .retain(|(a, _)| !destructive.iter().any(|d| d.id == a.id));
        du.in_place_update += inplace.len() as u64;
        (destructive, inplace)
    }

    /// Step 18 (and 22): applies the placements that may happen now — all of them when the
    /// deployment is ready for placements, else only lost replacements and reschedules of
    /// allocations outside a failed deployment — never more than `count`. A rescheduled
    /// allocation that really failed is stopped. Returns how many were applied.
    fn apply_placements(
        &mut self,
        placements: &[PlacementRequest],
        place_ready: bool,
        count: usize,
        b: &Buckets,
        du: &mut DesiredUpdates,
    ) -> usize {
        let failed_deployment = self
            .current
            .as_ref()
            .filter(|_| self.failed)
            .map(|d| d.id.clone());
        let in_failed_deployment = |p: &PlacementRequest| {
            p.previous_alloc
                .as_ref()
                .is_some_and(|prev| failed_deployment.as_deref() == Some(prev.deployment_id.as_str()))
        };
        let mut applied: Vec<PlacementRequest> = placements
            .iter()
            .filter(|p| place_ready || p.lost || (p.reschedule && !in_failed_deployment(p)))
            .cloned()
            .collect();
        applied.truncate(count);
        for p in &applied {
            if !p.reschedule {
                continue;
            }
            du.reschedule_now += 1;
            if let Some(prev) = &p.previous_alloc {
                let real_failure = !b.disconnecting.contains_key(&prev.id)
                    && !marked_migrate(prev)
                    && prev.client_status != client_status::UNKNOWN;
                if real_failure {
                    self.stop(prev, None, desc::ALLOC_RESCHEDULED, None);
                    du.stop += 1;
                }
            }
        }
        let n = applied.len();
        du.place += n as u64;
        self.results.place.extend(applied);
        n
    }

    /// Step 20: every migrating allocation is stopped and, unless the drainer asked for no
    /// replacement, replaced under the same name.
    fn migrate(&mut self, group: &str, b: &Buckets, canarying: bool, du: &mut DesiredUpdates) {
        for a in sorted(&b.migrate) {
            self.stop(&a, None, desc::ALLOC_MIGRATING, None);
            du.migrate += 1;
            if migrate_disable_placement(&a) || (self.batch && marked_reschedule(&a)) {
                continue;
            }
            self.results.place.push(PlacementRequest {
                name: a.name.clone(),
                task_group: group.to_string(),
                reschedule: false,
                lost: false,
                canary: false,
                downgrade_non_canary: canarying,
                min_job_version: job_version(&a),
                previous_alloc: Some(a),
            });
        }
    }

    /// Step 11: one follow-up evaluation per 5 s window for the failed allocations due later
    /// (still untainted), each recording its evaluation as `FollowupEvalID`. Returns how many.
    fn reschedule_later(&mut self, group: &str, b: &mut Buckets, du: &mut DesiredUpdates) -> usize {
        let later: Vec<(Arc<Allocation>, i64)> = std::mem::take(&mut b.reschedule_later)
            .into_iter()
            .filter(|(a, _)| b.untainted.contains_key(&a.id))
            .collect();
        let n = later.len();
        if n == 0 {
            return 0;
        }
        let marked = self.followups(
            group,
            later,
            trigger::ALLOC_RESCHEDULE,
            "created for delayed rescheduling",
        );
        for (a, eval_id) in marked {
            let mut updated = (*a).clone();
            updated.followup_eval_id = eval_id;
            self.results.attribute_updates.insert(a.id.clone(), updated);
        }
        du.reschedule_later += n as u64;
        n
    }

    /// Step 23 (deployment part): with a current deployment, the group is done only when
    /// enough of its allocations are healthy and its canaries, if any, are promoted. Health is
    /// the deployment's count or what the allocations report, whichever is higher.
    fn deployment_healthy(&self, state: Option<&DeploymentState>, b: &Buckets) -> bool {
        let (Some(d), Some(ds)) = (&self.current, state) else {
            return true;
        };
        let healthy_seen = b
            .untainted
            .values()
            .filter(|a| {
                a.deployment_id == d.id && a.deployment_status.as_ref().and_then(|s| s.healthy) == Some(true)
            })
            .count();
        let healthy = ds
            .healthy_allocs
            .max(i64::try_from(healthy_seen).unwrap_or(i64::MAX));
        healthy >= ds.desired_total.max(ds.desired_canaries) && (ds.desired_canaries == 0 || ds.promoted)
    }

    /// Step 7: splits untainted allocations into untainted / reschedule now / later / ignore.
    fn filter_reschedule(&self, tg: &TaskGroup, b: &mut Buckets, du: &mut DesiredUpdates) {
        let active = self
            .current
            .as_ref()
            .filter(|d| deployment_active(d))
            .map(|d| d.id.as_str());
        for a in sorted(&b.untainted) {
            match filter(&a, self.batch) {
                Filter::Untainted => {}
                Filter::Skip => {
                    b.untainted.remove(&a.id);
                }
                Filter::Ignore => {
                    b.untainted.remove(&a.id);
                    du.ignore += 1;
                }
                Filter::Candidate => {
                    let policy = alloc_group(&a, Some(tg)).and_then(|g| g.reschedule_policy.as_ref());
                    let in_deployment = active == Some(a.deployment_id.as_str());
                    match eligibility(&a, policy, self.now, &self.eval_id, in_deployment) {
                        Eligibility::Now => {
                            b.untainted.remove(&a.id);
                            b.reschedule_now.insert(a.id.clone(), a);
                        }
                        Eligibility::Later(at) => b.reschedule_later.push((a, at)),
                        Eligibility::No => {}
                    }
                }
            }
        }
    }

    /// Step 8: a reconnected client's allocation is kept or stopped, and so is its replacement.
    fn reconnect(
        &mut self,
        job: &Job,
        tg: &TaskGroup,
        group_allocs: &AllocSet,
        b: &mut Buckets,
        du: &mut DesiredUpdates,
    ) {
        let mut stopped: BTreeSet<String> = BTreeSet::new();
        for a in sorted(&std::mem::take(&mut b.reconnecting)) {
            if stopped.contains(&a.id) {
                continue;
            }
            let unwanted = a.client_status == client_status::FAILED
                || a.desired_status != desired_status::RUN
                || marked_migrate(&a)
                || marked_reschedule(&a)
                || older_version(&a, job);
            let replacements: Vec<Arc<Allocation>> = successors(&a, group_allocs)
                .into_iter()
                .filter(|r| !r.terminal())
                .collect();
            let strategy = disconnect_config(alloc_group(&a, Some(tg))).reconcile;
            let keep_original = !unwanted
                && replacements
                    .last()
                    .is_none_or(|r| !replacement_wins(&a, r, &strategy));
            if !keep_original {
                self.stop(&a, None, desc::ALLOC_RECONNECTED, None);
                du.stop += 1;
                stopped.insert(a.id.clone());
                continue;
            }
            for r in replacements {
                if stopped.insert(r.id.clone()) {
                    self.stop(&r, None, desc::ALLOC_RECONNECTED, None);
                    du.stop += 1;
                    b.forget(&r.id);
                }
            }
            let mut updated = (*a).clone();
            updated.alloc_states.push(AllocState {
                field: ALLOC_STATE_CLIENT_STATUS,
                value: a.client_status.clone(),
                time: Some(Timestamp(self.now)),
            });
            self.results.reconnect_updates.insert(a.id.clone(), updated);
            du.reconnect += 1;
            b.untainted.insert(a.id.clone(), a);
        }
    }

    /// Step 9: allocations on a node that just disconnected become `unknown`, get a timeout
    /// follow-up, and are replaced meanwhile when the group allows it.
    fn disconnect(&mut self, group: &str, tg: &TaskGroup, b: &mut Buckets, du: &mut DesiredUpdates) {
        if b.disconnecting.is_empty() {
            return;
        }
        let items: Vec<(Arc<Allocation>, i64)> = sorted(&b.disconnecting)
            .into_iter()
            .map(|a| {
                let window = disconnect_config(alloc_group(&a, Some(tg)))
                    .lost_after
                    .unwrap_or(0);
                let at = self.now.saturating_add(window);
                (a, at)
            })
            .collect();
        let marked = self.followups(
            group,
            items,
            trigger::MAX_DISCONNECT_TIMEOUT,
            "created for the disconnect timeout (lost_after)",
        );
        for (a, eval_id) in marked {
            let mut updated = (*a).clone();
            updated.client_status = client_status::UNKNOWN.to_string();
            updated.client_description = desc::ALLOC_UNKNOWN.to_string();
            updated.alloc_states.push(AllocState {
                field: ALLOC_STATE_CLIENT_STATUS,
                value: client_status::UNKNOWN.to_string(),
                time: Some(Timestamp(self.now)),
            });
            updated.followup_eval_id = eval_id;
            self.results.disconnect_updates.insert(a.id.clone(), updated);
            du.disconnect += 1;

            let own = alloc_group(&a, Some(tg));
            let replace = disconnect_config(own).replace
                && own
                    .and_then(|g| g.reschedule_policy.as_ref())
                    .and_then(|p| reschedule_time_from(&a, p, self.now))
                    .is_some();
            if replace {
                b.reschedule_now.insert(a.id.clone(), a);
            } else {
                b.untainted.insert(a.id.clone(), a);
            }
        }
    }

    /// Step 10: with `stop_on_client_after`, a lost allocation is replaced only once its client
    /// has surely stopped it (last contact + stop_on_client_after + the longest kill timeout).
    /// Returns the follow-up eval of each delayed allocation and whether placements wait.
    fn delay_lost(&mut self, group: &str, tg: &TaskGroup, b: &Buckets) -> (BTreeMap<String, String>, bool) {
        let Some(stop_after) = disconnect_config(Some(tg)).stop_after else {
            return (BTreeMap::new(), false);
        };
        let kill = tg
            .tasks
            .iter()
            .map(|t| t.kill_timeout)
            .max()
            .unwrap_or(0)
            .max(MIN_KILL_TIMEOUT);
        let items: Vec<(Arc<Allocation>, i64)> = sorted(&b.lost)
            .into_iter()
            .filter_map(|a| {
                let since = lost_since(&a).unwrap_or(self.now);
                let at = since.saturating_add(stop_after).saturating_add(kill);
                (at > self.now).then_some((a, at))
            })
            .collect();
        if items.is_empty() {
            return (BTreeMap::new(), false);
        }
        let marked = self.followups(
            group,
            items,
            trigger::RETRY_FAILED_ALLOC,
            "created to replace lost allocations once their client stopped them",
        );
        (marked.into_iter().map(|(a, e)| (a.id.clone(), e)).collect(), true)
    }

    /// Step 13 (excess): stops allocations beyond `count`. Order of preference: after
    /// promotion, old allocations sharing a canary's name; failed allocations due for
    /// rescheduling; migrating ones; then untainted ones — duplicated names first, canaries
    /// last, highest index first. `unknown` allocations are never counted nor stopped here.
    fn stop_excess(
        &mut self,
        count: usize,
        b: &mut Buckets,
        canary_ids: &BTreeSet<String>,
        canarying: bool,
        promoted: bool,
        du: &mut DesiredUpdates,
    ) {
        let excluded = |a: &Allocation| canarying && canary_ids.contains(&a.id);
        let counted = |a: &Allocation| !excluded(a) && a.client_status != client_status::UNKNOWN;
        let have = b.untainted.values().filter(|a| counted(a)).count()
            + b.migrate.len()
            + b.reschedule_now.values().filter(|a| !excluded(a)).count();
        let mut remove = have.saturating_sub(count);
        if remove == 0 {
            return;
        }
        let mut victims: Vec<Arc<Allocation>> = Vec::new();

        if promoted && !canary_ids.is_empty() {
            let canary_names: BTreeSet<&str> = b
                .untainted
                .values()
                .chain(b.reschedule_now.values())
                .filter(|a| canary_ids.contains(&a.id))
                .map(|a| a.name.as_str())
                .collect();
            let mut v: Vec<Arc<Allocation>> = b
                .untainted
                .values()
                .filter(|a| {
                    counted(a) && !canary_ids.contains(&a.id) && canary_names.contains(a.name.as_str())
                })
                .cloned()
                .collect();
            by_name(&mut v);
            victims.extend(v.into_iter().rev().take(remove));
            remove -= victims.len();
        }
        let take_from =
            |pool: Vec<Arc<Allocation>>, victims: &mut Vec<Arc<Allocation>>, remove: &mut usize| {
                for a in pool {
                    if *remove == 0 {
                        break;
                    }
                    if victims.iter().all(|v| v.id != a.id) {
                        victims.push(a);
                        *remove -= 1;
                    }
                }
            };
        let mut failed: Vec<Arc<Allocation>> = b
            .reschedule_now
            .values()
            .filter(|a| !excluded(a))
            .cloned()
            .collect();
        by_name(&mut failed);
        failed.reverse();
        take_from(failed, &mut victims, &mut remove);
        let mut migrating = sorted(&b.migrate);
        migrating.reverse();
        take_from(migrating, &mut victims, &mut remove);

        // Among untainted: the oldest allocation of each name is its keeper; the others are
        // duplicates and go first.
        let mut keepers: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        for a in b.untainted.values() {
            let k = keepers
                .entry(a.name.as_str())
                .or_insert((a.create_index, a.id.as_str()));
            if (a.create_index, a.id.as_str()) < *k {
                *k = (a.create_index, a.id.as_str());
            }
        }
        let mut rest: Vec<Arc<Allocation>> = b.untainted.values().filter(|a| counted(a)).cloned().collect();
        rest.sort_by(|x, y| {
            let key = |a: &Allocation| {
                let duplicate = keepers.get(a.name.as_str()).is_some_and(|k| k.1 != a.id);
                (
                    canary_ids.contains(&a.id),
                    !duplicate,
                    std::cmp::Reverse(a.index().unwrap_or(u64::MAX)),
                    std::cmp::Reverse(a.id.clone()),
                )
            };
            key(x).cmp(&key(y))
        });
        take_from(rest, &mut victims, &mut remove);

        for a in victims {
            self.stop(&a, None, desc::ALLOC_NOT_NEEDED, None);
            du.stop += 1;
            b.forget(&a.id);
        }
    }

    /// Step 16: how many destructive updates may start in this pass.
    fn update_budget(
        &self,
        update: Option<&UpdateStrategy>,
        count: usize,
        destructive: &[Arc<Allocation>],
        b: &Buckets,
        has_dstate: bool,
        canarying: bool,
    ) -> usize {
        let Some(u) = update else { return count };
        if destructive.is_empty() && b.migrate.is_empty() {
            return count;
        }
        let max_parallel = usize::try_from(u.max_parallel()).unwrap_or(0);
        let Some(d) = self.current.as_ref().filter(|_| has_dstate) else {
            return max_parallel;
        };
        if self.paused || self.failed || canarying {
            return 0;
        }
        let mut pending = 0usize;
        for a in b.untainted.values().filter(|a| a.deployment_id == d.id) {
            match a.deployment_status.as_ref().and_then(|s| s.healthy) {
                Some(false) => return 0,
                Some(true) => {}
                None => pending += 1,
            }
        }
        max_parallel.saturating_sub(pending)
    }

    /// Step 21: creates the deployment on first need and attaches the group's state.
    fn attach_deployment(&mut self, job: &Job, group: &str, state: DeploymentState) {
        let deployment = match &mut self.results.deployment {
            Some(d) => d,
            None => {
                let id = (self.id_gen)();
                self.results.deployment.insert(Deployment {
                    id,
                    namespace: job.namespace.clone(),
                    job_id: job.id.clone(),
                    job_version: job.version,
                    job_modify_index: job.job_modify_index,
                    job_spec_modify_index: job.job_modify_index,
                    job_create_index: job.create_index,
                    is_multiregion: false,
                    task_groups: BTreeMap::new(),
                    status: deployment_status::RUNNING.to_string(),
                    status_description: "Deployment is running".to_string(),
                    eval_priority: self.eval_priority,
                    create_index: 0,
                    modify_index: 0,
                    create_time: self.now,
                    modify_time: self.now,
                })
            }
        };
        if state.desired_canaries > 0 && !state.promoted {
            deployment.status_description = if state.auto_promote {
                "Deployment is running pending automatic promotion".to_string()
            } else {
                "Deployment is running but requires manual promotion".to_string()
            };
        }
        deployment.task_groups.insert(group.to_string(), state);
    }
}
