//! Signing-key rotations.
//!
//! - By hand with JWT_PRIVATE_KEYS_DIR, over restarts of the service: the next key is
//!   published before it signs, the previous one verifies until it is removed, and a token
//!   names the key that signed it; the folder's mistakes are named at startup.
//! - Automatic (JWT_KEY_ROTATION_INTERVAL), with short intervals across two instances on
//!   Redis + MongoDB: each key is published on both before either signs with it, tokens keep
//!   validating until they expire, the verifier library follows without a restart, old keys
//!   go; the keys are stored sealed, and an instance with another AUTH_SECRET refuses to
//!   start rather than sign with keys the others cannot check.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use auth_service::config::{Config, KeysConfig};
use auth_service::crypto::SigningKey;
use baatcheet_auth_api::v1 as pb;
use baatcheet_auth_api::verifier::AccessTokenVerifier;
use baatcheet_runtime::cli::Service as _;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;

use crate::env::Backends;
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
        rotation: None,
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

/// A key a few seconds long: tokens of 2 s, keys published 2 s before they sign, a new one
/// every 4 s (kept 2 s + 2 s after their successor starts).
const FAST_ROTATION: [(&str, &str); 3] = [
    ("ACCESS_TOKEN_EXPIRY", "2s"),
    ("JWKS_PREPUBLISH", "2s"),
    ("JWT_KEY_ROTATION_INTERVAL", "4s"),
];

/// The kids both instances publish, once they agree (they read the ring at their own times).
async fn agreed(a: &TestApp, b: &TestApp) -> Vec<String> {
    let mut last = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let (x, y) = (published(a).await, published(b).await);
        let same = x.iter().collect::<HashSet<_>>() == y.iter().collect::<HashSet<_>>();
        if same && x[0] == y[0] {
            return x;
        }
        last = (x, y);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the instances never agreed on the JWKS: {last:?}");
}

