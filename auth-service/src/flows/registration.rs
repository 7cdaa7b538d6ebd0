use super::{AuthCore, ClientInfo, CodeDelivery, FlowError, SignedIn};
use crate::domain::{
    Code, Email, NewUser, Password, Profile, UserStatus, Username, Violations, now_ms,
};
use crate::store::{CodeIssued, CodePurpose, IssueError, PendingPayload, VerifyError};

/// Raw fields of a Register request.
pub struct RegisterInput<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub bio: &'a str,
    pub avatar_url: &'a str,
}

impl AuthCore {
    /// Register: validates, refuses taken email/username, hashes the password now (so no
    /// plaintext is ever stored), records a pending registration and mails a code.
    #[tracing::instrument(skip_all, fields(email = %input.email.trim()))]
    pub async fn register(&self, input: RegisterInput<'_>) -> Result<CodeDelivery, FlowError> {
        let mut v = Violations::default();
        let username = v.check("username", Username::parse(input.username));
        let email = v.check("email", Email::parse(input.email));
        let password = v.check("password", Password::parse(input.password));
        let bio = v.check("bio", Profile::parse_bio(input.bio));
        let avatar_url = v.check("avatar_url", Profile::parse_avatar_url(input.avatar_url));
        v.finish()?;
        let (Some(username), Some(email), Some(password), Some(bio), Some(avatar_url)) =
            (username, email, password, bio, avatar_url)
        else {
            return Err(FlowError::Internal("parsed fields missing".into()));
        };

        if self.stores.users.find_by_email(&email).await?.is_some() {
            return Err(FlowError::EmailTaken);
        }
        if self
            .stores
            .users
            .find_by_username(&username)
            .await?
            .is_some()
        {
            return Err(FlowError::UsernameTaken);
        }
        let password_hash = self.hasher.hash(&password).await?;
        let payload = PendingPayload::Registration(NewUser {
            username: username.clone(),
            email: email.clone(),
            password_hash,
            profile: Profile { bio, avatar_url },
        });
        let code = Code::generate();
        let issued = self
            .issue(CodePurpose::Registration, &email, Some(&payload), &code)
            .await?;
        let mail = self.templates.verification_code(
            email.as_str(),
            Some(username.as_str()),
            code.expose(),
            self.policy.code_ttl,
        );
        self.outbox.enqueue(&mail).await?;
        tracing::info!("registration pending, code queued");
        Ok(delivery(&email, issued))
    }

    /// ResendVerificationCode: a new code for a live pending registration, same budget.
    #[tracing::instrument(skip_all, fields(email = %email.trim()))]
    pub async fn resend_verification_code(&self, email: &str) -> Result<CodeDelivery, FlowError> {
        let email = Email::parse(email).map_err(|e| FlowError::invalid("email", e))?;
        let code = Code::generate();
        let issued = self
            .issue(CodePurpose::Registration, &email, None, &code)
            .await?;
        let mail = self.templates.verification_code(
            email.as_str(),
            None,
            code.expose(),
            self.policy.code_ttl,
        );
        self.outbox.enqueue(&mail).await?;
        Ok(delivery(&email, issued))
    }

    /// VerifyRegistration: checks the code (counting the attempt), creates the user once,
    /// starts a session.
    #[tracing::instrument(skip_all, fields(email = %email.trim()))]
    pub async fn verify_registration(
        &self,
        email: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let code = v.check("code", Code::parse(code));
        v.finish()?;
        let (Some(email), Some(code)) = (email, code) else {
            return Err(FlowError::Internal("parsed fields missing".into()));
        };
        let hash = self.codes.hash(CodePurpose::Registration, &email, &code);
        let payload = self
            .stores
            .pending
            .verify_code(
                CodePurpose::Registration,
                &email,
                &hash,
                now_ms(),
                &self.policy.code,
            )
            .await
            .map_err(|e| verify_error(e, FlowError::RegistrationNotFound))?;
        let PendingPayload::Registration(new_user) = payload else {
            return Err(FlowError::Internal(
                "registration record holds another payload".into(),
            ));
        };
        let now = now_ms();
        let mut user = self.stores.users.create_user(&new_user, now).await?;
        let tokens = self.start_session(&user.id, client).await?;
        self.stores
            .users
            .set_presence(&user.id, UserStatus::Online, now)
            .await?;
        user.status = UserStatus::Online;
        user.last_seen = Some(now);
        tracing::info!(user_id = %user.id.0, "user verified and created");
        Ok(SignedIn { user, tokens })
    }

    /// Records a fresh code for `email`, mapping the store's refusals.
    pub(super) async fn issue(
        &self,
        purpose: CodePurpose,
        email: &Email,
        payload: Option<&PendingPayload>,
        code: &Code,
    ) -> Result<CodeIssued, FlowError> {
        let hash = self.codes.hash(purpose, email, code);
        self.stores
            .pending
            .issue_code(purpose, email, payload, &hash, now_ms(), &self.policy.code)
            .await
            .map_err(|e| match e {
                IssueError::Cooldown { retry_at } => FlowError::ResendCooldown { retry_at },
                IssueError::DailyLimit { retry_at } => FlowError::CodeDailyLimit { retry_at },
                IssueError::Locked { retry_at } => FlowError::CodeAttemptsExhausted { retry_at },
                // Only a resend comes without a payload, and only registrations are resent.
                IssueError::NotFound => FlowError::RegistrationNotFound,
                IssueError::Store(e) => e.into(),
            })
    }
}

pub(super) fn verify_error(e: VerifyError, not_found: FlowError) -> FlowError {
    match e {
        VerifyError::NotFound => not_found,
        VerifyError::Expired => FlowError::CodeExpired,
        VerifyError::Wrong { attempts_remaining } => FlowError::CodeInvalid { attempts_remaining },
        VerifyError::Exhausted { retry_at } => FlowError::CodeAttemptsExhausted { retry_at },
        VerifyError::Store(e) => e.into(),
    }
}

fn delivery(email: &Email, issued: CodeIssued) -> CodeDelivery {
    CodeDelivery {
        email: email.as_str().to_owned(),
        code_expires_at: issued.code_expires_at,
        resend_at: issued.resend_at,
        attempts_remaining: issued.attempts_remaining,
    }
}
