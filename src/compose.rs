//! Composing outbound messages: addresses, personalisation (minijinja, HTML escaped by
//! default), a plain-text part generated from the HTML when none is given, header checks that
//! make injection impossible, and the MIME bytes (mail-builder). No I/O.

use crate::model::normalise_email;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ComposeError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ComposeError {
    ComposeError {
        field: field.into(),
        message: message.into(),
    }
}

/// A display name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub addr: String,
}

impl Mailbox {
    pub fn domain(&self) -> &str {
        self.addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// Parses `addr@example.com` or `Display Name <addr@example.com>`.
pub fn parse_mailbox(field: &str, raw: &str) -> Result<Mailbox, ComposeError> {
    if raw.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(err(field, format!("{field} contains a line break")));
    }
    let raw = raw.trim();
    let (name, addr) = match (raw.rfind('<'), raw.ends_with('>')) {
        (Some(i), true) => {
            let name = raw[..i].trim().trim_matches('"').trim();
            (
                Some(name).filter(|n| !n.is_empty()).map(str::to_string),
                &raw[i + 1..raw.len() - 1],
            )
        }
        _ => (None, raw),
    };
    if let Some(n) = &name
        && n.chars().count() > 200
    {
        return Err(err(
            field,
            format!("the display name in {field} is longer than 200 characters"),
        ));
    }
    let addr = normalise_email(addr).map_err(|m| err(field, format!("{field}: {m}")))?;
    Ok(Mailbox { name, addr })
}

/// Headers a caller may not set: the composer owns them.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
    "dkim-signature",
    "received",
    "sender",
];

/// Checks caller-supplied headers (names are tokens, values single-line, nothing reserved).
pub fn check_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ComposeError> {
    if headers.len() > 50 {
        return Err(err("headers", "at most 50 custom headers"));
    }
    let mut out = Vec::new();
    for (k, v) in headers {
        let name = k.trim();
        if name.is_empty()
            || name.len() > 76
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err(
                "headers",
                format!(
                    "'{}' is not a valid header name (letters, digits and '-')",
                    k.escape_default()
                ),
            ));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(err(
                "headers",
                format!("the {name} header is set by Mailstead and cannot be given"),
            ));
        }
        if v.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(err(
                "headers",
                format!("the value of {name} contains a line break"),
            ));
        }
        if v.len() > 998 {
            return Err(err(
                "headers",
                format!("the value of {name} is longer than 998 bytes"),
            ));
        }
        out.push((name.to_string(), v.clone()));
    }
    Ok(out)
}

/// Renders a personalisation template. HTML output escapes variables unless `html` is false.
pub fn render(
    field: &str,
    source: &str,
    data: &serde_json::Value,
    html: bool,
) -> Result<String, ComposeError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    let name = if html { "t.html" } else { "t.txt" };
    env.add_template(name, source)
        .map_err(|e| located(field, &e))?;
    let tmpl = env.get_template(name).map_err(|e| located(field, &e))?;
    tmpl.render(data).map_err(|e| located(field, &e))
}

fn located(field: &str, e: &minijinja::Error) -> ComposeError {
    let line = e
        .line()
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default();
    err(
        field,
        format!(
            "template error in {field}{line}: {}",
            e.detail().unwrap_or(&e.to_string())
        ),
    )
}

/// A readable plain-text version of an HTML body: block elements become line breaks, links
/// keep their target, entities are decoded, scripts and styles are dropped.
pub fn html_to_text(html: &str) -> String {
    html_to_text_with(html, &|h| h.starts_with("http") || h.starts_with("mailto:"))
}

