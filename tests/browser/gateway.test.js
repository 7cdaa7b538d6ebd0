'use strict';
// A real browser against the real gateway and auth service: Debian's Chromium, driven by
// playwright-core. The page is served from a second origin (on CORS_ORIGINS); a third origin,
// not on the list, must be refused. Run with tests/browser/run.sh.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startStack, mailedCode, totpCode, logs, logOf, waitFor } = require('./harness');

let stack;

before(async () => {
  stack = await startStack();
});

after(async () => {
  if (stack) await stack.teardown();
});

const PASSWORD = 'correct horse battery';
const suffix = `${Date.now().toString(36)}${process.pid}`;
const user = { username: `browser_${suffix}`, email: `browser_${suffix}@example.com` };

async function statusText(page, pattern) {
  await page.locator('#status').filter({ hasText: pattern }).waitFor({ timeout: 15000 });
  return page.locator('#status').textContent();
}

async function tokenCookies() {
  // All of them: filtering by URL would drop refreshToken, whose Path is /api/auth.
  const cookies = await stack.context.cookies();
  return Object.fromEntries(cookies.filter((c) => /^(access|refresh)Token$/.test(c.name)).map((c) => [c.name, c]));
}

async function refusedCsrfCount() {
  const text = await (await fetch(`${stack.gateway}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('gateway_refused_requests_total') && l.includes('reason="csrf"'));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

test('sign up, verify, me, refresh, sessions, log out from a second origin', { timeout: 120000 }, async (t) => {
  const page = await stack.context.newPage();
  t.after(() => page.close());
  page.on('pageerror', (e) => console.error('page error:', e));
  try {
    await page.goto(`${stack.pageOrigin}/index.html?api=${encodeURIComponent(stack.gateway)}`);
    await statusText(page, 'Signed out');

    // Sign up.
    const register = page.locator('#register-form');
    await register.locator('[name=username]').fill(user.username);
    await register.locator('[name=email]').fill(user.email);
    await register.locator('[name=password]').fill(PASSWORD);
    await register.locator('button[type=submit]').click();
    await statusText(page, 'Code sent');

    // The code, from the dev mail folder, as a person would read it.
    const code = await mailedCode(stack.mailDir, user.email);
    assert.match(code, /^\d{6}$/);
    const verify = page.locator('#verify-form');
    assert.equal(await verify.locator('[name=email]').inputValue(), user.email);
    await verify.locator('[name=otp]').fill(code);
    await verify.locator('button[type=submit]').click();
    await statusText(page, 'Welcome');
    assert.equal(await page.locator('#me dd[data-field=username]').textContent(), user.username);

    // The tokens are in the browser's jar, httpOnly, and page script cannot read them.
    const jar = await tokenCookies();
    assert.ok(jar.accessToken && jar.refreshToken, 'both token cookies are set');
    assert.equal(jar.accessToken.httpOnly, true);
    assert.equal(jar.refreshToken.httpOnly, true);
    assert.equal(jar.accessToken.sameSite, 'Strict');
    assert.equal(jar.refreshToken.path, '/api/auth');
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes('accessToken') && !visible.includes('refreshToken'), `document.cookie: ${visible}`);
    assert.ok(!visible.includes(jar.accessToken.value) && !visible.includes(jar.refreshToken.value));
    const lastBody = await page.locator('#last-response').textContent();
    assert.ok(!lastBody.includes(jar.accessToken.value), 'no token in a JSON body');

    // "me", loaded with the cookie.
    await page.locator('#load-me').click();
    await statusText(page, `Signed in as ${user.username}`);

    // Refresh: both cookies are replaced.
    await page.locator('#refresh').click();
    await statusText(page, 'Tokens refreshed');
    const refreshed = await tokenCookies();
    assert.notEqual(refreshed.refreshToken.value, jar.refreshToken.value);
    assert.notEqual(refreshed.accessToken.value, jar.accessToken.value);
    await page.locator('#load-me').click();
    await statusText(page, `Signed in as ${user.username}`);

    // Edit the bio (PATCH /me from this origin: a CORS preflight, then the cookie-carrying call
    // with the page's Origin); after a reload, "me" shows it.
    assert.equal(await page.locator('#me dd[data-field=bio]').textContent(), '');
    const bio = `Chai first, then code. (${suffix})`;
    await page.locator('#profile-form [name=bio]').fill(bio);
    await page.locator('#profile-form button[type=submit]').click();
    await statusText(page, 'Bio saved');
    await page.reload();
    await statusText(page, `Signed in as ${user.username}`);
    assert.equal(await page.locator('#me dd[data-field=bio]').textContent(), bio);
    assert.equal(await page.locator('#profile-form [name=bio]').inputValue(), bio);

    // Sessions.
    await page.locator('#load-sessions').click();
    await statusText(page, '1 session(s)');
    assert.match(await page.locator('#sessions li').first().textContent(), /this device/);

    // An origin not on CORS_ORIGINS: the browser gets no CORS answer, and the gateway refuses
    // the cookie-carrying logout (CSRF) before the service hears of it.
    const foreign = await stack.context.newPage();
    await foreign.goto(`${stack.foreignOrigin}/style.css`);
    const csrfBefore = await refusedCsrfCount();
    const attempts = await foreign.evaluate(async (gateway) => {
      const tryFetch = async (path, init) => {
        try {
          const r = await fetch(gateway + path, { credentials: 'include', ...init });
          return `read ${r.status}`;
        } catch (e) {
          return `refused: ${e.name}`;
        }
      };
      return {
        me: await tryFetch('/api/auth/me', {}),
        logout: await tryFetch('/api/auth/logout', { method: 'POST' }),
        preflighted: await tryFetch('/api/auth/logout-all', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
        }),
        patch: await tryFetch('/api/auth/me', {
          method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"bio":"forged"}',
        }),
      };
    }, stack.gateway);
    await foreign.close();
    assert.deepEqual(attempts, {
      me: 'refused: TypeError',
      logout: 'refused: TypeError',
      preflighted: 'refused: TypeError',
      patch: 'refused: TypeError',
    });
    assert.ok((await refusedCsrfCount()) > csrfBefore, 'the gateway refused the cross-origin logout');
    await page.locator('#load-me').click();
    await statusText(page, `Signed in as ${user.username}`);
    assert.equal(await page.locator('#me dd[data-field=bio]').textContent(), bio, 'the bio is not forged');

    // Log out: both cookies are gone and "me" says signed out.
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    assert.deepEqual(Object.keys(await tokenCookies()), []);
    await page.locator('#load-me').isHidden();
    await page.reload();
    await statusText(page, 'Signed out');

    // The gateway's access log has a line per request with its id, and no secret.
    const gatewayLog = logOf(stack, 'edge-gateway');
    assert.match(gatewayLog, /"path":"\/api\/auth\/verify-otp"/);
    assert.match(gatewayLog, /"request_id":"[0-9a-f-]{36}"/);
    for (const secret of [jar.accessToken.value, jar.refreshToken.value, refreshed.refreshToken.value, PASSWORD]) {
      assert.ok(!gatewayLog.includes(secret), 'a secret in the gateway log');
    }
    // The code alone, not as a piece of a timestamp's fraction or another number.
    assert.doesNotMatch(gatewayLog, new RegExp(`(?<![\\d.])${code}(?!\\d)`), 'the code in the gateway log');
  } catch (e) {
    e.message += `\n${logs(stack)}`;
    throw e;
  }
});

test('the page served by the gateway itself signs in same-origin under its CSP', { timeout: 60000 }, async (t) => {
  const page = await stack.context.newPage();
  t.after(() => page.close());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${stack.gateway}/`);
  await statusText(page, 'Signed out');
  const login = page.locator('#login-form');
  await login.locator('[name=identifier]').fill(user.email);
  await login.locator('[name=password]').fill(PASSWORD);
  await login.locator('button[type=submit]').click();
  await statusText(page, `Signed in as ${user.username}`);
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes('Token'), `document.cookie: ${visible}`);
  await page.locator('#logout').click();
  await statusText(page, 'Logged out.');
  assert.deepEqual(errors.filter((e) => !e.includes('401')), [], 'no script or CSP errors');
  await waitFor(async () => Object.keys(await tokenCookies()).length === 0, 'cookies to be cleared', 5000);
});

