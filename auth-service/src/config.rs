//! Configuration, read once from the environment (and `.env` when present) and validated at
//! startup; every error names the variable. The sections are the settings of the parts they
//! configure ([`HashSettings`] for the hashing pool, [`Policy`] for the flows, [`RetryPolicy`]
//! for the mail worker …), so startup hands each part its section as read. The README's
//! configuration reference documents each variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use baatcheet_runtime::env::{ConfigError, LogFormat};
use baatcheet_runtime::env::{Env, load_dotenv};
use secrecy::SecretString;

use crate::crypto::{HashSettings, PasskeySettings, ServiceTokens};
use crate::flows::{LoginPolicy, MfaPolicy, PasskeyPolicy, Policy, PresencePolicy};
use crate::mail::{RetryPolicy, SmtpConfig, SmtpTls};
use crate::store::CodePolicy;

/// The whole configuration of the service, in sections.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    pub tokens: TokenConfig,
    pub mail: MailConfig,
    pub hashing: HashSettings,
    pub policy: Policy,
    pub events: EventsConfig,
    /// The WebAuthn relying party: its id and the origins browsers may be on.
    pub passkeys: PasskeySettings,
}

/// The event log `WatchEvents` streams.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// How long events are kept for watchers that resume.
    pub retention: Duration,
    /// Most events kept, whatever their age: bounds the log when sign-ins are many.
    pub max_events: u64,
    /// Watch streams one instance serves at once.
    pub max_watchers: u32,
    /// How long the users' security logs keep an entry (AUDIT_RETENTION).
    pub audit_retention: Duration,
}

/// The gRPC listener and whom it believes.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub grpc_addr: SocketAddr,
    /// How long the mail worker gets to finish the messages it is sending at shutdown.
    pub shutdown_grace: Duration,
    /// Browser origins allowed to call gRPC-Web across origins.
    pub grpc_web_cors_origins: Vec<http::HeaderValue>,
    /// Peers whose `x-client-ip` / `x-client-user-agent` metadata is believed, when no
    /// service token is configured.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// SHA-256 of the service credentials `InternalAuthService` accepts, by service name.
    /// When any is set, client metadata is believed only from a caller presenting one.
    pub service_tokens: ServiceTokens,
    /// The services (names in `service_tokens`) allowed the operator actions.
    pub operator_services: Vec<String>,
    /// Calls in progress at most; one more is answered RESOURCE_EXHAUSTED at once.
    pub max_in_flight: usize,
    pub log_format: LogFormat,
}

/// Where data lives: the data folder, and the backends chosen from what is set.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The development key, secret and (by default) the SQLite file and mail folder.
    pub data_dir: PathBuf,
    /// SQLite database file, or `:memory:`.
    pub sqlite_path: PathBuf,
    /// Users in MongoDB when set; else in the SQLite file.
    pub mongo: Option<MongoConfig>,
    /// Short-lived state in Redis when set; else in the SQLite file.
    pub redis: Option<RedisConfig>,
}

/// The signing key and the server secret; generated into the data folder when unset.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub jwt_private_key_pem: Option<SecretString>,
    /// JWT_PRIVATE_KEYS_DIR: a folder of keys (`<kid>.pem`), for rotations by hand.
    pub jwt_private_keys_dir: Option<std::path::PathBuf>,
    pub jwt_key_id: Option<String>,
    pub auth_secret: Option<SecretString>,
    /// JWT_KEY_ROTATION_INTERVAL and JWKS_PREPUBLISH: the service makes its own keys.
    pub rotation: Option<KeyRotation>,
}

/// The automatic rotation of signing keys: a new key every `interval`, published `prepublish`
/// before it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotation {
    pub interval: Duration,
    pub prepublish: Duration,
}

/// What the access tokens say and how long they live.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

