//! Configuration, in sections, read once from the environment (and `.env` when present) and
//! validated at startup. Every error names the variable. The reference of every key is in the crate README.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

pub use baatcheet_runtime::env::{ConfigError, LogFormat};
use baatcheet_runtime::env::{Env, load_dotenv};
use cookie::SameSite;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// The whole configuration of the gateway, in sections.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub browser: BrowserConfig,
    pub rate_limit: RateLimit,
}

/// The listeners, whom they believe, and how long requests may run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub host: IpAddr,
    pub port: u16,
    /// A listener of its own for GET /metrics (e.g. `127.0.0.1:9090`, reachable only by the
    /// scraper); `None` serves it on the API port, as suits development.
    pub metrics_addr: Option<SocketAddr>,
    /// How many proxies in front of the gateway append to `X-Forwarded-For`; 0 ignores the header.
    pub trust_proxy_hops: usize,
    /// Whole-request deadline at the edge.
    pub request_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Calls to the auth service in flight at most; one more is answered 503 SERVER_BUSY at
    /// once.
    pub max_in_flight: usize,
    pub log_format: LogFormat,
}

/// The auth service behind the gateway.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Where its gRPC API is, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// How many HTTP/2 connections calls are spread over, so that one connection lost takes
    /// only its share of the calls in flight with it.
    pub connections: usize,
    /// Deadline of one gRPC call.
    pub timeout: Duration,
    /// The gateway's service token (AUTH_SERVICE_TOKEN / AUTH_SERVICE_TOKEN_FILE), sent on every
    /// call as `x-service-authorization: Bearer <token>` so that a service with SERVICE_TOKENS
    /// believes the client address and user agent the gateway forwards. Checked at startup to
    /// make a valid header value; its `Debug` shows no part of it.
    pub service_token: Option<SecretString>,
}

/// What browsers get: cookies, the origins allowed to call with them, the page.
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// `production` turns on secure cookies and turns off the page unless said otherwise.
    pub production: bool,
    pub cookies: CookiePolicy,
    /// Origins allowed to call the API with credentials, normalized (`scheme://host[:port]`).
    pub cors_origins: Vec<HeaderValue>,
    /// Whether the static page is served at `/`.
    pub serve_page: bool,
}

/// Attributes of the token cookies.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub same_site: SameSite,
    pub secure: bool,
    pub domain: Option<String>,
}

/// Per client IP: a steady rate and a burst (a token bucket).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Each connection multiplexes up to the server's stream limit (hyper: 200); a few suffice.
const MAX_AUTH_SERVICE_CONNECTIONS: u32 = 64;

/// Longest service token accepted. Minted ones (`auth-service token new NAME`) are 47 bytes; the
/// bound keeps every call's metadata bounded (see `upstream::MAX_METADATA_BYTES`).
pub const MAX_SERVICE_TOKEN_BYTES: usize = 512;

