// Helpers shared by the browser end-to-end tests (console.test.mjs, campaigns.test.mjs): the
// prerequisites (server binary, Debian chromium, playwright-core), child processes, a minimal
// SMTP sink, API calls with a bearer token, starting `mailstead serve` and the browser.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const bin = path.resolve(repoRoot, process.env.MAILSTEAD_BIN || 'target/debug/mailstead');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const requirePeers = process.env.MAILSTEAD_REQUIRE_PEERS === '1';

export function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * Checks the prerequisites; defines the suite with `define(chromium)` when they are there,
 * otherwise a skipped test (or a failing one with MAILSTEAD_REQUIRE_PEERS=1).
 */
export async function withPrerequisites(name, define) {
  const missing = [];
  if (!isExecutable(bin)) missing.push(`server binary not found or not executable: ${bin} (build it with \`cargo build\` or set MAILSTEAD_BIN)`);
  if (!isExecutable(chromiumPath)) missing.push(`chromium not found: ${chromiumPath} (apt-get install chromium, or set CHROMIUM)`);
  let chromium = null;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    missing.push(`playwright-core is not installed (run \`npm ci\` in tests/e2e): ${e.message.split('\n')[0]}`);
  }
  if (!missing.length) return define(chromium);
  const why = missing.join('; ');
  if (requirePeers) {
    test(`${name} prerequisites (MAILSTEAD_REQUIRE_PEERS=1)`, () => {
      assert.fail(`e2e prerequisites missing: ${why}`);
    });
  } else {
    console.log(`${name} skipped: ${why}`);
    test(name, { skip: `prerequisites missing: ${why}` }, () => {});
  }
}

/** Runs a command; resolves to its output (stdout + stderr, or only stdout with `stdoutOnly`). */
export function run(cmd, args, input, { stdoutOnly = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      out += d;
      stdout += d;
    });
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdoutOnly ? stdout : out) : reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${code}:\n${out}`)),
    );
    child.stdin.end(input ?? '');
  });
}

/**
 * A loopback SMTP server that speaks just enough SMTP to accept mail: 220 greeting, 250 to
 * EHLO/HELO/MAIL/RCPT/RSET/NOOP, 354 to DATA, 250 after the lone "." line, 221 to QUIT.
 * Records every accepted recipient and message.
 */
export function startSmtpSink() {
  const rcpts = [];
  const messages = [];
  const sockets = new Set();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let data = null;
    let envelope = [];
    sock.write('220 e2e-sink ESMTP ready\r\n');
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (data !== null) {
          if (line === '.') {
            messages.push({ rcpts: envelope, data: data.join('\r\n') });
            data = null;
            envelope = [];
            sock.write('250 2.0.0 Ok: queued by e2e-sink\r\n');
          } else data.push(line.startsWith('..') ? line.slice(1) : line);
          continue;
        }
        const verb = line.split(/[ :]/)[0].toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') sock.write('250 e2e-sink\r\n');
        else if (verb === 'MAIL') {
          envelope = [];
          sock.write('250 2.1.0 Ok\r\n');
        } else if (verb === 'RCPT') {
          const addr = /<([^>]*)>/.exec(line)?.[1] ?? '';
          envelope.push(addr);
          rcpts.push(addr);
          sock.write('250 2.1.5 Ok\r\n');
        } else if (verb === 'DATA') {
          data = [];
          sock.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        } else if (verb === 'QUIT') sock.end('221 2.0.0 Bye\r\n');
        else if (verb === 'RSET' || verb === 'NOOP') sock.write('250 2.0.0 Ok\r\n');
        else sock.write('502 5.5.2 Command not implemented\r\n');
      }
    });
  });
  return new Promise((resolve, reject) => {
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        port: srv.address().port,
        rcpts,
        messages,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            srv.close(() => r());
          }),
      }),
    );
  });
}

/** POST JSON to the API with a bearer token (as a script or integration would). */
export function apiPost(url, token, body) {
  return apiRequest('POST', url, token, body);
}

/**
 * Any API request with a bearer token (a JSON body when `body` is given); resolves to
 * { status, json, text, headers }.
 */
export function apiRequest(method, url, token, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = { Authorization: `Bearer ${token}` };
    if (payload) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': payload.length });
    const req = https.request(url, { method, rejectUnauthorized: false, timeout: 10_000, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode, json, text, headers: res.headers });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function httpsStatus(url) {
  return new Promise((resolve) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn() until it returns a truthy value; fail with the last observed value after `timeout`. */
export async function until(what, fn, timeout = 15_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await sleep(100);
  }
}

/**
 * Starts `mailstead serve` on a free loopback port with `env` added to the environment, its
 * output in `logFile`, and waits for /healthz. Resolves to { server, serverExit, base }.
 */
export async function startServer({ dataDir, logFile, env = {} }) {
  const port = await freePort();
  const base = `https://127.0.0.1:${port}`;
  const logFd = fs.openSync(logFile, 'w');
  const server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', logFd, logFd],
    env: {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...env,
    },
  });
  fs.closeSync(logFd);
  const serverExit = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  let exited = null;
  serverExit.then((x) => (exited = x));
  process.on('exit', () => server?.kill('SIGKILL'));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      const log = fs.readFileSync(logFile, 'utf8').slice(-4000);
      throw new Error(`mailstead serve exited early (${JSON.stringify(exited)}); log tail:\n${log}`);
    }
    if ((await httpsStatus(`${base}/healthz`)) === 200) break;
    if (Date.now() > deadline) {
      const log = fs.readFileSync(logFile, 'utf8').slice(-4000);
      throw new Error(`${base}/healthz did not return 200 within 30 s; log tail:\n${log}`);
    }
    await sleep(250);
  }
  return { server, serverExit, base };
}

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopServer(server, serverExit) {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    const res = await Promise.race([serverExit, sleep(5000).then(() => null)]);
    if (!res) {
      server.kill('SIGKILL');
      await serverExit;
    }
  }
}

