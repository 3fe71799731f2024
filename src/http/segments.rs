//! `/api/v1/segments`: saved segments (named contact filters), their live counts, and the
//! preview of an unsaved filter. A filter that does not parse is a 422 `invalid_filter` with
//! `line`, `column`, `offset` and `excerpt`.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, ErrorLocation, Json, Path, blocking};
use crate::model::{Contact, Id, Segment};
use crate::segments::{SegmentError, SegmentInput};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

impl From<SegmentError> for ApiError {
    fn from(e: SegmentError) -> Self {
        match e {
            SegmentError::Filter(f) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_filter",
                format!("{} (line {}, column {})", f.message, f.line, f.column),
            )
            .field("filter")
            .location(ErrorLocation {
                line: f.line,
                column: f.column,
                offset: f.offset,
                excerpt: f.excerpt,
            }),
            SegmentError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            SegmentError::NotFound => ApiError::not_found("segment"),
            SegmentError::Denied(d) => d.into(),
            SegmentError::Store(s) => ApiError::internal(s),
            SegmentError::Poisoned => ApiError::internal("segment cache lock poisoned"),
        }
    }
}

/// Body of `POST /api/v1/segments` (both fields) and `PUT /api/v1/segments/{id}` (either).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    pub name: Option<String>,
    /// The filter, e.g. `tag = "certified" and not clicked_within(90d)`.
    pub filter: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    pub items: Vec<Segment>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentCount {
    pub id: Id,
    /// Matching contacts the caller may see.
    pub count: u64,
}

/// Body of `POST /api/v1/segments/preview`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub filter: String,
    /// Contacts to return, 0 to 100 (default 10), newest first.
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewResult {
    pub count: u64,
    pub contacts: Vec<Contact>,
}

impl From<SegmentBody> for SegmentInput {
    fn from(b: SegmentBody) -> Self {
        SegmentInput {
            name: b.name,
            filter: b.filter,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/segments", tag = "segments",
    responses((status = 200, body = SegmentList)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<SegmentList>, ApiError> {
    let items = blocking(move || app.segments.list(&actor)).await?;
    Ok(Json(SegmentList { items }))
}

#[utoipa::path(post, path = "/api/v1/segments", request_body = SegmentBody, tag = "segments",
    responses((status = 201, body = Segment), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<SegmentBody>,
) -> Result<(StatusCode, Json<Segment>), ApiError> {
    let input = body.into();
    let s = blocking(move || app.segments.create(&actor, &input)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments",
    responses((status = 200, body = Segment), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Segment>, ApiError> {
    Ok(Json(blocking(move || app.segments.get(&actor, id)).await?))
}

#[utoipa::path(put, path = "/api/v1/segments/{id}", request_body = SegmentBody, tag = "segments",
    responses((status = 200, body = Segment), (status = 404, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(body): Json<SegmentBody>,
) -> Result<Json<Segment>, ApiError> {
    let input = body.into();
    Ok(Json(
        blocking(move || app.segments.update(&actor, id, &input)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments",
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.segments.delete(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "segments",
    responses((status = 200, body = SegmentCount), (status = 404, body = super::error::ErrorBody)))]
pub async fn count(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<SegmentCount>, ApiError> {
    let (s, count) = blocking(move || app.segments.count_saved(&actor, id)).await?;
    Ok(Json(SegmentCount { id: s.id, count }))
}

#[utoipa::path(post, path = "/api/v1/segments/preview", request_body = PreviewBody, tag = "segments",
    responses((status = 200, body = PreviewResult), (status = 422, body = super::error::ErrorBody)))]
pub async fn preview(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<PreviewBody>,
) -> Result<Json<PreviewResult>, ApiError> {
    let limit = body.limit.unwrap_or(10);
    let p = blocking(move || app.segments.preview(&actor, &body.filter, limit)).await?;
    Ok(Json(PreviewResult {
        count: p.count,
        contacts: p.contacts,
    }))
}
