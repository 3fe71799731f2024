//! Free-text bounces: the human-readable reports that many MTAs send
//! instead of (or in addition to) RFC 3464 DSNs.
//!
//! The approach is generic rather than per-vendor:
//! 1. cut the text where the returned original message starts;
//! 2. find "anchor" lines that name a recipient (an address alone on a
//!    line, or at the start of a line followed by `:` / `...` and the
//!    reason, or after a label such as `Recipient:`);
//! 3. the text following each anchor up to the next one is that
//!    recipient's diagnostic;
//! 4. extract status / reply code / SMTP phase and classify.

use std::collections::HashMap;

use super::MAX_RECIPIENTS;
use super::classify::{self, Action, Evidence};
use super::mime::Extracted;
use super::util::{find_addresses, find_reply_code, find_status, is_plausible_address};
use super::{RecipientReport, classify::make_report};

/// One recipient's slice of a free-text report.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub addr: String,
    pub text: String,
}

/// Does a line mark the start of the returned original message?
fn is_cut_line(line: &str) -> bool {
    let t = line.trim().to_ascii_lowercase();
    if t.is_empty() || t.len() > 120 {
        return false;
    }
    const PHRASES: &[&str] = &[
        "below this line is a copy of the message",
        "this is a copy of the message",
        "this is a copy of your message",
        "enclosed is a copy of the message",
        "copy of the original message",
        "original message follows",
        "message headers follow",
        "original message headers",
        "headers of the original message",
        "header of the original message",
        "unsent message below",
        "returned message follows",
        "returned mail follows",
        "your message follows",
        "the original message is attached",
        "text of the original message",
        "content of the original message",
        "original message is included",
        "following is a copy of",
        "a copy of your message",
        "original mail as follows",
        "original message as follows",
    ];
    if PHRASES.iter().any(|p| t.contains(p)) {
        return true;
    }
    let dashed = t.starts_with("--") || t.starts_with("==") || t.starts_with("**");
    if dashed
        && (t.contains("original message")
            || t.contains("returned message")
            || t.contains("message text")
            || t.contains("undelivered message")
            || t.contains("original headers")
            || t.contains("original mail")
            || t.contains("unsent message"))
    {
        return true;
    }
    false
}

/// The report text before the returned original message.
pub(crate) fn cut_original(text: &str) -> &str {
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        if is_cut_line(line) {
            return text.get(..pos).unwrap_or(text);
        }
        pos += line.len();
    }
    text
}

/// Labels that may precede a recipient address at the start of a line.
const RECIPIENT_LABELS: &[&str] = &[
    "to:",
    "to",
    "rcpt:",
    "rcpt to:",
    "recipient:",
    "recipients:",
    "recipient address:",
    "original recipient:",
    "original-recipient:",
    "final-recipient:",
    "failed recipient:",
    "invalid recipient:",
    "address:",
    "e-mail address:",
    "email address:",
    "mailbox:",
    "user:",
    "delivery to:",
    "could not deliver to",
    "couldn't deliver to",
    "unable to deliver to",
    "not delivered to",
    "delivery to",
    "delivery failed to",
    "your message to",
    "message to",
    "mail to",
    "sent to",
    "for",
    "for recipient",
    "rfc822;",
    "destinataire:",
    "empfänger:",
    "adresse:",
];

fn strip_bullets(s: &str) -> &str {
    s.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '*' | '-' | '•' | '>' | '#' | '\u{a0}')
    })
}

/// How an anchor line names its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// `To: addr` — usually the original message's header, weak evidence.
    Weak,
    /// Address alone, at the start of the line, or after a recipient label.
    Strong,
}

