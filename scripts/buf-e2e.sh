#!/usr/bin/env bash
# End-to-end check of the gRPC contract with a client nobody here wrote: `buf curl`, resolving
# every method through server reflection (no --schema), against a freshly started auth-service.
#
# Flow: Register (registrationId) -> code from the .eml -> VerifyRegistration (without and with
# the registrationId) -> GetCurrentUser -> Login -> ListSessions -> RefreshSession -> replay of
# the old refresh token inside the grace window (same refresh token back) and after it ->
# ValidateAccessToken -> the internal service with a minted service token (refused without it;
# GetUser, LookupUsers after UpdateProfile, Heartbeat, GetPresence, WatchEvents from the start)
# -> GetJwks (gRPC and gRPC-Web over HTTP/1.1) -> Logout ->
# RequestPasswordReset (resetId) -> ResetPassword -> Login with the new password -> invalid Register.
#
# Env:
#   AUTH_SERVICE_BIN  the server binary (default: ${CARGO_TARGET_DIR:-./target}/debug/auth-service)
#   MAIL_CODE_BIN     the mail reader (default: ${CARGO_TARGET_DIR:-./target}/debug/mail-code)
#   BUF               the buf binary (default: tests/tools/node_modules/.bin/buf)
#   KEEP_WORK=1       keep the temp folder (data, mail, server log) for inspection
#
# Prints `ok - <name>` / `not ok - <name>` per check and ends with `N passed, M failed`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUF="${BUF:-$ROOT/tests/tools/node_modules/.bin/buf}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="${AUTH_SERVICE_BIN:-$TARGET_DIR/debug/auth-service}"
MAIL_CODE="${MAIL_CODE_BIN:-$TARGET_DIR/debug/mail-code}"

CALL_TIMEOUT=30   # seconds for any single buf curl call
READY_TIMEOUT=30  # seconds for the server to answer SERVING
MAIL_TIMEOUT=15   # seconds for the verification email to land in the mail folder
GRACE_SECONDS=3   # REFRESH_REUSE_GRACE of the server under test
SVC=baatcheet.auth.v1.AuthService
INTERNAL=baatcheet.auth.v1.InternalAuthService

die() { echo "buf-e2e: $*" >&2; exit 2; }
[[ -x "$BUF" ]] || die "buf not found at $BUF; run: npm ci --prefix tests/tools"
[[ -x "$BIN" ]] || die "auth-service binary not found at $BIN; run: cargo build -p auth-service (or set AUTH_SERVICE_BIN)"
[[ -x "$MAIL_CODE" ]] || die "mail-code not found at $MAIL_CODE; run: cargo build -p baatcheet-test-support (or set MAIL_CODE_BIN)"
command -v python3 >/dev/null || die "python3 is required"
command -v jq >/dev/null || die "jq is required (apt-get install jq)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/buf-e2e.XXXXXX")"
DATA_DIR="$WORK/data"
MAIL_DIR="$DATA_DIR/mail"
LOG="$WORK/server.log"
mkdir -p "$DATA_DIR"
SERVER_PID=""

show_log() {
  echo "# --- server log (last 60 lines of $LOG) ---" >&2
  tail -n 60 "$LOG" 2>/dev/null | sed 's/^/# /' >&2 || true
}

cleanup() {
  local status=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then
    echo "# kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() {
  FAILED=$((FAILED + 1))
  echo "not ok - $1"
  shift
  local line
  for line in "$@"; do printf '#   %s\n' "$line"; done
}
# check NAME DETAIL CONDITION...: runs the condition, reports ok/not ok.
check() {
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name"; else not_ok "$name" "$detail"; fi
}

# ---------------------------------------------------------------------------------------------
# Helpers (python3): decode a buf curl error, read the code from the mail folder, JWT header.
# ---------------------------------------------------------------------------------------------

# Prints the error that buf curl wrote on stderr as one JSON object:
# {"code": "...", "message": "...", "reason": "...", "fields": ["email", ...]}.
# buf curl does not know google.rpc.* (they are not in the reflected schema), so details come as
# {"type": ..., "value": <base64 protobuf>}; they are decoded here with a minimal wire parser.
decode_error() {
  python3 - "$1" <<'PY'
import base64, json, sys

def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]; i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7

