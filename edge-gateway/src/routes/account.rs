//! The signed-in caller: profile and sessions.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{AppendHeaders, IntoResponse},
};
use baatcheet_auth_api::v1 as pb;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::cookies;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::{ApiResponse, Empty};
use crate::routes::proof::one_proof;
use crate::state::AppState;
use crate::upstream::{CallContext, call, present};
use crate::views::{ProfileUpdated, SessionList, UserData, rfc3339};

/// The profile fields to change: exactly those present in the body change (`""` too: it clears
/// `bio` or `avatarUrl`); a body with none of them is refused. Other fields are ignored.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileBody {
    /// At most 150 characters; `""` clears it.
    #[serde(default, deserialize_with = "present_string")]
    #[schema(nullable = false, example = "Chai first, then code.")]
    pub bio: Option<String>,
    /// An http(s) URL of at most 2048 characters; `""` clears it.
    #[serde(default, deserialize_with = "present_string")]
    #[schema(nullable = false, example = "https://example.com/asha.png")]
    pub avatar_url: Option<String>,
    /// 3-30 characters: letters, digits, `_`, `.`, `-`; unique. It changes at most once per
    /// cooldown (the service's USERNAME_CHANGE_COOLDOWN).
    #[serde(default, deserialize_with = "present_string")]
    #[schema(nullable = false, example = "asha_k")]
    pub username: Option<String>,
}

/// A field that is present must be a string: `null` is the wrong shape (400 INVALID_BODY), not
/// a way to leave the field out.
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// The caller's profile.
#[utoipa::path(get, path = "/me", tag = "account",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = ApiResponse<UserData>),
        (status = 401, description = "UNAUTHENTICATED, ACCESS_TOKEN_EXPIRED, ACCESS_TOKEN_INVALID or SESSION_REVOKED", body = ErrorBody),
    ))]
pub async fn me(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<ApiResponse<UserData>, ApiError> {
    let request = ctx.signed_in_request(pb::GetCurrentUserRequest {})?;
    let reply = call("GetCurrentUser", app.auth().get_current_user(request)).await?;
    let user = present(reply.user)?.into();
    Ok(ApiResponse::ok(UserData { user }, "Current user"))
}

/// Changes the caller's profile: the fields present in the body (the update mask of
/// UpdateProfile). A username change starts a cooldown; `nextUsernameChangeAt` says when it ends.
#[utoipa::path(patch, path = "/me", tag = "account", request_body = UpdateProfileBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Profile changed", body = ApiResponse<ProfileUpdated>),
        (status = 400, description = "INVALID_BODY: no field to change (`{}`), a field that is not a string, or not a JSON object; MALFORMED_JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED, ACCESS_TOKEN_EXPIRED, ACCESS_TOKEN_INVALID or SESSION_REVOKED", body = ErrorBody),
        (status = 409, description = "USERNAME_TAKEN (field username)", body = ErrorBody),
        (status = 422, description = "Invalid fields (bio, avatarUrl, username)", body = ErrorBody),
        (status = 429, description = "USERNAME_CHANGE_COOLDOWN, with Retry-After", body = ErrorBody),
    ))]
pub async fn update_me(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<UpdateProfileBody>,
) -> Result<ApiResponse<ProfileUpdated>, ApiError> {
    let fields = [
        ("bio", body.bio),
        ("avatar_url", body.avatar_url),
        ("username", body.username),
    ];
    let paths: Vec<String> = fields
        .iter()
        .filter(|(_, value)| value.is_some())
        .map(|(path, _)| (*path).to_owned())
        .collect();
    if paths.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BODY",
            "the request body names no field to change: send bio, avatarUrl or username",
        ));
    }
    let [(_, bio), (_, avatar_url), (_, username)] = fields;
    let request = ctx.signed_in_request(pb::UpdateProfileRequest {
        bio: bio.unwrap_or_default(),
        avatar_url: avatar_url.unwrap_or_default(),
        username: username.unwrap_or_default(),
        update_mask: Some(prost_types::FieldMask { paths }),
    })?;
    let reply = call("UpdateProfile", app.auth().update_profile(request)).await?;
    let data = ProfileUpdated {
        user: present(reply.user)?.into(),
        next_username_change_at: rfc3339(reply.next_username_change_time.as_ref()),
    };
    Ok(ApiResponse::ok(data, "Profile updated"))
}

