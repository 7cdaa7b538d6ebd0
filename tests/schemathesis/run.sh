#!/usr/bin/env bash
# schemathesis (PyPI), a client nobody here wrote, generates requests from the gateway's own
# /openapi.json and sends them to a real gateway in front of a real auth service. It checks
# that no input makes a server error, and that every status, content type and body matches
# the document. hooks.py gives it a signed-in session (signed up and logged in through the
# gateway, like a person), so the signed-in routes are fuzzed past authentication. Prints
# schemathesis' summary and the answers of each signed-in operation; exits non-zero on a
# failure, when an operation got only 401/403, or when a signed-in operation never got a 2xx.
#
# Env: CARGO_TARGET_DIR (default ./target; the debug binaries), ST (the schemathesis CLI;
# default the venv of scripts/install-test-deps.sh), ST_MAX_EXAMPLES (default 25 per operation).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
ST="${ST:-$HOME/.cache/baatcheet-auth/venv/bin/st}"
if ! [[ -x "$ST" ]]; then
  echo "error: schemathesis is not installed: run scripts/install-test-deps.sh" >&2
  exit 1
fi
for bin in auth-service edge-gateway mail-code; do
  [[ -x "$TARGET_DIR/debug/$bin" ]] || { echo "error: $TARGET_DIR/debug/$bin is missing: cargo build --workspace" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port="$(free_port)"
http_port="$(free_port)"

# Limits high enough that generated traffic tests the API, not the limiter (and cannot lock
# hooks.py's own sign-up and logins, from the same address, out).
env -i PATH="$PATH" GRPC_ADDR="127.0.0.1:$grpc_port" DATA_DIR="$work/data" LOG_FORMAT=json \
  CODE_RESEND_COOLDOWN=0s LOGIN_MAX_ATTEMPTS=10000 HASH_QUEUE=1000 \
  LOGIN_MAX_FAILURES_PER_IP=1000000 CODE_REQUESTS_PER_IP_PER_HOUR=1000000 \
  CODE_GUESSES_PER_IP_PER_HOUR=1000000 \
  "$TARGET_DIR/debug/auth-service" >"$work/auth-service.log" 2>&1 &
pids+=($!)
env -i PATH="$PATH" HTTP_HOST=127.0.0.1 PORT="$http_port" AUTH_SERVICE_URL="http://127.0.0.1:$grpc_port" \
  RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 LOG_FORMAT=json \
  "$TARGET_DIR/debug/edge-gateway" >"$work/edge-gateway.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$http_port"
for _ in $(seq 1 150); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || {
  echo "error: the gateway did not become ready" >&2
  tail -n 30 "$work/auth-service.log" "$work/edge-gateway.log" >&2
  exit 1
}

rc=0
SCHEMATHESIS_HOOKS="$ROOT/tests/schemathesis/hooks.py" \
  ST_BASE_URL="$base" ST_MAIL_DIR="$work/data/mail" ST_MAIL_CODE="$TARGET_DIR/debug/mail-code" \
  ST_STATUS_LOG="$work/status.log" \
  timeout 600 "$ST" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --no-color 2>&1 | tee "$work/schemathesis.out" || rc=$?
if grep -q 'returned only 401/403' "$work/schemathesis.out"; then
  echo "error: operations returned only 401/403: the signed-in session did not reach them" >&2
  rc=1
fi
# Every operation documented with a token cookie must have answered a signed-in call with 2xx.
curl -fsS "$base/openapi.json" >"$work/openapi.json"
python3 - "$work/openapi.json" "$work/status.log" <<'PY' || rc=1
import collections, json, sys
doc, log = json.load(open(sys.argv[1])), open(sys.argv[2]).read().splitlines()
signed_in = sorted(
    f"{method.upper()} {path}"
    for path, item in doc["paths"].items()
    for method, op in item.items()
    if any({"accessCookie", "refreshCookie"} & set(r) for r in op.get("security", []))
)
answers = collections.defaultdict(collections.Counter)
for label, status, carried in (line.split("\t") for line in log):
    if carried == "1":
        answers[label][status[0] + "xx"] += 1
print("\nSigned-in calls per operation (status classes):")
missing = []
for label in signed_in:
    print(f"  {label:36} {dict(sorted(answers[label].items()))}")
    if not answers[label]["2xx"]:
        missing.append(label)
if missing:
    sys.exit(f"error: no 2xx to a signed-in call: {', '.join(missing)}")
PY
if ! kill -0 "${pids[0]}" 2>/dev/null || ! kill -0 "${pids[1]}" 2>/dev/null; then
  echo "error: a process died during the run" >&2
  tail -n 30 "$work/auth-service.log" "$work/edge-gateway.log" >&2
  rc=1
fi
exit $rc
