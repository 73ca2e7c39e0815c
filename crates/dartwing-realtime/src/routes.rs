//! `POST /api/method/dartwing_core.realtime.publish`: the HTTP publish path for services.

use crate::Realtime;
use crate::event::ChannelEvent;
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use dartwing_core::{Error, PrincipalKind};
use dartwing_http::{ApiError, Auth, Message, RequestContext, StrictJson};
use serde::Deserialize;
use serde_json::{Value, json};

/// The request body: SPEC §5's channel payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    event: String,
    #[serde(default)]
    message: Value,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    doctype: Option<String>,
    #[serde(default)]
    docname: Option<String>,
}

/// The realtime routes.
pub fn routes(gateway: Realtime) -> Router {
    Router::new()
        .route("/api/method/dartwing_core.realtime.publish", post(publish))
        .with_state(gateway)
}

/// Services (API keys) and platform administrators may publish; a key scoped to one organization
/// only to that organization's `org:` and `sync:` rooms.
async fn publish(
    State(gateway): State<Realtime>,
    Auth(principal): Auth,
    Extension(context): Extension<RequestContext>,
    StrictJson(request): StrictJson<PublishRequest>,
) -> Result<Message<Value>, ApiError> {
    let event = ChannelEvent {
        event: request.event,
        message: request.message,
        room: request.room,
        user: request.user,
        doctype: request.doctype,
        docname: request.docname,
        origin: None,
        sent_at_ms: None,
        trace_id: Some(context.trace_id().to_string()),
    };
    let destination = event.destination()?;
    match &principal.kind {
        _ if principal.system_admin => {}
        PrincipalKind::Service {
            organization: Some(organization),
            ..
        } => {
            let own = match &destination {
                crate::event::Destination::Room(room) => room.organization() == Some(organization.as_str()),
                crate::event::Destination::Broadcast => false,
            };
            if !own {
                return Err(Error::permission_denied(format!(
                    "An API key of {organization} publishes only to org:{organization} and sync:<doctype>:{organization}"
                ))
                .into());
            }
        }
        _ => {
            return Err(Error::permission_denied("Only services and platform administrators may publish").into());
        }
    }
    let destination = gateway.submit(event)?;
    Ok(Message(json!({"event_queued": true, "room": destination.room_name()})))
}
