//! ESP webhooks in, end to end against the real binary over HTTPS: for each provider a
//! correctly signed hard bounce suppresses, a complaint unsubscribes and suppresses, the same
//! event twice counts once, and a wrong, stale or replayed signature gets 401 and changes
//! nothing. Plus disabled endpoints, floods and garbage.

mod common;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

fn post_raw(
    s: &Server,
    provider: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> reqwest::blocking::Response {
    let mut r = s
        .client
        .post(s.url(&format!("/api/v1/webhooks/{provider}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.send().unwrap()
}

/// 200 and the result object.
fn ok(r: reqwest::blocking::Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The error code of a refused request, checking its status.
fn refused(r: reqwest::blocking::Response, status: u16) -> String {
    let (st, e) = error_of(r);
    assert_eq!(st, status, "{e}");
    e["code"].as_str().unwrap().to_string()
}

fn suppression(s: &Server, email: &str) -> Option<Value> {
    let r = s.get(&format!("/api/v1/suppressions/{email}"));
    match r.status().as_u16() {
        200 => Some(r.json().unwrap()),
        404 => None,
        other => panic!("GET suppression: {other}"),
    }
}

fn counts(v: &Value) -> (u64, u64) {
    (
        v["accepted"].as_u64().unwrap(),
        v["duplicates"].as_u64().unwrap(),
    )
}

/// A contact on a list, to see a complaint unsubscribe it.
fn subscribed_contact(s: &Server, email: &str) -> u64 {
    let r = s.post(
        "/api/v1/lists",
        &json!({"name": format!("list for {email}")}),
    );
    assert_eq!(r.status(), 201);
    let list = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    let r = s.post(
        "/api/v1/contacts",
        &json!({"email": email, "lists": [list]}),
    );
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["id"].as_u64().unwrap()
}

/// Suppressed as a complaint, and the contact unsubscribed from its lists.
fn assert_complaint(s: &Server, email: &str, contact: u64) {
    let sup = suppression(s, email).expect("suppressed");
    assert_eq!(sup["reason"], "complaint", "{sup}");
    let c = s.get_json(&format!("/api/v1/contacts/{contact}"));
    let lists = c["lists"].as_array().unwrap();
    assert!(!lists.is_empty());
    assert!(lists.iter().all(|m| m["status"] == "unsubscribed"), "{c}");
}

/// Suppressed as a hard bounce reported by `source`.
fn assert_hard_bounce(s: &Server, email: &str, source: &str) {
    let sup = suppression(s, email).expect("suppressed");
    assert_eq!(
        (sup["reason"].as_str(), sup["source"].as_str()),
        (Some("hard_bounce"), Some(source)),
        "{sup}"
    );
}

// ---------------------------------------------------------------- SES through SNS

/// An RSA key that signs SNS messages: SHA-256 through aws-lc-rs, SHA-1 (SignatureVersion 1,
/// which aws-lc-rs does not sign) as textbook PKCS#1 v1.5 with the private exponent.
struct SnsSigner {
    pair: aws_lc_rs::rsa::KeyPair,
    n: num_bigint::BigUint,
    d: num_bigint::BigUint,
    cert_pem: String,
}

/// (tag, content, rest) of one DER element.
fn der(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = b[0];
    let (len, start) = if b[1] < 0x80 {
        (b[1] as usize, 2)
    } else {
        let n = (b[1] & 0x7f) as usize;
        let len = b[2..2 + n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, 2 + n)
    };
    (tag, &b[start..start + len], &b[start + len..])
}

impl SnsSigner {
    fn new() -> SnsSigner {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        // PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey { 0, n, e, d, ..} } }
        let (_, info, _) = der(pkcs8.as_ref());
        let (_, _, rest) = der(info);
        let (_, _, rest) = der(rest);
        let (_, octets, _) = der(rest);
        let (_, rsa, _) = der(octets);
        let (_, _, rest) = der(rsa);
        let (_, n, rest) = der(rest);
        let (_, _, rest) = der(rest);
        let (_, d, _) = der(rest);
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["sns.eu-west-1.amazonaws.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        SnsSigner {
            pair,
            n: num_bigint::BigUint::from_bytes_be(n),
            d: num_bigint::BigUint::from_bytes_be(d),
            cert_pem: cert.pem(),
        }
    }

    fn sign(&self, version: &str, text: &str) -> String {
        let k = self.pair.public_modulus_len();
        let sig = if version == "1" {
            let h = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                text.as_bytes(),
            );
            let mut t = vec![
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ];
            t.extend_from_slice(h.as_ref());
            let mut em = vec![0x00, 0x01];
            em.resize(k - t.len() - 1, 0xff);
            em.push(0x00);
            em.extend_from_slice(&t);
            let s = num_bigint::BigUint::from_bytes_be(&em)
                .modpow(&self.d, &self.n)
                .to_bytes_be();
            let mut out = vec![0; k - s.len()];
            out.extend_from_slice(&s);
            out
        } else {
            let mut out = vec![0; k];
            self.pair
                .sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    text.as_bytes(),
                    &mut out,
                )
                .unwrap();
            out
        };
        B64.encode(sig)
    }
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:ses-feedback";
const CERT_URL: &str =
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem";

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A signed SNS message: `fields` are Type-specific (Message, MessageId, Subject, Token,
/// SubscribeURL, Timestamp, TopicArn, Type).
fn sns(signer: &SnsSigner, version: &str, mut fields: serde_json::Map<String, Value>) -> Value {
    let kind = fields["Type"].as_str().unwrap().to_string();
    let order: &[&str] = if kind == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut text = String::new();
    for k in order {
        if let Some(v) = fields.get(*k).and_then(Value::as_str) {
            text.push_str(&format!("{k}\n{v}\n"));
        }
    }
    fields.insert("SignatureVersion".into(), json!(version));
    fields.insert("Signature".into(), json!(signer.sign(version, &text)));
    fields.entry("SigningCertURL").or_insert(json!(CERT_URL));
    Value::Object(fields)
}

fn notification(message: &Value, id: &str, at: i64) -> serde_json::Map<String, Value> {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": TOPIC,
        "Message": message.to_string(),
        "Timestamp": rfc3339(at),
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn ses_bounce(email: &str, mail_id: &str) -> Value {
    json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-11-24T10:00:00.000Z", "feedbackId": "fb-1"},
        "mail": {"messageId": mail_id, "source": "news@example.org", "destination": [email]}
    })
}

fn post_sns(s: &Server, msg: &Value) -> reqwest::blocking::Response {
    s.client
        .post(s.url("/api/v1/webhooks/ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", msg["Type"].as_str().unwrap_or(""))
        .body(msg.to_string())
        .send()
        .unwrap()
}

#[test]
fn ses_notifications_through_sns() {
    let s = Server::start_with(&[("MAILSTEAD_SES_TOPIC_ARNS", TOPIC)]);
    let signer = SnsSigner::new();
    // the certificate cache, pre-seeded as an air-gapped operator would
    let dir = s.data().join("sns-certs");
    std::fs::create_dir_all(&dir).unwrap();
    let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CERT_URL.as_bytes()));
    std::fs::write(dir.join(format!("{name}.pem")), &signer.cert_pem).unwrap();

    // SignatureVersion 1 (SHA-1): a hard bounce suppresses
    let msg = sns(
        &signer,
        "1",
        notification(&ses_bounce("gone@example.com", "ses-1"), "sns-1", now()),
    );
    assert_eq!(counts(&ok(post_sns(&s, &msg))), (1, 0));
    assert_hard_bounce(&s, "gone@example.com", "webhook:ses");
    // SNS retries the same message: counted once
    assert_eq!(counts(&ok(post_sns(&s, &msg))), (0, 1));
    assert_eq!(
        suppression(&s, "gone@example.com").unwrap()["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // SignatureVersion 2 (SHA-256): a complaint unsubscribes and suppresses
    let id = subscribed_contact(&s, "angry@example.com");
    let complaint = json!({"notificationType": "Complaint",
        "complaint": {"complaintFeedbackType": "abuse", "complainedRecipients": [{"emailAddress": "angry@example.com"}]},
        "mail": {"messageId": "ses-2"}});
    let mut fields = notification(&complaint, "sns-2", now());
    fields.insert(
        "Subject".into(),
        json!("Amazon SES Email Event Notification"),
    );
    assert_eq!(
        counts(&ok(post_sns(&s, &sns(&signer, "2", fields)))),
        (1, 0)
    );
    assert_complaint(&s, "angry@example.com", id);

    // a delivery is recorded, not suppressed
    let delivery = json!({"notificationType": "Delivery", "delivery": {"recipients": ["fine@example.com"]}, "mail": {"messageId": "ses-3"}});
    let r = ok(post_sns(
        &s,
        &sns(&signer, "2", notification(&delivery, "sns-3", now())),
    ));
    assert_eq!(counts(&r), (1, 0));
    assert!(suppression(&s, "fine@example.com").is_none());

    // forged: the message changed after signing → 401, nothing applied
    let mut forged = sns(
        &signer,
        "2",
        notification(&ses_bounce("victim@example.com", "ses-4"), "sns-4", now()),
    );
    forged["Message"] = json!(ses_bounce("other@example.com", "ses-4").to_string());
    assert_eq!(refused(post_sns(&s, &forged), 401), "invalid_signature");
    // signed by another key
    let other = SnsSigner::new();
    let by_other = sns(
        &other,
        "2",
        notification(&ses_bounce("victim@example.com", "ses-5"), "sns-5", now()),
    );
    assert_eq!(refused(post_sns(&s, &by_other), 401), "invalid_signature");
    // a certificate URL off AWS, or not https
    for url in [
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem",
    ] {
        let mut f = notification(&ses_bounce("victim@example.com", "ses-6"), "sns-6", now());
        f.insert("SigningCertURL".into(), json!(url));
        assert_eq!(
            refused(post_sns(&s, &sns(&signer, "2", f)), 401),
            "invalid_signature"
        );
    }
    // a certificate that is not cached has to come from AWS: unreachable from the tests
    // (503, SNS retries) or, with network, not found there (401); never applied
    let mut f = notification(&ses_bounce("victim@example.com", "ses-6b"), "sns-6b", now());
    f.insert(
        "SigningCertURL".into(),
        json!("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-not-cached.pem"),
    );
    let r = post_sns(&s, &sns(&signer, "2", f));
    let (st, e) = error_of(r);
    assert!(
        matches!(
            (st, e["code"].as_str().unwrap()),
            (503, "unavailable") | (401, "invalid_signature")
        ),
        "{st} {e}"
    );
    // replayed: authentic but older than the tolerance → 401
    let old = sns(
        &signer,
        "2",
        notification(
            &ses_bounce("victim@example.com", "ses-7"),
            "sns-7",
            now() - 3600,
        ),
    );
    assert_eq!(refused(post_sns(&s, &old), 401), "stale_timestamp");
    // a topic not listed → 403
    let mut f = notification(&ses_bounce("victim@example.com", "ses-8"), "sns-8", now());
    f.insert(
        "TopicArn".into(),
        json!("arn:aws:sns:eu-west-1:999999999999:someone-else"),
    );
    assert_eq!(
        refused(post_sns(&s, &sns(&signer, "2", f)), 403),
        "forbidden"
    );
    // not an SNS message → 400
    assert_eq!(
        refused(post_sns(&s, &json!({"hello": "world"})), 400),
        "invalid_payload"
    );
    assert!(suppression(&s, "victim@example.com").is_none());
    assert!(suppression(&s, "other@example.com").is_none());

    // subscription confirmation: verified, then confirmed in the background (AWS is not
    // reachable from tests; the attempt is logged and a failure harms nothing)
    let confirm = json!({
        "Type": "SubscriptionConfirmation", "MessageId": "sub-1", "Token": "tok-123",
        "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": format!("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=tok-123"),
        "Timestamp": rfc3339(now()),
    });
    let fields = confirm.as_object().unwrap().clone();
    let msg = sns(&signer, "1", fields.clone());
    assert_eq!(ok(post_sns(&s, &msg))["subscription"], "confirming");
    assert_eq!(counts(&ok(post_sns(&s, &msg))), (0, 1), "confirmed once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("confirming SNS subscription") {
        assert!(
            Instant::now() < deadline,
            "no confirmation attempt: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // the attempt ends (here: AWS unreachable, or the made-up token refused) and is logged
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = |log: &str| {
        log.contains("SNS subscription confirmation failed")
            || log.contains("SNS subscription confirmed")
    };
    while !finished(&s.log()) {
        assert!(
            Instant::now() < deadline,
            "confirmation never finished: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // a confirmation whose URL points elsewhere is refused
    let mut f = fields;
    f.insert("MessageId".into(), json!("sub-2"));
    f.insert(
        "SubscribeURL".into(),
        json!("https://evil.example/?Action=ConfirmSubscription"),
    );
    assert_eq!(
        refused(post_sns(&s, &sns(&signer, "2", f)), 401),
        "invalid_signature"
    );
    assert!(!s.log().contains("tok-123"), "tokens stay out of the log");
    assert_eq!(s.get("/healthz").status(), 200);
}

// ---------------------------------------------------------------- SendGrid

fn p256() -> (aws_lc_rs::signature::EcdsaKeyPair, String) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let shown = B64.encode(spki.as_ref());
    (pair, shown)
}

fn sendgrid_post(
    s: &Server,
    key: &aws_lc_rs::signature::EcdsaKeyPair,
    ts: i64,
    body: &Value,
) -> reqwest::blocking::Response {
    let body = body.to_string();
    let ts = ts.to_string();
    let sig = key
        .sign(&SystemRandom::new(), format!("{ts}{body}").as_bytes())
        .unwrap();
    post_raw(
        s,
        "sendgrid",
        &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                B64.encode(sig.as_ref()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts),
        ],
        body.as_bytes(),
    )
}

#[test]
fn sendgrid_event_webhook() {
    let (key, shown) = p256();
    let s = Server::start_with(&[("MAILSTEAD_SENDGRID_PUBLIC_KEY", shown.as_str())]);
    let id = subscribed_contact(&s, "angry@example.com");
    let batch = json!([
        {"email": "gone@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist",
         "sg_event_id": "ev-1", "sg_message_id": "m1.filter", "timestamp": now()},
        {"email": "angry@example.com", "event": "spamreport", "sg_event_id": "ev-2", "timestamp": now()},
        {"email": "fine@example.com", "event": "delivered", "sg_event_id": "ev-3", "timestamp": now()},
        {"email": "fine@example.com", "event": "open", "sg_event_id": "ev-4", "timestamp": now()}
    ]);
    let r = ok(sendgrid_post(&s, &key, now(), &batch));
    assert_eq!((counts(&r), r["ignored"].as_u64().unwrap()), ((3, 0), 1));
    assert_hard_bounce(&s, "gone@example.com", "webhook:sendgrid");
    assert_complaint(&s, "angry@example.com", id);
    // the same events again (SendGrid retries): counted once
    assert_eq!(counts(&ok(sendgrid_post(&s, &key, now(), &batch))), (0, 3));

    let victim = json!([{"email": "victim@example.com", "event": "bounce", "type": "bounce", "sg_event_id": "ev-9"}]);
    // signed with another key → 401
    let (other, _) = p256();
    assert_eq!(
        refused(sendgrid_post(&s, &other, now(), &victim), 401),
        "invalid_signature"
    );
    // body changed after signing → 401
    let ts = now().to_string();
    let sig = key
        .sign(&SystemRandom::new(), format!("{ts}[]").as_bytes())
        .unwrap();
    let r = post_raw(
        &s,
        "sendgrid",
        &[
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                B64.encode(sig.as_ref()),
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", ts.clone()),
        ],
        victim.to_string().as_bytes(),
    );
    assert_eq!(refused(r, 401), "invalid_signature");
    // no signature → 401
    let r = post_raw(&s, "sendgrid", &[], victim.to_string().as_bytes());
    assert_eq!(refused(r, 401), "invalid_signature");
    // replayed: correctly signed long ago → 401
    assert_eq!(
        refused(sendgrid_post(&s, &key, now() - 3600, &victim), 401),
        "stale_timestamp"
    );
    // signed, but not an event batch → 400
    assert_eq!(
        refused(
            sendgrid_post(&s, &key, now(), &json!({"not": "an array"})),
            400
        ),
        "invalid_payload"
    );
    assert!(suppression(&s, "victim@example.com").is_none());
}

// ---------------------------------------------------------------- Mailgun

const MAILGUN_KEY: &str = "key-mailgun-signing-0123456789";

fn mailgun_body(key: &str, ts: i64, token: &str, data: &Value) -> Vec<u8> {
    let ts = ts.to_string();
    let sig = hmac_hex(key.as_bytes(), &[ts.as_bytes(), token.as_bytes()]);
    json!({"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": data})
        .to_string()
        .into_bytes()
}

#[test]
fn mailgun_webhooks() {
    let s = Server::start_with(&[("MAILSTEAD_MAILGUN_SIGNING_KEY", MAILGUN_KEY)]);
    let failed = json!({"event": "failed", "id": "mg-1", "severity": "permanent", "reason": "bounce",
        "recipient": "gone@example.com", "timestamp": now(),
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist", "enhanced-code": "5.1.1"}});
    let body = mailgun_body(MAILGUN_KEY, now(), "token-0001", &failed);
    assert_eq!(counts(&ok(post_raw(&s, "mailgun", &[], &body))), (1, 0));
    assert_hard_bounce(&s, "gone@example.com", "webhook:mailgun");
    // the very same request again: a reused token is a replay → 401
    assert_eq!(
        refused(post_raw(&s, "mailgun", &[], &body), 401),
        "replayed"
    );
    // the same event in a new, correctly signed request: counted once
    let again = mailgun_body(MAILGUN_KEY, now(), "token-0002", &failed);
    assert_eq!(counts(&ok(post_raw(&s, "mailgun", &[], &again))), (0, 1));

    let id = subscribed_contact(&s, "angry@example.com");
    let complained = json!({"event": "complained", "id": "mg-2", "recipient": "angry@example.com"});
    let body = mailgun_body(MAILGUN_KEY, now(), "token-0003", &complained);
    assert_eq!(counts(&ok(post_raw(&s, "mailgun", &[], &body))), (1, 0));
    assert_complaint(&s, "angry@example.com", id);

    let victim = json!({"event": "failed", "id": "mg-9", "severity": "permanent", "recipient": "victim@example.com"});
    // wrong key → 401
    let body = mailgun_body("key-wrong", now(), "token-0004", &victim);
    assert_eq!(
        refused(post_raw(&s, "mailgun", &[], &body), 401),
        "invalid_signature"
    );
    // the event changed under a valid signature block is still authentic for Mailgun's
    // scheme (it signs timestamp + token only); the token is what cannot be reused
    // stale timestamp → 401
    let body = mailgun_body(MAILGUN_KEY, now() - 3600, "token-0005", &victim);
    assert_eq!(
        refused(post_raw(&s, "mailgun", &[], &body), 401),
        "stale_timestamp"
    );
    // no signature → 401; not JSON → 400
    let body = json!({"event-data": victim}).to_string();
    assert_eq!(
        refused(post_raw(&s, "mailgun", &[], body.as_bytes()), 401),
        "invalid_signature"
    );
    assert_eq!(
        refused(
            post_raw(&s, "mailgun", &[], b"event=failed&recipient=x"),
            400
        ),
        "invalid_payload"
    );
    assert!(suppression(&s, "victim@example.com").is_none());
}

// ---------------------------------------------------------------- Postmark

fn postmark_post(s: &Server, user: &str, pass: &str, body: &Value) -> reqwest::blocking::Response {
    s.client
        .post(s.url("/api/v1/webhooks/postmark"))
        .basic_auth(user, Some(pass))
        .json(body)
        .send()
        .unwrap()
}

#[test]
fn postmark_webhooks() {
    let s = Server::start_with(&[
        ("MAILSTEAD_POSTMARK_USERNAME", "postmark"),
        ("MAILSTEAD_POSTMARK_PASSWORD", "pm-pass-0123456789"),
    ]);
    let bounce = json!({"RecordType": "Bounce", "ID": 4323372036854775807u64, "Type": "HardBounce",
        "TypeCode": 1, "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "MessageStream": "outbound", "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": "gone@example.com", "From": "news@example.org", "BouncedAt": "2026-11-24T10:00:00Z"});
    assert_eq!(
        counts(&ok(postmark_post(
            &s,
            "postmark",
            "pm-pass-0123456789",
            &bounce
        ))),
        (1, 0)
    );
    assert_hard_bounce(&s, "gone@example.com", "webhook:postmark");
    // Postmark has no timestamps: a replay is the same record ID, counted once
    assert_eq!(
        counts(&ok(postmark_post(
            &s,
            "postmark",
            "pm-pass-0123456789",
            &bounce
        ))),
        (0, 1)
    );

    let id = subscribed_contact(&s, "angry@example.com");
    let complaint = json!({"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint",
        "TypeCode": 512, "Email": "angry@example.com", "MessageID": "m-2"});
    assert_eq!(
        counts(&ok(postmark_post(
            &s,
            "postmark",
            "pm-pass-0123456789",
            &complaint
        ))),
        (1, 0)
    );
    assert_complaint(&s, "angry@example.com", id);

    let victim = json!({"RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "Email": "victim@example.com"});
    assert_eq!(
        refused(postmark_post(&s, "postmark", "wrong", &victim), 401),
        "invalid_signature"
    );
    assert_eq!(
        refused(
            postmark_post(&s, "someone", "pm-pass-0123456789", &victim),
            401
        ),
        "invalid_signature"
    );
    let r = post_raw(&s, "postmark", &[], victim.to_string().as_bytes());
    assert_eq!(refused(r, 401), "invalid_signature");
    assert!(suppression(&s, "victim@example.com").is_none());
    assert!(!s.log().contains("pm-pass-0123456789"));
}

// ---------------------------------------------------------------- generic

const GENERIC_SECRET: &str = "generic-secret-0123456789";

fn generic_post(s: &Server, secret: &str, ts: i64, body: &Value) -> reqwest::blocking::Response {
    let body = body.to_string();
    let ts = ts.to_string();
    let sig = hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", body.as_bytes()]);
    post_raw(
        s,
        "generic",
        &[
            ("X-Mailstead-Signature", format!("v1={sig}")),
            ("X-Mailstead-Timestamp", ts),
        ],
        body.as_bytes(),
    )
}

#[test]
fn generic_signed_json() {
    let s = Server::start_with(&[("MAILSTEAD_GENERIC_WEBHOOK_SECRET", GENERIC_SECRET)]);
    let id = subscribed_contact(&s, "angry@example.com");
    let body = json!({"events": [
        {"id": "g-1", "type": "bounce", "email": "gone@example.com", "hard": true, "status": "5.1.1", "diagnostic": "550 5.1.1 no such user"},
        {"id": "g-2", "type": "complaint", "email": "angry@example.com"},
        {"id": "g-3", "type": "delivered", "email": "fine@example.com"}
    ]});
    assert_eq!(
        counts(&ok(generic_post(&s, GENERIC_SECRET, now(), &body))),
        (3, 0)
    );
    assert_hard_bounce(&s, "gone@example.com", "webhook:generic");
    assert_complaint(&s, "angry@example.com", id);
    assert!(suppression(&s, "fine@example.com").is_none());
    assert_eq!(
        counts(&ok(generic_post(&s, GENERIC_SECRET, now(), &body))),
        (0, 3)
    );

    let victim =
        json!({"events": [{"id": "g-9", "type": "bounce", "email": "victim@example.com"}]});
    assert_eq!(
        refused(generic_post(&s, "wrong-secret", now(), &victim), 401),
        "invalid_signature"
    );
    assert_eq!(
        refused(generic_post(&s, GENERIC_SECRET, now() - 3600, &victim), 401),
        "stale_timestamp"
    );
    assert_eq!(
        refused(generic_post(&s, GENERIC_SECRET, now() + 3600, &victim), 401),
        "stale_timestamp"
    );
    let r = post_raw(&s, "generic", &[], victim.to_string().as_bytes());
    assert_eq!(refused(r, 401), "invalid_signature");
    // signed but not the format → 400 with a clear message
    let (st, e) = error_of(generic_post(
        &s,
        GENERIC_SECRET,
        now(),
        &json!({"events": [{"id": "x", "type": "open", "email": "a@example.com"}]}),
    ));
    assert_eq!(st, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("bounce|complaint|delivered"),
        "{e}"
    );
    assert!(suppression(&s, "victim@example.com").is_none());
    assert!(!s.log().contains(GENERIC_SECRET));
}

// ---------------------------------------------------------------- bad input

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn disabled_endpoints_garbage_and_floods() {
    let (_, shown) = p256();
    let s = Server::start_with(&[
        ("MAILSTEAD_GENERIC_WEBHOOK_SECRET", GENERIC_SECRET),
        ("MAILSTEAD_MAILGUN_SIGNING_KEY", MAILGUN_KEY),
        ("MAILSTEAD_SENDGRID_PUBLIC_KEY", shown.as_str()),
        ("MAILSTEAD_POSTMARK_USERNAME", "pm"),
        ("MAILSTEAD_POSTMARK_PASSWORD", "pw"),
        ("MAILSTEAD_SES_TOPIC_ARNS", TOPIC),
        ("MAILSTEAD_WEBHOOK_REQUESTS_PER_SECOND", "1000"),
    ]);
    // no session, token or CSRF header is needed (or used) on these routes
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let samples: Vec<Vec<u8>> = {
        let mut v: Vec<Vec<u8>> = vec![
            b"".to_vec(), b"{".to_vec(), b"null".to_vec(), b"[]".to_vec(), b"{}".to_vec(),
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(), "\u{feff}{}".as_bytes().to_vec(),
            br#"{"Type":"Notification","MessageId":"x","TopicArn":"arn:aws:sns:eu-west-1:123456789012:ses-feedback","Message":"{}","Timestamp":"2026-11-24T10:00:00Z","SignatureVersion":"2","Signature":"AAAA","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/a.pem"}"#.to_vec(),
            br#"{"signature":{"timestamp":"99999999999999999999","token":"t","signature":"s"}}"#.to_vec(),
            br#"{"RecordType":"Bounce","ID":1,"Type":"HardBounce","Email":"a@example.com"}"#.to_vec(),
            br#"{"events":[{"id":"1","type":"bounce","email":"a@example.com"}]}"#.to_vec(),
        ];
        for i in 0..40 {
            let n = (rng.next() % 600) as usize + i;
            v.push(rng.bytes(n));
        }
        v
    };
    let garbage_headers = [
        ("X-Mailstead-Signature", "v1=zz".to_string()),
        ("X-Mailstead-Timestamp", "-1".to_string()),
        (
            "X-Twilio-Email-Event-Webhook-Signature",
            "MEUCIQ==".to_string(),
        ),
        ("X-Twilio-Email-Event-Webhook-Timestamp", "1e99".to_string()),
        ("Authorization", "Basic Og==".to_string()),
    ];
    for provider in ["ses", "sendgrid", "mailgun", "postmark", "generic"] {
        for (i, body) in samples.iter().enumerate() {
            let headers: &[(&str, String)] = if i % 2 == 0 { &garbage_headers } else { &[] };
            let r = post_raw(&s, provider, headers, body);
            let status = r.status().as_u16();
            assert!(
                (400..500).contains(&status),
                "{provider} sample {i}: {status} {}",
                r.text().unwrap_or_default()
            );
        }
    }
    assert_eq!(s.get("/healthz").status(), 200, "still serving");
    // nothing got through
    let page = s.get_json("/api/v1/suppressions");
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");

    // SendGrid batches may be larger than other webhooks (up to 5 MiB)
    let mut batch = b"[".to_vec();
    while batch.len() < 2 * 1024 * 1024 {
        batch.extend_from_slice(br#"{"email":"a@example.com","event":"open","sg_event_id":"x"},"#);
    }
    batch.extend_from_slice(b"{}]");
    let r = post_raw(&s, "sendgrid", &garbage_headers, &batch);
    assert_eq!(
        refused(r, 401),
        "invalid_signature",
        "read in full, then refused"
    );

    // bodies above the cap are refused (413 or the connection is cut) and memory stays flat
    let big = vec![b'['; 3 * 1024 * 1024];
    // (on a client of its own: the server closes that connection without reading the rest)
    match s
        .new_client()
        .post(s.url("/api/v1/webhooks/generic"))
        .header("content-type", "application/json")
        .body(big)
        .send()
    {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => eprintln!("the server cut the upload short: {e}"),
    }
    assert_eq!(s.get("/healthz").status(), 200);
}

#[test]
fn disabled_providers_and_the_rate_limit() {
    let s = Server::start_with(&[
        ("MAILSTEAD_GENERIC_WEBHOOK_SECRET", GENERIC_SECRET),
        ("MAILSTEAD_WEBHOOK_REQUESTS_PER_SECOND", "2"),
    ]);
    // a provider without its secret is switched off, and says how to switch it on
    let (st, e) = error_of(post_raw(&s, "mailgun", &[], b"{}"));
    assert_eq!((st, e["code"].as_str().unwrap()), (404, "webhook_disabled"));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("mailgun_signing_key"),
        "{e}"
    );
    // documented in the OpenAPI description, without the bearer requirement
    let doc = s.get_json("/api/v1/openapi.json");
    for p in ["ses", "sendgrid", "mailgun", "postmark", "generic"] {
        let op = &doc["paths"][format!("/api/v1/webhooks/{p}")]["post"];
        assert_eq!(op["security"], json!([{}]), "{p}: {op}");
    }
    // an unknown provider is an unknown route
    assert_eq!(post_raw(&s, "mandrill", &[], b"{}").status(), 404);
    // a flood from one address gets 429 quickly; nothing crashes
    let mut limited = 0;
    for _ in 0..30 {
        let r = generic_post(&s, "wrong", now(), &json!({"events": []}));
        match r.status().as_u16() {
            429 => {
                assert_eq!(r.headers()["retry-after"], "1");
                limited += 1;
            }
            401 | 404 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited >= 15, "only {limited} of 30 were rate-limited");
    std::thread::sleep(Duration::from_millis(1100));
    let body = json!({"events": [{"id": "after", "type": "delivered", "email": "ok@example.com"}]});
    assert_eq!(
        counts(&ok(generic_post(&s, GENERIC_SECRET, now(), &body))),
        (1, 0)
    );
}
