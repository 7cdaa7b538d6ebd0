//! [`UserStore`] on SQLite: one row per verified user in `users`. The table's UNIQUE
//! constraints (email, lowercased username) make `create_user` one insert, and a constraint
//! failure is read back as the field that was taken.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, internal};
use crate::domain::{
    Email, NewUser, PasswordHash, Profile, UnixMs, User, UserId, UserStatus, Username,
};
use crate::store::{CreateUserError, StoreResult, UserStore};

const COLUMNS: &str = "id, username, email, password_hash, bio, avatar_url, status, last_seen, \
                       friend_ids, created_at, updated_at";

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
    })
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
        };
        let username_key = new.username.key();
        let row = user.clone();
        self.call(move |conn| {
            let inserted = conn.execute(
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
            Ok(inserted)
        })
        .await?
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, Some(msg))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                if msg.contains("users.email") {
                    CreateUserError::EmailTaken
                } else if msg.contains("users.username_key") {
                    CreateUserError::UsernameTaken
                } else if msg.contains("users.id") {
                    CreateUserError::IdTaken
                } else {
                    CreateUserError::Store(internal(e))
                }
            }
            _ => CreateUserError::Store(internal(e)),
        })?;
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
        let (id, hash) = (id.0.clone(), hash.0.clone());
        self.call(move |conn| {
            conn.execute(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, hash, now],
            )
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }
}
