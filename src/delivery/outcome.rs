//! Per-recipient delivery outcomes: what a queue worker stores and acts on.

use std::fmt;
use std::time::SystemTime;

use super::smtp::reply::Reply;

/// Where in the delivery attempt something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Checking the envelope before any network traffic.
    Validate,
    /// Resolving MX / A / AAAA records.
    Dns,
    /// Waiting for shaping (site on hold, no connection slot).
    Shaping,
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the 220 greeting.
    Greeting,
    /// EHLO / HELO.
    Ehlo,
    /// STARTTLS and the TLS handshake.
    StartTls,
    /// AUTH (relay mode).
    Auth,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// DATA command (before the 354).
    Data,
    /// Sending the message and waiting for the final reply.
    DataEnd,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Stage::Validate => "validate",
            Stage::Dns => "dns",
            Stage::Shaping => "shaping",
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "ehlo",
            Stage::StartTls => "starttls",
            Stage::Auth => "auth",
            Stage::MailFrom => "mail-from",
            Stage::RcptTo => "rcpt-to",
            Stage::Data => "data",
            Stage::DataEnd => "data-end",
        };
        f.write_str(s)
    }
}

/// Why a recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureCause {
    /// The server answered 4xx or 5xx.
    Reply(Reply),
    /// The server never answered within the timeout for the stage.
    Timeout,
    /// The server closed the connection (e.g. in the middle of DATA).
    ConnectionClosed,
    /// The server sent something that is not an SMTP reply.
    Protocol(String),
    /// Another network error (connection refused, reset, unreachable, …).
    Io(String),
    /// TLS could not be negotiated where the policy requires it, or the
    /// handshake failed.
    Tls(String),
    /// The message is larger than the SIZE the server announced.
    MessageTooLarge {
        /// Size of the message in octets.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// The envelope needs SMTPUTF8 and the server does not offer it.
    SmtpUtf8Unsupported,
    /// The recipient address is not acceptable (syntax, length, CR/LF injection).
    InvalidAddress(String),
    /// The sender (reverse path) is not acceptable: a configuration error,
    /// never a reason to suppress the recipient.
    InvalidSender(String),
    /// DNS gave no usable mail host (permanent) or failed (temporary).
    Dns(String),
    /// The site is on hold after rate-limit replies, until the given time.
    SiteOnHold {
        /// When sending to the site may resume.
        until: SystemTime,
    },
    /// No connection slot for the site became free in time.
    Busy,
    /// The relay refused our credentials or offered no usable mechanism.
    Auth(String),
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Reply(r) => write!(f, "{r}"),
            FailureCause::Timeout => f.write_str("timed out waiting for the server"),
            FailureCause::ConnectionClosed => f.write_str("connection closed by the server"),
            FailureCause::Protocol(s) => write!(f, "protocol error: {s}"),
            FailureCause::Io(s) => write!(f, "network error: {s}"),
            FailureCause::Tls(s) => write!(f, "TLS: {s}"),
            FailureCause::MessageTooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} octets exceeds the server limit of {limit}"
                )
            }
            FailureCause::SmtpUtf8Unsupported => {
                f.write_str("the address needs SMTPUTF8, which the server does not offer")
            }
            FailureCause::InvalidAddress(s) => write!(f, "invalid address: {s}"),
            FailureCause::InvalidSender(s) => write!(f, "invalid sender: {s}"),
            FailureCause::Dns(s) => write!(f, "DNS: {s}"),
            FailureCause::SiteOnHold { .. } => f.write_str("site on hold after rate limiting"),
            FailureCause::Busy => f.write_str("no connection slot free for the site"),
            FailureCause::Auth(s) => write!(f, "authentication: {s}"),
        }
    }
}

/// A failed attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// Why.
    pub cause: FailureCause,
    /// The MX host involved, if a connection was made or attempted.
    pub host: Option<String>,
}

impl Failure {
    /// A failure without a host.
    pub fn new(stage: Stage, cause: FailureCause) -> Self {
        Self {
            stage,
            cause,
            host: None,
        }
    }

    /// The server reply, when the failure is one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.cause {
            FailureCause::Reply(r) => Some(r),
            _ => None,
        }
    }

    /// A policy failure (x.7.x): about the sender or its reputation. Never a
    /// reason to suppress the address.
    pub fn is_policy(&self) -> bool {
        self.reply().is_some_and(Reply::is_policy)
    }

    /// Whether this failure is permanent for the recipient.
    pub fn is_permanent(&self) -> bool {
        match &self.cause {
            FailureCause::Reply(r) => r.is_permanent(),
            FailureCause::MessageTooLarge { .. }
            | FailureCause::SmtpUtf8Unsupported
            | FailureCause::InvalidAddress(_)
            | FailureCause::InvalidSender(_) => true,
            // Permanence of DNS failures is decided by the resolver; the
            // engine builds those with `Bounced` or `Deferred` directly.
            _ => false,
        }
    }

    /// Hint for the suppression list: a permanent rejection of this very
    /// address at RCPT (not policy, not the message, not the sender), or an
    /// address that is syntactically unusable.
    pub fn suggests_suppression(&self) -> bool {
        match &self.cause {
            FailureCause::InvalidAddress(_) => true,
            FailureCause::Reply(r) => {
                self.stage == Stage::RcptTo
                    && r.is_permanent()
                    && !r.is_policy()
                    // 5.1.x (bad address) or a bare 550/551/553 without an
                    // enhanced code; 5.2.x (mailbox full/disabled) and others
                    // are left to the bounce classifier.
                    && match r.enhanced {
                        Some(e) => e.subject == 1,
                        None => matches!(r.code, 550 | 551 | 553),
                    }
            }
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{} at {} ({})", self.cause, self.stage, h),
            None => write!(f, "{} at {}", self.cause, self.stage),
        }
    }
}

/// The outcome for one recipient of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The server accepted the message for this recipient (final 2xx reply).
    Delivered {
        /// The final reply to the message data.
        reply: Reply,
        /// The host that accepted it.
        host: String,
        /// Whether the session was encrypted.
        tls: bool,
    },
    /// Temporary failure: retry later (see [`super::shaping::RetryPolicy`]).
    Deferred(Failure),
    /// Permanent failure: give up and report a bounce.
    Bounced(Failure),
}

impl DeliveryStatus {
    /// Builds `Deferred` or `Bounced` from a failure's permanence.
    pub fn from_failure(failure: Failure) -> Self {
        if failure.is_permanent() {
            DeliveryStatus::Bounced(failure)
        } else {
            DeliveryStatus::Deferred(failure)
        }
    }

    /// `Delivered`.
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryStatus::Delivered { .. })
    }

    /// `Deferred`.
    pub fn is_deferred(&self) -> bool {
        matches!(self, DeliveryStatus::Deferred(_))
    }

    /// `Bounced`.
    pub fn is_bounced(&self) -> bool {
        matches!(self, DeliveryStatus::Bounced(_))
    }

    /// The failure, for `Deferred` and `Bounced`.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            DeliveryStatus::Deferred(f) | DeliveryStatus::Bounced(f) => Some(f),
            DeliveryStatus::Delivered { .. } => None,
        }
    }
}

/// The outcome for one recipient, in the order the recipients were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient address as given.
    pub recipient: String,
    /// What happened.
    pub status: DeliveryStatus,
}
