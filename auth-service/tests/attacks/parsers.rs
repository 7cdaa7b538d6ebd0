//! Property tests of every parser that takes outside input: the domain types a request becomes
//! (Email, Username, Password, Code, PendingId, SessionId, profile fields), refresh tokens, the
//! configuration, and the bearer metadata of the gRPC layer (private, so tested through a
//! running service). None may panic on anything; each accepts exactly what it documents, and
//! what it accepts parses again to the same value.
//!
//! The seed is fixed so CI runs reproduce; PROPTEST_RNG_SEED picks another, PROPTEST_CASES
//! scales the cases of the pure parsers.

use std::collections::{HashMap, HashSet};

use auth_service::config::Config;
use auth_service::crypto::RefreshToken;
use auth_service::domain::{
    Code as OneTimeCode, Email, Password, PendingId, Profile, SessionId, Username,
};
use baatcheet_auth_api::v1 as pb;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use proptest::{
    prelude::*,
    sample::select,
    test_runner::{Config as ProptestConfig, RngSeed, TestCaseError, TestRunner},
};
use tonic::{Code, metadata::AsciiMetadataValue};

use crate::attacks::arena::{Arena, Backend};
use crate::helpers::*;

const SEED: u64 = 0x7061_7273_6572_7321;

fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    // PROPTEST_CASES, when set, wins over the default count below.
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config
}

/// Any text, printable ASCII, and text near the shapes the parsers look for.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        "\\PC{0,40}",
        "[ \t\n]{0,2}[A-Za-z0-9@._+%-]{0,40}[ \t\n]{0,2}",
    ]
}

