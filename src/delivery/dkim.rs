//! DKIM signing (RFC 6376, RFC 8463) with mail-auth 0.13, key generation
//! with rcgen, and the DNS records a sending domain publishes.
//!
//! Keys are PEM bytes (PKCS#8 or PKCS#1 for RSA, PKCS#8 for Ed25519). They
//! are never logged: every type holding one implements `Debug` by hand.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Headers signed when present, in this order (From is required).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
];

/// DKIM failures.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The PEM could not be read as a key of the expected kind.
    #[error("invalid {kind} private key: {reason}")]
    Key {
        /// "RSA" or "Ed25519".
        kind: &'static str,
        /// Why (never contains key material).
        reason: String,
    },
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// Domain or selector unusable in a DKIM-Signature / DNS name.
    #[error("invalid DKIM {what}: {value:?}")]
    Name {
        /// "domain" or "selector".
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The message has no From header (RFC 6376 §5.4 requires signing it).
    #[error("message has no From header")]
    NoFrom,
    /// mail-auth refused to sign.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA with SHA-256 (`k=rsa`), 2048 bits by default.
    Rsa,
    /// Ed25519 with SHA-256 (`k=ed25519`, RFC 8463).
    Ed25519,
}

impl KeyAlgorithm {
    /// The `k=` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

fn check_label(what: &'static str, value: &str) -> Result<(), DkimError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(DkimError::Name {
            what,
            value: value.to_string(),
        })
    }
}

fn rsa_key(pem: &[u8]) -> Result<RsaKey<Sha256>, DkimError> {
    let err = |reason: String| DkimError::Key {
        kind: "RSA",
        reason,
    };
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| err(e.to_string()))?;
    RsaKey::<Sha256>::from_key_der(der).map_err(|e| err(e.to_string()))
}

fn ed25519_key(pem: &[u8]) -> Result<Ed25519Key, DkimError> {
    let err = |reason: String| DkimError::Key {
        kind: "Ed25519",
        reason,
    };
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| err(e.to_string()))?;
    Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
        .map_err(|e| err(e.to_string()))
}

/// Signs outgoing messages for one domain with an RSA key and, optionally,
/// a second Ed25519 signature. Share it behind an `Arc`.
pub struct Signer {
    domain: String,
    rsa_selector: String,
    rsa: DkimSigner<RsaKey<Sha256>, Done>,
    ed25519: Option<(String, DkimSigner<Ed25519Key, Done>)>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("rsa_selector", &self.rsa_selector)
            .field("ed25519_selector", &self.ed25519.as_ref().map(|(s, _)| s))
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl Signer {
    /// A signer for `domain` (the `d=` tag, normally the From domain) with
    /// an RSA key published at `selector._domainkey.domain`.
    pub fn new(domain: &str, selector: &str, rsa_pem: &[u8]) -> Result<Self, DkimError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        check_label("domain", &domain)?;
        check_label("selector", selector)?;
        let rsa = DkimSigner::from_key(rsa_key(rsa_pem)?)
            .domain(domain.clone())
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Self {
            domain,
            rsa_selector: selector.to_string(),
            rsa,
            ed25519: None,
        })
    }

    /// Adds an Ed25519 signature (RFC 8463) with its own selector.
    pub fn with_ed25519(mut self, selector: &str, pem: &[u8]) -> Result<Self, DkimError> {
        check_label("selector", selector)?;
        let signer = DkimSigner::from_key(ed25519_key(pem)?)
            .domain(self.domain.clone())
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        self.ed25519 = Some((selector.to_string(), signer));
        Ok(self)
    }

    /// The signing domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The `DKIM-Signature:` header fields (CRLF-terminated) for `message`,
    /// which must already have CRLF line ends.
    pub fn signature_headers(&self, message: &[u8]) -> Result<String, DkimError> {
        if !has_header(message, "from") {
            return Err(DkimError::NoFrom);
        }
        let mut out = self
            .rsa
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?
            .to_header();
        if let Some((_, ed)) = &self.ed25519 {
            out.push_str(
                &ed.sign(message)
                    .map_err(|e| DkimError::Sign(e.to_string()))?
                    .to_header(),
            );
        }
        Ok(out)
    }

    /// Returns the message with CRLF line ends and the DKIM-Signature
    /// header(s) prepended: exactly the bytes to hand to
    /// [`super::smtp::message::PreparedMessage::new`].
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let normalized = to_crlf(message);
        let headers = self.signature_headers(&normalized)?;
        let mut out = Vec::with_capacity(headers.len() + normalized.len());
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(&normalized);
        Ok(out)
    }
}

