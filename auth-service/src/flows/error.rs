//! [`FlowError`]: every way a flow can fail, each variant one stable reason (the
//! `ErrorInfo.reason` callers match on), with the conversions from store and hashing errors.
//! `grpc::status` maps it to a gRPC `Status` once; the README lists each reason with its code.

use crate::crypto::HashError;
use crate::domain::{FieldViolation, UnixMs};
use crate::store::{CreateUserError, StoreError, UpdateProfileError};

/// Every outcome of a flow that is not success. Each variant is one stable reason.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("invalid request")]
    InvalidInput(Vec<FieldViolation>),
    #[error("email is already registered")]
    EmailTaken,
    #[error("username is already taken")]
    UsernameTaken,
    #[error("registration_id is required: start with Register, which returns it")]
    RegistrationIdRequired,
    #[error("reset_id is required: start with RequestPasswordReset, which returns it")]
    ResetIdRequired,
    #[error("no such pending registration")]
    RegistrationNotFound,
    #[error("no such pending password reset")]
    ResetNotFound,
    #[error("the code is wrong")]
    CodeInvalid { attempts_remaining: u32 },
    #[error("the code has expired; ask for a new one")]
    CodeExpired,
    #[error("too many wrong codes; this request is void, start again")]
    CodeAttemptsExhausted,
    #[error("too many wrong codes for this email today")]
    TooManyGuessesToday { retry_at: UnixMs },
    #[error("too many sign-up codes requested from this network; try again later")]
    SignupRateLimited { retry_at: UnixMs },
    #[error("too many password reset codes requested from this network; try again later")]
    ResetRateLimited { retry_at: UnixMs },
    #[error("too many codes tried from this network; try again later")]
    CodeGuessesRateLimited { retry_at: UnixMs },
    #[error("a code was sent recently; wait before asking again")]
    ResendCooldown { retry_at: UnixMs },
    #[error("too many codes sent to this email today")]
    CodeDailyLimit { retry_at: UnixMs },
    #[error("wrong email/username or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many sign-in attempts; try again later")]
    LoginRateLimited { retry_at: UnixMs },
    #[error("the refresh token is invalid or expired")]
    RefreshTokenInvalid,
    #[error("the refresh token was already used; the session has ended")]
    RefreshTokenReused,
    #[error("authentication required")]
    Unauthenticated,
    #[error("the access token is invalid")]
    AccessTokenInvalid,
    #[error("the access token has expired")]
    AccessTokenExpired,
    #[error("the session has ended")]
    SessionRevoked,
    #[error("the session reached its idle timeout or maximum lifetime; sign in again")]
    SessionExpired,
    #[error("this account is disabled")]
    UserDisabled { until: Option<UnixMs> },
    #[error("only an operator's service credential may do this")]
    OperatorOnly,
    #[error("no email change is waiting for this session: ask for one first")]
    EmailChangeNotFound,
    #[error("too many code requests from this network")]
    EmailChangeRateLimited { retry_at: UnixMs },
    #[error("the new email is taken")]
    NewEmailTaken,
    #[error("no such session")]
    SessionNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("the session has ended; drop its connection")]
    SessionEnded,
    #[error("presence was set too often from this session; try again shortly")]
    PresenceRateLimited { retry_at: UnixMs },
    #[error("the profile was changed too often; try again later")]
    ProfileRateLimited { retry_at: UnixMs },
    #[error("the username was changed recently; it can change again later")]
    UsernameChangeCooldown { retry_at: UnixMs },
    #[error("events after this id are no longer kept; re-sync and watch from now")]
    EventsExpired,
    #[error("too many event watchers on this instance; try another or later")]
    TooManyWatchers,
    #[error("login_id is required: start with RequestLoginCode, which returns it")]
    LoginIdRequired,
    #[error("no such pending sign-in by code")]
    LoginNotFound,
    #[error("too many sign-in codes requested from this network; try again later")]
    LoginCodeRateLimited { retry_at: UnixMs },
    #[error("no such sign-in challenge (it expired, was completed, or the password changed)")]
    MfaChallengeNotFound,
    #[error("the code is wrong")]
    MfaCodeInvalid {
        field: &'static str,
        attempts_remaining: u32,
    },
    #[error("this code, or a newer one, was used already; wait for the app's next code")]
    TotpReplayed { field: &'static str },
    #[error("too many wrong second-factor codes; try again later")]
    MfaRateLimited { retry_at: UnixMs },
    #[error(
        "a proof is required: a current TOTP code or a recovery code (or, where allowed, the password)"
    )]
    MfaRequired,
    #[error("two-factor sign-in with an authenticator app is already on")]
    TotpAlreadyEnabled,
    #[error("two-factor sign-in with an authenticator app is off")]
    TotpNotEnabled,
    #[error("no authenticator app enrollment is waiting; start again")]
    TotpEnrollmentNotFound,
    #[error("the passkey was refused: {reason}")]
    PasskeyInvalid { field: &'static str, reason: String },
    #[error("no passkey registration is waiting; start again")]
    PasskeyRegistrationNotFound,
    #[error("no such passkey sign-in (it expired or was used); start again")]
    PasskeyLoginNotFound,
    #[error("this passkey is registered already")]
    PasskeyAlreadyRegistered,
    #[error("the account has {max} passkeys, the most it may have; remove one first")]
    PasskeyLimitReached { max: u32 },
    #[error("no such passkey")]
    PasskeyNotFound,
    #[error("too many passkey sign-ins started from this network; try again later")]
    PasskeyLoginRateLimited { retry_at: UnixMs },
    #[error("the server is busy; try again shortly")]
    Busy,
    #[error("a backend is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(String),
}

