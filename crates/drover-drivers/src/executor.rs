//! The executor: a small supervisor process per task, so tasks outlive the agent.
//!
//! ```text
//!  agent (driver)                          executor process (setsid, child subreaper)
//!  ───────────────                          ─────────────────────────────────────────
//!  write <state_dir>/executor.json ──────▶ read spec
//!  spawn `drover executor <spec>` ───────▶ spawn task (own process group, env cleared+set, cwd)
//!                                          ├─ task.pid    (right after spawn)   or start-error
//!  poll task.pid / start-error ◀───────────┤
//!                                          ├─ stdout/stderr pipes ──▶ RotatingWriter
//!                                          │    alloc/logs/<task>.stdout.N / .stderr.N
//!                                          ├─ waitpid (reaps orphans too: it is a subreaper)
//!                                          ├─ kill what is left of the process group/tree
//!                                          │  (runc: read OOM status, `runc delete --force`)
//!  wait_task polls exit.json ◀─────────────┴─ exit.json (tmp + rename), exit
//!  stop_task: signal group, wait, SIGKILL group
//! ```
//!
//! # Vocabulary
//! - **spec** ([`ExecutorSpec`]): what to run, written by the driver as JSON into the task's
//!   state dir; the executor's only input.
//! - **state dir**: `TaskConfig::state_dir`, holding `executor.json`, `executor.out` (the
//!   executor's own messages), `task.pid`, `start-error`, `exit.json`.
//! - **executor state** ([`ExecutorState`]): the pids (with their `/proc` start times, so a reused
//!   pid is never mistaken for the task) kept in the handle's `driver_state`.
//!
//! # Guarantees
//! - The executor is in its own session, so signals aimed at the agent's terminal or process
//!   group do not reach it; a `kill -9` of the agent leaves executor and task running.
//! - `exit.json` is written once, atomically, after the task and everything it left behind in
//!   its process group (or container) are dead; a recovered driver reads the real exit code
//!   from it even when the task exited while no agent was running.
//! - An executor that died without writing `exit.json` is reported as an [`ExitResult`] with
//!   `err`, never as a hang.
//!
//! # Limits
//! - A process that leaves the task's process group *and* escapes the subreaper (double fork
//!   then reparenting is caught; a `setsid` daemon that is still our descendant is caught) is
//!   only caught by the cgroup of the exec driver; raw_exec has no cgroup.
//! - Stats come from `/proc` (sum over the executor's descendants), not from a cgroup.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::logs::RotatingWriter;
use crate::{DriverError, ExitResult, LogSettings, TaskConfig, TaskHandle, TaskResourceUsage, now_nanos};

/// How the agent starts an executor: `program args… <spec path>`. The drover binary uses
/// `drover executor`; tests use the `drover-executor` binary of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorCommand {
    /// The binary.
    pub program: PathBuf,
    /// Arguments before the spec path (`["executor"]` for the drover binary).
    pub args: Vec<String>,
}

impl ExecutorCommand {
    /// `program args…`.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        ExecutorCommand {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The runc container an executor runs (exec and java drivers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuncRef {
    /// The runc binary.
    pub runc: PathBuf,
    /// runc's `--root` (its state directory).
    pub root: PathBuf,
    /// The container ID.
    pub id: String,
}

impl RuncRef {
    /// A `runc --root <root>` command.
    pub(crate) fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.runc);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        c
    }
}

/// What an executor runs; written by the driver into `<state_dir>/executor.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorSpec {
    /// Task name (log file prefix).
    pub task_name: String,
    /// The binary (already resolved by the driver).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The complete environment (the executor's own is cleared).
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Run as this uid (None: the executor's).
    pub uid: Option<u32>,
    /// Run as this gid.
    pub gid: Option<u32>,
    /// Where the rotating log files go.
    pub log_dir: PathBuf,
    /// Rotation.
    pub logs: LogSettings,
    /// When the program is `runc run`: the container to inspect and delete after it returns.
    pub runc: Option<RuncRef>,
}

