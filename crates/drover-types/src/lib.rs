//! Drover's data model: the Nomad-compatible objects every other crate speaks.
//!
//! This crate has no I/O and no async runtime. It holds the types of jobs, nodes, allocations,
//! evaluations, plans and deployments, exactly as Nomad's HTTP API encodes them
//! (`reference/http-api.md` §1–2), and the pure functions that turn user input into a stored job.
//!
//! # Layout
//! - [`job`]: [`Job`] → [`TaskGroup`] → [`Task`] and every block of a job file.
//! - [`node`], [`alloc`], [`eval`] (evaluations, plans, deployments), [`summary`] (job summaries
//!   and list stubs).
//! - [`codec`]: lenient JSON decoding like Go's (`"jobid"` fills `JobID`, unknown keys ignored,
//!   `null` = unset) with error paths.
//! - [`canonicalize`]: Nomad's defaults; [`validate`]: every problem at once, with paths.
//! - [`diff`]: the structured job diff that `job plan` shows.
//! - [`time`]: the three time encodings and Go durations.
//!
//! # Where to start
//! Read [`job`]'s module docs for the input → canonical → output flow, then
//! [`parse_api_job`], which runs it end to end for an API JSON body.

pub mod alloc;
pub mod canonicalize;
pub mod codec;
pub mod diff;
pub mod eval;
pub mod job;
pub mod node;
pub mod serde_util;
pub mod stats;
pub mod summary;
pub mod time;
pub mod validate;

pub use alloc::{AllocListStub, AllocMetric, Allocation, TaskEvent, TaskState};
pub use eval::{Deployment, Evaluation, Plan, PlanAnnotations, PlanResult, SchedulerConfiguration};
pub use job::{Job, Task, TaskGroup};
pub use node::{Node, NodeListStub};
pub use summary::{JobListStub, JobSummary};

/// Why an API job body could not become a job.
#[derive(Debug, thiserror::Error)]
pub enum ApiJobError {
    /// The JSON did not decode (syntax, or a field of the wrong type).
    #[error("failed to decode job: {0}")]
    Decode(#[from] codec::DecodeError),
    /// The job decoded but is not valid.
    #[error("{0}")]
    Invalid(#[from] validate::JobValidationError),
}

/// Decodes an API JSON job — `{"Job": {...}}` or the bare job object — canonicalises and
/// validates it. Returns the job and validation warnings.
pub fn parse_api_job(body: serde_json::Value) -> Result<(Job, Vec<String>), ApiJobError> {
    let inner = match body {
        serde_json::Value::Object(mut m) => {
            let key = m.keys().find(|k| k.eq_ignore_ascii_case("job")).cloned();
            match key.and_then(|k| m.remove(&k)) {
                Some(j @ serde_json::Value::Object(_)) => j,
                Some(other) => other,
                None => serde_json::Value::Object(m),
            }
        }
        other => other,
    };
    let mut job: Job = codec::from_value(inner)?;
    canonicalize::canonicalize_job(&mut job);
    let warnings = validate::validate_job(&job)?;
    Ok((job, warnings))
}
