//! Drover's replicated state store: the in-memory tables every server's Raft FSM writes, and
//! the O(1) immutable snapshots that schedulers, the plan applier and the HTTP layer read.
//!
//! ```text
//!   Raft log entry ──▶ Command (typed, msgpack) ──▶ StateStore::apply(index, cmd)   single writer
//!                                                     │ clone Arc<StateSnapshot> (O(1))
//!                                                     │ mutate tables + indexes + table_index
//!                                                     │ publish (ArcSwap::store)
//!                                                     ▼
//!   readers ◀── StateStore::snapshot() ── Arc<StateSnapshot>          ApplyOutcome ──▶ leader
//!   (scheduler, plan applier,                 jobs · job_versions · job_summaries     (enqueue /
//!    blocking queries poll                    nodes · allocs · evals · deployments     block /
//!    table_index(table))                      scheduler_config + secondary indexes     untrack)
//! ```
//!
//! # Layout
//! - [`snapshot`]: [`StateSnapshot`], its tables, indexes and read queries (the same queries the
//!   scheduler's `State` trait asks, so implementing it is a thin adapter), and Raft snapshot
//!   encoding ([`StateSnapshot::to_bytes`] / [`StateSnapshot::from_bytes`]).
//! - [`command`]: the FSM [`Command`]s and the [`ApplyOutcome`] the leader reacts to.
//! - [`apply`]: how each command changes a snapshot.
//! - [`store`]: [`StateStore`], the single-writer `ArcSwap` holder.
//!
//! # Invariants
//! - Every table is a persistent `imbl` map of `Arc<T>`: cloning a snapshot is O(1) and an old
//!   snapshot never observes a later write (objects are never mutated in place; a change stores
//!   a new `Arc`).
//! - An apply is atomic: it works on a private clone and publishes only on success; a failed
//!   command leaves the published snapshot untouched.
//! - Raft indexes only grow: `apply` rejects an index not greater than the latest one; each
//!   table's index is the index of its last write and `latest_index` is their maximum.
//! - Secondary indexes (allocs by node / job / eval / deployment, evals by job, deployments by
//!   job) hold exactly the keys of the objects in their primary table.
//! - Job versions only grow; a re-registration whose spec did not change keeps the version; at
//!   most [`snapshot::JOB_VERSIONS_KEPT`] versions are kept per job.
//! - The server never overwrites an allocation's client status, except to mark it `lost` or
//!   `unknown`; a client update never changes server-owned fields nor `AllocModifyIndex`.
//!
//! # Limitations
//! - No blocking-query machinery here (pure crate): the server layer keeps its own notifier,
//!   woken after each apply, and compares [`StateSnapshot::table_index`] with the query's index.
//! - `latest_index` is the last applied Raft index (at least every table's index), so a
//!   command that changed nothing still moves it.
//! - Not yet: node pools, namespaces, ACL, variables, CSI, service registrations, periodic
//!   launches, job submissions, scaling policies; deployment promote / alloc-health commands;
//!   `RequireProgressBy` on healthy allocations; preferring stable versions when capping job versions;
//!   cancelling the previous deployment when a job registration carries a new one.
//! - Deleting an allocation (GC) does not change its job's summary counts (as in Nomad).
//!
//! # Where to start
//! Read [`Command`], then [`StateStore::apply`].

pub mod apply;
pub mod command;
pub mod snapshot;
pub mod store;

#[cfg(test)]
mod tests;

pub use command::{AllocPreemptDiff, AllocStopDiff, ApplyOutcome, Command};
pub use snapshot::{StateSnapshot, Table};
pub use store::StateStore;

/// Why a command could not be applied, or a snapshot could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Raft index did not grow.
    #[error("stale raft index {index}: state is already at {latest}")]
    StaleIndex {
        /// The index given.
        index: u64,
        /// The store's latest index.
        latest: u64,
    },
    /// A command named an object that does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What kind of object (`job`, `node`, ...).
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// A command was malformed (e.g. an object without an ID).
    #[error("invalid command: {0}")]
    Invalid(String),
    /// Encoding a snapshot or command failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// Decoding a snapshot or command failed.
    #[error("decode failed: {0}")]
    Decode(String),
}
