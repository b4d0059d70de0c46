//! How each [`Command`] changes a [`StateSnapshot`].
//!
//! ```text
//!  (snapshot clone, index, Command) ──apply──▶ mutated clone + ApplyOutcome
//! ```
//!
//! Every function here works on the writer's private clone; the caller publishes it only when
//! the whole command succeeded, so a command is all-or-nothing. Object fields owned by the
//! server (`CreateIndex`, `ModifyIndex`, `AllocModifyIndex`, `JobModifyIndex`, `Version`) are
//! set here from the Raft index, never trusted from the command.

use std::collections::BTreeSet;
use std::sync::Arc;

use drover_types::alloc::client_status;
use drover_types::alloc::desired_status;
use drover_types::eval::eval_status;
use drover_types::node::node_status;
use drover_types::{Allocation, Deployment, Evaluation, Job, JobSummary, Node};

use crate::snapshot::{JobKey, summary_bucket};
use crate::{AllocPreemptDiff, AllocStopDiff, ApplyOutcome, Command, StateError, StateSnapshot, Table};

/// The namespace an object without one lives in.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Applies `command` at Raft `index` to `s` (the writer's private clone).
pub fn apply(s: &mut StateSnapshot, index: u64, command: Command) -> Result<ApplyOutcome, StateError> {
    if index <= s.index {
        return Err(StateError::StaleIndex {
            index,
            latest: s.index,
        });
    }
    if let Command::Batch { commands } = command {
        let mut out = ApplyOutcome {
            index,
            applied: true,
            ..Default::default()
        };
        for c in commands {
            if matches!(c, Command::Batch { .. }) {
                out.batch.push(Err("nested batch".into()));
                continue;
            }
            // Each command is atomic on its own: apply to a clone (O(1)), keep it on success.
            let mut next = s.clone();
            let r = apply_one(&mut next, index, c);
            if r.is_ok() {
                *s = next;
            }
            out.batch.push(r.map_err(|e| e.to_string()));
        }
        s.index = index;
        return Ok(out);
    }
    apply_one(s, index, command)
}

