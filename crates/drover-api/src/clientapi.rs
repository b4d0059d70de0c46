//! The node-local `/v1/client/...` calls (`reference/http-api.md` §3.3): task logs as a stream,
//! the allocation file system, resource usage, restart, signal — and their response types.
//!
//! ```text
//!  Client::alloc_logs(alloc, task, &LogsOptions) ─▶ LogStream ─ next_frame() ─▶ StreamFrame
//!                                                             └ next_data()  ─▶ bytes (no heartbeats)
//!  Client::alloc_logs_plain(...)                  ─▶ RawStream ─ next_chunk() ─▶ bytes
//!  fs_ls / fs_stat / fs_cat / fs_read_at, alloc_stats, host_stats, restart_allocation,
//!  signal_allocation
//! ```
//!
//! These endpoints are answered by the agent whose client runs the allocation; an agent
//! without a client answers 400 and one whose client does not run it 404 (`Unknown
//! allocation`). [`Client::with_address`] makes a client for a node's own `HTTPAddr`, which is
//! what Nomad's CLI tries first.
//!
//! A framed stream is a concatenation of JSON objects (no separators); [`LogStream`] decodes
//! them incrementally as chunks arrive, so a following stream yields each frame as soon as it
//! is complete.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::client::{Client, QueryOptions, decode};
use crate::error::{ApiError, Verb};

/// Which log of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogType {
    /// `stdout`.
    #[default]
    Stdout,
    /// `stderr`.
    Stderr,
}

impl LogType {
    /// `stdout` / `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Stdout => "stdout",
            LogType::Stderr => "stderr",
        }
    }
}

/// Options of [`Client::alloc_logs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    /// stdout or stderr.
    pub log_type: LogType,
    /// Keep streaming what the task writes later (until the stream is dropped).
    pub follow: bool,
    /// Count `offset` from the end of the logs (a tail) instead of the start.
    pub from_end: bool,
    /// Bytes from the origin.
    pub offset: u64,
}

impl LogsOptions {
    fn pairs(&self, task: &str, plain: bool) -> Vec<(String, String)> {
        let mut q = vec![
            ("task".to_string(), task.to_string()),
            ("type".to_string(), self.log_type.as_str().to_string()),
            ("follow".to_string(), self.follow.to_string()),
            (
                "origin".to_string(),
                if self.from_end { "end" } else { "start" }.to_string(),
            ),
            ("offset".to_string(), self.offset.to_string()),
        ];
        if plain {
            q.push(("plain".to_string(), "true".to_string()));
        }
        q
    }
}

/// `StreamFrame`: a piece of a file. A heartbeat has every field empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct StreamFrame {
    /// Position in `File` after `Data`.
    pub offset: i64,
    /// The bytes (base64 on the wire).
    #[serde(deserialize_with = "base64_bytes", serialize_with = "to_base64")]
    pub data: Vec<u8>,
    /// The file, relative to the allocation directory (`alloc/logs/web.stdout.0`).
    pub file: String,
    /// `file deleted` / `file truncated`.
    pub file_event: String,
}

impl StreamFrame {
    /// An empty frame (`{}`): the stream is alive, nothing new.
    pub fn is_heartbeat(&self) -> bool {
        self.data.is_empty() && self.file.is_empty() && self.file_event.is_empty()
    }
}

fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s {
        None => Ok(Vec::new()),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("Data: invalid base64: {e}"))),
    }
}

fn to_base64<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}

/// A raw byte stream (`plain=true`, `fs/cat`).
#[derive(Debug)]
pub struct RawStream {
    resp: reqwest::Response,
}

impl RawStream {
    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        self.resp
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| ApiError::Transport {
                verb: Verb::Get,
                url: self.resp.url().to_string(),
                reason: crate::error::root_reason(&e),
            })
    }
}

/// A stream of [`StreamFrame`]s.
#[derive(Debug)]
pub struct LogStream {
    raw: RawStream,
    buf: Vec<u8>,
    done: bool,
}

