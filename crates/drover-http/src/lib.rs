//! Drover's `/v1` HTTP API: Nomad's routes, blocking queries, event stream and metrics, served
//! by axum in front of a [`drover_server::Server`]. Existing Nomad clients (the `nomad` CLI,
//! python-nomad, curl scripts) talk to it unchanged; `reference/http-api.md` is the contract.
//!
//! ```text
//!  TCP ─▶ serve() ─▶ axum Router ─▶ Req (decoded path, query, body) ─▶ endpoint handler
//!                      │                                                  │ reads: blocking::run(tables, f)
//!                      │ fallback: 404, empty body                         │   └─ Server::snapshot / wait_for_index
//!                      │                                                  │ writes: Server::register_job, ...
//!                      ▼                                                  ▼
//!                 ApiError ─▶ plain-text body + Nomad status      respond::{query, write, json}
//!                                                                  JSON + X-Nomad-* headers
//! ```
//!
//! The layer is thin: every decision about jobs, nodes and evaluations is the server's; this
//! crate decodes requests leniently (Go's case-insensitive keys, via
//! [`drover_types::codec`]), picks the state tables each read depends on, and renders answers
//! in Nomad's exact shapes.
//!
//! # Vocabulary
//! - *Query* (read) endpoints answer from a state snapshot and set `X-Nomad-Index`,
//!   `X-Nomad-KnownLeader` and `X-Nomad-LastContact`; with `?index=N` they block until the
//!   answer's index passes `N` ([`blocking`]).
//! - *Write* endpoints call the server and answer with the Raft index of the write (header and
//!   `Index` key).
//! - *Suffix routing*: everything under `/v1/job/` goes to one handler that matches known
//!   suffixes (`/allocations`, `/plan`, ...) on the percent-decoded path; the rest is the job
//!   ID, so IDs with `/` (`batch/periodic-1700000000`) work raw or as `%2F`.
//!
//! # Layout
//! - [`router`] (server only), [`router_with_client`] (server + client agent), [`serve`],
//!   [`AgentInfo`]: start here.
//! - [`request`]: the request extractor and standard query parameters; [`respond`]: JSON and
//!   headers; [`error`]: [`ApiError`] and status codes.
//! - [`blocking`], [`paginate`], [`filter`]: the shared machinery of reads.
//! - [`endpoints`]: one module per resource (`jobs`, `allocs`, `evals`, `nodes`,
//!   `deployments`, `agent`, `operator`, `search`, `events`, `metrics`, `client`).
//!
//! # Limitations
//! - No ACLs (tokens are accepted and ignored), no gzip, no TLS (see `docs/compatibility.md`).
//! - `filter` is a subset of go-bexpr (see [`filter`]); unsupported expressions answer
//!   `400 failed to create result paginator: …`, which the `nomad` CLI handles.
//! - Not yet served (the server lacks the operation): job dispatch, periodic force, stable,
//!   deployment fail/pause/promote, node purge and evaluate, variables, namespaces, services,
//!   ACL, raft operator endpoints, and of `/v1/client/*` exec, checks, gc, metadata. Those
//!   that have a Nomad route answer 501 with a message saying so.
//! - `/v1/client/*` is answered by the client agent in this process only
//!   ([`router_with_client`]); requests about other nodes' allocations are not forwarded.

pub mod blocking;
pub mod endpoints;
pub mod error;
pub mod filter;
pub mod paginate;
pub mod request;
pub mod respond;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use drover_server::Server;
use tokio::sync::watch;

pub use error::ApiError;

use endpoints::{agent, allocs, client, deployments, evals, events, jobs, metrics, nodes, operator, search};

/// What `/v1/agent/self` and friends report about the agent this API runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInfo {
    /// Agent (node) name.
    pub name: String,
    /// Region (`global`).
    pub region: String,
    /// Datacenter (`dc1`).
    pub datacenter: String,
    /// Address the agent binds (`0.0.0.0`).
    pub bind_addr: String,
    /// HTTP port (4646).
    pub http_port: u16,
    /// RPC port (4647).
    pub rpc_port: u16,
    /// Serf (gossip) port (4648).
    pub serf_port: u16,
    /// Data directory ("" in dev mode without one).
    pub data_dir: String,
    /// `-dev`.
    pub dev_mode: bool,
    /// Drover's version.
    pub version: String,
    /// The client agent running in this process, when one does.
    pub client: Option<ClientInfo>,
    /// Whether `/v1/metrics?format=prometheus` is served (Nomad: `telemetry.prometheus_metrics`).
    pub prometheus_metrics: bool,
    /// Whether the web UI is enabled (reported as `config.UI.Enabled`).
    pub ui_enabled: bool,
}

