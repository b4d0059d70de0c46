//! The `mock` driver: pretends to run tasks, in process, for client tests that must not start
//! real processes. Its `config {}` keys are those of Nomad's mock driver.
//!
//! ```text
//!  config { run_for = "5s" exit_code = 3 stdout_string = "hi\n" stdout_repeat = 2 … }
//!     start_task ─▶ (start_error? start_block_for?) ─▶ tokio task:
//!                     writes stdout_string (+ stdout_repeat times, every stdout_repeat_duration)
//!                     to alloc/logs/<task>.stdout.N, then after run_for exits with
//!                     exit_code / exit_signal / exit_err_msg
//!     stop_task(timeout, sig) ─▶ exits after kill_after with `sig`, or after timeout with SIGKILL
//! ```
//!
//! # Keys
//! `run_for`, `start_block_for`, `kill_after`, `stdout_repeat_duration`: Go-style durations
//! (`"100ms"`, `"1m30s"`; a bare number is nanoseconds). `run_for` absent or zero: the task
//! exits at once. `start_error` (+ `start_error_recoverable`) makes `start_task` fail.
//!
//! # Limits
//! Tasks live inside the driver instance: `recover_task` of a task it does not know fails
//! (mock tasks never survive an agent restart). `signal_task` only records the signal
//! ([`MockDriver::signals`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::executor::{cfg_string, check_keys};
use crate::logs::RotatingWriter;
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, ExitResult, Fingerprint, FsIsolation,
    TaskConfig, TaskHandle, TaskResourceUsage, now_nanos,
};

const KEYS: &[&str] = &[
    "run_for",
    "exit_code",
    "exit_signal",
    "exit_err_msg",
    "start_error",
    "start_error_recoverable",
    "start_block_for",
    "kill_after",
    "stdout_string",
    "stdout_repeat",
    "stdout_repeat_duration",
];

/// A parsed mock `config {}` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockConfig {
    /// How long the task runs.
    pub run_for: Duration,
    /// Exit code when it ends by itself.
    pub exit_code: i64,
    /// Signal when it ends by itself.
    pub exit_signal: i64,
    /// `ExitResult::err` when it ends by itself.
    pub exit_err_msg: Option<String>,
    /// Makes `start_task` fail with this message.
    pub start_error: Option<String>,
    /// Whether that failure is recoverable.
    pub start_error_recoverable: bool,
    /// `start_task` takes this long.
    pub start_block_for: Duration,
    /// After a stop signal, the task takes this long to exit (longer than the stop timeout:
    /// it is "killed" with SIGKILL at the timeout).
    pub kill_after: Duration,
    /// Written to stdout at start.
    pub stdout_string: String,
    /// Written again this many times …
    pub stdout_repeat: u64,
    /// … this far apart.
    pub stdout_repeat_duration: Duration,
}

/// Parses a Go-style duration: `"1h2m3.5s"`, `"100ms"`, `"10us"`, `"5ns"`; a bare number is
/// nanoseconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(ns) = s.parse::<u64>() {
        return Some(Duration::from_nanos(ns));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_nanos(total as u64))
}

fn cfg_duration(config: &BTreeMap<String, Value>, key: &str) -> Result<Duration, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(|| DriverError::config(key, "must be a duration")),
        Some(Value::String(s)) => {
            parse_duration(s).ok_or_else(|| DriverError::config(key, format!("invalid duration {s:?}")))
        }
        Some(_) => Err(DriverError::config(key, "must be a duration")),
    }
}

fn cfg_int(config: &BTreeMap<String, Value>, key: &str) -> Result<i64, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| DriverError::config(key, "must be an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| DriverError::config(key, "must be an integer")),
        Some(_) => Err(DriverError::config(key, "must be an integer")),
    }
}

fn cfg_bool(config: &BTreeMap<String, Value>, key: &str) -> Result<bool, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => s.parse().map_err(|_| DriverError::config(key, "must be a bool")),
        Some(_) => Err(DriverError::config(key, "must be a bool")),
    }
}

impl MockConfig {
    /// Parses and checks a `config {}` block.
    pub fn parse(config: &BTreeMap<String, Value>) -> Result<Self, DriverError> {
        check_keys(config, KEYS)?;
        let stdout_repeat = cfg_int(config, "stdout_repeat")?;
        if stdout_repeat < 0 {
            return Err(DriverError::config("stdout_repeat", "must not be negative"));
        }
        Ok(MockConfig {
            run_for: cfg_duration(config, "run_for")?,
            exit_code: cfg_int(config, "exit_code")?,
            exit_signal: cfg_int(config, "exit_signal")?,
            exit_err_msg: cfg_string(config, "exit_err_msg")?.filter(|s| !s.is_empty()),
            start_error: cfg_string(config, "start_error")?.filter(|s| !s.is_empty()),
            start_error_recoverable: cfg_bool(config, "start_error_recoverable")?,
            start_block_for: cfg_duration(config, "start_block_for")?,
            kill_after: cfg_duration(config, "kill_after")?,
            stdout_string: cfg_string(config, "stdout_string")?.unwrap_or_default(),
            stdout_repeat: stdout_repeat as u64,
            stdout_repeat_duration: cfg_duration(config, "stdout_repeat_duration")?,
        })
    }
}

