//! Configuration: one struct, read once from the environment (and `.env` when present),
//! validated at startup. Every error names the variable. `.env.example` documents each key.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use baatcheet_runtime::env::{ConfigError, LogFormat};
use baatcheet_runtime::env::{Env, load_dotenv};
use secrecy::SecretString;

/// The whole configuration of the service.
#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// SQLite database file, or `:memory:`.
    pub sqlite_path: PathBuf,
    /// Folder of the development mailer's .eml files.
    pub mail_dir: PathBuf,
    pub mail_from: String,
    pub app_name: String,
    pub mail_max_attempts: u32,
    /// Delay after the first failed send; doubles per try up to `mail_retry_max_delay`.
    pub mail_retry_base_delay: Duration,
    pub mail_retry_max_delay: Duration,
    /// Messages one instance sends at once.
    pub mail_concurrency: usize,
    /// How long a dead letter is kept.
    pub mail_dead_letter_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_private_key_pem: Option<SecretString>,
    pub jwt_key_id: Option<String>,
    pub auth_secret: Option<SecretString>,
    pub code_ttl: Duration,
    pub code_resend_cooldown: Duration,
    pub code_max_attempts: u32,
    pub code_max_sends_per_day: u32,
    pub code_max_guesses_per_day: u32,
    /// How long a pending sign-up or reset lives after its last code.
    pub code_request_ttl: Duration,
    /// Register / ResendVerificationCode / RequestPasswordReset calls per client network per hour.
    pub code_requests_per_ip_per_hour: u32,
    /// VerifyRegistration / ResetPassword code checks per client network per hour.
    pub code_guesses_per_ip_per_hour: u32,
    /// Register for a taken email answers like a new sign-up and notifies the owner.
    pub signup_enumeration_safe: bool,
    pub login_max_attempts: u32,
    pub login_window: Duration,
    pub login_max_failures_per_ip: u32,
    pub login_slowdown_after: u32,
    pub login_slowdown_max: Duration,
    pub max_sessions_per_user: u32,
    /// Peers whose `x-client-ip` / `x-client-user-agent` metadata is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    /// Browser origins allowed to call gRPC-Web across origins.
    pub grpc_web_cors_origins: Vec<http::HeaderValue>,
    /// Users in MongoDB when set; else in the SQLite file.
    pub mongo: Option<MongoConfig>,
    /// Short-lived state in Redis when set; else in the SQLite file.
    pub redis: Option<RedisConfig>,
    /// Mail through an SMTP relay when set; else .eml files in `mail_dir`.
    pub smtp: Option<SmtpConfig>,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: SmtpTls,
    pub timeout: Duration,
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
        let data_dir = PathBuf::from(env.string("DATA_DIR", "./data"));
        let sqlite_path = env
            .get("SQLITE_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("auth.sqlite3"));
        let mail_dir = env
            .get("MAIL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("mail"));
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let log_format = env.log_format()?;
        let ms = Duration::from_millis;
        if env.get("CODE_LOCKOUT").is_some() {
            return Err(ConfigError::new(
                "CODE_LOCKOUT",
                "is no longer used: a request is void after CODE_MAX_ATTEMPTS wrong codes, and \
                 CODE_MAX_GUESSES_PER_DAY bounds the guesses per email; unset it",
            ));
        }
        let mongo = mongo_config(&env)?;
        let redis = match env.get("REDIS_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        "REDIS_URL",
                        "must start with redis:// or rediss://",
                    ));
                }
                Some(RedisConfig {
                    url: SecretString::from(url),
                    pool_size: env.number("REDIS_POOL_SIZE", 16, 1, 1024)?,
                    timeout: env.duration("REDIS_TIMEOUT", "2s", ms(10))?,
                })
            }
        };
        let smtp = smtp_config(&env)?;
        let grpc_web_cors_origins = env.origins("GRPC_WEB_CORS_ORIGINS")?;
        let login_slowdown_max = env.duration("LOGIN_SLOWDOWN_MAX", "5s", ms(0))?;
        // A wait longer than a caller's deadline (the gateway's GRPC_TIMEOUT is 10 s by default)
        // would turn a slowed sign-in into a failed one.
        if login_slowdown_max > Duration::from_secs(10) {
            return Err(ConfigError::new(
                "LOGIN_SLOWDOWN_MAX",
                "must be at most 10s",
            ));
        }
        let config = Config {
            grpc_addr: env.parse("GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 50051)))?,
            data_dir,
            sqlite_path,
            mail_dir,
            mail_from: env.string("MAIL_FROM", "Baat Cheet <no-reply@baatcheet.local>"),
            app_name: env.string("APP_NAME", "Baat Cheet"),
            mail_max_attempts: env.number("MAIL_MAX_ATTEMPTS", 8, 1, 100)?,
            mail_retry_base_delay: env.duration("MAIL_RETRY_BASE_DELAY", "2s", ms(10))?,
            mail_retry_max_delay: env.duration("MAIL_RETRY_MAX_DELAY", "10m", ms(10))?,
            mail_concurrency: env.number("MAIL_CONCURRENCY", 8, 1, 256)?,
            mail_dead_letter_ttl: env.duration("MAIL_DEAD_LETTER_TTL", "7d", ms(1000))?,
            access_token_ttl: env.duration("ACCESS_TOKEN_EXPIRY", "15m", ms(1000))?,
            refresh_token_ttl: env.duration("REFRESH_TOKEN_EXPIRY", "7d", ms(1000))?,
            refresh_reuse_grace: env.duration("REFRESH_REUSE_GRACE", "10s", ms(0))?,
            jwt_issuer: env.string("JWT_ISSUER", "baatcheet-auth"),
            jwt_audience: env.string("JWT_AUDIENCE", "baatcheet"),
            jwt_private_key_pem: env.secret("JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE")?,
            jwt_key_id: env.get("JWT_KEY_ID"),
            auth_secret: env.secret("AUTH_SECRET", "AUTH_SECRET_FILE")?,
            code_ttl: env.duration("CODE_TTL", "300s", ms(1000))?,
            code_resend_cooldown: env.duration("CODE_RESEND_COOLDOWN", "60s", ms(0))?,
            code_max_attempts: env.number("CODE_MAX_ATTEMPTS", 5, 1, 100)?,
            code_max_sends_per_day: env.number("CODE_MAX_SENDS_PER_DAY", 10, 1, 1000)?,
            code_max_guesses_per_day: env.number("CODE_MAX_GUESSES_PER_DAY", 20, 1, 10_000)?,
            code_request_ttl: env.duration("CODE_REQUEST_TTL", "1h", ms(1000))?,
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
            login_max_attempts: env.number("LOGIN_MAX_ATTEMPTS", 10, 1, 10_000)?,
            login_window: env.duration("LOGIN_WINDOW", "15m", ms(1000))?,
            login_max_failures_per_ip: env.number(
                "LOGIN_MAX_FAILURES_PER_IP",
                100,
                1,
                1_000_000,
            )?,
            login_slowdown_after: env.number("LOGIN_SLOWDOWN_AFTER", 20, 1, 1_000_000)?,
            login_slowdown_max,
            max_sessions_per_user: env.number("MAX_SESSIONS_PER_USER", 50, 1, 10_000)?,
            trusted_proxies: networks(&env, "TRUSTED_PROXIES", "127.0.0.0/8,::1/128")?,
            argon2_memory_kib: env.number("ARGON2_MEMORY_KIB", 19456, 19456, 4 * 1024 * 1024)?,
            argon2_iterations: env.number("ARGON2_ITERATIONS", 2, 2, 100)?,
            argon2_parallelism: env.number("ARGON2_PARALLELISM", 1, 1, 64)?,
            hash_concurrency: env.number("HASH_CONCURRENCY", cores, 1, 1024)?,
            hash_queue: env.number("HASH_QUEUE", 64, 0, 100_000)?,
            log_format,
            shutdown_grace: env.duration("SHUTDOWN_GRACE", "10s", ms(0))?,
            mongo,
            redis,
            smtp,
            grpc_web_cors_origins,
        };
        Ok(config)
    }
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
    let ms = Duration::from_millis;
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
        server_selection_timeout: env.duration("MONGODB_SERVER_SELECTION_TIMEOUT", "2s", ms(10))?,
        connect_timeout: env.duration("MONGODB_CONNECT_TIMEOUT", "2s", ms(10))?,
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
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.sqlite_path, PathBuf::from("./data/auth.sqlite3"));
        assert_eq!(c.code_max_attempts, 5);
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
        assert_eq!(c.mongo.unwrap().database.as_deref(), Some("chat"));
        assert_eq!(c.redis.unwrap().timeout, Duration::from_secs(2));
        let smtp = c.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("smtp.mailtrap.io", 2525, SmtpTls::None)
        );
        let c = load(&[("SMTP_HOST", "relay"), ("SMTP_TLS", "tls")]).unwrap();
        assert_eq!(c.smtp.unwrap().port, 465);
        assert!(load(&[]).unwrap().smtp.is_none());
    }

    #[test]
    fn trusted_proxies() {
        let c = load(&[]).unwrap();
        let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(c.trusted_proxies.iter().any(|n| n.contains(&loopback)));
        let c = load(&[("TRUSTED_PROXIES", "10.1.0.0/16, 192.0.2.7")]).unwrap();
        let inside: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let single: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(c.trusted_proxies.iter().any(|n| n.contains(&inside)));
        assert!(c.trusted_proxies.iter().any(|n| n.contains(&single)));
        assert!(!c.trusted_proxies.iter().any(|n| n.contains(&loopback)));
        assert!(
            load(&[("TRUSTED_PROXIES", "none")])
                .unwrap()
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
        assert_eq!(c.access_token_ttl, Duration::from_secs(2));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30));
    }
}
