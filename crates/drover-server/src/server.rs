//! [`Server`]: one server agent — the replicated log, the leader's duties and the workers.
//!
//! ```text
//!  HTTP / RPC ──▶ Server::{register_job, register_node, heartbeat, ...}
//!                   │ build Command (+ evals) ──▶ Log::write ──▶ ApplyOutcome ──▶ react():
//!                   │                                     pending evals → EvalBroker
//!                   │                                     blocked evals → BlockedEvals
//!                   │                                     capacity freed → unblock → EvalBroker
//!                   ▼                                     events → EventBuffer
//!  workers (N tasks) ── dequeue ── snapshot ≥ wait index ── scheduler (blocking thread)
//!        └─ WorkerPlanner::submit_plan ─▶ PlanQueue ─▶ plan applier (leader task):
//!              evaluate_plan(latest snapshot) ─▶ Log::write(ApplyPlanResults) ─▶ result
//!  leader tasks: plan applier · heartbeat reaper · failed-eval reaper · cancel reaper ·
//!                unblock-failed timer · core GC timers   (started on leadership, stopped on loss)
//! ```
//!
//! Guarantees: every change goes through [`Log::write`] (Raft); the broker, blocked tracker
//! and plan queue run only while this server leads and are refilled from the state store when
//! it becomes leader; a plan is committed only for nodes that still fit.
//!
//! Limitations (see `docs/architecture/server.md`): followers do not forward writes or run
//! workers yet (single-server clusters); the plan applier evaluates one plan at a time (no
//! optimistic pipelining); the drainer migrates by `migrate.max_parallel` without waiting for
//! deployment health.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_scheduler::core::GcThresholds;
use drover_scheduler::{Env, Planner, SchedulerError, State, Submitted};
use drover_state::{ApplyOutcome, Command, StateSnapshot, Table};
use drover_types::alloc::{DesiredTransition, client_status};
use drover_types::eval::eval_status;
use drover_types::job::job_type;
use drover_types::node::{DrainStrategy, node_status};
use drover_types::{Evaluation, Job, Node, Plan, PlanResult, SchedulerConfiguration};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::api::*;
use crate::blocked::{BlockOutcome, BlockedEvals};
use crate::broker::{BrokerConfig, EvalBroker, FAILED_QUEUE};
use crate::events::{EventBuffer, events_for};
use crate::log::Log;
use crate::plan_apply::evaluate_plan;
use crate::{ServerError, now_unix};

/// Heartbeat tunables (`reference/server-and-scheduler.md` §12.1).
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// Smallest TTL handed to a client.
    pub min_ttl: Duration,
    /// TTLs grow so the leader handles at most this many heartbeats per second.
    pub max_per_second: f64,
    /// Extra time the leader waits past the TTL before marking a node down.
    pub grace: Duration,
    /// TTL given to every node when a server becomes leader.
    pub failover_ttl: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            min_ttl: Duration::from_secs(10),
            max_per_second: 50.0,
            grace: Duration::from_secs(10),
            failover_ttl: Duration::from_secs(300),
        }
    }
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Agent name.
    pub name: String,
    /// Region (`global`).
    pub region: String,
    /// Datacenter (`dc1`).
    pub datacenter: String,
    /// Advertised RPC address (`127.0.0.1:4647`).
    pub rpc_addr: String,
    /// Scheduler workers (default: number of cores).
    pub num_schedulers: usize,
    /// Broker tunables.
    pub broker: BrokerConfig,
    /// Heartbeat tunables.
    pub heartbeat: HeartbeatConfig,
    /// How often the core GC jobs run.
    pub gc_interval: Duration,
    /// GC age thresholds.
    pub gc_thresholds: GcThresholds,
    /// Largest `count` a group may ask for (the same limit job validation applies).
    pub max_count: i64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "drover".into(),
            region: "global".into(),
            datacenter: "dc1".into(),
            rpc_addr: "127.0.0.1:4647".into(),
            num_schedulers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            broker: BrokerConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            gc_interval: Duration::from_secs(300),
            gc_thresholds: GcThresholds::default(),
            max_count: 100_000,
        }
    }
}

struct PendingPlan {
    priority: i64,
    seq: u64,
    plan: Plan,
    reply: oneshot::Sender<Result<PlanResult, ServerError>>,
}

impl PartialEq for PendingPlan {
    fn eq(&self, o: &Self) -> bool {
        self.priority == o.priority && self.seq == o.seq
    }
}
impl Eq for PendingPlan {}
impl PartialOrd for PendingPlan {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for PendingPlan {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Max-heap: higher priority first, then the earlier submission.
        self.priority.cmp(&o.priority).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct PlanQueue {
    enabled: bool,
    seq: u64,
    heap: BinaryHeap<PendingPlan>,
}

struct Inner {
    config: ServerConfig,
    log: Arc<dyn Log>,
    broker: Arc<EvalBroker>,
    blocked: Mutex<BlockedEvals>,
    plans: Mutex<PlanQueue>,
    plans_ready: Notify,
    /// node ID → when its TTL (plus grace) runs out.
    heartbeats: Mutex<HashMap<String, Instant>>,
    events: EventBuffer,
    /// Evaluations to write as canceled (superseded blocked evals).
    to_cancel: Mutex<Vec<Arc<Evaluation>>>,
    /// Bumped on every leadership gain or loss; leader tasks stop when it moves.
    term: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    stats: Mutex<ServerStats>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Plans applied.
    pub plans_applied: u64,
    /// Plans with at least one rejected node.
    pub plans_partial: u64,
    /// Evaluations processed by workers.
    pub evals_processed: u64,
    /// Evaluations nacked by workers.
    pub evals_nacked: u64,
    /// Nodes marked down after a missed heartbeat.
    pub heartbeats_missed: u64,
}

/// A server agent. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.inner.config.name)
            .finish()
    }
}

