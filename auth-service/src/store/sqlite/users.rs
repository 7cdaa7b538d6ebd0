//! [`UserStore`] on SQLite: one row per verified user in `users`. The table's UNIQUE
//! constraints (email, lowercased username) make `create_user` one insert, and a constraint
//! failure is read back as the field that was taken.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, events, internal};
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
        disabled: row.get::<_, Option<String>>(12)?.map(|json| {
            serde_json::from_str(&json).unwrap_or(Disabled {
                reason: "unreadable".into(),
                at: 0,
                until: None,
            })
        }),
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

impl SqliteStore {
    async fn find_user_where(
        &self,
        column: &'static str,
        value: String,
    ) -> StoreResult<Option<User>> {
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM users WHERE {column} = ?1"),
                params![value],
                user_from_row,
            )
            .optional()
            .map_err(internal)
        })
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
            let inserted = tx.execute(
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
                    .query_row(
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
                    let renamed = tx.execute(
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
                tx.execute(
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
            conn.execute(
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
        let (id, hash) = (id.clone(), hash.0.clone());
        let user_events = self.user_events;
        let changed = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let changed = tx
                    .execute(
                        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                        params![id.0, hash, now],
                    )
                    .map_err(internal)?
                    == 1;
                if changed && user_events {
                    events::record(&tx, now, &id, &EventKind::PasswordChanged).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(changed)
            })
            .await?;
        if changed && self.user_events {
            self.events_written();
        }
        Ok(changed)
    }

    async fn set_disabled(
        &self,
        id: &UserId,
        disabled: Option<&Disabled>,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let id = id.clone();
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
        let user_events = self.user_events;
        let changed = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let changed = tx
                    .execute(
                        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
                        params![id.0, stored, now],
                    )
                    .map_err(internal)?
                    == 1;
                if changed && user_events {
                    events::record(&tx, now, &id, &kind).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(changed)
            })
            .await?;
        if changed && self.user_events {
            self.events_written();
        }
        Ok(changed)
    }

    async fn delete_user(&self, id: &UserId, now: UnixMs) -> StoreResult<bool> {
        let id = id.clone();
        let user_events = self.user_events;
        let deleted = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let deleted = tx
                    .execute("DELETE FROM users WHERE id = ?1", params![id.0])
                    .map_err(internal)?
                    == 1;
                for table in [
                    "totp_factors",
                    "recovery_codes",
                    "passkeys",
                    "user_presence",
                ] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE user_id = ?1"),
                        params![id.0],
                    )
                    .map_err(internal)?;
                }
                if deleted && user_events {
                    events::record(&tx, now, &id, &EventKind::UserDeleted).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(deleted)
            })
            .await?;
        if deleted && self.user_events {
            self.events_written();
        }
        Ok(deleted)
    }

    async fn set_email(
        &self,
        id: &UserId,
        email: &Email,
        now: UnixMs,
    ) -> Result<(), SetEmailError> {
        let (id, email) = (id.clone(), email.as_str().to_owned());
        let user_events = self.user_events;
        let changed = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let changed = tx.execute(
                    "UPDATE users SET email = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.0, email, now],
                );
                let changed = match changed {
                    Ok(n) => n == 1,
                    Err(e) if taken(&e) == Some("email") => {
                        return Ok(Err(SetEmailError::EmailTaken));
                    }
                    Err(e) => return Err(internal(e)),
                };
                if changed && user_events {
                    let kind = EventKind::UserUpdated {
                        fields: vec!["email".into()],
                    };
                    events::record(&tx, now, &id, &kind).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(Ok(changed))
            })
            .await??;
        if !changed {
            return Err(SetEmailError::NotFound);
        }
        if self.user_events {
            self.events_written();
        }
        Ok(())
    }
}
