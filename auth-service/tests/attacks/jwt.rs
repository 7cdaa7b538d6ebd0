//! Access tokens: forged, confused, replayed and oversized tokens, presented both to
//! ValidateAccessToken (the internal services' check) and as `authorization: Bearer` metadata
//! of GetCurrentUser. Every one is refused with UNAUTHENTICATED and its exact reason, and the
//! service goes on serving the real user.
//!
//! The service signs with a key this test gives it (JWT_PRIVATE_KEY), so the test can mint
//! tokens with the right key and the wrong claims. An attacker without the key cannot make
//! those, but they prove each claim is checked on its own, not trusted for the signature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use baatcheet_auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::attacks::arena::{Arena, Backend, on_every_backend};
use crate::helpers::*;

on_every_backend!(
    tokens_the_service_did_not_sign_are_refused,
    signed_tokens_with_wrong_claims_or_ended_sessions_are_refused,
    oversized_tokens_are_refused_and_the_service_keeps_serving,
);

const INVALID: &str = "ACCESS_TOKEN_INVALID";
const EXPIRED: &str = "ACCESS_TOKEN_EXPIRED";
const REVOKED: &str = "SESSION_REVOKED";

/// An Ed25519 key that signs compact JWS: the service's own, or an attacker's.
struct Signer(Ed25519KeyPair);

impl Signer {
    fn from_pem(pem_text: &str) -> Self {
        let der = pem::parse(pem_text).expect("a PEM key").into_contents();
        Self(Ed25519KeyPair::from_pkcs8(&der).expect("an Ed25519 PKCS#8 key"))
    }

    fn attackers() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("a fresh key");
        Self(Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("its own key"))
    }

    fn public(&self) -> &[u8] {
        self.0.public_key().as_ref()
    }

    /// The public key as an RFC 8037 JWK (`x` base64url).
    fn jwk(&self, kid: &str) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(self.public()), "kid": kid })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(signature.as_ref()))
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| B64URL.encode(serde_json::to_vec(v).expect("JSON"));
    format!("{}.{}", part(header), part(claims))
}

/// HS256 over the same input, keyed with `secret`.
fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64URL.encode(mac.finalize().into_bytes()))
}

/// Header and claims of a compact JWS, as JSON.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().expect("three parts");
        serde_json::from_slice(&B64URL.decode(part).expect("base64url")).expect("JSON")
    };
    (next(), next())
}

