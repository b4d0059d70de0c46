//! The node-local `/v1/client/...` endpoints (`reference/http-api.md` §3.3), answered by the
//! client agent running in this process: task logs, the allocation file system, resource usage,
//! restart and signal.
//!
//! ```text
//!  /v1/client/fs/logs/<alloc>?task=&type=&follow=&origin=&offset=&plain=
//!      └─ alloc/logs/<task>.<type>.<N>, N ascending ─▶ pump ─▶ StreamFrame JSON | raw bytes
//!  /v1/client/fs/{ls,stat,cat,readat,stream}/<alloc>?path=   (path inside <alloc_dir>/<alloc>)
//!  /v1/client/allocation/<alloc>/{stats,restart,signal}      ─▶ drover_client::Client
//!  /v1/client/stats                                          ─▶ drover_client::stats (/proc)
//! ```
//!
//! # Streams
//! Framed answers are a concatenation of `StreamFrame` objects, `{"Offset","Data" (base64),
//! "File","FileEvent"}`, every field omitted when empty, so a heartbeat is `{}`. Data frames
//! carry at most [`FRAME_BYTES`]; `Offset` is the position in `File` just after the data. A
//! following stream polls every [`POLL`], sends `{}` when it first catches up (readers use it
//! as "you have everything so far") and every second while idle, moves to the next rotated
//! file once the current one is finished, and ends when the reader goes away or the agent
//! shuts down. `plain=true` sends the bytes alone.
//!
//! # Paths
//! File system paths are relative to the allocation directory (`/` is its root). A `..`
//! component, or a symlink whose target lies outside the directory, is refused with 400.
//! Files under `<task>/secrets/` are not served.
//!
//! # Errors
//! No client in this agent: 400. An allocation this client does not run: 404
//! `Unknown allocation "<id>"`. Routes Nomad has and Drover does not serve yet (exec, checks,
//! gc, metadata, pause, snapshot): 501. The requests are not forwarded to other nodes: ask
//! the agent of the node that runs the allocation (its `HTTPAddr`), as Nomad's CLI does first.

use std::convert::Infallible;
use std::io::SeekFrom;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use drover_types::time::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{decode_optional_body, not_supported, only_get, only_write};
use crate::error::ApiError;
use crate::request::Req;
use crate::{AppState, respond};

/// Most data bytes in one frame (Nomad's frame size).
pub const FRAME_BYTES: usize = 64 * 1024;
/// How often a following stream looks for new data.
pub const POLL: Duration = Duration::from_millis(250);
/// Idle polls between heartbeats (one second).
const HEARTBEAT_POLLS: u32 = 4;
/// How far apart the two samples of a CPU percentage are.
const CPU_SAMPLE: Duration = Duration::from_millis(100);

