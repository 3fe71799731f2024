// Browser test of the email template library: every template in templates/ is rendered with
// its sample data by the real binary (`mailstead templates render`), loaded into Debian's
// chromium at 320, 375 and 600 px wide, and checked: no horizontal overflow, every image has
// an alt attribute, the unsubscribe link is there, nothing is fetched from the network but the
// brand logo. Screenshots (light at each width, dark at 375 px) go to
// target/e2e-artifacts/templates/.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS as in console.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bin, chromiumPath, repoRoot, withPrerequisites } from './lib.mjs';

const artifacts = path.join(repoRoot, 'target', 'e2e-artifacts', 'templates');

const WIDTHS = [320, 375, 600];
const PUBLIC_URL = 'https://mail.northbridge.example';
const LOGO_URL = 'https://northbridge.example/brand/logo.png';
const BRAND_ENV = {
  MAILSTEAD_BRAND_COMPANY_NAME: 'Northbridge Professional Academy',
  // the postal address comes from the environment, as an operator would set it
  MAILSTEAD_POSTAL_ADDRESS: 'Northbridge Professional Academy Ltd | 14 Carver Street | Sheffield S1 4FS | United Kingdom',
  MAILSTEAD_BRAND_LOGO_URL: LOGO_URL,
  MAILSTEAD_BRAND_WEBSITE: 'https://northbridge.example',
  MAILSTEAD_BRAND_SUPPORT_EMAIL: 'support@northbridge.example',
  MAILSTEAD_BRAND_SOCIAL_LINKS: 'LinkedIn=https://www.linkedin.com/company/northbridge-example',
  MAILSTEAD_PUBLIC_URL: PUBLIC_URL,
};
// a 160×48 logo, served in place of the brand URL (no network in tests)
const LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="96" viewBox="0 0 320 96"><rect width="320" height="96" rx="8" fill="#1d4e89"/><text x="24" y="60" font-family="sans-serif" font-size="34" font-weight="700" fill="#fff">Northbridge</text></svg>`;

let chromium = null;

function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${code}:\n${out}`))));
  });
}

await withPrerequisites('template library in chromium', (c) => {
  chromium = c;
  defineSuite();
});

function defineSuite() {
  let tmp;
  let outDir;
  let browser;
  let index;
  const offline = [];

  before(async () => {
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'mailstead-templates-'));
    outDir = path.join(tmp, 'out');
    await fsp.rm(artifacts, { recursive: true, force: true });
    await fsp.mkdir(artifacts, { recursive: true });
    const env = { ...process.env, ...BRAND_ENV, MAILSTEAD_DATA_DIR: path.join(tmp, 'data') };
    await run(bin, ['templates', 'render', '--out', outDir], env);
    index = JSON.parse(await fsp.readFile(path.join(outDir, 'index.json'), 'utf8'));
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  });

  after(async () => {
    await browser?.close();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  test('the binary renders the whole library, and a bulk render without a postal address fails with the setting named', async () => {
    assert.ok(index.length >= 18, `${index.length} templates rendered`);
    const cats = new Set(index.map((t) => t.id.split('/')[0]));
    assert.deepEqual([...cats].sort(), ['marketing', 'operational', 'training', 'welcome']);
    const env = { ...process.env, ...BRAND_ENV, MAILSTEAD_POSTAL_ADDRESS: '', MAILSTEAD_DATA_DIR: path.join(tmp, 'data') };
    await assert.rejects(run(bin, ['templates', 'render', '--out', path.join(tmp, 'bad')], env), /postal_address/);
  });

  test('every template at 320, 375 and 600 px: no overflow, alt on every image, unsubscribe link, no remote fetches', async () => {
    const problems = [];
    for (const t of index) {
      const text = await fsp.readFile(path.join(outDir, t.text), 'utf8');
      if (!/Unsubscribe[^\n]*\(https:\/\/mail\.northbridge\.example\/u\//.test(text)) problems.push(`${t.id}: plain text lacks the unsubscribe link`);
      if (/[<>]\s*\/?(div|td|table|span)\b/i.test(text)) problems.push(`${t.id}: markup in the plain text`);
    }
    for (const [width, scheme] of [...WIDTHS.map((w) => [w, 'light']), [375, 'dark']]) {
      const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: scheme });
      await context.route('**/*', async (route) => {
        const url = route.request().url();
        if (url === LOGO_URL) return route.fulfill({ status: 200, contentType: 'image/svg+xml', body: LOGO_SVG });
        if (url.startsWith('file:')) return route.continue();
        offline.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      for (const t of index) {
        await page.goto(pathToFileURL(path.join(outDir, t.html)).href, { waitUntil: 'load' });
        const r = await page.evaluate((publicUrl) => {
          const doc = document.documentElement;
          const imgs = [...document.images];
          const unsub = [...document.querySelectorAll('a[href]')].filter((a) => /unsubscribe/i.test(a.textContent) && a.href.startsWith(`${publicUrl}/u/`));
          const unsubVisible = unsub.some((a) => {
            const s = getComputedStyle(a);
            const b = a.getBoundingClientRect();
            return s.display !== 'none' && s.visibility !== 'hidden' && b.width > 0 && b.height > 0;
          });
          return {
            scrollWidth: Math.max(doc.scrollWidth, document.body.scrollWidth),
            innerWidth: window.innerWidth,
            noAlt: imgs.filter((i) => !i.hasAttribute('alt')).map((i) => i.outerHTML.slice(0, 120)),
            brokenImages: imgs.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.src),
            unsubVisible,
            lang: doc.getAttribute('lang'),
            colorScheme: document.querySelector('meta[name="color-scheme"]')?.getAttribute('content'),
            buttons: document.querySelectorAll('.ms-btn a').length,
          };
        }, PUBLIC_URL);
        const tag = `${t.id} @${width}px ${scheme}`;
        if (r.scrollWidth > r.innerWidth) problems.push(`${tag}: horizontal overflow (${r.scrollWidth} > ${r.innerWidth})`);
        if (r.noAlt.length) problems.push(`${tag}: images without alt: ${r.noAlt.join(', ')}`);
        if (r.brokenImages.length) problems.push(`${tag}: images not loaded: ${r.brokenImages.join(', ')}`);
        if (!r.unsubVisible) problems.push(`${tag}: no visible unsubscribe link`);
        if (r.lang !== 'en') problems.push(`${tag}: lang is ${r.lang}`);
        if (r.colorScheme !== 'light dark') problems.push(`${tag}: color-scheme meta is ${r.colorScheme}`);
        if (r.buttons < 1) problems.push(`${tag}: no call-to-action button`);
        const shot = `${t.id.replace('/', '--')}-${width}${scheme === 'dark' ? '-dark' : ''}.png`;
        await page.screenshot({ path: path.join(artifacts, shot), fullPage: true });
      }
      await context.close();
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(offline, [], 'no request may leave the machine except the (stubbed) logo');
  });
}