/// Outgoing mail: who sends it, where it goes, how it is retried.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from: String,
    /// The product name in subjects and bodies.
    pub app_name: String,
    /// Folder of the development mailer's .eml files.
    pub dir: PathBuf,
    /// Mail through an SMTP relay when set; else .eml files in `dir`.
    pub smtp: Option<SmtpConfig>,
    pub delivery: RetryPolicy,
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub uri: SecretString,
    /// Credentials that override the URI's (the seed's DB_USERNAME / DB_PASSWORD).
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Database name (DB_NAME), else the URI's default database, else `baatcheet`.
    pub database: Option<String>,
    pub max_pool_size: u32,
    pub server_selection_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry_writes: bool,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS).
    pub url: SecretString,
    pub pool_size: u32,
    /// Longest wait for a connection or a command before answering UNAVAILABLE.
    pub timeout: Duration,
    /// REDIS_CLUSTER: `url` names seed nodes of a Redis Cluster (also implied by a
    /// `redis+cluster://` URL).
    pub cluster: bool,
}

/// A duration in milliseconds, the unit the stores and tokens keep times in.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Config {
    /// Loads `.env` (when present) into the process environment, then reads it.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads the configuration from any lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        if env.get("CODE_LOCKOUT").is_some() {
            return Err(ConfigError::new(
                "CODE_LOCKOUT",
                "is no longer used: a request is void after CODE_MAX_ATTEMPTS wrong codes, and \
                 CODE_MAX_GUESSES_PER_DAY bounds the guesses per email; unset it",
            ));
        }
        let storage = storage_config(&env)?;
        let tokens = service_tokens(&env)?;
        let access_ttl = env.duration("ACCESS_TOKEN_EXPIRY", "15m", Duration::from_secs(1))?;
        Ok(Config {
            server: ServerConfig {
                grpc_addr: env.parse("GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 50051)))?,
                shutdown_grace: env.duration("SHUTDOWN_GRACE", "10s", Duration::ZERO)?,
                grpc_web_cors_origins: env.origins("GRPC_WEB_CORS_ORIGINS")?,
                trusted_proxies: networks(&env, "TRUSTED_PROXIES", "127.0.0.0/8,::1/128")?,
                operator_services: operator_services(&env, &tokens)?,
                service_tokens: tokens,
                max_in_flight: env.number::<usize>("GRPC_MAX_IN_FLIGHT", 4096, 1, 1_000_000)?,
                log_format: env.log_format()?,
            },
            keys: KeysConfig {
                jwt_private_key_pem: env.secret("JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE")?,
                jwt_private_keys_dir: env.get("JWT_PRIVATE_KEYS_DIR").map(Into::into),
                jwt_key_id: env.get("JWT_KEY_ID"),
                auth_secret: env.secret("AUTH_SECRET", "AUTH_SECRET_FILE")?,
                rotation: key_rotation(&env, access_ttl)?,
            },
            tokens: TokenConfig {
                issuer: env.string("JWT_ISSUER", "baatcheet-auth"),
                audience: env.string("JWT_AUDIENCE", "baatcheet"),
                access_ttl,
            },
            mail: mail_config(&env, &storage.data_dir)?,
            hashing: hash_settings(&env)?,
            policy: policy(&env)?,
            events: EventsConfig {
                retention: env.duration("EVENT_RETENTION", "24h", Duration::from_secs(1))?,
                max_events: env.number("EVENT_LOG_MAX_EVENTS", 1_000_000, 1_000, 100_000_000)?,
                max_watchers: env.number("MAX_EVENT_WATCHERS", 256, 1, 100_000)?,
                audit_retention: env.duration("AUDIT_RETENTION", "90d", Duration::from_secs(1))?,
            },
            passkeys: passkey_settings(&env)?,
            storage,
        })
    }
}

/// JWT_KEY_ROTATION_INTERVAL (unset: no automatic rotation) and JWKS_PREPUBLISH (read even
/// without it). A key is published before it signs and signs at least as long as a token
/// lives, so the ring holds a few keys at a time (at most four: the next, the signing one, and
/// up to two still verifying).
fn key_rotation(env: &Env<'_>, access_ttl: Duration) -> Result<Option<KeyRotation>, ConfigError> {
    let prepublish = env.duration("JWKS_PREPUBLISH", "1h", Duration::from_secs(1))?;
    if env.get("JWT_KEY_ROTATION_INTERVAL").is_none() {
        return Ok(None);
    }
    let interval = env.duration("JWT_KEY_ROTATION_INTERVAL", "", Duration::from_secs(1))?;
    let show = |d: Duration| humantime::format_duration(d).to_string();
    let var = "JWT_KEY_ROTATION_INTERVAL";
    if interval <= prepublish {
        return Err(ConfigError::new(
            var,
            format!(
                "must be longer than JWKS_PREPUBLISH ({}): a key is published that long before it signs",
                show(prepublish)
            ),
        ));
    }
    if interval < access_ttl {
        return Err(ConfigError::new(
            var,
            format!(
                "must be at least ACCESS_TOKEN_EXPIRY ({}), so that few keys are kept at a time",
                show(access_ttl)
            ),
        ));
    }
    if interval > Duration::from_secs(3650 * 86_400) {
        return Err(ConfigError::new(var, "must be at most 3650d"));
    }
    Ok(Some(KeyRotation {
        interval,
        prepublish,
    }))
}

/// WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS, checked as a browser would check them. Without
/// origins, the id's own https origin (the development page's on localhost).
fn passkey_settings(env: &Env<'_>) -> Result<PasskeySettings, ConfigError> {
    let rp_id = env.string("WEBAUTHN_RP_ID", "localhost");
    let default_origin = match rp_id.trim().to_ascii_lowercase().as_str() {
        "localhost" => "http://localhost:8080".to_owned(),
        id => format!("https://{id}"),
    };
    let origins = env.string("WEBAUTHN_ORIGINS", &default_origin);
    let origins: Vec<&str> = origins.split(',').collect();
    PasskeySettings::new(&rp_id, &origins).map_err(|(var, message)| ConfigError::new(var, message))
}

fn storage_config(env: &Env<'_>) -> Result<StorageConfig, ConfigError> {
    let data_dir = PathBuf::from(env.string("DATA_DIR", "./data"));
    let redis = match env.get("REDIS_URL") {
        None => None,
        Some(url)
            if ![
                "redis://",
                "rediss://",
                "redis+cluster://",
                "rediss+cluster://",
            ]
            .iter()
            .any(|scheme| url.to_ascii_lowercase().starts_with(scheme)) =>
        {
            return Err(ConfigError::new(
                "REDIS_URL",
                "must start with redis://, rediss://, redis+cluster:// or rediss+cluster://",
            ));
        }
        Some(url) => Some(RedisConfig {
            url: SecretString::from(url),
            pool_size: env.number("REDIS_POOL_SIZE", 16, 1, 1024)?,
            timeout: env.duration("REDIS_TIMEOUT", "2s", Duration::from_millis(10))?,
            cluster: env.flag("REDIS_CLUSTER", false)?,
        }),
    };
    Ok(StorageConfig {
        sqlite_path: env
            .get("SQLITE_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("auth.sqlite3")),
        mongo: mongo_config(env)?,
        redis,
        data_dir,
    })
}

fn mail_config(env: &Env<'_>, data_dir: &std::path::Path) -> Result<MailConfig, ConfigError> {
    let msec = Duration::from_millis;
    Ok(MailConfig {
        from: env.string("MAIL_FROM", "Baat Cheet <no-reply@baatcheet.local>"),
        app_name: env.string("APP_NAME", "Baat Cheet"),
        dir: env
            .get("MAIL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("mail")),
        smtp: smtp_config(env)?,
        delivery: RetryPolicy {
            max_attempts: env.number("MAIL_MAX_ATTEMPTS", 8, 1, 100)?,
            base_delay: env.duration("MAIL_RETRY_BASE_DELAY", "2s", msec(10))?,
            max_delay: env.duration("MAIL_RETRY_MAX_DELAY", "10m", msec(10))?,
            concurrency: env.number("MAIL_CONCURRENCY", 8, 1, 256)?,
            dead_letter_ttl: env.duration("MAIL_DEAD_LETTER_TTL", "7d", msec(1000))?,
        },
    })
}

fn hash_settings(env: &Env<'_>) -> Result<HashSettings, ConfigError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(HashSettings {
        memory_kib: env.number("ARGON2_MEMORY_KIB", 19456, 19456, 4 * 1024 * 1024)?,
        iterations: env.number("ARGON2_ITERATIONS", 2, 2, 100)?,
        parallelism: env.number("ARGON2_PARALLELISM", 1, 1, 64)?,
        concurrency: env.number("HASH_CONCURRENCY", cores, 1, 1024)?,
        queue: env.number("HASH_QUEUE", 64, 0, 100_000)?,
        max_wait: hash_max_wait(env)?,
    })
}

