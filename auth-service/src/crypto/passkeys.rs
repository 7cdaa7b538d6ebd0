//! The WebAuthn relying party (webauthn-rs): the options a browser passes to
//! `navigator.credentials.create/get`, and the checks of what the authenticator answers
//! (challenge, origin, relying-party id, signature, user verification, sign counter). Options
//! and credentials are JSON values here; the state between the two steps is JSON the flows
//! keep server-side as a ticket.

use serde_json::Value;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// Who the passkeys are for: the relying-party id (a domain) and the exact origins (scheme,
/// host, port) a browser may be on.
#[derive(Debug, Clone)]
pub struct PasskeySettings {
    pub rp_id: String,
    pub origins: Vec<Url>,
}

impl PasskeySettings {
    /// Checks an id and origins as a browser would: the id is a bare domain, and each origin is
    /// https (or http on localhost) on the id or a subdomain of it. The error says which.
    pub fn new(rp_id: &str, origins: &[&str]) -> Result<Self, (&'static str, String)> {
        let rp_id = rp_id.trim().to_ascii_lowercase();
        let domain = Url::parse(&format!("https://{rp_id}"))
            .ok()
            .filter(|u| u.domain() == Some(rp_id.as_str()) && u.port().is_none());
        if rp_id.is_empty() || domain.is_none() || rp_id.parse::<std::net::IpAddr>().is_ok() {
            return Err((
                "WEBAUTHN_RP_ID",
                format!("{rp_id:?} is not a domain like example.com (no scheme, port or path)"),
            ));
        }
        let mut parsed = Vec::new();
        for origin in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let url = Url::parse(origin)
                .ok()
                .filter(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none());
            let Some(url) = url else {
                return Err((
                    "WEBAUTHN_ORIGINS",
                    format!("{origin:?} is not an origin like https://chat.example.com"),
                ));
            };
            let host = url.host_str().unwrap_or_default();
            let on_id = host == rp_id || host.ends_with(&format!(".{rp_id}"));
            let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
            if !on_id || !secure {
                return Err((
                    "WEBAUTHN_ORIGINS",
                    format!(
                        "{origin:?} must be https:// (http:// only on localhost) on \
                         {rp_id} or a subdomain of it (WEBAUTHN_RP_ID)"
                    ),
                ));
            }
            parsed.push(url);
        }
        if parsed.is_empty() {
            return Err((
                "WEBAUTHN_ORIGINS",
                "needs at least one origin, like https://chat.example.com".into(),
            ));
        }
        Ok(Self {
            rp_id,
            origins: parsed,
        })
    }
}

/// Why an authenticator's answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Not the JSON of a PublicKeyCredential.
    #[error("not a PublicKeyCredential: {0}")]
    Malformed(String),
    /// The sign counter did not go up: the authenticator may have been cloned.
    #[error("the authenticator's signature counter went back; it may have been cloned")]
    CounterWentBack,
    /// The credential is not one of the account's (or the account does not exist).
    #[error("this passkey is not registered here")]
    Unknown,
    /// The ceremony state kept server-side does not read back: the service's fault.
    #[error("stored ceremony state: {0}")]
    State(String),
    /// Anything else the relying party checks (challenge, origin, signature, flags).
    #[error("{0}")]
    Refused(String),
}

impl From<WebauthnError> for PasskeyError {
    fn from(e: WebauthnError) -> Self {
        match e {
            WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterWentBack,
            WebauthnError::CredentialNotFound => PasskeyError::Unknown,
            other => PasskeyError::Refused(other.to_string()),
        }
    }
}

