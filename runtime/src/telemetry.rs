//! The log subscriber: compact lines for people, JSON for machines.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::env::LogFormat;

/// Installs the global subscriber once (later calls, as in tests, are no-ops). `RUST_LOG`
/// overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_ansi(colour()))
            .try_init(),
    };
}

/// Colour only on a terminal (in files and pipes the escape codes are noise), and never when
/// `NO_COLOR` is set (<https://no-color.org>).
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
