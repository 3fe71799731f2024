//! Signed links in outgoing mail: one-click unsubscribe (https for RFC 8058 and a mailto
//! address on the bounce domain) and the preference centre. A token names the outbound
//! message and recipient index and carries a MAC under a key derived per link kind, so an
//! unsubscribe token is neither a return path nor a preferences token, and none can be forged
//! or pointed at another recipient.

use crate::delivery::{Verp, VerpError};
use crate::model::Id;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Unsubscribe,
    Preferences,
}

/// Local part prefix of the mailto unsubscribe address.
const MAILTO_PREFIX: &str = "unsubscribe+";

#[derive(Debug, Clone)]
pub struct Links {
    unsubscribe: Verp,
    preferences: Verp,
    base_url: String,
    bounce_domain: String,
}

fn derive(secret: &[u8], label: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"mailstead-links-v1\0");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Links {
    /// The appliance's links: keyed by the store's `links` secret, on `public_url`, with the
    /// mailto address on the bounce domain.
    pub fn for_appliance(
        store: &crate::store::Store,
        settings: &crate::config::Settings,
    ) -> Result<Links, String> {
        let secret = store.secret("links").map_err(|e| e.to_string())?;
        Links::new(
            &secret,
            &settings.public_url,
            &settings.delivery.bounce_domain,
        )
        .map_err(|e| format!("links: {e}"))
    }

    pub fn new(secret: &[u8], public_url: &str, bounce_domain: &str) -> Result<Links, VerpError> {
        Ok(Links {
            unsubscribe: Verp::new(&derive(secret, "unsubscribe"), bounce_domain)?,
            preferences: Verp::new(&derive(secret, "preferences"), bounce_domain)?,
            base_url: public_url.trim_end_matches('/').to_string(),
            bounce_domain: bounce_domain.to_ascii_lowercase(),
        })
    }

    fn codec(&self, kind: LinkKind) -> &Verp {
        match kind {
            LinkKind::Unsubscribe => &self.unsubscribe,
            LinkKind::Preferences => &self.preferences,
        }
    }

    pub fn token(&self, kind: LinkKind, message: Id, index: u32) -> String {
        self.codec(kind).token(message, index)
    }

    /// The (message, recipient index) a token names, if it is genuine.
    pub fn decode(&self, kind: LinkKind, token: &str) -> Option<(Id, u32)> {
        if token.len() > 64 {
            return None;
        }
        self.codec(kind).decode_token(token).ok()
    }

    pub fn unsubscribe_url(&self, message: Id, index: u32) -> String {
        format!(
            "{}/u/{}",
            self.base_url,
            self.token(LinkKind::Unsubscribe, message, index)
        )
    }

    pub fn preferences_url(&self, message: Id, index: u32) -> String {
        format!(
            "{}/p/{}",
            self.base_url,
            self.token(LinkKind::Preferences, message, index)
        )
    }

    /// `unsubscribe+<token>@<bounce domain>` (the listener takes mail for it).
    pub fn unsubscribe_address(&self, message: Id, index: u32) -> String {
        format!(
            "{MAILTO_PREFIX}{}@{}",
            self.token(LinkKind::Unsubscribe, message, index),
            self.bounce_domain
        )
    }

    /// The (message, index) of a mailto unsubscribe address, if it is one of ours.
    pub fn decode_unsubscribe_address(&self, address: &str) -> Option<(Id, u32)> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.bounce_domain)
            || local.len() <= MAILTO_PREFIX.len()
            || !local[..MAILTO_PREFIX.len()].eq_ignore_ascii_case(MAILTO_PREFIX)
        {
            return None;
        }
        self.decode(LinkKind::Unsubscribe, &local[MAILTO_PREFIX.len()..])
    }

    /// The RFC 2369 / RFC 8058 headers for one recipient of a bulk message.
    pub fn list_unsubscribe_headers(&self, message: Id, index: u32) -> Vec<(String, String)> {
        vec![
            (
                "List-Unsubscribe".into(),
                format!(
                    "<{}>,\r\n <mailto:{}?subject=unsubscribe>",
                    self.unsubscribe_url(message, index),
                    self.unsubscribe_address(message, index)
                ),
            ),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new(
            &[7u8; 32],
            "https://mail.example.com/",
            "bounces.example.com",
        )
        .unwrap()
    }

    #[test]
    fn tokens_round_trip_per_kind_only() {
        let l = links();
        let t = l.token(LinkKind::Unsubscribe, 42, 3);
        assert_eq!(l.decode(LinkKind::Unsubscribe, &t), Some((42, 3)));
        assert_eq!(
            l.decode(LinkKind::Preferences, &t),
            None,
            "kinds do not mix"
        );
        let mut forged = t.clone().into_bytes();
        forged[2] = if forged[2] == b'a' { b'b' } else { b'a' };
        assert_eq!(
            l.decode(LinkKind::Unsubscribe, &String::from_utf8(forged).unwrap()),
            None
        );
        let other = Links::new(&[8u8; 32], "https://x", "bounces.example.com").unwrap();
        assert_eq!(other.decode(LinkKind::Unsubscribe, &t), None, "other key");
        assert!(
            l.unsubscribe_url(42, 3)
                .starts_with("https://mail.example.com/u/")
        );
        let addr = l.unsubscribe_address(42, 3);
        assert!(addr.len() - "@bounces.example.com".len() <= 64, "{addr}");
        assert_eq!(l.decode_unsubscribe_address(&addr), Some((42, 3)));
        assert_eq!(
            l.decode_unsubscribe_address(&addr.replace("bounces.example.com", "x.com")),
            None
        );
        let h = l.list_unsubscribe_headers(42, 3);
        assert!(h[0].1.starts_with("<https://") && h[0].1.contains("<mailto:unsubscribe+"));
        assert_eq!(h[1].1, "List-Unsubscribe=One-Click");
    }
}