/// Whether the header section has a field named `name` (lower case).
fn has_header(message: &[u8], name: &str) -> bool {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
        {
            return true;
        }
    }
    false
}

/// Converts lone LF / CR to CRLF (borrowing when nothing changes).
fn to_crlf(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let clean = message.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && message[i - 1] == b'\r',
        b'\r' => message.get(i + 1) == Some(&b'\n'),
        _ => true,
    });
    if clean {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 40);
    let mut i = 0;
    while i < message.len() {
        match message[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// A freshly generated key pair.
pub struct GeneratedKey {
    /// The algorithm.
    pub algorithm: KeyAlgorithm,
    private_pem: String,
    /// The TXT record value (`v=DKIM1; k=…; p=…`).
    pub txt_value: String,
}

impl GeneratedKey {
    /// The private key as PKCS#8 PEM (store it encrypted, never log it).
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("algorithm", &self.algorithm)
            .field("private_pem", &"<redacted>")
            .field("txt_value", &self.txt_value)
            .finish()
    }
}

/// Generates an RSA-2048 key (aws-lc-rs, ~50–100 ms).
pub fn generate_rsa() -> Result<GeneratedKey, DkimError> {
    let kp = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|e| DkimError::Generate(e.to_string()))?;
    let private_pem = kp.serialize_pem();
    let txt_value = txt_value_for(KeyAlgorithm::Rsa, &kp);
    Ok(GeneratedKey {
        algorithm: KeyAlgorithm::Rsa,
        private_pem,
        txt_value,
    })
}

/// Generates an Ed25519 key.
pub fn generate_ed25519() -> Result<GeneratedKey, DkimError> {
    let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| DkimError::Generate(e.to_string()))?;
    let private_pem = kp.serialize_pem();
    let txt_value = txt_value_for(KeyAlgorithm::Ed25519, &kp);
    Ok(GeneratedKey {
        algorithm: KeyAlgorithm::Ed25519,
        private_pem,
        txt_value,
    })
}

fn txt_value_for(alg: KeyAlgorithm, kp: &KeyPair) -> String {
    let p = match alg {
        // SubjectPublicKeyInfo, as every verifier expects for k=rsa.
        KeyAlgorithm::Rsa => B64.encode(kp.subject_public_key_info()),
        // RFC 8463: the raw 32-byte public key.
        KeyAlgorithm::Ed25519 => B64.encode(kp.public_key_raw()),
    };
    format!("v=DKIM1; k={}; p={p}", alg.tag())
}

/// The algorithm and TXT record value (`v=DKIM1; k=rsa; p=…`) of a private
/// key given as PEM.
pub fn txt_record_value(private_pem: &[u8]) -> Result<(KeyAlgorithm, String), DkimError> {
    let pem = std::str::from_utf8(private_pem).map_err(|_| DkimError::Key {
        kind: "PEM",
        reason: "not UTF-8".into(),
    })?;
    let kp = KeyPair::from_pem(pem).map_err(|e| DkimError::Key {
        kind: "PEM",
        reason: e.to_string(),
    })?;
    let alg = if kp.algorithm() == &rcgen::PKCS_ED25519 {
        KeyAlgorithm::Ed25519
    } else if kp.algorithm() == &rcgen::PKCS_RSA_SHA256
        || kp.algorithm() == &rcgen::PKCS_RSA_SHA384
        || kp.algorithm() == &rcgen::PKCS_RSA_SHA512
    {
        KeyAlgorithm::Rsa
    } else {
        return Err(DkimError::Key {
            kind: "PEM",
            reason: "neither RSA nor Ed25519".into(),
        });
    };
    Ok((alg, txt_value_for(alg, &kp)))
}

