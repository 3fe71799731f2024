//! Mailgun webhooks (the JSON format): `{"signature": {"timestamp", "token", "signature"},
//! "event-data": {...}}` where `signature` is the hex HMAC-SHA256 of timestamp followed by
//! token, keyed with the account's HTTP webhook signing key. A token is accepted once and
//! the timestamp must be recent (Mailgun's own advice against replays).
//!
//! Events: `failed` with severity `permanent` is a hard bounce (reason `old` — Mailgun gave up
//! retrying — is counted as a soft bounce, `suppress-complaint` is a complaint,
//! `suppress-unsubscribe` is ignored); `failed` with severity `temporary` is ignored because
//! Mailgun retries and reports the final outcome; `complained`; `delivered`. The idempotency
//! key is `mailgun:<event-data.id>`.

use super::{Batch, EspError, Result, check_fresh, parse_unix, text, verify_hmac_hex};
use crate::feedback::FeedbackEvent;
use serde_json::Value;

const SOURCE: &str = "webhook:mailgun";
const MAX_TOKEN: usize = 256;

/// The signature block of a Mailgun webhook.
#[derive(Debug, Clone)]
pub struct Signed {
    /// As sent (the MAC covers the text).
    pub timestamp_text: String,
    pub timestamp: i64,
    pub token: String,
    pub signature: String,
}

/// Splits the body into the signature block and the event data.
pub fn parse(body: &[u8]) -> Result<(Signed, Value)> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| EspError::Malformed(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(EspError::Malformed(
            "Mailgun posts a JSON object with signature and event-data".into(),
        ));
    }
    let sig = v.get("signature").cloned().unwrap_or(Value::Null);
    if !sig.is_object() {
        return Err(EspError::Unauthenticated(
            "missing signature object (timestamp, token, signature)".into(),
        ));
    }
    let timestamp_text = text(&sig, "timestamp");
    let token = text(&sig, "token");
    let signature = text(&sig, "signature");
    if timestamp_text.is_empty() || token.is_empty() || signature.is_empty() {
        return Err(EspError::Unauthenticated(
            "the signature object needs timestamp, token and signature".into(),
        ));
    }
    if token.len() > MAX_TOKEN {
        return Err(EspError::Unauthenticated(
            "the signature token is too long".into(),
        ));
    }
    let timestamp = parse_unix(&timestamp_text, "signature.timestamp")?;
    let data = v
        .get_mut("event-data")
        .map(Value::take)
        .unwrap_or(Value::Null);
    Ok((
        Signed {
            timestamp_text,
            timestamp,
            token,
            signature,
        },
        data,
    ))
}

/// Checks the HMAC (constant time), then the timestamp's age.
pub fn verify(key: &[u8], s: &Signed, now: i64, tolerance: u64) -> Result<()> {
    if !verify_hmac_hex(
        key,
        &[s.timestamp_text.as_bytes(), s.token.as_bytes()],
        &s.signature,
    ) {
        return Err(EspError::Unauthenticated(
            "the Mailgun signature does not verify with mailgun_signing_key".into(),
        ));
    }
    check_fresh(s.timestamp, now, tolerance)
}

