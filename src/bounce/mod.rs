//! Bounce, complaint and auto-reply parser.
//!
//! A pure library module (no I/O) that turns a raw RFC 5322 message into one
//! [`RecipientReport`] per affected recipient. It understands:
//!
//! * RFC 3464 delivery status notifications (`multipart/report;
//!   report-type=delivery-status` with `message/delivery-status` parts),
//! * RFC 5965 ARF complaint reports (`report-type=feedback-report`),
//! * RFC 3834 auto-replies (`Auto-Submitted: auto-replied`, `X-Autoreply`,
//!   vacation subjects, ...),
//! * Amazon SES / SNS JSON notifications sent by e-mail,
//! * the non-standard plain-text bounces that real MTAs send (Postfix,
//!   Sendmail, Exim, qmail, Exchange, Gmail, Yahoo, Courier, Domino, ...),
//!   recognised by generic text patterns rather than by vendor.
//!
//! Reasons use the Sisimai vocabulary (see [`Reason`]).

mod arf;
mod autoreply;
mod classify;
mod dsn;
mod mime;
mod ses;
mod text;
mod util;

#[cfg(test)]
mod tests;

use std::fmt;

pub use classify::reason_is_hard;

/// One row of output: what happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecipientReport {
    /// The recipient address the report is about.
    pub recipient: String,
    /// RFC 3463 enhanced status code (`5.1.1`), empty when unknown.
    pub status: String,
    /// SMTP reply code (`550`), empty when unknown.
    pub reply_code: String,
    /// Classified reason.
    pub reason: Reason,
    /// True for permanent address problems (see [`reason_is_hard`]).
    pub hard: bool,
    /// ARF Feedback-Type for complaints (`abuse`, `auth-failure`, ...), else empty.
    pub feedback_type: String,
    /// The diagnostic text the classification was based on (whitespace collapsed).
    pub diagnostic: String,
}

impl RecipientReport {
    /// The JSON object printed by `mailstead bounce parse`.
    pub fn to_cli_json(&self) -> serde_json::Value {
        serde_json::json!({
            "recipient": self.recipient,
            "status": self.status,
            "reply_code": self.reply_code,
            "reason": self.reason.as_str(),
            "hard": self.hard,
            "feedback_type": self.feedback_type,
        })
    }
}

/// Bounce reason, in Sisimai's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    AuthFailure,
    BadReputation,
    Blocked,
    ContentError,
    Delivered,
    ExceedLimit,
    Expired,
    FailedStartTls,
    Feedback,
    Filtered,
    HasMoved,
    HostUnknown,
    MailboxFull,
    MailerError,
    MesgTooBig,
    NetworkError,
    NoRelaying,
    NotAccept,
    NotCompliantRfc,
    OnHold,
    PolicyViolation,
    Rejected,
    RequirePtr,
    SecurityError,
    SpamDetected,
    Speeding,
    Suppressed,
    Suspend,
    SyntaxError,
    SystemError,
    SystemFull,
    TooManyConn,
    Undefined,
    UserUnknown,
    Vacation,
    VirusDetected,
}

impl Reason {
    /// Every reason, in alphabetical order.
    pub const ALL: [Reason; 36] = [
        Reason::AuthFailure,
        Reason::BadReputation,
        Reason::Blocked,
        Reason::ContentError,
        Reason::Delivered,
        Reason::ExceedLimit,
        Reason::Expired,
        Reason::FailedStartTls,
        Reason::Feedback,
        Reason::Filtered,
        Reason::HasMoved,
        Reason::HostUnknown,
        Reason::MailboxFull,
        Reason::MailerError,
        Reason::MesgTooBig,
        Reason::NetworkError,
        Reason::NoRelaying,
        Reason::NotAccept,
        Reason::NotCompliantRfc,
        Reason::OnHold,
        Reason::PolicyViolation,
        Reason::Rejected,
        Reason::RequirePtr,
        Reason::SecurityError,
        Reason::SpamDetected,
        Reason::Speeding,
        Reason::Suppressed,
        Reason::Suspend,
        Reason::SyntaxError,
        Reason::SystemError,
        Reason::SystemFull,
        Reason::TooManyConn,
        Reason::Undefined,
        Reason::UserUnknown,
        Reason::Vacation,
        Reason::VirusDetected,
    ];

    /// The Sisimai name of the reason (`userunknown`, `mailboxfull`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AuthFailure => "authfailure",
            Reason::BadReputation => "badreputation",
            Reason::Blocked => "blocked",
            Reason::ContentError => "contenterror",
            Reason::Delivered => "delivered",
            Reason::ExceedLimit => "exceedlimit",
            Reason::Expired => "expired",
            Reason::FailedStartTls => "failedstarttls",
            Reason::Feedback => "feedback",
            Reason::Filtered => "filtered",
            Reason::HasMoved => "hasmoved",
            Reason::HostUnknown => "hostunknown",
            Reason::MailboxFull => "mailboxfull",
            Reason::MailerError => "mailererror",
            Reason::MesgTooBig => "mesgtoobig",
            Reason::NetworkError => "networkerror",
            Reason::NoRelaying => "norelaying",
            Reason::NotAccept => "notaccept",
            Reason::NotCompliantRfc => "notcompliantrfc",
            Reason::OnHold => "onhold",
            Reason::PolicyViolation => "policyviolation",
            Reason::Rejected => "rejected",
            Reason::RequirePtr => "requireptr",
            Reason::SecurityError => "securityerror",
            Reason::SpamDetected => "spamdetected",
            Reason::Speeding => "speeding",
            Reason::Suppressed => "suppressed",
            Reason::Suspend => "suspend",
            Reason::SyntaxError => "syntaxerror",
            Reason::SystemError => "systemerror",
            Reason::SystemFull => "systemfull",
            Reason::TooManyConn => "toomanyconn",
            Reason::Undefined => "undefined",
            Reason::UserUnknown => "userunknown",
            Reason::Vacation => "vacation",
            Reason::VirusDetected => "virusdetected",
        }
    }

    /// Parse a Sisimai reason name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Reason> {
        let lower = name.trim().to_ascii_lowercase();
        Reason::ALL.into_iter().find(|r| r.as_str() == lower)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from [`parse`].
