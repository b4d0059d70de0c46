//! Drover's server: the leader's evaluation broker, blocked-evaluation tracker, plan queue and
//! plan applier, the scheduler workers, heartbeats, the node drainer and garbage collection —
//! everything between an HTTP/RPC request and the replicated state.
//!
//! ```text
//!  request ─▶ Server (server.rs) ─▶ Command ─▶ Log (Raft) ─▶ StateStore
//!                 │ outcome: pending / blocked evals, freed capacity
//!                 ▼
//!   EvalBroker (broker.rs) ─▶ workers ─▶ drover_scheduler ─▶ Plan ─▶ plan applier
//!   BlockedEvals (blocked.rs) ◀─ capacity ─┘               (plan_apply.rs: the shared fit check)
//! ```
//!
//! # Layout
//! - [`server`]: [`Server`], the public operations (jobs, nodes, plans, operator) and the
//!   leader's tasks. Start reading here.
//! - [`broker`], [`blocked`], [`plan_apply`]: pure bookkeeping and decisions, unit-tested
//!   without a runtime.
//! - [`log`]: the [`Log`] seam (Raft in the agent; an in-memory log for the server's tests).
//! - [`events`]: the `/v1/event/stream` events; [`api`]: request and response types.
//!
//! # Guarantees
//! - The FSM is the only writer: every change is a [`drover_state::Command`] through [`Log`].
//! - One evaluation per job is in flight; plans are verified node by node with
//!   `drover_scheduler::fit::allocs_fit` before they are committed.
//! - Leader-only structures (broker, blocked tracker, plan queue, heartbeat timers) are rebuilt
//!   from the state store whenever this server becomes leader.
//!
//! # Limitations
//! Single-server clusters only for now: followers neither forward writes nor dequeue over RPC.
//! The plan applier does not pipeline (one plan evaluated and committed at a time).
//! Deployments are created by the scheduler but no deployment watcher promotes or fails them.

pub mod api;
pub mod blocked;
pub mod broker;
pub mod error;
pub mod events;
pub mod log;
pub mod periodic;
pub mod plan_apply;
pub mod rpc_impl;
pub mod server;

pub use error::ServerError;
pub use log::{Log, MemLog};
pub use server::{HeartbeatConfig, Server, ServerConfig, ServerStats};

/// Wall-clock time, Unix nanoseconds (the only clock read outside tokio's timers).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
