import { useEffect, useRef, useState } from 'preact/hooks';
import { api, toApiError, type ApiError, type LibraryTemplate, type Rendered, type StoredTemplate } from '../api';
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

// ---------------------------------------------------------------- preview

const WIDTHS = [
  { px: 600, label: 'Desktop (600 px)' },
  { px: 375, label: 'Mobile (375 px)' },
  { px: 320, label: 'Small (320 px)' },
];

/**
 * An email rendered in an `<iframe srcdoc>` at a chosen width. The frame runs no scripts
 * (sandbox without allow-scripts); it shares the console's origin only so its height can
 * follow the content.
 */
export function EmailPreview({ html, title, idPrefix }: { html: string; title: string; idPrefix: string }) {
  const [width, setWidth] = useState(600);
  const [height, setHeight] = useState(640);
  const frameRef = useRef<HTMLIFrameElement>(null);

  function fit() {
    const doc = frameRef.current?.contentDocument;
    if (doc?.documentElement) setHeight(Math.max(320, Math.min(4000, doc.documentElement.scrollHeight + 4)));
  }

  return (
    <div class="email-preview">
      <fieldset class="segmented" aria-describedby={`${idPrefix}-width-hint`}>
        <legend class="sr-only">Preview width</legend>
        {WIDTHS.map((w) => (
          <label key={w.px} class={'segment' + (width === w.px ? ' segment-on' : '')}>
            <input
              type="radio"
              name={`${idPrefix}-width`}
              value={w.px}
              checked={width === w.px}
              onChange={() => setWidth(w.px)}
            />
            {w.label}
          </label>
        ))}
      </fieldset>
      <p class="sr-only" id={`${idPrefix}-width-hint`}>
        Shows the email as a desktop or phone mail app would at that width.
      </p>
      <div class="preview-stage">
        <iframe
          ref={frameRef}
          class="preview-frame"
          data-testid="preview-frame"
          data-width={width}
          title={title}
          sandbox="allow-same-origin"
          srcdoc={html}
          style={{ width: `${width}px`, height: `${height}px` }}
          onLoad={fit}
        />
      </div>
    </div>
  );
}

// ---------------------------------------------------------------- templates page

