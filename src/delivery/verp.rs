//! VERP return paths: `bounces+<token>@<bounce-domain>`.
//!
//! The token is lower-case base32 (RFC 4648 alphabet, no padding) of
//! `varint(message id) ‖ varint(recipient index) ‖ HMAC-SHA256(key, …)[..10]`.
//! Base32 survives MTAs that change the case of local parts; the 80-bit MAC
//! makes forged bounces (backscatter, unsubscribe-by-bounce attacks) fail.
//! A typical token is 26–30 characters, so the local part stays far below
//! 64 octets.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const MAC_LEN: usize = 10;
const DOMAIN_SEPARATION: &[u8] = b"mailstead-verp-v1\0";
const PREFIX: &str = "bounces+";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// VERP failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerpError {
    /// Key shorter than 16 bytes.
    #[error("VERP key must be at least 16 bytes")]
    ShortKey,
    /// The bounce domain is not a host name.
    #[error("invalid bounce domain {0:?}")]
    Domain(String),
    /// Not `bounces+…` or not base32, or truncated.
    #[error("not a VERP address")]
    Malformed,
    /// Addressed to another domain.
    #[error("VERP address for another domain")]
    WrongDomain,
    /// The MAC does not verify: forged or from another key.
    #[error("VERP token does not verify")]
    BadMac,
}

/// Encoder / decoder of VERP addresses for one bounce domain.
#[derive(Clone)]
pub struct Verp {
    key: Vec<u8>,
    bounce_domain: String,
}

impl fmt::Debug for Verp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verp")
            .field("bounce_domain", &self.bounce_domain)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Verp {
    /// `key`: secret of at least 16 bytes (32 random bytes recommended).
    pub fn new(key: &[u8], bounce_domain: &str) -> Result<Self, VerpError> {
        if key.len() < 16 {
            return Err(VerpError::ShortKey);
        }
        let d = bounce_domain.trim_end_matches('.').to_ascii_lowercase();
        let valid = !d.is_empty()
            && d.len() <= 190
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(VerpError::Domain(bounce_domain.to_string()));
        }
        Ok(Self {
            key: key.to_vec(),
            bounce_domain: d,
        })
    }

    /// The bounce domain.
    pub fn bounce_domain(&self) -> &str {
        &self.bounce_domain
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(DOMAIN_SEPARATION);
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The token for a message and recipient index.
    pub fn token(&self, message_id: u64, recipient_index: u32) -> String {
        let mut raw = Vec::with_capacity(16 + MAC_LEN);
        put_varint(&mut raw, message_id);
        put_varint(&mut raw, u64::from(recipient_index));
        let mac = self.mac(&raw);
        raw.extend_from_slice(&mac);
        base32_encode(&raw)
    }

    /// `bounces+<token>@<bounce-domain>`.
    pub fn return_path(&self, message_id: u64, recipient_index: u32) -> String {
        format!(
            "{PREFIX}{}@{}",
            self.token(message_id, recipient_index),
            self.bounce_domain
        )
    }

    /// Decodes a VERP address (or its local part) back to (message id,
    /// recipient index), verifying the MAC in constant time.
    pub fn decode(&self, address: &str) -> Result<(u64, u32), VerpError> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let local = match address.rsplit_once('@') {
            Some((local, domain)) => {
                if !domain
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(&self.bounce_domain)
                {
                    return Err(VerpError::WrongDomain);
                }
                local
            }
            None => address,
        };
        if local.len() <= PREFIX.len() || !local[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return Err(VerpError::Malformed);
        }
        self.decode_token(&local[PREFIX.len()..])
    }

    /// Decodes a bare token (as made by [`Verp::token`]), verifying its MAC in constant time.
    pub fn decode_token(&self, token: &str) -> Result<(u64, u32), VerpError> {
        let raw = base32_decode(token).ok_or(VerpError::Malformed)?;
        if raw.len() <= MAC_LEN {
            return Err(VerpError::Malformed);
        }
        let (payload, mac) = raw.split_at(raw.len() - MAC_LEN);
        let expected = self.mac(payload);
        if !bool::from(expected.ct_eq(mac)) {
            return Err(VerpError::BadMac);
        }
        let mut pos = 0;
        let message_id = get_varint(payload, &mut pos).ok_or(VerpError::Malformed)?;
        let index = get_varint(payload, &mut pos).ok_or(VerpError::Malformed)?;
        if pos != payload.len() {
            return Err(VerpError::Malformed);
        }
        let index = u32::try_from(index).map_err(|_| VerpError::Malformed)?;
        Ok((message_id, index))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        let part = u64::from(b & 0x7f);
        if shift == 63 && part > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            // Reject non-minimal encodings so each value has one token.
            if b == 0 && shift > 0 {
                return None;
            }
            return Some(v);
        }
    }
    None
}

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'a'..=b'z' => c - b'a',
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be zero padding of fewer than 5 bits.
    if bits >= 5 || (buffer & ((1 << bits) - 1)) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verp() -> Verp {
        Verp::new(b"0123456789abcdef0123456789abcdef", "Bounces.Example.com.").unwrap()
    }

    #[test]
    fn round_trip() {
        let v = verp();
        for (id, idx) in [
            (0u64, 0u32),
            (1, 2),
            (123_456_789, 77),
            (u64::MAX, u32::MAX),
        ] {
            let addr = v.return_path(id, idx);
            assert!(addr.starts_with("bounces+"));
            assert!(addr.ends_with("@bounces.example.com"));
            let local = addr.split('@').next().unwrap();
            assert!(local.len() <= 64, "{local}");
            assert_eq!(v.decode(&addr), Ok((id, idx)));
            assert_eq!(v.decode(&addr.to_uppercase()), Ok((id, idx)));
            assert_eq!(v.decode(&format!("<{addr}>")), Ok((id, idx)));
            assert_eq!(v.decode(local), Ok((id, idx)));
        }
    }

    #[test]
    fn rejects_forgeries() {
        let v = verp();
        let addr = v.return_path(42, 1);
        let other = Verp::new(b"another key, 16+ bytes long", "bounces.example.com").unwrap();
        assert_eq!(other.decode(&addr), Err(VerpError::BadMac));
        // flip one character of the token
        let mut chars: Vec<char> = addr.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let tampered: String = chars.into_iter().collect();
        assert!(matches!(
            v.decode(&tampered),
            Err(VerpError::BadMac | VerpError::Malformed)
        ));
        assert_eq!(
            v.decode("bounces+abc@elsewhere.org"),
            Err(VerpError::WrongDomain)
        );
        assert_eq!(
            v.decode("postmaster@bounces.example.com"),
            Err(VerpError::Malformed)
        );
        assert_eq!(
            v.decode("bounces+@bounces.example.com"),
            Err(VerpError::Malformed)
        );
        assert_eq!(
            v.decode("bounces+!!!@bounces.example.com"),
            Err(VerpError::Malformed)
        );
        assert_eq!(
            v.decode("bounces+aa@bounces.example.com"),
            Err(VerpError::Malformed)
        );
        assert_eq!(
            Verp::new(b"short", "x.com").unwrap_err(),
            VerpError::ShortKey
        );
        assert!(Verp::new(b"0123456789abcdef", "bad domain").is_err());
        assert!(!format!("{v:?}").contains("0123"));
    }

    #[test]
    fn base32_vectors() {
        // RFC 4648 test vectors, lower case, no padding.
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), expected);
            assert_eq!(base32_decode(expected).unwrap(), input.as_bytes());
        }
        assert!(base32_decode("mzxw6yr").is_none()); // non-zero padding bits
    }
}
