//! The client half of `drover agent`: its configuration (`client {}` and `plugin "<driver>" {}`
//! blocks), the drivers it offers, and starting it next to the server.
//!
//! ```text
//!  agent config ──▶ ClientSettings ──▶ drivers (raw_exec, exec, docker, java, qemu[, mock])
//!                                  └─▶ drover_client::Client::start(servers = this agent's RPC)
//! ```
//!
//! `-dev` turns the client on with raw_exec and the mock driver enabled and the loopback
//! interface as the node's network, so every port the scheduler hands out is on 127.0.0.1.
//! Executors (the per-task supervisors that keep tasks alive across agent restarts) are this
//! binary run as `drover executor <spec>`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_drivers::Driver;
use serde_json::Value;

/// `client {}` and driver plugin settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientSettings {
    /// Run a client.
    pub enabled: bool,
    /// `client.node_class`.
    pub node_class: String,
    /// `client.node_pool`.
    pub node_pool: String,
    /// `client.meta`.
    pub meta: BTreeMap<String, String>,
    /// `client.network_interface`.
    pub network_interface: Option<String>,
    /// `client.state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `client.alloc_dir`.
    pub alloc_dir: Option<PathBuf>,
    /// `client.max_kill_timeout`.
    pub max_kill_timeout: Option<Duration>,
    /// `client.gc_max_allocs`.
    pub gc_max_allocs: Option<usize>,
    /// `plugin "raw_exec" { config { enabled = true } }`.
    pub raw_exec_enabled: bool,
    /// `plugin "docker" { config { volumes { enabled = true } } }`.
    pub docker_volumes: bool,
    /// `plugin "docker" { config { allow_privileged = true } }`.
    pub docker_privileged: bool,
    /// The mock driver (dev mode, tests).
    pub mock_driver: bool,
}

fn str_of(v: &Value, path: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{path}: expected a string, got {v}")),
    }
}

fn bool_of(v: &Value, path: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "1" => Ok(true),
        Value::String(s) if s == "false" || s == "0" => Ok(false),
        _ => Err(format!("{path}: expected true or false, got {v}")),
    }
}

fn objects(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    match v {
        Value::Object(o) => vec![o],
        Value::Array(a) => a.iter().filter_map(|x| x.as_object()).collect(),
        _ => Vec::new(),
    }
}

/// Client keys Nomad has that Drover accepts and ignores.
const IGNORED_CLIENT_KEYS: &[&str] = &[
    "servers",
    "server_join",
    "options",
    "reserved",
    "host_volume",
    "host_network",
    "cni_path",
    "cni_config_dir",
    "bridge_network_name",
    "bridge_network_subnet",
    "chroot_env",
    "drain_on_shutdown",
    "cpu_total_compute",
    "memory_total_mb",
    "disk_total_mb",
    "gc_interval",
    "gc_disk_usage_threshold",
    "gc_inode_usage_threshold",
    "gc_parallel_destroys",
    "no_host_uuid",
    "artifact",
    "template",
    "min_dynamic_port",
    "max_dynamic_port",
];