/// A node event stamped now (subsystem `Cluster`, as the servers' own events are in Nomad).
fn node_event(message: &str) -> drover_types::node::NodeEvent {
    drover_types::node::NodeEvent {
        message: message.into(),
        subsystem: "Cluster".into(),
        timestamp: Some(drover_types::time::Timestamp(now_unix())),
        ..Default::default()
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

const SCHEDULERS: &[&str] = &[
    job_type::SERVICE,
    job_type::BATCH,
    job_type::SYSTEM,
    job_type::SYSBATCH,
    "_core",
];

impl Server {
    /// Starts the server's tasks on the current tokio runtime.
    pub fn start(config: ServerConfig, log: Arc<dyn Log>) -> Server {
        let broker = EvalBroker::new(config.broker.clone());
        let server = Server {
            inner: Arc::new(Inner {
                config,
                log,
                broker: broker.clone(),
                blocked: Mutex::new(BlockedEvals::new()),
                plans: Mutex::new(PlanQueue::default()),
                plans_ready: Notify::new(),
                heartbeats: Mutex::new(HashMap::new()),
                events: EventBuffer::default(),
                to_cancel: Mutex::new(Vec::new()),
                term: watch::Sender::new(0),
                shutdown: watch::Sender::new(false),
                stats: Mutex::new(ServerStats::default()),
            }),
        };
        tokio::spawn(broker.run_timers());
        tokio::spawn(server.clone().leadership_loop());
        for _ in 0..server.inner.config.num_schedulers.max(1) {
            tokio::spawn(server.clone().worker_loop());
        }
        server
    }

    /// Stops the workers and leader tasks (the log is shut down by its owner).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.term.send_modify(|t| *t += 1);
        self.revoke_leadership();
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<StateSnapshot> {
        self.inner.log.store().snapshot()
    }

    /// Whether this server leads.
    pub fn is_leader(&self) -> bool {
        *self.inner.log.leadership().borrow()
    }

    /// The leader's RPC address, when known.
    pub fn leader_addr(&self) -> Option<String> {
        self.inner.log.leader_addr()
    }

    /// Raft statistics.
    pub fn raft_stats(&self) -> Vec<(&'static str, String)> {
        self.inner.log.stats()
    }

    /// Broker counters.
    pub fn broker_stats(&self) -> crate::broker::BrokerStats {
        self.inner.broker.stats()
    }

    /// Blocked-evals counters.
    pub fn blocked_stats(&self) -> crate::blocked::BlockedStats {
        self.lock_blocked().stats()
    }

    /// Server counters.
    pub fn stats(&self) -> ServerStats {
        self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The event buffer (`/v1/event/stream`).
    pub fn events(&self) -> &EventBuffer {
        &self.inner.events
    }

    /// This server as a member (`/v1/agent/members`).
    pub fn members(&self) -> Vec<ServerMember> {
        let c = &self.inner.config;
        let (ip, port) = c
            .rpc_addr
            .rsplit_once(':')
            .unwrap_or((c.rpc_addr.as_str(), "4647"));
        let mut tags = BTreeMap::new();
        for (k, v) in [
            ("role", "nomad"),
            ("region", c.region.as_str()),
            ("dc", c.datacenter.as_str()),
            ("build", env!("CARGO_PKG_VERSION")),
            ("port", port),
            ("rpc_addr", ip),
            ("vsn", "1"),
            ("raft_vsn", "3"),
            ("bootstrap", "1"),
        ] {
            tags.insert(k.to_string(), v.to_string());
        }
        vec![ServerMember {
            name: format!("{}.{}", c.name, c.region),
            addr: ip.to_string(),
            port: 4648,
            tags,
            status: "alive".into(),
        }]
    }

    /// Waits until one of `tables` moved past `min_index` (or `wait` passed) and returns the
    /// snapshot to answer from: the blocking-query primitive.
    pub async fn wait_for_index(
        &self,
        tables: &[Table],
        min_index: u64,
        wait: Duration,
    ) -> Arc<StateSnapshot> {
        let mut applied = self.inner.log.applied();
        let deadline = Instant::now() + wait;
        loop {
            let snap = self.snapshot();
            let idx = tables.iter().map(|t| snap.table_index(*t)).max().unwrap_or(0);
            if min_index == 0 || idx > min_index {
                return snap;
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.snapshot(),
            }
        }
    }

    /// Waits until the state reached `index` (workers before scheduling, plan refresh).
    pub async fn snapshot_min_index(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<Arc<StateSnapshot>, ServerError> {
        let mut applied = self.inner.log.applied();
        let deadline = Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if snap.latest_index() >= index {
                return Ok(snap);
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(ServerError::Unavailable(format!(
                        "timed out waiting for state index {index} (at {})",
                        self.snapshot().latest_index()
                    )));
                }
            }
        }
    }

    // ------------------------------------------------------------------ the write path

    fn lock_blocked(&self) -> std::sync::MutexGuard<'_, BlockedEvals> {
        self.inner.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one command through the log and reacts to its outcome.
    pub async fn apply(&self, cmd: Command) -> Result<ApplyOutcome, ServerError> {
        if !self.is_leader() {
            return Err(ServerError::NoLeader {
                leader: self.leader_addr(),
            });
        }
        let for_events = cmd.clone();
        let out = self.inner.log.write(cmd).await?;
        let snap = self.snapshot();
        self.react(&out, &snap);
        self.inner
            .events
            .publish(events_for(&for_events, &snap, out.index));
        Ok(out)
    }

    fn react(&self, out: &ApplyOutcome, snap: &StateSnapshot) {
        let broker = &self.inner.broker;
        if !broker.enabled() {
            return;
        }
        let mut enqueue = Vec::new();
        for id in &out.evals_to_enqueue {
            if let Some(e) = snap.eval(id) {
                enqueue.push((e, String::new()));
            }
        }
        let mut blocked = self.lock_blocked();
        for id in &out.evals_canceled {
            blocked.untrack_eval(id);
        }
        for (ns, job) in &out.jobs_to_untrack {
            blocked.untrack(ns, job);
        }
        let mut cancel = Vec::new();
        for id in &out.evals_to_block {
            if let Some(e) = snap.eval(id) {
                match blocked.block(e.clone(), "") {
                    BlockOutcome::Superseded(old) => cancel.push(old),
                    BlockOutcome::Duplicate => cancel.push(e),
                    BlockOutcome::MissedUnblock => enqueue.push((e, String::new())),
                    BlockOutcome::Tracked | BlockOutcome::Disabled => {}
                }
            }
        }
        for node_id in &out.nodes_with_capacity {
            if let Some(n) = snap.node(node_id) {
                let class = node_class(&n);
                enqueue.extend(blocked.unblock(&class, out.index));
                enqueue.extend(blocked.unblock_node(node_id));
            }
        }
        drop(blocked);
        if !cancel.is_empty() {
            self.inner
                .to_cancel
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(cancel);
        }
        if !enqueue.is_empty() {
            broker.enqueue_all(enqueue);
        }
    }

    // ------------------------------------------------------------------ jobs

    fn check_job(&self, job: Option<Job>) -> Result<(Job, String), ServerError> {
        let Some(mut job) = job else {
            return Err(ServerError::BadRequest("Job must be specified".into()));
        };
        drover_types::canonicalize::canonicalize_job(&mut job);
        let warnings =
            drover_types::validate::validate_job(&job).map_err(|e| ServerError::Validation(e.to_string()))?;
        for tg in &job.task_groups {
            if tg.count > self.inner.config.max_count {
                return Err(ServerError::Validation(format!(
                    "1 error occurred:\n\t* Task group {} validation failed: count {} exceeds the maximum of {}\n\n",
                    tg.name, tg.count, self.inner.config.max_count
                )));
            }
        }
        let mut warnings = warnings;
        if let Some(p) = &job.periodic {
            let spec = p.spec.clone();
            if let Err(e) = crate::periodic::Cron::parse(&spec) {
                return Err(ServerError::Validation(format!(
                    "1 error occurred:\n\t* Periodic specification invalid: {spec:?}: {e}\n\n"
                )));
            }
            if !p.time_zone.is_empty() && p.time_zone != "UTC" {
                warnings.push(format!(
                    "periodic time_zone {:?} is not applied yet: the schedule is evaluated in UTC",
                    p.time_zone
                ));
            }
        }
        warnings.extend(unsupported_blocks(&job));
        Ok((job, warnings.join("\n")))
    }

    fn job_eval(job: &Job, triggered_by: &str, priority: i64, now: i64) -> Evaluation {
        Evaluation {
            id: new_id(),
            namespace: job.namespace.clone(),
            priority: if priority > 0 { priority } else { job.priority },
            eval_type: job.job_type.clone(),
            triggered_by: triggered_by.into(),
            job_id: job.id.clone(),
            status: eval_status::PENDING.into(),
            create_time: now,
            modify_time: now,
            ..Default::default()
        }
    }

    /// Registers (creates or updates) a job and creates its evaluation.
    pub async fn register_job(&self, req: JobRegisterRequest) -> Result<JobRegisterResponse, ServerError> {
        let (mut job, warnings) = self.check_job(req.job)?;
        let snap = self.snapshot();
        let existing = snap.job(&job.namespace, &job.id);
        if req.enforce_index {
            let current = existing.as_ref().map(|j| j.job_modify_index).unwrap_or(0);
            if req.job_modify_index == 0 && existing.is_some() {
                return Err(ServerError::Conflict(format!(
                    "Enforcing job modify index 0: job already exists with modify index {current}"
                )));
            }
            if req.job_modify_index != current {
                return Err(ServerError::Conflict(if existing.is_none() {
                    format!(
                        "Enforcing job modify index {}: job does not exist",
                        req.job_modify_index
                    )
                } else {
                    format!(
                        "Enforcing job modify index {}: job exists with conflicting job modify index: {current}",
                        req.job_modify_index
                    )
                }));
            }
        }
        if req.preserve_counts
            && let Some(ex) = &existing
        {
            for tg in job.task_groups.iter_mut() {
                if let Some(old) = ex.group(&tg.name) {
                    tg.count = old.count;
                }
            }
        }
        let now = now_unix();
        job.submit_time = now;
        let eval = (!job.is_periodic_or_parameterized())
            .then(|| Self::job_eval(&job, "job-register", req.eval_priority, now));
        let eval_id = eval.as_ref().map(|e| e.id.clone()).unwrap_or_default();
        let out = self.apply(Command::UpsertJob { job, eval }).await?;
        Ok(JobRegisterResponse {
            eval_create_index: if eval_id.is_empty() { 0 } else { out.index },
            eval_id,
            job_modify_index: out.job_modify_index.map(|(_, j)| j).unwrap_or(out.index),
            warnings,
            index: out.index,
        })
    }

    /// Stops (or purges) a job and creates its evaluation.
    pub async fn deregister_job(
        &self,
        namespace: &str,
        job_id: &str,
        purge: bool,
    ) -> Result<JobDeregisterResponse, ServerError> {
        let snap = self.snapshot();
        let Some(job) = snap.job(namespace, job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        let now = now_unix();
        let eval =
            (!job.is_periodic_or_parameterized()).then(|| Self::job_eval(&job, "job-deregister", 0, now));
        let eval_id = eval.as_ref().map(|e| e.id.clone()).unwrap_or_default();
        let out = self
            .apply(Command::DeregisterJob {
                namespace: job.namespace.clone(),
                job_id: job.id.clone(),
                purge,
                eval,
            })
            .await?;
        Ok(JobDeregisterResponse {
            eval_create_index: if eval_id.is_empty() { 0 } else { out.index },
            eval_id,
            job_modify_index: out.job_modify_index.map(|(_, j)| j).unwrap_or(out.index),
            index: out.index,
        })
    }

    /// Creates a new evaluation for a job (`job eval`); with `force_reschedule`, failed
    /// allocations are rescheduled now.
    pub async fn evaluate_job(
        &self,
        namespace: &str,
        job_id: &str,
        force_reschedule: bool,
    ) -> Result<JobRegisterResponse, ServerError> {
        let snap = self.snapshot();
        let Some(job) = snap.job(namespace, job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        if job.is_periodic_or_parameterized() {
            return Err(ServerError::BadRequest(
                "can't evaluate periodic or parameterized job".into(),
            ));
        }
        let now = now_unix();
        let mut eval = Self::job_eval(&job, "job-register", 0, now);
        eval.job_modify_index = job.job_modify_index;
        let eval_id = eval.id.clone();
        let cmd = if force_reschedule {
            let allocs = snap
                .allocs_by_job(&job.namespace, &job.id)
                .into_iter()
                .filter(|a| a.client_status == client_status::FAILED && a.desired_status == "run")
                .map(|a| {
                    (
                        a.id.clone(),
                        DesiredTransition {
                            force_reschedule: Some(true),
                            ..Default::default()
                        },
                    )
                })
                .collect();
            Command::UpdateAllocDesiredTransition {
                allocs,
                evals: vec![eval],
            }
        } else {
            Command::UpsertEvals { evals: vec![eval] }
        };
        let out = self.apply(cmd).await?;
        Ok(JobRegisterResponse {
            eval_id,
            eval_create_index: out.index,
            job_modify_index: job.job_modify_index,
            warnings: String::new(),
            index: out.index,
        })
    }

    /// Registers a child of a periodic or parameterized job: the parent's spec without its
    /// trigger, `ParentID` set, and its evaluation.
    async fn launch_child(&self, mut child: Job) -> Result<JobDispatchResponse, ServerError> {
        let now = now_unix();
        child.submit_time = now;
        let eval = Self::job_eval(
            &child,
            if child.dispatched {
                "job-register"
            } else {
                "periodic-job"
            },
            0,
            now,
        );
        let eval_id = eval.id.clone();
        let id = child.id.clone();
        let out = self
            .apply(Command::UpsertJob {
                job: child,
                eval: Some(eval),
            })
            .await?;
        Ok(JobDispatchResponse {
            dispatched_job_id: id,
            eval_id,
            eval_create_index: out.index,
            job_create_index: out.index,
            index: out.index,
        })
    }

    fn child_of(parent: &Job, id: String) -> Job {
        let mut child = parent.clone();
        child.id = id.clone();
        child.name = id;
        child.parent_id = parent.id.clone();
        child.periodic = None;
        child.parameterized_job = None;
        child.stop = false;
        child.status = String::new();
        child.stable = false;
        child
    }

    /// `PUT /v1/job/:id/periodic/force`: launches a periodic job's child now.
    pub async fn force_periodic(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> Result<JobDispatchResponse, ServerError> {
        let snap = self.snapshot();
        let Some(job) = snap.job(namespace, job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        if job.periodic.is_none() {
            return Err(ServerError::BadRequest(
                "can't force launch non-periodic job".into(),
            ));
        }
        if job.stop {
            return Err(ServerError::BadRequest("can't force launch a stopped job".into()));
        }
        let id = format!("{}/periodic-{}", job.id, now_unix() / 1_000_000_000);
        if snap.job(&job.namespace, &id).is_some() {
            return Err(ServerError::Conflict(format!(
                "job {id:?} was launched less than a second ago"
            )));
        }
        self.launch_child(Self::child_of(&job, id)).await
    }

    /// `PUT /v1/job/:id/dispatch`: creates a child of a parameterized job with its payload and
    /// metadata.
    pub async fn dispatch_job(
        &self,
        namespace: &str,
        job_id: &str,
        req: JobDispatchRequest,
    ) -> Result<JobDispatchResponse, ServerError> {
        let snap = self.snapshot();
        let Some(job) = snap.job(namespace, job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        let Some(param) = job.parameterized_job.as_ref() else {
            return Err(ServerError::BadRequest(format!(
                "Specified job {job_id:?} is not a parameterized job"
            )));
        };
        if job.stop {
            return Err(ServerError::BadRequest(format!(
                "Specified job {job_id:?} is stopped"
            )));
        }
        let payload = req.payload.filter(|p| !p.is_empty());
        match (param.payload.as_str(), &payload) {
            ("required", None) => {
                return Err(ServerError::BadRequest(
                    "Payload is not provided but required by parameterized job".into(),
                ));
            }
            ("forbidden", Some(_)) => {
                return Err(ServerError::BadRequest(
                    "Payload provided but forbidden by parameterized job".into(),
                ));
            }
            _ => {}
        }
        if let Some(p) = &payload
            && p.len() > 16 * 1024 * 4 / 3 + 4
        {
            return Err(ServerError::BadRequest(
                "Payload exceeds maximum size; 16384 bytes".into(),
            ));
        }
        let missing: Vec<&String> = param
            .meta_required
            .iter()
            .filter(|k| !req.meta.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(ServerError::BadRequest(format!(
                "Dispatch did not provide required meta keys: {missing:?}"
            )));
        }
        let unpermitted: Vec<&String> = req
            .meta
            .keys()
            .filter(|k| !param.meta_required.contains(k) && !param.meta_optional.contains(k))
            .collect();
        if !unpermitted.is_empty() {
            return Err(ServerError::BadRequest(format!(
                "Dispatch established unpermitted metadata keys: {unpermitted:?}"
            )));
        }
        if !req.idempotency_token.is_empty()
            && let Some(existing) = snap.jobs().into_iter().find(|j| {
                j.parent_id == job.id
                    && j.namespace == job.namespace
                    && j.dispatch_idempotency_token == req.idempotency_token
                    && !j.stop
            })
        {
            return Ok(JobDispatchResponse {
                dispatched_job_id: existing.id.clone(),
                job_create_index: existing.create_index,
                index: snap.latest_index(),
                ..Default::default()
            });
        }
        let suffix = &new_id()[..8];
        let id = format!("{}/dispatch-{}-{suffix}", job.id, now_unix() / 1_000_000_000);
        let mut child = Self::child_of(&job, id);
        child.dispatched = true;
        child.payload = payload;
        child.dispatch_idempotency_token = req.idempotency_token;
        child.meta.extend(req.meta);
        self.launch_child(child).await
    }

    /// `PUT /v1/job/:id/stable`: marks a version stable (or not). Returns the Raft index.
    pub async fn set_job_stability(
        &self,
        namespace: &str,
        job_id: &str,
        version: u64,
        stable: bool,
    ) -> Result<u64, ServerError> {
        let snap = self.snapshot();
        let Some(job) = snap.job(namespace, job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        if snap.job_by_version(&job.namespace, job_id, version).is_none() {
            return Err(ServerError::BadRequest(format!(
                "job {job_id:?} has no version {version}"
            )));
        }
        let out = self
            .apply(Command::UpdateJobStability {
                namespace: job.namespace.clone(),
                job_id: job_id.to_string(),
                version,
                stable,
            })
            .await?;
        Ok(out.index)
    }

    /// A dry run: what the scheduler would do with this job, against the current state,
    /// without changing anything.
    pub async fn plan_job(&self, req: JobPlanRequest) -> Result<JobPlanResponse, ServerError> {
        let (job, warnings) = self.check_job(req.job)?;
        let snap = self.snapshot();
        let existing = snap.job(&job.namespace, &job.id);
        let diff = req.diff.then(|| {
            let old = existing
                .as_ref()
                .and_then(|j| serde_json::to_value(j.as_ref()).ok());
            let new = serde_json::to_value(&job).ok();
            drover_types::diff::job_diff(old.as_ref(), new.as_ref(), false)
        });
        let job_modify_index = existing.as_ref().map(|j| j.job_modify_index).unwrap_or(0);
        // Apply the job to a private copy of the state (O(1) clone) and schedule against it.
        let private = drover_state::StateStore::from_snapshot((*snap).clone());
        let index = snap.latest_index() + 1;
        let now = now_unix();
        let mut eval = Self::job_eval(&job, "job-register", 0, now);
        eval.annotate_plan = true;
        private
            .apply(
                index,
                Command::UpsertJob {
                    job: job.clone(),
                    eval: Some(eval.clone()),
                },
            )
            .map_err(|e| crate::log::state_error(&e))?;
        let state: Arc<dyn State + Send + Sync> = private.snapshot();
        let result = tokio::task::spawn_blocking(move || {
            let mut planner = DryRun::default();
            let mut ids = new_id;
            let mut env = Env { now, ids: &mut ids };
            drover_scheduler::process(state, &mut planner, &eval, &mut env).map(|()| planner)
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?
        .map_err(|e| ServerError::Internal(e.to_string()))?;
        let mut annotations = result
            .plans
            .last()
            .and_then(|p| p.annotations.clone())
            .unwrap_or_default();
        // The CLI dereferences DesiredTGUpdates: always have an entry per group.
        for tg in &job.task_groups {
            annotations.desired_tg_updates.entry(tg.name.clone()).or_default();
        }
        let mut diff = diff;
        if let Some(d) = diff.as_mut() {
            annotate_diff(d, &annotations);
        }
        Ok(JobPlanResponse {
            annotations: Some(annotations),
            failed_tg_allocs: result
                .updated
                .last()
                .map(|e| e.failed_tg_allocs.clone())
                .unwrap_or_default(),
            job_modify_index,
            created_evals: result.created,
            diff,
            next_periodic_launch: None,
            warnings,
            index: snap.latest_index(),
        })
    }

    // ------------------------------------------------------------------ nodes

    fn heartbeat_ttl(&self) -> Duration {
        let hb = &self.inner.config.heartbeat;
        let n = self
            .inner
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len() as f64;
        let ttl = hb.min_ttl.max(Duration::from_secs_f64(n / hb.max_per_second));
        // Stagger: up to twice the base so heartbeats spread out.
        let jitter = rand_fraction();
        ttl + ttl.mul_f64(jitter)
    }

    fn reset_heartbeat(&self, node_id: &str) -> Duration {
        let ttl = self.heartbeat_ttl();
        let deadline = Instant::now() + ttl + self.inner.config.heartbeat.grace;
        self.inner
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string(), deadline);
        ttl
    }

    /// Registers a node (or refreshes its fingerprint).
    pub async fn register_node(&self, mut node: Node) -> Result<NodeUpdateResponse, ServerError> {
        if node.id.is_empty() {
            return Err(ServerError::BadRequest(
                "missing node ID for client registration".into(),
            ));
        }
        if node.datacenter.is_empty() {
            return Err(ServerError::BadRequest(
                "missing datacenter for client registration".into(),
            ));
        }
        if node.name.is_empty() {
            return Err(ServerError::BadRequest(
                "missing node name for client registration".into(),
            ));
        }
        if node.status.is_empty() {
            node.status = node_status::INITIALIZING.into();
        }
        if !matches!(
            node.status.as_str(),
            node_status::INITIALIZING | node_status::READY | node_status::DOWN | node_status::DISCONNECTED
        ) {
            return Err(ServerError::BadRequest(format!(
                "invalid status for node: {:?}",
                node.status
            )));
        }
        if node.scheduling_eligibility.is_empty() {
            node.scheduling_eligibility = "eligible".into();
        }
        if node.node_pool.is_empty() {
            node.node_pool = "default".into();
        }
        node.computed_class = drover_scheduler::feasible::computed_class(&node);
        let now = now_unix();
        node.status_updated_at = now / 1_000_000_000;
        let snap = self.snapshot();
        let old = snap.node(&node.id);
        if let Some(old) = &old
            && !old.secret_id.is_empty()
            && !node.secret_id.is_empty()
            && old.secret_id != node.secret_id
        {
            return Err(ServerError::BadRequest("node secret ID does not match".into()));
        }
        // A node that registers again (an agent restart) keeps its stored status: it changes
        // through heartbeats (`update_node_status`), so a restart does not flap the node.
        if let Some(o) = &old {
            node.status = o.status.clone();
        }
        let transition = match &old {
            None => node.status == node_status::READY,
            Some(o) => {
                o.status != node.status
                    || o.computed_class != node.computed_class
                    || o.datacenter != node.datacenter
                    || o.attributes != node.attributes
                    || o.meta != node.meta
                    || o.drivers != node.drivers
            }
        };
        let id = node.id.clone();
        node.events = vec![node_event(if old.is_some() {
            "Node re-registered"
        } else {
            "Node registered"
        })];
        let out = self.apply(Command::UpsertNode { node }).await?;
        let mut resp = NodeUpdateResponse {
            node_modify_index: out.index,
            index: out.index,
            leader_rpc_addr: self.leader_addr().unwrap_or_default(),
            ..Default::default()
        };
        if transition {
            self.create_node_evals(&id, now, &mut resp).await?;
        }
        resp.heartbeat_ttl = self.reset_heartbeat(&id).as_nanos() as i64;
        Ok(resp)
    }

    /// The node-update evaluations for a node: one per job with allocations there, plus one per
    /// system job that could run there.
    fn node_evals(snap: &StateSnapshot, node: &Node, now: i64) -> Vec<Evaluation> {
        let mut jobs: BTreeMap<(String, String), Arc<Job>> = BTreeMap::new();
        for a in snap.allocs_by_node(&node.id) {
            let Some(job) = snap.job(&a.namespace, &a.job_id) else {
                continue;
            };
            let skip = match job.job_type.as_str() {
                job_type::SERVICE => a.server_terminal() && a.client_terminal(),
                job_type::BATCH => a.client_terminal(),
                _ => true,
            };
            if !skip {
                jobs.insert((job.namespace.clone(), job.id.clone()), job);
            }
        }
        for job in snap.jobs() {
            if (job.job_type == job_type::SYSTEM || job.job_type == job_type::SYSBATCH)
                && !job.stop
                && (job.node_pool.is_empty() || job.node_pool == "all" || job.node_pool == node.node_pool)
                && job.datacenters.iter().any(|dc| glob_match(dc, &node.datacenter))
            {
                jobs.insert((job.namespace.clone(), job.id.clone()), job);
            }
        }
        jobs.into_values()
            .map(|job| {
                let mut e = Self::job_eval(&job, "node-update", 0, now);
                e.node_id = node.id.clone();
                e.node_modify_index = node.modify_index;
                e.job_modify_index = job.job_modify_index;
                e
            })
            .collect()
    }

    async fn create_node_evals(
        &self,
        node_id: &str,
        now: i64,
        resp: &mut NodeUpdateResponse,
    ) -> Result<(), ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Ok(());
        };
        let evals = Self::node_evals(&snap, &node, now);
        if evals.is_empty() {
            return Ok(());
        }
        resp.eval_ids = evals.iter().map(|e| e.id.clone()).collect();
        let out = self.apply(Command::UpsertEvals { evals }).await?;
        resp.eval_create_index = out.index;
        Ok(())
    }

    /// A client's heartbeat / status update.
    pub async fn update_node_status(
        &self,
        node_id: &str,
        status: &str,
    ) -> Result<NodeUpdateResponse, ServerError> {
        // Heartbeat timers live on the leader only.
        if !self.is_leader() {
            return Err(ServerError::NoLeader {
                leader: self.leader_addr(),
            });
        }
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        let mut status = status.to_string();
        if !matches!(
            status.as_str(),
            node_status::INITIALIZING | node_status::READY | node_status::DOWN | node_status::DISCONNECTED
        ) {
            return Err(ServerError::BadRequest(format!(
                "invalid status for node: {status:?}"
            )));
        }
        // A node coming back from a disconnect must resync its allocations first.
        if node.status == node_status::DISCONNECTED && status == node_status::READY {
            status = node_status::INITIALIZING.into();
        }
        let mut resp = NodeUpdateResponse {
            node_modify_index: node.modify_index,
            leader_rpc_addr: self.leader_addr().unwrap_or_default(),
            index: snap.latest_index(),
            ..Default::default()
        };
        if node.status != status {
            let now = now_unix();
            let wants_evals = status == node_status::DOWN
                || (status == node_status::READY && node.status != node_status::READY)
                || node.status == node_status::DISCONNECTED
                || status == node_status::DISCONNECTED;
            let mut changed = (*node).clone();
            changed.status = status.clone();
            let evals = if wants_evals {
                Self::node_evals(&snap, &changed, now)
            } else {
                Vec::new()
            };
            resp.eval_ids = evals.iter().map(|e| e.id.clone()).collect();
            let out = self
                .apply(Command::UpdateNodeStatus {
                    id: node_id.to_string(),
                    status: status.clone(),
                    updated_at: now / 1_000_000_000,
                    evals,
                    event: match status.as_str() {
                        node_status::DOWN => Some(node_event("Node heartbeat missed")),
                        node_status::READY if node.status != node_status::INITIALIZING => {
                            Some(node_event("Node reconnected"))
                        }
                        _ => None,
                    },
                })
                .await?;
            resp.node_modify_index = out.index;
            resp.index = out.index;
            if !resp.eval_ids.is_empty() {
                resp.eval_create_index = out.index;
            }
        }
        if status == node_status::DOWN {
            self.inner
                .heartbeats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(node_id);
        } else {
            resp.heartbeat_ttl = self.reset_heartbeat(node_id).as_nanos() as i64;
        }
        Ok(resp)
    }

    /// `PUT /v1/node/:id/evaluate`: a node-update evaluation for every job on (or for) the node.
    pub async fn evaluate_node(&self, node_id: &str) -> Result<NodeUpdateResponse, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        let mut resp = NodeUpdateResponse {
            node_modify_index: node.modify_index,
            index: snap.latest_index(),
            ..Default::default()
        };
        self.create_node_evals(node_id, now_unix(), &mut resp).await?;
        if resp.eval_create_index > 0 {
            resp.index = resp.eval_create_index;
        }
        Ok(resp)
    }

    /// `PUT /v1/node/:id/purge`: forgets the node; its jobs are re-evaluated so allocations
    /// there are replaced.
    pub async fn purge_node(&self, node_id: &str) -> Result<NodeUpdateResponse, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        let mut down = (*node).clone();
        down.status = node_status::DOWN.into();
        let evals = Self::node_evals(&snap, &down, now_unix());
        let eval_ids: Vec<String> = evals.iter().map(|e| e.id.clone()).collect();
        self.inner
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node_id);
        let out = self
            .apply(Command::DeleteNodes {
                ids: vec![node_id.to_string()],
            })
            .await?;
        let mut resp = NodeUpdateResponse {
            node_modify_index: out.index,
            index: out.index,
            ..Default::default()
        };
        if !evals.is_empty() {
            let e = self.apply(Command::UpsertEvals { evals }).await?;
            resp.eval_ids = eval_ids;
            resp.eval_create_index = e.index;
            resp.index = e.index;
        }
        Ok(resp)
    }

    /// `node eligibility -enable|-disable`.
    pub async fn update_node_eligibility(
        &self,
        node_id: &str,
        eligibility: &str,
    ) -> Result<NodeUpdateResponse, ServerError> {
        if eligibility != "eligible" && eligibility != "ineligible" {
            return Err(ServerError::BadRequest(format!(
                "invalid scheduling eligibility {eligibility:?}"
            )));
        }
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        if node.drain_strategy.is_some() && eligibility == "eligible" {
            return Err(ServerError::BadRequest(
                "can not set node's scheduling eligibility to eligible while it is draining".into(),
            ));
        }
        let now = now_unix();
        let evals = if eligibility == "eligible" && node.scheduling_eligibility != "eligible" {
            Self::node_evals(&snap, &node, now)
        } else {
            Vec::new()
        };
        let event = node_event(if eligibility == "eligible" {
            "Node marked as eligible for scheduling"
        } else {
            "Node marked as ineligible for scheduling"
        });
        self.node_write(evals, |evals| Command::UpdateNodeEligibility {
            id: node_id.to_string(),
            eligibility: eligibility.to_string(),
            evals,
            event: Some(event),
        })
        .await
    }

    /// Writes a node command that carries the evaluations it creates, and answers with the
    /// node's new modify index and those evaluations.
    async fn node_write(
        &self,
        evals: Vec<Evaluation>,
        command: impl FnOnce(Vec<Evaluation>) -> Command,
    ) -> Result<NodeUpdateResponse, ServerError> {
        let eval_ids: Vec<String> = evals.iter().map(|e| e.id.clone()).collect();
        let out = self.apply(command(evals)).await?;
        Ok(NodeUpdateResponse {
            eval_create_index: if eval_ids.is_empty() { 0 } else { out.index },
            eval_ids,
            node_modify_index: out.index,
            index: out.index,
            ..Default::default()
        })
    }

    /// Starts or stops draining a node.
    pub async fn update_node_drain(
        &self,
        node_id: &str,
        req: NodeDrainRequest,
    ) -> Result<NodeUpdateResponse, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        let now = now_unix();
        let drain_strategy = req.drain_spec.map(|spec| DrainStrategy {
            deadline: spec.deadline,
            ignore_system_jobs: spec.ignore_system_jobs,
            force_deadline: if spec.deadline > 0 {
                Some(drover_types::time::Timestamp(now + spec.deadline))
            } else {
                None
            },
            started_at: Some(drover_types::time::Timestamp(now)),
        });
        let evals = if drain_strategy.is_none() && req.mark_eligible {
            Self::node_evals(&snap, &node, now)
        } else {
            Vec::new()
        };
        let event = node_event(match (&drain_strategy, req.mark_eligible) {
            (Some(_), _) => "Node drain strategy set",
            (None, true) => "Node drain disabled",
            (None, false) => "Node drain stopped",
        });
        self.node_write(evals, |evals| Command::UpdateNodeDrain {
            id: node_id.to_string(),
            drain_strategy,
            mark_eligible: req.mark_eligible,
            evals,
            event: Some(event),
        })
        .await
    }

    /// Client allocation status updates (batched by the caller). Failed allocations get an
    /// `alloc-failure` evaluation per job so the scheduler can reschedule them.
    pub async fn update_allocs_from_client(
        &self,
        node_id: &str,
        allocs: Vec<drover_types::Allocation>,
    ) -> Result<u64, ServerError> {
        let snap = self.snapshot();
        let Some(node) = snap.node(node_id) else {
            return Err(ServerError::NotFound("node"));
        };
        if node.status == node_status::DOWN || node.status == node_status::DISCONNECTED {
            return Err(ServerError::BadRequest(format!(
                "node {node_id} is not allowed to update allocs while in status {}",
                node.status
            )));
        }
        let now = now_unix();
        let mut jobs: BTreeMap<(String, String), Evaluation> = BTreeMap::new();
        for upd in &allocs {
            let Some(stored) = snap.alloc(&upd.id) else {
                continue;
            };
            if stored.node_id != node_id {
                return Err(ServerError::BadRequest(format!(
                    "allocation {} is not on node {node_id}",
                    upd.id
                )));
            }
            let key = (stored.namespace.clone(), stored.job_id.clone());
            if jobs.contains_key(&key) {
                continue;
            }
            let job = snap.job(&stored.namespace, &stored.job_id);
            let trigger = match &job {
                None => Some("job-deregister"),
                Some(_)
                    if upd.client_status == client_status::FAILED && stored.followup_eval_id.is_empty() =>
                {
                    Some("alloc-failure")
                }
                Some(_)
                    if stored.client_status == client_status::UNKNOWN
                        && upd.client_status == client_status::RUNNING =>
                {
                    Some("reconnect")
                }
                _ => None,
            };
            if let (Some(trigger), Some(job)) = (trigger, job) {
                let mut e = Self::job_eval(&job, trigger, 0, now);
                e.job_modify_index = job.job_modify_index;
                jobs.insert(key, e);
            }
        }
        let allocs = allocs
            .into_iter()
            .map(|mut a| {
                a.modify_time = now;
                a
            })
            .collect();
        let out = self
            .apply(Command::UpdateAllocsFromClient {
                allocs,
                evals: jobs.into_values().collect(),
            })
            .await?;
        Ok(out.index)
    }

    /// Marks allocations to stop (`alloc stop`): migrate them and create an evaluation.
    pub async fn stop_alloc(&self, alloc_id: &str) -> Result<(String, u64), ServerError> {
        let snap = self.snapshot();
        let Some(a) = snap.alloc(alloc_id) else {
            return Err(ServerError::NotFound("alloc"));
        };
        let Some(job) = snap.job(&a.namespace, &a.job_id) else {
            return Err(ServerError::NotFound("job"));
        };
        let eval = Self::job_eval(&job, "alloc-stop", 0, now_unix());
        let eval_id = eval.id.clone();
        let mut allocs = BTreeMap::new();
        allocs.insert(
            a.id.clone(),
            DesiredTransition {
                migrate: Some(true),
                ..Default::default()
            },
        );
        let out = self
            .apply(Command::UpdateAllocDesiredTransition {
                allocs,
                evals: vec![eval],
            })
            .await?;
        Ok((eval_id, out.index))
    }

    // ------------------------------------------------------------------ operator

    /// Replaces the scheduler configuration (optionally check-and-set).
    pub async fn set_scheduler_config(
        &self,
        config: SchedulerConfiguration,
        cas_index: Option<u64>,
    ) -> Result<SchedulerSetConfigurationResponse, ServerError> {
        if !matches!(config.scheduler_algorithm.as_str(), "" | "binpack" | "spread") {
            return Err(ServerError::BadRequest(format!(
                "invalid scheduler algorithm {:?}: must be \"binpack\" or \"spread\"",
                config.scheduler_algorithm
            )));
        }
        let out = self
            .apply(Command::SetSchedulerConfig { config, cas_index })
            .await?;
        Ok(SchedulerSetConfigurationResponse {
            updated: out.applied,
            index: out.index,
        })
    }

    /// Runs every GC job now with a 1 ms threshold (`PUT /v1/system/gc`).
    pub async fn force_gc(&self) -> Result<(), ServerError> {
        for kind in ["eval-gc", "deployment-gc", "job-gc", "node-gc"] {
            let snap = self.snapshot();
            let d = drover_scheduler::core::gc(snap.as_ref(), kind, now_unix(), &GcThresholds::forced());
            self.reap(d).await?;
        }
        Ok(())
    }

    async fn reap(&self, d: drover_scheduler::core::GcDecision) -> Result<(), ServerError> {
        const BATCH: usize = 7281;
        for (ns, job) in d.jobs {
            self.apply(Command::DeregisterJob {
                namespace: ns,
                job_id: job,
                purge: true,
                eval: None,
            })
            .await?;
        }
        let mut allocs = d.allocs;
        let mut evals = d.evals;
        while !allocs.is_empty() || !evals.is_empty() {
            let a: Vec<String> = allocs.drain(..allocs.len().min(BATCH)).collect();
            let e: Vec<String> = evals.drain(..evals.len().min(BATCH)).collect();
            self.apply(Command::DeleteEvals { evals: e, allocs: a }).await?;
        }
        for chunk in d.deployments.chunks(BATCH) {
            self.apply(Command::DeleteDeployments { ids: chunk.to_vec() })
                .await?;
        }
        for chunk in d.nodes.chunks(BATCH) {
            self.apply(Command::DeleteNodes { ids: chunk.to_vec() }).await?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ leadership

    async fn leadership_loop(self) {
        let mut leadership = self.inner.log.leadership();
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut leading = false;
        loop {
            let now_leader = *leadership.borrow_and_update();
            if now_leader && !leading {
                leading = true;
                self.establish_leadership();
            } else if !now_leader && leading {
                leading = false;
                self.revoke_leadership();
            }
            tokio::select! {
                r = leadership.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    fn establish_leadership(&self) {
        self.inner.term.send_modify(|t| *t += 1);
        let term = *self.inner.term.borrow();
        {
            let mut q = self.inner.plans.lock().unwrap_or_else(|p| p.into_inner());
            q.enabled = true;
        }
        self.inner.broker.set_enabled(true);
        self.lock_blocked().set_enabled(true);
        // Refill the broker and the blocked tracker from the state store.
        let snap = self.snapshot();
        let mut enqueue = Vec::new();
        {
            let mut blocked = self.lock_blocked();
            for e in snap.evals() {
                match e.status.as_str() {
                    eval_status::PENDING => enqueue.push((e, String::new())),
                    eval_status::BLOCKED => {
                        blocked.block(e, "");
                    }
                    _ => {}
                }
            }
        }
        self.inner.broker.enqueue_all(enqueue);
        // Every live node gets the failover TTL.
        {
            let deadline = Instant::now() + self.inner.config.heartbeat.failover_ttl;
            let mut hb = self.inner.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
            hb.clear();
            for n in snap.nodes() {
                if n.status != node_status::DOWN {
                    hb.insert(n.id.clone(), deadline);
                }
            }
        }
        tokio::spawn(self.clone().plan_applier(term));
        tokio::spawn(self.clone().heartbeat_reaper(term));
        tokio::spawn(self.clone().failed_eval_reaper(term));
        tokio::spawn(self.clone().periodic_duties(term));
        tokio::spawn(self.clone().drainer(term));
        tokio::spawn(self.clone().deployment_watcher(term));
        tokio::spawn(self.clone().periodic_dispatcher(term));
        tracing::info!(name = %self.inner.config.name, "established leadership");
    }

    fn revoke_leadership(&self) {
        self.inner.term.send_modify(|t| *t += 1);
        let pending = {
            let mut q = self.inner.plans.lock().unwrap_or_else(|p| p.into_inner());
            q.enabled = false;
            std::mem::take(&mut q.heap)
        };
        for p in pending {
            let _ = p
                .reply
                .send(Err(ServerError::Unavailable("plan queue is disabled".into())));
        }
        self.inner.plans_ready.notify_waiters();
        self.inner.broker.set_enabled(false);
        self.lock_blocked().set_enabled(false);
        self.inner
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn still_leading(&self, term: u64) -> bool {
        *self.inner.term.borrow() == term
    }

    async fn leader_sleep(&self, term: u64, d: Duration) -> bool {
        let mut t = self.inner.term.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(d) => self.still_leading(term),
            _ = t.changed() => false,
        }
    }

    // ------------------------------------------------------------------ plan queue + applier

    /// Submits a plan for the leader's applier and waits for its result. The delivery's nack
    /// timer is paused while the plan waits.
    pub async fn submit_plan(&self, plan: Plan) -> Result<PlanResult, ServerError> {
        let broker = &self.inner.broker;
        broker
            .pause_nack_timeout(&plan.eval_id, &plan.eval_token)
            .map_err(|e| ServerError::BadRequest(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let eval_id = plan.eval_id.clone();
        let token = plan.eval_token.clone();
        {
            let mut q = self.inner.plans.lock().unwrap_or_else(|p| p.into_inner());
            if !q.enabled {
                return Err(ServerError::Unavailable("plan queue is disabled".into()));
            }
            q.seq += 1;
            let seq = q.seq;
            q.heap.push(PendingPlan {
                priority: plan.priority,
                seq,
                plan,
                reply: tx,
            });
        }
        self.inner.plans_ready.notify_one();
        let result = rx
            .await
            .unwrap_or_else(|_| Err(ServerError::Unavailable("plan queue is disabled".into())));
        let _ = broker.resume_nack_timeout(&eval_id, &token);
        result
    }

    async fn plan_applier(self, term: u64) {
        let mut term_rx = self.inner.term.subscribe();
        let mut last_result_index = 0u64;
        while self.still_leading(term) {
            let next = {
                let notified = self.inner.plans_ready.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let p = self
                    .inner
                    .plans
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .heap
                    .pop();
                match p {
                    Some(p) => p,
                    None => {
                        tokio::select! {
                            _ = notified => {}
                            _ = term_rx.changed() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                }
            };
            let min_index = last_result_index.max(next.plan.snapshot_index);
            let snap = match self.snapshot_min_index(min_index, Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = next.reply.send(Err(e));
                    continue;
                }
            };
            // Reject plans from a delivery that is no longer current.
            if let Err(e) = self
                .inner
                .broker
                .with_core(|b| b.outstanding(&next.plan.eval_id, &next.plan.eval_token))
            {
                let _ = next.reply.send(Err(ServerError::BadRequest(e.to_string())));
                continue;
            }
            let mut ids = new_id;
            let evaluated = evaluate_plan(&snap, &next.plan, now_unix(), &mut ids);
            let mut result = evaluated.result;
            for (node, why) in &evaluated.rejections {
                tracing::debug!(node = %node, reason = %why, eval = %next.plan.eval_id, "plan rejected on node");
            }
            {
                let mut st = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner());
                st.plans_applied += 1;
                if !evaluated.rejections.is_empty() {
                    st.plans_partial += 1;
                }
            }
            let Some(cmd) = evaluated.command else {
                let _ = next.reply.send(Ok(result));
                continue;
            };
            match self.apply(cmd).await {
                Ok(out) => {
                    result.alloc_index = out.index;
                    last_result_index = out.index;
                    if result.refresh_index != 0 {
                        result.refresh_index = result.refresh_index.max(out.index);
                    }
                    let _ = next.reply.send(Ok(result));
                }
                Err(e) => {
                    let _ = next.reply.send(Err(e));
                }
            }
        }
    }

    // ------------------------------------------------------------------ workers

    async fn worker_loop(self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut term = self.inner.term.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !self.inner.broker.enabled() {
                tokio::select! {
                    _ = term.changed() => {}
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
            let got = tokio::select! {
                g = self.inner.broker.dequeue(SCHEDULERS, Duration::from_millis(500)) => g,
                _ = shutdown.changed() => return,
            };
            let Some((eval, token)) = got else { continue };
            let ok = self.process_eval(eval.clone(), token.clone()).await;
            let mut st = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner());
            st.evals_processed += 1;
            if ok {
                drop(st);
                if let Err(e) = self.inner.broker.ack(&eval.id, &token) {
                    tracing::warn!(eval = %eval.id, error = %e, "ack failed");
                }
            } else {
                st.evals_nacked += 1;
                drop(st);
                let _ = self.inner.broker.nack(&eval.id, &token);
            }
        }
    }

    async fn process_eval(&self, eval: Arc<Evaluation>, token: String) -> bool {
        // Wait until the state has everything this evaluation's job has seen.
        let snap = self.snapshot();
        let wait_index = snap
            .evals_by_job(&eval.namespace, &eval.job_id)
            .iter()
            .map(|e| e.modify_index)
            .max()
            .unwrap_or(0)
            .max(eval.modify_index);
        let snap = match self.snapshot_min_index(wait_index, Duration::from_secs(5)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(eval = %eval.id, error = %e, "state not fresh enough");
                return false;
            }
        };
        let server = self.clone();
        let handle = tokio::runtime::Handle::current();
        let res = tokio::task::spawn_blocking(move || {
            let now = now_unix();
            if eval.eval_type == "_core" {
                let d = drover_scheduler::core::gc(
                    snap.as_ref(),
                    &eval.job_id,
                    now,
                    &server.inner.config.gc_thresholds,
                );
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let s2 = server.clone();
                handle.spawn(async move {
                    let _ = tx.send(s2.reap(d).await);
                });
                return match rx.recv() {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("server is shutting down".into()),
                };
            }
            let mut planner = WorkerPlanner {
                server: server.clone(),
                handle: handle.clone(),
                eval_id: eval.id.clone(),
                token,
                snapshot_index: snap.latest_index(),
            };
            let mut ids = new_id;
            let mut env = Env { now, ids: &mut ids };
            let state: Arc<dyn State + Send + Sync> = snap;
            drover_scheduler::process(state, &mut planner, &eval, &mut env).map_err(|e| e.to_string())
        })
        .await;
        match res {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "scheduler failed; nacking");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduler panicked; nacking");
                false
            }
        }
    }

    // ------------------------------------------------------------------ leader duties

    async fn heartbeat_reaper(self, term: u64) {
        while self.leader_sleep(term, Duration::from_millis(200)).await {
            let now = Instant::now();
            let expired: Vec<String> = {
                let hb = self.inner.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
                hb.iter()
                    .filter(|(_, d)| **d <= now)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            for id in expired {
                self.inner
                    .heartbeats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                tracing::info!(node = %id, "node missed its heartbeat; marking it down");
                self.inner
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .heartbeats_missed += 1;
                if let Err(e) = self.update_node_status(&id, node_status::DOWN).await {
                    tracing::warn!(node = %id, error = %e, "marking node down failed");
                }
            }
        }
    }

    async fn failed_eval_reaper(self, term: u64) {
        while self.still_leading(term) {
            let Some((eval, token)) = self
                .inner
                .broker
                .dequeue(&[FAILED_QUEUE], Duration::from_secs(1))
                .await
            else {
                continue;
            };
            if eval.eval_type != "_core" {
                let now = now_unix();
                let mut upd = (*eval).clone();
                upd.status = eval_status::FAILED.into();
                upd.status_description = format!(
                    "evaluation reached delivery limit ({})",
                    self.inner.config.broker.delivery_limit
                );
                upd.modify_time = now;
                let mut evals = Vec::new();
                if let Some(job) = self.snapshot().job(&eval.namespace, &eval.job_id) {
                    let mut f = Self::job_eval(&job, "failed-follow-up", eval.priority, now);
                    f.previous_eval = eval.id.clone();
                    // 1 min + up to 5 min, so a failing job does not hammer the schedulers.
                    f.wait = (60.0 + 300.0 * rand_fraction()) as i64 * 1_000_000_000;
                    upd.next_eval = f.id.clone();
                    evals.push(f);
                }
                evals.insert(0, upd);
                if let Err(e) = self.apply(Command::UpsertEvals { evals }).await {
                    tracing::warn!(error = %e, "writing failed evaluation");
                }
            }
            let _ = self.inner.broker.ack(&eval.id, &token);
        }
    }

    async fn periodic_duties(self, term: u64) {
        let mut last_gc = Instant::now();
        let mut last_unblock_failed = Instant::now();
        while self.leader_sleep(term, Duration::from_millis(500)).await {
            // Cancel superseded evaluations (broker cancelable + duplicate blocked evals).
            let mut cancel = self.inner.broker.take_cancelable(728);
            cancel.extend(std::mem::take(
                &mut *self.inner.to_cancel.lock().unwrap_or_else(|p| p.into_inner()),
            ));
            if !cancel.is_empty() {
                let now = now_unix();
                let evals = cancel
                    .into_iter()
                    .filter(|e| !e.terminal())
                    .map(|e| {
                        let mut e = (*e).clone();
                        e.status_description = if e.status == eval_status::BLOCKED {
                            "existing blocked evaluation exists for job".into()
                        } else {
                            "canceled after more recent eval was processed".into()
                        };
                        e.status = eval_status::CANCELED.into();
                        e.modify_time = now;
                        e
                    })
                    .collect::<Vec<_>>();
                if !evals.is_empty()
                    && let Err(e) = self.apply(Command::UpsertEvals { evals }).await
                {
                    tracing::warn!(error = %e, "canceling superseded evaluations");
                }
            }
            if last_unblock_failed.elapsed() >= Duration::from_secs(60) {
                last_unblock_failed = Instant::now();
                let released = self.lock_blocked().unblock_failed();
                self.inner.broker.enqueue_all(released);
            }
            if last_gc.elapsed() >= self.inner.config.gc_interval {
                last_gc = Instant::now();
                let index = self.snapshot().latest_index();
                for kind in ["eval-gc", "job-gc", "node-gc", "deployment-gc"] {
                    self.inner.broker.enqueue(Arc::new(Evaluation {
                        id: new_id(),
                        namespace: "-".into(),
                        priority: 32767,
                        eval_type: "_core".into(),
                        triggered_by: "scheduled".into(),
                        job_id: kind.into(),
                        status: eval_status::PENDING.into(),
                        modify_index: index,
                        create_index: index,
                        ..Default::default()
                    }));
                }
            }
        }
    }

    /// The node drainer: marks allocations on draining nodes for migration, at most
    /// `migrate.max_parallel` per group at a time, everything once the deadline passed, and
    /// ends the drain when only system allocations (or nothing) remain.
    async fn drainer(self, term: u64) {
        while self.leader_sleep(term, Duration::from_secs(1)).await {
            if let Err(e) = self.drain_once().await {
                tracing::warn!(error = %e, "drainer pass failed");
            }
        }
    }

    async fn drain_once(&self) -> Result<(), ServerError> {
        let snap = self.snapshot();
        let now = now_unix();
        for node in snap.nodes() {
            let Some(strategy) = node.drain_strategy.as_ref() else {
                continue;
            };
            let deadline_passed =
                strategy.deadline < 0 || strategy.force_deadline.is_some_and(|d| d.0 > 0 && d.0 <= now);
            let mut marks: BTreeMap<String, DesiredTransition> = BTreeMap::new();
            let mut jobs: BTreeMap<(String, String), Arc<Job>> = BTreeMap::new();
            let mut remaining = 0usize;
            for a in snap.allocs_by_node(&node.id) {
                if a.terminal() || a.client_terminal() {
                    continue;
                }
                let Some(job) = snap.job(&a.namespace, &a.job_id) else {
                    continue;
                };
                let system = job.job_type == job_type::SYSTEM || job.job_type == job_type::SYSBATCH;
                if system {
                    continue;
                }
                remaining += 1;
                if a.desired_transition.migrate == Some(true) {
                    continue;
                }
                let migrate_now = if deadline_passed {
                    true
                } else if job.job_type == job_type::BATCH {
                    false
                } else {
                    // Allocations of this group already migrating anywhere.
                    let max_parallel = job
                        .group(&a.task_group)
                        .and_then(|g| g.migrate.as_ref())
                        .map(|m| m.max_parallel())
                        .unwrap_or(1)
                        .max(1) as usize;
                    let in_flight = snap
                        .allocs_by_job(&a.namespace, &a.job_id)
                        .iter()
                        .filter(|x| {
                            x.task_group == a.task_group
                                && x.desired_transition.migrate == Some(true)
                                && !x.terminal()
                        })
                        .count()
                        + marks
                            .keys()
                            .filter(|id| {
                                snap.alloc(id)
                                    .is_some_and(|x| x.job_id == a.job_id && x.task_group == a.task_group)
                            })
                            .count();
                    in_flight < max_parallel
                };
                if migrate_now {
                    marks.insert(
                        a.id.clone(),
                        DesiredTransition {
                            migrate: Some(true),
                            ..Default::default()
                        },
                    );
                    jobs.insert((job.namespace.clone(), job.id.clone()), job);
                }
            }
            if !marks.is_empty() {
                let evals = jobs
                    .into_values()
                    .map(|job| {
                        let mut e = Self::job_eval(&job, "node-drain", 0, now);
                        e.job_modify_index = job.job_modify_index;
                        e
                    })
                    .collect();
                self.apply(Command::UpdateAllocDesiredTransition { allocs: marks, evals })
                    .await?;
            } else if remaining == 0 {
                // Done: system allocations go last (unless ignored), then the drain ends.
                let system_left: BTreeMap<String, DesiredTransition> = if strategy.ignore_system_jobs {
                    BTreeMap::new()
                } else {
                    snap.allocs_by_node(&node.id)
                        .iter()
                        .filter(|a| !a.terminal() && a.desired_transition.migrate != Some(true))
                        .map(|a| {
                            (
                                a.id.clone(),
                                DesiredTransition {
                                    migrate: Some(true),
                                    ..Default::default()
                                },
                            )
                        })
                        .collect()
                };
                if !system_left.is_empty() {
                    let evals = system_left
                        .keys()
                        .filter_map(|id| snap.alloc(id))
                        .filter_map(|a| snap.job(&a.namespace, &a.job_id))
                        .map(|job| (job.id.clone(), Self::job_eval(&job, "node-drain", 0, now)))
                        .collect::<BTreeMap<_, _>>()
                        .into_values()
                        .collect();
                    self.apply(Command::UpdateAllocDesiredTransition {
                        allocs: system_left,
                        evals,
                    })
                    .await?;
                }
                self.apply(Command::UpdateNodeDrain {
                    id: node.id.clone(),
                    drain_strategy: None,
                    mark_eligible: false,
                    evals: Vec::new(),
                    event: Some(node_event("Node drain complete")),
                })
                .await?;
                tracing::info!(node = %node.id, "node drain complete");
            }
        }
        Ok(())
    }
}

impl Server {
    /// The deployment watcher: ends deployments (successful when every group has its healthy
    /// allocations and canaries were promoted; failed on an unhealthy allocation or a missed
    /// progress deadline; cancelled when the job moved on) and, while one runs, asks the
    /// scheduler for the next batch whenever more allocations turned healthy.
    async fn deployment_watcher(self, term: u64) {
        // Deployment ID → (healthy allocations, when that number last grew, Unix ns).
        let mut seen: HashMap<String, (i64, i64)> = HashMap::new();
        while self.leader_sleep(term, Duration::from_millis(250)).await {
            if let Err(e) = self.watch_deployments_once(&mut seen).await {
                tracing::warn!(error = %e, "deployment watcher pass failed");
            }
        }
    }

    async fn watch_deployments_once(
        &self,
        seen: &mut HashMap<String, (i64, i64)>,
    ) -> Result<(), ServerError> {
        use drover_types::eval::deployment_status as ds;
        let snap = self.snapshot();
        let now = now_unix();
        for d in snap.deployments() {
            if d.status != ds::RUNNING {
                seen.remove(&d.id);
                continue;
            }
            let job = snap.job(&d.namespace, &d.job_id);
            let (status, description) = match &job {
                None => (ds::CANCELLED, "Cancelled because job is stopped"),
                Some(j) if j.stop => (ds::CANCELLED, "Cancelled because job is stopped"),
                Some(j) if j.version > d.job_version => {
                    (ds::CANCELLED, "Cancelled due to newer version of job")
                }
                Some(_) => {
                    let unhealthy = d.task_groups.values().any(|g| g.unhealthy_allocs > 0);
                    // Progress = more healthy allocations; a group must make some within its
                    // progress_deadline (from the deployment's start, then from the last).
                    let started = if d.create_time > 0 {
                        d.create_time.min(now)
                    } else {
                        now
                    };
                    let last_progress = seen.get(&d.id).map_or(started, |(_, t)| *t);
                    let late = d.task_groups.values().any(|g| {
                        g.healthy_allocs < g.desired_total
                            && (g.require_progress_by.is_some_and(|t| t.0 > 0 && t.0 < now)
                                || (g.progress_deadline > 0 && now - last_progress > g.progress_deadline))
                    });
                    let done = d.task_groups.values().all(|g| {
                        g.healthy_allocs >= g.desired_total && (g.desired_canaries == 0 || g.promoted)
                    });
                    if unhealthy {
                        (ds::FAILED, "Failed due to unhealthy allocations")
                    } else if late {
                        (ds::FAILED, "Failed due to progress deadline")
                    } else if done {
                        (ds::SUCCESSFUL, "Deployment completed successfully")
                    } else {
                        ("", "")
                    }
                }
            };
            if status.is_empty() {
                // Still running: more healthy allocations may let the next batch go.
                let healthy: i64 = d.task_groups.values().map(|g| g.healthy_allocs).sum();
                let started = if d.create_time > 0 {
                    d.create_time.min(now)
                } else {
                    now
                };
                let before = seen.get(&d.id).copied();
                let grew = before.is_some_and(|(b, _)| healthy > b);
                let since = match before {
                    Some((_, t)) if !grew => t,
                    Some(_) => now,
                    None => started,
                };
                seen.insert(d.id.clone(), (healthy, since));
                if grew && let Some(job) = &job {
                    let mut e = Self::job_eval(job, "deployment-watcher", 0, now);
                    e.deployment_id = d.id.clone();
                    e.job_modify_index = job.job_modify_index;
                    self.apply(Command::UpsertEvals { evals: vec![e] }).await?;
                }
                continue;
            }
            seen.remove(&d.id);
            let mut upd = (*d).clone();
            upd.status = status.into();
            upd.status_description = description.into();
            upd.modify_time = now;
            self.apply(Command::UpsertDeployment { deployment: upd }).await?;
            tracing::info!(deployment = %d.id, job = %d.job_id, status, "deployment finished");
            // A version that deployed successfully is stable (what auto-revert goes back to).
            if status == ds::SUCCESSFUL {
                self.apply(Command::UpdateJobStability {
                    namespace: d.namespace.clone(),
                    job_id: d.job_id.clone(),
                    version: d.job_version,
                    stable: true,
                })
                .await?;
            }
            // A failed deployment stops the rollout: let the scheduler see it.
            if status == ds::FAILED
                && let Some(job) = &job
            {
                let mut e = Self::job_eval(job, "deployment-watcher", 0, now);
                e.deployment_id = d.id.clone();
                self.apply(Command::UpsertEvals { evals: vec![e] }).await?;
            }
        }
        Ok(())
    }
}

impl Server {
    /// The periodic dispatcher: launches `<job>/periodic-<unix>` children when a periodic job's
    /// schedule comes due (UTC). After a leader change or downtime only the most recent missed
    /// launch runs. With `prohibit_overlap`, a launch is skipped while a child still runs.
    async fn periodic_dispatcher(self, term: u64) {
        let mut last: HashMap<(String, String), i64> = HashMap::new();
        while self.leader_sleep(term, Duration::from_secs(1)).await {
            if let Err(e) = self.dispatch_periodic_once(&mut last).await {
                tracing::warn!(error = %e, "periodic dispatcher pass failed");
            }
        }
    }

    async fn dispatch_periodic_once(
        &self,
        last: &mut HashMap<(String, String), i64>,
    ) -> Result<(), ServerError> {
        let snap = self.snapshot();
        let now = now_unix() / 1_000_000_000;
        let jobs = snap.jobs();
        for job in &jobs {
            let Some(p) = job.periodic.as_ref().filter(|p| p.enabled) else {
                continue;
            };
            if job.stop || !job.parent_id.is_empty() {
                continue;
            }
            let Ok(cron) = crate::periodic::Cron::parse(&p.spec) else {
                continue;
            };
            let key = (job.namespace.clone(), job.id.clone());
            let prefix = format!("{}/periodic-", job.id);
            let children: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|c| c.namespace == job.namespace && c.parent_id == job.id)
                .collect();
            // The last launch: remembered, else the newest child's launch time, else the
            // registration.
            let base = *last.entry(key.clone()).or_insert_with(|| {
                children
                    .iter()
                    .filter_map(|c| c.id.strip_prefix(&prefix).and_then(|t| t.parse::<i64>().ok()))
                    .max()
                    .unwrap_or(job.submit_time / 1_000_000_000)
            });
            let Some(mut due) = cron.next_after(base) else {
                continue;
            };
            if due > now {
                continue;
            }
            // Only the most recent missed launch runs.
            for _ in 0..100_000 {
                match cron.next_after(due) {
                    Some(n) if n <= now => due = n,
                    _ => break,
                }
            }
            last.insert(key, due);
            if p.prohibit_overlap
                && children
                    .iter()
                    .any(|c| drover_state::apply::job_status(&snap, c) != "dead")
            {
                tracing::info!(job = %job.id, "periodic launch skipped: a previous child is still running");
                continue;
            }
            let id = format!("{prefix}{due}");
            if snap.job(&job.namespace, &id).is_some() {
                continue;
            }
            self.launch_child(Self::child_of(job, id.clone())).await?;
            tracing::info!(job = %job.id, child = %id, "periodic job launched");
        }
        Ok(())
    }
}

/// Puts the scheduler's counts into a plan's diff as Nomad does: each group's `Updates`
/// (`create`, `destroy`, `in-place update`, `create/destroy update`, `migrate`, `canary`,
/// `ignore`) and each task's annotation (`forces create`, `forces destroy`, `forces
/// create/destroy update`, `forces in-place update`).
fn annotate_diff(diff: &mut drover_types::diff::JobDiff, ann: &drover_types::eval::PlanAnnotations) {
    use drover_types::diff::DiffType;
    for tg in diff.task_groups.iter_mut().flatten() {
        let Some(u) = ann.desired_tg_updates.get(&tg.name) else {
            continue;
        };
        let mut updates = BTreeMap::new();
        for (k, v) in [
            ("create", u.place),
            ("destroy", u.stop),
            ("in-place update", u.in_place_update),
            ("create/destroy update", u.destructive_update),
            ("migrate", u.migrate),
            ("canary", u.canary),
            ("ignore", u.ignore),
        ] {
            if v > 0 {
                updates.insert(k.to_string(), v);
            }
        }
        tg.updates = (!updates.is_empty()).then_some(updates);
        let group_type = tg.diff_type;
        for task in tg.tasks.iter_mut().flatten() {
            let note = match (&group_type, &task.diff_type) {
                (DiffType::Added, _) | (_, DiffType::Added) => Some("forces create"),
                (DiffType::Deleted, _) | (_, DiffType::Deleted) => Some("forces destroy"),
                (_, DiffType::Edited) if u.destructive_update > 0 => Some("forces create/destroy update"),
                (_, DiffType::Edited) if u.in_place_update > 0 => Some("forces in-place update"),
                _ => None,
            };
            task.annotations = note.map(|n| vec![n.to_string()]);
        }
    }
}

/// The computed class of a node (stored, or computed when empty).
fn node_class(n: &Node) -> String {
    if n.computed_class.is_empty() {
        drover_scheduler::feasible::computed_class(n)
    } else {
        n.computed_class.clone()
    }
}

/// `*` and `?` globs (datacenters).
fn glob_match(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// A number in [0, 1) from a fresh UUID (jitter; no RNG crate needed).
fn rand_fraction() -> f64 {
    let v = uuid::Uuid::new_v4().as_u128() as u64;
    (v >> 11) as f64 / (1u64 << 53) as f64
}

/// The worker's [`Planner`]: runs on a blocking thread and calls into the async server.
struct WorkerPlanner {
    server: Server,
    handle: tokio::runtime::Handle,
    eval_id: String,
    token: String,
    snapshot_index: u64,
}

impl WorkerPlanner {
    /// Runs `fut` on the runtime and waits for it from this blocking thread. Not
    /// `Handle::block_on`: if the runtime shuts down, the spawned task is dropped, the channel
    /// closes and the scheduler gets an error instead of blocking the shutdown forever.
    fn run_async<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ServerError>> + Send + 'static,
    ) -> Result<T, SchedulerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| SchedulerError::Planner("server is shutting down".into()))?
            .map_err(|e| SchedulerError::Planner(e.to_string()))
    }

    fn write_evals(&mut self, mut eval: Evaluation) -> Result<Arc<Evaluation>, SchedulerError> {
        eval.snapshot_index = self.snapshot_index;
        let _ = self
            .server
            .inner
            .broker
            .outstanding_reset(&self.eval_id, &self.token);
        let id = eval.id.clone();
        let server = self.server.clone();
        self.run_async(async move { server.apply(Command::UpsertEvals { evals: vec![eval] }).await })?;
        self.server
            .snapshot()
            .eval(&id)
            .ok_or_else(|| SchedulerError::Planner(format!("evaluation {id} vanished")))
    }
}

impl Planner for WorkerPlanner {
    fn submit_plan(&mut self, mut plan: Plan) -> Result<Submitted, SchedulerError> {
        plan.eval_token = self.token.clone();
        plan.snapshot_index = self.snapshot_index;
        let server = self.server.clone();
        let result = self.run_async(async move { server.submit_plan(plan).await })?;
        let refreshed = if result.refresh_index != 0 {
            let server = self.server.clone();
            let index = result.refresh_index;
            let snap = self
                .run_async(async move { server.snapshot_min_index(index, Duration::from_secs(5)).await })?;
            self.snapshot_index = snap.latest_index();
            let s: Arc<dyn State + Send + Sync> = snap;
            Some(s)
        } else {
            None
        };
        Ok(Submitted { result, refreshed })
    }

    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.write_evals(eval).map(|_| ())
    }

    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.write_evals(eval).map(|_| ())
    }

    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        let stored = self.write_evals(eval)?;
        // Track it with this delivery's token, so a missed unblock waits for our ack.
        let outcome = self.server.lock_blocked().block(stored.clone(), &self.token);
        if outcome == BlockOutcome::MissedUnblock {
            self.server
                .inner
                .broker
                .enqueue_all([(stored, self.token.clone())]);
        }
        Ok(())
    }
}

/// The dry-run planner of `job plan`: records, commits nothing.
#[derive(Default)]
struct DryRun {
    plans: Vec<Plan>,
    updated: Vec<Evaluation>,
    created: Vec<Evaluation>,
}

impl Planner for DryRun {
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError> {
        let result = PlanResult {
            node_update: plan.node_update.clone(),
            node_allocation: plan.node_allocation.clone(),
            node_preemptions: plan.node_preemptions.clone(),
            deployment: plan.deployment.clone(),
            deployment_updates: plan.deployment_updates.clone(),
            ..Default::default()
        };
        self.plans.push(plan);
        Ok(Submitted {
            result,
            refreshed: None,
        })
    }

    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.updated.push(eval);
        Ok(())
    }

    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.created.push(eval);
        Ok(())
    }

    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError> {
        self.updated.push(eval);
        Ok(())
    }
}

