//! [`UserStore`] on MongoDB. Each method is one server operation: `create_user` is a single
//! insert that the unique indexes (email, lowercased username) refuse when either is taken, and
//! presence and password changes are single updates ([`document`] builds the filters and updates).

use async_trait::async_trait;
use mongodb::bson::Document;

use super::{
    MongoUserStore, document,
    errors::{create_user_error, store_error},
};
use crate::domain::{Email, NewUser, PasswordHash, UnixMs, User, UserId, UserStatus, Username};
use crate::store::{CreateUserError, StoreResult, UserStore};

impl MongoUserStore {
    async fn find_user(&self, filter: Document) -> StoreResult<Option<User>> {
        self.users
            .find_one(filter)
            .await
            .map_err(store_error)?
            .map(|doc| document::user_from_document(&doc))
            .transpose()
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
}