fn is_reply_prefix(p: &str) -> bool {
    // "550", "554 5.1.1", "550-5.1.1"
    let mut words = p.split([' ', '-']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return false;
    };
    if !(first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    words.all(|w| w.bytes().all(|b| b.is_ascii_digit() || b == b'.') && w.len() <= 9)
}

/// Is `line` an anchor naming `addr` (which occurs at byte `off`)?
/// Returns the strength and the text after the address when it is.
fn anchor_rest<'a>(line: &'a str, off: usize, addr: &str) -> Option<(Strength, &'a str)> {
    let prefix = line.get(..off)?;
    let p = strip_bullets(prefix)
        .trim()
        .trim_end_matches(['<', '"', '\'', '(', '['])
        .trim()
        .to_ascii_lowercase();
    let strength = if p.is_empty()
        || is_reply_prefix(&p)
        || (RECIPIENT_LABELS.contains(&p.as_str()) && p != "to:" && p != "to")
        || p.ends_with("rfc822;")
    {
        Strength::Strong
    } else if p == "to:" || p == "to" {
        Strength::Weak
    } else if (p.ends_with(" to") || p.ends_with(" to:"))
        && p.len() < 80
        && ["deliver", "send", "sent", "mail", "message", "recipient"]
            .iter()
            .any(|k| p.contains(k))
        && !p.contains("from")
    {
        Strength::Strong
    } else {
        return None;
    };
    let after_at = off + addr.len();
    let rest = line.get(after_at..).unwrap_or("");
    let rest = rest.trim_start_matches(['>', '"', '\'', ')', ']']);
    Some((strength, rest))
}

/// Addresses that are certainly not recipients of the failed delivery.
fn is_service_address(addr: &str) -> bool {
    let l = addr.to_ascii_lowercase();
    let local = l.split('@').next().unwrap_or("");
    matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
}

/// Does a line start an SMTP transcript section that precedes (rather
/// than follows) the recipient it concerns (old Sendmail style)?
fn starts_transcript(line: &str) -> bool {
    let l = line.trim().to_ascii_lowercase();
    l.starts_with("while talking to")
}

/// Split the (already cut) report text into per-recipient blocks.
pub(crate) fn recipient_blocks(text: &str, exclude: &[String]) -> Vec<Block> {
    let blocks = recipient_blocks_excluding(text, exclude);
    if blocks.is_empty() && !exclude.is_empty() {
        // The recipient may be the sender itself (a message sent to oneself).
        return recipient_blocks_excluding(text, &[]);
    }
    blocks
}

fn recipient_blocks_excluding(text: &str, exclude: &[String]) -> Vec<Block> {
    let mut blocks: Vec<(Strength, Block)> = Vec::new();
    // Lower-cased address → index in `blocks`.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let mut anchored = false;
        if let Some((off, addr)) = find_addresses(line).into_iter().next()
            && !exclude.iter().any(|e| e.eq_ignore_ascii_case(&addr))
            && let Some((strength, rest)) = anchor_rest(line, off, &addr)
            && !rest.trim().to_ascii_lowercase().starts_with("wrote:")
            && (blocks.len() < MAX_RECIPIENTS || index.contains_key(&addr.to_ascii_lowercase()))
        {
            anchored = true;
            let idx = match index.get(&addr.to_ascii_lowercase()).copied() {
                Some(i) => {
                    if let Some((s, _)) = blocks.get_mut(i) {
                        *s = (*s).max(strength);
                    }
                    i
                }
                None => {
                    index.insert(addr.to_ascii_lowercase(), blocks.len());
                    blocks.push((
                        strength,
                        Block {
                            addr: addr.clone(),
                            text: String::new(),
                        },
                    ));
                    blocks.len() - 1
                }
            };
            current = Some(idx);
            if let Some((_, b)) = blocks.get_mut(idx) {
                if let Some(p) = pending.take() {
                    b.text.push_str(&p);
                }
                let rest = rest.trim_start_matches([':', ',', ' ', '\t']);
                let rest = rest.strip_prefix("...").unwrap_or(rest);
                let has_prefix = !strip_bullets(line.get(..off).unwrap_or(""))
                    .trim()
                    .trim_end_matches(['<', '"', '\'', '(', '['])
                    .is_empty();
                if has_prefix {
                    // Keep the whole line: the prefix may be a reply code or
                    // a transcript command (">>> RCPT To:").
                    b.text.push_str(line.trim());
                    b.text.push('\n');
                } else if !rest.trim().is_empty() {
                    b.text.push_str(rest.trim());
                    b.text.push('\n');
                }
            }
        }
        if anchored {
            continue;
        }
        if starts_transcript(line) {
            pending = Some(String::new());
        }
        if let Some(p) = pending.as_mut() {
            if p.len() < 8192 {
                p.push_str(line.trim());
                p.push('\n');
            }
            continue;
        }
        if let Some(i) = current
            && let Some((_, b)) = blocks.get_mut(i)
            && b.text.len() < 8192
        {
            b.text.push_str(line.trim());
            b.text.push('\n');
        }
    }
    // A trailing transcript with no recipient after it belongs to the last one.
    if let Some(p) = pending
        && let Some(i) = current
        && let Some((_, b)) = blocks.get_mut(i)
    {
        b.text.push_str(&p);
    }
    if blocks.iter().any(|(s, _)| *s == Strength::Strong) {
        blocks.retain(|(s, _)| *s == Strength::Strong);
    }
    blocks.into_iter().map(|(_, b)| b).collect()
}

