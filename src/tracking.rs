//! Opens, clicks and the web copy of campaign mail. Every URL names an outbound message and
//! recipient under a MAC (see `links`); a click redirects only to the URL that was signed
//! for that recipient, so there is no open redirect. Opens by Apple Mail Privacy Protection
//! and clients that prefetch, and clicks by link scanners, are recorded as machine events;
//! opens through the Gmail and Yahoo image proxies are people's opens, marked as proxied.

use crate::campaigns::Campaigns;
use crate::campaigns::runner::{campaign_vars, personalise};
use crate::links::{CampaignLinks, LinkKind, Links};
use crate::model::{DeliveryState, Id, TrackEvent, now};
use crate::store::{Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("this link is not valid (it may have been copied incompletely)")]
    BadLink,
    #[error("this message is no longer available")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Campaign(#[from] crate::campaigns::CampaignError),
}

/// What the request told us about who fetched a tracking URL.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
    /// A HEAD request (link checkers look before they leap).
    pub head: bool,
}

/// Apple's 17.0.0.0/8, from which Mail Privacy Protection fetches.
fn apple_network(ip: Option<IpAddr>) -> bool {
    matches!(ip, Some(IpAddr::V4(v4)) if v4.octets()[0] == 17)
}

/// (machine, proxy) for an open.
pub fn classify_open(c: &Client) -> (Option<&'static str>, Option<&'static str>) {
    let ua = c.user_agent.as_deref().unwrap_or("").trim();
    if ua.contains("GoogleImageProxy") {
        return (None, Some("gmail_proxy"));
    }
    if ua.contains("YahooMailProxy") {
        return (None, Some("yahoo_proxy"));
    }
    if apple_network(c.ip) || ua == "Mozilla/5.0" {
        return (Some("apple_mpp"), None);
    }
    if ua.is_empty() || c.head {
        return (Some("prefetch"), None);
    }
    (None, None)
}

const SCANNERS: &[&str] = &[
    "barracuda",
    "proofpoint",
    "mimecast",
    "symantec",
    "trendmicro",
    "trend micro",
    "fireeye",
    "cisco",
    "sophos",
    "forcepoint",
    "bingpreview",
    "safelinks",
    "bot",
    "spider",
    "crawler",
    "scanner",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "headlesschrome",
    "facebookexternalhit",
    "slackbot",
    "skypeuripreview",
];

/// Whether a click is a link scanner's: a HEAD request, a known scanner's user agent, no
/// user agent, or a click within seconds of delivery (before a person could have read it).
pub fn classify_click(c: &Client, secs_since_delivery: Option<i64>) -> Option<&'static str> {
    let ua = c
        .user_agent
        .as_deref()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if c.head || ua.is_empty() || SCANNERS.iter().any(|s| ua.contains(s)) {
        return Some("scanner");
    }
    if secs_since_delivery.is_some_and(|s| (0..3).contains(&s)) {
        return Some("scanner");
    }
    None
}

pub struct Tracking {
    store: Arc<Store>,
    links: Links,
    campaigns: Arc<Campaigns>,
}

impl Tracking {
    pub fn new(store: Arc<Store>, links: Links, campaigns: Arc<Campaigns>) -> Tracking {
        Tracking {
            store,
            links,
            campaigns,
        }
    }

    fn campaign_of(&self, message: Id) -> Result<Option<Id>, TrackError> {
        Ok(self.store.message_campaign(message)?.map(|(c, _, _)| c))
    }

    /// Records an open (the pixel is served whatever happens).
    pub fn open(&self, token: &str, client: &Client) -> Result<(), TrackError> {
        let token = token.strip_suffix(".gif").unwrap_or(token);
        let (message, _) = self
            .links
            .decode(LinkKind::Open, token)
            .ok_or(TrackError::BadLink)?;
        let Some(campaign_id) = self.campaign_of(message)? else {
            return Err(TrackError::Gone);
        };
        let (machine, proxy) = classify_open(client);
        self.store.record_track_event(&TrackEvent {
            campaign_id,
            message,
            kind: "open".into(),
            url: None,
            machine: machine.map(str::to_string),
            proxy: proxy.map(str::to_string),
            at: now(),
        })?;
        Ok(())
    }