def fields(buf):
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(num, []).append(val)
    return out

def b64(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
start, end = text.find("{"), text.rfind("}")
if start < 0 or end < start:
    print(json.dumps({"code": None, "raw": text[-500:]}))
    sys.exit(0)
err = json.loads(text[start:end + 1])
result = {"code": err.get("code"), "message": err.get("message"), "reason": None, "fields": []}
for d in err.get("details", []):
    t = d.get("type", "").split("/")[-1]
    debug = d.get("debug")
    if t == "google.rpc.ErrorInfo":
        if isinstance(debug, dict) and "reason" in debug:
            result["reason"] = debug["reason"]
        else:
            result["reason"] = fields(b64(d["value"])).get(1, [b""])[0].decode()
    elif t == "google.rpc.BadRequest":
        if isinstance(debug, dict) and "fieldViolations" in debug:
            result["fields"] += [v.get("field") for v in debug["fieldViolations"]]
        else:
            for v in fields(b64(d["value"])).get(1, []):
                result["fields"].append(fields(v).get(1, [b""])[0].decode())
print(json.dumps(result))
PY
}

# Prints the 6-digit code of the newest .eml in the mail folder $1 addressed to $2; exit 1 if
# none yet. The reader of the Rust tests (test-support's `mail-code`), so both read mail alike.
read_code() {
  "$MAIL_CODE" "$1" "$2"
}

# Prints the `kid` of a JWT's header.
jwt_kid() {
  python3 - "$1" <<'PY'
import base64, json, sys
h = sys.argv[1].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4))).get("kid", ""))
PY
}

# ---------------------------------------------------------------------------------------------
# buf curl wrappers. Each sets RC, OUT (stdout: the response JSON) and ERRF (file with stderr).
# ---------------------------------------------------------------------------------------------
N=0
OUT=""
RC=0
ERRF=""
_run() {
  N=$((N + 1))
  ERRF="$WORK/call-$N.err"
  set +e
  OUT="$(timeout "$CALL_TIMEOUT" "$BUF" curl --connect-timeout 5 "$@" 2>"$ERRF")"
  RC=$?
  set -e
}
# rpc METHOD JSON [extra buf curl args]: gRPC over h2c.
rpc() {
  local method=$1 body=$2
  shift 2
  _run --protocol grpc --http2-prior-knowledge "$@" -d "$body" "$BASE/$method"
}
err_text() { tail -c 600 "$ERRF" 2>/dev/null | tr '\n' ' '; }
field() { jq -r "$1 // empty" <<<"$OUT"; }