/// Warnings for job blocks the client does not carry out yet, so a job that relies on them is
/// not silently half-run: services and checks are not registered, templates are not rendered,
/// artifacts are not downloaded, volumes are not mounted.
fn unsupported_blocks(job: &Job) -> Vec<String> {
    let mut out = Vec::new();
    for g in &job.task_groups {
        if !g.services.is_empty() {
            out.push(format!(
                "group {:?}: service blocks are not registered yet (no service discovery or checks); tasks run without them",
                g.name
            ));
        }
        if !g.volumes.is_empty() {
            out.push(format!("group {:?}: volume blocks are not mounted yet", g.name));
        }
        for t in &g.tasks {
            let mut missing = Vec::new();
            if !t.services.is_empty() {
                missing.push("service (not registered)");
            }
            if !t.templates.is_empty() {
                missing.push("template (not rendered)");
            }
            if !t.artifacts.is_empty() {
                missing.push("artifact (not downloaded)");
            }
            if !t.volume_mounts.is_empty() {
                missing.push("volume_mount (not mounted)");
            }
            if !missing.is_empty() {
                out.push(format!(
                    "group {:?} task {:?}: not supported by the client yet: {}",
                    g.name,
                    t.name,
                    missing.join(", ")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("dc*", "dc1"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("d?1", "dc1"));
        assert!(!glob_match("dc2", "dc1"));
    }
}