/// `/v1/client/<rest>`.
pub(crate) async fn client(State(st): State<AppState>, req: Req) -> Response {
    let rest = req
        .path
        .strip_prefix("/v1/client/")
        .unwrap_or_default()
        .to_string();
    let cors =
        rest.starts_with("fs/") || rest == "stats" || rest.starts_with("allocation/") || rest == "metadata";
    let mut resp = match route(&st, &req, &rest).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if cors {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    resp
}

async fn route(st: &AppState, req: &Req, rest: &str) -> Result<Response, ApiError> {
    if let Some(fs) = rest.strip_prefix("fs/") {
        let (op, alloc) = fs.split_once('/').unwrap_or((fs, ""));
        only_get(req)?;
        let known = ["logs", "ls", "stat", "cat", "readat", "stream"];
        if !known.contains(&op) {
            return Err(ApiError::NotFound(format!(
                "unknown file system operation {op:?}"
            )));
        }
        let c = local_client(st)?;
        let root = alloc_root(c, alloc)?;
        return match op {
            "logs" => logs(c, req, alloc, root).await,
            "ls" => ls(req, &root),
            "stat" => stat(req, &root),
            "cat" => cat(req, &root).await,
            "readat" => read_at(req, &root).await,
            _ => stream(req, root).await,
        };
    }
    if let Some(a) = rest.strip_prefix("allocation/") {
        let (id, op) = a.rsplit_once('/').unwrap_or((a, ""));
        return match op {
            "stats" => {
                only_get(req)?;
                alloc_stats(local_client(st)?, req, id).await
            }
            "restart" => {
                only_write(req)?;
                restart(local_client(st)?, req, id)
            }
            "signal" => {
                only_write(req)?;
                signal(local_client(st)?, req, id).await
            }
            "exec" => Err(not_supported("alloc exec")),
            "checks" => Err(not_supported("allocation checks")),
            "gc" => Err(not_supported("client allocation garbage collection")),
            "pause" => Err(not_supported("task schedules (pause)")),
            "snapshot" => Err(not_supported("allocation snapshots")),
            _ => Ok(axum::http::StatusCode::NOT_FOUND.into_response()),
        };
    }
    match rest {
        "stats" => {
            only_get(req)?;
            host_stats(local_client(st)?, req).await
        }
        "gc" => Err(not_supported("client garbage collection")),
        "metadata" => Err(not_supported("dynamic node metadata")),
        "identity" | "identity/renew" => Err(not_supported("client identities")),
        _ => Ok(axum::http::StatusCode::NOT_FOUND.into_response()),
    }
}

/// The client of this agent, or 400.
fn local_client(st: &AppState) -> Result<&drover_client::Client, ApiError> {
    st.client.as_ref().ok_or_else(|| {
        ApiError::BadRequest(
            "This agent is not running a client: /v1/client endpoints are served by agents with \
             the client enabled (drover agent -dev); ask the agent of the node that runs the \
             allocation"
                .into(),
        )
    })
}

fn unknown_alloc(id: &str) -> ApiError {
    ApiError::NotFound(format!("Unknown allocation {id:?}"))
}

fn client_error(id: &str, e: drover_client::ClientError) -> ApiError {
    match e {
        drover_client::ClientError::UnknownAlloc(_) => unknown_alloc(id),
        drover_client::ClientError::Task(m) => ApiError::BadRequest(m),
        other => ApiError::Internal(other.to_string()),
    }
}

/// `<alloc_dir>/<id>`, or 404.
fn alloc_root(c: &drover_client::Client, id: &str) -> Result<PathBuf, ApiError> {
    if id.is_empty() {
        return Err(ApiError::BadRequest("must provide an allocation ID".into()));
    }
    c.alloc_dir(id).map_err(|_| unknown_alloc(id))
}

// ----- logs and file streams -------------------------------------------------------------------

/// What a stream reads: a task's rotated log files, or one file.
#[derive(Debug, Clone)]
enum Source {
    Logs {
        dir: PathBuf,
        task: String,
        kind: String,
    },
    File(PathBuf),
}

impl Source {
    /// The files in reading order with their indexes.
    fn files(&self) -> Vec<(u32, PathBuf)> {
        match self {
            Source::Logs { dir, task, kind } => drover_drivers::logs::log_files(dir, task, kind),
            Source::File(p) if p.is_file() => vec![(0, p.clone())],
            Source::File(_) => Vec::new(),
        }
    }
}

/// Where reading starts: `offset` bytes from the start of the first file or from the end of
/// the last, counted across the files in order. `None` when there is no file yet.
fn start_position(sizes: &[(u32, u64)], origin_end: bool, offset: u64) -> Option<(u32, u64)> {
    let (first, _) = *sizes.first()?;
    let (last, last_size) = *sizes.last()?;
    let mut remaining = offset;
    if origin_end {
        for &(idx, size) in sizes.iter().rev() {
            if remaining <= size {
                return Some((idx, size - remaining));
            }
            remaining -= size;
        }
        Some((first, 0))
    } else {
        for &(idx, size) in sizes {
            if remaining < size {
                return Some((idx, remaining));
            }
            remaining -= size;
        }
        Some((last, last_size))
    }
}

/// One `StreamFrame`; empty fields are omitted (a heartbeat is `{}`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Frame<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    offset: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    data: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    file: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    file_event: &'a str,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// How a stream runs.
#[derive(Debug, Clone)]
struct StreamSpec {
    root: PathBuf,
    source: Source,
    origin_end: bool,
    offset: u64,
    follow: bool,
    framed: bool,
}

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

/// The frame text, or the raw bytes in plain mode.
fn encode(spec: &StreamSpec, file: &str, offset: u64, data: &[u8], event: &str) -> Bytes {
    if !spec.framed {
        return Bytes::copy_from_slice(data);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let f = Frame {
        offset: offset as i64,
        data: &b64,
        file,
        file_event: event,
    };
    Bytes::from(serde_json::to_vec(&f).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The file's name relative to the allocation directory (`alloc/logs/web.stdout.0`).
fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).to_string_lossy().into_owned()
}

/// Reads `spec`'s files into `tx` until done (not following), the reader leaves, or shutdown.
async fn pump(spec: StreamSpec, tx: Tx) {
    let heartbeat = || Ok(Bytes::from_static(b"{}"));
    // The file being read: (index, path, open handle, position).
    let mut cur: Option<(u32, PathBuf, Option<tokio::fs::File>, u64)> = {
        let files = spec.source.files();
        let sizes: Vec<(u32, u64)> = files
            .iter()
            .map(|(i, p)| (*i, std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)))
            .collect();
        start_position(&sizes, spec.origin_end, spec.offset).and_then(|(idx, pos)| {
            files
                .into_iter()
                .find(|(i, _)| *i == idx)
                .map(|(i, p)| (i, p, None, pos))
        })
    };
    let mut caught_up = false;
    let mut idle: u32 = 0;
    let mut buf = vec![0u8; FRAME_BYTES];
    loop {
        // Read what the current file has.
        let mut sent = false;
        let mut unread = false;
        if let Some((_, path, handle, pos)) = &mut cur {
            if handle.is_none() {
                *handle = tokio::fs::File::open(&*path).await.ok();
            }
            if let Some(f) = handle {
                let len = f.metadata().await.map(|m| m.len()).unwrap_or(*pos);
                if len < *pos {
                    *pos = 0;
                    let name = relative(&spec.root, path);
                    if spec.framed
                        && tx
                            .send(Ok(encode(&spec, &name, 0, &[], "file truncated")))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                if len > *pos {
                    unread = true;
                    let want = ((len - *pos) as usize).min(buf.len());
                    let got = match f.seek(SeekFrom::Start(*pos)).await {
                        Ok(_) => f.read(&mut buf[..want]).await.unwrap_or(0),
                        Err(_) => 0,
                    };
                    if got > 0 {
                        *pos += got as u64;
                        let name = relative(&spec.root, path);
                        if tx
                            .send(Ok(encode(&spec, &name, *pos, &buf[..got], "")))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        sent = true;
                    }
                }
            }
        }
        if sent {
            idle = 0;
            caught_up = false;
            continue;
        }
        // At the end of the current file: move on when a later file exists. The writer starts
        // a new file only once the old one is complete, and the read above found nothing
        // more in it (an unreadable rest is skipped rather than retried forever).
        let next = spec
            .source
            .files()
            .into_iter()
            .find(|(i, _)| cur.as_ref().is_none_or(|(c, ..)| i > c));
        if let Some((idx, path)) = next {
            if !unread && let Some((_, _, Some(f), pos)) = &cur {
                // A last look: the writer may have finished this file after the read above.
                let len = f.metadata().await.map(|m| m.len()).unwrap_or(*pos);
                if len > *pos {
                    continue;
                }
            }
            cur = Some((idx, path, None, 0));
            continue;
        }
        if !spec.follow {
            return;
        }
        if let (Source::File(p), Some(_)) = (&spec.source, &cur)
            && !p.exists()
        {
            if spec.framed {
                let name = relative(&spec.root, p);
                let _ = tx.send(Ok(encode(&spec, &name, 0, &[], "file deleted"))).await;
            }
            return;
        }
        if spec.framed && (!caught_up || idle % HEARTBEAT_POLLS == HEARTBEAT_POLLS - 1) {
            caught_up = true;
            if tx.send(heartbeat()).await.is_err() {
                return;
            }
        }
        idle = idle.wrapping_add(1);
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
        }
    }
}

/// Starts `spec` and answers with its body.
fn stream_response(req: &Req, spec: StreamSpec) -> Response {
    let framed = spec.framed;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let shutdown = req.shutdown_signal();
    tokio::spawn(async move {
        tokio::select! {
            () = pump(spec, tx) => {}
            () = shutdown => {}
        }
    });
    let mut resp = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if framed {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn origin_param(req: &Req) -> Result<bool, ApiError> {
    match req.get("origin") {
        None | Some("") | Some("start") => Ok(false),
        Some("end") => Ok(true),
        Some(_) => Err(ApiError::BadRequest("origin must be start or end".into())),
    }
}

fn u64_param(req: &Req, name: &str) -> Result<Option<u64>, ApiError> {
    match req.get(name) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "Failed to parse {name} ({v:?}): must be a non-negative number of bytes"
            ))
        }),
    }
}