/// The relying party of this service.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl RelyingParty {
    /// `name` is what authenticators show (APP_NAME).
    pub fn new(settings: &PasskeySettings, name: &str) -> Result<Self, String> {
        let (first, rest) = settings
            .origins
            .split_first()
            .ok_or("no WEBAUTHN_ORIGINS")?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)
            .map_err(|e| format!("WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS: {e}"))?
            .rp_name(name);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|e| format!("WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS: {e}"))?;
        Ok(Self { webauthn })
    }

    /// Options for `navigator.credentials.create()`: a discoverable credential (so it can sign
    /// in without a username) with user verification, none of `exclude` again.
    pub fn start_registration(
        &self,
        user: Uuid,
        name: &str,
        display_name: &str,
        exclude: Vec<CredentialID>,
    ) -> Result<(Value, String), String> {
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user, name, display_name, Some(exclude))
            .map_err(|e| e.to_string())?;
        let mut options = json(&options)?;
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        if !selection.is_object() {
            *selection = Value::Object(Default::default());
        }
        selection["residentKey"] = "required".into();
        selection["requireResidentKey"] = true.into();
        Ok((options, json_text(&state)?))
    }

    /// The passkey `credential` created, if it answers the registration `state`.
    pub fn finish_registration(
        &self,
        credential: Value,
        state: &str,
    ) -> Result<Passkey, PasskeyError> {
        let credential: RegisterPublicKeyCredential = parse(credential)?;
        let state: PasskeyRegistration = state_from(state)?;
        Ok(self
            .webauthn
            .finish_passkey_registration(&credential, &state)?)
    }

    /// Options for `navigator.credentials.get()` with no credential named: the browser offers
    /// every passkey of this site.
    pub fn start_discoverable(&self) -> Result<(Value, String), String> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| e.to_string())?;
        // The conditional-UI hint would make get() wait for autofill; the page asks outright.
        let mut options = json(&options)?;
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        Ok((options, json_text(&state)?))
    }

    /// The user (from the assertion's user handle) and credential id an assertion names,
    /// before anything is verified.
    pub fn identify(&self, credential: Value) -> Result<(Uuid, PublicKeyCredential), PasskeyError> {
        let credential: PublicKeyCredential = parse(credential)?;
        let (user, _) = self
            .webauthn
            .identify_discoverable_authentication(&credential)?;
        Ok((user, credential))
    }

    /// Verifies a discoverable assertion against the one of the user's `passkeys` it names.
    pub fn finish_discoverable(
        &self,
        credential: &PublicKeyCredential,
        state: &str,
        passkeys: &[Passkey],
    ) -> Result<AuthenticationResult, PasskeyError> {
        let state: DiscoverableAuthentication = state_from(state)?;
        let named = credential.get_credential_id();
        let passkey = passkeys
            .iter()
            .find(|p| p.cred_id().as_slice() == named)
            .ok_or(PasskeyError::Unknown)?;
        Ok(self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, passkey)?)
    }

    /// Options for `navigator.credentials.get()` naming the user's `passkeys` (a second factor).
    pub fn start_assertion(&self, passkeys: &[Passkey]) -> Result<(Value, String), String> {
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(passkeys)
            .map_err(|e| e.to_string())?;
        Ok((json(&options)?, json_text(&state)?))
    }

    /// Verifies an assertion of the options of [`Self::start_assertion`].
    pub fn finish_assertion(
        &self,
        credential: Value,
        state: &str,
    ) -> Result<AuthenticationResult, PasskeyError> {
        let credential: PublicKeyCredential = parse(credential)?;
        let state: PasskeyAuthentication = state_from(state)?;
        Ok(self
            .webauthn
            .finish_passkey_authentication(&credential, &state)?)
    }
}

/// A passkey's stored form with what is read beside it: its JSON, sign counter and whether it
/// is backed up.
pub fn stored(passkey: &Passkey) -> Result<(String, u32, bool), String> {
    let value = json(passkey)?;
    let cred = &value["cred"];
    let counter = cred["counter"].as_u64().and_then(|c| u32::try_from(c).ok());
    let backed_up = cred["backup_state"].as_bool().unwrap_or(false);
    let counter = counter.ok_or("a passkey without a counter")?;
    Ok((value.to_string(), counter, backed_up))
}