/// [`html_to_text`] with the caller deciding which link targets are kept as "text (url)"
/// (the template engine keeps its placeholders too).
pub fn html_to_text_with(html: &str, keep_href: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut chars = html.char_indices().peekable();
    let mut skip_until: Option<&str> = None;
    let mut pending_href: Option<String> = None;
    while let Some((i, c)) = chars.next() {
        if c == '<' {
            let end = html[i..].find('>').map(|e| i + e).unwrap_or(html.len() - 1);
            let tag = &html[i + 1..end];
            while chars.peek().is_some_and(|(j, _)| *j <= end) {
                chars.next();
            }
            let lower = tag.trim().to_ascii_lowercase();
            let name: String = lower
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if let Some(stop) = skip_until {
                if lower.starts_with('/') && name == stop {
                    skip_until = None;
                }
                continue;
            }
            match name.as_str() {
                "script" | "style" | "head" | "title" if !lower.starts_with('/') => {
                    skip_until = Some(match name.as_str() {
                        "script" => "script",
                        "style" => "style",
                        "head" => "head",
                        _ => "title",
                    })
                }
                "br" => out.push('\n'),
                "p" | "div" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "ul"
                | "ol" | "section"
                    if !out.ends_with("\n\n") =>
                {
                    out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
                }
                "li" if !lower.starts_with('/') => out.push_str("\n- "),
                "a" if !lower.starts_with('/') => {
                    pending_href = attr(tag, "href").filter(|h| keep_href(h));
                }
                "a" => {
                    if let Some(h) = pending_href.take() {
                        let h = h.trim_start_matches("mailto:");
                        if !out.trim_end().ends_with(h) {
                            out.push_str(&format!(" ({h})"));
                        }
                    }
                }
                "img" => {
                    if let Some(alt) = attr(tag, "alt").filter(|a| !a.is_empty()) {
                        out.push_str(&alt);
                    }
                }
                _ => {}
            }
            continue;
        }
        if skip_until.is_some() {
            continue;
        }
        if c == '&' {
            let rest = &html[i..];
            if let Some(semi) = rest[..rest.len().min(10)].find(';') {
                let ent = &rest[1..semi];
                let decoded = match ent {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" | "#39" => Some('\''),
                    "nbsp" => Some(' '),
                    _ => ent.strip_prefix('#').and_then(|n| {
                        n.strip_prefix('x')
                            .map_or_else(|| n.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                    }),
                };
                if let Some(d) = decoded {
                    out.push(d);
                    for _ in 0..semi {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        if c.is_whitespace() {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let mut text = String::new();
    let mut blank = 0;
    for l in lines {
        if l.is_empty() {
            blank += 1;
            if blank == 1 && !text.is_empty() {
                text.push('\n');
            }
        } else {
            blank = 0;
            text.push_str(l);
            text.push('\n');
        }
    }
    text.trim().to_string() + "\n"
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let pos = lower.find(&format!("{name}="))?;
    let rest = &tag[pos + name.len() + 1..];
    let (quote, rest) = match rest.chars().next()? {
        q @ ('"' | '\'') => (Some(q), &rest[1..]),
        _ => (None, rest),
    };
    let end = match quote {
        Some(q) => rest.find(q)?,
        None => rest
            .find(|c: char| c.is_whitespace() || c == '>')
            .unwrap_or(rest.len()),
    };
    Some(rest[..end].replace("&amp;", "&"))
}

/// A message ready to be signed and queued.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub headers: Vec<(String, String)>,
}

pub struct Built {
    pub bytes: Vec<u8>,
    pub message_id: String,
}

/// Builds the MIME message. The Message-ID is random on the sender's domain.
pub fn build(d: &Draft) -> Result<Built, ComposeError> {
    if d.subject.chars().any(|c| c == '\r' || c == '\n') {
        return Err(err("subject", "the subject contains a line break"));
    }
    if d.subject.len() > 998 {
        return Err(err("subject", "the subject is longer than 998 bytes"));
    }
    if d.html.is_none() && d.text.is_none() {
        return Err(err("html", "a message needs an html or a text body"));
    }
    let rand: [u8; 12] = rand::random();
    let message_id = format!(
        "{}.{}@{}",
        hex::encode(rand),
        time::OffsetDateTime::now_utc().unix_timestamp(),
        d.from.domain()
    );
    let mb = |m: &Mailbox| -> mail_builder::headers::address::Address<'static> {
        match &m.name {
            Some(n) => (n.clone(), m.addr.clone()).into(),
            None => m.addr.clone().into(),
        }
    };
    let mut b = mail_builder::MessageBuilder::new()
        .from(mb(&d.from))
        .to(mail_builder::headers::address::Address::new_list(
            d.to.iter().map(mb).collect(),
        ))
        .subject(d.subject.clone())
        .message_id(message_id.clone())
        .date(time::OffsetDateTime::now_utc().unix_timestamp());
    if let Some(r) = &d.reply_to {
        b = b.reply_to(mb(r));
    }
    for (k, v) in &d.headers {
        // ASCII values go as they are (already checked to be single-line, or folded by us);
        // anything else as RFC 2047 encoded words
        if v.is_ascii() {
            b = b.header(k.clone(), mail_builder::headers::raw::Raw::new(v.clone()));
        } else {
            b = b.header(k.clone(), mail_builder::headers::text::Text::new(v.clone()));
        }
    }
    let text = d
        .text
        .clone()
        .or_else(|| d.html.as_deref().map(html_to_text));
    if let Some(t) = text {
        b = b.text_body(t);
    }
    if let Some(h) = &d.html {
        b = b.html_body(h.clone());
    }
    let bytes = b
        .write_to_vec()
        .map_err(|e| err("body", format!("cannot build the message: {e}")))?;
    Ok(Built { bytes, message_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_parse_and_reject_injection() {
        let m = parse_mailbox("from", "\"Acme Training\" <News@Acme.Example>").unwrap();
        assert_eq!(
            (m.name.as_deref(), m.addr.as_str(), m.domain()),
            (Some("Acme Training"), "news@acme.example", "acme.example")
        );
        assert!(parse_mailbox("to", "a@b.example\r\nBcc: x@y.example").is_err());
        assert!(parse_mailbox("to", "nobody").is_err());
    }

    #[test]
    fn headers_cannot_inject_or_override() {
        let mut h = BTreeMap::new();
        h.insert("X-Campaign".to_string(), "spring".to_string());
        assert_eq!(check_headers(&h).unwrap().len(), 1);
        h.insert("Bcc".to_string(), "x@y.example".to_string());
        assert!(
            check_headers(&h)
                .unwrap_err()
                .message
                .contains("set by Mailstead")
        );
        let mut h = BTreeMap::new();
        h.insert("X-A".to_string(), "a\r\nBcc: x@y.example".to_string());
        assert!(check_headers(&h).is_err());
        let mut h = BTreeMap::new();
        h.insert("X A".to_string(), "v".to_string());
        assert!(check_headers(&h).is_err());
    }

    #[test]
    fn personalisation_escapes_html_and_reports_errors_with_lines() {
        let data = serde_json::json!({"name": "<b>Ann</b>"});
        assert_eq!(
            render("html", "Hi {{ name }}", &data, true).unwrap(),
            "Hi &lt;b&gt;Ann&lt;&#x2f;b&gt;"
        );
        assert_eq!(
            render("text", "Hi {{ name }}", &data, false).unwrap(),
            "Hi <b>Ann</b>"
        );
        assert_eq!(
            render("text", "Hi {{ missing | default('there') }}", &data, false).unwrap(),
            "Hi there"
        );
        let e = render("html", "line one\n{% if %}", &data, true).unwrap_err();
        assert!(e.message.contains("line 2"), "{e}");
    }

    #[test]
    fn html_becomes_readable_text() {
        let t = html_to_text(
            "<html><head><style>p{}</style></head><body><h1>Welcome&nbsp;aboard</h1><p>Start <a href=\"https://ex.example/go?a=1&amp;b=2\">here</a>.</p><ul><li>One</li><li>Two</li></ul><img src=x alt=\"Logo\"><script>x()</script></body></html>",
        );
        assert!(t.contains("Welcome aboard"), "{t}");
        assert!(t.contains("here (https://ex.example/go?a=1&b=2)"), "{t}");
        assert!(t.contains("- One\n- Two"), "{t}");
        assert!(!t.contains("x()") && !t.contains("p{}"), "{t}");
    }

    #[test]
    fn built_messages_have_both_parts_and_safe_headers() {
        let d = Draft {
            from: parse_mailbox("from", "Acme <news@acme.example>").unwrap(),
            to: vec![parse_mailbox("to", "ann@example.org").unwrap()],
            reply_to: None,
            subject: "Your enrolment — confirmed".into(),
            html: Some("<p>Hello <b>Ann</b></p>".into()),
            text: None,
            headers: vec![("X-Course".into(), "PMP".into())],
        };
        let b = build(&d).unwrap();
        let s = String::from_utf8_lossy(&b.bytes);
        assert!(s.contains("multipart/alternative"));
        assert!(s.contains("text/plain") && s.contains("text/html"));
        assert!(s.contains("X-Course: PMP"));
        assert!(s.contains(&format!("<{}>", b.message_id)));
        assert!(b.message_id.ends_with("@acme.example"));
    }
}
