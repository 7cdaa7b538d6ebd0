//! Outgoing mail. Flows put a message in the durable queue ([`Outbox`]); a worker sends it off
//! the request path with retries and backoff through a [`Mailer`]. The development mailer
//! writes .eml files into a folder so a person can read the code.

mod eml;
mod smtp;
mod templates;
mod worker;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use eml::EmlMailer;
pub use smtp::{SmtpConfig, SmtpMailer, SmtpTls};
pub use templates::{FactorChange, Templates};
pub use worker::{MailWorker, RetryPolicy};

use crate::crypto::Sealer;
use crate::domain::{UnixMs, now_ms};
use crate::store::{MailQueue, StoreResult};

/// A message ready to send: a text part and an HTML part.
#[derive(Clone, Serialize, Deserialize)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// When the message stops being worth sending (a code mail: when its code expires). The
    /// worker moves a message it could not send by then to the dead letters instead.
    #[serde(default)]
    pub expires_at: Option<UnixMs>,
}

impl OutgoingMail {
    /// The same message, not sent after `at`.
    pub fn expiring_at(self, at: UnixMs) -> Self {
        Self {
            expires_at: Some(at),
            ..self
        }
    }
}

impl std::fmt::Debug for OutgoingMail {
    // The bodies carry codes: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth another try later (relay down, timeout).
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Will never succeed (bad address): moved aside at once.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Delivers one message.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

/// The request side of the queue: seals a message, stores it, wakes the worker.
#[derive(Clone)]
pub struct Outbox {
    queue: Arc<dyn MailQueue>,
    sealer: Arc<Sealer>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(queue: Arc<dyn MailQueue>, sealer: Arc<Sealer>) -> Self {
        Self {
            queue,
            sealer,
            wake: Arc::new(Notify::new()),
        }
    }

    pub async fn enqueue(&self, mail: &OutgoingMail) -> StoreResult<()> {
        let json = serde_json::to_vec(mail).map_err(|e| {
            crate::store::StoreError::Internal(format!("cannot write a queued mail: {e}"))
        })?;
        self.queue
            .enqueue(&self.sealer.seal(&json), now_ms())
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The worker that sends what this outbox queues, through `mailer`.
    pub fn worker(&self, mailer: Arc<dyn Mailer>, policy: RetryPolicy) -> MailWorker {
        MailWorker::new(
            self.queue.clone(),
            self.sealer.clone(),
            mailer,
            policy,
            self.wake.clone(),
        )
    }
}
