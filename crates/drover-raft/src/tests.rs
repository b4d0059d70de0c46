//! Tests on real files in temporary directories: single-server writes, rejections, restarts
//! (clean, from snapshots, after a crash), concurrency, damaged files, in-process clusters.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_state::{Command, StateSnapshot};
use drover_testkit::mock;
use drover_types::{Evaluation, Job};

use crate::{InProcessNetwork, RaftConfig, RaftError, RaftNode};

const LEADER_WAIT: Duration = Duration::from_secs(5);

fn node_cmd(n: u64) -> Command {
    Command::UpsertNode { node: mock::node(n) }
}

fn job_named(name: &str) -> Job {
    let mut j = mock::job();
    j.id = name.into();
    j.name = name.into();
    j
}

fn eval_for(n: u64, job_id: &str) -> Evaluation {
    Evaluation {
        id: mock::id(10_000 + n),
        namespace: "default".into(),
        job_id: job_id.into(),
        eval_type: "service".into(),
        triggered_by: "job-register".into(),
        priority: 50,
        status: "pending".into(),
        ..Default::default()
    }
}

fn job_cmd(name: &str, n: u64) -> Command {
    Command::UpsertJob {
        job: job_named(name),
        eval: Some(eval_for(n, name)),
    }
}

async fn open_leader(config: RaftConfig) -> RaftNode {
    let node = RaftNode::open(config).await.expect("open");
    node.wait_for_leader(LEADER_WAIT).await.expect("leader");
    node
}

/// Writes a bit of everything: nodes, jobs (two versions of one), allocations, evaluations.
async fn write_mixed(node: &RaftNode) {
    node.write(node_cmd(1)).await.expect("node 1");
    node.write(node_cmd(2)).await.expect("node 2");
    node.write(job_cmd("web", 1)).await.expect("job");
    let mut v2 = job_named("web");
    v2.task_groups[0].count = 3;
    node.write(Command::UpsertJob { job: v2, eval: None })
        .await
        .expect("job v2");
    let job = node.store().snapshot().job("default", "web").expect("stored job");
    let allocs = (0..3)
        .map(|i| mock::alloc_for(&job, i, &mock::id(1), mock::id(20_000 + i)))
        .collect();
    node.write(Command::ApplyPlanResults {
        job: None,
        allocs_updated: allocs,
        allocs_stopped: vec![],
        allocs_preempted: vec![],
        deployment: None,
        deployment_updates: vec![],
        eval_id: mock::id(10_001),
        preemption_evals: vec![],
    })
    .await
    .expect("plan");
    node.write(Command::UpsertEvals {
        evals: vec![eval_for(2, "web"), eval_for(3, "web")],
    })
    .await
    .expect("evals");
}

fn state_bytes(s: &StateSnapshot) -> Vec<u8> {
    s.to_bytes().expect("encode state")
}

fn assert_mixed_state(s: &StateSnapshot) {
    assert!(s.nodes().len() >= 2);
    assert!(s.job("default", "web").is_some());
    assert_eq!(s.job_versions("default", "web").len(), 2);
    assert_eq!(s.allocs().len(), 3);
    assert_eq!(s.evals().len(), 3);
}

async fn wait_applied(node: &RaftNode, index: u64) {
    let mut rx = node.applied();
    tokio::time::timeout(LEADER_WAIT, rx.wait_for(|i| *i >= index))
        .await
        .expect("applied in time")
        .expect("applied channel open");
}

fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir.join("raft/snapshots"))
        .expect("snapshots dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    v.sort();
    v
}

fn small_snapshots(dir: &Path, logs_to_keep: u64) -> RaftConfig {
    RaftConfig {
        snapshot_threshold: 10,
        logs_to_keep,
        ..RaftConfig::with_data_dir(dir)
    }
}

