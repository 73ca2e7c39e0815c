//! The cluster carrier of access changes: what a node publishes on its [`AccessChanges`] hub
//! reaches every other node of the cluster, where the hub's cluster-wide listeners hear it as if it
//! had been published there. The broker is Redis pub/sub when `redis_url` is set, else PostgreSQL
//! `NOTIFY` on a dedicated listening connection; a node on SQLite without Redis is alone and has
//! none.
//!
//! Every node tells the others it is there ([`PRESENCE_INTERVAL`]) and answers each change it
//! applied; a publisher that announces a change hears that it was applied once every node it knows
//! answered (or [`SEND_WAIT`] passed), so an answer given after it finds the change in force on
//! every node's next request. A node not heard from for [`PEER_TIMEOUT`], or that said it leaves,
//! is no longer waited for. When the link to the broker breaks, messages may be lost: after
//! reconnecting, the node drops everything it derived from earlier access decisions
//! ([`AccessChange::Everything`]). Changes published while the link is down wait (bounded) and
//! leave once it is back.

use dartwing_core::access::{AccessChange, AccessChanges, AccessRelay, Relayed};
use dartwing_core::config::Config;
use dartwing_db::notify::{MAX_PAYLOAD_BYTES, Notifications};
use dartwing_db::{Backend, Db};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a publisher waits for the other nodes to apply its change before answering anyway.
const SEND_WAIT: Duration = Duration::from_secs(2);
/// How often a node tells the others it is there.
const PRESENCE_INTERVAL: Duration = Duration::from_secs(2);
/// A node not heard from for this long is no longer waited for.
const PEER_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a node that just linked listens for the others' answers to its presence before it
/// sends its first changes (so that it waits for them to apply those too).
const DISCOVERY_WAIT: Duration = Duration::from_millis(300);
/// First wait before reconnecting to the broker; doubled up to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Changes kept while the broker is unreachable; older ones are dropped beyond (the other nodes
/// drop their caches when they notice the gap, and the time to live bounds the rest).
const MAX_WAITING: usize = 10_000;

/// A message on the broker's channel; `origin` is always the node that sends it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// A change published on `origin`, its `sequence`-th there.
    Change {
        origin: String,
        sequence: u64,
        change: AccessChange,
    },
    /// `origin` applied change `sequence` of `publisher`.
    Applied {
        origin: String,
        publisher: String,
        sequence: u64,
    },
    /// `origin` is linked; `answer` when it answers a node it had not heard of yet.
    Present { origin: String, answer: bool },
    /// `origin` stops.
    Leaving { origin: String },
}

impl Message {
    fn origin(&self) -> &str {
        match self {
            Message::Change { origin, .. }
            | Message::Applied { origin, .. }
            | Message::Present { origin, .. }
            | Message::Leaving { origin } => origin,
        }
    }
}

/// A change waiting to leave, and who waits for the other nodes to apply it.
struct Outgoing {
    sequence: u64,
    payload: String,
    applied: oneshot::Sender<()>,
}

/// The other nodes a node knows, and which of them have yet to apply each change it sent.
#[derive(Default)]
struct Peers {
    /// When each other node was last heard from.
    seen: HashMap<String, Instant>,
    /// Sent changes, by sequence: the nodes that have not applied them yet, and their publisher.
    unapplied: HashMap<u64, (HashSet<String>, oneshot::Sender<()>)>,
}

impl Peers {
    /// Whether `node` was not known before.
    fn heard(&mut self, node: &str, now: Instant) -> bool {
        self.seen.insert(node.to_string(), now).is_none()
    }

    /// Change `sequence` left: its publisher hears once every node known now applied it.
    fn sent(&mut self, sequence: u64, applied: oneshot::Sender<()>) {
        if self.seen.is_empty() {
            let _ = applied.send(());
            return;
        }
        self.unapplied.retain(|_, (_, publisher)| !publisher.is_closed());
        self.unapplied
            .insert(sequence, (self.seen.keys().cloned().collect(), applied));
    }

    /// `node` applied change `sequence`.
    fn applied(&mut self, node: &str, sequence: u64) {
        if let Some((nodes, _)) = self.unapplied.get_mut(&sequence) {
            nodes.remove(node);
            if nodes.is_empty()
                && let Some((_, publisher)) = self.unapplied.remove(&sequence)
            {
                let _ = publisher.send(());
            }
        }
    }

