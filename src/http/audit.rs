//! `/api/v1/audit`: the audit trail, its export and the chain check.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Query, blocking};
use crate::audit::{AuditError, Format};
use crate::model::AuditEntry;
use crate::store::audit::ChainReport;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            AuditError::Denied(d) => d.into(),
            AuditError::Store(s) => s.into(),
            AuditError::Write(m) => ApiError::internal(m),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    /// The record, as `kind:id` (e.g. `contact:42`, `user:3`, `list:7`).
    pub record: Option<String>,
    /// A user id, or `cli`, `system`, `anonymous`.
    pub actor: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// Cursor: `next` of the previous page (entries below this seq).
    pub before: Option<u64>,
    /// Export only: `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next: Option<u64>,
}

/// Audit entries, newest first. Admins and managers only.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), tag = "audit",
    responses((status = 200, body = AuditPage), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    blocking(move || {
        let f = crate::audit::filter(p.record.as_deref(), p.actor.as_deref(), p.since.as_deref())?;
        let items = app.audit.page(&actor, &f, p.before, limit)?;
        let next = (items.len() == limit)
            .then(|| items.last().map(|e| e.seq))
            .flatten();
        Ok::<_, AuditError>(Json(AuditPage { items, next }))
    })
    .await
}

/// The matching entries, oldest first, as JSON lines or CSV (one row per changed field). The
/// export is itself recorded.
#[utoipa::path(get, path = "/api/v1/audit/export", params(AuditParams), tag = "audit",
    responses((status = 200, content_type = "application/x-ndjson"), (status = 403, body = super::error::ErrorBody)))]
pub async fn export(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<AuditParams>,
) -> Result<Response, ApiError> {
    let format: Format = p.format.as_deref().unwrap_or("").parse()?;
    let body = blocking(move || {
        let f = crate::audit::filter(p.record.as_deref(), p.actor.as_deref(), p.since.as_deref())?;
        let mut out = Vec::new();
        app.audit.export(&actor, &f, format, &mut out)?;
        Ok::<_, AuditError>(out)
    })
    .await?;
    let (ct, name) = match format {
        Format::JsonLines => ("application/x-ndjson", "audit.jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "audit.csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ct.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Walks the whole hash chain and reports the first entry that does not verify. Admins only.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = ChainReport), (status = 403, body = super::error::ErrorBody)))]
pub async fn verify(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<ChainReport>, ApiError> {
    Ok(Json(blocking(move || app.audit.verify(&actor)).await?))
}
