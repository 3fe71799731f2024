//! The CRM's plain records: leads, accounts (companies), opportunities, activities and the
//! training records on contacts. No I/O; the store keeps them as JSON, so fields can be added.

use crate::model::{Consent, Id};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The kinds of CRM record, as they appear in record ids (`lead:5`) and index keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Lead,
    Account,
    Opportunity,
    Activity,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Account => "account",
            Kind::Opportunity => "opportunity",
            Kind::Activity => "activity",
        }
    }
    /// The plural the API and messages use.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Lead => "leads",
            Kind::Account => "accounts",
            Kind::Opportunity => "opportunities",
            Kind::Activity => "activities",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    New,
    Contacted,
    Qualified,
    Disqualified,
    Converted,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 5] = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Disqualified,
        LeadStatus::Converted,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Contacted => "contacted",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Disqualified => "disqualified",
            LeadStatus::Converted => "converted",
        }
    }
}

impl std::str::FromStr for LeadStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeadStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown lead status '{s}' (new, contacted, qualified, disqualified, converted)"
                )
            })
    }
}

/// A person who may become a customer, with the company they came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lead {
    pub id: Id,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub job_title: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub website: String,
    #[serde(default)]
    pub industry: String,
    #[serde(default)]
    pub company_size: String,
    #[serde(default)]
    pub country: String,
    /// Where the lead came from (form, import, event, referral, ...).
    #[serde(default)]
    pub source: String,
    pub status: LeadStatus,
    #[serde(default)]
    pub score: i64,
    /// Points set by hand: a score written through the API is kept as its difference from
    /// the rules' score, so the lead still moves with the rules and its engagement.
    #[serde(default)]
    pub score_adjustment: i64,
    /// The user the lead is assigned to; `None` is unassigned.
    #[serde(default)]
    pub assigned_to: Option<Id>,
    #[serde(default)]
    pub consents: Vec<Consent>,
    #[serde(default)]
    pub converted_contact_id: Option<Id>,
    #[serde(default)]
    pub converted_account_id: Option<Id>,
    #[serde(default)]
    pub converted_opportunity_id: Option<Id>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub converted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

impl Lead {
    /// A new lead with nothing filled in: status new, unassigned, created now.
    pub fn blank() -> Lead {
        let t = crate::model::now();
        Lead {
            id: 0,
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            phone: String::new(),
            job_title: String::new(),
            company: String::new(),
            website: String::new(),
            industry: String::new(),
            company_size: String::new(),
            country: String::new(),
            source: String::new(),
            status: LeadStatus::New,
            score: 0,
            score_adjustment: 0,
            assigned_to: None,
            consents: Vec::new(),
            converted_contact_id: None,
            converted_account_id: None,
            converted_opportunity_id: None,
            converted_at: None,
            created_at: t,
            updated_at: t,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub country: String,
}

/// A company: a customer, prospect or partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    pub id: Id,
    pub name: String,
    /// Lower-case internet domain (`example.com`), used to match leads' email addresses.
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub industry: String,
    /// Head count band, e.g. `51-200`.
    #[serde(default)]
    pub size: String,
    #[serde(default)]
    pub address: Address,
    #[serde(default)]
    pub parent_id: Option<Id>,
    #[serde(default)]
    pub owner_id: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

/// A possible sale of a programme or certification to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Opportunity {
    pub id: Id,
    pub name: String,
    #[serde(default)]
    pub account_id: Option<Id>,
    /// The primary contact.
    #[serde(default)]
    pub contact_id: Option<Id>,
    /// The training programme or certification sold.
    #[serde(default)]
    pub programme: String,
    /// Decimal amount in `currency` ("1250.00"); `null` in the views of roles that may not
    /// see amounts.
    #[serde(default)]
    pub amount: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    pub stage: String,
    /// The stage's probability (percent) when the stage was set.
    pub probability: u8,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub expected_close: Option<String>,
    #[serde(default)]
    pub owner_id: Option<Id>,
    #[serde(default)]
    pub lost_reason: String,
    /// The lead this opportunity was converted from.
    #[serde(default)]
    pub lead_id: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Call,
    Meeting,
    Email,
    Note,
    Task,
}

impl ActivityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Email => "email",
            ActivityKind::Note => "note",
            ActivityKind::Task => "task",
        }
    }
}

/// A call, meeting, email, note or task, linked to a lead, contact, account or opportunity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Activity {
    pub id: Id,
    pub kind: ActivityKind,
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// The record it belongs to: `lead:5`, `contact:7`, `account:2`, `opportunity:9`.
    #[serde(default)]
    pub record: Option<String>,
    /// Tasks: `YYYY-MM-DD`.
    #[serde(default)]
    pub due: Option<String>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub owner_id: Option<Id>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
}

/// A pipeline stage and the probability of winning an opportunity in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stage {
    pub name: String,
    pub probability: u8,
}

pub fn default_stages() -> Vec<Stage> {
    [
        ("prospecting", 10),
        ("qualification", 20),
        ("proposal", 50),
        ("negotiation", 80),
        ("won", 100),
        ("lost", 0),
    ]
    .into_iter()
    .map(|(name, probability)| Stage {
        name: name.into(),
        probability,
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentStatus {
    Enrolled,
    InProgress,
    Completed,
    Cancelled,
    Failed,
}

/// A contact's place on a training programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrolment {
    pub id: Id,
    pub contact_id: Id,
    pub programme: String,
    /// `YYYY-MM-DD`.
    pub start: String,
    #[serde(default)]
    pub end: Option<String>,
    pub status: EnrolmentStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

/// A certification a contact holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Certification {
    pub id: Id,
    pub contact_id: Id,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub issued: String,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}
