//! Plain domain records shared by the store, the search index and the services.
//! Nothing here knows about HTTP, redb or tantivy.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub type Id = u64;

/// Current time, truncated to whole microseconds so that values round-trip through RFC 3339.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Sales,
    Marketing,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Manager,
        Role::Sales,
        Role::Marketing,
        Role::Viewer,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Sales => "sales",
            Role::Marketing => "marketing",
            Role::Viewer => "viewer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown role '{s}' (expected one of admin, manager, sales, marketing, viewer)"
                )
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MembershipStatus {
    Unconfirmed,
    Confirmed,
    Unsubscribed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Membership {
    pub list_id: Id,
    pub status: MembershipStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consent {
    pub purpose: String,
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    #[serde(default)]
    pub ip: Option<String>,
    /// The wording the person agreed to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wording: Option<String>,
    /// A withdrawal of consent (an unsubscribe), not a grant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    pub id: Id,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub lists: Vec<Membership>,
    #[serde(default)]
    pub consents: Vec<Consent>,
    #[serde(default)]
    pub owner_id: Option<Id>,
    /// The CRM account (company) the contact belongs to.
    #[serde(default)]
    pub account_id: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
    /// Store change sequence of the last write; the search index follows it.
    #[serde(default, skip_serializing)]
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptIn {
    Single,
    Double,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailingList {
    pub id: Id,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub opt_in: OptIn,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub email: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The team the user belongs to: a manager with a team sees the team's CRM records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: Id,
    pub user_id: Id,
    pub name: String,
    /// SHA-256 of the token; the token itself is shown once and never stored.
    pub hash: [u8; 32],
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Id,
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Conversion,
    Login,
    LoginFailed,
    Logout,
    Export,
    Erase,
    Permission,
    Setting,
    Suppress,
    Unsuppress,
    TokenCreate,
    TokenRevoke,
    Import,
    /// Personal data in earlier entries was replaced by keyed hashes (erasure).
    Redact,
}

impl AuditAction {
    pub const ALL: [AuditAction; 17] = [
        AuditAction::Create,
        AuditAction::Update,
        AuditAction::Delete,
        AuditAction::Conversion,
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::Logout,
        AuditAction::Export,
        AuditAction::Erase,
        AuditAction::Permission,
        AuditAction::Setting,
        AuditAction::Suppress,
        AuditAction::Unsuppress,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::Import,
        AuditAction::Redact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Conversion => "conversion",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::Export => "export",
            AuditAction::Erase => "erase",
            AuditAction::Permission => "permission",
            AuditAction::Setting => "setting",
            AuditAction::Suppress => "suppress",
            AuditAction::Unsuppress => "unsuppress",
            AuditAction::TokenCreate => "token_create",
            AuditAction::TokenRevoke => "token_revoke",
            AuditAction::Import => "import",
            AuditAction::Redact => "redact",
        }
    }
}

/// One field's value before and after an audited change. `digest` commits to the field name,
/// both values and `salt`; erasure replaces the values with keyed hashes and drops the salt,
/// leaving the digest (and so the chain) intact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default)]
    pub digest: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// An entry of the append-only, hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    /// "user:<id>", "cli", "system" or "anonymous".
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub action: AuditAction,
    /// "<kind>:<id>", e.g. "contact:42", "user:3", "suppression:ann@example.com".
    pub record: String,
    /// For record ids holding personal data (suppressions are keyed by address): the hash
    /// covers `record_digest = H(record, record_salt)` instead of the id, so erasure can
    /// replace the id by a keyed hash and drop the salt while the chain still verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_digest: Option<String>,
    /// A short note without personal data (counts, filters, outcome).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Changed fields only; secrets never appear.
    #[serde(default)]
    pub changes: BTreeMap<String, FieldChange>,
    pub changes_digest: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    Upsert,
    Create,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportRowError {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportJob {
    pub id: Id,
    pub status: ImportStatus,
    pub mode: ImportMode,
    pub list_id: Option<Id>,
    pub user_id: Option<Id>,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub errors: Vec<ImportRowError>,
    /// Errors beyond the first [`MAX_IMPORT_ERRORS`] are only counted.
    pub error_count: u64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
}

pub const MAX_IMPORT_ERRORS: usize = 1000;

impl ImportJob {
    /// A job that is about to run.
    pub fn new(mode: ImportMode, list_id: Option<Id>, user_id: Option<Id>) -> ImportJob {
        ImportJob {
            id: 0,
            status: ImportStatus::Running,
            mode,
            list_id,
            user_id,
            processed: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            errors: Vec::new(),
            error_count: 0,
            message: None,
            created_at: now(),
            finished_at: None,
        }
    }

    /// Records how the run ended: done, or failed with a message for the person.
    pub fn finish(&mut self, result: Result<(), String>) {
        self.finished_at = Some(now());
        match result {
            Ok(()) => self.status = ImportStatus::Done,
            Err(m) => {
                self.status = ImportStatus::Failed;
                self.message = Some(m);
            }
        }
    }
}

/// Lower-cases and trims an address and checks its shape (RFC 5321 limits, no spaces or
/// control characters, one `@`, a dotted domain). Returns a message a person understands.
pub fn normalise_email(raw: &str) -> Result<String, String> {
    let e = raw.trim();
    if e.is_empty() {
        return Err("email is required".into());
    }
    if e.len() > 254 {
        return Err("email is longer than 254 characters".into());
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{}' is not a valid email address: it contains spaces or control characters",
            e.escape_default()
        ));
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Err(format!("'{e}' is not a valid email address: it has no '@'"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(format!(
            "'{e}' is not a valid email address: the part before '@' must be 1 to 64 characters"
        ));
    }
    if local.contains('@')
        || local.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"'])
    {
        return Err(format!(
            "'{e}' is not a valid email address: the part before '@' has characters that are not allowed"
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(format!(
            "'{e}' is not a valid email address: misplaced dot before '@'"
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(format!(
            "'{e}' is not a valid email address: '{domain}' is not a valid domain"
        ));
    }
    Ok(e.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ann.Lee@Example.COM ").unwrap(),
            "ann.lee@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a b@x.com",
            "ann@x",
            "ann@-x.com",
            "a..b@x.com",
            "a\r\n@x.com",
            "ann@x..com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@x.com", "a".repeat(65));
        assert!(normalise_email(&long_local).is_err());
    }

    #[test]
    fn roles_parse() {
        assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}

// ---- outbound mail (the delivery queue) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Queued,
    Sending,
    Sent,
    Deferred,
    Bounced,
    Failed,
}

impl DeliveryState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Sent | DeliveryState::Bounced | DeliveryState::Failed
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Bounced => "bounced",
            DeliveryState::Failed => "failed",
        }
    }
}

/// An accepted outbound message: the envelope and where it came from. The signed bytes are
/// stored beside it until every recipient reached a final state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutMessage {
    pub id: Id,
    /// The Message-ID header value (without angle brackets).
    pub message_id: String,
    pub from: String,
    pub subject: String,
    /// "tx" for the transactional API; campaign sends name their campaign.
    pub source: String,
    pub size: u64,
    pub recipients: u32,
    /// The user (or token owner) who submitted it.
    #[serde(default)]
    pub submitted_by: Option<Id>,
    /// Recipients left out because they are on the suppression list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
impl OutMessage {
    /// A transactional message as unit tests enqueue it.
    pub(crate) fn for_tests() -> OutMessage {
        OutMessage {
            id: 0,
            message_id: "m@x".into(),
            from: "a@x.test".into(),
            subject: "s".into(),
            source: "tx".into(),
            size: 0,
            recipients: 0,
            submitted_by: None,
            suppressed: Vec::new(),
            created_at: now(),
        }
    }
}

/// One step in a recipient's delivery history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryEvent {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx: Option<String>,
}

/// A recipient of an outbound message and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub message: Id,
    pub index: u32,
    pub recipient: String,
    pub domain: String,
    pub state: DeliveryState,
    pub attempts: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub next_attempt: Option<OffsetDateTime>,
    /// The receiving site (MX set) once known, for per-site statistics.
    #[serde(default)]
    pub site: Option<String>,
    /// A policy (5.7.x) rejection: the sender's problem, never held against the address.
    #[serde(default)]
    pub policy: bool,
    pub events: Vec<DeliveryEvent>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

// ---- feedback: suppressions and what bounces/complaints said ----

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// A permanent failure: the mailbox or domain does not exist.
    HardBounce,
    /// Too many temporary failures within the configured window.
    SoftBounces,
    /// The recipient reported a message as spam.
    Complaint,
    /// The recipient unsubscribed from everything.
    Unsubscribed,
    /// Added by a person (console, API or import).
    Manual,
    /// The person's data was erased; only a keyed hash of the address is kept.
    Erased,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::SoftBounces => "soft_bounces",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::Manual => "manual",
            SuppressionReason::Erased => "erased",
        }
    }
}

