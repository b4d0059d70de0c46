//! [`Client`]: the connection settings and the request plumbing every endpoint shares.
//!
//! ```text
//!  Client::from_env(-address)          typed call (endpoints.rs)
//!     │ address, token,                   │ path segments + QueryOptions / body
//!     │ region, namespace                 ▼
//!     └──────────────────────────▶ Client::request ──▶ reqwest ──▶ agent /v1/...
//!                                         │
//!             (T, QueryMeta) ◀── decode ◀─┴─ status, X-Nomad-* headers, body
//! ```
//!
//! # URLs
//! Paths are given as segments (`["job", id, "plan"]`) and each segment is percent-encoded on
//! its own, so a job ID like `batch/periodic-1700000000` travels as `batch%2Fperiodic-…` and
//! the server (which routes on the decoded path by suffix) sees one ID, not two segments.
//!
//! # Reads and writes
//! Reads take [`QueryOptions`] (`prefix`, blocking `index` + `wait`, `stale`, extra params) and
//! return the value with the [`QueryMeta`] from the `X-Nomad-Index`, `X-Nomad-KnownLeader` and
//! `X-Nomad-LastContact` headers. Writes return the decoded response body (Nomad embeds the
//! write index in it as `Index`).
//!
//! # Decoding
//! Bodies are decoded with [`drover_types::codec`], i.e. leniently like Go: keys match
//! case-insensitively, unknown keys are ignored and `null` means "zero value". Nomad writes
//! `null` for empty maps and lists, which plain serde would reject for a `Vec` field.
//!
//! Every request carries `region` / `namespace` query parameters when the client has them set
//! (as Nomad's Go client does) and `X-Nomad-Token` when a token is set.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Verb, root_reason};

/// Where the CLI looks when neither `-address` nor `NOMAD_ADDR` says otherwise.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4646";

/// How long to wait for a TCP connection before reporting that no agent answered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on one agent's HTTP API. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    address: String,
    region: Option<String>,
    namespace: Option<String>,
    token: Option<String>,
}

/// Options of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Blocking query: return only once the result's index is above this (0 = don't block).
    pub index: u64,
    /// Longest time a blocking query may wait (the server caps it at 5 minutes).
    pub wait: Option<Duration>,
    /// ID prefix filter of list endpoints.
    pub prefix: Option<String>,
    /// Allow any server, not only the leader, to answer.
    pub stale: bool,
    /// Further query parameters (`all=true`, `related=true`, ...).
    pub params: Vec<(String, String)>,
}

impl QueryOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Filter a list by ID prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Make it a blocking query: wait until the index passes `index`, at most `wait`.
    pub fn blocking(mut self, index: u64, wait: Duration) -> Self {
        self.index = index;
        self.wait = Some(wait);
        self
    }

    /// Adds a query parameter.
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The query parameters these options stand for.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.prefix {
            out.push(("prefix".to_string(), p.clone()));
        }
        if self.index > 0 {
            out.push(("index".to_string(), self.index.to_string()));
        }
        if let Some(w) = self.wait {
            // Go's client sends "<n>ms"; the server parses it as a Go duration.
            out.push(("wait".to_string(), format!("{}ms", w.as_millis())));
        }
        if self.stale {
            out.push(("stale".to_string(), String::new()));
        }
        out.extend(self.params.iter().cloned());
        out
    }
}

/// What the response headers of a read say about the data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Nomad-Index`: the Raft index the result reflects; pass it back as
    /// [`QueryOptions::index`] to block until something changes.
    pub last_index: u64,
    /// `X-Nomad-KnownLeader`: whether the answering server knew a leader.
    pub known_leader: bool,
    /// `X-Nomad-LastContact`: how long ago the answering server heard from the leader.
    pub last_contact: Duration,
}

impl QueryMeta {
    /// Reads the `X-Nomad-*` headers; missing or malformed headers leave the zero value (as the
    /// Go client ignores parse failures).
    pub fn from_headers(headers: &HeaderMap) -> QueryMeta {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        QueryMeta {
            last_index: get("X-Nomad-Index")
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            known_leader: get("X-Nomad-KnownLeader") == Some("true"),
            last_contact: get("X-Nomad-LastContact")
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or_default(),
        }
    }
}

