// Browser end-to-end test of the console's campaign pages against the real server: the
// template library gallery (preview at 320 px without horizontal overflow), copying a library
// template, the MJML editor (an error shown at its line and column, then fixed), a campaign
// created in the editor to a list and started, and its report (stats cards, SVG timeline).
// Also checks that the grouped top navigation fits one row at 1280 px.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/campaigns.test.mjs
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_KEEP_DATA, E2E_UI_DIST as in
// console.test.mjs. Outbound mail goes through MAILSTEAD_RELAY to a loopback SMTP sink started
// here. Screenshots, the server log and browser console output go to
// target/e2e-artifacts/campaigns/.
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
  startSmtpSink,
  stepper,
  stopServer,
  until,
  withPrerequisites,
} from './lib.mjs';

const artifacts = path.join(repoRoot, 'target', 'e2e-artifacts', 'campaigns');
const ADMIN_EMAIL = 'marketing-admin@example.test';
const ADMIN_PASSWORD = 'campaign-e2e-password-31';
const STEP_TIMEOUT = 15_000;
const LIBRARY_ID = 'marketing/industry-insights-newsletter';
const LIST_NAME = 'Spring cohort';
const RECIPIENTS = ['ada@receiver.example', 'grace@receiver.example'];
const CAMPAIGN_NAME = 'Spring insights';
const SERVER_ENV = {
  MAILSTEAD_BRAND_COMPANY_NAME: 'Northbridge Professional Academy',
  MAILSTEAD_POSTAL_ADDRESS: 'Northbridge Professional Academy Ltd | 14 Carver Street | Sheffield S1 4FS | United Kingdom',
  MAILSTEAD_PUBLIC_URL: 'https://mail.northbridge.example',
};
// An unclosed template expression, inserted as its own line into the MJML.
const BAD_LINE_TEXT = '<mj-section><mj-column><mj-text>Hello {{ contact.first_name </mj-text></mj-column></mj-section>';
const BAD_LINE = 2;

let chromium = null;
await withPrerequisites('campaign console end-to-end', (c) => {
  chromium = c;
  defineSuite();
});