impl std::str::FromStr for SuppressionReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "hard_bounce" => SuppressionReason::HardBounce,
            "soft_bounces" => SuppressionReason::SoftBounces,
            "complaint" => SuppressionReason::Complaint,
            "unsubscribed" => SuppressionReason::Unsubscribed,
            "manual" => SuppressionReason::Manual,
            "erased" => SuppressionReason::Erased,
            other => {
                return Err(format!(
                    "unknown suppression reason '{other}' (hard_bounce, soft_bounces, complaint, unsubscribed, manual, erased)"
                ));
            }
        })
    }
}

/// An address that no send may reach. Keyed by the normalised address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    pub email: String,
    pub reason: SuppressionReason,
    /// Where the decision came from: "smtp", "bounce-listener", "mailbox", "webhook:ses", "api" …
    pub source: String,
    /// A person-readable detail: the bounce diagnostic, the complaint's feedback type, a note.
    #[serde(default)]
    pub detail: String,
    /// The user who added it by hand.
    #[serde(default)]
    pub added_by: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

/// What kind of feedback an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackType {
    Bounce,
    Complaint,
    AutoReply,
    Delivered,
}

impl FeedbackType {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackType::Bounce => "bounce",
            FeedbackType::Complaint => "complaint",
            FeedbackType::AutoReply => "auto_reply",
            FeedbackType::Delivered => "delivered",
        }
    }
}

