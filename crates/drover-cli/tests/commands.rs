//! The command entry points against a canned-response agent ([`FakeAgent`]): the requests they
//! send, the text they print and their exit codes. Fixtures are written from
//! `reference/http-api.md` §2–3.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use drover_api::Client;
use drover_api::testing::{Canned, FakeAgent, Recorded};
use drover_cli::common::{ApiArgs, Ui};
use drover_cli::job::{self, FileArgs, PlanArgs, RunArgs, StopArgs};
use drover_cli::{alloc, deployment, eval, job_status, node, operator, server};
use serde_json::{Value, json};

const EVAL: &str = "5a6b7c8d-1111-2222-3333-444444444444";
const ALLOC: &str = "0f3a1b2c-1111-2222-3333-444444444444";
const NODE: &str = "9d8e7f6a-1111-2222-3333-444444444444";
const DEPLOY: &str = "2fb9d6b5-1111-2222-3333-444444444444";
/// 2025-01-01T10:00:00Z.
const NOW: i64 = 1_735_725_600_000_000_000;

fn fixed_now() -> i64 {
    NOW
}

fn ui() -> (Ui, drover_cli::common::Captured) {
    let (mut ui, cap) = Ui::capture("");
    ui.now = fixed_now;
    (ui, cap)
}

fn job_file(name: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("drover-cli-cmd-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.nomad.hcl"));
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const WEB: &str = r#"job "web" {
  group "web" {
    count = 2
    task "server" {
      driver = "raw_exec"
      config { command = "/bin/sleep" }
    }
  }
}
"#;

fn run_args(file: String) -> RunArgs {
    RunArgs {
        output: false,
        detach: false,
        verbose: false,
        check_index: None,
        policy_override: false,
        preserve_counts: false,
        eval_priority: 0,
        file: FileArgs::path(file),
        api: ApiArgs::default(),
    }
}

fn eval_json(status: &str, extra: Value) -> Value {
    let mut e = json!({
        "ID": EVAL, "Namespace": "default", "Priority": 50, "Type": "service",
        "TriggeredBy": "job-register", "JobID": "web", "Status": status,
        "CreateIndex": 10, "ModifyIndex": 11
    });
    if let (Some(m), Value::Object(x)) = (e.as_object_mut(), extra) {
        m.extend(x);
    }
    e
}

fn alloc_stub(id: &str, client_status: &str) -> Value {
    json!({"ID": id, "EvalID": EVAL, "Name": "web.web[0]", "NodeID": NODE, "JobID": "web",
           "TaskGroup": "web", "DesiredStatus": "run", "ClientStatus": client_status,
           "CreateIndex": 12, "ModifyIndex": 12, "CreateTime": NOW, "ModifyTime": NOW})
}

fn routes(r: &Recorded, polls: &AtomicUsize, deployment: bool) -> Canned {
    match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/v1/jobs") => Canned::json(
            10,
            json!({"EvalID": EVAL, "EvalCreateIndex": 10, "JobModifyIndex": 10}),
        ),
        ("GET", p) if p == format!("/v1/evaluation/{EVAL}") => {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                Canned::json(10, eval_json("pending", json!({})))
            } else if deployment {
                Canned::json(11, eval_json("complete", json!({"DeploymentID": DEPLOY})))
            } else {
                Canned::json(11, eval_json("complete", json!({})))
            }
        }
        ("GET", p) if p == format!("/v1/evaluation/{EVAL}/allocations") => {
            if polls.load(Ordering::SeqCst) <= 1 {
                Canned::json(10, json!([]))
            } else {
                Canned::json(12, json!([alloc_stub(ALLOC, "pending")]))
            }
        }
        ("GET", p) if p == format!("/v1/deployment/{DEPLOY}") => Canned::json(
            20,
            json!({"ID": DEPLOY, "JobID": "web", "JobVersion": 0, "Status": "successful",
                   "StatusDescription": "Deployment completed successfully",
                   "TaskGroups": {"web": {"DesiredTotal": 2, "PlacedAllocs": 2, "HealthyAllocs": 2,
                                          "RequireProgressBy": "2025-01-01T10:10:00Z"}}}),
        ),
        _ => Canned::not_found(),
    }
}

