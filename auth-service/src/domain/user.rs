//! Users and sessions as the stores hold them: the ids ([`UserId`], [`SessionId`]), the
//! verified [`User`] and the [`NewUser`] a pending registration becomes, presence, the optional
//! profile fields, and what is kept of a refresh token ([`RefreshHash`]).

use super::{Email, PasswordHash, UnixMs, Username};

/// Id of a user (UUID v7 text, so ids sort by creation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

impl UserId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

/// Id of a session (UUID v4 text: not guessable, not ordered).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

impl SessionId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Parses an id that arrived from outside; anything that is not a UUID names no session.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("session_id is required".into());
        }
        uuid::Uuid::parse_str(raw)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| "session_id is not a valid session id".into())
    }
}

/// SHA-256 of a refresh token (`<session id>.<secret>`): what the store keeps of it.
pub type RefreshHash = [u8; 32];

/// Presence of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Online,
    Away,
    Offline,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Online => "online",
            UserStatus::Away => "away",
            UserStatus::Offline => "offline",
        }
    }

    pub fn from_stored(s: &str) -> Self {
        match s {
            "online" => UserStatus::Online,
            "away" => UserStatus::Away,
            _ => UserStatus::Offline,
        }
    }
}

/// A change of the caller's own profile: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub username: Option<Username>,
}

impl ProfileChange {
    /// The names of the fields it sets, as the API spells them.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.bio.is_some() {
            fields.push("bio");
        }
        if self.avatar_url.is_some() {
            fields.push("avatar_url");
        }
        if self.username.is_some() {
            fields.push("username");
        }
        fields
    }
}

/// Optional profile fields given at sign-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// At most 150 characters.
    pub bio: String,
    /// An http(s) URL or empty.
    pub avatar_url: String,
}

impl Profile {
    pub fn parse_bio(raw: &str) -> Result<String, String> {
        let bio = raw.trim();
        if bio.chars().count() > 150 {
            return Err("bio must be at most 150 characters".into());
        }
        // Text other people's screens show: no control characters (a line break is fine) and
        // no bidirectional overrides, which make text read differently from what it is.
        let hidden = |c: char| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        };
        if bio.chars().any(hidden) {
            return Err(
                "bio must not contain control characters or bidirectional overrides".into(),
            );
        }
        Ok(bio.to_owned())
    }

    pub fn parse_avatar_url(raw: &str) -> Result<String, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(String::new());
        }
        if raw.len() > 2048 {
            return Err("avatar_url must be at most 2048 characters".into());
        }
        match url::Url::parse(raw) {
            Ok(u) if u.username() != "" || u.password().is_some() => {
                Err("avatar_url must not carry a user name or password".into())
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                // Normalising percent-encodes (é becomes %C3%A9): the stored form is the one
                // that must fit.
                let url = u.to_string();
                if url.len() > 2048 {
                    return Err("avatar_url must be at most 2048 characters".into());
                }
                Ok(url)
            }
            _ => Err("avatar_url must be an http or https URL".into()),
        }
    }
}

/// A verified user about to be created: what a pending registration holds. The id is chosen
/// when the registration starts, so two racing verifications of one registration agree on it.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub profile: Profile,
}

/// A verified user as stored.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub password_hash: PasswordHash,
    pub profile: Profile,
    pub status: UserStatus,
    pub last_seen: Option<UnixMs>,
    pub friend_ids: Vec<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    /// When the username last changed after sign-up.
    pub username_changed_at: Option<UnixMs>,
    /// An operator's suspension, if one was ever set and not lifted.
    pub disabled: Option<Disabled>,
}

impl User {
    /// Whether an operator's suspension holds at `now`.
    pub fn disabled_at(&self, now: UnixMs) -> Option<&Disabled> {
        self.disabled.as_ref().filter(|d| d.in_force(now))
    }
}

/// An operator's suspension of an account (DisableUser): no sign-in while it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Disabled {
    /// Why, as the operator put it (1-200 characters); shown to operators only.
    pub reason: String,
    /// When it was set.
    pub at: UnixMs,
    /// When it lifts by itself; `None`: until EnableUser.
    pub until: Option<UnixMs>,
}

impl Disabled {
    /// What a stored suspension that does not read stands for: one that holds for good
    /// (failing closed).
    pub fn unreadable() -> Self {
        Self {
            reason: "unreadable".into(),
            at: 0,
            until: None,
        }
    }

    /// Whether it holds at `now`.
    pub fn in_force(&self, now: UnixMs) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bio_and_avatar() {
        assert!(Profile::parse_bio(&"b".repeat(150)).is_ok());
        assert!(Profile::parse_bio(&"b".repeat(151)).is_err());
        assert_eq!(Profile::parse_avatar_url("").unwrap(), "");
        assert!(Profile::parse_avatar_url("https://cdn.example.com/a.png").is_ok());
        assert!(Profile::parse_avatar_url("javascript:alert(1)").is_err());
        assert!(Profile::parse_avatar_url("not a url").is_err());
        assert!(Profile::parse_avatar_url("https://u:p@cdn.example.com/a.png").is_err());
        assert!(Profile::parse_bio("line one\nline two").is_ok());
        for bad in [
            "a\u{0}b",
            "tab\there",
            "\u{202E}gnp.exe",
            "x\u{2066}y",
            "bell\u{7}",
        ] {
            assert!(Profile::parse_bio(bad).is_err(), "{bad:?}");
        }
        let wide = format!("https://cdn.example/{}", "é".repeat(1000));
        assert!(wide.len() <= 2048);
        assert!(
            Profile::parse_avatar_url(&wide).is_err(),
            "3x longer once encoded"
        );
    }

    #[test]
    fn session_id_parse() {
        assert!(SessionId::parse("nope").is_err());
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(&id.0).unwrap(), id);
    }
}
