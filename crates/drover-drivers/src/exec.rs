//! The `exec` driver: runs a command isolated in a runc container whose root is the task
//! directory (Nomad's chroot isolation), under an executor.
//!
//! ```text
//!  config { command = "/bin/app"  args = [...]  pid_mode/ipc_mode  cap_add/cap_drop  work_dir }
//!     │ binary looked up inside the future root: /local/<cmd>, /<cmd>, absolute, $PATH
//!     ▼
//!  <state_dir>/bundle/config.json ─┐
//!  executor ── runc --root /run/drover/runc run --bundle <state_dir>/bundle --keep <id>
//!                 └─ container: root = <task dir>, PID 1 = drover init ─▶ the command
//!                    ro binds /bin /etc /lib /lib32 /lib64 /sbin /usr; /alloc (rw),
//!                    /alloc/logs (ro); /proc, tmpfs /dev, devpts, /dev/shm, mqueue, ro /sys
//!                    namespaces: mount, uts, pid, ipc (host network: assigned ports work)
//!                    cgroup /drover/<id>: memory limit, cpu shares
//!  after `runc run` returns: OOM status read from the cgroup, then `runc delete --force`
//! ```
//!
//! # Vocabulary
//! - **container ID**: `drover-` + the task ID with every character runc refuses replaced by
//!   `-` (new for every start, since the task ID is).
//! - **init**: the executor binary, bind-mounted read-only at `/dev/.drover-init`, running in
//!   `--init` mode ([`crate::executor::run_init`]) as PID 1 so the command gets the signals
//!   PID 1 would ignore, and zombies are reaped.
//!
//! # Guarantees
//! Root only (fingerprint undetected otherwise, start refused). Tasks run as `nobody` unless
//! `user` is set; `root` is refused. After the task ends (or is stopped) no runc container, no
//! cgroup directory and no mount is left: the executor deletes the container, and destroy
//! deletes it again in case the executor died first. Stop sends the signal through
//! `runc kill`, then `runc kill --all … KILL` after the timeout.
//!
//! # Limits
//! - A `runc run` failure (invalid bundle, missing kernel feature) shows as the task exiting
//!   with code 1 and runc's message in the task's stderr log, not as a start error.
//! - Stats are summed from `/proc` over the processes under the executor (runc and the
//!   container's processes), not read from the cgroup.
//! - No secrets tmpfs, no DNS config, no device or volume mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::executor::{
    ExecutorCommand, ExecutorSpec, RuncRef, Supervisor, cfg_string, cfg_strings, check_keys, resolve_user,
};
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, Fingerprint, FsIsolation, TaskConfig, TaskHandle,
};

/// Plugin-level settings of the exec driver.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// How to start executors (also the init bind-mounted into containers).
    pub executor: ExecutorCommand,
    /// The runc binary.
    pub runc: PathBuf,
    /// runc's state directory (`--root`).
    pub runc_root: PathBuf,
}

impl ExecConfig {
    /// Defaults: runc found in the usual places (`/usr/sbin/runc` on Debian), state in
    /// `/run/drover/runc`.
    pub fn new(executor: ExecutorCommand) -> Self {
        ExecConfig {
            executor,
            runc: find_runc().unwrap_or_else(|| PathBuf::from("/usr/sbin/runc")),
            runc_root: PathBuf::from("/run/drover/runc"),
        }
    }
}

/// Looks for runc in the sbin/bin directories and `$PATH`.
pub fn find_runc() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ]
    .into_iter()
    .map(PathBuf::from)
    .chain(path.split(':').filter(|d| !d.is_empty()).map(PathBuf::from))
    .map(|d| d.join("runc"))
    .find(|p| p.is_file())
}

/// Host directories bind-mounted read-only into every container.
pub const CHROOT_DIRS: &[&str] = &["/bin", "/etc", "/lib", "/lib32", "/lib64", "/sbin", "/usr"];

/// Where the init binary appears inside the container (on the /dev tmpfs, so no mount point is
/// created in the task directory).
const INIT_PATH: &str = "/dev/.drover-init";

/// Docker's default capability set, which exec tasks get unless `cap_drop`/`cap_add` change it.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

const ALL_CAPS: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// The isolation settings of a task (`pid_mode`, `ipc_mode`, `cap_add`, `cap_drop`,
/// `work_dir`), shared by exec and java.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Isolation {
    pub(crate) pid_host: bool,
    pub(crate) ipc_host: bool,
    pub(crate) caps: Vec<String>,
    pub(crate) work_dir: Option<String>,
}

