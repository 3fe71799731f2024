//! Small string helpers shared by the sub-parsers. All of them work on
//! arbitrary input without panicking (no byte-index slicing on untrusted
//! positions unless the position came from a char boundary).

/// A list of header fields: lower-cased name and unfolded value, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// First value of the named field (name is matched case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of the named field.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parse a block of `Name: value` lines (with RFC 5322 folding) until the
/// first empty line. Lines that are not fields are skipped. Returns the
/// fields and the remaining text after the blank line.
pub(crate) fn parse_header_block(text: &str) -> (Headers, &str) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut rest = "";
    let mut iter = text.split_inclusive('\n');
    let mut consumed = 0usize;
    for line in iter.by_ref() {
        consumed += line.len();
        let l = line.trim_end_matches(['\r', '\n']);
        if l.trim().is_empty() {
            rest = text.get(consumed..).unwrap_or("");
            break;
        }
        if l.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(l.trim());
            }
            continue;
        }
        if let Some((name, value)) = l.split_once(':') {
            let name = name.trim();
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b':' && b != b' ')
            {
                fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    (Headers(fields), rest)
}

/// Collapse runs of whitespace into single spaces and trim.
pub(crate) fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Remove one pair of surrounding angle brackets and whitespace.
pub(crate) fn strip_angle(s: &str) -> String {
    let t = s.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t);
    t.trim().to_string()
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.\"".contains(c) || !c.is_ascii()
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '[' || c == ']' || c == ':'
}

/// Find e-mail addresses in free text, in order of appearance (deduplicated,
/// original case kept). Returns (byte offset, address).
///
/// Works on bytes: `@` and every domain character are ASCII, and every byte of
/// a non-ASCII character counts as a local-part character, so the walks stop
/// only at ASCII bytes, which are character boundaries.
pub(crate) fn find_addresses(s: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let Some(p) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'@')) else {
            break;
        };
        let at = i + p;
        // local part: walk left (it stops at the previous `@` at the latest,
        // so the walks cover disjoint stretches)
        let mut l = at;
        while l > 0 && is_local_byte(b[l - 1]) {
            l -= 1;
        }
        // domain: walk right
        let mut r = at + 1;
        while r < n && is_domain_char(char::from(b[r])) {
            r += 1;
        }
        let local = s.get(l..at).unwrap_or("");
        let domain = s.get(at + 1..r).unwrap_or("");
        if let Some(addr) = clean_address(local, domain) {
            out.push((l, addr));
        }
        i = r.max(at + 1);
    }
    out
}

fn is_local_byte(c: u8) -> bool {
    !c.is_ascii() || is_local_char(char::from(c))
}

fn clean_address(local: &str, domain: &str) -> Option<String> {
    let mut local = local.trim_start_matches(['.', '\'', '`', '=']);
    // An unbalanced leading quote belongs to the surrounding text.
    if local.starts_with('"') && local.matches('"').count() % 2 == 1 {
        local = &local[1..];
    }
    if local.ends_with('"') && !local.starts_with('"') {
        return None;
    }
    let domain = domain.trim_end_matches(['.', ':', '-', ']']);
    let domain = domain.trim_start_matches('[');
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return None;
    }
    if domain.contains(':') || domain.contains('[') || domain.contains(']') {
        return None;
    }
    if domain.starts_with('.') || domain.starts_with('-') || domain.contains("..") {
        return None;
    }
    let tld = domain.rsplit('.').next().unwrap_or("");
    if tld.is_empty() || tld.chars().all(|c| c.is_ascii_digit()) {
        // e.g. user@192.0.2.1 is unusual in bounces; skip
        if !domain
            .split('.')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
        {
            return None;
        }
    }
    Some(format!("{local}@{domain}"))
}

/// Is this a plausible mailbox address (used to validate recipients)?
pub(crate) fn is_plausible_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        && domain.chars().all(is_domain_char)
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// Normalise a recipient value such as `rfc822; <User@Example.org>`.
pub(crate) fn normalize_recipient(value: &str) -> Option<String> {
    let v = value.trim();
    let v = match v.split_once(';') {
        Some((ty, rest)) if !ty.contains('@') => rest,
        _ => v,
    };
    let v = strip_angle(v);
    let mut v = v.trim().trim_matches(['\'', ',']).trim();
    // RFC 821 source route: "@relay.example:user@example.org".
    if v.starts_with('@')
        && let Some((_, rest)) = v.rsplit_once(':')
    {
        v = rest;
    }
    if is_plausible_address(v) {
        return Some(v.to_string());
    }
    // Something like `"Name" <addr>` or extra words: take the first address.
    find_addresses(v).into_iter().map(|(_, a)| a).next()
}

