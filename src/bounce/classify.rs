//! Reason classification from the diagnostic text, the RFC 3463 enhanced
//! status code, the SMTP reply code and the SMTP command that failed.
//!
//! Text evidence is checked first, in a fixed priority order (specific
//! phrases such as "mailbox full" before generic ones such as "rejected");
//! the status code is the fallback, and a few context rules (which SMTP
//! command failed, whether the report is a final failure or a delay) refine
//! the result.

use super::mime::prefix;
use super::util::collapse_ws;
use super::{Reason, RecipientReport};

/// The SMTP phase in which the remote server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Connect,
    Helo,
    MailFrom,
    RcptTo,
    Data,
}

/// RFC 3464 Action values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        let l = s.trim().to_ascii_lowercase();
        let word = l.split([' ', '(', ';']).next().unwrap_or("");
        match word {
            "failed" | "failure" => Some(Action::Failed),
            "delayed" => Some(Action::Delayed),
            "delivered" => Some(Action::Delivered),
            "relayed" => Some(Action::Relayed),
            "expanded" => Some(Action::Expanded),
            _ => None,
        }
    }
}

/// Everything known about one recipient's failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    /// Diagnostic text (server reply and/or human explanation).
    pub diag: String,
    /// Enhanced status code, may be empty.
    pub status: String,
    /// SMTP reply code, may be empty.
    pub reply: String,
    pub command: Option<Command>,
    pub action: Option<Action>,
    /// Extra text that only counts when nothing else explains the failure
    /// (e.g. "message has been in the queue too long" boilerplate).
    pub context: String,
    /// The diagnostic quotes the original sender's address but not the
    /// recipient's.
    pub sender_mentioned: bool,
    /// The diagnostic quotes the recipient's address.
    pub recipient_in_diag: bool,
}

/// Diagnostic text looked at per recipient: a server's reply and the report's
/// explanation fit easily; anything longer is boilerplate or hostile.
const MAX_DIAG_BYTES: usize = 16 * 1024;
/// Report text consulted as context.
const MAX_CONTEXT_BYTES: usize = 32 * 1024;

/// `text` with whitespace collapsed, at most [`MAX_DIAG_BYTES`] long.
pub(crate) fn diag_text(text: &str) -> String {
    prefix(
        &collapse_ws(prefix(text, 2 * MAX_DIAG_BYTES)),
        MAX_DIAG_BYTES,
    )
    .to_string()
}

/// `text` with whitespace collapsed, at most [`MAX_CONTEXT_BYTES`] long.
pub(crate) fn context_text(text: &str) -> String {
    prefix(
        &collapse_ws(prefix(text, 4 * MAX_CONTEXT_BYTES)),
        MAX_CONTEXT_BYTES,
    )
    .to_string()
}

/// Does `diag` mention one of `senders` but not `recipient`?
pub(crate) fn mentions_sender(diag: &str, recipient: &str, senders: &[String]) -> bool {
    let l = diag.to_ascii_lowercase();
    if l.contains(&recipient.to_ascii_lowercase()) {
        return false;
    }
    senders
        .iter()
        .any(|s| s.len() > 3 && l.contains(&s.to_ascii_lowercase()))
}

/// Is a bounce with this reason a hard (permanent, address-level) bounce?
///
/// True for `userunknown`, `hostunknown`, `hasmoved`, and for `notaccept`
/// when the status class or reply code is permanent (5xx).
pub fn reason_is_hard(reason: Reason, status: &str, reply_code: &str) -> bool {
    match reason {
        Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved => true,
        Reason::NotAccept => status.starts_with('5') || reply_code.starts_with('5'),
        _ => false,
    }
}

/// Detect the failing SMTP command from transcript-like text.
pub(crate) fn detect_command(text: &str) -> Option<Command> {
    let l = text.to_ascii_lowercase();
    // (needle, command); the earliest occurrence in the text wins.
    const NEEDLES: &[(&str, Command)] = &[
        ("in reply to rcpt to", Command::RcptTo),
        ("after rcpt to", Command::RcptTo),
        (">>> rcpt to", Command::RcptTo),
        ("rcpt to command", Command::RcptTo),
        ("[rcpt_to]", Command::RcptTo),
        ("in reply to end of data", Command::Data),
        ("after end of data", Command::Data),
        ("in reply to data", Command::Data),
        ("after data", Command::Data),
        (">>> data", Command::Data),
        ("did not like our final data", Command::Data),
        ("failed after i sent the message", Command::Data),
        ("did not like our data", Command::Data),
        ("end of data command", Command::Data),
        ("in reply to mail from", Command::MailFrom),
        ("after mail from", Command::MailFrom),
        (">>> mail from", Command::MailFrom),
        ("did not like our mail from", Command::MailFrom),
        ("sender was rejected", Command::MailFrom),
        ("[mail_from]", Command::MailFrom),
        ("after initial connection", Command::Connect),
        ("refused to talk to me", Command::Connect),
        ("while connecting to", Command::Connect),
        ("greeting", Command::Connect),
        ("in reply to ehlo", Command::Helo),
        ("in reply to helo", Command::Helo),
        ("after ehlo", Command::Helo),
        ("after helo", Command::Helo),
        (">>> ehlo", Command::Helo),
        (">>> helo", Command::Helo),
        ("my name was rejected", Command::Helo),
        ("did not like our rcpt", Command::RcptTo),
        ("rcpt to response", Command::RcptTo),
        ("smtp command data", Command::Data),
        ("command data", Command::Data),
        ("after rcpt command", Command::RcptTo),
        ("smtp:rcpt", Command::RcptTo),
        ("does not like recipient", Command::RcptTo),
    ];
    let mut best: Option<(usize, Command)> = None;
    for &(needle, cmd) in NEEDLES {
        if let Some(p) = l.find(needle)
            && best.is_none_or(|(bp, _)| p < bp)
        {
            best = Some((p, cmd));
        }
    }
    best.map(|(_, c)| c)
}