export function TemplatesPage() {
  const user = useUser();
  const writable = canEditCampaigns(user);
  const [stored, setStored] = useState<StoredTemplate[] | null>(null);
  const [library, setLibrary] = useState<LibraryTemplate[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [libError, setLibError] = useState<ApiError | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [copying, setCopying] = useState(false);
  const [toDelete, setToDelete] = useState<StoredTemplate | null>(null);
  const [deleting, setDeleting] = useState(false);

  useEffect(() => {
    api
      .getTemplates()
      .then((r) => setStored(r.items))
      .catch((e) => setError(toApiError(e)));
    api
      .getTemplateLibrary()
      .then((l) => {
        setLibrary(l);
        if (l.length) setSelected((s) => s ?? l[0].id);
      })
      .catch((e) => setLibError(toApiError(e)));
  }, []);

  const current = library?.find((t) => t.id === selected) ?? null;
  const categories = library ? [...new Set(library.map((t) => t.category))] : [];

  async function copy(t: LibraryTemplate) {
    setCopying(true);
    setLibError(null);
    try {
      const created = await api.createTemplate({ library_id: t.id });
      notify(`Copied “${t.name}” to your templates`);
      navigate(`/templates/${created.id}`);
    } catch (e) {
      setLibError(toApiError(e));
    } finally {
      setCopying(false);
    }
  }

  async function doDelete() {
    if (!toDelete) return;
    setDeleting(true);
    try {
      await api.deleteTemplate(toDelete.id);
      notify(`Deleted template “${toDelete.name}”`);
      setStored((ts) => ts?.filter((t) => t.id !== toDelete.id) ?? null);
      setError(null);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setDeleting(false);
      setToDelete(null);
    }
  }

  return (
    <section>
      <PageHeader title="Templates" />
      <div class="card">
        <h2>Your templates</h2>
        <ErrorBanner error={error} />
        {stored === null && !error ? (
          <Spinner />
        ) : stored && stored.length === 0 ? (
          <p class="muted">No templates yet. Copy one from the library below to start.</p>
        ) : stored ? (
          <table class="table templates-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Subject</th>
                <th scope="col">From the library</th>
                <th scope="col">Updated</th>
                {writable ? (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {stored.map((t) => (
                <tr key={t.id} data-template-id={t.id}>
                  <td data-label="Name">
                    <a href={href(`/templates/${t.id}`)}>
                      <strong>{t.name}</strong>
                    </a>
                  </td>
                  <td data-label="Subject">{t.subject || <span class="muted">set by the campaign</span>}</td>
                  <td data-label="From the library">{t.library_id ? <code>{t.library_id}</code> : '—'}</td>
                  <td data-label="Updated">{formatDate(t.updated_at)}</td>
                  {writable ? (
                    <td class="actions">
                      <button
                        type="button"
                        class="btn btn-small btn-danger-outline"
                        onClick={() => setToDelete(t)}
                        aria-label={`Delete ${t.name}`}
                      >
                        Delete
                      </button>
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>

      <div class="card">
        <h2 id="library-title">Template library</h2>
        <ErrorBanner error={libError} />
        {library === null && !libError ? <Spinner label="Rendering the library…" /> : null}
        {library ? (
          <div class="gallery">
            <div class="gallery-list" role="group" aria-labelledby="library-title">
              {categories.map((cat) => (
                <div key={cat}>
                  <h3 class="gallery-category">{cat}</h3>
                  <ul class="gallery-items">
                    {library
                      .filter((t) => t.category === cat)
                      .map((t) => (
                        <li key={t.id}>
                          <button
                            type="button"
                            class={'gallery-item' + (t.id === selected ? ' gallery-item-on' : '')}
                            aria-pressed={t.id === selected}
                            data-library-id={t.id}
                            onClick={() => setSelected(t.id)}
                          >
                            <strong>{t.name}</strong>
                            <span class="muted small">{t.description}</span>
                          </button>
                        </li>
                      ))}
                  </ul>
                </div>
              ))}
            </div>
            {current ? (
              <div class="gallery-preview" aria-live="polite">
                <div class="gallery-preview-head">
                  <div>
                    <h3 class="gallery-preview-title">{current.name}</h3>
                    <p class="muted small">
                      Subject: <span data-testid="library-subject">{current.subject}</span>
                    </p>
                  </div>
                  {writable ? (
                    <button type="button" class="btn btn-primary" disabled={copying} onClick={() => copy(current)}>
                      {copying ? 'Copying…' : 'Use this template'}
                    </button>
                  ) : null}
                </div>
                {current.html ? (
                  <EmailPreview html={current.html} title={`Preview of ${current.name}`} idPrefix="library" />
                ) : (
                  <p class="alert alert-info">This template cannot be previewed with the current brand settings.</p>
                )}
              </div>
            ) : null}
          </div>
        ) : null}
      </div>

      <ConfirmDialog
        open={toDelete !== null}
        title="Delete template?"
        confirmLabel="Delete template"
        danger
        busy={deleting}
        onConfirm={doDelete}
        onCancel={() => setToDelete(null)}
      >
        <p>
          The template <strong>{toDelete?.name}</strong> will be deleted. Campaigns that still use it keep it from being
          deleted.
        </p>
      </ConfirmDialog>
    </section>
  );
}

// ---------------------------------------------------------------- template editor

/** Index in `text` of 1-based (line, column). */
function offsetOf(text: string, line: number, column: number): number {
  let pos = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) return text.length;
    pos = nl + 1;
  }
  const end = text.indexOf('\n', pos);
  return Math.min(pos + Math.max(0, column - 1), end < 0 ? text.length : end);
}

/** 1-based line and column of the caret. */
function caretOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

export function TemplateEditorPage({ id }: { id: string }) {
  const user = useUser();
  const writable = canEditCampaigns(user);
  const [tpl, setTpl] = useState<StoredTemplate | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [name, setName] = useState('');
  const [subject, setSubject] = useState('');
  const [preheader, setPreheader] = useState('');
  const [mjml, setMjml] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [preview, setPreview] = useState<Rendered | null>(null);
  const [previewError, setPreviewError] = useState<ApiError | null>(null);
  const [caret, setCaret] = useState({ line: 1, column: 1 });
  const areaRef = useRef<HTMLTextAreaElement>(null);
  useFocusErrorField(error, (f) => ({ name: 'tpl-name', subject: 'tpl-subject', preheader: 'tpl-preheader' })[f] ?? '');

  async function loadPreview(tid: number) {
    try {
      setPreview(await api.previewTemplate(tid));
      setPreviewError(null);
    } catch (e) {
      setPreviewError(toApiError(e));
    }
  }

  useEffect(() => {
    api
      .getTemplate(id)
      .then((t) => {
        setTpl(t);
        setName(t.name);
        setSubject(t.subject);
        setPreheader(t.preheader);
        setMjml(t.mjml);
        loadPreview(t.id);
      })
      .catch((e) => setLoadError(toApiError(e)));
  }, [id]);

  const dirty = !!tpl && (name !== tpl.name || subject !== tpl.subject || preheader !== tpl.preheader || mjml !== tpl.mjml);
  const mjmlError = error && (error.field === 'mjml' || (error.line !== undefined && !['name', 'subject', 'preheader'].includes(error.field ?? ''))) ? error : null;

  const trackCaret = (e: { currentTarget: HTMLTextAreaElement }) =>
    setCaret(caretOf(e.currentTarget.value, e.currentTarget.selectionStart));

  function goTo(line: number, column: number) {
    const area = areaRef.current;
    if (!area) return;
    const at = offsetOf(area.value, line, column);
    area.focus();
    area.setSelectionRange(at, Math.min(at + 1, area.value.length));
    // scroll the line into view
    const lh = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 5) * lh);
    setCaret({ line, column });
  }

  async function save(e?: Event) {
    e?.preventDefault();
    if (!tpl) return;
    setBusy(true);
    setError(null);
    try {
      const t = await api.updateTemplate(tpl.id, { name: name.trim(), mjml, subject, preheader });
      setTpl(t);
      setName(t.name);
      setSubject(t.subject);
      setPreheader(t.preheader);
      setMjml(t.mjml);
      notify('Template saved');
      await loadPreview(t.id);
    } catch (err) {
      const a = toApiError(err);
      setError(a);
      if (a.line !== undefined && (a.field === 'mjml' || !a.field)) setTimeout(() => goTo(a.line!, a.column ?? 1), 0);
    } finally {
      setBusy(false);
    }
  }

  if (loadError) {
    return (
      <section>
        <p class="breadcrumb">
          <a href={href('/templates')}>← Templates</a>
        </p>
        <PageHeader title="Template" />
        <ErrorBanner error={loadError} />
      </section>
    );
  }
  if (!tpl) return <Spinner />;

  const bannerError = error && !mjmlError && !['name', 'subject', 'preheader'].includes(error.field ?? '') ? error : null;

  return (
    <section>
      <p class="breadcrumb">
        <a href={href('/templates')}>← Templates</a>
      </p>
      <PageHeader title={tpl.name}>
        {tpl.library_id ? <span class="badge">from {tpl.library_id}</span> : null}
      </PageHeader>
      <div class="editor-layout">
        <form
          class="card editor-form"
          onSubmit={save}
          noValidate
          aria-labelledby="tpl-form-title"
          onKeyDown={(e) => {
            if ((e.ctrlKey || e.metaKey) && e.key === 's') {
              e.preventDefault();
              if (writable && !busy) save();
            }
          }}
        >
          <h2 id="tpl-form-title">Edit</h2>
          <ErrorBanner error={bannerError} />
          <Field id="tpl-name" label="Name" field="name" error={error}>
            <input
              {...ctl('tpl-name', 'name', error)}
              type="text"
              value={name}
              readOnly={!writable}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </Field>
          <Field id="tpl-subject" label="Default subject" field="subject" error={error} hint="A campaign may set its own.">
            <input
              {...ctl('tpl-subject', 'subject', error, true)}
              type="text"
              value={subject}
              readOnly={!writable}
              onInput={(e) => setSubject(e.currentTarget.value)}
            />
          </Field>
          <Field id="tpl-preheader" label="Preheader" field="preheader" error={error}>
            <input
              {...ctl('tpl-preheader', 'preheader', error)}
              type="text"
              value={preheader}
              readOnly={!writable}
              onInput={(e) => setPreheader(e.currentTarget.value)}
            />
          </Field>
          <div class={'field' + (mjmlError ? ' field-invalid' : '')}>
            <label for="tpl-mjml">MJML</label>
            <p class="field-hint" id="tpl-mjml-hint">
              <code>mj-section</code>s placed inside the brand layout (header, footer with the postal address and
              unsubscribe link). Personalise with <code>{'{{ contact.first_name | default("there") }}'}</code>.
            </p>
            <textarea
              ref={areaRef}
              id="tpl-mjml"
              name="mjml"
              class="code-editor"
              spellcheck={false}
              autocomplete="off"
              wrap="off"
              rows={26}
              value={mjml}
              readOnly={!writable}
              aria-invalid={mjmlError ? 'true' : undefined}
              aria-describedby={mjmlError ? 'tpl-mjml-error' : 'tpl-mjml-hint'}
              onInput={(e) => setMjml(e.currentTarget.value)}
              onKeyUp={trackCaret}
              onClick={trackCaret}
            />
            <p class="muted small caret-pos" aria-hidden="true">
              Line {caret.line}, column {caret.column}
            </p>
            {mjmlError ? (
              <div class="field-error template-error" id="tpl-mjml-error" role="alert" data-testid="template-error">
                {mjmlError.line !== undefined ? (
                  <>
                    <strong data-testid="template-error-location">
                      Line {mjmlError.line}, column {mjmlError.column ?? 1}
                    </strong>
                    :{' '}
                  </>
                ) : null}
                {mjmlError.message}
                {mjmlError.line !== undefined ? (
                  <button
                    type="button"
                    class="btn btn-small"
                    onClick={() => goTo(mjmlError.line!, mjmlError.column ?? 1)}
                  >
                    Go to line {mjmlError.line}
                  </button>
                ) : null}
              </div>
            ) : null}
          </div>
          {writable ? (
            <div class="form-actions">
              <button type="submit" class="btn btn-primary" disabled={busy}>
                {busy ? 'Saving…' : 'Save and preview'}
              </button>
              {dirty ? <span class="muted small">Unsaved changes</span> : null}
            </div>
          ) : null}
        </form>
        <div class="card editor-preview">
          <h2>Preview</h2>
          <p class="muted small">As saved, personalised for a sample contact.</p>
          <ErrorBanner error={previewError} />
          {preview ? (
            <>
              <p class="small">
                <strong>Subject:</strong> <span data-testid="preview-subject">{preview.subject}</span>
              </p>
              <EmailPreview html={preview.html} title={`Preview of ${tpl.name}`} idPrefix="editor" />
            </>
          ) : !previewError ? (
            <Spinner label="Rendering…" />
          ) : null}
        </div>
      </div>
    </section>
  );
}