const SPEC_FILE: &str = "executor.json";
const OUT_FILE: &str = "executor.out";
const PID_FILE: &str = "task.pid";
const START_ERROR_FILE: &str = "start-error";
const EXIT_FILE: &str = "exit.json";

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PidRecord {
    pid: i32,
    start_time: u64,
}

// ───────────────────────────── the executor process ─────────────────────────────

/// The allocator setting Drover's helper processes run with — the executor and the init inside
/// exec containers (both the `drover` binary): mimalloc commits memory as it is used instead of
/// in large eager chunks, which keeps each helper at ≈ 2.5 MB of private memory instead of
/// ≈ 8 MB (measured with `/proc/<pid>/smaps_rollup`). The agent keeps the default, which its
/// scheduler is faster with. Tasks never see the variable.
pub const LEAN_ALLOCATOR_ENV: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

/// The init's flag saying that [`LEAN_ALLOCATOR_ENV`] was added to the container's environment
/// for the init alone and must not reach the task.
pub const STRIP_ALLOCATOR_ENV_FLAG: &str = "--strip-allocator-env";

/// The executor's `main`: `args` is `[<spec path>]`. Returns the process exit code (0 when
/// `exit.json` was written, whatever the task's own exit code).
///
/// `args` = `["--init", ["--strip-allocator-env",] "--", program, args…]` runs the container
/// init instead (see [`run_init`]).
pub fn run_main(args: Vec<String>) -> i32 {
    if let [flag, rest @ ..] = args.as_slice()
        && flag == "--init"
    {
        let (strip, rest) = match rest {
            [s, rest @ ..] if s == STRIP_ALLOCATOR_ENV_FLAG => (true, rest),
            rest => (false, rest),
        };
        if let [dashes, argv @ ..] = rest
            && dashes == "--"
        {
            return run_init(argv, strip);
        }
    }
    if let [flag, dashes, argv @ ..] = args.as_slice()
        && flag == "--exec"
        && dashes == "--"
    {
        return run_unblocked(argv);
    }
    let [spec_path] = args.as_slice() else {
        eprintln!("usage: drover executor <state_dir>/executor.json");
        return 2;
    };
    match run_executor(Path::new(spec_path)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("executor: {e}");
            1
        }
    }
}

/// A minimal init for containers (the exec and java drivers run it as the container's PID 1):
/// starts `argv`, forwards every signal it receives to it, reaps orphans, and exits with the
/// program's exit code (128 + N when signal N killed it).
///
/// Without it the task itself would be PID 1 of its PID namespace, and the kernel drops
/// signals PID 1 has no handler for: a plain program would ignore the stop signal (SIGINT) and
/// only die at the SIGKILL after the kill timeout.
pub fn run_init(argv: &[String], strip_allocator_env: bool) -> i32 {
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let Some((program, args)) = argv.split_first() else {
        eprintln!("drover init: no command");
        return 127;
    };
    // Block everything and read signals from a signalfd (no handlers, so no unsafe code). The
    // child's mask is reset by std's spawn.
    let mask = SigSet::all();
    if let Err(e) = mask.thread_block() {
        eprintln!("drover init: blocking signals: {e}");
    }
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("drover init: signalfd: {e}");
            return 127;
        }
    };
    // The child would inherit the blocked mask (std's spawn keeps it), so it goes through
    // `--exec`, which unblocks everything and then execs the program.
    let own: Vec<String> = std::env::args().collect();
    let Some(init_at) = own.iter().position(|a| a == "--init") else {
        eprintln!("drover init: started without --init in its arguments");
        return 127;
    };
    let mut child = Command::new(&own[0]);
    child
        .args(&own[1..init_at])
        .args(["--exec", "--"])
        .arg(program)
        .args(args);
    if strip_allocator_env {
        // The `--exec` half only execs the task: it needs no lean allocator, the task no trace.
        child.env_remove(LEAN_ALLOCATOR_ENV.0);
    }
    let child = match child.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover init: failed to start {program}: {e}");
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    drop(child); // reaped below with waitpid(-1)
    loop {
        let sig = match sfd.read_signal() {
            Ok(Some(info)) => info.ssi_signo as i32,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("drover init: reading signals: {e}");
                return 127;
            }
        };
        if sig == Signal::SIGCHLD as i32 {
            loop {
                match waitpid(Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => return code,
                    Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return 128 + s as i32,
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
        } else if let Ok(signal) = Signal::try_from(sig) {
            let _ = kill(pid, signal);
        }
    }
}

