import { useEffect, useState } from 'preact/hooks';
import {
  api,
  toApiError,
  type ApiError,
  type NewWebhookSubscription,
  type WebhookAttempt,
  type WebhookSubscription,
} from '../api';
import {
  ConfirmDialog,
  ctl,
  ErrorBanner,
  Field,
  formatDate,
  notify,
  PageHeader,
  SecretReveal,
  Spinner,
} from '../components';

/** Subscriptions the dispatcher disabled after repeated failures. */
export function autoDisabled(subs: WebhookSubscription[]): WebhookSubscription[] {
  return subs.filter((s) => s.status === 'disabled' && s.auto_disabled);
}

/** The warning shown (on every page, for admins) while a subscription is auto-disabled. */
export function WebhookWarning({ subs, link }: { subs: WebhookSubscription[]; link: boolean }) {
  const off = autoDisabled(subs);
  if (off.length === 0) return null;
  return (
    <div class="alert alert-error" role="alert" data-testid="webhook-warning">
      <strong>Webhooks disabled:</strong>{' '}
      {off.length === 1 ? `${off[0].url} was` : `${off.length} subscriptions were`} disabled after repeated delivery
      failures; integrators no longer receive events.{' '}
      {link ? <a href="#/webhooks">Review webhooks</a> : 'Check the delivery log, fix the receiver, then enable it.'}
    </div>
  );
}

