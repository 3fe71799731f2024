// Browser end-to-end test of the Mailstead admin console against the real server.
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/
//
// Env:
//   MAILSTEAD_BIN            server binary (default target/debug/mailstead, relative to the repo root)
//   CHROMIUM                 browser binary (default /usr/bin/chromium)
//   MAILSTEAD_REQUIRE_PEERS  "1": a missing binary/browser/playwright-core is a failure, not a skip
//   E2E_KEEP_DATA            "1": keep the temporary data dir for inspection
//   E2E_UI_DIST              a built console dir (e.g. admin-ui/dist): serve it through
//                            admin-ui/dev/ui-proxy.mjs in front of the server instead of the
//                            console embedded in the binary (for binaries built with
//                            MAILSTEAD_SKIP_UI_BUILD=1)
// Outbound mail goes through MAILSTEAD_RELAY to a minimal SMTP sink started by this test on a
// loopback port, so the delivery log, message view and queue pages show real deliveries.
// Screenshots, the server log and browser console output go to target/e2e-artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  apiPost,
  apiRequest,
  clickNav,
  createAdmin,
  launchBrowser,
  maybeUiProxy,
  openPage,
  repoRoot,
  sleep,
  startServer,
  startSmtpSink,
  stepper,
  stopServer,
  until,
  withPrerequisites,
} from './lib.mjs';

const artifacts = path.join(repoRoot, 'target', 'e2e-artifacts');
let chromium = null;

const ADMIN_EMAIL = 'admin@example.test';
const ADMIN_PASSWORD = 'correct-horse-battery-staple-42';
const NEW_COMPANY = 'Zephyrtech';
const VIEWER_EMAIL = 'viewer@example.test';
const VIEWER_PASSWORD = 'viewer-password-for-e2e-7';
const MANAGER_EMAIL = 'north-manager@example.test';
const SALES_EMAIL = 'south-sales@example.test';
const STEP_TIMEOUT = 15_000;
const TX_FROM = 'Mailstead E2E <shop@example.test>';
const TX_SUBJECT = 'Your e2e receipt';
const TX_TO = ['e2e-one@receiver.example', 'e2e-two@receiver.example'];

// The bad row (invalid email) is physical line 4 of the file; the header is line 1.
const FILLERS = 30;
const CSV = [
  'email,first_name,last_name,company,phone',
  'ada@example.test,Ada,Lovelace,Analytical Engines,+44 20 7946 0001',
  'grace@example.test,Grace,Hopper,US Navy,',
  'not-an-email,Bad,Row,Nowhere,',
  'alan@example.test,Alan,Turing,Bletchley Park,',
  // enough filler rows to need a second page of results (page size 25)
  ...Array.from({ length: FILLERS }, (_, i) => `filler${String(i).padStart(2, '0')}@example.test,Filler,Number${i},Fill Co,`),
  '',
].join('\n');
const BAD_LINE = 4;
const VALID_ROWS = 3 + FILLERS;

// ------------------------------------------------------------------ prerequisites

await withPrerequisites('admin console end-to-end', (c) => {
  chromium = c;
  defineSuite();
});


// ------------------------------------------------------------------ the suite

