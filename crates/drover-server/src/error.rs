//! [`ServerError`]: why a server call failed, and how an HTTP or RPC layer should report it.

/// Why a server operation failed. Expected outcomes (a partial plan, an infeasible job) are
/// data in the responses, not errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The request is invalid (bad job, bad parameters). HTTP 400 unless noted by the caller.
    #[error("{0}")]
    BadRequest(String),
    /// The job failed validation (Nomad answers 500 with this multi-error text).
    #[error("{0}")]
    Validation(String),
    /// A named object does not exist (`job not found`, `node not found`, ...). HTTP 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `EnforceIndex` / check-and-set did not match (Nomad: 500, text starts `Enforcing job
    /// modify index`).
    #[error("{0}")]
    Conflict(String),
    /// This server is not the leader; retry on `leader` (dev mode never sees this).
    #[error("No cluster leader")]
    NoLeader {
        /// The leader's address when one is known.
        leader: Option<String>,
    },
    /// The server is shutting down or the subsystem (broker, plan queue) is disabled.
    #[error("{0}")]
    Unavailable(String),
    /// A Raft or storage failure: the write may not have happened.
    #[error("raft: {0}")]
    Raft(String),
    /// A bug or an unexpected internal state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServerError {
    /// The HTTP status Nomad uses for this kind of failure.
    pub fn http_status(&self) -> u16 {
        match self {
            ServerError::BadRequest(_) => 400,
            ServerError::NotFound(_) => 404,
            _ => 500,
        }
    }
}
