//! GetCurrentUser's four reads as one job on the SQLite thread, in one transaction.

use async_trait::async_trait;

use super::{SqliteStore, factors, internal, presence, sessions, users};
use crate::domain::{SessionId, UnixMs, UserId};
use crate::store::{CurrentUserRead, CurrentUserStore, StoreError, StoreResult};

#[async_trait]
impl CurrentUserStore for SqliteStore {
    async fn current_user(
        &self,
        session: &SessionId,
        user: &UserId,
        now: UnixMs,
    ) -> StoreResult<CurrentUserRead> {
        let (session, user) = (session.0.clone(), user.0.clone());
        self.call(move |conn| {
            // One snapshot: a session and a user read apart could straddle a change.
            let tx = conn.transaction().map_err(internal)?;
            let read = CurrentUserRead {
                session: sessions::live_session(&tx, &session, now).map_err(internal)?,
                user: users::user_where(&tx, "id", &user).map_err(internal)?,
                factors: factors::summary(&tx, &user).map_err(internal)?,
                presence: presence::presence_of(&tx, vec![user], now)
                    .map_err(internal)?
                    .pop()
                    .ok_or_else(|| StoreError::Internal("no presence read for the user".into()))?,
            };
            tx.commit().map_err(internal)?;
            Ok(read)
        })
        .await
    }
}
