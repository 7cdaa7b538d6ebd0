//! The Redis state store: the stores it is run with in the suite (users from in-memory
//! SQLite: the Redis backend has none), and what only a Redis backend needs checked: TTLs on
//! every key, no secret in Redis, an outage and the recovery, TLS, and two instances sharing
//! the mail queue. The suite also runs against a one-node Redis Cluster, where any script or
//! command whose keys span two hash slots fails with CROSSSLOT.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use auth_service::crypto::{
    AccessTokens, CodeHasher, EmailTagger, HashSettings, PasskeySettings, PasswordHasher,
    RelyingParty, Sealer, ServerSecret, SigningKey,
};
use auth_service::domain::{
    AuthMethod, CodeHash, Email, PendingId, RevokeReason, SessionId, SignIn, UserId, now_ms,
};
use auth_service::flows::{
    AuthCore, ClientInfo, LoginPolicy, MfaPolicy, PasskeyPolicy, Policy, PresencePolicy,
    SignInOutcome, registration::RegisterInput,
};
use auth_service::mail::{Outbox, OutgoingMail, Templates};
use auth_service::store::redis::{RedisSettings, RedisStore};
use auth_service::store::{
    CodePolicy, CodePurpose, EXPIRED_SESSION_RECALL_MS, Health, MailQueue, NewSession, NextRefresh,
    PendingCodeStore, PendingPayload, RateLimitStore, RotateOutcome, SessionStore, StoreError,
    Stores, events_after::EventsAfter, sqlite::SqliteStore,
};
use futures::future::join_all;
use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};

