//! Rendering responses the way Nomad does: JSON bodies (`?pretty` = four-space indent plus a
//! trailing newline) and the query-meta headers of `reference/http-api.md` §1.4.
//!
//! | helper    | headers                                                                   |
//! |-----------|---------------------------------------------------------------------------|
//! | `query` | `X-Nomad-Index` (never 0), `X-Nomad-KnownLeader`, `X-Nomad-LastContact`, `X-Nomad-NextToken` when another page exists |
//! | `write` | `X-Nomad-Index` (the write's Raft index)                                  |
//! | `json`  | none (agent, status, regions, metrics)                                    |

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::request::Req;

/// `X-Nomad-Index`.
pub const INDEX_HEADER: &str = "x-nomad-index";
/// `X-Nomad-KnownLeader`.
pub const KNOWN_LEADER_HEADER: &str = "x-nomad-knownleader";
/// `X-Nomad-LastContact`.
pub const LAST_CONTACT_HEADER: &str = "x-nomad-lastcontact";
/// `X-Nomad-NextToken`.
pub const NEXT_TOKEN_HEADER: &str = "x-nomad-nexttoken";

/// Serialises `body` (pretty when asked) as a 200 JSON response.
pub(crate) fn json<T: Serialize + ?Sized>(req: &Req, body: &T) -> Result<Response, ApiError> {
    let bytes = if req.pretty() {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        body.serialize(&mut ser)
            .map_err(|e| ApiError::Internal(format!("encode failed: {e}")))?;
        out.push(b'\n');
        out
    } else {
        serde_json::to_vec(body).map_err(|e| ApiError::Internal(format!("encode failed: {e}")))?
    };
    let mut resp = (StatusCode::OK, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Whether a leader is known (this server, or the one the log names).
pub(crate) fn known_leader(st: &AppState) -> bool {
    st.server.is_leader() || st.server.leader_addr().is_some_and(|a| !a.is_empty())
}

/// A read of replicated state: JSON plus the three query-meta headers.
pub(crate) fn query<T: Serialize + ?Sized>(
    st: &AppState,
    req: &Req,
    body: &T,
    index: u64,
    next_token: Option<&str>,
) -> Result<Response, ApiError> {
    let mut resp = json(req, body)?;
    set(&mut resp, INDEX_HEADER, &index.max(1).to_string());
    set(
        &mut resp,
        KNOWN_LEADER_HEADER,
        if known_leader(st) { "true" } else { "false" },
    );
    // Reads are answered from this server's own state; a follower's lag is not tracked yet.
    set(&mut resp, LAST_CONTACT_HEADER, "0");
    if let Some(t) = next_token.filter(|t| !t.is_empty()) {
        set(&mut resp, NEXT_TOKEN_HEADER, t);
    }
    Ok(resp)
}

/// A write: JSON plus `X-Nomad-Index`.
pub(crate) fn write<T: Serialize + ?Sized>(req: &Req, body: &T, index: u64) -> Result<Response, ApiError> {
    let mut resp = json(req, body)?;
    set(&mut resp, INDEX_HEADER, &index.max(1).to_string());
    Ok(resp)
}

/// A write with no body (Nomad answers some writes with an empty 200).
pub(crate) fn empty_write(index: u64) -> Response {
    let mut resp = StatusCode::OK.into_response();
    if index > 0 {
        set(&mut resp, INDEX_HEADER, &index.to_string());
    }
    resp
}

/// `body` as a JSON object with the query-meta keys Nomad's response structs embed
/// (`Index`, `LastContact`, `KnownLeader`, `NextToken`).
pub(crate) fn with_query_meta<T: Serialize>(st: &AppState, body: &T, index: u64) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(body).map_err(|e| ApiError::Internal(format!("encode failed: {e}")))?;
    if let Value::Object(o) = &mut v {
        o.insert("Index".into(), Value::from(index));
        o.insert("LastContact".into(), Value::from(0));
        o.insert("KnownLeader".into(), Value::from(known_leader(st)));
        o.insert("NextToken".into(), Value::from(""));
    }
    Ok(v)
}