/// Remove SMTP continuation prefixes (`550-5.7.1`, `550 5.1.1`) that break
/// phrases in multi-line replies, and lower-case.
fn normalize_for_match(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for tok in s.split_whitespace() {
        let t = tok.trim_end_matches([':', ',']);
        let is_code = t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit());
        let is_code_dash = t.len() >= 4
            && t.as_bytes().get(3) == Some(&b'-')
            && t.as_bytes()[..3].iter().all(|b| b.is_ascii_digit());
        let is_status = t.len() >= 5
            && t.len() <= 9
            && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && t.matches('.').count() == 2
            && t.starts_with(['2', '4', '5']);
        if is_code || is_status {
            continue;
        }
        let tok = if is_code_dash {
            let rest = tok.get(4..).unwrap_or("");
            let rt = rest.trim_end_matches([':', ',']);
            if rt.is_empty()
                || (rt.bytes().all(|b| b.is_ascii_digit() || b == b'.') && rt.contains('.'))
            {
                continue;
            }
            rest
        } else {
            tok
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&tok.to_lowercase());
    }
    out
}

/// Phrase table: checked in order; the first reason with a matching phrase
/// wins. Phrases are lower case and matched as substrings of the
/// normalised diagnostic.
const PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::MailboxFull,
        &[
            "mailbox exceeded",
            "mailbox has exceeded",
            "mailbox full",
            "mailbox is full",
            "mailbox is currently full",
            "mailbox has exceeded",
            "mailbox size limit",
            "mailbox quota",
            "mail box full",
            "mailfolder is full",
            "mail quota",
            "quota exceeded",
            "exceeded quota",
            "exceeds quota",
            "over quota",
            "overquota",
            "over the quota",
            "quota full",
            "quota has been exceeded",
            "quota exceed",
            "exceeded its quota",
            "exceeded the quota",
            "exceeded storage",
            "disk quota",
            "user is over",
            "is over its",
            "not enough storage",
            "insufficient storage",
            "storage limit",
            "storage quota",
            "mailbox exceeds",
            "inbox is full",
            "inbox full",
            "full mailbox",
            "account is full",
            "maildir over quota",
            "maildir has overdrawn",
            "box full",
            "mailbox size exceeded",
            "user's mailbox is full",
            "has too many messages",
            "too much mail data",
            "quota violation",
            "exceed mailbox",
            "recipient's mailbox is full",
            "boite pleine",
            "casella piena",
            "postfach voll",
        ],
    ),
    (
        Reason::MesgTooBig,
        &[
            "recipsizelimit",
            "sendsizelimit",
            "message size over limit",
            "too large for",
            "message size limit exceeded",
            "message too large",
            "message is too large",
            "message too big",
            "message is too big",
            "message size exceeds",
            "message exceeds the maximum",
            "exceeds the maximum message size",
            "exceeds maximum message size",
            "exceeds size limit",
            "message size limit",
            "size limit exceeded",
            "exceeded maximum message size",
            "exceeds the size limit",
            "mail size limit",
            "message length exceeds",
            "max message size",
            "maximum message size",
            "message file too big",
            "size of the message exceeds",
            "too big for",
            "email is too large",
            "line limit exceeded",
            "message exceeded",
        ],
    ),
    (
        Reason::ExceedLimit,
        &[
            "message size exceeds fixed limit",
            "recipient's limit",
            "exceeds the limit of the recipient",
        ],
    ),
    (
        Reason::BadReputation,
        &[
            "reputation",
            "unexpected volume or user complaints",
            "sender score",
            "senderscore",
        ],
    ),
    (
        Reason::Speeding,
        &[
            "sent to too many recipients",
            "too many recipients this",
            "receiving mail at a rate",
            "receiving mail too quickly",
            "rate that prevents",
            "sending too fast",
            "too many messages in a short",
            "too much mail",
            "you are sending too",
            "message rate limit",
            "rate limit exceeded for",
            "exceeded the rate limit",
            "temporarily rate limited",
            "sending rate",
            "throttled",
            "throttling",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "account is blocked",
            "recipient account is blocked",
            "account disabled",
            "account is disabled",
            "account has been disabled",
            "account has been suspended",
            "account is suspended",
            "account suspended",
            "account is inactive",
            "account inactive",
            "inactive account",
            "inactive user",
            "user is inactive",
            "is disabled",
            "has been disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "mailbox has been disabled",
            "mailbox is inactive",
            "mailbox has been suspended",
            "mailbox is frozen",
            "mailbox unavailable due to inactivity",
            "account has been locked",
            "account is locked",
            "account expired",
            "account has expired",
            "deactivated",
            "temporarily disabled",
            "recipient suspended",
            "user suspended",
            "is suspended",
            "not an active",
            "this account has been",
            "account is closed",
            "account closed",
            "address is no longer active",
            "service is stopped",
            "blocked by the recipient's account",
        ],
    ),
    (
        Reason::HasMoved,
        &[
            "has moved",
            "has been moved",
            "address has changed",
            "no longer at this address",
            "new address",
            "changed their address",
        ],
    ),
    (
        Reason::VirusDetected,
        &[
            "virus detected",
            "virus found",
            "contains a virus",
            "contained a virus",
            "infected with",
            "virus infected",
            "infected by",
            "malware detected",
            "contains malware",
            "malicious content",
            "malicious attachment",
            "malicious code",
            "message contains a virus",
            "virus was detected",
            "virus scan",
            "viruses",
            "trojan",
            " worm ",
        ],
    ),
    (
        Reason::NotCompliantRfc,
        &[
            "rfc 5322",
            "rfc5322",
            "rfc 2822",
            "rfc2822",
            "rfc 822",
            "rfc822 compliant",
            "rfc 1123",
            "not rfc",
            "not compliant",
            "non-compliant",
            "multiple addresses in from",
            "addresses in from: header",
            "addresses in from header",
            "duplicate header",
            "multiple from",
            "missing required header",
            "header is missing",
            "missing header",
            "malformed header",
            "invalid header",
            "bare lf",
            "bare linefeed",
            "bare <lf>",
            "message is not rfc",
            "improperly formatted",
            "messages with multiple",
        ],
    ),
    (
        Reason::SpamDetected,
        &[
            "suspicion of spam",
            "suspected of spam",
            "message is likely unsolicited",
            "likely unsolicited mail",
            "rejected due to spam",
            "spam classification",
            "blacklisted url",
            "url in message",
            "scored as spam",
            "considered spam",
            "considered as spam",
            "classified as spam",
            "identified as spam",
            "detected as spam",
            "spam detected",
            "spam message",
            "message is spam",
            "looks like spam",
            "marked as spam",
            "rejected as spam",
            "suspected spam",
            "likely spam",
            "spam content",
            "spam score",
            "spamscore",
            "spam filter",
            "spamassassin",
            "spam not accepted",
            "spam rejected",
            "- spam",
            "this message is spam",
            "content is spam",
            "blocked as spam",
            "junk mail",
            "spamming",
            "unsolicited",
            "bulk email",
            "bulk mail",
            "x-spam",
            "as spam",
            "high probability of spam",
            "message content rejected",
            "content rejected",
            "considered unsolicited",
            "spam-like",
            "spam policy",
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "spf",
            "dkim",
            "dmarc",
            "sender policy framework",
            "domainkeys",
            "unauthenticated email",
            "fails to pass authentication",
            "does not have authentication information",
            "authentication checks",
            "not pass authentication",
            "sender authentication failed",
            "sender id",
            "senderid",
        ],
    ),
    (
        Reason::RequirePtr,
        &[
            "mismatches client ip",
            "ptr record",
            "ptr resource record",
            "no ptr",
            "dns ptr",
            "reverse dns",
            "reverse-dns",
            "reverse lookup",
            "reverse mapping",
            "reverse hostname",
            "reverse name",
            "rdns",
            "r-dns",
            "ip name lookup failed",
            "ip name possibly forged",
            "cannot find your hostname",
            "cannot resolve your address",
            "unresolvable relay host name",
            "unverifyable sending ip",
            "unverifiable sending ip",
            "no reverse",
            "hostname does not match",
            "resolve your ip",
            "client host name",
            "cannot find your reverse",
            "without a valid sender domain",
            "name lookup for your ip",
            "lookup of your ip",
            "reverse dns lookup",
            "does not resolve to",
            "your ip address doesn't resolve",
        ],
    ),
    (
        Reason::FailedStartTls,
        &[
            "does not support tls",
            "support starttls",
            "starttls",
            "start tls",
            "tls required",
            "tls is required",
            "requires tls",
            "require tls",
            "encryption required",
            "encryption is required",
            "must use tls",
            "tls negotiation failed",
            "tls handshake",
            "secure connection required",
            "requiretls",
        ],
    ),
    (
        Reason::NoRelaying,
        &[
            "insecure mail relay",
            "mail relay",
            "relay access denied",
            "relaying denied",
            "relay denied",
            "relaying not allowed",
            "relay not allowed",
            "relay not permitted",
            "not permitted to relay",
            "not allowed to relay",
            "unable to relay",
            "relaying mail to",
            "relay mail",
            "we do not relay",
            "no relaying",
            "relaying prohibited",
            "relay prohibited",
            "cannot relay",
            "can't relay",
            "relay rejected",
            "not our customer",
            "email address is not verified",
            "relaying to",
            "not a gateway",
            "not configured to relay",
            "does not relay",
            "open relay",
        ],
    ),
    (
        Reason::ContentError,
        &[
            "8-bit data",
            "8bit data",
            "8-bit character",
            "headers too large",
            "header too large",
            "too many headers",
            "content error",
            "message content",
            "data format error",
            "illegal character",
            "invalid character",
            "mime error",
            "corrupt message",
            "media error",
            "conversion required",
        ],
    ),
    (
        Reason::PolicyViolation,
        &[
            "policy that prohibited",
            "prohibited by policy",
            "message not accepted for policy reasons",
            "policy violation",
            "protocol violation",
            "violates our",
            "violation of",
            "denied by policy",
            "local policy",
            "security policy",
            "policy reasons",
            "by policy",
            "policy rejection",
            "policies",
            "content presents a potential",
            "potential security issue",
            "header error",
            "prohibited attachment",
            "attachment is not allowed",
            "file type",
            "message contains",
            "not allowed by",
            "due to policy",
            "policy restriction",
            "against policy",
            "acceptable use",
        ],
    ),
    (
        Reason::SecurityError,
        &[
            "resolver.rst.authrequired",
            "authrequired",
            "unauthenticated senders",
            "authentication required",
            "authentication is required",
            "must authenticate",
            "please authenticate",
            "sender is not authenticated",
            "authentication failed",
            "authentication credentials",
            "auth required",
            "smtp auth",
            "not authenticated",
            "invalid credentials",
            "security error",
            "insecure",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "connection frequency",
            "too many connections",
            "too many concurrent",
            "too many simultaneous",
            "connection rate limit",
            "connection limit",
            "too many sessions",
            "connections from your ip",
            "maximum number of connections",
            "too many smtp sessions",
            "too many errors",
            "too many hosts",
        ],
    ),
    (
        Reason::Rejected,
        &[
            "not a member",
            "sender address rejected",
            "sender rejected",
            "sender is rejected",
            "sender denied",
            "sender not allowed",
            "sender not permitted",
            "sender blocked",
            "sender is blocked",
            "sender verify failed",
            "sender verification failed",
            "sender address verification",
            "could not verify sender",
            "unverified sender",
            "invalid sender",
            "bad sender",
            "domain of sender address",
            "sender domain",
            "sender's domain",
            "unroutable sender",
            "sender address is invalid",
            "envelope sender",
            "envelope from",
            "mail from address",
            "from address rejected",
            "mail from rejected",
            "return path",
            "return-path",
            "address that has been blacklisted",
            "sending to/from",
            "you are not allowed to send",
            "you are not permitted to post",
            "not have permission to post",
            "may not exist, or you may not have permission",
            "have permission to post",
            "does not accept mail from",
            "sender address has null mx",
            "is not allowed to send",
            "not authorized to send",
            "your address is blacklisted",
            "sender is on",
            "address is blacklisted",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "domain is not reachable",
            "host unknown",
            "unknown host",
            "host not found",
            "domain not found",
            "no such domain",
            "unknown domain",
            "domain unknown",
            "domain does not exist",
            "domain doesn't exist",
            "domain name not found",
            "host or domain name not found",
            "couldn't find any host",
            "could not find any host",
            "name or service not known",
            "unrouteable address",
            "unroutable address",
            "invalid domain",
            "domain is invalid",
            "no such host",
            "hostname not found",
            "domain not exist",
            "not a valid domain",
            "nxdomain",
            "non-existent domain",
            "nonexistent domain",
            "domain name is not valid",
            "can't find domain",
            "bad destination system address",
            "domain isn't in my list",
            "not in my list of allowed rcpthosts",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "recipnotfound",
            "recipientnotfound",
            "resolver.adr.recip",
            "no such person",
            "user does not exist here",
            "address is not valid",
            "not a valid address",
            "unknown account",
            "mailbox is not available",
            "user account does not exist",
            "check if address is correct",
            "check if the address is correct",
            "address couldn't be found",
            "address could not be found",
            "recipient name is not recognized",
            "no valid recipients",
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "no such account",
            "no such address",
            "no mailbox",
            "user not found",
            "user doesn't exist",
            "user does not exist",
            "user not exist",
            "recipient not found",
            "recipient unknown",
            "unknown recipient",
            "recipient does not exist",
            "recipient doesn't exist",
            "recipient is not",
            "invalid recipient",
            "recipient invalid",
            "mailbox not found",
            "mailbox unavailable",
            "mailbox does not exist",
            "mailbox doesn't exist",
            "mailbox is unavailable",
            "invalid mailbox",
            "mailbox invalid",
            "not a valid mailbox",
            "no valid mailbox",
            "account does not exist",
            "account doesn't exist",
            "account not found",
            "address does not exist",
            "address doesn't exist",
            "address unknown",
            "unknown address",
            "address not found",
            "address invalid",
            "invalid address",
            "bad address",
            "unknown or illegal",
            "illegal alias",
            "unknown alias",
            "no such local user",
            "unknown local part",
            "unknown local-part",
            "not a known user",
            "is not a valid user",
            "no account",
            "doesn't have a",
            "does not have an account",
            "is not a registered",
            "undeliverable address",
            "bad destination mailbox",
            "destination address rejected",
            "not listed in",
            "unknown mailbox",
            "user unknown in",
            "not our user",
            "that you tried to reach does not exist",
            "email account that you tried to reach does not exist",
            "no longer",
            "is unknown",
            "does not exist",
            "doesn't exist",
            "did not exist",
            "not exist",
            "invalid user",
            "user invalid",
            "destinataire invalide",
            "utilisateur inconnu",
            "unbekannt",
            "not a valid recipient",
            "addressee unknown",
            "bad recipient",
            "nobody here",
            "no one here",
            "not deliverable",
            "mailbox name not allowed",
            "no mail box",
            "not have a mailbox",
            "no mailbox here by that name",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "on our block list",
            "blacklisted",
            "rejected because of your ip",
            "ip has been blocked",
            "poor reputation ip",
            "invalid ip",
            "blocked",
            "blacklist",
            "black list",
            "blocklist",
            "block list",
            "blocklisted",
            "denylist",
            "listed in",
            "listed on",
            "listed at",
            "is listed",
            "rbl",
            "dnsbl",
            "spamhaus",
            "spamcop",
            "sorbs",
            "barracuda",
            "banned",
            "client host rejected",
            "client host blocked",
            "host rejected",
            "connection refused",
            "connection rejected",
            "refused to talk",
            "not accepting connections",
            "your ip",
            "your host",
            "your network",
            "dynamic ip",
            "dynamic address",
            "dial-up",
            "dialup",
            "residential",
            "smtp server of your isp",
            "use your isp",
            "use the smtp server",
            "not allowed to connect",
            "connections not accepted",
            "may not be mail exchanger",
            "not authorized to relay",
            "service not available",
            "no smtp service",
            "relay quota",
            "your server",
            "your mail server",
            "sending server",
            "sender ip",
            "ip blocked",
            "poor reputation",
        ],
    ),
    (
        Reason::NotAccept,
        &[
            "not accepting network messages",
            "system not accepting",
            "does not accept mail",
            "doesn't accept mail",
            "not accepting mail",
            "accepts no mail",
            "null mx",
            "no mx record",
            "couldn't find a mail exchanger",
            "could not find a mail exchanger",
            "no mail exchanger",
            "mx lookup failed",
            "no mx",
        ],
    ),
    (
        Reason::SystemFull,
        &[
            "insufficient disk space",
            "insufficient system storage",
            "disk full",
            "disk is full",
            "file system full",
            "no space left",
            "out of disk",
            "system full",
            "too many messages in queue",
            "insufficient system resources",
        ],
    ),
    (
        Reason::MailerError,
        &[
            "operating system error",
            "pipe to",
            "command failed",
            "command died",
            "exited with",
            "exit code",
            "exit status",
            "mailer error",
            "mail delivery agent",
            "operating system error",
            "procmail",
            "maildrop",
            "unknown mailer error",
            "local delivery failed",
            "x-unix",
            "generated by",
            "no such file or directory",
        ],
    ),
    (
        Reason::Expired,
        &[
            "timed out",
            "timeout",
            "envelope expired",
            "message expired",
            "delivery time expired",
        ],
    ),
    (
        Reason::SystemError,
        &[
            "forwarding loop",
            "server busy",
            "system busy",
            "service currently unavailable",
            "currently unavailable",
            "please try later",
            "duplicated message-id",
            "loop alert",
            "ldap",
            "system error",
            "internal error",
            "server error",
            "local error",
            "configuration error",
            "config error",
            "misconfigured",
            "mail loop",
            "loop detected",
            "loops back",
            "routing loop",
            "too many hops",
            "hop count exceeded",
            "insufficient permission",
            "temporary local problem",
            "temporarily unavailable",
            "try again later",
            "system problem",
            "mail system problem",
            "server is busy",
            "service unavailable",
            "resources temporarily",
            "database",
            "internal server",
            "i/o error",
            "timeout while",
            "exceeded the maximum number",
            "system not accepting",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "name service error",
            "name server",
            "nameserver",
            "lookup failure",
            "dns error",
            "dns lookup",
            "dns failure",
            "dns query",
            "servfail",
            "malformed or unexpected name server reply",
            "lost connection",
            "connection reset",
            "connection dropped",
            "connection closed",
            "network is unreachable",
            "no route to host",
            "host is unreachable",
            "unable to connect",
            "could not connect",
            "couldn't connect",
            "wasn't able to establish",
            "unable to establish",
            "failed to connect",
            "no answer from host",
            "bad connection",
            "network error",
            "protocol error",
        ],
    ),
    (
        Reason::SyntaxError,
        &[
            "syntax error",
            "command not recognized",
            "unrecognized command",
            "command unrecognized",
            "parameter not implemented",
            "not implemented",
            "bad sequence of commands",
            "invalid command",
            "line too long",
            "malformed address",
            "malformed recipient",
            "syntactically",
            "command parameter",
            "invalid argument",
        ],
    ),
    (
        Reason::Filtered,
        &[
            "recipient preferences",
            "filtered",
            "filter",
            "rejected by the recipient domain",
            "recipient has rejected",
            "not accepting messages from",
            "refuse to receive",
            "content restrictions",
            "message rejected",
            "has been rejected",
            "your message was rejected",
            "delivery not authorized",
            "message refused",
        ],
    ),
    (Reason::OnHold, &["on hold", "onhold"]),
    (
        Reason::UserUnknown,
        &["recipient address rejected", "address rejected"],
    ),
    (Reason::Rejected, &["google groups", "groups.google.com"]),
    (
        Reason::Expired,
        &[
            "delivery time expired",
            "retry timeout exceeded",
            "retry time not reached",
            "too long in the queue",
            "in the queue too long",
            "queue too long",
            "could not be delivered for",
            "message expired",
            "has expired",
            "expired after",
            "was not delivered within",
            "giving up",
            "gave up",
            "has been failing for a long time",
            "all hosts have been failing",
            "connection timed out",
            "timed out",
            "time out",
            "timeout",
            "retry time",
            "undeliverable after",
            "too old",
            "maximum time",
            "max age",
            "lifetime exceeded",
            "will be deleted from queue",
            "did not accept our requests to connect",
            "socket error",
        ],
    ),
];

