//! Sessions of the browser: login, refresh, logout, logout-all. Token pairs go into cookies
//! here and nowhere else.

use axum::{
    extract::State,
    http::StatusCode,
    response::{AppendHeaders, IntoResponse, Response},
};
use baatcheet_auth_api::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::cookies::{self, SetCookies};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::response::{ApiResponse, Empty};
use crate::state::AppState;
use crate::upstream::{CallContext, call, present};
use crate::views::{MfaRequired, RevokedSessions, SessionTokens, SignInStep, SignedIn};

/// Answer of a sign-in: both cookies and the user.
pub type SignedInResponse = (AppendHeaders<SetCookies>, ApiResponse<SignedIn>);

/// Sign in with an email or a username. `identifier` takes either; `email` or `username` are
/// accepted instead, as the seed's clients send them.
#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(example = "asha@example.com")]
    pub identifier: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub password: String,
}

/// Signs in; sets both cookies. For an account with a second factor, no tokens yet: the
/// answer is `{mfaRequired: true, factors, expiresAt}` and the challenge's id goes into an
/// httpOnly cookie (`mfaChallenge`) for POST /mfa/complete.
#[utoipa::path(post, path = "/login", tag = "session", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in and the token cookies set; or, for an account with a second factor, mfaRequired and the mfaChallenge cookie", body = ApiResponse<SignInStep>),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 403, description = "USER_DISABLED: an operator suspended the account", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "LOGIN_RATE_LIMITED, with Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(app): State<AppState>,
    ctx: CallContext,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let (field, identifier) = match (body.identifier, body.email, body.username) {
        (Some(i), _, _) => ("identifier", i),
        (None, Some(e), _) => ("email", e),
        (None, None, Some(u)) => ("username", u),
        (None, None, None) => ("identifier", String::new()),
    };
    let request = ctx.request(pb::LoginRequest {
        identifier,
        password: body.password,
    });
    let reply = call("Login", app.auth().login(request))
        .await
        .map_err(|e| e.rename_field("identifier", field))?;
    first_factor_answer(&app, reply.user, reply.tokens, reply.mfa_challenge.as_ref())
}

/// The answer to a first factor (login, login by code): the session, or for an account with a
/// second factor the challenge. A challenge left from an earlier sign-in of this browser is of
/// no use once a session starts, so its cookie goes.
pub fn first_factor_answer(
    app: &AppState,
    user: Option<pb::User>,
    tokens: Option<pb::TokenPair>,
    challenge: Option<&pb::MfaChallenge>,
) -> Result<Response, ApiError> {
    if let Some(challenge) = challenge {
        return Ok(mfa_required(app, challenge));
    }
    let policy = app.cookies();
    Ok((
        AppendHeaders(cookies::forget(policy, cookies::mfa_cookie(policy))),
        signed_in(app, user, tokens, "Signed in")?,
    )
        .into_response())
}

/// The answer to a first factor of an account with a second one: the challenge's id in an
/// httpOnly cookie, what completes it in the body, and no token.
fn mfa_required(app: &AppState, challenge: &pb::MfaChallenge) -> Response {
    let policy = app.cookies();
    let held = cookies::hold(policy, cookies::mfa_cookie(policy), &challenge.challenge_id);
    (
        AppendHeaders(held),
        ApiResponse::ok(MfaRequired::from(challenge), "Second factor required"),
    )
        .into_response()
}

/// Sets the cookies of a new session and answers with its user.
pub fn signed_in(
    app: &AppState,
    user: Option<pb::User>,
    tokens: Option<pb::TokenPair>,
    message: &str,
) -> Result<SignedInResponse, ApiError> {
    let (user, tokens) = (present(user)?, present(tokens)?);
    let data = SignedIn {
        user: user.into(),
        session: SessionTokens::from(&tokens),
    };
    Ok((
        AppendHeaders(cookies::issue(app.cookies(), &tokens)),
        ApiResponse::ok(data, message),
    ))
}

