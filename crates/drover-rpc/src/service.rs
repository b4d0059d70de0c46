//! The hand-written equivalent of tonic's generated code, written once and generically: a
//! service is a table of methods, a client is a channel plus a method path.
//!
//! ```text
//!  server                                                client
//!  RpcService<N> (NamedService, tower Service)           RpcClient (one HTTP/2 connection)
//!   "/drover.Node/Register" ─▶ Method ─▶ closure            .unary("/drover.Node/Register", req)
//!        tonic::server::Grpc<MsgpackCodec<Resp, Req>>         tonic::client::Grpc<Channel>
//!        .unary(UnaryFn(closure), http request)               + MsgpackCodec<Req, Resp>
//!  serve_routes(listener, Routes, shutdown)               RpcClient::connect / connect_lazy
//! ```
//!
//! # Adding a method
//! Server: one `.unary("Name", move |req: Req| async move { ... })` on the service builder.
//! Client: one `self.rpc.unary::<Req, Resp>("/pkg.Service/Name", req, timeout)` call. Request and
//! response are any serde types; nothing is generated, no `.proto`, no `build.rs`.
//!
//! # Adding a service
//! A marker type implementing [`tonic::server::NamedService`] (its `NAME` is the gRPC service
//! name, e.g. `drover.Raft`), an `RpcService::<Marker>::new()` with its methods, and one more
//! `Routes::add_service` before [`serve_routes`]. Services share the listener and connections.
//!
//! # Transport settings (both ends)
//! - messages up to [`MAX_MESSAGE_SIZE`] (64 MiB) in both directions (tonic's default decode
//!   limit is 4 MiB, too small for a large `GetAllocs` answer);
//! - HTTP/2 keep-alive pings every 30 s (20 s timeout), also while idle, so a dead peer is noticed
//!   without waiting for the next call; TCP_NODELAY;
//! - up to [`MAX_CONCURRENT_STREAMS`] concurrent calls per connection. Each blocking query holds
//!   one stream for up to its `max_wait`, so this must exceed the blocking queries multiplexed
//!   on one connection (hyper's default, 200, would starve heartbeats behind long polls);
//! - fixed receive windows ([`CONNECTION_WINDOW`], [`STREAM_WINDOW`]) instead of the 64 KiB
//!   defaults. Not hyper's adaptive (BDP) window: with it on the client, 600 blocking queries
//!   answered at once on one connection all failed with "h2 protocol error: error reading a
//!   body from connection" (h2 0.4.20; `tests::blocking_queries_do_not_starve_...`).
//!
//! # Limits
//! Only unary methods so far (server streaming is a few more lines on the same pattern). No TLS
//! yet; no per-method metrics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

use crate::codec::MsgpackCodec;
use crate::error::RpcError;

/// Largest message accepted or sent, either direction.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Concurrent calls (HTTP/2 streams) one connection may carry.
pub const MAX_CONCURRENT_STREAMS: u32 = 16 * 1024;
/// HTTP/2 receive window of a connection (fixed; see the module docs on adaptive windows).
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// HTTP/2 receive window of one call.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// HTTP/2 keep-alive ping interval.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a keep-alive ping may stay unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A boxed, sendable future (handler traits are object safe with it).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Handler = Arc<dyn Fn(http::Request<Body>) -> BoxFuture<'static, http::Response<Body>> + Send + Sync>;

/// A gRPC service assembled from closures: the table the generated code would be. `N` names it.
pub struct RpcService<N> {
    methods: Arc<HashMap<String, Handler>>,
    _name: PhantomData<fn() -> N>,
}

impl<N> Clone for RpcService<N> {
    fn clone(&self) -> Self {
        RpcService {
            methods: self.methods.clone(),
            _name: PhantomData,
        }
    }
}

impl<N: NamedService> std::fmt::Debug for RpcService<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<&String> = self.methods.keys().collect();
        methods.sort();
        f.debug_struct("RpcService")
            .field("name", &N::NAME)
            .field("methods", &methods)
            .finish()
    }
}

impl<N: NamedService> Default for RpcService<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: NamedService> RpcService<N> {
    /// A service without methods.
    pub fn new() -> Self {
        RpcService {
            methods: Arc::new(HashMap::new()),
            _name: PhantomData,
        }
    }

