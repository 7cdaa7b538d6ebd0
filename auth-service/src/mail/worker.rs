//! The mail worker: drains the durable queue off the request path, up to `MAIL_CONCURRENCY`
//! messages at once, retrying transient failures with backoff and dead-lettering the rest. A
//! claim is a lease in the store, so two instances never send one message at the same time; a
//! code mail whose code expired while it waited is dead-lettered, not sent (README, "Mail").

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{MailError, Mailer, OutgoingMail};
use crate::crypto::Sealer;
use crate::domain::now_ms;
use crate::store::{MailQueue, QueuedMail};

/// How often the worker deletes dead letters older than [`RetryPolicy::dead_letter_ttl`].
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How long a claimed message is reserved for one send: far longer than a send takes
/// (SMTP_TIMEOUT, 10 s by default), so no other instance claims it meanwhile.
const LEASE: Duration = Duration::from_secs(60);

/// How the worker sends and retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries before a message is moved to the dead letters.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles per try, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Messages sent at once by this instance, so one slow address cannot hold up the queue.
    pub concurrency: usize,
    /// How long a dead letter is kept for an operator.
    pub dead_letter_ttl: Duration,
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

/// Drains the mail queue: claim, open, send, then complete / retry later / dead-letter. Up to
/// `concurrency` messages are in flight at once, taken oldest first.
pub struct MailWorker {
    inner: Arc<Inner>,
    wake: Arc<Notify>,
}

struct Inner {
    queue: Arc<dyn MailQueue>,
    sealer: Arc<Sealer>,
    mailer: Arc<dyn Mailer>,
    policy: RetryPolicy,
}

impl MailWorker {
    pub(super) fn new(
        queue: Arc<dyn MailQueue>,
        sealer: Arc<Sealer>,
        mailer: Arc<dyn Mailer>,
        policy: RetryPolicy,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue,
                sealer,
                mailer,
                policy,
            }),
            wake,
        }
    }

    /// Runs until `shutdown` is cancelled; messages being sent then are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let inner = &self.inner;
        let permits = Arc::new(Semaphore::new(inner.policy.concurrency.max(1)));
        let mut sending = JoinSet::new();
        let mut last_purge: Option<Instant> = None;
        loop {
            while sending.try_join_next().is_some() {}
            if shutdown.is_cancelled() {
                break;
            }
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                inner.purge_dead_letters().await;
                last_purge = Some(Instant::now());
            }
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shutdown.cancelled() => break,
            };
            match inner
                .queue
                .claim_due(now_ms(), LEASE.as_millis() as i64)
                .await
            {
                Ok(Some(mail)) => {
                    let inner = inner.clone();
                    sending.spawn(async move {
                        inner.deliver(mail).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "mail queue unavailable"),
            }
            drop(permit);
            let idle = match inner.queue.next_due().await {
                Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(10, 1000) as u64),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                () = shutdown.cancelled() => {}
            }
        }
        while sending.join_next().await.is_some() {}
    }
}

impl Inner {
    async fn purge_dead_letters(&self) {
        let before = now_ms() - self.policy.dead_letter_ttl.as_millis() as i64;
        match self.queue.purge_dead_letters(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "dead letters past their keep time deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot purge dead letters"),
        }
    }

    async fn deliver(&self, queued: QueuedMail) {
        let mail: Result<OutgoingMail, String> = self
            .sealer
            .open(&queued.sealed)
            .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
        let outcome = match mail {
            // A code that expired in the queue would only confuse its reader.
            Ok(mail) if mail.expires_at.is_some_and(|at| at <= now_ms()) => Err(
                MailError::Permanent("its code expired before it could be sent".into()),
            ),
            // A send must end well inside its lease, or the lease runs out mid-send and the
            // message is claimed (and sent) again.
            Ok(mail) => {
                let budget = LEASE.mul_f64(0.75);
                tokio::time::timeout(budget, self.mailer.send(&mail))
                    .await
                    .unwrap_or_else(|_| {
                        Err(MailError::Transient(format!(
                            "the relay did not take the message within {budget:?}"
                        )))
                    })
            }
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
                let moved = self
                    .queue
                    .dead_letter(&queued.id, &e.to_string(), now_ms())
                    .await;
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