// --- domain types ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn an_accepted_email_is_the_trimmed_lowercase_input_and_parses_to_itself(raw in text()) {
        if let Ok(email) = Email::parse(&raw) {
            let text = email.as_str();
            prop_assert_eq!(text, raw.trim().to_lowercase());
            prop_assert!(text.len() <= 254);
            let (local, domain) = text.rsplit_once('@').expect("an @");
            prop_assert!(!local.is_empty() && domain.contains('.') && !domain.ends_with('.'));
            prop_assert_eq!(Email::parse(text), Ok(email.clone()));
        }
    }

    #[test]
    fn ordinary_addresses_are_accepted_in_any_case_and_padding(
        local in "[A-Za-z0-9_%+-]{1,30}",
        labels in prop::collection::vec("[A-Za-z0-9]{1,12}", 1..3),
        tld in "[A-Za-z]{2,8}",
        (left, right) in ("[ \t\n]{0,2}", "[ \t\n]{0,2}"),
    ) {
        let address = format!("{local}@{}.{tld}", labels.join("."));
        let parsed = Email::parse(&format!("{left}{address}{right}"));
        prop_assert_eq!(parsed.map(|e| e.as_str().to_owned()), Ok(address.to_lowercase()));
    }

    #[test]
    fn an_address_with_a_stray_separator_is_refused(
        local in "[a-z0-9]{2,20}",
        at in 0usize..20,
        stray in select(vec![' ', '@', ',', ';', '<', '>', '\\', '\t']),
    ) {
        let cut = at.min(local.len() - 1).max(1);
        let address = format!("{}{stray}{}@example.com", &local[..cut], &local[cut..]);
        prop_assert!(Email::parse(&address).is_err(), "{:?} was accepted", address);
    }

    #[test]
    fn an_email_longer_than_254_bytes_is_refused(extra in 0usize..40) {
        // 64-byte local part, 63-byte labels: valid in every part, only the total grows.
        let domain = format!("{}.{}.{}.com", "b".repeat(63), "c".repeat(63), "d".repeat(extra + 20));
        let address = format!("{}@{domain}", "a".repeat(64));
        prop_assert_eq!(Email::parse(&address).is_ok(), address.len() <= 254, "{} bytes", address.len());
    }

    #[test]
    fn usernames_are_exactly_3_to_30_name_characters(raw in prop_oneof![
        "[A-Za-z0-9_.-]{0,34}",
        "[ \t]{0,2}[A-Za-z0-9_.@ é!-]{1,32}[ \t]{0,2}",
        text(),
    ]) {
        let trimmed = raw.trim();
        let valid = (3..=30).contains(&trimmed.chars().count())
            && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        match Username::parse(&raw) {
            Ok(name) => {
                prop_assert!(valid, "{:?} was accepted", raw);
                prop_assert_eq!(name.as_str(), trimmed);
                prop_assert!(!name.as_str().contains('@'));
                prop_assert_eq!(name.key(), name.as_str().to_lowercase());
                let upper = Username::parse(&name.as_str().to_uppercase()).expect("same shape");
                prop_assert_eq!(upper.key(), name.key());
                prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
            }
            Err(_) => prop_assert!(!valid, "{:?} was refused", raw),
        }
    }

    #[test]
    fn passwords_are_bounded_in_characters_and_kept_verbatim(raw in prop_oneof![
        any::<String>(),
        "\\PC{6,10}",
        "\\PC{126,130}",
        "[ ]{0,10}[a-z]{0,5}[ ]{0,10}",
    ]) {
        let n = raw.chars().count();
        match Password::parse(&raw) {
            Ok(password) => {
                prop_assert!((8..=128).contains(&n), "{} characters accepted", n);
                prop_assert_eq!(password.expose(), raw.as_str());
                prop_assert_eq!(format!("{password:?}"), "Password(<redacted>)");
            }
            Err(_) => prop_assert!(!(8..=128).contains(&n), "{} characters refused", n),
        }
        match Password::parse_existing(&raw) {
            Ok(password) => {
                prop_assert!((1..=128).contains(&n), "{} characters accepted", n);
                prop_assert_eq!(password.expose(), raw.as_str());
            }
            Err(_) => prop_assert!(!(1..=128).contains(&n), "{} characters refused", n),
        }
    }

    #[test]
    fn codes_are_exactly_six_ascii_digits_after_trimming(raw in prop_oneof![
        "[ \t\n\u{3000}]{0,2}[0-9]{4,8}[ \t\n\u{3000}]{0,2}",
        "[0-9\u{660}-\u{669}\u{ff10}-\u{ff19}a ]{5,7}",
        "[0-9]{3} [0-9]{3}",
        text(),
    ]) {
        let trimmed = raw.trim();
        let valid = trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit());
        match OneTimeCode::parse(&raw) {
            Ok(code) => {
                prop_assert!(valid, "{:?} was accepted", raw);
                prop_assert_eq!(code.expose(), trimmed);
                prop_assert_eq!(format!("{code:?}"), "Code(<redacted>)");
            }
            Err(_) => prop_assert!(!valid, "{:?} was refused", raw),
        }
    }

    #[test]
    fn every_encoding_of_16_bytes_is_a_pending_id(bytes in any::<[u8; 16]>(), pad in "[ \t]{0,2}") {
        let text = B64URL.encode(bytes);
        let id = PendingId::parse(&format!("{pad}{text}{pad}")).expect("an id we could have made");
        prop_assert_eq!(id.as_str(), text.as_str());
        let shown = format!("{:?}", id);
        prop_assert!(!shown.contains(&text));
    }

    #[test]
    fn a_pending_id_is_accepted_only_as_the_canonical_encoding_of_16_bytes(raw in prop_oneof![
        "[A-Za-z0-9_-]{20,24}",
        "[A-Za-z0-9+/=_-]{22}",
        "[A-Za-z0-9_-]{21}[A-Za-z0-9_-]",
        "[A-Za-z0-9_-]{22}==",
        text(),
    ]) {
        let trimmed = raw.trim();
        let canonical = B64URL
            .decode(trimmed)
            .ok()
            .filter(|b| b.len() == 16)
            .is_some_and(|b| B64URL.encode(b) == trimmed);
        match PendingId::parse(&raw) {
            Ok(id) => {
                prop_assert!(canonical, "{:?} was accepted", raw);
                prop_assert_eq!(id.as_str(), trimmed);
            }
            Err(_) => prop_assert!(!canonical, "{:?} was refused", raw),
        }
    }

    #[test]
    fn every_spelling_of_a_uuid_names_one_session(bytes in any::<[u8; 16]>(), form in 0usize..5) {
        let uuid = uuid::Uuid::from_bytes(bytes);
        let spelled = match form {
            0 => uuid.hyphenated().to_string(),
            1 => uuid.hyphenated().to_string().to_uppercase(),
            2 => uuid.simple().to_string(),
            3 => uuid.braced().to_string(),
            _ => uuid.urn().to_string(),
        };
        let id = SessionId::parse(&format!(" {spelled}\t")).expect("a uuid");
        prop_assert_eq!(&id.0, &uuid.hyphenated().to_string());
    }

    #[test]
    fn an_accepted_session_id_is_canonical(raw in prop_oneof!["[0-9a-fA-F-]{30,40}", text()]) {
        if let Ok(id) = SessionId::parse(&raw) {
            prop_assert_eq!(id.0.len(), 36);
            prop_assert!(id.0.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-')));
            prop_assert_eq!(SessionId::parse(&id.0), Ok(id.clone()));
        }
    }

    #[test]
    fn a_generated_refresh_token_parses_back_to_itself(bytes in any::<[u8; 16]>()) {
        let session = SessionId(uuid::Uuid::from_bytes(bytes).hyphenated().to_string());
        let token = RefreshToken::generate(&session);
        let parsed = RefreshToken::parse(&format!(" {} ", token.expose())).expect("our own token");
        prop_assert_eq!(&parsed.session_id, &session);
        prop_assert_eq!(parsed.expose(), token.expose());
        prop_assert_eq!(parsed.hash(), token.hash());
        let secret = token.expose().rsplit_once('.').expect("a dot").1;
        let shown = format!("{:?}", parsed);
        prop_assert!(!shown.contains(secret));
    }

    #[test]
    fn a_refresh_token_is_a_canonical_session_id_and_32_secret_bytes(
        bytes in any::<[u8; 16]>(),
        form in 0usize..4,
        secret in prop::collection::vec(any::<u8>(), 28..36),
        separator in select(vec![".", ":", ".."]),
    ) {
        let uuid = uuid::Uuid::from_bytes(bytes);
        let canonical = uuid.hyphenated().to_string();
        let sid = match form {
            0 => canonical.clone(),
            1 => canonical.to_uppercase(),
            2 => uuid.simple().to_string(),
            _ => uuid.braced().to_string(),
        };
        let raw = format!("{sid}{separator}{}", B64URL.encode(&secret));
        let valid = sid == canonical && secret.len() == 32 && separator == ".";
        let parsed = RefreshToken::parse(&raw);
        prop_assert_eq!(parsed.is_some(), valid, "{:?}", raw);
    }

    #[test]
    fn refresh_token_parse_accepts_only_its_own_shape(raw in prop_oneof!["[0-9a-f-]{36}\\.[A-Za-z0-9_-]{40,46}", text()]) {
        if let Some(token) = RefreshToken::parse(&raw) {
            prop_assert_eq!(token.expose(), raw.trim());
            let (sid, secret) = raw.trim().split_once('.').expect("a dot");
            prop_assert_eq!(sid, token.session_id.0.as_str());
            prop_assert_eq!(B64URL.decode(secret).map(|s| s.len()), Ok(32));
        }
    }

    #[test]
    fn a_bio_is_trimmed_and_at_most_150_characters(raw in prop_oneof![
        any::<String>(),
        "\\PC{140,160}",
        "[ ]{0,3}[a-z ]{145,155}[ ]{0,3}",
    ]) {
        let trimmed = raw.trim();
        match Profile::parse_bio(&raw) {
            Ok(bio) => {
                prop_assert!(trimmed.chars().count() <= 150);
                prop_assert_eq!(bio.as_str(), trimmed);
                prop_assert_eq!(Profile::parse_bio(&bio), Ok(bio.clone()));
            }
            Err(_) => prop_assert!(trimmed.chars().count() > 150),
        }
    }

    #[test]
    fn an_avatar_url_is_empty_or_http_with_a_host(raw in prop_oneof![
        text(),
        "[ ]?(https?|HTTP|javascript|data|ftp|file|mailto):(//)?[a-zA-Z0-9.@:%é-]{0,30}(/[ -~é]{0,30})?(\\?[ -~]{0,20})?(#[ -~]{0,10})?",
        "https://[a-z]{1,10}\\.example/[a-zé%]{0,10}",
    ]) {
        match Profile::parse_avatar_url(&raw) {
            Ok(url) if url.is_empty() => prop_assert!(raw.trim().is_empty()),
            Ok(url) => {
                prop_assert!(url.starts_with("http://") || url.starts_with("https://"), "{:?}", url);
                let parsed = url::Url::parse(&url).expect("what it returns is a URL");
                prop_assert!(parsed.has_host());
                prop_assert!(raw.trim().len() <= 2048);
                // Normalising (percent-encoding) may lengthen it, so only what still fits the
                // bound can come back as input.
                if url.len() <= 2048 {
                    prop_assert_eq!(Profile::parse_avatar_url(&url), Ok(url.clone()));
                }
            }
            Err(_) => {}
        }
    }
}

