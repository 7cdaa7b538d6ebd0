//! Passkeys (WebAuthn): adding one to a signed-in account (its options, then the
//! authenticator's answer with the password), listing and removing them, and signing in with
//! one and nothing else (a discoverable credential: the browser offers the site's passkeys,
//! the assertion's user handle names the account). A passkey verifies its user (PIN or
//! biometrics) itself, so its sign-in needs no second factor; once TOTP is on, a passkey also
//! completes the challenge after a password (see `mfa`).
//!
//! The state between the two steps of each ceremony is a ticket (server-side, single use,
//! 5 minutes), so any instance can finish what another started, and an assertion answers one
//! challenge once. On top of that, for authenticators that count (most security keys; synced
//! passkeys always report 0), the store raises the sign counter in one conditional write, so
//! an authenticator whose counter went back (a clone) is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{AuthenticationResult, Passkey};

use super::limits::Counter;
use super::{AuthCore, Caller, ClientInfo, FlowError, ProofInput, SignedIn};
use crate::crypto::{PasskeyError, passkey_from_stored, passkey_stored};
use crate::domain::{
    AllParsed, AuthMethod, Password, PendingId, RevokeReason, SignIn, UnixMs, UserId, Violations,
    now_ms,
};
use crate::mail::FactorChange;
use crate::store::{PasskeyRecord, PasskeyUse, TicketKind};

/// How long a ceremony's options wait for the authenticator (WebAuthn's default timeout).
const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Longest passkey name, in characters.
const NAME_MAX_CHARS: usize = 64;
/// Largest credential JSON accepted, in bytes: an attestation with a certificate chain fits.
const CREDENTIAL_MAX_BYTES: usize = 16 * 1024;

/// A passkey as its owner sees it (never a key).
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
    pub backed_up: bool,
}

impl From<PasskeyRecord> for PasskeyView {
    fn from(r: PasskeyRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            backed_up: r.backed_up,
        }
    }
}

/// The first step of a ceremony: options for the browser, and (for a sign-in) the id that
/// finishes it.
#[derive(Debug)]
pub struct PasskeyCeremony {
    pub login_id: Option<PendingId>,
    pub options: Value,
    pub expires_at: UnixMs,
}

/// A ceremony's state as stored.
#[derive(Serialize, Deserialize)]
struct CeremonyTicket {
    state: String,
    expires_at: UnixMs,
}

