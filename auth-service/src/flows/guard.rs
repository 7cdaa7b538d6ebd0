//! The limits around one password check (login and ChangePassword): hard counters that refuse,
//! a slowdown that only waits (see `login.rs` for why each is keyed as it is).

use std::time::Duration;

use super::{AuthCore, FlowError};
use crate::domain::now_ms;

/// The limits around one password check. The first hard counter is the pair (the device)
/// that a right password clears.
pub(super) struct PasswordGuard {
    /// (counter key, most wrong passwords per window).
    pub(super) hard: Vec<(String, u32)>,
    /// Wrong passwords from anywhere, for the slowdown.
    pub(super) slowdown: Option<String>,
}

impl PasswordGuard {
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

    /// After the check: a wrong password is counted on every counter (one atomic step each),
    /// a right one clears the device's counter. Past a hard limit the answer is
    /// LOGIN_RATE_LIMITED whatever the result.
    pub(super) async fn record(&self, core: &AuthCore, verified: bool) -> Result<(), FlowError> {
        let (limits, now, window) = (&core.stores.limits, now_ms(), core.policy.login.window_ms);
        if verified {
            self.refuse_if_over(core, now).await?;
            if let Some((pair, _)) = self.hard.first() {
                limits.clear(pair).await?;
            }
            return Ok(());
        }
        if let Some(key) = &self.slowdown {
            // No limit of its own: it only feeds the slowdown.
            let _ = limits.hit(key, u32::MAX, window, now).await?;
        }
        for (key, limit) in &self.hard {
            if let Err(retry_at) = limits.hit(key, *limit, window, now).await? {
                return Err(FlowError::LoginRateLimited { retry_at });
            }
        }
        Ok(())
    }

    async fn refuse_if_over(&self, core: &AuthCore, now: i64) -> Result<(), FlowError> {
        for (key, limit) in &self.hard {
            let (count, ends) = core.stores.limits.count(key, now).await?;
            if count >= *limit {
                return Err(FlowError::LoginRateLimited { retry_at: ends });
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