/// `SELECTOR._domainkey.DOMAIN`.
pub fn record_name(selector: &str, domain: &str) -> String {
    format!(
        "{}._domainkey.{}",
        selector,
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// DNS record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// TXT.
    Txt,
    /// MX.
    Mx,
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Owner name, without trailing dot.
    pub name: String,
    /// Type.
    pub rtype: RecordType,
    /// MX preference.
    pub priority: Option<u16>,
    /// The value (TXT: the logical string, unsplit; MX: the host).
    pub value: String,
    /// What it is for, for the setup page.
    pub purpose: &'static str,
}

impl DnsRecord {
    /// A zone-file line. TXT values over 255 octets are split into several
    /// quoted strings (RFC 1035 character-string limit), which resolvers
    /// join back together.
    pub fn zone_line(&self) -> String {
        match self.rtype {
            RecordType::Mx => format!(
                "{}. 3600 IN MX {} {}.",
                self.name,
                self.priority.unwrap_or(10),
                self.value
            ),
            RecordType::Txt => {
                let chunks: Vec<String> = self
                    .value
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c).replace('"', "\\\"")))
                    .collect();
                format!("{}. 3600 IN TXT {}", self.name, chunks.join(" "))
            }
        }
    }
}

/// What to publish for a sending domain.
#[derive(Debug, Clone)]
pub struct DomainSetup<'a> {
    /// The From domain (`example.com`).
    pub domain: &'a str,
    /// The Return-Path (bounce) domain, a subdomain of `domain` so that SPF
    /// aligns for DMARC (`bounces.example.com`).
    pub bounce_domain: &'a str,
    /// This appliance's host name, which receives bounces (MX target).
    pub mail_host: &'a str,
    /// Addresses the appliance sends from (SPF `ip4:` / `ip6:`); when empty
    /// `a:mail_host` is used instead.
    pub sending_ips: &'a [std::net::IpAddr],
    /// Extra SPF includes (e.g. `amazonses.com` in relay mode).
    pub spf_includes: &'a [&'a str],
    /// DKIM keys: (selector, private key PEM).
    pub dkim_keys: &'a [(&'a str, &'a [u8])],
    /// DMARC aggregate report address (`rua=mailto:…`).
    pub dmarc_rua: Option<&'a str>,
    /// DMARC policy: `none` to start, then `quarantine` / `reject`.
    pub dmarc_policy: &'a str,
}

