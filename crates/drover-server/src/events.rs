//! The event stream behind `GET /v1/event/stream`: what each applied command changed, as
//! Nomad-shaped events.
//!
//! ```text
//!  Server::apply(cmd) ──▶ Raft ──▶ outcome ──▶ events_for(cmd, snapshot after) ──▶ EventBuffer
//!                                                             ring of recent batches ──┬─ backlog (index ≥ N)
//!                                                                 broadcast channel ──┴─ live
//! ```
//!
//! One [`EventBatch`] per Raft index. Events carry the object *after* the change as their
//! payload (`{"Job": …}`, `{"Allocation": …}` without its embedded job, `{"Evaluation": …}`,
//! `{"Node": …}`, `{"Deployment": …}`), `Key` = the object's ID, and `FilterKeys` = job ID and
//! deployment ID for allocations and evaluations, so `topic=Allocation:web` matches.
//!
//! Limitations: events are produced by the server that applied the write (the leader in a
//! single-server cluster); the buffer keeps the last [`BUFFER_BATCHES`] batches in memory only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use drover_state::{Command, StateSnapshot};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Batches kept for `index=` replays.
pub const BUFFER_BATCHES: usize = 1024;

/// One event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// `Job`, `Allocation`, `Evaluation`, `Node`, `Deployment`.
    pub topic: &'static str,
    /// `JobRegistered`, `PlanResult`, ...
    #[serde(rename = "Type")]
    pub event_type: &'static str,
    /// The object's ID.
    pub key: String,
    /// Its namespace ("" for nodes).
    pub namespace: String,
    /// Other keys a topic filter may match.
    pub filter_keys: Vec<String>,
    /// Raft index.
    pub index: u64,
    /// `{"<Topic>": object}`.
    pub payload: Value,
}

/// The events of one Raft index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventBatch {
    /// Raft index.
    pub index: u64,
    /// Events.
    pub events: Vec<Event>,
}

/// Recent batches plus a live channel.
#[derive(Debug)]
pub struct EventBuffer {
    recent: Mutex<VecDeque<Arc<EventBatch>>>,
    live: broadcast::Sender<Arc<EventBatch>>,
}

impl Default for EventBuffer {
    fn default() -> Self {
        EventBuffer {
            recent: Mutex::new(VecDeque::new()),
            live: broadcast::Sender::new(1024),
        }
    }
}

impl EventBuffer {
    /// Publishes a batch (empty batches are dropped).
    pub fn publish(&self, batch: EventBatch) {
        if batch.events.is_empty() {
            return;
        }
        let batch = Arc::new(batch);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back(batch.clone());
        while recent.len() > BUFFER_BATCHES {
            recent.pop_front();
        }
        // No subscriber is fine.
        let _ = self.live.send(batch);
    }

    /// Batches at or after `index` still buffered, and a receiver for what follows. Subscribe
    /// happens under the buffer lock, so nothing falls between backlog and live.
    pub fn subscribe(&self, index: u64) -> (Vec<Arc<EventBatch>>, broadcast::Receiver<Arc<EventBatch>>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        let backlog = recent
            .iter()
            .filter(|b| b.index >= index && index > 0)
            .cloned()
            .collect();
        (backlog, rx)
    }
}

fn payload<T: Serialize>(topic: &str, v: &T) -> Value {
    let mut inner = serde_json::to_value(v).unwrap_or(Value::Null);
    if topic == "Allocation"
        && let Some(o) = inner.as_object_mut()
    {
        o.remove("Job");
    }
    json!({ topic: inner })
}

fn alloc_event(snap: &StateSnapshot, id: &str, ty: &'static str, index: u64) -> Option<Event> {
    let a = snap.alloc(id)?;
    Some(Event {
        topic: "Allocation",
        event_type: ty,
        key: a.id.clone(),
        namespace: a.namespace.clone(),
        filter_keys: vec![a.job_id.clone(), a.deployment_id.clone()],
        index,
        payload: payload("Allocation", a.as_ref()),
    })
}

fn eval_event(snap: &StateSnapshot, id: &str, index: u64) -> Option<Event> {
    let e = snap.eval(id)?;
    Some(Event {
        topic: "Evaluation",
        event_type: "EvaluationUpdated",
        key: e.id.clone(),
        namespace: e.namespace.clone(),
        filter_keys: vec![e.job_id.clone(), e.deployment_id.clone()],
        index,
        payload: payload("Evaluation", e.as_ref()),
    })
}

fn node_event(snap: &StateSnapshot, id: &str, ty: &'static str, index: u64) -> Option<Event> {
    let n = snap.node(id)?;
    let mut n = (*n).clone();
    n.secret_id.clear();
    Some(Event {
        topic: "Node",
        event_type: ty,
        key: n.id.clone(),
        namespace: String::new(),
        filter_keys: Vec::new(),
        index,
        payload: payload("Node", &n),
    })
}

