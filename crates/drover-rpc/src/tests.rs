//! Loopback tests: a real listener, a real HTTP/2 connection, a fake handler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_types::{Allocation, Node};
use tokio::sync::{oneshot, watch};

use super::*;

/// Knows one node (`n1`); its allocations change when `changes` is bumped.
struct Fake {
    changes: watch::Sender<u64>,
    heartbeats: AtomicU64,
}

impl NodeHandler for Fake {
    fn register(&self, req: RegisterRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>> {
        Box::pin(async move {
            if req.node.datacenter.is_empty() {
                return Err(RpcError::InvalidArgument(
                    "missing datacenter for client registration".into(),
                ));
            }
            Ok(NodeUpdateResponse {
                heartbeat_ttl: 10_000_000_000,
                index: 7,
                ..Default::default()
            })
        })
    }

    fn update_status(&self, req: UpdateStatusRequest) -> BoxFuture<'_, Result<NodeUpdateResponse, RpcError>> {
        Box::pin(async move {
            match req.node_id.as_str() {
                "n1" => {
                    self.heartbeats.fetch_add(1, Ordering::Relaxed);
                    Ok(NodeUpdateResponse {
                        heartbeat_ttl: 10_000_000_000,
                        ..Default::default()
                    })
                }
                "follower" => Err(RpcError::Unavailable {
                    message: "No cluster leader".into(),
                    leader: Some("127.0.0.9:4647".into()),
                }),
                _ => Err(RpcError::NotFound("node not found".into())),
            }
        })
    }

    fn get_client_allocs(
        &self,
        req: GetClientAllocsRequest,
    ) -> BoxFuture<'_, Result<GetClientAllocsResponse, RpcError>> {
        Box::pin(async move {
            let mut rx = self.changes.subscribe();
            let wait = Duration::from_nanos(req.max_wait as u64);
            let _ = tokio::time::timeout(wait, rx.wait_for(|i| *i > req.min_index)).await;
            let index = *rx.borrow();
            let mut allocs = BTreeMap::new();
            allocs.insert("a1".to_string(), index);
            Ok(GetClientAllocsResponse { allocs, index })
        })
    }

    fn get_allocs(&self, req: GetAllocsRequest) -> BoxFuture<'_, Result<GetAllocsResponse, RpcError>> {
        Box::pin(async move {
            let allocs = req
                .alloc_ids
                .into_iter()
                .map(|id| Allocation {
                    // Big enough to pass tonic's default 4 MiB limit when many are asked for.
                    client_description: "x".repeat(64 * 1024),
                    id,
                    ..Default::default()
                })
                .collect();
            Ok(GetAllocsResponse { allocs, index: 9 })
        })
    }

    fn update_alloc(&self, req: UpdateAllocRequest) -> BoxFuture<'_, Result<UpdateAllocResponse, RpcError>> {
        Box::pin(async move {
            Ok(UpdateAllocResponse {
                index: req.allocs.len() as u64,
            })
        })
    }
}

async fn start() -> (
    String,
    Arc<Fake>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), RpcError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let fake = Arc::new(Fake {
        changes: watch::Sender::new(1),
        heartbeats: AtomicU64::new(0),
    });
    let (tx, rx) = oneshot::channel::<()>();
    let handler: Arc<dyn NodeHandler> = fake.clone();
    let task = tokio::spawn(serve(listener, handler, async move {
        let _ = rx.await;
    }));
    (addr, fake, tx, task)
}

