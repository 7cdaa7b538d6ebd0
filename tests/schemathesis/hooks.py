"""A signed-in browser session for schemathesis (loaded by run.sh through SCHEMATHESIS_HOOKS).

Why this exists: the gateway's signed-in routes (me, sessions, logout, logout-all, refresh,
password change) answer 401 to a caller without a session cookie, so on its own schemathesis
only ever tests their refusal. This file signs in the way a person does, through the gateway:
it registers an account, reads the 6-digit code from the newest mail to that address in the
service's mail folder, verifies it, and later logs in again with the password.

Fuzzed calls end sessions (logout, logout-all, DELETE /sessions/{id}), rotate the refresh
token or change the password, so one cookie taken up front would die mid-run. Hence, for every
call that carries the session: before it, GET /api/auth/me checks the session and a dead one
is replaced by a new login (or, if the password is no longer known, by a new account); after
it, cookies the gateway set are kept, as a browser keeps them, and a successful password change
updates the password. Every second password change is sent with the right current password
and a random new one (a generated one may break the length rule or the strength policy), so its
success path is fuzzed too; likewise every second profile change (PATCH /api/auth/me) that
carries a JSON object is sent with a valid bio and without the generated avatarUrl and username
(those may fail validation, and a username may change only once per cooldown). Requests carry
the gateway's own `Origin`, as a page served by the gateway would, which passes the CSRF check.

Second factors: every second call of /mfa/totp/confirm is sent with a right code (pyotp, from
the secret the last /mfa/totp/start showed) and the password, and every second call of
/mfa/totp/disable with the password and of /mfa/recovery-codes with a kept recovery code (TOTP
turned on first, through the gateway, when it is off), so their success paths are fuzzed too. The recovery codes they return are kept: once TOTP is on, a sign-in answers a challenge,
which the next login passes with one of them.

Passkeys: every second call of /passkeys/register/finish is sent with a passkey this file's
software authenticator made for the options of a /passkeys/register/start it called just
before (ES256, user verified, `none` attestation, COSE and CBOR from python-fido2: an
implementation nobody here wrote), a name and the password; every second call of
/passkeys/delete names one of the account's passkeys (added first when it has none) with the
password. Every second call of /account/delete carries the password; once the account is
deleted, the next signed-in call signs up a new one. Every second call of /email/change asks
for a fresh address with the password, and every second call of /email/confirm carries the
code of a change this file asked for just before (read from the mail to the new address).

Every answer is logged as `<operation>\\t<status>\\t<1 if it carried the session>` to
ST_STATUS_LOG, so that run.sh can check each signed-in operation got a 2xx.

Env (set by run.sh): ST_BASE_URL (the gateway), ST_MAIL_DIR (the service's .eml folder),
ST_MAIL_CODE (test-support's mail-code binary), ST_STATUS_LOG.
"""

import base64
import hashlib
import json
import os
import secrets
import struct
import subprocess
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pyotp  # in the virtualenv of schemathesis: codes as an authenticator app makes them
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256

BASE = os.environ["ST_BASE_URL"].rstrip("/")
API = BASE + "/api/auth"
MAIL_DIR = Path(os.environ["ST_MAIL_DIR"])
MAIL_CODE = os.environ["ST_MAIL_CODE"]
STATUS_LOG = os.environ["ST_STATUS_LOG"]
ORIGIN = {"Origin": BASE}
SESSION_SCHEMES = {"accessCookie", "refreshCookie"}
CHANGE_PASSWORD = "POST /api/auth/password/change"
UPDATE_PROFILE = "PATCH /api/auth/me"
TOTP_START = "POST /api/auth/mfa/totp/start"
TOTP_CONFIRM = "POST /api/auth/mfa/totp/confirm"
TOTP_DISABLE = "POST /api/auth/mfa/totp/disable"
RECOVERY_CODES = "POST /api/auth/mfa/recovery-codes"
PASSKEY_START = "POST /api/auth/passkeys/register/start"
PASSKEY_FINISH = "POST /api/auth/passkeys/register/finish"
PASSKEY_DELETE = "POST /api/auth/passkeys/delete"
DELETE_ACCOUNT = "POST /api/auth/account/delete"
EMAIL_CHANGE = "POST /api/auth/email/change"
EMAIL_CONFIRM = "POST /api/auth/email/confirm"
# The origin the service's default WEBAUTHN_ORIGINS names (run.sh leaves it so).
PASSKEY_ORIGIN = "http://localhost:8080"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_passkey(public_key: dict) -> dict:
    """What navigator.credentials.create() answers for `public_key` (the gateway's options) on a
    user-verifying authenticator, as the JSON a page sends back (PublicKeyCredential.toJSON())."""
    key = ec.generate_private_key(ec.SECP256R1())
    credential_id = secrets.token_bytes(32)
    client_data = json.dumps(
        {"type": "webauthn.create", "challenge": public_key["challenge"], "origin": PASSKEY_ORIGIN}
    ).encode()
    flags = 0x01 | 0x04 | 0x40  # user present, user verified, attested credential data
    auth_data = (
        hashlib.sha256(public_key["rp"]["id"].encode()).digest()
        + bytes([flags])
        + struct.pack(">I", 0)
        + bytes(16)  # AAGUID
        + struct.pack(">H", len(credential_id))
        + credential_id
        + cbor.encode(ES256.from_cryptography_key(key.public_key()))
    )
    attestation = cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})
    return {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation)},
    }


