//! `/api/v1/templates` and `/api/v1/campaigns`: templates (stored and the built-in library),
//! campaigns and their lifecycle (`start`, `schedule`, `pause`, `resume`, `cancel`, `test`),
//! stats and the report.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, blocking};
use crate::campaigns::report::{Report, Stats};
use crate::campaigns::{CampaignError, CampaignInput, TemplateInput};
use crate::model::{Audience, Campaign, Id, StoredTemplate};
use crate::templates::{ContactVars, Rendered, TemplateError};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

impl From<TemplateError> for ApiError {
    fn from(e: TemplateError) -> Self {
        let field = match (&e.setting, e.part) {
            (Some(s), _) => s.clone(),
            (None, crate::templates::Part::Subject) => "subject".into(),
            (None, crate::templates::Part::Preheader) => "preheader".into(),
            _ => "mjml".into(),
        };
        let mut a = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
            e.to_string(),
        )
        .field(field);
        if let Some(l) = e.line {
            a = a.at(l, e.column.unwrap_or(1));
        }
        a
    }
}

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::Denied(d) => d.into(),
            CampaignError::Store(s) => s.into(),
            CampaignError::NotFound(w) => ApiError::not_found(w),
            CampaignError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            CampaignError::Template(t) => t.into(),
            e @ CampaignError::State { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", e.to_string())
            }
            CampaignError::Compose(c) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", c.message)
                    .field(c.field)
            }
            CampaignError::Outbound(o) => o.into(),
            e @ CampaignError::NoSender => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
        }
    }
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get as g, post};
    axum::Router::new()
        .route("/templates", g(templates).post(create_template))
        .route("/templates/library", g(library))
        .route(
            "/templates/{id}",
            g(template).put(update_template).delete(delete_template),
        )
        .route("/templates/{id}/preview", post(preview_template))
        .route("/campaigns", g(list).post(create))
        .route("/campaigns/audience-count", post(audience_count))
        .route("/campaigns/{id}", g(get).patch(update).delete(delete))
        .route("/campaigns/{id}/report", g(report))
        .route("/campaigns/{id}/start", post(start))
        .route("/campaigns/{id}/schedule", post(schedule))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
        .route("/campaigns/{id}/test", post(test))
}

// ---- templates ----

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub items: Vec<StoredTemplate>,
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "campaigns",
    responses((status = 200, body = TemplateList)))]