/// `GET /v1/client/fs/logs/<alloc>`.
async fn logs(
    c: &drover_client::Client,
    req: &Req,
    alloc: &str,
    root: PathBuf,
) -> Result<Response, ApiError> {
    let task = req.get("task").unwrap_or_default().to_string();
    if task.is_empty() {
        return Err(ApiError::BadRequest("must provide task name".into()));
    }
    let kind = match req.get("type") {
        Some(t @ ("stdout" | "stderr")) => t.to_string(),
        _ => {
            return Err(ApiError::BadRequest(
                "must provide log type (stdout/stderr)".into(),
            ));
        }
    };
    if let Some(r) = c.runner(alloc)
        && !r.tasks().iter().any(|t| t.name == task)
    {
        let names: Vec<&str> = r.tasks().iter().map(|t| t.name.as_str()).collect();
        return Err(ApiError::BadRequest(format!(
            "task group {:?} does not have task with name {task:?} (tasks: {})",
            r.alloc().task_group,
            names.join(", ")
        )));
    }
    let spec = StreamSpec {
        source: Source::Logs {
            dir: root.join("alloc").join("logs"),
            task,
            kind,
        },
        root,
        origin_end: origin_param(req)?,
        offset: u64_param(req, "offset")?.unwrap_or(0),
        follow: req.flag("follow", false)?,
        framed: !req.flag("plain", false)?,
    };
    Ok(stream_response(req, spec))
}

