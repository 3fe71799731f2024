//! `/api/v1/webhooks/{ses,sendgrid,mailgun,postmark,generic}`: bounce, complaint and
//! delivery reports from ESPs. These routes carry no user session or API token (so no CSRF
//! either): each provider signs its requests and [`crate::esp`] checks them. In front of
//! every handler: a per-client-address rate limit and a bound on requests in progress (429
//! and 503 before the body is read), then a body cap (413). A refused request changes
//! nothing and is logged at warn level without secrets.

use super::AppState;
use super::error::{ApiError, Json, blocking};
use crate::esp::{Batch, EspError, Inbound, Provider, SnsOutcome};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Largest webhook body, except SendGrid's batches.
pub const MAX_BODY: usize = 1024 * 1024;
/// SendGrid posts batches of up to a few thousand events.
pub const MAX_SENDGRID_BODY: usize = 5 * 1024 * 1024;
/// Webhook requests in progress at once; with the body caps this bounds their memory.
pub const MAX_IN_FLIGHT: usize = 16;

/// Shared state of the webhook routes: the receiver, the per-address limiter and the
/// in-flight bound.
pub struct Hooks {
    app: AppState,
    inbound: Inbound,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

type HookState = Arc<Hooks>;

/// The webhook routes, to be nested under `/api/v1/webhooks`.
pub fn routes(app: &AppState) -> Router<AppState> {
    let settings = app.settings.webhooks.clone();
    let rps = NonZeroU32::new(settings.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = rps.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    let hooks = Arc::new(Hooks {
        inbound: Inbound::new(settings, &app.settings.data_dir),
        app: app.clone(),
        limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
    });
    Router::new()
        .route("/ses", post(ses))
        .route(
            "/sendgrid",
            post(sendgrid).layer(DefaultBodyLimit::max(MAX_SENDGRID_BODY)),
        )
        .route("/mailgun", post(mailgun))
        .route("/postmark", post(postmark))
        .route("/generic", post(generic))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(hooks.clone(), guard))
        .with_state(hooks)
}

/// Rate limit per client address and a bound on requests in progress, before any body is
/// read.
async fn guard(State(h): State<HookState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if h.limiter.len() > 10_000 {
        h.limiter.retain_recent();
    }
    if h.limiter.check_key(&ip).is_err() {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many webhook requests from this address; slow down",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let Ok(_permit) = h.in_flight.clone().try_acquire_owned() else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many webhook requests in progress; retry shortly",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let mut req = req;
    req.extensions_mut().insert(Peer(ip));
    next.run(req).await
}

/// The client address the guard saw.
#[derive(Clone, Copy)]
pub struct Peer(pub IpAddr);

/// What a webhook request did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResult {
    /// Events applied (suppressions, unsubscriptions, counted bounces, recorded deliveries).
    pub accepted: usize,
    /// Events already applied before (the same provider event id): counted once.
    pub duplicates: usize,
    /// Events the rules do not act on (opens, clicks, deferrals, unusable addresses).
    pub ignored: usize,
    /// SES only: `confirming` when an SNS subscription confirmation was started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<&'static str>,
}

fn refused(p: Provider, peer: IpAddr, e: EspError) -> ApiError {
    let (status, code) = match &e {
        EspError::Disabled(_) => (StatusCode::NOT_FOUND, "webhook_disabled"),
        EspError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        EspError::Stale { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
        EspError::Replayed(_) => (StatusCode::UNAUTHORIZED, "replayed"),
        EspError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        EspError::Malformed(_) => (StatusCode::BAD_REQUEST, "invalid_payload"),
        EspError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    if !matches!(e, EspError::Disabled(_)) {
        tracing::warn!(provider = p.name(), ip = %peer, code, reason = %e, "webhook refused");
    }
    ApiError::new(status, code, e.to_string())
}

fn body_of(
    p: Provider,
    peer: IpAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        tracing::warn!(provider = p.name(), ip = %peer, status = r.status().as_u16(), "webhook body refused");
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the webhook body is larger than this endpoint accepts",
            )
        } else {
            ApiError::bad_request(format!("could not read the body: {}", r.body_text()))
        }
    })
}

