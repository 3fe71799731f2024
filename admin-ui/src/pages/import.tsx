import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, toApiError, type ImportJob, type MailList } from '../api';
import { canWrite, ErrorBanner, formatDate, notify, PageHeader, useUser } from '../components';
import { href, replaceQuery } from '../router';

const POLL_MS = 500;

/** Rough number of data rows (non-empty lines minus the header); only used for the progress bar. */
async function countRows(file: File): Promise<number | null> {
  if (file.size > 20 * 1024 * 1024) return null;
  const text = await file.text();
  let n = 0;
  let inQuote = false;
  let lineHasContent = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') inQuote = !inQuote;
    if (!inQuote && ch === '\n') {
      if (lineHasContent) n++;
      lineHasContent = false;
    } else if (ch !== '\r' && ch !== ' ') lineHasContent = true;
  }
  if (lineHasContent) n++;
  return Math.max(0, n - 1);
}

export function ImportPage({ initialJob }: { initialJob: string | null }) {
  const user = useUser();
  const writable = canWrite(user);
  const [lists, setLists] = useState<MailList[]>([]);
  const [file, setFile] = useState<File | null>(null);
  const [listId, setListId] = useState('');
  const [mode, setMode] = useState<'upsert' | 'create'>('upsert');
  const [error, setError] = useState<ApiError | null>(null);
  const [starting, setStarting] = useState(false);
  const [job, setJob] = useState<ImportJob | null>(null);
  const [jobId, setJobId] = useState<number | null>(initialJob && /^\d+$/.test(initialJob) ? Number(initialJob) : null);
  const [expectedRows, setExpectedRows] = useState<number | null>(null);
  const [pollError, setPollError] = useState<ApiError | null>(null);
  const [history, setHistory] = useState<ImportJob[] | null>(null);
  const fileRef = useRef<HTMLInputElement>(null);
  const justStarted = useRef<number | null>(null);

  const loadHistory = useCallback(() => {
    api
      .getImports()
      .then((r) => setHistory([...r.items].sort((a, b) => b.id - a.id)))
      .catch(() => setHistory([]));
  }, []);

  useEffect(() => {
    api
      .getLists()
      .then((r) => setLists(r.items))
      .catch((e) => setError(toApiError(e)));
    loadHistory();
  }, [loadHistory]);

  // Poll the current job every 500 ms until it is no longer running.
  useEffect(() => {
    if (jobId === null) return;
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let sawRunning = false;
    const tick = async () => {
      try {
        const j = await api.getImport(jobId);
        if (!alive) return;
        failures = 0;
        setPollError(null);
        setJob(j);
        if (j.status === 'running') {
          sawRunning = true;
          timer = setTimeout(tick, POLL_MS);
        } else {
          loadHistory();
          // Announce only imports we watched finish (not old ones opened from the history).
          if (sawRunning || justStarted.current === j.id) {
            if (j.status === 'done') notify(`Import #${j.id} finished`);
            else notify(`Import #${j.id} failed`, 'error');
          }
        }
      } catch (e) {
        if (!alive) return;
        const err = toApiError(e);
        setPollError(err);
        failures++;
        if (err.status !== 404 && err.status !== 401 && err.status !== 403 && failures < 20) {
          timer = setTimeout(tick, POLL_MS * Math.min(failures + 1, 6));
        }
      }
    };
    tick();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [jobId, loadHistory]);

  async function start(e: Event) {
    e.preventDefault();
    if (!file) {
      setError(new ApiError(0, 'required', 'Choose a CSV file to import.', 'file'));
      fileRef.current?.focus();
      return;
    }
    setError(null);
    setStarting(true);
    setJob(null);
    setPollError(null);
    try {
      countRows(file)
        .then(setExpectedRows)
        .catch(() => setExpectedRows(null));
      const res = await api.startImport(file, listId ? Number(listId) : null, mode);
      justStarted.current = res.id;
      setJobId(res.id);
      replaceQuery({ id: String(res.id) });
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setStarting(false);
    }
  }

  const running = job?.status === 'running';
  const listName = (id: string) => lists.find((l) => String(l.id) === id)?.name;
  const fileInvalid = error?.field === 'file';
  const listInvalid = error?.field === 'list';
  const modeInvalid = error?.field === 'mode';

  return (
    <section>
      <PageHeader title="Import contacts" />
      {writable ? (
        <form class="card import-form" onSubmit={start} noValidate>
          <p class="muted">
            Upload a CSV with a header row. Recognised columns: <code>email</code> (required), <code>first_name</code>,{' '}
            <code>last_name</code>, <code>company</code>, <code>phone</code>, <code>tags</code>; other columns become
            attributes.
          </p>
          <ErrorBanner error={error} id="import-error" />
          <div class={'field' + (fileInvalid ? ' field-invalid' : '')}>
            <label for="import-file">CSV file</label>
            <input
              ref={fileRef}
              id="import-file"
              name="file"
              type="file"
              accept=".csv,text/csv"
              aria-invalid={fileInvalid ? 'true' : undefined}
              aria-describedby={fileInvalid ? 'import-error' : undefined}
              onChange={(e) => {
                setFile(e.currentTarget.files?.[0] ?? null);
                if (fileInvalid) setError(null);
              }}
            />
          </div>
          <div class="row-2">
            <div class={'field' + (listInvalid ? ' field-invalid' : '')}>
              <label for="import-list">Add contacts to list</label>
              <select
                id="import-list"
                name="list"
                value={listId}
                aria-invalid={listInvalid ? 'true' : undefined}
                onChange={(e) => setListId(e.currentTarget.value)}
              >
                <option value="">No list</option>
                {lists.map((l) => (
                  <option key={l.id} value={String(l.id)}>
                    {l.name}
                  </option>
                ))}
              </select>
            </div>
            <fieldset class={'field radio-group' + (modeInvalid ? ' field-invalid' : '')}>
              <legend>Mode</legend>
              <label class="check">
                <input
                  type="radio"
                  name="mode"
                  value="upsert"
                  checked={mode === 'upsert'}
                  onChange={() => setMode('upsert')}
                />
                <span>
                  Upsert <span class="muted">— update contacts that already exist</span>
                </span>
              </label>
              <label class="check">
                <input
                  type="radio"
                  name="mode"
                  value="create"
                  checked={mode === 'create'}
                  onChange={() => setMode('create')}
                />
                <span>
                  Create only <span class="muted">— skip existing emails</span>
                </span>
              </label>
            </fieldset>
          </div>
          <div class="form-actions">
            <button type="submit" class="btn btn-primary" disabled={starting || running}>
              {starting ? 'Uploading…' : running ? 'Import running…' : 'Start import'}
            </button>
            {listId && listName(listId) ? <span class="muted">into “{listName(listId)}”</span> : null}
          </div>
        </form>
      ) : (
        <div class="alert alert-info" role="note">
          You have read-only access and cannot import contacts.
        </div>
      )}

      {jobId !== null ? (
        <ImportProgress job={job} jobId={jobId} expectedRows={expectedRows} pollError={pollError} />
      ) : null}

      <div class="card">
        <h2>Recent imports</h2>
        {history === null ? (
          <p class="muted">Loading…</p>
        ) : history.length === 0 ? (
          <p class="muted">No imports yet.</p>
        ) : (
          <table class="table table-compact">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Started</th>
                <th scope="col">Status</th>
                <th scope="col">Processed</th>
                <th scope="col">Created</th>
                <th scope="col">Updated</th>
                <th scope="col">Errors</th>
              </tr>
            </thead>
            <tbody>
              {history.slice(0, 20).map((j) => (
                <tr key={j.id}>
                  <td data-label="#">
                    <a
                      href={href('/import', { id: String(j.id) })}
                      aria-label={`Show import ${j.id}`}
                    >
                      {j.id}
                    </a>
                  </td>
                  <td data-label="Started">{formatDate(j.created_at)}</td>
                  <td data-label="Status">
                    <span class={'badge import-' + j.status}>{j.status}</span>
                  </td>
                  <td data-label="Processed">{j.processed}</td>
                  <td data-label="Created">{j.created}</td>
                  <td data-label="Updated">{j.updated}</td>
                  <td data-label="Errors">{Math.max(j.error_count ?? 0, j.errors?.length ?? 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

function ImportProgress({
  job,
  jobId,
  expectedRows,
  pollError,
}: {
  job: ImportJob | null;
  jobId: number;
  expectedRows: number | null;
  pollError: ApiError | null;
}) {
  const running = !job || job.status === 'running';
  const pct =
    job && !running
      ? 100
      : job && expectedRows && expectedRows > 0
        ? Math.min(99, Math.round((job.processed / expectedRows) * 100))
        : null;
  const errors = job?.errors ?? [];
  const errorCount = Math.max(job?.error_count ?? 0, errors.length);
  return (
    <section class="card import-progress" aria-labelledby="import-progress-title" data-testid="import-progress">
      <h2 id="import-progress-title">
        Import #{jobId}{' '}
        {job ? (
          <span class={'badge import-' + job.status} data-testid="import-status">
            {job.status}
          </span>
        ) : null}
      </h2>
      <ErrorBanner error={pollError} />
      <div
        class={'progress' + (pct === null ? ' progress-indeterminate' : '') + (job?.status === 'failed' ? ' progress-failed' : '')}
        role="progressbar"
        aria-label="Import progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct ?? undefined}
      >
        <div class="progress-bar" style={{ width: pct === null ? undefined : `${pct}%` }} />
      </div>
      <dl class="stats" aria-live="polite">
        <div>
          <dt>Processed</dt>
          <dd data-testid="import-processed">
            {job?.processed ?? 0}
            {expectedRows !== null && running ? <span class="muted"> / ~{expectedRows}</span> : null}
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd data-testid="import-created">{job?.created ?? 0}</dd>
        </div>
        <div>
          <dt>Updated</dt>
          <dd data-testid="import-updated">{job?.updated ?? 0}</dd>
        </div>
        <div>
          <dt>Skipped</dt>
          <dd data-testid="import-skipped">{job?.skipped ?? 0}</dd>
        </div>
        <div>
          <dt>Errors</dt>
          <dd data-testid="import-error-count">{errorCount}</dd>
        </div>
      </dl>
      <p class={'import-final' + (job?.status === 'failed' ? ' text-danger' : '')} role="status" data-testid="import-final">
        {!job
          ? 'Starting…'
          : job.status === 'running'
            ? 'Import in progress…'
            : job.status === 'done'
              ? `Finished ${formatDate(job.finished_at)}: ${job.created} created, ${job.updated} updated, ${job.skipped} skipped, ${errorCount} error${errorCount === 1 ? '' : 's'}.`
              : `Import failed${job.finished_at ? ' at ' + formatDate(job.finished_at) : ''}${job.message ? ': ' + job.message : '.'}`}
      </p>
      {errors.length ? (
        <>
          <h3>Rows with errors</h3>
          {errorCount > errors.length ? (
            <p class="muted">
              Showing the first {errors.length} of {errorCount} rows with errors.
            </p>
          ) : null}
          <div class="table-scroll">
            <table class="table table-compact errors-table" data-testid="import-errors">
              <thead>
                <tr>
                  <th scope="col">Line</th>
                  <th scope="col">Problem</th>
                </tr>
              </thead>
              <tbody>
                {errors.map((er, i) => (
                  <tr key={i}>
                    <td data-label="Line">{er.line}</td>
                    <td data-label="Problem">{er.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </section>
  );
}