/// First reason whose phrase list matches the normalised text.
pub(crate) fn reason_from_text(text: &str) -> Option<Reason> {
    let norm = normalize_for_match(text);
    if norm.is_empty() {
        return None;
    }
    for (reason, phrases) in PHRASES {
        if phrases.iter().any(|p| norm.contains(p)) {
            return Some(*reason);
        }
    }
    None
}

/// Split `c.s.d` into numbers.
pub(crate) fn split_status(status: &str) -> Option<(u32, u32, u32)> {
    let mut it = status.trim().split('.');
    let c = it.next()?.parse().ok()?;
    let s = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    Some((c, s, d))
}

/// Reason implied by an enhanced status code alone (RFC 3463 and its
/// successors: RFC 5248 registry, RFC 7372, RFC 7505, RFC 8689).
pub(crate) fn reason_from_status(status: &str) -> Option<Reason> {
    let (c, s, d) = split_status(status)?;
    if c == 2 {
        return Some(Reason::Delivered);
    }
    use Reason::*;
    let r = match (s, d) {
        (1, 1) => UserUnknown,
        (1, 2) => HostUnknown,
        (1, 3) => UserUnknown,
        (1, 4) => UserUnknown,
        (1, 6) => HasMoved,
        (1, 7) | (1, 8) => Rejected,
        (1, 10) => NotAccept,
        (2, 0) => Filtered,
        (2, 1) => Suspend,
        (2, 2) => MailboxFull,
        (2, 3) => ExceedLimit,
        (2, 4) => SystemError,
        (3, 0) => SystemError,
        (3, 1) => SystemFull,
        (3, 2) => NotAccept,
        (3, 3) => SystemError,
        (3, 4) => MesgTooBig,
        (3, 5) => SystemError,
        (4, 1) | (4, 2) => NetworkError,
        (4, 3) => SystemError,
        (4, 4) => HostUnknown,
        (4, 5) => SystemFull,
        (4, 6) => NetworkError,
        (4, 7) => Expired,
        (5, 1..=6) => SyntaxError,
        (6, _) => ContentError,
        (7, 1) => Blocked,
        (7, 2) => Filtered,
        (7, 3..=8) => SecurityError,
        (7, 9) => SecurityError,
        (7, 10) | (7, 11) | (7, 30) => FailedStartTls,
        (7, 12) | (7, 14) => SecurityError,
        (7, 13) => Suspend,
        (7, 16) => MesgTooBig,
        (7, 17) | (7, 18) => HasMoved,
        (7, 20..=24) | (7, 26) | (7, 29) => AuthFailure,
        (7, 25) => RequirePtr,
        (7, 27) => NotAccept,
        (7, 28) => SpamDetected,
        // Widely deployed vendor extensions (Microsoft 365).
        (7, 509) => AuthFailure,
        (7, 600..=649) => Blocked,
        (7, 650..=699) => BadReputation,
        (7, 700..=799) => Blocked,
        _ => return None,
    };
    Some(r)
}

