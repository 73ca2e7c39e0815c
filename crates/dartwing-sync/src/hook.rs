//! The optional merge hook: an HTTP endpoint (e.g. an AI merge service) asked to merge a
//! `manual_resolve` conflict before it is stored for a person.
//!
//! Request: `POST <sync.merge_hook_url>` with `{doctype, name, organization, base, server, client}`
//! (`base` may be null). A 200 answer `{"data": {…}}` with a JSON object is the merged document;
//! anything else (another status, `data` null, a timeout, reserved fields) falls back to manual
//! resolution.

use crate::model::{Document, RESERVED_FIELDS};
use dartwing_core::{Error, Result};
use serde_json::{Map, Value, json};
use std::time::Duration;

pub(crate) struct MergeHook {
    url: String,
    client: reqwest::Client,
}

impl MergeHook {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| {
            tracing::error!(error = %e, "merge hook client could not be built");
            Error::internal()
        })?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    /// The merged fields, or `None` to fall back to manual resolution.
    pub(crate) async fn merge(
        &self,
        organization: &str,
        server: &Document,
        client: &Map<String, Value>,
        base: Option<&Map<String, Value>>,
    ) -> Option<Map<String, Value>> {
        let body = json!({
            "doctype": server.doctype,
            "name": server.name,
            "organization": organization,
            "base": base,
            "server": server.data,
            "client": client,
        });
        let response = match self.client.post(&self.url).json(&body).send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::warn!(doctype = %server.doctype, docname = %server.name, organization, status = response.status().as_u16(), "merge hook declined");
                return None;
            }
            Err(e) => {
                tracing::warn!(doctype = %server.doctype, docname = %server.name, organization, error_type = "MergeHookUnavailable", timeout = e.is_timeout(), "merge hook failed");
                return None;
            }
        };
        match response.json::<Value>().await {
            Ok(Value::Object(mut answer)) => match answer.remove("data") {
                Some(Value::Object(data)) if !data.keys().any(|k| RESERVED_FIELDS.contains(&k.as_str())) => Some(data),
                _ => None,
            },
            _ => None,
        }
    }
}
