#!/usr/bin/env bash
# Mints the development service token of a data folder, once: DATA_DIR/service-token (the token,
# for the gateway's AUTH_SERVICE_TOKEN_FILE and for operators' buf curl) and
# DATA_DIR/service-tokens (its line, for the service's SERVICE_TOKENS_FILE). scripts/run and the
# README check use it when no service token is configured; production mints its own
# (`auth-service token new NAME`).
#
# Usage: scripts/dev-service-token.sh AUTH_SERVICE_BIN DATA_DIR
set -euo pipefail
bin=$1 dir=$2
if [[ -s "$dir/service-token" && -s "$dir/service-tokens" ]]; then exit 0; fi
mkdir -p "$dir"
umask 077
"$bin" token new dev >"$dir/service-token.new" 2>"$dir/service-tokens.out"
grep '^dev:' "$dir/service-tokens.out" >"$dir/service-tokens"
mv "$dir/service-token.new" "$dir/service-token"
rm -f "$dir/service-tokens.out"