/// Applies one (non-batch) command; the index check is the caller's.
fn apply_one(s: &mut StateSnapshot, index: u64, command: Command) -> Result<ApplyOutcome, StateError> {
    let mut out = ApplyOutcome {
        index,
        applied: true,
        ..Default::default()
    };
    let affected = jobs_of(s, &command);
    match command {
        Command::UpsertJob { job, eval } => {
            upsert_job(s, index, job, &mut out)?;
            upsert_evals(s, index, eval.into_iter().collect(), &mut out)?;
        }
        Command::DeregisterJob {
            namespace,
            job_id,
            purge,
            eval,
        } => {
            deregister_job(s, index, &namespace, &job_id, purge, &mut out)?;
            upsert_evals(s, index, eval.into_iter().collect(), &mut out)?;
        }
        Command::UpsertNode { node } => upsert_node(s, index, node, &mut out)?,
        Command::UpdateNodeStatus {
            id,
            status,
            updated_at,
            evals,
            event,
        } => {
            let mut n = node_copy(s, &id)?;
            let was_ready = n.ready();
            n.status = status;
            n.status_updated_at = updated_at;
            push_event(&mut n, event, index);
            put_node(s, index, n, was_ready, &mut out);
            upsert_evals(s, index, evals, &mut out)?;
        }
        Command::UpdateNodeEligibility {
            id,
            eligibility,
            evals,
            event,
        } => {
            if eligibility != "eligible" && eligibility != "ineligible" {
                return Err(StateError::Invalid(format!(
                    "unknown scheduling eligibility {eligibility:?}"
                )));
            }
            let mut n = node_copy(s, &id)?;
            if n.drain_strategy.is_some() && eligibility == "eligible" {
                return Err(StateError::Invalid(
                    "can not set node's scheduling eligibility to eligible while it is draining".into(),
                ));
            }
            let was_ready = n.ready();
            n.scheduling_eligibility = eligibility;
            push_event(&mut n, event, index);
            put_node(s, index, n, was_ready, &mut out);
            upsert_evals(s, index, evals, &mut out)?;
        }
        Command::UpdateNodeDrain {
            id,
            drain_strategy,
            mark_eligible,
            evals,
            event,
        } => {
            let mut n = node_copy(s, &id)?;
            let was_ready = n.ready();
            n.drain = drain_strategy.is_some();
            if drain_strategy.is_some() {
                n.scheduling_eligibility = "ineligible".into();
            } else if mark_eligible {
                n.scheduling_eligibility = "eligible".into();
            }
            n.drain_strategy = drain_strategy;
            push_event(&mut n, event, index);
            put_node(s, index, n, was_ready, &mut out);
            upsert_evals(s, index, evals, &mut out)?;
        }
        Command::DeleteNodes { ids } => {
            for id in &ids {
                if s.nodes.remove(id).is_none() {
                    return Err(StateError::NotFound {
                        kind: "node",
                        id: id.clone(),
                    });
                }
            }
            if !ids.is_empty() {
                s.touch(Table::Nodes, index);
            }
        }
        Command::UpsertEvals { evals } => upsert_evals(s, index, evals, &mut out)?,
        Command::DeleteEvals { evals, allocs } => {
            if evals.iter().fold(false, |t, id| s.remove_eval(id) | t) {
                s.touch(Table::Evals, index);
            }
            if allocs.iter().fold(false, |t, id| s.remove_alloc(id) | t) {
                s.touch(Table::Allocs, index);
            }
        }
        Command::ApplyPlanResults {
            job,
            allocs_updated,
            allocs_stopped,
            allocs_preempted,
            deployment,
            deployment_updates,
            eval_id,
            preemption_evals,
        } => {
            let job = job.map(|j| Arc::new(normalize_job_ns(j)));
            for diff in allocs_stopped {
                stop_alloc(s, index, diff, &mut out);
            }
            for diff in allocs_preempted {
                preempt_alloc(s, index, diff);
            }
            if let Some(d) = deployment {
                upsert_deployment(s, index, d)?;
            }
            for u in deployment_updates {
                if let Some(d) = s.deployments.get(&u.deployment_id).cloned() {
                    let mut d = (*d).clone();
                    d.status = u.status;
                    d.status_description = u.status_description;
                    d.modify_index = index;
                    s.put_deployment(Arc::new(d));
                    s.touch(Table::Deployments, index);
                }
            }
            // After the deployment, so new allocations count in it.
            for alloc in allocs_updated {
                place_alloc(s, index, alloc, job.as_ref())?;
            }
            if let Some(e) = s.evals.get(&eval_id).cloned() {
                let mut e = (*e).clone();
                e.modify_index = index;
                s.put_eval(Arc::new(e));
                s.touch(Table::Evals, index);
            }
            upsert_evals(s, index, preemption_evals, &mut out)?;
        }
        Command::UpdateAllocsFromClient { allocs, evals } => {
            for upd in allocs {
                client_update(s, index, upd, &mut out);
            }
            upsert_evals(s, index, evals, &mut out)?;
        }
        Command::UpdateAllocDesiredTransition { allocs, evals } => {
            for (id, t) in allocs {
                let Some(a) = s.allocs.get(&id).cloned() else {
                    continue;
                };
                let mut a = (*a).clone();
                let d = &mut a.desired_transition;
                d.migrate = t.migrate.or(d.migrate);
                d.reschedule = t.reschedule.or(d.reschedule);
                d.force_reschedule = t.force_reschedule.or(d.force_reschedule);
                d.no_shutdown_delay = t.no_shutdown_delay.or(d.no_shutdown_delay);
                d.migrate_disable_placement = t.migrate_disable_placement.or(d.migrate_disable_placement);
                a.modify_index = index;
                s.put_alloc(Arc::new(a));
                s.touch(Table::Allocs, index);
            }
            upsert_evals(s, index, evals, &mut out)?;
        }
        Command::SetSchedulerConfig {
            mut config,
            cas_index,
        } => {
            let current = s.scheduler_config.clone();
            let current_index = current.as_ref().map_or(0, |c| c.modify_index);
            if cas_index.is_some_and(|cas| cas != current_index) {
                out.applied = false;
            } else {
                config.create_index = current.as_ref().map_or(index, |c| c.create_index);
                config.modify_index = index;
                s.scheduler_config = Some(Arc::new(config));
                s.touch(Table::SchedulerConfig, index);
            }
        }
        Command::UpsertDeployment { deployment } => upsert_deployment(s, index, deployment)?,
        Command::DeleteAllocs { ids } => {
            if ids.iter().fold(false, |t, id| s.remove_alloc(id) | t) {
                s.touch(Table::Allocs, index);
            }
        }
        Command::DeleteDeployments { ids } => {
            if ids.iter().fold(false, |t, id| s.remove_deployment(id) | t) {
                s.touch(Table::Deployments, index);
            }
        }
        Command::UpdateJobStability {
            namespace,
            job_id,
            version,
            stable,
        } => {
            let ns = ns_of(&namespace);
            let vkey = (ns.clone(), job_id.clone(), version);
            let Some(v) = s.job_versions.get(&vkey).cloned() else {
                return Err(StateError::NotFound {
                    kind: "job",
                    id: format!("{job_id} version {version}"),
                });
            };
            let mut v = (*v).clone();
            v.stable = stable;
            let v = Arc::new(v);
            s.job_versions.insert(vkey, v.clone());
            s.touch(Table::JobVersions, index);
            // The current version carries the flag too (`GET /v1/job/:id` shows it).
            let key = (ns, job_id);
            if let Some(cur) = s.jobs.get(&key).cloned()
                && cur.version == version
            {
                let mut cur = (*cur).clone();
                cur.stable = stable;
                s.jobs.insert(key, Arc::new(cur));
                s.touch(Table::Jobs, index);
            }
        }
        Command::Batch { .. } => return Err(StateError::Invalid("nested batch".into())),
    }
    for key in affected {
        refresh_job_status(s, index, &key);
    }
    // The latest index is the last applied Raft index, even when no table changed.
    s.index = index;
    Ok(out)
}

