//! `webhook.dispatch`: signed HTTP POSTs to an organization's receivers.
//!
//! - Destinations: public addresses only (unless the operator allowlists networks), checked on
//!   every connection after DNS resolution ([`destination`]); no redirects, no proxy from the
//!   environment, https only in production mode; optionally only the hosts the organization lists.
//! - Signatures: HMAC-SHA256 under the organization's own secret over timestamp, organization,
//!   delivery id and body ([`signature`], secrets in [`settings`]).
//! - Failures are stored as `delivery failed: <class>` and say nothing about the destination.

pub mod destination;
pub mod settings;
pub mod signature;

pub use destination::{DestinationPolicy, UrlRefusal};
pub use settings::{HostPattern, SigningSecret, WebhookSettings};

use crate::Jobs;
use async_trait::async_trait;
use dartwing_core::jobs::{JobContext, JobError, JobHandler};
use dartwing_core::{Action, Error, Principal, Result};
use destination::{GuardedResolver, RefusedDestination};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The job type of webhook deliveries.
pub const METHOD: &str = "webhook.dispatch";
/// Event name sent when the job names none.
pub const DEFAULT_EVENT: &str = "webhook";
/// Longest event name.
pub const MAX_EVENT_LEN: usize = 100;
/// Time limit of one delivery attempt (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookArgs {
    url: String,
    #[serde(default)]
    event: Option<String>,
    payload: Value,
}

impl WebhookArgs {
    fn parse(args: &Value) -> std::result::Result<Self, String> {
        let args: Self =
            serde_json::from_value(args.clone()).map_err(|e| format!("invalid arguments for {METHOD}: {e}"))?;
        if let Some(event) = &args.event {
            let valid = !event.is_empty()
                && event.len() <= MAX_EVENT_LEN
                && event
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
            if !valid {
                return Err(format!(
                    "'event' must be 1-{MAX_EVENT_LEN} letters, digits, '.', '_', ':' or '-'"
                ));
            }
        }
        Ok(args)
    }

    fn event(&self) -> &str {
        self.event.as_deref().unwrap_or(DEFAULT_EVENT)
    }
}

/// Why a delivery attempt failed. Its text (`delivery failed: <class>`) is all that is stored
/// and shown: nothing about hosts, addresses, ports or the answering server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// No answer within the time limit (transient).
    Timeout,
    /// The name did not resolve, the connection failed or broke, TLS failed (transient).
    Connection,
    /// The destination is not one deliveries may reach (permanent).
    RefusedDestination,
    /// The receiver answered 3xx; redirects are not followed (permanent).
    Redirect,
    /// The receiver answered this status: 5xx, 408 and 429 are transient, other 4xx permanent.
    Status(u16),
}

impl DeliveryFailure {
    /// The class named in the stored error.
    pub fn class(self) -> &'static str {
        match self {
            DeliveryFailure::Timeout => "timeout",
            DeliveryFailure::Connection => "connection",
            DeliveryFailure::RefusedDestination => "refused destination",
            DeliveryFailure::Redirect => "redirect",
            DeliveryFailure::Status(400..=499) => "4xx",
            DeliveryFailure::Status(500..=599) => "5xx",
            DeliveryFailure::Status(_) => "unexpected answer",
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_transient(self) -> bool {
        match self {
            DeliveryFailure::Timeout | DeliveryFailure::Connection => true,
            DeliveryFailure::Status(status) => status >= 500 || status == 408 || status == 429,
            DeliveryFailure::RefusedDestination | DeliveryFailure::Redirect => false,
        }
    }

    /// The failure of an answer with `status`, or `None` for success.
    fn of_status(status: reqwest::StatusCode) -> Option<Self> {
        if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(DeliveryFailure::Redirect)
        } else {
            Some(DeliveryFailure::Status(status.as_u16()))
        }
    }

    /// The failure of a request that got no answer.
    fn of_error(error: &reqwest::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if cause.is::<RefusedDestination>() {
                return DeliveryFailure::RefusedDestination;
            }
            source = cause.source();
        }
        if error.is_timeout() {
            DeliveryFailure::Timeout
        } else if error.is_redirect() {
            DeliveryFailure::Redirect
        } else {
            DeliveryFailure::Connection
        }
    }
}

impl std::fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "delivery failed: {}", self.class())
    }
}

impl From<DeliveryFailure> for JobError {
    fn from(failure: DeliveryFailure) -> Self {
        if failure.is_transient() {
            JobError::Transient(failure.to_string())
        } else {
            JobError::Permanent(failure.to_string())
        }
    }
}

