//! Simulated client nodes: thousands of fake Drover clients in one process, speaking the real
//! `drover.Node` RPC to a real server, for scale tests and for tests of heartbeats, lost nodes
//! and rescheduling without real machines.
//!
//! ```text
//!                 ┌── per node: lifecycle task ──────────────────────────────────────────┐
//!  Simulator ─────┤  Register(initializing) → UpdateStatus(ready) → heartbeat every       │
//!   (counters,    │  ~TTL/2..3TTL/4 (first one spread at random); NotFound → re-register  │
//!    pause knob)  ├── per node: alloc watcher task ───────────────────────────────────────┤
//!                 │  GetClientAllocs (blocking) → GetAllocs(changed) → decide:            │
//!                 │   desired run  → "running" (+ "failed" after -fail-after, if set)     │
//!                 │   desired stop/evict → "complete"                                     │
//!                 └──────────────┬──────────────────────────────────────────────────────────┘
//!                                ▼  (node, stripped allocation)
//!                 reporter task: 50 ms batches, newest report per allocation wins,
//!                 one UpdateAlloc per node in flight, failed batches merged back and retried
//!                                │
//!  NodeClient pool: one HTTP/2 connection per `nodes_per_connection` nodes ──▶ server
//! ```
//!
//! # Vocabulary
//! - *node index*: 0..nodes; the node's ID is a version-5 UUID of `prefix/index`, its name
//!   `prefix-00042`, its address `127.0.x.y` — stable across runs, so a restarted simulator
//!   re-registers the same nodes.
//! - *paused* node: stops heartbeating (its watcher and reports go on), so the server marks it
//!   down after TTL + grace — the knob for down-detection tests.
//!
//! # Guarantees
//! - Only the public RPC is used; the simulator knows nothing of the server's internals.
//! - Every call is retried after `Unavailable` (1–2 s), as a client would; nothing panics on a
//!   server error. A report rejected as invalid (node already `down`) is dropped and counted.
//! - Reports for one allocation are never reordered (one call per node in flight).
//!
//! # Limits
//! Tasks never really run; health is reported at once; no client-side restarts, no
//! reconnect/disconnect logic, no drain awareness. Allocations removed by GC are forgotten only
//! when the node's next change arrives.
//!
//! # Cost (measured on the 2-core dev machine, release build, server in another process)
//! 5,000 nodes, 10 HTTP/2 connections, every node with a parked blocking query:
//!
//! | phase | nodesim CPU | nodesim RSS |
//! |---|---|---|
//! | register + ready, all 5,000 (4.4–7.0 s, server-bound) | ~1.5 CPU-s in total (25–30 % of a core) | 97 MB |
//! | 5,000 allocations fetched and reported running (7.1 s) | ~1 CPU-s | 112 MB |
//! | steady state (heartbeat every ~TTL/2, TTL 100–200 s) | 0–2 % of a core | 112 MB |
//!
//! About 18 KB per node: the two task futures (kept ≤ 2 KB by boxing call futures, see
//! `tests::per_node_task_futures_stay_small`), the parked call's tonic and h2 state, and
//! allocator slack. The harness: `serve_for_measurement` in `crates/drover-server/tests/rpc.rs`.

