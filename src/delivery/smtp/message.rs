//! A message converted once into its DATA wire form (CRLF line ends,
//! dot-stuffed, terminated by `CRLF.CRLF`), so that sending it to many
//! recipients and sites costs one copy.

use std::sync::Arc;

/// A message ready to be sent after a 354 reply. Cheap to clone.
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    wire: Vec<u8>,
    size: usize,
    eight_bit: bool,
    utf8_headers: bool,
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("size", &self.inner.size)
            .field("eight_bit", &self.inner.eight_bit)
            .field("utf8_headers", &self.inner.utf8_headers)
            .finish()
    }
}

impl PreparedMessage {
    /// Normalises line ends (lone LF or CR become CRLF), dot-stuffs lines
    /// starting with `.`, makes sure the message ends with CRLF and appends
    /// the terminating `.CRLF`.
    pub fn new(raw: &[u8]) -> Self {
        let mut wire = Vec::with_capacity(raw.len() + raw.len() / 64 + 8);
        let mut size = 0usize;
        let mut eight_bit = false;
        let mut utf8_headers = false;
        let mut in_headers = true;
        let mut line_start = true;
        let mut line_empty = true;
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            match b {
                b'\r' | b'\n' => {
                    // CRLF, lone CR and lone LF all end a line.
                    if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    wire.extend_from_slice(b"\r\n");
                    size += 2;
                    if line_start && line_empty {
                        in_headers = false;
                    }
                    line_start = true;
                    line_empty = true;
                }
                _ => {
                    if line_start && b == b'.' {
                        wire.push(b'.');
                    }
                    if b >= 0x80 {
                        eight_bit = true;
                        if in_headers {
                            utf8_headers = true;
                        }
                    }
                    wire.push(b);
                    size += 1;
                    line_start = false;
                    line_empty = false;
                }
            }
            i += 1;
        }
        if !line_start {
            wire.extend_from_slice(b"\r\n");
            size += 2;
        }
        wire.extend_from_slice(b".\r\n");
        Self {
            inner: Arc::new(Inner {
                wire,
                size,
                eight_bit,
                utf8_headers,
            }),
        }
    }

    /// The DATA stream, final `.CRLF` included.
    pub fn wire(&self) -> &[u8] {
        &self.inner.wire
    }

    /// Size in octets as RFC 1870 counts it (CRLF line ends, no stuffing).
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether any octet has the high bit set (needs 8BITMIME).
    pub fn is_eight_bit(&self) -> bool {
        self.inner.eight_bit
    }

    /// Whether the header section has non-ASCII octets (RFC 6532 headers,
    /// which want SMTPUTF8).
    pub fn has_utf8_headers(&self) -> bool {
        self.inner.utf8_headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_stuffs() {
        let m = PreparedMessage::new(b"Subject: x\n\n.hidden\r\nline\r..\nend");
        assert_eq!(
            m.wire(),
            b"Subject: x\r\n\r\n..hidden\r\nline\r\n...\r\nend\r\n.\r\n"
        );
        assert_eq!(
            m.size(),
            "Subject: x\r\n\r\n.hidden\r\nline\r\n..\r\nend\r\n".len()
        );
        assert!(!m.is_eight_bit());
    }

    #[test]
    fn lone_dot_line_and_empty() {
        let m = PreparedMessage::new(b"a\r\n.\r\nb\r\n");
        assert_eq!(m.wire(), b"a\r\n..\r\nb\r\n.\r\n");
        let m = PreparedMessage::new(b"");
        assert_eq!(m.wire(), b".\r\n");
    }

    #[test]
    fn detects_eight_bit() {
        let m = PreparedMessage::new("Subject: héllo\r\n\r\nbody".as_bytes());
        assert!(m.is_eight_bit());
        assert!(m.has_utf8_headers());
        let m = PreparedMessage::new("Subject: x\r\n\r\nbödy".as_bytes());
        assert!(m.is_eight_bit());
        assert!(!m.has_utf8_headers());
    }
}
