import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, toApiError, type Contact, type ContactInput, type FeedbackRecord, type MailList, type Suppression } from '../api';
import { FeedbackTable, ReasonBadge } from './suppressions';
import {
  canWrite,
  ConfirmDialog,
  ctl,
  ErrorBanner,
  Field,
  formatDate,
  fullName,
  notify,
  PageHeader,
  Spinner,
  useFocusErrorField,
  useUser,
} from '../components';
import { RecordHistory } from './audit';
import { AccountLink, ConsentTable, RecordTimeline } from '../crm';
import { href, navigate } from '../router';

interface AttrRow {
  key: number;
  name: string;
  value: string;
}

interface Draft {
  email: string;
  first_name: string;
  last_name: string;
  company: string;
  phone: string;
  tags: string[];
  attrs: AttrRow[];
  lists: number[];
}

let rowSeq = 0;

function toDraft(c: Contact | null): Draft {
  if (!c) {
    return { email: '', first_name: '', last_name: '', company: '', phone: '', tags: [], attrs: [], lists: [] };
  }
  return {
    email: c.email ?? '',
    first_name: c.first_name ?? '',
    last_name: c.last_name ?? '',
    company: c.company ?? '',
    phone: c.phone ?? '',
    tags: [...(c.tags ?? [])],
    attrs: Object.entries(c.attributes ?? {}).map(([name, value]) => ({
      key: ++rowSeq,
      name,
      value: typeof value === 'string' ? value : JSON.stringify(value),
    })),
    lists: (c.lists ?? []).map((m) => m.list_id),
  };
}

function attrsObject(rows: AttrRow[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) {
    const k = r.name.trim();
    if (k) out[k] = r.value;
  }
  return out;
}

