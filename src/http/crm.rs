//! `/api/v1/leads`, `/accounts`, `/opportunities`, `/activities`, lead conversion, the
//! pipeline board, record timelines and training records on contacts. Handlers translate
//! HTTP to [`crate::crm::Crm`] calls; rules and access live there and in `policy`.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, ErrorBody, Json, Path, Query, blocking};
use crate::crm::model::{
    Account, Activity, Certification, Enrolment, EnrolmentStatus, Lead, Opportunity, Stage,
};
use crate::crm::{
    AccountInput, ActivityInput, Board, ConvertInput, Converted, CrmError, ImportReport, LeadInput,
    ListQuery, OpportunityInput, TimelineItem,
};
use crate::model::Id;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::Invalid { field, message } => {
                let code = match field {
                    "amount" => "invalid_amount",
                    "currency" => "invalid_currency",
                    "stage" => "unknown_stage",
                    "parent_id" => "invalid_parent",
                    "email" => "invalid_email",
                    _ => "invalid_field",
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
            }
            CrmError::NotFound(what) => ApiError::not_found(what),
            CrmError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CrmError::Denied(d) => d.into(),
            CrmError::Contact(c) => c.into(),
            CrmError::Store(e) => ApiError::internal(e),
            CrmError::Gdpr(e) => e.into(),
            e @ CrmError::Injected(_) => ApiError::internal(e),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Count {
    pub count: u64,
}

macro_rules! page_type {
    ($name:ident, $rec:ty) => {
        #[derive(Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub items: Vec<$rec>,
            pub next_cursor: Option<String>,
            pub total: u64,
        }
        impl From<crate::crm::Page<$rec>> for $name {
            fn from(p: crate::crm::Page<$rec>) -> Self {
                $name {
                    items: p.items,
                    next_cursor: p.next_cursor,
                    total: p.total,
                }
            }
        }
    };
}
page_type!(LeadPage, Lead);
page_type!(AccountPage, Account);
page_type!(OpportunityPage, Opportunity);
page_type!(ActivityPage, Activity);

/// The list, count, get, create, update and delete handlers of one record kind.
macro_rules! crud {
    ($m:ident, $rec:ident, $input:ident, $page:ident, $path:tt, $idpath:tt, $countpath:tt, $exportpath:tt, $tag:tt,
     $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        pub mod $m {
            use super::*;

            #[utoipa::path(get, path = $path, params(ListQuery), tag = $tag,
                responses((status = 200, body = $page), (status = 422, body = ErrorBody)))]
            pub async fn list(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Query(q): Query<ListQuery>,
            ) -> Result<Json<$page>, ApiError> {
                Ok(Json(blocking(move || app.crm.$list(&actor, &q)).await?.into()))
            }

            /// How many records match the same filters as the list (within the caller's scope).
            #[utoipa::path(get, path = $countpath, params(ListQuery), tag = $tag,
                responses((status = 200, body = Count), (status = 422, body = ErrorBody)))]
            pub async fn count(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Query(mut q): Query<ListQuery>,
            ) -> Result<Json<Count>, ApiError> {
                q.limit = Some(1);
                q.cursor = None;
                let page = blocking(move || app.crm.$list(&actor, &q)).await?;
                Ok(Json(Count { count: page.total }))
            }

            /// Every record matching the list filters (within the caller's scope) as CSV.
            #[utoipa::path(get, path = $exportpath, params(ListQuery), tag = $tag,
                responses((status = 200, content_type = "text/csv", body = String), (status = 422, body = ErrorBody)))]
            pub async fn export(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Query(q): Query<ListQuery>,
            ) -> Result<axum::response::Response, ApiError> {
                use axum::http::header;
                use axum::response::IntoResponse;
                let bytes = blocking(move || app.crm.export::<$rec>(&actor, &q)).await?;
                Ok((
                    [
                        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                        (header::CONTENT_DISPOSITION, concat!("attachment; filename=\"", $tag, ".csv\"")),
                    ],
                    bytes,
                )
                    .into_response())
            }

            #[utoipa::path(post, path = $path, request_body = $input, tag = $tag,
                responses((status = 201, body = $rec), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
            pub async fn create(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Json(input): Json<$input>,
            ) -> Result<(StatusCode, Json<$rec>), ApiError> {
                let r = blocking(move || app.crm.$create(&actor, &input)).await?;
                Ok((StatusCode::CREATED, Json(r)))
            }

            #[utoipa::path(get, path = $idpath, tag = $tag,
                responses((status = 200, body = $rec), (status = 404, body = ErrorBody)))]
            pub async fn get(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Path(id): Path<Id>,
            ) -> Result<Json<$rec>, ApiError> {
                Ok(Json(blocking(move || app.crm.$get(&actor, id)).await?))
            }

            #[utoipa::path(patch, path = $idpath, request_body = $input, tag = $tag,
                responses((status = 200, body = $rec), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
            pub async fn update(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Path(id): Path<Id>,
                Json(input): Json<$input>,
            ) -> Result<Json<$rec>, ApiError> {
                Ok(Json(blocking(move || app.crm.$update(&actor, id, &input)).await?))
            }

            #[utoipa::path(delete, path = $idpath, tag = $tag,
                responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
            pub async fn delete(
                State(app): State<AppState>,
                Authed(actor): Authed,
                Path(id): Path<Id>,
            ) -> Result<StatusCode, ApiError> {
                blocking(move || app.crm.$delete(&actor, id)).await?;
                Ok(StatusCode::NO_CONTENT)
            }

            pub fn routes() -> Router<AppState> {
                use axum::routing::get as route_get;
                Router::new()
                    .route("/", route_get(list).post(create))
                    .route("/count", route_get(count))
                    .route("/export", route_get(export))
                    .route("/{id}", route_get(get).patch(update).delete(delete))
            }
        }
    };
}