/// Status codes so precise that text evidence must not override them.
fn status_is_decisive(status: &str) -> bool {
    matches!(
        split_status(status),
        Some((_, 2, 2))
            | Some((_, 2, 3))
            | Some((_, 3, 4))
            | Some((_, 1, 6))
            | Some((_, 7, 20..=27))
            | Some((_, 7, 13))
    )
}

/// "<hostname> does not exist", "host <hostname> not found": the text is
/// about a domain, not a mailbox.
fn mentions_missing_host(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let is_host = |w: &str| {
        let w = w.trim_matches(|c: char| "<>[]()'\",;".contains(c));
        let w = w.trim_end_matches('.');
        !w.contains('@')
            && w.contains('.')
            && w.split('.').count() >= 2
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && w.chars().any(|c| c.is_ascii_alphabetic())
    };
    for (i, w) in words.iter().enumerate() {
        if !is_host(w) {
            continue;
        }
        let next = words
            .get(i + 1..(i + 4).min(words.len()))
            .unwrap_or(&[])
            .join(" ");
        if next.starts_with("does not exist") || next.starts_with("doesn't exist") {
            return true;
        }
        if i > 0
            && words[i - 1] == "host"
            && (next.starts_with("not found") || next.starts_with("unknown"))
        {
            return true;
        }
    }
    false
}

