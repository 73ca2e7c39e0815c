//! The node's Redis pub/sub connection: one self-healing connection (reconnect with back-off,
//! subscriptions restored afterwards) shared by the Socket.IO Redis adapter — as its
//! [`Driver`] — and by the `dartwing:realtime` event channel.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A Redis failure, without credentials.
#[derive(Debug)]
pub struct BusError(redis::RedisError);

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis: {:?} ({})", self.0.kind(), self.0.category())
    }
}

impl std::error::Error for BusError {}

impl From<redis::RedisError> for BusError {
    fn from(error: redis::RedisError) -> Self {
        Self(error)
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// The shared pub/sub connection of a node.
#[derive(Clone)]
pub struct RedisBus {
    connection: ConnectionManager,
    handlers: Handlers,
    up: Arc<AtomicBool>,
}

fn route_push(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        redis::from_redis_value::<String>(channel),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) else {
        return;
    };
    let Ok(handlers) = handlers.read() else { return };
    if let Some(sender) = handlers.get(&channel)
        && sender.try_send((channel.clone(), payload)).is_err()
    {
        tracing::warn!(channel = %channel, "realtime subscriber is behind; a Redis message was dropped");
    }
}

impl RedisBus {
    /// Opens the connection lazily (the node starts even while Redis is down) in RESP3, which
    /// lets one connection carry both subscriptions and commands.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let info = url.into_connection_info()?;
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let handlers: Handlers = Arc::default();
        let router = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_automatic_resubscription()
            .set_push_sender(move |push: PushInfo| {
                route_push(push, &router);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(5))
            .set_number_of_retries(3);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            handlers,
            up: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the last check reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Publishes `payload` on `channel`.
    pub async fn publish_bytes(&self, channel: &str, payload: Vec<u8>) -> Result<(), BusError> {
        self.connection
            .clone()
            .publish::<_, _, redis::Value>(channel, payload)
            .await?;
        Ok(())
    }

    async fn subscribe_all(&self) -> Result<(), BusError> {
        let channels: Vec<String> = self
            .handlers
            .read()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        if !channels.is_empty() {
            self.connection.clone().subscribe(channels).await?;
        }
        Ok(())
    }

    /// Watches the connection: a PING every `every` drives reconnection while Redis is away and
    /// restores every subscription when it is back. Logs each transition once.
    pub fn spawn_watchdog(&self, every: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut first = true;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let ping: Result<String, _> = redis::cmd("PING").query_async(&mut bus.connection.clone()).await;
                let was_up = bus.up.load(Ordering::Relaxed);
                match ping {
                    Ok(_) if !was_up => match bus.subscribe_all().await {
                        Ok(()) => {
                            bus.up.store(true, Ordering::Relaxed);
                            if first {
                                tracing::info!("realtime connected to Redis");
                            } else {
                                tracing::warn!("realtime reconnected to Redis; cross-node delivery resumed");
                            }
                            first = false;
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "Redis is back but resubscribing failed; retrying")
                        }
                    },
                    Ok(_) => {}
                    Err(error) if was_up || first => {
                        bus.up.store(false, Ordering::Relaxed);
                        first = false;
                        tracing::error!(
                            error = %BusError(error),
                            "realtime lost Redis; local delivery continues, cross-node delivery waits for reconnection"
                        );
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

impl Driver for RedisBus {
    type Error = BusError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.publish_bytes(&chan, val).await
    }

    /// Registers the channel's stream first, so a subscription that fails while Redis is down is
    /// made by the watchdog once Redis is back.
    async fn subscribe(&self, chan: String, size: usize) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (sender, receiver) = mpsc::channel(size);
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.insert(chan.clone(), sender);
        }
        if let Err(error) = self.connection.clone().subscribe(chan.as_str()).await {
            tracing::warn!(channel = %chan, error = %BusError(error), "subscription deferred until Redis is reachable");
        }
        Ok(MessageStream::new(receiver))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.remove(&chan);
        }
        self.connection.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(count)
    }
}
