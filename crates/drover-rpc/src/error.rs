//! [`RpcError`]: why an RPC failed, on either side of the wire.
//!
//! ```text
//!  handler: Err(RpcError::NotFound("node not found"))
//!     └─▶ tonic::Status { code: NotFound, message: "node not found" }  ── HTTP/2 trailers ──▶
//!  client: RpcError::NotFound("node not found")
//! ```
//!
//! The mapping is one-to-one for the four kinds a server reports (`NotFound`, `InvalidArgument`,
//! `Unavailable`, `Internal`), so a client can `match` on the same enum the server returned.
//! `Unavailable` is the only "retry" kind: no leader (with the leader's address when known,
//! carried in the `drover-leader` metadata entry), a server shutting down, a connection that
//! failed or was reset, a deadline that passed. Everything else will fail the same way again.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// Metadata key carrying the leader's RPC address with an `Unavailable` status.
pub const LEADER_METADATA: &str = "drover-leader";

/// Why an RPC failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// A named object does not exist (`node not found`). Not retryable as is: a client that gets
    /// it for its own node registers again.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid, or not allowed in the current state (a node that is `down`
    /// reporting allocations). Retrying the same request fails the same way.
    #[error("{0}")]
    InvalidArgument(String),
    /// Try again later, possibly elsewhere: no leader, shutting down, connection failure,
    /// deadline exceeded.
    #[error("{message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// The leader's RPC address, when the server knows it.
        leader: Option<String>,
    },
    /// A bug, a storage failure, or a message that could not be encoded or decoded.
    #[error("{0}")]
    Internal(String),
}

impl RpcError {
    /// An `Unavailable` error without a leader hint.
    pub fn unavailable(message: impl Into<String>) -> Self {
        RpcError::Unavailable {
            message: message.into(),
            leader: None,
        }
    }

    /// Whether the same call may succeed later (only [`RpcError::Unavailable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RpcError::Unavailable { .. })
    }

    /// Whether this is [`RpcError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RpcError::NotFound(_))
    }
}

impl From<RpcError> for Status {
    fn from(e: RpcError) -> Status {
        match e {
            RpcError::NotFound(m) => Status::new(Code::NotFound, m),
            RpcError::InvalidArgument(m) => Status::new(Code::InvalidArgument, m),
            RpcError::Unavailable { message, leader } => {
                let mut md = MetadataMap::new();
                if let Some(l) = leader.as_deref()
                    && let Ok(v) = MetadataValue::try_from(l)
                {
                    md.insert(LEADER_METADATA, v);
                }
                Status::with_metadata(Code::Unavailable, message, md)
            }
            RpcError::Internal(m) => Status::new(Code::Internal, m),
        }
    }
}

impl From<Status> for RpcError {
    fn from(s: Status) -> RpcError {
        let message = s.message().to_string();
        match s.code() {
            Code::NotFound => RpcError::NotFound(message),
            Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists | Code::OutOfRange => {
                RpcError::InvalidArgument(message)
            }
            // Transport failures surface as Unavailable/Unknown/Cancelled with tonic's text
            // ("transport error", "error trying to connect: ..."): all worth a retry.
            Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown => RpcError::Unavailable {
                message: if message.is_empty() {
                    format!("{:?}", s.code())
                } else {
                    message
                },
                leader: s
                    .metadata()
                    .get(LEADER_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            },
            _ => RpcError::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_a_round_trip_through_status() {
        for e in [
            RpcError::NotFound("node not found".into()),
            RpcError::InvalidArgument("missing datacenter".into()),
            RpcError::Unavailable {
                message: "No cluster leader".into(),
                leader: Some("10.0.0.1:4647".into()),
            },
            RpcError::unavailable("shutting down"),
            RpcError::Internal("raft: disk full".into()),
        ] {
            let s: Status = e.clone().into();
            assert_eq!(RpcError::from(s), e);
        }
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(RpcError::unavailable("x").is_retryable());
        assert!(!RpcError::NotFound("x".into()).is_retryable());
        assert!(RpcError::from(Status::cancelled("")).is_retryable());
        assert!(!RpcError::from(Status::unimplemented("")).is_retryable());
    }
}
