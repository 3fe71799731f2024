//! An SMTP client for MX delivery and relaying that drives the dialogue
//! itself: TCP_NODELAY and its own buffering, robust reply reading with
//! bounded lines and per-stage timeouts (RFC 5321 §4.5.3.2, shorter by
//! default), EHLO with HELO fallback, opportunistic or required STARTTLS,
//! PIPELINING (RFC 2920) of MAIL, RCPT and DATA, per-recipient results,
//! SIZE / 8BITMIME / SMTPUTF8, AUTH PLAIN / LOGIN, RSET and connection reuse.
//!
//! Every failure ends up as a [`Failure`] with a [`Stage`] and a
//! [`FailureCause`]; nothing a server sends can make this module panic.

pub mod address;
pub mod message;
pub mod relay;
pub mod reply;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use self::address::{CheckedAddress, check, check_reverse_path};
use self::message::PreparedMessage;
use self::relay::Credentials;
use self::reply::{MAX_REPLY_LINE, Reply, ReplyError, ReplyParser, printable};
use self::tls::TlsPolicy;
use super::outcome::{DeliveryStatus, Failure, FailureCause, RecipientOutcome, Stage};

/// Per-stage time limits. [`Timeouts::rfc5321`] gives the RFC minimums;
/// `Default` gives shorter ones that suit a bulk sender (a stalled server
/// should not hold a connection slot for ten minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// 220 greeting (RFC: 5 min).
    pub greeting: Duration,
    /// EHLO/HELO, STARTTLS, AUTH, RSET, NOOP replies.
    pub command: Duration,
    /// TLS handshake.
    pub tls_handshake: Duration,
    /// MAIL reply (RFC: 5 min).
    pub mail: Duration,
    /// Each RCPT reply (RFC: 5 min).
    pub rcpt: Duration,
    /// DATA reply, i.e. the 354 (RFC: 2 min).
    pub data_init: Duration,
    /// Each write of message data (RFC: 3 min).
    pub data_block: Duration,
    /// Reply after the final dot (RFC: 10 min).
    pub data_end: Duration,
    /// QUIT reply.
    pub quit: Duration,
}

impl Timeouts {
    /// The values of RFC 5321 §4.5.3.2.
    pub fn rfc5321() -> Self {
        Self {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            tls_handshake: Duration::from_secs(60),
            mail: Duration::from_secs(300),
            rcpt: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
            quit: Duration::from_secs(10),
        }
    }

    /// Every limit set to `d` (handy in tests).
    pub fn uniform(d: Duration) -> Self {
        Self {
            connect: d,
            greeting: d,
            command: d,
            tls_handshake: d,
            mail: d,
            rcpt: d,
            data_init: d,
            data_block: d,
            data_end: d,
            quit: d,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(20),
            greeting: Duration::from_secs(60),
            command: Duration::from_secs(60),
            tls_handshake: Duration::from_secs(30),
            mail: Duration::from_secs(90),
            rcpt: Duration::from_secs(90),
            data_init: Duration::from_secs(90),
            data_block: Duration::from_secs(120),
            data_end: Duration::from_secs(300),
            quit: Duration::from_secs(5),
        }
    }
}

/// Errors building a [`ClientConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// The HELO name is empty, too long or contains spaces / control characters.
    #[error("invalid HELO host name {0:?}")]
    HeloName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Settings shared by every connection. Cheap to clone.