/// Addresses known to be the original sender (the bounce's To, the
/// original message's From / Return-Path / Sender).
pub(crate) fn sender_addresses(msg: &Extracted) -> Vec<String> {
    let mut senders: Vec<String> = Vec::new();
    if let Some(to) = msg.headers.get("to") {
        senders.extend(find_addresses(to).into_iter().map(|(_, a)| a));
    }
    if let Some(o) = &msg.original {
        for f in ["from", "return-path", "sender"] {
            if let Some(v) = o.get(f) {
                senders.extend(find_addresses(v).into_iter().map(|(_, a)| a));
            }
        }
    }
    senders
}

/// Heuristic: does this message present itself as a delivery failure?
pub(crate) fn looks_like_bounce(msg: &Extracted) -> bool {
    if msg.headers.get("x-failed-recipients").is_some() {
        return true;
    }
    if msg.report_type == "delivery-status" {
        return true;
    }
    let from = msg.headers.get("from").unwrap_or("").to_ascii_lowercase();
    const FROM_HINTS: &[&str] = &[
        "mailer-daemon",
        "mailer_daemon",
        "mail-daemon",
        "postmaster",
        "mail delivery",
        "maildelivery",
        "delivery subsystem",
        "delivery system",
        "mail system",
        "bounce",
        "mailerdaemon",
        "nobody@",
        "mail administrator",
        "system administrator",
        "internet mail delivery",
        "mmdf",
        "smtp gateway",
        "post_master",
        "ndr",
    ];
    if FROM_HINTS.iter().any(|h| from.contains(h)) {
        return true;
    }
    let subject = msg.subject.to_lowercase();
    const SUBJECT_HINTS: &[&str] = &[
        "undeliver",
        "undelivered",
        "delivery status notification",
        "delivery failure",
        "delivery failed",
        "delivery notification",
        "delivery problem",
        "failure notice",
        "failed delivery",
        "returned mail",
        "return mail",
        "mail delivery",
        "non-delivery",
        "nondelivery",
        "non delivery",
        "not delivered",
        "could not be delivered",
        "couldn't be delivered",
        "delivery has failed",
        "message delayed",
        "delayed mail",
        "mail failure",
        "bounce",
        "rejected",
        "warning: could not send",
        "unzustellbar",
        "non remis",
        "no entregado",
        "error sending",
        "mail system error",
        "failed mail",
        "returned to sender",
        "permanent error",
        "delivery report",
        "message not delivered",
        "loop alert",
        "not member",
    ];
    if SUBJECT_HINTS.iter().any(|h| subject.contains(h)) {
        return true;
    }
    let body = msg.joined_text().to_lowercase();
    const BODY_HINTS: &[&str] = &[
        "could not be delivered",
        "couldn't be delivered",
        "wasn't able to deliver",
        "was not delivered",
        "delivery has failed",
        "delivery to the following recipient",
        "undeliverable",
        "permanent error",
        "permanent failure",
        "following address(es) failed",
        "unable to deliver",
        "delivery failed",
        "message could not be sent",
        "smtp error from remote",
        "requested action not taken",
        "no such user",
        "not a member of",
        "message could not be delivered",
    ];
    BODY_HINTS.iter().any(|h| body.contains(h))
}

/// Is the report a delay warning rather than a final failure?
pub(crate) fn is_delay_warning(subject: &str, text: &str) -> bool {
    let s = subject.to_lowercase();
    let t = text.to_lowercase();
    s.contains("delay")
        || s.starts_with("warning")
        || t.contains("this is a warning message only")
        || t.contains("will be retried")
        || t.contains("has been delayed")
        || t.contains("has not yet been delivered")
        || t.contains("delivery attempts will continue")
        || t.contains("will keep trying")
        || t.contains("still trying")
}

