//! [`UserStore`] on MongoDB. Each method is one server operation: `create_user` is a single
//! insert that the unique indexes (email, lowercased username) refuse when either is taken, and
//! presence and password changes are single updates ([`document`] builds the filters and updates).

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::{
    bson::{Document, doc},
    options::ReturnDocument,
};

use super::{
    MongoUserStore, document,
    errors::{create_user_error, store_error},
};
use crate::domain::{
    Disabled, Email, NewUser, PasswordHash, ProfileChange, UnixMs, User, UserId, UserStatus,
    Username,
};
use crate::store::{CreateUserError, SetEmailError, StoreResult, UpdateProfileError, UserStore};

impl MongoUserStore {
    async fn find_user(&self, filter: Document) -> StoreResult<Option<User>> {
        self.users
            .find_one(filter)
            .await
            .map_err(store_error)?
            .map(|doc| document::user_from_document(&doc))
            .transpose()
    }

    /// Every user matching `filter`, in one query.
    async fn find_users(&self, filter: Document) -> StoreResult<Vec<User>> {
        let docs: Vec<Document> = self
            .users
            .find(filter)
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        docs.iter().map(document::user_from_document).collect()
    }
}

#[async_trait]
impl UserStore for MongoUserStore {
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
        // One insert: the unique indexes make "if email and username are free" atomic.
        self.users
            .insert_one(document::user_document(&user, &new.username.key()))
            .await
            .map_err(create_user_error)?;
        Ok(user)
    }

    async fn find_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.find_user(document::by_id(id)).await
    }

    async fn find_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.find_user(document::by_email(email)).await
    }

    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>> {
        self.find_user(document::by_username(username)).await
    }

    async fn find_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        self.find_users(doc! { document::field::ID: { "$in": ids } })
            .await
    }

    async fn find_by_usernames(&self, usernames: &[Username]) -> StoreResult<Vec<User>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = usernames.iter().map(Username::key).collect();
        self.find_users(doc! { document::field::USERNAME_KEY: { "$in": keys } })
            .await
    }

    /// One `findOneAndUpdate`: with a new username, its filter holds the cooldown and the
    /// unique index refuses a taken name, so two renames to one name cannot both win.
    async fn update_profile(
        &self,
        id: &UserId,
        change: &ProfileChange,
        now: UnixMs,
        username_cooldown_ms: i64,
    ) -> Result<User, UpdateProfileError> {
        let mut change = change.clone();
        if let Some(name) = &change.username {
            let current = self
                .find_by_id(id)
                .await?
                .ok_or(UpdateProfileError::NotFound)?;
            if current.username == name.as_str() {
                change.username = None;
            }
        }
        let filter = if change.username.is_some() {
            document::by_id_rename_allowed(id, now, username_cooldown_ms)
        } else {
            document::by_id(id)
        };
        let updated = self
            .users
            .find_one_and_update(filter, document::profile_update(&change, now))
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| match create_user_error(e) {
                CreateUserError::UsernameTaken => UpdateProfileError::UsernameTaken,
                CreateUserError::Store(e) => UpdateProfileError::Store(e),
                other => {
                    UpdateProfileError::Store(crate::store::StoreError::Internal(other.to_string()))
                }
            })?;
        match updated {
            Some(doc) => Ok(document::user_from_document(&doc)?),
            None => match self.find_by_id(id).await? {
                None => Err(UpdateProfileError::NotFound),
                Some(user) => Err(UpdateProfileError::UsernameCooldown {
                    retry_at: user.username_changed_at.unwrap_or(now) + username_cooldown_ms,
                }),
            },
        }
    }

    /// lastSeen is the server's clock (`$currentDate`), so instances with skewed clocks agree.
    async fn set_presence(&self, id: &UserId, status: UserStatus, _now: UnixMs) -> StoreResult<()> {
        self.users
            .update_one(document::by_id(id), document::presence_update(status))
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn set_password(
        &self,
        id: &UserId,
        hash: &PasswordHash,
        _now: UnixMs,
    ) -> StoreResult<bool> {
        self.users
            .update_one(document::by_id(id), document::password_update(hash))
            .await
            .map(|r| r.matched_count == 1)
            .map_err(store_error)
    }

    async fn set_disabled(
        &self,
        id: &UserId,
        disabled: Option<&Disabled>,
        _now: UnixMs,
    ) -> StoreResult<bool> {
        self.users
            .update_one(document::by_id(id), document::disabled_update(disabled))
            .await
            .map(|r| r.matched_count == 1)
            .map_err(store_error)
    }

    /// The second factors and passkeys are fields of the document: one delete removes all.
    async fn delete_user(&self, id: &UserId, _now: UnixMs) -> StoreResult<bool> {
        self.users
            .delete_one(document::by_id(id))
            .await
            .map(|r| r.deleted_count == 1)
            .map_err(store_error)
    }

    /// The unique index on `email` decides between racing changes and sign-ups.
    async fn set_email(
        &self,
        id: &UserId,
        email: &Email,
        _now: UnixMs,
    ) -> Result<(), SetEmailError> {
        let updated = self
            .users
            .update_one(document::by_id(id), document::email_update(email))
            .await
            .map_err(|e| match create_user_error(e) {
                CreateUserError::EmailTaken => SetEmailError::EmailTaken,
                CreateUserError::Store(e) => SetEmailError::Store(e),
                other => {
                    SetEmailError::Store(crate::store::StoreError::Internal(other.to_string()))
                }
            })?;
        if updated.matched_count == 1 {
            Ok(())
        } else {
            Err(SetEmailError::NotFound)
        }
    }
}