    /// Adds the unary method `name` (`/<N::NAME>/<name>`), answered by `f`.
    pub fn unary<Req, Resp, F, Fut>(mut self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Handler = Arc::new(move |req: http::Request<Body>| {
            let method = UnaryFn(f.clone(), PhantomData);
            Box::pin(async move {
                let mut grpc = Grpc::new(MsgpackCodec::<Resp, Req>::default())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE);
                grpc.unary(method, req).await
            })
        });
        // Copies the table only if a clone of this service already exists.
        Arc::make_mut(&mut self.methods).insert(format!("/{}/{}", N::NAME, name), handler);
        self
    }
}

/// Adapts a closure to tonic's [`UnaryService`].
struct UnaryFn<F, Req>(Arc<F>, PhantomData<fn(Req)>);

impl<F, Req, Resp, Fut> UnaryService<Req> for UnaryFn<F, Req>
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<'static, Result<tonic::Response<Resp>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let fut = (self.0)(request.into_inner());
        Box::pin(async move { fut.await.map(tonic::Response::new).map_err(tonic::Status::from) })
    }
}

impl<N: NamedService> NamedService for RpcService<N> {
    const NAME: &'static str = N::NAME;
}

impl<N> tonic::codegen::Service<http::Request<Body>> for RpcService<N> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.methods.get(req.uri().path()) {
            Some(handler) => {
                let fut = handler(req);
                Box::pin(async move { Ok(fut.await) })
            }
            None => {
                let path = req.uri().path().to_string();
                Box::pin(async move {
                    let status = tonic::Status::unimplemented(format!("unknown method {path}"));
                    Ok(status.into_http())
                })
            }
        }
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then waits for open calls to end.
pub async fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RpcError> {
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_INTERVAL));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| RpcError::Internal(format!("rpc server: {e}")))
}

/// A connection to a server: one HTTP/2 connection, re-established after failures, carrying
/// any number of concurrent calls. Cheap to clone (clones share the connection).
#[derive(Clone, Debug)]
pub struct RpcClient {
    grpc: tonic::client::Grpc<Channel>,
    addr: String,
}

impl RpcClient {
    fn endpoint(addr: &str) -> Result<Endpoint, RpcError> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        Ok(Endpoint::from_shared(uri)
            .map_err(|e| RpcError::InvalidArgument(format!("invalid server address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .initial_stream_window_size(STREAM_WINDOW)
            .buffer_size(Some(MAX_CONCURRENT_STREAMS as usize)))
    }

    fn from_channel(channel: Channel, addr: &str) -> Self {
        let grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        RpcClient {
            grpc,
            addr: addr.to_string(),
        }
    }

    /// Connects to `addr` (`host:port` or `http://host:port`) now; fails when nothing listens.
    pub async fn connect(addr: &str) -> Result<Self, RpcError> {
        let channel = Self::endpoint(addr)?
            .connect()
            .await
            .map_err(|e| RpcError::unavailable(format!("connecting to {addr}: {}", error_chain(&e))))?;
        Ok(Self::from_channel(channel, addr))
    }

    /// A client that connects on its first call (and reconnects after failures); calls made
    /// while nothing listens fail with [`RpcError::Unavailable`].
    pub fn connect_lazy(addr: &str) -> Result<Self, RpcError> {
        let channel = Self::endpoint(addr)?.connect_lazy();
        Ok(Self::from_channel(channel, addr))
    }

    /// The address this client dials.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls the unary method at `path` (`/drover.Node/Register`). The call is abandoned (and
    /// the server told so) after `timeout`.
    pub async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        req: Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError>
    where
        Req: Serialize + Send + Sync + 'static,
        Resp: DeserializeOwned + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        let call = async move {
            grpc.ready()
                .await
                .map_err(|e| RpcError::unavailable(format!("connection to server: {}", error_chain(&e))))?;
            let mut request = tonic::Request::new(req);
            request.set_timeout(timeout);
            let codec = MsgpackCodec::<Req, Resp>::default();
            let path = http::uri::PathAndQuery::from_static(path);
            grpc.unary(request, path, codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(RpcError::from)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::unavailable(format!(
                "{path}: no answer within {timeout:?}"
            ))),
        }
    }
}

/// `e: cause: cause ...` (tonic's transport errors hide the useful part in their sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
