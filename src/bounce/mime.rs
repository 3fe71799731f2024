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
    /// Text body of the attached original message (first text part), if any.
    pub original_body: Option<String>,
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
    let head_text = lossy(&body[..body.len().min(256 * 1024)]);
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

    let Some(message) = MessageParser::default().parse(body) else {
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
            let t = lossy(&b[..b.len().min(1024 * 1024)]);
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
    if depth > 32 {
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
                let text = lossy(&raw[..raw.len().min(256 * 1024)]);
                let (h, _) = parse_header_block(&text);
                if !h.is_empty() {
                    out.original = Some(h);
                }
                out.original_body = nested.body_text(0).map(|t| t.into_owned());
            }
        }
        PartType::Text(t) => handle_textual(&ty, &sub, t, out),
        PartType::Html(t) => {
            if ty == "text" && sub == "html" {
                out.texts.push(html_to_text(t));
            } else {
                handle_textual(&ty, &sub, t, out);
            }
        }
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            let t = lossy(b);
            handle_textual(&ty, &sub, &t, out);
        }
    }
}

fn handle_textual(ty: &str, sub: &str, t: &str, out: &mut Extracted) {
    match (ty, sub) {
        ("message", "delivery-status") | ("message", "global-delivery-status") => {
            out.delivery_status.push(t.to_string())
        }
        ("message", "feedback-report") => out.feedback_report.push(t.to_string()),
        ("text", "rfc822-headers")
        | ("message", "rfc822-headers")
        | ("message", "global-headers")
        | ("message", "rfc822")
        | ("message", "global")
            if out.original.is_none() =>
        {
            let (h, rest) = parse_header_block(t);
            if !h.is_empty() {
                out.original = Some(h);
                if !rest.trim().is_empty() {
                    out.original_body = Some(rest.to_string());
                }
            }
        }
        ("text", "rfc822-headers") => {}
        ("text", _) => out.texts.push(t.to_string()),
        ("message", "disposition-notification") => out.texts.push(t.to_string()),
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