impl AuthCore {
    /// StartPasskeyRegistration: options naming the caller (user handle = the user id), with
    /// their passkeys excluded; they wait under the caller's session (a new start replaces
    /// them), so pending registrations are bounded by sessions.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn start_passkey_registration(
        &self,
        caller: &Caller,
    ) -> Result<PasskeyCeremony, FlowError> {
        let user = self.user(&caller.user_id).await?;
        // One read: the cap counts every stored row (as the store's does), and the ids to
        // exclude are the rows' own (base64url of the credential id).
        let existing = self.stores.factors.passkeys(&user.id).await?;
        let max = self.policy.passkeys.max_per_user;
        if existing.len() as u32 >= max {
            return Err(FlowError::PasskeyLimitReached { max });
        }
        let exclude = existing
            .iter()
            .filter_map(|r| URL_SAFE_NO_PAD.decode(&r.id).ok())
            .collect();
        let (options, state) = self
            .passkeys
            .start_registration(
                user_handle(&user.id)?,
                user.email.as_str(),
                user.username.as_str(),
                exclude,
            )
            .map_err(FlowError::Internal)?;
        let expires_at = self
            .put_ceremony(TicketKind::PasskeyRegistration, &caller.session_id.0, state)
            .await?;
        Ok(PasskeyCeremony {
            login_id: None,
            options,
            expires_at,
        })
    }

    /// FinishPasskeyRegistration: the authenticator's answer to the caller's options, with a
    /// name and the password (a stolen access token alone adds no way in), adds the passkey.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        credential: Option<Value>,
        name: &str,
        current_password: &str,
    ) -> Result<PasskeyView, FlowError> {
        let mut v = Violations::default();
        let credential = v.check("credential", credential_input("credential", credential));
        let name = v.check("name", passkey_name(name));
        let password = v.check(
            "current_password",
            Password::parse_existing(current_password),
        );
        let (credential, name, password) = v.finish((credential, name, password).all())?;
        let user = self.user(&caller.user_id).await?;
        self.check_password(&user, caller, &password).await?;
        let state = self
            .take_ceremony(TicketKind::PasskeyRegistration, &caller.session_id.0)
            .await?
            .ok_or(FlowError::PasskeyRegistrationNotFound)?;
        let passkey = self
            .passkeys
            .finish_registration(credential, &state)
            .map_err(|e| refused("credential", e))?;
        let (stored, counter, backed_up) = passkey_stored(&passkey).map_err(FlowError::Internal)?;
        let record = PasskeyRecord {
            id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name,
            credential: stored,
            counter,
            backed_up,
            created_at: now_ms(),
            last_used_at: None,
        };
        let max = self.policy.passkeys.max_per_user;
        if !self
            .stores
            .factors
            .add_passkey(&user.id, &record, max)
            .await?
        {
            let existing = self.stores.factors.passkeys(&user.id).await?;
            return Err(if existing.iter().any(|p| p.id == record.id) {
                FlowError::PasskeyAlreadyRegistered
            } else {
                FlowError::PasskeyLimitReached { max }
            });
        }
        tracing::info!(passkey = %record.id, "passkey added");
        self.notify(&user, FactorChange::PasskeyAdded).await;
        Ok(record.into())
    }

    /// ListPasskeys: the caller's passkeys, oldest first.
    pub async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyView>, FlowError> {
        let records = self.stores.factors.passkeys(&caller.user_id).await?;
        Ok(records.into_iter().map(PasskeyView::from).collect())
    }

    /// DeletePasskey: with the password, or a current TOTP or recovery code; ends the
    /// caller's other sessions (one may be the lost device's) and returns how many. The id is
    /// looked up before the proof, so no recovery code is spent on a passkey that is not there.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn delete_passkey(
        &self,
        caller: &Caller,
        id: &str,
        proof: ProofInput<'_>,
    ) -> Result<u32, FlowError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(FlowError::invalid(
                "id",
                "id is required: ListPasskeys names them",
            ));
        }
        let existing = self.stores.factors.passkeys(&caller.user_id).await?;
        if !existing.iter().any(|p| p.id == id) {
            return Err(FlowError::PasskeyNotFound);
        }
        let user = self.prove_any(caller, proof).await?;
        // The other sessions end first: a failure here changes nothing, and a retry finds the
        // passkey still there. Once it is gone, a session it started in between ends too.
        let revoke = || {
            self.stores.sessions.revoke_all(
                &user.id,
                Some(&caller.session_id),
                RevokeReason::FactorChanged,
                now_ms(),
            )
        };
        let mut ended = revoke().await?;
        if !self
            .stores
            .factors
            .delete_passkey(&user.id, id, now_ms())
            .await?
        {
            return Err(FlowError::PasskeyNotFound);
        }
        self.notify(&user, FactorChange::PasskeyRemoved).await;
        match revoke().await {
            Ok(more) => ended += more,
            Err(e) => {
                tracing::warn!(error = %e, "passkey removed; a second pass over the sessions failed")
            }
        }
        tracing::info!(passkey = %id, sessions_ended = ended, "passkey removed");
        Ok(ended)
    }

    /// StartPasskeyLogin: options naming no one (the browser offers the site's passkeys) and
    /// a login id for the caller. Counted per client network: each start keeps a challenge.
    #[tracing::instrument(skip_all)]
    pub async fn start_passkey_login(
        &self,
        client: &ClientInfo,
    ) -> Result<PasskeyCeremony, FlowError> {
        let network = client.network();
        self.limit(
            Counter::PasskeyLogins { network: &network },
            self.policy.passkeys.logins_per_ip_per_hour,
            60 * 60 * 1000,
            |retry_at| FlowError::PasskeyLoginRateLimited { retry_at },
        )
        .await?;
        let (options, state) = self
            .passkeys
            .start_discoverable()
            .map_err(FlowError::Internal)?;
        let id = PendingId::generate();
        let expires_at = self
            .put_ceremony(TicketKind::PasskeyLogin, id.as_str(), state)
            .await?;
        Ok(PasskeyCeremony {
            login_id: Some(id),
            options,
            expires_at,
        })
    }

    /// FinishPasskeyLogin: the assertion to the options of the caller's login id starts a
    /// session. The login id is used up by the first well-formed try, right or wrong.
    #[tracing::instrument(skip_all)]
    pub async fn finish_passkey_login(
        &self,
        login_id: &str,
        credential: Option<Value>,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        let mut v = Violations::default();
        let id = v.check(
            "login_id",
            if login_id.trim().is_empty() {
                Err("login_id is required: StartPasskeyLogin returns it".to_owned())
            } else {
                PendingId::parse(login_id).map_err(|e| format!("login_id {e}"))
            },
        );
        let credential = v.check("credential", credential_input("credential", credential));
        let (id, credential) = v.finish((id, credential).all())?;
        let state = self
            .take_ceremony(TicketKind::PasskeyLogin, id.as_str())
            .await?
            .ok_or(FlowError::PasskeyLoginNotFound)?;
        let (handle, credential) = self
            .passkeys
            .identify(credential)
            .map_err(|e| refused("credential", e))?;
        let user = self
            .stores
            .users
            .find_by_id(&UserId(handle.to_string()))
            .await?
            .ok_or_else(|| refused("credential", PasskeyError::Unknown))?;
        let passkeys = self.stored_passkeys(&user.id).await?;
        let keys: Vec<Passkey> = passkeys.iter().map(|(_, p)| p.clone()).collect();
        let result = self
            .passkeys
            .finish_discoverable(&credential, &state, &keys)
            .map_err(|e| refused("credential", e))?;
        self.record_use(&user.id, passkeys, &result, "credential")
            .await?;
        tracing::info!(user_id = %user.id.0, "signed in with a passkey");
        self.sign_in(user, SignIn::one(AuthMethod::Passkey), client)
            .await
    }

    /// Options for a challenge's passkey step, naming the user's passkeys, and their state;
    /// `None` when the user has none.
    pub(super) async fn passkey_request(
        &self,
        user: &UserId,
    ) -> Result<Option<(Value, String)>, FlowError> {
        let passkeys = self.stored_passkeys(user).await?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let keys: Vec<Passkey> = passkeys.into_iter().map(|(_, p)| p).collect();
        let request = self
            .passkeys
            .start_assertion(&keys)
            .map_err(FlowError::Internal)?;
        Ok(Some(request))
    }

    /// Whether `credential` answers a challenge's passkey `state`: `Ok(true)` when accepted
    /// (its use recorded), `Ok(false)` when refused, a replay error when its counter was
    /// seen already.
    pub(super) async fn check_passkey_assertion(
        &self,
        user: &UserId,
        credential: &Value,
        state: Option<&str>,
    ) -> Result<bool, FlowError> {
        let Some(state) = state else {
            return Ok(false);
        };
        let result = match self.passkeys.finish_assertion(credential.clone(), state) {
            Ok(result) => result,
            Err(PasskeyError::State(why)) => {
                return Err(FlowError::Internal(format!("passkey challenge: {why}")));
            }
            Err(e) => {
                tracing::info!(error = %e, "passkey assertion refused");
                return Ok(false);
            }
        };
        let passkeys = self.stored_passkeys(user).await?;
        self.record_use(user, passkeys, &result, "passkey_credential")
            .await?;
        Ok(true)
    }

    /// Records a verified assertion: the passkey's new counter, if it went up (once).
    async fn record_use(
        &self,
        user: &UserId,
        passkeys: Vec<(PasskeyRecord, Passkey)>,
        result: &AuthenticationResult,
        field: &'static str,
    ) -> Result<(), FlowError> {
        let id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let (record, mut passkey) = passkeys
            .into_iter()
            .find(|(r, _)| r.id == id)
            .ok_or_else(|| refused(field, PasskeyError::Unknown))?;
        passkey.update_credential(result);
        let (stored, counter, backed_up) = passkey_stored(&passkey).map_err(FlowError::Internal)?;
        let used = PasskeyUse {
            id: &record.id,
            credential: &stored,
            counter,
            backed_up,
            at: now_ms(),
        };
        if self.stores.factors.use_passkey(user, &used).await? {
            return Ok(());
        }
        // Removed meanwhile, or another use with a counter as high got there first.
        let still_there = self
            .stores
            .factors
            .passkeys(user)
            .await?
            .iter()
            .any(|p| p.id == id);
        if !still_there {
            return Err(refused(field, PasskeyError::Unknown));
        }
        tracing::warn!(user_id = %user.0, passkey = %id, "passkey counter did not go up");
        Err(refused(field, PasskeyError::CounterWentBack))
    }

    /// The user's passkeys, as stored and as the relying party reads them. One that does not
    /// read back is left out (and logged), so it cannot stop the user's other sign-ins.
    async fn stored_passkeys(
        &self,
        user: &UserId,
    ) -> Result<Vec<(PasskeyRecord, Passkey)>, FlowError> {
        let records = self.stores.factors.passkeys(user).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| match passkey_from_stored(&r.credential) {
                Ok(passkey) => Some((r, passkey)),
                Err(e) => {
                    tracing::error!(user_id = %user.0, passkey = %r.id, error = %e, "unreadable passkey left out");
                    None
                }
            })
            .collect())
    }

    async fn put_ceremony(
        &self,
        kind: TicketKind,
        id: &str,
        state: String,
    ) -> Result<UnixMs, FlowError> {
        let now = now_ms();
        let expires_at = now + CEREMONY_TTL_MS;
        let payload = serde_json::to_string(&CeremonyTicket { state, expires_at })
            .map_err(|e| FlowError::Internal(format!("cannot write a ceremony: {e}")))?;
        self.stores
            .tickets
            .put_ticket(kind, id, &payload, expires_at, now)
            .await?;
        Ok(expires_at)
    }

    /// The state of a ceremony, taken (once) if it has not expired.
    async fn take_ceremony(&self, kind: TicketKind, id: &str) -> Result<Option<String>, FlowError> {
        let now = now_ms();
        Ok(self
            .stores
            .tickets
            .take_ticket(kind, id, now)
            .await?
            .map(|raw| {
                serde_json::from_str::<CeremonyTicket>(&raw)
                    .map_err(|e| FlowError::Internal(format!("passkey ceremony: {e}")))
            })
            .transpose()?
            .filter(|t| t.expires_at > now)
            .map(|t| t.state))
    }
}