def label(case) -> str:
    """The call's method and path (coverage also sends other methods, e.g. OPTIONS, to a path)."""
    return f"{case.method.upper()} {case.operation.path}"


def needs_session(ctx) -> bool:
    """Operations whose documented security includes a token cookie."""
    requirements = ctx.operation.definition.raw.get("security", [])
    return any(SESSION_SCHEMES & set(requirement) for requirement in requirements)


class Account:
    """One account and the cookies of its current session (empty: no session)."""

    def __init__(self) -> None:
        self.email = self.password = None
        self.cookies: dict[str, str] = {}
        self.handed_out: set[str] = set()  # every cookie value given to a case
        self.password_changes = 0
        self.profile_changes = 0
        self.totp_pending = None  # a secret /mfa/totp/start showed
        self.totp_on = False
        self.recovery: list[str] = []  # unused recovery codes, to pass a sign-in's challenge
        self.factor_calls = 0
        self.passkey_calls = 0
        self.deletions = 0
        self.email_calls = 0

    def carried_by(self, case) -> bool:
        return any(value in self.handed_out for value in (case.cookies or {}).values())

    def current(self) -> dict[str, str]:
        """The session's cookies, signing in first if there is none (no liveness check)."""
        if not self.cookies:
            self.sign_in()
        self.handed_out.update(self.cookies.values())
        return dict(self.cookies)

    def live(self) -> dict[str, str]:
        """The cookies of a session the gateway accepts right now."""
        if self.cookies:
            me = requests.get(f"{API}/me", cookies=self.cookies, headers=ORIGIN, timeout=30)
            if me.status_code != 200:
                self.cookies = {}
        return self.current()

    def sign_in(self) -> None:
        if self.email is not None:
            login = requests.post(
                f"{API}/login",
                json={"identifier": self.email, "password": self.password},
                headers=ORIGIN,
                timeout=30,
            )
            if login.status_code == 200 and login.json()["data"].get("mfaRequired") and self.recovery:
                login = requests.post(
                    f"{API}/mfa/complete",
                    json={"recoveryCode": self.recovery.pop()},
                    cookies=login.cookies,
                    headers=ORIGIN,
                    timeout=30,
                )
            if login.status_code == 200 and "user" in login.json()["data"]:
                self.start((n, v) for n, v in login.cookies.items() if n.endswith("Token"))
                return
        self.totp_pending, self.totp_on, self.recovery = None, False, []
        self.sign_up()

    def sign_up(self) -> None:
        username = "st_" + secrets.token_hex(6)
        self.email, self.password = f"{username}@example.com", secrets.token_urlsafe(18)
        browser = requests.Session()
        browser.headers.update(ORIGIN)
        registered = browser.post(
            f"{API}/register",
            json={"username": username, "email": self.email, "password": self.password},
            timeout=30,
        )
        if registered.status_code != 201:
            raise RuntimeError(f"register: {registered.status_code} {registered.text}")
        verified = browser.post(
            f"{API}/verify-otp", json={"email": self.email, "otp": self.code()}, timeout=30
        )
        if verified.status_code != 200:
            raise RuntimeError(f"verify-otp: {verified.status_code} {verified.text}")
        self.start(verified.cookies.items())

    def code(self, to: str | None = None) -> str:
        """The code in the newest mail to this account (or to `to`; the mail worker writes it
        shortly), read by test-support's mail-code, the reader of every other test."""
        to = to or self.email
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            read = subprocess.run(
                [MAIL_CODE, str(MAIL_DIR), to], capture_output=True, text=True, check=False
            )
            if read.returncode == 0:
                return read.stdout.strip()
            time.sleep(0.1)
        raise RuntimeError(f"no code mailed to {to} in {MAIL_DIR} within 15s")

    def email_change_code(self, cookies: dict[str, str]) -> str | None:
        """Asks (through the gateway, with this session) to move the account to a fresh address,
        and reads the code mailed there."""
        new = f"st_{secrets.token_hex(6)}@example.com"
        asked = requests.post(
            f"{API}/email/change",
            json={"newEmail": new, "currentPassword": self.password},
            cookies=cookies,
            headers=ORIGIN,
            timeout=30,
        )
        return self.code(new) if asked.status_code == 200 else None

    def pending_secret(self, cookies: dict[str, str]) -> str | None:
        """A secret waiting for its first code: TOTP turned off and started again if needed."""
        if self.totp_on:
            off = requests.post(
                f"{API}/mfa/totp/disable",
                json={"password": self.password},
                cookies=cookies,
                headers=ORIGIN,
                timeout=30,
            )
            if off.status_code == 200:
                self.totp_on, self.recovery = False, []
        if not self.totp_pending:
            started = requests.post(f"{API}/mfa/totp/start", cookies=cookies, headers=ORIGIN, timeout=30)
            if started.status_code == 200:
                self.totp_pending = started.json()["data"]["secret"]
        return self.totp_pending

    def ensure_totp(self, cookies: dict[str, str]) -> None:
        """Turns TOTP on for this account (as a person would, with the app's code)."""
        if self.totp_on:
            return
        started = requests.post(f"{API}/mfa/totp/start", cookies=cookies, headers=ORIGIN, timeout=30)
        if started.status_code != 200:
            return
        secret = started.json()["data"]["secret"]
        confirmed = requests.post(
            f"{API}/mfa/totp/confirm",
            json={"code": pyotp.TOTP(secret).now(), "currentPassword": self.password},
            cookies=cookies,
            headers=ORIGIN,
            timeout=30,
        )
        if confirmed.status_code == 200:
            self.totp_on, self.totp_pending = True, None
            self.recovery = list(confirmed.json()["data"]["recoveryCodes"])

    def make_room(self, cookies: dict[str, str]) -> None:
        """Keeps the account well under the service's passkey cap (10), so that the added ones
        do not turn every later /passkeys/register/start into PASSKEY_LIMIT_REACHED."""
        listed = requests.get(f"{API}/passkeys", cookies=cookies, headers=ORIGIN, timeout=30)
        if listed.status_code != 200:
            return
        for passkey in listed.json()["data"]["passkeys"][:-4]:
            requests.post(
                f"{API}/passkeys/delete",
                json={"id": passkey["id"], "password": self.password},
                cookies=cookies,
                headers=ORIGIN,
                timeout=30,
            )

    def passkey_body(self, cookies: dict[str, str]) -> dict | None:
        """A finish body that adds a passkey: options asked for just now, answered."""
        self.make_room(cookies)
        started = requests.post(
            f"{API}/passkeys/register/start", cookies=cookies, headers=ORIGIN, timeout=30
        )
        if started.status_code != 200:
            return None
        credential = new_passkey(started.json()["data"]["publicKey"])
        return {"credential": credential, "name": "fuzz key", "currentPassword": self.password}

    def a_passkey(self, cookies: dict[str, str]) -> str | None:
        """The id of one of the account's passkeys, adding one when it has none."""
        listed = requests.get(f"{API}/passkeys", cookies=cookies, headers=ORIGIN, timeout=30)
        if listed.status_code == 200 and listed.json()["data"]["passkeys"]:
            return listed.json()["data"]["passkeys"][0]["id"]
        body = self.passkey_body(cookies)
        if body is None:
            return None
        added = requests.post(
            f"{API}/passkeys/register/finish", json=body, cookies=cookies, headers=ORIGIN, timeout=30
        )
        return added.json()["data"]["id"] if added.status_code == 200 else None

    def start(self, set_cookies) -> None:
        """The token cookies a sign-in set (the registration cookie it cleared is left out)."""
        self.cookies = {name: value for name, value in set_cookies if value}

    def keep(self, set_cookies) -> None:
        """Keeps new values of the session's cookies; one cleared ends the session here too."""
        for name, value in set_cookies:
            if name in self.cookies:
                self.cookies[name] = value
        if not all(self.cookies.values()):
            self.cookies = {}


