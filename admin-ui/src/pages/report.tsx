import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, isAbort, toApiError, type ApiError, type CampaignReport, type CampaignView, type TimelineBucket } from '../api';
import { ErrorBanner, formatDate, PageHeader, Spinner, usePolling } from '../components';
import { href } from '../router';
import { CampaignBadge } from './campaigns';

const POLL_MS = 3000;
/** After sending, while messages still wait in the queue (deliveries settle later). */
const SETTLE_POLL_MS = 10_000;

function pct(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

export function CampaignReportPage({ id }: { id: string }) {
  const [campaign, setCampaign] = useState<CampaignView | null>(null);
  const [report, setReport] = useState<CampaignReport | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [updatedAt, setUpdatedAt] = useState<Date | null>(null);
  const abortRef = useRef<AbortController | null>(null);

  const load = useCallback(async () => {
    abortRef.current?.abort();
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    try {
      const [c, r] = await Promise.all([api.getCampaign(id), api.getCampaignReport(id, ctrl.signal)]);
      if (ctrl.signal.aborted) return;
      setCampaign(c);
      setReport(r);
      setError(null);
      setUpdatedAt(new Date());
    } catch (e) {
      if (isAbort(e) || ctrl.signal.aborted) return;
      setError(toApiError(e));
    }
  }, [id]);

  useEffect(() => {
    load();
    return () => abortRef.current?.abort();
  }, [load]);

  // While the campaign sends: refresh every 3 s; then every 10 s while messages wait in the
  // queue (paused while the tab is hidden).
  const sending = campaign?.status === 'sending';
  const settling = !sending && (report?.stats.pending ?? 0) > 0;
  const every = sending ? POLL_MS : settling ? SETTLE_POLL_MS : 0;
  usePolling(load, every);

  const title = campaign ? `Report: ${campaign.name}` : 'Campaign report';
  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/campaigns')}>← Campaigns</a>
        {campaign ? (
          <>
            {' · '}
            <a href={href(`/campaigns/${campaign.id}`)}>Campaign settings</a>
          </>
        ) : null}
      </p>
      <PageHeader title={title}>
        {campaign ? <CampaignBadge status={campaign.status} /> : null}
        <button type="button" class="btn" onClick={load}>
          Refresh
        </button>
      </PageHeader>
      <p class="muted small" data-testid="report-updated" aria-live="off">
        {sending
          ? 'Refreshes every 3 seconds while sending'
          : settling
            ? 'Refreshes every 10 seconds while messages wait in the queue'
            : campaign
              ? `Status: ${campaign.status}`
              : ''}
        {campaign?.started_at ? <> · started {formatDate(campaign.started_at)}</> : null}
        {campaign?.finished_at ? <> · finished {formatDate(campaign.finished_at)}</> : null}
        {updatedAt ? <> · updated {updatedAt.toLocaleTimeString()}</> : null}
      </p>
      <ErrorBanner error={error} />
      {campaign?.last_error ? (
        <div class="alert alert-error" role="alert">
          <strong>Last problem:</strong> {campaign.last_error}
        </div>
      ) : null}
      {!report && !error ? <Spinner label="Loading report…" /> : null}
      {report ? (
        <>
          <StatCards report={report} />
          <div class="card">
            <h2 id="timeline-title">Hourly activity</h2>
            <TimelineChart buckets={report.timeline} />
          </div>
          <LinksTable report={report} />
          <DomainsTable report={report} />
          {report.variants?.length ? <VariantsTable report={report} /> : null}
        </>
      ) : null}
    </section>
  );
}

