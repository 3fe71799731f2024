//! RFC 3464 delivery status notifications.
//!
//! The machine-readable `message/delivery-status` body is a per-message
//! field block followed by one field block per recipient. Real reports bend
//! the format (blank lines inside a group, `Action` before
//! `Final-Recipient`, the fields pasted into a text/plain part), so groups
//! are formed from the fields themselves rather than from blank lines alone.

use super::classify::{self, Action, Evidence, make_report};
use super::mime::Extracted;
use super::text::{self, Block};
use super::util::{find_addresses, find_reply_code, find_status, normalize_recipient};
use super::{MAX_RECIPIENTS, RecipientReport};

/// One per-recipient field group.
#[derive(Debug, Default, Clone)]
pub(crate) struct Group {
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    pub actual_recipient: Option<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

impl Group {
    fn has_recipient(&self) -> bool {
        self.final_recipient.is_some() || self.original_recipient.is_some()
    }
}

/// Unfold a DSN body into (lower-case name, value) fields, keeping blank
/// lines as `None` separators.
fn fields(body: &str) -> Vec<Option<(String, String)>> {
    let mut out: Vec<Option<(String, String)>> = Vec::new();
    for raw in body.lines() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            out.push(None);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(Some((_, v))) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if !n.is_empty() && !n.contains(' ') && n.len() < 64 {
                out.push(Some((n.to_ascii_lowercase(), v.trim().to_string())));
                continue;
            }
        }
        // A stray non-field line: treat as a continuation of the previous
        // field when there is one (some MTAs wrap without indentation).
        if let Some(Some((name, v))) = out.last_mut()
            && name == "diagnostic-code"
        {
            v.push(' ');
            v.push_str(line.trim());
        }
    }
    out
}

/// Parse the per-recipient groups of a delivery-status body.
pub(crate) fn groups(body: &str) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut cur = Group::default();
    // Fields seen in the current blank-line block before any recipient field.
    let mut pending: Vec<(String, String)> = Vec::new();
    for f in fields(body) {
        let Some((name, value)) = f else {
            // Blank line: close the group if it has a recipient and an action
            // or status (otherwise a blank line inside a group is tolerated).
            if cur.has_recipient() && (cur.action.is_some() || cur.status.is_some()) {
                out.push(std::mem::take(&mut cur));
            }
            pending.clear();
            continue;
        };
        match name.as_str() {
            "final-recipient" => {
                if cur.final_recipient.is_some() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.final_recipient = Some(value);
                for (n, v) in pending.drain(..) {
                    apply(&mut cur, &n, v);
                }
            }
            "original-recipient" => {
                if cur.original_recipient.is_some() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.original_recipient = Some(value);
                for (n, v) in pending.drain(..) {
                    apply(&mut cur, &n, v);
                }
            }
            "action" | "status" | "diagnostic-code" | "remote-mta" | "x-actual-recipient" => {
                if cur.has_recipient() {
                    // A second Action/Status for a group that already has one
                    // belongs to a following group that lacks a recipient line.
                    apply(&mut cur, &name, value);
                } else {
                    pending.push((name, value));
                }
            }
            _ => {}
        }
    }
    if cur.has_recipient() {
        out.push(cur);
    }
    out
}

fn apply(g: &mut Group, name: &str, value: String) {
    let slot = match name {
        "action" => &mut g.action,
        "status" => &mut g.status,
        "diagnostic-code" => &mut g.diagnostic,
        "remote-mta" => &mut g.remote_mta,
        "x-actual-recipient" => &mut g.actual_recipient,
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Text after the `type;` prefix of a Diagnostic-Code.
fn diagnostic_text(v: &str) -> String {
    let t = match v.split_once(';') {
        Some((ty, rest)) if ty.len() < 24 && !ty.contains(' ') => rest,
        _ => v,
    };
    classify::diag_text(t)
}

fn recipient_of(g: &Group) -> Option<String> {
    let all: Vec<String> = [
        &g.final_recipient,
        &g.original_recipient,
        &g.actual_recipient,
    ]
    .into_iter()
    .flatten()
    .filter_map(|v| normalize_recipient(v))
    .collect();
    // Prefer a fully qualified address (Final-Recipient may be a local
    // alias such as user@server).
    all.iter()
        .find(|a| a.rsplit('@').next().is_some_and(|d| d.contains('.')))
        .or_else(|| all.first())
        .cloned()
}

/// Does a text part carry DSN fields inline (no separate MIME part)?
fn inline_dsn(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let has_recipient =
        lower.contains("\nfinal-recipient:") || lower.contains("\noriginal-recipient:");
    let has_state = lower.contains("\naction:") || lower.contains("\nstatus:");
    if !(has_recipient && has_state) {
        return None;
    }
    // Start at the first recipient-ish field's block.
    let start = lower
        .find("\nreporting-mta:")
        .or_else(|| lower.find("\nfinal-recipient:"))
        .or_else(|| lower.find("\noriginal-recipient:"))?;
    let slice = text.get(start..)?;
    let cut = text::cut_original(slice);
    Some(cut.to_string())
}

/// The human-readable part of a text that may continue with inline DSN fields.
fn cut_inline_fields(text: &str) -> &str {
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        let l = line.trim_start().to_ascii_lowercase();
        if l.starts_with("reporting-mta:")
            || l.starts_with("final-recipient:")
            || l.starts_with("original-envelope-id:")
            || l.starts_with("content-type: message/delivery-status")
        {
            return text.get(..pos).unwrap_or(text);
        }
        pos += line.len();
    }
    text
}

/// Parse every DSN in the message into output rows.
pub(crate) fn parse(msg: &Extracted) -> Vec<RecipientReport> {
    let mut all: Vec<Group> = Vec::new();
    for body in &msg.delivery_status {
        all.extend(groups(body));
    }
    if all.is_empty() {
        for t in &msg.texts {
            if let Some(inline) = inline_dsn(t) {
                all.extend(groups(&inline));
            }
        }
    }
    all.truncate(MAX_RECIPIENTS);
    if all.is_empty() {
        return Vec::new();
    }

    // The human-readable explanation is the first text part of a report.
    let full = msg.texts.first().cloned().unwrap_or_default();
    let human = cut_inline_fields(text::cut_original(&full));
    let senders = text::sender_addresses(msg);
    let blocks = text::recipient_blocks(human, &senders);
    let delayed_msg = text::is_delay_warning(&msg.subject, human);
    let human_context = classify::context_text(human);

    let failed: Vec<String> = msg
        .headers
        .get_all("x-failed-recipients")
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().trim_matches(['<', '>']).to_string())
        .filter(|a| a.contains('@'))
        .collect();

    let mut rows: Vec<RecipientReport> = Vec::new();
    let single = all.len() == 1;
    for g in &all {
        let recipient = match recipient_of(g) {
            Some(r) => r,
            None => {
                // e.g. Final-Recipient is a local path: use X-Failed-Recipients.
                match failed
                    .first()
                    .cloned()
                    .or_else(|| blocks.first().map(|b| b.addr.clone()).filter(|_| single))
                {
                    Some(a) => a,
                    None => continue,
                }
            }
        };
        let block = find_block(&blocks, g, &recipient, single);
        let mut ev = evidence(g, block, &human_context, delayed_msg);
        ev.sender_mentioned = classify::mentions_sender(&ev.diag, &recipient, &senders);
        rows.push(make_report(recipient, &ev, ""));
    }
    rows
}

