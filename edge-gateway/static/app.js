// The page of the edge gateway. No build step, no framework.
// The API is this page's own origin, or the one in ?api=http://host:port when the page is
// served from elsewhere (that origin must be on the gateway's CORS_ORIGINS).
// Tokens live in httpOnly cookies: this script never sees them; it only sends credentials.
'use strict';

const apiOrigin = (new URLSearchParams(location.search).get('api') || '').replace(/\/+$/, '');
const API = `${apiOrigin}/api/auth`;
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const init = { method, credentials: 'include', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (e) {
    return { ok: false, status: 0, json: null, error: { message: `network error: ${e.message}` } };
  }
  let json = null;
  try { json = await response.json(); } catch { /* not JSON */ }
  $('last-response').textContent = `${method} ${path} → ${response.status}\n${JSON.stringify(json, null, 2)}`;
  return { ok: response.ok, status: response.status, json, error: json && json.error };
}

function say(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function sayError(result) {
  const e = result.error || {};
  const fields = (e.details || []).map((d) => `${d.field}: ${d.message}`).join('; ');
  const extra = e.retryAfterSeconds ? ` (retry in ${e.retryAfterSeconds}s)` : '';
  say(`${e.message || `failed (${result.status})`}${fields ? ` — ${fields}` : ''}${extra}`, true);
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// WebAuthn travels as JSON with binary fields in base64url (the service's options, the
// credentials sent back); the browser's API wants and gives ArrayBuffers.
const b64url = {
  decode(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = '';
    for (const b of bytes) raw += String.fromCharCode(b);
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
};

function withBuffers(publicKey) {
  const options = { ...publicKey, challenge: b64url.decode(publicKey.challenge) };
  if (publicKey.user) options.user = { ...publicKey.user, id: b64url.decode(publicKey.user.id) };
  for (const list of ['excludeCredentials', 'allowCredentials']) {
    if (publicKey[list]) {
      options[list] = publicKey[list].map((c) => ({ ...c, id: b64url.decode(c.id) }));
    }
  }
  return options;
}

function credentialJson(credential) {
  const r = credential.response;
  const response = { clientDataJSON: b64url.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64url.encode(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = b64url.encode(r.authenticatorData);
    response.signature = b64url.encode(r.signature);
    response.userHandle = r.userHandle ? b64url.encode(r.userHandle) : null;
  }
  return {
    id: credential.id,
    rawId: b64url.encode(credential.rawId),
    type: credential.type,
    response,
    extensions: credential.getClientExtensionResults(),
  };
}

// navigator.credentials.get() with the options of a sign-in or a challenge: the assertion as
// JSON, or null when the user cancelled (said on the page).
async function passkeyAssertion(publicKey) {
  try {
    const credential = await navigator.credentials.get({ publicKey: withBuffers(publicKey) });
    return credentialJson(credential);
  } catch (e) {
    say(`No passkey was used: ${e.message}`, true);
    return null;
  }
}

// Whether the signed-in user has TOTP on (GET /me says), which decides how a proof is read.
let totpOn = false;

function showSignedIn(user) {
  $('signed-out').hidden = true;
  $('signed-in').hidden = false;
  const me = $('me');
  me.replaceChildren();
  for (const [label, value] of [
    ['Username', user.username], ['Email', user.email], ['Bio', user.bio], ['Id', user.id],
    ['Status', user.status],
  ]) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dd.dataset.field = label.toLowerCase();
    me.append(dt, dd);
  }
  $('profile-form').elements.bio.value = user.bio || '';
  totpOn = (user.secondFactors || []).includes('totp');
  $('totp-state').textContent = totpOn
    ? `On · ${user.recoveryCodesRemaining} recovery code(s) left`
    : 'Off';
  $('totp-start').hidden = totpOn;
  $('totp-disable-form').hidden = !totpOn;
  loadPasskeys();
}

async function loadPasskeys() {
  const result = await api('GET', '/passkeys');
  if (!result.ok) return;
  $('passkey-list').replaceChildren(...result.json.data.passkeys.map((p) => {
    const li = document.createElement('li');
    li.dataset.passkeyId = p.id;
    li.textContent = `${p.name} · added ${p.createdAt}${p.lastUsedAt ? ` · last used ${p.lastUsedAt}` : ''} `;
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Remove';
    button.addEventListener('click', () => {
      const form = $('passkey-delete-form');
      form.elements.id.value = p.id;
      $('passkey-delete-name').textContent = p.name;
      form.hidden = false;
    });
    li.append(button);
    return li;
  }));
}

// A first factor's answer: signed in, or the second factor is asked for (the challenge id is in
// an httpOnly cookie; this script never sees it).
function afterFirstFactor(result) {
  if (!result.ok) return sayError(result);
  const data = result.json.data;
  if (data.mfaRequired) {
    $('mfa-form').hidden = false;
    $('mfa-form').elements.totpCode.focus();
    mfaPasskey = data.passkey ? data.passkey.publicKey : null;
    $('mfa-passkey').hidden = !mfaPasskey;
    return say('Enter the code of your authenticator app (or a recovery code).');
  }
  $('mfa-form').hidden = true;
  showSignedIn(data.user);
  say(`Signed in as ${data.user.username}`);
}

function showSignedOut() {
  $('signed-in').hidden = true;
  $('signed-out').hidden = false;
  $('sessions').replaceChildren();
}

async function loadMe() {
  let result = await api('GET', '/me');
  if (result.status === 401) {
    // The access cookie may have expired: one refresh, then try again.
    const refreshed = await api('POST', '/refresh');
    if (refreshed.ok) result = await api('GET', '/me');
  }
  if (result.ok) {
    showSignedIn(result.json.data.user);
    say(`Signed in as ${result.json.data.user.username}`);
  } else {
    showSignedOut();
    if (result.status === 401) say('Signed out. Sign up or sign in.');
    else sayError(result);
  }
  return result;
}

async function loadSessions() {
  const result = await api('GET', '/sessions');
  if (!result.ok) return sayError(result);
  const list = $('sessions');
  list.replaceChildren();
  for (const s of result.json.data.sessions) {
    const li = document.createElement('li');
    li.dataset.sessionId = s.id;
    li.textContent = `${s.current ? '(this device) ' : ''}${s.userAgent || 'unknown device'} · ${s.clientIp || '?'} · since ${s.createdAt}`;
    if (!s.current) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'End';
      button.addEventListener('click', async () => {
        const r = await api('DELETE', `/sessions/${encodeURIComponent(s.id)}`);
        if (r.ok) loadSessions(); else sayError(r);
      });
      li.append(' ', button);
    }
    list.append(li);
  }
  say(`${result.json.data.sessions.length} session(s)`);
}

$('register-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = formData(event.target);
  const result = await api('POST', '/register', body);
  if (!result.ok) return sayError(result);
  $('verify-form').elements.email.value = body.email;
  say(`Code sent to ${result.json.data.email}. Enter it below.`);
});

$('verify-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = await api('POST', '/verify-otp', formData(event.target));
  if (!result.ok) return sayError(result);
  showSignedIn(result.json.data.user);
  say(`Welcome, ${result.json.data.user.username}! You are signed in.`);
});