fn ns_of(ns: &str) -> String {
    if ns.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        ns.to_string()
    }
}

/// The jobs whose allocations or evaluations a command may change (their status is
/// recomputed after the apply). Read before the apply, so deleted objects still count.
fn jobs_of(s: &StateSnapshot, command: &Command) -> BTreeSet<JobKey> {
    let mut keys = BTreeSet::new();
    let evals = |keys: &mut BTreeSet<JobKey>, evals: &[Evaluation]| {
        for e in evals.iter().filter(|e| !e.job_id.is_empty()) {
            keys.insert((ns_of(&e.namespace), e.job_id.clone()));
        }
    };
    let alloc_ids = |keys: &mut BTreeSet<JobKey>, ids: &mut dyn Iterator<Item = &String>| {
        for id in ids {
            if let Some(a) = s.allocs.get(id) {
                keys.insert((a.namespace.clone(), a.job_id.clone()));
            }
        }
    };
    match command {
        Command::UpsertJob { job, eval } => {
            keys.insert((ns_of(&job.namespace), job.id.clone()));
            evals(&mut keys, eval.as_slice());
        }
        Command::DeregisterJob {
            namespace,
            job_id,
            eval,
            ..
        } => {
            keys.insert((ns_of(namespace), job_id.clone()));
            evals(&mut keys, eval.as_slice());
        }
        Command::UpdateNodeStatus { evals: e, .. }
        | Command::UpdateNodeEligibility { evals: e, .. }
        | Command::UpdateNodeDrain { evals: e, .. }
        | Command::UpsertEvals { evals: e } => evals(&mut keys, e),
        Command::DeleteEvals { evals: e, allocs } => {
            for id in e {
                if let Some(e) = s.evals.get(id) {
                    keys.insert((e.namespace.clone(), e.job_id.clone()));
                }
            }
            alloc_ids(&mut keys, &mut allocs.iter());
        }
        Command::ApplyPlanResults {
            allocs_updated,
            allocs_stopped,
            allocs_preempted,
            preemption_evals,
            ..
        } => {
            for a in allocs_updated {
                keys.insert((ns_of(&a.namespace), a.job_id.clone()));
            }
            alloc_ids(&mut keys, &mut allocs_stopped.iter().map(|d| &d.id));
            alloc_ids(&mut keys, &mut allocs_preempted.iter().map(|d| &d.id));
            evals(&mut keys, preemption_evals);
        }
        Command::UpdateAllocsFromClient { allocs, evals: e } => {
            alloc_ids(&mut keys, &mut allocs.iter().map(|a| &a.id));
            evals(&mut keys, e);
        }
        Command::UpdateAllocDesiredTransition { evals: e, .. } => evals(&mut keys, e),
        Command::DeleteAllocs { ids } => alloc_ids(&mut keys, &mut ids.iter()),
        Command::UpsertNode { .. }
        | Command::DeleteNodes { .. }
        | Command::SetSchedulerConfig { .. }
        | Command::UpsertDeployment { .. }
        | Command::DeleteDeployments { .. }
        | Command::UpdateJobStability { .. }
        | Command::Batch { .. } => {}
    }
    keys
}

