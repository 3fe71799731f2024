//! Amazon SNS message verification and the Amazon SES notifications it carries.
//!
//! Per the AWS documentation ("Verifying the signatures of Amazon SNS messages"): the
//! string to sign is built from a fixed list of fields in byte order, each as
//! `Name\nvalue\n` (Notification: Message, MessageId, Subject if present, Timestamp,
//! TopicArn, Type; SubscriptionConfirmation and UnsubscribeConfirmation: Message,
//! MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type). SignatureVersion 1 is RSA
//! PKCS#1 v1.5 with SHA-1, version 2 with SHA-256. The public key comes from the X.509
//! certificate at SigningCertURL, which must be an https URL on `sns.<region>.amazonaws.com`
//! (or `.amazonaws.com.cn`) ending in `.pem`; fetching it over verified TLS from that host is
//! what makes it AWS's key.
//!
//! Certificates are cached in memory and in `<data_dir>/sns-certs/<sha256 of the URL>.pem`.
//! A certificate placed there by the operator is used without fetching (air-gapped
//! appliances, tests).

use super::fetch::{FetchError, Fetcher};
use super::{Batch, EspError, Result, text};
use crate::feedback::FeedbackEvent;
use crate::model::normalise_email;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The certificate cache directory under the data dir.
pub const CERT_DIR: &str = "sns-certs";

const SOURCE: &str = "webhook:ses";
/// Certificates are about 2 KB; anything much larger is not one.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// SNS rotates signing certificates rarely; a handful are in use at a time.
const MAX_CACHED_CERTS: usize = 64;

/// The fields of an SNS HTTP(S) delivery this module reads.
#[derive(Debug, Clone, Deserialize)]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    #[serde(rename = "Signature")]
    pub signature: String,
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl", default)]
    pub subscribe_url: Option<String>,
}

/// Parses the SNS envelope (SNS posts it as `text/plain`, so the content type is not checked).
pub fn parse(body: &[u8]) -> Result<SnsMessage> {
    serde_json::from_slice(body).map_err(|e| {
        EspError::Malformed(format!(
            "the body is not an SNS message (JSON with Type, MessageId, TopicArn, Message, Timestamp, SignatureVersion, Signature, SigningCertURL): {e}"
        ))
    })
}

/// The message's Timestamp as Unix seconds.
pub fn timestamp(m: &SnsMessage) -> Result<i64> {
    time::OffsetDateTime::parse(&m.timestamp, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| EspError::Malformed("Timestamp is not an ISO 8601 / RFC 3339 time".into()))
}

