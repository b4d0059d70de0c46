//! The client agent: turns a host into a Drover node and runs what the servers place on it.
//!
//! ```text
//!            ┌────────── fingerprint (host + drivers) ──────────┐
//!            ▼                                                   │
//!  register ──▶ heartbeat every TTL/2 ─────────────────────────▶ servers (drover.Node RPC)
//!  watch allocations: GetClientAllocs (blocking) → GetAllocs(changed)
//!       │ added / updated / removed
//!       ▼
//!  AllocRunner per allocation ──▶ TaskRunner per task ──▶ Driver (raw_exec, exec, docker, …)
//!       │ client status + task states
//!       ▼
//!  update batcher: every 200 ms when a status changed, else every second → UpdateAlloc
//! ```
//!
//! # Layout
//! - [`fingerprint`]: host attributes and resources in Nomad's names.
//! - [`allocrunner`], [`taskrunner`]: the runners; [`restarts`]: the restart policy, pure.
//! - [`taskenv`]: `NOMAD_*` variables and `${…}` interpolation, pure.
//! - [`state`]: the client database (redb) behind re-attachment after an agent restart.
//!
//! # Guarantees
//! - Tasks outlive the agent: stopping the agent (or `kill -9`) leaves them running; a new
//!   agent process on the same state directory re-attaches to them instead of starting them
//!   again, and reports tasks that exited meanwhile with their exit codes.
//! - Status updates are batched per node and retried until acknowledged; the latest state of an
//!   allocation wins.
//!
//! # Limits
//! No services/checks, templates, artifacts, volumes, devices, network namespaces, or
//! migration of ephemeral disks yet. The node ID is kept in the state database.

pub mod allocrunner;
pub mod fingerprint;
pub mod restarts;
pub mod state;
pub mod stats;
pub mod taskenv;
pub mod taskrunner;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_drivers::{Driver, Health};
use drover_rpc::NodeClient;
use drover_types::node::{DriverInfo, node_status};
use drover_types::time::Timestamp;
use drover_types::{Allocation, Node};
use tokio::sync::{Notify, watch};

use crate::allocrunner::{AllocRunner, Reporter};
use crate::state::StateDb;
use crate::taskrunner::TaskContext;

/// What failed in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client database.
    #[error("client state: {0}")]
    State(String),
    /// Bad configuration.
    #[error("client config: {0}")]
    Config(String),
    /// No such allocation on this node.
    #[error("unknown allocation {0}")]
    UnknownAlloc(String),
    /// A request about a task could not be carried out.
    #[error("{0}")]
    Task(String),
    /// The servers.
    #[error("rpc: {0}")]
    Rpc(#[from] drover_rpc::RpcError),
}

/// How the client runs.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server RPC addresses (`127.0.0.1:4647`).
    pub servers: Vec<String>,
    /// `<data_dir>/client`: the database and the drivers' per-task files.
    pub state_dir: PathBuf,
    /// `<data_dir>/alloc`: allocation directories.
    pub alloc_dir: PathBuf,
    /// Node name (hostname by default).
    pub node_name: String,
    /// Datacenter.
    pub datacenter: String,
    /// Region.
    pub region: String,
    /// Node class.
    pub node_class: String,
    /// Node pool.
    pub node_pool: String,
    /// `client.meta`.
    pub meta: BTreeMap<String, String>,
    /// Network interface (None: the default route's).
    pub network_interface: Option<String>,
    /// The agent's HTTP address as others reach it (`127.0.0.1:4646`).
    pub http_addr: String,
    /// Dynamic port range.
    pub min_dynamic_port: i64,
    /// Dynamic port range.
    pub max_dynamic_port: i64,
    /// Cap on task kill timeouts.
    pub max_kill_timeout: Duration,
    /// Terminal allocations kept before the oldest are collected.
    pub gc_max_allocs: usize,
    /// Re-attach to tasks recorded in the state directory at start.
    pub restore: bool,
    /// Stop every task when the client shuts down (dev mode without a data dir).
    pub destroy_on_shutdown: bool,
    /// The drivers.
    pub drivers: Vec<Arc<dyn Driver>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("servers", &self.servers)
            .field("state_dir", &self.state_dir)
            .field("alloc_dir", &self.alloc_dir)
            .field("node_name", &self.node_name)
            .field(
                "drivers",
                &self.drivers.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ClientConfig {
    /// Defaults for a client under `data_dir` talking to `servers`.
    pub fn new(data_dir: &std::path::Path, servers: Vec<String>) -> Self {
        ClientConfig {
            servers,
            state_dir: data_dir.join("client"),
            alloc_dir: data_dir.join("alloc"),
            node_name: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "drover-client".into()),
            datacenter: "dc1".into(),
            region: "global".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            meta: BTreeMap::new(),
            network_interface: None,
            http_addr: String::new(),
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            max_kill_timeout: Duration::from_secs(30),
            gc_max_allocs: 50,
            restore: true,
            destroy_on_shutdown: false,
            drivers: Vec::new(),
        }
    }
}