#[test]
fn generated_codes_and_ids_parse_to_themselves_and_do_not_repeat() {
    let mut ids = HashSet::new();
    for _ in 0..2000 {
        let code = OneTimeCode::generate();
        assert_eq!(
            OneTimeCode::parse(code.expose()).unwrap().expose(),
            code.expose()
        );
        let id = PendingId::generate();
        assert_eq!(id.as_str().len(), 22);
        assert_eq!(B64URL.decode(id.as_str()).unwrap().len(), 16);
        assert_eq!(PendingId::parse(id.as_str()).unwrap(), id);
        let session = SessionId::generate();
        assert_eq!(SessionId::parse(&session.0).unwrap(), session);
        assert!(ids.insert(id.as_str().to_owned()), "a pending id repeated");
    }
}

// --- configuration --------------------------------------------------------------------------

/// Every variable Config reads (README, .env.example), except the *_FILE ones, which read
/// the file they name and are tested with real paths below.
const VARIABLES: &[&str] = &[
    "GRPC_ADDR",
    "DATA_DIR",
    "SQLITE_PATH",
    "MAIL_DIR",
    "LOG_FORMAT",
    "SHUTDOWN_GRACE",
    "GRPC_WEB_CORS_ORIGINS",
    "ACCESS_TOKEN_EXPIRY",
    "REFRESH_TOKEN_EXPIRY",
    "SESSION_IDLE_TIMEOUT",
    "SESSION_MAX_LIFETIME",
    "REFRESH_REUSE_GRACE",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_PRIVATE_KEY",
    "JWT_KEY_ID",
    "JWT_PRIVATE_KEYS_DIR",
    "JWT_KEY_ROTATION_INTERVAL",
    "JWKS_PREPUBLISH",
    "AUTH_SECRET",
    "CODE_TTL",
    "CODE_RESEND_COOLDOWN",
    "CODE_MAX_ATTEMPTS",
    "CODE_MAX_SENDS_PER_DAY",
    "CODE_MAX_GUESSES_PER_DAY",
    "CODE_REQUEST_TTL",
    "CODE_REQUESTS_PER_IP_PER_HOUR",
    "CODE_LOCKOUT",
    "SIGNUP_ENUMERATION_SAFE",
    "LOGIN_MAX_ATTEMPTS",
    "LOGIN_WINDOW",
    "LOGIN_MAX_FAILURES_PER_IP",
    "LOGIN_SLOWDOWN_AFTER",
    "LOGIN_SLOWDOWN_MAX",
    "MAX_SESSIONS_PER_USER",
    "TRUSTED_PROXIES",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "HASH_CONCURRENCY",
    "HASH_QUEUE",
    "HASH_MAX_WAIT",
    "GRPC_MAX_IN_FLIGHT",
    "MAIL_FROM",
    "APP_NAME",
    "MAIL_MAX_ATTEMPTS",
    "MAIL_RETRY_BASE_DELAY",
    "MAIL_RETRY_MAX_DELAY",
    "MAIL_CONCURRENCY",
    "MAIL_DEAD_LETTER_TTL",
    "SMTP_HOST",
    "MAIL_TRAP_HOST",
    "SMTP_PORT",
    "MAIL_TRAP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "MAIL_TRAP_USERNAME",
    "MAIL_TRAP_PASSWORD",
    "SMTP_TLS",
    "SMTP_TIMEOUT",
    "MONGODB_URI",
    "DB_USERNAME",
    "DB_PASSWORD",
    "DB_NAME",
    "MONGODB_MAX_POOL_SIZE",
    "MONGODB_SERVER_SELECTION_TIMEOUT",
    "MONGODB_CONNECT_TIMEOUT",
    "MONGODB_RETRY_WRITES",
    "REDIS_URL",
    "REDIS_CLUSTER",
    "REDIS_POOL_SIZE",
    "REDIS_TIMEOUT",
    "SERVICE_TOKENS",
    "OPERATOR_SERVICES",
    "AUDIT_RETENTION",
    "USERNAME_CHANGE_COOLDOWN",
    "PRESENCE_TTL",
    "PRESENCE_WRITE_INTERVAL",
    "EVENT_RETENTION",
    "EVENT_LOG_MAX_EVENTS",
    "MAX_EVENT_WATCHERS",
    "CODE_GUESSES_PER_IP_PER_HOUR",
    "MFA_CHALLENGE_TTL",
    "MFA_MAX_GUESSES_PER_CHALLENGE",
    "MFA_MAX_GUESSES_PER_DAY",
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_ORIGINS",
    "PASSKEYS_MAX_PER_USER",
    "PASSKEY_LOGINS_PER_IP_PER_HOUR",
    "PASSWORD_MIN_SCORE",
];

