//! Serving a node: its HTTP listener (and the metrics listener when configured), the background
//! tasks of its roles, and graceful shutdown.

use crate::node::Node;
use dartwing_http::listener::{self, ConnectionLimits};
use dartwing_realtime::Realtime;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A node serving on a bound address, with its background roles, until shut down.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound address of the metrics listener (`observability.metrics_listen`), if any.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    roles_shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    metrics_task: Option<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    realtime: Realtime,
}

impl RunningServer {
    /// Stops accepting connections and work, lets in-flight requests and jobs finish within the
    /// grace period, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.realtime.close().await;
        self.roles_shutdown.cancel();
        for task in self.background {
            let _ = task.await;
        }
        if let Some(task) = self.metrics_task {
            task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
        }
        self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Serves `/metrics` alone on `address` (`observability.metrics_listen`) until `stop` turns true.
async fn start_metrics_listener(
    node: &Node,
    address: SocketAddr,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} (`observability.metrics_listen`): {e}"))?;
    let addr = listener.local_addr()?;
    let router = node.platform().metrics_router();
    let task = tokio::spawn(listener::serve(listener, router, limits, async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }));
    Ok((addr, task))
}

/// Binds the configured listener, serves the node and starts the background tasks of its roles.
/// A node is served once.
pub async fn start(node: &Node) -> anyhow::Result<RunningServer> {
    let config = node.config();
    let roles = node
        .take_roles()
        .ok_or_else(|| anyhow::anyhow!("this node is already being served"))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (`listen`): {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, mut signal) = watch::channel(false);
    let router = roles.router;
    let grace = Duration::from_secs(config.http.shutdown_grace_secs);
    let limits = ConnectionLimits::from_config(&config.http);
    let (metrics_addr, metrics_task) = match config.observability.metrics_listen {
        Some(address) => {
            let (addr, task) = start_metrics_listener(node, address, limits, signal.clone()).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let task = tokio::spawn(async move {
        let mut grace_timer = signal.clone();
        let server = listener::serve(listener, router, limits, async move {
            let _ = signal.wait_for(|stop| *stop).await;
        });
        tokio::select! {
            result = server => result,
            _ = async {
                let _ = grace_timer.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace period over; closing remaining connections");
                Ok(())
            }
        }
    });
    let roles_shutdown = CancellationToken::new();
    let background = roles
        .tasks
        .into_iter()
        .map(|task| {
            tracing::debug!(task = task.name, "starting");
            task.start(roles_shutdown.clone())
        })
        .collect();
    Ok(RunningServer {
        addr,
        metrics_addr,
        shutdown,
        roles_shutdown,
        task,
        metrics_task,
        background,
        realtime: node.realtime().clone(),
    })
}