$('resend').addEventListener('click', async () => {
  const email = $('verify-form').elements.email.value;
  const result = await api('POST', '/resend-otp', { email });
  if (!result.ok) return sayError(result);
  say(`A new code was sent to ${email}.`);
});

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  afterFirstFactor(await api('POST', '/login', formData(event.target)));
});

$('code-request-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = formData(event.target);
  const result = await api('POST', '/login/code/request', body);
  if (!result.ok) return sayError(result);
  $('code-login-form').elements.email.value = body.email;
  $('code-login-form').hidden = false;
  say(`If ${body.email} has an account, a sign-in code was sent to it.`);
});

$('code-login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  afterFirstFactor(await api('POST', '/login/code', formData(event.target)));
});

// The passkey options of the pending challenge, when the account has passkeys.
let mfaPasskey = null;

$('mfa-passkey').addEventListener('click', async () => {
  const passkeyCredential = await passkeyAssertion(mfaPasskey);
  if (!passkeyCredential) return;
  const result = await api('POST', '/mfa/complete', { passkeyCredential });
  if (!result.ok) return sayError(result);
  $('mfa-form').hidden = true;
  await loadMe();
});

$('passkey-login-button').addEventListener('click', async () => {
  const started = await api('POST', '/login/passkey/start');
  if (!started.ok) return sayError(started);
  const credential = await passkeyAssertion(started.json.data.publicKey);
  if (!credential) return;
  const result = await api('POST', '/login/passkey', { credential });
  if (!result.ok) return sayError(result);
  // GET /me shows the factors with the user.
  if (!(await loadMe()).ok) return;
  say(`Signed in with a passkey as ${result.json.data.user.username}`);
});

