//! Access tokens in the flows: authenticating a [`Caller`] (a valid token whose session still
//! exists, so revocation takes effect at once), ValidateAccessToken, GetJwks, and starting a
//! session with its first token pair. The JWT itself is signed and checked by
//! `crypto::AccessTokens`.

use super::{AuthCore, ClientInfo, FlowError, TokenPair};
use crate::crypto::{AccessClaims, Jwk, RefreshToken, TokenError};
use crate::domain::{SessionId, SignIn, UserId, now_ms};
use crate::store::{NewSession, SessionRecord};

/// An authenticated caller: a valid access token whose session still exists.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub claims: AccessClaims,
}

impl AuthCore {
    /// Checks an access token and that its session has not ended. Revocation therefore takes
    /// effect at once, not when the token expires.
    pub async fn authenticate(&self, access_token: &str) -> Result<Caller, FlowError> {
        let claims = self.verified_claims(access_token)?;
        self.live_session(claims).await
    }

    /// The claims of a token whose signature, issuer, audience and expiry hold; its session
    /// is not looked at yet.
    pub(super) fn verified_claims(&self, access_token: &str) -> Result<AccessClaims, FlowError> {
        if access_token.is_empty() {
            return Err(FlowError::Unauthenticated);
        }
        self.tokens.verify(access_token).map_err(|e| match e {
            TokenError::Expired => FlowError::AccessTokenExpired,
            TokenError::Invalid => FlowError::AccessTokenInvalid,
        })
    }

    /// The caller of verified `claims`, when their session has not ended.
    pub(super) async fn live_session(&self, claims: AccessClaims) -> Result<Caller, FlowError> {
        let session_id = SessionId(claims.sid.clone());
        let session = self
            .stores
            .sessions
            .get_session(&session_id, now_ms())
            .await?;
        caller_of(claims, session)
    }

    /// ValidateAccessToken: for internal services.
    #[tracing::instrument(skip_all)]
    pub async fn validate_access_token(
        &self,
        access_token: &str,
    ) -> Result<AccessClaims, FlowError> {
        if access_token.trim().is_empty() {
            return Err(FlowError::invalid(
                "access_token",
                "access_token is required",
            ));
        }
        Ok(self.authenticate(access_token.trim()).await?.claims)
    }

    pub fn jwks(&self) -> Vec<Jwk> {
        self.tokens.jwks()
    }

    /// Starts a session for `user_id` and issues its first token pair.
    pub(super) async fn start_session(
        &self,
        user_id: &UserId,
        sign_in: SignIn,
        client: &ClientInfo,
    ) -> Result<TokenPair, FlowError> {
        let now = now_ms();
        let session_id = SessionId::generate();
        let refresh = RefreshToken::generate(&session_id);
        let refresh_expires_at = now
            + self
                .policy
                .refresh_ttl_ms
                .min(self.policy.session_max_lifetime_ms);
        let evicted = self
            .stores
            .sessions
            .create_session(
                &NewSession {
                    id: session_id.clone(),
                    user_id: user_id.clone(),
                    refresh_hash: refresh.hash(),
                    expires_at: refresh_expires_at,
                    user_agent: truncate(&client.user_agent, 512),
                    client_ip: truncate(&client.ip_text(), 64),
                    created_at: now,
                    sign_in,
                },
                self.policy.max_sessions_per_user,
            )
            .await?;
        for old in &evicted {
            tracing::info!(
                user_id = %user_id.0,
                evicted_session_id = %old.0,
                max_sessions = self.policy.max_sessions_per_user,
                "session limit reached: least recently used session ended"
            );
        }
        self.token_pair(user_id, refresh, refresh_expires_at)
    }

    pub(super) fn token_pair(
        &self,
        user_id: &UserId,
        refresh: RefreshToken,
        refresh_expires_at: i64,
    ) -> Result<TokenPair, FlowError> {
        let (access_token, access_expires_at) = self
            .tokens
            .issue(user_id, &refresh.session_id, now_ms())
            .map_err(FlowError::Internal)?;
        Ok(TokenPair {
            access_token,
            access_expires_at,
            refresh_token: refresh.expose().to_owned(),
            refresh_expires_at,
            session_id: refresh.session_id.clone(),
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The caller of verified `claims`, given their session as the store read it: refused unless
/// it is live and the token's own.
pub(super) fn caller_of(
    claims: AccessClaims,
    session: Option<SessionRecord>,
) -> Result<Caller, FlowError> {
    match session {
        Some(s) if s.user_id.0 == claims.sub => Ok(Caller {
            user_id: s.user_id,
            session_id: s.id,
            claims,
        }),
        _ => Err(FlowError::SessionRevoked),
    }
}