/// `GET /v1/client/fs/stream/<alloc>?path=&offset=&origin=&follow=` (follow defaults to true).
async fn stream(req: &Req, root: PathBuf) -> Result<Response, ApiError> {
    let path = required_path(req)?;
    let p = resolve(&root, &path)?;
    if p.is_dir() {
        return Err(ApiError::BadRequest(format!("path {path:?} is a directory")));
    }
    refuse_secrets(&root, &p, &path)?;
    let spec = StreamSpec {
        source: Source::File(p),
        root: root.canonicalize().unwrap_or(root),
        origin_end: origin_param(req)?,
        offset: u64_param(req, "offset")?.unwrap_or(0),
        follow: req.flag("follow", true)?,
        framed: !req.flag("plain", false)?,
    };
    Ok(stream_response(req, spec))
}

// ----- file system -----------------------------------------------------------------------------

/// `AllocFileInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FileInfo {
    name: String,
    is_dir: bool,
    size: u64,
    file_mode: String,
    mod_time: Timestamp,
    #[serde(skip_serializing_if = "String::is_empty")]
    content_type: String,
}

/// Go's `os.FileMode.String()`: type letters (`d`, `L`, `p`, `S`, `D`, `c`, `u`, `g`, `t`),
/// `-` when there are none, then `rwxrwxrwx`.
fn go_file_mode(m: &std::fs::Metadata) -> String {
    let ft = m.file_type();
    let mode = m.permissions().mode();
    let mut s = String::new();
    if ft.is_dir() {
        s.push('d');
    }
    if ft.is_symlink() {
        s.push('L');
    }
    if ft.is_block_device() || ft.is_char_device() {
        s.push('D');
    }
    if ft.is_fifo() {
        s.push('p');
    }
    if ft.is_socket() {
        s.push('S');
    }
    if mode & 0o4000 != 0 {
        s.push('u');
    }
    if mode & 0o2000 != 0 {
        s.push('g');
    }
    if ft.is_char_device() {
        s.push('c');
    }
    if mode & 0o1000 != 0 {
        s.push('t');
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// What a file holds, like Go's `http.DetectContentType` for the common cases.
fn content_type(p: &Path, m: &std::fs::Metadata) -> String {
    if m.is_dir() {
        return String::new();
    }
    let mut head = vec![0u8; 512];
    let n = std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..n];
    let text = !head.contains(&0)
        && match std::str::from_utf8(head) {
            Ok(_) => true,
            // A multi-byte character cut at the end of the sample is still text.
            Err(e) => e.error_len().is_none(),
        };
    if text {
        "text/plain; charset=utf-8".into()
    } else {
        "application/octet-stream".into()
    }
}

fn file_info(name: String, m: &std::fs::Metadata, content: String) -> FileInfo {
    FileInfo {
        name,
        is_dir: m.is_dir(),
        size: m.len(),
        file_mode: go_file_mode(m),
        mod_time: Timestamp(m.mtime() * 1_000_000_000 + m.mtime_nsec()),
        content_type: content,
    }
}

fn escapes(path: &str) -> ApiError {
    ApiError::BadRequest(format!("Path {path:?} escapes the allocation directory"))
}

/// `path` (relative to the allocation directory, `/` its root) as a host path whose real
/// location is inside the directory.
fn resolve(root: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escapes(path));
    }
    let joined = root.join(rel);
    let real_root = root
        .canonicalize()
        .map_err(|e| ApiError::Internal(format!("allocation directory: {e}")))?;
    match joined.canonicalize() {
        Ok(real) if real.starts_with(&real_root) => Ok(real),
        Ok(_) => Err(escapes(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::NotFound(format!("file not found: {path:?}")))
        }
        Err(e) => Err(ApiError::Internal(format!("{path:?}: {e}"))),
    }
}