# expect_error NAME CODE REASON [FIELD...]: the last call must have failed with that gRPC code,
# that ErrorInfo.reason (skipped when REASON is "-") and BadRequest violations naming each FIELD.
expect_error() {
  local name=$1 code=$2 reason=$3
  shift 3
  if [[ $RC -eq 0 ]]; then
    not_ok "$name" "expected $code/$reason, but the call succeeded: $(tr '\n' ' ' <<<"$OUT")"
    return
  fi
  if [[ $RC -eq 124 ]]; then
    not_ok "$name" "buf curl timed out after ${CALL_TIMEOUT}s"
    return
  fi
  local got
  got="$(decode_error "$ERRF")"
  local problems=()
  [[ "$(jq -r '.code' <<<"$got")" == "$code" ]] || problems+=("code: want $code")
  if [[ "$reason" != "-" ]]; then
    [[ "$(jq -r '.reason' <<<"$got")" == "$reason" ]] || problems+=("reason: want $reason")
  fi
  local f
  for f in "$@"; do
    jq -e --arg f "$f" '.fields | index($f) != null' <<<"$got" >/dev/null || problems+=("no violation for field $f")
  done
  if [[ ${#problems[@]} -eq 0 ]]; then
    ok "$name"
  else
    not_ok "$name" "${problems[*]}" "got: $got (exit $RC)"
  fi
}

# expect_ok NAME JQ_CONDITION: the last call succeeded and the response satisfies the condition.
expect_ok() {
  local name=$1 cond=$2
  if [[ $RC -ne 0 ]]; then
    not_ok "$name" "call failed (exit $RC): $(err_text)"
  elif ! jq -e "$cond" <<<"$OUT" >/dev/null 2>&1; then
    not_ok "$name" "response does not satisfy: $cond" "response: $(tr '\n' ' ' <<<"$OUT" | head -c 800)"
  else
    ok "$name"
  fi
}

# All of the run in one function, called on the last line: bash parses the whole file before
# running it, so editing this script while it runs cannot break the run in progress.
main() {
  # ---------------------------------------------------------------------------------------------
  # Start the server.
  # ---------------------------------------------------------------------------------------------
  PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  BASE="http://127.0.0.1:$PORT"
  echo "# auth-service: $BIN"
  echo "# buf: $BUF ($("$BUF" --version 2>/dev/null))"
  echo "# listening on 127.0.0.1:$PORT, data in $DATA_DIR"

  # A service credential for the internal service, minted by the binary itself.
  SERVICE_TOKEN="$("$BIN" token new e2e 2>"$WORK/token-line")"
  SERVICE_LINE="$(grep '^e2e:' "$WORK/token-line")"

  # Run from the temp folder so a developer's .env in the repo is not picked up; unset the
  # variables that would switch to backends this test does not start.
  (
    cd "$WORK"
    exec env -u MONGODB_URI -u REDIS_URL -u SMTP_HOST -u MAIL_TRAP_HOST -u SQLITE_PATH -u MAIL_DIR \
      -u JWT_PRIVATE_KEY -u JWT_PRIVATE_KEY_FILE -u AUTH_SECRET -u AUTH_SECRET_FILE \
      GRPC_ADDR="127.0.0.1:$PORT" DATA_DIR="$DATA_DIR" REFRESH_REUSE_GRACE="${GRACE_SECONDS}s" \
      SERVICE_TOKENS="$SERVICE_LINE" \
      LOG_FORMAT=json SHUTDOWN_GRACE=1s "$BIN"
  ) >"$LOG" 2>&1 &
  SERVER_PID=$!

  deadline=$((SECONDS + READY_TIMEOUT))
  serving=0
  while ((SECONDS < deadline)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      not_ok "server starts" "auth-service exited before answering health checks"
      show_log
      echo "$PASSED passed, $FAILED failed"
      exit 1
    fi
    _run --protocol grpc --http2-prior-knowledge --timeout 2s "$BASE/grpc.health.v1.Health/Check"
    if [[ $RC -eq 0 && "$(field .status)" == SERVING ]]; then
      serving=1
      break
    fi
    sleep 0.2
  done
  if [[ $serving -ne 1 ]]; then
    not_ok "health check answers SERVING within ${READY_TIMEOUT}s" "last answer (exit $RC): $OUT $(err_text)"
    show_log
    echo "$PASSED passed, $FAILED failed"
    exit 1
  fi
  ok "health check answers SERVING (grpc.health.v1 via reflection)"

  # ---------------------------------------------------------------------------------------------
  # The flow.
  # ---------------------------------------------------------------------------------------------
  SUFFIX="$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
  USERNAME="e2e_$SUFFIX"
  EMAIL="E2E.$SUFFIX@Example.COM"
  EMAIL_LC="$(tr '[:upper:]' '[:lower:]' <<<"$EMAIL")"
  PASSWORD="correct horse battery staple $SUFFIX"

  # Register.
  rpc "$SVC/Register" "$(jq -nc --arg u "$USERNAME" --arg e "$EMAIL" --arg p "$PASSWORD" \
    '{username: $u, email: $e, password: $p}')"
  expect_ok "Register starts a pending registration with a registrationId" \
    ".delivery.email == \"$EMAIL_LC\" and (.delivery.attemptsRemaining > 0)
     and (.registrationId | test(\"^[A-Za-z0-9_-]{22}$\"))"
  REGISTRATION_ID="$(field .registrationId)"

  # Code from the mail folder.
  CODE=""
  deadline=$((SECONDS + MAIL_TIMEOUT))
  while ((SECONDS < deadline)); do
    if CODE="$(read_code "$MAIL_DIR" "$EMAIL_LC")"; then break; fi
    CODE=""
    sleep 0.2
  done
  if [[ "$CODE" =~ ^[0-9]{6}$ ]]; then
    ok "verification email (.eml, text/plain part) carries a 6-digit code"
  else
    not_ok "verification email (.eml, text/plain part) carries a 6-digit code" \
      "no .eml for $EMAIL_LC with a 6-digit code in $MAIL_DIR within ${MAIL_TIMEOUT}s: $(ls "$MAIL_DIR" 2>&1 | tr '\n' ' ')"
  fi

  # VerifyRegistration: the code alone is not enough, the registrationId binds it to its caller.
  rpc "$SVC/VerifyRegistration" "$(jq -nc --arg e "$EMAIL" --arg c "$CODE" '{email: $e, code: $c}')"
  expect_error "VerifyRegistration without the registrationId: REGISTRATION_ID_REQUIRED" \
    invalid_argument REGISTRATION_ID_REQUIRED registration_id
  rpc "$SVC/VerifyRegistration" "$(jq -nc --arg e "$EMAIL" --arg c "$CODE" \
    '{email: $e, code: $c, registrationId: "AAAAAAAAAAAAAAAAAAAAAA"}')"
  expect_error "VerifyRegistration with an unknown registrationId: REGISTRATION_NOT_FOUND" \
    not_found REGISTRATION_NOT_FOUND
  rpc "$SVC/VerifyRegistration" "$(jq -nc --arg e "$EMAIL" --arg c "$CODE" --arg r "$REGISTRATION_ID" \
    '{email: $e, code: $c, registrationId: $r}')"
  expect_ok "VerifyRegistration creates the user and a session" \
    ".user.username == \"$USERNAME\" and .user.email == \"$EMAIL_LC\" and (.user.id | length > 0)
     and (.tokens.accessToken | length > 0) and (.tokens.refreshToken | length > 0)
     and .tokens.tokenType == \"Bearer\" and (.tokens.sessionId | length > 0)"
  USER_ID="$(field .user.id)"
  ACCESS1="$(field .tokens.accessToken)"
  REFRESH1="$(field .tokens.refreshToken)"
  SESSION1="$(field .tokens.sessionId)"

  # GetCurrentUser.
  rpc "$SVC/GetCurrentUser" '{}' -H "Authorization: Bearer $ACCESS1"
  expect_ok "GetCurrentUser with the bearer access token" \
    ".user.id == \"$USER_ID\" and .user.username == \"$USERNAME\" and .user.email == \"$EMAIL_LC\""

  rpc "$SVC/GetCurrentUser" '{}'
  expect_error "GetCurrentUser without a token is unauthenticated" unauthenticated -

  # Login by username.
  rpc "$SVC/Login" "$(jq -nc --arg i "$USERNAME" --arg p "$PASSWORD" '{identifier: $i, password: $p}')"
  expect_ok "Login by username starts a second session" \
    ".user.id == \"$USER_ID\" and (.tokens.accessToken | length > 0) and (.tokens.refreshToken | length > 0)
     and (.tokens.sessionId | length > 0) and .tokens.sessionId != \"$SESSION1\""
  ACCESS2="$(field .tokens.accessToken)"
  REFRESH2="$(field .tokens.refreshToken)"
  SESSION2="$(field .tokens.sessionId)"

  rpc "$SVC/Login" "$(jq -nc --arg i "$USERNAME" '{identifier: $i, password: "wrong password!"}')"
  expect_error "Login with a wrong password is unauthenticated" unauthenticated -

  # ListSessions.
  rpc "$SVC/ListSessions" '{}' -H "Authorization: Bearer $ACCESS2"
  expect_ok "ListSessions lists 2 sessions" '(.sessions | length) == 2'
  expect_ok "ListSessions marks the caller's session as current" \
    "[.sessions[] | select(.current == true) | .id] == [\"$SESSION2\"]
     and ([.sessions[].id] | sort) == ([\"$SESSION1\", \"$SESSION2\"] | sort)"

  # RefreshSession.
  rpc "$SVC/RefreshSession" "$(jq -nc --arg r "$REFRESH2" '{refreshToken: $r}')"
  expect_ok "RefreshSession rotates the refresh token" \
    ".tokens.sessionId == \"$SESSION2\" and (.tokens.accessToken | length > 0)
     and (.tokens.refreshToken | length > 0) and .tokens.refreshToken != \"$REFRESH2\""
  ACCESS3="$(field .tokens.accessToken)"
  REFRESH3="$(field .tokens.refreshToken)"

  # Replay of the old refresh token inside the grace window: the same refresh token the first
  # use got (the session keeps one live refresh token) and a fresh access token.
  rpc "$SVC/RefreshSession" "$(jq -nc --arg r "$REFRESH2" '{refreshToken: $r}')"
  expect_ok "RefreshSession replayed inside the grace window returns the same refresh token" \
    ".tokens.sessionId == \"$SESSION2\" and .tokens.refreshToken == \"$REFRESH3\"
     and (.tokens.accessToken | length > 0) and .tokens.accessToken != \"$ACCESS3\""

  # Replay of the old refresh token after the grace window.
  sleep $((GRACE_SECONDS + 1))
  rpc "$SVC/RefreshSession" "$(jq -nc --arg r "$REFRESH2" '{refreshToken: $r}')"
  expect_error "RefreshSession with the old refresh token after the grace window: REFRESH_TOKEN_REUSED" \
    unauthenticated REFRESH_TOKEN_REUSED

  # Reuse ends that session: its newest tokens stop working too.
  rpc "$SVC/ValidateAccessToken" "$(jq -nc --arg t "$ACCESS3" '{accessToken: $t}')"
  expect_error "ValidateAccessToken rejects the access token of the session ended by reuse" unauthenticated -
  rpc "$SVC/RefreshSession" "$(jq -nc --arg r "$REFRESH3" '{refreshToken: $r}')"
  expect_error "RefreshSession rejects the newest refresh token of the session ended by reuse" unauthenticated -

  # ValidateAccessToken of the session that is still alive (the one from VerifyRegistration).
  rpc "$SVC/ValidateAccessToken" "$(jq -nc --arg t "$ACCESS1" '{accessToken: $t}')"
  expect_ok "ValidateAccessToken returns the claims" \
    ".claims.sub == \"$USER_ID\" and .claims.sid == \"$SESSION1\" and (.claims.iss | length > 0)
     and (.claims.aud | length > 0) and (.claims.jti | length > 0) and (.claims.exp | length > 0)"

  # The internal service, through reflection, with the service token in `authorization`.
  local svc_auth="Authorization: Bearer $SERVICE_TOKEN"
  rpc "$INTERNAL/GetUser" "$(jq -nc --arg u "$USER_ID" '{userId: $u}')"
  expect_error "InternalAuthService.GetUser without a service token: UNAUTHENTICATED" \
    unauthenticated UNAUTHENTICATED
  rpc "$INTERNAL/GetUser" "$(jq -nc --arg u "$USER_ID" '{userId: $u}')" -H "Authorization: Bearer $ACCESS1"
  expect_error "InternalAuthService.GetUser with a user's access token: UNAUTHENTICATED" \
    unauthenticated UNAUTHENTICATED
  rpc "$INTERNAL/GetUser" "$(jq -nc --arg u "$USER_ID" '{userId: $u}')" -H "$svc_auth"
  expect_ok "InternalAuthService.GetUser with the service token: the public view, no email" \
    ".user.id == \"$USER_ID\" and .user.username == \"$USERNAME\" and (.user | has(\"email\") | not)"
  rpc "$SVC/UpdateProfile" '{"bio":"from buf curl","updateMask":"bio"}' -H "Authorization: Bearer $ACCESS1"
  expect_ok "UpdateProfile with a field mask changes the bio" '.user.bio == "from buf curl"'
  rpc "$INTERNAL/LookupUsers" "$(jq -nc --arg u "$USERNAME" '{usernames: [($u | ascii_upcase), "nobody_here"]}')" -H "$svc_auth"
  expect_ok "LookupUsers finds the user case-insensitively and lists the missing name" \
    ".users[0].id == \"$USER_ID\" and .users[0].bio == \"from buf curl\" and .missingUsernames == [\"nobody_here\"]"
  rpc "$INTERNAL/Heartbeat" "$(jq -nc --arg u "$USER_ID" --arg s "$SESSION1" '{userId: $u, sessionId: $s, status: "USER_STATUS_AWAY"}')" -H "$svc_auth"
  expect_ok "Heartbeat of the session: away" '.presence.status == "USER_STATUS_AWAY"'
  rpc "$INTERNAL/GetPresence" "$(jq -nc --arg u "$USER_ID" '{userIds: [$u]}')" -H "$svc_auth"
  expect_ok "GetPresence of the user: away, with a last-seen time" \
    '.presences[0].status == "USER_STATUS_AWAY" and (.presences[0].lastSeenTime | length > 0)'
  set +e
  OUT="$(timeout 3 "$BUF" curl --protocol grpc --http2-prior-knowledge -H "$svc_auth" \
    -d '{"sinceEventId":"0"}' "$BASE/$INTERNAL/WatchEvents" 2>"$WORK/watch.err")"
  RC=$?
  set -e
  if [[ $RC -eq 124 ]] && jq -se --arg u "$USER_ID" --arg s "$SESSION1" \
    'map(.event) | map(select(.userId == $u)) | map(.type) as $t
     | ($t | index("EVENT_TYPE_USER_CREATED")) != null and ($t | index("EVENT_TYPE_SESSION_CREATED")) != null
       and ($t | index("EVENT_TYPE_USER_UPDATED")) != null and ($t | index("EVENT_TYPE_PRESENCE_CHANGED")) != null' \
    <<<"$OUT" >/dev/null 2>&1; then
    ok "WatchEvents streams the user's events from the start and stays open"
  else
    not_ok "WatchEvents streams the user's events from the start and stays open" \
      "exit $RC: $(tr '\n' ' ' <<<"$OUT" | head -c 400) $(tail -c 300 "$WORK/watch.err")"
  fi

  # GetJwks.
  rpc "$SVC/GetJwks" '{}'
  expect_ok "GetJwks returns one OKP Ed25519 key" \
    '(.keys | length) == 1 and .keys[0].kty == "OKP" and .keys[0].crv == "Ed25519"
     and .keys[0].alg == "EdDSA" and (.keys[0].x | length > 0)
     and ((.jwksJson | fromjson | .keys | length) == 1)'
  JWKS_KID="$(field '.keys[0].kid')"
  if [[ -n "$JWKS_KID" && "$(jwt_kid "$ACCESS1")" == "$JWKS_KID" ]]; then
    ok "the access token's kid is the JWKS key's kid"
  else
    not_ok "the access token's kid is the JWKS key's kid" "jwks kid '$JWKS_KID', token kid '$(jwt_kid "$ACCESS1" 2>/dev/null || true)'"
  fi

  # gRPC-Web on the same port. buf curl always speaks HTTP/2 when it uses server reflection on an
  # http:// URL (reflection needs HTTP/2, see `buf curl --help`), so the reflected call below is
  # gRPC-Web over h2c; the HTTP/1.1 calls after it take the schema from proto/ (--schema) instead of
  # reflection, which is the only way buf curl sends gRPC-Web over HTTP/1.1.
  _run --protocol grpcweb -v "$BASE/$SVC/GetJwks"
  if [[ $RC -eq 0 ]] && jq -e '(.keys | length) == 1 and .keys[0].crv == "Ed25519"' <<<"$OUT" >/dev/null 2>&1; then
    ok "GetJwks over gRPC-Web, schema by reflection"
  else
    not_ok "GetJwks over gRPC-Web, schema by reflection" "exit $RC: $(tr '\n' ' ' <<<"$OUT" | head -c 300) $(grep -E 'HTTP/|Failure' "$ERRF" | tr '\n' ' ')"
  fi
  _run --protocol grpcweb --schema "$ROOT/proto" -v "$BASE/$SVC/GetJwks"
  if [[ $RC -eq 0 ]] && jq -e '(.keys | length) == 1 and .keys[0].kid == $kid' --arg kid "$JWKS_KID" <<<"$OUT" >/dev/null 2>&1 \
    && grep -q '< (#1) HTTP/1.1 200' "$ERRF"; then
    ok "GetJwks over gRPC-Web on HTTP/1.1"
  else
    not_ok "GetJwks over gRPC-Web on HTTP/1.1" "exit $RC: $(tr '\n' ' ' <<<"$OUT" | head -c 300) $(grep -E 'HTTP/|Failure' "$ERRF" | tr '\n' ' ')"
  fi
  _run --protocol grpcweb --schema "$ROOT/proto" -v "$BASE/$SVC/GetCurrentUser"
  if grep -q '< (#1) HTTP/1.1 ' "$ERRF"; then
    expect_error "GetCurrentUser without a token over gRPC-Web on HTTP/1.1: UNAUTHENTICATED in details" \
      unauthenticated UNAUTHENTICATED
  else
    not_ok "GetCurrentUser without a token over gRPC-Web on HTTP/1.1: UNAUTHENTICATED in details" \
      "not answered over HTTP/1.1 (exit $RC): $(grep -E 'HTTP/|Failure' "$ERRF" | tr '\n' ' ')"
  fi

  # Logout with the current refresh token of the live session.
  rpc "$SVC/Logout" "$(jq -nc --arg r "$REFRESH1" '{refreshToken: $r}')"
  expect_ok "Logout with the current refresh token" '. == {}'
  rpc "$SVC/ValidateAccessToken" "$(jq -nc --arg t "$ACCESS1" '{accessToken: $t}')"
  expect_error "ValidateAccessToken rejects the access token after Logout" unauthenticated -

  # Password reset: RequestPasswordReset answers with a resetId, which ResetPassword needs with
  # the emailed code. It ends every session of the user.
  rpc "$SVC/Login" "$(jq -nc --arg i "$EMAIL" --arg p "$PASSWORD" '{identifier: $i, password: $p}')"
  expect_ok "Login by email starts a session" "(.tokens.accessToken | length > 0)"
  ACCESS4="$(field .tokens.accessToken)"
  MAILS_BEFORE="$(find "$MAIL_DIR" -name '*.eml' | wc -l)"
  rpc "$SVC/RequestPasswordReset" "$(jq -nc --arg e "$EMAIL" '{email: $e}')"
  expect_ok "RequestPasswordReset answers with a resetId" \
    '(.resetId | test("^[A-Za-z0-9_-]{22}$")) and (.codeTtl | length > 0)'
  RESET_ID="$(field .resetId)"
  RESET_CODE=""
  deadline=$((SECONDS + MAIL_TIMEOUT))
  while ((SECONDS < deadline)); do
    if (($(find "$MAIL_DIR" -name '*.eml' | wc -l) > MAILS_BEFORE)) \
      && RESET_CODE="$(read_code "$MAIL_DIR" "$EMAIL_LC")"; then
      break
    fi
    RESET_CODE=""
    sleep 0.2
  done
  if [[ "$RESET_CODE" =~ ^[0-9]{6}$ ]]; then
    ok "password reset email carries a 6-digit code"
  else
    not_ok "password reset email carries a 6-digit code" \
      "no new .eml for $EMAIL_LC with a 6-digit code in $MAIL_DIR within ${MAIL_TIMEOUT}s"
  fi
  NEW_PASSWORD="a new passphrase for $SUFFIX"
  rpc "$SVC/ResetPassword" "$(jq -nc --arg e "$EMAIL" --arg c "$RESET_CODE" --arg p "$NEW_PASSWORD" \
    '{email: $e, code: $c, newPassword: $p}')"
  expect_error "ResetPassword without the resetId: RESET_ID_REQUIRED" \
    invalid_argument RESET_ID_REQUIRED reset_id
  rpc "$SVC/ResetPassword" "$(jq -nc --arg e "$EMAIL" --arg c "$RESET_CODE" --arg p "$NEW_PASSWORD" \
    --arg r "$RESET_ID" '{email: $e, code: $c, newPassword: $p, resetId: $r}')"
  expect_ok "ResetPassword with the resetId and the code ends the live session" \
    '.revokedSessionCount == 1'
  rpc "$SVC/ValidateAccessToken" "$(jq -nc --arg t "$ACCESS4" '{accessToken: $t}')"
  expect_error "ValidateAccessToken rejects the access token after ResetPassword" unauthenticated -
  rpc "$SVC/Login" "$(jq -nc --arg i "$USERNAME" --arg p "$NEW_PASSWORD" '{identifier: $i, password: $p}')"
  expect_ok "Login with the new password" ".user.id == \"$USER_ID\""

  # Invalid registration: both fields are named.
  rpc "$SVC/Register" '{"username": "valid_name", "email": "not-an-email", "password": "short"}'
  expect_error "Register with a bad email and a short password: invalid_argument naming both" \
    invalid_argument - email password

  echo "$PASSED passed, $FAILED failed"
  if [[ $FAILED -gt 0 ]]; then
    show_log
    exit 1
  fi
}

main "$@"
exit $?
