//! Unit tests with small synthetic messages, one per supported format,
//! plus property-style robustness tests (random and truncated input).

use super::*;

fn parse_str(s: &str) -> ParsedFeedback {
    match parse(s.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn one(s: &str) -> RecipientReport {
    let p = parse_str(s);
    assert_eq!(p.recipients.len(), 1, "rows: {:?}", p.recipients);
    p.recipients
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!())
}

const DSN: &str = "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r
To: sender@example.com\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r
\r
--B1\r
Content-Type: text/plain\r
\r
<alice@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\r
    <alice@example.net>: Recipient address rejected: User unknown (in reply to\r
    RCPT TO command)\r
<bob@example.net>: host mx.example.net[192.0.2.1] said: 552 5.2.2 Mailbox\r
    full (in reply to RCPT TO command)\r
--B1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.org\r
\r
Final-Recipient: rfc822; alice@example.net\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <alice@example.net>: Recipient address\r
    rejected: User unknown\r
\r
Final-Recipient: rfc822; bob@example.net\r
Action: failed\r
Status: 5.2.2\r
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r
--B1\r
Content-Type: message/rfc822\r
\r
Return-Path: <bounces+123@example.com>\r
Message-ID: <orig-1@example.com>\r
From: sender@example.com\r
To: alice@example.net\r
Subject: hello\r
\r
hi\r
--B1--\r
";

#[test]
fn rfc3464_dsn_two_recipients() {
    let p = parse_str(DSN);
    assert_eq!(p.kind, FeedbackKind::Bounce);
    assert_eq!(p.recipients.len(), 2);
    let a = &p.recipients[0];
    assert_eq!(a.recipient, "alice@example.net");
    assert_eq!(a.status, "5.1.1");
    assert_eq!(a.reply_code, "550");
    assert_eq!(a.reason, Reason::UserUnknown);
    assert!(a.hard);
    let b = &p.recipients[1];
    assert_eq!(b.reason, Reason::MailboxFull);
    assert_eq!(b.status, "5.2.2");
    assert!(!b.hard);
    assert_eq!(p.original_message_id.as_deref(), Some("orig-1@example.com"));
    assert_eq!(
        p.original_return_path.as_deref(),
        Some("bounces+123@example.com")
    );
}

#[test]
fn cli_json_has_exact_keys() {
    let p = parse_str(DSN);
    let j = p.recipients[0].to_cli_json();
    let obj = j.as_object().unwrap_or_else(|| unreachable!());
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "feedback_type",
            "hard",
            "reason",
            "recipient",
            "reply_code",
            "status"
        ]
    );
    assert_eq!(j["reason"], "userunknown");
    assert_eq!(j["hard"], true);
}

#[test]
fn dsn_delivered_and_delayed() {
    let msg = "From: postmaster@mx.example.org\n\
Subject: Delivery Status Notification\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\
\n\
--b\n\
Content-Type: text/plain\n\
\n\
Report.\n\
--b\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; mx.example.org\n\
\n\
Final-Recipient: rfc822; ok@example.net\n\
Action: delivered\n\
Status: 2.0.0\n\
\n\
Final-Recipient: rfc822; slow@example.net\n\
Action: delayed\n\
Status: 4.4.7\n\
--b--\n";
    let p = parse_str(msg);
    assert_eq!(p.recipients.len(), 2);
    assert_eq!(p.recipients[0].reason, Reason::Delivered);
    assert_eq!(p.recipients[1].reason, Reason::Expired);
    assert!(!p.recipients[1].hard);
}

#[test]
fn arf_complaint() {
    let msg = "From: feedback@isp.example\n\
To: fbl@example.com\n\
Subject: Abuse report\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"x\"\n\
\n\
--x\n\
Content-Type: text/plain\n\
\n\
This is an abuse report.\n\
--x\n\
Content-Type: message/feedback-report\n\
\n\
Feedback-Type: abuse\n\
User-Agent: Example/1.0\n\
Version: 1\n\
Original-Rcpt-To: <carol@isp.example>\n\
--x\n\
Content-Type: message/rfc822\n\
\n\
From: news@example.com\n\
To: carol@isp.example\n\
Message-ID: <n-1@example.com>\n\
Subject: Newsletter\n\
\n\
body\n\
--x--\n";
    let p = parse_str(msg);
    assert_eq!(p.kind, FeedbackKind::Complaint);
    let r = &p.recipients[0];
    assert_eq!(r.recipient, "carol@isp.example");
    assert_eq!(r.reason, Reason::Feedback);
    assert_eq!(r.feedback_type, "abuse");
    assert!(!r.hard);
    assert_eq!(p.original_message_id.as_deref(), Some("n-1@example.com"));
}

