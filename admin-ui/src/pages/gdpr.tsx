import { useRef, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type Contact, type Lead } from '../api';
import { ConfirmDialog, downloadJson, ErrorBanner, Field, fullName, notify, PageHeader, Spinner } from '../components';
import { ConsentTable, useLoad } from '../crm';
import { href } from '../router';

type PersonKind = 'contacts' | 'leads';

interface Person {
  kind: PersonKind;
  id: number;
  email: string;
  name: string;
}

const KIND_LABEL: Record<PersonKind, string> = { contacts: 'contact', leads: 'lead' };

function person(kind: PersonKind, r: Contact | Lead): Person {
  return { kind, id: r.id, email: r.email, name: fullName(r) };
}

/** Data-subject requests (admins and managers): find a person by address, export, erase. */
export function GdprPage() {
  const [email, setEmail] = useState('');
  const [searched, setSearched] = useState<string | null>(null);
  const [results, setResults] = useState<Person[] | null>(null);
  const [searching, setSearching] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [leadError, setLeadError] = useState<ApiError | null>(null);
  const [erasing, setErasing] = useState<Person | null>(null);
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  // addresses erased here: the search index may list them for a moment longer
  const erased = useRef(new Set<string>());

  const matches = !!erasing && typed.trim().toLowerCase() === erasing.email.toLowerCase();

  async function find(e: Event) {
    e.preventDefault();
    setDone(null);
    await search(email.trim());
  }

  /** Contacts with the address, and leads whose words match it (the exact address if any). */
  async function search(addr: string) {
    if (!addr) return;
    setSearching(true);
    setError(null);
    setLeadError(null);
    const [contacts, leads] = await Promise.allSettled([
      api.searchContacts(`email:"${addr.replace(/"/g, '')}"`, null, 20),
      api.getLeads({ q: addr, limit: 20 }),
    ]);
    const found: Person[] = [];
    if (contacts.status === 'fulfilled') found.push(...contacts.value.items.map((c) => person('contacts', c)));
    else setError(toApiError(contacts.reason));
    if (leads.status === 'fulfilled') {
      const items = leads.value.items;
      const exact = items.filter((l) => l.email.toLowerCase() === addr.toLowerCase());
      found.push(...(exact.length ? exact : items).map((l) => person('leads', l)));
    } else setLeadError(toApiError(leads.reason));
    setResults(found.filter((p) => !erased.current.has(p.email.toLowerCase())));
    setSearched(addr);
    setSearching(false);
  }

  async function exportPerson(p: Person) {
    setError(null);
    try {
      const data = await api.exportPerson(p.kind, p.id);
      downloadJson(data, `${KIND_LABEL[p.kind]}-${p.id}-export.json`);
      notify(`Export of ${p.email} downloaded`);
    } catch (e) {
      setError(toApiError(e));
    }
  }

  async function erase() {
    if (!erasing || !matches) return;
    setBusy(true);
    try {
      await api.erasePerson(erasing.kind, erasing.id);
      // an erasure takes everything with the address: the contact and the leads
      erased.current.add(erasing.email.toLowerCase());
      setResults((r) => r?.filter((p) => !erased.current.has(p.email.toLowerCase())) ?? null);
      const msg = `The ${KIND_LABEL[erasing.kind]} ${erasing.email} was erased.`;
      setDone(msg);
      notify(msg);
      setErasing(null);
      if (searched) await search(searched);
    } catch (e) {
      setError(toApiError(e));
      setErasing(null);
    } finally {
      setBusy(false);
    }
  }


  return (
    <section>
      <PageHeader title="GDPR requests" />
      <form class="card search-card" role="search" aria-label="Find a person" onSubmit={find}>
        <div class="inline-find">
          <Field id="gdpr-email" label="Email address" hint="The contact and any leads with this address." class="field-grow">
            <input
              id="gdpr-email"
              type="email"
              autoComplete="off"
              spellcheck={false}
              value={email}
              aria-describedby="gdpr-email-hint"
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </Field>
          <button type="submit" class="btn btn-primary" disabled={searching || !email.trim()}>
            {searching ? 'Finding…' : 'Find'}
          </button>
        </div>
      </form>
      <ErrorBanner error={error} />
      {done ? (
        <p class="alert alert-info" role="status" data-testid="gdpr-done">
          {done}
        </p>
      ) : null}
      {results && searched !== null ? (
        <div id="gdpr-results">
          <p class="result-summary" role="status">
            {results.length === 0 ? `Nobody with the address “${searched}”.` : `${results.length} found for “${searched}”.`}
          </p>
          {leadError ? (
            <p class="muted small">
              Leads could not be searched: {leadError.message}
            </p>
          ) : null}
          {results.map((p) => (
            <PersonCard
              key={`${p.kind}-${p.id}`}
              p={p}
              onExport={() => void exportPerson(p)}
              onErase={() => {
                setTyped('');
                setErasing(p);
              }}
            />
          ))}
        </div>
      ) : null}
      <ConfirmDialog
        open={!!erasing}
        title={`Erase ${erasing?.email ?? ''}?`}
        confirmLabel="Erase permanently"
        danger
        busy={busy}
        confirmDisabled={!matches}
        onConfirm={() => void erase()}
        onCancel={() => setErasing(null)}
      >
        <p>
          Everything held about this {erasing ? KIND_LABEL[erasing.kind] : 'person'} is removed and cannot be restored;
          the address stays suppressed (as a keyed hash) so nothing is sent to it again.
          {' '}The contact and the leads with this address go with it.
        </p>
        <Field id="gdpr-confirm" label="Type the address to confirm">
          <input
            id="gdpr-confirm"
            type="text"
            autoComplete="off"
            spellcheck={false}
            value={typed}
            onInput={(e) => setTyped(e.currentTarget.value)}
          />
        </Field>
      </ConfirmDialog>
    </section>
  );
}

function PersonCard({ p, onExport, onErase }: { p: Person; onExport: () => void; onErase: () => void }) {
  const kind = KIND_LABEL[p.kind];
  const headingId = `gdpr-${p.kind}-${p.id}`;
  return (
    <section class="card" aria-labelledby={headingId} data-testid={`gdpr-${kind}-${p.id}`}>
      <h2 id={headingId}>
        <span class="badge">{kind}</span> {p.email}
      </h2>
      <p>
        {p.name || <span class="muted">(no name)</span>} ·{' '}
        <a href={href(`/${p.kind}/${p.id}`)}>open the {kind}</a>
      </p>
      <div class="form-actions">
        <button type="button" class="btn" onClick={onExport}>
          Download export
        </button>
        <button type="button" class="btn btn-danger-outline" onClick={onErase}>
          Erase…
        </button>
      </div>
      {p.kind === 'contacts' ? <ConsentHistoryTable id={p.id} /> : null}
    </section>
  );
}

function ConsentHistoryTable({ id }: { id: number }) {
  const { data, error } = useLoad(id, () => api.getConsents(id));
  return (
    <>
      <h3>Consent history</h3>
      <ErrorBanner error={error} />
      {data === null && !error ? <Spinner /> : null}
      {data && data.history.length === 0 ? <p class="muted">No consent records.</p> : null}
      {data && data.history.length ? <ConsentTable items={data.history} /> : null}
      {data && Object.keys(data.current).length ? (
        <p class="small">
          Now:{' '}
          {Object.entries(data.current)
            .map(([purpose, granted]) => `${purpose} ${granted ? 'granted' : 'withdrawn'}`)
            .join(' · ')}
        </p>
      ) : null}
    </>
  );
}
