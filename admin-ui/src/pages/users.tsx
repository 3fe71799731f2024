import { useEffect, useState } from 'preact/hooks';
import { api, ROLES, toApiError, type ApiError, type Role, type User } from '../api';
import { forgetDirectory } from '../crm';
import {
  ConfirmDialog,
  ctl,
  ErrorBanner,
  Field,
  formatDate,
  notify,
  PageHeader,
  Spinner,
  useFocusErrorField,
  useUser,
} from '../components';

const ROLE_HELP: Record<Role, string> = {
  admin: 'Everything, including users',
  manager: 'All contacts, lists and campaigns',
  sales: 'Contacts (own and shared)',
  marketing: 'Lists, imports and campaigns',
  viewer: 'Read-only',
};

const TEAM_HINT = "Managers with a team see only their team's CRM records";
export function UsersPage() {
  const me = useUser();
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busyId, setBusyId] = useState<number | null>(null);
  const [toDelete, setToDelete] = useState<User | null>(null);
  const [pwUser, setPwUser] = useState<User | null>(null);
  // Bumped when a role change fails, to re-mount the selects with the role we really have.
  const [rev, setRev] = useState(0);

  useEffect(() => {
    api
      .getUsers()
      .then((r) => setUsers(r.items))
      .catch((e) => setError(toApiError(e)));
  }, []);

  async function changeRole(u: User, role: Role) {
    if (role === u.role) return;
    setBusyId(u.id);
    setError(null);
    try {
      const updated = await api.updateUser(u.id, { role });
      setUsers((us) => us?.map((x) => (x.id === u.id ? { ...x, ...(updated ?? {}), role: updated?.role ?? role } : x)) ?? null);
      forgetDirectory();
      notify(`${u.email} is now ${role}`);
    } catch (e) {
      setError(toApiError(e));
      setRev((r) => r + 1);
    } finally {
      setBusyId(null);
    }
  }

  async function doDelete() {
    if (!toDelete) return;
    const u = toDelete;
    setBusyId(u.id);
    try {
      await api.deleteUser(u.id);
      setUsers((us) => us?.filter((x) => x.id !== u.id) ?? null);
      forgetDirectory();
      notify(`Deleted ${u.email}`);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusyId(null);
      setToDelete(null);
    }
  }

  return (
    <section>
      <PageHeader title="Users" />
      <CreateUser
        onCreated={(u) => {
          setUsers((us) => [...(us ?? []), u]);
          forgetDirectory();
        }}
      />
      <ErrorBanner error={error} />
      <div class="card">
        <h2>All users</h2>
        {users === null && !error ? (
          <Spinner />
        ) : users ? (
          <table class="table users-table">
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col" title={TEAM_HINT}>
                  Team
                </th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.map((u) => {
                const self = u.id === me.id;
                return (
                  <tr key={u.id}>
                    <td data-label="Email">
                      {u.email} {self ? <span class="badge">you</span> : null}
                    </td>
                    <td data-label="Role">
                      <label class="sr-only" for={`role-${u.id}`}>
                        Role of {u.email}
                      </label>
                      <select
                        key={`${u.id}-${rev}`}
                        id={`role-${u.id}`}
                        value={u.role}
                        disabled={busyId === u.id || self}
                        title={self ? 'You cannot change your own role' : undefined}
                        onChange={(e) => changeRole(u, e.currentTarget.value as Role)}
                      >
                        {ROLES.map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td data-label="Team">
                      <TeamInput
                        user={u}
                        onSaved={(team) => {
                          setUsers((us) => us?.map((x) => (x.id === u.id ? { ...x, team } : x)) ?? null);
                          forgetDirectory();
                        }}
                      />
                    </td>
                    <td data-label="Created">{formatDate(u.created_at)}</td>
                    <td class="actions">
                      <button
                        type="button"
                        class="btn btn-small"
                        onClick={() => setPwUser(u)}
                        aria-label={`Set password for ${u.email}`}
                      >
                        Set password
                      </button>
                      {!self ? (
                        <button
                          type="button"
                          class="btn btn-small btn-danger-outline"
                          disabled={busyId === u.id}
                          onClick={() => setToDelete(u)}
                          aria-label={`Delete ${u.email}`}
                        >
                          Delete
                        </button>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
      </div>
      <ConfirmDialog
        open={toDelete !== null}
        title="Delete user?"
        confirmLabel="Delete user"
        danger
        busy={busyId !== null}
        onConfirm={doDelete}
        onCancel={() => setToDelete(null)}
      >
        <p>
          <strong>{toDelete?.email}</strong> will no longer be able to sign in, and their API tokens stop working.
        </p>
      </ConfirmDialog>
      {pwUser ? <PasswordDialog user={pwUser} onClose={() => setPwUser(null)} /> : null}
    </section>
  );
}

function CreateUser({ onCreated }: { onCreated: (u: User) => void }) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [password, setPassword] = useState('');
  const [team, setTeam] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  useFocusErrorField(
    error,
    (f) => ({ email: 'user-email', role: 'user-role', password: 'user-password', team: 'user-team' })[f] ?? '',
  );

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const t = team.trim();
      // Without a team the field is left out (older servers refuse unknown fields).
      const u = await api.createUser({ email: email.trim(), role, password, ...(t ? { team: t } : {}) });
      onCreated(u);
      notify(u.team ? `Created ${u.email} in team ${u.team}` : `Created ${u.email}`);
      setEmail('');
      setPassword('');
      setRole('viewer');
      setTeam('');
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate aria-labelledby="new-user-title">
      <h2 id="new-user-title">New user</h2>
      <ErrorBanner error={error} />
      <div class="row-2">
        <Field id="user-email" label="Email" field="email" error={error}>
          <input
            {...ctl('user-email', 'email', error)}
            type="email"
            autoComplete="off"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </Field>
        <Field id="user-password" label="Password" field="password" error={error}>
          <input
            {...ctl('user-password', 'password', error)}
            type="password"
            autoComplete="new-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <Field id="user-role" label="Role" field="role" error={error} hint={ROLE_HELP[role]}>
          <select {...ctl('user-role', 'role', error, true)} value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <Field id="user-team" label="Team (optional)" field="team" error={error} hint={TEAM_HINT}>
          <input
            {...ctl('user-team', 'team', error, true)}
            type="text"
            autoComplete="off"
            placeholder="e.g. north"
            value={team}
            onInput={(e) => setTeam(e.currentTarget.value)}
          />
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !email.trim() || !password}>
          {busy ? 'Creating…' : 'Create user'}
        </button>
      </div>
    </form>
  );
}

/**
 * A user's team, edited in place: saved when the value changes (on leaving the field or
 * Enter), an empty field clears it; Escape puts back the saved team. A refused value stays in
 * the field with the server's message under it.
 */
function TeamInput({ user, onSaved }: { user: User; onSaved: (team: string | null) => void }) {
  const saved = user.team ?? '';
  const [value, setValue] = useState(saved);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const id = `team-${user.id}`;

  async function save(raw: string) {
    const team = raw.trim();
    setValue(team);
    if (team === saved) {
      setError(null);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const updated = await api.updateUser(user.id, { team });
      const now = updated?.team ?? (team || null);
      setValue(now ?? '');
      onSaved(now);
      notify(now ? `${user.email} is now in team ${now}` : `${user.email} is in no team now`);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="team-edit">
      <label class="sr-only" for={id}>
        Team of {user.email}
      </label>
      <input
        id={id}
        type="text"
        autoComplete="off"
        placeholder="No team"
        value={value}
        readOnly={busy}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
        onInput={(e) => setValue(e.currentTarget.value)}
        onChange={(e) => save(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            setValue(saved);
            setError(null);
          }
        }}
      />
      {error ? (
        <p class="field-error" id={`${id}-error`} role="alert">
          {error.message}
        </p>
      ) : null}
    </div>
  );
}

function PasswordDialog({ user, onClose }: { user: User; onClose: () => void }) {
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  return (
    <ConfirmDialog
      open
      title={`Set password for ${user.email}`}
      confirmLabel="Set password"
      busy={busy}
      confirmDisabled={!password}
      onCancel={onClose}
      onConfirm={async () => {
        if (!password) return;
        setBusy(true);
        setError(null);
        try {
          await api.updateUser(user.id, { password });
          notify('Password changed');
          onClose();
        } catch (e) {
          setError(toApiError(e));
          setBusy(false);
        }
      }}
    >
      <ErrorBanner error={error} />
      <Field id="pw-new" label="New password" field="password" error={error}>
        <input
          {...ctl('pw-new', 'password', error)}
          type="password"
          autoComplete="new-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </Field>
    </ConfirmDialog>
  );
}
