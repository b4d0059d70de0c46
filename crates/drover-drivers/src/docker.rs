//! The `docker` driver: runs a task as a container of a real Docker Engine, talking to it over
//! its HTTP API (bollard) on `unix:///var/run/docker.sock` or `DOCKER_HOST`.
//!
//! ```text
//!  TaskConfig ──▶ start_task ──▶ image: local (tag ≠ latest) or pull ("Downloading image …" event)
//!                             ──▶ remove a stale container with the same name
//!                             ──▶ create (name, labels, binds, ports, limits) ──▶ start
//!                             ──▶ log follower ──▶ alloc/logs/<task>.stdout.N / .stderr.N
//!                             ◀── TaskHandle { driver_state: {container_id, image_id, image} }
//!
//!  wait_task ──▶ engine wait + inspect ──▶ ExitResult { exit_code, oom_killed }
//!  stop_task ──▶ "" → engine stop (StopSignal, timeout, SIGKILL) | SIG → kill, wait, SIGKILL
//!  destroy_task ──▶ remove the container (gc_container)      recover_task ──▶ inspect by ID
//! ```
//!
//! # Vocabulary
//! - **container name**: `<task name, "/" → "_">-<alloc id>`; one container per task and alloc.
//!   A container left with that name (a crash between create and start) is removed first.
//! - **labels**: the job's `labels` plus `com.hashicorp.nomad.{alloc_id, job_name, task_name,
//!   task_group_name, namespace, node_id}` (Nomad only adds the ones besides `alloc_id` when
//!   its `extra_labels` asks; we always add them).
//! - **binds**: `<alloc dir>/alloc → /alloc`, `<task dir>/local → /local`,
//!   `<task dir>/secrets → /secrets`, then the task's `volumes` and `mount` blocks.
//! - **log cursor**: the timestamp of the last log line copied into the task's log files, kept in
//!   `<state dir>/docker-logs.cursor` together with the container ID.
//!
//! # Logs
//! The engine keeps the container's output (json-file driver, `max-size = 2m`, `max-file = 2`
//! unless the task's `logging` block says otherwise). A follower task per container reads the
//! engine's log stream with timestamps (`follow`) and appends the lines, without their
//! timestamps, to [`RotatingWriter`]s. After an agent restart, [`Driver::recover_task`] starts a
//! new follower with `since = <cursor seconds>` and skips every line whose timestamp is not newer
//! than the cursor, so lines already copied are not copied again and lines written while the
//! agent was down are not lost (as long as the engine's own rotation kept them). The cursor is
//! written at most every 250 ms, so a crash can copy the last ≤ 250 ms of lines twice. Without a
//! state directory there is no cursor and a recovered follower starts at "now".
//!
//! # Guarantees
//! - The container outlives the agent (the engine runs it); `recover_task` on the persisted
//!   handle reattaches by container ID and `wait_task` reports the real exit code and whether
//!   the kernel's OOM killer ended it.
//! - The task sees only [`TaskConfig::env`] (no host environment).
//! - A missing image or failed pull is a recoverable start error carrying the engine's message.
//!
//! # Limits
//! - No registry auth, `load`, devices, ulimits, CPU hard limits, group network namespaces
//!   (pause containers) or image garbage collection; those config keys are refused by name.
//! - The engine does not say whether a signal ended the container; it reports exit code
//!   128 + N, as the shell does. The driver keeps that exit code (what Nomad shows for docker
//!   tasks) and also reports `signal = N` for exit codes 129‥=192, so a container that
//!   deliberately exits 130 is reported as ended by SIGINT.
//! - Log files are written with blocking file I/O from the follower task (short appends).
//! - With `tty = true` the engine's stream is raw; lines are split at newlines, so output that
//!   does not end in a newline may be merged with the next line's timestamp.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, KillContainerOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::logs::RotatingWriter;
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, ExitResult, Fingerprint, FsIsolation,
    TaskConfig, TaskHandle, TaskResourceUsage, now_nanos, parse_signal,
};

/// Label every container carries: the allocation it belongs to.
pub const LABEL_ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
/// Prefix of the other labels the driver adds (`…job_name`, `…task_name`, …).
pub const LABEL_PREFIX: &str = "com.hashicorp.nomad.";
/// The file in the task's state directory that holds the log cursor.
pub const LOG_CURSOR_FILE: &str = "docker-logs.cursor";

/// How often the log follower writes its cursor at most.
const CURSOR_EVERY: Duration = Duration::from_millis(250);
/// How long `wait_task` waits for the follower to copy the last lines after the exit.
const LOG_DRAIN: Duration = Duration::from_secs(5);
/// Timeout of ordinary engine requests (inspect, create, kill).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Nomad's default for `cpu_cfs_period`-less tasks: CPUShares below 2 are refused by the kernel.
const MIN_CPU_SHARES: i64 = 2;

/// Plugin-level settings of the docker driver (the agent's `plugin "docker" { config {} }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// Engine endpoint (`unix:///var/run/docker.sock`, `tcp://host:2375`). `None`: `DOCKER_HOST`,
    /// else the default socket.
    pub endpoint: Option<String>,
    /// Tasks may bind host paths outside their allocation directory (`volumes { enabled }`).
    pub volumes_enabled: bool,
    /// Tasks may set `privileged = true`.
    pub allow_privileged: bool,
    /// Remove containers when their task is destroyed (`gc { container }`).
    pub gc_container: bool,
    /// Upper bound for one image pull.
    pub image_pull_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            endpoint: None,
            volumes_enabled: false,
            allow_privileged: false,
            gc_container: true,
            image_pull_timeout: Duration::from_secs(5 * 60),
        }
    }
}

impl DockerConfig {
    /// The endpoint the driver connects to.
    pub fn resolved_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
    }
}

/// The docker driver. Cheap to create; connects to the engine on first use.
#[derive(Debug)]
pub struct DockerDriver {
    config: DockerConfig,
    /// The engine client after API version negotiation (`None` until it succeeded once).
    client: tokio::sync::Mutex<Option<Docker>>,
    tasks: Mutex<HashMap<String, Arc<DockerTask>>>,
    /// Whether a fingerprint was ever healthy: an engine that goes away afterwards is
    /// `Unhealthy`, one never seen is `Undetected`.
    seen_healthy: AtomicBool,
}

/// What the driver keeps about one running (or exited, not yet destroyed) task.
#[derive(Debug)]
struct DockerTask {
    container_id: String,
    /// The task's state directory (removed on destroy).
    state_dir: PathBuf,
    /// The cached exit, once known.
    exit: Mutex<Option<ExitResult>>,
    /// Turns `true` when the log follower copied everything (the container exited).
    logs_done: watch::Receiver<bool>,
    follower: tokio::task::AbortHandle,
}

/// What the handle's `driver_state` holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DockerState {
    /// The container's ID.
    pub container_id: String,
    /// The image ID the container was created from.
    pub image_id: String,
    /// The image reference from the job.
    pub image: String,
}

