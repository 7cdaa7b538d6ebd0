#!/usr/bin/env bash
# Runs the shell examples of README.md and edge-gateway/README.md, so that a command the READMEs
# show cannot stop working unnoticed. Every ```sh block is read from the README at run time (never
# copied into this script) and run exactly as written, against a real auth service and gateway
# that this script starts on free ports in a temp folder.
#
# Markers. The nearest non-blank line above the opening fence of every ```sh (or ```bash,
# ```shell, ```console, ```zsh) block is an HTML comment that says how the block is checked:
#
#   <!-- readme-check: run -->
#       The block is one session: it runs as a bash script with `set -eEu` (it stops at the first
#       failing command, where a reader pasting it would see the first error; no pipefail, so
#       `curl ... | head` behaves as in a terminal). It fails when it exits non-zero, takes over
#       RUN_TIMEOUT seconds, or when the gateway answered any of its requests with a 4xx or 5xx
#       (curl without -f exits 0 on those, so the gateway's access log is read). The table names
#       the README line of the failing command or refused request: one header line before the
#       block traces each command's line and time to a file of its own (xtrace on a separate
#       fd, so the block's output is unchanged).
#   <!-- readme-check: serve (what is checked) -->
#       Every line is a command that runs until stopped (scripts/run, cargo run ...). Each line is
#       started alone with PORT, GRPC_ADDR and DATA_DIR set to two free ports and a fresh folder
#       and HTTP_HOST=127.0.0.1. A line that names AUTH_SERVICE_URL (a gateway that "needs the
#       auth service at AUTH_SERVICE_URL") gets the check's auth service there; the others get no
#       AUTH_SERVICE_URL, so scripts/run's gateway is ready only once its own service is. It
#       passes when http://127.0.0.1:$PORT/readyz answers 200 within READY_TIMEOUT seconds and
#       the command still runs a second later; it is then stopped with SIGINT (what Ctrl-C
#       sends) and must exit within STOP_TIMEOUT seconds.
#   <!-- readme-check: skip (reason) -->
#       Not run. The reason is required and is printed in the table.
#
# A shell block without a marker, an unknown mode, a skip without a reason, and a fence without an
# info string (a diagram is ```text) fail the check, so a new block cannot slip in unchecked.
#
# What the blocks run against, and how their surroundings differ from a terminal in a checkout:
#   - auth-service and edge-gateway from $CARGO_TARGET_DIR/debug with the default settings
#     (embedded SQLite, mail written as .eml files) and the development service token that
#     scripts/run mints (data/service-token), started from the temp folder (no .env).
#   - The examples default to 127.0.0.1:50051 and http://127.0.0.1:8080 but read
#     ${GRPC_ADDR:-...} and ${GW:-...}; the blocks get GRPC_ADDR and GW of the system started
#     here, and nothing else of the caller's environment but PATH, HOME, LANG and TMPDIR.
#   - The working folder stands for the repository root: data/ is the service's DATA_DIR (so
#     data/mail/*.eml holds the codes) and every other top-level entry of the repository
#     (scripts/, proto/, ...) is a symlink to the real one.
#   - Without Debian's oathtool, a stand-in computes `oathtool --totp -b SECRET` with pyotp.
#   - PATH starts with tests/tools/node_modules/.bin (buf) and a stand-in `cargo`: `cargo build`
#     only checks that the debug binaries exist (the cargo-build stage builds them; building
#     again here would recompile with other features), `cargo run [--release] -p NAME [-- ARGS]`
#     runs $CARGO_TARGET_DIR/debug/NAME, and anything else fails (mark such a block skip).
#
# Usage: scripts/check-readme.sh [README...]   (default: README.md edge-gateway/README.md)
# Env:   CARGO_TARGET_DIR (default ./target), RUN_TIMEOUT (300), READY_TIMEOUT (60),
#        STOP_TIMEOUT (20), KEEP_WORK=1 keeps the temp folder (blocks, outputs, server logs).
# Prints one row per block (README:line, block, result); exits non-zero when any row failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN_DIR="$TARGET_DIR/debug"
TOOLS_BIN="$ROOT/tests/tools/node_modules/.bin"
RUN_TIMEOUT="${RUN_TIMEOUT:-300}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"
SHELL_LANGS=" sh bash shell console zsh "

