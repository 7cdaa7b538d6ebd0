//! What the chat's own services read and follow (InternalAuthService): users by id or
//! username in one store round trip per call, the caller's own profile changes
//! (UpdateProfile), and the event stream (WatchEvents).

use std::collections::HashSet;

use super::{
    AuthCore, Caller, FlowError,
    limits::{Counter, HOUR_MS},
};
use crate::domain::{
    Event, FieldViolation, Profile, ProfileChange, UnixMs, User, UserId, Username, now_ms,
};
use crate::store::{MAX_BATCH, ReadEventsError};

/// UpdateProfile calls one user may make per hour (each change is an event every watcher
/// receives).
pub const PROFILE_UPDATES_PER_HOUR: u32 = 30;

/// An UpdateProfile request: the mask's paths and the values they name.
pub struct ProfileInput<'a> {
    pub paths: &'a [String],
    pub bio: &'a str,
    pub avatar_url: &'a str,
    pub username: &'a str,
}

/// Users found and the requested keys with none, in the order asked.
pub struct Found {
    pub users: Vec<User>,
    pub missing: Vec<String>,
}

/// Distinct, trimmed keys in request order; more than [`MAX_BATCH`] is an error on `field`.
pub(super) fn distinct(field: &'static str, raw: &[String]) -> Result<Vec<String>, FlowError> {
    if raw.len() > MAX_BATCH {
        return Err(FlowError::invalid(
            field,
            format!("at most {MAX_BATCH} per call; got {}", raw.len()),
        ));
    }
    let mut seen = HashSet::new();
    Ok(raw
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| seen.insert(s.clone()))
        .collect())
}

impl AuthCore {
    /// UpdateProfile: the caller's own bio, avatar and username, as the mask says.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn update_profile(
        &self,
        caller: &Caller,
        input: ProfileInput<'_>,
    ) -> Result<(User, UnixMs), FlowError> {
        if input.paths.is_empty() {
            return Err(FlowError::invalid(
                "update_mask",
                "update_mask is required: name the fields to change (bio, avatar_url, username)",
            ));
        }
        let mut violations = Vec::new();
        let mut change = ProfileChange::default();
        for path in input.paths {
            match path.as_str() {
                "bio" => match Profile::parse_bio(input.bio) {
                    Ok(bio) => change.bio = Some(bio),
                    Err(e) => violations.push(FieldViolation::new("bio", e)),
                },
                "avatar_url" => match Profile::parse_avatar_url(input.avatar_url) {
                    Ok(url) => change.avatar_url = Some(url),
                    Err(e) => violations.push(FieldViolation::new("avatar_url", e)),
                },
                "username" => match Username::parse(input.username) {
                    Ok(name) => change.username = Some(name),
                    Err(e) => violations.push(FieldViolation::new("username", e)),
                },
                other => violations.push(FieldViolation::new(
                    "update_mask",
                    format!(
                        "{:?} is not a field UpdateProfile changes (bio, avatar_url, username)",
                        other.chars().take(64).collect::<String>()
                    ),
                )),
            }
        }
        if !violations.is_empty() {
            return Err(FlowError::InvalidInput(violations));
        }
        self.limit(
            Counter::ProfileUpdate {
                user: &caller.user_id,
            },
            PROFILE_UPDATES_PER_HOUR,
            HOUR_MS,
            |retry_at| FlowError::ProfileRateLimited { retry_at },
        )
        .await?;
        let cooldown = self.policy.username_change_cooldown_ms;
        let user = self
            .stores
            .users
            .update_profile(&caller.user_id, &change, now_ms(), cooldown)
            .await?;
        let user = self.one_with_presence(user).await?;
        let next_rename = user
            .username_changed_at
            .map_or(now_ms(), |at| at + cooldown);
        tracing::info!(fields = ?change.fields(), "profile updated");
        Ok((user, next_rename))
    }

    /// GetUser.
    pub async fn get_user(&self, id: &str) -> Result<User, FlowError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(FlowError::invalid("user_id", "user_id is required"));
        }
        let user = self
            .stores
            .users
            .find_by_id(&UserId(id.to_owned()))
            .await?
            .ok_or(FlowError::UserNotFound)?;
        self.one_with_presence(user).await
    }

    /// BatchGetUsers: one store round trip; ids with no user are listed, not an error.
    pub async fn batch_get_users(&self, ids: &[String]) -> Result<Found, FlowError> {
        let ids = distinct("user_ids", ids)?;
        let keys: Vec<UserId> = ids
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| UserId(i.clone()))
            .collect();
        let found = self.stores.users.find_by_ids(&keys).await?;
        let mut found = self.with_presence(found).await?;
        Ok(in_request_order(&ids, &mut found, |u| u.id.0.clone()))
    }

    /// LookupUsers: by username, case-insensitively; one store round trip.
    pub async fn lookup_users(&self, names: &[String]) -> Result<Found, FlowError> {
        // One entry per user: spellings that differ only in case name the same one.
        let mut keys_seen = HashSet::new();
        let names: Vec<String> = distinct("usernames", names)?
            .into_iter()
            .filter(|n| {
                let key = Username::parse(n)
                    .map(|u| u.key())
                    .unwrap_or_else(|_| n.clone());
                keys_seen.insert(key)
            })
            .collect();
        // A name that cannot be a username names nobody: missing, not an error.
        let parsed: Vec<Username> = names
            .iter()
            .filter_map(|n| Username::parse(n).ok())
            .collect();
        let found = self.stores.users.find_by_usernames(&parsed).await?;
        let mut found = self.with_presence(found).await?;
        let key = |n: &String| Username::parse(n).map(|u| u.key()).unwrap_or_default();
        let keys: Vec<String> = names.iter().map(key).collect();
        let mut result = in_request_order(&keys, &mut found, |u| u.username.to_ascii_lowercase());
        // Report the missing names as given, not lowercased.
        result.missing = names
            .iter()
            .zip(&keys)
            .filter(|(_, k)| result.missing.contains(k))
            .map(|(n, _)| n.clone())
            .collect();
        Ok(result)
    }

    /// Where a watcher that names no event id starts: after the newest event.
    pub async fn events_now(&self) -> Result<String, FlowError> {
        Ok(self.stores.events.latest_id().await?)
    }

    /// The next events after `after`, waiting up to `wait` when there are none.
    pub async fn next_events(
        &self,
        after: &str,
        wait: std::time::Duration,
    ) -> Result<Vec<Event>, FlowError> {
        match self.stores.events.read_after(after, 256, wait).await {
            Ok(events) => Ok(events),
            Err(ReadEventsError::InvalidId) => Err(FlowError::invalid(
                "since_event_id",
                "since_event_id is not an event id of this service",
            )),
            Err(ReadEventsError::Expired) => Err(FlowError::EventsExpired),
            Err(ReadEventsError::Store(e)) => Err(e.into()),
        }
    }
}

/// The users of `keys` in request order, and the keys with none. `key_of` must produce the
/// same form as `keys` (the username key for usernames).
fn in_request_order(
    keys: &[String],
    found: &mut Vec<User>,
    key_of: impl Fn(&User) -> String,
) -> Found {
    let mut by_key: std::collections::HashMap<String, User> =
        found.drain(..).map(|u| (key_of(&u), u)).collect();
    let mut users = Vec::with_capacity(by_key.len());
    let mut missing = Vec::new();
    for key in keys {
        match by_key.remove(key) {
            Some(user) => users.push(user),
            None => missing.push(key.clone()),
        }
    }
    Found { users, missing }
}
