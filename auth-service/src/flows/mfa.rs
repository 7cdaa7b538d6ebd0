//! Second factors: TOTP enrollment (the secret shown once, on only after one valid code and
//! the password, with 10 one-time recovery codes for a lost phone), turning it off (proven with
//! a current factor or the password) and new recovery codes (proven with the factor itself),
//! and the MFA challenge a sign-in of such a user gets instead of tokens (completed with a TOTP
//! code, a recovery code, or an assertion of one of the user's passkeys).
//!
//! Guessing is bounded twice: per challenge, or per session for the proof of a change
//! (`max_guesses_per_challenge`), and per user per day (`max_guesses_per_day`, every challenge
//! and change together; a right code does not give it back). The daily budget is what someone
//! who knows the password can spend to keep the owner's codes refused for the rest of the day;
//! the owner's password reset by emailed code gives it back once a day (the owner proves the
//! mailbox and the other person's password stops working), so one reset is a way back in, and
//! resetting again and again buys a mailbox thief no more guesses. TOTP codes are accepted
//! once (the store keeps the last step used).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::guard::{Guard, Limit};
use super::limits::Counter;
use super::security::Entry;
use super::{AuthCore, Caller, ClientInfo, FlowError, SignedIn};
use crate::crypto::TotpSecret;
use crate::domain::{
    AllParsed, AuthMethod, Code, FactorProof, Password, PasswordHash, PendingId, RecoveryCode,
    RevokeReason, SecurityKind, SignIn, UnixMs, User, UserId, Violations, now_ms,
};
use crate::mail::FactorChange;
use crate::store::{DAY_MS, TicketKind, TotpFactor};

/// How long a TOTP secret shown by StartTotpEnrollment waits for its first code.
const ENROLLMENT_TTL_MS: i64 = 15 * 60 * 1000;

/// What a first factor (password, emailed code) leads to.
#[derive(Debug)]
pub enum SignInOutcome {
    SignedIn(Box<SignedIn>),
    /// The account has a second factor: no tokens yet.
    MfaRequired(ChallengeView),
}

/// A sign-in challenge as its holder sees it.
#[derive(Debug, Clone)]
pub struct ChallengeView {
    /// Opaque, for the client that signed in only (the gateway keeps it in an httpOnly cookie).
    pub id: PendingId,
    /// What it can be completed with.
    pub factors: Vec<AuthMethod>,
    pub expires_at: UnixMs,
    /// When the user has passkeys: options for `navigator.credentials.get()` naming them.
    pub passkey_request: Option<Value>,
}

/// A TOTP secret to add to an authenticator app.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// Base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub uri: String,
    pub expires_at: UnixMs,
}

/// The proof fields of a request, as they came; at most one should be set.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProofInput<'a> {
    pub totp_code: &'a str,
    pub recovery_code: &'a str,
    pub password: &'a str,
    /// A passkey assertion (PublicKeyCredential JSON); only a challenge takes one.
    pub passkey: Option<&'a Value>,
}

impl<'a> ProofInput<'a> {
    pub fn totp(code: &'a str) -> Self {
        Self {
            totp_code: code,
            ..Self::default()
        }
    }

    pub fn recovery(code: &'a str) -> Self {
        Self {
            recovery_code: code,
            ..Self::default()
        }
    }

    pub fn password(password: &'a str) -> Self {
        Self {
            password,
            ..Self::default()
        }
    }

    pub fn passkey(credential: &'a Value) -> Self {
        Self {
            passkey: Some(credential),
            ..Self::default()
        }
    }
}

/// Where a proof is given, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProofUse {
    /// Completing a sign-in challenge: TOTP, recovery code or passkey.
    Challenge,
    /// Proving a change from a session: TOTP, recovery code or password.
    Change,
}

/// A challenge as stored: whose, how the first factor was proven, and a stamp of the
/// password hash then (a password change or reset since voids it).
#[derive(Serialize, Deserialize)]
struct ChallengeTicket {
    user_id: String,
    first: String,
    password_stamp: String,
    expires_at: UnixMs,
    /// The relying party's state of the passkey options, when the user has passkeys.
    #[serde(default)]
    passkey_state: Option<String>,
}