impl DockerDriver {
    /// A driver with these settings.
    pub fn new(config: DockerConfig) -> Self {
        DockerDriver {
            config,
            client: tokio::sync::Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            seen_healthy: AtomicBool::new(false),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    async fn client(&self) -> Result<Docker, DriverError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let endpoint = self.config.resolved_endpoint();
        let docker = Docker::connect_with_host(&endpoint)
            .map_err(|e| DriverError::Other(format!("docker endpoint {endpoint}: {}", engine_message(&e))))?
            .with_timeout(REQUEST_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|e| DriverError::Other(format!("docker at {endpoint}: {}", engine_message(&e))))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<String, Arc<DockerTask>>> {
        // A poisoned lock only means another thread panicked while holding it; the map itself is
        // still consistent (every update is a single insert or remove).
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task(&self, task_id: &str) -> Result<Arc<DockerTask>, DriverError> {
        self.tasks()
            .get(task_id)
            .cloned()
            .ok_or_else(|| DriverError::TaskNotFound(task_id.to_string()))
    }

    async fn do_fingerprint(&self) -> Fingerprint {
        let down = |why: String| {
            let mut why = format!("Failed to connect to docker daemon: {why}");
            // The engine's client says only "Connect"; name the usual causes.
            if let Some(sock) = self.config.resolved_endpoint().strip_prefix("unix://") {
                match std::fs::metadata(sock) {
                    Err(_) => why.push_str(&format!(" ({sock} does not exist: is dockerd running?)")),
                    Ok(_)
                        if std::os::unix::net::UnixStream::connect(sock)
                            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) =>
                    {
                        why.push_str(&format!(
                            " (permission denied on {sock}: run the agent as root or in the docker group)"
                        ));
                    }
                    Ok(_) => {}
                }
            }
            if self.seen_healthy.load(Ordering::Relaxed) {
                Fingerprint::unhealthy(why)
            } else {
                Fingerprint::undetected(why)
            }
        };
        let docker = match self.client().await {
            Ok(d) => d,
            Err(e) => return down(e.to_string()),
        };
        let version = match docker.version().await {
            Ok(v) => v,
            Err(e) => return down(engine_message(&e)),
        };
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "driver.docker.version".to_string(),
            version.version.unwrap_or_default(),
        );
        if self.config.volumes_enabled {
            attrs.insert("driver.docker.volumes.enabled".into(), "true".into());
        }
        if self.config.allow_privileged {
            attrs.insert("driver.docker.privileged.enabled".into(), "true".into());
        }
        if let Ok(info) = docker.info().await {
            if let Some(os) = info.os_type.filter(|s| !s.is_empty()) {
                attrs.insert("driver.docker.os_type".into(), os);
            }
            if let Some(runtimes) = info.runtimes {
                let mut names: Vec<String> = runtimes.into_keys().collect();
                names.sort();
                attrs.insert("driver.docker.runtimes".into(), names.join(","));
            }
        }
        if let Ok(net) = docker.inspect_network("bridge", None).await {
            let gateway = net
                .ipam
                .and_then(|i| i.config)
                .into_iter()
                .flatten()
                .find_map(|c| c.gateway.filter(|g| !g.is_empty()));
            if let Some(gw) = gateway {
                attrs.insert("driver.docker.bridge_ip".into(), gw);
            }
        }
        self.seen_healthy.store(true, Ordering::Relaxed);
        Fingerprint::healthy(attrs)
    }

    async fn do_start(&self, task: TaskConfig, events: EventSink) -> Result<TaskHandle, DriverError> {
        let spec = TaskSpec::parse(&task.config, &self.config)?;
        if self.tasks().contains_key(&task.id) {
            return Err(DriverError::fatal(format!("task {} is already started", task.id)));
        }
        let docker = self
            .client()
            .await
            .map_err(|e| DriverError::retryable(e.to_string()))?;
        let image_id = self.resolve_image(&docker, &spec, &events).await?;
        let name = container_name(&task);
        let body = self.container_body(&task, &spec)?;

        remove_stale(&docker, &name).await?;
        let created = match create(&docker, &name, body.clone()).await {
            Err(EngineError::DockerResponseServerError { status_code: 409, .. }) => {
                // Someone created it between our removal and create: remove once more.
                remove_stale(&docker, &name).await?;
                create(&docker, &name, body).await
            }
            other => other,
        }
        .map_err(|e| start_error("creating container", &e))?;
        let container_id = created.id;

        if let Err(e) = docker.start_container(&container_id, None).await {
            let err = start_error("starting container", &e);
            let _ = docker
                .remove_container(
                    &container_id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                )
                .await;
            return Err(err);
        }

        let cursor_path = cursor_path(&task);
        if let Some(p) = &cursor_path {
            // A fresh container: a cursor of an earlier container of this task means nothing.
            let _ = std::fs::remove_file(p);
        }
        self.track(&docker, &task, &container_id, None, spec.tty);
        let state = DockerState {
            container_id,
            image_id,
            image: spec.image.clone(),
        };
        Ok(TaskHandle {
            driver: "docker".into(),
            config: task,
            driver_state: serde_json::to_value(&state).map_err(|e| DriverError::Other(e.to_string()))?,
            started_at: now_nanos(),
        })
    }

    /// Registers a task and starts its log follower from `cursor`.
    fn track(
        &self,
        docker: &Docker,
        task: &TaskConfig,
        container_id: &str,
        cursor: Option<Stamp>,
        tty: bool,
    ) {
        let (done_tx, done_rx) = watch::channel(false);
        let follower = LogFollower {
            docker: docker.clone(),
            container_id: container_id.to_string(),
            task_name: task.name.clone(),
            log_dir: task.log_dir.clone(),
            settings: task.logs,
            cursor_path: cursor_path(task),
            tty,
        };
        let handle = tokio::spawn(follower.run(cursor, done_tx));
        let entry = Arc::new(DockerTask {
            container_id: container_id.to_string(),
            state_dir: task.state_dir.clone(),
            exit: Mutex::new(None),
            logs_done: done_rx,
            follower: handle.abort_handle(),
        });
        if let Some(old) = self.tasks().insert(task.id.clone(), entry) {
            old.follower.abort();
        }
    }

    async fn resolve_image(
        &self,
        docker: &Docker,
        spec: &TaskSpec,
        events: &EventSink,
    ) -> Result<String, DriverError> {
        let reference = &spec.image;
        let (repo, tag) = split_image(reference);
        if !spec.force_pull
            && tag.as_deref() != Some("latest")
            && let Ok(img) = docker.inspect_image(reference).await
        {
            return Ok(img.id.unwrap_or_default());
        }
        events(format!("Downloading image {reference}"));
        let pull = async {
            let opts = CreateImageOptions {
                from_image: Some(repo.clone()),
                tag: tag.clone(),
                ..Default::default()
            };
            let mut stream = docker
                .clone()
                .with_timeout(self.config.image_pull_timeout)
                .create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok(())
        };
        match tokio::time::timeout(self.config.image_pull_timeout, pull).await {
            Err(_) => {
                return Err(DriverError::retryable(format!(
                    "Failed to pull `{reference}`: timed out after {:?}",
                    self.config.image_pull_timeout
                )));
            }
            Ok(Err(e)) => {
                return Err(DriverError::retryable(format!(
                    "Failed to pull `{reference}`: {}",
                    engine_message(&e)
                )));
            }
            Ok(Ok(())) => {}
        }
        match docker.inspect_image(reference).await {
            Ok(img) => Ok(img.id.unwrap_or_default()),
            Err(e) => Err(DriverError::retryable(format!(
                "Failed to pull `{reference}`: {}",
                engine_message(&e)
            ))),
        }
    }

    fn container_body(&self, task: &TaskConfig, spec: &TaskSpec) -> Result<ContainerCreateBody, DriverError> {
        // Binds: the shared alloc dir and the task's local/secrets dirs, then `volumes`.
        let alloc_shared = task.alloc_dir.join("alloc");
        let local = task.task_dir.join("local");
        let secrets = task.task_dir.join("secrets");
        for dir in [&alloc_shared, &local, &secrets] {
            std::fs::create_dir_all(dir)
                .map_err(|e| DriverError::fatal(format!("creating {}: {e}", dir.display())))?;
        }
        let mut binds = vec![
            format!("{}:/alloc", alloc_shared.display()),
            format!("{}:/local", local.display()),
            format!("{}:/secrets", secrets.display()),
        ];
        for (i, v) in spec.volumes.iter().enumerate() {
            let field = format!("volumes[{i}]");
            let host = self.host_path(&field, &v.source, task)?;
            let mut bind = format!("{}:{}", host.display(), v.target);
            if let Some(mode) = &v.mode {
                bind.push(':');
                bind.push_str(mode);
            }
            binds.push(bind);
        }

        let mut mounts = Vec::new();
        for (i, m) in spec.mounts.iter().enumerate() {
            let field = format!("mount[{i}]");
            let mut mount = Mount {
                target: Some(m.target.clone()),
                read_only: Some(m.readonly),
                ..Default::default()
            };
            match m.kind.as_str() {
                "bind" => {
                    let host = self.host_path(&format!("{field}.source"), &m.source, task)?;
                    mount.typ = Some(MountType::BIND);
                    mount.source = Some(host.display().to_string());
                    mount.bind_options = Some(MountBindOptions {
                        propagation: m.propagation.as_deref().map(propagation),
                        ..Default::default()
                    });
                }
                "tmpfs" => {
                    mount.typ = Some(MountType::TMPFS);
                    mount.tmpfs_options = Some(MountTmpfsOptions {
                        size_bytes: m.tmpfs_size,
                        mode: m.tmpfs_mode,
                        ..Default::default()
                    });
                }
                _ => {
                    mount.typ = Some(MountType::VOLUME);
                    mount.source = Some(m.source.clone()).filter(|s| !s.is_empty());
                    mount.volume_options = Some(MountVolumeOptions {
                        no_copy: Some(m.no_copy),
                        labels: Some(m.labels.clone().into_iter().collect())
                            .filter(|l: &HashMap<_, _>| !l.is_empty()),
                        driver_config: m.driver.as_ref().map(|(name, options)| {
                            MountVolumeOptionsDriverConfig {
                                name: Some(name.clone()),
                                options: Some(options.clone().into_iter().collect()),
                            }
                        }),
                        ..Default::default()
                    });
                }
            }
            mounts.push(mount);
        }

        // Environment: exactly the task's, with NOMAD_PORT_<label> following `port_map`.
        let mut env = task.env.clone();
        for (label, port) in &spec.port_map {
            env.insert(format!("NOMAD_PORT_{label}"), port.to_string());
        }

        // Ports.
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed: Vec<String> = Vec::new();
        let mut publish = |host_ip: &str, host_port: u16, container_port: u16| {
            for proto in ["tcp", "udp"] {
                let key = format!("{container_port}/{proto}");
                bindings
                    .entry(key.clone())
                    .or_default()
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: Some(host_ip.to_string()),
                        host_port: Some(host_port.to_string()),
                    });
                if !exposed.contains(&key) {
                    exposed.push(key);
                }
            }
        };
        let shares_netns = spec
            .network_mode
            .as_deref()
            .is_some_and(|m| m == "host" || m.starts_with("container:"));
        if !shares_netns {
            if !spec.ports.is_empty() {
                for label in &spec.ports {
                    let port = task
                        .resources
                        .ports
                        .iter()
                        .find(|p| &p.label == label)
                        .ok_or_else(|| {
                            DriverError::fatal(format!("Port {label:?} not found, check network block"))
                        })?;
                    let to = if port.to == 0 { port.value } else { port.to };
                    publish(&port.host_ip, port.value, to);
                }
            } else if !spec.port_map.is_empty() {
                // Legacy task network: every port of the allocation, mapped through `port_map`.
                for port in &task.resources.ports {
                    let to = spec
                        .port_map
                        .get(&port.label)
                        .copied()
                        .unwrap_or(if port.to == 0 { port.value } else { port.to });
                    publish(&port.host_ip, port.value, to);
                }
            }
        }

