//! drover-api: an async Rust client for the `/v1` HTTP API of a Drover (or Nomad) agent.
//!
//! The CLI uses it for every command that talks to an agent, and tests use it to drive real
//! agents. It speaks Nomad's wire format (`reference/http-api.md`), so it also works against a
//! Nomad agent.
//!
//! # Layout
//! - [`client`]: [`Client`] (address, token, region, namespace), [`QueryOptions`] (prefix,
//!   blocking `index`/`wait`), [`QueryMeta`] (the `X-Nomad-*` headers), URL building with
//!   per-segment escaping (job IDs contain `/`), lenient decoding.
//! - [`endpoints`]: one typed method per endpoint (`jobs`, `register_job`, `evaluation`,
//!   `node_drain`, `agent_members`, ...), returning `drover-types` model structs.
//! - [`clientapi`]: the node-local `/v1/client/...` calls (logs as a [`LogStream`], file
//!   system, stats, restart, signal) and `alloc stop`, with their response types.
//! - [`types`]: request/response bodies that are not in the data model (`JobPlanResponse`,
//!   `JobRegisterResponse`, `ServerMembersResponse`, ...).
//! - [`error`]: [`ApiError`], the one error type: connection, status, decode.
//! - [`testing`]: [`testing::FakeAgent`], a canned-response HTTP server for tests.
//!
//! # Where to start
//! ```no_run
//! # async fn demo() -> Result<(), drover_api::ApiError> {
//! use drover_api::{Client, QueryOptions};
//! let client = Client::from_env(None)?; // -address flag, else NOMAD_ADDR, else 127.0.0.1:4646
//! let (jobs, meta) = client.jobs(&QueryOptions::new().with_prefix("web")).await?;
//! // Block until something changes (or 30 s pass):
//! let q = QueryOptions::new().blocking(meta.last_index, std::time::Duration::from_secs(30));
//! let (jobs_later, _) = client.jobs(&q).await?;
//! # let _ = (jobs, jobs_later); Ok(()) }
//! ```

pub mod client;
pub mod clientapi;
pub mod endpoints;
pub mod error;
pub mod testing;
pub mod types;

pub use client::{Client, DEFAULT_ADDRESS, QueryMeta, QueryOptions, resolve_address};
pub use clientapi::{
    AllocFileInfo, AllocResourceUsage, AllocStopResponse, GenericResponse, HostStats, LogStream, LogType,
    LogsOptions, RawStream, StreamFrame,
};
pub use error::{ApiError, Verb};
pub use types::*;
