import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, isAbort, toApiError, type ApiError, type Contact, type MailList } from '../api';
import { canWrite, ErrorBanner, fullName, PageHeader, useDebounced, useUser } from '../components';
import { href, navigate, replaceQuery } from '../router';

const PAGE_SIZE = 25;

const FILTER_FIELDS: { key: string; label: string }[] = [
  { key: 'tag', label: 'Tag' },
  { key: 'company', label: 'Company' },
  { key: 'email', label: 'Email' },
  { key: 'first_name', label: 'First name' },
  { key: 'last_name', label: 'Last name' },
  { key: 'list', label: 'List' },
];
const FILTER_KEYS = FILTER_FIELDS.map((f) => f.key);
const FILTER_RE = new RegExp(`(^|\\s)(${FILTER_KEYS.join('|')}):("[^"]*"|\\S+)`, 'g');

interface Chip {
  raw: string;
  key: string;
  value: string;
}

export function parseFilters(q: string): Chip[] {
  const chips: Chip[] = [];
  for (const m of q.matchAll(FILTER_RE)) {
    const raw = `${m[2]}:${m[3]}`;
    chips.push({ raw, key: m[2], value: m[3].replace(/^"|"$/g, '') });
  }
  return chips;
}

/** A query the user is evidently still typing: ends in "field:" or has an unclosed quote. */
function isIncomplete(q: string): boolean {
  return /(^|\s)[a-z_]+:$/.test(q) || (q.match(/"/g)?.length ?? 0) % 2 === 1;
}

function formatFilter(key: string, value: string): string {
  const v = value.trim().replace(/"/g, '');
  return /\s/.test(v) ? `${key}:"${v}"` : `${key}:${v}`;
}

function removeToken(q: string, raw: string): string {
  const idx = q.indexOf(raw);
  if (idx < 0) return q;
  return (q.slice(0, idx) + q.slice(idx + raw.length)).replace(/\s{2,}/g, ' ').trim();
}

export function ContactsPage({ initialQuery, navSeq }: { initialQuery: string; navSeq: number }) {
  const user = useUser();
  const [q, setQ] = useState(initialQuery);
  const debounced = useDebounced(q, 150);
  const [items, setItems] = useState<Contact[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [total, setTotal] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [shownQuery, setShownQuery] = useState<string | null>(null);
  const [lists, setLists] = useState<MailList[]>([]);
  const abortRef = useRef<AbortController | null>(null);
  const lastQuery = useRef<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);

  const search = useCallback(async (query: string, cursor: string | null) => {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    if (cursor) setLoadingMore(true);
    else {
      setLoading(true);
      lastQuery.current = query;
    }
    setError(null);
    try {
      const page = await api.searchContacts(query, cursor, PAGE_SIZE, ctrl.signal);
      if (ctrl.signal.aborted) return;
      setItems((prev) => (cursor ? [...prev, ...page.items] : page.items));
      setNextCursor(page.next_cursor ?? null);
      setTotal(typeof page.total === 'number' ? page.total : null);
      setShownQuery(query);
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
      if (!cursor) {
        setItems([]);
        setNextCursor(null);
        setTotal(null);
        setShownQuery(query);
      }
    } finally {
      if (abortRef.current === ctrl) {
        setLoading(false);
        setLoadingMore(false);
      }
    }
  }, []);

  useEffect(() => {
    const query = debounced.trim();
    // Don't flash "invalid query" errors while a filter is still being typed ("company:" or an open quote).
    if (query !== lastQuery.current && !isIncomplete(query)) search(query, null);
    replaceQuery({ q: debounced.trim() || undefined });
  }, [debounced, search]);

  useEffect(() => () => abortRef.current?.abort(), []);

  // Navigating to #/contacts[?q=…] again (e.g. via the nav link) resets the search box.
  const firstNav = useRef(true);
  useEffect(() => {
    if (firstNav.current) {
      firstNav.current = false;
      return;
    }
    setQ(initialQuery);
  }, [initialQuery, navSeq]);

  useEffect(() => {
    api
      .getLists()
      .then((r) => setLists(r.items))
      .catch(() => {
        /* the list filter just won't offer names */
      });
  }, []);

  function onKeyDown(e: KeyboardEvent) {
    if (e.key === 'Enter') {
      e.preventDefault();
      search(q.trim(), null);
    } else if (e.key === 'Escape' && q) {
      e.preventDefault();
      setQ('');
    }
  }

  function addFilter(key: string, value: string) {
    const token = formatFilter(key, value);
    setQ((cur) => (cur.trim() ? cur.trim() + ' ' + token : token));
    inputRef.current?.focus();
  }

  const chips = parseFilters(q);
  const listName = (id: string) => lists.find((l) => String(l.id) === id)?.name;

  return (
    <section>
      <PageHeader title="Contacts">
        {canWrite(user) ? (
          <a class="btn btn-primary" href={href('/contacts/new')}>
            New contact
          </a>
        ) : null}
      </PageHeader>

      <div class="card search-card">
        <form role="search" onSubmit={(e) => e.preventDefault()}>
          <label for="contact-search" class="label-strong">
            Search contacts
          </label>
          <div class="search-row">
            <input
              ref={inputRef}
              id="contact-search"
              type="search"
              placeholder="Name, email, company… or tag:vip company:acme"
              autoComplete="off"
              spellcheck={false}
              value={q}
              aria-describedby={error?.field === 'q' ? 'search-error search-help' : 'search-help'}
              aria-invalid={error?.field === 'q' ? 'true' : undefined}
              aria-controls="contact-results"
              onInput={(e) => setQ(e.currentTarget.value)}
              onKeyDown={onKeyDown}
            />
            {loading ? <span class="spinner search-spinner" aria-hidden="true" /> : null}
          </div>
          {error?.field === 'q' ? (
            <p id="search-error" class="field-error">
              {error.message}
            </p>
          ) : null}
          <p id="search-help" class="field-hint">
            Results update as you type. Prefixes and small typos are fine. Filters: <code>tag:</code>{' '}
            <code>company:</code> <code>email:</code> <code>first_name:</code> <code>last_name:</code>{' '}
            <code>list:</code>
          </p>
        </form>
        <FilterHelper lists={lists} onAdd={addFilter} />
        {chips.length ? (
          <ul class="chips" aria-label="Active filters">
            {chips.map((c) => (
              <li key={c.raw} class="chip">
                <span>
                  {FILTER_FIELDS.find((f) => f.key === c.key)?.label ?? c.key}:{' '}
                  <strong>{c.key === 'list' ? listName(c.value) ?? c.value : c.value}</strong>
                </span>
                <button
                  type="button"
                  class="chip-remove"
                  aria-label={`Remove filter ${c.raw}`}
                  onClick={() => setQ((cur) => removeToken(cur, c.raw))}
                >
                  ×
                </button>
              </li>
            ))}
          </ul>
        ) : null}
      </div>

      <ErrorBanner error={error?.field === 'q' ? null : error} />

      <div id="contact-results" aria-busy={loading} data-query={shownQuery ?? undefined}>
        <p class="result-summary" role="status" aria-live="polite" data-testid="result-summary">
          {error
            ? ''
            : shownQuery === null
            ? 'Loading…'
            : total !== null
              ? `${total} contact${total === 1 ? '' : 's'}${items.length < total ? ` · showing ${items.length}` : ''}`
              : `${items.length} contact${items.length === 1 ? '' : 's'} shown`}
        </p>
        {shownQuery !== null && items.length === 0 && !error ? (
          <div class="empty">
            {shownQuery ? (
              <p>No contacts match “{shownQuery}”.</p>
            ) : (
              <p>
                No contacts yet.{' '}
                {canWrite(user) ? (
                  <>
                    <a href={href('/contacts/new')}>Create one</a> or <a href={href('/import')}>import a CSV</a>.
                  </>
                ) : null}
              </p>
            )}
          </div>
        ) : null}
        {items.length ? (
          <table class="table contacts-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Company</th>
                <th scope="col">Tags</th>
              </tr>
            </thead>
            <tbody>
              {items.map((c) => (
                <tr
                  key={c.id}
                  class="row-link"
                  onClick={(e) => {
                    if ((e.target as HTMLElement).closest('a')) return;
                    navigate(`/contacts/${c.id}`);
                  }}
                >
                  <td data-label="Name">
                    <a href={href(`/contacts/${c.id}`)}>{fullName(c) || <span class="muted">(no name)</span>}</a>
                  </td>
                  <td data-label="Email" class="cell-email">
                    {c.email}
                  </td>
                  <td data-label="Company">{c.company || <span class="muted">—</span>}</td>
                  <td data-label="Tags">
                    {c.tags.length ? (
                      <span class="tag-list">
                        {c.tags.map((t) => (
                          <span key={t} class="tag">
                            {t}
                          </span>
                        ))}
                      </span>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {nextCursor ? (
          <div class="load-more">
            <button
              type="button"
              class="btn"
              disabled={loadingMore}
              onClick={() => search(shownQuery ?? '', nextCursor)}
            >
              {loadingMore ? 'Loading…' : 'Load more'}
            </button>
          </div>
        ) : null}
      </div>
    </section>
  );
}

function FilterHelper({ lists, onAdd }: { lists: MailList[]; onAdd: (key: string, value: string) => void }) {
  const [key, setKey] = useState('tag');
  const [value, setValue] = useState('');
  const usesListSelect = key === 'list' && lists.length > 0;

  function submit(e: Event) {
    e.preventDefault();
    if (!value.trim()) return;
    onAdd(key, value);
    setValue('');
  }

  return (
    <form class="filter-helper" onSubmit={submit} aria-label="Add a filter">
      <div class="field field-inline">
        <label for="filter-field">Filter by</label>
        <select
          id="filter-field"
          value={key}
          onChange={(e) => {
            setKey(e.currentTarget.value);
            setValue('');
          }}
        >
          {FILTER_FIELDS.map((f) => (
            <option key={f.key} value={f.key}>
              {f.label}
            </option>
          ))}
        </select>
      </div>
      <div class="field field-inline field-grow">
        <label for="filter-value">Value</label>
        {usesListSelect ? (
          <select id="filter-value" value={value} onChange={(e) => setValue(e.currentTarget.value)}>
            <option value="">Choose a list…</option>
            {lists.map((l) => (
              <option key={l.id} value={String(l.id)}>
                {l.name}
              </option>
            ))}
          </select>
        ) : (
          <input
            id="filter-value"
            type="text"
            value={value}
            placeholder={key === 'list' ? 'list id' : ''}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        )}
      </div>
      <button type="submit" class="btn" disabled={!value.trim()}>
        Add filter
      </button>
    </form>
  );
}
