//! Reading configuration: variables from the environment (and `.env` when present) through a
//! lookup function, so tests hand a map instead. Every error names the variable; empty values
//! count as unset.

use std::time::Duration;

use secrecy::SecretString;

/// Why startup stopped: the variable and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// The longest duration any setting takes: ten years, far from overflowing millisecond
/// arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A lookup over fixed pairs, for tests and tools:
/// `Config::from_lookup(&env::pairs(&[("PORT", "0")]))`.
pub fn pairs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Loads `.env` (when present) into the process environment.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::new(".env", e.to_string())),
    }
}

/// The variables, through a lookup function.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The trimmed value, `None` when unset or empty.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, var: &'static str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    pub fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError::new(var, format!("{v:?} is not valid: {e}"))),
        }
    }

    /// A number within `min..=max`.
    pub fn number<T>(&self, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let n = self.parse(var, default)?;
        if n < min || n > max {
            return Err(ConfigError::new(
                var,
                format!("{n} is outside {min}..={max}"),
            ));
        }
        Ok(n)
    }

    /// `true`/`on`/`yes`/`1` or `false`/`off`/`no`/`0`.
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "on" | "yes") => Ok(true),
            Some("0" | "false" | "off" | "no") => Ok(false),
            Some(other) => Err(ConfigError::new(
                var,
                format!("{other:?} is not true/false or on/off"),
            )),
        }
    }

    /// A duration such as `15m`, `7d`, `300s`, `500ms`, or a plain number of seconds, at
    /// least `min` and at most [`MAX_DURATION`].
    pub fn duration(
        &self,
        var: &'static str,
        default: &str,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        let raw = self.string(var, default);
        let d = match raw.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(&raw).map_err(|e| {
                ConfigError::new(
                    var,
                    format!("{raw:?} is not a duration like 15m or 7d: {e}"),
                )
            })?,
        };
        if d < min {
            let what = if min == Duration::from_millis(1) {
                "must be longer than zero".to_owned()
            } else {
                format!(
                    "{raw:?} is shorter than {}",
                    humantime::format_duration(min)
                )
            };
            return Err(ConfigError::new(var, what));
        }
        if d > MAX_DURATION {
            return Err(ConfigError::new(
                var,
                format!(
                    "{raw:?} is longer than {}",
                    humantime::format_duration(MAX_DURATION)
                ),
            ));
        }
        Ok(d)
    }

    /// A secret given inline (`var`) or in a file (`file_var`); the inline one wins.
    pub fn secret(
        &self,
        var: &'static str,
        file_var: &'static str,
    ) -> Result<Option<SecretString>, ConfigError> {
        if let Some(v) = self.get(var) {
            return Ok(Some(SecretString::from(v)));
        }
        match self.get(file_var) {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| Some(SecretString::from(s)))
                .map_err(|e| ConfigError::new(file_var, format!("cannot read {path}: {e}"))),
        }
    }

    /// `LOG_FORMAT`: `pretty` (default) or `json`.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.string("LOG_FORMAT", "pretty").as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError::new(
                "LOG_FORMAT",
                format!("{other:?} is not pretty or json"),
            )),
        }
    }

    /// Comma-separated browser origins (`https://app.example.com`), each compared later with
    /// an `Origin` header byte for byte: lowercased, without a trailing slash or a default
    /// port. A path, credentials, another scheme or `*` is refused.
    pub fn origins(&self, var: &'static str) -> Result<Vec<http::HeaderValue>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Vec::new());
        };
        raw.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                origin(entry).ok_or_else(|| {
                    ConfigError::new(
                        var,
                        format!("{entry:?} is not an origin like https://app.example.com"),
                    )
                })
            })
            .collect()
    }
}

/// The normalized form of one origin, or `None` when it is not one.
fn origin(entry: &str) -> Option<http::HeaderValue> {
    let lowered = entry.trim_end_matches('/').to_ascii_lowercase();
    let uri = lowered.parse::<http::Uri>().ok()?;
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return None;
    }
    let default_port = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority().filter(|a| !a.as_str().contains('@'))?;
    let normalized = match authority.port_u16() {
        Some(port) if port == default_port => {
            format!("{}://{}", uri.scheme_str()?, authority.host())
        }
        _ => lowered.clone(),
    };
    http::HeaderValue::from_str(&normalized).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)], check: impl FnOnce(&Env<'_>)) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| map.get(k).cloned();
        check(&Env(&lookup));
    }

    #[test]
    fn durations_have_bounds_that_name_the_variable() {
        with(
            &[("A", "15m"), ("B", "0"), ("C", "11y"), ("D", "soon")],
            |env| {
                let ms = Duration::from_millis;
                assert_eq!(
                    env.duration("A", "1s", ms(0)).unwrap(),
                    Duration::from_secs(900)
                );
                assert_eq!(env.duration("B", "1s", ms(1)).unwrap_err().var, "B");
                assert_eq!(env.duration("C", "1s", ms(0)).unwrap_err().var, "C");
                assert_eq!(env.duration("D", "1s", ms(0)).unwrap_err().var, "D");
                assert_eq!(
                    env.duration("UNSET", "2s", ms(0)).unwrap(),
                    Duration::from_secs(2)
                );
            },
        );
    }

    #[test]
    fn origins_are_normalized_or_refused() {
        with(
            &[
                ("OK", "http://LOCALHOST:5173/, https://app.example.com:443"),
                ("PATH", "https://app.example.com/x"),
                ("STAR", "*"),
            ],
            |env| {
                assert_eq!(
                    env.origins("OK").unwrap(),
                    ["http://localhost:5173", "https://app.example.com"]
                );
                assert_eq!(env.origins("PATH").unwrap_err().var, "PATH");
                assert_eq!(env.origins("STAR").unwrap_err().var, "STAR");
                assert!(env.origins("UNSET").unwrap().is_empty());
            },
        );
    }

    #[test]
    fn flags_numbers_and_log_formats() {
        with(&[("F", "ON"), ("N", "0"), ("LOG_FORMAT", "xml")], |env| {
            assert!(env.flag("F", false).unwrap());
            assert_eq!(env.number("N", 5u32, 1, 10).unwrap_err().var, "N");
            assert_eq!(env.log_format().unwrap_err().var, "LOG_FORMAT");
        });
    }
}