#[tokio::test]
async fn calls_round_trip_and_errors_keep_their_kind() {
    let (addr, fake, stop, task) = start().await;
    let c = NodeClient::connect(&addr).await.expect("connect");

    let node = Node {
        id: "n1".into(),
        datacenter: "dc1".into(),
        name: "sim-00001".into(),
        ..Default::default()
    };
    let r = c.register(node.clone()).await.expect("register");
    assert_eq!(r.ttl(), Duration::from_secs(10));
    assert_eq!(r.index, 7);

    let bad = c.register(Node::default()).await.expect_err("no datacenter");
    assert_eq!(
        bad,
        RpcError::InvalidArgument("missing datacenter for client registration".into())
    );

    c.update_status("n1", "ready").await.expect("heartbeat");
    assert_eq!(fake.heartbeats.load(Ordering::Relaxed), 1);
    let e = c.update_status("nope", "ready").await.expect_err("unknown node");
    assert_eq!(e, RpcError::NotFound("node not found".into()));
    let e = c.update_status("follower", "ready").await.expect_err("no leader");
    assert_eq!(
        e,
        RpcError::Unavailable {
            message: "No cluster leader".into(),
            leader: Some("127.0.0.9:4647".into())
        }
    );
    assert!(e.is_retryable());

    let r = c
        .update_alloc("n1", vec![client_update(&Allocation::default()); 3])
        .await
        .expect("update");
    assert_eq!(r.index, 3);

    // An unknown method is a clear, non-retryable error.
    let e = c
        .rpc()
        .unary::<UpdateStatusRequest, NodeUpdateResponse>(
            "/drover.Node/NoSuchMethod",
            UpdateStatusRequest::default(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("unimplemented");
    assert!(
        matches!(e, RpcError::Internal(ref m) if m.contains("NoSuchMethod")),
        "{e:?}"
    );

    let _ = stop.send(());
    task.await.expect("join").expect("serve");
}

#[tokio::test]
async fn messages_above_four_mebibytes_pass() {
    let (addr, _fake, _stop, _task) = start().await;
    let c = NodeClient::connect(&addr).await.expect("connect");
    let ids: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
    let r = c.get_allocs(ids).await.expect("6.4 MB answer");
    assert_eq!(r.allocs.len(), 100);
    assert_eq!(r.allocs[99].id, "a99");
}

#[tokio::test]
async fn blocking_queries_do_not_starve_other_calls_on_the_same_connection() {
    let (addr, fake, _stop, _task) = start().await;
    let c = NodeClient::connect(&addr).await.expect("connect");
    // More parked long polls than hyper's default stream limit (200) on one connection.
    let mut polls = Vec::new();
    for _ in 0..600 {
        let c = c.clone();
        polls.push(tokio::spawn(async move {
            c.get_client_allocs("n1", 1, Duration::from_secs(60)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    c.update_status("n1", "ready")
        .await
        .expect("heartbeat while 600 polls wait");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "heartbeat waited {:?}",
        t.elapsed()
    );

    fake.changes.send_replace(2);
    let mut errs = Vec::new();
    for p in polls {
        match p.await.expect("join") {
            Ok(r) => {
                assert_eq!(r.index, 2);
                assert_eq!(r.allocs.get("a1"), Some(&2));
            }
            Err(e) => errs.push(e),
        }
    }
    assert!(
        errs.is_empty(),
        "{} failed, first: {:?}",
        errs.len(),
        errs.first()
    );
}

#[tokio::test]
async fn a_blocking_query_answers_at_max_wait() {
    let (addr, _fake, _stop, _task) = start().await;
    let c = NodeClient::connect(&addr).await.expect("connect");
    let t = Instant::now();
    let r = c
        .get_client_allocs("n1", 1, Duration::from_millis(200))
        .await
        .expect("timeout answer");
    assert_eq!(r.index, 1, "nothing changed: index not above MinQueryIndex");
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let e = NodeClient::connect(&addr).await.expect_err("refused");
    assert!(e.is_retryable(), "{e:?}");
    let lazy = NodeClient::connect_lazy(&addr).expect("lazy");
    let e = lazy.update_status("n1", "ready").await.expect_err("refused");
    assert!(e.is_retryable(), "{e:?}");
    let e = NodeClient::connect_lazy("not an address").expect_err("bad address");
    assert!(matches!(e, RpcError::InvalidArgument(_)), "{e:?}");
}

/// Not a test: unary calls per second through the RPC layer alone (fake handler, loopback, one
/// connection, 64 concurrent callers).
/// `cargo test --release -p drover-rpc -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn throughput() {
    let (addr, _fake, _stop, _task) = start().await;
    let c = NodeClient::connect(&addr).await.expect("connect");
    for (label, concurrency) in [("sequential", 1usize), ("64 concurrent", 64)] {
        let t = Instant::now();
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                while t.elapsed() < Duration::from_secs(3) {
                    c.update_status("n1", "ready").await.expect("heartbeat");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        let n = calls.load(Ordering::Relaxed);
        eprintln!(
            "{label}: {n} calls in {:?} = {:.0}/s",
            t.elapsed(),
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
}