die() { echo "check-readme: $*" >&2; exit 2; }
for bin in auth-service edge-gateway; do
  [[ -x "$BIN_DIR/$bin" ]] || die "$BIN_DIR/$bin is missing: cargo build --workspace (or scripts/test cargo-build)"
done
[[ -x "$TOOLS_BIN/buf" ]] || die "buf is missing: npm ci --prefix tests/tools"
command -v jq >/dev/null || die "jq is required (the README sessions read answers with it)"
command -v python3 >/dev/null || die "python3 is required"

READMES=("$@")
[[ ${#READMES[@]} -gt 0 ]] || READMES=(README.md edge-gateway/README.md)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-readme.XXXXXX")"
SANDBOX="$WORK/root"  # the blocks' working folder
mkdir -p "$SANDBOX/data" "$WORK/bin" "$WORK/blocks"

PIDS=()  # process group leaders started here
stop_group() { # stop_group PID: SIGTERM to its process group, SIGKILL after 10 s
  local pid=$1 _
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    running "$pid" || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$? pid
  for pid in "${PIDS[@]}"; do stop_group "$pid"; done
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then
    echo "check-readme: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# running PID: the process exists and is not a zombie (kill -0 succeeds on a zombie child).
running() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start LOG CMD...: runs CMD in the sandbox as a process group of its own (job control), so it
# can be stopped with everything it started; sets STARTED to its pid. With job control the
# command does not ignore SIGINT, as a background job of a script otherwise would.
STARTED=""
start() {
  local log=$1
  shift
  set -m
  (cd "$SANDBOX" && exec "$@") >"$log" 2>&1 &
  STARTED=$!
  set +m
  PIDS+=("$STARTED")
}

# ready URL PID SECONDS: URL answers 2xx before SECONDS pass, while PID runs.
ready() {
  local url=$1 pid=$2 deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    running "$pid" || return 1
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# --- the sandbox --------------------------------------------------------------------------

for entry in "$ROOT"/* "$ROOT"/.[!.]*; do
  [[ -e "$entry" ]] || continue
  case "${entry##*/}" in data | target | .git | .env) continue ;; esac
  ln -s "$entry" "$SANDBOX/${entry##*/}"
done

cat >"$WORK/bin/cargo" <<CARGO
#!/usr/bin/env bash
# cargo as the README check provides it: see scripts/check-readme.sh.
set -euo pipefail
bin_dir='$BIN_DIR'
case "\${1:-}" in
  build)
    for b in auth-service edge-gateway; do
      [[ -x "\$bin_dir/\$b" ]] || { echo "readme-check cargo: \$bin_dir/\$b is missing" >&2; exit 1; }
    done
    echo "readme-check cargo: 'cargo \$*' not run; the binaries of the cargo-build stage are used (\$bin_dir)" >&2
    ;;
  run)
    shift
    pkg="" args=()
    while [[ \$# -gt 0 ]]; do
      case "\$1" in
        --release) shift ;;
        -p | --package | --bin) pkg="\$2"; shift 2 ;;
        --) shift; args=("\$@"); break ;;
        *) echo "readme-check cargo: 'cargo run' with \$1 is not supported" >&2; exit 1 ;;
      esac
    done
    [[ -x "\$bin_dir/\$pkg" ]] || { echo "readme-check cargo: no binary \$bin_dir/\$pkg" >&2; exit 1; }
    echo "readme-check cargo: running \$bin_dir/\$pkg" >&2
    exec "\$bin_dir/\$pkg" "\${args[@]}"
    ;;
  *)
    echo "readme-check cargo: 'cargo \$*' is not run by the README check (mark the block skip)" >&2
    exit 1
    ;;
esac
CARGO
chmod +x "$WORK/bin/cargo"

