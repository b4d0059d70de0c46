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
    /// Take down leftover tasks when dropped (not when replaced by a restarted agent).
    cleanup: bool,
    /// Extra lines of the `client {}` block.
    client_extra: String,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        Self::start_on(dir, (free_port(), free_port(), free_port()), "")
    }

    fn start_on(dir: &Path, ports: (u16, u16, u16), client_extra: &str) -> Agent {
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
  {}
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
                ports.2,
                client_extra
            ),
        )
        .expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("log");
        // `client_extra` starting with `#nobody` runs the agent as user nobody (via setpriv).
        let mut cmd = if client_extra.starts_with("#nobody") {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_drover"),
            ]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_drover"))
        };
        let child = cmd
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
            cleanup: true,
            client_extra: client_extra.to_string(),
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
        self.cleanup = false;
        Agent::start_on(&self.dir.clone(), self.ports, &self.client_extra.clone())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if !self.cleanup {
            return;
        }
        // Tasks outlive the agent by design: after a failed test, take down what it started
        // (executors and tasks that name this directory, runc containers and docker containers
        // of its allocations) so nothing leaks into the next test.
        let dir = self.dir.display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let mentions = ["cmdline", "environ"].iter().any(|f| {
                std::fs::read(entry.path().join(f)).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&dir))
            });
            if mentions && pid != std::process::id() as i32 {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
            }
        }
        for alloc in std::fs::read_dir(self.dir.join("data/alloc"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = alloc.file_name().to_string_lossy().to_string();
            if let Ok(out) = Command::new("runc")
                .args(["--root", "/run/drover/runc", "list", "-q"])
                .output()
            {
                for c in String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|c| c.contains(&id))
                {
                    let _ = Command::new("runc")
                        .args(["--root", "/run/drover/runc", "delete", "--force", c])
                        .output();
                }
            }
            if let Ok(out) = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=com.hashicorp.nomad.alloc_id={id}"),
                ])
                .output()
            {
                for c in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = Command::new("docker").args(["rm", "-f", c]).output();
                }
            }
        }
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

/// The evaluation a registration answer names, once the scheduler is done with it.
async fn finished_eval(agent: &Agent, registered: &Value) -> Value {
    let eval_id = registered["EvalID"].as_str().expect("eval").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, e) = get(&format!("{}/v1/evaluation/{eval_id}", agent.http)).await;
        if e["Status"] != "pending" {
            return e;
        }
        assert!(Instant::now() < deadline, "evaluation {eval_id} still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

    // `alloc logs` prints what is there; `alloc logs -f` keeps streaming new lines.
    let (code, out) = drover(&["alloc", "logs", &id], &agent.http);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("line 0 from svc.g[0]"), "{out}");
    let mut follow = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["alloc", "logs", "-f", "-tail", "-n", "1", &id])
        .env("NOMAD_ADDR", &agent.http)
        .stdout(Stdio::piped())
        .spawn()
        .expect("alloc logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.len() >= 3, "alloc logs -f streamed only {seen:?}");
    let numbers: Vec<u64> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "not a live, ordered stream: {seen:?}"
    );

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
    let eval = finished_eval(&agent, &r).await;
    let text = eval["FailedTGAllocs"]["g"].to_string();
    assert!(
        text.contains("missing driver") && text.contains("qemu2"),
        "{eval:#}"
    );
}

/// Whether a prerequisite holds; skips (false) with a reason, but fails under `CI=true`.
fn require(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but {what} is missing");
        }
        eprintln!("skipping: {what} is missing");
    }
    ok
}

fn exec_ready() -> bool {
    require(
        "root and runc (the exec driver)",
        nix_is_root()
            && Command::new("runc")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
    )
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("a running docker engine", ok) {
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-images.sh");
    let out = Command::new(&script).output().expect("build-test-images.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    true
}

fn task_job(id: &str, kind: &str, task: Value, network: Value) -> Value {
    json!({
        "Job": {
            "ID": id, "Name": id, "Type": kind, "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "g", "Count": 1,
                "Networks": network,
                "RestartPolicy": {"Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"},
                "ReschedulePolicy": no_reschedule(),
                "Tasks": [task]
            }]
        }
    })
}

