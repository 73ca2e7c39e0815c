//! Events on their way to sockets: the `dartwing:realtime` channel payload (SPEC §5) and its routing.

use crate::room::Room;
use dartwing_core::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest event name accepted.
pub const MAX_EVENT_LEN: usize = 100;

/// Event names Socket.IO reserves for itself; publishing them would confuse clients.
const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "error",
    "ping",
    "pong",
    "message",
];

/// One event as it travels on the Redis channel. The first six fields are SPEC §5's payload, which
/// any publisher (e.g. Frappe with a plain `redis.publish`) may send; the rest are added by nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEvent {
    /// Socket.IO event name the clients receive.
    pub event: String,
    /// The event's payload.
    #[serde(default)]
    pub message: Value,
    /// Target room, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Target user (email), when no room is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Target document's DocType, with `docname`, when neither room nor user is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doctype: Option<String>,
    /// Target document's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docname: Option<String>,
    /// Node that published it and already delivered it to its own sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Publish time, Unix epoch milliseconds (for the publish → receipt latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<f64>,
    /// Trace id of the work that published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Which sockets an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The sockets in one room.
    Room(Room),
    /// Every socket.
    Broadcast,
}

impl Destination {
    /// The room name, or `None` for a broadcast.
    pub fn room_name(&self) -> Option<String> {
        match self {
            Destination::Room(room) => Some(room.to_string()),
            Destination::Broadcast => None,
        }
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl ChannelEvent {
    /// SPEC §5 routing: `room` if set; else `user` → `user:{user}`; else `doctype` + `docname` →
    /// `doc:{doctype}:{docname}`; else every socket. The event name and the room are validated.
    pub fn destination(&self) -> Result<Destination, Error> {
        validate_event_name(&self.event)?;
        let room = if let Some(room) = present(&self.room) {
            Room::parse(room)
        } else if let Some(user) = present(&self.user) {
            Room::parse(&format!("user:{user}"))
        } else if let (Some(doctype), Some(docname)) = (present(&self.doctype), present(&self.docname)) {
            Room::parse(&format!("doc:{doctype}:{docname}"))
        } else {
            return Ok(Destination::Broadcast);
        };
        room.map(Destination::Room).map_err(|e| Error::validation(e.0))
    }
}

/// Checks an event name: 1–100 characters, printable, not one Socket.IO reserves.
pub fn validate_event_name(event: &str) -> Result<(), Error> {
    if event.is_empty() || event.len() > MAX_EVENT_LEN || event.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "event must be 1-{MAX_EVENT_LEN} printable characters"
        )));
    }
    if RESERVED_EVENTS.contains(&event) {
        return Err(Error::validation(format!("event `{event}` is reserved by Socket.IO")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> ChannelEvent {
        serde_json::from_value(value).expect("valid channel payload")
    }

    #[test]
    fn routing_follows_the_spec_order() {
        let all = json!({"event": "e", "message": 1, "room": "org:ORG-1", "user": "a@x.io", "doctype": "Task", "docname": "T-1"});
        assert_eq!(
            event(all).destination().map(|d| d.room_name()),
            Ok(Some("org:ORG-1".into()))
        );
        let user = json!({"event": "e", "user": "A@x.io", "doctype": "Task", "docname": "T-1"});
        assert_eq!(
            event(user).destination().map(|d| d.room_name()),
            Ok(Some("user:a@x.io".into()))
        );
        let doc = json!({"event": "e", "doctype": "Task", "docname": "T-1"});
        assert_eq!(
            event(doc).destination().map(|d| d.room_name()),
            Ok(Some("doc:Task:T-1".into()))
        );
        let half = json!({"event": "e", "doctype": "Task", "room": ""});
        assert_eq!(event(half).destination(), Ok(Destination::Broadcast));
    }

    #[test]
    fn bad_events_and_rooms_are_refused() {
        assert!(event(json!({"event": "connect"})).destination().is_err());
        assert!(event(json!({"event": ""})).destination().is_err());
        assert!(event(json!({"event": "e", "room": "lobby"})).destination().is_err());
        assert!(serde_json::from_value::<ChannelEvent>(json!({"message": 1})).is_err());
    }
}
