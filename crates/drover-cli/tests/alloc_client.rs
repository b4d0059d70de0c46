//! `alloc logs|restart|signal|stop`, the resources in `alloc status` and the host statistics
//! of `node status`, against canned agents ([`FakeAgent`]): the requests sent, the text
//! printed, the exit codes. Argument errors are checked on the real binary.

use std::process::Command;

use drover_api::Client;
use drover_api::testing::{Canned, FakeAgent, Recorded};
use drover_cli::alloc::{
    self, AllocLogsArgs, AllocRestartArgs, AllocSignalArgs, AllocStatusArgs, AllocStopArgs,
};
use drover_cli::common::{ApiArgs, Captured, Ui};
use drover_cli::node::{self, NodeStatusArgs};
use serde_json::{Value, json};

const ALLOC: &str = "0f3a1b2c-1111-2222-3333-444444444444";
const NODE: &str = "9d8e7f6a-1111-2222-3333-444444444444";
const EVAL: &str = "5a6b7c8d-1111-2222-3333-444444444444";

fn ui() -> (Ui, Captured) {
    Ui::capture("")
}

fn alloc_json(tasks: &[&str]) -> Value {
    let task_list: Vec<Value> = tasks
        .iter()
        .map(|t| json!({"Name": t, "Driver": "raw_exec", "Resources": {"CPU": 500, "MemoryMB": 256}}))
        .collect();
    let states: serde_json::Map<String, Value> = tasks
        .iter()
        .map(|t| (t.to_string(), json!({"State": "running", "Events": []})))
        .collect();
    let alloc_tasks: serde_json::Map<String, Value> = tasks
        .iter()
        .map(|t| {
            (
                t.to_string(),
                json!({"Cpu": {"CpuShares": 500}, "Memory": {"MemoryMB": 256}}),
            )
        })
        .collect();
    json!({
        "ID": ALLOC, "EvalID": EVAL, "Name": "web.web[0]", "NodeID": NODE, "NodeName": "n1",
        "JobID": "web", "TaskGroup": "web", "DesiredStatus": "run", "ClientStatus": "running",
        "Job": {"ID": "web", "Name": "web", "Type": "service", "TaskGroups": [{
            "Name": "web", "Count": 1,
            "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
            "Tasks": task_list
        }]},
        "AllocatedResources": {
            "Tasks": alloc_tasks,
            "Shared": {"DiskMB": 300, "Networks": [{"Mode": "host"}],
                       "Ports": [{"Label": "http", "Value": 23456, "To": 8080, "HostIP": "127.0.0.1"}]}
        },
        "TaskStates": states,
        "CreateIndex": 12, "ModifyIndex": 12
    })
}

/// Frames as the agent writes them: concatenated JSON objects.
fn frames(parts: &[&str]) -> String {
    let mut out = String::from("{}");
    let mut offset = 0;
    for p in parts {
        offset += p.len() as i64;
        let f = drover_api::StreamFrame {
            offset,
            data: p.as_bytes().to_vec(),
            file: "alloc/logs/web.stdout.0".into(),
            file_event: String::new(),
        };
        out.push_str(&serde_json::to_string(&f).expect("frame"));
    }
    out
}