#[tokio::test]
async fn run_monitors_the_evaluation_and_the_deployment() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let agent = FakeAgent::start(move |r| routes(r, &p, true)).await.unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (mut ui, cap) = ui();
    let code = job::run_job(&run_args(job_file("web", WEB)), &client, &mut ui).await;
    let out = cap.out();
    assert_eq!(code, 0, "{out}\n{}", cap.err());
    let ts = "2025-01-01T10:00:00Z";
    let expected = format!(
        "==> {ts}: Monitoring evaluation \"5a6b7c8d\"\n    \
         {ts}: Evaluation triggered by job \"web\"\n    \
         {ts}: Evaluation within deployment: \"2fb9d6b5\"\n    \
         {ts}: Allocation \"0f3a1b2c\" created: node \"9d8e7f6a\", group \"web\"\n    \
         {ts}: Evaluation status changed: \"pending\" -> \"complete\"\n\
         ==> {ts}: Evaluation \"5a6b7c8d\" finished with status \"complete\"\n\
         ==> {ts}: Monitoring deployment \"2fb9d6b5\"\n  \
         ✓ Deployment \"2fb9d6b5\" successful\n\
         \n    \
         {ts}\n    \
         ID          = 2fb9d6b5\n    \
         Job ID      = web\n    \
         Job Version = 0\n    \
         Status      = successful\n    \
         Description = Deployment completed successfully\n\
         \n    \
         Deployed\n    \
         Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline\n    \
         web         2        2       2        0          2025-01-01T10:10:00Z\n"
    );
    assert_eq!(out, expected);

    let reqs = agent.requests();
    let register: Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(register["Job"]["ID"], "web");
    assert_eq!(register["Job"]["TaskGroups"][0]["Count"], 2);
    assert_eq!(register["EnforceIndex"], false);
    assert!(
        reqs.iter()
            .filter(|r| r.path.starts_with("/v1/evaluation/"))
            .all(|r| r.path.ends_with("/allocations") || r.param("related") == Some("true")),
        "evaluations are read with related=true"
    );
}