/// Wordings that state unambiguously that the mailbox does not exist.
fn is_definitive_unknown(text: &str) -> bool {
    const DEFINITIVE: &[&str] = &[
        "recipient name is not recognized",
        "not listed in",
        "doesn't have a",
        "does not have an account",
        "invalid recipient",
        "recipient invalid",
        "couldn't be found",
        "could not be found",
        "no valid recipients",
        "mailbox unavailable",
        "address rejected",
        "no such mailbox",
        "mailbox not found",
        "mailbox does not exist",
        "account does not exist",
        "no mailbox here",
        "user doesn't exist",
        "user does not exist",
        "destinataire invalide",
    ];
    let l = normalize_for_match(text);
    DEFINITIVE.iter().any(|p| l.contains(p))
}

/// Classify one recipient.
pub(crate) fn classify(ev: &Evidence) -> Reason {
    if ev.action == Some(Action::Delivered) || ev.status.starts_with("2.") {
        return Reason::Delivered;
    }
    let mut text = reason_from_text(&ev.diag);
    if matches!(
        text,
        Some(Reason::UserUnknown) | Some(Reason::NetworkError) | None
    ) && mentions_missing_host(&ev.diag)
    {
        text = Some(Reason::HostUnknown);
    }
    let by_status = reason_from_status(&ev.status);
    let temporary =
        ev.status.starts_with('4') || (ev.status.is_empty() && ev.reply.starts_with('4'));

    let mut reason = match (text, by_status) {
        (_, Some(s)) if status_is_decisive(&ev.status) => s,
        (Some(t), _) => t,
        (None, status) => match ev.command {
            Some(Command::MailFrom) => Reason::Rejected,
            Some(Command::Connect) | Some(Command::Helo) => Reason::Blocked,
            _ => match status {
                Some(s) => s,
                None => match reason_from_text(&ev.context) {
                    Some(r) => r,
                    None => fallback(ev),
                },
            },
        },
    };

    // Context refinements.
    match reason {
        Reason::HostUnknown
            if temporary
                || (ev.status.is_empty()
                    && ev.reply.is_empty()
                    && ev.diag.to_ascii_lowercase().contains("try again")) =>
        {
            reason = Reason::NetworkError;
        }
        _ => {}
    }
    match ev.command {
        // The client's identity was refused before any address was given.
        Some(Command::Connect) | Some(Command::Helo)
            if matches!(
                reason,
                Reason::HostUnknown
                    | Reason::UserUnknown
                    | Reason::Rejected
                    | Reason::Filtered
                    | Reason::SyntaxError
                    | Reason::NetworkError
                    | Reason::SystemError
            ) =>
        {
            reason = Reason::Blocked;
        }
        // An address problem reported in answer to MAIL FROM is about the sender.
        Some(Command::MailFrom)
            if matches!(
                reason,
                Reason::HostUnknown | Reason::UserUnknown | Reason::Filtered
            ) =>
        {
            reason = Reason::Rejected;
        }
        _ => {}
    }
    // An address-level complaint that quotes the original sender's address
    // (and not the recipient's) is about the sender.
    if ev.sender_mentioned
        && text.is_some()
        && matches!(
            reason,
            Reason::HostUnknown | Reason::UserUnknown | Reason::Filtered | Reason::SyntaxError
        )
    {
        reason = Reason::Rejected;
    }
    // "User unknown" only counts as such when the server said so in reply
    // to RCPT TO (or with an x.1.1 code); otherwise a filter rejected the
    // message after the recipients had been accepted.
    //
    // The same applies when the failing command is unknown but the status
    // code itself says the problem is not the address (mailbox x.2.*,
    // system x.3.*, policy x.7.*).
    let status_not_address = matches!(split_status(&ev.status), Some((_, 2 | 3 | 7, _)));
    //
    // Without any phase information, a bare "user unknown" that neither
    // names the recipient nor uses an unambiguous "no such mailbox" wording
    // is most often a gateway filter's answer after DATA.
    if reason == Reason::UserUnknown
        && !matches!(split_status(&ev.status), Some((_, 1, 1)) | Some((_, 1, 10)))
    {
        let definitive = is_definitive_unknown(&ev.diag)
            || (text.is_none() && is_definitive_unknown(&ev.context));
        let vague = ev.command.is_none() && !ev.recipient_in_diag && !definitive;
        if (ev.command == Some(Command::Data) && !definitive)
            || (ev.command.is_none() && status_not_address)
            || vague
        {
            reason = Reason::Filtered;
        }
    }
    reason
}

