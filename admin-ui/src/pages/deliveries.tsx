import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, DELIVERY_STATES, isAbort, toApiError, type ApiError, type Delivery, type DeliveryState } from '../api';
import { ctl, DeliveryBadge, ErrorBanner, Field, formatTime, PageHeader, useDebounced } from '../components';
import { href, navigate, replaceQuery } from '../router';

const PAGE_SIZE = 50;

/** The log's current filters as a query string, so the message view can link back to them. */
export let lastLogQuery = '';

interface Filters {
  recipient: string;
  status: DeliveryState | '';
  domain: string;
  /** The datetime-local value (local time, "2026-11-24T10:00"); sent as RFC 3339. */
  since: string;
}

const EMPTY: Filters = { recipient: '', status: '', domain: '', since: '' };

/** RFC 3339 (URL, API) → the local "YYYY-MM-DDTHH:MM" a datetime-local input shows. */
export function toLocalInput(rfc: string): string {
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** datetime-local value (local time) → RFC 3339 in UTC; an unreadable value goes as typed (the API names it). */
export function toRfc3339(local: string): string {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString().replace(/\.000Z$/, 'Z');
}

function fromQuery(q: URLSearchParams): Filters {
  const status = q.get('status') ?? '';
  return {
    recipient: q.get('recipient') ?? '',
    status: (DELIVERY_STATES as string[]).includes(status) ? (status as DeliveryState) : '',
    domain: q.get('domain') ?? '',
    since: q.get('since') ? toLocalInput(q.get('since')!) : '',
  };
}

function apiFilters(f: Filters) {
  return {
    recipient: f.recipient.trim() || undefined,
    status: f.status || undefined,
    domain: f.domain.trim() || undefined,
    since: toRfc3339(f.since) || undefined,
  };
}

/** The reply text without a leading copy of the code shown beside it ("550 5.1.1 …" → "5.1.1 …"). */
function replyText(code: number | undefined, text: string | undefined): string {
  if (!text) return '';
  return code && text.startsWith(`${code} `) ? text.slice(String(code).length + 1) : text;
}

/** The filters a result was loaded with, as a query string ("recipient=ada&status=sent"); "" for none. */
function queryString(key: string): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(JSON.parse(key) as Record<string, string | undefined>)) if (v) q.set(k, v);
  return q.toString();
}

export function lastEvent(d: Delivery) {
  return d.events.length ? d.events[d.events.length - 1] : null;
}