/// A job's status from its allocations and evaluations: `running` while any allocation is
/// not terminal (or for periodic / parameterized parents), `pending` while any evaluation is
/// not terminal, `dead` when stopped or when everything it had is terminal, else `pending`.
pub fn job_status(s: &StateSnapshot, job: &Job) -> &'static str {
    if job.stop {
        return "dead";
    }
    if job.is_periodic_or_parameterized() {
        return "running";
    }
    let allocs = s.allocs_by_job(&job.namespace, &job.id);
    if allocs.iter().any(|a| !a.terminal()) {
        return "running";
    }
    let evals = s.evals_by_job(&job.namespace, &job.id);
    if evals.iter().any(|e| !e.terminal()) {
        return "pending";
    }
    if allocs.is_empty() && evals.is_empty() {
        "pending"
    } else {
        "dead"
    }
}

/// Stores the job's recomputed status (bumping ModifyIndex, not JobModifyIndex or Version).
fn refresh_job_status(s: &mut StateSnapshot, index: u64, key: &JobKey) {
    let Some(job) = s.jobs.get(key).cloned() else {
        return;
    };
    let status = job_status(s, &job);
    if job.status != status {
        let mut j = (*job).clone();
        j.status = status.into();
        j.modify_index = index;
        s.jobs.insert(key.clone(), Arc::new(j));
        s.touch(Table::Jobs, index);
    }
}

fn normalize_job_ns(mut job: Job) -> Job {
    if job.namespace.is_empty() {
        job.namespace = DEFAULT_NAMESPACE.into();
    }
    job
}

/// The job with every field the server sets blanked: what "the spec changed" compares.
fn spec_of(job: &Job) -> Job {
    let mut j = job.clone();
    j.status = String::new();
    j.status_description = String::new();
    j.stable = false;
    j.version = 0;
    j.submit_time = 0;
    j.create_index = 0;
    j.modify_index = 0;
    j.job_modify_index = 0;
    j.version_tag = None;
    j
}

/// Did the user-controlled part of the job change?
pub fn spec_changed(old: &Job, new: &Job) -> bool {
    spec_of(old) != spec_of(new)
}

