//! Vault API under `/api/method/dartwing_core.integrations.*`.

use crate::vault::TokenVault;
use axum::extract::State;
use dartwing_core::Error;
use dartwing_http::openapi::{COMMON_ERRORS, operation};
use dartwing_http::{ApiResult, Auth, Message, MethodArgs, Routes, StrictQuery};
use serde::Deserialize;
use serde_json::Value;

const PREFIX: &str = "/api/method/dartwing_core.integrations";

/// The vault routes with their state applied, each with its OpenAPI operation.
pub fn routes(vault: TokenVault) -> Routes {
    let op = |summary: &str| operation("Integrations", summary, COMMON_ERRORS);
    Routes::builder()
        .post(
            &format!("{PREFIX}.connect"),
            connect,
            op("Start a connect flow {organization, integration} → {authorize_url, state, expires_in}; send the browser \
                to authorize_url (state + PKCE); Owners/Admins"),
        )
        .get(
            &format!("{PREFIX}.callback"),
            callback,
            op("The provider's redirect (?state=&code= or ?error=): completes the connect flow; no Authorization header"),
        )
        .post(
            &format!("{PREFIX}.disconnect"),
            disconnect,
            op("Revoke and remove an integration's tokens {organization, integration}; Owners/Admins"),
        )
        .read(
            &format!("{PREFIX}.status"),
            status,
            op("Integrations of an organization (?organization=) → [{integration, status, expires_at, last_refreshed, \
                error_message, connected_by, connected_at, scopes}]; never token material"),
        )
        .read(
            &format!("{PREFIX}.audit_log"),
            audit_log,
            op("Audit log of an organization's integrations (?organization=&limit=); Owners/Admins"),
        )
        .post(
            &format!("{PREFIX}.get_access_token"),
            get_access_token,
            op("A valid access token {integration, organization} → {access_token, expires_at}, refreshed first when it \
                expires soon; service keys and platform administrators only"),
        )
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
    MethodArgs(body): MethodArgs<IntegrationBody>,
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
    MethodArgs(body): MethodArgs<IntegrationBody>,
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
    MethodArgs(query): MethodArgs<OrgQuery>,
) -> ApiResult<Message<Value>> {
    Ok(Message(to_value(vault.status(&actor, &query.organization).await?)))
}

async fn audit_log(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    MethodArgs(query): MethodArgs<OrgQuery>,
) -> ApiResult<Message<Value>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Message(to_value(
        vault.audit_log(&actor, &query.organization, limit).await?,
    )))
}

async fn get_access_token(
    State(vault): State<TokenVault>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<IntegrationBody>,
) -> ApiResult<Message<Value>> {
    let token = vault
        .service_access_token(&actor, &body.integration, &body.organization)
        .await?;
    Ok(Message(to_value(token)))
}
