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
            done,
            setup_error: Mutex::new(None),
        })
    }

    /// The allocation as last received.
    pub fn alloc(&self) -> Allocation {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The AllocModifyIndex of the allocation as last received (read on every watch answer,
    /// so without copying the allocation).
    pub fn alloc_modify_index(&self) -> u64 {
        self.alloc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alloc_modify_index
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

    /// Kills every task but the poststop ones (they run after the others) and the sidecars
    /// (stopped once the main tasks are dead, so a proxy or log shipper outlives them; with no
    /// main task they go at once).
    pub fn kill_all(&self, kind: &str, reason: &str) {
        let has_main = self.tasks.iter().any(|t| hook(t).0.is_empty());
        for t in &self.tasks {
            let (h, sidecar) = hook(t);
            if h != "poststop" && !(sidecar && has_main) {
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
                t.command(TaskCommand::Fail { event: Box::new(ev) });
            }
        }
        let mut handles = Vec::new();
        for t in &self.tasks {
            handles.push(tokio::spawn(t.clone().run()));
        }
        // Stopped by the servers before it ran here, or while the agent was down: no task may
        // (re)start, and running ones are stopped.
        let current = self.alloc();
        if current.server_terminal() {
            self.kill_all("", &current.desired_description);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDb;
    use drover_types::{Job, Task, TaskGroup};
    use std::time::Duration;

    fn alloc_with(tasks: Vec<Task>, desired: &str) -> Allocation {
        let job = Job {
            id: "j".into(),
            name: "j".into(),
            job_type: "batch".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                tasks,
                ..Default::default()
            }],
            ..Default::default()
        };
        Allocation {
            id: uuid::Uuid::new_v4().to_string(),
            name: "j.g[0]".into(),
            job_id: "j".into(),
            task_group: "g".into(),
            job: Some(Arc::new(job)),
            desired_status: desired.into(),
            ..Default::default()
        }
    }

    fn mock_task(name: &str, run_for: &str) -> Task {
        let mut t = Task {
            name: name.into(),
            driver: "mock".into(),
            ..Default::default()
        };
        t.config.insert("run_for".into(), serde_json::json!(run_for));
        t
    }

    async fn run(
        alloc: Allocation,
        root: PathBuf,
        dir: &std::path::Path,
    ) -> (Arc<AllocRunner>, Arc<Mutex<Vec<Allocation>>>) {
        let ctx = TaskContext {
            db: StateDb::open(dir).expect("db"),
            node: Arc::new(Mutex::new(drover_types::Node::default())),
            region: "global".into(),
            alloc_root: root,
            driver_state_dir: dir.join("tasks"),
            max_kill_timeout: Duration::from_secs(5),
            changed: Arc::new(Notify::new()),
        };
        let mut drivers: BTreeMap<String, Arc<dyn drover_drivers::Driver>> = BTreeMap::new();
        drivers.insert("mock".into(), Arc::new(drover_drivers::mock::MockDriver::new()));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let report: Reporter = Arc::new(move |a| sink.lock().expect("lock").push(a));
        let r = AllocRunner::new(alloc, ctx, &drivers, BTreeMap::new(), report);
        let h = tokio::spawn(r.clone().run());
        tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("the runner finishes")
            .expect("join");
        (r, reports)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_allocation_stopped_before_it_ran_starts_no_task() {
        let tmp = tempfile::tempdir().expect("tmp");
        let alloc = alloc_with(vec![mock_task("a", "30s"), mock_task("b", "30s")], "stop");
        let (r, reports) = run(alloc, tmp.path().join("alloc"), tmp.path()).await;
        for t in r.tasks() {
            let s = t.state();
            assert_eq!(s.state, "dead");
            assert!(!s.failed);
            let kinds: Vec<&str> = s.events.iter().map(|e| e.event_type.as_str()).collect();
            assert!(!kinds.contains(&"Started"), "{kinds:?}");
        }
        let last = reports.lock().expect("lock").last().cloned().expect("a report");
        assert_eq!(last.client_status, "complete");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_that_cannot_be_built_fails_every_task() {
        let tmp = tempfile::tempdir().expect("tmp");
        // A file where the allocation directory's parent should be.
        std::fs::write(tmp.path().join("blocker"), "x").expect("write");
        let alloc = alloc_with(vec![mock_task("a", "30s")], "run");
        let (r, reports) = run(alloc, tmp.path().join("blocker").join("alloc"), tmp.path()).await;
        let s = r.tasks()[0].state();
        assert_eq!(s.state, "dead");
        assert!(s.failed, "{s:?}");
        let setup = s
            .events
            .iter()
            .find(|e| e.event_type == "Setup Failure")
            .expect("Setup Failure");
        assert!(
            setup.fails_task && setup.message.contains("allocation directory"),
            "{setup:?}"
        );
        assert!(!s.events.iter().any(|e| e.event_type == "Started"));
        let last = reports.lock().expect("lock").last().cloned().expect("a report");
        assert_eq!(last.client_status, "failed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_successful_batch_task_gets_one_terminated_event() {
        let tmp = tempfile::tempdir().expect("tmp");
        let alloc = alloc_with(vec![mock_task("a", "50ms")], "run");
        let (r, reports) = run(alloc, tmp.path().join("alloc"), tmp.path()).await;
        let s = r.tasks()[0].state();
        let kinds: Vec<&str> = s.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["Received", "Task Setup", "Started", "Terminated"]);
        assert!(!s.failed);
        assert_eq!(
            reports
                .lock()
                .expect("lock")
                .last()
                .expect("report")
                .client_status,
            "complete"
        );
    }
}
