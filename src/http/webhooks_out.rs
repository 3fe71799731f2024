//! `/api/v1/webhook-subscriptions`: outgoing webhooks for integrators (admins only). The
//! signing secret appears only in the answers to create and rotate-secret.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, Query, blocking};
use crate::model::{EventType, Id, WebhookAttempt, WebhookStatus, WebhookSubscription};
use crate::webhooks::{SubscriptionChange, WebhookError};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            WebhookError::PrivateTarget(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "private_target", m).field("url")
            }
            WebhookError::NotFound => ApiError::not_found("webhook subscription"),
            WebhookError::Limit(m) => ApiError::new(StatusCode::CONFLICT, "limit_reached", m),
            WebhookError::Denied(d) => d.into(),
            WebhookError::Client(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "webhooks_unavailable", m)
            }
            WebhookError::Store(s) => ApiError::internal(s),
        }
    }
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// A subscription as the API shows it (never with its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: Id,
    pub url: String,
    pub description: String,
    pub events: Vec<EventType>,
    /// active or disabled.
    pub status: WebhookStatus,
    /// Disabled by the dispatcher after repeated failures (the console warns about it).
    pub auto_disabled: bool,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_success_at: Option<String>,
    pub disabled_at: Option<String>,
    pub created_at: String,
}

impl From<WebhookSubscription> for SubscriptionView {
    fn from(s: WebhookSubscription) -> Self {
        SubscriptionView {
            id: s.id,
            url: s.url,
            description: s.description,
            events: s.events,
            status: s.status,
            auto_disabled: s.auto_disabled,
            consecutive_failures: s.consecutive_failures,
            last_error: s.last_error,
            last_attempt_at: rfc3339(s.last_attempt_at),
            last_success_at: rfc3339(s.last_success_at),
            disabled_at: rfc3339(s.disabled_at),
            created_at: rfc3339(Some(s.created_at)).unwrap_or_default(),
        }
    }
}

/// A subscription with its signing secret: shown once, after creation or rotation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionWithSecret {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// Signs every request: `X-Mailstead-Signature: v1=hex(HMAC-SHA256(secret, "<X-Mailstead-Timestamp>.<body>"))`.
    pub secret: String,
}

impl From<WebhookSubscription> for SubscriptionWithSecret {
    fn from(mut s: WebhookSubscription) -> Self {
        let secret = std::mem::take(&mut s.secret.0);
        SubscriptionWithSecret {
            subscription: s.into(),
            secret,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
    /// Every event type a subscription can name.
    pub event_types: Vec<EventType>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// `https://` target (http:// and private addresses only with MAILSTEAD_ALLOW_PRIVATE_TARGETS=true).
    pub url: String,
    /// Event types such as `contact.created`, `message.bounced`.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// false disables; true enables and resets the failure count.
    pub enabled: Option<bool>,
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get as g, post};
    axum::Router::new()
        .route("/", g(list).post(create))
        .route("/{id}", g(get).patch(update).delete(delete))
        .route("/{id}/enable", post(enable))
        .route("/{id}/rotate-secret", post(rotate_secret))
        .route("/{id}/test", post(test))
        .route("/{id}/deliveries", g(deliveries))
}

#[utoipa::path(get, path = "/api/v1/webhook-subscriptions", tag = "webhooks",
    responses((status = 200, body = SubscriptionList), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<SubscriptionList>, ApiError> {
    let subs = blocking(move || app.webhooks.list(&actor)).await?;
    Ok(Json(SubscriptionList {
        items: subs.into_iter().map(Into::into).collect(),
        event_types: EventType::ALL.to_vec(),
    }))
}

#[utoipa::path(post, path = "/api/v1/webhook-subscriptions", request_body = CreateSubscription, tag = "webhooks",
    responses((status = 201, body = SubscriptionWithSecret), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<CreateSubscription>,
) -> Result<(StatusCode, Json<SubscriptionWithSecret>), ApiError> {
    actor.check_webhooks(crate::policy::Action::Create)?;
    let url = app.webhooks.check_url(&b.url).await?;
    let sub = blocking(move || app.webhooks.create(&actor, url, &b.events, &b.description)).await?;
    Ok((StatusCode::CREATED, Json(sub.into())))
}

#[utoipa::path(get, path = "/api/v1/webhook-subscriptions/{id}", tag = "webhooks",
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let sub = blocking(move || app.webhooks.get(&actor, id)).await?;
    Ok(Json(sub.into()))
}

#[utoipa::path(patch, path = "/api/v1/webhook-subscriptions/{id}", request_body = UpdateSubscription, tag = "webhooks",
    responses((status = 200, body = SubscriptionView), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<UpdateSubscription>,
) -> Result<Json<SubscriptionView>, ApiError> {
    actor.check_webhooks(crate::policy::Action::Update)?;
    let url = match &b.url {
        Some(u) => Some(app.webhooks.check_url(u).await?),
        None => None,
    };
    let change = SubscriptionChange {
        url,
        events: b.events,
        description: b.description,
        enabled: b.enabled,
    };
    let sub = blocking(move || app.webhooks.update(&actor, id, change)).await?;
    Ok(Json(sub.into()))
}

#[utoipa::path(delete, path = "/api/v1/webhook-subscriptions/{id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.webhooks.delete(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhook-subscriptions/{id}/enable", tag = "webhooks",
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::error::ErrorBody)))]
pub async fn enable(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let sub = blocking(move || app.webhooks.enable(&actor, id)).await?;
    Ok(Json(sub.into()))
}

#[utoipa::path(post, path = "/api/v1/webhook-subscriptions/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = SubscriptionWithSecret), (status = 404, body = super::error::ErrorBody)))]
pub async fn rotate_secret(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<SubscriptionWithSecret>, ApiError> {
    let sub = blocking(move || app.webhooks.rotate_secret(&actor, id)).await?;
    Ok(Json(sub.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PingQueued {
    pub delivery_id: Id,
}

#[utoipa::path(post, path = "/api/v1/webhook-subscriptions/{id}/test", tag = "webhooks",
    responses((status = 202, body = PingQueued), (status = 404, body = super::error::ErrorBody)))]
pub async fn test(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<(StatusCode, Json<PingQueued>), ApiError> {
    let d = blocking(move || app.webhooks.ping(&actor, id)).await?;
    Ok((StatusCode::ACCEPTED, Json(PingQueued { delivery_id: d.id })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AttemptParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// At most 200; default 50.
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptPage {
    pub items: Vec<WebhookAttempt>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/webhook-subscriptions/{id}/deliveries", params(AttemptParams), tag = "webhooks",
    responses((status = 200, body = AttemptPage), (status = 404, body = super::error::ErrorBody)))]
pub async fn deliveries(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Query(p): Query<AttemptParams>,
) -> Result<Json<AttemptPage>, ApiError> {
    let before = match p.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(c.parse::<Id>().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "the cursor is not one this server returned",
            )
            .field("cursor")
        })?),
        None => None,
    };
    let limit = p.limit.unwrap_or(50).clamp(1, 200);
    let items = blocking(move || app.webhooks.attempts(&actor, id, before, limit)).await?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(AttemptPage { items, next_cursor }))
}
