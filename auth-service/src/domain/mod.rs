//! Domain types, parsed once at the edge of `flows`: a value of one of these types is valid by
//! construction, so nothing past the parse checks it again.

mod client;
mod code;
mod email;
mod event;
mod factor;
mod identifier;
mod password;
mod pending;
mod security;
mod user;
mod username;

pub use client::ClientInfo;
pub use code::{Code, CodeHash, CodePurpose};
pub use email::Email;
pub use event::{EVENT_TYPES, Event, EventKind, RevokeReason};
pub use factor::{AuthMethod, FactorProof, FactorSummary, RecoveryCode, SignIn};
pub use identifier::{LoginIdentifier, Lookup};
pub use password::{Password, PasswordHash, PasswordRules};
pub use pending::PendingId;
pub use security::{SecurityEvent, SecurityKind};
pub use user::{
    Disabled, NewUser, Profile, ProfileChange, RefreshHash, SessionId, User, UserId, UserStatus,
};
pub use username::Username;

/// Milliseconds since the Unix epoch. Every stored time uses it, so backends agree on one unit.
pub type UnixMs = i64;

/// The current time in [`UnixMs`].
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `ms` as RFC 3339 to the second (UTC), for mail and log entries people read.
pub fn rfc3339(ms: UnixMs) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

/// A field that failed to parse: its name in the request and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Collects every invalid field of a request so the caller learns about all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the parsed value, or records why `field` did not parse.
    pub fn check<T>(&mut self, field: &'static str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(description) => {
                self.0.push(FieldViolation::new(field, description));
                None
            }
        }
    }

    /// The parsed values when every field parsed, else every violation. `parsed` is the
    /// fields' [`Violations::check`] results gathered with [`AllParsed::all`]: they are all
    /// there exactly when nothing was recorded.
    pub fn finish<T>(self, parsed: Option<T>) -> Result<T, Vec<FieldViolation>> {
        match parsed {
            Some(values) if self.0.is_empty() => Ok(values),
            _ => Err(self.0),
        }
    }
}

/// A tuple of parse results, all present or not: `(a, b).all()` is `Some((a, b))` when both are.
pub trait AllParsed {
    type Values;
    fn all(self) -> Option<Self::Values>;
}

macro_rules! all_parsed {
    ($($t:ident),+) => {
        impl<$($t),+> AllParsed for ($(Option<$t>,)+) {
            type Values = ($($t,)+);
            #[allow(non_snake_case)]
            fn all(self) -> Option<Self::Values> {
                let ($($t,)+) = self;
                Some(($($t?,)+))
            }
        }
    };
}
all_parsed!(A, B);
all_parsed!(A, B, C);
all_parsed!(A, B, C, D);
all_parsed!(A, B, C, D, E);
