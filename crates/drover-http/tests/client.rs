//! The node-local `/v1/client/*` endpoints end to end: a real server (in-memory log) with its
//! node RPC on a socket, a real client agent running tasks through the mock driver (which
//! writes real rotating log files into the real allocation directory), and the router bound
//! to 127.0.0.1, driven with reqwest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use drover_client::{Client, ClientConfig};
use drover_drivers::mock::MockDriver;
use drover_http::{AgentInfo, router, router_with_client, serve};
use drover_server::{MemLog, Server, ServerConfig};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Agent {
    server: Server,
    client: Client,
    mock: Arc<MockDriver>,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    stops: Vec<oneshot::Sender<()>>,
}

async fn serve_http(app: axum::Router) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, async move {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

impl Agent {
    async fn start() -> Agent {
        let server = Server::start(
            ServerConfig {
                num_schedulers: 1,
                ..Default::default()
            },
            Arc::new(MemLog::new()),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind rpc");
        let rpc_addr = listener.local_addr().expect("rpc addr").to_string();
        let (rpc_tx, rpc_rx) = oneshot::channel::<()>();
        let handler: Arc<dyn drover_rpc::NodeHandler> = Arc::new(server.clone());
        tokio::spawn(drover_rpc::serve(listener, handler, async move {
            let _ = rpc_rx.await;
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        let mock = Arc::new(MockDriver::new());
        let mut cfg = ClientConfig::new(dir.path(), vec![rpc_addr]);
        cfg.drivers = vec![mock.clone()];
        cfg.node_name = "client-test".into();
        cfg.destroy_on_shutdown = true;
        let client = Client::start(cfg).await.expect("client start");
        assert!(
            client.wait_registered(Duration::from_secs(20)).await,
            "the client did not register"
        );
        let node_id = client.node_id();
        wait_until(Duration::from_secs(20), "node ready", || {
            server
                .snapshot()
                .node(&node_id)
                .is_some_and(|n| n.status == "ready")
        })
        .await;
        let mut info = AgentInfo::for_server(&server);
        info.client = Some(drover_http::ClientInfo {
            node_id: node_id.clone(),
            servers: vec![],
        });
        let (base, http_tx) =
            serve_http(router_with_client(server.clone(), info, Some(client.clone()))).await;
        Agent {
            server,
            client,
            mock,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
            stops: vec![rpc_tx, http_tx],
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.expect("body"))
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.expect("body"))
    }

    /// Runs a job and waits until every task of its one allocation runs; returns the alloc ID.
    async fn run(&self, job: Value) -> String {
        let job_id = job["ID"].as_str().expect("ID").to_string();
        let (status, body) = self.post("/v1/jobs", &json!({ "Job": job })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut alloc_id = String::new();
        wait_until(Duration::from_secs(30), "allocation placed", || {
            let allocs = self.server.snapshot().allocs_by_job("default", &job_id);
            match allocs.first() {
                Some(a) => {
                    alloc_id = a.id.clone();
                    true
                }
                None => false,
            }
        })
        .await;
        wait_until(Duration::from_secs(30), "tasks running", || {
            self.client
                .runner(&alloc_id)
                .is_some_and(|r| r.tasks().iter().all(|t| t.state().state == "running"))
        })
        .await;
        alloc_id
    }

    async fn stop(mut self) {
        self.client.shutdown().await;
        self.server.shutdown();
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
    }
}

async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mock_task(name: &str, config: Value) -> Value {
    json!({
        "Name": name,
        "Driver": "mock",
        "Config": config,
        "Resources": {"CPU": 100, "MemoryMB": 64},
        "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10},
        "KillTimeout": 1_000_000_000_i64
    })
}

fn job(id: &str, tasks: Vec<Value>) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 2, "Interval": 1_800_000_000_000_i64, "Delay": 100_000_000_i64, "Mode": "fail"},
            "EphemeralDisk": {"SizeMB": 300},
            "Tasks": tasks
        }]
    })
}

/// Splits a concatenation of JSON frames.
fn frames(body: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map(|f| f.expect("a JSON frame"))
        .collect()
}

fn frame_data(f: &Value) -> Vec<u8> {
    f.get("Data")
        .and_then(Value::as_str)
        .map(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d)
                .expect("base64 Data")
        })
        .unwrap_or_default()
}

