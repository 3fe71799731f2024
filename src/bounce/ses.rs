//! Amazon SES event notifications delivered by e-mail (SNS e-mail
//! subscriptions): a JSON document, optionally wrapped in an SNS envelope
//! whose `Message` field holds the SES JSON as a string.

use serde_json::Value;

use super::classify::{Action, Evidence, make_report};
use super::mime::Extracted;
use super::util::{collapse_ws, find_reply_code, find_status, is_plausible_address};
use super::{FeedbackKind, Reason, RecipientReport};

fn first_json_object(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let slice = text.get(start..)?;
    let mut it = serde_json::Deserializer::from_str(slice).into_iter::<Value>();
    match it.next() {
        Some(Ok(v)) if v.is_object() => Some(v),
        _ => None,
    }
}

fn ses_document(text: &str) -> Option<Value> {
    if !text.contains("notificationType") && !text.contains("eventType") {
        return None;
    }
    // Long lines may have been wrapped ("!" + newline + space, or a bare
    // newline inside a string); undo that when the text does not parse.
    let v = first_json_object(text).or_else(|| {
        let unwrapped = text
            .replace("!\r\n ", "")
            .replace("!\n ", "")
            .replace("\r\n", "")
            .replace('\n', "");
        first_json_object(&unwrapped)
    })?;
    if v.get("notificationType").is_some() || v.get("eventType").is_some() {
        return Some(v);
    }
    // SNS envelope.
    let inner = v.get("Message")?.as_str()?;
    let inner: Value = serde_json::from_str(inner).ok()?;
    (inner.get("notificationType").is_some() || inner.get("eventType").is_some()).then_some(inner)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Parse an SES notification. `None` when the message is not one.
pub(crate) fn parse(msg: &Extracted) -> Option<(FeedbackKind, Vec<RecipientReport>)> {
    let doc = msg.texts.iter().find_map(|t| ses_document(t))?;
    let kind = {
        let k = s(&doc, "notificationType");
        if k.is_empty() {
            s(&doc, "eventType")
        } else {
            k
        }
    };
    let mut rows = Vec::new();
    match kind {
        "Bounce" => {
            let bounce = doc.get("bounce")?;
            let sub = s(bounce, "bounceSubType");
            let permanent = s(bounce, "bounceType") == "Permanent";
            for r in bounce.get("bouncedRecipients")?.as_array()? {
                let addr = s(r, "emailAddress").trim().to_string();
                if !is_plausible_address(&addr) {
                    continue;
                }
                let diag = collapse_ws(s(r, "diagnosticCode"));
                let mut status = find_status(s(r, "status")).unwrap_or_default();
                if let Some(st) = find_status(&diag) {
                    status = st;
                }
                let ev = Evidence {
                    reply: find_reply_code(&diag).unwrap_or_default(),
                    status,
                    command: None,
                    action: Some(if permanent || s(r, "action") == "failed" {
                        Action::Failed
                    } else {
                        Action::Delayed
                    }),
                    context: match sub {
                        "MailboxFull" => "mailbox full".into(),
                        "MessageTooLarge" => "message too large".into(),
                        "ContentRejected" | "AttachmentRejected" => "content rejected".into(),
                        "NoEmail" => "user unknown".into(),
                        _ => String::new(),
                    },
                    diag,
                    sender_mentioned: false,
                    recipient_in_diag: false,
                };
                let mut row = make_report(addr, &ev, "");
                if matches!(sub, "Suppressed" | "OnAccountSuppressionList") {
                    row.reason = Reason::Suppressed;
                    row.hard = false;
                }
                rows.push(row);
            }
            Some((FeedbackKind::Bounce, rows))
        }
        "Complaint" => {
            let c = doc.get("complaint")?;
            let ft = s(c, "complaintFeedbackType");
            let ft = if ft.is_empty() { "abuse" } else { ft };
            for r in c.get("complainedRecipients")?.as_array()? {
                let addr = s(r, "emailAddress").trim().to_string();
                if is_plausible_address(&addr) {
                    rows.push(RecipientReport {
                        recipient: addr,
                        status: String::new(),
                        reply_code: String::new(),
                        reason: Reason::Feedback,
                        hard: false,
                        feedback_type: ft.to_string(),
                        diagnostic: String::new(),
                    });
                }
            }
            Some((FeedbackKind::Complaint, rows))
        }
        "Delivery" => {
            let d = doc.get("delivery")?;
            let resp = collapse_ws(s(d, "smtpResponse"));
            for r in d.get("recipients")?.as_array()? {
                let Some(addr) = r.as_str() else { continue };
                if !is_plausible_address(addr) {
                    continue;
                }
                let ev = Evidence {
                    status: find_status(&resp).unwrap_or_else(|| "2.0.0".into()),
                    reply: find_reply_code(&resp).unwrap_or_default(),
                    command: None,
                    action: Some(Action::Delivered),
                    context: String::new(),
                    diag: resp.clone(),
                    sender_mentioned: false,
                    recipient_in_diag: false,
                };
                rows.push(make_report(addr.to_string(), &ev, ""));
            }
            Some((FeedbackKind::Delivered, rows))
        }
        _ => None,
    }
}