fn upsert_job(s: &mut StateSnapshot, index: u64, job: Job, out: &mut ApplyOutcome) -> Result<(), StateError> {
    let mut job = normalize_job_ns(job);
    if job.id.is_empty() {
        return Err(StateError::Invalid("job has no ID".into()));
    }
    let key = (job.namespace.clone(), job.id.clone());
    let existing = s.jobs.get(&key).cloned();
    if let Some(ex) = &existing
        && !spec_changed(ex, &job)
    {
        out.job_modify_index = Some((ex.modify_index, ex.job_modify_index));
        out.job_changed = false;
        return Ok(());
    }
    match &existing {
        Some(ex) => {
            job.create_index = ex.create_index;
            job.version = ex.version + 1;
            if job.submit_time == 0 {
                job.submit_time = ex.submit_time;
            }
        }
        None => {
            job.create_index = index;
            job.version = 0;
        }
    }
    job.modify_index = index;
    job.job_modify_index = index;
    job.stable = false;
    job.status = if job.stop {
        "dead".into()
    } else {
        match &existing {
            Some(ex) if !ex.status.is_empty() && ex.status != "dead" => ex.status.clone(),
            _ => "pending".into(),
        }
    };
    job.status_description = String::new();

    // The summary gets an entry for every group.
    let old_summary = s.job_summaries.get(&key).cloned();
    let mut summary = old_summary.as_deref().cloned().unwrap_or_else(|| JobSummary {
        job_id: job.id.clone(),
        namespace: job.namespace.clone(),
        create_index: index,
        ..Default::default()
    });
    let mut summary_changed = old_summary.is_none();
    for tg in &job.task_groups {
        if !summary.summary.contains_key(&tg.name) {
            summary.summary.insert(tg.name.clone(), Default::default());
            summary_changed = true;
        }
    }
    if summary_changed {
        summary.modify_index = index;
        s.job_summaries.insert(key.clone(), Arc::new(summary));
        s.touch(Table::JobSummaries, index);
    }

    let job = Arc::new(job);
    s.jobs.insert(key, job.clone());
    s.put_job_version(job);
    s.touch(Table::Jobs, index);
    s.touch(Table::JobVersions, index);
    out.job_modify_index = Some((index, index));
    out.job_changed = true;
    Ok(())
}

fn deregister_job(
    s: &mut StateSnapshot,
    index: u64,
    namespace: &str,
    job_id: &str,
    purge: bool,
    out: &mut ApplyOutcome,
) -> Result<(), StateError> {
    let ns = if namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        namespace
    };
    let key = (ns.to_string(), job_id.to_string());
    let Some(existing) = s.jobs.get(&key).cloned() else {
        // Already gone (e.g. a purge raced with GC): nothing to do.
        return Ok(());
    };
    if purge {
        s.jobs.remove(&key);
        s.remove_job_versions(ns, job_id);
        s.job_summaries.remove(&key);
        s.touch(Table::Jobs, index);
        s.touch(Table::JobVersions, index);
        s.touch(Table::JobSummaries, index);
        out.job_modify_index = Some((index, index));
    } else if !existing.stop {
        let mut stopped = (*existing).clone();
        stopped.stop = true;
        upsert_job(s, index, stopped, out)?;
    } else {
        out.job_modify_index = Some((existing.modify_index, existing.job_modify_index));
    }
    Ok(())
}

fn node_copy(s: &StateSnapshot, id: &str) -> Result<Node, StateError> {
    s.nodes
        .get(id)
        .map(|n| (**n).clone())
        .ok_or_else(|| StateError::NotFound {
            kind: "node",
            id: id.to_string(),
        })
}

fn put_node(s: &mut StateSnapshot, index: u64, mut n: Node, was_ready: bool, out: &mut ApplyOutcome) {
    n.modify_index = index;
    if n.ready() && !was_ready {
        out.nodes_with_capacity.push(n.id.clone());
    }
    s.nodes.insert(n.id.clone(), Arc::new(n));
    s.touch(Table::Nodes, index);
}

fn upsert_node(
    s: &mut StateSnapshot,
    index: u64,
    mut node: Node,
    out: &mut ApplyOutcome,
) -> Result<(), StateError> {
    if node.id.is_empty() {
        return Err(StateError::Invalid("node has no ID".into()));
    }
    let existing = s.nodes.get(&node.id).cloned();
    let was_ready = existing.as_ref().is_some_and(|n| n.ready());
    match &existing {
        Some(ex) => {
            // Drain and eligibility are operator state, not fingerprint.
            node.create_index = ex.create_index;
            node.drain_strategy = ex.drain_strategy.clone();
            node.scheduling_eligibility = ex.scheduling_eligibility.clone();
            node.last_drain = ex.last_drain.clone();
            // The node's history is kept; what the register brings is appended.
            let new = std::mem::replace(&mut node.events, ex.events.clone());
            for e in new {
                push_event(&mut node, Some(e), index);
            }
        }
        None => {
            node.create_index = index;
            for e in node.events.iter_mut() {
                e.create_index = index;
            }
            if node.scheduling_eligibility.is_empty() {
                node.scheduling_eligibility = "eligible".into();
            }
        }
    }
    if node.status.is_empty() {
        node.status = node_status::INITIALIZING.into();
    }
    node.drain = node.drain_strategy.is_some();
    put_node(s, index, node, was_ready, out);
    Ok(())
}

