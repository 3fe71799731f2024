import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, isAbort, toApiError, type ApiError, type QueueHealth, type TxAccepted } from '../api';
import { ctl, ErrorBanner, Field, formatAge, formatTime, notify, PageHeader, Spinner, usePolling, useUser } from '../components';
import { href } from '../router';

const REFRESH_MS = 5000;

export function QueuePage() {
  const user = useUser();
  const [queue, setQueue] = useState<QueueHealth | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const [updatedAt, setUpdatedAt] = useState<Date | null>(null);
  const abortRef = useRef<AbortController | null>(null);

  const load = useCallback(async () => {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    setLoading(true);
    try {
      const q = await api.getQueue(ctrl.signal);
      if (ctrl.signal.aborted) return;
      setQueue(q);
      setError(null);
      setUpdatedAt(new Date());
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
    } finally {
      if (abortRef.current === ctrl) setLoading(false);
    }
  }, []);

  // Refresh every 5 s while the page is visible; at once when it becomes visible again.
  useEffect(() => {
    load();
    return () => abortRef.current?.abort();
  }, [load]);
  usePolling(load, REFRESH_MS);

  const sites = queue ? Object.entries(queue.sites).sort((a, b) => b[1].waiting - a[1].waiting || a[0].localeCompare(b[0])) : [];

  return (
    <section>
      <PageHeader title="Queue health">
        <button type="button" class="btn" disabled={loading} onClick={load}>
          Refresh
        </button>
      </PageHeader>
      <p class="muted small" data-testid="queue-updated">
        Refreshes every 5 seconds while this page is open
        {updatedAt ? <> · updated {updatedAt.toLocaleTimeString()}</> : null}
      </p>
      <ErrorBanner error={error} />
      {queue === null && !error ? <Spinner label="Loading queue…" /> : null}
      {queue ? (
        <>
          <dl class="stats stats-3" aria-label="Queue totals">
            <div>
              <dt>Waiting</dt>
              <dd data-testid="queue-waiting">{queue.waiting}</dd>
            </div>
            <div>
              <dt>Oldest waiting</dt>
              <dd data-testid="queue-oldest">{queue.oldest_waiting_seconds === null ? '—' : formatAge(queue.oldest_waiting_seconds)}</dd>
            </div>
            <div>
              <dt>Sites</dt>
              <dd>{sites.length}</dd>
            </div>
          </dl>
          <div class="card">
            <h2>By receiving site</h2>
            {sites.length === 0 ? (
              <p class="muted">Nothing has been queued yet.</p>
            ) : (
              <table class="table queue-table">
                <thead>
                  <tr>
                    <th scope="col">Site</th>
                    <th scope="col" class="num">
                      Waiting
                    </th>
                    <th scope="col" class="num">
                      Deferred
                    </th>
                    <th scope="col" class="num">
                      Sent
                    </th>
                    <th scope="col" class="num">
                      Bounced
                    </th>
                    <th scope="col" class="num">
                      Failed
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {sites.map(([site, s]) => (
                    <tr key={site} data-site={site}>
                      <th scope="row" data-label="Site" class="cell-email">
                        {site}
                      </th>
                      <td data-label="Waiting" class="num">
                        {s.waiting}
                      </td>
                      <td data-label="Deferred" class={'num' + (s.deferred ? ' text-warn' : '')}>
                        {s.deferred}
                      </td>
                      <td data-label="Sent" class="num">
                        {s.sent}
                      </td>
                      <td data-label="Bounced" class={'num' + (s.bounced ? ' text-danger' : '')}>
                        {s.bounced}
                      </td>
                      <td data-label="Failed" class={'num' + (s.failed ? ' text-danger' : '')}>
                        {s.failed}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </>
      ) : null}
      {user.role === 'admin' ? <TestSend onSent={load} /> : null}
    </section>
  );
}

function TestSend({ onSent }: { onSent: () => void }) {
  const me = useUser();
  const [from, setFrom] = useState(me.email);
  const [to, setTo] = useState('');
  const [subject, setSubject] = useState('Mailstead test message');
  const [body, setBody] = useState('This is a test message from Mailstead.');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [sent, setSent] = useState<(TxAccepted & { at: string }) | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const recipients = to
        .split(/[,\s]+/)
        .map((s) => s.trim())
        .filter(Boolean);
      const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      const res = await api.sendTx({
        from: from.trim(),
        to: recipients.length === 1 ? recipients[0] : recipients,
        subject,
        html: `<p>${esc(body).replace(/\n/g, '<br>')}</p>`,
        text: body,
      });
      setSent({ ...res, at: new Date().toISOString() });
      notify(`Message #${res.message_id} queued`);
      onSent();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate aria-labelledby="test-send-title">
      <h2 id="test-send-title">Send a test message</h2>
      <p class="muted small">
        Goes through <code>POST /api/v1/tx</code> like any transactional message and shows up in the delivery log.
      </p>
      <ErrorBanner error={error} />
      <div class="row-2">
        <Field id="tx-from" label="From" field="from" error={error}>
          <input {...ctl('tx-from', 'from', error)} type="text" autoComplete="off" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </Field>
        <Field id="tx-to" label="To" field="to" error={error} hint="One or more addresses, separated by commas.">
          <input
            {...ctl('tx-to', 'to', error, true)}
            type="text"
            autoComplete="off"
            value={to}
            onInput={(e) => setTo(e.currentTarget.value)}
          />
        </Field>
      </div>
      <Field id="tx-subject" label="Subject" field="subject" error={error}>
        <input {...ctl('tx-subject', 'subject', error)} type="text" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
      </Field>
      <Field id="tx-body" label="Text" field="html" error={error}>
        <textarea {...ctl('tx-body', 'html', error)} rows={3} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
      </Field>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !to.trim() || !from.trim()}>
          {busy ? 'Sending…' : 'Send test message'}
        </button>
        {sent ? (
          <span class="save-state" role="status">
            Queued at {formatTime(sent.at)}: <a href={href(`/messages/${sent.message_id}`)}>message #{sent.message_id}</a>
          </span>
        ) : null}
      </div>
    </form>
  );
}
