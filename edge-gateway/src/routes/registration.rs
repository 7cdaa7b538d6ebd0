//! Sign-up: register (a code is emailed), verify-otp (the user exists and is signed in),
//! resend-otp.

use axum::{extract::State, response::AppendHeaders};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::session::{SignedInResponse, signed_in};
use crate::cookies::{self, SetCookie};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::{CallContext, call, present};
use crate::views::{CodeDelivery, SignedIn};

/// A new account; nothing is stored until the emailed code is verified.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    /// 3-30 characters: letters, digits, `_`, `.`, `-`.
    #[serde(default)]
    #[schema(required = true, example = "asha_k")]
    pub username: String,
    #[serde(default)]
    #[schema(required = true, example = "asha@example.com")]
    pub email: String,
    /// 8-128 characters.
    #[serde(default)]
    #[schema(required = true, format = Password, example = "correct horse battery")]
    pub password: String,
    /// Optional, at most 150 characters.
    #[serde(default)]
    pub bio: String,
    /// Optional http(s) URL.
    #[serde(default)]
    pub avatar_url: String,
}

/// The emailed code of a pending registration.
#[derive(Deserialize, ToSchema)]
pub struct VerifyOtpBody {
    #[serde(default)]
    #[schema(required = true, example = "asha@example.com")]
    pub email: String,
    /// The 6-digit code (`code` is accepted too).
    #[serde(default, alias = "code")]
    #[schema(required = true, example = "123456")]
    pub otp: String,
}

/// The email of a pending registration.
#[derive(Deserialize, ToSchema)]
pub struct EmailBody {
    #[serde(default)]
    #[schema(required = true, example = "asha@example.com")]
    pub email: String,
}

/// Starts a registration and emails a 6-digit code. The registration is bound to this browser by
/// an httpOnly cookie (`registrationId`): only it can resend or verify the code.
#[utoipa::path(post, path = "/register", tag = "registration", request_body = RegisterBody,
    responses(
        (status = 201, description = "Code sent; the registration cookie set", body = ApiResponse<CodeDelivery>),
        (status = 409, description = "EMAIL_TAKEN or USERNAME_TAKEN", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "CODE_DAILY_LIMIT or SIGNUP_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn register(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(AppendHeaders<SetCookie>, ApiResponse<CodeDelivery>), ApiError> {
    let request = ctx.request(pb::RegisterRequest {
        username: body.username,
        email: body.email,
        password: body.password,
        bio: body.bio,
        avatar_url: body.avatar_url,
    });
    let reply = call("Register", app.auth().register(request)).await?;
    let policy = app.cookies();
    let held = cookies::hold(
        policy,
        cookies::registration_cookie(policy),
        &reply.registration_id,
    );
    Ok((
        AppendHeaders(held),
        ApiResponse::created(
            present(reply.delivery)?.into(),
            "Verification code sent; check your email",
        ),
    ))
}

/// Checks the emailed code of this browser's registration, creates the user and signs in (sets
/// both token cookies, clears the registration cookie).
#[utoipa::path(post, path = "/verify-otp", tag = "registration", request_body = VerifyOtpBody,
    security(("registrationCookie" = [])),
    responses(
        (status = 200, description = "Verified and signed in; token cookies set", body = ApiResponse<SignedIn>),
        (status = 400, description = "CODE_EXPIRED", body = ErrorBody),
        (status = 404, description = "REGISTRATION_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "EMAIL_TAKEN or USERNAME_TAKEN", body = ErrorBody),
        (status = 422, description = "CODE_INVALID (with attemptsRemaining), REGISTRATION_ID_REQUIRED (no registration cookie) or invalid fields", body = ErrorBody),
        (status = 429, description = "CODE_ATTEMPTS_EXHAUSTED or TOO_MANY_GUESSES_TODAY", body = ErrorBody),
    ))]
pub async fn verify_otp(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<VerifyOtpBody>,
) -> Result<(AppendHeaders<SetCookie>, SignedInResponse), ApiError> {
    let request = ctx.request(pb::VerifyRegistrationRequest {
        email: body.email,
        code: body.otp,
        registration_id: ctx.registration_id(),
    });
    let reply = call(
        "VerifyRegistration",
        app.auth().verify_registration(request),
    )
    .await
    .map_err(|e| e.rename_field("code", "otp"))?;
    let policy = app.cookies();
    let done = cookies::forget(policy, cookies::registration_cookie(policy));
    Ok((
        AppendHeaders(done),
        signed_in(&app, reply.user, reply.tokens, "Email verified; signed in")?,
    ))
}

/// Emails a new code for this browser's pending registration.
#[utoipa::path(post, path = "/resend-otp", tag = "registration", request_body = EmailBody,
    security(("registrationCookie" = [])),
    responses(
        (status = 200, description = "Code sent", body = ApiResponse<CodeDelivery>),
        (status = 404, description = "REGISTRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "Invalid email, or REGISTRATION_ID_REQUIRED (no registration cookie)", body = ErrorBody),
        (status = 429, description = "RESEND_COOLDOWN, CODE_DAILY_LIMIT, CODE_ATTEMPTS_EXHAUSTED or SIGNUP_RATE_LIMITED, with Retry-After where waiting helps", body = ErrorBody),
    ))]
pub async fn resend_otp(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<ApiResponse<CodeDelivery>, ApiError> {
    let request = ctx.request(pb::ResendVerificationCodeRequest {
        email: body.email,
        registration_id: ctx.registration_id(),
    });
    let reply = call(
        "ResendVerificationCode",
        app.auth().resend_verification_code(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        present(reply.delivery)?.into(),
        "A new verification code was sent",
    ))
}