#[derive(Clone)]
pub struct ClientConfig {
    helo_name: String,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Most recipients per transaction (RFC 5321 requires servers to take
    /// 100); more are sent in further transactions on the same connection.
    pub max_recipients: usize,
    opportunistic_tls: Arc<rustls::ClientConfig>,
    verified_tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("helo_name", &self.helo_name)
            .field("timeouts", &self.timeouts)
            .field("max_recipients", &self.max_recipients)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration announcing `helo_name` (the host's FQDN, which should
    /// match its PTR record), verifying certificates with the built-in
    /// Mozilla roots when a policy requires it.
    pub fn new(helo_name: &str) -> Result<Self, ClientConfigError> {
        Self::with_roots(helo_name, tls::webpki_roots())
    }

    /// Like [`ClientConfig::new`] with explicit trust anchors.
    pub fn with_roots(helo_name: &str, roots: RootCertStore) -> Result<Self, ClientConfigError> {
        let valid = !helo_name.is_empty()
            && helo_name.len() <= 255
            && helo_name.is_ascii()
            && !helo_name
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'<' || b == b'>');
        if !valid {
            return Err(ClientConfigError::HeloName(helo_name.to_string()));
        }
        Ok(Self {
            helo_name: helo_name.to_string(),
            timeouts: Timeouts::default(),
            max_recipients: 100,
            opportunistic_tls: tls::opportunistic_config()?,
            verified_tls: tls::verified_config(Arc::new(roots))?,
        })
    }

    /// The HELO/EHLO name.
    pub fn helo_name(&self) -> &str {
        &self.helo_name
    }
}

/// What the server announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// EHLO succeeded (false after a HELO fallback).
    pub esmtp: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870); `Some(0)` means no fixed limit.
    pub size: Option<usize>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Extensions {
    /// Parses the lines of a 250 EHLO reply (the first one is the greeting).
    pub fn parse(reply: &Reply) -> Self {
        let mut ext = Extensions {
            esmtp: true,
            ..Default::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => {
                    ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                _ => {
                    // "AUTH PLAIN LOGIN" and the pre-standard "AUTH=PLAIN LOGIN".
                    let rest = keyword
                        .strip_prefix("AUTH=")
                        .map(str::to_string)
                        .into_iter();
                    if keyword == "AUTH" || keyword.starts_with("AUTH=") {
                        for m in rest.chain(words.map(str::to_ascii_uppercase)) {
                            if !m.is_empty() && !ext.auth.contains(&m) {
                                ext.auth.push(m);
                            }
                        }
                    }
                }
            }
        }
        ext
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    /// The server's host name (MX name or relay host): used for TLS SNI and
    /// verification, and in outcomes.
    pub host: &'a str,
    /// The address to connect to.
    pub addr: SocketAddr,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// TLS from the first byte (SMTPS, port 465).
    pub implicit_tls: bool,
    /// AUTH after EHLO (relay mode).
    pub credentials: Option<&'a Credentials>,
    /// Allow AUTH over an unencrypted connection.
    pub allow_plaintext_auth: bool,
}

impl<'a> ConnectOptions<'a> {
    /// MX delivery to `host` at `addr` with the given TLS policy.
    pub fn mx(host: &'a str, addr: SocketAddr, tls: TlsPolicy) -> Self {
        Self {
            host,
            addr,
            tls,
            implicit_tls: false,
            credentials: None,
            allow_plaintext_auth: false,
        }
    }
}

/// A connection could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failure}")]
pub struct ConnectError {
    /// Stage and cause (a reply, a timeout, a TLS failure, …).
    pub failure: Failure,
    /// Opportunistic TLS was attempted and failed: the connection is gone;
    /// the caller should remember that this host's TLS is broken and retry
    /// in plain text.
    pub tls_failed: bool,
}

/// A network-level problem while talking to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IoFailure {
    Timeout,
    Closed,
    Protocol(String),
    Io(String),
}

impl IoFailure {
    fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected => IoFailure::Closed,
            io::ErrorKind::TimedOut => IoFailure::Timeout,
            _ => IoFailure::Io(e.to_string()),
        }
    }

    fn into_cause(self) -> FailureCause {
        match self {
            IoFailure::Timeout => FailureCause::Timeout,
            IoFailure::Closed => FailureCause::ConnectionClosed,
            IoFailure::Protocol(s) => FailureCause::Protocol(s),
            IoFailure::Io(s) => FailureCause::Io(s),
        }
    }
}

impl From<ReplyError> for IoFailure {
    fn from(e: ReplyError) -> Self {
        IoFailure::Protocol(e.to_string())
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Closed,
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// The state of a connection between transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ready for MAIL FROM.
    Ready,
    /// A transaction was aborted: RSET before the next one.
    NeedsReset,
    /// Unusable (closed, timed out, garbage, 421): drop it.
    Broken,
}

/// One SMTP session, after greeting, EHLO, optional STARTTLS and AUTH.
pub struct SmtpConnection {
    io: Io,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    host: String,
    peer: SocketAddr,
    helo_name: String,
    ext: Extensions,
    tls: bool,
    tls_verified: bool,
    timeouts: Timeouts,
    max_recipients: usize,
    state: State,
    transactions: u32,
    last_used: Instant,
}

impl std::fmt::Debug for SmtpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConnection")
            .field("host", &self.host)
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("state", &self.state)
            .field("transactions", &self.transactions)
            .finish_non_exhaustive()
    }
}

const WRITE_CHUNK: usize = 64 * 1024;