# oathtool (Debian package) computes the TOTP codes of the README; where it is not installed, a
# stand-in answers `oathtool --totp -b SECRET` with pyotp from the test virtualenv.
if ! command -v oathtool >/dev/null; then
  cat >"$WORK/bin/oathtool" <<OATH
#!/usr/bin/env bash
set -euo pipefail
[[ "\${1:-}" == --totp && "\${2:-}" == -b && \$# -eq 3 ]] || {
  echo "readme-check oathtool: only 'oathtool --totp -b SECRET' is supported" >&2; exit 1; }
exec "$HOME/.cache/baatcheet-auth/venv/bin/python" -c 'import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).now())' "\$3"
OATH
  chmod +x "$WORK/bin/oathtool"
fi

BLOCK_PATH="$WORK/bin:$TOOLS_BIN:$PATH"
# The environment of every block and of the system under test: only these variables.
BASE_ENV=(env -i PATH="$BLOCK_PATH" HOME="$HOME" LANG="${LANG:-C.UTF-8}" TMPDIR="${TMPDIR:-/tmp}"
  CARGO_TARGET_DIR="$TARGET_DIR")

# --- reading the READMEs --------------------------------------------------------------------

# One entry per block to report, in README order.
B_WHERE=()  # README.md:38 (the line of the opening fence)
B_MODE=()   # run | serve | skip | error
B_NOTE=()   # the marker's note (a skip's reason), or the error
B_FILE=()   # the block's body, verbatim, as a file
B_LABEL=()  # the block's first command, for the table

trim() { local s=$1; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

add_block() { # add_block README FENCE_LINE INFO MARKER_LINE BODY_FILE
  local readme=$1 line=$2 info=$3 marker=$4 file=$5 lang mode note label
  lang="${info%%[[:space:]]*}"
  if [[ -z "$lang" ]]; then
    B_WHERE+=("$readme:$line") B_MODE+=(error) B_FILE+=("$file") B_LABEL+=("(fence without an info string)")
    B_NOTE+=("give the fence a language: \`\`\`sh for commands (with a readme-check marker), \`\`\`text for anything else")
    return
  fi
  [[ "$SHELL_LANGS" == *" $lang "* ]] || return 0
  label="$(grep -v -E '^[[:space:]]*(#|$)' "$file" | head -n 1 || true)"
  label="$(trim "${label%%[[:space:]]#*}")"  # without a trailing comment
  ((${#label} <= 44)) || label="${label:0:41}..."
  mode=error
  note="no marker: put <!-- readme-check: run | serve (note) | skip (reason) --> above the fence"
  if [[ "$marker" =~ ^[[:space:]]*\<!--[[:space:]]*readme-check:[[:space:]]*([a-z]+)(.*)--\>[[:space:]]*$ ]]; then
    mode="${BASH_REMATCH[1]}"
    note="$(trim "${BASH_REMATCH[2]}")"
    case "$mode" in
      run | serve) ;;
      skip) [[ -n "$note" ]] || { mode=error; note="skip without a reason"; } ;;
      *) note="unknown readme-check mode '$mode' (run, serve, skip)"; mode=error ;;
    esac
  elif [[ "$marker" == *readme-check* ]]; then
    note="malformed marker: $marker"
  fi
  B_WHERE+=("$readme:$line") B_MODE+=("$mode") B_NOTE+=("$note") B_FILE+=("$file") B_LABEL+=("$label")
}

# shellcheck disable=SC2094  # add_block writes the block's file, never the README
parse() { # parse README: the fenced blocks of one README
  local readme=$1 n=0 line in_fence=0 fence_line=0 info="" marker="" prev="" file=""
  [[ -f "$readme" ]] || die "no such README: $readme"
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    if ((in_fence)); then
      if [[ "$line" =~ ^\ {0,3}\`\`\`+[[:space:]]*$ ]]; then
        in_fence=0
        add_block "$readme" "$fence_line" "$info" "$marker" "$file"
      else
        printf '%s\n' "$line" >>"$file"
      fi
      continue
    fi
    if [[ "$line" =~ ^\ {0,3}\`\`\`+(.*)$ ]]; then
      in_fence=1
      fence_line=$n
      info="$(trim "${BASH_REMATCH[1]}")"
      marker="$prev"
      file="$WORK/blocks/${readme//\//_}-$n.sh"
      : >"$file"
      continue
    fi
    [[ "$line" =~ [^[:space:]] ]] && prev="$line"
  done <"$readme"
  ((in_fence == 0)) || die "$readme:$fence_line: the fence is never closed"
}

for readme in "${READMES[@]}"; do parse "$readme"; done

# --- the system under test ------------------------------------------------------------------

GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
SYS_GRPC="127.0.0.1:$GRPC_PORT"
SYS_GW="http://127.0.0.1:$HTTP_PORT"
AUTH_LOG="$WORK/auth-service.log"
GW_LOG="$WORK/edge-gateway.log"
SYSTEM_ENV=(GRPC_ADDR="$SYS_GRPC" GW="$SYS_GW")

# The development service token scripts/run mints, so the blocks find data/service-token; as
# with scripts/run, it may call the operator actions.
"$ROOT/scripts/dev-service-token.sh" "$BIN_DIR/auth-service" "$SANDBOX/data"
start "$AUTH_LOG" "${BASE_ENV[@]}" GRPC_ADDR="$SYS_GRPC" DATA_DIR="$SANDBOX/data" LOG_FORMAT=json \
  SERVICE_TOKENS_FILE="$SANDBOX/data/service-tokens" OPERATOR_SERVICES=dev SHUTDOWN_GRACE=1s \
  "$BIN_DIR/auth-service"
AUTH_PID=$STARTED
start "$GW_LOG" "${BASE_ENV[@]}" HTTP_HOST=127.0.0.1 PORT="$HTTP_PORT" AUTH_SERVICE_URL="http://$SYS_GRPC" \
  AUTH_SERVICE_TOKEN_FILE="$SANDBOX/data/service-token" LOG_FORMAT=json SHUTDOWN_GRACE=1s \
  "$BIN_DIR/edge-gateway"
GW_PID=$STARTED
if ! ready "$SYS_GW/readyz" "$GW_PID" "$READY_TIMEOUT" || ! running "$AUTH_PID"; then
  echo "check-readme: the auth service and gateway did not become ready ($SYS_GW/readyz)" >&2
  tail -n 30 "$AUTH_LOG" "$GW_LOG" >&2
  exit 1
fi
echo "check-readme: auth service on $SYS_GRPC, gateway on $SYS_GW, blocks run in $SANDBOX"

# --- running the blocks ---------------------------------------------------------------------

RESULT=""  # set by run_block and serve_block: the table's result column
show_output() { # show_output FILE: the last lines of a block's output, indented
  echo "    --- output (last 40 lines) ---"
  tail -n 40 "$1" | sed 's/^/    | /'
}

# The README line of a command: bash names a line of the command (the first one, or the last
# one of a $(...) spread over lines); move up over backslash continuations to where it starts.
readme_line() { # readme_line INDEX SCRIPT_LINE: prints README:line (the block's, if unknown)
  local i=$1 n=$(($2 - 1)) where=${B_WHERE[$1]}
  ((n >= 1)) || { echo "$where"; return; }
  while ((n > 1)) && [[ "$(sed -n "$((n - 1))p" "${B_FILE[$i]}")" == *\\ ]]; do n=$((n - 1)); done
  echo "${where%:*}:$((${where##*:} + n))"
}

# refused GATEWAY_LOG_PART TRACE: the requests the gateway answered with a 4xx or 5xx, one per line
# as "STATUS METHOD PATH SCRIPT_LINE": the line of the block's last command traced before the
# answer (the gateway's access log and the block's xtrace share the clock).
refused() {
  python3 - "$1" "$2" <<'PY'
import json, re, sys
from datetime import datetime, timezone

trace = []
with open(sys.argv[2], errors="replace") as f:
    for text in f:
        m = re.match(r"^\++(\d+\.\d+) (\d+) ", text)
        if m:
            trace.append((float(m.group(1)), int(m.group(2))))
with open(sys.argv[1], errors="replace") as f:
    for text in f:
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        status = entry.get("status")
        if not isinstance(status, int) or status < 400:
            continue
        span = entry.get("span") or {}
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", entry.get("timestamp", ""))
        line = 0
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
            at = at.timestamp() + float("0." + (m.group(2) or "0"))
            before = [t for t in trace if t[0] <= at]
            line = max(before)[1] if before else 0
        print(status, span.get("method", "?"), span.get("path", "?"), line)
PY
}

run_block() { # run_block INDEX
  local i=$1 where=${B_WHERE[$1]} script out trace errline part gw_mark rc=0 start_s
  local line status method path err=() reasons=() details=()
  script="$WORK/blocks/run-$i.sh"
  out="$WORK/blocks/run-$i.out"
  trace="$WORK/blocks/run-$i.trace"
  errline="$WORK/blocks/run-$i.err"
  part="$WORK/blocks/run-$i.gateway.log"
  # Line 1 is this header; line k+1 is line k of the block, verbatim. The header traces every
  # command with its time and line to a file of its own (xtrace on a separate fd, so the block's
  # output is untouched), and the ERR trap records the line of the failing command, or of the
  # call of the function it failed in, in the shell the block runs in.
  {
    printf '%s' "exec {READMECHECK_FD}>'$trace'; BASH_XTRACEFD=\$READMECHECK_FD; "
    printf '%s' "PS4='+\${EPOCHREALTIME} \${LINENO} '; set -x -eEu; "
    printf '%s\n' "trap '((BASH_SUBSHELL)) || printf \"%s %s\\n\" \$LINENO \"\${BASH_LINENO[*]}\" >\"$errline\"' ERR"
    cat "${B_FILE[$i]}"
  } >"$script"
  gw_mark="$(wc -l <"$GW_LOG")"
  start_s=$SECONDS
  (cd "$SANDBOX" && exec timeout "$RUN_TIMEOUT" "${BASE_ENV[@]}" "${SYSTEM_ENV[@]}" bash "$script") \
    >"$out" 2>&1 </dev/null || rc=$?
  sleep 0.3 # the gateway's access lines of the last requests
  tail -n "+$((gw_mark + 1))" "$GW_LOG" >"$part"

  if ((rc == 124)); then
    reasons+=("timed out after ${RUN_TIMEOUT}s")
  elif ((rc != 0)); then
    line=""
    if [[ -s "$errline" ]]; then
      # "LINENO BASH_LINENO...": in a function, the call site is the next-to-last BASH_LINENO.
      read -r -a err <"$errline"
      if ((${#err[@]} > 2)); then line="${err[-2]}"; else line="${err[0]}"; fi
    else # `set -u` and syntax errors: bash names the line itself
      line="$(grep -o -m1 -E "^$script: line [0-9]+" "$out" | grep -o -E '[0-9]+$' || true)"
    fi
    if [[ -n "$line" ]] && ((line > 1)); then
      reasons+=("exit $rc at $(readme_line "$i" "$line")")
    else
      reasons+=("exit $rc")
    fi
  fi
  while read -r status method path line; do
    details+=("the gateway answered $status to $method $path at $(readme_line "$i" "$line")")
  done < <(refused "$part" "$trace")
  if ((${#details[@]} > 0)); then
    reasons+=("${details[0]}")
    ((${#details[@]} == 1)) || reasons+=("$((${#details[@]} - 1)) more refused")
  fi

  if ((${#reasons[@]} == 0)); then
    RESULT="pass (run, $((SECONDS - start_s))s)"
    return 0
  fi
  RESULT="FAIL: $(printf '%s; ' "${reasons[@]}")"
  RESULT="${RESULT%; }"
  {
    echo "$where: $RESULT"
    ((${#details[@]} <= 1)) || printf '    %s\n' "${details[@]}"
    show_output "$out"
  } >&2
  return 1
}

serve_block() { # serve_block INDEX: every line started alone, until ready, then Ctrl-C
  local i=$1 where=${B_WHERE[$1]} cmd n=0 port gport pid log start_s=$SECONDS upstream
  while IFS= read -r cmd; do
    [[ "$cmd" =~ ^[[:space:]]*(#|$) ]] && continue
    n=$((n + 1))
    if [[ "$cmd" == *\\ ]]; then
      RESULT="FAIL: serve blocks take one command per line: $cmd"
      return 1
    fi
    port="$(free_port)"
    gport="$(free_port)"
    log="$WORK/blocks/serve-$i-$n.out"
    mkdir -p "$WORK/serve-$i-$n"
    upstream=()
    [[ "$cmd" != *AUTH_SERVICE_URL* ]] || upstream=(AUTH_SERVICE_URL="http://$SYS_GRPC")
    start "$log" "${BASE_ENV[@]}" "${upstream[@]}" HTTP_HOST=127.0.0.1 PORT="$port" \
      GRPC_ADDR="127.0.0.1:$gport" DATA_DIR="$WORK/serve-$i-$n" bash -c "$cmd"
    pid=$STARTED
    if ! ready "http://127.0.0.1:$port/readyz" "$pid" "$READY_TIMEOUT"; then
      RESULT="FAIL: '$cmd': no 200 from /readyz within ${READY_TIMEOUT}s"
      running "$pid" || RESULT="FAIL: '$cmd' exited before /readyz answered 200"
      stop_group "$pid"
      echo "$where: $RESULT" >&2
      show_output "$log" >&2
      return 1
    fi
    sleep 1
    if ! running "$pid"; then
      RESULT="FAIL: '$cmd' exited after /readyz answered"
      echo "$where: $RESULT" >&2
      show_output "$log" >&2
      return 1
    fi
    kill -INT -- "-$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if running "$pid"; then
      stop_group "$pid"
      RESULT="FAIL: '$cmd' did not stop within ${STOP_TIMEOUT}s of SIGINT"
      echo "$where: $RESULT" >&2
      show_output "$log" >&2
      return 1
    fi
    wait "$pid" 2>/dev/null || true
    kill -KILL -- "-$pid" 2>/dev/null || true  # anything it left behind
  done <"${B_FILE[$i]}"
  RESULT="pass (serve: $n command(s) ready and stopped by SIGINT, $((SECONDS - start_s))s)"
}

ROWS=()
FAILED=0
for i in "${!B_WHERE[@]}"; do
  case "${B_MODE[$i]}" in
    run)
      echo "check-readme: ${B_WHERE[$i]} run: ${B_LABEL[$i]}"
      run_block "$i" || FAILED=$((FAILED + 1))
      ;;
    serve)
      echo "check-readme: ${B_WHERE[$i]} serve: ${B_LABEL[$i]}"
      serve_block "$i" || FAILED=$((FAILED + 1))
      ;;
    skip) RESULT="skip ${B_NOTE[$i]}" ;;
    *)
      RESULT="FAIL: ${B_NOTE[$i]}"
      FAILED=$((FAILED + 1))
      ;;
  esac
  if ! running "$AUTH_PID" || ! running "$GW_PID"; then
    RESULT="$RESULT; FAIL: the auth service or the gateway exited"
    FAILED=$((FAILED + 1))
    ROWS+=("${B_WHERE[$i]}"$'\t'"${B_LABEL[$i]}"$'\t'"$RESULT")
    tail -n 30 "$AUTH_LOG" "$GW_LOG" >&2
    break
  fi
  ROWS+=("${B_WHERE[$i]}"$'\t'"${B_LABEL[$i]}"$'\t'"$RESULT")
done

echo
printf '%-28s %-46s %s\n' "README:line" "block" "result"
for row in "${ROWS[@]}"; do
  IFS=$'\t' read -r where label result <<<"$row"
  printf '%-28s %-46s %s\n' "$where" "$label" "$result"
done
echo "${#ROWS[@]} blocks: $FAILED failed"
((FAILED == 0))
