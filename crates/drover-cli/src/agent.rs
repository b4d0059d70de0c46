//! `drover agent`: runs a server agent — Raft log, state store, leader duties, workers — with
//! the `/v1` HTTP API and the client RPC endpoint.
//!
//! ```text
//!  flags + -config files ──▶ AgentConfig ──▶ RaftNode::open(<data_dir>/server | temp dir)
//!                                              └▶ RaftLog (group commit) ──▶ Server::start
//!                             HTTP  bind:4646 ◀── drover_http::router(server)
//!                             RPC   bind:4647 ◀── drover_rpc::serve(server)   (clients, drover-nodesim)
//!  SIGINT / SIGTERM ──▶ stop listeners ──▶ Server::shutdown ──▶ Raft shutdown
//! ```
//!
//! `-dev` keeps everything in a temporary directory (removed on exit) and binds 127.0.0.1.
//! `-data-dir DIR` keeps the Raft log and snapshots in `DIR/server`, so a restart finds every
//! job, allocation, evaluation and node again.
//!
//! Limitations: the client half of the agent (running tasks) is not built yet, so `-client`
//! is refused and a dev agent has no nodes of its own: add simulated ones with
//! `drover-nodesim`. One server per cluster (`bootstrap_expect` > 1 is refused).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::Value;

/// `drover agent` flags (Nomad's names).
#[derive(Debug, Args, Default, Clone)]
pub struct AgentArgs {
    /// Development mode: server in one process, state in a temporary directory, 127.0.0.1.
    #[arg(long)]
    pub dev: bool,
    /// Run a server.
    #[arg(long)]
    pub server: bool,
    /// Run a client (together with a server in this process; client-only agents are not
    /// supported yet).
    #[arg(long)]
    pub client: bool,
    /// Directory for the Raft log and snapshots.
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Configuration files (HCL or JSON); repeatable, later ones override earlier ones.
    #[arg(long = "config")]
    pub config: Vec<PathBuf>,
    /// Address to bind every listener to.
    #[arg(long)]
    pub bind: Option<String>,
    /// Agent name.
    #[arg(long = "node")]
    pub node: Option<String>,
    /// Region.
    #[arg(long)]
    pub region: Option<String>,
    /// Datacenter.
    #[arg(long = "dc")]
    pub dc: Option<String>,
    /// Log level (trace, debug, info, warn, error).
    #[arg(long = "log-level")]
    pub log_level: Option<String>,
    /// Servers to expect before bootstrapping (only 1 is supported).
    #[arg(long = "bootstrap-expect")]
    pub bootstrap_expect: Option<u32>,
}

/// The merged agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Agent name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Datacenter.
    pub datacenter: String,
    /// Bind address.
    pub bind_addr: String,
    /// HTTP port.
    pub http_port: u16,
    /// RPC port.
    pub rpc_port: u16,
    /// Serf port (reported only).
    pub serf_port: u16,
    /// Data directory (None: a temporary one, dev mode).
    pub data_dir: Option<PathBuf>,
    /// Dev mode.
    pub dev: bool,
    /// Scheduler workers.
    pub num_schedulers: Option<usize>,
    /// Log level.
    pub log_level: String,
    /// Heartbeat grace (server block), if set.
    pub heartbeat_grace: Option<std::time::Duration>,
    /// Minimum heartbeat TTL (server block), if set.
    pub min_heartbeat_ttl: Option<std::time::Duration>,
    /// Config-file keys Nomad knows that Drover ignores (reported at startup).
    pub ignored: Vec<String>,
    /// The configuration files read.
    pub loaded: Vec<String>,
    /// The `client {}` block and driver plugin settings.
    pub client: crate::agent_client::ClientSettings,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            name: hostname(),
            region: "global".into(),
            datacenter: "dc1".into(),
            bind_addr: "0.0.0.0".into(),
            http_port: 4646,
            rpc_port: 4647,
            serf_port: 4648,
            data_dir: None,
            dev: false,
            num_schedulers: None,
            log_level: "INFO".into(),
            heartbeat_grace: None,
            min_heartbeat_ttl: None,
            ignored: Vec::new(),
            loaded: Vec::new(),
            client: Default::default(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "drover".into())
}

