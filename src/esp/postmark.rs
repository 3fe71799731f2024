//! Postmark bounce, spam-complaint and delivery webhooks. Postmark does not sign webhooks;
//! it sends the HTTP Basic credentials given in the webhook URL
//! (`https://user:password@host/api/v1/webhooks/postmark`), checked here in constant time.
//! Postmark sends no timestamp either, so a replay cannot be told from a retry: the same
//! record `ID` is applied once.
//!
//! Bounce types: HardBounce and BadEmailAddress are hard bounces; SoftBounce, Transient and
//! DnsError soft ones; Blocked and DMARCPolicy are the sender's problem (recorded as 5.7.1,
//! never held against the address); SpamComplaint is a complaint; the rest (auto-responders,
//! subscribe/unsubscribe requests, challenges …) are ignored.

use super::{Batch, EspError, Result, text};
use crate::feedback::FeedbackEvent;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SOURCE: &str = "webhook:postmark";

/// Checks `Authorization: Basic ...` against the configured user and password. Both are
/// compared as SHA-256 digests in constant time, so neither content nor length leaks.
pub fn check_auth(authorization: Option<&str>, user: &str, password: &str) -> Result<()> {
    let refused = || {
        EspError::Unauthenticated(
            "wrong Postmark webhook credentials (HTTP Basic, from the webhook URL)".into(),
        )
    };
    let header = authorization.ok_or_else(|| {
        EspError::Unauthenticated(
            "missing HTTP Basic credentials: put postmark_username and postmark_password in the webhook URL (https://user:password@host/api/v1/webhooks/postmark)".into(),
        )
    })?;
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refused());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| refused())?;
    let split = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(refused)?;
    let (u, p) = (&decoded[..split], &decoded[split + 1..]);
    let user_ok = Sha256::digest(u).ct_eq(&Sha256::digest(user.as_bytes()));
    let pass_ok = Sha256::digest(p).ct_eq(&Sha256::digest(password.as_bytes()));
    if bool::from(user_ok & pass_ok) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The event of one Postmark webhook record.
pub fn events(body: &[u8]) -> Result<Batch> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| EspError::Malformed(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(EspError::Malformed(
            "Postmark posts one JSON object per record".into(),
        ));
    }
    let record = text(&v, "RecordType");
    let id = text(&v, "ID");
    let mut batch = Batch::default();
    let ev = match record.as_str() {
        "Bounce" => {
            let email = text(&v, "Email");
            let details = text(&v, "Details");
            let diagnostic = if details.is_empty() {
                text(&v, "Description")
            } else {
                details
            };
            match text(&v, "Type").as_str() {
                "HardBounce" | "BadEmailAddress" => Some(FeedbackEvent::provider_bounce(
                    &email,
                    true,
                    "",
                    &diagnostic,
                    SOURCE,
                )),
                "SoftBounce" | "Transient" | "DnsError" => Some(FeedbackEvent::provider_bounce(
                    &email,
                    false,
                    "",
                    &diagnostic,
                    SOURCE,
                )),
                "Blocked" | "DMARCPolicy" => {
                    let mut ev =
                        FeedbackEvent::provider_bounce(&email, false, "5.7.1", &diagnostic, SOURCE);
                    ev.hard = false;
                    Some(ev)
                }
                "SpamComplaint" => Some(FeedbackEvent::provider_complaint(&email, "abuse", SOURCE)),
                _ => None,
            }
            .map(|ev| ev.with_key(format!("postmark:bounce:{id}")))
        }
        "SpamComplaint" => Some(
            FeedbackEvent::provider_complaint(&text(&v, "Email"), "abuse", SOURCE)
                .with_key(format!("postmark:spamcomplaint:{id}")),
        ),
        "Delivery" => {
            let email = text(&v, "Recipient");
            Some(
                FeedbackEvent::provider_delivered(&email, SOURCE).with_key(format!(
                    "postmark:delivery:{}:{}",
                    text(&v, "MessageID"),
                    email.to_lowercase()
                )),
            )
        }
        "" => {
            return Err(EspError::Malformed(
                "RecordType is missing: not a Postmark webhook".into(),
            ));
        }
        _ => None,
    };
    match ev {
        Some(_) if record != "Delivery" && id.is_empty() => Err(EspError::Malformed(format!(
            "a Postmark {record} record must have an ID"
        ))),
        Some(ev) => {
            batch.push(ev);
            Ok(batch)
        }
        None => {
            batch.ignored += 1;
            Ok(batch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::{Decision, decide};
    use crate::model::FeedbackType;

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn basic_credentials() {
        check_auth(
            Some(&basic("pm", "s3cret:with:colons")),
            "pm",
            "s3cret:with:colons",
        )
        .unwrap();
        check_auth(
            Some(&basic("pm", "pw").replace("Basic", "basic")),
            "pm",
            "pw",
        )
        .unwrap();
        for bad in [
            Some(basic("pm", "wrong")),
            Some(basic("other", "pw")),
            Some(basic("pm", "")),
            Some("Bearer abc".to_string()),
            Some("Basic !!!".to_string()),
            Some("Basic".to_string()),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no-colon")
            )),
            None,
        ] {
            assert!(
                matches!(
                    check_auth(bad.as_deref(), "pm", "pw"),
                    Err(EspError::Unauthenticated(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn records_map_to_feedback() {
        let b = events(br#"{"RecordType":"Bounce","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Email":"gone@example.com","Details":"550 5.1.1 unknown user","MessageID":"m"}"#).unwrap();
        assert!(b.events[0].hard);
        assert_eq!(
            b.events[0].idempotency_key.as_deref(),
            Some("postmark:bounce:4323372036854775807")
        );
        let b = events(br#"{"RecordType":"Bounce","ID":2,"Type":"SoftBounce","Email":"full@example.com","Details":"mailbox full"}"#).unwrap();
        assert_eq!(decide(&b.events[0]), Decision::CountSoft);
        let b = events(br#"{"RecordType":"Bounce","ID":3,"Type":"Blocked","Email":"x@example.com","Details":"blocked by ISP"}"#).unwrap();
        assert_eq!(decide(&b.events[0]), Decision::SenderProblem);
        let b = events(br#"{"RecordType":"SpamComplaint","ID":4,"Type":"SpamComplaint","Email":"angry@example.com"}"#).unwrap();
        assert_eq!(b.events[0].kind, FeedbackType::Complaint);
        let b =
            events(br#"{"RecordType":"Delivery","MessageID":"m-9","Recipient":"ok@example.com"}"#)
                .unwrap();
        assert_eq!(b.events[0].kind, FeedbackType::Delivered);
        assert_eq!(
            b.events[0].idempotency_key.as_deref(),
            Some("postmark:delivery:m-9:ok@example.com")
        );
        let b = events(
            br#"{"RecordType":"Bounce","ID":5,"Type":"AutoResponder","Email":"away@example.com"}"#,
        )
        .unwrap();
        assert_eq!((b.events.len(), b.ignored), (0, 1));
        let b = events(br#"{"RecordType":"Open","MessageID":"m"}"#).unwrap();
        assert_eq!(b.ignored, 1);
        for bad in [
            &b"{}"[..],
            b"[]",
            b"nope",
            br#"{"RecordType":"Bounce","Type":"HardBounce","Email":"a@example.com"}"#,
        ] {
            assert!(
                matches!(events(bad), Err(EspError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