/// Unblocks every signal and replaces this process with `argv` (the init's child half).
fn run_unblocked(argv: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = argv.split_first() else {
        eprintln!("drover init: no command");
        return 127;
    };
    if let Err(e) = nix::sys::signal::SigSet::empty().thread_set_mask() {
        eprintln!("drover init: unblocking signals: {e}");
    }
    let e = Command::new(program).args(args).exec();
    eprintln!("drover init: failed to start {program}: {e}");
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

fn run_executor(spec_path: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(spec_path).map_err(|e| format!("reading {}: {e}", spec_path.display()))?;
    let spec: ExecutorSpec = serde_json::from_str(&text).map_err(|e| format!("parsing the spec: {e}"))?;
    let state_dir = spec_path
        .parent()
        .ok_or_else(|| "the spec path has no directory".to_string())?
        .to_path_buf();

    // Our own session: the agent's terminal and process group signals do not reach us.
    // (Fails only when we already lead a process group, e.g. run by hand from a shell script.)
    let _ = nix::unistd::setsid();
    // Orphans of the task are reparented to us, so they can be reaped and killed.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("executor: PR_SET_CHILD_SUBREAPER: {e}");
    }

    let open = |stream: &str| {
        RotatingWriter::open(&spec.log_dir, &spec.task_name, stream, spec.logs)
            .map_err(|e| format!("opening the {stream} log in {}: {e}", spec.log_dir.display()))
    };
    let (out_writer, err_writer) = match (open("stdout"), open("stderr")) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            write_atomic(&state_dir.join(START_ERROR_FILE), e.as_bytes()).map_err(|e| e.to_string())?;
            return Err(e);
        }
    };

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(gid) = spec.gid {
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    if let Some(uid) = spec.uid {
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("failed to start {}: {e}", spec.program.display());
            write_atomic(&state_dir.join(START_ERROR_FILE), msg.as_bytes()).map_err(|e| e.to_string())?;
            return Err(msg);
        }
    };
    let pid = child.id() as i32;
    let record = PidRecord {
        pid,
        start_time: proc_stat(pid).map(|s| s.start_time).unwrap_or(0),
    };
    // The pid file is the driver's signal that the task started; without it the driver would
    // wait for nothing, so a failure here ends the task.
    let pid_json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    if let Err(e) = write_atomic(&state_dir.join(PID_FILE), &pid_json) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        return Err(format!("writing the pid file: {e}"));
    }

    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut copiers = 0;
    if let Some(out) = child.stdout.take() {
        copiers += 1;
        spawn_copier(out, out_writer, done_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        copiers += 1;
        spawn_copier(err, err_writer, done_tx.clone());
    }
    drop(done_tx);
    // The std Child is not waited through std: waitpid(-1) below reaps it along with orphans.
    drop(child);

    let status = wait_for(pid);
    let mut result = match status {
        Some(WaitStatus::Exited(_, code)) => ExitResult {
            exit_code: code as i64,
            ..Default::default()
        },
        Some(WaitStatus::Signaled(_, sig, _)) => ExitResult {
            signal: sig as i64,
            ..Default::default()
        },
        _ => ExitResult {
            err: Some("lost track of the task process".into()),
            ..Default::default()
        },
    };

    if let Some(runc) = &spec.runc {
        // `runc run` reports a container killed by signal N as 128+N.
        if result.exit_code > 128 && result.signal == 0 {
            result.signal = result.exit_code - 128;
            result.exit_code = 0;
        }
        result.oom_killed = crate::cgroup::oom_killed(&runc.id);
        let deleted = Command::new(&runc.runc)
            .arg("--root")
            .arg(&runc.root)
            .args(["delete", "--force", &runc.id])
            .stdin(Stdio::null())
            .status();
        if !matches!(deleted, Ok(s) if s.success()) {
            eprintln!("executor: runc delete --force {} failed: {deleted:?}", runc.id);
        }
        let left = crate::cgroup::remove(&runc.id);
        if !left.is_empty() {
            eprintln!("executor: cgroups of {} could not be removed: {left:?}", runc.id);
        }
    }
    kill_leftovers(pid);

    // Output written by the task before it died is in the pipes; wait for the copiers to drain
    // them, but not forever (an escaped process may hold a pipe open).
    let deadline = Instant::now() + Duration::from_secs(3);
    for _ in 0..copiers {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }

    let json = serde_json::to_vec(&result).map_err(|e| e.to_string())?;
    write_atomic(&state_dir.join(EXIT_FILE), &json).map_err(|e| format!("writing exit.json: {e}"))?;
    Ok(())
}