/// Top-level keys Nomad's agent config has that Drover accepts and ignores.
const IGNORED_KEYS: &[&str] = &[
    "acl",
    "advertise",
    "audit",
    "autopilot",
    "consul",
    "disable_update_check",
    "enable_debug",
    "enable_syslog",
    "leave_on_interrupt",
    "leave_on_terminate",
    "limits",
    "log_file",
    "log_json",
    "plugin_dir",
    "reporting",
    "sentinel",
    "telemetry",
    "tls",
    "ui",
    "vault",
    "log_rotate_bytes",
    "log_rotate_duration",
    "log_rotate_max_files",
    "syslog_facility",
];

fn as_str(v: &Value, path: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{path}: expected a string, got {v}")),
    }
}

fn as_port(v: &Value, path: &str) -> Result<u16, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{path}: expected a port number (1-65535), got {v}"))
}

fn as_duration(v: &Value, path: &str) -> Result<std::time::Duration, String> {
    let s = as_str(v, path)?;
    let n = drover_types::time::parse_duration(&s).map_err(|e| format!("{path}: {e}"))?;
    Ok(std::time::Duration::from_nanos(n.max(0) as u64))
}

/// A block may decode as an object or (HCL) a list of objects.
fn blocks(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    match v {
        Value::Object(o) => vec![o],
        Value::Array(a) => a.iter().filter_map(|x| x.as_object()).collect(),
        _ => Vec::new(),
    }
}

impl AgentConfig {
    /// Merges one configuration file (HCL or JSON) into `self`.
    pub fn merge_file(&mut self, path: &std::path::Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value: Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            hcl::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        self.merge_value(&value)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.loaded.push(path.display().to_string());
        Ok(())
    }

