//! The task runner: one task of one allocation, from `Received` to `dead`.
//!
//! ```text
//!            ┌───────────────────────── restart (policy allows) ◀────────────┐
//!  gate open ▼                                                                │
//!  Received → Task Setup → validate config → start_task → Started → wait_task → Terminated
//!                               │ invalid          │ error                    │
//!                               ▼                  ▼                          ▼
//!                        Failed Validation   Driver Failure ──▶ restart policy decides
//!  kill request (any time) → Killing → stop_task(kill_timeout, kill_signal) → Killed → dead
//! ```
//!
//! Vocabulary: the *gate* is opened by the allocation runner when the task's lifecycle phase
//! may run (prestart first, then main, then poststart, poststop at the end). A *handle* is the
//! driver's record of a started task; it is persisted as soon as the task started so a restarted
//! agent re-attaches to it instead of starting it again.
//!
//! Guarantees: every state change is persisted before it is reported; a task with a handle is
//! never started twice; at most 10 events are kept (oldest dropped), as in Nomad.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_drivers::{
    Driver, DriverError, EventSink, ExitResult, FsIsolation, LogSettings, TaskConfig, TaskResources,
};
use drover_types::alloc::client_status;
use drover_types::job::RestartPolicy;
use drover_types::time::{Nanos, Timestamp, format_duration};
use drover_types::{Allocation, Node, Task, TaskEvent, TaskState};
use tokio::sync::{Notify, mpsc, watch};

use crate::restarts::{Decision, Outcome, RestartTracker};
use crate::state::{LocalTaskState, StateDb};
use crate::taskenv::{TaskEnv, TaskPaths};

/// Task states.
pub mod task_state {
    /// Not started (or waiting to restart).
    pub const PENDING: &str = "pending";
    /// Running.
    pub const RUNNING: &str = "running";
    /// Finished for good.
    pub const DEAD: &str = "dead";
}

/// Asks a task runner to do something.
#[derive(Debug, Clone)]
pub enum TaskCommand {
    /// Stop the task for good. `event` is an extra event recorded first (e.g. `Sibling Task
    /// Failed`), `reason` goes into the `Killing` event.
    Kill {
        /// Extra event type (empty: none).
        event: String,
        /// Message of that event.
        reason: String,
    },
    /// Fail the task without running it (the allocation could not be set up).
    Fail {
        /// The event recorded (`Setup Failure`), marked as failing the task.
        event: Box<TaskEvent>,
    },
    /// Restart the task now (`alloc restart`); not counted against the policy.
    Restart {
        /// Why.
        reason: String,
    },
}

/// What a task runner needs from its surroundings.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The client database.
    pub db: StateDb,
    /// The node (for the environment and interpolation).
    pub node: Arc<Mutex<Node>>,
    /// Region of the agent.
    pub region: String,
    /// `<alloc_dir>/<alloc id>`.
    pub alloc_root: PathBuf,
    /// Where drivers keep per-task files.
    pub driver_state_dir: PathBuf,
    /// Cap on kill timeouts (`client.max_kill_timeout`).
    pub max_kill_timeout: Duration,
    /// Rings when this task's state changed.
    pub changed: Arc<Notify>,
}

/// One task of an allocation.
#[derive(Debug)]
pub struct TaskRunner {
    /// Task name.
    pub name: String,
    task: Task,
    alloc: Mutex<Allocation>,
    driver: Option<Arc<dyn Driver>>,
    ctx: TaskContext,
    local: Mutex<LocalTaskState>,
    commands: mpsc::UnboundedSender<TaskCommand>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<TaskCommand>>>,
    gate: watch::Receiver<bool>,
}

fn now() -> Nanos {
    drover_drivers::now_nanos()
}

fn jitter() -> f64 {
    (now().rem_euclid(1_000_003) as f64) / 1_000_003.0
}

/// An event with Nomad's fields.
pub fn event(kind: &str, message: impl Into<String>) -> TaskEvent {
    let message = message.into();
    TaskEvent {
        event_type: kind.to_string(),
        time: now(),
        display_message: message.clone(),
        message,
        ..Default::default()
    }
}