fn spawn_copier(
    mut from: impl Read + Send + 'static,
    mut to: RotatingWriter,
    done: std::sync::mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = to.write_all(&buf[..n]) {
                        eprintln!("executor: writing the task log: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

/// Reaps children (orphans included) until `pid` exits; returns its status.
fn wait_for(pid: i32) -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) if status.pid() == Some(Pid::from_raw(pid)) => match status {
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => return Some(status),
                _ => {}
            },
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Kills the task's process group and every remaining descendant of this process, and reaps
/// them, for up to 5 seconds.
fn kill_leftovers(pgid: i32) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        for pid in descendants(me) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return, // ECHILD: nothing left
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "executor: descendants still alive after SIGKILL: {:?}",
                descendants(me)
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

// ───────────────────────────── /proc helpers ─────────────────────────────

/// The fields of `/proc/<pid>/stat` the drivers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `Z`, …
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// Process group.
    pub pgrp: i32,
    /// User CPU in clock ticks.
    pub utime: u64,
    /// System CPU in clock ticks.
    pub stime: u64,
    /// Start time in clock ticks after boot (tells a reused pid apart).
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` runs and is the process that started at `start_time` (0: don't check), not a
/// zombie.
pub fn proc_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some(s) => (start_time == 0 || s.start_time == start_time) && s.state != 'Z' && s.state != 'X',
        None => false,
    }
}

/// All descendants of `root` (not `root` itself), from one scan of `/proc`.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(stat) = proc_stat(pid) {
            children.entry(stat.ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push(*c);
            stack.push(*c);
        }
    }
    out
}

/// Sums RSS and CPU time over `pids` from `/proc`.
pub fn proc_usage(pids: &[i32]) -> TaskResourceUsage {
    use nix::unistd::{SysconfVar, sysconf};
    let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
    let tck = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100).max(1) as u64;
    let mut usage = TaskResourceUsage {
        measured: vec!["RSS".into(), "User Mode".into(), "System Mode".into()],
        timestamp: now_nanos(),
        ..Default::default()
    };
    for &pid in pids {
        let Some(stat) = proc_stat(pid) else { continue };
        if stat.state == 'Z' {
            continue;
        }
        let rss_pages = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        usage.rss += rss_pages * page;
        usage.user_ns += stat.utime * 1_000_000_000 / tck;
        usage.system_ns += stat.stime * 1_000_000_000 / tck;
        usage.pids.push(pid as u32);
    }
    usage
}

// ───────────────────────────── the agent side ─────────────────────────────

/// What the driver keeps in `TaskHandle::driver_state` for an executor-run task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorState {
    /// The executor's pid.
    pub executor_pid: i32,
    /// Its `/proc` start time.
    pub executor_start: u64,
    /// The task's pid (the `runc run` process for containers); also its process group.
    pub task_pid: i32,
    /// Its `/proc` start time.
    pub task_start: u64,
    /// The state dir holding `exit.json`.
    pub state_dir: PathBuf,
    /// The container, for runc-based drivers.
    pub runc: Option<RuncRef>,
}

impl ExecutorState {
    fn exit_result(&self) -> Option<ExitResult> {
        read_exit(&self.state_dir)
    }
}

/// The `Driver` methods every executor-based driver (raw_exec, exec, java, qemu) answers the
/// same way: through its `sup: Supervisor` field. Expands inside `impl Driver for …`.
macro_rules! delegate_to_supervisor {
    () => {
        fn recover_task(
            &self,
            handle: &$crate::TaskHandle,
        ) -> $crate::BoxFuture<'_, Result<(), $crate::DriverError>> {
            let r = self.sup.recover(handle);
            Box::pin(async move { r })
        }

        fn wait_task(
            &self,
            task_id: &str,
        ) -> $crate::BoxFuture<'_, Result<$crate::ExitResult, $crate::DriverError>> {
            let id = task_id.to_string();
            Box::pin(async move { self.sup.wait(&id).await })
        }

        fn stop_task(
            &self,
            task_id: &str,
            timeout: std::time::Duration,
            signal: &str,
        ) -> $crate::BoxFuture<'_, Result<(), $crate::DriverError>> {
            let (id, signal) = (task_id.to_string(), signal.to_string());
            Box::pin(async move { self.sup.stop(&id, timeout, &signal).await })
        }

        fn destroy_task(
            &self,
            task_id: &str,
            force: bool,
        ) -> $crate::BoxFuture<'_, Result<(), $crate::DriverError>> {
            let id = task_id.to_string();
            Box::pin(async move { self.sup.destroy(&id, force).await })
        }

        fn signal_task(
            &self,
            task_id: &str,
            signal: &str,
        ) -> $crate::BoxFuture<'_, Result<(), $crate::DriverError>> {
            let (id, signal) = (task_id.to_string(), signal.to_string());
            Box::pin(async move { self.sup.signal(&id, &signal).await })
        }

        fn task_stats(
            &self,
            task_id: &str,
        ) -> $crate::BoxFuture<'_, Result<$crate::TaskResourceUsage, $crate::DriverError>> {
            let r = self.sup.stats(task_id);
            Box::pin(async move { r })
        }
    };
}
pub(crate) use delegate_to_supervisor;

/// Reads `<state_dir>/exit.json`.
pub fn read_exit(state_dir: &Path) -> Option<ExitResult> {
    let text = std::fs::read(state_dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The shared agent-side half of every executor-based driver: launches executors and tracks
/// their tasks by task ID.
#[derive(Debug)]
pub(crate) struct Supervisor {
    driver: &'static str,
    executor: ExecutorCommand,
    tasks: Mutex<HashMap<String, ExecutorState>>,
}

/// How long `start_task` waits for the executor to report the task's pid.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop_task` waits for the exit after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

impl Supervisor {
    pub(crate) fn new(driver: &'static str, executor: ExecutorCommand) -> Self {
        Supervisor {
            driver,
            executor,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, task_id: &str) -> Result<ExecutorState, DriverError> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    /// Writes the spec, starts the executor and waits until it reports the task's pid (or a
    /// start error, or dies).
    pub(crate) async fn launch(
        &self,
        config: TaskConfig,
        spec: ExecutorSpec,
    ) -> Result<TaskHandle, DriverError> {
        if self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&config.id)
        {
            return Err(DriverError::Other(format!(
                "task {} is already started",
                config.id
            )));
        }
        let state_dir = config.state_dir.clone();
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| DriverError::Other(format!("creating {}: {e}", state_dir.display())))?;
        for stale in [PID_FILE, START_ERROR_FILE, EXIT_FILE] {
            let _ = std::fs::remove_file(state_dir.join(stale));
        }
        let spec_path = state_dir.join(SPEC_FILE);
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| DriverError::Other(e.to_string()))?;
        std::fs::write(&spec_path, json)?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir.join(OUT_FILE))?;
        let err = out.try_clone()?;
        let mut child = Command::new(&self.executor.program)
            .args(&self.executor.args)
            .arg(&spec_path)
            .env(LEAN_ALLOCATOR_ENV.0, LEAN_ALLOCATOR_ENV.1)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                DriverError::Other(format!(
                    "starting the executor {}: {e}",
                    self.executor.program.display()
                ))
            })?;
        let executor_pid = child.id() as i32;
        let executor_start = proc_stat(executor_pid).map(|s| s.start_time).unwrap_or(0);
        // We are its parent: reap it when it exits so it does not linger as a zombie.
        std::thread::spawn(move || {
            let _ = child.wait();
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let record: PidRecord = loop {
            if let Ok(text) = std::fs::read(state_dir.join(PID_FILE))
                && let Ok(rec) = serde_json::from_slice(&text)
            {
                break rec;
            }
            if let Ok(msg) = std::fs::read_to_string(state_dir.join(START_ERROR_FILE)) {
                return Err(DriverError::fatal(msg.trim().to_string()));
            }
            if !proc_alive(executor_pid, executor_start) {
                // One more look: it may have written a file just before exiting.
                if std::fs::metadata(state_dir.join(PID_FILE)).is_ok()
                    || std::fs::metadata(state_dir.join(START_ERROR_FILE)).is_ok()
                {
                    continue;
                }
                let out = std::fs::read_to_string(state_dir.join(OUT_FILE)).unwrap_or_default();
                return Err(DriverError::Other(format!(
                    "the executor exited before starting the task: {}",
                    out.trim()
                )));
            }
            if Instant::now() > deadline {
                let _ = kill(Pid::from_raw(executor_pid), Signal::SIGKILL);
                return Err(DriverError::retryable(format!(
                    "the executor did not start the task within {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(runc) = &spec.runc {
            wait_running(runc, &state_dir, executor_pid, executor_start, deadline).await?;
        }
        let state = ExecutorState {
            executor_pid,
            executor_start,
            task_pid: record.pid,
            task_start: record.start_time,
            state_dir,
            runc: spec.runc.clone(),
        };
        let driver_state = serde_json::to_value(&state).map_err(|e| DriverError::Other(e.to_string()))?;
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(config.id.clone(), state);
        Ok(TaskHandle {
            driver: self.driver.to_string(),
            config,
            driver_state,
            started_at: now_nanos(),
        })
    }

    /// Re-attaches to a task from its handle: the executor must be alive, or have written
    /// `exit.json`.
    pub(crate) fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let id = &handle.config.id;
        if self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
        {
            return Ok(());
        }
        let state: ExecutorState = serde_json::from_value(handle.driver_state.clone())
            .map_err(|e| DriverError::Other(format!("task {id}: unreadable driver state: {e}")))?;
        if state.exit_result().is_none() && !proc_alive(state.executor_pid, state.executor_start) {
            // Keep the state so `destroy_task` can still take down what the executor left (the
            // task's process group, a runc container) before the client starts the task again.
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), state.clone());
            return Err(DriverError::Other(format!(
                "task {id}: its executor (pid {}) is gone and left no exit status",
                state.executor_pid
            )));
        }
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), state);
        Ok(())
    }

    /// Polls `exit.json` until it exists (or the executor died without it).
    pub(crate) async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let state = self.get(task_id)?;
        loop {
            if let Some(r) = state.exit_result() {
                return Ok(r);
            }
            if !proc_alive(state.executor_pid, state.executor_start) {
                if let Some(r) = state.exit_result() {
                    return Ok(r);
                }
                return Ok(ExitResult {
                    err: Some(format!(
                        "executor (pid {}) died without reporting the task's exit",
                        state.executor_pid
                    )),
                    ..Default::default()
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn done(state: &ExecutorState) -> bool {
        state.exit_result().is_some() || !proc_alive(state.executor_pid, state.executor_start)
    }

    async fn send(state: &ExecutorState, sig: Signal, all: bool) {
        if Self::done(state) {
            return;
        }
        match &state.runc {
            Some(runc) => {
                let mut c = runc.command();
                c.arg("kill");
                if all {
                    c.arg("--all");
                }
                c.arg(&runc.id).arg((sig as i32).to_string());
                // Fails only when the container already stopped (start_task returns once it
                // runs); `runc run` is then about to return. Never SIGKILL `runc run` itself:
                // that would leave the container without anyone to delete it.
                let _ = c.status().await;
            }
            None if all => {
                let _ = killpg(Pid::from_raw(state.task_pid), sig);
            }
            None => {
                if proc_alive(state.task_pid, state.task_start) {
                    let _ = kill(Pid::from_raw(state.task_pid), sig);
                }
            }
        }
    }

    async fn wait_done(state: &ExecutorState, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if Self::done(state) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signal (default SIGINT) to the task's process group (or container), wait up to
    /// `timeout`, then SIGKILL everything; returns once `exit.json` exists (or the executor is
    /// gone).
    pub(crate) async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let state = self.get(task_id)?;
        let sig = if signal.trim().is_empty() {
            Signal::SIGINT
        } else {
            crate::parse_signal(signal)?
        };
        if !timeout.is_zero() {
            // In a runc container the init forwards the signal to the task: sending it to every
            // process as well would deliver it twice (a second SIGINT often means "force").
            Self::send(&state, sig, state.runc.is_none()).await;
            if Self::wait_done(&state, timeout).await {
                return Ok(());
            }
        }
        Self::send(&state, Signal::SIGKILL, true).await;
        if Self::wait_done(&state, KILL_GRACE).await {
            return Ok(());
        }
        Err(DriverError::Other(format!(
            "task {task_id} still running {KILL_GRACE:?} after SIGKILL"
        )))
    }

    /// Sends `signal` to the task's main process (the container's init for runc).
    pub(crate) async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let state = self.get(task_id)?;
        let sig = crate::parse_signal(signal)?;
        if Self::done(&state) {
            return Err(DriverError::Other(format!("task {task_id} is not running")));
        }
        Self::send(&state, sig, false).await;
        Ok(())
    }

    /// Forgets the task and removes its state dir; refuses a running task unless `force`.
    pub(crate) async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let state = self.get(task_id)?;
        if !Self::done(&state) {
            if !force {
                return Err(DriverError::Other(format!(
                    "task {task_id} is still running; stop it first (or destroy with force)"
                )));
            }
            self.stop(task_id, Duration::ZERO, "SIGKILL").await?;
        }
        // An executor that died (OOM, kill -9) leaves its task's process group behind.
        if state.runc.is_none() && state.task_pid > 0 && proc_alive(state.task_pid, state.task_start) {
            let _ = killpg(Pid::from_raw(state.task_pid), Signal::SIGKILL);
        }
        if let Some(runc) = &state.runc {
            // The executor deletes the container; this covers an executor that died first.
            let mut c = runc.command();
            c.args(["delete", "--force", &runc.id]);
            let _ = c.status().await;
            let left = crate::cgroup::remove(&runc.id);
            if !left.is_empty() {
                return Err(DriverError::Other(format!(
                    "cgroups could not be removed: {left:?}"
                )));
            }
        }
        match std::fs::remove_dir_all(&state.state_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DriverError::Other(format!(
                    "removing {}: {e}",
                    state.state_dir.display()
                )));
            }
        }
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task_id);
        Ok(())
    }

    /// Usage summed over the executor's descendants (the task's process tree).
    pub(crate) fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let state = self.get(task_id)?;
        let pids = if proc_alive(state.executor_pid, state.executor_start) {
            descendants(state.executor_pid)
        } else if proc_alive(state.task_pid, state.task_start) {
            let mut p = descendants(state.task_pid);
            p.push(state.task_pid);
            p
        } else {
            Vec::new()
        };
        Ok(proc_usage(&pids))
    }
}

