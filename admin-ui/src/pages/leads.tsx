import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, LEAD_STATUSES, toApiError, type ApiError, type Lead, type LeadPatch, type LeadStatus } from '../api';
import { canWrite, ctl, ErrorBanner, Field, formatDate, fullName, notify, PageHeader, Spinner, useDebounced, useUser } from '../components';
import {
  Facts,
  PagedResults,
  OwnerSelect,
  RecordTimeline,
  ScoreBreakdown,
  StatusBadge,
  useCursorList,
  useAction,
  useDirectory,
  userLabel,
} from '../crm';
import { href, navigate, replaceQuery } from '../router';

const PAGE_SIZE = 25;

type OwnerFilter = '' | 'me' | 'none';

/** Saves a lead change; resolves to the saved lead, or null after reporting the error. */
async function patchLead(lead: Lead, patch: LeadPatch, setError: (e: ApiError | null) => void): Promise<Lead | null> {
  setError(null);
  try {
    const saved = await api.updateLead(lead.id, patch);
    notify(
      'assigned_to' in patch
        ? `${leadName(saved)} ${saved.assigned_to == null ? 'unassigned' : 'assigned'}`
        : `${leadName(saved)} is now ${saved.status}`,
    );
    return saved;
  } catch (e) {
    setError(toApiError(e));
    return null;
  }
}

function leadName(l: Lead): string {
  return fullName(l) || l.email || `Lead #${l.id}`;
}

/** The lead inbox: leads by score, with status, owner and text filters and assignment. */
export function LeadsPage({ query }: { query: URLSearchParams }) {
  const user = useUser();
  const users = useDirectory();
  const [status, setStatus] = useState(query.get('status') ?? '');
  const [owner, setOwner] = useState<OwnerFilter>((query.get('owner') as OwnerFilter) ?? '');
  const [text, setText] = useState(query.get('q') ?? '');
  const q = useDebounced(text.trim(), 200);
  const [minText, setMinText] = useState(query.get('min_score') ?? '');
  const minScore = useDebounced(/^-?\d+$/.test(minText.trim()) ? minText.trim() : '', 200);
  const [open, setOpen] = useState<number | null>(null);
  const [busy, setBusy] = useState<number | null>(null);
  const [saveError, setSaveError] = useState<ApiError | null>(null);
  const key = JSON.stringify([status, owner, q, minScore]);
  const list = useCursorList<Lead>(key, (cursor, signal) =>
    api.getLeads({ sort: '-score', status, owner, q, min_score: minScore ? Number(minScore) : undefined, cursor, limit: PAGE_SIZE }, signal),
  );
  useEffect(
    () => replaceQuery({ status: status || undefined, owner: owner || undefined, q: q || undefined, min_score: minScore || undefined }),
    [key],
  );

  async function assign(lead: Lead, to: number | null) {
    setBusy(lead.id);
    const saved = await patchLead(lead, { assigned_to: to }, setSaveError);
    if (saved) list.setItems((items) => items.map((l) => (l.id === saved.id ? saved : l)));
    setBusy(null);
  }

  return (
    <section>
      <PageHeader title="Lead inbox" />
      <form class="card search-card lead-filters" role="search" aria-label="Filter leads" onSubmit={(e) => e.preventDefault()}>
        <div class="filter-grid">
          <Field id="lead-q" label="Search" hint="Names, emails, companies.">
            <input
              {...ctl('lead-q', 'q', list.error, true)}
              type="search"
              autoComplete="off"
              value={text}
              aria-controls="lead-results"
              onInput={(e) => setText(e.currentTarget.value)}
            />
          </Field>
          <Field id="lead-status" label="Status">
            <select id="lead-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
              <option value="">Any status</option>
              {LEAD_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field id="lead-owner" label="Owner">
            <select id="lead-owner" value={owner} onChange={(e) => setOwner(e.currentTarget.value as OwnerFilter)}>
              <option value="">Anyone</option>
              <option value="me">Assigned to me</option>
              <option value="none">Unassigned</option>
            </select>
          </Field>
          <Field id="lead-min-score" label="Minimum score">
            <input
              id="lead-min-score"
              type="number"
              step={1}
              inputMode="numeric"
              value={minText}
              aria-controls="lead-results"
              onInput={(e) => setMinText(e.currentTarget.value)}
            />
          </Field>
        </div>
      </form>
      <ErrorBanner error={list.error ?? saveError} />
      <PagedResults id="lead-results" list={list} noun="lead" plural="leads" empty="No leads match.">
        <table class="table leads-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Company</th>
              <th scope="col">Email</th>
              <th scope="col">Status</th>
              <th scope="col">Score</th>
              <th scope="col">Owner</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((l) => (
              <LeadRow
                key={l.id}
                lead={l}
                open={open === l.id}
                onToggle={() => setOpen(open === l.id ? null : l.id)}
                owner={
                  canWrite(user) ? (
                    <OwnerSelect
                      id={`lead-owner-${l.id}`}
                      label={`Assign ${leadName(l)} to`}
                      value={l.assigned_to}
                      users={users}
                      disabled={busy === l.id}
                      onChange={(to) => void assign(l, to)}
                    />
                  ) : (
                    userLabel(l.assigned_to, user, users)
                  )
                }
              />
            ))}
          </tbody>
        </table>
      </PagedResults>
    </section>
  );
}

