//! The driver conformance suite: one set of checks every driver runs, so that `raw_exec`,
//! `exec`, `java`, `qemu` and `mock` behave the same way towards the client.
//!
//! ```text
//!  tests/conformance.rs                       this module
//!  ─────────────────────                      ───────────
//!  Suite { make: || Arc<dyn Driver>,  ──────▶ exit_zero_and_stdout, exit_code, env_reaches_task,
//!          root: temp dir,                    stop_kills_task, stop_escalates_to_sigkill,
//!          cases: Cases { configs } }         signal_task, recover_running_task,
//!                                             exit_while_agent_away, bad_config, destroy, …
//! ```
//!
//! # Vocabulary
//! - **case**: a driver-specific `config {}` block that makes the task do one thing (print a
//!   line, exit 3, run until stopped); [`Cases`] holds one per behaviour. Behaviours a driver
//!   cannot show (mock has no environment, qemu cannot trap signals) are `None` and their check
//!   passes vacuously.
//! - **fresh instance**: `Suite::make` is called again to stand for an agent that restarted;
//!   the first instance is dropped ("the agent is away").
//! - **leak check**: a per-driver hook run after each task is destroyed (exec: no runc
//!   container, no cgroup directory left).
//!
//! # Guarantees checked
//! Exit codes and signals are reported; stdout reaches `alloc/logs/<task>.stdout.0`; the
//! environment reaches the task; `stop_task` returns only when every process of the task is
//! dead, escalating to SIGKILL after the timeout; a fresh instance recovers a running task and
//! reports the real exit code, also of a task that exited while no instance existed; invalid
//! config names the key; destroy refuses a running task unless forced and frees everything.
//!
//! The checks panic on failure (they are test code, kept in the library so every driver's test
//! file can use them). [`prerequisite`] decides whether a test whose tool is missing skips or,
//! under `CI=true`, fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Driver, DriverError, EventSink, ExitResult, TaskConfig, TaskHandle, TaskResources};

/// A driver `config {}` block.
pub type Config = BTreeMap<String, Value>;

/// Builds a fresh driver instance (a restarted agent gets a new one).
pub type DriverFactory = Arc<dyn Fn() -> Arc<dyn Driver> + Send + Sync>;

/// Called with the handle of every destroyed task; panics when the driver left something behind.
pub type LeakCheck = Arc<dyn Fn(&TaskHandle) + Send + Sync>;

/// The line [`Cases::print_line`] must print.
pub const HELLO: &str = "hello from drover";
/// The environment variable [`Cases::print_env`] must print, and its value.
pub const ENV_VAR: (&str, &str) = ("DROVER_CONFORMANCE", "value-42");
/// What the long-running cases print once they are set up (traps installed).
pub const READY: &str = "ready";

/// The driver-specific configs the suite runs.
#[derive(Clone)]
pub struct Cases {
    /// Prints [`HELLO`] on stdout, exits 0.
    pub print_line: Config,
    /// Exits 3 at once.
    pub exit_3: Config,
    /// Runs for about 3 seconds, then exits 3.
    pub exit_3_later: Config,
    /// Runs until stopped (SIGINT kills it).
    pub long_running: Config,
    /// Prints the value of [`ENV_VAR`].
    pub print_env: Option<Config>,
    /// Ignores SIGINT, prints [`READY`], runs until SIGKILLed.
    pub ignore_sigint: Option<Config>,
    /// Prints [`READY`], then prints the given output when it receives the given signal.
    pub signal: Option<(Config, String, String)>,
    /// Starting this fails with a fatal error whose message contains the string (the binary).
    pub missing_binary: Option<(Config, String)>,
    /// An invalid config and the key the error must name.
    pub bad_config: (Config, String),
    /// Tasks survive a driver instance (false for mock).
    pub survives_restart: bool,
    /// Tasks are real processes whose pids `task_stats` reports.
    pub has_processes: bool,
    /// Extra leak check after destroy.
    pub leak_check: Option<LeakCheck>,
    /// Prepares every new task directory (copies a class file or disk image into `local/`),
    /// standing in for the client's artifact downloads.
    pub prepare: Option<Prepare>,
}