impl LogStream {
    /// The next frame (heartbeats included); `None` when the agent ended the stream.
    pub async fn next_frame(&mut self) -> Result<Option<StreamFrame>, ApiError> {
        loop {
            let trimmed = self.buf.iter().position(|b| !b.is_ascii_whitespace());
            match trimmed {
                None => self.buf.clear(),
                Some(start) => {
                    let mut de =
                        serde_json::Deserializer::from_slice(&self.buf[start..]).into_iter::<Value>();
                    match de.next() {
                        Some(Ok(v)) => {
                            let used = start + de.byte_offset();
                            self.buf.drain(..used);
                            return decode(v.to_string().as_bytes(), "stream frame").map(Some);
                        }
                        Some(Err(e)) if e.is_eof() => {}
                        Some(Err(e)) => {
                            return Err(ApiError::Decode {
                                what: "stream frame".into(),
                                message: e.to_string(),
                            });
                        }
                        None => {}
                    }
                }
            }
            if self.done {
                if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(ApiError::Decode {
                        what: "stream frame".into(),
                        message: "the stream ended inside a frame".into(),
                    });
                }
                return Ok(None);
            }
            match self.raw.next_chunk().await? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => self.done = true,
            }
        }
    }

    /// The data of the next frame that has some (heartbeats and events skipped); `None` at the
    /// end.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        while let Some(f) = self.next_frame().await? {
            if !f.data.is_empty() {
                return Ok(Some(f.data));
            }
        }
        Ok(None)
    }

    /// Everything until the end (use without `follow`).
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        while let Some(d) = self.next_data().await? {
            out.extend(d);
        }
        Ok(out)
    }
}

/// `AllocFileInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocFileInfo {
    /// Base name.
    pub name: String,
    /// A directory.
    pub is_dir: bool,
    /// Bytes.
    pub size: i64,
    /// `-rw-r--r--`, `drwxr-xr-x` (Go's notation).
    pub file_mode: String,
    /// Last modification.
    #[serde(with = "drover_types::time::opt_time")]
    pub mod_time: Option<drover_types::time::Timestamp>,
    /// `text/plain; charset=utf-8` (stat only).
    pub content_type: String,
}

/// `MemoryStats` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct MemoryStats {
    /// Resident set.
    #[serde(rename = "RSS")]
    pub rss: u64,
    /// Page cache.
    pub cache: u64,
    /// Swap.
    pub swap: u64,
    /// Mapped files.
    pub mapped_file: u64,
    /// Usage as the cgroup counts it.
    pub usage: u64,
    /// Peak usage.
    pub max_usage: u64,
    /// Kernel memory.
    pub kernel_usage: u64,
    /// Peak kernel memory.
    pub kernel_max_usage: u64,
    /// Which fields are measured (`RSS`, `Usage`, …).
    pub measured: Vec<String>,
}

/// `CpuStats` (percentages of one core; `TotalTicks` in MHz).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CpuStats {
    /// Kernel mode.
    pub system_mode: f64,
    /// User mode.
    pub user_mode: f64,
    /// MHz in use.
    pub total_ticks: f64,
    /// Throttled periods.
    pub throttled_periods: u64,
    /// Throttled time.
    pub throttled_time: u64,
    /// Total percent.
    pub percent: f64,
    /// Which fields are measured.
    pub measured: Vec<String>,
}

/// `ResourceUsage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ResourceUsage {
    /// Memory.
    pub memory_stats: MemoryStats,
    /// CPU.
    pub cpu_stats: CpuStats,
}

/// `TaskResourceUsage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskResourceUsage {
    /// Usage.
    pub resource_usage: ResourceUsage,
    /// When measured (unix nanoseconds).
    pub timestamp: i64,
}