function sameJSON(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sortedObj(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

/** Client-side checks that would otherwise be a round trip. */
function validate(d: Draft): ApiError | null {
  if (!d.email.trim()) return new ApiError(0, 'required', 'Email is required.', 'email');
  const seen = new Set<string>();
  for (const r of d.attrs) {
    const k = r.name.trim();
    if (!k && r.value.trim()) return new ApiError(0, 'invalid', 'Every attribute needs a name.', 'attributes');
    if (k && seen.has(k)) return new ApiError(0, 'invalid', `Attribute “${k}” appears twice.`, 'attributes');
    seen.add(k);
  }
  return null;
}

function buildPatch(orig: Contact, d: Draft): ContactInput {
  const patch: ContactInput = {};
  const str = ['email', 'first_name', 'last_name', 'company', 'phone'] as const;
  for (const f of str) {
    const v = f === 'email' ? d[f].trim() : d[f];
    if (v !== (orig[f] ?? '')) patch[f] = v;
  }
  if (!sameJSON(d.tags, orig.tags ?? [])) patch.tags = d.tags;
  const attrs = attrsObject(d.attrs);
  if (!sameJSON(sortedObj(attrs), sortedObj(orig.attributes ?? {}))) patch.attributes = attrs;
  const origLists = (orig.lists ?? []).map((m) => m.list_id).sort((a, b) => a - b);
  const newLists = [...d.lists].sort((a, b) => a - b);
  if (!sameJSON(origLists, newLists)) patch.lists = newLists;
  return patch;
}

const FIELD_IDS: Record<string, string> = {
  email: 'contact-email',
  first_name: 'contact-first-name',
  last_name: 'contact-last-name',
  company: 'contact-company',
  phone: 'contact-phone',
  tags: 'contact-tags',
  attributes: 'contact-attributes-add',
  lists: 'contact-lists',
};

export function ContactPage({ id }: { id: string | null }) {
  const user = useUser();
  const writable = canWrite(user);
  const isNew = id === null;
  const [contact, setContact] = useState<Contact | null>(null);
  const [draft, setDraft] = useState<Draft>(() => toDraft(null));
  const [lists, setLists] = useState<MailList[]>([]);
  const [ownerEmail, setOwnerEmail] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(!isNew);
  const [saving, setSaving] = useState(false);
  const [savedAt, setSavedAt] = useState<Date | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);

  useFocusErrorField(error, (f) => FIELD_IDS[f] ?? '');

  useEffect(() => {
    let alive = true;
    api
      .getLists()
      .then((r) => alive && setLists(r.items))
      .catch(() => {
        /* memberships still show by id */
      });
    if (!isNew) {
      setLoading(true);
      api
        .getContact(id!)
        .then((c) => {
          if (!alive) return;
          setContact(c);
          setDraft(toDraft(c));
        })
        .catch((e) => alive && setLoadError(toApiError(e)))
        .finally(() => alive && setLoading(false));
    }
    return () => {
      alive = false;
    };
  }, [id, isNew]);

  // Admins can resolve the owner's email; everyone else sees "you" or the user id.
  useEffect(() => {
    const owner = contact?.owner_id;
    if (owner == null || owner === user.id || user.role !== 'admin') return;
    let alive = true;
    api
      .getUsers()
      .then((r) => alive && setOwnerEmail(r.items.find((u) => u.id === owner)?.email ?? null))
      .catch(() => {});
    return () => {
      alive = false;
    };
  }, [contact?.owner_id, user.id, user.role]);

  const patch = useMemo(() => (contact ? buildPatch(contact, draft) : null), [contact, draft]);
  const dirty = isNew ? true : !!patch && Object.keys(patch).length > 0;

  function set<K extends keyof Draft>(k: K, v: Draft[K]) {
    setDraft((d) => ({ ...d, [k]: v }));
    setSavedAt(null);
  }

  async function save(e: Event) {
    e.preventDefault();
    if (saving || !writable) return;
    const v = validate(draft);
    if (v) {
      setError(v);
      return;
    }
    setError(null);
    setSaving(true);
    try {
      if (isNew) {
        const input: ContactInput = { email: draft.email.trim() };
        for (const f of ['first_name', 'last_name', 'company', 'phone'] as const) if (draft[f]) input[f] = draft[f];
        if (draft.tags.length) input.tags = draft.tags;
        const attrs = attrsObject(draft.attrs);
        if (Object.keys(attrs).length) input.attributes = attrs;
        if (draft.lists.length) input.lists = draft.lists;
        const created = await api.createContact(input);
        notify('Contact created');
        navigate(`/contacts/${created.id}`, undefined, true);
      } else {
        if (!patch || Object.keys(patch).length === 0) {
          notify('Nothing to save', 'info');
          return;
        }
        const updated = await api.updateContact(contact!.id, patch);
        setContact(updated);
        setDraft(toDraft(updated));
        setSavedAt(new Date());
        notify('Contact saved');
      }
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setSaving(false);
    }
  }

  async function doDelete() {
    if (!contact) return;
    setDeleting(true);
    try {
      await api.deleteContact(contact.id);
      setConfirmDelete(false);
      notify(`Deleted ${contact.email}`);
      navigate('/contacts');
    } catch (err) {
      setConfirmDelete(false);
      setError(toApiError(err));
    } finally {
      setDeleting(false);
    }
  }

  if (loading) return <Spinner label="Loading contact…" />;
  if (loadError) {
    return (
      <section>
        <PageHeader title={loadError.status === 404 ? 'Contact not found' : 'Contact'} />
        <ErrorBanner error={loadError} />
        <p>
          <a href={href('/contacts')}>Back to contacts</a>
        </p>
      </section>
    );
  }

  const title = isNew ? 'New contact' : fullName(contact!) || contact!.email;
  const ro = !writable;

  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/contacts')}>← Contacts</a>
      </p>
      <PageHeader title={title}>
        {!isNew && writable ? (
          <button type="button" class="btn btn-danger-outline" onClick={() => setConfirmDelete(true)}>
            Delete
          </button>
        ) : null}
      </PageHeader>
      {ro ? (
        <div class="alert alert-info" role="note">
          You have read-only access.
        </div>
      ) : null}

      <form class="contact-form" onSubmit={save} noValidate aria-describedby={error ? 'contact-error' : undefined}>
        <ErrorBanner error={error} id="contact-error" />
        <div class="grid-2">
          <div class="card">
            <h2>Details</h2>
            <Field id="contact-email" label="Email" field="email" error={error}>
              <input
                {...ctl('contact-email', 'email', error)}
                type="email"
                required
                readOnly={ro}
                autoComplete="off"
                value={draft.email}
                onInput={(e) => set('email', e.currentTarget.value)}
              />
            </Field>
            <div class="row-2">
              <Field id="contact-first-name" label="First name" field="first_name" error={error}>
                <input
                  {...ctl('contact-first-name', 'first_name', error)}
                  type="text"
                  readOnly={ro}
                  autoComplete="off"
                  value={draft.first_name}
                  onInput={(e) => set('first_name', e.currentTarget.value)}
                />
              </Field>
              <Field id="contact-last-name" label="Last name" field="last_name" error={error}>
                <input
                  {...ctl('contact-last-name', 'last_name', error)}
                  type="text"
                  readOnly={ro}
                  autoComplete="off"
                  value={draft.last_name}
                  onInput={(e) => set('last_name', e.currentTarget.value)}
                />
              </Field>
            </div>
            <div class="row-2">
              <Field id="contact-company" label="Company" field="company" error={error}>
                <input
                  {...ctl('contact-company', 'company', error)}
                  type="text"
                  readOnly={ro}
                  autoComplete="off"
                  value={draft.company}
                  onInput={(e) => set('company', e.currentTarget.value)}
                />
              </Field>
              <Field id="contact-phone" label="Phone" field="phone" error={error}>
                <input
                  {...ctl('contact-phone', 'phone', error)}
                  type="tel"
                  readOnly={ro}
                  autoComplete="off"
                  value={draft.phone}
                  onInput={(e) => set('phone', e.currentTarget.value)}
                />
              </Field>
            </div>
            <TagEditor tags={draft.tags} readOnly={ro} error={error} onChange={(t) => set('tags', t)} />
          </div>

          <div class="stack">
            <AttributesEditor rows={draft.attrs} readOnly={ro} error={error} onChange={(r) => set('attrs', r)} />
            <ListMemberships
              lists={lists}
              contact={contact}
              selected={draft.lists}
              readOnly={ro}
              error={error}
              onChange={(l) => set('lists', l)}
            />
          </div>
        </div>

        {writable ? (
          <div class="form-actions sticky-actions">
            <button type="submit" class="btn btn-primary" disabled={saving || !dirty}>
              {saving ? 'Saving…' : isNew ? 'Create contact' : 'Save changes'}
            </button>
            {!isNew && dirty ? (
              <button type="button" class="btn" onClick={() => { setDraft(toDraft(contact)); setError(null); }}>
                Discard changes
              </button>
            ) : null}
            <span class="save-state" role="status" data-testid="save-state">
              {savedAt ? `Saved at ${savedAt.toLocaleTimeString()}` : !isNew && dirty ? 'Unsaved changes' : ''}
            </span>
          </div>
        ) : null}
      </form>

      {!isNew && contact ? (
        <div class="grid-2 after-form">
          <div class="card">
            <h2>Consents</h2>
            {contact.consents?.length ? (
              <ConsentTable items={contact.consents} />
            ) : (
              <p class="muted">No consent records.</p>
            )}
          </div>
          <div class="card">
            <h2>Record</h2>
            <dl class="meta">
              <dt>ID</dt>
              <dd>{contact.id}</dd>
              <dt>Owner</dt>
              <dd>
                {contact.owner_id == null
                  ? '—'
                  : contact.owner_id === user.id
                    ? 'you'
                    : ownerEmail ?? `user #${contact.owner_id}`}
              </dd>
              <dt>Account</dt>
              <dd>
                {contact.account_id != null ? <AccountLink id={contact.account_id} /> : '—'}
              </dd>
              <dt>Created</dt>
              <dd>{formatDate(contact.created_at)}</dd>
              <dt>Updated</dt>
              <dd>{formatDate(contact.updated_at)}</dd>
            </dl>
          </div>
        </div>
      ) : null}
      {!isNew && contact ? <RecordTimeline kind="contact" id={contact.id} /> : null}
      {!isNew && contact ? <ContactFeedback key={contact.id} id={contact.id} updated={contact.updated_at} /> : null}
      {!isNew && contact ? <RecordHistory record={`contact:${contact.id}`} updated={contact.updated_at} /> : null}

      <ConfirmDialog
        open={confirmDelete}
        title="Delete contact?"
        confirmLabel="Delete contact"
        danger
        busy={deleting}
        onConfirm={doDelete}
        onCancel={() => setConfirmDelete(false)}
      >
        <p>
          <strong>{contact?.email}</strong> and its list memberships will be removed permanently.
        </p>
      </ConfirmDialog>
    </section>
  );
}