impl ClientSettings {
    /// Merges a `client {}` block.
    pub fn merge_client_block(
        &mut self,
        b: &serde_json::Map<String, Value>,
        ignored: &mut Vec<String>,
    ) -> Result<(), String> {
        for (k, v) in b {
            let path = format!("client.{k}");
            match k.as_str() {
                "enabled" => self.enabled = bool_of(v, &path)?,
                "node_class" => self.node_class = str_of(v, &path)?,
                "node_pool" => self.node_pool = str_of(v, &path)?,
                "network_interface" => self.network_interface = Some(str_of(v, &path)?),
                "state_dir" => self.state_dir = Some(PathBuf::from(str_of(v, &path)?)),
                "alloc_dir" => self.alloc_dir = Some(PathBuf::from(str_of(v, &path)?)),
                "max_kill_timeout" => {
                    let s = str_of(v, &path)?;
                    let n = drover_types::time::parse_duration(&s).map_err(|e| format!("{path}: {e}"))?;
                    self.max_kill_timeout = Some(Duration::from_nanos(n.max(0) as u64));
                }
                "gc_max_allocs" => {
                    let n = v
                        .as_u64()
                        .ok_or_else(|| format!("{path}: expected a number, got {v}"))?;
                    self.gc_max_allocs = Some(n as usize);
                }
                "meta" => {
                    for m in objects(v) {
                        for (mk, mv) in m {
                            self.meta.insert(mk.clone(), str_of(mv, &format!("{path}.{mk}"))?);
                        }
                    }
                }
                k if IGNORED_CLIENT_KEYS.contains(&k) => ignored.push(path),
                _ => {
                    return Err(format!(
                        "unknown key {path:?} (known: enabled, node_class, node_pool, network_interface, state_dir, alloc_dir, max_kill_timeout, gc_max_allocs, meta)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Merges a `plugin "<name>" { config { … } }` block.
    pub fn merge_plugin_block(
        &mut self,
        b: &serde_json::Map<String, Value>,
        ignored: &mut Vec<String>,
    ) -> Result<(), String> {
        for (name, body) in b {
            for o in objects(body) {
                for (k, v) in o {
                    let path = format!("plugin.{name}.{k}");
                    if k != "config" {
                        ignored.push(path);
                        continue;
                    }
                    for cfg in objects(v) {
                        for (ck, cv) in cfg {
                            let path = format!("plugin.{name}.config.{ck}");
                            match (name.as_str(), ck.as_str()) {
                                ("raw_exec", "enabled") => self.raw_exec_enabled = bool_of(cv, &path)?,
                                ("docker", "allow_privileged") => {
                                    self.docker_privileged = bool_of(cv, &path)?
                                }
                                ("docker", "volumes") => {
                                    for vol in objects(cv) {
                                        if let Some(e) = vol.get("enabled") {
                                            self.docker_volumes = bool_of(e, &format!("{path}.enabled"))?;
                                        }
                                    }
                                }
                                _ => ignored.push(path),
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The drivers this client offers.
    pub fn drivers(&self) -> Vec<Arc<dyn Driver>> {
        use drover_drivers::{docker, exec, java, mock, qemu, rawexec};
        let executor = executor_command();
        let mut v: Vec<Arc<dyn Driver>> = vec![
            Arc::new(rawexec::RawExecDriver::new(rawexec::RawExecConfig {
                enabled: self.raw_exec_enabled,
                executor: executor.clone(),
            })),
            Arc::new(exec::ExecDriver::new(exec::ExecConfig::new(executor.clone()))),
            Arc::new(java::JavaDriver::new(exec::ExecConfig::new(executor.clone()))),
            Arc::new(qemu::QemuDriver::new(executor.clone())),
            Arc::new(docker::DockerDriver::new(docker::DockerConfig {
                volumes_enabled: self.docker_volumes,
                allow_privileged: self.docker_privileged,
                ..Default::default()
            })),
        ];
        if self.mock_driver {
            v.push(Arc::new(mock::MockDriver::new()));
        }
        v.sort_by_key(|d| d.name());
        v
    }
}

/// How executors are started: this very binary, `drover executor <spec>`.
pub fn executor_command() -> drover_drivers::executor::ExecutorCommand {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("drover"));
    drover_drivers::executor::ExecutorCommand::new(exe, &["executor"])
}

/// Starts the client of an agent whose RPC listens on `rpc_addr`.
pub async fn start(
    s: &ClientSettings,
    agent: &crate::agent::AgentConfig,
    data_root: &std::path::Path,
    rpc_addr: &str,
    http_addr: &str,
) -> Result<drover_client::Client, String> {
    let mut c = drover_client::ClientConfig::new(data_root, vec![rpc_addr.to_string()]);
    if let Some(d) = &s.state_dir {
        c.state_dir = d.clone();
    }
    if let Some(d) = &s.alloc_dir {
        c.alloc_dir = d.clone();
    }
    c.node_name = agent.name.clone();
    c.datacenter = agent.datacenter.clone();
    c.region = agent.region.clone();
    c.node_class = s.node_class.clone();
    if !s.node_pool.is_empty() {
        c.node_pool = s.node_pool.clone();
    }
    c.meta = s.meta.clone();
    c.network_interface = s.network_interface.clone();
    c.http_addr = http_addr.to_string();
    if let Some(t) = s.max_kill_timeout {
        c.max_kill_timeout = t;
    }
    if let Some(n) = s.gc_max_allocs {
        c.gc_max_allocs = n;
    }
    // Without a data dir (plain -dev) nothing survives the agent: tasks stop with it.
    c.restore = agent.data_dir.is_some();
    c.destroy_on_shutdown = agent.data_dir.is_none();
    c.drivers = s.drivers();
    drover_client::Client::start(c).await.map_err(|e| e.to_string())
}
