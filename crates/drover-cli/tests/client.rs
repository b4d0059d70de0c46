//! The client issue's acceptance, end to end: the real `drover` binary as an agent running a
//! server and a client, real raw_exec tasks (processes on this host), driven through the HTTP
//! API and the CLI as a user would. Agents listen on free 127.0.0.1 ports; every task is a
//! shell loop or a sleep, and every test checks that what it started is gone at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Agent {
    child: Child,
    http: String,
    dir: PathBuf,
    ports: (u16, u16, u16),
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        Self::start_on(dir, (free_port(), free_port(), free_port()))
    }

    fn start_on(dir: &Path, ports: (u16, u16, u16)) -> Agent {
        let config = dir.join("agent.hcl");
        std::fs::write(
            &config,
            format!(
                r#"name = "client-e2e"
bind_addr = "127.0.0.1"
data_dir = "{}"
ports {{
  http = {}
  rpc = {}
  serf = {}
}}
server {{
  enabled = true
}}
client {{
  enabled = true
  network_interface = "lo"
}}
plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
"#,
                dir.join("data").display(),
                ports.0,
                ports.1,
                ports.2
            ),
        )
        .expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["agent", "-config", config.to_str().expect("utf8 path")])
            .stdout(Stdio::from(log.try_clone().expect("clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn agent");
        let agent = Agent {
            child,
            http: format!("http://127.0.0.1:{}", ports.0),
            dir: dir.to_path_buf(),
            ports,
        };
        agent.wait_node_ready();
        agent
    }

    fn wait_node_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_get_blocking(self.ports.0, "/v1/nodes")
                .is_some_and(|b| b.contains("\"Status\":\"ready\""))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("client node did not become ready; log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(mut self) -> Agent {
        self.kill9();
        Agent::start_on(&self.dir.clone(), self.ports)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One plain HTTP/1.1 GET over a std socket (usable inside or outside a runtime).
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

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(url).send().await.expect("GET");
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
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

/// A raw_exec job with one task running `sh -c <script>`.
fn job(id: &str, kind: &str, script: &str, restart: Value, reschedule: Value) -> Value {
    json!({
        "Job": {
            "ID": id, "Name": id, "Type": kind, "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "g", "Count": 1,
                "RestartPolicy": restart,
                "ReschedulePolicy": reschedule,
                "Tasks": [{
                    "Name": "t", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sh", "args": ["-c", script]},
                    "Resources": {"CPU": 100, "MemoryMB": 64},
                    "KillTimeout": 2_000_000_000u64
                }]
            }]
        }
    })
}

fn no_reschedule() -> Value {
    json!({"Attempts": 0, "Unlimited": false})
}

