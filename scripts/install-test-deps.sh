#!/usr/bin/env bash
# Installs the Python test servers into one virtualenv the Rust tests find by themselves:
#   secantusd-py  SecantusDB, a MongoDB wire-protocol server (test-support/src/mongo_server.rs)
#   aiosmtpd      an SMTP server for the mailer tests
#   schemathesis  generates requests from the gateway's /openapi.json (tests/schemathesis)
#   pyotp         an independent TOTP implementation the second-factor tests compute codes with
#   fido2, cryptography  CBOR, COSE and P-256 for schemathesis' software passkey (tests/schemathesis/hooks.py)
# Idempotent: a venv that already has the pinned versions is left alone (no network then).
# The tests look in ~/.cache/baatcheet-auth/venv/bin, or take the server from env SECANTUSD.
set -euo pipefail

VENV="$HOME/.cache/baatcheet-auth/venv"
PINS=(secantusdb==0.7.0b3 aiosmtpd==1.4.6 schemathesis==4.32.5 pyotp==2.12.1 fido2==1.2.0 cryptography==44.0.3)

have_pins() {
  local pin installed
  for pin in "${PINS[@]}"; do
    installed="$("$VENV/bin/python" -m pip show "${pin%%==*}" 2>/dev/null | sed -n 's/^Version: //p')"
    [[ "$installed" == "${pin##*==}" ]] || return 1
  done
}

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "creating virtualenv $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi

if have_pins; then
  echo "test deps up to date in $VENV (${PINS[*]})"
else
  echo "installing ${PINS[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  have_pins || {
    echo "error: ${PINS[*]} not all installed in $VENV" >&2
    exit 1
  }
fi

"$VENV/bin/secantusd-py" --help >/dev/null
echo "secantusd-py: $VENV/bin/secantusd-py"