function LeadRow({ lead: l, open, onToggle, owner }: { lead: Lead; open: boolean; onToggle: () => void; owner: ComponentChildren }) {
  return (
    <>
      <tr data-testid={`lead-${l.id}`} data-lead-email={l.email}>
        <td data-label="Name">
          <a href={href(`/leads/${l.id}`)}>{fullName(l) || <span class="muted">(no name)</span>}</a>
        </td>
        <td data-label="Company">{l.company || <span class="muted">—</span>}</td>
        <td data-label="Email" class="cell-email">
          {l.email || <span class="muted">—</span>}
        </td>
        <td data-label="Status">
          <StatusBadge status={l.status} />
        </td>
        <td data-label="Score">
          <button
            type="button"
            class="btn btn-small score-button"
            aria-expanded={open}
            aria-controls={`lead-score-${l.id}`}
            aria-label={`Score ${l.score}: ${open ? 'hide' : 'show'} the breakdown for ${leadName(l)}`}
            onClick={onToggle}
          >
            <span data-testid="lead-score">{l.score}</span> <span aria-hidden="true">{open ? '▴' : '▾'}</span>
          </button>
        </td>
        <td data-label="Owner">{owner}</td>
      </tr>
      {open ? (
        <tr class="detail-row" id={`lead-score-${l.id}`}>
          <td colSpan={6}>
            <ScoreBreakdown leadId={l.id} updated={l.updated_at} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

/** One lead: fields, status, owner, score breakdown, conversion and the timeline. */
export function LeadPage({ id }: { id: string }) {
  const user = useUser();
  const users = useDirectory();
  const writable = canWrite(user);
  const [lead, setLead] = useState<Lead | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api
      .getLead(id)
      .then(setLead)
      .catch((e) => setLoadError(toApiError(e)));
  }, [id]);

  async function change(patch: LeadPatch) {
    if (!lead) return;
    setBusy(true);
    const saved = await patchLead(lead, patch, setError);
    if (saved) setLead(saved);
    setBusy(false);
  }

  if (loadError) {
    return (
      <section>
        <PageHeader title={loadError.status === 404 ? 'Lead not found' : 'Lead'} />
        <ErrorBanner error={loadError} />
        <p>
          <a href={href('/leads')}>Back to the lead inbox</a>
        </p>
      </section>
    );
  }
  if (!lead) return <Spinner label="Loading the lead…" />;

  const facts: [string, ComponentChildren][] = [
    ['Email', lead.email],
    ['Phone', lead.phone],
    ['Job title', lead.job_title],
    ['Company', lead.company],
    ['Website', lead.website],
    ['Industry', lead.industry],
    ['Company size', lead.company_size],
    ['Country', lead.country],
    ['Source', lead.source],
    ['Created', formatDate(lead.created_at)],
  ];
  const converted = lead.status === 'converted';

  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/leads')}>← Lead inbox</a>
      </p>
      <PageHeader title={leadName(lead)}>
        <StatusBadge status={lead.status} />
      </PageHeader>
      <ErrorBanner error={error} />
      <div class="grid-2">
        <div class="card">
          <h2>Details</h2>
          <Facts items={facts} />
        </div>
        <div class="stack">
          <div class="card">
            <h2>Status and owner</h2>
            <div class="row-2">
              <Field id="lead-status-select" label="Status">
                <select
                  id="lead-status-select"
                  value={lead.status}
                  disabled={!writable || busy || converted}
                  onChange={(e) => void change({ status: e.currentTarget.value as LeadStatus })}
                >
                  {LEAD_STATUSES.filter((s) => s !== 'converted' || converted).map((s) => (
                    <option key={s} value={s}>
                      {s}
                    </option>
                  ))}
                </select>
              </Field>
              <div class="field">
                <OwnerSelect
                  id="lead-assignee"
                  label="Assigned to"
                  visibleLabel
                  value={lead.assigned_to}
                  users={users}
                  disabled={!writable || busy}
                  onChange={(to) => void change({ assigned_to: to })}
                />
              </div>
            </div>
          </div>
          <div class="card">
            <h2>Score</h2>
            <ScoreBreakdown leadId={lead.id} updated={lead.updated_at} />
          </div>
        </div>
      </div>
      {converted ? <ConvertedLinks lead={lead} /> : writable ? <ConvertForm lead={lead} /> : null}
      <RecordTimeline kind="lead" id={lead.id} />
    </section>
  );
}

function ConvertedLinks({ lead }: { lead: Lead }) {
  return (
    <div class="card after-form">
      <h2>Converted</h2>
      <p>
        Converted {formatDate(lead.converted_at)}:{' '}
        {lead.converted_contact_id != null ? <a href={href(`/contacts/${lead.converted_contact_id}`)}>contact</a> : null}
        {lead.converted_account_id != null ? (
          <>
            {' · '}
            <a href={href(`/accounts/${lead.converted_account_id}`)}>account</a>
          </>
        ) : null}
        {lead.converted_opportunity_id != null ? (
          <>
            {' · '}
            <a href={href('/pipeline')}>opportunity #{lead.converted_opportunity_id}</a>
          </>
        ) : null}
      </p>
    </div>
  );
}

/** Converts the lead into a contact and an account (and an opportunity when asked). */
function ConvertForm({ lead }: { lead: Lead }) {
  const [withOpp, setWithOpp] = useState(true);
  const [name, setName] = useState(lead.company ? `${lead.company}: new business` : '');
  const [amount, setAmount] = useState('');
  const [currency, setCurrency] = useState('EUR');
  const { busy, error, run } = useAction();

  async function convert(e: Event) {
    e.preventDefault();
    const opportunity: { name?: string; amount?: string; currency?: string } = {};
    if (name.trim()) opportunity.name = name.trim();
    if (amount.trim()) opportunity.amount = amount.trim();
    if (currency.trim()) opportunity.currency = currency.trim().toUpperCase();
    const r = await run(() =>
      api.convertLead(lead.id, withOpp ? { create_opportunity: true, opportunity } : { create_opportunity: false }),
    );
    if (!r) return;
    notify(`${leadName(lead)} converted`);
    navigate(`/accounts/${r.account_id}`);
  }

  return (
    <form class="card after-form convert-form" onSubmit={convert} aria-labelledby="convert-title" noValidate>
      <h2 id="convert-title">Convert</h2>
      <p class="muted">Creates (or finds) the contact and the account of this lead.</p>
      <ErrorBanner error={error} />
      <label class="check">
        <input type="checkbox" checked={withOpp} onChange={(e) => setWithOpp(e.currentTarget.checked)} />
        <span>Create an opportunity</span>
      </label>
      {withOpp ? (
        <div class="row-3">
          <Field id="convert-name" label="Opportunity name" field="name" error={error}>
            <input {...ctl('convert-name', 'name', error)} type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <Field id="convert-amount" label="Amount" field="amount" error={error}>
            <input
              {...ctl('convert-amount', 'amount', error)}
              type="text"
              inputMode="decimal"
              value={amount}
              onInput={(e) => setAmount(e.currentTarget.value)}
            />
          </Field>
          <Field id="convert-currency" label="Currency" field="currency" error={error}>
            <input
              {...ctl('convert-currency', 'currency', error)}
              type="text"
              maxLength={3}
              value={currency}
              onInput={(e) => setCurrency(e.currentTarget.value)}
            />
          </Field>
        </div>
      ) : null}
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {busy ? 'Converting…' : 'Convert'}
        </button>
      </div>
    </form>
  );
}
