import { useEffect, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type BoardColumn, type BoardCard } from '../api';
import { ErrorBanner, notify, PageHeader, Spinner } from '../components';

/** The pipeline board: one column per stage with counts and weighted totals; drag a card (or
 *  use its "Move to" menu, for keyboards and screen readers) to change its stage. */
export function PipelinePage() {
  const [board, setBoard] = useState<BoardColumn[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [over, setOver] = useState<string | null>(null);
  const [busy, setBusy] = useState<number | null>(null);

  function load() {
    api
      .getPipeline()
      .then((b) => {
        setBoard(b.stages);
        setError(null);
      })
      .catch((e) => setError(toApiError(e)));
  }
  useEffect(load, []);

  async function move(card: BoardCard, stage: string) {
    if (card.stage === stage) return;
    setBusy(card.id);
    try {
      await api.moveOpportunity(card.id, stage);
      notify(`${card.name} moved to ${stage}`);
      load();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(null);
    }
  }

  const cardById = (id: number): BoardCard | undefined =>
    board?.flatMap((c) => c.cards).find((c) => c.id === id);

  return (
    <section>
      <PageHeader title="Pipeline" />
      <ErrorBanner error={error} />
      {board === null && !error ? <Spinner label="Loading the pipeline…" /> : null}
      {board ? (
        <div class="pipeline" role="list" aria-label="Stages">
          {board.map((col) => (
            <section
              key={col.stage}
              role="listitem"
              class={'pipeline-col' + (over === col.stage ? ' drop-target' : '')}
              data-stage={col.stage}
              aria-labelledby={`stage-${col.stage}`}
              onDragOver={(e) => {
                e.preventDefault();
                setOver(col.stage);
              }}
              onDragLeave={() => setOver((o) => (o === col.stage ? null : o))}
              onDrop={(e) => {
                e.preventDefault();
                setOver(null);
                const id = Number(e.dataTransfer?.getData('text/plain'));
                const card = cardById(id);
                if (card) void move(card, col.stage);
              }}
            >
              <h2 id={`stage-${col.stage}`}>
                {col.stage} <span class="muted small">{col.probability}%</span>
              </h2>
              <p class="muted small" data-testid={`count-${col.stage}`}>
                {col.count} {col.count === 1 ? 'opportunity' : 'opportunities'}
              </p>
              {col.totals && col.totals.length ? (
                <ul class="plain-list small" aria-label={`Totals in ${col.stage}`}>
                  {col.totals.map((t) => (
                    <li key={t.currency}>
                      {t.amount} {t.currency} · weighted <strong>{t.weighted}</strong>
                    </li>
                  ))}
                </ul>
              ) : null}
              <ul class="pipeline-cards">
                {col.cards.map((card) => (
                  <li
                    key={card.id}
                    class={'pipeline-card' + (busy === card.id ? ' busy' : '')}
                    draggable
                    data-testid={`opp-${card.id}`}
                    onDragStart={(e) => {
                      e.dataTransfer?.setData('text/plain', String(card.id));
                      if (e.dataTransfer) e.dataTransfer.effectAllowed = 'move';
                    }}
                  >
                    <strong>{card.name}</strong>
                    {card.amount !== null && card.amount !== undefined ? (
                      <span class="small">
                        {' '}
                        {card.amount} {card.currency}
                      </span>
                    ) : null}
                    {card.expected_close ? <span class="muted small"> · closes {card.expected_close}</span> : null}
                    <label class="small">
                      <span class="sr-only">Move {card.name} to</span>
                      <select
                        value={card.stage}
                        disabled={busy === card.id}
                        onChange={(e) => void move(card, (e.target as HTMLSelectElement).value)}
                      >
                        {board.map((c) => (
                          <option key={c.stage} value={c.stage}>
                            {c.stage}
                          </option>
                        ))}
                      </select>
                    </label>
                  </li>
                ))}
              </ul>
            </section>
          ))}
        </div>
      ) : null}
    </section>
  );
}
