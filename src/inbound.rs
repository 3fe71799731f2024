//! The inbound SMTP listener for the bounce domain (`bounce_listen`): the MX of the VERP
//! return-path domain points here. It accepts mail only for valid VERP tokens and the
//! configured feedback addresses (postmaster, abuse), so it can never relay; it enforces a
//! message size limit, a per-client rate limit, a connection limit and timeouts; and it
//! acknowledges a message only after the feedback it carries is committed.

use crate::feedback::{Feedback, FeedbackError};
use crate::subscriptions::{SubscriptionError, Subscriptions, Via};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest command line accepted (RFC 5321 says 512 octets; some clients send more).
const MAX_LINE: usize = 2048;
const MAX_RECIPIENTS: usize = 100;
const MAX_ERRORS: u32 = 10;
const MAX_CONNECTIONS: usize = 64;
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub hostname: String,
    /// Full addresses (lower case) accepted besides VERP return paths.
    pub addresses: Vec<String>,
    pub max_bytes: usize,
    pub messages_per_minute: u32,
}

pub struct Listener {
    cfg: ListenerConfig,
    feedback: Arc<Feedback>,
    subscriptions: Arc<Subscriptions>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    slots: Arc<tokio::sync::Semaphore>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Listener {
    pub fn new(
        cfg: ListenerConfig,
        feedback: Arc<Feedback>,
        subscriptions: Arc<Subscriptions>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Listener> {
        let per_minute = NonZeroU32::new(cfg.messages_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Arc::new(Listener {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            cfg,
            feedback,
            subscriptions,
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            metrics,
        })
    }

    /// Accepts connections until `shutdown` fires.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "bounce listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                match me.slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        if let Err(e) = me.session(stream, peer).await {
                            tracing::debug!(%peer, error = %e, "bounce listener session ended");
                        }
                        drop(permit);
                    }
                    Err(_) => {
                        let mut s = stream;
                        let _ = s
                            .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                            .await;
                    }
                }
            });
        }
        self.limiter.retain_recent();
    }

    async fn session(&self, stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let host = &self.cfg.hostname;
        reply(&mut w, &format!("220 {host} Mailstead feedback ESMTP")).await?;
        let mut envelope: Option<Envelope> = None;
        let mut greeted = false;
        let mut errors = 0u32;
        loop {
            let Some(line) = read_line(&mut r).await? else {
                return Ok(());
            };
            let Ok(line) = String::from_utf8(line) else {
                errors += 1;
                reply(&mut w, "500 5.5.2 Command is not valid UTF-8").await?;
                continue;
            };
            let upper = line.to_ascii_uppercase();
            let verb = upper.split_whitespace().next().unwrap_or("");
            let answer: String = match verb {
                "EHLO" => {
                    greeted = true;
                    envelope = None;
                    format!(
                        "250-{host}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES",
                        self.cfg.max_bytes
                    )
                }
                "HELO" => {
                    greeted = true;
                    envelope = None;
                    format!("250 {host}")
                }
                "MAIL" => {
                    if !greeted {
                        errors += 1;
                        "503 5.5.1 Say EHLO first".into()
                    } else if envelope.is_some() {
                        errors += 1;
                        "503 5.5.1 Nested MAIL command".into()
                    } else if let Some(size) = size_param(&upper)
                        && size > self.cfg.max_bytes
                    {
                        format!(
                            "552 5.3.4 Message too big; the limit is {} bytes",
                            self.cfg.max_bytes
                        )
                    } else if self.limiter.check_key(&peer.ip()).is_err() {
                        self.metrics.count_feedback("listener", "rate_limited");
                        "450 4.7.1 Too many messages from your address; try again later".into()
                    } else {
                        envelope = Some(Envelope::default());
                        "250 2.1.0 Sender OK".into()
                    }
                }
                "RCPT" => match &mut envelope {
                    None => {
                        errors += 1;
                        "503 5.5.1 Need MAIL first".into()
                    }
                    Some(env) => {
                        let addr = path_arg(&line, "TO:").unwrap_or_default().to_lowercase();
                        if env.rcpts.len() >= MAX_RECIPIENTS {
                            "452 4.5.3 Too many recipients".into()
                        } else if self.cfg.addresses.contains(&addr)
                            || self.feedback.is_verp_address(&addr).is_some()
                            || self.subscriptions.resolve_address(&addr).is_some()
                        {
                            env.rcpts.push(addr);
                            "250 2.1.5 Recipient OK".into()
                        } else {
                            errors += 1;
                            self.metrics
                                .count_feedback("listener", "rejected_recipient");
                            "550 5.7.1 No such mailbox here: this server accepts only bounces and feedback for its own mail (relaying denied)".into()
                        }
                    }
                },
                "DATA" => match envelope.take() {
                    Some(env) if !env.rcpts.is_empty() => {
                        reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                        let answer = match read_data(&mut r, self.cfg.max_bytes).await? {
                            Data::TooBig => format!(
                                "552 5.3.4 Message too big; the limit is {} bytes",
                                self.cfg.max_bytes
                            ),
                            Data::Message(raw) => self.take(raw, env).await,
                        };
                        reply(&mut w, &answer).await?;
                        continue;
                    }
                    other => {
                        envelope = other;
                        errors += 1;
                        "503 5.5.1 Need RCPT first".into()
                    }
                },
                "RSET" => {
                    envelope = None;
                    "250 2.0.0 OK".into()
                }
                "NOOP" => "250 2.0.0 OK".into(),
                "VRFY" => "252 2.5.2 Cannot verify".into(),
                "QUIT" => {
                    reply(&mut w, "221 2.0.0 Bye").await?;
                    return Ok(());
                }
                _ => {
                    errors += 1;
                    "500 5.5.2 Command not recognised".into()
                }
            };
            reply(&mut w, &answer).await?;
            if errors >= MAX_ERRORS {
                reply(&mut w, "421 4.7.0 Too many errors, closing").await?;
                return Ok(());
            }
        }
    }

    /// Applies a received message; the answer is sent only after the commit.
    async fn take(&self, raw: Vec<u8>, env: Envelope) -> String {
        // mail to an unsubscribe address (the List-Unsubscribe mailto) unsubscribes; its
        // content does not matter
        let unsubscribes: Vec<(u64, u32)> = env
            .rcpts
            .iter()
            .filter_map(|r| self.subscriptions.resolve_address(r))
            .collect();
        if !unsubscribes.is_empty() {
            let subs = self.subscriptions.clone();
            let res = tokio::task::spawn_blocking(move || {
                for (m, i) in unsubscribes {
                    match subs.unsubscribe(m, i, Via::Mailto, None) {
                        Ok(_) | Err(SubscriptionError::Expired) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })
            .await;
            if !matches!(res, Ok(Ok(()))) {
                return "451 4.3.0 Temporary failure, try again later".into();
            }
            self.metrics.count_feedback("listener", "unsubscribe");
            if env
                .rcpts
                .iter()
                .all(|r| self.subscriptions.resolve_address(r).is_some())
            {
                return "250 2.0.0 Unsubscribed".into();
            }
        }
        let fb = self.feedback.clone();
        let rcpt = env
            .rcpts
            .iter()
            .find(|r| fb.is_verp_address(r).is_some())
            .cloned();
        let res = tokio::task::spawn_blocking(move || {
            fb.ingest_message(&raw, "bounce-listener", rcpt.as_deref())
        })
        .await;
        match res {
            Ok(Ok(i)) => {
                self.metrics.count_feedback("listener", "accepted");
                tracing::info!(
                    kind = ?i.kind,
                    applied = i.recorded.applied.len(),
                    skipped = i.recorded.skipped,
                    "feedback message received"
                );
                "250 2.0.0 Feedback recorded".into()
            }
            Ok(Err(FeedbackError::Invalid { message, .. })) => {
                self.metrics.count_feedback("listener", "invalid");
                format!("554 5.6.0 Not accepted: {message}")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "bounce listener could not record feedback");
                "451 4.3.0 Temporary failure, try again later".into()
            }
            Err(_) => "451 4.3.0 Temporary failure, try again later".into(),
        }
    }
}

