//! The template engine: MJML (mrml) compiled once per campaign into an HTML template, a
//! plain-text template, a subject and a preheader, then personalised per recipient with
//! minijinja (HTML escaped by default). The brand layout (head, dark mode, header, footer) is
//! wrapped around every template body; the footer — postal address, why the recipient gets
//! the email, unsubscribe and preference links — is the engine's and cannot be removed.
//!
//! How the `{{ … }}` survive mrml: before MJML is parsed every template tag is replaced by an
//! opaque placeholder (`MSJT00001Q`), mrml renders, and the placeholders are put back; the
//! result is compiled as a minijinja template. Errors are reported at line and column of the
//! original source. No I/O, no HTTP, no storage.

pub mod brand;
mod layout;
pub mod library;

pub use brand::Brand;

use minijinja::value::{Object, Value};
use minijinja::{Environment, UndefinedBehavior};
use std::sync::Arc;

/// Which part of a template an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Subject,
    Preheader,
    Body,
    FrontMatter,
    /// The brand layout or settings (not the template author's text).
    Brand,
    /// Per-recipient rendering.
    Render,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Preheader => "preheader",
            Part::Body => "body",
            Part::FrontMatter => "front matter",
            Part::Brand => "brand",
            Part::Render => "render",
        })
    }
}

/// A template problem, located where it can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}{message}", location(.part, .line, .column, .setting.as_deref()))]
pub struct TemplateError {
    pub part: Part,
    /// 1-based line in the template file (front matter included) or in the subject/preheader.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The setting at fault, for brand problems.
    pub setting: Option<String>,
    pub message: String,
}

fn location(
    part: &Part,
    line: &Option<usize>,
    col: &Option<usize>,
    setting: Option<&str>,
) -> String {
    match (line, col, setting) {
        (_, _, Some(s)) => format!("setting {s}: "),
        (Some(l), Some(c), _) => format!("{part}, line {l}, column {c}: "),
        (Some(l), None, _) => format!("{part}, line {l}: "),
        _ => format!("{part}: "),
    }
}

impl TemplateError {
    pub(crate) fn at(part: Part, pos: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        TemplateError {
            part,
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            setting: None,
            message: message.into(),
        }
    }
    pub(crate) fn brand(setting: &str, message: impl Into<String>) -> Self {
        TemplateError {
            part: Part::Brand,
            line: None,
            column: None,
            setting: Some(setting.to_string()),
            message: message.into(),
        }
    }
}

/// Bulk mail (campaigns: footer with postal address and unsubscribe required) or
/// transactional mail (bookings, receipts: footer still shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bulk,
    Transactional,
}

/// A template as written: MJML body sections plus the subject and preheader lines.
#[derive(Debug, Clone, Default)]
pub struct TemplateSource {
    pub subject: String,
    pub preheader: String,
    /// `mj-section`/`mj-wrapper` elements placed between the brand header and footer.
    pub body: String,
    /// Line of the file on which `body` starts (1 when the body is the whole file).
    pub body_line: usize,
    /// Why the recipient gets this email (footer); the default depends on the kind.
    pub reason: Option<String>,
}

/// Variables a template sees for one recipient. Empty fields are left out so that
/// `| default(...)` applies to them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ContactVars {
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// CRM fields (account, owner, opportunity …) as the CRM module provides them.
    #[serde(default)]
    pub crm: serde_json::Map<String, serde_json::Value>,
}

impl From<&crate::model::Contact> for ContactVars {
    fn from(c: &crate::model::Contact) -> Self {
        ContactVars {
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            company: c.company.clone(),
            tags: c.tags.clone(),
            attributes: c
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            crm: Default::default(),
        }
    }
}

/// Whom the per-recipient links are for. The link builder turns this into URLs (signed ones
/// from `crate::links` use the outbound message id and recipient index).
#[derive(Debug, Clone, Default)]
pub struct LinkTarget {
    pub campaign_id: String,
    pub contact_id: u64,
    pub email: String,
    /// Outbound message id and recipient index, once the message is queued.
    pub message: Option<(u64, u32)>,
}

