//! Task drivers: the one trait the client runs every task through, and the drivers behind it.
//!
//! ```text
//!  client task runner ──TaskConfig──▶ Driver::start_task ──▶ TaskHandle (persisted by the client)
//!                     ◀─ExitResult─── Driver::wait_task       │
//!                     ──stop/signal─▶ Driver::stop_task        └─▶ Driver::recover_task after an
//!                                                                  agent restart
//! ```
//!
//! # Layout
//! - [`Driver`], [`TaskConfig`], [`TaskHandle`], [`ExitResult`], [`Fingerprint`]: the plugin
//!   interface (Nomad's `plugins/drivers` shape, in process).
//! - [`DriverError`]: what failed, and whether a restart may help ([`DriverError::recoverable`]).
//! - [`logs`]: the rotating log files every driver writes task output into
//!   (`alloc/logs/<task>.stdout.<N>`).
//!
//! # Vocabulary
//! - **task ID**: `<alloc id>/<task>/<8 random chars>`, new for every start of a task.
//! - **driver state**: a JSON value inside the [`TaskHandle`] holding everything the driver needs
//!   to find the task again (pids, container ID) after the agent restarted.
//!
//! # Guarantees
//! A task started by a driver outlives the agent process (a kill -9 of the agent leaves it
//! running), and `recover_task` + `wait_task` on the persisted handle reports its real exit.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod cgroup;
pub mod conformance;
pub mod docker;
pub mod exec;
pub mod executor;
pub mod java;
pub mod logs;
pub mod mock;
pub mod qemu;
pub mod rawexec;
pub mod taskdir;

/// A boxed future, the return type of the async [`Driver`] methods (the trait is object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What failed in a driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver knows no task with this ID (already destroyed, or never started).
    #[error("task {0} not found")]
    TaskNotFound(String),
    /// The driver is turned off or cannot run on this node (`raw_exec is disabled`).
    #[error("{0}")]
    Disabled(String),
    /// The task's `config {}` block is wrong. Never recoverable.
    #[error("invalid driver config: {field}: {message}")]
    InvalidConfig {
        /// The key (`command`, `image`, `port_map.http`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Starting failed. `recoverable` says whether the restart policy may try again (image pulls,
    /// daemon hiccups) or the task fails at once (binary not found).
    #[error("{message}")]
    Start {
        /// The driver's (or the engine's) message.
        message: String,
        /// Whether a restart may help.
        recoverable: bool,
    },
    /// The driver's backend (the docker engine) cannot be reached right now; the same call may
    /// succeed later. The client retries re-attachment on this instead of replacing the task.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: I/O, the engine, the executor.
    #[error("{0}")]
    Other(String),
}

impl DriverError {
    /// Whether the restart policy may retry after this error. Only errors that say so are
    /// recoverable (Nomad's rule: a plain error fails the task at once).
    pub fn recoverable(&self) -> bool {
        matches!(
            self,
            DriverError::Start {
                recoverable: true,
                ..
            }
        )
    }

    /// A start failure a restart may fix.
    pub fn retryable(message: impl Into<String>) -> Self {
        DriverError::Start {
            message: message.into(),
            recoverable: true,
        }
    }

    /// A start failure a restart cannot fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        DriverError::Start {
            message: message.into(),
            recoverable: false,
        }
    }

    /// An invalid config key.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        DriverError::InvalidConfig {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for DriverError {
    fn from(e: std::io::Error) -> Self {
        DriverError::Other(e.to_string())
    }
}

/// Health of a driver on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Not present (not installed, not enabled, wrong OS or user).
    Undetected,
    /// Present but not usable right now (daemon down).
    Unhealthy,
    /// Usable.
    Healthy,
}

/// One fingerprint of a driver: its health and the node attributes it contributes
/// (`driver.docker.version`, …; the client adds `driver.<name>` itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Health.
    pub health: Health,
    /// `Healthy`, or why not (`raw_exec is disabled`, `exec driver requires root`).
    pub description: String,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Fingerprint {
    /// A healthy fingerprint with these attributes.
    pub fn healthy(attributes: BTreeMap<String, String>) -> Self {
        Fingerprint {
            health: Health::Healthy,
            description: "Healthy".into(),
            attributes,
        }
    }
    /// An undetected driver.
    pub fn undetected(why: impl Into<String>) -> Self {
        Fingerprint {
            health: Health::Undetected,
            description: why.into(),
            attributes: BTreeMap::new(),
        }
    }
    /// A detected but unusable driver.
    pub fn unhealthy(why: impl Into<String>) -> Self {
        Fingerprint {
            health: Health::Unhealthy,
            description: why.into(),
            attributes: BTreeMap::new(),
        }
    }
}

