//! The server issue's acceptance, end to end: the real `drover` binary as an agent with a data
//! directory, simulated nodes over the real RPC path (`drover-nodesim`), and the HTTP API and
//! CLI as a user would drive them. Agents listen on free 127.0.0.1 ports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_nodesim::{SimConfig, Simulator};
use serde_json::{Value, json};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Agent {
    child: Child,
    http: String,
    rpc: String,
    dir: PathBuf,
    ports: (u16, u16),
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        Self::start_on(dir, (free_port(), free_port()))
    }

    fn start_on(dir: &Path, ports: (u16, u16)) -> Agent {
        let config = dir.join("agent.hcl");
        std::fs::write(
            &config,
            format!(
                "name = \"e2e\"\nbind_addr = \"127.0.0.1\"\ndata_dir = \"{}\"\nports {{\n  http = {}\n  rpc = {}\n  serf = {}\n}}\nserver {{\n  enabled = true\n}}\n",
                dir.join("data").display(),
                ports.0,
                ports.1,
                free_port()
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(dir.join(format!("agent-{}.log", ports.0))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["agent", "-config", config.to_str().expect("utf8 path")])
            .stdout(Stdio::from(log.try_clone().expect("clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn agent");
        let agent = Agent {
            child,
            http: format!("http://127.0.0.1:{}", ports.0),
            rpc: format!("127.0.0.1:{}", ports.1),
            dir: dir.to_path_buf(),
            ports,
        };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(body) = http_get_blocking(self.ports.0, "/v1/status/leader")
                && body.starts_with("HTTP/1.1 200")
                && body.contains(":")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent did not become ready; log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("agent-{}.log", self.ports.0))).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush beyond what was acknowledged.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(self) -> Agent {
        let dir = self.dir.clone();
        let ports = self.ports;
        self.kill9();
        Agent::start_on(&dir, ports)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 GET over a std socket (readiness probe, usable outside a runtime).
fn http_get_blocking(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

async fn get(url: &str) -> (u16, Option<u64>, Value) {
    let r = reqwest::Client::new().get(url).send().await.expect("GET");
    let code = r.status().as_u16();
    let index = r
        .headers()
        .get("X-Nomad-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = r.text().await.expect("body");
    (
        code,
        index,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn put(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(url)
        .json(body)
        .send()
        .await
        .expect("PUT");
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn nomad_job(id: &str, count: u64, memory: u64, priority: u64) -> Value {
    json!({
        "Job": {
            "ID": id, "Name": id, "Type": "service", "Priority": priority,
            "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "web", "Count": count,
                "Tasks": [{
                    "Name": "server", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sleep", "args": ["3600"]},
                    "Resources": {"CPU": 100, "MemoryMB": memory}
                }]
            }]
        }
    })
}

async fn wait_eval(http: &str, eval_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, e) = get(&format!("{http}/v1/evaluation/{eval_id}")).await;
        if code == 200 && e["Status"] != "pending" {
            return e;
        }
        assert!(Instant::now() < deadline, "eval {eval_id} still pending: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn simulate(agent: &Agent, nodes: usize, memory_mb: i64) -> Simulator {
    let sim = Simulator::start(SimConfig {
        address: agent.rpc.clone(),
        nodes,
        memory_mb,
        heartbeat_stagger: Duration::from_millis(200),
        ..Default::default()
    })
    .expect("simulator");
    assert!(
        sim.wait_ready(Duration::from_secs(20)).await,
        "simulated nodes not ready"
    );
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_job_is_placed_blocking_queries_wake_and_a_restart_keeps_everything() {
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(tmp.path());
    let http = agent.http.clone();
    let sim = simulate(&agent, 3, 8192).await;

    let (code, resp) = put(&format!("{http}/v1/jobs"), &nomad_job("web", 3, 256, 50)).await;
    assert_eq!(code, 200, "{resp}");
    let eval = wait_eval(&http, resp["EvalID"].as_str().expect("EvalID")).await;
    assert_eq!(eval["Status"], "complete", "{eval}");
    // A second version of the job (count 4).
    let (code, resp2) = put(&format!("{http}/v1/jobs"), &nomad_job("web", 4, 256, 50)).await;
    assert_eq!(code, 200, "{resp2}");
    wait_eval(&http, resp2["EvalID"].as_str().expect("EvalID")).await;

    let (_, _, allocs) = get(&format!("{http}/v1/job/web/allocations")).await;
    let allocs = allocs.as_array().expect("list").clone();
    assert_eq!(allocs.len(), 4);
    let sim_nodes: BTreeSet<String> = sim.node_ids().into_iter().collect();
    for a in &allocs {
        assert!(sim_nodes.contains(a["NodeID"].as_str().expect("NodeID")), "{a}");
    }
    // The simulated clients report them running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, allocs) = get(&format!("{http}/v1/job/web/allocations")).await;
        if allocs
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["ClientStatus"] == "running")
        {
            break;
        }
        assert!(Instant::now() < deadline, "allocations not running: {allocs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A blocking query waits for a change and returns a larger index...
    let (_, index, _) = get(&format!("{http}/v1/job/web/allocations")).await;
    let index = index.expect("X-Nomad-Index");
    let url = format!("{http}/v1/job/web/allocations?index={index}&wait=30s");
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        let (_, idx, _) = get(&url).await;
        (idx.expect("index"), t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "blocking query returned without a change");
    let victim = allocs[0]["ID"].as_str().expect("ID").to_string();
    let (code, stop) = put(&format!("{http}/v1/allocation/{victim}/stop"), &json!({})).await;
    assert_eq!(code, 200, "{stop}");
    let (new_index, waited) = waiter.await.expect("join");
    assert!(new_index > index, "{new_index} > {index}");
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    // ...and times out with the same index when nothing changes.
    let (_, idx, _) = get(&format!("{http}/v1/node/{}?index=999999&wait=1s", sim.node_id(0))).await;
    assert!(idx.is_some());

    // Let the stop's evaluation settle, then record the state.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = state_summary(&http).await;
    sim.stop().await;
    let agent = agent.restart();
    let after = state_summary(&agent.http).await;
    assert_eq!(before, after, "state after restart differs");
    assert!(after.versions >= 2, "{after:?}");
    assert_eq!(after.nodes, 3);
}

#[derive(Debug, PartialEq)]
struct Summary {
    jobs: Vec<String>,
    versions: usize,
    allocs: Vec<(String, String, String)>,
    evals: Vec<(String, String)>,
    nodes: usize,
}

async fn state_summary(http: &str) -> Summary {
    let (_, _, jobs) = get(&format!("{http}/v1/jobs")).await;
    let (_, _, versions) = get(&format!("{http}/v1/job/web/versions")).await;
    let (_, _, allocs) = get(&format!("{http}/v1/allocations")).await;
    let (_, _, evals) = get(&format!("{http}/v1/evaluations")).await;
    let (_, _, nodes) = get(&format!("{http}/v1/nodes")).await;
    let mut allocs: Vec<(String, String, String)> = allocs
        .as_array()
        .expect("allocs")
        .iter()
        .map(|a| {
            (
                a["ID"].as_str().unwrap_or("").to_string(),
                a["NodeID"].as_str().unwrap_or("").to_string(),
                a["DesiredStatus"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    allocs.sort();
    let mut evals: Vec<(String, String)> = evals
        .as_array()
        .expect("evals")
        .iter()
        .map(|e| {
            (
                e["ID"].as_str().unwrap_or("").to_string(),
                e["Status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    evals.sort();
    Summary {
        jobs: jobs
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["ID"].as_str().unwrap_or("").to_string())
            .collect(),
        versions: versions["Versions"].as_array().map(|v| v.len()).unwrap_or(0),
        allocs,
        evals,
        nodes: nodes.as_array().expect("nodes").len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_registration_is_lost_when_the_agent_is_killed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(tmp.path());
    let http = agent.http.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    // 200 registrations from 8 concurrent streams; the agent is killed part-way.
    for stream in 0..8 {
        let http = http.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            for i in 0..25 {
                let id = format!("job-{stream}-{i}");
                let r = client
                    .put(format!("{http}/v1/jobs"))
                    .json(&nomad_job(&id, 1, 64, 50))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 200 => acked.lock().expect("lock").push(id),
                    _ => return,
                }
            }
        }));
    }
    // Kill once about half were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 100 {
        assert!(Instant::now() < deadline, "registrations too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let agent = agent.restart();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 100 && acked.len() < 200,
        "killed mid-stream: {} acked",
        acked.len()
    );
    let (_, _, jobs) = get(&format!("{}/v1/jobs", agent.http)).await;
    let present: BTreeSet<String> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["ID"].as_str().unwrap_or("").to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !present.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost after kill -9: {lost:?}");
}

fn drover(args: &[&str], http: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("NOMAD_ADDR", http)
        .output()
        .expect("run drover");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn hcl_job(dir: &Path, id: &str, count: u64, memory: u64, priority: u64) -> String {
    let path = dir.join(format!("{id}.nomad.hcl"));
    std::fs::write(
        &path,
        format!(
            r#"job "{id}" {{
  datacenters = ["dc1"]
  priority    = {priority}
  group "web" {{
    count = {count}
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 100
        memory = {memory}
      }}
    }}
  }}
}}
"#
        ),
    )
    .expect("write job");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_explains_failures_and_preemption_evicts_lower_priority_work() {
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(tmp.path());
    let http = agent.http.clone();
    let _sim = simulate(&agent, 2, 4096).await;

    // Too small: 3 × 3000 MB on two 4096 MB nodes.
    let big = hcl_job(tmp.path(), "big", 3, 3000, 50);
    let (code, out) = drover(&["job", "plan", &big], &http);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Dimension \"memory\" exhausted on"), "{out}");
    assert!(
        out.contains("Resources exhausted on 2 nodes") || out.contains("exhausted on 2 nodes"),
        "{out}"
    );
    assert!(out.contains("Job Modify Index: 0"), "{out}");

    // Preemption for service jobs, then a priority-30 job fills the nodes.
    let (code, out) = drover(
        &[
            "operator",
            "scheduler",
            "set-config",
            "-preempt-service-scheduler=true",
        ],
        &http,
    );
    assert_eq!(code, 0, "{out}");
    let low = hcl_job(tmp.path(), "low", 2, 3000, 30);
    let (code, out) = drover(&["job", "run", "-detach", &low], &http);
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, allocs) = get(&format!("{http}/v1/job/low/allocations")).await;
        if allocs.as_array().map(|a| a.len()) == Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "low job not placed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let high = hcl_job(tmp.path(), "high", 1, 3000, 80);
    let (code, out) = drover(&["job", "plan", &high], &http);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Preemptions"), "{out}");
    assert!(out.contains("low"), "the plan names the job it preempts: {out}");

    let (code, out) = drover(&["job", "run", "-detach", &high], &http);
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, allocs) = get(&format!("{http}/v1/job/low/allocations")).await;
        let evicted = allocs
            .as_array()
            .expect("list")
            .iter()
            .filter(|a| a["DesiredStatus"] == "evict")
            .count();
        if evicted == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing evicted: {allocs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, high_allocs) = get(&format!("{http}/v1/job/high/allocations")).await;
    assert_eq!(high_allocs.as_array().map(|a| a.len()), Some(1), "{high_allocs}");
}
