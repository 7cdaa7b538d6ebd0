//! Structured logs with `tracing`. Secrets never reach a log: passwords, codes and tokens are
//! wrapped types whose Debug prints `<redacted>`, and flows skip them in their spans.

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    baatcheet_runtime::telemetry::init(format, "info,h2=warn,tower=warn,hyper=warn");
}