/// Makes the per-recipient URLs. The campaign module plugs its signed links in here.
pub trait LinkBuilder: Send + Sync {
    fn unsubscribe(&self, to: &LinkTarget) -> String;
    fn preferences(&self, to: &LinkTarget) -> String;
    fn view_in_browser(&self, to: &LinkTarget) -> String;
    /// A click-tracking URL that redirects to `url`.
    fn tracked(&self, to: &LinkTarget, url: &str) -> String;
}

/// Unsigned links under a base URL (previews, tests; the campaign module signs its own).
#[derive(Debug, Clone)]
pub struct PlainLinks {
    pub base_url: String,
}

impl LinkBuilder for PlainLinks {
    fn unsubscribe(&self, to: &LinkTarget) -> String {
        format!(
            "{}/u/{}/{}",
            self.base_url,
            pct(&to.campaign_id),
            to.contact_id
        )
    }
    fn preferences(&self, to: &LinkTarget) -> String {
        format!(
            "{}/preferences/{}/{}",
            self.base_url,
            pct(&to.campaign_id),
            to.contact_id
        )
    }
    fn view_in_browser(&self, to: &LinkTarget) -> String {
        format!(
            "{}/view/{}/{}",
            self.base_url,
            pct(&to.campaign_id),
            to.contact_id
        )
    }
    fn tracked(&self, to: &LinkTarget, url: &str) -> String {
        format!(
            "{}/r/{}/{}?u={}",
            self.base_url,
            pct(&to.campaign_id),
            to.contact_id,
            pct(url)
        )
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One personalised message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: String,
    pub preheader: String,
    pub html: String,
    pub text: String,
}

/// Per-recipient input: the contact, the message's own data (transactional sends), and whom
/// the links are for.
pub struct Recipient<'a> {
    pub contact: &'a ContactVars,
    pub data: &'a serde_json::Value,
    pub target: LinkTarget,
}

// ------------------------------------------------------------------ placeholders

const TOKEN_PREFIX: &str = "MSJT";
const TOKEN_LEN: usize = 10; // MSJT + 5 digits + Q

#[derive(Debug, Clone)]
struct Tag {
    /// The original text, `{{ … }}`, `{% … %}` or `{# … #}`.
    text: String,
    /// Byte offset in the body source; None for the layout's own tags.
    src: Option<usize>,
    block: bool,
}

/// The tags of one compilation: the body's and the layout's.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    tags: Vec<Tag>,
    unsubscribe: Option<usize>,
}

impl Tags {
    fn token(i: usize) -> String {
        format!("{TOKEN_PREFIX}{i:05}Q")
    }
    fn push(&mut self, text: &str, src: Option<usize>) -> String {
        let block = text.starts_with("{%");
        self.tags.push(Tag {
            text: text.to_string(),
            src,
            block,
        });
        Tags::token(self.tags.len() - 1)
    }
    pub(crate) fn layout(&mut self, text: &str) -> String {
        self.push(text, None)
    }
    /// Marks the last tag as the footer's unsubscribe link.
    pub(crate) fn mark_unsubscribe(&mut self) {
        self.unsubscribe = self.tags.len().checked_sub(1);
    }
}

/// Line and column (1-based, in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..floor_char(src, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Replaces each template tag of `src` by a placeholder. Returns the new text and, for each
/// position where text was replaced, (position in the new text, position in `src`).
fn tokenize(src: &str, tags: &mut Tags) -> (String, Vec<(usize, usize)>) {
    let mut out = String::with_capacity(src.len());
    let mut map = vec![(0, 0)];
    let bytes = src.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i + 1 < bytes.len() {
        let close = match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') => "}}",
            (b'{', b'%') => "%}",
            (b'{', b'#') => "#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let end = find_close(src, i + 2, close).unwrap_or(src.len());
        out.push_str(&src[last..i]);
        let tok = tags.push(&src[i..end], Some(i));
        map.push((out.len(), i));
        out.push_str(&tok);
        map.push((out.len(), end));
        i = end;
        last = end;
    }
    out.push_str(&src[last..]);
    (out, map)
}

/// The end (exclusive) of a tag whose body starts at `from`, skipping quoted strings.
fn find_close(src: &str, from: usize, close: &str) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(_) if b[i] == b'\\' => i += 1,
            Some(q) if b[i] == q => quote = None,
            Some(_) => {}
            None if close != "#}" && (b[i] == b'"' || b[i] == b'\'') => quote = Some(b[i]),
            None if src[i..].starts_with(close) => return Some(i + close.len()),
            None => {}
        }
        i += 1;
    }
    None
}

