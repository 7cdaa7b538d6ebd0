//! Second factors: completing a sign-in's challenge (its id in the httpOnly `mfaChallenge`
//! cookie that login set), the authenticator app (start, confirm, turn off) and new recovery
//! codes.

use axum::{extract::State, response::AppendHeaders};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use super::proof::{credential, one_proof};
use super::session::{SignedInResponse, signed_in};
use crate::cookies::{self, SetCookie};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::{CallContext, call};
use crate::views::{
    RecoveryCodes, RevokedSessions, SignedIn, TotpEnabled, TotpEnrollment, rfc3339,
};

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

/// A TOTP code, a recovery code or a passkey's assertion.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteMfaBody {
    /// The current 6-digit code of the authenticator app.
    pub totp_code: Option<String>,
    /// One of the recovery codes (xxxxx-xxxxx); used up.
    pub recovery_code: Option<String>,
    /// The PublicKeyCredential `navigator.credentials.get()` returned for the challenge's
    /// `passkey` options, as JSON.
    #[schema(value_type = Option<Object>)]
    pub passkey_credential: Option<serde_json::Value>,
}

/// Completes this browser's sign-in (its `mfaChallenge` cookie) with a second factor; sets
/// both token cookies and forgets the challenge.
#[utoipa::path(post, path = "/mfa/complete", tag = "session", request_body = CompleteMfaBody,
    security(("mfaCookie" = [])),
    responses(
        (status = 200, description = "Signed in; token cookies set", body = ApiResponse<SignedIn>),
        (status = 403, description = "USER_DISABLED: an operator suspended the account", body = ErrorBody),
        (status = 404, description = "MFA_CHALLENGE_NOT_FOUND (expired, completed, or the password changed)", body = ErrorBody),
        (status = 422, description = "MFA_CODE_INVALID or TOTP_REPLAYED (field totpCode, recoveryCode or passkeyCredential), PASSKEY_INVALID (field passkeyCredential: a signature counter that went back, or a passkey removed meanwhile), or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn complete_mfa(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<CompleteMfaBody>,
) -> Result<(AppendHeaders<SetCookie>, SignedInResponse), ApiError> {
    use pb::complete_mfa_challenge_request::Factor;
    let passkey = credential(body.passkey_credential)
        .map_err(|e| e.rename_field("credential", "passkeyCredential"))?;
    let factor = one_proof([
        (body.totp_code, Factor::TotpCode),
        (body.recovery_code, Factor::RecoveryCode),
    ])?;
    let factor = match (factor, passkey) {
        (None, Some(credential)) => Some(Factor::PasskeyCredential(credential)),
        (Some(_), Some(_)) => {
            return Err(ApiError::one_of(
                "proof",
                "give only one of the proof fields",
            ));
        }
        (factor, None) => factor,
    };
    let request = ctx.request(pb::CompleteMfaChallengeRequest {
        challenge_id: ctx.mfa_challenge_id(),
        factor,
    });
    let reply = call(
        "CompleteMfaChallenge",
        app.auth().complete_mfa_challenge(request),
    )
    .await?;
    let policy = app.cookies();
    Ok((
        AppendHeaders(cookies::forget(policy, cookies::mfa_cookie(policy))),
        signed_in(&app, reply.user, reply.tokens, "Signed in")?,
    ))
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
        (status = 200, description = "TOTP is on (the other sessions ended); 10 recovery codes, shown once", body = ApiResponse<TotpEnabled>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "TOTP_ENROLLMENT_NOT_FOUND or TOTP_ALREADY_ENABLED", body = ErrorBody),
        (status = 422, description = "MFA_CODE_INVALID (field code), WRONG_PASSWORD (field currentPassword) or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn confirm_totp(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<ConfirmTotpBody>,
) -> Result<ApiResponse<TotpEnabled>, ApiError> {
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
        TotpEnabled {
            recovery_codes: reply.recovery_codes,
            revoked_session_count: reply.revoked_session_count,
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