impl Config {
    /// Loads `.env` (when present) into the process environment, then reads it.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads the configuration from any lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let production = production(&env)?;
        let cookies = cookie_policy(&env, production)?;
        let auth_service_url = env.string("AUTH_SERVICE_URL", "http://127.0.0.1:50051");
        match auth_service_url.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => {
                return Err(ConfigError::new(
                    "AUTH_SERVICE_URL",
                    format!(
                        "{auth_service_url:?} is not an http(s) URL like http://127.0.0.1:50051"
                    ),
                ));
            }
        }
        let log_format = env.log_format()?;
        let request_timeout = env.duration("REQUEST_TIMEOUT", "15s", Duration::from_millis(1))?;
        let grpc_timeout = env.duration("GRPC_TIMEOUT", "10s", Duration::from_millis(1))?;
        if grpc_timeout > request_timeout {
            return Err(ConfigError::new(
                "GRPC_TIMEOUT",
                "must not be longer than REQUEST_TIMEOUT, or the edge gives up first",
            ));
        }
        let auth_service_connections = env.number("AUTH_SERVICE_CONNECTIONS", 4, 1, u32::MAX)?;
        if auth_service_connections > MAX_AUTH_SERVICE_CONNECTIONS {
            return Err(ConfigError::new(
                "AUTH_SERVICE_CONNECTIONS",
                format!("must be at most {MAX_AUTH_SERVICE_CONNECTIONS}"),
            ));
        }
        let host = env.parse("HTTP_HOST", IpAddr::from([127, 0, 0, 1]))?;
        let port = env.parse("PORT", 8080)?;
        let metrics_addr = match env.get("METRICS_ADDR") {
            None => None,
            Some(raw) => Some(raw.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "METRICS_ADDR",
                    format!("{raw:?} is not an address like 127.0.0.1:9090"),
                )
            })?),
        };
        if metrics_addr.is_some_and(|m| m.port() != 0 && m == SocketAddr::new(host, port)) {
            return Err(ConfigError::new(
                "METRICS_ADDR",
                "must differ from HTTP_HOST:PORT, or /metrics is public again",
            ));
        }
        Ok(Config {
            server: ServerConfig {
                host,
                port,
                metrics_addr,
                trust_proxy_hops: trust_proxy(&env)?,
                request_timeout,
                shutdown_grace: env.duration("SHUTDOWN_GRACE", "10s", Duration::from_millis(1))?,
                max_in_flight: env.number::<usize>(
                    "MAX_IN_FLIGHT",
                    crate::pool::DEFAULT_MAX_IN_FLIGHT,
                    1,
                    1_000_000,
                )?,
                log_format,
            },
            upstream: UpstreamConfig {
                url: auth_service_url,
                connections: auth_service_connections as usize,
                timeout: grpc_timeout,
                service_token: service_token(&env)?,
            },
            browser: BrowserConfig {
                production,
                cookies,
                cors_origins: env.origins("CORS_ORIGINS")?,
                serve_page: env.flag("SERVE_PAGE", !production)?,
            },
            rate_limit: RateLimit {
                per_second: env.number("RATE_LIMIT_PER_SECOND", 20, 1, u32::MAX)?,
                burst: env.number("RATE_LIMIT_BURST", 100, 1, u32::MAX)?,
            },
        })
    }
}

impl BrowserConfig {
    /// Whether `origin` (an `Origin` header) is on CORS_ORIGINS.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }
}

/// `APP_ENV` wins over `NODE_ENV` (the seed's name); anything but `production` is development.
fn production(env: &Env<'_>) -> Result<bool, ConfigError> {
    let (var, value) = match env.get("APP_ENV") {
        Some(v) => ("APP_ENV", v),
        None => ("NODE_ENV", env.string("NODE_ENV", "development")),
    };
    match value.to_ascii_lowercase().as_str() {
        "production" | "prod" => Ok(true),
        "development" | "dev" | "test" => Ok(false),
        other => Err(ConfigError::new(
            var,
            format!("{other:?} is not production, development or test"),
        )),
    }
}

fn cookie_policy(env: &Env<'_>, production: bool) -> Result<CookiePolicy, ConfigError> {
    let same_site = match env
        .string("COOKIE_SAMESITE", "Strict")
        .to_ascii_lowercase()
        .as_str()
    {
        "strict" => SameSite::Strict,
        "lax" => SameSite::Lax,
        "none" => SameSite::None,
        other => {
            return Err(ConfigError::new(
                "COOKIE_SAMESITE",
                format!("{other:?} is not Strict, Lax or None"),
            ));
        }
    };
    let secure = env.flag("COOKIE_SECURE", production)?;
    // Browsers drop a SameSite=None cookie that is not Secure, so None forces Secure.
    let secure = secure || same_site == SameSite::None;
    let domain = env.get("COOKIE_DOMAIN");
    if let Some(d) = domain.as_ref().filter(|d| d.contains([';', ',', ' ', '/'])) {
        return Err(ConfigError::new(
            "COOKIE_DOMAIN",
            format!("{d:?} is not a domain"),
        ));
    }
    Ok(CookiePolicy {
        same_site,
        secure,
        domain,
    })
}