/// An RFC 3463 enhanced status code found in text.
pub(crate) fn find_status(s: &str) -> Option<String> {
    find_all_status(s).into_iter().next()
}

/// All RFC 3463 enhanced status codes found in text, in order.
pub(crate) fn find_all_status(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = b[i];
        if (c == b'2' || c == b'4' || c == b'5')
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
            && i + 1 < n
            && b[i + 1] == b'.'
        {
            // subject
            let mut j = i + 2;
            let s_start = j;
            while j < n && b[j].is_ascii_digit() && j - s_start < 3 {
                j += 1;
            }
            if j == s_start || j >= n || b[j] != b'.' {
                i += 1;
                continue;
            }
            let subject = &s[s_start..j];
            j += 1;
            let d_start = j;
            while j < n && b[j].is_ascii_digit() && j - d_start < 3 {
                j += 1;
            }
            if j == d_start {
                i += 1;
                continue;
            }
            // reject IP-address-like continuations: 4.16.55.1
            if j < n
                && (b[j].is_ascii_digit()
                    || (b[j] == b'.' && j + 1 < n && b[j + 1].is_ascii_digit()))
            {
                i = j;
                continue;
            }
            if j < n && b[j].is_ascii_alphabetic() {
                i = j;
                continue;
            }
            let subj: u32 = subject.parse().unwrap_or(99);
            if subj <= 7 {
                out.push(s[i..j].to_string());
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// An SMTP reply code (2xx/4xx/5xx) found in text: the first three-digit
/// token that is followed by a space, `-`, `:` or the end, and is not part
/// of a larger number, date or address.
pub(crate) fn find_reply_code(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i + 3 <= n {
        let c = b[i];
        if (c == b'2' || c == b'4' || c == b'5')
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && (i == 0 || {
                let p = b[i - 1];
                p == b' '
                    || p == b'\t'
                    || p == b'\n'
                    || p == b'('
                    || p == b'<'
                    || p == b'"'
                    || p == b'\''
                    || p == b';'
                    || p == b'['
                    || p == b':'
            })
            && (i + 3 == n || {
                let q = b[i + 3];
                q == b' '
                    || q == b'-'
                    || q == b'\n'
                    || q == b'\r'
                    || q == b')'
                    || q == b']'
                    || (q == b':' && !(i + 4 < n && b[i + 4].is_ascii_digit()))
                    || q == b','
            })
        {
            // Reject obvious non-codes: the second digit of a reply code is 0-5.
            if b[i + 1] <= b'5' {
                // "554-" followed by a hostname still counts; "250 bytes" etc. are rare in bounces.
                return Some(s[i..i + 3].to_string());
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(
            find_status("550 5.1.1 <a@b.c> no").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(find_status("550-5.7.26 DMARC").as_deref(), Some("5.7.26"));
        assert_eq!(find_status("(#5.5.0)").as_deref(), Some("5.5.0"));
        assert_eq!(find_status("see 4.16.55.1; x"), None);
        assert_eq!(find_status("ip 192.0.2.1"), None);
        assert_eq!(find_status("version 2.0.1a"), None);
    }

    #[test]
    fn reply_codes() {
        assert_eq!(find_reply_code("said: 550 5.1.1 x").as_deref(), Some("550"));
        assert_eq!(find_reply_code("550-5.7.1 x").as_deref(), Some("550"));
        assert_eq!(find_reply_code("host 192.0.2.153 said"), None);
        assert_eq!(find_reply_code("at 23:34:45 2014"), None);
        assert_eq!(find_reply_code("550: 5.2.2 full").as_deref(), Some("550"));
    }

    #[test]
    fn addresses() {
        let a = find_addresses("<kijitora@example.jp>: host mx said");
        assert_eq!(a[0].1, "kijitora@example.jp");
        let a = find_addresses("RCPT TO:<a.b@c.example.org>:");
        assert_eq!(a[0].1, "a.b@c.example.org");
        assert!(find_addresses("no address here @ all").is_empty());
        assert_eq!(
            normalize_recipient("rfc822; <User@Example.org>").as_deref(),
            Some("User@Example.org")
        );
    }
}
