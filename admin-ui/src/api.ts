// Thin client for the Mailstead HTTP API (/api/v1). Keeps the CSRF token in memory only.

export type Role = 'admin' | 'manager' | 'sales' | 'marketing' | 'viewer';
export const ROLES: Role[] = ['admin', 'manager', 'sales', 'marketing', 'viewer'];

export interface User {
  id: number;
  email: string;
  role: Role;
  /** The user's team ("north"); a manager with a team sees only its members' CRM records. */
  team?: string | null;
  created_at?: string;
}

export interface Session {
  user: User;
  csrf_token: string;
}

export type MembershipStatus = 'confirmed' | 'unconfirmed' | 'unsubscribed';

export interface Membership {
  list_id: number;
  status: MembershipStatus;
}

export interface Consent {
  purpose: string;
  source: string;
  at: string;
  ip: string | null;
}

export interface Contact {
  id: number;
  email: string;
  first_name: string;
  last_name: string;
  company: string;
  phone: string;
  tags: string[];
  attributes: Record<string, string>;
  lists: Membership[];
  consents: Consent[];
  owner_id: number | null;
  /** The CRM account (company) the contact belongs to. */
  account_id?: number | null;
  created_at: string;
  updated_at: string;
}

export interface ContactInput {
  email?: string;
  first_name?: string;
  last_name?: string;
  company?: string;
  phone?: string;
  tags?: string[];
  attributes?: Record<string, string>;
  lists?: number[];
}

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
  total?: number | null;
}

export interface MailList {
  id: number;
  name: string;
  description: string;
  opt_in: 'single' | 'double';
  member_count: number;
  created_at: string;
}

export interface Segment {
  id: number;
  name: string;
  filter: string;
  created_by: number | null;
  created_at: string;
  updated_at: string;
}

export interface SegmentPreview {
  count: number;
  contacts: Contact[];
}

export interface ImportError {
  line: number;
  message: string;
}

export interface ImportJob {
  id: number;
  status: 'running' | 'done' | 'failed';
  processed: number;
  created: number;
  updated: number;
  skipped: number;
  errors: ImportError[];
  created_at: string;
  finished_at: string | null;
  /** Total number of bad rows when the server caps `errors` (optional). */
  error_count?: number;
  /** Why a failed import failed (optional). */
  message?: string | null;
  mode?: 'upsert' | 'create';
  list_id?: number | null;
}

export interface ApiToken {
  id: number;
  name: string;
  user_id: number;
  created_at: string;
  last_used_at: string | null;
  revoked: boolean;
}

export interface NewToken {
  id: number;
  name: string;
  token: string;
}

export type DeliveryState = 'queued' | 'sending' | 'sent' | 'deferred' | 'bounced' | 'failed';
export const DELIVERY_STATES: DeliveryState[] = ['queued', 'sending', 'sent', 'deferred', 'bounced', 'failed'];

/** One step of a recipient's delivery (an SMTP reply, a deferral, …). */
export interface DeliveryEvent {
  at: string;
  state: DeliveryState;
  code?: number;
  enhanced?: string;
  text?: string;
  mx?: string;
}

/** A recipient of an outbound message and where its delivery stands. */
export interface Delivery {
  message: number;
  index: number;
  recipient: string;
  domain: string;
  state: DeliveryState;
  attempts: number;
  next_attempt: string | null;
  /** The receiving site (MX set) once known. */
  site: string | null;
  /** A policy (5.7.x) rejection. */
  policy: boolean;
  events: DeliveryEvent[];
  created_at: string;
  updated_at: string;
}

export interface DeliveryQuery {
  recipient?: string;
  status?: DeliveryState | '';
  domain?: string;
  /** RFC 3339 */
  since?: string;
  limit?: number;
}

export interface OutMessage {
  message_id: number;
  message_id_header: string;
  /** A delivery state, or `partial` when the recipients ended differently. */
  status: DeliveryState | 'partial';
  from: string;
  subject: string;
  source: string;
  size: number;
  created_at: string;
  recipients: Delivery[];
  /** Bounces, complaints and delivery reports received about the message. */
  feedback: FeedbackRecord[];
}

