//! The one mapping from [`FlowError`] to a gRPC `Status`: code, a stable reason in
//! google.rpc.ErrorInfo, field violations in google.rpc.BadRequest, a delay in google.rpc.RetryInfo.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::now_ms;
use crate::flows::FlowError;

/// ErrorInfo.domain of every error this service returns.
pub const ERROR_DOMAIN: &str = "auth.baatcheet";

pub fn to_status(err: FlowError) -> Status {
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    let code = match &err {
        FlowError::InvalidInput(violations) => {
            for v in violations {
                details.add_bad_request_violation(v.field, &v.description);
            }
            Code::InvalidArgument
        }
        FlowError::EmailTaken => {
            details.add_bad_request_violation("email", "email is already registered");
            Code::AlreadyExists
        }
        FlowError::UsernameTaken => {
            details.add_bad_request_violation("username", "username is already taken");
            Code::AlreadyExists
        }
        FlowError::CodeInvalid { attempts_remaining } => {
            details.add_bad_request_violation("code", "the code is wrong");
            metadata.insert(
                "attempts_remaining".to_owned(),
                attempts_remaining.to_string(),
            );
            Code::InvalidArgument
        }
        FlowError::WrongPassword => {
            details.add_bad_request_violation("current_password", "the current password is wrong");
            Code::InvalidArgument
        }
        FlowError::RegistrationIdRequired => {
            details.add_bad_request_violation("registration_id", "registration_id is required");
            Code::InvalidArgument
        }
        FlowError::ResetIdRequired => {
            details.add_bad_request_violation("reset_id", "reset_id is required");
            Code::InvalidArgument
        }
        FlowError::LoginIdRequired => {
            details.add_bad_request_violation("login_id", "login_id is required");
            Code::InvalidArgument
        }
        FlowError::MfaCodeInvalid {
            field,
            attempts_remaining,
        } => {
            details.add_bad_request_violation(*field, "the code is wrong");
            metadata.insert(
                "attempts_remaining".to_owned(),
                attempts_remaining.to_string(),
            );
            Code::InvalidArgument
        }
        FlowError::TotpReplayed { field } => {
            details
                .add_bad_request_violation(*field, "this code, or a newer one, was used already");
            Code::InvalidArgument
        }
        FlowError::MfaRequired => {
            details.add_bad_request_violation(
                "proof",
                "a proof is required: totp_code or recovery_code (or, where allowed, password)",
            );
            Code::InvalidArgument
        }
        FlowError::PasskeyInvalid { field, reason } => {
            details.add_bad_request_violation(*field, reason);
            Code::InvalidArgument
        }
        FlowError::PasskeyLimitReached { max } => {
            metadata.insert("max_passkeys".to_owned(), max.to_string());
            Code::FailedPrecondition
        }
        FlowError::PasskeyAlreadyRegistered => {
            details.add_bad_request_violation("credential", "this passkey is registered already");
            Code::AlreadyExists
        }
        FlowError::PasskeyRegistrationNotFound => Code::FailedPrecondition,
        FlowError::UserDisabled { until } => {
            if let Some(until) = until.and_then(crate::grpc::convert::timestamp) {
                metadata.insert("until".to_owned(), until.to_string());
            }
            Code::PermissionDenied
        }
        FlowError::OperatorOnly => Code::PermissionDenied,
        FlowError::EmailChangeNotFound => Code::NotFound,
        FlowError::NewEmailTaken => {
            details.add_bad_request_violation("new_email", "email is already registered");
            Code::AlreadyExists
        }
        FlowError::PasskeyLoginNotFound | FlowError::PasskeyNotFound => Code::NotFound,
        FlowError::EventsExpired
        | FlowError::SessionEnded
        | FlowError::TotpAlreadyEnabled
        | FlowError::TotpNotEnabled
        | FlowError::TotpEnrollmentNotFound => Code::FailedPrecondition,
        FlowError::LoginNotFound | FlowError::MfaChallengeNotFound => Code::NotFound,
        FlowError::UserNotFound => Code::NotFound,
        FlowError::RegistrationNotFound | FlowError::ResetNotFound | FlowError::SessionNotFound => {
            Code::NotFound
        }
        FlowError::CodeExpired => {
            // The request's own input is stale: the field names what to fix.
            details.add_bad_request_violation("code", "the code has expired; ask for a new one");
            Code::FailedPrecondition
        }
        FlowError::CodeAttemptsExhausted
        | FlowError::TooManyGuessesToday { .. }
        | FlowError::SignupRateLimited { .. }
        | FlowError::ResetRateLimited { .. }
        | FlowError::CodeGuessesRateLimited { .. }
        | FlowError::ResendCooldown { .. }
        | FlowError::CodeDailyLimit { .. }
        | FlowError::LoginRateLimited { .. }
        | FlowError::UsernameChangeCooldown { .. }
        | FlowError::PresenceRateLimited { .. }
        | FlowError::ProfileRateLimited { .. }
        | FlowError::LoginCodeRateLimited { .. }
        | FlowError::MfaRateLimited { .. }
        | FlowError::PasskeyLoginRateLimited { .. }
        | FlowError::EmailChangeRateLimited { .. }
        | FlowError::TooManyWatchers
        | FlowError::Busy => Code::ResourceExhausted,
        FlowError::InvalidCredentials
        | FlowError::RefreshTokenInvalid
        | FlowError::RefreshTokenReused
        | FlowError::Unauthenticated
        | FlowError::AccessTokenInvalid
        | FlowError::AccessTokenExpired
        | FlowError::SessionRevoked
        | FlowError::SessionExpired => Code::Unauthenticated,
        FlowError::Unavailable(e) => {
            tracing::warn!(error = %e, "backend unavailable");
            Code::Unavailable
        }
        FlowError::Internal(e) => {
            tracing::error!(error = %e, "internal error");
            Code::Internal
        }
    };
    let retry = match (&err, err.retry_at()) {
        (_, Some(at)) => Some(Duration::from_millis((at - now_ms()).max(1000) as u64)),
        (FlowError::Busy | FlowError::TooManyWatchers, None) => Some(Duration::from_secs(1)),
        (FlowError::Unavailable(_), None) => Some(Duration::from_secs(2)),
        _ => None,
    };
    if let Some(delay) = retry {
        // Whole seconds, rounded up, so a client that waits exactly this long is let in.
        let secs = delay.as_millis().div_ceil(1000) as u64;
        details.set_retry_info(Some(Duration::from_secs(secs)));
        metadata.insert("retry_after_seconds".to_owned(), secs.to_string());
    }
    details.set_error_info(err.reason(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, err.to_string(), details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldViolation;

    #[test]
    fn field_violations_and_reason() {
        let status = to_status(FlowError::InvalidInput(vec![
            FieldViolation::new("email", "bad"),
            FieldViolation::new("password", "short"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["email", "password"]);
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
    }

    #[test]
    fn limits_carry_retry_delay() {
        let status = to_status(FlowError::ResendCooldown {
            retry_at: now_ms() + 30_500,
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let delay = status
            .get_error_details()
            .retry_info()
            .unwrap()
            .retry_delay
            .unwrap();
        assert!((30..=31).contains(&delay.as_secs()), "{delay:?}");
    }

    #[test]
    fn internals_are_not_leaked() {
        let status = to_status(FlowError::Internal("disk /var/secret broke".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