/// Picks the agent address: the `-address` flag, else `NOMAD_ADDR`, else [`DEFAULT_ADDRESS`].
/// Empty values count as unset.
pub fn resolve_address(flag: Option<String>, env: Option<String>) -> String {
    flag.filter(|s| !s.trim().is_empty())
        .or_else(|| env.filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_string())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

impl Client {
    /// A client for the agent at `address` (`http://host:port`; a bare `host:port` gets
    /// `http://`). No request is made here.
    pub fn new(address: impl Into<String>) -> Result<Client, ApiError> {
        let given: String = address.into();
        let trimmed = given.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let with_scheme = with_scheme.trim_end_matches('/').to_string();
        let invalid = |reason: String| ApiError::InvalidAddress {
            address: given.clone(),
            reason,
        };
        let base = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(invalid(format!(
                "unsupported scheme {:?} (use http://host:port)",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("missing host".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| invalid(root_reason(&e)))?;
        Ok(Client {
            http,
            base,
            address: with_scheme,
            region: None,
            namespace: None,
            token: None,
        })
    }

    /// A client configured like Nomad's CLI: address from the `-address` flag, else
    /// `NOMAD_ADDR`, else `http://127.0.0.1:4646`; token from `NOMAD_TOKEN`; region and
    /// namespace from `NOMAD_REGION` / `NOMAD_NAMESPACE`.
    pub fn from_env(address_flag: Option<String>) -> Result<Client, ApiError> {
        let address = resolve_address(address_flag, env_var("NOMAD_ADDR"));
        let mut client = Client::new(address)?;
        client.token = env_var("NOMAD_TOKEN");
        client.region = env_var("NOMAD_REGION");
        client.namespace = env_var("NOMAD_NAMESPACE");
        Ok(client)
    }

    /// Sends `?region=` on every request (`None` = the agent's region).
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region.filter(|s| !s.is_empty());
        self
    }

    /// Sends `?namespace=` on every request (`None` = `default`).
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace.filter(|s| !s.is_empty());
        self
    }

    /// Sends `X-Nomad-Token` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|s| !s.is_empty());
        self
    }

    /// The agent address (`http://127.0.0.1:4646`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The region sent with requests, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The token sent with requests, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The namespace sent with requests, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The full URL of `/v1/<segments…>?<query>`, each segment percent-encoded on its own, plus
    /// the client's `region` / `namespace` unless `query` sets them itself.
    pub fn url(&self, segments: &[&str], query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1");
            for s in segments {
                path.push(s);
            }
        }
        {
            let mut pairs = url.query_pairs_mut();
            let given = |key: &str| query.iter().any(|(k, _)| k == key);
            if let Some(r) = self.region.as_ref().filter(|_| !given("region")) {
                pairs.append_pair("region", r);
            }
            if let Some(n) = self.namespace.as_ref().filter(|_| !given("namespace")) {
                pairs.append_pair("namespace", n);
            }
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// Sends one request and returns the success body and headers; maps every failure to an
    /// [`ApiError`].
    pub(crate) async fn request(
        &self,
        verb: Verb,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(Vec<u8>, HeaderMap), ApiError> {
        let url = self.url(segments, query);
        let url_text = url.to_string();
        let mut req = self.http.request(verb.method(), url);
        if let Some(token) = &self.token {
            req = req.header("X-Nomad-Token", token);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.network_error(verb, &url_text, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.network_error(verb, &url_text, &e))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                code: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        Ok((bytes.to_vec(), headers))
    }

    /// Sends a GET (or other bodiless request) and returns the response once its status is a
    /// success, for bodies read as a stream.
    pub(crate) async fn request_stream(
        &self,
        verb: Verb,
        segments: &[&str],
        query: &[(String, String)],
    ) -> Result<reqwest::Response, ApiError> {
        let url = self.url(segments, query);
        let url_text = url.to_string();
        let mut req = self.http.request(verb.method(), url);
        if let Some(token) = &self.token {
            req = req.header("X-Nomad-Token", token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.network_error(verb, &url_text, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ApiError::Status {
                code: status.as_u16(),
                body: body.trim().to_string(),
            });
        }
        Ok(resp)
    }

    fn network_error(&self, verb: Verb, url: &str, e: &reqwest::Error) -> ApiError {
        let reason = root_reason(e);
        if e.is_connect() {
            ApiError::Connect {
                verb,
                url: url.to_string(),
                address: self.address.clone(),
                reason,
            }
        } else {
            ApiError::Transport {
                verb,
                url: url.to_string(),
                reason: if e.is_timeout() {
                    "request timed out".to_string()
                } else {
                    reason
                },
            }
        }
    }

    /// `GET /v1/<segments>` decoded into `T`, with the query meta.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        opts: &QueryOptions,
        what: &str,
    ) -> Result<(T, QueryMeta), ApiError> {
        let (bytes, headers) = self.request(Verb::Get, segments, &opts.to_pairs(), None).await?;
        Ok((decode(&bytes, what)?, QueryMeta::from_headers(&headers)))
    }

    /// `GET /v1/<segments>` as untyped JSON (for `-json` output of anything).
    pub async fn get_json(
        &self,
        segments: &[&str],
        opts: &QueryOptions,
    ) -> Result<(serde_json::Value, QueryMeta), ApiError> {
        let (bytes, headers) = self.request(Verb::Get, segments, &opts.to_pairs(), None).await?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
                what: "response".into(),
                message: e.to_string(),
            })?
        };
        Ok((value, QueryMeta::from_headers(&headers)))
    }

    /// A write (`PUT`, `POST` or `DELETE`) with an optional JSON body, decoded into `T`.
    pub async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        verb: Verb,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<&B>,
        what: &str,
    ) -> Result<T, ApiError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ApiError::Decode {
                what: format!("{what} request"),
                message: e.to_string(),
            })?),
            None => None,
        };
        let (bytes, _) = self.request(verb, segments, query, body).await?;
        decode(&bytes, what)
    }
}