/// AUTH_SERVICE_TOKEN, else the content of the file AUTH_SERVICE_TOKEN_FILE names (surrounding
/// whitespace, such as the file's last newline, is dropped). The error names the variable it
/// came from and never shows the token.
fn service_token(env: &Env<'_>) -> Result<Option<SecretString>, ConfigError> {
    const VAR: &str = "AUTH_SERVICE_TOKEN";
    const FILE_VAR: &str = "AUTH_SERVICE_TOKEN_FILE";
    let Some(secret) = env.secret(VAR, FILE_VAR)? else {
        return Ok(None);
    };
    let var = if env.get(VAR).is_some() {
        VAR
    } else {
        FILE_VAR
    };
    let token = secret.expose_secret().trim();
    let problem = if token.is_empty() {
        Some("the token is empty".to_owned())
    } else if token.chars().any(char::is_whitespace) {
        Some("the token contains whitespace".to_owned())
    } else if token.len() > MAX_SERVICE_TOKEN_BYTES {
        Some(format!(
            "the token is longer than {MAX_SERVICE_TOKEN_BYTES} bytes"
        ))
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Some("the token must be visible ASCII characters (a header value)".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ConfigError::new(
            var,
            format!("{problem}; use the token `auth-service token new NAME` printed"),
        )),
        None => Ok(Some(SecretString::from(token.to_owned()))),
    }
}