export interface SiteStats {
  waiting: number;
  deferred: number;
  sent: number;
  bounced: number;
  failed: number;
}

export interface QueueHealth {
  sites: Record<string, SiteStats>;
  waiting: number;
  oldest_waiting_seconds: number | null;
}

export interface TxInput {
  from: string;
  to: string | string[];
  subject: string;
  html: string;
  text?: string;
  headers?: Record<string, string>;
  data?: Record<string, unknown>;
}

export interface TxAccepted {
  message_id: number;
  message_id_header: string;
}

export interface WebhookSubscription {
  id: number;
  url: string;
  description: string;
  events: string[];
  status: 'active' | 'disabled';
  auto_disabled: boolean;
  consecutive_failures: number;
  last_error: string | null;
  last_attempt_at: string | null;
  last_success_at: string | null;
  disabled_at: string | null;
  created_at: string;
}

export interface NewWebhookSubscription extends WebhookSubscription {
  /** Shown once. */
  secret: string;
}

export interface WebhookAttempt {
  id: number;
  delivery_id: number;
  event_id: number | null;
  event_type: string;
  attempt: number;
  at: string;
  duration_ms: number;
  status: number | null;
  error: string | null;
  response: string;
  ok: boolean;
  next_attempt_at: string | null;
}


// ---------------------------------------------------------------- campaigns & templates

/** A template of the built-in library, rendered with its sample data. */
export interface LibraryTemplate {
  id: string;
  category: string;
  name: string;
  description: string;
  subject: string;
  html: string;
}

export interface StoredTemplate {
  id: number;
  name: string;
  mjml: string;
  subject: string;
  preheader: string;
  library_id?: string;
  created_by?: number | null;
  created_at: string;
  updated_at: string;
}

export interface TemplateInput {
  name?: string;
  mjml?: string;
  subject?: string;
  preheader?: string;
  library_id?: string;
}

export interface Rendered {
  subject: string;
  preheader: string;
  html: string;
  text: string;
}

export type CampaignStatus = 'draft' | 'scheduled' | 'sending' | 'paused' | 'finished' | 'cancelled';

export interface Audience {
  lists?: number[];
  segment?: number;
  non_openers_of?: number;
}

export interface AbTest {
  subjects: string[];
  sample_percent: number;
  wait_minutes: number;
  metric: 'opens' | 'clicks';
  winner?: number | null;
  sample_done_at?: string | null;
}

export interface Campaign {
  id: number;
  name: string;
  subject: string;
  preheader: string;
  from: string;
  reply_to?: string;
  template_id: number;
  audience: Audience;
  status: CampaignStatus;
  track_opens: boolean;
  track_clicks: boolean;
  ab_test?: AbTest;
  scheduled_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  audience_size: number;
  cursor: number;
  queued: number;
  skipped: number;
  last_error?: string;
  created_at: string;
  updated_at: string;
}

export interface CampaignInput {
  name?: string;
  subject?: string;
  preheader?: string;
  from?: string;
  reply_to?: string;
  template_id?: number;
  audience?: Audience;
  track_opens?: boolean;
  track_clicks?: boolean;
}

export interface CampaignStats {
  audience: number;
  queued: number;
  skipped: number;
  delivered: number;
  pending: number;
  deferred: number;
  bounced: number;
  failed: number;
  opens: number;
  unique_opens: number;
  machine_opens: number;
  clicks: number;
  unique_clicks: number;
  machine_clicks: number;
  unsubscribes: number;
  complaints: number;
  open_rate: number;
  click_rate: number;
}

export interface CampaignView extends Campaign {
  stats: CampaignStats;
}

export interface TimelineBucket {
  /** Start of the hour (RFC 3339). */
  at: string;
  delivered: number;
  bounced: number;
  opens: number;
  clicks: number;
  unsubscribes: number;
  complaints: number;
}

