use std::{sync::Arc, time::Duration};

use rand::Rng;
use tokio::sync::{Notify, watch};

use super::{MailError, Mailer, Outbox, OutgoingMail};
use crate::crypto::MailSealer;
use crate::domain::now_ms;
use crate::store::{MailQueue, QueuedMail};

/// How the worker retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries before a message is moved to the dead letters.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles per try, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long a claimed message is reserved for one send.
    pub lease: Duration,
}

impl RetryPolicy {
    fn delay(&self, attempts: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let jitter = rand::rng().random_range(0.8..1.2);
        capped.mul_f64(jitter)
    }
}

/// Drains the mail queue: claim, open, send, then complete / retry later / dead-letter.
pub struct MailWorker {
    queue: Arc<dyn MailQueue>,
    sealer: Arc<MailSealer>,
    mailer: Arc<dyn Mailer>,
    policy: RetryPolicy,
    wake: Arc<Notify>,
}

impl MailWorker {
    pub fn new(
        outbox: &Outbox,
        queue: Arc<dyn MailQueue>,
        sealer: Arc<MailSealer>,
        mailer: Arc<dyn Mailer>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            queue,
            sealer,
            mailer,
            policy,
            wake: outbox.waker(),
        }
    }

    /// Runs until `shutdown` turns true; a message being sent then is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self
                .queue
                .claim_due(now_ms(), self.policy.lease.as_millis() as i64)
                .await
            {
                Ok(Some(mail)) => {
                    self.deliver(mail).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "mail queue unavailable"),
            }
            let idle = match self.queue.next_due().await {
                Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(10, 1000) as u64),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn deliver(&self, queued: QueuedMail) {
        let mail: Result<OutgoingMail, String> = self
            .sealer
            .open(&queued.sealed)
            .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
        let outcome = match mail {
            Ok(mail) => self.mailer.send(&mail).await,
            Err(e) => Err(MailError::Permanent(e)),
        };
        let result = match outcome {
            Ok(()) => {
                tracing::debug!(mail_id = %queued.id, attempts = queued.attempts, "mail sent");
                self.queue.complete(&queued.id).await
            }
            Err(MailError::Transient(e)) if queued.attempts < self.policy.max_attempts => {
                let delay = self.policy.delay(queued.attempts);
                tracing::warn!(mail_id = %queued.id, attempts = queued.attempts, error = %e, retry_in_ms = delay.as_millis() as u64, "mail not sent, will retry");
                self.queue
                    .retry_at(&queued.id, now_ms() + delay.as_millis() as i64, &e)
                    .await
            }
            Err(e) => {
                let moved = self.queue.dead_letter(&queued.id, &e.to_string()).await;
                let dead_letters = self.queue.dead_letter_count().await.unwrap_or_default();
                tracing::error!(mail_id = %queued.id, attempts = queued.attempts, error = %e, dead_letters, "mail moved to dead letters");
                moved
            }
        };
        if let Err(e) = result {
            tracing::warn!(mail_id = %queued.id, error = %e, "cannot record the mail outcome; the lease will run out and it is tried again");
        }
    }
}