#[derive(Default)]
struct Envelope {
    rcpts: Vec<String>,
}

enum Data {
    Message(Vec<u8>),
    TooBig,
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// One command line without its ending; `None` at end of stream. Over-long lines are an
/// error (the connection is dropped).
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        IDLE,
        (&mut *r)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "command line too long",
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(buf))
}

/// Reads the DATA section up to the lone dot, undoing dot-stuffing. Past `max` bytes the
/// rest is read and dropped (so the dialogue stays in step) and `TooBig` is returned.
async fn read_data<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Data> {
    let mut out = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    // a line longer than one read arrives in pieces: only a piece that starts a line can be
    // the terminating dot or carry a stuffed dot
    let mut at_line_start = true;
    loop {
        line.clear();
        let n = tokio::time::timeout(IDLE, (&mut *r).take(64 * 1024).read_until(b'\n', &mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle in DATA"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in DATA",
            ));
        }
        let starts_line = at_line_start;
        at_line_start = line.ends_with(b"\n");
        if starts_line && (line == b".\r\n" || line == b".\n") {
            break;
        }
        if too_big {
            continue;
        }
        let body = if starts_line && line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        if out.len() + body.len() > max {
            too_big = true;
            out = Vec::new();
            continue;
        }
        out.extend_from_slice(body);
    }
    Ok(if too_big {
        Data::TooBig
    } else {
        Data::Message(out)
    })
}

/// The address inside `MAIL FROM:<…>` / `RCPT TO:<…>`.
fn path_arg(line: &str, prefix: &str) -> Option<String> {
    let upper = line.to_ascii_uppercase();
    let at = upper.find(prefix)? + prefix.len();
    let rest = line[at..].trim_start();
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    let end = rest.find(['>', ' ']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

fn size_param(upper: &str) -> Option<usize> {
    upper
        .split_whitespace()
        .find_map(|w| w.strip_prefix("SIZE="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sizes() {
        assert_eq!(
            path_arg("RCPT TO:<B+x@Bounce.Example>", "TO:").as_deref(),
            Some("B+x@Bounce.Example")
        );
        assert_eq!(
            path_arg("rcpt to: <a@b.example> NOTIFY=NEVER", "TO:").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(path_arg("MAIL FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(
            size_param("MAIL FROM:<> SIZE=1234 BODY=8BITMIME"),
            Some(1234)
        );
        assert_eq!(size_param("MAIL FROM:<>"), None);
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_capped() {
        let input: &[u8] = b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nNEXT\r\n";
        let mut r = BufReader::new(input);
        match read_data(&mut r, 1000).await.unwrap() {
            Data::Message(m) => assert_eq!(m, b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"),
            Data::TooBig => panic!("not too big"),
        }
        // the reader stopped right after the terminating dot
        assert_eq!(read_line(&mut r).await.unwrap().unwrap(), b"NEXT");
        let mut r = BufReader::new(input);
        assert!(matches!(read_data(&mut r, 10).await.unwrap(), Data::TooBig));
        assert_eq!(read_line(&mut r).await.unwrap().unwrap(), b"NEXT");
    }
}