    /// `node` is gone: nobody waits for it any more.
    fn left(&mut self, node: &str) {
        self.seen.remove(node);
        let mut done = Vec::new();
        for (sequence, (nodes, _)) in &mut self.unapplied {
            if nodes.remove(node) && nodes.is_empty() {
                done.push(*sequence);
            }
        }
        for sequence in done {
            if let Some((_, publisher)) = self.unapplied.remove(&sequence) {
                let _ = publisher.send(());
            }
        }
    }

    /// Forgets the nodes not heard from since `PEER_TIMEOUT` before `now`.
    fn expire(&mut self, now: Instant) {
        let silent: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) >= PEER_TIMEOUT)
            .map(|(node, _)| node.clone())
            .collect();
        for node in silent {
            tracing::warn!(node = %node, "a cluster node fell silent; access changes no longer wait for it");
            self.left(&node);
        }
    }
}

/// Where changes go and come from.
enum Broker {
    Redis(redis::Client),
    Postgres(Db),
}

/// An open link to the broker: a subscription and a way to publish.
enum Link {
    Redis {
        messages: redis::aio::PubSubStream,
        publisher: redis::aio::MultiplexedConnection,
    },
    Postgres {
        notifications: Notifications,
        db: Db,
    },
}

/// The carrier of one node.
pub(crate) struct Carrier {
    broker: Broker,
    channel: String,
    node_id: String,
    access: AccessChanges,
}

/// Sends each change published on the node to the carrier's task.
struct Relay {
    origin: String,
    sequence: AtomicU64,
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl AccessRelay for Relay {
    fn relay(&self, change: &AccessChange) -> Relayed {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let message = Message::Change {
            origin: self.origin.clone(),
            sequence,
            change: change.clone(),
        };
        let (applied, confirmed) = oneshot::channel();
        match serde_json::to_string(&message) {
            Ok(payload) => {
                let _ = self.outgoing.send(Outgoing {
                    sequence,
                    payload,
                    applied,
                });
            }
            Err(error) => tracing::error!(error = %error, "access change not serializable; not sent to the cluster"),
        }
        Box::pin(async move {
            if tokio::time::timeout(SEND_WAIT, confirmed).await.is_err() {
                tracing::warn!("an access change was not applied by every cluster node in time; answering anyway");
            }
        })
    }
}

/// What woke the carrier up.
enum Event {
    Stop,
    Broken,
    Message(String),
    Outgoing(Outgoing),
    Presence,
    Discovered,
}

impl Carrier {
    /// The carrier of `access`'s changes for a node of this configuration; `None` for a node on
    /// SQLite without Redis.
    pub(crate) fn install(
        config: &Config,
        node_id: &str,
        db: &Db,
        access: &AccessChanges,
    ) -> anyhow::Result<Option<Self>> {
        let broker = match (&config.redis_url, db.backend()) {
            (Some(url), _) => Broker::Redis(redis::Client::open(url.expose())?),
            (None, Backend::Postgres) => Broker::Postgres(db.clone()),
            (None, Backend::Sqlite) => return Ok(None),
        };
        Ok(Some(Self {
            broker,
            channel: config.tenancy.access_channel.clone(),
            node_id: node_id.to_string(),
            access: access.clone(),
        }))
    }

    /// Runs the carrier until `shutdown`: from now on the hub's changes go to the other nodes, the
    /// link is kept up, and the other nodes' changes are applied here.
    pub(crate) fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let (sender, outgoing) = mpsc::unbounded_channel();
        self.access.relay_through(std::sync::Arc::new(Relay {
            origin: self.node_id.clone(),
            sequence: AtomicU64::new(0),
            outgoing: sender,
        }));
        tokio::spawn(self.run(outgoing, shutdown))
    }

    async fn run(self, mut outgoing: mpsc::UnboundedReceiver<Outgoing>, shutdown: CancellationToken) {
        let mut waiting: VecDeque<Outgoing> = VecDeque::new();
        let mut peers = Peers::default();
        let mut delay = MIN_RECONNECT_DELAY;
        let mut linked_before = false;
        let mut reported_down = false;
        loop {
            let link = tokio::select! {
                _ = shutdown.cancelled() => return,
                link = self.open() => link,
            };
            let mut link = match link {
                Ok(link) => link,
                Err(error) => {
                    if !reported_down {
                        tracing::error!(error = %error, "cannot reach the cluster broker for access changes; retrying");
                        reported_down = true;
                    }
                    Self::wait_offline(&mut outgoing, &mut waiting, delay, &shutdown).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                    continue;
                }
            };
            delay = MIN_RECONNECT_DELAY;
            reported_down = false;
            // Whatever was cached before the link was up may have missed changes.
            self.access.receive(&AccessChange::Everything);
            if linked_before {
                tracing::warn!("reconnected to the cluster broker; cached access decisions dropped");
            } else {
                tracing::info!(broker = link.name(), "access changes carried across the cluster");
            }
            let discovery = if linked_before { Duration::ZERO } else { DISCOVERY_WAIT };
            linked_before = true;
            if !self
                .pump(&mut link, &mut outgoing, &mut waiting, &mut peers, discovery, &shutdown)
                .await
            {
                return;
            }
            tracing::error!("lost the cluster broker for access changes; reconnecting");
        }
    }