test('two-factor sign-in on the page: an authenticator app, recovery codes, sign-in by emailed code', { timeout: 120000 }, async (t) => {
  const page = await stack.context.newPage();
  t.after(() => page.close());
  const other = { username: `mfa_${suffix}`, email: `mfa_${suffix}@example.com` };
  try {
    await page.goto(`${stack.gateway}/`);
    await statusText(page, 'Signed out');
    const register = page.locator('#register-form');
    await register.locator('[name=username]').fill(other.username);
    await register.locator('[name=email]').fill(other.email);
    await register.locator('[name=password]').fill(PASSWORD);
    await register.locator('button[type=submit]').click();
    await statusText(page, 'Code sent');
    await page.locator('#verify-form [name=otp]').fill(await mailedCode(stack.mailDir, other.email));
    await page.locator('#verify-form button[type=submit]').click();
    await statusText(page, 'You are signed in');

    // Set up the app: the secret on the page, a code computed by pyotp, the password.
    await page.locator('#totp-start').click();
    await statusText(page, 'Add the secret');
    const secret = (await page.locator('#totp-secret').textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.match(await page.locator('#totp-uri').getAttribute('href'), /^otpauth:\/\/totp\//);
    const confirm = page.locator('#totp-confirm-form');
    await confirm.locator('[name=code]').fill(totpCode(secret));
    await confirm.locator('[name=currentPassword]').fill(PASSWORD);
    await confirm.locator('button[type=submit]').click();
    await statusText(page, 'Two-factor sign-in is on');
    const recovery = await page.locator('#recovery-codes li').allTextContents();
    assert.equal(recovery.length, 10);
    await page.locator('#totp-state').filter({ hasText: '10 recovery code(s) left' }).waitFor();

    // The password alone is no longer enough: no token cookie until the app's code.
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    const login = page.locator('#login-form');
    await login.locator('[name=identifier]').fill(other.email);
    await login.locator('[name=password]').fill(PASSWORD);
    await login.locator('button[type=submit]').click();
    await statusText(page, 'Enter the code of your authenticator app');
    assert.deepEqual(Object.keys(await tokenCookies()), []);
    assert.ok(!(await page.evaluate(() => document.cookie)).includes('mfa'), 'the challenge is httpOnly');
    await page.locator('#mfa-form [name=totpCode]').fill(totpCode(secret, 30));
    await page.locator('#mfa-form button[type=submit]').click();
    await statusText(page, `Signed in as ${other.username}`);
    assert.deepEqual(Object.keys(await tokenCookies()).sort(), ['accessToken', 'refreshToken']);

    // Sign in by emailed code, then a recovery code as the second factor.
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    await page.locator('#code-request-form [name=email]').fill(other.email);
    await page.locator('#code-request-form button[type=submit]').click();
    await statusText(page, 'a sign-in code was sent');
    // Mail 0 was the sign-up code, 1 the notice that two-factor sign-in is on, 2 this code.
    await page.locator('#code-login-form [name=code]').fill(await mailedCode(stack.mailDir, other.email, 2));
    await page.locator('#code-login-form button[type=submit]').click();
    await statusText(page, 'Enter the code of your authenticator app');
    await page.locator('#mfa-form [name=recoveryCode]').fill(recovery[0]);
    await page.locator('#mfa-form button[type=submit]').click();
    await statusText(page, `Signed in as ${other.username}`);
    await page.locator('#totp-state').filter({ hasText: '9 recovery code(s) left' }).waitFor();

    // Turn it off with the password; the password alone signs in again.
    await page.locator('#totp-disable-form [name=proof]').fill(PASSWORD);
    await page.locator('#totp-disable-form button[type=submit]').click();
    await statusText(page, 'Two-factor sign-in is off');
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    await login.locator('[name=identifier]').fill(other.email);
    await login.locator('[name=password]').fill(PASSWORD);
    await login.locator('button[type=submit]').click();
    await statusText(page, `Signed in as ${other.username}`);
  } catch (e) {
    e.message += `\n${logs(stack)}`;
    throw e;
  }
});

/** Chromium's virtual authenticator (DevTools WebAuthn domain) on `page`: a platform
 * authenticator with resident keys and user verification that always says yes. */
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** The sign-in methods of this page's current session, as GET /sessions shows them. */
async function currentMethods(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/auth/sessions', { credentials: 'include' });
    const { data } = await r.json();
    return data.sessions.find((s) => s.current).authMethods;
  });
}

