//! The whole flow on MongoDB, Redis and SMTP: sign-up with the code from the SMTP server, login,
//! rotation and reset; then every Redis key and Mongo document is read back: the keys are laid
//! out as documented, an unverified sign-up is not in MongoDB, and no password, code or token
//! is stored in plain text.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use futures::TryStreamExt;
use tonic::Code;

use crate::env::Backends;
use baatcheet_test_support::mail::parse_mail;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_on_mongo_redis_and_smtp_and_nothing_stored_is_a_secret() {
    let backends = Backends::start(false).await;
    // A grace window longer than the run, so the sealed successor of a rotation is still
    // stored when everything is scanned.
    let app = backends.instance(&[("REFRESH_REUSE_GRACE", "5m")]).await;
    let (mail, name) = (email("prod"), username("prod"));

    // Sign-up: the code arrives through the real SMTP server.
    let registration_id = app
        .register(&name, &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(15))
        .await;
    let message = backends.smtp.messages().pop().unwrap();
    let parsed = parse_mail(&message).unwrap();
    assert!(parsed.html.contains(&code), "HTML part too");
    assert_eq!(
        app.verify(&mail, &registration_id, "000000")
            .await
            .err()
            .map(|s| reason(&s))
            .filter(|_| code != "000000"),
        Some("CODE_INVALID".into())
    );
    let verified = app.verify(&mail, &registration_id, &code).await.unwrap();
    let tokens = verified.tokens.unwrap();
    assert_error(
        app.register(&username("x"), &mail, PASSWORD).await,
        Code::AlreadyExists,
        "EMAIL_TAKEN",
    );
    assert_error(
        app.register(&name.to_uppercase(), &email("x"), PASSWORD)
            .await,
        Code::AlreadyExists,
        "USERNAME_TAKEN",
    );

    let login = app.login(&name, PASSWORD).await.unwrap().tokens.unwrap();
    assert_eq!(app.sessions(&login.access_token).await.unwrap().len(), 2);
    let rotated = app.refresh(&tokens.refresh_token).await.unwrap();
    app.validate(&rotated.access_token).await.unwrap();
    let reset_id = app.request_reset(&mail).await.unwrap();
    let reset_code = backends
        .wait_for_code(&mail, 2, Duration::from_secs(15))
        .await;
    let new_password = "another secret passphrase";
    let done = app
        .reset(&mail, &reset_id, &reset_code, new_password)
        .await
        .unwrap();
    assert_eq!(done.revoked_session_count, 2);
    let after = app
        .login(&mail, new_password)
        .await
        .unwrap()
        .tokens
        .unwrap();
    // A pending registration that is never verified stays out of the user store.
    let pending_mail = email("pending");
    let pending_id = app
        .register(&username("pending"), &pending_mail, "pending user password")
        .await
        .unwrap()
        .registration_id;
    backends
        .wait_for_code(&pending_mail, 1, Duration::from_secs(15))
        .await;
    app.client()
        .logout(pb::LogoutRequest {
            refresh_token: after.refresh_token.clone(),
        })
        .await
        .unwrap();
    // A live session just rotated: its successor is kept (sealed) for the grace window.
    let kept = app
        .login(&mail, new_password)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let kept_rotated = app.refresh(&kept.refresh_token).await.unwrap();
    let user_id = verified.user.unwrap().id;

    // Everything Redis and MongoDB hold, as text.
    let mut stored = String::new();
    let client = redis::Client::open(backends.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    // The layout the store documents: pending requests in one hash per purpose and email,
    // a session as one hash plus its transient successor, the user's index and the owner.
    let hash_fields = |key: String| {
        let mut conn = conn.clone();
        async move {
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            fields
        }
    };
    let pending_fields = hash_fields(format!("register:{{{pending_mail}}}")).await;
    for field in [
        format!("r:{pending_id}"),
        format!("c:{pending_id}"),
        format!("p:{pending_id}"),
    ] {
        assert!(
            pending_fields.contains(&field),
            "{field} in {pending_fields:?}"
        );
    }
    let session_key = format!("user:{{{user_id}}}:session:{}", kept.session_id);
    let session_fields = hash_fields(session_key.clone()).await;
    for field in ["refresh", "previous", "previous_used_at"] {
        assert!(
            session_fields.iter().any(|f| f == field),
            "{field} in {session_fields:?}"
        );
    }
    for key in [
        format!("{session_key}:successor"),
        format!("user:{{{user_id}}}:sessions"),
        format!("session:{{{}}}:user", kept.session_id),
        format!("reset:{{{mail}}}:budget"),
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let value: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "hash" => redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "stream" => redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("unexpected Redis type {other} for {key}"),
        };
        stored.push_str(&format!("{key} => {value:?}\n"));
        stored.push_str(&String::from_utf8_lossy(&flatten(&value)));
    }
    let mongo = mongodb::Client::with_uri_str(&backends.mongo_uri)
        .await
        .unwrap();
    let db = mongo.database(&backends.database);
    let mut documents = 0;
    for collection in db.list_collection_names().await.unwrap() {
        let mut cursor = db
            .collection::<mongodb::bson::Document>(&collection)
            .find(mongodb::bson::doc! {})
            .await
            .unwrap();
        while let Some(doc) = cursor.try_next().await.unwrap() {
            // Users; the security log's entries are read for secrets too, not counted.
            if collection == "users" {
                documents += 1;
            }
            stored.push_str(&format!("{collection}: {doc}\n"));
        }
    }
    assert_eq!(
        documents, 1,
        "one verified user; the pending one is not in MongoDB"
    );
    assert!(
        stored.contains("$argon2id$"),
        "the scan saw the password hash"
    );
    let secret_part = |t: &str| t.split_once('.').unwrap().1.to_owned();
    // A code is six digits: a stored one stands alone, while a timestamp may hold the same
    // digits inside a longer number, which is no leak.
    for (what, code) in [("registration code", &code), ("reset code", &reset_code)] {
        assert!(
            !occurs_alone(&stored, code),
            "the {what} is stored in plain text"
        );
    }
    for (what, secret) in [
        ("password", PASSWORD.to_owned()),
        ("new password", new_password.to_owned()),
        (
            "pending user's password",
            "pending user password".to_owned(),
        ),
        ("refresh token", secret_part(&tokens.refresh_token)),
        ("rotated refresh token", secret_part(&rotated.refresh_token)),
        ("login refresh token", secret_part(&login.refresh_token)),
        ("kept refresh token", secret_part(&kept.refresh_token)),
        (
            "sealed successor refresh token",
            secret_part(&kept_rotated.refresh_token),
        ),
        (
            "successor refresh token",
            kept_rotated.refresh_token.clone(),
        ),
        ("access token", tokens.access_token.clone()),
    ] {
        assert!(
            !stored.contains(&secret),
            "the {what} is stored in plain text"
        );
    }
}

/// Whether `needle` occurs in `hay` with no letter or digit right before or after it.
fn occurs_alone(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Every byte string inside a Redis reply, concatenated.
fn flatten(value: &redis::Value) -> Vec<u8> {
    match value {
        redis::Value::BulkString(b) => b.clone(),
        redis::Value::SimpleString(s) => s.clone().into_bytes(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().flat_map(flatten).collect()
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| [flatten(k), flatten(v)].concat())
            .collect(),
        other => format!("{other:?}").into_bytes(),
    }
}
