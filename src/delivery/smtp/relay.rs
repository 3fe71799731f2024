//! Relay (smarthost) mode: `MAILSTEAD_RELAY=smtp://user:pass@host:port`.
//!
//! Instead of looking up MX records, every message goes to one submission
//! server that authenticates us with AUTH PLAIN or LOGIN.
//!
//! * `smtp://` — port 587 by default, STARTTLS **required and verified**
//!   (credentials never cross the network in clear text).
//! * `smtps://` — port 465 by default, implicit TLS (RFC 8314), verified.
//! * `?tls=opportunistic` or `?tls=none` after the URL relaxes this for a relay
//!   on a trusted network (e.g. a local Postfix on `127.0.0.1:25`); AUTH over
//!   plain text is then allowed only with `tls=none`.
//! * User name and password are percent-decoded (`%40` for `@`, `%3A` for `:`).
//!
//! Presets of the common providers (replace the upper-case parts):
//!
//! | provider | URL |
//! | --- | --- |
//! | Amazon SES | `smtp://SMTP_USERNAME:SMTP_PASSWORD@email-smtp.REGION.amazonaws.com:587` (SMTP credentials from the SES console, not the IAM keys; `smtps://…:465` also works) |
//! | SendGrid | `smtp://apikey:API_KEY@smtp.sendgrid.net:587` (the user name is literally `apikey`) |
//! | Mailgun | `smtp://postmaster%40YOUR_DOMAIN:SMTP_PASSWORD@smtp.mailgun.org:587` (`smtp.eu.mailgun.org` for EU domains) |
//! | Postmark | `smtp://SERVER_API_TOKEN:SERVER_API_TOKEN@smtp.postmarkapp.com:587` (token as both user and password; add the `X-PM-Message-Stream` header for broadcast streams) |

use std::fmt;

use super::tls::TlsPolicy;

/// AUTH credentials. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    password: String,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password (only for the AUTH exchange).
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A parsed relay URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Host name or IP address (brackets removed from IPv6 literals).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS from the first byte (`smtps://`).
    pub implicit_tls: bool,
    /// STARTTLS policy (for `smtp://`).
    pub tls: TlsPolicy,
    /// AUTH credentials, if the URL had a user.
    pub credentials: Option<Credentials>,
}

/// Why a relay URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayUrlError {
    /// Not `smtp://` or `smtps://`.
    #[error("relay URL must start with smtp:// or smtps://")]
    Scheme,
    /// No host.
    #[error("relay URL has no host")]
    MissingHost,
    /// Port not a number in 1..=65535.
    #[error("relay URL has an invalid port")]
    Port,
    /// Bad percent-encoding or control characters in the user or password.
    #[error("relay URL has invalid user or password encoding")]
    Userinfo,
    /// Unknown or contradictory query parameter.
    #[error("relay URL has an unsupported option {0:?}")]
    Option(String),
}

impl RelayConfig {
    /// Parses `smtp[s]://[user[:password]@]host[:port][/][?tls=required|opportunistic|none]`.
    pub fn parse(url: &str) -> Result<Self, RelayUrlError> {
        let url = url.trim();
        let (implicit_tls, rest) = if let Some(r) = strip_prefix_ci(url, "smtps://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "smtp://") {
            (false, r)
        } else {
            return Err(RelayUrlError::Scheme);
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The password may contain '@' when not encoded: split on the last one.
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let credentials = match userinfo {
            Some(ui) => {
                let (user, pass) = ui.split_once(':').unwrap_or((ui, ""));
                let user = percent_decode(user)?;
                let pass = percent_decode(pass)?;
                if user.is_empty() {
                    None
                } else {
                    Some(Credentials::new(user, pass))
                }
            }
            None => None,
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() || host.chars().any(|c| c.is_control() || c == '/' || c == ' ') {
            return Err(RelayUrlError::MissingHost);
        }
        let port = match port {
            Some(p) => p,
            None if implicit_tls => 465,
            None => 587,
        };
        let mut tls = TlsPolicy::RequireVerified;
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                match pair.to_ascii_lowercase().as_str() {
                    "tls=required" | "tls=require-verified" => tls = TlsPolicy::RequireVerified,
                    "tls=opportunistic" if !implicit_tls => tls = TlsPolicy::Opportunistic,
                    "tls=none" if !implicit_tls => tls = TlsPolicy::Disabled,
                    _ => return Err(RelayUrlError::Option(pair.to_string())),
                }
            }
        }
        Ok(Self {
            host,
            port,
            implicit_tls,
            tls: if implicit_tls {
                TlsPolicy::RequireVerified
            } else {
                tls
            },
            credentials,
        })
    }