impl TaskRunner {
    /// A runner for `task` of `alloc`; `restored` is what a previous agent process persisted.
    pub fn new(
        task: Task,
        alloc: Allocation,
        driver: Option<Arc<dyn Driver>>,
        ctx: TaskContext,
        restored: Option<LocalTaskState>,
        gate: watch::Receiver<bool>,
    ) -> Arc<TaskRunner> {
        let (tx, rx) = mpsc::unbounded_channel();
        // A restored state is what the database holds already; only a new task is written.
        let is_new = restored.is_none();
        let local = restored.unwrap_or_else(|| {
            let mut s = LocalTaskState::default();
            s.state.state = task_state::PENDING.into();
            s.state.events.push(event("Received", "Task received by client"));
            s
        });
        let r = Arc::new(TaskRunner {
            name: task.name.clone(),
            task,
            alloc: Mutex::new(alloc),
            driver,
            ctx,
            local: Mutex::new(local),
            commands: tx,
            inbox: Mutex::new(Some(rx)),
            gate,
        });
        if is_new {
            r.persist();
        }
        r
    }

    /// The task definition.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The current state (a copy).
    pub fn state(&self) -> TaskState {
        self.lock().state.clone()
    }

    /// The running task's ID at its driver, if any.
    pub fn handle(&self) -> Option<drover_drivers::TaskHandle> {
        self.lock().handle.clone()
    }

    /// The driver.
    pub fn driver(&self) -> Option<&Arc<dyn Driver>> {
        self.driver.as_ref()
    }

    /// Sends a command (ignored once the runner finished).
    pub fn command(&self, c: TaskCommand) {
        let _ = self.commands.send(c);
    }

    /// Replaces the allocation (a server-side update).
    pub fn update_alloc(&self, alloc: Allocation) {
        *self.alloc.lock().unwrap_or_else(|e| e.into_inner()) = alloc;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalTaskState> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self) {
        let snapshot = self.lock().clone();
        let alloc_id = self.alloc.lock().unwrap_or_else(|e| e.into_inner()).id.clone();
        if let Err(e) = self.ctx.db.put_task(&alloc_id, &self.name, &snapshot) {
            tracing::error!(alloc_id, task = %self.name, error = %e, "failed to persist task state");
        }
    }

    /// Records an event (and optionally a state change), persists, and tells the alloc runner.
    pub fn emit(&self, ev: TaskEvent) {
        self.update(|s| push_event(&mut s.state, ev));
    }

    fn update(&self, f: impl FnOnce(&mut LocalTaskState)) {
        {
            let mut l = self.lock();
            f(&mut l);
        }
        self.persist();
        self.ctx.changed.notify_one();
    }

    fn isolation(&self) -> FsIsolation {
        self.driver
            .as_ref()
            .map(|d| d.capabilities().fs_isolation)
            .unwrap_or(FsIsolation::None)
    }

