//! Notification email through SMTP (`lettre`), configured by `integrations.smtp`.

use dartwing_core::config::{SmtpConfig, SmtpSecurity};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Sends plain-text notification emails.
pub struct Mailer {
    config: SmtpConfig,
}

impl Mailer {
    /// A mailer for `config`; without `host` every send is skipped with a log line.
    pub fn new(config: &SmtpConfig) -> Self {
        Self { config: config.clone() }
    }

    fn transport(&self, host: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let builder = match self.config.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("invalid SMTP host: {e}"))?,
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| format!("invalid SMTP host: {e}"))?
            }
        };
        let mut builder = builder
            .port(self.config.port)
            .timeout(Some(Duration::from_millis(self.config.timeout_ms)));
        if let (Some(user), Some(password)) = (&self.config.username, &self.config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(builder.build())
    }

    /// Sends `subject`/`body` to each recipient; returns how many were sent. Errors are
    /// transient (the job retries).
    pub async fn send_all(&self, recipients: &[String], subject: &str, body: &str) -> Result<usize, String> {
        let Some(host) = self.config.host.as_deref() else {
            tracing::warn!(
                recipients = recipients.len(),
                "integrations.smtp.host is unset; notification email skipped"
            );
            return Ok(0);
        };
        let from: Mailbox = self
            .config
            .from
            .parse()
            .map_err(|e| format!("invalid integrations.smtp.from: {e}"))?;
        let transport = self.transport(host)?;
        let mut sent = 0;
        for recipient in recipients {
            let to: Mailbox = match recipient.parse() {
                Ok(to) => to,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unparsable recipient address");
                    continue;
                }
            };
            let message = Message::builder()
                .from(from.clone())
                .to(to)
                .subject(subject)
                .body(body.to_string())
                .map_err(|e| format!("cannot build the email: {e}"))?;
            transport
                .send(message)
                .await
                .map_err(|e| format!("SMTP delivery failed: {e}"))?;
            sent += 1;
        }
        Ok(sent)
    }
}