test('passkeys on the page: add one, sign in with it alone and as a second factor; a cloned authenticator is refused', { timeout: 120000 }, async (t) => {
  const page = await stack.context.newPage();
  t.after(() => page.close());
  const other = { username: `pk_${suffix}`, email: `pk_${suffix}@example.com` };
  try {
    const { cdp, authenticatorId } = await virtualAuthenticator(page);
    await page.goto(`${stack.gatewayByName}/`);
    await statusText(page, 'Signed out');
    const register = page.locator('#register-form');
    await register.locator('[name=username]').fill(other.username);
    await register.locator('[name=email]').fill(other.email);
    await register.locator('[name=password]').fill(PASSWORD);
    await register.locator('button[type=submit]').click();
    await statusText(page, 'Code sent');
    await page.locator('#verify-form [name=otp]').fill(await mailedCode(stack.mailDir, other.email));
    await page.locator('#verify-form button[type=submit]').click();
    await statusText(page, 'You are signed in');

    // Add a passkey: the authenticator makes a discoverable credential for this user.
    const add = page.locator('#passkey-add-form');
    await add.locator('[name=name]').fill('Laptop');
    await add.locator('[name=currentPassword]').fill(PASSWORD);
    await add.locator('button[type=submit]').click();
    await statusText(page, 'Passkey "Laptop" added');
    await page.locator('#passkey-list li').filter({ hasText: 'Laptop' }).waitFor();
    let { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true);
    assert.equal(credentials[0].rpId, 'localhost');

    // Log out, then sign in with the passkey alone: no username, no password.
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    await page.locator('#passkey-login-button').click();
    await statusText(page, `Signed in with a passkey as ${other.username}`);
    assert.deepEqual(await currentMethods(page), ['passkey']);
    assert.ok(!(await page.evaluate(() => document.cookie)).includes('passkey'), 'the sign-in id is httpOnly');

    // Turn two-step sign-in on; then the passkey completes the challenge after the password.
    await page.locator('#totp-start').click();
    await statusText(page, 'Add the secret');
    const secret = (await page.locator('#totp-secret').textContent()).trim();
    const confirm = page.locator('#totp-confirm-form');
    await confirm.locator('[name=code]').fill(totpCode(secret));
    await confirm.locator('[name=currentPassword]').fill(PASSWORD);
    await confirm.locator('button[type=submit]').click();
    await statusText(page, 'Two-factor sign-in is on');
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    const login = page.locator('#login-form');
    await login.locator('[name=identifier]').fill(other.email);
    await login.locator('[name=password]').fill(PASSWORD);
    await login.locator('button[type=submit]').click();
    await statusText(page, 'Enter the code of your authenticator app');
    await page.locator('#mfa-passkey').click();
    await statusText(page, `Signed in as ${other.username}`);
    assert.deepEqual(await currentMethods(page), ['password', 'passkey']);

    // A clone of the authenticator, copied before its last uses: its counter is behind.
    ({ credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId }));
    const [credential] = credentials;
    assert.ok(credential.signCount >= 2, `signCount ${credential.signCount}`);
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: credential.credentialId });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      credential: { ...credential, signCount: 0 },
    });
    await page.locator('#logout').click();
    await statusText(page, 'Logged out.');
    await page.locator('#passkey-login-button').click();
    const refused = await statusText(page, /signature counter went back/);
    assert.match(refused, /cloned/);
    // No token cookie for this origin (a URL under /api/auth matches both cookies' paths).
    const cookies = await stack.context.cookies(`${stack.gatewayByName}/api/auth/refresh`);
    assert.deepEqual(cookies.filter((c) => /Token$/.test(c.name)).map((c) => c.name), []);
    assert.match(logOf(stack, 'auth-service'), /passkey counter did not go up|counter went back/);
  } catch (e) {
    e.message += `\n${logs(stack)}`;
    throw e;
  }
});
