//! The gRPC transport: proto requests in, flows called, proto responses or mapped errors out.
//! No rule lives here.

mod convert;
pub mod internal;
pub mod malformed;
pub mod shed;
pub mod status;

use std::sync::Arc;

use baatcheet_auth_api::json;
use baatcheet_auth_api::v1::{self as pb, auth_service_server::AuthService};
use ipnet::IpNet;
use tonic::{Request, Response, Status};

use crate::flows::{
    Caller, ClientInfo, ProofInput, SharedCore, SignInOutcome, SignedIn, directory::ProfileInput,
    registration::RegisterInput,
};
use internal::ServiceAuth;
use status::to_status;

/// Metadata a gateway proves itself with on calls it makes for a browser (whose own access
/// token travels in `authorization`): `x-service-authorization: Bearer <service token>`.
pub const SERVICE_AUTHORIZATION: &str = "x-service-authorization";

/// `baatcheet.auth.v1.AuthService` over the shared flows.
pub struct AuthGrpc {
    core: SharedCore,
    /// Peers whose `x-client-ip` / `x-client-user-agent` are believed (TRUSTED_PROXIES) while
    /// no service token is configured.
    trusted_proxies: Arc<[IpNet]>,
    /// With service tokens configured, only a caller presenting one is believed.
    services: ServiceAuth,
}

impl AuthGrpc {
    pub fn new(core: SharedCore, trusted_proxies: Arc<[IpNet]>, services: ServiceAuth) -> Self {
        Self {
            core,
            trusted_proxies,
            services,
        }
    }

    /// The caller of an authenticated RPC, from `authorization: Bearer <token>`.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token =
            bearer(request).ok_or_else(|| to_status(crate::flows::FlowError::Unauthenticated))?;
        self.core.authenticate(token).await.map_err(to_status)
    }

    /// Client IP and user agent: what a trusted caller (the gateway) forwards in `x-client-ip`
    /// and `x-client-user-agent`; from anyone else those headers are ignored and the TCP peer
    /// and the gRPC client's own `user-agent` are used, so nobody can pose as another address.
    /// Trusted means: with service tokens configured, presenting one in
    /// [`SERVICE_AUTHORIZATION`]; without, connecting from TRUSTED_PROXIES.
    fn client_info<T>(&self, request: &Request<T>) -> ClientInfo {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // Canonical: on a dual-stack listener an IPv4 peer arrives as ::ffff:a.b.c.d.
        let peer = request.remote_addr().map(|a| a.ip().to_canonical());
        let trusted = if self.services.configured() {
            self.services
                .identify(request, SERVICE_AUTHORIZATION)
                .is_some()
        } else {
            peer.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)))
        };
        let forwarded = |name| header(name).filter(|_| trusted);
        ClientInfo {
            ip: forwarded("x-client-ip")
                .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
                .map(|ip| ip.to_canonical())
                .or(peer),
            user_agent: forwarded("x-client-user-agent")
                .or_else(|| header("user-agent"))
                .unwrap_or_default(),
        }
    }
}

fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    baatcheet_runtime::bearer::token(value)
}

fn ok<T>(message: T) -> Result<Response<T>, Status> {
    Ok(Response::new(message))
}