/// Values of every shape the variables take, and the wrong shapes.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,24}",
        "[ \t]{0,2}-?[0-9]{1,22}[ \t]{0,2}",
        "[0-9]{1,21} ?(ns|us|ms|s|sec|m|min|h|d|w|M|y|years|fortnights)?",
        "(true|false|on|off|yes|no|1|0|TRUE|Off|maybe)",
        "(redis|rediss|mongodb|mongodb\\+srv|http|postgres)://[a-z0-9.:@/%]{0,20}",
        "([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,3}|:[0-9]{1,6})?(, ?[0-9.:/a-f]{1,20})?",
        "\\[?[0-9a-f:]{2,20}\\]?(:[0-9]{1,6})?",
        "(https?://[a-z.]{1,12}/?|\\*)(, ?(https?://[a-z.]{1,12}/?|\\*))*",
        "(none|starttls|tls|STARTTLS|pretty|json|xml|[a-z]{1,6})",
        "[ \t\n]{1,3}",
    ]
}

/// Production-style parents, so the variables read only under MONGODB_URI, REDIS_URL and
/// SMTP_HOST are read.
fn with_parents(parents: bool) -> HashMap<String, String> {
    let pairs: &[(&str, &str)] = if parents {
        &[
            ("MONGODB_URI", "mongodb://db.example:27017"),
            ("REDIS_URL", "redis://cache.example:6379"),
            ("SMTP_HOST", "smtp.example.com"),
        ]
    } else {
        &[]
    };
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(vars: &HashMap<String, String>) -> Result<Config, auth_service::config::ConfigError> {
    Config::from_lookup(&|k| vars.get(k).cloned())
}

/// What every accepted configuration holds, whatever it was fed.
fn check_invariants(c: &Config) -> Result<(), TestCaseError> {
    use std::time::Duration;
    let second = Duration::from_secs(1);
    let ms = |ms: i64| Duration::from_millis(ms as u64);
    let p = &c.policy;
    for (name, d) in [
        ("ACCESS_TOKEN_EXPIRY", c.tokens.access_ttl),
        ("SESSION_IDLE_TIMEOUT", ms(p.refresh_ttl_ms)),
        ("SESSION_MAX_LIFETIME", ms(p.session_max_lifetime_ms)),
        ("CODE_TTL", ms(p.code.ttl_ms)),
        ("CODE_REQUEST_TTL", ms(p.code.pending_ttl_ms)),
        ("LOGIN_WINDOW", ms(p.login.window_ms)),
        ("MAIL_DEAD_LETTER_TTL", c.mail.delivery.dead_letter_ttl),
        ("EVENT_RETENTION", c.events.retention),
    ] {
        prop_assert!(d >= second, "{} = {:?}", name, d);
    }
    prop_assert!(c.hashing.memory_kib >= 19456 && c.hashing.iterations >= 2);
    prop_assert!((1..=64).contains(&c.hashing.parallelism));
    prop_assert!((1..=100).contains(&p.code.max_attempts));
    prop_assert!((1..=10_000).contains(&p.max_sessions_per_user));
    prop_assert!(p.presence.ttl_ms >= 100 && p.presence.write_interval_ms >= 0);
    prop_assert!(p.username_change_cooldown_ms >= 0);
    prop_assert!(c.events.max_events >= 1_000 && c.events.max_watchers >= 1);
    prop_assert!((1..=256).contains(&c.mail.delivery.concurrency));
    prop_assert!((1..=1024).contains(&c.hashing.concurrency));
    for origin in &c.server.grpc_web_cors_origins {
        let origin = origin.to_str().expect("ASCII");
        prop_assert!(origin.starts_with("http://") || origin.starts_with("https://"));
        prop_assert!(!origin.ends_with('/'));
    }
    if let Some(redis) = &c.storage.redis {
        prop_assert!((1..=1024).contains(&redis.pool_size));
    }
    if let Some(r) = &c.keys.rotation {
        prop_assert!(r.prepublish >= second && r.interval > r.prepublish);
        prop_assert!(r.interval >= c.tokens.access_ttl);
        prop_assert!(r.interval <= Duration::from_secs(3650 * 86_400));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn one_variable_of_any_value_is_accepted_or_refused_by_its_name(
        var in select(VARIABLES),
        value in config_value(),
        parents in any::<bool>(),
    ) {
        let mut vars = with_parents(parents);
        vars.insert(var.to_owned(), value.clone());
        match load(&vars) {
            Ok(c) => check_invariants(&c)?,
            Err(e) => {
                // DB_USERNAME / DB_PASSWORD without a URI are the URI's error.
                let expected = if matches!(var, "DB_USERNAME" | "DB_PASSWORD") && !parents {
                    "MONGODB_URI"
                } else {
                    var
                };
                prop_assert_eq!(e.var, expected, "{}={:?}: {}", var, value, e);
                prop_assert!(e.to_string().contains(e.var), "{}", e);
            }
        }
    }

    #[test]
    fn padding_and_blank_values_change_nothing(
        var in select(VARIABLES),
        value in config_value(),
        (left, right) in ("[ \t]{0,3}", "[ \t\n]{0,3}"),
        parents in any::<bool>(),
    ) {
        let base = with_parents(parents);
        let mut plain = base.clone();
        plain.insert(var.to_owned(), value.clone());
        let mut padded = base.clone();
        padded.insert(var.to_owned(), format!("{left}{value}{right}"));
        let outcome = |vars: &HashMap<String, String>| match load(vars) {
            Ok(c) => Ok(format!("{c:?}")),
            Err(e) => Err(e.var),
        };
        prop_assert_eq!(outcome(&plain), outcome(&padded));
        // A variable set to blanks is a variable not set, so its default holds.
        let mut unset = base.clone();
        unset.remove(var);
        let mut blank = unset.clone();
        blank.insert(var.to_owned(), format!("{left}{right}"));
        prop_assert_eq!(outcome(&blank), outcome(&unset));
    }

    #[test]
    fn many_variables_at_once_fail_only_by_naming_one_of_them(
        vars in prop::collection::hash_map(select(VARIABLES), config_value(), 0..16),
        parents in any::<bool>(),
    ) {
        let mut env = with_parents(parents);
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
        match load(&env) {
            Ok(c) => check_invariants(&c)?,
            Err(e) => {
                let set = |v: &str| env.get(v).is_some_and(|x| !x.trim().is_empty());
                prop_assert!(
                    set(e.var) || (e.var == "MONGODB_URI" && (set("DB_USERNAME") || set("DB_PASSWORD"))),
                    "{} names a variable that was not set: {:?}", e, env
                );
                prop_assert!(e.to_string().contains(e.var), "{}", e);
            }
        }
    }
}

#[test]
fn secret_files_that_cannot_be_read_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem").display().to_string();
    let folder = dir.path().display().to_string();
    for var in ["JWT_PRIVATE_KEY_FILE", "AUTH_SECRET_FILE"] {
        for path in [&missing, &folder] {
            let vars = HashMap::from([(var.to_owned(), path.clone())]);
            let err = load(&vars).expect_err("an unreadable file");
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().contains(var));
        }
    }
    // A readable file is read, and the variable itself wins over it.
    let file = dir.path().join("secret");
    std::fs::write(&file, "from the file").unwrap();
    let path = file.display().to_string();
    let vars = HashMap::from([("AUTH_SECRET_FILE".to_owned(), path.clone())]);
    let secret = load(&vars).unwrap().keys.auth_secret.expect("read");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&secret),
        "from the file"
    );
    let vars = HashMap::from([
        ("AUTH_SECRET_FILE".to_owned(), path),
        ("AUTH_SECRET".to_owned(), "from the variable".to_owned()),
    ]);
    let secret = load(&vars).unwrap().keys.auth_secret.expect("set");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&secret),
        "from the variable"
    );
}