fn hash_max_wait(env: &Env<'_>) -> Result<Duration, ConfigError> {
    let max_wait = env.duration("HASH_MAX_WAIT", "100ms", Duration::ZERO)?;
    // A caller's deadline (the gateway's GRPC_TIMEOUT is 10 s by default) would pass first.
    if max_wait > Duration::from_secs(10) {
        return Err(ConfigError::new("HASH_MAX_WAIT", "must be at most 10s"));
    }
    Ok(max_wait)
}

fn policy(env: &Env<'_>) -> Result<Policy, ConfigError> {
    let second = Duration::from_secs(1);
    let slowdown_max = env.duration("LOGIN_SLOWDOWN_MAX", "5s", Duration::ZERO)?;
    // A wait longer than a caller's deadline (the gateway's GRPC_TIMEOUT is 10 s by default)
    // would turn a slowed sign-in into a failed one.
    if slowdown_max > Duration::from_secs(10) {
        return Err(ConfigError::new(
            "LOGIN_SLOWDOWN_MAX",
            "must be at most 10s",
        ));
    }
    // The idle timeout is the refresh token's life: REFRESH_TOKEN_EXPIRY, its older name, is
    // the default.
    let refresh_ttl = env.duration("REFRESH_TOKEN_EXPIRY", "7d", second)?;
    let idle = env.duration(
        "SESSION_IDLE_TIMEOUT",
        &humantime::format_duration(refresh_ttl).to_string(),
        second,
    )?;
    Ok(Policy {
        code: CodePolicy {
            ttl_ms: millis(env.duration("CODE_TTL", "300s", second)?),
            cooldown_ms: millis(env.duration("CODE_RESEND_COOLDOWN", "60s", Duration::ZERO)?),
            max_attempts: env.number("CODE_MAX_ATTEMPTS", 5, 1, 100)?,
            max_sends_per_day: env.number("CODE_MAX_SENDS_PER_DAY", 10, 1, 1000)?,
            max_guesses_per_day: env.number("CODE_MAX_GUESSES_PER_DAY", 20, 1, 10_000)?,
            pending_ttl_ms: millis(env.duration("CODE_REQUEST_TTL", "1h", second)?),
        },
        code_requests_per_ip_per_hour: env.number(
            "CODE_REQUESTS_PER_IP_PER_HOUR",
            20,
            1,
            1_000_000,
        )?,
        code_guesses_per_ip_per_hour: env.number(
            "CODE_GUESSES_PER_IP_PER_HOUR",
            100,
            1,
            1_000_000,
        )?,
        signup_enumeration_safe: env.flag("SIGNUP_ENUMERATION_SAFE", false)?,
        refresh_ttl_ms: millis(idle),
        session_max_lifetime_ms: millis(env.duration("SESSION_MAX_LIFETIME", "30d", second)?),
        refresh_grace_ms: millis(env.duration("REFRESH_REUSE_GRACE", "10s", Duration::ZERO)?),
        max_sessions_per_user: env.number("MAX_SESSIONS_PER_USER", 50, 1, 10_000)?,
        username_change_cooldown_ms: millis(env.duration(
            "USERNAME_CHANGE_COOLDOWN",
            "30d",
            Duration::ZERO,
        )?),
        presence: PresencePolicy {
            ttl_ms: millis(env.duration("PRESENCE_TTL", "90s", Duration::from_millis(100))?),
            write_interval_ms: millis(env.duration(
                "PRESENCE_WRITE_INTERVAL",
                "60s",
                Duration::ZERO,
            )?),
        },
        mfa: MfaPolicy {
            challenge_ttl_ms: millis(env.duration("MFA_CHALLENGE_TTL", "5m", second)?),
            max_guesses_per_challenge: env.number("MFA_MAX_GUESSES_PER_CHALLENGE", 5, 1, 100)?,
            max_guesses_per_day: env.number("MFA_MAX_GUESSES_PER_DAY", 20, 1, 10_000)?,
        },
        password: crate::domain::PasswordRules {
            min_score: env.number("PASSWORD_MIN_SCORE", 3, 0, 4)?,
        },
        passkeys: PasskeyPolicy {
            max_per_user: env.number("PASSKEYS_MAX_PER_USER", 10, 1, 100)?,
            logins_per_ip_per_hour: env.number(
                "PASSKEY_LOGINS_PER_IP_PER_HOUR",
                300,
                1,
                1_000_000,
            )?,
        },
        login: LoginPolicy {
            max_attempts: env.number("LOGIN_MAX_ATTEMPTS", 10, 1, 10_000)?,
            window_ms: millis(env.duration("LOGIN_WINDOW", "15m", second)?),
            max_failures_per_ip: env.number("LOGIN_MAX_FAILURES_PER_IP", 100, 1, 1_000_000)?,
            slowdown_after: env.number("LOGIN_SLOWDOWN_AFTER", 20, 1, 1_000_000)?,
            slowdown_max,
        },
    })
}

