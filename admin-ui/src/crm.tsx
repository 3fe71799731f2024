// Pieces shared by the CRM pages (lead inbox and lead page, accounts, tasks, the contact page):
// the user directory for assignment pickers, record links, the score breakdown, the record
// timeline, the "add note / log call / add task" form and a cursor-paged list hook.
import { Fragment, type ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  ApiError,
  isAbort,
  toApiError,
  type ActivityKind,
  type ConsentRecord,
  type DirectoryUser,
  type Page,
  type TimelineItem,
  type TimelineRecordKind,
  type User,
} from './api';
import { ctl, ErrorBanner, Field, formatDate, notify, Spinner, useUser } from './components';
import { href } from './router';

// ---------------------------------------------------------------- dates

/** Today in the browser's time zone as YYYY-MM-DD. */
export function todayISO(d: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// ---------------------------------------------------------------- loading

/** Loads once per `key`; `data` stays null until it arrives. */
export function useLoad<T>(key: unknown, load: () => Promise<T>): { data: T | null; error: ApiError | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let alive = true;
    setError(null);
    load()
      .then((d) => alive && setData(d))
      .catch((e) => alive && setError(toApiError(e)));
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return { data, error };
}

/**
 * One action at a time: `busy` while it runs, its failure kept in `error` (for an ErrorBanner).
 * `run` resolves to the action's result, or null after a failure.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  async function run<T>(fn: () => Promise<T>): Promise<T | null> {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(toApiError(e));
      return null;
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, setError, run };
}

// ---------------------------------------------------------------- users

let directoryCache: { at: number; users: Promise<DirectoryUser[] | null> } | null = null;

/** Drops the cached directory (after users, their roles or teams changed). */
export function forgetDirectory(): void {
  directoryCache = null;
}

/**
 * The user directory (id, email, role and team of every user), or null where the server has none or
 * refuses it: pickers then offer "me" and show other users by id. Cached for a minute.
 */
export function useDirectory(): DirectoryUser[] | null {
  const [users, setUsers] = useState<DirectoryUser[] | null>(null);
  useEffect(() => {
    if (!directoryCache || Date.now() - directoryCache.at > 60_000) {
      directoryCache = {
        at: Date.now(),
        users: api
          .getUserDirectory()
          .then((r) => r.items)
          .catch(() => null),
      };
    }
    let alive = true;
    directoryCache.users.then((u) => alive && setUsers(u));
    return () => {
      alive = false;
    };
  }, []);
  return users;
}

/** "you", the user's email when the directory knows it, or "user #3". */
export function userLabel(id: number | null | undefined, me: User, users: DirectoryUser[] | null): string {
  if (id == null) return 'unassigned';
  if (id === me.id) return `you (${me.email})`;
  return users?.find((u) => u.id === id)?.email ?? `user #${id}`;
}

/** An audit/timeline actor ("user:3", "cli", "system") for people. */
export function actorLabel(actor: string | undefined, me: User, users: DirectoryUser[] | null): string {
  if (!actor) return '';
  const m = /^user:(\d+)$/.exec(actor);
  return m ? userLabel(Number(m[1]), me, users) : actor;
}

interface OwnerSelectProps {
  id: string;
  /** The accessible name ("Assign Ada Lovelace to"). */
  label: string;
  /** Shown as a visible label (otherwise the label is for screen readers only). */
  visibleLabel?: boolean;
  value: number | null;
  users: DirectoryUser[] | null;
  disabled?: boolean;
  onChange: (owner: number | null) => void;
}

/** "ada@example.test (you, north)": the email with "you" and the team where there are. */
function ownerLabel(u: { email: string; team?: string | null }, self: boolean): string {
  const notes = [self ? 'you' : '', u.team ?? ''].filter(Boolean);
  return notes.length ? `${u.email} (${notes.join(', ')})` : u.email;
}

/** A select of users (or unassigned); without a directory: me, unassigned and the current id. */
export function OwnerSelect({ id, label, visibleLabel, value, users, disabled, onChange }: OwnerSelectProps) {
  const me = useUser();
  const options: { id: number; label: string }[] = users
    ? users.map((u) => ({ id: u.id, label: ownerLabel(u, u.id === me.id) }))
    : [{ id: me.id, label: ownerLabel(me, true) }];
  if (value != null && !options.some((o) => o.id === value)) options.push({ id: value, label: `user #${value}` });
  return (
    <span class="owner-select">
      <label for={id} class={visibleLabel ? undefined : 'sr-only'}>
        {label}
      </label>
      <select
        id={id}
        value={value == null ? '' : String(value)}
        disabled={disabled}
        onChange={(e) => {
          const v = e.currentTarget.value;
          onChange(v === '' ? null : Number(v));
        }}
      >
        <option value="">Unassigned</option>
        {options.map((o) => (
          <option key={o.id} value={String(o.id)}>
            {o.label}
          </option>
        ))}
      </select>
    </span>
  );
}

// ---------------------------------------------------------------- records

/** Console link of a CRM record id (`lead:5`, `contact:7`, `account:2`, `opportunity:9`). */
export function recordHref(record: string | null | undefined): string | null {
  const m = /^(lead|contact|account|opportunity):(\d+)$/.exec(record ?? '');
  if (!m) return null;
  switch (m[1]) {
    case 'lead':
      return href(`/leads/${m[2]}`);
    case 'contact':
      return href(`/contacts/${m[2]}`);
    case 'account':
      return href(`/accounts/${m[2]}`);
    default:
      return href('/pipeline');
  }
}

/** A definition list of a record's fields; empty values show a dash. */
export function Facts({ items }: { items: [string, ComponentChildren][] }) {
  return (
    <dl class="meta">
      {items.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>{v === '' || v == null ? <span class="muted">—</span> : v}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

/** A link to an account by its name (by its id until the name has loaded, or if it cannot). */
export function AccountLink({ id }: { id: number }) {
  const { data } = useLoad(id, () => api.getAccount(id));
  return <a href={href(`/accounts/${id}`)}>{data?.name ?? `account #${id}`}</a>;
}

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={'badge lead-' + status} data-testid="lead-status">
      {status}
    </span>
  );
}

/** A lead's score with the rules that made it up. */
export function ScoreBreakdown({ leadId, updated }: { leadId: number; updated?: string }) {
  const { data: score, error } = useLoad(`${leadId}/${updated}`, () => api.getLeadScore(leadId));
  if (error) return <ErrorBanner error={error} />;
  if (!score) return <Spinner label="Loading the score…" />;
  return (
    <div class="score-breakdown" data-testid={`score-breakdown-${leadId}`}>
      <p>
        <strong>{score.score}</strong> points: fit {score.fit}, engagement {score.engagement}
        {score.adjustment ? `, adjusted by hand ${score.adjustment > 0 ? '+' : ''}${score.adjustment}` : ''}
      </p>
      {score.breakdown.length ? (
        <table class="table table-compact">
          <caption class="sr-only">Score breakdown</caption>
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col" class="num">
                Points
              </th>
            </tr>
          </thead>
          <tbody>
            {score.breakdown.map((p, i) => (
              <tr key={i}>
                <td data-label="Rule">{p.rule}</td>
                <td data-label="Points" class="num">
                  {Number.isInteger(p.points) ? p.points : p.points.toFixed(1)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No scoring rule matches this lead yet.</p>
      )}
    </div>
  );
}

/** Consent grants and withdrawals with their proof (oldest first). */
export function ConsentTable({ items }: { items: ConsentRecord[] }) {
  return (
    <table class="table table-compact">
      <thead>
        <tr>
          <th scope="col">Purpose</th>
          <th scope="col">Given or withdrawn</th>
          <th scope="col">Source</th>
          <th scope="col">When</th>
          <th scope="col">IP</th>
        </tr>
      </thead>
      <tbody>
        {items.map((c, i) => (
          <tr key={i}>
            <td data-label="Purpose">{c.purpose}</td>
            <td data-label="Given or withdrawn">
              {c.withdrawn ? <span class="badge badge-bad">withdrawn</span> : <span class="badge badge-ok">given</span>}
              {c.wording ? <div class="muted small">“{c.wording}”</div> : null}
            </td>
            <td data-label="Source">{c.source}</td>
            <td data-label="When">{formatDate(c.at)}</td>
            <td data-label="IP">{c.ip || '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// ---------------------------------------------------------------- timeline

const EMAIL_LABELS: Record<string, string> = {
  'email.sent': 'Email sent',
  'email.delivered': 'Delivered',
  'email.bounced': 'Bounced',
  'email.opened': 'Opened',
  'email.clicked': 'Clicked',
};

function timelineLabel(item: TimelineItem): string {
  if (item.kind === 'activity') {
    const k = item.activity?.kind ?? 'activity';
    return k === 'task' && item.activity?.done ? 'Task done' : k[0].toUpperCase() + k.slice(1);
  }
  if (item.kind === 'audit') return 'Change';
  return EMAIL_LABELS[item.kind] ?? item.kind;
}

/** The badge colour class of a timeline item. */
function timelineTone(kind: string): string {
  if (kind === 'email.bounced') return 'badge-bad';
  if (kind === 'email.opened' || kind === 'email.clicked' || kind === 'email.delivered') return 'badge-ok';
  if (kind.startsWith('email.')) return 'badge-email';
  if (kind === 'audit') return 'badge-muted';
  return 'badge-activity';
}

/** Activities, changes and emails of a record, newest first. `refresh` reloads it. */
export function Timeline({ kind, id, refresh }: { kind: TimelineRecordKind; id: number; refresh?: unknown }) {
  const me = useUser();
  const users = useDirectory();
  const { data: items, error } = useLoad(`${kind}/${id}/${refresh}`, () => api.getTimeline(kind, id));
  const headingId = `timeline-${kind}-${id}`;
  return (
    <section class="card" aria-labelledby={headingId} data-testid="timeline">
      <h2 id={headingId}>Timeline</h2>
      <ErrorBanner error={error} />
      {items === null && !error ? <Spinner label="Loading the timeline…" /> : null}
      {items && items.length === 0 ? <p class="muted">Nothing has happened yet.</p> : null}
      {items && items.length > 0 ? (
        <ol class="timeline">
          {items.map((it, i) => (
            <li key={i} class="timeline-item" data-kind={it.kind}>
              <span class={'badge ' + timelineTone(it.kind)}>{timelineLabel(it)}</span>{' '}
              <span class="timeline-title">{it.activity ? it.activity.subject : it.title}</span>
              {it.campaign_id != null ? (
                <>
                  {' '}
                  <a href={href(`/campaigns/${it.campaign_id}/report`)}>campaign report</a>
                </>
              ) : null}
              {it.activity?.body ? <p class="timeline-body">{it.activity.body}</p> : null}
              {it.activity?.due ? <span class="muted small"> · due {it.activity.due}</span> : null}
              {it.fields && it.fields.length ? (
                <span class="muted small"> · {it.fields.join(', ')}</span>
              ) : null}
              <div class="muted small">
                <time dateTime={it.at}>{formatDate(it.at)}</time>
                {it.actor ? ` · ${actorLabel(it.actor, me, users)}` : null}
              </div>
            </li>
          ))}
        </ol>
      ) : null}
    </section>
  );
}

const FORM_KINDS: { kind: ActivityKind; label: string; submit: string }[] = [
  { kind: 'note', label: 'Note', submit: 'Add note' },
  { kind: 'call', label: 'Call', submit: 'Log call' },
  { kind: 'task', label: 'Task', submit: 'Add task' },
];

/** Adds a note, a logged call or a task to a record (`contact:7`). */
export function ActivityForm({ record, onAdded }: { record: string; onAdded: () => void }) {
  const [kind, setKind] = useState<ActivityKind>('note');
  const [subject, setSubject] = useState('');
  const [body, setBody] = useState('');
  const [due, setDue] = useState(todayISO());
  const { busy, error, setError, run } = useAction();
  const current = FORM_KINDS.find((k) => k.kind === kind)!;
  const idp = 'activity-' + record.replace(':', '-');

  async function submit(e: Event) {
    e.preventDefault();
    if (!subject.trim()) {
      setError(new ApiError(0, 'required', 'A subject is required.', 'subject'));
      return;
    }
    const added = await run(() =>
      api.createActivity({
        kind,
        subject: subject.trim(),
        body: body.trim() || undefined,
        record,
        due: kind === 'task' && due ? due : undefined,
      }),
    );
    if (!added) return;
    notify(`${current.label} added`);
    setSubject('');
    setBody('');
    onAdded();
  }

  return (
    <form class="card activity-form" onSubmit={submit} aria-labelledby={`${idp}-title`} noValidate>
      <h2 id={`${idp}-title`}>Add to the timeline</h2>
      <ErrorBanner error={error} />
      <fieldset class="segmented">
        <legend class="sr-only">Kind</legend>
        {FORM_KINDS.map((k) => (
          <label key={k.kind} class={'segment' + (kind === k.kind ? ' segment-on' : '')}>
            <input type="radio" name={`${idp}-kind`} value={k.kind} checked={kind === k.kind} onChange={() => setKind(k.kind)} />
            {k.label}
          </label>
        ))}
      </fieldset>
      <Field id={`${idp}-subject`} label="Subject" field="subject" error={error}>
        <input
          {...ctl(`${idp}-subject`, 'subject', error)}
          type="text"
          autoComplete="off"
          value={subject}
          onInput={(e) => setSubject(e.currentTarget.value)}
        />
      </Field>
      <Field id={`${idp}-body`} label="Details (optional)" field="body" error={error}>
        <textarea {...ctl(`${idp}-body`, 'body', error)} rows={2} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
      </Field>
      {kind === 'task' ? (
        <Field id={`${idp}-due`} label="Due" field="due" error={error}>
          <input {...ctl(`${idp}-due`, 'due', error)} type="date" value={due} onInput={(e) => setDue(e.currentTarget.value)} />
        </Field>
      ) : null}
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? 'Saving…' : current.submit}
        </button>
      </div>
    </form>
  );
}

/** The timeline of a record with the form that adds to it. */
export function RecordTimeline({ kind, id, onAdded }: { kind: TimelineRecordKind; id: number; onAdded?: () => void }) {
  const [seq, setSeq] = useState(0);
  return (
    <div class="grid-2 after-form timeline-grid">
      <Timeline kind={kind} id={id} refresh={seq} />
      <ActivityForm
        record={`${kind}:${id}`}
        onAdded={() => {
          setSeq((s) => s + 1);
          onAdded?.();
        }}
      />
    </div>
  );
}

// ---------------------------------------------------------------- cursor-paged lists

export interface CursorList<T> {
  items: T[];
  total: number | null;
  hasMore: boolean;
  loading: boolean;
  error: ApiError | null;
  loadMore: () => void;
  reload: () => void;
  setItems: (f: (items: T[]) => T[]) => void;
}

/** Loads the first page whenever `key` changes, and further pages on `loadMore`. */
export function useCursorList<T>(
  key: string,
  fetchPage: (cursor: string | null, signal: AbortSignal) => Promise<Page<T>>,
): CursorList<T> {
  const [items, setItems] = useState<T[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [seq, setSeq] = useState(0);
  const abortRef = useRef<AbortController | null>(null);
  const fetchRef = useRef(fetchPage);
  fetchRef.current = fetchPage;

  const load = useCallback(async (cursor: string | null) => {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    setLoading(true);
    setError(null);
    try {
      const page = await fetchRef.current(cursor, ctrl.signal);
      if (ctrl.signal.aborted) return;
      setItems((prev) => (cursor ? [...prev, ...page.items] : page.items));
      setNext(page.next_cursor ?? null);
      setTotal(typeof page.total === 'number' ? page.total : null);
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
      if (!cursor) setItems([]);
    } finally {
      if (abortRef.current === ctrl) setLoading(false);
    }
  }, []);

  useEffect(() => {
    load(null);
  }, [key, seq, load]);
  useEffect(() => () => abortRef.current?.abort(), []);

  return {
    items,
    total,
    hasMore: !!next,
    loading,
    error,
    loadMore: () => load(next),
    reload: () => setSeq((s) => s + 1),
    setItems,
  };
}

/** "12 leads · showing 10", the results (`children`, shown when there are items) or `empty`,
 *  and the "Load more" button of a cursor-paged list. */
export function PagedResults<T>(p: {
  id: string;
  list: CursorList<T>;
  noun: string;
  plural: string;
  empty: string;
  children: ComponentChildren;
}) {
  const { list } = p;
  const n = list.total ?? list.items.length;
  return (
    <div id={p.id} aria-busy={list.loading}>
      <p class="result-summary" role="status" aria-live="polite" data-testid="result-summary">
        {list.error
          ? ''
          : list.loading && !list.items.length
            ? 'Loading…'
            : `${n} ${n === 1 ? p.noun : p.plural}${list.items.length < n ? ` · showing ${list.items.length}` : ''}`}
      </p>
      {!list.loading && !list.error && list.items.length === 0 ? <p class="empty">{p.empty}</p> : null}
      {list.items.length ? p.children : null}
      {list.hasMore ? (
        <div class="load-more">
          <button type="button" class="btn" disabled={list.loading} onClick={list.loadMore}>
            {list.loading ? 'Loading…' : 'Load more'}
          </button>
        </div>
      ) : null}
    </div>
  );
}
