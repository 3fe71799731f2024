// Browser end-to-end test of the console's Segments page against the real server: live count
// and preview while typing a filter, a filter error marked at its position, saving, the list's
// count.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/segments.test.mjs
//
// Env as in console.test.mjs: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_UI_DIST
// (a built console served through admin-ui/dev/ui-proxy.mjs, for binaries built with
// MAILSTEAD_SKIP_UI_BUILD=1). Screenshots go to target/e2e-artifacts/segments-*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const artifacts = path.join(repoRoot, 'target', 'e2e-artifacts');
const bin = path.resolve(repoRoot, process.env.MAILSTEAD_BIN || 'target/debug/mailstead');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN_EMAIL = 'admin@example.test';
const ADMIN_PASSWORD = 'correct-horse-battery-staple-42';

const missing = [];
const executable = (p) => {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
if (!executable(bin)) missing.push(`server binary not found: ${bin}`);
if (!executable(chromiumPath)) missing.push(`chromium not found: ${chromiumPath}`);
let chromium = null;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  missing.push(`playwright-core is not installed (run \`npm ci\` in tests/e2e): ${e.message.split('\n')[0]}`);
}

function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', () => {});
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
    child.stdin.end(input ?? '');
  });
}

function apiPost(url, token, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = https.request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': payload.length },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function healthy(url) {
  return new Promise((resolve) => {
    https
      .get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      })
      .on('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (missing.length) {
  const why = missing.join('; ');
  if (process.env.MAILSTEAD_REQUIRE_PEERS === '1') test('segments e2e prerequisites', () => assert.fail(why));
  else test('segments page end-to-end', { skip: `prerequisites missing: ${why}` }, () => {});
} else {
  let server = null;
  let proxy = null;
  let browser = null;
  let page = null;
  let tmpDir = null;
  let base = '';

  before(async () => {
    await fsp.mkdir(artifacts, { recursive: true });
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mailstead-e2e-seg-'));
    const dataDir = path.join(tmpDir, 'data');
    await run(bin, ['user', 'create', '--data-dir', dataDir, '--email', ADMIN_EMAIL, '--role', 'admin'], ADMIN_PASSWORD + '\n');
    const token = (await run(bin, ['token', 'create', '--data-dir', dataDir, '--email', ADMIN_EMAIL, '--name', 'e2e']))
      .trim()
      .split('\n')
      .pop()
      .trim();
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    const logFd = fs.openSync(path.join(artifacts, 'segments-server.log'), 'w');
    server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    process.on('exit', () => server?.kill('SIGKILL'));
    const deadline = Date.now() + 30_000;
    while (!(await healthy(`${base}/healthz`))) {
      assert.ok(Date.now() < deadline, 'server did not become healthy');
      await sleep(250);
    }
    for (const [email, tags, country] of [
      ['ann@acme.example', ['certified'], 'DE'],
      ['bob@globex.example', ['certified'], 'FR'],
      ['cem@acme.example', [], 'DE'],
    ]) {
      const r = await apiPost(`${base}/api/v1/contacts`, token, { email, first_name: email.split('@')[0], tags, attributes: { country } });
      assert.equal(r.status, 201, r.text);
    }
    if (process.env.E2E_UI_DIST) {
      const { startUiProxy } = await import(path.join(repoRoot, 'admin-ui', 'dev', 'ui-proxy.mjs'));
      proxy = await startUiProxy({
        distDir: path.resolve(repoRoot, process.env.E2E_UI_DIST),
        upstream: base,
        cert: fs.readFileSync(path.join(dataDir, 'tls', 'cert.pem')),
        key: fs.readFileSync(path.join(dataDir, 'tls', 'key.pem')),
      });
      base = proxy.url;
    }
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    server?.kill('SIGTERM');
    if (tmpDir) await fsp.rm(tmpDir, { recursive: true, force: true });
  });

  test('segments page: live count, located error, save', { timeout: 120_000 }, async () => {
    const shot = (name) => page.screenshot({ path: path.join(artifacts, `segments-${name}.png`), fullPage: true });
    try {
      await page.goto(`${base}/#/segments`);
      await page.getByLabel('Email').fill(ADMIN_EMAIL);
      await page.getByLabel('Password').fill(ADMIN_PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'New segment' }).click();
      await page.getByLabel('Name').fill('Certified in Germany');
      const filter = page.getByLabel('Filter');
      await filter.fill('tag = "certified" and attributes.country = "DE"');
      await page.getByText('1 matching contact', { exact: false }).waitFor();
      await page.getByRole('link', { name: 'ann' }).waitFor();
      await shot('live-count');

      await filter.fill('tag = "certified" and\n  opend_within(90d)');
      const err = page.locator('#segment-filter-error');
      await err.waitFor();
      assert.match(await err.textContent(), /did you mean opened_within/);
      assert.equal(await err.locator('mark').textContent(), 'o', 'the error marks the first character of the unknown name');
      assert.equal(await filter.getAttribute('aria-invalid'), 'true');
      assert.ok(await page.getByRole('button', { name: 'Create segment' }).isDisabled());
      await shot('error');

      await filter.fill('tag = "certified"');
      await page.getByText('2 matching contacts').waitFor();
      await page.getByRole('button', { name: 'Create segment' }).click();
      const row = page.getByRole('row', { name: /Certified in Germany/ });
      await row.waitFor();
      await row.getByText('2', { exact: true }).waitFor();
      await shot('saved');
    } catch (e) {
      await shot('FAILED').catch(() => {});
      throw e;
    }
  });
}