/// The config keys [`Isolation`] reads.
pub(crate) const ISOLATION_KEYS: &[&str] = &["pid_mode", "ipc_mode", "cap_add", "cap_drop", "work_dir"];

fn mode(config: &BTreeMap<String, Value>, key: &str) -> Result<bool, DriverError> {
    match cfg_string(config, key)?.as_deref() {
        None | Some("") | Some("private") => Ok(false),
        Some("host") => Ok(true),
        Some(other) => Err(DriverError::config(
            key,
            format!("must be \"private\" or \"host\", not {other:?}"),
        )),
    }
}

fn cap_name(key: &str, raw: &str) -> Result<String, DriverError> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(DriverError::config(key, format!("unknown capability {raw:?}")))
    }
}

impl Isolation {
    pub(crate) fn parse(config: &BTreeMap<String, Value>) -> Result<Self, DriverError> {
        let add = cfg_strings(config, "cap_add")?
            .iter()
            .map(|c| cap_name("cap_add", c))
            .collect::<Result<Vec<_>, _>>()?;
        let drop = cfg_strings(config, "cap_drop")?
            .iter()
            .map(|c| cap_name("cap_drop", c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
            Vec::new()
        } else {
            DEFAULT_CAPS
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !drop.contains(c))
                .collect()
        };
        for c in add {
            if c == "ALL" {
                caps = ALL_CAPS.iter().map(|c| c.to_string()).collect();
            } else if !caps.contains(&c) {
                caps.push(c);
            }
        }
        caps.sort();
        caps.dedup();
        let work_dir = cfg_string(config, "work_dir")?.filter(|w| !w.is_empty());
        if let Some(w) = &work_dir
            && !w.starts_with('/')
        {
            return Err(DriverError::config("work_dir", "must be an absolute path"));
        }
        Ok(Isolation {
            pid_host: mode(config, "pid_mode")?,
            ipc_host: mode(config, "ipc_mode")?,
            caps,
            work_dir,
        })
    }
}

/// A runc container ID for a task ID.
pub fn container_id(task_id: &str) -> String {
    let clean: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("drover-{clean}")
}

/// Finds `cmd` as the container will see it (its root is `task_dir`, plus [`CHROOT_DIRS`]);
/// returns the path inside the container.
pub(crate) fn lookup_in_chroot(
    task_dir: &Path,
    cmd: &str,
    path_var: Option<&str>,
) -> Result<String, DriverError> {
    let visible = |inside: &str| -> bool {
        let rel = inside.trim_start_matches('/');
        if task_dir.join(rel).is_file() {
            return true;
        }
        CHROOT_DIRS
            .iter()
            .any(|d| (inside.starts_with(&format!("{d}/"))) && Path::new(inside).is_file())
    };
    let mut candidates = Vec::new();
    if cmd.starts_with('/') {
        candidates.push(cmd.to_string());
    } else {
        candidates.push(format!("/local/{cmd}"));
        candidates.push(format!("/{cmd}"));
        if !cmd.contains('/') {
            for dir in path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin").split(':') {
                if dir.starts_with('/') {
                    candidates.push(format!("{}/{cmd}", dir.trim_end_matches('/')));
                }
            }
        }
    }
    candidates.into_iter().find(|c| visible(c)).ok_or_else(|| {
        DriverError::fatal(format!(
            "binary {cmd:?} not found inside the task's root (looked in /local, the task dir, \
             {} and $PATH)",
            CHROOT_DIRS.join(" ")
        ))
    })
}

/// The user a chroot task runs as: `nobody` by default, never root.
pub(crate) fn task_user(driver: &str, user: &str) -> Result<(u32, u32), DriverError> {
    let name = if user.is_empty() { "nobody" } else { user };
    let (uid, gid) = match resolve_user(name) {
        Ok(ids) => ids,
        Err(_) if user.is_empty() => (65534, 65534),
        Err(e) => return Err(e),
    };
    if uid == 0 {
        return Err(DriverError::fatal(format!(
            "{driver}: running tasks as root is not allowed (user {name:?}); set `user` to an unprivileged account"
        )));
    }
    Ok((uid, gid))
}

/// Health shared by the runc-based drivers: root, runc, cgroups.
pub(crate) fn runc_health(driver: &str, runc: &Path) -> Result<BTreeMap<String, String>, Fingerprint> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Fingerprint::undetected(format!(
            "{driver} driver must run as root"
        )));
    }
    if !runc.is_file() {
        return Err(Fingerprint::undetected(format!(
            "runc not found at {} (the {driver} driver runs tasks with runc)",
            runc.display()
        )));
    }
    let Some(version) = crate::cgroup::version() else {
        return Err(Fingerprint::unhealthy("no cgroup filesystem at /sys/fs/cgroup"));
    };
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "os.cgroups.version".to_string(),
        match version {
            crate::cgroup::CgroupVersion::V1 => "1",
            crate::cgroup::CgroupVersion::V2 => "2",
        }
        .to_string(),
    );
    Ok(attrs)
}