#[tokio::test]
async fn dev_node_becomes_leader_and_applies_writes() {
    let started = Instant::now();
    let node = open_leader(RaftConfig::dev()).await;
    let to_leader = started.elapsed();
    println!("dev node: leader after {to_leader:?}");
    assert!(to_leader < Duration::from_secs(2), "took {to_leader:?}");
    assert!(node.is_leader());
    assert_eq!(node.leader(), Some((1, "127.0.0.1:4647".to_string())));
    assert!(*node.leadership().borrow());

    let applied_before = *node.applied().borrow();
    let out = node.write(node_cmd(1)).await.expect("write node");
    assert!(out.applied);
    assert!(out.index > applied_before);
    assert_eq!(
        node.metrics().last_log_index,
        out.index,
        "outcome index is the entry index"
    );
    assert_eq!(*node.applied().borrow(), out.index);

    let out2 = node.write(job_cmd("web", 1)).await.expect("write job");
    assert_eq!(out2.index, out.index + 1);
    assert!(out2.job_changed);
    assert_eq!(out2.evals_to_enqueue, vec![mock::id(10_001)]);

    let s = node.store().snapshot();
    assert_eq!(s.latest_index(), out2.index);
    assert_eq!(s.node(&mock::id(1)).expect("node").modify_index, out.index);
    let job = s.job("default", "web").expect("job");
    assert_eq!(job.modify_index, out2.index);
    assert!(s.eval(&mock::id(10_001)).is_some());

    let m = node.metrics();
    assert_eq!(m.state, "Leader");
    assert_eq!(m.last_applied, out2.index);
    assert_eq!(m.commit_index, out2.index);
    assert_eq!(m.voters, vec![1]);
    assert!(node.data_dir().join("raft/raft.db").exists());
    let dir = node.data_dir().to_path_buf();
    node.shutdown().await.expect("shutdown");
    assert!(matches!(node.write(node_cmd(2)).await, Err(RaftError::Shutdown)));
    drop(node);
    assert!(!dir.exists(), "dev data dir is removed on drop");
}

#[tokio::test]
async fn rejected_command_is_an_apply_error_and_changes_nothing() {
    let node = open_leader(RaftConfig::dev()).await;
    node.write(node_cmd(1)).await.expect("node");
    let before = node.store().snapshot();
    let err = node
        .write(Command::UpdateNodeStatus {
            id: "no-such-node".into(),
            status: "down".into(),
            updated_at: 1,
            evals: vec![],
            event: None,
        })
        .await
        .expect_err("unknown node");
    match &err {
        RaftError::Apply(msg) => assert!(msg.contains("no-such-node"), "{msg}"),
        other => panic!("expected Apply, got {other:?}"),
    }
    let after = node.store().snapshot();
    assert_eq!(state_bytes(&before), state_bytes(&after), "state untouched");
    // The rejected entry was committed and applied (as a no-op): the index moved on.
    assert_eq!(*node.applied().borrow(), before.latest_index() + 1);

    let out = node.write(node_cmd(2)).await.expect("still works");
    assert_eq!(out.index, before.latest_index() + 2);
    assert_eq!(node.store().snapshot().nodes().len(), 2);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn restart_replays_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    write_mixed(&node).await;
    let before = node.store().snapshot();
    assert_mixed_state(&before);
    node.shutdown().await.expect("shutdown");
    drop(node);

    let started = Instant::now();
    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    println!("reopened node: leader after {:?}", started.elapsed());
    let after = node.store().snapshot();
    assert_mixed_state(&after);
    assert_eq!(state_bytes(&before), state_bytes(&after));
    assert!(snapshot_files(dir.path()).is_empty(), "no snapshot was needed");
    // Still writable, indexes keep growing.
    let out = node.write(node_cmd(3)).await.expect("write after restart");
    assert!(out.index > before.latest_index());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn restart_from_snapshot_with_purged_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open_leader(small_snapshots(dir.path(), 5)).await;
    write_mixed(&node).await;
    for n in 10..54 {
        node.write(node_cmd(n)).await.expect("write");
    }
    // Snapshots are built in the background every 10 entries; wait for one past 40.
    let mut m = node.metrics();
    let deadline = Instant::now() + LEADER_WAIT;
    while m.snapshot_index < 40 || m.purged_index == 0 {
        assert!(Instant::now() < deadline, "no snapshot: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = node.metrics();
    }
    assert!(
        m.purged_index + 5 <= m.snapshot_index,
        "logs_to_keep respected: {m:?}"
    );
    let files = snapshot_files(dir.path());
    assert!(!files.is_empty() && files.len() <= 2, "{files:?}");
    let before = node.store().snapshot();
    node.shutdown().await.expect("shutdown");
    drop(node);

    let node = open_leader(small_snapshots(dir.path(), 5)).await;
    let m = node.metrics();
    assert!(m.snapshot_index >= 40, "restored from the snapshot: {m:?}");
    assert!(m.purged_index > 0, "{m:?}");
    let after = node.store().snapshot();
    assert_mixed_state(&after);
    assert_eq!(after.nodes().len(), 2 + 44);
    assert_eq!(state_bytes(&before), state_bytes(&after));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn snapshot_now_writes_a_file_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open_leader(RaftConfig {
        logs_to_keep: 0,
        ..RaftConfig::with_data_dir(dir.path())
    })
    .await;
    write_mixed(&node).await;
    node.snapshot_now().await.expect("snapshot");
    let m = node.metrics();
    assert_eq!(m.snapshot_index, m.last_applied);
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    let before = node.store().snapshot();
    node.shutdown().await.expect("shutdown");
    drop(node);

    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    assert_eq!(state_bytes(&before), state_bytes(&node.store().snapshot()));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn crash_without_shutdown_keeps_acknowledged_writes() {
    for threshold in [8192, 10] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RaftConfig {
            snapshot_threshold: threshold,
            logs_to_keep: 3,
            ..RaftConfig::with_data_dir(dir.path())
        };
        let node = open_leader(config.clone()).await;
        write_mixed(&node).await;
        let mut last = 0;
        for n in 10..40 {
            last = node.write(node_cmd(n)).await.expect("write").index;
        }
        let before = node.store().snapshot();
        drop(node); // no shutdown: the process "dies" here

        let node = open_leader(config).await;
        wait_applied(&node, last).await;
        let after = node.store().snapshot();
        assert_mixed_state(&after);
        assert_eq!(after.nodes().len(), 2 + 30, "threshold {threshold}");
        assert_eq!(state_bytes(&before), state_bytes(&after), "threshold {threshold}");
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    let m0 = node.metrics();
    let started = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let node = node.clone();
            tokio::spawn(async move { node.write(node_cmd(1000 + n)).await })
        })
        .collect();
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.push(t.await.expect("join").expect("write").index);
    }
    let elapsed = started.elapsed();
    let m1 = node.metrics();
    let commits = m1.log_commits - m0.log_commits;
    let entries = m1.log_entries_written - m0.log_entries_written;
    println!(
        "200 concurrent writes: {elapsed:?}, {:.0} writes/s, {commits} log commits for {entries} entries ({:.2} entries/commit)",
        200.0 / elapsed.as_secs_f64(),
        entries as f64 / commits.max(1) as f64
    );
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 200, "every write got its own index");
    assert_eq!(node.store().snapshot().nodes().len(), 200);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn sequential_write_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    let started = Instant::now();
    for n in 0..100 {
        node.write(node_cmd(n)).await.expect("write");
    }
    let elapsed = started.elapsed();
    println!(
        "100 sequential writes: {elapsed:?}, {:.0} writes/s",
        100.0 / elapsed.as_secs_f64()
    );
    node.shutdown().await.expect("shutdown");
}

