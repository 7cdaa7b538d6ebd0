#!/usr/bin/env bash
# The browser test: Debian's Chromium, driven by playwright-core (tests/tools), against the real
# auth-service and edge-gateway binaries. Prints node's test summary; exits non-zero on failure.
#
# Env: CARGO_TARGET_DIR (default ./target; the debug binaries are used, built here if missing),
# AUTH_SERVICE_BIN / EDGE_GATEWAY_BIN / MAIL_CODE_BIN (other binaries), CHROMIUM (default /usr/bin/chromium),
# KEEP_BROWSER_TEST_DIR=1 (keep the temp folder with logs and mail).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac

# Debian's Chromium: playwright cannot download a browser here.
if ! [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing chromium with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: Chromium is required: apt-get install -y chromium" >&2
    exit 1
  fi
fi

# playwright-core from tests/tools (package.json and package-lock.json there).
if ! [[ -f tests/tools/node_modules/playwright-core/package.json ]]; then
  npm ci --prefix tests/tools --no-audit --no-fund
fi

# The binaries under test (cargo only rebuilds what changed).
if [[ -z "${AUTH_SERVICE_BIN:-}${EDGE_GATEWAY_BIN:-}" ]]; then
  cargo build --locked -p auth-service -p edge-gateway -p baatcheet-test-support --bins
fi

exec node --test --test-reporter=spec tests/browser/