crud!(
    leads,
    Lead,
    LeadInput,
    LeadPage,
    "/api/v1/leads",
    "/api/v1/leads/{id}",
    "/api/v1/leads/count",
    "/api/v1/leads/export",
    "leads",
    leads,
    create_lead,
    lead,
    update_lead,
    delete_lead
);
crud!(
    accounts,
    Account,
    AccountInput,
    AccountPage,
    "/api/v1/accounts",
    "/api/v1/accounts/{id}",
    "/api/v1/accounts/count",
    "/api/v1/accounts/export",
    "accounts",
    accounts,
    create_account,
    account,
    update_account,
    delete_account
);
crud!(
    opportunities,
    Opportunity,
    OpportunityInput,
    OpportunityPage,
    "/api/v1/opportunities",
    "/api/v1/opportunities/{id}",
    "/api/v1/opportunities/count",
    "/api/v1/opportunities/export",
    "opportunities",
    opportunities,
    create_opportunity,
    opportunity,
    update_opportunity,
    delete_opportunity
);
crud!(
    activities,
    Activity,
    ActivityInput,
    ActivityPage,
    "/api/v1/activities",
    "/api/v1/activities/{id}",
    "/api/v1/activities/count",
    "/api/v1/activities/export",
    "activities",
    activities,
    create_activity,
    activity,
    update_activity,
    delete_activity
);

