//! One module per resource. Every handler is `async fn(State<AppState>, Req) -> Result<Response,
//! ApiError>` and dispatches on the method itself (PUT ≡ POST; anything else `405 Invalid
//! method`), so a route answers Nomad's 405 rather than axum's.
//!
//! | module          | routes |
//! |-----------------|--------|
//! | [`jobs`]        | `/v1/jobs`, `/v1/jobs/parse`, `/v1/job/<id>[/suffix]`, `/v1/validate/job` |
//! | [`allocs`]      | `/v1/allocations`, `/v1/allocation/<id>[/stop]` |
//! | [`evals`]       | `/v1/evaluations`, `/v1/evaluation/<id>[/allocations]` |
//! | [`nodes`]       | `/v1/nodes`, `/v1/node/<id>[/allocations\|/drain\|/eligibility]` |
//! | [`deployments`] | `/v1/deployments`, `/v1/deployment/<id>`, `/v1/deployment/allocations/<id>` |
//! | [`client`]      | `/v1/client/fs/{logs,ls,stat,cat,readat,stream}/<alloc>`, `/v1/client/allocation/<id>/{stats,restart,signal}`, `/v1/client/stats` |
//! | [`agent`]       | `/v1/agent/{self,members,health,servers}`, `/v1/status/{leader,peers}`, `/v1/regions` |
//! | [`operator`]    | `/v1/operator/scheduler/configuration`, `/v1/system/gc` |
//! | [`search`]      | `/v1/search` |
//! | [`events`]      | `/v1/event/stream` |
//! | [`metrics`]     | `/v1/metrics` |

pub mod agent;
pub mod allocs;
pub mod client;
pub mod deployments;
pub mod evals;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod nodes;
pub mod operator;
pub mod search;

use axum::http::Method;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::request::Req;

/// Only GET.
pub(crate) fn only_get(req: &Req) -> Result<(), ApiError> {
    if req.method == Method::GET {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// Only PUT or POST.
pub(crate) fn only_write(req: &Req) -> Result<(), ApiError> {
    if req.is_write() {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// Decodes a JSON body leniently (Go's rules: case-insensitive keys, unknown keys ignored);
/// a wrong type is a 400 naming the field path.
pub(crate) fn decode_body<T: DeserializeOwned>(req: &Req) -> Result<T, ApiError> {
    if req.body_empty() {
        return Err(ApiError::BadRequest("Request body is empty".into()));
    }
    drover_types::codec::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("Failed to decode request body: {e}")))
}

/// [`decode_body`], but an empty body is the type's default.
pub(crate) fn decode_optional_body<T: DeserializeOwned + Default>(req: &Req) -> Result<T, ApiError> {
    if req.body_empty() {
        Ok(T::default())
    } else {
        decode_body(req)
    }
}

/// Nomad's 501 for a route it has and we do not serve yet.
pub(crate) fn not_supported(what: &str) -> ApiError {
    ApiError::NotImplemented(format!("{what} is not supported by this Drover server yet"))
}