/// What a second factor's guesses are counted against, besides the user's day.
enum GuessScope<'a> {
    /// One sign-in challenge.
    Challenge(&'a str),
    /// One session proving a change (an enrollment's first code, DisableTotp, new codes).
    Session(&'a crate::domain::SessionId),
}

/// What a second factor check found.
enum Checked {
    Accepted,
    Wrong,
    /// A valid TOTP code of a step already used.
    Replayed,
}

impl AuthCore {
    /// After a first factor: the session, or when the user has a second factor, a challenge.
    pub(super) async fn after_first_factor(
        &self,
        user: User,
        first: AuthMethod,
        client: &ClientInfo,
    ) -> Result<SignInOutcome, FlowError> {
        // Refused once the first factor proved the account is theirs, not before: an unknown
        // caller learns nothing about the account.
        if let Some(disabled) = user.disabled_at(now_ms()) {
            let until = disabled.until;
            self.audit_failure(
                &user.id,
                Entry::new(SecurityKind::SignInRefused).from(client),
            );
            return Err(FlowError::UserDisabled { until });
        }
        let factors = self.stores.factors.factor_summary(&user.id).await?;
        if !factors.any() {
            let signed_in = self.sign_in(user, SignIn::one(first), client).await?;
            return Ok(SignInOutcome::SignedIn(Box::new(signed_in)));
        }
        let id = PendingId::generate();
        let (passkey_request, passkey_state) = match self.passkey_request(&user.id).await? {
            Some((options, state)) => (Some(options), Some(state)),
            None => (None, None),
        };
        let now = now_ms();
        let expires_at = now + self.policy.mfa.challenge_ttl_ms;
        let ticket = ChallengeTicket {
            user_id: user.id.0.clone(),
            first: first.as_str().to_owned(),
            password_stamp: password_stamp(&user.password_hash),
            expires_at,
            passkey_state,
        };
        let payload = serde_json::to_string(&ticket)
            .map_err(|e| FlowError::Internal(format!("cannot write a challenge: {e}")))?;
        self.stores
            .tickets
            .put_ticket(
                TicketKind::MfaChallenge,
                id.as_str(),
                &payload,
                expires_at,
                now,
            )
            .await?;
        tracing::info!(user_id = %user.id.0, "first factor accepted; second factor required");
        Ok(SignInOutcome::MfaRequired(ChallengeView {
            id,
            // A passkey is offered only with options to answer (its keys read back).
            factors: factors
                .allowed()
                .into_iter()
                .filter(|m| *m != AuthMethod::Passkey || passkey_request.is_some())
                .collect(),
            expires_at,
            passkey_request,
        }))
    }

    /// CompleteMfaChallenge: the second factor of the caller's challenge starts the session.
    /// The challenge stays through wrong codes (within its budget) and is taken, once, by the
    /// right one.
    #[tracing::instrument(skip_all)]
    pub async fn complete_mfa_challenge(
        &self,
        challenge_id: &str,
        proof: ProofInput<'_>,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        let mut v = Violations::default();
        let id = v.check(
            "challenge_id",
            if challenge_id.trim().is_empty() {
                Err("challenge_id is required: Login returns it".to_owned())
            } else {
                PendingId::parse(challenge_id).map_err(|e| format!("challenge_id {e}"))
            },
        );
        let proof = parse_proof(&mut v, proof, ProofUse::Challenge);
        let (id, proof) = v.finish((id, proof).all())?;
        let proof = proof.ok_or_else(|| {
            FlowError::invalid(
                "totp_code",
                "a totp_code, a recovery_code or a passkey_credential is required",
            )
        })?;
        let now = now_ms();
        let ticket = self
            .stores
            .tickets
            .get_ticket(TicketKind::MfaChallenge, id.as_str(), now)
            .await?
            .and_then(|raw| serde_json::from_str::<ChallengeTicket>(&raw).ok())
            .filter(|t| t.expires_at > now)
            .ok_or(FlowError::MfaChallengeNotFound)?;
        // A password changed since the first factor voids the challenge before any code is
        // looked at (or used up).
        let user = self
            .stores
            .users
            .find_by_id(&UserId(ticket.user_id.clone()))
            .await?
            .filter(|u| password_stamp(&u.password_hash) == ticket.password_stamp)
            .ok_or(FlowError::MfaChallengeNotFound)?;
        let guard = self.mfa_guard(&user.id, GuessScope::Challenge(id.as_str()));
        self.check_second_factor(&user.id, &proof, &guard, ticket.passkey_state.as_deref())
            .await?;
        // Taken once: of two right answers racing, one signs in.
        self.stores
            .tickets
            .take_ticket(TicketKind::MfaChallenge, id.as_str(), now_ms())
            .await?
            .ok_or(FlowError::MfaChallengeNotFound)?;
        let first =
            AuthMethod::from_stored(&ticket.first).ok_or(FlowError::MfaChallengeNotFound)?;
        let sign_in = SignIn {
            first,
            second: Some(proof.method()),
        };
        self.sign_in(user, sign_in, client).await
    }

    /// The caller's second factors, as GetCurrentUser shows them.
    pub async fn factors(
        &self,
        caller: &Caller,
    ) -> Result<crate::domain::FactorSummary, FlowError> {
        Ok(self.stores.factors.factor_summary(&caller.user_id).await?)
    }

    /// StartTotpEnrollment: a new secret for the caller, waiting (replacing any earlier one)
    /// for its first code in ConfirmTotpEnrollment.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn start_totp_enrollment(
        &self,
        caller: &Caller,
    ) -> Result<TotpEnrollment, FlowError> {
        let user = self.user(&caller.user_id).await?;
        if self.stores.factors.totp(&user.id).await?.is_some() {
            return Err(FlowError::TotpAlreadyEnabled);
        }
        let secret = TotpSecret::generate();
        let now = now_ms();
        let expires_at = now + ENROLLMENT_TTL_MS;
        let sealed = encode(&secret.seal(&self.totp_sealer, &user.id));
        self.stores
            .tickets
            .put_ticket(
                TicketKind::TotpEnrollment,
                &user.id.0,
                &sealed,
                expires_at,
                now,
            )
            .await?;
        Ok(TotpEnrollment {
            secret: secret.base32(),
            uri: secret.uri(&self.templates.app_name, &user.email),
            expires_at,
        })
    }

    /// ConfirmTotpEnrollment: one valid code of the waiting secret and the password turn TOTP
    /// on; returns the recovery codes, shown this once, and how many other sessions ended (every
    /// session left has passed the factor). The password is asked so that a stolen access token
    /// alone cannot put a factor on the account and lock its owner out.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn confirm_totp_enrollment(
        &self,
        caller: &Caller,
        code: &str,
        current_password: &str,
    ) -> Result<(Vec<RecoveryCode>, u32), FlowError> {
        let mut v = Violations::default();
        let code = v.check("code", Code::parse(code));
        let password = v.check(
            "current_password",
            Password::parse_existing(current_password),
        );
        let (code, password) = v.finish((code, password).all())?;
        let user = self.user(&caller.user_id).await?;
        self.check_password(&user, caller, &password).await?;
        let sealed = self
            .stores
            .tickets
            .get_ticket(TicketKind::TotpEnrollment, &user.id.0, now_ms())
            .await?
            .and_then(|raw| decode(&raw))
            .ok_or(FlowError::TotpEnrollmentNotFound)?;
        let secret =
            TotpSecret::open(&self.totp_sealer, &user.id, &sealed).map_err(FlowError::Internal)?;
        let guard = self.mfa_guard(&user.id, GuessScope::Session(&caller.session_id));
        guard.admit(self).await?;
        let step = secret.matching_step(&code, now_ms());
        guard.record(self, step.is_some()).await?;
        let Some(step) = step else {
            return Err(self
                .wrong_factor(&user.id, "code", AuthMethod::Totp, &guard)
                .await);
        };
        self.stores
            .tickets
            .take_ticket(TicketKind::TotpEnrollment, &user.id.0, now_ms())
            .await?
            .ok_or(FlowError::TotpEnrollmentNotFound)?;
        let (codes, hashes) = self.new_recovery_codes(&user.id);
        let factor = TotpFactor {
            sealed_secret: sealed,
            last_step: step,
            enabled_at: now_ms(),
        };
        if !self
            .stores
            .factors
            .enable_totp(&user.id, &factor, &hashes)
            .await?
        {
            return Err(FlowError::TotpAlreadyEnabled);
        }
        // Sessions signed in without the factor end: from now on every session has passed it.
        // The codes are shown whatever happens here (they are shown only once); a failure is
        // logged, and LogoutAll ends the others.
        let ended = self
            .stores
            .sessions
            .revoke_all(
                &user.id,
                Some(&caller.session_id),
                RevokeReason::FactorChanged,
                now_ms(),
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "TOTP on, but the other sessions could not be ended");
                0
            });
        tracing::info!(sessions_ended = ended, "TOTP enabled");
        self.notify(&user, FactorChange::TotpOn).await;
        Ok((codes, ended))
    }

    /// DisableTotp: with a current TOTP or recovery code, or the password; drops the
    /// recovery codes and ends the caller's other sessions.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        proof: ProofInput<'_>,
    ) -> Result<u32, FlowError> {
        let user = self.prove(caller, proof, true).await?;
        if !self.stores.factors.disable_totp(&user.id, now_ms()).await? {
            return Err(FlowError::TotpNotEnabled);
        }
        let ended = self
            .stores
            .sessions
            .revoke_all(
                &user.id,
                Some(&caller.session_id),
                RevokeReason::FactorChanged,
                now_ms(),
            )
            .await?;
        tracing::info!(sessions_ended = ended, "TOTP disabled");
        self.notify(&user, FactorChange::TotpOff).await;
        Ok(ended)
    }

    /// RegenerateRecoveryCodes: with a current TOTP or recovery code (not the password: new
    /// codes are a lasting way past the factor, so only the factor gives them); the old codes
    /// stop working.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        proof: ProofInput<'_>,
    ) -> Result<Vec<RecoveryCode>, FlowError> {
        let proof = ProofInput {
            password: "",
            ..proof
        };
        let user = self.prove(caller, proof, true).await?;
        let (codes, hashes) = self.new_recovery_codes(&user.id);
        if !self
            .stores
            .factors
            .replace_recovery_codes(&user.id, &hashes)
            .await?
        {
            return Err(FlowError::TotpNotEnabled);
        }
        tracing::info!("recovery codes replaced");
        self.notify(&user, FactorChange::RecoveryCodesReplaced)
            .await;
        Ok(codes)
    }

    /// The caller, once `proof` (a factor, or the password) is checked; with `need_totp`,
    /// TOTP must be on.
    async fn prove(
        &self,
        caller: &Caller,
        proof: ProofInput<'_>,
        need_totp: bool,
    ) -> Result<User, FlowError> {
        let mut v = Violations::default();
        let proof = parse_proof(&mut v, proof, ProofUse::Change);
        let proof = v.finish(proof)?.ok_or(FlowError::MfaRequired)?;
        let user = self.user(&caller.user_id).await?;
        if need_totp && self.stores.factors.totp(&user.id).await?.is_none() {
            return Err(FlowError::TotpNotEnabled);
        }
        match &proof {
            FactorProof::Password(password) => self.check_password(&user, caller, password).await?,
            _ => {
                let guard = self.mfa_guard(&user.id, GuessScope::Session(&caller.session_id));
                self.check_second_factor(&user.id, &proof, &guard, None)
                    .await?;
            }
        }
        Ok(user)
    }

    /// The caller, once `proof` (the password, or a TOTP or recovery code) is checked, for a
    /// change that does not need TOTP on (removing a passkey).
    pub(super) async fn prove_any(
        &self,
        caller: &Caller,
        proof: ProofInput<'_>,
    ) -> Result<User, FlowError> {
        self.prove(caller, proof, false).await
    }

    /// The caller's password, under the per-session guess limit of ChangePassword.
    pub(super) async fn check_password(
        &self,
        user: &User,
        caller: &Caller,
        password: &Password,
    ) -> Result<(), FlowError> {
        self.hasher.check_room()?;
        let guard = self.password_guard_for_session(&user.id, &caller.session_id);
        guard.admit(self).await?;
        let verified = self
            .hasher
            .verify(password, Some(&user.password_hash))
            .await?;
        guard.record(self, verified).await?;
        if verified {
            Ok(())
        } else {
            Err(FlowError::WrongPassword)
        }
    }

    /// Checks a TOTP or recovery code or passkey assertion (against `passkey_state`, the
    /// challenge's options) of `user` under `guard`: a wrong one is counted (and written as
    /// mfa.failed), a TOTP code of a step already used is refused as a replay.
    async fn check_second_factor(
        &self,
        user: &UserId,
        proof: &FactorProof,
        guard: &Guard,
        passkey_state: Option<&str>,
    ) -> Result<(), FlowError> {
        guard.admit(self).await?;
        let (checked, field) = match proof {
            FactorProof::Totp(code) => (self.check_totp(user, code).await?, "totp_code"),
            FactorProof::RecoveryCode(code) => {
                let hash = self.codes.recovery(user, code);
                let used = self.stores.factors.use_recovery_code(user, &hash).await?;
                let checked = if used {
                    Checked::Accepted
                } else {
                    Checked::Wrong
                };
                (checked, "recovery_code")
            }
            FactorProof::Passkey(credential) => {
                let accepted = self
                    .check_passkey_assertion(user, credential, passkey_state)
                    .await?;
                let checked = if accepted {
                    Checked::Accepted
                } else {
                    Checked::Wrong
                };
                (checked, "passkey_credential")
            }
            FactorProof::Password(_) => {
                return Err(FlowError::Internal("a password is no second factor".into()));
            }
        };
        guard
            .record(self, matches!(checked, Checked::Accepted))
            .await?;
        match checked {
            Checked::Accepted => Ok(()),
            Checked::Replayed => {
                self.mfa_failed(user, proof.method()).await;
                Err(FlowError::TotpReplayed { field })
            }
            Checked::Wrong => Err(self.wrong_factor(user, field, proof.method(), guard).await),
        }
    }

    async fn check_totp(&self, user: &UserId, code: &Code) -> Result<Checked, FlowError> {
        let Some(factor) = self.stores.factors.totp(user).await? else {
            return Ok(Checked::Wrong);
        };
        let secret = TotpSecret::open(&self.totp_sealer, user, &factor.sealed_secret)
            .map_err(FlowError::Internal)?;
        let Some(step) = secret.matching_step(code, now_ms()) else {
            return Ok(Checked::Wrong);
        };
        Ok(if self.stores.factors.use_totp_step(user, step).await? {
            Checked::Accepted
        } else {
            Checked::Replayed
        })
    }

    /// The answer to a wrong code, after writing mfa.failed.
    async fn wrong_factor(
        &self,
        user: &UserId,
        field: &'static str,
        method: AuthMethod,
        guard: &Guard,
    ) -> FlowError {
        self.mfa_failed(user, method).await;
        match guard.remaining(self).await {
            Ok(attempts_remaining) => FlowError::MfaCodeInvalid {
                field,
                attempts_remaining,
            },
            Err(e) => e,
        }
    }

    /// Mails the user a notice of a change of their factors, so that one they did not make is
    /// seen. The change stands either way: a queue that cannot take the mail is logged.
    pub(super) async fn notify(&self, user: &User, change: FactorChange) {
        let mail = self
            .templates
            .factor_notice(&user.email, &user.username, change);
        if let Err(e) = self.outbox.enqueue(&mail).await {
            tracing::warn!(error = %e, ?change, "cannot queue the notice of a factor change");
        }
        let entry = match change {
            FactorChange::TotpOn => Entry::new(SecurityKind::FactorEnabled).detail("totp"),
            FactorChange::TotpOff => Entry::new(SecurityKind::FactorDisabled).detail("totp"),
            FactorChange::RecoveryCodesReplaced => Entry::new(SecurityKind::RecoveryCodesReplaced),
            FactorChange::PasskeyAdded => Entry::new(SecurityKind::FactorEnabled).detail("passkey"),
            FactorChange::PasskeyRemoved => {
                Entry::new(SecurityKind::FactorDisabled).detail("passkey")
            }
        };
        self.audit(&user.id, entry).await;
    }

    /// Writes mfa.failed; a log that cannot take it costs the event, not the answer.
    async fn mfa_failed(&self, user: &UserId, factor: AuthMethod) {
        let kind = crate::domain::EventKind::MfaFailed { factor };
        if let Err(e) = self.stores.events.append(user, &kind, now_ms()).await {
            tracing::warn!(error = %e, "cannot record mfa.failed");
        }
        tracing::info!(user_id = %user.0, factor = factor.as_str(), "wrong second factor");
        self.audit_failure(
            user,
            Entry::new(SecurityKind::MfaFailed).detail(factor.as_str()),
        );
    }

    /// The limits of second-factor guesses of `user`: per challenge (or per session, for the
    /// proof of a change), and per day. A right code gives neither back.
    fn mfa_guard(&self, user: &UserId, scope: GuessScope<'_>) -> Guard {
        let policy = &self.policy.mfa;
        let first = match scope {
            GuessScope::Challenge(challenge) => Limit {
                key: Counter::MfaChallenge { challenge }.key(),
                max: policy.max_guesses_per_challenge,
                window_ms: policy.challenge_ttl_ms,
            },
            GuessScope::Session(session) => Limit {
                key: Counter::MfaSession { user, session }.key(),
                max: policy.max_guesses_per_challenge,
                window_ms: DAY_MS,
            },
        };
        let daily = Limit {
            key: Counter::MfaUser { user }.key(),
            max: policy.max_guesses_per_day,
            window_ms: DAY_MS,
        };
        Guard {
            hard: vec![first, daily],
            slowdown: None,
            refused: |retry_at| FlowError::MfaRateLimited { retry_at },
            right_answer_clears: false,
        }
    }

    /// After a password reset by emailed code: gives the user their day's second-factor budget
    /// back, at most once a day (so that resetting again and again buys no more guesses). The
    /// once-a-day slot is spent only when there is something to give back. The reset stands
    /// whatever happens here: a store failure is logged, not returned.
    pub(super) async fn give_back_mfa_budget(&self, user: &UserId) {
        let limits = &self.stores.limits;
        let daily = Counter::MfaUser { user }.key();
        let result = async {
            let (spent, _) = limits.count(&daily, now_ms()).await?;
            if spent == 0 {
                return Ok(());
            }
            let slot = Counter::MfaBudgetReset { user }.key();
            if limits.hit(&slot, 1, DAY_MS, now_ms()).await?.is_ok() {
                limits.clear(&daily).await?;
            }
            Ok::<_, crate::store::StoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, user_id = %user.0, "cannot give the second-factor budget back");
        }
    }

    /// Fresh recovery codes and their keyed hashes.
    fn new_recovery_codes(
        &self,
        user: &UserId,
    ) -> (Vec<RecoveryCode>, Vec<crate::domain::CodeHash>) {
        let codes: Vec<_> = (0..RecoveryCode::COUNT)
            .map(|_| RecoveryCode::generate())
            .collect();
        let hashes = codes.iter().map(|c| self.codes.recovery(user, c)).collect();
        (codes, hashes)
    }
}