/// The string AWS signed.
pub fn canonical(m: &SnsMessage) -> Result<String> {
    fn add(s: &mut String, k: &str, v: &str) {
        s.push_str(k);
        s.push('\n');
        s.push_str(v);
        s.push('\n');
    }
    let mut s = String::with_capacity(m.message.len() + 512);
    match m.kind.as_str() {
        "Notification" => {
            add(&mut s, "Message", &m.message);
            add(&mut s, "MessageId", &m.message_id);
            if let Some(subject) = &m.subject {
                add(&mut s, "Subject", subject);
            }
            add(&mut s, "Timestamp", &m.timestamp);
            add(&mut s, "TopicArn", &m.topic_arn);
            add(&mut s, "Type", &m.kind);
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let (Some(url), Some(token)) = (&m.subscribe_url, &m.token) else {
                return Err(EspError::Malformed(format!(
                    "an SNS {} must have SubscribeURL and Token",
                    m.kind
                )));
            };
            add(&mut s, "Message", &m.message);
            add(&mut s, "MessageId", &m.message_id);
            add(&mut s, "SubscribeURL", url);
            add(&mut s, "Timestamp", &m.timestamp);
            add(&mut s, "Token", token);
            add(&mut s, "TopicArn", &m.topic_arn);
            add(&mut s, "Type", &m.kind);
        }
        other => {
            return Err(EspError::Malformed(format!(
                "SNS message Type '{}' is not one of Notification, SubscriptionConfirmation, UnsubscribeConfirmation",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(s)
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`, exactly.
pub fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let Some(region) = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    // us-east-1, eu-west-1, us-gov-west-1, cn-north-1, ap-southeast-2 …
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn aws_url(raw: &str, what: &str) -> Result<reqwest::Url> {
    let refuse = || {
        EspError::Unauthenticated(format!(
            "{what} must be an https URL on sns.<region>.amazonaws.com"
        ))
    };
    let url = reqwest::Url::parse(raw).map_err(|_| refuse())?;
    let host_ok = url.host_str().is_some_and(is_sns_host);
    if url.scheme() != "https"
        || !host_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.port().is_some()
        || url.fragment().is_some()
    {
        return Err(refuse());
    }
    Ok(url)
}

/// SigningCertURL: https, an SNS host, a path ending in `.pem`, nothing else.
pub fn check_cert_url(raw: &str) -> Result<()> {
    let url = aws_url(raw, "SigningCertURL")?;
    if url.query().is_some() || !url.path().ends_with(".pem") {
        return Err(EspError::Unauthenticated(
            "SigningCertURL must name a .pem file on sns.<region>.amazonaws.com".into(),
        ));
    }
    Ok(())
}

/// SubscribeURL: https on an SNS host, asking to confirm a subscription.
pub fn check_subscribe_url(raw: &str) -> Result<()> {
    let url = aws_url(raw, "SubscribeURL")?;
    if !url
        .query_pairs()
        .any(|(k, v)| k == "Action" && v == "ConfirmSubscription")
    {
        return Err(EspError::Unauthenticated(
            "SubscribeURL does not confirm a subscription (Action=ConfirmSubscription)".into(),
        ));
    }
    Ok(())
}

/// Checks the signature over `canonical` with the certificate's public key (DER
/// SubjectPublicKeyInfo).
pub fn verify(m: &SnsMessage, canonical: &str, spki: &[u8]) -> Result<()> {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaParameters,
        UnparsedPublicKey,
    };
    use base64::Engine;
    let alg: &'static RsaParameters = match m.signature_version.as_str() {
        "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "2" => &RSA_PKCS1_2048_8192_SHA256,
        _ => {
            return Err(EspError::Unauthenticated(
                "SignatureVersion must be 1 or 2".into(),
            ));
        }
    };
    let sig = base64::engine::general_purpose::STANDARD
        .decode(m.signature.trim())
        .map_err(|_| EspError::Unauthenticated("Signature is not base64".into()))?;
    UnparsedPublicKey::new(alg, spki)
        .verify(canonical.as_bytes(), &sig)
        .map_err(|_| EspError::Unauthenticated("the SNS message signature does not verify".into()))
}

/// The public key (DER SubjectPublicKeyInfo) of the first certificate in a PEM file.
pub fn spki_from_pem(pem: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut rd = pem;
    let cert = rustls_pemfile::certs(&mut rd)
        .next()
        .ok_or_else(|| "no PEM certificate found".to_string())?
        .map_err(|e| format!("unreadable PEM: {e}"))?;
    let ee = webpki::EndEntityCert::try_from(&cert)
        .map_err(|e| format!("not a usable X.509 certificate: {e:?}"))?;
    Ok(ee.subject_public_key_info().as_ref().to_vec())
}

/// The cache file of a certificate URL: `<dir>/<hex sha256 of the URL>.pem`.
pub fn cache_file(dir: &std::path::Path, url: &str) -> PathBuf {
    dir.join(format!(
        "{}.pem",
        hex::encode(Sha256::digest(url.as_bytes()))
    ))
}

/// Signing certificates by URL: memory, then the data dir, then AWS.
pub struct CertCache {
    dir: PathBuf,
    mem: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    fetcher: Fetcher,
    /// At most this many certificate downloads at once.
    slots: tokio::sync::Semaphore,
}

impl CertCache {
    pub fn new(dir: PathBuf, fetcher: Fetcher) -> CertCache {
        CertCache {
            dir,
            mem: Mutex::new(HashMap::new()),
            fetcher,
            slots: tokio::sync::Semaphore::new(4),
        }
    }

    fn remembered(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        self.mem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned()
    }

    fn remember(&self, url: &str, key: Vec<u8>) -> Arc<Vec<u8>> {
        let key = Arc::new(key);
        let mut mem = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        if mem.len() >= MAX_CACHED_CERTS {
            mem.clear();
        }
        mem.insert(url.to_string(), key.clone());
        key
    }

    /// The public key of the certificate at `url` (already checked with
    /// [`check_cert_url`]).
    pub async fn public_key(&self, url: &str) -> Result<Arc<Vec<u8>>> {
        if let Some(k) = self.remembered(url) {
            return Ok(k);
        }
        let path = cache_file(&self.dir, url);
        match tokio::fs::read(&path).await {
            Ok(pem) => match spki_from_pem(&pem) {
                Ok(k) => return Ok(self.remember(url, k)),
                Err(e) => tracing::warn!(
                    file = %path.display(),
                    error = %e,
                    "cached SNS certificate is unusable; fetching it again"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read cached SNS certificate")
            }
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| EspError::Unavailable("shutting down".into()))?;
        if let Some(k) = self.remembered(url) {
            return Ok(k);
        }
        let pem = self
            .fetcher
            .get(url, MAX_CERT_BYTES)
            .await
            .map_err(|e| match e {
                FetchError::TooLarge(_) => EspError::Unauthenticated(format!(
                    "the SigningCertURL is not a certificate: {e}"
                )),
                e if e.is_permanent() => EspError::Unauthenticated(format!(
                    "the SigningCertURL is not a certificate: {e}"
                )),
                e => EspError::Unavailable(format!(
                    "the SNS signing certificate cannot be fetched right now ({e}); AWS will retry"
                )),
            })?;
        let key = spki_from_pem(&pem).map_err(|e| {
            EspError::Unauthenticated(format!("the SigningCertURL is not a certificate: {e}"))
        })?;
        if let Err(e) = store_file(&self.dir, &path, &pem).await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache SNS certificate");
        }
        Ok(self.remember(url, key))
    }
}

async fn store_file(
    dir: &std::path::Path,
    path: &std::path::Path,
    pem: &[u8],
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = path.with_extension("pem.tmp");
    tokio::fs::write(&tmp, pem).await?;
    tokio::fs::rename(&tmp, path).await
}

/// The events in an SES notification (the SNS `Message`). SES's "notificationType" and its
/// event-publishing "eventType" are both understood. Anything that is not JSON (AWS's test
/// notification on topic setup) or is not a bounce, complaint or delivery is ignored.
pub fn ses_events(message: &str, sns_message_id: &str) -> Batch {
    let mut batch = Batch::default();
    let Ok(v) = serde_json::from_str::<Value>(message) else {
        batch.ignored += 1;
        return batch;
    };
    let mut kind = text(&v, "notificationType");
    if kind.is_empty() {
        kind = text(&v, "eventType");
    }
    let mail_id = v
        .get("mail")
        .map(|m| text(m, "messageId"))
        .unwrap_or_default();
    let key = |email: &str, what: &str| {
        let email = normalise_email(email).unwrap_or_else(|_| email.to_string());
        if mail_id.is_empty() {
            format!("ses:sns:{sns_message_id}:{email}:{what}")
        } else {
            format!("ses:{mail_id}:{email}:{what}")
        }
    };
    let empty = Vec::new();
    let list = |v: &Value, k: &str| -> Vec<Value> {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match kind.as_str() {
        "Bounce" => {
            let b = v.get("bounce").cloned().unwrap_or(Value::Null);
            let hard = text(&b, "bounceType") == "Permanent";
            let sub = text(&b, "bounceSubType");
            let recipients = list(&b, "bouncedRecipients");
            if recipients.is_empty() {
                batch.ignored += 1;
            }
            for r in &recipients {
                let email = text(r, "emailAddress");
                let mut diagnostic = text(r, "diagnosticCode");
                if diagnostic.is_empty() {
                    diagnostic = sub.clone();
                }
                let ev = FeedbackEvent::provider_bounce(
                    &email,
                    hard,
                    &text(r, "status"),
                    &diagnostic,
                    SOURCE,
                )
                .with_key(key(&email, "bounce"));
                batch.push(ev);
            }
        }
        "Complaint" => {
            let c = v.get("complaint").cloned().unwrap_or(Value::Null);
            let feedback_type = text(&c, "complaintFeedbackType");
            let recipients = list(&c, "complainedRecipients");
            if recipients.is_empty() {
                batch.ignored += 1;
            }
            for r in &recipients {
                let email = text(r, "emailAddress");
                let ev = FeedbackEvent::provider_complaint(&email, &feedback_type, SOURCE)
                    .with_key(key(&email, "complaint"));
                batch.push(ev);
            }
        }
        "Delivery" => {
            let d = v.get("delivery").cloned().unwrap_or(Value::Null);
            let recipients = d
                .get("recipients")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            if recipients.is_empty() {
                batch.ignored += 1;
            }
            for r in recipients {
                let email = r.as_str().unwrap_or_default();
                let ev = FeedbackEvent::provider_delivered(email, SOURCE)
                    .with_key(key(email, "delivery"));
                batch.push(ev);
            }
        }
        _ => batch.ignored += 1,
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FeedbackType;

    #[test]
    fn only_exact_sns_hosts_are_accepted() {
        for ok in [
            "sns.us-east-1.amazonaws.com",
            "sns.eu-west-1.amazonaws.com",
            "sns.us-gov-west-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
        ] {
            assert!(is_sns_host(ok), "{ok}");
        }
        for bad in [
            "sns.amazonaws.com",
            "sns..amazonaws.com",
            "sns.us-east-1.amazonaws.com.evil.example",
            "evil.example/sns.us-east-1.amazonaws.com",
            "sns.us-east-1.amazonaws.co",
            "xsns.us-east-1.amazonaws.com",
            "sns.us-east-1.evil.amazonaws.com",
            "sns.US-EAST-1.amazonaws.com",
            "sns.us-east-.amazonaws.com",
            "sqs.us-east-1.amazonaws.com",
        ] {
            assert!(!is_sns_host(bad), "{bad}");
        }
    }

    #[test]
    fn certificate_urls() {
        assert!(
            check_cert_url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem")
                .is_ok()
        );
        for bad in [
            "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.txt",
            "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
            "https://user@sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com/x.pem?x=1",
            "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
            "https://evil.example/#sns.eu-west-1.amazonaws.com/x.pem",
            "file:///etc/passwd.pem",
            "not a url",
        ] {
            assert!(check_cert_url(bad).is_err(), "{bad}");
        }
        assert!(check_subscribe_url("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn&Token=t").is_ok());
        assert!(
            check_subscribe_url("https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe").is_err()
        );
        assert!(check_subscribe_url("https://evil.example/?Action=ConfirmSubscription").is_err());
    }

    fn notification(subject: Option<&str>) -> SnsMessage {
        SnsMessage {
            kind: "Notification".into(),
            message_id: "m-1".into(),
            token: None,
            topic_arn: "arn:aws:sns:eu-west-1:123:ses".into(),
            subject: subject.map(String::from),
            message: "hello".into(),
            timestamp: "2026-11-24T10:00:00.000Z".into(),
            signature_version: "2".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
        }
    }

    #[test]
    fn canonical_strings_follow_the_aws_field_lists() {
        assert_eq!(
            canonical(&notification(None)).unwrap(),
            "Message\nhello\nMessageId\nm-1\nTimestamp\n2026-11-24T10:00:00.000Z\nTopicArn\narn:aws:sns:eu-west-1:123:ses\nType\nNotification\n"
        );
        assert!(
            canonical(&notification(Some("S")))
                .unwrap()
                .contains("MessageId\nm-1\nSubject\nS\nTimestamp\n")
        );
        let mut c = notification(None);
        c.kind = "SubscriptionConfirmation".into();
        assert!(matches!(canonical(&c), Err(EspError::Malformed(_))));
        c.subscribe_url = Some("https://u".into());
        c.token = Some("tok".into());
        assert_eq!(
            canonical(&c).unwrap(),
            "Message\nhello\nMessageId\nm-1\nSubscribeURL\nhttps://u\nTimestamp\n2026-11-24T10:00:00.000Z\nToken\ntok\nTopicArn\narn:aws:sns:eu-west-1:123:ses\nType\nSubscriptionConfirmation\n"
        );
        c.kind = "Other".into();
        assert!(canonical(&c).is_err());
    }

    #[test]
    fn signatures_verify_with_the_certificate_key_only() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
        use base64::Engine;
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let mut m = notification(None);
        let text = canonical(&m).unwrap();
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            text.as_bytes(),
            &mut sig,
        )
        .unwrap();
        m.signature = base64::engine::general_purpose::STANDARD.encode(&sig);
        let public = pair.public_key().as_ref().to_vec();
        verify(&m, &text, &public).unwrap();
        // a changed field, a different version or another key: refused
        assert!(verify(&m, &text.replace("hello", "hellp"), &public).is_err());
        let mut v1 = m.clone();
        v1.signature_version = "1".into();
        assert!(verify(&v1, &text, &public).is_err());
        v1.signature_version = "3".into();
        assert!(verify(&v1, &text, &public).is_err());
        let other = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        assert!(verify(&m, &text, other.public_key().as_ref()).is_err());
        m.signature = "%%%".into();
        assert!(verify(&m, &text, &public).is_err());
    }

    #[test]
    fn the_public_key_comes_from_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["sns.eu-west-1.amazonaws.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = spki_from_pem(cert.pem().as_bytes()).unwrap();
        // rcgen's default key is P-256, which the SendGrid key reader understands
        let expected = crate::esp::sendgrid::decode_public_key(&key.public_key_pem()).unwrap();
        assert_eq!(spki, expected);
        assert!(
            spki_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        assert!(spki_from_pem(b"garbage").is_err());
    }

    #[test]
    fn ses_notifications_become_feedback() {
        let bounce = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"Gone@Example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"},{"emailAddress":"not-an-address"}]},"mail":{"messageId":"0100-abc"}}"#;
        let b = ses_events(bounce, "sns-1");
        assert_eq!((b.events.len(), b.ignored), (1, 1));
        let e = &b.events[0];
        assert_eq!(e.kind, FeedbackType::Bounce);
        assert!(e.hard);
        assert_eq!(e.status, "5.1.1");
        assert_eq!(e.source, "webhook:ses");
        assert_eq!(
            e.idempotency_key.as_deref(),
            Some("ses:0100-abc:gone@example.com:bounce")
        );

        let transient = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"MailboxFull","bouncedRecipients":[{"emailAddress":"full@example.com"}]},"mail":{"messageId":"x"}}"#;
        assert!(!ses_events(transient, "s").events[0].hard);

        let complaint = r#"{"eventType":"Complaint","complaint":{"complaintFeedbackType":"abuse","complainedRecipients":[{"emailAddress":"angry@example.com"}]},"mail":{"messageId":"m2"}}"#;
        let c = ses_events(complaint, "s");
        assert_eq!(c.events[0].kind, FeedbackType::Complaint);
        assert_eq!(c.events[0].feedback_type, "abuse");

        let delivery = r#"{"notificationType":"Delivery","delivery":{"recipients":["a@example.com","b@example.com"]},"mail":{"messageId":"m3"}}"#;
        let d = ses_events(delivery, "s");
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[1].kind, FeedbackType::Delivered);

        for ignored in [
            "Successfully validated SNS topic for Amazon SES event publishing.",
            r#"{"eventType":"Open","mail":{}}"#,
            r#"{"notificationType":"Bounce"}"#,
            "[]",
        ] {
            let b = ses_events(ignored, "s");
            assert!(b.events.is_empty() && b.ignored == 1, "{ignored}");
        }
        // without a mail id the SNS message id keeps the key unique
        let no_mail =
            r#"{"notificationType":"Delivery","delivery":{"recipients":["a@example.com"]}}"#;
        assert_eq!(
            ses_events(no_mail, "sns-9").events[0]
                .idempotency_key
                .as_deref(),
            Some("ses:sns:sns-9:a@example.com:delivery")
        );
    }
}