async fn allocs(http: &str, job: &str) -> Vec<Value> {
    let (code, v) = get(&format!("{http}/v1/job/{job}/allocations")).await;
    assert_eq!(code, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

async fn alloc(http: &str, id: &str) -> Value {
    get(&format!("{http}/v1/allocation/{id}")).await.1
}

/// Waits until `f` holds for the job's allocations; returns them.
async fn wait_allocs(agent: &Agent, job: &str, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = allocs(&agent.http, job).await;
        if f(&a) {
            return a;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; allocations: {a:#?}\nagent log:\n{}",
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn events(alloc: &Value, task: &str) -> Vec<String> {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| e["Type"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn read_pid(agent: &Agent, alloc_id: &str) -> i32 {
    let path = agent.dir.join("data/alloc").join(alloc_id).join("t/local/pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return p;
        }
        assert!(Instant::now() < deadline, "no pid file at {}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_exec_service_runs_logs_and_stops_without_leftovers() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let script = "echo $$ > $NOMAD_TASK_DIR/pid; i=0; while true; do echo \"line $i from $NOMAD_ALLOC_NAME\"; i=$((i+1)); sleep 1; done";
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &job(
            "svc",
            "service",
            script,
            json!({"Attempts": 2, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"}),
            no_reschedule(),
        ),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "svc", "a running allocation", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "running"
    })
    .await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    let full = alloc(&agent.http, &id).await;
    assert_eq!(
        events(&full, "t"),
        ["Received", "Task Setup", "Started"],
        "{full:#}"
    );
    let pid = read_pid(&agent, &id);
    assert!(pid_alive(pid));

    // The task's output lands in the rotated log files; alloc status shows the events.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = std::fs::read_to_string(
        agent
            .dir
            .join("data/alloc")
            .join(&id)
            .join("alloc/logs/t.stdout.0"),
    )
    .expect("log file");
    assert!(
        log.contains("line 0 from svc.g[0]") && log.contains("line 1 from"),
        "{log}"
    );
    let (code, out) = drover(&["alloc", "status", &id], &agent.http);
    assert_eq!(code, 0, "{out}");
    for e in [
        "Received",
        "Task Setup",
        "Started",
        "Task started by client",
        "Building Task Directory",
    ] {
        assert!(out.contains(e), "alloc status lacks {e:?}:\n{out}");
    }

    // Stopping the job kills the whole process tree and reports the allocation complete.
    let (code, out) = drover(&["job", "stop", "-detach", "svc"], &agent.http);
    assert_eq!(code, 0, "{out}");
    let a = wait_allocs(&agent, "svc", "the allocation to stop", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "complete"
    })
    .await;
    let full = alloc(&agent.http, a[0]["ID"].as_str().expect("id")).await;
    let ev = events(&full, "t");
    assert!(
        ev.contains(&"Killing".to_string()) && ev.contains(&"Killed".to_string()),
        "{ev:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "task pid {pid} still alive after the stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_kill_9_of_the_agent_and_exits_meanwhile_are_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let http = agent.http.clone();
    let keep = "echo $$ > $NOMAD_TASK_DIR/pid; exec sleep 3600";
    // Exits with 7 four seconds after starting: while the agent is down.
    let brief = "echo $$ > $NOMAD_TASK_DIR/pid; sleep 4; exit 7";
    let no_restart =
        json!({"Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"});
    for (id, kind, script) in [("keep", "service", keep), ("brief", "batch", brief)] {
        let (code, r) = put(
            &format!("{http}/v1/jobs"),
            &job(id, kind, script, no_restart.clone(), no_reschedule()),
        )
        .await;
        assert_eq!(code, 200, "{r}");
    }
    let keep_alloc = wait_allocs(&agent, "keep", "keep running", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "running"
    })
    .await;
    let brief_alloc = wait_allocs(&agent, "brief", "brief running", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "running"
    })
    .await;
    let keep_id = keep_alloc[0]["ID"].as_str().expect("id").to_string();
    let brief_id = brief_alloc[0]["ID"].as_str().expect("id").to_string();
    let keep_pid = read_pid(&agent, &keep_id);
    let brief_pid = read_pid(&agent, &brief_id);

    let mut agent = agent;
    agent.kill9();
    assert!(pid_alive(keep_pid), "the task died with the agent");
    // Let `brief` exit while no agent runs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!pid_alive(brief_pid));
    let agent = agent.restart();

    let a = wait_allocs(&agent, "brief", "brief reported failed", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "failed"
    })
    .await;
    let full = alloc(&http, a[0]["ID"].as_str().expect("id")).await;
    let term = full["TaskStates"]["t"]["Events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["Type"] == "Terminated")
        .cloned()
        .unwrap_or_else(|| panic!("no Terminated event: {full:#}"));
    assert_eq!(term["ExitCode"], 7, "{term}");

    // The long task is the same process, still running, and was not started again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(pid_alive(keep_pid));
    let full = alloc(&http, &keep_id).await;
    assert_eq!(full["ClientStatus"], "running", "{full:#}");
    let starts = events(&full, "t").iter().filter(|e| *e == "Started").count();
    assert_eq!(starts, 1, "{full:#}");
    assert_eq!(
        read_pid(&agent, &keep_id),
        keep_pid,
        "{full:#}\nlog:\n{}",
        agent.log()
    );

    let (code, out) = drover(&["job", "stop", "-detach", "keep"], &http);
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(keep_pid) {
        assert!(
            Instant::now() < deadline,
            "pid {keep_pid} still alive after job stop; log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_restarted_then_fails_and_the_allocation_is_rescheduled() {
    // A batch job: a service job's failed allocation belongs to a deployment, and allocations
    // a failed deployment marked unhealthy are not rescheduled (Nomad's rule) until the next
    // version.
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let restart =
        json!({"Attempts": 1, "Interval": 600_000_000_000u64, "Delay": 500_000_000u64, "Mode": "fail"});
    let reschedule = json!({"Attempts": 1, "Interval": 3_600_000_000_000u64, "Delay": 5_000_000_000u64, "DelayFunction": "constant", "Unlimited": false});
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &job("flaky", "batch", "echo failing; exit 1", restart, reschedule),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "flaky", "the replacement to fail too", |a| {
        a.len() == 2 && a.iter().all(|x| x["ClientStatus"] == "failed")
    })
    .await;
    let first = a
        .iter()
        .find(|x| x["NextAllocation"] != "")
        .expect("the first allocation names its replacement");
    let full = alloc(&agent.http, first["ID"].as_str().expect("id")).await;
    let ev = events(&full, "t");
    assert_eq!(
        ev,
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Not Restarting"
        ],
        "{full:#}"
    );
    assert_eq!(full["TaskStates"]["t"]["Restarts"], 1);
    assert_eq!(full["TaskStates"]["t"]["Failed"], true);
    // The policy allows one reschedule: nothing more is placed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(allocs(&agent.http, "flaky").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_driver_no_node_has_fails_placement_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut j = job("nodrv", "batch", "true", json!({}), no_reschedule());
    j["Job"]["TaskGroups"][0]["Tasks"][0]["Driver"] = json!("qemu2");
    let (code, r) = put(&format!("{}/v1/jobs", agent.http), &j).await;
    assert_eq!(code, 200, "{r}");
    let eval_id = r["EvalID"].as_str().expect("eval").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let eval = loop {
        let (_, e) = get(&format!("{}/v1/evaluation/{eval_id}", agent.http)).await;
        if e["Status"] != "pending" {
            break e;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = eval["FailedTGAllocs"]["g"].to_string();
    assert!(
        text.contains("missing driver") && text.contains("qemu2"),
        "{eval:#}"
    );
}
