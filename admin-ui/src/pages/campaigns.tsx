import { useEffect, useState } from 'preact/hooks';
import {
  api,
  ApiError,
  toApiError,
  type Campaign,
  type CampaignAction,
  type CampaignInput,
  type CampaignStatus,
  type CampaignView,
  type MailList,
  type SegmentSummary,
  type StoredTemplate,
} from '../api';
import {
  canEditCampaigns,
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
import { href, navigate } from '../router';

export function CampaignBadge({ status }: { status: CampaignStatus }) {
  return (
    <span class={'badge campaign-' + status} data-testid="campaign-status">
      {status}
    </span>
  );
}

function audienceText(c: Campaign, lists: MailList[] | null): string {
  const a = c.audience;
  if (a.lists?.length) {
    const names = a.lists.map((id) => lists?.find((l) => l.id === id)?.name ?? `list ${id}`);
    return names.join(', ');
  }
  if (a.segment !== undefined) return `segment ${a.segment}`;
  if (a.non_openers_of !== undefined) return `non-openers of campaign ${a.non_openers_of}`;
  return '—';
}

// ---------------------------------------------------------------- list

export function CampaignsPage() {
  const user = useUser();
  const [items, setItems] = useState<Campaign[] | null>(null);
  const [lists, setLists] = useState<MailList[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  useEffect(() => {
    api
      .getCampaigns()
      .then((r) => setItems(r.items))
      .catch((e) => setError(toApiError(e)));
    api
      .getLists()
      .then((r) => setLists(r.items))
      .catch(() => {
        /* names are a nicety; ids are shown instead */
      });
  }, []);

  return (
    <section>
      <PageHeader title="Campaigns">
        {canEditCampaigns(user) ? (
          <a class="btn btn-primary" href={href('/campaigns/new')}>
            New campaign
          </a>
        ) : null}
      </PageHeader>
      <ErrorBanner error={error} />
      <div class="card">
        {items === null && !error ? (
          <Spinner />
        ) : items && items.length === 0 ? (
          <p class="muted">No campaigns yet.</p>
        ) : items ? (
          <table class="table campaigns-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Audience</th>
                <th scope="col" class="num">
                  Queued
                </th>
                <th scope="col">Started</th>
                <th scope="col">
                  <span class="sr-only">Report</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((c) => (
                <tr key={c.id} data-campaign-id={c.id}>
                  <td data-label="Name">
                    <a href={href(`/campaigns/${c.id}`)}>
                      <strong>{c.name}</strong>
                    </a>
                    <div class="muted small">{c.subject}</div>
                  </td>
                  <td data-label="Status">
                    <CampaignBadge status={c.status} />
                    {c.status === 'scheduled' && c.scheduled_at ? (
                      <div class="muted small">{formatDate(c.scheduled_at)}</div>
                    ) : null}
                  </td>
                  <td data-label="Audience">{audienceText(c, lists)}</td>
                  <td data-label="Queued" class="num">
                    {c.started_at ? `${c.queued} / ${c.audience_size}` : '—'}
                  </td>
                  <td data-label="Started">{formatDate(c.started_at)}</td>
                  <td class="actions">
                    {c.started_at ? (
                      <a class="btn btn-small" href={href(`/campaigns/${c.id}/report`)} aria-label={`Report of ${c.name}`}>
                        Report
                      </a>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
    </section>
  );
}

// ---------------------------------------------------------------- editor

interface Form {
  name: string;
  subject: string;
  preheader: string;
  from: string;
  reply_to: string;
  template_id: string;
  lists: number[];
  segment: string;
  track_opens: boolean;
  track_clicks: boolean;
}

const EMPTY: Form = {
  name: '',
  subject: '',
  preheader: '',
  from: '',
  reply_to: '',
  template_id: '',
  lists: [],
  segment: '',
  track_opens: true,
  track_clicks: true,
};

function formOf(c: Campaign): Form {
  return {
    name: c.name,
    subject: c.subject,
    preheader: c.preheader ?? '',
    from: c.from,
    reply_to: c.reply_to ?? '',
    template_id: String(c.template_id),
    lists: c.audience.lists ?? [],
    segment: c.audience.segment !== undefined ? String(c.audience.segment) : '',
    track_opens: c.track_opens,
    track_clicks: c.track_clicks,
  };
}

/** The control an API error's field points at. */
const FIELD_IDS: Record<string, string> = {
  name: 'camp-name',
  subject: 'camp-subject',
  preheader: 'camp-preheader',
  from: 'camp-from',
  reply_to: 'camp-reply-to',
  template_id: 'camp-template',
  audience: 'camp-audience',
  'audience.lists': 'camp-audience',
  'audience.segment': 'camp-segment',
  at: 'camp-schedule-at',
  to: 'camp-test-to',
};

function sameForm(a: Form, b: Form): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** `datetime-local` value (local time) → RFC 3339 in UTC. */
export function localToRfc3339(v: string): string | null {
  if (!v) return null;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function CampaignEditorPage({ id }: { id: string | null }) {
  const user = useUser();
  const editor = canEditCampaigns(user);
  const [campaign, setCampaign] = useState<CampaignView | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [form, setForm] = useState<Form>(EMPTY);
  const [saved, setSaved] = useState<Form>(EMPTY);
  const [templates, setTemplates] = useState<StoredTemplate[] | null>(null);
  const [lists, setLists] = useState<MailList[] | null>(null);
  const [segments, setSegments] = useState<SegmentSummary[] | null | undefined>(undefined);
  // the exact number the chosen audience reaches now (members less the suppressed)
  const [reach, setReach] = useState<number | null>(null);
  useEffect(() => {
    const seg = form.segment.trim();
    const audience = seg && !form.lists.length ? { segment: Number(seg) } : { lists: form.lists };
    if (!form.lists.length && !seg) {
      setReach(null);
      return;
    }
    let live = true;
    const t = setTimeout(() => {
      api
        .audienceCount(audience)
        .then((r) => live && setReach(r.count))
        .catch(() => live && setReach(null));
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [form.lists.join(','), form.segment]);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<CampaignAction | 'delete' | null>(null);
  const [scheduleAt, setScheduleAt] = useState('');
  const [testTo, setTestTo] = useState('');
  useFocusErrorField(error, (f) => FIELD_IDS[f] ?? '');

  useEffect(() => {
    api
      .getTemplates()
      .then((r) => setTemplates(r.items))
      .catch((e) => setLoadError(toApiError(e)));
    api
      .getLists()
      .then((r) => setLists(r.items))
      .catch((e) => setLoadError(toApiError(e)));
    api
      .getSegmentOptions()
      .then(setSegments)
      .catch(() => setSegments(null));
    if (id !== null) {
      api
        .getCampaign(id)
        .then((c) => {
          setCampaign(c);
          const f = formOf(c);
          setForm(f);
          setSaved(f);
        })
        .catch((e) => setLoadError(toApiError(e)));
    }
  }, [id]);

  // A new campaign starts with the first template picked.
  useEffect(() => {
    if (id === null && templates?.length && !form.template_id) {
      setForm((f) => ({ ...f, template_id: String(templates[0].id) }));
    }
  }, [templates]);

  const status = campaign?.status ?? 'draft';
  const editable = editor && (status === 'draft' || status === 'scheduled');
  const dirty = !sameForm(form, saved) || campaign === null;
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => ({ ...f, [k]: v }));

  function input(): CampaignInput {
    const segment = form.segment.trim();
    return {
      name: form.name.trim(),
      subject: form.subject,
      preheader: form.preheader,
      from: form.from.trim(),
      reply_to: form.reply_to.trim() || undefined,
      template_id: form.template_id ? Number(form.template_id) : undefined,
      audience: segment && !form.lists.length ? { segment: Number(segment) } : segment ? { lists: form.lists, segment: Number(segment) } : { lists: form.lists },
      track_opens: form.track_opens,
      track_clicks: form.track_clicks,
    };
  }

  /** Saves the form (create or update); the saved campaign, or null after an error. */
  async function save(): Promise<CampaignView | null> {
    setError(null);
    try {
      const c = campaign ? await api.updateCampaign(campaign.id, input()) : await api.createCampaign(input());
      setCampaign(c);
      const f = formOf(c);
      setForm(f);
      setSaved(f);
      if (!campaign) {
        notify(`Created campaign “${c.name}”`);
        navigate(`/campaigns/${c.id}`, undefined, true);
      } else notify('Campaign saved');
      return c;
    } catch (e) {
      setError(toApiError(e));
      return null;
    }
  }

  async function onSubmit(e: Event) {
    e.preventDefault();
    setBusy('save');
    await save();
    setBusy(null);
  }

  /** Saves pending edits first (draft/scheduled), then runs `fn` on the saved campaign. */
  async function withSaved(what: string, fn: (c: CampaignView) => Promise<void>) {
    setBusy(what);
    setError(null);
    try {
      let c = campaign;
      if (editable && (dirty || !c)) c = await save();
      if (!c) return;
      await fn(c);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(null);
    }
  }

  async function act(action: CampaignAction) {
    setConfirm(null);
    await withSaved(action, async (c) => {
      const v = await api.campaignAction(c.id, action);
      setCampaign(v);
      notify(
        { start: 'Sending started', pause: 'Campaign paused', resume: 'Sending resumed', cancel: 'Campaign cancelled' }[action],
      );
      if (action === 'start') navigate(`/campaigns/${c.id}/report`);
    });
  }

  async function schedule(e: Event) {
    e.preventDefault();
    const at = localToRfc3339(scheduleAt);
    if (!at) {
      setError(new ApiError(0, 'invalid_field', 'Pick a date and time to send at.', 'at'));
      return;
    }
    await withSaved('schedule', async (c) => {
      const v = await api.scheduleCampaign(c.id, at);
      setCampaign(v);
      notify(`Scheduled for ${formatDate(at)}`);
    });
  }

  async function sendTest(e: Event) {
    e.preventDefault();
    const to = testTo
      .split(/[\s,;]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    await withSaved('test', async (c) => {
      const r = await api.testCampaign(c.id, to);
      notify(`Test sent (${r.message_ids.length} message${r.message_ids.length === 1 ? '' : 's'} queued)`);
    });
  }

  async function remove() {
    if (!campaign) return;
    setBusy('delete');
    try {
      await api.deleteCampaign(campaign.id);
      notify(`Deleted campaign “${campaign.name}”`);
      navigate('/campaigns');
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(null);
      setConfirm(null);
    }
  }

  if (loadError && (id === null || !campaign)) {
    return (
      <section>
        <p class="breadcrumb">
          <a href={href('/campaigns')}>← Campaigns</a>
        </p>
        <PageHeader title={id === null ? 'New campaign' : 'Campaign'} />
        <ErrorBanner error={loadError} />
      </section>
    );
  }
  if (id !== null && !campaign) return <Spinner />;

  const audienceSize = form.lists.reduce((n, l) => n + (lists?.find((x) => x.id === l)?.member_count ?? 0), 0);
  const bannerError = error && !(error.field && FIELD_IDS[error.field]) ? error : null;
  const audienceError = error && (error.field === 'audience' || error.field === 'audience.lists') ? error : null;
  const ro = !editable;

  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/campaigns')}>← Campaigns</a>
      </p>
      <PageHeader title={campaign ? campaign.name : 'New campaign'}>
        {campaign ? <CampaignBadge status={campaign.status} /> : null}
        {campaign?.started_at ? (
          <a class="btn" href={href(`/campaigns/${campaign.id}/report`)}>
            View report
          </a>
        ) : null}
      </PageHeader>
      {campaign?.last_error ? (
        <div class="alert alert-error" role="alert">
          <strong>Last problem:</strong> {campaign.last_error}
        </div>
      ) : null}
      <ErrorBanner error={bannerError} />

      <form class="card" onSubmit={onSubmit} noValidate aria-labelledby="camp-form-title">
        <h2 id="camp-form-title">Message</h2>
        {!editable && campaign ? (
          <p class="alert alert-info">Only draft and scheduled campaigns can be edited.</p>
        ) : null}
        <div class="row-2">
          <Field id="camp-name" label="Campaign name" field="name" error={error} hint="Only you and your team see it.">
            <input {...ctl('camp-name', 'name', error, true)} type="text" value={form.name} readOnly={ro} onInput={(e) => set('name', e.currentTarget.value)} />
          </Field>
          <Field id="camp-template" label="Template" field="template_id" error={error}>
            <select
              {...ctl('camp-template', 'template_id', error)}
              value={form.template_id}
              disabled={ro}
              onChange={(e) => set('template_id', e.currentTarget.value)}
            >
              {templates === null ? <option value="">Loading…</option> : null}
              {templates?.length === 0 ? <option value="">No templates yet</option> : null}
              {templates?.map((t) => (
                <option key={t.id} value={String(t.id)}>
                  {t.name}
                </option>
              ))}
            </select>
            {templates?.length === 0 ? (
              <p class="field-hint">
                <a href={href('/templates')}>Copy a template from the library</a> first.
              </p>
            ) : form.template_id ? (
              <p class="field-hint">
                <a href={href(`/templates/${form.template_id}`)}>Edit this template</a>
              </p>
            ) : null}
          </Field>
        </div>
        <div class="row-2">
          <Field id="camp-subject" label="Subject" field="subject" error={error}>
            <input {...ctl('camp-subject', 'subject', error)} type="text" value={form.subject} readOnly={ro} onInput={(e) => set('subject', e.currentTarget.value)} />
          </Field>
          <Field id="camp-preheader" label="Preheader (optional)" field="preheader" error={error} hint="The preview line after the subject.">
            <input
              {...ctl('camp-preheader', 'preheader', error, true)}
              type="text"
              value={form.preheader}
              readOnly={ro}
              onInput={(e) => set('preheader', e.currentTarget.value)}
            />
          </Field>
        </div>
        <div class="row-2">
          <Field id="camp-from" label="From" field="from" error={error} hint="e.g. Northbridge Academy <news@northbridge.example>">
            <input {...ctl('camp-from', 'from', error, true)} type="text" value={form.from} readOnly={ro} onInput={(e) => set('from', e.currentTarget.value)} />
          </Field>
          <Field id="camp-reply-to" label="Reply-To (optional)" field="reply_to" error={error}>
            <input
              {...ctl('camp-reply-to', 'reply_to', error)}
              type="email"
              value={form.reply_to}
              readOnly={ro}
              onInput={(e) => set('reply_to', e.currentTarget.value)}
            />
          </Field>
        </div>

        <fieldset
          class={'field audience' + (audienceError ? ' field-invalid' : '')}
          id="camp-audience"
          tabIndex={-1}
          aria-describedby={audienceError ? 'camp-audience-error' : 'camp-audience-hint'}
        >
          <legend>Audience</legend>
          {lists === null ? (
            <Spinner label="Loading lists…" />
          ) : lists.length === 0 ? (
            <p class="muted">
              No lists yet. <a href={href('/lists')}>Create a list</a>.
            </p>
          ) : (
            <ul class="check-list">
              {lists.map((l) => (
                <li key={l.id}>
                  <label>
                    <input
                      type="checkbox"
                      checked={form.lists.includes(l.id)}
                      disabled={ro}
                      onChange={(e) =>
                        set('lists', e.currentTarget.checked ? [...form.lists, l.id] : form.lists.filter((x) => x !== l.id))
                      }
                    />{' '}
                    {l.name} <span class="muted small">({l.member_count} member{l.member_count === 1 ? '' : 's'})</span>
                  </label>
                </li>
              ))}
            </ul>
          )}
          {audienceError ? (
            <p class="field-error" id="camp-audience-error">
              {audienceError.message}
            </p>
          ) : (
            <p class="field-hint" id="camp-audience-hint">
              Confirmed members of the chosen lists
              {reach !== null
                ? ` (${reach} now, suppressed addresses left out)`
                : form.lists.length
                  ? ` (up to ${audienceSize} before suppressions)`
                  : ''}
              ; the audience is fixed when sending starts.
            </p>
          )}
        </fieldset>
        {segments !== null && segments !== undefined ? (
          <Field id="camp-segment" label="Or a saved segment" field="audience.segment" error={error} hint="Instead of lists.">
            {segments.length ? (
              <select
                {...ctl('camp-segment', 'audience.segment', error, true)}
                value={form.segment}
                disabled={ro}
                onChange={(e) => set('segment', e.currentTarget.value)}
              >
                <option value="">No segment</option>
                {segments.map((s) => (
                  <option key={s.id} value={String(s.id)}>
                    {s.name}
                  </option>
                ))}
              </select>
            ) : (
              <input
                {...ctl('camp-segment', 'audience.segment', error, true)}
                type="number"
                min={1}
                inputMode="numeric"
                value={form.segment}
                readOnly={ro}
                onInput={(e) => set('segment', e.currentTarget.value)}
              />
            )}
          </Field>
        ) : null}

        <fieldset class="field">
          <legend>Tracking</legend>
          <label class="check">
            <input type="checkbox" checked={form.track_opens} disabled={ro} onChange={(e) => set('track_opens', e.currentTarget.checked)} /> Track opens
          </label>
          <label class="check">
            <input type="checkbox" checked={form.track_clicks} disabled={ro} onChange={(e) => set('track_clicks', e.currentTarget.checked)} /> Track
            clicks
          </label>
        </fieldset>

        {editable ? (
          <div class="form-actions">
            <button type="submit" class="btn btn-primary" disabled={busy !== null || (!dirty && campaign !== null)}>
              {busy === 'save' ? 'Saving…' : campaign ? 'Save changes' : 'Create campaign'}
            </button>
            {campaign && dirty ? <span class="muted small">Unsaved changes (saved before sending)</span> : null}
          </div>
        ) : null}
      </form>

      {campaign && editor ? (
        <CampaignActions
          campaign={campaign}
          busy={busy}
          error={error}
          scheduleAt={scheduleAt}
          setScheduleAt={setScheduleAt}
          testTo={testTo}
          setTestTo={setTestTo}
          onAction={(a) => (a === 'pause' || a === 'resume' ? act(a) : setConfirm(a))}
          onSchedule={schedule}
          onTest={sendTest}
          onDelete={() => setConfirm('delete')}
        />
      ) : null}

      <ConfirmDialog
        open={confirm === 'start'}
        title="Start sending?"
        confirmLabel="Start sending"
        busy={busy === 'start'}
        onConfirm={() => act('start')}
        onCancel={() => setConfirm(null)}
      >
        <p>
          <strong>{campaign?.name}</strong> goes to the confirmed members of its audience now
          {form.lists.length ? ` (up to ${audienceSize} contacts)` : ''}. You can pause or cancel while it sends.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirm === 'cancel'}
        title="Cancel the campaign?"
        confirmLabel="Cancel campaign"
        danger
        busy={busy === 'cancel'}
        onConfirm={() => act('cancel')}
        onCancel={() => setConfirm(null)}
      >
        <p>No further messages of {campaign?.name} are queued. Messages already queued are still delivered.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirm === 'delete'}
        title="Delete the campaign?"
        confirmLabel="Delete campaign"
        danger
        busy={busy === 'delete'}
        onConfirm={remove}
        onCancel={() => setConfirm(null)}
      >
        <p>The campaign {campaign?.name} will be deleted.</p>
      </ConfirmDialog>
    </section>
  );
}

interface ActionsProps {
  campaign: CampaignView;
  busy: string | null;
  error: ApiError | null;
  scheduleAt: string;
  setScheduleAt: (v: string) => void;
  testTo: string;
  setTestTo: (v: string) => void;
  onAction: (a: CampaignAction) => void;
  onSchedule: (e: Event) => void;
  onTest: (e: Event) => void;
  onDelete: () => void;
}

function CampaignActions(p: ActionsProps) {
  const s = p.campaign.status;
  const canStart = s === 'draft' || s === 'scheduled';
  const canPause = s === 'sending';
  const canResume = s === 'paused';
  const canCancel = s === 'scheduled' || s === 'sending' || s === 'paused';
  const canDelete = s === 'draft' || s === 'scheduled' || s === 'finished' || s === 'cancelled';
  const disabled = p.busy !== null;
  return (
    <div class="card" aria-labelledby="camp-actions-title" role="region">
      <h2 id="camp-actions-title">Sending</h2>
      <p class="muted small" data-testid="campaign-state-line">
        Status <CampaignBadge status={s} />
        {s === 'scheduled' && p.campaign.scheduled_at ? <> · sends {formatDate(p.campaign.scheduled_at)}</> : null}
        {p.campaign.started_at ? <> · started {formatDate(p.campaign.started_at)}</> : null}
        {p.campaign.finished_at ? <> · finished {formatDate(p.campaign.finished_at)}</> : null}
        {p.campaign.started_at ? (
          <>
            {' '}
            · {p.campaign.queued} of {p.campaign.audience_size} queued
          </>
        ) : null}
      </p>
      <div class="form-actions">
        {canStart ? (
          <button type="button" class="btn btn-primary" disabled={disabled} onClick={() => p.onAction('start')}>
            {p.busy === 'start' ? 'Starting…' : s === 'scheduled' ? 'Start now' : 'Start sending'}
          </button>
        ) : null}
        {canPause ? (
          <button type="button" class="btn" disabled={disabled} onClick={() => p.onAction('pause')}>
            {p.busy === 'pause' ? 'Pausing…' : 'Pause'}
          </button>
        ) : null}
        {canResume ? (
          <button type="button" class="btn btn-primary" disabled={disabled} onClick={() => p.onAction('resume')}>
            {p.busy === 'resume' ? 'Resuming…' : 'Resume'}
          </button>
        ) : null}
        {canCancel ? (
          <button type="button" class="btn btn-danger-outline" disabled={disabled} onClick={() => p.onAction('cancel')}>
            Cancel campaign
          </button>
        ) : null}
        {canDelete ? (
          <button type="button" class="btn btn-danger-outline" disabled={disabled} onClick={p.onDelete}>
            Delete
          </button>
        ) : null}
      </div>

      {canStart ? (
        <form class="inline-form action-form" onSubmit={p.onSchedule} noValidate>
          <Field
            id="camp-schedule-at"
            class="field-grow"
            label="Send later at (your local time)"
            field="at"
            error={p.error}
            hint={`Sent as UTC; your time zone is ${Intl.DateTimeFormat().resolvedOptions().timeZone}.`}
          >
            <input
              {...ctl('camp-schedule-at', 'at', p.error, true)}
              type="datetime-local"
              value={p.scheduleAt}
              onInput={(e) => p.setScheduleAt(e.currentTarget.value)}
            />
          </Field>
          <button type="submit" class="btn" disabled={disabled || !p.scheduleAt}>
            {p.busy === 'schedule' ? 'Scheduling…' : s === 'scheduled' ? 'Reschedule' : 'Schedule'}
          </button>
        </form>
      ) : null}

      {s !== 'cancelled' ? (
        <form class="inline-form action-form" onSubmit={p.onTest} noValidate>
          <Field id="camp-test-to" class="field-grow" label="Send a test to" field="to" error={p.error} hint="Up to 10 addresses, separated by commas.">
            <input
              {...ctl('camp-test-to', 'to', p.error, true)}
              type="text"
              inputMode="email"
              autocomplete="email"
              value={p.testTo}
              onInput={(e) => p.setTestTo(e.currentTarget.value)}
            />
          </Field>
          <button type="submit" class="btn" disabled={disabled || !p.testTo.trim()}>
            {p.busy === 'test' ? 'Sending…' : 'Send test'}
          </button>
        </form>
      ) : null}
    </div>
  );
}