function defineSuite() {
  let server = null;
  let serverExit = null;
  let tmpDir = null;
  let dataDir = null;
  let browser = null;
  let context = null;
  let page = null;
  let base = '';
  let proxy = null;
  let sink = null;
  let apiToken = null;
  let listId = null;
  let templateId = null;
  const log = { browserLog: [], pageErrors: [] };
  const { screenshot, step } = stepper(artifacts, () => page);

  const api = async (p, body) => {
    const r = await apiPost(`${base}${p}`, apiToken, body);
    assert.ok(r.status >= 200 && r.status < 300, `POST ${p}: ${r.status} ${r.text}`);
    return r.json;
  };

  before(async () => {
    await fsp.rm(artifacts, { recursive: true, force: true });
    await fsp.mkdir(artifacts, { recursive: true });
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mailstead-e2e-campaigns-'));
    dataDir = path.join(tmpDir, 'data');
    await fsp.mkdir(dataDir);
    apiToken = await createAdmin(dataDir, ADMIN_EMAIL, ADMIN_PASSWORD);
    sink = await startSmtpSink();
    ({ server, serverExit, base } = await startServer({
      dataDir,
      logFile: path.join(artifacts, 'server.log'),
      env: { ...SERVER_ENV, MAILSTEAD_RELAY: `smtp://127.0.0.1:${sink.port}?tls=none` },
    }));
    ({ base, proxy } = await maybeUiProxy(base, dataDir));

    // The audience, through the API as an integration would create it.
    listId = (await api('/api/v1/lists', { name: LIST_NAME })).id;
    for (const email of RECIPIENTS) {
      await api('/api/v1/contacts', { email, first_name: email.split('@')[0], lists: [listId] });
    }

    browser = await launchBrowser(chromium);
    ({ context, page } = await openPage(browser, log, STEP_TIMEOUT));
  });

  after(async () => {
    await fsp.writeFile(path.join(artifacts, 'browser-console.log'), log.browserLog.join('\n') + '\n').catch(() => {});
    await browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    await stopServer(server, serverExit);
    await sink?.close().catch(() => {});
    if (tmpDir && process.env.E2E_KEEP_DATA !== '1') await fsp.rm(tmpDir, { recursive: true, force: true });
  });

  /** The preview iframe's document: its width and how wide its content is. */
  const frameMetrics = (frame) =>
    frame.evaluate((f) => {
      const doc = f.contentDocument;
      return {
        frameWidth: f.clientWidth,
        innerWidth: doc.defaultView.innerWidth,
        scrollWidth: Math.max(doc.documentElement.scrollWidth, doc.body ? doc.body.scrollWidth : 0),
        text: doc.body ? doc.body.innerText.slice(0, 2000) : '',
        ready: doc.readyState === 'complete' && !!doc.body && doc.body.childElementCount > 0,
      };
    });

  test('campaign console end-to-end', { timeout: 240_000 }, async (t) => {
    await t.test(
      'logs in; the grouped navigation fits one row at 1280 px',
      step('logged-in', async () => {
        await page.goto(`${base}/`);
        await page.getByLabel('Email').fill(ADMIN_EMAIL);
        await page.getByLabel('Password').fill(ADMIN_PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByTestId('current-user').filter({ hasText: ADMIN_EMAIL }).waitFor();
        const rows = await page.evaluate(() => {
          const tops = [...document.querySelectorAll('.topbar .brand, .nav-group-button, .userbox')].map((e) =>
            Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2),
          );
          return { tops, height: document.querySelector('.topbar').getBoundingClientRect().height };
        });
        assert.ok(rows.tops.length >= 5, `brand, 3 groups and the user box: ${JSON.stringify(rows)}`);
        assert.ok(Math.max(...rows.tops) - Math.min(...rows.tops) <= 4, `top bar items on one row: ${JSON.stringify(rows)}`);
        assert.ok(rows.height <= 64, `top bar is one row high: ${rows.height}px`);
        // a group opens as a menu and closes with Escape
        await page.locator('#nav-email-button').click();
        await page.locator('#nav-email-menu').getByRole('link', { name: 'Campaigns' }).waitFor();
        await screenshot('nav-email-open');
        await page.keyboard.press('Escape');
        await page.locator('#nav-email-menu').waitFor({ state: 'hidden' });
        assert.equal(await page.locator('#nav-email-button').getAttribute('aria-expanded'), 'false');
      }),
    );

    await t.test(
      'previews a library template at 320 px without horizontal overflow',
      step('library-320', async () => {
        await clickNav(page, 'Templates');
        await page.getByRole('heading', { name: 'Templates', level: 1 }).waitFor();
        await page.locator(`[data-library-id="${LIBRARY_ID}"]`).click();
        assert.equal(await page.locator(`[data-library-id="${LIBRARY_ID}"]`).getAttribute('aria-pressed'), 'true');
        const frame = page.getByTestId('preview-frame');
        for (const width of [600, 375, 320]) {
          await page.getByRole('radio', { name: new RegExp(`\\(${width} px\\)`) }).check();
          await page.locator(`[data-testid="preview-frame"][data-width="${width}"]`).waitFor();
          const m = await until(`the preview at ${width} px`, async () => {
            const x = await frameMetrics(await frame.elementHandle());
            return x.ready && x.innerWidth === width ? x : null;
          });
          assert.ok(m.scrollWidth <= m.innerWidth, `preview at ${width} px overflows: content ${m.scrollWidth}px > ${m.innerWidth}px`);
          assert.match(m.text, /Unsubscribe/i, 'the preview has the engine-owned footer');
          assert.match(m.text, /14 Carver Street/, 'the footer shows the postal address from the environment');
        }
        await screenshot('library-preview-320');
      }),
    );

    await t.test(
      'copies the library template and opens it in the editor',
      step('template-copied', async () => {
        await page.getByRole('button', { name: 'Use this template' }).click();
        await page.waitForURL(/#\/templates\/\d+$/);
        templateId = Number(/#\/templates\/(\d+)$/.exec(page.url())[1]);
        await page.getByLabel('MJML', { exact: true }).waitFor();
        assert.match(await page.getByLabel('MJML', { exact: true }).inputValue(), /mj-section/);
        await until('the editor preview', async () => (await frameMetrics(await page.getByTestId('preview-frame').elementHandle())).ready);
      }),
    );

    let original = '';
    await t.test(
      'shows an MJML error at its line and column, then saves the fix',
      step('template-error', async () => {
        const area = page.getByLabel('MJML', { exact: true });
        original = await area.inputValue();
        const lines = original.split('\n');
        const broken = [...lines.slice(0, BAD_LINE - 1), BAD_LINE_TEXT, ...lines.slice(BAD_LINE - 1)].join('\n');
        await area.fill(broken);
        await page.getByRole('button', { name: 'Save and preview' }).click();
        const err = page.getByTestId('template-error');
        await err.waitFor();
        const where = (await page.getByTestId('template-error-location').textContent()).trim();
        const m = /^Line (\d+), column (\d+)$/.exec(where);
        assert.ok(m, `error location shown as "Line N, column M": ${where}`);
        assert.equal(Number(m[1]), BAD_LINE, `the error points at the inserted line: ${await err.textContent()}`);
        assert.equal(await area.getAttribute('aria-invalid'), 'true');
        // the caret was moved to the error
        const caretLine = await area.evaluate((el) => el.value.slice(0, el.selectionStart).split('\n').length);
        assert.equal(caretLine, BAD_LINE, 'the caret is on the line of the error');
        await screenshot('template-error');

        await area.fill(original.replace(/<\/mj-text>/, ' <p>Edited in the e2e test.</p></mj-text>'));
        await page.getByRole('button', { name: 'Save and preview' }).click();
        await err.waitFor({ state: 'detached' });
        await until('the saved edit in the preview', async () =>
          /Edited in the e2e test\./.test((await frameMetrics(await page.getByTestId('preview-frame').elementHandle())).text),
        );
      }),
    );

    let campaignId = null;
    await t.test(
      'creates a campaign to the list in the editor',
      step('campaign-created', async () => {
        await clickNav(page, 'Campaigns');
        await page.getByRole('heading', { name: 'Campaigns', level: 1 }).waitFor();
        await page.getByRole('link', { name: 'New campaign' }).click();
        await page.getByRole('heading', { name: 'New campaign', level: 1 }).waitFor();
        // an empty form is refused field by field
        await page.getByRole('button', { name: 'Create campaign' }).click();
        await page.locator('.field-invalid').first().waitFor();
        await page.getByLabel('Campaign name').fill(CAMPAIGN_NAME);
        await page.getByLabel('Subject').fill('Spring insights for {{ contact.first_name | default("you") }}');
        await page.getByLabel('From', { exact: true }).fill('Northbridge Academy <news@northbridge.example>');
        await until('the template option', async () => (await page.locator(`#camp-template option[value="${templateId}"]`).count()) === 1);
        await page.getByLabel('Template').selectOption(String(templateId));
        await page.getByRole('checkbox', { name: new RegExp(LIST_NAME) }).check();
        assert.match(await page.locator('#camp-audience').textContent(), /2 members/);
        await page.getByRole('button', { name: 'Create campaign' }).click();
        await page.waitForURL(/#\/campaigns\/\d+$/);
        campaignId = Number(/#\/campaigns\/(\d+)$/.exec(page.url())[1]);
        await page.getByRole('heading', { name: CAMPAIGN_NAME, level: 1 }).waitFor();
        assert.equal((await page.getByTestId('campaign-status').first().textContent()).trim(), 'draft');
      }),
    );

    await t.test(
      'starts the campaign and shows the report with stats cards and the timeline chart',
      step('report', async () => {
        await page.getByRole('button', { name: 'Start sending' }).click();
        await page.getByRole('dialog').getByRole('button', { name: 'Start sending' }).click();
        await page.waitForURL(new RegExp(`#/campaigns/${campaignId}/report$`));
        await page.getByRole('heading', { name: `Report: ${CAMPAIGN_NAME}`, level: 1 }).waitFor();
        await until(
          'the campaign to finish queueing',
          async () => (await page.getByTestId('campaign-status').first().textContent()).trim() === 'finished',
          30_000,
        );
        assert.equal((await page.getByTestId('stat-audience').textContent()).trim(), '2');
        assert.equal((await page.getByTestId('stat-queued').textContent()).trim(), '2');
        // deliveries settle after queueing: refresh as a person would
        await until(
          'both deliveries in the report',
          async () => {
            if ((await page.getByTestId('stat-delivered').textContent()).trim() === '2') return true;
            await page.getByRole('button', { name: 'Refresh' }).click();
            return false;
          },
          30_000,
        );
        assert.equal(sink.rcpts.filter((r) => RECIPIENTS.includes(r)).length, 2, 'both recipients reached the sink');
        for (const key of ['bounced', 'opens', 'unique_opens', 'machine_opens', 'clicks', 'unsubscribes', 'complaints', 'open_rate', 'click_rate']) {
          await page.getByTestId(`stat-${key}`).waitFor();
        }
        const chart = page.getByTestId('timeline-chart');
        await chart.waitFor();
        assert.equal(await chart.getAttribute('role'), 'img');
        assert.match(await chart.locator('title').first().textContent(), /Hourly/);
        assert.match(await chart.locator('desc').textContent(), /Delivered: 2/);
        assert.ok((await chart.locator('[data-series="delivered"] circle').count()) >= 1, 'a delivered data point');
        await page.getByText('Show the data as a table').click();
        await page.locator('.chart-table tbody tr').first().waitFor();
        await page.getByTestId('report-domains').locator('tr[data-domain="receiver.example"]').waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `report overflows by ${overflow}px`);
      }),
    );

    await t.test(
      'lists the campaign with its status badge',
      step('campaign-list', async () => {
        await clickNav(page, 'Campaigns');
        const row = page.locator(`.campaigns-table tr[data-campaign-id="${campaignId}"]`);
        await row.waitFor();
        assert.equal((await row.getByTestId('campaign-status').textContent()).trim(), 'finished');
        // the list names arrive with their own request: the row names the list once they have
        await until('the row to name the list', async () => new RegExp(LIST_NAME).test(await row.textContent()));
      }),
    );

    await t.test(
      'the report fits a 375 px wide screen',
      step('report-375', async () => {
        await page.setViewportSize({ width: 375, height: 800 });
        await page.goto(`${base}/#/campaigns/${campaignId}/report`);
        await page.getByTestId('timeline-chart').waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `report overflows by ${overflow}px at 375 px`);
        await page.setViewportSize({ width: 1280, height: 900 });
      }),
    );

    await t.test('had no uncaught errors in the page', () => {
      assert.deepEqual(log.pageErrors, []);
    });
  });
}