/// Parse a free-text bounce.
pub(crate) fn parse(msg: &Extracted) -> Vec<RecipientReport> {
    if !looks_like_bounce(msg) {
        return Vec::new();
    }
    let full = msg.joined_text();
    let text = cut_original(&full);
    let delayed = is_delay_warning(&msg.subject, text);

    let senders = sender_addresses(msg);

    let failed: Vec<String> = msg
        .headers
        .get_all("x-failed-recipients")
        .flat_map(|v| v.split(','))
        .filter_map(|a| {
            let a = a.trim().trim_matches(['<', '>']);
            is_plausible_address(a).then(|| a.to_string())
        })
        .collect();

    let mut blocks = recipient_blocks(text, &senders);
    if blocks.iter().any(|b| !is_service_address(&b.addr)) {
        blocks.retain(|b| !is_service_address(&b.addr));
    }
    if !failed.is_empty() {
        let matching: Vec<Block> = blocks
            .iter()
            .filter(|b| failed.iter().any(|f| f.eq_ignore_ascii_case(&b.addr)))
            .cloned()
            .collect();
        if !matching.is_empty() {
            blocks = matching;
        }
    }
    let non_sender: Vec<Block> = blocks
        .iter()
        .filter(|b| !senders.iter().any(|s| s.eq_ignore_ascii_case(&b.addr)))
        .cloned()
        .collect();
    if !non_sender.is_empty() {
        blocks = non_sender;
    }

    if blocks.is_empty() {
        // No anchor lines: fall back to X-Failed-Recipients, then any
        // address mentioned in the report, then the original's To.
        let whole = text.to_string();
        let mut addrs: Vec<String> = failed.clone();
        if addrs.is_empty() {
            let found: Vec<String> = find_addresses(text).into_iter().map(|(_, a)| a).collect();
            addrs = found
                .iter()
                .filter(|a| !is_service_address(a))
                .filter(|a| !senders.iter().any(|s| s.eq_ignore_ascii_case(a)))
                .take(1)
                .cloned()
                .collect();
            if addrs.is_empty() {
                addrs = found
                    .iter()
                    .filter(|a| !senders.iter().any(|s| s.eq_ignore_ascii_case(a)))
                    .take(1)
                    .cloned()
                    .collect();
            }
        }
        if addrs.is_empty()
            && let Some(o) = &msg.original
            && let Some(to) = o.get("to")
        {
            addrs = find_addresses(to)
                .into_iter()
                .map(|(_, a)| a)
                .take(1)
                .collect();
        }
        if addrs.is_empty() {
            // The returned message is inline after the cut: use its To.
            let rest = full.get(text.len()..).unwrap_or("");
            addrs = rest
                .lines()
                .filter_map(|l| {
                    let t = l.trim_start();
                    let lower = t.to_ascii_lowercase();
                    lower.starts_with("to:").then(|| find_addresses(t))
                })
                .flatten()
                .map(|(_, a)| a)
                .take(1)
                .collect();
        }
        blocks = addrs
            .into_iter()
            .map(|addr| Block {
                addr,
                text: whole.clone(),
            })
            .collect();
    }

    blocks.truncate(MAX_RECIPIENTS);
    let single = blocks.len() == 1;
    let context = classify::context_text(text);
    blocks
        .into_iter()
        .map(|b| {
            let mut ev = evidence_from_text(&b.text, &context, delayed);
            if single && ev.status.is_empty() {
                // The only recipient: a status quoted anywhere in the report applies.
                ev.status = find_status(&ev.context).unwrap_or_default();
            }
            ev.sender_mentioned = classify::mentions_sender(&ev.diag, &b.addr, &senders);
            make_report(b.addr, &ev, "")
        })
        .collect()
}

/// Build classification evidence from one recipient's text block; `context` is
/// the whole report as made by [`classify::context_text`].
pub(crate) fn evidence_from_text(block: &str, context: &str, delayed: bool) -> Evidence {
    let diag = classify::diag_text(block);
    Evidence {
        status: find_status(&diag).unwrap_or_default(),
        reply: find_reply_code(&diag).unwrap_or_default(),
        command: classify::detect_command(&diag),
        action: Some(if delayed {
            Action::Delayed
        } else {
            Action::Failed
        }),
        context: context.to_string(),
        diag,
        sender_mentioned: false,
        recipient_in_diag: false,
    }
}
