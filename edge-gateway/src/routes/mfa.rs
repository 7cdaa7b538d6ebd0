//! Second factors and sign-in by emailed code: the authenticator app (start, confirm, turn
//! off), new recovery codes, and the emailed-code sign-in whose request id lives in an
//! httpOnly cookie (`loginId`). Completing a challenge is in `session.rs`, next to login.

use axum::{
    extract::State,
    response::{AppendHeaders, IntoResponse, Response},
};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::registration::EmailBody;
use super::session::{mfa_required, signed_in};
use crate::cookies::{self, SetCookie};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::{CallContext, call};
use crate::views::{
    LoginCodeRequested, RecoveryCodes, RevokedSessions, SignInStep, TotpEnrollment, rfc3339,
};

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

/// The first code of the new secret, and the password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmTotpBody {
    /// A current 6-digit code of the authenticator app.
    #[serde(default)]
    #[schema(required = true, example = "123456")]
    pub code: String,
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub current_password: String,
}

/// One proof that it is the user: a current TOTP code, a recovery code, or the password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofBody {
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// The second factor itself: a current TOTP code or a recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorBody {
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

/// A body's field and the proof it makes when given.
pub type Given<P> = (Option<String>, fn(String) -> P);

/// The one proof a body gives, as a request's `oneof`: `None` when it gives none (the service
/// then names what is missing), 422 naming `proof` when it gives several.
pub fn one_proof<P, const N: usize>(given: [Given<P>; N]) -> Result<Option<P>, ApiError> {
    let mut given = given
        .into_iter()
        .filter_map(|(value, make)| Some(make(value?)));
    let first = given.next();
    if given.next().is_some() {
        return Err(ApiError::one_of(
            "proof",
            "give only one proof: totpCode, recoveryCode or password",
        ));
    }
    Ok(first)
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
    let answer = match &reply.mfa_challenge {
        Some(challenge) => mfa_required(&app, challenge),
        None => signed_in(&app, reply.user, reply.tokens, "Signed in")?.into_response(),
    };
    Ok((forget, answer))
}

/// Starts adding an authenticator app: a new secret (nothing is on until /mfa/totp/confirm).
#[utoipa::path(post, path = "/mfa/totp/start", tag = "mfa",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The secret and its otpauth:// URI", body = ApiResponse<TotpEnrollment>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "TOTP_ALREADY_ENABLED", body = ErrorBody),
    ))]
pub async fn start_totp(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<ApiResponse<TotpEnrollment>, ApiError> {
    let request = ctx.signed_in_request(pb::StartTotpEnrollmentRequest {})?;
    let reply = call(
        "StartTotpEnrollment",
        app.auth().start_totp_enrollment(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        TotpEnrollment {
            expires_at: rfc3339(reply.expire_time.as_ref()),
            secret: reply.secret,
            otpauth_uri: reply.otpauth_uri,
        },
        "Add this secret to an authenticator app, then confirm with a code",
    ))
}

/// Turns the authenticator app on with one of its codes and the password; the recovery codes
/// are in the answer, this once.
#[utoipa::path(post, path = "/mfa/totp/confirm", tag = "mfa", request_body = ConfirmTotpBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "TOTP is on; 10 recovery codes, shown once", body = ApiResponse<RecoveryCodes>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "TOTP_ENROLLMENT_NOT_FOUND or TOTP_ALREADY_ENABLED", body = ErrorBody),
        (status = 422, description = "MFA_CODE_INVALID (field code), WRONG_PASSWORD (field currentPassword) or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn confirm_totp(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<ConfirmTotpBody>,
) -> Result<ApiResponse<RecoveryCodes>, ApiError> {
    let request = ctx.signed_in_request(pb::ConfirmTotpEnrollmentRequest {
        code: body.code,
        current_password: body.current_password,
    })?;
    let reply = call(
        "ConfirmTotpEnrollment",
        app.auth().confirm_totp_enrollment(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        RecoveryCodes {
            recovery_codes: reply.recovery_codes,
        },
        "Two-factor sign-in is on; keep these recovery codes somewhere safe",
    ))
}

/// Turns the authenticator app off; the caller's other sessions end.
#[utoipa::path(post, path = "/mfa/totp/disable", tag = "mfa", request_body = ProofBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "TOTP is off; other sessions ended", body = ApiResponse<RevokedSessions>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "TOTP_NOT_ENABLED", body = ErrorBody),
        (status = 422, description = "MFA_REQUIRED (field proof), MFA_CODE_INVALID, TOTP_REPLAYED, WRONG_PASSWORD or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn disable_totp(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<ProofBody>,
) -> Result<ApiResponse<RevokedSessions>, ApiError> {
    use pb::disable_totp_request::Proof;
    let proof = one_proof([
        (body.totp_code, Proof::TotpCode),
        (body.recovery_code, Proof::RecoveryCode),
        (body.password, Proof::Password),
    ])?;
    let request = ctx.signed_in_request(pb::DisableTotpRequest { proof })?;
    let reply = call("DisableTotp", app.auth().disable_totp(request)).await?;
    Ok(ApiResponse::ok(
        RevokedSessions {
            revoked_session_count: reply.revoked_session_count,
        },
        "Two-factor sign-in is off",
    ))
}

/// New recovery codes (proven with the second factor itself, not the password); the old ones
/// stop working.
#[utoipa::path(post, path = "/mfa/recovery-codes", tag = "mfa", request_body = FactorBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "10 new recovery codes, shown once", body = ApiResponse<RecoveryCodes>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "TOTP_NOT_ENABLED", body = ErrorBody),
        (status = 422, description = "MFA_REQUIRED (field proof), MFA_CODE_INVALID, TOTP_REPLAYED or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn regenerate_recovery_codes(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<FactorBody>,
) -> Result<ApiResponse<RecoveryCodes>, ApiError> {
    use pb::regenerate_recovery_codes_request::Proof;
    let proof = one_proof([
        (body.totp_code, Proof::TotpCode),
        (body.recovery_code, Proof::RecoveryCode),
    ])?;
    let request = ctx.signed_in_request(pb::RegenerateRecoveryCodesRequest { proof })?;
    let reply = call(
        "RegenerateRecoveryCodes",
        app.auth().regenerate_recovery_codes(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        RecoveryCodes {
            recovery_codes: reply.recovery_codes,
        },
        "New recovery codes; the old ones no longer work",
    ))
}