/// SERVICE_TOKENS (inline `name:hash` entries, by line or comma) and SERVICE_TOKENS_FILE
/// (a file of such lines), together.
fn service_tokens(env: &Env<'_>) -> Result<ServiceTokens, ConfigError> {
    let inline = ServiceTokens::parse(&env.string("SERVICE_TOKENS", ""))
        .map_err(|e| ConfigError::new("SERVICE_TOKENS", e))?;
    let Some(path) = env.get("SERVICE_TOKENS_FILE") else {
        return Ok(inline);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new("SERVICE_TOKENS_FILE", format!("cannot read {path}: {e}")))?;
    let from_file = ServiceTokens::parse(&text)
        .map_err(|e| ConfigError::new("SERVICE_TOKENS_FILE", format!("{path}: {e}")))?;
    inline
        .merge(from_file)
        .map_err(|e| ConfigError::new("SERVICE_TOKENS_FILE", e))
}

/// OPERATOR_SERVICES: comma-separated names of services (each one of the service tokens)
/// that may call the operator actions; none by default.
fn operator_services(env: &Env<'_>, tokens: &ServiceTokens) -> Result<Vec<String>, ConfigError> {
    let raw = env.string("OPERATOR_SERVICES", "");
    let mut names = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !tokens.names().any(|known| known == name) {
            return Err(ConfigError::new(
                "OPERATOR_SERVICES",
                format!("{name:?} is not the name of a service token (SERVICE_TOKENS)"),
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Comma-separated CIDRs (`10.0.0.0/8`) or single addresses; `none` for none.
fn networks(
    env: &Env<'_>,
    var: &'static str,
    default: &str,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    env.string(var, default)
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "none")
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::new(var, format!("{n:?} is not a CIDR like 10.0.0.0/8")))
        })
        .collect()
}

fn mongo_config(env: &Env<'_>) -> Result<Option<MongoConfig>, ConfigError> {
    let msec = Duration::from_millis;
    let Some(uri) = env.get("MONGODB_URI") else {
        for var in ["DB_USERNAME", "DB_PASSWORD"] {
            if env.get(var).is_some() {
                return Err(ConfigError::new(
                    "MONGODB_URI",
                    format!("{var} is set but MONGODB_URI is not"),
                ));
            }
        }
        return Ok(None);
    };
    if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
        return Err(ConfigError::new(
            "MONGODB_URI",
            "must start with mongodb:// or mongodb+srv://",
        ));
    }
    Ok(Some(MongoConfig {
        uri: SecretString::from(uri),
        username: env.get("DB_USERNAME"),
        password: env.get("DB_PASSWORD").map(SecretString::from),
        database: env.get("DB_NAME"),
        max_pool_size: env.number("MONGODB_MAX_POOL_SIZE", 20, 1, 10_000)?,
        server_selection_timeout: env.duration(
            "MONGODB_SERVER_SELECTION_TIMEOUT",
            "2s",
            msec(10),
        )?,
        connect_timeout: env.duration("MONGODB_CONNECT_TIMEOUT", "2s", msec(10))?,
        retry_writes: env.parse("MONGODB_RETRY_WRITES", true)?,
    }))
}

