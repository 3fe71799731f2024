#!/usr/bin/env node
// Development stand-in for the `mailstead` binary, for front-end work while the real server is not
// available. It implements the /api/v1 contract in memory (persisted as JSON in --data-dir) closely
// enough to click through the console and to dry-run tests/e2e. It is NOT the product and has no
// security worth the name. Usage mirrors the real CLI:
//   node dev/mock-mailstead.mjs user create --data-dir DIR --email a@b.c --role admin   (password on stdin)
//   node dev/mock-mailstead.mjs token create --data-dir DIR --email a@b.c --name x        (token printed last)
//   node dev/mock-mailstead.mjs serve --data-dir DIR --listen 127.0.0.1:8443
// Transactional sends (POST /api/v1/tx) are "delivered" at once, without any SMTP: recipients
// containing "defer" are deferred with a 451, "bounce" bounced with a 550, the rest sent with a 250.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.resolve(here, '..', 'dist');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}
const cmd = process.argv.slice(2).filter((a) => !a.startsWith('--')).slice(0, 2).join(' ');
const dataDir = arg('--data-dir', './mock-data');
fs.mkdirSync(dataDir, { recursive: true });
const dbFile = path.join(dataDir, 'mock.json');

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
function load() {
  if (fs.existsSync(dbFile)) return JSON.parse(fs.readFileSync(dbFile, 'utf8'));
  return { seq: 0, users: [], contacts: [], lists: [], tokens: [], imports: [], out: [] };
}
let db = load();
db.out ??= [];
const save = () => fs.writeFileSync(dbFile, JSON.stringify(db));
const nextId = () => ++db.seq;
const hash = (s) => crypto.createHash('sha256').update(s).digest('hex');

if (cmd.startsWith('user create')) {
  const email = arg('--email');
  const role = arg('--role', 'admin');
  let password = '';
  try {
    password = fs.readFileSync(0, 'utf8').split(/\r?\n/)[0];
  } catch {
    /* no stdin */
  }
  if (!email || !password) {
    console.error('email and password (stdin) required');
    process.exit(2);
  }
  db.users.push({ id: nextId(), email, role, pw: hash(password), created_at: now() });
  save();
  console.log(`created user ${email} (${role})`);
  process.exit(0);
}

if (cmd.startsWith('token create')) {
  const u = db.users.find((x) => x.email === arg('--email'));
  if (!u) {
    console.error('no such user');
    process.exit(2);
  }
  const token = 'ms_' + crypto.randomBytes(24).toString('base64url');
  db.tokens.push({ id: nextId(), name: arg('--name', 'cli'), user_id: u.id, created_at: now(), last_used_at: null, revoked: false, hash: hash(token) });
  save();
  console.log(`created token for ${u.email}`);
  console.log(token);
  process.exit(0);
}

if (!cmd.startsWith('serve')) {
  console.error('usage: mock-mailstead.mjs (serve|user create|token create) --data-dir DIR ...');
  process.exit(2);
}

if (db.users.length === 0) {
  db.users.push({ id: nextId(), email: 'admin@example.test', role: 'admin', pw: hash('admin-password'), created_at: now() });
  save();
  console.log('no users yet: created admin@example.test / admin-password');
}

const listen = arg('--listen', '127.0.0.1:8443');
const [host, portStr] = listen.split(/:(?=\d+$)/);
const keyFile = path.join(dataDir, 'key.pem');
const certFile = path.join(dataDir, 'cert.pem');
if (!fs.existsSync(certFile)) {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', '/CN=localhost',
  ], { stdio: 'ignore' });
}

const sessions = new Map(); // sid -> { userId, csrf }

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers);
    return res.end();
  }
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(data);
}
const fail = (res, status, code, message, field) =>
  send(res, status, { error: { code, message, ...(field ? { field } : {}) } });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const publicUser = (u) => ({ id: u.id, email: u.email, role: u.role, team: u.team ?? null, created_at: u.created_at });
/** A team as the server takes it: trimmed, "" is none; over 40 characters or control characters are refused. */
const teamError = (t) => (t.length > 40 || /[\u0000-\u001f\u007f]/.test(t) ? 'A team name has at most 40 characters and no control characters.' : null);
function listWithCount(l) {
  const member_count = db.contacts.filter((c) => c.lists.some((m) => m.list_id === l.id)).length;
  return { ...l, member_count };
}