/// Node events kept per node (Nomad keeps 10).
pub const NODE_EVENTS_KEPT: usize = 10;

fn push_event(n: &mut Node, event: Option<drover_types::node::NodeEvent>, index: u64) {
    if let Some(mut e) = event {
        e.create_index = index;
        n.events.push(e);
        let excess = n.events.len().saturating_sub(NODE_EVENTS_KEPT);
        n.events.drain(..excess);
    }
}

fn upsert_evals(
    s: &mut StateSnapshot,
    index: u64,
    evals: Vec<Evaluation>,
    out: &mut ApplyOutcome,
) -> Result<(), StateError> {
    for mut e in evals {
        if e.id.is_empty() {
            return Err(StateError::Invalid("evaluation has no ID".into()));
        }
        if e.namespace.is_empty() {
            e.namespace = DEFAULT_NAMESPACE.into();
        }
        e.create_index = s.evals.get(&e.id).map_or(index, |x| x.create_index);
        e.modify_index = index;

        // Queued counts come from the scheduler through the evaluation.
        if !e.queued_allocations.is_empty() {
            let key = (e.namespace.clone(), e.job_id.clone());
            if let Some(sum) = s.job_summaries.get(&key).cloned() {
                let mut sum = (*sum).clone();
                let mut changed = false;
                for (tg, q) in &e.queued_allocations {
                    if let Some(g) = sum.summary.get_mut(tg)
                        && g.queued != *q
                    {
                        g.queued = *q;
                        changed = true;
                    }
                }
                if changed {
                    sum.modify_index = index;
                    s.job_summaries.insert(key, Arc::new(sum));
                    s.touch(Table::JobSummaries, index);
                }
            }
        }

        match e.status.as_str() {
            eval_status::PENDING => out.evals_to_enqueue.push(e.id.clone()),
            eval_status::BLOCKED => out.evals_to_block.push(e.id.clone()),
            eval_status::COMPLETE if e.failed_tg_allocs.is_empty() => {
                cancel_blocked(s, index, &e, out);
                out.jobs_to_untrack.push((e.namespace.clone(), e.job_id.clone()));
            }
            _ => {}
        }
        s.put_eval(Arc::new(e));
        s.touch(Table::Evals, index);
    }
    Ok(())
}

/// A complete evaluation that placed everything cancels the job's blocked evaluations.
fn cancel_blocked(s: &mut StateSnapshot, index: u64, done: &Evaluation, out: &mut ApplyOutcome) {
    let blocked: Vec<Arc<Evaluation>> = s
        .evals_by_job(&done.namespace, &done.job_id)
        .into_iter()
        .filter(|b| b.status == eval_status::BLOCKED && b.id != done.id)
        .collect();
    for b in blocked {
        let mut b = (*b).clone();
        b.status = eval_status::CANCELED.into();
        b.status_description = format!("evaluation {:?} successful", done.id);
        b.modify_index = index;
        out.evals_to_block.retain(|id| id != &b.id);
        out.evals_canceled.push(b.id.clone());
        s.put_eval(Arc::new(b));
    }
}

/// Moves an allocation between summary buckets (`old = None`: a new allocation leaves the
/// queue).
fn update_summary(s: &mut StateSnapshot, index: u64, old: Option<&Allocation>, new: &Allocation) {
    if old.is_some_and(|o| o.client_status == new.client_status) {
        return;
    }
    let key = (new.namespace.clone(), new.job_id.clone());
    let Some(sum) = s.job_summaries.get(&key).cloned() else {
        return;
    };
    let mut sum = (*sum).clone();
    let g = sum.summary.entry(new.task_group.clone()).or_default();
    match old {
        None => {
            if g.queued > 0 {
                g.queued -= 1;
            }
        }
        Some(o) => {
            if let Some(b) = summary_bucket(g, &o.client_status)
                && *b > 0
            {
                *b -= 1;
            }
        }
    }
    if let Some(b) = summary_bucket(g, &new.client_status) {
        *b += 1;
    }
    sum.modify_index = index;
    s.job_summaries.insert(key, Arc::new(sum));
    s.touch(Table::JobSummaries, index);
}