/// The user handle of a user: the user id, a UUID.
fn user_handle(user: &UserId) -> Result<uuid::Uuid, FlowError> {
    uuid::Uuid::parse_str(&user.0)
        .map_err(|e| FlowError::Internal(format!("user id {} is not a UUID: {e}", user.0)))
}

/// A credential as it came in `field`: present, a JSON object, not oversized.
pub(super) fn credential_input(field: &str, credential: Option<Value>) -> Result<Value, String> {
    let credential =
        credential.ok_or_else(|| format!("{field} is required: the PublicKeyCredential"))?;
    if !credential.is_object() {
        return Err(format!("{field} must be a PublicKeyCredential object"));
    }
    if credential.to_string().len() > CREDENTIAL_MAX_BYTES {
        return Err(format!(
            "{field} must be at most {CREDENTIAL_MAX_BYTES} bytes of JSON"
        ));
    }
    Ok(credential)
}

/// A passkey's name: 1-64 characters after trimming, no control characters.
fn passkey_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("name is required, like \"Phone\"".into());
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(format!("name must be at most {NAME_MAX_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// The answer to a credential the relying party refused: a malformed one is bad input, the
/// rest PASSKEY_INVALID (state that does not read back is the service's fault).
fn refused(field: &'static str, e: PasskeyError) -> FlowError {
    match e {
        PasskeyError::Malformed(why) => FlowError::invalid(
            field,
            format!("{field} is not a PublicKeyCredential: {why}"),
        ),
        PasskeyError::State(why) => FlowError::Internal(format!("passkey ceremony: {why}")),
        other => {
            tracing::info!(error = %other, "passkey refused");
            FlowError::PasskeyInvalid {
                field,
                reason: other.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_printable_text() {
        assert_eq!(passkey_name("  Phone ").unwrap(), "Phone");
        assert!(passkey_name("").is_err());
        assert!(passkey_name(&"x".repeat(65)).is_err());
        assert!(passkey_name(&"é".repeat(64)).is_ok());
        assert!(passkey_name("a\u{0}b").is_err());
    }

    #[test]
    fn credentials_are_bounded_objects() {
        assert!(credential_input("credential", None).is_err());
        assert!(credential_input("credential", Some(Value::from("text"))).is_err());
        let big = serde_json::json!({ "id": "x".repeat(CREDENTIAL_MAX_BYTES) });
        assert!(credential_input("credential", Some(big)).is_err());
        assert!(credential_input("credential", Some(serde_json::json!({ "id": "abc" }))).is_ok());
    }
}