/// What Mailstead did about a feedback event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackAction {
    /// The address was put on the suppression list.
    Suppressed,
    /// A complaint: unsubscribed from every list and suppressed.
    Unsubscribed,
    /// A temporary failure, counted towards the soft-bounce threshold.
    Counted,
    /// A policy (5.7.x) rejection: the sender's problem, not held against the address.
    SenderProblem,
    /// Nothing to do (a delivery report, an auto-reply, an already suppressed address).
    Recorded,
}

/// One piece of feedback about one recipient, as recorded (visible on the contact, in the
/// suppression list and in reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackRecord {
    pub id: Id,
    pub email: String,
    pub kind: FeedbackType,
    /// Enhanced status code (e.g. "5.1.1"), empty when unknown.
    #[serde(default)]
    pub status: String,
    /// SMTP reply code (e.g. "550"), empty when unknown.
    #[serde(default)]
    pub reply_code: String,
    /// Reason in the Sisimai vocabulary.
    pub reason: String,
    pub hard: bool,
    /// ARF feedback type for complaints ("abuse", "fraud" …).
    #[serde(default)]
    pub feedback_type: String,
    #[serde(default)]
    pub diagnostic: String,
    /// Where it came from: "smtp", "bounce-listener", "mailbox", "webhook:sendgrid" …
    pub source: String,
    /// The outbound message it is about, when known (VERP or Message-ID).
    #[serde(default)]
    pub message: Option<Id>,
    /// The campaign (or "tx") of that message, when known.
    #[serde(default)]
    pub campaign: Option<String>,
    pub action: FeedbackAction,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
}

// ---- events for integrators (outgoing webhooks) ----

