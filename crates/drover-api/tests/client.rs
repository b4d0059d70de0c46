//! The client against a real socket: a canned-response agent ([`FakeAgent`]) and a closed port.

use std::time::Duration;

use drover_api::testing::{Canned, FakeAgent};
use drover_api::{ApiError, Client, DeregisterOptions, QueryOptions, RegisterOptions};
use serde_json::json;

#[tokio::test]
async fn decodes_bodies_and_query_meta() {
    let agent = FakeAgent::start(|r| match r.route().as_str() {
        "GET /v1/jobs" => Canned::json(
            17,
            json!([{"ID": "web", "Type": "service", "Priority": 50, "Status": "running",
                    "Datacenters": null, "JobSummary": {"JobID": "web", "Namespace": "default",
                    "Summary": {"web": {"Running": 2}}}}]),
        ),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (jobs, meta) = client
        .jobs(
            &QueryOptions::new()
                .with_prefix("w")
                .blocking(5, Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, "web");
    assert_eq!(jobs[0].job_summary.as_ref().unwrap().summary["web"].running, 2);
    assert_eq!(meta.last_index, 17);
    assert!(meta.known_leader);
    let req = &agent.requests()[0];
    assert_eq!(req.param("prefix"), Some("w"));
    assert_eq!(req.param("index"), Some("5"));
    assert_eq!(req.param("wait"), Some("1500ms"));
}

#[tokio::test]
async fn escapes_ids_sends_token_and_bodies() {
    let agent = FakeAgent::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("DELETE", "/v1/job/batch%2Fperiodic-1") => Canned::json(
            9,
            json!({"EvalID": "e1", "EvalCreateIndex": 9, "JobModifyIndex": 8}),
        ),
        ("PUT", "/v1/jobs") => Canned::json(3, json!({"EvalID": "e2", "JobModifyIndex": 3, "Warnings": ""})),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address())
        .unwrap()
        .with_token(Some("s3cret".into()))
        .with_namespace(Some("prod".into()));
    let resp = client
        .deregister_job(
            "batch/periodic-1",
            &DeregisterOptions {
                purge: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.eval_id, "e1");
    let job = drover_types::Job {
        id: "web".into(),
        ..Default::default()
    };
    let reg = client
        .register_job(
            &job,
            &RegisterOptions {
                enforce_index: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reg.eval_id, "e2");

    let reqs = agent.requests();
    assert_eq!(reqs[0].param("purge"), Some("true"));
    assert_eq!(reqs[0].param("namespace"), Some("prod"));
    assert_eq!(reqs[0].header("X-Nomad-Token"), Some("s3cret"));
    let body: serde_json::Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(body["EnforceIndex"], true);
    assert_eq!(body["JobModifyIndex"], 0);
    assert_eq!(body["Job"]["ID"], "web");
}

#[tokio::test]
async fn maps_errors() {
    let agent = FakeAgent::start(|r| match r.path.as_str() {
        "/v1/job/nope" => Canned::text(404, "job not found\n"),
        "/v1/job/garbled" => Canned::json(1, json!({"Priority": "high"})),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let err = client.job("nope", &QueryOptions::new()).await.unwrap_err();
    assert!(matches!(&err, ApiError::Status { code: 404, body } if body == "job not found"));
    assert_eq!(err.to_string(), "Unexpected response code: 404 (job not found)");
    let err = client.job("garbled", &QueryOptions::new()).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Decode { what, .. } if what == "job"),
        "{err}"
    );
    assert!(err.to_string().contains("Priority"), "{err}");
}

#[tokio::test]
async fn connection_refused_says_what_to_do() {
    // Bind then drop a listener: the port is free and nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new(format!("http://127.0.0.1:{port}")).unwrap();
    let err = client.jobs(&QueryOptions::new()).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "Get \"http://127.0.0.1:{port}/v1/jobs\": connection refused"
        )),
        "{text}"
    );
    assert!(text.contains("drover agent -dev"), "{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{port}?")), "{text}");
}

#[tokio::test]
async fn latest_deployment_null_is_none_and_leader_is_a_string() {
    let agent = FakeAgent::start(|r| match r.path.as_str() {
        "/v1/job/web/deployment" => Canned::json(4, json!(null)),
        "/v1/status/leader" => Canned::json(0, json!("10.0.0.8:4647")),
        "/v1/agent/members" => Canned::json(
            0,
            json!({"ServerName": "s1", "ServerRegion": "global", "ServerDC": "dc1",
                   "Members": [{"Name": "s1.global", "Addr": "10.0.0.8", "Port": 4648,
                                "Tags": {"port": "4647", "region": "global"}, "Status": "alive"}]}),
        ),
        _ => Canned::not_found(),
    })
    .await
    .unwrap();
    let client = Client::new(agent.address()).unwrap();
    let (d, meta) = client
        .job_latest_deployment("web", &QueryOptions::new())
        .await
        .unwrap();
    assert!(d.is_none());
    assert_eq!(meta.last_index, 4);
    assert_eq!(
        client.status_leader(Some("global")).await.unwrap(),
        "10.0.0.8:4647"
    );
    let m = client.agent_members().await.unwrap();
    assert_eq!(m.members[0].tag("port"), "4647");
    assert_eq!(agent.requests()[1].param("region"), Some("global"));
}
