//! `[realtime]`: the realtime gateway (SPEC §5).

use super::{ConfigErrors, Validate, text};
use serde::{Deserialize, Serialize};

/// Realtime gateway settings (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Redis pub/sub channel every node listens on for events to deliver to its local sockets
    /// (cluster mode); the Python/Frappe side publishes here.
    #[serde(deserialize_with = "text::required")]
    pub channel: String,
    /// Prefix of the Socket.IO Redis adapter's own channels (room operations across nodes). Nodes
    /// of one cluster must share it.
    #[serde(deserialize_with = "text::required")]
    pub adapter_prefix: String,
    /// Who may join `room:{name}` rooms.
    pub custom_rooms: CustomRoomPolicy,
    /// Most rooms one socket may subscribe to (besides its own `user:` room).
    pub max_rooms_per_socket: usize,
    /// Engine.IO ping interval.
    pub ping_interval_secs: u64,
    /// Engine.IO ping timeout: a client silent this long after a ping is disconnected.
    pub ping_timeout_secs: u64,
    /// Largest payload a client may send, in bytes: an HTTP long-polling request body, or one
    /// WebSocket message (a larger message closes the connection unprocessed).
    pub max_payload_bytes: u64,
    /// Events waiting to be published by this node; beyond it new events are dropped (and counted).
    pub publish_queue: usize,
    /// How long a cross-node room operation (e.g. removing a user's sockets from rooms) waits for
    /// the other nodes.
    pub cluster_request_timeout_ms: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            channel: "dartwing:realtime".into(),
            adapter_prefix: "dartwing-socket.io".into(),
            custom_rooms: CustomRoomPolicy::Authenticated,
            max_rooms_per_socket: 500,
            ping_interval_secs: 25,
            ping_timeout_secs: 20,
            max_payload_bytes: 1024 * 1024,
            publish_queue: 65_536,
            cluster_request_timeout_ms: 2_000,
        }
    }
}

/// Who may join custom `room:{name}` rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomRoomPolicy {
    /// Any authenticated user.
    Authenticated,
    /// Platform administrators only.
    SystemAdmins,
    /// Nobody (custom rooms are refused).
    Disabled,
}

impl Validate for RealtimeConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.max_rooms_per_socket >= 1,
            "realtime.max_rooms_per_socket",
            "must be at least 1",
        );
        errors.require(
            self.max_payload_bytes >= 1024,
            "realtime.max_payload_bytes",
            "must be at least 1024",
        );
        errors.require(self.publish_queue >= 1, "realtime.publish_queue", "must be at least 1");
        errors.require(
            self.ping_interval_secs >= 1,
            "realtime.ping_interval_secs",
            "must be at least 1 s",
        );
        errors.require(
            self.ping_timeout_secs >= 1,
            "realtime.ping_timeout_secs",
            "must be at least 1 s",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_realtime_value_is_reported_under_its_key() {
        assert_each_reported(
            &RealtimeConfig::default(),
            reported_keys,
            &[
                (|c| c.max_rooms_per_socket = 0, "realtime.max_rooms_per_socket"),
                (|c| c.max_payload_bytes = 1023, "realtime.max_payload_bytes"),
                (|c| c.publish_queue = 0, "realtime.publish_queue"),
                (|c| c.ping_interval_secs = 0, "realtime.ping_interval_secs"),
                (|c| c.ping_timeout_secs = 0, "realtime.ping_timeout_secs"),
            ],
        );
    }
}
