//! The limits around one secret check (a password in login and ChangePassword, a second factor
//! in an MFA challenge): hard counters that refuse, a slowdown that only waits (see `login.rs`
//! and `mfa.rs` for why each is keyed as it is).

use std::time::Duration;

use super::{AuthCore, FlowError};
use crate::domain::{UnixMs, now_ms};

/// One hard counter: its key, the most wrong guesses per window, and the window.
pub(super) struct Limit {
    pub(super) key: String,
    pub(super) max: u32,
    pub(super) window_ms: i64,
}

/// The limits around one secret check. The first hard counter is the one a right answer
/// clears (the device's pair, for passwords).
pub(super) struct Guard {
    pub(super) hard: Vec<Limit>,
    /// Wrong passwords from anywhere, for the slowdown (in the login window).
    pub(super) slowdown: Option<String>,
    /// The answer past a hard limit.
    pub(super) refused: fn(UnixMs) -> FlowError,
    /// Whether a right answer clears the first counter (a device's pair of wrong passwords);
    /// a budget that must hold for its whole window (second factors per day) is never cleared.
    pub(super) right_answer_clears: bool,
}

impl Guard {
    /// Before the check: refuses at once (no hash spent) when a hard limit is reached, and
    /// waits while the account is being guessed at from many places.
    pub(super) async fn admit(&self, core: &AuthCore) -> Result<(), FlowError> {
        let now = now_ms();
        self.refuse_if_over(core, now).await?;
        let Some(slowdown_key) = &self.slowdown else {
            return Ok(());
        };
        let (failures, _) = core.stores.limits.count(slowdown_key, now).await?;
        let delay = slowdown(
            failures,
            core.policy.login.slowdown_after,
            core.policy.login.slowdown_max,
        );
        if !delay.is_zero() {
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                failures,
                "account under password guessing; slowing down"
            );
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// After the check: a wrong answer is counted on every counter (one atomic step each), a
    /// right one clears the first counter (when `right_answer_clears`). Past a hard limit the answer is `refused` whatever
    /// the result, so a burst of guesses learns no more than the limit allows.
    pub(super) async fn record(&self, core: &AuthCore, verified: bool) -> Result<(), FlowError> {
        let (limits, now) = (&core.stores.limits, now_ms());
        if verified {
            self.refuse_if_over(core, now).await?;
            if let Some(first) = self.hard.first().filter(|_| self.right_answer_clears) {
                limits.clear(&first.key).await?;
            }
            return Ok(());
        }
        if let Some(key) = &self.slowdown {
            // No limit of its own: it only feeds the slowdown.
            let window = core.policy.login.window_ms;
            let _ = limits.hit(key, u32::MAX, window, now).await?;
        }
        for limit in &self.hard {
            if let Err(retry_at) = limits
                .hit(&limit.key, limit.max, limit.window_ms, now)
                .await?
            {
                return Err((self.refused)(retry_at));
            }
        }
        Ok(())
    }

    /// Wrong guesses left on the tightest counter (for the caller's information).
    pub(super) async fn remaining(&self, core: &AuthCore) -> Result<u32, FlowError> {
        let now = now_ms();
        let mut left = u32::MAX;
        for limit in &self.hard {
            let (count, _) = core.stores.limits.count(&limit.key, now).await?;
            left = left.min(limit.max.saturating_sub(count));
        }
        Ok(left)
    }

    async fn refuse_if_over(&self, core: &AuthCore, now: i64) -> Result<(), FlowError> {
        for limit in &self.hard {
            let (count, ends) = core.stores.limits.count(&limit.key, now).await?;
            if count >= limit.max {
                return Err((self.refused)(ends));
            }
        }
        Ok(())
    }
}

/// The wait before a check on an account with `failures` wrong passwords in the window: none
/// below `after`, then 500 ms doubling every further `after` failures, at most `max`.
fn slowdown(failures: u32, after: u32, max: Duration) -> Duration {
    if after == 0 || failures < after {
        return Duration::ZERO;
    }
    let doublings = ((failures - after) / after).min(16);
    Duration::from_millis(500)
        .saturating_mul(1 << doublings)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowdown_grows_and_is_capped() {
        let max = Duration::from_secs(5);
        assert_eq!(slowdown(19, 20, max), Duration::ZERO);
        assert_eq!(slowdown(20, 20, max), Duration::from_millis(500));
        assert_eq!(slowdown(40, 20, max), Duration::from_secs(1));
        assert_eq!(slowdown(60, 20, max), Duration::from_secs(2));
        assert_eq!(slowdown(10_000, 20, max), max);
        assert_eq!(slowdown(u32::MAX, 1, max), max);
        assert_eq!(slowdown(5, 0, max), Duration::ZERO);
    }
}