/// Files under `<task>/secrets/` are the task's own.
fn refuse_secrets(root: &Path, real: &Path, path: &str) -> Result<(), ApiError> {
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let rel = real.strip_prefix(&real_root).unwrap_or(real);
    let mut parts = rel.components();
    let _task = parts.next();
    if parts.next().is_some_and(|c| c.as_os_str() == "secrets") {
        return Err(ApiError::BadRequest(format!(
            "Reading secret file prohibited: {path:?}"
        )));
    }
    Ok(())
}

fn required_path(req: &Req) -> Result<String, ApiError> {
    match req.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::BadRequest("must provide a file path (path)".into())),
    }
}

fn io_error(path: &str, e: std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ApiError::NotFound(format!("file not found: {path:?}"))
    } else {
        ApiError::Internal(format!("{path:?}: {e}"))
    }
}

/// `GET /v1/client/fs/ls/<alloc>?path=` (default `/`): the entries, sorted by name.
fn ls(req: &Req, root: &Path) -> Result<Response, ApiError> {
    let path = req
        .get("path")
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_string();
    let dir = resolve(root, &path)?;
    if !dir.is_dir() {
        return Err(ApiError::BadRequest(format!("path {path:?} is not a directory")));
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| io_error(&path, e))? {
        let e = e.map_err(|e| io_error(&path, e))?;
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        out.push(file_info(
            e.file_name().to_string_lossy().into_owned(),
            &m,
            String::new(),
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    respond::json(req, &out)
}

/// `GET /v1/client/fs/stat/<alloc>?path=`.
fn stat(req: &Req, root: &Path) -> Result<Response, ApiError> {
    let path = required_path(req)?;
    let p = resolve(root, &path)?;
    let m = std::fs::metadata(&p).map_err(|e| io_error(&path, e))?;
    let name = Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    respond::json(req, &file_info(name, &m, content_type(&p, &m)))
}

fn raw(bytes: Vec<u8>, content: &str) -> Response {
    let mut resp = bytes.into_response();
    if let Ok(v) = HeaderValue::from_str(content) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// `GET /v1/client/fs/cat/<alloc>?path=`: the whole file.
async fn cat(req: &Req, root: &Path) -> Result<Response, ApiError> {
    let path = required_path(req)?;
    let p = resolve(root, &path)?;
    let m = std::fs::metadata(&p).map_err(|e| io_error(&path, e))?;
    if m.is_dir() {
        return Err(ApiError::BadRequest(format!("path {path:?} is a directory")));
    }
    refuse_secrets(root, &p, &path)?;
    let bytes = tokio::fs::read(&p).await.map_err(|e| io_error(&path, e))?;
    Ok(raw(bytes, &content_type(&p, &m)))
}

/// `GET /v1/client/fs/readat/<alloc>?path=&offset=&limit=`: `limit` bytes (all when absent)
/// from `offset`.
async fn read_at(req: &Req, root: &Path) -> Result<Response, ApiError> {
    let path = required_path(req)?;
    let offset = u64_param(req, "offset")?
        .ok_or_else(|| ApiError::BadRequest("must provide an offset (offset)".into()))?;
    let limit = u64_param(req, "limit")?;
    let p = resolve(root, &path)?;
    let m = std::fs::metadata(&p).map_err(|e| io_error(&path, e))?;
    if m.is_dir() {
        return Err(ApiError::BadRequest(format!("path {path:?} is a directory")));
    }
    refuse_secrets(root, &p, &path)?;
    let mut f = tokio::fs::File::open(&p).await.map_err(|e| io_error(&path, e))?;
    f.seek(SeekFrom::Start(offset))
        .await
        .map_err(|e| io_error(&path, e))?;
    let mut out = Vec::new();
    match limit {
        Some(n) => f.take(n).read_to_end(&mut out).await,
        None => f.read_to_end(&mut out).await,
    }
    .map_err(|e| io_error(&path, e))?;
    Ok(raw(out, "application/octet-stream"))
}

// ----- resource usage --------------------------------------------------------------------------

/// `MemoryStats`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MemoryStats {
    #[serde(rename = "RSS")]
    rss: u64,
    cache: u64,
    swap: u64,
    mapped_file: u64,
    usage: u64,
    max_usage: u64,
    kernel_usage: u64,
    kernel_max_usage: u64,
    measured: Option<Vec<String>>,
}

/// `CpuStats`: percentages of one core; `TotalTicks` in MHz.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CpuStats {
    system_mode: f64,
    user_mode: f64,
    total_ticks: f64,
    throttled_periods: u64,
    throttled_time: u64,
    percent: f64,
    measured: Option<Vec<String>>,
}

/// `ResourceUsage`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceUsage {
    memory_stats: MemoryStats,
    cpu_stats: CpuStats,
    device_stats: Option<Vec<serde_json::Value>>,
}

/// `TaskResourceUsage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskUsage {
    resource_usage: ResourceUsage,
    timestamp: i64,
    pids: Option<serde_json::Value>,
}

