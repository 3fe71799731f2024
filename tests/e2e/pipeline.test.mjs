// Browser end-to-end test of the console's pipeline board against the real server: columns per
// stage with counts and weighted totals; dragging an opportunity to another stage changes it
// (checked through the API), and the keyboard alternative (the card's "Move to" menu) does too.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/pipeline.test.mjs
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_KEEP_DATA, E2E_UI_DIST as in
// console.test.mjs. Screenshots go to target/e2e-artifacts/pipeline/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  apiPost,
  clickNav,
  createAdmin,
  launchBrowser,
  maybeUiProxy,
  openPage,
  repoRoot,
  startServer,
  stepper,
  stopServer,
  until,
  withPrerequisites,
} from './lib.mjs';

const artifacts = path.join(repoRoot, 'target', 'e2e-artifacts', 'pipeline');
const ADMIN_EMAIL = 'sales-admin@example.test';
const ADMIN_PASSWORD = 'pipeline-e2e-password-77';
const STEP_TIMEOUT = 15_000;

let chromium = null;
await withPrerequisites('pipeline board end-to-end', (c) => {
  chromium = c;
  defineSuite();
});

function defineSuite() {
  let server = null;
  let serverExit = null;
  let tmpDir = null;
  let browser = null;
  let page = null;
  let base = '';
  let proxy = null;
  let apiToken = null;
  const opps = {};
  const log = { browserLog: [], pageErrors: [] };
  const { step } = stepper(artifacts, () => page);

  const api = async (p, body) => {
    const r = await apiPost(`${base}${p}`, apiToken, body);
    assert.ok(r.status >= 200 && r.status < 300, `POST ${p}: ${r.status} ${r.text}`);
    return r.json;
  };
  const stageOf = async (id) => {
    const r = await page.request.get(`${base}/api/v1/opportunities/${id}`, {
      headers: { Authorization: `Bearer ${apiToken}` },
    });
    assert.equal(r.status(), 200);
    return (await r.json()).stage;
  };

  before(async () => {
    await fsp.rm(artifacts, { recursive: true, force: true });
    await fsp.mkdir(artifacts, { recursive: true });
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mailstead-e2e-pipeline-'));
    const dataDir = path.join(tmpDir, 'data');
    await fsp.mkdir(dataDir);
    apiToken = await createAdmin(dataDir, ADMIN_EMAIL, ADMIN_PASSWORD);
    ({ server, serverExit, base } = await startServer({ dataDir, logFile: path.join(artifacts, 'server.log') }));
    ({ base, proxy } = await maybeUiProxy(base, dataDir));
    const account = await api('/api/v1/accounts', { name: 'Harbour Logistics', domain: 'harbour.example' });
    for (const [name, amount, stage] of [
      ['ISO 9001 internal auditors x8', '9600', 'qualification'],
      ['Lean Six Sigma green belt x4', '7200', 'qualification'],
      ['PRINCE2 foundation x10', '12000', 'proposal'],
    ]) {
      opps[name] = (await api('/api/v1/opportunities', { name, account_id: account.id, amount, currency: 'EUR', stage })).id;
    }
    browser = await launchBrowser(chromium);
    ({ page } = await openPage(browser, log, STEP_TIMEOUT));
  });

  after(async () => {
    await fsp.writeFile(path.join(artifacts, 'browser-console.log'), log.browserLog.join('\n') + '\n').catch(() => {});
    await browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    await stopServer(server, serverExit);
    if (tmpDir && process.env.E2E_KEEP_DATA !== '1') await fsp.rm(tmpDir, { recursive: true, force: true });
  });

  test('pipeline board end-to-end', { timeout: 120_000 }, async (t) => {
    await t.test(
      'shows the stages with counts and weighted totals',
      step('board', async () => {
        await page.goto(`${base}/`);
        await page.getByLabel('Email').fill(ADMIN_EMAIL);
        await page.getByLabel('Password').fill(ADMIN_PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByTestId('current-user').filter({ hasText: ADMIN_EMAIL }).waitFor();
        await clickNav(page, 'Pipeline');
        await page.getByRole('heading', { name: 'Pipeline', level: 1 }).waitFor();
        assert.match(await page.getByTestId('count-qualification').innerText(), /^2 opportunities/);
        assert.match(await page.getByTestId('count-proposal').innerText(), /^1 opportunity/);
        // qualification is 20 %: 16800 EUR weighs 3360
        const qual = page.locator('.pipeline-col[data-stage="qualification"]');
        assert.match(await qual.innerText(), /weighted\s+3360/);
      }),
    );

    await t.test(
      'dragging a card to another stage changes the opportunity',
      step('dragged', async () => {
        const id = opps['ISO 9001 internal auditors x8'];
        await page.getByTestId(`opp-${id}`).dragTo(page.locator('.pipeline-col[data-stage="negotiation"]'));
        await until('the card in negotiation', async () =>
          (await page.locator(`.pipeline-col[data-stage="negotiation"] [data-testid="opp-${id}"]`).count()) === 1,
        );
        assert.equal(await stageOf(id), 'negotiation');
        assert.match(await page.getByTestId('count-qualification').innerText(), /^1 opportunity/);
        assert.match(await page.getByTestId('count-negotiation').innerText(), /^1 opportunity/);
      }),
    );

    await t.test(
      'the keyboard alternative moves a card too',
      step('moved-by-menu', async () => {
        const id = opps['PRINCE2 foundation x10'];
        await page.getByTestId(`opp-${id}`).getByLabel(/Move PRINCE2 foundation x10 to/).selectOption('won');
        await until('the card in won', async () =>
          (await page.locator(`.pipeline-col[data-stage="won"] [data-testid="opp-${id}"]`).count()) === 1,
        );
        assert.equal(await stageOf(id), 'won');
        assert.deepEqual(log.pageErrors, [], 'no uncaught errors in the page');
      }),
    );
  });
}
