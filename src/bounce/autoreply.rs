//! RFC 3834 automatic responses (vacation / out-of-office replies).

use super::mime::Extracted;
use super::text::looks_like_bounce;
use super::{Reason, RecipientReport};

const SUBJECT_PREFIXES: &[&str] = &[
    "auto:",
    "automatic reply",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automatic response",
    "out of office",
    "out of the office",
    "ooo:",
    "away from",
    "away until",
    "on vacation",
    "vacation",
    "abwesenheit",
    "réponse automatique",
    "reponse automatique",
    "respuesta automática",
    "respuesta automatica",
    "risposta automatica",
    "resposta automática",
    "automatisch antwoord",
    "afwezig",
    "automatische antwort",
    "自動応答",
    "自动回复",
];

const BODY_PHRASES: &[&str] = &[
    "out of the office",
    "out of office",
    "on vacation",
    "on holiday",
    "on leave",
    "currently away",
    "i am away",
    "i'm away",
    "away from the office",
    "away from my desk",
    "limited access to email",
    "limited access to e-mail",
    "will respond to your message",
    "will respond to you",
    "will reply to your",
    "returning to the office",
    "back in the office",
    "upon my return",
    "when i return",
    "annual leave",
    "automatic reply",
    "auto-reply",
    "autoreply",
];

/// Strength of the auto-reply signal: header-declared, or only by content.
fn signals(msg: &Extracted) -> (bool, bool) {
    let h = &msg.headers;
    let auto_submitted = h
        .get("auto-submitted")
        .map(|v| v.to_ascii_lowercase().starts_with("auto-replied"))
        .unwrap_or(false);
    let x_auto = h.get("x-autoreply").is_some()
        || h.get("x-autorespond").is_some()
        || h.get("x-autoresponder").is_some()
        || h.get("x-vacation").is_some()
        || h.get("precedence")
            .map(|v| v.to_ascii_lowercase().contains("auto_reply"))
            .unwrap_or(false)
        || h.get("x-auto-response-suppress")
            .map(|_| false)
            .unwrap_or(false);
    let subject = msg.subject.trim().to_lowercase();
    let subject_hit = SUBJECT_PREFIXES.iter().any(|p| subject.starts_with(p))
        || subject.contains("out of office")
        || subject.contains("automatic reply")
        || subject.contains("auto reply")
        || subject.contains("autoreply");
    let body = msg.joined_text().to_lowercase();
    let body_hit = BODY_PHRASES.iter().any(|p| body.contains(p));
    (auto_submitted || x_auto, subject_hit || body_hit)
}

/// Parse an auto-reply. The "recipient" is the address that auto-replied.
pub(crate) fn parse(msg: &Extracted) -> Option<RecipientReport> {
    let (declared, content) = signals(msg);
    if !(declared || content) {
        return None;
    }
    if looks_like_bounce(msg) {
        return None;
    }
    let recipient = msg
        .from_addr
        .clone()
        .or_else(|| {
            msg.headers
                .get("from")
                .and_then(|f| super::util::find_addresses(f).into_iter().next())
                .map(|(_, a)| a)
        })
        .filter(|a| super::util::is_plausible_address(a))?;
    Some(RecipientReport {
        recipient,
        status: String::new(),
        reply_code: String::new(),
        reason: Reason::Vacation,
        hard: false,
        feedback_type: String::new(),
        diagnostic: super::util::collapse_ws(&msg.subject),
    })
}
