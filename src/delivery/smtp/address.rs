//! Envelope address checks done before anything is written to a server.
//!
//! The goal is safety (no command injection, no over-long paths) and being
//! liberal enough for real-world addresses: a local part that is not a valid
//! RFC 5321 Dot-string (`abc.@docomo.ne.jp`) is sent as a quoted string.

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest address usable in a path (RFC 5321 §4.5.3.1.3 minus the brackets,
/// as errata 1690).
pub const MAX_ADDRESS: usize = 254;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing given.
    #[error("address is empty")]
    Empty,
    /// CR, LF, NUL, TAB or another control character (header or command injection).
    #[error("address contains a control character")]
    ControlCharacter,
    /// A character that may not appear in an unquoted address.
    #[error("address contains the character {0:?}, not allowed here")]
    ForbiddenCharacter(char),
    /// No `@domain` part.
    #[error("address has no @domain")]
    MissingDomain,
    /// Local part empty or an unterminated quoted string.
    #[error("local part is empty or malformed")]
    InvalidLocalPart,
    /// Local part over 64 octets.
    #[error("local part is longer than {MAX_LOCAL_PART} octets")]
    LocalPartTooLong,
    /// Address over 254 octets.
    #[error("address is longer than {MAX_ADDRESS} octets")]
    TooLong,
    /// The domain is not a host name or an address literal.
    #[error("domain is not a valid host name")]
    InvalidDomain,
}

/// A checked address, ready to be written in a MAIL FROM or RCPT TO path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAddress {
    /// The path contents (without `<>`), local part quoted if needed.
    pub path: String,
    /// The domain, lower-cased.
    pub domain: String,
    /// Non-ASCII characters: needs the SMTPUTF8 extension.
    pub needs_smtputf8: bool,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Checks an address for use as a forward path (RCPT TO).
pub fn check(address: &str) -> Result<CheckedAddress, AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if address.chars().any(|c| c.is_control()) {
        return Err(AddressError::ControlCharacter);
    }
    if address.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong);
    }
    let at = address.rfind('@').ok_or(AddressError::MissingDomain)?;
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if local.is_empty() {
        return Err(AddressError::InvalidLocalPart);
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    let path_local = check_local(local)?;
    check_domain(domain)?;
    let path = format!("{path_local}@{domain}");
    if path.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong);
    }
    Ok(CheckedAddress {
        needs_smtputf8: !address.is_ascii(),
        domain: domain.to_lowercase(),
        path,
    })
}

/// Checks a reverse path (MAIL FROM): empty means the null sender `<>`.
pub fn check_reverse_path(address: &str) -> Result<CheckedAddress, AddressError> {
    if address.is_empty() {
        return Ok(CheckedAddress {
            path: String::new(),
            domain: String::new(),
            needs_smtputf8: false,
        });
    }
    check(address)
}

fn check_local(local: &str) -> Result<String, AddressError> {
    if let Some(inner) = local.strip_prefix('"') {
        // Quoted string: qtextSMTP or backslash pairs, closing quote last.
        let inner = inner
            .strip_suffix('"')
            .ok_or(AddressError::InvalidLocalPart)?;
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let next = chars.next().ok_or(AddressError::InvalidLocalPart)?;
                    if next.is_control() {
                        return Err(AddressError::ControlCharacter);
                    }
                }
                '"' => return Err(AddressError::InvalidLocalPart),
                _ => {}
            }
        }
        return Ok(local.to_string());
    }
    for c in local.chars() {
        if !(is_atext(c) || c == '.') {
            return Err(AddressError::ForbiddenCharacter(c));
        }
    }
    let dot_string = !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
    if dot_string {
        Ok(local.to_string())
    } else {
        // Legal only as a quoted string (RFC 5321 §4.1.2); atext needs no escapes.
        Ok(format!("\"{local}\""))
    }
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() || domain.len() > 253 {
        return Err(AddressError::InvalidDomain);
    }
    if let Some(lit) = domain.strip_prefix('[') {
        let lit = lit.strip_suffix(']').ok_or(AddressError::InvalidDomain)?;
        let ok = lit.parse::<std::net::Ipv4Addr>().is_ok()
            || lit
                .strip_prefix("IPv6:")
                .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(AddressError::InvalidDomain)
        };
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::InvalidDomain);
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        {
            return Err(AddressError::InvalidDomain);
        }
    }
    Ok(())
}

/// The domain part of an address (after the last `@`), lower-cased.
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rfind('@')
        .map(|at| address[at + 1..].to_lowercase())
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        let a = check("John.Doe+tag@Example.COM").unwrap();
        assert_eq!(a.path, "John.Doe+tag@Example.COM");
        assert_eq!(a.domain, "example.com");
        assert!(!a.needs_smtputf8);
        assert!(check("user@[192.0.2.1]").is_ok());
        assert!(check("user@[IPv6:2001:db8::1]").is_ok());
        assert!(check("\"john doe\"@example.com").is_ok());
    }

    #[test]
    fn quotes_non_dot_string_local_parts() {
        assert_eq!(
            check("abc.@docomo.ne.jp").unwrap().path,
            "\"abc.\"@docomo.ne.jp"
        );
        assert_eq!(check("a..b@x.jp").unwrap().path, "\"a..b\"@x.jp");
    }

    #[test]
    fn utf8_needs_smtputf8() {
        let a = check("jösé@exämple.org").unwrap();
        assert!(a.needs_smtputf8);
    }

    #[test]
    fn rejects_injection_and_garbage() {
        assert_eq!(
            check("a@b.com\r\nRCPT TO:<x@y>"),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(check("a\n@b.com"), Err(AddressError::ControlCharacter));
        assert_eq!(check("a\0@b.com"), Err(AddressError::ControlCharacter));
        assert_eq!(
            check("a>@b.com"),
            Err(AddressError::ForbiddenCharacter('>'))
        );
        assert_eq!(
            check("a b@b.com"),
            Err(AddressError::ForbiddenCharacter(' '))
        );
        assert_eq!(check("nobody"), Err(AddressError::MissingDomain));
        assert_eq!(check("@b.com"), Err(AddressError::InvalidLocalPart));
        assert_eq!(check("a@"), Err(AddressError::InvalidDomain));
        assert_eq!(check("a@b..com"), Err(AddressError::InvalidDomain));
        assert_eq!(check("a@-b.com"), Err(AddressError::InvalidDomain));
        assert_eq!(check("a@b_c.com"), Err(AddressError::InvalidDomain));
        assert_eq!(check("a@b.com>"), Err(AddressError::InvalidDomain));
        assert_eq!(check("\"a\"b\"@c.com"), Err(AddressError::InvalidLocalPart));
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(64);
        assert!(check(&format!("{local64}@example.com")).is_ok());
        let local65 = "a".repeat(65);
        assert_eq!(
            check(&format!("{local65}@example.com")),
            Err(AddressError::LocalPartTooLong)
        );
        let long_domain = format!("{}.com", vec!["d".repeat(63); 3].join("."));
        // 64 + 1 + 195 = 260 > 254
        assert_eq!(
            check(&format!("{local64}@{long_domain}")),
            Err(AddressError::TooLong)
        );
        let ok_domain = format!("{}.com", vec!["d".repeat(60); 3].join("."));
        let addr = format!("{}@{ok_domain}", "a".repeat(60));
        assert!(addr.len() <= 254);
        assert!(check(&addr).is_ok());
    }

    #[test]
    fn null_reverse_path() {
        assert_eq!(check_reverse_path("").unwrap().path, "");
        assert!(check_reverse_path("a\r@b").is_err());
    }
}