function applyContactInput(c, input, res) {
  if (input.email !== undefined) {
    const email = String(input.email).trim().toLowerCase();
    if (!EMAIL_RE.test(email)) return fail(res, 422, 'invalid_email', 'That is not a valid email address.', 'email');
    if (db.contacts.some((o) => o.email === email && o.id !== c.id))
      return fail(res, 409, 'duplicate_email', 'A contact with this email already exists.', 'email');
    c.email = email;
  }
  for (const f of ['first_name', 'last_name', 'company', 'phone']) if (input[f] !== undefined) c[f] = String(input[f]);
  if (input.tags !== undefined) c.tags = [...new Set(input.tags.map(String))];
  if (input.attributes !== undefined) c.attributes = { ...input.attributes };
  if (input.lists !== undefined) {
    for (const id of input.lists)
      if (!db.lists.some((l) => l.id === id)) return fail(res, 422, 'unknown_list', `List ${id} does not exist.`, 'lists');
    c.lists = input.lists.map((id) => c.lists.find((m) => m.list_id === id) ?? { list_id: id, status: 'confirmed' });
  }
  return true;
}

function matches(c, q) {
  const tokens = q.match(/\w+:"[^"]*"|\S+/g) ?? [];
  return tokens.every((t) => {
    const m = t.match(/^(tag|company|email|first_name|last_name|list):(.*)$/);
    if (m) {
      const v = m[2].replace(/^"|"$/g, '').toLowerCase();
      if (m[1] === 'tag') return c.tags.some((x) => x.toLowerCase() === v);
      if (m[1] === 'list') return c.lists.some((x) => String(x.list_id) === v);
      return c[m[1]].toLowerCase().includes(v);
    }
    const v = t.toLowerCase();
    const words = [c.email, c.first_name, c.last_name, c.company, ...c.tags].join(' ').toLowerCase().split(/[\s@.]+/);
    return words.some((w) => w.startsWith(v));
  });
}

function parseCsv(text) {
  // returns [{ line, fields }]
  const rows = [];
  let field = '';
  let fields = [];
  let inQ = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inQ) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') inQ = false;
      else {
        if (ch === '\n') line++;
        field += ch;
      }
    } else if (ch === '"') inQ = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      fields.push(field);
      if (fields.some((f) => f !== '')) rows.push({ line: rowLine, fields });
      fields = [];
      field = '';
      line++;
      rowLine = line;
    } else field += ch;
  }
  fields.push(field);
  if (fields.some((f) => f !== '')) rows.push({ line: rowLine, fields });
  return rows;
}

function runImport(job, text, listId, mode) {
  const rows = parseCsv(text);
  const header = (rows.shift()?.fields ?? []).map((h) => h.trim().toLowerCase());
  let i = 0;
  const step = () => {
    for (let n = 0; n < 2 && i < rows.length; n++, i++) {
      const { line, fields } = rows[i];
      const rec = Object.fromEntries(header.map((h, k) => [h, (fields[k] ?? '').trim()]));
      job.processed++;
      const email = (rec.email ?? '').toLowerCase();
      if (!EMAIL_RE.test(email)) {
        job.errors.push({ line, message: `invalid email address “${rec.email ?? ''}”` });
        continue;
      }
      let c = db.contacts.find((x) => x.email === email);
      if (c && mode === 'create') {
        job.skipped++;
        continue;
      }
      const isNew = !c;
      if (!c) {
        c = { id: nextId(), email, first_name: '', last_name: '', company: '', phone: '', tags: [], attributes: {}, lists: [], consents: [], owner_id: null, created_at: now(), updated_at: now() };
        db.contacts.push(c);
      }
      for (const [k, v] of Object.entries(rec)) {
        if (['first_name', 'last_name', 'company', 'phone'].includes(k)) c[k] = v;
        else if (k === 'tags') c.tags = v ? v.split(/[;|]/).map((s) => s.trim()).filter(Boolean) : [];
        else if (k !== 'email' && v) c.attributes[k] = v;
      }
      if (listId && !c.lists.some((m) => m.list_id === listId)) c.lists.push({ list_id: listId, status: 'confirmed' });
      c.updated_at = now();
      if (isNew) job.created++;
      else job.updated++;
    }
    if (i < rows.length) setTimeout(step, 150);
    else {
      job.status = 'done';
      job.finished_at = now();
      save();
    }
  };
  setTimeout(step, 150);
}