/// The SPF, DKIM, DMARC and return-path MX records for a domain.
pub fn domain_records(setup: &DomainSetup<'_>) -> Result<Vec<DnsRecord>, DkimError> {
    let domain = setup.domain.trim_end_matches('.').to_ascii_lowercase();
    let bounce = setup
        .bounce_domain
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host = setup.mail_host.trim_end_matches('.').to_ascii_lowercase();
    check_label("domain", &domain)?;
    check_label("domain", &bounce)?;
    check_label("domain", &host)?;
    let mut out = Vec::new();

    out.push(DnsRecord {
        name: bounce.clone(),
        rtype: RecordType::Mx,
        priority: Some(10),
        value: host.clone(),
        purpose: "return path: bounces and feedback come back to this appliance",
    });

    let mut spf = String::from("v=spf1");
    for ip in setup.sending_ips {
        match ip {
            std::net::IpAddr::V4(v4) => spf.push_str(&format!(" ip4:{v4}")),
            std::net::IpAddr::V6(v6) => spf.push_str(&format!(" ip6:{v6}")),
        }
    }
    if setup.sending_ips.is_empty() {
        spf.push_str(&format!(" a:{host}"));
    }
    for inc in setup.spf_includes {
        spf.push_str(&format!(" include:{inc}"));
    }
    spf.push_str(" -all");
    out.push(DnsRecord {
        name: bounce.clone(),
        rtype: RecordType::Txt,
        priority: None,
        value: spf,
        purpose: "SPF for the return-path domain (aligned with the From domain under DMARC relaxed alignment)",
    });

    for (selector, pem) in setup.dkim_keys {
        check_label("selector", selector)?;
        let (_, value) = txt_record_value(pem)?;
        out.push(DnsRecord {
            name: record_name(selector, &domain),
            rtype: RecordType::Txt,
            priority: None,
            value,
            purpose: "DKIM public key",
        });
    }

    let mut dmarc = format!("v=DMARC1; p={}", setup.dmarc_policy);
    if let Some(rua) = setup.dmarc_rua {
        dmarc.push_str(&format!("; rua=mailto:{rua}"));
    }
    dmarc.push_str("; adkim=r; aspf=r");
    out.push(DnsRecord {
        name: format!("_dmarc.{domain}"),
        rtype: RecordType::Txt,
        priority: None,
        value: dmarc,
        purpose: "DMARC policy (start with p=none, tighten once reports are clean)",
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: News <news@example.com>\r\nTo: a@example.org\r\nSubject: Hi\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello\r\n";

    #[test]
    fn generate_and_sign() {
        let rsa = generate_rsa().unwrap();
        assert!(rsa.txt_value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
        assert!(!format!("{rsa:?}").contains("PRIVATE"));
        let ed = generate_ed25519().unwrap();
        assert!(ed.txt_value.starts_with("v=DKIM1; k=ed25519; p="));
        let (alg, txt) = txt_record_value(rsa.private_pem().as_bytes()).unwrap();
        assert_eq!(alg, KeyAlgorithm::Rsa);
        assert_eq!(txt, rsa.txt_value);
        let (alg, txt) = txt_record_value(ed.private_pem().as_bytes()).unwrap();
        assert_eq!(alg, KeyAlgorithm::Ed25519);
        assert_eq!(txt, ed.txt_value);

        let signer = Signer::new("Example.com", "s1", rsa.private_pem().as_bytes())
            .unwrap()
            .with_ed25519("e1", ed.private_pem().as_bytes())
            .unwrap();
        assert!(!format!("{signer:?}").contains("PRIVATE"));
        let signed = signer.sign(MSG).unwrap();
        let text = String::from_utf8(signed).unwrap();
        assert_eq!(text.matches("DKIM-Signature:").count(), 2);
        assert!(text.contains("a=rsa-sha256"));
        assert!(text.contains("a=ed25519-sha256"));
        assert!(text.contains("c=relaxed/relaxed"));
        assert!(text.contains("d=example.com"));
        assert!(text.ends_with("\r\n\r\nHello\r\n"));
        // LF-only input is normalised before signing
        let lf = String::from_utf8(MSG.to_vec())
            .unwrap()
            .replace("\r\n", "\n");
        let signed = signer.sign(lf.as_bytes()).unwrap();
        assert!(!signed.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }

    #[test]
    fn refuses_bad_input() {
        let rsa = generate_rsa().unwrap();
        assert!(matches!(
            Signer::new("example.com", "s1", b"not a key"),
            Err(DkimError::Key { .. })
        ));
        assert!(Signer::new("exa mple.com", "s1", rsa.private_pem().as_bytes()).is_err());
        assert!(Signer::new("example.com", "s;1", rsa.private_pem().as_bytes()).is_err());
        let s = Signer::new("example.com", "s1", rsa.private_pem().as_bytes()).unwrap();
        assert!(matches!(
            s.sign(b"Subject: x\r\n\r\nbody"),
            Err(DkimError::NoFrom)
        ));
        let err = Signer::new(
            "example.com",
            "s1",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("AAAA"));
    }

    #[test]
    fn records() {
        let rsa = generate_rsa().unwrap();
        let ips = ["192.0.2.10".parse().unwrap()];
        let keys = [("s1", rsa.private_pem().as_bytes())];
        let recs = domain_records(&DomainSetup {
            domain: "example.com",
            bounce_domain: "bounces.example.com",
            mail_host: "mail.example.com",
            sending_ips: &ips,
            spf_includes: &[],
            dkim_keys: &keys,
            dmarc_rua: Some("dmarc@example.com"),
            dmarc_policy: "none",
        })
        .unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[0].zone_line(),
            "bounces.example.com. 3600 IN MX 10 mail.example.com."
        );
        assert_eq!(recs[1].value, "v=spf1 ip4:192.0.2.10 -all");
        assert_eq!(recs[2].name, "s1._domainkey.example.com");
        assert_eq!(recs[2].value, rsa.txt_value);
        let line = recs[2].zone_line();
        assert!(line.contains("\" \""), "long TXT is split: {line}");
        assert_eq!(
            recs[3].value,
            "v=DMARC1; p=none; rua=mailto:dmarc@example.com; adkim=r; aspf=r"
        );
    }
}
