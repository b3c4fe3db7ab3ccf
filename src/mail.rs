//! Sending Latchkey's email (sign-in links) through SMTP with `lettre`: `smtps://` for implicit
//! TLS, `smtp://…?tls=required` for STARTTLS, plain `smtp://` for local sinks. Without
//! `LATCHKEY_SMTP_URL` messages are written to the log, so development needs no mail server.
//! Bodies are rendered from `templates/email/` (an HTML and a text part).

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};

use crate::error::AppError;

/// Where mail goes.
pub enum Mailer {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    Log { from: Mailbox },
}

/// A rendered message.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mailer {
    /// Builds the mailer from `LATCHKEY_SMTP_URL` and `LATCHKEY_MAIL_FROM`.
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Mailer> {
        let from: Mailbox = from.parse().map_err(|e| anyhow::anyhow!("LATCHKEY_MAIL_FROM: {e}"))?;
        Ok(match smtp_url {
            Some(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("LATCHKEY_SMTP_URL: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build(),
                from,
            },
            None => Mailer::Log { from },
        })
    }

    /// Sends `mail`; a failure is `Unavailable` with the cause logged (never the body).
    pub async fn send(&self, mail: Mail) -> Result<(), AppError> {
        let to: Mailbox =
            mail.to.parse().map_err(|_| AppError::Unprocessable("The email address is not valid.".into()))?;
        match self {
            Mailer::Log { .. } => {
                // Development mode only: without SMTP the link must reach the developer somehow.
                tracing::info!(subject = %mail.subject, "no LATCHKEY_SMTP_URL: email written to the log instead\n{}", mail.text);
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("building email: {e}")))?;
                transport.send(message).await.map(drop).map_err(|e| {
                    tracing::warn!(error = %e, "sending email failed");
                    AppError::Unavailable(format!("smtp: {e}"))
                })
            }
        }
    }
}
