// Browser end-to-end test of the console's pipeline board against the real server: columns per
// stage with counts and weighted totals; dragging an opportunity to another stage changes it
// (checked through the API), and the keyboard alternative (the card's "Move to" menu) does too.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/pipeline.test.mjs
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_KEEP_DATA, E2E_UI_DIST as in
// console.test.mjs. Screenshots go to target/e2e-artifacts/pipeline/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { clickNav, e2eSuite, login, repoRoot, until, withPrerequisites } from './lib.mjs';

const ADMIN_EMAIL = 'sales-admin@example.test';
const ADMIN_PASSWORD = 'pipeline-e2e-password-77';

await withPrerequisites('pipeline board end-to-end', (chromium) => defineSuite(chromium));

function defineSuite(chromium) {
  const s = e2eSuite(chromium, {
    name: 'pipeline',
    artifacts: path.join(repoRoot, 'target', 'e2e-artifacts', 'pipeline'),
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
  });
  const opps = {};
  const stageOf = async (id) => (await s.api('GET', `/api/v1/opportunities/${id}`)).stage;
  const step = s.step;

  test('pipeline board end-to-end', { timeout: 120_000 }, async (t) => {
    const page = s.page;
    await t.test(
      'shows the stages with counts and weighted totals',
      step('board', async () => {
        const account = await s.api('POST', '/api/v1/accounts', { name: 'Harbour Logistics', domain: 'harbour.example' });
        for (const [name, amount, stage] of [
          ['ISO 9001 internal auditors x8', '9600', 'qualification'],
          ['Lean Six Sigma green belt x4', '7200', 'qualification'],
          ['PRINCE2 foundation x10', '12000', 'proposal'],
        ]) {
          opps[name] = (await s.api('POST', '/api/v1/opportunities', { name, account_id: account.id, amount, currency: 'EUR', stage })).id;
        }
        await login(page, s.base, ADMIN_EMAIL, ADMIN_PASSWORD);
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
        assert.deepEqual(s.log.pageErrors, [], 'no uncaught errors in the page');
      }),
    );
  });
}