/// `AllocResourceUsage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AllocUsage {
    resource_usage: ResourceUsage,
    tasks: std::collections::BTreeMap<String, TaskUsage>,
    timestamp: i64,
}

const MEMORY_MEASURES: &[&str] = &[
    "RSS",
    "Cache",
    "Swap",
    "Mapped File",
    "Usage",
    "Max Usage",
    "Kernel Usage",
    "Kernel Max Usage",
];

/// One task's usage from two samples `wall_ns` apart; `mhz_per_core` turns the CPU share into
/// MHz.
fn task_usage(
    before: Option<&drover_drivers::TaskResourceUsage>,
    after: &drover_drivers::TaskResourceUsage,
    wall_ns: i64,
    mhz_per_core: f64,
) -> ResourceUsage {
    let memory_measured: Vec<String> = after
        .measured
        .iter()
        .filter(|m| MEMORY_MEASURES.contains(&m.as_str()))
        .cloned()
        .collect();
    let mut cpu_measured: Vec<String> = after
        .measured
        .iter()
        .filter(|m| !MEMORY_MEASURES.contains(&m.as_str()))
        .cloned()
        .collect();
    let pct = |a: u64, b: u64| {
        if wall_ns > 0 {
            b.saturating_sub(a) as f64 * 100.0 / wall_ns as f64
        } else {
            0.0
        }
    };
    let (user, system) = match before {
        Some(b) => (pct(b.user_ns, after.user_ns), pct(b.system_ns, after.system_ns)),
        None => (0.0, 0.0),
    };
    let percent = user + system;
    if !cpu_measured.is_empty() {
        for m in ["Percent", "Total Ticks"] {
            if !cpu_measured.iter().any(|x| x == m) {
                cpu_measured.push(m.to_string());
            }
        }
    }
    ResourceUsage {
        memory_stats: MemoryStats {
            rss: after.rss,
            usage: after.usage,
            max_usage: after.max_usage,
            measured: Some(memory_measured),
            ..Default::default()
        },
        cpu_stats: CpuStats {
            system_mode: system,
            user_mode: user,
            total_ticks: percent / 100.0 * mhz_per_core,
            percent,
            measured: Some(cpu_measured),
            ..Default::default()
        },
        device_stats: None,
    }
}

/// MHz of one core of this node.
fn mhz_per_core(c: &drover_client::Client) -> f64 {
    let node = c.node();
    let res = node.node_resources.unwrap_or_default();
    let cores = if res.cpu.total_cpu_cores > 0 {
        res.cpu.total_cpu_cores
    } else {
        node.attributes
            .get("cpu.numcores")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    };
    res.cpu.cpu_shares as f64 / cores.max(1) as f64
}