/// How a driver isolates the task's filesystem; decides which paths the task sees
/// (`NOMAD_TASK_DIR` is a host path for `None`, `/local` for `Chroot` and `Image`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsIsolation {
    /// The task sees the host filesystem (raw_exec, qemu).
    None,
    /// The task's root is its task directory (exec, java).
    Chroot,
    /// The task runs in its own image (docker).
    Image,
}

/// What a driver can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `signal_task` works.
    pub send_signals: bool,
    /// Filesystem isolation.
    pub fs_isolation: FsIsolation,
}

/// A port the scheduler assigned to the allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortMapping {
    /// The label from the `network { port "<label>" {} }` block.
    pub label: String,
    /// Host IP.
    pub host_ip: String,
    /// Host port.
    pub value: u16,
    /// Port inside the task (0: same as `value`).
    pub to: u16,
}

/// Resources granted to the task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskResources {
    /// CPU in MHz (cgroup cpu shares / docker CPUShares).
    pub cpu_shares: i64,
    /// Memory in MB (the hard limit unless `memory_max_mb` is set).
    pub memory_mb: i64,
    /// `memory_max` in MB (0: none).
    pub memory_max_mb: i64,
    /// The allocation's ports.
    pub ports: Vec<PortMapping>,
}

impl TaskResources {
    /// The hard memory limit in bytes: max(memory, memory_max) MiB.
    pub fn memory_limit_bytes(&self) -> i64 {
        self.memory_mb.max(self.memory_max_mb) * 1024 * 1024
    }
}

/// Log rotation settings (`logs { max_files max_file_size }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// Files kept per stream.
    pub max_files: u32,
    /// Size of one file in bytes.
    pub max_file_size: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            max_files: 10,
            max_file_size: 10 * 1024 * 1024,
        }
    }
}

/// Everything a driver needs to start one task. Serializable: it is kept inside the
/// [`TaskHandle`] so a driver can recover the task after an agent restart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskConfig {
    /// `<alloc id>/<task>/<8 random chars>`.
    pub id: String,
    /// Task name.
    pub name: String,
    /// Job ID.
    pub job_id: String,
    /// Job name.
    pub job_name: String,
    /// Task group name.
    pub task_group: String,
    /// Namespace.
    pub namespace: String,
    /// Allocation ID.
    pub alloc_id: String,
    /// Node ID.
    pub node_id: String,
    /// Node name.
    pub node_name: String,
    /// The final environment (`NOMAD_*`, the task's `env {}`; host env for non-image drivers).
    pub env: BTreeMap<String, String>,
    /// Granted resources.
    pub resources: TaskResources,
    /// `user` (empty: the driver's default; exec runs as `nobody`).
    pub user: String,
    /// The allocation directory on the host (`<alloc_dir>/<alloc id>`).
    pub alloc_dir: PathBuf,
    /// The task directory on the host (`<alloc_dir>/<alloc id>/<task>`).
    pub task_dir: PathBuf,
    /// Where the driver keeps its own files for this task (outside the task's reach).
    pub state_dir: PathBuf,
    /// Where task output goes: `<alloc_dir>/<alloc id>/alloc/logs`, files
    /// `<task>.stdout.<N>` / `<task>.stderr.<N>`.
    pub log_dir: PathBuf,
    /// Rotation.
    pub logs: LogSettings,
    /// The task's `config {}` block, already interpolated by the client.
    pub config: BTreeMap<String, Value>,
}

