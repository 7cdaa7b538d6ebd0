//! A signing-key rotation by hand with JWT_PRIVATE_KEYS_DIR, over restarts of the service: the
//! next key is published before it signs, the previous one verifies until it is removed, and
//! a token names the key that signed it; and the folder's mistakes are named at startup.

use std::path::Path;

use auth_service::config::KeysConfig;
use auth_service::crypto::SigningKey;
use baatcheet_auth_api::v1 as pb;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

use crate::helpers::*;

fn write_key(dir: &Path, kid: &str) {
    std::fs::write(
        dir.join(format!("{kid}.pem")),
        SigningKey::generate_pem().unwrap(),
    )
    .unwrap();
}

/// The `kid` of a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    json["kid"].as_str().unwrap().to_owned()
}

async fn published(app: &TestApp) -> Vec<String> {
    let reply = app.client().get_jwks(pb::GetJwksRequest {}).await.unwrap();
    reply.into_inner().keys.into_iter().map(|k| k.kid).collect()
}

#[tokio::test]
async fn a_rotation_by_hand_publishes_first_and_retires_last() {
    let keys = tempfile::tempdir().unwrap();
    let folder = keys.path().display().to_string();
    write_key(keys.path(), "2026-11");
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db").display().to_string();
    let start = |data, active: Option<&'static str>| {
        let (folder, db) = (folder.clone(), db.clone());
        async move {
            let mut vars = vec![
                ("JWT_PRIVATE_KEYS_DIR", folder.as_str()),
                ("SQLITE_PATH", db.as_str()),
            ];
            if let Some(kid) = active {
                vars.push(("JWT_KEY_ID", kid));
            }
            spawn_in(data, &vars).await
        }
    };

    // One key: it signs.
    let app = start(data, None).await;
    let mail = email("rotate");
    let (_, before) = app.signup(&username("rotate"), &mail).await;
    assert_eq!(kid_of(&before.access_token), "2026-11");
    assert_eq!(published(&app).await, ["2026-11"]);
    let data = app.stop().await;

    // 1. The next key is published on every instance, and the old one still signs.
    write_key(keys.path(), "2026-12");
    let app = start(data, Some("2026-11")).await;
    assert_eq!(published(&app).await, ["2026-11", "2026-12"]);
    let login = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_eq!(kid_of(&login.access_token), "2026-11");
    let data = app.stop().await;

    // 2. The next key signs; tokens of the old one keep validating.
    let app = start(data, Some("2026-12")).await;
    assert_eq!(published(&app).await, ["2026-12", "2026-11"]);
    app.validate(&before.access_token).await.unwrap();
    let after = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_eq!(kid_of(&after.access_token), "2026-12");
    let data = app.stop().await;

    // 3. Once the old key's tokens have expired, it is removed: what it signed is refused.
    std::fs::remove_file(keys.path().join("2026-11.pem")).unwrap();
    let app = start(data, None).await;
    assert_eq!(published(&app).await, ["2026-12"]);
    app.validate(&after.access_token).await.unwrap();
    assert_error(
        app.validate(&before.access_token).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );
}

#[test]
fn a_key_folders_mistakes_are_named() {
    let keys = |dir: Option<&Path>, pem: Option<&str>, kid: Option<&str>| KeysConfig {
        jwt_private_key_pem: pem.map(|p| p.to_owned().into()),
        jwt_private_keys_dir: dir.map(Path::to_path_buf),
        jwt_key_id: kid.map(str::to_owned),
        auth_secret: None,
    };
    let data = tempfile::tempdir().unwrap();
    let load = |config: KeysConfig| {
        auth_service::keys::signing_keys(&config, data.path())
            .map(|(signing, others)| (signing.kid().to_owned(), others.len()))
            .map_err(|e| e.var)
    };
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), None, None)),
        Err("JWT_PRIVATE_KEYS_DIR")
    );
    write_key(dir.path(), "a");
    write_key(dir.path(), "b");
    assert_eq!(load(keys(Some(dir.path()), None, None)), Err("JWT_KEY_ID"));
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("c"))),
        Err("JWT_KEY_ID")
    );
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("b"))),
        Ok(("b".into(), 1))
    );
    let pem = SigningKey::generate_pem().unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), Some(&pem), Some("b"))),
        Err("JWT_PRIVATE_KEYS_DIR"),
        "one way of configuring keys at a time"
    );
    std::fs::write(dir.path().join("bad name!.pem"), &pem).unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("b"))),
        Err("JWT_PRIVATE_KEYS_DIR")
    );
    std::fs::remove_file(dir.path().join("bad name!.pem")).unwrap();
    std::fs::write(dir.path().join("c.pem"), "not a key").unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("b"))),
        Err("JWT_PRIVATE_KEYS_DIR")
    );
    // A real key, padded past 8 KiB: refused before it is read.
    let padded = format!(
        "{}{}",
        SigningKey::generate_pem().unwrap(),
        "\n".repeat(9 * 1024)
    );
    std::fs::write(dir.path().join("c.pem"), padded).unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("b"))),
        Err("JWT_PRIVATE_KEYS_DIR"),
        "too big"
    );
    std::fs::remove_file(dir.path().join("c.pem")).unwrap();
    std::fs::create_dir(dir.path().join("d.pem")).unwrap();
    assert_eq!(
        load(keys(Some(dir.path()), None, Some("b"))),
        Err("JWT_PRIVATE_KEYS_DIR"),
        "not a file"
    );
    let missing = dir.path().join("nowhere");
    assert_eq!(
        load(keys(Some(&missing), None, None)),
        Err("JWT_PRIVATE_KEYS_DIR")
    );
}