/// Called with each new task's config after its directory was built.
pub type Prepare = Arc<dyn Fn(&TaskConfig) + Send + Sync>;

impl std::fmt::Debug for Cases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cases")
            .field("print_line", &self.print_line)
            .field("survives_restart", &self.survives_restart)
            .finish_non_exhaustive()
    }
}

/// A driver under test.
#[derive(Clone)]
pub struct Suite {
    /// Makes a driver instance.
    pub make: DriverFactory,
    /// A scratch directory for allocation and state dirs (owned by the test).
    pub root: PathBuf,
    /// The driver's configs.
    pub cases: Cases,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Whether a test may run: `Ok` → true; `Err(reason)` → prints the reason and returns false, or
/// panics when the environment has `CI=true` (CI machines must have every prerequisite).
pub fn prerequisite(what: &str, check: Result<(), String>) -> bool {
    match check {
        Ok(()) => true,
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{what}: prerequisite missing and CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping {what}: {reason}");
            false
        }
    }
}

const WAIT: Duration = Duration::from_secs(60);

fn sink() -> EventSink {
    Arc::new(|_| {})
}

/// Whether a process is gone (or a zombie nobody has reaped yet).
pub fn process_gone(pid: u32) -> bool {
    !crate::executor::proc_alive(pid as i32, 0)
}

