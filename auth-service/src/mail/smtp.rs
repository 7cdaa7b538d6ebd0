//! The production mailer: lettre's SMTP transport to the relay set by `SMTP_*` (TLS, STARTTLS
//! or plain). A 5xx reply is a permanent failure, anything else transient, and the relay's error
//! text loses the addresses it quotes before it is logged or stored.

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor, message::Mailbox,
    transport::smtp::authentication::Credentials,
};
use secrecy::{ExposeSecret, SecretString};

use super::{MailError, Mailer, OutgoingMail, eml::build_message};

/// How the connection to the relay is secured (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

/// The relay and how to reach it (`SMTP_*`).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: SmtpTls,
    pub timeout: std::time::Duration,
}

/// Sends through an SMTP relay with lettre (pooled connections, TLS as configured).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig, from: &str) -> Result<Self, String> {
        let from = from
            .parse()
            .map_err(|e| format!("{from:?} is not a mailbox: {e}"))?;
        let builder = match config.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
        }
        .map_err(|e| format!("cannot set up SMTP for {}: {e}", config.host))?;
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some(user) = &config.username {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: the relay will never take this message; anything else may pass later.
            Err(e) if e.is_permanent() => Err(MailError::Permanent(without_addresses(&e))),
            Err(e) => Err(MailError::Transient(without_addresses(&e))),
        }
    }
}

/// A relay's error text without the addresses it quotes (`550 <ana@example.com>: unknown`):
/// it is logged and kept with the message, where no raw address may go.
fn without_addresses(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split(' ')
        .map(|word| {
            if word.contains('@') {
                "<address>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_errors_lose_their_addresses() {
        let text =
            without_addresses(&"permanent error (550): 5.1.1 <ana@example.com>: no such user");
        assert_eq!(text, "permanent error (550): 5.1.1 <address> no such user");
        assert!(!text.contains('@'));
    }
}