/// Classify and assemble one output row.
pub(crate) fn make_report(
    recipient: String,
    ev: &Evidence,
    feedback_type: &str,
) -> RecipientReport {
    let mut ev = ev.clone();
    ev.recipient_in_diag = ev
        .diag
        .to_ascii_lowercase()
        .contains(&recipient.to_ascii_lowercase());
    let ev = &ev;
    let reason = classify(ev);
    let mut status = ev.status.clone();
    if status.is_empty()
        && let Some(c) = ev.reply.chars().next()
        && matches!(c, '2' | '4' | '5')
    {
        status = format!("{c}.0.0");
    }
    // A final failure ("Action: failed", or a report that is not a delay warning) is
    // permanent by definition (RFC 3464 §2.3.3): without any code to say otherwise, a
    // domain that accepts no mail is a permanent condition of the address.
    let final_without_code =
        status.is_empty() && ev.reply.is_empty() && ev.action == Some(Action::Failed);
    let hard = reason_is_hard(reason, &status, &ev.reply)
        || (reason == Reason::NotAccept && final_without_code);
    let mut diagnostic = ev.diag.clone();
    if diagnostic.len() > 1000 {
        let mut cut = 1000;
        while !diagnostic.is_char_boundary(cut) {
            cut -= 1;
        }
        diagnostic.truncate(cut);
    }
    RecipientReport {
        recipient,
        status,
        reply_code: ev.reply.clone(),
        reason,
        hard,
        feedback_type: feedback_type.to_string(),
        diagnostic,
    }
}

