//! Vault API under `/api/method/dartwing_core.integrations.*`.

use crate::vault::TokenVault;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use dartwing_core::Error;
use dartwing_http::{ApiResult, Auth, Message, StrictJson, StrictQuery};
use serde::Deserialize;
use serde_json::Value;

const PREFIX: &str = "/api/method/dartwing_core.integrations";

/// The vault routes with their state applied.
pub fn routes(vault: TokenVault) -> Router {
    Router::new()
        .route(&format!("{PREFIX}.connect"), post(connect))
        .route(&format!("{PREFIX}.callback"), get(callback))
        .route(&format!("{PREFIX}.disconnect"), post(disconnect))
        .route(&format!("{PREFIX}.status"), get(status))
        .route(&format!("{PREFIX}.audit_log"), get(audit_log))
        .route(&format!("{PREFIX}.get_access_token"), post(get_access_token))
        .with_state(vault)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationBody {
    organization: String,
    integration: String,
}

fn to_value<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn connect(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    StrictJson(body): StrictJson<IntegrationBody>,
) -> ApiResult<Message<Value>> {
    let start = vault.connect(&actor, &body.organization, &body.integration).await?;
    Ok(Message(to_value(start)))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider redirects the user's browser here; the single-use `state` identifies the flow
/// (no `Authorization` header is expected).
async fn callback(
    State(vault): State<TokenVault>,
    StrictQuery(query): StrictQuery<CallbackQuery>,
) -> ApiResult<Message<Value>> {
    let state = query
        .state
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| Error::bad_request("'state' is required").with_exc_type("IntegrationStateInvalid"))?;
    if let Some(error) = query.error {
        // Consume the state so it cannot be replayed, then report the provider's refusal.
        vault.abandon_connect(&state).await;
        let detail = query.error_description.unwrap_or_default();
        let text: String = format!("The provider refused the authorization: {error} {detail}")
            .chars()
            .take(300)
            .collect();
        return Err(Error::validation(text.trim().to_string())
            .with_exc_type("IntegrationAuthorizationFailed")
            .into());
    }
    let code = query
        .code
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or_else(|| Error::bad_request("'code' is required"))?;
    let info = vault.callback(&state, &code).await?;
    Ok(Message(to_value(info)))
}

async fn disconnect(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    StrictJson(body): StrictJson<IntegrationBody>,
) -> ApiResult<Message<Value>> {
    let done = vault.disconnect(&actor, &body.organization, &body.integration).await?;
    Ok(Message(to_value(done)))
}

#[derive(Debug, Deserialize)]
struct OrgQuery {
    organization: String,
    limit: Option<u32>,
}

async fn status(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    StrictQuery(query): StrictQuery<OrgQuery>,
) -> ApiResult<Message<Value>> {
    Ok(Message(to_value(vault.status(&actor, &query.organization).await?)))
}

async fn audit_log(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    StrictQuery(query): StrictQuery<OrgQuery>,
) -> ApiResult<Message<Value>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Message(to_value(
        vault.audit_log(&actor, &query.organization, limit).await?,
    )))
}

async fn get_access_token(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    StrictJson(body): StrictJson<IntegrationBody>,
) -> ApiResult<Message<Value>> {
    let token = vault
        .service_access_token(&actor, &body.integration, &body.organization)
        .await?;
    Ok(Message(to_value(token)))
}