/// What the client persists about a started task; enough for [`Driver::recover_task`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskHandle {
    /// The driver's name.
    pub driver: String,
    /// The config the task was started with.
    pub config: TaskConfig,
    /// Driver-private: pids, container ID, …
    pub driver_state: Value,
    /// When the task started (unix nanoseconds).
    pub started_at: i64,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExitResult {
    /// Exit code (0 when killed by a signal).
    pub exit_code: i64,
    /// The signal that killed it (0: none).
    pub signal: i64,
    /// Killed by the kernel's OOM killer for exceeding its memory limit.
    pub oom_killed: bool,
    /// A driver-side failure while waiting (the task's fate is unknown).
    pub err: Option<String>,
}

impl ExitResult {
    /// Exit code 0, no signal, no error.
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal == 0 && self.err.is_none()
    }
}

/// CPU and memory usage of a task at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskResourceUsage {
    /// Resident memory in bytes.
    pub rss: u64,
    /// Memory usage in bytes as the cgroup/engine counts it (0 if unknown).
    pub usage: u64,
    /// Peak usage in bytes (0 if unknown).
    pub max_usage: u64,
    /// CPU time in user mode, nanoseconds since start.
    pub user_ns: u64,
    /// CPU time in kernel mode, nanoseconds since start.
    pub system_ns: u64,
    /// Which of the fields above are measured (`RSS`, `Usage`, `Max Usage`, `User Mode`, …).
    pub measured: Vec<String>,
    /// Process IDs in the task.
    pub pids: Vec<u32>,
    /// When measured (unix nanoseconds).
    pub timestamp: i64,
}

/// Receives driver messages while a task starts (`Downloading image busybox:local`), shown as
/// task events of type `Driver`.
pub type EventSink = Arc<dyn Fn(String) + Send + Sync>;

/// A task driver. Object safe; every driver in this crate implements it and passes the
/// conformance suite.
pub trait Driver: Send + Sync + std::fmt::Debug + 'static {
    /// `raw_exec`, `exec`, `docker`, `java`, `qemu`, `mock`.
    fn name(&self) -> &'static str;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// Health and attributes now.
    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint>;

    /// Checks a task's `config {}` block: required keys, types, unknown keys (errors name the
    /// key). Called by the client before `start_task`; a failure is a `Failed Validation`.
    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError>;

    /// Starts the task and returns its handle. `events` receives progress messages.
    fn start_task(
        &self,
        config: TaskConfig,
        events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>>;

    /// Re-attaches to a task started by an earlier agent process. Idempotent.
    fn recover_task(&self, handle: &TaskHandle) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Waits for the task to exit (may be called more than once, also after it exited).
    fn wait_task(&self, task_id: &str) -> BoxFuture<'_, Result<ExitResult, DriverError>>;

    /// Sends `signal` (`SIGINT` when empty, the driver's default), waits up to `timeout`, then
    /// kills the task and everything it started. Returns once it is dead.
    fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Frees what the task held (cgroups, containers, driver files). Refuses a running task
    /// unless `force` (which kills it first).
    fn destroy_task(&self, task_id: &str, force: bool) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Sends a signal (`SIGHUP`, `SIGUSR1`, …).
    fn signal_task(&self, task_id: &str, signal: &str) -> BoxFuture<'_, Result<(), DriverError>>;

    /// Resource usage now.
    fn task_stats(&self, task_id: &str) -> BoxFuture<'_, Result<TaskResourceUsage, DriverError>>;
}

/// The error for a `config {}` key the driver does not know, with a suggestion when a known
/// key is a likely typo (`commnd` → `did you mean "command"?`).
pub fn unknown_key<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> DriverError {
    let best = known
        .into_iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    match best {
        Some((_, k)) => DriverError::config(key, format!("unknown key; did you mean {k:?}?")),
        None => DriverError::config(key, "unknown key"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a signal name (`SIGINT`, `INT`, `sigterm`) for the drivers that send signals.
pub fn parse_signal(name: &str) -> Result<nix::sys::signal::Signal, DriverError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .map_err(|_| DriverError::Other(format!("unknown signal {name:?}")))
}

/// Unix nanoseconds now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_suggest_the_closest_known_one() {
        let e = unknown_key("commnd", ["command", "args", "work_dir"]).to_string();
        assert_eq!(
            e,
            "invalid driver config: commnd: unknown key; did you mean \"command\"?"
        );
        let e = unknown_key("zzz", ["command", "args"]).to_string();
        assert_eq!(e, "invalid driver config: zzz: unknown key");
    }
}