export interface CampaignReport {
  stats: CampaignStats;
  timeline: TimelineBucket[];
  links: { url: string; clicks: number; unique_clicks: number }[];
  domains: { domain: string; queued: number; delivered: number; bounced: number; deferred: number; unique_opens: number }[];
  variants?: { subject: string; queued: number; unique_opens: number; unique_clicks: number; winner: boolean }[];
}

/** A saved segment (only the fields the campaign editor shows). */
export interface SegmentSummary {
  id: number;
  name: string;
}

export type CampaignAction = 'start' | 'pause' | 'resume' | 'cancel';

/** Error returned by the API (or synthesised for network failures). */
export type SuppressionReason = 'hard_bounce' | 'soft_bounces' | 'complaint' | 'unsubscribed' | 'manual';
export const SUPPRESSION_REASONS: SuppressionReason[] = ['manual', 'hard_bounce', 'soft_bounces', 'complaint', 'unsubscribed'];

export interface Suppression {
  email: string;
  reason: SuppressionReason;
  source: string;
  detail: string;
  added_by: number | null;
  created_at: string;
}

export interface FeedbackRecord {
  id: number;
  email: string;
  kind: 'bounce' | 'complaint' | 'auto_reply' | 'delivered';
  status: string;
  reply_code: string;
  reason: string;
  hard: boolean;
  feedback_type: string;
  diagnostic: string;
  source: string;
  message: number | null;
  campaign: string | null;
  action: 'suppressed' | 'unsubscribed' | 'counted' | 'sender_problem' | 'recorded';
  at: string;
}

/** An opportunity as the pipeline board shows it (amount null for roles that may not see it). */
export interface BoardCard {
  id: number;
  name: string;
  amount: string | null;
  currency: string;
  stage: string;
  probability: number;
  expected_close?: string | null;
}

export interface BoardColumn {
  stage: string;
  probability: number;
  count: number;
  totals: { currency: string; amount: string; weighted: string }[] | null;
  cards: BoardCard[];
}

export interface SuppressionPage {
  items: Suppression[];
  next: string | null;
  total: number;
}

export interface FieldChange {
  before: unknown;
  after: unknown;
  /** Personal data replaced by a keyed hash (erasure). */
  redacted?: boolean;
}

export interface AuditEntry {
  seq: number;
  at: string;
  /** "user:<id>", "cli", "system" or "anonymous". */
  actor: string;
  actor_email?: string;
  ip?: string;
  action: string;
  /** "<kind>:<id>", e.g. "contact:42". */
  record: string;
  detail?: string;
  changes: Record<string, FieldChange>;
  hash: string;
}

export interface AuditQuery {
  record?: string;
  actor?: string;
  since?: string;
}

export interface ChainReport {
  entries: number;
  last_hash: string;
  broken: { seq: number; reason: string } | null;
}

// ---------------------------------------------------------------- CRM records

export type LeadStatus = 'new' | 'contacted' | 'qualified' | 'disqualified' | 'converted';
export const LEAD_STATUSES: LeadStatus[] = ['new', 'contacted', 'qualified', 'disqualified', 'converted'];

export interface Lead {
  id: number;
  first_name: string;
  last_name: string;
  email: string;
  phone: string;
  job_title: string;
  company: string;
  website: string;
  industry: string;
  company_size: string;
  country: string;
  source: string;
  status: LeadStatus;
  score: number;
  /** The user the lead is assigned to; null is unassigned. */
  assigned_to: number | null;
  consents: Consent[];
  converted_contact_id: number | null;
  converted_account_id: number | null;
  converted_opportunity_id: number | null;
  converted_at: string | null;
  created_at: string;
  updated_at: string;
}

/** PATCH body of a lead (only the fields the console changes). */
export interface LeadPatch {
  status?: LeadStatus;
  assigned_to?: number | null;
}

/** One line of a score's breakdown (`fit: job_title contains "manager"`, `engagement: 3 clicks`). */
export interface ScorePart {
  rule: string;
  points: number;
}

export interface LeadScore {
  score: number;
  fit: number;
  engagement: number;
  /** Points set by hand (optional: older servers have none). */
  adjustment?: number;
  breakdown: ScorePart[];
}

