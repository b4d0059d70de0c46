//! [`FakeAgent`]: a tiny HTTP/1.1 server on 127.0.0.1 that answers with canned responses, for
//! tests of code that talks to an agent (this crate's client, the CLI's commands).
//!
//! ```text
//!  test ──Client──▶ FakeAgent (tokio TcpListener, one task per connection)
//!                      │ parse request line, headers, Content-Length body
//!                      ├─▶ handler(&Recorded) -> Canned      (your routing)
//!                      └─▶ records every request             (assert on them later)
//! ```
//!
//! It is deliberately small: one request per connection (`Connection: close`), no chunked
//! request bodies, no TLS. It is a test double for *responses*; blocking queries, routing and
//! state belong to the real server, which end-to-end tests use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request the fake agent received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path exactly as sent (still percent-encoded), e.g. `/v1/job/a%2Fb`.
    pub path: String,
    /// The raw query string without `?` (empty when none).
    pub query: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Recorded {
    /// A header's value (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's raw value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }

    /// `"GET /v1/jobs"`: handy to match on in a handler.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A response to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canned {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Canned {
    /// 200 with a JSON body and `X-Nomad-Index: index`.
    pub fn json(index: u64, body: serde_json::Value) -> Canned {
        Canned {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Nomad-Index".into(), index.to_string()),
                ("X-Nomad-KnownLeader".into(), "true".into()),
                ("X-Nomad-LastContact".into(), "0".into()),
            ],
            body: body.to_string(),
        }
    }

    /// A plain-text error, as Nomad sends them (`404`, `job not found`).
    pub fn text(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.to_string(),
        }
    }

    /// 404 with `resource not found` (what a handler returns for unknown routes).
    pub fn not_found() -> Canned {
        Canned::text(404, "resource not found")
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Canned + Send + Sync>;

/// A fake agent listening on an ephemeral port of 127.0.0.1. Stops when dropped.
#[derive(Debug)]
pub struct FakeAgent {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl FakeAgent {
    /// Starts answering every request with `handler`.
    pub async fn start(
        handler: impl Fn(&Recorded) -> Canned + Send + Sync + 'static,
    ) -> std::io::Result<FakeAgent> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    // A broken connection only fails the request it carried; the test sees that.
                    let _ = serve_one(stream, handler, recorded).await;
                });
            }
        });
        Ok(FakeAgent { addr, requests, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        match self.requests.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    handler: Handler,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let req = Recorded {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let resp = handler(&req);
    match recorded.lock() {
        Ok(mut g) => g.push(req),
        Err(poisoned) => poisoned.into_inner().push(req),
    }
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&resp.body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