$('passkey-add-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const { name, currentPassword } = formData(event.target);
  const started = await api('POST', '/passkeys/register/start');
  if (!started.ok) return sayError(started);
  let created;
  try {
    created = await navigator.credentials.create({ publicKey: withBuffers(started.json.data.publicKey) });
  } catch (e) {
    return say(`No passkey was made: ${e.message}`, true);
  }
  const result = await api('POST', '/passkeys/register/finish',
    { credential: credentialJson(created), name, currentPassword });
  event.target.elements.currentPassword.value = '';
  if (!result.ok) return sayError(result);
  await loadPasskeys();
  say(`Passkey "${result.json.data.name}" added.`);
});

$('passkey-delete-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const { id } = formData(event.target);
  const result = await api('POST', '/passkeys/delete', proofBody(event.target.elements.proof.value, { id }));
  event.target.reset();
  if (!result.ok) return sayError(result);
  event.target.hidden = true;
  await loadPasskeys();
  say(`Passkey removed; ${result.json.data.revokedSessionCount} other session(s) ended.`);
});

// With TOTP on, 6 digits are the app's code and xxxxx-xxxxx a recovery code; otherwise the
// password. `extra` is the rest of the body.
function proofBody(raw, extra = {}) {
  const proof = raw.trim();
  if (totpOn && /^[0-9]{6}$/.test(proof)) return { ...extra, totpCode: proof };
  if (totpOn && /^[a-z2-7]{5}[- ]?[a-z2-7]{5}$/i.test(proof)) return { ...extra, recoveryCode: proof };
  return { ...extra, password: raw };
}

let securityPage = '';

async function loadSecurity(more) {
  const query = more && securityPage ? `?pageToken=${encodeURIComponent(securityPage)}` : '';
  const result = await api('GET', `/security-events${query}`);
  if (!result.ok) return sayError(result);
  const items = result.json.data.events.map((e) => {
    const li = document.createElement('li');
    li.textContent = `${e.at} ${e.kind}${e.detail ? ` (${e.detail})` : ''}${e.clientIp ? ` from ${e.clientIp}` : ''}`;
    if (e.userAgent) {
      // The user agent is whatever the client said: shown apart, never as part of the entry.
      const agent = document.createElement('small');
      agent.className = 'hint';
      agent.textContent = ` [${e.userAgent}]`;
      li.append(agent);
    }
    return li;
  });
  if (more) $('security-events').append(...items);
  else $('security-events').replaceChildren(...items);
  securityPage = result.json.data.nextPageToken || '';
  $('more-security').hidden = !securityPage;
}

$('load-security').addEventListener('click', () => loadSecurity(false));
$('more-security').addEventListener('click', () => loadSecurity(true));

$('delete-account-start').addEventListener('click', () => {
  $('delete-account-form').hidden = false;
  $('delete-account-start').hidden = true;
});

$('delete-account-cancel').addEventListener('click', () => {
  $('delete-account-form').reset();
  $('delete-account-form').hidden = true;
  $('delete-account-start').hidden = false;
});