/// Applies a verified batch in one transaction.
async fn apply(h: &HookState, p: Provider, batch: Batch) -> Result<Json<WebhookResult>, ApiError> {
    let Batch {
        events,
        ignored,
        claimed,
    } = batch;
    if events.is_empty() {
        return Ok(Json(WebhookResult {
            accepted: 0,
            duplicates: 0,
            ignored,
            subscription: None,
        }));
    }
    let app = h.app.clone();
    let recorded = blocking(move || app.feedback.record(&events))
        .await
        .inspect_err(|_| {
            if let Some(token) = &claimed {
                h.inbound.release_token(token);
            }
        })?;
    let accepted = recorded.applied.len();
    tracing::info!(
        provider = p.name(),
        accepted,
        duplicates = recorded.skipped,
        ignored,
        "webhook applied"
    );
    Ok(Json(WebhookResult {
        accepted,
        duplicates: recorded.skipped,
        ignored,
        subscription: None,
    }))
}

fn peer_of(peer: Option<axum::Extension<Peer>>) -> IpAddr {
    peer.map(|p| p.0.0).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[utoipa::path(post, path = "/api/v1/webhooks/ses", tag = "webhooks", security(()),
    request_body(content = String, content_type = "text/plain", description = "An SNS message (Notification with an SES bounce, complaint or delivery; SubscriptionConfirmation; UnsubscribeConfirmation), signed by SNS."),
    responses((status = 200, body = WebhookResult), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn ses(
    State(h): State<HookState>,
    peer: Option<axum::Extension<Peer>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    let (p, peer) = (Provider::Ses, peer_of(peer));
    h.inbound
        .check_enabled(p)
        .map_err(|e| refused(p, peer, e))?;
    let body = body_of(p, peer, body)?;
    let outcome = h
        .inbound
        .ses(&body, crate::model::now())
        .await
        .map_err(|e| refused(p, peer, e))?;
    let result = |subscription| WebhookResult {
        accepted: 0,
        duplicates: 0,
        ignored: 0,
        subscription,
    };
    match outcome {
        SnsOutcome::Events(batch) => apply(&h, p, batch).await,
        SnsOutcome::Subscribe { topic, url } => {
            h.inbound.confirm_subscription(topic, url);
            Ok(Json(result(Some("confirming"))))
        }
        SnsOutcome::DuplicateSubscription => Ok(Json(WebhookResult {
            duplicates: 1,
            ..result(None)
        })),
        SnsOutcome::Unsubscribed { topic } => {
            tracing::warn!(topic = %topic, "AWS reports the SES webhook was unsubscribed from an SNS topic");
            Ok(Json(result(None)))
        }
    }
}

/// Verifies and applies a request from a provider other than SES.
async fn receive(
    h: HookState,
    p: Provider,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    let peer = peer_of(peer);
    h.inbound
        .check_enabled(p)
        .map_err(|e| refused(p, peer, e))?;
    let body = body_of(p, peer, body)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let batch = h
        .inbound
        .receive(p, header, &body, crate::model::now())
        .map_err(|e| refused(p, peer, e))?;
    apply(&h, p, batch).await
}

#[utoipa::path(post, path = "/api/v1/webhooks/sendgrid", tag = "webhooks", security(()),
    request_body(content = String, content_type = "application/json", description = "SendGrid Event Webhook batch, signed (X-Twilio-Email-Event-Webhook-Signature / -Timestamp)."),
    responses((status = 200, body = WebhookResult), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
pub async fn sendgrid(
    State(h): State<HookState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    receive(h, Provider::Sendgrid, peer, headers, body).await
}

#[utoipa::path(post, path = "/api/v1/webhooks/mailgun", tag = "webhooks", security(()),
    request_body(content = String, content_type = "application/json", description = "Mailgun webhook (JSON with signature and event-data)."),
    responses((status = 200, body = WebhookResult), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn mailgun(
    State(h): State<HookState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    receive(h, Provider::Mailgun, peer, headers, body).await
}

#[utoipa::path(post, path = "/api/v1/webhooks/postmark", tag = "webhooks", security(()),
    request_body(content = String, content_type = "application/json", description = "Postmark Bounce, SpamComplaint or Delivery webhook, with HTTP Basic credentials."),
    responses((status = 200, body = WebhookResult), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn postmark(
    State(h): State<HookState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    receive(h, Provider::Postmark, peer, headers, body).await
}

#[utoipa::path(post, path = "/api/v1/webhooks/generic", tag = "webhooks", security(()),
    request_body(content = String, content_type = "application/json", description = "{\"events\": [{\"id\", \"type\": \"bounce|complaint|delivered\", \"email\", \"hard\"?, \"status\"?, \"diagnostic\"?, \"feedback_type\"?, \"message_id\"?}]}, signed with X-Mailstead-Signature: v1=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")> and X-Mailstead-Timestamp."),
    responses((status = 200, body = WebhookResult), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn generic(
    State(h): State<HookState>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookResult>, ApiError> {
    receive(h, Provider::Generic, peer, headers, body).await
}