#[derive(Debug)]
struct MockTask {
    exit: watch::Receiver<Option<ExitResult>>,
    stop: watch::Sender<Option<(Duration, i64)>>,
    signals: Mutex<Vec<String>>,
}

impl MockTask {
    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

/// The mock driver.
#[derive(Debug, Default)]
pub struct MockDriver {
    tasks: Mutex<HashMap<String, Arc<MockTask>>>,
}

impl MockDriver {
    /// A mock driver with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, task_id: &str) -> Result<Arc<MockTask>, DriverError> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    /// The signals `signal_task` delivered to a task, oldest first.
    pub fn signals(&self, task_id: &str) -> Vec<String> {
        self.get(task_id)
            .map(|t| t.signals.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }
}

async fn run(
    cfg: MockConfig,
    mut writer: Option<RotatingWriter>,
    mut stop: watch::Receiver<Option<(Duration, i64)>>,
    exit: watch::Sender<Option<ExitResult>>,
) {
    let mut write = move |s: &str| {
        if let Some(w) = writer.as_mut()
            && !s.is_empty()
            && let Err(e) = w.write_all(s.as_bytes())
        {
            tracing::warn!("mock driver: writing stdout: {e}");
        }
    };
    write(&cfg.stdout_string);
    let repeat = {
        let (text, n, every) = (
            cfg.stdout_string.clone(),
            cfg.stdout_repeat,
            cfg.stdout_repeat_duration,
        );
        async move {
            for _ in 0..n {
                tokio::time::sleep(every).await;
                write(&text);
            }
            std::future::pending::<()>().await
        }
    };
    let ended = ExitResult {
        exit_code: cfg.exit_code,
        signal: cfg.exit_signal,
        oom_killed: false,
        err: cfg.exit_err_msg.clone(),
    };
    let result = tokio::select! {
        _ = tokio::time::sleep(cfg.run_for) => ended,
        _ = repeat => ended,
        request = async { stop.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s) } => {
            let (timeout, sig) = request.unwrap_or((Duration::ZERO, 9));
            let (delay, signal) = if cfg.kill_after <= timeout { (cfg.kill_after, sig) } else { (timeout, 9) };
            tokio::time::sleep(delay).await;
            ExitResult { signal, ..Default::default() }
        }
    };
    let _ = exit.send(Some(result));
}

impl Driver for MockDriver {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            fs_isolation: FsIsolation::None,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(async {
            let mut attrs = BTreeMap::new();
            attrs.insert("driver.mock".to_string(), "true".to_string());
            Fingerprint::healthy(attrs)
        })
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        MockConfig::parse(config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        _events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(async move {
            let cfg = MockConfig::parse(&config.config)?;
            if !cfg.start_block_for.is_zero() {
                tokio::time::sleep(cfg.start_block_for).await;
            }
            if let Some(msg) = &cfg.start_error {
                return Err(if cfg.start_error_recoverable {
                    DriverError::retryable(msg.clone())
                } else {
                    DriverError::fatal(msg.clone())
                });
            }
            let writer = if config.log_dir.as_os_str().is_empty() {
                None
            } else {
                Some(RotatingWriter::open(
                    &config.log_dir,
                    &config.name,
                    "stdout",
                    config.logs,
                )?)
            };
            let (exit_tx, exit_rx) = watch::channel(None);
            let (stop_tx, stop_rx) = watch::channel(None);
            let task = Arc::new(MockTask {
                exit: exit_rx,
                stop: stop_tx,
                signals: Mutex::new(Vec::new()),
            });
            {
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                if tasks.contains_key(&config.id) {
                    return Err(DriverError::Other(format!(
                        "task {} is already started",
                        config.id
                    )));
                }
                tasks.insert(config.id.clone(), task);
            }
            tokio::spawn(run(cfg, writer, stop_rx, exit_tx));
            Ok(TaskHandle {
                driver: "mock".into(),
                config,
                driver_state: Value::Null,
                started_at: now_nanos(),
            })
        })
    }

    fn recover_task(&self, handle: &TaskHandle) -> BoxFuture<'_, Result<(), DriverError>> {
        let known = self.get(&handle.config.id).is_ok();
        let id = handle.config.id.clone();
        Box::pin(async move {
            if known {
                Ok(())
            } else {
                Err(DriverError::Other(format!(
                    "mock task {id} cannot be recovered: mock tasks do not survive an agent restart"
                )))
            }
        })
    }

