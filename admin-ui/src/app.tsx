import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, onUnauthorized, setCsrfToken, toApiError, type User, type WebhookSubscription } from './api';
import { canSeeDeliveries, canUseGdpr, ErrorBanner, Spinner, Toasts, UserContext } from './components';
import { href, navigate, useRoute } from './router';
import { LoginPage } from './pages/login';
import { ContactsPage } from './pages/contacts';
import { ContactPage } from './pages/contact';
import { ImportPage } from './pages/import';
import { ListsPage } from './pages/lists';
import { SegmentsPage } from './pages/segments';
import { PipelinePage } from './pages/pipeline';
import { LeadPage, LeadsPage } from './pages/leads';
import { AccountPage, AccountsPage } from './pages/accounts';
import { TasksPage } from './pages/tasks';
import { GdprPage } from './pages/gdpr';
import { UsersPage } from './pages/users';
import { TokensPage } from './pages/tokens';
import { DeliveriesPage } from './pages/deliveries';
import { MessagePage } from './pages/message';
import { QueuePage } from './pages/queue';
import { SuppressionsPage } from './pages/suppressions';
import { WebhooksPage, WebhookWarning } from './pages/webhooks';
import { AuditPage, canReadAudit } from './pages/audit';
import { TemplateEditorPage, TemplatesPage } from './pages/templates';
import { CampaignEditorPage, CampaignsPage } from './pages/campaigns';
import { CampaignReportPage } from './pages/report';

type SessionState = { status: 'loading' } | { status: 'anon'; expired: boolean } | { status: 'user'; user: User };

export function App() {
  const [session, setSession] = useState<SessionState>({ status: 'loading' });
  const [bootError, setBootError] = useState<ApiError | null>(null);

  const loadSession = useCallback(async () => {
    setBootError(null);
    try {
      const s = await api.getSession();
      setCsrfToken(s.csrf_token);
      setSession({ status: 'user', user: s.user });
    } catch (e) {
      const err = toApiError(e);
      setCsrfToken('');
      if (err.status === 401) setSession({ status: 'anon', expired: false });
      else {
        setBootError(err);
        setSession({ status: 'anon', expired: false });
      }
    }
  }, []);

  useEffect(() => {
    loadSession();
    onUnauthorized(() => {
      setCsrfToken('');
      setSession((s) => (s.status === 'user' ? { status: 'anon', expired: true } : s));
    });
    return () => onUnauthorized(null);
  }, [loadSession]);

  if (session.status === 'loading') {
    return (
      <main class="boot">
        <Spinner label="Loading Mailstead…" />
      </main>
    );
  }

  if (session.status === 'anon') {
    return (
      <>
        <LoginPage
          expired={session.expired}
          bootError={bootError}
          onLogin={(s) => {
            setCsrfToken(s.csrf_token);
            setSession({ status: 'user', user: s.user });
            const p = window.location.hash.replace(/^#/, '');
            if (!p || p === '/' || p.startsWith('/login')) navigate('/contacts', undefined, true);
          }}
        />
        <Toasts />
      </>
    );
  }

  return (
    <UserContext.Provider value={session.user}>
      <Shell
        user={session.user}
        onLogout={async () => {
          try {
            await api.logout();
          } catch {
            /* the session is gone either way */
          }
          setCsrfToken('');
          setSession({ status: 'anon', expired: false });
          navigate('/login', undefined, true);
        }}
      />
      <Toasts />
    </UserContext.Provider>
  );
}

interface NavItem {
  path: string;
  label: string;
  show?: (u: User) => boolean;
  also?: string[];
}

/** The sections, grouped so the top bar fits one row at desktop widths. */
const NAV: { id: string; label: string; items: NavItem[] }[] = [
  {
    id: 'audience',
    label: 'Audience',
    items: [
      { path: '/contacts', label: 'Contacts' },
      { path: '/lists', label: 'Lists' },
      { path: '/segments', label: 'Segments' },
      { path: '/import', label: 'Import' },
      { path: '/suppressions', label: 'Suppressions', show: canSeeDeliveries },
    ],
  },
  {
    id: 'sales',
    label: 'Sales',
    items: [
      { path: '/leads', label: 'Lead inbox' },
      { path: '/accounts', label: 'Accounts' },
      { path: '/pipeline', label: 'Pipeline' },
      { path: '/tasks', label: 'Tasks due' },
    ],
  },
  {
    id: 'email',
    label: 'Email',
    items: [
      { path: '/campaigns', label: 'Campaigns' },
      { path: '/templates', label: 'Templates' },
      { path: '/deliveries', label: 'Deliveries', show: canSeeDeliveries, also: ['/messages'] },
      { path: '/queue', label: 'Queue', show: canSeeDeliveries },
    ],
  },
  {
    id: 'settings',
    label: 'Settings',
    items: [
      { path: '/users', label: 'Users', show: (u) => u.role === 'admin' },
      { path: '/tokens', label: 'API tokens' },
      { path: '/webhooks', label: 'Webhooks', show: (u) => u.role === 'admin' },
      { path: '/audit', label: 'Audit', show: canReadAudit },
      { path: '/gdpr', label: 'GDPR requests', show: canUseGdpr },
    ],
  },
];

/** True while the media query matches (re-renders on change). */
function useMedia(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = () => setMatches(m.matches);
    on();
    m.addEventListener('change', on);
    return () => m.removeEventListener('change', on);
  }, [query]);
  return matches;
}

