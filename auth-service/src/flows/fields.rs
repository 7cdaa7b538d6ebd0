//! Fields the operator actions share: a user id and a reason, read the same way by each.

use crate::domain::UserId;

/// Longest reason an operator may give.
const MAX_REASON: usize = 200;

/// A `user_id` field: required, at most 64 characters (ids are UUIDs; a longer one names
/// nobody and is not worth a store round trip).
pub(super) fn user_id_field(raw: &str) -> Result<UserId, String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err("user_id is required".into());
    }
    if id.len() > 64 {
        return Err("user_id is at most 64 characters".into());
    }
    Ok(UserId(id.to_owned()))
}

/// An operator's `reason`: 1-200 characters once trimmed.
pub(super) fn reason_field(raw: &str) -> Result<String, String> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        Err(format!("reason must be 1-{MAX_REASON} characters"))
    } else {
        Ok(reason.to_owned())
    }
}