fn fallback(ev: &Evidence) -> Reason {
    if ev.action == Some(Action::Delayed) {
        return Reason::Expired;
    }
    match ev.command {
        Some(Command::MailFrom) => return Reason::Rejected,
        Some(Command::Connect) | Some(Command::Helo) => return Reason::Blocked,
        _ => {}
    }
    let temporary = ev.status.starts_with('4') || ev.reply.starts_with('4');
    if temporary {
        return Reason::Expired;
    }
    if ev.command == Some(Command::Data) {
        return Reason::Filtered;
    }
    Reason::OnHold
}

#[cfg(test)]
mod unit {
    use super::*;

    fn ev(diag: &str, status: &str) -> Evidence {
        Evidence {
            diag: diag.into(),
            status: status.into(),
            ..Evidence::default()
        }
    }

    #[test]
    fn text_beats_generic_status() {
        let mut e = ev("550 5.5.0 Unknown user", "5.5.0");
        e.command = Some(Command::RcptTo);
        assert_eq!(classify(&e), Reason::UserUnknown);
        assert_eq!(
            classify(&ev("452 Mailbox Full", "4.2.2")),
            Reason::MailboxFull
        );
        assert_eq!(
            classify(&ev("Disk quota exceeded", "4.3.0")),
            Reason::MailboxFull
        );
    }

