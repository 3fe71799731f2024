//! Generators of broken and hostile bounce messages, shared by `tests/bounce_bad_input.rs`
//! (the library) and `tests/cli.rs` (the `mailstead bounce parse` command). Every generated
//! message is a delivery status notification for `gone@example.org` (5.1.1, user unknown)
//! wrapped in the hostile shape, so a test can check that the answer survives.

#![allow(dead_code)] // each including test uses a subset

use std::fmt::Write as _;
use std::path::Path;

const HEAD: &str = "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
To: bounces@news.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <dsn-1@mx.example.net>\r\n\
MIME-Version: 1.0\r\n";

/// The two report parts (human text and delivery-status) of a multipart/report with
/// boundary `b`, without the closing delimiter.
fn report_parts(b: &str) -> String {
    format!(
        "--{b}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Delivery failed.\r\n\
\r\n\
<gone@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1\r\n    \
<gone@example.org>: User unknown (in reply to RCPT TO command)\r\n\
\r\n\
--{b}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; gone@example.org\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: User unknown\r\n\
\r\n"
    )
}

const ORIGINAL_HEAD: &str = "Return-Path: <bounces+42@news.example.com>\r\n\
From: news@news.example.com\r\n\
To: gone@example.org\r\n\
Subject: Our November news\r\n\
Message-ID: <orig-42@news.example.com>\r\n";

/// A DSN up to the header of its returned original message (boundary `b1` still open).
fn report_up_to_original() -> String {
    let mut s = String::from(HEAD);
    s.push_str(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n",
    );
    s.push_str(&report_parts("b1"));
    s.push_str("--b1\r\nContent-Type: message/rfc822\r\n\r\n");
    s.push_str(ORIGINAL_HEAD);
    s
}

/// A plain DSN, with byte-level replacements applied (each `(from, to)` once).
pub fn dsn(replace: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut s = report_up_to_original();
    s.push_str("\r\nHello!\r\n--b1--\r\n");
    let mut raw = s.into_bytes();
    for (from, to) in replace {
        if let Some(p) = find(&raw, from) {
            raw.splice(p..p + from.len(), to.iter().copied());
        }
    }
    raw
}

/// First position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The DSN inside `depth` levels of multipart/mixed.
pub fn nested_multipart(depth: usize) -> Vec<u8> {
    let mut s = String::from(HEAD);
    s.push_str("Content-Type: multipart/mixed; boundary=\"n0\"\r\n\r\n");
    for i in 0..depth {
        let _ = write!(
            s,
            "--n{i}\r\nContent-Type: multipart/mixed; boundary=\"n{}\"\r\n\r\n",
            i + 1
        );
    }
    let _ = write!(
        s,
        "--n{depth}\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"
    );
    s.push_str(&report_parts("b1"));
    s.push_str("--b1--\r\n");
    for i in (0..=depth).rev() {
        let _ = write!(s, "--n{i}--\r\n");
    }
    s.into_bytes()
}

/// A DSN whose returned message contains a message, which contains a message, ...
/// `depth` levels deep.
pub fn nested_messages(depth: usize) -> Vec<u8> {
    let mut s = report_up_to_original();
    for i in 0..depth {
        let _ = write!(
            s,
            "Content-Type: message/rfc822\r\n\r\nFrom: level{i}@example.com\r\nSubject: level {i}\r\n"
        );
    }
    s.push_str("\r\nthe innermost body\r\n--b1--\r\n");
    s.into_bytes()
}

/// A DSN that returns the original message with a base64 attachment, `size` bytes in all.
pub fn dsn_with_attachment(size: usize) -> Vec<u8> {
    let mut s = report_up_to_original();
    s.push_str("MIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    let line = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl\r\n";
    let tail = "--b1--\r\n";
    while s.len() + line.len() + tail.len() <= size {
        s.push_str(line);
    }
    s.push_str(tail);
    s.into_bytes()
}

/// A DSN whose human-readable part is `size` bytes of lines that each name a different
/// address at the start of the line (the shape of a per-recipient text report).
pub fn dsn_with_huge_text(size: usize) -> Vec<u8> {
    let mut s = String::from(HEAD);
    s.push_str(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n",
    );
    s.push_str("--b1\r\nContent-Type: text/plain\r\n\r\n");
    let mut i = 0usize;
    while s.len() < size {
        let _ = write!(
            s,
            "<user{i}@host{}.example.com>: 452 4.2.2 mailbox over quota; will retry\r\n",
            i % 97
        );
        i += 1;
    }
    s.push_str(&report_parts("b1"));
    s.push_str("--b1--\r\n");
    s.into_bytes()
}

/// Standard header fields, then `lines` more, then the DSN.
pub fn header_bomb_many_lines(lines: usize) -> Vec<u8> {
    let mut raw = dsn(&[]);
    let at = find(&raw, b"MIME-Version:").unwrap_or(0);
    let mut bomb = Vec::with_capacity(lines * 24);
    for i in 0..lines {
        let _ = write!(VecWriter(&mut bomb), "X-Bomb-{}: v{i}\r\n", i % 10);
    }
    raw.splice(at..at, bomb);
    raw
}

/// Standard header fields and one header line of `len` bytes, then the DSN.
pub fn header_bomb_long_line(len: usize) -> Vec<u8> {
    let mut raw = dsn(&[]);
    let at = find(&raw, b"MIME-Version:").unwrap_or(0);
    let mut bomb = b"X-Bomb: ".to_vec();
    bomb.extend(std::iter::repeat_n(b'a', len));
    bomb.extend_from_slice(b"\r\n");
    raw.splice(at..at, bomb);
    raw
}

/// A DSN for `n` recipients (each named in the text and in its own group).
pub fn many_recipients(n: usize) -> Vec<u8> {
    let mut s = String::from(HEAD);
    s.push_str(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n",
    );
    s.push_str("--b1\r\nContent-Type: text/plain\r\n\r\n");
    for i in 0..n {
        let _ = write!(s, "<r{i}@example.org>: 550 5.1.1 User unknown\r\n");
    }
    s.push_str("\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n");
    for i in 0..n {
        let _ = write!(
            s,
            "Final-Recipient: rfc822; r{i}@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        );
    }
    s.push_str("--b1--\r\n");
    s.into_bytes()
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The `.eml` files of `../shared/corpus/bounces`, or `None` when it is absent.
pub fn corpus_samples() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/bounces");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("eml"))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    out.sort();
    Some(out)
}

/// Small deterministic generator for random bytes.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
