//! [`UserStore`] on SQLite: one row per verified user in `users`. The table's UNIQUE
//! constraints (email, lowercased username) make `create_user` one insert, and a constraint
//! failure is read back as the field that was taken.

use std::convert::Infallible;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Cached as _, SqliteStore, events, internal};
use crate::domain::{
    Disabled, Email, EventKind, NewUser, PasswordHash, Profile, ProfileChange, UnixMs, User,
    UserId, UserStatus, Username,
};
use crate::store::{CreateUserError, SetEmailError, StoreResult, UpdateProfileError, UserStore};

const COLUMNS: &str = "id, username, email, password_hash, bio, avatar_url, status, last_seen, \
                       friend_ids, created_at, updated_at, username_changed_at, disabled";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let friends: String = row.get(8)?;
    Ok(User {
        id: UserId(row.get(0)?),
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: PasswordHash(row.get(3)?),
        profile: Profile {
            bio: row.get(4)?,
            avatar_url: row.get(5)?,
        },
        status: UserStatus::from_stored(&row.get::<_, String>(6)?),
        last_seen: row.get(7)?,
        friend_ids: serde_json::from_str(&friends).unwrap_or_default(),
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
        username_changed_at: row.get(11)?,
        // A suspension that does not read holds, for good: failing closed.
        disabled: row
            .get::<_, Option<String>>(12)?
            .map(|json| serde_json::from_str(&json).unwrap_or_else(|_| Disabled::unreadable())),
    })
}

/// Reads a constraint failure of `users` back as the field that was taken.
fn taken(e: &rusqlite::Error) -> Option<&'static str> {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            ["email", "username_key", "id"]
                .into_iter()
                .find(|c| msg.contains(&format!("users.{c}")))
        }
        _ => None,
    }
}

/// The one way [`SqliteStore::change_user`] never fails.
fn unwrap_infallible(r: Result<bool, Infallible>) -> bool {
    match r {
        Ok(changed) => changed,
        Err(never) => match never {},
    }
}