pub mod node;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use drover_rpc::{NodeClient, RpcError};
use drover_types::Allocation;
use drover_types::alloc::client_status;
use drover_types::node::node_status;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The RPC client could not be built (bad address).
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Server RPC address (`127.0.0.1:4647`).
    pub address: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Datacenter of every node.
    pub datacenter: String,
    /// Node class ("" = none).
    pub node_class: String,
    /// CPU of each node, MHz in total.
    pub cpu_mhz: i64,
    /// Cores of each node.
    pub cores: i64,
    /// Memory of each node, MB.
    pub memory_mb: i64,
    /// Disk of each node, MB.
    pub disk_mb: i64,
    /// Drivers every node reports detected and healthy.
    pub drivers: Vec<String>,
    /// Name and ID prefix (`sim` → `sim-00042`).
    pub node_prefix: String,
    /// Report running allocations as failed after this long.
    pub fail_after: Option<Duration>,
    /// Nodes sharing one HTTP/2 connection.
    pub nodes_per_connection: usize,
    /// Registrations in flight at once.
    pub register_concurrency: usize,
    /// How long allocation reports are collected before they are sent.
    pub batch_window: Duration,
    /// `MaxQueryTime` of the allocation watch.
    pub max_wait: Duration,
    /// The first heartbeat after registration comes at a random time below this (and below
    /// TTL/2), so heartbeats do not arrive in waves.
    pub heartbeat_stagger: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            address: "127.0.0.1:4647".into(),
            nodes: 1,
            datacenter: "dc1".into(),
            node_class: String::new(),
            cpu_mhz: 4000,
            cores: 4,
            memory_mb: 8192,
            disk_mb: 100_000,
            drivers: vec!["raw_exec".into(), "exec".into(), "docker".into()],
            node_prefix: "sim".into(),
            fail_after: None,
            nodes_per_connection: 500,
            register_concurrency: 64,
            batch_window: Duration::from_millis(50),
            max_wait: drover_rpc::node::MAX_BLOCKING_WAIT,
            heartbeat_stagger: Duration::from_secs(10),
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::InvalidConfig(m.to_string()));
        if self.nodes == 0 {
            return bad("nodes must be at least 1");
        }
        if self.datacenter.is_empty() {
            return bad("datacenter must not be empty");
        }
        if self.node_prefix.is_empty() {
            return bad("node prefix must not be empty");
        }
        if self.cpu_mhz <= 0 || self.cores <= 0 || self.memory_mb <= 0 || self.disk_mb < 0 {
            return bad("cpu, cores and memory must be positive, disk not negative");
        }
        if self.nodes_per_connection == 0 || self.register_concurrency == 0 {
            return bad("nodes per connection and register concurrency must be at least 1");
        }
        Ok(())
    }
}

/// Counters since start (a snapshot; see [`Simulator::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimCounters {
    /// Successful `Register` calls (re-registrations included).
    pub registrations: u64,
    /// Nodes that registered and reported `ready` at least once.
    pub nodes_ready: u64,
    /// Successful heartbeats (`UpdateStatus ready` after the first).
    pub heartbeats: u64,
    /// Answers to `GetClientAllocs`.
    pub alloc_polls: u64,
    /// Allocations fetched with `GetAllocs`.
    pub allocs_fetched: u64,
    /// Allocations acknowledged as `running`.
    pub allocs_running: u64,
    /// Allocations acknowledged as `complete`.
    pub allocs_complete: u64,
    /// Allocations acknowledged as `failed`.
    pub allocs_failed: u64,
    /// Successful `UpdateAlloc` calls.
    pub update_calls: u64,
    /// Reports dropped because the server rejected them (e.g. node already down).
    pub reports_rejected: u64,
    /// Failed calls of any kind (each retry counts).
    pub rpc_errors: u64,
}

#[derive(Default)]
struct Counters {
    registrations: AtomicU64,
    nodes_ready: AtomicU64,
    heartbeats: AtomicU64,
    alloc_polls: AtomicU64,
    allocs_fetched: AtomicU64,
    allocs_running: AtomicU64,
    allocs_complete: AtomicU64,
    allocs_failed: AtomicU64,
    update_calls: AtomicU64,
    reports_rejected: AtomicU64,
    rpc_errors: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> SimCounters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimCounters {
            registrations: g(&self.registrations),
            nodes_ready: g(&self.nodes_ready),
            heartbeats: g(&self.heartbeats),
            alloc_polls: g(&self.alloc_polls),
            allocs_fetched: g(&self.allocs_fetched),
            allocs_running: g(&self.allocs_running),
            allocs_complete: g(&self.allocs_complete),
            allocs_failed: g(&self.allocs_failed),
            update_calls: g(&self.update_calls),
            reports_rejected: g(&self.reports_rejected),
            rpc_errors: g(&self.rpc_errors),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Nodes simulated.
    pub nodes: usize,
    /// Seconds since start.
    pub elapsed_secs: f64,
    /// Seconds from start until every node had registered and reported ready (None: not all).
    pub all_ready_secs: Option<f64>,
    /// The counters.
    pub counters: SimCounters,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "t={:.1}s ready={}/{}{} heartbeats={} polls={} fetched={} running={} complete={} failed={} \
             updates={} rejected={} errors={}",
            self.elapsed_secs,
            c.nodes_ready,
            self.nodes,
            self.all_ready_secs
                .map(|s| format!(" (all ready after {s:.2}s)"))
                .unwrap_or_default(),
            c.heartbeats,
            c.alloc_polls,
            c.allocs_fetched,
            c.allocs_running,
            c.allocs_complete,
            c.allocs_failed,
            c.update_calls,
            c.reports_rejected,
            c.rpc_errors,
        )
    }
}