impl FlowError {
    /// The stable machine-readable reason (google.rpc.ErrorInfo.reason).
    pub fn reason(&self) -> &'static str {
        match self {
            FlowError::InvalidInput(_) => "INVALID_ARGUMENT",
            FlowError::EmailTaken => "EMAIL_TAKEN",
            FlowError::UsernameTaken => "USERNAME_TAKEN",
            FlowError::RegistrationIdRequired => "REGISTRATION_ID_REQUIRED",
            FlowError::ResetIdRequired => "RESET_ID_REQUIRED",
            FlowError::RegistrationNotFound => "REGISTRATION_NOT_FOUND",
            FlowError::ResetNotFound => "RESET_NOT_FOUND",
            FlowError::CodeInvalid { .. } => "CODE_INVALID",
            FlowError::CodeExpired => "CODE_EXPIRED",
            FlowError::CodeAttemptsExhausted => "CODE_ATTEMPTS_EXHAUSTED",
            FlowError::TooManyGuessesToday { .. } => "TOO_MANY_GUESSES_TODAY",
            FlowError::SignupRateLimited { .. } => "SIGNUP_RATE_LIMITED",
            FlowError::ResetRateLimited { .. } => "RESET_RATE_LIMITED",
            FlowError::CodeGuessesRateLimited { .. } => "CODE_GUESSES_RATE_LIMITED",
            FlowError::ResendCooldown { .. } => "RESEND_COOLDOWN",
            FlowError::CodeDailyLimit { .. } => "CODE_DAILY_LIMIT",
            FlowError::InvalidCredentials => "INVALID_CREDENTIALS",
            FlowError::WrongPassword => "WRONG_PASSWORD",
            FlowError::LoginRateLimited { .. } => "LOGIN_RATE_LIMITED",
            FlowError::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            FlowError::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            FlowError::Unauthenticated => "UNAUTHENTICATED",
            FlowError::AccessTokenInvalid => "ACCESS_TOKEN_INVALID",
            FlowError::AccessTokenExpired => "ACCESS_TOKEN_EXPIRED",
            FlowError::SessionRevoked => "SESSION_REVOKED",
            FlowError::SessionExpired => "SESSION_EXPIRED",
            FlowError::UserDisabled { .. } => "USER_DISABLED",
            FlowError::OperatorOnly => "OPERATOR_ONLY",
            FlowError::EmailChangeNotFound => "EMAIL_CHANGE_NOT_FOUND",
            FlowError::EmailChangeRateLimited { .. } => "EMAIL_CHANGE_RATE_LIMITED",
            FlowError::NewEmailTaken => "EMAIL_TAKEN",
            FlowError::SessionNotFound => "SESSION_NOT_FOUND",
            FlowError::UserNotFound => "USER_NOT_FOUND",
            FlowError::SessionEnded => "SESSION_ENDED",
            FlowError::PresenceRateLimited { .. } => "PRESENCE_RATE_LIMITED",
            FlowError::ProfileRateLimited { .. } => "PROFILE_RATE_LIMITED",
            FlowError::UsernameChangeCooldown { .. } => "USERNAME_CHANGE_COOLDOWN",
            FlowError::EventsExpired => "EVENTS_EXPIRED",
            FlowError::TooManyWatchers => "TOO_MANY_WATCHERS",
            FlowError::LoginIdRequired => "LOGIN_ID_REQUIRED",
            FlowError::LoginNotFound => "LOGIN_NOT_FOUND",
            FlowError::LoginCodeRateLimited { .. } => "LOGIN_CODE_RATE_LIMITED",
            FlowError::MfaChallengeNotFound => "MFA_CHALLENGE_NOT_FOUND",
            FlowError::MfaCodeInvalid { .. } => "MFA_CODE_INVALID",
            FlowError::TotpReplayed { .. } => "TOTP_REPLAYED",
            FlowError::MfaRateLimited { .. } => "MFA_RATE_LIMITED",
            FlowError::MfaRequired => "MFA_REQUIRED",
            FlowError::TotpAlreadyEnabled => "TOTP_ALREADY_ENABLED",
            FlowError::TotpNotEnabled => "TOTP_NOT_ENABLED",
            FlowError::TotpEnrollmentNotFound => "TOTP_ENROLLMENT_NOT_FOUND",
            FlowError::PasskeyInvalid { .. } => "PASSKEY_INVALID",
            FlowError::PasskeyRegistrationNotFound => "PASSKEY_REGISTRATION_NOT_FOUND",
            FlowError::PasskeyLoginNotFound => "PASSKEY_LOGIN_NOT_FOUND",
            FlowError::PasskeyAlreadyRegistered => "PASSKEY_ALREADY_REGISTERED",
            FlowError::PasskeyLimitReached { .. } => "PASSKEY_LIMIT_REACHED",
            FlowError::PasskeyNotFound => "PASSKEY_NOT_FOUND",
            FlowError::PasskeyLoginRateLimited { .. } => "PASSKEY_LOGIN_RATE_LIMITED",
            FlowError::Busy => "SERVER_BUSY",
            FlowError::Unavailable(_) => "BACKEND_UNAVAILABLE",
            FlowError::Internal(_) => "INTERNAL",
        }
    }

    /// When the caller may try again, for limits.
    pub fn retry_at(&self) -> Option<UnixMs> {
        match self {
            FlowError::TooManyGuessesToday { retry_at }
            | FlowError::SignupRateLimited { retry_at }
            | FlowError::ResetRateLimited { retry_at }
            | FlowError::CodeGuessesRateLimited { retry_at }
            | FlowError::ResendCooldown { retry_at }
            | FlowError::CodeDailyLimit { retry_at }
            | FlowError::LoginRateLimited { retry_at }
            | FlowError::UsernameChangeCooldown { retry_at }
            | FlowError::PresenceRateLimited { retry_at }
            | FlowError::ProfileRateLimited { retry_at }
            | FlowError::LoginCodeRateLimited { retry_at }
            | FlowError::MfaRateLimited { retry_at }
            | FlowError::PasskeyLoginRateLimited { retry_at }
            | FlowError::EmailChangeRateLimited { retry_at } => Some(*retry_at),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        FlowError::InvalidInput(vec![FieldViolation::new(field, description)])
    }
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => FlowError::Unavailable(e),
            StoreError::Internal(msg) => FlowError::Internal(msg),
        }
    }
}

impl From<HashError> for FlowError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => FlowError::Busy,
            HashError::Internal(msg) => FlowError::Internal(msg),
        }
    }
}

impl From<CreateUserError> for FlowError {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::EmailTaken => FlowError::EmailTaken,
            CreateUserError::UsernameTaken => FlowError::UsernameTaken,
            CreateUserError::IdTaken => FlowError::Internal("a user id was taken twice".into()),
            CreateUserError::Store(e) => e.into(),
        }
    }
}

impl From<UpdateProfileError> for FlowError {
    fn from(e: UpdateProfileError) -> Self {
        match e {
            UpdateProfileError::NotFound => FlowError::UserNotFound,
            UpdateProfileError::UsernameTaken => FlowError::UsernameTaken,
            UpdateProfileError::UsernameCooldown { retry_at } => {
                FlowError::UsernameChangeCooldown { retry_at }
            }
            UpdateProfileError::Store(e) => e.into(),
        }
    }
}

impl From<Vec<FieldViolation>> for FlowError {
    fn from(v: Vec<FieldViolation>) -> Self {
        FlowError::InvalidInput(v)
    }
}