/// The kinds of event integrators can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.delivered")]
    MessageDelivered,
    #[serde(rename = "message.deferred")]
    MessageDeferred,
    #[serde(rename = "message.bounced")]
    MessageBounced,
    #[serde(rename = "message.complained")]
    MessageComplained,
    #[serde(rename = "message.opened")]
    MessageOpened,
    #[serde(rename = "message.clicked")]
    MessageClicked,
    #[serde(rename = "contact.unsubscribed")]
    ContactUnsubscribed,
    #[serde(rename = "contact.created")]
    ContactCreated,
    #[serde(rename = "contact.updated")]
    ContactUpdated,
    #[serde(rename = "lead.converted")]
    LeadConverted,
    #[serde(rename = "opportunity.stage_changed")]
    OpportunityStageChanged,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::MessageSent,
        EventType::MessageDelivered,
        EventType::MessageDeferred,
        EventType::MessageBounced,
        EventType::MessageComplained,
        EventType::MessageOpened,
        EventType::MessageClicked,
        EventType::ContactUnsubscribed,
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::LeadConverted,
        EventType::OpportunityStageChanged,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageSent => "message.sent",
            EventType::MessageDelivered => "message.delivered",
            EventType::MessageDeferred => "message.deferred",
            EventType::MessageBounced => "message.bounced",
            EventType::MessageComplained => "message.complained",
            EventType::MessageOpened => "message.opened",
            EventType::MessageClicked => "message.clicked",
            EventType::ContactUnsubscribed => "contact.unsubscribed",
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
            EventType::LeadConverted => "lead.converted",
            EventType::OpportunityStageChanged => "opportunity.stage_changed",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown event type '{s}' (one of: {})", names.join(", "))
            })
    }
}

/// Something that happened, recorded in the same transaction as the change itself so that
/// integrators never miss an event nor hear of one that was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: Id,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

// ---- outgoing webhook subscriptions ----

/// A subscription's signing secret. Stored (the dispatcher signs with it) but never printed:
/// Debug is redacted and API views leave it out; it is shown once, at creation or rotation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Active,
    Disabled,
}

/// An integrator's endpoint and the event types it wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    pub id: Id,
    pub url: String,
    pub description: String,
    pub events: Vec<EventType>,
    pub secret: WebhookSecret,
    pub status: WebhookStatus,
    /// Disabled by the dispatcher after too many consecutive failures (not by a person).
    #[serde(default)]
    pub auto_disabled: bool,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Events up to this id happened before the subscription existed and are not sent to it.
    pub after_event: Id,
    pub created_by: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl WebhookSubscription {
    /// A new, active subscription (the store assigns `id` and `after_event`).
    pub fn new(
        url: String,
        description: String,
        events: Vec<EventType>,
        secret: WebhookSecret,
        created_by: Option<Id>,
    ) -> WebhookSubscription {
        WebhookSubscription {
            id: 0,
            url,
            description,
            events,
            secret,
            status: WebhookStatus::Active,
            auto_disabled: false,
            consecutive_failures: 0,
            last_error: None,
            last_attempt_at: None,
            last_success_at: None,
            disabled_at: None,
            after_event: 0,
            created_by,
            created_at: now(),
        }
    }

    pub fn wants(&self, kind: EventType) -> bool {
        self.status == WebhookStatus::Active && self.events.contains(&kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookDeliveryState {
    /// Waiting for its (next) attempt, or being attempted.
    Pending,
    Delivered,
    /// Gave up: too old.
    Failed,
    /// Dropped unsent: the subscription was deleted or disabled.
    Discarded,
}

/// One event (or ping) to send to one subscription: the durable outbox entry. The body is
/// fixed when the entry is created, so every attempt sends the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: Id,
    pub subscription_id: Id,
    /// `None` for a test ping.
    pub event_id: Option<Id>,
    /// The event type, or "ping".
    pub event_type: String,
    pub body: String,
    pub state: WebhookDeliveryState,
    pub attempts: u32,
    /// Key of its entry in the due index (unix milliseconds), while pending.
    pub due_ms: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// One HTTP attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAttempt {
    pub id: Id,
    pub subscription_id: Id,
    pub delivery_id: Id,
    pub event_id: Option<Id>,
    pub event_type: String,
    /// 1 for the first attempt of a delivery.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    pub duration_ms: u64,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What went wrong (connection, TLS, timeout, refused target, non-2xx status).
    pub error: Option<String>,
    /// The start of the response body (at most 1 KiB).
    pub response: String,
    pub ok: bool,
    /// When the next attempt is due, if one is planned.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub next_attempt_at: Option<OffsetDateTime>,
}

// ---- campaigns ----

/// A template kept in the store (written in the console or through the API, or copied from
/// the library). `source` is the template file format of `templates/`: front matter optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredTemplate {
    pub id: Id,
    pub name: String,
    /// The MJML body (`mj-section`s placed inside the brand layout).
    pub mjml: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub preheader: String,
    /// The library template it was copied from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_id: Option<String>,
    #[serde(default)]
    pub created_by: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

/// A saved segment: a named filter over contacts (see `crate::segments` for the language),
/// usable as a campaign audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: Id,
    pub name: String,
    pub filter: String,
    /// The user who created it (None: the command line).
    pub created_by: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Sending,
    Paused,
    Finished,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Finished => "finished",
            CampaignStatus::Cancelled => "cancelled",
        }
    }
}