function StatCards({ report }: { report: CampaignReport }) {
  const s = report.stats;
  const cards: { key: string; label: string; value: string; note?: string }[] = [
    { key: 'audience', label: 'Audience', value: String(s.audience), note: s.skipped ? `${s.skipped} skipped` : undefined },
    { key: 'queued', label: 'Queued', value: String(s.queued), note: s.pending ? `${s.pending} waiting` : undefined },
    { key: 'delivered', label: 'Delivered', value: String(s.delivered), note: s.deferred ? `${s.deferred} deferred` : undefined },
    { key: 'bounced', label: 'Bounced', value: String(s.bounced), note: s.failed ? `${s.failed} failed` : undefined },
    { key: 'open_rate', label: 'Open rate', value: pct(s.open_rate), note: 'unique opens ÷ delivered' },
    { key: 'opens', label: 'Opens', value: String(s.opens) },
    { key: 'unique_opens', label: 'Unique opens', value: String(s.unique_opens) },
    { key: 'machine_opens', label: 'Machine opens', value: String(s.machine_opens), note: 'privacy proxies, prefetch' },
    { key: 'clicks', label: 'Clicks', value: String(s.clicks), note: `${s.unique_clicks} unique · ${s.machine_clicks} by scanners` },
    { key: 'click_rate', label: 'Click rate', value: pct(s.click_rate), note: 'unique clicks ÷ delivered' },
    { key: 'unsubscribes', label: 'Unsubscribes', value: String(s.unsubscribes) },
    { key: 'complaints', label: 'Complaints', value: String(s.complaints) },
  ];
  return (
    <dl class="stats stats-report" aria-label="Campaign totals" data-testid="report-stats">
      {cards.map((c) => (
        <div key={c.key} data-stat={c.key}>
          <dt>{c.label}</dt>
          <dd data-testid={`stat-${c.key}`}>{c.value}</dd>
          {c.note ? <dd class="stat-note">{c.note}</dd> : null}
        </div>
      ))}
    </dl>
  );
}

// ---------------------------------------------------------------- timeline chart

const SERIES: { key: keyof Omit<TimelineBucket, 'at'>; label: string; color: string; dash?: string }[] = [
  { key: 'delivered', label: 'Delivered', color: '#234e8c' },
  { key: 'opens', label: 'Opens', color: '#1e7b3c', dash: '6 4' },
  { key: 'clicks', label: 'Clicks', color: '#8a5a00', dash: '2 3' },
  { key: 'bounced', label: 'Bounced', color: '#b3261e', dash: '8 3 2 3' },
  { key: 'unsubscribes', label: 'Unsubscribes', color: '#5b4a9e', dash: '1 3' },
  { key: 'complaints', label: 'Complaints', color: '#7a2e5c', dash: '10 2' },
];

const HOUR = 3600_000;
/** Up to two weeks of hours are drawn with empty hours filled in. */
const MAX_FILL = 24 * 14;

/** The buckets with the hours between them that saw nothing filled in as zeros. */
function filled(buckets: TimelineBucket[]): TimelineBucket[] {
  if (buckets.length < 2) return buckets;
  const first = Date.parse(buckets[0].at);
  const last = Date.parse(buckets[buckets.length - 1].at);
  if (!Number.isFinite(first) || !Number.isFinite(last) || (last - first) / HOUR > MAX_FILL) return buckets;
  const by = new Map(buckets.map((b) => [Date.parse(b.at), b]));
  const out: TimelineBucket[] = [];
  for (let t = first; t <= last; t += HOUR) {
    out.push(by.get(t) ?? { at: new Date(t).toISOString(), delivered: 0, bounced: 0, opens: 0, clicks: 0, unsubscribes: 0, complaints: 0 });
  }
  return out;
}

function hourLabel(at: string, withDay: boolean): string {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return at;
  return withDay
    ? d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
    : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** A step of 1, 2 or 5 × 10^n giving at most ~4 gridlines up to `max`. */
function niceMax(max: number): { top: number; step: number } {
  if (max <= 0) return { top: 4, step: 1 };
  const rough = max / 4;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= rough) ?? 10 * mag;
  const s = Math.max(1, step);
  return { top: Math.ceil(max / s) * s, step: s };
}

const TIMELINE_COLS: Column<TimelineBucket>[] = [
  { label: 'Hour', cell: (b) => hourLabel(b.at, true) },
  ...SERIES.map((s) => ({ label: s.label, num: true, cell: (b: TimelineBucket) => b[s.key] })),
];