fn log_of(agent: &Agent, alloc_id: &str, task: &str) -> String {
    std::fs::read_to_string(
        agent
            .dir
            .join("data/alloc")
            .join(alloc_id)
            .join(format!("alloc/logs/{task}.stdout.0")),
    )
    .unwrap_or_default()
}

fn terminated(alloc: &Value, task: &str) -> Value {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["Type"] == "Terminated").cloned())
        .unwrap_or_else(|| panic!("no Terminated event: {alloc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_batch_job_sees_only_its_own_processes_and_its_chroot_then_completes() {
    if !exec_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let task = json!({
        "Name": "t", "Driver": "exec",
        "Config": {"command": "/bin/sh", "args": ["-c", "echo PROCS; ls /proc | grep -c '^[0-9]'; echo ROOT; ls /; id -u"]},
        "Resources": {"CPU": 100, "MemoryMB": 64}
    });
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("isolated", "batch", task, json!(null)),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "isolated", "the exec job to complete", |a| {
        a.len() == 1 && a[0]["ClientStatus"] != "pending" && a[0]["ClientStatus"] != "running"
    })
    .await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    let full = alloc(&agent.http, &id).await;
    assert_eq!(full["ClientStatus"], "complete", "{full:#}\n{}", agent.log());
    assert_eq!(terminated(&full, "t")["ExitCode"], 0);
    let out = log_of(&agent, &id, "t");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("PROCS"), "{out}");
    let procs: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("process count");
    // The container's init, the shell, ls and grep: nothing from the host.
    assert!(procs <= 5, "the task sees {procs} processes:\n{out}");
    let root: Vec<&str> = out.split("ROOT\n").nth(1).unwrap_or("").lines().collect();
    for d in ["alloc", "local", "secrets", "tmp", "usr", "bin"] {
        assert!(root.contains(&d), "/ of the task lacks {d}: {root:?}");
    }
    assert!(
        !root.contains(&"root") && !root.contains(&"home"),
        "/ is the host's: {root:?}"
    );
    assert_eq!(
        root.last(),
        Some(&"65534"),
        "the task does not run as nobody: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_task_past_its_memory_limit_is_oom_killed_and_stop_leaves_nothing() {
    if !exec_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    // `tail` buffers a line forever: /dev/zero has no newline.
    let hog = json!({
        "Name": "t", "Driver": "exec",
        "Config": {"command": "/usr/bin/tail", "args": ["/dev/zero"]},
        "Resources": {"CPU": 100, "MemoryMB": 32}
    });
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("hog", "batch", hog, json!(null)),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "hog", "the OOM kill", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "failed"
    })
    .await;
    let full = alloc(&agent.http, a[0]["ID"].as_str().expect("id")).await;
    let t = terminated(&full, "t");
    assert!(
        t["DisplayMessage"].as_str().unwrap_or("").contains("OOM Killed"),
        "{t:#}"
    );
    assert_eq!(t["Details"]["oom_killed"], "true", "{t:#}");

    // A long exec service, stopped: no process, runc container, cgroup or mount remains.
    let sleeper = json!({
        "Name": "t", "Driver": "exec",
        "Config": {"command": "/bin/sh", "args": ["-c", "echo $$ > /local/pid; exec sleep 3600"]},
        "Resources": {"CPU": 100, "MemoryMB": 64}
    });
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("sleeper", "service", sleeper, json!(null)),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "sleeper", "sleeper running", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "running"
    })
    .await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    let alloc_root = agent.dir.join("data/alloc").join(&id);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !alloc_root.join("t/local/pid").exists() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `alloc stop`: the allocation stops (the servers place a replacement elsewhere-or-here).
    let (code, out) = drover(&["alloc", "stop", "-detach", &id], &agent.http);
    assert_eq!(code, 0, "{out}");
    let old = id.clone();
    wait_allocs(&agent, "sleeper", "the stopped allocation to finish", |a| {
        a.iter()
            .any(|x| x["ID"] == old.as_str() && x["ClientStatus"] == "complete")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Any host process still in one of the allocation's cgroups?
        let leftover = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(&id)));
        let cgroups = Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "3", "-path", &format!("*{id}*")])
            .output()
            .expect("find");
        let cg = String::from_utf8_lossy(&cgroups.stdout).to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if !leftover && cg.trim().is_empty() && !mounts.contains(&id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: process={leftover} cgroups={cg:?} mounts={}",
            mounts.lines().filter(|l| l.contains(&id)).count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_service_answers_on_its_port_survives_kill_9_and_bad_images_fail_clearly() {
    if !docker_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let web = json!({
        "Name": "web", "Driver": "docker",
        "Config": {
            "image": "drover-test/busybox:local",
            "command": "/bin/sh",
            "args": ["-c", "mkdir -p /www && echo hello-from-docker > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "ports": ["http"]
        },
        "Resources": {"CPU": 100, "MemoryMB": 64}
    });
    let network = json!([{"Mode": "host", "DynamicPorts": [{"Label": "http", "To": 8080}]}]);
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("web", "service", web, network),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "web", "web running", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "running"
    })
    .await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    let full = alloc(&agent.http, &id).await;
    let port = full["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
        .as_u64()
        .expect("port");
    let body = async || {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if body().await.is_some_and(|b| b.contains("hello-from-docker")) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing answers on 127.0.0.1:{port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let name = format!("web-{id}");
    let inspect = |what: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", what, &name])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let container = inspect("{{.Id}}");
    assert!(!container.is_empty(), "docker has no container named {name}");
    let names = Command::new("docker")
        .args(["ps", "--format", "{{.Names}}"])
        .output()
        .expect("docker ps");
    assert!(String::from_utf8_lossy(&names.stdout).lines().any(|l| l == name));

    // kill -9 the agent: the container keeps serving and is re-attached, not replaced.
    let agent = agent.restart();
    assert!(body().await.is_some_and(|b| b.contains("hello-from-docker")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inspect("{{.Id}}"), container);
    let full = alloc(&agent.http, &id).await;
    assert_eq!(full["ClientStatus"], "running");
    assert_eq!(
        events(&full, "web").iter().filter(|e| *e == "Started").count(),
        1,
        "{full:#}"
    );

    // A missing image: a Driver Failure event carrying the engine's message.
    let bad = json!({
        "Name": "bad", "Driver": "docker",
        "Config": {"image": "drover-test/does-not-exist:1.0"},
        "Resources": {"CPU": 100, "MemoryMB": 64}
    });
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("bad", "batch", bad, json!(null)),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "bad", "the bad image to fail", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "failed"
    })
    .await;
    let full = alloc(&agent.http, a[0]["ID"].as_str().expect("id")).await;
    let failure = full["TaskStates"]["bad"]["Events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["Type"] == "Driver Failure").cloned())
        .unwrap_or_else(|| panic!("no Driver Failure: {full:#}"));
    let msg = failure["DisplayMessage"].as_str().unwrap_or("").to_lowercase();
    assert!(
        msg.contains("does-not-exist")
            && (msg.contains("pull") || msg.contains("not found") || msg.contains("no such")),
        "{failure:#}"
    );

    // Stopping removes the container.
    let (code, out) = drover(&["job", "stop", "-detach", "web"], &agent.http);
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .expect("docker ps");
        if !String::from_utf8_lossy(&ps.stdout).lines().any(|l| l == name) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "container {name} still exists after the stop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
async fn wait_port(port: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{what}: nothing listens on 127.0.0.1:{port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_job_runs_as_the_readme_says() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let run = |file: &str| {
        let path = examples.join(file);
        let (code, out) = drover(
            &["job", "run", "-detach", path.to_str().expect("utf8")],
            &agent.http,
        );
        assert_eq!(code, 0, "{file}: {out}");
    };
    let single = |a: &[Value], status: &str| a.len() == 1 && a[0]["ClientStatus"] == status;

    // `job init`'s example has a service block the client does not register yet: say so.
    let init_dir = dir.path().join("init");
    std::fs::create_dir_all(&init_dir).expect("mkdir");
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "init"])
        .current_dir(&init_dir)
        .output()
        .expect("job init");
    assert!(out.status.success());
    let example = init_dir.join("example.nomad.hcl");
    let (code, out) = drover(
        &["job", "run", "-detach", example.to_str().expect("utf8")],
        &agent.http,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Job Warnings:") && out.contains("service blocks are not registered yet"),
        "{out}"
    );
    let _ = drover(&["job", "stop", "-purge", "-detach", "example"], &agent.http);

    run("raw_exec.nomad.hcl");
    let a = wait_allocs(&agent, "hello-raw", "hello-raw running", |a| single(a, "running")).await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(log_of(&agent, &id, "hello").contains("tick 0 from hello-raw.hello[0]"));

    if exec_ready() {
        run("exec.nomad.hcl");
        let a = wait_allocs(&agent, "isolated", "isolated complete", |a| single(a, "complete")).await;
        let out = log_of(&agent, a[0]["ID"].as_str().expect("id"), "look");
        assert!(
            out.contains("uid=65534(nobody)") && out.contains("== /\nalloc\n"),
            "{out}"
        );

        let java = Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if require("a JDK (java)", java) {
            run("java.nomad.hcl");
            let a = wait_allocs(&agent, "hello-java", "hello-java complete", |a| {
                single(a, "complete")
            })
            .await;
            let out = log_of(&agent, a[0]["ID"].as_str().expect("id"), "hello");
            assert!(out.starts_with("hello from java"), "{out}");
        }
    }
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if require("qemu-system-x86_64", qemu) {
        run("qemu.nomad.hcl");
        let a = wait_allocs(&agent, "tiny-vm", "tiny-vm running", |a| single(a, "running")).await;
        let full = alloc(&agent.http, a[0]["ID"].as_str().expect("id")).await;
        let port = full["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
            .as_u64()
            .expect("port");
        wait_port(port, "qemu's forwarded ssh port").await;
    }
    if docker_ready() {
        run("docker.nomad.hcl");
        let a = wait_allocs(&agent, "web", "web running", |a| single(a, "running")).await;
        let full = alloc(&agent.http, a[0]["ID"].as_str().expect("id")).await;
        let port = full["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
            .as_u64()
            .expect("port");
        wait_port(port, "the docker example's http port").await;
    }
    for job in ["hello-raw", "tiny-vm", "web"] {
        let _ = drover(&["job", "stop", "-detach", job], &agent.http);
    }
    for job in ["hello-raw", "tiny-vm", "web"] {
        wait_allocs(&agent, job, "the example to stop", |a| {
            a.iter()
                .all(|x| x["ClientStatus"] != "running" && x["ClientStatus"] != "pending")
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_hooks_run_in_order_and_sidecars_stop_with_the_main_task() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let step = |name: &str, hook: Option<(&str, bool)>, script: &str| {
        let mut t = json!({
            "Name": name, "Driver": "raw_exec",
            "Config": {"command": "/bin/sh", "args": ["-c", script]},
            "Resources": {"CPU": 50, "MemoryMB": 32},
            "KillTimeout": 2_000_000_000u64
        });
        if let Some((h, sidecar)) = hook {
            t["Lifecycle"] = json!({"Hook": h, "Sidecar": sidecar});
        }
        t
    };
    let log = "$NOMAD_ALLOC_DIR/data/order";
    let tasks = json!([
        step(
            "cleanup",
            Some(("poststop", false)),
            &format!("echo cleanup >> {log}")
        ),
        step("post", Some(("poststart", false)), &format!("echo post >> {log}")),
        step("main", None, &format!("sleep 1; echo main >> {log}; sleep 1")),
        step(
            "side",
            Some(("prestart", true)),
            &format!(
                "echo side >> {log}; trap 'echo side-stopped >> {log}; exit 0' INT; while true; do sleep 0.1; done"
            )
        ),
        step(
            "init",
            Some(("prestart", false)),
            &format!("sleep 0.5; echo init >> {log}")
        ),
    ]);
    let mut j = job(
        "life",
        "batch",
        "true",
        json!({"Attempts": 0, "Mode": "fail"}),
        no_reschedule(),
    );
    j["Job"]["TaskGroups"][0]["Tasks"] = tasks;
    let (code, r) = put(&format!("{}/v1/jobs", agent.http), &j).await;
    assert_eq!(code, 200, "{r}");
    let a = wait_allocs(&agent, "life", "the group to finish", |a| {
        a.len() == 1 && a[0]["ClientStatus"] != "pending" && a[0]["ClientStatus"] != "running"
    })
    .await;
    let id = a[0]["ID"].as_str().expect("id").to_string();
    let full = alloc(&agent.http, &id).await;
    assert_eq!(full["ClientStatus"], "complete", "{full:#}");
    let order = std::fs::read_to_string(agent.dir.join("data/alloc").join(&id).join("alloc/data/order"))
        .expect("order");
    let lines: Vec<&str> = order.lines().collect();
    let pos = |w: &str| {
        lines
            .iter()
            .position(|l| *l == w)
            .unwrap_or_else(|| panic!("{w} never ran: {lines:?}"))
    };
    assert!(
        pos("init") < pos("main") && pos("side") < pos("main"),
        "prestart must finish first: {lines:?}"
    );
    assert!(
        pos("post") > pos("side") && pos("post") > pos("init"),
        "{lines:?}"
    );
    assert!(pos("side-stopped") > pos("main"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"cleanup"), "poststop runs last: {lines:?}");
    assert!(
        events(&full, "side").contains(&"Main Tasks Dead".to_string())
            || events(&full, "side").contains(&"Killing".to_string()),
        "{full:#}"
    );
    for t in ["init", "side", "main", "post", "cleanup"] {
        assert_eq!(full["TaskStates"][t]["State"], "dead", "{t}: {full:#}");
        assert_eq!(full["TaskStates"][t]["Failed"], false, "{t}: {full:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_signal_reaches_the_task_and_kill_timeout_ends_a_stubborn_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let polite = "trap 'echo got-term > $NOMAD_TASK_DIR/sig; exit 0' TERM; while true; do sleep 0.1; done";
    let stubborn = "echo $$ > $NOMAD_TASK_DIR/pid; trap '' INT TERM; while true; do sleep 0.1; done";
    for (id, script, signal) in [("polite", polite, "SIGTERM"), ("stubborn", stubborn, "")] {
        let mut j = job(
            id,
            "service",
            script,
            json!({"Attempts": 0, "Mode": "fail"}),
            no_reschedule(),
        );
        j["Job"]["TaskGroups"][0]["Tasks"][0]["KillSignal"] = json!(signal);
        j["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!(1_000_000_000u64);
        let (code, r) = put(&format!("{}/v1/jobs", agent.http), &j).await;
        assert_eq!(code, 200, "{r}");
        wait_allocs(&agent, id, "running", |a| {
            a.len() == 1 && a[0]["ClientStatus"] == "running"
        })
        .await;
    }
    let stubborn_id = allocs(&agent.http, "stubborn").await[0]["ID"]
        .as_str()
        .expect("id")
        .to_string();
    let pid = read_pid(&agent, &stubborn_id);
    let started = Instant::now();
    for id in ["polite", "stubborn"] {
        let (code, out) = drover(&["job", "stop", "-detach", id], &agent.http);
        assert_eq!(code, 0, "{out}");
    }
    let a = wait_allocs(&agent, "polite", "polite stopped", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "complete"
    })
    .await;
    let sig = std::fs::read_to_string(
        agent
            .dir
            .join("data/alloc")
            .join(a[0]["ID"].as_str().expect("id"))
            .join("t/local/sig"),
    );
    assert_eq!(sig.expect("the task got no signal").trim(), "got-term");
    wait_allocs(&agent, "stubborn", "stubborn stopped", |a| {
        a.len() == 1 && a[0]["ClientStatus"] == "complete"
    })
    .await;
    while pid_alive(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stubborn task outlived its kill timeout"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let full = alloc(&agent.http, &stubborn_id).await;
    let killing = full["TaskStates"]["t"]["Events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["Type"] == "Killing").cloned())
        .expect("a Killing event");
    assert_eq!(killing["KillTimeout"], 1_000_000_000u64, "{killing:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_allocations_beyond_gc_max_allocs_are_collected() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start_on(
        dir.path(),
        (free_port(), free_port(), free_port()),
        "gc_max_allocs = 1",
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("done{i}");
        let (code, r) = put(
            &format!("{}/v1/jobs", agent.http),
            &job(
                &id,
                "batch",
                "echo done",
                json!({"Attempts": 0, "Mode": "fail"}),
                no_reschedule(),
            ),
        )
        .await;
        assert_eq!(code, 200, "{r}");
        let a = wait_allocs(&agent, &id, "complete", |a| {
            a.len() == 1 && a[0]["ClientStatus"] == "complete"
        })
        .await;
        ids.push(a[0]["ID"].as_str().expect("id").to_string());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let root = agent.dir.join("data/alloc");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let present: Vec<&String> = ids.iter().filter(|id| root.join(id).exists()).collect();
        if present.len() == 1 {
            assert_eq!(
                present[0], &ids[2],
                "the newest terminal allocation is the one kept"
            );
            break;
        }
        assert!(Instant::now() < deadline, "alloc dirs still present: {present:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_exec_is_not_offered_and_placement_says_why() {
    if !nix_is_root() {
        eprintln!("skipping: needs root to start an agent as nobody");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    // Nobody must reach the data dir and the binary: a copy of it in the (opened) temp dir.
    let _ = Command::new("chmod")
        .args(["0777", dir.path().to_str().expect("utf8")])
        .status();
    std::fs::copy(env!("CARGO_BIN_EXE_drover"), dir.path().join("drover")).expect("copy the binary");
    let agent = Agent::start_on(dir.path(), (free_port(), free_port(), free_port()), "#nobody");
    let (_, nodes) = get(&format!("{}/v1/nodes", agent.http)).await;
    let node_id = nodes[0]["ID"].as_str().expect("node id").to_string();
    let (_, node) = get(&format!("{}/v1/node/{node_id}", agent.http)).await;
    assert_eq!(node["Drivers"]["exec"]["Detected"], false, "{node:#}");
    assert_eq!(
        node["Drivers"]["exec"]["HealthDescription"],
        "exec driver must run as root"
    );
    assert_eq!(node["Drivers"]["raw_exec"]["Healthy"], true);

    let task = json!({"Name": "t", "Driver": "exec", "Config": {"command": "/bin/true"}, "Resources": {"CPU": 100, "MemoryMB": 32}});
    let (code, r) = put(
        &format!("{}/v1/jobs", agent.http),
        &task_job("needs-root", "batch", task, json!(null)),
    )
    .await;
    assert_eq!(code, 200, "{r}");
    let eval = finished_eval(&agent, &r).await;
    let text = eval["FailedTGAllocs"]["g"].to_string();
    assert!(
        text.contains("missing driver") && text.contains("exec"),
        "{eval:#}"
    );
}
