//! RFC 5965 Abuse Reporting Format (feedback-loop complaints) and RFC 6591
//! authentication-failure reports.

use super::mime::Extracted;
use super::util::{Headers, find_addresses, normalize_recipient, parse_header_block};
use super::{Reason, RecipientReport};

fn report_fields(msg: &Extracted) -> Option<Headers> {
    for body in &msg.feedback_report {
        let (h, _) = parse_header_block(body.trim_start());
        if !h.is_empty() {
            return Some(h);
        }
    }
    // Some senders paste the report fields into a text part.
    if msg.report_type == "feedback-report" || msg.feedback_report.is_empty() {
        for t in &msg.texts {
            let lower = t.to_ascii_lowercase();
            if let Some(p) = lower.find("feedback-type:")
                && (p == 0 || lower.as_bytes().get(p - 1) == Some(&b'\n'))
            {
                let (h, _) = parse_header_block(t.get(p..).unwrap_or(""));
                if h.get("feedback-type").is_some() {
                    return Some(h);
                }
            }
        }
    }
    None
}

/// Parse a complaint report. `None` when the message is not one.
pub(crate) fn parse(msg: &Extracted) -> Option<Vec<RecipientReport>> {
    // Microsoft JMRP complaints are not ARF but carry the complaining
    // recipient in a header of their own.
    if let Some(v) = msg.headers.get("x-hmxmroriginalrecipient")
        && let Some(recipient) = normalize_recipient(v)
    {
        return Some(vec![RecipientReport {
            recipient,
            status: String::new(),
            reply_code: String::new(),
            reason: Reason::Feedback,
            hard: false,
            feedback_type: "abuse".to_string(),
            diagnostic: String::new(),
        }]);
    }
    let is_report = msg.report_type == "feedback-report" || !msg.feedback_report.is_empty();
    let fields = report_fields(msg);
    if !is_report && fields.is_none() {
        return None;
    }
    let fields = fields.unwrap_or_default();
    let feedback_type = fields
        .get("feedback-type")
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "abuse".to_string());

    let mut recipients: Vec<String> = Vec::new();
    fn push(recipients: &mut Vec<String>, a: String) {
        if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&a)) {
            recipients.push(a);
        }
    }
    for name in ["original-rcpt-to", "removal-recipient"] {
        for v in fields.get_all(name) {
            if let Some(a) = normalize_recipient(v) {
                push(&mut recipients, a);
            }
        }
    }
    if recipients.is_empty()
        && let Some(orig) = &msg.original
    {
        for v in orig.get_all("to") {
            for (_, a) in find_addresses(v) {
                push(&mut recipients, a);
            }
        }
    }
    if recipients.is_empty() {
        return Some(Vec::new());
    }
    Some(
        recipients
            .into_iter()
            .map(|recipient| RecipientReport {
                recipient,
                status: String::new(),
                reply_code: String::new(),
                reason: Reason::Feedback,
                hard: false,
                feedback_type: feedback_type.clone(),
                diagnostic: String::new(),
            })
            .collect(),
    )
}