/// An agent with one allocation of `tasks`; the node is unknown (so calls stay on this agent).
async fn agent(tasks: &'static [&'static str], logs: &'static str) -> FakeAgent {
    FakeAgent::start(move |r: &Recorded| {
        let alloc_path = format!("/v1/allocation/{ALLOC}");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v1/allocations") => Canned::json(
                12,
                json!([{"ID": ALLOC, "NodeID": NODE, "JobID": "web", "TaskGroup": "web", "ClientStatus": "running", "CreateIndex": 12}]),
            ),
            ("GET", p) if p == alloc_path => Canned::json(12, alloc_json(tasks)),
            ("GET", p) if p.starts_with("/v1/client/fs/logs/") => Canned {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: logs.to_string(),
            },
            ("PUT", p) if p.ends_with("/restart") || p.ends_with("/signal") => Canned::json(0, json!({"Index": 0})),
            ("PUT", p) if p == format!("{alloc_path}/stop") => {
                Canned::json(20, json!({"EvalID": EVAL, "Index": 20}))
            }
            ("GET", p) if p.ends_with("/stats") => Canned::json(
                0,
                json!({"ResourceUsage": {}, "Timestamp": 1, "Tasks": {"web": {"ResourceUsage": {
                    "MemoryStats": {"RSS": 3_145_728, "Measured": ["RSS"]},
                    "CpuStats": {"TotalTicks": 2.7, "Percent": 0.1}}, "Timestamp": 1}}}),
            ),
            _ => Canned::not_found(),
        }
    })
    .await
    .expect("fake agent")
}

fn client(a: &FakeAgent) -> Client {
    Client::new(a.address()).expect("client")
}

fn logs_args(task: Option<&str>) -> AllocLogsArgs {
    AllocLogsArgs {
        stderr: false,
        follow: false,
        tail: false,
        lines: None,
        bytes: None,
        job: false,
        task: None,
        verbose: false,
        alloc: ALLOC[..8].to_string(),
        task_name: task.map(str::to_string),
        api: ApiArgs::default(),
    }
}

fn logs_requests(a: &FakeAgent) -> Vec<Recorded> {
    a.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/client/fs/logs/"))
        .collect()
}

#[tokio::test]
async fn logs_of_the_only_task_are_printed() {
    let a = agent(
        &["web"],
        Box::leak(frames(&["hello\n", "world\n"]).into_boxed_str()),
    )
    .await;
    let (mut u, cap) = ui();
    let code = alloc::alloc_logs(&logs_args(None), &client(&a), &mut u).await;
    assert_eq!(code, 0, "{}", cap.err());
    assert_eq!(cap.out(), "hello\nworld\n");
    let r = &logs_requests(&a)[0];
    assert_eq!(r.path, format!("/v1/client/fs/logs/{ALLOC}"));
    assert_eq!(r.param("task"), Some("web"));
    assert_eq!(r.param("type"), Some("stdout"));
    assert_eq!(r.param("origin"), Some("start"));
    assert_eq!(r.param("follow"), Some("false"));
}