struct Inner {
    config: ClientConfig,
    rpc: NodeClient,
    db: StateDb,
    node: Arc<Mutex<Node>>,
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    runners: Mutex<HashMap<String, Arc<AllocRunner>>>,
    /// Latest unsent client state per allocation.
    pending: Mutex<BTreeMap<String, Allocation>>,
    /// Last client status acknowledged by the servers per allocation.
    acked: Mutex<HashMap<String, String>>,
    urgent: Notify,
    /// Allocations collected here while the servers still list them: ID → AllocModifyIndex
    /// at collection (not pulled again unless the servers change them).
    collected: Mutex<HashMap<String, u64>>,
    /// Rings when an allocation finished (its runner's tasks are all dead).
    gc_trigger: Notify,
    registered: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A running client agent. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("node_id", &self.node_id())
            .finish()
    }
}

fn now() -> i64 {
    drover_drivers::now_nanos()
}

impl Client {
    /// Fingerprints the host, restores allocations from the state directory, and starts
    /// registering, heartbeating, watching allocations and reporting their status.
    pub async fn start(config: ClientConfig) -> Result<Client, ClientError> {
        if config.servers.is_empty() {
            return Err(ClientError::Config(
                "no servers to talk to (client.servers is empty)".into(),
            ));
        }
        for dir in [&config.state_dir, &config.alloc_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ClientError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = StateDb::open(&config.state_dir)?;
        let node_id = match db.meta("node_id")? {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                db.set_meta("node_id", &id)?;
                id
            }
        };
        let secret_id = match db.meta("secret_id")? {
            Some(s) => s,
            None => {
                let s = uuid::Uuid::new_v4().to_string();
                db.set_meta("secret_id", &s)?;
                s
            }
        };
        let rpc = NodeClient::connect_lazy(&config.servers[0])?;
        let node = build_node(&config, &node_id, &secret_id).await;
        let drivers = config
            .drivers
            .iter()
            .map(|d| (d.name().to_string(), d.clone()))
            .collect();
        let (registered, _) = watch::channel(false);
        let (stop, _) = watch::channel(false);
        let client = Client {
            inner: Arc::new(Inner {
                rpc,
                db,
                node: Arc::new(Mutex::new(node)),
                drivers,
                runners: Mutex::new(HashMap::new()),
                pending: Mutex::new(BTreeMap::new()),
                acked: Mutex::new(HashMap::new()),
                urgent: Notify::new(),
                gc_trigger: Notify::new(),
                collected: Mutex::new(HashMap::new()),
                registered,
                stop,
                tasks: Mutex::new(Vec::new()),
                config,
            }),
        };
        if client.inner.config.restore {
            client.restore()?;
        }
        let c = client.clone();
        client.spawn(async move { c.register_and_heartbeat().await });
        let c = client.clone();
        client.spawn(async move { c.watch_allocs().await });
        let c = client.clone();
        client.spawn(async move { c.sync_updates().await });
        let c = client.clone();
        client.spawn(async move { c.refingerprint().await });
        let c = client.clone();
        client.spawn(async move { c.gc_loop().await });
        Ok(client)
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    /// This node's ID.
    pub fn node_id(&self) -> String {
        self.node().id
    }

    /// This node as last registered.
    pub fn node(&self) -> Node {
        self.inner.node.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Waits until the servers accepted the node's registration.
    pub async fn wait_registered(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.registered.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r)).await.is_ok()
    }