fn find_block<'a>(
    blocks: &'a [Block],
    g: &Group,
    recipient: &str,
    single: bool,
) -> Option<&'a Block> {
    let mut names: Vec<String> = vec![recipient.to_string()];
    for v in [
        &g.final_recipient,
        &g.original_recipient,
        &g.actual_recipient,
    ]
    .into_iter()
    .flatten()
    {
        names.extend(find_addresses(v).into_iter().map(|(_, a)| a));
    }
    blocks
        .iter()
        .find(|b| names.iter().any(|n| n.eq_ignore_ascii_case(&b.addr)))
        .or_else(|| {
            if single && blocks.len() == 1 {
                blocks.first()
            } else {
                None
            }
        })
}

/// `human_context` is the report's explanation as made by [`classify::context_text`].
fn evidence(g: &Group, block: Option<&Block>, human_context: &str, delayed_msg: bool) -> Evidence {
    let dsn_diag = g
        .diagnostic
        .as_deref()
        .map(diagnostic_text)
        .unwrap_or_default();
    let block_text = block
        .map(|b| classify::diag_text(&b.text))
        .unwrap_or_default();
    let ds_status = g
        .status
        .as_deref()
        .and_then(find_status)
        .unwrap_or_default();

    // Diagnostic: the DSN's own, else the human-readable block.
    let diag_has_words = dsn_diag.chars().filter(|c| c.is_alphabetic()).count() >= 3;
    let diag = if diag_has_words {
        dsn_diag.clone()
    } else if !block_text.is_empty() {
        if dsn_diag.is_empty() {
            block_text.clone()
        } else {
            format!("{dsn_diag} {block_text}")
        }
    } else {
        dsn_diag.clone()
    };

    // Status: a code quoted in the server's reply is more precise than the
    // reporting MTA's summary.
    let mut status = find_status(&diag).unwrap_or_default();
    if status.is_empty() {
        status = ds_status.clone();
    }
    if (status.is_empty() || status.ends_with(".0.0"))
        && let Some(s) = find_status(&block_text)
        && !s.ends_with(".0.0")
    {
        status = s;
    }
    let reply = find_reply_code(&diag)
        .or_else(|| find_reply_code(&block_text))
        .unwrap_or_default();

    let command =
        classify::detect_command(&block_text).or_else(|| classify::detect_command(&dsn_diag));
    let mut action = g.action.as_deref().and_then(Action::parse);
    if action.is_none() && delayed_msg {
        action = Some(Action::Delayed);
    }
    let context = if block_text.is_empty() {
        human_context.to_string()
    } else {
        block_text
    };
    Evidence {
        diag,
        status,
        reply,
        command,
        action,
        context,
        sender_mentioned: false,
        recipient_in_diag: false,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn groups_with_blank_line_inside() {
        let body = "Reporting-MTA: dns; a.example\n\nFinal-Recipient: rfc822; a@b.example\n\nAction: failed\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; c@d.example\nAction: failed\nStatus: 5.2.2\n";
        let g = groups(body);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(g[1].status.as_deref(), Some("5.2.2"));
    }

    #[test]
    fn action_before_recipient() {
        let body = "Reporting-MTA: dsn; x\n\nAction: failed\nFinal-Recipient: rfc822; a@b.example\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\nStatus: 5.1.1\n";
        let g = groups(body);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].action.as_deref(), Some("failed"));
    }
}
