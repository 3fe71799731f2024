import { useEffect, useRef, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type MailList } from '../api';
import {
  canWrite,
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
import { href } from '../router';

export function ListsPage() {
  const user = useUser();
  const writable = canWrite(user);
  const [lists, setLists] = useState<MailList[] | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  const [toDelete, setToDelete] = useState<MailList | null>(null);
  const [deleting, setDeleting] = useState(false);
  const [rowError, setRowError] = useState<ApiError | null>(null);

  function load() {
    api
      .getLists()
      .then((r) => {
        setLists(r.items);
        setLoadError(null);
      })
      .catch((e) => setLoadError(toApiError(e)));
  }
  useEffect(load, []);

  async function doDelete() {
    if (!toDelete) return;
    setDeleting(true);
    try {
      await api.deleteList(toDelete.id);
      notify(`Deleted list “${toDelete.name}”`);
      setLists((ls) => ls?.filter((l) => l.id !== toDelete.id) ?? null);
      setRowError(null);
    } catch (e) {
      setRowError(toApiError(e));
    } finally {
      setDeleting(false);
      setToDelete(null);
    }
  }

  return (
    <section>
      <PageHeader title="Lists" />
      {writable ? <CreateList onCreated={(l) => setLists((ls) => [...(ls ?? []), l])} /> : null}
      <ErrorBanner error={loadError ?? rowError} />
      <div class="card">
        <h2>All lists</h2>
        {lists === null && !loadError ? (
          <Spinner />
        ) : lists && lists.length === 0 ? (
          <p class="muted">No lists yet.</p>
        ) : lists ? (
          <table class="table lists-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Opt-in</th>
                <th scope="col" class="num">
                  Members
                </th>
                <th scope="col">Created</th>
                {writable ? (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {lists.map((l) =>
                editing === l.id ? (
                  <tr key={l.id}>
                    <td colSpan={writable ? 5 : 4}>
                      <RenameList
                        list={l}
                        onDone={(updated) => {
                          if (updated) setLists((ls) => ls?.map((x) => (x.id === updated.id ? updated : x)) ?? null);
                          setEditing(null);
                        }}
                      />
                    </td>
                  </tr>
                ) : (
                  <tr key={l.id}>
                    <td data-label="Name">
                      <strong>{l.name}</strong>
                      {l.description ? <div class="muted small">{l.description}</div> : null}
                    </td>
                    <td data-label="Opt-in">
                      <span class="badge">{l.opt_in}</span>
                    </td>
                    <td data-label="Members" class="num">
                      <a href={href('/contacts', { q: `list:${l.id}` })} aria-label={`${l.member_count} members of ${l.name}`}>
                        {l.member_count}
                      </a>
                    </td>
                    <td data-label="Created">{formatDate(l.created_at)}</td>
                    {writable ? (
                      <td class="actions">
                        <button
                          type="button"
                          class="btn btn-small"
                          onClick={() => setEditing(l.id)}
                          aria-label={`Rename ${l.name}`}
                        >
                          Rename
                        </button>
                        <button
                          type="button"
                          class="btn btn-small btn-danger-outline"
                          onClick={() => setToDelete(l)}
                          aria-label={`Delete ${l.name}`}
                        >
                          Delete
                        </button>
                      </td>
                    ) : null}
                  </tr>
                ),
              )}
            </tbody>
          </table>
        ) : null}
      </div>
      <ConfirmDialog
        open={toDelete !== null}
        title="Delete list?"
        confirmLabel="Delete list"
        danger
        busy={deleting}
        onConfirm={doDelete}
        onCancel={() => setToDelete(null)}
      >
        <p>
          The list <strong>{toDelete?.name}</strong> will be deleted. Its {toDelete?.member_count ?? 0} member
          {toDelete?.member_count === 1 ? '' : 's'} stay in your contacts.
        </p>
      </ConfirmDialog>
    </section>
  );
}

function CreateList({ onCreated }: { onCreated: (l: MailList) => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [optIn, setOptIn] = useState<'single' | 'double'>('single');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  useFocusErrorField(error, (f) => ({ name: 'list-name', description: 'list-description', opt_in: 'list-optin' })[f] ?? '');

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const l = await api.createList({ name: name.trim(), description: description.trim() || undefined, opt_in: optIn });
      onCreated(l);
      notify(`Created list “${l.name}”`);
      setName('');
      setDescription('');
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate aria-labelledby="new-list-title">
      <h2 id="new-list-title">New list</h2>
      <ErrorBanner error={error} />
      <div class="row-3">
        <Field id="list-name" label="Name" field="name" error={error}>
          <input {...ctl('list-name', 'name', error)} type="text" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field id="list-description" label="Description (optional)" field="description" error={error}>
          <input
            {...ctl('list-description', 'description', error)}
            type="text"
            value={description}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </Field>
        <Field id="list-optin" label="Opt-in" field="opt_in" error={error}>
          <select
            {...ctl('list-optin', 'opt_in', error)}
            value={optIn}
            onChange={(e) => setOptIn(e.currentTarget.value as 'single' | 'double')}
          >
            <option value="single">Single opt-in</option>
            <option value="double">Double opt-in</option>
          </select>
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !name.trim()}>
          {busy ? 'Creating…' : 'Create list'}
        </button>
      </div>
    </form>
  );
}

function RenameList({ list, onDone }: { list: MailList; onDone: (l: MailList | null) => void }) {
  const [name, setName] = useState(list.name);
  const [description, setDescription] = useState(list.description ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => {
    inputRef.current?.focus();
    inputRef.current?.select();
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    const patch: { name?: string; description?: string } = {};
    if (name.trim() !== list.name) patch.name = name.trim();
    if (description.trim() !== (list.description ?? '')) patch.description = description.trim();
    if (!Object.keys(patch).length) return onDone(null);
    setBusy(true);
    setError(null);
    try {
      const l = await api.updateList(list.id, patch);
      notify('List updated');
      onDone(l);
    } catch (err) {
      setError(toApiError(err));
      setBusy(false);
    }
  }

  const fid = `rename-${list.id}`;
  return (
    <form class="inline-edit" onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && onDone(null)} noValidate>
      <ErrorBanner error={error} />
      <div class="row-2">
        <Field id={`${fid}-name`} label="List name" field="name" error={error}>
          <input
            ref={inputRef}
            {...ctl(`${fid}-name`, 'name', error)}
            type="text"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field id={`${fid}-desc`} label="Description" field="description" error={error}>
          <input
            {...ctl(`${fid}-desc`, 'description', error)}
            type="text"
            value={description}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary btn-small" disabled={busy || !name.trim()}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" class="btn btn-small" onClick={() => onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
