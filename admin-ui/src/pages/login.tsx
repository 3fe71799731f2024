import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, toApiError, type Session } from '../api';
import { ErrorBanner } from '../components';

interface Props {
  expired: boolean;
  bootError: ApiError | null;
  onLogin: (s: Session) => void;
}

export function LoginPage({ expired, bootError, onLogin }: Props) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(bootError);
  const emailRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = 'Sign in · Mailstead';
    emailRef.current?.focus();
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const s = await api.login(email.trim(), password);
      onLogin(s);
    } catch (err) {
      const ae = toApiError(err);
      setError(
        ae.code === 'invalid_credentials'
          ? new ApiError(ae.status, ae.code, ae.message || 'Wrong email or password.', ae.field)
          : ae,
      );
      setPassword('');
      if (ae.field === 'email') emailRef.current?.focus();
      else passwordRef.current?.focus();
    } finally {
      setBusy(false);
    }
  }

  const invalidEmail = error?.field === 'email';
  const invalidPassword = error?.field === 'password' || error?.code === 'invalid_credentials';

  return (
    <main class="login-wrap">
      <form class="card login-card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <div class="login-brand" aria-hidden="true">
          <span class="brand-mark">✉</span> Mailstead
        </div>
        <h1 id="login-title">Sign in</h1>
        {expired && !error ? (
          <div class="alert alert-info" role="status">
            Your session has ended. Please sign in again.
          </div>
        ) : null}
        <ErrorBanner error={error} id="login-error" />
        <div class={'field' + (invalidEmail ? ' field-invalid' : '')}>
          <label for="login-email">Email</label>
          <input
            ref={emailRef}
            id="login-email"
            name="email"
            type="email"
            autoComplete="username"
            required
            value={email}
            aria-invalid={invalidEmail ? 'true' : undefined}
            aria-describedby={error ? 'login-error' : undefined}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </div>
        <div class={'field' + (invalidPassword ? ' field-invalid' : '')}>
          <label for="login-password">Password</label>
          <input
            ref={passwordRef}
            id="login-password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            aria-invalid={invalidPassword ? 'true' : undefined}
            aria-describedby={error ? 'login-error' : undefined}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </div>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy || !email || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