#[test]
fn arf_without_original_rcpt_to_uses_original_to() {
    let msg = "From: dmarc@isp.example\n\
Subject: report\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"x\"\n\
\n\
--x\n\
Content-Type: message/feedback-report\n\
\n\
Feedback-Type: auth-failure\n\
Version: 1\n\
--x\n\
Content-Type: text/rfc822-headers\n\
\n\
From: a@example.com\n\
To: <dave@isp.example>\n\
Subject: s\n\
--x--\n";
    let r = one(msg);
    assert_eq!(r.recipient, "dave@isp.example");
    assert_eq!(r.feedback_type, "auth-failure");
}

#[test]
fn rfc3834_auto_reply() {
    let msg = "From: Erin <erin@example.net>\n\
To: sender@example.com\n\
Subject: Out of office: hello\n\
Auto-Submitted: auto-replied\n\
\n\
I am away until Monday.\n";
    let p = parse_str(msg);
    assert_eq!(p.kind, FeedbackKind::AutoReply);
    assert_eq!(p.recipients[0].recipient, "erin@example.net");
    assert_eq!(p.recipients[0].reason, Reason::Vacation);
}

#[test]
fn vacation_subject_without_header() {
    let r = one("From: frank@example.net\nSubject: Automatic reply: news\n\nI'm on vacation.\n");
    assert_eq!(r.reason, Reason::Vacation);
}

#[test]
fn qmail_plain_text() {
    let msg = "From: MAILER-DAEMON@mx.example.org\n\
Subject: failure notice\n\
\n\
Hi. This is the qmail-send program at mx.example.org.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\
\n\
<gina@example.net>:\n\
192.0.2.2 does not like recipient.\n\
Remote host said: 550 5.1.1 <gina@example.net>... User Unknown\n\
Giving up on 192.0.2.2.\n\
\n\
--- Below this line is a copy of the message.\n\
\n\
Return-Path: <sender@example.com>\n\
To: gina@example.net\n\
\n\
hi\n";
    let r = one(msg);
    assert_eq!(r.recipient, "gina@example.net");
    assert_eq!(r.status, "5.1.1");
    assert_eq!(r.reply_code, "550");
    assert_eq!(r.reason, Reason::UserUnknown);
    assert!(r.hard);
}

#[test]
fn exim_plain_text_with_failed_recipients_header() {
    let msg = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n\
Subject: Mail delivery failed: returning message to sender\n\
X-Failed-Recipients: henry@example.net\n\
\n\
This message was created automatically by mail delivery software.\n\
\n\
A message that you sent could not be delivered to one or more of its\n\
recipients. This is a permanent error. The following address(es) failed:\n\
\n\
  henry@example.net\n\
    SMTP error from remote mail server after RCPT TO:<henry@example.net>:\n\
    host mx.example.net [192.0.2.3]: 552 5.2.2 Mailbox quota exceeded\n\
\n\
------ This is a copy of the message, including all the headers. ------\n\
\n\
From: sender@example.com\n\
To: henry@example.net\n";
    let r = one(msg);
    assert_eq!(r.recipient, "henry@example.net");
    assert_eq!(r.reason, Reason::MailboxFull);
    assert_eq!(r.reply_code, "552");
}

#[test]
fn gmail_style_plain_text() {
    let msg = "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n\
Subject: Delivery Status Notification (Failure)\n\
\n\
Delivery to the following recipient failed permanently:\n\
\n\
     ivan@example.net\n\
\n\
Technical details of permanent failure:\n\
The recipient server did not accept our requests to connect.\n\
\n\
----- Original message -----\n\
To: ivan@example.net\n";
    let r = one(msg);
    assert_eq!(r.recipient, "ivan@example.net");
    assert_eq!(r.reason, Reason::Expired);
}