/// What a runc-based driver needs to run one task.
#[derive(Debug)]
pub(crate) struct ContainerTask {
    /// The command, as a path inside the container.
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) isolation: Isolation,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The OCI runtime config (`config.json`) of a task's bundle.
pub(crate) fn bundle_config(
    exec: &ExecConfig,
    config: &TaskConfig,
    task: &ContainerTask,
    id: &str,
) -> Result<Value, DriverError> {
    let init =
        exec.executor.program.canonicalize().map_err(|e| {
            DriverError::Other(format!("the executor {}: {e}", exec.executor.program.display()))
        })?;
    let mut args = vec![INIT_PATH.to_string()];
    args.extend(exec.executor.args.iter().cloned());
    args.push("--init".to_string());
    let mut env: Vec<String> = config.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The init runs with a lean allocator; the task gets the variable only if it set it.
    let (key, value) = crate::executor::LEAN_ALLOCATOR_ENV;
    if !config.env.contains_key(key) {
        env.push(format!("{key}={value}"));
        args.push(crate::executor::STRIP_ALLOCATOR_ENV_FLAG.to_string());
    }
    args.extend(["--".to_string(), task.program.clone()]);
    args.extend(task.args.iter().cloned());

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": INIT_PATH, "type": "bind", "source": init,
               "options": ["bind", "ro", "nosuid", "nodev"]}),
    ];
    if !task.isolation.ipc_host {
        mounts.push(
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                           "options": ["nosuid", "noexec", "nodev"]}),
        );
    }
    for dir in CHROOT_DIRS {
        if Path::new(dir).exists() {
            mounts.push(json!({"destination": dir, "type": "bind", "source": dir,
                               "options": ["rbind", "ro", "nosuid", "nodev"]}));
        }
    }
    let shared = config.alloc_dir.join("alloc");
    mounts.push(json!({"destination": "/alloc", "type": "bind", "source": shared,
                       "options": ["rbind", "rw", "nosuid", "nodev"]}));
    mounts.push(
        json!({"destination": "/alloc/logs", "type": "bind", "source": shared.join("logs"),
                       "options": ["rbind", "ro", "nosuid", "nodev"]}),
    );

    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "uts"})];
    if !task.isolation.pid_host {
        namespaces.push(json!({"type": "pid"}));
    }
    if !task.isolation.ipc_host {
        namespaces.push(json!({"type": "ipc"}));
    }
    let caps = &task.isolation.caps;
    // A non-root process keeps capabilities only in its bounding set (as docker does).
    let effective: &[String] = if task.uid == 0 { caps } else { &[] };
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "cpu": {"shares": config.resources.cpu_shares.max(2)},
    });
    let limit = config.resources.memory_limit_bytes();
    if limit > 0 {
        resources["memory"] = json!({"limit": limit});
        // No swapping past the limit (OCI `swap` is memory + swap), where the kernel accounts
        // swap in v1; otherwise a task over its limit swaps instead of being OOM-killed.
        if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            resources["memory"]["swap"] = json!(limit);
        }
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "drover".to_string());
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": task.uid, "gid": task.gid},
            "args": args,
            "env": env,
            "cwd": task.isolation.work_dir.clone().unwrap_or_else(|| "/".to_string()),
            "capabilities": {
                "bounding": caps,
                "effective": effective,
                "permitted": effective,
            },
            "noNewPrivileges": true,
        },
        "root": {"path": config.task_dir, "readonly": false},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": crate::cgroup::cgroups_path(id),
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }))
}

/// Writes the bundle and launches `runc run` under an executor.
pub(crate) async fn launch_container(
    exec: &ExecConfig,
    sup: &Supervisor,
    config: TaskConfig,
    task: ContainerTask,
) -> Result<TaskHandle, DriverError> {
    let id = container_id(&config.id);
    let bundle = config.state_dir.join("bundle");
    std::fs::create_dir_all(&bundle)
        .map_err(|e| DriverError::Other(format!("creating {}: {e}", bundle.display())))?;
    std::fs::create_dir_all(&exec.runc_root)
        .map_err(|e| DriverError::Other(format!("creating {}: {e}", exec.runc_root.display())))?;
    let spec = bundle_config(exec, &config, &task, &id)?;
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| DriverError::Other(e.to_string()))?;
    std::fs::write(bundle.join("config.json"), text)?;
    let runc = RuncRef {
        runc: exec.runc.clone(),
        root: exec.runc_root.clone(),
        id: id.clone(),
    };
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    );
    let spec = ExecutorSpec {
        task_name: config.name.clone(),
        program: exec.runc.clone(),
        args: vec![
            "--root".into(),
            exec.runc_root.to_string_lossy().into_owned(),
            "run".into(),
            "--bundle".into(),
            bundle.to_string_lossy().into_owned(),
            "--keep".into(),
            id,
        ],
        env,
        cwd: bundle,
        uid: None,
        gid: None,
        log_dir: config.log_dir.clone(),
        logs: config.logs,
        runc: Some(runc),
    };
    sup.launch(config, spec).await
}

