import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError, User } from './api';

// ---------------------------------------------------------------- current user

export const UserContext = createContext<User | null>(null);

export function useUser(): User {
  const u = useContext(UserContext);
  if (!u) throw new Error('useUser outside of a logged-in layout');
  return u;
}

/** The delivery log and queue: everybody but sales (the server answers 403 to them). */
export function canSeeDeliveries(user: User): boolean {
  return user.role !== 'sales';
}

/** Everyone except viewers may change data (the server enforces the real rules). */
export function canWrite(user: User): boolean {
  return user.role !== 'viewer';
}

/** Campaigns and templates: admins, managers and marketing change them (others read). */
export function canEditCampaigns(user: User): boolean {
  return user.role === 'admin' || user.role === 'manager' || user.role === 'marketing';
}

/** GDPR tools (export, erasure): admins and managers (the server decides erasure). */
export function canUseGdpr(user: User): boolean {
  return user.role === 'admin' || user.role === 'manager';
}

// ---------------------------------------------------------------- formatting

export function formatDate(s: string | null | undefined): string {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Like formatDate, with seconds (delivery events are often seconds apart). */
export function formatTime(s: string | null | undefined): string {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** 42 s, 5 min, 2 h 3 min, 3 d 4 h */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** queued, sending, sent, deferred, bounced, failed (or a message's `partial`). */
export function DeliveryBadge({ state }: { state: string }) {
  return (
    <span class={'badge delivery-' + state} data-testid="delivery-status">
      {state}
    </span>
  );
}

export function fullName(c: { first_name: string; last_name: string }): string {
  return [c.first_name, c.last_name].filter(Boolean).join(' ');
}

// ---------------------------------------------------------------- errors & fields

export function ErrorBanner({ error, id }: { error: ApiError | null; id?: string }) {
  if (!error) return null;
  return (
    <div class="alert alert-error" role="alert" id={id}>
      <strong>{error.status === 0 ? 'Error' : titleFor(error)}:</strong> {error.message}
      {error.field ? <span class="alert-field"> (field: {error.field})</span> : null}
    </div>
  );
}

function titleFor(e: ApiError): string {
  switch (e.status) {
    case 400:
    case 422:
      return 'Invalid input';
    case 403:
      return 'Not allowed';
    case 404:
      return 'Not found';
    case 409:
      return 'Conflict';
    case 429:
      return 'Too many requests';
    default:
      return e.status >= 500 ? 'Server error' : 'Error';
  }
}

export function fieldInvalid(error: ApiError | null, field: string): boolean {
  return !!error && error.field === field;
}

interface FieldProps {
  id: string;
  label: string;
  /** API field name matched against error.field. */
  field?: string;
  error?: ApiError | null;
  hint?: string;
  children: ComponentChildren;
  class?: string;
}

/** Label + control + hint + per-field error message. The control must use the same `id`. */
export function Field({ id, label, field, error, hint, children, class: cls }: FieldProps) {
  const invalid = !!field && fieldInvalid(error ?? null, field);
  return (
    <div class={'field' + (invalid ? ' field-invalid' : '') + (cls ? ' ' + cls : '')}>
      <label for={id}>{label}</label>
      {children}
      {hint && !invalid ? (
        <p class="field-hint" id={id + '-hint'}>
          {hint}
        </p>
      ) : null}
      {invalid ? (
        <p class="field-error" id={id + '-error'}>
          {error!.message}
        </p>
      ) : null}
    </div>
  );
}

/** aria attributes for a control inside <Field>. */
export function ctl(id: string, field: string | undefined, error: ApiError | null, hint?: boolean) {
  const invalid = !!field && fieldInvalid(error, field);
  return {
    id,
    name: field ?? id,
    'aria-invalid': invalid ? ('true' as const) : undefined,
    'aria-describedby': invalid ? id + '-error' : hint ? id + '-hint' : undefined,
  };
}

/** Focus the control for the field an API error points at. */
export function useFocusErrorField(error: ApiError | null, idFor: (field: string) => string): void {
  useEffect(() => {
    if (error?.field) {
      const el = document.getElementById(idFor(error.field));
      if (el) (el as HTMLElement).focus();
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [error]);
}

// ---------------------------------------------------------------- confirm dialog

interface ConfirmProps {
  open: boolean;
  title: string;
  children?: ComponentChildren;
  confirmLabel?: string;
  danger?: boolean;
  busy?: boolean;
  confirmDisabled?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog(p: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (p.open && !d.open) {
      if (typeof d.showModal === 'function') d.showModal();
      else d.setAttribute('open', '');
    } else if (!p.open && d.open) {
      d.close();
    }
  }, [p.open]);
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        p.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          p.onConfirm();
        }}
      >
        <h2 id="confirm-title">{p.title}</h2>
        <div class="dialog-body">{p.children}</div>
        <div class="dialog-actions">
          <button type="button" class="btn" onClick={p.onCancel} disabled={p.busy}>
            Cancel
          </button>
          <button
            type="submit"
            class={'btn ' + (p.danger ? 'btn-danger' : 'btn-primary')}
            disabled={p.busy || p.confirmDisabled}
          >
            {p.busy ? 'Working…' : p.confirmLabel ?? 'Confirm'}
          </button>
        </div>
      </form>
    </dialog>
  );
}

// ---------------------------------------------------------------- toasts

type ToastKind = 'success' | 'info' | 'error';
interface Toast {
  id: number;
  text: string;
  kind: ToastKind;
}
let toastSeq = 0;
let toasts: Toast[] = [];
const toastListeners = new Set<(t: Toast[]) => void>();

export function notify(text: string, kind: ToastKind = 'success'): void {
  const t = { id: ++toastSeq, text, kind };
  toasts = [...toasts, t].slice(-3);
  toastListeners.forEach((l) => l(toasts));
  setTimeout(() => {
    toasts = toasts.filter((x) => x.id !== t.id);
    toastListeners.forEach((l) => l(toasts));
  }, 3500);
}

export function Toasts() {
  const [list, setList] = useState<Toast[]>(toasts);
  useEffect(() => {
    toastListeners.add(setList);
    return () => {
      toastListeners.delete(setList);
    };
  }, []);
  return (
    <div class="toasts" aria-live="polite" role="status">
      {list.map((t) => (
        <div key={t.id} class={'toast toast-' + t.kind}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

// ---------------------------------------------------------------- misc

/** Saves `data` as a pretty-printed JSON file through the browser's download. */
export function downloadJson(data: unknown, filename: string): void {
  const blob = new Blob([JSON.stringify(data, null, 2) + '\n'], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Mailstead`;
  }, [title]);
  return (
    <div class="page-header">
      <h1 ref={ref} tabIndex={-1} id="page-title">
        {title}
      </h1>
      {children ? <div class="page-actions">{children}</div> : null}
    </div>
  );
}

/**
 * Calls `fn` every `ms` milliseconds while the page is visible, and at once when it becomes
 * visible again; `ms` 0 stops polling.
 */
export function usePolling(fn: () => void, ms: number): void {
  useEffect(() => {
    if (!ms) return;
    let timer: ReturnType<typeof setInterval> | undefined;
    const start = () => {
      if (timer === undefined) timer = setInterval(fn, ms);
    };
    const stop = () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    };
    const onVisibility = () => {
      if (document.hidden) stop();
      else {
        fn();
        start();
      }
    };
    if (!document.hidden) start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stop();
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [fn, ms]);
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

// ---------------------------------------------------------------- secrets shown once

interface SecretRevealProps {
  title: string;
  inputId: string;
  inputLabel: string;
  value: string;
  /** "token", "secret": used in the copy messages. */
  what: string;
  onDismiss: () => void;
  children: ComponentChildren;
}

/** A panel showing a secret once, with a copy button (focus moves to it when it appears). */
export function SecretReveal({ title, inputId, inputLabel, value, what, onDismiss, children }: SecretRevealProps) {
  const [copied, setCopied] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  const panelRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    panelRef.current?.focus();
  }, []);

  async function copy() {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(value);
        ok = true;
      }
    } catch {
      ok = false;
    }
    if (!ok && inputRef.current) {
      inputRef.current.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
    }
    setCopied(ok);
    if (ok) notify(`${what[0].toUpperCase()}${what.slice(1)} copied to clipboard`);
    else {
      inputRef.current?.select();
      notify(`Copy failed — the ${what} is selected, press Ctrl+C`, 'info');
    }
  }

  const titleId = inputId + '-title';
  return (
    <div class="card token-reveal" ref={panelRef} tabIndex={-1} role="region" aria-labelledby={titleId}>
      <h2 id={titleId}>{title}</h2>
      <p>{children}</p>
      <div class="copy-row">
        <label class="sr-only" for={inputId}>
          {inputLabel}
        </label>
        <input
          ref={inputRef}
          id={inputId}
          type="text"
          readOnly
          value={value}
          class="mono"
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" class="btn btn-primary" onClick={copy}>
          {copied ? 'Copied ✓' : 'Copy'}
        </button>
      </div>
      <button type="button" class="btn btn-small" onClick={onDismiss}>
        I have stored it — hide
      </button>
    </div>
  );
}
