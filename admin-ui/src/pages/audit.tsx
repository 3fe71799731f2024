import { useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  isAbort,
  toApiError,
  type ApiError,
  type AuditEntry,
  type AuditQuery,
  type ChainReport,
  type FieldChange,
  type User,
} from '../api';
import { ctl, ErrorBanner, Field, formatTime, PageHeader, Spinner, useDebounced, useUser } from '../components';
import { href, replaceQuery } from '../router';
import { toLocalInput, toRfc3339 } from './deliveries';

const PAGE_SIZE = 50;

/** Admins and managers read the audit trail (the server answers 403 to everybody else). */
export function canReadAudit(user: User): boolean {
  return user.role === 'admin' || user.role === 'manager';
}

function shown(v: unknown): string {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** Where a record lives in the console, when it has a page. */
function recordHref(record: string): string | null {
  const [kind, id] = record.split(':', 2);
  switch (kind) {
    case 'contact':
      return href(`/contacts/${id}`);
    case 'list':
      return href('/lists');
    case 'user':
      return id && id !== 'unknown' ? href('/users') : null;
    case 'token':
      return href('/tokens');
    case 'import':
      return href('/import', { id });
    case 'suppression':
      return href('/suppressions');
    default:
      return null;
  }
}

function Change({ name, c }: { name: string; c: FieldChange }) {
  return (
    <li>
      <span class="audit-field">{name}</span>{' '}
      {c.redacted ? (
        <span class="muted">(erased)</span>
      ) : (
        <>
          <del class="audit-before">{shown(c.before)}</del> → <ins class="audit-after">{shown(c.after)}</ins>
        </>
      )}
    </li>
  );
}

/** The entries as a table: when, who (and from where), what, which record, before → after. */
export function AuditTable({ items, showRecord = true }: { items: AuditEntry[]; showRecord?: boolean }) {
  return (
    <table class="table audit-table">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Who</th>
          <th scope="col">Action</th>
          {showRecord ? <th scope="col">Record</th> : null}
          <th scope="col">Changes</th>
        </tr>
      </thead>
      <tbody>
        {items.map((e) => {
          const link = recordHref(e.record);
          const names = Object.keys(e.changes ?? {});
          return (
            <tr key={e.seq} data-seq={e.seq} data-action={e.action} data-record={e.record}>
              <td data-label="When">
                <span title={`entry ${e.seq}, hash ${e.hash}`}>{formatTime(e.at)}</span>
              </td>
              <td data-label="Who" class="cell-email">
                {e.actor_email ?? e.actor}
                {e.ip ? <div class="muted small">{e.ip}</div> : null}
              </td>
              <td data-label="Action">
                <span class={'badge ' + (e.action.startsWith('login_failed') ? 'badge-bad' : 'badge-muted')}>
                  {e.action.replace(/_/g, ' ')}
                </span>
              </td>
              {showRecord ? (
                <td data-label="Record">{link ? <a href={link}>{e.record}</a> : e.record}</td>
              ) : null}
              <td data-label="Changes" class="cell-event">
                {names.length ? (
                  <ul class="audit-changes">
                    {names.map((n) => (
                      <Change key={n} name={n} c={e.changes[n]} />
                    ))}
                  </ul>
                ) : null}
                {e.detail ? <div class="muted small">{e.detail}</div> : null}
                {!names.length && !e.detail ? '—' : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** The audit trail: filter by record, actor and time; export; verify the chain (admins). */
export function AuditPage({ query }: { query: URLSearchParams }) {
  const me = useUser();
  const [record, setRecord] = useState(query.get('record') ?? '');
  const [actor, setActor] = useState(query.get('actor') ?? '');
  const [since, setSince] = useState(query.get('since') ? toLocalInput(query.get('since')!) : '');
  const filters: AuditQuery = {
    record: record.trim() || undefined,
    actor: actor.trim() || undefined,
    since: toRfc3339(since) || undefined,
  };
  const key = useDebounced(JSON.stringify(filters), 300);
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [report, setReport] = useState<ChainReport | null>(null);
  const [verifying, setVerifying] = useState(false);
  const abortRef = useRef<AbortController | null>(null);

  async function load(q: AuditQuery, before: number | null) {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    setError(null);
    setLoading(true);
    try {
      const page = await api.getAudit(q, before, PAGE_SIZE, ctrl.signal);
      if (ctrl.signal.aborted) return;
      setItems((old) => (before !== null && old ? [...old, ...page.items] : page.items));
      setNext(page.next);
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
      if (before === null) setItems([]);
    } finally {
      if (!ctrl.signal.aborted) setLoading(false);
    }
  }

  useEffect(() => {
    const q = JSON.parse(key) as AuditQuery;
    replaceQuery({ record: q.record, actor: q.actor, since: q.since });
    load(q, null);
  }, [key]);
  useEffect(() => () => abortRef.current?.abort(), []);

  async function verify() {
    setVerifying(true);
    setReport(null);
    try {
      setReport(await api.verifyAudit());
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setVerifying(false);
    }
  }

  const current = JSON.parse(key) as AuditQuery;
  return (
    <section>
      <PageHeader title="Audit trail">
        <a class="btn" href={api.auditExportUrl(current, 'csv')} download="audit.csv">
          Export CSV
        </a>
        <a class="btn" href={api.auditExportUrl(current, 'jsonl')} download="audit.jsonl">
          Export JSON lines
        </a>
        {me.role === 'admin' ? (
          <button type="button" class="btn" onClick={verify} disabled={verifying}>
            {verifying ? 'Verifying…' : 'Verify chain'}
          </button>
        ) : null}
      </PageHeader>
      <p class="muted">
        Every change, login, export and permission change, with who made it, from where, and the values before and after.
        Entries are hash-chained: an edited or removed entry is found by “Verify chain” or <code>mailstead audit verify</code>.
      </p>
      {report ? (
        <p class={'alert ' + (report.broken ? 'alert-error' : 'alert-info')} role="status" data-testid="audit-verify">
          {report.broken
            ? `The chain is broken at entry ${report.broken.seq}: ${report.broken.reason}.`
            : `The chain is intact: ${report.entries} entries.`}
        </p>
      ) : null}
      <form class="card search-card" role="search" aria-label="Filter the audit trail" onSubmit={(e) => e.preventDefault()}>
        <div class="filter-grid">
          <Field id="audit-record" label="Record" field="record" error={error} hint="kind:id, e.g. contact:42 or user:3.">
            <input
              {...ctl('audit-record', 'record', error, true)}
              type="search"
              autoComplete="off"
              spellcheck={false}
              value={record}
              onInput={(e) => setRecord(e.currentTarget.value)}
            />
          </Field>
          <Field id="audit-actor" label="Actor" field="actor" error={error} hint="A user id, cli or system.">
            <input
              {...ctl('audit-actor', 'actor', error, true)}
              type="search"
              autoComplete="off"
              spellcheck={false}
              value={actor}
              onInput={(e) => setActor(e.currentTarget.value)}
            />
          </Field>
          <Field id="audit-since" label="Since" field="since" error={error} hint="Your local time.">
            <input
              {...ctl('audit-since', 'since', error, true)}
              type="datetime-local"
              value={since}
              onInput={(e) => setSince(e.currentTarget.value)}
            />
          </Field>
        </div>
      </form>
      <ErrorBanner error={error?.field ? null : error} />
      <div class="card" id="audit-results" aria-busy={loading} data-query={key}>
        {items === null ? (
          <Spinner />
        ) : items.length === 0 ? (
          <p class="muted">No entries match.</p>
        ) : (
          <AuditTable items={items} />
        )}
        {next !== null ? (
          <button type="button" class="btn" onClick={() => load(current, next)} disabled={loading}>
            Load older entries
          </button>
        ) : null}
      </div>
    </section>
  );
}

/** A record's history card (e.g. on the contact page); hidden from roles that may not read it. */
export function RecordHistory({ record, updated }: { record: string; updated?: string }) {
  const me = useUser();
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const allowed = canReadAudit(me);
  useEffect(() => {
    if (!allowed) return;
    api
      .getAudit({ record }, null, 20)
      .then((p) => setItems(p.items))
      .catch((e) => setError(toApiError(e)));
  }, [record, updated, allowed]);
  if (!allowed || error?.status === 403) return null;
  return (
    <div class="card" data-testid="record-history">
      <h2>History</h2>
      <ErrorBanner error={error} />
      {items === null && !error ? <Spinner /> : null}
      {items && items.length === 0 ? <p class="muted">No recorded changes.</p> : null}
      {items && items.length > 0 ? <AuditTable items={items} showRecord={false} /> : null}
      <p>
        <a href={href('/audit', { record })}>Full history in the audit trail</a>
      </p>
    </div>
  );
}
