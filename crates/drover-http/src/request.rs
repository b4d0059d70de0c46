//! `Req`: one request as the handlers see it — method, percent-decoded path, query pairs,
//! body bytes — and `QueryOptions`, the standard query parameters of `reference/http-api.md`
//! §1.3 parsed with Nomad's error texts.
//!
//! ```text
//!  axum Request ──FromRequest──▶ Req { method, path (decoded), query [(k, v)], body, shutdown }
//!                                  └─ query_options() ──▶ QueryOptions { index, wait, prefix,
//!                                                          namespace, filter, per_page, ... }
//! ```
//!
//! The path is decoded once, here, so `/v1/job/batch%2Fperiodic-1` and
//! `/v1/job/batch/periodic-1` reach the job handler as the same job ID (Nomad routes on the
//! decoded path and matches suffixes; see [`crate::endpoints::jobs`]).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use tokio::sync::watch;

use crate::AppState;
use crate::error::ApiError;

/// Largest request body accepted (a job with many groups is a few hundred KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The longest a blocking query waits (Nomad's `MaxBlockingRPCQueryTime`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Set when [`crate::serve`] is asked to stop: blocking queries return early and streams end,
/// so graceful shutdown is not held up for minutes.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(pub(crate) watch::Receiver<bool>);

impl Shutdown {
    async fn wait(mut self) {
        // A dropped sender also means "stop".
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// One request.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    /// The percent-decoded path (`/v1/job/batch/periodic-1/allocations`).
    pub path: String,
    /// Query pairs in order, decoded (`topic` may repeat).
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    shutdown: Option<Shutdown>,
}

impl FromRequest<AppState> for Req {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let query = parse_query(parts.uri.query().unwrap_or(""));
        let r = Req {
            method: parts.method.clone(),
            path: percent_decode(parts.uri.path(), false),
            query,
            body: Bytes::new(),
            shutdown: parts.extensions.get::<Shutdown>().cloned(),
        };
        // Another region would be forwarded by Nomad; there is only ours.
        if let Some(region) = r.get("region")
            && !region.is_empty()
            && region != state.agent.region
        {
            return Err(ApiError::Internal("No path to region".into()));
        }
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Failed to read request body: {e}")))?;
        Ok(Req { body, ..r })
    }
}

impl Req {
    /// The first value of a query parameter (`Some("")` for a bare `?name`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A Go-style boolean parameter: absent or empty → `None`; `1 t T TRUE true True` /
    /// `0 f F FALSE false False` (python-nomad sends `True` / `False`).
    pub fn bool_param(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => parse_go_bool(v).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!("Failed to parse value of {name:?} ({v}) as a bool"))
            }),
        }
    }

    /// [`Req::bool_param`] with a default.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        Ok(self.bool_param(name)?.unwrap_or(default))
    }

    /// `?pretty` (any value but `0`, bare included).
    pub fn pretty(&self) -> bool {
        self.get("pretty").is_some_and(|v| v != "0")
    }

    /// The request namespace: `?namespace`, else `default`.
    pub fn namespace(&self) -> String {
        match self.get("namespace") {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ => "default".to_string(),
        }
    }

    /// PUT and POST are interchangeable on every write endpoint.
    pub fn is_write(&self) -> bool {
        self.method == Method::PUT || self.method == Method::POST
    }

    /// Whether the body is missing or blank.
    pub fn body_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// Resolves when the server is shutting down (never, outside [`crate::serve`]).
    pub async fn shutdown(&self) {
        match &self.shutdown {
            Some(s) => s.clone().wait().await,
            None => std::future::pending().await,
        }
    }

    /// An owned future that resolves when the server is shutting down, for work that outlives
    /// the handler (streams).
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let s = self.shutdown.clone();
        async move {
            match s {
                Some(s) => s.wait().await,
                None => std::future::pending().await,
            }
        }
    }

    /// The standard query parameters.
    pub fn query_options(&self) -> Result<QueryOptions, ApiError> {
        let index = match self.get("index") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Invalid index".into()))?,
        };
        let wait = match self.get("wait") {
            None | Some("") => None,
            Some(v) => {
                let ns = drover_types::time::parse_duration(v)
                    .map_err(|_| ApiError::BadRequest("Invalid wait time".into()))?;
                Some(Duration::from_nanos(ns.max(0) as u64))
            }
        };
        match self.get("stale") {
            None | Some("") => {}
            Some(v) if parse_go_bool(v).is_some() => {}
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "Expect `true` or `false` for `stale` query string parameter".into(),
                ));
            }
        }
        let per_page = match self.get("per_page") {
            None | Some("") => None,
            Some(v) => {
                let n = v.parse::<i32>().map_err(|_| {
                    ApiError::BadRequest("Expect a number for `per_page` query string parameter".into())
                })?;
                (n > 0).then_some(n as usize)
            }
        };
        Ok(QueryOptions {
            index,
            wait: wait.unwrap_or(MAX_WAIT).min(MAX_WAIT),
            prefix: self.get("prefix").unwrap_or_default().to_string(),
            namespace: self.namespace(),
            filter: self
                .get("filter")
                .filter(|f| !f.trim().is_empty())
                .map(str::to_string),
            per_page,
            next_token: self.get("next_token").unwrap_or_default().to_string(),
            reverse: self.get("reverse") == Some("true"),
        })
    }
}

/// The standard read parameters.
#[derive(Debug, Clone)]
pub(crate) struct QueryOptions {
    /// Block until the response index exceeds this (0: answer at once).
    pub index: u64,
    /// How long to block at most (default and cap: five minutes).
    pub wait: Duration,
    /// ID prefix filter.
    pub prefix: String,
    /// `default` unless given; `*` means every namespace on list endpoints.
    pub namespace: String,
    /// A filter expression ([`crate::filter`]).
    pub filter: Option<String>,
    /// Page size.
    pub per_page: Option<usize>,
    /// Resume token (the first item of the page).
    pub next_token: String,
    /// Reverse order (only the literal `true`).
    pub reverse: bool,
}

impl QueryOptions {
    /// Whether `ns` is selected by the `namespace` parameter.
    pub fn namespace_matches(&self, ns: &str) -> bool {
        self.namespace == "*" || self.namespace == ns
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Splits and decodes a query string (`+` is a space in values and names).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` when `plus_is_space`); invalid escapes stay as written.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                match (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_paths_and_queries() {
        assert_eq!(
            percent_decode("/v1/job/batch%2Fperiodic-1", false),
            "/v1/job/batch/periodic-1"
        );
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        let q = parse_query("topic=Job%3Aweb&topic=Node&pretty&index=5");
        assert_eq!(q[0], ("topic".into(), "Job:web".into()));
        assert_eq!(q[1], ("topic".into(), "Node".into()));
        assert_eq!(q[2], ("pretty".into(), String::new()));
        assert_eq!(q[3], ("index".into(), "5".into()));
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("F"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
