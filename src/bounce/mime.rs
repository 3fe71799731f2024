//! MIME decomposition: turns the raw bytes into the few pieces the
//! sub-parsers need (top-level headers, decoded human-readable text, the
//! machine-readable report parts and the headers of the attached original).

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::BounceError;
use super::util::{Headers, parse_header_block};

/// Everything the classifiers look at, already decoded.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    /// Top-level header fields (raw, unfolded).
    pub headers: Headers,
    /// Decoded Subject.
    pub subject: String,
    /// Address in From (if any).
    pub from_addr: Option<String>,
    /// Top-level `type/subtype`, lower case.
    pub content_type: String,
    /// `report-type` parameter of a multipart/report, lower case.
    pub report_type: String,
    /// Decoded human-readable text parts (outside the attached original).
    pub texts: Vec<String>,
    /// Bodies of message/delivery-status parts.
    pub delivery_status: Vec<String>,
    /// Bodies of message/feedback-report parts.
    pub feedback_report: Vec<String>,
    /// Headers of the attached original message, if any.
    pub original: Option<Headers>,
}

/// How much of each part the classifiers look at. A human-readable report, a
/// delivery-status block or a feedback report is a few kilobytes; these caps
/// bound the work on hostile input without touching real reports.
const MAX_TEXT_BYTES: usize = 256 * 1024;
/// At most this many parts of each kind are kept.
const MAX_PARTS_KEPT: usize = 32;
/// Only this much of an HTML part is converted to text.
const MAX_HTML_BYTES: usize = 1024 * 1024;
/// Multipart nesting followed; deeper parts are ignored.
const MAX_DEPTH: usize = 32;

/// The first `max` bytes of `s`, cut at a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.get(..cut).unwrap_or("")
}

fn push_capped(list: &mut Vec<String>, t: &str) {
    if list.len() < MAX_PARTS_KEPT {
        list.push(prefix(t, MAX_TEXT_BYTES).to_string());
    }
}

impl Extracted {
    /// All human-readable text joined by blank lines.
    pub fn joined_text(&self) -> String {
        self.texts.join("\n\n")
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lines of the top-level header section accepted (real messages have a few hundred at most).
const MAX_HEADER_LINES: usize = 10_000;
/// Bytes of the top-level header section accepted.
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Lines of a message that are parsed. The MIME parser keeps a record per header line and
/// per part, so a cap on lines bounds its memory whatever the shape of the input; a bounce's
/// report parts come first, and what is cut is the tail of the returned original.
const MAX_LINES: usize = 500_000;

fn next_line(b: &[u8], start: usize) -> usize {
    b.get(start..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |p| start + p + 1)
}

/// Refuses header bombs: too many header lines, or too many header bytes.
fn check_header_section(b: &[u8]) -> Result<(), BounceError> {
    let (mut lines, mut start) = (0usize, 0usize);
    while start < b.len() {
        let end = next_line(b, start);
        let line = b.get(start..end).unwrap_or_default();
        if line == b"\n" || line == b"\r\n" {
            return Ok(());
        }
        lines += 1;
        if lines > MAX_HEADER_LINES {
            return Err(BounceError::NotAMessage(format!(
                "the header section has more than {MAX_HEADER_LINES} lines"
            )));
        }
        if end > MAX_HEADER_BYTES {
            return Err(BounceError::NotAMessage(format!(
                "the header section is larger than {MAX_HEADER_BYTES} bytes"
            )));
        }
        start = end;
    }
    Ok(())
}

/// The message up to its `max`-th line.
fn cap_lines(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut seen = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            seen += 1;
            if seen == max {
                return b.get(..=i).unwrap_or(b);
            }
        }
    }
    b
}

