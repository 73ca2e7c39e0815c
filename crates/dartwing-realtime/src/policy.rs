//! Who may join which room: the room grammar mapped onto the permission module's decisions.

use crate::room::Room;
use dartwing_core::access::{DocumentDirectory, DocumentOwner};
use dartwing_core::config::CustomRoomPolicy;
use dartwing_core::{Action, Principal};

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