    /// Moves messages both ways until the link breaks (`true`) or the node stops (`false`).
    /// Changes wait `discovery` before the first leaves.
    async fn pump(
        &self,
        link: &mut Link,
        outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
        waiting: &mut VecDeque<Outgoing>,
        peers: &mut Peers,
        discovery: Duration,
        shutdown: &CancellationToken,
    ) -> bool {
        // The publishers of changes sent over an earlier link stopped waiting with it.
        peers.unapplied.clear();
        let mut presence = tokio::time::interval(PRESENCE_INTERVAL);
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let discovered = tokio::time::Instant::now() + discovery;
        let mut sending = discovery.is_zero();
        loop {
            if sending && let Some(next) = waiting.pop_front() {
                match link.send(&self.channel, &next.payload).await {
                    Ok(()) => {
                        peers.sent(next.sequence, next.applied);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot send an access change to the cluster broker");
                        waiting.push_front(next);
                        return true;
                    }
                }
            }
            let event = tokio::select! {
                _ = shutdown.cancelled() => Event::Stop,
                message = link.next() => message.map_or(Event::Broken, Event::Message),
                next = outgoing.recv() => next.map_or(Event::Stop, Event::Outgoing),
                _ = presence.tick() => Event::Presence,
                _ = tokio::time::sleep_until(discovered), if !sending => Event::Discovered,
            };
            let sent = match event {
                Event::Stop => {
                    let leaving = Message::Leaving {
                        origin: self.node_id.clone(),
                    };
                    let _ = self.send(link, &leaving).await;
                    return false;
                }
                Event::Broken => return true,
                Event::Message(payload) => self.apply(link, &payload, peers).await,
                Event::Outgoing(next) => {
                    Self::keep(waiting, next);
                    Ok(())
                }
                Event::Presence => {
                    peers.expire(Instant::now());
                    let present = Message::Present {
                        origin: self.node_id.clone(),
                        answer: false,
                    };
                    self.send(link, &present).await
                }
                Event::Discovered => {
                    sending = true;
                    Ok(())
                }
            };
            if let Err(error) = sent {
                tracing::warn!(error = %error, "cannot send to the cluster broker");
                return true;
            }
        }
    }

    /// Keeps the node's changes while no link is up, for `delay`.
    async fn wait_offline(
        outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
        waiting: &mut VecDeque<Outgoing>,
        delay: Duration,
        shutdown: &CancellationToken,
    ) {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until) => return,
                next = outgoing.recv() => match next {
                    Some(next) => Self::keep(waiting, next),
                    None => return,
                },
            }
        }
    }

    fn keep(waiting: &mut VecDeque<Outgoing>, outgoing: Outgoing) {
        if waiting.len() >= MAX_WAITING {
            waiting.pop_front();
            tracing::warn!("too many access changes wait for the cluster broker; the oldest was dropped");
        }
        waiting.push_back(outgoing);
    }

    /// Handles a message from the channel (this node's own come back too, and are skipped):
    /// applies another node's change and answers that it did.
    async fn apply(&self, link: &mut Link, payload: &str, peers: &mut Peers) -> anyhow::Result<()> {
        let message = match serde_json::from_str::<Message>(payload) {
            Ok(message) => message,
            Err(error) => {
                // A message this node cannot read may have been a change: forget what it may concern.
                tracing::warn!(error = %error, "unreadable access change from the cluster; cached access decisions dropped");
                self.access.receive(&AccessChange::Everything);
                return Ok(());
            }
        };
        if message.origin() == self.node_id {
            return Ok(());
        }
        let new = peers.heard(message.origin(), Instant::now());
        match message {
            Message::Change {
                origin,
                sequence,
                change,
            } => {
                self.access.receive(&change);
                let applied = Message::Applied {
                    origin: self.node_id.clone(),
                    publisher: origin,
                    sequence,
                };
                self.send(link, &applied).await?;
            }
            Message::Applied {
                origin,
                publisher,
                sequence,
            } => {
                if publisher == self.node_id {
                    peers.applied(&origin, sequence);
                }
            }
            Message::Present { answer, .. } => {
                if new && !answer {
                    let present = Message::Present {
                        origin: self.node_id.clone(),
                        answer: true,
                    };
                    self.send(link, &present).await?;
                }
            }
            Message::Leaving { origin } => peers.left(&origin),
        }
        Ok(())
    }

    async fn send(&self, link: &mut Link, message: &Message) -> anyhow::Result<()> {
        link.send(&self.channel, &serde_json::to_string(message)?).await
    }

    async fn open(&self) -> anyhow::Result<Link> {
        match &self.broker {
            Broker::Redis(client) => {
                let mut subscriber = client.get_async_pubsub().await?;
                subscriber.subscribe(&self.channel).await?;
                let publisher = client.get_multiplexed_async_connection().await?;
                Ok(Link::Redis {
                    messages: subscriber.into_on_message(),
                    publisher,
                })
            }
            Broker::Postgres(db) => Ok(Link::Postgres {
                notifications: db.listen(&self.channel).await?,
                db: db.clone(),
            }),
        }
    }
}