#[tokio::test]
async fn run_reports_placement_failures_with_exit_2() {
    let agent = FakeAgent::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/v1/jobs") => Canned::json(10, json!({"EvalID": EVAL})),
        ("GET", p) if p.ends_with("/allocations") => Canned::json(10, json!([])),
        ("GET", _) => Canned::json(
            11,
            eval_json(
                "complete",
                json!({"BlockedEval": "bbbbbbbb-0000-0000-0000-000000000000",
                       "FailedTGAllocs": {"web": {"NodesEvaluated": 1, "NodesExhausted": 1,
                          "CoalescedFailures": 1,
                          "ConstraintFiltered": {"${attr.kernel.name} = windows": 2},
                          "DimensionExhausted": {"memory": 1}}}}),
            ),
        ),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (mut ui, cap) = ui();
    let code = job::run_job(&run_args(job_file("fail", WEB)), &client, &mut ui).await;
    assert_eq!(code, 2);
    let out = cap.out();
    let ts = "2025-01-01T10:00:00Z";
    assert!(
        out.ends_with(&format!(
            "==> {ts}: Evaluation \"5a6b7c8d\" finished with status \"complete\" but failed to place all allocations:\n    \
             {ts}: Task Group \"web\" (failed to place 2 allocations):\n      \
             * Constraint \"${{attr.kernel.name}} = windows\": 2 nodes excluded by filter\n      \
             * Resources exhausted on 1 nodes\n      \
             * Dimension \"memory\" exhausted on 1 nodes\n    \
             {ts}: Evaluation \"bbbbbbbb\" waiting for additional capacity to place remainder\n"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn run_detach_and_check_index() {
    let agent = FakeAgent::start(|r| {
        let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
        if body["EnforceIndex"] == true {
            Canned::text(
                500,
                "1 error occurred:\n\t* Enforcing job modify index 0: job already exists\n\n",
            )
        } else {
            Canned::json(
                10,
                json!({"EvalID": EVAL, "Warnings": "group \"web\": deprecated field"}),
            )
        }
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let file = job_file("detach", WEB);

    let mut a = run_args(file.clone());
    a.detach = true;
    let (mut ui1, cap) = ui();
    assert_eq!(job::run_job(&a, &client, &mut ui1).await, 0);
    assert_eq!(
        cap.out(),
        format!(
            "Job Warnings:\ngroup \"web\": deprecated field\n\n\
             Job registration successful\nEvaluation ID: {EVAL}\n"
        )
    );

    let mut a = run_args(file);
    a.check_index = Some(0);
    let (mut ui2, cap) = ui();
    assert_eq!(job::run_job(&a, &client, &mut ui2).await, 1);
    assert_eq!(
        cap.err(),
        "Enforcing job modify index 0: job already exists\nJob not updated\n"
    );
    let body: Value = serde_json::from_str(&agent.requests()[1].body).unwrap();
    assert_eq!(
        (body["EnforceIndex"].clone(), body["JobModifyIndex"].clone()),
        (json!(true), json!(0))
    );
}

#[tokio::test]
async fn plan_prints_the_diff_and_exit_codes() {
    let agent = FakeAgent::start(|r| match r.path.as_str() {
        "/v1/job/web/plan" => Canned::json(
            7,
            json!({"Annotations": {"DesiredTGUpdates": {"web": {"Place": 2}}},
                   "JobModifyIndex": 0, "FailedTGAllocs": null, "CreatedEvals": null,
                   "Diff": {"Type": "Added", "ID": "web", "TaskGroups": [
                       {"Type": "Added", "Name": "web", "Updates": {"create": 2},
                        "Tasks": [{"Type": "Added", "Name": "server", "Annotations": ["forces create"]}]}]}}),
        ),
        _ => Canned::text(500, "No cluster leader"),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let file = job_file("plan", WEB);
    let args = PlanArgs {
        diff: true,
        verbose: false,
        policy_override: false,
        file: FileArgs::path(file.clone()),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(job::plan_job(&args, &client, &mut u).await, 1);
    let out = cap.out();
    assert!(
        out.starts_with(&format!(
            "+ Job: \"web\"\n+ Task Group: \"web\" (2 create)\n  + Task: \"server\" (forces create)\n\n\
             Scheduler dry-run:\n- All tasks successfully allocated.\n\n\
             Job Modify Index: 0\nTo submit the job with version verification run:\n\n\
             drover job run -check-index 0 {file}\n"
        )),
        "{out}"
    );
    let body: Value = serde_json::from_str(&agent.requests()[0].body).unwrap();
    assert_eq!(body["Diff"], true);

    let other = job_file("other", &WEB.replace("job \"web\"", "job \"other\""));
    let args = PlanArgs {
        file: FileArgs::path(other),
        ..args
    };
    let (mut u, cap) = ui();
    assert_eq!(job::plan_job(&args, &client, &mut u).await, 255);
    assert!(
        cap.err()
            .contains("Error during plan: Unexpected response code: 500 (No cluster leader)")
    );
}

fn status_agent() -> impl Fn(&Recorded) -> Canned + Send + Sync + 'static {
    |r| match r.path.as_str() {
        "/v1/jobs" => {
            let all = json!([
                {"ID": "web", "Type": "service", "Priority": 50, "Status": "running", "SubmitTime": NOW,
                 "JobSummary": {"JobID": "web", "Namespace": "default"}},
                {"ID": "web-canary", "Type": "service", "Priority": 50, "Status": "pending", "SubmitTime": NOW},
                {"ID": "batch/periodic-1", "Type": "batch", "Priority": 40, "Status": "dead", "Stop": true, "SubmitTime": NOW}
            ]);
            let prefix = r.param("prefix").unwrap_or("").replace("%2F", "/");
            let list: Vec<Value> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["ID"].as_str().unwrap_or("").starts_with(&prefix))
                .cloned()
                .collect();
            Canned::json(30, Value::Array(list))
        }
        "/v1/job/web" => Canned::json(
            30,
            json!({"ID": "web", "Name": "web", "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
                   "Namespace": "default", "NodePool": "default", "Status": "running", "SubmitTime": NOW,
                   "TaskGroups": [{"Name": "web", "Count": 1}]}),
        ),
        "/v1/job/web/summary" => Canned::json(
            30,
            json!({"JobID": "web", "Namespace": "default", "Summary": {"web": {"Running": 1}}, "Children": null}),
        ),
        "/v1/job/web/allocations" => Canned::json(30, json!([alloc_stub(ALLOC, "running")])),
        "/v1/job/web/evaluations" => Canned::json(30, json!([eval_json("complete", json!({}))])),
        "/v1/job/web/deployment" => Canned::json(30, json!(null)),
        "/v1/job/batch%2Fperiodic-1" => Canned::json(30, json!({"ID": "batch/periodic-1", "Type": "batch"})),
        _ => Canned::not_found(),
    }
}

fn status_args(job: Option<&str>) -> job_status::StatusArgs {
    job_status::StatusArgs {
        json: false,
        verbose: false,
        short: false,
        evals: false,
        all_allocs: false,
        job: job.map(str::to_string),
        api: ApiArgs::default(),
    }
}

#[tokio::test]
async fn status_lists_resolves_prefixes_and_shows_a_job() {
    let agent = FakeAgent::start(status_agent()).await.unwrap();
    let client = Client::new(agent.address()).unwrap();

    let (mut u, cap) = ui();
    assert_eq!(
        job_status::job_status(&status_args(None), &client, &mut u).await,
        0
    );
    assert_eq!(
        cap.out(),
        "ID                Type     Priority  Status          Submit Date\n\
         web               service  50        running         2025-01-01T10:00:00Z\n\
         web-canary        service  50        pending         2025-01-01T10:00:00Z\n\
         batch/periodic-1  batch    40        dead (stopped)  2025-01-01T10:00:00Z\n"
    );

    // "web" is an exact match even though "web-canary" shares the prefix.
    let (mut u, cap) = ui();
    assert_eq!(
        job_status::job_status(&status_args(Some("web")), &client, &mut u).await,
        0
    );
    let out = cap.out();
    assert!(
        out.starts_with("ID            = web\nName          = web\n"),
        "{out}"
    );
    assert!(out.contains("Datacenters   = dc1\n"), "{out}");
    assert!(
        out.ends_with(
            "Allocations\n\
             ID        Node ID   Task Group  Version  Desired  Status   Created  Modified\n\
             0f3a1b2c  9d8e7f6a  web         0        run      running  0s ago   0s ago\n"
        ),
        "{out}"
    );

    // "we" is ambiguous: list and exit 1.
    let (mut u, cap) = ui();
    assert_eq!(
        job_status::job_status(&status_args(Some("we")), &client, &mut u).await,
        1
    );
    assert!(
        cap.err()
            .starts_with("Prefix matched multiple jobs\n\nID          Type"),
        "{}",
        cap.err()
    );

    let (mut u, cap) = ui();
    assert_eq!(
        job_status::job_status(&status_args(Some("nope")), &client, &mut u).await,
        1
    );
    assert_eq!(cap.err(), "No job(s) with prefix or ID \"nope\" found\n");

    // -json prints the job; an ID with a slash is escaped in the path.
    let mut a = status_args(Some("batch/periodic-1"));
    a.json = true;
    let (mut u, cap) = ui();
    assert_eq!(job_status::job_status(&a, &client, &mut u).await, 0);
    let v: Value = serde_json::from_str(&cap.out()).unwrap();
    assert_eq!(v["ID"], "batch/periodic-1");
    assert!(cap.out().starts_with("{\n    \"Region\""), "four-space JSON");

    // The top-level `status` with an ID finds the job too.
    let s = server::StatusArgs {
        json: false,
        verbose: false,
        id: Some("web-c".into()),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(
        server::status(&s, &client, &mut u).await,
        1,
        "web-canary has no detail route"
    );
    assert!(cap.err().contains("job not found") || cap.err().contains("resource not found"));
}

#[tokio::test]
async fn stop_confirms_prefixes_purges_and_detaches() {
    let agent = FakeAgent::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/jobs") => Canned::json(1, json!([{"ID": "web-canary", "Type": "service"}])),
        ("DELETE", "/v1/job/web-canary") => Canned::json(2, json!({"EvalID": EVAL})),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let mut a = StopArgs {
        purge: true,
        detach: true,
        yes: false,
        global: false,
        no_shutdown_delay: false,
        eval_priority: 0,
        verbose: false,
        job: "web-c".into(),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = Ui::capture("n\n");
    assert_eq!(job::stop_job(&a, &client, &mut u).await, 0);
    assert_eq!(
        cap.out(),
        "Are you sure you want to stop job \"web-canary\"? [y/N] Cancelling job stop\n"
    );
    assert!(agent.requests().iter().all(|r| r.method != "DELETE"));

    a.yes = true;
    let (mut u, cap) = ui();
    assert_eq!(job::stop_job(&a, &client, &mut u).await, 0);
    assert_eq!(cap.out(), format!("{EVAL}\n"));
    let del = agent
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(del.param("purge"), Some("true"));
}

#[tokio::test]
async fn eval_status_resolves_a_prefix() {
    let agent = FakeAgent::start(|r| match r.path.as_str() {
        "/v1/evaluations" => Canned::json(1, json!([eval_json("complete", json!({}))])),
        p if p == format!("/v1/evaluation/{EVAL}") => {
            Canned::json(1, eval_json("complete", json!({"CreateTime": NOW})))
        }
        p if p == format!("/v1/evaluation/{EVAL}/allocations") => {
            Canned::json(1, json!([alloc_stub(ALLOC, "running")]))
        }
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let a = eval::EvalStatusArgs {
        json: false,
        verbose: false,
        eval: "5a6b".into(),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(eval::eval_status(&a, &client, &mut u).await, 0);
    let out = cap.out();
    assert!(
        out.starts_with("ID                 = 5a6b7c8d\nCreate Time        = 0s ago\n"),
        "{out}"
    );
    assert!(out.contains("Placement Failures = false\n"), "{out}");
    assert!(out.contains("\nPlaced Allocations\nID        Node ID"), "{out}");
    assert_eq!(agent.requests()[0].param("prefix"), Some("5a6b"));
}

#[tokio::test]
async fn node_commands() {
    let agent = FakeAgent::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/nodes") => Canned::json(
            1,
            json!([{"ID": NODE, "Name": "node-1", "Datacenter": "dc1", "NodePool": "default",
                    "Drain": false, "SchedulingEligibility": "eligible", "Status": "ready"}]),
        ),
        ("PUT", p) if p.ends_with("/drain") => Canned::json(2, json!({"NodeModifyIndex": 2})),
        ("PUT", p) if p.ends_with("/eligibility") => Canned::json(3, json!({"NodeModifyIndex": 3})),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();

    let (mut u, cap) = ui();
    let list = node::NodeStatusArgs {
        json: false,
        verbose: false,
        self_node: false,
        node: None,
        api: ApiArgs::default(),
    };
    assert_eq!(node::node_status(&list, &client, &mut u).await, 0);
    assert_eq!(
        cap.out(),
        "ID        Node Pool  DC   Name    Class   Drain  Eligibility  Status\n\
         9d8e7f6a  default    dc1  node-1  <none>  false  eligible     ready\n"
    );

    let drain = node::DrainArgs {
        enable: true,
        disable: false,
        deadline: Some("30m".into()),
        force: false,
        no_deadline: false,
        ignore_system: true,
        keep_ineligible: false,
        detach: true,
        monitor: false,
        yes: true,
        self_node: false,
        message: Some("kernel upgrade".into()),
        node: Some("9d8e".into()),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(node::node_drain(&drain, &client, &mut u).await, 0);
    assert_eq!(cap.out(), format!("Node \"{NODE}\" drain strategy set\n"));
    let put = agent.requests().into_iter().find(|r| r.method == "PUT").unwrap();
    let body: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(
        body,
        json!({"NodeID": NODE, "DrainSpec": {"Deadline": 1_800_000_000_000i64, "IgnoreSystemJobs": true},
               "MarkEligible": false, "Meta": {"message": "kernel upgrade"}})
    );

    let disable = node::DrainArgs {
        enable: false,
        disable: true,
        deadline: None,
        ignore_system: false,
        message: None,
        ..drain
    };
    let (mut u, cap) = ui();
    assert_eq!(node::node_drain(&disable, &client, &mut u).await, 0);
    assert_eq!(cap.out(), format!("Node \"{NODE}\" drain strategy unset\n"));
    let last: Value = serde_json::from_str(&agent.requests().last().unwrap().body).unwrap();
    assert_eq!(
        (last["DrainSpec"].clone(), last["MarkEligible"].clone()),
        (Value::Null, json!(true))
    );

    let elig = node::EligibilityArgs {
        enable: false,
        disable: true,
        self_node: false,
        node: Some(NODE.into()),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(node::node_eligibility(&elig, &client, &mut u).await, 0);
    assert_eq!(
        cap.out(),
        format!("Node \"{NODE}\" scheduling eligibility set: ineligible for scheduling\n")
    );
    let last: Value = serde_json::from_str(&agent.requests().last().unwrap().body).unwrap();
    assert_eq!(last["Eligibility"], "ineligible");
}

#[tokio::test]
async fn server_members_and_scheduler_config() {
    let agent = FakeAgent::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/v1/agent/members") => Canned::json(
            0,
            json!({"ServerName": "s1", "ServerRegion": "global", "ServerDC": "dc1", "Members": [
                {"Name": "s1.global", "Addr": "127.0.0.1", "Port": 4648, "Status": "alive",
                 "Tags": {"region": "global", "dc": "dc1", "port": "4647", "raft_vsn": "3", "build": "0.1.0"}}]}),
        ),
        ("GET", "/v1/status/leader") => Canned::json(0, json!("127.0.0.1:4647")),
        ("GET", "/v1/operator/scheduler/configuration") => Canned::json(
            5,
            json!({"SchedulerConfig": {"SchedulerAlgorithm": "binpack",
                   "PreemptionConfig": {"SystemSchedulerEnabled": true}, "ModifyIndex": 5}, "Index": 5}),
        ),
        ("PUT", "/v1/operator/scheduler/configuration") => {
            Canned::json(6, json!({"Updated": r.param("cas") != Some("4"), "Index": 6}))
        }
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let m = server::MembersArgs {
        json: false,
        verbose: false,
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(server::server_members(&m, &client, &mut u).await, 0);
    assert_eq!(
        cap.out(),
        "Name       Address    Port  Status  Leader  Raft Version  Build  Datacenter  Region\n\
         s1.global  127.0.0.1  4648  alive   true    3             0.1.0  dc1         global\n"
    );

    let set = operator::SetConfigArgs {
        preempt_service_scheduler: Some(true),
        memory_oversubscription: Some(true),
        ..Default::default()
    };
    let (mut u, cap) = ui();
    assert_eq!(operator::set_config(&set, &client, &mut u).await, 0);
    assert_eq!(cap.out(), "Scheduler configuration updated!\n");
    let put = agent.requests().into_iter().find(|r| r.method == "PUT").unwrap();
    let body: Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(body["PreemptionConfig"]["ServiceSchedulerEnabled"], true);
    assert_eq!(body["PreemptionConfig"]["SystemSchedulerEnabled"], true, "kept");
    assert_eq!(body["MemoryOversubscriptionEnabled"], true);
    assert_eq!(put.param("cas"), None);

    let stale = operator::SetConfigArgs {
        check_index: Some(4),
        ..Default::default()
    };
    let (mut u, cap) = ui();
    assert_eq!(operator::set_config(&stale, &client, &mut u).await, 1);
    assert!(cap.err().contains("could not be atomically updated"));
}

fn alloc_json() -> Value {
    json!({
        "ID": ALLOC, "EvalID": EVAL, "Name": "web.web[0]", "NodeID": NODE, "NodeName": "node-1",
        "JobID": "web", "Job": {"ID": "web", "Version": 3, "TaskGroups": [{"Name": "web", "Tasks": [
            {"Name": "server", "Driver": "raw_exec"},
            {"Name": "init", "Driver": "raw_exec", "Lifecycle": {"Hook": "prestart", "Sidecar": false}}
        ]}]},
        "TaskGroup": "web", "DesiredStatus": "run", "ClientStatus": "running",
        "ClientDescription": "Tasks are running", "DeploymentID": DEPLOY,
        "DeploymentStatus": {"Healthy": true, "Canary": false},
        "CreateTime": NOW - 60_000_000_000, "ModifyTime": NOW - 45_000_000_000,
        "Metrics": {"NodesEvaluated": 3, "NodesFiltered": 1, "NodesExhausted": 1,
                    "ConstraintFiltered": {"${attr.kernel.name} = linux": 1},
                    "DimensionExhausted": {"memory": 1},
                    "ScoreMetaData": [{"NodeID": NODE, "Scores": {"binpack": 0.123456, "job-anti-affinity": 0.0},
                                       "NormScore": 0.5}]},
        "TaskStates": {
            "server": {"State": "running", "StartedAt": "2025-01-01T09:59:05Z", "Events": [
                {"Type": "Received", "Time": NOW - 60_000_000_000, "DisplayMessage": "Task received by client"},
                {"Type": "Started", "Time": NOW - 55_000_000_000, "DisplayMessage": "Task started by client"}
            ]},
            "init": {"State": "dead", "Events": [
                {"Type": "Terminated", "Time": NOW - 58_000_000_000, "Message": "Exit Code: 0"}
            ]}
        }
    })
}

fn alloc_agent() -> impl Fn(&Recorded) -> Canned + Send + Sync + 'static {
    |r| match r.path.as_str() {
        "/v1/allocations" if r.param("prefix") == Some("0f") => Canned::json(
            1,
            json!([
                alloc_stub(ALLOC, "running"),
                alloc_stub("0f99aaaa-1111-2222-3333-444444444444", "failed")
            ]),
        ),
        "/v1/allocations" if r.param("prefix").is_some_and(|p| ALLOC.starts_with(p)) => {
            Canned::json(1, json!([alloc_stub(ALLOC, "running")]))
        }
        "/v1/allocations" => Canned::json(1, json!([])),
        p if p == format!("/v1/allocation/{ALLOC}") => Canned::json(1, alloc_json()),
        _ => Canned::not_found(),
    }
}

fn alloc_args(id: &str, verbose: bool) -> alloc::AllocStatusArgs {
    alloc::AllocStatusArgs {
        json: false,
        verbose,
        alloc: id.into(),
        api: ApiArgs::default(),
    }
}

#[tokio::test]
async fn alloc_status_prints_fields_and_task_events() {
    let agent = FakeAgent::start(alloc_agent()).await.unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_status(&alloc_args("0f3a", false), &client, &mut u).await,
        0
    );
    let out = cap.out();
    assert!(
        out.starts_with(&format!(
            "ID                  = {ALLOC}\n\
             Eval ID             = 5a6b7c8d\n\
             Name                = web.web[0]\n\
             Node ID             = 9d8e7f6a\n\
             Node Name           = node-1\n\
             Job ID              = web\n\
             Job Version         = 3\n\
             Client Status       = running\n\
             Client Description  = Tasks are running\n\
             Desired Status      = run\n\
             Desired Description = <none>\n\
             Created             = 1m ago\n\
             Modified            = 45s ago\n\
             Deployment ID       = 2fb9d6b5\n\
             Deployment Health   = healthy\n\n\
             Task \"init\" (prestart) is \"dead\"\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "Task \"server\" is \"running\"\n\
             Task Events:\n\
             Started At     = 2025-01-01T09:59:05Z\n\
             Finished At    = N/A\n\
             Total Restarts = 0\n\
             Last Restart   = N/A\n\n\
             Recent Events:\n\
             Time                  Type      Description\n\
             2025-01-01T09:59:05Z  Started   Task started by client\n\
             2025-01-01T09:59:00Z  Received  Task received by client"
        ),
        "{out}"
    );
    assert!(
        out.contains("2025-01-01T09:59:02Z  Terminated  Exit Code: 0"),
        "{out}"
    );
    assert!(!out.contains("Placement Metrics"), "{out}");
    assert_eq!(agent.requests()[0].param("prefix"), Some("0f3a"));

    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_status(&alloc_args("0f3a", true), &client, &mut u).await,
        0
    );
    let out = cap.out();
    assert!(out.contains("Evaluated Nodes     = 3\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Placement Metrics\n\
             \x20 * Constraint \"${{attr.kernel.name}} = linux\": 1 nodes excluded by filter\n\
             \x20 * Resources exhausted on 1 nodes\n\
             \x20 * Dimension \"memory\" exhausted on 1 nodes\n\
             Node                                  binpack  job-anti-affinity  final score\n\
             {NODE}  0.123    0                  0.5\n"
        )),
        "{out}"
    );

    let (mut u, cap) = ui();
    let mut a = alloc_args(ALLOC, false);
    a.json = true;
    assert_eq!(alloc::alloc_status(&a, &client, &mut u).await, 0);
    let v: Value = serde_json::from_str(&cap.out()).unwrap();
    assert_eq!(v["ID"], ALLOC);
}

#[tokio::test]
async fn alloc_status_prefix_errors_exit_1() {
    let agent = FakeAgent::start(alloc_agent()).await.unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_status(&alloc_args("0f", false), &client, &mut u).await,
        1
    );
    let err = cap.err();
    assert!(
        err.starts_with("Prefix matched multiple allocations\n\nID        Node ID"),
        "{err}"
    );
    assert!(err.contains("0f99aaaa") && err.contains("0f3a1b2c"), "{err}");
    assert_eq!(cap.out(), "");

    let (mut u, cap) = ui();
    assert_eq!(
        alloc::alloc_status(&alloc_args("ffff", false), &client, &mut u).await,
        1
    );
    assert_eq!(cap.err(), "No allocation(s) with prefix or id \"ffff\" found\n");
}

fn deployment_json(id: &str, create_index: u64) -> Value {
    json!({"ID": id, "JobID": "web", "JobVersion": 2, "Status": "running",
           "StatusDescription": "Deployment is running", "CreateIndex": create_index,
           "TaskGroups": {"web": {"DesiredTotal": 2, "PlacedAllocs": 2, "HealthyAllocs": 1,
                                  "RequireProgressBy": "2025-01-01T10:10:00Z"}}})
}

#[tokio::test]
async fn deployment_status_and_list() {
    const OTHER: &str = "2f000000-1111-2222-3333-444444444444";
    let agent = FakeAgent::start(|r| match r.path.as_str() {
        "/v1/deployments" => match r.param("prefix") {
            Some("2f") | None => {
                Canned::json(1, json!([deployment_json(DEPLOY, 5), deployment_json(OTHER, 9)]))
            }
            Some(p) if DEPLOY.starts_with(p) => Canned::json(1, json!([deployment_json(DEPLOY, 5)])),
            Some(_) => Canned::json(1, json!([])),
        },
        p if p == format!("/v1/deployment/{DEPLOY}") => Canned::json(1, deployment_json(DEPLOY, 5)),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let args = |id: &str| deployment::DeploymentStatusArgs {
        json: false,
        verbose: false,
        deployment: id.into(),
        api: ApiArgs::default(),
    };
    let (mut u, cap) = ui();
    assert_eq!(
        deployment::deployment_status(&args("2fb9"), &client, &mut u).await,
        0
    );
    assert_eq!(
        cap.out(),
        "ID          = 2fb9d6b5\n\
         Job ID      = web\n\
         Job Version = 2\n\
         Status      = running\n\
         Description = Deployment is running\n\n\
         Deployed\n\
         Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline\n\
         web         2        2       1        0          2025-01-01T10:10:00Z\n"
    );
    assert_eq!(agent.requests()[0].param("prefix"), Some("2fb9"));

    let (mut u, cap) = ui();
    assert_eq!(
        deployment::deployment_status(&args("2f"), &client, &mut u).await,
        1
    );
    assert!(
        cap.err().starts_with("Prefix matched multiple deployments\n\n"),
        "{}",
        cap.err()
    );
    let (mut u, cap) = ui();
    assert_eq!(
        deployment::deployment_status(&args("ab"), &client, &mut u).await,
        1
    );
    assert_eq!(cap.err(), "No deployment(s) with prefix or id \"ab\" found\n");

    let (mut u, cap) = ui();
    let l = deployment::DeploymentListArgs {
        json: false,
        verbose: false,
        api: ApiArgs::default(),
    };
    assert_eq!(deployment::deployment_list(&l, &client, &mut u).await, 0);
    assert_eq!(
        cap.out(),
        "ID        Job ID  Job Version  Status   Description\n\
         2f000000  web     2            running  Deployment is running\n\
         2fb9d6b5  web     2            running  Deployment is running\n"
    );
}