/// Whom a campaign goes to: members of lists (confirmed, not unsubscribed), a saved
/// segment, or the recipients of an earlier campaign who did not open it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_openers_of: Option<Id>,
}

/// An A/B test of subject lines: `sample_percent` of the audience is split between the
/// subjects; after `wait_minutes` the subject with the most unique opens (or clicks) goes
/// to the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbTest {
    pub subjects: Vec<String>,
    pub sample_percent: u8,
    pub wait_minutes: u32,
    #[serde(default = "default_ab_metric")]
    pub metric: String,
    /// Index into `subjects` once chosen.
    #[serde(default)]
    pub winner: Option<usize>,
    /// When the sample finished queueing (the wait starts then).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub sample_done_at: Option<OffsetDateTime>,
}

fn default_ab_metric() -> String {
    "opens".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: Id,
    pub name: String,
    pub subject: String,
    #[serde(default)]
    pub preheader: String,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub template_id: Id,
    pub audience: Audience,
    pub status: CampaignStatus,
    #[serde(default = "yes")]
    pub track_opens: bool,
    #[serde(default = "yes")]
    pub track_clicks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_test: Option<AbTest>,
    /// Send at this local time ("HH:MM") in each recipient's time zone (contact attribute
    /// `timezone`, an IANA name such as "Europe/Berlin"; UTC without a valid one) on the day
    /// of `scheduled_at` (or of the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<OffsetDateTime>,
    /// Recipients in the audience snapshot taken at start.
    #[serde(default)]
    pub audience_size: u64,
    /// Position in the snapshot up to which every recipient has been queued or skipped.
    #[serde(default)]
    pub cursor: u64,
    #[serde(default)]
    pub queued: u64,
    /// Left out at send time (suppressed, unsubscribed, deleted).
    #[serde(default)]
    pub skipped: u64,
    /// Why a scheduled start or a batch failed, until it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub created_by: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

fn yes() -> bool {
    true
}

/// An open or click seen by the tracking endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackEvent {
    pub campaign_id: Id,
    pub message: Id,
    /// "open" or "click".
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who fetched it when not a person: "apple_mpp" (Mail Privacy Protection preloads
    /// every image), "prefetch" (a client without a user agent), "scanner" (link checkers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// An image proxy that fetches when the person opens ("gmail_proxy", "yahoo_proxy"):
    /// still a person's open, but without their address or device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
}

/// What happened between a campaign message and a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngagementKind {
    Sent,
    Open,
    Click,
}

/// A contact's engagement with campaign mail: last times and counts. `seq` is the entry of
/// the engagement change log that names this row (the segment cache follows that log).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Engagement {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_sent: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_open: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_click: Option<OffsetDateTime>,
    #[serde(default)]
    pub sends: u64,
    #[serde(default)]
    pub opens: u64,
    #[serde(default)]
    pub clicks: u64,
    #[serde(default)]
    pub seq: u64,
}
