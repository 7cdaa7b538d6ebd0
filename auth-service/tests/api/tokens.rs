//! Access tokens: ValidateAccessToken's claims for a live session, tampered, `none`, HMAC,
//! foreign-key and expired tokens refused, and GetJwks enough to verify tokens offline.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

use crate::helpers::*;

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn validate_returns_the_claims_of_a_live_session() {
    let app = spawn_app().await;
    let (user, tokens) = app.signup(&username("val"), &email("val")).await;
    let claims = app.validate(&tokens.access_token).await.unwrap();
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.sid, tokens.session_id);
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("baatcheet-auth", "baatcheet")
    );
    assert!(!claims.jti.is_empty());
    let lifetime = claims.exp.unwrap().seconds - claims.iat.unwrap().seconds;
    assert!(
        (899..=900).contains(&lifetime),
        "15 minutes by default: {lifetime}"
    );
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(tokens.access_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
}

#[tokio::test]
async fn tampered_none_and_hmac_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, tokens) = app.signup(&username("tamper"), &email("tamper")).await;
    let parts: Vec<&str> = tokens.access_token.split('.').collect();
    let mut claims = claims_of(&tokens.access_token);

    // Another subject with the original signature.
    claims["sub"] = "someone-else".into();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_error(
        app.validate(&tampered).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );

    // alg: none, no signature.
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let none_header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    let original_claims = claims_of(&tokens.access_token);
    for unsigned in [
        format!("{}.{}.", b64(&none_header), b64(&original_claims)),
        format!("{}.{}", b64(&none_header), b64(&original_claims)),
    ] {
        assert_error(
            app.validate(&unsigned).await,
            Code::Unauthenticated,
            "ACCESS_TOKEN_INVALID",
        );
    }

    // HS256 signed with the public key as the HMAC secret (key confusion).
    let jwks = app
        .client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let x = URL_SAFE_NO_PAD.decode(&jwks.keys[0].x).unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    let confused = jsonwebtoken::encode(
        &hs_header,
        &original_claims,
        &jsonwebtoken::EncodingKey::from_secret(&x),
    )
    .unwrap();
    assert_error(
        app.validate(&confused).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );

    // Flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_error(
        app.validate(&flipped).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );

    // The untouched token still works.
    app.validate(&tokens.access_token).await.unwrap();
    let status = assert_error(
        app.validate("").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["access_token"]);
}

#[tokio::test]
async fn a_token_from_another_issuer_key_is_refused() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    let (_, tokens) = a.signup(&username("iss"), &email("iss")).await;
    assert_error(
        b.validate(&tokens.access_token).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_EXPIRY", "1s")]).await;
    let (_, tokens) = app.signup(&username("old"), &email("old")).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_error(
        app.validate(&tokens.access_token).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_EXPIRED",
    );
    assert_error(
        app.me(&tokens.access_token).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_EXPIRED",
    );
    // The refresh token still gets a new pair.
    let fresh = app.refresh(&tokens.refresh_token).await.unwrap();
    app.validate(&fresh.access_token).await.unwrap();
}

#[tokio::test]
async fn jwks_verifies_access_tokens_offline() {
    let app = spawn_app().await;
    let (user, tokens) = app.signup(&username("jwks"), &email("jwks")).await;
    let jwks = app
        .client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (
            key.kty.as_str(),
            key.crv.as_str(),
            key.alg.as_str(),
            key.r#use.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );
    // The JSON document parses as a JWK set that jsonwebtoken accepts.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks.jwks_json).unwrap();
    let jwk = set.find(&key.kid).expect("kid in the JSON document");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["baatcheet"]);
    validation.set_issuer(&["baatcheet-auth"]);
    let data =
        jsonwebtoken::decode::<serde_json::Value>(&tokens.access_token, &decoding, &validation)
            .unwrap();
    assert_eq!(data.claims["sub"], user.id.as_str());
}