/// `GET /v1/client/allocation/<id>/stats[?task=]`: two samples [`CPU_SAMPLE`] apart.
async fn alloc_stats(c: &drover_client::Client, req: &Req, id: &str) -> Result<Response, ApiError> {
    let task = req.get("task").filter(|t| !t.is_empty());
    if let (Some(t), Some(r)) = (task, c.runner(id))
        && !r.tasks().iter().any(|x| x.name == t)
    {
        return Err(ApiError::BadRequest(format!(
            "task {t:?} not found in allocation {id:?}"
        )));
    }
    let t0 = drover_drivers::now_nanos();
    let first = c.alloc_stats(id).await.map_err(|e| client_error(id, e))?;
    tokio::time::sleep(CPU_SAMPLE).await;
    let second = c.alloc_stats(id).await.map_err(|e| client_error(id, e))?;
    let t1 = drover_drivers::now_nanos();
    let mhz = mhz_per_core(c);
    let mut tasks = std::collections::BTreeMap::new();
    let mut total = ResourceUsage::default();
    let mut mem_measured: Vec<String> = Vec::new();
    let mut cpu_measured: Vec<String> = Vec::new();
    for (name, after) in &second {
        if task.is_some_and(|t| t != name) {
            continue;
        }
        let before = first.get(name);
        let wall = match before {
            Some(b) if after.timestamp > b.timestamp && b.timestamp > 0 => after.timestamp - b.timestamp,
            _ => t1 - t0,
        };
        let u = task_usage(before, after, wall, mhz);
        total.memory_stats.rss += u.memory_stats.rss;
        total.memory_stats.usage += u.memory_stats.usage;
        total.memory_stats.max_usage += u.memory_stats.max_usage;
        total.cpu_stats.user_mode += u.cpu_stats.user_mode;
        total.cpu_stats.system_mode += u.cpu_stats.system_mode;
        total.cpu_stats.percent += u.cpu_stats.percent;
        total.cpu_stats.total_ticks += u.cpu_stats.total_ticks;
        for m in u.memory_stats.measured.iter().flatten() {
            if !mem_measured.contains(m) {
                mem_measured.push(m.clone());
            }
        }
        for m in u.cpu_stats.measured.iter().flatten() {
            if !cpu_measured.contains(m) {
                cpu_measured.push(m.clone());
            }
        }
        let pids = (!after.pids.is_empty()).then(|| {
            serde_json::Value::Object(
                after
                    .pids
                    .iter()
                    .map(|p| (p.to_string(), serde_json::json!({})))
                    .collect(),
            )
        });
        tasks.insert(
            name.clone(),
            TaskUsage {
                resource_usage: u,
                timestamp: if after.timestamp > 0 { after.timestamp } else { t1 },
                pids,
            },
        );
    }
    total.memory_stats.measured = Some(mem_measured);
    total.cpu_stats.measured = Some(cpu_measured);
    respond::json(
        req,
        &AllocUsage {
            resource_usage: total,
            tasks,
            timestamp: t1,
        },
    )
}

/// `GET /v1/client/stats[?node_id=]`.
async fn host_stats(c: &drover_client::Client, req: &Req) -> Result<Response, ApiError> {
    if let Some(n) = req.get("node_id").filter(|n| !n.is_empty())
        && n != c.node_id()
    {
        return Err(ApiError::NotFound(format!(
            "Unknown node {n:?}: this agent's client is node {:?} and Drover does not forward \
             client requests yet; ask the node's own agent (its HTTPAddr)",
            c.node_id()
        )));
    }
    respond::json(req, &c.host_stats().await)
}

// ----- restart and signal ----------------------------------------------------------------------

/// `AllocRestartRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RestartRequest {
    task_name: String,
    all_tasks: bool,
}

/// `AllocSignalRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct SignalRequest {
    task: String,
    signal: String,
}

/// `GenericResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Generic {
    index: u64,
}

/// `PUT|POST /v1/client/allocation/<id>/restart`: one task (`TaskName`) or every running task
/// (empty body, or `AllTasks`).
fn restart(c: &drover_client::Client, req: &Req, id: &str) -> Result<Response, ApiError> {
    let body: RestartRequest = decode_optional_body(req)?;
    if body.all_tasks && !body.task_name.is_empty() {
        return Err(ApiError::BadRequest(
            "Task name cannot be set when restarting all tasks (AllTasks)".into(),
        ));
    }
    let task = Some(body.task_name.as_str()).filter(|t| !t.is_empty());
    c.restart_alloc(id, task).map_err(|e| client_error(id, e))?;
    respond::json(req, &Generic { index: 0 })
}