#[tokio::test]
async fn an_automatic_rotation_across_two_instances_is_followed_without_restart() {
    let env = Backends::start(false).await;
    // The verifier follows the event stream with a service credential.
    let (socket_token, socket_line) = auth_service::crypto::mint_service_token("socket").unwrap();
    let vars = [
        &FAST_ROTATION[..],
        &[("SERVICE_TOKENS", socket_line.as_str())],
    ]
    .concat();
    let a = env.instance(&vars).await;
    let b = env.instance(&vars).await;
    let configured = SigningKey::from_pem(&env.signing_key, None)
        .unwrap()
        .kid()
        .to_owned();
    let mut refresh = env
        .signup(&b, &username("ring2"), &email("ring2"))
        .await
        .1
        .refresh_token;

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", a.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Refetching on an unknown kid at most twice a second: below JWKS_PREPUBLISH, as the
    // README asks of verifiers.
    let verifier = AccessTokenVerifier::builder(channel)
        .issuer("baatcheet-auth")
        .audience("baatcheet")
        .jwks_refresh_interval(Duration::from_millis(500))
        .service_token(socket_token)
        .build()
        .unwrap();
    verifier.refresh_keys().await.unwrap();
    let _follower = verifier.spawn_follower();

    // The kids both instances have published, and the tokens issued so far.
    let mut seen: HashSet<String> = HashSet::new();
    let mut tokens: Vec<(String, i64)> = Vec::new();
    let mut signers: Vec<String> = Vec::new();
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(16) {
        round += 1;
        let jwks = agreed(&a, &b).await;
        assert!(jwks.len() <= 4, "few keys at a time: {jwks:?}");
        seen.extend(jwks);
        let app = if round % 2 == 0 { &a } else { &b };
        let pair = app.refresh(&refresh).await.unwrap();
        refresh = pair.refresh_token.clone();
        let kid = kid_of(&pair.access_token);
        // Published by both instances before either signed with it (how long before is
        // for the plan's unit tests).
        assert!(
            seen.contains(&kid),
            "{kid} signed before both instances published it"
        );
        if signers.last() != Some(&kid) {
            signers.push(kid.clone());
        }
        let exp = pair.access_token_expire_time.unwrap().seconds;
        tokens.push((pair.access_token, exp));
        // Every token still well inside its life validates on both instances and offline.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        for (token, exp) in tokens.iter().filter(|(_, exp)| *exp > now + 1) {
            for app in [&a, &b] {
                app.validate(token)
                    .await
                    .unwrap_or_else(|e| panic!("{} (exp {exp}): {e:?}", kid_of(token)));
            }
            verifier
                .verify(token)
                .await
                .unwrap_or_else(|e| panic!("verifier, {}: {e}", kid_of(token)));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The configured key signs until the first ring key does (the loop may begin after
    // that on a slow machine), then the ring's keys in turn.
    if signers[0] != configured {
        signers.insert(0, configured.clone());
    }
    assert!(
        signers.len() >= 4,
        "the configured key, then at least three ring keys in turn: {signers:?}"
    );
    assert_eq!(
        signers.iter().collect::<HashSet<_>>().len(),
        signers.len(),
        "a key never signs again after its successor: {signers:?}"
    );
    // The first ring key has been retired everywhere; its tokens (expired) are refused.
    let jwks = agreed(&a, &b).await;
    assert!(
        !jwks.contains(&signers[1]),
        "{} retired: {jwks:?}",
        signers[1]
    );
    assert!(
        jwks.contains(&configured),
        "the configured key stays published"
    );
    let (first_ring_token, _) = tokens
        .iter()
        .find(|(t, _)| kid_of(t) == signers[1])
        .unwrap();
    // Refused for its key, which is gone, before its expiry is looked at.
    assert_error(
        a.validate(first_ring_token).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );

    // The same verifier still follows the sessions: a logout reaches it.
    let pair = a.refresh(&refresh).await.unwrap();
    verifier.verify(&pair.access_token).await.unwrap();
    a.client()
        .logout(pb::LogoutRequest {
            refresh_token: pair.refresh_token,
        })
        .await
        .unwrap();
    crate::env::eventually(
        Duration::from_secs(10),
        "the logout reaches the verifier",
        || {
            let token = pair.access_token.clone();
            let verifier = &verifier;
            async move { verifier.verify(&token).await.is_err() }
        },
    )
    .await;
    assert_eq!(
        verifier.verify_cached(&pair.access_token),
        Err(baatcheet_auth_api::verifier::VerifyError::Revoked)
    );

    a.stop().await;
    b.stop().await;

    // Stored sealed: the ring in MongoDB holds no key that parses as one.
    let client = mongodb::Client::with_uri_str(&env.mongo_uri).await.unwrap();
    let rings = client
        .database(&env.database)
        .collection::<mongodb::bson::Document>("signing_keys");
    let ring = rings
        .find_one(mongodb::bson::doc! { "_id": "ring" })
        .await
        .unwrap()
        .expect("the ring is stored");
    let keys = ring.get_array("keys").unwrap();
    assert!((2..=3).contains(&keys.len()), "{ring}");
    for key in keys {
        let key = key.as_document().unwrap();
        let sealed = URL_SAFE_NO_PAD
            .decode(key.get_str("sealed").unwrap())
            .unwrap();
        assert!(
            SigningKey::from_der(&sealed, None).is_err(),
            "sealed: {key}"
        );
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
    }

    // An instance with another AUTH_SECRET cannot open the keys: it refuses to start, and
    // writes nothing, though a new key is due by now.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let other_secret = base64::engine::general_purpose::STANDARD
        .encode(auth_service::crypto::ServerSecret::generate());
    let err = build_error(
        &env,
        &[&FAST_ROTATION[..], &[("AUTH_SECRET", &other_secret)]].concat(),
    )
    .await;
    assert!(err.contains("AUTH_SECRET"), "{err}");
    let after = rings
        .find_one(mongodb::bson::doc! { "_id": "ring" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, ring, "the ring is as the instances left it");
}

/// Why the service refuses to start on `env` with `extra`.
async fn build_error(env: &Backends, extra: &[(&str, &str)]) -> String {
    let redis = env.redis.url();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("MONGODB_URI".into(), env.mongo_uri.clone()),
        ("DB_NAME".into(), env.database.clone()),
        ("REDIS_URL".into(), redis),
        ("JWT_PRIVATE_KEY".into(), env.signing_key.clone()),
        ("AUTH_SECRET".into(), env.auth_secret.clone()),
    ]);
    let data = tempfile::tempdir().unwrap();
    vars.insert("DATA_DIR".into(), data.path().display().to_string());
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(&move |k| vars.get(k).cloned()).unwrap();
    match auth_service::startup::Application::build(config).await {
        Ok(_) => panic!("the service started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn without_a_configured_key_the_rotation_signs_from_the_start_and_keeps_its_keys() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.db").display().to_string();
    let vars = [
        ("SQLITE_PATH", db.as_str()),
        ("JWT_KEY_ROTATION_INTERVAL", "1d"),
        ("JWKS_PREPUBLISH", "20m"),
    ];
    let app = spawn_in(data, &vars).await;
    let reply = app
        .client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.keys.len(), 1, "one key, made by the service");
    let kid = reply.keys[0].kid.clone();
    // Copies of the JWKS are kept 5 minutes (below half the pre-publish time).
    assert_eq!(reply.max_age.unwrap().seconds, 300);
    assert!(
        !app.data_dir.path().join("jwt-ed25519.pem").exists(),
        "no development key is made"
    );
    let mail = email("ringdev");
    let (_, tokens) = app.signup(&username("ringdev"), &mail).await;
    assert_eq!(kid_of(&tokens.access_token), kid);

    // Sealed in the SQLite file.
    let stored: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT keys FROM signing_key_ring", [], |r| r.get(0))
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let sealed = URL_SAFE_NO_PAD
        .decode(stored[0]["sealed"].as_str().unwrap())
        .unwrap();
    assert!(SigningKey::from_der(&sealed, None).is_err());

    // A restart keeps the key: the token still validates, and it still signs.
    let data = app.stop().await;
    let app = spawn_in(data, &vars).await;
    assert_eq!(published(&app).await, vec![kid.clone()]);
    app.validate(&tokens.access_token).await.unwrap();
    let login = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_eq!(kid_of(&login.access_token), kid);
    app.stop().await;
}
