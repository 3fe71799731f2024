import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type Delivery, type OutMessage } from '../api';
import { DeliveryBadge, ErrorBanner, formatBytes, formatTime, PageHeader, Spinner } from '../components';
import { href } from '../router';
import { lastLogQuery } from './deliveries';
import { FeedbackTable } from './suppressions';

export function MessagePage({ id }: { id: string }) {
  const [msg, setMsg] = useState<OutMessage | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const m = await api.getMessage(id);
      setMsg(m);
      setError(null);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoading(false);
    }
  }, [id]);

  useEffect(() => {
    load();
  }, [load]);

  const back = (
    <p class="breadcrumb">
      <a href={href('/deliveries') + (lastLogQuery ? '?' + lastLogQuery : '')}>← Delivery log</a>
    </p>
  );

  if (!msg && loading) return <Spinner label="Loading message…" />;
  if (!msg) {
    return (
      <section>
        {back}
        <PageHeader title={error?.status === 404 ? 'Message not found' : 'Message'} />
        <ErrorBanner error={error} />
      </section>
    );
  }

  return (
    <section>
      {back}
      <PageHeader title={`Message #${msg.message_id}`}>
        <button type="button" class="btn" disabled={loading} onClick={load}>
          {loading ? 'Refreshing…' : 'Refresh'}
        </button>
      </PageHeader>
      <ErrorBanner error={error} />
      <div class="card">
        <dl class="meta" data-testid="message-meta">
          <dt>Subject</dt>
          <dd class="cell-email">{msg.subject || <span class="muted">(no subject)</span>}</dd>
          <dt>From</dt>
          <dd class="cell-email">{msg.from}</dd>
          <dt>Status</dt>
          <dd data-testid="message-status">
            <DeliveryBadge state={msg.status} />
          </dd>
          <dt>Created</dt>
          <dd>
            <time dateTime={msg.created_at}>{formatTime(msg.created_at)}</time>
          </dd>
          <dt>Size</dt>
          <dd>{formatBytes(msg.size)}</dd>
          <dt>Source</dt>
          <dd>{msg.source}</dd>
          <dt>Message-ID</dt>
          <dd class="mono cell-email">{msg.message_id_header}</dd>
          <dt>Recipients</dt>
          <dd>{msg.recipients.length}</dd>
        </dl>
      </div>
      {msg.feedback?.length ? (
        <div class="card">
          <h2>Bounces and complaints</h2>
          <FeedbackTable items={msg.feedback} showEmail />
        </div>
      ) : null}
      {msg.recipients.map((d) => (
        <RecipientTimeline key={d.index} d={d} />
      ))}
    </section>
  );
}

function RecipientTimeline({ d }: { d: Delivery }) {
  const titleId = `rcpt-${d.index}-title`;
  return (
    <section class="card recipient-card" aria-labelledby={titleId} data-recipient={d.recipient}>
      <h2 id={titleId} class="recipient-title">
        <span class="cell-email">{d.recipient}</span> <DeliveryBadge state={d.state} />
        {d.policy ? (
          <span class="badge badge-muted" title="Rejected by policy (5.7.x)">
            policy
          </span>
        ) : null}
      </h2>
      <p class="muted small recipient-facts">
        {d.domain}
        {d.site ? ` · site ${d.site}` : ''} · {d.attempts} attempt{d.attempts === 1 ? '' : 's'}
        {d.next_attempt && !['sent', 'bounced', 'failed'].includes(d.state) ? ` · next try ${formatTime(d.next_attempt)}` : ''}
      </p>
      {d.events.length ? (
        <table class="table table-compact timeline-table" aria-label={`Events for ${d.recipient}`}>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">State</th>
              <th scope="col">Code</th>
              <th scope="col">Enhanced</th>
              <th scope="col">Text</th>
              <th scope="col">MX host</th>
            </tr>
          </thead>
          <tbody>
            {d.events.map((ev, i) => (
              <tr key={i}>
                <td data-label="Time">
                  <time dateTime={ev.at}>{formatTime(ev.at)}</time>
                </td>
                <td data-label="State">
                  <div>
                    <DeliveryBadge state={ev.state} />
                  </div>
                </td>
                <td data-label="Code" class="mono">
                  {ev.code ?? <span class="muted">—</span>}
                </td>
                <td data-label="Enhanced" class="mono">
                  {ev.enhanced ?? <span class="muted">—</span>}
                </td>
                <td data-label="Text" class="cell-event">
                  {ev.text || <span class="muted">—</span>}
                </td>
                <td data-label="MX host" class="cell-email">
                  {ev.mx ?? <span class="muted">—</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No events yet.</p>
      )}
    </section>
  );
}