export interface ConvertInput {
  create_opportunity: boolean;
  opportunity?: { name?: string; amount?: string; currency?: string };
}

export interface Converted {
  contact_id: number;
  account_id: number;
  opportunity_id: number | null;
}

export interface Address {
  street: string;
  city: string;
  postal_code: string;
  region: string;
  country: string;
}

export interface Account {
  id: number;
  name: string;
  domain: string;
  industry: string;
  size: string;
  address: Address;
  parent_id: number | null;
  owner_id: number | null;
  created_at: string;
  updated_at: string;
}

export interface Opportunity {
  id: number;
  name: string;
  account_id: number | null;
  contact_id: number | null;
  programme: string;
  /** null for roles that may not see amounts. */
  amount: string | null;
  currency: string;
  stage: string;
  probability: number;
  expected_close: string | null;
  owner_id: number | null;
  lost_reason: string;
  lead_id: number | null;
  created_at: string;
  updated_at: string;
}

export type ActivityKind = 'call' | 'meeting' | 'email' | 'note' | 'task';

export interface Activity {
  id: number;
  kind: ActivityKind;
  subject: string;
  body: string;
  /** `lead:5`, `contact:7`, `account:2`, `opportunity:9`. */
  record: string | null;
  /** Tasks: YYYY-MM-DD. */
  due: string | null;
  done: boolean;
  owner_id: number | null;
  created_at: string;
  updated_at: string;
}

export interface ActivityInput {
  kind?: ActivityKind;
  subject?: string;
  body?: string;
  record?: string | null;
  due?: string | null;
  done?: boolean;
}

/** Query of the CRM list routes (each optional). */
export interface CrmQuery {
  status?: string;
  /** A user id, `me` or `none`. */
  owner?: string;
  q?: string;
  sort?: string;
  cursor?: string | null;
  limit?: number;
  account?: number;
  kind?: string;
  record?: string;
  done?: boolean;
  /** YYYY-MM-DD: due on or before. */
  due_before?: string;
  /** Leads: a score of at least this. */
  min_score?: number;
}

export type TimelineRecordKind = 'lead' | 'contact' | 'account' | 'opportunity';

/** One line of a record's timeline: `activity`, `audit` or `email.*`. */
export interface TimelineItem {
  at: string;
  kind: string;
  title: string;
  /** `user:3`, `cli`, `system`. */
  actor?: string;
  /** Audit items: names of the fields that changed. */
  fields?: string[];
  activity?: Activity;
  campaign_id?: number;
}

/** A user as the assignment pickers show it. */
export interface DirectoryUser {
  id: number;
  email: string;
  role: Role;
  team?: string | null;
}

// ---------------------------------------------------------------- GDPR

export interface ConsentRecord extends Consent {
  wording?: string;
  withdrawn?: boolean;
}

export interface ConsentHistory {
  contact_id: number;
  /** Oldest first. */
  history: ConsentRecord[];
  /** Purpose → granted now. */
  current: Record<string, boolean>;
}

function auditParams(q: AuditQuery): URLSearchParams {
  const params = new URLSearchParams();
  if (q.record) params.set('record', q.record);
  if (q.actor) params.set('actor', q.actor);
  if (q.since) params.set('since', q.since);
  return params;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  /** 1-based place in the submitted text (a template, a filter) when the error has one. */
  readonly line?: number;
  readonly column?: number;
  constructor(status: number, code: string, message: string, field?: string, line?: number, column?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field || undefined;
    this.line = line;
    this.column = column;
  }
}

let csrfToken = '';
let unauthorizedHandler: (() => void) | null = null;

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called whenever an authenticated request comes back 401 (session expired/logged out). */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

interface RequestOptions {
  body?: unknown;
  /** Raw body (e.g. a CSV file); sent as-is with the given content type. */
  raw?: BodyInit;
  contentType?: string;
  signal?: AbortSignal;
  /** Do not trigger the global "show login" handler on 401. */
  quiet401?: boolean;
  /** Internal: this is the retry after refreshing the CSRF token. */
  retried?: boolean;
}