/// `value` with `changes` merged in; a `null` change removes the member.
fn with(value: &Value, changes: Value) -> Value {
    let mut out = value.clone();
    let object = out.as_object_mut().expect("a JSON object");
    for (k, v) in changes.as_object().expect("a JSON object") {
        if v.is_null() {
            object.remove(k);
        } else {
            object.insert(k.clone(), v.clone());
        }
    }
    out
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A service signing with a key this test holds, and a signed-up user of it.
struct Target {
    arena: Arena,
    key: Signer,
    /// The user's email, their real token and its decoded parts.
    email: String,
    token: String,
    header: Value,
    claims: Value,
}

impl Target {
    async fn start(backend: Backend, tag: &str) -> Self {
        let pem = auth_service::crypto::SigningKey::generate_pem().expect("a key");
        let arena = Arena::start(backend, &[("JWT_PRIVATE_KEY", pem.as_str())]).await;
        let mail = email(tag);
        let (_, tokens) = arena.signup(&username(tag), &mail).await;
        let (header, claims) = decode(&tokens.access_token);
        Self {
            arena,
            key: Signer::from_pem(&pem),
            email: mail,
            token: tokens.access_token,
            header,
            claims,
        }
    }

    fn app(&self) -> &TestApp {
        &self.arena.app
    }

    fn kid(&self) -> &str {
        self.header["kid"].as_str().expect("a kid")
    }

    /// Refused by ValidateAccessToken and by GetCurrentUser with exactly UNAUTHENTICATED and
    /// `expected`; the real user is served right after.
    async fn assert_refused(&self, attack: &str, token: &str, expected: &str) {
        for (rpc, result) in [
            (
                "ValidateAccessToken",
                self.app().validate(token).await.err(),
            ),
            ("GetCurrentUser", self.app().me(token).await.err()),
        ] {
            let status = result.unwrap_or_else(|| panic!("{attack}: {rpc} accepted the token"));
            assert_eq!(
                (status.code(), reason(&status).as_str()),
                (Code::Unauthenticated, expected),
                "{attack} over {rpc}: {status:?}"
            );
        }
        self.assert_serving(attack).await;
    }

    async fn assert_serving(&self, after: &str) {
        let claims = self
            .app()
            .validate(&self.token)
            .await
            .unwrap_or_else(|s| panic!("after {after}, the real token was refused: {s:?}"));
        assert_eq!(claims.sub, self.claims["sub"].as_str().unwrap());
        self.app()
            .me(&self.token)
            .await
            .unwrap_or_else(|s| panic!("after {after}, GetCurrentUser failed: {s:?}"));
    }
}

async fn tokens_the_service_did_not_sign_are_refused(backend: Backend) {
    let t = Target::start(backend, "forged").await;
    let (header, claims, kid) = (&t.header, &t.claims, t.kid().to_owned());

    // The key the test holds is the one the service publishes, under the RFC 7638 thumbprint...
    let x = B64URL.encode(t.key.public());
    let thumbprint = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
    assert_eq!(kid, B64URL.encode(thumbprint));
    let jwks = t
        .app()
        .client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            jwks.keys.len(),
            jwks.keys[0].kid.as_str(),
            jwks.keys[0].x.as_str()
        ),
        (1, kid.as_str(), x.as_str())
    );
    // ...and a token it re-signs from the real claims is accepted: a refusal below is the
    // service's decision, not a flaw of the forgery.
    let resigned = t.key.sign(header, claims);
    assert_eq!(
        t.app().validate(&resigned).await.unwrap().sid,
        claims["sid"].as_str().unwrap()
    );

    let attacker = Signer::attackers();
    let unsigned = |alg: &str| {
        format!(
            "{}.",
            signing_input(&with(header, json!({ "alg": alg })), claims)
        )
    };
    let attacks: Vec<(&str, String)> = vec![
        ("alg none, unsigned", unsigned("none")),
        ("alg NONE, unsigned", unsigned("NONE")),
        (
            "alg none with the real signature kept",
            format!(
                "{}.{}",
                signing_input(&with(header, json!({ "alg": "none" })), claims),
                t.token.rsplit('.').next().unwrap()
            ),
        ),
        (
            "HS256 keyed with the public key bytes",
            hs256(
                t.key.public(),
                &with(header, json!({ "alg": "HS256" })),
                claims,
            ),
        ),
        (
            "HS256 keyed with the JWK x text",
            hs256(
                x.as_bytes(),
                &with(header, json!({ "alg": "HS256" })),
                claims,
            ),
        ),
        (
            "another Ed25519 key under the service's kid",
            attacker.sign(header, claims),
        ),
        (
            "an unknown kid, signed by the attacker",
            attacker.sign(&with(header, json!({ "kid": "attacker-key-1" })), claims),
        ),
        (
            "an unknown kid, signed by the service's own key",
            t.key
                .sign(&with(header, json!({ "kid": "attacker-key-1" })), claims),
        ),
        (
            "no kid, signed by the service's own key",
            t.key.sign(&with(header, json!({ "kid": null })), claims),
        ),
        (
            "jku pointing at the attacker's JWKS",
            attacker.sign(
                &with(
                    header,
                    json!({ "jku": "https://attacker.example/jwks.json" }),
                ),
                claims,
            ),
        ),
        (
            "x5u pointing at the attacker's certificate",
            attacker.sign(
                &with(
                    header,
                    json!({ "x5u": "https://attacker.example/cert.pem" }),
                ),
                claims,
            ),
        ),
        (
            "the attacker's key embedded as jwk",
            attacker.sign(&with(header, json!({ "jwk": attacker.jwk(&kid) })), claims),
        ),
        (
            "a truncated signature",
            t.token[..t.token.len() - 6].to_owned(),
        ),
        ("no signature at all", {
            let cut = t.token.rfind('.').unwrap();
            t.token[..=cut].to_owned()
        }),
        ("one bit of the signature flipped", {
            let (input, signature) = t.token.rsplit_once('.').unwrap();
            let mut bytes = B64URL.decode(signature).unwrap();
            bytes[10] ^= 1;
            format!("{input}.{}", B64URL.encode(bytes))
        }),
        ("another subject under the real signature", {
            let forged = signing_input(header, &with(claims, json!({ "sub": "someone-else" })));
            format!("{forged}.{}", t.token.rsplit('.').next().unwrap())
        }),
        ("two parts only", {
            let cut = t.token.rfind('.').unwrap();
            t.token[..cut].to_owned()
        }),
        ("a header that is not JSON", {
            let rest = t.token.split_once('.').unwrap().1;
            format!("{}.{rest}", B64URL.encode("{\"alg\":"))
        }),
    ];
    for (attack, token) in &attacks {
        t.assert_refused(attack, token, INVALID).await;
    }
}