#[test]
fn service_token_files_are_read_merged_and_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_line) = auth_service::crypto::mint_service_token("a").unwrap();
    let (b, b_line) = auth_service::crypto::mint_service_token("b").unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# services\n{b_line}\n")).unwrap();
    let path = file.display().to_string();
    let vars = HashMap::from([
        ("SERVICE_TOKENS_FILE".to_owned(), path.clone()),
        ("SERVICE_TOKENS".to_owned(), a_line.clone()),
    ]);
    let tokens = load(&vars).unwrap().server.service_tokens;
    assert_eq!(
        (tokens.identify(&a), tokens.identify(&b)),
        (Some("a"), Some("b"))
    );
    // A name in both, a missing file, a folder, a bad line: each named.
    std::fs::write(&file, &a_line).unwrap();
    let missing = dir.path().join("missing").display().to_string();
    let folder = dir.path().display().to_string();
    for (file, inline) in [(&path, a_line.as_str()), (&missing, ""), (&folder, "")] {
        let vars = HashMap::from([
            ("SERVICE_TOKENS_FILE".to_owned(), file.clone()),
            ("SERVICE_TOKENS".to_owned(), inline.to_owned()),
        ]);
        let err = load(&vars).expect_err("refused");
        assert_eq!(err.var, "SERVICE_TOKENS_FILE", "{err}");
    }
    std::fs::write(&file, "a:not-a-hash").unwrap();
    let vars = HashMap::from([("SERVICE_TOKENS_FILE".to_owned(), path)]);
    let err = load(&vars).expect_err("refused");
    assert!(err.to_string().contains("64 hex digits"), "{err}");
}

