//! The delivery engine core: MX resolution, an SMTP client built for bulk
//! delivery, DKIM signing, traffic shaping and VERP return paths.
//!
//! Nothing here touches the store or HTTP; the queue worker drives it:
//!
//! ```text
//! let signed = signer.sign(&raw_message)?;                 // dkim::Signer
//! let message = PreparedMessage::new(&signed);              // once per message
//! let from = verp.return_path(message_id, recipient_index); // verp::Verp
//! let outcomes = engine
//!     .deliver(&DeliveryJob { mail_from: &from, recipients: &rcpts, message: &message })
//!     .await;                                               // one per recipient
//! // Delivered → done; Bounced → bounce handling (suppress only if
//! // failure.suggests_suppression()); Deferred → retry after
//! // RetryPolicy::next_delay(attempts, age) or at the SiteOnHold time.
//! ```
//!
//! Lower-level pieces are public too: [`engine::Engine::route`] (DNS →
//! targets and site), [`engine::Engine::checkout`] / [`engine::Engine::checkin`]
//! (connection reuse within shaping limits) and
//! [`smtp::SmtpConnection::send`] (one transaction, per-recipient results).
//!
//! Invariants: no network traffic before envelope checks pass; no DNS error
//! ever falls back to A records; connection-level failures never bounce;
//! x.7.x (policy) replies never suggest suppressing an address; keys and
//! passwords never appear in `Debug` output.

pub mod dkim;
pub mod engine;
pub mod mx;
pub mod outcome;
pub mod shaping;
pub mod smtp;
pub mod verp;

pub use dkim::{DkimError, Signer};
pub use engine::{DeliveryJob, Engine, EngineConfig, Lease, Route};
pub use mx::{DnsError, Resolver, SiteKeySource, Target, site_key, site_key_for_host};
pub use outcome::{DeliveryStatus, Failure, FailureCause, RecipientOutcome, Stage};
pub use shaping::{RetryPolicy, Shaper, ShapingConfig};
pub use smtp::message::PreparedMessage;
pub use smtp::relay::{Credentials, RelayConfig, RelayUrlError};
pub use smtp::reply::{EnhancedStatus, Reply};
pub use smtp::tls::TlsPolicy;
pub use smtp::{ClientConfig, ConnectError, ConnectOptions, SmtpConnection, Timeouts};
pub use verp::{Verp, VerpError};

/// Errors building the delivery components.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// SMTP client configuration (HELO name, TLS).
    #[error(transparent)]
    Client(#[from] smtp::ClientConfigError),
    /// Shaping configuration.
    #[error(transparent)]
    Shaping(#[from] shaping::ShapingConfigError),
    /// Resolver construction or DNS.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// DKIM keys or signing.
    #[error(transparent)]
    Dkim(#[from] DkimError),
    /// VERP key or domain.
    #[error(transparent)]
    Verp(#[from] VerpError),
    /// Relay URL.
    #[error(transparent)]
    Relay(#[from] RelayUrlError),
}