async fn signed_tokens_with_wrong_claims_or_ended_sessions_are_refused(backend: Backend) {
    let t = Target::start(backend, "claims").await;
    let (header, claims) = (&t.header, &t.claims);
    let now = now_secs();

    // Controls: the same claims with a past nbf, and with an exp just ahead, are accepted.
    for control in [json!({ "nbf": now - 60 }), json!({ "exp": now + 30 })] {
        let token = t.key.sign(header, &with(claims, control.clone()));
        t.app()
            .validate(&token)
            .await
            .unwrap_or_else(|s| panic!("control {control} refused: {s:?}"));
    }

    let other = t.arena.signup(&username("other"), &email("other")).await.1;
    let others_sid = decode(&other.access_token).1["sid"].clone();
    let mine = |changes: Value| t.key.sign(header, &with(claims, changes));
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "expired a minute ago",
            mine(json!({ "iat": now - 960, "exp": now - 60 })),
            EXPIRED,
        ),
        (
            "expired a second ago",
            mine(json!({ "exp": now - 1 })),
            EXPIRED,
        ),
        (
            "nbf an hour ahead",
            mine(json!({ "nbf": now + 3600 })),
            INVALID,
        ),
        (
            "nbf a minute ahead",
            mine(json!({ "nbf": now + 60 })),
            INVALID,
        ),
        (
            "a wrong iss",
            mine(json!({ "iss": "someone-else" })),
            INVALID,
        ),
        (
            "a wrong aud",
            mine(json!({ "aud": "another-app" })),
            INVALID,
        ),
        ("no aud", mine(json!({ "aud": null })), INVALID),
        ("no sid", mine(json!({ "sid": null })), INVALID),
        ("no exp", mine(json!({ "exp": null })), INVALID),
        ("no sub", mine(json!({ "sub": null })), INVALID),
        (
            "an exp that is text",
            mine(json!({ "exp": "tomorrow" })),
            INVALID,
        ),
        (
            "a sid of another user's live session",
            mine(json!({ "sid": others_sid })),
            REVOKED,
        ),
        (
            "a sid that names no session",
            mine(json!({ "sid": "00000000-0000-4000-8000-000000000000" })),
            REVOKED,
        ),
    ];
    for (attack, token, expected) in &attacks {
        t.assert_refused(attack, token, expected).await;
    }

    // A real token whose session logged out is refused at once, not when it expires.
    let login = t
        .app()
        .login(&t.email, PASSWORD)
        .await
        .expect("a second session")
        .tokens
        .unwrap();
    t.app().validate(&login.access_token).await.unwrap();
    t.app()
        .client()
        .logout(pb::LogoutRequest {
            refresh_token: login.refresh_token.clone(),
        })
        .await
        .unwrap();
    t.assert_refused(
        "a real token of a logged-out session",
        &login.access_token,
        REVOKED,
    )
    .await;
    // The other user, whose sid was borrowed above, was never affected.
    t.app().me(&other.access_token).await.unwrap();
}

async fn oversized_tokens_are_refused_and_the_service_keeps_serving(backend: Backend) {
    let t = Target::start(backend, "huge").await;
    // A validly signed token of about `bytes` bytes: real claims and a padding claim.
    let padded = |bytes: usize| {
        let sign = |pad: usize| {
            t.key.sign(
                &t.header,
                &with(&t.claims, json!({ "pad": "x".repeat(pad) })),
            )
        };
        let token = sign((bytes - sign(0).len()) * 3 / 4);
        assert!(
            (bytes - 8..=bytes).contains(&token.len()),
            "{}",
            token.len()
        );
        token
    };
    let kb100 = padded(100 * 1024);
    // 20 KB and 60 KB fit the message and the header limits: refused as tokens, on both paths.
    t.assert_refused("a 20 KB token", &padded(20 * 1024), INVALID)
        .await;
    t.assert_refused("a 60 KB token", &padded(60 * 1024), INVALID)
        .await;
    // 100 KB still fits a ValidateAccessToken message (128 KiB).
    let status = t.app().validate(&kb100).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unauthenticated, INVALID),
        "{status:?}"
    );

    // As metadata, 100 KB is over the 64 KiB header list limit: that one call fails, and the
    // service, its other connections and this very connection go on.
    let mut client = t.app().client();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_current_user(authed(pb::GetCurrentUserRequest {}, &kb100)),
    )
    .await
    .expect("a 100 KB header is answered, not left hanging");
    let status = outcome.expect_err("a 100 KB bearer token is never accepted");
    // The HTTP/2 layer answers the stream with 431 (no grpc-status; tonic's client reports
    // UNKNOWN): a refusal of that one request, not a reset or a closed connection.
    assert!(status.message().contains("431"), "{status:?}");
    let fresh = AuthServiceClient::connect(format!("http://{}", t.app().addr))
        .await
        .expect("a new connection");
    for mut client in [fresh, t.app().client()] {
        let user = client
            .get_current_user(authed(pb::GetCurrentUserRequest {}, &t.token))
            .await
            .expect("served after the 100 KB header")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(user.id, t.claims["sub"].as_str().unwrap());
    }
    t.assert_serving("the 100 KB header").await;
}
