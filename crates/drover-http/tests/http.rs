//! End-to-end tests of the `/v1` API: a real [`Server`] (in-memory log, real state store,
//! real scheduler workers), the real router bound to a real socket on 127.0.0.1, driven with
//! reqwest exactly as a Nomad client would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_http::{AgentInfo, router, serve};
use drover_server::{MemLog, Server, ServerConfig};
use drover_testkit::mock;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One agent under test.
struct Agent {
    server: Server,
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn index(&self) -> u64 {
        self.headers
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Nomad-Index in {:?}", self.headers))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn ok(self) -> Self {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        self
    }
}

impl Agent {
    async fn start() -> Agent {
        let config = ServerConfig {
            num_schedulers: 2,
            ..Default::default()
        };
        let server = Server::start(config, Arc::new(MemLog::new()));
        let app = router(server.clone(), AgentInfo::for_server(&server));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, app, async move {
            let _ = rx.await;
        }));
        Agent {
            server,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            stop: Some(tx),
            served: Some(served),
        }
    }

    /// Registers `n` ready mock nodes (4000 MHz, 8192 MB each).
    async fn add_nodes(&self, n: u64) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 1..=n {
            let node = mock::node(i);
            let id = node.id.clone();
            self.server.register_node(node).await.expect("register node");
            self.server
                .update_node_status(&id, "ready")
                .await
                .expect("node ready");
            ids.push(id);
        }
        ids
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// Polls `path` until `done` accepts the JSON (10 s at most).
    async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(path).await;
            if r.status == StatusCode::OK {
                let v = r.json();
                if done(&v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "timed out polling {path}: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the evaluation to finish and returns it.
    async fn eval_done(&self, eval_id: &str) -> Value {
        self.poll(&format!("/v1/evaluation/{eval_id}?related=true"), |e| {
            e["Status"] != "pending"
        })
        .await
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.served.take() {
            let done = tokio::time::timeout(Duration::from_secs(5), h).await;
            assert!(done.is_ok(), "serve did not stop within 5 s");
        }
        self.server.shutdown();
    }
}

/// A job body the way the Go API client and python scripts write it.
fn nomad_job(id: &str, count: i64, memory_mb: i64) -> Value {
    json!({
        "Job": {
            "ID": id,
            "Name": id,
            "Type": "service",
            "Datacenters": ["dc1"],
            "Priority": 50,
            "TaskGroups": [{
                "Name": "cache",
                "Count": count,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "db", "To": 6379}]}],
                "RestartPolicy": {"Attempts": 2, "Interval": 1_800_000_000_000_i64, "Delay": 15_000_000_000_i64, "Mode": "fail"},
                "EphemeralDisk": {"SizeMB": 300},
                "Tasks": [{
                    "Name": "redis",
                    "Driver": "docker",
                    "Config": {"image": "redis:7", "ports": ["db"]},
                    "Resources": {"CPU": 500, "MemoryMB": memory_mb},
                    "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10},
                    "KillTimeout": 5_000_000_000_i64
                }]
            }],
            "Update": {"MaxParallel": 1, "MinHealthyTime": 10_000_000_000_i64, "HealthyDeadline": 180_000_000_000_i64}
        }
    })
}