/// The caller's live sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/sessions", tag = "account",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = ApiResponse<SessionList>),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn sessions(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<ApiResponse<SessionList>, ApiError> {
    let request = ctx.signed_in_request(pb::ListSessionsRequest {})?;
    let reply = call("ListSessions", app.auth().list_sessions(request)).await?;
    let sessions = reply.sessions.into_iter().map(Into::into).collect();
    Ok(ApiResponse::ok(SessionList { sessions }, "Sessions"))
}

/// Ends one of the caller's sessions.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "account",
    params(("id" = String, Path, description = "Session id")),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Session ended", body = ApiResponse<Empty>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "SESSION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "Not a session id", body = ErrorBody),
    ))]
pub async fn revoke_session(
    State(app): State<AppState>,
    ctx: CallContext,
    Path(id): Path<String>,
) -> Result<ApiResponse<Empty>, ApiError> {
    let request = ctx.signed_in_request(pb::RevokeSessionRequest { session_id: id })?;
    call("RevokeSession", app.auth().revoke_session(request))
        .await
        .map_err(|e| e.rename_field("sessionId", "id"))?;
    Ok(ApiResponse::ok(Empty {}, "Session ended"))
}

/// One proof that it is the user, to delete the account.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAccountBody {
    #[schema(format = Password)]
    pub password: Option<String>,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

/// Deletes the caller's account for good (every session, second factors, passkeys, the
/// profile; the email and username become free) and clears the cookies.
#[utoipa::path(post, path = "/account/delete", tag = "account", request_body = DeleteAccountBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted; cookies cleared; a goodbye notice mailed", body = ApiResponse<Empty>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "MFA_REQUIRED (field proof), WRONG_PASSWORD, MFA_CODE_INVALID, TOTP_REPLAYED or invalid fields", body = ErrorBody),
        (status = 429, description = "MFA_RATE_LIMITED or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn delete_account(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<DeleteAccountBody>,
) -> Result<impl IntoResponse, ApiError> {
    use pb::delete_account_request::Proof;
    let proof = one_proof([
        (body.password, Proof::Password),
        (body.totp_code, Proof::TotpCode),
        (body.recovery_code, Proof::RecoveryCode),
    ])?;
    let request = ctx.signed_in_request(pb::DeleteAccountRequest { proof })?;
    call("DeleteAccount", app.auth().delete_account(request)).await?;
    Ok((
        AppendHeaders(cookies::clear(app.cookies())),
        ApiResponse::ok(Empty {}, "Account deleted"),
    ))
}

/// The new address, and the password that proves it is the user.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailChangeBody {
    #[serde(default)]
    #[schema(required = true, format = Email)]
    pub new_email: String,
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub current_password: String,
}

/// `data` of an email change request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailChangeRequested {
    /// When the code mailed to the new address stops being accepted.
    pub code_expires_at: Option<String>,
}

/// The code mailed to the new address.
#[derive(Deserialize, ToSchema)]
pub struct EmailConfirmBody {
    #[serde(default)]
    #[schema(required = true, example = "123456")]
    pub code: String,
}

/// Asks to change the caller's email: a code goes to the new address (the same answer when
/// another account has it; then no code ever comes). The request belongs to this session.
#[utoipa::path(post, path = "/email/change", tag = "account", request_body = EmailChangeBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A code was mailed to the new address", body = ApiResponse<EmailChangeRequested>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "WRONG_PASSWORD, or invalid fields (newEmail: the account's email already)", body = ErrorBody),
        (status = 429, description = "EMAIL_CHANGE_RATE_LIMITED, CODE_DAILY_LIMIT or LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn request_email_change(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<EmailChangeBody>,
) -> Result<ApiResponse<EmailChangeRequested>, ApiError> {
    let request = ctx.signed_in_request(pb::RequestEmailChangeRequest {
        new_email: body.new_email,
        current_password: body.current_password,
    })?;
    let reply = call(
        "RequestEmailChange",
        app.auth().request_email_change(request),
    )
    .await?;
    Ok(ApiResponse::ok(
        EmailChangeRequested {
            code_expires_at: rfc3339(reply.code_expire_time.as_ref()),
        },
        "A code was sent to the new address",
    ))
}