/// The HTTP client of deliveries: names resolve through `policy`'s resolver, no redirect is
/// followed and no proxy used.
fn delivery_client(policy: Arc<DestinationPolicy>) -> std::result::Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(policy.https_only())
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("Dartwing-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

/// The `webhook.dispatch` handler (args `{"url", "event"?, "payload"}`): POSTs `payload` as JSON,
/// signed with the job's organization's secret (see `docs/jobs.md`, "Webhook signatures").
pub struct Webhook {
    policy: Arc<DestinationPolicy>,
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl Webhook {
    /// A handler delivering under `policy`: its client resolves names through the policy's
    /// resolver, follows no redirect and uses no proxy.
    pub fn new(policy: DestinationPolicy, settings: WebhookSettings) -> std::result::Result<Self, String> {
        let policy = Arc::new(policy);
        let client = delivery_client(policy.clone())?;
        Ok(Self {
            policy,
            settings,
            client,
        })
    }

    /// The checked URL of a delivery to `organization`, or why it may not be delivered.
    async fn destination(&self, organization: &str, url: &str) -> Result<Url> {
        let url = self
            .policy
            .check_url(url)
            .map_err(|r| Error::validation(r.to_string()))?;
        let hosts = self.settings.allowed_hosts(organization).await?;
        let host = url.host_str().unwrap_or_default();
        if !hosts.is_empty() && !hosts.iter().any(|pattern| pattern.matches(host)) {
            return Err(Error::validation(format!(
                "the webhook URL's host {host} is not among the organization's webhook hosts"
            )));
        }
        Ok(url)
    }

    async fn deliver(
        &self,
        ctx: &JobContext,
        organization: &str,
        args: WebhookArgs,
    ) -> std::result::Result<(), JobError> {
        let url = match self.destination(organization, &args.url).await {
            Ok(url) => url,
            Err(e) if e.kind() == dartwing_core::ErrorKind::Validation => {
                return Err(DeliveryFailure::RefusedDestination.into());
            }
            Err(e) => return Err(e.into()),
        };
        let secret = self.settings.signing_secret(organization).await?;
        let body = serde_json::to_vec(&args.payload)
            .map_err(|e| JobError::Permanent(format!("invalid arguments for {METHOD}: {e}")))?;
        let timestamp = dartwing_core::Timestamp::now().as_micros() / 1_000_000;
        let signed = signature::sign(&secret.secret, timestamp, organization, &ctx.job_id, &body);
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::EVENT_HEADER, args.event())
            .header(signature::DELIVERY_HEADER, &ctx.job_id)
            .header(signature::ORGANIZATION_HEADER, organization)
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryFailure::of_error(&e))?;
        match DeliveryFailure::of_status(response.status()) {
            None => Ok(()),
            Some(failure) => {
                tracing::info!(
                    status = response.status().as_u16(),
                    "webhook receiver refused the delivery"
                );
                Err(failure.into())
            }
        }
    }
}

#[async_trait]
impl JobHandler for Webhook {
    async fn run(&self, ctx: &JobContext, args: Value) -> std::result::Result<(), JobError> {
        let organization = ctx
            .organization
            .clone()
            .ok_or_else(|| JobError::Permanent(format!("{METHOD} needs an organization")))?;
        let args = WebhookArgs::parse(&args).map_err(JobError::Permanent)?;
        self.deliver(ctx, &organization, args).await
    }

    async fn admit(&self, organization: Option<&str>, args: &Value) -> Result<()> {
        let organization = organization.ok_or_else(|| {
            Error::validation(format!(
                "{METHOD} needs an organization: deliveries are signed with the organization's secret"
            ))
        })?;
        let args = WebhookArgs::parse(args).map_err(Error::validation)?;
        self.destination(organization, &args.url).await.map(|_| ())
    }
}

impl Jobs {
    fn webhook_settings(&self) -> &WebhookSettings {
        &self.inner.webhook_settings
    }

    /// Authorizes `action` on `organization`, then requires that it exists. A caller who may not
    /// act on it gets the same 403 whether or not it exists.
    async fn authorize_existing(&self, actor: &Principal, action: Action, organization: &str) -> Result<()> {
        actor.authorize(action, organization)?;
        if !self.inner.directory.exists(organization).await? {
            return Err(Error::not_found(format!("Organization {organization} not found")));
        }
        Ok(())
    }