use baatcheet_test_support::redis_server::{
    RedisServer, shared_cluster_url, shared_real_cluster_url, shared_url,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Redis for state and SQLite for users, under a fresh key prefix.
pub async fn stores() -> Stores {
    let url = tokio::task::spawn_blocking(shared_url).await.unwrap();
    with_users(Arc::new(open(&url, &prefix()).await))
}

/// The same on a one-node Redis Cluster.
pub async fn cluster_stores() -> Stores {
    let url = tokio::task::spawn_blocking(shared_cluster_url)
        .await
        .unwrap();
    with_users(Arc::new(open(&url, &prefix()).await))
}

/// The same on a Redis Cluster of three masters and three replicas, through the cluster
/// client (slots on different nodes, MOVED and ASK followed).
pub async fn real_cluster_stores() -> Stores {
    let url = tokio::task::spawn_blocking(shared_real_cluster_url)
        .await
        .unwrap();
    with_users(Arc::new(open(&url, &prefix()).await))
}

fn with_users(redis: Arc<RedisStore>) -> Stores {
    let users = Arc::new(
        SqliteStore::open(std::path::Path::new(":memory:"))
            .unwrap()
            .without_user_events(),
    );
    let records = Arc::new(EventsAfter {
        users: users.clone(),
        log: redis.clone(),
    });
    Stores {
        current_user: None,
        users: records.clone(),
        factors: records.clone(),
        security: records.clone(),
        keys: records,
        tickets: redis.clone(),
        pending: redis.clone(),
        sessions: redis.clone(),
        limits: redis.clone(),
        mail: redis.clone(),
        events: redis.clone(),
        presence: redis.clone(),
        health: vec![users, redis],
    }
}

/// A session `id` of `user`, signed in with a password at `now`, for an hour.
fn session(id: &SessionId, user: UserId, now: i64) -> NewSession {
    NewSession {
        id: id.clone(),
        user_id: user,
        refresh_hash: [1; 32],
        expires_at: now + HOUR,
        user_agent: String::new(),
        client_ip: String::new(),
        created_at: now,
        sign_in: SignIn::one(AuthMethod::Password),
    }
}

/// A prefix of its own, so tests sharing one server never see each other's keys.
fn prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

async fn open(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(
        url,
        RedisSettings {
            key_prefix: prefix.to_owned(),
            ..RedisSettings::default()
        },
    )
    .await
    .expect("the Redis store connects")
}

async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under `prefix`.
async fn keys_under(conn: &mut MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Everything a key holds (members, fields and values), as raw bytes.
async fn contents(conn: &mut MultiplexedConnection, key: &str) -> Vec<Vec<u8>> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    if kind == "stream" {
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .unwrap();
        return entries.into_iter().flat_map(|(_, fields)| fields).collect();
    }
    let read = match kind.as_str() {
        "string" => redis::cmd("GET").arg(key).clone(),
        "hash" => redis::cmd("HGETALL").arg(key).clone(),
        "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).clone(),
        "set" => redis::cmd("SMEMBERS").arg(key).clone(),
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
        other => panic!("unexpected type {other} of {key}"),
    };
    if kind == "string" {
        vec![read.query_async(conn).await.unwrap()]
    } else {
        read.query_async(conn).await.unwrap()
    }
}

async fn expire_time(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The plaintext secrets a full run handled: none of them may reach Redis.
struct Secrets {
    email: String,
    codes: Vec<String>,
    refresh_tokens: Vec<String>,
    live_refresh_token: String,
    password: String,
}

/// Registers, verifies, refreshes, logs in (and fails once), logs out, asks for a reset and
/// leaves a dead letter: the real flows over the Redis store, so every key family exists.
async fn full_run(stores: &Stores) -> Secrets {
    let secret = ServerSecret::new(ServerSecret::generate()).unwrap();
    let sealer = Arc::new(Sealer::for_mail(&secret));
    let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap(), None).unwrap();
    let core = AuthCore {
        stores: stores.clone(),
        hasher: PasswordHasher::new(&HashSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            concurrency: 2,
            queue: 8,
            max_wait: std::time::Duration::from_secs(10),
        })
        .unwrap(),
        tokens: AccessTokens::new(key, "test".into(), "test".into(), 5 * MIN),
        codes: CodeHasher::new(&secret),
        refresh_sealer: Sealer::for_refresh_tokens(&secret),
        totp_sealer: Sealer::for_totp(&secret),
        passkeys: RelyingParty::new(
            &PasskeySettings::new("localhost", &["http://localhost:8080"]).unwrap(),
            "Test",
        )
        .unwrap(),
        email_tags: EmailTagger::new(&secret),
        outbox: Outbox::new(stores.mail.clone(), sealer.clone()),
        templates: Templates {
            app_name: "Test".into(),
        },
        policy: Policy {
            code: CodePolicy {
                ttl_ms: 5 * MIN,
                cooldown_ms: 0,
                max_attempts: 5,
                max_sends_per_day: 10,
                max_guesses_per_day: 20,
                pending_ttl_ms: HOUR,
            },
            code_requests_per_ip_per_hour: 100,
            code_guesses_per_ip_per_hour: 100,
            signup_enumeration_safe: false,
            refresh_ttl_ms: 30 * DAY,
            session_max_lifetime_ms: 30 * 24 * HOUR,
            refresh_grace_ms: 10_000,
            max_sessions_per_user: 50,
            username_change_cooldown_ms: DAY,
            presence: PresencePolicy {
                ttl_ms: 90_000,
                write_interval_ms: 60_000,
            },
            mfa: MfaPolicy {
                challenge_ttl_ms: 5 * MIN,
                max_guesses_per_challenge: 5,
                max_guesses_per_day: 20,
            },
            password: auth_service::domain::PasswordRules { min_score: 3 },
            passkeys: PasskeyPolicy {
                max_per_user: 10,
                logins_per_ip_per_hour: 300,
            },
            login: LoginPolicy {
                max_attempts: 5,
                window_ms: 15 * MIN,
                max_failures_per_ip: 100,
                slowdown_after: 20,
                slowdown_max: Duration::from_secs(5),
            },
        },
    };
    let name = format!("redis{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let email = format!("{name}@example.com");
    let password = "correct horse battery staple".to_owned();
    let client = ClientInfo {
        ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: "redis-conformance".into(),
    };
    let delivery = core
        .register(
            RegisterInput {
                username: &name,
                email: &email,
                password: &password,
                bio: "",
                avatar_url: "",
            },
            &client,
        )
        .await
        .unwrap();
    let registration_code = next_code(stores, &sealer).await;
    let signed = core
        .verify_registration(&email, &registration_code, delivery.id.as_str(), &client)
        .await
        .unwrap();
    let refreshed = core
        .refresh_session(&signed.tokens.refresh_token)
        .await
        .unwrap();
    let SignInOutcome::SignedIn(second) = core.login(&name, &password, &client).await.unwrap()
    else {
        panic!("no second factor yet: signed in")
    };
    assert!(
        core.login(&name, "not the password", &client)
            .await
            .is_err()
    );
    core.logout(&second.tokens.refresh_token, None)
        .await
        .unwrap();
    core.request_password_reset(&email, &client).await.unwrap();
    let reset_code = next_code(stores, &sealer).await;
    let doomed = stores
        .mail
        .enqueue(&sealer.seal(b"{}"), now_ms())
        .await
        .unwrap();
    stores
        .mail
        .dead_letter(&doomed, "relay said no", now_ms())
        .await
        .unwrap();
    Secrets {
        email,
        codes: vec![registration_code, reset_code],
        refresh_tokens: vec![
            signed.tokens.refresh_token,
            refreshed.refresh_token.clone(),
            second.tokens.refresh_token,
        ],
        live_refresh_token: refreshed.refresh_token,
        password,
    }
}

/// Takes the next queued mail, reads the 6-digit code out of it and completes it.
async fn next_code(stores: &Stores, sealer: &Sealer) -> String {
    let mail = stores
        .mail
        .claim_due(now_ms(), MIN)
        .await
        .unwrap()
        .expect("a mail with a code");
    let plain = sealer.open(&mail.sealed).unwrap();
    let mail_body: OutgoingMail = serde_json::from_slice(&plain).unwrap();
    stores.mail.complete(&mail.id).await.unwrap();
    // The code is the line that is exactly six digits (the greeting may hold digits too).
    mail_body
        .text
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .expect("a 6-digit code in the mail")
        .to_owned()
}

/// Whether `needle` occurs in `hay` with no letter or digit right before or after it.
fn occurs_alone(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && (i == 0 || !hay[i - 1].is_ascii_alphanumeric())
            && hay
                .get(i + needle.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_has_a_ttl_except_the_mail_queue() {
    let (url, prefix) = (
        tokio::task::spawn_blocking(shared_url).await.unwrap(),
        prefix(),
    );
    let stores = with_users(Arc::new(open(&url, &prefix).await));
    let secrets = full_run(&stores).await;
    let mut conn = raw(&url).await;
    let keys = keys_under(&mut conn, &prefix).await;
    let mail = format!("{prefix}{{mail}}:");
    // The event log keeps its positions while idle; its length cap and the periodic trim
    // bound it (conformance: the_event_log_wakes_readers_and_reports_what_it_dropped).
    let log = [
        format!("{prefix}{{events}}:log"),
        format!("{prefix}{{events}}:floor"),
    ];
    for key in &keys {
        if log.contains(key) {
            continue;
        }
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if key.starts_with(&mail) {
            assert_eq!(ttl, -1, "the mail queue is durable: {key}");
        } else {
            assert!(ttl > 0, "{key} has no TTL ({ttl})");
            // 30 days of sessions, and the day a timed-out one is remembered.
            assert!(ttl <= 31 * DAY + MIN, "{key} lives too long ({ttl} ms)");
        }
    }
    // Every family was there to be checked.
    let short: Vec<&str> = keys.iter().map(|k| &k[prefix.len()..]).collect();
    let has = |pattern: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            short.iter().any(|k| pattern(k)),
            "no {what} key in {short:?}"
        );
    };
    has(&|k| k == format!("reset:{{{}}}", secrets.email), "reset");
    has(&|k| k.starts_with("ratelimit:{login:"), "rate limit");
    has(
        &|k| k.starts_with("session:{") && k.ends_with("}:user"),
        "session owner",
    );
    has(
        &|k| k.starts_with("user:{") && k.ends_with("}:sessions"),
        "session index",
    );
    has(
        &|k| k.contains(":session:") && !k.ends_with(":successor"),
        "session",
    );
    has(&|k| k.ends_with(":successor"), "sealed successor");
    has(&|k| k == "{mail}:dead_at", "dead letter");
    assert!(
        !short.iter().any(|k| k.contains(":refresh")),
        "no per-token keys: {short:?}"
    );
    // A verified registration leaves only the email's daily budgets behind.
    let register = format!("{prefix}register:{{{}}}", secrets.email);
    assert!(
        !short.contains(&&register[prefix.len()..]),
        "the finished sign-up's requests are gone: {short:?}"
    );
    let budget: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{register}:budget"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(budget.contains(&"sends".to_owned()), "{budget:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_code_password_or_refresh_secret_reaches_redis() {
    let (url, prefix) = (
        tokio::task::spawn_blocking(shared_url).await.unwrap(),
        prefix(),
    );
    let stores = with_users(Arc::new(open(&url, &prefix).await));
    let secrets = full_run(&stores).await;
    let mut conn = raw(&url).await;
    let mut everything = Vec::new();
    for key in keys_under(&mut conn, &prefix).await {
        everything.push(key.clone().into_bytes());
        everything.extend(contents(&mut conn, &key).await);
    }
    // The dump is the real data: the live token's hash is in it.
    let live_hash = hex(&Sha256::digest(secrets.live_refresh_token.as_bytes()));
    assert!(
        everything.iter().any(|v| contains(v, live_hash.as_bytes())),
        "the live refresh token's hash is stored"
    );
    for value in &everything {
        for token in &secrets.refresh_tokens {
            let (_, secret) = token.split_once('.').unwrap();
            assert!(
                !contains(value, token.as_bytes()),
                "a refresh token is stored"
            );
            assert!(
                !contains(value, secret.as_bytes()),
                "a refresh secret is stored"
            );
        }
        for code in &secrets.codes {
            assert!(!occurs_alone(value, code.as_bytes()), "a code is stored");
        }
        assert!(
            !contains(value, secrets.password.as_bytes()),
            "the password is stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttls_follow_the_times_the_caller_passes() {
    let (url, prefix) = (
        tokio::task::spawn_blocking(shared_url).await.unwrap(),
        prefix(),
    );
    let store = open(&url, &prefix).await;
    let mut conn = raw(&url).await;
    let now = now_ms();
    let policy = CodePolicy {
        ttl_ms: 2 * DAY,
        cooldown_ms: MIN,
        max_attempts: 2,
        max_sends_per_day: 10,
        max_guesses_per_day: 20,
        pending_ttl_ms: 2 * DAY,
    };
    let email = Email::parse("ttl@example.com").unwrap();
    let id = PendingId::generate();
    store
        .issue_code(
            CodePurpose::PasswordReset,
            &email,
            &id,
            Some(&PendingPayload::Decoy),
            &CodeHash([1; 32]),
            now,
            &policy,
        )
        .await
        .unwrap();
    let pending = format!("{prefix}reset:{{ttl@example.com}}");
    assert_eq!(
        expire_time(&mut conn, &pending).await,
        now + 2 * DAY,
        "the request's keep time (longer than the day of the budgets)"
    );
    let _ = store
        .verify_code(
            CodePurpose::PasswordReset,
            &email,
            &id,
            &CodeHash([9; 32]),
            now + 3 * DAY / 2,
            &policy,
        )
        .await;
    assert_eq!(
        expire_time(&mut conn, &format!("{pending}:budget")).await,
        now + 3 * DAY / 2 + DAY,
        "a guess window that starts later keeps the budget until it ends"
    );
    assert_eq!(
        expire_time(&mut conn, &pending).await,
        now + 2 * DAY,
        "a guess does not move the request's keep time"
    );

    store.hit("ttl", 5, MIN, now).await.unwrap().unwrap();
    assert_eq!(
        expire_time(&mut conn, &format!("{prefix}ratelimit:{{ttl}}")).await,
        now + MIN
    );

    let (user, id) = (UserId("ttl-user".into()), SessionId::generate());
    store
        .create_session(&session(&id, user.clone(), now), 50)
        .await
        .unwrap();
    // The record and its owner pointer outlive the session by the day a timed-out session is
    // remembered (to answer SESSION_EXPIRED); the index lists live sessions only.
    let recall = EXPIRED_SESSION_RECALL_MS;
    let session_keys = [
        (format!("{prefix}session:{{{}}}:user", id.0), recall),
        (
            format!("{prefix}user:{{ttl-user}}:session:{}", id.0),
            recall,
        ),
        (format!("{prefix}user:{{ttl-user}}:sessions"), 0),
    ];
    for (key, extra) in &session_keys {
        assert_eq!(
            expire_time(&mut conn, key).await,
            now + HOUR + extra,
            "{key}"
        );
    }
    let next = NextRefresh {
        hash: [2; 32],
        sealed: b"sealed".to_vec(),
        expires_at: now + 2 * HOUR,
        max_lifetime_ms: 30 * 24 * 60 * 60_000,
    };
    store
        .rotate_refresh(&id, &[1; 32], &next, now + 1, 5_000)
        .await
        .unwrap();
    for (key, extra) in &session_keys {
        assert_eq!(
            expire_time(&mut conn, key).await,
            now + 2 * HOUR + extra,
            "rotation moves {key}"
        );
    }
    let successor = format!("{prefix}user:{{ttl-user}}:session:{}:successor", id.0);
    let left: i64 = redis::cmd("PTTL")
        .arg(&successor)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        left > 0 && left <= 5_000,
        "the sealed successor is kept for the grace window only: {left} ms left"
    );
    assert!(
        store
            .revoke_session(&id, &user, RevokeReason::Revoked, 0)
            .await
            .unwrap()
    );
    for key in session_keys.iter().map(|(key, _)| key).chain([&successor]) {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!exists, "revoking removes {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_fails_fast_and_the_store_recovers_by_itself() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let store = open(&server.url(), &prefix()).await;
    let now = now_ms();
    assert_eq!(store.hit("outage", 100, MIN, now).await.unwrap(), Ok(1));

    tokio::task::block_in_place(|| server.stop());
    let email = Email::parse("outage@example.com").unwrap();
    let reset = PendingPayload::Decoy;
    for call in ["ping", "hit", "get_session", "issue_code", "claim_due"] {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            match call {
                "ping" => store.ping().await,
                "hit" => store.hit("outage", 100, MIN, now).await.map(|_| ()),
                "get_session" => store
                    .get_session(&SessionId::generate(), now)
                    .await
                    .map(|_| ()),
                "issue_code" => store
                    .issue_code(
                        CodePurpose::PasswordReset,
                        &email,
                        &PendingId::generate(),
                        Some(&reset),
                        &CodeHash([3; 32]),
                        now,
                        &CodePolicy {
                            ttl_ms: MIN,
                            cooldown_ms: 0,
                            max_attempts: 5,
                            max_sends_per_day: 10,
                            max_guesses_per_day: 20,
                            pending_ttl_ms: HOUR,
                        },
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        auth_service::store::IssueError::Store(e) => e,
                        other => StoreError::Internal(other.to_string()),
                    }),
                _ => store.claim_due(now, MIN).await.map(|_| ()),
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{call} hangs while Redis is down"));
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{call}: {result:?}"
        );
        assert!(took < Duration::from_secs(3), "{call} took {took:?}");
    }

    tokio::task::block_in_place(|| server.restart());
    // The same store: the pool drops the dead connections and scripts are loaded again.
    store.ping().await.unwrap();
    assert_eq!(
        store.hit("outage", 100, MIN, now).await.unwrap(),
        Ok(1),
        "the restarted Redis has no data, and the script runs"
    );
    let id = store.enqueue(b"sealed", now).await.unwrap();
    assert_eq!(store.claim_due(now, MIN).await.unwrap().unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rediss_works_with_a_private_ca_and_refuses_an_unknown_one() {
    let server = tokio::task::block_in_place(RedisServer::start_tls);
    let (url, tls) = server.tls().unwrap();
    let store = RedisStore::connect(
        &url,
        RedisSettings {
            key_prefix: prefix(),
            tls_root_ca_pem: Some(tls.ca_pem.clone()),
            ..RedisSettings::default()
        },
    )
    .await
    .expect("rediss:// with the private CA connects");
    let now = now_ms();
    assert_eq!(store.hit("tls", 5, MIN, now).await.unwrap(), Ok(1));
    let id = store.enqueue(b"sealed over TLS", now).await.unwrap();
    let claimed = store.claim_due(now, MIN).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.sealed),
        (id, b"sealed over TLS".to_vec())
    );

    // With only the public roots the test CA is unknown: no connection, and it says why.
    let untrusted = RedisStore::connect(&url, RedisSettings::default()).await;
    let Err(StoreError::Unavailable(why)) = untrusted else {
        panic!("an untrusted server certificate must not be accepted")
    };
    assert!(why.to_lowercase().contains("certificate"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_claim_one_message_twice_while_leased() {
    let url = tokio::task::spawn_blocking(shared_url).await.unwrap();
    let prefix = prefix();
    let instances = [
        Arc::new(open(&url, &prefix).await),
        Arc::new(open(&url, &prefix).await),
    ];
    let now = now_ms();
    let mut queued = HashSet::new();
    for i in 0..40 {
        let id = instances[i % 2]
            .enqueue(format!("mail {i}").as_bytes(), now)
            .await
            .unwrap();
        queued.insert(id);
    }
    let workers = (0..8).map(|w| {
        let store = instances[w % 2].clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = store.claim_due(now, MIN).await.unwrap() {
                assert_eq!(m.attempts, 1);
                got.push(m.id);
            }
            got
        })
    });
    let claimed: Vec<String> = join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 40, "each message claimed once");
    assert_eq!(unique, queued);
    // When the lease runs out without a completion, the message is due again.
    let again = instances[1]
        .claim_due(now + MIN, MIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(instances[0].next_due().await.unwrap(), Some(now + MIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_another_users_session_id_leaves_it_working() {
    let url = tokio::task::spawn_blocking(shared_url).await.unwrap();
    let store = open(&url, &prefix()).await;
    let now = now_ms();
    let (alice, bob, id) = (
        UserId("alice".into()),
        UserId("bob".into()),
        SessionId::generate(),
    );
    store
        .create_session(&session(&id, alice, now), 50)
        .await
        .unwrap();
    assert!(
        !store
            .revoke_session(&id, &bob, RevokeReason::Revoked, 0)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .revoke_all(&bob, None, RevokeReason::LogoutAll, 0)
            .await
            .unwrap(),
        0
    );
    let next = NextRefresh {
        hash: [2; 32],
        sealed: vec![2],
        expires_at: now + HOUR,
        max_lifetime_ms: 30 * 24 * 60 * 60_000,
    };
    let rotated = store
        .rotate_refresh(&id, &[1; 32], &next, now + 1, 0)
        .await
        .unwrap();
    assert!(matches!(rotated, RotateOutcome::Rotated(_)), "{rotated:?}");
    assert!(store.get_session(&id, now + 2).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_left_in_an_outbox_by_a_dead_process_are_relayed_once() {
    let url = tokio::task::spawn_blocking(shared_url).await.unwrap();
    outboxes_left_behind_are_relayed_once(&url).await;
}

/// The same on a Redis Cluster, where the outboxes are on different masters: each master is
/// scanned, not only the node a plain SCAN would reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_left_in_outboxes_across_a_cluster_are_relayed_once() {
    let url = tokio::task::spawn_blocking(shared_real_cluster_url)
        .await
        .unwrap();
    outboxes_left_behind_are_relayed_once(&url).await;
}

async fn outboxes_left_behind_are_relayed_once(url: &str) {
    use auth_service::domain::EventKind;
    use auth_service::store::EventLog;
    let prefix = prefix();
    let store = open(url, &prefix).await;
    let start = store.latest_id().await.unwrap();
    // Processes wrote revocations to users' outboxes in their scripts and died before the
    // relay; one died after logging its entry, before taking it off: that entry is there
    // twice. Six users, so that a cluster holds their outboxes on different masters.
    let mut conn = raw_any(url).await;
    let mut left = Vec::new();
    for n in 0..6 {
        let (user, sid) = (format!("left{n}"), SessionId::generate());
        let entry = format!(
            "r:{0}\u{1f}{1}\u{1f}session.revoked\u{1f}{0}\u{1f}logout",
            sid.0,
            now_ms()
        );
        let outbox = format!("{prefix}user:{{{user}}}:outbox");
        let copies = if n == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let _: i64 = conn.run(redis::cmd("RPUSH").arg(&outbox).arg(&entry)).await;
        }
        left.push((user, sid, outbox));
    }
    // The periodic maintenance finds them in one round, on a connection that has not yet
    // sent anything to most masters; a second round relays nothing again.
    store.trim(0, 1_000_000).await.unwrap();
    let events = store.read_after(&start, 100, Duration::ZERO).await.unwrap();
    store.trim(0, 1_000_000).await.unwrap();
    let again = store.read_after(&start, 100, Duration::ZERO).await.unwrap();
    assert_eq!(
        again.len(),
        events.len(),
        "a later round relays nothing again"
    );
    assert_eq!(events.len(), left.len(), "one event per entry: {events:?}");
    for (user, sid, outbox) in left {
        let event = events
            .iter()
            .find(|e| e.user_id == UserId(user.clone()))
            .unwrap_or_else(|| panic!("{user}'s outbox was not relayed: {events:?}"));
        assert_eq!(
            event.kind,
            EventKind::SessionRevoked {
                session_id: sid,
                reason: RevokeReason::Logout
            }
        );
        let remaining: i64 = conn.run(redis::cmd("LLEN").arg(&outbox)).await;
        assert_eq!(remaining, 0, "the outbox is emptied");
    }
}

/// A connection to a server or, for a `redis+cluster://` URL, to a cluster.
enum Raw {
    One(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::One(c) => cmd.query_async(c).await.unwrap(),
            Raw::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}

async fn raw_any(url: &str) -> Raw {
    match url.strip_prefix("redis+cluster://") {
        Some(hosts) => {
            let seeds: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .map(|h| format!("redis://{h}/"))
                .collect();
            Raw::Cluster(
                redis::cluster::ClusterClient::new(seeds)
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
            )
        }
        None => Raw::One(raw(url).await),
    }
}

/// On a cluster, the presence of many users (keys on every master) goes as one pipeline per
/// master, and answers what each user's own read answers, in the order asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_presence_of_many_users_across_a_cluster_is_read_in_order() {
    use auth_service::domain::UserStatus;
    use auth_service::store::PresenceStore;
    let url = tokio::task::spawn_blocking(shared_real_cluster_url)
        .await
        .unwrap();
    let store = open(&url, &prefix()).await;
    let now = now_ms();
    let users: Vec<UserId> = (0..40).map(|n| UserId(format!("many{n}"))).collect();
    // Every third user online, every third away, the rest never seen.
    for (n, user) in users.iter().enumerate().filter(|(n, _)| n % 3 != 2) {
        let id = SessionId::generate();
        store
            .create_session(&session(&id, user.clone(), now), 50)
            .await
            .unwrap();
        let status = if n % 3 == 0 {
            UserStatus::Online
        } else {
            UserStatus::Away
        };
        store
            .heartbeat(user, &id, status, now, 90_000)
            .await
            .unwrap();
    }
    let mut asked = users.clone();
    asked.insert(5, UserId("nobody".into()));
    asked.reverse();
    let together = store.get_presence(&asked, now + 1).await.unwrap();
    assert_eq!(together.len(), asked.len());
    for (id, view) in asked.iter().zip(&together) {
        assert_eq!(&view.user_id, id);
        let alone = store
            .get_presence(std::slice::from_ref(id), now + 1)
            .await
            .unwrap();
        assert_eq!(view, &alone[0]);
    }
    let status = |n: usize| {
        together
            .iter()
            .find(|v| v.user_id == users[n])
            .unwrap()
            .status
    };
    assert_eq!(
        [0, 1, 2, 39].map(status),
        [
            UserStatus::Online,
            UserStatus::Away,
            UserStatus::Offline,
            UserStatus::Online
        ]
    );
}
