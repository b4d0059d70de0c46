//! Drover's schedulers: pure decision code that turns an evaluation into a plan.
//!
//! No async runtime, no I/O, no clock, no global randomness: a scheduler reads a [`State`]
//! snapshot, takes `now` and a seed as values, and talks to the world only through a
//! [`Planner`].

pub mod feasible;
pub mod fit;
pub mod preempt;
pub mod reconcile;
pub mod reconcile_node;
pub mod rng;
pub mod state;

pub use state::{Planner, SchedulerError, State, Submitted};