        // Resources.
        let limit = task.resources.memory_limit_bytes();
        let hard = spec
            .memory_hard_limit
            .map(|mb| mb * 1024 * 1024)
            .unwrap_or(0)
            .max(limit);
        let reservation = task.resources.memory_mb * 1024 * 1024;
        let memory = (hard > 0).then_some(hard);
        let memory_reservation = (hard > reservation && reservation > 0).then_some(reservation);

        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_ALLOC_ID.into(), task.alloc_id.clone());
        for (key, value) in [
            ("job_name", &task.job_name),
            ("task_name", &task.name),
            ("task_group_name", &task.task_group),
            ("namespace", &task.namespace),
            ("node_id", &task.node_id),
        ] {
            labels.insert(format!("{LABEL_PREFIX}{key}"), value.clone());
        }

        let (log_type, log_config) = match &spec.logging {
            Some((kind, config)) => (kind.clone(), config.clone()),
            None => (
                "json-file".to_string(),
                BTreeMap::from([
                    ("max-file".to_string(), "2".to_string()),
                    ("max-size".to_string(), "2m".to_string()),
                ]),
            ),
        };

        let cmd = match &spec.command {
            Some(c) => Some(
                std::iter::once(c.clone())
                    .chain(spec.args.iter().cloned())
                    .collect(),
            ),
            None if !spec.args.is_empty() => Some(spec.args.clone()),
            None => None,
        };
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());

        let host_config = HostConfig {
            binds: Some(binds),
            mounts: (!mounts.is_empty()).then_some(mounts),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            memory,
            memory_swap: memory,
            memory_reservation,
            cpu_shares: Some(task.resources.cpu_shares.max(MIN_CPU_SHARES)),
            privileged: Some(spec.privileged),
            cap_add: non_empty(&spec.cap_add),
            cap_drop: non_empty(&spec.cap_drop),
            dns: non_empty(&spec.dns_servers),
            dns_search: non_empty(&spec.dns_search_domains),
            dns_options: non_empty(&spec.dns_options),
            extra_hosts: non_empty(&spec.extra_hosts),
            security_opt: non_empty(&spec.security_opt),
            group_add: non_empty(&spec.group_add),
            init: spec.init.then_some(true),
            network_mode: spec.network_mode.clone(),
            log_config: Some(HostConfigLogConfig {
                typ: Some(log_type),
                config: Some(log_config.into_iter().collect()),
            }),
            shm_size: spec.shm_size,
            sysctls: (!spec.sysctl.is_empty()).then(|| spec.sysctl.clone().into_iter().collect()),
            readonly_rootfs: spec.readonly_rootfs.then_some(true),
            pids_limit: spec.pids_limit,
            oom_score_adj: spec.oom_score_adj,
            ipc_mode: spec.ipc_mode.clone(),
            pid_mode: spec.pid_mode.clone(),
            uts_mode: spec.uts_mode.clone(),
            userns_mode: spec.userns_mode.clone(),
            runtime: spec.runtime.clone(),
            ..Default::default()
        };

        Ok(ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd,
            entrypoint: non_empty(&spec.entrypoint),
            env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            working_dir: spec.work_dir.clone(),
            hostname: spec.hostname.clone(),
            user: Some(task.user.clone()).filter(|u| !u.is_empty()),
            tty: Some(spec.tty),
            open_stdin: Some(spec.interactive),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    /// The host path of a bind source: relative sources live in the task directory; anything
    /// outside the allocation directory needs `volumes_enabled`.
    fn host_path(&self, field: &str, source: &str, task: &TaskConfig) -> Result<PathBuf, DriverError> {
        if source.is_empty() {
            return Err(DriverError::config(field, "a bind needs a source"));
        }
        let path = if Path::new(source).is_absolute() {
            normalize(Path::new(source))
        } else {
            normalize(&task.task_dir.join(source))
        };
        if !self.config.volumes_enabled && !path.starts_with(normalize(&task.alloc_dir)) {
            return Err(DriverError::config(
                field,
                format!("volumes are not enabled; cannot mount host path {source:?}"),
            ));
        }
        Ok(path)
    }

    async fn do_recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let task = &handle.config;
        if self.tasks().contains_key(&task.id) {
            return Ok(());
        }
        let state: DockerState = serde_json::from_value(handle.driver_state.clone())
            .map_err(|e| DriverError::Other(format!("docker driver state of {}: {e}", task.id)))?;
        // An engine that does not answer (restarting, socket not there yet) is a reason to try
        // again, not to replace a container that may be running fine.
        let docker = self
            .client()
            .await
            .map_err(|e| DriverError::Unavailable(e.to_string()))?;
        let info = match inspect(&docker, &state.container_id).await {
            Ok(info) => info,
            Err(e) if status(&e) == Some(404) => return Err(DriverError::TaskNotFound(task.id.clone())),
            Err(e) if status(&e).is_none() => return Err(DriverError::Unavailable(engine_message(&e))),
            Err(e) => return Err(DriverError::Other(engine_message(&e))),
        };
        let tty = info.config.as_ref().and_then(|c| c.tty).unwrap_or(false);
        let cursor = match cursor_path(task) {
            Some(path) => read_cursor(&path, &state.container_id),
            // No place for a cursor: copy only what comes from now on.
            None => Some(Stamp::now()),
        };
        self.track(&docker, task, &state.container_id, cursor, tty);
        Ok(())
    }

    async fn do_wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let task = self.task(task_id)?;
        let docker = self.client().await?;
        let result = wait_exit(&docker, &task).await;
        // Let the follower copy the last lines before reporting the exit.
        let mut done = task.logs_done.clone();
        let _ = tokio::time::timeout(LOG_DRAIN, done.wait_for(|d| *d)).await;
        Ok(result)
    }

    async fn do_stop(&self, task_id: &str, timeout: Duration, signal: &str) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        let docker = self.client().await?;
        let id = &task.container_id;
        if signal.trim().is_empty() {
            let secs = i32::try_from(timeout.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
            let slow = docker.clone().with_timeout(timeout + REQUEST_TIMEOUT);
            match slow
                .stop_container(
                    id,
                    Some(StopContainerOptions {
                        signal: None,
                        t: Some(secs),
                    }),
                )
                .await
            {
                Ok(()) => {}
                Err(e) if gone_or_stopped(&e) => {}
                Err(e) => {
                    return Err(DriverError::Other(format!(
                        "stopping container: {}",
                        engine_message(&e)
                    )));
                }
            }
        } else {
            let sig = parse_signal(signal)?;
            kill(&docker, id, sig.as_str()).await?;
            if !wait_stopped(&docker, id, timeout).await {
                kill(&docker, id, "SIGKILL").await?;
            }
        }
        if wait_stopped(&docker, id, Duration::from_secs(30)).await {
            Ok(())
        } else {
            Err(DriverError::Other(format!(
                "container {id} still running after stop"
            )))
        }
    }

    async fn do_destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        let docker = self.client().await?;
        let id = &task.container_id;
        match inspect(&docker, id).await {
            Ok(info) if is_running(&info) => {
                if !force {
                    return Err(DriverError::Other(format!(
                        "task {task_id} is still running; cannot destroy"
                    )));
                }
                kill(&docker, id, "SIGKILL").await?;
                wait_stopped(&docker, id, Duration::from_secs(30)).await;
            }
            Ok(_) => {}
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(DriverError::Other(engine_message(&e))),
        }
        // Give the follower a moment to copy the last lines before the container disappears.
        let mut done = task.logs_done.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), done.wait_for(|d| *d)).await;
        if self.config.gc_container {
            let opts = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            match docker.remove_container(id, Some(opts)).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {}
                // 409: removal already in progress.
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => {
                    return Err(DriverError::Other(format!(
                        "removing container: {}",
                        engine_message(&e)
                    )));
                }
            }
        }
        task.follower.abort();
        self.tasks().remove(task_id);
        // The driver's own files for the task (the log cursor).
        if !task.state_dir.as_os_str().is_empty() {
            match std::fs::remove_dir_all(&task.state_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DriverError::Other(format!(
                        "removing {}: {e}",
                        task.state_dir.display()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn do_signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let task = self.task(task_id)?;
        let sig = parse_signal(signal)?;
        let docker = self.client().await?;
        match docker
            .kill_container(
                &task.container_id,
                Some(KillContainerOptions {
                    signal: sig.as_str().into(),
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => Err(DriverError::Other(format!(
                "signalling container: {}",
                engine_message(&e)
            ))),
        }
    }

    async fn do_stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let task = self.task(task_id)?;
        let docker = self.client().await?;
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = docker
            .stats(&task.container_id, Some(opts))
            .next()
            .await
            .ok_or_else(|| DriverError::Other("docker returned no stats".into()))?
            .map_err(|e| DriverError::Other(format!("container stats: {}", engine_message(&e))))?;
        let mut usage = TaskResourceUsage {
            timestamp: now_nanos(),
            ..Default::default()
        };
        if let Some(mem) = stats.memory_stats {
            let detail = mem.stats.unwrap_or_default();
            // cgroup v1 reports `rss`, v2 `anon`.
            if let Some(rss) = detail.get("rss").or_else(|| detail.get("anon")) {
                usage.rss = *rss;
                usage.measured.push("RSS".into());
            }
            if let Some(u) = mem.usage {
                usage.usage = u;
                usage.measured.push("Usage".into());
            }
            if let Some(m) = mem.max_usage {
                usage.max_usage = m;
                usage.measured.push("Max Usage".into());
            }
        }
        if let Some(cpu) = stats.cpu_stats.and_then(|c| c.cpu_usage) {
            if let Some(u) = cpu.usage_in_usermode {
                usage.user_ns = u;
                usage.measured.push("User Mode".into());
            }
            if let Some(s) = cpu.usage_in_kernelmode {
                usage.system_ns = s;
                usage.measured.push("System Mode".into());
            }
        }
        if let Ok(info) = inspect(&docker, &task.container_id).await
            && let Some(pid) = info.state.and_then(|s| s.pid).filter(|p| *p > 0)
        {
            usage.pids.push(pid as u32);
        }
        Ok(usage)
    }
}

impl Drop for DockerDriver {
    fn drop(&mut self) {
        // The containers keep running (the engine owns them); only our log followers stop, as
        // they would if the agent process died.
        for task in self.tasks().values() {
            task.follower.abort();
        }
    }
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            fs_isolation: FsIsolation::Image,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(self.do_fingerprint())
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        TaskSpec::parse(config, &self.config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(self.do_start(config, events))
    }

    fn recover_task(&self, handle: &TaskHandle) -> BoxFuture<'_, Result<(), DriverError>> {
        let handle = handle.clone();
        Box::pin(async move { self.do_recover(&handle).await })
    }

    fn wait_task(&self, task_id: &str) -> BoxFuture<'_, Result<ExitResult, DriverError>> {
        let id = task_id.to_string();
        Box::pin(async move { self.do_wait(&id).await })
    }

    fn stop_task(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> BoxFuture<'_, Result<(), DriverError>> {
        let (id, signal) = (task_id.to_string(), signal.to_string());
        Box::pin(async move { self.do_stop(&id, timeout, &signal).await })
    }

    fn destroy_task(&self, task_id: &str, force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        let id = task_id.to_string();
        Box::pin(async move { self.do_destroy(&id, force).await })
    }

    fn signal_task(&self, task_id: &str, signal: &str) -> BoxFuture<'_, Result<(), DriverError>> {
        let (id, signal) = (task_id.to_string(), signal.to_string());
        Box::pin(async move { self.do_signal(&id, &signal).await })
    }

    fn task_stats(&self, task_id: &str) -> BoxFuture<'_, Result<TaskResourceUsage, DriverError>> {
        let id = task_id.to_string();
        Box::pin(async move { self.do_stats(&id).await })
    }
}