/// `AllocResourceUsage` (`GET /v1/client/allocation/:id/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocResourceUsage {
    /// Sum over the tasks.
    pub resource_usage: ResourceUsage,
    /// Per task.
    pub tasks: BTreeMap<String, TaskResourceUsage>,
    /// When measured (unix nanoseconds).
    pub timestamp: i64,
}

pub use drover_types::stats::{HostCpuStats, HostDiskStats, HostMemoryStats, HostStats};

/// `GenericResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GenericResponse {
    /// Raft index (0 for client-local operations).
    pub index: u64,
}

/// `AllocStopResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocStopResponse {
    /// The evaluation that replaces (or just stops) the allocation.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the write.
    pub index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RestartRequest<'a> {
    task_name: &'a str,
    all_tasks: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignalRequest<'a> {
    task: &'a str,
    signal: &'a str,
}

fn path_query(path: &str) -> QueryOptions {
    QueryOptions::new().with_param("path", path)
}

/// Client (node-local) endpoints.
impl Client {
    /// A client for another agent (a node's `HTTPAddr`) with this one's token, region and
    /// namespace.
    pub fn with_address(&self, address: &str) -> Result<Client, ApiError> {
        Ok(Client::new(address)?
            .with_token(self.token().map(str::to_string))
            .with_region(self.region().map(str::to_string))
            .with_namespace(self.namespace().map(str::to_string)))
    }

    async fn stream(&self, segments: &[&str], query: &[(String, String)]) -> Result<RawStream, ApiError> {
        let resp = self.request_stream(Verb::Get, segments, query).await?;
        Ok(RawStream { resp })
    }

    /// `GET /v1/client/fs/logs/:alloc` (framed): a task's log as [`StreamFrame`]s, across
    /// rotated files. With `follow` the stream stays open until dropped.
    pub async fn alloc_logs(
        &self,
        alloc_id: &str,
        task: &str,
        opts: &LogsOptions,
    ) -> Result<LogStream, ApiError> {
        let raw = self
            .stream(&["client", "fs", "logs", alloc_id], &opts.pairs(task, false))
            .await?;
        Ok(LogStream {
            raw,
            buf: Vec::new(),
            done: false,
        })
    }

    /// `GET /v1/client/fs/logs/:alloc?plain=true`: the log bytes alone.
    pub async fn alloc_logs_plain(
        &self,
        alloc_id: &str,
        task: &str,
        opts: &LogsOptions,
    ) -> Result<RawStream, ApiError> {
        self.stream(&["client", "fs", "logs", alloc_id], &opts.pairs(task, true))
            .await
    }

    /// `GET /v1/client/fs/ls/:alloc?path=`.
    pub async fn fs_ls(&self, alloc_id: &str, path: &str) -> Result<Vec<AllocFileInfo>, ApiError> {
        Ok(self
            .get(&["client", "fs", "ls", alloc_id], &path_query(path), "file list")
            .await?
            .0)
    }

    /// `GET /v1/client/fs/stat/:alloc?path=`.
    pub async fn fs_stat(&self, alloc_id: &str, path: &str) -> Result<AllocFileInfo, ApiError> {
        Ok(self
            .get(
                &["client", "fs", "stat", alloc_id],
                &path_query(path),
                "file info",
            )
            .await?
            .0)
    }

    /// `GET /v1/client/fs/cat/:alloc?path=`: the whole file.
    pub async fn fs_cat(&self, alloc_id: &str, path: &str) -> Result<Vec<u8>, ApiError> {
        let (bytes, _) = self
            .request(
                Verb::Get,
                &["client", "fs", "cat", alloc_id],
                &path_query(path).to_pairs(),
                None,
            )
            .await?;
        Ok(bytes)
    }