/// A first factor's outcome as the fields Login and LoginWithCode share: user and tokens, or
/// the challenge.
fn outcome(
    outcome: SignInOutcome,
) -> (
    Option<pb::User>,
    Option<pb::TokenPair>,
    Option<pb::MfaChallenge>,
) {
    match outcome {
        SignInOutcome::SignedIn(signed_in) => {
            let SignedIn { user, tokens } = *signed_in;
            (
                Some(convert::user(user)),
                Some(convert::tokens(tokens)),
                None,
            )
        }
        SignInOutcome::MfaRequired(challenge) => (None, None, Some(convert::challenge(challenge))),
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.into_inner();
        let input = RegisterInput {
            username: &r.username,
            email: &r.email,
            password: &r.password,
            bio: &r.bio,
            avatar_url: &r.avatar_url,
        };
        let delivery = self
            .core
            .register(input, &client)
            .await
            .map_err(to_status)?;
        ok(pb::RegisterResponse {
            registration_id: delivery.id.as_str().to_owned(),
            delivery: Some(convert::delivery(delivery)),
        })
    }

    async fn resend_verification_code(
        &self,
        request: Request<pb::ResendVerificationCodeRequest>,
    ) -> Result<Response<pb::ResendVerificationCodeResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.get_ref();
        let delivery = self
            .core
            .resend_verification_code(&r.email, &r.registration_id, &client)
            .await
            .map_err(to_status)?;
        ok(pb::ResendVerificationCodeResponse {
            delivery: Some(convert::delivery(delivery)),
        })
    }

    async fn verify_registration(
        &self,
        request: Request<pb::VerifyRegistrationRequest>,
    ) -> Result<Response<pb::VerifyRegistrationResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.get_ref();
        let signed_in = self
            .core
            .verify_registration(&r.email, &r.code, &r.registration_id, &client)
            .await
            .map_err(to_status)?;
        ok(pb::VerifyRegistrationResponse {
            user: Some(convert::user(signed_in.user)),
            tokens: Some(convert::tokens(signed_in.tokens)),
        })
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.get_ref();
        let (user, tokens, mfa_challenge) = outcome(
            self.core
                .login(&r.identifier, &r.password, &client)
                .await
                .map_err(to_status)?,
        );
        ok(pb::LoginResponse {
            user,
            tokens,
            mfa_challenge,
        })
    }

    async fn request_login_code(
        &self,
        request: Request<pb::RequestLoginCodeRequest>,
    ) -> Result<Response<pb::RequestLoginCodeResponse>, Status> {
        let client = self.client_info(&request);
        let requested = self
            .core
            .request_login_code(&request.get_ref().email, &client)
            .await
            .map_err(to_status)?;
        ok(pb::RequestLoginCodeResponse {
            code_ttl: prost_types::Duration::try_from(requested.code_ttl).ok(),
            login_id: requested.id.as_str().to_owned(),
        })
    }

    async fn login_with_code(
        &self,
        request: Request<pb::LoginWithCodeRequest>,
    ) -> Result<Response<pb::LoginWithCodeResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.get_ref();
        let (user, tokens, mfa_challenge) = outcome(
            self.core
                .login_with_code(&r.email, &r.code, &r.login_id, &client)
                .await
                .map_err(to_status)?,
        );
        ok(pb::LoginWithCodeResponse {
            user,
            tokens,
            mfa_challenge,
        })
    }

    async fn complete_mfa_challenge(
        &self,
        request: Request<pb::CompleteMfaChallengeRequest>,
    ) -> Result<Response<pb::CompleteMfaChallengeResponse>, Status> {
        use pb::complete_mfa_challenge_request::Factor;
        let client = self.client_info(&request);
        let r = request.get_ref();
        let passkey = match &r.factor {
            Some(Factor::PasskeyCredential(c)) => Some(json::from_struct(c.clone())),
            _ => None,
        };
        let proof = match (&r.factor, &passkey) {
            (Some(Factor::TotpCode(code)), _) => ProofInput::totp(code),
            (Some(Factor::RecoveryCode(code)), _) => ProofInput::recovery(code),
            (_, Some(credential)) => ProofInput::passkey(credential),
            _ => ProofInput::default(),
        };
        let signed_in = self
            .core
            .complete_mfa_challenge(&r.challenge_id, proof, &client)
            .await
            .map_err(to_status)?;
        ok(pb::CompleteMfaChallengeResponse {
            user: Some(convert::user(signed_in.user)),
            tokens: Some(convert::tokens(signed_in.tokens)),
        })
    }

    async fn start_passkey_registration(
        &self,
        request: Request<pb::StartPasskeyRegistrationRequest>,
    ) -> Result<Response<pb::StartPasskeyRegistrationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let ceremony = self
            .core
            .start_passkey_registration(&caller)
            .await
            .map_err(to_status)?;
        ok(pb::StartPasskeyRegistrationResponse {
            creation_options: json::to_struct(ceremony.options),
            expire_time: convert::timestamp(ceremony.expires_at),
        })
    }

    async fn finish_passkey_registration(
        &self,
        request: Request<pb::FinishPasskeyRegistrationRequest>,
    ) -> Result<Response<pb::FinishPasskeyRegistrationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let passkey = self
            .core
            .finish_passkey_registration(
                &caller,
                r.credential.map(json::from_struct),
                &r.name,
                &r.current_password,
            )
            .await
            .map_err(to_status)?;
        ok(pb::FinishPasskeyRegistrationResponse {
            passkey: Some(convert::passkey(passkey)),
        })
    }

    async fn list_passkeys(
        &self,
        request: Request<pb::ListPasskeysRequest>,
    ) -> Result<Response<pb::ListPasskeysResponse>, Status> {
        let caller = self.caller(&request).await?;
        let passkeys = self.core.list_passkeys(&caller).await.map_err(to_status)?;
        ok(pb::ListPasskeysResponse {
            passkeys: passkeys.into_iter().map(convert::passkey).collect(),
        })
    }

    async fn delete_passkey(
        &self,
        request: Request<pb::DeletePasskeyRequest>,
    ) -> Result<Response<pb::DeletePasskeyResponse>, Status> {
        let caller = self.caller(&request).await?;
        use pb::delete_passkey_request::Proof;
        let r = request.get_ref();
        let proof = match &r.proof {
            Some(Proof::Password(password)) => ProofInput::password(password),
            Some(Proof::TotpCode(code)) => ProofInput::totp(code),
            Some(Proof::RecoveryCode(code)) => ProofInput::recovery(code),
            None => ProofInput::default(),
        };
        let ended = self
            .core
            .delete_passkey(&caller, &r.id, proof)
            .await
            .map_err(to_status)?;
        ok(pb::DeletePasskeyResponse {
            revoked_session_count: ended as i32,
        })
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let caller = self.caller(&request).await?;
        use pb::delete_account_request::Proof;
        let proof = match &request.get_ref().proof {
            Some(Proof::Password(password)) => ProofInput::password(password),
            Some(Proof::TotpCode(code)) => ProofInput::totp(code),
            Some(Proof::RecoveryCode(code)) => ProofInput::recovery(code),
            None => ProofInput::default(),
        };
        self.core
            .delete_account(&caller, proof)
            .await
            .map_err(to_status)?;
        ok(pb::DeleteAccountResponse {})
    }

    async fn start_passkey_login(
        &self,
        request: Request<pb::StartPasskeyLoginRequest>,
    ) -> Result<Response<pb::StartPasskeyLoginResponse>, Status> {
        let client = self.client_info(&request);
        let ceremony = self
            .core
            .start_passkey_login(&client)
            .await
            .map_err(to_status)?;
        ok(pb::StartPasskeyLoginResponse {
            login_id: ceremony
                .login_id
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            request_options: json::to_struct(ceremony.options),
            expire_time: convert::timestamp(ceremony.expires_at),
        })
    }

    async fn finish_passkey_login(
        &self,
        request: Request<pb::FinishPasskeyLoginRequest>,
    ) -> Result<Response<pb::FinishPasskeyLoginResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.into_inner();
        let signed_in = self
            .core
            .finish_passkey_login(&r.login_id, r.credential.map(json::from_struct), &client)
            .await
            .map_err(to_status)?;
        ok(pb::FinishPasskeyLoginResponse {
            user: Some(convert::user(signed_in.user)),
            tokens: Some(convert::tokens(signed_in.tokens)),
        })
    }

    async fn start_totp_enrollment(
        &self,
        request: Request<pb::StartTotpEnrollmentRequest>,
    ) -> Result<Response<pb::StartTotpEnrollmentResponse>, Status> {
        let caller = self.caller(&request).await?;
        let enrollment = self
            .core
            .start_totp_enrollment(&caller)
            .await
            .map_err(to_status)?;
        ok(pb::StartTotpEnrollmentResponse {
            secret: enrollment.secret,
            otpauth_uri: enrollment.uri,
            expire_time: convert::timestamp(enrollment.expires_at),
        })
    }

    async fn confirm_totp_enrollment(
        &self,
        request: Request<pb::ConfirmTotpEnrollmentRequest>,
    ) -> Result<Response<pb::ConfirmTotpEnrollmentResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let (codes, ended) = self
            .core
            .confirm_totp_enrollment(&caller, &r.code, &r.current_password)
            .await
            .map_err(to_status)?;
        ok(pb::ConfirmTotpEnrollmentResponse {
            recovery_codes: codes.iter().map(|c| c.display()).collect(),
            revoked_session_count: ended as i32,
        })
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Result<Response<pb::DisableTotpResponse>, Status> {
        let caller = self.caller(&request).await?;
        use pb::disable_totp_request::Proof;
        let proof = match &request.get_ref().proof {
            Some(Proof::TotpCode(code)) => ProofInput::totp(code),
            Some(Proof::RecoveryCode(code)) => ProofInput::recovery(code),
            Some(Proof::Password(password)) => ProofInput::password(password),
            None => ProofInput::default(),
        };
        let n = self
            .core
            .disable_totp(&caller, proof)
            .await
            .map_err(to_status)?;
        ok(pb::DisableTotpResponse {
            revoked_session_count: n as i32,
        })
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<pb::RegenerateRecoveryCodesResponse>, Status> {
        let caller = self.caller(&request).await?;
        use pb::regenerate_recovery_codes_request::Proof;
        let proof = match &request.get_ref().proof {
            Some(Proof::TotpCode(code)) => ProofInput::totp(code),
            Some(Proof::RecoveryCode(code)) => ProofInput::recovery(code),
            None => ProofInput::default(),
        };
        let codes = self
            .core
            .regenerate_recovery_codes(&caller, proof)
            .await
            .map_err(to_status)?;
        ok(pb::RegenerateRecoveryCodesResponse {
            recovery_codes: codes.iter().map(|c| c.display()).collect(),
        })
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::RefreshSessionResponse>, Status> {
        let tokens = self
            .core
            .refresh_session(&request.get_ref().refresh_token)
            .await
            .map_err(to_status)?;
        ok(pb::RefreshSessionResponse {
            tokens: Some(convert::tokens(tokens)),
        })
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let refresh = request.get_ref().refresh_token.trim().to_owned();
        // The access token matters without a refresh token, and as the fallback when the
        // refresh token is refused (a stale cookie must not leave the session alive).
        let caller = if refresh.is_empty() {
            Some(self.caller(&request).await?)
        } else if bearer(&request).is_some() {
            self.caller(&request).await.ok()
        } else {
            None
        };
        self.core
            .logout(&refresh, caller.as_ref())
            .await
            .map_err(to_status)?;
        ok(pb::LogoutResponse {})
    }

    async fn logout_all(
        &self,
        request: Request<pb::LogoutAllRequest>,
    ) -> Result<Response<pb::LogoutAllResponse>, Status> {
        let caller = self.caller(&request).await?;
        let n = self.core.logout_all(&caller).await.map_err(to_status)?;
        ok(pb::LogoutAllResponse {
            revoked_session_count: n as i32,
        })
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let sessions = self.core.list_sessions(&caller).await.map_err(to_status)?;
        ok(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(convert::session).collect(),
        })
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.core
            .revoke_session(&caller, &request.get_ref().session_id)
            .await
            .map_err(to_status)?;
        ok(pb::RevokeSessionResponse {})
    }

    async fn list_security_events(
        &self,
        request: Request<pb::ListSecurityEventsRequest>,
    ) -> Result<Response<pb::ListSecurityEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let page = self
            .core
            .list_security_events(&caller, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        let (events, next_page_token) = convert::security_page(page);
        ok(pb::ListSecurityEventsResponse {
            events,
            next_page_token,
        })
    }

    async fn request_email_change(
        &self,
        request: Request<pb::RequestEmailChangeRequest>,
    ) -> Result<Response<pb::RequestEmailChangeResponse>, Status> {
        let caller = self.caller(&request).await?;
        let client = self.client_info(&request);
        let r = request.get_ref();
        let requested = self
            .core
            .request_email_change(&caller, &r.new_email, &r.current_password, &client)
            .await
            .map_err(to_status)?;
        ok(pb::RequestEmailChangeResponse {
            code_ttl: prost_types::Duration::try_from(requested.code_ttl).ok(),
            code_expire_time: convert::timestamp(requested.issued.code_expires_at),
        })
    }

    async fn confirm_email_change(
        &self,
        request: Request<pb::ConfirmEmailChangeRequest>,
    ) -> Result<Response<pb::ConfirmEmailChangeResponse>, Status> {
        let caller = self.caller(&request).await?;
        let client = self.client_info(&request);
        let user = self
            .core
            .confirm_email_change(&caller, &request.get_ref().code, &client)
            .await
            .map_err(to_status)?;
        let factors = self.core.factors(&caller).await.map_err(to_status)?;
        ok(pb::ConfirmEmailChangeResponse {
            user: Some(convert::own_user(user, factors)),
        })
    }

    async fn get_current_user(
        &self,
        request: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::GetCurrentUserResponse>, Status> {
        let token =
            bearer(&request).ok_or_else(|| to_status(crate::flows::FlowError::Unauthenticated))?;
        let (user, factors) = self
            .core
            .current_user_by_token(token)
            .await
            .map_err(to_status)?;
        ok(pb::GetCurrentUserResponse {
            user: Some(convert::own_user(user, factors)),
        })
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let paths = r
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        let (user, next_rename) = self
            .core
            .update_profile(
                &caller,
                ProfileInput {
                    paths: &paths,
                    bio: &r.bio,
                    avatar_url: &r.avatar_url,
                    username: &r.username,
                },
            )
            .await
            .map_err(to_status)?;
        ok(pb::UpdateProfileResponse {
            user: Some(convert::user(user)),
            next_username_change_time: convert::timestamp(next_rename),
        })
    }

    async fn set_presence(
        &self,
        request: Request<pb::SetPresenceRequest>,
    ) -> Result<Response<pb::SetPresenceResponse>, Status> {
        let caller = self.caller(&request).await?;
        let presence = self
            .core
            .set_presence(&caller, convert::status_from(request.get_ref().status))
            .await
            .map_err(to_status)?;
        ok(pb::SetPresenceResponse {
            presence: Some(convert::presence(presence)),
        })
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let client = self.client_info(&request);
        let requested = self
            .core
            .request_password_reset(&request.get_ref().email, &client)
            .await
            .map_err(to_status)?;
        ok(pb::RequestPasswordResetResponse {
            code_ttl: prost_types::Duration::try_from(requested.code_ttl).ok(),
            resend_available_time: convert::timestamp(requested.issued.resend_at),
            reset_id: requested.id.as_str().to_owned(),
        })
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let client = self.client_info(&request);
        let r = request.get_ref();
        let n = self
            .core
            .reset_password(&r.email, &r.reset_id, &r.code, &r.new_password, &client)
            .await
            .map_err(to_status)?;
        ok(pb::ResetPasswordResponse {
            revoked_session_count: n as i32,
        })
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let n = self
            .core
            .change_password(&caller, &r.current_password, &r.new_password)
            .await
            .map_err(to_status)?;
        ok(pb::ChangePasswordResponse {
            revoked_session_count: n as i32,
        })
    }

    async fn validate_access_token(
        &self,
        request: Request<pb::ValidateAccessTokenRequest>,
    ) -> Result<Response<pb::ValidateAccessTokenResponse>, Status> {
        let claims = self
            .core
            .validate_access_token(&request.get_ref().access_token)
            .await
            .map_err(to_status)?;
        ok(pb::ValidateAccessTokenResponse {
            claims: Some(convert::claims(claims)),
        })
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self.core.jwks();
        let jwks_json = serde_json::json!({ "keys": keys }).to_string();
        ok(pb::GetJwksResponse {
            keys: keys.into_iter().map(convert::jwk).collect(),
            jwks_json,
            max_age: prost_types::Duration::try_from(self.core.tokens.jwks_max_age()).ok(),
        })
    }
}
