//! Polling a bounce mailbox over POP3 (`bounce_mailbox`), for senders whose bounce domain's
//! MX is elsewhere: each message is fetched, handed to the feedback service and deleted from
//! the mailbox only after what it says is committed. A message fetched twice (the poller
//! died before QUIT) is applied once: ingestion is idempotent by content.

use crate::feedback::{Feedback, FeedbackError};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Messages handled per poll; the rest wait for the next one.
const PER_POLL: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("bounce_mailbox: {0}")]
    Url(String),
    #[error("cannot reach the bounce mailbox at {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("TLS with the bounce mailbox failed: {0}")]
    Tls(String),
    #[error("the bounce mailbox server said: {0}")]
    Server(String),
    #[error("the bounce mailbox refused the login: {0}")]
    Login(String),
    #[error("talking to the bounce mailbox: {0}")]
    Io(#[from] std::io::Error),
    #[error("recording feedback: {0}")]
    Feedback(#[from] FeedbackError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// pop3s:// — TLS from the first byte.
    Implicit,
    /// pop3:// — STLS before login (required unless private targets are allowed).
    StartTls,
    /// pop3:// to a lab or test server, when private targets are allowed and STLS is not
    /// offered.
    Plain,
}

#[derive(Clone, PartialEq, Eq)]
pub struct MailboxUrl {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
}

impl std::fmt::Debug for MailboxUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl MailboxUrl {
    /// `pop3s://user:password@host[:995]` or `pop3://user:password@host[:110]`; user and
    /// password may be percent-encoded.
    pub fn parse(s: &str) -> Result<MailboxUrl, MailboxError> {
        let bad = |m: &str| MailboxError::Url(m.to_string());
        let (security, rest, default_port) = if let Some(r) = s.strip_prefix("pop3s://") {
            (Security::Implicit, r, 995)
        } else if let Some(r) = s.strip_prefix("pop3://") {
            (Security::StartTls, r, 110)
        } else {
            return Err(bad("must start with pop3s:// or pop3://"));
        };
        let rest = rest.trim_end_matches('/');
        let (cred, hostport) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("needs user:password@ before the host"))?;
        let (user, password) = cred
            .split_once(':')
            .ok_or_else(|| bad("needs user:password@ before the host"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.chars().all(|c| c.is_ascii_digit()) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || user.is_empty() {
            return Err(bad("the host and the user cannot be empty"));
        }
        Ok(MailboxUrl {
            security,
            host: host.to_string(),
            port,
            user: percent_decode(user),
            password: percent_decode(password),
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub messages: usize,
    pub recorded: usize,
    pub deleted: usize,
    pub too_big: usize,
}

/// One POP3 session: fetch, apply, delete, quit.
pub async fn poll_once(
    url: &MailboxUrl,
    allow_plain: bool,
    max_bytes: usize,
    feedback: &Arc<Feedback>,
) -> Result<PollReport, MailboxError> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
        .and_then(|r| r)
        .map_err(|source| MailboxError::Connect {
            host: url.host.clone(),
            port: url.port,
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut s: BufStream<Box<dyn Io>> = match url.security {
        Security::Implicit => {
            let tls = tls_connect(tcp, &url.host).await?;
            let mut s = BufStream::new(Box::new(tls) as Box<dyn Io>);
            ok(&read_line(&mut s).await?)?;
            s
        }
        Security::StartTls | Security::Plain => {
            let mut s = BufStream::new(Box::new(tcp) as Box<dyn Io>);
            ok(&read_line(&mut s).await?)?;
            let capa = command_multi(&mut s, "CAPA").await.unwrap_or_default();
            let offers_stls = capa.iter().any(|l| l.trim().eq_ignore_ascii_case("STLS"));
            if offers_stls {
                ok(&command(&mut s, "STLS").await?)?;
                // nothing may be buffered past the +OK: the TLS handshake starts here
                let inner = s.into_inner();
                let tls = tls_connect(inner, &url.host).await?;
                BufStream::new(Box::new(tls) as Box<dyn Io>)
            } else if allow_plain {
                s
            } else {
                return Err(MailboxError::Tls(format!(
                    "{} does not offer STLS; use pop3s:// (logging in without TLS is allowed only with allow_private_targets)",
                    url.host
                )));
            }
        }
    };
    ok(&command(&mut s, &format!("USER {}", url.user)).await?)
        .map_err(|e| MailboxError::Login(e.to_string()))?;
    ok(&command(&mut s, &format!("PASS {}", url.password)).await?)
        .map_err(|_| MailboxError::Login("wrong user or password".into()))?;
    let list = command_multi(&mut s, "LIST").await?;
    let mut report = PollReport::default();
    for line in list.iter().take(PER_POLL) {
        let mut parts = line.split_whitespace();
        let (Some(n), Some(size)) = (
            parts.next().and_then(|v| v.parse::<u64>().ok()),
            parts.next().and_then(|v| v.parse::<usize>().ok()),
        ) else {
            continue;
        };
        report.messages += 1;
        if size > max_bytes {
            tracing::warn!(
                message = n,
                size,
                limit = max_bytes,
                "bounce mailbox: message over the size limit deleted unread"
            );
            report.too_big += 1;
        } else {
            let raw = command_multi_bytes(&mut s, &format!("RETR {n}"), max_bytes).await?;
            let fb = feedback.clone();
            let res = tokio::task::spawn_blocking(move || fb.ingest_message(&raw, "mailbox", None))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            match res {
                Ok(i) => report.recorded += i.recorded.applied.len(),
                Err(FeedbackError::Invalid { message, .. }) => {
                    tracing::warn!(message = n, error = %message, "bounce mailbox: not a message; deleted");
                }
                // keep it in the mailbox for the next poll
                Err(e) => {
                    let _ = command(&mut s, "QUIT").await;
                    return Err(e.into());
                }
            }
        }
        ok(&command(&mut s, &format!("DELE {n}")).await?)?;
        report.deleted += 1;
    }
    // deletions take effect at QUIT
    ok(&command(&mut s, "QUIT").await?)?;
    Ok(report)
}

/// Polls every `interval` until `shutdown` fires.
pub async fn run(
    url: MailboxUrl,
    allow_plain: bool,
    max_bytes: usize,
    interval: Duration,
    feedback: Arc<Feedback>,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match poll_once(&url, allow_plain, max_bytes, &feedback).await {
            Ok(r) => {
                if r.messages > 0 {
                    tracing::info!(
                        messages = r.messages,
                        recorded = r.recorded,
                        deleted = r.deleted,
                        "bounce mailbox polled"
                    );
                }
                for _ in 0..r.deleted {
                    metrics.count_feedback("mailbox", "accepted");
                }
            }
            Err(e) => {
                metrics.count_feedback("mailbox", "poll_failed");
                tracing::warn!(error = %e, "bounce mailbox poll failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn tls_connect<S>(
    s: S,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<S>, MailboxError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = crate::delivery::smtp::tls::verified_config(Arc::new(
        crate::delivery::smtp::tls::webpki_roots(),
    ))
    .map_err(|e| MailboxError::Tls(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| MailboxError::Tls(format!("{host}: {e}")))?;
    tokio::time::timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, s),
    )
    .await
    .map_err(|_| MailboxError::Tls("handshake timed out".into()))?
    .map_err(|e| MailboxError::Tls(e.to_string()))
}

fn ok(line: &str) -> Result<(), MailboxError> {
    if line.starts_with("+OK") {
        Ok(())
    } else {
        Err(MailboxError::Server(line.chars().take(200).collect()))
    }
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
) -> Result<String, MailboxError> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        TIMEOUT,
        tokio::io::AsyncReadExt::take(&mut *s, 8192).read_until(b'\n', &mut buf),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    if n == 0 {
        return Err(
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed").into(),
        );
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
    cmd: &str,
) -> Result<String, MailboxError> {
    s.write_all(cmd.as_bytes()).await?;
    s.write_all(b"\r\n").await?;
    s.flush().await?;
    read_line(s).await
}

async fn command_multi<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
    cmd: &str,
) -> Result<Vec<String>, MailboxError> {
    let raw = command_multi_bytes(s, cmd, 1 << 20).await?;
    Ok(String::from_utf8_lossy(&raw)
        .lines()
        .map(str::to_string)
        .collect())
}

/// A multi-line answer, dot-unstuffed, at most `max` bytes (more is an error).
async fn command_multi_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufStream<S>,
    cmd: &str,
    max: usize,
) -> Result<Vec<u8>, MailboxError> {
    ok(&command(s, cmd).await?)?;
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut at_line_start = true;
    loop {
        line.clear();
        let n = tokio::time::timeout(
            TIMEOUT,
            tokio::io::AsyncReadExt::take(&mut *s, 64 * 1024).read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )
            .into());
        }
        let starts_line = at_line_start;
        at_line_start = line.ends_with(b"\n");
        if starts_line && (line == b".\r\n" || line == b".\n") {
            return Ok(out);
        }
        let body = if starts_line && line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        if out.len() + body.len() > max + 1024 {
            return Err(MailboxError::Server(format!(
                "answer to {} is larger than {max} bytes",
                cmd.split_whitespace().next().unwrap_or("")
            )));
        }
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = MailboxUrl::parse("pop3s://bounces%40example.com:p%3Ass@pop.example.com").unwrap();
        assert_eq!(u.security, Security::Implicit);
        assert_eq!(u.user, "bounces@example.com");
        assert_eq!(u.password, "p:ss");
        assert_eq!((u.host.as_str(), u.port), ("pop.example.com", 995));
        let u = MailboxUrl::parse("pop3://u:p@127.0.0.1:1110/").unwrap();
        assert_eq!(u.security, Security::StartTls);
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1110));
        assert!(!format!("{u:?}").contains("\"p\""), "password redacted");
        for bad in [
            "imap://u:p@h",
            "pop3://h",
            "pop3://u@h",
            "pop3://u:p@h:port",
            "pop3://:p@h",
        ] {
            assert!(MailboxUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
