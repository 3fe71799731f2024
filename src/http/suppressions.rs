//! The suppression list and the feedback log over HTTP.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, Query, blocking};
use crate::feedback::FeedbackError;
use crate::model::{FeedbackRecord, Id, Suppression, SuppressionReason};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> Self {
        match e {
            FeedbackError::Invalid { field, message } => {
                let code = if field == "email" {
                    "invalid_email"
                } else {
                    "invalid_field"
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
            }
            FeedbackError::NotFound(what) => ApiError::not_found(what),
            FeedbackError::Denied(d) => d.into(),
            FeedbackError::Store(e) => e.into(),
            FeedbackError::Contacts(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Part of the address, the reason, the source or the detail.
    pub q: Option<String>,
    /// Cursor: the last address of the previous page.
    pub after: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SuppressionPage {
    pub items: Vec<Suppression>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// Addresses on the list in all.
    pub total: u64,
}

#[utoipa::path(get, path = "/api/v1/suppressions", params(ListParams), tag = "suppressions",
    responses((status = 200, body = SuppressionPage)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<ListParams>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, 1000);
    blocking(move || {
        let items = app.feedback.list(
            &actor,
            p.q.as_deref().unwrap_or(""),
            p.after.as_deref(),
            limit,
        )?;
        let total = app.feedback.count(&actor)?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|s| s.email.clone()))
            .flatten();
        Ok::<_, FeedbackError>(Json(SuppressionPage { items, next, total }))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    pub email: String,
    /// hard_bounce, soft_bounces, complaint, unsubscribed or manual (the default).
    pub reason: Option<String>,
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/suppressions", request_body = AddBody, tag = "suppressions",
    responses((status = 201, body = Suppression), (status = 422, body = super::error::ErrorBody)))]
pub async fn add(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<AddBody>,
) -> Result<(StatusCode, Json<Suppression>), ApiError> {
    let reason = match b.reason.as_deref() {
        None | Some("") => None,
        Some(r) => Some(r.parse::<SuppressionReason>().map_err(|m| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", m).field("reason")
        })?),
    };
    let s = blocking(move || {
        app.feedback
            .add(&actor, &b.email, reason, b.note.as_deref().unwrap_or(""))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SuppressionView {
    #[serde(flatten)]
    pub suppression: Suppression,
    /// The feedback recorded for the address, newest first.
    pub history: Vec<FeedbackRecord>,
}

#[utoipa::path(get, path = "/api/v1/suppressions/{email}", tag = "suppressions",
    responses((status = 200, body = SuppressionView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(email): Path<String>,
) -> Result<Json<SuppressionView>, ApiError> {
    blocking(move || {
        let suppression = app.feedback.get(&actor, &email)?;
        let history = app.feedback.history(&suppression.email, 100)?;
        Ok::<_, FeedbackError>(Json(SuppressionView {
            suppression,
            history,
        }))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/suppressions/{email}", tag = "suppressions",
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn remove(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.feedback.remove(&actor, &email)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// CSV export of the whole list (or the part matching `q`).
#[utoipa::path(get, path = "/api/v1/suppressions/export", params(ListParams), tag = "suppressions",
    responses((status = 200, content_type = "text/csv")))]
pub async fn export(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let body = blocking(move || {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(["email", "reason", "source", "detail", "created_at"]);
        let q = p.q.unwrap_or_default();
        let mut after: Option<String> = None;
        let mut rows = 0usize;
        loop {
            let page = app.feedback.list(&actor, &q, after.as_deref(), 1000)?;
            rows += page.len();
            for s in &page {
                let at = s
                    .created_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let _ = w.write_record([
                    s.email.as_str(),
                    s.reason.as_str(),
                    s.source.as_str(),
                    s.detail.as_str(),
                    at.as_str(),
                ]);
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.email.clone()),
                _ => break,
            }
        }
        // exporting personal data is audited (the filter text may itself be personal data)
        let scope = if q.is_empty() { "all" } else { "filtered" };
        app.audit.record(
            crate::audit::Entry::new(
                &actor,
                crate::model::AuditAction::Export,
                "suppressions:list",
            )
            .detail(format!("{rows} addresses as csv ({scope})")),
        )?;
        Ok::<_, FeedbackError>(w.into_inner().unwrap_or_default())
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"suppressions.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactFeedback {
    /// Present when the contact's address is suppressed.
    pub suppression: Option<Suppression>,
    /// Bounces, complaints and other feedback for the address, newest first.
    pub feedback: Vec<FeedbackRecord>,
}

/// What bounces and complaints said about a contact, and whether it is suppressed.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/feedback", tag = "contacts",
    responses((status = 200, body = ContactFeedback), (status = 404, body = super::error::ErrorBody)))]
pub async fn contact_feedback(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<ContactFeedback>, ApiError> {
    blocking(move || {
        // the contact's own visibility rule decides; its feedback comes with it
        let c = app.contacts.get(&actor, id)?;
        Ok::<_, FeedbackError>(Json(ContactFeedback {
            suppression: app.store.suppression(&c.email)?,
            feedback: app.feedback.history(&c.email, 100)?,
        }))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogParams {
    /// Cursor: the smallest id of the previous page.
    pub before: Option<Id>,
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedbackPage {
    pub items: Vec<FeedbackRecord>,
    pub next: Option<Id>,
}

/// Every bounce, complaint and delivery report received, newest first.
#[utoipa::path(get, path = "/api/v1/feedback", params(LogParams), tag = "suppressions",
    responses((status = 200, body = FeedbackPage)))]
pub async fn log(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<LogParams>,
) -> Result<Json<FeedbackPage>, ApiError> {
    actor.check_suppressions(crate::policy::Action::Read)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let items = blocking(move || app.store.recent_feedback(p.before, limit)).await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(FeedbackPage { items, next }))
}
