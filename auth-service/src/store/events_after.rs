//! Users kept in a store other than the event log (MongoDB, or SQLite while the log is in
//! Redis): their events are appended to the log right after the change. Unlike the session
//! events, which every backend writes in the change's own atomic step, a process that dies
//! between the two loses the user event (never a session revocation).

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    CreateUserError, EventLog, FactorStore, KeyRingStore, PasskeyRecord, PasskeyUse, SecurityLog,
    SetEmailError, StoreResult, TotpFactor, UpdateProfileError, UserStore,
};
use crate::domain::{
    AuthMethod, CodeHash, Disabled, Email, EventKind, FactorSummary, NewUser, PasswordHash,
    ProfileChange, SecurityEvent, SecurityKind, UnixMs, User, UserId, UserStatus, Username,
};

/// A [`UserStore`] (and [`FactorStore`]) whose changes are followed by their events in `log`.
pub struct EventsAfter<S: ?Sized> {
    pub users: Arc<S>,
    pub log: Arc<dyn EventLog>,
}

impl<S: ?Sized> EventsAfter<S> {
    async fn append(&self, user_id: &UserId, kind: EventKind, now: UnixMs) {
        if let Err(e) = self.log.append(user_id, &kind, now).await {
            tracing::error!(error = %e, user_id = %user_id.0, event = kind.type_name(), "cannot record a user event");
        }
    }
}

#[async_trait]
impl<S: SecurityLog + ?Sized> SecurityLog for EventsAfter<S> {
    async fn record_security_event(&self, event: &SecurityEvent) -> StoreResult<()> {
        self.users.record_security_event(event).await
    }

    async fn security_events(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: usize,
        kinds: &[SecurityKind],
    ) -> StoreResult<Vec<SecurityEvent>> {
        self.users.security_events(user, before, limit, kinds).await
    }

    async fn trim_security_events(&self, before: UnixMs) -> StoreResult<u64> {
        self.users.trim_security_events(before).await
    }
}

#[async_trait]
impl<S: KeyRingStore + ?Sized> KeyRingStore for EventsAfter<S> {
    async fn signing_key_ring(&self) -> StoreResult<super::SigningKeyRing> {
        self.users.signing_key_ring().await
    }

    async fn replace_signing_key_ring(
        &self,
        expected: u64,
        keys: &[super::StoredSigningKey],
    ) -> StoreResult<bool> {
        self.users.replace_signing_key_ring(expected, keys).await
    }
}

#[async_trait]
impl<S: FactorStore + ?Sized> FactorStore for EventsAfter<S> {
    async fn totp(&self, user: &UserId) -> StoreResult<Option<TotpFactor>> {
        self.users.totp(user).await
    }

    async fn factor_summary(&self, user: &UserId) -> StoreResult<FactorSummary> {
        self.users.factor_summary(user).await
    }

    async fn enable_totp(
        &self,
        user: &UserId,
        factor: &TotpFactor,
        recovery: &[CodeHash],
    ) -> StoreResult<bool> {
        let enabled = self.users.enable_totp(user, factor, recovery).await?;
        if enabled {
            let kind = EventKind::FactorEnabled {
                factor: AuthMethod::Totp,
            };
            self.append(user, kind, factor.enabled_at).await;
        }
        Ok(enabled)
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        self.users.use_totp_step(user, step).await
    }

    async fn use_recovery_code(&self, user: &UserId, code: &CodeHash) -> StoreResult<bool> {
        self.users.use_recovery_code(user, code).await
    }

    async fn replace_recovery_codes(&self, user: &UserId, codes: &[CodeHash]) -> StoreResult<bool> {
        self.users.replace_recovery_codes(user, codes).await
    }

    async fn disable_totp(&self, user: &UserId, now: UnixMs) -> StoreResult<bool> {
        let disabled = self.users.disable_totp(user, now).await?;
        if disabled {
            let kind = EventKind::FactorDisabled {
                factor: AuthMethod::Totp,
            };
            self.append(user, kind, now).await;
        }
        Ok(disabled)
    }