/// `PUT|POST /v1/client/allocation/<id>/signal`: `Signal` (default `SIGKILL`) to one task or
/// every running task.
async fn signal(c: &drover_client::Client, req: &Req, id: &str) -> Result<Response, ApiError> {
    let body: SignalRequest = decode_optional_body(req)?;
    let sig = if body.signal.is_empty() {
        "SIGKILL".to_string()
    } else {
        body.signal.clone()
    };
    let parsed = drover_drivers::parse_signal(&sig)
        .map_err(|_| ApiError::BadRequest(format!("Invalid signal {:?} (Signal)", body.signal)))?;
    if c.runner(id).is_none() {
        return Err(unknown_alloc(id));
    }
    let task = Some(body.task.as_str()).filter(|t| !t.is_empty());
    c.signal_alloc(id, task, parsed.as_str())
        .await
        .map_err(|e| client_error(id, e))?;
    respond::json(req, &Generic { index: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_span_rotated_files() {
        let sizes = [(0, 10), (1, 10), (2, 5)];
        assert_eq!(start_position(&sizes, false, 0), Some((0, 0)));
        assert_eq!(start_position(&sizes, false, 12), Some((1, 2)));
        assert_eq!(start_position(&sizes, false, 100), Some((2, 5)));
        assert_eq!(start_position(&sizes, true, 0), Some((2, 5)));
        assert_eq!(start_position(&sizes, true, 5), Some((2, 0)));
        assert_eq!(start_position(&sizes, true, 7), Some((1, 8)));
        assert_eq!(start_position(&sizes, true, 1000), Some((0, 0)));
        assert_eq!(start_position(&[], true, 3), None);
    }

    #[test]
    fn frames_omit_empty_fields() {
        let spec = StreamSpec {
            root: PathBuf::from("/a"),
            source: Source::File(PathBuf::from("/a/x")),
            origin_end: false,
            offset: 0,
            follow: false,
            framed: true,
        };
        let f = encode(&spec, "alloc/logs/web.stdout.0", 3, b"hi\n", "");
        assert_eq!(
            &f[..],
            br#"{"Offset":3,"Data":"aGkK","File":"alloc/logs/web.stdout.0"}"#
        );
        let t = encode(&spec, "x", 0, &[], "file truncated");
        assert_eq!(&t[..], br#"{"File":"x","FileEvent":"file truncated"}"#);
        let plain = StreamSpec {
            framed: false,
            ..spec
        };
        assert_eq!(&encode(&plain, "x", 3, b"hi\n", "")[..], b"hi\n");
    }

    #[test]
    fn go_file_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, "x").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(go_file_mode(&std::fs::metadata(&f).expect("stat")), "-rw-r--r--");
        let d = dir.path().join("d");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert_eq!(go_file_mode(&std::fs::metadata(&d).expect("stat")), "dtrwxrwxrwx");
        std::os::unix::fs::symlink(&f, dir.path().join("l")).expect("symlink");
        let l = std::fs::symlink_metadata(dir.path().join("l")).expect("lstat");
        assert!(go_file_mode(&l).starts_with('L'));
    }

    #[test]
    fn paths_stay_inside_the_allocation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("alloc1");
        std::fs::create_dir_all(root.join("web/local")).expect("mkdir");
        std::fs::write(root.join("web/local/a.txt"), "a").expect("write");
        std::os::unix::fs::symlink("/etc", root.join("web/local/out")).expect("symlink");
        std::os::unix::fs::symlink("a.txt", root.join("web/local/in")).expect("symlink");
        assert!(resolve(&root, "/web/local/a.txt").is_ok());
        assert!(resolve(&root, "web/local/in").is_ok());
        assert!(resolve(&root, "/").is_ok());
        for bad in [
            "../x",
            "/web/../../etc/passwd",
            "web/local/out",
            "web/local/out/passwd",
        ] {
            let e = resolve(&root, bad).expect_err(bad);
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}: {e}");
            assert!(e.to_string().contains("escapes the allocation directory"), "{e}");
        }
        assert_eq!(
            resolve(&root, "nope").expect_err("missing").status(),
            axum::http::StatusCode::NOT_FOUND
        );
    }
}