/// Confirms an email change with the code mailed to the new address.
#[utoipa::path(post, path = "/email/confirm", tag = "account", request_body = EmailConfirmBody,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The email changed", body = ApiResponse<UserData>),
        (status = 400, description = "CODE_EXPIRED", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "EMAIL_CHANGE_NOT_FOUND: this session asked for none, or it ended", body = ErrorBody),
        (status = 409, description = "EMAIL_TAKEN (field newEmail): another account took the address meanwhile", body = ErrorBody),
        (status = 422, description = "CODE_INVALID or invalid fields", body = ErrorBody),
        (status = 429, description = "CODE_ATTEMPTS_EXHAUSTED, TOO_MANY_GUESSES_TODAY or CODE_GUESSES_RATE_LIMITED", body = ErrorBody),
    ))]
pub async fn confirm_email_change(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<EmailConfirmBody>,
) -> Result<ApiResponse<UserData>, ApiError> {
    let request = ctx.signed_in_request(pb::ConfirmEmailChangeRequest { code: body.code })?;
    let reply = call(
        "ConfirmEmailChange",
        app.auth().confirm_email_change(request),
    )
    .await?;
    let user = present(reply.user)?.into();
    Ok(ApiResponse::ok(UserData { user }, "Email changed"))
}

/// One entry of the caller's security log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEventView {
    pub id: String,
    /// sign_in, sign_in_failed, mfa_failed, sign_in_refused, password_changed, password_reset,
    /// email_changed, factor_enabled, factor_disabled, recovery_codes_replaced, sessions_ended,
    /// disabled, enabled, account_deleted.
    pub kind: String,
    pub at: Option<String>,
    /// How a session signed in, the factor, why sessions ended, ...
    pub detail: String,
    pub client_ip: String,
    pub user_agent: String,
    pub session_id: String,
}

/// `data` of GET security-events.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEvents {
    /// Newest first.
    pub events: Vec<SecurityEventView>,
    /// Pass as `pageToken` for the next (older) page; absent on the last.
    pub next_page_token: Option<String>,
}

/// The caller's recent security activity, newest first, a page at a time.
#[utoipa::path(get, path = "/security-events", tag = "account",
    params(
        ("pageSize" = Option<i32>, Query, description = "Entries per page, 1-100 (default 50)"),
        ("pageToken" = Option<String>, Query, description = "nextPageToken of the previous page"),
    ),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of the log", body = ApiResponse<SecurityEvents>),
        (status = 400, description = "A query string that does not decode", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "pageSize or pageToken invalid", body = ErrorBody),
    ))]
pub async fn security_events(
    State(app): State<AppState>,
    ctx: CallContext,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<ApiResponse<SecurityEvents>, ApiError> {
    let page_size = match query.get("pageSize").map(|s| s.trim()) {
        None | Some("") => 0,
        Some(raw) => raw.parse::<i32>().map_err(|_| {
            ApiError::one_of("pageSize", "pageSize must be a whole number from 1 to 100")
        })?,
    };
    let request = ctx.signed_in_request(pb::ListSecurityEventsRequest {
        page_size,
        page_token: query.get("pageToken").cloned().unwrap_or_default(),
    })?;
    let reply = call(
        "ListSecurityEvents",
        app.auth().list_security_events(request),
    )
    .await?;
    let events = reply
        .events
        .into_iter()
        .map(|e| SecurityEventView {
            at: rfc3339(e.time.as_ref()),
            id: e.id,
            kind: e.kind,
            detail: e.detail,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            session_id: e.session_id,
        })
        .collect();
    let next_page_token = (!reply.next_page_token.is_empty()).then_some(reply.next_page_token);
    Ok(ApiResponse::ok(
        SecurityEvents {
            events,
            next_page_token,
        },
        "Security activity",
    ))
}