    /// Merges decoded configuration.
    pub fn merge_value(&mut self, v: &Value) -> Result<(), String> {
        let Some(obj) = v.as_object() else {
            return Err("the configuration must be a set of keys and blocks".into());
        };
        for (k, v) in obj {
            match k.as_str() {
                "name" => self.name = as_str(v, k)?,
                "region" => self.region = as_str(v, k)?,
                "datacenter" => self.datacenter = as_str(v, k)?,
                "bind_addr" => self.bind_addr = as_str(v, k)?,
                "data_dir" => self.data_dir = Some(PathBuf::from(as_str(v, k)?)),
                "log_level" => self.log_level = as_str(v, k)?.to_uppercase(),
                "ports" => {
                    for b in blocks(v) {
                        for (pk, pv) in b {
                            let path = format!("ports.{pk}");
                            match pk.as_str() {
                                "http" => self.http_port = as_port(pv, &path)?,
                                "rpc" => self.rpc_port = as_port(pv, &path)?,
                                "serf" => self.serf_port = as_port(pv, &path)?,
                                _ => return Err(format!("unknown key {path:?} (known: http, rpc, serf)")),
                            }
                        }
                    }
                }
                "server" => {
                    for b in blocks(v) {
                        for (sk, sv) in b {
                            let path = format!("server.{sk}");
                            match sk.as_str() {
                                "enabled" => {
                                    if sv != &Value::Bool(true) && sv != &Value::String("true".into()) {
                                        return Err(format!(
                                            "{path}: only server agents are supported; set it to true"
                                        ));
                                    }
                                }
                                "bootstrap_expect" => {
                                    if sv.as_u64().is_some_and(|n| n > 1) {
                                        return Err(format!(
                                            "{path}: only single-server clusters are supported (got {sv})"
                                        ));
                                    }
                                }
                                "num_schedulers" => {
                                    let n = sv
                                        .as_u64()
                                        .ok_or_else(|| format!("{path}: expected a number, got {sv}"))?;
                                    self.num_schedulers = Some(n as usize);
                                }
                                "heartbeat_grace" => self.heartbeat_grace = Some(as_duration(sv, &path)?),
                                "min_heartbeat_ttl" => self.min_heartbeat_ttl = Some(as_duration(sv, &path)?),
                                "data_dir" => self.data_dir = Some(PathBuf::from(as_str(sv, &path)?)),
                                "enabled_schedulers"
                                | "raft_protocol"
                                | "encrypt"
                                | "server_join"
                                | "retry_join"
                                | "default_scheduler_config"
                                | "job_gc_threshold"
                                | "eval_gc_threshold"
                                | "node_gc_threshold"
                                | "deployment_gc_threshold"
                                | "raft_multiplier" => self.ignored.push(path),
                                _ => {
                                    return Err(format!(
                                        "unknown key {path:?} (known: enabled, bootstrap_expect, num_schedulers, heartbeat_grace, min_heartbeat_ttl, data_dir)"
                                    ));
                                }
                            }
                        }
                    }
                }
                "client" => {
                    for b in blocks(v) {
                        self.client.merge_client_block(b, &mut self.ignored)?;
                    }
                }
                "plugin" => {
                    for b in blocks(v) {
                        self.client.merge_plugin_block(b, &mut self.ignored)?;
                    }
                }
                k if IGNORED_KEYS.contains(&k) => self.ignored.push(k.to_string()),
                other => {
                    return Err(format!(
                        "unknown key {other:?} (known: name, region, datacenter, bind_addr, data_dir, log_level, ports, server, client, plugin)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Builds the configuration from flags and files (files first, flags win).
    pub fn from_args(a: &AgentArgs) -> Result<AgentConfig, String> {
        if !a.dev && !a.server && !a.client && a.config.is_empty() {
            return Err("Must specify either server, client or dev mode for the agent.".into());
        }
        if a.bootstrap_expect.is_some_and(|n| n > 1) {
            return Err("-bootstrap-expect: only single-server clusters are supported".into());
        }
        let mut c = AgentConfig::default();
        if a.dev {
            c.dev = true;
            c.bind_addr = "127.0.0.1".into();
            c.log_level = "DEBUG".into();
            c.client.enabled = true;
            c.client.raw_exec_enabled = true;
            c.client.mock_driver = true;
            c.client.network_interface = Some("lo".into());
        }
        for f in &a.config {
            c.merge_file(f)?;
        }
        if a.client {
            c.client.enabled = true;
        }
        if a.client && !a.server && !a.dev {
            return Err("client-only agents are not supported yet: run the client together with a server (-dev, or -server -client)".into());
        }
        let set = |dst: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *dst = v.clone();
            }
        };
        set(&mut c.bind_addr, &a.bind);
        set(&mut c.name, &a.node);
        set(&mut c.region, &a.region);
        set(&mut c.datacenter, &a.dc);
        if let Some(l) = &a.log_level {
            c.log_level = l.to_uppercase();
        }
        if let Some(d) = &a.data_dir {
            c.data_dir = Some(d.clone());
        }
        if !c.dev && c.data_dir.is_none() {
            return Err("Must specify data directory (-data-dir or data_dir in a config file)".into());
        }
        if c.bind_addr.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("bind_addr: {:?} is not an IP address", c.bind_addr));
        }
        Ok(c)
    }
}

fn advertise_ip(bind: &str) -> String {
    if bind == "0.0.0.0" {
        "127.0.0.1".into()
    } else {
        bind.to_string()
    }
}

/// Runs the agent until SIGINT/SIGTERM. Returns the exit code.
pub fn run(args: AgentArgs) -> u8 {
    let config = match AgentConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("==> {e}");
            return 1;
        }
    };
    init_logging(&config.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("==> Error starting agent: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        match start(config).await {
            Ok(agent) => {
                let signal = wait_for_signal().await;
                println!("==> Caught signal: {signal}");
                println!("==> Gracefully shutting down agent...");
                agent.stop().await;
                0
            }
            Err(e) => {
                eprintln!("==> Error starting agent: {e}");
                1
            }
        }
    })
}