/// One report queued for the reporter.
struct Report {
    node: usize,
    alloc: Allocation,
}

struct Shared {
    config: SimConfig,
    clients: Vec<NodeClient>,
    paused: Vec<AtomicBool>,
    counters: Counters,
    stop: watch::Sender<bool>,
    reports: mpsc::UnboundedSender<Report>,
    registering: Semaphore,
    started: Instant,
    all_ready: OnceLock<Duration>,
}

impl Shared {
    fn client(&self, node: usize) -> &NodeClient {
        &self.clients[node % self.clients.len()]
    }

    fn node_id(&self, node: usize) -> String {
        node::node_id(&self.config.node_prefix, node)
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`; false when the simulator stopped meanwhile.
    async fn nap(&self, d: Duration) -> bool {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            _ = sleep(d) => !self.stopped(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// Runs `fut` unless the simulator stops first (None).
    async fn or_stop<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            v = fut => Some(v),
            _ = stop.wait_for(|s| *s) => None,
        }
    }

    fn error(&self, node: usize, what: &str, e: &RpcError) {
        bump(&self.counters.rpc_errors, 1);
        tracing::debug!(node, error = %e, "{what} failed");
    }
}

/// A small, fast, deterministic generator for jitter (no global RNG).
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        Jitter(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, d).
    fn below(&mut self, d: Duration) -> Duration {
        let n = d.as_nanos() as u64;
        if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.next() % n)
        }
    }

    /// 1 s + up to 1 s: the retry delay after a failed call.
    fn retry(&mut self) -> Duration {
        Duration::from_secs(1) + self.below(Duration::from_secs(1))
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A running simulation. Cheap to clone; [`Simulator::stop`] ends it.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("address", &self.shared.config.address)
            .field("nodes", &self.shared.config.nodes)
            .finish()
    }
}

impl Simulator {
    /// Starts every node on the current tokio runtime. Connections are made lazily: nodes
    /// retry until the server answers.
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        config.validate()?;
        let connections = config.nodes.div_ceil(config.nodes_per_connection);
        let clients = (0..connections)
            .map(|_| NodeClient::connect_lazy(&config.address))
            .collect::<Result<Vec<_>, _>>()?;
        let (reports, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            paused: (0..config.nodes).map(|_| AtomicBool::new(false)).collect(),
            registering: Semaphore::new(config.register_concurrency),
            config,
            clients,
            counters: Counters::default(),
            stop: watch::Sender::new(false),
            reports,
            started: Instant::now(),
            all_ready: OnceLock::new(),
        });
        let mut tasks = Vec::with_capacity(shared.config.nodes + 1);
        tasks.push(tokio::spawn(reporter(shared.clone(), rx)));
        for i in 0..shared.config.nodes {
            tasks.push(tokio::spawn(lifecycle(shared.clone(), i)));
        }
        Ok(Simulator {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// The ID of node `index`.
    pub fn node_id(&self, index: usize) -> String {
        self.shared.node_id(index)
    }

    /// Every node's ID, by index.
    pub fn node_ids(&self) -> Vec<String> {
        (0..self.shared.config.nodes)
            .map(|i| self.shared.node_id(i))
            .collect()
    }

    /// Stops heartbeats of node `index` (its allocation watch goes on); the server marks it
    /// down after its TTL plus grace.
    pub fn pause_heartbeats(&self, index: usize) {
        if let Some(p) = self.shared.paused.get(index) {
            p.store(true, Ordering::Relaxed);
        }
    }

    /// Resumes heartbeats of node `index` (a down node becomes ready again).
    pub fn resume_heartbeats(&self, index: usize) {
        if let Some(p) = self.shared.paused.get(index) {
            p.store(false, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn counters(&self) -> SimCounters {
        self.shared.counters.snapshot()
    }

    /// Waits until every node registered and reported ready; false after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.shared.all_ready.get().is_none() {
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The report so far.
    pub fn report(&self) -> SimReport {
        let s = &self.shared;
        SimReport {
            nodes: s.config.nodes,
            elapsed_secs: s.started.elapsed().as_secs_f64(),
            all_ready_secs: s.all_ready.get().map(Duration::as_secs_f64),
            counters: s.counters.snapshot(),
        }
    }

    /// Stops every node (calls in flight are abandoned; nodes are not deregistered, so the
    /// server will mark them down) and returns the final report.
    pub async fn stop(self) -> SimReport {
        self.shared.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            // A task that panicked has already logged; the report is still useful.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.report()
    }
}

/// Runs `config` until `stop` completes and returns what happened.
pub async fn run<F: Future>(config: SimConfig, stop: F) -> Result<SimReport, SimError> {
    let sim = Simulator::start(config)?;
    stop.await;
    Ok(sim.stop().await)
}

// ---------------------------------------------------------------------------- node lifecycle

/// Registers node `i` (status initializing) and reports it ready; retries until it worked or
/// the simulator stopped. Returns the heartbeat TTL.
async fn register(s: &Shared, i: usize, rng: &mut Jitter) -> Option<Duration> {
    let id = s.node_id(i);
    let client = s.client(i);
    let _permit = s.or_stop(s.registering.acquire()).await?.ok()?;
    loop {
        let node = node::build_node(&s.config, i);
        match s.or_stop(client.register(node)).await? {
            Ok(_) => {
                bump(&s.counters.registrations, 1);
                break;
            }
            Err(e) => {
                s.error(i, "register", &e);
                if !s.nap(rng.retry()).await {
                    return None;
                }
            }
        }
    }
    loop {
        match s.or_stop(client.update_status(&id, node_status::READY)).await? {
            Ok(r) => return Some(r.ttl()),
            Err(e) => {
                s.error(i, "status update to ready", &e);
                if !s.nap(rng.retry()).await {
                    return None;
                }
            }
        }
    }
}

async fn lifecycle(s: Arc<Shared>, i: usize) {
    let mut rng = Jitter::new(i as u64 ^ now_unix() as u64);
    // Boxed here and below: a task's future is as big as its largest await point, and it lives
    // as long as the node; the registration and call futures are needed only for a moment.
    let Some(mut ttl) = Box::pin(register(&s, i, &mut rng)).await else {
        return;
    };
    let ready = s.counters.nodes_ready.fetch_add(1, Ordering::Relaxed) + 1;
    if ready == s.config.nodes as u64 {
        let _ = s.all_ready.set(s.started.elapsed());
    }
    tokio::spawn(watch_allocs(s.clone(), i));

    let id = s.node_id(i);
    let mut next = rng.below(s.config.heartbeat_stagger.min(ttl / 2));
    loop {
        if !s.nap(next).await {
            return;
        }
        if s.paused[i].load(Ordering::Relaxed) {
            next = Duration::from_millis(100);
            continue;
        }
        match s
            .or_stop(Box::pin(s.client(i).update_status(&id, node_status::READY)))
            .await
        {
            None => return,
            Some(Ok(r)) => {
                bump(&s.counters.heartbeats, 1);
                ttl = r.ttl();
                next = ttl / 2 + rng.below(ttl / 4);
            }
            Some(Err(e)) if e.is_not_found() => {
                // The server forgot us (GC'd while down, or a fresh server): register again.
                s.error(i, "heartbeat", &e);
                match Box::pin(register(&s, i, &mut rng)).await {
                    Some(t) => {
                        ttl = t;
                        next = ttl / 2;
                    }
                    None => return,
                }
            }
            Some(Err(e)) => {
                s.error(i, "heartbeat", &e);
                next = rng.retry().min(ttl / 2);
            }
        }
    }
}

// ---------------------------------------------------------------------------- alloc watcher

/// What a node remembers of one allocation.
struct Known {
    alloc_modify_index: u64,
    tasks: Vec<String>,
    /// The last client status this node reported (or found on the server).
    status: &'static str,
}

async fn watch_allocs(s: Arc<Shared>, i: usize) {
    let id = s.node_id(i);
    let mut rng = Jitter::new(!(i as u64) ^ now_unix() as u64);
    let mut known: HashMap<String, Known> = HashMap::new();
    // Allocations to report failed, and when (`-fail-after`).
    let mut fail_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut min_index = 0u64;
    let client = s.client(i).clone();
    loop {
        let mut poll = Box::pin(client.get_client_allocs(&id, min_index, s.config.max_wait));
        // Wait for the answer, firing due failures meanwhile.
        let answer = loop {
            let next_fail = fail_at.values().min().copied();
            let fire = async {
                match next_fail {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let step = s
                .or_stop(async {
                    tokio::select! {
                        r = &mut poll => Some(r),
                        _ = fire => None,
                    }
                })
                .await;
            match step {
                None => return,
                Some(Some(r)) => break r,
                Some(None) => {
                    let now = Instant::now();
                    let due: Vec<String> = fail_at
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for a in due {
                        fail_at.remove(&a);
                        if let Some(k) = known.get_mut(&a)
                            && k.status == client_status::RUNNING
                        {
                            k.status = client_status::FAILED;
                            let r = node::failed_update(&a, &id, &k.tasks, now_unix());
                            let _ = s.reports.send(Report { node: i, alloc: r });
                        }
                    }
                }
            }
        };
        let resp = match answer {
            Ok(r) => r,
            Err(e) => {
                s.error(i, "alloc watch", &e);
                if !s.nap(rng.retry()).await {
                    return;
                }
                continue;
            }
        };
        bump(&s.counters.alloc_polls, 1);
        // 0 would mean "answer now" next time: a busy loop against a server that answers 0.
        let index = resp.index.max(1);
        if index <= min_index {
            continue; // timed out, nothing changed
        }
        known.retain(|a, _| resp.allocs.contains_key(a));
        fail_at.retain(|a, _| resp.allocs.contains_key(a));
        let pull: Vec<String> = resp
            .allocs
            .iter()
            .filter(|(a, idx)| known.get(*a).is_none_or(|k| **idx > k.alloc_modify_index))
            .map(|(a, _)| a.clone())
            .collect();
        if !pull.is_empty() {
            let fetched = match s.or_stop(Box::pin(client.get_allocs(pull))).await {
                None => return,
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    s.error(i, "alloc fetch", &e);
                    if !s.nap(rng.retry()).await {
                        return;
                    }
                    continue; // same min_index: the same changes are pulled again
                }
            };
            bump(&s.counters.allocs_fetched, fetched.allocs.len() as u64);
            let now = now_unix();
            for a in &fetched.allocs {
                let k = known.entry(a.id.clone()).or_insert_with(|| Known {
                    alloc_modify_index: 0,
                    tasks: node::task_names(a),
                    status: "",
                });
                k.alloc_modify_index = a.alloc_modify_index;
                let report = if a.client_terminal() {
                    // The server already decided (lost, or we reported it before a restart).
                    k.status = client_status::COMPLETE;
                    fail_at.remove(&a.id);
                    None
                } else if a.server_terminal() {
                    fail_at.remove(&a.id);
                    if k.status == client_status::COMPLETE || k.status == client_status::FAILED {
                        None
                    } else {
                        k.status = client_status::COMPLETE;
                        Some(node::complete_update(&a.id, &id, &k.tasks, now))
                    }
                } else if k.status.is_empty() {
                    k.status = client_status::RUNNING;
                    if let Some(after) = s.config.fail_after {
                        fail_at.insert(a.id.clone(), Instant::now() + after);
                    }
                    if a.client_status == client_status::RUNNING {
                        None // already running (a restarted simulator)
                    } else {
                        Some(node::running_update(a, now))
                    }
                } else {
                    None
                };
                if let Some(r) = report {
                    let _ = s.reports.send(Report { node: i, alloc: r });
                }
            }
        }
        min_index = index;
    }
}

// ---------------------------------------------------------------------------- reporter

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Outcome of one `UpdateAlloc` call.
struct Sent {
    node: usize,
    allocs: Vec<Allocation>,
    result: Result<(), RpcError>,
}

/// Batches reports: collects for `batch_window`, then one `UpdateAlloc` per node, at most one
/// in flight per node; a newer report of an allocation replaces an unsent older one.
async fn reporter(s: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Report>) {
    let mut pending: HashMap<usize, BTreeMap<String, Allocation>> = HashMap::new();
    let mut in_flight: HashMap<usize, ()> = HashMap::new();
    let mut not_before: HashMap<usize, Instant> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Sent>();
    let mut flush_at: Option<Instant> = None;
    let mut rng = Jitter::new(now_unix() as u64);
    let mut stop = s.stop.subscribe();
    loop {
        let flush = async {
            match flush_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            r = rx.recv() => {
                let Some(r) = r else { return };
                pending.entry(r.node).or_default().insert(r.alloc.id.clone(), r.alloc);
                flush_at = earliest(flush_at, Instant::now() + s.config.batch_window);
            }
            Some(sent) = done_rx.recv() => {
                in_flight.remove(&sent.node);
                match sent.result {
                    Ok(()) => {
                        bump(&s.counters.update_calls, 1);
                        for a in &sent.allocs {
                            match a.client_status.as_str() {
                                client_status::RUNNING => bump(&s.counters.allocs_running, 1),
                                client_status::COMPLETE => bump(&s.counters.allocs_complete, 1),
                                client_status::FAILED => bump(&s.counters.allocs_failed, 1),
                                _ => {}
                            }
                        }
                    }
                    Err(e) if e.is_retryable() => {
                        s.error(sent.node, "alloc update", &e);
                        let p = pending.entry(sent.node).or_default();
                        for a in sent.allocs {
                            // Keep a newer report if one arrived meanwhile.
                            p.entry(a.id.clone()).or_insert(a);
                        }
                        not_before.insert(sent.node, Instant::now() + rng.retry());
                    }
                    Err(e) => {
                        s.error(sent.node, "alloc update", &e);
                        bump(&s.counters.reports_rejected, sent.allocs.len() as u64);
                    }
                }
                if pending.contains_key(&sent.node) {
                    let t = not_before.get(&sent.node).copied().unwrap_or_else(Instant::now);
                    flush_at = earliest(flush_at, t.max(Instant::now() + s.config.batch_window));
                }
            }
            _ = flush => {
                let now = Instant::now();
                let ready: Vec<usize> = pending
                    .keys()
                    .filter(|n| !in_flight.contains_key(n) && not_before.get(n).is_none_or(|t| *t <= now))
                    .copied()
                    .collect();
                for node in ready {
                    let Some(batch) = pending.remove(&node) else { continue };
                    not_before.remove(&node);
                    in_flight.insert(node, ());
                    let allocs: Vec<Allocation> = batch.into_values().collect();
                    let client = s.client(node).clone();
                    let id = s.node_id(node);
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let result = client.update_alloc(&id, allocs.clone()).await.map(|_| ());
                        let _ = done.send(Sent { node, allocs, result });
                    });
                }
                // Whatever is left waits for its call to finish or its retry time.
                flush_at = not_before
                    .iter()
                    .filter(|(n, _)| pending.contains_key(n) && !in_flight.contains_key(n))
                    .map(|(_, t)| *t)
                    .min();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spawned task allocates its future's full size for the node's lifetime, so at 5,000
    /// nodes every KB here is 5 MB of RSS (before boxing the call futures this was 18 KB + 6 KB).
    #[tokio::test]
    async fn per_node_task_futures_stay_small() {
        let sim = Simulator::start(SimConfig {
            address: "127.0.0.1:1".into(),
            ..Default::default()
        })
        .expect("start");
        let s = sim.shared.clone();
        let lifecycle = std::mem::size_of_val(&lifecycle(s.clone(), 0));
        let watcher = std::mem::size_of_val(&watch_allocs(s.clone(), 0));
        assert!(lifecycle <= 1024, "lifecycle future is {lifecycle} bytes");
        assert!(watcher <= 2048, "watcher future is {watcher} bytes");
        let _ = sim.stop().await;
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut j = Jitter::new(7);
        for _ in 0..1000 {
            assert!(j.below(Duration::from_millis(10)) < Duration::from_millis(10));
            let r = j.retry();
            assert!(r >= Duration::from_secs(1) && r < Duration::from_secs(2));
        }
        assert_eq!(j.below(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn bad_configurations_are_refused() {
        for cfg in [
            SimConfig {
                nodes: 0,
                ..Default::default()
            },
            SimConfig {
                datacenter: String::new(),
                ..Default::default()
            },
            SimConfig {
                memory_mb: 0,
                ..Default::default()
            },
            SimConfig {
                nodes_per_connection: 0,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(cfg.validate(), Err(SimError::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
    }
}