pub async fn templates(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<TemplateList>, ApiError> {
    let items = blocking(move || app.campaigns.templates(&actor)).await?;
    Ok(Json(TemplateList { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LibraryEntry {
    pub id: String,
    pub category: String,
    pub name: String,
    pub description: String,
    pub subject: String,
    /// The template rendered with its sample data (for the gallery).
    pub html: String,
}

#[utoipa::path(get, path = "/api/v1/templates/library", tag = "campaigns",
    responses((status = 200, body = Vec<LibraryEntry>)))]
pub async fn library(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<Vec<LibraryEntry>>, ApiError> {
    actor.check_campaigns(crate::policy::Action::Read)?;
    let out = blocking(move || {
        let brand = crate::templates::Brand::from_settings(&app.settings)
            .unwrap_or_else(|_| crate::templates::Brand::sample());
        let mut out = Vec::new();
        for t in crate::templates::library::all().into_iter().flatten() {
            let html = crate::templates::compile(&t.source, &brand, t.kind)
                .and_then(|c| c.validate(&t.sample))
                .map(|r| r.html)
                .unwrap_or_default();
            out.push(LibraryEntry {
                id: t.id,
                category: t.category,
                name: t.name,
                description: t.description,
                subject: t.source.subject,
                html,
            });
        }
        Ok::<_, ApiError>(out)
    })
    .await?;
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/templates", request_body = TemplateInput, tag = "campaigns",
    responses((status = 201, body = StoredTemplate), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_template(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<TemplateInput>,
) -> Result<(StatusCode, Json<StoredTemplate>), ApiError> {
    let t = blocking(move || app.campaigns.create_template(&actor, &b)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "campaigns",
    responses((status = 200, body = StoredTemplate), (status = 404, body = super::error::ErrorBody)))]
pub async fn template(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<StoredTemplate>, ApiError> {
    Ok(Json(
        blocking(move || app.campaigns.template(&actor, id)).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/templates/{id}", request_body = TemplateInput, tag = "campaigns",
    responses((status = 200, body = StoredTemplate), (status = 422, body = super::error::ErrorBody)))]
pub async fn update_template(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<TemplateInput>,
) -> Result<Json<StoredTemplate>, ApiError> {
    Ok(Json(
        blocking(move || app.campaigns.update_template(&actor, id, &b)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "campaigns",
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_template(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.campaigns.delete_template(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Personalise for this contact (default: a sample contact).
    pub contact_id: Option<Id>,
}

#[utoipa::path(post, path = "/api/v1/templates/{id}/preview", request_body = PreviewRequest, tag = "campaigns",
    responses((status = 200, body = Rendered), (status = 422, body = super::error::ErrorBody)))]
pub async fn preview_template(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<PreviewRequest>,
) -> Result<Json<Rendered>, ApiError> {
    let r = blocking(move || {
        let contact = match b.contact_id {
            Some(cid) => Some(ContactVars::from(&app.contacts.get(&actor, cid)?)),
            None => None,
        };
        app.campaigns
            .preview_template(&actor, id, contact)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(Json(r))
}

// ---- campaigns ----

#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub stats: Stats,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    pub items: Vec<Campaign>,
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    responses((status = 200, body = CampaignList)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<CampaignList>, ApiError> {
    let items = blocking(move || app.campaigns.list(&actor)).await?;
    Ok(Json(CampaignList { items }))
}

fn view(
    app: &AppState,
    actor: &crate::policy::Actor,
    c: Campaign,
) -> Result<CampaignView, ApiError> {
    let stats = app.campaigns.stats(actor, c.id)?;
    Ok(CampaignView { campaign: c, stats })
}

#[utoipa::path(post, path = "/api/v1/campaigns", request_body = CampaignInput, tag = "campaigns",
    responses((status = 201, body = CampaignView), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<CampaignInput>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    let v = blocking(move || {
        let c = app.campaigns.create(&actor, &b)?;
        view(&app, &actor, c)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    responses((status = 200, body = CampaignView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<CampaignView>, ApiError> {
    let v = blocking(move || {
        let c = app.campaigns.get(&actor, id)?;
        view(&app, &actor, c)
    })
    .await?;
    Ok(Json(v))
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", request_body = CampaignInput, tag = "campaigns",
    responses((status = 200, body = CampaignView), (status = 409, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<CampaignInput>,
) -> Result<Json<CampaignView>, ApiError> {
    let v = blocking(move || {
        let c = app.campaigns.update(&actor, id, &b)?;
        view(&app, &actor, c)
    })
    .await?;
    Ok(Json(v))
}

#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    responses((status = 204), (status = 409, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.campaigns.delete(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/report", tag = "campaigns",
    responses((status = 200, body = Report), (status = 404, body = super::error::ErrorBody)))]
pub async fn report(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Report>, ApiError> {
    Ok(Json(
        blocking(move || app.campaigns.report(&actor, id)).await?,
    ))
}

macro_rules! lifecycle {
    ($name:ident, $method:ident, $path:literal) => {
        #[utoipa::path(post, path = $path, tag = "campaigns",
            responses((status = 200, body = CampaignView), (status = 409, body = super::error::ErrorBody)))]
        pub async fn $name(
            State(app): State<AppState>,
            Authed(actor): Authed,
            Path(id): Path<Id>,
        ) -> Result<Json<CampaignView>, ApiError> {
            let v = blocking(move || {
                let c = app.campaigns.$method(&actor, id)?;
                view(&app, &actor, c)
            })
            .await?;
            Ok(Json(v))
        }
    };
}

lifecycle!(start, start, "/api/v1/campaigns/{id}/start");
lifecycle!(pause, pause, "/api/v1/campaigns/{id}/pause");
lifecycle!(resume, resume, "/api/v1/campaigns/{id}/resume");
lifecycle!(cancel, cancel, "/api/v1/campaigns/{id}/cancel");

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// RFC 3339 time in the future, e.g. `2030-01-31T09:00:00Z`.
    pub at: String,
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/schedule", request_body = ScheduleRequest, tag = "campaigns",
    responses((status = 200, body = CampaignView), (status = 422, body = super::error::ErrorBody)))]
pub async fn schedule(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<ScheduleRequest>,
) -> Result<Json<CampaignView>, ApiError> {
    let at =
        time::OffsetDateTime::parse(b.at.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    format!(
                        "'{}' is not an RFC 3339 time such as 2030-01-31T09:00:00Z ({e})",
                        b.at
                    ),
                )
                .field("at")
            })?;
    let v = blocking(move || {
        let c = app.campaigns.schedule(&actor, id, at)?;
        view(&app, &actor, c)
    })
    .await?;
    Ok(Json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// 1 to 10 addresses.
    pub to: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestQueued {
    pub message_ids: Vec<Id>,
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/test", request_body = TestRequest, tag = "campaigns",
    responses((status = 202, body = TestQueued), (status = 422, body = super::error::ErrorBody)))]
pub async fn test(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<TestRequest>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let runner = app.campaign_runner.clone().ok_or(CampaignError::NoSender)?;
    let ids = blocking(move || runner.send_test(&actor, id, &b.to)).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { message_ids: ids })))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AudienceCount {
    /// Contacts the audience reaches now (confirmed members, or the segment's members, less
    /// the suppressed).
    pub count: u64,
}

#[utoipa::path(post, path = "/api/v1/campaigns/audience-count", request_body = Audience, tag = "campaigns",
    responses((status = 200, body = AudienceCount), (status = 422, body = super::error::ErrorBody)))]
pub async fn audience_count(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<Audience>,
) -> Result<Json<AudienceCount>, ApiError> {
    let count = blocking(move || app.campaigns.audience_count(&actor, &b)).await?;
    Ok(Json(AudienceCount { count }))
}
