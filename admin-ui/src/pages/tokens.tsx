import { useEffect, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type ApiToken, type NewToken, type User } from '../api';
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
  useUser,
} from '../components';

export function TokensPage() {
  const me = useUser();
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [users, setUsers] = useState<User[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<NewToken | null>(null);
  const [toRevoke, setToRevoke] = useState<ApiToken | null>(null);
  const [revoking, setRevoking] = useState(false);

  function load() {
    api
      .getTokens()
      .then((r) => setTokens(r.items))
      .catch((e) => setError(toApiError(e)));
  }

  useEffect(() => {
    load();
    if (me.role === 'admin') {
      api
        .getUsers()
        .then((r) => setUsers(r.items))
        .catch(() => {
          /* owners then show as ids */
        });
    }
  }, [me.role]);

  async function doRevoke() {
    if (!toRevoke) return;
    setRevoking(true);
    try {
      await api.revokeToken(toRevoke.id);
      setTokens((ts) => ts?.map((t) => (t.id === toRevoke.id ? { ...t, revoked: true } : t)) ?? null);
      notify(`Revoked “${toRevoke.name}”`);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setRevoking(false);
      setToRevoke(null);
    }
  }

  const owner = (id: number) =>
    id === me.id ? 'you' : users.find((u) => u.id === id)?.email ?? `user #${id}`;
  const showOwner = me.role === 'admin' && (tokens ?? []).some((t) => t.user_id !== me.id);

  return (
    <section>
      <PageHeader title="API tokens" />
      <p class="muted">
        Tokens authenticate scripts and integrations against the API with{' '}
        <code>Authorization: Bearer ms_…</code>. A token acts with its owner's role.
      </p>
      <CreateToken
        onCreated={(t) => {
          setCreated(t);
          load();
        }}
      />
      {created ? <NewTokenPanel token={created} onDismiss={() => setCreated(null)} /> : null}
      <ErrorBanner error={error} />
      <div class="card">
        <h2>{me.role === 'admin' ? 'All tokens' : 'Your tokens'}</h2>
        {tokens === null && !error ? (
          <Spinner />
        ) : tokens && tokens.length === 0 ? (
          <p class="muted">No tokens yet.</p>
        ) : tokens ? (
          <table class="table tokens-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                {showOwner ? <th scope="col">Owner</th> : null}
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => (
                <tr key={t.id} class={t.revoked ? 'row-muted' : undefined}>
                  <td data-label="Name">{t.name}</td>
                  {showOwner ? <td data-label="Owner">{owner(t.user_id)}</td> : null}
                  <td data-label="Created">{formatDate(t.created_at)}</td>
                  <td data-label="Last used">{t.last_used_at ? formatDate(t.last_used_at) : 'never'}</td>
                  <td data-label="Status">
                    {t.revoked ? <span class="badge badge-muted">revoked</span> : <span class="badge badge-ok">active</span>}
                  </td>
                  <td class="actions">
                    {!t.revoked ? (
                      <button
                        type="button"
                        class="btn btn-small btn-danger-outline"
                        onClick={() => setToRevoke(t)}
                        aria-label={`Revoke ${t.name}`}
                      >
                        Revoke
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
      <ConfirmDialog
        open={toRevoke !== null}
        title="Revoke token?"
        confirmLabel="Revoke token"
        danger
        busy={revoking}
        onConfirm={doRevoke}
        onCancel={() => setToRevoke(null)}
      >
        <p>
          Anything using <strong>{toRevoke?.name}</strong> will stop working immediately. This cannot be undone.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function CreateToken({ onCreated }: { onCreated: (t: NewToken) => void }) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const t = await api.createToken(name.trim());
      onCreated(t);
      setName('');
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate aria-labelledby="new-token-title">
      <h2 id="new-token-title">New token</h2>
      <ErrorBanner error={error} />
      <div class="inline-form">
        <Field id="token-name" label="Name" field="name" error={error} hint="What will use it, e.g. “CRM sync”." class="field-grow">
          <input
            {...ctl('token-name', 'name', error, true)}
            type="text"
            autoComplete="off"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <button type="submit" class="btn btn-primary" disabled={busy || !name.trim()}>
          {busy ? 'Creating…' : 'Create token'}
        </button>
      </div>
    </form>
  );
}

function NewTokenPanel({ token, onDismiss }: { token: NewToken; onDismiss: () => void }) {
  return (
    <SecretReveal
      key={token.id}
      title={`Token “${token.name}” created`}
      inputId="new-token-value"
      inputLabel="New API token"
      value={token.token}
      what="token"
      onDismiss={onDismiss}
    >
      <strong>Copy it now.</strong> This is the only time the token is shown; Mailstead stores only a hash of it.
    </SecretReveal>
  );
}