const ONCE: &str = "line one\nline two\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_plain_framed_tail_rotation_and_follow() {
    let a = Agent::start().await;
    let alloc = a
        .run(job(
            "logs",
            vec![
                mock_task("once", json!({"run_for": "1h", "stdout_string": ONCE})),
                mock_task(
                    "ticker",
                    json!({"run_for": "1h", "stdout_string": "tick\n", "stdout_repeat": 10_000, "stdout_repeat_duration": "200ms"}),
                ),
            ],
        ))
        .await;
    let logs = |q: &str| format!("/v1/client/fs/logs/{alloc}?{q}");
    let wait_for_output = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = a.get(&logs("task=once&type=stdout&plain=true")).await;
            if body == ONCE {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the task's output never arrived: {body:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for_output.await;

    // Framed: base64 data, the file relative to the allocation, the offset after the data.
    let r = a
        .http
        .get(format!("{}{}", a.base, logs("task=once&type=stdout")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let fs = frames(&r.bytes().await.expect("body"));
    let data: Vec<u8> = fs.iter().flat_map(frame_data).collect();
    assert_eq!(String::from_utf8_lossy(&data), ONCE);
    let last = fs.last().expect("a frame");
    assert_eq!(last["File"], "alloc/logs/once.stdout.0");
    assert_eq!(last["Offset"], ONCE.len());

    // The tail: origin=end with an offset in bytes.
    let (_, tail) = a
        .get(&logs("task=once&type=stdout&plain=true&origin=end&offset=9"))
        .await;
    assert_eq!(tail, "line two\n");
    let (_, from) = a.get(&logs("task=once&type=stdout&plain=true&offset=5")).await;
    assert_eq!(from, "one\nline two\n");

    // Rotated files are read in index order (numeric, not by name), also for the tail.
    let dir = a.client.alloc_dir(&alloc).expect("alloc dir").join("alloc/logs");
    for (i, text) in [(2, "a\n"), (9, "b\n"), (10, "c\n")] {
        std::fs::write(dir.join(format!("once.stderr.{i}")), text).expect("write log");
    }
    let (_, all) = a.get(&logs("task=once&type=stderr&plain=true")).await;
    assert_eq!(all, "a\nb\nc\n");
    let (_, tail) = a
        .get(&logs("task=once&type=stderr&plain=true&origin=end&offset=4"))
        .await;
    assert_eq!(tail, "b\nc\n");

    // Following: everything so far, a `{}` when caught up, then what is written later —
    // including a file the rotation starts afterwards.
    let resp = a
        .http
        .get(format!("{}{}", a.base, logs("task=once&type=stderr&follow=true")))
        .send()
        .await
        .expect("follow");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut wrote = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(&seen).ends_with("d\n") {
        assert!(
            Instant::now() < deadline,
            "follow never showed the new file: {:?}",
            String::from_utf8_lossy(&seen)
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("a chunk within 5 s (heartbeats come every second)")
            .expect("the stream is still open")
            .expect("chunk");
        buf.extend_from_slice(&chunk);
        let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        let mut heartbeat = false;
        for f in de.by_ref() {
            let Ok(f) = f else { break };
            if f == json!({}) {
                heartbeat = true;
            }
            seen.extend(frame_data(&f));
        }
        let used = de.byte_offset();
        buf.drain(..used);
        if heartbeat && !wrote {
            assert_eq!(
                String::from_utf8_lossy(&seen),
                "a\nb\nc\n",
                "caught up before the heartbeat"
            );
            std::fs::write(dir.join("once.stderr.11"), "d\n").expect("write log");
            wrote = true;
        }
    }
    drop(body);

    // A following plain stream of a live task sees new lines.
    let resp = a
        .http
        .get(format!(
            "{}{}",
            a.base,
            logs("task=ticker&type=stdout&follow=true&plain=true&origin=end&offset=0")
        ))
        .send()
        .await
        .expect("follow ticker");
    let mut body = resp.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("a new tick within 5 s")
        .expect("open")
        .expect("chunk");
    assert!(String::from_utf8_lossy(&chunk).contains("tick\n"), "{chunk:?}");
    drop(body);

    // Bad requests.
    for (q, want) in [
        ("type=stdout", "must provide task name"),
        ("task=once", "must provide log type (stdout/stderr)"),
        (
            "task=once&type=stdout&origin=middle",
            "origin must be start or end",
        ),
        ("task=nope&type=stdout", "does not have task with name \"nope\""),
    ] {
        let (status, body) = a.get(&logs(q)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_system_ls_stat_cat_and_escapes() {
    let a = Agent::start().await;
    let alloc = a
        .run(job(
            "fs",
            vec![mock_task(
                "web",
                json!({"run_for": "1h", "stdout_string": "hello\n"}),
            )],
        ))
        .await;
    let root = a.client.alloc_dir(&alloc).expect("alloc dir");
    std::fs::write(root.join("web/local/index.html"), "<h1>hi</h1>\n").expect("write");
    std::os::unix::fs::symlink("/etc", root.join("web/local/etc")).expect("symlink");

    let top = a.get_json(&format!("/v1/client/fs/ls/{alloc}")).await;
    let names: Vec<&str> = top
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["Name"].as_str().expect("Name"))
        .collect();
    assert!(names.contains(&"alloc") && names.contains(&"web"), "{names:?}");
    let alloc_entry = top
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["Name"] == "alloc")
        .expect("alloc");
    assert_eq!(alloc_entry["IsDir"], true);
    assert!(
        alloc_entry["FileMode"]
            .as_str()
            .expect("FileMode")
            .starts_with('d')
    );
    assert!(alloc_entry["ModTime"].as_str().expect("ModTime").contains('T'));

    let local = a
        .get_json(&format!("/v1/client/fs/ls/{alloc}?path=/web/local"))
        .await;
    let link = local
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["Name"] == "etc")
        .expect("etc link");
    assert!(
        link["FileMode"].as_str().expect("mode").starts_with('L'),
        "{link}"
    );

    let st = a
        .get_json(&format!("/v1/client/fs/stat/{alloc}?path=/web/local/index.html"))
        .await;
    assert_eq!(st["Name"], "index.html");
    assert_eq!(st["IsDir"], false);
    assert_eq!(st["Size"], 12);
    assert_eq!(st["ContentType"], "text/plain; charset=utf-8");
    assert!(st["FileMode"].as_str().expect("mode").starts_with('-'));

    let (status, body) = a
        .get(&format!("/v1/client/fs/cat/{alloc}?path=web/local/index.html"))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>hi</h1>\n"));
    let (status, body) = a
        .get(&format!(
            "/v1/client/fs/readat/{alloc}?path=web/local/index.html&offset=4&limit=2"
        ))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hi"));

    for path in [
        "..",
        "/../../etc/passwd",
        "web/local/../../../x",
        "web/local/etc/passwd",
        "web/local/etc",
    ] {
        for op in ["ls", "stat", "cat"] {
            let (status, body) = a.get(&format!("/v1/client/fs/{op}/{alloc}?path={path}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{op} {path}: {body}");
            assert!(
                body.contains("escapes the allocation directory"),
                "{op} {path}: {body}"
            );
        }
    }
    let (status, body) = a.get(&format!("/v1/client/fs/stat/{alloc}?path=web/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = a.get(&format!("/v1/client/fs/cat/{alloc}?path=web")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    std::fs::write(root.join("web/secrets/token"), "s3cret").expect("write secret");
    let (status, body) = a
        .get(&format!("/v1/client/fs/cat/{alloc}?path=web/secrets/token"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.contains("s3cret"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_signal_stats_and_unknown_allocations() {
    let a = Agent::start().await;
    let alloc = a
        .run(job("ops", vec![mock_task("web", json!({"run_for": "1h"}))]))
        .await;
    let runner = a.client.runner(&alloc).expect("runner");
    let task = runner.tasks()[0].clone();
    let started = |t: &drover_client::taskrunner::TaskRunner| {
        t.state()
            .events
            .iter()
            .filter(|e| e.event_type == "Started")
            .count()
    };
    assert_eq!(started(&task), 1);

    // Restart (empty body = every running task): a `Restart Signaled` event and a new start.
    let (status, body) = a
        .post(&format!("/v1/client/allocation/{alloc}/restart"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["Index"], 0);
    wait_until(Duration::from_secs(20), "a second start", || started(&task) == 2).await;
    assert!(
        task.state()
            .events
            .iter()
            .any(|e| e.event_type == "Restart Signaled")
    );
    let (status, body) = a
        .post(
            &format!("/v1/client/allocation/{alloc}/restart"),
            &json!({"TaskName": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    wait_until(Duration::from_secs(20), "running again", || {
        task.state().state == "running"
    })
    .await;

    // Signal: reaches the driver, and shows as a task event.
    let (status, body) = a
        .post(
            &format!("/v1/client/allocation/{alloc}/signal"),
            &json!({"Task": "web", "Signal": "SIGUSR1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task.handle().expect("handle").config.id;
    assert_eq!(a.mock.signals(&task_id), vec!["SIGUSR1".to_string()]);
    assert!(task.state().events.iter().any(|e| e.event_type == "Signaling"));
    let (status, body) = a
        .post(
            &format!("/v1/client/allocation/{alloc}/signal"),
            &json!({"Signal": "SIGNOPE"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Invalid signal"), "{body}");

    // Stats shapes.
    let s = a.get_json(&format!("/v1/client/allocation/{alloc}/stats")).await;
    for k in ["MemoryStats", "CpuStats"] {
        assert!(s["ResourceUsage"][k].is_object(), "{k}: {s}");
    }
    assert!(s["ResourceUsage"]["MemoryStats"]["RSS"].is_u64(), "{s}");
    assert!(s["ResourceUsage"]["CpuStats"]["Percent"].is_number(), "{s}");
    assert!(s["Tasks"]["web"]["ResourceUsage"]["CpuStats"].is_object(), "{s}");
    assert!(s["Tasks"]["web"]["Timestamp"].as_i64().expect("Timestamp") > 0);
    assert!(s["Timestamp"].as_i64().expect("Timestamp") > 0);
    let h = a.get_json("/v1/client/stats").await;
    assert!(h["Memory"]["Total"].as_u64().expect("Total") > 0, "{h}");
    for k in ["Available", "Used", "Free"] {
        assert!(h["Memory"][k].is_u64(), "{k}: {h}");
    }
    assert!(!h["CPU"].as_array().expect("CPU").is_empty());
    assert!(h["CPU"][0]["TotalPercent"].is_number());
    assert!(h["Uptime"].as_u64().expect("Uptime") > 0);
    assert!(h["DiskStats"].is_array());
    assert!(h["Timestamp"].as_i64().expect("Timestamp") > 0);
    let node = a.client.node_id();
    a.get_json(&format!("/v1/client/stats?node_id={node}")).await;
    let (status, _) = a.get("/v1/client/stats?node_id=somebody-else").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Allocations this client does not run.
    let ghost = "00000000-0000-0000-0000-000000000000";
    for (status, body) in [
        a.get(&format!("/v1/client/fs/logs/{ghost}?task=web&type=stdout"))
            .await,
        a.get(&format!("/v1/client/fs/ls/{ghost}")).await,
        a.get(&format!("/v1/client/allocation/{ghost}/stats")).await,
        a.post(&format!("/v1/client/allocation/{ghost}/restart"), &json!({}))
            .await,
        a.post(&format!("/v1/client/allocation/{ghost}/signal"), &json!({}))
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body, format!("Unknown allocation \"{ghost}\""));
    }
    let (status, _) = a.get(&format!("/v1/client/allocation/{alloc}/restart")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = a.get(&format!("/v1/client/allocation/{alloc}/exec")).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    a.stop().await;
}

#[tokio::test]
async fn an_agent_without_a_client_says_so() {
    let server = Server::start(ServerConfig::default(), Arc::new(MemLog::new()));
    let (base, stop) = serve_http(router(server.clone(), AgentInfo::for_server(&server))).await;
    let http = reqwest::Client::new();
    for path in [
        "/v1/client/stats",
        "/v1/client/fs/logs/abc?task=web&type=stdout",
        "/v1/client/allocation/abc/stats",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let body = r.text().await.expect("body");
        assert!(body.contains("not running a client"), "{path}: {body}");
    }
    let _ = stop.send(());
    server.shutdown();
}