impl SmtpConnection {
    /// Connects, reads the greeting, says EHLO (HELO as a fallback), runs
    /// STARTTLS as the policy says and authenticates when credentials are
    /// given.
    pub async fn connect(
        config: &ClientConfig,
        opts: &ConnectOptions<'_>,
    ) -> Result<Self, ConnectError> {
        let host = opts.host.to_string();
        let fail = |stage: Stage, cause: FailureCause| ConnectError {
            failure: Failure {
                stage,
                cause,
                host: Some(host.clone()),
            },
            tls_failed: false,
        };
        let t = config.timeouts;
        let tcp = match tokio::time::timeout(t.connect, TcpStream::connect(opts.addr)).await {
            Err(_) => return Err(fail(Stage::Connect, FailureCause::Timeout)),
            Ok(Err(e)) => return Err(fail(Stage::Connect, FailureCause::Io(e.to_string()))),
            Ok(Ok(s)) => s,
        };
        // Nagle would add ~40 ms to every command round trip.
        if let Err(e) = tcp.set_nodelay(true) {
            return Err(fail(Stage::Connect, FailureCause::Io(e.to_string())));
        }
        let mut conn = SmtpConnection {
            io: Io::Plain(tcp),
            rbuf: Vec::with_capacity(4096),
            rpos: 0,
            wbuf: Vec::with_capacity(4096),
            host: host.clone(),
            peer: opts.addr,
            helo_name: config.helo_name.clone(),
            ext: Extensions::default(),
            tls: false,
            tls_verified: false,
            timeouts: t,
            max_recipients: config.max_recipients.max(1),
            state: State::Ready,
            transactions: 0,
            last_used: Instant::now(),
        };

        if opts.implicit_tls {
            let verify = opts.tls == TlsPolicy::RequireVerified;
            if let Err(cause) = conn.handshake(config, verify).await {
                return Err(fail(Stage::StartTls, cause));
            }
        }

        let greeting = match conn.read_reply(t.greeting).await {
            Ok(r) => r,
            Err(e) => return Err(fail(Stage::Greeting, e.into_cause())),
        };
        if !greeting.is_positive() {
            // RFC 5321 §3.1: a client receiving 554 should send QUIT.
            conn.quit_quietly().await;
            return Err(fail(Stage::Greeting, FailureCause::Reply(greeting)));
        }

        if let Err(cause) = conn.ehlo().await {
            conn.quit_quietly().await;
            return Err(fail(Stage::Ehlo, cause));
        }

        if !conn.tls && opts.tls != TlsPolicy::Disabled {
            let required = opts.tls == TlsPolicy::RequireVerified;
            if conn.ext.starttls {
                conn.write_command("STARTTLS");
                let reply = match conn.flush_and_read(t.command).await {
                    Ok(r) => r,
                    Err(e) => return Err(fail(Stage::StartTls, e.into_cause())),
                };
                if reply.code == 220 {
                    if conn.rpos < conn.rbuf.len() {
                        // Data after the 220 would be processed as if it came
                        // over TLS (CVE-2011-0411 style injection).
                        return Err(ConnectError {
                            failure: Failure {
                                stage: Stage::StartTls,
                                cause: FailureCause::Protocol(
                                    "data pipelined after STARTTLS reply".into(),
                                ),
                                host: Some(host.clone()),
                            },
                            tls_failed: !required,
                        });
                    }
                    if let Err(cause) = conn.handshake(config, required).await {
                        return Err(ConnectError {
                            failure: Failure {
                                stage: Stage::StartTls,
                                cause,
                                host: Some(host.clone()),
                            },
                            tls_failed: !required,
                        });
                    }
                    if let Err(cause) = conn.ehlo().await {
                        conn.quit_quietly().await;
                        return Err(fail(Stage::Ehlo, cause));
                    }
                } else if required {
                    conn.quit_quietly().await;
                    return Err(fail(
                        Stage::StartTls,
                        FailureCause::Tls(format!("STARTTLS refused: {reply}")),
                    ));
                } else if reply.code == 421 {
                    return Err(fail(Stage::StartTls, FailureCause::Reply(reply)));
                }
                // Otherwise (454 TLS not available): carry on in plain text.
            } else if required {
                conn.quit_quietly().await;
                return Err(fail(
                    Stage::StartTls,
                    FailureCause::Tls("server does not offer STARTTLS".into()),
                ));
            }
        }

        if let Some(creds) = opts.credentials {
            if !conn.tls && !opts.allow_plaintext_auth {
                conn.quit_quietly().await;
                return Err(fail(
                    Stage::Auth,
                    FailureCause::Auth("refusing to send credentials without TLS".into()),
                ));
            }
            if let Err(cause) = conn.authenticate(creds).await {
                conn.quit_quietly().await;
                return Err(fail(Stage::Auth, cause));
            }
        }
        conn.last_used = Instant::now();
        Ok(conn)
    }

    async fn handshake(&mut self, config: &ClientConfig, verify: bool) -> Result<(), FailureCause> {
        let tcp = match std::mem::replace(&mut self.io, Io::Closed) {
            Io::Plain(tcp) => tcp,
            other => {
                self.io = other;
                return Err(FailureCause::Tls("TLS already active".into()));
            }
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| FailureCause::Tls(format!("invalid server name: {e}")))?;
        let tls_config = if verify {
            config.verified_tls.clone()
        } else {
            config.opportunistic_tls.clone()
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config);
        match tokio::time::timeout(self.timeouts.tls_handshake, connector.connect(name, tcp)).await
        {
            Err(_) => Err(FailureCause::Tls("handshake timed out".into())),
            Ok(Err(e)) => Err(FailureCause::Tls(format!("handshake failed: {e}"))),
            Ok(Ok(stream)) => {
                self.io = Io::Tls(Box::new(stream));
                self.tls = true;
                self.tls_verified = verify;
                self.rbuf.clear();
                self.rpos = 0;
                Ok(())
            }
        }
    }

