//! The agent itself: `/v1/agent/self`, `/v1/agent/members`, `/v1/agent/health`,
//! `/v1/agent/servers`, `/v1/status/leader`, `/v1/status/peers`, `/v1/regions`. None of these
//! carry query-meta headers (Nomad sets none), and `self` and `health` use lower-case top-level
//! keys.
//!
//! `nomad server members` marks the leader by comparing `/v1/status/leader` with each member's
//! `Addr:Tags["port"]`; both come from the server, so they agree.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_server::api::ServerMember;
use serde_json::{Map, Value, json};

use super::only_get;
use crate::error::ApiError;
use crate::request::Req;
use crate::{AppState, respond};

/// A member in Nomad's `agent.Member` shape (serf protocol versions filled with serf's).
fn member_json(m: &ServerMember) -> Value {
    json!({
        "Name": m.name,
        "Addr": m.addr,
        "Port": m.port,
        "Tags": m.tags,
        "Status": m.status,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// `GET /v1/status/leader`: `"ip:port"` of the leader's RPC, `""` when there is none.
pub(crate) async fn leader(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    respond::json(&req, &st.server.leader_addr().unwrap_or_default())
}

/// `GET /v1/status/peers`: the Raft voters. The server does not expose its Raft membership
/// yet; a single-server cluster's only peer is itself.
pub(crate) async fn peers(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    respond::json(&req, &[st.server.config().rpc_addr.clone()])
}

/// `GET /v1/regions`.
pub(crate) async fn regions(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    respond::json(&req, std::slice::from_ref(&st.agent.region))
}

/// `GET /v1/agent/members` (`ServerMembersResponse`).
pub(crate) async fn members(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let members: Vec<Value> = st.server.members().iter().map(member_json).collect();
    let c = st.server.config();
    respond::json(
        &req,
        &json!({
            "ServerName": c.name,
            "ServerRegion": c.region,
            "ServerDC": c.datacenter,
            "Members": members,
        }),
    )
}

/// `GET /v1/agent/self`.
pub(crate) async fn agent_self(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let a = &st.agent;
    let c = st.server.config();
    let client_enabled = a.client.is_some();
    let config = json!({
        "Region": a.region,
        "Datacenter": a.datacenter,
        "NodeName": a.name,
        "DataDir": a.data_dir,
        "BindAddr": a.bind_addr,
        "LogLevel": "INFO",
        "Ports": {"HTTP": a.http_port, "RPC": a.rpc_port, "Serf": a.serf_port},
        "Addresses": {"HTTP": a.bind_addr, "RPC": a.bind_addr, "Serf": a.bind_addr},
        "AdvertiseAddrs": {"HTTP": "", "RPC": c.rpc_addr, "Serf": ""},
        "Server": {"Enabled": true, "BootstrapExpect": 1, "NumSchedulers": c.num_schedulers},
        "Client": {
            "Enabled": client_enabled,
            "Servers": a.client.as_ref().map(|cl| cl.servers.clone()),
        },
        "UI": {"Enabled": a.ui_enabled, "ShowCLIHints": a.ui_enabled},
        "Telemetry": {"PrometheusMetrics": a.prometheus_metrics},
        "DevMode": a.dev_mode,
        "Version": {
            "Version": a.version,
            "Revision": "",
            "Prerelease": "",
            "Metadata": "",
            "VersionMetadata": "",
        },
    });
    let member = st
        .server
        .members()
        .first()
        .map(member_json)
        .unwrap_or(Value::Null);
    let mut stats = Map::new();
    let is_leader = st.server.is_leader();
    stats.insert(
        "nomad".into(),
        json!({
            "server": "true",
            "leader": is_leader.to_string(),
            "leader_addr": st.server.leader_addr().unwrap_or_default(),
            "bootstrap": a.dev_mode.to_string(),
            "known_regions": "1",
        }),
    );
    let raft: Map<String, Value> = st
        .server
        .raft_stats()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    stats.insert("raft".into(), Value::Object(raft));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    stats.insert(
        "runtime".into(),
        json!({
            "arch": std::env::consts::ARCH,
            "os": std::env::consts::OS,
            "cpu_count": cpus.to_string(),
            "max_procs": cpus.to_string(),
            "version": format!("drover {}", a.version),
        }),
    );
    if let Some(cl) = &a.client {
        stats.insert(
            "client".into(),
            json!({
                "node_id": cl.node_id,
                "known_servers": cl.servers.join(","),
            }),
        );
    }
    respond::json(&req, &json!({"config": config, "member": member, "stats": stats}))
}

/// `GET /v1/agent/health[?type=client|server]`: 200 when every requested part is healthy,
/// else 500 with the same JSON body.
pub(crate) async fn health(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let types: Vec<&str> = req.get_all("type").collect();
    for t in &types {
        if *t != "client" && *t != "server" {
            return Err(ApiError::BadRequest(format!("unknown health check type {t:?}")));
        }
    }
    let wants = |t: &str| types.is_empty() || types.contains(&t);
    if wants("client") && !wants("server") && st.agent.client.is_none() {
        return Err(ApiError::BadRequest("agent is not running a client".into()));
    }
    let mut body = Map::new();
    let mut ok = true;
    if wants("server") {
        let leader = respond::known_leader(&st);
        ok &= leader;
        body.insert(
            "server".into(),
            json!({"ok": leader, "message": if leader { "ok" } else { "No cluster leader" }}),
        );
    }
    if wants("client") && st.agent.client.is_some() {
        body.insert("client".into(), json!({"ok": true, "message": "ok"}));
    }
    let mut resp = respond::json(&req, &Value::Object(body))?;
    if !ok {
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(resp.into_response())
}

/// `GET /v1/agent/servers`: the servers a client agent uses; 501 on a server-only agent.
pub(crate) async fn servers(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    match &st.agent.client {
        Some(cl) => respond::json(&req, &cl.servers),
        None => Err(ApiError::NotImplemented("Invalid method".into())),
    }
}
