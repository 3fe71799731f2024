import { useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  isAbort,
  SUPPRESSION_REASONS,
  toApiError,
  type ApiError,
  type FeedbackRecord,
  type Suppression,
  type SuppressionReason,
} from '../api';
import {
  canWrite,
  ConfirmDialog,
  ctl,
  ErrorBanner,
  Field,
  formatTime,
  notify,
  PageHeader,
  Spinner,
  useDebounced,
  useUser,
} from '../components';

const PAGE_SIZE = 50;

export const REASON_LABEL: Record<SuppressionReason, string> = {
  hard_bounce: 'hard bounce',
  soft_bounces: 'soft bounces',
  complaint: 'complaint',
  unsubscribed: 'unsubscribed',
  manual: 'added by hand',
};

export const ACTION_LABEL: Record<FeedbackRecord['action'], string> = {
  suppressed: 'suppressed',
  unsubscribed: 'unsubscribed + suppressed',
  counted: 'soft bounce counted',
  sender_problem: 'sender problem (not held against the address)',
  recorded: 'recorded',
};

export function ReasonBadge({ reason }: { reason: SuppressionReason }) {
  const cls = reason === 'complaint' || reason === 'hard_bounce' ? 'badge-bad' : 'badge-muted';
  return <span class={`badge ${cls}`}>{REASON_LABEL[reason] ?? reason}</span>;
}