    /// Whether AUTH may be sent over an unencrypted connection.
    pub fn allow_plaintext_auth(&self) -> bool {
        self.tls == TlsPolicy::Disabled
    }
}

impl fmt::Display for RelayConfig {
    /// The URL with the password hidden, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        write!(f, "{scheme}://")?;
        if let Some(c) = &self.credentials {
            write!(f, "{}:***@", c.username)?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), RelayUrlError> {
    let parse_port = |p: &str| -> Result<u16, RelayUrlError> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(RelayUrlError::Port),
        }
    };
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(RelayUrlError::MissingHost)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(RelayUrlError::Port),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), Some(parse_port(p)?))),
        None => Ok((s.to_string(), None)),
    }
}

fn percent_decode(s: &str) -> Result<String, RelayUrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(RelayUrlError::Userinfo)?;
            let hex = std::str::from_utf8(hex).map_err(|_| RelayUrlError::Userinfo)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| RelayUrlError::Userinfo)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| RelayUrlError::Userinfo)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err(RelayUrlError::Userinfo);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets() {
        let r = RelayConfig::parse("smtp://apikey:SG.abc%2Bdef@smtp.sendgrid.net:587").unwrap();
        assert_eq!(r.host, "smtp.sendgrid.net");
        assert_eq!(r.port, 587);
        assert!(!r.implicit_tls);
        assert_eq!(r.tls, TlsPolicy::RequireVerified);
        let c = r.credentials.clone().unwrap();
        assert_eq!(c.username, "apikey");
        assert_eq!(c.password(), "SG.abc+def");
        assert!(!format!("{r:?}").contains("SG.abc"));
        assert_eq!(r.to_string(), "smtp://apikey:***@smtp.sendgrid.net:587");

        let r =
            RelayConfig::parse("smtp://postmaster%40mg.example.com:pw@smtp.mailgun.org").unwrap();
        assert_eq!(r.credentials.unwrap().username, "postmaster@mg.example.com");
        assert_eq!(r.port, 587);

        let r = RelayConfig::parse("smtps://u:p@email-smtp.eu-west-1.amazonaws.com").unwrap();
        assert!(r.implicit_tls);
        assert_eq!(r.port, 465);
    }

    #[test]
    fn options_and_ipv6() {
        let r = RelayConfig::parse("smtp://[::1]:2525?tls=none").unwrap();
        assert_eq!(r.host, "::1");
        assert_eq!(r.port, 2525);
        assert_eq!(r.tls, TlsPolicy::Disabled);
        assert!(r.credentials.is_none());
        assert!(r.allow_plaintext_auth());
        let r = RelayConfig::parse("SMTP://relay.local:25/?tls=opportunistic").unwrap();
        assert_eq!(r.tls, TlsPolicy::Opportunistic);
        // unencoded '@' in the password
        let r = RelayConfig::parse("smtp://user:p@ss@host:25").unwrap();
        assert_eq!(r.credentials.unwrap().password(), "p@ss");
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(RelayConfig::parse("http://x"), Err(RelayUrlError::Scheme));
        assert_eq!(
            RelayConfig::parse("smtp://"),
            Err(RelayUrlError::MissingHost)
        );
        assert_eq!(RelayConfig::parse("smtp://h:0"), Err(RelayUrlError::Port));
        assert_eq!(
            RelayConfig::parse("smtp://h:99999"),
            Err(RelayUrlError::Port)
        );
        assert_eq!(
            RelayConfig::parse("smtp://u%zz:p@h"),
            Err(RelayUrlError::Userinfo)
        );
        assert_eq!(
            RelayConfig::parse("smtp://u%0d:p@h"),
            Err(RelayUrlError::Userinfo)
        );
        assert!(matches!(
            RelayConfig::parse("smtps://h?tls=none"),
            Err(RelayUrlError::Option(_))
        ));
    }
}