/// Rotates the refresh cookie and sets both new cookies. A refused refresh token clears them.
#[utoipa::path(post, path = "/refresh", tag = "session",
    security(("refreshCookie" = [])),
    responses(
        (status = 200, description = "New token cookies set", body = ApiResponse<SessionTokens>),
        (status = 401, description = "No refresh cookie, REFRESH_TOKEN_INVALID, REFRESH_TOKEN_REUSED or SESSION_EXPIRED; cookies cleared", body = ErrorBody),
    ))]
pub async fn refresh(State(app): State<AppState>, ctx: CallContext) -> Response {
    let token = match ctx.refresh_token() {
        Ok(Some(token)) => token,
        Ok(None) => {
            return ApiError::unauthenticated("no refresh token cookie; sign in again")
                .into_response();
        }
        // Oversized: refused like a token the service refused, cookies cleared below.
        Err(e) => return (AppendHeaders(cookies::clear(app.cookies())), e).into_response(),
    };
    let request = ctx.request(pb::RefreshSessionRequest {
        refresh_token: token.to_owned(),
    });
    let result = call("RefreshSession", app.auth().refresh_session(request))
        .await
        .and_then(|reply| present(reply.tokens));
    match result {
        Ok(tokens) => (
            AppendHeaders(cookies::issue(app.cookies(), &tokens)),
            ApiResponse::ok(SessionTokens::from(&tokens), "Tokens refreshed"),
        )
            .into_response(),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            (AppendHeaders(cookies::clear(app.cookies())), e).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Ends this session (the one of the refresh cookie, else of the access token) and clears both
/// cookies, whatever the service answers.
#[utoipa::path(post, path = "/logout", tag = "session",
    security(("refreshCookie" = []), ("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged out; cookies cleared", body = ApiResponse<Empty>),
        (status = 401, description = "No session to end; cookies cleared anyway", body = ErrorBody),
    ))]
pub async fn logout(State(app): State<AppState>, ctx: CallContext) -> LogoutResponse {
    end_session(app, ctx).await
}

/// The same as POST /logout, as the seed offers it (links and old clients). It changes state,
/// so it passes the same CSRF check.
#[utoipa::path(get, path = "/logout", tag = "session",
    security(("refreshCookie" = []), ("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged out; cookies cleared", body = ApiResponse<Empty>),
        (status = 401, description = "No session to end; cookies cleared anyway", body = ErrorBody),
    ))]
pub async fn logout_get(State(app): State<AppState>, ctx: CallContext) -> LogoutResponse {
    end_session(app, ctx).await
}

type LogoutResponse = (
    AppendHeaders<SetCookies>,
    Result<ApiResponse<Empty>, ApiError>,
);

async fn end_session(app: AppState, ctx: CallContext) -> LogoutResponse {
    let result = async {
        // The refresh cookie names the session (the service falls back to the access token
        // when it refuses it); without a usable one, the access token does. An oversized
        // refresh cookie is never forwarded, but the session it came with still ends.
        let request = match ctx.refresh_token() {
            Ok(Some(refresh)) => ctx.request(pb::LogoutRequest {
                refresh_token: refresh.to_owned(),
            }),
            Ok(None) | Err(_) => ctx.signed_in_request(pb::LogoutRequest::default())?,
        };
        call("Logout", app.auth().logout(request)).await
    }
    .await
    .map(|_| ApiResponse::ok(Empty {}, "Logged out"));
    (AppendHeaders(cookies::clear(app.cookies())), result)
}

/// Ends every session of the caller and clears both cookies.
#[utoipa::path(post, path = "/logout-all", tag = "session",
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every session ended; cookies cleared", body = ApiResponse<RevokedSessions>),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn logout_all(
    State(app): State<AppState>,
    ctx: CallContext,
) -> Result<(AppendHeaders<SetCookies>, ApiResponse<RevokedSessions>), ApiError> {
    let reply = call(
        "LogoutAll",
        app.auth()
            .logout_all(ctx.signed_in_request(pb::LogoutAllRequest {})?),
    )
    .await?;
    Ok((
        AppendHeaders(cookies::clear(app.cookies())),
        ApiResponse::ok(
            RevokedSessions {
                revoked_session_count: reply.revoked_session_count,
            },
            "Logged out everywhere",
        ),
    ))
}