// --- bearer metadata, through the service ---------------------------------------------------

/// What `grpc::bearer` is documented to take from `authorization`: visible ASCII, trimmed,
/// a case-insensitive `Bearer` scheme, one or more spaces, a non-empty trimmed token.
fn bearer_of(value: &[u8]) -> Option<String> {
    if !value.iter().all(|&b| (32..127).contains(&b) || b == b'\t') {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn authorization_values(token: String) -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        Just("Bearer".to_owned()),
        Just("bearer".to_owned()),
        Just("BEARER".to_owned()),
        Just("bEaReR".to_owned()),
        Just("Basic".to_owned()),
        Just("Bearer:".to_owned()),
        Just(String::new()),
        "[ -~]{0,8}",
    ];
    let separator = select(vec![" ", "  ", "\t", " \t ", "", ":", "\u{0b}"]);
    let truncated = token[..token.len() - 3].to_owned();
    let body = prop_oneof![
        3 => Just(token.clone()),
        1 => Just(truncated),
        1 => Just(format!("{token} {token}")),
        1 => Just(format!("{token},other")),
        2 => "[ -~]{0,64}",
        1 => Just(String::new()),
    ];
    let edge = || select(vec!["", " ", "\t", "  "]);
    let well_formed = (
        select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]),
        select(vec![" ", "  ", " \t", " \t "]),
        edge(),
    )
        .prop_map(move |(s, sep, r)| format!("{s}{sep}{token}{r}").into_bytes());
    prop_oneof![
        2 => well_formed,
        4 => (edge(), scheme, separator, body, edge())
            .prop_map(|(l, s, sep, b, r)| format!("{l}{s}{sep}{b}{r}").into_bytes()),
        2 => "[ -~]{0,200}".prop_map(String::into_bytes),
        1 => prop::collection::vec(prop_oneof![32u8..127, 128u8..=255, Just(b'\t')], 0..64),
    ]
}