    async fn ehlo(&mut self) -> Result<(), FailureCause> {
        let t = self.timeouts.command;
        let cmd = format!("EHLO {}", self.helo_name);
        self.write_command(&cmd);
        let reply = self
            .flush_and_read(t)
            .await
            .map_err(IoFailure::into_cause)?;
        if reply.is_positive() {
            self.ext = Extensions::parse(&reply);
            return Ok(());
        }
        if !matches!(reply.code, 500 | 501 | 502 | 504 | 550) {
            return Err(FailureCause::Reply(reply));
        }
        let cmd = format!("HELO {}", self.helo_name);
        self.write_command(&cmd);
        let reply = self
            .flush_and_read(t)
            .await
            .map_err(IoFailure::into_cause)?;
        if reply.is_positive() {
            self.ext = Extensions::default();
            Ok(())
        } else {
            Err(FailureCause::Reply(reply))
        }
    }

    async fn authenticate(&mut self, creds: &Credentials) -> Result<(), FailureCause> {
        let t = self.timeouts.command;
        let has = |m: &str| self.ext.auth.iter().any(|a| a == m);
        if has("PLAIN") {
            let token = B64.encode(format!("\0{}\0{}", creds.username, creds.password()));
            self.write_command(&format!("AUTH PLAIN {token}"));
            let reply = self
                .flush_and_read(t)
                .await
                .map_err(IoFailure::into_cause)?;
            return auth_result(reply);
        }
        if has("LOGIN") {
            self.write_command("AUTH LOGIN");
            let reply = self
                .flush_and_read(t)
                .await
                .map_err(IoFailure::into_cause)?;
            if reply.code != 334 {
                return auth_result(reply);
            }
            self.write_command(&B64.encode(&creds.username));
            let reply = self
                .flush_and_read(t)
                .await
                .map_err(IoFailure::into_cause)?;
            if reply.code != 334 {
                return auth_result(reply);
            }
            self.write_command(&B64.encode(creds.password()));
            let reply = self
                .flush_and_read(t)
                .await
                .map_err(IoFailure::into_cause)?;
            return auth_result(reply);
        }
        Err(FailureCause::Auth(format!(
            "no supported AUTH mechanism (server offers: {})",
            if self.ext.auth.is_empty() {
                "none".to_string()
            } else {
                self.ext.auth.join(" ")
            }
        )))
    }

    /// The host name given at connect.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The peer address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The extensions of the last EHLO.
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// Whether the session is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the certificate was verified.
    pub fn is_tls_verified(&self) -> bool {
        self.tls_verified
    }

    /// Number of transactions attempted on this connection.
    pub fn transactions(&self) -> u32 {
        self.transactions
    }

    /// How long since the connection was last used.
    pub fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    /// Whether another transaction may be attempted.
    pub fn is_usable(&self) -> bool {
        self.state != State::Broken
    }

