//! The room grammar (SPEC §5): the one parser every part of the gateway uses. The organization
//! part of `org:` and `sync:` rooms follows the document name grammar of
//! [`dartwing_core::names`], so every organization name is a room and nothing else is.

use dartwing_core::names;
use std::fmt;

/// Longest room name accepted.
pub const MAX_ROOM_LEN: usize = 300;

/// A room a socket can be in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Room {
    /// `user:{email}` — every socket of one user (joined automatically).
    User(String),
    /// `doc:{doctype}:{name}` — events about one document.
    Document {
        /// The DocType, e.g. `Task` or `Org Member`.
        doctype: String,
        /// The document's name.
        name: String,
    },
    /// `org:{organization}` — events of one organization.
    Organization(String),
    /// `sync:{doctype}:{organization}` — sync deltas of one DocType in one organization.
    Sync {
        /// The DocType.
        doctype: String,
        /// The organization.
        organization: String,
    },
    /// `room:{name}` — custom rooms, joined under the configured policy.
    Custom(String),
}

/// Why a room name is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRoom(pub String);

impl fmt::Display for InvalidRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidRoom {}

fn part<'a>(room: &str, value: &'a str, what: &str) -> Result<&'a str, InvalidRoom> {
    if value.is_empty() {
        return Err(InvalidRoom(format!("room `{room}` has an empty {what}")));
    }
    if value.trim() != value {
        return Err(InvalidRoom(format!("room `{room}`: {what} has surrounding spaces")));
    }
    Ok(value)
}

fn organization_part<'a>(room: &str, value: &'a str) -> Result<&'a str, InvalidRoom> {
    let value = part(room, value, "organization")?;
    match names::name_problem(value) {
        None => Ok(value),
        Some(problem) => Err(InvalidRoom(format!(
            "room `{room}`: not an organization name: {problem}"
        ))),
    }
}

impl Room {
    /// Parses a room name; anything outside the grammar is refused with a reason.
    pub fn parse(text: &str) -> Result<Room, InvalidRoom> {
        if text.len() > MAX_ROOM_LEN {
            return Err(InvalidRoom(format!("room names are at most {MAX_ROOM_LEN} bytes")));
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidRoom("room names cannot contain control characters".into()));
        }
        let Some((prefix, rest)) = text.split_once(':') else {
            return Err(InvalidRoom(format!(
                "`{text}` is not a room; rooms are user:, doc:, org:, sync: or room: names"
            )));
        };
        match prefix {
            "user" => Ok(Room::User(part(text, rest, "email")?.to_ascii_lowercase())),
            "org" => Ok(Room::Organization(organization_part(text, rest)?.to_string())),
            "doc" => {
                let (doctype, name) = rest
                    .split_once(':')
                    .ok_or_else(|| InvalidRoom(format!("room `{text}` must be doc:{{doctype}}:{{name}}")))?;
                Ok(Room::Document {
                    doctype: part(text, doctype, "doctype")?.to_string(),
                    name: part(text, name, "document name")?.to_string(),
                })
            }
            "sync" => {
                let (doctype, organization) = rest
                    .split_once(':')
                    .ok_or_else(|| InvalidRoom(format!("room `{text}` must be sync:{{doctype}}:{{organization}}")))?;
                let organization = organization_part(text, organization)?;
                Ok(Room::Sync {
                    doctype: part(text, doctype, "doctype")?.to_string(),
                    organization: organization.to_string(),
                })
            }
            "room" => Ok(Room::Custom(part(text, rest, "name")?.to_string())),
            other => Err(InvalidRoom(format!(
                "unknown room prefix `{other}:`; rooms are user:, doc:, org:, sync: or room: names"
            ))),
        }
    }

    /// The organization whose membership governs this room, when the name says it.
    pub fn organization(&self) -> Option<&str> {
        match self {
            Room::Organization(organization) | Room::Sync { organization, .. } => Some(organization),
            _ => None,
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::User(email) => write!(f, "user:{email}"),
            Room::Document { doctype, name } => write!(f, "doc:{doctype}:{name}"),
            Room::Organization(organization) => write!(f, "org:{organization}"),
            Room::Sync { doctype, organization } => write!(f, "sync:{doctype}:{organization}"),
            Room::Custom(name) => write!(f, "room:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_kind_round_trips() {
        for text in [
            "user:ann@example.com",
            "doc:Org Member:MEM-2026-00001",
            "doc:Task:a:b",
            "org:ORG-2026-00001",
            "sync:Calendar Event:ORG-2026-00001",
            "room:system-alerts",
        ] {
            assert_eq!(Room::parse(text).map(|r| r.to_string()), Ok(text.to_string()), "{text}");
        }
        assert_eq!(
            Room::parse("user:Ann@Example.com"),
            Ok(Room::User("ann@example.com".into()))
        );
    }

    #[test]
    fn names_outside_the_grammar_are_refused_with_a_reason() {
        for text in [
            "",
            "lobby",
            "chat:general",
            "org:",
            "org: ORG-1",
            "org:A:B",
            "doc:Task",
            "doc::x",
            "sync:Task:",
            "sync:Task",
            "room:",
            "user:",
            "org:ORG\n1",
            "org:a/b",
            "org:ＡＣＭＥ",
            "sync:Task:A:B",
            "sync:Task:a\\b",
        ] {
            let error = Room::parse(text).expect_err(text);
            assert!(!error.0.is_empty());
        }
        assert!(Room::parse(&format!("room:{}", "x".repeat(MAX_ROOM_LEN))).is_err());
        assert!(Room::parse(&format!("org:{}", "x".repeat(names::MAX_NAME_CHARS + 1))).is_err());
    }

    #[test]
    fn every_valid_organization_name_is_a_room() {
        for name in [
            "ORG-2026-00001",
            "ACME HQ",
            "Müller & Söhne",
            &"x".repeat(names::MAX_NAME_CHARS),
        ] {
            assert!(names::validate_name(name).is_ok(), "{name}");
            assert_eq!(
                Room::parse(&format!("org:{name}")),
                Ok(Room::Organization(name.to_string()))
            );
            assert_eq!(
                Room::parse(&format!("sync:Task:{name}")).map(|r| r.organization().map(str::to_string)),
                Ok(Some(name.to_string()))
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn room_text() -> impl Strategy<Value = String> {
            let prefix = proptest::sample::select(&["user:", "doc:", "org:", "sync:", "room:", "ORG:", "", "x:"][..]);
            prop_oneof![
                (prefix.clone(), any::<String>()).prop_map(|(p, rest)| format!("{p}{rest}")),
                (prefix, "[A-Za-z0-9 :@._-]{0,40}").prop_map(|(p, rest)| format!("{p}{rest}")),
                any::<String>(),
            ]
        }

        proptest! {
            /// Any text parses to a room or a reason, never a panic; an accepted room prints back
            /// to a name that parses to the same room, and organizations in rooms follow the one
            /// name grammar.
            #[test]
            fn any_text_is_a_room_or_a_reason(text in room_text()) {
                match Room::parse(&text) {
                    Ok(room) => {
                        let printed = room.to_string();
                        prop_assert_eq!(Room::parse(&printed), Ok(room.clone()));
                        if let Some(organization) = room.organization() {
                            prop_assert!(dartwing_core::names::validate_name(organization).is_ok(), "{}", organization);
                        }
                    }
                    Err(reason) => prop_assert!(!reason.0.is_empty()),
                }
            }
        }
    }
}
