//! SMTP replies (RFC 5321 §4.2) with RFC 3463 enhanced status codes.

use std::fmt;

/// Longest reply line accepted, terminator included. RFC 5321 §4.5.3.1.5 says
/// 512 octets; real servers send longer lines, so allow some slack.
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines accepted in one multi-line reply (EHLO answers are ~20 lines).
pub const MAX_REPLY_LINES: usize = 256;

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// Subject: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol,
    /// 6 content, 7 security or policy.
    pub subject: u16,
    /// Detail within the subject.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds a status from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `X.Y.Z` at the start of `text`, followed by a space or the end.
    pub fn parse_prefix(text: &str) -> Option<Self> {
        let end = text.find(' ').unwrap_or(text.len());
        let token = &text[..end];
        let mut parts = token.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let ok_part = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !ok_part(class, 1) || !ok_part(subject, 3) || !ok_part(detail, 3) {
            return None;
        }
        let class: u8 = class.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Self {
            class,
            subject: subject.parse().ok()?,
            detail: detail.parse().ok()?,
        })
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One complete (possibly multi-line) SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code of the first line, when the server sent one
    /// whose class agrees with the reply code.
    pub enhanced: Option<EnhancedStatus>,
    /// The text of each line after the code and separator (enhanced code kept).
    pub lines: Vec<String>,
}

impl Reply {
    /// Builds a single-line reply (used for synthetic outcomes and tests).
    pub fn new(code: u16, text: &str) -> Self {
        let enhanced =
            EnhancedStatus::parse_prefix(text).filter(|e| u16::from(e.class) == code / 100);
        Self {
            code,
            enhanced,
            lines: vec![text.to_string()],
        }
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (e.g. 354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not retry.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// An enhanced code in the 7 subject (security or policy): 4.7.x / 5.7.x.
    /// Such a rejection says something about the sender, not the address, so
    /// the recipient must never be suppressed because of it.
    pub fn is_policy(&self) -> bool {
        self.enhanced.is_some_and(|e| e.subject == 7)
    }

    /// All lines joined by a space.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The text with the leading enhanced status code of each line removed.
    pub fn message(&self) -> String {
        self.lines
            .iter()
            .map(|l| match EnhancedStatus::parse_prefix(l) {
                Some(_) => l.split_once(' ').map(|(_, rest)| rest).unwrap_or(""),
                None => l.as_str(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether any line contains `needle` (ASCII case-insensitive).
    pub fn contains_ci(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.lines
            .iter()
            .any(|l| l.to_ascii_lowercase().contains(&needle))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// What went wrong while parsing a reply: the server sent garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line that does not start with a valid three-digit reply code.
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    /// A continuation line carrying another code than the first line.
    #[error("reply code changed inside a multi-line reply ({first} then {next})")]
    CodeMismatch {
        /// Code of the first line.
        first: u16,
        /// Code of the offending line.
        next: u16,
    },
    /// More lines than [`MAX_REPLY_LINES`].
    #[error("reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
}

/// Assembles a reply from lines (terminators already removed).
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser waiting for the first line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line; returns the reply once its last line was seen.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let malformed = || ReplyError::Malformed(printable(line));
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        if !(b'2'..=b'5').contains(&line[0]) {
            return Err(malformed());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(malformed()),
        };
        if let Some(first) = self.code {
            if first != code {
                return Err(ReplyError::CodeMismatch { first, next: code });
            }
        } else {
            self.code = Some(code);
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let text = line.get(4..).unwrap_or(&[]);
        let text = String::from_utf8_lossy(text).trim_end().to_string();
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        let enhanced = lines
            .first()
            .and_then(|l| EnhancedStatus::parse_prefix(l))
            .filter(|e| u16::from(e.class) == code / 100);
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
        }))
    }
}

/// A short, printable rendering of raw bytes for error messages.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let mut s: String = String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if bytes.len() > 120 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(lines: &[&str]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new();
        let mut out = Vec::new();
        for l in lines {
            if let Some(r) = p.feed(l.as_bytes())? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line() {
        let r = parse_all(&["250-mx.example Hello", "250-PIPELINING", "250 SIZE 1000"]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 250);
        assert_eq!(r[0].lines.len(), 3);
        let r = parse_all(&["354"]).unwrap();
        assert_eq!(r[0].code, 354);
        assert_eq!(r[0].lines, vec![String::new()]);
    }

    #[test]
    fn enhanced_codes() {
        let r = parse_all(&["550 5.1.1 <a@b>: user unknown"]).unwrap();
        assert_eq!(r[0].enhanced, Some(EnhancedStatus::new(5, 1, 1)));
        assert_eq!(r[0].message(), "<a@b>: user unknown");
        assert!(!r[0].is_policy());
        let r = parse_all(&["554-5.7.1 blocked", "554 5.7.1 see url"]).unwrap();
        assert!(r[0].is_policy());
        // class must agree with the reply code
        let r = parse_all(&["550 4.1.1 odd"]).unwrap();
        assert_eq!(r[0].enhanced, None);
        let r = parse_all(&["250 2.0.0"]).unwrap();
        assert_eq!(r[0].enhanced, Some(EnhancedStatus::new(2, 0, 0)));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_all(&["HTTP/1.1 400 Bad Request"]).is_err());
        assert!(parse_all(&["25"]).is_err());
        assert!(parse_all(&["250x"]).is_err());
        assert!(parse_all(&["650 no such class"]).is_err());
        assert!(matches!(
            parse_all(&["250-a", "220 b"]),
            Err(ReplyError::CodeMismatch { .. })
        ));
        let many: Vec<&str> = std::iter::repeat_n("250-x", MAX_REPLY_LINES + 1).collect();
        assert_eq!(parse_all(&many), Err(ReplyError::TooManyLines));
        assert!(parse_all(&["\u{0}\u{1}\u{2}"]).is_err());
    }
}