/// Registers a job and waits until its evaluation finished.
async fn run_job(a: &Agent, body: &Value) -> Value {
    let r = a.put("/v1/jobs", body).await.ok();
    let reg = r.json();
    assert_eq!(reg["Index"].as_u64(), Some(r.index()));
    let eval_id = reg["EvalID"].as_str().expect("EvalID").to_string();
    a.eval_done(&eval_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nomad_json_job_runs_and_every_view_shows_it() {
    let a = Agent::start().await;
    let nodes = a.add_nodes(2).await;

    // python-nomad POSTs; the Go client PUTs: both register.
    let r = a.post("/v1/jobs", &nomad_job("example", 3, 256)).await.ok();
    let reg = r.json();
    for k in [
        "EvalID",
        "EvalCreateIndex",
        "JobModifyIndex",
        "Warnings",
        "Index",
        "KnownLeader",
        "LastContact",
    ] {
        assert!(reg.get(k).is_some(), "register response lacks {k}: {reg}");
    }
    let eval = a.eval_done(reg["EvalID"].as_str().expect("EvalID")).await;
    assert_eq!(eval["Status"], "complete", "{eval}");
    assert_eq!(eval["TriggeredBy"], "job-register");

    let allocs = a
        .poll("/v1/job/example/allocations", |v| {
            v.as_array().is_some_and(|l| l.len() == 3)
        })
        .await;
    let stub = &allocs[0];
    for k in [
        "ID",
        "EvalID",
        "Name",
        "Namespace",
        "NodeID",
        "JobID",
        "JobType",
        "JobVersion",
        "TaskGroup",
        "DesiredStatus",
        "ClientStatus",
        "CreateIndex",
        "ModifyIndex",
        "CreateTime",
    ] {
        assert!(stub.get(k).is_some(), "alloc stub lacks {k}: {stub}");
    }
    assert!(stub.get("Job").is_none(), "stubs carry no Job");
    assert!(
        stub.get("AllocatedResources").is_none(),
        "only with ?resources=true"
    );
    assert!(nodes.contains(&stub["NodeID"].as_str().unwrap_or_default().to_string()));

    // The full allocation embeds the job (the CLI's `alloc logs` needs its task list).
    let id = stub["ID"].as_str().expect("alloc ID");
    let r = a.get(&format!("/v1/allocation/{id}")).await.ok();
    let alloc = r.json();
    assert_eq!(alloc["Job"]["ID"], "example");
    assert_eq!(alloc["Job"]["TaskGroups"][0]["Tasks"][0]["Name"], "redis");
    assert_eq!(r.header("X-Nomad-KnownLeader").as_deref(), Some("true"));
    assert_eq!(r.header("X-Nomad-LastContact").as_deref(), Some("0"));
    assert!(r.index() >= 1);

    // Stored job: defaults filled, server fields set.
    let job = a.get("/v1/job/example").await.ok().json();
    assert_eq!(job["Namespace"], "default");
    assert_eq!(job["Region"], "global");
    assert_eq!(job["Status"], "running");
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"], 256);

    // List stubs embed the summary with its namespace (the CLI resolves jobs through it).
    let list = a.get("/v1/jobs").await.ok().json();
    let stub = &list[0];
    assert_eq!(stub["ID"], "example");
    assert_eq!(stub["JobSummary"]["Namespace"], "default");
    assert_eq!(stub["Periodic"], false);
    assert_eq!(stub["ParameterizedJob"], false);
    assert!(stub.get("Meta").is_none(), "Meta only with ?meta=true");
    assert!(stub.get("TaskGroups").is_none(), "a stub, not the job");
    let with_meta = a.get("/v1/jobs?meta=true").await.ok().json();
    assert!(with_meta[0].get("Meta").is_some());

    let summary = a.get("/v1/job/example/summary").await.ok().json();
    assert_eq!(summary["JobID"], "example");
    let s = &summary["Summary"]["cache"];
    assert_eq!(
        s["Starting"].as_i64().unwrap_or(0)
            + s["Running"].as_i64().unwrap_or(0)
            + s["Queued"].as_i64().unwrap_or(0),
        3,
        "{summary}"
    );

    let evals = a.get("/v1/job/example/evaluations").await.ok().json();
    assert_eq!(evals.as_array().map(Vec::len), Some(1));
    let versions = a.get("/v1/job/example/versions?diffs=true").await.ok().json();
    assert_eq!(versions["Versions"][0]["Version"], 0);
    assert!(versions["Diffs"].as_array().is_some_and(Vec::is_empty));

    // The scheduler made a deployment for the service job; the CLI follows it.
    let dep = a.get("/v1/job/example/deployment").await.ok().json();
    assert!(
        dep.is_object(),
        "a service job with an update block gets a deployment: {dep}"
    );
    {
        let dep_id = dep["ID"].as_str().expect("deployment ID");
        let d = a.get(&format!("/v1/deployment/{dep_id}")).await.ok().json();
        assert_eq!(d["JobID"], "example");
        let da = a
            .get(&format!("/v1/deployment/allocations/{dep_id}"))
            .await
            .ok()
            .json();
        assert_eq!(da.as_array().map(Vec::len), Some(3));
        let all = a.get("/v1/deployments").await.ok().json();
        assert_eq!(all.as_array().map(Vec::len), Some(1));
    }
    let deps = a.get("/v1/job/example/deployments").await.ok().json();
    assert!(deps.is_array());

    // Node allocations are full allocations.
    let node_allocs = a
        .get(&format!("/v1/node/{}/allocations", nodes[0]))
        .await
        .ok()
        .json();
    for al in node_allocs.as_array().expect("array") {
        assert_eq!(al["Job"]["ID"], "example");
    }
    let eval_allocs = a
        .get(&format!(
            "/v1/evaluation/{}/allocations",
            eval["ID"].as_str().unwrap_or_default()
        ))
        .await
        .ok()
        .json();
    assert_eq!(eval_allocs.as_array().map(Vec::len), Some(3));

    // Stop one allocation: an alloc-stop evaluation.
    let r = a
        .post(&format!("/v1/allocation/{id}/stop"), &json!({}))
        .await
        .ok();
    let stop = r.json();
    assert!(stop["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(stop["Index"].as_u64(), Some(r.index()));

    // Deregister (no purge): the job stays, stopped.
    let r = a.delete("/v1/job/example").await.ok();
    let dereg = r.json();
    assert!(dereg.get("EvalID").is_some() && dereg.get("VolumeEvalID").is_some());
    let job = a.get("/v1/job/example").await.ok().json();
    assert_eq!(job["Stop"], true);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_job_parsed_then_registered() {
    let a = Agent::start().await;
    a.add_nodes(1).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/nomad-v1.6.5/e2e/isolation/input/raw_exec.hcl"
    );
    let hcl = std::fs::read_to_string(path).expect("corpus file /work/shared/corpus/... readable");

    // Without Canonicalize: only what was written (the input shape).
    let raw = a
        .post("/v1/jobs/parse", &json!({"JobHCL": hcl}))
        .await
        .ok()
        .json();
    assert_eq!(raw["ID"], "raw_exec");
    assert_eq!(raw["Type"], "batch");
    assert!(
        raw.get("Priority").is_none_or(Value::is_null),
        "no defaults without Canonicalize: {raw}"
    );

    // With Canonicalize: Nomad's defaults filled in.
    let job = a
        .post("/v1/jobs/parse", &json!({"JobHCL": hcl, "Canonicalize": true}))
        .await
        .ok()
        .json();
    assert_eq!(job["Priority"], 50);
    assert_eq!(job["Namespace"], "default");

    let eval = run_job(&a, &json!({"Job": job})).await;
    assert_eq!(eval["Status"], "complete", "{eval}");
    let allocs = a
        .poll("/v1/job/raw_exec/allocations", |v| {
            v.as_array().is_some_and(|l| l.len() == 1)
        })
        .await;
    assert_eq!(allocs[0]["TaskGroup"], "group");
    assert_eq!(allocs[0]["JobType"], "batch");

    // Errors: empty spec, bad HCL.
    let r = a.post("/v1/jobs/parse", &json!({"JobHCL": ""})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Job spec is empty")
    );
    let r = a
        .post("/v1/jobs/parse", &json!({"JobHCL": "job \"x\" { group \"g\" {"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.starts_with("Failed to parse job: "), "{}", r.text);

    // HCL variables from the request body.
    let with_vars = r#"
variable "count" { type = number }
job "vars" {
  group "g" {
    count = var.count
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}"#;
    let parsed = a
        .post(
            "/v1/jobs/parse",
            &json!({"JobHCL": with_vars, "Variables": "count = 4\n"}),
        )
        .await
        .ok()
        .json();
    assert_eq!(parsed["TaskGroups"][0]["Count"], 4, "{parsed}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_query_returns_on_change_and_times_out_otherwise() {
    let a = Agent::start().await;
    a.add_nodes(2).await;
    run_job(&a, &nomad_job("blocky", 1, 128)).await;
    a.poll("/v1/job/blocky/allocations", |v| {
        v.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    let r = a.get("/v1/job/blocky/allocations").await.ok();
    let index = r.index();

    // Nothing changes: the request is held for `wait` and answers with the same index.
    let started = Instant::now();
    let r = a
        .get(&format!("/v1/job/blocky/allocations?index={index}&wait=400ms"))
        .await
        .ok();
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(400), "returned after {held:?}");
    assert!(held < Duration::from_secs(3), "held for {held:?}");
    assert_eq!(r.index(), index);

    // A change (scale to 2) wakes the waiting request with a larger index.
    let url = format!("{}/v1/job/blocky/allocations?index={index}&wait=30s", a.base);
    let http = a.http.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let resp = http.get(url).send().await.expect("blocking request");
        let idx: u64 = resp
            .headers()
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("index header");
        let body: Value = resp.json().await.expect("json");
        (started.elapsed(), idx, body)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the blocking query returned before anything changed"
    );
    let r = a
        .post(
            "/v1/job/blocky/scale",
            &json!({"Count": 2, "Target": {"Job": "blocky", "Group": "cache"}}),
        )
        .await
        .ok();
    assert!(r.json()["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    let (took, new_index, body) = waiting.await.expect("task");
    assert!(new_index > index, "{new_index} <= {index}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(body.is_array());

    // Single objects block on their own ModifyIndex; a bad index is a 400.
    let r = a.get("/v1/job/blocky?index=abc").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Invalid index")
    );
    let r = a.get("/v1/job/blocky?index=1&wait=forever").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Invalid wait time")
    );
    let job = a.get("/v1/job/blocky").await.ok();
    let modify = job.json()["ModifyIndex"].as_u64().expect("ModifyIndex");
    assert_eq!(job.index(), modify);
    let scale = a.get("/v1/job/blocky/scale").await.ok().json();
    assert_eq!(scale["TaskGroups"]["cache"]["Desired"], 2);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_use_nomads_texts_and_codes() {
    let a = Agent::start().await;
    let cases = [
        ("/v1/job/nope", "job not found"),
        ("/v1/job/nope/summary", "job not found"),
        ("/v1/job/nope/versions", "job versions not found"),
        (
            "/v1/allocation/5e0c4a67-0000-4000-8000-000000000000",
            "alloc not found",
        ),
        (
            "/v1/evaluation/5e0c4a67-0000-4000-8000-000000000000",
            "eval not found",
        ),
        ("/v1/node/5e0c4a67-0000-4000-8000-000000000000", "node not found"),
        (
            "/v1/deployment/5e0c4a67-0000-4000-8000-000000000000",
            "deployment not found",
        ),
    ];
    for (path, text) in cases {
        let r = a.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.text, text, "{path}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
    }
    // A job with no deployment: 200 and `null`.
    let r = a.get("/v1/job/nope/deployment").await.ok();
    assert_eq!(r.text, "null");
    // Unknown routes: 404, empty body. Wrong methods: 405 `Invalid method`.
    let r = a.get("/v1/no-such-thing").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NOT_FOUND, ""));
    let r = a.delete("/v1/jobs").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "Invalid method")
    );
    let r = a.get("/v1/system/gc").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // Missing body, wrong types (the field path is named), missing job, ID mismatch.
    let r = a.send(a.http.put(format!("{}/v1/jobs", a.base))).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Request body is empty")
    );
    let mut bad = nomad_job("typed", 1, 128);
    bad["Job"]["TaskGroups"][0]["Count"] = json!("three");
    let r = a.put("/v1/jobs", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("Job.TaskGroups[0].Count"), "{}", r.text);
    let r = a.put("/v1/jobs", &json!({"EnforceIndex": true})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Job must be specified")
    );
    let r = a.put("/v1/job/other", &nomad_job("typed", 1, 128)).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Job ID does not match name")
    );
    // Validation failures are 500 with the multi-error text (as Nomad).
    let mut invalid = nomad_job("invalid", 1, 128);
    invalid["Job"]["TaskGroups"][0]["Tasks"] = json!([]);
    let r = a.put("/v1/jobs", &invalid).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text.contains("error"), "{}", r.text);
    // Query parameter errors.
    let r = a.get("/v1/jobs?per_page=lots").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text, "Expect a number for `per_page` query string parameter");
    let r = a.get("/v1/jobs?stale=maybe").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.get("/v1/jobs?region=mars").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "No path to region")
    );
    // Stopping an unknown allocation.
    let r = a
        .post(
            "/v1/allocation/5e0c4a67-0000-4000-8000-000000000000/stop",
            &json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::NOT_FOUND, "allocation not found")
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_index_conflicts_and_case_insensitive_bodies() {
    let a = Agent::start().await;
    a.add_nodes(1).await;
    let mut body = nomad_job("enforced", 1, 128);
    body["EnforceIndex"] = json!(true);
    body["JobModifyIndex"] = json!(0);
    let first = a.put("/v1/jobs", &body).await.ok().json();
    let jmi = first["JobModifyIndex"].as_u64().expect("JobModifyIndex");

    let r = a.put("/v1/jobs", &body).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text.starts_with("Enforcing job modify index 0"), "{}", r.text);

    body["JobModifyIndex"] = json!(jmi + 1000);
    let r = a.put("/v1/job/enforced", &body).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text.starts_with("Enforcing job modify index"), "{}", r.text);

    body["JobModifyIndex"] = json!(jmi);
    a.put("/v1/job/enforced", &body).await.ok();

    // Go's decoder matches keys case-insensitively: so do we.
    let lower = json!({"job": {"id": "lower", "datacenters": ["dc1"], "taskgroups": [{"name": "g", "count": 1,
        "tasks": [{"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"}}]}]}});
    let reg = a.put("/v1/jobs", &lower).await.ok().json();
    assert!(reg["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    let job = a.get("/v1/job/lower").await.ok().json();
    assert_eq!(job["TaskGroups"][0]["Name"], "g");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_ids_with_slashes_route_raw_and_encoded() {
    let a = Agent::start().await;
    a.add_nodes(1).await;
    let mut body = nomad_job("batch/periodic-1700000000", 1, 128);
    body["Job"]["Type"] = json!("batch");
    body["Job"]["Update"] = Value::Null;
    let reg = a.put("/v1/jobs", &body).await.ok().json();
    a.eval_done(reg["EvalID"].as_str().expect("EvalID")).await;

    for path in [
        "/v1/job/batch/periodic-1700000000",
        "/v1/job/batch%2Fperiodic-1700000000",
    ] {
        let job = a.get(path).await.ok().json();
        assert_eq!(job["ID"], "batch/periodic-1700000000", "{path}");
        let s = a.get(&format!("{path}/summary")).await.ok().json();
        assert_eq!(s["JobID"], "batch/periodic-1700000000");
        let allocs = a.get(&format!("{path}/allocations")).await.ok().json();
        assert_eq!(allocs.as_array().map(Vec::len), Some(1), "{path}");
        let evals = a.get(&format!("{path}/evaluations")).await.ok().json();
        assert!(evals.as_array().is_some_and(|e| !e.is_empty()));
    }
    // Register through the path form, plan and evaluate with a slash in the ID.
    a.put("/v1/job/batch/periodic-1700000000", &body).await.ok();
    let plan = a
        .put(
            "/v1/job/batch/periodic-1700000000/plan",
            &json!({"Job": body["Job"], "Diff": true}),
        )
        .await
        .ok()
        .json();
    assert_eq!(plan["Diff"]["Type"], "None");
    let ev = a
        .put("/v1/job/batch%2Fperiodic-1700000000/evaluate", &json!({}))
        .await
        .ok()
        .json();
    assert!(ev["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    // Children of a periodic parent are found by prefix.
    let list = a.get("/v1/jobs?prefix=batch/periodic-").await.ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let r = a
        .delete("/v1/job/batch/periodic-1700000000?purge=true")
        .await
        .ok();
    assert!(r.index() > 0);
    let r = a.get("/v1/job/batch%2Fperiodic-1700000000").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::NOT_FOUND, "job not found")
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_response_shape() {
    let a = Agent::start().await;
    a.add_nodes(2).await;

    // A new job: Added, with a Place count per group.
    let plan = a
        .put(
            "/v1/job/planned/plan",
            &json!({"Job": nomad_job("planned", 2, 256)["Job"], "Diff": true}),
        )
        .await;
    let index = plan.index();
    let plan = plan.ok().json();
    assert_eq!(plan["Diff"]["Type"], "Added");
    assert_eq!(
        plan["Annotations"]["DesiredTGUpdates"]["cache"]["Place"], 2,
        "{plan}"
    );
    assert_eq!(plan["JobModifyIndex"], 0);
    assert!(plan["FailedTGAllocs"].is_null(), "{plan}");
    assert_eq!(plan["Index"].as_u64(), Some(index));
    // Nothing was registered.
    assert_eq!(a.get("/v1/job/planned").await.status, StatusCode::NOT_FOUND);

    // Registered and unchanged: Diff None, DesiredTGUpdates still present.
    run_job(&a, &nomad_job("planned", 2, 256)).await;
    let plan = a
        .put(
            "/v1/job/planned/plan",
            &json!({"Job": nomad_job("planned", 2, 256)["Job"], "Diff": true}),
        )
        .await
        .ok()
        .json();
    assert_eq!(plan["Diff"]["Type"], "None", "{plan}");
    assert!(plan["Annotations"]["DesiredTGUpdates"]["cache"].is_object());
    assert!(plan["JobModifyIndex"].as_u64().is_some_and(|i| i > 0));

    // A change: Edited, with the field named.
    let plan = a
        .put(
            "/v1/job/planned/plan",
            &json!({"Job": nomad_job("planned", 3, 256)["Job"], "Diff": true}),
        )
        .await
        .ok()
        .json();
    assert_eq!(plan["Diff"]["Type"], "Edited", "{plan}");
    assert_eq!(plan["Diff"]["TaskGroups"][0]["Type"], "Edited");

    // Too big for the cluster: FailedTGAllocs names the exhausted dimension.
    let plan = a
        .put(
            "/v1/job/huge/plan",
            &json!({"Job": nomad_job("huge", 1, 100_000)["Job"]}),
        )
        .await
        .ok()
        .json();
    let failed = &plan["FailedTGAllocs"]["cache"];
    assert!(failed.is_object(), "{plan}");
    assert!(
        failed["DimensionExhausted"]["memory"]
            .as_i64()
            .is_some_and(|n| n > 0),
        "{failed}"
    );
    assert!(plan["Annotations"]["DesiredTGUpdates"]["cache"].is_object());
    assert!(plan["Diff"].is_null(), "no diff unless asked");

    // Mismatched IDs.
    let r = a
        .put(
            "/v1/job/other/plan",
            &json!({"Job": nomad_job("planned", 1, 64)["Job"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::BAD_REQUEST, "Job ID does not match")
    );

    // Validate: problems listed, nothing stored.
    let mut invalid = nomad_job("invalid", 1, 128);
    invalid["Job"]["TaskGroups"][0]["Tasks"] = json!([]);
    let v = a.put("/v1/validate/job", &invalid).await.ok().json();
    assert!(
        v["ValidationErrors"].as_array().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    assert!(v["Error"].as_str().is_some_and(|e| e.contains("error")));
    let v = a
        .post("/v1/validate/job", &nomad_job("fine", 1, 128))
        .await
        .ok()
        .json();
    assert!(v["ValidationErrors"].is_null(), "{v}");
    a.shutdown().await;
}

/// Reads NDJSON lines from a streaming response until `want` lines were collected.
async fn read_lines(resp: reqwest::Response, want: usize, within: Duration) -> Vec<Value> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while lines.len() < want {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} lines within {within:?}: {lines:?}", lines.len()))
            .expect("stream ended early")
            .expect("chunk");
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            lines.push(serde_json::from_slice(&line).expect("each line is one JSON object"));
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_is_filtered_ndjson() {
    let a = Agent::start().await;
    a.add_nodes(1).await;

    let resp = a
        .http
        .get(format!("{}/v1/event/stream?topic=Job:watched", a.base))
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let reader = tokio::spawn(read_lines(resp, 2, Duration::from_secs(10)));
    // Give the subscription a moment, then write one ignored and one watched job.
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.put("/v1/jobs", &nomad_job("ignored", 1, 64)).await.ok();
    a.put("/v1/jobs", &nomad_job("watched", 1, 64)).await.ok();
    let lines = reader.await.expect("reader");
    assert_eq!(lines[0], json!({}), "first line is a heartbeat");
    let batch = &lines[1];
    assert!(batch["Index"].as_u64().is_some_and(|i| i > 0));
    let events = batch["Events"].as_array().expect("Events");
    assert!(!events.is_empty());
    for e in events {
        assert_eq!(e["Topic"], "Job");
        assert_eq!(e["Key"], "watched");
        assert_eq!(e["Type"], "JobRegistered");
        assert_eq!(e["Payload"]["Job"]["ID"], "watched");
    }

    // Replay from index 1: the node's registration is in the buffer.
    let resp = a
        .http
        .get(format!("{}/v1/event/stream?index=1&topic=Node", a.base))
        .send()
        .await
        .expect("stream");
    let lines = read_lines(resp, 2, Duration::from_secs(5)).await;
    assert_eq!(lines[0], json!({}));
    let node_event = &lines[1]["Events"][0];
    assert_eq!(node_event["Topic"], "Node");
    assert_eq!(
        node_event["Payload"]["Node"]["SecretID"], "",
        "secrets never leave the server"
    );

    // Namespace filter: another namespace sees no job events.
    let resp = a
        .http
        .get(format!(
            "{}/v1/event/stream?index=1&topic=Job&namespace=other",
            a.base
        ))
        .send()
        .await
        .expect("stream");
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("heartbeat").expect("chunk");
    assert_eq!(&first[..], b"{}\n");
    let more = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(more.is_err(), "no Job events in namespace `other`: {more:?}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_json_and_prometheus() {
    let a = Agent::start().await;
    a.add_nodes(1).await;
    run_job(&a, &nomad_job("metered", 1, 64)).await;
    let r = a.get("/v1/metrics?format=prometheus").await.ok();
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    for line in [
        "# TYPE nomad_nomad_broker_total_ready gauge",
        "# TYPE nomad_nomad_blocked_evals_total_blocked gauge",
        "# TYPE nomad_nomad_plan_apply counter",
        "# TYPE nomad_nomad_heartbeat_invalidate counter",
        "nomad_nomad_job_status_running 1",
    ] {
        assert!(r.text.contains(line), "missing {line:?} in:\n{}", r.text);
    }
    let plans = r
        .text
        .lines()
        .find_map(|l| l.strip_prefix("nomad_nomad_plan_apply "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("plan counter");
    assert!(plans >= 1.0);

    let m = a.get("/v1/metrics").await.ok().json();
    assert!(m["Timestamp"].as_str().is_some_and(|t| t.ends_with("+0000 UTC")));
    let gauges = m["Gauges"].as_array().expect("Gauges");
    assert!(
        gauges
            .iter()
            .any(|g| g["Name"] == "nomad.nomad.broker.total_ready" && g["Labels"].is_object())
    );
    let counters = m["Counters"].as_array().expect("Counters");
    assert!(
        counters
            .iter()
            .any(|c| c["Name"] == "nomad.nomad.plan.apply" && c["Count"].as_u64() >= Some(1))
    );
    assert!(m["Samples"].is_array() && m["Points"].is_array());
    assert!(
        a.get("/v1/metrics").await.header("X-Nomad-Index").is_none(),
        "metrics carry no query meta"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_search_and_pagination() {
    let a = Agent::start().await;
    let nodes = a.add_nodes(3).await;
    for id in ["page-1", "page-2", "page-3", "page-4", "page-5", "zeta"] {
        a.put("/v1/jobs", &nomad_job(id, 1, 64)).await.ok();
    }

    let r = a
        .post("/v1/search", &json!({"Prefix": "page-", "Context": "jobs"}))
        .await
        .ok();
    let s = r.json();
    assert_eq!(
        s["Matches"]["jobs"],
        json!(["page-1", "page-2", "page-3", "page-4", "page-5"])
    );
    assert_eq!(s["Truncations"]["jobs"], false);
    assert!(r.index() > 0 && s.get("Index").is_some());
    let node_prefix = &nodes[1][..6];
    let s = a
        .put("/v1/search", &json!({"Prefix": node_prefix, "Context": "all"}))
        .await
        .ok()
        .json();
    assert!(
        s["Matches"]["nodes"]
            .as_array()
            .is_some_and(|m| m.contains(&json!(nodes[1]))),
        "{s}"
    );
    for ctx in ["allocs", "deployment", "evals", "jobs", "nodes"] {
        assert!(s["Matches"].get(ctx).is_some(), "context {ctx} missing: {s}");
    }
    let r = a
        .post("/v1/search", &json!({"Prefix": "x", "Context": "bogus"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Pages of two, resuming inclusively from the token.
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?prefix=page-&per_page=2".to_string();
    let mut pages = 0;
    loop {
        let r = a.get(&path).await.ok();
        let items = r.json();
        pages += 1;
        seen.extend(
            items
                .as_array()
                .expect("array")
                .iter()
                .map(|j| j["ID"].as_str().unwrap_or_default().to_string()),
        );
        match r.header("X-Nomad-NextToken") {
            Some(t) => path = format!("/v1/jobs?prefix=page-&per_page=2&next_token={t}"),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["page-1", "page-2", "page-3", "page-4", "page-5"]);
    let r = a.get("/v1/jobs?prefix=page-&per_page=2").await.ok();
    assert_eq!(r.header("X-Nomad-NextToken").as_deref(), Some("default.page-3"));
    let rev = a
        .get("/v1/jobs?prefix=page-&reverse=true&per_page=1")
        .await
        .ok()
        .json();
    assert_eq!(rev[0]["ID"], "page-5");

    // Filters on the full object; what we cannot evaluate is refused the way the CLI expects.
    let f = a
        .get("/v1/jobs?filter=ID%20%3D%3D%20%22page-4%22")
        .await
        .ok()
        .json();
    assert_eq!(f.as_array().map(Vec::len), Some(1));
    assert_eq!(f[0]["ID"], "page-4");
    let f = a
        .get("/v1/jobs?filter=TaskGroups.Name%20%3D%3D%20%22cache%22%20and%20ID%20!%3D%20%22zeta%22")
        .await
        .ok()
        .json();
    assert_eq!(f.as_array().map(Vec::len), Some(5));
    let f = a
        .get("/v1/jobs?filter=Periodic%20is%20not%20nil")
        .await
        .ok()
        .json();
    assert_eq!(f, json!([]));
    let r = a.get("/v1/jobs?filter=ID%20matches%20%22x%22").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.starts_with("failed to create result paginator"),
        "{}",
        r.text
    );

    // Other lists page too; namespace `*`; eval list params.
    let nl = a.get("/v1/nodes?per_page=2").await.ok();
    assert_eq!(nl.json().as_array().map(Vec::len), Some(2));
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(nl.header("X-Nomad-NextToken"), Some(sorted[2].clone()));
    let evals = a.get("/v1/evaluations?namespace=*&per_page=3").await.ok();
    assert_eq!(evals.json().as_array().map(Vec::len), Some(3));
    let token = evals.header("X-Nomad-NextToken").expect("more evals");
    assert!(
        token
            .split_once('.')
            .is_some_and(|(i, _)| i.parse::<u64>().is_ok()),
        "{token}"
    );
    let none = a.get("/v1/jobs?namespace=other").await.ok().json();
    assert_eq!(none, json!([]));
    let all = a.get("/v1/jobs?namespace=*").await.ok().json();
    assert_eq!(all.as_array().map(Vec::len), Some(6));
    let r = a
        .get("/v1/evaluations?job=zeta&filter=ID%20%3D%3D%20%22x%22")
        .await;
    assert_eq!(
        r.text,
        "Filter expression cannot be used with other filter parameters"
    );
    let by_job = a.get("/v1/evaluations?job=zeta").await.ok().json();
    assert!(
        by_job
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["JobID"] == "zeta") && !e.is_empty())
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_agent_status_and_operator() {
    let a = Agent::start().await;
    let nodes = a.add_nodes(2).await;

    let list = a.get("/v1/nodes").await.ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert_eq!(list[0]["Address"], "10.0.0.2");
    assert!(list[0].get("NodeResources").is_none() && list[0].get("Attributes").is_none());
    let list = a.get("/v1/nodes?resources=true&os=true").await.ok().json();
    assert!(list[0]["NodeResources"].is_object());
    assert_eq!(list[0]["Attributes"], json!({"os.name": "debian"}));
    let node = a.get(&format!("/v1/node/{}", nodes[0])).await.ok().json();
    assert_eq!(node["SecretID"], "");
    assert_eq!(node["Status"], "ready");

    // Eligibility and drain (python-nomad style bodies).
    let r = a
        .post(
            &format!("/v1/node/{}/eligibility", nodes[0]),
            &json!({"NodeID": nodes[0], "Eligibility": "ineligible"}),
        )
        .await
        .ok();
    assert_eq!(r.json()["Index"].as_u64(), Some(r.index()));
    let node = a.get(&format!("/v1/node/{}", nodes[0])).await.ok().json();
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    let r = a
        .post(
            &format!("/v1/node/{}/eligibility", nodes[0]),
            &json!({"Eligibility": "maybe"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .put(&format!("/v1/node/{}/drain", nodes[1]), &json!({"DrainSpec": {"Deadline": 3_600_000_000_000_i64, "IgnoreSystemJobs": false}, "Meta": {"reason": "test"}}))
        .await
        .ok();
    assert!(r.json()["NodeModifyIndex"].as_u64().is_some_and(|i| i > 0));
    let node = a.get(&format!("/v1/node/{}", nodes[1])).await.ok().json();
    assert_eq!(node["Drain"], true);
    assert!(node["DrainStrategy"].is_object());
    a.put(
        &format!("/v1/node/{}/drain", nodes[1]),
        &json!({"DrainSpec": null, "MarkEligible": true}),
    )
    .await
    .ok();
    let node = a
        .poll(&format!("/v1/node/{}", nodes[1]), |n| {
            n["DrainStrategy"].is_null()
        })
        .await;
    assert_eq!(node["Drain"], false);
    let r = a
        .put(
            "/v1/node/5e0c4a67-0000-4000-8000-000000000000/drain",
            &json!({"DrainSpec": null}),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (StatusCode::NOT_FOUND, "node not found")
    );

    // Leader string equals the leader member's Addr:Tags.port (`nomad server members`).
    let leader: String =
        serde_json::from_str(&a.get("/v1/status/leader").await.ok().text).expect("JSON string");
    let members = a.get("/v1/agent/members").await.ok().json();
    let m = &members["Members"][0];
    assert_eq!(
        leader,
        format!(
            "{}:{}",
            m["Addr"].as_str().unwrap_or_default(),
            m["Tags"]["port"].as_str().unwrap_or_default()
        )
    );
    assert_eq!(members["ServerRegion"], "global");
    assert_eq!(m["Tags"]["role"], "nomad");
    let peers = a.get("/v1/status/peers").await.ok().json();
    assert_eq!(peers, json!([leader]));
    assert_eq!(a.get("/v1/regions").await.ok().json(), json!(["global"]));
    let me = a.get("/v1/agent/self").await.ok().json();
    assert_eq!(me["config"]["Region"], "global");
    assert_eq!(me["stats"]["nomad"]["leader"], "true");
    assert!(me["config"]["UI"]["ShowCLIHints"].is_boolean());
    assert!(me["member"]["Tags"].is_object());
    let health = a.get("/v1/agent/health").await.ok().json();
    assert_eq!(health, json!({"server": {"ok": true, "message": "ok"}}));
    let r = a.get("/v1/agent/servers").await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);

    // Scheduler configuration with check-and-set.
    let r = a.get("/v1/operator/scheduler/configuration").await.ok();
    let cfg = r.json();
    assert_eq!(cfg["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
    let mut new_cfg = cfg["SchedulerConfig"].clone();
    new_cfg["SchedulerAlgorithm"] = json!("spread");
    let stale = a
        .put("/v1/operator/scheduler/configuration?cas=999999", &new_cfg)
        .await
        .ok()
        .json();
    assert_eq!(stale["Updated"], false);
    let current = cfg["SchedulerConfig"]["ModifyIndex"].as_u64().unwrap_or(0);
    let r = a
        .post(
            &format!("/v1/operator/scheduler/configuration?cas={current}"),
            &new_cfg,
        )
        .await
        .ok();
    let upd = r.json();
    assert_eq!(upd["Updated"], true, "{upd}");
    assert_eq!(upd["Index"].as_u64(), Some(r.index()));
    let cfg = a.get("/v1/operator/scheduler/configuration").await.ok().json();
    assert_eq!(cfg["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    let r = a
        .put(
            "/v1/operator/scheduler/configuration",
            &json!({"SchedulerAlgorithm": "random"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Forced GC: empty 200.
    let r = a.put("/v1/system/gc", &json!(null)).await.ok();
    assert_eq!(r.text, "");

    // Pretty printing.
    let r = a.get("/v1/regions?pretty").await.ok();
    assert_eq!(r.text, "[\n    \"global\"\n]\n");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_revert_and_graceful_shutdown() {
    let a = Agent::start().await;
    a.add_nodes(1).await;
    run_job(&a, &nomad_job("versioned", 1, 64)).await;
    run_job(&a, &nomad_job("versioned", 1, 128)).await;
    let v = a.get("/v1/job/versioned/versions?diffs=true").await.ok().json();
    assert_eq!(v["Versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["Versions"][0]["Version"], 1);
    assert_eq!(v["Diffs"][0]["Type"], "Edited", "{v}");

    let r = a
        .put(
            "/v1/job/versioned/revert",
            &json!({"JobID": "versioned", "JobVersion": 0}),
        )
        .await
        .ok();
    assert!(r.json()["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    let job = a.get("/v1/job/versioned").await.ok().json();
    assert_eq!(job["Version"], 2);
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"], 64);
    let r = a.put("/v1/job/versioned/revert", &json!({"JobVersion": 2})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A blocking query in flight does not hold up shutdown.
    let index = a.get("/v1/jobs").await.ok().index();
    let url = format!("{}/v1/jobs?index={index}&wait=5m", a.base);
    let http = a.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    a.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(status.ok(), Some(StatusCode::OK));
}