impl Link {
    fn name(&self) -> &'static str {
        match self {
            Link::Redis { .. } => "redis",
            Link::Postgres { .. } => "postgres",
        }
    }

    /// The next message's payload; `None` once the link is broken.
    async fn next(&mut self) -> Option<String> {
        match self {
            Link::Redis { messages, .. } => loop {
                let message = messages.next().await?;
                if let Ok(payload) = message.get_payload::<String>() {
                    return Some(payload);
                }
            },
            Link::Postgres { notifications, .. } => notifications.next().await,
        }
    }

    async fn send(&mut self, channel: &str, payload: &str) -> anyhow::Result<()> {
        match self {
            Link::Redis { publisher, .. } => {
                redis::AsyncCommands::publish::<_, _, redis::Value>(publisher, channel, payload).await?;
            }
            Link::Postgres { db, .. } => {
                if payload.len() > MAX_PAYLOAD_BYTES {
                    // Too long for NOTIFY (a large organization's member list): the other nodes
                    // drop everything instead.
                    let mut message: Message = serde_json::from_str(payload)?;
                    if let Message::Change { change, .. } = &mut message {
                        *change = AccessChange::Everything;
                    }
                    let everything = serde_json::to_string(&message)?;
                    db.notify(channel, &everything).await?;
                } else {
                    db.notify(channel, payload).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use oneshot::error::TryRecvError;

    #[test]
    fn a_change_is_applied_once_every_known_node_answered() {
        let mut peers = Peers::default();
        let now = Instant::now();
        assert!(peers.heard("b", now));
        assert!(peers.heard("c", now));
        assert!(!peers.heard("b", now));
        let (applied, mut confirmed) = oneshot::channel();
        peers.sent(7, applied);
        peers.applied("b", 7);
        peers.applied("b", 8);
        assert_eq!(confirmed.try_recv(), Err(TryRecvError::Empty));
        peers.applied("c", 7);
        assert_eq!(confirmed.try_recv(), Ok(()));
    }

    #[test]
    fn alone_a_change_is_applied_as_soon_as_it_left() {
        let mut peers = Peers::default();
        let (applied, mut confirmed) = oneshot::channel();
        peers.sent(0, applied);
        assert_eq!(confirmed.try_recv(), Ok(()));
    }

    #[test]
    fn nodes_that_leave_or_fall_silent_are_not_waited_for() {
        let mut peers = Peers::default();
        let start = Instant::now();
        peers.heard("b", start);
        peers.heard("c", start + PEER_TIMEOUT / 2);
        let (applied, mut confirmed) = oneshot::channel();
        peers.sent(1, applied);
        peers.expire(start + PEER_TIMEOUT);
        assert_eq!(confirmed.try_recv(), Err(TryRecvError::Empty));
        assert!(!peers.seen.contains_key("b"));
        peers.left("c");
        assert_eq!(confirmed.try_recv(), Ok(()));
        assert!(peers.seen.is_empty());
    }

    #[test]
    fn messages_read_back_as_written() {
        let message = Message::Change {
            origin: "node-0".into(),
            sequence: 3,
            change: AccessChange::Users(vec!["a@x".into()]),
        };
        let read: Message = serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert!(matches!(read, Message::Change { sequence: 3, .. }));
        let applied = r#"{"kind":"applied","origin":"node-1","publisher":"node-0","sequence":3}"#;
        assert!(matches!(
            serde_json::from_str::<Message>(applied).unwrap(),
            Message::Applied { sequence: 3, .. }
        ));
    }
}