function defineSuite() {
  let server = null;
  let serverExit = null;
  let dataDir = null;
  let tmpDir = null;
  let browser = null;
  let context = null;
  let page = null;
  let base = '';
  let proxy = null;
  let sink = null;
  let apiToken = null;
  let txMessageId = null;
  const log = { browserLog: [], pageErrors: [] };
  const { browserLog, pageErrors } = log;
  const { screenshot, step } = stepper(artifacts, () => page);

  before(async () => {
    await fsp.mkdir(artifacts, { recursive: true });
    tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mailstead-e2e-'));
    dataDir = path.join(tmpDir, 'data');
    await fsp.mkdir(dataDir);

    // An API token for the transactional send.
    apiToken = await createAdmin(dataDir, ADMIN_EMAIL, ADMIN_PASSWORD);

    sink = await startSmtpSink();

    const logFile = path.join(artifacts, 'server.log');
    ({ server, serverExit, base } = await startServer({
      dataDir,
      logFile,
      env: { MAILSTEAD_RELAY: `smtp://127.0.0.1:${sink.port}?tls=none` },
    }));

    ({ base, proxy } = await maybeUiProxy(base, dataDir));
    browser = await launchBrowser(chromium);
    ({ context, page } = await openPage(browser, log, STEP_TIMEOUT));
  });

  after(async () => {
    try {
      await fsp.writeFile(path.join(artifacts, 'browser-console.log'), browserLog.join('\n') + '\n');
    } catch {
      /* best effort */
    }
    await browser?.close().catch(() => {});
    await proxy?.close().catch(() => {});
    await stopServer(server, serverExit);
    await sink?.close().catch(() => {});
    if (tmpDir && process.env.E2E_KEEP_DATA !== '1') await fsp.rm(tmpDir, { recursive: true, force: true });
  });

  /** GET an API path with the logged-in browser session (same cookies as the page). */
  const fetchJson = async (p) => {
    const res = await context.request.get(`${base}${p}`);
    assert.equal(res.status(), 200, `GET ${p}`);
    return res.json();
  };

  /**
   * Wait until the finished search in `results` lists `name`. The search index may make writes
   * visible a moment later than the write returns (near-real-time commit), so while the name is
   * missing, re-run the search with Enter, as a person would; log how long that took.
   */
  const searchShows = async (box, results, name) => {
    const t0 = Date.now();
    let reruns = 0;
    await until(`search results to list ${name}`, async () => {
      await results.waitFor({ timeout: 5000 });
      if ((await results.getByRole('link', { name }).count()) > 0) return true;
      reruns++;
      await sleep(250);
      await box.press('Enter');
      return false;
    });
    if (reruns) console.log(`# note: "${name}" became searchable after ${Date.now() - t0} ms (${reruns} re-searches)`);
  };

  test('admin console end-to-end', { timeout: 240_000 }, async (t) => {
    await t.test(
      'serves the SPA for unknown non-API paths and shows the login form',
      step('login-page', async () => {
        const res = await page.goto(`${base}/some/deep/link`);
        assert.equal(res.status(), 200, 'SPA fallback should answer 200');
        if ((await page.locator('#app').count()) === 0) {
          const text = (await page.textContent('body'))?.trim().slice(0, 300);
          assert.fail(
            `the server did not serve the admin console at / (is the binary built with MAILSTEAD_SKIP_UI_BUILD=1? ` +
              `rebuild it normally, or set E2E_UI_DIST=admin-ui/dist). Page says: ${text}`,
          );
        }
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      }),
    );

    await t.test(
      'rejects a wrong password with the API error message',
      step('login-wrong-password', async () => {
        await page.getByLabel('Email').fill(ADMIN_EMAIL);
        await page.getByLabel('Password').fill('definitely-wrong');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.locator('#login-error').waitFor();
      }),
    );

    await t.test(
      'logs in and shows the user in the top nav',
      step('logged-in', async () => {
        await page.getByLabel('Email').fill(ADMIN_EMAIL);
        await page.getByLabel('Password').fill(ADMIN_PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByTestId('current-user').filter({ hasText: ADMIN_EMAIL }).waitFor();
        assert.equal((await page.getByTestId('current-role').textContent()).trim(), 'admin');
        await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
      }),
    );

    await t.test(
      'creates a list',
      step('list-created', async () => {
        await clickNav(page, 'Lists');
        await page.getByRole('heading', { name: 'Lists', level: 1 }).waitFor();
        await page.locator('#list-name').fill('Newsletter');
        await page.getByRole('button', { name: 'Create list' }).click();
        await page.locator('.lists-table').getByText('Newsletter', { exact: true }).waitFor();
      }),
    );

    await t.test(
      'imports a CSV with live progress, and shows the bad row with its line number',
      step('import-done', async () => {
        const csvFile = path.join(tmpDir, 'contacts.csv');
        await fsp.writeFile(csvFile, CSV);
        await page.goto(`${base}/#/import`);
        await page.getByRole('heading', { name: 'Import contacts', level: 1 }).waitFor();
        await page.locator('#import-file').setInputFiles(csvFile);
        // lists load asynchronously
        await until('list option in the import form', async () => (await page.locator('#import-list option').count()) > 1);
        await page.getByLabel('Add contacts to list').selectOption({ label: 'Newsletter' });
        await page.getByLabel(/Upsert/).check();
        await page.getByRole('button', { name: 'Start import' }).click();
        await page.getByTestId('import-progress').waitFor();
        const status = await until(
          'the import to finish',
          async () => {
            const s = (await page.getByTestId('import-status').textContent({ timeout: 1000 }))?.trim();
            return s && s !== 'running' ? s : null;
          },
          30_000,
        );
        assert.equal(status, 'done', 'import final status');
        assert.equal((await page.getByTestId('import-created').textContent()).trim(), String(VALID_ROWS));
        assert.equal((await page.getByTestId('import-processed').textContent()).trim(), String(VALID_ROWS + 1));
        const errRows = page.getByTestId('import-errors').locator('tbody tr');
        assert.equal(await errRows.count(), 1, 'exactly one error row');
        const lineCell = (await errRows.first().locator('td').first().textContent()).trim();
        assert.equal(lineCell, String(BAD_LINE), `error should point at line ${BAD_LINE}`);
        assert.match(await page.getByTestId('import-final').textContent(), /Finished/);
      }),
    );

    await t.test(
      'pages through all contacts with "Load more" and shows the total',
      step('load-more', async () => {
        await clickNav(page, 'Contacts');
        await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
        const results = page.locator('#contact-results[data-query=""][aria-busy="false"]');
        const rows = results.locator('tbody tr');
        await until('the first page of contacts', async () => (await rows.count()) > 0);
        const first = await rows.count();
        assert.ok(first < VALID_ROWS, `first page should be partial (got ${first} rows)`);
        const summary = await page.getByTestId('result-summary').textContent();
        assert.match(summary, new RegExp(`^${VALID_ROWS} contacts`), `summary shows the total: ${summary}`);
        for (let i = 0; i < 10 && (await page.getByRole('button', { name: 'Load more' }).count()) > 0; i++) {
          const before = await rows.count();
          await page.getByRole('button', { name: 'Load more' }).click();
          await until('more rows', async () => (await rows.count()) > before);
        }
        assert.equal(await rows.count(), VALID_ROWS, 'all contacts listed after paging');
        const emails = await results.locator('td.cell-email').allTextContents();
        assert.equal(new Set(emails).size, emails.length, 'no contact is listed twice across pages');
      }),
    );

    await t.test(
      'finds a contact by a prefix of the last name while typing',
      step('search-prefix', async () => {
        await clickNav(page, 'Contacts');
        await page.getByRole('heading', { name: 'Contacts', level: 1 }).waitFor();
        const box = page.getByLabel('Search contacts');
        await box.fill('');
        await box.pressSequentially('Lovel', { delay: 40 });
        // wait until the results on screen are the ones for the full query (not an earlier keystroke)
        const results = page.locator('#contact-results[data-query="Lovel"][aria-busy="false"]');
        await searchShows(box, results, 'Ada Lovelace');
        assert.equal(await results.getByRole('link', { name: 'Grace Hopper' }).count(), 0, 'Grace should not match "Lovel"');
      }),
    );

    await t.test(
      'opens the contact, edits the company and the change survives a reload',
      step('contact-edited', async () => {
        await page.locator('#contact-results').getByRole('link', { name: 'Ada Lovelace' }).click();
        const company = page.getByLabel('Company');
        await until('the contact form to load', async () => (await company.inputValue()) === 'Analytical Engines');
        // the cards below the form load after it; an edit typed while they render must stick
        await until('the edit to be taken', async () => {
          if ((await company.inputValue()) !== NEW_COMPANY) await company.fill(NEW_COMPANY);
          return page.getByRole('button', { name: 'Save changes' }).isEnabled();
        });
        await page.getByRole('button', { name: 'Save changes' }).click();
        await page.getByTestId('save-state').filter({ hasText: 'Saved' }).waitFor();
        assert.equal(await page.locator('.contact-form .alert-error').count(), 0, 'no error banner after save');
        await page.reload();
        await until(
          `company "${NEW_COMPANY}" after reload`,
          async () => (await page.getByLabel('Company').inputValue()) === NEW_COMPANY,
        );
        // membership from the import is shown and ticked
        assert.equal(await page.getByRole('checkbox', { name: 'Newsletter' }).isChecked(), true, 'list membership from the import');
      }),
    );

    await t.test(
      'shows the edit in the contact history and in the audit trail',
      step('audit-trail', async () => {
        const ada = (await fetchJson(`/api/v1/contacts?q=${encodeURIComponent('Lovelace')}`)).items[0];
        await page.getByTestId('record-history').locator('tr[data-action="update"]', { hasText: NEW_COMPANY }).waitFor();
        await clickNav(page, 'Audit');
        await page.getByRole('heading', { name: 'Audit trail', level: 1 }).waitFor();
        await page.locator('#audit-record').fill(`contact:${ada.id}`);
        const row = page.locator(`#audit-results tr[data-record="contact:${ada.id}"][data-action="update"]`, { hasText: NEW_COMPANY });
        await row.first().waitFor();
        const text = await row.first().innerText();
        assert.ok(text.includes('Analytical Engines') && text.includes('company'), text);
      }),
    );

    await t.test(
      'finds the contact with a company: filter',
      step('search-company-filter', async () => {
        await page.goto(`${base}/#/contacts`);
        const box = page.getByLabel('Search contacts');
        await box.fill(`company:${NEW_COMPANY}`);
        const results = page.locator(`#contact-results[data-query="company:${NEW_COMPANY}"][aria-busy="false"]`);
        await searchShows(box, results, 'Ada Lovelace');
        assert.equal(await results.getByRole('link', { name: 'Grace Hopper' }).count(), 0);
        await page.getByRole('list', { name: 'Active filters' }).getByText(NEW_COMPANY).waitFor();
      }),
    );

    await t.test(
      'shows a field error from the API when creating a contact with an invalid email',
      step('contact-invalid-email', async () => {
        await page.goto(`${base}/#/contacts/new`);
        await page.getByRole('heading', { name: 'New contact', level: 1 }).waitFor();
        await page.getByLabel('Email').fill('not an email');
        await page.getByRole('button', { name: 'Create contact' }).click();
        await page.locator('#contact-email[aria-invalid="true"]').waitFor();
        await page.locator('#contact-error').waitFor();
      }),
    );

    await t.test(
      'creates an API token and shows it once',
      step('token-created', async () => {
        await page.goto(`${base}/#/tokens`);
        await page.getByRole('heading', { name: 'API tokens', level: 1 }).waitFor();
        await page.getByLabel('Name').fill('e2e token');
        await page.getByRole('button', { name: 'Create token' }).click();
        const value = await until('the new token value', async () => {
          const v = await page.locator('#new-token-value').inputValue({ timeout: 1000 });
          return v || null;
        });
        assert.match(value, /^ms_/);
        await page.locator('.tokens-table').getByText('e2e token').waitFor();
      }),
    );

    await t.test(
      'creates a webhook subscription, shows its secret once and lists it',
      step('webhook-created', async () => {
        const hookUrl = 'https://93.184.216.34/e2e-hook';
        await page.goto(`${base}/#/webhooks`);
        await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
        await page.getByLabel('URL', { exact: true }).fill(hookUrl);
        await page.getByLabel('lead.converted').check();
        await page.getByRole('button', { name: 'Create subscription' }).click();
        const secret = await until('the new webhook secret', async () => {
          const v = await page.locator('#new-webhook-secret').inputValue({ timeout: 1000 });
          return v || null;
        });
        assert.match(secret, /^whsec_/);
        await page.locator(`.webhooks-table tr[data-url="${hookUrl}"]`).getByText('active').waitFor();
        const list = await fetchJson('/api/v1/webhook-subscriptions');
        assert.equal(list.items.length, 1);
        assert.ok(!JSON.stringify(list).includes(secret), 'the list never carries the secret');
      }),
    );

    await t.test(
      'sends a transactional message through POST /api/v1/tx; the relay hands it to the SMTP sink',
      step('tx-sent', async () => {
        const res = await apiPost(`${base}/api/v1/tx`, apiToken, {
          from: TX_FROM,
          to: TX_TO,
          subject: TX_SUBJECT,
          html: '<p>Thanks, {{ name }}!</p>',
          data: { name: 'E2E' },
        });
        assert.equal(res.status, 202, `POST /api/v1/tx: ${res.text}`);
        assert.ok(Number.isInteger(res.json?.message_id), `message_id in ${res.text}`);
        assert.ok(res.json.message_id_header, 'message_id_header');
        txMessageId = res.json.message_id;
        await until(
          'the SMTP sink to receive both recipients',
          async () => TX_TO.every((r) => sink.rcpts.includes(r)) && sink.messages.length > 0,
          30_000,
        );
        assert.match(sink.messages[0].data, new RegExp(`Subject: ${TX_SUBJECT}`), 'the message reached the sink');
      }),
    );

    await t.test(
      'finds the recipient in the delivery log, filtered, with status sent',
      step('delivery-log', async () => {
        await clickNav(page, 'Deliveries');
        await page.getByRole('heading', { name: 'Delivery log', level: 1 }).waitFor();
        // data-query names the filters the rows on screen were loaded with
        const shown = (query) => page.locator(`#delivery-results[data-query="${query}"][aria-busy="false"]`);
        // unfiltered: both recipients
        await until('both recipients in the log', async () => (await shown('').locator('tbody tr').count()) >= TX_TO.length);
        await page.getByLabel('Recipient').fill('e2e-one');
        const results = shown('recipient=e2e-one');
        const row = results.locator(`tbody tr[data-recipient="${TX_TO[0]}"]`);
        // the settlement may land a moment after the sink's 250: refresh as a person would
        await until(`${TX_TO[0]} to show as sent`, async () => {
          if ((await row.count()) === 1 && (await row.getByTestId('delivery-status').textContent()).trim() === 'sent') return true;
          await sleep(300);
          await page.getByRole('button', { name: 'Refresh' }).click();
          return false;
        });
        assert.equal(await results.locator('tbody tr').count(), 1, 'the recipient filter leaves one row');
        assert.match(await row.getByTestId('last-event').textContent(), /250/, 'last event shows the 250 reply');
        assert.match(page.url(), /#\/deliveries\?recipient=e2e-one/, 'filters are kept in the URL');
        // the status filter narrows the same way
        await page.getByLabel('Status').selectOption('bounced');
        await shown('recipient=e2e-one&status=bounced').locator('.empty').waitFor();
        await page.getByLabel('Status').selectOption('sent');
        await shown('recipient=e2e-one&status=sent').locator(`tbody tr[data-recipient="${TX_TO[0]}"]`).waitFor();
      }),
    );

    await t.test(
      'opens the message and shows the 250 reply in the recipient timeline',
      step('message-view', async () => {
        await page.locator('#delivery-results').getByRole('link', { name: TX_TO[0] }).click();
        await page.getByRole('heading', { name: `Message #${txMessageId}`, level: 1 }).waitFor();
        const meta = page.getByTestId('message-meta');
        await meta.getByText(TX_SUBJECT).waitFor();
        await meta.getByText('shop@example.test').waitFor();
        const card = page.locator(`section.recipient-card[data-recipient="${TX_TO[0]}"]`);
        const timeline = card.getByRole('table', { name: `Events for ${TX_TO[0]}` });
        const sentRow = timeline.locator('tbody tr').filter({ has: page.locator('td[data-label="State"]', { hasText: 'sent' }) });
        await sentRow.waitFor();
        assert.equal((await sentRow.locator('td[data-label="Code"]').textContent()).trim(), '250', 'SMTP code of the sent event');
        assert.equal((await sentRow.locator('td[data-label="MX host"]').textContent()).trim(), '127.0.0.1', 'MX host is the relay');
        assert.equal(await page.locator('section.recipient-card').count(), TX_TO.length, 'one timeline per recipient');
      }),
    );

    await t.test(
      'shows queue health per receiving site and refreshes it by itself',
      step('queue', async () => {
        await clickNav(page, 'Queue');
        await page.getByRole('heading', { name: 'Queue health', level: 1 }).waitFor();
        const q = await fetchJson('/api/v1/queue');
        const [site, stats] = Object.entries(q.sites).find(([, st]) => st.sent > 0) ?? [];
        assert.ok(site, `a site with sent mail in ${JSON.stringify(q)}`);
        const row = page.locator(`.queue-table tbody tr[data-site="${site}"]`);
        await row.waitFor();
        const sentCell = row.locator('td[data-label="Sent"]');
        assert.equal((await sentCell.textContent()).trim(), String(stats.sent));
        assert.equal((await page.getByTestId('queue-waiting').textContent()).trim(), String(q.waiting));
        // one more message: the page picks it up without a reload (auto-refresh every 5 s)
        const res = await apiPost(`${base}/api/v1/tx`, apiToken, {
          from: TX_FROM,
          to: 'e2e-three@receiver.example',
          subject: TX_SUBJECT,
          html: '<p>again</p>',
        });
        assert.equal(res.status, 202, res.text);
        await until(
          'the queue page to refresh itself',
          async () => Number((await sentCell.textContent()).trim()) > stats.sent,
          15_000,
        );
        // the admin's "Send a test message" form goes through the same API
        await page.getByLabel('To', { exact: true }).fill('e2e-form@receiver.example');
        await page.getByRole('button', { name: 'Send test message' }).click();
        await page.getByRole('link', { name: /^message #\d+$/ }).click();
        await page.getByRole('heading', { name: /^Message #\d+$/, level: 1 }).waitFor();
        await page.locator('section.recipient-card[data-recipient="e2e-form@receiver.example"]').waitFor();
      }),
    );

    await t.test(
      'manages users: create a viewer, who gets a read-only console; change role; delete',
      step('users', async () => {
        await page.goto(`${base}/#/users`);
        await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
        await page.locator('#user-email').fill(VIEWER_EMAIL);
        await page.locator('#user-role').selectOption('viewer');
        await page.locator('#user-password').fill(VIEWER_PASSWORD);
        await page.getByRole('button', { name: 'Create user' }).click();
        const roleSelect = page.getByLabel(`Role of ${VIEWER_EMAIL}`);
        await roleSelect.waitFor();
        assert.equal(await roleSelect.inputValue(), 'viewer');

        // The viewer, in a separate browser context, sees no edit controls.
        const vctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
        vctx.setDefaultTimeout(STEP_TIMEOUT);
        try {
          const vp = await vctx.newPage();
          vp.on('pageerror', (e) => pageErrors.push(`[viewer] ${e.message}`));
          await vp.goto(`${base}/`);
          await vp.getByLabel('Email').fill(VIEWER_EMAIL);
          await vp.getByLabel('Password').fill(VIEWER_PASSWORD);
          await vp.getByRole('button', { name: 'Sign in' }).click();
          await vp.getByTestId('current-role').filter({ hasText: 'viewer' }).waitFor();
          await vp.getByLabel('Search contacts').fill('Lovelace');
          await vp.locator('#contact-results[data-query="Lovelace"]').getByRole('link', { name: 'Ada Lovelace' }).click();
          await until('the read-only contact form', async () => (await vp.getByLabel('Company').inputValue()) === NEW_COMPANY);
          assert.equal(await vp.getByLabel('Company').getAttribute('readonly'), '', 'company is read-only for viewers');
          assert.equal(await vp.getByRole('button', { name: 'Save changes' }).count(), 0, 'no save button for viewers');
          assert.equal(await vp.getByRole('button', { name: 'Delete' }).count(), 0, 'no delete button for viewers');
          assert.equal(await vp.getByRole('link', { name: 'Users', includeHidden: true }).count(), 0, 'viewers do not see Users');
          const vnav = vp.getByRole('navigation', { name: 'Primary' });
          assert.equal(await vnav.getByRole('link', { name: 'Deliveries', includeHidden: true }).count(), 1, 'viewers see the delivery log');
          assert.equal(await vnav.getByRole('link', { name: 'Queue', includeHidden: true }).count(), 1, 'viewers see the queue');
          await vp.screenshot({ path: path.join(artifacts, 'viewer-contact.png'), fullPage: true });
        } finally {
          await vctx.close();
        }

        await roleSelect.selectOption('sales');
        await until('role change to be saved', async () => {
          const r = await fetchJson('/api/v1/users');
          return r.items.find((u) => u.email === VIEWER_EMAIL)?.role === 'sales';
        });
        // As sales, the delivery pages are not offered (the API answers 403 to sales).
        const sctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
        sctx.setDefaultTimeout(STEP_TIMEOUT);
        try {
          const sp = await sctx.newPage();
          sp.on('pageerror', (e) => pageErrors.push(`[sales] ${e.message}`));
          await sp.goto(`${base}/`);
          await sp.getByLabel('Email').fill(VIEWER_EMAIL);
          await sp.getByLabel('Password').fill(VIEWER_PASSWORD);
          await sp.getByRole('button', { name: 'Sign in' }).click();
          await sp.getByTestId('current-role').filter({ hasText: 'sales' }).waitFor();
          const snav = sp.getByRole('navigation', { name: 'Primary' });
          await snav.getByRole('link', { name: 'Contacts', includeHidden: true }).waitFor({ state: 'attached' });
          assert.equal(await snav.getByRole('link', { name: 'Deliveries', includeHidden: true }).count(), 0, 'sales do not see the delivery log');
          assert.equal(await snav.getByRole('link', { name: 'Queue', includeHidden: true }).count(), 0, 'sales do not see the queue');
          const res = await sctx.request.get(`${base}/api/v1/deliveries`);
          assert.equal(res.status(), 403, 'the delivery log API refuses sales');
          await sp.goto(`${base}/#/queue`);
          await sp.getByRole('heading', { name: 'Not allowed', level: 1 }).waitFor();
        } finally {
          await sctx.close();
        }

        await page.getByRole('button', { name: `Delete ${VIEWER_EMAIL}` }).click();
        await page.getByRole('dialog').getByRole('button', { name: 'Delete user' }).click();
        await until('the user row to disappear', async () => (await page.getByLabel(`Role of ${VIEWER_EMAIL}`).count()) === 0);
      }),
    );

    await t.test(
      'sets teams: in the new-user form, and set, refused and cleared in the users table',
      step('user-teams', async () => {
        const teamOf = async (email) => {
          const u = (await fetchJson('/api/v1/users')).items.find((x) => x.email === email);
          assert.ok(u, `${email} is listed by the API`);
          return u.team;
        };

        // A manager created with a team (the form trims it).
        await page.goto(`${base}/#/users`);
        await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
        await page.locator('#user-email').fill(MANAGER_EMAIL);
        await page.locator('#user-role').selectOption('manager');
        await page.locator('#user-password').fill('manager-password-for-e2e-3');
        await page.getByLabel('Team (optional)').fill('  north ');
        assert.match(await page.locator('#user-team-hint').innerText(), /Managers with a team see only their team's CRM records/);
        await page.getByRole('button', { name: 'Create user' }).click();
        const managerTeam = page.getByLabel(`Team of ${MANAGER_EMAIL}`);
        await managerTeam.waitFor();
        assert.equal(await managerTeam.inputValue(), 'north', 'the new row shows the team');
        assert.equal(await teamOf(MANAGER_EMAIL), 'north', 'the team was saved with the new user');
        assert.equal(await page.locator('#user-team').inputValue(), '', 'the form is emptied');

        // Another user, made without a team, gets one in the table, then loses it again.
        const made = await apiPost(`${base}/api/v1/users`, apiToken, { email: SALES_EMAIL, role: 'sales', password: 'sales-password-for-e2e-5' });
        assert.equal(made.status, 201, made.text);
        assert.equal(made.json.team ?? null, null, 'created without a team');
        await page.reload();
        const salesTeam = page.getByLabel(`Team of ${SALES_EMAIL}`);
        await salesTeam.waitFor();
        assert.equal(await salesTeam.inputValue(), '');
        await salesTeam.fill('south');
        await salesTeam.press('Tab'); // leaving the field saves it
        await page.locator('.toast', { hasText: `${SALES_EMAIL} is now in team south` }).waitFor();
        await until('the team to be saved', async () => (await teamOf(SALES_EMAIL)) === 'south');
        assert.equal(await teamOf(MANAGER_EMAIL), 'north', "the other user's team is untouched");

        // A name the server refuses: its message under the field, the saved team unchanged.
        await salesTeam.fill('x'.repeat(41));
        await salesTeam.press('Enter');
        const teamError = page.locator(`#${await salesTeam.getAttribute('id')}-error`);
        await teamError.waitFor();
        assert.ok((await teamError.innerText()).trim().length > 0, 'the refusal is explained');
        assert.equal(await salesTeam.getAttribute('aria-invalid'), 'true');
        assert.equal(await teamOf(SALES_EMAIL), 'south', 'a refused team is not saved');
        await salesTeam.press('Escape');
        assert.equal(await salesTeam.inputValue(), 'south', 'Escape puts back the saved team');
        assert.equal(await teamError.count(), 0, 'and drops the message');

        // An empty field clears the team.
        await salesTeam.fill('');
        await salesTeam.press('Enter');
        await page.locator('.toast', { hasText: `${SALES_EMAIL} is in no team now` }).waitFor();
        await until('the team to be cleared', async () => (await teamOf(SALES_EMAIL)) === null);
        await page.reload();
        await page.getByLabel(`Team of ${SALES_EMAIL}`).waitFor();
        assert.equal(await page.getByLabel(`Team of ${SALES_EMAIL}`).inputValue(), '');
        assert.equal(await page.getByLabel(`Team of ${MANAGER_EMAIL}`).inputValue(), 'north');

        for (const email of [MANAGER_EMAIL, SALES_EMAIL]) {
          const id = (await fetchJson('/api/v1/users')).items.find((x) => x.email === email).id;
          const del = await apiRequest('DELETE', `${base}/api/v1/users/${id}`, apiToken);
          assert.ok(del.status >= 200 && del.status < 300, `DELETE ${email}: ${del.status}`);
        }
      }),
    );

    await t.test(
      'manages the suppression list: add, search, see it on the contact, export, remove',
      step('suppressions', async () => {
        await page.goto(`${base}/#/suppressions`);
        await page.getByRole('heading', { name: 'Suppression list', level: 1 }).waitFor();
        await page.locator('#sup-email').fill('not an address');
        await page.getByRole('button', { name: 'Suppress' }).click();
        await page.locator('#sup-email[aria-invalid="true"]').waitFor();
        // Ada's address: the contact page then says it is suppressed
        const ada = (await fetchJson(`/api/v1/contacts?q=${encodeURIComponent('Lovelace')}`)).items[0];
        await page.locator('#sup-email').fill(ada.email.toUpperCase());
        await page.locator('#sup-note').fill('asked by phone');
        await page.getByRole('button', { name: 'Suppress' }).click();
        const row = page.locator('.suppressions-table tbody tr', { hasText: ada.email });
        await row.waitFor();
        await row.getByText('added by hand').waitFor();
        await page.locator('#suppression-search').fill('by phone');
        await until('the search to keep the row', async () => (await page.locator('.suppressions-table tbody tr').count()) === 1);
        await page.locator('#suppression-search').fill('no-such-thing');
        await page.getByText('Nothing matches.').waitFor();
        const csv = await page.evaluate(async () => (await fetch('/api/v1/suppressions/export')).text());
        assert.ok(csv.includes(`${ada.email},manual,manual,asked by phone`), csv);
        await screenshot('suppressions');
        await page.goto(`${base}/#/contacts/${ada.id}`);
        await page.getByTestId('contact-feedback').getByText('This address is suppressed').waitFor();
        await page.getByTestId('contact-feedback').getByRole('link', { name: 'Suppression list' }).click();
        await page.getByRole('button', { name: `Remove ${ada.email} from the suppression list` }).click();
        await page.getByRole('dialog').getByRole('button', { name: 'Remove from the list' }).click();
        await until('the row to disappear', async () => (await page.locator('.suppressions-table tbody tr', { hasText: ada.email }).count()) === 0);
        const res = await context.request.get(`${base}/api/v1/suppressions/${encodeURIComponent(ada.email)}`);
        assert.equal(res.status(), 404, 'removed on the server too');
      }),
    );

    await t.test(
      'fits a 360 px wide screen',
      step('narrow-360', async () => {
        await page.setViewportSize({ width: 360, height: 740 });
        await page.goto(`${base}/#/contacts?q=${encodeURIComponent('Lovelace')}`);
        await page.locator('#contact-results').getByRole('link', { name: 'Ada Lovelace' }).waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `contacts page overflows horizontally by ${overflow}px at 360px`);
        await screenshot('narrow-360-contacts');
        await page.getByRole('button', { name: 'Menu' }).click();
        await page.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'Import' }).waitFor();
        await screenshot('narrow-360-menu');
        await page.locator('#contact-results').getByRole('link', { name: 'Ada Lovelace' }).click();
        await until('the contact form at 360px', async () => (await page.getByLabel('Company').inputValue()) === NEW_COMPANY);
        const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow2 <= 0, `contact page overflows horizontally by ${overflow2}px at 360px`);
        await page.goto(`${base}/#/deliveries?recipient=e2e`);
        await page.locator(`#delivery-results tbody tr[data-recipient="${TX_TO[0]}"]`).waitFor();
        const overflow3 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow3 <= 0, `delivery log overflows horizontally by ${overflow3}px at 360px`);
        await screenshot('narrow-360-deliveries');
      }),
    );

    await t.test(
      'logs out',
      step('logged-out', async () => {
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.goto(`${base}/#/contacts`);
        await page.getByRole('button', { name: 'Log out' }).click();
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        // the session is really gone on the server
        await page.reload();
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      }),
    );

    await t.test('had no uncaught errors in the page', () => {
      assert.deepEqual(pageErrors, []);
    });
  });
}