$('delete-account-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('me').querySelector('[data-field="username"]').textContent;
  if (event.target.elements.confirm.value.trim() !== username) {
    return say(`Type your username (${username}) to confirm.`, true);
  }
  const result = await api('POST', '/account/delete', proofBody(event.target.elements.proof.value));
  event.target.reset();
  if (!result.ok) return sayError(result);
  event.target.hidden = true;
  $('delete-account-start').hidden = false;
  showSignedOut();
  say('Your account was deleted. Goodbye!');
});

$('mfa-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const { totpCode, recoveryCode } = formData(event.target);
  const body = totpCode ? { totpCode } : { recoveryCode };
  const result = await api('POST', '/mfa/complete', body);
  event.target.reset();
  if (!result.ok) return sayError(result);
  $('mfa-form').hidden = true;
  // GET /me shows the factors (and recovery codes left) with the user.
  await loadMe();
});

$('totp-start').addEventListener('click', async () => {
  const result = await api('POST', '/mfa/totp/start');
  if (!result.ok) return sayError(result);
  $('totp-secret').textContent = result.json.data.secret;
  $('totp-uri').href = result.json.data.otpauthUri;
  $('totp-confirm-form').hidden = false;
  say('Add the secret to your authenticator app, then confirm with a code.');
});

$('totp-confirm-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = await api('POST', '/mfa/totp/confirm', formData(event.target));
  event.target.reset();
  if (!result.ok) return sayError(result);
  event.target.hidden = true;
  const list = $('recovery-codes');
  list.replaceChildren(...result.json.data.recoveryCodes.map((code) => {
    const li = document.createElement('li');
    li.textContent = code;
    return li;
  }));
  $('recovery').hidden = false;
  await loadMe();
  say('Two-factor sign-in is on. Keep the recovery codes somewhere safe.');
});

$('totp-disable-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const proof = event.target.elements.proof.value.trim();
  // 6 digits: the app's code; xxxxx-xxxxx: a recovery code; anything else: the password.
  const body = /^[0-9]{6}$/.test(proof) ? { totpCode: proof }
    : /^[a-z2-7]{5}[- ]?[a-z2-7]{5}$/i.test(proof) ? { recoveryCode: proof }
      : { password: proof };
  const result = await api('POST', '/mfa/totp/disable', body);
  event.target.reset();
  if (!result.ok) return sayError(result);
  $('recovery').hidden = true;
  await loadMe();
  say('Two-factor sign-in is off.');
});

$('email-change-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = await api('POST', '/email/change', formData(event.target));
  event.target.elements.currentPassword.value = '';
  if (!result.ok) return sayError(result);
  $('email-confirm-form').hidden = false;
  say('A code was sent to the new address (if no other account uses it).');
});

$('email-confirm-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = await api('POST', '/email/confirm', formData(event.target));
  event.target.reset();
  if (!result.ok) return sayError(result);
  event.target.hidden = true;
  $('email-change-form').reset();
  showSignedIn(result.json.data.user);
  say(`Your email is now ${result.json.data.user.email}.`);
});

$('profile-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  // PATCH changes only the fields sent: here the bio.
  const result = await api('PATCH', '/me', { bio: event.target.elements.bio.value });
  if (!result.ok) return sayError(result);
  showSignedIn(result.json.data.user);
  say('Bio saved.');
});

$('load-me').addEventListener('click', loadMe);
$('load-sessions').addEventListener('click', loadSessions);

$('refresh').addEventListener('click', async () => {
  const result = await api('POST', '/refresh');
  if (!result.ok) { showSignedOut(); return sayError(result); }
  say(`Tokens refreshed; access until ${result.json.data.accessTokenExpiresAt}`);
});

for (const [id, path, text] of [['logout', '/logout', 'Logged out.'], ['logout-all', '/logout-all', 'Logged out everywhere.']]) {
  $(id).addEventListener('click', async () => {
    const result = await api('POST', path);
    showSignedOut();
    if (result.ok) say(text); else sayError(result);
  });
}

loadMe();