async function readError(res: Response): Promise<ApiError> {
  let code = 'http_' + res.status;
  let message = res.statusText || `Request failed (${res.status})`;
  let field: string | undefined;
  let line: number | undefined;
  let column: number | undefined;
  try {
    const text = await res.text();
    if (text) {
      try {
        const data = JSON.parse(text);
        const err = data && typeof data === 'object' ? data.error : undefined;
        if (err && typeof err === 'object') {
          if (typeof err.code === 'string') code = err.code;
          if (typeof err.message === 'string' && err.message) message = err.message;
          if (typeof err.field === 'string' && err.field) field = err.field;
          if (typeof err.line === 'number') line = err.line;
          if (typeof err.column === 'number') column = err.column;
        } else if (typeof err === 'string') {
          message = err;
        }
      } catch {
        if (text.length < 300) message = text;
      }
    }
  } catch {
    /* ignore body read errors */
  }
  if (res.status === 429 && code === 'http_429') code = 'rate_limited';
  return new ApiError(res.status, code, message, field, line, column);
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.raw !== undefined) {
    body = opts.raw;
    if (opts.contentType) headers['Content-Type'] = opts.contentType;
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) {
    headers['X-CSRF-Token'] = csrfToken;
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, credentials: 'same-origin', signal: opts.signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network_error', 'Could not reach the server. Check your connection and try again.');
  }
  if (!res.ok) {
    const err = await readError(res);
    if (res.status === 401 && !opts.quiet401 && unauthorizedHandler) unauthorizedHandler();
    // A stale CSRF token (e.g. the session was renewed in another tab): refresh it once and retry.
    if (res.status === 403 && err.code === 'csrf_failed' && !opts.retried && opts.raw === undefined) {
      try {
        const s = await request<Session>('GET', '/api/v1/session', { quiet401: true });
        if (s?.csrf_token && s.csrf_token !== csrfToken) {
          csrfToken = s.csrf_token;
          return request<T>(method, path, { ...opts, retried: true });
        }
      } catch {
        /* fall through to the original error */
      }
    }
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, 'bad_response', 'The server sent an unreadable response.');
  }
}

const enc = encodeURIComponent;

function crmParams(q: CrmQuery): URLSearchParams {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    params.set(k, String(v));
  }
  return params;
}