fn job_event(snap: &StateSnapshot, ns: &str, id: &str, ty: &'static str, index: u64) -> Event {
    let ns = if ns.is_empty() { "default" } else { ns };
    let body = match snap.job(ns, id) {
        Some(j) => json!({ "Job": serde_json::to_value(j.as_ref()).unwrap_or(Value::Null) }),
        None => json!({ "Job": null, "Deleted": true }),
    };
    Event {
        topic: "Job",
        event_type: ty,
        key: id.to_string(),
        namespace: ns.to_string(),
        filter_keys: Vec::new(),
        index,
        payload: body,
    }
}

/// The events of one applied command, read from the snapshot after it.
pub fn events_for(cmd: &Command, snap: &StateSnapshot, index: u64) -> EventBatch {
    let mut ev: Vec<Event> = Vec::new();
    let evals = |ids: &mut dyn Iterator<Item = &String>, ev: &mut Vec<Event>| {
        for id in ids {
            ev.extend(eval_event(snap, id, index));
        }
    };
    match cmd {
        Command::UpsertJob { job, eval } => {
            ev.push(job_event(snap, &job.namespace, &job.id, "JobRegistered", index));
            evals(&mut eval.iter().map(|e| &e.id), &mut ev);
        }
        Command::DeregisterJob {
            namespace,
            job_id,
            eval,
            ..
        } => {
            ev.push(job_event(snap, namespace, job_id, "JobDeregistered", index));
            evals(&mut eval.iter().map(|e| &e.id), &mut ev);
        }
        Command::UpsertNode { node } => ev.extend(node_event(snap, &node.id, "NodeRegistration", index)),
        Command::UpdateNodeStatus { id, evals: e, .. } => {
            ev.extend(node_event(snap, id, "NodeStreamEvent", index));
            evals(&mut e.iter().map(|e| &e.id), &mut ev);
        }
        Command::UpdateNodeEligibility { id, evals: e, .. } => {
            ev.extend(node_event(snap, id, "NodeEligibility", index));
            evals(&mut e.iter().map(|e| &e.id), &mut ev);
        }
        Command::UpdateNodeDrain { id, evals: e, .. } => {
            ev.extend(node_event(snap, id, "NodeDrain", index));
            evals(&mut e.iter().map(|e| &e.id), &mut ev);
        }
        Command::DeleteNodes { ids } => {
            for id in ids {
                ev.push(Event {
                    topic: "Node",
                    event_type: "NodeDeregistration",
                    key: id.clone(),
                    namespace: String::new(),
                    filter_keys: Vec::new(),
                    index,
                    payload: json!({ "Node": { "ID": id } }),
                });
            }
        }
        Command::UpsertEvals { evals: e } => evals(&mut e.iter().map(|e| &e.id), &mut ev),
        Command::ApplyPlanResults {
            allocs_updated,
            allocs_stopped,
            allocs_preempted,
            deployment,
            eval_id,
            preemption_evals,
            ..
        } => {
            for id in allocs_updated
                .iter()
                .map(|a| &a.id)
                .chain(allocs_stopped.iter().map(|d| &d.id))
                .chain(allocs_preempted.iter().map(|d| &d.id))
            {
                ev.extend(alloc_event(snap, id, "PlanResult", index));
            }
            if let Some(d) = deployment
                && let Some(d) = snap.deployment(&d.id)
            {
                ev.push(Event {
                    topic: "Deployment",
                    event_type: "DeploymentStatusUpdate",
                    key: d.id.clone(),
                    namespace: d.namespace.clone(),
                    filter_keys: vec![d.job_id.clone()],
                    index,
                    payload: payload("Deployment", d.as_ref()),
                });
            }
            evals(
                &mut std::iter::once(eval_id).chain(preemption_evals.iter().map(|e| &e.id)),
                &mut ev,
            );
        }
        Command::UpdateAllocsFromClient { allocs, evals: e } => {
            for a in allocs {
                ev.extend(alloc_event(snap, &a.id, "AllocationUpdated", index));
            }
            evals(&mut e.iter().map(|e| &e.id), &mut ev);
        }
        Command::UpdateAllocDesiredTransition { allocs, evals: e } => {
            for id in allocs.keys() {
                ev.extend(alloc_event(snap, id, "AllocationUpdateDesiredStatus", index));
            }
            evals(&mut e.iter().map(|e| &e.id), &mut ev);
        }
        Command::UpsertDeployment { deployment } => {
            if let Some(d) = snap.deployment(&deployment.id) {
                ev.push(Event {
                    topic: "Deployment",
                    event_type: "DeploymentStatusUpdate",
                    key: d.id.clone(),
                    namespace: d.namespace.clone(),
                    filter_keys: vec![d.job_id.clone()],
                    index,
                    payload: payload("Deployment", d.as_ref()),
                });
            }
        }
        Command::Batch { commands } => {
            for c in commands {
                ev.extend(events_for(c, snap, index).events);
            }
        }
        Command::UpdateJobStability {
            namespace, job_id, ..
        } => {
            ev.push(job_event(snap, namespace, job_id, "JobRegistered", index));
        }
        Command::DeleteEvals { .. }
        | Command::SetSchedulerConfig { .. }
        | Command::DeleteAllocs { .. }
        | Command::DeleteDeployments { .. } => {}
    }
    EventBatch { index, events: ev }
}