    /// Sends one message to `recipients` with `mail_from` as the reverse
    /// path (empty for `<>`), returning one outcome per recipient in order.
    ///
    /// Invalid addresses are refused before anything is sent; recipients
    /// over [`ClientConfig::max_recipients`] or refused with "452 too many
    /// recipients" go in further transactions on the same connection.
    pub async fn send(
        &mut self,
        mail_from: &str,
        recipients: &[String],
        message: &PreparedMessage,
    ) -> Vec<RecipientOutcome> {
        let mut status: Vec<Option<DeliveryStatus>> = vec![None; recipients.len()];
        let host = Some(self.host.clone());
        let failure = |stage: Stage, cause: FailureCause| Failure {
            stage,
            cause,
            host: host.clone(),
        };

        let from = match check_reverse_path(mail_from) {
            Ok(a) => Some(a),
            Err(e) => {
                let f = failure(Stage::Validate, FailureCause::InvalidSender(e.to_string()));
                status
                    .iter_mut()
                    .for_each(|s| *s = Some(DeliveryStatus::Bounced(f.clone())));
                None
            }
        };
        let mut pending: Vec<(usize, CheckedAddress)> = Vec::new();
        if let Some(from) = &from {
            for (i, r) in recipients.iter().enumerate() {
                match check(r) {
                    Err(e) => {
                        status[i] = Some(DeliveryStatus::Bounced(failure(
                            Stage::Validate,
                            FailureCause::InvalidAddress(e.to_string()),
                        )));
                    }
                    Ok(a) if (a.needs_smtputf8 || from.needs_smtputf8) && !self.ext.smtputf8 => {
                        status[i] = Some(DeliveryStatus::Bounced(failure(
                            Stage::MailFrom,
                            FailureCause::SmtpUtf8Unsupported,
                        )));
                    }
                    Ok(a) => pending.push((i, a)),
                }
            }
            if let Some(limit) = self.ext.size.filter(|l| *l > 0)
                && message.size() > limit
            {
                let f = failure(
                    Stage::MailFrom,
                    FailureCause::MessageTooLarge {
                        size: message.size(),
                        limit,
                    },
                );
                for (i, _) in pending.drain(..) {
                    status[i] = Some(DeliveryStatus::Bounced(f.clone()));
                }
            }
        }

        if let Some(from) = from {
            while !pending.is_empty() {
                if self.state == State::NeedsReset {
                    self.reset().await;
                }
                if self.state == State::Broken {
                    let f = failure(Stage::MailFrom, FailureCause::ConnectionClosed);
                    for (i, _) in pending.drain(..) {
                        status[i] = Some(DeliveryStatus::Deferred(f.clone()));
                    }
                    break;
                }
                let take = pending.len().min(self.max_recipients);
                let batch: Vec<_> = pending.drain(..take).collect();
                let (retry, progress) = self.transaction(&from, batch, message, &mut status).await;
                if progress && self.state != State::Broken {
                    let mut next = retry;
                    next.append(&mut pending);
                    pending = next;
                }
            }
        }
        self.last_used = Instant::now();
        recipients
            .iter()
            .zip(status)
            .map(|(r, s)| RecipientOutcome {
                recipient: r.clone(),
                status: s.unwrap_or_else(|| {
                    DeliveryStatus::Deferred(failure(
                        Stage::MailFrom,
                        FailureCause::Protocol("recipient not processed".into()),
                    ))
                }),
            })
            .collect()
    }