/**
 * With E2E_UI_DIST set: serves that console build through admin-ui/dev/ui-proxy.mjs in front
 * of the server. Resolves to { base, proxy } (proxy null without E2E_UI_DIST).
 */
export async function maybeUiProxy(base, dataDir) {
  if (!process.env.E2E_UI_DIST) return { base, proxy: null };
  const { startUiProxy } = await import(path.join(repoRoot, 'admin-ui', 'dev', 'ui-proxy.mjs'));
  const tlsDir = path.join(dataDir, 'tls');
  const proxy = await startUiProxy({
    distDir: path.resolve(repoRoot, process.env.E2E_UI_DIST),
    upstream: base,
    cert: fs.readFileSync(path.join(tlsDir, 'cert.pem')),
    key: fs.readFileSync(path.join(tlsDir, 'key.pem')),
  });
  console.log(`console served from ${process.env.E2E_UI_DIST} via ${proxy.url} -> ${base}`);
  return { base: proxy.url, proxy };
}

export function launchBrowser(chromium) {
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Clicks a link of the primary navigation, opening its group's menu first (on wide screens the
 * sections are grouped in disclosure menus).
 */
export async function clickNav(page, name) {
  const nav = page.getByRole('navigation', { name: 'Primary' });
  const link = nav.getByRole('link', { name, exact: true });
  if (!(await link.isVisible())) {
    const group = nav.locator('li.nav-group', { has: page.getByRole('link', { name, exact: true, includeHidden: true }) });
    await group.locator('button.nav-group-button').click();
  }
  await link.click();
}