    #[test]
    fn status_fallback() {
        assert_eq!(classify(&ev("", "5.1.1")), Reason::UserUnknown);
        assert_eq!(classify(&ev("", "5.1.2")), Reason::HostUnknown);
        assert_eq!(classify(&ev("", "5.3.4")), Reason::MesgTooBig);
        assert_eq!(classify(&ev("", "5.7.26")), Reason::AuthFailure);
    }

    #[test]
    fn data_phase_user_unknown_is_filtered() {
        let mut e = ev("550 : User unknown", "5.0.0");
        e.command = Some(Command::Data);
        assert_eq!(classify(&e), Reason::Filtered);
        e.status = "5.1.1".into();
        assert_eq!(classify(&e), Reason::UserUnknown);
    }

    #[test]
    fn a_final_notaccept_without_codes_is_hard() {
        let mut e = ev("No mx record found for domain=example.org", "");
        e.action = Some(Action::Failed);
        let r = make_report("a@example.org".into(), &e, "");
        assert_eq!((r.reason, r.hard), (Reason::NotAccept, true));
        e.action = Some(Action::Delayed);
        let r = make_report("a@example.org".into(), &e, "");
        assert!(!r.hard);
    }

    #[test]
    fn hard_rules() {
        assert!(reason_is_hard(Reason::UserUnknown, "5.1.1", "550"));
        assert!(reason_is_hard(Reason::NotAccept, "5.4.4", ""));
        assert!(!reason_is_hard(Reason::NotAccept, "4.0.0", ""));
        assert!(!reason_is_hard(Reason::MailboxFull, "5.2.2", "552"));
    }
}