    fn wait_task(&self, task_id: &str) -> BoxFuture<'_, Result<ExitResult, DriverError>> {
        let task = self.get(task_id);
        Box::pin(async move {
            let mut rx = task?.exit.clone();
            let r = rx
                .wait_for(|e| e.is_some())
                .await
                .map_err(|_| DriverError::Other("mock task vanished".into()))?;
            Ok(r.clone().unwrap_or_default())
        })
    }

    fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> BoxFuture<'_, Result<(), DriverError>> {
        let task = self.get(task_id);
        let signal = signal.to_string();
        Box::pin(async move {
            let task = task?;
            let sig = if signal.trim().is_empty() {
                nix::sys::signal::Signal::SIGINT
            } else {
                crate::parse_signal(&signal)?
            };
            task.stop.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some((timeout, sig as i64));
                    true
                } else {
                    false
                }
            });
            let mut rx = task.exit.clone();
            let _ = rx.wait_for(|e| e.is_some()).await;
            Ok(())
        })
    }

    fn destroy_task(&self, task_id: &str, force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        let id = task_id.to_string();
        Box::pin(async move {
            let task = self.get(&id)?;
            if !task.exited() {
                if !force {
                    return Err(DriverError::Other(format!(
                        "task {id} is still running; stop it first (or destroy with force)"
                    )));
                }
                self.stop_task(&id, Duration::ZERO, "SIGKILL").await?;
            }
            self.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            Ok(())
        })
    }

    fn signal_task(&self, task_id: &str, signal: &str) -> BoxFuture<'_, Result<(), DriverError>> {
        let task = self.get(task_id);
        let signal = signal.to_string();
        Box::pin(async move {
            let task = task?;
            crate::parse_signal(&signal)?;
            if task.exited() {
                return Err(DriverError::Other("task is not running".into()));
            }
            task.signals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(signal);
            Ok(())
        })
    }

    fn task_stats(&self, task_id: &str) -> BoxFuture<'_, Result<TaskResourceUsage, DriverError>> {
        let task = self.get(task_id);
        Box::pin(async move {
            task?;
            Ok(TaskResourceUsage {
                timestamp: now_nanos(),
                ..Default::default()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250"), Some(Duration::from_nanos(250)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
    }

    fn task(config: Value, dir: &std::path::Path) -> TaskConfig {
        TaskConfig {
            id: format!("a1/web/{}", uuid::Uuid::new_v4().simple()),
            name: "web".into(),
            log_dir: dir.to_path_buf(),
            config: serde_json::from_value(config).unwrap(),
            ..Default::default()
        }
    }

    fn sink() -> EventSink {
        Arc::new(|_| {})
    }

    #[tokio::test(start_paused = true)]
    async fn runs_for_the_configured_time_then_exits_with_the_configured_result() {
        let dir = tempfile::tempdir().unwrap();
        let d = MockDriver::new();
        let cfg = json!({"run_for": "10s", "exit_code": 7, "stdout_string": "hi\n",
                         "stdout_repeat": 2, "stdout_repeat_duration": "1s"});
        let h = d.start_task(task(cfg, dir.path()), sink()).await.unwrap();
        let started = tokio::time::Instant::now();
        let r = d.wait_task(&h.config.id).await.unwrap();
        assert_eq!(r.exit_code, 7);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        let out = std::fs::read_to_string(dir.path().join("web.stdout.0")).unwrap();
        assert_eq!(out, "hi\nhi\nhi\n");
    }

    #[tokio::test(start_paused = true)]
    async fn start_errors_and_kill_after() {
        let dir = tempfile::tempdir().unwrap();
        let d = MockDriver::new();
        let err = d
            .start_task(
                task(
                    json!({"start_error": "boom", "start_error_recoverable": true}),
                    dir.path(),
                ),
                sink(),
            )
            .await
            .unwrap_err();
        assert!(err.recoverable() && err.to_string() == "boom", "{err}");
        let err = d
            .start_task(task(json!({"start_error": "boom"}), dir.path()), sink())
            .await
            .unwrap_err();
        assert!(!err.recoverable());

        // kill_after longer than the timeout: SIGKILL at the timeout.
        let h = d
            .start_task(
                task(json!({"run_for": "1h", "kill_after": "10s"}), dir.path()),
                sink(),
            )
            .await
            .unwrap();
        let t = tokio::time::Instant::now();
        d.stop_task(&h.config.id, Duration::from_secs(3), "")
            .await
            .unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(3));
        assert_eq!(d.wait_task(&h.config.id).await.unwrap().signal, 9);

        // kill_after within the timeout: exits with the stop signal.
        let h = d
            .start_task(
                task(json!({"run_for": "1h", "kill_after": "1s"}), dir.path()),
                sink(),
            )
            .await
            .unwrap();
        d.stop_task(&h.config.id, Duration::from_secs(3), "SIGTERM")
            .await
            .unwrap();
        assert_eq!(d.wait_task(&h.config.id).await.unwrap().signal, 15);
    }
}