    async fn passkeys(&self, user: &UserId) -> StoreResult<Vec<PasskeyRecord>> {
        self.users.passkeys(user).await
    }

    async fn add_passkey(
        &self,
        user: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
    ) -> StoreResult<bool> {
        let added = self.users.add_passkey(user, passkey, max).await?;
        if added {
            let kind = EventKind::FactorEnabled {
                factor: AuthMethod::Passkey,
            };
            self.append(user, kind, passkey.created_at).await;
        }
        Ok(added)
    }

    async fn use_passkey(&self, user: &UserId, used: &PasskeyUse<'_>) -> StoreResult<bool> {
        self.users.use_passkey(user, used).await
    }

    async fn delete_passkey(&self, user: &UserId, id: &str, now: UnixMs) -> StoreResult<bool> {
        let deleted = self.users.delete_passkey(user, id, now).await?;
        if deleted {
            let kind = EventKind::FactorDisabled {
                factor: AuthMethod::Passkey,
            };
            self.append(user, kind, now).await;
        }
        Ok(deleted)
    }
}

#[async_trait]
impl<S: UserStore + ?Sized> UserStore for EventsAfter<S> {
    async fn create_user(&self, new: &NewUser, now: UnixMs) -> Result<User, CreateUserError> {
        let user = self.users.create_user(new, now).await?;
        self.append(&user.id, EventKind::UserCreated, now).await;
        Ok(user)
    }

    async fn find_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.users.find_by_id(id).await
    }

    async fn find_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.users.find_by_email(email).await
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        self.users.find_by_username(username).await
    }

    async fn find_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        self.users.find_by_ids(ids).await
    }

    async fn find_by_usernames(&self, usernames: &[Username]) -> StoreResult<Vec<User>> {
        self.users.find_by_usernames(usernames).await
    }

    async fn update_profile(
        &self,
        id: &UserId,
        change: &ProfileChange,
        now: UnixMs,
        username_cooldown_ms: i64,
    ) -> Result<User, UpdateProfileError> {
        let user = self
            .users
            .update_profile(id, change, now, username_cooldown_ms)
            .await?;
        // A username set to the one it was is no change (the store leaves it unstamped).
        let fields = change
            .fields()
            .into_iter()
            .filter(|f| *f != "username" || user.username_changed_at == Some(now))
            .map(str::to_owned)
            .collect();
        self.append(id, EventKind::UserUpdated { fields }, now)
            .await;
        Ok(user)
    }

    async fn set_presence(&self, id: &UserId, status: UserStatus, now: UnixMs) -> StoreResult<()> {
        self.users.set_presence(id, status, now).await
    }

    async fn set_password(
        &self,
        id: &UserId,
        hash: &PasswordHash,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let changed = self.users.set_password(id, hash, now).await?;
        if changed {
            self.append(id, EventKind::PasswordChanged, now).await;
        }
        Ok(changed)
    }

    async fn set_email(
        &self,
        id: &UserId,
        email: &Email,
        now: UnixMs,
    ) -> Result<(), SetEmailError> {
        self.users.set_email(id, email, now).await?;
        let kind = EventKind::UserUpdated {
            fields: vec!["email".into()],
        };
        self.append(id, kind, now).await;
        Ok(())
    }

    async fn delete_user(&self, id: &UserId, now: UnixMs) -> StoreResult<bool> {
        let deleted = self.users.delete_user(id, now).await?;
        if deleted {
            self.append(id, EventKind::UserDeleted, now).await;
        }
        Ok(deleted)
    }

    async fn set_disabled(
        &self,
        id: &UserId,
        disabled: Option<&Disabled>,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let changed = self.users.set_disabled(id, disabled, now).await?;
        if changed {
            let kind = match disabled {
                Some(_) => EventKind::UserDisabled,
                None => EventKind::UserEnabled,
            };
            self.append(id, kind, now).await;
        }
        Ok(changed)
    }
}
