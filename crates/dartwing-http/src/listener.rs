//! The node's HTTP listener: the connection loop written out on hyper so that slow or idle
//! clients cannot hold connections forever.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are open at once (WebSocket
//!   upgrades included: a connection keeps its slot until it closes). A connection beyond the cap
//!   is answered `503` with `Connection: close` at once and closed, so a load balancer tries
//!   another node instead of queueing behind a full one.
//! - A client must deliver a request's head (request line and headers) within
//!   [`ConnectionLimits::header_read_timeout`] of starting to wait for it; otherwise the
//!   connection is closed. The same limit closes keep-alive connections left idle that long.
//! - A request body that pauses longer than [`ConnectionLimits::body_timeout`] fails: handlers
//!   answer 408 `RequestTimeoutError`.
//! - HTTP/1.1 with upgrades (WebSocket for Socket.IO); TLS and HTTP/2 end at the proxy in front.
//! - Graceful shutdown: when `signal` completes, no connection is accepted any more, idle
//!   connections close, and the call returns once in-flight requests have finished.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use dartwing_core::config::HttpConfig;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::{Service, ServiceExt};
use tower_http::timeout::TimeoutBody;

/// How long and how many connections a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a request's head before the connection is closed.
    pub header_read_timeout: Duration,
    /// Longest pause inside a request body before the request fails with 408.
    pub body_timeout: Duration,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits configured in `[http]`.
    pub fn from_config(http: &HttpConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            body_timeout: Duration::from_secs(http.body_timeout_secs),
            max_connections: http.max_connections,
        }
    }
}

/// What a client beyond the connection cap reads before the connection closes.
fn busy_response() -> Vec<u8> {
    let body =
        r#"{"exc_type":"ServiceUnavailableError","message":"This node is at its connection limit; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` within `limits` until `signal` completes, then finishes the
/// requests in flight (see the module documentation). Handlers can read the peer address with
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let busy: Arc<[u8]> = busy_response().into();
    // Connections watch `stop` to begin their graceful shutdown; each holds a `done` receiver,
    // so `done_tx.closed()` resolves when the last one has finished.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut signal = pin!(signal);
    let mut last_refusal_logged: Option<Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Best effort: a fresh socket's send buffer takes the short answer whole.
            let _ = stream.try_write(&busy);
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                last_refusal_logged = Some(Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached; refusing new connections with 503 (`http.max_connections`)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(service) = make_service.call(remote).await;
        let body_timeout = limits.body_timeout;
        let service = service.map_request(move |request: Request<Incoming>| {
            trim_method_slash(request.map(|body| Body::new(TimeoutBody::new(body_timeout, body))))
        });
        let connection = Counted { stream, _slot: slot };
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let served = builder
                .serve_connection(TokioIo::new(connection), TowerToHyperService::new(service))
                .with_upgrades();
            let mut served = pin!(served);
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let result = tokio::select! {
                result = served.as_mut() => result,
                () = stopping => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// After a failed `accept`: per-connection errors are skipped at once; others (such as running
/// out of file descriptors) are logged and retried after a pause instead of spinning.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error_type = "Accept", error = %error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A connection that keeps its slot of the cap until it closes — also after an upgrade to
/// WebSocket, since the upgraded stream owns it.
struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Where procedures are served.
const METHOD_PREFIX: &str = "/api/method/";

/// `frappeclient` calls `/api/method/<name>/`: the trailing slash names the same procedure.
/// Rewritten before routing (a route layer runs after it).
fn trim_method_slash<B>(mut request: Request<B>) -> Request<B> {
    let path = request.uri().path();
    if path.len() <= METHOD_PREFIX.len() || !path.starts_with(METHOD_PREFIX) || !path.ends_with('/') {
        return request;
    }
    let trimmed = path.trim_end_matches('/');
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_string(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = axum::http::uri::PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Whether `error` (a body or extraction error) is a request body that stalled past the body
/// timeout.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = error.source();
    }
    false
}
