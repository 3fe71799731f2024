// Browser end-to-end test of the console's Segments page against the real server: live count
// and preview while typing a filter, a filter error marked at its position, saving, the list's
// count.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/segments.test.mjs
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_KEEP_DATA, E2E_UI_DIST as in
// console.test.mjs. Screenshots go to target/e2e-artifacts/segments/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { e2eSuite, login, repoRoot, withPrerequisites } from './lib.mjs';

const ADMIN_EMAIL = 'admin@example.test';
const ADMIN_PASSWORD = 'correct-horse-battery-staple-42';

await withPrerequisites('segments page end-to-end', (chromium) => defineSuite(chromium));

function defineSuite(chromium) {
  const s = e2eSuite(chromium, {
    name: 'segments',
    artifacts: path.join(repoRoot, 'target', 'e2e-artifacts', 'segments'),
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
  });

  test('segments page: live count, located error, save', { timeout: 120_000 }, async (t) => {
    const page = () => s.page;

    await t.test(
      'a filter shows its live count and preview',
      s.step('live-count', async () => {
        for (const [email, tags, country] of [
          ['ann@acme.example', ['certified'], 'DE'],
          ['bob@globex.example', ['certified'], 'FR'],
          ['cem@acme.example', [], 'DE'],
        ]) {
          await s.api('POST', '/api/v1/contacts', { email, first_name: email.split('@')[0], tags, attributes: { country } });
        }
        await login(page(), s.base, ADMIN_EMAIL, ADMIN_PASSWORD);
        await page().goto(`${s.base}/#/segments`);
        await page().getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
        await page().getByRole('button', { name: 'New segment' }).click();
        await page().getByLabel('Name').fill('Certified in Germany');
        await page().getByLabel('Filter').fill('tag = "certified" and attributes.country = "DE"');
        await page().getByText('1 matching contact', { exact: false }).waitFor();
        await page().getByRole('link', { name: 'ann' }).waitFor();
      }),
    );

    await t.test(
      'a filter error is marked where it is and blocks saving',
      s.step('error', async () => {
        const filter = page().getByLabel('Filter');
        await filter.fill('tag = "certified" and\n  opend_within(90d)');
        const err = page().locator('#segment-filter-error');
        await err.waitFor();
        assert.match(await err.textContent(), /did you mean opened_within/);
        assert.equal(await err.locator('mark').textContent(), 'o', 'the error marks the first character of the unknown name');
        assert.equal(await filter.getAttribute('aria-invalid'), 'true');
        assert.ok(await page().getByRole('button', { name: 'Create segment' }).isDisabled());
      }),
    );

    await t.test(
      'a saved segment shows its count in the list',
      s.step('saved', async () => {
        await page().getByLabel('Filter').fill('tag = "certified"');
        await page().getByText('2 matching contacts').waitFor();
        await page().getByRole('button', { name: 'Create segment' }).click();
        const row = page().getByRole('row', { name: /Certified in Germany/ });
        await row.waitFor();
        await row.getByText('2', { exact: true }).waitFor();
        const saved = await s.api('GET', '/api/v1/segments');
        const seg = (saved.items ?? saved).find((x) => x.name === 'Certified in Germany');
        assert.equal(seg?.filter, 'tag = "certified"', JSON.stringify(saved));
      }),
    );

    assert.deepEqual(s.log.pageErrors, [], 'no uncaught errors in the page');
  });
}
