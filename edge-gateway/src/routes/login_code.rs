//! Sign-in by emailed code: the request (its id in the httpOnly `loginId` cookie) and the code,
//! which signs in or, for an account with a second factor, leads to the challenge as login does.

use axum::{
    extract::State,
    response::{AppendHeaders, Response},
};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::registration::EmailBody;
use super::session::first_factor_answer;
use crate::cookies::{self, SetCookie};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::{CallContext, call};
use crate::views::{LoginCodeRequested, SignInStep};

/// The emailed sign-in code.
#[derive(Deserialize, ToSchema)]
pub struct LoginCodeBody {
    #[serde(default)]
    #[schema(required = true, example = "asha@example.com")]
    pub email: String,
    /// The 6-digit code (`otp` is accepted too).
    #[serde(default, alias = "otp")]
    #[schema(required = true, example = "123456")]
    pub code: String,
}

/// Emails a sign-in code when an account has this email; the answer is the same either way.
/// The request is bound to this browser by an httpOnly cookie (`loginId`).
#[utoipa::path(post, path = "/login/code/request", tag = "session", request_body = EmailBody,
    responses(
        (status = 200, description = "A code was sent if the account exists; the loginId cookie set", body = ApiResponse<LoginCodeRequested>),
        (status = 422, description = "Invalid email", body = ErrorBody),
        (status = 429, description = "CODE_DAILY_LIMIT or LOGIN_CODE_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn request_login_code(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(AppendHeaders<SetCookie>, ApiResponse<LoginCodeRequested>), ApiError> {
    let request = ctx.request(pb::RequestLoginCodeRequest { email: body.email });
    let reply = call("RequestLoginCode", app.auth().request_login_code(request)).await?;
    let policy = app.cookies();
    let held = cookies::hold(policy, cookies::login_code_cookie(policy), &reply.login_id);
    Ok((
        AppendHeaders(held),
        ApiResponse::ok(
            LoginCodeRequested {
                code_ttl_seconds: reply.code_ttl.map(|d| d.seconds),
            },
            "If an account has this email, a sign-in code was sent",
        ),
    ))
}

/// Signs in with the emailed code of this browser's request; like /login, answers
/// `{mfaRequired: true, ...}` (and the mfaChallenge cookie) when the account has a second
/// factor.
#[utoipa::path(post, path = "/login/code", tag = "session", request_body = LoginCodeBody,
    security(("loginCodeCookie" = [])),
    responses(
        (status = 200, description = "Signed in and the token cookies set; or, for an account with a second factor, mfaRequired and the mfaChallenge cookie", body = ApiResponse<SignInStep>),
        (status = 400, description = "CODE_EXPIRED", body = ErrorBody),
        (status = 403, description = "USER_DISABLED: an operator suspended the account", body = ErrorBody),
        (status = 404, description = "LOGIN_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "CODE_INVALID, LOGIN_ID_REQUIRED (no loginId cookie) or invalid fields", body = ErrorBody),
        (status = 429, description = "CODE_ATTEMPTS_EXHAUSTED or TOO_MANY_GUESSES_TODAY", body = ErrorBody),
    ))]
pub async fn login_with_code(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<LoginCodeBody>,
) -> Result<(AppendHeaders<SetCookie>, Response), ApiError> {
    let request = ctx.request(pb::LoginWithCodeRequest {
        email: body.email,
        code: body.code,
        login_id: ctx.login_id(),
    });
    let reply = call("LoginWithCode", app.auth().login_with_code(request)).await?;
    let policy = app.cookies();
    let forget = AppendHeaders(cookies::forget(policy, cookies::login_code_cookie(policy)));
    let answer = first_factor_answer(&app, reply.user, reply.tokens, reply.mfa_challenge.as_ref())?;
    Ok((forget, answer))
}