// ---------------------------------------------------------------------------------------------
// Engine helpers

/// `<task name with "/" → "_">-<alloc id>`.
pub fn container_name(task: &TaskConfig) -> String {
    format!("{}-{}", task.name.replace('/', "_"), task.alloc_id)
}

/// Docker's own message for an engine error (without bollard's status-code preamble).
fn engine_message(e: &EngineError) -> String {
    match e {
        EngineError::DockerResponseServerError { message, .. } => message.clone(),
        EngineError::DockerStreamError { error } => error.clone(),
        EngineError::DockerContainerWaitError { error, .. } => error.clone(),
        other => other.to_string(),
    }
}

fn status(e: &EngineError) -> Option<u16> {
    match e {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A stop or kill that found nothing to do (container gone or not running).
fn gone_or_stopped(e: &EngineError) -> bool {
    matches!(status(e), Some(404 | 304 | 409))
}

/// A start failure: engine-side (5xx, transport) may heal, a 4xx (bad config) will not.
fn start_error(what: &str, e: &EngineError) -> DriverError {
    let message = format!("{what}: {}", engine_message(e));
    match status(e) {
        Some(code) if code < 500 => DriverError::fatal(message),
        _ => DriverError::retryable(message),
    }
}

async fn create(
    docker: &Docker,
    name: &str,
    body: ContainerCreateBody,
) -> Result<bollard::models::ContainerCreateResponse, EngineError> {
    let opts = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    docker.create_container(Some(opts), body).await
}

/// Removes a container called `name` if one exists (left by a crashed start).
async fn remove_stale(docker: &Docker, name: &str) -> Result<(), DriverError> {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(name, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(()),
        Err(e) => Err(DriverError::retryable(format!(
            "removing stale container {name}: {}",
            engine_message(&e)
        ))),
    }
}

async fn inspect(docker: &Docker, id: &str) -> Result<ContainerInspectResponse, EngineError> {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
}

fn is_running(info: &ContainerInspectResponse) -> bool {
    info.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

async fn kill(docker: &Docker, id: &str, signal: &str) -> Result<(), DriverError> {
    match docker
        .kill_container(
            id,
            Some(KillContainerOptions {
                signal: signal.into(),
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if gone_or_stopped(&e) => Ok(()),
        Err(e) => Err(DriverError::Other(format!(
            "killing container: {}",
            engine_message(&e)
        ))),
    }
}

/// Polls until the container is not running (or gone); `false` if it still runs after `limit`.
async fn wait_stopped(docker: &Docker, id: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match inspect(docker, id).await {
            Ok(info) if !is_running(&info) => return true,
            Err(e) if status(&e) == Some(404) => return true,
            _ => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the container to exit and returns (and caches) how it ended.
async fn wait_exit(docker: &Docker, task: &DockerTask) -> ExitResult {
    let cached = |task: &DockerTask| task.exit.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut failures = 0u32;
    loop {
        if let Some(r) = cached(task) {
            return r;
        }
        // The engine answers when the container is not running (at once if it already exited).
        // Non-zero exits arrive as errors; the exit code is read from inspect either way.
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let waited = docker.wait_container(&task.container_id, Some(opts)).next().await;
        let engine_trouble =
            matches!(&waited, Some(Err(e)) if !matches!(e, EngineError::DockerContainerWaitError { .. }));
        match inspect(docker, &task.container_id).await {
            Ok(info) if !is_running(&info) => {
                let state = info.state.unwrap_or_default();
                let exit_code = state.exit_code.unwrap_or(0);
                let result = ExitResult {
                    exit_code,
                    signal: signal_of(exit_code),
                    oom_killed: state.oom_killed.unwrap_or(false),
                    err: state.error.filter(|e| !e.is_empty()),
                };
                *task.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.clone());
                return result;
            }
            Ok(_) if !engine_trouble => continue,
            Err(e) if status(&e) == Some(404) => {
                let result = ExitResult {
                    exit_code: 0,
                    signal: 0,
                    oom_killed: false,
                    err: Some(format!("container {} no longer exists", task.container_id)),
                };
                *task.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.clone());
                return result;
            }
            _ => {
                // The engine is unreachable or restarting: back off, give up after ~2 minutes.
                failures += 1;
                if failures > 60 {
                    return ExitResult {
                        err: Some("lost contact with the docker engine while waiting".into()),
                        ..Default::default()
                    };
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The signal behind an exit code of 128 + N (how the engine reports a container a signal ended).
fn signal_of(exit_code: i64) -> i64 {
    if (129..=192).contains(&exit_code) {
        exit_code - 128
    } else {
        0
    }
}

/// Splits an image reference into (repository, tag); `None` for a digest reference.
/// `redis` → (`redis`, `latest`), `localhost:5000/a/b:1` → (`localhost:5000/a/b`, `1`).
fn split_image(image: &str) -> (String, Option<String>) {
    if let Some((repo, _digest)) = image.split_once('@') {
        return (repo.to_string(), None);
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            Some(image[last_slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

fn propagation(p: &str) -> MountBindOptionsPropagationEnum {
    match p {
        "private" => MountBindOptionsPropagationEnum::PRIVATE,
        "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
        "shared" => MountBindOptionsPropagationEnum::SHARED,
        "rshared" => MountBindOptionsPropagationEnum::RSHARED,
        "slave" => MountBindOptionsPropagationEnum::SLAVE,
        "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
        _ => MountBindOptionsPropagationEnum::EMPTY,
    }
}

/// Lexical normalization (`a/./b/../c` → `a/c`); does not touch the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Logs

/// A log timestamp: (unix seconds, nanoseconds); ordered in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(i64, u32);

impl Stamp {
    fn now() -> Stamp {
        let n = now_nanos();
        Stamp(n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000) as u32)
    }

    /// Parses RFC 3339 (`2024-01-02T03:04:05.123456789Z`, or with a `±hh:mm` offset).
    fn parse(s: &str) -> Option<Stamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &s[19..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let text = &frac[..digits];
            let mut padded = format!("{:0<9}", &text[..digits.min(9)]);
            padded.truncate(9);
            nanos = padded.parse().ok()?;
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (oh, om) = rest[1..].split_once(':')?;
                sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
            }
        };
        let days = days_from_civil(y, mo, d);
        Some(Stamp(days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits `<timestamp> <message>` as the engine sends it with `timestamps = true`.
fn split_stamp(frame: &[u8]) -> (Option<Stamp>, &[u8]) {
    let head = &frame[..frame.len().min(48)];
    if let Some(space) = head.iter().position(|b| *b == b' ')
        && let Some(stamp) = std::str::from_utf8(&frame[..space]).ok().and_then(Stamp::parse)
    {
        return (Some(stamp), &frame[space + 1..]);
    }
    (None, frame)
}

fn cursor_path(task: &TaskConfig) -> Option<PathBuf> {
    (!task.state_dir.as_os_str().is_empty()).then(|| task.state_dir.join(LOG_CURSOR_FILE))
}

/// The cursor for `container_id`, if the file holds one for that container.
fn read_cursor(path: &Path, container_id: &str) -> Option<Stamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let (id, stamp) = text.trim().split_once(' ')?;
    if id != container_id {
        return None;
    }
    let (secs, nanos) = stamp.split_once('.')?;
    Some(Stamp(secs.parse().ok()?, nanos.parse().ok()?))
}

fn write_cursor(path: &Path, container_id: &str, stamp: Stamp) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Write then rename, so a crash never leaves half a cursor.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{container_id} {}.{:09}\n", stamp.0, stamp.1))?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "docker: cannot write the log cursor");
    }
}

/// Copies one container's output into the task's log files.
#[derive(Debug)]
struct LogFollower {
    docker: Docker,
    container_id: String,
    task_name: String,
    log_dir: PathBuf,
    settings: crate::LogSettings,
    cursor_path: Option<PathBuf>,
    tty: bool,
}

impl LogFollower {
    async fn run(self, mut cursor: Option<Stamp>, done: watch::Sender<bool>) {
        let open = |stream| RotatingWriter::open(&self.log_dir, &self.task_name, stream, self.settings);
        let (mut stdout, mut stderr) = match (open("stdout"), open("stderr")) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(task = %self.task_name, error = %e, "docker: cannot open log files");
                let _ = done.send(true);
                return;
            }
        };
        let mut written_cursor = cursor;
        loop {
            let since = cursor
                .map(|c| i32::try_from(c.0).unwrap_or(i32::MAX))
                .unwrap_or(0);
            let opts = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since,
                timestamps: true,
                ..Default::default()
            };
            // The log stream stays open as long as the container runs: no request timeout.
            let docker = self
                .docker
                .clone()
                .with_timeout(Duration::from_secs(u32::MAX as u64));
            let mut stream = docker.logs(&self.container_id, Some(opts));
            let mut last_write = Instant::now();
            loop {
                let dirty = cursor != written_cursor;
                let next = if dirty {
                    match tokio::time::timeout(CURSOR_EVERY, stream.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            self.save(cursor, &mut written_cursor);
                            last_write = Instant::now();
                            continue;
                        }
                    }
                } else {
                    stream.next().await
                };
                let frame = match next {
                    None => break,
                    Some(Err(e)) => {
                        tracing::debug!(container = %self.container_id, error = %e, "docker: log stream ended");
                        break;
                    }
                    Some(Ok(frame)) => frame,
                };
                let (writer, bytes) = match frame {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => (&mut stdout, message),
                    LogOutput::StdErr { message } => (&mut stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                let (stamp, body) = split_stamp(&bytes);
                if let (Some(s), Some(c)) = (stamp, cursor)
                    && s <= c
                {
                    continue;
                }
                if let Err(e) = writer.write_all(body) {
                    tracing::warn!(task = %self.task_name, error = %e, "docker: cannot write log file");
                }
                if stamp.is_some() {
                    cursor = stamp;
                }
                if last_write.elapsed() >= CURSOR_EVERY {
                    self.save(cursor, &mut written_cursor);
                    last_write = Instant::now();
                }
            }
            self.save(cursor, &mut written_cursor);
            // The stream ends when the container stops, or when the engine dropped us (restart):
            // then follow again from the cursor.
            match inspect(&self.docker, &self.container_id).await {
                Ok(info) if is_running(&info) => tokio::time::sleep(Duration::from_secs(1)).await,
                _ => break,
            }
            if self.tty {
                // Raw streams have no frame boundaries to resume on; the cursor still applies.
                tracing::debug!(container = %self.container_id, "docker: resuming a tty log stream");
            }
        }
        let _ = done.send(true);
    }

    fn save(&self, cursor: Option<Stamp>, written: &mut Option<Stamp>) {
        if cursor == *written {
            return;
        }
        if let (Some(path), Some(stamp)) = (&self.cursor_path, cursor) {
            write_cursor(path, &self.container_id, stamp);
        }
        *written = cursor;
    }
}

// ---------------------------------------------------------------------------------------------
// The task's `config {}` block

/// Keys Nomad's docker driver knows that this driver does not implement (refused by name).
const UNSUPPORTED_KEYS: &[&str] = &[
    "auth",
    "auth_soft_fail",
    "load",
    "devices",
    "ulimit",
    "network_aliases",
    "ipv4_address",
    "ipv6_address",
    "mac_address",
    "cpu_hard_limit",
    "cpu_cfs_period",
    "storage_opt",
    "healthchecks",
    "isolation",
    "cgroupns",
    "advertise_ipv6_address",
    "volume_driver",
    "image_pull_timeout",
];

const KNOWN_KEYS: &[&str] = &[
    "image",
    "command",
    "args",
    "entrypoint",
    "ports",
    "port_map",
    "network_mode",
    "volumes",
    "mount",
    "labels",
    "logging",
    "work_dir",
    "privileged",
    "hostname",
    "dns_servers",
    "dns_search_domains",
    "dns_options",
    "extra_hosts",
    "cap_add",
    "cap_drop",
    "security_opt",
    "shm_size",
    "sysctl",
    "tty",
    "interactive",
    "init",
    "force_pull",
    "readonly_rootfs",
    "pids_limit",
    "memory_hard_limit",
    "ipc_mode",
    "pid_mode",
    "uts_mode",
    "userns_mode",
    "runtime",
    "group_add",
    "oom_score_adj",
];

/// The task's `config {}` block, typed.
#[derive(Debug, Clone, Default, PartialEq)]
struct TaskSpec {
    image: String,
    command: Option<String>,
    args: Vec<String>,
    entrypoint: Vec<String>,
    ports: Vec<String>,
    port_map: BTreeMap<String, u16>,
    network_mode: Option<String>,
    volumes: Vec<VolumeSpec>,
    mounts: Vec<MountSpec>,
    labels: BTreeMap<String, String>,
    logging: Option<(String, BTreeMap<String, String>)>,
    work_dir: Option<String>,
    privileged: bool,
    hostname: Option<String>,
    dns_servers: Vec<String>,
    dns_search_domains: Vec<String>,
    dns_options: Vec<String>,
    extra_hosts: Vec<String>,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    security_opt: Vec<String>,
    shm_size: Option<i64>,
    sysctl: BTreeMap<String, String>,
    tty: bool,
    interactive: bool,
    init: bool,
    force_pull: bool,
    readonly_rootfs: bool,
    pids_limit: Option<i64>,
    memory_hard_limit: Option<i64>,
    ipc_mode: Option<String>,
    pid_mode: Option<String>,
    uts_mode: Option<String>,
    userns_mode: Option<String>,
    runtime: Option<String>,
    group_add: Vec<String>,
    oom_score_adj: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct VolumeSpec {
    source: String,
    target: String,
    mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct MountSpec {
    kind: String,
    target: String,
    source: String,
    readonly: bool,
    propagation: Option<String>,
    tmpfs_size: Option<i64>,
    tmpfs_mode: Option<i64>,
    no_copy: bool,
    labels: BTreeMap<String, String>,
    driver: Option<(String, BTreeMap<String, String>)>,
}

impl TaskSpec {
    fn parse(config: &BTreeMap<String, Value>, agent: &DockerConfig) -> Result<TaskSpec, DriverError> {
        for key in config.keys() {
            if UNSUPPORTED_KEYS.contains(&key.as_str()) {
                return Err(DriverError::config(key, "not supported by this docker driver"));
            }
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(crate::unknown_key(key, KNOWN_KEYS.iter().copied()));
            }
        }
        let get = |k: &str| config.get(k).filter(|v| !v.is_null());
        let string = |k: &str| get(k).map(|v| as_string(k, v)).transpose();
        let flag = |k: &str| {
            get(k)
                .map(|v| as_bool(k, v))
                .transpose()
                .map(|b| b.unwrap_or(false))
        };
        let int = |k: &str| get(k).map(|v| as_int(k, v)).transpose();
        let list = |k: &str| {
            get(k)
                .map(|v| as_list(k, v))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let map = |k: &str| {
            get(k)
                .map(|v| as_map(k, v))
                .transpose()
                .map(Option::unwrap_or_default)
        };

        let image = string("image")?.unwrap_or_default();
        let image = image
            .strip_prefix("https://")
            .unwrap_or(&image)
            .trim()
            .to_string();
        if image.is_empty() {
            return Err(DriverError::config("image", "required"));
        }

        let mut port_map = BTreeMap::new();
        for (label, value) in map("port_map")? {
            let field = format!("port_map.{label}");
            let port = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| DriverError::config(&field, format!("{value:?} is not a port number")))?;
            port_map.insert(label, port);
        }

        let mut volumes = Vec::new();
        for (i, v) in list("volumes")?.into_iter().enumerate() {
            let field = format!("volumes[{i}]");
            let parts: Vec<&str> = v.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [s, t] => (*s, *t, None),
                [s, t, m] => (*s, *t, Some(m.to_string())),
                _ => {
                    return Err(DriverError::config(
                        &field,
                        format!("{v:?} is not \"source:target[:mode]\""),
                    ));
                }
            };
            if source.is_empty() || !target.starts_with('/') {
                return Err(DriverError::config(
                    &field,
                    format!("{v:?}: needs a source and an absolute target"),
                ));
            }
            if Path::new(source).is_absolute() && !agent.volumes_enabled {
                return Err(DriverError::config(
                    &field,
                    format!("volumes are not enabled; cannot mount host path {source:?}"),
                ));
            }
            volumes.push(VolumeSpec {
                source: source.to_string(),
                target: target.to_string(),
                mode,
            });
        }

        let mut mounts = Vec::new();
        if let Some(v) = get("mount") {
            for (i, block) in as_blocks("mount", v)?.into_iter().enumerate() {
                mounts.push(MountSpec::parse(&format!("mount[{i}]"), block, agent)?);
            }
        }

        let logging = match get("logging") {
            None => None,
            Some(v) => {
                let blocks = as_blocks("logging", v)?;
                let [block] = blocks.as_slice() else {
                    return Err(DriverError::config(
                        "logging",
                        "only one logging block is allowed",
                    ));
                };
                let mut kind = None;
                let mut cfg = BTreeMap::new();
                for (k, v) in block.iter() {
                    let field = format!("logging.{k}");
                    match k.as_str() {
                        "type" | "driver" => kind = Some(as_string(&field, v)?),
                        "config" => cfg = as_map(&field, v)?,
                        _ => return Err(DriverError::config(field, "unknown key")),
                    }
                }
                Some((kind.unwrap_or_else(|| "json-file".into()), cfg))
            }
        };

        let privileged = flag("privileged")?;
        if privileged && !agent.allow_privileged {
            return Err(DriverError::config(
                "privileged",
                "docker privileged mode is disabled on this agent",
            ));
        }

        let memory_hard_limit = int("memory_hard_limit")?;
        if memory_hard_limit.is_some_and(|m| m < 0) {
            return Err(DriverError::config("memory_hard_limit", "must not be negative"));
        }

        Ok(TaskSpec {
            image,
            command: string("command")?.filter(|c| !c.is_empty()),
            args: list("args")?,
            entrypoint: list("entrypoint")?,
            ports: list("ports")?,
            port_map,
            network_mode: string("network_mode")?.filter(|m| !m.is_empty()),
            volumes,
            mounts,
            labels: map("labels")?,
            logging,
            work_dir: string("work_dir")?.filter(|s| !s.is_empty()),
            privileged,
            hostname: string("hostname")?.filter(|s| !s.is_empty()),
            dns_servers: list("dns_servers")?,
            dns_search_domains: list("dns_search_domains")?,
            dns_options: list("dns_options")?,
            extra_hosts: list("extra_hosts")?,
            cap_add: list("cap_add")?,
            cap_drop: list("cap_drop")?,
            security_opt: list("security_opt")?,
            shm_size: int("shm_size")?,
            sysctl: map("sysctl")?,
            tty: flag("tty")?,
            interactive: flag("interactive")?,
            init: flag("init")?,
            force_pull: flag("force_pull")?,
            readonly_rootfs: flag("readonly_rootfs")?,
            pids_limit: int("pids_limit")?,
            memory_hard_limit,
            ipc_mode: string("ipc_mode")?.filter(|s| !s.is_empty()),
            pid_mode: string("pid_mode")?.filter(|s| !s.is_empty()),
            uts_mode: string("uts_mode")?.filter(|s| !s.is_empty()),
            userns_mode: string("userns_mode")?.filter(|s| !s.is_empty()),
            runtime: string("runtime")?.filter(|s| !s.is_empty()),
            group_add: list("group_add")?,
            oom_score_adj: int("oom_score_adj")?,
        })
    }
}

impl MountSpec {
    fn parse(
        field: &str,
        block: &Map<String, Value>,
        agent: &DockerConfig,
    ) -> Result<MountSpec, DriverError> {
        let mut m = MountSpec {
            kind: "volume".into(),
            ..Default::default()
        };
        for (k, v) in block {
            let f = format!("{field}.{k}");
            match k.as_str() {
                "type" => m.kind = as_string(&f, v)?,
                "target" => m.target = as_string(&f, v)?,
                "source" => m.source = as_string(&f, v)?,
                "readonly" => m.readonly = as_bool(&f, v)?,
                "bind_options" => {
                    for (bk, bv) in single_block(&f, v)? {
                        match bk.as_str() {
                            "propagation" => m.propagation = Some(as_string(&format!("{f}.{bk}"), bv)?),
                            _ => return Err(DriverError::config(format!("{f}.{bk}"), "unknown key")),
                        }
                    }
                }
                "tmpfs_options" => {
                    for (tk, tv) in single_block(&f, v)? {
                        let tf = format!("{f}.{tk}");
                        match tk.as_str() {
                            "size" => m.tmpfs_size = Some(as_int(&tf, tv)?),
                            "mode" => m.tmpfs_mode = Some(as_int(&tf, tv)?),
                            _ => return Err(DriverError::config(tf, "unknown key")),
                        }
                    }
                }
                "volume_options" => {
                    for (vk, vv) in single_block(&f, v)? {
                        let vf = format!("{f}.{vk}");
                        match vk.as_str() {
                            "no_copy" => m.no_copy = as_bool(&vf, vv)?,
                            "labels" => m.labels = as_map(&vf, vv)?,
                            "driver_config" => {
                                let mut name = String::new();
                                let mut options = BTreeMap::new();
                                for (dk, dv) in single_block(&vf, vv)? {
                                    let df = format!("{vf}.{dk}");
                                    match dk.as_str() {
                                        "name" => name = as_string(&df, dv)?,
                                        "options" => options = as_map(&df, dv)?,
                                        _ => return Err(DriverError::config(df, "unknown key")),
                                    }
                                }
                                if !agent.volumes_enabled {
                                    return Err(DriverError::config(
                                        vf,
                                        "volumes are not enabled; cannot use a volume driver",
                                    ));
                                }
                                m.driver = Some((name, options));
                            }
                            _ => return Err(DriverError::config(vf, "unknown key")),
                        }
                    }
                }
                _ => return Err(DriverError::config(f, "unknown key")),
            }
        }
        if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
            return Err(DriverError::config(
                format!("{field}.type"),
                format!("{:?} is not one of bind, volume, tmpfs", m.kind),
            ));
        }
        if !m.target.starts_with('/') {
            return Err(DriverError::config(
                format!("{field}.target"),
                "an absolute path is required",
            ));
        }
        if let Some(p) = &m.propagation
            && !matches!(
                p.as_str(),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            )
        {
            return Err(DriverError::config(
                format!("{field}.bind_options.propagation"),
                format!("{p:?} is not a propagation mode"),
            ));
        }
        if m.kind == "bind" {
            if m.source.is_empty() {
                return Err(DriverError::config(
                    format!("{field}.source"),
                    "a bind mount needs a source",
                ));
            }
            if Path::new(&m.source).is_absolute() && !agent.volumes_enabled {
                return Err(DriverError::config(
                    format!("{field}.source"),
                    format!("volumes are not enabled; cannot mount host path {:?}", m.source),
                ));
            }
        }
        Ok(m)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn as_string(field: &str, v: &Value) -> Result<String, DriverError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(DriverError::config(
            field,
            format!("must be a string, not {}", type_name(other)),
        )),
    }
}

fn as_bool(field: &str, v: &Value) -> Result<bool, DriverError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(DriverError::config(
            field,
            format!("must be a bool, not {}", type_name(other)),
        )),
    }
}

fn as_int(field: &str, v: &Value) -> Result<i64, DriverError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| DriverError::config(field, format!("must be a whole number, not {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| DriverError::config(field, format!("must be a number, not {s:?}"))),
        other => Err(DriverError::config(
            field,
            format!("must be a number, not {}", type_name(other)),
        )),
    }
}

fn as_list(field: &str, v: &Value) -> Result<Vec<String>, DriverError> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| as_string(&format!("{field}[{i}]"), item))
            .collect(),
        other => Err(DriverError::config(
            field,
            format!("must be a list of strings, not {}", type_name(other)),
        )),
    }
}

/// A map of strings: `{k = v}`, or the list of maps an HCL block (`labels { k = v }`) becomes.
fn as_map(field: &str, v: &Value) -> Result<BTreeMap<String, String>, DriverError> {
    let mut out = BTreeMap::new();
    for block in as_blocks(field, v)? {
        for (k, v) in block {
            out.insert(k.clone(), as_string(&format!("{field}.{k}"), v)?);
        }
    }
    Ok(out)
}

/// Blocks: one map, or a list of maps.
fn as_blocks<'a>(field: &str, v: &'a Value) -> Result<Vec<&'a Map<String, Value>>, DriverError> {
    match v {
        Value::Object(m) => Ok(vec![m]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => Ok(m),
                other => Err(DriverError::config(
                    format!("{field}[{i}]"),
                    format!("must be a block, not {}", type_name(other)),
                )),
            })
            .collect(),
        other => Err(DriverError::config(
            field,
            format!("must be a block, not {}", type_name(other)),
        )),
    }
}

/// The entries of a block that may appear once (`bind_options { … }`).
fn single_block<'a>(field: &str, v: &'a Value) -> Result<Vec<(&'a String, &'a Value)>, DriverError> {
    let blocks = as_blocks(field, v)?;
    if blocks.len() > 1 {
        return Err(DriverError::config(field, "may appear only once"));
    }
    Ok(blocks.into_iter().flat_map(|b| b.iter()).collect())
}