fn stop_alloc(s: &mut StateSnapshot, index: u64, diff: AllocStopDiff, out: &mut ApplyOutcome) {
    let Some(old) = s.allocs.get(&diff.id).cloned() else {
        // Garbage-collected since the plan was made.
        return;
    };
    let mut a = (*old).clone();
    a.desired_status = desired_status::STOP.into();
    a.desired_description = diff.desired_description;
    // The server sets the client status only to mark an allocation lost or unknown.
    if diff.client_status == client_status::LOST || diff.client_status == client_status::UNKNOWN {
        a.client_status = diff.client_status;
    }
    if !diff.followup_eval_id.is_empty() {
        a.followup_eval_id = diff.followup_eval_id;
    }
    if diff.modify_time != 0 {
        a.modify_time = diff.modify_time;
    }
    a.modify_index = index;
    a.alloc_modify_index = index;
    update_summary(s, index, Some(&old), &a);
    if !old.terminal() {
        out.nodes_with_capacity.push(a.node_id.clone());
    }
    s.put_alloc(Arc::new(a));
    s.touch(Table::Allocs, index);
}

fn preempt_alloc(s: &mut StateSnapshot, index: u64, diff: AllocPreemptDiff) {
    let Some(old) = s.allocs.get(&diff.id).cloned() else {
        return;
    };
    let mut a = (*old).clone();
    a.desired_status = desired_status::EVICT.into();
    a.desired_description = format!("Preempted by alloc ID {}", diff.preempted_by_allocation);
    a.preempted_by_allocation = diff.preempted_by_allocation;
    if diff.modify_time != 0 {
        a.modify_time = diff.modify_time;
    }
    a.modify_index = index;
    a.alloc_modify_index = index;
    s.put_alloc(Arc::new(a));
    s.touch(Table::Allocs, index);
}

fn place_alloc(
    s: &mut StateSnapshot,
    index: u64,
    mut a: Allocation,
    plan_job: Option<&Arc<Job>>,
) -> Result<(), StateError> {
    if a.id.is_empty() {
        return Err(StateError::Invalid("allocation has no ID".into()));
    }
    if a.namespace.is_empty() {
        a.namespace = DEFAULT_NAMESPACE.into();
    }
    let existing = s.allocs.get(&a.id).cloned();
    if a.job.is_none() {
        a.job = plan_job
            .filter(|j| j.id == a.job_id && j.namespace == a.namespace)
            .cloned()
            .or_else(|| existing.as_ref().and_then(|e| e.job.clone()))
            .or_else(|| s.job(&a.namespace, &a.job_id));
    }
    match &existing {
        Some(ex) => {
            // In-place update: the client's fields stay the client's.
            a.create_index = ex.create_index;
            if a.create_time == 0 {
                a.create_time = ex.create_time;
            }
            if a.client_status != client_status::LOST && a.client_status != client_status::UNKNOWN {
                a.client_status = ex.client_status.clone();
                a.client_description = ex.client_description.clone();
            }
            a.task_states = ex.task_states.clone();
            if a.network_status.is_none() {
                a.network_status = ex.network_status.clone();
            }
            if a.deployment_status.is_none() {
                a.deployment_status = ex.deployment_status.clone();
            }
        }
        None => {
            a.create_index = index;
            if a.client_status.is_empty() {
                a.client_status = client_status::PENDING.into();
            }
            if a.desired_status.is_empty() {
                a.desired_status = desired_status::RUN.into();
            }
        }
    }
    a.modify_index = index;
    a.alloc_modify_index = index;
    update_summary(s, index, existing.as_deref(), &a);
    // New allocations count as placed in their deployment, and so do existing ones an
    // in-place update moved into a new deployment (with their health, which carries over).
    let moved = existing
        .as_ref()
        .is_some_and(|ex| ex.deployment_id != a.deployment_id && !a.deployment_id.is_empty());
    if existing.is_none() || moved {
        count_in_deployment(s, index, &a, DeploymentCount::Placed);
    }
    if moved {
        match a.deployment_status.as_ref().and_then(|d| d.healthy) {
            Some(true) => count_in_deployment(s, index, &a, DeploymentCount::Healthy),
            Some(false) => count_in_deployment(s, index, &a, DeploymentCount::Unhealthy),
            None => {}
        }
    }
    if existing.is_none()
        && !a.previous_allocation.is_empty()
        && let Some(prev) = s.allocs.get(&a.previous_allocation).cloned()
    {
        let mut prev = (*prev).clone();
        prev.next_allocation = a.id.clone();
        prev.modify_index = index;
        s.put_alloc(Arc::new(prev));
    }
    s.put_alloc(Arc::new(a));
    s.touch(Table::Allocs, index);
    Ok(())
}

