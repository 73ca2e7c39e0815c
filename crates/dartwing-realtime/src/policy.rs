//! Who may join which room: the room grammar mapped onto the permission module's decisions.

use crate::room::Room;
use dartwing_core::access::{DocumentDirectory, DocumentOwner};
use dartwing_core::config::CustomRoomPolicy;
use dartwing_core::{Action, Principal};

/// Custom rooms named `room:system-…` carry platform events (e.g. `dlq_alert` in
/// `room:system-alerts`): only platform administrators join them, whatever `realtime.custom_rooms`
/// says.
pub const SYSTEM_ROOM_PREFIX: &str = "system-";

/// Why a subscription is refused (sent back in the `subscribe` ack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Decides whether `principal` may be in `room`. Errors looking documents up refuse the room
/// (and are logged) rather than admit it.
pub async fn may_join(
    principal: &Principal,
    room: &Room,
    documents: &dyn DocumentDirectory,
    custom_rooms: CustomRoomPolicy,
) -> Result<(), Refusal> {
    let subscribe = |organization: &str| {
        principal
            .authorize(Action::Subscribe, organization)
            .map_err(|e| Refusal(e.message().to_string()))
    };
    match room {
        Room::User(email) => {
            if principal.email() == Some(email.as_str()) {
                Ok(())
            } else {
                Err(Refusal("user rooms are joined only by that user".into()))
            }
        }
        Room::Organization(organization) | Room::Sync { organization, .. } => subscribe(organization),
        Room::Document { doctype, name } => match documents.owner(doctype, name).await {
            Ok(Some(DocumentOwner::Organization(organization))) => subscribe(&organization),
            Ok(Some(DocumentOwner::User(email))) => {
                if principal.system_admin || principal.email() == Some(email.as_str()) {
                    Ok(())
                } else {
                    Err(Refusal(format!("Not permitted to follow {doctype} {name}")))
                }
            }
            Ok(None) => Err(Refusal(format!("{doctype} {name} not found"))),
            Err(error) => {
                tracing::warn!(doctype = %doctype, docname = %name, error = %error, "document lookup for a subscription failed");
                Err(Refusal("could not check access to the document; try again".into()))
            }
        },
        Room::Custom(name) if name.starts_with(SYSTEM_ROOM_PREFIX) => {
            if principal.system_admin {
                Ok(())
            } else {
                Err(Refusal(format!(
                    "room:{SYSTEM_ROOM_PREFIX}* rooms are reserved for platform administrators"
                )))
            }
        }
        Room::Custom(_) => match custom_rooms {
            CustomRoomPolicy::Authenticated => Ok(()),
            CustomRoomPolicy::SystemAdmins if principal.system_admin => Ok(()),
            CustomRoomPolicy::SystemAdmins => {
                Err(Refusal("custom rooms are open to platform administrators only".into()))
            }
            CustomRoomPolicy::Disabled => Err(Refusal("custom rooms are disabled".into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dartwing_core::access::DocumentDirectories;
    use dartwing_core::tenancy::{MemberRole, MemberStatus, OrgStatus};
    use dartwing_core::{Membership, PrincipalKind};

    fn user(system_admin: bool) -> Principal {
        Principal {
            kind: PrincipalKind::User {
                email: "u@example.com".into(),
                person: "PERS-1".into(),
            },
            system_admin,
            memberships: vec![Membership {
                organization: "ORG-A".into(),
                role: MemberRole::Owner,
                status: MemberStatus::Active,
                org_status: OrgStatus::Active,
            }],
            witness: Default::default(),
        }
    }

    #[tokio::test]
    async fn system_rooms_admit_platform_administrators_only_under_every_custom_room_policy() {
        let documents = DocumentDirectories::default();
        for policy in [
            CustomRoomPolicy::Authenticated,
            CustomRoomPolicy::SystemAdmins,
            CustomRoomPolicy::Disabled,
        ] {
            for name in ["room:system-alerts", "room:system-anything"] {
                let room = Room::parse(name).expect("room");
                let refusal = may_join(&user(false), &room, &documents, policy).await;
                assert!(
                    refusal.as_ref().is_err_and(|r| r.0.contains("platform administrators")),
                    "{name} {policy:?}: {refusal:?}"
                );
                assert_eq!(may_join(&user(true), &room, &documents, policy).await, Ok(()));
            }
        }
        let lobby = Room::parse("room:lobby").expect("room");
        assert_eq!(
            may_join(&user(false), &lobby, &documents, CustomRoomPolicy::Authenticated).await,
            Ok(()),
            "other custom rooms keep the configured policy"
        );
    }
}
