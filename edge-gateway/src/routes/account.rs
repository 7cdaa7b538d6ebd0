//! The signed-in caller: profile and sessions.

use axum::extract::{Path, State};
use baatcheet_auth_api::v1 as pb;

use crate::error::{ApiError, ErrorBody};
use crate::response::{ApiResponse, Empty};
use crate::state::AppState;
use crate::upstream::{CallContext, call, present};
use crate::views::{SessionList, UserData};

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