/**
 * The primary navigation: one disclosure menu per group on wide screens; on narrow screens
 * (inside the "Menu" panel) every group is listed open under its label.
 */
function NavGroups({ user, section }: { user: User; section: string }) {
  const narrow = useMedia('(max-width: 720px)');
  const [open, setOpen] = useState<string | null>(null);
  const navRef = useRef<HTMLUListElement>(null);

  useEffect(() => setOpen(null), [section]);
  // Close on a click outside or Escape (focus goes back to the group's button).
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (!navRef.current?.contains(e.target as Node)) setOpen(null);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      document.getElementById(`nav-${open}-button`)?.focus();
      setOpen(null);
    };
    document.addEventListener('mousedown', onDown);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('mousedown', onDown);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);

  return (
    <ul class="nav-groups" ref={navRef}>
      {NAV.map((g) => {
        const items = g.items.filter((n) => !n.show || n.show(user));
        if (!items.length) return null;
        const current = items.find((n) => n.path === section || n.also?.includes(section));
        const expanded = narrow || open === g.id;
        return (
          <li
            key={g.id}
            class={'nav-group' + (expanded ? ' nav-group-open' : '') + (current ? ' nav-group-current' : '')}
            data-nav-group={g.id}
            onFocusOut={(e) => {
              const next = (e as FocusEvent).relatedTarget as Node | null;
              if (!narrow && next && !e.currentTarget.contains(next)) setOpen((o) => (o === g.id ? null : o));
            }}
          >
            {narrow ? (
              <span class="nav-group-label">
                {g.label}
              </span>
            ) : (
              <button
                type="button"
                class="nav-group-button"
                id={`nav-${g.id}-button`}
                aria-expanded={expanded}
                aria-controls={`nav-${g.id}-menu`}
                onClick={() => setOpen(open === g.id ? null : g.id)}
              >
                {g.label}
                {/* the current page is announced by aria-current on its link */}
                {current ? (
                  <span class="nav-group-current-label" aria-hidden="true">
                    : {current.label}
                  </span>
                ) : null}
                <span class="nav-caret" aria-hidden="true">
                  ▾
                </span>
              </button>
            )}
            <ul class="nav-menu" id={`nav-${g.id}-menu`} hidden={!expanded}>
              {items.map((n) => (
                <li key={n.path}>
                  <a
                    href={href(n.path)}
                    aria-current={section === n.path ? 'page' : n.also?.includes(section) ? 'location' : undefined}
                    onClick={() => setOpen(null)}
                  >
                    {n.label}
                  </a>
                </li>
              ))}
            </ul>
          </li>
        );
      })}
    </ul>
  );
}

/** For admins: a warning on every page while a webhook subscription is auto-disabled. */
function useWebhookSubs(user: User, path: string): WebhookSubscription[] {
  const [subs, setSubs] = useState<WebhookSubscription[]>([]);
  useEffect(() => {
    if (user.role !== 'admin') return;
    api
      .getWebhooks()
      .then((r) => setSubs(r.items))
      .catch(() => {
        /* the warning is a hint; the Webhooks page reports errors */
      });
  }, [user.role, path]);
  return subs;
}