export function TimelineChart({ buckets }: { buckets: TimelineBucket[] }) {
  const data = filled(buckets);
  if (!data.length) {
    return <p class="muted">No activity yet: deliveries, opens and clicks appear here hour by hour.</p>;
  }
  const W = 720;
  const H = 260;
  const pad = { l: 44, r: 16, t: 12, b: 40 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const max = Math.max(...data.flatMap((b) => SERIES.map((s) => b[s.key])));
  const { top, step } = niceMax(max);
  const x = (i: number) => pad.l + (data.length === 1 ? iw / 2 : (i * iw) / (data.length - 1));
  const y = (v: number) => pad.t + ih - (v / top) * ih;
  const multiDay = data.length > 1 && new Date(data[0].at).toDateString() !== new Date(data[data.length - 1].at).toDateString();
  const every = Math.max(1, Math.ceil(data.length / 6));
  const totals = SERIES.map((s) => ({ ...s, total: data.reduce((n, b) => n + b[s.key], 0) }));
  const peak = data.reduce((best, b) => (b.delivered > best.delivered ? b : best), data[0]);
  const desc =
    `${data.length} hour${data.length === 1 ? '' : 's'} from ${hourLabel(data[0].at, true)}. ` +
    totals.map((t) => `${t.label}: ${t.total}`).join(', ') +
    (peak.delivered ? `. Most deliveries (${peak.delivered}) in the hour from ${hourLabel(peak.at, true)}.` : '.');
  const ticks: number[] = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);

  return (
    <div class="chart">
      <ul class="chart-legend" aria-hidden="true">
        {SERIES.map((s) => (
          <li key={s.key}>
            <svg width="28" height="10" viewBox="0 0 28 10">
              <line x1="0" y1="5" x2="28" y2="5" stroke={s.color} stroke-width="3" stroke-dasharray={s.dash} />
            </svg>
            {s.label}
          </li>
        ))}
      </ul>
      <svg
        class="chart-svg"
        data-testid="timeline-chart"
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-labelledby="timeline-svg-title timeline-svg-desc"
        preserveAspectRatio="xMidYMid meet"
      >
        <title id="timeline-svg-title">Hourly deliveries, opens, clicks, bounces, unsubscribes and complaints</title>
        <desc id="timeline-svg-desc">{desc}</desc>
        {ticks.map((v) => (
          <g key={v}>
            <line x1={pad.l} x2={W - pad.r} y1={y(v)} y2={y(v)} class="chart-grid" />
            <text x={pad.l - 6} y={y(v) + 4} text-anchor="end" class="chart-label">
              {v}
            </text>
          </g>
        ))}
        {data.map((b, i) =>
          i % every === 0 || i === data.length - 1 ? (
            <text key={b.at} x={x(i)} y={H - pad.b + 18} text-anchor="middle" class="chart-label">
              {hourLabel(b.at, multiDay)}
            </text>
          ) : null,
        )}
        {SERIES.map((s) => (
          <g key={s.key} data-series={s.key}>
            {data.length > 1 ? (
              <polyline
                fill="none"
                stroke={s.color}
                stroke-width="2.5"
                stroke-dasharray={s.dash}
                stroke-linejoin="round"
                points={data.map((b, i) => `${x(i).toFixed(1)},${y(b[s.key]).toFixed(1)}`).join(' ')}
              />
            ) : null}
            {data.map((b, i) => (
              <circle key={b.at} cx={x(i)} cy={y(b[s.key])} r={data.length > 48 ? 0 : 3.5} fill={s.color}>
                <title>{`${s.label} ${hourLabel(b.at, true)}: ${b[s.key]}`}</title>
              </circle>
            ))}
          </g>
        ))}
      </svg>
      <details class="chart-table">
        <summary>Show the data as a table</summary>
        <DataTable rows={data} cols={TIMELINE_COLS} rowKey={(b) => b.at} />
      </details>
    </div>
  );
}

// ---------------------------------------------------------------- tables

interface Column<T> {
  label: string;
  cell: (row: T) => ComponentChildren;
  /** A number column (right-aligned); `warn`/`bad` colour it when they say so. */
  num?: boolean;
  warn?: (row: T) => boolean;
  bad?: (row: T) => boolean;
  cls?: string;
}