/** The suppression list: search, add, remove, export; and the most recent feedback. */
export function SuppressionsPage() {
  const me = useUser();
  const writable = canWrite(me);
  const [q, setQ] = useState('');
  const debounced = useDebounced(q.trim(), 250);
  const [items, setItems] = useState<Suppression[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<ApiError | null>(null);
  const [toRemove, setToRemove] = useState<Suppression | null>(null);
  const [removing, setRemoving] = useState(false);
  const [reload, setReload] = useState(0);
  const abortRef = useRef<AbortController | null>(null);

  async function load(query: string, after: string | null) {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    setError(null);
    try {
      const page = await api.getSuppressions(query, after, PAGE_SIZE, ctrl.signal);
      if (ctrl.signal.aborted) return;
      setItems((old) => (after && old ? [...old, ...page.items] : page.items));
      setNext(page.next);
      setTotal(page.total);
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
      if (!after) setItems([]);
    }
  }

  useEffect(() => {
    load(debounced, null);
  }, [debounced, reload]);
  useEffect(() => () => abortRef.current?.abort(), []);

  async function doRemove() {
    if (!toRemove) return;
    setRemoving(true);
    try {
      await api.removeSuppression(toRemove.email);
      setItems((xs) => xs?.filter((x) => x.email !== toRemove.email) ?? null);
      setTotal((t) => Math.max(0, t - 1));
      notify(`${toRemove.email} can receive mail again`);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setRemoving(false);
      setToRemove(null);
    }
  }

  return (
    <section>
      <PageHeader title="Suppression list">
        <a class="btn" href={api.suppressionExportUrl(debounced)} download="suppressions.csv">
          Export CSV
        </a>
      </PageHeader>
      <p class="muted">
        No campaign or transactional message reaches these addresses. Hard bounces and complaints land here at once,
        soft bounces after repeated failures; policy rejections (5.7.x) are the sender's problem and never do.
      </p>
      {writable ? <AddSuppression onAdded={() => setReload((n) => n + 1)} /> : null}
      <div class="card">
        <div class="search-row">
          <label class="sr-only" for="suppression-search">
            Search the suppression list
          </label>
          <input
            id="suppression-search"
            type="search"
            placeholder="Search address, reason, source or detail"
            value={q}
            onInput={(e) => setQ((e.target as HTMLInputElement).value)}
          />
          <span class="muted" data-testid="suppression-total" aria-live="polite">
            {total} {total === 1 ? 'address' : 'addresses'} suppressed
          </span>
        </div>
        <ErrorBanner error={error} />
        {items === null ? (
          <Spinner />
        ) : items.length === 0 ? (
          <p class="muted">{debounced ? 'Nothing matches.' : 'The list is empty.'}</p>
        ) : (
          <table class="table suppressions-table">
            <thead>
              <tr>
                <th scope="col">Address</th>
                <th scope="col">Reason</th>
                <th scope="col">Source</th>
                <th scope="col">Detail</th>
                <th scope="col">Since</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr key={s.email}>
                  <td data-label="Address">{s.email}</td>
                  <td data-label="Reason">
                    <ReasonBadge reason={s.reason} />
                  </td>
                  <td data-label="Source">{s.source}</td>
                  <td data-label="Detail" class="detail-cell" title={s.detail}>
                    {s.detail || '—'}
                  </td>
                  <td data-label="Since">{formatTime(s.created_at)}</td>
                  <td class="actions">
                    {writable ? (
                      <button
                        type="button"
                        class="btn btn-small btn-danger-outline"
                        onClick={() => setToRemove(s)}
                        aria-label={`Remove ${s.email} from the suppression list`}
                      >
                        Remove
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {next ? (
          <button type="button" class="btn" onClick={() => load(debounced, next)}>
            Load more
          </button>
        ) : null}
      </div>
      <RecentFeedback />
      <ConfirmDialog
        open={toRemove !== null}
        title="Allow mail to this address again?"
        confirmLabel="Remove from the list"
        busy={removing}
        danger
        onConfirm={doRemove}
        onCancel={() => setToRemove(null)}
      >
        <p>
          <strong>{toRemove?.email}</strong> was suppressed for: {toRemove ? REASON_LABEL[toRemove.reason] : ''}. Sending
          to an address that bounced or complained hurts the reputation of every message you send.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function AddSuppression({ onAdded }: { onAdded: () => void }) {
  const [email, setEmail] = useState('');
  const [reason, setReason] = useState<SuppressionReason>('manual');
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api.addSuppression({ email: email.trim(), reason, note: note.trim() || undefined });
      notify(`${s.email} is suppressed`);
      setEmail('');
      setNote('');
      onAdded();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} aria-labelledby="add-suppression-title" noValidate>
      <h2 id="add-suppression-title">Add an address</h2>
      <ErrorBanner error={error} />
      <div class="inline-form">
        <Field id="sup-email" label="Email address" field="email" error={error} class="field-grow">
          <input
            {...ctl('sup-email', 'email', error)}
            type="email"
            required
            value={email}
            onInput={(e) => setEmail((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field id="sup-reason" label="Reason" field="reason" error={error}>
          <select
            {...ctl('sup-reason', 'reason', error)}
            value={reason}
            onChange={(e) => setReason((e.target as HTMLSelectElement).value as SuppressionReason)}
          >
            {SUPPRESSION_REASONS.map((r) => (
              <option key={r} value={r}>
                {REASON_LABEL[r]}
              </option>
            ))}
          </select>
        </Field>
        <Field id="sup-note" label="Note (optional)" field="note" error={error} class="field-grow">
          <input
            {...ctl('sup-note', 'note', error)}
            type="text"
            value={note}
            onInput={(e) => setNote((e.target as HTMLInputElement).value)}
          />
        </Field>
        <button type="submit" class="btn btn-primary" disabled={busy || !email.trim()}>
          {busy ? 'Adding…' : 'Suppress'}
        </button>
      </div>
    </form>
  );
}

function RecentFeedback() {
  const [items, setItems] = useState<FeedbackRecord[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    api
      .getFeedbackLog(null, 50)
      .then((r) => setItems(r.items))
      .catch((e) => setError(toApiError(e)));
  }, []);
  return (
    <div class="card">
      <h2>Recent bounces and complaints</h2>
      <ErrorBanner error={error} />
      {items === null && !error ? <Spinner /> : null}
      {items && items.length === 0 ? <p class="muted">Nothing received yet.</p> : null}
      {items && items.length > 0 ? <FeedbackTable items={items} showEmail /> : null}
    </div>
  );
}

/** Feedback records as a table (also used on the contact page). */
export function FeedbackTable({ items, showEmail }: { items: FeedbackRecord[]; showEmail?: boolean }) {
  return (
    <table class="table feedback-table">
      <thead>
        <tr>
          <th scope="col">When</th>
          {showEmail ? <th scope="col">Address</th> : null}
          <th scope="col">Kind</th>
          <th scope="col">Reason</th>
          <th scope="col">Status</th>
          <th scope="col">What happened</th>
          <th scope="col">Source</th>
        </tr>
      </thead>
      <tbody>
        {items.map((f) => (
          <tr key={f.id}>
            <td data-label="When">{formatTime(f.at)}</td>
            {showEmail ? <td data-label="Address">{f.email}</td> : null}
            <td data-label="Kind">
              {f.kind.replace('_', ' ')}
              {f.hard ? ' (hard)' : ''}
            </td>
            <td data-label="Reason" title={f.diagnostic}>
              {f.reason}
              {f.feedback_type ? ` · ${f.feedback_type}` : ''}
            </td>
            <td data-label="Status">{[f.reply_code, f.status].filter(Boolean).join(' ') || '—'}</td>
            <td data-label="What happened">{ACTION_LABEL[f.action] ?? f.action}</td>
            <td data-label="Source">{f.source}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