export function WebhooksPage() {
  const [subs, setSubs] = useState<WebhookSubscription[] | null>(null);
  const [types, setTypes] = useState<string[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<NewWebhookSubscription | null>(null);
  const [logFor, setLogFor] = useState<WebhookSubscription | null>(null);
  const [toDelete, setToDelete] = useState<WebhookSubscription | null>(null);
  const [busy, setBusy] = useState(false);

  function load() {
    api
      .getWebhooks()
      .then((r) => {
        setSubs(r.items);
        setTypes(r.event_types);
      })
      .catch((e) => setError(toApiError(e)));
  }
  useEffect(load, []);

  async function act(what: string, f: () => Promise<unknown>) {
    setError(null);
    try {
      await f();
      notify(what);
      load();
    } catch (e) {
      setError(toApiError(e));
    }
  }

  async function doDelete() {
    if (!toDelete) return;
    setBusy(true);
    await act('Subscription deleted', () => api.deleteWebhook(toDelete.id));
    if (logFor?.id === toDelete.id) setLogFor(null);
    setBusy(false);
    setToDelete(null);
  }

  /** [label, accessible name, action] of a subscription's buttons. */
  const actions = (s: WebhookSubscription): [string, string, () => void][] => [
    ['Log', `Delivery log of ${s.url}`, () => setLogFor(s)],
    ['Test', `Send a test ping to ${s.url}`, () => act('Test ping queued', () => api.testWebhook(s.id))],
    s.status === 'active'
      ? ['Disable', `Disable ${s.url}`, () => act('Subscription disabled', () => api.disableWebhook(s.id))]
      : ['Enable', `Enable ${s.url}`, () => act('Subscription enabled', () => api.enableWebhook(s.id))],
    [
      'Rotate secret',
      `Rotate the secret of ${s.url}`,
      () => act('New secret created', async () => setCreated(await api.rotateWebhookSecret(s.id))),
    ],
  ];

  return (
    <section>
      <PageHeader title="Webhooks" />
      <p class="muted">
        Mailstead POSTs JSON events to these URLs, signed with the subscription's secret:{' '}
        <code>X-Mailstead-Signature: v1=hex(HMAC-SHA256(secret, timestamp + "." + body))</code> with the timestamp in{' '}
        <code>X-Mailstead-Timestamp</code>. Failed deliveries are retried with backoff.
      </p>
      <WebhookWarning subs={subs ?? []} link={false} />
      <CreateWebhook
        types={types}
        onCreated={(s) => {
          setCreated(s);
          load();
        }}
      />
      {created ? (
        <SecretReveal
          key={created.id}
          title="Signing secret"
          inputId="new-webhook-secret"
          inputLabel="Signing secret"
          value={created.secret}
          what="secret"
          onDismiss={() => setCreated(null)}
        >
          <strong>Copy it now</strong> into the receiver for {created.url}. It is not shown again (rotate it to get a
          new one).
        </SecretReveal>
      ) : null}
      <ErrorBanner error={error} />
      <div class="card">
        <h2>Subscriptions</h2>
        {subs === null && !error ? (
          <Spinner />
        ) : subs && subs.length === 0 ? (
          <p class="muted">No subscriptions yet.</p>
        ) : subs ? (
          <div class="table-scroll">
            <table class="table webhooks-table">
              <thead>
                <tr>
                  <th scope="col">URL</th>
                  <th scope="col">Events</th>
                  <th scope="col">Status</th>
                  <th scope="col">Last error</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {subs.map((s) => (
                  <tr key={s.id} data-url={s.url} class={s.status === 'disabled' ? 'row-muted' : undefined}>
                    <td data-label="URL">
                      <span class="mono">{s.url}</span>
                      {s.description ? <div class="muted">{s.description}</div> : null}
                    </td>
                    <td data-label="Events">{s.events.join(', ')}</td>
                    <td data-label="Status">
                      {s.status === 'active' ? (
                        <span class="badge badge-ok">active</span>
                      ) : (
                        <span class={'badge ' + (s.auto_disabled ? 'import-failed' : 'badge-muted')}>
                          {s.auto_disabled ? 'auto-disabled' : 'disabled'}
                        </span>
                      )}
                      {s.consecutive_failures > 0 ? (
                        <div class="muted">{s.consecutive_failures} failures in a row</div>
                      ) : null}
                    </td>
                    <td data-label="Last error">{s.last_error ?? '—'}</td>
                    <td class="actions">
                      {actions(s).map(([label, aria, onClick]) => (
                        <button type="button" class="btn btn-small" key={label} onClick={onClick} aria-label={aria}>
                          {label}
                        </button>
                      ))}
                      <button
                        type="button"
                        class="btn btn-small btn-danger-outline"
                        onClick={() => setToDelete(s)}
                        aria-label={`Delete ${s.url}`}
                      >
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </div>
      {logFor ? <DeliveryLog key={logFor.id} sub={logFor} onClose={() => setLogFor(null)} /> : null}
      <ConfirmDialog
        open={toDelete !== null}
        title="Delete subscription?"
        confirmLabel="Delete subscription"
        danger
        busy={busy}
        onConfirm={doDelete}
        onCancel={() => setToDelete(null)}
      >
        <p>
          <strong>{toDelete?.url}</strong> stops receiving events; its delivery log is deleted too.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function CreateWebhook({ types, onCreated }: { types: string[]; onCreated: (s: NewWebhookSubscription) => void }) {
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await api.createWebhook({ url: url.trim(), events, description }));
      setUrl('');
      setDescription('');
      setEvents([]);
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  const toggle = (t: string, on: boolean) => setEvents((ev) => (on ? [...ev, t] : ev.filter((x) => x !== t)));

  return (
    <form class="card" onSubmit={submit} noValidate aria-labelledby="new-webhook-title">
      <h2 id="new-webhook-title">New subscription</h2>
      <ErrorBanner error={error} />
      <Field id="webhook-url" label="URL" field="url" error={error} hint="An https:// endpoint of the receiving system.">
        <input
          {...ctl('webhook-url', 'url', error, true)}
          type="url"
          autoComplete="off"
          placeholder="https://crm.example.com/hooks/mailstead"
          value={url}
          onInput={(e) => setUrl(e.currentTarget.value)}
        />
      </Field>
      <Field id="webhook-description" label="Description" field="description" error={error}>
        <input
          {...ctl('webhook-description', 'description', error)}
          type="text"
          autoComplete="off"
          value={description}
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </Field>
      <fieldset class={'field' + (error?.field === 'events' ? ' field-invalid' : '')}>
        <legend>Events</legend>
        <div class="webhook-events">
          {types.map((t) => (
            <label class="check" key={t}>
              <input
                type="checkbox"
                name="events"
                value={t}
                checked={events.includes(t)}
                onChange={(e) => toggle(t, e.currentTarget.checked)}
              />
              <span class="mono">{t}</span>
            </label>
          ))}
        </div>
        {error?.field === 'events' ? <p class="field-error">{error.message}</p> : null}
      </fieldset>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !url.trim() || events.length === 0}>
          {busy ? 'Creating…' : 'Create subscription'}
        </button>
      </div>
    </form>
  );
}

function DeliveryLog({ sub, onClose }: { sub: WebhookSubscription; onClose: () => void }) {
  const [items, setItems] = useState<WebhookAttempt[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  function load(after?: string) {
    api
      .getWebhookAttempts(sub.id, after)
      .then((r) => {
        setItems((old) => (after ? [...(old ?? []), ...r.items] : r.items));
        setCursor(r.next_cursor);
      })
      .catch((e) => setError(toApiError(e)));
  }
  useEffect(() => load(), [sub.id]);

  return (
    <div class="card" role="region" aria-labelledby="webhook-log-title">
      <h2 id="webhook-log-title">Delivery log: {sub.url}</h2>
      <ErrorBanner error={error} />
      <div class="form-actions">
        <button type="button" class="btn btn-small" onClick={() => load()}>
          Refresh
        </button>
        <button type="button" class="btn btn-small" onClick={onClose}>
          Close
        </button>
      </div>
      {items === null && !error ? (
        <Spinner />
      ) : items && items.length === 0 ? (
        <p class="muted">No attempts yet.</p>
      ) : items ? (
        <div class="table-scroll">
          <table class="table table-compact webhook-log">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Attempt</th>
                <th scope="col">Result</th>
                <th scope="col" class="num">
                  ms
                </th>
                <th scope="col">Response</th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.id}>
                  <td data-label="Time">{formatDate(a.at)}</td>
                  <td data-label="Event">
                    <span class="mono">{a.event_type}</span> #{a.delivery_id}
                  </td>
                  <td data-label="Attempt">{a.attempt}</td>
                  <td data-label="Result">
                    <span class={'badge ' + (a.ok ? 'badge-ok' : 'import-failed')}>
                      {a.status !== null ? `HTTP ${a.status}` : 'no response'}
                    </span>
                    {a.error && a.status === null ? <div class="muted">{a.error}</div> : null}
                    {a.next_attempt_at ? <div class="muted">retry {formatDate(a.next_attempt_at)}</div> : null}
                  </td>
                  <td data-label="ms" class="num">
                    {a.duration_ms}
                  </td>
                  <td data-label="Response">
                    <span class="mono">{a.response.slice(0, 200)}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {cursor ? (
        <button type="button" class="btn btn-small" onClick={() => load(cursor)}>
          Older attempts
        </button>
      ) : null}
    </div>
  );
}