/// `off`/`false`/`0` (default), `on`/`true` (one proxy), or a number of proxies.
fn trust_proxy(env: &Env<'_>) -> Result<usize, ConfigError> {
    match env
        .get("TRUST_PROXY")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("off" | "false" | "no") => Ok(0),
        Some("on" | "true" | "yes") => Ok(1),
        Some(n) => n.parse().map_err(|_| {
            ConfigError::new(
                "TRUST_PROXY",
                format!("{n:?} is not on/off or a number of proxies"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(&baatcheet_runtime::env::pairs(pairs))
    }

    #[test]
    fn defaults_are_development() {
        let c = load(&[]).unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server.host.to_string(), "127.0.0.1");
        assert_eq!(c.upstream.url, "http://127.0.0.1:50051");
        assert_eq!(c.browser.cookies.same_site, SameSite::Strict);
        assert!(!c.browser.cookies.secure);
        assert!(c.browser.serve_page);
        assert_eq!(c.server.trust_proxy_hops, 0);
        assert!(c.browser.cors_origins.is_empty());
        assert_eq!(c.server.metrics_addr, None);
        assert_eq!(c.upstream.connections, 4);
    }

    #[test]
    fn metrics_get_a_listener_of_their_own() {
        let c = load(&[("METRICS_ADDR", "127.0.0.1:9090")]).unwrap();
        assert_eq!(
            c.server.metrics_addr,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        let err = load(&[
            ("METRICS_ADDR", "127.0.0.1:8080"),
            ("HTTP_HOST", "127.0.0.1"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "METRICS_ADDR");
    }

    #[test]
    fn production_turns_on_secure_cookies_and_off_the_page() {
        for var in ["NODE_ENV", "APP_ENV"] {
            let c = load(&[(var, "production")]).unwrap();
            assert!(c.browser.production && c.browser.cookies.secure && !c.browser.serve_page);
        }
        let c = load(&[("NODE_ENV", "production"), ("COOKIE_SECURE", "off")]).unwrap();
        assert!(!c.browser.cookies.secure);
    }

    #[test]
    fn same_site_none_forces_secure() {
        let c = load(&[("COOKIE_SAMESITE", "None"), ("COOKIE_SECURE", "false")]).unwrap();
        assert!(c.browser.cookies.secure);
    }

    #[test]
    fn origins_are_normalized() {
        let c = load(&[(
            "CORS_ORIGINS",
            "http://LOCALHOST:5173/, https://app.example.com, https://b.example:443, http://c.example:80",
        )])
        .unwrap();
        assert_eq!(
            c.browser.cors_origins,
            [
                "http://localhost:5173",
                "https://app.example.com",
                "https://b.example",
                "http://c.example"
            ]
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("PORT", "eighty"),
            ("METRICS_ADDR", "9090"),
            ("HTTP_HOST", "everywhere"),
            ("AUTH_SERVICE_URL", "grpc:nowhere"),
            ("COOKIE_SAMESITE", "sometimes"),
            ("COOKIE_SECURE", "maybe"),
            ("CORS_ORIGINS", "*"),
            ("CORS_ORIGINS", "https://app.example.com/path"),
            ("CORS_ORIGINS", "https://user@app.example.com"),
            ("TRUST_PROXY", "everyone"),
            ("RATE_LIMIT_BURST", "0"),
            ("AUTH_SERVICE_CONNECTIONS", "0"),
            ("AUTH_SERVICE_CONNECTIONS", "65"),
            ("REQUEST_TIMEOUT", "soon"),
            ("NODE_ENV", "staging"),
            ("LOG_FORMAT", "xml"),
            ("AUTH_SERVICE_TOKEN", "bcs_two words"),
            ("AUTH_SERVICE_TOKEN", "bcs_\u{e9}t\u{e9}"),
            ("AUTH_SERVICE_TOKEN", "bcs_tab\there"),
            ("AUTH_SERVICE_TOKEN_FILE", "/nonexistent/gateway.token"),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().contains(var));
        }
        let err = load(&[("GRPC_TIMEOUT", "20s"), ("REQUEST_TIMEOUT", "5s")]).unwrap_err();
        assert_eq!(err.var, "GRPC_TIMEOUT");
        let long = "t".repeat(MAX_SERVICE_TOKEN_BYTES + 1);
        let err = load(&[("AUTH_SERVICE_TOKEN", &long)]).unwrap_err();
        assert_eq!(err.var, "AUTH_SERVICE_TOKEN");
    }

    #[test]
    fn the_service_token_is_read_inline_or_from_a_file_and_never_shown() {
        assert!(load(&[]).unwrap().upstream.service_token.is_none());
        let c = load(&[("AUTH_SERVICE_TOKEN", "bcs_secretvalue")]).unwrap();
        let token = c.upstream.service_token.as_ref().unwrap();
        assert_eq!(token.expose_secret(), "bcs_secretvalue");
        assert!(!format!("{c:?}").contains("secretvalue"), "{c:?}");
        let err = load(&[("AUTH_SERVICE_TOKEN", "bcs_secret value")]).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.token");
        std::fs::write(&file, "bcs_fromfile\n").unwrap();
        let path = file.to_str().unwrap();
        let c = load(&[("AUTH_SERVICE_TOKEN_FILE", path)]).unwrap();
        assert_eq!(
            c.upstream.service_token.unwrap().expose_secret(),
            "bcs_fromfile"
        );
        // The inline one wins, as for every secret.
        let c = load(&[
            ("AUTH_SERVICE_TOKEN_FILE", path),
            ("AUTH_SERVICE_TOKEN", "bcs_inline"),
        ])
        .unwrap();
        assert_eq!(
            c.upstream.service_token.unwrap().expose_secret(),
            "bcs_inline"
        );
        for bad in ["", " \n", "bcs_one\nbcs_two\n"] {
            std::fs::write(&file, bad).unwrap();
            let err = load(&[("AUTH_SERVICE_TOKEN_FILE", path)]).unwrap_err();
            assert_eq!(err.var, "AUTH_SERVICE_TOKEN_FILE", "{bad:?}");
        }
    }
}