    /// One MAIL/RCPT/DATA transaction. Fills `status` for every recipient of
    /// `rcpts`; returns the ones refused for "too many recipients" (to retry
    /// at once) and whether any recipient was accepted.
    async fn transaction(
        &mut self,
        from: &CheckedAddress,
        rcpts: Vec<(usize, CheckedAddress)>,
        message: &PreparedMessage,
        status: &mut [Option<DeliveryStatus>],
    ) -> (Vec<(usize, CheckedAddress)>, bool) {
        self.transactions += 1;
        let t = self.timeouts;
        let host = Some(self.host.clone());
        let failure = |stage: Stage, cause: FailureCause| Failure {
            stage,
            cause,
            host: host.clone(),
        };
        let utf8 = self.ext.smtputf8
            && (from.needs_smtputf8
                || rcpts.iter().any(|(_, a)| a.needs_smtputf8)
                || message.has_utf8_headers());
        let mut mail = format!("MAIL FROM:<{}>", from.path);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", message.size()));
        }
        if message.is_eight_bit() && self.ext.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }

        // Fails every recipient in `idx` with a copy of `f`.
        fn fail_all(
            status: &mut [Option<DeliveryStatus>],
            idx: impl Iterator<Item = usize>,
            f: &Failure,
            permanent: Option<bool>,
        ) {
            for i in idx {
                let s = match permanent {
                    Some(true) => DeliveryStatus::Bounced(f.clone()),
                    Some(false) => DeliveryStatus::Deferred(f.clone()),
                    None => DeliveryStatus::from_failure(f.clone()),
                };
                status[i] = Some(s);
            }
        }

        let all: Vec<usize> = rcpts.iter().map(|(i, _)| *i).collect();
        let mut rcpt_replies: Vec<Reply> = Vec::with_capacity(rcpts.len());
        let mail_reply;
        let mut data_reply: Option<Reply> = None;

        if self.ext.pipelining {
            self.write_command(&mail);
            for (_, a) in &rcpts {
                self.write_command(&format!("RCPT TO:<{}>", a.path));
            }
            self.write_command("DATA");
            if let Err(e) = self.flush(t.mail).await {
                self.state = State::Broken;
                fail_all(
                    status,
                    all.into_iter(),
                    &failure(Stage::MailFrom, e.into_cause()),
                    Some(false),
                );
                return (Vec::new(), false);
            }
            mail_reply = match self.read_reply(t.mail).await {
                Ok(r) => r,
                Err(e) => {
                    self.state = State::Broken;
                    fail_all(
                        status,
                        all.into_iter(),
                        &failure(Stage::MailFrom, e.into_cause()),
                        Some(false),
                    );
                    return (Vec::new(), false);
                }
            };
            for n in 0..rcpts.len() {
                match self.read_reply(t.rcpt).await {
                    Ok(r) => rcpt_replies.push(r),
                    Err(e) => {
                        self.state = State::Broken;
                        let f = failure(Stage::RcptTo, e.into_cause());
                        self.apply_rcpt_replies(&mail_reply, &rcpts, &rcpt_replies, status);
                        if !mail_reply.is_positive() {
                            // MAIL was refused (e.g. 421 and hang-up): that
                            // reply is the outcome for everyone.
                            return (Vec::new(), false);
                        }
                        // Recipients without a reply, and accepted ones, are deferred.
                        let undecided = rcpts.iter().enumerate().filter_map(|(k, (i, _))| {
                            if k >= n || rcpt_replies.get(k).is_some_and(Reply::is_positive) {
                                Some(*i)
                            } else {
                                None
                            }
                        });
                        fail_all(status, undecided, &f, Some(false));
                        return (Vec::new(), false);
                    }
                }
            }
            match self.read_reply(t.data_init).await {
                Ok(r) => data_reply = Some(r),
                Err(e) => {
                    self.state = State::Broken;
                    self.apply_rcpt_replies(&mail_reply, &rcpts, &rcpt_replies, status);
                    let accepted = accepted_indices(&mail_reply, &rcpts, &rcpt_replies);
                    fail_all(
                        status,
                        accepted.into_iter(),
                        &failure(Stage::Data, e.into_cause()),
                        Some(false),
                    );
                    return (Vec::new(), false);
                }
            }
        } else {
            self.write_command(&mail);
            mail_reply = match self.flush_and_read(t.mail).await {
                Ok(r) => r,
                Err(e) => {
                    self.state = State::Broken;
                    fail_all(
                        status,
                        all.into_iter(),
                        &failure(Stage::MailFrom, e.into_cause()),
                        Some(false),
                    );
                    return (Vec::new(), false);
                }
            };
            if mail_reply.is_positive() {
                for (n, (_, a)) in rcpts.iter().enumerate() {
                    self.write_command(&format!("RCPT TO:<{}>", a.path));
                    match self.flush_and_read(t.rcpt).await {
                        Ok(r) => rcpt_replies.push(r),
                        Err(e) => {
                            self.state = State::Broken;
                            self.apply_rcpt_replies(&mail_reply, &rcpts, &rcpt_replies, status);
                            let f = failure(Stage::RcptTo, e.into_cause());
                            let undecided = rcpts.iter().enumerate().filter_map(|(k, (i, _))| {
                                if k >= n || rcpt_replies.get(k).is_some_and(Reply::is_positive) {
                                    Some(*i)
                                } else {
                                    None
                                }
                            });
                            fail_all(status, undecided, &f, Some(false));
                            return (Vec::new(), false);
                        }
                    }
                }
                if rcpt_replies.iter().any(Reply::is_positive) {
                    self.write_command("DATA");
                    match self.flush_and_read(t.data_init).await {
                        Ok(r) => data_reply = Some(r),
                        Err(e) => {
                            self.state = State::Broken;
                            self.apply_rcpt_replies(&mail_reply, &rcpts, &rcpt_replies, status);
                            let accepted = accepted_indices(&mail_reply, &rcpts, &rcpt_replies);
                            fail_all(
                                status,
                                accepted.into_iter(),
                                &failure(Stage::Data, e.into_cause()),
                                Some(false),
                            );
                            return (Vec::new(), false);
                        }
                    }
                }
            }
        }

        if mail_reply.code == 421 || rcpt_replies.iter().any(|r| r.code == 421) {
            // The server announced it is closing the channel.
            self.state = State::Broken;
        }
        let retry = self.apply_rcpt_replies(&mail_reply, &rcpts, &rcpt_replies, status);
        let accepted = accepted_indices(&mail_reply, &rcpts, &rcpt_replies);
        let data_ok = data_reply.as_ref().is_some_and(|r| r.code == 354);

        if accepted.is_empty() {
            if data_ok {
                // RFC 2920 §3.1: DATA was accepted although no recipient was;
                // send an empty message to get out of the data phase.
                self.write_command(".");
                if self.flush_and_read(t.data_end).await.is_err() {
                    self.state = State::Broken;
                }
            }
            if self.state != State::Broken {
                self.state = State::NeedsReset;
            }
            return (Vec::new(), false);
        }
        let retry = retry.into_iter().map(|k| rcpts[k].clone()).collect();

        if !data_ok {
            let f = match data_reply {
                Some(r) => {
                    if r.code == 421 {
                        self.state = State::Broken;
                    }
                    failure(Stage::Data, FailureCause::Reply(r))
                }
                None => failure(Stage::Data, FailureCause::Protocol("no DATA reply".into())),
            };
            fail_all(status, accepted.into_iter(), &f, None);
            if self.state != State::Broken {
                self.state = State::NeedsReset;
            }
            return (retry, true);
        }

        // Message data.
        if let Err(e) = self.write_data(message.wire(), t.data_block).await {
            self.state = State::Broken;
            // The server may have said why before closing (e.g. "550 5.3.4
            // message too big" or "421 shutting down").
            let cause = match self
                .read_reply(Duration::from_secs(2).min(t.data_end))
                .await
            {
                Ok(r) if !r.is_positive() => FailureCause::Reply(r),
                _ => e.into_cause(),
            };
            let f = failure(Stage::DataEnd, cause);
            fail_all(status, accepted.into_iter(), &f, None);
            return (retry, true);
        }
        match self.read_reply(t.data_end).await {
            Ok(r) if r.is_positive() => {
                let tls = self.tls;
                for i in accepted {
                    status[i] = Some(DeliveryStatus::Delivered {
                        reply: r.clone(),
                        host: self.host.clone(),
                        tls,
                    });
                }
            }
            Ok(r) => {
                if r.code == 421 {
                    self.state = State::Broken;
                }
                let f = failure(Stage::DataEnd, FailureCause::Reply(r));
                fail_all(status, accepted.into_iter(), &f, None);
            }
            Err(e) => {
                // Timeout or close after the dot: the server may have taken
                // the message; deferring risks a duplicate, never a loss.
                self.state = State::Broken;
                let f = failure(Stage::DataEnd, e.into_cause());
                fail_all(status, accepted.into_iter(), &f, Some(false));
            }
        }
        (retry, true)
    }

    /// Records MAIL/RCPT refusals in `status`; returns the positions (in
    /// `rcpts`) refused with "452 too many recipients".
    fn apply_rcpt_replies(
        &self,
        mail_reply: &Reply,
        rcpts: &[(usize, CheckedAddress)],
        rcpt_replies: &[Reply],
        status: &mut [Option<DeliveryStatus>],
    ) -> Vec<usize> {
        let host = Some(self.host.clone());
        if !mail_reply.is_positive() {
            let f = Failure {
                stage: Stage::MailFrom,
                cause: FailureCause::Reply(mail_reply.clone()),
                host,
            };
            for (i, _) in rcpts {
                status[*i] = Some(DeliveryStatus::from_failure(f.clone()));
            }
            return Vec::new();
        }
        let mut retry = Vec::new();
        for (k, ((i, _), r)) in rcpts.iter().zip(rcpt_replies).enumerate() {
            if r.is_positive() {
                continue;
            }
            if is_too_many_recipients(r) {
                retry.push(k);
            }
            let f = Failure {
                stage: Stage::RcptTo,
                cause: FailureCause::Reply(r.clone()),
                host: host.clone(),
            };
            status[*i] = Some(DeliveryStatus::from_failure(f));
        }
        retry
    }

    /// RSET: abandons the current transaction. Marks the connection broken
    /// when the server does not answer 250.
    pub async fn reset(&mut self) {
        if self.state == State::Broken {
            return;
        }
        self.write_command("RSET");
        match self.flush_and_read(self.timeouts.command).await {
            Ok(r) if r.is_positive() => self.state = State::Ready,
            _ => self.state = State::Broken,
        }
    }

    /// NOOP: checks that an idle connection still answers.
    pub async fn noop(&mut self) -> bool {
        if self.state == State::Broken {
            return false;
        }
        self.write_command("NOOP");
        match self.flush_and_read(self.timeouts.command).await {
            Ok(r) if r.is_positive() => {
                self.last_used = Instant::now();
                true
            }
            _ => {
                self.state = State::Broken;
                false
            }
        }
    }

    /// QUIT and close. Errors are ignored: the connection is over either way.
    pub async fn quit(mut self) {
        self.quit_quietly().await;
    }

    async fn quit_quietly(&mut self) {
        if self.state != State::Broken {
            self.write_command("QUIT");
            let _ = self.flush_and_read(self.timeouts.quit).await;
        }
        self.state = State::Broken;
        let _ = tokio::time::timeout(self.timeouts.quit, self.io.shutdown()).await;
        self.io = Io::Closed;
    }

    // ---- low-level I/O ----

    fn write_command(&mut self, line: &str) {
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self, limit: Duration) -> Result<(), IoFailure> {
        let buf = std::mem::take(&mut self.wbuf);
        let res = tokio::time::timeout(limit, async {
            self.io.write_all(&buf).await?;
            self.io.flush().await
        })
        .await;
        self.wbuf = buf;
        self.wbuf.clear();
        match res {
            Err(_) => Err(IoFailure::Timeout),
            Ok(Err(e)) => Err(IoFailure::from_io(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn flush_and_read(&mut self, limit: Duration) -> Result<Reply, IoFailure> {
        self.flush(limit).await?;
        self.read_reply(limit).await
    }

    async fn write_data(&mut self, data: &[u8], per_chunk: Duration) -> Result<(), IoFailure> {
        for chunk in data.chunks(WRITE_CHUNK) {
            match tokio::time::timeout(per_chunk, self.io.write_all(chunk)).await {
                Err(_) => return Err(IoFailure::Timeout),
                Ok(Err(e)) => return Err(IoFailure::from_io(&e)),
                Ok(Ok(())) => {}
            }
        }
        match tokio::time::timeout(per_chunk, self.io.flush()).await {
            Err(_) => Err(IoFailure::Timeout),
            Ok(Err(e)) => Err(IoFailure::from_io(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, limit: Duration) -> Result<Reply, IoFailure> {
        match tokio::time::timeout(limit, self.read_reply_inner()).await {
            Err(_) => Err(IoFailure::Timeout),
            Ok(r) => r,
        }
    }

    async fn read_reply_inner(&mut self) -> Result<Reply, IoFailure> {
        let mut parser = ReplyParser::new();
        loop {
            // Complete lines already buffered.
            while let Some(nl) = self.rbuf[self.rpos..].iter().position(|&b| b == b'\n') {
                let start = self.rpos;
                let mut end = start + nl;
                self.rpos = end + 1;
                if end > start && self.rbuf[end - 1] == b'\r' {
                    end -= 1;
                }
                if end - start > MAX_REPLY_LINE {
                    return Err(IoFailure::Protocol("reply line too long".into()));
                }
                if let Some(reply) = parser.feed(&self.rbuf[start..end])? {
                    if self.rpos == self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                    }
                    return Ok(reply);
                }
            }
            if self.rbuf.len() - self.rpos > MAX_REPLY_LINE {
                let tail = &self.rbuf[self.rpos..self.rpos + 60];
                return Err(IoFailure::Protocol(format!(
                    "reply line too long: {}",
                    printable(tail)
                )));
            }
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            self.rbuf.reserve(4096);
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(IoFailure::Closed),
                Ok(_) => {}
                Err(e) => return Err(IoFailure::from_io(&e)),
            }
        }
    }
}

fn accepted_indices(
    mail_reply: &Reply,
    rcpts: &[(usize, CheckedAddress)],
    rcpt_replies: &[Reply],
) -> Vec<usize> {
    if !mail_reply.is_positive() {
        return Vec::new();
    }
    rcpts
        .iter()
        .zip(rcpt_replies)
        .filter(|(_, r)| r.is_positive())
        .map(|((i, _), _)| *i)
        .collect()
}

fn is_too_many_recipients(r: &Reply) -> bool {
    r.code == 452
        && (r.enhanced.is_some_and(|e| e.subject == 5 && e.detail == 3)
            || r.contains_ci("too many recipients"))
}

fn auth_result(reply: Reply) -> Result<(), FailureCause> {
    if reply.code == 235 || reply.is_positive() {
        Ok(())
    } else {
        Err(FailureCause::Auth(reply.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(lines: &[&str]) -> Reply {
        let mut p = ReplyParser::new();
        let mut out = None;
        for l in lines {
            out = p.feed(l.as_bytes()).unwrap();
        }
        out.unwrap()
    }

    #[test]
    fn parses_extensions() {
        let r = reply(&[
            "250-mx.example.com at your service",
            "250-SIZE 35882577",
            "250-8BITMIME",
            "250-STARTTLS",
            "250-ENHANCEDSTATUSCODES",
            "250-PIPELINING",
            "250-AUTH=LOGIN",
            "250-auth plain login cram-md5",
            "250 SMTPUTF8",
        ]);
        let e = Extensions::parse(&r);
        assert!(e.esmtp && e.pipelining && e.eight_bit_mime && e.starttls && e.smtputf8);
        assert!(e.enhanced_status_codes);
        assert_eq!(e.size, Some(35_882_577));
        assert_eq!(e.auth, vec!["LOGIN", "PLAIN", "CRAM-MD5"]);
        let e = Extensions::parse(&reply(&["250-x", "250 SIZE"]));
        assert_eq!(e.size, Some(0));
    }

    #[test]
    fn too_many_recipients() {
        assert!(is_too_many_recipients(&Reply::new(
            452,
            "4.5.3 Too many recipients"
        )));
        assert!(is_too_many_recipients(&Reply::new(
            452,
            "Too many recipients received this hour"
        )));
        assert!(!is_too_many_recipients(&Reply::new(
            452,
            "4.2.2 Mailbox full"
        )));
    }

    #[test]
    fn helo_name_is_checked() {
        assert!(ClientConfig::new("mail.example.com").is_ok());
        assert!(ClientConfig::new("bad name").is_err());
        assert!(ClientConfig::new("x\r\nMAIL FROM:<a@b>").is_err());
        assert!(ClientConfig::new("").is_err());
    }
}