/// The proof of a request: `None` when no field is set; a violation when several are, or the
/// one set does not parse. `password` counts only for a change, `passkey` only in a challenge.
fn parse_proof(
    v: &mut Violations,
    input: ProofInput<'_>,
    used: ProofUse,
) -> Option<Option<FactorProof>> {
    let set = |s: &str| !s.trim().is_empty();
    let given = [
        set(input.totp_code),
        set(input.recovery_code),
        used == ProofUse::Change && !input.password.is_empty(),
        used == ProofUse::Challenge && input.passkey.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => Some(None),
        1 if given[0] => v
            .check("totp_code", Code::parse(input.totp_code))
            .map(|c| Some(FactorProof::Totp(c))),
        1 if given[1] => v
            .check("recovery_code", RecoveryCode::parse(input.recovery_code))
            .map(|c| Some(FactorProof::RecoveryCode(c))),
        1 if given[2] => v
            .check("password", Password::parse_existing(input.password))
            .map(|p| Some(FactorProof::Password(p))),
        1 => v
            .check(
                "passkey_credential",
                super::passkeys::credential_input("passkey_credential", input.passkey.cloned()),
            )
            .map(|credential| Some(FactorProof::Passkey(credential))),
        _ => {
            let fields = match used {
                ProofUse::Change => "totp_code, recovery_code, password",
                ProofUse::Challenge => "totp_code, recovery_code, passkey_credential",
            };
            v.check::<()>("proof", Err(format!("give one of {fields}")));
            None
        }
    }
}

/// A stamp of a password hash: a challenge made before a password change no longer matches.
fn password_stamp(hash: &PasswordHash) -> String {
    encode(&Sha256::digest(hash.0.as_bytes())[..16])
}

fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}