function Shell({ user, onLogout }: { user: User; onLogout: () => void }) {
  const route = useRoute();
  const mainRef = useRef<HTMLElement>(null);
  const [menuOpen, setMenuOpen] = useState(false);

  // Default route.
  useEffect(() => {
    if (route.path === '/' || route.path === '/login') navigate('/contacts', undefined, true);
  }, [route.path]);

  // Move focus to the new page's heading on navigation (screen readers announce it).
  const firstRender = useRef(true);
  useEffect(() => {
    setMenuOpen(false);
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    const t = setTimeout(() => {
      const h = document.getElementById('page-title');
      if (h && !mainRef.current?.contains(document.activeElement)) h.focus({ preventScroll: true });
    }, 0);
    window.scrollTo(0, 0);
    return () => clearTimeout(t);
  }, [route.path]);

  const section = '/' + (route.path.split('/')[1] ?? '');
  const hooks = useWebhookSubs(user, route.path);

  return (
    <>
      <a class="skip-link" href="#main" onClick={(e) => {
        e.preventDefault();
        mainRef.current?.focus();
      }}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href('/contacts')} aria-label="Mailstead home">
          <span class="brand-mark" aria-hidden="true">
            ✉
          </span>
          Mailstead
        </a>
        <button
          type="button"
          class="btn btn-ghost menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="primary-nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="primary-nav" class={'nav' + (menuOpen ? ' nav-open' : '')} aria-label="Primary">
          <NavGroups user={user} section={section} />
          <div class="userbox">
            <span class="user-email" data-testid="current-user" title={user.email}>
              {user.email}
            </span>
            <span class={'badge badge-role role-' + user.role} data-testid="current-role">
              {user.role}
            </span>
            <button type="button" class="btn btn-small" onClick={onLogout}>
              Log out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1} class="main">
        {section !== '/webhooks' ? <WebhookWarning subs={hooks} link /> : null}
        <Page path={route.path} query={route.query} seq={route.seq} user={user} />
      </main>
    </>
  );
}

function Page({ path, query, seq, user }: { path: string; query: URLSearchParams; seq: number; user: User }) {
  const parts = path.split('/').filter(Boolean);
  switch (parts[0]) {
    case undefined:
    case 'login':
    case 'contacts':
      if (parts.length <= 1) return <ContactsPage initialQuery={query.get('q') ?? ''} navSeq={seq} />;
      if (parts[1] === 'new') return <ContactPage key="new" id={null} />;
      return <ContactPage key={parts[1]} id={parts[1]} />;
    case 'import':
      return <ImportPage key={query.get('id') ?? ''} initialJob={query.get('id')} />;
    case 'lists':
      return <ListsPage />;
    case 'segments':
      return <SegmentsPage />;
    case 'pipeline':
      return <PipelinePage />;
    case 'leads':
      if (parts.length <= 1) return <LeadsPage key={seq} query={query} />;
      return <LeadPage key={parts[1]} id={parts[1]} />;
    case 'accounts':
      if (parts.length <= 1) return <AccountsPage key={seq} query={query} />;
      return <AccountPage key={parts[1]} id={parts[1]} />;
    case 'tasks':
      return <TasksPage />;
    case 'gdpr':
      if (!canUseGdpr(user)) return <NotAllowed message="Only administrators and managers handle GDPR requests." />;
      return <GdprPage />;
    case 'tokens':
      return <TokensPage />;
    case 'templates':
      if (parts.length <= 1) return <TemplatesPage />;
      return <TemplateEditorPage key={parts[1]} id={parts[1]} />;
    case 'campaigns':
      if (parts.length <= 1) return <CampaignsPage />;
      if (parts[2] === 'report') return <CampaignReportPage key={parts[1]} id={parts[1]} />;
      return <CampaignEditorPage key={parts[1]} id={parts[1] === 'new' ? null : parts[1]} />;
    case 'webhooks':
      if (user.role !== 'admin') return <NotAllowed message="Only administrators can manage webhooks." />;
      return <WebhooksPage />;
    case 'users':
      if (user.role !== 'admin') return <NotAllowed message="Only administrators can manage users." />;
      return <UsersPage />;
    case 'deliveries':
      if (!canSeeDeliveries(user)) return <NotAllowed message="Your role cannot read the delivery log." />;
      return <DeliveriesPage query={query} navSeq={seq} />;
    case 'messages':
      if (!parts[1]) return <NotFound />;
      return <MessagePage key={parts[1]} id={parts[1]} />;
    case 'queue':
      if (!canSeeDeliveries(user)) return <NotAllowed message="Your role cannot see the delivery queue." />;
      return <QueuePage />;
    case 'suppressions':
      if (!canSeeDeliveries(user)) return <NotAllowed message="Your role cannot see the suppression list." />;
      return <SuppressionsPage />;
    case 'audit':
      if (!canReadAudit(user)) return <NotAllowed message="Only administrators and managers can read the audit trail." />;
      return <AuditPage key={seq} query={query} />;
    default:
      return <NotFound />;
  }
}

function NotFound() {
  return (
    <section class="card">
      <h1 id="page-title" tabIndex={-1}>
        Page not found
      </h1>
      <p>
        Nothing lives here. <a href={href('/contacts')}>Go to contacts</a>.
      </p>
    </section>
  );
}

function NotAllowed({ message }: { message: string }) {
  return (
    <section class="card">
      <h1 id="page-title" tabIndex={-1}>
        Not allowed
      </h1>
      <ErrorBanner error={new ApiError(403, 'forbidden', message)} />
    </section>
  );
}