fn init_logging(level: &str) {
    let filter = std::env::var("DROVER_LOG").unwrap_or_else(|_| {
        let l = level.to_lowercase();
        // Our crates at the chosen level; dependencies (openraft, h2, ...) quieter.
        format!("warn,drover_server={l},drover_raft={l},drover_http={l},drover_rpc={l},drover_cli={l},drover_client={l},drover_drivers={l},openraft=warn")
    });
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn wait_for_signal() -> &'static str {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = ctrl_c.await;
            return "interrupt";
        }
    };
    tokio::select! {
        _ = ctrl_c => "interrupt",
        _ = term.recv() => "terminated",
    }
}

/// A running agent.
#[derive(Debug)]
pub struct RunningAgent {
    /// The server.
    pub server: drover_server::Server,
    /// The Raft node.
    pub raft: drover_raft::RaftNode,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where RPC listens.
    pub rpc_addr: SocketAddr,
    /// The client, when this agent runs one.
    pub client: Option<drover_client::Client>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    /// Stops listeners, the server and Raft.
    pub async fn stop(self) {
        if let Some(c) = &self.client {
            c.shutdown().await;
        }
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
        self.server.shutdown();
        if let Err(e) = self.raft.shutdown().await {
            eprintln!("    raft shutdown: {e}");
        }
    }
}

async fn bind(addr: &str, port: u16, what: &str) -> Result<tokio::net::TcpListener, String> {
    let a = format!("{addr}:{port}");
    tokio::net::TcpListener::bind(&a)
        .await
        .map_err(|e| format!("failed to bind the {what} listener on {a}: {e}"))
}

/// Starts an agent from a configuration and prints Nomad's startup banner.
pub async fn start(config: AgentConfig) -> Result<RunningAgent, String> {
    let http_listener = bind(&config.bind_addr, config.http_port, "HTTP").await?;
    let rpc_listener = bind(&config.bind_addr, config.rpc_port, "RPC").await?;
    let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;
    let rpc_addr = rpc_listener.local_addr().map_err(|e| e.to_string())?;
    let advertise_rpc = format!("{}:{}", advertise_ip(&config.bind_addr), rpc_addr.port());

    let mut raft_config = match &config.data_dir {
        Some(dir) => drover_raft::RaftConfig::with_data_dir(dir.join("server")),
        None => drover_raft::RaftConfig::dev(),
    };
    raft_config.addr = advertise_rpc.clone();
    let raft = drover_raft::RaftNode::open(raft_config)
        .await
        .map_err(|e| e.to_string())?;
    raft.wait_for_leader(std::time::Duration::from_secs(10))
        .await
        .map_err(|e| format!("no leader elected: {e}"))?;
    let log = drover_server::log::RaftLog::new(raft.clone());

    let mut sc = drover_server::ServerConfig {
        name: config.name.clone(),
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        rpc_addr: advertise_rpc.clone(),
        ..Default::default()
    };
    if let Some(n) = config.num_schedulers {
        sc.num_schedulers = n.max(1);
    }
    if let Some(g) = config.heartbeat_grace {
        sc.heartbeat.grace = g;
    }
    if let Some(t) = config.min_heartbeat_ttl {
        sc.heartbeat.min_ttl = t;
    }
    let server = drover_server::Server::start(sc, log);

    let client = if config.client.enabled {
        let root = match &config.data_dir {
            Some(d) => d.clone(),
            None => raft.data_dir().to_path_buf(),
        };
        let http_adv = format!("{}:{}", advertise_ip(&config.bind_addr), http_addr.port());
        let c = crate::agent_client::start(&config.client, &config, &root, &advertise_rpc, &http_adv).await?;
        Some(c)
    } else {
        None
    };

    let mut info = drover_http::AgentInfo::for_server(&server);
    if let Some(c) = &client {
        info.client = Some(drover_http::ClientInfo {
            node_id: c.node_id(),
            servers: vec![advertise_rpc.clone()],
        });
    }
    info.bind_addr = config.bind_addr.clone();
    info.http_port = http_addr.port();
    info.rpc_port = rpc_addr.port();
    info.serf_port = config.serf_port;
    info.dev_mode = config.dev;
    info.data_dir = config
        .data_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let router = drover_http::router_with_client(server.clone(), info, client.clone());

    let (stop, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut rx = stop.subscribe();
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = drover_http::serve(http_listener, router, shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    let mut rx = stop.subscribe();
    let handler: Arc<dyn drover_rpc::NodeHandler> = Arc::new(server.clone());
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = drover_rpc::serve(rpc_listener, handler, shutdown).await {
            tracing::error!(error = %e, "RPC server failed");
        }
    }));

    print_banner(&config, http_addr, rpc_addr, &raft, client.as_ref());
    Ok(RunningAgent {
        server,
        raft,
        http_addr,
        rpc_addr,
        client,
        stop,
        tasks,
    })
}