    /// Records a click and answers where to redirect. Only a URL signed for this token is
    /// ever returned.
    pub fn click(
        &self,
        token: &str,
        mac: &str,
        url: &str,
        client: &Client,
    ) -> Result<String, TrackError> {
        let (message, index) = self
            .links
            .decode_click(token, mac, url)
            .ok_or(TrackError::BadLink)?;
        if let Some(campaign_id) = self.campaign_of(message)? {
            let delivered_at = self.store.delivery(message, index)?.and_then(|d| {
                d.events
                    .iter()
                    .find(|e| e.state == DeliveryState::Sent)
                    .map(|e| e.at)
            });
            let since = delivered_at.map(|t| (now() - t).whole_seconds());
            let machine = classify_click(client, since);
            self.store.record_track_event(&TrackEvent {
                campaign_id,
                message,
                kind: "click".into(),
                url: Some(url.to_string()),
                machine: machine.map(str::to_string),
                proxy: None,
                at: now(),
            })?;
        }
        Ok(url.to_string())
    }

    /// The web copy of a campaign message, rendered again for its recipient (without the
    /// open pixel: reading it on the web is not an email open).
    pub fn view(&self, token: &str) -> Result<String, TrackError> {
        let (message, _) = self
            .links
            .decode(LinkKind::View, token)
            .ok_or(TrackError::BadLink)?;
        let (campaign_id, contact_id, variant) = self
            .store
            .message_campaign(message)?
            .ok_or(TrackError::Gone)?;
        let mut c = self.store.campaign(campaign_id)?.ok_or(TrackError::Gone)?;
        let contact = self.store.contact(contact_id)?.ok_or(TrackError::Gone)?;
        if let Some(ab) = &c.ab_test
            && let Some(s) = ab.subjects.get(usize::from(variant))
        {
            c.subject = s.clone();
        }
        let compiled = self.campaigns.check_sendable(&c)?;
        let links = CampaignLinks {
            links: self.links.clone(),
            track_clicks: c.track_clicks && self.campaigns.tracking_enabled(),
        };
        let r = personalise(
            &c,
            &compiled,
            &crate::campaigns::runner::Addressee::from(&contact),
            message,
            &links,
            &campaign_vars(&c),
            false,
        )?;
        Ok(r.html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ua: &str, ip: &str) -> Client {
        Client {
            user_agent: (!ua.is_empty()).then(|| ua.to_string()),
            ip: ip.parse().ok(),
            head: false,
        }
    }

    #[test]
    fn opens_are_told_apart() {
        let browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";
        assert_eq!(classify_open(&client(browser, "203.0.113.9")), (None, None));
        assert_eq!(
            classify_open(&client(browser, "17.58.101.3")).0,
            Some("apple_mpp")
        );
        assert_eq!(
            classify_open(&client("Mozilla/5.0", "198.51.100.1")).0,
            Some("apple_mpp")
        );
        assert_eq!(
            classify_open(&client(
                "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
                "66.249.84.1"
            )),
            (None, Some("gmail_proxy"))
        );
        assert_eq!(
            classify_open(&client("", "203.0.113.9")).0,
            Some("prefetch")
        );
    }

    #[test]
    fn scanners_are_told_apart() {
        let browser = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0";
        assert_eq!(
            classify_click(&client(browser, "203.0.113.9"), Some(3600)),
            None
        );
        assert_eq!(
            classify_click(&client(browser, "203.0.113.9"), Some(1)),
            Some("scanner"),
            "a click one second after delivery"
        );
        assert_eq!(
            classify_click(
                &client("Mozilla/5.0 (compatible; BingPreview/1.0b)", "1.2.3.4"),
                None
            ),
            Some("scanner")
        );
        let mut head = client(browser, "203.0.113.9");
        head.head = true;
        assert_eq!(classify_click(&head, None), Some("scanner"));
        assert_eq!(
            classify_click(&client("", "1.2.3.4"), None),
            Some("scanner")
        );
    }
}