#[test]
fn authorization_metadata_of_any_shape_is_the_caller_or_unauthenticated() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (arena, token, user_id) = runtime.block_on(async {
        let arena = Arena::start(Backend::Sqlite, &[]).await;
        let (user, tokens) = arena.signup(&username("bearer"), &email("bearer")).await;
        (arena, tokens.access_token, user.id)
    });
    let client = arena.app.client();
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(config(64));
    let outcome = runner.run(&authorization_values(token.clone()), |value| {
        // Bytes a header may not carry (control characters) never reach the wire.
        let Ok(metadata) = AsciiMetadataValue::try_from(value.as_slice()) else {
            return Ok(());
        };
        let mut request = tonic::Request::new(pb::GetCurrentUserRequest {});
        request.metadata_mut().insert("authorization", metadata);
        let mut client = client.clone();
        let result = runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                client.get_current_user(request),
            )
            .await
        });
        let result = result.map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
        let shown = String::from_utf8_lossy(&value);
        match (bearer_of(&value), result) {
            (Some(t), Ok(response)) if t == token => {
                let user = response.into_inner().user.expect("a user");
                prop_assert_eq!(user.id, user_id.clone());
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (expected, Ok(_)) => {
                prop_assert!(
                    false,
                    "{:?} authenticated (parsed as {:?})",
                    shown,
                    expected
                );
            }
            (expected, Err(status)) => {
                let want = match expected {
                    None => "UNAUTHENTICATED",
                    Some(t) if t == token => {
                        return Err(TestCaseError::fail(format!(
                            "{shown:?} refused: {status:?}"
                        )));
                    }
                    Some(_) => "ACCESS_TOKEN_INVALID",
                };
                prop_assert_eq!(
                    (status.code(), reason(&status)),
                    (Code::Unauthenticated, want.to_owned()),
                    "{:?}: {:?}",
                    shown,
                    status
                );
            }
        }
        Ok(())
    });
    // The service serves the real caller after all of it.
    runtime.block_on(async {
        arena.app.me(&token).await.expect("still served");
        drop(arena);
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(
        accepted.into_inner() > 0,
        "no case presented the real token well-formed"
    );
}