/// Waits until runc reports the container `running` (or the executor already finished: a task
/// that exited at once), so that stop and signal always find a container to talk to.
async fn wait_running(
    runc: &RuncRef,
    state_dir: &Path,
    executor_pid: i32,
    executor_start: u64,
    deadline: Instant,
) -> Result<(), DriverError> {
    loop {
        let mut c = runc.command();
        c.args(["state", &runc.id]).stdout(Stdio::piped());
        if let Ok(out) = c.output().await
            && out.status.success()
            && let Ok(state) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && state["status"] != "created"
        {
            return Ok(());
        }
        if read_exit(state_dir).is_some() || !proc_alive(executor_pid, executor_start) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DriverError::retryable(format!(
                "container {} did not start within {START_TIMEOUT:?}",
                runc.id
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Finds a task's binary the way Nomad's executor does: `<task_dir>/local/<cmd>`,
/// `<task_dir>/<cmd>`, an absolute path, then each directory of `path_var` (the task's `PATH`).
/// A found file without an execute bit is made executable.
pub fn lookup_binary(task_dir: &Path, cmd: &str, path_var: Option<&str>) -> Result<PathBuf, DriverError> {
    let mut candidates = vec![task_dir.join("local").join(cmd), task_dir.join(cmd)];
    if Path::new(cmd).is_absolute() {
        candidates.push(PathBuf::from(cmd));
    } else if !cmd.contains('/') {
        for dir in path_var
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
        {
            if !dir.is_empty() {
                candidates.push(Path::new(dir).join(cmd));
            }
        }
    }
    for c in candidates {
        if c.is_file() {
            make_executable(&c);
            return Ok(c);
        }
    }
    Err(DriverError::fatal(format!(
        "binary {cmd:?} not found (looked in {}/local, the task dir, and $PATH)",
        task_dir.display()
    )))
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o111 == 0 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o755));
        }
    }
}

