//! How capabilities send realtime events without depending on the realtime gateway.

use serde_json::Value;
use std::sync::Arc;

/// Where an event goes (SPEC §5 rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every socket of one user (`user:{email}`).
    User(String),
    /// A named room such as `org:ORG-2026-00001` or `sync:Task:ORG-2026-00001`.
    Room(String),
    /// Every connected socket.
    Broadcast,
}

/// Publishes realtime events; implemented by the realtime gateway.
pub trait Publisher: Send + Sync + 'static {
    /// Sends `event` with `message` to `target`, carrying `trace_id` when known. Never blocks on
    /// delivery; failures are the publisher's to log.
    fn publish(&self, event: &str, message: Value, target: Target, trace_id: Option<&str>);
}

/// A publisher that drops events, for roles and tests without the realtime gateway.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopPublisher;

impl Publisher for NoopPublisher {
    fn publish(&self, _event: &str, _message: Value, _target: Target, _trace_id: Option<&str>) {}
}

/// A shared publisher handle.
pub type SharedPublisher = Arc<dyn Publisher>;
