//! The node RPC end to end: a real server (in-memory log), its `drover.Node` service on a real
//! socket, and simulated client nodes (`drover-nodesim`) that only speak the RPC.
//!
//! Heartbeat TTLs are shortened (1 s minimum, 1 s grace) so a missed heartbeat is noticed in
//! about three seconds.

use std::sync::Arc;
use std::time::Duration;

use drover_nodesim::{SimConfig, Simulator};
use drover_rpc::{NodeClient, RpcError};
use drover_server::api::JobRegisterRequest;
use drover_server::{HeartbeatConfig, MemLog, Server, ServerConfig};
use drover_testkit::mock;
use drover_types::Allocation;
use drover_types::alloc::client_status;
use tokio::sync::oneshot;
use tokio::time::Instant;

struct Cluster {
    server: Server,
    addr: String,
    stop_rpc: Option<oneshot::Sender<()>>,
}

impl Cluster {
    async fn start() -> Cluster {
        let config = ServerConfig {
            heartbeat: HeartbeatConfig {
                min_ttl: Duration::from_secs(1),
                grace: Duration::from_secs(1),
                failover_ttl: Duration::from_secs(5),
                ..Default::default()
            },
            num_schedulers: 2,
            ..Default::default()
        };
        let server = Server::start(config, Arc::new(MemLog::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (tx, rx) = oneshot::channel::<()>();
        let handler: Arc<dyn drover_rpc::NodeHandler> = Arc::new(server.clone());
        tokio::spawn(drover_rpc::serve(listener, handler, async move {
            let _ = rx.await;
        }));
        Cluster {
            server,
            addr,
            stop_rpc: Some(tx),
        }
    }

    fn sim(&self, nodes: usize, prefix: &str) -> Simulator {
        Simulator::start(SimConfig {
            address: self.addr.clone(),
            nodes,
            node_prefix: prefix.into(),
            heartbeat_stagger: Duration::from_millis(200),
            max_wait: Duration::from_secs(10),
            ..Default::default()
        })
        .expect("simulator")
    }

    fn web_allocs(&self) -> Vec<Arc<Allocation>> {
        self.server.snapshot().allocs_by_job("default", "web")
    }

    /// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
    async fn eventually(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn shutdown(mut self) {
        self.server.shutdown();
        if let Some(tx) = self.stop_rpc.take() {
            let _ = tx.send(());
        }
    }
}

fn running_count(allocs: &[Arc<Allocation>]) -> usize {
    allocs
        .iter()
        .filter(|a| !a.server_terminal() && a.client_status == client_status::RUNNING)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_run_allocations_and_a_silent_node_is_replaced() {
    let c = Cluster::start().await;
    let sim = c.sim(20, "rpc-test");
    assert!(
        sim.wait_ready(Duration::from_secs(15)).await,
        "nodes not ready: {}",
        sim.report()
    );
    let ids = sim.node_ids();
    let snap = c.server.snapshot();
    for id in &ids {
        let n = snap.node(id).expect("registered");
        assert_eq!(n.status, "ready", "{}", n.name);
        assert_eq!(n.attributes["kernel.name"], "linux");
    }

    // Placed on simulated nodes and reported running through UpdateAlloc.
    c.server
        .register_job(JobRegisterRequest {
            job: Some(mock::job()),
            ..Default::default()
        })
        .await
        .expect("register job");
    c.eventually(Duration::from_secs(15), "10 running allocations", |c| {
        running_count(&c.web_allocs()) == 10
    })
    .await;
    let allocs = c.web_allocs();
    for a in &allocs {
        assert!(ids.contains(&a.node_id), "alloc on unknown node {}", a.node_id);
        let ts = &a.task_states["web"];
        assert_eq!(ts.state, "running");
        assert!(ts.events.iter().any(|e| e.event_type == "Started"));
    }

    // A node that stops heartbeating is marked down within TTL (≤ 2 s) + grace (1 s) + the
    // reaper's tick; its allocations become lost and are replaced elsewhere.
    let victim = allocs[0].node_id.clone();
    let on_victim = allocs.iter().filter(|a| a.node_id == victim).count();
    let index = ids
        .iter()
        .position(|id| *id == victim)
        .expect("victim is simulated");
    let paused_at = Instant::now();
    sim.pause_heartbeats(index);
    c.eventually(Duration::from_secs(8), "victim marked down", |c| {
        c.server
            .snapshot()
            .node(&victim)
            .is_some_and(|n| n.status == "down")
    })
    .await;
    let down_after = paused_at.elapsed();
    assert!(down_after <= Duration::from_secs(5), "down after {down_after:?}");
    c.eventually(Duration::from_secs(15), "lost allocations replaced", |c| {
        let allocs = c.web_allocs();
        let lost = allocs
            .iter()
            .filter(|a| a.node_id == victim && a.client_status == client_status::LOST)
            .count();
        let elsewhere = allocs
            .iter()
            .filter(|a| {
                a.node_id != victim && !a.server_terminal() && a.client_status == client_status::RUNNING
            })
            .count();
        lost == on_victim && elsewhere == 10
    })
    .await;

    // Stopping the job: every node reports its allocations complete.
    c.server
        .deregister_job("default", "web", false)
        .await
        .expect("stop job");
    c.eventually(Duration::from_secs(15), "allocations complete", |c| {
        c.web_allocs().iter().all(|a| a.client_terminal())
    })
    .await;
    let complete = c
        .web_allocs()
        .iter()
        .filter(|a| a.client_status == client_status::COMPLETE)
        .count();
    assert_eq!(complete, 10, "the replacements and the untouched ones");

    // The paused node comes back.
    sim.resume_heartbeats(index);
    c.eventually(Duration::from_secs(8), "victim ready again", |c| {
        c.server
            .snapshot()
            .node(&victim)
            .is_some_and(|n| n.status == "ready")
    })
    .await;

    // Counters move when the UpdateAlloc answers arrive, just after the server applied them.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.counters().allocs_complete < 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = sim.stop().await;
    assert_eq!(report.counters.nodes_ready, 20);
    assert!(report.counters.allocs_running >= 11, "{report}");
    assert_eq!(report.counters.allocs_complete, 10, "{report}");
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_keep_their_kind_over_the_wire() {
    let c = Cluster::start().await;
    let client = NodeClient::connect(&c.addr).await.expect("connect");

    let e = client
        .update_status("no-such-node", "ready")
        .await
        .expect_err("unknown node");
    assert_eq!(e, RpcError::NotFound("node not found".into()));
    let e = client
        .get_client_allocs("no-such-node", 0, Duration::from_secs(1))
        .await
        .expect_err("unknown node");
    assert!(e.is_not_found(), "{e:?}");

    let mut node = mock::node(1);
    node.datacenter.clear();
    let e = client.register(node).await.expect_err("no datacenter");
    assert_eq!(
        e,
        RpcError::InvalidArgument("missing datacenter for client registration".into())
    );

    let mut node = mock::node(1);
    node.status = "initializing".into();
    let r = client.register(node.clone()).await.expect("register");
    assert!(
        r.ttl() >= Duration::from_secs(1) && r.ttl() <= Duration::from_secs(2),
        "{:?}",
        r.ttl()
    );
    let e = client
        .update_status(&node.id, "sleeping")
        .await
        .expect_err("bad status");
    assert!(
        matches!(e, RpcError::InvalidArgument(ref m) if m.contains("invalid status")),
        "{e:?}"
    );
    let e = client
        .update_alloc(&node.id, Vec::new())
        .await
        .expect_err("empty update");
    assert!(matches!(e, RpcError::InvalidArgument(_)), "{e:?}");

    // A blocking query with nothing to report answers at its max wait, index not advanced
    // past what the node has seen.
    let first = client
        .get_client_allocs(&node.id, 0, Duration::from_secs(1))
        .await
        .expect("first");
    assert!(first.allocs.is_empty());
    let t = Instant::now();
    let again = client
        .get_client_allocs(&node.id, first.index.max(1), Duration::from_millis(300))
        .await
        .expect("blocking");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(again.allocs.is_empty());

    // GetAllocs leaves unknown IDs out.
    let r = client.get_allocs(vec!["nope".into()]).await.expect("get allocs");
    assert!(r.allocs.is_empty());
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_reported_failed_create_alloc_failure_evaluations() {
    let c = Cluster::start().await;
    let sim = Simulator::start(SimConfig {
        address: c.addr.clone(),
        nodes: 5,
        node_prefix: "rpc-fail".into(),
        heartbeat_stagger: Duration::from_millis(200),
        fail_after: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .expect("simulator");
    assert!(sim.wait_ready(Duration::from_secs(15)).await, "{}", sim.report());
    c.server
        .register_job(JobRegisterRequest {
            job: Some(mock::batch_job()),
            ..Default::default()
        })
        .await
        .expect("register job");
    c.eventually(Duration::from_secs(15), "10 failed allocations", |c| {
        let allocs = c.server.snapshot().allocs_by_job("default", "batch");
        allocs
            .iter()
            .filter(|a| a.client_status == client_status::FAILED)
            .count()
            >= 10
    })
    .await;
    c.eventually(Duration::from_secs(5), "an alloc-failure evaluation", |c| {
        c.server
            .snapshot()
            .evals_by_job("default", "batch")
            .iter()
            .any(|e| e.triggered_by == "alloc-failure")
    })
    .await;
    let failed = c.server.snapshot().allocs_by_job("default", "batch");
    let a = failed
        .iter()
        .find(|a| a.client_status == client_status::FAILED)
        .expect("a failed alloc");
    assert!(a.task_states.values().all(|t| t.failed && t.state == "dead"));
    // The simulator counts a report when its UpdateAlloc answer comes back, which may be just
    // after the server applied it: wait for the count rather than race it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.counters().allocs_failed < 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = sim.stop().await;
    assert!(report.counters.allocs_failed >= 10, "{report}");
    c.shutdown();
}

/// Not a test: a server with its node RPC on `DROVER_RPC_BENCH_ADDR` (default
/// `127.0.0.1:4647`) for `DROVER_RPC_BENCH_SECS` seconds (default 300), for measuring
/// `drover-nodesim` against it from another process. With `DROVER_RPC_BENCH_JOB_COUNT=N` it
/// registers the mock service job with count N once `DROVER_RPC_BENCH_NODES` nodes are ready,
/// and prints how long until all N allocations were reported running.
///
/// ```text
/// cargo test --release -p drover-server --test rpc -- --ignored --nocapture serve_for_measurement
/// ```
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement harness, run by hand"]
async fn serve_for_measurement() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let addr = env("DROVER_RPC_BENCH_ADDR", "127.0.0.1:4647");
    let secs: u64 = env("DROVER_RPC_BENCH_SECS", "300").parse().expect("seconds");
    let nodes: usize = env("DROVER_RPC_BENCH_NODES", "5000").parse().expect("nodes");
    let job_count: i64 = env("DROVER_RPC_BENCH_JOB_COUNT", "0").parse().expect("count");
    let server = Server::start(ServerConfig::default(), Arc::new(MemLog::new()));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let handler: Arc<dyn drover_rpc::NodeHandler> = Arc::new(server.clone());
    tokio::spawn(drover_rpc::serve(listener, handler, std::future::pending()));
    eprintln!("serving drover.Node on {addr} for {secs}s");
    let start = Instant::now();
    let mut all_ready: Option<Duration> = None;
    let mut job_started: Option<Instant> = None;
    let mut job_done = false;
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let snap = server.snapshot();
        let ready = snap.nodes().iter().filter(|n| n.status == "ready").count();
        if all_ready.is_none() && ready >= nodes {
            all_ready = Some(start.elapsed());
            eprintln!("t={:.1}s all {nodes} nodes ready", start.elapsed().as_secs_f64());
            if job_count > 0 {
                let mut job = mock::job();
                job.task_groups[0].count = job_count;
                job.task_groups[0].networks.clear();
                server
                    .register_job(JobRegisterRequest {
                        job: Some(job),
                        ..Default::default()
                    })
                    .await
                    .expect("register job");
                job_started = Some(Instant::now());
            }
        }
        if let Some(t) = job_started
            && !job_done
        {
            let running = running_count(&snap.allocs_by_job("default", "web"));
            if running as i64 >= job_count {
                job_done = true;
                eprintln!(
                    "t={:.1}s {job_count} allocations placed and reported running in {:.2}s",
                    start.elapsed().as_secs_f64(),
                    t.elapsed().as_secs_f64()
                );
            }
        }
        if start.elapsed().as_millis() % 10_000 < 250 {
            eprintln!(
                "t={:.0}s nodes={} ready={ready} index={} missed_heartbeats={}",
                start.elapsed().as_secs_f64(),
                snap.nodes().len(),
                snap.latest_index(),
                server.stats().heartbeats_missed
            );
        }
    }
    server.shutdown();
}