/// Maps a position in tokenized text back to the source.
fn untokenize_pos(map: &[(usize, usize)], pos: usize) -> usize {
    let idx = map.partition_point(|(o, _)| *o <= pos).saturating_sub(1);
    let (o, s) = map[idx];
    s + (pos - o)
}

/// Puts the original tags back. Returns the text and, per output occurrence, (start, end in
/// the output, tag index).
fn restore(text: &str, tags: &Tags) -> (String, Vec<(usize, usize, usize)>) {
    let mut out = String::with_capacity(text.len() + tags.tags.len() * 16);
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(p) = rest.find(TOKEN_PREFIX) {
        let cand = &rest[p..];
        let idx = cand
            .get(4..9)
            .filter(|d| {
                d.bytes().all(|b| b.is_ascii_digit()) && cand.as_bytes().get(9) == Some(&b'Q')
            })
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|i| *i < tags.tags.len());
        out.push_str(&rest[..p]);
        match idx {
            Some(i) => {
                let start = out.len();
                out.push_str(&tags.tags[i].text);
                spans.push((start, out.len(), i));
                rest = &cand[TOKEN_LEN..];
            }
            None => {
                out.push_str(TOKEN_PREFIX);
                rest = &cand[4..];
            }
        }
    }
    out.push_str(rest);
    (out, spans)
}

// ------------------------------------------------------------------ checks on the source

const RESERVED_NAMES: &[&str] = &[
    "contact",
    "campaign",
    "brand",
    "data",
    "unsubscribe_url",
    "preferences_url",
    "view_in_browser_url",
    "tracked",
    "subject",
    "preheader",
];

/// Rules for a template's own tags: no includes or inheritance, no rebinding of the
/// engine's names (the footer reads them).
fn check_tag(text: &str) -> Result<(), String> {
    if !text.starts_with("{%") {
        return Ok(());
    }
    let inner = text
        .trim_start_matches("{%")
        .trim_end_matches("%}")
        .trim_matches(|c: char| c == '-' || c == '+' || c == '~')
        .trim();
    let word = inner.split_whitespace().next().unwrap_or("");
    match word {
        "extends" | "include" | "import" | "from" | "block" | "macro" | "call" => {
            return Err(format!(
                "'{{% {word} %}}' is not available in email templates: each template is self-contained"
            ));
        }
        _ => {}
    }
    let names: Vec<&str> = match word {
        "set" => inner[3..]
            .split('=')
            .next()
            .unwrap_or("")
            .split(',')
            .collect(),
        "for" => inner[3..]
            .split(" in ")
            .next()
            .unwrap_or("")
            .split(',')
            .collect(),
        "with" => inner[4..]
            .split(',')
            .filter_map(|p| p.split('=').next())
            .collect(),
        _ => Vec::new(),
    };
    for n in names
        .iter()
        .map(|n| n.trim().trim_matches(['(', ')']).trim())
    {
        if RESERVED_NAMES.contains(&n) {
            return Err(format!(
                "'{n}' is provided by Mailstead and cannot be reassigned in a template"
            ));
        }
    }
    Ok(())
}

/// Declarations that would hide content when they sit in a stylesheet (which can reach the
/// footer); inline `style` attributes only affect their own element and may use them.
const HIDING: &[&str] = &[
    "display:none",
    "visibility:hidden",
    "opacity:0",
    "max-height:0",
    "height:0",
    "font-size:0",
    "position:absolute",
    "position:fixed",
    "clip:",
    "clip-path:",
    "transform:",
];