export function DeliveriesPage({ query, navSeq }: { query: URLSearchParams; navSeq: number }) {
  const [filters, setFilters] = useState<Filters>(() => fromQuery(query));
  const key = JSON.stringify(apiFilters(filters));
  const debouncedKey = useDebounced(key, 250);
  const [limit, setLimit] = useState(PAGE_SIZE);
  const [items, setItems] = useState<Delivery[]>([]);
  const [shownKey, setShownKey] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const abortRef = useRef<AbortController | null>(null);

  const load = useCallback(async (k: string, lim: number, more = false) => {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    if (more) setLoadingMore(true);
    else setLoading(true);
    setError(null);
    try {
      const page = await api.getDeliveries({ ...JSON.parse(k), limit: lim }, ctrl.signal);
      if (ctrl.signal.aborted) return;
      setItems(page.items);
      setLimit(lim);
      setShownKey(k);
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
      if (!more) {
        setItems([]);
        setShownKey(k);
      }
    } finally {
      if (abortRef.current === ctrl) {
        setLoading(false);
        setLoadingMore(false);
      }
    }
  }, []);

  useEffect(() => {
    load(debouncedKey, PAGE_SIZE);
    const f = JSON.parse(debouncedKey) as Record<string, string | undefined>;
    replaceQuery(f);
    lastLogQuery = queryString(debouncedKey);
  }, [debouncedKey, load]);

  useEffect(() => () => abortRef.current?.abort(), []);

  // Navigating to #/deliveries again (e.g. via the nav link) resets the filters to the URL's.
  const firstNav = useRef(true);
  useEffect(() => {
    if (firstNav.current) {
      firstNav.current = false;
      return;
    }
    setFilters(fromQuery(query));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [navSeq]);

  const set = <K extends keyof Filters>(k: K, v: Filters[K]) => setFilters((f) => ({ ...f, [k]: v }));
  const active = filters.recipient || filters.status || filters.domain || filters.since;
  const sinceError = error?.field === 'since' ? error : null;
  const more = shownKey !== null && !error && items.length >= limit;

  return (
    <section>
      <PageHeader title="Delivery log">
        <button type="button" class="btn" disabled={loading} onClick={() => load(key, limit)}>
          Refresh
        </button>
      </PageHeader>

      <form
        class="card search-card delivery-filters"
        role="search"
        aria-label="Filter deliveries"
        onSubmit={(e) => {
          e.preventDefault();
          load(key, PAGE_SIZE);
        }}
      >
        <div class="filter-grid">
          <Field id="dl-recipient" label="Recipient" field="recipient" error={error} hint="Any part of the address.">
            <input
              {...ctl('dl-recipient', 'recipient', error, true)}
              type="search"
              autoComplete="off"
              spellcheck={false}
              value={filters.recipient}
              aria-controls="delivery-results"
              onInput={(e) => set('recipient', e.currentTarget.value)}
            />
          </Field>
          <Field id="dl-status" label="Status" field="status" error={error}>
            <select
              {...ctl('dl-status', 'status', error)}
              value={filters.status}
              onChange={(e) => set('status', e.currentTarget.value as DeliveryState | '')}
            >
              <option value="">Any status</option>
              {DELIVERY_STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field id="dl-domain" label="Domain" field="domain" error={error} hint="The whole recipient domain.">
            <input
              {...ctl('dl-domain', 'domain', error, true)}
              type="text"
              autoComplete="off"
              spellcheck={false}
              placeholder="example.com"
              value={filters.domain}
              onInput={(e) => set('domain', e.currentTarget.value)}
            />
          </Field>
          <Field id="dl-since" label="Updated since" field="since" error={error} hint="Your local time.">
            <input
              {...ctl('dl-since', 'since', error, true)}
              type="datetime-local"
              value={filters.since}
              onInput={(e) => set('since', e.currentTarget.value)}
            />
          </Field>
        </div>
        {active ? (
          <div class="form-actions">
            <button type="button" class="btn btn-small" onClick={() => setFilters(EMPTY)}>
              Clear filters
            </button>
          </div>
        ) : null}
      </form>

      <ErrorBanner error={sinceError ? null : error} />

      <div id="delivery-results" aria-busy={loading} data-query={shownKey === null ? undefined : queryString(shownKey)}>
        <p class="result-summary" role="status" aria-live="polite" data-testid="delivery-summary">
          {error
            ? ''
            : shownKey === null
              ? 'Loading…'
              : `${items.length} ${items.length === 1 ? 'delivery' : 'deliveries'}${more ? ' shown, more may match' : ''} · newest first`}
        </p>
        {shownKey !== null && items.length === 0 && !error ? (
          <div class="empty">
            <p>{active ? 'No deliveries match these filters.' : 'Nothing has been sent yet.'}</p>
          </div>
        ) : null}
        {items.length ? (
          <table class="table contacts-table deliveries-table">
            <thead>
              <tr>
                <th scope="col">Recipient</th>
                <th scope="col">Status</th>
                <th scope="col">Domain / site</th>
                <th scope="col" class="num">
                  Attempts
                </th>
                <th scope="col">Last event</th>
                <th scope="col">Updated</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => {
                const ev = lastEvent(d);
                return (
                  <tr
                    key={`${d.message}-${d.index}`}
                    class="row-link"
                    data-recipient={d.recipient}
                    onClick={(e) => {
                      if ((e.target as HTMLElement).closest('a')) return;
                      navigate(`/messages/${d.message}`);
                    }}
                  >
                    <td data-label="Recipient" class="cell-email">
                      <a href={href(`/messages/${d.message}`)}>{d.recipient}</a>
                    </td>
                    <td data-label="Status">
                      <div>
                        <DeliveryBadge state={d.state} />
                        {d.policy ? (
                          <span class="badge badge-muted policy-badge" title="Rejected by policy (5.7.x)">
                            policy
                          </span>
                        ) : null}
                      </div>
                    </td>
                    <td data-label="Domain / site" class="cell-email">
                      <div>
                        {d.domain}
                        {d.site && d.site !== d.domain ? <div class="muted small">via {d.site}</div> : null}
                      </div>
                    </td>
                    <td data-label="Attempts" class="num">
                      {d.attempts}
                    </td>
                    <td data-label="Last event" class="cell-event">
                      <div data-testid="last-event">
                        {ev && (ev.code || ev.text) ? (
                          <>
                            {ev.code ? <code class="smtp-code">{ev.code}</code> : null} {replyText(ev.code, ev.text)}
                          </>
                        ) : (
                          <span class="muted">{ev?.state ?? '—'}</span>
                        )}
                        {d.state === 'deferred' && d.next_attempt ? (
                          <div class="muted small">next try {formatTime(d.next_attempt)}</div>
                        ) : null}
                      </div>
                    </td>
                    <td data-label="Updated">
                      <time dateTime={d.updated_at}>{formatTime(d.updated_at)}</time>
                    </td>
                    <td data-label="Message" class="mono">
                      #{d.message}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
        {more ? (
          <div class="load-more">
            <button type="button" class="btn" disabled={loadingMore} onClick={() => load(shownKey!, limit + PAGE_SIZE, true)}>
              {loadingMore ? 'Loading…' : 'Load more'}
            </button>
          </div>
        ) : null}
      </div>
    </section>
  );
}