    /// The organization's webhook signing secret, generated on first need; for its Owners and
    /// Admins (and system administrators).
    pub async fn webhook_secret(&self, actor: &Principal, organization: &str) -> Result<SigningSecret> {
        self.authorize_existing(actor, Action::ManageIntegrations, organization)
            .await?;
        self.webhook_settings().signing_secret(organization).await
    }

    /// Replaces the organization's webhook signing secret and returns the new one; deliveries
    /// from now on (including retries of earlier jobs) are signed with it only.
    pub async fn rotate_webhook_secret(&self, actor: &Principal, organization: &str) -> Result<SigningSecret> {
        self.authorize_existing(actor, Action::ManageIntegrations, organization)
            .await?;
        let rotated = self.webhook_settings().rotate_signing_secret(organization).await?;
        tracing::info!(organization, by = actor.id(), "webhook signing secret rotated");
        Ok(rotated)
    }

    /// The hosts the organization's deliveries may go to (empty: any host with a public address);
    /// readable by its members.
    pub async fn webhook_hosts(&self, actor: &Principal, organization: &str) -> Result<Vec<HostPattern>> {
        self.authorize_existing(actor, Action::Read, organization).await?;
        self.webhook_settings().allowed_hosts(organization).await
    }

    /// Replaces the organization's webhook hosts (Owners and Admins); an empty list allows any
    /// host with a public address. Every pattern is checked before anything is stored.
    pub async fn set_webhook_hosts(
        &self,
        actor: &Principal,
        organization: &str,
        hosts: &[String],
    ) -> Result<Vec<HostPattern>> {
        self.authorize_existing(actor, Action::ManageIntegrations, organization)
            .await?;
        if hosts.len() > settings::MAX_HOSTS {
            return Err(Error::validation(format!(
                "at most {} webhook hosts are accepted",
                settings::MAX_HOSTS
            )));
        }
        let mut patterns = hosts
            .iter()
            .map(|h| HostPattern::parse(h).map_err(Error::validation))
            .collect::<Result<Vec<_>>>()?;
        patterns.sort();
        patterns.dedup();
        self.webhook_settings()
            .set_allowed_hosts(organization, &patterns)
            .await?;
        tracing::info!(
            organization,
            by = actor.id(),
            hosts = patterns.len(),
            "webhook hosts changed"
        );
        Ok(patterns)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_name_only_their_class_and_keep_the_retry_rules() {
        for (failure, text, transient) in [
            (DeliveryFailure::Timeout, "delivery failed: timeout", true),
            (DeliveryFailure::Connection, "delivery failed: connection", true),
            (
                DeliveryFailure::RefusedDestination,
                "delivery failed: refused destination",
                false,
            ),
            (DeliveryFailure::Redirect, "delivery failed: redirect", false),
            (DeliveryFailure::Status(405), "delivery failed: 4xx", false),
            (DeliveryFailure::Status(404), "delivery failed: 4xx", false),
            (DeliveryFailure::Status(408), "delivery failed: 4xx", true),
            (DeliveryFailure::Status(429), "delivery failed: 4xx", true),
            (DeliveryFailure::Status(500), "delivery failed: 5xx", true),
            (DeliveryFailure::Status(503), "delivery failed: 5xx", true),
        ] {
            assert_eq!(failure.to_string(), text);
            let expected = if transient {
                JobError::Transient(text.into())
            } else {
                JobError::Permanent(text.into())
            };
            assert_eq!(JobError::from(failure), expected);
        }
    }

    #[test]
    fn arguments_are_checked_strictly() {
        assert!(WebhookArgs::parse(&json!({"url": "https://a.example", "payload": {}})).is_ok());
        assert!(WebhookArgs::parse(&json!({"url": "https://a.example", "event": "order.paid", "payload": 1})).is_ok());
        for bad in [
            json!({"url": "https://a.example"}),
            json!({"payload": {}}),
            json!({"url": 5, "payload": {}}),
            json!({"url": "https://a.example", "payload": {}, "secret": "x"}),
            json!({"url": "https://a.example", "payload": {}, "event": ""}),
            json!({"url": "https://a.example", "payload": {}, "event": "a\r\nX-Injected: 1"}),
            json!({"url": "https://a.example", "payload": {}, "event": "e".repeat(MAX_EVENT_LEN + 1)}),
        ] {
            assert!(WebhookArgs::parse(&bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
        let client = delivery_client(Arc::new(DestinationPolicy::default())).unwrap();
        let error = client.post("http://localhost:9/").send().await.expect_err("refused");
        assert_eq!(DeliveryFailure::of_error(&error), DeliveryFailure::RefusedDestination);
    }
}