export const api = {
  // session
  getSession: () => request<Session>('GET', '/api/v1/session', { quiet401: true }),
  login: (email: string, password: string) =>
    request<Session>('POST', '/api/v1/session', { body: { email, password }, quiet401: true }),
  logout: () => request<void>('DELETE', '/api/v1/session', { quiet401: true }),

  // contacts
  searchContacts: (q: string, cursor: string | null, limit: number, signal?: AbortSignal) => {
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    params.set('limit', String(limit));
    if (cursor) params.set('cursor', cursor);
    return request<Page<Contact>>('GET', `/api/v1/contacts?${params}`, { signal });
  },
  getContact: (id: number | string) => request<Contact>('GET', `/api/v1/contacts/${enc(String(id))}`),
  createContact: (input: ContactInput) => request<Contact>('POST', '/api/v1/contacts', { body: input }),
  updateContact: (id: number, patch: ContactInput) =>
    request<Contact>('PATCH', `/api/v1/contacts/${id}`, { body: patch }),
  deleteContact: (id: number) => request<void>('DELETE', `/api/v1/contacts/${id}`),

  // lists
  getLists: () => request<{ items: MailList[] }>('GET', '/api/v1/lists'),
  createList: (input: { name: string; description?: string; opt_in?: 'single' | 'double' }) =>
    request<MailList>('POST', '/api/v1/lists', { body: input }),
  updateList: (id: number, patch: { name?: string; description?: string; opt_in?: 'single' | 'double' }) =>
    request<MailList>('PATCH', `/api/v1/lists/${id}`, { body: patch }),
  deleteList: (id: number) => request<void>('DELETE', `/api/v1/lists/${id}`),

  // segments
  getSegments: () => request<{ items: Segment[] }>('GET', '/api/v1/segments'),
  createSegment: (input: { name: string; filter: string }) =>
    request<Segment>('POST', '/api/v1/segments', { body: input }),
  updateSegment: (id: number, patch: { name?: string; filter?: string }) =>
    request<Segment>('PUT', `/api/v1/segments/${id}`, { body: patch }),
  deleteSegment: (id: number) => request<void>('DELETE', `/api/v1/segments/${id}`),
  segmentCount: (id: number) => request<{ id: number; count: number }>('GET', `/api/v1/segments/${id}/count`),
  previewSegment: (filter: string, limit: number, signal?: AbortSignal) =>
    request<SegmentPreview>('POST', '/api/v1/segments/preview', { body: { filter, limit }, signal }),

  // imports
  startImport: (csv: Blob, listId: number | null, mode: 'upsert' | 'create') => {
    const params = new URLSearchParams();
    if (listId !== null) params.set('list', String(listId));
    params.set('mode', mode);
    return request<{ id: number }>('POST', `/api/v1/imports?${params}`, { raw: csv, contentType: 'text/csv' });
  },
  getImport: (id: number) => request<ImportJob>('GET', `/api/v1/imports/${id}`),
  getImports: () => request<{ items: ImportJob[] }>('GET', '/api/v1/imports'),

  // users
  getUsers: () => request<{ items: User[] }>('GET', '/api/v1/users'),
  createUser: (input: { email: string; role: Role; password: string; team?: string }) =>
    request<User>('POST', '/api/v1/users', { body: input }),
  /** `team: ""` takes the user out of their team. */
  updateUser: (id: number, patch: { role?: Role; password?: string; team?: string }) =>
    request<User>('PATCH', `/api/v1/users/${id}`, { body: patch }),
  deleteUser: (id: number) => request<void>('DELETE', `/api/v1/users/${id}`),

  // tokens
  getTokens: () => request<{ items: ApiToken[] }>('GET', '/api/v1/tokens'),
  createToken: (name: string) => request<NewToken>('POST', '/api/v1/tokens', { body: { name } }),
  revokeToken: (id: number) => request<void>('DELETE', `/api/v1/tokens/${id}`),

  // delivery
  getDeliveries: (q: DeliveryQuery, signal?: AbortSignal) => {
    const params = new URLSearchParams();
    if (q.recipient) params.set('recipient', q.recipient);
    if (q.status) params.set('status', q.status);
    if (q.domain) params.set('domain', q.domain);
    if (q.since) params.set('since', q.since);
    if (q.limit) params.set('limit', String(q.limit));
    return request<{ items: Delivery[] }>('GET', `/api/v1/deliveries?${params}`, { signal });
  },
  getMessage: (id: number | string) => request<OutMessage>('GET', `/api/v1/messages/${enc(String(id))}`),
  getQueue: (signal?: AbortSignal) => request<QueueHealth>('GET', '/api/v1/queue', { signal }),
  sendTx: (input: TxInput) => request<TxAccepted>('POST', '/api/v1/tx', { body: input }),

  // suppressions and feedback
  getSuppressions: (q: string, after: string | null, limit: number, signal?: AbortSignal) => {
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    if (after) params.set('after', after);
    params.set('limit', String(limit));
    return request<SuppressionPage>('GET', `/api/v1/suppressions?${params}`, { signal });
  },
  addSuppression: (input: { email: string; reason?: SuppressionReason; note?: string }) =>
    request<Suppression>('POST', '/api/v1/suppressions', { body: input }),
  removeSuppression: (email: string) => request<void>('DELETE', `/api/v1/suppressions/${enc(email)}`),
  suppressionExportUrl: (q: string) => `/api/v1/suppressions/export${q ? `?q=${enc(q)}` : ''}`,
  getFeedbackLog: (before: number | null, limit: number) => {
    const params = new URLSearchParams();
    if (before !== null) params.set('before', String(before));
    params.set('limit', String(limit));
    return request<{ items: FeedbackRecord[]; next: number | null }>('GET', `/api/v1/feedback?${params}`);
  },
  getAudit: (q: AuditQuery, before: number | null, limit: number, signal?: AbortSignal) => {
    const params = auditParams(q);
    if (before !== null) params.set('before', String(before));
    params.set('limit', String(limit));
    return request<{ items: AuditEntry[]; next: number | null }>('GET', `/api/v1/audit?${params}`, { signal });
  },
  auditExportUrl: (q: AuditQuery, format: 'jsonl' | 'csv') => {
    const params = auditParams(q);
    params.set('format', format);
    return `/api/v1/audit/export?${params}`;
  },
  verifyAudit: () => request<ChainReport>('GET', '/api/v1/audit/verify'),
  getContactFeedback: (id: number | string) =>
    request<{ suppression: Suppression | null; feedback: FeedbackRecord[] }>(
      'GET',
      `/api/v1/contacts/${enc(String(id))}/feedback`,
    ),

  // templates
  getTemplateLibrary: () => request<LibraryTemplate[]>('GET', '/api/v1/templates/library'),
  getTemplates: () => request<{ items: StoredTemplate[] }>('GET', '/api/v1/templates'),
  getTemplate: (id: number | string) => request<StoredTemplate>('GET', `/api/v1/templates/${enc(String(id))}`),
  createTemplate: (input: TemplateInput) => request<StoredTemplate>('POST', '/api/v1/templates', { body: input }),
  updateTemplate: (id: number, input: TemplateInput) =>
    request<StoredTemplate>('PUT', `/api/v1/templates/${id}`, { body: input }),
  deleteTemplate: (id: number) => request<void>('DELETE', `/api/v1/templates/${id}`),
  previewTemplate: (id: number) => request<Rendered>('POST', `/api/v1/templates/${id}/preview`, { body: {} }),

  // campaigns
  getCampaigns: () => request<{ items: Campaign[] }>('GET', '/api/v1/campaigns'),
  getCampaign: (id: number | string) => request<CampaignView>('GET', `/api/v1/campaigns/${enc(String(id))}`),
  createCampaign: (input: CampaignInput) => request<CampaignView>('POST', '/api/v1/campaigns', { body: input }),
  updateCampaign: (id: number, input: CampaignInput) =>
    request<CampaignView>('PATCH', `/api/v1/campaigns/${id}`, { body: input }),
  deleteCampaign: (id: number) => request<void>('DELETE', `/api/v1/campaigns/${id}`),
  // CRM pipeline
  getPipeline: () => request<{ stages: BoardColumn[] }>('GET', '/api/v1/pipeline?cards=50'),
  moveOpportunity: (id: number, stage: string) =>
    request<BoardCard>('PATCH', `/api/v1/opportunities/${id}`, { body: { stage } }),
  /** Contacts an audience reaches now (members less the suppressed). */
  audienceCount: (audience: { lists?: number[]; segment?: number }) =>
    request<{ count: number }>('POST', '/api/v1/campaigns/audience-count', { body: audience }),
  campaignAction: (id: number, action: CampaignAction) =>
    request<CampaignView>('POST', `/api/v1/campaigns/${id}/${action}`),
  scheduleCampaign: (id: number, at: string) =>
    request<CampaignView>('POST', `/api/v1/campaigns/${id}/schedule`, { body: { at } }),
  testCampaign: (id: number, to: string[]) =>
    request<{ message_ids: number[] }>('POST', `/api/v1/campaigns/${id}/test`, { body: { to } }),
  getCampaignReport: (id: number | string, signal?: AbortSignal) =>
    request<CampaignReport>('GET', `/api/v1/campaigns/${enc(String(id))}/report`, { signal }),
  /** Saved segments for the audience picker, or null where the server has none (404). */
  getSegmentOptions: async (): Promise<SegmentSummary[] | null> => {
    try {
      const r = await request<{ items: SegmentSummary[] } | SegmentSummary[]>('GET', '/api/v1/segments');
      return Array.isArray(r) ? r : r?.items ?? [];
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  },

  // CRM: leads, accounts, opportunities, activities, timelines
  getLeads: (q: CrmQuery, signal?: AbortSignal) => request<Page<Lead>>('GET', `/api/v1/leads?${crmParams(q)}`, { signal }),
  getLead: (id: number | string) => request<Lead>('GET', `/api/v1/leads/${enc(String(id))}`),
  updateLead: (id: number, patch: LeadPatch) => request<Lead>('PATCH', `/api/v1/leads/${id}`, { body: patch }),
  getLeadScore: (id: number) => request<LeadScore>('GET', `/api/v1/leads/${id}/score`),
  convertLead: (id: number, input: ConvertInput) =>
    request<Converted>('POST', `/api/v1/leads/${id}/convert`, { body: input }),
  getAccounts: (q: CrmQuery, signal?: AbortSignal) =>
    request<Page<Account>>('GET', `/api/v1/accounts?${crmParams(q)}`, { signal }),
  getAccount: (id: number | string) => request<Account>('GET', `/api/v1/accounts/${enc(String(id))}`),
  getOpportunities: (q: CrmQuery) => request<Page<Opportunity>>('GET', `/api/v1/opportunities?${crmParams(q)}`),
  getActivities: (q: CrmQuery, signal?: AbortSignal) =>
    request<Page<Activity>>('GET', `/api/v1/activities?${crmParams(q)}`, { signal }),
  createActivity: (input: ActivityInput) => request<Activity>('POST', '/api/v1/activities', { body: input }),
  updateActivity: (id: number, patch: ActivityInput) =>
    request<Activity>('PATCH', `/api/v1/activities/${id}`, { body: patch }),
  getTimeline: (kind: TimelineRecordKind, id: number) =>
    request<TimelineItem[]>('GET', `/api/v1/records/${kind}/${id}/timeline`),
  /** Every user's id, email and role (for assignment pickers). */
  getUserDirectory: () => request<{ items: DirectoryUser[] }>('GET', '/api/v1/users/directory'),

  // GDPR: data-subject rights
  exportPerson: (kind: 'contacts' | 'leads', id: number) => request<unknown>('GET', `/api/v1/${kind}/${id}/export`),
  erasePerson: (kind: 'contacts' | 'leads', id: number) =>
    request<Record<string, unknown>>('POST', `/api/v1/${kind}/${id}/erase`),
  getConsents: (id: number) => request<ConsentHistory>('GET', `/api/v1/contacts/${id}/consents`),

  // outgoing webhooks (admins)
  getWebhooks: () =>
    request<{ items: WebhookSubscription[]; event_types: string[] }>('GET', '/api/v1/webhook-subscriptions'),
  createWebhook: (input: { url: string; events: string[]; description: string }) =>
    request<NewWebhookSubscription>('POST', '/api/v1/webhook-subscriptions', { body: input }),
  enableWebhook: (id: number) => request<WebhookSubscription>('POST', `/api/v1/webhook-subscriptions/${id}/enable`),
  disableWebhook: (id: number) =>
    request<WebhookSubscription>('PATCH', `/api/v1/webhook-subscriptions/${id}`, { body: { enabled: false } }),
  rotateWebhookSecret: (id: number) =>
    request<NewWebhookSubscription>('POST', `/api/v1/webhook-subscriptions/${id}/rotate-secret`),
  testWebhook: (id: number) => request<{ delivery_id: number }>('POST', `/api/v1/webhook-subscriptions/${id}/test`),
  deleteWebhook: (id: number) => request<void>('DELETE', `/api/v1/webhook-subscriptions/${id}`),
  getWebhookAttempts: (id: number, cursor?: string) => {
    const params = new URLSearchParams({ limit: '25' });
    if (cursor) params.set('cursor', cursor);
    return request<{ items: WebhookAttempt[]; next_cursor: string | null }>(
      'GET',
      `/api/v1/webhook-subscriptions/${id}/deliveries?${params}`,
    );
  },
};

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof Error) return new ApiError(0, 'client_error', e.message);
  return new ApiError(0, 'client_error', String(e));
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}