/// The client half of an agent, as the agent endpoints report it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientInfo {
    /// The client's node ID (`stats.client.node_id`; `nomad node status -self` reads it).
    pub node_id: String,
    /// The servers the client talks to (`ip:port`, `/v1/agent/servers`).
    pub servers: Vec<String>,
}

impl AgentInfo {
    /// A server-only agent described from the server's configuration, default ports.
    pub fn for_server(server: &Server) -> AgentInfo {
        let c = server.config();
        AgentInfo {
            name: c.name.clone(),
            region: c.region.clone(),
            datacenter: c.datacenter.clone(),
            bind_addr: "0.0.0.0".into(),
            http_port: 4646,
            rpc_port: c
                .rpc_addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(4647),
            serf_port: 4648,
            data_dir: String::new(),
            dev_mode: false,
            version: env!("CARGO_PKG_VERSION").into(),
            client: None,
            prometheus_metrics: true,
            ui_enabled: false,
        }
    }
}

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub server: Server,
    pub agent: Arc<AgentInfo>,
    /// The client agent of this process, which answers `/v1/client/*`.
    pub client: Option<drover_client::Client>,
}

/// Builds the `/v1` router over a server (an agent without a client: `/v1/client/*` answers
/// 400).
pub fn router(server: Server, agent: AgentInfo) -> Router {
    router_with_client(server, agent, None)
}

/// Builds the `/v1` router over a server and, when the agent runs one, its client, which
/// serves the node-local `/v1/client/*` endpoints (logs, file system, stats, restart, signal).
pub fn router_with_client(server: Server, agent: AgentInfo, client: Option<drover_client::Client>) -> Router {
    let state = AppState {
        server,
        agent: Arc::new(agent),
        client,
    };
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/v1/jobs", any(jobs::jobs))
        .route("/v1/jobs/parse", any(jobs::parse))
        .route("/v1/job/{*rest}", any(jobs::job))
        .route("/v1/validate/job", any(jobs::validate))
        .route("/v1/allocations", any(allocs::list))
        .route("/v1/allocation/{*rest}", any(allocs::alloc))
        .route("/v1/evaluations", any(evals::list))
        .route("/v1/evaluation/{*rest}", any(evals::eval))
        .route("/v1/nodes", any(nodes::list))
        .route("/v1/node/{*rest}", any(nodes::node))
        .route("/v1/deployments", any(deployments::list))
        .route("/v1/deployment/{*rest}", any(deployments::deployment))
        .route("/v1/status/leader", any(agent::leader))
        .route("/v1/status/peers", any(agent::peers))
        .route("/v1/agent/self", any(agent::agent_self))
        .route("/v1/agent/members", any(agent::members))
        .route("/v1/agent/health", any(agent::health))
        .route("/v1/agent/servers", any(agent::servers))
        .route("/v1/regions", any(agent::regions))
        .route(
            "/v1/operator/scheduler/configuration",
            any(operator::scheduler_configuration),
        )
        .route("/v1/system/gc", any(operator::gc))
        .route("/v1/search", any(search::prefix_search))
        .route("/v1/event/stream", any(events::stream))
        .route("/v1/metrics", any(metrics::metrics))
        .route("/v1/client/{*rest}", any(client::client))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(request::MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Unknown routes: 404 with an empty body, as Nomad's root fall-through answers.
async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves. Shutdown is graceful: new
/// connections stop, blocking queries answer at once with their current result, event streams
/// end, and in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (tx, rx) = watch::channel(false);
    let router = router.layer(axum::Extension(request::Shutdown(rx)));
    let signal = async move {
        shutdown.await;
        tx.send_replace(true);
    };
    axum::serve(listener, router).with_graceful_shutdown(signal).await
}