/// The exec driver.
#[derive(Debug)]
pub struct ExecDriver {
    config: ExecConfig,
    sup: Supervisor,
}

const KEYS: &[&str] = &[
    "command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop", "work_dir",
];

fn parse(config: &BTreeMap<String, Value>) -> Result<(String, Vec<String>, Isolation), DriverError> {
    check_keys(config, KEYS)?;
    let command = cfg_string(config, "command")?
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| DriverError::config("command", "required"))?;
    Ok((command, cfg_strings(config, "args")?, Isolation::parse(config)?))
}

impl ExecDriver {
    /// An exec driver.
    pub fn new(config: ExecConfig) -> Self {
        let sup = Supervisor::new("exec", config.executor.clone());
        ExecDriver { config, sup }
    }
}

impl Driver for ExecDriver {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            fs_isolation: FsIsolation::Chroot,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(async move {
            match runc_health("exec", &self.config.runc) {
                Ok(mut attrs) => {
                    attrs.insert("driver.exec".to_string(), "true".to_string());
                    Fingerprint::healthy(attrs)
                }
                Err(fp) => fp,
            }
        })
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        parse(config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        _events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(async move {
            let (command, args, isolation) = parse(&config.config)?;
            if !nix::unistd::geteuid().is_root() {
                return Err(DriverError::fatal(
                    "the exec driver requires the agent to run as root",
                ));
            }
            let (uid, gid) = task_user("exec", &config.user)?;
            let program = lookup_in_chroot(
                &config.task_dir,
                &command,
                config.env.get("PATH").map(String::as_str),
            )?;
            let task = ContainerTask {
                program,
                args,
                isolation,
                uid,
                gid,
            };
            launch_container(&self.config, &self.sup, config, task).await
        })
    }

    crate::executor::delegate_to_supervisor!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn capabilities_start_from_dockers_set() {
        let iso = Isolation::parse(&cfg(json!({"cap_drop": ["net_raw"], "cap_add": ["SYS_TIME"]}))).unwrap();
        assert!(!iso.caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(iso.caps.contains(&"CAP_SYS_TIME".to_string()));
        assert!(iso.caps.contains(&"CAP_CHOWN".to_string()));
        let iso = Isolation::parse(&cfg(json!({"cap_drop": ["all"], "cap_add": ["chown"]}))).unwrap();
        assert_eq!(iso.caps, vec!["CAP_CHOWN"]);
        let err = Isolation::parse(&cfg(json!({"cap_add": ["fly"]}))).unwrap_err();
        assert!(matches!(&err, DriverError::InvalidConfig { field, .. } if field == "cap_add"));
        let err = Isolation::parse(&cfg(json!({"pid_mode": "shared"}))).unwrap_err();
        assert!(matches!(&err, DriverError::InvalidConfig { field, .. } if field == "pid_mode"));
    }

    #[test]
    fn container_ids_are_runc_safe() {
        assert_eq!(container_id("a1b2/web task/x9"), "drover-a1b2-web-task-x9");
    }

    #[test]
    fn binaries_resolve_inside_the_chroot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("local/app"), "").unwrap();
        assert_eq!(lookup_in_chroot(dir.path(), "app", None).unwrap(), "/local/app");
        assert_eq!(
            lookup_in_chroot(dir.path(), "sh", Some("/bin")).unwrap(),
            "/bin/sh"
        );
        assert_eq!(lookup_in_chroot(dir.path(), "/bin/sh", None).unwrap(), "/bin/sh");
        let err = lookup_in_chroot(dir.path(), "nope", Some("/bin")).unwrap_err();
        assert!(err.to_string().contains("nope") && !err.recoverable());
    }

    #[test]
    fn root_is_refused() {
        let err = task_user("exec", "root").unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
        assert_eq!(task_user("exec", "").unwrap().0, 65534);
    }
}