#[tokio::test]
async fn several_tasks_need_a_name_and_unknown_names_are_refused() {
    let a = agent(&["api", "web"], "{}").await;
    let (mut u, cap) = ui();
    assert_eq!(alloc::alloc_logs(&logs_args(None), &client(&a), &mut u).await, 1);
    assert!(
        cap.err()
            .contains("is running the following tasks:\n  * api\n  * web"),
        "{}",
        cap.err()
    );
    assert!(cap.err().contains("Please specify the task."));
    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_logs(&logs_args(Some("db")), &client(&a), &mut u).await,
        1
    );
    assert!(
        cap.err().contains("Could not find task named: \"db\""),
        "{}",
        cap.err()
    );
    assert!(logs_requests(&a).is_empty(), "no log request for a bad task");
    let (mut u, cap) = ui();
    let mut args = logs_args(Some("web"));
    args.stderr = true;
    assert_eq!(
        alloc::alloc_logs(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    assert_eq!(logs_requests(&a)[0].param("type"), Some("stderr"));
}

#[tokio::test]
async fn tail_by_lines_and_bytes() {
    let a = agent(
        &["web"],
        Box::leak(frames(&["one\ntwo\n", "three\nfour\n"]).into_boxed_str()),
    )
    .await;
    let (mut u, cap) = ui();
    let mut args = logs_args(None);
    args.tail = true;
    args.lines = Some(2);
    assert_eq!(
        alloc::alloc_logs(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    assert_eq!(cap.out(), "three\nfour\n");
    let r = &logs_requests(&a)[0];
    assert_eq!(r.param("origin"), Some("end"));
    assert_eq!(r.param("offset"), Some("4096"));

    let (mut u, _cap) = ui();
    let mut args = logs_args(None);
    args.bytes = Some(5);
    assert_eq!(alloc::alloc_logs(&args, &client(&a), &mut u).await, 0);
    let r = logs_requests(&a).pop().expect("second request");
    assert_eq!((r.param("origin"), r.param("offset")), (Some("end"), Some("5")));
}

#[tokio::test]
async fn restart_and_signal_send_nomads_bodies() {
    let a = agent(&["api", "web"], "{}").await;
    let (mut u, cap) = ui();
    let args = AllocRestartArgs {
        task: None,
        all_tasks: false,
        verbose: false,
        alloc: ALLOC.into(),
        task_name: Some("web".into()),
        api: ApiArgs::default(),
    };
    assert_eq!(
        alloc::alloc_restart(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    let (mut u, cap) = ui();
    let bad = AllocRestartArgs {
        all_tasks: true,
        ..args.clone()
    };
    assert_eq!(alloc::alloc_restart(&bad, &client(&a), &mut u).await, 1);
    assert!(
        cap.err().contains("-all-tasks option is not allowed"),
        "{}",
        cap.err()
    );

    let (mut u, cap) = ui();
    let sig = AllocSignalArgs {
        signal: Some("SIGUSR1".into()),
        task: Some("api".into()),
        verbose: false,
        alloc: ALLOC.into(),
        task_name: None,
        api: ApiArgs::default(),
    };
    assert_eq!(
        alloc::alloc_signal(&sig, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    let reqs = a.requests();
    let restart = reqs
        .iter()
        .find(|r| r.path.ends_with("/restart"))
        .expect("restart sent");
    assert_eq!(restart.method, "PUT");
    assert_eq!(restart.path, format!("/v1/client/allocation/{ALLOC}/restart"));
    let body: Value = serde_json::from_str(&restart.body).expect("json");
    assert_eq!(body, json!({"TaskName": "web", "AllTasks": false}));
    let signal = reqs
        .iter()
        .find(|r| r.path.ends_with("/signal"))
        .expect("signal sent");
    let body: Value = serde_json::from_str(&signal.body).expect("json");
    assert_eq!(body, json!({"Task": "api", "Signal": "SIGUSR1"}));
}

#[tokio::test]
async fn stop_detached_prints_the_evaluation() {
    let a = agent(&["web"], "{}").await;
    let (mut u, cap) = ui();
    let args = AllocStopArgs {
        detach: true,
        verbose: false,
        no_shutdown_delay: false,
        alloc: ALLOC[..6].into(),
        api: ApiArgs::default(),
    };
    assert_eq!(
        alloc::alloc_stop(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    assert_eq!(cap.out(), format!("{EVAL}\n"));
    assert!(
        a.requests()
            .iter()
            .any(|r| r.route() == format!("PUT /v1/allocation/{ALLOC}/stop"))
    );
}

#[tokio::test]
async fn status_shows_task_resources_and_addresses() {
    let a = agent(&["web"], "{}").await;
    let (mut u, cap) = ui();
    let args = AllocStatusArgs {
        json: false,
        verbose: false,
        alloc: ALLOC.into(),
        api: ApiArgs::default(),
    };
    assert_eq!(
        alloc::alloc_status(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    let out = cap.out();
    assert!(
        out.contains("Allocation Addresses (mode = \"host\"):\nLabel  Dynamic  Address\n*http  yes      127.0.0.1:23456 -> 8080"),
        "{out}"
    );
    assert!(
        out.contains(
            "Task Resources:\nCPU        Memory           Disk     Addresses\n2/500 MHz  3.0 MiB/256 MiB  300 MiB  http: 127.0.0.1:23456"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn node_status_shows_host_utilization_when_the_agent_answers() {
    let a = FakeAgent::start(|r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/nodes") => Canned::json(5, json!([{"ID": NODE, "Name": "n1", "Status": "ready"}])),
        ("GET", p) if p == format!("/v1/node/{NODE}") => Canned::json(
            5,
            json!({"ID": NODE, "Name": "n1", "Status": "ready", "NodeResources": {"Cpu": {"CpuShares": 4000}}}),
        ),
        ("GET", p) if p == format!("/v1/node/{NODE}/allocations") => Canned::json(5, json!([])),
        ("GET", "/v1/client/stats") => Canned::json(
            0,
            json!({"Memory": {"Total": 8_589_934_592_u64, "Used": 2_254_857_830_u64}, "CPUTicksConsumed": 400.7,
                   "Uptime": 10921, "AllocDirStats": {"Device": "", "Size": 53_687_091_200_u64, "Used": 10_737_418_240_u64}}),
        ),
        _ => Canned::not_found(),
    })
    .await
    .expect("fake agent");
    let (mut u, cap) = ui();
    let args = NodeStatusArgs {
        json: false,
        verbose: false,
        self_node: false,
        node: Some(NODE.into()),
        api: ApiArgs::default(),
    };
    assert_eq!(
        node::node_status(&args, &client(&a), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    let out = cap.out();
    assert!(out.contains("Uptime          = 3h2m1s"), "{out}");
    assert!(
        out.contains("Host Resource Utilization\nCPU           Memory           Disk\n400/4000 MHz  2.1 GiB/8.0 GiB  10 GiB/50 GiB"),
        "{out}"
    );
    let stats = a
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/client/stats")
        .expect("stats asked");
    assert_eq!(stats.param("node_id"), Some(NODE));
}

#[tokio::test]
async fn node_local_calls_go_to_the_nodes_own_agent_first() {
    let node_agent = agent(&["web"], Box::leak(frames(&["from the node\n"]).into_boxed_str())).await;
    let node_addr = node_agent.address().trim_start_matches("http://").to_string();
    let server = FakeAgent::start(move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/allocations") => Canned::json(
            12,
            json!([{"ID": ALLOC, "NodeID": NODE, "ClientStatus": "running"}]),
        ),
        ("GET", p) if p == format!("/v1/allocation/{ALLOC}") => Canned::json(12, alloc_json(&["web"])),
        ("GET", p) if p == format!("/v1/node/{NODE}") => {
            Canned::json(5, json!({"ID": NODE, "Status": "ready", "HTTPAddr": node_addr}))
        }
        _ => Canned::text(400, "This agent is not running a client"),
    })
    .await
    .expect("fake server");
    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_logs(&logs_args(None), &client(&server), &mut u).await,
        0,
        "{}",
        cap.err()
    );
    assert_eq!(cap.out(), "from the node\n");
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/v1/client/"))
    );
}

fn drover(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .expect("drover runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn argument_errors() {
    let (code, err) = drover(&["alloc", "logs"]);
    assert_eq!(code, 1);
    assert!(err.contains("<ALLOC>"), "{err}");
    let (code, err) = drover(&["alloc", "logs", "-n", "3", "-c", "10", "abcd"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, err) = drover(&["alloc", "logs", "-n", "many", "abcd"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid value 'many'"), "{err}");
    let (code, err) = drover(&["alloc", "signal", "-s"]);
    assert_eq!(code, 1);
    assert!(err.contains("a value is required"), "{err}");
    let (code, err) = drover(&["alloc", "stop"]);
    assert_eq!(code, 1);
    assert!(err.contains("<ALLOC>"), "{err}");
    let (code, err) = drover(&["alloc", "restart", "a", "b", "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("unexpected argument"), "{err}");
    // A one-character prefix is refused before any request (nothing listens on port 1).
    let (code, err) = drover(&["alloc", "logs", "a"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Alloc ID must contain at least two characters."),
        "{err}"
    );
    // Go-style long flags work.
    let (code, err) = drover(&["alloc", "logs", "-stderr", "-tail", "-f", "abcd"]);
    assert_eq!(code, 1);
    assert!(err.contains("Error querying allocation"), "{err}");
}
