//! Passkeys: adding one (its options, then the authenticator's answer with the password),
//! listing and removing them, and signing in with one alone (the options, with the sign-in's
//! id in the httpOnly `passkeyLogin` cookie, then the assertion). Options go out as
//! `{publicKey: {...}}` and credentials come in as the JSON of a PublicKeyCredential, binary
//! fields base64url either way (the shape of WebAuthn's `toJSON()` / `parse...FromJSON()`).

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
use crate::upstream::{CallContext, call, present};
use crate::views::{PasskeyOptions, PasskeyView, Passkeys, RevokedSessions, SignedIn};

/// The authenticator's new credential, a name for it, and the password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishRegistrationBody {
    /// The PublicKeyCredential `navigator.credentials.create()` returned, as JSON.
    #[schema(value_type = Object)]
    pub credential: Option<serde_json::Value>,
    /// 1-64 characters, like "Phone".
    #[serde(default)]
    #[schema(required = true, example = "Phone")]
    pub name: String,
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub current_password: String,
}

/// Which passkey to remove, and one proof that it is the user.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletePasskeyBody {
    /// The passkey's id (GET /passkeys).
    #[serde(default)]
    #[schema(required = true)]
    pub id: String,
    #[schema(format = Password)]
    pub password: Option<String>,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

/// A passkey's assertion.
#[derive(Deserialize, ToSchema)]
pub struct PasskeyLoginBody {
    /// The PublicKeyCredential `navigator.credentials.get()` returned, as JSON.
    #[schema(value_type = Object)]
    pub credential: Option<serde_json::Value>,
}

/// Options for adding a passkey to the signed-in account (nothing is added until
/// /passkeys/register/finish).
#[utoipa::path(post, path = "/passkeys/register/start", tag = "passkeys",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Options for navigator.credentials.create()", body = ApiResponse<PasskeyOptions>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "PASSKEY_LIMIT_REACHED", body = ErrorBody),
    ))]
pub async fn start_passkey_registration(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<ApiResponse<PasskeyOptions>, ApiError> {
    let request = ctx.signed_in_request(pb::StartPasskeyRegistrationRequest {})?;
    let reply = call(
        "StartPasskeyRegistration",
        app.auth().start_passkey_registration(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        PasskeyOptions::new(reply.creation_options, reply.expire_time.as_ref()),
        "Create the passkey, then send it with a name and the password",
    ))
}

/// Adds the passkey the authenticator created.
#[utoipa::path(post, path = "/passkeys/register/finish", tag = "passkeys",
    request_body = FinishRegistrationBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The passkey added", body = ApiResponse<PasskeyView>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "PASSKEY_REGISTRATION_NOT_FOUND, PASSKEY_ALREADY_REGISTERED or PASSKEY_LIMIT_REACHED", body = ErrorBody),
        (status = 422, description = "PASSKEY_INVALID (field credential, saying why), WRONG_PASSWORD (field currentPassword) or invalid fields", body = ErrorBody),
        (status = 429, description = "LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn finish_passkey_registration(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<FinishRegistrationBody>,
) -> Result<ApiResponse<PasskeyView>, ApiError> {
    let request = ctx.signed_in_request(pb::FinishPasskeyRegistrationRequest {
        credential: credential(body.credential)?,
        name: body.name,
        current_password: body.current_password,
    })?;
    let reply = call(
        "FinishPasskeyRegistration",
        app.auth().finish_passkey_registration(request),
    )
    .await?;
    let passkey = present(reply.passkey)?;
    Ok(ApiResponse::ok(passkey.into(), "Passkey added"))
}

/// The signed-in user's passkeys, oldest first.
#[utoipa::path(get, path = "/passkeys", tag = "passkeys",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The passkeys", body = ApiResponse<Passkeys>),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn list_passkeys(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<ApiResponse<Passkeys>, ApiError> {
    let request = ctx.signed_in_request(pb::ListPasskeysRequest {})?;
    let reply = call("ListPasskeys", app.auth().list_passkeys(request)).await?;
    Ok(ApiResponse::ok(
        Passkeys {
            passkeys: reply.passkeys.into_iter().map(PasskeyView::from).collect(),
        },
        "Passkeys",
    ))
}

