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
    /// The open-tracking pixel.
    Open,
    /// Click redirects (the URL itself carries a MAC of its own, see [`Links::click_url`]).
    Click,
    /// The web copy of a message.
    View,
}

/// Local part prefix of the mailto unsubscribe address.
const MAILTO_PREFIX: &str = "unsubscribe+";

#[derive(Debug, Clone)]
pub struct Links {
    unsubscribe: Verp,
    preferences: Verp,
    open: Verp,
    click: Verp,
    view: Verp,
    /// Key of the MAC over (click token, target URL).
    url_key: Vec<u8>,
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
            open: Verp::new(&derive(secret, "open"), bounce_domain)?,
            click: Verp::new(&derive(secret, "click"), bounce_domain)?,
            view: Verp::new(&derive(secret, "view"), bounce_domain)?,
            url_key: derive(secret, "click-url"),
            base_url: public_url.trim_end_matches('/').to_string(),
            bounce_domain: bounce_domain.to_ascii_lowercase(),
        })
    }

    fn codec(&self, kind: LinkKind) -> &Verp {
        match kind {
            LinkKind::Unsubscribe => &self.unsubscribe,
            LinkKind::Preferences => &self.preferences,
            LinkKind::Open => &self.open,
            LinkKind::Click => &self.click,
            LinkKind::View => &self.view,
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

    /// The 1×1 open-tracking image.
    pub fn open_url(&self, message: Id, index: u32) -> String {
        format!(
            "{}/o/{}.gif",
            self.base_url,
            self.token(LinkKind::Open, message, index)
        )
    }

    /// The web copy of a message.
    pub fn view_url(&self, message: Id, index: u32) -> String {
        format!(
            "{}/v/{}",
            self.base_url,
            self.token(LinkKind::View, message, index)
        )
    }

    fn url_mac(&self, token: &str, url: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.url_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(token.as_bytes());
        mac.update(b"\0");
        mac.update(url.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A click-tracking redirect to `url`: `/c/<token>/<mac of token and url>?u=<url>`. Only
    /// a URL that was signed for this recipient redirects, so there is no open redirect.
    pub fn click_url(&self, message: Id, index: u32, url: &str) -> String {
        let token = self.token(LinkKind::Click, message, index);
        let mac = self.url_mac(&token, url);
        format!(
            "{}/c/{token}/{mac}?u={}",
            self.base_url,
            crate::templates::pct(url)
        )
    }

    /// The (message, index) of a click link, if both the token and the URL's MAC are ours.
    pub fn decode_click(&self, token: &str, mac: &str, url: &str) -> Option<(Id, u32)> {
        use subtle::ConstantTimeEq;
        let who = self.decode(LinkKind::Click, token)?;
        let expected = self.url_mac(token, url);
        if mac.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            Some(who)
        } else {
            None
        }
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

/// Signed per-recipient links for campaign mail. A target without a queued message (a
/// preview) gets the public URL's pages without a token.
#[derive(Debug, Clone)]
pub struct CampaignLinks {
    pub links: Links,
    pub track_clicks: bool,
}

impl crate::templates::LinkBuilder for CampaignLinks {
    fn unsubscribe(&self, to: &crate::templates::LinkTarget) -> String {
        match to.message {
            Some((m, i)) => self.links.unsubscribe_url(m, i),
            None => format!("{}/u/preview", self.links.base_url),
        }
    }
    fn preferences(&self, to: &crate::templates::LinkTarget) -> String {
        match to.message {
            Some((m, i)) => self.links.preferences_url(m, i),
            None => format!("{}/p/preview", self.links.base_url),
        }
    }
    fn view_in_browser(&self, to: &crate::templates::LinkTarget) -> String {
        match to.message {
            Some((m, i)) => self.links.view_url(m, i),
            None => format!("{}/v/preview", self.links.base_url),
        }
    }
    fn tracked(&self, to: &crate::templates::LinkTarget, url: &str) -> String {
        match to.message {
            Some((m, i)) if self.track_clicks => self.links.click_url(m, i, url),
            _ => url.to_string(),
        }
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

    #[test]
    fn click_links_only_redirect_to_the_signed_url() {
        let l = links();
        let url = "https://training.example.com/course?a=1&b=2";
        let link = l.click_url(9, 0, url);
        let rest = link.strip_prefix("https://mail.example.com/c/").unwrap();
        let (token, rest) = rest.split_once('/').unwrap();
        let (mac, _) = rest.split_once('?').unwrap();
        assert_eq!(l.decode_click(token, mac, url), Some((9, 0)));
        assert_eq!(l.decode_click(token, mac, "https://evil.example/"), None);
        assert_eq!(l.decode_click(token, &mac[1..], url), None);
        let open = l.token(LinkKind::Open, 9, 0);
        assert_eq!(
            l.decode_click(&open, mac, url),
            None,
            "an open token is no click token"
        );
        assert!(l.open_url(9, 0).ends_with(".gif"));
        assert!(l.view_url(9, 0).contains("/v/"));
    }
}