    /// Builds the driver's task config: environment, interpolated `config {}`, resources, paths.
    fn task_config(&self) -> TaskConfig {
        let alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let node = self.ctx.node.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let isolation = self.isolation();
        let paths = match isolation {
            FsIsolation::None => TaskPaths::host(&self.ctx.alloc_root, &self.name),
            _ => TaskPaths::isolated(),
        };
        let host_env: BTreeMap<String, String> = if isolation == FsIsolation::Image {
            BTreeMap::new()
        } else {
            std::env::vars().filter(|(k, _)| !denied_env(k)).collect()
        };
        let env = TaskEnv::build(&alloc, &self.task, &node, &self.ctx.region, &paths, &host_env);
        let config = env.interpolate(&self.task.config);
        let res = alloc
            .allocated_resources
            .as_ref()
            .and_then(|r| r.tasks.get(&self.name));
        let ports = alloc
            .allocated_resources
            .as_ref()
            .map(|r| {
                r.shared
                    .ports
                    .iter()
                    .map(|p| drover_drivers::PortMapping {
                        label: p.label.clone(),
                        host_ip: p.host_ip.clone(),
                        value: p.value.clamp(0, 65535) as u16,
                        to: p.to.clamp(0, 65535) as u16,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (cpu, mem, mem_max) = match res {
            Some(r) => (r.cpu.cpu_shares, r.memory.memory_mb, r.memory.memory_max_mb),
            None => self
                .task
                .resources
                .as_ref()
                .map(|r| (r.cpu.max(0), r.memory_mb, r.memory_max_mb))
                .unwrap_or((100, 300, 0)),
        };
        let logs = self
            .task
            .log_config
            .as_ref()
            .map(|l| LogSettings {
                max_files: l.max_files.clamp(1, 1000) as u32,
                max_file_size: (l.max_file_size_mb.max(1) as u64) * 1024 * 1024,
            })
            .unwrap_or_default();
        let job = alloc.job.as_deref();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{}/{}/{}", alloc.id, self.name, &suffix[..8]);
        TaskConfig {
            state_dir: self.ctx.driver_state_dir.join(format!(
                "{}-{}-{}",
                alloc.id,
                sanitize(&self.name),
                &suffix[..8]
            )),
            id,
            name: self.name.clone(),
            job_id: alloc.job_id.clone(),
            job_name: job.map(|j| j.name.clone()).unwrap_or_default(),
            task_group: alloc.task_group.clone(),
            namespace: alloc.namespace.clone(),
            alloc_id: alloc.id.clone(),
            node_id: node.id.clone(),
            node_name: node.name.clone(),
            env: env.env().clone(),
            resources: TaskResources {
                cpu_shares: cpu,
                memory_mb: mem,
                memory_max_mb: mem_max,
                ports,
            },
            user: self.task.user.clone(),
            alloc_dir: self.ctx.alloc_root.clone(),
            task_dir: self.ctx.alloc_root.join(&self.name),
            log_dir: self.ctx.alloc_root.join("alloc").join("logs"),
            logs,
            config,
        }
    }

    fn restart_policy(&self) -> (RestartPolicy, String) {
        let alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let job = alloc.job.as_deref();
        let job_type = job
            .map(|j| j.job_type.clone())
            .unwrap_or_else(|| "service".into());
        let mut p = RestartPolicy::default_for(&job_type);
        if let Some(g) = job.and_then(|j| j.task_groups.iter().find(|g| g.name == alloc.task_group))
            && let Some(gp) = &g.restart_policy
        {
            p.merge(gp);
        }
        if let Some(tp) = &self.task.restart_policy {
            p.merge(tp);
        }
        (p, job_type)
    }

    /// Whether the servers want the allocation stopped and this task must not (re)start.
    /// Poststop tasks still run: they exist for the stop.
    fn stop_wanted(&self) -> bool {
        let is_poststop = self.task.lifecycle.as_ref().is_some_and(|l| l.hook == "poststop");
        !is_poststop
            && self
                .alloc
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .server_terminal()
    }

    fn kill_timeout(&self) -> Duration {
        let t = Duration::from_nanos(self.task.kill_timeout.max(0) as u64);
        t.min(self.ctx.max_kill_timeout)
    }

    /// Runs the task to the end. Returns when it is dead.
    pub async fn run(self: Arc<Self>) {
        let Some(mut inbox) = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        if self.lock().run_complete {
            self.ctx.changed.notify_one();
            return;
        }
        let (policy, job_type) = self.restart_policy();
        let (hook, sidecar) = self
            .task
            .lifecycle
            .as_ref()
            .map(|l| (l.hook.clone(), l.sidecar))
            .unwrap_or_default();
        let mut tracker = RestartTracker::new(policy, &job_type, &hook, sidecar);
        let Some(driver) = self.driver.clone() else {
            let mut ev = event(
                "Driver Failure",
                format!("driver {:?} is not available on this node", self.task.driver),
            );
            ev.fails_task = true;
            self.finish(Some(ev), true);
            return;
        };

        // Re-attach to a task a previous agent process started.
        let mut running: Option<String> = None;
        let restored_handle = self.lock().handle.clone();
        if let Some(handle) = restored_handle {
            // A backend that is not reachable yet (dockerd starting with the host) gets a minute
            // before the task is given up and started again.
            let mut recovered = driver.recover_task(&handle).await;
            let mut tries = 0;
            while let Err(DriverError::Unavailable(e)) = &recovered {
                if tries >= 12 {
                    break;
                }
                tries += 1;
                tracing::warn!(task = %self.name, error = %e, "driver unavailable; retrying re-attachment in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                recovered = driver.recover_task(&handle).await;
            }
            match recovered {
                Ok(()) => running = Some(handle.config.id.clone()),
                Err(e) => {
                    tracing::warn!(task = %self.name, error = %e, "could not re-attach to the task");
                    let _ = driver.destroy_task(&handle.config.id, true).await;
                    self.update(|s| {
                        s.handle = None;
                        push_event(
                            &mut s.state,
                            event(
                                "Failed Restoring Task",
                                format!("failed to restore task; will restart it: {e}"),
                            ),
                        );
                    });
                }
            }
        }
        let mut first = running.is_none() && self.lock().state.started_at.is_none();
        loop {
            let outcome = match running.take() {
                Some(id) => match self.wait(&driver, &id, &mut inbox, &mut tracker).await {
                    Some(exit) => self.exited(&driver, &id, exit).await,
                    None => return self.finish(Some(event("Killed", "Task successfully killed")), false),
                },
                None => {
                    // Wait for the lifecycle gate, unless killed first.
                    let mut gate = self.gate.clone();
                    // The inbox first: a kill or a setup failure wins over an open gate.
                    let opened = tokio::select! {
                        biased;
                        cmd = inbox.recv() => match cmd {
                            Some(TaskCommand::Kill { event: kind, reason }) => {
                                if !kind.is_empty() { self.emit(event(&kind, reason)); }
                                false
                            }
                            Some(TaskCommand::Fail { event: ev }) => return self.finish(Some(*ev), true),
                            Some(TaskCommand::Restart { .. }) => continue,
                            None => false,
                        },
                        r = gate.wait_for(|open| *open) => r.is_ok(),
                    };
                    if !opened || self.stop_wanted() {
                        return self.finish(Some(event("Killed", "Task successfully killed")), false);
                    }
                    if first {
                        first = false;
                        self.emit(event("Task Setup", "Building Task Directory"));
                    }
                    let cfg = self.task_config();
                    if let Err(e) = driver.validate_config(&cfg.config) {
                        let mut ev = event("Failed Validation", e.to_string());
                        ev.validation_error = e.to_string();
                        ev.fails_task = true;
                        return self.finish(Some(ev), true);
                    }
                    let me = Arc::downgrade(&self);
                    let sink: EventSink = Arc::new(move |msg: String| {
                        if let Some(r) = me.upgrade() {
                            let mut ev = event("Driver", msg.clone());
                            ev.driver_message = msg;
                            r.emit(ev);
                        }
                    });
                    let id = cfg.id.clone();
                    match driver.start_task(cfg, sink).await {
                        Ok(handle) => {
                            let started = Timestamp(handle.started_at);
                            self.update(|s| {
                                s.handle = Some(handle);
                                s.state.state = task_state::RUNNING.into();
                                s.state.started_at = Some(started);
                                s.state.finished_at = None;
                                push_event(&mut s.state, event("Started", "Task started by client"));
                            });
                            running = Some(id);
                            continue;
                        }
                        Err(e) => {
                            let mut ev = event("Driver Failure", e.to_string());
                            ev.driver_error = e.to_string();
                            self.emit(ev);
                            Outcome::StartFailed {
                                recoverable: e.recoverable(),
                            }
                        }
                    }
                }
            };
            if self.stop_wanted() {
                return self.finish(Some(event("Killed", "Task successfully killed")), false);
            }
            match tracker.decide(&outcome, now(), jitter()) {
                Decision::Restart { delay, reason } => {
                    let msg = if reason == "Restart within policy" || reason == "Restart requested" {
                        format!("Task restarting in {}", format_duration(delay))
                    } else {
                        format!("{reason} - Task restarting in {}", format_duration(delay))
                    };
                    let mut ev = event("Restarting", msg);
                    ev.start_delay = delay;
                    ev.restart_reason = reason;
                    self.update(|s| {
                        push_event(&mut s.state, ev);
                        s.state.restarts += 1;
                        s.state.last_restart = Some(Timestamp(now()));
                        s.state.state = task_state::PENDING.into();
                    });
                    let sleep = tokio::time::sleep(Duration::from_nanos(delay.max(0) as u64));
                    tokio::select! {
                        _ = sleep => {}
                        cmd = inbox.recv() => match cmd {
                            Some(TaskCommand::Restart { .. }) => {}
                            Some(TaskCommand::Kill { event: kind, reason }) => {
                                if !kind.is_empty() { self.emit(event(&kind, reason)); }
                                return self.finish(Some(event("Killed", "Task successfully killed")), false);
                            }
                            Some(TaskCommand::Fail { event: ev }) => return self.finish(Some(*ev), true),
                            None => return,
                        }
                    }
                }
                Decision::Stop {
                    event: kind,
                    reason,
                    fails,
                } => {
                    // A task that ended by itself already has its `Terminated` event.
                    if kind == "Terminated" {
                        return self.finish(None, false);
                    }
                    let mut ev = event(kind, reason);
                    ev.fails_task = fails;
                    return self.finish(Some(ev), fails);
                }
            }
        }
    }

    /// Waits for the task to exit; handles kill and restart requests meanwhile. None = killed.
    async fn wait(
        &self,
        driver: &Arc<dyn Driver>,
        id: &str,
        inbox: &mut mpsc::UnboundedReceiver<TaskCommand>,
        tracker: &mut RestartTracker,
    ) -> Option<ExitResult> {
        let mut waiting = driver.wait_task(id);
        let cmd = tokio::select! {
            r = &mut waiting => {
                return Some(r.unwrap_or_else(|e| ExitResult { err: Some(e.to_string()), ..Default::default() }));
            }
            cmd = inbox.recv() => cmd,
        };
        let (kill, kind, reason) = match cmd {
            Some(TaskCommand::Kill { event, reason }) => (true, event, reason),
            Some(TaskCommand::Fail { event: ev }) => {
                let reason = ev.message.clone();
                self.emit(*ev);
                (true, String::new(), reason)
            }
            Some(TaskCommand::Restart { reason }) => (false, "Restart Signaled".to_string(), reason),
            None => (true, String::new(), String::new()),
        };
        if !kind.is_empty() {
            let msg = if reason.is_empty() {
                "Task signaled to restart".to_string()
            } else {
                reason.clone()
            };
            self.emit(event(&kind, msg));
        }
        let timeout = self.kill_timeout();
        let mut ev = event(
            "Killing",
            format!(
                "Sent interrupt. Waiting {} before force killing",
                format_duration(timeout.as_nanos() as Nanos)
            ),
        );
        ev.kill_timeout = timeout.as_nanos() as Nanos;
        ev.kill_reason = reason;
        self.emit(ev);
        if kill {
            tracker.set_killed();
        } else {
            tracker.request_restart();
        }
        let mut tries = 0;
        while let Err(e) = driver.stop_task(id, timeout, &self.task.kill_signal).await {
            if matches!(e, DriverError::TaskNotFound(_)) || tries >= 4 {
                break;
            }
            tries += 1;
            tokio::time::sleep(Duration::from_millis(500 * tries)).await;
        }
        let exit = (&mut waiting).await.unwrap_or_default();
        if kill {
            // Terminated (with the exit code) then, from the caller, Killed.
            self.exited(driver, id, exit).await;
            return None;
        }
        Some(exit)
    }

    async fn exited(&self, driver: &Arc<dyn Driver>, id: &str, exit: ExitResult) -> Outcome {
        let mut msg = format!("Exit Code: {}", exit.exit_code);
        if exit.signal != 0 {
            msg.push_str(&format!(", Signal: {}", exit.signal));
        }
        if exit.oom_killed {
            msg.push_str(", Exit Message: \"OOM Killed\"");
        } else if let Some(e) = &exit.err {
            msg.push_str(&format!(", Exit Message: {e:?}"));
        }
        let mut ev = event("Terminated", msg);
        ev.exit_code = exit.exit_code;
        ev.signal = exit.signal;
        if exit.oom_killed {
            ev.details.insert("oom_killed".into(), "true".into());
        }
        ev.details.insert("exit_code".into(), exit.exit_code.to_string());
        let _ = driver.destroy_task(id, true).await;
        self.update(|s| {
            s.handle = None;
            push_event(&mut s.state, ev);
        });
        Outcome::Exited {
            success: exit.successful(),
        }
    }

    fn finish(&self, ev: Option<TaskEvent>, failed: bool) {
        self.update(|s| {
            if let Some(ev) = ev {
                push_event(&mut s.state, ev);
            }
            s.state.state = task_state::DEAD.into();
            s.state.failed = failed;
            s.state.finished_at = Some(Timestamp(now()));
            s.run_complete = true;
            s.handle = None;
        });
    }
}

/// Appends an event, keeping the last 10.
pub fn push_event(s: &mut TaskState, ev: TaskEvent) {
    s.events.push(ev);
    if s.events.len() > 10 {
        let excess = s.events.len() - 10;
        s.events.drain(..excess);
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Host variables never passed to tasks (Nomad's default `env.denylist`).
fn denied_env(k: &str) -> bool {
    matches!(
        k,
        "CONSUL_TOKEN"
            | "CONSUL_HTTP_TOKEN"
            | "CONSUL_HTTP_TOKEN_FILE"
            | "NOMAD_TOKEN"
            | "VAULT_TOKEN"
            | "AWS_ACCESS_KEY_ID"
            | "AWS_SECRET_ACCESS_KEY"
            | "AWS_SESSION_TOKEN"
            | "AWS_METADATA_URL"
            | "GOOGLE_APPLICATION_CREDENTIALS"
            | "GOOGLE_OAUTH_ACCESS_TOKEN"
    ) || k.ends_with("_LICENSE")
        || k.ends_with("_LICENSE_PATH")
}

/// The allocation's client status from its tasks' states (Nomad's rule).
pub fn client_status_of(states: &BTreeMap<String, TaskState>) -> (&'static str, &'static str) {
    let any = |f: &dyn Fn(&TaskState) -> bool| states.values().any(f);
    if any(&|s| s.state == task_state::DEAD && s.failed) {
        (client_status::FAILED, "Failed tasks")
    } else if any(&|s| s.state == task_state::RUNNING) {
        (client_status::RUNNING, "Tasks are running")
    } else if any(&|s| s.state == task_state::PENDING) {
        (client_status::PENDING, "No tasks have started")
    } else {
        (client_status::COMPLETE, "All tasks have completed")
    }
}
