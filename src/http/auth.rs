//! Who is calling: an `Authorization: Bearer` API token or the console session cookie.
//! Cookie-authenticated requests that change state must carry the session's CSRF token in
//! `X-CSRF-Token`. Every caller is rate-limited per token or session.

use super::AppState;
use super::error::{ApiError, blocking};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "__Host-mailstead_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller.
pub struct Authed(pub crate::policy::Actor);

pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let app = state.clone();
        let (actor, key) = if let Some(token) = bearer(parts) {
            let (actor, t) = blocking(move || app.accounts.bearer(&token)).await?;
            (actor, format!("token:{}", t.id))
        } else if let Some(secret) = session_cookie(&parts.headers) {
            let (actor, session) = blocking(move || app.accounts.session(&secret)).await?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !bool::from(sent.as_bytes().ct_eq(session.csrf_token.as_bytes())) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "missing or wrong X-CSRF-Token header (get it from GET /api/v1/session)",
                    ));
                }
            }
            let key = format!("user:{}", actor.user_id);
            (actor, key)
        } else {
            return Err(ApiError::unauthenticated(
                "log in or send an API token (Authorization: Bearer ...)",
            ));
        };
        let mut actor = actor;
        actor.ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        if state.api_limiter.check_key(&key).is_err() {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; slow down",
            ));
        }
        Ok(Authed(actor))
    }
}

impl OptionalFromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        match <Authed as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Ok(None),
            Err(e) => Err(e),
        }
    }
}