/// A stored passkey back.
pub fn from_stored(text: &str) -> Result<Passkey, String> {
    serde_json::from_str(text).map_err(|e| format!("stored passkey: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, PasskeyError> {
    serde_json::from_value(value).map_err(|e| PasskeyError::Malformed(e.to_string()))
}

fn state_from<T: serde::de::DeserializeOwned>(state: &str) -> Result<T, PasskeyError> {
    serde_json::from_str(state).map_err(|e| PasskeyError::State(e.to_string()))
}

fn json<T: serde::Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_a_domain_and_its_secure_origins() {
        let ok = PasskeySettings::new("Example.com", &["https://chat.example.com", " "]).unwrap();
        assert_eq!(ok.rp_id, "example.com");
        assert_eq!(ok.origins.len(), 1);
        assert!(PasskeySettings::new("localhost", &["http://localhost:8080"]).is_ok());
        for (id, origins, var) in [
            ("", &["https://example.com"][..], "WEBAUTHN_RP_ID"),
            (
                "https://example.com",
                &["https://example.com"],
                "WEBAUTHN_RP_ID",
            ),
            (
                "example.com:443",
                &["https://example.com"],
                "WEBAUTHN_RP_ID",
            ),
            ("127.0.0.1", &["http://127.0.0.1"], "WEBAUTHN_RP_ID"),
            ("example.com", &[], "WEBAUTHN_ORIGINS"),
            ("example.com", &["http://example.com"], "WEBAUTHN_ORIGINS"),
            ("example.com", &["https://example.org"], "WEBAUTHN_ORIGINS"),
            (
                "example.com",
                &["https://badexample.com"],
                "WEBAUTHN_ORIGINS",
            ),
            (
                "example.com",
                &["https://example.com/app"],
                "WEBAUTHN_ORIGINS",
            ),
            ("example.com", &["example.com"], "WEBAUTHN_ORIGINS"),
        ] {
            let err = PasskeySettings::new(id, origins).unwrap_err();
            assert_eq!(err.0, var, "{id} {origins:?}: {}", err.1);
        }
    }

    #[test]
    fn registration_asks_for_a_discoverable_verified_credential() {
        let settings = PasskeySettings::new("localhost", &["http://localhost:8080"]).unwrap();
        let rp = RelyingParty::new(&settings, "Baat Cheet").unwrap();
        let (options, state) = rp
            .start_registration(Uuid::now_v7(), "asha@example.com", "asha", Vec::new())
            .unwrap();
        let selection = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["requireResidentKey"], true);
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
        assert!(!state.is_empty());
        let (options, _) = rp.start_discoverable().unwrap();
        assert!(options.get("mediation").is_none());
        assert_eq!(options["publicKey"]["userVerification"], "required");
    }

    /// The counter and flags are read from webauthn-rs's serialised passkey: a version whose
    /// layout moved them fails here, not in production.
    #[test]
    fn a_stored_passkey_keeps_its_counter_as_assertions_raise_it() {
        let settings = PasskeySettings::new("localhost", &["http://localhost:8080"]).unwrap();
        let rp = RelyingParty::new(&settings, "Baat Cheet").unwrap();
        let (options, state) = rp
            .start_registration(Uuid::now_v7(), "asha@example.com", "asha", Vec::new())
            .unwrap();
        let mut key =
            baatcheet_test_support::passkey::SoftAuthenticator::new("http://localhost:8080");
        let passkey = rp
            .finish_registration(key.register(options), &state)
            .unwrap();
        let (text, counter, backed_up) = stored(&passkey).unwrap();
        assert_eq!((counter, backed_up), (0, false));
        let mut back = from_stored(&text).unwrap();
        assert_eq!(back.cred_id(), passkey.cred_id());
        for expected in 1..=2 {
            let (options, state) = rp.start_assertion(std::slice::from_ref(&back)).unwrap();
            let result = rp.finish_assertion(key.assert(options), &state).unwrap();
            assert!(result.user_verified());
            back.update_credential(&result);
            assert_eq!(stored(&back).unwrap().1, expected);
        }
    }
}
