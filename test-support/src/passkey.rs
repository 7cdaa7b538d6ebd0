//! A passkey authenticator in software: webauthn-rs's own `SoftPasskey` (P-256, a counter
//! that goes up by one per assertion), answering the options the service returns as JSON the
//! way a browser's `navigator.credentials.create/get` would, with the results as the JSON a
//! page sends back. `SoftPasskey` keeps no resident credentials, so this wrapper remembers
//! each credential's user handle and, for a discoverable sign-in (no credential named), picks
//! its own credential and adds the handle, as a platform authenticator does.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{AllowCredentials, CreationChallengeResponse, RequestChallengeResponse};

/// One authenticator holding any number of credentials.
pub struct SoftAuthenticator {
    inner: SoftPasskey,
    origin: Url,
    /// (credential id, user handle) of each credential made, oldest first.
    credentials: Vec<(Vec<u8>, Vec<u8>)>,
}

impl SoftAuthenticator {
    /// An authenticator in a browser on `origin` (e.g. `http://localhost:8080`). It reports
    /// user verification (a PIN or fingerprint it did not ask for).
    pub fn new(origin: &str) -> Self {
        Self {
            inner: SoftPasskey::new(true),
            origin: Url::parse(origin).expect("an origin"),
            credentials: Vec::new(),
        }
    }

    /// The same authenticator in a browser on another origin (a look-alike site).
    pub fn move_to(&mut self, origin: &str) {
        self.origin = Url::parse(origin).expect("an origin");
    }

    /// Answers creation options (`{"publicKey": {...}}`) with a new credential, as the JSON of
    /// a PublicKeyCredential.
    pub fn register(&mut self, options: Value) -> Value {
        let mut options: CreationChallengeResponse =
            serde_json::from_value(options).expect("creation options");
        // It keeps no resident keys; the service cannot tell, and this wrapper stands in.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = None;
        }
        let user_handle = options.public_key.user.id.to_vec();
        let credential = self
            .inner
            .do_registration(self.origin.clone(), options)
            .expect("the soft authenticator registers");
        self.credentials
            .push((credential.raw_id.to_vec(), user_handle));
        serde_json::to_value(&credential).expect("JSON")
    }

    /// Answers request options with an assertion of the newest credential named in them, or,
    /// when none is named (a discoverable sign-in), of this authenticator's newest credential,
    /// with its user handle.
    pub fn assert(&mut self, options: Value) -> Value {
        let mut options: RequestChallengeResponse =
            serde_json::from_value(options).expect("request options");
        let discoverable = options.public_key.allow_credentials.is_empty();
        let (id, handle) = self
            .credentials
            .iter()
            .rev()
            .find(|(id, _)| {
                discoverable
                    || options
                        .public_key
                        .allow_credentials
                        .iter()
                        .any(|c| c.id.as_slice() == id.as_slice())
            })
            .cloned()
            .expect("a credential for these options");
        options.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id,
            transports: None,
        }];
        let mut credential = self
            .inner
            .do_authentication(self.origin.clone(), options)
            .expect("the soft authenticator signs");
        if discoverable {
            credential.response.user_handle = Some(handle);
        }
        serde_json::to_value(&credential).expect("JSON")
    }

    /// The base64url id of the newest credential.
    pub fn last_id(&self) -> String {
        let (id, _) = self.credentials.last().expect("a credential");
        URL_SAFE_NO_PAD.encode(id)
    }
}