/// Decompose a raw message.
pub(crate) fn extract(raw: &[u8]) -> Result<Extracted, BounceError> {
    // Tolerate a leading mbox "From " line and leading blank lines.
    let mut start = 0usize;
    while start < raw.len() && (raw[start] == b'\n' || raw[start] == b'\r') {
        start += 1;
    }
    let mut body = &raw[start..];
    if body.starts_with(b"From ") {
        match body.iter().position(|&c| c == b'\n') {
            Some(p) => body = &body[p + 1..],
            None => body = &[],
        }
    }
    check_header_section(body)?;
    let body = cap_lines(body, MAX_LINES);
    let head_text = lossy(&body[..body.len().min(MAX_TEXT_BYTES)]);
    let (headers, _) = parse_header_block(&head_text);
    if headers.is_empty() {
        return Err(BounceError::NotAMessage("no header fields found".into()));
    }
    let known = [
        "from",
        "to",
        "subject",
        "date",
        "received",
        "return-path",
        "message-id",
        "content-type",
        "mime-version",
        "x-failed-recipients",
        "auto-submitted",
        "delivered-to",
        "reply-to",
        "sender",
    ];
    if !headers.0.iter().any(|(n, _)| known.contains(&n.as_str())) {
        return Err(BounceError::NotAMessage(
            "no standard header field (From, To, Subject, Date, ...)".into(),
        ));
    }

    // mail-parser 0.11 panics on some malformed multipart nesting ("Invalid part ID", found
    // by fuzzing): contain it, so hostile input is an error and never takes the process down
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(body));
    let Ok(parsed) = parsed else {
        return Err(BounceError::NotAMessage(
            "the MIME structure is malformed (multipart parts that do not nest)".into(),
        ));
    };
    let Some(message) = parsed else {
        return Err(BounceError::NotAMessage("unparseable message".into()));
    };

    let mut out = Extracted {
        headers,
        subject: message.subject().unwrap_or_default().to_string(),
        from_addr: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string),
        ..Extracted::default()
    };
    if out.subject.is_empty()
        && let Some(s) = out.headers.get("subject")
    {
        out.subject = s.to_string();
    }
    if let Some(ct) = message.root_part().content_type() {
        out.content_type = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase()
        );
        out.report_type = ct
            .attribute("report-type")
            .unwrap_or("")
            .trim_matches('"')
            .to_ascii_lowercase();
    }

    walk(&message, 0, &mut out, 0);
    if out.texts.is_empty() && out.delivery_status.is_empty() && out.feedback_report.is_empty() {
        // Broken MIME structure (e.g. a multipart without usable boundary):
        // fall back to the raw body as text.
        let raw = message.raw_message();
        let body_start = message.root_part().offset_body as usize;
        if let Some(b) = raw.get(body_start..) {
            let t = lossy(&b[..b.len().min(MAX_TEXT_BYTES)]);
            if !t.trim().is_empty() {
                out.texts.push(t);
            }
        }
    }
    Ok(out)
}

fn part_ctype(part: &mail_parser::MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

fn walk(message: &mail_parser::Message<'_>, id: u32, out: &mut Extracted, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(part) = message.part(id) else {
        return;
    };
    let (ty, sub) = part_ctype(part);
    match &part.body {
        PartType::Multipart(children) => {
            for &c in children {
                if c != id {
                    walk(message, c, out, depth + 1);
                }
            }
        }
        PartType::Message(nested) => {
            if out.original.is_none() {
                let raw = nested.raw_message();
                let text = lossy(&raw[..raw.len().min(MAX_TEXT_BYTES)]);
                let (h, _) = parse_header_block(&text);
                if !h.is_empty() {
                    out.original = Some(h);
                }
            }
        }
        PartType::Text(t) => handle_textual(&ty, &sub, t, out),
        PartType::Html(t) => {
            if ty == "text" && sub == "html" {
                push_capped(&mut out.texts, &html_to_text(prefix(t, MAX_HTML_BYTES)));
            } else {
                handle_textual(&ty, &sub, t, out);
            }
        }
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            // Only textual and report parts are read; an attachment is not decoded.
            if ty == "text" || ty == "message" {
                let t = lossy(&b[..b.len().min(MAX_TEXT_BYTES)]);
                handle_textual(&ty, &sub, &t, out);
            }
        }
    }
}

fn handle_textual(ty: &str, sub: &str, t: &str, out: &mut Extracted) {
    match (ty, sub) {
        ("message", "delivery-status") | ("message", "global-delivery-status") => {
            push_capped(&mut out.delivery_status, t)
        }
        ("message", "feedback-report") => push_capped(&mut out.feedback_report, t),
        ("text", "rfc822-headers")
        | ("message", "rfc822-headers")
        | ("message", "global-headers")
        | ("message", "rfc822")
        | ("message", "global")
            if out.original.is_none() =>
        {
            let (h, _) = parse_header_block(prefix(t, MAX_TEXT_BYTES));
            if !h.is_empty() {
                out.original = Some(h);
            }
        }
        ("text", "rfc822-headers") => {}
        ("text", _) | ("message", "disposition-notification") => push_capped(&mut out.texts, t),
        _ => {}
    }
}

/// Very small HTML to text conversion: drops tags, decodes a few entities,
/// turns block tags into line breaks.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut tag = String::new();
    let mut skip_depth = 0usize;
    for c in html.chars() {
        if in_tag {
            if c == '>' {
                in_tag = false;
                let t = tag.trim().to_ascii_lowercase();
                let name: String = t
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if name == "style" || name == "script" || name == "head" {
                    if t.starts_with('/') {
                        skip_depth = skip_depth.saturating_sub(1);
                    } else {
                        skip_depth += 1;
                    }
                }
                if matches!(
                    name.as_str(),
                    "br" | "p" | "div" | "tr" | "li" | "table" | "h1" | "h2" | "h3" | "pre"
                ) {
                    out.push('\n');
                } else if matches!(name.as_str(), "td" | "th") {
                    out.push(' ');
                }
                tag.clear();
            } else if tag.len() < 256 {
                tag.push(c);
            }
        } else if c == '<' {
            in_tag = true;
        } else if skip_depth == 0 {
            out.push(c);
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
