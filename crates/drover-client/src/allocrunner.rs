//! The allocation runner: one allocation on this node — its directory, its task runners, the
//! lifecycle order between them, its health for deployments, and its status for the servers.
//!
//! ```text
//!  server update ──▶ AllocRunner::update ──(desired stop/evict)──▶ Kill every task
//!  task state change ──▶ reconcile():
//!       a task failed          → kill the others (`Sibling Task Failed`)
//!       the leader died        → kill the others (`Leader Task Dead`)
//!       only sidecars are left → kill them (`Main Tasks Dead`)
//!       open lifecycle gates   prestart → main → poststart; poststop once the rest are dead
//!       deployment health      healthy after min_healthy_time of all tasks running
//!       report                 client status + task states ──▶ the client's update batcher
//! ```
//!
//! Client status from task states (Nomad's rule): a failed task → `failed`; else any running →
//! `running`; else any pending → `pending`; else `complete`.
//!
//! Limits: no group services, checks, volumes, networks namespaces, or migration of ephemeral
//! disks; health is judged from task states only (`health_check = "checks"` behaves like
//! `task_states`, as there are no checks yet).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_types::alloc::AllocDeploymentStatus;
use drover_types::job::UpdateStrategy;
use drover_types::time::Timestamp;
use drover_types::{Allocation, TaskState};
use tokio::sync::{Notify, watch};

use crate::taskrunner::{TaskCommand, TaskContext, TaskRunner, client_status_of, event, task_state};

/// Receives an allocation's client-side state whenever it changes.
pub type Reporter = Arc<dyn Fn(Allocation) + Send + Sync>;

/// One allocation.
pub struct AllocRunner {
    /// Allocation ID.
    pub id: String,
    alloc: Mutex<Allocation>,
    tasks: Vec<Arc<TaskRunner>>,
    gates: BTreeMap<String, watch::Sender<bool>>,
    changed: Arc<Notify>,
    report: Reporter,
    root: PathBuf,
    created: Instant,
    health: Mutex<Option<AllocDeploymentStatus>>,
    killed: Mutex<bool>,
    done: watch::Sender<bool>,
    setup_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for AllocRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllocRunner").field("id", &self.id).finish()
    }
}

fn hook(r: &TaskRunner) -> (&str, bool) {
    r.task()
        .lifecycle
        .as_ref()
        .map(|l| (l.hook.as_str(), l.sidecar))
        .unwrap_or(("", false))
}

impl AllocRunner {
    /// Builds the runner and its task runners. `restored` holds task states a previous agent
    /// process persisted; `drivers` resolves a task's driver by name.
    pub fn new(
        alloc: Allocation,
        ctx: TaskContext,
        drivers: &BTreeMap<String, Arc<dyn drover_drivers::Driver>>,
        mut restored: BTreeMap<String, crate::state::LocalTaskState>,
        report: Reporter,
    ) -> Arc<AllocRunner> {
        let group = alloc
            .job
            .as_ref()
            .and_then(|j| j.task_groups.iter().find(|g| g.name == alloc.task_group))
            .cloned()
            .unwrap_or_default();
        let mut tasks = Vec::new();
        let mut gates = BTreeMap::new();
        for t in &group.tasks {
            let (tx, rx) = watch::channel(false);
            gates.insert(t.name.clone(), tx);
            let driver = drivers.get(&t.driver).cloned();
            tasks.push(TaskRunner::new(
                t.clone(),
                alloc.clone(),
                driver,
                ctx.clone(),
                restored.remove(&t.name),
                rx,
            ));
        }
        let (done, _) = watch::channel(false);
        let health = alloc.deployment_status.clone().filter(|d| d.healthy.is_some());
        Arc::new(AllocRunner {
            id: alloc.id.clone(),
            alloc: Mutex::new(alloc),
            tasks,
            gates,
            changed: ctx.changed.clone(),
            report,
            root: ctx.alloc_root.clone(),
            created: Instant::now(),
            health: Mutex::new(health),
            killed: Mutex::new(false),
            done,
            setup_error: Mutex::new(None),
        })
    }

