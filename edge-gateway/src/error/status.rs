//! The one mapping from a gRPC `Status` of the auth service to an HTTP status and the error
//! body. `code` is the service's stable reason (google.rpc.ErrorInfo.reason); `details` are
//! its google.rpc.BadRequest field violations with the field names the JSON body used; the
//! HTTP status of each gRPC code is the table in the crate README.

use std::borrow::Cow;

use axum::http::StatusCode;
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

use super::{ApiError, FieldError};

impl ApiError {
    /// Maps a Status of the auth service. Field names become camelCase; routes whose JSON
    /// names differ further rename them with [`ApiError::rename_field`].
    pub fn from_status(status: &Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info();
        let violations: Vec<FieldError> = details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| FieldError {
                        field: camel_case(&v.field),
                        message: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reason = info.map(|i| i.reason.clone()).filter(|r| !r.is_empty());
        let retry_after_seconds = details
            .retry_info()
            .and_then(|r| r.retry_delay)
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .or_else(|| metadata(info, "retry_after_seconds"));
        let http = http_status(status.code(), !violations.is_empty());
        // A Status without an ErrorInfo did not come from the service's own mapping (a transport
        // failure, a proxy): its message may name hosts and ports, so it is not passed on.
        let (code, message): (Cow<'static, str>, Cow<'static, str>) = match reason {
            Some(reason) if http != StatusCode::INTERNAL_SERVER_ERROR => {
                (reason.into(), status.message().to_owned().into())
            }
            Some(reason) => (reason.into(), "internal error".into()),
            None => generic(status.code()),
        };
        // The pool's own refusals (MAX_IN_FLIGHT) are counted, not logged one by one.
        if http.is_server_error() && !crate::pool::is_own_refusal(status) {
            tracing::warn!(grpc_code = ?status.code(), grpc_message = %status.message(), "auth service call failed");
        }
        Self {
            status: http,
            code,
            message,
            details: violations,
            retry_after_seconds: retry_after_seconds
                .filter(|_| http == StatusCode::TOO_MANY_REQUESTS || http.is_server_error()),
            attempts_remaining: metadata(info, "attempts_remaining"),
        }
    }
}

/// A number in ErrorInfo.metadata (`retry_after_seconds`, `attempts_remaining`).
fn metadata<T: std::str::FromStr>(info: Option<&ErrorInfo>, key: &str) -> Option<T> {
    info?.metadata.get(key)?.parse().ok()
}

/// HTTP status of a gRPC code; see the table in the crate README.
fn http_status(code: Code, has_fields: bool) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange if has_fields => StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // A field of the request is stale (an expired code): fix the request. Otherwise the
        // target is in a state that conflicts with it.
        Code::FailedPrecondition if has_fields => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Code and message for a Status whose own text is not shown.
fn generic(code: Code) -> (Cow<'static, str>, Cow<'static, str>) {
    let (c, m) = match code {
        Code::Unavailable | Code::Cancelled => (
            "UNAVAILABLE",
            "the auth service is unavailable; try again shortly",
        ),
        Code::DeadlineExceeded => (
            "DEADLINE_EXCEEDED",
            "the auth service did not answer in time; try again shortly",
        ),
        Code::Unauthenticated => ("UNAUTHENTICATED", "authentication required"),
        Code::PermissionDenied => ("PERMISSION_DENIED", "not allowed"),
        Code::NotFound => ("NOT_FOUND", "not found"),
        // OUT_OF_RANGE is also what tonic answers to a message over the service's size limit.
        Code::InvalidArgument | Code::OutOfRange => ("INVALID_ARGUMENT", "invalid request"),
        Code::AlreadyExists => ("ALREADY_EXISTS", "already exists"),
        Code::FailedPrecondition => (
            "FAILED_PRECONDITION",
            "the request conflicts with the current state",
        ),
        Code::Aborted => ("ABORTED", "the request conflicts with a concurrent change"),
        Code::ResourceExhausted => ("RESOURCE_EXHAUSTED", "too many requests; try again later"),
        _ => ("INTERNAL", "internal error"),
    };
    (c.into(), m.into())
}

fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{http::header, response::IntoResponse};
    use std::{collections::HashMap, time::Duration};
    use tonic_types::ErrorDetails;

    fn status(code: Code, details: ErrorDetails) -> Status {
        Status::with_error_details(code, "the service says so", details)
    }

    #[test]
    fn field_violations_become_422_with_json_names() {
        let mut d = ErrorDetails::with_bad_request_violation("avatar_url", "not a URL");
        d.set_error_info("INVALID_ARGUMENT", "auth.baatcheet", HashMap::new());
        let e = ApiError::from_status(&status(Code::InvalidArgument, d));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.details[0].field, "avatarUrl");
        assert_eq!(e.code, "INVALID_ARGUMENT");
        assert_eq!(
            e.rename_field("avatarUrl", "avatar").details[0].field,
            "avatar"
        );
    }

    #[test]
    fn limits_carry_retry_after() {
        let mut d = ErrorDetails::with_retry_info(Some(Duration::from_millis(29_200)));
        d.set_error_info("RESEND_COOLDOWN", "auth.baatcheet", HashMap::new());
        let e = ApiError::from_status(&status(Code::ResourceExhausted, d));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_seconds, Some(30));
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "30");
    }

    #[test]
    fn transport_errors_do_not_leak() {
        let e = ApiError::from_status(&Status::unavailable(
            "tcp connect error: 10.1.2.3:50051 refused",
        ));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.message.contains("10.1.2.3"));
        let mut d = ErrorDetails::new();
        d.set_error_info("INTERNAL", "auth.baatcheet", HashMap::new());
        let e = ApiError::from_status(&Status::with_error_details(
            Code::Internal,
            "disk /var/x broke",
            d,
        ));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("/var/x"));
    }

    #[test]
    fn every_code_has_a_status() {
        let cases = [
            (Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (Code::AlreadyExists, StatusCode::CONFLICT),
            (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            (Code::PermissionDenied, StatusCode::FORBIDDEN),
            (Code::NotFound, StatusCode::NOT_FOUND),
            (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            (Code::FailedPrecondition, StatusCode::CONFLICT),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Code::DeadlineExceeded, StatusCode::SERVICE_UNAVAILABLE),
            (Code::Unknown, StatusCode::INTERNAL_SERVER_ERROR),
            (Code::Unimplemented, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code, false), http, "{code:?}");
        }
        // A stale field (an expired code, named by the service) is the request's to fix.
        assert_eq!(
            http_status(Code::FailedPrecondition, true),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_refusal_without_error_info_is_not_called_internal() {
        // e.g. tonic's own "decoded message length too large" (OUT_OF_RANGE).
        for code in [
            Code::InvalidArgument,
            Code::OutOfRange,
            Code::AlreadyExists,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
        ] {
            let e = ApiError::from_status(&Status::new(code, "message length too large"));
            assert!(e.status.is_client_error(), "{code:?}");
            assert_ne!(e.code, "INTERNAL", "{code:?}");
            assert!(!e.message.contains("too large"), "{code:?}");
        }
    }
}
