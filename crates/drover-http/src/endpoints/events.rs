//! `GET /v1/event/stream`: the server's events as newline-delimited JSON
//! (`reference/http-api.md` §3.11).
//!
//! ```text
//!  EventBuffer::subscribe(index) ─▶ backlog (batches ≥ index) ─┐
//!                                   live broadcast receiver ───┤─▶ filter(topic:key, namespace)
//!  every 30 s ─────────────────────────────────── `{}` ────────┤   └─ `{"Index":N,"Events":[…]}\n`
//!                                                              ▼
//!                                            mpsc ─▶ chunked response body
//! ```
//!
//! Lines: first a heartbeat `{}`, then one line per batch that still holds events after
//! filtering, and `{}` every [`HEARTBEAT`]. Filters: `topic=Topic:Key` (repeatable; `Topic` alone
//! means `Topic:*`; none means everything), where a key matches the event's `Key` or any of
//! its `FilterKeys`; `namespace` (default `default`, `*` for all; events without a namespace,
//! such as node events, always pass). `index=N` replays buffered batches from `N` on.
//!
//! The stream ends when the client goes away, when the server shuts down, or when this
//! subscriber falls so far behind that the broadcast channel dropped batches (the client
//! reconnects with `index` set to the last index it saw).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use drover_server::events::{Event, EventBatch};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::only_get;
use crate::AppState;
use crate::error::ApiError;
use crate::request::Req;

/// How often an idle stream sends `{}`.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Which events a subscriber wants.
#[derive(Debug, Clone)]
struct Subscription {
    /// (topic, key); `*` matches anything.
    topics: Vec<(String, String)>,
    namespace: String,
}

impl Subscription {
    fn wants(&self, e: &Event) -> bool {
        let ns_ok = e.namespace.is_empty() || self.namespace == "*" || e.namespace == self.namespace;
        ns_ok
            && self.topics.iter().any(|(t, k)| {
                (t == "*" || t == e.topic)
                    && (k == "*" || *k == e.key || e.filter_keys.iter().any(|f| f == k))
            })
    }

    /// The NDJSON line for a batch, or `None` when nothing in it is wanted.
    fn render(&self, b: &EventBatch) -> Option<Bytes> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Line<'a> {
            index: u64,
            events: Vec<&'a Event>,
        }
        let events: Vec<&Event> = b.events.iter().filter(|e| self.wants(e)).collect();
        if events.is_empty() {
            return None;
        }
        let mut out = serde_json::to_vec(&Line {
            index: b.index,
            events,
        })
        .ok()?;
        out.push(b'\n');
        Some(Bytes::from(out))
    }
}

fn parse_topics(req: &Req) -> Vec<(String, String)> {
    let mut topics: Vec<(String, String)> = req
        .get_all("topic")
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once(':') {
            Some((topic, key)) if !key.is_empty() => (topic.to_string(), key.to_string()),
            Some((topic, _)) => (topic.to_string(), "*".to_string()),
            None => (t.to_string(), "*".to_string()),
        })
        .collect();
    if topics.is_empty() {
        topics.push(("*".into(), "*".into()));
    }
    topics
}

/// `GET /v1/event/stream`.
pub(crate) async fn stream(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let index = match req.get("index") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("Unable to parse index: {v:?}")))?,
    };
    let sub = Subscription {
        topics: parse_topics(&req),
        namespace: req.namespace(),
    };
    let (backlog, live) = st.server.events().subscribe(index);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        tokio::select! {
            () = pump(sub, backlog, live, &tx) => {}
            () = req.shutdown() => {}
        }
    });
    let mut resp = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Writes the stream until the client leaves or the subscription breaks.
async fn pump(
    sub: Subscription,
    backlog: Vec<std::sync::Arc<EventBatch>>,
    mut live: broadcast::Receiver<std::sync::Arc<EventBatch>>,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let heartbeat = || Ok(Bytes::from_static(b"{}\n"));
    if tx.send(heartbeat()).await.is_err() {
        return;
    }
    let mut last = 0;
    for b in &backlog {
        last = last.max(b.index);
        if let Some(line) = sub.render(b)
            && tx.send(Ok(line)).await.is_err()
        {
            return;
        }
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            got = live.recv() => match got {
                Ok(b) => {
                    // The backlog may already hold what the live channel repeats. Only the
                    // backlog's indexes are skipped: live batches can arrive out of index order
                    // (two writers finish their applies in either order), so the newest index
                    // seen live says nothing about the ones still to come.
                    if b.index <= last {
                        continue;
                    }
                    if let Some(line) = sub.render(&b)
                        && tx.send(Ok(line)).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event stream subscriber fell behind; closing the stream");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick() => {
                if tx.send(heartbeat()).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}