    /// The allocation as last received.
    pub fn alloc(&self) -> Allocation {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `<alloc_dir>/<alloc id>`.
    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    /// The task runners.
    pub fn tasks(&self) -> &[Arc<TaskRunner>] {
        &self.tasks
    }

    /// Whether every task is dead.
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Waits until every task is dead.
    pub async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Applies a newer version of the allocation from the servers.
    pub fn update(&self, alloc: Allocation) {
        let stop = alloc.server_terminal();
        let reason = alloc.desired_description.clone();
        for t in &self.tasks {
            t.update_alloc(alloc.clone());
        }
        *self.alloc.lock().unwrap_or_else(|e| e.into_inner()) = alloc;
        if stop {
            self.kill_all("", &reason);
        }
        self.changed.notify_one();
    }

    /// Kills every task that is not a poststop task (those run after the others).
    pub fn kill_all(&self, kind: &str, reason: &str) {
        *self.killed.lock().unwrap_or_else(|e| e.into_inner()) = true;
        for t in &self.tasks {
            if hook(t).0 != "poststop" {
                t.command(TaskCommand::Kill {
                    event: kind.to_string(),
                    reason: reason.to_string(),
                });
            }
        }
    }

    /// Restarts one task, or every running task.
    pub fn restart(&self, task: Option<&str>) -> Result<(), String> {
        let mut n = 0;
        for t in &self.tasks {
            if task.is_none_or(|name| name == t.name) {
                if t.state().state != task_state::RUNNING {
                    if task.is_some() {
                        return Err(format!("task {:?} is not running", t.name));
                    }
                    continue;
                }
                t.command(TaskCommand::Restart {
                    reason: "User requested restart".into(),
                });
                n += 1;
            }
        }
        match (n, task) {
            (0, Some(name)) => Err(format!("task {name:?} not found in the allocation")),
            _ => Ok(()),
        }
    }

    /// Runs the allocation until every task is dead. Call once.
    pub async fn run(self: Arc<Self>) {
        let names: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        if let Err(e) = drover_drivers::taskdir::build(&self.root, &names) {
            *self.setup_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("failed to build the allocation directory: {e}"));
        }
        if let Some(err) = self.setup_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            for t in &self.tasks {
                let mut ev = event("Setup Failure", err.clone());
                ev.setup_error = err.clone();
                ev.fails_task = true;
                t.emit(ev);
                t.command(TaskCommand::Kill {
                    event: String::new(),
                    reason: err.clone(),
                });
            }
        }
        let mut handles = Vec::new();
        for t in &self.tasks {
            handles.push(tokio::spawn(t.clone().run()));
        }
        let mut failed_handled = false;
        loop {
            let wake = self.reconcile(&mut failed_handled);
            if self.tasks.iter().all(|t| t.state().state == task_state::DEAD) || self.tasks.is_empty() {
                break;
            }
            match wake {
                Some(d) => {
                    let _ = tokio::time::timeout(d, self.changed.notified()).await;
                }
                None => self.changed.notified().await,
            }
        }
        for h in handles {
            let _ = h.await;
        }
        self.reconcile(&mut failed_handled);
        self.done.send_replace(true);
    }

    /// One pass over the task states. Returns when to look again for time-based decisions.
    fn reconcile(&self, failed_handled: &mut bool) -> Option<Duration> {
        let states: Vec<(Arc<TaskRunner>, TaskState)> =
            self.tasks.iter().map(|t| (t.clone(), t.state())).collect();
        let dead = |s: &TaskState| s.state == task_state::DEAD;
        let main_like = |t: &TaskRunner| hook(t).0 != "poststop";

        // Failure and leader rules.
        if !*failed_handled {
            if let Some((failed, _)) = states.iter().find(|(t, s)| main_like(t) && dead(s) && s.failed) {
                *failed_handled = true;
                let msg = format!("Task's sibling {:?} failed", failed.name);
                for (t, s) in &states {
                    if !dead(s) && main_like(t) {
                        let mut ev = event("Sibling Task Failed", msg.clone());
                        ev.failed_sibling = failed.name.clone();
                        t.emit(ev);
                        t.command(TaskCommand::Kill {
                            event: String::new(),
                            reason: msg.clone(),
                        });
                    }
                }
            } else if states.iter().any(|(t, s)| t.task().leader && dead(s)) {
                *failed_handled = true;
                for (t, s) in &states {
                    if !dead(s) && main_like(t) {
                        t.command(TaskCommand::Kill {
                            event: "Leader Task Dead".into(),
                            reason: "Leader Task in Group dead".into(),
                        });
                    }
                }
            }
        }
        let main_tasks: Vec<&(Arc<TaskRunner>, TaskState)> =
            states.iter().filter(|(t, _)| hook(t).0.is_empty()).collect();
        if !main_tasks.is_empty() && main_tasks.iter().all(|(_, s)| dead(s)) {
            for (t, s) in &states {
                if hook(t).1 && !dead(s) {
                    t.command(TaskCommand::Kill {
                        event: "Main Tasks Dead".into(),
                        reason: "Main tasks in the group died".into(),
                    });
                }
            }
        }

        // Lifecycle gates.
        let prestart_ok = states.iter().all(|(t, s)| match hook(t) {
            ("prestart", false) => dead(s) && !s.failed,
            ("prestart", true) => s.state == task_state::RUNNING,
            _ => true,
        });
        let main_started = main_tasks.iter().all(|(_, s)| s.started_at.is_some() || dead(s));
        let others_dead = states.iter().filter(|(t, _)| main_like(t)).all(|(_, s)| dead(s));
        for (t, _) in &states {
            let open = match hook(t).0 {
                "prestart" => true,
                "poststart" => prestart_ok && main_started,
                "poststop" => others_dead,
                _ => prestart_ok,
            };
            if open && let Some(g) = self.gates.get(&t.name) {
                g.send_if_modified(|v| {
                    let changed = !*v;
                    *v = true;
                    changed
                });
            }
        }

        let wake = self.judge_health(&states);
        self.report_state(&states);
        wake
    }

    fn update_strategy(&self) -> Option<UpdateStrategy> {
        let a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let job = a.job.as_ref()?;
        let g = job.task_groups.iter().find(|g| g.name == a.task_group)?;
        g.update.clone().or_else(|| job.update.clone())
    }

    fn judge_health(&self, states: &[(Arc<TaskRunner>, TaskState)]) -> Option<Duration> {
        let (deployment, canary) = {
            let a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
            (
                a.deployment_id.clone(),
                a.deployment_status.as_ref().map(|d| d.canary).unwrap_or(false),
            )
        };
        if deployment.is_empty() || self.health.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return None;
        }
        let u = self.update_strategy().unwrap_or_default();
        if u.health_check.as_deref() == Some("manual") {
            return None;
        }
        let min_healthy = Duration::from_nanos(u.min_healthy_time.unwrap_or(10_000_000_000).max(0) as u64);
        let deadline = Duration::from_nanos(u.healthy_deadline.unwrap_or(300_000_000_000).max(0) as u64);
        let set = |healthy: bool| {
            *self.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(AllocDeploymentStatus {
                healthy: Some(healthy),
                timestamp: Some(Timestamp(drover_drivers::now_nanos())),
                canary,
                modify_index: 0,
            });
        };
        let relevant: Vec<&(Arc<TaskRunner>, TaskState)> = states
            .iter()
            .filter(|(t, _)| {
                !matches!(
                    hook(t),
                    ("poststop", _) | ("prestart", false) | ("poststart", false)
                )
            })
            .collect();
        if states.iter().any(|(_, s)| s.failed) || relevant.iter().any(|(_, s)| s.state == task_state::DEAD) {
            set(false);
            return None;
        }
        if self.created.elapsed() >= deadline {
            set(false);
            return None;
        }
        if relevant.iter().all(|(_, s)| s.state == task_state::RUNNING) {
            let now = drover_drivers::now_nanos();
            let since = relevant
                .iter()
                .filter_map(|(_, s)| s.started_at.map(|t| t.0))
                .max()
                .unwrap_or(now);
            let up = Duration::from_nanos((now - since).max(0) as u64);
            if up >= min_healthy {
                set(true);
                return None;
            }
            return Some((min_healthy - up).min(deadline.saturating_sub(self.created.elapsed())));
        }
        Some(
            deadline
                .saturating_sub(self.created.elapsed())
                .min(Duration::from_secs(5)),
        )
    }

    fn report_state(&self, states: &[(Arc<TaskRunner>, TaskState)]) {
        let task_states: BTreeMap<String, TaskState> =
            states.iter().map(|(t, s)| (t.name.clone(), s.clone())).collect();
        let (status, desc) = client_status_of(&task_states);
        let a = self.alloc.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut deployment_status = a.deployment_status.clone();
        if let Some(h) = self.health.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            deployment_status = Some(h);
        }
        let update = Allocation {
            id: a.id.clone(),
            node_id: a.node_id.clone(),
            client_status: status.to_string(),
            client_description: desc.to_string(),
            task_states,
            deployment_status,
            network_status: a.network_status.clone(),
            ..Default::default()
        };
        (self.report)(update);
    }

    /// Removes the allocation directory (after every task is dead).
    pub fn destroy_dir(&self) {
        if let Err(e) = drover_drivers::taskdir::destroy(&self.root) {
            tracing::warn!(alloc_id = %self.id, error = %e, "could not remove the allocation directory");
        }
    }
}