impl Suite {
    /// A new task config: builds the allocation dir (one task) under `root`.
    pub fn task(&self, name: &str, config: &Config) -> TaskConfig {
        let alloc_id = uuid::Uuid::new_v4().to_string();
        let alloc_dir = self.root.join(&alloc_id);
        crate::taskdir::build(&alloc_dir, &[name]).expect("building the alloc dir");
        let mut env = BTreeMap::new();
        env.insert(ENV_VAR.0.to_string(), ENV_VAR.1.to_string());
        env.insert(
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
        env.insert("NOMAD_TASK_NAME".to_string(), name.to_string());
        let task = TaskConfig {
            id: format!(
                "{alloc_id}/{name}/{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            name: name.to_string(),
            job_id: "conformance".into(),
            job_name: "conformance".into(),
            task_group: "group".into(),
            namespace: "default".into(),
            alloc_id: alloc_id.clone(),
            env,
            resources: TaskResources {
                cpu_shares: 100,
                memory_mb: 256,
                ..Default::default()
            },
            task_dir: alloc_dir.join(name),
            log_dir: alloc_dir.join("alloc/logs"),
            state_dir: self.root.join("state").join(format!("{alloc_id}-{name}")),
            alloc_dir,
            config: config.clone(),
            ..Default::default()
        };
        if let Some(prepare) = &self.cases.prepare {
            prepare(&task);
        }
        task
    }

    async fn start(&self, driver: &Arc<dyn Driver>, name: &str, config: &Config) -> TaskHandle {
        let task = self.task(name, config);
        match driver.start_task(task, sink()).await {
            Ok(h) => h,
            Err(e) => panic!("{}: starting {name}: {e}", driver.name()),
        }
    }

    async fn wait(&self, driver: &Arc<dyn Driver>, h: &TaskHandle) -> ExitResult {
        match tokio::time::timeout(WAIT, driver.wait_task(&h.config.id)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("{}: wait_task: {e}", driver.name()),
            Err(_) => panic!(
                "{}: task {} did not exit within {WAIT:?}",
                driver.name(),
                h.config.name
            ),
        }
    }

    fn stdout(h: &TaskHandle) -> String {
        std::fs::read_to_string(h.config.log_dir.join(format!("{}.stdout.0", h.config.name)))
            .unwrap_or_default()
    }

    async fn wait_output(&self, h: &TaskHandle, want: &str) {
        let deadline = Instant::now() + WAIT;
        while !Self::stdout(h).contains(want) {
            if Instant::now() > deadline {
                let err =
                    std::fs::read_to_string(h.config.log_dir.join(format!("{}.stderr.0", h.config.name)))
                        .unwrap_or_default();
                panic!(
                    "task never printed {want:?}; stdout {:?}, stderr {err:?}",
                    Self::stdout(h)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pids(&self, driver: &Arc<dyn Driver>, h: &TaskHandle) -> Vec<u32> {
        let stats = driver.task_stats(&h.config.id).await.expect("task_stats");
        if self.cases.has_processes {
            assert!(
                !stats.pids.is_empty(),
                "{}: task_stats reports no pids for a running task",
                driver.name()
            );
        }
        stats.pids
    }

    async fn assert_running(&self, driver: &Arc<dyn Driver>, h: &TaskHandle) {
        let waited = tokio::time::timeout(Duration::from_millis(300), driver.wait_task(&h.config.id)).await;
        assert!(
            waited.is_err(),
            "{}: the task should still run, got {waited:?}",
            driver.name()
        );
    }

    async fn assert_gone(pids: &[u32]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<u32> = pids.iter().copied().filter(|p| !process_gone(*p)).collect();
            if alive.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes of the task still alive: {alive:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn destroy(&self, driver: &Arc<dyn Driver>, h: &TaskHandle) {
        driver
            .destroy_task(&h.config.id, true)
            .await
            .unwrap_or_else(|e| panic!("{}: destroy: {e}", driver.name()));
        if let Some(check) = &self.cases.leak_check {
            check(h);
        }
        let _ = crate::taskdir::destroy(&h.config.alloc_dir);
    }

    /// A task prints a line and exits 0: the exit is successful and the line is in the log.
    pub async fn exit_zero_and_stdout(&self) {
        let d = (self.make)();
        let h = self.start(&d, "hello", &self.cases.print_line).await;
        let r = self.wait(&d, &h).await;
        assert!(r.successful(), "{}: {r:?}", d.name());
        let out = Self::stdout(&h);
        assert!(out.contains(HELLO), "{}: stdout log {out:?}", d.name());
        // Waiting again gives the same answer.
        assert_eq!(self.wait(&d, &h).await, r);
        self.destroy(&d, &h).await;
    }

    /// A task exits 3: reported as exit code 3, no signal.
    pub async fn exit_code(&self) {
        let d = (self.make)();
        let h = self.start(&d, "three", &self.cases.exit_3).await;
        let r = self.wait(&d, &h).await;
        assert_eq!(
            (r.exit_code, r.signal, r.err.clone()),
            (3, 0, None),
            "{}: {r:?}",
            d.name()
        );
        self.destroy(&d, &h).await;
    }

    /// The task's environment reaches it, and the settings of Drover's own helper processes
    /// (the executor's and the container init's allocator setting) do not.
    pub async fn env_reaches_task(&self) {
        let Some(cfg) = &self.cases.print_env else { return };
        let d = (self.make)();
        let h = self.start(&d, "env", cfg).await;
        let r = self.wait(&d, &h).await;
        assert!(r.successful(), "{}: {r:?}", d.name());
        let out = Self::stdout(&h);
        assert!(out.contains(ENV_VAR.1), "{}: stdout {out:?}", d.name());
        assert!(
            !out.contains(crate::executor::LEAN_ALLOCATOR_ENV.0),
            "{}: the helpers' allocator setting leaked into the task: {out:?}",
            d.name()
        );
        self.destroy(&d, &h).await;
    }

    /// `stop_task` of a running task returns once the task and its processes are dead.
    pub async fn stop_kills_task(&self) {
        let d = (self.make)();
        let h = self.start(&d, "long", &self.cases.long_running).await;
        self.assert_running(&d, &h).await;
        let pids = self.pids(&d, &h).await;
        let t = Instant::now();
        tokio::time::timeout(WAIT, d.stop_task(&h.config.id, Duration::from_secs(10), ""))
            .await
            .expect("stop_task hung")
            .unwrap_or_else(|e| panic!("{}: stop: {e}", d.name()));
        assert!(
            t.elapsed() < Duration::from_secs(9),
            "{}: SIGINT should have ended it",
            d.name()
        );
        // Any exit is fine (QEMU, for one, exits 0 on SIGINT); what matters is that it ended.
        self.wait(&d, &h).await;
        Self::assert_gone(&pids).await;
        self.destroy(&d, &h).await;
    }

    /// A task that ignores the stop signal is SIGKILLed after the timeout.
    pub async fn stop_escalates_to_sigkill(&self) {
        let Some(cfg) = &self.cases.ignore_sigint else {
            return;
        };
        let d = (self.make)();
        let h = self.start(&d, "stubborn", cfg).await;
        self.wait_output(&h, READY).await;
        let pids = self.pids(&d, &h).await;
        let t = Instant::now();
        tokio::time::timeout(WAIT, d.stop_task(&h.config.id, Duration::from_secs(1), "SIGINT"))
            .await
            .expect("stop_task hung")
            .unwrap_or_else(|e| panic!("{}: stop: {e}", d.name()));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{}: killed before the timeout ({took:?})",
            d.name()
        );
        assert!(took < Duration::from_secs(20), "{}: stop took {took:?}", d.name());
        let r = self.wait(&d, &h).await;
        assert_eq!(r.signal, 9, "{}: {r:?}", d.name());
        Self::assert_gone(&pids).await;
        self.destroy(&d, &h).await;
    }

    /// `signal_task` delivers a signal the task reacts to.
    pub async fn signal_task(&self) {
        let Some((cfg, signal, output)) = &self.cases.signal else {
            return;
        };
        let d = (self.make)();
        assert!(d.capabilities().send_signals);
        let h = self.start(&d, "signal", cfg).await;
        self.wait_output(&h, READY).await;
        d.signal_task(&h.config.id, signal)
            .await
            .unwrap_or_else(|e| panic!("{}: signal: {e}", d.name()));
        self.wait_output(&h, output).await;
        assert!(d.signal_task(&h.config.id, "SIGNOPE").await.is_err());
        d.stop_task(&h.config.id, Duration::from_secs(5), "")
            .await
            .expect("stop");
        self.destroy(&d, &h).await;
    }

    /// A fresh driver instance recovers a running task: same processes, still running, then the
    /// real exit code.
    pub async fn recover_running_task(&self) {
        let first = (self.make)();
        let h = self.start(&first, "recover", &self.cases.exit_3_later).await;
        let pids = self.pids(&first, &h).await;
        let second = (self.make)();
        if !self.cases.survives_restart {
            assert!(
                second.recover_task(&h).await.is_err(),
                "{}: recovered a task it cannot have",
                second.name()
            );
            self.destroy(&first, &h).await;
            return;
        }
        drop(first);
        second
            .recover_task(&h)
            .await
            .unwrap_or_else(|e| panic!("{}: recover: {e}", second.name()));
        second.recover_task(&h).await.expect("recover is idempotent");
        let again = self.pids(&second, &h).await;
        for p in &pids {
            assert!(
                again.contains(p),
                "{}: pid {p} not seen after recovery: {again:?}",
                second.name()
            );
        }
        self.assert_running(&second, &h).await;
        let r = self.wait(&second, &h).await;
        assert_eq!((r.exit_code, r.signal), (3, 0), "{}: {r:?}", second.name());
        self.destroy(&second, &h).await;
    }

    /// The executor dies (OOM, `kill -9`) while its task runs: a fresh driver instance refuses
    /// to recover the task, and destroying the handle still takes down everything the task
    /// left, so a restart cannot run a second copy next to an orphan. Executor-based drivers
    /// only (others return at once).
    pub async fn dead_executor_leaves_nothing(&self) {
        let first = (self.make)();
        let h = self.start(&first, "orphan", &self.cases.long_running).await;
        let Some(executor) = h.driver_state.get("executor_pid").and_then(|v| v.as_i64()) else {
            self.destroy(&first, &h).await;
            return;
        };
        let pids = self.pids(&first, &h).await;
        drop(first);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(executor as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !process_gone(executor as u32) {
            assert!(Instant::now() < deadline, "executor {executor} survived SIGKILL");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let second = (self.make)();
        assert!(
            second.recover_task(&h).await.is_err(),
            "{}: recovered a task whose executor is gone",
            second.name()
        );
        self.destroy(&second, &h).await;
        Self::assert_gone(&pids).await;
    }

    /// A task that exits while no driver instance exists is reported with its exit code.
    pub async fn exit_while_agent_away(&self) {
        let first = (self.make)();
        let h = self.start(&first, "away", &self.cases.exit_3).await;
        if !self.cases.survives_restart {
            self.destroy(&first, &h).await;
            return;
        }
        drop(first);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let second = (self.make)();
        second
            .recover_task(&h)
            .await
            .unwrap_or_else(|e| panic!("{}: recover of an exited task: {e}", second.name()));
        let r = tokio::time::timeout(Duration::from_secs(1), second.wait_task(&h.config.id))
            .await
            .expect("the task exited while the agent was away; wait must answer at once")
            .expect("wait");
        assert_eq!(
            (r.exit_code, r.signal, r.err.clone()),
            (3, 0, None),
            "{}: {r:?}",
            second.name()
        );
        self.destroy(&second, &h).await;
    }

    /// An invalid config is refused, naming the key, by validate and by start.
    pub async fn bad_config(&self) {
        let d = (self.make)();
        let (cfg, field) = &self.cases.bad_config;
        let check = |e: DriverError| match e {
            DriverError::InvalidConfig { field: f, .. } => assert_eq!(&f, field),
            other => panic!("{}: expected InvalidConfig({field}), got {other:?}", d.name()),
        };
        check(
            d.validate_config(cfg)
                .expect_err("validate accepted a bad config"),
        );
        let task = self.task("bad", cfg);
        let alloc_dir = task.alloc_dir.clone();
        check(
            d.start_task(task, sink())
                .await
                .expect_err("start accepted a bad config"),
        );
        let _ = crate::taskdir::destroy(&alloc_dir);
        let mut unknown = self.cases.print_line.clone();
        unknown.insert("no_such_key".into(), Value::Bool(true));
        match d.validate_config(&unknown) {
            Err(DriverError::InvalidConfig { field, .. }) => assert_eq!(field, "no_such_key"),
            other => panic!("{}: unknown key accepted: {other:?}", d.name()),
        }
    }

    /// A missing binary is a fatal start error naming it.
    pub async fn missing_binary(&self) {
        let Some((cfg, name)) = &self.cases.missing_binary else {
            return;
        };
        let d = (self.make)();
        let task = self.task("missing", cfg);
        let alloc_dir = task.alloc_dir.clone();
        let err = d
            .start_task(task, sink())
            .await
            .expect_err("started a missing binary");
        assert!(!err.recoverable(), "{}: {err:?}", d.name());
        assert!(err.to_string().contains(name.as_str()), "{}: {err}", d.name());
        let _ = crate::taskdir::destroy(&alloc_dir);
    }

    /// Destroy refuses a running task, force kills it, and both free the task.
    pub async fn destroy_cleans_up(&self) {
        let d = (self.make)();
        let h = self.start(&d, "destroy", &self.cases.long_running).await;
        let pids = self.pids(&d, &h).await;
        assert!(
            d.destroy_task(&h.config.id, false).await.is_err(),
            "destroyed a running task"
        );
        d.destroy_task(&h.config.id, true).await.expect("forced destroy");
        Self::assert_gone(&pids).await;
        assert!(matches!(
            d.wait_task(&h.config.id).await,
            Err(DriverError::TaskNotFound(_))
        ));
        assert!(!path_exists(&h.config.state_dir), "state dir left behind");
        if let Some(check) = &self.cases.leak_check {
            check(&h);
        }
        let _ = crate::taskdir::destroy(&h.config.alloc_dir);

        let h = self.start(&d, "destroy2", &self.cases.exit_3).await;
        self.wait(&d, &h).await;
        d.destroy_task(&h.config.id, false)
            .await
            .expect("destroy of an exited task");
        assert!(!path_exists(&h.config.state_dir), "state dir left behind");
        assert!(matches!(
            d.destroy_task(&h.config.id, false).await,
            Err(DriverError::TaskNotFound(_))
        ));
        if let Some(check) = &self.cases.leak_check {
            check(&h);
        }
        let _ = crate::taskdir::destroy(&h.config.alloc_dir);
    }
}

fn path_exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Helper for the [`Cases`]: a config from a JSON object literal.
pub fn config(value: Value) -> Config {
    match value {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("a config must be a JSON object, got {other}"),
    }
}