/** A table of numbers (stacked cards on narrow screens). */
function DataTable<T>({ rows, cols, rowKey, rowAttrs, class: cls }: {
  rows: T[];
  cols: Column<T>[];
  rowKey: (row: T, i: number) => string;
  rowAttrs?: (row: T) => Record<string, string>;
  class?: string;
}) {
  return (
    <table class={'table' + (cls ? ' ' + cls : '')}>
      <thead>
        <tr>
          {cols.map((c) => (
            <th key={c.label} scope="col" class={c.num ? 'num' : undefined}>
              {c.label}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={rowKey(r, i)} {...(rowAttrs?.(r) ?? {})}>
            {cols.map((c) => (
              <td
                key={c.label}
                data-label={c.label}
                class={
                  [c.num ? 'num' : '', c.cls ?? '', c.warn?.(r) ? 'text-warn' : '', c.bad?.(r) ? 'text-danger' : '']
                    .filter(Boolean)
                    .join(' ') || undefined
                }
              >
                {c.cell(r)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type Link = CampaignReport['links'][number];
type Domain = CampaignReport['domains'][number];
type Variant = NonNullable<CampaignReport['variants']>[number];

const LINK_COLS: Column<Link>[] = [
  {
    label: 'Link',
    cls: 'cell-url',
    cell: (l) => (
      <a href={l.url} target="_blank" rel="noopener noreferrer">
        {l.url}
      </a>
    ),
  },
  { label: 'Clicks', num: true, cell: (l) => l.clicks },
  { label: 'Unique clicks', num: true, cell: (l) => l.unique_clicks },
];

const DOMAIN_COLS: Column<Domain>[] = [
  { label: 'Domain', cls: 'cell-email', cell: (d) => d.domain },
  { label: 'Queued', num: true, cell: (d) => d.queued },
  { label: 'Delivered', num: true, cell: (d) => d.delivered },
  { label: 'Deferred', num: true, cell: (d) => d.deferred, warn: (d) => d.deferred > 0 },
  { label: 'Bounced', num: true, cell: (d) => d.bounced, bad: (d) => d.bounced > 0 },
  { label: 'Unique opens', num: true, cell: (d) => d.unique_opens },
];

const VARIANT_COLS: Column<Variant & { letter: string }>[] = [
  {
    label: 'Subject',
    cell: (v) => (
      <>
        <span class="variant-letter">{v.letter}</span> {v.subject}{' '}
        {v.winner ? <span class="badge badge-ok">winner</span> : null}
      </>
    ),
  },
  { label: 'Queued', num: true, cell: (v) => v.queued },
  { label: 'Unique opens', num: true, cell: (v) => v.unique_opens },
  { label: 'Unique clicks', num: true, cell: (v) => v.unique_clicks },
];

function LinksTable({ report }: { report: CampaignReport }) {
  return (
    <div class="card">
      <h2>Top links</h2>
      {report.links.length === 0 ? (
        <p class="muted">No clicks yet.</p>
      ) : (
        <DataTable rows={report.links} cols={LINK_COLS} rowKey={(l) => l.url} class="report-links" />
      )}
    </div>
  );
}

function DomainsTable({ report }: { report: CampaignReport }) {
  return (
    <div class="card" data-testid="report-domains">
      <h2>By recipient domain</h2>
      {report.domains.length === 0 ? (
        <p class="muted">Nothing queued yet.</p>
      ) : (
        <DataTable
          rows={report.domains}
          cols={DOMAIN_COLS}
          rowKey={(d) => d.domain}
          rowAttrs={(d) => ({ 'data-domain': d.domain })}
          class="report-domains"
        />
      )}
    </div>
  );
}

function VariantsTable({ report }: { report: CampaignReport }) {
  const rows = (report.variants ?? []).map((v, i) => ({ ...v, letter: String.fromCharCode(65 + i) }));
  return (
    <div class="card">
      <h2>Subject test (A/B)</h2>
      <DataTable rows={rows} cols={VARIANT_COLS} rowKey={(v) => v.letter} class="report-variants" />
    </div>
  );
}
