//! [`ApiError`]: why a request failed, rendered the way Nomad renders it — a plain-text body
//! holding just the message, and the status code of `reference/http-api.md` §1.8.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drover_server::ServerError;

/// Why an HTTP request failed. The `Display` text is the response body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Bad input: a parameter or body that does not parse, an ID mismatch (400).
    #[error("{0}")]
    BadRequest(String),
    /// The named object does not exist (`job not found`, ...) (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method (405, `Invalid method`).
    #[error("Invalid method")]
    MethodNotAllowed,
    /// A representation this agent is configured not to produce (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A route Nomad has that this agent cannot serve (501): an agent-mode mismatch or a
    /// feature the server does not implement yet.
    #[error("{0}")]
    NotImplemented(String),
    /// A failure reported by the server; its status comes from [`ServerError::http_status`].
    #[error("{0}")]
    Server(#[from] ServerError),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Server(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `<what> not found` (404), Nomad's wording.
    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let mut resp = (status, self.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}