#[utoipa::path(post, path = "/api/v1/leads/{id}/convert", request_body = ConvertInput, tag = "leads",
    responses((status = 200, body = Converted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn convert(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    body: axum::body::Bytes,
) -> Result<Json<Converted>, ApiError> {
    // the body is optional: an empty one converts with the defaults
    let input: ConvertInput = if body.iter().all(u8::is_ascii_whitespace) {
        ConvertInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let (status, code) = if e.is_data() {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
            } else {
                (StatusCode::BAD_REQUEST, "invalid_json")
            };
            ApiError::new(
                status,
                code,
                format!("the body is not a valid conversion request: {e}"),
            )
        })?
    };
    Ok(Json(
        blocking(move || app.crm.convert(&actor, id, &input)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/records/{kind}/{id}/timeline", tag = "timeline",
    params(("kind" = String, Path, description = "lead, contact, account or opportunity")),
    responses((status = 200, body = Vec<TimelineItem>), (status = 404, body = ErrorBody)))]
pub async fn timeline(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path((kind, id)): Path<(String, Id)>,
) -> Result<Json<Vec<TimelineItem>>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.timeline(&actor, &kind, id)).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BoardParams {
    /// Only this owner's opportunities: a user id, `me` or `none`.
    pub owner: Option<String>,
    /// Cards per stage, 0 to 50 (default 10).
    pub cards: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/pipeline", params(BoardParams), tag = "opportunities",
    responses((status = 200, body = Board), (status = 422, body = ErrorBody)))]
pub async fn pipeline(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<BoardParams>,
) -> Result<Json<Board>, ApiError> {
    let owner = match p.owner.as_deref().map(str::trim) {
        None => None,
        Some("none") => Some(None),
        Some("me") => Some(Some(actor.user_id)),
        Some(n) => Some(Some(n.parse::<Id>().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "owner is a user id, 'me' or 'none'",
            )
            .field("owner")
        })?)),
    };
    let cards = p.cards.unwrap_or(10).min(50);
    Ok(Json(
        blocking(move || app.crm.board(&actor, owner, cards)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/pipeline/stages", tag = "opportunities",
    responses((status = 200, body = Vec<Stage>)))]
pub async fn stages(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<Vec<Stage>>, ApiError> {
    Ok(Json(blocking(move || app.crm.stages(&actor)).await?))
}

#[utoipa::path(put, path = "/api/v1/pipeline/stages", request_body = Vec<Stage>, tag = "opportunities",
    responses((status = 200, body = Vec<Stage>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_stages(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<Vec<Stage>>,
) -> Result<Json<Vec<Stage>>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.set_stages(&actor, &body)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/score", tag = "leads",
    responses((status = 200, body = crate::crm::scoring::Score), (status = 404, body = ErrorBody)))]
pub async fn lead_score(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<crate::crm::scoring::Score>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.lead_score(&actor, id)).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/leads/scoring-rules", tag = "leads",
    responses((status = 200, body = crate::crm::scoring::ScoringRules)))]