/// Finds attempts to hide or restyle the footer in the body source.
fn check_footer_safety(body: &str) -> Result<(), (usize, String)> {
    if let Some(p) = body.find(layout::FOOTER_CLASS) {
        return Err((
            p,
            format!(
                "'{}' names the footer, which the engine owns; templates cannot style or replace it",
                layout::FOOTER_CLASS
            ),
        ));
    }
    if let Some(p) = body.find(TOKEN_PREFIX) {
        return Err((p, format!("'{TOKEN_PREFIX}' is reserved for the engine")));
    }
    let lower = body.to_ascii_lowercase();
    for (open, close) in [
        ("<mj-style", "</mj-style>"),
        ("<style", "</style>"),
        ("<mj-head", "</mj-head>"),
    ] {
        let mut from = 0;
        while let Some(s) = lower[from..].find(open).map(|p| p + from) {
            if open == "<mj-head" {
                return Err((
                    s,
                    "the head is the layout's; use the layout's classes (mj-class h1, h2, eyebrow, small, panel, secondary) instead of mj-head".into(),
                ));
            }
            let e = lower[s..].find(close).map_or(lower.len(), |p| p + s);
            let css = &lower[s..e];
            // compare declarations without whitespace, remembering the original offsets
            let squeezed: Vec<(usize, u8)> = css
                .bytes()
                .enumerate()
                .filter(|(_, b)| !b.is_ascii_whitespace())
                .collect();
            let flat: String = squeezed.iter().map(|(_, b)| *b as char).collect();
            for h in HIDING {
                let mut at = 0;
                while let Some(p) = flat[at..].find(h).map(|p| p + at) {
                    at = p + 1;
                    let boundary = p == 0 || matches!(flat.as_bytes()[p - 1], b';' | b'{');
                    let after = flat.as_bytes().get(p + h.len()).copied();
                    let exact_zero =
                        !h.ends_with('0') || !matches!(after, Some(b'.' | b'1'..=b'9'));
                    if boundary && exact_zero {
                        return Err((
                            s + squeezed[p].0,
                            format!(
                                "a stylesheet in a template may not use '{h}…': it could hide the footer; put the style inline on the element instead"
                            ),
                        ));
                    }
                }
            }
            from = e;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ compile

/// A template compiled for one campaign: MJML rendered once, personalised per recipient.
pub struct CompiledTemplate {
    kind: Kind,
    /// Lenient (undefined prints as nothing): sending.
    send: Environment<'static>,
    /// Semi-strict (printing an undefined value fails): validation and previews.
    strict: Environment<'static>,
    brand: Value,
    /// (start, end, tag) of each placeholder in the HTML template, and the tags, to locate
    /// errors found in it.
    html_spans: Vec<(usize, usize, usize)>,
    text_spans: Vec<(usize, usize, usize)>,
    tags: Vec<Tag>,
    body_src: String,
    body_line: usize,
    html_len: usize,
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate")
            .field("kind", &self.kind)
            .field("html_len", &self.html_len)
            .finish_non_exhaustive()
    }
}

fn body_pos(src: &TemplateSource, offset: usize) -> (usize, usize) {
    let (l, c) = line_col(&src.body, offset);
    (l + src.body_line.max(1) - 1, c)
}

fn jinja_pos(source: &str, e: &minijinja::Error) -> Option<(usize, usize)> {
    match (e.range(), e.line()) {
        (Some(r), _) => Some(line_col(source, r.start)),
        (None, Some(l)) => Some((l, 1)),
        _ => None,
    }
}

fn jinja_message(e: &minijinja::Error) -> String {
    let mut m = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if e.kind() == minijinja::ErrorKind::UndefinedError && e.detail().is_none() {
        m = "a variable used here is undefined: give it a fallback with | default(\"…\") or guard it with {% if … %}".into();
    } else if e.kind() == minijinja::ErrorKind::UndefinedError {
        m.push_str(" (give it a fallback with | default(\"…\"))");
    }
    m
}

/// Compiles a template with the brand layout. Checks (each error located): template-language
/// syntax and rules, footer safety, the postal address for bulk mail, MJML validity.
pub fn compile(
    src: &TemplateSource,
    brand: &Brand,
    kind: Kind,
) -> Result<CompiledTemplate, TemplateError> {
    if kind == Kind::Bulk && brand.address_lines().is_empty() {
        return Err(TemplateError::brand(
            "postal_address",
            "bulk email must show a postal address: set postal_address in the settings or MAILSTEAD_POSTAL_ADDRESS",
        ));
    }
    if brand.company_name.trim().is_empty() {
        return Err(TemplateError::brand(
            "brand_company_name",
            "the footer and header need the company name: set brand_company_name",
        ));
    }
    // 1. template-language syntax, on the text as written
    let mut check = Environment::new();
    for (part, name, text) in [
        (Part::Subject, "subject.txt", &src.subject),
        (Part::Preheader, "preheader.txt", &src.preheader),
    ] {
        if text.contains('\n') {
            return Err(TemplateError::at(
                part,
                None,
                format!("the {part} must be one line"),
            ));
        }
        check
            .add_template_owned(name, text.clone())
            .map_err(|e| TemplateError::at(part, jinja_pos(text, &e), jinja_message(&e)))?;
    }
    if src.subject.trim().is_empty() {
        return Err(TemplateError::at(
            Part::Subject,
            None,
            "the subject is empty",
        ));
    }
    check
        .add_template_owned("body.html", src.body.clone())
        .map_err(|e| {
            let pos = e
                .range()
                .map(|r| body_pos(src, r.start))
                .or_else(|| e.line().map(|l| (l + src.body_line.max(1) - 1, 1)));
            TemplateError::at(Part::Body, pos, jinja_message(&e))
        })?;
    check_footer_safety(&src.body)
        .map_err(|(p, m)| TemplateError::at(Part::Body, Some(body_pos(src, p)), m))?;

    // 2. placeholders, layout, one mrml render
    let mut tags = Tags::default();
    let (body_tok, map) = tokenize(&src.body, &mut tags);
    for t in &tags.tags {
        if let Err(m) = check_tag(&t.text) {
            return Err(TemplateError::at(
                Part::Body,
                t.src.map(|p| body_pos(src, p)),
                m,
            ));
        }
    }
    let head = layout::head(brand, &mut tags);
    let foot = layout::footer(brand, kind, src.reason.as_deref(), &mut tags);
    let mjml = format!("{head}{body_tok}{foot}");
    let body_range = head.len()..head.len() + body_tok.len();
    let locate = |offset: usize| -> TemplateError {
        if body_range.contains(&offset) || offset == body_range.end {
            let p = untokenize_pos(&map, offset - body_range.start);
            TemplateError::at(Part::Body, Some(body_pos(src, p)), String::new())
        } else if offset >= body_range.end {
            TemplateError::at(
                Part::Body,
                Some(body_pos(src, src.body.len())),
                String::new(),
            )
        } else {
            TemplateError::at(Part::Brand, None, String::new())
        }
    };
    let html_tok = render_mjml(&mjml).map_err(|(offset, msg)| {
        let mut e = match offset {
            Some(o) => locate(o),
            None => TemplateError::at(Part::Body, Some(body_pos(src, src.body.len())), ""),
        };
        e.message = msg;
        e
    })?;

    // 3. every placeholder must have survived exactly where it can work
    let (html, html_spans) = restore(&html_tok, &tags);
    let mut seen = vec![0usize; tags.tags.len()];
    for (_, _, i) in &html_spans {
        seen[*i] += 1;
    }
    for (i, t) in tags.tags.iter().enumerate() {
        let bad = if t.block { seen[i] != 1 } else { seen[i] == 0 };
        if bad {
            let at = t.src.map(|p| body_pos(src, p));
            let part = if at.is_some() {
                Part::Body
            } else {
                Part::Brand
            };
            return Err(TemplateError::at(
                part,
                at,
                format!(
                    "{} sits where MJML {} it (for example an attribute MJML replaces, or between elements MJML repeats); put it inside mj-text, mj-button or mj-raw",
                    t.text,
                    if seen[i] == 0 { "drops" } else { "repeats" }
                ),
            ));
        }
    }
    // the footer must be intact: its unsubscribe link present and not inside a comment
    let unsub = tags
        .unsubscribe
        .and_then(|u| html_spans.iter().find(|(_, _, i)| *i == u));
    let intact = unsub.is_some_and(|(s, _, _)| {
        !inside_comment(&html, *s)
            && !html[*s..].contains(layout::FOOTER_CLASS)
            && html[..*s].contains(layout::FOOTER_CLASS)
    });
    if !intact {
        return Err(TemplateError::at(
            Part::Body,
            None,
            "the footer with the unsubscribe link would not be shown: check for an unclosed comment or element in the template",
        ));
    }

    // 4. plain text from the same HTML, placeholders kept
    let text_tok = {
        let mut h = html_tok.clone();
        if let Some(preview_tok) = tags
            .tags
            .iter()
            .position(|t| t.text == "{{ preheader }}")
            .map(Tags::token)
            && let Some(p) = h.find(&format!(">{preview_tok}"))
            && let Some(s) = h[..p].rfind("<div")
            && let Some(e) = h[p..].find("</div>")
        {
            h.replace_range(s..p + e + 6, "");
        }
        let t = crate::compose::html_to_text_with(&h, &|href| {
            href.starts_with("http")
                || href.starts_with("mailto:")
                || href.starts_with(TOKEN_PREFIX)
        });
        t.replace("{{", "{{ '{{' }}")
            .replace("{%", "{{ '{%' }}")
            .replace("{#", "{{ '{#' }}")
    };
    let (text, text_spans) = restore(&text_tok, &tags);

    // 5. the personalisation templates
    let make = |undefined: UndefinedBehavior| -> Result<Environment<'static>, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(undefined);
        env.set_keep_trailing_newline(true);
        env.add_template_owned("subject.txt", src.subject.clone())?;
        env.add_template_owned("preheader.txt", src.preheader.clone())?;
        env.add_template_owned("body.html", html.clone())?;
        env.add_template_owned("body.txt", text.clone())?;
        Ok(env)
    };
    let mut compiled = CompiledTemplate {
        kind,
        send: Environment::new(),
        strict: Environment::new(),
        brand: Value::from_serialize(BrandVars::from(brand)),
        html_spans,
        text_spans,
        tags: tags.tags,
        body_src: src.body.clone(),
        body_line: src.body_line.max(1),
        html_len: html.len(),
    };
    let envs = make(UndefinedBehavior::Chainable)
        .and_then(|s| Ok((s, make(UndefinedBehavior::SemiStrict)?)));
    match envs {
        Ok((send, strict)) => {
            compiled.send = send;
            compiled.strict = strict;
            Ok(compiled)
        }
        Err(e) => Err(compiled.locate(&e)),
    }
}

/// Collapses the blank lines that template tags leave in the plain text.
fn tidy_text(text: String) -> String {
    if !text.contains("\n\n\n") && !text.contains(" \n") {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut blanks = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blanks += 1;
            if blanks > 1 {
                continue;
            }
        } else {
            blanks = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Escapes text for HTML text or a quoted attribute (only what HTML needs; '/' stays
/// readable in URLs).
pub fn attr_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether byte `pos` of `html` lies inside an HTML comment.
fn inside_comment(html: &str, pos: usize) -> bool {
    let mut i = 0;
    while let Some(start) = html[i..].find("<!--").map(|p| p + i) {
        if start >= pos {
            return false;
        }
        match html[start + 4..].find("-->") {
            Some(e) if start + 4 + e + 3 <= pos => i = start + 4 + e + 3,
            _ => return true,
        }
    }
    false
}

/// What templates see as `brand`.
#[derive(serde::Serialize)]
struct BrandVars {
    company_name: String,
    postal_address: String,
    website: String,
    support_email: String,
    logo_url: String,
    primary_color: String,
    accent_color: String,
}

impl From<&Brand> for BrandVars {
    fn from(b: &Brand) -> Self {
        BrandVars {
            company_name: b.company_name.clone(),
            postal_address: b.address_lines().join(", "),
            website: b.website.clone(),
            support_email: b.support_email.clone(),
            logo_url: b.logo_url.clone(),
            primary_color: b.primary_color.hex(),
            accent_color: b.accent_color.hex(),
        }
    }
}

/// mrml parse + render. Errors carry a byte offset into `mjml` where mrml gives one.
fn render_mjml(mjml: &str) -> Result<String, (Option<usize>, String)> {
    use mrml::prelude::parser::Error as P;
    let parsed = mrml::parse(mjml).map_err(|e| {
        let offset = match &e {
            P::UnexpectedElement { position, .. }
            | P::UnexpectedToken { position, .. }
            | P::MissingAttribute { position, .. }
            | P::InvalidAttribute { position, .. }
            | P::InvalidFormat { position, .. }
            | P::IncludeLoaderError { position, .. } => Some(position.start),
            P::ParserError { source, .. } => {
                let tp = source.pos();
                let line_start: usize = mjml
                    .split_inclusive('\n')
                    .take((tp.row as usize).saturating_sub(1))
                    .map(str::len)
                    .sum();
                let line = &mjml[line_start..];
                Some(
                    line_start
                        + line
                            .chars()
                            .take((tp.col as usize).saturating_sub(1))
                            .map(char::len_utf8)
                            .sum::<usize>(),
                )
            }
            _ => None,
        };
        let msg = match &e {
            P::UnexpectedElement { .. } => {
                "invalid MJML: this element is not allowed here".to_string()
            }
            P::UnexpectedToken { .. } => "invalid MJML: unexpected text or tag here".to_string(),
            P::MissingAttribute { name, .. } => {
                format!("invalid MJML: the element needs a {name} attribute")
            }
            P::InvalidAttribute { .. } => "invalid MJML: invalid attribute".to_string(),
            P::InvalidFormat { .. } => "invalid MJML: invalid value".to_string(),
            P::ParserError { source, .. } => {
                format!("invalid MJML: {}", strip_pos(&source.to_string()))
            }
            P::EndOfStream { .. } => {
                "invalid MJML: the template ends before every element is closed".to_string()
            }
            P::IncludeLoaderError { .. } => {
                "mj-include is not available in email templates".to_string()
            }
            other => format!("invalid MJML: {other}"),
        };
        (offset, msg)
    })?;
    let opts = mrml::prelude::render::RenderOptions {
        disable_comments: true,
        social_icon_origin: Some("https://invalid.invalid/".into()),
        fonts: Default::default(),
    };
    parsed
        .element
        .render(&opts)
        .map_err(|e| (None, format!("MJML could not be rendered: {e}")))
}

fn strip_pos(s: &str) -> String {
    // htmlparser says "… at 3:14 cause …": the location is ours to give
    match s.split_once(" at ") {
        Some((a, b)) => match b.split_once(" cause ") {
            Some((_, cause)) => format!("{a}: {cause}"),
            None => a.to_string(),
        },
        None => s.to_string(),
    }
}

impl CompiledTemplate {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Locates an error minijinja found in the compiled HTML or text at its tag in the source.
    fn locate(&self, e: &minijinja::Error) -> TemplateError {
        let message = jinja_message(e);
        let (spans, part) = match e.name() {
            Some("subject.txt") => {
                return TemplateError::at(Part::Subject, e.line().map(|l| (l, 1)), message);
            }
            Some("preheader.txt") => {
                return TemplateError::at(Part::Preheader, e.line().map(|l| (l, 1)), message);
            }
            Some("body.txt") => (&self.text_spans, Part::Body),
            _ => (&self.html_spans, Part::Body),
        };
        let tag = e.range().and_then(|r| {
            spans
                .iter()
                .filter(|(s, _, _)| *s <= r.start)
                .max_by_key(|(s, _, _)| *s)
                .map(|(_, _, i)| *i)
        });
        match tag.and_then(|i| self.tags.get(i)) {
            Some(Tag { src: Some(p), .. }) => {
                let (l, c) = line_col(&self.body_src, *p);
                TemplateError::at(part, Some((l + self.body_line - 1, c)), message)
            }
            _ => TemplateError::at(part, None, message),
        }
    }

    fn render_in(
        &self,
        env: &Environment<'static>,
        r: &Recipient,
        campaign: &Value,
        links: &Arc<dyn LinkBuilder>,
    ) -> Result<Rendered, TemplateError> {
        let target = Arc::new(r.target.clone());
        let urls = [
            links.unsubscribe(&target),
            links.preferences(&target),
            links.view_in_browser(&target),
        ];
        let base = minijinja::context! {
            contact => Value::from_serialize(r.contact),
            campaign => campaign.clone(),
            brand => self.brand.clone(),
            data => Value::from_serialize(r.data),
            tracked => Value::from_object(Tracked { links: links.clone(), target }),
        };
        // URLs go into HTML attribute-escaped only, so they stay readable in the source
        let with_urls = |html: bool, subject: Value, preheader: Value| {
            let u = |s: &String| {
                if html {
                    Value::from_safe_string(attr_escape(s))
                } else {
                    Value::from(s.as_str())
                }
            };
            minijinja::context! {
                unsubscribe_url => u(&urls[0]),
                preferences_url => u(&urls[1]),
                view_in_browser_url => u(&urls[2]),
                subject => subject,
                preheader => preheader,
                ..base.clone()
            }
        };
        let get = |n: &str| env.get_template(n).map_err(|e| self.locate(&e));
        let one_line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let text_ctx = with_urls(false, Value::UNDEFINED, Value::UNDEFINED);
        let subject = one_line(
            get("subject.txt")?
                .render(&text_ctx)
                .map_err(|e| self.locate(&e))?,
        );
        let preheader = one_line(
            get("preheader.txt")?
                .render(&text_ctx)
                .map_err(|e| self.locate(&e))?,
        );
        let (sv, pv) = (
            Value::from(subject.as_str()),
            Value::from(preheader.as_str()),
        );
        let html = get("body.html")?
            .render(with_urls(true, sv.clone(), pv.clone()))
            .map_err(|e| self.locate(&e))?;
        let text = tidy_text(
            get("body.txt")?
                .render(with_urls(false, sv, pv))
                .map_err(|e| self.locate(&e))?,
        );
        Ok(Rendered {
            subject,
            preheader,
            html,
            text,
        })
    }
    /// Personalises for one recipient. Undefined values print as nothing (validation has
    /// already insisted on fallbacks).
    pub fn render(
        &self,
        r: &Recipient,
        campaign: &Value,
        links: &Arc<dyn LinkBuilder>,
    ) -> Result<Rendered, TemplateError> {
        self.render_in(&self.send, r, campaign, links)
    }

    /// Renders strictly: printing an undefined value is an error, located in the source.
    pub fn render_strict(
        &self,
        r: &Recipient,
        campaign: &Value,
        links: &Arc<dyn LinkBuilder>,
    ) -> Result<Rendered, TemplateError> {
        self.render_in(&self.strict, r, campaign, links)
    }

    /// Checks the template before anything is sent: strictly with the sample recipient, and
    /// again with a contact that has nothing but an email address (so every optional contact
    /// field needs a `| default(...)` or an `{% if %}`).
    pub fn validate(&self, sample: &Sample) -> Result<Rendered, TemplateError> {
        let links: Arc<dyn LinkBuilder> = Arc::new(PlainLinks {
            base_url: "https://mailstead.invalid".into(),
        });
        let campaign = Value::from_serialize(&sample.campaign);
        let full = Recipient {
            contact: &sample.contact,
            data: &sample.data,
            target: LinkTarget::default(),
        };
        let rendered = self.render_strict(&full, &campaign, &links)?;
        let bare = ContactVars {
            email: sample.contact.email.clone(),
            ..ContactVars::default()
        };
        let minimal = Recipient {
            contact: &bare,
            data: &sample.data,
            target: LinkTarget::default(),
        };
        self.render_strict(&minimal, &campaign, &links)
            .map_err(|mut e| {
                e.message = format!("for a contact with only an email address: {}", e.message);
                e
            })?;
        Ok(rendered)
    }
}

/// Sample data for validation and previews.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Sample {
    #[serde(default)]
    pub contact: ContactVars,
    #[serde(default)]
    pub campaign: serde_json::Value,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// `tracked(url)`: the per-recipient click-tracking link.
#[derive(Debug)]
struct Tracked {
    links: Arc<dyn LinkBuilder>,
    target: Arc<LinkTarget>,
}

impl std::fmt::Debug for dyn LinkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkBuilder")
    }
}

impl Object for Tracked {
    fn call(
        self: &Arc<Self>,
        state: &minijinja::State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        let url = match args {
            [u] => u.as_str().map(str::to_string),
            _ => None,
        };
        match url {
            Some(u) if brand::is_web_url(&u) => {
                let url = self.links.tracked(&self.target, &u);
                Ok(match state.auto_escape() {
                    minijinja::AutoEscape::None => Value::from(url),
                    _ => Value::from_safe_string(attr_escape(&url)),
                })
            }
            Some(u) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("tracked() needs an https:// or http:// URL, not '{u}'"),
            )),
            None => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "tracked() takes one URL, e.g. tracked(\"https://example.com/course\")",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