/** Bounces, complaints and the suppression state of the contact's address. */
function ContactFeedback({ id, updated }: { id: number; updated: string }) {
  const [data, setData] = useState<{ suppression: Suppression | null; feedback: FeedbackRecord[] } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    api
      .getContactFeedback(id)
      .then(setData)
      .catch((e) => setError(toApiError(e)));
  }, [id, updated]);
  if (error?.status === 403) return null;
  return (
    <div class="card" data-testid="contact-feedback">
      <h2>Deliverability</h2>
      <ErrorBanner error={error} />
      {data === null && !error ? <Spinner /> : null}
      {data?.suppression ? (
        <p class="alert alert-error" role="status">
          This address is suppressed (<ReasonBadge reason={data.suppression.reason} />, since{' '}
          {formatDate(data.suppression.created_at)}): no message is sent to it.{' '}
          <a href={href('/suppressions')}>Suppression list</a>
        </p>
      ) : data ? (
        <p class="muted">The address is not suppressed.</p>
      ) : null}
      {data && data.feedback.length > 0 ? <FeedbackTable items={data.feedback} /> : null}
      {data && data.feedback.length === 0 ? <p class="muted">No bounces or complaints received.</p> : null}
    </div>
  );
}

function TagEditor(p: { tags: string[]; readOnly: boolean; error: ApiError | null; onChange: (t: string[]) => void }) {
  const [text, setText] = useState('');
  const inputRef = useRef<HTMLInputElement>(null);

  function commit(raw: string) {
    const add = raw
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    if (!add.length) return;
    const next = [...p.tags];
    for (const t of add) if (!next.includes(t)) next.push(t);
    p.onChange(next);
    setText('');
  }

  return (
    <Field id="contact-tags" label="Tags" field="tags" error={p.error} hint={p.readOnly ? undefined : 'Press Enter or comma to add a tag.'}>
      <div class="tag-editor">
        {p.tags.length ? (
          <ul class="chips" aria-label="Tags">
            {p.tags.map((t) => (
              <li key={t} class="chip">
                <span>{t}</span>
                {!p.readOnly ? (
                  <button
                    type="button"
                    class="chip-remove"
                    aria-label={`Remove tag ${t}`}
                    onClick={() => {
                      p.onChange(p.tags.filter((x) => x !== t));
                      inputRef.current?.focus();
                    }}
                  >
                    ×
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        ) : p.readOnly ? (
          <p class="muted">No tags.</p>
        ) : null}
        {!p.readOnly ? (
          <input
            ref={inputRef}
            {...ctl('contact-tags', 'tags', p.error, true)}
            type="text"
            placeholder="Add tag…"
            autoComplete="off"
            value={text}
            onInput={(e) => {
              const v = e.currentTarget.value;
              if (v.includes(',')) commit(v);
              else setText(v);
            }}
            onKeyDown={(e) => {
              if (e.key === 'Enter') {
                e.preventDefault();
                commit(text);
              } else if (e.key === 'Backspace' && !text && p.tags.length) {
                p.onChange(p.tags.slice(0, -1));
              }
            }}
            onBlur={() => commit(text)}
          />
        ) : null}
      </div>
    </Field>
  );
}

function AttributesEditor(p: {
  rows: AttrRow[];
  readOnly: boolean;
  error: ApiError | null;
  onChange: (r: AttrRow[]) => void;
}) {
  const invalid = p.error?.field === 'attributes';
  const [focusKey, setFocusKey] = useState<number | null>(null);
  useEffect(() => {
    if (focusKey !== null) {
      document.getElementById(`attr-name-${focusKey}`)?.focus();
      setFocusKey(null);
    }
  }, [focusKey]);

  function update(key: number, patch: Partial<AttrRow>) {
    p.onChange(p.rows.map((r) => (r.key === key ? { ...r, ...patch } : r)));
  }

  return (
    <fieldset class={'card' + (invalid ? ' field-invalid' : '')} aria-describedby={invalid ? 'attrs-error' : undefined}>
      <legend class="card-legend">Attributes</legend>
      {invalid ? (
        <p class="field-error" id="attrs-error">
          {p.error!.message}
        </p>
      ) : null}
      {p.rows.length === 0 ? <p class="muted">No attributes.</p> : null}
      {p.rows.length ? (
        <div class="kv-rows">
          <div class="kv-head" aria-hidden="true">
            <span>Name</span>
            <span>Value</span>
          </div>
          {p.rows.map((r, i) => (
            <div class="kv-row" key={r.key}>
              <label class="sr-only" for={`attr-name-${r.key}`}>
                Attribute {i + 1} name
              </label>
              <input
                id={`attr-name-${r.key}`}
                type="text"
                value={r.name}
                readOnly={p.readOnly}
                placeholder="name"
                autoComplete="off"
                onInput={(e) => update(r.key, { name: e.currentTarget.value })}
              />
              <label class="sr-only" for={`attr-value-${r.key}`}>
                Attribute {i + 1} value{r.name ? ` (${r.name})` : ''}
              </label>
              <input
                id={`attr-value-${r.key}`}
                type="text"
                value={r.value}
                readOnly={p.readOnly}
                placeholder="value"
                autoComplete="off"
                onInput={(e) => update(r.key, { value: e.currentTarget.value })}
              />
              {!p.readOnly ? (
                <button
                  type="button"
                  class="btn btn-icon"
                  aria-label={`Remove attribute ${r.name || i + 1}`}
                  onClick={() => p.onChange(p.rows.filter((x) => x.key !== r.key))}
                >
                  ×
                </button>
              ) : null}
            </div>
          ))}
        </div>
      ) : null}
      {!p.readOnly ? (
        <button
          type="button"
          id="contact-attributes-add"
          class="btn btn-small"
          onClick={() => {
            const key = ++rowSeq;
            p.onChange([...p.rows, { key, name: '', value: '' }]);
            setFocusKey(key);
          }}
        >
          + Add attribute
        </button>
      ) : null}
    </fieldset>
  );
}

function ListMemberships(p: {
  lists: MailList[];
  contact: Contact | null;
  selected: number[];
  readOnly: boolean;
  error: ApiError | null;
  onChange: (ids: number[]) => void;
}) {
  const invalid = p.error?.field === 'lists';
  const statusOf = (id: number) => p.contact?.lists?.find((m) => m.list_id === id)?.status;
  // Lists the contact belongs to but that we could not load (e.g. no permission) still show.
  const known = new Set(p.lists.map((l) => l.id));
  const extra = (p.contact?.lists ?? []).filter((m) => !known.has(m.list_id));

  return (
    <fieldset
      class={'card' + (invalid ? ' field-invalid' : '')}
      id="contact-lists"
      tabIndex={-1}
      aria-describedby={invalid ? 'lists-error' : undefined}
    >
      <legend class="card-legend">List memberships</legend>
      {invalid ? (
        <p class="field-error" id="lists-error">
          {p.error!.message}
        </p>
      ) : null}
      {p.lists.length === 0 && extra.length === 0 ? (
        <p class="muted">
          No lists yet. <a href={href('/lists')}>Create a list</a>.
        </p>
      ) : (
        <ul class="check-list">
          {p.lists.map((l) => {
            const st = statusOf(l.id);
            const checked = p.selected.includes(l.id);
            return (
              <li key={l.id}>
                <label class="check">
                  <input
                    type="checkbox"
                    checked={checked}
                    disabled={p.readOnly}
                    onChange={(e) =>
                      p.onChange(
                        e.currentTarget.checked ? [...p.selected, l.id] : p.selected.filter((x) => x !== l.id),
                      )
                    }
                  />
                  <span>{l.name}</span>
                </label>
                {st && checked ? (
                  <span class={'badge status-' + st}>{st}</span>
                ) : checked ? (
                  <span class="badge">new</span>
                ) : null}
              </li>
            );
          })}
          {extra.map((m) => (
            <li key={m.list_id}>
              <span>List #{m.list_id}</span> <span class={'badge status-' + m.status}>{m.status}</span>
            </li>
          ))}
        </ul>
      )}
    </fieldset>
  );
}