/// Removes a passkey, with the password or a current second factor.
#[utoipa::path(post, path = "/passkeys/delete", tag = "passkeys", request_body = DeletePasskeyBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Removed; the caller's other sessions ended", body = ApiResponse<RevokedSessions>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "PASSKEY_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "MFA_REQUIRED (field proof), WRONG_PASSWORD, MFA_CODE_INVALID, TOTP_REPLAYED or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn delete_passkey(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<DeletePasskeyBody>,
) -> Result<ApiResponse<RevokedSessions>, ApiError> {
    use pb::delete_passkey_request::Proof;
    let proof = one_proof([
        (body.password, Proof::Password),
        (body.totp_code, Proof::TotpCode),
        (body.recovery_code, Proof::RecoveryCode),
    ])?;
    let request = ctx.signed_in_request(pb::DeletePasskeyRequest { id: body.id, proof })?;
    let reply = call("DeletePasskey", app.auth().delete_passkey(request)).await?;
    Ok(ApiResponse::ok(
        RevokedSessions {
            revoked_session_count: reply.revoked_session_count,
        },
        "Passkey removed",
    ))
}

/// Options for signing in with a passkey (any of this site's); the sign-in is bound to this
/// browser by an httpOnly cookie (`passkeyLogin`).
#[utoipa::path(post, path = "/login/passkey/start", tag = "session",
    responses(
        (status = 200, description = "Options for navigator.credentials.get(); the passkeyLogin cookie set", body = ApiResponse<PasskeyOptions>),
        (status = 429, description = "PASSKEY_LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn start_passkey_login(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<(AppendHeaders<SetCookie>, ApiResponse<PasskeyOptions>), ApiError> {
    let request = ctx.request(pb::StartPasskeyLoginRequest {});
    let reply = call("StartPasskeyLogin", app.auth().start_passkey_login(request)).await?;
    let policy = app.cookies();
    let held = cookies::hold(
        policy,
        cookies::passkey_login_cookie(policy),
        &reply.login_id,
    );
    Ok((
        AppendHeaders(held),
        ApiResponse::ok(
            PasskeyOptions::new(reply.request_options, reply.expire_time.as_ref()),
            "Sign in with a passkey",
        ),
    ))
}

/// Signs in with the passkey's assertion to this browser's options; sets both token cookies
/// and forgets the sign-in (used up by a well-formed try, right or wrong).
#[utoipa::path(post, path = "/login/passkey", tag = "session", request_body = PasskeyLoginBody,
    security(("passkeyLoginCookie" = [])),
    responses(
        (status = 200, description = "Signed in; token cookies set", body = ApiResponse<SignedIn>),
        (status = 403, description = "USER_DISABLED: an operator suspended the account", body = ErrorBody),
        (status = 404, description = "PASSKEY_LOGIN_NOT_FOUND (expired or used)", body = ErrorBody),
        (status = 422, description = "PASSKEY_INVALID (field credential, saying why: wrong challenge or origin, bad signature, not user-verified, not registered here, or a signature counter that went back), or invalid fields: credential, or loginId (no passkeyLogin cookie)", body = ErrorBody),
    ))]
pub async fn passkey_login(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<PasskeyLoginBody>,
) -> Result<(AppendHeaders<SetCookie>, SignedInResponse), ApiError> {
    let request = ctx.request(pb::FinishPasskeyLoginRequest {
        login_id: ctx.passkey_login_id(),
        credential: credential(body.credential)?,
    });
    let reply = call(
        "FinishPasskeyLogin",
        app.auth().finish_passkey_login(request),
    )
    .await?;
    let policy = app.cookies();
    Ok((
        AppendHeaders(cookies::forget(
            policy,
            cookies::passkey_login_cookie(policy),
        )),
        signed_in(&app, reply.user, reply.tokens, "Signed in")?,
    ))
}
