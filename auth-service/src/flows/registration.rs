//! Sign-up: Register starts a pending registration bound to a random id that only the caller
//! holds; ResendVerificationCode and VerifyRegistration need that id, so knowing someone's
//! email never lets you finish, resend or spend the guesses of their sign-up.

use super::codes::parse_id;
use super::limits::{Counter, HOUR_MS};
use super::{AuthCore, ClientInfo, CodeDelivery, FlowError, SignedIn};
use crate::domain::{
    AllParsed, AuthMethod, Code, CodeHash, CodePurpose, Email, NewUser, Password, PendingId,
    Profile, RevokeReason, SignIn, UserId, Username, Violations, now_ms,
};
use crate::store::{CodeIssued, CreateUserError, PendingPayload};

/// How often the owner of a taken email is told that someone tried to sign up with it.
const SIGNUP_NOTICE_WINDOW_MS: i64 = HOUR_MS;

/// Raw fields of a Register request.
pub struct RegisterInput<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub bio: &'a str,
    pub avatar_url: &'a str,
}

impl AuthCore {
    /// Register: validates, refuses a taken username (usernames are public) and a taken email
    /// (unless SIGNUP_ENUMERATION_SAFE), hashes the password now (so no plaintext is ever
    /// stored), records a pending registration and mails a code.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn register(
        &self,
        input: RegisterInput<'_>,
        client: &ClientInfo,
    ) -> Result<CodeDelivery, FlowError> {
        let mut v = Violations::default();
        let username = v.check("username", Username::parse(input.username));
        let email = v.check("email", Email::parse(input.email));
        let password = v.check("password", Password::parse(input.password));
        let bio = v.check("bio", Profile::parse_bio(input.bio));
        let avatar_url = v.check("avatar_url", Profile::parse_avatar_url(input.avatar_url));
        let (username, email, password, bio, avatar_url) =
            v.finish((username, email, password, bio, avatar_url).all())?;
        self.tag_span(&email);
        // Under overload, refused before any store work, and before the network's budget is
        // counted: the place is kept for this sign-up's hash, so a counted request is never
        // refused for want of one.
        let hashing = self.hasher.reserve()?;
        // Counted before anything is looked up, so the answers (even EMAIL_TAKEN) come at a
        // bounded rate per network.
        self.limit_code_requests(client, |retry_at| FlowError::SignupRateLimited { retry_at })
            .await?;
        // Rated after the network's budget is counted: the rating costs CPU.
        self.policy
            .password
            .check(&password, username.as_str(), email.as_str())
            .map_err(|e| FlowError::invalid("password", e))?;
        if self
            .stores
            .users
            .find_by_username(&username)
            .await?
            .is_some()
        {
            return Err(FlowError::UsernameTaken);
        }
        let owner = self.stores.users.find_by_email(&email).await?;
        if owner.is_some() && !self.policy.signup_enumeration_safe {
            return Err(FlowError::EmailTaken);
        }
        // Hashed for a taken email too, so both answers take the same time.
        let password_hash = hashing.hash(&password).await?;
        let id = PendingId::generate();
        let Some(owner) = owner else {
            let payload = PendingPayload::Registration(NewUser {
                id: UserId::generate(),
                username: username.clone(),
                email: email.clone(),
                password_hash,
                profile: Profile { bio, avatar_url },
            });
            let code = Code::generate();
            let hash = self
                .codes
                .hash(CodePurpose::Registration, &email, &id, &code);
            let issued = self
                .issue(
                    CodePurpose::Registration,
                    &email,
                    &id,
                    Some(&payload),
                    &hash,
                )
                .await?;
            self.mail_verification_code(&email, Some(username.as_str()), &code, &issued)
                .await?;
            tracing::info!("registration pending, code queued");
            return Ok(delivery(id, &email, issued));
        };
        // The email is taken and the answer must not say so: a decoy request that no code
        // finishes, limited like a real one, and a notice to the owner instead of a code.
        let issued = self
            .issue(
                CodePurpose::Registration,
                &email,
                &id,
                Some(&PendingPayload::Decoy),
                &CodeHash::unguessable(),
            )
            .await?;
        let notice_key = Counter::SignupNotice { email: &email }.key();
        let notify = self
            .stores
            .limits
            .hit(&notice_key, 1, SIGNUP_NOTICE_WINDOW_MS, now_ms())
            .await?
            .is_ok();
        if notify {
            let mail = self
                .templates
                .signup_attempt_notice(email.as_str(), &owner.username);
            self.outbox.enqueue(&mail).await?;
        }
        tracing::info!(
            notified = notify,
            "sign-up for a taken email answered as new"
        );
        Ok(delivery(id, &email, issued))
    }

    /// ResendVerificationCode: a new code for the caller's live pending registration, with
    /// the same wrong-guess budget.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn resend_verification_code(
        &self,
        email: &str,
        registration_id: &str,
        client: &ClientInfo,
    ) -> Result<CodeDelivery, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let id = parse_id(&mut v, "registration_id", registration_id);
        let (email, id) = v.finish((email, id).all())?;
        let id = id.ok_or(FlowError::RegistrationIdRequired)?;
        self.tag_span(&email);
        self.limit_code_requests(client, |retry_at| FlowError::SignupRateLimited { retry_at })
            .await?;
        let code = Code::generate();
        let hash = self
            .codes
            .hash(CodePurpose::Registration, &email, &id, &code);
        let issued = self
            .issue(CodePurpose::Registration, &email, &id, None, &hash)
            .await?;
        // A decoy's code goes nowhere (the owner was told once already).
        match &issued.payload {
            PendingPayload::Registration(user) => {
                self.mail_verification_code(&email, Some(user.username.as_str()), &code, &issued)
                    .await?
            }
            _ => self.as_much_work_as_queueing_mail().await,
        }
        Ok(delivery(id, &email, issued))
    }

    /// VerifyRegistration: checks the code of the caller's request (counting a wrong guess),
    /// creates the user, ends the email's other pending sign-ups, starts a session. The request
    /// is kept until the user exists, so a failure on the way loses nothing: the same code
    /// works again.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn verify_registration(
        &self,
        email: &str,
        code: &str,
        registration_id: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let code = v.check("code", Code::parse(code));
        let id = parse_id(&mut v, "registration_id", registration_id);
        let (email, code, id) = v.finish((email, code, id).all())?;
        let id = id.ok_or(FlowError::RegistrationIdRequired)?;
        let payload = self
            .check_code(CodePurpose::Registration, &email, &id, &code, client)
            .await?;
        let PendingPayload::Registration(new_user) = payload else {
            // A decoy's code matches no guess; a reset's cannot be under this purpose.
            return Err(FlowError::RegistrationNotFound);
        };
        let now = now_ms();
        let mut user = match self.stores.users.create_user(&new_user, now).await {
            Ok(user) => user,
            // A racing verification of this same registration created it first.
            Err(CreateUserError::IdTaken | CreateUserError::EmailTaken) => {
                match self.stores.users.find_by_id(&new_user.id).await? {
                    Some(user) => {
                        if let Some(disabled) = user.disabled_at(now) {
                            return Err(FlowError::UserDisabled {
                                until: disabled.until,
                            });
                        }
                        user
                    }
                    None => return Err(FlowError::EmailTaken),
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.stores
            .pending
            .finish_pending(CodePurpose::Registration, &email)
            .await?;
        // The password was chosen and the emailed code proves the address.
        let sign_in = SignIn {
            first: AuthMethod::Password,
            second: Some(AuthMethod::EmailCode),
        };
        let tokens = self.start_session(&user.id, sign_in, client).await?;
        // A retried verification of a user created earlier: a suspension or deletion that
        // landed meanwhile ended every session, but not this one. Look again, as sign_in does.
        let current = self.stores.users.find_by_id(&user.id).await?;
        let refused = match &current {
            None => Some((
                RevokeReason::AccountDeleted,
                FlowError::RegistrationNotFound,
            )),
            Some(u) => u.disabled_at(now_ms()).map(|d| {
                (
                    RevokeReason::Operator,
                    FlowError::UserDisabled { until: d.until },
                )
            }),
        };
        if let Some((reason, error)) = refused {
            self.stores
                .sessions
                .revoke_session(&tokens.session_id, &user.id, reason, now_ms())
                .await?;
            return Err(error);
        }
        // Signing in is the session's first heartbeat.
        let presence = self.first_beat(&user.id, &tokens.session_id).await;
        user.status = presence.status;
        user.last_seen = presence.last_seen.or(Some(now));
        tracing::info!(user_id = %user.id.0, "user verified and created");
        let entry = super::security::Entry::new(crate::domain::SecurityKind::SignIn)
            .detail(sign_in.to_stored())
            .from(client)
            .session(&tokens.session_id);
        self.audit(&user.id, entry).await;
        Ok(SignedIn { user, tokens })
    }

    async fn mail_verification_code(
        &self,
        email: &Email,
        username: Option<&str>,
        code: &Code,
        issued: &CodeIssued,
    ) -> Result<(), FlowError> {
        let mail = self
            .templates
            .verification_code(
                email.as_str(),
                username,
                code.expose(),
                self.policy.code.ttl(),
            )
            .expiring_at(issued.code_expires_at);
        Ok(self.outbox.enqueue(&mail).await?)
    }
}

fn delivery(id: PendingId, email: &Email, issued: CodeIssued) -> CodeDelivery {
    CodeDelivery {
        id,
        email: email.as_str().to_owned(),
        code_expires_at: issued.code_expires_at,
        resend_at: issued.resend_at,
        attempts_remaining: issued.attempts_remaining,
    }
}
