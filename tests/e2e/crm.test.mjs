// Browser end-to-end test of the console's CRM pages against the real server: the lead inbox
// (sorted by score, score breakdown, assignment checked through the API), lead conversion from
// the lead page to its account page (contacts, opportunities, timeline), a note added on a
// contact showing in its timeline, the tasks-due page (overdue marked, ticking marks done) and
// the GDPR page (export download, erasure after typing the address).
//
//   (cd tests/e2e && npm ci) && node --test tests/e2e/crm.test.mjs
//
// Env: MAILSTEAD_BIN, CHROMIUM, MAILSTEAD_REQUIRE_PEERS, E2E_KEEP_DATA, E2E_UI_DIST as in
// console.test.mjs. Screenshots go to target/e2e-artifacts/crm/.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { apiRequest, clickNav, e2eSuite, login, repoRoot, startSmtpSink, until, withPrerequisites } from './lib.mjs';

const ADMIN_EMAIL = 'crm-admin@example.test';
const ADMIN_PASSWORD = 'crm-e2e-password-4242';
const SALES_EMAIL = 'sally.sales@example.test';
const SALES_TEAM = 'east';

await withPrerequisites('CRM console end-to-end', (chromium) => defineSuite(chromium));

/** YYYY-MM-DD in local time, `days` from today (the console uses the browser's date). */
function day(days) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function defineSuite(chromium) {
  // campaign mail goes through MAILSTEAD_RELAY to a loopback SMTP sink
  let sink = null;
  const s = e2eSuite(chromium, {
    name: 'crm',
    artifacts: path.join(repoRoot, 'target', 'e2e-artifacts', 'crm'),
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
    env: async () => {
      sink = await startSmtpSink();
      return {
        MAILSTEAD_RELAY: `smtp://127.0.0.1:${sink.port}?tls=none`,
        MAILSTEAD_BRAND_COMPANY_NAME: 'Harbour Training',
        MAILSTEAD_POSTAL_ADDRESS: 'Harbour Training Ltd | 1 Quay Street | Hamburg | Germany',
        MAILSTEAD_PUBLIC_URL: 'https://mail.harbour-training.example',
      };
    },
  });
  after(() => sink?.close());
  const ids = {};
  const get = (p) => s.api('GET', p);

  test('CRM console end-to-end', { timeout: 180_000 }, async (t) => {
    const page = () => s.page;

    await t.test(
      'lead inbox lists leads by score and assigning one persists',
      s.step('lead-inbox', async () => {
        const users = (await get('/api/v1/users')).items;
        ids.admin = users.find((u) => u.email === ADMIN_EMAIL).id;
        ids.sales = (await s.api('POST', '/api/v1/users', {
          email: SALES_EMAIL,
          role: 'sales',
          password: 'sales-e2e-password-99',
          team: SALES_TEAM,
        })).id;
        // the default scoring rules favour heads, directors and training managers at mid-sized firms
        const leads = [
          { first_name: 'Ivo', last_name: 'Intern', email: 'ivo@small.example', job_title: 'Intern', company: 'Small Ltd', company_size: '5' },
          {
            first_name: 'Hedda',
            last_name: 'Head',
            email: 'hedda@harbour.example',
            job_title: 'Head of Training',
            company: 'Harbour Logistics',
            company_size: '250',
            industry: 'manufacturing',
            country: 'DE',
          },
          { first_name: 'Quinn', last_name: 'Quality', email: 'quinn@mid.example', job_title: 'Quality Manager', company: 'Mid GmbH', company_size: '80' },
        ];
        // created unassigned (leads default to their creator)
        for (const l of leads) ids[l.email] = (await s.api('POST', '/api/v1/leads', { ...l, assigned_to: null })).id;
        const stored = await Promise.all(leads.map((l) => get(`/api/v1/leads/${ids[l.email]}`)));
        const byScore = [...stored].sort((a, b) => b.score - a.score).map((l) => l.email);
        assert.equal(byScore[0], 'hedda@harbour.example', `the head of training scores highest: ${JSON.stringify(stored.map((l) => [l.email, l.score]))}`);
        assert.ok(stored[0].score < stored[2].score, 'the scores differ, so the order means something');

        await login(page(), s.base, ADMIN_EMAIL, ADMIN_PASSWORD);
        await clickNav(page(), 'Lead inbox');
        await page().getByRole('heading', { name: 'Lead inbox', level: 1 }).waitFor();
        const rows = page().locator('#lead-results tbody tr[data-lead-email]');
        await until('three lead rows', async () => (await rows.count()) === 3);
        const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-lead-email')));
        assert.deepEqual(shown, byScore, 'rows are sorted by score, highest first');

        // the score opens its breakdown
        const hedda = page().getByTestId(`lead-${ids['hedda@harbour.example']}`);
        await hedda.getByRole('button', { name: /show the breakdown/ }).click();
        const breakdown = page().getByTestId(`score-breakdown-${ids['hedda@harbour.example']}`);
        await breakdown.waitFor();
        assert.match(await breakdown.innerText(), /job_title contains "head"/);

        // assign Quinn to the sales user, picked by address (and team) from the user directory
        const quinn = ids['quinn@mid.example'];
        const assign = page().getByLabel('Assign Quinn Quality to');
        await assign.selectOption({ label: `${SALES_EMAIL} (${SALES_TEAM})` });
        const options = await assign.locator('option').allInnerTexts();
        assert.ok(options.includes(`${ADMIN_EMAIL} (you)`), `the admin (no team) is "you": ${options}`);
        await until('the assignment saved', async () => (await get(`/api/v1/leads/${quinn}`)).assigned_to === ids.sales);
        // the owner filter: Quinn is no longer unassigned
        const owner = page().getByLabel('Owner', { exact: true });
        await owner.selectOption('none');
        await until('the unassigned leads listed', async () => (await rows.count()) === 2);
        const unassigned = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-lead-email')));
        assert.ok(!unassigned.includes('quinn@mid.example'), `Quinn is assigned: ${unassigned}`);
        await owner.selectOption('');
        await until('all leads again', async () => (await rows.count()) === 3);
        // a minimum score between the best two leaves the best
        const [best, second] = [...stored].sort((a, b) => b.score - a.score);
        await page().getByLabel('Minimum score').fill(String(second.score + 1));
        await until('only the best lead', async () => (await rows.count()) === 1);
        assert.equal(await rows.first().getAttribute('data-lead-email'), best.email);
        await page().getByLabel('Minimum score').fill('');
        await until('all leads again', async () => (await rows.count()) === 3);
      }),
    );

    await t.test(
      'converting a lead opens its account with contacts, opportunities and timeline',
      s.step('account', async () => {
        const lead = ids['hedda@harbour.example'];
        await page().getByRole('link', { name: 'Hedda Head' }).click();
        await page().getByRole('heading', { name: 'Hedda Head', level: 1 }).waitFor();
        await until('the lead timeline shows its creation', async () => /Change/.test(await page().getByTestId('timeline').innerText()));
        await page().getByLabel('Opportunity name').fill('ISO 9001 auditors x6');
        await page().getByLabel('Amount').fill('7200');
        await page().getByRole('button', { name: 'Convert' }).click();
        await page().waitForURL(/#\/accounts\/\d+$/);
        const converted = await get(`/api/v1/leads/${lead}`);
        assert.equal(converted.status, 'converted');
        ids.account = converted.converted_account_id;
        ids.contact = converted.converted_contact_id;
        assert.ok(page().url().endsWith(`#/accounts/${ids.account}`), `on the account page: ${page().url()}`);
        await page().getByRole('heading', { name: 'Harbour Logistics', level: 1 }).waitFor();

        // a second opportunity and an activity made through the API show too
        await s.api('POST', '/api/v1/opportunities', { name: 'PRINCE2 x4', account_id: ids.account, amount: '4800', currency: 'EUR', stage: 'proposal' });
        await s.api('POST', '/api/v1/activities', { kind: 'meeting', subject: 'Kick-off with Harbour', record: `account:${ids.account}` });
        await s.api('POST', '/api/v1/contacts', { email: 'someone@elsewhere.example', first_name: 'Not', last_name: 'Harbour' });
        await page().reload();
        const opps = page().getByTestId('account-opportunities');
        await until('both opportunities', async () => (await opps.locator('tbody tr').count()) === 2);
        const oppText = await opps.innerText();
        assert.match(oppText, /ISO 9001 auditors x6[\s\S]*7200\.00 EUR|7200\.00 EUR[\s\S]*ISO 9001 auditors x6/);
        assert.match(oppText, /PRINCE2 x4/);
        await until('the activity listed', async () => /Kick-off with Harbour/.test(await page().getByTestId('account-activities').innerText()));
        const timeline = page().getByTestId('timeline');
        await until('the timeline with the meeting', async () => /Kick-off with Harbour/.test(await timeline.innerText()));
        assert.match(await timeline.innerText(), /Meeting/);
        assert.match(await timeline.innerText(), /Change/, 'the account creation is on its timeline');
        // contacts of the account (the `account:` search filter)
        const contacts = page().getByTestId('account-contacts');
        await until('the converted contact listed', async () => /hedda@harbour\.example/.test(await contacts.innerText()));
        assert.equal(await contacts.getByRole('link').count(), 1, 'only the account’s own contact');
      }),
    );

    await t.test(
      'a note added on a contact shows in its timeline',
      s.step('contact-note', async () => {
        await page().goto(`${s.base}/#/contacts/${ids.contact}`);
        await page().getByRole('heading', { name: 'Hedda Head', level: 1 }).waitFor();
        // the contact links to its account
        await page().getByRole('link', { name: 'Harbour Logistics' }).waitFor();
        assert.ok((await page().getByRole('link', { name: 'Harbour Logistics' }).getAttribute('href')).endsWith(`#/accounts/${ids.account}`));
        const form = page().locator('form.activity-form');
        await form.getByLabel('Subject').fill('Asked for ISO 9001 dates in March');
        await form.getByLabel('Details (optional)').fill('Prefers Hamburg.');
        await form.getByRole('button', { name: 'Add note' }).click();
        const timeline = page().getByTestId('timeline');
        await until('the note in the timeline', async () => /Asked for ISO 9001 dates in March/.test(await timeline.innerText()));
        const item = timeline.locator('li', { hasText: 'Asked for ISO 9001 dates in March' });
        assert.match(await item.innerText(), /Note[\s\S]*Prefers Hamburg/);
        const acts = await get(`/api/v1/activities?record=contact:${ids.contact}`);
        assert.ok(
          acts.items.some((a) => a.kind === 'note' && a.subject === 'Asked for ISO 9001 dates in March'),
          `the note is stored on the contact: ${JSON.stringify(acts.items)}`,
        );
      }),
    );

    await t.test(
      'campaign mail to the contact shows on its timeline with a link to the report',
      s.step('contact-mail', async () => {
        const list = await s.api('POST', '/api/v1/lists', { name: 'Harbour news' });
        await s.api('PATCH', `/api/v1/contacts/${ids.contact}`, { lists: [list.id] });
        const template = await s.api('POST', '/api/v1/templates', {
          name: 'Dates',
          mjml: '<mj-section><mj-column><mj-text>Hello {{ contact.first_name | default("there") }}, the March dates are out.</mj-text></mj-column></mj-section>',
        });
        const campaign = await s.api('POST', '/api/v1/campaigns', {
          name: 'March dates',
          subject: 'ISO 9001 in March',
          from: 'Harbour Training <academy@harbour-training.example>',
          template_id: template.id,
          audience: { lists: [list.id] },
        });
        await s.api('POST', `/api/v1/campaigns/${campaign.id}/start`, {});
        await until('the mail at the sink', async () => sink.rcpts.includes('hedda@harbour.example'), 60_000);
        const delivered = async () =>
          (await get(`/api/v1/records/contact/${ids.contact}/timeline`)).some((i) => i.kind === 'email.delivered');
        await until('the delivery recorded', delivered, 30_000);
        await page().reload();
        const timeline = page().getByTestId('timeline');
        const sent = timeline.locator('li[data-kind="email.sent"]');
        await sent.waitFor();
        assert.match(await sent.innerText(), /Email sent[\s\S]*March dates/);
        assert.match(await timeline.locator('li[data-kind="email.delivered"]').innerText(), /Delivered/);
        const report = sent.getByRole('link', { name: 'campaign report' });
        assert.ok((await report.getAttribute('href')).endsWith(`#/campaigns/${campaign.id}/report`));
        await report.click();
        await page().waitForURL(new RegExp(`#/campaigns/${campaign.id}/report$`));
      }),
    );

    await t.test(
      'tasks due today lists today’s and overdue tasks; ticking one marks it done',
      s.step('tasks', async () => {
        const mk = (subject, due, extra = {}) =>
          s.api('POST', '/api/v1/activities', { kind: 'task', subject, due, record: `account:${ids.account}`, ...extra });
        ids.today = (await mk('Send the ISO quote', day(0))).id;
        ids.overdue = (await mk('Chase the signed offer', day(-2))).id;
        await mk('Plan the kick-off', day(3));
        await mk('Already handled', day(0), { done: true });
        await clickNav(page(), 'Tasks due');
        await page().getByRole('heading', { name: 'Tasks due today', level: 1 }).waitFor();
        const results = page().locator('#task-results');
        await until('two due tasks', async () => (await results.locator('tbody tr').count()) === 2);
        const text = await results.innerText();
        assert.doesNotMatch(text, /Plan the kick-off/, 'a task due later is not listed');
        assert.doesNotMatch(text, /Already handled/, 'a done task is not listed');
        const overdueRow = page().getByTestId(`task-${ids.overdue}`);
        assert.equal(await overdueRow.getByTestId('overdue').count(), 1, 'the overdue task is marked');
        assert.equal(await page().getByTestId(`task-${ids.today}`).getByTestId('overdue').count(), 0, 'today’s task is not overdue');
        // overdue first (sorted by due date)
        assert.equal(await results.locator('tbody tr').first().getAttribute('data-testid'), `task-${ids.overdue}`);

        await page().getByLabel('Mark “Send the ISO quote” done').check();
        await until('the task done on the server', async () => (await get(`/api/v1/activities/${ids.today}`)).done === true);
        const todayRow = page().getByTestId(`task-${ids.today}`);
        assert.equal(await todayRow.getAttribute('data-done'), 'true', 'the ticked task shows as done');
        assert.ok(await todayRow.getByRole('checkbox').isDisabled(), 'a done task cannot be ticked again');
        assert.match(await page().getByTestId('result-summary').innerText(), /^1 open task$/);
        assert.equal((await get(`/api/v1/activities/${ids.overdue}`)).done, false, 'the other task is untouched');
        // everyone's tasks add the owner column
        await page().getByLabel('Everyone’s').check();
        await until('the owner column', async () => (await results.locator('th', { hasText: 'Owner' }).count()) === 1);
      }),
    );

    await t.test(
      'GDPR: export downloads the JSON, erasure after typing the address removes the contact',
      s.step('gdpr', async () => {
        const email = 'erase-me@example.test';
        const c = await s.api('POST', '/api/v1/contacts', { email, first_name: 'Erin', last_name: 'Erase' });
        await s.api('POST', `/api/v1/contacts/${c.id}/consents`, { purpose: 'newsletter', source: 'paper form' });
        await clickNav(page(), 'GDPR requests');
        await page().getByRole('heading', { name: 'GDPR requests', level: 1 }).waitFor();
        await page().getByLabel('Email address').fill(email);
        await page().getByRole('button', { name: 'Find' }).click();
        const card = page().getByTestId(`gdpr-contact-${c.id}`);
        await card.waitFor();
        await until('the consent history', async () => /newsletter[\s\S]*given[\s\S]*paper form/.test(await card.innerText()));

        const [download] = await Promise.all([
          page().waitForEvent('download'),
          card.getByRole('button', { name: 'Download export' }).click(),
        ]);
        assert.equal(download.suggestedFilename(), `contact-${c.id}-export.json`);
        const file = await download.path();
        const exported = JSON.parse(await fsp.readFile(file, 'utf8'));
        assert.equal(exported.contact.email, email, 'the export holds the contact');
        assert.ok(JSON.stringify(exported).includes(email));

        await card.getByRole('button', { name: 'Erase…' }).click();
        const dialog = page().getByRole('dialog');
        await dialog.waitFor();
        const confirm = dialog.getByRole('button', { name: 'Erase permanently' });
        assert.ok(await confirm.isDisabled(), 'erasure needs the address typed first');
        await dialog.getByLabel('Type the address to confirm').fill('erase-me@example.tes');
        assert.ok(await confirm.isDisabled(), 'a wrong address does not unlock it');
        assert.equal((await apiRequest('GET', `${s.base}/api/v1/contacts/${c.id}`, s.token)).status, 200, 'nothing erased yet');
        await dialog.getByLabel('Type the address to confirm').fill(email);
        await confirm.click();
        await page().getByTestId('gdpr-done').waitFor();
        await until('the contact gone', async () => (await apiRequest('GET', `${s.base}/api/v1/contacts/${c.id}`, s.token)).status === 404);
        await until('the erased contact gone from the results', async () => (await card.count()) === 0);
      }),
    );

    await t.test(
      'GDPR: a lead is exported and erased the same way',
      s.step('gdpr-lead', async () => {
        const email = 'lena.lead@leadonly.example';
        const lead = await s.api('POST', '/api/v1/leads', { email, first_name: 'Lena', last_name: 'Lead', company: 'Lead Only Ltd' });
        await page().getByLabel('Email address').fill(email);
        await page().getByRole('button', { name: 'Find' }).click();
        const card = page().getByTestId(`gdpr-lead-${lead.id}`);
        await card.waitFor();
        assert.equal(await page().locator('#gdpr-results section.card').count(), 1, 'only the lead has this address');
        const [download] = await Promise.all([
          page().waitForEvent('download'),
          card.getByRole('button', { name: 'Download export' }).click(),
        ]);
        assert.equal(download.suggestedFilename(), `lead-${lead.id}-export.json`);
        const text = await fsp.readFile(await download.path(), 'utf8');
        assert.ok(text.includes(email), 'the lead export holds the address');
        assert.ok(text.includes('Lead Only Ltd'), 'and the lead');

        await card.getByRole('button', { name: 'Erase…' }).click();
        const dialog = page().getByRole('dialog');
        await dialog.getByLabel('Type the address to confirm').fill(email.toUpperCase());
        await dialog.getByRole('button', { name: 'Erase permanently' }).click();
        await page().getByTestId('gdpr-done').filter({ hasText: 'lead' }).waitFor();
        await until('the lead gone', async () => (await apiRequest('GET', `${s.base}/api/v1/leads/${lead.id}`, s.token)).status === 404);
        await until('the results emptied', async () => (await card.count()) === 0);
      }),
    );

    await t.test(
      'the lead inbox and the account page fit a 360px screen',
      s.step('narrow', async () => {
        await page().setViewportSize({ width: 360, height: 800 });
        for (const [route, ready] of [
          ['/leads', () => page().locator('#lead-results tbody tr[data-lead-email]').first().waitFor()],
          [`/accounts/${ids.account}`, () => page().getByTestId('account-opportunities').locator('tbody tr').first().waitFor()],
        ]) {
          await page().goto(`${s.base}/#${route}`);
          await ready();
          const overflow = await page().evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `${route} overflows horizontally by ${overflow}px at 360px`);
        }
        await page().setViewportSize({ width: 1280, height: 900 });
      }),
    );

    await t.test('had no uncaught errors in the page', () => {
      assert.deepEqual(s.log.pageErrors, []);
    });
  });
}