ACCOUNT = Account()


@schemathesis.auth(refresh_interval=None).apply_to(needs_session)
class SignedIn:
    def get(self, case, ctx):
        return ACCOUNT.current()

    def set(self, case, cookies, ctx):
        case.cookies = {**(case.cookies or {}), **cookies}
        case.headers = {**(case.headers or {}), **ORIGIN}


@schemathesis.hook
def before_call(context, case, kwargs):
    if not ACCOUNT.carried_by(case):
        return
    case.cookies = {**case.cookies, **ACCOUNT.live()}
    body = case.body
    if label(case) == CHANGE_PASSWORD and isinstance(body, dict) and "currentPassword" in body:
        ACCOUNT.password_changes += 1
        if ACCOUNT.password_changes % 2:  # can succeed: the right password, a valid new one
            body["currentPassword"] = ACCOUNT.password
            # A random 24-character one: a generated string of the right length may still be
            # refused by the password policy (too easy to guess).
            body["newPassword"] = secrets.token_urlsafe(18)
    if label(case) == UPDATE_PROFILE and isinstance(body, dict):
        ACCOUNT.profile_changes += 1
        if ACCOUNT.profile_changes % 2:  # can succeed: only a valid bio
            body.pop("avatarUrl", None)
            body.pop("username", None)
            bio = body.get("bio")
            if not (isinstance(bio, str) and len(bio) <= 150):
                body["bio"] = "fuzzed " + secrets.token_hex(4)


    if label(case) in (TOTP_CONFIRM, TOTP_DISABLE, RECOVERY_CODES) and isinstance(body, dict):
        ACCOUNT.factor_calls += 1
        if ACCOUNT.factor_calls % 2:  # can succeed: a right code or the password
            body.clear()
            if label(case) == TOTP_CONFIRM:
                secret = ACCOUNT.pending_secret(case.cookies)
                if secret:
                    body.update(code=pyotp.TOTP(secret).now(), currentPassword=ACCOUNT.password)
            elif label(case) == TOTP_DISABLE:
                ACCOUNT.ensure_totp(case.cookies)
                body.update(password=ACCOUNT.password)
            else:  # new recovery codes take the factor itself: one of the codes kept
                ACCOUNT.ensure_totp(case.cookies)
                if ACCOUNT.recovery:
                    body.update(recoveryCode=ACCOUNT.recovery.pop())


    if label(case) == PASSKEY_START:
        ACCOUNT.make_room(case.cookies)
    if label(case) in (PASSKEY_FINISH, PASSKEY_DELETE) and isinstance(body, dict):
        ACCOUNT.passkey_calls += 1
        if ACCOUNT.passkey_calls % 2:  # can succeed: a real passkey, or one of the account's
            if label(case) == PASSKEY_FINISH:
                valid = ACCOUNT.passkey_body(case.cookies)
            else:
                passkey = ACCOUNT.a_passkey(case.cookies)
                valid = passkey and {"id": passkey, "password": ACCOUNT.password}
            if valid:
                body.clear()
                body.update(valid)


    if label(case) in (EMAIL_CHANGE, EMAIL_CONFIRM) and isinstance(body, dict):
        ACCOUNT.email_calls += 1
        if ACCOUNT.email_calls % 2:  # can succeed: a fresh address; a code of this session's change
            if label(case) == EMAIL_CHANGE:
                body.clear()
                body.update(
                    newEmail=f"st_{secrets.token_hex(6)}@example.com",
                    currentPassword=ACCOUNT.password,
                )
            else:
                code = ACCOUNT.email_change_code(case.cookies)
                if code:
                    body.clear()
                    body.update(code=code)

    if label(case) == DELETE_ACCOUNT and isinstance(body, dict):
        ACCOUNT.deletions += 1
        if ACCOUNT.deletions % 2:  # can succeed: the password (the account is made anew after)
            body.clear()
            body.update(password=ACCOUNT.password)


