//! Realtime gateway (SPEC §5): Socket.IO v4 at `/socket.io/` on every node, authorized rooms, and
//! exactly-once delivery to each subscribed socket however many nodes run.
//!
//! Delivery: every event — published in-process through the core [`Publisher`](dartwing_core::publish::Publisher),
//! over HTTP, or by anyone on the Redis channel `dartwing:realtime` — is delivered by each node to its
//! LOCAL sockets only. A node delivers its own events at once and publishes them on the channel
//! marked with its node id; the other nodes deliver them, the origin skips them. Events published by
//! others (Frappe) carry no origin and every node delivers them. Room operations across nodes (a user
//! whose access shrank leaves rooms everywhere) go through the Socket.IO Redis adapter on the same
//! self-healing Redis connection. Embedded mode (no Redis) delivers in-process.

mod event;
mod gateway;
pub mod policy;
mod redis_bus;
pub mod room;
pub mod routes;

pub use event::{ChannelEvent, Destination, validate_event_name};
pub use gateway::{GatewayDeps, Realtime, RealtimeError};
pub use room::Room;