function serveStatic(req, res) {
  const urlPath = decodeURIComponent(new URL(req.url, 'https://x').pathname);
  let file = path.join(distDir, path.normalize(urlPath).replace(/^(\.\.[/\\])+/, ''));
  if (!file.startsWith(distDir) || !fs.existsSync(file) || fs.statSync(file).isDirectory())
    file = path.join(distDir, 'index.html');
  if (!fs.existsSync(file)) return fail(res, 404, 'not_found', 'admin-ui/dist is not built');
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
}

async function handle(req, res) {
  const url = new URL(req.url, 'https://x');
  const p = url.pathname;
  const m = req.method;
  if (p === '/healthz') return send(res, 200, { status: 'ok' });
  if (!p.startsWith('/api/')) return serveStatic(req, res);

  const cookies = Object.fromEntries((req.headers.cookie ?? '').split(/;\s*/).filter(Boolean).map((c) => c.split('=')));
  let sess = sessions.get(cookies.ms_session);
  let user = sess && db.users.find((u) => u.id === sess.userId);
  const bearer = (req.headers.authorization ?? '').match(/^Bearer (.+)$/)?.[1];
  if (!user && bearer) {
    const t = db.tokens.find((x) => x.hash === hash(bearer) && !x.revoked);
    if (t) {
      user = db.users.find((u) => u.id === t.user_id);
      t.last_used_at = now();
      sess = null;
    }
  }

  if (p === '/api/v1/session') {
    if (m === 'POST') {
      const b = JSON.parse((await readBody(req)) || '{}');
      const u = db.users.find((x) => x.email === String(b.email ?? '').toLowerCase() && x.pw === hash(b.password ?? ''));
      if (!u) return fail(res, 401, 'invalid_credentials', 'Wrong email or password.');
      const sid = crypto.randomBytes(16).toString('hex');
      const csrf = crypto.randomBytes(16).toString('hex');
      sessions.set(sid, { userId: u.id, csrf });
      return send(res, 200, { user: publicUser(u), csrf_token: csrf }, {
        'Set-Cookie': `ms_session=${sid}; Path=/; HttpOnly; Secure; SameSite=Strict`,
      });
    }
    if (!user || !sess) return fail(res, 401, 'unauthorized', 'Not logged in.');
    if (m === 'GET') return send(res, 200, { user: publicUser(user), csrf_token: sess.csrf });
    if (m === 'DELETE') {
      if (req.headers['x-csrf-token'] !== sess.csrf) return fail(res, 403, 'csrf', 'Missing or wrong CSRF token.');
      sessions.delete(cookies.ms_session);
      return send(res, 204, undefined, { 'Set-Cookie': 'ms_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict' });
    }
  }
  if (!user) return fail(res, 401, 'unauthorized', 'Not logged in.');
  if (m !== 'GET' && sess && req.headers['x-csrf-token'] !== sess.csrf)
    return fail(res, 403, 'csrf_failed', 'Missing or wrong CSRF token.');
  if (m !== 'GET' && user.role === 'viewer' && !p.startsWith('/api/v1/tokens'))
    return fail(res, 403, 'forbidden', 'Viewers cannot change data.');

  let mm;
  // contacts
  if (p === '/api/v1/contacts' && m === 'GET') {
    const q = (url.searchParams.get('q') ?? '').trim();
    const limit = Math.min(Number(url.searchParams.get('limit') ?? 25) || 25, 200);
    const offset = Number(url.searchParams.get('cursor') ?? 0) || 0;
    const all = db.contacts.filter((c) => !q || matches(c, q)).sort((a, b) => b.id - a.id);
    const items = all.slice(offset, offset + limit);
    return send(res, 200, { items, next_cursor: offset + limit < all.length ? String(offset + limit) : null, total: all.length });
  }
  if (p === '/api/v1/contacts' && m === 'POST') {
    const b = JSON.parse((await readBody(req)) || '{}');
    if (!b.email) return fail(res, 422, 'invalid_email', 'Email is required.', 'email');
    const c = { id: 0, email: '', first_name: '', last_name: '', company: '', phone: '', tags: [], attributes: {}, lists: [], consents: [{ purpose: 'marketing', source: 'admin', at: now(), ip: null }], owner_id: user.id, created_at: now(), updated_at: now() };
    if (applyContactInput(c, b, res) !== true) return;
    c.id = nextId();
    db.contacts.push(c);
    save();
    return send(res, 201, c);
  }
  if ((mm = p.match(/^\/api\/v1\/contacts\/(\d+)$/))) {
    const c = db.contacts.find((x) => x.id === Number(mm[1]));
    if (!c) return fail(res, 404, 'not_found', 'No such contact.');
    if (m === 'GET') return send(res, 200, c);
    if (m === 'PATCH') {
      const b = JSON.parse((await readBody(req)) || '{}');
      const copy = structuredClone(c);
      if (applyContactInput(copy, b, res) !== true) return;
      Object.assign(c, copy, { updated_at: now() });
      save();
      return send(res, 200, c);
    }
    if (m === 'DELETE') {
      db.contacts = db.contacts.filter((x) => x !== c);
      save();
      return send(res, 204);
    }
  }
  // lists
  if (p === '/api/v1/lists' && m === 'GET') return send(res, 200, { items: db.lists.map(listWithCount) });
  if (p === '/api/v1/lists' && m === 'POST') {
    const b = JSON.parse((await readBody(req)) || '{}');
    if (!String(b.name ?? '').trim()) return fail(res, 422, 'invalid_name', 'A list needs a name.', 'name');
    if (db.lists.some((l) => l.name === b.name)) return fail(res, 409, 'duplicate_name', 'A list with this name exists.', 'name');
    const l = { id: nextId(), name: b.name, description: b.description ?? '', opt_in: b.opt_in ?? 'single', created_at: now() };
    db.lists.push(l);
    save();
    return send(res, 201, listWithCount(l));
  }
  if ((mm = p.match(/^\/api\/v1\/lists\/(\d+)$/))) {
    const l = db.lists.find((x) => x.id === Number(mm[1]));
    if (!l) return fail(res, 404, 'not_found', 'No such list.');
    if (m === 'GET') return send(res, 200, listWithCount(l));
    if (m === 'PATCH') {
      const b = JSON.parse((await readBody(req)) || '{}');
      if (b.name !== undefined && !String(b.name).trim()) return fail(res, 422, 'invalid_name', 'A list needs a name.', 'name');
      Object.assign(l, Object.fromEntries(Object.entries(b).filter(([k]) => ['name', 'description', 'opt_in'].includes(k))));
      save();
      return send(res, 200, listWithCount(l));
    }
    if (m === 'DELETE') {
      db.lists = db.lists.filter((x) => x !== l);
      for (const c of db.contacts) c.lists = c.lists.filter((x) => x.list_id !== l.id);
      save();
      return send(res, 204);
    }
  }
  // imports
  if (p === '/api/v1/imports' && m === 'POST') {
    if (!(req.headers['content-type'] ?? '').startsWith('text/csv'))
      return fail(res, 415, 'unsupported_media_type', 'Send the CSV with Content-Type: text/csv.');
    const listId = url.searchParams.get('list') ? Number(url.searchParams.get('list')) : null;
    if (listId && !db.lists.some((l) => l.id === listId)) return fail(res, 422, 'unknown_list', 'No such list.', 'list');
    const mode = url.searchParams.get('mode') ?? 'upsert';
    const text = await readBody(req);
    const job = { id: nextId(), status: 'running', processed: 0, created: 0, updated: 0, skipped: 0, errors: [], created_at: now(), finished_at: null };
    db.imports.push(job);
    runImport(job, text, listId, mode);
    return send(res, 202, { id: job.id });
  }
  if (p === '/api/v1/imports' && m === 'GET') return send(res, 200, { items: db.imports });
  if ((mm = p.match(/^\/api\/v1\/imports\/(\d+)$/)) && m === 'GET') {
    const j = db.imports.find((x) => x.id === Number(mm[1]));
    return j ? send(res, 200, j) : fail(res, 404, 'not_found', 'No such import.');
  }
  // delivery: tx, messages, deliveries, queue
  if (p === '/api/v1/tx' && m === 'POST') {
    const b = JSON.parse((await readBody(req)) || '{}');
    const to = Array.isArray(b.to) ? b.to : [b.to];
    const addr = (s) => String(s ?? '').match(/<([^>]+)>/)?.[1] ?? String(s ?? '').trim();
    if (!EMAIL_RE.test(addr(b.from))) return fail(res, 422, 'invalid_email', 'from is not a valid email address', 'from');
    if (!to.length || !to.every((t) => EMAIL_RE.test(addr(t)))) return fail(res, 422, 'invalid_email', 'to is not a valid email address', 'to');
    const id = nextId();
    const at = now();
    const recipients = to.map((t, index) => {
      const rcpt = addr(t).toLowerCase();
      const domain = rcpt.split('@')[1];
      const [state, code, enhanced, text] = /defer/.test(rcpt)
        ? ['deferred', 451, '4.7.1', '451 4.7.1 Try again later']
        : /bounce/.test(rcpt)
          ? ['bounced', 550, '5.1.1', '550 5.1.1 No such user']
          : ['sent', 250, '2.0.0', '2.0.0 Ok: queued'];
      const mx = `mx.${domain}`;
      return {
        message: id, index, recipient: rcpt, domain, state, attempts: 1,
        next_attempt: state === 'deferred' ? new Date(Date.now() + 300_000).toISOString() : null,
        site: domain, policy: false,
        events: [{ at, state: 'queued' }, { at, state, code, enhanced, text, mx }],
        created_at: at, updated_at: at,
      };
    });
    const states = new Set(recipients.map((r) => r.state));
    db.out.push({
      message_id: id, message_id_header: `${crypto.randomBytes(8).toString('hex')}@mock.test`,
      status: states.size === 1 ? [...states][0] : 'partial', from: addr(b.from), subject: String(b.subject ?? ''),
      source: 'tx', size: JSON.stringify(b).length, created_at: at, recipients,
    });
    save();
    return send(res, 202, { message_id: id, message_id_header: db.out.at(-1).message_id_header });
  }
  if ((p === '/api/v1/deliveries' || p === '/api/v1/queue') && user.role === 'sales')
    return fail(res, 403, 'forbidden', 'sales cannot read the delivery log');
  if ((mm = p.match(/^\/api\/v1\/messages\/(\d+)$/)) && m === 'GET') {
    const msg = db.out.find((x) => x.message_id === Number(mm[1]));
    return msg ? send(res, 200, msg) : fail(res, 404, 'not_found', 'message not found');
  }
  if (p === '/api/v1/deliveries' && m === 'GET') {
    const q = url.searchParams;
    const since = q.get('since');
    if (since && Number.isNaN(Date.parse(since)))
      return fail(res, 422, 'invalid_field', 'since must be an RFC 3339 time such as 2026-11-24T10:00:00Z', 'since');
    const rcpt = (q.get('recipient') ?? '').trim().toLowerCase();
    const domain = (q.get('domain') ?? '').trim().toLowerCase();
    const items = db.out
      .flatMap((x) => x.recipients)
      .filter((d) => (!rcpt || d.recipient.includes(rcpt)) && (!domain || d.domain === domain))
      .filter((d) => (!q.get('status') || d.state === q.get('status')) && (!since || d.updated_at >= new Date(since).toISOString()))
      .sort((a, b) => b.message - a.message || b.index - a.index)
      .slice(0, Math.min(Number(q.get('limit') ?? 100) || 100, 1000));
    return send(res, 200, { items });
  }
  if (p === '/api/v1/queue' && m === 'GET') {
    const sites = {};
    let oldest = null;
    for (const d of db.out.flatMap((x) => x.recipients)) {
      const st = (sites[d.site ?? d.domain] ??= { waiting: 0, deferred: 0, sent: 0, bounced: 0, failed: 0 });
      if (['queued', 'sending', 'deferred'].includes(d.state)) {
        st.waiting++;
        if (d.state === 'deferred') st.deferred++;
        if (!oldest || d.created_at < oldest) oldest = d.created_at;
      } else st[d.state]++;
    }
    const waiting = Object.values(sites).reduce((n, s) => n + s.waiting, 0);
    const oldest_waiting_seconds = oldest ? Math.max(0, Math.round((Date.now() - Date.parse(oldest)) / 1000)) : null;
    return send(res, 200, { sites, waiting, oldest_waiting_seconds });
  }
  // users
  if (p.startsWith('/api/v1/users') && user.role !== 'admin') return fail(res, 403, 'forbidden', 'Admins only.');
  if (p === '/api/v1/users' && m === 'GET') return send(res, 200, { items: db.users.map(publicUser) });
  if (p === '/api/v1/users' && m === 'POST') {
    const b = JSON.parse((await readBody(req)) || '{}');
    if (!EMAIL_RE.test(b.email ?? '')) return fail(res, 422, 'invalid_email', 'That is not a valid email address.', 'email');
    if ((b.password ?? '').length < 8) return fail(res, 422, 'weak_password', 'Use at least 8 characters.', 'password');
    if (db.users.some((u) => u.email === b.email)) return fail(res, 409, 'duplicate_email', 'User exists.', 'email');
    const team = String(b.team ?? '').trim();
    if (teamError(team)) return fail(res, 422, 'invalid_team', teamError(team), 'team');
    const u = { id: nextId(), email: b.email.toLowerCase(), role: b.role, team: team || null, pw: hash(b.password), created_at: now() };
    db.users.push(u);
    save();
    return send(res, 201, publicUser(u));
  }
  if ((mm = p.match(/^\/api\/v1\/users\/(\d+)$/))) {
    const u = db.users.find((x) => x.id === Number(mm[1]));
    if (!u) return fail(res, 404, 'not_found', 'No such user.');
    if (m === 'PATCH') {
      const b = JSON.parse((await readBody(req)) || '{}');
      if (b.role) u.role = b.role;
      if (b.team !== undefined) {
        const team = String(b.team).trim();
        if (teamError(team)) return fail(res, 422, 'invalid_team', teamError(team), 'team');
        u.team = team || null;
      }
      if (b.password !== undefined) {
        if (b.password.length < 8) return fail(res, 422, 'weak_password', 'Use at least 8 characters.', 'password');
        u.pw = hash(b.password);
      }
      save();
      return send(res, 200, publicUser(u));
    }
    if (m === 'DELETE') {
      db.users = db.users.filter((x) => x !== u);
      save();
      return send(res, 204);
    }
  }
  // tokens
  if (p === '/api/v1/tokens' && m === 'GET') {
    const items = db.tokens
      .filter((t) => user.role === 'admin' || t.user_id === user.id)
      .map(({ hash: _h, ...t }) => t);
    return send(res, 200, { items });
  }
  if (p === '/api/v1/tokens' && m === 'POST') {
    const b = JSON.parse((await readBody(req)) || '{}');
    if (!String(b.name ?? '').trim()) return fail(res, 422, 'invalid_name', 'Give the token a name.', 'name');
    const token = 'ms_' + crypto.randomBytes(24).toString('base64url');
    const t = { id: nextId(), name: b.name, user_id: user.id, created_at: now(), last_used_at: null, revoked: false, hash: hash(token) };
    db.tokens.push(t);
    save();
    return send(res, 201, { id: t.id, name: t.name, token });
  }
  if ((mm = p.match(/^\/api\/v1\/tokens\/(\d+)$/)) && m === 'DELETE') {
    const t = db.tokens.find((x) => x.id === Number(mm[1]) && (user.role === 'admin' || x.user_id === user.id));
    if (!t) return fail(res, 404, 'not_found', 'No such token.');
    t.revoked = true;
    save();
    return send(res, 204);
  }
  return fail(res, 404, 'not_found', `No route for ${m} ${p}`);
}

const server = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) }, (req, res) => {
  handle(req, res).catch((e) => {
    console.error(e);
    if (!res.headersSent) fail(res, 500, 'internal', String(e.message ?? e));
  });
});
server.listen(Number(portStr), host, () => console.log(`mock mailstead listening on https://${listen}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