@schemathesis.hook
def after_call(context, case, response):
    carried = ACCOUNT.carried_by(case)
    with open(STATUS_LOG, "a") as log:
        log.write(f"{label(case)}\t{response.status_code}\t{int(carried)}\n")
    if not carried:
        return
    set_cookies = SimpleCookie()
    for header in response.headers.get("set-cookie", []):
        set_cookies.load(header)
    ACCOUNT.keep((name, morsel.value) for name, morsel in set_cookies.items())
    if label(case) == CHANGE_PASSWORD and 200 <= response.status_code < 300:
        ACCOUNT.password = case.body["newPassword"]
    if not 200 <= response.status_code < 300:
        return
    if label(case) == TOTP_START:
        ACCOUNT.totp_pending = response.json()["data"]["secret"]
    elif label(case) in (TOTP_CONFIRM, RECOVERY_CODES):
        ACCOUNT.totp_on, ACCOUNT.totp_pending = True, None
        ACCOUNT.recovery = list(response.json()["data"]["recoveryCodes"])
    elif label(case) == TOTP_DISABLE:
        ACCOUNT.totp_on, ACCOUNT.recovery = False, []
    elif label(case) == EMAIL_CONFIRM:  # the account's address is the new one now
        ACCOUNT.email = response.json()["data"]["user"]["email"]
    elif label(case) == DELETE_ACCOUNT:  # gone: the next signed-in call signs up anew
        ACCOUNT.email = ACCOUNT.password = None
        ACCOUNT.cookies, ACCOUNT.totp_on, ACCOUNT.totp_pending, ACCOUNT.recovery = {}, False, None, []