/// The driver state of a handle, for tests and tools (`docker inspect <container_id>`).
pub fn docker_state(handle: &TaskHandle) -> Option<DockerState> {
    serde_json::from_value(handle.driver_state.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).expect("test config is a map")
    }

    #[tokio::test]
    async fn an_engine_that_does_not_answer_makes_recovery_retryable_not_fatal() {
        let dir = tempfile::tempdir().expect("tmp");
        let driver = DockerDriver::new(DockerConfig {
            endpoint: Some(format!("unix://{}", dir.path().join("no-docker.sock").display())),
            ..Default::default()
        });
        let handle = TaskHandle {
            driver: "docker".into(),
            config: TaskConfig {
                id: "a/web/12345678".into(),
                ..Default::default()
            },
            driver_state: serde_json::to_value(DockerState {
                container_id: "abc".into(),
                image_id: "sha256:x".into(),
                image: "busybox".into(),
            })
            .expect("state"),
            started_at: 0,
        };
        let e = driver.recover_task(&handle).await.unwrap_err();
        assert!(matches!(e, DriverError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn image_is_required_and_unknown_keys_are_named() {
        let agent = DockerConfig::default();
        let e = TaskSpec::parse(&cfg(json!({"command": "x"})), &agent).unwrap_err();
        assert!(
            matches!(&e, DriverError::InvalidConfig { field, .. } if field == "image"),
            "{e}"
        );
        let e = TaskSpec::parse(&cfg(json!({"image": "a", "imagee": 1})), &agent).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid driver config: imagee: unknown key; did you mean \"image\"?"
        );
        let e = TaskSpec::parse(&cfg(json!({"image": "a", "auth": [{}]})), &agent).unwrap_err();
        assert!(e.to_string().contains("auth: not supported"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let agent = DockerConfig::default();
        for (config, field) in [
            (json!({"image": "a", "args": "x"}), "args"),
            (json!({"image": "a", "args": ["x", {}]}), "args[1]"),
            (json!({"image": "a", "tty": "yes"}), "tty"),
            (
                json!({"image": "a", "port_map": [{"http": "eighty"}]}),
                "port_map.http",
            ),
            (
                json!({"image": "a", "mount": [{"type": "bind", "target": "/a", "source": "x", "bogus": 1}]}),
                "mount[0].bogus",
            ),
            (
                json!({"image": "a", "mount": [{"type": "nfs", "target": "/a"}]}),
                "mount[0].type",
            ),
            (json!({"image": "a", "shm_size": true}), "shm_size"),
            (json!({"image": ["a"]}), "image"),
        ] {
            let e = TaskSpec::parse(&cfg(config.clone()), &agent).unwrap_err();
            assert!(
                matches!(&e, DriverError::InvalidConfig { field: f, .. } if f == field),
                "{config}: {e}"
            );
        }
    }

    #[test]
    fn hcl_shapes_are_accepted() {
        let agent = DockerConfig::default();
        let spec = TaskSpec::parse(
            &cfg(json!({
                "image": "https://redis:7",
                "port_map": [{"db": 6379}],
                "labels": [{"team": "x"}],
                "mount": [{"type": "tmpfs", "target": "/t", "tmpfs_options": [{"size": 1024}]}],
                "logging": [{"type": "json-file", "config": [{"max-size": "5m"}]}],
                "init": true,
            })),
            &agent,
        )
        .unwrap();
        assert_eq!(spec.image, "redis:7");
        assert_eq!(spec.port_map["db"], 6379);
        assert_eq!(spec.labels["team"], "x");
        assert_eq!(spec.mounts[0].tmpfs_size, Some(1024));
        assert_eq!(spec.logging.as_ref().unwrap().1["max-size"], "5m");
        assert!(spec.init);
    }

    #[test]
    fn host_paths_and_privileged_need_the_agent_to_allow_them() {
        let strict = DockerConfig::default();
        let e = TaskSpec::parse(&cfg(json!({"image": "a", "volumes": ["/etc:/x"]})), &strict).unwrap_err();
        assert!(e.to_string().contains("volumes are not enabled"), "{e}");
        let e = TaskSpec::parse(&cfg(json!({"image": "a", "privileged": true})), &strict).unwrap_err();
        assert!(e.to_string().contains("privileged"), "{e}");
        let open = DockerConfig {
            volumes_enabled: true,
            allow_privileged: true,
            ..Default::default()
        };
        TaskSpec::parse(
            &cfg(json!({"image": "a", "volumes": ["/etc:/x:ro"], "privileged": true})),
            &open,
        )
        .unwrap();

        let driver = DockerDriver::new(strict);
        let task = TaskConfig {
            alloc_dir: "/data/alloc/a1".into(),
            task_dir: "/data/alloc/a1/web".into(),
            ..Default::default()
        };
        assert_eq!(
            driver.host_path("v", "data", &task).unwrap(),
            PathBuf::from("/data/alloc/a1/web/data")
        );
        assert_eq!(
            driver.host_path("v", "../alloc/x", &task).unwrap(),
            PathBuf::from("/data/alloc/a1/alloc/x")
        );
        assert!(driver.host_path("v", "../../../etc", &task).is_err());
    }

    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(split_image("redis"), ("redis".into(), Some("latest".into())));
        assert_eq!(split_image("redis:7"), ("redis".into(), Some("7".into())));
        assert_eq!(
            split_image("localhost:5000/a/b:1"),
            ("localhost:5000/a/b".into(), Some("1".into()))
        );
        assert_eq!(
            split_image("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), Some("latest".into()))
        );
        assert_eq!(split_image("a@sha256:00"), ("a".into(), None));
    }

    #[test]
    fn timestamps_parse_and_order() {
        let a = Stamp::parse("1970-01-01T00:00:01.5Z").unwrap();
        assert_eq!(a, Stamp(1, 500_000_000));
        let b = Stamp::parse("2026-11-26T00:55:57.533157761Z").unwrap();
        assert_eq!(b, Stamp(1_795_654_557, 533_157_761));
        assert_eq!(Stamp::parse("2026-11-26T01:55:57.533157761+01:00"), Some(b));
        assert!(a < b);
        let (stamp, body) = split_stamp(b"2026-11-26T00:55:57.533157761Z hello world\n");
        assert_eq!((stamp, body), (Some(b), &b"hello world\n"[..]));
        assert_eq!(split_stamp(b"no stamp here\n"), (None, &b"no stamp here\n"[..]));
    }

    #[test]
    fn cursor_round_trips_for_its_container_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s").join(LOG_CURSOR_FILE);
        write_cursor(&path, "abc", Stamp(5, 7));
        assert_eq!(read_cursor(&path, "abc"), Some(Stamp(5, 7)));
        assert_eq!(read_cursor(&path, "other"), None);
    }
}
