//! `POST /api/method/dartwing_core.realtime.publish`: the HTTP publish path for services.

use crate::Realtime;
use crate::event::ChannelEvent;
use axum::Extension;
use axum::extract::State;
use dartwing_core::{Error, PrincipalKind};
use dartwing_http::openapi::error_ref;
use dartwing_http::{ApiError, Auth, Message, MethodArgs, RequestContext, Routes};
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
pub fn routes(gateway: Realtime) -> Routes {
    Routes::builder()
        .post(PUBLISH, publish, publish_operation())
        .with_state(gateway)
}

/// Where services publish.
const PUBLISH: &str = "/api/method/dartwing_core.realtime.publish";

/// Services (API keys) and platform administrators may publish; a key scoped to one organization
/// only to that organization's `org:` and `sync:` rooms.
async fn publish(
    State(gateway): State<Realtime>,
    Auth(principal): Auth,
    Extension(context): Extension<RequestContext>,
    MethodArgs(request): MethodArgs<PublishRequest>,
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

/// The OpenAPI operation of the publish route.
fn publish_operation() -> Value {
    json!({
                "summary": "Publish a realtime event to a room, a user, a document's followers or everyone",
                "description": "Platform administrators and system API keys; an organization's API key publishes only to its org: and sync: rooms. Routing: room, else user, else doctype+docname, else broadcast.",
                "tags": ["Realtime"],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["event"], "additionalProperties": false,
                    "properties": {
                        "event": { "type": "string", "maxLength": 100 },
                        "message": {},
                        "room": { "type": "string", "description": "user:{email} | doc:{doctype}:{name} | org:{org} | sync:{doctype}:{org} | room:{name}" },
                        "user": { "type": "string" },
                        "doctype": { "type": "string" },
                        "docname": { "type": "string" }
                    } } } } },
                "responses": {
                    "200": { "description": "Queued for delivery", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "message": { "type": "object", "properties": {
                            "event_queued": { "type": "boolean" }, "room": { "type": ["string", "null"] } } } } } } } },
                    "400": error_ref("BadRequest"), "401": error_ref("Unauthenticated"), "403": error_ref("Forbidden"),
                    "422": error_ref("Invalid")
                }
    })
}
