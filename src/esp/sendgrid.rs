//! SendGrid's Event Webhook with signature verification: an ECDSA P-256 / SHA-256
//! signature (base64 of the DER `ECDSA-Sig-Value`) in `X-Twilio-Email-Event-Webhook-Signature`
//! over the bytes of `X-Twilio-Email-Event-Webhook-Timestamp` followed by the raw body. The
//! verification key is the one the SendGrid console shows (base64 of the DER
//! SubjectPublicKeyInfo), or the same in PEM.
//!
//! Events: `bounce` (type `bounce` is permanent, `blocked` temporary), `dropped` for an
//! address SendGrid already knows is bad (Bounced Address, Invalid → hard bounce; Spam
//! Reporting Address → complaint), `spamreport`, `delivered`. `deferred` is ignored: SendGrid
//! keeps retrying and reports the final outcome as a bounce. The idempotency key is
//! `sendgrid:<sg_event_id>`.

use super::{Batch, EspError, Result, check_fresh, parse_unix, text};
use crate::feedback::FeedbackEvent;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine;
use serde_json::Value;

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";
const SOURCE: &str = "webhook:sendgrid";

/// Reads the verification key as SendGrid shows it (base64 DER) or as PEM, and checks it is
/// a P-256 public key. Returns the DER SubjectPublicKeyInfo.
pub fn decode_public_key(text: &str) -> std::result::Result<Vec<u8>, String> {
    let b64: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "sendgrid_public_key is not base64 (or PEM)".to_string())?;
    ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &der)
        .map_err(|_| "sendgrid_public_key is not an ECDSA P-256 public key".to_string())?;
    Ok(der)
}

/// Checks the signature, then the timestamp's age.
pub fn verify(
    public_key: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: u64,
) -> Result<()> {
    let signature = signature.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        EspError::Unauthenticated(
            "missing X-Twilio-Email-Event-Webhook-Signature header (turn on signature verification for the Event Webhook)".into(),
        )
    })?;
    let timestamp = timestamp.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        EspError::Unauthenticated("missing X-Twilio-Email-Event-Webhook-Timestamp header".into())
    })?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| {
            EspError::Unauthenticated("X-Twilio-Email-Event-Webhook-Signature is not base64".into())
        })?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&signed, &sig)
        .map_err(|_| {
            EspError::Unauthenticated(
                "the SendGrid signature does not verify with sendgrid_public_key".into(),
            )
        })?;
    check_fresh(
        parse_unix(timestamp, "X-Twilio-Email-Event-Webhook-Timestamp")?,
        now,
        tolerance,
    )
}