/// Writes enough for two snapshot files and a purged log, then shuts down.
async fn two_snapshots(dir: &Path, logs_to_keep: u64) -> (Vec<PathBuf>, Arc<StateSnapshot>) {
    let node = open_leader(RaftConfig {
        logs_to_keep,
        ..RaftConfig::with_data_dir(dir)
    })
    .await;
    write_mixed(&node).await;
    node.snapshot_now().await.expect("snapshot 1");
    for n in 10..15 {
        node.write(node_cmd(n)).await.expect("write");
    }
    node.snapshot_now().await.expect("snapshot 2");
    let state = node.store().snapshot();
    node.shutdown().await.expect("shutdown");
    let files = snapshot_files(dir);
    assert_eq!(files.len(), 2, "{files:?}");
    (files, state)
}

fn flip_byte(path: &Path, at_fraction: f64) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = ((bytes.len() as f64) * at_fraction) as usize;
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test]
async fn damaged_snapshot_after_purge_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, _) = two_snapshots(dir.path(), 0).await;
    let newest = files.last().expect("newest").clone();
    flip_byte(&newest, 0.5);
    let err = RaftNode::open(RaftConfig::with_data_dir(dir.path()))
        .await
        .expect_err("damaged snapshot and purged log");
    let msg = err.to_string();
    assert!(matches!(err, RaftError::Storage(_)), "{err:?}");
    let name = newest.file_name().expect("name").to_string_lossy().to_string();
    assert!(msg.contains(&name), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    // Still refused the second time: the damaged file is not silently skipped.
    let again = RaftNode::open(RaftConfig::with_data_dir(dir.path()))
        .await
        .expect_err("still damaged");
    assert!(again.to_string().contains(&name), "{again}");
    // A missing snapshot under a purged log is refused too.
    std::fs::remove_file(&newest).expect("remove");
    let gone = RaftNode::open(RaftConfig::with_data_dir(dir.path()))
        .await
        .expect_err("snapshot missing");
    assert!(gone.to_string().contains("purged"), "{gone}");
}