impl SqliteStore {
    /// Runs `change` in a transaction that, when it changed the user (`Ok(true)`) and this file
    /// is the event log, also writes `event`; an `Err(E)` from `change` is its refusal, and
    /// nothing is written.
    async fn change_user<E: Send + 'static>(
        &self,
        id: &UserId,
        event: EventKind,
        now: UnixMs,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<Result<bool, E>>
        + Send
        + 'static,
    ) -> StoreResult<Result<bool, E>> {
        let (id, user_events) = (id.clone(), self.user_events);
        let outcome = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let outcome = change(&tx).map_err(internal)?;
                if matches!(outcome, Ok(true)) && user_events {
                    events::record(&tx, now, &id, &event).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(outcome)
            })
            .await?;
        if matches!(outcome, Ok(true)) && self.user_events {
            self.events_written();
        }
        Ok(outcome)
    }

    async fn find_user_where(
        &self,
        column: &'static str,
        value: String,
    ) -> StoreResult<Option<User>> {
        self.call(move |conn| user_where(conn, column, &value).map_err(internal))
            .await
    }

    /// Users whose `column` is one of `values`, in one statement.
    async fn find_users_in(
        &self,
        column: &'static str,
        values: Vec<String>,
    ) -> StoreResult<Vec<User>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        self.call(move |conn| {
            let marks = vec!["?"; values.len()].join(",");
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM users WHERE {column} IN ({marks})"
                ))
                .map_err(internal)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values.iter()), user_from_row)
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: &NewUser, now: UnixMs) -> Result<User, CreateUserError> {
        let user = User {
            id: new.id.clone(),
            username: new.username.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            password_hash: new.password_hash.clone(),
            profile: new.profile.clone(),
            status: UserStatus::Offline,
            last_seen: None,
            friend_ids: Vec::new(),
            created_at: now,
            updated_at: now,
            username_changed_at: None,
            disabled: None,
        };
        let username_key = new.username.key();
        let row = user.clone();
        let user_events = self.user_events;
        self.call(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let inserted = tx.exec(
                "INSERT INTO users (id, username, username_key, email, password_hash, bio, \
                 avatar_url, status, last_seen, friend_ids, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, '[]', ?9, ?9)",
                params![
                    row.id.0,
                    row.username,
                    username_key,
                    row.email,
                    row.password_hash.0,
                    row.profile.bio,
                    row.profile.avatar_url,
                    row.status.as_str(),
                    now
                ],
            );
            if let Err(e) = inserted {
                return Ok(Err(e));
            }
            if user_events {
                events::record(&tx, now, &row.id, &EventKind::UserCreated).map_err(internal)?;
            }
            tx.commit().map_err(internal)?;
            Ok(Ok(()))
        })
        .await?
        .map_err(|e| match taken(&e) {
            Some("email") => CreateUserError::EmailTaken,
            Some("username_key") => CreateUserError::UsernameTaken,
            Some(_) => CreateUserError::IdTaken,
            None => CreateUserError::Store(internal(e)),
        })?;
        if self.user_events {
            self.events_written();
        }
        Ok(user)
    }

    async fn find_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.find_user_where("id", id.0.clone()).await
    }

    async fn find_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.find_user_where("email", email.as_str().to_owned())
            .await
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        self.find_user_where("username_key", username.key()).await
    }

    async fn find_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        self.find_users_in("id", ids.iter().map(|i| i.0.clone()).collect())
            .await
    }

    async fn find_by_usernames(&self, usernames: &[Username]) -> StoreResult<Vec<User>> {
        self.find_users_in(
            "username_key",
            usernames.iter().map(Username::key).collect(),
        )
        .await
    }

    async fn update_profile(
        &self,
        id: &UserId,
        change: &ProfileChange,
        now: UnixMs,
        username_cooldown_ms: i64,
    ) -> Result<User, UpdateProfileError> {
        let (id, change) = (id.clone(), change.clone());
        let user_events = self.user_events;
        let outcome = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let Some(mut user) = tx
                    .row(
                        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
                        params![id.0],
                        user_from_row,
                    )
                    .optional()
                    .map_err(internal)?
                else {
                    return Ok(Err(UpdateProfileError::NotFound));
                };
                let mut fields = Vec::new();
                if let Some(bio) = &change.bio {
                    user.profile.bio = bio.clone();
                    fields.push("bio".to_owned());
                }
                if let Some(url) = &change.avatar_url {
                    user.profile.avatar_url = url.clone();
                    fields.push("avatar_url".to_owned());
                }
                if let Some(name) = change
                    .username
                    .as_ref()
                    .filter(|n| n.as_str() != user.username)
                {
                    if let Some(at) = user.username_changed_at
                        && now < at + username_cooldown_ms
                    {
                        return Ok(Err(UpdateProfileError::UsernameCooldown {
                            retry_at: at + username_cooldown_ms,
                        }));
                    }
                    user.username = name.as_str().to_owned();
                    user.username_changed_at = Some(now);
                    fields.push("username".to_owned());
                    let renamed = tx.exec(
                        "UPDATE users SET username = ?2, username_key = ?3, \
                         username_changed_at = ?4 WHERE id = ?1",
                        params![id.0, user.username, name.key(), now],
                    );
                    if let Err(e) = renamed {
                        return match taken(&e) {
                            Some("username_key") => Ok(Err(UpdateProfileError::UsernameTaken)),
                            _ => Err(internal(e)),
                        };
                    }
                }
                user.updated_at = now;
                tx.exec(
                    "UPDATE users SET bio = ?2, avatar_url = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id.0, user.profile.bio, user.profile.avatar_url, now],
                )
                .map_err(internal)?;
                if user_events && !fields.is_empty() {
                    events::record(&tx, now, &id, &EventKind::UserUpdated { fields })
                        .map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(Ok(user))
            })
            .await??;
        if self.user_events {
            self.events_written();
        }
        Ok(outcome)
    }

    async fn set_presence(&self, id: &UserId, status: UserStatus, now: UnixMs) -> StoreResult<()> {
        let id = id.0.clone();
        self.call(move |conn| {
            conn.exec(
                "UPDATE users SET status = ?2, last_seen = ?3 WHERE id = ?1",
                params![id, status.as_str(), now],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn set_password(
        &self,
        id: &UserId,
        hash: &PasswordHash,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let (row, hash) = (id.0.clone(), hash.0.clone());
        self.change_user(id, EventKind::PasswordChanged, now, move |tx| {
            tx.exec(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                params![row, hash, now],
            )
            .map(|n| Ok::<_, Infallible>(n == 1))
        })
        .await
        .map(unwrap_infallible)
    }

    async fn set_disabled(
        &self,
        id: &UserId,
        disabled: Option<&Disabled>,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let stored = disabled
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| {
                crate::store::StoreError::Internal(format!("cannot write a suspension: {e}"))
            })?;
        let kind = match disabled {
            Some(_) => EventKind::UserDisabled,
            None => EventKind::UserEnabled,
        };
        let row = id.0.clone();
        self.change_user(id, kind, now, move |tx| {
            tx.exec(
                "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
                params![row, stored, now],
            )
            .map(|n| Ok::<_, Infallible>(n == 1))
        })
        .await
        .map(unwrap_infallible)
    }

    async fn delete_user(&self, id: &UserId, now: UnixMs) -> StoreResult<bool> {
        let row = id.0.clone();
        self.change_user(id, EventKind::UserDeleted, now, move |tx| {
            let deleted = tx.exec("DELETE FROM users WHERE id = ?1", params![row])? == 1;
            for table in [
                "totp_factors",
                "recovery_codes",
                "passkeys",
                "user_presence",
            ] {
                tx.exec(
                    &format!("DELETE FROM {table} WHERE user_id = ?1"),
                    params![row],
                )?;
            }
            Ok(Ok::<_, Infallible>(deleted))
        })
        .await
        .map(unwrap_infallible)
    }

    async fn set_email(
        &self,
        id: &UserId,
        email: &Email,
        now: UnixMs,
    ) -> Result<(), SetEmailError> {
        let (row, email) = (id.0.clone(), email.as_str().to_owned());
        let kind = EventKind::UserUpdated {
            fields: vec!["email".into()],
        };
        let changed = self
            .change_user(id, kind, now, move |tx| {
                match tx.exec(
                    "UPDATE users SET email = ?2, updated_at = ?3 WHERE id = ?1",
                    params![row, email, now],
                ) {
                    Ok(n) => Ok(Ok(n == 1)),
                    Err(e) if taken(&e) == Some("email") => Ok(Err(SetEmailError::EmailTaken)),
                    Err(e) => Err(e),
                }
            })
            .await??;
        if changed {
            Ok(())
        } else {
            Err(SetEmailError::NotFound)
        }
    }
}

/// The user whose `column` (a unique one: id, email, username_key) is `value`.
pub(super) fn user_where(
    conn: &Connection,
    column: &'static str,
    value: &str,
) -> rusqlite::Result<Option<User>> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM users WHERE {column} = ?1"),
        params![value],
        user_from_row,
    )
    .optional()
}
