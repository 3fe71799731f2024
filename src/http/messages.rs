//! `/api/v1/tx` (transactional sends), `/api/v1/messages/{id}` (a message's delivery
//! status and events), `/api/v1/deliveries` (the searchable delivery log) and
//! `/api/v1/queue` (queue health per receiving site).

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, Query, blocking};
use crate::model::{Delivery, DeliveryState, Id};
use crate::outbound::{OutboundError, TxRequest};
use crate::store::{DeliveryFilter, SiteStats};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

impl From<OutboundError> for ApiError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::Compose(c) => {
                let code = if c.message.contains("not a valid email") || c.message.contains("email")
                {
                    "invalid_email"
                } else {
                    "invalid_field"
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, c.message).field(c.field)
            }
            OutboundError::Denied(d) => d.into(),
            OutboundError::NotFound(w) => ApiError::not_found(w),
            e @ OutboundError::AllSuppressed(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "suppressed",
                e.to_string(),
            )
            .field("to"),
            other => ApiError::internal(other),
        }
    }
}

/// `to` may be one address or a list.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxBody {
    /// `addr@example.com` or `Name <addr@example.com>`; DKIM-signed when a key exists for its domain.
    pub from: String,
    pub to: OneOrMany,
    pub reply_to: Option<String>,
    /// Personalised with `data` (`{{ name }}`).
    pub subject: String,
    /// HTML body, personalised with `data` (values are HTML-escaped).
    pub html: Option<String>,
    /// Plain-text body; generated from the HTML when absent.
    pub text: Option<String>,
    /// Extra headers (not From/To/Subject/Date/Message-ID/MIME headers).
    pub headers: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// Bulk mail: add signed one-click List-Unsubscribe headers (one recipient per message).
    pub list_unsubscribe: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TxAccepted {
    pub message_id: Id,
    /// The Message-ID header of the message.
    pub message_id_header: String,
    /// Recipients left out because they are on the suppression list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/tx", request_body = TxBody, tag = "messages",
    responses((status = 202, body = TxAccepted), (status = 422, body = super::error::ErrorBody)))]
pub async fn send(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<TxBody>,
) -> Result<(StatusCode, Json<TxAccepted>), ApiError> {
    let Some(out) = app.outbound.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "delivery_unavailable",
            "the delivery engine is not running",
        ));
    };
    let req = TxRequest {
        from: b.from,
        to: match b.to {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        },
        reply_to: b.reply_to,
        subject: b.subject,
        html: b.html,
        text: b.text,
        headers: b.headers.unwrap_or_default(),
        data: b.data,
        list_unsubscribe: b.list_unsubscribe.unwrap_or(false),
    };
    let msg = blocking(move || out.submit_tx(&actor, &req)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TxAccepted {
            message_id: msg.id,
            message_id_header: msg.message_id,
            suppressed: msg.suppressed,
        }),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub message_id: Id,
    pub message_id_header: String,
    /// queued, sending, sent, deferred, bounced, failed — or partial when recipients differ.
    pub status: String,
    pub from: String,
    pub subject: String,
    pub source: String,
    pub size: u64,
    pub created_at: String,
    pub recipients: Vec<Delivery>,
    /// Bounces, complaints and delivery reports received about this message.
    pub feedback: Vec<crate::model::FeedbackRecord>,
}

fn aggregate(ds: &[Delivery]) -> String {
    let first = ds.first().map(|d| d.state);
    if ds.iter().all(|d| Some(d.state) == first) {
        first
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "queued".into())
    } else if ds.iter().any(|d| !d.state.is_final()) {
        "sending".into()
    } else {
        "partial".into()
    }
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages",
    responses((status = 200, body = MessageView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<MessageView>, ApiError> {
    let (msg, ds, feedback) = blocking(move || -> Result<_, crate::store::StoreError> {
        Ok((
            app.store.out_message(id)?,
            app.store.deliveries_of(id)?,
            app.store.feedback_for_message(id)?,
        ))
    })
    .await?;
    let msg = msg.ok_or_else(|| ApiError::not_found("message"))?;
    actor
        .check_message(msg.submitted_by)
        .map_err(|_| ApiError::not_found("message"))?;
    Ok(Json(MessageView {
        message_id: msg.id,
        message_id_header: msg.message_id,
        status: aggregate(&ds),
        from: msg.from,
        subject: msg.subject,
        source: msg.source,
        size: msg.size,
        created_at: msg
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        recipients: ds,
        feedback,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogParams {
    /// Part of the recipient address.
    pub recipient: Option<String>,
    pub domain: Option<String>,
    pub status: Option<DeliveryState>,
    /// RFC 3339 time: only deliveries updated since then.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
}

#[utoipa::path(get, path = "/api/v1/deliveries", params(LogParams), tag = "messages", responses((status = 200, body = DeliveryPage)))]
pub async fn log(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<LogParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    actor.check_delivery_log()?;
    let since = match p.since.as_deref() {
        Some(s) => Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_field",
                        "since must be an RFC 3339 time such as 2026-11-24T10:00:00Z",
                    )
                    .field("since")
                })?,
        ),
        None => None,
    };
    let f = DeliveryFilter {
        recipient: p
            .recipient
            .map(|r| r.trim().to_lowercase())
            .filter(|r| !r.is_empty()),
        domain: p
            .domain
            .map(|d| d.trim().to_lowercase())
            .filter(|d| !d.is_empty()),
        state: p.status,
        since,
        message: None,
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let items = blocking(move || app.store.delivery_log(&f, limit)).await?;
    Ok(Json(DeliveryPage { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub sites: BTreeMap<String, SiteStats>,
    pub waiting: u64,
    pub oldest_waiting_seconds: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/queue", tag = "messages", responses((status = 200, body = QueueView)))]
pub async fn queue(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<QueueView>, ApiError> {
    actor.check_delivery_log()?;
    let stats = blocking(move || app.store.queue_stats()).await?;
    Ok(Json(QueueView {
        waiting: stats.by_site.values().map(|s| s.waiting).sum(),
        oldest_waiting_seconds: stats
            .oldest_waiting
            .map(|t| (crate::model::now() - t).whole_seconds().max(0) as u64),
        sites: stats.by_site,
    }))
}