/// The events of a (verified) SendGrid batch.
pub fn events(body: &[u8]) -> Result<Batch> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| EspError::Malformed(format!("the body is not JSON: {e}")))?;
    let Value::Array(items) = v else {
        return Err(EspError::Malformed(
            "SendGrid posts a JSON array of events".into(),
        ));
    };
    let mut batch = Batch::default();
    for e in &items {
        if !e.is_object() {
            return Err(EspError::Malformed(
                "every element of the array must be an event object".into(),
            ));
        }
        let email = text(e, "email");
        let event = text(e, "event");
        let reason = text(e, "reason");
        let ev = match event.as_str() {
            "bounce" => Some(FeedbackEvent::provider_bounce(
                &email,
                text(e, "type") != "blocked",
                &text(e, "status"),
                &reason,
                SOURCE,
            )),
            "dropped" => match reason.as_str() {
                "Bounced Address" | "Invalid" | "Invalid Address" => Some(
                    FeedbackEvent::provider_bounce(&email, true, "", &reason, SOURCE),
                ),
                "Spam Reporting Address" => {
                    Some(FeedbackEvent::provider_complaint(&email, "abuse", SOURCE))
                }
                _ => None,
            },
            "spamreport" => Some(FeedbackEvent::provider_complaint(&email, "abuse", SOURCE)),
            "delivered" => Some(FeedbackEvent::provider_delivered(&email, SOURCE)),
            _ => None,
        };
        let Some(ev) = ev else {
            batch.ignored += 1;
            continue;
        };
        let id = text(e, "sg_event_id");
        let message = text(e, "sg_message_id");
        let ev = if !id.is_empty() {
            ev.with_key(format!("sendgrid:{id}"))
        } else if !message.is_empty() {
            ev.with_key(format!(
                "sendgrid:{message}:{}:{event}",
                email.to_lowercase()
            ))
        } else {
            ev
        };
        batch.push(ev);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeedbackType;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        // what the SendGrid console shows: base64 of the SubjectPublicKeyInfo
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        let shown = base64::engine::general_purpose::STANDARD.encode(spki.as_ref());
        (pair, decode_public_key(&shown).unwrap())
    }

    fn sign(pair: &EcdsaKeyPair, ts: &str, body: &[u8]) -> String {
        let mut m = ts.as_bytes().to_vec();
        m.extend_from_slice(body);
        let sig = pair.sign(&SystemRandom::new(), &m).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    #[test]
    fn keys_are_read_as_shown_or_as_pem_and_must_be_p256() {
        let (_, der) = key();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &b64[..40],
            &b64[40..]
        );
        assert_eq!(decode_public_key(&pem).unwrap(), der);
        assert!(decode_public_key("not base64!").is_err());
        assert!(decode_public_key("AAAA").is_err());
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(
            decode_public_key(&ed.public_key_pem())
                .unwrap_err()
                .contains("P-256")
        );
    }

    #[test]
    fn signature_over_timestamp_and_body() {
        let (pair, der) = key();
        let body = br#"[{"email":"a@example.com","event":"delivered","sg_event_id":"e1"}]"#;
        let sig = sign(&pair, "1700000000", body);
        verify(
            &der,
            Some(&sig),
            Some("1700000000"),
            body,
            1_700_000_100,
            300,
        )
        .unwrap();
        // body, timestamp or key changed: refused
        let mut other = body.to_vec();
        other[3] = b'b';
        assert!(matches!(
            verify(
                &der,
                Some(&sig),
                Some("1700000000"),
                &other,
                1_700_000_100,
                300
            ),
            Err(EspError::Unauthenticated(_))
        ));
        assert!(
            verify(
                &der,
                Some(&sig),
                Some("1700000001"),
                body,
                1_700_000_100,
                300
            )
            .is_err()
        );
        let (_, der2) = key();
        assert!(
            verify(
                &der2,
                Some(&sig),
                Some("1700000000"),
                body,
                1_700_000_100,
                300
            )
            .is_err()
        );
        // missing headers, garbage signature
        assert!(verify(&der, None, Some("1700000000"), body, 1_700_000_100, 300).is_err());
        assert!(verify(&der, Some(&sig), None, body, 1_700_000_100, 300).is_err());
        assert!(
            verify(
                &der,
                Some("@@"),
                Some("1700000000"),
                body,
                1_700_000_100,
                300
            )
            .is_err()
        );
        // authentic but old: a replay
        assert!(matches!(
            verify(
                &der,
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
        let body = br#"[
            {"email":"gone@example.com","event":"bounce","type":"bounce","status":"5.1.1","reason":"550 5.1.1 no such user","sg_event_id":"b1","sg_message_id":"m"},
            {"email":"busy@example.com","event":"bounce","type":"blocked","status":"4.0.0","reason":"421 try later","sg_event_id":"b2"},
            {"email":"old@example.com","event":"dropped","reason":"Bounced Address","sg_event_id":"d1"},
            {"email":"unsub@example.com","event":"dropped","reason":"Unsubscribed Address","sg_event_id":"d2"},
            {"email":"angry@example.com","event":"spamreport","sg_event_id":"s1"},
            {"email":"ok@example.com","event":"delivered","sg_message_id":"m2"},
            {"email":"ok@example.com","event":"deferred","sg_event_id":"x1"},
            {"email":"ok@example.com","event":"open","sg_event_id":"x2"}
        ]"#;
        let b = events(body).unwrap();
        assert_eq!((b.events.len(), b.ignored), (5, 3));
        assert!(b.events[0].hard);
        assert_eq!(b.events[0].idempotency_key.as_deref(), Some("sendgrid:b1"));
        assert!(!b.events[1].hard);
        assert!(b.events[2].hard);
        assert_eq!(b.events[3].kind, FeedbackType::Complaint);
        assert_eq!(b.events[4].kind, FeedbackType::Delivered);
        assert_eq!(
            b.events[4].idempotency_key.as_deref(),
            Some("sendgrid:m2:ok@example.com:delivered")
        );
        assert!(matches!(events(b"{}"), Err(EspError::Malformed(_))));
        assert!(matches!(events(b"[1]"), Err(EspError::Malformed(_))));
        assert!(matches!(events(b"[{"), Err(EspError::Malformed(_))));
        assert_eq!(events(b"[]").unwrap().events.len(), 0);
    }
}