/// The event of a (verified) webhook.
pub fn events(data: &Value, token: &str) -> Result<Batch> {
    if !data.is_object() {
        return Err(EspError::Malformed(
            "event-data is missing or not an object".into(),
        ));
    }
    let mut batch = Batch::default();
    let recipient = text(data, "recipient");
    let ds = data.get("delivery-status").cloned().unwrap_or(Value::Null);
    let diagnostic = [
        text(&ds, "code"),
        text(&ds, "message"),
        text(&ds, "description"),
    ]
    .into_iter()
    .filter(|s| !s.is_empty() && s != "0")
    .collect::<Vec<_>>()
    .join(" ");
    let status = text(&ds, "enhanced-code");
    let ev = match text(data, "event").as_str() {
        "failed" if text(data, "severity") == "permanent" => match text(data, "reason").as_str() {
            "suppress-unsubscribe" => None,
            "suppress-complaint" => Some(FeedbackEvent::provider_complaint(
                &recipient, "abuse", SOURCE,
            )),
            // gave up after retrying: temporary by nature
            "old" => Some(FeedbackEvent::provider_bounce(
                &recipient,
                false,
                &status,
                &diagnostic,
                SOURCE,
            )),
            _ => Some(FeedbackEvent::provider_bounce(
                &recipient,
                true,
                &status,
                &diagnostic,
                SOURCE,
            )),
        },
        "complained" => Some(FeedbackEvent::provider_complaint(
            &recipient, "abuse", SOURCE,
        )),
        "delivered" => Some(FeedbackEvent::provider_delivered(&recipient, SOURCE)),
        _ => None,
    };
    match ev {
        Some(ev) => {
            let id = text(data, "id");
            let key = if id.is_empty() {
                format!("mailgun:token:{token}")
            } else {
                format!("mailgun:{id}")
            };
            batch.push(ev.with_key(key));
        }
        None => batch.ignored += 1,
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeedbackType;
    use hmac::{Hmac, Mac};

    fn body(key: &[u8], ts: &str, token: &str, data: &str) -> Vec<u8> {
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(ts.as_bytes());
        m.update(token.as_bytes());
        let sig = hex::encode(m.finalize().into_bytes());
        format!(r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","signature":"{sig}"}},"event-data":{data}}}"#).into_bytes()
    }

    #[test]
    fn hmac_of_timestamp_and_token() {
        let b = body(b"key-1", "1700000000", "tok", "{}");
        let (s, _) = parse(&b).unwrap();
        verify(b"key-1", &s, 1_700_000_010, 300).unwrap();
        assert!(matches!(
            verify(b"key-2", &s, 1_700_000_010, 300),
            Err(EspError::Unauthenticated(_))
        ));
        assert!(matches!(
            verify(b"key-1", &s, 1_700_000_400, 300),
            Err(EspError::Stale { .. })
        ));
        let mut forged = s.clone();
        forged.token = "other".into();
        assert!(verify(b"key-1", &forged, 1_700_000_010, 300).is_err());
        // no or incomplete signature block: 401, not JSON: 400
        assert!(matches!(
            parse(br#"{"event-data":{}}"#),
            Err(EspError::Unauthenticated(_))
        ));
        assert!(matches!(
            parse(br#"{"signature":{"timestamp":"1","token":"t"}}"#),
            Err(EspError::Unauthenticated(_))
        ));
        assert!(matches!(parse(b"nope"), Err(EspError::Malformed(_))));
        assert!(matches!(parse(b"[]"), Err(EspError::Malformed(_))));
    }

    #[test]
    fn events_map_to_feedback() {
        let ev = |data: &str| events(&serde_json::from_str(data).unwrap(), "tok").unwrap();
        let b = ev(
            r#"{"event":"failed","id":"e1","severity":"permanent","reason":"bounce","recipient":"gone@example.com","delivery-status":{"code":550,"message":"5.1.1 no such user","description":"","enhanced-code":"5.1.1"}}"#,
        );
        assert_eq!(b.events.len(), 1);
        assert!(b.events[0].hard);
        assert_eq!(b.events[0].status, "5.1.1");
        assert!(b.events[0].diagnostic.contains("no such user"));
        assert_eq!(b.events[0].idempotency_key.as_deref(), Some("mailgun:e1"));
        let b = ev(
            r#"{"event":"failed","id":"e2","severity":"permanent","reason":"old","recipient":"slow@example.com"}"#,
        );
        assert!(!b.events[0].hard);
        let b = ev(
            r#"{"event":"failed","id":"e3","severity":"temporary","recipient":"slow@example.com"}"#,
        );
        assert_eq!((b.events.len(), b.ignored), (0, 1));
        let b = ev(r#"{"event":"complained","id":"e4","recipient":"angry@example.com"}"#);
        assert_eq!(b.events[0].kind, FeedbackType::Complaint);
        let b = ev(r#"{"event":"delivered","recipient":"ok@example.com"}"#);
        assert_eq!(b.events[0].kind, FeedbackType::Delivered);
        assert_eq!(
            b.events[0].idempotency_key.as_deref(),
            Some("mailgun:token:tok")
        );
        let b = ev(r#"{"event":"opened","id":"e5","recipient":"ok@example.com"}"#);
        assert_eq!(b.ignored, 1);
        assert!(matches!(
            events(&Value::Null, "t"),
            Err(EspError::Malformed(_))
        ));
    }
}