/// A `Driver` config value as a string.
pub(crate) fn cfg_string(
    config: &BTreeMap<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, DriverError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(DriverError::config(key, "must be a string")),
    }
}

/// A `Driver` config value as a list of strings (a single string is a one-element list).
pub(crate) fn cfg_strings(
    config: &BTreeMap<String, serde_json::Value>,
    key: &str,
) -> Result<Vec<String>, DriverError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                _ => Err(DriverError::config(key, "must be a list of strings")),
            })
            .collect(),
        Some(serde_json::Value::String(s)) => Ok(vec![s.clone()]),
        Some(_) => Err(DriverError::config(key, "must be a list of strings")),
    }
}

/// Rejects keys not in `known`.
pub(crate) fn check_keys(
    config: &BTreeMap<String, serde_json::Value>,
    known: &[&str],
) -> Result<(), DriverError> {
    for key in config.keys() {
        if !known.contains(&key.as_str()) {
            return Err(crate::unknown_key(key, known.iter().copied()));
        }
    }
    Ok(())
}

/// Resolves a user name (or numeric uid) to `(uid, gid)` through the host's user database.
pub fn resolve_user(name: &str) -> Result<(u32, u32), DriverError> {
    let found = if let Ok(uid) = name.parse::<u32>() {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
    } else {
        nix::unistd::User::from_name(name)
    };
    match found {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) => Err(DriverError::fatal(format!(
            "user {name:?} not found on this node"
        ))),
        Err(e) => Err(DriverError::fatal(format!("looking up user {name:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_this_process() {
        let me = std::process::id() as i32;
        let s = proc_stat(me).expect("own stat");
        assert!(s.start_time > 0);
        assert!(proc_alive(me, s.start_time));
        assert!(
            !proc_alive(me, s.start_time + 1),
            "a different start time is another process"
        );
    }

    #[test]
    fn lookup_prefers_local_then_task_dir_then_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("tool"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            lookup_binary(dir.path(), "tool", Some("")).unwrap(),
            dir.path().join("tool")
        );
        std::fs::write(dir.path().join("local/tool"), "#!/bin/sh\n").unwrap();
        let found = lookup_binary(dir.path(), "tool", Some("")).unwrap();
        assert_eq!(found, dir.path().join("local/tool"));
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(std::fs::metadata(&found).unwrap().permissions().mode() & 0o111, 0);
        assert_eq!(
            lookup_binary(dir.path(), "sh", Some("/bin")).unwrap(),
            PathBuf::from("/bin/sh")
        );
        let err = lookup_binary(dir.path(), "no-such-binary", Some("/bin")).unwrap_err();
        assert!(!err.recoverable());
        assert!(err.to_string().contains("no-such-binary"), "{err}");
    }
}
