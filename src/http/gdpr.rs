//! `/api/v1/contacts/{id}/export`, `/erase` and `/consents`: the data-subject rights.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, blocking};
use crate::gdpr::{ConsentHistory, ConsentInput, Erasure, GdprError};
use crate::model::Id;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

impl From<GdprError> for ApiError {
    fn from(e: GdprError) -> Self {
        match e {
            GdprError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            GdprError::NotFound(what) => ApiError::not_found(what),
            GdprError::Denied(d) => d.into(),
            GdprError::Store(e) => ApiError::internal(e),
            GdprError::Search(e) => ApiError::internal(e),
        }
    }
}

/// Everything held about the contact as one JSON file (GDPR Art. 20): the record, list
/// memberships, consents with proof, messages sent and their delivery history, feedback,
/// suppression, events, webhook deliveries and the audit entries about the record. Whoever
/// may read the contact may export it; the export is recorded in the audit trail.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/export", tag = "gdpr",
    responses((status = 200, body = crate::gdpr::Export, content_type = "application/json"), (status = 404, body = super::error::ErrorBody)))]
pub async fn export(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Response, ApiError> {
    let export = blocking(move || app.gdpr.export(&actor, id)).await?;
    json_file(&export, &format!("contact-{id}-export.json"))
}

/// Erases the contact and every trace of its address (GDPR Art. 17): record, memberships,
/// search index, delivery log and queue (waiting deliveries are cancelled), message bodies,
/// feedback, events, webhook payloads and the personal values in the audit trail. The address
/// stays suppressed as a keyed hash. Admins and managers only. Repeating it is harmless.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "gdpr",
    responses((status = 200, body = Erasure), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn erase(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Erasure>, ApiError> {
    Ok(Json(blocking(move || app.gdpr.erase(&actor, id)).await?))
}

/// Everything held about a lead's person as one JSON file (GDPR Art. 20): the contact's
/// export when the person is a contact the caller may read (the lead is in it under
/// `other.crm_leads`), otherwise the lead, its activities and what is held about its address,
/// with `contact: null`. Whoever may read the lead may export it; audited.
#[utoipa::path(get, path = "/api/v1/leads/{id}/export", tag = "gdpr",
    responses((status = 200, body = crate::gdpr::Export, content_type = "application/json"), (status = 404, body = super::error::ErrorBody)))]
pub async fn export_lead(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Response, ApiError> {
    let export =
        blocking(move || crate::crm::personal::export_lead(&app.crm, &app.gdpr, &actor, id))
            .await?;
    json_file(&export, &format!("lead-{id}-export.json"))
}

/// Erases a lead's person (GDPR Art. 17): the contact with the lead's address and all about
/// it when there is one, otherwise every trace of the address, the lead included; the
/// address stays suppressed as a keyed hash. Admins and managers only.
#[utoipa::path(post, path = "/api/v1/leads/{id}/erase", tag = "gdpr",
    responses((status = 200, body = Erasure), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn erase_lead(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Erasure>, ApiError> {
    Ok(Json(
        blocking(move || crate::crm::personal::erase_lead(&app.crm, &app.gdpr, &actor, id)).await?,
    ))
}

/// A JSON document as a download.
fn json_file(value: &impl serde::Serialize, name: &str) -> Result<Response, ApiError> {
    let body = serde_json::to_vec_pretty(value).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Body of `POST /api/v1/contacts/{id}/consents`: one grant or withdrawal.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// What the consent is for, e.g. `newsletter`, `email_marketing`, `phone_calls`.
    pub purpose: String,
    /// Where it was given: `signup form`, `paper form`, `phone` … (default `api`).
    pub source: Option<String>,
    /// When it was given (RFC 3339; default now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub at: Option<OffsetDateTime>,
    /// The person's IP address when they gave it, if known.
    pub ip: Option<String>,
    /// The wording they agreed to.
    pub wording: Option<String>,
    /// True to record a withdrawal.
    #[serde(default)]
    pub withdrawn: bool,
}

/// The consent history (oldest first) and the current state per purpose.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/consents", tag = "gdpr",
    responses((status = 200, body = ConsentHistory), (status = 404, body = super::error::ErrorBody)))]
pub async fn consents(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<ConsentHistory>, ApiError> {
    Ok(Json(blocking(move || app.gdpr.consents(&actor, id)).await?))
}

/// Records a grant or a withdrawal. Records are appended, never changed: the history is the
/// proof. Audited.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/consents", request_body = ConsentBody, tag = "gdpr",
    responses((status = 201, body = ConsentHistory), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn record_consent(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<ConsentBody>,
) -> Result<(StatusCode, Json<ConsentHistory>), ApiError> {
    let input = ConsentInput {
        purpose: b.purpose,
        source: b.source,
        at: b.at,
        ip: b.ip,
        wording: b.wording,
        withdrawn: b.withdrawn,
    };
    let h = blocking(move || app.gdpr.record_consent(&actor, id, &input)).await?;
    Ok((StatusCode::CREATED, Json(h)))
}
