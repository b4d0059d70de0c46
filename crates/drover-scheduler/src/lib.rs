//! Drover's schedulers: pure decision code that turns an evaluation into a plan.
//!
//! No async runtime, no I/O, no clock, no global randomness: a scheduler reads a [`State`]
//! snapshot, takes `now` and an ID source as values ([`Env`]), derives its seed from the
//! evaluation, and talks to the world only through a [`Planner`]. The same inputs give the same
//! plan.
//!
//! ```text
//!  Evaluation ─▶ process ─┬─ service, batch ─▶ generic   (reconcile → stack → plan)
//!                         ├─ system, sysbatch ─▶ system  (node reconcile → stack per node)
//!                         └─ _core ─▶ core::gc           (garbage-collection decisions)
//! ```
//!
//! # Layout
//! - [`state`]: the `State` (read) and `Planner` (write) boundary.
//! - [`reconcile`], [`reconcile_node`]: what should exist vs what does (stop, keep, update, place).
//! - [`feasible`]: can this node run this group (constraints, drivers, devices, volumes).
//! - [`fit`]: does it fit (resources, ports, devices) — the one fit check the plan applier
//!   shares; [`preempt`]: what to evict when it does not.
//! - [`rank`]: scores; [`stack`]: the selection pipeline with its explanations (AllocMetric).
//! - [`generic`], [`system`], [`core`]: the schedulers. [`harness`]: a recording planner over an
//!   in-memory state, used by tests, benchmarks and `job plan` dry runs.
//!
//! # Where to start
//! [`process`], then [`generic::process`] and [`stack::Stack::select`].

pub mod core;
pub mod feasible;
pub mod fit;
pub mod generic;
pub mod harness;
pub mod preempt;
pub mod rank;
pub mod reconcile;
pub mod reconcile_node;
pub mod rng;
pub mod stack;
pub mod state;
pub mod state_store;
pub mod system;
pub mod util;

use std::sync::Arc;

use drover_types::Evaluation;
use drover_types::job::job_type;

pub use state::{Planner, SchedulerError, State, Submitted};

/// The values a scheduler would otherwise take from its environment.
pub struct Env<'a> {
    /// The current time, Unix nanoseconds.
    pub now: i64,
    /// A source of new IDs (allocations, evaluations, deployments): UUIDs in production, a
    /// counter in tests.
    pub ids: &'a mut dyn FnMut() -> String,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("now", &self.now).finish()
    }
}

/// Processes one evaluation with the scheduler its type names.
pub fn process(
    state: Arc<dyn State + Send + Sync>,
    planner: &mut dyn Planner,
    eval: &Evaluation,
    env: &mut Env<'_>,
) -> Result<(), SchedulerError> {
    match eval.eval_type.as_str() {
        job_type::SERVICE => generic::process(state, planner, eval, false, env),
        job_type::BATCH => generic::process(state, planner, eval, true, env),
        job_type::SYSTEM => system::process(state, planner, eval, false, env),
        job_type::SYSBATCH => system::process(state, planner, eval, true, env),
        other => Err(SchedulerError::UnknownScheduler(other.to_string())),
    }
}