#[test]
fn plain_text_host_unknown_and_dmarc() {
    let msg = "From: MAILER-DAEMON@mx.example.org\n\
Subject: Undelivered Mail\n\
\n\
<judy@nowhere.example>: Host or domain name not found. Name service error\n\
    for name=nowhere.example type=A: Host not found\n\
<kate@example.net>: host mx.example.net said: 550-5.7.26 Unauthenticated email\n\
    from example.com is not accepted due to domain's DMARC policy.\n";
    let p = parse_str(msg);
    assert_eq!(p.recipients.len(), 2);
    assert_eq!(p.recipients[0].reason, Reason::HostUnknown);
    assert!(p.recipients[0].hard);
    assert_eq!(p.recipients[1].reason, Reason::AuthFailure);
    assert_eq!(p.recipients[1].status, "5.7.26");
}

#[test]
fn ses_json_notification() {
    let msg = "From: no-reply@sns.amazonaws.com\n\
Subject: AWS Notification Message\n\
Content-Type: text/plain; charset=UTF-8\n\
\n\
{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":\"General\",\
\"bouncedRecipients\":[{\"emailAddress\":\"leo@example.net\",\"action\":\"failed\",\"status\":\"5.1.1\",\
\"diagnosticCode\":\"smtp; 550 5.1.1 user unknown\"}]}}\n\
--\n\
unsubscribe text\n";
    let r = one(msg);
    assert_eq!(r.recipient, "leo@example.net");
    assert_eq!(r.reason, Reason::UserUnknown);
    assert_eq!(r.reply_code, "550");
}

#[test]
fn ordinary_mail_is_not_feedback() {
    let p = parse_str(
        "From: a@example.com\nTo: b@example.net\nSubject: lunch?\n\nAre you free today?\n",
    );
    assert_eq!(p.kind, FeedbackKind::Unknown);
    assert!(p.recipients.is_empty());
}

#[test]
fn a_mime_structure_that_panics_mail_parser_is_a_typed_error() {
    // found by cargo fuzz: mail-parser 0.11.9 panics with "Invalid part ID" on this input
    // (with debug assertions; optimised builds may parse it): either way a typed answer
    let raw = include_bytes!("testdata/fuzz-crash-mail-parser-part-id.eml");
    let r = parse(raw);
    assert!(
        matches!(r, Ok(_) | Err(BounceError::NotAMessage(_))),
        "{r:?}"
    );
}

#[test]
fn garbage_is_a_typed_error() {
    assert!(matches!(parse(b""), Err(BounceError::NotAMessage(_))));
    assert!(matches!(
        parse(b"\x00\x01\x02 binary junk"),
        Err(BounceError::NotAMessage(_))
    ));
}

#[test]
fn reason_names_round_trip() {
    for r in Reason::ALL {
        assert_eq!(Reason::from_name(r.as_str()), Some(r));
        assert_eq!(r.to_string(), r.as_str());
        let j = serde_json::to_value(r).unwrap_or_default();
        assert_eq!(j, serde_json::Value::String(r.as_str().to_string()));
    }
}

/// Small deterministic PRNG (xorshift) so the property tests need no
/// extra dependency and are reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for len in [0usize, 1, 2, 7, 64, 300, 2000] {
        for _ in 0..60 {
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            let _ = parse(&bytes);
        }
    }
}

#[test]
fn random_text_with_header_shapes_never_panics() {
    const PIECES: &[&str] = &[
        "From: ",
        "MAILER-DAEMON@x.example",
        "\n",
        "\r\n",
        "Content-Type: multipart/report; boundary=b\n",
        "--b\n",
        "--b--\n",
        "Final-Recipient: rfc822; ",
        "Status: 5.1.1\n",
        "Action: failed\n",
        "<a@b.example>:",
        " 550 5.7.1 ",
        "Diagnostic-Code: smtp; ",
        "\n\n",
        "@",
        "<",
        ">",
        ":",
        "Content-Type: message/delivery-status\n",
        "Feedback-Type: abuse\n",
        "{\"notificationType\":",
        "é",
        "\u{1F600}",
        "=?utf-8?B?8J+QiA==?=",
        "5.",
        "4.4.7",
        " ",
        "\t",
        ";",
        "...",
    ];
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..600 {
        let n = (rng.next() % 60) as usize;
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(PIECES[(rng.next() as usize) % PIECES.len()]);
        }
        let _ = parse(s.as_bytes());
    }
}

#[test]
fn truncated_messages_never_panic() {
    let samples = [DSN.as_bytes()];
    for s in samples {
        for cut in 0..s.len() {
            let _ = parse(&s[..cut]);
        }
    }
}