    fn stopped(&self) -> bool {
        *self.inner.stop.borrow()
    }

    async fn nap(&self, d: Duration) -> bool {
        let mut rx = self.inner.stop.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopped(),
            _ = wait_flag(&mut rx) => false,
        }
    }

    /// The runner of an allocation on this node.
    pub fn runner(&self, alloc_id: &str) -> Option<Arc<AllocRunner>> {
        self.inner
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alloc_id)
            .cloned()
    }

    /// IDs of the allocations this client runs (or ran and has not collected).
    pub fn alloc_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The directory of an allocation (`<alloc_dir>/<id>`), for the fs and logs endpoints.
    pub fn alloc_dir(&self, alloc_id: &str) -> Result<PathBuf, ClientError> {
        match self.runner(alloc_id) {
            Some(r) => Ok(r.root().clone()),
            None => {
                let p = self.inner.config.alloc_dir.join(alloc_id);
                if !alloc_id.is_empty() && !alloc_id.contains('/') && p.is_dir() {
                    Ok(p)
                } else {
                    Err(ClientError::UnknownAlloc(alloc_id.to_string()))
                }
            }
        }
    }

    /// Restarts a task (or all running tasks) of an allocation.
    pub fn restart_alloc(&self, alloc_id: &str, task: Option<&str>) -> Result<(), ClientError> {
        let r = self
            .runner(alloc_id)
            .ok_or_else(|| ClientError::UnknownAlloc(alloc_id.to_string()))?;
        r.restart(task).map_err(ClientError::Task)
    }

    /// Sends a signal to a task (or every running task) of an allocation.
    pub async fn signal_alloc(
        &self,
        alloc_id: &str,
        task: Option<&str>,
        signal: &str,
    ) -> Result<(), ClientError> {
        let r = self
            .runner(alloc_id)
            .ok_or_else(|| ClientError::UnknownAlloc(alloc_id.to_string()))?;
        let mut n = 0;
        for t in r.tasks() {
            if task.is_some_and(|name| name != t.name) {
                continue;
            }
            let Some(h) = t.handle() else {
                if task.is_some() {
                    return Err(ClientError::Task(format!("task {:?} is not running", t.name)));
                }
                continue;
            };
            let Some(d) = t.driver() else { continue };
            t.emit(taskrunner::event(
                "Signaling",
                format!("Task being sent signal {signal}: User requested signal"),
            ));
            d.signal_task(&h.config.id, signal)
                .await
                .map_err(|e| ClientError::Task(e.to_string()))?;
            n += 1;
        }
        if n == 0
            && let Some(name) = task
        {
            return Err(ClientError::Task(format!(
                "task {name:?} not found in the allocation"
            )));
        }
        Ok(())
    }

    /// Resource usage of every running task of an allocation.
    pub async fn alloc_stats(
        &self,
        alloc_id: &str,
    ) -> Result<BTreeMap<String, drover_drivers::TaskResourceUsage>, ClientError> {
        let r = self
            .runner(alloc_id)
            .ok_or_else(|| ClientError::UnknownAlloc(alloc_id.to_string()))?;
        let mut out = BTreeMap::new();
        for t in r.tasks() {
            if let (Some(h), Some(d)) = (t.handle(), t.driver())
                && let Ok(u) = d.task_stats(&h.config.id).await
            {
                out.insert(t.name.clone(), u);
            }
        }
        Ok(out)
    }

    /// Stops the client. Tasks keep running (they are re-attached by the next start) unless
    /// the client was configured to destroy them on shutdown (dev mode).
    pub async fn shutdown(&self) {
        if self.inner.config.destroy_on_shutdown {
            let runners: Vec<Arc<AllocRunner>> = self
                .inner
                .runners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for r in &runners {
                r.kill_all("", "agent shutting down");
            }
            for r in &runners {
                let _ = tokio::time::timeout(Duration::from_secs(35), r.wait_done()).await;
                r.destroy_dir();
            }
        }
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
    }

    fn reporter(&self) -> Reporter {
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move |update: Allocation| {
            if let Some(inner) = weak.upgrade() {
                let urgent = {
                    let acked = inner.acked.lock().unwrap_or_else(|e| e.into_inner());
                    acked.get(&update.id) != Some(&update.client_status)
                };
                inner
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(update.id.clone(), update);
                if urgent {
                    inner.urgent.notify_one();
                }
            }
        })
    }

    fn task_context(&self, alloc_id: &str) -> TaskContext {
        TaskContext {
            db: self.inner.db.clone(),
            node: self.inner.node.clone(),
            region: self.inner.config.region.clone(),
            alloc_root: self.inner.config.alloc_dir.join(alloc_id),
            driver_state_dir: self.inner.config.state_dir.join("tasks"),
            max_kill_timeout: self.inner.config.max_kill_timeout,
            changed: Arc::new(Notify::new()),
        }
    }

    fn add_runner(&self, alloc: Allocation, restored: BTreeMap<String, state::LocalTaskState>) {
        let ctx = self.task_context(&alloc.id);
        let runner = AllocRunner::new(alloc, ctx, &self.inner.drivers, restored, self.reporter());
        self.inner
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(runner.id.clone(), runner.clone());
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            runner.run().await;
            if let Some(inner) = weak.upgrade() {
                inner.gc_trigger.notify_one();
            }
        });
    }

    fn restore(&self) -> Result<(), ClientError> {
        for (alloc, tasks) in self.inner.db.load()? {
            if tasks.is_empty() {
                // Never started: the servers send it again.
                let _ = self.inner.db.delete_alloc(&alloc.id);
                continue;
            }
            tracing::info!(alloc_id = %alloc.id, tasks = tasks.len(), "restoring allocation");
            self.add_runner(alloc, tasks);
        }
        Ok(())
    }

    async fn refingerprint(&self) {
        let mut last: BTreeMap<String, (bool, bool)> = self
            .node()
            .drivers
            .iter()
            .map(|(k, i)| (k.clone(), (i.detected, i.healthy)))
            .collect();
        loop {
            if !self.nap(Duration::from_secs(30)).await {
                return;
            }
            let drivers = fingerprint_drivers(&self.inner.drivers).await;
            let now_health: BTreeMap<String, (bool, bool)> = drivers
                .iter()
                .map(|(k, (i, _))| (k.clone(), (i.detected, i.healthy)))
                .collect();
            if now_health != last {
                last = now_health;
                {
                    let mut n = self.inner.node.lock().unwrap_or_else(|e| e.into_inner());
                    apply_driver_fingerprints(&mut n, drivers);
                }
                let node = self.node();
                tracing::info!("driver health changed; registering the node again");
                if let Err(e) = self.inner.rpc.register(node).await {
                    tracing::warn!(error = %e, "re-registration after a driver change failed");
                }
            }
        }
    }

    async fn register_and_heartbeat(&self) {
        let ttl = loop {
            let node = self.node();
            match self.inner.rpc.register(node).await {
                Ok(r) => {
                    self.inner.node.lock().unwrap_or_else(|e| e.into_inner()).status =
                        node_status::READY.into();
                    self.inner.registered.send_replace(true);
                    tracing::info!(node_id = %self.node_id(), "node registration complete");
                    break r.ttl();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "error registering the node; retrying");
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        let mut ttl = ttl;
        let id = self.node_id();
        loop {
            match self.inner.rpc.update_status(&id, node_status::READY).await {
                Ok(r) => {
                    if r.heartbeat_ttl > 0 {
                        ttl = r.ttl();
                    }
                }
                Err(e) if e.is_not_found() => {
                    tracing::warn!("the servers do not know this node; registering again");
                    let node = self.node();
                    if let Err(e) = self.inner.rpc.register(node).await {
                        tracing::warn!(error = %e, "re-registration failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            }
            let wait = (ttl / 2).max(Duration::from_millis(200));
            if !self.nap(wait).await {
                return;
            }
        }
    }

    async fn watch_allocs(&self) {
        let mut rx = self.inner.registered.subscribe();
        wait_flag(&mut rx).await;
        let id = self.node_id();
        let mut min_index = 0u64;
        loop {
            if self.stopped() {
                return;
            }
            let resp = match self
                .inner
                .rpc
                .get_client_allocs(&id, min_index, Duration::from_secs(300))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "error watching allocations");
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if resp.index <= min_index && min_index != 0 {
                if resp.index < min_index {
                    // The servers were rebuilt behind us: start over.
                    min_index = 0;
                }
                continue;
            }
            let existing: HashMap<String, u64> = self
                .inner
                .runners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, r)| (k.clone(), r.alloc_modify_index()))
                .collect();
            let pull: Vec<String> = {
                let mut collected = self.inner.collected.lock().unwrap_or_else(|e| e.into_inner());
                collected.retain(|aid, _| resp.allocs.contains_key(aid));
                resp.allocs
                    .iter()
                    .filter(|(aid, idx)| {
                        let have = existing.get(*aid).or_else(|| collected.get(*aid));
                        have.is_none_or(|have| *idx > have)
                    })
                    .map(|(aid, _)| aid.clone())
                    .collect()
            };
            if !pull.is_empty() {
                match self.inner.rpc.get_allocs(pull.clone()).await {
                    Ok(got) => {
                        for alloc in got.allocs {
                            self.alloc_arrived(alloc);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "error fetching allocations");
                        if !self.nap(Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            // Removed on the servers (garbage collected): destroy here too.
            for aid in existing.keys() {
                if !resp.allocs.contains_key(aid) {
                    self.remove_runner(aid).await;
                }
            }
            min_index = resp.index;
            self.collect_garbage().await;
        }
    }

    fn alloc_arrived(&self, alloc: Allocation) {
        let runner = self.runner(&alloc.id);
        if runner.is_none() && alloc.client_terminal() {
            // Finished before this agent knew it (its state was lost, or it was collected).
            return;
        }
        if let Err(e) = self.inner.db.put_alloc(&alloc) {
            tracing::error!(alloc_id = %alloc.id, error = %e, "failed to persist allocation");
        }
        match runner {
            Some(r) => r.update(alloc),
            None => {
                tracing::info!(alloc_id = %alloc.id, "allocation received");
                self.add_runner(alloc, BTreeMap::new());
            }
        }
    }

    /// Stops an allocation's tasks and removes it from this client. Waiting for the tasks to
    /// die (up to their kill timeouts) happens in the background: the watch loop never waits.
    async fn remove_runner(&self, alloc_id: &str) {
        let r = self
            .inner
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(alloc_id);
        if let Some(r) = r {
            self.inner
                .collected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(alloc_id.to_string(), r.alloc_modify_index());
            r.kill_all("", "allocation was removed");
            // The servers forgot it (or its final status was acknowledged): nothing to send.
            self.inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(alloc_id);
            self.inner
                .acked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(alloc_id);
            let db = self.inner.db.clone();
            let id = alloc_id.to_string();
            tokio::spawn(async move {
                r.wait_done().await;
                r.destroy_dir();
                let _ = db.delete_alloc(&id);
            });
        }
    }

    /// Collects garbage when an allocation finishes, and every minute (Nomad's gc_interval).
    async fn gc_loop(&self) {
        loop {
            let mut stop = self.inner.stop.subscribe();
            tokio::select! {
                _ = self.inner.gc_trigger.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = wait_flag(&mut stop) => return,
            }
            self.collect_garbage().await;
        }
    }

    /// Keeps at most `gc_max_allocs` terminal allocations; the oldest go first.
    async fn collect_garbage(&self) {
        let mut terminal: Vec<(i64, String)> = self
            .inner
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            // Only once the servers acknowledged its final status: collecting drops any update
            // still pending for it.
            .filter(|r| {
                r.is_done()
                    && self
                        .inner
                        .acked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&r.id)
                        .is_some_and(|s| matches!(s.as_str(), "complete" | "failed" | "lost"))
            })
            .map(|r| {
                // Oldest terminal first: by when its last task finished.
                let finished = r
                    .tasks()
                    .iter()
                    .filter_map(|t| t.state().finished_at.map(|f| f.0))
                    .max()
                    .unwrap_or(0);
                (finished, r.id.clone())
            })
            .collect();
        let max = self.inner.config.gc_max_allocs;
        if terminal.len() <= max {
            return;
        }
        terminal.sort();
        let excess = terminal.len() - max;
        for (_, id) in terminal.into_iter().take(excess) {
            tracing::info!(alloc_id = %id, "garbage collecting allocation: number of allocations is over the limit ({max})");
            self.remove_runner(&id).await;
        }
    }

    async fn sync_updates(&self) {
        let mut tick = 0u64;
        let mut rx = self.inner.registered.subscribe();
        wait_flag(&mut rx).await;
        let id = self.node_id();
        loop {
            let mut stop = self.inner.stop.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => { tick += 1; }
                _ = self.inner.urgent.notified() => {
                    // Give siblings a moment to batch with the urgent one.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ = wait_flag(&mut stop) => return,
            }
            let urgent = {
                let pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                let acked = self.inner.acked.lock().unwrap_or_else(|e| e.into_inner());
                pending
                    .values()
                    .any(|a| acked.get(&a.id) != Some(&a.client_status))
            };
            if !urgent && !tick.is_multiple_of(5) {
                continue;
            }
            let batch: Vec<Allocation> = {
                let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut *pending).into_values().collect()
            };
            if batch.is_empty() {
                continue;
            }
            match self.inner.rpc.update_alloc(&id, batch.clone()).await {
                Ok(_) => {
                    let finished = batch.iter().any(|a| a.client_terminal());
                    {
                        let mut acked = self.inner.acked.lock().unwrap_or_else(|e| e.into_inner());
                        for a in batch {
                            acked.insert(a.id.clone(), a.client_status.clone());
                        }
                    }
                    if finished {
                        // A final status is acknowledged: that allocation may now be collected.
                        self.inner.gc_trigger.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "error updating allocations; will retry");
                    {
                        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                        for a in batch {
                            pending.entry(a.id.clone()).or_insert(a);
                        }
                    }
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits until a flag turns true (or its sender is gone).
async fn wait_flag(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}

/// Driver fingerprints as the node records them.
async fn fingerprint_drivers(
    drivers: &BTreeMap<String, Arc<dyn Driver>>,
) -> BTreeMap<String, (DriverInfo, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for (name, d) in drivers {
        let f = d.fingerprint().await;
        let info = DriverInfo {
            attributes: f.attributes.clone(),
            detected: f.health != Health::Undetected,
            healthy: f.health == Health::Healthy,
            health_description: f.description.clone(),
            update_time: Some(Timestamp(now())),
        };
        out.insert(name.clone(), (info, f.attributes));
    }
    out
}

fn apply_driver_fingerprints(
    node: &mut Node,
    drivers: BTreeMap<String, (DriverInfo, BTreeMap<String, String>)>,
) {
    for (name, (info, attrs)) in drivers {
        let key = format!("driver.{name}");
        node.attributes.retain(|k, _| !k.starts_with(&format!("{key}.")));
        if info.detected {
            node.attributes.insert(key, "1".into());
            node.attributes.extend(attrs);
        } else {
            node.attributes.remove(&key);
        }
        node.drivers.insert(name, info);
    }
}

async fn build_node(config: &ClientConfig, node_id: &str, secret_id: &str) -> Node {
    let facts = fingerprint::host(
        &config.alloc_dir,
        config.network_interface.as_deref(),
        &config.http_addr,
    );
    let drivers: BTreeMap<String, Arc<dyn Driver>> = config
        .drivers
        .iter()
        .map(|d| (d.name().to_string(), d.clone()))
        .collect();
    let mut node = Node {
        id: node_id.to_string(),
        secret_id: secret_id.to_string(),
        datacenter: config.datacenter.clone(),
        name: config.node_name.clone(),
        http_addr: config.http_addr.clone(),
        attributes: facts.attributes.clone(),
        node_resources: Some(facts.node_resources(config.min_dynamic_port, config.max_dynamic_port)),
        meta: config.meta.clone(),
        node_class: config.node_class.clone(),
        node_pool: config.node_pool.clone(),
        scheduling_eligibility: "eligible".into(),
        status: node_status::INITIALIZING.into(),
        ..Default::default()
    };
    apply_driver_fingerprints(&mut node, fingerprint_drivers(&drivers).await);
    node
}