pub async fn scoring_rules(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<crate::crm::scoring::ScoringRules>, ApiError> {
    Ok(Json(blocking(move || app.crm.scoring_rules(&actor)).await?))
}

#[utoipa::path(put, path = "/api/v1/leads/scoring-rules", request_body = crate::crm::scoring::ScoringRules, tag = "leads",
    responses((status = 200, body = crate::crm::scoring::ScoringRules), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_scoring_rules(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<crate::crm::scoring::ScoringRules>,
) -> Result<Json<crate::crm::scoring::ScoringRules>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.set_scoring_rules(&actor, &body)).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentBody {
    pub programme: String,
    /// `YYYY-MM-DD`.
    pub start: String,
    pub end: Option<String>,
    pub status: Option<EnrolmentStatus>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificationBody {
    pub name: String,
    /// `YYYY-MM-DD`.
    pub issued: String,
    pub expires: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/enrolments", tag = "training",
    responses((status = 200, body = Vec<Enrolment>), (status = 404, body = ErrorBody)))]
pub async fn enrolments(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Vec<Enrolment>>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.training::<Enrolment>(&actor, id)).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/enrolments", request_body = EnrolmentBody, tag = "training",
    responses((status = 201, body = Enrolment), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_enrolment(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<EnrolmentBody>,
) -> Result<(StatusCode, Json<Enrolment>), ApiError> {
    let e = blocking(move || {
        app.crm.add_enrolment(
            &actor,
            id,
            &b.programme,
            &b.start,
            b.end.as_deref(),
            b.status.unwrap_or(EnrolmentStatus::Enrolled),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/certifications", tag = "training",
    responses((status = 200, body = Vec<Certification>), (status = 404, body = ErrorBody)))]
pub async fn certifications(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Vec<Certification>>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.training::<Certification>(&actor, id)).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/certifications", request_body = CertificationBody, tag = "training",
    responses((status = 201, body = Certification), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_certification(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<CertificationBody>,
) -> Result<(StatusCode, Json<Certification>), ApiError> {
    let c = blocking(move || {
        app.crm
            .add_certification(&actor, id, &b.name, &b.issued, b.expires.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/{what}/{item}", tag = "training",
    params(("what" = String, Path, description = "enrolments or certifications")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_training(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path((id, what, item)): Path<(Id, String, Id)>,
) -> Result<StatusCode, ApiError> {
    match what.as_str() {
        "enrolments" => {
            blocking(move || app.crm.delete_training::<Enrolment>(&actor, id, item)).await?
        }
        "certifications" => {
            blocking(move || app.crm.delete_training::<Certification>(&actor, id, item)).await?
        }
        _ => return Err(ApiError::not_found("route")),
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExpiringParams {
    /// Expiring within this many days from today (default 60).
    pub days: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/certifications/expiring", params(ExpiringParams), tag = "training",
    responses((status = 200, body = Vec<Certification>), (status = 422, body = ErrorBody)))]
pub async fn expiring(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<ExpiringParams>,
) -> Result<Json<Vec<Certification>>, ApiError> {
    Ok(Json(
        blocking(move || app.crm.expiring(&actor, p.days.unwrap_or(60))).await?,
    ))
}

/// `POST /api/v1/{kind}/import` for the kinds that import.
macro_rules! import_route {
    ($name:ident, $rec:ty, $path:tt, $tag:tt) => {
        /// Imports CSV rows (the export's columns; header matched case-insensitively); bad
        /// rows are reported with their line numbers, good rows saved.
        #[utoipa::path(post, path = $path, request_body(content = String, content_type = "text/csv"), tag = $tag,
            responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
        pub async fn $name(
            State(app): State<AppState>,
            Authed(actor): Authed,
            body: axum::body::Bytes,
        ) -> Result<Json<ImportReport>, ApiError> {
            Ok(Json(
                blocking(move || app.crm.import::<$rec>(&actor, body.as_ref())).await?,
            ))
        }
    };
}
import_route!(import_leads, Lead, "/api/v1/leads/import", "leads");
import_route!(
    import_accounts,
    Account,
    "/api/v1/accounts/import",
    "accounts"
);
import_route!(
    import_opportunities,
    Opportunity,
    "/api/v1/opportunities/import",
    "opportunities"
);

/// The CRM routes, nested under `/api/v1`; imports take bodies up to `max_import` bytes.
pub fn routes(max_import: usize) -> Router<AppState> {
    let limit = || axum::extract::DefaultBodyLimit::max(max_import);
    Router::new()
        .route("/leads/import", post(import_leads).layer(limit()))
        .route("/accounts/import", post(import_accounts).layer(limit()))
        .route(
            "/opportunities/import",
            post(import_opportunities).layer(limit()),
        )
        .nest("/leads", leads::routes())
        .route("/leads/{id}/convert", post(convert))
        .route("/leads/{id}/score", get(lead_score))
        .route(
            "/leads/scoring-rules",
            get(scoring_rules).put(set_scoring_rules),
        )
        .nest("/accounts", accounts::routes())
        .nest("/opportunities", opportunities::routes())
        .nest("/activities", activities::routes())
        .route("/records/{kind}/{id}/timeline", get(timeline))
        .route("/pipeline", get(pipeline))
        .route("/pipeline/stages", get(stages).put(set_stages))
        .route(
            "/contacts/{id}/enrolments",
            get(enrolments).post(add_enrolment),
        )
        .route(
            "/contacts/{id}/certifications",
            get(certifications).post(add_certification),
        )
        .route(
            "/contacts/{id}/{what}/{item}",
            axum::routing::delete(delete_training),
        )
        .route("/certifications/expiring", get(expiring))
}
