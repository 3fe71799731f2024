import { useState } from 'preact/hooks';
import { api, toApiError, type Activity, type ApiError } from '../api';
import { canWrite, ErrorBanner, notify, PageHeader, useUser } from '../components';
import { PagedResults, recordHref, todayISO, useCursorList, useDirectory, userLabel } from '../crm';

type Scope = 'me' | 'all';

/** Open tasks due today or earlier (overdue ones marked); ticking one marks it done. */
export function TasksPage() {
  const me = useUser();
  const users = useDirectory();
  const [scope, setScope] = useState<Scope>('me');
  const [error, setError] = useState<ApiError | null>(null);
  // ticked here: they stay listed, struck through, until the page reloads
  const [doneIds, setDoneIds] = useState<number[]>([]);
  const today = todayISO();
  const list = useCursorList<Activity>(`${scope}/${today}`, (cursor, signal) =>
    api.getActivities(
      { kind: 'task', done: false, due_before: today, owner: scope === 'me' ? 'me' : undefined, sort: 'due', cursor, limit: 100 },
      signal,
    ),
  );
  // The server filters; this keeps the page right should it ignore a filter it does not know.
  const due = list.items.filter((t) => t.kind === 'task' && !t.done && !!t.due && t.due <= today);
  const open = due.filter((t) => !doneIds.includes(t.id));

  async function markDone(t: Activity) {
    setDoneIds((d) => [...d, t.id]);
    setError(null);
    try {
      await api.updateActivity(t.id, { done: true });
      notify(`Done: ${t.subject}`);
    } catch (e) {
      setDoneIds((d) => d.filter((x) => x !== t.id));
      setError(toApiError(e));
    }
  }

  return (
    <section>
      <PageHeader title="Tasks due today" />
      <fieldset class="segmented">
        <legend class="sr-only">Whose tasks</legend>
        {(
          [
            ['me', 'Mine'],
            ['all', 'Everyone’s'],
          ] as [Scope, string][]
        ).map(([v, label]) => (
          <label key={v} class={'segment' + (scope === v ? ' segment-on' : '')}>
            <input type="radio" name="task-scope" value={v} checked={scope === v} onChange={() => setScope(v)} />
            {label}
          </label>
        ))}
      </fieldset>
      <ErrorBanner error={list.error ?? error} />
      <PagedResults
        id="task-results"
        list={{ ...list, items: open, total: list.hasMore && list.total !== null ? list.total - (due.length - open.length) : open.length }}
        noun="open task"
        plural="open tasks"
        empty="Nothing due. Well done."
      >
        <table class="table tasks-table">
          <thead>
            <tr>
              <th scope="col">Done</th>
              <th scope="col">Task</th>
              <th scope="col">Due</th>
              <th scope="col">Record</th>
              {scope === 'all' ? <th scope="col">Owner</th> : null}
            </tr>
          </thead>
          <tbody>
            {due.map((t) => {
              const ticked = doneIds.includes(t.id);
              const overdue = !!t.due && t.due < today;
              const link = recordHref(t.record);
              return (
                <tr
                  key={t.id}
                  data-testid={`task-${t.id}`}
                  data-done={ticked ? 'true' : undefined}
                  class={ticked ? 'row-done' : overdue ? 'row-overdue' : undefined}
                >
                  <td data-label="Done">
                    <input
                      type="checkbox"
                      id={`task-done-${t.id}`}
                      aria-label={`Mark “${t.subject}” done`}
                      checked={ticked}
                      disabled={ticked || !canWrite(me)}
                      onChange={() => void markDone(t)}
                    />
                  </td>
                  <td data-label="Task">
                    <span class="task-subject">{t.subject}</span>
                    {t.body ? <div class="muted small">{t.body}</div> : null}
                  </td>
                  <td data-label="Due">
                    {t.due}{' '}
                    {ticked ? (
                      <span class="badge badge-muted">done</span>
                    ) : overdue ? (
                      <span class="badge badge-bad" data-testid="overdue">
                        overdue
                      </span>
                    ) : (
                      <span class="badge badge-ok">today</span>
                    )}
                  </td>
                  <td data-label="Record">{link ? <a href={link}>{t.record}</a> : <span class="muted">—</span>}</td>
                  {scope === 'all' ? <td data-label="Owner">{userLabel(t.owner_id, me, users)}</td> : null}
                </tr>
              );
            })}
          </tbody>
        </table>
      </PagedResults>
    </section>
  );
}
