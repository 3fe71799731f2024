import { useEffect, useRef, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type Segment, type SegmentPreview, type User } from '../api';
import {
  ConfirmDialog,
  ErrorBanner,
  Field,
  ctl,
  formatDate,
  fullName,
  notify,
  PageHeader,
  Spinner,
  useDebounced,
  useUser,
} from '../components';
import { href } from '../router';

/** Admins, managers and marketing create and change segments; everybody reads them. */
export function canEditSegments(user: User): boolean {
  return user.role === 'admin' || user.role === 'manager' || user.role === 'marketing';
}

const EXAMPLE = 'tag = "certified" and attributes.country = "DE" and not clicked_within(90d)';

export function SegmentsPage() {
  const user = useUser();
  const writable = canEditSegments(user);
  const [segments, setSegments] = useState<Segment[] | null>(null);
  const [counts, setCounts] = useState<Record<number, number | string>>({});
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<Segment | 'new' | null>(null);
  const [toDelete, setToDelete] = useState<Segment | null>(null);
  const [deleting, setDeleting] = useState(false);

  function load() {
    api
      .getSegments()
      .then((r) => {
        setSegments(r.items);
        setLoadError(null);
        for (const s of r.items) {
          api
            .segmentCount(s.id)
            .then((c) => setCounts((m) => ({ ...m, [s.id]: c.count })))
            .catch(() => setCounts((m) => ({ ...m, [s.id]: '—' })));
        }
      })
      .catch((e) => setLoadError(toApiError(e)));
  }
  useEffect(load, []);

  async function doDelete() {
    if (!toDelete) return;
    setDeleting(true);
    try {
      await api.deleteSegment(toDelete.id);
      notify(`Deleted segment “${toDelete.name}”`);
      setSegments((ss) => ss?.filter((s) => s.id !== toDelete.id) ?? null);
    } catch (e) {
      setLoadError(toApiError(e));
    } finally {
      setDeleting(false);
      setToDelete(null);
    }
  }

  return (
    <section>
      <PageHeader title="Segments">
        {writable && editing === null ? (
          <button type="button" class="btn btn-primary" onClick={() => setEditing('new')}>
            New segment
          </button>
        ) : null}
      </PageHeader>
      {editing !== null ? (
        <SegmentEditor
          key={editing === 'new' ? 'new' : editing.id}
          segment={editing === 'new' ? null : editing}
          writable={writable}
          onDone={(saved) => {
            setEditing(null);
            if (saved) load();
          }}
        />
      ) : null}
      <ErrorBanner error={loadError} />
      <div class="card">
        <h2>Saved segments</h2>
        {segments === null && !loadError ? (
          <Spinner />
        ) : segments && segments.length === 0 ? (
          <p class="muted">No segments yet.{writable ? ' Create one to use as a campaign audience.' : ''}</p>
        ) : segments ? (
          <table class="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Filter</th>
                <th scope="col" class="num">
                  Contacts
                </th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {segments.map((s) => (
                <tr key={s.id}>
                  <td data-label="Name">
                    <strong>{s.name}</strong>
                  </td>
                  <td data-label="Filter">
                    <code class="small">{s.filter || '(everyone)'}</code>
                  </td>
                  <td data-label="Contacts" class="num">
                    {counts[s.id] ?? '…'}
                  </td>
                  <td data-label="Updated">{formatDate(s.updated_at)}</td>
                  <td class="actions">
                    <button type="button" class="btn btn-small" onClick={() => setEditing(s)} aria-label={`Open ${s.name}`}>
                      {writable ? 'Edit' : 'Open'}
                    </button>
                    {writable ? (
                      <button
                        type="button"
                        class="btn btn-small btn-danger-outline"
                        onClick={() => setToDelete(s)}
                        aria-label={`Delete ${s.name}`}
                      >
                        Delete
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
        open={toDelete !== null}
        title="Delete segment?"
        confirmLabel="Delete segment"
        danger
        busy={deleting}
        onConfirm={doDelete}
        onCancel={() => setToDelete(null)}
      >
        <p>
          The segment <strong>{toDelete?.name}</strong> will be deleted. Its contacts are not changed.
        </p>
      </ConfirmDialog>
    </section>
  );
}

/** The filter with the character at the error's line and column marked. */
function FilterErrorView({ filter, error }: { filter: string; error: ApiError }) {
  if (!error.line || !error.column) return null;
  const lines = filter.split('\n');
  const line = Array.from(lines[error.line - 1] ?? '');
  const col = error.column - 1;
  const before = line.slice(0, col).join('');
  const at = line[col] ?? ' ';
  const after = line.slice(col + 1).join('');
  return (
    <pre class="filter-error" aria-label={`Error at line ${error.line}, column ${error.column}`}>
      {error.line > 1 ? <span class="muted">line {error.line}: </span> : null}
      {before}
      <mark>{at}</mark>
      {after}
    </pre>
  );
}

function SegmentEditor({
  segment,
  writable,
  onDone,
}: {
  segment: Segment | null;
  writable: boolean;
  onDone: (saved: boolean) => void;
}) {
  const [name, setName] = useState(segment?.name ?? '');
  const [filter, setFilter] = useState(segment?.filter ?? '');
  const [preview, setPreview] = useState<SegmentPreview | null>(null);
  const [filterError, setFilterError] = useState<ApiError | null>(null);
  const [saveError, setSaveError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [loading, setLoading] = useState(false);
  const debounced = useDebounced(filter, 300);
  const abort = useRef<AbortController | null>(null);
  const nameRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    nameRef.current?.focus();
  }, []);

  // live count and preview
  useEffect(() => {
    abort.current?.abort();
    const ctrl = new AbortController();
    abort.current = ctrl;
    setLoading(true);
    api
      .previewSegment(debounced, 10, ctrl.signal)
      .then((p) => {
        setPreview(p);
        setFilterError(null);
      })
      .catch((e) => {
        if (e instanceof DOMException && e.name === 'AbortError') return;
        const err = toApiError(e);
        setFilterError(err);
        if (err.code !== 'invalid_filter') setPreview(null);
      })
      .finally(() => {
        if (abort.current === ctrl) setLoading(false);
      });
    return () => ctrl.abort();
  }, [debounced]);

  async function save(e: Event) {
    e.preventDefault();
    setBusy(true);
    setSaveError(null);
    try {
      if (segment) await api.updateSegment(segment.id, { name: name.trim(), filter });
      else await api.createSegment({ name: name.trim(), filter });
      notify(segment ? 'Segment saved' : `Created segment “${name.trim()}”`);
      onDone(true);
    } catch (err) {
      setSaveError(toApiError(err));
    } finally {
      setBusy(false);
    }
  }

  const invalid = filterError?.code === 'invalid_filter';
  return (
    <form class="card" onSubmit={save} noValidate aria-labelledby="segment-editor-title">
      <h2 id="segment-editor-title">{segment ? segment.name : 'New segment'}</h2>
      <ErrorBanner error={saveError} />
      <Field id="segment-name" label="Name" field="name" error={saveError}>
        <input
          {...ctl('segment-name', 'name', saveError)}
          ref={nameRef}
          type="text"
          required
          readOnly={!writable}
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </Field>
      <div class={'field' + (invalid ? ' field-invalid' : '')}>
        <label for="segment-filter">Filter</label>
        <textarea
          id="segment-filter"
          name="filter"
          rows={4}
          spellcheck={false}
          readOnly={!writable}
          value={filter}
          placeholder={EXAMPLE}
          aria-invalid={invalid ? 'true' : undefined}
          aria-describedby={invalid ? 'segment-filter-error' : 'segment-filter-hint'}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
        {invalid && filterError ? (
          <div class="field-error" id="segment-filter-error" role="status">
            <p>{filterError.message}</p>
            <FilterErrorView filter={debounced} error={filterError} />
          </div>
        ) : (
          <p class="field-hint" id="segment-filter-hint">
            Fields: email, email_domain, first_name, last_name, company, phone, owner, created_at, tag, list,
            attributes.KEY; functions: subscribed(3), consent("marketing"), opened_within(90d), clicked_within(30d),
            never_opened; combine with and, or, not and parentheses. Empty: every contact.
          </p>
        )}
      </div>
      <div class="segment-preview" aria-live="polite">
        {filterError && !invalid ? <ErrorBanner error={filterError} /> : null}
        {preview && !invalid ? (
          <>
            <p>
              <strong>{preview.count.toLocaleString()}</strong> matching contact{preview.count === 1 ? '' : 's'}
              {loading ? <span class="muted"> (updating…)</span> : null}
            </p>
            {preview.contacts.length ? (
              <ul class="plain-list">
                {preview.contacts.map((c) => (
                  <li key={c.id}>
                    <a href={href(`/contacts/${c.id}`)}>{fullName(c) || c.email}</a>{' '}
                    <span class="muted small">{c.email}</span>
                  </li>
                ))}
              </ul>
            ) : null}
          </>
        ) : loading ? (
          <Spinner label="Counting…" />
        ) : null}
      </div>
      <div class="form-actions">
        {writable ? (
          <button type="submit" class="btn btn-primary" disabled={busy || !name.trim() || invalid}>
            {busy ? 'Saving…' : segment ? 'Save segment' : 'Create segment'}
          </button>
        ) : null}
        <button type="button" class="btn" onClick={() => onDone(false)}>
          {writable ? 'Cancel' : 'Close'}
        </button>
      </div>
    </form>
  );
}
