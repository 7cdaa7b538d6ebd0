'use strict';
// Starts the real auth service and gateway binaries on free ports, two static servers for the
// page (one origin on CORS_ORIGINS, one not), and Debian's Chromium through playwright-core.
// Everything it starts, it stops.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const STATIC_DIR = path.join(ROOT, 'edge-gateway', 'static');
const TARGET_DIR = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const AUTH_SERVICE_BIN = process.env.AUTH_SERVICE_BIN || path.join(TARGET_DIR, 'debug', 'auth-service');
const EDGE_GATEWAY_BIN = process.env.EDGE_GATEWAY_BIN || path.join(TARGET_DIR, 'debug', 'edge-gateway');
// The mail reader of the Rust tests (test-support), so every test reads mail alike.
const MAIL_CODE_BIN = process.env.MAIL_CODE_BIN || path.join(TARGET_DIR, 'debug', 'mail-code');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const { chromium } = require(path.join(ROOT, 'tests', 'tools', 'node_modules', 'playwright-core'));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** A static file server for `dir` on a random port; resolves to { server, origin }. */
function serveStatic(dir) {
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    const file = path.join(dir, pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(dir + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(data);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ server, origin: `http://127.0.0.1:${server.address().port}` });
    });
  });
}

function start(name, bin, env, logDir) {
  if (!fs.existsSync(bin)) {
    throw new Error(`${name} binary not found at ${bin}: build it first (cargo build -p ${name})`);
  }
  const log = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(log, 'w');
  const child = spawn(bin, [], {
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', fd, fd],
    cwd: logDir,
  });
  fs.closeSync(fd);
  child.log = log;
  child.exited = new Promise((resolve) => child.on('exit', resolve));
  return child;
}

async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([child.exited.then(() => true), sleep(10000).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await child.exited;
  }
}

async function waitFor(check, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/** Starts everything; returns the stack and a `teardown()`. */
async function startStack() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'baatcheet-browser-'));
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir);
  const stack = { tmp, mailDir: path.join(dataDir, 'mail'), children: [], servers: [] };
  try {
    const page = await serveStatic(STATIC_DIR);
    const foreign = await serveStatic(STATIC_DIR);
    stack.servers.push(page.server, foreign.server);
    stack.pageOrigin = page.origin;
    stack.foreignOrigin = foreign.origin;

    // A free port is free when asked, not always when bound: another process on the machine
    // may take it in between. Then the stack starts again on other ports (at most 3 times).
    for (let attempt = 1; ; attempt += 1) {
      const grpcPort = await freePort();
      const httpPort = await freePort();
      stack.gateway = `http://127.0.0.1:${httpPort}`;
      // The same gateway by name: WebAuthn needs a domain (localhost), not an IP address.
      stack.gatewayByName = `http://localhost:${httpPort}`;
      stack.children.push(start('auth-service', AUTH_SERVICE_BIN, {
        GRPC_ADDR: `127.0.0.1:${grpcPort}`,
        DATA_DIR: dataDir,
        SQLITE_PATH: ':memory:',
        WEBAUTHN_RP_ID: 'localhost',
        WEBAUTHN_ORIGINS: stack.gatewayByName,
      }, tmp));
      stack.children.push(start('edge-gateway', EDGE_GATEWAY_BIN, {
        PORT: String(httpPort),
        HTTP_HOST: '127.0.0.1',
        AUTH_SERVICE_URL: `http://127.0.0.1:${grpcPort}`,
        CORS_ORIGINS: page.origin,
        NODE_ENV: 'development',
      }, tmp));
      try {
        await waitFor(async () => {
          for (const child of stack.children) {
            if (child.exitCode !== null) {
              throw new Error(`${path.basename(child.spawnfile)} exited:\n${fs.readFileSync(child.log, 'utf8')}`);
            }
          }
          return (await fetch(`${stack.gateway}/readyz`)).ok;
        }, 'the gateway to be ready');
        break;
      } catch (e) {
        if (attempt >= 3 || !/Address already in use/.test(e.message)) throw e;
        await Promise.all(stack.children.map(stop));
        stack.children = [];
      }
    }

    const profile = path.join(tmp, 'chromium-profile');
    stack.context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
        '--disable-dev-shm-usage',
      ],
    });
  } catch (e) {
    await teardown(stack);
    throw e;
  }
  stack.teardown = () => teardown(stack);
  return stack;
}

async function teardown(stack) {
  if (stack.context) await stack.context.close().catch(() => {});
  await Promise.all(stack.children.map(stop));
  await Promise.all(stack.servers.map((s) => new Promise((resolve) => s.close(resolve))));
  if (process.env.KEEP_BROWSER_TEST_DIR) {
    console.log(`kept ${stack.tmp}`);
  } else {
    fs.rmSync(stack.tmp, { recursive: true, force: true });
  }
}

/** The code of mail number `skip` (0-based) to `email`, read from the dev mail folder. */
async function mailedCode(mailDir, email, skip = 0) {
  if (!fs.existsSync(MAIL_CODE_BIN)) {
    throw new Error(`${MAIL_CODE_BIN} is missing: cargo build -p baatcheet-test-support (or set MAIL_CODE_BIN)`);
  }
  return waitFor(() => {
    try {
      return execFileSync(MAIL_CODE_BIN, [mailDir, email, String(skip + 1)],
        { encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  }, `mail to ${email} in ${mailDir}`, 15000);
}

// pyotp (PyPI) in the test virtualenv: an authenticator nobody here wrote.
const PYTHON = path.join(os.homedir(), '.cache', 'baatcheet-auth', 'venv', 'bin', 'python');

/** The TOTP code of `secret` (base32) for the time `offsetSeconds` from now, as an app shows it. */
function totpCode(secret, offsetSeconds = 0) {
  if (!fs.existsSync(PYTHON)) {
    throw new Error(`${PYTHON} is missing: run scripts/install-test-deps.sh (it installs pyotp)`);
  }
  const at = Math.floor(Date.now() / 1000) + offsetSeconds;
  return execFileSync(PYTHON, ['-c', 'import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))',
    secret, String(at)], { encoding: 'utf8' }).trim();
}

/** Logs of the started processes, for a failing test's message. */
function logs(stack) {
  return stack.children
    .map((c) => `--- ${c.log}\n${fs.existsSync(c.log) ? fs.readFileSync(c.log, 'utf8').slice(-4000) : ''}`)
    .join('\n');
}

/** The log of the started process `name` (`auth-service`, `edge-gateway`). */
function logOf(stack, name) {
  const child = stack.children.find((c) => path.basename(c.log) === `${name}.log`);
  return fs.readFileSync(child.log, 'utf8');
}

module.exports = { startStack, mailedCode, totpCode, logs, logOf, waitFor };