/// Decodes a response body leniently; an empty body decodes like JSON `null`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    let result = if bytes.iter().all(u8::is_ascii_whitespace) {
        drover_types::codec::from_value(serde_json::Value::Null)
    } else {
        drover_types::codec::from_slice(bytes)
    };
    result.map_err(|e| ApiError::Decode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn address_resolution_order() {
        assert_eq!(
            resolve_address(Some("http://a:1".into()), Some("http://b:2".into())),
            "http://a:1"
        );
        assert_eq!(resolve_address(None, Some("http://b:2".into())), "http://b:2");
        assert_eq!(
            resolve_address(Some(" ".into()), Some(String::new())),
            DEFAULT_ADDRESS
        );
    }

    #[test]
    fn bare_host_port_gets_http_and_bad_addresses_are_rejected() {
        let c = Client::new("127.0.0.1:4646/").unwrap();
        assert_eq!(c.address(), "http://127.0.0.1:4646");
        assert_eq!(c.url(&["jobs"], &[]).as_str(), "http://127.0.0.1:4646/v1/jobs");
        let err = Client::new("ftp://x").unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
        assert!(Client::new("http://").is_err());
    }

    #[test]
    fn job_ids_with_slashes_stay_one_segment() {
        let c = Client::new("http://127.0.0.1:4646").unwrap();
        let u = c.url(&["job", "batch/periodic-1700000000", "plan"], &[]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:4646/v1/job/batch%2Fperiodic-1700000000/plan"
        );
        let u = c.url(&["job", "a b?c#d"], &[]);
        assert_eq!(u.as_str(), "http://127.0.0.1:4646/v1/job/a%20b%3Fc%23d");
    }

    #[test]
    fn query_options_and_client_scope_become_params() {
        let c = Client::new("http://h:1")
            .unwrap()
            .with_region(Some("eu".into()))
            .with_namespace(Some("prod".into()));
        let q = QueryOptions::new()
            .with_prefix("ex/a")
            .blocking(42, Duration::from_secs(2))
            .with_param("related", "true");
        let u = c.url(&["evaluations"], &q.to_pairs());
        assert_eq!(
            u.as_str(),
            "http://h:1/v1/evaluations?region=eu&namespace=prod&prefix=ex%2Fa&index=42&wait=2000ms&related=true"
        );
    }

    #[test]
    fn query_meta_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("X-Nomad-Index", HeaderValue::from_static("1234"));
        h.insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
        h.insert("X-Nomad-LastContact", HeaderValue::from_static("15"));
        assert_eq!(
            QueryMeta::from_headers(&h),
            QueryMeta {
                last_index: 1234,
                known_leader: true,
                last_contact: Duration::from_millis(15)
            }
        );
        let mut bad = HeaderMap::new();
        bad.insert("X-Nomad-Index", HeaderValue::from_static("nope"));
        assert_eq!(QueryMeta::from_headers(&bad), QueryMeta::default());
    }

    #[test]
    fn decoding_is_lenient_and_empty_is_null() {
        let v: Option<drover_types::Deployment> = decode(b"null", "deployment").unwrap();
        assert!(v.is_none());
        let v: Option<drover_types::Deployment> = decode(b"", "deployment").unwrap();
        assert!(v.is_none());
        let e: drover_types::Evaluation = decode(
            br#"{"id":"e1","FailedTGAllocs":null,"RelatedEvals":null}"#,
            "evaluation",
        )
        .unwrap();
        assert_eq!(e.id, "e1");
        let err = decode::<drover_types::Evaluation>(br#"{"Priority":"high"}"#, "evaluation").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to decode evaluation: Priority"),
            "{err}"
        );
    }
}
