//! Passwords: forgot (a code is emailed), reset (with the code), change (signed in).

use axum::{extract::State, response::AppendHeaders};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::registration::EmailBody;
use crate::cookies::{self, SetCookie, SetCookies};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::{CallContext, call};
use crate::views::{ResetRequested, RevokedSessions, rfc3339};

/// A new password with the emailed code.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordBody {
    #[serde(default)]
    #[schema(required = true)]
    pub email: String,
    /// The 6-digit code (`code` is accepted too).
    #[serde(default, alias = "code")]
    #[schema(required = true)]
    pub otp: String,
    /// 8-128 characters.
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub new_password: String,
}

/// The current password and a new one.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub current_password: String,
    /// 8-128 characters.
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub new_password: String,
}

/// Emails a reset code when an account has this email; the answer is the same either way. The
/// reset is bound to this browser by an httpOnly cookie (`resetId`).
#[utoipa::path(post, path = "/password/forgot", tag = "password", request_body = EmailBody,
    responses(
        (status = 200, description = "A code was sent if the account exists; the reset cookie set", body = ApiResponse<ResetRequested>),
        (status = 422, description = "Invalid email", body = ErrorBody),
        (status = 429, description = "CODE_DAILY_LIMIT or RESET_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn forgot(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(AppendHeaders<SetCookie>, ApiResponse<ResetRequested>), ApiError> {
    let request = ctx.request(pb::RequestPasswordResetRequest { email: body.email });
    let reply = call(
        "RequestPasswordReset",
        app.auth().request_password_reset(request),
    )
    .await?;
    let policy = app.cookies();
    let held = cookies::hold(policy, cookies::reset_cookie(policy), &reply.reset_id);
    Ok((
        AppendHeaders(held),
        ApiResponse::ok(
            ResetRequested {
                code_ttl_seconds: reply.code_ttl.map(|d| d.seconds),
                resend_available_at: rfc3339(reply.resend_available_time.as_ref()),
            },
            "If an account has this email, a reset code was sent",
        ),
    ))
}

/// Sets a new password with the emailed code of this browser's reset; every session ends, so
/// the cookies are cleared.
#[utoipa::path(post, path = "/password/reset", tag = "password", request_body = ResetPasswordBody,
    security(("resetCookie" = [])),
    responses(
        (status = 200, description = "Password set; every session ended; cookies cleared", body = ApiResponse<RevokedSessions>),
        (status = 400, description = "CODE_EXPIRED", body = ErrorBody),
        (status = 404, description = "RESET_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "CODE_INVALID, RESET_ID_REQUIRED (no reset cookie) or invalid fields", body = ErrorBody),
        (status = 429, description = "CODE_ATTEMPTS_EXHAUSTED or TOO_MANY_GUESSES_TODAY", body = ErrorBody),
    ))]
pub async fn reset(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<ResetPasswordBody>,
) -> Result<
    (
        AppendHeaders<SetCookies>,
        AppendHeaders<SetCookie>,
        ApiResponse<RevokedSessions>,
    ),
    ApiError,
> {
    let request = ctx.request(pb::ResetPasswordRequest {
        email: body.email,
        code: body.otp,
        new_password: body.new_password,
        reset_id: ctx.reset_id(),
    });
    let reply = call("ResetPassword", app.auth().reset_password(request))
        .await
        .map_err(|e| e.rename_field("code", "otp"))?;
    let policy = app.cookies();
    Ok((
        AppendHeaders(cookies::clear(policy)),
        AppendHeaders(cookies::forget(policy, cookies::reset_cookie(policy))),
        ApiResponse::ok(
            RevokedSessions {
                revoked_session_count: reply.revoked_session_count,
            },
            "Password reset; sign in with the new password",
        ),
    ))
}

/// Changes the caller's password; the caller's other sessions end, this one stays.
#[utoipa::path(post, path = "/password/change", tag = "password", request_body = ChangePasswordBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Password changed", body = ApiResponse<RevokedSessions>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "WRONG_PASSWORD (field currentPassword) or invalid fields", body = ErrorBody),
    ))]
pub async fn change(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<ApiResponse<RevokedSessions>, ApiError> {
    let request = ctx.signed_in_request(pb::ChangePasswordRequest {
        current_password: body.current_password,
        new_password: body.new_password,
    })?;
    let reply = call("ChangePassword", app.auth().change_password(request)).await?;
    Ok(ApiResponse::ok(
        RevokedSessions {
            revoked_session_count: reply.revoked_session_count,
        },
        "Password changed",
    ))
}