/** Signs in through the console's login form and waits for the top bar to show the user. */
export async function login(page, base, email, password) {
  await page.goto(`${base}/`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('current-user').filter({ hasText: email }).waitFor();
}

/** Creates an admin with the CLI and an API token for it; resolves to the token. */
export async function createAdmin(dataDir, email, password) {
  await run(bin, ['user', 'create', '--data-dir', dataDir, '--email', email, '--role', 'admin'], password + '\n');
  // the last line printed is the token
  const tokenOut = await run(bin, ['token', 'create', '--data-dir', dataDir, '--email', email, '--name', 'e2e'], '', {
    stdoutOnly: true,
  });
  const token = tokenOut.trim().split('\n').pop().trim();
  assert.match(token, /^ms_/, `token create should print the token last; got:\n${tokenOut}`);
  return token;
}

/**
 * A 1280×900 browser context and page; the page's console output, uncaught errors and 5xx
 * responses are collected in `log.browserLog` (uncaught errors also in `log.pageErrors`).
 */
export async function openPage(browser, log, timeout) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(timeout);
  const page = await context.newPage();
  page.on('console', (m) => log.browserLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => {
    log.pageErrors.push(e.message);
    log.browserLog.push(`[pageerror] ${e.stack || e.message}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 500) log.browserLog.push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  return { context, page };
}

/**
 * Numbered full-page screenshots into `dir`, and `step(name, fn)`: a subtest body that takes a
 * screenshot after `fn` (FAILED-… on failure) and skips once an earlier step failed, since the
 * steps build on each other.
 */
export function stepper(dir, getPage) {
  let shot = 0;
  let failedStep = null;
  const screenshot = async (name) => {
    const page = getPage();
    if (!page) return;
    const file = path.join(dir, `${String(++shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  };
  const step = (name, fn) => async (st) => {
    if (failedStep) return st.skip(`skipped: step "${failedStep}" failed`);
    try {
      await fn();
      await screenshot(name);
    } catch (e) {
      failedStep = name;
      await screenshot(`FAILED-${name}`);
      throw e;
    }
  };
  return { screenshot, step };
}

/**
 * The usual suite around a fresh server: `before` makes a temp data dir with an admin (and its
 * API token), starts the server (behind the UI proxy with E2E_UI_DIST), opens the browser;
 * `after` writes the browser log to `artifacts` and tears everything down. Returns a context
 * whose fields are filled by `before`: base, token, dataDir, browser, page, log, and
 * `api(method, path, body)` (a checked bearer-token call resolving to the JSON) and `step` (see
 * stepper). Screenshots and the server log go to `artifacts`. `env` (the server's extra
 * environment) may be an async function, called in `before` (e.g. to start an SMTP sink first).
 */
export function e2eSuite(chromium, { name, artifacts, adminEmail, adminPassword, timeout = 15_000, env = {} }) {
  const ctx = { base: '', token: null, dataDir: null, browser: null, page: null, log: { browserLog: [], pageErrors: [] } };
  let server = null;
  let serverExit = null;
  let proxy = null;
  let tmpDir = null;
  ctx.step = stepper(artifacts, () => ctx.page).step;
  ctx.api = async (method, p, body) => {
    const r = await apiRequest(method, `${ctx.base}${p}`, ctx.token, body);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${p}: ${r.status} ${r.text}`);
    return r.json;
  };
  before(async () => {
    await fsp.rm(artifacts, { recursive: true, force: true });
    await fsp.mkdir(artifacts, { recursive: true });
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), `mailstead-e2e-${name}-`));
    ctx.dataDir = path.join(tmpDir, 'data');
    await fsp.mkdir(ctx.dataDir);
    ctx.token = await createAdmin(ctx.dataDir, adminEmail, adminPassword);
    let base;
    const serverEnv = typeof env === 'function' ? await env() : env;
    ({ server, serverExit, base } = await startServer({ dataDir: ctx.dataDir, logFile: path.join(artifacts, 'server.log'), env: serverEnv }));
    ({ base: ctx.base, proxy } = await maybeUiProxy(base, ctx.dataDir));
    ctx.browser = await launchBrowser(chromium);
    ({ page: ctx.page } = await openPage(ctx.browser, ctx.log, timeout));
  });
  after(async () => {
    await fsp.writeFile(path.join(artifacts, 'browser-console.log'), ctx.log.browserLog.join('\n') + '\n').catch(() => {});
    await ctx.browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    await stopServer(server, serverExit);
    if (tmpDir && process.env.E2E_KEEP_DATA !== '1') await fsp.rm(tmpDir, { recursive: true, force: true });
  });
  return ctx;
}