fn client_update(s: &mut StateSnapshot, index: u64, upd: Allocation, out: &mut ApplyOutcome) {
    let Some(old) = s.allocs.get(&upd.id).cloned() else {
        // Garbage-collected while the update was in flight.
        return;
    };
    let mut a = (*old).clone();
    if !upd.task_states.is_empty() {
        a.task_states = upd.task_states;
    }
    if !upd.client_status.is_empty() {
        a.client_status = upd.client_status;
    }
    a.client_description = upd.client_description;
    if upd.deployment_status.is_some() {
        a.deployment_status = upd.deployment_status;
    }
    if upd.network_status.is_some() {
        a.network_status = upd.network_status;
    }
    if upd.modify_time != 0 {
        a.modify_time = upd.modify_time;
    }
    a.modify_index = index;
    update_summary(s, index, Some(&old), &a);
    let health = |x: &Allocation| x.deployment_status.as_ref().and_then(|d| d.healthy);
    match (health(&old), health(&a)) {
        (None, Some(true)) => count_in_deployment(s, index, &a, DeploymentCount::Healthy),
        (None, Some(false)) => count_in_deployment(s, index, &a, DeploymentCount::Unhealthy),
        _ => {}
    }
    if a.client_terminal() && !old.client_terminal() {
        out.nodes_with_capacity.push(a.node_id.clone());
    }
    s.put_alloc(Arc::new(a));
    s.touch(Table::Allocs, index);
}

fn upsert_deployment(s: &mut StateSnapshot, index: u64, mut d: Deployment) -> Result<(), StateError> {
    if d.id.is_empty() {
        return Err(StateError::Invalid("deployment has no ID".into()));
    }
    if d.namespace.is_empty() {
        d.namespace = DEFAULT_NAMESPACE.into();
    }
    d.create_index = s.deployments.get(&d.id).map_or(index, |x| x.create_index);
    d.modify_index = index;
    s.put_deployment(Arc::new(d));
    s.touch(Table::Deployments, index);
    Ok(())
}

enum DeploymentCount {
    Placed,
    Healthy,
    Unhealthy,
}

/// Counts an allocation in its deployment's group state (placed, healthy or unhealthy).
fn count_in_deployment(s: &mut StateSnapshot, index: u64, a: &Allocation, what: DeploymentCount) {
    if a.deployment_id.is_empty() {
        return;
    }
    let Some(d) = s.deployments.get(&a.deployment_id).cloned() else {
        return;
    };
    let mut d = (*d).clone();
    let g = d.task_groups.entry(a.task_group.clone()).or_default();
    match what {
        DeploymentCount::Placed => {
            g.placed_allocs += 1;
            if a.deployment_status.as_ref().is_some_and(|x| x.canary) {
                g.placed_canaries.push(a.id.clone());
            }
        }
        DeploymentCount::Healthy => g.healthy_allocs += 1,
        DeploymentCount::Unhealthy => g.unhealthy_allocs += 1,
    }
    d.modify_index = index;
    s.put_deployment(Arc::new(d));
    s.touch(Table::Deployments, index);
}
