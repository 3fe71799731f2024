import { useEffect, useState } from 'preact/hooks';
import { api, type Account, type Activity, type Contact, type Opportunity } from '../api';
import { ErrorBanner, Field, formatDate, fullName, PageHeader, Spinner, useDebounced, useUser } from '../components';
import { AccountLink, Facts, PagedResults, RecordTimeline, useCursorList, useDirectory, useLoad, userLabel } from '../crm';
import { href, replaceQuery } from '../router';

const PAGE_SIZE = 25;

/** Accounts (companies), searchable by name and domain. */
export function AccountsPage({ query }: { query: URLSearchParams }) {
  const [text, setText] = useState(query.get('q') ?? '');
  const q = useDebounced(text.trim(), 200);
  const list = useCursorList<Account>(q, (cursor, signal) =>
    api.getAccounts({ q, sort: q ? undefined : 'name', cursor, limit: PAGE_SIZE }, signal),
  );
  useEffect(() => replaceQuery({ q: q || undefined }), [q]);

  return (
    <section>
      <PageHeader title="Accounts" />
      <form class="card search-card" role="search" aria-label="Search accounts" onSubmit={(e) => e.preventDefault()}>
        <Field id="account-q" label="Search accounts" hint="Names and domains, by word prefix.">
          <input
            id="account-q"
            type="search"
            autoComplete="off"
            value={text}
            aria-describedby="account-q-hint"
            aria-controls="account-results"
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </Field>
      </form>
      <ErrorBanner error={list.error} />
      <PagedResults id="account-results" list={list} noun="account" plural="accounts" empty="No accounts match.">
        <table class="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Domain</th>
              <th scope="col">Industry</th>
              <th scope="col">Size</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((a) => (
              <tr key={a.id}>
                <td data-label="Name">
                  <a href={href(`/accounts/${a.id}`)}>{a.name}</a>
                </td>
                <td data-label="Domain">{a.domain || <span class="muted">—</span>}</td>
                <td data-label="Industry">{a.industry || <span class="muted">—</span>}</td>
                <td data-label="Size">{a.size || <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </PagedResults>
    </section>
  );
}

/** One account: its fields, contacts, opportunities, activities and timeline. */
export function AccountPage({ id }: { id: string }) {
  const me = useUser();
  const users = useDirectory();
  const [seq, setSeq] = useState(0);
  const account = useLoad(id, () => api.getAccount(id));
  const a = account.data;
  const contacts = useLoad(a?.id, () => (a ? api.searchContacts(`account:${a.id}`, null, 100) : Promise.resolve(null)));
  const opps = useLoad(a?.id, () => (a ? api.getOpportunities({ account: a.id, limit: 100 }) : Promise.resolve(null)));
  const acts = useLoad(`${a?.id}/${seq}`, () =>
    a ? api.getActivities({ record: `account:${a.id}`, limit: 100 }) : Promise.resolve(null),
  );

  if (account.error) {
    return (
      <section>
        <PageHeader title={account.error.status === 404 ? 'Account not found' : 'Account'} />
        <ErrorBanner error={account.error} />
        <p>
          <a href={href('/accounts')}>Back to accounts</a>
        </p>
      </section>
    );
  }
  if (!a) return <Spinner label="Loading the account…" />;
  const addr = [a.address?.street, a.address?.postal_code, a.address?.city, a.address?.region, a.address?.country]
    .filter(Boolean)
    .join(', ');

  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/accounts')}>← Accounts</a>
      </p>
      <PageHeader title={a.name} />
      <div class="grid-2">
        <div class="card">
          <h2>Details</h2>
          <Facts
            items={[
              ['Domain', a.domain],
              ['Industry', a.industry],
              ['Size', a.size],
              ['Address', addr],
              ['Parent', a.parent_id != null ? <AccountLink id={a.parent_id} /> : ''],
              ['Owner', a.owner_id != null ? userLabel(a.owner_id, me, users) : ''],
              ['Created', formatDate(a.created_at)],
            ]}
          />
        </div>
        <section class="card" aria-labelledby="account-contacts" data-testid="account-contacts">
          <h2 id="account-contacts">Contacts</h2>
          {contacts.error?.status === 422 && contacts.error.field === 'q' ? (
            <p class="muted">This server cannot list the contacts of an account yet.</p>
          ) : (
            <ErrorBanner error={contacts.error} />
          )}
          {contacts.data === null && !contacts.error ? <Spinner /> : null}
          {contacts.data && contacts.data.items.length === 0 ? <p class="muted">No contacts at this account.</p> : null}
          {contacts.data && contacts.data.items.length ? <ContactList items={contacts.data.items} /> : null}
        </section>
      </div>
      <section class="card after-form" aria-labelledby="account-opps" data-testid="account-opportunities">
        <h2 id="account-opps">Opportunities</h2>
        <ErrorBanner error={opps.error} />
        {opps.data === null && !opps.error ? <Spinner /> : null}
        {opps.data && opps.data.items.length === 0 ? <p class="muted">No opportunities.</p> : null}
        {opps.data && opps.data.items.length ? <OpportunityTable items={opps.data.items} /> : null}
      </section>
      <section class="card after-form" aria-labelledby="account-acts" data-testid="account-activities">
        <h2 id="account-acts">Activities</h2>
        <ErrorBanner error={acts.error} />
        {acts.data && acts.data.items.length === 0 ? <p class="muted">No activities.</p> : null}
        {acts.data && acts.data.items.length ? <ActivityList items={acts.data.items} /> : null}
      </section>
      <RecordTimeline kind="account" id={a.id} onAdded={() => setSeq((s) => s + 1)} />
    </section>
  );
}

function ContactList({ items }: { items: Contact[] }) {
  return (
    <ul class="plain-list">
      {items.map((c) => (
        <li key={c.id}>
          <a href={href(`/contacts/${c.id}`)}>{fullName(c) || c.email}</a> <span class="muted small">{c.email}</span>
        </li>
      ))}
    </ul>
  );
}

function OpportunityTable({ items }: { items: Opportunity[] }) {
  return (
    <table class="table table-compact">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Stage</th>
          <th scope="col" class="num">
            Amount
          </th>
          <th scope="col">Expected close</th>
        </tr>
      </thead>
      <tbody>
        {items.map((o) => (
          <tr key={o.id} data-testid={`opportunity-${o.id}`}>
            <td data-label="Name">{o.name}</td>
            <td data-label="Stage">
              {o.stage} <span class="muted small">{o.probability}%</span>
            </td>
            <td data-label="Amount" class="num">
              {o.amount != null ? `${o.amount} ${o.currency}` : <span class="muted" title="Not shown to your role">—</span>}
            </td>
            <td data-label="Expected close">{o.expected_close || <span class="muted">—</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ActivityList({ items }: { items: Activity[] }) {
  return (
    <ul class="plain-list">
      {items.map((x) => (
        <li key={x.id}>
          <span class="badge badge-activity">{x.kind}</span> {x.subject}
          {x.due ? <span class="muted small"> · due {x.due}</span> : null}
          {x.kind === 'task' ? <span class="muted small"> · {x.done ? 'done' : 'open'}</span> : null}
        </li>
      ))}
    </ul>
  );
}