    /// `GET /v1/client/fs/readat/:alloc?path=&offset=&limit=`.
    pub async fn fs_read_at(
        &self,
        alloc_id: &str,
        path: &str,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut q = path_query(path).with_param("offset", offset.to_string());
        if let Some(l) = limit {
            q = q.with_param("limit", l.to_string());
        }
        let (bytes, _) = self
            .request(
                Verb::Get,
                &["client", "fs", "readat", alloc_id],
                &q.to_pairs(),
                None,
            )
            .await?;
        Ok(bytes)
    }

    /// `GET /v1/client/allocation/:alloc/stats`.
    pub async fn alloc_stats(&self, alloc_id: &str) -> Result<AllocResourceUsage, ApiError> {
        Ok(self
            .get(
                &["client", "allocation", alloc_id, "stats"],
                &QueryOptions::new(),
                "allocation stats",
            )
            .await?
            .0)
    }

    /// `GET /v1/client/stats[?node_id=]`.
    pub async fn host_stats(&self, node_id: Option<&str>) -> Result<HostStats, ApiError> {
        let mut q = QueryOptions::new();
        if let Some(n) = node_id {
            q = q.with_param("node_id", n);
        }
        Ok(self.get(&["client", "stats"], &q, "host stats").await?.0)
    }

    /// `PUT /v1/client/allocation/:alloc/restart`: one task, or (`None`) every running task.
    pub async fn restart_allocation(
        &self,
        alloc_id: &str,
        task: Option<&str>,
        all_tasks: bool,
    ) -> Result<GenericResponse, ApiError> {
        let body = RestartRequest {
            task_name: task.unwrap_or_default(),
            all_tasks,
        };
        self.write(
            Verb::Put,
            &["client", "allocation", alloc_id, "restart"],
            &[],
            Some(&body),
            "restart response",
        )
        .await
    }

    /// `PUT /v1/client/allocation/:alloc/signal`: `signal` (empty: the agent's default,
    /// `SIGKILL`) to one task or every running task.
    pub async fn signal_allocation(
        &self,
        alloc_id: &str,
        task: Option<&str>,
        signal: &str,
    ) -> Result<GenericResponse, ApiError> {
        let body = SignalRequest {
            task: task.unwrap_or_default(),
            signal,
        };
        self.write(
            Verb::Put,
            &["client", "allocation", alloc_id, "signal"],
            &[],
            Some(&body),
            "signal response",
        )
        .await
    }

    /// `PUT /v1/allocation/:alloc/stop`: stops the allocation (the scheduler replaces it).
    pub async fn stop_allocation(
        &self,
        alloc_id: &str,
        no_shutdown_delay: bool,
    ) -> Result<AllocStopResponse, ApiError> {
        let mut q = Vec::new();
        if no_shutdown_delay {
            q.push(("no_shutdown_delay".to_string(), "true".to_string()));
        }
        self.write::<(), _>(
            Verb::Put,
            &["allocation", alloc_id, "stop"],
            &q,
            None,
            "allocation stop response",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_with_base64_data() {
        let f: StreamFrame = decode(
            br#"{"Offset":5,"Data":"aGVsbG8=","File":"alloc/logs/web.stdout.0"}"#,
            "frame",
        )
        .unwrap();
        assert_eq!(f.data, b"hello");
        assert_eq!(f.offset, 5);
        assert!(!f.is_heartbeat());
        let hb: StreamFrame = decode(b"{}", "frame").unwrap();
        assert!(hb.is_heartbeat());
        let err = decode::<StreamFrame>(br#"{"Data":"!!"}"#, "frame").unwrap_err();
        assert!(err.to_string().contains("Data"), "{err}");
    }

    #[test]
    fn logs_options_become_params() {
        let o = LogsOptions {
            log_type: LogType::Stderr,
            follow: true,
            from_end: true,
            offset: 10,
        };
        let q = o.pairs("web", true);
        assert!(q.contains(&("type".into(), "stderr".into())));
        assert!(q.contains(&("origin".into(), "end".into())));
        assert!(q.contains(&("offset".into(), "10".into())));
        assert!(q.contains(&("plain".into(), "true".into())));
    }
}