/// SMTP_* variables, with the seed's MAIL_TRAP_* as fallbacks.
fn smtp_config(env: &Env<'_>) -> Result<Option<SmtpConfig>, ConfigError> {
    let either = |primary: &'static str, fallback: &'static str| {
        env.get(primary)
            .map(|v| (primary, v))
            .or_else(|| env.get(fallback).map(|v| (fallback, v)))
    };
    let Some((_, host)) = either("SMTP_HOST", "MAIL_TRAP_HOST") else {
        return Ok(None);
    };
    let tls = match env.string("SMTP_TLS", "starttls").to_lowercase().as_str() {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        other => {
            return Err(ConfigError::new(
                "SMTP_TLS",
                format!("{other:?} is not none, starttls or tls"),
            ));
        }
    };
    let default_port = match tls {
        SmtpTls::None => 25,
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
    };
    let port = match either("SMTP_PORT", "MAIL_TRAP_PORT") {
        None => default_port,
        Some((var, v)) => v
            .parse()
            .map_err(|e| ConfigError::new(var, format!("{v:?} is not a port: {e}")))?,
    };
    Ok(Some(SmtpConfig {
        host,
        port,
        username: either("SMTP_USERNAME", "MAIL_TRAP_USERNAME").map(|(_, v)| v),
        password: either("SMTP_PASSWORD", "MAIL_TRAP_PASSWORD").map(|(_, v)| SecretString::from(v)),
        tls,
        timeout: env.duration("SMTP_TIMEOUT", "10s", Duration::from_millis(100))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(&baatcheet_runtime::env::pairs(pairs))
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.server.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(c.policy.refresh_ttl_ms, 7 * 86_400_000);
        assert_eq!(c.storage.sqlite_path, PathBuf::from("./data/auth.sqlite3"));
        assert_eq!(c.policy.code.max_attempts, 5);
        assert_eq!(c.passkeys.rp_id, "localhost");
        assert_eq!(c.passkeys.origins[0].as_str(), "http://localhost:8080/");
    }

    #[test]
    fn a_relying_party_id_alone_brings_its_own_https_origin() {
        let c = load(&[("WEBAUTHN_RP_ID", "chat.example.com")]).unwrap();
        let origins: Vec<_> = c.passkeys.origins.iter().map(|o| o.as_str()).collect();
        assert_eq!(origins, ["https://chat.example.com/"]);
        let c = load(&[
            ("WEBAUTHN_RP_ID", "example.com"),
            (
                "WEBAUTHN_ORIGINS",
                "https://chat.example.com, https://example.com:8443",
            ),
        ])
        .unwrap();
        assert_eq!(c.passkeys.origins.len(), 2);
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("ACCESS_TOKEN_EXPIRY", "soon"),
            ("ACCESS_TOKEN_EXPIRY", "9223372036854775"),
            ("REFRESH_TOKEN_EXPIRY", "11y"),
            ("GRPC_ADDR", "nowhere"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("LOG_FORMAT", "xml"),
            ("MONGODB_URI", "postgres://x"),
            ("REDIS_URL", "http://x"),
            ("SMTP_TLS", "maybe"),
            ("DB_USERNAME", "only-this"),
            ("GRPC_WEB_CORS_ORIGINS", "*"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("SIGNUP_ENUMERATION_SAFE", "maybe"),
            ("MAX_SESSIONS_PER_USER", "0"),
            ("CODE_LOCKOUT", "15m"),
            ("MAIL_CONCURRENCY", "0"),
            ("LOGIN_SLOWDOWN_MAX", "30s"),
            ("SERVICE_TOKENS", "gateway:abc"),
            ("SERVICE_TOKENS_FILE", "/nonexistent/tokens"),
            ("PRESENCE_TTL", "0s"),
            ("EVENT_RETENTION", "forever"),
            ("MFA_CHALLENGE_TTL", "0s"),
            ("MFA_MAX_GUESSES_PER_DAY", "0"),
            ("WEBAUTHN_RP_ID", "https://chat.example.com"),
            ("WEBAUTHN_ORIGINS", "http://chat.example.com"),
            ("PASSKEYS_MAX_PER_USER", "0"),
            ("PASSWORD_MIN_SCORE", "5"),
        ] {
            let mut pairs = vec![(var, value)];
            if var == "SMTP_TLS" {
                pairs.push(("SMTP_HOST", "smtp.example.com"));
            }
            let err = load(&pairs).unwrap_err();
            let expected = if var == "DB_USERNAME" {
                "MONGODB_URI"
            } else {
                var
            };
            assert_eq!(err.var, expected);
            assert!(err.to_string().contains(expected));
        }
        let err = load(&[("GRPC_ADDR", "x")]).unwrap_err();
        assert_eq!(err.var, "GRPC_ADDR");
    }

    #[test]
    fn key_rotation_bounds_name_their_variable() {
        assert_eq!(load(&[]).unwrap().keys.rotation, None);
        let c = load(&[("JWT_KEY_ROTATION_INTERVAL", "30d")]).unwrap();
        assert_eq!(
            c.keys.rotation,
            Some(KeyRotation {
                interval: Duration::from_secs(30 * 86_400),
                prepublish: Duration::from_secs(3600),
            })
        );
        for pairs in [
            // Not longer than the pre-publish time.
            &[("JWT_KEY_ROTATION_INTERVAL", "1h")][..],
            &[
                ("JWT_KEY_ROTATION_INTERVAL", "10m"),
                ("JWKS_PREPUBLISH", "10m"),
            ],
            // Shorter than a token's life.
            &[
                ("JWT_KEY_ROTATION_INTERVAL", "5m"),
                ("JWKS_PREPUBLISH", "1m"),
                ("ACCESS_TOKEN_EXPIRY", "10m"),
            ],
            &[("JWT_KEY_ROTATION_INTERVAL", "3651d")],
            &[("JWT_KEY_ROTATION_INTERVAL", "soon")],
        ] {
            let err = load(pairs).unwrap_err();
            assert_eq!(err.var, "JWT_KEY_ROTATION_INTERVAL", "{pairs:?}: {err}");
        }
        let err = load(&[("JWKS_PREPUBLISH", "0s")]).unwrap_err();
        assert_eq!(err.var, "JWKS_PREPUBLISH");
    }

    #[test]
    fn production_backends() {
        let c = load(&[
            ("MONGODB_URI", "mongodb://db:27017"),
            ("DB_NAME", "chat"),
            ("REDIS_URL", "rediss://cache:6380"),
            ("MAIL_TRAP_HOST", "smtp.mailtrap.io"),
            ("MAIL_TRAP_PORT", "2525"),
            ("SMTP_TLS", "none"),
        ])
        .unwrap();
        assert_eq!(c.storage.mongo.unwrap().database.as_deref(), Some("chat"));
        assert_eq!(c.storage.redis.unwrap().timeout, Duration::from_secs(2));
        let smtp = c.mail.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("smtp.mailtrap.io", 2525, SmtpTls::None)
        );
        for (url, cluster) in [
            ("redis+cluster://a:1,b:2", false),
            ("REDISS+CLUSTER://a:1", false),
            ("redis://a:1/,redis://b:2/", true),
        ] {
            let flag = if cluster { "true" } else { "false" };
            let c = load(&[("REDIS_URL", url), ("REDIS_CLUSTER", flag)]).unwrap();
            assert_eq!(c.storage.redis.unwrap().cluster, cluster, "{url}");
        }
        let err = load(&[("REDIS_URL", "cluster://a:1")]).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        let c = load(&[("SMTP_HOST", "relay"), ("SMTP_TLS", "tls")]).unwrap();
        assert_eq!(c.mail.smtp.unwrap().port, 465);
        assert!(load(&[]).unwrap().mail.smtp.is_none());
    }

    #[test]
    fn trusted_proxies() {
        let c = load(&[]).unwrap();
        let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            c.server
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&loopback))
        );
        let c = load(&[("TRUSTED_PROXIES", "10.1.0.0/16, 192.0.2.7")]).unwrap();
        let inside: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let single: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(c.server.trusted_proxies.iter().any(|n| n.contains(&inside)));
        assert!(c.server.trusted_proxies.iter().any(|n| n.contains(&single)));
        assert!(
            !c.server
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&loopback))
        );
        assert!(
            load(&[("TRUSTED_PROXIES", "none")])
                .unwrap()
                .server
                .trusted_proxies
                .is_empty()
        );
    }

    #[test]
    fn durations() {
        let c = load(&[
            ("ACCESS_TOKEN_EXPIRY", "2s"),
            ("REFRESH_TOKEN_EXPIRY", "30"),
        ])
        .unwrap();
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(2));
        assert_eq!(c.policy.refresh_ttl_ms, 30_000);
    }
}