fn print_banner(
    c: &AgentConfig,
    http: SocketAddr,
    rpc: SocketAddr,
    raft: &drover_raft::RaftNode,
    client: Option<&drover_client::Client>,
) {
    let adv = advertise_ip(&c.bind_addr);
    if c.loaded.is_empty() {
        println!("==> No configuration files loaded");
    } else {
        println!("==> Loaded configuration from {}", c.loaded.join(", "));
    }
    println!("==> Starting Drover agent...");
    println!("==> Drover agent configuration:\n");
    let mut rows: BTreeMap<&str, String> = BTreeMap::new();
    rows.insert(
        "Advertise Addrs",
        format!("HTTP: {adv}:{}; RPC: {adv}:{}", http.port(), rpc.port()),
    );
    rows.insert("Bind Addrs", format!("HTTP: [{http}]; RPC: {rpc}"));
    rows.insert("Client", client.is_some().to_string());
    rows.insert("Log Level", c.log_level.clone());
    rows.insert("Region", format!("{} (DC: {})", c.region, c.datacenter));
    rows.insert("Server", "true (Bootstrap: true)".into());
    rows.insert("Version", env!("CARGO_PKG_VERSION").into());
    rows.insert(
        "Data Dir",
        match &c.data_dir {
            Some(d) => d.display().to_string(),
            None => format!("{} (temporary, removed on exit)", raft.data_dir().display()),
        },
    );
    for (k, v) in rows {
        println!("{k:>22}: {v}");
    }
    println!();
    for k in &c.ignored {
        println!("==> Note: configuration key {k:?} is not supported by Drover and is ignored");
    }
    if let Some(cl) = client {
        let node = cl.node();
        let mut drivers: Vec<String> = node
            .drivers
            .iter()
            .map(|(name, d)| match (d.detected, d.healthy) {
                (true, true) => name.clone(),
                (true, false) => format!("{name} (unhealthy: {})", d.health_description),
                _ => format!("{name} (not detected: {})", d.health_description),
            })
            .collect();
        drivers.sort();
        println!(
            "==> Client node {} ({}) drivers: {}",
            node.id,
            node.name,
            drivers.join(", ")
        );
    }
    if c.dev {
        println!(
            "==> Dev mode: server and client in one process; raw_exec is enabled. Try: drover job init && drover job run example.nomad.hcl"
        );
    }
    println!("==> Drover agent started! Log data will stream in below:\n");
}