#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    /// The input does not look like an RFC 5322 message at all.
    #[error("not an email message: {0}")]
    NotAMessage(String),
    /// The input is larger than the parser accepts.
    #[error("message too large: {0} bytes (limit {1})")]
    TooLarge(usize, usize),
}

/// What kind of feedback a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    /// A (hard or soft) delivery failure or delay.
    Bounce,
    /// An ARF / feedback-loop complaint.
    Complaint,
    /// An RFC 3834 auto-reply (vacation, out of office).
    AutoReply,
    /// A successful delivery notification.
    Delivered,
    /// Not recognised as any kind of feedback.
    Unknown,
}

/// Result of parsing one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParsedFeedback {
    /// One entry per affected recipient, in report order.
    pub recipients: Vec<RecipientReport>,
    /// The overall kind of the message.
    pub kind: FeedbackKind,
    /// Message-ID of the original (bounced / complained-about) message, if attached.
    pub original_message_id: Option<String>,
    /// Return-Path of the original message, if attached (for VERP matching).
    pub original_return_path: Option<String>,
}

/// Inputs above this size are refused (bounces are small; this bounds work).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Recipients reported per message at most (a bounce for Mailstead's own VERP mail names
/// one; a relay's report for a list message a few dozen). Bounds output and work.
pub(crate) const MAX_RECIPIENTS: usize = 1_000;

/// Parse one raw message.
///
/// Returns `Ok` with an empty recipient list (kind [`FeedbackKind::Unknown`])
/// for a well-formed message that is not a bounce, complaint or auto-reply,
/// [`BounceError::NotAMessage`] for input that has no header section or a
/// header bomb (more than 10,000 lines or 1 MiB of top-level header), and
/// [`BounceError::TooLarge`] above [`MAX_MESSAGE_BYTES`].
///
/// Work and memory are bounded: only the first 500,000 lines of a message are
/// parsed, each report or text part is read up to 256 KiB, multipart nesting
/// is followed 32 levels deep, and at most 1,000 recipients are reported.
/// Never panics.
pub fn parse(raw: &[u8]) -> Result<ParsedFeedback, BounceError> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(BounceError::TooLarge(raw.len(), MAX_MESSAGE_BYTES));
    }
    let msg = mime::extract(raw)?;
    let original_message_id = msg.original.as_ref().and_then(|o| {
        o.get("message-id")
            .map(util::strip_angle)
            .filter(|s| !s.is_empty())
    });
    let original_return_path = msg.original.as_ref().and_then(|o| {
        o.get("return-path")
            .map(util::strip_angle)
            .filter(|s| !s.is_empty())
    });

    let (kind, recipients) = detect(&msg);
    Ok(ParsedFeedback {
        recipients,
        kind,
        original_message_id,
        original_return_path,
    })
}

fn detect(msg: &mime::Extracted) -> (FeedbackKind, Vec<RecipientReport>) {
    // 1. ARF complaint reports.
    if let Some(rows) = arf::parse(msg)
        && !rows.is_empty()
    {
        return (FeedbackKind::Complaint, rows);
    }
    // 2. Amazon SES notifications delivered through SNS e-mail.
    if let Some((kind, rows)) = ses::parse(msg)
        && !rows.is_empty()
    {
        return (kind, rows);
    }
    // 3. Standard delivery status notifications (and DSN fields in plain text).
    let dsn_rows = dsn::parse(msg);
    if !dsn_rows.is_empty() {
        return (kind_of(&dsn_rows), dsn_rows);
    }
    // 4. Auto-replies (checked before free-text bounces: a vacation message
    //    is not a bounce even if it talks about delivery).
    if let Some(row) = autoreply::parse(msg) {
        return (FeedbackKind::AutoReply, vec![row]);
    }
    // 5. Free-text bounces.
    let rows = text::parse(msg);
    if !rows.is_empty() {
        return (kind_of(&rows), rows);
    }
    (FeedbackKind::Unknown, Vec::new())
}

fn kind_of(rows: &[RecipientReport]) -> FeedbackKind {
    if rows.iter().all(|r| r.reason == Reason::Delivered) {
        FeedbackKind::Delivered
    } else if rows.iter().all(|r| r.reason == Reason::Feedback) {
        FeedbackKind::Complaint
    } else if rows.iter().all(|r| r.reason == Reason::Vacation) {
        FeedbackKind::AutoReply
    } else {
        FeedbackKind::Bounce
    }
}

/// Classifies a failure met during Mailstead's own SMTP delivery (the server's answer to
/// RCPT TO or to the end of DATA), so that synchronous rejections are judged by the same
/// rules as bounce messages.
pub fn classify_reply(
    recipient: &str,
    reply_code: u16,
    status: Option<&str>,
    text: &str,
    after_data: bool,
) -> RecipientReport {
    let ev = classify::Evidence {
        diag: util::collapse_ws(text),
        status: status.unwrap_or_default().to_string(),
        reply: if reply_code == 0 {
            String::new()
        } else {
            reply_code.to_string()
        },
        command: Some(if after_data {
            classify::Command::Data
        } else {
            classify::Command::RcptTo
        }),
        action: Some(classify::Action::Failed),
        ..Default::default()
    };
    classify::make_report(recipient.to_string(), &ev, "")
}
