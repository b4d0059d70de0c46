//! The agent's log: Raft on disk behind the group-commit batcher.

use drover_server::log::RaftLog;
use drover_server::{Log, Server, ServerConfig};
use drover_state::Command;
use drover_testkit::mock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_raft_entries_and_all_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = drover_raft::RaftNode::open(drover_raft::RaftConfig::with_data_dir(dir.path()))
        .await
        .expect("open");
    node.wait_for_leader(std::time::Duration::from_secs(5))
        .await
        .expect("leader");
    let log = RaftLog::new(node.clone());
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..200u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.write(Command::UpsertNode { node: mock::node(n) }).await
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.push(t.await.expect("join").expect("write").index);
    }
    let elapsed = started.elapsed();
    let stats: std::collections::BTreeMap<_, _> = log.stats().into_iter().collect();
    let entries: u64 = stats["raft_entries_from_batcher"].parse().expect("number");
    println!(
        "200 concurrent writes: {entries} raft entries, {} fsynced commits, {:.0} writes/s",
        stats["log_commits"],
        200.0 / elapsed.as_secs_f64()
    );
    assert!(
        entries < 200,
        "no batching happened: {entries} entries for 200 writes"
    );
    assert_eq!(log.store().snapshot().nodes().len(), 200);
    // Writes that shared an entry share its index.
    indexes.sort();
    indexes.dedup();
    assert_eq!(indexes.len() as u64, entries);

    node.shutdown().await.expect("shutdown");
    drop(log);
    let node = drover_raft::RaftNode::open(drover_raft::RaftConfig::with_data_dir(dir.path()))
        .await
        .expect("reopen");
    assert_eq!(node.store().snapshot().nodes().len(), 200);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_raft_places_a_job() {
    let node = drover_raft::RaftNode::open(drover_raft::RaftConfig::dev())
        .await
        .expect("open");
    node.wait_for_leader(std::time::Duration::from_secs(5))
        .await
        .expect("leader");
    let server = Server::start(ServerConfig::default(), RaftLog::new(node.clone()));
    for _ in 0..200 {
        if server.is_leader() && server.broker_stats() == Default::default() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for n in 0..3 {
        server.register_node(mock::node(n)).await.expect("register");
    }
    let resp = server
        .register_job(drover_server::api::JobRegisterRequest {
            job: Some(mock::job()),
            ..Default::default()
        })
        .await
        .expect("register job");
    for _ in 0..300 {
        if server
            .snapshot()
            .eval(&resp.eval_id)
            .is_some_and(|e| e.status == "complete")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let live = server
        .snapshot()
        .allocs_by_job("default", "web")
        .into_iter()
        .filter(|a| !a.terminal())
        .count();
    assert_eq!(live, 10);
    server.shutdown();
    node.shutdown().await.expect("shutdown");
}