#[tokio::test]
async fn damaged_snapshot_falls_back_when_the_log_covers_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, state) = two_snapshots(dir.path(), 1000).await;
    flip_byte(files.last().expect("newest"), 0.9);
    let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
    assert_eq!(state_bytes(&state), state_bytes(&node.store().snapshot()));
    assert!(
        snapshot_files(dir.path()).len() == 1,
        "the damaged file was set aside as .corrupt"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn damaged_log_file_is_an_error_naming_the_file() {
    for (what, damage) in [("garbage", 0u8), ("flipped", 1u8)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = open_leader(RaftConfig::with_data_dir(dir.path())).await;
        write_mixed(&node).await;
        node.shutdown().await.expect("shutdown");
        drop(node);
        let db = dir.path().join("raft/raft.db");
        if damage == 0 {
            std::fs::write(&db, vec![0xabu8; 64 * 1024]).expect("write");
        } else {
            let mut bytes = std::fs::read(&db).expect("read");
            // Damage every page after the header: checksums must catch it.
            for i in (4096..bytes.len()).step_by(512) {
                bytes[i] ^= 0xff;
            }
            std::fs::write(&db, bytes).expect("write");
        }
        match RaftNode::open(RaftConfig::with_data_dir(dir.path())).await {
            Err(RaftError::Storage(msg)) => assert!(msg.contains("raft.db"), "{what}: {msg}"),
            Err(other) => panic!("{what}: expected Storage, got {other:?}"),
            Ok(node) => {
                // redb repaired the file: then the state must still be a consistent prefix.
                println!("{what}: redb repaired the damaged file");
                node.shutdown().await.expect("shutdown");
            }
        }
    }
}

fn cluster_config(id: u64, dir: &Path, bootstrap: bool) -> RaftConfig {
    RaftConfig {
        node_id: id,
        addr: format!("node-{id}"),
        bootstrap,
        ..RaftConfig::with_data_dir(dir.join(format!("n{id}")))
    }
}

async fn leader_of(nodes: &[RaftNode]) -> RaftNode {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        if let Some(n) = nodes.iter().find(|n| n.is_leader()) {
            return n.clone();
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_in_process_nodes_elect_and_replicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = InProcessNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            net.open(cluster_config(id, dir.path(), false))
                .await
                .expect("open"),
        );
    }
    nodes[0]
        .initialize((1..=3).map(|id| (id, format!("node-{id}"))).collect())
        .await
        .expect("initialize");
    for n in &nodes {
        n.wait_for_leader(LEADER_WAIT).await.expect("leader known");
    }
    let leader = leader_of(&nodes).await;
    write_mixed(&leader).await;
    let last = *leader.applied().borrow();
    for n in &nodes {
        wait_applied(n, last).await;
        assert_eq!(
            state_bytes(&leader.store().snapshot()),
            state_bytes(&n.store().snapshot()),
            "node {} converged",
            n.node_id()
        );
    }
    let follower = nodes
        .iter()
        .find(|n| n.node_id() != leader.node_id())
        .expect("follower");
    match follower.write(node_cmd(9)).await {
        Err(RaftError::NotLeader {
            leader: Some((id, addr)),
        }) => {
            assert_eq!(id, leader.node_id());
            assert_eq!(addr, format!("node-{id}"));
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert_eq!(leader.metrics().voters, vec![1, 2, 3]);

    // The leader is cut off: the other two elect a new one and keep working.
    net.isolate(leader.node_id());
    let rest: Vec<RaftNode> = nodes
        .iter()
        .filter(|n| n.node_id() != leader.node_id())
        .cloned()
        .collect();
    let new_leader = leader_of(&rest).await;
    new_leader
        .write(node_cmd(10))
        .await
        .expect("write on the new leader");
    net.heal(leader.node_id());
    let last = *new_leader.applied().borrow();
    for n in &nodes {
        wait_applied(n, last).await;
        assert_eq!(n.store().snapshot().nodes().len(), 3, "node {}", n.node_id());
    }
    for n in &nodes {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_server_catches_up_through_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = InProcessNetwork::new();
    let n1 = net
        .open(RaftConfig {
            logs_to_keep: 0,
            ..cluster_config(1, dir.path(), true)
        })
        .await
        .expect("open 1");
    n1.wait_for_leader(LEADER_WAIT).await.expect("leader");
    write_mixed(&n1).await;
    for n in 10..30 {
        n1.write(node_cmd(n)).await.expect("write");
    }
    n1.snapshot_now().await.expect("snapshot");
    assert!(
        n1.metrics().purged_index > 1,
        "log purged: the new server needs the snapshot"
    );

    let n2 = net
        .open(cluster_config(2, dir.path(), false))
        .await
        .expect("open 2");
    tokio::time::timeout(Duration::from_secs(20), n1.add_voter(2, "node-2".into()))
        .await
        .expect("add_voter in time")
        .expect("add voter");
    let last = *n1.applied().borrow();
    wait_applied(&n2, last).await;
    assert_eq!(
        state_bytes(&n1.store().snapshot()),
        state_bytes(&n2.store().snapshot())
    );
    assert!(
        n2.metrics().snapshot_index > 0,
        "installed a snapshot: {:?}",
        n2.metrics()
    );
    assert!(!snapshot_files(&dir.path().join("n2")).is_empty());
    assert_eq!(n1.metrics().voters, vec![1, 2]);
    n2.shutdown().await.expect("shutdown");
    n1.shutdown().await.expect("shutdown");
}
