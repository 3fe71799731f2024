//! A generic signed JSON format for any other sender of feedback (a relay, an in-house MTA,
//! a script):
//!
//! ```text
//! POST /api/v1/webhooks/generic
//! X-Mailstead-Timestamp: 1700000000
//! X-Mailstead-Signature: v1=<hex HMAC-SHA256(generic_webhook_secret, "1700000000." + body)>
//!
//! {"events": [{"id": "evt-1", "type": "bounce", "email": "ann@example.com",
//!              "hard": true, "status": "5.1.1", "diagnostic": "550 5.1.1 no such user",
//!              "message_id": 42}]}
//! ```
//!
//! `type` is `bounce`, `complaint` or `delivered`; `id` (unique per event, at most 200
//! characters) makes a repeated event count once. `hard` defaults to true unless `status`
//! starts with 4; `message_id` is Mailstead's id of the message the event is about;
//! `feedback_type` names a complaint's kind (default `abuse`). The signature header may list
//! several `v1=` values separated by commas (to roll the secret over).

use super::{Batch, EspError, Result, check_fresh, parse_unix, verify_hmac_hex};
use crate::feedback::FeedbackEvent;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "x-mailstead-signature";
pub const TIMESTAMP_HEADER: &str = "x-mailstead-timestamp";
const SOURCE: &str = "webhook:generic";
const MAX_ID: usize = 200;

#[derive(Deserialize)]
struct Body {
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Bounce,
    Complaint,
    Delivered,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: Kind,
    email: String,
    #[serde(default)]
    hard: Option<bool>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    diagnostic: String,
    #[serde(default)]
    feedback_type: String,
    #[serde(default)]
    message_id: Option<crate::model::Id>,
}

/// Checks the signature, then the timestamp's age.
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: u64,
) -> Result<()> {
    let signature = signature.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        EspError::Unauthenticated(
            "missing X-Mailstead-Signature header (v1=<hex HMAC-SHA256 of \"<timestamp>.<body>\">)"
                .into(),
        )
    })?;
    let timestamp = timestamp
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            EspError::Unauthenticated("missing X-Mailstead-Timestamp header (Unix seconds)".into())
        })?;
    let ts = parse_unix(timestamp, "X-Mailstead-Timestamp")?;
    let candidates: Vec<&str> = signature
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .collect();
    if candidates.is_empty() {
        return Err(EspError::Unauthenticated(
            "X-Mailstead-Signature must look like v1=<hex>".into(),
        ));
    }
    let parts: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
    // every candidate is checked, so the time taken does not say which one matched
    let matched = candidates
        .iter()
        .fold(false, |ok, c| verify_hmac_hex(secret, &parts, c) | ok);
    if !matched {
        return Err(EspError::Unauthenticated(
            "the X-Mailstead-Signature does not verify with generic_webhook_secret".into(),
        ));
    }
    check_fresh(ts, now, tolerance)
}

/// The events of a (verified) request.
pub fn events(body: &[u8]) -> Result<Batch> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        EspError::Malformed(format!(
            "the body must be {{\"events\": [{{\"id\", \"type\": \"bounce|complaint|delivered\", \"email\", ...}}]}}: {e}"
        ))
    })?;
    let mut batch = Batch::default();
    for (i, e) in parsed.events.into_iter().enumerate() {
        if e.id.trim().is_empty() || e.id.len() > MAX_ID {
            return Err(EspError::Malformed(format!(
                "events[{i}].id must be 1 to {MAX_ID} characters"
            )));
        }
        let ev = match e.kind {
            Kind::Bounce => FeedbackEvent::provider_bounce(
                &e.email,
                e.hard.unwrap_or(!e.status.starts_with('4')),
                &e.status,
                &e.diagnostic,
                SOURCE,
            ),
            Kind::Complaint => {
                FeedbackEvent::provider_complaint(&e.email, &e.feedback_type, SOURCE)
            }
            Kind::Delivered => FeedbackEvent::provider_delivered(&e.email, SOURCE),
        };
        batch.push(
            ev.with_key(format!("generic:{}", e.id.trim()))
                .with_message(e.message_id),
        );
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeedbackType;
    use hmac::{Hmac, Mac};

    fn sign(secret: &[u8], ts: &str, body: &[u8]) -> String {
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(ts.as_bytes());
        m.update(b".");
        m.update(body);
        format!("v1={}", hex::encode(m.finalize().into_bytes()))
    }

    #[test]
    fn signature_and_timestamp() {
        let body = br#"{"events":[]}"#;
        let sig = sign(b"s", "1700000000", body);
        verify(
            b"s",
            Some(&sig),
            Some("1700000000"),
            body,
            1_700_000_000,
            300,
        )
        .unwrap();
        // rolled-over secret: either value verifies
        let both = format!("v1=00ff, {sig}");
        verify(
            b"s",
            Some(&both),
            Some("1700000000"),
            body,
            1_700_000_000,
            300,
        )
        .unwrap();
        for (secret, s, ts, b) in [
            (&b"other"[..], sig.as_str(), "1700000000", &body[..]),
            (b"s", sig.as_str(), "1700000001", body),
            (b"s", sig.as_str(), "1700000000", br#"{"events":[ ]}"#),
            (b"s", &sig[3..], "1700000000", body),
            (b"s", "v1=", "1700000000", body),
            (b"s", sig.as_str(), "soon", body),
        ] {
            assert!(
                matches!(
                    verify(secret, Some(s), Some(ts), b, 1_700_000_000, 300),
                    Err(EspError::Unauthenticated(_))
                ),
                "{s} {ts}"
            );
        }
        assert!(verify(b"s", None, Some("1700000000"), body, 1_700_000_000, 300).is_err());
        assert!(verify(b"s", Some(&sig), None, body, 1_700_000_000, 300).is_err());
        assert!(matches!(
            verify(
                b"s",
                Some(&sig),
                Some("1700000000"),
                body,
                1_700_000_301,
                300
            ),
            Err(EspError::Stale { .. })
        ));
    }

    #[test]
    fn events_map_to_feedback() {
        let b = events(br#"{"events":[
            {"id":"1","type":"bounce","email":"gone@example.com","status":"5.1.1","diagnostic":"550 5.1.1 unknown","message_id":7},
            {"id":"2","type":"bounce","email":"full@example.com","status":"4.2.2"},
            {"id":"3","type":"complaint","email":"angry@example.com"},
            {"id":"4","type":"delivered","email":"ok@example.com","extra":"ignored"},
            {"id":"5","type":"delivered","email":"not-an-address"}
        ]}"#).unwrap();
        assert_eq!((b.events.len(), b.ignored), (4, 1));
        assert!(b.events[0].hard);
        assert_eq!(b.events[0].message, Some(7));
        assert_eq!(b.events[0].idempotency_key.as_deref(), Some("generic:1"));
        assert!(!b.events[1].hard);
        assert_eq!(b.events[2].kind, FeedbackType::Complaint);
        assert_eq!(b.events[2].feedback_type, "abuse");
        assert_eq!(b.events[3].kind, FeedbackType::Delivered);
        for bad in [
            &br#"{"events":[{"id":"1","type":"open","email":"a@example.com"}]}"#[..],
            br#"{"events":[{"id":"","type":"bounce","email":"a@example.com"}]}"#,
            br#"{"events":[{"type":"bounce","email":"a@example.com"}]}"#,
            br#"{"events":{}}"#,
            br#"[]"#,
            b"",
        ] {
            assert!(
                matches!(events(bad), Err(EspError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
